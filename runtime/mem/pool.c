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
    atomic_uint runs_taken;         /* runs handed out, run 0 included; final once
                                       retired (written by its thread only) */
    atomic_bool retired;            /* its thread takes no more runs from it */
    bool small_pages;               /* huge pages declined: runs have gone back */
    bool whole;                     /* a drain found every run free */
    bool drain_retired;             /* a drain's view of retired and runs_taken */
    uint32_t drain_taken;
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
static unsigned char *map_carrier(void)
{
    unsigned char *m = mmap(NULL, 2 * CARRIER_BYTES, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    unsigned char *a = (unsigned char *)(((uintptr_t)m + CARRIER_BYTES - 1) & ~(uintptr_t)(CARRIER_BYTES - 1));
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (a + CARRIER_BYTES < m + 2 * CARRIER_BYTES)
        munmap(a + CARRIER_BYTES, (size_t)(m + 2 * CARRIER_BYTES - (a + CARRIER_BYTES)));
    /* A huge page where the kernel has one: one fault, or one populate call,
     * per carrier instead of 512, and fewer TLB misses among a million
     * processes' structs. Only a hint; it may fail. */
    (void)madvise(a, CARRIER_BYTES, MADV_HUGEPAGE);
    return a;
}

/* The stock: carriers made resident ahead of need by schedulers that had
 * nothing to run (emi_pool_restock). In a burst of spawns one thread cuts a
 * new carrier every 11,000 process structs, and on this kind of guest making
 * its huge page resident takes 3-6 ms of that thread's time (the host maps the
 * memory as the kernel clears it), while the other core, which only runs the
 * new processes, sat idle for a quarter of the burst. The stock is asked for
 * only by a thread that has used up a whole carrier, so a small node never
 * keeps one, and an idle node's trim gives it back. */
#define STOCK_MAX 4
static struct {
    pthread_mutex_t lock;
    unsigned n;
    unsigned char *c[STOCK_MAX];
} stock = {.lock = PTHREAD_MUTEX_INITIALIZER};
static atomic_uint stock_n;         /* stock.n, for a peek without the lock */
static atomic_bool stock_wanted;    /* a thread used up a carrier since the stock was last full */

static unsigned char *stock_take(void)
{
    /* Relaxed peek: a stale count costs one lock or one carrier mapped here. */
    if (!atomic_load_explicit(&stock_n, memory_order_relaxed))
        return NULL;
    unsigned char *a = NULL;
    pthread_mutex_lock(&stock.lock);
    if (stock.n)
        a = stock.c[--stock.n];
    /* Relaxed: the lock orders the list; the count is a hint. */
    atomic_store_explicit(&stock_n, stock.n, memory_order_relaxed);
    pthread_mutex_unlock(&stock.lock);
    return a;
}

bool emi_pool_restock(void)
{
    /* Relaxed: a hint; a restock more or less only moves memory earlier.
     * Only a thread cutting carriers asks, so the sanitizers' and valgrind's
     * runs, which take objects from malloc, never get past this. */
    if (!atomic_load_explicit(&stock_wanted, memory_order_relaxed))
        return false;
    if (atomic_load_explicit(&stock_n, memory_order_relaxed) >= STOCK_MAX) {
        atomic_store_explicit(&stock_wanted, false, memory_order_relaxed);
        return false;
    }
    unsigned char *a = map_carrier();
    if (!a) {
        atomic_store_explicit(&stock_wanted, false, memory_order_relaxed);
        return false;
    }
    /* Resident now, on this thread's time: one call, where the huge page is
     * made and cleared. Refused (an old kernel), the pages fault in later. */
    (void)madvise(a, CARRIER_BYTES, MADV_POPULATE_WRITE);
    pthread_mutex_lock(&stock.lock);
    bool kept = stock.n < STOCK_MAX;
    if (kept)
        stock.c[stock.n++] = a;
    if (stock.n == STOCK_MAX)
        atomic_store_explicit(&stock_wanted, false, memory_order_relaxed);
    atomic_store_explicit(&stock_n, stock.n, memory_order_relaxed);
    pthread_mutex_unlock(&stock.lock);
    if (!kept)
        munmap(a, CARRIER_BYTES);
    return kept;
}

/* An idle node keeps no stock. */
static void stock_release(void)
{
    pthread_mutex_lock(&stock.lock);
    while (stock.n)
        munmap(stock.c[--stock.n], CARRIER_BYTES);
    atomic_store_explicit(&stock_n, 0, memory_order_relaxed);
    atomic_store_explicit(&stock_wanted, false, memory_order_relaxed);
    pthread_mutex_unlock(&stock.lock);
}

static bool new_carrier(void)
{
    /* Relaxed: only this thread writes runs_taken. */
    bool used_up = arena.cur && atomic_load_explicit(&arena.cur->runs_taken, memory_order_relaxed) == RUNS;
    unsigned char *a = stock_take();
    bool stocked = a != NULL;
    if (!a && !(a = map_carrier()))
        return false;
    if (used_up)
        /* Relaxed: a hint to idle schedulers (emi_pool_restock). */
        atomic_store_explicit(&stock_wanted, true, memory_order_relaxed);
    retire();
    struct carrier *k = (struct carrier *)a;
    k->scratch = NULL;
    atomic_init(&k->runs_taken, 1);
    atomic_init(&k->retired, false);
    k->small_pages = k->whole = false;
    memset(k->released, 0, sizeof k->released);
    pthread_mutex_lock(&carriers_lock);
    k->next = carriers;
    carriers = k;
    pthread_mutex_unlock(&carriers_lock);
    arena.cur = k;
    /* The head's run is touched, so resident; a stocked carrier is all. */
    arena.populated = a + (stocked ? CARRIER_BYTES : RUN_BYTES);
    return true;
}

static uint32_t objs_per_run(size_t c) { return (uint32_t)(RUN_BYTES / ((c + 1) * CLASS_BYTES)); }

/* The empty class c cache of this thread gets a new run: all its objects but the
 * first, which is returned. */
static void *carve(size_t c)
{
    /* Relaxed: only this thread writes runs_taken. */
    if ((!arena.cur || atomic_load_explicit(&arena.cur->runs_taken, memory_order_relaxed) == RUNS) &&
        !new_carrier())
        return NULL;
    struct carrier *k = arena.cur;
    uint32_t r = atomic_load_explicit(&k->runs_taken, memory_order_relaxed);
    k->run_class[r] = (uint8_t)c;
    /* Release: a drain that counts run r (acquire) reads its class. */
    atomic_store_explicit(&k->runs_taken, r + 1, memory_order_release);
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
    emi_pool_thread_flush();
    if (use_carriers)
        retire();
}

void emi_pool_thread_flush(void)
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

/* Which runs of a carrier go back: those handed out whose objects are all free
 * in the depot and, once it is retired, those never handed out. Marks them GONE
 * in its scratch and gives back each stretch of them at once; a retired
 * carrier with every run free is marked whole instead, to be unmapped. A
 * carrier its thread still takes runs from keeps the runs beyond those it had
 * taken when the drain looked (drain_taken): its thread may be cutting them up
 * now, and it never goes back to the runs below. */
static void carrier_release(struct carrier *k)
{
    uint16_t *nfree = k->scratch;
    bool whole = k->drain_retired;
    for (size_t r = 1; r < RUNS; r++) {
        bool free_run;
        if (r >= k->drain_taken)
            free_run = k->drain_retired;
        else
            free_run = released(k, r) || (nfree[r] != 0 && nfree[r] == objs_per_run(k->run_class[r]));
        nfree[r] = free_run ? GONE : 0;
        whole &= free_run;
    }
    k->whole = whole;
    if (whole)
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

/* Give memory back from the carriers (see the top of the file): count the free
 * objects of each run, give back the runs with all theirs free, and put the
 * other objects back in the depot. What other threads hold (their caches, live
 * objects) is not counted free, so its runs stay. A carrier some thread still
 * takes runs from gives back only runs it has finished with (carrier_release):
 * an idle scheduler keeps its carrier, since a scheduler that naps in a burst
 * and starts a new carrier on waking leaves most of a 2 MiB huge page, all
 * of it resident, unused (a million spawns took 306 carriers for 92 carriers'
 * worth of process structs, and twice the time on cold memory). */
static void carriers_drain(void)
{
    struct free_obj *all[CLASSES];
    pthread_mutex_lock(&drain_lock);
    depot_take_all(all);
    pthread_mutex_lock(&carriers_lock);
    for (struct carrier *k = carriers; k; k = k->next) {
        /* Acquire pairs with the release in retire: runs_taken is final. */
        k->drain_retired = atomic_load_explicit(&k->retired, memory_order_acquire);
        /* Acquire pairs with the release in carve: the classes of the runs
         * below are written. */
        k->drain_taken = atomic_load_explicit(&k->runs_taken, memory_order_acquire);
        /* A carrier without scratch (no memory for it) is kept whole. */
        k->scratch = calloc(RUNS, sizeof(uint16_t));
    }
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
        stock_release();
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
        /* Relaxed: a figure; the lock keeps the carrier mapped. */
        for (size_t r = 1; r < atomic_load_explicit(&k->runs_taken, memory_order_relaxed); r++)
            runs += !released(k, r);
    }
    pthread_mutex_unlock(&carriers_lock);
    return runs * RUN_BYTES;
}

void emi_pool_depot_fini(void) { depot_drain(false); }

void emi_pool_depot_trim(void) { depot_drain(true); }
