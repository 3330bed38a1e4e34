/*
 * api.c - the public calls of distribution, and net_kernel.
 *
 * net_kernel is a process that em_dist_start spawns and registers: the dist
 * thread cannot spawn (only a process can), so a remote spawn request becomes a
 * message to net_kernel, which starts the child. The child sets up its link or
 * monitor with the remote parent itself, before the function runs, and answers
 * the request, so its answer travels ahead of anything else it sends.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rt.h"
#include "dist_int.h"
#include "proc/relations.h"

emi_dist emi_dist_g = {.nmon_lock = PTHREAD_MUTEX_INITIALIZER};

static atomic_int ever_started;

/* Peers by node atom, for sends by name: a hint checked against the peer's own
 * atom (peers live until the runtime ends). */
#define PEER_CACHE 256
static _Atomic(emi_peer *) peer_cache[PEER_CACHE];

int64_t emi_dist_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void emi_dist_log(int level, const char *fmt, ...)
{
    if (level > emi_dist_g.log_level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld ember %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, emi_dist_g.self[0] ? emi_dist_g.self : "dist", line);
}

void em_dist_config_init(em_dist_config *c)
{
    memset(c, 0, sizeof *c);
    c->trust = EM_TRUST_COOKIE;
    c->tick_ms = 10000;
    c->peer_buffer = 1024 * 1024;
    c->busy_wait_us = 1000;
    c->log_level = 2;
}

/* ------------------------------------------------- spawnable functions */

typedef struct fn_entry {
    struct fn_entry *next;
    em_proc_fn fn;
    char name[];
} fn_entry;
static fn_entry *fns;
static pthread_mutex_t fns_lock = PTHREAD_MUTEX_INITIALIZER;

static fn_entry *fn_find(const char *name, size_t len)
{
    for (fn_entry *e = fns; e; e = e->next)
        if (strlen(e->name) == len && memcmp(e->name, name, len) == 0)
            return e;
    return NULL;
}

int em_register_fn(const char *name, em_proc_fn fn)
{
    if (!name || !*name || !fn || strlen(name) > 255)
        return EM_EINVAL;
    pthread_mutex_lock(&fns_lock);
    fn_entry *e = fn_find(name, strlen(name));
    int rc = 0;
    if (e) {
        e->fn = fn;   /* a new version of the module replaces the old */
    } else if ((e = malloc(sizeof *e + strlen(name) + 1)) != NULL) {
        strcpy(e->name, name);
        e->fn = fn;
        e->next = fns;
        fns = e;
    } else {
        rc = EM_ENOMEM;
    }
    pthread_mutex_unlock(&fns_lock);
    return rc;
}

em_proc_fn em_lookup_fn(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&fns_lock);
    fn_entry *e = fn_find(name, strlen(name));
    em_proc_fn fn = e ? e->fn : NULL;
    pthread_mutex_unlock(&fns_lock);
    return fn;
}

/* The registered name as a string that lives as long as the program. */
static const char *fn_name_static(const char *name, size_t len)
{
    pthread_mutex_lock(&fns_lock);
    fn_entry *e = fn_find(name, len);
    pthread_mutex_unlock(&fns_lock);
    return e ? e->name : NULL;
}

/* ----------------------------------------------------------- net_kernel */

static em_term a_spawn, a_stop, a_notfound, a_noconnection, a_spawn_reply;

void emi_kernel_spawn_request(em_pid_t from, uint64_t req, const char *fn, size_t fl, em_term arg,
                              uint64_t flags, uint64_t ref)
{
    em_term msg = EM_ARR(a_spawn, em_pid(from), em_uint(req), em_strn(fn, fl), arg, em_uint(flags),
                         em_uint(ref));
    int err;
    emi_block *b = msg == EM_NONE ? NULL : emi_block_for_term(msg, emi_rt_g->cfg.max_term_bytes, &err);
    if (b)
        emi_deliver(emi_dist_g.kernel, b);
}

