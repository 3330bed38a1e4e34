/*
 * term_int.h - how terms are laid out in memory, for the runtime's own code.
 *
 * An em_term is a tagged 64-bit word:
 *   ...xxx1  small integer, value = (int64_t)t >> 1, range [-2^62, 2^62)
 *   ...x010  immediate: nil 0x02, false 0x0A, true 0x12, atom (index << 8) | 0x1A
 *   ...x000  (non-zero) pointer to a box; 0 is EM_NONE
 * A box starts with a header word: type in bits 0-7, size in bits 8-63 (bytes for
 * strings and binaries, elements for arrays, pairs for maps). Payloads follow and
 * every box is padded to 8 bytes:
 *   BOX_INT / BOX_UINT / BOX_FLOAT   one 64-bit word
 *   BOX_STR / BOX_BIN                the bytes
 *   BOX_REFBIN                       emi_refbin *, then the next box of the block's
 *                                    off-heap list (binaries over 64 bytes, shared)
 *   BOX_ARRAY                        n terms
 *   BOX_MAP                          n key/value pairs of terms, insertion order
 *   BOX_PID                          one em_pid_t
 *   BOX_REF                          node word, then a 64-bit counter
 */
#ifndef EMBER_TERM_INT_H
#define EMBER_TERM_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

#define EMI_SMALL_MIN (-((int64_t)1 << 62))
#define EMI_SMALL_MAX (((int64_t)1 << 62) - 1)
#define EMI_REFBIN_THRESHOLD 64   /* binaries longer than this are shared */

enum emi_box_type {
    BOX_INT = 1,
    BOX_UINT,
    BOX_FLOAT,
    BOX_STR,
    BOX_BIN,
    BOX_REFBIN,
    BOX_ARRAY,
    BOX_MAP,
    BOX_PID,
    BOX_REF,
};

/* A shared binary: immutable bytes with a count of the boxes that point to it. */
typedef struct emi_refbin {
    atomic_size_t refs;
    size_t len;
    unsigned char data[];
} emi_refbin;

/* The off-heap part of a BOX_REFBIN box, after its header word. */
typedef struct emi_refbin_box {
    uint64_t header;
    emi_refbin *bin;
    struct emi_refbin_box *next;  /* next box in the owning block's off-heap list */
} emi_refbin_box;

static inline int emi_is_small(em_term t) { return (t & 1) != 0; }
static inline int emi_is_box(em_term t) { return t != 0 && (t & 7) == 0; }
static inline int emi_is_atom(em_term t) { return (t & 0xFF) == 0x1A; }
static inline em_term emi_make_small(int64_t v) { return ((uint64_t)v << 1) | 1; }
static inline int64_t emi_small_value(em_term t) { return (int64_t)t >> 1; }
static inline em_term emi_make_atom(uint32_t idx) { return ((uint64_t)idx << 8) | 0x1A; }
static inline uint32_t emi_atom_index(em_term t) { return (uint32_t)(t >> 8); }
static inline uint64_t *emi_box(em_term t) { return (uint64_t *)(uintptr_t)t; }
static inline unsigned emi_box_type(em_term t) { return (unsigned)(emi_box(t)[0] & 0xFF); }
static inline uint64_t emi_box_size(em_term t) { return emi_box(t)[0] >> 8; }
static inline uint64_t emi_header(unsigned type, uint64_t size) { return (size << 8) | type; }
static inline size_t emi_words(size_t bytes) { return (bytes + 7) / 8; }

/* Atoms (atom.c). emi_atom_intern returns the index or a negative EM_E* code. */
int64_t emi_atom_intern(const char *name, size_t len);
int64_t emi_atom_lookup(const char *name, size_t len);   /* never interns: EM_ENOTFOUND */
const char *emi_atom_str(uint32_t idx, size_t *len);
extern atomic_uint emi_atom_count;          /* atom.c: atoms interned so far */
/* An interned atom's index: inline, since every message's atoms are checked. */
static inline bool emi_atom_valid(uint32_t idx)
{
    /* Acquire pairs with the release in intern: the entry is published. */
    return idx < atomic_load_explicit(&emi_atom_count, memory_order_acquire);
}

/* A well-formed immediate: a small integer, nil, a boolean or an interned atom. */
static inline bool emi_valid_immediate(em_term t)
{
    if (emi_is_small(t) || t == EM_NIL || t == EM_TRUE || t == EM_FALSE)
        return true;
    return emi_is_atom(t) && emi_atom_valid(emi_atom_index(t));
}
void emi_atoms_fini(void);

/* Copying (copy.c). emi_term_size returns the bytes a deep copy of t needs in a
 * block, or a negative EM_E* code for a malformed term. emi_term_copy copies t into
 * dst (which has at least that many bytes), linking shared binaries into *offheap
 * and taking a reference on each. */
int64_t emi_term_size(em_term t);
em_term emi_term_copy(em_term t, void *dst, emi_refbin_box **offheap);
/* emi_term_flat_size: the bytes of a one-level container (at most 16 children,
 * each an immediate or a leaf box other than a shared binary), else -1.
 * emi_term_flat_copy copies such a term into dst. */
int64_t emi_term_flat_size(em_term t);
em_term emi_term_flat_copy(em_term t, void *dst);
/* emi_walk_stack_grow doubles an explicit walk stack that starts in a local
 * array (local, *cap elements of elem bytes): the first growth moves the frames to
 * the heap. It returns the new stack and updates *cap, or returns NULL and leaves
 * the old stack as it was. The caller frees the stack if it is not local. */
void *emi_walk_stack_grow(void *st, const void *local, size_t *cap, size_t elem);
/* emi_offheap_release drops the references of an off-heap list, stopping at stop. */
void emi_offheap_release(emi_refbin_box *list, emi_refbin_box *stop);

/* References need a node-wide counter (term.c). */
uint64_t emi_ref_next(void);
/* emi_ref_box builds a reference box in h (node 0 is this node), or EM_NONE. */
struct em_heap;
em_term emi_ref_box(struct em_heap *h, uint64_t node, uint64_t counter);

#endif
