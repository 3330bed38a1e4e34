/*
 * proc.c - the life of a process: spawn, the first frame, switching out, exit,
 * and the process table that turns a pid into a process.
 *
 * A pid is index | serial << 28. The table maps an index to the live process; the
 * serial changes each time an index is reused, so an old pid never reaches a new
 * process. Indices are handed out from a small per-scheduler cache backed by a
 * global stack under a mutex, so spawning rarely touches shared state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "core/rt.h"
#include "mem/pool.h"
#include "proc/relations.h"

#define PID_INDEX_BITS 28
#define PID_INDEX_MAX ((1u << PID_INDEX_BITS) - 1)
#define PID_SERIAL_MASK 0xFFFFFu
#define PID_CACHE_MAX 256
#define PID_CACHE_BATCH 64

static size_t table_bytes(emi_rt *rt)
{
    return ((size_t)rt->cfg.max_processes + 1) * (sizeof(*rt->table) + sizeof(*rt->serials));
}

int emi_pid_table_init(emi_rt *rt)
{
    /* One mapping for both arrays: untouched pages cost nothing, so a limit of
     * millions costs only what is used. */
    void *m = mmap(NULL, table_bytes(rt), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return EM_ENOMEM;
    /* Huge pages where the kernel has them: a million spawns took 3,000 page
     * faults of 10-20 µs each on this kind of guest to grow the two arrays 4 KiB
     * at a time (30-60 ns a spawn); in 2 MiB pages, six. A small node pays 2 MiB
     * for each array instead of a page. Only a hint; it may fail. */
    (void)madvise(m, table_bytes(rt), MADV_HUGEPAGE);
    rt->table = m;
    rt->serials = (uint32_t *)((char *)m + ((size_t)rt->cfg.max_processes + 1) * sizeof(*rt->table));
    rt->pid_free = NULL;
    rt->pid_free_len = 0;
    atomic_init(&rt->pid_next, 1); /* index 0 is never used: pid 0 means "no process" */
    pthread_mutex_init(&rt->pid_lock, NULL);
    return 0;
}

void emi_pid_table_fini(emi_rt *rt)
{
    if (rt->table)
        munmap(rt->table, table_bytes(rt));
    rt->table = NULL;
    free(rt->pid_free);
    rt->pid_free = NULL;
    pthread_mutex_destroy(&rt->pid_lock);
}

/* Move n of s's cached indices to the global free list (nothing moves if the
 * list cannot grow). */
static void pid_cache_spill(emi_rt *rt, emi_sched *s, uint32_t n)
{
    pthread_mutex_lock(&rt->pid_lock);
    uint32_t *f = realloc(rt->pid_free, (rt->pid_free_len + n) * sizeof(uint32_t));
    if (f) {
        rt->pid_free = f;
        while (n--)
            f[rt->pid_free_len++] = s->pid_cache[--s->pid_cache_len];
    }
    pthread_mutex_unlock(&rt->pid_lock);
}

static uint32_t pid_index_alloc(emi_rt *rt, emi_sched *s)
{
    if (s->pid_cache_len)
        return s->pid_cache[--s->pid_cache_len];
    pthread_mutex_lock(&rt->pid_lock);
    while (rt->pid_free_len && s->pid_cache_len < PID_CACHE_BATCH)
        s->pid_cache[s->pid_cache_len++] = rt->pid_free[--rt->pid_free_len];
    pthread_mutex_unlock(&rt->pid_lock);
    if (s->pid_cache_len)
        return s->pid_cache[--s->pid_cache_len];
    /* Indices never used, a batch at a time, so that a burst of spawns takes
     * the lock above once in PID_CACHE_BATCH, not at every spawn. Relaxed: the
     * counter only hands out distinct numbers. */
    uint32_t idx = atomic_fetch_add_explicit(&rt->pid_next, PID_CACHE_BATCH, memory_order_relaxed);
    if (idx > rt->cfg.max_processes) {
        atomic_fetch_sub_explicit(&rt->pid_next, PID_CACHE_BATCH, memory_order_relaxed);
        return 0;
    }
    uint32_t last = idx + (PID_CACHE_BATCH - 1);
    if (last > rt->cfg.max_processes)
        last = rt->cfg.max_processes;
    /* The lowest comes out first: the table then grows in order. */
    for (uint32_t i = last; i > idx; i--)
        s->pid_cache[s->pid_cache_len++] = i;
    return idx;
}

