/*
 * signal.c - links, monitors and exit signals, with Erlang's semantics.
 *
 * Relations live in per-process tables (relations.c) that the processes at both
 * ends update under each other's locks, so setting a link or a monitor never
 * wakes its target. What a process must act on itself goes through its mailbox,
 * in order with its messages: an exit signal is a block tagged SIG_EXIT or
 * SIG_EXIT_LINK that already holds the message ['EXIT', From, Reason], so that a
 * process trapping exits keeps it as it is, and one that does not reads the
 * reason from it and ends. Senders of signals also raise `sig_pending`, which a
 * process looks at after every switch, so that a process that never receives is
 * still reached within a slice. A DOWN message is an ordinary message.
 *
 * When a process ends, its scheduler (not the process) tells its relations:
 * an exit signal to each link, DOWN to each monitor of it, and the removal of
 * its own monitors from their targets' tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rt.h"
#include "proc/relations.h"

static em_term a_exit, a_down, a_process, a_normal, a_kill, a_killed, a_noproc, a_badarg,
    a_stack_overflow, a_noconnection;

void emi_signals_init(void)
{
    a_exit = em_atom("EXIT");
    a_down = em_atom("DOWN");
    a_process = em_atom("process");
    a_normal = em_atom("normal");
    a_kill = em_atom("kill");
    a_killed = em_atom("killed");
    a_noproc = em_atom("noproc");
    a_badarg = em_atom("badarg");
    a_stack_overflow = em_atom("stack_overflow");
    a_noconnection = em_atom("noconnection");
}

em_term emi_atom_stack_overflow(void) { return a_stack_overflow; }

/* ---------------------------------------------------------- signal blocks */

/* A block holding `words` words of fixed layout, then a copy of reason. */
static emi_block *block_with_reason(size_t words, em_term reason, em_term *reason_copy)
{
    int64_t rsz = emi_is_box(reason) ? emi_term_size(reason) : 0;
    if (rsz < 0) {
        reason = a_badarg;   /* checked by every caller; never trust it here */
        rsz = 0;
    }
    emi_block *b = emi_block_new(words * 8 + (size_t)rsz);
    if (!b)
        return NULL;
    unsigned char *tail = b->data + words * 8;
    *reason_copy = rsz ? emi_term_copy(reason, tail, &b->offheap) : reason;
    b->used = (uint32_t)(words * 8 + (size_t)rsz);
    return b;
}

/* ['EXIT', From, Reason] */
static emi_block *exit_block(em_pid_t from, em_term reason, int sig)
{
    em_term r;
    emi_block *b = block_with_reason(6, reason, &r);
    if (!b)
        return NULL;
    uint64_t *w = (uint64_t *)b->data;
    w[0] = emi_header(BOX_ARRAY, 3);
    w[1] = a_exit;
    w[2] = (em_term)(uintptr_t)&w[4];
    w[3] = r;
    w[4] = emi_header(BOX_PID, 1);
    w[5] = from;
    b->term = (em_term)(uintptr_t)w;
    b->sig = (uint32_t)sig;
    return b;
}

/* ['DOWN', Ref, process, Pid, Reason] */
static emi_block *down_block(uint64_t ref_id, em_pid_t pid, em_term reason)
{
    em_term r;
    emi_block *b = block_with_reason(11, reason, &r);
    if (!b)
        return NULL;
    uint64_t *w = (uint64_t *)b->data;
    w[0] = emi_header(BOX_ARRAY, 5);
    w[1] = a_down;
    w[2] = (em_term)(uintptr_t)&w[6];
    w[3] = a_process;
    w[4] = (em_term)(uintptr_t)&w[9];
    w[5] = r;
    w[6] = emi_header(BOX_REF, 2);
    w[7] = 0;
    w[8] = ref_id;
    w[9] = emi_header(BOX_PID, 1);
    w[10] = pid;
    b->term = (em_term)(uintptr_t)w;
    return b;
}

