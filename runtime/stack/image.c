/*
 * image.c - saved stack images: the frames of a waiting process, copied off the
 * execution stack it shares so that another process can run there.
 *
 * A process keeps no pointer of its own to its image: while it is away from its
 * stack, its saved stack pointer holds the image's address instead, tagged in
 * the low bits (EMI_IMG_OWN or EMI_IMG_SHARED, core/rt.h), and the stack pointer
 * comes back from the image's length, since a process always returns to the
 * stack it left and its frames end at the stack's top. That is 16 bytes of
 * every process struct (a pointer, a length and a capacity) that a million
 * waiting processes no longer pay for.
 *
 * An image is either the process's own (a length, then the frames) or shared.
 * A million processes parked at the same receive of the same function leave
 * frames that differ only where they point at themselves (the process struct,
 * which the runtime keeps in a callee-saved register) and at their own
 * execution stack (a saved frame pointer, the address of a local). Written
 * relative to those two bases, their images are equal word for word, and one
 * immutable, reference-counted copy serves them all: a parked process then
 * costs its struct and nothing for its frames, where it cost a 128-byte image
 * of its own (docs/performance.md: fresh memory is most of a spawn's time on
 * this kind of guest).
 *
 * A shared image is only ever restored for a process that saved it, at the
 * address it came from, so the rewriting is exact whatever a word means: a
 * word that merely falls in one of the two ranges comes back as it was.
 *
 * A scheduler keeps the shared images it made in a small table indexed by
 * hash, and makes one only when the slot has seen the same hash before: a
 * process whose frames are its own (a pointer to its heap, a counter) costs a
 * hash of its words and keeps an image of its own.
 *
 * A process's own image counts in its heap's bytes (introspection); a shared
 * one is nobody's.
 */
#include <string.h>

#include "core/rt.h"
#include "core/sanitize.h"
#include "mem/pool.h"

/* Under valgrind nothing is shared: frames hold uninitialised words (padding,
 * locals not yet set), and memcheck rightly reports every branch on them;
 * copied as they are, they stay undefined, so user code reading them later
 * is still caught. Set before any scheduler thread starts. */
static bool share_off;

void emi_image_share_init(void) { share_off = RUNNING_ON_VALGRIND; }

enum { WORD_AS_IS = 0, WORD_PROC = 1, WORD_STACK = 2 };

struct emi_image {
    atomic_uint refs;   /* processes holding it, and one for a scheduler's slot */
    uint32_t len;       /* bytes of frames, a multiple of 8 */
    uint64_t tags;      /* two bits a word: WORD_* */
    uint64_t hash;
    uint64_t w[];       /* the words, rewritten relative to their base */
};

_Static_assert(EMI_SHARE_MAX_WORDS * 2 <= 64, "a word's tag takes two bits of `tags`");

static size_t image_size(uint32_t len) { return sizeof(emi_image) + len; }

/* Rewrite n words of frames of p, saved on x, relative to p and to x's top;
 * return their hash. */
static uint64_t normalize(const emi_proc *p, const emi_xstack *x, const uint64_t *src,
                          size_t n, uint64_t *out, uint64_t *tags_out)
{
    uint64_t pb = (uintptr_t)p;
    uint64_t lo = (uintptr_t)x->lo, hi = (uintptr_t)x->hi;
    uint64_t tags = 0, h = n;
    for (size_t i = 0; i < n; i++) {
        uint64_t v = src[i], t = WORD_AS_IS;
        if (v - pb < sizeof(emi_proc)) {
            v -= pb;
            t = WORD_PROC;
        } else if (v - lo <= hi - lo) {
            v = hi - v;
            t = WORD_STACK;
        }
        out[i] = v;
        tags |= t << (2 * i);
        h = (h ^ v) * 0x9E3779B97F4A7C15ull;
        h ^= h >> 29;
    }
    *tags_out = tags;
    return h ^ tags;
}

/* A process's own image. */
struct own_image {
    uint32_t len;       /* bytes of frames */
    uint32_t cap;       /* bytes allocated, this header included */
    uint64_t w[];
};

static void *tagged(void *im, uintptr_t tag)
{
    /* Pool blocks are 64-byte aligned: the low bits are free for the tag. */
    return (void *)((uintptr_t)im | tag);
}

static void *untagged(uintptr_t v) { return (void *)(v & ~(uintptr_t)EMI_IMG_TAGS); }

static void image_unref(emi_image *im)
{
    /* Acq_rel: whoever frees it has seen every other holder's last read. */
    if (atomic_fetch_sub_explicit(&im->refs, 1, memory_order_acq_rel) == 1)
        emi_pool_free(im, image_size(im->len));
}

/* Store a parked process's sp: a waker on another thread may read it to
 * prefetch (emi_ready_on in core/rt.h), so the store is atomic (relaxed: the
 * process itself reaches another thread only through its hand-off). */
