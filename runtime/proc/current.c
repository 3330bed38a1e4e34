/*
 * current.c - which scheduler the calling thread is, and which process it runs.
 *
 * These live in their own file, behind calls the compiler cannot inline, because a
 * process can resume on another thread after any switch: an inlined thread-local
 * access could reuse the address of the previous thread's variable.
 */
#include "core/rt.h"

static _Thread_local emi_sched *self_sched;

__attribute__((noinline)) emi_sched *emi_sched_self(void)
{
    emi_sched *s = self_sched;
    __asm__ volatile("" ::: "memory");
    return s;
}

void emi_sched_set_self(emi_sched *s) { self_sched = s; }

__attribute__((noinline)) emi_proc *emi_current(void)
{
    emi_sched *s = self_sched;
    __asm__ volatile("" ::: "memory");
    return s ? s->current : NULL;
}

struct em_heap *emi_proc_heap(void)
{
    emi_proc *p = emi_current();
    return p ? &p->heap : NULL;
}
