/*
 * peer.c - the sending half of a connection: batching, fragments, back-pressure.
 *
 * A process sending to another node packs the item (msgpack) straight into the
 * peer's buffer under the peer's lock, on its own scheduler thread. The buffer
 * goes out as one ZeroMQ frame when the sender's scheduler switches away from it
 * or when the frame reaches EMI_FRAME_MAX, so a burst of sends costs one frame
 * and one encryption, and a lone reply leaves as soon as its sender waits.
 *
 * An item larger than EMI_FRAG_MAX (a big message) moves to a stream of its
 * sender's, which goes out in fragments of EMI_BULK_FRAG on a second connection,
 * the bulk lane, one fragment per stream in turn. Small items keep the main lane
 * to themselves, with its own socket buffers, so they never queue behind bulk
 * bytes; the reader takes the two lanes' frames in turn. A sender's items stay on
 * the bulk lane (its stream stays) until the peer says it has handled every bulk
 * frame sent (OP_ACK): its later small items cannot overtake its large one.
 *
 * What is queued here is bounded by the peer buffer size (em_dist_config's
 * peer_buffer), for each lane: a sender finding its lane full waits, as a
 * process, until the peer drains or goes down. Separate bounds keep a bulk
 * backlog from making the senders of small messages wait.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "core/rt.h"
#include "dist_int.h"

_Thread_local bool emi_dist_dirty;

#define DIRTY_MAX 32
static _Thread_local emi_peer *dirty_list[DIRTY_MAX];
static _Thread_local int dirty_len;

#define HDR_LEN 12   /* [0, u32 creation, u32 creation] in fixed-width formats */

typedef struct sitem {
    struct sitem *next;
    size_t len, off;
    unsigned char data[];
} sitem;

struct emi_stream {
    struct emi_stream *next;
    em_pid_t from;
    sitem *head, *tail;
};

static pthread_mutex_t peers_lock = PTHREAD_MUTEX_INITIALIZER;
static emi_peer *peers;

emi_peer *emi_peers_first(void)
{
    pthread_mutex_lock(&peers_lock);
    emi_peer *p = peers;
    pthread_mutex_unlock(&peers_lock);
    return p;
}

emi_peer *emi_peer_find(const char *name, size_t len)
{
    pthread_mutex_lock(&peers_lock);
    emi_peer *p = peers;
    while (p && !(p->len == len && memcmp(p->name, name, len) == 0))
        p = p->next;
    pthread_mutex_unlock(&peers_lock);
    return p;
}

emi_peer *emi_peer_get(const char *name, size_t len)
{
    if (len > EMI_NODE_NAME_MAX)
        return NULL;
    pthread_mutex_lock(&peers_lock);
    emi_peer *p = peers;
    while (p && !(p->len == len && memcmp(p->name, name, len) == 0))
        p = p->next;
    if (!p && (p = calloc(1, sizeof *p)) != NULL) {
        memcpy(p->name, name, len);
        p->len = (uint32_t)len;
        p->atom = em_atomn(name, len);
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->rel_lock, NULL);
        msgpack_sbuffer_init(&p->buf);
        msgpack_packer_init(&p->pk, &p->buf, msgpack_sbuffer_write);
        p->has_key = emi_trust_server_key(name, len, p->serverkey);
        p->next = peers;
        peers = p;
    }
    pthread_mutex_unlock(&peers_lock);
    return p;
}

static void stream_free(emi_stream *s)
{
    while (s->head) {
        sitem *n = s->head->next;
        free(s->head);
        s->head = n;
    }
    free(s);
}

void emi_peers_fini(void)
{
    /* The peers go: the caller's list of peers to flush must not outlive them
     * (a runtime started again on this thread would flush freed ones). */
    dirty_len = 0;
    emi_dist_dirty = false;
    pthread_mutex_lock(&peers_lock);
    emi_peer *p = peers;
    peers = NULL;
    pthread_mutex_unlock(&peers_lock);
    while (p) {
        emi_peer *n = p->next;
        msgpack_sbuffer_destroy(&p->buf);
        while (p->streams) {
            emi_stream *s = p->streams->next;
            stream_free(p->streams);
            p->streams = s;
        }
        emi_xrels_free(p);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->rel_lock);
        free(p);
        p = n;
    }
}

