/*
 * rt.h - the runtime's internal types: processes, schedulers, execution stacks and
 * the node-wide state that ties them together. Every subsystem includes it.
 *
 * Threading rules, in short:
 *  - A process's fields are written only by the scheduler thread running it, except
 *    the fields in its "written by senders" group.
 *  - A scheduler's fields are written only by its own thread, except the groups
 *    marked otherwise (its run queue head, which thieves move, and its sleep word).
 *  - Process structs are freed only after every scheduler has passed a quiescent
 *    point (QSBR, qsbr.c), so a sender holding a pointer read from the process
 *    table can always touch the struct, even if the process has just ended.
 */
#ifndef EMBER_CORE_RT_H
#define EMBER_CORE_RT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"
#include "mem/heap.h"
#include "mem/pool.h"

#define EMI_CACHELINE 64
#define EMI_RUNQ_SIZE 256          /* local run queue slots (a power of two) */
#define EMI_LIFO_SIZE 1024         /* local last-in-first-out slots (a power of two);
                                      the LIFO's 10 ms turns in a spawn tree grow it
                                      past 256 now and then (sched.c) */
#define EMI_STACKS_PER_NODE 16384  /* execution stacks shared out among schedulers: each
                                      costs two of the 65,530 map entries, and only
                                      the pages a process touched */
#define EMI_STACKS_PER_SCHED_MAX 1024
#define EMI_SHARE_SLOTS 16         /* a scheduler's table of shared images (stack/image.c) */
#define EMI_SHARE_MAX_WORDS 32     /* larger images are never shared */
#define EMI_VACANT_MAX 32          /* stacks left by ended processes, kept per scheduler */
#define EMI_MAX_SCHEDULERS 64

/* The inbox head word: a block pointer in bits 0-47 and, in bits 48-63, how many
 * blocks hang from it (saturating; pushes past that are counted in msgs_over), so
 * a mailbox's length costs senders no extra atomic operation. */
#define EMI_INBOX_COUNT_MAX 0xFFFFu
static inline struct emi_block *emi_inbox_ptr(struct emi_block *w)
{
    return (struct emi_block *)((uintptr_t)w & 0x0000FFFFFFFFFFFFull);
}
static inline unsigned emi_inbox_count(struct emi_block *w) { return (unsigned)((uintptr_t)w >> 48); }

/* Inbox sentinels: the inbox head is a LIFO of blocks or one of these. */
#define EMI_INBOX_SLEEP ((emi_block *)1)   /* empty, and the process is parked */
#define EMI_INBOX_CLOSED ((emi_block *)2)  /* the process has ended */

struct emi_sched;
struct emi_xstack;

/* Why a process handed control back to its scheduler. */
enum emi_why {
    WHY_YIELD = 1,   /* budget spent or em_yield: run again later */
    WHY_WAIT,        /* park until a message or a timeout */
    WHY_EXIT,        /* finished */
    WHY_HALT,        /* em_halt: never resume */
    WHY_PREEMPT,     /* interrupted by the preemption signal: run again, here */
};

/* What few processes need, kept apart so that a process that needs none of it
 * (a million waiting in receive) does not pay for it in every struct: made on
 * first use (emi_proc_ext), freed with the process. */
typedef struct emi_proc_ext {
    struct emi_reltab *rels;        /* links and monitors, under p's rel_lock */
    _Atomic(em_term) name;          /* registered name or EM_NONE */
    atomic_uint msgs_over;          /* pushes beyond the inbox head's 16-bit count
                                       (written by senders) */
    /* The timer armed for a receive timeout (the thread running the process),
     * valid while the process's EMI_PF_TIMED bit is set. */
    uint32_t wait_timer_slot;
    uint32_t wait_timer_gen;
    uint8_t wait_timer_sched;       /* id of the scheduler whose table holds it */
} emi_proc_ext;

/* Bits of a process's `flags` byte. One writer at a time, the thread running the
 * process or holding it pinned (which is the same thread); others read them. */
#define EMI_PF_TRAP_EXIT 1u         /* exit signals become ['EXIT', From, Reason] */
#define EMI_PF_PINNED 2u            /* in its scheduler's preempted queue (killers read it) */
#define EMI_PF_TIMED 4u             /* a receive timeout is armed (ext->wait_timer_*) */

