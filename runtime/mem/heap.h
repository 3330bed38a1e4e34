/*
 * heap.h - per-process memory.
 *
 * A heap is a list of blocks, newest first: arena chunks that terms are bump-
 * allocated in, and message blocks that arrived in the mailbox and were received.
 * Nothing is shared with other processes except reference-counted binaries, so a
 * heap is touched only by the thread running its process: no locks. A mark records
 * the list head and the arena position; releasing to it frees every newer block.
 */
#ifndef EMBER_MEM_HEAP_H
#define EMBER_MEM_HEAP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"
#include "term/term_int.h"

/* A block: the unit of the heap list and of a message in flight. */
typedef struct emi_block {
    struct emi_block *next;     /* mailbox link while queued, heap link once received */
    em_term term;               /* the message (message blocks) */
    emi_refbin_box *offheap;    /* shared binaries boxed in this block */
    uint32_t cap;               /* payload bytes */
    uint32_t used;              /* payload bytes in use (arena chunks) */
    uint64_t dest;              /* pid the message was sent to: a recycled process drops strays */
    uint32_t sig;               /* 0 for a message, else an emi_sig (proc/signal.c) */
    uint32_t spare;
    _Alignas(16) unsigned char data[];
} emi_block;

struct em_heap {
    emi_block *head;            /* newest block */
    emi_block *chunk;           /* arena chunk being bump-allocated */
    atomic_size_t bytes;        /* bytes of all blocks in the list; written by the
                                   owner only, read by introspection */
};

/* emi_heap_alloc: 8-byte aligned memory in h, or NULL. */
void *emi_heap_alloc(struct em_heap *h, size_t bytes);
/* emi_heap_link_offheap records a shared binary box allocated in h. */
void emi_heap_link_offheap(struct em_heap *h, emi_refbin_box *box);
/* emi_heap_fini frees every block of h (h itself is not freed). */
void emi_heap_fini(struct em_heap *h);
/* emi_heap_mark / emi_heap_release: em_heap_mark and em_heap_release on h. */
em_mark emi_heap_mark(struct em_heap *h);
void emi_heap_release(struct em_heap *h, em_mark m);
/* emi_heap_current: the calling process's heap, else the thread's em_heap_use
 * heap, else NULL (proc/current.c: one call, since marks and releases are on
 * every loop of a receiving process). emi_thread_heap: the em_heap_use heap. */
struct em_heap *emi_heap_current(void);
struct em_heap *emi_thread_heap(void);

/* Message blocks. emi_block_new returns a block with cap payload bytes; small ones
 * come from a per-thread cache. emi_block_free returns it, dropping its shared
 * binaries. */
emi_block *emi_block_new(size_t cap);
void emi_block_free(emi_block *b);
/* emi_small_tuple_put: the usual message is a short tuple of immediates and
 * fixed-size boxes ({ping, Pid}, {reply, Ref, N}); this checks t is one and
 * copies it word by word into out (cap bytes), in one pass, which for a few
 * words costs less than the general copier's walk and calls to memcpy. It
 * returns the bytes used, or 0 when t is not such a tuple or does not fit (out
 * then holds a partial copy, to be thrown away). */
static inline size_t emi_small_tuple_put(em_term t, uint64_t *out, size_t cap)
{
    const uint64_t *box = emi_box(t);
    size_t n = (size_t)(box[0] >> 8), top = 1 + n, capw = cap / 8;
    if ((box[0] & 0xFF) != BOX_ARRAY || top > capw)
        return 0;
    out[0] = box[0];
    for (size_t i = 0; i < n; i++) {
        em_term c = box[1 + i];
        if (!emi_is_box(c)) {
            if (!emi_valid_immediate(c))
                return 0;
            out[1 + i] = c;
            continue;
        }
        unsigned ct = emi_box_type(c);
        size_t w = ct == BOX_REF ? 3 : ct == BOX_INT || ct == BOX_UINT || ct == BOX_FLOAT || ct == BOX_PID ? 2 : 0;
        if (!w || top + w > capw)
            return 0;
        const uint64_t *cb = emi_box(c);
        out[1 + i] = (em_term)(uintptr_t)(out + top);
        out[top] = cb[0];
        out[top + 1] = cb[1];
        if (w == 3)
            out[top + 2] = cb[2];
        top += w;
    }
    return top * 8;
}

/* emi_block_for_term copies t into a new block (b->term set), or sets *err. */
emi_block *emi_block_for_term(em_term t, size_t max_bytes, int *err);
/* emi_block_for_array builds the array of items straight into a new block (each
 * item deep-copied), or sets *err: em_send_array's message without a heap copy. */
emi_block *emi_block_for_array(size_t n, const em_term *items, size_t max_bytes, int *err);
/* emi_block_cache_fini frees the calling thread's cache. */
void emi_block_cache_fini(void);

/* emi_block_bytes: what block b takes, header included. */
static inline size_t emi_block_bytes(const emi_block *b) { return sizeof(emi_block) + b->cap; }

/* emi_heap_bytes_add counts n bytes into (sign > 0) or out of h. One writer, the
 * owner; relaxed, because readers only want a figure. */
static inline void emi_heap_bytes_add(struct em_heap *h, size_t n, int sign)
{
    size_t v = atomic_load_explicit(&h->bytes, memory_order_relaxed);
    atomic_store_explicit(&h->bytes, sign > 0 ? v + n : v - n, memory_order_relaxed);
}

/* emi_heap_adopt puts a received message block at the head of h's list
 * (inline: every receive does it). */
static inline void emi_heap_adopt(struct em_heap *h, emi_block *b)
{
    b->next = h->head;
    h->head = b;
    emi_heap_bytes_add(h, emi_block_bytes(b), 1);
}

#endif
