/*
 * test_solo.c - solo mode (runtime/sched/solo.c): while the other schedulers
 * sleep, the awake one sends and parks with plain stores. These tests check that
 * the mode is entered where it should be, that other threads end it, and that
 * no message is lost, duplicated or reordered across those transitions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

#define SCALE EMBER_STRESS_SCALE

static em_system_info sys_info(void)
{
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    return si;
}

/* Replies to {N, From} with N until it gets stop. */
static void echo(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        CHECK_INT(0, em_receive(&m, EM_INFINITY));
        if (em_is_atom(m, "stop"))
            return;
        em_pid_t from;
        CHECK(em_get_pid(em_at(m, 1), &from));
        em_send(from, em_at(m, 0));
        em_heap_release(mk);
    }
}

static bool is_int(em_term t, void *ctx)
{
    (void)ctx;
    int64_t k;
    return em_get_int(t, &k);
}

static bool is_done(em_term t, void *ctx)
{
    (void)ctx;
    return em_is_atom(t, "done");
}

/* n numbered round trips with echo; each reply must carry the number sent. */
static void exchange(em_pid_t e, long first, long n)
{
    for (long i = first; i < first + n; i++) {
        em_mark mk = em_heap_mark();
        em_send(e, EM_ARR(em_int(i), em_pid(em_self())));
        em_term r;
        int64_t k = -1;
        CHECK_INT(0, em_receive_if(&r, 10000, is_int, NULL));
        em_get_int(r, &k);
        if (k != i) {
            CHECK_FAIL("round trip %ld: expected reply %ld, got %lld", i, i, (long long)k);
            em_heap_release(mk);
            return;
        }
        em_heap_release(mk);
    }
}

/* ------------------------------------------------- a pair alone enters it */

static void root_pair(em_term arg)
{
    (void)arg;
    em_pid_t e;
    CHECK_INT(0, em_spawn(echo, EM_NIL, &e));
    em_system_info a = sys_info(), b;
    /* In steps, until the mode has begun, for at most 200 steps: a sanitizer
     * build runs each step 200 times smaller and far slower, and the other
     * scheduler must have fallen asleep first. */
    long trips = 0;
    for (int step = 0; step < 200; step++) {
        exchange(e, 0, 2000 / SCALE + 50);
        trips += 2000 / SCALE + 50;
        b = sys_info();
        if (b.solo_entries != a.solo_entries)
            break;
    }
    em_send(e, em_atom("stop"));
    print_message("a pair on 2 schedulers: solo mode entered %llu times, revoked %llu\n",
                  (unsigned long long)(b.solo_entries - a.solo_entries),
                  (unsigned long long)(b.solo_revocations - a.solo_revocations));
    /* The other scheduler has nothing to do and sleeps; valgrind turns the mode
     * off (solo.c). */
    if (b.solo_available && b.solo_entries == a.solo_entries)
        CHECK_FAIL("a pair exchanging alone on 2 schedulers: expected solo mode to begin, "
                   "it began 0 times in %ld round trips",
                   trips);
}

static void test_pair_alone_enters_solo(void **state)
{
    (void)state;
    run_root(2, root_pair);
}

/* ---------------------- a scheduler that wakes ends it; nothing is lost */

#define ROUNDS 20
#define SENDERS (ROUNDS * 2)
#define PER_SENDER (20000 / SCALE)

static atomic_long burned;
static bool churn_expect_mode;

/* Computes for a while in short slices, then tells the collector. */
static void burner(em_term arg)
{
    em_pid_t to;
    em_get_pid(arg, &to);
    volatile uint64_t x = 0;
    for (int r = 0; r < 20; r++) {
        for (int i = 0; i < 20000; i++)
            x += (uint64_t)i;
        em_yield();
    }
    atomic_fetch_add(&burned, 1);
    em_send(to, em_atom("burned"));
}

/* Sends PER_SENDER numbered messages {seq, Id, N} to the collector. */
static void sender(em_term arg)
{
    em_pid_t to;
    int64_t id;
    em_get_pid(em_at(arg, 0), &to);
    em_get_int(em_at(arg, 1), &id);
    for (long n = 0; n < PER_SENDER; n++) {
        em_mark mk = em_heap_mark();
        em_send(to, EM_ARR(em_atom("seq"), em_int(id), em_int(n)));
        em_heap_release(mk);
        if ((n & 255) == 255)
            em_sleep(0);   /* a yield: let the collector drain */
    }
}

