/*
 * ember_bench.c - ember's side of the anchor benchmarks in ../shared/anchors.
 *
 * Each workload does what anchors.erl does, message for message, and prints one
 * line in the anchors' format so the two can be set side by side:
 *   ember-bench spawn N | skynet N | ring N | pingpong N | link N | monitor N | all
 *   ember-bench dist N | distbulk N     (two nodes on loopback: bench_dist.c)
 * Options: -s SCHEDULERS (default: one per core); -w BUSY_WAIT_US, the nodes' busy
 * wait for dist and distbulk (em_dist_config; default 1,000); -H RING_HOPS, the
 * ring's hops (default 1,000,000, as in the anchor); -v, after the timed part, a
 * line per scheduler on stderr (stacks mapped, runs, steals) and one for solo mode,
 * to tell a slow run's cause from the machine's noise; -u, spawn's waiters each
 * keep a value of their own (their index) across the receive, so that no two
 * can share a saved stack image (runtime/stack/image.c): the cost of processes
 * whose frames differ, beside the anchors' identical ones.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ember.h"

static long param_n;
static em_term a_token, a_sum, a_ping, a_pong, a_stop, a_tail;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static int verbose;

/* -v: what the schedulers did, on stderr so the anchors' line stays alone on stdout. */
static void report(void)
{
    if (!verbose)
        return;
    em_system_info si;
    if (em_system_info_get(&si) != 0)
        return;
    fprintf(stderr, "  solo: entries=%llu revocations=%llu available=%d\n",
            (unsigned long long)si.solo_entries, (unsigned long long)si.solo_revocations,
            (int)si.solo_available);
    for (int i = 0; i < si.schedulers; i++) {
        em_sched_info in;
        if (em_scheduler_info(i, &in) == 0)
            fprintf(stderr, "  scheduler %d: stacks_mapped=%u runs=%llu steals=%llu busy=%.0f%%\n", i,
                    in.stacks_mapped, (unsigned long long)in.processes_run,
                    (unsigned long long)in.steals,
                    in.total_ns ? 100.0 * (double)in.busy_ns / (double)in.total_ns : 0.0);
    }
}

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "ember-bench: %s: %s\n", what, em_strerror(rc));
        exit(1);
    }
}

/* ----------------------------------------------------------------- spawn */

/* How many waiters have run, counted per scheduler thread: one shared counter
 * bounced its cache line between the cores on every first run, a cost of the
 * benchmark, not of a spawn. */
#define COUNT_SLOTS 64
static struct {
    _Alignas(64) atomic_long n;
} run_counts[COUNT_SLOTS];
static atomic_int count_slots_used;
static _Thread_local atomic_long *my_count;

static void waiter(em_term arg)
{
    (void)arg;
    em_term m;
    if (!my_count) {
        /* Relaxed: a slot index; the counts themselves are read below. */
        int k = atomic_fetch_add_explicit(&count_slots_used, 1, memory_order_relaxed);
        my_count = &run_counts[k % COUNT_SLOTS].n;
    }
    /* Relaxed: the root only needs the sum to reach N eventually. */
    atomic_fetch_add_explicit(my_count, 1, memory_order_relaxed);
    em_receive(&m, EM_INFINITY);
}

/* -u: a waiter whose frames are its own. */
static int unique_waiters;

static void waiter_own(em_term arg)
{
    volatile int64_t mine = 0;
    em_get_int(arg, (int64_t *)&mine);
    waiter(EM_NIL);
    if (mine < 0)
        abort();   /* never: keeps `mine` live across the receive */
}

static long waiters_run(void)
{
    long sum = 0;
    for (int k = 0; k < COUNT_SLOTS; k++)
        sum += atomic_load_explicit(&run_counts[k].n, memory_order_relaxed);
    return sum;
}

