/*
 * mailbox.c - sending, receiving and selective receive.
 *
 * A mailbox has two parts. The inbox is a lock-free LIFO that any thread pushes to
 * with one compare-and-swap; its head may also hold a sentinel: SLEEP while the
 * process is parked (the sender that replaces SLEEP wakes it, so exactly one party
 * schedules it) and CLOSED once the process has ended (the message is dropped).
 * The private queue belongs to the process alone: receive moves the whole inbox
 * there at once, reversed into arrival order, and scans it. Pushes are totally
 * ordered by the CAS on the head, so reversing keeps each sender's order.
 */
#include <stdlib.h>

#include "core/rt.h"

int emi_deliver(em_pid_t to, emi_block *b)
{
    b->dest = to;
    return emi_deliver_to(emi_proc_lookup(to), b);
}

/* One writer at a time (the process, or the sender that wakes it while it is
 * parked); relaxed, a figure for introspection. */
static inline void mq_len_add(emi_proc *p, size_t n, int sign)
{
    unsigned v = atomic_load_explicit(&p->mq_len, memory_order_relaxed);
    atomic_store_explicit(&p->mq_len, sign > 0 ? v + (unsigned)n : v - (unsigned)n, memory_order_relaxed);
}

/* Count pushes beyond the inbox head's count (n > 0) or their taking (n < 0),
 * for very long mailboxes only. Both sides make the ext: the receiver may take
 * a push before its sender counts it. A figure for introspection: without
 * memory for the ext, it is left out. */
static void msgs_over_add(emi_proc *p, int64_t n)
{
    emi_proc_ext *x = emi_proc_ext_get(p);
    if (x)
        /* Relaxed: a figure; senders and the receiver only add to it. */
        atomic_fetch_add_explicit(&x->msgs_over, (unsigned)n, memory_order_relaxed);
}

/* Append the chain first..last (n blocks, last->next NULL) to the private queue. */
static inline void mq_append(emi_proc *p, emi_block *first, emi_block *last, size_t n)
{
    if (p->mq_tail)
        p->mq_tail->next = first;
    else
        p->mq_head = first;
    p->mq_tail = last;
    mq_len_add(p, n, 1);
}

/* Push b into p's inbox (p NULL: the process is gone), on behalf of a thread
 * whose scheduler is self (NULL for other threads). Inline: a process's own
 * sends pass their scheduler instead of asking for the thread's. */
static inline __attribute__((always_inline)) int deliver(emi_sched *self, emi_proc *p, emi_block *b)
{
    if (!p)
        goto dead;
    b->dest = p->pid;
    /* Plain stores while this is the only scheduler awake (sched/solo.c). */
    bool plain = emi_mb_begin(self);
    /* Relaxed: the CAS below carries the ordering. */
    emi_block *old = atomic_load_explicit(&p->inbox, memory_order_relaxed), *word;
    unsigned count;
    for (;;) {
        if (old == EMI_INBOX_CLOSED) {
            emi_mb_end(self);
            goto dead;
        }
        if (old == EMI_INBOX_SLEEP && !b->sig) {
            /* Parked: the sender that replaces SLEEP owns the wake-up, and nobody
             * touches the private queue until the process runs again, so the
             * message goes straight there and the process finds it without
             * taking its inbox (one atomic exchange less per wake). */
            count = 0;
            word = NULL;
        } else {
            if (old == EMI_INBOX_SLEEP) {
                b->next = NULL;
                count = 0;
            } else {
                b->next = emi_inbox_ptr(old);
                count = emi_inbox_count(old);
            }
            if (count < EMI_INBOX_COUNT_MAX)
                count++;
            word = (emi_block *)((uintptr_t)b | (uintptr_t)count << 48);
        }
        if (plain) {
            /* Relaxed: no other thread reads it before solo mode ends, and
             * ending it orders this store for them. */
            emi_solo_linger_maybe();
            atomic_store_explicit(&p->inbox, word, memory_order_relaxed);
            break;
        }
        /* Release publishes the block's contents to the receiver; acquire (on the
         * SLEEP case) makes the parked process's state visible to whoever we hand
         * it to. seq_cst because the park and timer protocol relies on a single
         * order of the SLEEP transitions. */
        if (atomic_compare_exchange_weak_explicit(&p->inbox, &old, word, memory_order_seq_cst,
                                                  memory_order_relaxed))
            break;
    }
    emi_mb_end(self);
    if (count == EMI_INBOX_COUNT_MAX && old != EMI_INBOX_SLEEP &&
        emi_inbox_count(old) == EMI_INBOX_COUNT_MAX)
        msgs_over_add(p, 1);
    if (self)
        emi_stat_add(&self->stat_sent, 1);
    if (old == EMI_INBOX_SLEEP) {
        if (!word) {
            /* The acquire half of the CAS made the process's queue, as it
             * parked, visible; emi_ready publishes our change with the process. */
            b->next = NULL;
            mq_append(p, b, b, 1);
        }
        emi_ready_on(self, p);
    }
    return 0;
dead:
    if (self) {
        emi_stat_add(&self->stat_sent, 1);
        emi_stat_add(&self->stat_dead, 1);
    }
    emi_block_free(b);
    return 0;
}

