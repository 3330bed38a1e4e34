/*
 * ops.c - what arrives from a peer, and what a peer going down sets off.
 *
 * Runs on the dist thread. A frame is a msgpack stream: a header, then items,
 * each an array whose first element is an emi_op. Nothing in a frame is trusted:
 * a malformed item drops the rest of its frame, is counted and logged (a few
 * times, then quietly), and never takes the node down. Terms are decoded into
 * the thread's scratch heap, copied into a message block for the receiver, and
 * the scratch is released item by item, so a frame leaves nothing behind.
 *
 * Cross-node links and monitors are also recorded per peer (emi_xrel) so that
 * when the peer goes down each one fires with reason noconnection, as in Erlang.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rt.h"
#include "dist_int.h"
#include "mem/heap.h"

static em_term a_noproc, a_noconnection, a_nodeup, a_nodedown, a_spawn, a_spawn_reply;

/* ------------------------------------------------------------- xrels */

static size_t xrel_hash(int kind, em_pid_t local, em_pid_t remote, uint64_t ref)
{
    uint64_t k = kind == XREL_LINK ? remote : ref;
    uint64_t h = (local * 0x9E3779B97F4A7C15ull) ^ (k * 0xC2B2AE3D27D4EB4Full) ^ (uint64_t)kind;
    return (size_t)(h >> 40) & (EMI_XREL_BUCKETS - 1);
}

static bool xrel_match(const emi_xrel *r, int kind, em_pid_t local, em_pid_t remote, uint64_t ref)
{
    if (r->kind != kind || r->local != local)
        return false;
    return kind == XREL_LINK ? r->remote == remote : r->ref == ref;
}

void emi_xrel_add(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref)
{
    pthread_mutex_lock(&pr->rel_lock);
    if (!pr->rels)
        pr->rels = calloc(EMI_XREL_BUCKETS, sizeof *pr->rels);
    emi_xrel *r = pr->rels ? malloc(sizeof *r) : NULL;
    if (r) {
        size_t b = xrel_hash(kind, local, remote, ref);
        bool dup = false;
        if (kind == XREL_LINK)
            for (emi_xrel *e = pr->rels[b]; e; e = e->next)
                dup |= xrel_match(e, kind, local, remote, ref);
        if (dup) {
            free(r);
        } else {
            *r = (emi_xrel){pr->rels[b], kind, local, remote, ref};
            pr->rels[b] = r;
            pr->nrels++;
        }
    }
    pthread_mutex_unlock(&pr->rel_lock);
}

/* Remove the matching entry; for XREL_MON_OUT `remote` may be 0 (unknown) and
 * is then set from the entry through *found_remote. */
bool emi_xrel_take(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref,
                      em_pid_t *found_remote)
{
    bool found = false;
    pthread_mutex_lock(&pr->rel_lock);
    if (pr->rels) {
        emi_xrel **pp = &pr->rels[xrel_hash(kind, local, remote, ref)];
        for (; *pp; pp = &(*pp)->next)
            if (xrel_match(*pp, kind, local, remote, ref)) {
                emi_xrel *r = *pp;
                *pp = r->next;
                if (found_remote)
                    *found_remote = r->remote;
                free(r);
                pr->nrels--;
                found = true;
                break;
            }
    }
    pthread_mutex_unlock(&pr->rel_lock);
    return found;
}

bool emi_xrel_remove(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref)
{
    return emi_xrel_take(pr, kind, local, remote, ref, NULL);
}

void emi_xrels_free(emi_peer *pr)
{
    if (!pr->rels)
        return;
    for (size_t b = 0; b < EMI_XREL_BUCKETS; b++)
        while (pr->rels[b]) {
            emi_xrel *r = pr->rels[b];
            pr->rels[b] = r->next;
            free(r);
        }
    free(pr->rels);
    pr->rels = NULL;
    pr->nrels = 0;
}

/* ------------------------------------------------------ node monitors */

typedef struct emi_nmon {
    struct emi_nmon *next;
    em_pid_t pid;
    em_term node;      /* an atom, or EM_NONE for every node */
} emi_nmon;

int emi_nmon_set(em_pid_t pid, em_term node, bool on)
{
    emi_dist *d = &emi_dist_g;
    pthread_mutex_lock(&d->nmon_lock);
    int rc = 0;
    if (on) {
        emi_nmon *m = malloc(sizeof *m);
        if (m) {
            *m = (emi_nmon){d->nmons, pid, node};
            d->nmons = m;
        } else {
            rc = EM_ENOMEM;
        }
    } else {
        for (emi_nmon **pp = &d->nmons; *pp;)
            if ((*pp)->pid == pid && (*pp)->node == node) {
                emi_nmon *m = *pp;
                *pp = m->next;
                free(m);
            } else {
                pp = &(*pp)->next;
            }
    }
    pthread_mutex_unlock(&d->nmon_lock);
    return rc;
}

