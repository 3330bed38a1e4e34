/*
 * test_node_stop.c - how ember-node starts and stops:
 *  - SIGTERM: exit status 0, the --run processes stopped in reverse order (a
 *    supervisor's children in their reverse order), and the peers see
 *    nodedown at once (the tick is a minute: only the goodbye can be that fast);
 *  - stop through ember_ctl: the same orderly shutdown;
 *  - --exit-with-run: the node's status follows its --run process;
 *  - a port mapper started when none runs, also by two nodes at once;
 *  - --detached: the command returns once the node is up, and prints it.
 */
#include "node_test.h"

static nt_proc *start_node(const char *name, const char *const extra[])
{
    const char *argv[40];
    char full[64];
    size_t n = 0;
    snprintf(full, sizeof full, "%s@127.0.0.1", name);
    argv[n++] = EMBER_NODE_BIN;
    argv[n++] = "--name";
    argv[n++] = strdup(full);
    argv[n++] = "--cookie-file";
    argv[n++] = nt_cookie_file;
    argv[n++] = "--schedulers";
    argv[n++] = "1";
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    nt_proc *p = nt_start(name, argv, NULL);
    free((char *)argv[2]);
    return p;
}

/* The shutdown of a node running --run demo:sup 3 --run demo:counter went in
 * order: counter first (started last), then the supervisor, whose workers
 * stop w3, w2, w1, and only then the node. */
static void expect_ordered_stop(const nt_proc *a, const char *why)
{
    const char *steps[] = {why,
                           "stopping demo:counter",
                           "stopping demo:sup",
                           "demo:worker demo_w3 stopping: shutdown",
                           "demo:worker demo_w2 stopping: shutdown",
                           "demo:worker demo_w1 stopping: shutdown",
                           "a@127.0.0.1: stopped\n"};
    long last = -1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        long at = nt_log_pos(a, steps[i]);
        NT_EXPECT(at > last, "\"%s\" in a's log after \"%s\" (at %ld, previous at %ld)", steps[i],
                  i ? steps[i - 1] : "the start", at, last);
        last = at;
    }
}

/* -------------------------------------------------------------- SIGTERM */

typedef struct term_ctx {
    int port_a, port_b;
    pid_t pid_a;
    int64_t nodedown_ms, gone_from_b_ms;
} term_ctx;

static void term_probe(void *arg)
{
    term_ctx *c = arg;
    PCHECK(nt_connect("a@127.0.0.1", c->port_a) == 0, "connect to a");
    PCHECK(nt_connect("b@127.0.0.1", c->port_b) == 0, "connect to b");
    const char *both[] = {"a@127.0.0.1", "b@127.0.0.1"};
    char why[2048];
    PCHECK(nt_wait_mesh(both, 2, 10000, why, sizeof why), "a and b connected: %s", why);
    em_term a = em_atom("a@127.0.0.1"), m;
    em_monitor_node(a, true);
    int64_t t0 = em_now_ms();
    PCHECK(kill(c->pid_a, SIGTERM) == 0, "SIGTERM sent");
    PCHECK(em_receive_match(&m, 10000, "[nodedown, 'a@127.0.0.1']") == 0, "nodedown of a");
    c->nodedown_ms = em_now_ms() - t0;
    /* b, a peer of a's, no longer lists it. */
    for (;;) {
        char vis[1024];
        PCHECK(nt_visible_of("b@127.0.0.1", vis, sizeof vis), "b answers");
        if (!strstr(vis, "'a@127.0.0.1'"))
            break;
        PCHECK(em_now_ms() - t0 < 10000, "b still sees a after 10 s: %s", vis);
        em_sleep(20);
    }
    c->gone_from_b_ms = em_now_ms() - t0;
}

static void test_sigterm_stops_in_order(void **state)
{
    (void)state;
    /* A tick of a minute: a peer that sees nodedown within seconds was told. */
    const char *ea[] = {"--no-epmd", "--tick-ms", "60000", "--load", "demo", "--run", "demo:sup",
                        "3", "--run", "demo:counter", NULL};
    nt_proc *a = start_node("a", ea);
    term_ctx c = {.port_a = nt_wait_up(a), .pid_a = a->pid};
    char seed[64];
    snprintf(seed, sizeof seed, "a@127.0.0.1:%d", c.port_a);
    const char *eb[] = {"--no-epmd", "--tick-ms", "60000", "--connect", seed, NULL};
    nt_proc *b = start_node("b", eb);
    c.port_b = nt_wait_up(b);
    nt_probe(term_probe, &c);
    int st = nt_wait(a, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "a exits 0 after SIGTERM (status %d)", st);
    NT_EXPECT(c.nodedown_ms < 3000, "nodedown within 3 s of SIGTERM, not a tick (%lld ms)",
              (long long)c.nodedown_ms);
    NT_EXPECT(c.gone_from_b_ms < 3000, "b forgets a within 3 s (%lld ms)",
              (long long)c.gone_from_b_ms);
    /* Told ("it said goodbye"), or, when the goodbye is still in ZeroMQ's
     * queue as a's sockets close (their linger is 100 ms, which a slow
     * sanitizer build can miss), the closed connection: at once either way. */
    NT_EXPECT(nt_log_has(b, "node a@127.0.0.1 is down: "), "b logs that a is down");
    expect_ordered_stop(a, "stopping: SIGTERM");
    st = nt_signal_wait(b, SIGINT, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "b exits 0 after SIGINT (status %d)", st);
    NT_EXPECT(nt_log_has(b, "stopping: SIGINT"), "b says why it stops");
}

