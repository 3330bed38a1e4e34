/*
 * test_chaos.c - a supervision tree under random crashes: 100,000 workers under
 * 100 one_for_one supervisors (under one top supervisor) crash at random for 60 s
 * (sizes and time divided by EMBER_STRESS_SCALE; at least 3 s). Workers end
 * themselves with random reasons, normal included, and chaos processes kill them
 * or tell them to crash.
 *
 * What must hold: the node stays up; every crash is restarted exactly once (the
 * workers' start count ends equal to the initial starts plus the crashes caused);
 * the tree is whole at the end (every worker alive and known to its supervisor,
 * no supervisor restarted); and the memory returns to within 10% of what it was
 * once the tree had first been built.
 *
 * Which memory: the resident set (em_system_info's memory_total) in plain
 * builds, with 20 MiB of slack (SLACK says why, and what was measured); a
 * scaled-down plain run needs as much, since the runtime's bounded caches
 * (per-thread object pools and their shared depot) are not scaled down, and
 * fill up to a few MiB under any churn. Under a sanitizer the resident set
 * says little (AddressSanitizer dirties shadow memory for every stack address
 * it has seen, about 80 MiB here, and both keep freed memory), so those builds
 * check the bytes the sanitizer's allocator has handed out and not taken back.
 *
 * Exactly-once counting: each incarnation of worker g publishes its pid in
 * slot[g]. Whoever ends it first claims it by swapping that pid for 0 (the
 * worker before ending itself, a chaos process before killing it), and counts
 * the crash; the loser leaves it alone. So each incarnation is counted once and
 * ends once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "check.h"
#include "core/sanitize.h"
#include "ember.h"

#define SCALE EMBER_STRESS_SCALE
#define TOTAL (100000 / SCALE)
#define SUPS (TOTAL >= 10000 ? 100 : 10)
#define PER (TOTAL / SUPS)
#define CHAOS_MS (60000 / SCALE > 3000 ? 60000 / SCALE : 3000)
/* A worker's mean life while chaos is on: about 20,000 self-inflicted crashes a
 * second over the whole tree at full size. */
#define MEAN_LIFE_MS (5000 / SCALE > 50 ? 5000 / SCALE : 50)
#define CHAOS_PROCS 2
#define CHAOS_BATCH 50       /* targets per round of a chaos process */
#define SETTLE_MS 60000

/* Shared counters and flags are accessed seq_cst (a test favours obviously
 * correct ordering over speed), except the kills figure, which is only printed. */
static _Atomic em_pid_t slot[TOTAL];
static atomic_long starts, crashes, kills;
static atomic_int chaos_on;
static char ids[PER][8];

static uint64_t next_rand(uint64_t *s)
{
    /* xorshift64*: the state lives on the process's stack, not in a thread. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static em_term random_reason(uint64_t *rng)
{
    switch (next_rand(rng) % 6) {
    case 0: return em_atom("normal");   /* permanent: restarted all the same */
    case 1: return em_atom("shutdown");
    case 2: return em_atom("boom");
    case 3: return EM_ARR(em_atom("error"), em_int((int64_t)(next_rand(rng) % 1000)));
    case 4: return em_str("a crash with a reason that is a string");
    default: {
        em_term kv[2] = {em_atom("why"), em_atom("chaos")};
        return em_map(1, kv);
    }
    }
}

/* ---------------------------------------------------------------- workers */

static void worker(em_term arg)
{
    int64_t g;
    if (!em_get_int(arg, &g) || g < 0 || g >= TOTAL) {
        CHECK_FAIL("worker: bad arg");
        return;
    }
    em_pid_t self = em_self();
    uint64_t rng = (uint64_t)self * 0x9E3779B97F4A7C15ull | 1;
    /* seq_cst: the pid is published before the start is counted, and the test's
     * final comparison reads both. */
    atomic_store_explicit(&slot[g], self, memory_order_seq_cst);
    atomic_fetch_add_explicit(&starts, 1, memory_order_seq_cst);
    em_mark top = em_heap_mark();
    for (;;) {
        /* seq_cst: pairs with the root's store that ends the chaos. */
        bool on = atomic_load_explicit(&chaos_on, memory_order_seq_cst);
        int64_t timeout = on ? 1 + (int64_t)(next_rand(&rng) % (2 * MEAN_LIFE_MS)) : EM_INFINITY;
        em_term m;
        int rc = em_receive(&m, timeout);
        bool crash_now = rc == EM_ETIMEDOUT || (rc == 0 && em_is_atom(m, "crash"));
        em_heap_release(top);
        if (!crash_now || !atomic_load_explicit(&chaos_on, memory_order_seq_cst))
            continue;
        em_pid_t expect = self;
        /* seq_cst: the claim races with a chaos process's claim on the same slot. */
        if (!atomic_compare_exchange_strong_explicit(&slot[g], &expect, 0, memory_order_seq_cst,
                                                     memory_order_seq_cst))
            continue;   /* a chaos process claimed us: its kill is on the way */
        atomic_fetch_add_explicit(&crashes, 1, memory_order_seq_cst);
        em_exit(random_reason(&rng));
    }
}

