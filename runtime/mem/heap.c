/*
 * heap.c - per-process heaps and message blocks.
 *
 * Each process owns a list of blocks. Terms it builds are bump-allocated in arena
 * chunks; messages it receives join the list as whole blocks. Marks and releases
 * free everything newer than a mark, and exit frees the whole list, so memory is
 * reclaimed per process and never in a global pause. Small message blocks are
 * recycled through a per-thread cache because a send and the receive that frees
 * it usually run on the same scheduler thread.
 */
#include <stdlib.h>
#include <string.h>

#include "core/rt.h"
#include "mem/heap.h"
#include "mem/pool.h"

#define CHUNK_MIN 256u            /* first arena chunk: most processes build little */
#define CHUNK_MAX (64u * 1024u)   /* chunks double up to this size */

/* The payload a first chunk really gets (emi_block_new rounds up to the pool's
 * size class): blocks of exactly this capacity can serve as a spare first chunk. */
static inline uint32_t first_chunk_cap(void)
{
    return (uint32_t)(emi_pool_size(sizeof(emi_block) + CHUNK_MIN) - sizeof(emi_block));
}

static _Thread_local struct em_heap *thread_heap;

/* A first chunk kept from the last release on this scheduler thread: a process
 * that builds a message per loop and releases it would otherwise allocate and
 * free its first chunk every time. Per thread rather than per heap, so that a
 * process struct does not carry it. */
static _Thread_local emi_block *spare;

/* Blocks come from the per-thread pool: a send and the receive that frees the
 * block usually run on the same scheduler thread. */
emi_block *emi_block_new(size_t cap)
{
    if (cap > UINT32_MAX - sizeof(emi_block) - 64)
        return NULL;
    size_t real = emi_pool_size(sizeof(emi_block) + cap);
    emi_block *b = emi_pool_alloc(real);
    if (!b)
        return NULL;
    b->cap = (uint32_t)(real - sizeof(emi_block));
    b->next = NULL;
    b->term = EM_NONE;
    b->offheap = NULL;
    b->used = 0;
    b->dest = 0;
    b->sig = 0;
    return b;
}

void emi_block_free(emi_block *b)
{
    if (b->offheap)
        emi_offheap_release(b->offheap, NULL);
    emi_pool_free(b, sizeof(emi_block) + b->cap);
}

void emi_block_cache_fini(void)
{
    if (spare)
        emi_block_free(spare);
    spare = NULL;
    emi_pool_thread_trim();
}

emi_block *emi_small_block_slow(void) { return emi_block_new(EMI_SMALL_BYTES); }

void emi_small_cache_drain(emi_sched *s)
{
    while (s->blk_cache) {
        emi_block *b = s->blk_cache;
        s->blk_cache = b->next;
        emi_block_free(b);
    }
    s->blk_cache_n = 0;
}

emi_block *emi_block_for_term(em_term t, size_t max_bytes, int *err)
{
    /* A short tuple ({level, N}, a spawn's argument) in one pass, into a small
     * block; anything else, or one that does not fit, takes the copiers below. */
    if (emi_is_box(t) && emi_box_type(t) == BOX_ARRAY && emi_box_size(t) < EMI_SMALL_BYTES / 8) {
        emi_block *b = emi_small_block_slow();
        if (!b) {
            *err = EM_ENOMEM;
            return NULL;
        }
        size_t size = emi_small_tuple_put(t, (uint64_t *)b->data, max_bytes < b->cap ? max_bytes : b->cap);
        if (size) {
            b->term = (em_term)(uintptr_t)b->data;
            b->used = (uint32_t)size;
            return b;
        }
        emi_block_free(b);
    }
    int64_t size = 0;
    bool flat = false;
    if (emi_is_box(t)) {
        /* Most messages are one level deep: sized and copied in one pass. */
        size = emi_term_flat_size(t);
        flat = size > 0;
        if (!flat)
            size = emi_term_size(t);
        if (size < 0) {
            *err = (int)size;
            return NULL;
        }
        if ((uint64_t)size > max_bytes) {
            *err = EM_ETOOBIG;
            return NULL;
        }
    } else if (t == EM_NONE) {
        *err = EM_EINVAL;
        return NULL;
    }
    emi_block *b = emi_block_new((size_t)size);
    if (!b) {
        *err = EM_ENOMEM;
        return NULL;
    }
    b->term = !size ? t : flat ? emi_term_flat_copy(t, b->data) : emi_term_copy(t, b->data, &b->offheap);
    b->used = (uint32_t)size;
    return b;
}

