/*
 * pool.c - per-thread caches of small fixed-size objects (see pool.h).
 *
 * Objects often die on another thread than the one that made them: a message is
 * built by its sender and freed by its receiver, a DOWN by the dying process's
 * scheduler and freed by the monitoring process's. So a thread whose cache is
 * full hands half of it, as one batch, to a central depot per size class, and a
 * thread whose cache is empty takes a batch back before it calls malloc: objects
 * flow between threads a batch per mutex operation, and malloc (whose arenas
 * lock when freeing another thread's chunks) is left for growth.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <malloc.h>
#include <stdlib.h>

#include "mem/pool.h"

#define CLASS_BYTES EMI_POOL_CLASS
#define CLASSES (EMI_POOL_MAX / CLASS_BYTES)
#define KEEP 2048                   /* objects cached per class per thread */
#define BATCH (KEEP / 2)            /* objects moved to or from the depot at once */
#define DEPOT_BYTES (64u << 20)     /* bytes kept per class in the depot; beyond, free().
                                       An idle node gives it all back (emi_pool_depot_trim). */
#define DEPOT_MAX(c) (DEPOT_BYTES / (BATCH * ((c) + 1) * CLASS_BYTES))   /* in batches */

struct free_obj {
    struct free_obj *next;
    struct free_obj *next_batch;    /* depot only: the first object of a batch links them */
};

static struct depot {
    pthread_mutex_t lock;
    struct free_obj *batches;
    atomic_uint n;                  /* batches; written under the lock, peeked without */
} depot[CLASSES];

static pthread_once_t depot_once = PTHREAD_ONCE_INIT;

static void depot_init(void)
{
    for (size_t c = 0; c < CLASSES; c++)
        pthread_mutex_init(&depot[c].lock, NULL);
}

struct pool {
    struct free_obj *head[CLASSES];
    uint32_t count[CLASSES];
};

static _Thread_local struct pool pool;

/* Refill this thread's empty class c cache with a batch from the depot. Kept out
 * of line so the allocation fast path stays a few instructions. */
__attribute__((noinline, cold)) static struct free_obj *from_depot(size_t c)
{
    pthread_once(&depot_once, depot_init);
    pthread_mutex_lock(&depot[c].lock);
    struct free_obj *o = depot[c].batches;
    if (o) {
        depot[c].batches = o->next_batch;
        atomic_store_explicit(&depot[c].n, atomic_load_explicit(&depot[c].n, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    pthread_mutex_unlock(&depot[c].lock);
    if (o) {
        pool.head[c] = o;
        pool.count[c] = BATCH;
    }
    return o;
}

/* The cache of the class is empty: a batch from the depot, else malloc. */
__attribute__((noinline)) static void *alloc_slow(size_t sz, size_t c)
{
    /* Relaxed peek: a stale count only costs one lock or one malloc. */
    struct free_obj *o = atomic_load_explicit(&depot[c].n, memory_order_relaxed) ? from_depot(c) : NULL;
    if (o) {
        pool.head[c] = o->next;
        pool.count[c]--;
        return o;
    }
    /* malloc's 16-byte alignment is all these objects need; aligned_alloc costs
     * more than the object (it splits and frees the slack). */
    return malloc(sz);
}

void *emi_pool_alloc(size_t n)
{
    size_t sz = emi_pool_size(n);
    if (sz > EMI_POOL_MAX)
        return malloc(sz);
    size_t c = sz / CLASS_BYTES - 1;
    struct free_obj *o = pool.head[c];
    if (!o)
        return alloc_slow(sz, c);
    pool.head[c] = o->next;
    pool.count[c]--;
    return o;
}

/* Move a batch of this thread's class c objects to the depot, if it has room. */
__attribute__((noinline, cold)) static void to_depot(size_t c)
{
    pthread_once(&depot_once, depot_init);
    struct free_obj *first = pool.head[c], *last = first;
    for (int i = 1; i < BATCH; i++)
        last = last->next;
    pthread_mutex_lock(&depot[c].lock);
    unsigned n = atomic_load_explicit(&depot[c].n, memory_order_relaxed);
    bool room = n < DEPOT_MAX(c);
    if (room) {
        pool.head[c] = last->next;
        last->next = NULL;
        first->next_batch = depot[c].batches;
        depot[c].batches = first;
        /* Relaxed: the lock orders the list; the count is also a hint to peekers. */
        atomic_store_explicit(&depot[c].n, n + 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&depot[c].lock);
    if (room)
        pool.count[c] -= BATCH;
}

/* The cache of the class is full: hand a batch to the depot, else free(). */
__attribute__((noinline)) static void free_slow(void *p, size_t c)
{
    /* Relaxed peek at the depot's size: a full depot means free() below,
     * without walking a batch for nothing. */
    if (atomic_load_explicit(&depot[c].n, memory_order_relaxed) < DEPOT_MAX(c))
        to_depot(c);
    if (pool.count[c] < KEEP) {
        struct free_obj *o = p;
        o->next = pool.head[c];
        pool.head[c] = o;
        pool.count[c]++;
        return;
    }
    free(p);
}

void emi_pool_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t sz = emi_pool_size(n);
    if (sz > EMI_POOL_MAX) {
        free(p);
        return;
    }
    size_t c = sz / CLASS_BYTES - 1;
    if (pool.count[c] == KEEP) {
        free_slow(p, c);
        return;
    }
    struct free_obj *o = p;
    o->next = pool.head[c];
    pool.head[c] = o;
    pool.count[c]++;
}

void emi_pool_thread_trim(void)
{
    for (size_t c = 0; c < CLASSES; c++) {
        while (pool.head[c]) {
            struct free_obj *o = pool.head[c];
            pool.head[c] = o->next;
            free(o);
        }
        pool.count[c] = 0;
    }
}

/* Free every batch of the depot and give free pages back to the system. */
static void depot_drain(bool trim)
{
    pthread_once(&depot_once, depot_init);
    bool any = false;
    for (size_t c = 0; c < CLASSES; c++) {
        if (!atomic_load_explicit(&depot[c].n, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&depot[c].lock);
        struct free_obj *b = depot[c].batches;
        depot[c].batches = NULL;
        atomic_store_explicit(&depot[c].n, 0, memory_order_relaxed);
        pthread_mutex_unlock(&depot[c].lock);
        while (b) {
            struct free_obj *nb = b->next_batch, *o = b;
            while (o) {
                struct free_obj *n = o->next;
                free(o);
                o = n;
            }
            b = nb;
            any = true;
        }
    }
    if (any && trim)
        malloc_trim(0);
}

void emi_pool_depot_fini(void) { depot_drain(false); }

void emi_pool_depot_trim(void) { depot_drain(true); }