/* ---------------------------------------------------------------- chaos */

static void chaos(em_term arg)
{
    int64_t seed;
    CHECK(em_get_int(arg, &seed));
    uint64_t rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull | 1;
    em_term kill = em_atom("kill"), crash = em_atom("crash");
    while (atomic_load_explicit(&chaos_on, memory_order_seq_cst)) {
        for (int i = 0; i < CHAOS_BATCH; i++) {
            size_t g = (size_t)(next_rand(&rng) % TOTAL);
            em_pid_t pid = atomic_load_explicit(&slot[g], memory_order_seq_cst);
            if (!pid)
                continue;   /* between two incarnations */
            if (next_rand(&rng) & 1) {
                em_send(pid, crash);
                continue;
            }
            if (!atomic_compare_exchange_strong_explicit(&slot[g], &pid, 0, memory_order_seq_cst,
                                                         memory_order_seq_cst))
                continue;   /* it ended itself meanwhile */
            CHECK_INT(0, em_exit_pid(pid, kill));
            atomic_fetch_add_explicit(&crashes, 1, memory_order_seq_cst);
            atomic_fetch_add_explicit(&kills, 1, memory_order_relaxed);   /* a figure */
        }
        em_sleep(2);
    }
}

/* ---------------------------------------------------------------- the tree */


#ifdef EMI_SANITIZED
/* From the sanitizers' common allocator interface (its header is not shipped
 * with every compiler). */
size_t __sanitizer_get_current_allocated_bytes(void);
#define MEMORY_WHAT "allocated"
#define SLACK 0
#else
#define MEMORY_WHAT "RSS"
/* Some tables keep the size the chaos gave them, by design: a scheduler's timer
 * table holds a slot per pending timer and never moves them (a timer's reference
 * names its slot). At 52 bytes a slot, doubling, it ends at 3.25 MiB for 65,536
 * slots or 6.5 MiB for 131,072 on each of the two schedulers, depending on how
 * the 100,000 waiting workers happened to be spread between them: several MiB
 * that differ from run to run. The execution stacks stay touched as deep as the
 * crashes went (1.5 MiB more), and the runtime's bounded caches hold a few MiB.
 *
 * Measured (plain build, 11 runs on a loaded 2-core machine): 14.4 to 22.8 MiB
 * more after the chaos than after building (115.9-119.0 MiB, then 131.6-140.5),
 * most runs 15-19. With 8 MiB of slack the limit sat only 1.2 to 5.1 MiB above
 * that (5 runs), at worst less than one timer table's doubling, and the 22.8 of
 * a later run would have failed it; with 16 MiB, 8.2 to 11.9 MiB above (3 runs);
 * with 20 MiB, 9.0 to 17.5 (3 runs). A leak per crash would still show: 3.3 to
 * 3.6 million crashes here, so 8 bytes each would add 25 MiB or more to the
 * 14-23 measured, past the limit of about 32 MiB over what the tree took.
 *
 * Why not compare rounds of chaos with each other instead: when this was
 * written, the resident set rose with each round of waking every worker and
 * letting the node go idle, by about 2 MiB a round with no crash at all and
 * about 3 MiB with 330,000 (10 rounds each way, no sign of levelling off).
 * Part of that was the schedulers' caches, which now go back at every sleep
 * (test_pool's test_rounds_of_messages_do_not_grow_memory checks the pool's
 * runs round after round); the resident set of rounds with crashes has not
 * been measured again. */