/* The child of a remote spawn: relate to the parent, answer, then run. */
static void remote_child(em_term arg)
{
    const char *fname;
    size_t fl;
    em_pid_t parent, self = em_self();
    uint64_t flags, ref, req;
    if (!em_get_str(em_at(arg, 0), &fname, &fl) || !em_get_pid(em_at(arg, 2), &parent) ||
        !em_get_uint(em_at(arg, 3), &flags) || !em_get_uint(em_at(arg, 4), &ref) ||
        !em_get_uint(em_at(arg, 5), &req))
        return;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)fl, fname);
    em_proc_fn fn = em_lookup_fn(name);
    emi_node *n = emi_node_get(em_pid_node(parent));
    if (!n || !n->peer || !fn)
        return;
    if ((flags & EM_SPAWN_LINK) && em_link(parent) != 0)
        em_exit(a_noconnection);
    if (flags & EM_SPAWN_MONITOR) {
        uint64_t key = ((uint64_t)n->idx << 46) | ref;
        if (emi_monitor_add_remote(self, key, parent) == 0)
            emi_xrel_add(n->peer, XREL_MON_IN, self, parent, key);
    }
    emi_dist_spawn_reply(n->peer, self, parent, req, self, flags, ref, EM_NIL);
    fn(em_at(arg, 1));
}

static void kernel_main(em_term arg)
{
    (void)arg;
    em_trap_exit(true);   /* as Erlang's net_kernel: a peer's exit signal is a message */
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive(&m, EM_INFINITY) != 0)
            continue;
        if (m == a_stop) {
            em_heap_release(mk);
            return;
        }
        em_pid_t from;
        uint64_t req, flags, ref;
        const char *fname;
        size_t fl;
        if (em_len(m) == 7 && em_at(m, 0) == a_spawn && em_get_pid(em_at(m, 1), &from) &&
            em_get_uint(em_at(m, 2), &req) && em_get_str(em_at(m, 3), &fname, &fl) &&
            em_get_uint(em_at(m, 5), &flags) && em_get_uint(em_at(m, 6), &ref)) {
            const char *entry = fn_name_static(fname, fl);
            emi_node *n = emi_node_get(em_pid_node(from));
            if (!n || !n->peer)
                ;
            else if (!entry)
                emi_dist_spawn_reply(n->peer, em_self(), from, req, 0, flags, ref, a_notfound);
            else {
                em_term a = EM_ARR(em_at(m, 3), em_at(m, 4), em_pid(from), em_uint(flags),
                                   em_uint(ref), em_uint(req));
                em_pid_t child;
                int rc = a == EM_NONE ? EM_ENOMEM : em_spawn_named(remote_child, entry, a, &child);
                if (rc)
                    emi_dist_spawn_reply(n->peer, em_self(), from, req, 0, flags, ref,
                                         em_atom(em_strerror(rc)));
            }
        }
        em_heap_release(mk);
    }
}

/* ------------------------------------------------------- start and stop */

static uint32_t fresh_creation(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint32_t c = (uint32_t)(ts.tv_sec * 1000 + ts.tv_nsec / 1000000) ^ ((uint32_t)getpid() << 20);
    return c ? c : 1;
}

