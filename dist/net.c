/*
 * net.c - the distribution thread: the ROUTER every peer connects to, the trust
 * check (ZAP), socket events, connections, ticks and silent peers.
 *
 * Each pair of nodes uses two ZeroMQ connections, one per direction: our DEALER
 * (peer.c) connects to their ROUTER and carries what we send them, and theirs
 * connects to ours. A DEALER's routing id is its node's name, so a frame read
 * here says which peer sent it. This thread is the only one that reads: frames,
 * ZAP requests and the events of every socket's monitor. It delivers to local
 * processes directly, as a scheduler would, and so takes part in the process
 * table's grace periods (emi_qsbr_ext_enter/leave) while it handles input.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "core/rt.h"
#include "dist_int.h"

/* A reader hands the thread back after this much input, so that the processes
 * it woke (often on its own scheduler) run before it reads on: a stream of bulk
 * fragments must not keep a small message's receiver waiting. */
#define RECV_BATCH 64
#define RECV_BATCH_BYTES (192 * 1024)
#define MAX_POLL 1024

static struct {
    pthread_t thread;
    bool running;
    void *router, *zap, *rmon;
    int router_fd;              /* ZMQ_FD of the router: readable when input may
                                   have come (edge-triggered, see idle_poll) */
    bool router_drained;        /* the last read ended with nothing left (written
                                   by the token's holder only) */
    int wake_fd;
    atomic_int stop;
    atomic_int wake_pending;
    uint32_t next_mon;
    /* Failed handshakes: addresses already logged (once each). */
    char logged[64][INET6_ADDRSTRLEN + 8];
    unsigned nlogged;
    char last_accepted[INET6_ADDRSTRLEN + 8];
} N;

void emi_net_wake(void)
{
    /* Relaxed: a lost race only costs one extra write. */
    if (atomic_exchange_explicit(&N.wake_pending, 1, memory_order_relaxed))
        return;
    uint64_t one = 1;
    if (write(N.wake_fd, &one, sizeof one) < 0) {
        /* The counter cannot overflow in practice; nothing to do. */
    }
}

void emi_net_request_connect(emi_peer *pr)
{
    (void)pr;   /* the thread scans for pending peers without a socket */
    emi_net_wake();
}

int emi_parse_endpoint(const char *in, char *out, size_t cap)
{
    if (strncmp(in, "tcp://", 6) == 0) {
        if (strlen(in) + 1 > cap)
            return EM_EINVAL;
        strcpy(out, in);
        return 0;
    }
    const char *colon = strrchr(in, ':');
    if (!colon || colon == in || !colon[1])
        return EM_EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return EM_EINVAL;
    int n = snprintf(out, cap, "tcp://%.*s:%ld", (int)(colon - in), in, port);
    return n > 0 && (size_t)n < cap ? 0 : EM_EINVAL;
}

static bool logged_once(const char *addr)
{
    for (unsigned i = 0; i < N.nlogged && i < 64; i++)
        if (strcmp(N.logged[i], addr) == 0)
            return true;
    snprintf(N.logged[N.nlogged % 64], sizeof N.logged[0], "%s", addr);
    N.nlogged++;
    return false;
}

static void refused(const char *addr, const char *why)
{
    emi_dist_count(&emi_dist_g.refused, 1);
    if (!logged_once(addr))
        emi_dist_log(1, "refused a connection from %s: %s", addr, why);
}

/* ---------------------------------------------------------------- ZAP */