static void lost(const char *what)
{
    /* Out of memory while telling a relation: say so once rather than die. */
    static atomic_int said;
    if (!atomic_exchange_explicit(&said, 1, memory_order_relaxed))
        fprintf(stderr, "ember: out of memory: a %s was lost\n", what);
}

/* Push an exit signal into q's mailbox and make sure q looks at it soon. */
static void send_exit_signal(emi_proc *q, emi_block *b)
{
    emi_deliver_to(q, b);
    /* Release: a process that sees the flag finds the block in its inbox. */
    atomic_store_explicit(&q->sig_pending, 1, memory_order_release);
}

static void send_down_to(em_pid_t to, uint64_t ref_id, em_pid_t pid, em_term reason)
{
    emi_block *b = down_block(ref_id, pid, reason);
    if (b)
        emi_deliver(to, b);
    else
        lost("DOWN message");
}

/* ------------------------------------------------------- handling signals */

_Noreturn void emi_proc_end(emi_proc *p, em_term reason)
{
    p->last.exit_reason = reason;
    emi_switch_out(p, WHY_EXIT);
    emi_fatal("an ended process was resumed");
}

bool emi_signal_handle(emi_proc *p, emi_block *b)
{
    uint64_t *w = emi_box(b->term);
    em_pid_t from = emi_box(w[2])[1];
    em_term reason = w[3];
    if (b->sig == SIG_EXIT_LINK) {
        /* Act only if the link still stands: unlink after the peer died, but
         * before this signal was handled, cancels it (as in Erlang). */
        emi_rel_lock(p);
        emi_rel *e = emi_rel_find(p, REL_LINK, from);
        bool live = e && e->exiting;
        if (live)
            emi_rel_remove(p, REL_LINK, from);
        emi_rel_unlock(p);
        if (!live) {
            emi_block_free(b);
            return false;
        }
    } else if (reason == a_kill) {
        emi_block_free(b);
        emi_proc_end(p, a_killed);   /* untrappable */
    }
    /* Written only by this process; others read it for introspection. */
    if (emi_proc_flag(p, EMI_PF_TRAP_EXIT)) {
        b->sig = SIG_NONE;
        return true;
    }
    if (reason == a_normal) {
        /* A normal exit does not end a process that does not trap exits, unless
         * it sent the signal to itself. */
        bool self = b->sig == SIG_EXIT && from == p->pid;
        emi_block_free(b);
        if (self)
            emi_proc_end(p, a_normal);
        return false;
    }
    emi_heap_adopt(&p->heap, b);   /* the reason lives in b */
    emi_proc_end(p, reason);
}

void emi_signals_take(emi_proc *p)
{
    /* Acquire pairs with the sender's release: its block is in the inbox. */
    if (atomic_exchange_explicit(&p->sig_pending, 0, memory_order_acquire))
        emi_mailbox_take(p);
}

/* ---------------------------------------------------------- as a process ends */

void emi_relations_fire(emi_proc *p)
{
    em_term reason = p->last.exit_reason ? p->last.exit_reason : a_normal;
    /* DOWN messages go out under our own lock, so that a demonitor, which takes
     * it, finds either its monitor still here or its DOWN already delivered. */
    emi_rel_lock(p);
    emi_reltab *t = emi_rel_take(p);
    for (uint32_t i = 0; t && i < t->cap; i++)
        if (t->e[i].kind == REL_MON_IN) {
            if (em_pid_node(t->e[i].pid) != 0)
                emi_dist_fire_down(p->pid, t->e[i].pid, t->e[i].key, reason);
            else
                send_down_to(t->e[i].pid, t->e[i].key, p->pid, reason);
        }
    emi_rel_unlock(p);
    if (!t)
        return;
    /* Links: the peer's lock, never ours, is held, so two linked processes that
     * end at once cannot wait for each other. */
    for (uint32_t i = 0; i < t->cap; i++) {
        emi_rel *e = &t->e[i];
        if (e->kind != REL_LINK)
            continue;
        if (em_pid_node(e->pid) != 0) {
            emi_dist_fire_link(p->pid, e->pid, reason);
            continue;
        }
        emi_proc *q = emi_proc_lookup(e->pid);
        if (!q)
            continue;
        emi_rel_lock(q);
        emi_rel *r = emi_rel_find(q, REL_LINK, p->pid);
        bool sent = false;
        if (r && !r->exiting) {
            emi_block *b = exit_block(p->pid, reason, SIG_EXIT_LINK);
            if (b) {
                r->exiting = 1;
                send_exit_signal(q, b);
                sent = true;
            } else {
                lost("link exit signal");
            }
        }
        emi_rel_unlock(q);
        if (sent && reason != a_normal)
            emi_preempt_request(q);   /* a linked process spinning in C hears now */
    }
    emi_reltab_free(t);
}