emi_block *emi_block_for_array(size_t n, const em_term *items, size_t max_bytes, int *err)
{
    if (n > (1u << 24) || (n && !items)) {
        *err = n && !items ? EM_EINVAL : EM_ETOOBIG;
        return NULL;
    }
    /* Size: the array box, then each boxed child's deep copy after it. */
    int64_t size = (int64_t)(1 + n) * 8;
    for (size_t i = 0; i < n; i++) {
        em_term t = items[i];
        if (!emi_is_box(t)) {
            if (!emi_valid_immediate(t)) {
                *err = t == EM_NONE ? EM_EINVAL : EM_EBADTERM;
                return NULL;
            }
            continue;
        }
        int64_t c = emi_term_size(t);
        if (c < 0) {
            *err = (int)c;
            return NULL;
        }
        size += c;
    }
    if ((uint64_t)size > max_bytes) {
        *err = EM_ETOOBIG;
        return NULL;
    }
    emi_block *b = emi_block_new((size_t)size);
    if (!b) {
        *err = EM_ENOMEM;
        return NULL;
    }
    uint64_t *box = (uint64_t *)b->data;
    unsigned char *tail = b->data + (1 + n) * 8;
    box[0] = emi_header(BOX_ARRAY, n);
    for (size_t i = 0; i < n; i++) {
        if (!emi_is_box(items[i])) {
            box[1 + i] = items[i];
            continue;
        }
        int64_t c = emi_term_size(items[i]);
        box[1 + i] = emi_term_copy(items[i], tail, &b->offheap);
        tail += c;
    }
    b->term = (em_term)(uintptr_t)box;
    b->used = (uint32_t)size;
    return b;
}

void *emi_heap_alloc(struct em_heap *h, size_t bytes)
{
    if (!h)
        return NULL;
    bytes = (bytes + 7) & ~(size_t)7;
    emi_block *c = h->chunk;
    if (!c || c->cap - c->used < bytes) {
        size_t cap = c ? (size_t)c->cap * 2 : CHUNK_MIN;
        if (cap > CHUNK_MAX)
            cap = CHUNK_MAX;
        if (cap < bytes)
            cap = bytes;
        if (cap > UINT32_MAX)
            return NULL;
        emi_block *n;
        if (cap == CHUNK_MIN && spare) {
            n = spare;
            spare = NULL;
            n->used = 0;
            n->term = EM_NONE;
            n->sig = 0;
        } else if (!(n = emi_block_new(cap))) {
            return NULL;
        }
        n->next = h->head;
        h->head = n;
        h->chunk = n;
        emi_heap_bytes_add(h, emi_block_bytes(n), 1);
        c = n;
    }
    void *p = c->data + c->used;
    c->used += (uint32_t)bytes;
    return p;
}

void emi_heap_link_offheap(struct em_heap *h, emi_refbin_box *box)
{
    /* The box was just allocated in the current chunk, so it belongs to it. */
    box->next = h->chunk->offheap;
    h->chunk->offheap = box;
}


static void heap_free_until(struct em_heap *h, emi_block *stop, bool keep_spare)
{
    emi_block *b = h->head, *chunk = h->chunk;
    if (b == stop)
        return;   /* the common release: nothing arrived or was built since the mark */
    size_t freed = 0;
    do {
        emi_block *next = b->next;
        freed += emi_block_bytes(b);
        if (b == chunk)
            chunk = NULL;
        /* A process that builds a message per loop and releases it would allocate
         * and free its first chunk every time: keep one for the next build. */
        if (keep_spare && !spare && b->cap == first_chunk_cap() && !b->offheap)
            spare = b;
        else
            emi_block_free(b);
        b = next;
    } while (b && b != stop);
    h->head = b;
    h->chunk = chunk;
    emi_heap_bytes_add(h, freed, -1);
}

