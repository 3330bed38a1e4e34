/*
 * runtime.c - starting and stopping a node: configuration, the scheduler threads,
 * and the teardown that returns every byte the runtime took.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rt.h"
#include "mem/pool.h"

emi_rt *emi_rt_g;

#define DEFAULT_MAX_PROCESSES (4u * 1024u * 1024u)
#define MAX_PROCESSES_CEILING ((1u << 28) - 2)

void em_config_init(em_config *c)
{
    memset(c, 0, sizeof *c);
    c->schedulers = 0;
    c->max_processes = DEFAULT_MAX_PROCESSES;
    c->reductions = 4000;
    c->stack_size = 1024 * 1024;
    c->time_slice_us = 1000;
    c->max_term_bytes = 64u * 1024u * 1024u;
}

static int check_config(em_config *c)
{
    if (c->schedulers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->schedulers = n > 0 ? (int)n : 1;
        if (c->schedulers > EMI_MAX_SCHEDULERS)
            c->schedulers = EMI_MAX_SCHEDULERS;
    }
    if (c->schedulers < 1 || c->schedulers > EMI_MAX_SCHEDULERS)
        return EM_EINVAL;
    if (c->max_processes < 1 || c->max_processes > MAX_PROCESSES_CEILING)
        return EM_EINVAL;
    if (c->reductions < 1 || c->reductions > (1u << 30))
        return EM_EINVAL;
    if (c->time_slice_us != 0 && (c->time_slice_us < 100 || c->time_slice_us > 1000000))
        return EM_EINVAL;
    if (c->stack_size < 64 * 1024 || c->stack_size > (1ull << 32))
        return EM_EINVAL;
    if (c->max_term_bytes < 64 || c->max_term_bytes > UINT32_MAX)
        return EM_EINVAL;
    return 0;
}

static void sched_free(emi_sched *s)
{
    if (!s)
        return;
    emi_qsbr_reclaim(s, true);
    emi_small_cache_drain(s);
    emi_timers_fini(s);
    emi_stacks_fini(s);
    free(s->pid_cache);
    free(s);
}

static emi_sched *sched_new(int id)
{
    emi_sched *s = aligned_alloc(EMI_CACHELINE, (sizeof(emi_sched) + EMI_CACHELINE - 1) &
                                                    ~(size_t)(EMI_CACHELINE - 1));
    if (!s)
        return NULL;
    memset(s, 0, sizeof *s);
    s->id = id;
    s->rand = 0x9E3779B9u * (unsigned)(id + 1);
    s->pid_cache = malloc(256 * sizeof(uint32_t));
    if (!s->pid_cache || emi_stacks_init(s) != 0 || emi_timers_init(s) != 0) {
        sched_free(s);
        return NULL;
    }
    return s;
}

static void rt_free(emi_rt *rt)
{
    if (!rt)
        return;
    /* Processes still in the table were stopped by em_halt: reap them. */
    if (rt->table) {
        uint32_t end = atomic_load_explicit(&rt->pid_next, memory_order_relaxed);
        for (uint32_t i = 1; i < end && i <= rt->cfg.max_processes; i++) {
            emi_proc *p = atomic_load_explicit(&rt->table[i], memory_order_relaxed);
            if (p) {
                emi_registry_drop(p);
                emi_proc_reap(p);
            }
        }
    }
    /* Whatever still waits in the global queue was reaped above. */
    rt->gq_head = rt->gq_tail = NULL;
    if (rt->scheds)
        for (int i = 0; i < rt->nsched; i++)
            sched_free(rt->scheds[i]);
    free(rt->scheds);
    emi_pid_table_fini(rt);
    pthread_mutex_destroy(&rt->gq_lock);
    emi_registry_fini();
    emi_entries_fini();
    emi_block_cache_fini();
    emi_pool_depot_fini();
    free(rt);
}

void emi_thread_caches_fini(void)
{
    emi_block_cache_fini();
    emi_pack_thread_fini();
}

static void *sched_thread(void *arg)
{
    emi_sched *s = arg;
    emi_sched_loop(s);
    emi_thread_caches_fini();
    return NULL;
}

int em_run(const em_config *cfg, em_proc_fn root, em_term arg)
{
    if (!root)
        return EM_EINVAL;
    if (emi_rt_g)
        return EM_ESTATE;
    emi_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return EM_ENOMEM;
    if (cfg)
        rt->cfg = *cfg;
    else
        em_config_init(&rt->cfg);
    int rc = check_config(&rt->cfg);
    if (rc) {
        free(rt);
        return rc;
    }
    pthread_mutex_init(&rt->gq_lock, NULL);
    atomic_init(&rt->epoch, 1); /* 0 means "offline" in a scheduler's slot */
    rt->nsched = rt->cfg.schedulers;
    rt->start_ns = emi_now_ns();
    emi_rt_g = rt;
    rc = emi_pid_table_init(rt);
    rt->scheds = calloc((size_t)rt->nsched, sizeof(emi_sched *));
    if (rc == 0 && !rt->scheds)
        rc = EM_ENOMEM;
    for (int i = 0; rc == 0 && i < rt->nsched; i++) {
        rt->scheds[i] = sched_new(i);
        if (!rt->scheds[i])
            rc = EM_ENOMEM;
    }
    if (rc == 0)
        rc = emi_registry_init();
    emi_solo_init(rt);
    emi_signals_init();
    if (rc == 0)
        rc = emi_spawn_root(rt->scheds[0], root, "root", arg);
    if (rc) {
        rt_free(rt);
        emi_rt_g = NULL;
        return rc;
    }
    emi_fault_install();
    rt->scheds[0]->thread = pthread_self();
    int started = 1;
    for (int i = 1; i < rt->nsched; i++) {
        if (pthread_create(&rt->scheds[i]->thread, NULL, sched_thread, rt->scheds[i]) != 0)
            break;
        started++;
    }
    if (started < rt->nsched) {
        /* No thread for a scheduler: stop rather than leave its queues unserved. */
        fprintf(stderr, "ember: started %d of %d scheduler threads\n", started, rt->nsched);
        atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
        atomic_store_explicit(&rt->halt_status, EM_ENOMEM, memory_order_relaxed);
        emi_wake_idle();
    }
    emi_preempt_start(rt);
    emi_sched_loop(rt->scheds[0]);
    emi_preempt_stop(rt);   /* before the threads it signals are joined */
    for (int i = 1; i < started; i++)
        pthread_join(rt->scheds[i]->thread, NULL);
    emi_dist_shutdown();   /* its thread may deliver to processes until here */
    emi_pack_thread_fini();
    int status = atomic_load_explicit(&rt->halt_status, memory_order_relaxed);
    emi_fault_uninstall();
    rt_free(rt);
    emi_rt_g = NULL;
    return status;
}

void em_halt(int status)
{
    emi_proc *p = emi_current();
    emi_rt *rt = emi_rt_g;
    if (!p || !rt)
        return;
    atomic_store_explicit(&rt->halt_status, status, memory_order_relaxed);
    /* seq_cst: schedulers that read `stopping` also see the status. */
    atomic_store_explicit(&rt->stopping, 1, memory_order_seq_cst);
    emi_wake_idle();
    emi_switch_out(p, WHY_HALT);
}

/* Atoms outlive any one runtime (a program may keep them in statics across
 * em_run calls), so they are freed when the program ends. */
__attribute__((destructor)) static void atoms_at_exit(void) { emi_atoms_fini(); }