int em_dist_start(const em_dist_config *c)
{
    emi_dist *d = &emi_dist_g;
    if (!emi_current())
        return EM_ENOTPROC;
    if (!c || !c->name)
        return EM_EINVAL;
    if (atomic_exchange_explicit(&ever_started, 1, memory_order_relaxed))
        return EM_ESTATE;   /* one node per runtime, as in Erlang's net_kernel */
    int log_level = c->log_level;
    d->log_level = log_level;
    size_t nl = strlen(c->name);
    if (!emi_codec_valid_node_name(c->name, nl)) {
        emi_dist_log(1, "bad node name \"%s\": expected name@host", c->name);
        atomic_store_explicit(&ever_started, 0, memory_order_relaxed);
        return EM_EINVAL;
    }
    if (c->busy_wait_us < 0 || c->busy_wait_us > 1000000) {
        emi_dist_log(1, "bad busy_wait_us %d: expected 0 to 1000000", c->busy_wait_us);
        atomic_store_explicit(&ever_started, 0, memory_order_relaxed);
        return EM_EINVAL;
    }
    d->cfg = *c;
    memcpy(d->self, c->name, nl + 1);
    d->self_len = (uint32_t)nl;
    d->self_atom = em_atom(c->name);
    d->creation = c->creation ? c->creation : fresh_creation();
    d->peer_buffer = c->peer_buffer ? c->peer_buffer : 1024 * 1024;
    d->tick_ns = (int64_t)(c->tick_ms ? c->tick_ms : 10000) * 1000000;
    d->busy_wait_ns = (int64_t)c->busy_wait_us * 1000;
    const char *host = strchr(c->name, '@') + 1;
    char listen[288];
    if (c->listen && *c->listen) {
        if (emi_parse_endpoint(c->listen, listen, sizeof listen) != 0) {
            emi_dist_log(1, "bad listen address \"%s\": expected host:port", c->listen);
            goto fail_early;
        }
    } else {
        bool loop = strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
        snprintf(listen, sizeof listen, "tcp://%s:0", loop ? "127.0.0.1" : "0.0.0.0");
    }
    memcpy(d->endpoint, listen, sizeof listen);
    a_spawn = em_atom("$spawn");
    a_stop = em_atom("$stop");
    a_notfound = em_atom("notfound");
    a_noconnection = em_atom("noconnection");
    a_spawn_reply = em_atom("$spawn_reply");
    int rc = emi_trust_init(c);
    if (rc)
        goto fail_trust;
    if ((rc = emi_nodes_init(c->name, d->creation)) != 0)
        goto fail_trust;
    emi_ops_init();
    rc = em_spawn_named(kernel_main, "net_kernel", EM_NIL, &d->kernel);
    if (rc)
        goto fail_nodes;
    em_register(em_atom("net_kernel"), d->kernel);
    if (em_spawn_named(emi_ctl_main, "ember_ctl", EM_NIL, &d->ctl) == 0)
        em_register(em_atom("ember_ctl"), d->ctl);
    if ((rc = emi_net_start()) != 0) {
        em_send(d->kernel, a_stop);
        em_send(d->ctl, a_stop);
        goto fail_nodes;
    }
    if ((rc = emi_discover_register()) != 0) {
        em_send(d->kernel, a_stop);
        em_send(d->ctl, a_stop);
        emi_net_stop();
        goto fail_nodes;
    }
    /* Release: everything above before a sender can see `started`. */
    atomic_store_explicit(&d->started, 1, memory_order_release);
    emi_dist_log(2, "node %s (creation %u) listens on %s", d->self, d->creation, d->endpoint);
    return 0;
fail_nodes:
    /* The names go now, so that a retry can start the node again at once. */
    em_unregister(em_atom("net_kernel"));
    em_unregister(em_atom("ember_ctl"));
    emi_nodes_fini();
fail_trust:
    emi_trust_fini();
    d->self[0] = 0;
    atomic_store_explicit(&ever_started, 0, memory_order_relaxed);
    return rc;
fail_early:
    d->self[0] = 0;
    atomic_store_explicit(&ever_started, 0, memory_order_relaxed);
    return EM_EINVAL;
}

static void say_goodbye(void)
{
    for (emi_peer *pr = emi_peers_first(); pr; pr = pr->next) {
        if (!atomic_load_explicit(&pr->up, memory_order_relaxed))
            continue;
        msgpack_packer *pk = emi_pack_begin();
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint8(pk, OP_BYE);
        emi_pack_commit(pr, 0, 0, true, false);
        pthread_mutex_lock(&pr->lock);
        emi_peer_flush_locked(pr);
        pthread_mutex_unlock(&pr->lock);
    }
}

/* Tell one of the node's processes to stop, from any thread (em_send wants a
 * process, and a thread outside the runtime may stop the node too): without the
 * stop, net_kernel and ember_ctl would wait for ever and em_run with them. */
static void stop_dist_process(em_pid_t to)
{
    int err;
    emi_block *b = emi_block_for_term(a_stop, emi_rt_g->cfg.max_term_bytes, &err);
    if (b)
        emi_deliver(to, b);
}

int em_dist_stop(void)
{
    emi_dist *d = &emi_dist_g;
    if (!emi_dist_on())
        return EM_ESTATE;
    say_goodbye();
    if (emi_dist_dirty)
        emi_flush_dirty();
    emi_discover_unregister();
    atomic_store_explicit(&d->started, 0, memory_order_release);
    emi_net_stop();
    stop_dist_process(d->kernel);
    stop_dist_process(d->ctl);
    emi_dist_log(2, "node %s stopped", d->self);
    if (!emi_sched_self())
        /* A thread outside the runtime keeps nothing for later: the goodbyes'
         * pack buffer and the blocks that stopping freed into its cache would
         * otherwise stay until it exits, and leak then (the runtime's own
         * threads free theirs as they end). */
        emi_thread_caches_fini();
    return 0;
}

