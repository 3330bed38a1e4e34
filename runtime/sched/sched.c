/*
 * sched.c - the scheduler threads: run queues, work stealing, running a process,
 * parking it, and sleeping when there is nothing to do.
 *
 * Each scheduler has a bounded ring of runnable processes that only it pushes to
 * and that idle schedulers steal half of, plus a `runnext` slot that is not
 * stealable: a process woken by a message from the running process goes there and
 * runs next on the same core, inheriting the slice, so a request-reply pair or a
 * token ring never pays a cross-core hand-off (runtime-notes.md: 28 ns per cache
 * line, microseconds per futex wake). A process pushed out of runnext goes to an
 * owner-only LIFO (spawn trees unfold depth first); a waiting process hands its
 * core straight to runnext. A ring that overflows spills half to the global queue.
 * Schedulers with nothing to do spin briefly, then sleep on a futex until work or
 * their next timer.
 */
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/rt.h"
#include "mem/pool.h"

#define SPIN_NS 50000u            /* spin this long before sleeping */
#define SPIN_DIST_NS 0u           /* ... while distribution runs */
#define GLOBAL_CHECK_EVERY 61     /* look at the global queue first this often */
#define PINNED_TURN_EVERY 32      /* a preempted process's turn comes this often */

static void futex_wait(atomic_uint *addr, unsigned val, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAIT_PRIVATE, val, tsp, NULL, 0);
}