void emi_peer_queued_add(emi_peer *pr, size_t n, int sign)
{
    pr->queued = sign > 0 ? pr->queued + n : pr->queued - n;
    /* Relaxed: a statistic. */
    if (sign > 0)
        atomic_fetch_add_explicit(&emi_dist_g.queued, n, memory_order_relaxed);
    else
        atomic_fetch_sub_explicit(&emi_dist_g.queued, n, memory_order_relaxed);
}

static emi_stream *stream_of(emi_peer *pr, em_pid_t from)
{
    for (emi_stream *s = pr->streams; s; s = s->next)
        if (s->from == from)
            return s;
    return NULL;
}

/* Items are packed outside the peer's lock, into a buffer of the packing
 * thread's, so that packing a large message never holds up the small ones of
 * other senders; the commit then takes the lock only to append. */
static _Thread_local msgpack_sbuffer tls_buf;
static _Thread_local msgpack_packer tls_pk;
static _Thread_local bool tls_ready;

msgpack_packer *emi_pack_begin(void)
{
    if (tls_ready && tls_buf.alloc > 4 * EMI_FRAME_MAX) {
        /* The last item was large: do not keep its memory for small ones. */
        msgpack_sbuffer_destroy(&tls_buf);
        tls_ready = false;
    }
    if (!tls_ready) {
        msgpack_sbuffer_init(&tls_buf);
        msgpack_packer_init(&tls_pk, &tls_buf, msgpack_sbuffer_write);
        tls_ready = true;
    }
    tls_buf.size = 0;
    return &tls_pk;
}

void emi_pack_thread_fini(void)
{
    if (tls_ready)
        msgpack_sbuffer_destroy(&tls_buf);
    tls_ready = false;
}

/* Remember that this thread packed for pr: it flushes pr when its process is
 * off the core. Each thread keeps its own list (another thread's flush may come
 * first; flushing an empty buffer costs nothing). */
static void mark_dirty(emi_peer *pr)
{
    for (int i = 0; i < dirty_len; i++)
        if (dirty_list[i] == pr)
            return;
    if (dirty_len == DIRTY_MAX) {
        emi_peer_flush_locked(pr);   /* no room to remember it: send now */
        return;
    }
    dirty_list[dirty_len++] = pr;
    emi_dist_dirty = true;
}

static sitem *item_copy(const void *data, size_t len)
{
    sitem *it = malloc(sizeof *it + len);
    if (it) {
        memcpy(it->data, data, len);
        it->len = len;
        it->off = 0;
        it->next = NULL;
    }
    return it;
}