/* A spawn at the limit asks the schedulers to give back the slots and indices
 * they keep (their loops answer: emi_slots_return) and waits a moment for them;
 * it tries ASK_TRIES times (about 2 ms) before it reports the limit. */
#define ASK_TRIES 200

static void ask_slots_back(emi_rt *rt)
{
    /* Relaxed: a request; the counts and the free list carry what comes back. */
    atomic_store_explicit(&rt->slots_wanted, 1, memory_order_relaxed);
    struct timespec ts = {0, 10000};
    nanosleep(&ts, NULL);
}

/* Every index has been handed out once: free ones may sit in other schedulers'
 * caches. Ask them back (their loops flush them: emi_slots_return) and look
 * again for a moment. */
static uint32_t pid_index_alloc_hard(emi_rt *rt, emi_sched *s)
{
    uint32_t idx = 0;
    for (int tries = 0; tries < ASK_TRIES && !idx; tries++) {
        ask_slots_back(rt);
        idx = pid_index_alloc(rt, s);
    }
    atomic_store_explicit(&rt->slots_wanted, 0, memory_order_relaxed);
    return idx;
}

/* A scheduler's loop, asked by a spawn at the limit: give back the process
 * slots (credits) and table indices kept here. */
void emi_slots_return(emi_sched *s)
{
    emi_rt *rt = emi_rt_g;
    emi_credits_return(s);
    if (s->pid_cache_len)
        pid_cache_spill(rt, s, s->pid_cache_len);
}

static void pid_index_free(emi_rt *rt, emi_sched *s, uint32_t idx)
{
    rt->serials[idx] = (rt->serials[idx] + 1) & PID_SERIAL_MASK;
    if (s->pid_cache_len == PID_CACHE_MAX) {
        pid_cache_spill(rt, s, PID_CACHE_BATCH);
        if (s->pid_cache_len == PID_CACHE_MAX) {
            /* Out of memory for the free list: leak the index rather than crash. */
            return;
        }
    }
    s->pid_cache[s->pid_cache_len++] = idx;
}

emi_proc *emi_proc_lookup(em_pid_t pid)
{
    emi_rt *rt = emi_rt_g;
    uint32_t idx = em_pid_index(pid);
    if (!rt || em_pid_node(pid) != 0 || idx == 0 || idx > rt->cfg.max_processes)
        return NULL;
    /* Acquire pairs with the release in spawn: the struct's fields are set. */
    emi_proc *p = atomic_load_explicit(&rt->table[idx], memory_order_acquire);
    if (!p || p->pid != pid)
        return NULL;
    return p;
}

/* Process slots. The shared count includes the slots each scheduler holds in
 * reserve (its credits), so a spawn or an exit usually touches only the
 * scheduler's own counter. Credits come in batches while the limit is far, one
 * at a time near it (so the limit stays exact), and go back when a scheduler has
 * too many or goes idle; the runtime ends when the count, credits returned,
 * reaches zero. */
#define CREDIT_BATCH 64u

static void credits_set(emi_sched *s, uint32_t v)
{
    /* One writer; relaxed, readers only sum a figure. */
    atomic_store_explicit(&s->credits, v, memory_order_relaxed);
}

static bool credits_elsewhere(emi_rt *rt, emi_sched *s)
{
    for (int i = 0; i < rt->nsched; i++)
        /* Relaxed: a hint; the retry reads the count itself. */
        if (rt->scheds[i] != s && atomic_load_explicit(&rt->scheds[i]->credits, memory_order_relaxed))
            return true;
    return false;
}

