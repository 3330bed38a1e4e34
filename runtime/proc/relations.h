/*
 * relations.h - a process's links and monitors, and the lock that guards them.
 *
 * Each process keeps one small open-addressing table of its relations (a monitor
 * is recorded at its target only: see em_monitor in signal.c):
 *   REL_LINK     a link to `pid` (key: that pid)
 *   REL_MON_IN   `pid` monitors this process with the ref whose counter is `key`
 * The table is written by its owner (link, monitor, their undoing) and by the
 * processes whose death affects it, so every access holds the owner's `rel_lock`,
 * a spin lock held for a few table operations and never across a switch. A
 * process that is ending sets `rel_dead` under the lock and takes its table away:
 * from then on, nobody can add a relation to it, and a late link or monitor sees
 * `noproc` instead, as in Erlang.
 */
#ifndef EMBER_PROC_RELATIONS_H
#define EMBER_PROC_RELATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rt.h"

enum emi_rel_kind {
    REL_LINK = 1,
    REL_MON_IN = 3,
};

/* An entry of a relation table. `exiting` marks a link whose peer has died and
 * whose exit signal is on its way: unlink removes the entry, and the signal, when
 * handled, acts only if the entry is still there. */
typedef struct emi_rel {
    uint64_t key;
    em_pid_t pid;
    uint8_t kind;       /* 0 = empty slot */
    uint8_t exiting;
} emi_rel;

typedef struct emi_reltab {
    uint32_t cap;       /* a power of two */
    uint32_t len;
    emi_rel e[];
} emi_reltab;

/* emi_rel_lock / emi_rel_unlock: p's relation lock (any thread; never held across
 * a switch or while taking another process's lock). */
void emi_rel_lock(emi_proc *p);
void emi_rel_unlock(emi_proc *p);

/* The table operations: the caller holds p's lock. */
emi_rel *emi_rel_find(emi_proc *p, int kind, uint64_t key);
int emi_rel_add(emi_proc *p, int kind, uint64_t key, em_pid_t pid);   /* 0 or EM_ENOMEM */
bool emi_rel_remove(emi_proc *p, int kind, uint64_t key);
void emi_rel_count(emi_proc *p, uint32_t *links, uint32_t *monitored_by);

/* emi_rel_take: under the lock, mark p dead and detach its table (which the
 * caller frees with emi_reltab_free). */
emi_reltab *emi_rel_take(emi_proc *p);
void emi_reltab_free(emi_reltab *t);
size_t emi_reltab_bytes(uint32_t cap);      /* what a table of cap entries takes */

#endif
