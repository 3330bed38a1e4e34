/*
 * dist_int.h - the distribution layer's internal types, shared by its files.
 *
 * The pieces, and the thread each runs on:
 *  - nodes.c: the node table. A pid's top 16 bits index it; an entry is one life
 *    (name, creation) of a node, so a pid of an earlier life stays dead. Any thread.
 *  - peer.c: one peer per remote node name: its ZeroMQ DEALER socket (our half of
 *    the pair of connections), the buffer that batches what we send it, and the
 *    streams that cut large messages into fragments. Processes pack into the
 *    buffer on their own scheduler thread, and the buffer goes out when the
 *    sender's scheduler switches away (or when it is full), so a burst of sends
 *    becomes one frame and a lone reply leaves at once.
 *  - net.c: the distribution thread. It owns the ROUTER socket that every peer's
 *    DEALER connects to, reads frames, answers ZAP (the trust check), watches the
 *    sockets' events, sends ticks and notices silent peers.
 *  - ops.c: what an incoming operation does (deliver a message, set a link, fire a
 *    monitor, ...), and what a node going down does to links and monitors.
 *  - trust.c: keys from a cookie or a keyring.
 *  - api.c: the public calls and the net_kernel process that spawns for peers.
 */
#ifndef EMBER_DIST_INT_H
#define EMBER_DIST_INT_H

#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "ember.h"

/* Operations. Every item of a frame is a msgpack array whose first element is
 * one of these. Pids of the two ends are sent as the 64-bit pid of their own
 * node (node bits 0): `from` names a process of the sender, `to` one of the
 * receiver. */
enum emi_op {
    OP_HDR = 0,       /* [0, sender creation, receiver creation]: opens a frame */
    OP_SEND = 1,      /* [1, from, to, msg] */
    OP_REG_SEND = 2,  /* [2, from, name, msg] */
    OP_LINK = 3,      /* [3, from, to] */
    OP_UNLINK = 4,    /* [4, from, to] */
    OP_EXIT = 5,      /* [5, from, to, reason]: a linked process ended */
    OP_EXIT2 = 6,     /* [6, from, to, reason]: em_exit_pid */
    OP_MONITOR = 7,   /* [7, from, to, ref id] */
    OP_DEMONITOR = 8, /* [8, from, to, ref id] */
    OP_DOWN = 9,      /* [9, from (the target), to (the watcher), ref id, reason] */
    OP_SPAWN_REQ = 10,   /* [10, from, req id, function, arg, flags, ref id] */
    OP_SPAWN_REPLY = 11, /* [11, to, req id, pid or 0, flags, ref id, error] */
    OP_TICK = 12,     /* [12] */
    OP_HELLO = 13,    /* [13, name, creation, hidden, endpoint, [[name, endpoint], ...]] */
    OP_FRAG = 14,     /* [14, from, total length, chunk]: a piece of a large item */
    OP_BYE = 15,      /* [15]: the sender is going down in order */
    OP_ACK = 16,      /* [16, n]: n frames of the bulk lane were handled */
    OP_NODES = 17,    /* [17, [[name, endpoint], ...]]: visible nodes to connect to */
    OP_MAX
};

#define EMI_FRAME_MAX (64 * 1024)     /* a frame of small items is sent at this size */
#define EMI_LONE_TICK_BYTES 14        /* a frame of one tick: the header's 12 bytes and [12] */
#define EMI_FRAG_MAX (16 * 1024)      /* items above this go to the bulk lane, in fragments */
#define EMI_BULK_FRAG (64 * 1024)     /* the size of those fragments */
#ifndef EMI_BULK_WINDOW
#define EMI_BULK_WINDOW 4             /* bulk frames sent and not yet handled there */
#endif
#define EMI_BULK_SUFFIX "\x01" "b"   /* the bulk lane's routing id: the node's name, then this */
#define EMI_SNDHWM 16                 /* frames ZeroMQ may hold per peer */
#define EMI_MAX_NODES 65536

/* ---------------------------------------------------------------- nodes.c */

typedef struct emi_peer emi_peer;

typedef struct emi_node {
    char name[EMI_NODE_NAME_MAX + 1];
    uint32_t len;
    uint32_t creation;
    uint32_t idx;
    em_term atom;
    emi_peer *peer;           /* the peer of this name; fixed at creation */
    atomic_int dead;          /* an earlier life, or a life that went down */
} emi_node;

int emi_nodes_init(const char *self, uint32_t creation);
void emi_nodes_fini(void);
emi_node *emi_node_get(uint32_t idx);                      /* NULL if unknown; any thread */
int64_t emi_node_index(const char *name, size_t len, uint32_t creation);
extern const emi_codec_nodes emi_dist_codec_nodes;

