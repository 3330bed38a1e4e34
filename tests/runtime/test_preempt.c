/*
 * test_preempt.c - a process looping in C without ever calling ember does not
 * stop the others: with twice as many such loops as schedulers, a ping-pong pair
 * still completes 10,000 round trips with a 99th percentile under 5 time slices;
 * a kill ends a spinning process within 2 slices; and a preempted process resumes
 * exactly where it was, registers and vector state included.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

#define SLICE_US 1000

/* ThreadSanitizer holds asynchronous signals back until the thread next enters
 * its runtime, which a pure C loop never does: preemption cannot be seen there. */
#if defined(__SANITIZE_THREAD__)
#define SKIP_UNDER_TSAN() skip()
#else
#define SKIP_UNDER_TSAN() ((void)0)
#endif

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The seed's loop.(loop): never calls anything. */
static void spin(em_term a)
{
    (void)a;
    volatile uint64_t x = 0;
    for (;;)
        x++;
}

static void pong(em_term a)
{
    (void)a;
    for (;;) {
        em_pid_t from = 0;
        if (em_receive_match(NULL, EM_INFINITY, "[ping, ~p]", &from) != 0)
            return;
        em_send(from, em_atom("pong"));
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

enum { ROUNDS = 10000 };
static uint64_t rtt[ROUNDS];

static void root_spinners(em_term arg)
{
    (void)arg;
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    int nspin = 2 * si.schedulers;
    em_pid_t spinners[64];
    for (int i = 0; i < nspin; i++) {
        CHECK_INT(0, em_spawn(spin, EM_NIL, &spinners[i]));
        CHECK_INT(0, em_monitor(spinners[i], NULL));
    }
    em_sleep(20);   /* let them take the cores */
    em_pid_t p;
    CHECK_INT(0, em_spawn(pong, EM_NIL, &p));
    em_term ping = EM_ARR(em_atom("ping"), em_pid(em_self()));
    uint64_t t_all = now_ns();
    for (int i = 0; i < ROUNDS; i++) {
        uint64_t t0 = now_ns();
        em_send(p, ping);
        if (em_receive_match(NULL, 10000, "pong") != 0) {
            CHECK_FAIL("round trip %d: no pong within 10 s", i);
            break;
        }
        rtt[i] = now_ns() - t0;
    }
    t_all = now_ns() - t_all;
    qsort(rtt, ROUNDS, sizeof rtt[0], cmp_u64);
    uint64_t p50 = rtt[ROUNDS / 2], p99 = rtt[ROUNDS * 99 / 100], max = rtt[ROUNDS - 1];
    print_message("pingpong beside %d spinners: %d round trips in %.1f ms; p50 %.1f us, p99 %.1f us, "
                  "max %.1f us (slice %d us)\n",
                  nspin, ROUNDS, (double)t_all / 1e6, (double)p50 / 1e3, (double)p99 / 1e3,
                  (double)max / 1e3, SLICE_US);
    if (p99 > 5u * SLICE_US * 1000u)
        CHECK_FAIL("p99 round trip: expected at most %d us, got %.1f us", 5 * SLICE_US, (double)p99 / 1e3);
    uint64_t preempted = 0;
    for (int i = 0; i < si.schedulers; i++) {
        em_sched_info s;
        CHECK_INT(0, em_scheduler_info(i, &s));
        preempted += s.preemptions;
    }
    CHECK(preempted > 0);
    /* Kill each spinner: its DOWN must come within 2 slices. Another program
     * that takes this machine's two cores can hold a scheduler thread off its
     * core for milliseconds (seen: 2.1-5.6 ms while a chaos test ran beside),
     * so one kill in time shows the preemption works and each of the others
     * must come within 20 slices. */
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < nspin; i++) {
        uint64_t t0 = now_ns();
        CHECK_INT(0, em_exit_pid(spinners[i], em_atom("kill")));
        em_pid_t who = 0;
        CHECK_INT(0, em_receive_match(NULL, 10000, "['DOWN', _, process, ~p, killed]", &who));
        uint64_t dt = now_ns() - t0;
        CHECK(who == spinners[i]);
        if (dt < best)
            best = dt;
        if (dt > 20u * SLICE_US * 1000u)
            CHECK_FAIL("kill of spinner %d: expected its end within %d us, took %.1f us", i,
                       20 * SLICE_US, (double)dt / 1e3);
    }
    if (best > 2u * SLICE_US * 1000u)
        CHECK_FAIL("kills of %d spinners: expected one to end within %d us, the fastest took %.1f us",
                   nspin, 2 * SLICE_US, (double)best / 1e3);
    em_send(p, em_atom("stop"));
    em_exit_pid(p, em_atom("kill"));
}

static void test_spinners_do_not_stop_others(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    CHECK_RESET();
    em_config c = check_config(2);
    c.time_slice_us = SLICE_US;
    assert_int_equal(em_run(&c, root_spinners, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* A computation that keeps integer, floating-point and vector registers busy;
 * any register the preemption failed to restore changes its result. */
static double crunch(uint64_t seed, long n)
{
    double acc[8] = {0}, v[8];
    uint64_t x = seed;
    for (int k = 0; k < 8; k++)
        v[k] = (double)(k + 1) * 0.5;
    for (long i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double r = (double)(x >> 11) * 0x1.0p-53;
        for (int k = 0; k < 8; k++) {
            v[k] = v[k] * 0.999 + r * (double)(k + 1);
            acc[k] += sqrt(v[k]) * (double)((x >> (k * 8)) & 0xFF);
        }
    }
    double s = 0;
    for (int k = 0; k < 8; k++)
        s += acc[k];
    return s + (double)(x & 0xFFFF);
}

#define CRUNCH_N 4000000L
static double expected[4];

static void cruncher(em_term a)
{
    int64_t i = 0;
    em_get_int(em_at(a, 0), &i);
    em_pid_t parent = 0;
    em_get_pid(em_at(a, 1), &parent);
    double got = crunch((uint64_t)i + 1, CRUNCH_N);
    em_send(parent, EM_ARR(em_int(i), em_float(got)));
}

static void root_resume(em_term arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        CHECK_INT(0, em_spawn(cruncher, EM_ARR(em_int(i), em_pid(em_self())), NULL));
    for (int i = 0; i < 4; i++) {
        int64_t which = -1;
        double got = 0;
        CHECK_INT(0, em_receive_match(NULL, 60000, "[~i, ~f]", &which, &got));
        if (which < 0 || which > 3)
            continue;
        if (got != expected[which])
            CHECK_FAIL("cruncher %lld: expected %.17g, got %.17g", (long long)which, expected[which], got);
    }
    uint64_t preempted = 0;
    for (int i = 0; i < 2; i++) {
        em_sched_info s;
        CHECK_INT(0, em_scheduler_info(i, &s));
        preempted += s.preemptions;
    }
    print_message("4 crunchers on 2 schedulers: %llu preemptions\n", (unsigned long long)preempted);
    CHECK(preempted >= 4);
}

static void test_preempted_process_resumes_exactly(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    for (int i = 0; i < 4; i++)
        expected[i] = crunch((uint64_t)i + 1, CRUNCH_N);
    CHECK_RESET();
    em_config c = check_config(2);
    c.time_slice_us = 200;   /* many preemptions per run */
    assert_int_equal(em_run(&c, root_resume, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* A preempted process resumes on the thread it was interrupted on, even when
 * its execution stack is busy when its turn comes (review finding: it was then
 * queued where another scheduler could take it). Thousands of processes share
 * the schedulers' stacks; each checks its thread pointer inside a loop that
 * never calls ember. */
static atomic_long moved, phases;
static atomic_int stop_spin;

static inline uintptr_t thread_pointer(void)
{
    uintptr_t v;
    __asm__ volatile("mov %%fs:0, %0" : "=r"(v));
    return v;
}

static void spin_then_yield(em_term a)
{
    (void)a;
    while (!atomic_load_explicit(&stop_spin, memory_order_relaxed)) {
        uintptr_t t0 = thread_pointer();
        for (volatile long i = 0; i < 6000000; i++)
            if (thread_pointer() != t0) {
                atomic_fetch_add(&moved, 1);
                t0 = thread_pointer();
            }
        atomic_fetch_add(&phases, 1);
        em_yield();
    }
}

static void root_stays(em_term arg)
{
    (void)arg;
    for (int i = 0; i < 3000; i++)
        CHECK_INT(0, em_spawn(spin_then_yield, EM_NIL, NULL));
    em_sleep(2500);
    atomic_store(&stop_spin, 1);
    uint64_t preempted = 0;
    for (int i = 0; i < 2; i++) {
        em_sched_info s;
        CHECK_INT(0, em_scheduler_info(i, &s));
        preempted += s.preemptions;
    }
    print_message("3000 spinners: %ld phases, %llu preemptions, %ld thread changes\n",
                  atomic_load(&phases), (unsigned long long)preempted, atomic_load(&moved));
    CHECK(preempted > 20);
    CHECK_INT(0, atomic_load(&moved));
}

static void test_preempted_process_stays_on_its_thread(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    CHECK_RESET();
    em_config c = check_config(2);
    assert_int_equal(em_run(&c, root_stays, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* A crash that travels along a link reaches a linked process spinning in C at
 * once, as a kill does (review finding: it waited for the spinner's slice). */
static void linked_spinner(em_term a)
{
    em_pid_t buddy = 0;
    em_get_pid(a, &buddy);
    em_link(buddy);
    spin(EM_NIL);
}

static void doomed(em_term a)
{
    (void)a;
    em_receive_match(NULL, EM_INFINITY, "crash");
    em_exit(em_atom("crashed"));
}

/* One slice: without the prompt interruption the last of four spinners ends
 * only after two or three; AddressSanitizer's slower code gets two. */
#if defined(__SANITIZE_ADDRESS__)
#define LINK_LIMIT_US (2 * SLICE_US)
#else
#define LINK_LIMIT_US SLICE_US
#endif

/* The limit holds for the median of 8 rounds: without the prompt interruption
 * every round takes two slices or more, while one round of a shared, noisy
 * machine may stall a core for milliseconds whatever ember does (a fresh-clone
 * CI run saw 2.8 ms once against a 2 ms limit). */
static void root_link_latency(em_term arg)
{
    (void)arg;
    enum { LINK_ROUNDS = 8 };
    uint64_t dts[LINK_ROUNDS];
    for (int i = 0; i < LINK_ROUNDS; i++) {
        em_pid_t d, s[4];
        CHECK_INT(0, em_spawn(doomed, EM_NIL, &d));
        for (int k = 0; k < 4; k++) {   /* more spinners than cores */
            CHECK_INT(0, em_spawn(linked_spinner, em_pid(d), &s[k]));
            CHECK_INT(0, em_monitor(s[k], NULL));
        }
        em_sleep(20);
        uint64_t t0 = now_ns();
        em_send(d, em_atom("crash"));
        for (int k = 0; k < 4; k++)
            CHECK_INT(0, em_receive_match(NULL, 10000, "['DOWN', _, process, _, crashed]"));
        dts[i] = now_ns() - t0;
    }
    qsort(dts, LINK_ROUNDS, sizeof dts[0], cmp_u64);
    uint64_t median = dts[LINK_ROUNDS / 2];
    if (median > LINK_LIMIT_US * 1000u)
        CHECK_FAIL("linked spinners ended after %.1f us (median of %d rounds; fastest %.1f, slowest %.1f), "
                   "expected within %d us",
                   (double)median / 1e3, LINK_ROUNDS, (double)dts[0] / 1e3, (double)dts[LINK_ROUNDS - 1] / 1e3,
                   LINK_LIMIT_US);
}

static void test_link_exit_reaches_spinning_process_at_once(void **state)
{
    (void)state;
    SKIP_UNDER_TSAN();
    CHECK_RESET();
    em_config c = check_config(2);
    c.time_slice_us = SLICE_US;
    assert_int_equal(em_run(&c, root_link_latency, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

static void root_bad_config(em_term arg) { (void)arg; }

static void test_time_slice_config(void **state)
{
    (void)state;
    em_config c = check_config(1);
    c.time_slice_us = 50;
    assert_int_equal(em_run(&c, root_bad_config, EM_NIL), EM_EINVAL);
    c.time_slice_us = 0;   /* off */
    assert_int_equal(em_run(&c, root_bad_config, EM_NIL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spinners_do_not_stop_others),
        cmocka_unit_test(test_preempted_process_resumes_exactly),
        cmocka_unit_test(test_preempted_process_stays_on_its_thread),
        cmocka_unit_test(test_link_exit_reaches_spinning_process_at_once),
        cmocka_unit_test(test_time_slice_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