/* Takes every sender's messages, checking each sender's order, and the
 * burners' reports; tells the root when all have come. */
static void collector(em_term arg)
{
    em_pid_t root;
    em_get_pid(arg, &root);
    static long next[SENDERS];
    memset(next, 0, sizeof next);
    long got = 0, bursts = 0;
    while (got < (long)SENDERS * PER_SENDER || bursts < ROUNDS * 2) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive(&m, 20000) != 0) {
            CHECK_FAIL("collector: nothing for 20 s after %ld of %ld messages", got,
                       (long)SENDERS * PER_SENDER);
            break;
        }
        if (em_is_atom(m, "burned")) {
            bursts++;
        } else {
            int64_t id = -1, n = -1;
            em_get_int(em_at(m, 1), &id);
            em_get_int(em_at(m, 2), &n);
            if (id < 0 || id >= SENDERS || n != next[id]) {
                CHECK_FAIL("sender %lld: expected message %ld, got %lld", (long long)id,
                           id >= 0 && id < SENDERS ? next[id] : -1L, (long long)n);
                break;
            }
            next[id]++;
            got++;
        }
        em_heap_release(mk);
    }
    em_send(root, em_atom("done"));
}

static void root_churn(em_term arg)
{
    (void)arg;
    atomic_store(&burned, 0);
    em_system_info a = sys_info();
    em_pid_t c, e;
    CHECK_INT(0, em_spawn(collector, em_pid(em_self()), &c));
    CHECK_INT(0, em_spawn(echo, EM_NIL, &e));
    /* Rounds of a lone exchange (the other scheduler falls asleep and the mode
     * can begin), then two burners and two senders (it wakes, steals some, and
     * must end the mode before it touches a mailbox). */
    for (int r = 0; r < ROUNDS; r++) {
        /* Until the mode has begun once more, for at most 100 steps. */
        uint64_t before = sys_info().solo_entries;
        for (int step = 0; step < 100; step++) {
            exchange(e, 0, 1000 / SCALE + 50);
            if (sys_info().solo_entries != before)
                break;
        }
        for (int k = 0; k < 2; k++) {
            CHECK_INT(0, em_spawn(burner, em_pid(c), NULL));
            CHECK_INT(0, em_spawn(sender, EM_ARR(em_pid(c), em_int(r * 2 + k)), NULL));
        }
        em_sleep(5);
    }
    em_term m;
    CHECK_INT(0, em_receive_if(&m, 60000, is_done, NULL));
    em_send(e, em_atom("stop"));
    em_system_info b = sys_info();
    unsigned long long ent = b.solo_entries - a.solo_entries;
    unsigned long long rev = b.solo_revocations - a.solo_revocations;
    print_message("churn: solo mode entered %llu times, revoked %llu, %ld burners\n", ent, rev,
                  atomic_load(&burned));
    CHECK_INT(ROUNDS * 2, atomic_load(&burned));
    if (churn_expect_mode && b.solo_available && (ent == 0 || rev == 0))
        CHECK_FAIL("expected solo mode to begin and be revoked in %d rounds: began %llu, "
                   "revoked %llu",
                   ROUNDS, ent, rev);
}

static void test_wakes_end_solo_and_lose_nothing(void **state)
{
    (void)state;
    churn_expect_mode = true;
    run_root(2, root_churn);
    /* Four schedulers on this machine's two cores: two or three threads may
     * end the mode at once, the case where a third must wait for the end of a
     * revocation that another began. The mode may not begin at all. */
    churn_expect_mode = false;
    run_root(4, root_churn);
}

/* ------------- an owner caught mid-operation by several threads at once */

#define FLOODERS 3

/* Numbered round trips with the echo that the root is exchanging with, so
 * that a thread that wakes for it writes the very mailbox word the owner of
 * the mode is writing with plain stores; then tells the root. */
