/*
 * hooks.c - where the runtime hands a remote pid to distribution.
 *
 * em_send, em_exit_pid, em_link, em_unlink, em_monitor and em_demonitor call
 * these for a pid whose node bits are not 0, and a process's end calls the
 * fire_* ones for each relation it had with a remote process. Each packs one
 * item into the peer's buffer on the caller's thread (peer.c says when it goes
 * out). A pid of a node life that is gone is not an error: what is sent to it
 * is dropped and counted, as a send to a dead local process is.
 */
#include <stdio.h>
#include <string.h>

#include "core/rt.h"
#include "dist_int.h"

#define LOCAL_BITS 0x0000FFFFFFFFFFFFull

/* The node of a remote pid; NULL for a pid no node-table entry stands for. */
static emi_node *node_of(em_pid_t pid)
{
    if (!emi_dist_on())
        return NULL;
    emi_node *n = emi_node_get(em_pid_node(pid));
    return n && n->peer ? n : NULL;
}

static bool is_dead(emi_node *n)
{
    /* Relaxed: a life marked dead stays dead; a late look only sends an item
     * that the peer's check of the creation drops. */
    return atomic_load_explicit(&n->dead, memory_order_relaxed) != 0;
}

/* The start of a SEND to `to`: the packer with [1, from, to] packed, or NULL
 * with *rc set (EM_EINVAL for a pid no node stands for; 0 for a dead life,
 * whose messages are dropped as a dead local process's are). */
static msgpack_packer *send_begin(emi_proc *self, em_pid_t to, emi_node **np, int *rc)
{
    emi_node *n = node_of(to);
    *np = n;
    *rc = n ? 0 : EM_EINVAL;
    if (!n)
        return NULL;
    emi_charge(self, 1);
    if (is_dead(n)) {
        emi_dist_count(&emi_dist_g.dropped, 1);
        return NULL;
    }
    msgpack_packer *pk = emi_pack_begin();
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, self->pid);
    msgpack_pack_uint64(pk, to & LOCAL_BITS);
    return pk;
}

static int send_end(emi_proc *self, emi_node *n, int rc)
{
    int c = emi_pack_commit(n->peer, self->pid, n->idx, rc == 0, true);
    return rc ? rc : c == EM_ENOPROC ? 0 : c;   /* an unreachable node is not an error */
}

int emi_dist_send(emi_proc *self, em_pid_t to, em_term msg)
{
    emi_node *n;
    int rc;
    msgpack_packer *pk = send_begin(self, to, &n, &rc);
    if (!pk)
        return rc;
    return send_end(self, n, emi_codec_pack(pk, msg, &emi_dist_codec_nodes));
}

int emi_dist_send_array(emi_proc *self, em_pid_t to, size_t cnt, const em_term *items)
{
    emi_node *n;
    int rc;
    msgpack_packer *pk = send_begin(self, to, &n, &rc);
    if (!pk)
        return rc;
    msgpack_pack_array(pk, cnt);
    for (size_t i = 0; i < cnt && rc == 0; i++)
        rc = emi_codec_pack(pk, items[i], &emi_dist_codec_nodes);
    return send_end(self, n, rc);
}

/* [op, from, to] or [op, from, to, id] or [op, from, to, reason]. */
static int send_op(emi_node *n, int op, em_pid_t from, em_pid_t to, bool has_id, uint64_t id,
                   em_term reason, bool wait)
{
    msgpack_packer *pk = emi_pack_begin();
    msgpack_pack_array(pk, 3 + (has_id ? 1 : 0) + (reason != EM_NONE ? 1 : 0));
    msgpack_pack_uint8(pk, (uint8_t)op);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, to & LOCAL_BITS);
    if (has_id)
        msgpack_pack_uint64(pk, id);
    int rc = reason == EM_NONE ? 0 : emi_codec_pack(pk, reason, &emi_dist_codec_nodes);
    int c = emi_pack_commit(n->peer, from, n->idx, rc == 0, wait);
    return rc ? rc : c;
}

int emi_dist_link(emi_proc *self, em_pid_t to, bool on)
{
    emi_node *n = node_of(to);
    if (!n)
        return EM_EINVAL;
    if (!on) {
        emi_xrel_remove(n->peer, XREL_LINK, self->pid, to, 0);
        if (!is_dead(n))
            send_op(n, OP_UNLINK, self->pid, to, false, 0, EM_NONE, true);
        return 0;
    }
    if (is_dead(n))
        return EM_ENOPROC;
    emi_xrel_add(n->peer, XREL_LINK, self->pid, to, 0);
    if (send_op(n, OP_LINK, self->pid, to, false, 0, EM_NONE, true) != 0) {
        emi_xrel_remove(n->peer, XREL_LINK, self->pid, to, 0);
        return EM_ENOPROC;
    }
    return 0;
}