/* ----------------------------------------------------------------- peer.c */

enum emi_peer_state {
    PEER_IDLE = 0,      /* no connection */
    PEER_PENDING,       /* our DEALER connects; their HELLO has not come */
    PEER_UP,
};

typedef struct emi_stream emi_stream;

struct emi_peer {
    char name[EMI_NODE_NAME_MAX + 1];
    uint32_t len;
    em_term atom;
    struct emi_peer *next;          /* the list of all peers (never removed) */

    /* The sending side, under `lock`: any scheduler thread and the dist thread. */
    pthread_mutex_t lock;
    void *sock;                     /* our DEALER, NULL while idle */
    void *bulk;                     /* the bulk lane's DEALER, beside it */
    uint64_t bulk_sent, bulk_acked; /* frames sent on the bulk lane; handled there */
    bool lane_ok;                   /* they know us: the bulk lane may carry frames */
    int state;                      /* an emi_peer_state; also read relaxed */
    uint32_t creation;              /* their creation while up */
    uint32_t node;                  /* node-table index of that life */
    char endpoint[288];             /* tcp://host:port, "" if unknown */
    uint8_t serverkey[32];
    bool has_key;
    bool hidden;                    /* they said they are hidden */
    msgpack_sbuffer buf;            /* small items not yet sent; starts with OP_HDR */
    msgpack_packer pk;
    size_t buf_items;
    emi_stream *streams;            /* large items in fragments, per sender */
    size_t queued;                  /* bytes in buf and streams */
    size_t queued_bulk;             /* of which in streams (the bulk lane) */
    int64_t connect_ns, last_out_ns;
    uint32_t mon_id;                /* inproc endpoint number of the socket monitor */
    void *mon;                      /* its PAIR socket: the dist thread's only */

    /* Written by the dist thread; read by anyone (relaxed). */
    atomic_int_fast64_t last_in_ns;
    atomic_int up;                  /* 1 while PEER_UP: a lock-free hint */
    atomic_int kick;                /* em_node_disconnect asks the dist thread */
    bool close_req;                 /* under lock: the dist thread closes the sockets */

    /* Links and monitors that cross to this peer, for when it goes down. */
    pthread_mutex_t rel_lock;
    struct emi_xrel **rels;         /* EMI_XREL_BUCKETS chains, allocated on first use */
    size_t nrels;
};

/* Peers, by name; emi_peer_get creates one. */
emi_peer *emi_peer_find(const char *name, size_t len);
emi_peer *emi_peer_get(const char *name, size_t len);
void emi_peers_fini(void);
emi_peer *emi_peers_first(void);

/* Sending an item to a peer: emi_pack_begin gives the calling thread's packer,
 * emptied; the caller packs one item (without any lock) and emi_pack_commit
 * appends it to pr's buffer, or to the sender's stream (a large item, or any
 * item of a sender whose stream is not empty: its order). `node` (0: any) is the
 * node life the item is for; ok false discards the item. With `wait`, a process
 * waits while the buffer is at its bound. Returns 0, EM_ENOPROC when the item is
 * dropped (the node is unreachable, or `node` is a dead life), EM_EBADTERM,
 * EM_ENOMEM. Nothing may switch between begin and commit. */
msgpack_packer *emi_pack_begin(void);
int emi_pack_commit(emi_peer *pr, em_pid_t from, uint32_t node, bool ok, bool wait);
void emi_pack_thread_fini(void);
/* emi_peer_flush sends what is buffered (the caller holds the lock): false when
 * ZeroMQ would block, and what is left waits for the next flush. */
bool emi_peer_flush_locked(emi_peer *pr);
void emi_peer_drop_locked(emi_peer *pr);       /* forget what is queued */
void emi_peer_streams_trim_locked(emi_peer *pr); /* free streams no longer needed */
void emi_peer_queued_add(emi_peer *pr, size_t n, int sign);   /* pr locked */
void emi_flush_dirty(void);                    /* this thread's dirty peers */
/* The item sent first on a new connection. */
void emi_peer_hello_locked(emi_peer *pr);
/* Wait (a process) until pr's buffer has room; false if it went down. */
bool emi_peer_wait_room(emi_peer *pr, bool bulk);

/* ------------------------------------------------------------------ ops.c */

/* Cross-node relations recorded per peer, so that its going down fires them. */
enum { XREL_LINK = 1, XREL_MON_OUT = 2, XREL_MON_IN = 3 };
#define EMI_XREL_BUCKETS 1024
typedef struct emi_xrel {
    struct emi_xrel *next;
    int kind;
    em_pid_t local, remote;         /* remote carries the node index */
    uint64_t ref;                   /* monitors: the ref id */
} emi_xrel;