static void flooder(em_term arg)
{
    em_pid_t e, root;
    em_get_pid(em_at(arg, 0), &e);
    em_get_pid(em_at(arg, 1), &root);
    exchange(e, 0, 2000 / SCALE + 20);
    em_send(root, em_atom("done"));
}

static void root_contend(em_term arg)
{
    (void)arg;
    em_system_info a = sys_info();
    em_pid_t e;
    CHECK_INT(0, em_spawn(echo, EM_NIL, &e));
    long i = 0;
    for (int r = 0; r < ROUNDS; r++) {
        /* A lone exchange until the mode has begun once more (at most 100
         * steps), then flooders woken on the other schedulers while the
         * exchange goes on. */
        em_system_info si = sys_info();
        for (int step = 0; step < (si.solo_available ? 100 : 1) && sys_info().solo_entries == si.solo_entries;
             step++, i += 200)
            exchange(e, i, 200);
        for (int k = 0; k < FLOODERS; k++)
            CHECK_INT(0, em_spawn(flooder, EM_ARR(em_pid(e), em_pid(em_self())), NULL));
        int done = 0;
        while (done < FLOODERS && !check_failed) {
            em_mark mk = em_heap_mark();
            exchange(e, i, 20);
            i += 20;
            em_term m;
            while (done < FLOODERS && em_receive_if(&m, 0, is_done, NULL) == 0)
                done++;
            em_heap_release(mk);
        }
    }
    em_send(e, em_atom("stop"));
    em_system_info b = sys_info();
    print_message("contend: solo mode entered %llu times, revoked %llu\n",
                  (unsigned long long)(b.solo_entries - a.solo_entries),
                  (unsigned long long)(b.solo_revocations - a.solo_revocations));
}

/* The owner lingers inside each plain operation (EMBER_SOLO_LINGER, read when
 * the runtime starts), so the threads that wake and end the mode nearly always
 * find it mid-operation, on the echo's mailbox word that they are about to
 * write too; with 3 or 4 schedulers on two cores, two or three of them at
 * once, the case where one must wait for the end of a revocation that another
 * began. A revoker, or a third thread, that went on before the owner was out
 * of its operation would lose a message here, and a round trip would wait in
 * vain. */
static void test_lingering_owner_meets_wakers(void **state)
{
    (void)state;
    assert_int_equal(setenv("EMBER_SOLO_LINGER", "200", 1), 0);
    run_root(2, root_contend);
    run_root(3, root_contend);
    run_root(4, root_contend);
    unsetenv("EMBER_SOLO_LINGER");
}

/* ----------------------------------------- a timer on the sleeping side */

/* Sleeps in short naps: its timers fire on whichever scheduler armed them, a
 * sleeping one included, which then wakes and must end the mode first. */
static void napper(em_term arg)
{
    em_pid_t to;
    em_get_pid(arg, &to);
    for (int i = 0; i < 50; i++) {
        em_term m;
        /* A receive timeout: its expiry takes the parked process's SLEEP. */
        CHECK_INT(EM_ETIMEDOUT, em_receive(&m, 1));
    }
    em_send(to, em_atom("napped"));
}

static void root_timers(em_term arg)
{
    (void)arg;
    em_pid_t e;
    CHECK_INT(0, em_spawn(echo, EM_NIL, &e));
    for (int i = 0; i < 8; i++)
        CHECK_INT(0, em_spawn(napper, em_pid(em_self()), NULL));
    /* Exchanges while the nappers' timers come due. */
    int napped = 0;
    long i = 0;
    while (napped < 8) {
        exchange(e, i, 100);
        i += 100;
        em_term m;
        while (em_receive(&m, 0) == 0) {
            if (em_is_atom(m, "napped"))
                napped++;
            else
                CHECK_FAIL("root: an unexpected message");
        }
    }
    em_send(e, em_atom("stop"));
}

static void test_timeouts_across_solo(void **state)
{
    (void)state;
    run_root(2, root_timers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pair_alone_enters_solo),
        cmocka_unit_test(test_wakes_end_solo_and_lose_nothing),
        cmocka_unit_test(test_lingering_owner_meets_wakers),
        cmocka_unit_test(test_timeouts_across_solo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