static int slot_take(emi_rt *rt, emi_sched *s)
{
    uint32_t c = atomic_load_explicit(&s->credits, memory_order_relaxed);
    if (c) {
        credits_set(s, c - 1);
        return 0;
    }
    /* Relaxed: the count is a limit, not a synchronisation point. */
    uint32_t n = atomic_fetch_add_explicit(&rt->proc_count, CREDIT_BATCH, memory_order_relaxed);
    if (n + CREDIT_BATCH <= rt->cfg.max_processes) {
        credits_set(s, CREDIT_BATCH - 1);
        return 0;
    }
    atomic_fetch_sub_explicit(&rt->proc_count, CREDIT_BATCH, memory_order_relaxed);
    for (int tries = 0;; tries++) {
        n = atomic_fetch_add_explicit(&rt->proc_count, 1, memory_order_relaxed);
        if (n < rt->cfg.max_processes) {
            if (tries)
                atomic_store_explicit(&rt->slots_wanted, 0, memory_order_relaxed);
            return 0;
        }
        atomic_fetch_sub_explicit(&rt->proc_count, 1, memory_order_relaxed);
        /* At the limit, unless other schedulers sit on credits of processes
         * that ended there: ask for them back (their loops return them) and
         * look again for a moment, so the limit counts live processes only. */
        if (tries == ASK_TRIES || !credits_elsewhere(rt, s)) {
            atomic_store_explicit(&rt->slots_wanted, 0, memory_order_relaxed);
            return EM_ESYSLIMIT;
        }
        ask_slots_back(rt);
    }
}

/* Give back n slots; true when that leaves the node with no process at all. */
static bool slots_give(emi_rt *rt, uint32_t n)
{
    /* acq_rel: the last exit publishes everything before the runtime stops. */
    return n && atomic_fetch_sub_explicit(&rt->proc_count, n, memory_order_acq_rel) == n;
}

static void stop_if_empty(emi_rt *rt, bool empty)
{
    if (empty) {
        atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
        emi_wake_idle();
    }
}

void emi_credits_return(emi_sched *s)
{
    uint32_t c = atomic_load_explicit(&s->credits, memory_order_relaxed);
    if (c) {
        credits_set(s, 0);
        stop_if_empty(emi_rt_g, slots_give(emi_rt_g, c));
    }
}

static void slot_put(emi_rt *rt, emi_sched *s)
{
    uint32_t c = atomic_load_explicit(&s->credits, memory_order_relaxed) + 1;
    /* Near the limit, a slot goes straight back: another scheduler may need it. */
    if (atomic_load_explicit(&rt->proc_count, memory_order_relaxed) + (uint32_t)rt->nsched * 2 * CREDIT_BATCH >
        rt->cfg.max_processes) {
        credits_set(s, c - 1);
        stop_if_empty(rt, slots_give(rt, 1));
        return;
    }
    if (c > 2 * CREDIT_BATCH) {
        credits_set(s, c - CREDIT_BATCH);
        stop_if_empty(rt, slots_give(rt, CREDIT_BATCH));
        return;
    }
    credits_set(s, c);
    /* A credit held here could hide the node's last exit: with nothing queued
     * locally, hand the credits back now (idle() does too). */
    if (!s->runnext && s->lifo_head == s->lifo_tail &&
        /* Relaxed: a hint; idle() returns credits in any case. */
        atomic_load_explicit(&s->runq_head, memory_order_relaxed) ==
            atomic_load_explicit(&s->runq_tail, memory_order_relaxed))
        emi_credits_return(s);
}

uint32_t emi_live_processes(void)
{
    emi_rt *rt = emi_rt_g;
    uint32_t n = atomic_load_explicit(&rt->proc_count, memory_order_relaxed);
    for (int i = 0; i < rt->nsched; i++) {
        uint32_t c = atomic_load_explicit(&rt->scheds[i]->credits, memory_order_relaxed);
        n = n > c ? n - c : 0;
    }
    return n;
}

