/*
 * info.c - introspection: the figures an observer shows about processes,
 * schedulers and the node. Everything here reads other threads' counters with
 * relaxed loads: the answers are snapshots, consistent enough for people.
 */
#include <stdio.h>
#include <unistd.h>

#include "core/rt.h"

const char *em_status_name(em_status s)
{
    switch (s) {
    case EM_RUNNING: return "running";
    case EM_RUNNABLE: return "runnable";
    case EM_WAITING: return "waiting";
    case EM_EXITING: return "exiting";
    }
    return "unknown";
}

static size_t proc_memory(emi_proc *p)
{
    /* The heap's figure counts the process's own saved stack image too. */
    emi_proc_ext *x = emi_proc_ext_peek(p);
    return sizeof(emi_proc) + (x ? sizeof *x : 0) + atomic_load_explicit(&p->heap.bytes, memory_order_relaxed) +
           emi_stack_bytes(p);
}

size_t em_processes(em_pid_t *out, size_t cap)
{
    emi_rt *rt = emi_rt_g;
    if (!rt || !emi_current())
        return 0;
    size_t n = 0;
    uint32_t end = atomic_load_explicit(&rt->pid_next, memory_order_relaxed);
    for (uint32_t i = 1; i < end && i <= rt->cfg.max_processes; i++) {
        /* Acquire: the struct is built; QSBR keeps it alive while we read. */
        emi_proc *p = atomic_load_explicit(&rt->table[i], memory_order_acquire);
        if (!p)
            continue;
        if (n < cap)
            out[n] = p->pid;
        n++;
    }
    return n;
}

int em_process_info(em_pid_t pid, em_proc_info *out)
{
    if (!out)
        return EM_EINVAL;
    if (!emi_current())
        return EM_ENOTPROC;
    emi_proc *p = emi_proc_lookup(pid);
    if (!p)
        return EM_ENOPROC;
    /* The sentinels carry a count of 0. */
    size_t inbox = emi_inbox_count(atomic_load_explicit(&p->inbox, memory_order_relaxed));
    out->pid = pid;
    out->status = (em_status)atomic_load_explicit(&p->status, memory_order_relaxed);
    emi_proc_ext *x = emi_proc_ext_peek(p);
    out->mailbox_len = atomic_load_explicit(&p->mq_len, memory_order_relaxed) + inbox +
                       (x ? (size_t)atomic_load_explicit(&x->msgs_over, memory_order_relaxed) : 0);
    out->memory_bytes = proc_memory(p);
    out->reductions = atomic_load_explicit(&p->reductions, memory_order_relaxed);
    out->entry = emi_entry_name(p->entry);
    out->name = emi_proc_name(p);
    out->scheduler = atomic_load_explicit(&p->sched_id, memory_order_relaxed);
    out->memory_bytes += emi_relations_counts(p, &out->links, &out->monitored_by);
    out->trap_exit = emi_proc_flag(p, EMI_PF_TRAP_EXIT);
    return 0;
}

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

int em_system_info_get(em_system_info *out)
{
    emi_rt *rt = emi_rt_g;
    if (!out)
        return EM_EINVAL;
    if (!rt || !emi_current())
        return EM_ENOTPROC;
    *out = (em_system_info){0};
    out->schedulers = rt->nsched;
    out->process_count = emi_live_processes();
    out->process_limit = rt->cfg.max_processes;
    for (int i = 0; i < rt->nsched; i++) {
        emi_sched *s = rt->scheds[i];
        out->spawned_total += atomic_load_explicit(&s->stat_spawned, memory_order_relaxed);
        out->messages_sent += atomic_load_explicit(&s->stat_sent, memory_order_relaxed);
        out->sends_to_dead += atomic_load_explicit(&s->stat_dead, memory_order_relaxed);
    }
    uint32_t end = atomic_load_explicit(&rt->pid_next, memory_order_relaxed);
    for (uint32_t i = 1; i < end && i <= rt->cfg.max_processes; i++) {
        emi_proc *p = atomic_load_explicit(&rt->table[i], memory_order_acquire);
        if (p)
            out->memory_processes += proc_memory(p);
    }
    out->memory_total = rss_bytes();
    out->uptime_ms = (emi_now_ns() - rt->start_ns) / 1000000u;
    /* Relaxed: figures. */
    out->solo_entries = atomic_load_explicit(&rt->solo_entries, memory_order_relaxed);
    out->solo_revocations = atomic_load_explicit(&rt->solo_revokes, memory_order_relaxed);
    out->solo_available = rt->solo_ok;
    return 0;
}

int em_scheduler_info(int id, em_sched_info *out)
{
    emi_rt *rt = emi_rt_g;
    if (!out)
        return EM_EINVAL;
    if (!rt)
        return EM_ESTATE;
    if (id < 0 || id >= rt->nsched)
        return EM_ENOTFOUND;
    emi_sched *s = rt->scheds[id];
    uint64_t now = emi_now_ns(), total = now - rt->start_ns;
    uint64_t idle = atomic_load_explicit(&s->stat_idle_ns, memory_order_relaxed);
    /* Relaxed: figures; an idle spell under way counts too. */
    uint64_t since = atomic_load_explicit(&s->idle_since_ns, memory_order_relaxed);
    if (since && since < now)
        idle += now - since;
    out->id = id;
    out->total_ns = total;
    out->busy_ns = idle < total ? total - idle : 0;
    out->processes_run = atomic_load_explicit(&s->stat_runs, memory_order_relaxed);
    out->steals = atomic_load_explicit(&s->stat_steals, memory_order_relaxed);
    out->preemptions = atomic_load_explicit(&s->stat_preempted, memory_order_relaxed);
    unsigned h = atomic_load_explicit(&s->runq_head, memory_order_relaxed);
    unsigned t = atomic_load_explicit(&s->runq_tail, memory_order_relaxed);
    out->runq_len = t - h;
    out->stacks_mapped = (uint32_t)atomic_load_explicit(&s->stat_stacks, memory_order_relaxed);
    return 0;
}
