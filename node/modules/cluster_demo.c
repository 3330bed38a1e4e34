/*
 * cluster_demo.c - the cluster demo's module for ember-node (`--load
 * cluster_demo`), run by scripts/cluster-demo.sh on node a of a three-node
 * cluster whose nodes have loaded the demo module (`--load demo`).
 *
 *   cluster_demo:main   argument [B, C, KillFile]: B and C are the other two
 *                       nodes' names (atoms), KillFile the path of a file in
 *                       which the script writes, just before it kills C with
 *                       SIGKILL, the time of the kill (microseconds since the
 *                       epoch).
 *
 * main shows, one line on stdout per step, what distribution does: processes
 * spawned on B and C (demo:echo, demo:counter, demo:worker, demo:sup),
 * messages to their pids and to their registered names, a supervisor on B
 * restarting a worker that main kills, and then, once it has printed
 * "waiting for c to go down", the monitor, the link and the node monitor it
 * holds on C firing when the script kills C. It ends with reason normal when
 * every step worked, and after a line starting "a: FAILED" with reason
 * `failed` otherwise.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ember_module.h"

#define CALL_MS 5000         /* a remote spawn or a reply: how long to wait */
#define C_DOWN_WAIT_MS 30000 /* how long main waits for the script to kill C */
#define EVENTS_WAIT_MS 5000  /* after the first event of C's end, for the rest */

static char self_short[128]; /* this node's short name: "a" */

/* ------------------------------------------------------------- output */

static void short_name(em_term node, char *buf, size_t cap)
{
    const char *name = em_atom_name(node);
    size_t n = name ? strcspn(name, "@") : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, name ? name : "", n);
    buf[n] = '\0';
}

/* One line on stdout, "a: ...", flushed at once: the script reads it. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    printf("%s: %s\n", self_short, line);
    fflush(stdout);
}

static _Noreturn void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static _Noreturn void fail(const char *fmt, ...)
{
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    say("FAILED: %s", line);
    em_exit(em_atom("failed"));
}

/* A term's text in a buffer the caller gives; "?" if it cannot be printed. */
static const char *text(em_term t, char *buf, size_t cap)
{
    if (em_format(t, buf, cap) < 0)
        snprintf(buf, cap, "?");
    return buf;
}

#define PID_TEXT(p, buf) text(em_pid(p), (buf), sizeof(buf))

static int64_t now_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double ms_since(int64_t start_us)
{
    return (double)(now_us(CLOCK_MONOTONIC) - start_us) / 1000.0;
}

/* ---------------------------------------------------------------- steps */

/* Spawns fn_name on node with arg and flags; fails the demo if it cannot. */
static em_pid_t spawn_on(em_term node, const char *node_short, const char *fn_name, em_term arg,
                         int flags, em_term *ref)
{
    em_pid_t pid;
    int rc = em_spawn_on(node, fn_name, arg, flags, &pid, ref, CALL_MS);
    if (rc != 0)
        fail("cannot spawn %s on %s: %s", fn_name, node_short, em_strerror(rc));
    return pid;
}

/* Waits for [echo, X] and checks that X is what was sent. */
static void expect_echo(em_term sent, const char *from_what)
{
    em_term reply, x;
    char buf[128];
    if (em_receive_match(&reply, CALL_MS, "[echo, ~t]", &x) != 0)
        fail("no answer from %s within %d ms", from_what, CALL_MS);
    if (!em_equal(x, sent))
        fail("%s answered %s", from_what, text(reply, buf, sizeof buf));
}

/* Asks the counter (by pid, or by name when pid is 0) for its count. */
static int64_t counter_get(em_pid_t pid, em_term node)
{
    em_term msg = EM_ARR(em_atom("get"), em_pid(em_self()));
    if (pid)
        em_send(pid, msg);
    else
        em_send_remote(em_atom("counter"), node, msg);
    int64_t n;
    if (em_receive_match(NULL, CALL_MS, "[count, ~i]", &n) != 0)
        fail("demo:counter did not tell its count within %d ms", CALL_MS);
    return n;
}

/* Pings the name on node until a [pong, Pid] arrives from a pid other than
 * not_this, for at most CALL_MS; the pid that answered, or 0. Names are
 * registered when a process starts and go with it, so a ping may find no one
 * and be dropped: it is sent again every 50 ms. */
static em_pid_t ping_name(em_term name, em_term node, em_pid_t not_this)
{
    int64_t deadline = em_now_ms() + CALL_MS;
    while (em_now_ms() < deadline) {
        em_send_remote(name, node, EM_ARR(em_atom("ping"), em_pid(em_self())));
        int64_t until = em_now_ms() + 50;
        em_pid_t who;
        for (int64_t left = 50; left >= 0; left = until - em_now_ms()) {
            if (em_receive_match(NULL, left, "[pong, ~p]", &who) != 0)
                break;
            if (who != not_this)
                return who;
        }
    }
    return 0;
}

