/*
 * atom.c - the node-wide atom table.
 *
 * An atom term carries an index into this table; the table maps it back to the
 * name. Every scheduler thread reads names (printing, comparing, matching) far more
 * often than anyone interns a new atom, so reads never lock:
 *  - names live in a chunked array whose chunks and entries are published with
 *    release stores and never move or change until emi_atoms_fini;
 *  - interning first probes a fixed-size open-addressing hash of indices without
 *    the lock (an atom that already exists is the common case), and only a miss
 *    takes the mutex to probe again and insert.
 * The hash table has twice as many slots as the atom limit, so probing always ends
 * at an empty slot and the table never needs to grow (calloc'd pages that are
 * never touched cost no memory).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "term/term_int.h"

#define ATOM_MAX_LEN 255
#define ATOM_LIMIT (1u << 20)            /* 1,048,576 atoms */
#define CHUNK_BITS 10
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define NCHUNKS (ATOM_LIMIT / CHUNK_SIZE)
#define HASH_SLOTS (ATOM_LIMIT * 2)      /* load factor at most 1/2 */

typedef struct aname {
    uint32_t len;
    uint32_t hash;
    char s[];                            /* len bytes, then a NUL */
} aname;

typedef _Atomic(aname *) aslot;

/* chunks[i] holds entries i * CHUNK_SIZE ... ; NULL until the first atom in it. */
static _Atomic(aslot *) chunks[NCHUNKS];
/* Hash slots hold index + 1, 0 when empty. NULL until the first intern. */
static _Atomic(_Atomic uint32_t *) slots;
static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
atomic_uint emi_atom_count;              /* atoms interned; written under intern_lock,
                                            read without it by emi_atom_valid */

static uint32_t hash_name(const char *s, size_t len)
{
    /* FNV-1a: short names, fine distribution, no need for anything stronger
     * because the table never grows and names are not attacker-chosen keys for a
     * per-request structure. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static aname *entry_at(uint32_t idx)
{
    if (idx >= ATOM_LIMIT)
        return NULL;
    /* Acquire pairs with the release that published the chunk, so its zeroed
     * contents are visible. */
    aslot *ch = atomic_load_explicit(&chunks[idx >> CHUNK_BITS], memory_order_acquire);
    if (!ch)
        return NULL;
    /* Acquire pairs with the release that published the entry: its name bytes are
     * visible to us. */
    return atomic_load_explicit(&ch[idx & (CHUNK_SIZE - 1)], memory_order_acquire);
}

/* Probes tab for name; returns the index, or -1 with *free_slot set to the empty
 * slot that ended the probe. */
static int64_t probe(_Atomic uint32_t *tab, const char *name, size_t len, uint32_t h,
                     uint32_t *free_slot)
{
    uint32_t i = h & (HASH_SLOTS - 1);
    for (;;) {
        /* Acquire pairs with the insert's release: a slot we see points to an entry
         * that was published before it. */
        uint32_t v = atomic_load_explicit(&tab[i], memory_order_acquire);
        if (v == 0) {
            *free_slot = i;
            return -1;
        }
        aname *a = entry_at(v - 1);
        if (a && a->hash == h && a->len == len && memcmp(a->s, name, len) == 0)
            return (int64_t)(v - 1);
        i = (i + 1) & (HASH_SLOTS - 1);
    }
}

int64_t emi_atom_lookup(const char *name, size_t len)
{
    if (!name || len > ATOM_MAX_LEN || memchr(name, '\0', len))
        return EM_EINVAL;
    uint32_t free_slot;
    /* Acquire pairs with the release that published the table. */
    _Atomic uint32_t *tab = atomic_load_explicit(&slots, memory_order_acquire);
    if (!tab)
        return EM_ENOTFOUND;
    int64_t idx = probe(tab, name, len, hash_name(name, len), &free_slot);
    return idx < 0 ? EM_ENOTFOUND : idx;
}

