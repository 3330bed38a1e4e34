/*
 * preempt.c - interrupting a process that runs C code for longer than its slice.
 */
#include "core/rt.h"

void emi_preempt_request(emi_proc *p) { (void)p; }
