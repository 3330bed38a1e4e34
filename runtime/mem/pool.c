/*
 * pool.c - per-thread caches of small fixed-size objects (see pool.h).
 *
 * Objects often die on another thread than the one that made them: a message is
 * built by its sender and freed by its receiver, a DOWN by the dying process's
 * scheduler and freed by the monitoring process's. So a thread whose cache is
 * full hands half of it, as one batch, to a central depot per size class, and a
 * thread whose cache is empty takes a batch back before it makes new objects:
 * objects flow between threads a batch per mutex operation.
 *
 * New objects come from carriers: 2 MiB regions aligned to their size, asked for
 * as huge pages and made resident a step of 256 KiB at a time by one madvise call,
 * not by a page fault per 4 KiB page. A fault costs about 0.25 us on bare metal but
 * 10 us on some virtual machines (docs/performance.md), where a million spawns
 * spent 1.25 s in faults alone with malloc's page-at-a-time growth. A thread takes
 * a carrier's 16 KiB runs in turn, each for one size class, and cuts a whole run
 * into objects at once. Runs of one class hold objects that live alike (process
 * structs, message blocks), so when an idle node drains the depot
 * (emi_pool_depot_trim) a run whose objects are all free goes back to the system,
 * and a carrier whose runs all are is unmapped. Under the sanitizers and valgrind,
 * objects come from malloc instead, so that those tools see every object's bounds
 * and leaks.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23      /* Linux 5.14; older kernels say EINVAL and fault */
#endif

#include "core/sanitize.h"
#include "mem/pool.h"

#define CLASS_BYTES EMI_POOL_CLASS
#define CLASSES (EMI_POOL_MAX / CLASS_BYTES)
#define KEEP 2048                   /* objects cached per class per thread */
#define BATCH (KEEP / 2)            /* objects moved to or from the depot at once */
#define DEPOT_BYTES (64u << 20)     /* malloc backing: bytes kept per class in the depot;
                                       beyond, free(). An idle node gives it all back
                                       (emi_pool_depot_trim). Carriers keep everything
                                       until then. */
#define DEPOT_MAX(c) (DEPOT_BYTES / (BATCH * ((c) + 1) * CLASS_BYTES))   /* in batches */

#define CARRIER_BYTES ((size_t)2 << 20)
#define POPULATE_STEP ((size_t)256 << 10)

struct free_obj {
    struct free_obj *next;
    struct free_obj *next_batch;    /* depot only: the first object of a batch links them */
    uint32_t n;                     /* depot only, in the first object: the batch's size */
};

#define RUN_BYTES ((size_t)16 << 10)
#define RUNS (CARRIER_BYTES / RUN_BYTES)              /* 128; run 0 holds the head */
#define GONE UINT16_MAX                               /* drain: the run goes back */

/* The head of a carrier, in run 0. */
struct carrier {
    struct carrier *next;           /* every carrier, under carriers_lock */
    uint16_t *scratch;              /* a drain's count of free objects per run */
    uint32_t runs_taken;            /* runs handed out, run 0 included; final once retired */
    atomic_bool retired;            /* its thread takes no more runs from it */
    bool small_pages;               /* huge pages declined: runs have gone back */
    bool whole;                     /* a drain found every run free */
    uint8_t run_class[RUNS];        /* the size class of each run handed out */
    uint64_t released[RUNS / 64];   /* runs given back: no object lies there */
};

static pthread_mutex_t carriers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct carrier *carriers;
static pthread_mutex_t drain_lock = PTHREAD_MUTEX_INITIALIZER;
static bool use_carriers;           /* set once (depot_once), read-only after */

/* The carrier this thread carves from. */
static _Thread_local struct arena {
    struct carrier *cur;
    unsigned char *populated;       /* resident up to here */
} arena;

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
#ifndef EMI_SANITIZED
    use_carriers = !RUNNING_ON_VALGRIND;
#endif
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
        pool.count[c] = o->n;
    }
    return o;
}

static struct carrier *carrier_of(const void *p)
{
    return (struct carrier *)((uintptr_t)p & ~(uintptr_t)(CARRIER_BYTES - 1));
}