void emi_dist_shutdown(void)
{
    emi_dist *d = &emi_dist_g;
    if (!atomic_load_explicit(&ever_started, memory_order_relaxed))
        return;
    if (emi_dist_on()) {
        say_goodbye();
        if (emi_dist_dirty)
            emi_flush_dirty();   /* the goodbyes leave, and no list keeps a peer */
        emi_discover_unregister();
        atomic_store_explicit(&d->started, 0, memory_order_release);
        emi_net_stop();
    }
    emi_net_fini();
    emi_ops_fini();
    for (size_t i = 0; i < PEER_CACHE; i++)
        atomic_store_explicit(&peer_cache[i], NULL, memory_order_relaxed);
    emi_peers_fini();
    emi_nodes_fini();
    emi_trust_fini();
    emi_nmons_free();
    d->self[0] = 0;
    atomic_store_explicit(&ever_started, 0, memory_order_relaxed);
}

/* --------------------------------------------------------------- nodes */

em_term em_node(void)
{
    return emi_dist_on() ? emi_dist_g.self_atom : em_atom("nonode@nohost");
}

em_term em_node_of(em_pid_t pid)
{
    if (em_pid_node(pid) == 0)
        return em_node();
    emi_node *n = emi_dist_on() ? emi_node_get(em_pid_node(pid)) : NULL;
    return n ? n->atom : EM_NONE;
}

int em_node_port(void) { return emi_dist_on() ? emi_dist_g.port : EM_ESTATE; }

/* Wait until pr is up; 0, EM_ETIMEDOUT, or EM_ENOPROC if it was refused. */
static int wait_up(emi_peer *pr, int64_t timeout_ms)
{
    int64_t deadline = emi_dist_now_ns() + timeout_ms * 1000000;
    for (int i = 0;; i++) {
        if (atomic_load_explicit(&pr->up, memory_order_relaxed))
            return 0;
        pthread_mutex_lock(&pr->lock);
        bool idle = pr->state == PEER_IDLE;
        pthread_mutex_unlock(&pr->lock);
        if (idle && i > 0)
            return EM_ENOPROC;
        if (timeout_ms != EM_INFINITY && emi_dist_now_ns() >= deadline)
            return EM_ETIMEDOUT;
        em_sleep(1);
    }
}

/* The peer for "name@host[:port]", with its address recorded when given. */
static emi_peer *peer_for_spec(const char *spec, bool *self)
{
    char name[EMI_NODE_NAME_MAX + 1], ep[288];
    ep[0] = 0;
    size_t len = strlen(spec);
    const char *colon = strrchr(spec, ':');
    const char *at = strchr(spec, '@');
    if (colon && at && colon > at) {
        len = (size_t)(colon - spec);
        char hostport[300];
        snprintf(hostport, sizeof hostport, "%s", at + 1);
        if (emi_parse_endpoint(hostport, ep, sizeof ep) != 0)
            return NULL;
    }
    if (len > EMI_NODE_NAME_MAX || !emi_codec_valid_node_name(spec, len))
        return NULL;
    memcpy(name, spec, len);
    name[len] = 0;
    *self = len == emi_dist_g.self_len && memcmp(name, emi_dist_g.self, len) == 0;
    if (*self)
        return NULL;
    emi_peer *pr = emi_peer_get(name, len);
    if (!pr)
        return NULL;
    pthread_mutex_lock(&pr->lock);
    if (ep[0] && pr->state == PEER_IDLE)
        snprintf(pr->endpoint, sizeof pr->endpoint, "%s", ep);
    if (pr->state == PEER_IDLE && (pr->endpoint[0] || emi_discover_enabled()) && pr->has_key) {
        pr->state = PEER_PENDING;
        pr->connect_ns = emi_dist_now_ns();
        emi_net_request_connect(pr);
    }
    pthread_mutex_unlock(&pr->lock);
    return pr;
}