int emi_deliver_to(emi_proc *p, emi_block *b) { return deliver(emi_sched_self(), p, b); }

/* A process's send to a local pid that check_dest accepted: the table lookup of
 * emi_proc_lookup without its checks, already made. */
static inline __attribute__((always_inline)) int send_block(emi_proc *self, em_pid_t to, emi_block *b)
{
    /* Acquire pairs with the release in spawn: the struct's fields are set. */
    emi_proc *p = atomic_load_explicit(&emi_rt_g->table[em_pid_index(to)], memory_order_acquire);
    deliver(self->sched, p && p->pid == to ? p : NULL, b);
    emi_charge(self, 1);
    return 0;
}

/* 0 for a local destination, 1 for a remote one (dist/ takes it), or an error. */
static int check_dest(emi_proc *self, emi_rt *rt, em_pid_t to)
{
    if (!self || !rt)
        return EM_ENOTPROC;
    uint32_t idx = em_pid_index(to);
    if (idx == 0)
        return EM_EINVAL;
    if (em_pid_node(to) != 0)
        return 1;
    if (idx > rt->cfg.max_processes)
        return EM_EINVAL;
    return 0;
}

/* The message of a local send when it fits a small block: an immediate, or a
 * short tuple of immediates and fixed-size boxes. NULL for any other term (or
 * when no block can be had), which the general copier then handles. */
static inline emi_block *small_message(emi_sched *s, em_term t, size_t max_bytes)
{
    if (emi_is_box(t))
        return emi_box_type(t) == BOX_ARRAY ? emi_small_tuple_block(s, t, max_bytes) : NULL;
    if (!emi_valid_immediate(t))
        return NULL;
    emi_block *b = emi_small_block(s);
    if (b) {
        b->term = t;
        b->used = 0;
    }
    return b;
}

int em_send(em_pid_t to, em_term msg)
{
    emi_proc *self = emi_current_at_entry();
    emi_rt *rt = emi_rt_g;
    int err = check_dest(self, rt, to);
    if (err)
        return err == 1 ? emi_dist_send(self, to, msg) : err;
    emi_block *b = small_message(self->sched, msg, rt->cfg.max_term_bytes);
    if (!b && !(b = emi_block_for_term(msg, rt->cfg.max_term_bytes, &err)))
        return err;
    return send_block(self, to, b);
}

/* em_send_array's message when it is a short tuple of immediates ({token, K},
 * {sum, S}): the items are the message, copied as they are. */
static inline emi_block *small_array(emi_sched *s, size_t n, const em_term *items, size_t max_bytes)
{
    size_t size = (1 + n) * 8;
    if (n - 1 >= EMI_SMALL_BYTES / 8 - 1 || size > max_bytes || !items)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!emi_valid_immediate(items[i]))
            return NULL;
    emi_block *b = emi_small_block(s);
    if (b) {
        uint64_t *box = (uint64_t *)b->data;
        box[0] = emi_header(BOX_ARRAY, n);
        for (size_t i = 0; i < n; i++)
            box[1 + i] = items[i];
        b->term = (em_term)(uintptr_t)box;
        b->used = (uint32_t)size;
    }
    return b;
}

int em_send_array(em_pid_t to, size_t n, const em_term *items)
{
    emi_proc *self = emi_current_at_entry();
    emi_rt *rt = emi_rt_g;
    int err = check_dest(self, rt, to);
    if (err)
        return err == 1 ? emi_dist_send_array(self, to, n, items) : err;
    emi_block *b = small_array(self->sched, n, items, rt->cfg.max_term_bytes);
    if (!b && !(b = emi_block_for_array(n, items, rt->cfg.max_term_bytes, &err)))
        return err;
    return send_block(self, to, b);
}