/* ------------------------------------------- relations with other nodes */

void emi_link_exit_deliver(em_pid_t local, em_pid_t from, em_term reason)
{
    emi_proc *q = emi_proc_lookup(local);
    if (!q)
        return;
    emi_rel_lock(q);
    emi_rel *r = emi_rel_find(q, REL_LINK, from);
    bool sent = false;
    if (r && !r->exiting) {
        emi_block *b = exit_block(from, reason, SIG_EXIT_LINK);
        if (b) {
            r->exiting = 1;
            send_exit_signal(q, b);
            sent = true;
        } else {
            lost("link exit signal");
        }
    }
    emi_rel_unlock(q);
    if (sent && reason != a_normal)
        emi_preempt_request(q);
}

void emi_exit2_deliver(em_pid_t local, em_pid_t from, em_term reason)
{
    emi_proc *q = emi_proc_lookup(local);
    if (!q)
        return;
    emi_block *b = exit_block(from, reason, SIG_EXIT);
    if (!b) {
        lost("exit signal");
        return;
    }
    send_exit_signal(q, b);
    emi_preempt_request(q);
}

void emi_down_deliver(em_pid_t local, uint64_t id, em_pid_t from, em_term reason)
{
    send_down_to(local, id, from, reason);
}

/* Add a relation of kind/key to local's table (unless it is there), or
 * EM_ENOPROC if local is gone or ending: the one rule both remote links and
 * remote monitors follow. */
static int add_remote(em_pid_t local, int kind, uint64_t key, em_pid_t pid)
{
    emi_proc *q = emi_proc_lookup(local);
    if (!q)
        return EM_ENOPROC;
    int rc = 0;
    emi_rel_lock(q);
    if (atomic_load_explicit(&q->rel_dead, memory_order_relaxed))   /* under q's lock */
        rc = EM_ENOPROC;
    else if (!emi_rel_find(q, kind, key))
        rc = emi_rel_add(q, kind, key, pid);
    emi_rel_unlock(q);
    return rc;
}

static void remove_remote(em_pid_t local, int kind, uint64_t key)
{
    emi_proc *q = emi_proc_lookup(local);
    if (!q)
        return;
    emi_rel_lock(q);
    emi_rel_remove(q, kind, key);
    emi_rel_unlock(q);
}

int emi_link_add_remote(em_pid_t local, em_pid_t remote)
{
    return add_remote(local, REL_LINK, remote, remote);
}

void emi_link_remove_remote(em_pid_t local, em_pid_t remote)
{
    remove_remote(local, REL_LINK, remote);
}

int emi_monitor_add_remote(em_pid_t local, uint64_t key, em_pid_t watcher)
{
    return add_remote(local, REL_MON_IN, key, watcher);
}

void emi_monitor_remove_remote(em_pid_t local, uint64_t key)
{
    remove_remote(local, REL_MON_IN, key);
}

/* ------------------------------------------------------------------ the API */

/* A pid the API accepts: local and in range, or of a known remote node once
 * distribution runs (*remote set). */
