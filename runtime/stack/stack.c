/*
 * stack.c - the stacks processes run on, and the switch between a scheduler and a
 * process.
 *
 * Default: copy stacks. Each scheduler maps a few large execution stacks, each
 * with a guard page below it. A process is bound to one stack when it first runs
 * and always runs there, because its frames hold absolute addresses. When another
 * process needs the stack, the frames of the one resident there are copied out to
 * a buffer sized to what it used (a process parked in receive uses a few hundred
 * bytes); when it runs again they are copied back. A process that still sits on its
 * stack resumes with no copy at all. Any scheduler may run any process: the `busy`
 * flag of the stack says whether someone is running on it. This is what lets a
 * million processes fit in a few hundred bytes each while every running process
 * still has a deep stack (runtime-notes.md: map count and page size facts).
 *
 * EMBER_SEPARATE_STACKS (the sanitizer builds): one mapping per process instead,
 * so that AddressSanitizer and ThreadSanitizer can follow every switch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/rt.h"
#include "mem/pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMI_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMI_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define EMI_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EMI_TSAN 1
#endif
#endif
#ifdef EMI_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef EMI_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define EMI_VALGRIND 1
#endif
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_UNDEFINED
#define VALGRIND_MAKE_MEM_UNDEFINED(a, n) ((void)(a), (void)(n))
#endif

void emi_ctx_switch(void **save, void *to);
void emi_ctx_boot(void);

static int map_stack(emi_xstack *x, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size = (size + page - 1) & ~(page - 1);
    size_t len = size + page;
    unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return EM_ENOMEM;
    /* The guard page turns an overflow into a fault instead of a silent write
     * into whatever lies below. */
    if (mprotect(m, page, PROT_NONE) != 0) {
        munmap(m, len);
        return EM_ENOMEM;
    }
    x->map = m;
    x->map_len = len;
    x->lo = m + page;
    /* Stack colouring: every mapping's top sits at the same offset in its page,
     * so the top frames of a thousand processes (what a switch pops) would all
     * fall into the same few sets of the cache and evict each other. Each stack
     * starts at one of 64 line offsets instead. Relaxed: any spread will do. */
    static atomic_uint colour;
    unsigned k = atomic_fetch_add_explicit(&colour, 1, memory_order_relaxed);
    x->hi = m + len - (size_t)((k * 37u) & 63u) * 64;
#ifdef EMI_VALGRIND
    /* Tell valgrind this is a stack, so switches onto it are not taken for a
     * stack pointer gone wild. A no-op outside valgrind. */
    x->vg_id = VALGRIND_STACK_REGISTER(x->lo, x->hi);
#endif
    x->resident = NULL;
    atomic_init(&x->busy, 0);
    return 0;
}

static void unmap_stack(emi_xstack *x)
{
#ifdef EMI_ASAN
    /* Frames of the process that ran here left poisoned redzones in the shadow;
     * the next mapping at this address must start clean. */
    if (x->map)
        __asan_unpoison_memory_region(x->lo, (size_t)(x->hi - x->lo));
#endif
#ifdef EMI_VALGRIND
    if (x->map)
        VALGRIND_STACK_DEREGISTER(x->vg_id);
#endif
    if (x->map)
        munmap(x->map, x->map_len);
    x->map = NULL;
}

/* Plant the first frame: emi_ctx_switch pops six registers and returns into
 * emi_ctx_boot, which finds the process in rbx's slot. The return lands with the
 * stack at hi itself, 16-aligned as the ABI wants before a call, so no byte
 * above the process's first frame is wasted: every byte here is in each saved
 * image: a process waiting in receive near the top of its function needs 120
 * bytes, a 128-byte image (emi_switch_out in core/rt.h says how the frames
 * between it and the switch were kept that small). */
static void boot_frame(emi_proc *p, emi_xstack *x)
{
    void **sp = (void **)(x->hi - 8 - 48);
    VALGRIND_MAKE_MEM_UNDEFINED(sp, 7 * sizeof(void *));
    sp[0] = 0;                   /* r15 */
    sp[1] = 0;                   /* r14 */
    sp[2] = 0;                   /* r13 */
    sp[3] = 0;                   /* r12 */
    sp[4] = p;                   /* rbx */
    sp[5] = 0;                   /* rbp */
    sp[6] = (void *)emi_ctx_boot;
    p->sp = sp;
}

#ifndef EMBER_SEPARATE_STACKS

_Static_assert(sizeof(emi_xstack) == EMI_CACHELINE, "a stack's descriptor fills one cache line");