void emi_mailbox_close(emi_proc *p)
{
    /* Atomic even in solo mode (once a process), but inside an operation: a
     * thread other than the solo scheduler must end the mode first. */
    emi_sched *s = emi_sched_self();
    emi_mb_begin(s);
    /* Acquire: we free the blocks senders published. */
    emi_block *l = atomic_exchange_explicit(&p->inbox, EMI_INBOX_CLOSED, memory_order_acquire);
    emi_mb_end(s);
    l = l == EMI_INBOX_SLEEP || l == EMI_INBOX_CLOSED ? NULL : emi_inbox_ptr(l);
    while (l) {
        emi_block *n = l->next;
        emi_block_free(l);
        l = n;
    }
    while (p->mq_head) {
        emi_block *n = p->mq_head->next;
        emi_block_free(p->mq_head);
        p->mq_head = n;
    }
    p->mq_tail = NULL;
}

/* Unlink cur (whose predecessor is prev, or none) from the private queue. */
static void mq_unlink(emi_proc *p, emi_block *prev, emi_block *cur)
{
    if (prev)
        prev->next = cur->next;
    else
        p->mq_head = cur->next;
    if (p->mq_tail == cur)
        p->mq_tail = prev;
    mq_len_add(p, 1, -1);
}

/* Handle the signals among the blocks that follow `before` (all of the queue when
 * NULL): each is dropped, acted on (which may end the process), or kept in place
 * as an {'EXIT', From, Reason} message. */
static void handle_signals(emi_proc *p, emi_block *before)
{
    emi_block *prev = before, *cur = before ? before->next : p->mq_head;
    while (cur) {
        emi_block *next = cur->next;
        if (!cur->sig) {
            prev = cur;
            cur = next;
            continue;
        }
        mq_unlink(p, prev, cur);
        if (emi_signal_handle(p, cur)) {
            cur->next = next;
            if (prev)
                prev->next = cur;
            else
                p->mq_head = cur;
            if (!next)
                p->mq_tail = cur;
            mq_len_add(p, 1, 1);
            prev = cur;
        }
        cur = next;
    }
}

/* Move everything in the inbox to the private queue; false if it was empty.
 * The look is inline; the taking is not, to keep the receive loops small. */
static bool take_inbox_now(emi_proc *p);
static inline bool take_inbox(emi_proc *p)
{
    if (atomic_load_explicit(&p->inbox, memory_order_relaxed) == NULL)
        return false;
    return take_inbox_now(p);
}

__attribute__((noinline)) static bool take_inbox_now(emi_proc *p)
{
    emi_sched *s = p->sched;
    emi_block *w;
    if (emi_mb_begin(s)) {
        /* Relaxed: solo mode, this thread wrote the blocks (sched/solo.c). */
        w = atomic_load_explicit(&p->inbox, memory_order_relaxed);
        atomic_store_explicit(&p->inbox, NULL, memory_order_relaxed);
    } else {
        /* Acquire pairs with the senders' release: the blocks' contents are visible. */
        w = atomic_exchange_explicit(&p->inbox, NULL, memory_order_acquire);
    }
    emi_mb_end(s);
    emi_block *l = emi_inbox_ptr(w), *rev = NULL, *last = l;
    size_t n = 0;
    bool sigs = false;
    while (l) {
        emi_block *next = l->next;
        l->next = rev;
        sigs |= l->sig != 0;
        rev = l;
        l = next;
        n++;
    }
    if (emi_inbox_count(w) == EMI_INBOX_COUNT_MAX && n > EMI_INBOX_COUNT_MAX)
        msgs_over_add(p, -(int64_t)(n - EMI_INBOX_COUNT_MAX));
    if (!rev)
        return false;
    emi_block *before = p->mq_tail;
    mq_append(p, rev, last, n);
    if (sigs)
        handle_signals(p, before);
    return true;
}

void emi_mailbox_take(emi_proc *p) { take_inbox(p); }

void emi_mailbox_remove(emi_proc *p, bool (*pred)(em_term t, uint64_t arg), uint64_t arg)
{
    take_inbox(p);
    emi_block *prev = NULL, *cur = p->mq_head;
    while (cur) {
        emi_block *next = cur->next;
        if (pred(cur->term, arg)) {
            mq_unlink(p, prev, cur);
            emi_block_free(cur);
        } else {
            prev = cur;
        }
        cur = next;
    }
}

typedef bool (*match_fn)(em_term t, void *ctx);

/* The message in cur (after prev in the private queue) is the result: it leaves
 * the queue and its block joins the heap, or is freed if it holds nothing. */