static void zap_reply(const char *version, const char *seq, size_t seq_len, const char *code,
                      const char *text)
{
    zmq_send(N.zap, version, strlen(version), ZMQ_SNDMORE);
    zmq_send(N.zap, seq, seq_len, ZMQ_SNDMORE);
    zmq_send(N.zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(N.zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(N.zap, "", 0, ZMQ_SNDMORE);
    zmq_send(N.zap, "", 0, 0);
}

static void zap_handle(void)
{
    /* A request: version, sequence, domain, address, identity, mechanism,
     * then the mechanism's credentials (CURVE: the client's public key). */
    char part[8][256];
    size_t len[8];
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, N.zap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (n < 8) {
            len[n] = zmq_msg_size(&m) < sizeof part[0] ? zmq_msg_size(&m) : sizeof part[0] - 1;
            memcpy(part[n], zmq_msg_data(&m), len[n]);
            part[n][len[n]] = 0;
            n++;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    if (n < 6)
        return;
    bool ok = n >= 7 && strcmp(part[5], "CURVE") == 0 && len[6] == 32 &&
              emi_trust_accepts((const uint8_t *)part[6]);
    if (!ok)
        refused(part[3], emi_dist_g.cfg.trust == EM_TRUST_COOKIE ? "it does not hold the cookie"
                                                                  : "its key is not in the keyring");
    zap_reply("1.0", part[1], len[1], ok ? "200" : "400", ok ? "OK" : "not trusted");
}

/* ------------------------------------------------------- socket events */

/* A monitor event: the event number, its value, and the endpoint. */
static bool read_event(void *mon, uint16_t *ev, uint32_t *val)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return false;
    }
    bool ok = zmq_msg_size(&m) >= 6;
    if (ok) {
        const uint8_t *d = zmq_msg_data(&m);
        memcpy(ev, d, 2);
        memcpy(val, d + 2, 4);
    }
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    return ok;
}

static void router_event(uint16_t ev, uint32_t val)
{
    if (ev == ZMQ_EVENT_ACCEPTED) {
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        N.last_accepted[0] = 0;
        if (getpeername((int)val, (struct sockaddr *)&sa, &sl) == 0) {
            if (sa.ss_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, N.last_accepted,
                          sizeof N.last_accepted);
            else if (sa.ss_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, N.last_accepted,
                          sizeof N.last_accepted);
        }
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        /* A wrong cookie fails before ZAP: the client used another server key. */
        refused(N.last_accepted[0] ? N.last_accepted : "an unknown address",
                "the CURVE handshake failed (a wrong cookie or key)");
    }
}

/* Sockets are made and closed by the dist thread only: it polls their monitors.
 * Other threads (readers taking a peer down) ask with close_req. */
static void peer_close_locked(emi_peer *pr)
{
    pr->close_req = false;
    if (pr->mon) {
        zmq_socket_monitor(pr->sock, NULL, 0);
        zmq_close(pr->mon);
        pr->mon = NULL;
    }
    /* A little linger, so a goodbye already handed over still leaves. */
    int linger = 500;
    if (pr->sock) {
        zmq_setsockopt(pr->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(pr->sock);
        pr->sock = NULL;
    }
    if (pr->bulk) {
        zmq_close(pr->bulk);
        pr->bulk = NULL;
    }
    pr->bulk_sent = pr->bulk_acked = 0;
    pr->lane_ok = false;
}

void emi_net_close_peer_locked(emi_peer *pr)
{
    pr->close_req = true;
    pr->bulk_sent = pr->bulk_acked = 0;
    pr->lane_ok = false;
    emi_net_wake();
}

static void peer_event(emi_peer *pr, uint16_t ev, uint32_t val)
{
    (void)val;
    switch (ev) {
    case ZMQ_EVENT_DISCONNECTED:
        emi_peer_down(pr, "the connection was lost");   /* it looks at the state */
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        /* Without detail, the other side closed the connection during the
         * handshake: a node with another cookie does that, and so does one
         * that is stopping, so the line names both. */
        if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            emi_dist_log(1, "node %.*s broke off the handshake: it may be stopping, or %s",
                         (int)pr->len, pr->name,
                         emi_dist_g.cfg.trust == EM_TRUST_COOKIE ? "its cookie differs from ours"
                                                                 : "our keys do not match");
        else
            emi_dist_log(1, "node %.*s refused us: %s", (int)pr->len, pr->name,
                         emi_dist_g.cfg.trust == EM_TRUST_COOKIE ? "check the cookie" : "check the keyring");
        emi_peer_down(pr, "the handshake failed");
        break;
    default:
        break;
    }
}

/* --------------------------------------------------------- connections */

void emi_net_connect_peer(emi_peer *pr)
{
    emi_dist *d = &emi_dist_g;
    pthread_mutex_lock(&pr->lock);
    if (pr->close_req)
        peer_close_locked(pr);
    if (pr->sock || pr->state == PEER_IDLE || !pr->has_key) {
        pthread_mutex_unlock(&pr->lock);
        return;
    }
    if (!pr->endpoint[0]) {
        /* No address: ask the port mapper of its host (blocking this thread
         * for a local round trip; the peer's items wait meanwhile). */
        char ep[sizeof pr->endpoint];
        pthread_mutex_unlock(&pr->lock);
        int rc = emi_discover_enabled() ? emi_discover_lookup(pr, ep, sizeof ep) : EM_ENOTFOUND;
        if (rc) {
            emi_peer_down(pr, "no address for it");
            return;
        }
        pthread_mutex_lock(&pr->lock);
        if (pr->close_req)
            peer_close_locked(pr);
        if (pr->sock || pr->state == PEER_IDLE) {
            pthread_mutex_unlock(&pr->lock);
            return;
        }
        snprintf(pr->endpoint, sizeof pr->endpoint, "%s", ep);
    }
    void *s = zmq_socket(d->ctx, ZMQ_DEALER);
    int one = 1, zero = 0, hwm = EMI_SNDHWM, ivl = 100, buf = 512 * 1024;
    char monep[64];
    snprintf(monep, sizeof monep, "inproc://ember-peer-%u", ++N.next_mon);
    int rc = s ? 0 : -1;
    rc |= zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, pr->serverkey, 32);
    rc |= zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, emi_trust_public(), 32);
    rc |= zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, emi_trust_secret(), 32);
    rc |= zmq_setsockopt(s, ZMQ_ROUTING_ID, d->self, d->self_len);
    rc |= zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    rc |= zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    rc |= zmq_setsockopt(s, ZMQ_SNDBUF, &buf, sizeof buf);
    rc |= zmq_setsockopt(s, ZMQ_TCP_KEEPALIVE, &one, sizeof one);
    rc |= zmq_socket_monitor(s, monep,
                             ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    void *mon = rc == 0 ? zmq_socket(d->ctx, ZMQ_PAIR) : NULL;
    if (mon && zmq_connect(mon, monep) != 0) {
        zmq_close(mon);
        mon = NULL;
    }
    /* The bulk lane: the same peer and keys, a routing id of its own. */
    void *b = mon ? zmq_socket(d->ctx, ZMQ_DEALER) : NULL;
    char bid[EMI_NODE_NAME_MAX + 3];
    memcpy(bid, d->self, d->self_len);
    memcpy(bid + d->self_len, EMI_BULK_SUFFIX, 2);
    int brc = b ? 0 : -1;
    brc |= zmq_setsockopt(b, ZMQ_CURVE_SERVERKEY, pr->serverkey, 32);
    brc |= zmq_setsockopt(b, ZMQ_CURVE_PUBLICKEY, emi_trust_public(), 32);
    brc |= zmq_setsockopt(b, ZMQ_CURVE_SECRETKEY, emi_trust_secret(), 32);
    brc |= zmq_setsockopt(b, ZMQ_ROUTING_ID, bid, d->self_len + 2);
    brc |= zmq_setsockopt(b, ZMQ_SNDHWM, &hwm, sizeof hwm);
    brc |= zmq_setsockopt(b, ZMQ_LINGER, &zero, sizeof zero);
    brc |= zmq_setsockopt(b, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    if (b && (brc != 0 || zmq_connect(b, pr->endpoint) != 0)) {
        zmq_close(b);
        b = NULL;
    }
    if (!mon || !b || zmq_connect(s, pr->endpoint) != 0) {
        if (b)
            zmq_close(b);
        emi_dist_log(1, "cannot connect to %.*s at %s: %s", (int)pr->len, pr->name, pr->endpoint,
                     zmq_strerror(zmq_errno()));
        if (mon)
            zmq_close(mon);
        if (s)
            zmq_close(s);
        pthread_mutex_unlock(&pr->lock);
        emi_peer_down(pr, "no connection");
        return;
    }
    pr->sock = s;
    pr->bulk = b;
    pr->mon = mon;
    emi_peer_hello_locked(pr);
    emi_peer_flush_locked(pr);
    pthread_mutex_unlock(&pr->lock);
    emi_dist_log(3, "connecting to %.*s at %s", (int)pr->len, pr->name, pr->endpoint);
}

/* -------------------------------------------------------------- frames */

/* Reads a batch of frames; returns how many carried more than a tick (the busy
 * wait follows traffic, not heartbeats). */
static int read_router(void)
{
    size_t bytes = 0;
    int got = 0;
    N.router_drained = false;
    for (int i = 0; i < RECV_BATCH && bytes < RECV_BATCH_BYTES; i++) {
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, N.router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            /* Only EAGAIN means the queue is empty; an EINTR leaves it unknown. */
            N.router_drained = zmq_errno() == EAGAIN;
            return got;
        }
        zmq_msg_init(&m);
        if (!zmq_msg_more(&id) || zmq_msg_recv(&m, N.router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&m);
            continue;
        }
        /* A DEALER sends single frames: anything more is not ours; skip it. */
        bool extra = zmq_msg_more(&m);
        if (!extra) {
            emi_dist_count(&emi_dist_g.frames_in, 1);
            emi_dist_count(&emi_dist_g.bytes_in, zmq_msg_size(&m));
            bytes += zmq_msg_size(&m);
            emi_dist_handle_frame(zmq_msg_data(&id), zmq_msg_size(&id), zmq_msg_data(&m),
                                  zmq_msg_size(&m));
        } else {
            emi_dist_count(&emi_dist_g.bad_frames, 1);
        }
        while (zmq_msg_more(&m)) {
            zmq_msg_close(&m);
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, N.router, ZMQ_DONTWAIT) < 0)
                break;
        }
        if (zmq_msg_size(&m) > EMI_LONE_TICK_BYTES)
            got++;
        zmq_msg_close(&id);
        zmq_msg_close(&m);
    }
    return got;
}