#define SLACK ((size_t)20 << 20)
#endif

static size_t memory_bytes(void)
{
#ifdef EMI_SANITIZED
    return __sanitizer_get_current_allocated_bytes();
#else
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    return si.memory_total;
#endif
}

/* Every worker of every inner supervisor is running, and is the one in its slot. */
static bool tree_whole(em_pid_t top, const em_pid_t *inner0, bool report)
{
    static em_child_info ci[PER > SUPS ? PER : SUPS];
    size_t count = 0;
    int rc = em_supervisor_which_children(top, ci, SUPS, &count, 10000);
    if (rc != 0 || count != SUPS) {
        if (report)
            CHECK_FAIL("top which_children: rc %d, %zu children (expected %d)", rc, count, SUPS);
        return false;
    }
    em_pid_t inner[SUPS];
    for (int s = 0; s < SUPS; s++) {
        inner[s] = ci[s].pid;
        if (inner0 && inner[s] != inner0[s]) {
            if (report)
                CHECK_FAIL("supervisor %d was restarted", s);
            return false;
        }
    }
    for (int s = 0; s < SUPS; s++) {
        rc = em_supervisor_which_children(inner[s], ci, PER, &count, 10000);
        if (rc != 0 || count != PER) {
            if (report)
                CHECK_FAIL("supervisor %d: rc %d, %zu children (expected %d)", s, rc, count, PER);
            return false;
        }
        for (int i = 0; i < PER; i++) {
            em_pid_t want = atomic_load_explicit(&slot[s * PER + i], memory_order_seq_cst);
            if (!ci[i].pid || ci[i].pid != want || !em_is_alive(ci[i].pid)) {
                if (report)
                    CHECK_FAIL("worker %d of supervisor %d: pid %llu, slot %llu, alive %d", i, s,
                               (unsigned long long)ci[i].pid, (unsigned long long)want,
                               em_is_alive(ci[i].pid));
                return false;
            }
        }
    }
    return true;
}