/* Create a process on scheduler s (the caller's, or the root's before start). */
static int proc_create(emi_sched *s, em_proc_fn fn, const char *name, em_term arg, em_pid_t *out,
                       emi_proc *parent, int opts, uint64_t *ref_id)
{
    emi_rt *rt = emi_rt_g;
    if (!fn)
        return EM_EINVAL;
    int err = slot_take(rt, s);
    if (err)
        return err;
    err = EM_ENOMEM;
    emi_proc *p = emi_pool_alloc(sizeof(emi_proc));
    if (!p)
        goto fail;
    memset(p, 0, sizeof *p);
    if ((err = emi_entry_intern(s, fn, name ? name : "?", &p->entry)) != 0)
        goto fail;
    err = EM_ENOMEM;
    p->last.arg = arg;
    if (emi_is_box(arg)) {
        /* A short tuple (skynet's {Parent, Num, Size}) goes into a small block
         * from this scheduler's cache, as a send's message does; only the
         * scheduler's own thread may take one (not a spawn before the start). */
        emi_block *b = NULL;
        if (s == emi_self_sched && emi_box_type(arg) == BOX_ARRAY)
            b = emi_small_tuple_block(s, arg, rt->cfg.max_term_bytes);
        if (!b && !(b = emi_block_for_term(arg, rt->cfg.max_term_bytes, &err)))
            goto fail;
        emi_heap_adopt(&p->heap, b);
        p->last.arg = b->term;
    } else if (arg == EM_NONE) {
        err = EM_EINVAL;
        goto fail;
    }
    uint32_t idx = pid_index_alloc(rt, s);
    if (!idx)
        idx = pid_index_alloc_hard(rt, s);
    if (!idx) {
        err = EM_ESYSLIMIT;
        goto fail;
    }
    p->pid = (em_pid_t)idx | ((em_pid_t)rt->serials[idx] << PID_INDEX_BITS);
    if (opts && (err = emi_spawn_relate(parent, p, opts, ref_id)) != 0) {
        pid_index_free(rt, s, idx);
        goto fail;
    }
    p->sched = s;
    atomic_init(&p->status, EM_RUNNABLE);
    /* Release: whoever finds p in the table sees it fully built. */
    atomic_store_explicit(&rt->table[idx], p, memory_order_release);
    emi_stat_add(&s->stat_spawned, 1);
    if (out)
        *out = p->pid;
    emi_stack_prepare(s);
    emi_ready_spawned(s, p);
    return 0;
fail:
    if (p) {
        emi_heap_fini(&p->heap);
        emi_proc_free(p);   /* never published: no grace period to wait for */
    }
    slot_put(rt, s);
    return err;
}

int emi_spawn_root(emi_sched *s, em_proc_fn fn, const char *name, em_term arg)
{
    return proc_create(s, fn, name, arg, NULL, NULL, 0, NULL);
}

int em_spawn_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out)
{
    emi_proc *self = emi_current();
    if (!self)
        return EM_ENOTPROC;
    int rc = proc_create(self->sched, fn, name, arg, out, NULL, 0, NULL);
    if (rc == 0)
        emi_charge(self, 10);
    return rc;
}

int em_spawn_link_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out)
{
    emi_proc *self = emi_current();
    if (!self)
        return EM_ENOTPROC;
    int rc = proc_create(self->sched, fn, name, arg, out, self, EMI_SPAWN_LINK, NULL);
    if (rc == 0)
        emi_charge(self, 10);
    return rc;
}

int em_spawn_monitor_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out,
                           em_term *ref)
{
    emi_proc *self = emi_current();
    if (!self)
        return EM_ENOTPROC;
    /* The ref is built first (its counter filled in after): once the child
     * exists, nothing may fail. */
    em_term r = emi_ref_box(&self->heap, 0, 0);
    if (r == EM_NONE)
        return EM_ENOMEM;
    uint64_t id = 0;
    int rc = proc_create(self->sched, fn, name, arg, out, self, EMI_SPAWN_MONITOR, &id);
    if (rc == 0) {
        emi_box(r)[2] = id;
        if (ref)
            *ref = r;
        emi_charge(self, 10);
    }
    return rc;
}

