/*
 * node_root.c - ember-node's root process.
 *
 * The root traps exits and is registered as `ember_node`. It starts
 * distribution, spawns each --run function linked to itself, starts the seed
 * and DNS processes, and then waits in em_receive with a short timeout, so
 * that it notices a signal (the handler only sets a flag: nothing else is
 * async-signal-safe) within a tenth of a second.
 *
 * An orderly stop, on SIGTERM, SIGINT or [stop] from ember_ctl: the --run
 * processes are stopped one at a time in reverse start order, each as a
 * supervisor stops a child (monitor, unlink, exit(shutdown), wait, and
 * exit(kill) after --shutdown-ms) - a supervisor stops its own children first,
 * in its own reverse order - then em_dist_stop tells the peers, which see
 * nodedown at once instead of after a tick, and the runtime halts with 0.
 */
#include "node_root.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "node_detach.h"
#include "node_discover.h"
#include "node_epmd.h"
#include "node_load.h"
#include "node_log.h"

#define POLL_MS 100          /* how often the root looks at the signal flag */
#define KILL_WAIT_MS 5000    /* after exit(kill), how long to wait for the DOWN */

static const node_opts *opts;
static volatile sig_atomic_t signalled;

typedef struct run_proc {
    const char *fn;          /* "module:function" */
    em_pid_t pid;
    bool alive;
} run_proc;

static run_proc runs[NODE_MAX_LIST];
static size_t nruns;
static em_pid_t seeds_pid, dns_pid, mesh_pid;

void node_root_use(const node_opts *o) { opts = o; }

/* ------------------------------------------------------------- signals */

static void on_signal(int sig)
{
    if (signalled) {
        /* A second signal: the orderly stop is taking too long for someone. */
        static const char msg[] = "ember-node: second signal, stopping at once\n";
        ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)n;
        _exit(NODE_EXIT_FAIL);
    }
    signalled = sig;
}

int node_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return NODE_EXIT_FAIL;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* --------------------------------------------------------------- start */

static const char *term_text(em_term t, char *buf, size_t cap)
{
    if (em_format(t, buf, cap) < 0)
        snprintf(buf, cap, "?");
    return buf;
}

static int start_dist(void)
{
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = opts->node;
    c.listen = opts->listen;
    c.hidden = opts->hidden;
    c.tick_ms = opts->tick_ms;
    c.busy_wait_us = opts->busy_wait_us;
    c.log_level = opts->log_level;
    c.epmd = !opts->no_epmd;
    c.epmd_port = opts->epmd_port;
    if (opts->secret == SECRET_COOKIE)
        c.cookie = opts->cookie;
    else if (opts->secret == SECRET_COOKIE_FILE)
        c.cookie_file = opts->cookie_file;
    else if (opts->secret == SECRET_KEYRING) {
        c.trust = EM_TRUST_KEYRING;
        c.keyring = opts->keyring;
    }
    int rc = em_dist_start(&c);
    /* The port mapper may have gone since main looked (or another node's
     * start raced ours): start one and try once more. The failed start told
     * its net_kernel and ember_ctl to stop; their names must be free before
     * the next start registers new ones. */
    if (rc == EM_ENOTFOUND && c.epmd && !node_epmd_running(opts->epmd_port) &&
        node_epmd_ensure(opts->epmd_port) == 0) {
        for (int i = 0; i < 100 && (em_whereis(em_atom("net_kernel")) ||
                                    em_whereis(em_atom("ember_ctl")));
             i++)
            em_sleep(10);
        rc = em_dist_start(&c);
    }
    if (rc == EM_EEXIST)
        node_log(LOG_ERROR, "cannot start the node: its name is registered already with this "
                            "host's port mapper (is the node running?)");
    else if (rc)
        node_log(LOG_ERROR, "cannot start the node: %s", em_strerror(rc));
    return rc;
}

static int start_runs(void)
{
    char text[256];
    for (size_t i = 0; i < opts->nruns; i++) {
        const node_run *r = &opts->runs[i];
        const char *entry = NULL;
        em_proc_fn fn = node_module_fn(r->fn, &entry);
        em_term arg = EM_NIL;
        size_t pos = 0;
        if (r->arg && em_parse(r->arg, &arg, &pos) != 0) {
            node_log(LOG_ERROR, "--run %s: its argument does not parse at byte %zu", r->fn, pos);
            return NODE_EXIT_FAIL;
        }
        if (!fn) {
            node_log(LOG_ERROR, "--run %s: no such function", r->fn);
            return NODE_EXIT_FAIL;
        }
        em_pid_t pid;
        int rc = em_spawn_link_named(fn, entry, arg, &pid);
        if (rc) {
            node_log(LOG_ERROR, "--run %s: cannot spawn it: %s", r->fn, em_strerror(rc));
            return NODE_EXIT_FAIL;
        }
        runs[nruns++] = (run_proc){.fn = entry, .pid = pid, .alive = true};
        node_log(LOG_INFO, "started %s(%s) as %s", entry, r->arg ? r->arg : "nil",
                 term_text(em_pid(pid), text, sizeof text));
    }
    return 0;
}

static void start_discovery(void)
{
    node_discover_use(opts);
    if (opts->nseeds && em_spawn_link_named(node_seeds_main, "ember_node:seeds", EM_NIL,
                                            &seeds_pid) != 0)
        node_log(LOG_ERROR, "cannot start the seeds process");
    if (opts->ndns && em_spawn_link_named(node_dns_main, "ember_node:dns", EM_NIL, &dns_pid) != 0)
        node_log(LOG_ERROR, "cannot start the DNS discovery process");
    /* Names alone are reached through port mappers: without them (or for a
     * hidden node, which stays out of the mesh) there is nothing to check. */
    if (!opts->no_epmd && !opts->hidden && opts->discover_interval_ms > 0 &&
        em_spawn_link_named(node_mesh_main, "ember_node:mesh", EM_NIL, &mesh_pid) != 0)
        node_log(LOG_ERROR, "cannot start the mesh check");
}