/* ------------------------------------------------- who reads the ROUTER */

/* Input is read by whoever holds the token: a scheduler with nothing to run
 * (it blocks in zmq_poll instead of its futex, so a message wakes the thread
 * that will run its receiver: one hand-off, as with a bare ZeroMQ socket), a
 * busy scheduler now and then, or the dist thread when every scheduler is busy. */
static atomic_int token;                 /* 0 free, 1 a scheduler, 2 the dist thread */
static atomic_int pollers;               /* schedulers blocked in the poll */
static atomic_int_fast64_t last_read_ns;
static atomic_int_fast64_t last_input_ns;   /* when frames last came in */
atomic_int emi_dist_up;

static bool token_take_as(int who)
{
    int free_ = 0;
    /* Acquire: the previous holder's use of the socket happens before ours. */
    return atomic_compare_exchange_strong_explicit(&token, &free_, who, memory_order_acquire,
                                                   memory_order_relaxed);
}

static bool token_take(void) { return token_take_as(1); }

static void token_give(void)
{
    /* Release: our use of the socket happens before the next holder's. */
    atomic_store_explicit(&token, 0, memory_order_release);
}

/* Each thread that reads input decodes into a scratch heap of its own. */
typedef struct scratch {
    struct scratch *next;
    em_heap *heap;
    msgpack_zone zone;
} scratch;
static _Thread_local em_heap *my_scratch;
static _Thread_local msgpack_zone *my_zone;
static _Thread_local unsigned my_gen;    /* a thread outlives a node (tests run several) */
static atomic_uint scratch_gen = 1;
static scratch *scratches;
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