int emi_stacks_init(emi_sched *s)
{
    emi_image_share_init();
    uint32_t n = EMI_STACKS_PER_NODE / (uint32_t)emi_rt_g->nsched;
    if (n > EMI_STACKS_PER_SCHED_MAX)
        n = EMI_STACKS_PER_SCHED_MAX;
    /* Line-aligned, so that a run or a hand-off touches one line of the
     * descriptor, not two. */
    s->stacks = aligned_alloc(EMI_CACHELINE, n * sizeof *s->stacks);
    if (!s->stacks)
        return EM_ENOMEM;
    memset(s->stacks, 0, n * sizeof *s->stacks);
    s->nstacks = n;
    for (uint32_t i = 0; i < n; i++)
        s->stacks[i].owner = s;
    return 0;
}

void emi_stack_thread_init(emi_sched *s) { (void)s; }

void emi_stack_thread_fini(void) {}

void emi_stacks_fini(emi_sched *s)
{
    for (uint32_t i = 0; s->stacks && i < s->nstacks; i++)
        unmap_stack(&s->stacks[i]);
    emi_image_slots_fini(s);
    free(s->stacks);
    s->stacks = NULL;
}

/* Map x, one of s's stacks, and count it (em_scheduler_info). */
static int map_own_stack(emi_sched *s, emi_xstack *x)
{
    int rc = map_stack(x, emi_rt_g->cfg.stack_size);
    if (rc == 0)
        emi_stat_add(&s->stat_stacks, 1);
    return rc;
}

/* The stack a process that has none gets: the scheduler's next one in turn.
 * Round robin: with as many stacks as processes that take turns (a ring of a
 * thousand), nobody's frames ever need copying. A stack not mapped yet is mapped
 * if may_map, else NULL is returned. */
static emi_xstack *next_stack(emi_sched *s, bool may_map)
{
    /* A stack that a process ended on here is better still: its top lines are
     * warm in this core's cache and no one's frames need saving, which is what a
     * tree of short-lived processes (skynet) does all the time. It may have been
     * handed out in turn meanwhile; entering it then saves the new resident. */
    if (s->nvacant)
        return s->vacant[--s->nvacant];
    emi_xstack *x = &s->stacks[s->next_stack % s->nstacks];
    if (!x->map) {
        if (!may_map)
            return NULL;
        if (map_own_stack(s, x) != 0) {
            x = &s->stacks[0];
            if (!x->map && map_own_stack(s, x) != 0) {
                emi_fatal("cannot map an execution stack");
            }
        } else if (s->next_stack == s->nmapped) {
            s->nmapped++;
        }
    }
    s->next_stack++;
    return x;
}

/* A new stack costs 20 µs and more on this kind of guest, most of it the
 * first write to its top pages and to the page-table page above them
 * (docs/performance.md). A process that has never run paid that when it first
 * ran, in the middle of whatever it was part of: the first lap of a ring of a
 * thousand cost 5-15 ms. Go and BEAM allocate a process's stack when it is
 * spawned; here a spawn maps and writes a stack ahead, so that there are as
 * many ready as processes spawned here that have not run yet. Binding stays at
 * the first run, on whichever scheduler runs the process, and a stack that an
 * ended process left (the vacant list) still goes first. Only a burst of
 * spawns with no process ending here in between prepares: where processes end
 * as others start (a tree of short-lived ones, skynet), the stacks they leave
 * serve the new ones, and preparing would map a thousand stacks that nothing
 * needs (skynet mapped all 2,048 and took 200-350 ms instead of 150-190). The
 * first 64 spawns of a burst prepare nothing, so that a parent that starts a
 * few children does not pay for it. */
#define PREPARE_AFTER_SPAWNS 64

void emi_stack_prepare(emi_sched *s)
{
    s->spawned_here++;
    if (s->ended_here != s->ended_seen) {
        s->ended_seen = s->ended_here;
        s->spawn_burst = 0;
        return;
    }
    if (++s->spawn_burst < PREPARE_AFTER_SPAWNS || s->nmapped >= s->nstacks)
        return;
    /* Relaxed: a count that only steers how many stacks to prepare. */
    uint64_t started = s->started_here +
                       atomic_load_explicit(&s->started_elsewhere, memory_order_relaxed);
    uint64_t unstarted = s->spawned_here > started ? s->spawned_here - started : 0;
    if ((uint64_t)(s->nmapped - s->next_stack) + s->nvacant >= unstarted)
        return;
    emi_xstack *x = &s->stacks[s->nmapped];
    if (!x->map) {
        if (map_own_stack(s, x) != 0)
            return;   /* the first run tries again, and says so if it fails */
        /* The page of the boot frame and the first calls, and the one below
         * when the top sits within 1 KiB of its page's start (colouring puts
         * it anywhere in the last page); both writes land in one page
         * otherwise. Written, not populated with madvise: on this guest a
         * populated page still costs about 5 µs at its first write, when the
         * host maps it. */
        *(volatile unsigned char *)(x->hi - 1) = 0;
        *(volatile unsigned char *)(x->hi - 1024) = 0;
    }
    s->nmapped++;
}