static int check_pid_r(em_pid_t pid, bool *remote)
{
    emi_rt *rt = emi_rt_g;
    uint32_t idx = em_pid_index(pid);
    *remote = em_pid_node(pid) != 0;
    if (idx == 0 || (!*remote && idx > rt->cfg.max_processes))
        return EM_EINVAL;
    return 0;
}

/* A reason must be a well-formed term that fits in a message. */
static int check_reason(em_term reason)
{
    if (reason == EM_NONE)
        return EM_EINVAL;
    if (!emi_is_box(reason))
        return 0;
    int64_t n = emi_term_size(reason);
    if (n < 0)
        return (int)n;
    if ((uint64_t)n > emi_rt_g->cfg.max_term_bytes)
        return EM_ETOOBIG;
    return 0;
}

_Noreturn void em_exit(em_term reason)
{
    emi_proc *p = emi_current();
    if (!p)
        emi_fatal("em_exit called outside a process");
    emi_proc_end(p, check_reason(reason) ? a_badarg : reason);
}

int em_exit_pid(em_pid_t pid, em_term reason)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    bool remote;
    int rc = check_pid_r(pid, &remote);
    if (!rc)
        rc = check_reason(reason);
    if (rc)
        return rc;
    if (remote)
        return emi_dist_exit(p, pid, reason);
    emi_proc *q = emi_proc_lookup(pid);
    if (!q)
        return 0;   /* as Erlang: an exit signal to a dead process is dropped */
    emi_block *b = exit_block(p->pid, reason, SIG_EXIT);
    if (!b)
        return EM_ENOMEM;
    send_exit_signal(q, b);
    if (q == p)
        emi_signals_check(p);   /* to itself: acted on before the call returns */
    else
        emi_preempt_request(q);
    emi_charge(p, 1);
    return 0;
}

bool em_trap_exit(bool on)
{
    emi_proc *p = emi_current();
    if (!p)
        return false;
    return emi_proc_flag_set(p, EMI_PF_TRAP_EXIT, on);
}

/* Take the relation locks of two processes in a fixed order (process table index),
 * so two processes linking or unlinking each other at once cannot deadlock. No
 * other path holds two relation locks. */
static void lock_pair(emi_proc *a, emi_proc *b)
{
    if (em_pid_index(a->pid) > em_pid_index(b->pid)) {
        emi_proc *t = a;
        a = b;
        b = t;
    }
    emi_rel_lock(a);
    emi_rel_lock(b);
}

static void unlock_pair(emi_proc *a, emi_proc *b)
{
    emi_rel_unlock(a);
    emi_rel_unlock(b);
}

int em_link(em_pid_t pid)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    bool remote;
    int rc = check_pid_r(pid, &remote);
    if (rc || pid == p->pid)
        return rc;
    if (remote) {
        /* Our half now, theirs when the LINK arrives there; a peer that cannot
         * be reached answers as a dead process does. */
        emi_rel_lock(p);
        if (!emi_rel_find(p, REL_LINK, pid))
            rc = emi_rel_add(p, REL_LINK, pid, pid);
        emi_rel_unlock(p);
        if (!rc && (rc = emi_dist_link(p, pid, true)) != 0) {
            emi_rel_lock(p);
            emi_rel_remove(p, REL_LINK, pid);
            emi_rel_unlock(p);
            if (rc == EM_ENOPROC && emi_proc_flag(p, EMI_PF_TRAP_EXIT)) {
                emi_block *b = exit_block(pid, a_noconnection, SIG_NONE);
                if (!b)
                    return EM_ENOMEM;
                emi_deliver_to(p, b);
                rc = 0;
            }
        }
        emi_charge(p, 1);
        return rc;
    }
    /* Both tables change in one critical section under both locks: a link is
     * never half made, whatever the peer does meanwhile (unlink, link, end). */
    emi_proc *q = emi_proc_lookup(pid);
    bool dead = !q;
    if (q) {
        lock_pair(p, q);
        dead = atomic_load_explicit(&q->rel_dead, memory_order_relaxed);   /* under q's lock */
        if (!dead) {
            if (!emi_rel_find(p, REL_LINK, pid))
                rc = emi_rel_add(p, REL_LINK, pid, pid);
            if (!rc && !emi_rel_find(q, REL_LINK, p->pid) &&
                (rc = emi_rel_add(q, REL_LINK, p->pid, p->pid)) != 0)
                emi_rel_remove(p, REL_LINK, pid);
        } else {
            /* Linked before it died: its exit signal is on its way to us. */
            emi_rel *e = emi_rel_find(p, REL_LINK, pid);
            if (e && e->exiting)
                dead = false;
        }
        unlock_pair(p, q);
    }
    if (rc)
        return rc;
    if (dead) {
        if (!emi_proc_flag(p, EMI_PF_TRAP_EXIT))
            return EM_ENOPROC;
        emi_block *b = exit_block(pid, a_noproc, SIG_NONE);
        if (!b)
            return EM_ENOMEM;
        emi_deliver_to(p, b);
    }
    emi_charge(p, 1);
    return 0;
}