static void root_chaos(em_term arg)
{
    (void)arg;
    for (int i = 0; i < PER; i++)
        snprintf(ids[i], sizeof ids[i], "w%d", i);
    em_sup_flags wf, tf;
    em_sup_flags_init(&wf);
    wf.intensity = 1000000000;   /* never give up */
    wf.period_ms = 1000;
    em_sup_flags_init(&tf);
    tf.intensity = 0;            /* an inner supervisor must never end */

    /* Build the specs: SUPS inner supervisors of PER workers each. */
    em_child_spec *ws = malloc(PER * sizeof *ws);
    em_child_spec top_specs[SUPS];
    static char sup_ids[SUPS][8];
    em_mark mark = em_heap_mark();   /* the specs' terms go once the tree is up */
    for (int s = 0; s < SUPS; s++) {
        for (int i = 0; i < PER; i++)
            ws[i] = (em_child_spec){.id = ids[i], .start = worker, .arg = em_int(s * PER + i),
                                    .shutdown_ms = EM_BRUTAL_KILL};
        snprintf(sup_ids[s], sizeof sup_ids[s], "s%d", s);
        top_specs[s] = (em_child_spec){.id = sup_ids[s], .start = em_supervisor_main,
                                       .supervisor = true};
        CHECK_INT(0, em_supervisor_arg(&wf, ws, PER, &top_specs[s].arg));
    }
    free(ws);
    em_pid_t top;
    int64_t t0 = em_now_ms();
    CHECK_INT(0, em_supervisor_start_link(&tf, top_specs, SUPS, &top));
    em_heap_release(mark);
    while (atomic_load_explicit(&starts, memory_order_seq_cst) < TOTAL)
        em_sleep(1);
    int64_t built_ms = em_now_ms() - t0;
    static em_child_info tci[SUPS];
    size_t count;
    CHECK_INT(0, em_supervisor_which_children(top, tci, SUPS, &count, 10000));
    em_pid_t inner0[SUPS];
    for (int s = 0; s < SUPS; s++)
        inner0[s] = tci[s].pid;
    CHECK(tree_whole(top, inner0, true));
    em_sleep(200);
    size_t mem0 = memory_bytes();

    /* Chaos. Every worker is woken so that it starts counting down its life. */
    atomic_store_explicit(&chaos_on, 1, memory_order_seq_cst);
    for (int g = 0; g < TOTAL; g++)
        em_send(atomic_load_explicit(&slot[g], memory_order_seq_cst), em_atom("go"));
    em_pid_t cp[CHAOS_PROCS];
    em_term cref[CHAOS_PROCS];
    for (int i = 0; i < CHAOS_PROCS; i++)
        CHECK_INT(0, em_spawn_monitor(chaos, em_int(i + 1), &cp[i], &cref[i]));
    em_sleep(CHAOS_MS);
    atomic_store_explicit(&chaos_on, 0, memory_order_seq_cst);
    /* A chaos process ends within one batch once it sees the flag; the wait is
     * long only so that a loaded machine cannot fail it. */
    for (int i = 0; i < CHAOS_PROCS; i++)
        CHECK_INT(0, em_receive_match(NULL, 60000, "['DOWN', _, process, _, normal]"));

    /* Settle: wake every worker so it sees the chaos is over, then wait until
     * every crash has been restarted and the count holds still. */
    for (int g = 0; g < TOTAL; g++) {
        em_pid_t p = atomic_load_explicit(&slot[g], memory_order_seq_cst);
        if (p)
            em_send(p, em_atom("calm"));
    }
    int64_t t1 = em_now_ms(), stable_since = -1;
    long s = 0, c = 0;
    while (em_now_ms() - t1 < SETTLE_MS) {
        s = atomic_load_explicit(&starts, memory_order_seq_cst);
        c = atomic_load_explicit(&crashes, memory_order_seq_cst);
        if (s == TOTAL + c) {
            if (stable_since < 0)
                stable_since = em_now_ms();
            else if (em_now_ms() - stable_since >= 500)
                break;
        } else {
            stable_since = -1;
        }
        em_sleep(10);
    }
    if (s != TOTAL + c)
        CHECK_FAIL("starts: expected %d + %ld crashes = %ld, got %ld", TOTAL, c, TOTAL + c, s);
    CHECK(c > 0);
    CHECK(tree_whole(top, inner0, true));
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    CHECK_INT(2 + SUPS + TOTAL, si.process_count);

    /* Memory: what the crashes took has come back. An idle node gives free
     * memory back to the system at most once a second, so wait for that by
     * time (10 s, many chances even on a loaded machine) rather than by a count
     * of readings; memory that stays over the limit still fails. */
    size_t mem1 = 0, limit = mem0 + mem0 / 10 + SLACK;
    for (int64_t end = em_now_ms() + 10000;;) {
        em_sleep(100);
        mem1 = memory_bytes();
        if (mem1 <= limit || em_now_ms() >= end)
            break;
    }
    printf("chaos: %d workers under %d supervisors, built in %lld ms; %ld crashes in %d ms "
           "(%ld kills); %s %.1f MiB after building, %.1f MiB after the chaos (limit %.1f MiB)\n",
           TOTAL, SUPS, (long long)built_ms, c, CHAOS_MS,
           atomic_load_explicit(&kills, memory_order_relaxed), MEMORY_WHAT, mem0 / 1048576.0,
           mem1 / 1048576.0, limit / 1048576.0);
    if (mem1 > limit)
        CHECK_FAIL("%s: %zu bytes after the chaos, over the limit of %zu (%zu after building)",
                   MEMORY_WHAT, mem1, limit, mem0);

    CHECK_INT(0, em_supervisor_stop(top, 60000));
    /* The workers' slots may still be on their way back when the stop returns:
     * wait for them by time (30 s), not by a count of 1 ms sleeps, so that a
     * slow machine cannot fail this. */
    CHECK_INT(0, em_system_info_get(&si));
    for (int64_t end = em_now_ms() + 30000; si.process_count > 1 && em_now_ms() < end;) {
        em_sleep(1);
        CHECK_INT(0, em_system_info_get(&si));
    }
    CHECK_INT(1, si.process_count);
}

static void test_chaos(void **state)
{
    (void)state;
    /* Relaxed: no scheduler thread runs yet; starting them orders these stores. */
    atomic_store_explicit(&starts, 0, memory_order_relaxed);
    atomic_store_explicit(&crashes, 0, memory_order_relaxed);
    atomic_store_explicit(&kills, 0, memory_order_relaxed);
    run_root(2, root_chaos);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chaos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