int64_t emi_atom_intern(const char *name, size_t len)
{
    if (!name || len > ATOM_MAX_LEN || memchr(name, '\0', len))
        return EM_EINVAL;
    uint32_t h = hash_name(name, len), free_slot;
    /* Lock-free fast path; acquire pairs with the release that published the
     * zeroed table. */
    _Atomic uint32_t *tab = atomic_load_explicit(&slots, memory_order_acquire);
    if (tab) {
        int64_t idx = probe(tab, name, len, h, &free_slot);
        if (idx >= 0)
            return idx;
    }

    pthread_mutex_lock(&intern_lock);
    int64_t ret;
    /* Relaxed: writers are serialised by the mutex, which orders this load. */
    tab = atomic_load_explicit(&slots, memory_order_relaxed);
    if (!tab) {
        tab = calloc(HASH_SLOTS, sizeof *tab);
        if (!tab) {
            ret = EM_ENOMEM;
            goto out;
        }
        /* Release: readers that see the pointer also see the zeroed slots. */
        atomic_store_explicit(&slots, tab, memory_order_release);
    }
    /* Probe again: another thread may have inserted the name since our miss. */
    ret = probe(tab, name, len, h, &free_slot);
    if (ret >= 0)
        goto out;
    if (atomic_load_explicit(&emi_atom_count, memory_order_relaxed) >= ATOM_LIMIT) {
        ret = EM_ESYSLIMIT;
        goto out;
    }
    uint32_t idx = atomic_load_explicit(&emi_atom_count, memory_order_relaxed);
    aslot *ch = atomic_load_explicit(&chunks[idx >> CHUNK_BITS], memory_order_relaxed);
    if (!ch) {
        ch = calloc(CHUNK_SIZE, sizeof *ch);
        if (!ch) {
            ret = EM_ENOMEM;
            goto out;
        }
        /* Release: a reader that finds the chunk sees its NULL entries. */
        atomic_store_explicit(&chunks[idx >> CHUNK_BITS], ch, memory_order_release);
    }
    aname *a = malloc(sizeof *a + len + 1);
    if (!a) {
        ret = EM_ENOMEM;
        goto out;
    }
    a->len = (uint32_t)len;
    a->hash = h;
    memcpy(a->s, name, len);
    a->s[len] = '\0';
    /* Release: the entry is complete before its index becomes reachable, first
     * through the chunk, then through the hash slot. */
    atomic_store_explicit(&ch[idx & (CHUNK_SIZE - 1)], a, memory_order_release);
    atomic_store_explicit(&tab[free_slot], idx + 1, memory_order_release);
    /* Release: an index below the count names a published entry. */
    atomic_store_explicit(&emi_atom_count, idx + 1, memory_order_release);
    ret = idx;
out:
    pthread_mutex_unlock(&intern_lock);
    return ret;
}


const char *emi_atom_str(uint32_t idx, size_t *len)
{
    aname *a = entry_at(idx);
    if (!a)
        return NULL;
    if (len)
        *len = a->len;
    return a->s;
}

void emi_atoms_fini(void)
{
    /* Teardown: no other thread touches the table any more, so relaxed accesses
     * suffice; the table is left empty and ready for a later runtime. */
    pthread_mutex_lock(&intern_lock);
    for (uint32_t c = 0; c < NCHUNKS; c++) {
        aslot *ch = atomic_load_explicit(&chunks[c], memory_order_relaxed);
        if (!ch)
            continue;
        for (uint32_t i = 0; i < CHUNK_SIZE; i++)
            free(atomic_load_explicit(&ch[i], memory_order_relaxed));
        free(ch);
        atomic_store_explicit(&chunks[c], NULL, memory_order_relaxed);
    }
    free(atomic_load_explicit(&slots, memory_order_relaxed));
    atomic_store_explicit(&slots, NULL, memory_order_relaxed);
    atomic_store_explicit(&emi_atom_count, 0, memory_order_relaxed);
    pthread_mutex_unlock(&intern_lock);
}

/* ------------------------------------------------------------ public API */

em_term em_atomn(const char *name, size_t len)
{
    int64_t idx = emi_atom_intern(name, len);
    return idx < 0 ? EM_NONE : emi_make_atom((uint32_t)idx);
}

em_term em_atom(const char *name)
{
    return name ? em_atomn(name, strlen(name)) : EM_NONE;
}

const char *em_atom_name(em_term atom)
{
    return emi_is_atom(atom) ? emi_atom_str(emi_atom_index(atom), NULL) : NULL;
}

bool em_is_atom(em_term t, const char *name)
{
    /* Compare names rather than interning name: no lock, and no atom is created
     * just to ask the question. */
    if (!emi_is_atom(t) || !name)
        return false;
    size_t len;
    const char *s = emi_atom_str(emi_atom_index(t), &len);
    return s && strlen(name) == len && memcmp(s, name, len) == 0;
}
