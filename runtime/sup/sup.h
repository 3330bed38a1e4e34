/*
 * sup.h - what the two halves of the supervisor share: spec.c (child specs as
 * terms, and the calls other processes make to a supervisor) and supervisor.c
 * (the supervisor process itself).
 *
 * A supervisor is an ordinary process, so everything it needs travels in its
 * spawn argument, a term. The layouts (atoms are written as in the text form):
 *
 *   spec     ['$em_sup_spec', Strategy, Intensity, PeriodMs, [Child, ...]]
 *   Child    [Id, Start, Arg, Restart, ShutdownMs, Supervisor]
 *            Id an atom, Start a binary holding the em_proc_fn's bytes,
 *            ShutdownMs already resolved (never EM_SHUTDOWN_DEFAULT)
 *   started  ['$em_sup_start', Parent, AckRef | nil, spec]
 *            what em_supervisor_start_link and a parent supervisor spawn:
 *            the supervisor learns who its parent is, and whom to tell that its
 *            children are up
 *
 * Messages:
 *   ack      ['$em_sup_ack', AckRef, Code]              supervisor -> starter
 *   call     ['$em_sup_call', From, Ref, Request]       anyone -> supervisor
 *            Request: which_children | [terminate_child, Id] | [restart_child, Id]
 *   reply    ['$em_sup_reply', Ref, Result]             supervisor -> From
 *            Result: [[Id, Pid | nil, Restart, Supervisor], ...] or a code
 *   retry    ['$em_sup_retry', Id]                      supervisor -> itself
 */
#ifndef EMBER_SUP_SUP_H
#define EMBER_SUP_SUP_H

#include <stdbool.h>
#include <stdint.h>

#include "ember.h"

#define EMI_SUP_SPEC "$em_sup_spec"
#define EMI_SUP_START "$em_sup_start"
#define EMI_SUP_ACK "$em_sup_ack"
#define EMI_SUP_CALL "$em_sup_call"
#define EMI_SUP_REPLY "$em_sup_reply"
#define EMI_SUP_RETRY "$em_sup_retry"

/* The entry name every supervisor process runs under (em_proc_info.entry). */
#define EMI_SUP_ENTRY "em_supervisor"

/* Default shutdown of a worker child, as OTP's. */
#define EMI_SUP_WORKER_SHUTDOWN_MS 5000

/* One child, as the supervisor keeps it. */
typedef struct emi_child {
    em_term id;              /* an atom */
    em_proc_fn start;
    em_term arg;             /* inside the supervisor's argument: lives as long as it */
    em_pid_t pid;            /* 0 while not running */
    int64_t shutdown_ms;     /* EM_BRUTAL_KILL, EM_INFINITY or > 0 */
    em_restart restart;
    bool supervisor;
    bool deleted;            /* a temporary child that ended: no longer listed */
} emi_child;

/* The flags and children read back from a spec term. */
typedef struct emi_sup_spec {
    em_strategy strategy;
    int intensity;
    int64_t period_ms;
    size_t n;
    emi_child *children;     /* em_alloc'd in the calling process's heap */
} emi_sup_spec;

/* emi_sup_read checks a spec term as strictly as em_supervisor_arg checks its
 * input (a supervisor may be spawned with a term built by hand) and fills *out,
 * allocating the children table with em_alloc. 0, EM_EINVAL or EM_ENOMEM. Does
 * not switch. */
int emi_sup_read(em_term spec, emi_sup_spec *out);

/* emi_sup_ids_unique: whether the n atoms in ids are pairwise distinct
 * (sorts a copy: n may be up to EM_SUP_MAX_CHILDREN). -1 without memory. */
int emi_sup_ids_unique(const em_term *ids, size_t n);

/* emi_sup_clean_exit: normal, shutdown or [shutdown, _], the reasons after which
 * a transient child is not restarted. */
bool emi_sup_clean_exit(em_term reason);

#endif