typedef struct emi_proc {
    /* Two cache lines, 128 bytes in a release build: a million processes waiting
     * in receive pay for every byte twice, once in memory and once in the time
     * fresh memory costs (docs/performance.md: 64 bytes more cost about 75 ns a
     * spawn), so fields are as narrow as their values allow, words whose lives
     * do not overlap share one, and what few processes use lives in `ext`.
     *
     * The first line is every message's path: a send to a parked process writes
     * the inbox, the queue and the status, and the process, when it runs, reads
     * them beside its stack and its scheduler. */
    _Atomic(emi_block *) inbox;     /* LIFO of arrived blocks, or a sentinel
                                       (written by senders on any thread) */
    em_pid_t pid;                   /* constant after spawn */
    emi_block *mq_head, *mq_tail;   /* received from the inbox, not yet taken (the
                                       process's, or its waker's while it is parked) */
    struct emi_sched *sched;        /* scheduler running it now, or last */
    atomic_uint mq_len;             /* length of mq, for introspection */
    atomic_uchar status;            /* em_status, read by introspection */
    atomic_uchar sig_pending;       /* an exit signal is in the inbox: look soon */
    atomic_uchar timeout_fired;     /* set by a timer before it tries to wake us */
    uint8_t why;                    /* enum emi_why */
    /* Written by the thread running the process. While it is suspended, its
     * saved stack pointer, or, once another process took its execution stack,
     * its saved image tagged in the low bits (EMI_IMG_*, stack/image.c); NULL
     * before the first run. */
    void *sp;
    struct emi_xstack *xs;          /* the stack it runs on */

    /* (second line) Written by the thread running the process. */
    struct em_heap heap;
    atomic_uint_fast64_t reductions;
    union {
        em_term arg;                /* until the first run passes it to fn */
        em_term exit_reason;        /* set as it ends (EM_NONE: normal); lives in its heap */
        uint64_t retire_epoch;      /* retired: the QSBR epoch (sched/qsbr.c) */
    } last;
    struct emi_proc *qnext;         /* global or preempted queue, then the QSBR limbo */
    _Atomic(emi_proc_ext *) ext;    /* NULL until needed (any thread may make it) */
    uint32_t entry;                 /* its function and name (proc/entry.c) */
    /* Links and monitors (proc/relations.h): rel_lock guards ext->rels. */
    atomic_uchar rel_lock;
    atomic_bool rel_dead;           /* ended: no new relation may be added; also
                                       what em_is_alive reads */
    atomic_uchar flags;             /* EMI_PF_* */
    atomic_uchar sched_id;          /* last scheduler, for introspection and kills */
#ifndef NDEBUG
    atomic_int queued;              /* debug builds: 1 while in a run queue */
#endif
#ifdef EMBER_SEPARATE_STACKS
    void *fiber;                    /* ThreadSanitizer's fiber */
    const void *asan_fake;          /* AddressSanitizer's fake stack while suspended */
    atomic_uint stack_bytes;        /* for introspection: its own stack's pages touched */
#endif
} emi_proc;
#if defined(NDEBUG) && !defined(EMBER_SEPARATE_STACKS)
_Static_assert(sizeof(emi_proc) == 2 * EMI_CACHELINE, "a process fills two cache lines");
#endif
_Static_assert(EMI_MAX_SCHEDULERS <= 256, "a scheduler id fits a byte");

/* emi_proc_ext: p's ext, made if it has none (any thread), or NULL when memory
 * runs out. emi_proc_ext_peek: p's ext or NULL. */
emi_proc_ext *emi_proc_ext_get(emi_proc *p);
static inline emi_proc_ext *emi_proc_ext_peek(const emi_proc *p)
{
    /* Acquire pairs with the release in emi_proc_ext_get: its fields are set. */
    return atomic_load_explicit(&((emi_proc *)p)->ext, memory_order_acquire);
}
/* emi_proc_name: p's registered name or EM_NONE (relaxed: a snapshot). */
static inline em_term emi_proc_name(const emi_proc *p)
{
    emi_proc_ext *x = emi_proc_ext_peek(p);
    return x ? atomic_load_explicit(&x->name, memory_order_relaxed) : EM_NONE;
}
/* emi_proc_flag: whether bit f of p's flags is set. emi_proc_flag_set: set or
 * clear it (the one writer; see EMI_PF_*); returns whether it was set. */
static inline bool emi_proc_flag(const emi_proc *p, unsigned f)
{
    /* Relaxed: flags are hints or written by the reader's own thread. */
    return atomic_load_explicit(&((emi_proc *)p)->flags, memory_order_relaxed) & f;
}
static inline bool emi_proc_flag_set(emi_proc *p, unsigned f, bool on)
{
    /* Relaxed: one writer at a time (the bits' comment); readers take hints. */
    unsigned v = atomic_load_explicit(&p->flags, memory_order_relaxed);
    atomic_store_explicit(&p->flags, (unsigned char)(on ? v | f : v & ~f), memory_order_relaxed);
    return v & f;
}

/* proc/entry.c: the table of (function, name) pairs that processes run. A
 * scheduler remembers its last few pairs (owner only). */
#define EMI_ENTRY_MEMO 8
struct emi_entry_memo {
    em_proc_fn fn;
    const char *name;
    uint32_t id;
};
struct emi_sched;
/* emi_entry_intern: the index of (fn, name), added if new; EM_ENOMEM or
 * EM_ESYSLIMIT (16M distinct pairs). s is the caller's scheduler or NULL.
 * emi_entry_fn / emi_entry_name: a pair's members (any thread holding a process
 * with that index). emi_entries_fini: forget every pair (runtime stopped). */
int emi_entry_intern(struct emi_sched *s, em_proc_fn fn, const char *name, uint32_t *out);
em_proc_fn emi_entry_fn(uint32_t id);
const char *emi_entry_name(uint32_t id);
void emi_entries_fini(void);

/* An execution stack. With copy stacks, many processes share one: the process
 * running on it holds `busy`, and `resident` is the process whose frames are there
 * now (saved to its image only when another process needs the stack).
 *
 * Only the scheduler that owns a stack binds processes to it, so when it finds
 * exactly one live process bound (bound - gone == 1) and wants to run that one,
 * nobody else can want the stack: it takes it with a plain store instead of an
 * atomic exchange, about 6 ns less on every run and hand-off (a locked
 * instruction here). Other threads only ever unbind, and count that in `gone`
 * after they have let go of the stack. */
typedef struct emi_xstack {
    atomic_int busy;
    uint32_t bound;                 /* processes bound, less those that ended on
                                       the owner's thread (owner only) */
    atomic_uint gone;               /* those that ended on another thread */
    unsigned vg_id;                 /* valgrind's id for the stack */
    emi_proc *resident;
    struct emi_sched *owner;        /* the scheduler whose stack it is */
    unsigned char *lo, *hi;         /* usable range; hi is the top, 16-aligned */
    unsigned char *map;             /* the mapping, guard page included */
    size_t map_len;
} emi_xstack;                       /* 64 bytes: one line each in s->stacks */

typedef struct emi_timers emi_timers;

/* A saved image that identical waiting processes share (stack/image.c). */
typedef struct emi_image emi_image;
struct emi_image_slot {
    uint64_t seen;                  /* hash of the last image that missed here */
    emi_image *img;                 /* a shared image, or NULL (one reference) */
};