int em_node_connect(const char *node, int64_t timeout_ms)
{
    if (!emi_current())
        return EM_ENOTPROC;
    if (!emi_dist_on())
        return EM_ESTATE;
    if (!node)
        return EM_EINVAL;
    bool self = false;
    emi_peer *pr = peer_for_spec(node, &self);
    if (self)
        return 0;
    if (!pr)
        return EM_EINVAL;
    pthread_mutex_lock(&pr->lock);
    bool known = pr->state != PEER_IDLE || ((pr->endpoint[0] || emi_discover_enabled()) && pr->has_key);
    bool nokey = !pr->has_key;
    pthread_mutex_unlock(&pr->lock);
    if (!known) {
        emi_dist_log(1, "no %s for node %.*s", nokey ? "key in the keyring" : "address", (int)pr->len,
                     pr->name);
        return EM_ENOTFOUND;
    }
    int rc = wait_up(pr, timeout_ms);
    return rc == EM_ENOPROC ? EM_ETIMEDOUT : rc;
}

int em_node_disconnect(em_term node)
{
    if (!emi_dist_on())
        return EM_ESTATE;
    const char *name = em_atom_name(node);
    if (!name)
        return EM_EINVAL;
    emi_peer *pr = emi_peer_find(name, strlen(name));
    if (!pr || !atomic_load_explicit(&pr->up, memory_order_relaxed))
        return EM_ENOTFOUND;
    atomic_store_explicit(&pr->kick, 1, memory_order_relaxed);
    emi_net_wake();
    return 0;
}

static size_t list_nodes(em_term *out, size_t cap, bool hidden)
{
    size_t n = 0;
    if (!emi_dist_on())
        return 0;
    for (emi_peer *pr = emi_peers_first(); pr; pr = pr->next) {
        if (!atomic_load_explicit(&pr->up, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&pr->lock);
        bool h = pr->hidden;
        pthread_mutex_unlock(&pr->lock);
        if (h != hidden)
            continue;
        if (n < cap)
            out[n] = pr->atom;
        n++;
    }
    return n;
}

size_t em_nodes(em_term *out, size_t cap) { return list_nodes(out, cap, false); }
size_t em_nodes_hidden(em_term *out, size_t cap) { return list_nodes(out, cap, true); }

int em_monitor_node(em_term node, bool on)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    const char *name = em_atom_name(node);
    if (!name || !emi_codec_valid_node_name(name, strlen(name)))
        return EM_EINVAL;
    if (!on)
        return emi_nmon_set(p->pid, node, false);
    emi_peer *pr = emi_dist_on() ? emi_peer_find(name, strlen(name)) : NULL;
    if (!pr || !atomic_load_explicit(&pr->up, memory_order_relaxed)) {
        /* Not connected: a nodedown at once, as Erlang does. */
        return em_send(p->pid, EM_ARR(em_atom("nodedown"), node));
    }
    return emi_nmon_set(p->pid, node, true);
}

int em_monitor_nodes(bool on)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    return emi_nmon_set(p->pid, EM_NONE, on);
}


static emi_peer *peer_of_atom(em_term node)
{
    size_t i = (size_t)(node >> 8) % PEER_CACHE;
    /* Acquire: the peer's fields are set before it was cached. */
    emi_peer *pr = atomic_load_explicit(&peer_cache[i], memory_order_acquire);
    if (pr && pr->atom == node)
        return pr;
    bool self = false;
    pr = peer_for_spec(em_atom_name(node), &self);
    if (pr)
        atomic_store_explicit(&peer_cache[i], pr, memory_order_release);
    return pr;
}

int em_send_remote(em_term name, em_term node, em_term msg)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    const char *nn = em_atom_name(node);
    if (!em_atom_name(name) || !nn || msg == EM_NONE)
        return EM_EINVAL;
    if (node == em_node()) {
        em_pid_t to = em_whereis(name);
        return to ? em_send(to, msg) : 0;
    }
    if (!emi_dist_on())
        return EM_ESTATE;
    emi_peer *pr = peer_of_atom(node);
    if (!pr)
        return EM_EINVAL;
    emi_charge(p, 1);
    return emi_dist_send_named(p, pr, name, msg);
}

/* ------------------------------------------------------------ spawn on */

static bool is_reply(em_term m, void *ctx)
{
    uint64_t req;
    return em_len(m) == 3 && em_at(m, 0) == a_spawn_reply && em_get_uint(em_at(m, 1), &req) &&
           req == *(uint64_t *)ctx;
}

