/*
 * qsbr.c - quiescent-state-based reclamation of process structs.
 *
 * Senders find a process through the process table and touch its inbox without a
 * lock, so an ended process cannot be freed at once: another scheduler may still
 * hold the pointer. Each scheduler publishes the global epoch it saw at the top of
 * its loop, where it holds no process pointers, and 0 while it sleeps. A struct
 * retired at epoch E is freed once every awake scheduler has published a later one.
 */
#include <stdint.h>

#include "core/rt.h"

void emi_qsbr_quiescent(emi_sched *s)
{
    /* seq_cst load: ordered after the table updates that preceded the bump. */
    uint64_t e = atomic_load_explicit(&emi_rt_g->epoch, memory_order_seq_cst);
    if (atomic_load_explicit(&s->qsbr, memory_order_relaxed) != e)
        /* seq_cst: others must not see us online before our later loads. */
        atomic_store_explicit(&s->qsbr, e, memory_order_seq_cst);
}

void emi_qsbr_offline(emi_sched *s)
{
    /* seq_cst: once others read 0, we hold no pointers. */
    atomic_store_explicit(&s->qsbr, 0, memory_order_seq_cst);
}

void emi_qsbr_retire(emi_sched *s, emi_proc *p)
{
    /* seq_cst: the epoch is read after the table slot was cleared. */
    p->last.retire_epoch = atomic_load_explicit(&emi_rt_g->epoch, memory_order_seq_cst);
    p->qnext = NULL;
    if (s->limbo_tail)
        s->limbo_tail->qnext = p;
    else
        s->limbo_head = p;
    s->limbo_tail = p;
    s->limbo_len++;
}

void emi_qsbr_reclaim(emi_sched *s, bool all)
{
    emi_rt *rt = emi_rt_g;
    if (!s->limbo_head)
        return;
    uint64_t min = UINT64_MAX;
    if (!all) {
        uint64_t g = atomic_load_explicit(&rt->epoch, memory_order_seq_cst);
        if (s->limbo_tail->last.retire_epoch >= g)
            atomic_fetch_add_explicit(&rt->epoch, 1, memory_order_seq_cst);
        for (int i = 0; i < rt->nsched; i++) {
            uint64_t q = atomic_load_explicit(&rt->scheds[i]->qsbr, memory_order_seq_cst);
            if (q && q < min)
                min = q;
        }
        uint64_t x = atomic_load_explicit(&rt->ext_qsbr, memory_order_seq_cst);
        if (x && x < min)
            min = x;
    }
    while (s->limbo_head && s->limbo_head->last.retire_epoch < min) {
        emi_proc *p = s->limbo_head;
        s->limbo_head = p->qnext;
        s->limbo_len--;
        emi_proc_free(p);
    }
    if (!s->limbo_head)
        s->limbo_tail = NULL;
}

/* The dist thread delivers to processes as a scheduler does, so it takes part in
 * the grace period through a slot of its own: online between enter and leave. */
void emi_qsbr_ext_enter(void)
{
    emi_rt *rt = emi_rt_g;
    /* seq_cst: as emi_qsbr_quiescent; published before we read the table. */
    uint64_t e = atomic_load_explicit(&rt->epoch, memory_order_seq_cst);
    atomic_store_explicit(&rt->ext_qsbr, e, memory_order_seq_cst);
}

void emi_qsbr_ext_leave(void)
{
    /* seq_cst: once others read 0, we hold no pointers. */
    atomic_store_explicit(&emi_rt_g->ext_qsbr, 0, memory_order_seq_cst);
}
