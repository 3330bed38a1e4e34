/*
 * timer.c - receive timeouts, em_sleep and em_send_after.
 *
 * Each scheduler keeps its own timers: a binary min-heap of slot numbers ordered by
 * deadline, over an array of entries recycled through a free list, so a million
 * pending timers cost about 48 bytes each and one lock that is almost never
 * contended (another thread takes it only to cancel). The owner fires what is due
 * at the top of its loop and sleeps no longer than its next deadline.
 *
 * A receive timeout races with senders: the timer sets `timeout_fired` and then
 * tries to swap the inbox from SLEEP to empty, under the timer lock. Whoever makes
 * that swap (a sender, the timer, or the parking scheduler that saw the flag) wakes
 * the process, exactly once. The process cancels its timer under the same lock
 * before it returns from receive, so an entry never outlives its wait.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rt.h"

enum { KIND_FREE, KIND_WAIT, KIND_SEND };

typedef struct entry {
    uint64_t deadline;
    uint32_t heap_idx;
    uint32_t gen;                 /* bumped on reuse: stale handles miss */
    uint32_t next_free;
    uint8_t kind;
    emi_proc *proc;               /* KIND_WAIT */
    em_pid_t to;                  /* KIND_SEND */
    emi_block *msg;
} entry;

struct emi_timers {
    pthread_mutex_t lock;
    atomic_uint_fast64_t next;    /* earliest deadline, UINT64_MAX if none */
    entry *e;                     /* slot 0 unused */
    uint32_t cap, free_head;
    uint32_t *heap;
    uint32_t len;
};

#define GEN_MASK 0xFFFFFFu

int emi_timers_init(emi_sched *s)
{
    emi_timers *t = calloc(1, sizeof *t);
    if (!t)
        return EM_ENOMEM;
    pthread_mutex_init(&t->lock, NULL);
    atomic_init(&t->next, UINT64_MAX);
    s->timers = t;
    return 0;
}

void emi_timers_fini(emi_sched *s)
{
    emi_timers *t = s->timers;
    if (!t)
        return;
    for (uint32_t i = 0; i < t->len; i++) {
        entry *e = &t->e[t->heap[i]];
        if (e->msg)
            emi_block_free(e->msg);
    }
    pthread_mutex_destroy(&t->lock);
    free(t->e);
    free(t->heap);
    free(t);
    s->timers = NULL;
}

static void heap_set(emi_timers *t, uint32_t i, uint32_t slot)
{
    t->heap[i] = slot;
    t->e[slot].heap_idx = i;
}

static void sift_up(emi_timers *t, uint32_t i)
{
    uint32_t slot = t->heap[i];
    uint64_t d = t->e[slot].deadline;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (t->e[t->heap[parent]].deadline <= d)
            break;
        heap_set(t, i, t->heap[parent]);
        i = parent;
    }
    heap_set(t, i, slot);
}

static void sift_down(emi_timers *t, uint32_t i)
{
    uint32_t slot = t->heap[i];
    uint64_t d = t->e[slot].deadline;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= t->len)
            break;
        if (c + 1 < t->len && t->e[t->heap[c + 1]].deadline < t->e[t->heap[c]].deadline)
            c++;
        if (t->e[t->heap[c]].deadline >= d)
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, slot);
}

static void publish_next(emi_timers *t)
{
    /* Relaxed: a hint read without the lock; the lock orders the real check. */
    atomic_store_explicit(&t->next, t->len ? t->e[t->heap[0]].deadline : UINT64_MAX,
                          memory_order_relaxed);
}

static void heap_remove(emi_timers *t, uint32_t i)
{
    t->len--;
    if (i != t->len) {
        uint32_t moved = t->heap[t->len];
        heap_set(t, i, moved);
        sift_down(t, i);
        sift_up(t, t->e[moved].heap_idx);
    }
}

static void slot_free(emi_timers *t, uint32_t slot)
{
    entry *e = &t->e[slot];
    e->kind = KIND_FREE;
    e->gen = (e->gen + 1) & GEN_MASK;
    e->proc = NULL;
    e->msg = NULL;
    e->next_free = t->free_head;
    t->free_head = slot;
}

/* Under the lock: a new entry in the heap, or 0 when out of memory. */
static uint32_t add(emi_timers *t, uint64_t deadline, uint8_t kind)
{
    if (!t->free_head) {
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        entry *ne = realloc(t->e, (size_t)cap * sizeof *ne);
        if (!ne)
            return 0;
        t->e = ne;
        uint32_t *nh = realloc(t->heap, (size_t)cap * sizeof *nh);
        if (!nh)
            return 0;
        t->heap = nh;
        uint32_t first = t->cap ? t->cap : 1;
        for (uint32_t i = cap - 1; i >= first; i--) {
            memset(&t->e[i], 0, sizeof t->e[i]);
            t->e[i].next_free = t->free_head;
            t->free_head = i;
        }
        t->cap = cap;
    }
    uint32_t slot = t->free_head;
    entry *e = &t->e[slot];
    t->free_head = e->next_free;
    e->deadline = deadline;
    e->kind = kind;
    t->heap[t->len] = slot;
    e->heap_idx = t->len++;
    sift_up(t, e->heap_idx);
    publish_next(t);
    return slot;
}