void emi_nmons_free(void)
{
    emi_dist *d = &emi_dist_g;
    pthread_mutex_lock(&d->nmon_lock);
    while (d->nmons) {
        emi_nmon *m = d->nmons;
        d->nmons = m->next;
        free(m);
    }
    pthread_mutex_unlock(&d->nmon_lock);
}

/* An upper bound of the bytes emi_codec_unpack builds for o (terms are boxes of
 * 8-byte words; a shared binary's box is smaller than its bytes). */
static size_t obj_bound(const msgpack_object *o, int depth)
{
    if (depth > 64)
        return SIZE_MAX / 4;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return 16;
    case MSGPACK_OBJECT_STR:
        return 16 + o->via.str.size;
    case MSGPACK_OBJECT_BIN:
        return 24 + o->via.bin.size;
    case MSGPACK_OBJECT_EXT:
        return 32;
    case MSGPACK_OBJECT_ARRAY: {
        size_t n = 8 + 8 * (size_t)o->via.array.size;
        for (uint32_t i = 0; i < o->via.array.size && n < SIZE_MAX / 8; i++)
            n += obj_bound(&o->via.array.ptr[i], depth + 1);
        return n;
    }
    case MSGPACK_OBJECT_MAP: {
        size_t n = 8 + 16 * (size_t)o->via.map.size;
        for (uint32_t i = 0; i < o->via.map.size && n < SIZE_MAX / 8; i++)
            n += obj_bound(&o->via.map.ptr[i].key, depth + 1) + obj_bound(&o->via.map.ptr[i].val, depth + 1);
        return n;
    }
    default:
        return 0;
    }
}

/* Decode a message straight into the block that carries it to its receiver:
 * the builders bump-allocate in the block as in a heap of one chunk. False if
 * the message is malformed. */
static bool deliver_object(em_pid_t to, const msgpack_object *o)
{
    size_t bound = obj_bound(o, 0);
    if (bound > emi_rt_g->cfg.max_term_bytes + 4096) {
        emi_dist_count(&emi_dist_g.dropped, 1);   /* too big for this node */
        return true;
    }
    emi_block *b = emi_block_new(bound < 64 ? 64 : bound);
    if (!b) {
        emi_dist_count(&emi_dist_g.dropped, 1);
        return true;
    }
    b->used = 0;
    b->next = NULL;
    em_heap h;
    memset(&h, 0, sizeof h);
    h.head = h.chunk = b;
    em_heap *prev = emi_heap_current();
    em_heap_use(&h);
    em_term t;
    int rc = emi_codec_unpack(o, &emi_dist_codec_nodes, &t);
    em_heap_use(prev);
    if (rc == 0 && h.head != b) {
        /* The bound fell short (it should not): copy into one block. */
        int err;
        emi_block *c = emi_block_for_term(t, emi_rt_g->cfg.max_term_bytes, &err);
        emi_heap_fini(&h);
        if (c)
            emi_deliver(to, c);
        return true;
    }
    if (rc) {
        emi_heap_fini(&h);
        return rc != EM_EBADTERM;
    }
    b->term = t;
    emi_deliver(to, b);
    return true;
}

static void deliver_term(em_pid_t to, em_term t)
{
    int err = 0;
    emi_block *b = emi_block_for_term(t, emi_rt_g->cfg.max_term_bytes, &err);
    if (b)
        emi_deliver(to, b);
}

void emi_node_monitors_fire(emi_peer *pr, bool up)
{
    emi_dist *d = &emi_dist_g;
    em_mark mk = em_heap_mark();
    em_term msg = EM_ARR(up ? a_nodeup : a_nodedown, pr->atom);
    pthread_mutex_lock(&d->nmon_lock);
    for (emi_nmon **pp = &d->nmons; *pp;) {
        emi_nmon *m = *pp;
        bool match = m->node == EM_NONE || m->node == pr->atom;
        if (match && msg != EM_NONE)
            deliver_term(m->pid, msg);
        /* Erlang's monitor_node is one-shot on nodedown; monitor_nodes stays. */
        if (match && !up && m->node != EM_NONE) {
            *pp = m->next;
            free(m);
        } else {
            pp = &m->next;
        }
    }
    pthread_mutex_unlock(&d->nmon_lock);
    em_heap_release(mk);
}