int em_spawn_on(em_term node, const char *fn_name, em_term arg, int flags, em_pid_t *out,
                em_term *ref, int64_t timeout_ms)
{
    emi_proc *p = emi_current();
    if (!p)
        return EM_ENOTPROC;
    const char *nn = em_atom_name(node);
    if (!nn || !fn_name || arg == EM_NONE || (flags & ~(EM_SPAWN_LINK | EM_SPAWN_MONITOR)) ||
        flags == (EM_SPAWN_LINK | EM_SPAWN_MONITOR))
        return EM_EINVAL;
    if (node == em_node()) {
        em_proc_fn fn = em_lookup_fn(fn_name);
        const char *entry = fn ? fn_name_static(fn_name, strlen(fn_name)) : NULL;
        if (!fn || !entry)
            return EM_ENOTFOUND;
        if (flags & EM_SPAWN_LINK)
            return em_spawn_link_named(fn, entry, arg, out);
        if (flags & EM_SPAWN_MONITOR)
            return em_spawn_monitor_named(fn, entry, arg, out, ref);
        return em_spawn_named(fn, entry, arg, out);
    }
    if (!emi_dist_on())
        return EM_ESTATE;
    bool self = false;
    emi_peer *pr = peer_for_spec(nn, &self);
    if (!pr)
        return EM_EINVAL;
    int rc = wait_up(pr, timeout_ms);
    if (rc)
        return rc == EM_ETIMEDOUT ? rc : EM_ENOPROC;
    pthread_mutex_lock(&pr->lock);
    uint32_t idx = pr->node;
    pthread_mutex_unlock(&pr->lock);
    emi_node *n = emi_node_get(idx);
    if (!n)
        return EM_ENOPROC;
    static atomic_uint_fast64_t reqs;
    /* Relaxed: only uniqueness matters. */
    uint64_t req = atomic_fetch_add_explicit(&reqs, 1, memory_order_relaxed) + 1;
    uint64_t id = EMI_REMOTE_MON_BIT | ((uint64_t)idx << 46) | (emi_ref_next() & EMI_REMOTE_MON_MASK);
    rc = emi_dist_spawn_request(p, n, req, fn_name, arg, flags, id);
    if (rc)
        return rc;
    em_term m;
    rc = em_receive_if(&m, timeout_ms, is_reply, &req);
    if (rc)
        return atomic_load_explicit(&pr->up, memory_order_relaxed) ? rc : EM_ENOPROC;
    em_pid_t child;
    if (!em_get_pid(em_at(m, 2), &child))
        return em_is_atom(em_at(m, 2), "notfound") ? EM_ENOTFOUND : EM_ENOPROC;
    if (out)
        *out = child;
    if (ref && (flags & EM_SPAWN_MONITOR))
        *ref = emi_ref_box(&p->heap, 0, id);
    return 0;
}

int em_dist_stats_get(em_dist_stats *out)
{
    emi_dist *d = &emi_dist_g;
    if (!out)
        return EM_EINVAL;
    /* Relaxed loads throughout: figures for people and tests. */
    out->msgs_out = atomic_load_explicit(&d->msgs_out, memory_order_relaxed);
    out->msgs_in = atomic_load_explicit(&d->msgs_in, memory_order_relaxed);
    out->bytes_out = atomic_load_explicit(&d->bytes_out, memory_order_relaxed);
    out->bytes_in = atomic_load_explicit(&d->bytes_in, memory_order_relaxed);
    out->frames_out = atomic_load_explicit(&d->frames_out, memory_order_relaxed);
    out->frames_in = atomic_load_explicit(&d->frames_in, memory_order_relaxed);
    out->dropped = atomic_load_explicit(&d->dropped, memory_order_relaxed);
    out->bad_frames = atomic_load_explicit(&d->bad_frames, memory_order_relaxed);
    out->refused = atomic_load_explicit(&d->refused, memory_order_relaxed);
    out->sender_waits = atomic_load_explicit(&d->sender_waits, memory_order_relaxed);
    out->queued_bytes = atomic_load_explicit(&d->queued, memory_order_relaxed);
    out->peers = (uint32_t)(em_nodes(NULL, 0) + em_nodes_hidden(NULL, 0));
    return 0;
}
