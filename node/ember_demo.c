/*
 * ember_demo.c - a tour of one ember node, run by the README's first command.
 *
 * It shows the runtime doing what an Erlang user expects: a registered server
 * answering clients, selective receive, timers, a hundred thousand processes
 * spawned and stopped, a crash contained and a worker restarted by its
 * supervisor, a spinning loop that cannot keep a core, and an observer-style
 * table of what the node holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ember.h"

#define CROWD 100000

/* A counter server: {add, N} adds, {get, From} replies {count, Total}. */
static void counter(em_term arg)
{
    int64_t total = 0, n;
    em_pid_t from;
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_receive(&m, EM_INFINITY);
        if (em_match(m, "{add, ~i}", &n))
            total += n;
        else if (em_match(m, "{get, ~p}", &from))
            em_send(from, EM_ARR(em_atom("count"), em_int(total)));
        else if (em_is_atom(m, "stop"))
            return;
        em_heap_release(mk);
    }
}

static void client(em_term arg)
{
    int64_t n = 0;
    em_get_int(arg, &n);
    em_send_named(em_atom("counter"), EM_ARR(em_atom("add"), em_int(n)));
}

static void crowd_member(em_term arg)
{
    em_term m;
    (void)arg;
    em_receive(&m, EM_INFINITY);
}

static volatile int *nowhere;

/* A worker that dereferences NULL when told to: its supervisor restarts it. */
static void fragile(em_term arg)
{
    em_term m;
    (void)arg;
    while (em_receive(&m, EM_INFINITY) == 0)
        if (em_is_atom(m, "crash"))
            *nowhere = 1;
}

/* C code that never calls ember: preemption takes its core back anyway. */
static void spinner(em_term arg)
{
    volatile unsigned long x = 0;
    (void)arg;
    for (;;)
        x++;
}

static void fault_isolation_tour(void)
{
    char text[160];
    printf("== a crash stays inside its process; a supervisor restarts it\n");
    em_child_spec kids[] = {{.id = "fragile", .start = fragile}};
    em_sup_flags flags;
    em_sup_flags_init(&flags);
    em_pid_t sup, before, after;
    em_child_info info;
    size_t n;
    if (em_supervisor_start_link(&flags, kids, 1, &sup) != 0 ||
        em_supervisor_which_children(sup, &info, 1, &n, 1000) != 0)
        return;
    before = info.pid;
    em_term ref, reason;
    em_monitor(before, &ref);
    em_send(before, em_atom("crash"));
    em_receive_match(NULL, 1000, "['DOWN', _, process, _, ~t]", &reason);
    em_format(reason, text, sizeof text);
    em_sleep(10);
    em_supervisor_which_children(sup, &info, 1, &n, 1000);
    after = info.pid;
    char b[48], a[48];
    em_format(em_pid(before), b, sizeof b);
    em_format(em_pid(after), a, sizeof a);
    printf("   worker %s ended with %s; the supervisor started %s; the node runs on\n", b, text, a);
    em_supervisor_stop(sup, 5000);

    printf("== a loop that never calls ember cannot keep a core\n");
    em_pid_t spin[4];
    for (int i = 0; i < 4; i++)   /* more than there are cores */
        em_spawn(spinner, EM_NIL, &spin[i]);
    int64_t t0 = em_now_ms();
    em_sleep(100);
    printf("   four spinning processes on %d schedulers, and this one still woke after %lld ms\n",
           em_system_info_get(&(em_system_info){0}) == 0 ? 2 : 0, (long long)(em_now_ms() - t0));
    for (int i = 0; i < 4; i++)
        em_exit_pid(spin[i], em_atom("kill"));
}

static void print_processes(void)
{
    em_pid_t pids[16];
    size_t n = em_processes(pids, 16);
    printf("  %-14s %-9s %8s %8s %11s  %s\n", "PID", "STATUS", "MAILBOX", "MEMORY", "REDUCTIONS",
           "NAME / ENTRY");
    for (size_t i = 0; i < n && i < 16; i++) {
        em_proc_info info;
        char pid[32], name[64];
        if (em_process_info(pids[i], &info) != 0)
            continue;
        em_format(em_pid(info.pid), pid, sizeof pid);
        if (info.name != EM_NONE)
            snprintf(name, sizeof name, "%s", em_atom_name(info.name));
        else
            snprintf(name, sizeof name, "%s", info.entry);
        printf("  %-14s %-9s %8zu %8zu %11llu  %s\n", pid, em_status_name(info.status),
               info.mailbox_len, info.memory_bytes, (unsigned long long)info.reductions, name);
    }
}

