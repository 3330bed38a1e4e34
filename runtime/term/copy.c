/*
 * copy.c - deep copies of terms, for messages and for anything else that must
 * outlive the heap a term was built in.
 *
 * A copy is made in two steps: emi_term_size walks the term once, checking that it
 * is well formed and adding up the bytes, and emi_term_copy lays the copy out in
 * one contiguous buffer of exactly that size. The copy is breadth-first (Cheney
 * style): boxes are appended to the buffer and the buffer itself is scanned as the
 * queue of boxes whose children still point at the source, so copying needs no
 * stack however deep the term is. Sharing inside the source (the same subterm used
 * twice) is not preserved: the copy is a tree, as in Erlang's message passing.
 *
 * Shared binaries are not copied: the new box points at the same emi_refbin and
 * takes a reference, and it is linked into the destination's off-heap list so
 * that freeing the destination drops the reference.
 */
#include <stdlib.h>
#include <string.h>

#include "term/term_int.h"

#define COPY_MAX_DEPTH 10000
/* Blocks record their size in 32 bits; a term whose copy would be larger is
 * refused early, which also bounds the walk over a term that shares subterms
 * heavily (whose copy can be exponentially larger than the term). */
#define COPY_MAX_BYTES ((int64_t)UINT32_MAX)

/* Words of the box t itself (not its children), or EM_EBADTERM. */
static int64_t box_words(em_term t)
{
    uint64_t n = emi_box_size(t);
    switch (emi_box_type(t)) {
    case BOX_INT:
    case BOX_UINT:
    case BOX_FLOAT:
    case BOX_PID: return 2;
    case BOX_REF: return 3;
    case BOX_STR:
    case BOX_BIN: return 1 + (int64_t)emi_words(n);
    case BOX_REFBIN: return sizeof(emi_refbin_box) / 8;
    case BOX_ARRAY: return 1 + (int64_t)n;
    case BOX_MAP: return 1 + 2 * (int64_t)n;
    default: return EM_EBADTERM;
    }
}

/* Child slots of a container box: 0 for leaves. */
static uint64_t box_children(em_term t)
{
    switch (emi_box_type(t)) {
    case BOX_ARRAY: return emi_box_size(t);
    case BOX_MAP: return 2 * emi_box_size(t);
    default: return 0;
    }
}

static int is_container(em_term t)
{
    unsigned type = emi_box_type(t);
    return type == BOX_ARRAY || type == BOX_MAP;
}

typedef struct sframe {
    em_term box;
    uint64_t i, n;
} sframe;

#define SIZE_LOCAL_FRAMES 32

int64_t emi_term_size(em_term t)
{
    if (!emi_is_box(t))
        return emi_valid_immediate(t) ? 0 : EM_EBADTERM;
    int64_t total = box_words(t);
    if (total < 0)
        return total;
    total *= 8;
    if (total > COPY_MAX_BYTES)
        return EM_ETOOBIG;
    if (!is_container(t))
        return total;

    sframe local[SIZE_LOCAL_FRAMES], *st = local;
    size_t sp = 0, cap = SIZE_LOCAL_FRAMES;
    st[sp++] = (sframe){t, 0, box_children(t)};
    int64_t ret = 0;
    while (sp) {
        sframe *f = &st[sp - 1];
        if (f->i == f->n) {
            sp--;
            continue;
        }
        em_term c = emi_box(f->box)[1 + f->i++];
        if (!emi_is_box(c)) {
            if (!emi_valid_immediate(c)) {
                ret = EM_EBADTERM;
                break;
            }
            continue;
        }
        int64_t w = box_words(c);
        if (w < 0) {
            ret = w;
            break;
        }
        total += w * 8;
        if (total > COPY_MAX_BYTES) {
            ret = EM_ETOOBIG;
            break;
        }
        if (!is_container(c))
            continue;
        /* The stack holds the containers enclosing c, so c's depth is sp + 1. */
        if (sp >= COPY_MAX_DEPTH) {
            ret = EM_EBADTERM;
            break;
        }
        if (sp == cap) {
            sframe *n = emi_walk_stack_grow(st, local, &cap, sizeof *n);
            if (!n) {
                ret = EM_ENOMEM;
                break;
            }
            st = n;
        }
        st[sp++] = (sframe){c, 0, box_children(c)};
    }
    if (st != local)
        free(st);
    return ret < 0 ? ret : total;
}