int em_unlink(em_pid_t pid)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    bool remote;
    int rc = check_pid_r(pid, &remote);
    if (rc || pid == p->pid)
        return rc;
    emi_proc *q = remote ? NULL : emi_proc_lookup(pid);
    if (remote) {
        emi_rel_lock(p);
        bool had = emi_rel_remove(p, REL_LINK, pid);
        emi_rel_unlock(p);
        if (had)
            emi_dist_link(p, pid, false);
    } else if (q) {
        lock_pair(p, q);
        emi_rel_remove(p, REL_LINK, pid);
        emi_rel_remove(q, REL_LINK, p->pid);
        unlock_pair(p, q);
    } else {
        emi_rel_lock(p);
        emi_rel_remove(p, REL_LINK, pid);
        emi_rel_unlock(p);
    }
    emi_charge(p, 1);
    return 0;
}

/* A monitor is recorded only in its target's table: setting one touches one
 * process, and a process holding a million monitors keeps no table for them.
 * Its reference says where the monitor lives instead: the target's process
 * table index in the low bits, under a tag bit that keeps these ids apart from
 * em_make_ref's. */
#define MON_TAG (1ull << 63)
#define MON_INDEX_BITS 28

uint64_t emi_monitor_ref_id(em_pid_t target)
{
    return MON_TAG | (emi_ref_next() << MON_INDEX_BITS) | em_pid_index(target);
}

int em_monitor(em_pid_t pid, em_term *ref)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    bool remote;
    int rc = check_pid_r(pid, &remote);
    if (rc)
        return rc;
    if (remote) {
        /* The monitor is recorded at the target's node; this node keeps the id
         * (for demonitor and for noconnection), tagged as remote. */
        uint64_t id = EMI_REMOTE_MON_BIT | ((uint64_t)em_pid_node(pid) << 46) |
                      (emi_ref_next() & EMI_REMOTE_MON_MASK);
        em_term r = emi_ref_box(&p->heap, 0, id);
        if (r == EM_NONE)
            return EM_ENOMEM;
        if (ref)
            *ref = r;
        rc = emi_dist_monitor(p, pid, id);
        if (rc == EM_ENOPROC) {
            send_down_to(p->pid, id, pid, a_noconnection);
            rc = 0;
        }
        emi_charge(p, 1);
        return rc;
    }
    uint64_t id = emi_monitor_ref_id(pid);
    em_term r = emi_ref_box(&p->heap, 0, id);
    if (r == EM_NONE)
        return EM_ENOMEM;
    if (ref)
        *ref = r;
    if (pid == p->pid)
        return 0;   /* a process cannot see its own DOWN: nothing to record */
    emi_proc *q = emi_proc_lookup(pid);
    bool dead = true;
    if (q) {
        emi_rel_lock(q);
        dead = atomic_load_explicit(&q->rel_dead, memory_order_relaxed);   /* under q's lock */
        if (!dead)
            rc = emi_rel_add(q, REL_MON_IN, id, p->pid);
        emi_rel_unlock(q);
        if (rc)
            return rc;
    }
    if (dead)
        send_down_to(p->pid, id, pid, a_noproc);
    emi_charge(p, 1);
    return 0;
}