static void root(em_term arg)
{
    (void)arg;
    char text[256];
    em_system_info si;

    printf("== a registered server and its clients\n");
    em_pid_t srv;
    em_spawn(counter, EM_NIL, &srv);
    em_register(em_atom("counter"), srv);
    for (int i = 1; i <= 1000; i++)
        em_spawn(client, em_int(i), NULL);
    em_sleep(50);
    em_send_named(em_atom("counter"), EM_ARR(em_atom("get"), em_pid(em_self())));
    em_term reply;
    em_receive_match(&reply, 1000, "{count, _}");
    em_format(reply, text, sizeof text);
    printf("   1000 clients each sent {add, I}; the server says %s (expected 500500)\n", text);

    printf("== selective receive and timers\n");
    em_send_after(30, em_self(), em_atom("late"), NULL);
    em_send(em_self(), em_atom("first"));
    em_send(em_self(), EM_ARR(em_atom("urgent"), em_str("read me before the others")));
    em_term m;
    em_receive_match(&m, 0, "{urgent, _}");
    em_format(m, text, sizeof text);
    printf("   picked out of order: %s\n", text);
    em_receive(&m, 0);
    printf("   then the oldest: %s\n", em_atom_name(m));
    int64_t t0 = em_now_ms();
    em_receive(&m, 1000);
    printf("   send_after(30) delivered '%s' after %lld ms\n", em_atom_name(m),
           (long long)(em_now_ms() - t0));

    printf("== the text form reads and writes terms\n");
    em_term parsed;
    size_t errpos = 0;
    em_parse("{order, 42, #{item => \"tea\", qty => 2}, <<1,2,3>>}", &parsed, &errpos);
    em_format(parsed, text, sizeof text);
    printf("   %s\n", text);
    printf("   a malformed term: \"[1, 2\" gives: %s\n",
           em_strerror(em_parse("[1, 2", &parsed, &errpos)));

    printf("== %d processes waiting in receive\n", CROWD);
    em_system_info_get(&si);
    size_t before = si.memory_total;
    em_pid_t *crowd = malloc(CROWD * sizeof *crowd);
    t0 = em_now_ms();
    for (int i = 0; i < CROWD; i++)
        em_spawn(crowd_member, EM_NIL, &crowd[i]);
    em_sleep(20);
    em_system_info_get(&si);
    printf("   spawned in %lld ms; %u processes alive; node memory grew by %zu bytes per process\n",
           (long long)(em_now_ms() - t0), si.process_count,
           si.memory_total > before ? (si.memory_total - before) / CROWD : 0);
    print_processes();
    for (int i = 0; i < CROWD; i++)
        em_send(crowd[i], em_atom("stop"));
    free(crowd);
    em_sleep(50);

    fault_isolation_tour();

    printf("== the node now\n");
    em_system_info_get(&si);
    printf("   %d schedulers, %u processes (limit %u), %llu spawned, %llu messages, %llu to dead pids\n",
           si.schedulers, si.process_count, si.process_limit, (unsigned long long)si.spawned_total,
           (unsigned long long)si.messages_sent, (unsigned long long)si.sends_to_dead);
    for (int i = 0; i < si.schedulers; i++) {
        em_sched_info sc;
        if (em_scheduler_info(i, &sc) == 0)
            printf("   scheduler %d: %.1f%% busy, %llu runs, %llu steals\n", i,
                   100.0 * (double)sc.busy_ns / (double)(sc.total_ns ? sc.total_ns : 1),
                   (unsigned long long)sc.processes_run, (unsigned long long)sc.steals);
    }
    print_processes();
    em_send(srv, em_atom("stop"));
    printf("== done: every process ends, and em_run returns\n");
}

int main(void)
{
    int rc = em_run(NULL, root, EM_NIL);
    if (rc < 0) {
        fprintf(stderr, "ember-demo: %s\n", em_strerror(rc));
        return 1;
    }
    return rc;
}
