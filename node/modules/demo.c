/*
 * demo.c - the demo module for ember-node (`--load demo`): a few process
 * functions for trying a cluster by hand and for the tests.
 *
 *   demo:echo     answers [From, X] with [echo, X]; registers as its argument
 *                 (an atom), or as `echo` when that name is free.
 *   demo:worker   answers [ping, From] with [pong, Self]; ends with reason
 *                 crashed on `crash`; traps exits so that it logs its own stop.
 *                 Registers as its argument when that is an atom.
 *   demo:sup      a one_for_one supervisor of N demo:worker children (argument
 *                 N, default 3, at most 8) registered as demo_w1, demo_w2, ...
 *   demo:counter  registers as `counter` and counts the messages it gets;
 *                 [get, From] is answered with [count, N] and not counted.
 *
 * Every process ends on the atom `stop`.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "ember_module.h"

/* One line in ember-node's log form, for the events worth seeing. */
static void demo_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void demo_log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    const char *node = em_atom_name(em_node());
    fprintf(stderr, "%02d:%02d:%02d.%03ld ember %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, node ? node : "?", line);
}

/* Registers the caller as name unless the name is taken. */
static void register_as(em_term name)
{
    if (em_atom_name(name) && !em_whereis(name))
        em_register(name, em_self());
}

static void echo(em_term arg)
{
    register_as(em_atom_name(arg) ? arg : em_atom("echo"));
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        em_receive(&m, EM_INFINITY);
        if (em_is_atom(m, "stop"))
            return;
        if (em_len(m) == 2 && em_get_pid(em_at(m, 0), &from))
            em_send(from, EM_ARR(em_atom("echo"), em_at(m, 1)));
        em_heap_release(mk);
    }
}

static void worker(em_term arg)
{
    const char *name = em_atom_name(arg);
    register_as(arg);
    em_trap_exit(true);
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m, reason;
        em_pid_t from;
        char why[128];
        em_receive(&m, EM_INFINITY);
        if (em_is_atom(m, "stop"))
            return;
        if (em_is_atom(m, "crash"))
            em_exit(em_atom("crashed"));
        if (em_match(m, "[ping, ~p]", &from))
            em_send(from, EM_ARR(em_atom("pong"), em_pid(em_self())));
        else if (em_match(m, "['EXIT', _, ~t]", &reason)) {
            /* Its supervisor stops it (or something linked died): say so, so
             * that the order of an orderly shutdown can be seen in the log. */
            em_format(reason, why, sizeof why);
            demo_log("demo:worker %s stopping: %s", name ? name : "(unnamed)", why);
            em_exit(reason);
        }
        em_heap_release(mk);
    }
}

static void sup(em_term arg)
{
    static const char *ids[] = {"w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"};
    static const char *names[] = {"demo_w1", "demo_w2", "demo_w3", "demo_w4",
                                  "demo_w5", "demo_w6", "demo_w7", "demo_w8"};
    int64_t n = 3;
    if (!em_get_int(arg, &n) || n < 1 || n > 8)
        n = 3;
    em_child_spec kids[8] = {{0}};
    for (int64_t i = 0; i < n; i++)
        kids[i] = (em_child_spec){.id = ids[i], .start = worker, .arg = em_atom(names[i]),
                                  .shutdown_ms = 2000};
    em_sup_flags flags;
    em_sup_flags_init(&flags);
    flags.intensity = 3;
    em_term sarg;
    int rc = em_supervisor_arg(&flags, kids, (size_t)n, &sarg);
    if (rc != 0) {
        demo_log("demo:sup cannot start: %s", em_strerror(rc));
        em_exit(em_atom("badarg"));
    }
    em_supervisor_main(sarg);
}

static void counter(em_term arg)
{
    (void)arg;
    register_as(em_atom("counter"));
    int64_t count = 0;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        em_receive(&m, EM_INFINITY);
        if (em_is_atom(m, "stop"))
            return;
        if (em_match(m, "[get, ~p]", &from))
            em_send(from, EM_ARR(em_atom("count"), em_int(count)));
        else
            count++;
        em_heap_release(mk);
    }
}

const em_module_export ember_module_exports[] = {
    {"echo", echo},
    {"worker", worker},
    {"sup", sup},
    {"counter", counter},
    {NULL, NULL},
};