int emi_dist_monitor(emi_proc *self, em_pid_t to, uint64_t id)
{
    emi_node *n = node_of(to);
    if (!n)
        return EM_EINVAL;
    if (is_dead(n))
        return EM_ENOPROC;
    emi_xrel_add(n->peer, XREL_MON_OUT, self->pid, to, id);
    if (send_op(n, OP_MONITOR, self->pid, to, true, id & EMI_REMOTE_MON_MASK, EM_NONE, true) != 0) {
        emi_xrel_remove(n->peer, XREL_MON_OUT, self->pid, to, id);
        return EM_ENOPROC;
    }
    return 0;
}

int emi_dist_demonitor(emi_proc *self, uint64_t id)
{
    if (!emi_dist_on())
        return 0;
    emi_node *n = emi_node_get((uint32_t)((id >> 46) & 0xFFFF));
    if (!n || !n->peer)
        return 0;
    em_pid_t target = 0;
    if (!emi_xrel_take(n->peer, XREL_MON_OUT, self->pid, 0, id, &target))
        return 0;
    if (!is_dead(n))
        send_op(n, OP_DEMONITOR, self->pid, target, true, id & EMI_REMOTE_MON_MASK, EM_NONE, true);
    return 1;
}

int emi_dist_exit(emi_proc *self, em_pid_t to, em_term reason)
{
    emi_node *n = node_of(to);
    if (!n)
        return EM_EINVAL;
    emi_charge(self, 1);
    if (!is_dead(n))
        send_op(n, OP_EXIT2, self->pid, to, false, 0, reason, true);
    return 0;
}

void emi_dist_fire_link(em_pid_t self, em_pid_t remote, em_term reason)
{
    emi_node *n = node_of(remote);
    if (!n)
        return;
    emi_xrel_remove(n->peer, XREL_LINK, self, remote, 0);
    /* A process's end never waits: the item goes past the buffer's bound. */
    if (!is_dead(n))
        send_op(n, OP_EXIT, self, remote, false, 0, reason, false);
}

void emi_dist_fire_down(em_pid_t self, em_pid_t watcher, uint64_t key, em_term reason)
{
    emi_node *n = node_of(watcher);
    if (!n)
        return;
    emi_xrel_remove(n->peer, XREL_MON_IN, self, watcher, key);
    if (!is_dead(n))
        send_op(n, OP_DOWN, self, watcher, true, key & EMI_REMOTE_MON_MASK, reason, false);
}

/* Remote spawn: [10, from, req, function, arg, flags, ref]. */
int emi_dist_spawn_request(emi_proc *self, emi_node *n, uint64_t req, const char *fn, em_term arg,
                           int flags, uint64_t ref)
{
    if (is_dead(n))
        return EM_ENOPROC;
    msgpack_packer *pk = emi_pack_begin();
    size_t fl = strlen(fn);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, OP_SPAWN_REQ);
    msgpack_pack_uint64(pk, self->pid);
    msgpack_pack_uint64(pk, req);
    msgpack_pack_str(pk, fl);
    msgpack_pack_str_body(pk, fn, fl);
    int rc = emi_codec_pack(pk, arg, &emi_dist_codec_nodes);
    msgpack_pack_uint64(pk, (uint64_t)flags);
    msgpack_pack_uint64(pk, ref & EMI_REMOTE_MON_MASK);
    int c = emi_pack_commit(n->peer, self->pid, n->idx, rc == 0, true);
    return rc ? rc : c;
}

/* [11, to, req, child or 0, flags, ref, error]: sent by the child itself (or by
 * net_kernel when there is no child), so it travels ahead of the child's other
 * items. */
void emi_dist_spawn_reply(emi_peer *pr, em_pid_t from, em_pid_t to, uint64_t req, em_pid_t child,
                          uint64_t flags, uint64_t ref, em_term error)
{
    msgpack_packer *pk = emi_pack_begin();
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, OP_SPAWN_REPLY);
    msgpack_pack_uint64(pk, to & LOCAL_BITS);
    msgpack_pack_uint64(pk, req);
    msgpack_pack_uint64(pk, child);
    msgpack_pack_uint64(pk, flags);
    msgpack_pack_uint64(pk, ref);
    int rc = emi_codec_pack(pk, error, &emi_dist_codec_nodes);
    emi_pack_commit(pr, from, 0, rc == 0, false);
}

/* [2, from, name, msg] */
int emi_dist_send_named(emi_proc *self, emi_peer *pr, em_term name, em_term msg)
{
    msgpack_packer *pk = emi_pack_begin();
    size_t nl;
    const char *s = em_atom_name(name);
    nl = strlen(s);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_REG_SEND);
    msgpack_pack_uint64(pk, self->pid);
    msgpack_pack_str(pk, nl);
    msgpack_pack_str_body(pk, s, nl);
    int rc = emi_codec_pack(pk, msg, &emi_dist_codec_nodes);
    int c = emi_pack_commit(pr, self->pid, 0, rc == 0, true);
    return rc ? rc : c == EM_ENOPROC ? 0 : c;
}