typedef struct emi_sched {
    /* Written by the owner thread only. */
    _Alignas(EMI_CACHELINE) int id;
    pthread_t thread;
    void *sp;                       /* scheduler context while a process runs */
    emi_proc *current;
    uintptr_t stack_floor;          /* current's stack bottom + the reserve a call to
                                       ember needs (proc/current.c) */
    emi_proc *runnext;              /* run next, inheriting the slice; not stealable */
    uint32_t lifo_head, lifo_tail;  /* entries [head, tail) of lifo, below */
    uint64_t lifo_since_ns;         /* the LIFO has not been empty since (coarse_ns),
                                       or its oldest entry last went first */
    uint64_t lifo_low_ns;           /* the LIFO was last seen at most half full then
                                       (coarse_ns; find_work's ring turn) */
    uint64_t coarse_ns;             /* the time, read every 64 turns of the loop and
                                       after long runs: cheap to compare against */
    int32_t budget;                 /* reductions left in this slice */
    int32_t budget_mark;            /* budget when the running process got the core */
    uint32_t handoffs;              /* direct switches since the loop last ran */
    bool slice_shared;              /* the slice under way passed from one process to
                                       another through runnext (sched.c, run) */
    emi_proc *pending_park;         /* handed off while waiting: park it once off-stack */
    atomic_int in_op;               /* 1 inside a mailbox operation (solo.c); read by
                                       a thread that revokes solo mode */
    uint32_t solo_turns;            /* loop turns with the others asleep (solo.c) */
    struct emi_block *blk_cache;    /* small message blocks freed here (emi_small_block) */
    uint32_t blk_cache_n;
    uint32_t tick;
    uint32_t next_stack;
    uint32_t rand;
    emi_xstack *stacks;             /* mapped on first use */
    uint32_t nstacks;
    uint32_t nmapped;               /* stacks[0, nmapped) are mapped (stack.c) */
    uint64_t spawned_here, started_here;  /* processes spawned here; those of them
                                             that first ran here (stack.c) */
    uint64_t ended_here, ended_seen;      /* processes that ended here; the count
                                             the last spawn saw (stack.c) */
    uint32_t spawn_burst;                 /* spawns here since a process last ended */
    uint32_t nvacant;
    emi_xstack *vacant[EMI_VACANT_MAX];  /* stacks whose process ended here, newest
                                            last: still warm in this core's cache */
    emi_proc *limbo_head, *limbo_tail;   /* ended processes waiting for a grace period */
    size_t limbo_len;
    uint32_t *pid_cache;            /* free process-table indices kept locally */
    atomic_uint credits;            /* process slots reserved from rt->proc_count but
                                       unused: spawns and exits here rarely touch the
                                       shared count (written by the owner only) */
    uint32_t pid_cache_len;
    emi_proc *pinned_head, *pinned_tail;  /* preempted processes: they resume on this
                                             thread (their C code may hold its TLS) */
    int fault_sig;                  /* the fault being turned into a process's end */
    bool fault_overflow;
    uintptr_t fault_addr, fault_pc;
    /* Displaced by runnext: newest runs first. After the fields above, which a
     * message's path reads and writes, so that they share a few lines. */
    emi_proc *lifo[EMI_LIFO_SIZE];
    struct emi_image_slot img_share[EMI_SHARE_SLOTS];  /* images made here (owner only) */
    struct emi_entry_memo entry_memo[EMI_ENTRY_MEMO];  /* pairs interned here (owner only) */
#ifdef EMBER_SEPARATE_STACKS
    void *fiber;
    const void *stack_bottom;
    size_t stack_size;
#endif

    /* Preemption: written by the owner, read by the monitor thread (relaxed). */
    atomic_uint_fast64_t run_epoch; /* +1 each time a process takes the core */
    atomic_int in_proc;             /* 1 while a process runs */
    /* Written by the monitor (or a killer); read by the owner's signal handler. */
    atomic_uint_fast64_t preempt_req;   /* the epoch to interrupt */
    atomic_int pinned_kick;         /* a preempted process here has an exit signal */

    /* Statistics: written by the owner, read by anyone (relaxed). */
    atomic_uint_fast64_t stat_runs, stat_steals, stat_conflicts, stat_preempted;
    atomic_uint_fast64_t stat_idle_ns;
    atomic_uint_fast64_t idle_since_ns; /* when the idle spell under way began; 0 if none */
    atomic_uint_fast64_t stat_spawned, stat_sent, stat_dead;
    atomic_uint_fast64_t stat_stacks;   /* stacks mapped (stack.c) */

    /* Run queue: the owner writes tail; the owner and thieves advance head. */
    _Alignas(EMI_CACHELINE) atomic_uint runq_head;
    _Alignas(EMI_CACHELINE) atomic_uint runq_tail;
    _Atomic(emi_proc *) runq[EMI_RUNQ_SIZE];

    /* Written by other threads. */
    _Alignas(EMI_CACHELINE) atomic_uint sleeping;  /* futex word: 1 while asleep */
    atomic_uint_fast64_t started_elsewhere;  /* spawned here, first ran on another */
    atomic_uint_fast64_t qsbr;      /* last epoch seen at a quiescent point; 0 = offline */
    emi_timers *timers;
    atomic_int polling;             /* 1 while asleep in the network poll, not the futex:
                                       a waker writes wake_fd instead (dist/net.c) */
    int wake_fd;                    /* an eventfd, made on first poll; 0 = none */
} emi_sched;

