/*
 * current.c - which scheduler the calling thread is, and which process it runs.
 *
 * These live in their own file, behind calls the compiler cannot inline, because a
 * process can resume on another thread after any switch: an inlined thread-local
 * access could reuse the address of the previous thread's variable. The one
 * exception is emi_current_at_entry (core/rt.h), for the first lines of the
 * public calls on every message's path, before anything can switch.
 */
#include <stdio.h>

#include "core/rt.h"

_Thread_local emi_sched *emi_self_sched;

__attribute__((noinline)) emi_sched *emi_sched_self(void)
{
    emi_sched *s = emi_self_sched;
    __asm__ volatile("" ::: "memory");
    return s;
}

void emi_sched_set_self(emi_sched *s) { emi_self_sched = s; }

/* A process that calls ember with less than EMI_STACK_RESERVE of stack left
 * ends here with stack_overflow, before the runtime has changed anything,
 * instead of faulting halfway through an update inside the runtime (which would
 * have to stop the node). The scheduler keeps the running process's floor next
 * to `current`, so the check (emi_current_at_entry) costs a load and a compare. */
__attribute__((noinline, cold)) void emi_out_of_stack(emi_proc *p)
{
    /* Nothing here may call emi_current (no term builders): it would land here. */
    fprintf(stderr, "ember: process <0.%u.%u> (%s) ran out of stack in a call to ember and ends\n",
            em_pid_index(p->pid), em_pid_serial(p->pid), emi_entry_name(p->entry));
    emi_proc_end(p, emi_atom_stack_overflow());
}

/* The running process (after the stack check), or NULL: the one call behind
 * every use outside the entry of a public call. */
__attribute__((noinline)) emi_proc *emi_current(void) { return emi_current_at_entry(); }

/* The running process's heap, else the thread's em_heap_use heap. */
__attribute__((noinline)) struct em_heap *emi_heap_current(void)
{
    emi_proc *p = emi_current_at_entry();
    return p ? &p->heap : emi_thread_heap();
}
