/*
 * test_stress.c - counted invariants under load: a million processes spawned and
 * ended, ten million messages among a thousand processes (none lost, none
 * duplicated, each sender's order kept), and a million pending timers.
 * Sanitizer builds divide the sizes by EMBER_STRESS_SCALE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

#define SCALE EMBER_STRESS_SCALE

static atomic_long counter;

/* ------------------------------------------------------- a million spawns */

#define SPAWN_N (1000000 / SCALE)

static void waiter(em_term arg)
{
    (void)arg;
    em_term m;
    CHECK_INT(0, em_receive(&m, EM_INFINITY));
    CHECK(em_is_atom(m, "stop"));
    atomic_fetch_add(&counter, 1);
}

static void root_million(em_term arg)
{
    (void)arg;
    em_pid_t *pids = malloc(SPAWN_N * sizeof *pids);
    for (long i = 0; i < SPAWN_N; i++)
        CHECK_INT(0, em_spawn(waiter, EM_NIL, &pids[i]));
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    CHECK_INT(SPAWN_N + 1, si.process_count);
    em_term stop = em_atom("stop");
    for (long i = 0; i < SPAWN_N; i++)
        em_send(pids[i], stop);
    free(pids);
}

static void test_million_processes(void **state)
{
    (void)state;
    atomic_store(&counter, 0);
    run_root(2, root_million);
    assert_int_equal(atomic_load(&counter), SPAWN_N);
}

/* ------------------------------------------------- ten million messages */

#define MESH_PROCS 1000
#define MESH_PER_SENDER (10000 / SCALE)

static long expected_in[MESH_PROCS];
static em_pid_t mesh[MESH_PROCS];
static atomic_int mesh_ready;

static uint32_t target_of(uint32_t sender, uint32_t i)
{
    uint64_t x = ((uint64_t)sender << 32 | i) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (uint32_t)(x % MESH_PROCS);
}

/* Each message is sender << 32 | sequence number for that (sender, receiver)
 * pair, so the receiver can check that each pair's numbers come 0, 1, 2, ... */
static bool mesh_take(em_term m, uint32_t *next_from, long *got)
{
    int64_t v;
    if (!em_get_int(m, &v)) {
        CHECK_FAIL("mesh message is not an integer");
        return false;
    }
    uint32_t from = (uint32_t)(v >> 32), seq = (uint32_t)v;
    if (from >= MESH_PROCS || seq != next_from[from]) {
        CHECK_FAIL("from %u: expected seq %u, got %u", from,
                   from < MESH_PROCS ? next_from[from] : 0, seq);
        return false;
    }
    next_from[from]++;
    (*got)++;
    return true;
}

static void mesh_proc(em_term arg)
{
    int64_t me;
    CHECK(em_get_int(arg, &me));
    while (atomic_load(&mesh_ready) == 0)
        em_yield();
    uint32_t *next_from = calloc(MESH_PROCS, sizeof *next_from);
    uint32_t *next_to = calloc(MESH_PROCS, sizeof *next_to);
    long got = 0;
    em_term m;
    for (uint32_t i = 0; i < MESH_PER_SENDER; i++) {
        uint32_t t = target_of((uint32_t)me, i);
        em_send(mesh[t], em_int(((int64_t)me << 32) | next_to[t]++));
        while (em_receive(&m, 0) == 0)
            if (!mesh_take(m, next_from, &got))
                goto out;
    }
    while (got < expected_in[me]) {
        if (em_receive(&m, 20000) != 0) {
            CHECK_FAIL("process %lld: got %ld of %ld messages", (long long)me, got, expected_in[me]);
            goto out;
        }
        if (!mesh_take(m, next_from, &got))
            goto out;
    }
    /* Nothing more may come: a duplicate would show up here. */
    if (em_receive(&m, 0) == 0)
        CHECK_FAIL("process %lld: a message beyond the %ld expected", (long long)me, got);
    atomic_fetch_add(&counter, got);
out:
    free(next_from);
    free(next_to);
}

