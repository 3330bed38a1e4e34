/*
 * nodes.c - the node table: which (name, creation) a pid's node bits stand for.
 *
 * Index 0 is this node. Every other index is one life of a remote node, handed
 * out the first time that life is seen (in a handshake or inside a message) and
 * never reused, so a pid of a node's earlier life keeps naming that dead life
 * and sends to it are dropped, as Erlang does with a stale creation. Entries are
 * published with release stores and never change their name or creation, so
 * readers (every remote send) do not lock; adding one takes a mutex.
 */
#include <stdlib.h>
#include <string.h>

#include "dist_int.h"

static _Atomic(emi_node *) table[EMI_MAX_NODES];
static atomic_uint count;                 /* indices handed out, self included */
static pthread_mutex_t add_lock = PTHREAD_MUTEX_INITIALIZER;

/* A small hash from (name, creation) to index, under add_lock. */
#define HASH_CAP 8192   /* a power of two; lookups fall back to a scan when full */
static uint32_t hash_idx[HASH_CAP];

static uint32_t hash_of(const char *name, size_t len, uint32_t creation)
{
    uint32_t h = 2166136261u ^ creation;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 16777619u;
    return h;
}

static emi_node *node_new(const char *name, size_t len, uint32_t creation, uint32_t idx)
{
    emi_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    memcpy(n->name, name, len);
    n->len = (uint32_t)len;
    n->creation = creation;
    n->idx = idx;
    n->atom = em_atomn(name, len);
    return n;
}

int emi_nodes_init(const char *self, uint32_t creation)
{
    size_t len = strlen(self);
    emi_node *n = node_new(self, len, creation, 0);
    if (!n)
        return EM_ENOMEM;
    memset(hash_idx, 0, sizeof hash_idx);
    /* Release: the entry's fields before the pointer. */
    atomic_store_explicit(&table[0], n, memory_order_release);
    atomic_store_explicit(&count, 1, memory_order_release);
    return 0;
}

void emi_nodes_fini(void)
{
    unsigned n = atomic_load_explicit(&count, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        free(atomic_load_explicit(&table[i], memory_order_relaxed));
        atomic_store_explicit(&table[i], NULL, memory_order_relaxed);
    }
    atomic_store_explicit(&count, 0, memory_order_release);
}

emi_node *emi_node_get(uint32_t idx)
{
    if (idx >= EMI_MAX_NODES)
        return NULL;
    /* Acquire pairs with the publishing store: the fields are set. */
    return atomic_load_explicit(&table[idx], memory_order_acquire);
}

static bool same(const emi_node *n, const char *name, size_t len, uint32_t creation)
{
    return n->len == len && n->creation == creation && memcmp(n->name, name, len) == 0;
}

int64_t emi_node_index(const char *name, size_t len, uint32_t creation)
{
    emi_node *self = emi_node_get(0);
    if (!self)
        return EM_ESTATE;
    if (same(self, name, len, creation))
        return 0;
    pthread_mutex_lock(&add_lock);
    uint32_t h = hash_of(name, len, creation);
    unsigned n = atomic_load_explicit(&count, memory_order_relaxed);
    for (uint32_t i = 0; i < HASH_CAP; i++) {
        uint32_t slot = (h + i) & (HASH_CAP - 1);
        uint32_t idx = hash_idx[slot];
        if (idx == 0)
            break;
        emi_node *e = atomic_load_explicit(&table[idx], memory_order_relaxed);
        if (same(e, name, len, creation)) {
            pthread_mutex_unlock(&add_lock);
            return idx;
        }
    }
    if (n >= HASH_CAP / 2) {
        /* Past the hash's comfortable load: a scan (a node with thousands of
         * peers' lives has other problems first). */
        for (unsigned i = 1; i < n; i++) {
            emi_node *e = atomic_load_explicit(&table[i], memory_order_relaxed);
            if (same(e, name, len, creation)) {
                pthread_mutex_unlock(&add_lock);
                return i;
            }
        }
    }
    if (n >= EMI_MAX_NODES) {
        pthread_mutex_unlock(&add_lock);
        return EM_ESYSLIMIT;
    }
    emi_peer *pr = emi_peer_get(name, len);
    emi_node *e = pr ? node_new(name, len, creation, n) : NULL;
    if (!e) {
        pthread_mutex_unlock(&add_lock);
        return EM_ENOMEM;
    }
    e->peer = pr;
    /* A life older than the one the peer is up with is dead from the start. */
    pthread_mutex_lock(&pr->lock);
    if (pr->state == PEER_UP && pr->creation != creation)
        atomic_store_explicit(&e->dead, 1, memory_order_relaxed);
    pthread_mutex_unlock(&pr->lock);
    if (n < HASH_CAP / 2)
        for (uint32_t i = 0; i < HASH_CAP; i++) {
            uint32_t slot = (h + i) & (HASH_CAP - 1);
            if (hash_idx[slot] == 0) {
                hash_idx[slot] = n;
                break;
            }
        }
    /* Release: the entry before the pointer, the pointer before the count. */
    atomic_store_explicit(&table[n], e, memory_order_release);
    atomic_store_explicit(&count, n + 1, memory_order_release);
    pthread_mutex_unlock(&add_lock);
    return n;
}

static bool codec_node_of(void *ctx, uint32_t idx, const char **name, size_t *len,
                          uint32_t *creation)
{
    (void)ctx;
    emi_node *n = emi_node_get(idx);
    if (!n)
        return false;
    *name = n->name;
    *len = n->len;
    *creation = n->creation;
    return true;
}

static int64_t codec_index_of(void *ctx, const char *name, size_t len, uint32_t creation)
{
    (void)ctx;
    return emi_node_index(name, len, creation);
}

const emi_codec_nodes emi_dist_codec_nodes = {codec_node_of, codec_index_of, NULL};