int emi_timer_arm_wait(emi_proc *p, uint64_t deadline_ns)
{
    emi_proc_ext *x = emi_proc_ext_get(p);
    if (!x)
        return EM_ENOMEM;
    emi_sched *s = p->sched;
    emi_timers *t = s->timers;
    /* Relaxed: the timer that could read it is inserted under the lock below. */
    atomic_store_explicit(&p->timeout_fired, 0, memory_order_relaxed);
    pthread_mutex_lock(&t->lock);
    uint32_t slot = add(t, deadline_ns, KIND_WAIT);
    if (slot) {
        t->e[slot].proc = p;
        x->wait_timer_slot = slot;
        x->wait_timer_gen = t->e[slot].gen;
        x->wait_timer_sched = (uint8_t)s->id;
        emi_proc_flag_set(p, EMI_PF_TIMED, true);
    }
    pthread_mutex_unlock(&t->lock);
    return slot ? 0 : EM_ENOMEM;
}

void emi_timer_cancel_wait(emi_proc *p)
{
    if (!emi_proc_flag(p, EMI_PF_TIMED))
        return;
    emi_proc_ext *x = emi_proc_ext_peek(p);   /* made when the timer was armed */
    emi_timers *t = emi_rt_g->scheds[x->wait_timer_sched]->timers;
    pthread_mutex_lock(&t->lock);
    entry *e = &t->e[x->wait_timer_slot];
    if (e->kind == KIND_WAIT && e->gen == x->wait_timer_gen && e->proc == p) {
        heap_remove(t, e->heap_idx);
        slot_free(t, x->wait_timer_slot);
        publish_next(t);
    }
    pthread_mutex_unlock(&t->lock);
    emi_proc_flag_set(p, EMI_PF_TIMED, false);
}

int64_t emi_timers_next(emi_sched *s)
{
    uint64_t next = atomic_load_explicit(&s->timers->next, memory_order_relaxed);
    if (next == UINT64_MAX)
        return -1;
    uint64_t now = emi_now_ns();
    return next <= now ? 0 : (int64_t)(next - now);
}

/* The scheduler loop asks on every turn; most turns nothing is pending, and
 * that answer must not pay for the registers the work below needs. */
__attribute__((noinline)) static void run_pending(emi_timers *t, uint64_t next, uint64_t now)
{
    if (!now)
        now = emi_now_ns();
    if (next > now)
        return;
    emi_block *sends = NULL;
    pthread_mutex_lock(&t->lock);
    while (t->len && t->e[t->heap[0]].deadline <= now) {
        uint32_t slot = t->heap[0];
        entry *e = &t->e[slot];
        heap_remove(t, 0);
        if (e->kind == KIND_WAIT) {
            emi_proc *p = e->proc;
            /* seq_cst: ordered against the parking scheduler's CAS then load. */
            atomic_store_explicit(&p->timeout_fired, 1, memory_order_seq_cst);
            emi_block *sleep = EMI_INBOX_SLEEP;
            emi_sched *self = emi_sched_self();
            bool woke = emi_mb_cas(&p->inbox, &sleep, NULL, emi_mb_begin(self));
            emi_mb_end(self);
            if (woke)
                emi_ready(p);
        } else {
            e->msg->dest = e->to;
            e->msg->next = sends;
            sends = e->msg;
            e->msg = NULL;
        }
        slot_free(t, slot);
    }
    publish_next(t);
    pthread_mutex_unlock(&t->lock);
    while (sends) {
        emi_block *b = sends;
        sends = b->next;
        emi_deliver(b->dest, b);
    }
}

void emi_timers_run(emi_sched *s, uint64_t now)
{
    emi_timers *t = s->timers;
    /* Relaxed: a stale value only moves the check to the next turn. */
    uint64_t next = atomic_load_explicit(&t->next, memory_order_relaxed);
    if (next != UINT64_MAX)
        run_pending(t, next, now);
}

int em_send_after(int64_t ms, em_pid_t to, em_term msg, em_timer_t *out)
{
    emi_proc *p = emi_current();
    emi_rt *rt = emi_rt_g;
    if (!p)
        return EM_ENOTPROC;
    uint32_t idx = em_pid_index(to);
    if (ms < 0 || em_pid_node(to) != 0 || idx == 0 || idx > rt->cfg.max_processes)
        return EM_EINVAL;
    int err = 0;
    emi_block *b = emi_block_for_term(msg, rt->cfg.max_term_bytes, &err);
    if (!b)
        return err;
    emi_sched *s = p->sched;
    emi_timers *t = s->timers;
    pthread_mutex_lock(&t->lock);
    uint32_t slot = add(t, emi_now_ns() + (uint64_t)ms * 1000000u, KIND_SEND);
    uint32_t gen = 0;
    if (slot) {
        t->e[slot].to = to;
        t->e[slot].msg = b;
        gen = t->e[slot].gen;
    }
    pthread_mutex_unlock(&t->lock);
    if (!slot) {
        emi_block_free(b);
        return EM_ENOMEM;
    }
    if (out)
        *out = ((em_timer_t)(s->id + 1) << 56) | ((em_timer_t)gen << 32) | slot;
    emi_charge(p, 1);
    return 0;
}

int em_cancel_timer(em_timer_t h)
{
    emi_rt *rt = emi_rt_g;
    if (!rt)
        return EM_ESTATE;
    int sid = (int)(h >> 56) - 1;
    uint32_t gen = (uint32_t)(h >> 32) & GEN_MASK;
    uint32_t slot = (uint32_t)h;
    if (sid < 0 || sid >= rt->nsched || slot == 0)
        return EM_ENOTFOUND;
    emi_timers *t = rt->scheds[sid]->timers;
    emi_block *msg = NULL;
    pthread_mutex_lock(&t->lock);
    if (slot < t->cap && t->e[slot].kind == KIND_SEND && t->e[slot].gen == gen) {
        msg = t->e[slot].msg;
        heap_remove(t, t->e[slot].heap_idx);
        slot_free(t, slot);
        publish_next(t);
    }
    pthread_mutex_unlock(&t->lock);
    if (!msg)
        return EM_ENOTFOUND;
    emi_block_free(msg);
    return 0;
}