static void set_sp(emi_proc *p, void *sp) { __atomic_store_n(&p->sp, sp, __ATOMIC_RELAXED); }

static void own_free(emi_proc *p, struct own_image *im)
{
    emi_heap_bytes_add(&p->heap, im->cap, -1);
    emi_pool_free(im, im->cap);
}

void emi_image_drop(emi_proc *p)
{
    uintptr_t v = (uintptr_t)p->sp;
    void *im = untagged(v);
    switch (v & EMI_IMG_TAGS) {
    case EMI_IMG_OWN:
        own_free(p, im);
        break;
    case EMI_IMG_SHARED:
        image_unref(im);
        break;
    default:
        return;   /* no image: never run, or its frames are on its stack */
    }
    set_sp(p, NULL);
}


/* Make r's image one shared with others whose frames are the same, if there is
 * or should be one; false leaves r to keep an image of its own. */
static bool share(emi_sched *s, emi_proc *r, const emi_xstack *x, size_t len)
{
    if (share_off || len > EMI_SHARE_MAX_WORDS * 8 || len % 8 != 0)
        return false;
    size_t n = len / 8;
    uint64_t w[EMI_SHARE_MAX_WORDS], tags;
    uint64_t h = normalize(r, x, (const uint64_t *)r->sp, n, w, &tags);
    struct emi_image_slot *sl = &s->img_share[h & (EMI_SHARE_SLOTS - 1)];
    emi_image *im = sl->img;
    if (!im || im->hash != h || im->len != len || im->tags != tags || memcmp(im->w, w, len) != 0) {
        if (sl->seen != h) {
            sl->seen = h;   /* share it if it comes again */
            return false;
        }
        im = emi_pool_alloc(image_size((uint32_t)len));
        if (!im)
            return false;   /* an image of its own needs memory too; that path says so */
        atomic_init(&im->refs, 1);
        im->len = (uint32_t)len;
        im->tags = tags;
        im->hash = h;
        memcpy(im->w, w, len);
        if (sl->img)
            image_unref(sl->img);
        sl->img = im;
    }
    /* Relaxed: the slot's reference keeps it alive, and the image reaches
     * another thread only with the process, through its hand-off. */
    atomic_fetch_add_explicit(&im->refs, 1, memory_order_relaxed);
    set_sp(r, tagged(im, EMI_IMG_SHARED));
    return true;
}

void emi_image_save(emi_sched *s, emi_proc *r, const emi_xstack *x)
{
    size_t len = (size_t)(x->hi - (unsigned char *)r->sp);
    if (share(s, r, x, len))
        return;
    size_t cap = emi_pool_size(sizeof(struct own_image) + len);
    struct own_image *im = emi_pool_alloc(cap);
    if (!im) {
        /* Losing the frames would corrupt the process: nothing can recover. */
        emi_fatal("out of memory saving the stack of a process");
    }
    im->len = (uint32_t)len;
    im->cap = (uint32_t)cap;
    memcpy(im->w, r->sp, len);
    /* The process is parked and its stack is ours: we are its heap's one writer. */
    emi_heap_bytes_add(&r->heap, cap, 1);
    set_sp(r, tagged(im, EMI_IMG_OWN));
}

void emi_image_restore(emi_proc *p, const emi_xstack *x)
{
    uintptr_t v = (uintptr_t)p->sp;
    if (!(v & EMI_IMG_TAGS))
        emi_fatal("a process away from its stack holds no saved image");
    if (v & EMI_IMG_OWN) {
        struct own_image *im = untagged(v);
        unsigned char *sp = x->hi - im->len;
        /* memcheck marked the part of this stack below the last resident's
         * stack pointer as gone when its frames popped; it is ours again. */
        VALGRIND_MAKE_MEM_UNDEFINED(sp, im->len);
        memcpy(sp, im->w, im->len);
        set_sp(p, sp);
        own_free(p, im);
        return;
    }
    emi_image *im = untagged(v);
    uint64_t *dst = (uint64_t *)(void *)(x->hi - im->len);
    VALGRIND_MAKE_MEM_UNDEFINED(dst, im->len);
    uint64_t pb = (uintptr_t)p, hi = (uintptr_t)x->hi;
    for (uint32_t i = 0; i < im->len / 8; i++) {
        uint64_t t = (im->tags >> (2 * i)) & 3, w = im->w[i];
        dst[i] = t == WORD_PROC ? pb + w : t == WORD_STACK ? hi - w : w;
    }
    set_sp(p, dst);
    image_unref(im);
}

void emi_image_slots_fini(emi_sched *s)
{
    for (int i = 0; i < EMI_SHARE_SLOTS; i++) {
        if (s->img_share[i].img)
            image_unref(s->img_share[i].img);
        s->img_share[i].img = NULL;
        s->img_share[i].seen = 0;
    }
}