/* ------------------------------------------------------ ember_ctl stop */

typedef struct ctl_ctx {
    int port;
    int stop_rc;
    bool down;
} ctl_ctx;

static void ctl_probe(void *arg)
{
    ctl_ctx *c = arg;
    PCHECK(nt_connect("a@127.0.0.1", c->port) == 0, "connect to a");
    em_monitor_node(em_atom("a@127.0.0.1"), true);
    em_term v;
    c->stop_rc = nt_ctl("a@127.0.0.1", "stop", EM_NIL, &v, 5000);
    PCHECK(c->stop_rc == 0, "stop answered ok: %s", em_strerror(c->stop_rc));
    PCHECK(em_is_atom(v, "ok"), "the value ok");
    em_term m;
    c->down = em_receive_match(&m, 10000, "[nodedown, 'a@127.0.0.1']") == 0;
}

static void test_ctl_stop_stops_in_order(void **state)
{
    (void)state;
    const char *ea[] = {"--no-epmd", "--load", "demo", "--run", "demo:sup", "3", "--run",
                        "demo:counter", NULL};
    nt_proc *a = start_node("a", ea);
    ctl_ctx c = {.port = nt_wait_up(a)};
    nt_probe(ctl_probe, &c);
    NT_EXPECT(c.down, "nodedown after stop");
    int st = nt_wait(a, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "a exits 0 after ember_ctl's stop (status %d)", st);
    expect_ordered_stop(a, "stopping: stop requested (ember_ctl)");
}

/* ------------------------------------------------------- --exit-with-run */

typedef struct run_ctx {
    int port_e, port_w;
} run_ctx;

static void run_probe(void *arg)
{
    run_ctx *c = arg;
    PCHECK(nt_connect("e@127.0.0.1", c->port_e) == 0, "connect to e");
    PCHECK(nt_connect("w@127.0.0.1", c->port_w) == 0, "connect to w");
    em_send_remote(em_atom("echo"), em_atom("e@127.0.0.1"), em_atom("stop"));
    em_send_remote(em_atom("crashy"), em_atom("w@127.0.0.1"), em_atom("crash"));
    em_sleep(100);   /* let both leave before the probe does */
}

static void test_exit_with_run(void **state)
{
    (void)state;
    const char *ee[] = {"--no-epmd", "--load", "demo", "--run", "demo:echo", "--exit-with-run",
                        NULL};
    const char *ew[] = {"--no-epmd", "--load", "demo", "--run", "demo:worker", "crashy",
                        "--exit-with-run", NULL};
    nt_proc *e = start_node("e", ee), *w = start_node("w", ew);
    run_ctx c = {.port_e = nt_wait_up(e), .port_w = nt_wait_up(w)};
    nt_probe(run_probe, &c);
    int st = nt_wait(e, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "exit 0 when the --run process ends normally (%d)", st);
    NT_EXPECT(nt_log_has(e, "a --run process ended (--exit-with-run)"), "e says why");
    st = nt_wait(w, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 1), "exit 1 when the --run process crashes (%d)", st);
    NT_EXPECT(nt_log_has(w, "ended: crashed"), "w logs the crash");
}

/* ------------------------------------------------ port mapper auto-start */

static uint16_t autostarted;

static int teardown_autostart(void **state)
{
    nt_teardown(state);
    /* The daemon the nodes started is not our child: ask it to go (it
     * refuses while a name is registered, and the nodes are dead by now). */
    for (int i = 0; autostarted && i < 50; i++) {
        int rc = em_epmd_kill(NULL, autostarted, 500);
        if (rc == 0 || rc == -ECONNREFUSED)
            break;
        nt_sleep_ms(50);
    }
    autostarted = 0;
    return 0;
}

static bool registered(uint16_t port, const char *name)
{
    em_epmd_name_list l;
    if (em_epmd_names(NULL, port, 1000, &l) != 0)
        return false;
    bool found = false;
    for (size_t i = 0; i < l.count; i++)
        found = found || strcmp(l.names[i].name, name) == 0;
    em_epmd_name_list_free(&l);
    return found;
}

typedef struct auto_ctx {
    int ports[2];
} auto_ctx;

/* Both nodes serve ember_ctl (a start retried after the port mapper came up
 * must still have it). */