static void bench_spawn(em_term arg)
{
    (void)arg;
    long n = param_n;
    em_pid_t *pids = malloc((size_t)n * sizeof *pids);
    long r0 = rss_kb();
    uint64_t t0 = now_us();
    if (unique_waiters)
        for (long i = 0; i < n; i++)
            check(em_spawn(waiter_own, em_int(i), &pids[i]), "spawn");
    else
        for (long i = 0; i < n; i++)
            check(em_spawn(waiter, EM_NIL, &pids[i]), "spawn");
    uint64_t t_loop = now_us();
    /* Unlike the anchors, which stop the clock when the spawn loop ends, wait
     * until every process has run and parked in receive: the cost of a process
     * includes its first run and its saved stack. */
    while (waiters_run() < n)
        em_yield();
    uint64_t t1 = now_us();
    em_sleep(1); /* let the other scheduler park its last processes */
    long r1 = rss_kb() - (long)((uint64_t)n * sizeof *pids / 1024);
    for (long i = 0; i < n; i++)
        em_send(pids[i], a_stop);
    free(pids);
    printf("spawn n=%ld us_total=%llu ns_per_spawn=%llu bytes_per_proc=%ld us_loop=%llu\n", n,
           (unsigned long long)(t1 - t0), (unsigned long long)((t1 - t0) * 1000 / (uint64_t)n),
           (r1 - r0) * 1024 / n, (unsigned long long)(t_loop - t0));
    report();
}

/* ---------------------------------------------------------------- skynet */

static void skynet(em_term arg)
{
    em_pid_t parent;
    int64_t num, size;
    em_get_pid(em_at(arg, 0), &parent);
    em_get_int(em_at(arg, 1), &num);
    em_get_int(em_at(arg, 2), &size);
    if (size == 1) {
        EM_SEND_ARR(parent, a_sum, em_int(num));
        return;
    }
    int64_t sub = size / 10;
    em_term self = em_pid(em_self());
    for (int64_t i = 0; i < 10; i++)
        check(em_spawn(skynet, EM_ARR(self, em_int(num + i * sub), em_int(sub)), NULL), "spawn");
    int64_t total = 0;
    for (int i = 0; i < 10; i++) {
        em_term m;
        int64_t v;
        em_receive(&m, EM_INFINITY);
        em_get_int(em_at(m, 1), &v);
        total += v;
    }
    EM_SEND_ARR(parent, a_sum, em_int(total));
}

static void bench_skynet(em_term arg)
{
    (void)arg;
    uint64_t t0 = now_us();
    check(em_spawn(skynet, EM_ARR(em_pid(em_self()), em_int(0), em_int(param_n)), NULL), "spawn");
    em_term m;
    int64_t sum = 0;
    em_receive(&m, EM_INFINITY);
    em_get_int(em_at(m, 1), &sum);
    uint64_t t1 = now_us();
    printf("skynet n=%ld sum=%lld us_total=%llu\n", param_n, (long long)sum,
           (unsigned long long)(t1 - t0));
    report();
}

/* ------------------------------------------------------------------ ring */

/* The anchors' ring makes 1,000,000 hops; -H changes it, to separate the first
 * lap (every process's first run) from the laps after it. */
static long ring_hops = 1000000;

/* Receive {token, K}; pass {token, K-1} on, or {token, 0} and stop. */
static void ring_node(em_term arg)
{
    em_pid_t next;
    em_get_pid(arg, &next);
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        int64_t k;
        em_receive(&m, EM_INFINITY);
        em_get_int(em_at(m, 1), &k);
        if (k == 0) {
            em_send(next, m);
            return;
        }
        EM_SEND_ARR(next, a_token, em_int(k - 1));
        em_heap_release(mk);
    }
}

