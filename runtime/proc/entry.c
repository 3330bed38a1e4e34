/*
 * entry.c - the table of entry functions: every process's function and the name
 * introspection shows for it, kept once per distinct pair.
 *
 * A process stores a 32-bit index into this table where it stored two pointers,
 * 12 bytes less in a struct that a million waiting processes pay for in fresh
 * memory. A node spawns from few functions, so the table stays small; the pairs
 * are kept until the runtime stops (a pair's strings and code belong to the
 * program or to a loaded module, which outlives its processes).
 *
 * Indices are handed out under a lock, but reading a pair takes none: entries
 * live in chunks that never move, and an index reaches another thread only with
 * the process that holds it, published by the release store into the process
 * table. Each scheduler remembers the pairs it interned last, so a burst of
 * spawns of one function takes the lock once.
 */
#include <stdlib.h>

#include "core/rt.h"

#define CHUNK_BITS 10
#define CHUNK (1u << CHUNK_BITS)
#define CHUNKS 16384u              /* 16M distinct pairs at most */

struct pair {
    em_proc_fn fn;
    const char *name;
};

static _Atomic(struct pair *) chunks[CHUNKS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t count;             /* pairs, index 0 unused (under lock) */
static uint32_t *index_of;         /* open addressing: pair indices by hash (under lock) */
static uint32_t index_cap;

static uint32_t hash(em_proc_fn fn, const char *name)
{
    uint64_t h = ((uint64_t)(uintptr_t)fn ^ ((uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15ull));
    h *= 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(h >> 32);
}

static struct pair *pair_at(uint32_t id)
{
    /* Relaxed: the chunk pointer reached us with the process (see above). */
    return &atomic_load_explicit(&chunks[id >> CHUNK_BITS], memory_order_relaxed)[id & (CHUNK - 1)];
}

/* Put id in the first free slot of tab (cap slots) from its hash h on. */
static void index_put(uint32_t *tab, uint32_t cap, uint32_t h, uint32_t id)
{
    uint32_t j = h & (cap - 1);
    while (tab[j])
        j = (j + 1) & (cap - 1);
    tab[j] = id;
}

/* Double the index (under lock); false when memory runs out. */
static bool grow_index(void)
{
    uint32_t cap = index_cap ? index_cap * 2 : 64;
    uint32_t *n = calloc(cap, sizeof *n);
    if (!n)
        return false;
    for (uint32_t i = 0; i < index_cap; i++) {
        uint32_t id = index_of[i];
        if (!id)
            continue;
        struct pair *e = pair_at(id);
        index_put(n, cap, hash(e->fn, e->name), id);
    }
    free(index_of);
    index_of = n;
    index_cap = cap;
    return true;
}

static int intern_locked(em_proc_fn fn, const char *name, uint32_t *out)
{
    uint32_t h = hash(fn, name);
    for (uint32_t j = index_cap ? h & (index_cap - 1) : 0; index_cap; j = (j + 1) & (index_cap - 1)) {
        uint32_t id = index_of[j];
        if (!id)
            break;
        struct pair *e = pair_at(id);
        if (e->fn == fn && e->name == name) {
            *out = id;
            return 0;
        }
    }
    uint32_t id = count ? count : 1;
    if (id >= CHUNK * CHUNKS)
        return EM_ESYSLIMIT;
    if ((id + 1) * 4 > index_cap * 3 && !grow_index())
        return EM_ENOMEM;
    struct pair *c = atomic_load_explicit(&chunks[id >> CHUNK_BITS], memory_order_relaxed);
    if (!c) {
        if (!(c = calloc(CHUNK, sizeof *c)))
            return EM_ENOMEM;
        /* Relaxed: readers get indices only through a release (see above). */
        atomic_store_explicit(&chunks[id >> CHUNK_BITS], c, memory_order_relaxed);
    }
    c[id & (CHUNK - 1)] = (struct pair){fn, name};
    index_put(index_of, index_cap, h, id);
    count = id + 1;
    *out = id;
    return 0;
}

int emi_entry_intern(emi_sched *s, em_proc_fn fn, const char *name, uint32_t *out)
{
    struct emi_entry_memo *m = NULL;
    if (s && s == emi_self_sched) {
        m = &s->entry_memo[((uintptr_t)fn >> 4) & (EMI_ENTRY_MEMO - 1)];
        if (m->id && m->fn == fn && m->name == name) {
            *out = m->id;
            return 0;
        }
    }
    pthread_mutex_lock(&lock);
    int rc = intern_locked(fn, name, out);
    pthread_mutex_unlock(&lock);
    if (rc == 0 && m)
        *m = (struct emi_entry_memo){fn, name, *out};
    return rc;
}

em_proc_fn emi_entry_fn(uint32_t id) { return pair_at(id)->fn; }

const char *emi_entry_name(uint32_t id) { return pair_at(id)->name; }

void emi_entries_fini(void)
{
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < CHUNKS; i++) {
        free(atomic_load_explicit(&chunks[i], memory_order_relaxed));
        atomic_store_explicit(&chunks[i], NULL, memory_order_relaxed);
    }
    free(index_of);
    index_of = NULL;
    index_cap = 0;
    count = 0;
    pthread_mutex_unlock(&lock);
}
