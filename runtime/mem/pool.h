/*
 * pool.h - per-thread caches of small fixed-size objects.
 *
 * Process structs, saved stack images and heap chunks are allocated and freed
 * millions of times a second in spawn-heavy loads; a per-thread free list per size
 * class turns most of those into a pointer swap. Objects are 16-byte aligned.
 */
#ifndef EMBER_MEM_POOL_H
#define EMBER_MEM_POOL_H

#include <stdbool.h>
#include <stddef.h>

#define EMI_POOL_MAX 2048           /* larger objects go straight to malloc */
#define EMI_POOL_CLASS 64           /* size classes are multiples of this */

/* emi_pool_size: the size an allocation of n bytes really gets (use it as the
 * capacity, and pass it back to emi_pool_free). Inline: it is on every message's
 * path, and the allocator's own fast paths must stay out of line (pool.c). */
static inline size_t emi_pool_size(size_t n)
{
    if (n == 0)
        n = 1;
    return n <= EMI_POOL_MAX ? (n + EMI_POOL_CLASS - 1) & ~(size_t)(EMI_POOL_CLASS - 1) : n;
}
void *emi_pool_alloc(size_t n);
void emi_pool_free(void *p, size_t n);
/* emi_pool_thread_trim frees the calling thread's caches and lets go of its
 * carrier, as the thread ends. */
void emi_pool_thread_trim(void);
/* emi_pool_thread_flush hands the calling thread's caches to the depot but
 * keeps the carrier it cuts new objects from: what a scheduler does each time
 * it goes to sleep. */
void emi_pool_thread_flush(void);
/* emi_pool_depot_fini frees the objects threads handed to the central depot
 * (as the runtime stops, once no thread allocates any more). */
void emi_pool_depot_fini(void);
/* emi_pool_depot_trim frees the depot's objects and returns free pages to the
 * system: a burst of processes that has ended leaves no memory behind once the
 * node goes idle. Any thread; takes milliseconds. */
void emi_pool_depot_trim(void);
/* emi_pool_restock: called by a scheduler with nothing to run. If a thread
 * has been using up carriers, make one more resident ahead of it and return
 * true (it takes a few milliseconds on a cold guest); else return false at
 * once. Any thread. */
bool emi_pool_restock(void);
/* emi_pool_bytes_held: bytes of the carriers' runs handed out and not given back
 * (each run 16 KiB; a carrier's first run holds its head), whatever their
 * objects' state: what the pool keeps from the system, without the noise of
 * the resident set (huge pages, other allocators). 0 where objects come from
 * malloc (sanitizers, valgrind). Any thread; takes the carriers' lock. */
size_t emi_pool_bytes_held(void);

#endif