static void bench_ring(em_term arg)
{
    (void)arg;
    uint64_t t0 = now_us();
    em_pid_t next = em_self();
    for (long i = 0; i < param_n; i++)
        check(em_spawn(ring_node, em_pid(next), &next), "spawn");
    uint64_t t1 = now_us();
    em_pid_t first = next;
    EM_SEND_ARR(first, a_token, em_int(ring_hops));
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        int64_t k;
        em_receive(&m, EM_INFINITY);
        em_get_int(em_at(m, 1), &k);
        if (k == 0)
            break;
        EM_SEND_ARR(first, a_token, em_int(k - 1));
        em_heap_release(mk);
    }
    uint64_t t2 = now_us();
    printf("ring n=%ld hops=%ld us_build=%llu us_hops=%llu ns_per_hop=%llu\n", param_n, ring_hops,
           (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
           (unsigned long long)((t2 - t1) * 1000 / (uint64_t)ring_hops));
    report();
    /* Nodes between the first and the one that saw 0 still wait, as in the
     * anchor: stop the node rather than collect them. */
    em_halt(0);
}

/* -------------------------------------------------------------- pingpong */

static void pong(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        em_receive(&m, EM_INFINITY);
        if (m == a_stop)
            return;
        if (em_get_pid(em_at(m, 1), &from))
            em_send(from, a_pong);
        em_heap_release(mk);
    }
}

static void bench_pingpong(em_term arg)
{
    (void)arg;
    em_pid_t p;
    check(em_spawn(pong, EM_NIL, &p), "spawn");
    em_term ping = EM_ARR(a_ping, em_pid(em_self()));
    uint64_t t0 = now_us();
    for (long i = 0; i < param_n; i++) {
        em_term m;
        em_send(p, ping);
        em_receive(&m, EM_INFINITY);
    }
    uint64_t t1 = now_us();
    em_send(p, a_stop);
    printf("pingpong roundtrips=%ld us_total=%llu ns_per_roundtrip=%llu\n", param_n,
           (unsigned long long)(t1 - t0), (unsigned long long)((t1 - t0) * 1000 / (uint64_t)param_n));
    report();
}

/* ------------------------------------------------------------------ link */

/* A chain of linked processes: each spawn-links the next, the last tells the root. */
static void chain(em_term arg)
{
    int64_t k = 0;
    em_pid_t top = 0, next;
    em_get_int(em_at(arg, 0), &k);
    em_get_pid(em_at(arg, 1), &top);
    if (k == 0)
        EM_SEND_ARR(top, a_tail, em_pid(em_self()));
    else
        check(em_spawn_link(chain, EM_ARR(em_int(k - 1), em_pid(top)), &next), "spawn_link");
    em_sleep(EM_INFINITY);
}