/* The node: one per OS process. */
typedef struct emi_rt {
    em_config cfg;
    int nsched;
    emi_sched **scheds;

    /* Process table: index -> process, published with release stores. */
    _Atomic(emi_proc *) *table;
    uint32_t *serials;              /* per index, owned by whoever holds the index */
    pthread_mutex_t pid_lock;
    uint32_t *pid_free;             /* global stack of free indices */
    uint32_t pid_free_len;
    atomic_uint pid_next;           /* indices never used start here */

    _Alignas(EMI_CACHELINE) atomic_uint proc_count;   /* live processes + credits held */
    atomic_uint_fast64_t last_trim_ns;  /* sched.c: when an idle scheduler last trimmed */
    atomic_int slots_wanted;        /* a spawn at the limit asks schedulers to give back
                                       the slots and indices they keep (proc.c) */
    _Alignas(EMI_CACHELINE) atomic_uint_fast64_t epoch;   /* QSBR */
    atomic_uint_fast64_t ext_qsbr;  /* the dist thread's slot, as a scheduler's qsbr */
    /* Solo mode (sched/solo.c): read on every mailbox operation, written when
     * the mode begins and ends. */
    _Alignas(EMI_CACHELINE) atomic_int solo;   /* 1 + the id of the only scheduler
                                                  touching mailboxes, or 0 */
    bool solo_ok;                   /* membarrier works and the mode is allowed */
    atomic_uint_fast64_t solo_entries, solo_revokes;   /* figures (relaxed) */
    /* Threads that are not schedulers, inside a mailbox operation. */
    _Alignas(EMI_CACHELINE) atomic_int outside_ops;
    _Alignas(EMI_CACHELINE) atomic_uint n_sleeping;
    atomic_uint n_spinning;
    atomic_int stopping;
    atomic_int halt_status;
    pthread_t monitor;              /* preemption's watcher (sched/preempt.c) */
    bool monitor_running;
    atomic_int monitor_stop;

    /* Global run queue: overflow of the local ones and pushes from other threads. */
    _Alignas(EMI_CACHELINE) pthread_mutex_t gq_lock;
    emi_proc *gq_head, *gq_tail;
    atomic_size_t gq_len;

    uint64_t start_ns;
} emi_rt;

extern emi_rt *emi_rt_g;

/* A spin-wait hint to the CPU. */
static inline void emi_cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }

/* A counter with one writer: a relaxed load and store, no locked instruction. */
static inline void emi_stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Debug builds check that a process is never queued twice or run while queued. */
#ifndef NDEBUG
#include <stdio.h>
#include <stdlib.h>
static inline void emi_qmark(emi_proc *p, int to)
{
    if (atomic_exchange_explicit(&p->queued, to, memory_order_relaxed) == to) {
        fprintf(stderr, "ember: process %llu %s twice\n", (unsigned long long)p->pid,
                to ? "queued" : "dequeued");
        abort();
    }
}
#else
static inline void emi_qmark(emi_proc *p, int to) { (void)p, (void)to; }
#endif

/* core/clock.c */
uint64_t emi_now_ns(void);

/* Stack every runtime call may need below the caller's frame (proc/current.c). */
#define EMI_STACK_RESERVE (16 * 1024)

/* proc/current.c: the scheduler of the calling thread and the running process.
 * Not inlined on purpose: a process may resume on another thread, and the compiler
 * must not reuse a thread-local address computed before a switch. */
emi_sched *emi_sched_self(void);
void emi_sched_set_self(emi_sched *s);
emi_proc *emi_current(void);

/* emi_current_at_entry: emi_current without the call, for the first lines of
 * the public calls on every message's path. It is safe only there: the
 * thread-local read comes before anything in the call can switch the process
 * to another thread, the barrier keeps the compiler from moving it later, and
 * nothing after a switch reads it again. Anywhere else, emi_current. */
extern _Thread_local emi_sched *emi_self_sched;
void emi_out_of_stack(emi_proc *p);
static inline __attribute__((always_inline)) emi_proc *emi_current_at_entry(void)
{
    emi_sched *s = emi_self_sched;
    __asm__ volatile("" ::: "memory");
    emi_proc *p = s ? s->current : NULL;
    if (p) {
        uintptr_t sp;
        __asm__("mov %%rsp, %0" : "=r"(sp));
        if (__builtin_expect(sp < s->stack_floor, 0))
            emi_out_of_stack(p);
    }
    return p;
}

/* proc/proc.c */
void emi_credits_return(emi_sched *s);              /* an idle scheduler gives its credits back */
void emi_slots_return(emi_sched *s);                /* credits and cached pid indices, on request */
uint32_t emi_live_processes(void);
emi_proc *emi_proc_lookup(em_pid_t pid);      /* live or recently ended, or NULL */
void emi_proc_destroy(emi_sched *s, emi_proc *p);   /* scheduler context, after exit */
void emi_proc_free(emi_proc *p);                    /* after the grace period */
void emi_proc_reap(emi_proc *p);                    /* at shutdown, never ended */
int emi_spawn_root(emi_sched *s, em_proc_fn fn, const char *name, em_term arg);
/* emi_proc_start: what a new process does first, called by emi_ctx_boot
 * (arch/), which then calls the function itself and emi_proc_end(p, normal)
 * when it returns. Returned in two registers, so that the boot code calls the
 * function with no C frame of ours left above it (see emi_switch_out). */
typedef struct {
    em_proc_fn fn;
    em_term arg;
} emi_entry;
_Static_assert(sizeof(emi_entry) == 16, "emi_ctx_boot takes emi_entry in rax and rdx");
emi_entry emi_proc_start(emi_proc *p);
int emi_pid_table_init(emi_rt *rt);
void emi_pid_table_fini(emi_rt *rt);

/* proc/mailbox.c */
int emi_deliver(em_pid_t to, emi_block *b);         /* takes b in every case */
int emi_deliver_to(emi_proc *p, emi_block *b);      /* same, p already looked up (or NULL) */
void emi_mailbox_close(emi_proc *p);
void emi_mailbox_take(emi_proc *p);                 /* move the inbox to the private queue,
                                                       handling the signals in it */
/* emi_mailbox_remove: drop every queued message that pred accepts (process context). */
void emi_mailbox_remove(emi_proc *p, bool (*pred)(em_term t, uint64_t arg), uint64_t arg);