static void root_mesh(em_term arg)
{
    (void)arg;
    for (uint32_t s = 0; s < MESH_PROCS; s++)
        for (uint32_t i = 0; i < MESH_PER_SENDER; i++)
            expected_in[target_of(s, i)]++;
    for (int i = 0; i < MESH_PROCS; i++)
        CHECK_INT(0, em_spawn(mesh_proc, em_int(i), &mesh[i]));
    atomic_store(&mesh_ready, 1);
}

static void test_ten_million_messages(void **state)
{
    (void)state;
    atomic_store(&counter, 0);
    atomic_store(&mesh_ready, 0);
    memset(expected_in, 0, sizeof expected_in);
    run_root(2, root_mesh);
    assert_int_equal(atomic_load(&counter), (long)MESH_PROCS * MESH_PER_SENDER);
}

/* ------------------------------------------------- a million timers */

#define TIMERS_N (1000000 / SCALE)

static void root_timers(em_term arg)
{
    (void)arg;
    em_timer_t *t = malloc(TIMERS_N * sizeof *t);
    unsigned char *state = calloc(TIMERS_N, 1); /* 1 cancelled, 2 arrived */
    uint64_t x = 12345;
    int64_t t0 = em_now_ms();
    for (long i = 0; i < TIMERS_N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        CHECK_INT(0, em_send_after((int64_t)(500 + (x >> 33) % 500), em_self(), em_int(i), &t[i]));
    }
    int64_t set_ms = em_now_ms() - t0;
    long cancelled = 0;
    for (long i = 0; i < TIMERS_N; i += 2)
        if (em_cancel_timer(t[i]) == 0) {
            state[i] = 1;
            cancelled++;
        }
    /* Setting and cancelling took well under the shortest delay: all cancels hit. */
    if (em_now_ms() - t0 < 450)
        CHECK_INT(TIMERS_N / 2, cancelled);
    long got = 0;
    em_term m;
    int64_t v;
    while (em_receive(&m, 2000) == 0) {
        if (!em_get_int(m, &v) || v < 0 || v >= TIMERS_N || state[v] != 0) {
            CHECK_FAIL("timer message %lld: cancelled or duplicated", (long long)v);
            break;
        }
        state[v] = 2;
        got++;
    }
    CHECK_INT(TIMERS_N - cancelled, got);
    (void)set_ms;
    free(state);
    free(t);
}

static void test_million_timers(void **state)
{
    (void)state;
    run_root(2, root_timers);
}

/* Many processes waiting in receive with timeouts, some woken by messages. */
#define WAITERS (100000 / SCALE)

static void timed_waiter(em_term arg)
{
    int64_t i;
    CHECK(em_get_int(arg, &i));
    em_term m;
    /* The ten that get a message wait long enough for the spawn loop to end
     * even on a loaded machine (a fault costs 10 us on some virtual machines,
     * and 100,000 spawns can then take more than the others' half second). */
    bool woken = i % 7 == 0 && i / 7 < 10;
    int rc = em_receive(&m, woken ? 60000 : 500 + i % 100);
    if (rc == 0)
        atomic_fetch_add(&counter, 1000000);
    else if (rc == EM_ETIMEDOUT)
        atomic_fetch_add(&counter, 1);
    else
        CHECK_FAIL("receive returned %d", rc);
}

static void root_waiters(em_term arg)
{
    (void)arg;
    em_pid_t *p = malloc(WAITERS * sizeof *p);
    for (long i = 0; i < WAITERS; i++)
        CHECK_INT(0, em_spawn(timed_waiter, em_int(i), &p[i]));
    for (long i = 0; i < 10; i++)
        em_send(p[i * 7], em_atom("wake"));
    free(p);
}

static void test_receive_timeouts_en_masse(void **state)
{
    (void)state;
    atomic_store(&counter, 0);
    run_root(2, root_waiters);
    /* Exactly one outcome per process: 10 by message, the rest by timeout. */
    assert_int_equal(atomic_load(&counter), 10 * 1000000L + (WAITERS - 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_processes),
        cmocka_unit_test(test_ten_million_messages),
        cmocka_unit_test(test_million_timers),
        cmocka_unit_test(test_receive_timeouts_en_masse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