static void drop_reasm(emi_peer *pr);

/* ----------------------------------------------------------- going down */

void emi_peer_down(emi_peer *pr, const char *why)
{
    pthread_mutex_lock(&pr->lock);
    int was = pr->state;
    if (was == PEER_IDLE) {
        pthread_mutex_unlock(&pr->lock);
        return;
    }
    pr->state = PEER_IDLE;
    /* Relaxed: a hint for lock-free readers; the lock orders the rest. */
    atomic_store_explicit(&pr->up, 0, memory_order_relaxed);
    emi_peer_drop_locked(pr);
    emi_net_close_peer_locked(pr);
    emi_node *n = was == PEER_UP ? emi_node_get(pr->node) : NULL;
    if (n)
        atomic_store_explicit(&n->dead, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pr->lock);
    drop_reasm(pr);
    if (was == PEER_UP)
        emi_dist_log(2, "node %.*s is down: %s", (int)pr->len, pr->name, why);
    else
        emi_dist_log(2, "cannot reach node %.*s: %s", (int)pr->len, pr->name, why);

    /* Every relation across this peer fires, as the connection carried them. */
    pthread_mutex_lock(&pr->rel_lock);
    emi_xrel **rels = pr->rels;
    pr->rels = NULL;
    pr->nrels = 0;
    pthread_mutex_unlock(&pr->rel_lock);
    for (size_t b = 0; rels && b < EMI_XREL_BUCKETS; b++)
        while (rels[b]) {
            emi_xrel *r = rels[b];
            rels[b] = r->next;
            if (r->kind == XREL_LINK)
                emi_link_exit_deliver(r->local, r->remote, a_noconnection);
            else if (r->kind == XREL_MON_OUT)
                emi_down_deliver(r->local, r->ref, r->remote, a_noconnection);
            else
                emi_monitor_remove_remote(r->local, r->ref);
            free(r);
        }
    free(rels);
    if (was == PEER_UP)
        emi_node_monitors_fire(pr, false);
}

/* --------------------------------------------------------------- input */

static unsigned bad_logged;

static void bad(emi_peer *pr, const char *what)
{
    emi_dist_count(&emi_dist_g.bad_frames, 1);
    if (bad_logged < 20) {
        bad_logged++;
        emi_dist_log(1, "dropped a malformed frame from %.*s: %s%s", pr ? (int)pr->len : 7,
                     pr ? pr->name : "unknown", what, bad_logged == 20 ? " (no more of these logged)" : "");
    }
}

static bool get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *v = o->via.u64;
        return true;
    }
    return false;
}

/* A pid of the sender's node (node bits 0), given the node index of its life. */
static bool their_pid(const msgpack_object *o, uint32_t node, em_pid_t *out)
{
    uint64_t v;
    if (!get_u64(o, &v) || em_pid_node(v) != 0 || em_pid_index(v) == 0)
        return false;
    *out = v | ((uint64_t)node << 48);
    return true;
}

static bool our_pid(const msgpack_object *o, em_pid_t *out)
{
    uint64_t v;
    if (!get_u64(o, &v) || em_pid_node(v) != 0 || em_pid_index(v) == 0)
        return false;
    *out = v;
    return true;
}

static bool get_str(const msgpack_object *o, const char **s, size_t *len)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return false;
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return true;
}

static bool term_of(const msgpack_object *o, em_term *out)
{
    return emi_codec_unpack(o, &emi_dist_codec_nodes, out) == 0;
}

/* Pack a reply item for pr: [op, a, b, (c), (reason)]. */
static void reply(emi_peer *pr, int op, em_pid_t from, em_pid_t to, bool has_id, uint64_t id,
                  em_term reason)
{
    msgpack_packer *pk = emi_pack_begin();
    msgpack_pack_array(pk, 3 + (has_id ? 1 : 0) + (reason != EM_NONE ? 1 : 0));
    msgpack_pack_uint8(pk, (uint8_t)op);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, to & 0x0000FFFFFFFFFFFFull);
    if (has_id)
        msgpack_pack_uint64(pk, id);
    bool ok = reason == EM_NONE || emi_codec_pack(pk, reason, &emi_dist_codec_nodes) == 0;
    emi_pack_commit(pr, from, 0, ok, false);
}

static void connect_listed(emi_peer *pr, const msgpack_object_array *list);
static void announce(emi_peer *pr);