/* The time the script wrote in the kill file (microseconds since the epoch),
 * or -1 if it cannot be read. */
static int64_t kill_time_us(em_term path_term)
{
    const char *path;
    size_t len;
    char name[512], line[64];
    if (!em_get_str(path_term, &path, &len) || len >= sizeof name)
        return -1;
    memcpy(name, path, len);
    name[len] = '\0';
    FILE *f = fopen(name, "r");
    if (!f)
        return -1;
    char *end = NULL;
    long long t = -1;
    if (fgets(line, sizeof line, f)) {
        t = strtoll(line, &end, 10);
        if (end == line)
            t = -1;
    }
    fclose(f);
    return t;
}

/* " 3.2 ms after the SIGKILL", or "" when the kill's time is not known. */
static const char *after_kill(int64_t killed_us, int64_t at_us, char *buf, size_t cap)
{
    if (killed_us < 0)
        buf[0] = '\0';
    else
        snprintf(buf, cap, ", %.1f ms after the SIGKILL", (double)(at_us - killed_us) / 1000.0);
    return buf;
}

/* ----------------------------------------------------------------- main */

static void demo_main(em_term arg)
{
    em_term b = em_at(arg, 0), c = em_at(arg, 1), kill_file = em_at(arg, 2);
    char bs[128], cs[128], p1[64], p2[64], buf[256], when[64];
    short_name(em_node(), self_short, sizeof self_short);
    if (em_len(arg) != 3 || !em_atom_name(b) || !em_atom_name(c))
        fail("cluster_demo:main needs [B, C, KillFile], got %s", text(arg, buf, sizeof buf));
    short_name(b, bs, sizeof bs);
    short_name(c, cs, sizeof cs);

    /* The cluster as this node sees it. */
    em_term nodes[16];
    size_t n = em_nodes(nodes, 16);
    bool has_b = false, has_c = false;
    for (size_t i = 0; i < n && i < 16; i++) {
        has_b |= em_equal(nodes[i], b);
        has_c |= em_equal(nodes[i], c);
    }
    if (!has_b || !has_c)
        fail("%s is not connected to both %s and %s", em_atom_name(em_node()), em_atom_name(b),
             em_atom_name(c));
    say("I am %s (pid %s), connected to %s and %s", em_atom_name(em_node()),
        PID_TEXT(em_self(), p1), em_atom_name(b), em_atom_name(c));
    say("(a pid prints as <N.I.S>: N is the number %s gives its node, 0 for %s itself)",
        self_short, self_short);

    /* 1. A process spawned on b, answering messages to its pid and its name. */
    em_pid_t echo_b = spawn_on(b, bs, "demo:echo", EM_NIL, 0, NULL);
    say("spawned demo:echo on %s as %s (it registers there as echo)", bs, PID_TEXT(echo_b, p1));
    int64_t t0 = now_us(CLOCK_MONOTONIC);
    em_send(echo_b, EM_ARR(em_pid(em_self()), em_atom("hello")));
    expect_echo(em_atom("hello"), "demo:echo on b");
    say("sent [%s, hello] to pid %s, got [echo, hello] back from %s in %.1f ms",
        PID_TEXT(em_self(), p2), PID_TEXT(echo_b, p1), bs, ms_since(t0));
    em_send_remote(em_atom("echo"), b, EM_ARR(em_pid(em_self()), em_str("by name")));
    expect_echo(em_str("by name"), "the name echo on b");
    say("sent \"by name\" to the name echo on %s, got [echo, \"by name\"] back", bs);

    /* 2. A process spawned on c, counting what it gets by pid and by name. */
    em_pid_t counter_c = spawn_on(c, cs, "demo:counter", EM_NIL, 0, NULL);
    say("spawned demo:counter on %s as %s (it registers there as counter)", cs,
        PID_TEXT(counter_c, p1));
    for (int i = 0; i < 3; i++)
        em_send(counter_c, em_atom("tick"));
    int64_t count = counter_get(counter_c, c);
    if (count != 3)
        fail("demo:counter on %s counted %" PRId64 " messages, not 3", cs, count);
    say("sent 3 messages to pid %s: it counted 3", PID_TEXT(counter_c, p1));
    em_send_remote(em_atom("counter"), c, em_atom("tick"));
    em_send_remote(em_atom("counter"), c, em_atom("tick"));
    count = counter_get(0, c);
    if (count != 5)
        fail("demo:counter on %s counted %" PRId64 " messages, not 5", cs, count);
    say("sent 2 more to the name counter on %s: it counted 5", cs);

    /* 3. A supervisor on b restarting a worker killed from here. */
    em_pid_t sup_b = spawn_on(b, bs, "demo:sup", em_int(2), 0, NULL);
    say("spawned demo:sup on %s as %s: a supervisor of two demo:worker, demo_w1 and demo_w2",
        bs, PID_TEXT(sup_b, p1));
    em_pid_t w1 = ping_name(em_atom("demo_w1"), b, 0);
    if (!w1)
        fail("demo_w1 on %s does not answer ping", bs);
    say("demo_w1 on %s answers ping as %s", bs, PID_TEXT(w1, p1));
    em_term w1_ref;
    if (em_monitor(w1, &w1_ref) != 0)
        fail("cannot monitor %s", PID_TEXT(w1, p1));
    int64_t kill_at = now_us(CLOCK_MONOTONIC);
    em_exit_pid(w1, em_atom("kill"));
    say("sent exit(kill) to demo_w1 %s on %s", PID_TEXT(w1, p1), bs);
    em_term reason;
    if (em_receive_match(NULL, CALL_MS, "['DOWN', _, process, _, ~t]", &reason) != 0)
        fail("no DOWN from demo_w1 within %d ms", CALL_MS);
    say("DOWN from %s: %s", PID_TEXT(w1, p1), text(reason, buf, sizeof buf));
    em_pid_t w1_again = ping_name(em_atom("demo_w1"), b, w1);
    if (!w1_again)
        fail("demo_w1 was not restarted on %s within %d ms", bs, CALL_MS);
    say("demo_w1 answers again, as %s: the supervisor on %s restarted it (%.1f ms after the kill)",
        PID_TEXT(w1_again, p1), bs, ms_since(kill_at));

    /* 4. A monitor, a link and a node monitor on c; then c is killed. */
    em_term counter_ref;
    if (em_monitor(counter_c, &counter_ref) != 0)
        fail("cannot monitor %s", PID_TEXT(counter_c, p1));
    say("monitoring demo:counter %s on %s", PID_TEXT(counter_c, p1), cs);
    em_trap_exit(true);
    em_pid_t worker_c = spawn_on(c, cs, "demo:worker", em_atom("c_worker"), EM_SPAWN_LINK, NULL);
    say("spawned demo:worker on %s as %s, linked to me (I trap exits)", cs,
        PID_TEXT(worker_c, p1));
    if (em_monitor_node(c, true) != 0)
        fail("cannot monitor node %s", em_atom_name(c));
    say("monitoring node %s", em_atom_name(c));
    say("waiting for %s to go down", cs);

    bool got_down = false, got_exit = false, got_nodedown = false;
    int64_t deadline = em_now_ms() + C_DOWN_WAIT_MS;
    int64_t killed_us = -1;
    while (!(got_down && got_exit && got_nodedown)) {
        int64_t left = deadline - em_now_ms();
        em_term m, r;
        em_pid_t who;
        if (left <= 0 || em_receive(&m, left) != 0)
            fail("%s: still waiting for %s%s%s", cs, got_down ? "" : " the DOWN",
                 got_exit ? "" : " the EXIT", got_nodedown ? "" : " the nodedown");
        int64_t at = now_us(CLOCK_REALTIME);
        enum { EV_OTHER, EV_DOWN, EV_EXIT, EV_NODEDOWN } what = EV_OTHER;
        if (em_match(m, "['DOWN', _, process, ~p, ~t]", &who, &r) && who == counter_c)
            what = EV_DOWN;
        else if (em_match(m, "['EXIT', ~p, ~t]", &who, &r) && who == worker_c)
            what = EV_EXIT;
        else if (em_match(m, "[nodedown, ~t]", &r) && em_equal(r, c))
            what = EV_NODEDOWN;
        if (what == EV_OTHER)
            continue;   /* a late pong, say: of no interest */
        if (!got_down && !got_exit && !got_nodedown) {
            /* The first sign of c's end: the script wrote the kill's time
             * before the kill, and the rest must follow soon. */
            killed_us = kill_time_us(kill_file);
            deadline = em_now_ms() + EVENTS_WAIT_MS;
        }
        after_kill(killed_us, at, when, sizeof when);
        if (what == EV_DOWN) {
            got_down = true;
            say("DOWN from %s (demo:counter on %s): %s (the monitor fired%s)",
                PID_TEXT(who, p1), cs, text(r, buf, sizeof buf), when);
        } else if (what == EV_EXIT) {
            got_exit = true;
            say("EXIT from %s (demo:worker on %s): %s (the link fired%s)", PID_TEXT(who, p1), cs,
                text(r, buf, sizeof buf), when);
        } else {
            got_nodedown = true;
            say("nodedown %s (the node monitor fired%s)", text(r, buf, sizeof buf), when);
        }
    }
    em_monitor_node(c, false);

    /* 5. The rest of the cluster carries on. */
    n = em_nodes(nodes, 16);
    if (n != 1 || !em_equal(nodes[0], b))
        fail("after %s's end, nodes are %zu, not just %s", cs, n, em_atom_name(b));
    em_send_remote(em_atom("echo"), b, EM_ARR(em_pid(em_self()), em_atom("still_here")));
    expect_echo(em_atom("still_here"), "demo:echo on b");
    say("still connected to %s, and echo there still answers", em_atom_name(b));
    say("demo finished");
}

const em_module_export ember_module_exports[] = {
    {"main", demo_main},
    {NULL, NULL},
};