void emi_heap_fini(struct em_heap *h)
{
    heap_free_until(h, NULL, false);
    h->chunk = NULL;
    atomic_store_explicit(&h->bytes, 0, memory_order_relaxed);
}

em_mark emi_heap_mark(struct em_heap *h)
{
    em_mark m = {0};
    if (!h)
        return m;
    m.head = h->head;
    m.chunk = h->chunk;
    m.offheap = h->chunk ? h->chunk->offheap : NULL;
    m.used = h->chunk ? h->chunk->used : 0;
    return m;
}

/* The chunk current at the mark may have grown since; cut it back. */
static inline void cut_back(struct em_heap *h, em_mark m)
{
    emi_block *c = m.chunk;
    if (c) {
        if (c->offheap != m.offheap) {
            emi_offheap_release(c->offheap, m.offheap);
            c->offheap = m.offheap;
        }
        c->used = (uint32_t)m.used;
    }
    h->chunk = c;
}

void emi_heap_release(struct em_heap *h, em_mark m)
{
    if (!h)
        return;
    emi_block *b = h->head;
    if (b && b != m.head && b->next == m.head && b != h->chunk && !b->offheap && b->cap != first_chunk_cap()) {
        /* The loop of a receiving process: one message arrived since the mark. */
        h->head = m.head;
        emi_heap_bytes_add(h, emi_block_bytes(b), -1);
        emi_block_free(b);
    } else {
        /* Only scheduler threads keep a spare: they free it as they stop. */
        heap_free_until(h, m.head, emi_self_sched != NULL);
    }
    cut_back(h, m);
}

em_mark em_heap_mark(void)
{
    emi_proc *p = emi_current_at_entry();
    return emi_heap_mark(p ? &p->heap : emi_thread_heap());
}

void em_heap_release(em_mark m)
{
    emi_proc *p = emi_current_at_entry();
    if (!p) {
        emi_heap_release(emi_thread_heap(), m);
        return;
    }
    struct em_heap *h = &p->heap;
    emi_block *b = h->head;
    /* The loop of a receiving process: one small message arrived since the mark
     * (arena chunks are never that small), and its block goes back to the
     * scheduler's cache for the next send. */
    if (b && b != m.head && b->next == m.head && b->cap == EMI_SMALL_CAP) {
        h->head = m.head;
        emi_heap_bytes_add(h, emi_block_bytes(b), -1);
        emi_small_block_free(p->sched, b);
        cut_back(h, m);
        return;
    }
    emi_heap_release(h, m);
}

void *em_alloc(size_t bytes)
{
    struct em_heap *h = emi_heap_current();
    if (!h || bytes > UINT32_MAX - 16)
        return NULL;
    /* Over-allocate so the pointer can be 16-aligned inside an 8-aligned arena. */
    unsigned char *p = emi_heap_alloc(h, bytes + 8);
    if (!p)
        return NULL;
    return (void *)(((uintptr_t)p + 15) & ~(uintptr_t)15);
}

size_t em_heap_bytes(void)
{
    struct em_heap *h = emi_heap_current();
    return h ? atomic_load_explicit(&h->bytes, memory_order_relaxed) : 0;
}

em_heap *em_heap_new(void) { return calloc(1, sizeof(em_heap)); }

void em_heap_use(em_heap *h) { thread_heap = h; }

void em_heap_free(em_heap *h)
{
    if (!h)
        return;
    if (thread_heap == h)
        thread_heap = NULL;
    emi_heap_fini(h);
    free(h);
}

/* The heap of a thread that runs no process (proc/current.c asks). */
struct em_heap *emi_thread_heap(void) { return thread_heap; }