static void handle_hello(emi_peer *rid_peer, const char *rid, size_t rid_len,
                         const msgpack_object *a, uint32_t n)
{
    const char *name, *ep;
    size_t nl, el;
    uint64_t creation;
    if (n < 6 || !get_str(&a[1], &name, &nl) || !get_u64(&a[2], &creation) ||
        creation > UINT32_MAX || a[3].type != MSGPACK_OBJECT_BOOLEAN || !get_str(&a[4], &ep, &el) ||
        a[5].type != MSGPACK_OBJECT_ARRAY || nl != rid_len || memcmp(name, rid, nl) != 0 ||
        !emi_codec_valid_node_name(name, nl) || el == 0 || el >= 288 ||
        (nl == emi_dist_g.self_len && memcmp(name, emi_dist_g.self, nl) == 0)) {
        bad(rid_peer, "a bad HELLO");
        return;
    }
    emi_peer *pr = rid_peer ? rid_peer : emi_peer_get(name, nl);
    if (!pr)
        return;
    pthread_mutex_lock(&pr->lock);
    bool restarted = pr->state == PEER_UP && pr->creation != (uint32_t)creation;
    pthread_mutex_unlock(&pr->lock);
    if (restarted)
        emi_peer_down(pr, "it restarted");
    /* The node index first: it takes the table's lock, then the peer's. */
    int64_t idx = emi_node_index(name, nl, (uint32_t)creation);
    if (idx <= 0) {
        bad(pr, "no room in the node table");
        return;
    }
    pthread_mutex_lock(&pr->lock);
    bool was_up = pr->state == PEER_UP;
    pr->creation = (uint32_t)creation;
    pr->node = (uint32_t)idx;
    pr->hidden = a[3].via.boolean;
    if (el) {
        memcpy(pr->endpoint, ep, el);
        pr->endpoint[el] = 0;
    }
    if (pr->state == PEER_IDLE)
        pr->connect_ns = emi_dist_now_ns();
    pr->state = PEER_UP;
    atomic_store_explicit(&pr->last_in_ns, emi_dist_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&pr->up, 1, memory_order_relaxed);
    emi_node *node = emi_node_get((uint32_t)idx);
    if (node)
        atomic_store_explicit(&node->dead, 0, memory_order_relaxed);
    bool need_sock = !pr->sock || pr->close_req;
    if (was_up && !need_sock) {
        /* A HELLO from a life we consider up: it reconnected (it had taken
         * us down, or lost its connection); it waits for ours. */
        emi_peer_flush_locked(pr);
        emi_peer_hello_locked(pr);
        emi_peer_flush_locked(pr);
    }
    pthread_mutex_unlock(&pr->lock);
    if (need_sock)
        emi_net_request_connect(pr);
    if (!was_up) {
        emi_dist_log(2, "node %.*s is up (%s%s)", (int)nl, name, pr->endpoint,
                     pr->hidden ? ", hidden" : "");
        emi_node_monitors_fire(pr, true);
        /* A tick in answer names their life in its header: they learn that we
         * know them (and may use their bulk lane) without waiting for traffic. */
        msgpack_packer *pk = emi_pack_begin();
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint8(pk, OP_TICK);
        emi_pack_commit(pr, 0, 0, true, false);
    }
    /* The mesh: connect to the visible nodes it knows and we do not; and, as
     * its HELLO may have been built before some of its peers were up (and ours
     * before some of ours), tell it ours now and tell ours about it. */
    if (emi_dist_g.cfg.hidden || pr->hidden)
        return;
    connect_listed(pr, &a[5].via.array);
    if (!was_up)
        announce(pr);
}

/* [17, [[name, endpoint], ...]]: the visible nodes `to` should know. Either the
 * one node `only`, or every visible node up here but `to`. */
static void send_nodes(emi_peer *to, emi_peer *only)
{
    msgpack_packer *pk = emi_pack_begin();
    size_t n = 0;
    for (emi_peer *p = emi_peers_first(); p; p = p->next)
        if (only ? p == only : (p != to && atomic_load_explicit(&p->up, memory_order_relaxed)))
            n++;
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, OP_NODES);
    msgpack_pack_array(pk, n);
    size_t done = 0;
    for (emi_peer *p = emi_peers_first(); p && done < n; p = p->next) {
        if (!(only ? p == only : (p != to && atomic_load_explicit(&p->up, memory_order_relaxed))))
            continue;
        char ep[sizeof p->endpoint];
        pthread_mutex_lock(&p->lock);
        bool hidden = p->hidden;
        memcpy(ep, p->endpoint, sizeof ep);
        pthread_mutex_unlock(&p->lock);
        size_t el = strnlen(ep, sizeof ep);
        msgpack_pack_array(pk, 2);
        msgpack_pack_str(pk, hidden ? 0 : p->len);   /* a hidden node is not passed on */
        msgpack_pack_str_body(pk, p->name, hidden ? 0 : p->len);
        msgpack_pack_str(pk, el);
        msgpack_pack_str_body(pk, ep, el);
        done++;
    }
    while (done++ < n) {   /* a peer came up meanwhile: keep the count right */
        msgpack_pack_array(pk, 2);
        msgpack_pack_str(pk, 0);
        msgpack_pack_str(pk, 0);
    }
    emi_pack_commit(to, 0, 0, true, false);
}