static em_heap *scratch_heap(void)
{
    /* Relaxed: changed only while no thread reads input. */
    unsigned gen = atomic_load_explicit(&scratch_gen, memory_order_relaxed);
    if (my_gen != gen) {
        my_scratch = NULL;
        my_zone = NULL;
        my_gen = gen;
    }
    if (!my_scratch) {
        scratch *sc = malloc(sizeof *sc);
        em_heap *h = sc ? em_heap_new() : NULL;
        if (!h) {
            free(sc);
            return NULL;
        }
        sc->heap = h;
        if (!msgpack_zone_init(&sc->zone, 8192)) {
            em_heap_free(h);
            free(sc);
            return NULL;
        }
        my_zone = &sc->zone;
        pthread_mutex_lock(&scratch_lock);
        sc->next = scratches;
        scratches = sc;
        pthread_mutex_unlock(&scratch_lock);
        my_scratch = h;
    }
    return my_scratch;
}

static void scratches_free(void)
{
    pthread_mutex_lock(&scratch_lock);
    while (scratches) {
        scratch *sc = scratches;
        scratches = sc->next;
        em_heap_free(sc->heap);
        msgpack_zone_destroy(&sc->zone);
        free(sc);
    }
    pthread_mutex_unlock(&scratch_lock);
    my_scratch = NULL;
    my_zone = NULL;
    atomic_fetch_add_explicit(&scratch_gen, 1, memory_order_relaxed);
}

msgpack_zone *emi_net_zone(void)
{
    return scratch_heap() ? my_zone : NULL;
}

static void read_input(void)
{
    em_heap *h = scratch_heap();
    if (!h)
        return;
    em_heap_use(h);
    int got = read_router();
    em_heap_use(NULL);
    /* Relaxed: hints for who should read next, and for the busy wait. */
    int64_t now = emi_dist_now_ns();
    atomic_store_explicit(&last_read_ns, now, memory_order_relaxed);
    if (got)
        atomic_store_explicit(&last_input_ns, now, memory_order_relaxed);
    if (emi_dist_dirty)
        emi_flush_dirty();
}

void emi_dist_poke(emi_sched *s)
{
    uint64_t one = 1;
    if (s->wake_fd > 0 && write(s->wake_fd, &one, sizeof one) < 0) {
        /* The counter cannot overflow in practice. */
    }
}