int emi_pack_commit(emi_peer *pr, em_pid_t from, uint32_t node, bool ok, bool wait)
{
    if (!ok)
        return EM_EBADTERM;
    const char *data = tls_buf.data;
    size_t len = tls_buf.size;
    /* A large item is copied out now, without the lock; so is any item that
     * must wait for room (the thread's buffer is another process's meanwhile). */
    sitem *it = len > EMI_FRAG_MAX ? item_copy(data, len) : NULL;
    if (len > EMI_FRAG_MAX && !it) {
        emi_dist_count(&emi_dist_g.dropped, 1);
        return EM_ENOMEM;
    }
    for (;;) {
        pthread_mutex_lock(&pr->lock);
        if ((node && pr->state == PEER_UP && pr->node != node) ||
            (pr->state == PEER_IDLE && ((!pr->endpoint[0] && !emi_discover_enabled()) || !pr->has_key))) {
            /* A pid of an earlier life, or a node we cannot reach. */
            pthread_mutex_unlock(&pr->lock);
            free(it);
            emi_dist_count(&emi_dist_g.dropped, 1);
            return EM_ENOPROC;
        }
        if (pr->state == PEER_IDLE) {
            pr->state = PEER_PENDING;
            pr->connect_ns = emi_dist_now_ns();
            emi_net_request_connect(pr);
        }
        bool bulk = len > EMI_FRAG_MAX || stream_of(pr, from);
        size_t q = bulk ? pr->queued_bulk : pr->queued - pr->queued_bulk;
        if (!wait || q == 0 || q < emi_dist_g.peer_buffer)
            break;
        pthread_mutex_unlock(&pr->lock);
        if (!it && !(it = item_copy(data, len))) {
            emi_dist_count(&emi_dist_g.dropped, 1);
            return EM_ENOMEM;
        }
        if (!emi_current() || !emi_peer_wait_room(pr, bulk)) {
            free(it);
            emi_dist_count(&emi_dist_g.dropped, 1);
            return EM_ENOPROC;
        }
    }
    /* Under the lock: onto the sender's stream if it has one (its order), or
     * if the item is large; else into the frame being built. */
    emi_stream *s = stream_of(pr, from);
    if (len > EMI_FRAG_MAX || s) {
        if (!it)
            it = item_copy(data, len);
        if (!s && it && (s = calloc(1, sizeof *s)) != NULL) {
            s->from = from;
            s->next = pr->streams;
            pr->streams = s;
        }
        if (!it || !s) {
            pthread_mutex_unlock(&pr->lock);
            free(it);
            emi_dist_count(&emi_dist_g.dropped, 1);
            return EM_ENOMEM;
        }
        if (s->tail)
            s->tail->next = it;
        else
            s->head = it;
        s->tail = it;
        pr->queued_bulk += len;
    } else {
        if (pr->buf.size == 0) {
            /* Room for the frame header, written when the frame goes out. */
            static const char zero[HDR_LEN];
            msgpack_sbuffer_write(&pr->buf, zero, HDR_LEN);
        }
        msgpack_sbuffer_write(&pr->buf, it ? (const char *)it->data : data, len);
        pr->buf_items++;
        free(it);
    }
    emi_peer_queued_add(pr, len, 1);
    emi_dist_count(&emi_dist_g.msgs_out, 1);
    if (pr->buf.size >= EMI_FRAME_MAX)
        emi_peer_flush_locked(pr);
    else
        mark_dirty(pr);
    pthread_mutex_unlock(&pr->lock);
    return 0;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void write_hdr(emi_peer *pr, unsigned char *h)
{
    h[0] = 0x93;   /* an array of 3 */
    h[1] = OP_HDR;
    h[2] = 0xce;   /* uint 32 */
    put_u32(h + 3, emi_dist_g.creation);
    h[7] = 0xce;
    put_u32(h + 8, pr->state == PEER_UP ? pr->creation : 0);
}

static bool send_frame_on(emi_peer *pr, void *sock, const void *data, size_t len)
{
    if (zmq_send(sock, data, len, ZMQ_DONTWAIT) < 0) {
        /* We never read from this socket, so ZeroMQ processes the commands that
         * tell it the pipe has drained only now and then: make it look now. */
        int ev = 0;
        size_t el = sizeof ev;
        if (zmq_errno() != EAGAIN || zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &el) != 0 ||
            !(ev & ZMQ_POLLOUT) || zmq_send(sock, data, len, ZMQ_DONTWAIT) < 0) {
            return false;
        }
    }
    emi_dist_count(&emi_dist_g.frames_out, 1);
    emi_dist_count(&emi_dist_g.bytes_out, len);
    pr->last_out_ns = emi_dist_now_ns();
    return true;
}

static bool send_frame(emi_peer *pr, const void *data, size_t len)
{
    return send_frame_on(pr, pr->sock, data, len);
}

static bool send_bulk(emi_peer *pr, const void *data, size_t len)
{
    if (!send_frame_on(pr, pr->bulk, data, len))
        return false;
    pr->bulk_sent++;
    return true;
}