static void announce(emi_peer *pr)
{
    send_nodes(pr, NULL);
    for (emi_peer *p = emi_peers_first(); p; p = p->next)
        if (p != pr && atomic_load_explicit(&p->up, memory_order_relaxed)) {
            pthread_mutex_lock(&p->lock);
            bool hidden = p->hidden;
            pthread_mutex_unlock(&p->lock);
            if (!hidden)
                send_nodes(p, pr);
        }
}

/* Connect to the nodes of a list [[name, endpoint], ...] we do not know. */
static void connect_listed(emi_peer *pr, const msgpack_object_array *list)
{
    for (uint32_t i = 0; i < list->size && i < 4096; i++) {
        const msgpack_object *e = &list->ptr[i];
        const char *pn, *pe;
        size_t pnl, pel;
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2 ||
            !get_str(&e->via.array.ptr[0], &pn, &pnl) || !get_str(&e->via.array.ptr[1], &pe, &pel) ||
            pel == 0 || pel >= sizeof pr->endpoint || !emi_codec_valid_node_name(pn, pnl) ||
            (pnl == emi_dist_g.self_len && memcmp(pn, emi_dist_g.self, pnl) == 0))
            continue;
        emi_peer *q = emi_peer_get(pn, pnl);
        if (!q)
            continue;
        pthread_mutex_lock(&q->lock);
        bool go = q->state == PEER_IDLE && q->has_key;
        if (go) {
            memcpy(q->endpoint, pe, pel);
            q->endpoint[pel] = 0;
            q->state = PEER_PENDING;
            q->connect_ns = emi_dist_now_ns();
        }
        pthread_mutex_unlock(&q->lock);
        if (go)
            emi_net_request_connect(q);
    }
}

/* Fragments being put back together: one per (peer, sender). The list is
 * shared by the reader (adding) and the thread taking a peer down (dropping),
 * hence its lock; a peer may keep at most REASM_MAX of them, and a buffer grows
 * with the data that came, never to a size a header merely declares. */
#define REASM_MAX 64
typedef struct reasm {
    struct reasm *next;
    emi_peer *pr;
    em_pid_t from;
    size_t total, len, cap;
    char *data;
} reasm;
static reasm *reasms;
static pthread_mutex_t reasm_lock = PTHREAD_MUTEX_INITIALIZER;

static void handle_items(emi_peer *pr, uint32_t node, const char *data, size_t len, size_t off,
                         int depth);

static void handle_frag(emi_peer *pr, uint32_t node, const msgpack_object *a, uint32_t n, int depth)
{
    uint64_t total, fromv;
    /* The sender's pid, or 0 for the node itself (a large list of nodes). */
    if (n != 4 || !get_u64(&a[1], &fromv) || em_pid_node(fromv) != 0 || !get_u64(&a[2], &total) ||
        a[3].type != MSGPACK_OBJECT_BIN || depth > 0 || total <= EMI_FRAG_MAX ||
        total > emi_rt_g->cfg.max_term_bytes + 4096) {
        bad(pr, "a bad fragment");
        return;
    }
    em_pid_t from = fromv | ((uint64_t)node << 48);
    size_t cl = a[3].via.bin.size;
    pthread_mutex_lock(&reasm_lock);
    reasm **pp = &reasms;
    unsigned mine = 0;
    while (*pp && !((*pp)->pr == pr && (*pp)->from == from)) {
        mine += (*pp)->pr == pr;
        pp = &(*pp)->next;
    }
    reasm *r = *pp;
    const char *why = NULL;
    if (!r && mine >= REASM_MAX) {
        why = "too many large messages at once";
    } else if (!r) {
        if ((r = calloc(1, sizeof *r)) != NULL) {
            r->pr = pr;
            r->from = from;
            r->total = total;
            r->next = reasms;
            reasms = r;
            pp = &reasms;
        }
    } else if (r->total != total) {
        why = "fragments that do not add up";
    }
    if (r && !why && r->len + cl > total)
        why = "fragments that do not add up";
    if (r && !why && r->len + cl > r->cap) {
        size_t cap = r->cap ? r->cap : 64 * 1024;
        while (cap < r->len + cl)
            cap *= 2;
        if (cap > total)
            cap = total;
        char *grown = realloc(r->data, cap);
        if (!grown)
            why = "no memory for a large message";
        else {
            r->data = grown;
            r->cap = cap;
        }
    }
    if (why || !r) {
        if (r) {
            *pp = r->next;
            free(r->data);
            free(r);
        }
        pthread_mutex_unlock(&reasm_lock);
        if (why)
            bad(pr, why);
        else
            emi_dist_count(&emi_dist_g.dropped, 1);
        return;
    }
    /* An empty fragment adds nothing, and the buffer may not exist yet (the
     * fuzzer found the null pointer arithmetic). */
    if (cl) {
        memcpy(r->data + r->len, a[3].via.bin.ptr, cl);
        r->len += cl;
    }
    bool done = r->len == r->total;
    if (done)
        *pp = r->next;
    pthread_mutex_unlock(&reasm_lock);
    if (!done)
        return;
    handle_items(pr, node, r->data, r->len, 0, depth + 1);
    free(r->data);
    free(r);
}