/* The busy wait before the token's holder blocks (em_dist_config's
 * busy_wait_us): until busy_wait_us have passed since frames last came in,
 * look at the router and our event descriptor; true once one is readable (pf's
 * revents set), false when the time is up. On this kind of machine a thread
 * woken on a core that sleeps starts some 30 us later (the hypervisor must wake
 * the virtual CPU first), against 2-3 us on a core that is running; a round
 * trip between two nodes takes two such wake-ups in the I/O threads, and the
 * bare ZeroMQ exchange pays the same. Polling keeps this core awake, so ZeroMQ's I/O thread wakes onto a
 * running core and our own wake-up costs nothing. sched_yield after each look
 * hands the core to any thread that wants it (the I/O thread above all): a
 * spinner that did not yield held the core for its whole time slice and tripled
 * the round trip. */
static bool busy_wait(struct pollfd *pf, int64_t timeout_ns)
{
    if (emi_dist_g.busy_wait_ns <= 0)
        return false;
    int64_t now = emi_dist_now_ns();
    /* Relaxed: a hint of recent traffic. */
    int64_t end = atomic_load_explicit(&last_input_ns, memory_order_relaxed) + emi_dist_g.busy_wait_ns;
    if (timeout_ns >= 0 && now + timeout_ns < end)
        end = now + timeout_ns;   /* a timer is due first */
    while (now < end) {
        if (poll(pf, 2, 0) > 0)
            return true;
        sched_yield();
        now = emi_dist_now_ns();
    }
    return false;
}

bool emi_dist_idle_poll(emi_sched *s, int64_t timeout_ns)
{
    /* Acquire: pairs with emi_net_start's release; the schedulers' event
     * descriptors were made before. */
    if (!atomic_load_explicit(&emi_dist_up, memory_order_acquire) || s->wake_fd <= 0)
        return false;
    bool got = false;
    for (int i = 0; i < 64 && !(got = token_take()); i++)
        emi_cpu_relax();
    /* The dist thread may be blocked on the socket: it lets go when woken. */
    if (!got && atomic_load_explicit(&token, memory_order_relaxed) == 2) {
        emi_net_wake();
        int64_t t0 = emi_dist_now_ns();
        while (!(got = token_take()) && emi_dist_now_ns() - t0 < 50000)
            for (int k = 0; k < 16; k++)
                emi_cpu_relax();
    }
    if (!got)
        return false;
    atomic_fetch_add_explicit(&pollers, 1, memory_order_relaxed);
    /* seq_cst: against a waker's CAS of `sleeping` then load of `polling`. */
    atomic_store_explicit(&s->polling, 1, memory_order_seq_cst);
    bool woken = false;
    if (atomic_load_explicit(&s->sleeping, memory_order_seq_cst) == 1) {
        /* The router's descriptor signals only a change: input that came before
         * the last read stopped (at its batch limit) announces nothing, so read
         * first unless that read emptied the queue. Otherwise a plain poll on
         * the descriptor and our event descriptor: zmq_poll would add a
         * non-blocking pass and a look at the socket's events, each a system
         * call, before and after it blocks (a dozen calls a round trip where a
         * bare ZeroMQ exchange makes three, on a machine where each costs a
         * microsecond or more). Only the token's holder uses the router, and
         * every read ends at EAGAIN or sets router_drained false. */
        bool input = !N.router_drained;
        if (!input) {
            struct pollfd pf[2] = {{N.router_fd, POLLIN, 0}, {s->wake_fd, POLLIN, 0}};
            int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
            if (busy_wait(pf, timeout_ns) || poll(pf, 2, ms) > 0) {
                input = pf[0].revents & POLLIN;
                uint64_t v;
                woken = (pf[1].revents & POLLIN) && read(s->wake_fd, &v, sizeof v) > 0;
            }
        }
        if (input) {
            emi_qsbr_quiescent(s);   /* online: we are about to touch processes */
            /* Counted among the sleepers, this scheduler delivers as a thread
             * outside the schedulers would: announced, so that another one
             * does not take every mailbox meanwhile (sched/solo.c). seq_cst:
             * before the first read of rt->solo; release: after the last
             * delivery. */
            atomic_fetch_add_explicit(&emi_rt_g->outside_ops, 1, memory_order_seq_cst);
            read_input();
            atomic_fetch_sub_explicit(&emi_rt_g->outside_ops, 1, memory_order_release);
            emi_qsbr_offline(s);
        }
    }
    atomic_store_explicit(&s->polling, 0, memory_order_relaxed);
    atomic_fetch_sub_explicit(&pollers, 1, memory_order_relaxed);
    token_give();
    /* Off to run something: the dist thread covers input until we are idle. */
    if (woken)
        emi_net_wake();
    return true;
}