/* One frame of stream s: its next fragment, or the small items at its head. */
static bool flush_stream(emi_peer *pr, emi_stream *s, msgpack_sbuffer *sb)
{
    sb->size = 0;
    unsigned char h[HDR_LEN];
    write_hdr(pr, h);
    msgpack_sbuffer_write(sb, (const char *)h, HDR_LEN);
    size_t took = 0;
    sitem *it = s->head;
    if (it->len > EMI_FRAG_MAX) {
        size_t n = it->len - it->off;
        if (n > EMI_BULK_FRAG)
            n = EMI_BULK_FRAG;
        msgpack_packer pk;
        msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, OP_FRAG);
        msgpack_pack_uint64(&pk, s->from);
        msgpack_pack_uint64(&pk, it->len);
        msgpack_pack_bin(&pk, n);
        msgpack_pack_bin_body(&pk, it->data + it->off, n);
        if (!send_bulk(pr, sb->data, sb->size))
            return false;
        it->off += n;
        if (it->off == it->len) {
            s->head = it->next;
            took = it->len;
            free(it);
        }
    } else {
        sitem *end = it;
        size_t bytes = 0;
        while (end && end->len <= EMI_FRAG_MAX && bytes + end->len <= EMI_FRAME_MAX) {
            msgpack_sbuffer_write(sb, (const char *)end->data, end->len);
            bytes += end->len;
            end = end->next;
        }
        if (!send_bulk(pr, sb->data, sb->size))
            return false;
        while (s->head != end) {
            sitem *n = s->head->next;
            free(s->head);
            s->head = n;
        }
        took = bytes;
    }
    if (!s->head)
        s->tail = NULL;
    if (took) {
        emi_peer_queued_add(pr, took, -1);
        pr->queued_bulk -= took;
    }
    return true;
}

bool emi_peer_flush_locked(emi_peer *pr)
{
    if (!pr->sock || pr->close_req)
        return true;   /* connecting: the dist thread flushes once the socket exists */
    if (pr->buf_items) {
        write_hdr(pr, (unsigned char *)pr->buf.data);
        if (!send_frame(pr, pr->buf.data, pr->buf.size))
            return false;
        emi_peer_queued_add(pr, pr->buf.size - HDR_LEN, -1);
        pr->buf.size = 0;
        pr->buf_items = 0;
    }
    if (pr->streams && pr->bulk && pr->lane_ok) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        bool ok = true, more = true;
        /* One frame per stream per round, round after round, until ZeroMQ is
         * full or the streams are empty: senders share the lane fairly. */
        while (ok && more) {
            more = false;
            for (emi_stream *s = pr->streams; s; s = s->next) {
                if (!s->head)
                    continue;
                if (pr->bulk_sent - pr->bulk_acked >= EMI_BULK_WINDOW) {
                    ok = false;   /* the peer has enough in hand: wait for its ACKs */
                    break;
                }
                if (!flush_stream(pr, s, &sb)) {
                    ok = false;
                    break;
                }
                more |= s->head != NULL;
            }
        }
        msgpack_sbuffer_destroy(&sb);
        emi_peer_streams_trim_locked(pr);
        return ok;
    }
    return true;
}

void emi_peer_streams_trim_locked(emi_peer *pr)
{
    /* An empty stream goes once the peer has handled every bulk frame: then
     * nothing of its sender's is left on the lane to be overtaken. */
    if (pr->bulk_acked < pr->bulk_sent)
        return;
    for (emi_stream **pp = &pr->streams; *pp;) {
        emi_stream *s = *pp;
        if (!s->head) {
            *pp = s->next;
            free(s);
        } else {
            pp = &s->next;
        }
    }
}

void emi_peer_drop_locked(emi_peer *pr)
{
    size_t items = pr->buf_items;
    pr->buf.size = 0;
    pr->buf_items = 0;
    while (pr->streams) {
        emi_stream *s = pr->streams;
        pr->streams = s->next;
        for (sitem *it = s->head; it; it = it->next)
            items++;
        stream_free(s);
    }
    if (items)
        emi_dist_count(&emi_dist_g.dropped, items);
    emi_peer_queued_add(pr, pr->queued, -1);
    pr->queued_bulk = 0;
}