void *emi_walk_stack_grow(void *st, const void *local, size_t *cap, size_t elem)
{
    size_t ncap = *cap * 2;
    void *n = st == local ? malloc(ncap * elem) : realloc(st, ncap * elem);
    if (!n)
        return NULL;
    if (st == local)
        memcpy(n, local, *cap * elem);
    *cap = ncap;
    return n;
}

/* Appends a shallow copy of box src at out[*top]; its children still point at the
 * source until the scan reaches it. */
static em_term copy_box(em_term src, uint64_t *out, size_t *top, emi_refbin_box **offheap)
{
    size_t w = (size_t)box_words(src);
    uint64_t *dst = out + *top;
    memcpy(dst, emi_box(src), w * 8);
    *top += w;
    if (emi_box_type(src) == BOX_REFBIN) {
        emi_refbin_box *b = (emi_refbin_box *)dst;
        /* Relaxed is enough: the source box holds a reference for the whole copy,
         * so the count cannot reach zero meanwhile, and whoever frees the bytes
         * synchronises through the acq_rel decrements in emi_offheap_release. */
        atomic_fetch_add_explicit(&b->bin->refs, 1, memory_order_relaxed);
        b->next = *offheap;
        *offheap = b;
    }
    return (em_term)(uintptr_t)dst;
}

em_term emi_term_copy(em_term t, void *dst, emi_refbin_box **offheap)
{
    if (!emi_is_box(t))
        return t;
    uint64_t *out = dst;
    size_t top = 0, scan = 0;
    em_term root = copy_box(t, out, &top, offheap);
    while (scan < top) {
        em_term b = (em_term)(uintptr_t)(out + scan);
        uint64_t n = box_children(b);
        for (uint64_t i = 0; i < n; i++) {
            em_term c = out[scan + 1 + i];
            if (emi_is_box(c))
                out[scan + 1 + i] = copy_box(c, out, &top, offheap);
        }
        scan += (size_t)box_words(b);
    }
    return root;
}

/* Most messages are one container of immediates and small leaves ({ping, Pid},
 * {token, 42}). For those, size and copy in one pass over the children instead of
 * the general walk; anything else (deeper terms, shared binaries, errors) goes the
 * general way. */
#define FLAT_MAX_CHILDREN 16

int64_t emi_term_flat_size(em_term t)
{
    unsigned type = emi_box_type(t);
    if (type != BOX_ARRAY && type != BOX_MAP)
        return -1;
    uint64_t n = box_children(t);
    if (n > FLAT_MAX_CHILDREN)
        return -1;
    const uint64_t *src = emi_box(t);
    int64_t words = 1 + (int64_t)n;
    for (uint64_t i = 0; i < n; i++) {
        em_term c = src[1 + i];
        if (!emi_is_box(c)) {
            if (!emi_valid_immediate(c))
                return -1;
            continue;
        }
        unsigned ct = emi_box_type(c);
        if (ct == BOX_ARRAY || ct == BOX_MAP || ct == BOX_REFBIN)
            return -1;
        int64_t w = box_words(c);
        if (w < 0)
            return -1;
        words += w;
    }
    return words * 8;
}

em_term emi_term_flat_copy(em_term t, void *dst)
{
    uint64_t *out = dst;
    uint64_t n = box_children(t);
    size_t top = 1 + (size_t)n;
    memcpy(out, emi_box(t), top * 8);
    for (uint64_t i = 0; i < n; i++) {
        em_term c = out[1 + i];
        if (!emi_is_box(c))
            continue;
        size_t w = (size_t)box_words(c);
        memcpy(out + top, emi_box(c), w * 8);
        out[1 + i] = (em_term)(uintptr_t)(out + top);
        top += w;
    }
    return (em_term)(uintptr_t)out;
}

void emi_offheap_release(emi_refbin_box *list, emi_refbin_box *stop)
{
    while (list && list != stop) {
        emi_refbin_box *next = list->next;
        emi_refbin *bin = list->bin;
        /* acq_rel: our release orders our reads of the bytes before the decrement;
         * the last owner's acquire sees every other owner's reads done before it
         * frees. */
        if (atomic_fetch_sub_explicit(&bin->refs, 1, memory_order_acq_rel) == 1)
            free(bin);
        list = next;
    }
}
