/*
 * share.c - saved stack images that identical waiting processes share.
 *
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
 * An image is only ever restored for the process that saved it, at the address
 * it came from (a process never leaves its execution stack), so the rewriting
 * is exact whatever a word means: a word that merely falls in one of the two
 * ranges comes back as it was.
 *
 * A scheduler keeps the shared images it made in a small table indexed by
 * hash, and makes one only when the slot has seen the same hash before: a
 * process whose frames are its own (a pointer to its heap, a counter) costs a
 * hash of its words and keeps a private image, as it did before sharing.
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

static void image_unref(emi_image *im)
{
    /* Acq_rel: whoever frees it has seen every other holder's last read. */
    if (atomic_fetch_sub_explicit(&im->refs, 1, memory_order_acq_rel) == 1)
        emi_pool_free(im, image_size(im->len));
}

void emi_image_drop(emi_proc *p)
{
    if (p->img_cap)
        emi_pool_free(p->img, p->img_cap);
    else if (p->img)
        image_unref((emi_image *)(void *)p->img);
    p->img = NULL;
    p->img_cap = p->img_len = 0;
}

bool emi_image_share(emi_sched *s, emi_proc *r, const emi_xstack *x, size_t len)
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
            return false;   /* a private image needs memory too; that path says so */
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
    emi_image_drop(r);
    r->img = (unsigned char *)(void *)im;
    r->img_len = (uint32_t)len;
    /* Relaxed: a figure for introspection; a shared image is nobody's own. */
    atomic_store_explicit(&r->stack_bytes, 0, memory_order_relaxed);
    return true;
}

void emi_image_restore(emi_proc *p, const emi_xstack *x)
{
    emi_image *im = (emi_image *)(void *)p->img;
    uint64_t *dst = p->sp;
    uint64_t pb = (uintptr_t)p, hi = (uintptr_t)x->hi;
    for (uint32_t i = 0; i < im->len / 8; i++) {
        uint64_t t = (im->tags >> (2 * i)) & 3, v = im->w[i];
        dst[i] = t == WORD_PROC ? pb + v : t == WORD_STACK ? hi - v : v;
    }
    p->img = NULL;
    p->img_len = 0;
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