static void auto_probe(void *arg)
{
    auto_ctx *c = arg;
    const char *names[] = {"auto1@127.0.0.1", "auto2@127.0.0.1"};
    for (int i = 0; i < 2; i++) {
        em_term v;
        PCHECK(nt_connect(names[i], c->ports[i]) == 0, "connect to %s", names[i]);
        PCHECK(nt_ctl(names[i], "ping", EM_NIL, &v, 5000) == 0, "%s answers ping", names[i]);
    }
}

static void test_epmd_autostart(void **state)
{
    (void)state;
    uint16_t port = nt_free_port();
    em_epmd_name_list l;
    NT_EXPECT(em_epmd_names(NULL, port, 500, &l) != 0, "no port mapper on %u yet", port);
    autostarted = port;
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    /* Two nodes at once: both may find no port mapper and start one. */
    const char *extra[] = {"--epmd-port", portbuf, NULL};
    nt_proc *a = start_node("auto1", extra), *b = start_node("auto2", extra);
    auto_ctx c = {.ports = {nt_wait_up(a), nt_wait_up(b)}};
    NT_EXPECT(registered(port, "auto1") && registered(port, "auto2"),
              "both nodes registered with the port mapper on %u", port);
    nt_probe(auto_probe, &c);
    NT_EXPECT(nt_log_has(a, "no port mapper on port") || nt_log_has(b, "no port mapper on port"),
              "a node says it started one");
    int st = nt_signal_wait(a, SIGTERM, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "auto1 exits 0 (%d)", st);
    NT_EXPECT(!registered(port, "auto1"), "auto1 unregistered once stopped");
    st = nt_signal_wait(b, SIGTERM, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "auto2 exits 0 (%d)", st);
}

/* ------------------------------------------------------------ --detached */

typedef struct det_ctx {
    int port;
} det_ctx;

static void det_probe(void *arg)
{
    det_ctx *c = arg;
    PCHECK(nt_connect("det@127.0.0.1", c->port) == 0, "connect to det");
    em_term v;
    PCHECK(nt_ctl("det@127.0.0.1", "ping", EM_NIL, &v, 5000) == 0, "det answers ping");
    PCHECK(em_is_atom(v, "det@127.0.0.1"), "ping gives the node's name");
}

static void test_detached(void **state)
{
    (void)state;
    char portbuf[8], logfile[400], out[4096];
    snprintf(portbuf, sizeof portbuf, "%u", nt_start_epmd());
    snprintf(logfile, sizeof logfile, "%s/det.log", nt_dir);
    /* The detached node is a grandchild: adopt it, so that its exit status
     * can be read. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    const char *argv[] = {EMBER_NODE_BIN, "--name", "det@127.0.0.1", "--cookie-file",
                          nt_cookie_file, "--epmd-port", portbuf, "--schedulers", "1",
                          "--detached", "--log-file", logfile, NULL};
    int rc = nt_run_capture(argv, NULL, out, sizeof out);
    int port = 0, pid = 0;
    char name[64] = "";
    sscanf(out, "%63s is up on port %d (pid %d)", name, &port, &pid);
    nt_proc *d = &nt_procs[NT_MAX_PROCS - 1];   /* for the teardown, and its log */
    if (pid > 0) {
        snprintf(d->tag, sizeof d->tag, "det");
        snprintf(d->log, sizeof d->log, "%s", logfile);
        d->pid = pid;
        d->ours = true;
    }
    NT_EXPECT(rc == 0, "--detached returns 0 once up, got %d: %s", rc, out);
    NT_EXPECT(strcmp(name, "det@127.0.0.1") == 0 && port > 0 && pid > 0,
              "\"det@127.0.0.1 is up on port N (pid P)\", got \"%s\"", out);
    NT_EXPECT(nt_log_has(d, "up on port"), "the log goes to --log-file");
    det_ctx c = {.port = port};
    nt_probe(det_probe, &c);
    int st = nt_signal_wait(d, SIGTERM, NT_EXIT_MS);
    prctl(PR_SET_CHILD_SUBREAPER, 0);
    NT_EXPECT(nt_exited_with(st, 0), "the detached node exits 0 after SIGTERM (%d)", st);
    NT_EXPECT(nt_log_has(d, "det@127.0.0.1: stopped"), "and logs it");

    /* A node that cannot start: the command says so and returns 1. */
    const char *bad[] = {EMBER_NODE_BIN, "--name", "det2@127.0.0.1", "--cookie-file",
                         "/nonexistent/cookie", "--epmd-port", portbuf, "--detached",
                         "--log-file", logfile, NULL};
    rc = nt_run_capture(bad, NULL, out, sizeof out);
    NT_EXPECT(rc == 1, "--detached returns 1 when the node cannot start, got %d: %s", rc, out);
    NT_EXPECT(strstr(out, "did not start") != NULL, "and says so: %s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sigterm_stops_in_order, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_ctl_stop_stops_in_order, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_exit_with_run, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_epmd_autostart, nt_setup, teardown_autostart),
        cmocka_unit_test_setup_teardown(test_detached, nt_setup, nt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