static void bench_link(em_term arg)
{
    (void)arg;
    em_pid_t head, tail = 0;
    uint64_t t0 = now_us();
    check(em_spawn(chain, EM_ARR(em_int(param_n - 1), em_pid(em_self())), &head), "spawn");
    check(em_receive_match(NULL, EM_INFINITY, "[tail, ~p]", &tail), "receive");
    uint64_t t1 = now_us();
    em_term ref;
    check(em_monitor(tail, &ref), "monitor");
    check(em_exit_pid(head, em_atom("boom")), "exit");
    check(em_receive_match(NULL, EM_INFINITY, "['DOWN', _, process, _, _]"), "receive");
    uint64_t t2 = now_us();
    printf("link n=%ld us_build=%llu us_propagate=%llu ns_per_link=%llu\n", param_n,
           (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
           (unsigned long long)((t2 - t1) * 1000 / (uint64_t)param_n));
}

/* --------------------------------------------------------------- monitor */

static void bench_monitor(em_term arg)
{
    (void)arg;
    em_pid_t *pids = malloc((size_t)param_n * sizeof *pids);
    if (!pids)
        check(EM_ENOMEM, "malloc");
    for (long i = 0; i < param_n; i++)
        check(em_spawn(waiter, EM_NIL, &pids[i]), "spawn");
    uint64_t t0 = now_us();
    em_mark mark = em_heap_mark();
    for (long i = 0; i < param_n; i++)
        check(em_monitor(pids[i], NULL), "monitor");
    em_heap_release(mark);   /* the refs: the root does not keep them */
    uint64_t t1 = now_us();
    for (long i = 0; i < param_n; i++)
        em_send(pids[i], a_stop);
    for (long i = 0; i < param_n; i++) {
        mark = em_heap_mark();
        check(em_receive(NULL, EM_INFINITY), "receive");
        em_heap_release(mark);
    }
    uint64_t t2 = now_us();
    free(pids);
    printf("monitor n=%ld us_set=%llu us_fire=%llu ns_per_monitor=%llu\n", param_n,
           (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1),
           (unsigned long long)((t2 - t0) * 1000 / (uint64_t)param_n));
}

/* ------------------------------------------------------------------ main */

static int usage(void)
{
    fprintf(stderr, "usage: ember-bench [-v] [-u] [-s SCHEDULERS] [-H RING_HOPS] spawn|skynet|ring|pingpong|link|monitor N\n"
                    "       ember-bench [-s SCHEDULERS] [-w BUSY_WAIT_US] dist|distbulk N\n"
                    "       ember-bench [-s SCHEDULERS] all [N]\n");
    return 2;
}

static int busy_wait_us = -1;   /* -w: the nodes' busy wait; -1 the default */

static int run_one(const char *name, long n, int scheds)
{
    if ((!strcmp(name, "dist") || !strcmp(name, "distbulk")) && n > 0)
        return bench_dist_run(name, n, scheds, busy_wait_us);
    em_proc_fn fn = NULL;
    if (!strcmp(name, "spawn"))
        fn = bench_spawn;
    else if (!strcmp(name, "skynet"))
        fn = bench_skynet;
    else if (!strcmp(name, "ring"))
        fn = bench_ring;
    else if (!strcmp(name, "pingpong"))
        fn = bench_pingpong;
    else if (!strcmp(name, "link"))
        fn = bench_link;
    else if (!strcmp(name, "monitor"))
        fn = bench_monitor;
    if (!fn || n <= 0)
        return usage();
    param_n = n;
    for (int k = 0; k < COUNT_SLOTS; k++)
        atomic_store(&run_counts[k].n, 0);
    atomic_store(&count_slots_used, 0);
    em_config cfg;
    em_config_init(&cfg);
    cfg.schedulers = scheds;
    int rc = em_run(&cfg, fn, EM_NIL);
    fflush(stdout);
    return rc < 0 ? 1 : rc;
}

int main(int argc, char **argv)
{
    int scheds = 0, opt;
    while ((opt = getopt(argc, argv, "s:w:H:vu")) != -1) {
        if (opt == 's')
            scheds = atoi(optarg);
        else if (opt == 'w')
            busy_wait_us = atoi(optarg);
        else if (opt == 'H' && atol(optarg) > 0)
            ring_hops = atol(optarg);
        else if (opt == 'v')
            verbose = 1;
        else if (opt == 'u')
            unique_waiters = 1;
        else
            return usage();
    }
    if (optind >= argc)
        return usage();
    a_token = em_atom("token");
    a_sum = em_atom("sum");
    a_ping = em_atom("ping");
    a_pong = em_atom("pong");
    a_stop = em_atom("stop");
    a_tail = em_atom("tail");
    const char *bench = argv[optind];
    if (!strcmp(bench, "all")) {
        long n = optind + 1 < argc ? atol(argv[optind + 1]) : 1000000;
        int rc = 0;
        rc |= run_one("spawn", n, scheds);
        rc |= run_one("skynet", 1000000, scheds);
        rc |= run_one("ring", 1000, scheds);
        rc |= run_one("pingpong", n, scheds);
        rc |= run_one("link", n, scheds);
        rc |= run_one("monitor", n, scheds);
        return rc;
    }
    if (optind + 1 >= argc)
        return usage();
    return run_one(bench, atol(argv[optind + 1]), scheds);
}