emi_entry emi_proc_start(emi_proc *p)
{
    emi_stack_on_entry(p);
    emi_after_resume(p->sched);
    emi_signals_check(p);   /* an exit signal may have come before the first run */
    return (emi_entry){emi_entry_fn(p->entry), p->last.arg};
}

void em_yield(void)
{
    emi_proc *p = emi_current();
    if (p) {
        atomic_fetch_add_explicit(&p->reductions, 1, memory_order_relaxed);
        emi_switch_out(p, WHY_YIELD);
    }
}

em_pid_t em_self(void)
{
    emi_proc *p = emi_current();
    return p ? p->pid : 0;
}

bool em_is_alive(em_pid_t pid)
{
    emi_proc *p = emi_proc_lookup(pid);
    /* rel_dead is set after the name and the mailbox are gone and before any
     * link or monitor hears of the end: once this says false, nothing of the
     * process is visible any more, and whoever got its DOWN finds it dead.
     * Acquire pairs with the release in emi_rel_take. */
    return p && !atomic_load_explicit(&p->rel_dead, memory_order_acquire);
}

/* Scheduler context, right after the process switched out for the last time
 * and left its stack (emi_stack_vacate). */
void emi_proc_destroy(emi_sched *s, emi_proc *p)
{
    emi_rt *rt = emi_rt_g;
    /* seq_cst store then load, against em_register's store of the name then load
     * of the status: at least one side sees the other, so a name given to a
     * dying process is always taken back (by us or by em_register). */
    atomic_store_explicit(&p->status, EM_EXITING, memory_order_seq_cst);
    /* seq_cst: em_register makes the ext before it stores the name. */
    emi_proc_ext *x = atomic_load_explicit(&p->ext, memory_order_seq_cst);
    if (x && atomic_load_explicit(&x->name, memory_order_seq_cst) != EM_NONE)
        emi_registry_drop(p);
    emi_timer_cancel_wait(p);
    emi_mailbox_close(p);
    /* Links and monitors fire while the process is still in the table (marked
     * EXITING), so a demonitor can find it; the reason lives in the heap. */
    emi_relations_fire(p);
    uint32_t idx = em_pid_index(p->pid);
    /* Release: a later process in this slot is published after this store. */
    atomic_store_explicit(&rt->table[idx], NULL, memory_order_release);
    emi_heap_fini(&p->heap);
    pid_index_free(rt, s, idx);
    emi_qsbr_retire(s, p);
    slot_put(rt, s);
}

/* At shutdown: a process that never ended (em_halt) is torn down in place. */
void emi_proc_reap(emi_proc *p)
{
    emi_mailbox_close(p);
    emi_stack_exit(p);   /* first: an image of its own counts in the heap's bytes */
    emi_heap_fini(&p->heap);
    emi_proc_free(p);
}

void emi_proc_free(emi_proc *p)
{
    emi_stack_proc_free(p);
    emi_image_drop(p);
    emi_proc_ext *x = emi_proc_ext_peek(p);
    if (x) {
        /* Links and monitors are left only by a process that never ran to its
         * end: one reaped at shutdown, or one whose spawn failed. */
        emi_reltab_free(x->rels);
        emi_pool_free(x, sizeof *x);
    }
    emi_pool_free(p, sizeof(emi_proc));
}

emi_proc_ext *emi_proc_ext_get(emi_proc *p)
{
    emi_proc_ext *x = emi_proc_ext_peek(p);
    if (x)
        return x;
    if (!(x = emi_pool_alloc(sizeof *x)))
        return NULL;
    memset(x, 0, sizeof *x);
    atomic_init(&x->name, EM_NONE);
    emi_proc_ext *none = NULL;
    /* Release publishes the fields set above; acquire, on failure, another
     * thread's ext, which we use instead. seq_cst on success: em_register's
     * order of the ext, the name and the status against emi_proc_destroy. */
    if (atomic_compare_exchange_strong_explicit(&p->ext, &none, x, memory_order_seq_cst,
                                                memory_order_acquire))
        return x;
    emi_pool_free(x, sizeof *x);
    return none;
}