/* proc/signal.c: links, monitors and exit signals. */
enum emi_sig {
    SIG_NONE = 0,       /* a message */
    SIG_EXIT,           /* em_exit_pid: ['EXIT', From, Reason] */
    SIG_EXIT_LINK,      /* a linked process died: ['EXIT', From, Reason] */
};
/* emi_signal_handle: p (running, in its own context) handles signal block b;
 * true if b stays in the mailbox as a message, false if b was freed. May end p. */
bool emi_signal_handle(emi_proc *p, emi_block *b);
/* emi_signals_check: handle pending signals now (after a switch). May end p.
 * The look is inline (it is made after every switch); emi_signals_take acts. */
void emi_signals_take(emi_proc *p);
static inline void emi_signals_check(emi_proc *p)
{
    /* Relaxed: a hint; emi_signals_take's exchange orders what it reads. */
    if (atomic_load_explicit(&p->sig_pending, memory_order_relaxed))
        emi_signals_take(p);
}
/* emi_relations_fire: scheduler context, as p ends: tell its links and monitors. */
void emi_relations_fire(emi_proc *p);
/* emi_spawn_relate: set up the link or monitor of a spawn before the child runs. */
int emi_spawn_relate(emi_proc *parent, emi_proc *child, int opts, uint64_t *ref_id);
uint64_t emi_monitor_ref_id(em_pid_t target);      /* a fresh monitor ref's counter */
_Noreturn void emi_proc_end(emi_proc *p, em_term reason);
void emi_signals_init(void);                        /* as the runtime starts */
em_term emi_atom_stack_overflow(void);
/* emi_relations_counts: p's links and live monitors; returns its table's bytes. */
size_t emi_relations_counts(emi_proc *p, uint32_t *links, uint32_t *monitored_by);
/* Relations with processes of other nodes (signal.c), for dist/: each acts on the
 * local process `local` from any thread (the dist thread is a QSBR participant). */
void emi_link_exit_deliver(em_pid_t local, em_pid_t from, em_term reason);  /* a link's exit */
void emi_exit2_deliver(em_pid_t local, em_pid_t from, em_term reason);      /* em_exit_pid's */
void emi_down_deliver(em_pid_t local, uint64_t id, em_pid_t from, em_term reason);
int emi_link_add_remote(em_pid_t local, em_pid_t remote);     /* EM_ENOPROC: local is gone */
void emi_link_remove_remote(em_pid_t local, em_pid_t remote);
int emi_monitor_add_remote(em_pid_t local, uint64_t key, em_pid_t watcher);
void emi_monitor_remove_remote(em_pid_t local, uint64_t key);
/* A monitor of a remote process has an id with this bit (and not MON_TAG's). */
#define EMI_REMOTE_MON_BIT (1ull << 62)
#define EMI_REMOTE_MON_MASK ((1ull << 46) - 1)   /* the counter; bits 46-61 hold the target node */

em_pid_t emi_whereis_name(const char *name, size_t len);   /* registry.c: no interning */

/* dist/ hooks, each cheap and a no-op until em_dist_start (dist/hooks.c). */
int emi_dist_send(emi_proc *self, em_pid_t to, em_term msg);
int emi_dist_send_array(emi_proc *self, em_pid_t to, size_t n, const em_term *items);
int emi_dist_link(emi_proc *self, em_pid_t to, bool on);
int emi_dist_monitor(emi_proc *self, em_pid_t to, uint64_t id);
int emi_dist_demonitor(emi_proc *self, uint64_t id);      /* 1 if it was active */
int emi_dist_exit(emi_proc *self, em_pid_t to, em_term reason);
/* As a process ends, for a relation with a remote process. */
void emi_dist_fire_link(em_pid_t self, em_pid_t remote, em_term reason);
void emi_dist_fire_down(em_pid_t self, em_pid_t watcher, uint64_t key, em_term reason);
void emi_dist_shutdown(void);                             /* as the runtime stops */
void emi_pack_thread_fini(void);                          /* a thread that may have packed ends */
/* emi_thread_caches_fini: a thread that sent, received or packed gives back what
 * it keeps for speed (its pool cache and its pack buffer): as a runtime thread
 * ends, or as a thread outside the runtime finishes with it (core/runtime.c). */
void emi_thread_caches_fini(void);
/* While distribution runs, a scheduler with nothing to run waits for network
 * input itself (one hand-off less than waking it from the dist thread): true if
 * it did wait, false if it must sleep on its futex. A busy scheduler looks for
 * input now and then. */
extern atomic_int emi_dist_up;
bool emi_dist_idle_poll(emi_sched *s, int64_t timeout_ns);
void emi_dist_busy_poll(emi_sched *s, bool now);
void emi_dist_poke(emi_sched *s);                         /* wake s out of its poll */
/* QSBR for threads that are not schedulers (the dist thread): between enter and
 * leave it may hold process pointers. */
void emi_qsbr_ext_enter(void);
void emi_qsbr_ext_leave(void);
/* Set while this thread has packed items for peers that wait for a flush. */
extern _Thread_local bool emi_dist_dirty;
void emi_flush_dirty(void);

#define EMI_SPAWN_LINK 1
#define EMI_SPAWN_MONITOR 2
/* emi_preempt_request: p was sent an exit signal; if it is running a long slice
 * on some scheduler, interrupt it (sched/preempt.c). */
void emi_preempt_request(emi_proc *p);

/* sched/solo.c: plain mailbox operations while one scheduler is awake. */
void emi_solo_init(emi_rt *rt);
void emi_solo_try(emi_rt *rt, emi_sched *s);    /* owner's loop: enter if it can */
void emi_solo_leave(emi_rt *rt, emi_sched *s);  /* the owner, before it sleeps */
void emi_solo_revoke(int v, struct emi_sched *self);  /* rt->solo was v: end it or wait
                                                         for its end (self: NULL outside
                                                         the schedulers) */