void emi_stack_sole_broken(void) { emi_fatal("a stack with one process bound was in use by another"); }

/* Bind p, which has no stack yet, to one of s's (NULL if may_map is false and
 * none is mapped). Only here, on the owner's thread, does a stack gain a process. */
static emi_xstack *bind(emi_sched *s, emi_proc *p, bool may_map)
{
    emi_xstack *x = next_stack(s, may_map);
    if (x) {
        x->bound++;
        p->xs = x;
        /* Its first run: p->sched is still its spawner's (emi_stack_prepare). */
        if (p->sched == s)
            s->started_here++;
        else if (p->sched)
            /* Relaxed: a count that only steers how many stacks to prepare. */
            atomic_fetch_add_explicit(&p->sched->started_elsewhere, 1, memory_order_relaxed);
    }
    return x;
}

/* p, bound to x, has ended on the thread of scheduler s, which held x for it:
 * clear what p left there and let go of x. A thread other than the owner must
 * not touch x after it counts the unbinding in `gone`, which tells the owner
 * that it may take x without an atomic exchange (emi_stack_sole). */
static void unbind(emi_sched *s, emi_xstack *x, emi_proc *p, bool held)
{
    if (x->resident == p)
        x->resident = NULL;
    if (held)
        /* Release: the next user of the stack sees our writes to it. */
        atomic_store_explicit(&x->busy, 0, memory_order_release);
    if (s && x->owner == s)
        x->bound--;
    else
        /* Release pairs with the owner's acquire in emi_stack_sole. */
        atomic_fetch_add_explicit(&x->gone, 1, memory_order_release);
}

int emi_stack_enter(emi_sched *s, emi_proc *p)
{
    emi_xstack *x = p->xs;
    if (!x)
        x = bind(s, p, true);
    if (emi_stack_sole(s, x)) {
        emi_stack_take_sole(x);
    } else if (atomic_load_explicit(&x->busy, memory_order_relaxed) ||
               /* Acquire pairs with the release in emi_stack_leave: the frames
                * and the resident's image written by the last user are visible. */
               atomic_exchange_explicit(&x->busy, 1, memory_order_acquire)) {
        return EM_ESTATE;
    }
    if (x->resident != p) {
        if (x->resident)
            emi_image_save(s, x->resident, x);
        if (!p->sp)
            boot_frame(p, x);
        else
            emi_image_restore(p, x);   /* not the resident: its frames are in an image */
        x->resident = p;
    }
    return 0;
}

bool emi_stack_handoff(emi_sched *s, emi_proc *p, emi_proc *q)
{
    emi_xstack *x = q->xs;
    /* Mapping a new stack is left to the scheduler. */
    if (!x && !(x = bind(s, q, false)))
        return false;
    if (x == p->xs)
        return false; /* q's frames would have to be copied onto the stack we run on */
    return emi_stack_enter(s, q) == 0;
}

/* At shutdown, with every scheduler stopped. */
void emi_stack_exit(emi_proc *p)
{
    if (p->xs)
        unbind(NULL, p->xs, p, false);
    p->xs = NULL;
    emi_image_drop(p);
}

void emi_stack_vacate(emi_sched *s, emi_proc *p)
{
    emi_xstack *x = p->xs;
    s->ended_here++;
    emi_image_drop(p);
    if (!x)
        return;
    p->xs = NULL;
    /* A stack of this scheduler's that the process ended on is the next new
     * process's (next_stack); others' stacks are not ours to hand out. We hold
     * it, and p was the resident, so no one's frames are there now; but only a
     * stack that no live process is bound to any more stays free of copies
     * (relaxed: a stale count only keeps a stack out of the list). */
    bool mine = x->owner == s && s->nvacant < EMI_VACANT_MAX;
    unbind(s, x, p, true);
    if (mine && x->bound == atomic_load_explicit(&x->gone, memory_order_relaxed))
        s->vacant[s->nvacant++] = x;
}

/* A process's own image counts in its heap's bytes (image.c), its share of an
 * execution stack in nobody's. */
size_t emi_stack_bytes(const emi_proc *p)
{
    (void)p;
    return 0;
}

void emi_stack_switch_in(emi_sched *s, emi_proc *p) { emi_ctx_switch(&s->sp, p->sp); }

void emi_stack_switch_out(emi_proc *p) { emi_ctx_switch(&p->sp, p->sched->sp); }

void emi_stack_on_entry(emi_proc *p) { (void)p; }

void emi_stack_proc_free(emi_proc *p) { (void)p; }