void emi_dist_busy_poll(emi_sched *s, bool now)
{
    (void)s;
    /* Relaxed: a hint. A busy scheduler looks every 200 us at most; a spinning
     * one whenever it asks. */
    if ((!now && emi_dist_now_ns() - atomic_load_explicit(&last_read_ns, memory_order_relaxed) < 200000) ||
        !token_take())
        return;
    int ev = 0;
    size_t el = sizeof ev;
    if (N.router && zmq_getsockopt(N.router, ZMQ_EVENTS, &ev, &el) == 0 && (ev & ZMQ_POLLIN))
        read_input();
    token_give();
}

/* ---------------------------------------------------------- housekeeping */

static void send_tick_locked(emi_peer *pr)
{
    size_t mark;
    /* The lock is already ours: pack the tick by hand. */
    if (pr->buf.size == 0) {
        static const char zero[12];
        msgpack_sbuffer_write(&pr->buf, zero, 12);
    }
    mark = pr->buf.size;
    msgpack_pack_array(&pr->pk, 1);
    msgpack_pack_uint8(&pr->pk, OP_TICK);
    pr->buf_items++;
    emi_peer_queued_add(pr, pr->buf.size - mark, 1);
    emi_peer_flush_locked(pr);
}

static int64_t housekeeping(void)
{
    emi_dist *d = &emi_dist_g;
    int64_t now = emi_dist_now_ns();
    int64_t tick = d->tick_ns;
    bool backlog = false;
    for (emi_peer *pr = emi_peers_first(); pr; pr = pr->next) {
        pthread_mutex_lock(&pr->lock);
        if (pr->close_req)
            peer_close_locked(pr);
        int st = pr->state;
        bool need_sock = st != PEER_IDLE && !pr->sock;
        bool silent = false, stuck = false;
        if (st == PEER_UP) {
            if (now - pr->last_out_ns > tick / 4 && pr->sock)
                send_tick_locked(pr);
            silent = now - atomic_load_explicit(&pr->last_in_ns, memory_order_relaxed) > tick;
        } else if (st == PEER_PENDING) {
            stuck = now - pr->connect_ns > tick;
        }
        if (pr->sock && (pr->buf_items || pr->queued)) {
            if (!emi_peer_flush_locked(pr) || pr->queued)
                backlog = true;
        }
        pthread_mutex_unlock(&pr->lock);
        if (need_sock)
            emi_net_connect_peer(pr);
        /* Relaxed: a request flag; the lock inside emi_peer_down orders the rest. */
        if (atomic_exchange_explicit(&pr->kick, 0, memory_order_relaxed)) {
            /* Say goodbye first, so the peer sees the end at once, as a
             * closed connection tells an Erlang node. */
            msgpack_packer *pk = emi_pack_begin();
            msgpack_pack_array(pk, 1);
            msgpack_pack_uint8(pk, OP_BYE);
            emi_pack_commit(pr, 0, 0, true, false);
            pthread_mutex_lock(&pr->lock);
            emi_peer_flush_locked(pr);
            pthread_mutex_unlock(&pr->lock);
            emi_peer_down(pr, "disconnected on request");
        }
        else if (silent)
            emi_peer_down(pr, "it was silent for a whole tick");
        else if (stuck)
            emi_peer_down(pr, "it did not answer");
    }
    int64_t wait_ms = tick / 4 / 1000000;
    if (wait_ms < 1)
        wait_ms = 1;
    return backlog ? 1 : wait_ms;
}

