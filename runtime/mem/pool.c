/*
 * pool.c - per-thread caches of small fixed-size objects (see pool.h).
 */
#include <stdint.h>
#include <stdlib.h>

#include "mem/pool.h"

#define CLASS_BYTES 64
#define CLASSES (EMI_POOL_MAX / CLASS_BYTES)
#define KEEP 2048                   /* objects cached per class per thread */

struct free_obj {
    struct free_obj *next;
};

struct pool {
    struct free_obj *head[CLASSES];
    uint32_t count[CLASSES];
};

static _Thread_local struct pool pool;

size_t emi_pool_size(size_t n)
{
    if (n == 0)
        n = 1;
    return n <= EMI_POOL_MAX ? (n + CLASS_BYTES - 1) & ~(size_t)(CLASS_BYTES - 1) : n;
}

void *emi_pool_alloc(size_t n)
{
    size_t sz = emi_pool_size(n);
    if (sz <= EMI_POOL_MAX) {
        size_t c = sz / CLASS_BYTES - 1;
        struct free_obj *o = pool.head[c];
        if (o) {
            pool.head[c] = o->next;
            pool.count[c]--;
            return o;
        }
        /* malloc's 16-byte alignment is all these objects need; aligned_alloc
         * costs more than the object (it splits and frees the slack). */
        return malloc(sz);
    }
    return malloc(sz);
}

void emi_pool_free(void *p, size_t n)
{
    if (!p)
        return;
    size_t sz = emi_pool_size(n);
    if (sz <= EMI_POOL_MAX) {
        size_t c = sz / CLASS_BYTES - 1;
        if (pool.count[c] < KEEP) {
            struct free_obj *o = p;
            o->next = pool.head[c];
            pool.head[c] = o;
            pool.count[c]++;
            return;
        }
    }
    free(p);
}

void emi_pool_thread_fini(void)
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