static void drop_reasm(emi_peer *pr)
{
    pthread_mutex_lock(&reasm_lock);
    for (reasm **pp = &reasms; *pp;)
        if ((*pp)->pr == pr) {
            reasm *r = *pp;
            *pp = r->next;
            free(r->data);
            free(r);
        } else {
            pp = &(*pp)->next;
        }
    pthread_mutex_unlock(&reasm_lock);
}

void emi_ops_fini(void)
{
    while (reasms) {
        reasm *r = reasms;
        reasms = r->next;
        free(r->data);
        free(r);
    }
}

extern void emi_kernel_spawn_request(em_pid_t from, uint64_t req, const char *fn, size_t fl,
                                     em_term arg, uint64_t flags, uint64_t ref);

/* One item; false if it was malformed (the rest of the frame is dropped). */
/* node: the node-table index of the life the frame came from. */
static bool handle_item(emi_peer *pr, uint32_t node, const msgpack_object *o, int depth)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 ||
        o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        bad(pr, "an item that is not an operation");
        return false;
    }
    const msgpack_object *a = o->via.array.ptr;
    uint32_t n = o->via.array.size;
    em_pid_t from, to;
    uint64_t id;
    em_term t;
    emi_dist_count(&emi_dist_g.msgs_in, 1);
    switch (a[0].via.u64) {
    case OP_SEND:
        if (n != 4 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to) ||
            !deliver_object(to, &a[3]))
            goto malformed;
        return true;
    case OP_REG_SEND: {
        const char *name;
        size_t nl;
        if (n != 4 || !their_pid(&a[1], node, &from) || !get_str(&a[2], &name, &nl) || nl > 255)
            goto malformed;
        /* Only a name that exists has an atom: a lookup never interns one. */
        em_pid_t dest = emi_whereis_name(name, nl);
        if (dest ? !deliver_object(dest, &a[3]) : !term_of(&a[3], &t))
            goto malformed;
        return true;
    }
    case OP_LINK:
        if (n != 3 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to))
            goto malformed;
        if (emi_link_add_remote(to, from) == 0)
            emi_xrel_add(pr, XREL_LINK, to, from, 0);
        else
            reply(pr, OP_EXIT, to, from, false, 0, a_noproc);
        return true;
    case OP_UNLINK:
        if (n != 3 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to))
            goto malformed;
        emi_link_remove_remote(to, from);
        emi_xrel_remove(pr, XREL_LINK, to, from, 0);
        return true;
    case OP_EXIT:
    case OP_EXIT2:
        if (n != 4 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to) || !term_of(&a[3], &t))
            goto malformed;
        if (a[0].via.u64 == OP_EXIT) {
            emi_xrel_remove(pr, XREL_LINK, to, from, 0);
            emi_link_exit_deliver(to, from, t);
        } else {
            emi_exit2_deliver(to, from, t);
        }
        return true;
    case OP_MONITOR:
    case OP_DEMONITOR: {
        if (n != 4 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to) || !get_u64(&a[3], &id) ||
            id > EMI_REMOTE_MON_MASK)
            goto malformed;
        /* Their id is unique on their node; with their node index it is unique here,
         * and it never has the local monitors' top bit. */
        uint64_t key = ((uint64_t)node << 46) | id;
        if (a[0].via.u64 == OP_DEMONITOR) {
            emi_monitor_remove_remote(to, key);
            emi_xrel_remove(pr, XREL_MON_IN, to, from, key);
        } else if (emi_monitor_add_remote(to, key, from) == 0) {
            emi_xrel_add(pr, XREL_MON_IN, to, from, key);
        } else {
            reply(pr, OP_DOWN, to, from, true, id, a_noproc);
        }
        return true;
    }
    case OP_DOWN: {
        if (n != 5 || !their_pid(&a[1], node, &from) || !our_pid(&a[2], &to) || !get_u64(&a[3], &id) ||
            id > EMI_REMOTE_MON_MASK || !term_of(&a[4], &t))
            goto malformed;
        uint64_t full = EMI_REMOTE_MON_BIT | ((uint64_t)node << 46) | id;
        /* Only a monitor still held fires: after em_demonitor, nothing comes. */
        if (emi_xrel_remove(pr, XREL_MON_OUT, to, from, full))
            emi_down_deliver(to, full, from, t);
        return true;
    }
    case OP_SPAWN_REQ: {
        const char *fn;
        size_t fl;
        uint64_t req, flags, ref;
        if (n != 7 || !their_pid(&a[1], node, &from) || !get_u64(&a[2], &req) ||
            !get_str(&a[3], &fn, &fl) || !term_of(&a[4], &t) || !get_u64(&a[5], &flags) ||
            !get_u64(&a[6], &ref) || ref > EMI_REMOTE_MON_MASK)
            goto malformed;
        emi_kernel_spawn_request(from, req, fn, fl, t, flags, ref);
        return true;
    }
    case OP_SPAWN_REPLY: {
        uint64_t req, child_bits, flags, ref;
        if (n != 7 || !our_pid(&a[1], &to) || !get_u64(&a[2], &req) || !get_u64(&a[3], &child_bits) ||
            !get_u64(&a[4], &flags) || !get_u64(&a[5], &ref) || ref > EMI_REMOTE_MON_MASK ||
            !term_of(&a[6], &t))
            goto malformed;
        em_term result = t;
        if (child_bits) {
            em_pid_t child;
            if (!their_pid(&a[3], node, &child))
                goto malformed;
            if ((flags & EM_SPAWN_LINK)) {
                if (emi_link_add_remote(to, child) == 0)
                    emi_xrel_add(pr, XREL_LINK, to, child, 0);
                else
                    reply(pr, OP_EXIT, to, child, false, 0, a_noproc);
            }
            if (flags & EM_SPAWN_MONITOR)
                emi_xrel_add(pr, XREL_MON_OUT, to, child,
                             EMI_REMOTE_MON_BIT | ((uint64_t)node << 46) | ref);
            result = em_pid(child);
        }
        em_term msg = EM_ARR(a_spawn_reply, em_uint(req), result);
        if (msg != EM_NONE)
            deliver_term(to, msg);
        return true;
    }
    case OP_TICK:
        return true;
    case OP_NODES:
        if (n != 2 || a[1].type != MSGPACK_OBJECT_ARRAY)
            goto malformed;
        if (!emi_dist_g.cfg.hidden)
            connect_listed(pr, &a[1].via.array);
        return true;
    case OP_FRAG:
        handle_frag(pr, node, a, n, depth);
        return true;
    case OP_BYE:
        emi_peer_down(pr, "it said goodbye");
        return false;
    case OP_ACK: {
        uint64_t k;
        if (n != 2 || !get_u64(&a[1], &k))
            goto malformed;
        pthread_mutex_lock(&pr->lock);
        if (k <= pr->bulk_sent - pr->bulk_acked)
            pr->bulk_acked += k;
        emi_peer_streams_trim_locked(pr);
        pthread_mutex_unlock(&pr->lock);
        return true;
    }
    default:
        break;
    }