/* ---------------------------------------------------------------- stop */

typedef struct down_of {
    em_term ref;
} down_of;

static bool is_down_of(em_term m, void *ctx)
{
    down_of *d = ctx;
    return em_len(m) == 5 && em_is_atom(em_at(m, 0), "DOWN") && em_equal(em_at(m, 1), d->ref);
}

/* Stops one --run process as a supervisor stops a child. */
static void stop_run(run_proc *r)
{
    char text[256], why[256];
    down_of d;
    if (em_monitor(r->pid, &d.ref) != 0)
        return;
    em_unlink(r->pid);
    node_log(LOG_INFO, "stopping %s %s", r->fn, term_text(em_pid(r->pid), text, sizeof text));
    em_exit_pid(r->pid, em_atom("shutdown"));
    em_term m;
    int64_t wait = opts->shutdown_ms < 0 ? EM_INFINITY : opts->shutdown_ms;
    if (em_receive_if(&m, wait, is_down_of, &d) != 0) {
        node_log(LOG_ERROR, "%s did not stop within %lld ms: killing it", r->fn,
                 (long long)opts->shutdown_ms);
        em_exit_pid(r->pid, em_atom("kill"));
        if (em_receive_if(&m, KILL_WAIT_MS, is_down_of, &d) != 0) {
            node_log(LOG_ERROR, "%s survived exit(kill)", r->fn);
            return;
        }
    }
    r->alive = false;
    node_log(LOG_DEBUG, "%s ended: %s", r->fn, term_text(em_at(m, 4), why, sizeof why));
}

static _Noreturn void shutdown_node(int code, const char *why)
{
    node_log(LOG_INFO, "stopping: %s", why);
    if (seeds_pid)
        em_exit_pid(seeds_pid, em_atom("kill"));
    if (dns_pid)
        em_exit_pid(dns_pid, em_atom("kill"));
    if (mesh_pid)
        em_exit_pid(mesh_pid, em_atom("kill"));
    for (size_t i = nruns; i-- > 0;)
        if (runs[i].alive)
            stop_run(&runs[i]);
    /* Let replies already sent leave first (ember_ctl's answer to stop). */
    em_sleep(50);
    em_dist_stop();
    node_log(LOG_INFO, "stopped");
    fflush(stderr);
    em_halt(code);
    for (;;)
        em_sleep(EM_INFINITY);
}

/* ---------------------------------------------------------------- loop */

/* An ['EXIT', Pid, Reason] the root received. */
static void on_exit_msg(em_pid_t pid, em_term reason)
{
    char text[256], why[256];
    for (size_t i = 0; i < nruns; i++) {
        run_proc *r = &runs[i];
        if (!r->alive || r->pid != pid)
            continue;
        r->alive = false;
        bool normal = em_is_atom(reason, "normal");
        node_log(normal ? LOG_INFO : LOG_ERROR, "%s %s ended: %s", r->fn,
                 term_text(em_pid(pid), text, sizeof text), term_text(reason, why, sizeof why));
        if (opts->exit_with_run)
            shutdown_node(normal ? NODE_EXIT_OK : NODE_EXIT_FAIL,
                          normal ? "a --run process ended (--exit-with-run)"
                                 : "a --run process failed (--exit-with-run)");
        return;
    }
    if (pid == seeds_pid || pid == dns_pid || pid == mesh_pid) {
        if (!em_is_atom(reason, "normal"))
            node_log(LOG_ERROR, "a discovery process ended: %s",
                     term_text(reason, why, sizeof why));
        if (pid == seeds_pid)
            seeds_pid = 0;
        else if (pid == dns_pid)
            dns_pid = 0;
        else
            mesh_pid = 0;
        return;
    }
    node_log(LOG_DEBUG, "linked process %s ended: %s", term_text(em_pid(pid), text, sizeof text),
             term_text(reason, why, sizeof why));
}

void node_root_main(em_term arg)
{
    (void)arg;
    em_trap_exit(true);
    if (em_register(em_atom("ember_node"), em_self()) != 0)
        node_log(LOG_ERROR, "cannot register as ember_node: ember_ctl's stop will halt the node");
    if (start_dist() != 0) {
        node_detach_failed();
        em_halt(NODE_EXIT_FAIL);   /* takes effect at the next switch: return now */
        return;
    }
    if (start_runs() != 0) {
        node_detach_failed();
        shutdown_node(NODE_EXIT_FAIL, "a --run process could not start");
    }
    start_discovery();
    node_log(LOG_INFO, "up on port %d (os pid %d)%s", em_node_port(), (int)getpid(),
             opts->hidden ? ", hidden" : "");
    node_detach_ready(opts->node, em_node_port());
    for (;;) {
        if (signalled)
            shutdown_node(NODE_EXIT_OK, signalled == SIGINT ? "SIGINT" : "SIGTERM");
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        if (em_receive(&m, POLL_MS) == 0) {
            char text[256];
            if (em_is_atom(m, "stop") || (em_len(m) == 1 && em_is_atom(em_at(m, 0), "stop")))
                shutdown_node(NODE_EXIT_OK, "stop requested (ember_ctl)");
            else if (em_len(m) == 3 && em_is_atom(em_at(m, 0), "EXIT") &&
                     em_get_pid(em_at(m, 1), &from))
                on_exit_msg(from, em_at(m, 2));
            else
                node_log(LOG_DEBUG, "ignored a message: %s", term_text(m, text, sizeof text));
        }
        em_heap_release(mk);
    }
}