static void *net_main(void *arg)
{
    (void)arg;
    zmq_pollitem_t items[MAX_POLL];
    emi_peer *owners[MAX_POLL];
    int64_t wait_ms = 1;
    int64_t last_house = 0;
    while (!atomic_load_explicit(&N.stop, memory_order_acquire)) {
        /* Read input ourselves while no scheduler waits on it (all are busy):
         * we block on the socket too, so input never waits for a busy scheduler
         * to look. An idle scheduler that wants the socket wakes us, and we let
         * go. Relaxed loads: hints. */
        bool mine = atomic_load_explicit(&pollers, memory_order_relaxed) == 0 && token_take_as(2);
        int n = 0;
        items[n++] = (zmq_pollitem_t){mine ? N.router : NULL, mine ? 0 : -1, mine ? ZMQ_POLLIN : 0, 0};
        items[n++] = (zmq_pollitem_t){N.zap, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){N.rmon, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, N.wake_fd, ZMQ_POLLIN, 0};
        for (emi_peer *pr = emi_peers_first(); pr && n < MAX_POLL; pr = pr->next)
            if (pr->mon) {   /* written by this thread only */
                owners[n] = pr;
                items[n++] = (zmq_pollitem_t){pr->mon, 0, ZMQ_POLLIN, 0};
            }
        bool covered = mine || atomic_load_explicit(&pollers, memory_order_relaxed) > 0;
        long timeout = covered ? (long)wait_ms : 1;
        int rc = zmq_poll(mine ? items : items + 1, mine ? n : n - 1, timeout);
        if (rc < 0 && zmq_errno() != EINTR) {
            /* Should not happen (only this thread closes what it polls); the
             * thread must not end over it, or nobody answers ZAP any more. */
            static bool said;
            if (!said)
                emi_dist_log(1, "zmq_poll: %s", zmq_strerror(zmq_errno()));
            said = true;
            if (mine)
                token_give();
            usleep(1000);
            continue;
        }
        if (mine) {
            emi_qsbr_ext_enter();
            if (items[0].revents & ZMQ_POLLIN)
                read_input();
            emi_qsbr_ext_leave();
            token_give();
        }
        emi_qsbr_ext_enter();
        if (items[3].revents & ZMQ_POLLIN) {
            uint64_t v;
            if (read(N.wake_fd, &v, sizeof v) < 0) {
                /* EAGAIN: another read took it */
            }
            /* Relaxed: pairs with emi_net_wake's exchange; at worst one more wake. */
            atomic_store_explicit(&N.wake_pending, 0, memory_order_relaxed);
        }
        if (items[1].revents & ZMQ_POLLIN)
            for (int i = 0; i < 16; i++)
                zap_handle();
        if (items[2].revents & ZMQ_POLLIN) {
            uint16_t ev;
            uint32_t val;
            while (read_event(N.rmon, &ev, &val))
                router_event(ev, val);
        }
        em_heap *h = scratch_heap();
        em_heap_use(h);
        for (int i = 4; i < n; i++)
            if (items[i].revents & ZMQ_POLLIN) {
                uint16_t ev;
                uint32_t val;
                while (owners[i]->mon && read_event(owners[i]->mon, &ev, &val))
                    peer_event(owners[i], ev, val);
            }
        int64_t now = emi_dist_now_ns();
        if (rc == 0 || (items[3].revents & ZMQ_POLLIN) || now - last_house > 1000000) {
            wait_ms = housekeeping();
            last_house = now;
        }
        em_heap_use(NULL);
        if (emi_dist_dirty)
            emi_flush_dirty();
        emi_qsbr_ext_leave();
    }
    emi_thread_caches_fini();
    return NULL;
}

/* --------------------------------------------------------- start, stop */

/* emi_net_start runs in a process, so the preemption signal may land while a
 * ZeroMQ call waits for its I/O thread; the call then fails with EINTR (a
 * fresh-clone ASan run of the demo saw ember-ctl's node fail to start so, under
 * load). These try again. */
static void *socket_retry(void *ctx, int type)
{
    void *s;
    while (!(s = zmq_socket(ctx, type)) && zmq_errno() == EINTR)
        ;
    return s;
}