#else /* EMBER_SEPARATE_STACKS */

/* A stack per process, from a cache of mappings: nothing to prepare. */
void emi_stack_prepare(emi_sched *s) { (void)s; }

/* Mapping and unmapping a stack per process is slow and churns the map count;
 * ended processes leave their stacks here for the next ones. */
#define STACK_CACHE 256
static _Thread_local emi_xstack *stack_cache[STACK_CACHE];
static _Thread_local int stack_cache_len;

static void stack_cache_fini(void)
{
    while (stack_cache_len > 0) {
        emi_xstack *x = stack_cache[--stack_cache_len];
        unmap_stack(x);
        free(x);
    }
}


int emi_stacks_init(emi_sched *s)
{
    (void)s;
    return 0;
}

void emi_stack_thread_init(emi_sched *s)
{
#ifdef EMI_TSAN
    s->fiber = __tsan_get_current_fiber();
#else
    (void)s;
#endif
}

void emi_stacks_fini(emi_sched *s)
{
    (void)s;
    stack_cache_fini();
}

void emi_stack_thread_fini(void) { stack_cache_fini(); }

int emi_stack_enter(emi_sched *s, emi_proc *p)
{
    (void)s;
    if (!p->xs) {
        emi_xstack *x = stack_cache_len ? stack_cache[--stack_cache_len] : NULL;
        if (!x && (x = calloc(1, sizeof *x)) != NULL && map_stack(x, emi_rt_g->cfg.stack_size) != 0) {
            free(x);
            x = NULL;
        }
        if (!x) {
            emi_fatal("cannot map a process stack");
        }
        p->xs = x;
        boot_frame(p, x);
        /* Relaxed: a figure for introspection (a page or so is touched). */
        atomic_store_explicit(&p->stack_bytes, 4096, memory_order_relaxed);
#ifdef EMI_TSAN
        p->fiber = __tsan_create_fiber(0);
#endif
    }
    return 0;
}

/* The sanitizers must see every switch: hand-offs go through the scheduler. */
bool emi_stack_handoff(emi_sched *s, emi_proc *p, emi_proc *q)
{
    (void)s, (void)p, (void)q;
    return false;
}

void emi_stack_exit(emi_proc *p)
{
    emi_xstack *x = p->xs;
    if (!x)
        return;
    p->xs = NULL;
    if (stack_cache_len < STACK_CACHE) {
#ifdef EMI_ASAN
        __asan_unpoison_memory_region(x->lo, (size_t)(x->hi - x->lo));
#endif
        stack_cache[stack_cache_len++] = x;
        return;
    }
    unmap_stack(x);
    free(x);
}

void emi_stack_vacate(emi_sched *s, emi_proc *p)
{
    (void)s;
    emi_stack_exit(p);
}

size_t emi_stack_bytes(const emi_proc *p)
{
    return atomic_load_explicit(&p->stack_bytes, memory_order_relaxed);
}

void emi_stack_switch_in(emi_sched *s, emi_proc *p)
{
#ifdef EMI_TSAN
    __tsan_switch_to_fiber(p->fiber, 0);
#endif
#ifdef EMI_ASAN
    const void *fake = NULL;
    __sanitizer_start_switch_fiber((void **)&fake, p->xs->lo, (size_t)(p->xs->hi - p->xs->lo));
#endif
    emi_ctx_switch(&s->sp, p->sp);
#ifdef EMI_ASAN
    __sanitizer_finish_switch_fiber((void *)fake, NULL, NULL);
#endif
}

static void after_resume(emi_proc *p)
{
#ifdef EMI_ASAN
    __sanitizer_finish_switch_fiber((void *)p->asan_fake, &p->sched->stack_bottom,
                                    &p->sched->stack_size);
#else
    (void)p;
#endif
}

void emi_stack_switch_out(emi_proc *p)
{
    emi_sched *s = p->sched;
#ifdef EMI_TSAN
    __tsan_switch_to_fiber(s->fiber, 0);
#endif
#ifdef EMI_ASAN
    /* A process that ends never comes back: tell ASan to drop its fake stack. */
    __sanitizer_start_switch_fiber(p->why == WHY_EXIT ? NULL : (void **)&p->asan_fake,
                                   s->stack_bottom, s->stack_size);
#endif
    emi_ctx_switch(&p->sp, s->sp);
    after_resume(p);
}

void emi_stack_on_entry(emi_proc *p)
{
    p->asan_fake = NULL;
    after_resume(p);
}

void emi_stack_proc_free(emi_proc *p)
{
#ifdef EMI_TSAN
    if (p->fiber)
        __tsan_destroy_fiber(p->fiber);
#else
    (void)p;
#endif
}

#endif