static void futex_wake(atomic_uint *addr)
{
    syscall(SYS_futex, (unsigned *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* ---------------------------------------------------------------- global queue */

static void global_push_list(emi_rt *rt, emi_proc *first, emi_proc *last, size_t n)
{
    last->qnext = NULL;
    pthread_mutex_lock(&rt->gq_lock);
    if (rt->gq_tail)
        rt->gq_tail->qnext = first;
    else
        rt->gq_head = first;
    rt->gq_tail = last;
    /* Relaxed: read as a hint; the lock orders the list itself. */
    atomic_fetch_add_explicit(&rt->gq_len, n, memory_order_relaxed);
    pthread_mutex_unlock(&rt->gq_lock);
}

/* Take up to half the global queue (at most a ring's worth) into s's ring. */
static emi_proc *global_take(emi_rt *rt, emi_sched *s)
{
    if (atomic_load_explicit(&rt->gq_len, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&rt->gq_lock);
    size_t len = atomic_load_explicit(&rt->gq_len, memory_order_relaxed);
    size_t n = len / rt->nsched + 1;
    if (n > len)
        n = len;
    if (n > EMI_RUNQ_SIZE / 2)
        n = EMI_RUNQ_SIZE / 2;
    /* Only as many as the ring has room for, plus the one we return. */
    unsigned used = atomic_load_explicit(&s->runq_tail, memory_order_relaxed) -
                    atomic_load_explicit(&s->runq_head, memory_order_acquire);
    if (n > EMI_RUNQ_SIZE - used + 1)
        n = EMI_RUNQ_SIZE - used + 1;
    emi_proc *first = rt->gq_head;
    for (size_t i = 0; i < n; i++) {
        emi_proc *p = rt->gq_head;
        rt->gq_head = p->qnext;
        if (i > 0) {
            unsigned t = atomic_load_explicit(&s->runq_tail, memory_order_relaxed);
            atomic_store_explicit(&s->runq[t % EMI_RUNQ_SIZE], p, memory_order_relaxed);
            /* Release: thieves that see the new tail see the slot. */
            atomic_store_explicit(&s->runq_tail, t + 1, memory_order_release);
        }
    }
    if (!rt->gq_head)
        rt->gq_tail = NULL;
    atomic_fetch_sub_explicit(&rt->gq_len, n, memory_order_relaxed);
    pthread_mutex_unlock(&rt->gq_lock);
    return n ? first : NULL;
}

/* ------------------------------------------------------------------ local ring */

static emi_proc *runq_pop(emi_sched *s)
{
    /* Acquire pairs with thieves' CAS: slots they released are not reused early. */
    unsigned h = atomic_load_explicit(&s->runq_head, memory_order_acquire);
    for (;;) {
        unsigned t = atomic_load_explicit(&s->runq_tail, memory_order_relaxed);
        if (t == h)
            return NULL;
        emi_proc *p = atomic_load_explicit(&s->runq[h % EMI_RUNQ_SIZE], memory_order_relaxed);
        /* Release/acquire with thieves racing for the same slot. */
        if (atomic_compare_exchange_weak_explicit(&s->runq_head, &h, h + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return p;
    }
}

/* The ring is full: move half of it, and p, to the global queue. */
static bool runq_spill(emi_rt *rt, emi_sched *s, emi_proc *p, unsigned h)
{
    unsigned n = EMI_RUNQ_SIZE / 2;
    emi_proc *batch[EMI_RUNQ_SIZE / 2 + 1];
    for (unsigned i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&s->runq[(h + i) % EMI_RUNQ_SIZE], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&s->runq_head, &h, h + n, memory_order_acq_rel,
                                                 memory_order_acquire))
        return false; /* a thief took some: the ring has room now */
    batch[n] = p;
    for (unsigned i = 0; i < n; i++)
        batch[i]->qnext = batch[i + 1];
    global_push_list(rt, batch[0], p, n + 1);
    return true;
}

static void wake_if_needed(emi_rt *rt)
{
    /* seq_cst fence: our push must be visible before we read the sleeper count,
     * and a sleeper increments the count before it rechecks the queues (Dekker). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) > 0 &&
        atomic_load_explicit(&rt->n_spinning, memory_order_relaxed) == 0)
        emi_wake_idle();
}

/* Put p in s's ring, spilling half of a full ring to the global queue. */
static void runq_put(emi_rt *rt, emi_sched *s, emi_proc *p)
{
    for (;;) {
        unsigned h = atomic_load_explicit(&s->runq_head, memory_order_acquire);
        unsigned t = atomic_load_explicit(&s->runq_tail, memory_order_relaxed);
        if (t - h < EMI_RUNQ_SIZE) {
            atomic_store_explicit(&s->runq[t % EMI_RUNQ_SIZE], p, memory_order_relaxed);
            /* Release: a thief that reads the tail sees the slot. */
            atomic_store_explicit(&s->runq_tail, t + 1, memory_order_release);
            break;
        }
        if (runq_spill(rt, s, p, h))
            break;
    }
}

void emi_runq_push(emi_sched *s, emi_proc *p)
{
    emi_rt *rt = emi_rt_g;
    runq_put(rt, s, p);
    wake_if_needed(rt);
}

/* Steal half of victim's ring into s's (empty) ring; return one to run. */
static emi_proc *runq_steal(emi_sched *s, emi_sched *v)
{
    for (;;) {
        unsigned h = atomic_load_explicit(&v->runq_head, memory_order_acquire);
        unsigned t = atomic_load_explicit(&v->runq_tail, memory_order_acquire);
        unsigned n = t - h;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > EMI_RUNQ_SIZE / 2)
            continue; /* read a torn pair of indices: try again */
        unsigned st = atomic_load_explicit(&s->runq_tail, memory_order_relaxed);
        for (unsigned i = 0; i < n; i++) {
            emi_proc *p = atomic_load_explicit(&v->runq[(h + i) % EMI_RUNQ_SIZE], memory_order_relaxed);
            atomic_store_explicit(&s->runq[(st + i) % EMI_RUNQ_SIZE], p, memory_order_relaxed);
        }
        /* acq_rel: claim the slots we copied against the owner and other thieves. */
        if (!atomic_compare_exchange_strong_explicit(&v->runq_head, &h, h + n, memory_order_acq_rel,
                                                     memory_order_acquire))
            continue;
        emi_proc *last = atomic_load_explicit(&s->runq[(st + n - 1) % EMI_RUNQ_SIZE], memory_order_relaxed);
        if (n > 1)
            atomic_store_explicit(&s->runq_tail, st + n - 1, memory_order_release);
        emi_stat_add(&s->stat_steals, 1);
        return last;
    }
}

static emi_proc *steal_any(emi_rt *rt, emi_sched *s)
{
    if (rt->nsched == 1)
        return NULL;
    s->rand = s->rand * 1103515245u + 12345u;
    int start = (int)((s->rand >> 16) % (unsigned)rt->nsched);
    for (int i = 0; i < rt->nsched; i++) {
        emi_sched *v = rt->scheds[(start + i) % rt->nsched];
        if (v == s)
            continue;
        emi_proc *p = runq_steal(s, v);
        if (p)
            return p;
    }
    return NULL;
}

static bool stealable_work(emi_rt *rt, emi_sched *s)
{
    if (atomic_load_explicit(&rt->gq_len, memory_order_relaxed))
        return true;
    for (int i = 0; i < rt->nsched; i++) {
        emi_sched *v = rt->scheds[i];
        if (v == s)
            continue;
        unsigned h = atomic_load_explicit(&v->runq_head, memory_order_relaxed);
        unsigned t = atomic_load_explicit(&v->runq_tail, memory_order_relaxed);
        if (t != h)
            return true;
    }
    return false;
}

/* ------------------------------------------------------------------- waking */

void emi_wake_idle(void)
{
    emi_rt *rt = emi_rt_g;
    bool all = atomic_load_explicit(&rt->stopping, memory_order_relaxed);
    for (int i = 0; i < rt->nsched; i++) {
        emi_sched *v = rt->scheds[i];
        unsigned one = 1;
        /* The CAS picks exactly one waker per sleeper. */
        if (atomic_load_explicit(&v->sleeping, memory_order_relaxed) == 1 &&
            atomic_compare_exchange_strong_explicit(&v->sleeping, &one, 0, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            /* seq_cst: against the sleeper's store to `polling` then load of
             * `sleeping` (Dekker): one of us sees the other. */
            if (atomic_load_explicit(&v->polling, memory_order_seq_cst))
                emi_dist_poke(v);
            else
                futex_wake(&v->sleeping);
            if (!all)
                return;
        }
    }
}

/* The LIFO holds processes pushed out of runnext. Running the newest first makes
 * a tree of spawns unfold depth first (skynet keeps ~60 processes queued instead
 * of a breadth-first frontier of a million), with warm caches. It is owner-only;
 * its oldest entries move to the stealable ring when it fills and when another
 * scheduler is idle. So that nothing waits forever, the oldest entry runs first
 * once the LIFO has been non-empty for LIFO_FAIR_NS, and again after each
 * further LIFO_FAIR_NS that it stays non-empty.
 *
 * The bound is in time, not in turns: every 31st turn, as it was, started a
 * shallow node of a spawn tree early again and again, each a subtree of its own
 * queued beside the others, until the LIFO overflowed into the ring and the
 * global queue and both schedulers ran pieces of each other's trees (skynet on
 * 2 schedulers: 550 overflows, 43,000 runs on another scheduler than the last,
 * 279 ms; never: 160 ms). Each timed turn still starts a subtree beside those
 * under way, a few dozen more entries: with 256 slots skynet overflowed in about
 * one run in five, and the ring's turns on the overflow started subtree after
 * subtree (11,000 processes alive, every execution stack mapped and shared,
 * 290-400 ms); with 1,024 slots, in none of 32. */
#define LIFO_FAIR_NS 10000000u

static inline uint32_t lifo_len(const emi_sched *s) { return s->lifo_tail - s->lifo_head; }

/* Processes waiting in s's LIFO or ring (runnext aside). Owner only; the ring's
 * indices are read relaxed, as a thief may be taking from it. */
static bool queued(emi_sched *s)
{
    return lifo_len(s) || atomic_load_explicit(&s->runq_tail, memory_order_relaxed) !=
                              atomic_load_explicit(&s->runq_head, memory_order_relaxed);
}

static inline emi_proc *lifo_oldest(emi_sched *s) { return s->lifo[s->lifo_head++ % EMI_LIFO_SIZE]; }

static void lifo_push(emi_sched *s, emi_proc *p)
{
    if (lifo_len(s) == 0)
        s->lifo_since_ns = s->coarse_ns;
    if (lifo_len(s) == EMI_LIFO_SIZE)
        for (int i = 0; i < EMI_LIFO_SIZE / 2; i++)
            emi_runq_push(s, lifo_oldest(s));
    s->lifo[s->lifo_tail++ % EMI_LIFO_SIZE] = p;
}

static void displace_runnext(emi_sched *s, emi_proc *p)
{
    emi_rt *rt = emi_rt_g;
    emi_qmark(p, 1);
    emi_proc *old = s->runnext;
    s->runnext = p;
    if (!old)
        return;
    lifo_push(s, old);
    /* Relaxed: a hint; a missed idle peer only delays sharing until it steals. */
    if (rt->nsched > 1 && (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) ||
                           atomic_load_explicit(&rt->n_spinning, memory_order_relaxed)))
        emi_runq_push(s, lifo_oldest(s));
}

void emi_ready(emi_proc *p) { emi_ready_on(emi_sched_self(), p); }

void emi_ready_slow(emi_sched *s, emi_proc *p)
{
    atomic_store_explicit(&p->status, EM_RUNNABLE, memory_order_relaxed);
    if (!s) {
        emi_qmark(p, 1);
        global_push_list(emi_rt_g, p, p, 1);
        wake_if_needed(emi_rt_g);
        return;
    }
    /* The waker is about to block or go on; either way the woken process runs
     * here next, with warm caches. */
    displace_runnext(s, p);
}

/* A new process runs next on its spawner's scheduler, as Go does. */
void emi_ready_spawned(emi_sched *s, emi_proc *p)
{
    displace_runnext(s, p);
}

/* ----------------------------------------------------------------- running */

/* Inline: a hand-off parks the process it leaves on every hop of a ring. */
static inline __attribute__((always_inline)) void park(emi_sched *s, emi_proc *p)
{
    emi_block *e = NULL;
    /* Read before the CAS: once parked, the process belongs to whoever wakes it. */
    bool timed = emi_proc_flag(p, EMI_PF_TIMED);
    atomic_store_explicit(&p->status, EM_WAITING, memory_order_relaxed);
    /* Plain in solo mode (solo.c); there, a timer that fired already fired on
     * this thread, or on one that ended the mode first and finds SLEEP once
     * this operation is over. */
    bool plain = emi_mb_begin(s);
    bool wake = true;
    if (emi_mb_cas(&p->inbox, &e, EMI_INBOX_SLEEP, plain)) {
        /* A flag left from an earlier wait can only cause a spurious wake,
         * which receive absorbs by parking again. The timer fired before we
         * parked and could not wake us: do it here, unless a sender has
         * already. */
        e = EMI_INBOX_SLEEP;
        wake = timed && atomic_load_explicit(&p->timeout_fired, memory_order_seq_cst) &&
               emi_mb_cas(&p->inbox, &e, NULL, plain);
    }
    emi_mb_end(s);
    if (!wake)
        return;
    atomic_store_explicit(&p->status, EM_RUNNABLE, memory_order_relaxed);
    emi_ready(p);
}

/* A process about to wait switches straight to the one in runnext, skipping the
 * scheduler loop and one context switch: a request and its reply then cost one
 * switch each way. The waiting process cannot be parked before its registers are
 * saved, so the process that resumes parks it (emi_after_resume). The loop must
 * still run now and then, for timers, quiescent states and fairness. */
#define MAX_HANDOFFS 32

/* p gets the core of scheduler s. */
static inline __attribute__((always_inline)) void take_core(emi_sched *s, emi_proc *p)
{
    /* One writer; relaxed: the monitor only compares samples (preempt.c). */
    atomic_store_explicit(&s->run_epoch, atomic_load_explicit(&s->run_epoch, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    s->current = p;
    s->stack_floor = (uintptr_t)p->xs->lo + EMI_STACK_RESERVE;
    p->sched = s;
    atomic_store_explicit(&p->status, EM_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&p->sched_id, (unsigned char)s->id, memory_order_relaxed);
    emi_stat_add(&s->stat_runs, 1);
}

static void charge_current(emi_sched *s, emi_proc *p)
{
    atomic_store_explicit(&p->reductions,
                          atomic_load_explicit(&p->reductions, memory_order_relaxed) +
                              (uint64_t)(s->budget_mark - s->budget),
                          memory_order_relaxed);
    s->budget_mark = s->budget;
}

/* The process in runnext, given p's core for a hand-off, or NULL when p must
 * switch to the scheduler instead. The caller switches. */
static inline __attribute__((always_inline)) emi_proc *handoff_target(emi_proc *p)
{
    emi_sched *s = p->sched;
    emi_proc *q = s->runnext;
    if (!q || s->handoffs >= MAX_HANDOFFS || s->budget <= 0 ||
        atomic_load_explicit(&emi_rt_g->stopping, memory_order_relaxed) ||
        !(emi_stack_claim_resident(s, p, q) || emi_stack_handoff(s, p, q)))
        return NULL;
    s->runnext = NULL;
    emi_qmark(q, 0);
    s->handoffs++;
    charge_current(s, p);
    s->pending_park = p;
    take_core(s, q);
    return q;
}

void emi_park_pending(emi_sched *s)
{
    emi_proc *w = s->pending_park;
    s->pending_park = NULL;
    emi_stack_leave(s, w);
    park(s, w);
}

#ifdef EMBER_SEPARATE_STACKS
/* Here rather than in proc.c so that the hand-off, on every wait of a request
 * and its reply, is inline. The sanitizers' builds tell them of each switch
 * (stack.c), so the switch stays in a function of its own. */
void emi_switch_out(emi_proc *p, int why)
{
    p->why = (uint8_t)why;
    emi_proc *q = why == WHY_WAIT ? handoff_target(p) : NULL;
    if (q)
        emi_ctx_switch(&p->sp, q->sp);
    else
        emi_stack_switch_out(p);
    emi_after_resume(p->sched);
    if (why != WHY_EXIT)
        emi_signals_check(p);
}
#else
void *emi_switch_target(emi_proc *p, int why)
{
    p->why = (uint8_t)why;
    emi_proc *q = why == WHY_WAIT ? handoff_target(p) : NULL;
    return q ? q->sp : p->sched->sp;
}
#endif

static void pinned_push(emi_sched *s, emi_proc *p);

static void run(emi_rt *rt, emi_sched *s, emi_proc *p)
{
    emi_qmark(p, 0);
    if (emi_stack_enter(s, p) != 0) {
        /* Another scheduler runs a process on this one's stack: try later. */
        emi_stat_add(&s->stat_conflicts, 1);
        emi_qmark(p, 1);
        if (p->why == WHY_PREEMPT)
            pinned_push(s, p);   /* it must resume on this thread */
        else
            emi_runq_push(s, p);
        emi_cpu_relax();
        return;
    }
    s->budget_mark = s->budget;
    s->handoffs = 0;
    take_core(s, p);
    /* Relaxed: a sample for the monitor, which double-checks by epoch. */
    atomic_store_explicit(&s->in_proc, 1, memory_order_relaxed);
    emi_stack_switch_in(s, p);
    atomic_store_explicit(&s->in_proc, 0, memory_order_relaxed);
    /* After hand-offs, the process that came back is not the one we started. */
    p = s->current;
    s->current = NULL;
    charge_current(s, p);
    /* A slice that ran out, or was cut by the monitor, may have taken up to a
     * time slice: the LIFO's clock must not lag by 64 of them. */
    if (s->budget <= 0 || p->why == WHY_PREEMPT)
        s->coarse_ns = emi_now_ns();
    switch (p->why) {
    case WHY_YIELD:
        emi_stack_leave(s, p);
        atomic_store_explicit(&p->status, EM_RUNNABLE, memory_order_relaxed);
        emi_qmark(p, 1);
        /* A slice that ended inside a message exchange (it passed from one
         * process to another, by a hand-off or through runnext), with nothing
         * else queued here, gives an idle scheduler nothing to do in
         * parallel: the partner it would steal from waits for this one.
         * Waking it would only split the pair across cores for a while,
         * after a system call (pingpong on 2 schedulers: 84-88 ns a round
         * trip; on 1, or without the wake: 75). A slice that one process
         * burned alone, or other queued work, does wake it. */
        {
            bool shared = (s->handoffs || s->slice_shared) && !queued(s);
            runq_put(rt, s, p);
            if (!shared)
                wake_if_needed(rt);
        }
        break;
    case WHY_WAIT:
        emi_stack_leave(s, p);
        park(s, p);
        break;
    case WHY_PREEMPT:
        emi_stack_leave(s, p);
        atomic_store_explicit(&p->status, EM_RUNNABLE, memory_order_relaxed);
        emi_qmark(p, 1);
        pinned_push(s, p);
        break;
    case WHY_EXIT:
        emi_stack_vacate(s, p);   /* leaves the stack too */
        emi_proc_destroy(s, p);
        break;
    case WHY_HALT:
    default:
        emi_stack_leave(s, p);
        break;
    }
    (void)rt;
}

/* Preempted processes wait here, owner-only, for this thread (see preempt.c). */
static void pinned_push(emi_sched *s, emi_proc *p)
{
    /* Killers read it as a hint (preempt.c). */
    emi_proc_flag_set(p, EMI_PF_PINNED, true);
    p->qnext = NULL;
    if (s->pinned_tail)
        s->pinned_tail->qnext = p;
    else
        s->pinned_head = p;
    s->pinned_tail = p;
}

static emi_proc *pinned_take(emi_sched *s, emi_proc *prev, emi_proc *p)
{
    if (prev)
        prev->qnext = p->qnext;
    else
        s->pinned_head = p->qnext;
    if (s->pinned_tail == p)
        s->pinned_tail = prev;
    emi_proc_flag_set(p, EMI_PF_PINNED, false);
    return p;
}

static emi_proc *pinned_pop(emi_sched *s)
{
    return s->pinned_head ? pinned_take(s, NULL, s->pinned_head) : NULL;
}

/* A preempted process that was sent an exit signal runs first, so that a kill
 * ends it now rather than after the other spinners' slices. */
static emi_proc *pinned_signalled(emi_sched *s)
{
    /* Acquire pairs with the killer's release: its signal is in the inbox. */
    if (!s->pinned_head || !atomic_exchange_explicit(&s->pinned_kick, 0, memory_order_acquire))
        return NULL;
    for (emi_proc *prev = NULL, *p = s->pinned_head; p; prev = p, p = p->qnext)
        if (atomic_load_explicit(&p->sig_pending, memory_order_relaxed))
            return pinned_take(s, prev, p);
    return NULL;
}

/* A new slice: a full budget that no process has passed on yet. */
static inline void refill(emi_rt *rt, emi_sched *s)
{
    s->budget = (int32_t)rt->cfg.reductions;
    s->slice_shared = false;
}

static emi_proc *find_work(emi_rt *rt, emi_sched *s)
{
    emi_proc *p;
    /* A preempted process takes one turn in PINNED_TURN_EVERY when others wait:
     * spinning processes progress, and the rest (whose turns are short) wait for
     * a spinner's whole slice only that rarely. */
    if ((p = pinned_signalled(s)) ||
        (s->pinned_head && s->tick % PINNED_TURN_EVERY == 0 && (p = pinned_pop(s)))) {
        refill(rt, s);
        return p;
    }
    /* Now and then the queues that the local ones could starve go first: the
     * global queue (which a busy ring would starve) and the ring (which runnext
     * and the LIFO would). The ring waits while the LIFO is more than half full,
     * for at most LIFO_FAIR_NS: what the ring holds then is mostly what the
     * LIFO overflowed, the shallowest nodes of a spawn tree, and each one run
     * out of turn would queue a subtree of its own, overflow the LIFO again,
     * and so on (skynet: one run in eight fell into that, 540 overflows and
     * 338 ms instead of 205-230). */
    uint32_t phase = s->tick % GLOBAL_CHECK_EVERY;
    if (phase == 0 || phase == GLOBAL_CHECK_EVERY / 2) {
        /* The wait has its own clock: the LIFO's turn below resets
         * lifo_since_ns every LIFO_FAIR_NS, and with that clock the ring
         * waited until it overflowed into the global queue (256 slices). */
        bool low = lifo_len(s) <= EMI_LIFO_SIZE / 2;
        if (low)
            s->lifo_low_ns = s->coarse_ns;
        bool ring_turn = low || s->coarse_ns - s->lifo_low_ns >= LIFO_FAIR_NS;
        if ((phase == 0 && (p = global_take(rt, s))) || (ring_turn && (p = runq_pop(s)))) {
            refill(rt, s);
            return p;
        }
    }
    /* Before runnext: a chain of processes that each spawn or wake the next
     * one keeps runnext full and would otherwise never let the LIFO run. */
    if (lifo_len(s) && s->coarse_ns - s->lifo_since_ns >= LIFO_FAIR_NS) {
        s->lifo_since_ns = s->coarse_ns;
        refill(rt, s);
        return lifo_oldest(s);
    }
    if ((p = s->runnext)) {
        s->runnext = NULL;
        /* A process woken by the one that ran last takes the rest of its
         * slice, as on a hand-off. */
        if (s->budget <= 0)
            refill(rt, s);
        else
            s->slice_shared = true;
        return p;
    }
    if (lifo_len(s)) {
        refill(rt, s);
        return s->lifo[--s->lifo_tail % EMI_LIFO_SIZE];
    }
    if ((p = runq_pop(s)) || (p = global_take(rt, s)) || (p = steal_any(rt, s)) ||
        (p = pinned_pop(s))) {
        refill(rt, s);
        return p;
    }
    return NULL;
}

static bool timers_due(emi_sched *s)
{
    int64_t next = emi_timers_next(s);
    return next == 0;
}

/* The node is going quiet -- this is the last scheduler to fall asleep -- so give
 * memory kept for reuse back to the system, at most once a second (it costs
 * milliseconds, and a busy node would only allocate it again). */
static void trim_when_idle(emi_rt *rt)
{
    /* Relaxed: a hint; a trim a little early or late only costs time. */
    if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) + 1 < (unsigned)rt->nsched)
        return;
    uint64_t now = emi_now_ns();
    uint64_t last = atomic_load_explicit(&rt->last_trim_ns, memory_order_relaxed);
    /* Relaxed CAS: only elects one trimmer per second; nothing is published. */
    if (now - last > 1000000000u &&
        atomic_compare_exchange_strong_explicit(&rt->last_trim_ns, &last, now, memory_order_relaxed,
                                                memory_order_relaxed))
        emi_pool_depot_trim();
}

/* A scheduler about to sleep gives back the memory it keeps for speed: its
 * small message blocks and its thread's pool of freed objects (the depot trim
 * above cannot reach either). Without it a burst of crashes or messages leaves up
 * to 2,048 objects per size class cached on each scheduler thread after the node
 * has gone quiet, and each such object, freed in no particular order, keeps a
 * run of its carrier from going back. It used to be the last scheduler to fall
 * asleep only, then every one at most once a second; either way a scheduler that
 * napped in the middle of a burst kept what it cached after that nap, and a node
 * that went idle between rounds of the same messages grew by 0.3-1.4 MiB a round
 * without end (100,000 replies a round: 75 to 91 MiB in 30 rounds; with the
 * limit of once a second, 56 to 62 MiB of the pool's runs in 20). Now the pool
 * holds the same runs after every round. It costs a few microseconds a sleep
 * (moving each class's list to the depot, and taking a batch back on waking),
 * next to the futex calls of the sleep itself; ring, pingpong, skynet and the
 * distributed round trip did not change measurably. The carrier it cuts new
 * objects from it keeps (mem/pool.c says why); the depot's trim gives back
 * the runs of it that it has finished with. */
static void give_back_when_idle(emi_sched *s)
{
    emi_small_cache_drain(s);
    emi_pool_thread_flush();
}

/* Work for this scheduler alone: what it runs next without looking elsewhere. */
static bool own_work(emi_sched *s) { return s->runnext || queued(s); }

static void idle(emi_rt *rt, emi_sched *s)
{
    uint64_t t0 = emi_now_ns();
    /* Relaxed: figures. A reader adds the spell under way to stat_idle_ns, so
     * a scheduler that sleeps for a long time does not look busy meanwhile. */
    atomic_store_explicit(&s->idle_since_ns, t0, memory_order_relaxed);
    /* Relaxed: the spinner count is a hint that spares wakers a futex call. */
    atomic_fetch_add_explicit(&rt->n_spinning, 1, memory_order_relaxed);
    bool found = false;
    /* With distribution on, input from other nodes wakes us only once we poll
     * for it, and a spinning thread takes the core from ZeroMQ's I/O thread on
     * a small machine: spin briefly. Relaxed: a hint. */
    uint64_t spin_ns = atomic_load_explicit(&emi_dist_up, memory_order_relaxed) ? SPIN_DIST_NS : SPIN_NS;
    for (unsigned i = 0;; i++) {
        if (stealable_work(rt, s) || timers_due(s) ||
            atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
            found = true;
            break;
        }
        if (((i & 7) == 7 || spin_ns == 0) && emi_now_ns() - t0 >= spin_ns)
            break;
        for (int k = 0; k < 16; k++)
            emi_cpu_relax();
    }
    atomic_fetch_sub_explicit(&rt->n_spinning, 1, memory_order_relaxed);
    if (!found) {
        /* A reply a process left for another node goes now that this
         * scheduler found nothing to run and is about to block, not right
         * after the process ran: the ZeroMQ I/O thread it wakes then stays on
         * its core (measured on 2 cores: 26,098 cpu-migrations in 50,000
         * round trips before, 2,688 after). */
        if (emi_dist_dirty)
            emi_flush_dirty();
        emi_qsbr_reclaim(s, false);
        /* A sleeping scheduler keeps no process slots or table indices that a
         * spawn elsewhere might need at the limit. */
        emi_slots_return(s);
        give_back_when_idle(s);
        trim_when_idle(rt);
        /* A sleeping scheduler cannot answer for mailboxes: the one that wakes
         * next must not have to revoke a mode whose owner is asleep. Relaxed:
         * only this thread sets it to its own id. */
        if (atomic_load_explicit(&rt->solo, memory_order_relaxed) == s->id + 1)
            emi_solo_leave(rt, s);
        /* seq_cst: announce the sleep before the last look at the queues. */
        atomic_store_explicit(&s->sleeping, 1, memory_order_seq_cst);
        atomic_fetch_add_explicit(&rt->n_sleeping, 1, memory_order_seq_cst);
        emi_qsbr_offline(s);
        if (!stealable_work(rt, s) && !atomic_load_explicit(&rt->stopping, memory_order_seq_cst) &&
            !emi_dist_idle_poll(s, emi_timers_next(s)))
            futex_wait(&s->sleeping, 1, emi_timers_next(s));
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
        atomic_fetch_sub_explicit(&rt->n_sleeping, 1, memory_order_seq_cst);
    }
    s->coarse_ns = emi_now_ns();
    uint64_t dt = s->coarse_ns - t0;
    /* Cleared before the spell is added: a reader in between counts the spell
     * as busy for a moment rather than twice. */
    atomic_store_explicit(&s->idle_since_ns, 0, memory_order_relaxed);
    emi_stat_add(&s->stat_idle_ns, dt);
}

void emi_sched_loop(emi_sched *s)
{
    emi_rt *rt = emi_rt_g;
    emi_sched_set_self(s);
    emi_stack_thread_init(s);
    emi_fault_thread_init();
    s->coarse_ns = emi_now_ns();
    for (;;) {
        emi_qsbr_quiescent(s);
        s->tick++;
        if ((s->tick & 63) == 0)
            s->coarse_ns = emi_now_ns();
        if (s->limbo_len && ((s->tick & 63) == 0 || s->limbo_len > 4096))
            emi_qsbr_reclaim(s, false);
        /* Relaxed: a spawn at the limit asks for unused process slots back
         * (proc.c); it clears the flag when it is done. */
        if (atomic_load_explicit(&rt->slots_wanted, memory_order_relaxed))
            emi_slots_return(s);
        emi_timers_run(s, 0);
        /* Relaxed: a hint; solo_try decides with seq_cst operations. */
        if (rt->solo_ok && atomic_load_explicit(&rt->solo, memory_order_relaxed) == 0)
            emi_solo_try(rt, s);
        /* Relaxed: a hint; the poll itself synchronises through its token. */
        if ((s->tick & 15) == 0 && atomic_load_explicit(&emi_dist_up, memory_order_relaxed))
            emi_dist_busy_poll(s, false);
        if (atomic_load_explicit(&rt->stopping, memory_order_acquire))
            break;
        emi_proc *p = find_work(rt, s);
        if (!p) {
            /* Nothing to run: first make memory resident for a scheduler
             * that is spawning (mem/pool.c, the stock), then look again. */
            if (!emi_pool_restock())
                idle(rt, s);
            continue;
        }
        run(rt, s, p);
        /* What the process packed for other nodes leaves now that it is off the
         * core (a burst of sends goes as one frame) if more work waits here;
         * otherwise when idle() finds none, or after one more process's run if
         * it steals some. */
        if (emi_dist_dirty && own_work(s))
            emi_flush_dirty();
    }
    emi_solo_leave(rt, s);   /* a no-op unless this scheduler is solo */
    if (emi_dist_dirty)
        emi_flush_dirty();   /* the runtime stops: nothing stays packed here */
    emi_qsbr_offline(s);
    emi_stack_thread_fini();
    emi_fault_thread_fini();
    emi_sched_set_self(NULL);
}