static int bind_retry(void *s, const char *ep)
{
    int rc;
    while ((rc = zmq_bind(s, ep)) != 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

static int monitor_retry(void *s, const char *ep, int events)
{
    int rc;
    while ((rc = zmq_socket_monitor(s, ep, events)) != 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

static int connect_retry(void *s, const char *ep)
{
    int rc;
    while ((rc = zmq_connect(s, ep)) != 0 && zmq_errno() == EINTR)
        ;
    return rc;
}

int emi_net_start(void)
{
    emi_dist *d = &emi_dist_g;
    memset(&N, 0, sizeof N);
    d->ctx = zmq_ctx_new();
    if (!d->ctx)
        return EM_ENOMEM;
    N.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    N.zap = socket_retry(d->ctx, ZMQ_REP);
    N.router = socket_retry(d->ctx, ZMQ_ROUTER);
    N.rmon = socket_retry(d->ctx, ZMQ_PAIR);
    if (N.wake_fd < 0 || !N.zap || !N.router || !N.rmon ||
        bind_retry(N.zap, "inproc://zeromq.zap.01") != 0)
        goto fail;
    int one = 1, zero = 0, hwm = 64, buf = 512 * 1024;
    int rc = 0;
    rc |= zmq_setsockopt(N.router, ZMQ_CURVE_SERVER, &one, sizeof one);
    rc |= zmq_setsockopt(N.router, ZMQ_CURVE_SECRETKEY, emi_trust_secret(), 32);
    rc |= zmq_setsockopt(N.router, ZMQ_ZAP_DOMAIN, "ember", 5);
    rc |= zmq_setsockopt(N.router, ZMQ_ROUTER_HANDOVER, &one, sizeof one);
    rc |= zmq_setsockopt(N.router, ZMQ_LINGER, &zero, sizeof zero);
    rc |= zmq_setsockopt(N.router, ZMQ_RCVHWM, &hwm, sizeof hwm);
    rc |= zmq_setsockopt(N.router, ZMQ_RCVBUF, &buf, sizeof buf);
    rc |= monitor_retry(N.router, "inproc://ember-router",
                        ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                            ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
    rc |= connect_retry(N.rmon, "inproc://ember-router");
    if (rc)
        goto fail;
    if (bind_retry(N.router, d->endpoint) != 0) {
        emi_dist_log(1, "cannot listen on %s: %s", d->endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    size_t fl = sizeof N.router_fd;
    if (zmq_getsockopt(N.router, ZMQ_FD, &N.router_fd, &fl) != 0)
        goto fail;
    char last[288];
    size_t ll = sizeof last;
    if (zmq_getsockopt(N.router, ZMQ_LAST_ENDPOINT, last, &ll) == 0) {
        const char *colon = strrchr(last, ':');
        d->port = colon ? atoi(colon + 1) : 0;
        /* Peers need an address they can reach: keep our host, take the port. */
        char host[288];
        const char *h = d->endpoint + 6;
        const char *hc = strrchr(h, ':');
        snprintf(host, sizeof host, "%.*s", (int)(hc ? hc - h : (long)strlen(h)), h);
        if (strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0) {
            const char *at = strchr(d->self, '@');
            snprintf(host, sizeof host, "%s", at ? at + 1 : "127.0.0.1");
        }
        snprintf(d->endpoint, sizeof d->endpoint, "tcp://%.256s:%d", host, d->port);
    }
    atomic_store_explicit(&N.stop, 0, memory_order_relaxed);
    atomic_store_explicit(&token, 0, memory_order_relaxed);
    if (pthread_create(&N.thread, NULL, net_main, NULL) != 0)
        goto fail;
    N.running = true;
    /* Each scheduler's event descriptor, for wakers to end its network poll. */
    for (int i = 0; i < emi_rt_g->nsched; i++)
        if (emi_rt_g->scheds[i]->wake_fd <= 0) {
            int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
            emi_rt_g->scheds[i]->wake_fd = fd > 0 ? fd : 0;
        }
    /* Release: the descriptors above before a scheduler sees distribution up. */
    atomic_store_explicit(&emi_dist_up, 1, memory_order_release);
    return 0;
fail:
    emi_net_stop();
    return EM_EINVAL;
}

void emi_net_stop(void)
{
    emi_dist *d = &emi_dist_g;
    atomic_store_explicit(&emi_dist_up, 0, memory_order_relaxed);
    if (N.running) {
        atomic_store_explicit(&N.stop, 1, memory_order_release);
        emi_net_wake();
        pthread_join(N.thread, NULL);
        N.running = false;
    }
    /* Take the token for good: no scheduler reads the ROUTER from here on. A
     * scheduler blocked in its poll is woken and gives it back. */
    while (N.router && !token_take()) {
        for (int i = 0; emi_rt_g && i < emi_rt_g->nsched; i++)
            emi_dist_poke(emi_rt_g->scheds[i]);
        sched_yield();
    }
    for (emi_peer *pr = emi_peers_first(); pr; pr = pr->next) {
        pthread_mutex_lock(&pr->lock);
        peer_close_locked(pr);
        pthread_mutex_unlock(&pr->lock);
    }
    if (N.router) {
        zmq_socket_monitor(N.router, NULL, 0);
        zmq_close(N.router);
    }
    if (N.rmon)
        zmq_close(N.rmon);
    if (N.zap)
        zmq_close(N.zap);
    N.router = N.rmon = N.zap = NULL;
    /* EINTR: as above, a signal ended the wait for the I/O threads; the call
     * can be made again. */
    while (d->ctx && zmq_ctx_term(d->ctx) != 0 && zmq_errno() == EINTR)
        ;
    d->ctx = NULL;
    /* The token stays taken: no scheduler may poll the closed socket. The
     * event descriptors stay open until the runtime ends (emi_net_fini): a
     * scheduler just leaving its poll may still write to them. */
    scratches_free();
}

void emi_net_fini(void)
{
    if (N.wake_fd > 0)
        close(N.wake_fd);
    N.wake_fd = -1;
    for (int i = 0; emi_rt_g && i < emi_rt_g->nsched; i++)
        if (emi_rt_g->scheds[i]->wake_fd > 0) {
            close(emi_rt_g->scheds[i]->wake_fd);
            emi_rt_g->scheds[i]->wake_fd = 0;
        }
}
