/*
 * current.c - which scheduler the calling thread is, and which process it runs.
 *
 * These live in their own file, behind calls the compiler cannot inline, because a
 * process can resume on another thread after any switch: an inlined thread-local
 * access could reuse the address of the previous thread's variable.
 */
#include <stdio.h>

#include "core/rt.h"

static _Thread_local emi_sched *self_sched;

__attribute__((noinline)) emi_sched *emi_sched_self(void)
{
    emi_sched *s = self_sched;
    __asm__ volatile("" ::: "memory");
    return s;
}

void emi_sched_set_self(emi_sched *s) { self_sched = s; }

/* A process that calls ember with less than EMI_STACK_RESERVE of stack left
 * ends here with stack_overflow, before the runtime has changed anything,
 * instead of faulting halfway through an update inside the runtime (which would
 * have to stop the node). The scheduler keeps the running process's floor next
 * to `current`, so the check costs a load and a compare. */
__attribute__((noinline, cold)) static void out_of_stack(emi_proc *p)
{
    /* Nothing here may call emi_current (no term builders): it would land here. */
    fprintf(stderr, "ember: process <0.%u.%u> (%s) ran out of stack in a call to ember and ends\n",
            em_pid_index(p->pid), em_pid_serial(p->pid), p->entry);
    emi_proc_end(p, emi_atom_stack_overflow());
}

/* The process s runs, after the stack check; inlined into both entry points
 * below, each a single call on the paths of the public API. */
static inline emi_proc *checked_current(emi_sched *s)
{
    emi_proc *p = s ? s->current : NULL;
    if (p) {
        uintptr_t sp;
        __asm__("mov %%rsp, %0" : "=r"(sp));
        if (__builtin_expect(sp < s->stack_floor, 0))
            out_of_stack(p);
    }
    return p;
}

__attribute__((noinline)) emi_proc *emi_current(void)
{
    emi_sched *s = self_sched;
    __asm__ volatile("" ::: "memory");
    return checked_current(s);
}

/* The running process's heap, else the thread's em_heap_use heap: one call on
 * the path of every em_heap_mark and em_heap_release. */
__attribute__((noinline)) struct em_heap *emi_heap_current(void)
{
    emi_sched *s = self_sched;
    __asm__ volatile("" ::: "memory");
    emi_proc *p = checked_current(s);
    return p ? &p->heap : emi_thread_heap();
}