void emi_xrel_add(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref);
bool emi_xrel_remove(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref);
bool emi_xrel_take(emi_peer *pr, int kind, em_pid_t local, em_pid_t remote, uint64_t ref,
                   em_pid_t *found_remote);
int emi_nmon_set(em_pid_t pid, em_term node, bool on);
void emi_ops_init(void);
void emi_nmons_free(void);
void emi_peer_forget_input(emi_peer *pr);
/* emi_dist_handle_frame: one frame from peer pr (or from a sender still unknown,
 * pr NULL, which may only say HELLO). Runs on the dist thread. */
void emi_dist_handle_frame(const char *rid, size_t rid_len, const char *data, size_t len);
/* A peer went down (lost, silent, or said goodbye): drop what is queued, fire
 * links and monitors with noconnection, tell node monitors. Dist thread. */
void emi_peer_down(emi_peer *pr, const char *why);
void emi_node_monitors_fire(emi_peer *pr, bool up);
void emi_xrels_free(emi_peer *pr);
void emi_ops_fini(void);

/* ------------------------------------------------------------------ net.c */

int emi_net_start(void);
void emi_net_stop(void);
void emi_net_fini(void);                  /* as the runtime ends: the event descriptors */
void emi_net_wake(void);                 /* the dist thread looks at its requests */
void emi_net_request_connect(emi_peer *pr);
void emi_net_connect_peer(emi_peer *pr);            /* dist thread */
void emi_net_close_peer_locked(emi_peer *pr);       /* dist thread, pr locked */
int emi_parse_endpoint(const char *in, char *out, size_t cap);   /* host:port -> tcp://... */
msgpack_zone *emi_net_zone(void);                   /* the reading thread's zone */

/* ---------------------------------------------------------------- trust.c */

int emi_trust_init(const em_dist_config *c);
void emi_trust_fini(void);
/* The keys for a connection to a peer; false if we have none for it. */
bool emi_trust_server_key(const char *name, size_t len, uint8_t out[32]);
const uint8_t *emi_trust_public(void);
const uint8_t *emi_trust_secret(void);
bool emi_trust_accepts(const uint8_t key[32]);

/* ------------------------------------------------------- the whole layer */

typedef struct emi_dist {
    atomic_int started;
    em_dist_config cfg;
    char self[EMI_NODE_NAME_MAX + 1];
    uint32_t self_len;
    uint32_t creation;
    em_term self_atom;
    char endpoint[288];             /* what peers connect to */
    int port;
    void *ctx;                      /* the ZeroMQ context */
    em_pid_t kernel;                /* net_kernel: spawns for peers */
    em_pid_t ctl;                   /* ember_ctl: answers control requests */
    size_t peer_buffer;
    int64_t tick_ns;
    int64_t busy_wait_ns;
    int log_level;

    /* Statistics (relaxed counters, any thread). */
    atomic_uint_fast64_t msgs_out, msgs_in, bytes_out, bytes_in, frames_out, frames_in;
    atomic_uint_fast64_t dropped, bad_frames, refused, sender_waits;
    atomic_size_t queued;

    /* Processes that monitor nodes: a small list under its own lock. */
    pthread_mutex_t nmon_lock;
    struct emi_nmon *nmons;
} emi_dist;

extern emi_dist emi_dist_g;

static inline bool emi_dist_on(void)
{
    /* Acquire: the layer's state is set up before `started` reads 1. */
    return atomic_load_explicit(&emi_dist_g.started, memory_order_acquire) != 0;
}

static inline void emi_dist_count(atomic_uint_fast64_t *c, uint64_t n)
{
    /* Relaxed: a statistic. */
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

void emi_dist_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int64_t emi_dist_now_ns(void);

/* ------------------------------------------------------------- discover.c */

int emi_discover_register(void);          /* with this host's mapper, if cfg.epmd */
void emi_discover_unregister(void);
bool emi_discover_enabled(void);
/* The endpoint of pr from the mapper of its host: 0, or an EM_E* code (logged). */
int emi_discover_lookup(emi_peer *pr, char *endpoint, size_t cap);

/* ------------------------------------------------------------------ ctl.c */

void emi_ctl_main(em_term arg);     /* the `ember_ctl` process */

/* ---------------------------------------------------------------- hooks.c */

struct emi_proc;
int emi_dist_spawn_request(struct emi_proc *self, emi_node *n, uint64_t req, const char *fn,
                           em_term arg, int flags, uint64_t ref);
void emi_dist_spawn_reply(emi_peer *pr, em_pid_t from, em_pid_t to, uint64_t req, em_pid_t child,
                          uint64_t flags, uint64_t ref, em_term error);
int emi_dist_send_named(struct emi_proc *self, emi_peer *pr, em_term name, em_term msg);

#endif