static bool is_down_for(em_term t, uint64_t id)
{
    if (!emi_is_box(t) || emi_box_type(t) != BOX_ARRAY || emi_box_size(t) != 5)
        return false;
    uint64_t *w = emi_box(t);
    return w[1] == a_down && emi_is_box(w[2]) && emi_box_type(w[2]) == BOX_REF &&
           emi_box(w[2])[1] == 0 && emi_box(w[2])[2] == id;
}

int em_demonitor(em_term ref, int flags)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    if (!emi_is_box(ref) || emi_box_type(ref) != BOX_REF || emi_box(ref)[1] != 0 ||
        (flags & ~EM_DEMONITOR_FLUSH))
        return EM_EINVAL;
    uint64_t id = emi_box(ref)[2];
    bool active = false;
    if (!(id & MON_TAG) && (id & EMI_REMOTE_MON_BIT)) {
        active = emi_dist_demonitor(p, id) == 1;
        if (flags & EM_DEMONITOR_FLUSH)
            emi_mailbox_remove(p, is_down_for, id);
        emi_charge(p, 1);
        return active ? 1 : 0;
    }
    uint32_t idx = (uint32_t)(id & ((1u << MON_INDEX_BITS) - 1));
    if ((id & MON_TAG) && idx && idx <= emi_rt_g->cfg.max_processes) {
        /* Whatever process holds the slot now: if it is the target, its table
         * has the monitor or it has delivered the DOWN already (under this same
         * lock); if the slot was reused, the target is long gone. The struct
         * stays valid while this process runs (QSBR). Acquire pairs with the
         * release that published it. */
        emi_proc *q = atomic_load_explicit(&emi_rt_g->table[idx], memory_order_acquire);
        if (q) {
            emi_rel_lock(q);
            emi_rel *e = emi_rel_find(q, REL_MON_IN, id);
            active = e && e->pid == p->pid;
            if (active)
                emi_rel_remove(q, REL_MON_IN, id);
            emi_rel_unlock(q);
        }
    }
    if (flags & EM_DEMONITOR_FLUSH)
        emi_mailbox_remove(p, is_down_for, id);
    emi_charge(p, 1);
    return active ? 1 : 0;
}

int emi_spawn_relate(emi_proc *parent, emi_proc *child, int opts, uint64_t *ref_id)
{
    /* The child is not visible to anyone yet: its table needs no lock. */
    if (opts & EMI_SPAWN_MONITOR) {
        *ref_id = emi_monitor_ref_id(child->pid);
        return emi_rel_add(child, REL_MON_IN, *ref_id, parent->pid);
    }
    int rc = emi_rel_add(child, REL_LINK, parent->pid, parent->pid);
    if (rc)
        return rc;
    emi_rel_lock(parent);
    rc = emi_rel_add(parent, REL_LINK, child->pid, child->pid);
    emi_rel_unlock(parent);
    if (rc) {
        /* The child's ext exists: its link was added above. */
        emi_proc_ext *x = emi_proc_ext_peek(child);
        emi_reltab_free(x->rels);
        x->rels = NULL;
    }
    return rc;
}

size_t emi_relations_counts(emi_proc *p, uint32_t *links, uint32_t *monitored_by)
{
    emi_rel_lock(p);
    emi_rel_count(p, links, monitored_by);
    emi_proc_ext *x = emi_proc_ext_peek(p);
    size_t bytes = x && x->rels ? emi_reltab_bytes(x->rels->cap) : 0;
    emi_rel_unlock(p);
    return bytes;
}