malformed:
    bad(pr, "an operation with bad arguments");
    return false;
}

static void handle_items(emi_peer *pr, uint32_t node, const char *data, size_t len, size_t off,
                         int depth)
{
    /* msgpack-c allocates for declared counts before it reads: give it only the
     * part of the frame whose counts can be real. */
    size_t ok_len = off + emi_codec_plausible_prefix(data + off, len - off);
    if (ok_len < len) {
        bad(pr, "a count larger than the frame");
        len = ok_len;
    }
    /* One zone per reading thread, cleared after each item: no malloc per item. */
    msgpack_zone *z = emi_net_zone();
    while (off < len && z) {
        em_mark mk = em_heap_mark();
        msgpack_object obj;
        msgpack_unpack_return r = msgpack_unpack(data, len, &off, z, &obj);
        bool ok = r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES;
        if (!ok)
            bad(pr, "bytes that are not msgpack");
        else
            ok = handle_item(pr, node, &obj, depth);
        em_heap_release(mk);
        msgpack_zone_clear(z);
        if (!ok)
            break;
    }
}

/* Tell pr we handled one more frame of its bulk lane. */
static void ack_bulk(emi_peer *pr)
{
    msgpack_packer *pk = emi_pack_begin();
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, OP_ACK);
    msgpack_pack_uint8(pk, 1);
    emi_pack_commit(pr, 0, 0, true, false);
}