void emi_flush_dirty(void)
{
    emi_dist_dirty = false;
    int n = dirty_len;
    dirty_len = 0;
    for (int i = 0; i < n; i++) {
        emi_peer *pr = dirty_list[i];
        pthread_mutex_lock(&pr->lock);
        if (!emi_peer_flush_locked(pr))
            emi_net_wake();   /* ZeroMQ is full: the dist thread retries */
        pthread_mutex_unlock(&pr->lock);
    }
}

void emi_peer_hello_locked(emi_peer *pr)
{
    /* The HELLO must be the first item the new socket carries: whatever was
     * buffered while connecting goes after it. */
    msgpack_sbuffer old = pr->buf;
    size_t items = pr->buf_items;
    msgpack_sbuffer_init(&pr->buf);
    msgpack_packer_init(&pr->pk, &pr->buf, msgpack_sbuffer_write);
    static const char zero[HDR_LEN];
    msgpack_sbuffer_write(&pr->buf, zero, HDR_LEN);
    msgpack_packer *pk = &pr->pk;
    emi_dist *d = &emi_dist_g;
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, OP_HELLO);
    msgpack_pack_str(pk, d->self_len);
    msgpack_pack_str_body(pk, d->self, d->self_len);
    msgpack_pack_uint32(pk, d->creation);
    if (d->cfg.hidden)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    size_t el = strlen(d->endpoint);
    msgpack_pack_str(pk, el);
    msgpack_pack_str_body(pk, d->endpoint, el);
    /* The visible nodes we are connected to, so a newcomer joins the mesh. */
    size_t n = 0;
    for (emi_peer *p = emi_peers_first(); p; p = p->next)
        if (p != pr && atomic_load_explicit(&p->up, memory_order_relaxed) && !p->hidden &&
            !d->cfg.hidden)
            n++;
    msgpack_pack_array(pk, n);
    size_t done = 0;
    for (emi_peer *p = emi_peers_first(); p && done < n; p = p->next) {
        if (p == pr || !atomic_load_explicit(&p->up, memory_order_relaxed) || p->hidden ||
            d->cfg.hidden)
            continue;
        size_t pel = strnlen(p->endpoint, sizeof p->endpoint);
        msgpack_pack_array(pk, 2);
        msgpack_pack_str(pk, p->len);
        msgpack_pack_str_body(pk, p->name, p->len);
        msgpack_pack_str(pk, pel);
        msgpack_pack_str_body(pk, p->endpoint, pel);
        done++;
    }
    while (done < n) {   /* a peer went down meanwhile: keep the array's count */
        msgpack_pack_array(pk, 2);
        msgpack_pack_str(pk, 0);
        msgpack_pack_str(pk, 0);
        done++;
    }
    pr->buf_items = 1;
    emi_peer_queued_add(pr, pr->buf.size - HDR_LEN, 1);
    if (old.size > HDR_LEN) {
        msgpack_sbuffer_write(&pr->buf, old.data + HDR_LEN, old.size - HDR_LEN);
        pr->buf_items += items;
    }
    msgpack_sbuffer_destroy(&old);
}

static size_t lane_queued(emi_peer *pr, bool bulk)
{
    return bulk ? pr->queued_bulk : pr->queued - pr->queued_bulk;
}

bool emi_peer_wait_room(emi_peer *pr, bool bulk)
{
    emi_dist_count(&emi_dist_g.sender_waits, 1);
    for (int i = 0;; i++) {
        pthread_mutex_lock(&pr->lock);
        bool down = pr->state == PEER_IDLE;
        bool room = lane_queued(pr, bulk) < emi_dist_g.peer_buffer;
        if (!down && !room)
            emi_peer_flush_locked(pr);
        room = lane_queued(pr, bulk) < emi_dist_g.peer_buffer;
        pthread_mutex_unlock(&pr->lock);
        if (down)
            return false;
        if (room)
            return true;
        if (i < 8)
            em_yield();
        else
            em_sleep(1);
    }
}