static inline void take_block(emi_proc *p, emi_block *prev, emi_block *cur, em_term *out)
{
    mq_unlink(p, prev, cur);
    if (out)
        *out = cur->term;
    if (cur->used == 0 && !cur->offheap)
        emi_small_block_free(p->sched, cur);   /* an immediate: nothing to keep */
    else
        emi_heap_adopt(&p->heap, cur);
}

static int receive(emi_proc *p, em_term *out, int64_t timeout_ms, match_fn match, void *ctx)
{
    bool armed = false;
    int rc = EM_ETIMEDOUT;
    if (--p->sched->budget <= 0)
        emi_switch_out(p, WHY_YIELD);
    /* Every switch may move the inbox to the queue (signals are handled then), so
     * the scan goes on from prev, the last block looked at, after each one. */
    emi_block *prev = NULL, *cur = p->mq_head;
    for (;;) {
        for (; cur; prev = cur, cur = cur->next) {
            if (match && !match(cur->term, ctx))
                continue;
            take_block(p, prev, cur, out);
            rc = 0;
            goto done;
        }
        if (take_inbox(p)) {
            cur = prev ? prev->next : p->mq_head;
            continue;
        }
        if (timeout_ms == 0)
            goto done;
        if (armed && atomic_load_explicit(&p->timeout_fired, memory_order_acquire))
            goto done;
        if (timeout_ms > 0 && !armed) {
            uint64_t deadline = emi_now_ns() + (uint64_t)timeout_ms * 1000000u;
            if (emi_timer_arm_wait(p, deadline) != 0) {
                rc = EM_ENOMEM;
                goto done;
            }
            armed = true;
        }
        emi_switch_out(p, WHY_WAIT);
        cur = prev ? prev->next : p->mq_head;
    }
done:
    if (armed)
        emi_timer_cancel_wait(p);
    return rc;
}

/* Without a pattern or a timer, receive is: the oldest message, else wait (the
 * loop of a server, a ring or a ping-pong). Signals are handled as in receive:
 * when the inbox is taken and after every switch.
 *
 * A function of its own, which em_receive calls last (a jump, not a call): a
 * process waiting here has only this frame between its own and the switch's
 * saved registers, p and out in two registers, so that a function that waits
 * near its top has a saved image of 120 bytes (a 128-byte block) where
 * em_receive's larger frame took 136 (192). */
static __attribute__((noinline)) int receive_any(emi_proc *p, em_term *out)
{
    if (--p->sched->budget <= 0)
        emi_switch_out(p, WHY_YIELD);
    for (;;) {
        emi_block *b = p->mq_head;
        if (b || (take_inbox(p) && (b = p->mq_head))) {
            take_block(p, NULL, b, out);
            return 0;
        }
        emi_switch_out(p, WHY_WAIT);
    }
}

int em_receive(em_term *out, int64_t timeout_ms)
{
    emi_proc *p = emi_current_at_entry();
    if (!p)
        return EM_ENOTPROC;
    if (timeout_ms >= 0)
        return receive(p, out, timeout_ms, NULL, NULL);
    return receive_any(p, out);
}

int em_receive_if(em_term *out, int64_t timeout_ms, em_pred_fn pred, void *ctx)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    if (!pred)
        return EM_EINVAL;
    return receive(p, out, timeout_ms, pred, ctx);
}

struct pattern_ctx {
    const char *pattern;
    va_list ap;
};

static bool pattern_match(em_term t, void *arg)
{
    struct pattern_ctx *c = arg;
    va_list ap;
    va_copy(ap, c->ap);
    bool ok = em_vmatch(t, c->pattern, ap);
    va_end(ap);
    return ok;
}

int em_receive_match(em_term *out, int64_t timeout_ms, const char *pattern, ...)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    if (!pattern || em_match_check(pattern) != 0)
        return EM_EBADTERM;
    struct pattern_ctx c;
    c.pattern = pattern;
    va_start(c.ap, pattern);
    int rc = receive(p, out, timeout_ms, pattern_match, &c);
    va_end(c.ap);
    return rc;
}

static bool match_nothing(em_term t, void *ctx)
{
    (void)t, (void)ctx;
    return false;
}

void em_sleep(int64_t ms)
{
    emi_proc *p = emi_current();
    if (!p || (ms < 0 && ms != EM_INFINITY))
        return;
    if (ms == 0) {
        em_yield();
        return;
    }
    receive(p, NULL, ms, match_nothing, NULL);
}