/* Whether a frame from pr's life their_creation is to be handled, and that
 * life's node index: one look under the peer's lock, since the dist thread may
 * be taking the peer down meanwhile. */
static bool live_life(emi_peer *pr, uint32_t their_creation, uint32_t our_creation, uint32_t *node)
{
    pthread_mutex_lock(&pr->lock);
    bool live = pr->state == PEER_UP && pr->creation == their_creation;
    *node = pr->node;
    if (live && our_creation == emi_dist_g.creation && !pr->lane_ok) {
        /* They name our life in their frames, so they have our HELLO: our bulk
         * lane's frames will find us known there. */
        pr->lane_ok = true;
        emi_peer_flush_locked(pr);
    }
    pthread_mutex_unlock(&pr->lock);
    if (live)
        atomic_store_explicit(&pr->last_in_ns, emi_dist_now_ns(), memory_order_relaxed);
    return live;
}

void emi_dist_handle_frame(const char *rid, size_t rid_len, const char *data, size_t len)
{
    /* The bulk lane's routing id is the node's name with a suffix no name has. */
    bool bulk = rid_len > 2 && memcmp(rid + rid_len - 2, EMI_BULK_SUFFIX, 2) == 0;
    if (bulk)
        rid_len -= 2;
    emi_peer *pr = emi_peer_find(rid, rid_len);
    /* The header: [0, sender's creation, receiver's creation (0: not known yet)],
     * always written in the same twelve bytes (a fixarray of 3, fixint 0, then
     * two uint32), so it is read without msgpack-c. */
    const unsigned char *h = (const unsigned char *)data;
    if (len < 12 || h[0] != 0x93 || h[1] != OP_HDR || h[2] != 0xce || h[7] != 0xce) {
        bad(pr, "no frame header");
        return;
    }
    uint32_t their_creation = (uint32_t)h[3] << 24 | (uint32_t)h[4] << 16 | (uint32_t)h[5] << 8 | h[6];
    uint32_t our_creation = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
    size_t off = 12;
    if (our_creation != 0 && our_creation != emi_dist_g.creation)
        return;   /* meant for an earlier life of this node */
    if (bulk) {
        uint32_t node;
        if (!pr || !live_life(pr, their_creation, our_creation, &node))
            return;
        handle_items(pr, node, data, len, off, 0);
        ack_bulk(pr);
        return;
    }
    /* A HELLO opens every connection, and comes first in its frame: an array
     * whose first element is the fixint OP_HELLO. */
    if (len > off + 1 && (h[off] & 0xf0) == 0x90 && h[off + 1] == OP_HELLO) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t plausible = off + emi_codec_plausible_prefix(data + off, len - off);
        msgpack_unpack_return r = msgpack_unpack_next(&u, data, plausible, &off);
        const msgpack_object *o = &u.data;
        if ((r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) &&
            o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0) {
            em_mark mk = em_heap_mark();
            handle_hello(pr, rid, rid_len, o->via.array.ptr, o->via.array.size);
            em_heap_release(mk);
            pr = emi_peer_find(rid, rid_len);
        } else {
            bad(pr, "a HELLO that is not msgpack");
            msgpack_unpacked_destroy(&u);
            return;
        }
        msgpack_unpacked_destroy(&u);
    }
    if (!pr)
        return;   /* nothing but a HELLO may come from a stranger */
    uint32_t node;
    if (!live_life(pr, their_creation, our_creation, &node))
        return;   /* from a life we consider down */
    handle_items(pr, node, data, len, off, 0);
}

/* --------------------------------------------------------------- setup */

void emi_ops_init(void)
{
    a_noproc = em_atom("noproc");
    a_noconnection = em_atom("noconnection");
    a_nodeup = em_atom("nodeup");
    a_nodedown = em_atom("nodedown");
    a_spawn = em_atom("$spawn");
    a_spawn_reply = em_atom("$spawn_reply");
}

void emi_peer_forget_input(emi_peer *pr) { drop_reasm(pr); }