#define EMI_SOLO_REVOKING 0x10000                       /* in rt->solo: being ended */
/* A test knob, EMBER_SOLO_LINGER=N: in each plain operation, the owner pauses
 * N times between reading a mailbox word and writing it, so that a thread that
 * ends the mode too early (before the owner's operation is over) makes it
 * write over that thread's change (tests/runtime/test_solo.c). 0 normally;
 * written only while no scheduler runs. */
extern unsigned emi_solo_linger;
void emi_solo_linger_now(void);
static inline void emi_solo_linger_maybe(void)
{
    if (__builtin_expect(emi_solo_linger != 0, 0))
        emi_solo_linger_now();
}

/* emi_mb_begin: a mailbox operation begins on the calling thread, whose
 * scheduler is s (NULL for other threads). True: it may read and write mailbox
 * words with plain loads and stores until emi_mb_end, as no other thread
 * touches any. False: it must use atomic read-modify-writes. Every write to a
 * mailbox word happens between the two; reads outside are hints only. */
static inline bool emi_mb_begin(struct emi_sched *s)
{
    emi_rt *rt = emi_rt_g;
    int v;
    if (__builtin_expect(!s, 0)) {
        /* seq_cst: announced before the read below, against solo_try's store
         * of rt->solo then load of outside_ops. */
        atomic_fetch_add_explicit(&rt->outside_ops, 1, memory_order_seq_cst);
        v = atomic_load_explicit(&rt->solo, memory_order_seq_cst);
        if (v)
            emi_solo_revoke(v, NULL);
        return false;
    }
    /* Relaxed, and no fence before the read: a revoker's membarrier is the
     * fence (solo.c). The signal fence only keeps the compiler from swapping
     * them. */
    atomic_store_explicit(&s->in_op, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    /* seq_cst (a plain load on x86): after a waking scheduler's decrement of
     * n_sleeping, against solo_try. */
    v = atomic_load_explicit(&rt->solo, memory_order_seq_cst);
    if (v == s->id + 1)
        return true;
    if (__builtin_expect(v != 0, 0))
        emi_solo_revoke(v, s);
    return false;
}

static inline void emi_mb_end(struct emi_sched *s)
{
    if (__builtin_expect(!s, 0)) {
        /* Release: solo_try, reading 0, sees this thread's operation done. */
        atomic_fetch_sub_explicit(&emi_rt_g->outside_ops, 1, memory_order_release);
        return;
    }
    /* Release: a revoker that reads 0 sees every plain write before it. */
    atomic_store_explicit(&s->in_op, 0, memory_order_release);
}

/* emi_mb_cas: a compare-and-swap of a mailbox word between emi_mb_begin and
 * emi_mb_end, plain when emi_mb_begin allowed it. seq_cst otherwise: parks,
 * senders' pushes and timers' wakes agree on one order of the SLEEP
 * transitions. On failure *expected holds what the word held. */
static inline bool emi_mb_cas(_Atomic(struct emi_block *) *word, struct emi_block **expected,
                              struct emi_block *desired, bool plain)
{
    if (!plain)
        return atomic_compare_exchange_strong_explicit(word, expected, desired,
                                                       memory_order_seq_cst, memory_order_seq_cst);
    /* Relaxed: no other thread touches the word in solo mode, and ending the
     * mode orders these for the others (sched/solo.c). */
    struct emi_block *cur = atomic_load_explicit(word, memory_order_relaxed);
    if (cur != *expected) {
        *expected = cur;
        return false;
    }
    emi_solo_linger_maybe();
    atomic_store_explicit(word, desired, memory_order_relaxed);
    return true;
}

/* sched/sched.c */
void emi_ready(emi_proc *p);                        /* make runnable (any thread) */
/* emi_ready_on: the same, s being the calling thread's scheduler or NULL
 * (inline below); emi_ready_slow: what it does when runnext is taken. */
void emi_ready_slow(emi_sched *s, emi_proc *p);
/* emi_after_resume: the first thing a resumed process does (inline below):
 * park the process that handed it the core, if one did. */
void emi_park_pending(emi_sched *s);
void emi_ready_spawned(emi_sched *s, emi_proc *p);  /* a new process, on its spawner's scheduler */
void emi_runq_push(emi_sched *s, emi_proc *p);      /* owner only */
void emi_wake_idle(void);
int emi_sched_start(emi_rt *rt);
void emi_sched_loop(emi_sched *s);
static inline void emi_after_resume(emi_sched *s)
{
    if (s->pending_park)
        emi_park_pending(s);
}
/* emi_switch_out: process context: give the core back for why; a wait switches
 * straight to runnext when it can (a hand-off).
 *
 * With copy stacks the switch itself is inline in the caller, and
 * emi_switch_target (sched.c), which chooses where to go, has returned before
 * it: every frame on the stack while a process waits is in its saved image, so
 * a function between em_receive and emi_ctx_switch would add its own to every
 * waiting process (32 bytes for the old emi_switch_out). */
/* arch/switch_x86_64.S: save the callee-saved registers and the stack pointer
 * in *save, and resume the context saved at `to`. */
void emi_ctx_switch(void **save, void *to);
#ifdef EMBER_SEPARATE_STACKS
void emi_switch_out(emi_proc *p, int why);
#else
void *emi_switch_target(emi_proc *p, int why);
static inline __attribute__((always_inline)) void emi_switch_out(emi_proc *p, int why)
{
    emi_ctx_switch(&p->sp, emi_switch_target(p, why));
    emi_after_resume(p->sched);
    if (why != WHY_EXIT)
        emi_signals_check(p);
}
#endif
static inline void emi_ready_on(emi_sched *s, emi_proc *p)
{
    if (!s || s->runnext) {
        emi_ready_slow(s, p);
        return;
    }
    /* The common wake: the woken process runs next on the waker's core, with
     * warm caches (sched.c says why). */
    atomic_store_explicit(&p->status, EM_RUNNABLE, memory_order_relaxed);
    emi_qmark(p, 1);
    s->runnext = p;
    /* It runs as soon as the caller waits, and its switch in reads its stack's
     * descriptor and the frames on top of its stack: start loading them now,
     * while the caller finishes its turn. Around a ring of a thousand, where
     * they have left the first-level cache, a hop took 2-5 ns less (medians of
     * alternated runs); in a pingpong, where they never leave it, the four
     * instructions cost about 1 ns a round trip. A prefetch never faults, so
     * a process without a stack yet (xs and sp NULL) needs no test. sp is read
     * atomically (relaxed: any value will do): the scheduler that takes the
     * parked process's stack may be writing its image's address there
     * (stack/image.c). */
    void *sp = __atomic_load_n(&p->sp, __ATOMIC_RELAXED);
    __builtin_prefetch(p->xs, 1);
    __builtin_prefetch(sp, 0);
    __builtin_prefetch((char *)sp + 64, 0);
    __builtin_prefetch((char *)sp + 128, 0);
}
/* Small message blocks. Most messages are a few words ({token, K}, {ping, Pid},
 * an atom), and a send and the receive that frees the block usually run on the
 * same scheduler: each scheduler keeps the blocks of one size that its processes
 * freed, for its processes' next sends. A pop or a push, where the general
 * allocator computes a size class and walks a thread-local pool. Cached blocks
 * have no shared binaries and sig 0; the taker sets term, used, dest and next. */
#define EMI_SMALL_BYTES 72          /* a tuple of 8 immediates */
/* The capacity the pool's size classes give such a block: how the cache tells
 * its blocks from others. */
#define EMI_SMALL_CAP ((uint32_t)(emi_pool_size(sizeof(emi_block) + EMI_SMALL_BYTES) - sizeof(emi_block)))
#define EMI_BLK_CACHE_MAX 512
emi_block *emi_small_block_slow(void);              /* heap.c: a new one */
void emi_small_cache_drain(emi_sched *s);           /* heap.c: as the scheduler goes */
static inline emi_block *emi_small_block(emi_sched *s)
{
    emi_block *b = s->blk_cache;
    if (__builtin_expect(!b, 0))
        return emi_small_block_slow();
    s->blk_cache = b->next;
    s->blk_cache_n--;
    return b;
}
static inline void emi_small_block_free(emi_sched *s, emi_block *b)
{
    if (b->cap != EMI_SMALL_CAP || b->offheap || s->blk_cache_n >= EMI_BLK_CACHE_MAX) {
        emi_block_free(b);
        return;
    }
    b->sig = 0;
    b->next = s->blk_cache;
    s->blk_cache = b;
    s->blk_cache_n++;
}

/* emi_small_tuple_block: short tuple t (see emi_small_tuple_put) copied into a
 * small block from s's cache, or NULL when t is not one or no block can be had.
 * Owner thread only, as the cache is. A send's message and a spawn's argument. */
static inline emi_block *emi_small_tuple_block(emi_sched *s, em_term t, size_t max_bytes)
{
    emi_block *b = emi_small_block(s);
    if (!b)
        return NULL;
    size_t size = emi_small_tuple_put(t, (uint64_t *)b->data, max_bytes < EMI_SMALL_CAP ? max_bytes : EMI_SMALL_CAP);
    if (!size) {
        emi_small_block_free(s, b);
        return NULL;
    }
    b->term = (em_term)(uintptr_t)b->data;
    b->used = (uint32_t)size;
    return b;
}

static inline void emi_charge(emi_proc *p, int32_t n)
{
    if ((p->sched->budget -= n) <= 0) {
        /* The slice is spent: let others run. */
        emi_switch_out(p, WHY_YIELD);
    }
}

/* sched/qsbr.c */
void emi_qsbr_quiescent(emi_sched *s);
void emi_qsbr_offline(emi_sched *s);
void emi_qsbr_retire(emi_sched *s, emi_proc *p);
void emi_qsbr_reclaim(emi_sched *s, bool all);

/* stack/stack.c: binding processes to execution stacks and switching onto them. */
int emi_stacks_init(emi_sched *s);
void emi_stacks_fini(emi_sched *s);
void emi_stack_thread_init(emi_sched *s);          /* on the scheduler's own thread */
void emi_stack_thread_fini(void);                 /* as that thread stops */
int emi_stack_enter(emi_sched *s, emi_proc *p);   /* 0, or EM_ESTATE if the stack is busy */
void emi_stack_prepare(emi_sched *s);              /* a spawn here: the next new stack, ready */
/* emi_stack_leave: after the process switched out (inline below). */
void emi_stack_exit(emi_proc *p);                 /* process ended: drop its stack state */
void emi_stack_vacate(emi_sched *s, emi_proc *p); /* the same, and leave the stack, on the
                                                     thread that ran it last */
size_t emi_stack_bytes(const emi_proc *p);
void emi_stack_switch_in(emi_sched *s, emi_proc *p);  /* scheduler side of a switch */
void emi_stack_switch_out(emi_proc *p);           /* process side of a switch */
void emi_stack_on_entry(emi_proc *p);             /* first thing a new process does */
void emi_stack_proc_free(emi_proc *p);            /* the struct is about to be freed */
/* Saved images (stack/image.c). While a process is away from its execution
 * stack, its `sp` holds its image's address with one of these tags in the low
 * bits. emi_image_save: on s's thread, holding x, copy the frames of x's
 * resident r off x (into an image shared with identical ones, or its own).
 * emi_image_restore: copy p's image back onto x and let go of it. emi_image_drop:
 * free whatever image p holds (any thread, p not running). emi_image_slots_fini:
 * s's table of shared images, as it stops. */
#define EMI_IMG_OWN 1u
#define EMI_IMG_SHARED 2u
#define EMI_IMG_TAGS 3u
void emi_image_share_init(void);                   /* before the schedulers start */
void emi_image_save(emi_sched *s, emi_proc *r, const emi_xstack *x);
void emi_image_restore(emi_proc *p, const emi_xstack *x);
void emi_image_drop(emi_proc *p);
void emi_image_slots_fini(emi_sched *s);
/* emi_stack_handoff: from process p's context, make q ready to run on its stack
 * (q not on p's stack, its stack free); false if it cannot be done directly. */
bool emi_stack_handoff(emi_sched *s, emi_proc *p, emi_proc *q);
#ifndef EMBER_SEPARATE_STACKS
static inline void emi_stack_leave(emi_sched *s, emi_proc *p)
{
    (void)s;
    /* Release: the next user of the stack sees our frames and images. */
    atomic_store_explicit(&p->xs->busy, 0, memory_order_release);
}
/* emi_stack_sole: s owns x and exactly one live process is bound to it (the one
 * s is about to run there), so no other thread can claim it. Acquire on `gone`
 * pairs with the release of a thread that unbound a process: its last writes to
 * the stack's fields come first. */
static inline bool emi_stack_sole(const struct emi_sched *s, emi_xstack *x)
{
    return x->owner == s && x->bound - atomic_load_explicit(&x->gone, memory_order_acquire) == 1;
}
_Noreturn void emi_stack_sole_broken(void);
/* emi_stack_take_sole: take a sole stack. Nobody can hold it; if somebody does,
 * the rule above is broken, and two processes would corrupt each other's frames:
 * stop loudly instead (relaxed: the line is ours to write anyway). */
static inline void emi_stack_take_sole(emi_xstack *x)
{
    if (__builtin_expect(atomic_load_explicit(&x->busy, memory_order_relaxed) != 0, 0))
        emi_stack_sole_broken();
    /* Relaxed: no one else claims a sole stack (see emi_xstack); whoever ran
     * its process last handed the process, and the stack with it, to us
     * through a release. */
    atomic_store_explicit(&x->busy, 1, memory_order_relaxed);
}
/* emi_stack_claim_resident: the common case of emi_stack_handoff, inline: q's
 * frames still sit on its own stack (not p's), and nobody runs there now. The
 * resident is read only once the stack is ours: before that, another process
 * bound to it may run there on another thread, save q's frames and end. */
static inline bool emi_stack_claim_resident(const struct emi_sched *s, emi_proc *p, emi_proc *q)
{
    emi_xstack *x = q->xs;
    if (!x)
        return false;
    if (emi_stack_sole(s, x)) {
        /* q is the only process bound to x, so nobody else changes it. */
        if (x->resident != q)
            return false;
        emi_stack_take_sole(x);
        return true;
    }
    /* Acquire pairs with the release in emi_stack_leave, as in emi_stack_enter. */
    if (x == p->xs || atomic_load_explicit(&x->busy, memory_order_relaxed) ||
        atomic_exchange_explicit(&x->busy, 1, memory_order_acquire))
        return false;
    if (x->resident == q)
        return true;
    /* Another process has used the stack since q left it: emi_stack_handoff
     * restores q's frames. Release, as in emi_stack_leave. */
    atomic_store_explicit(&x->busy, 0, memory_order_release);
    return false;
}
#else
static inline void emi_stack_leave(emi_sched *s, emi_proc *p) { (void)s, (void)p; }
static inline bool emi_stack_claim_resident(const struct emi_sched *s, emi_proc *p, emi_proc *q)
{
    (void)s, (void)p, (void)q;
    return false;
}
#endif

/* fault/code.c: whose code an instruction address is. */
void emi_code_init(void);
bool emi_code_in_runtime(uintptr_t pc);   /* libember itself */
bool emi_code_in_program(uintptr_t pc);   /* the program (and modules it added) */
int emi_code_add_program(const void *lo, const void *hi);

/* fault/fault.c: a faulting process dies alone. */
void emi_fault_install(void);
void emi_fault_uninstall(void);
void emi_fault_thread_init(void);         /* its alternate signal stack */
void emi_fault_thread_fini(void);
void emi_fault_entry(void);               /* via emi_fault_tramp: end the process */
/* emi_fatal: a broken invariant inside the runtime: say what, and stop the node. */
_Noreturn void emi_fatal(const char *what);

/* arch/trap_x86_64.S: where a signal handler sends an interrupted process. */
void emi_fault_tramp(void);
void emi_preempt_tramp(void);
extern char emi_preempt_tramp_end[];
static inline bool emi_code_in_preempt_tramp(uintptr_t pc)
{
    return pc >= (uintptr_t)emi_preempt_tramp && pc < (uintptr_t)emi_preempt_tramp_end;
}

/* sched/preempt.c: interrupting a process that keeps its scheduler too long. */
int emi_preempt_start(emi_rt *rt);
void emi_preempt_stop(emi_rt *rt);
void emi_preempt_entry(void);             /* via emi_preempt_tramp: yield */
extern uint32_t emi_xsave_size;           /* bytes the trampoline reserves for XSAVE */
extern uint64_t emi_xsave_mask;           /* the components it saves */

/* timer/timer.c */
int emi_timers_init(emi_sched *s);
void emi_timers_fini(emi_sched *s);
void emi_timers_run(emi_sched *s, uint64_t now);   /* fire what is due */
int64_t emi_timers_next(emi_sched *s);             /* ns until the next one, -1 if none */
int emi_timer_arm_wait(emi_proc *p, uint64_t deadline_ns);
void emi_timer_cancel_wait(emi_proc *p);

/* names/registry.c */
int emi_registry_init(void);
void emi_registry_fini(void);
void emi_registry_drop(emi_proc *p);

#endif