/* This thread takes no more runs from its carrier: runs_taken is final. */
static void retire(void)
{
    if (!arena.cur)
        return;
    /* Release: a drain that sees retired (acquire) reads the final runs_taken. */
    atomic_store_explicit(&arena.cur->retired, true, memory_order_release);
    arena.cur = NULL;
    arena.populated = NULL;
}

/* Map a carrier aligned to its size: map twice the size and cut the ends off. */
static bool new_carrier(void)
{
    unsigned char *m = mmap(NULL, 2 * CARRIER_BYTES, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return false;
    unsigned char *a = (unsigned char *)(((uintptr_t)m + CARRIER_BYTES - 1) & ~(uintptr_t)(CARRIER_BYTES - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + CARRIER_BYTES < m + 2 * CARRIER_BYTES)
        munmap(a + CARRIER_BYTES, (size_t)(m + 2 * CARRIER_BYTES - (a + CARRIER_BYTES)));
    /* A huge page where the kernel has one: one fault, or one populate call,
     * per carrier instead of 512, and fewer TLB misses among a million
     * processes' structs. Only a hint; it may fail. */
    (void)madvise(a, CARRIER_BYTES, MADV_HUGEPAGE);
    retire();
    struct carrier *k = (struct carrier *)a;
    k->scratch = NULL;
    k->runs_taken = 1;
    atomic_init(&k->retired, false);
    k->small_pages = k->whole = false;
    memset(k->released, 0, sizeof k->released);
    pthread_mutex_lock(&carriers_lock);
    k->next = carriers;
    carriers = k;
    pthread_mutex_unlock(&carriers_lock);
    arena.cur = k;
    arena.populated = a + RUN_BYTES;    /* the head's run: touched, so resident */
    return true;
}

static uint32_t objs_per_run(size_t c) { return (uint32_t)(RUN_BYTES / ((c + 1) * CLASS_BYTES)); }

/* The empty class c cache of this thread gets a new run: all its objects but the
 * first, which is returned. */
static void *carve(size_t c)
{
    if ((!arena.cur || arena.cur->runs_taken == RUNS) && !new_carrier())
        return NULL;
    struct carrier *k = arena.cur;
    uint32_t r = k->runs_taken++;
    k->run_class[r] = (uint8_t)c;
    unsigned char *run = (unsigned char *)k + r * RUN_BYTES;
    if (run + RUN_BYTES > arena.populated) {
        /* One call makes the next step resident; if the kernel cannot, the
         * pages fault in one by one as before. */
        size_t step = POPULATE_STEP;
        unsigned char *end = (unsigned char *)k + CARRIER_BYTES;
        if (step > (size_t)(end - arena.populated))
            step = (size_t)(end - arena.populated);
        (void)madvise(arena.populated, step, MADV_POPULATE_WRITE);
        arena.populated += step;
    }
    size_t sz = (c + 1) * CLASS_BYTES;
    uint32_t n = objs_per_run(c);
    for (uint32_t i = n - 1; i >= 1; i--) {
        struct free_obj *o = (struct free_obj *)(run + i * sz);
        o->next = pool.head[c];
        pool.head[c] = o;
    }
    pool.count[c] += n - 1;
    return run;
}

/* The cache of the class is empty: a batch from the depot, else a new object. */
__attribute__((noinline)) static void *alloc_slow(size_t sz, size_t c)
{
    pthread_once(&depot_once, depot_init);
    /* Relaxed peek: a stale count only costs one lock or one malloc. */
    struct free_obj *o = atomic_load_explicit(&depot[c].n, memory_order_relaxed) ? from_depot(c) : NULL;
    if (o) {
        pool.head[c] = o->next;
        pool.count[c]--;
        return o;
    }
    if (use_carriers)
        return carve(c);
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

/* Under the depot's lock: the list of n class c objects from first becomes its
 * newest batch. */
static void push_locked(size_t c, struct free_obj *first, uint32_t n)
{
    first->n = n;
    first->next_batch = depot[c].batches;
    depot[c].batches = first;
    /* Relaxed: the lock orders the list; the count is also a hint to peekers. */
    atomic_store_explicit(&depot[c].n, atomic_load_explicit(&depot[c].n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
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
    bool room = use_carriers || n < DEPOT_MAX(c);
    if (room) {
        pool.head[c] = last->next;
        last->next = NULL;
        push_locked(c, first, BATCH);
    }
    pthread_mutex_unlock(&depot[c].lock);
    if (room)
        pool.count[c] -= BATCH;
}

/* The cache of the class is full: hand a batch to the depot, else free(). */
__attribute__((noinline)) static void free_slow(void *p, size_t c)
{
    /* Relaxed peek at the depot's size: a full depot means free() below,
     * without walking a batch for nothing. Carriers' objects always go there. */
    if (use_carriers || atomic_load_explicit(&depot[c].n, memory_order_relaxed) < DEPOT_MAX(c))
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

/* Put a list of n class c objects into the depot as one batch. */
static void depot_put(size_t c, struct free_obj *first, uint32_t n)
{
    pthread_mutex_lock(&depot[c].lock);
    push_locked(c, first, n);
    pthread_mutex_unlock(&depot[c].lock);
}

void emi_pool_thread_trim(void)
{
    pthread_once(&depot_once, depot_init);
    for (size_t c = 0; c < CLASSES; c++) {
        if (use_carriers) {
            /* A carrier's object is never free()d: it goes to the depot, where
             * a drain can count its carrier free. */
            if (pool.head[c])
                depot_put(c, pool.head[c], pool.count[c]);
            pool.head[c] = NULL;
        }
        while (pool.head[c]) {
            struct free_obj *o = pool.head[c];
            pool.head[c] = o->next;
            free(o);
        }
        pool.count[c] = 0;
    }
    if (use_carriers)
        retire();
}

/* Take every batch out of the depot: the lists of free objects per class. */
static bool depot_take_all(struct free_obj *all[CLASSES])
{
    bool any = false;
    for (size_t c = 0; c < CLASSES; c++) {
        all[c] = NULL;
        if (!atomic_load_explicit(&depot[c].n, memory_order_relaxed))
            continue;
        pthread_mutex_lock(&depot[c].lock);
        all[c] = depot[c].batches;
        depot[c].batches = NULL;
        atomic_store_explicit(&depot[c].n, 0, memory_order_relaxed);
        pthread_mutex_unlock(&depot[c].lock);
        any |= all[c] != NULL;
    }
    return any;
}

static size_t run_of(const void *p) { return (size_t)((uintptr_t)p & (CARRIER_BYTES - 1)) / RUN_BYTES; }

static bool released(const struct carrier *k, size_t r) { return k->released[r / 64] >> (r % 64) & 1; }

/* Which runs of a retired carrier go back: those whose objects are all free in
 * the depot, and those never handed out. Marks them GONE in its scratch and gives
 * back each stretch of them at once; a carrier with every run free is marked
 * whole instead, to be unmapped. */
static void carrier_release(struct carrier *k)
{
    uint16_t *nfree = k->scratch;
    k->whole = true;
    for (size_t r = 1; r < RUNS; r++) {
        bool free_run = r >= k->runs_taken || released(k, r) || nfree[r] == objs_per_run(k->run_class[r]);
        nfree[r] = free_run ? GONE : 0;
        k->whole &= free_run;
    }
    if (k->whole)
        return;
    for (size_t r = 1; r < RUNS;) {
        if (nfree[r] != GONE || released(k, r)) {
            r++;
            continue;
        }
        /* Decline huge pages first: the kernel's collapser would otherwise fill
         * the holes again to make one. */
        if (!k->small_pages) {
            (void)madvise(k, CARRIER_BYTES, MADV_NOHUGEPAGE);
            k->small_pages = true;
        }
        size_t end = r;
        while (end < RUNS && nfree[end] == GONE && !released(k, end)) {
            k->released[end / 64] |= (uint64_t)1 << (end % 64);
            end++;
        }
        (void)madvise((unsigned char *)k + r * RUN_BYTES, (end - r) * RUN_BYTES, MADV_DONTNEED);
        r = end;
    }
}

/* Give memory back from retired carriers (see the top of the file): count the
 * free objects of each run, give back the runs with all theirs free, and put
 * the other objects back in the depot. What other threads hold (their caches,
 * live objects) is not counted free, so its runs stay. A carrier some thread
 * still takes runs from is left alone. */
static void carriers_drain(void)
{
    struct free_obj *all[CLASSES];
    pthread_mutex_lock(&drain_lock);
    depot_take_all(all);
    pthread_mutex_lock(&carriers_lock);
    for (struct carrier *k = carriers; k; k = k->next)
        /* Acquire pairs with the release in retire: runs_taken is final. A
         * carrier without scratch (no memory for it) is kept whole. */
        k->scratch = atomic_load_explicit(&k->retired, memory_order_acquire)
                         ? calloc(RUNS, sizeof(uint16_t))
                         : NULL;
    for (size_t c = 0; c < CLASSES; c++)
        for (struct free_obj *b = all[c]; b; b = b->next_batch)
            for (struct free_obj *o = b; o; o = o->next) {
                struct carrier *k = carrier_of(o);
                if (k->scratch)
                    k->scratch[run_of(o)]++;
            }
    for (struct carrier *k = carriers; k; k = k->next)
        if (k->scratch)
            carrier_release(k);
    /* Back to the depot: every free object whose memory is still there. */
    for (size_t c = 0; c < CLASSES; c++) {
        struct free_obj *b = all[c];
        struct free_obj *first = NULL, *last = NULL;
        uint32_t n = 0;
        while (b) {
            struct free_obj *nb = b->next_batch, *o = b;
            while (o) {
                struct free_obj *next = o->next;
                struct carrier *k = carrier_of(o);
                if (!k->scratch || (!k->whole && k->scratch[run_of(o)] != GONE)) {
                    o->next = NULL;
                    if (last)
                        last->next = o;
                    else
                        first = o;
                    last = o;
                    if (++n == BATCH) {
                        depot_put(c, first, n);
                        first = last = NULL;
                        n = 0;
                    }
                }
                o = next;
            }
            b = nb;
        }
        if (first)
            depot_put(c, first, n);
    }
    struct carrier **pk = &carriers;
    while (*pk) {
        struct carrier *k = *pk;
        bool whole = k->scratch && k->whole;
        free(k->scratch);
        k->scratch = NULL;
        if (whole) {
            *pk = k->next;
            munmap(k, CARRIER_BYTES);
        } else {
            pk = &k->next;
        }
    }
    pthread_mutex_unlock(&carriers_lock);
    pthread_mutex_unlock(&drain_lock);
}

/* Free every batch of the depot and give free pages back to the system. */
static void depot_drain(bool trim)
{
    pthread_once(&depot_once, depot_init);
    if (use_carriers) {
        carriers_drain();
        if (trim)
            malloc_trim(0);
        return;
    }
    struct free_obj *all[CLASSES];
    bool any = depot_take_all(all);
    for (size_t c = 0; c < CLASSES; c++) {
        struct free_obj *b = all[c];
        while (b) {
            struct free_obj *nb = b->next_batch, *o = b;
            while (o) {
                struct free_obj *n = o->next;
                free(o);
                o = n;
            }
            b = nb;
        }
    }
    if (any && trim)
        malloc_trim(0);
}

size_t emi_pool_bytes_held(void)
{
    size_t runs = 0;
    pthread_mutex_lock(&carriers_lock);
    for (struct carrier *k = carriers; k; k = k->next) {
        runs++;   /* the head's run */
        for (size_t r = 1; r < k->runs_taken; r++)
            runs += !released(k, r);
    }
    pthread_mutex_unlock(&carriers_lock);
    return runs * RUN_BYTES;
}

void emi_pool_depot_fini(void) { depot_drain(false); }

void emi_pool_depot_trim(void) { depot_drain(true); }
