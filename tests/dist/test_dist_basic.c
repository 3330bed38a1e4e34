/*
 * test_dist_basic.c - distribution between real nodes (each a child OS
 * process): messages to remote pids and what travels inside them, ordering and
 * throughput, remote spawn, remote registered names, the mesh and hidden nodes,
 * large messages beside small ones, and the busy wait after input.
 *
 * Every test starts its nodes with dist_harness.h: the test itself only
 * coordinates; each node checks what it sees with CHECK* and exits 0 only if
 * all held.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <cmocka.h>

#include "check.h"
#include "dist_harness.h"
#include "ember.h"

/* ---------------------------------------------------------- shared servers */

/* An echo server: ['who', From] -> ['me', Self]; ['echo', T, From] ->
 * ['echoed', T]; ['bounce', P, From]: P should be this process's own pid,
 * back from a trip to another node; it sends a message to P, which must reach
 * itself, and answers ['bounce_ok', P == self, arrived]. */
static void echo_server(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m, t;
        em_pid_t from, p;
        if (em_receive(&m, EM_INFINITY) != 0)
            continue;
        if (dh_answer_who(m)) {
        } else if (em_match(m, "[echo, ~t, ~p]", &t, &from)) {
            em_send(from, EM_ARR(em_atom("echoed"), t));
        } else if (em_match(m, "[bounce, ~p, ~p]", &p, &from)) {
            bool same = p == em_self();
            em_send(p, EM_ARR(em_atom("bounced"), em_int(7)));
            bool arrived = em_receive_match(NULL, 2000, "[bounced, 7]") == 0;
            em_send(from, EM_ARR(em_atom("bounce_ok"), em_bool(same), em_bool(arrived)));
        } else if (em_is_atom(m, "stop")) {
            em_heap_release(mk);
            return;
        }
        em_heap_release(mk);
    }
}

/* Spawn-links fn and registers it as name (a CHECK failure if either fails). */
static em_pid_t serve(em_proc_fn fn, const char *name)
{
    em_pid_t p = 0;
    CHECK_INT(0, em_spawn_link_named(fn, name, EM_NIL, &p));
    CHECK_INT(0, em_register(em_atom(name), p));
    return p;
}

/* A node that serves an echo and waits for "stop" from the test. */
static void role_echo_node(em_term arg)
{
    (void)arg;
    serve(echo_server, "echo");
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
}

/* Starts distribution with c, connects to the peer the test names (its atom
 * goes to *peer when peer is not NULL) and finds its echo: the echo's pid, or 0
 * after a CHECK failure. */
static em_pid_t start_find_echo(const em_dist_config *c, em_term *peer)
{
    if (dh_start(c) != 0)
        return 0;
    em_term b = dh_connect_peer();
    if (peer)
        *peer = b;
    return b == EM_NONE ? 0 : dh_ask_pid("echo", b, 5000);
}

/* The usual shape of a two-node test: B serves (role_b), A works (role_a) and
 * ends by itself; then B is told to stop. */
static void run_pair(const char *a_name, em_proc_fn role_a, const char *b_name, em_proc_fn role_b,
                     int a_timeout_ms)
{
    dh_child a, b;
    dh_spawn(&b, b_name, role_b);
    int port = dh_port(&b);
    dh_spawn(&a, a_name, role_a);
    dh_port(&a);
    dh_say(&a, "peer %s:%d", b_name, port);
    DH_ASSERT_ENDS_OK(&a, a_timeout_ms);
    dh_say(&b, "stop");
    DH_ASSERT_ENDS_OK(&b, 10000);
}

/* ------------------------------------------------ 1. remote send and receive */

static void role_send_a(em_term arg)
{
    (void)arg;
    char e[256], g[256];
    em_dist_config c = dh_config();
    em_term b = EM_NONE;
    em_pid_t echo = start_find_echo(&c, &b);
    if (!echo)
        return;
    /* The pid names a process of B. */
    if (em_pid_node(echo) == 0)
        CHECK_FAIL("the echo's pid %llx has node bits 0: it reads as a local pid",
                   (unsigned long long)echo);
    if (em_node_of(echo) != b)
        CHECK_FAIL("em_node_of(echo): expected %s, got %s", em_atom_name(b),
                   dh_fmt(em_node_of(echo), g, sizeof g));
    CHECK(em_node_of(em_self()) == em_node());
    CHECK_STR("send_a@127.0.0.1", em_atom_name(em_node()));
    CHECK(!em_is_alive(echo));   /* is_alive speaks of local processes only */

    /* Every kind of term goes out and comes back equal, our own pid and
     * reference among them. */
    unsigned char bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 7 + 3);
    em_term ref = em_make_ref();
    em_term kv[] = {em_atom("k"), em_str("v"), em_int(1), EM_ARR(em_int(2), em_int(3))};
    em_term payload = EM_ARR(em_int(1), em_int(-7), em_int(INT64_MIN), em_uint(UINT64_MAX),
                             em_float(3.5), em_str("text"), em_bin(bytes, 10),
                             em_bin(bytes, sizeof bytes), em_map(2, kv), em_atom("an_atom"),
                             EM_NIL, EM_TRUE, EM_FALSE, EM_ARR(EM_ARR(EM_ARR(em_int(9)))),
                             em_pid(em_self()), ref, em_pid(echo));
    CHECK(payload != EM_NONE);
    CHECK_INT(0, em_send(echo, EM_ARR(em_atom("echo"), payload, em_pid(em_self()))));
    em_term got = EM_NONE;
    int rc = em_receive_match(NULL, 5000, "[echoed, ~t]", &got);
    CHECK_INT(0, rc);
    if (rc == 0) {
        if (!em_equal(payload, got))
            CHECK_FAIL("the echoed term differs: expected %s, got %s", dh_fmt(payload, e, sizeof e),
                       dh_fmt(got, g, sizeof g));
        em_pid_t mine = 0, theirs = 0;
        CHECK(em_get_pid(em_at(got, 14), &mine));
        if (mine != em_self())
            CHECK_FAIL("our pid back from B: expected %llx, got %llx",
                       (unsigned long long)em_self(), (unsigned long long)mine);
        CHECK(em_equal(ref, em_at(got, 15)));
        CHECK(em_compare(ref, em_at(got, 15)) == 0);
        CHECK(em_get_pid(em_at(got, 16), &theirs));
        CHECK(theirs == echo);
    }

    /* B's pid goes to B and back to B: it names the echo itself there. */
    CHECK_INT(0, em_send(echo, EM_ARR(em_atom("bounce"), em_pid(echo), em_pid(em_self()))));
    bool same = false, arrived = false;
    em_term ts = EM_NONE, ta = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "[bounce_ok, ~t, ~t]", &ts, &ta));
    em_get_bool(ts, &same);
    em_get_bool(ta, &arrived);
    if (!same)
        CHECK_FAIL("B's pid sent to B and back does not equal the echo's own pid there");
    if (!arrived)
        CHECK_FAIL("a message sent on B to B's pid that came back from A did not arrive");

    /* Round trips, one after another: none is lost, and they are quick. */
    int n = 2000 / (EMBER_STRESS_SCALE > 20 ? 20 : EMBER_STRESS_SCALE);
    int64_t t0 = dh_now_ms();
    for (int i = 0; i < n; i++) {
        em_mark mk = em_heap_mark();
        CHECK_INT(0, em_send(echo, EM_ARR(em_atom("echo"), em_int(i), em_pid(em_self()))));
        int64_t v = -1;
        if (em_receive_match(NULL, 5000, "[echoed, ~i]", &v) != 0 || v != i) {
            CHECK_FAIL("round trip %d: expected [echoed, %d], got %lld", i, i, (long long)v);
            em_heap_release(mk);
            break;
        }
        em_heap_release(mk);
    }
    int64_t ms = dh_now_ms() - t0;
    printf("[send_a] %d round trips in %lld ms (%.1f us each)\n", n, (long long)ms,
           n ? (double)ms * 1000.0 / n : 0.0);
    fflush(stdout);
    /* Nothing else came. */
    em_term extra;
    if (!dh_quiet(100, &extra))
        CHECK_FAIL("an unexpected message: %s", dh_fmt(extra, g, sizeof g));
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    CHECK_INT(0, st.bad_frames);
    CHECK_INT(1, st.peers);
    CHECK(st.msgs_out >= (uint64_t)n);
    CHECK(st.msgs_in >= (uint64_t)n);
}

static void test_remote_send_and_receive(void **state)
{
    (void)state;
    run_pair("send_a@127.0.0.1", role_send_a, "send_b@127.0.0.1", role_echo_node, DH_WAIT_MS);
}

/* --------------------------------------------------------------- 2. ordering */

/* The sink: ['start', Mode, N, From] then N messages: [Seq] from one sender
 * (mode 1), or [Sender, Seq] from senders 0 and 1 (mode 2) each counting from
 * 0. It answers ['result', Received, FirstBad, Expected, Got] (FirstBad -1 when
 * all were in order). */
static void sink_server(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        int64_t mode, n;
        em_pid_t from;
        if (em_receive(&m, EM_INFINITY) != 0 || dh_answer_who(m) ||
            !em_match(m, "[start, ~i, ~i, ~p]", &mode, &n, &from)) {
            em_heap_release(mk);
            continue;
        }
        int64_t next[2] = {0, 0}, got_n = 0, bad_at = -1, bad_exp = 0, bad_got = 0;
        while (got_n < n) {
            em_mark mk2 = em_heap_mark();
            int64_t s = -1, seq = -1;
            if (em_receive(&m, 20000) != 0) {
                em_heap_release(mk2);
                break;
            }
            bool ok = mode == 1 ? em_len(m) == 1 && em_get_int(em_at(m, 0), &seq)
                                : em_len(m) == 2 && em_get_int(em_at(m, 0), &s) &&
                                      em_get_int(em_at(m, 1), &seq) && s >= 0 && s <= 1;
            int k = mode == 1 ? 0 : (int)(s < 0 ? 0 : s);
            if ((!ok || seq != next[k]) && bad_at < 0) {
                bad_at = got_n;
                bad_exp = next[k];
                bad_got = seq;
            }
            next[k] = seq + 1;
            got_n++;
            em_heap_release(mk2);
        }
        em_send(from, EM_ARR(em_atom("result"), em_int(got_n), em_int(bad_at), em_int(bad_exp),
                             em_int(bad_got)));
        em_heap_release(mk);
    }
}

static void role_order_b(em_term arg)
{
    (void)arg;
    serve(sink_server, "sink");
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
}

static em_pid_t order_sink;

/* Sender k of mode 2: [k, 0], [k, 1], ... then ['sent', k] to the root. */
static void order_sender(em_term arg)
{
    int64_t k = 0, n = 0;
    em_pid_t root = 0;
    CHECK(em_match(arg, "[~i, ~i, ~p]", &k, &n, &root));
    for (int64_t i = 0; i < n; i++) {
        int rc = EM_SEND_ARR(order_sink, em_int(k), em_int(i));
        if (rc != 0) {
            CHECK_FAIL("sender %lld, message %lld: em_send returned %d", (long long)k, (long long)i, rc);
            break;
        }
    }
    em_send(root, EM_ARR(em_atom("sent"), em_int(k)));
}

/* Waits for the sink's result and checks it; returns the time it came. */
static int64_t order_result(const char *what, int64_t n)
{
    int64_t got = -1, bad = -2, be = 0, bg = 0;
    if (em_receive_match(NULL, 120000, "[result, ~i, ~i, ~i, ~i]", &got, &bad, &be, &bg) != 0) {
        CHECK_FAIL("%s: no result from the sink", what);
        return dh_now_ms();
    }
    int64_t t = dh_now_ms();
    if (got != n)
        CHECK_FAIL("%s: the sink got %lld messages, expected %lld", what, (long long)got, (long long)n);
    if (bad != -1)
        CHECK_FAIL("%s: message %lld out of order: expected seq %lld, got %lld", what, (long long)bad,
                   (long long)be, (long long)bg);
    return t;
}

static void role_order_a(em_term arg)
{
    (void)arg;
    if (dh_start_default() != 0)
        return;
    em_term b = dh_connect_peer();
    if (b == EM_NONE)
        return;
    order_sink = dh_ask_pid("sink", b, 5000);
    if (!order_sink)
        return;
    int64_t n = 1000000 / EMBER_STRESS_SCALE;

    /* One sender. */
    CHECK_INT(0, em_send(order_sink, EM_ARR(em_atom("start"), em_int(1), em_int(n), em_pid(em_self()))));
    int64_t t0 = dh_now_ms();
    for (int64_t i = 0; i < n; i++) {
        int rc = EM_SEND_ARR(order_sink, em_int(i));
        if (rc != 0) {
            CHECK_FAIL("message %lld: em_send returned %d", (long long)i, rc);
            break;
        }
    }
    int64_t t_sent = dh_now_ms();
    int64_t t1 = order_result("one sender", n);
    double s = (double)(t1 - t0) / 1000.0;
    printf("[order_a] one sender: %lld messages sent in %lld ms, all received in %lld ms: %.0f msgs/s\n",
           (long long)n, (long long)(t_sent - t0), (long long)(t1 - t0), s > 0 ? (double)n / s : 0.0);

    /* Two senders interleaving: each one's order holds. */
    int64_t half = n / 2;
    CHECK_INT(0, em_send(order_sink,
                         EM_ARR(em_atom("start"), em_int(2), em_int(2 * half), em_pid(em_self()))));
    t0 = dh_now_ms();
    for (int k = 0; k < 2; k++)
        CHECK_INT(0, em_spawn_link(order_sender, EM_ARR(em_int(k), em_int(half), em_pid(em_self())), NULL));
    t1 = order_result("two senders", 2 * half);
    s = (double)(t1 - t0) / 1000.0;
    printf("[order_a] two senders: %lld messages in %lld ms: %.0f msgs/s\n", (long long)(2 * half),
           (long long)(t1 - t0), s > 0 ? (double)(2 * half) / s : 0.0);
    fflush(stdout);
    for (int k = 0; k < 2; k++)
        CHECK_INT(0, em_receive_match(NULL, 5000, "[sent, _]"));
}

static void test_ordering_and_throughput(void **state)
{
    (void)state;
    run_pair("order_a@127.0.0.1", role_order_a, "order_b@127.0.0.1", role_order_b, 50000);
}

/* ------------------------------------------------------------ 3. remote spawn */

/* Registered on B as "dt_hello": tells Parent ['spawned', Self, node()]. */
static void fn_hello(em_term arg)
{
    em_pid_t parent = 0;
    if (em_match(arg, "[~p]", &parent))
        em_send(parent, EM_ARR(em_atom("spawned"), em_pid(em_self()), em_node()));
}

/* "dt_exit_after_go": [Parent, Reason]: ['spawned', Self] to Parent, waits for
 * 'go', ends with Reason. */
static void fn_exit_after_go(em_term arg)
{
    em_pid_t parent = 0;
    em_term reason = EM_NONE;
    if (!em_match(arg, "[~p, ~t]", &parent, &reason))
        em_exit(em_atom("bad_arg"));
    em_send(parent, EM_ARR(em_atom("spawned"), em_pid(em_self())));
    em_receive_match(NULL, 10000, "go");
    em_exit(reason);
}

static volatile int *dt_nowhere;

/* "dt_crash_after_go": [Parent]: like the above, then a NULL write. */
static void fn_crash_after_go(em_term arg)
{
    em_pid_t parent = 0;
    if (!em_match(arg, "[~p]", &parent))
        em_exit(em_atom("bad_arg"));
    em_send(parent, EM_ARR(em_atom("spawned"), em_pid(em_self())));
    em_receive_match(NULL, 10000, "go");
    *dt_nowhere = 1;
}

static void role_spawn_b(em_term arg)
{
    (void)arg;
    CHECK_INT(0, em_register_fn("dt_hello", fn_hello));
    CHECK_INT(0, em_register_fn("dt_exit_after_go", fn_exit_after_go));
    CHECK_INT(0, em_register_fn("dt_crash_after_go", fn_crash_after_go));
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
}

/* Waits for ['spawned', P, ...] from pid p and sends it 'go'. */
static void spawned_then_go(em_pid_t p, const char *what)
{
    em_pid_t who = 0;
    if (em_receive_match(NULL, 5000, "[spawned, ~p]", &who) != 0) {
        CHECK_FAIL("%s: the remote child never said it runs", what);
        return;
    }
    if (who != p)
        CHECK_FAIL("%s: em_spawn_on gave %llx, the child says it is %llx", what, (unsigned long long)p,
                   (unsigned long long)who);
    em_send(p, em_atom("go"));
}

/* Not trapping exits: spawn-links a remote child that ends with boom when its
 * parent (arg) says go; this process must die with it. */
static void linked_spawner(em_term arg)
{
    em_pid_t root = 0, child = 0;
    em_term node = EM_NONE;
    CHECK(em_match(arg, "[~p, ~a]", &root, &node));
    int rc = em_spawn_on(node, "dt_exit_after_go", EM_ARR(em_pid(root), em_atom("boom")), EM_SPAWN_LINK,
                         &child, NULL, 5000);
    CHECK_INT(0, rc);
    em_send(root, EM_ARR(em_atom("child"), em_pid(child)));
    em_sleep(10000);
    CHECK_FAIL("linked_spawner outlived its remote child's exit with boom");
}

static void role_spawn_a(em_term arg)
{
    (void)arg;
    char g[256];
    if (dh_start_default() != 0)
        return;
    em_term b = dh_connect_peer();
    if (b == EM_NONE)
        return;
    em_pid_t p = 0, who = 0;
    em_term node = EM_NONE, reason = EM_NONE, ref = EM_NONE, dref = EM_NONE;

    /* A plain remote spawn runs there. */
    int rc = em_spawn_on(b, "dt_hello", EM_ARR(em_pid(em_self())), 0, &p, NULL, 5000);
    CHECK_INT(0, rc);
    if (rc == 0) {
        CHECK(em_node_of(p) == b);
        CHECK_INT(0, em_receive_match(NULL, 5000, "[spawned, ~p, ~a]", &who, &node));
        CHECK(who == p);
        if (node != b)
            CHECK_FAIL("the child runs on %s, expected %s", dh_fmt(node, g, sizeof g), em_atom_name(b));
    }

    /* EM_SPAWN_LINK: the child's exit reason reaches us, trapping. */
    em_trap_exit(true);
    em_term why = EM_ARR(em_atom("custom"), em_int(42));
    rc = em_spawn_on(b, "dt_exit_after_go", EM_ARR(em_pid(em_self()), why), EM_SPAWN_LINK, &p, NULL, 5000);
    CHECK_INT(0, rc);
    if (rc == 0) {
        spawned_then_go(p, "link");
        CHECK_INT(0, em_receive_match(NULL, 5000, "['EXIT', ~p, ~t]", &who, &reason));
        CHECK(who == p);
        if (!em_equal(reason, why))
            CHECK_FAIL("link: the EXIT's reason: expected [custom, 42], got %s", dh_fmt(reason, g, sizeof g));
    }

    /* ... and a crash's reason too. */
    rc = em_spawn_on(b, "dt_crash_after_go", EM_ARR(em_pid(em_self())), EM_SPAWN_LINK, &p, NULL, 5000);
    CHECK_INT(0, rc);
    if (rc == 0) {
        spawned_then_go(p, "crash");
        reason = EM_NONE;
        CHECK_INT(0, em_receive_match(NULL, 5000, "['EXIT', ~p, ~t]", &who, &reason));
        CHECK(who == p);
        if (!em_match(reason, "[fault, sigsegv, _]"))
            CHECK_FAIL("crash: the EXIT's reason: expected [fault, sigsegv, _], got %s",
                       dh_fmt(reason, g, sizeof g));
    }

    /* EM_SPAWN_MONITOR: a DOWN with the reason, under the ref we were given,
     * and no EXIT (there is no link). */
    rc = em_spawn_on(b, "dt_exit_after_go", EM_ARR(em_pid(em_self()), em_atom("bye")), EM_SPAWN_MONITOR,
                     &p, &ref, 5000);
    CHECK_INT(0, rc);
    if (rc == 0) {
        CHECK(em_typeof(ref) == EM_T_REF);
        spawned_then_go(p, "monitor");
        reason = EM_NONE;
        CHECK_INT(0, em_receive_match(NULL, 5000, "['DOWN', ~t, process, ~p, ~t]", &dref, &who, &reason));
        CHECK(who == p);
        if (!em_equal(ref, dref))
            CHECK_FAIL("monitor: the DOWN's ref %s is not the one em_spawn_on gave, %s",
                       dh_fmt(dref, g, sizeof g), dh_fmt(ref, g + 128, sizeof g - 128));
        CHECK(em_is_atom(reason, "bye"));
        CHECK(em_receive_match(NULL, 200, "['EXIT', _, _]") == EM_ETIMEDOUT);
        /* The monitor has fired: demonitoring it now finds nothing. */
        CHECK_INT(0, em_demonitor(ref, 0));
    }

    /* A function B does not have. */
    p = 0;
    rc = em_spawn_on(b, "no_such_function", EM_NIL, 0, &p, NULL, 5000);
    if (rc != EM_ENOTFOUND)
        CHECK_FAIL("em_spawn_on of an unknown function: expected %d (EM_ENOTFOUND), got %d (%s)",
                   EM_ENOTFOUND, rc, em_strerror(rc));
    rc = em_spawn_on(b, "dt_hello", EM_NIL, EM_SPAWN_LINK | EM_SPAWN_MONITOR, &p, NULL, 5000);
    CHECK_INT(EM_EINVAL, rc);

    /* A process that does not trap exits dies with its remote child. */
    em_trap_exit(false);
    em_pid_t ls = 0, child = 0;
    CHECK_INT(0, em_spawn(linked_spawner, EM_ARR(em_pid(em_self()), b), &ls));
    CHECK_INT(0, em_monitor(ls, NULL));
    if (em_receive_match(NULL, 5000, "[child, ~p]", &child) == 0) {
        spawned_then_go(child, "non-trapping link");
        reason = EM_NONE;
        CHECK_INT(0, em_receive_match(NULL, 5000, "['DOWN', _, process, ~p, ~t]", &who, &reason));
        if (!em_is_atom(reason, "boom"))
            CHECK_FAIL("the non-trapping spawner ended with %s, expected boom", dh_fmt(reason, g, sizeof g));
    } else {
        CHECK_FAIL("the spawner did not report its child");
    }
    em_term extra;
    if (!dh_quiet(100, &extra))
        CHECK_FAIL("an unexpected message: %s", dh_fmt(extra, g, sizeof g));
}

static void test_remote_spawn(void **state)
{
    (void)state;
    run_pair("spawn_a@127.0.0.1", role_spawn_a, "spawn_b@127.0.0.1", role_spawn_b, DH_WAIT_MS);
}

/* ---------------------------------------------------- 4. remote registered names */

/* 'box': counts what it gets besides 'who' and 'report'; ['hello', N, From]
 * is answered with ['hello_ack', N]; ['report', From] with ['report', Count,
 * LastOther] (LastOther: the last message that was neither hello nor control). */
static void box_server(em_term arg)
{
    (void)arg;
    int64_t count = 0, n;
    em_term last_other = EM_NIL;
    for (;;) {
        em_term m;
        em_pid_t from;
        if (em_receive(&m, EM_INFINITY) != 0 || dh_answer_who(m))
            continue;
        if (em_match(m, "[report, ~p]", &from)) {
            em_send(from, EM_ARR(em_atom("report"), em_int(count), last_other));
            continue;
        }
        count++;
        if (em_match(m, "[hello, ~i, ~p]", &n, &from))
            em_send(from, EM_ARR(em_atom("hello_ack"), em_int(n)));
        else
            last_other = m;
    }
}

static void role_names_b(em_term arg)
{
    (void)arg;
    serve(box_server, "box");
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    CHECK_INT(0, st.bad_frames);
}

static void role_names_a(em_term arg)
{
    (void)arg;
    char g[256];
    if (dh_start_default() != 0)
        return;
    em_term b = dh_connect_peer();
    if (b == EM_NONE)
        return;
    int64_t n = -1, count = -1;
    em_term other = EM_NONE;

    /* A name on B. */
    CHECK_INT(0, em_send_remote(em_atom("box"), b, EM_ARR(em_atom("hello"), em_int(1), em_pid(em_self()))));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[hello_ack, ~i]", &n));
    CHECK_INT(1, n);

    /* A name nobody holds there: not an error, nothing arrives anywhere. */
    CHECK_INT(0, em_send_remote(em_atom("nobody_here"), b, EM_ARR(em_atom("lost"), em_pid(em_self()))));
    /* Sent after it on the same connection: by the time the report comes, the
     * lost message has been handled. */
    CHECK_INT(0, em_send_remote(em_atom("box"), b, EM_ARR(em_atom("report"), em_pid(em_self()))));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[report, ~i, ~t]", &count, &other));
    CHECK_INT(1, count);
    if (other != EM_NIL)
        CHECK_FAIL("box got a message meant for nobody: %s", dh_fmt(other, g, sizeof g));
    em_term extra;
    if (!dh_quiet(200, &extra))
        CHECK_FAIL("an unexpected message: %s", dh_fmt(extra, g, sizeof g));

    /* On this node: a registered name as em_send_named, a missing one quietly. */
    CHECK_INT(0, em_register(em_atom("me_here"), em_self()));
    CHECK_INT(0, em_send_remote(em_atom("me_here"), em_node(), em_atom("to_myself")));
    CHECK_INT(0, em_receive_match(NULL, 1000, "to_myself"));
    CHECK_INT(0, em_send_remote(em_atom("nobody_here"), em_node(), em_atom("lost")));
    CHECK_INT(EM_EINVAL, em_send_remote(em_str("box"), b, EM_NIL));
    CHECK_INT(EM_EINVAL, em_send_remote(em_atom("box"), em_str("b"), EM_NIL));
    if (!dh_quiet(100, &extra))
        CHECK_FAIL("an unexpected message: %s", dh_fmt(extra, g, sizeof g));
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    CHECK_INT(0, st.bad_frames);
}

static void test_remote_registered_names(void **state)
{
    (void)state;
    run_pair("names_a@127.0.0.1", role_names_a, "names_b@127.0.0.1", role_names_b, DH_WAIT_MS);
}

/* ------------------------------------------------------------------ 11. mesh */

#define MESH_A "mesh_a@127.0.0.1"
#define MESH_B "mesh_b@127.0.0.1"
#define MESH_C "mesh_c@127.0.0.1"
#define MESH_H "mesh_h@127.0.0.1"
/* How long a node waits for the mesh to form before it checks its lists, and
 * (with room for the other checks) how long the test waits for its answer. */
#define MESH_WAIT_MS 20000
#define MESH_CHECKED_MS (MESH_WAIT_MS + 10000)

/* Checks that the visible (or hidden) list is exactly the given nodes. */
static void check_nodes_exactly(bool hidden, const char *const *names, size_t n)
{
    em_term list[16];
    size_t got = hidden ? em_nodes_hidden(list, 16) : em_nodes(list, 16);
    char all[512] = "";
    for (size_t i = 0; i < got && i < 16; i++) {
        strncat(all, em_atom_name(list[i]), sizeof all - strlen(all) - 2);
        strncat(all, " ", sizeof all - strlen(all) - 1);
    }
    bool ok = got == n;
    for (size_t j = 0; ok && j < n; j++) {
        bool found = false;
        for (size_t i = 0; i < got && i < 16; i++)
            found |= list[i] == em_atom(names[j]);
        ok = found;
    }
    if (!ok) {
        char want[512] = "";
        for (size_t j = 0; j < n; j++) {
            strncat(want, names[j], sizeof want - strlen(want) - 2);
            strncat(want, " ", sizeof want - strlen(want) - 1);
        }
        CHECK_FAIL("[%s] em_nodes%s: expected { %s}, got { %s}", dh_me.name, hidden ? "_hidden" : "", want,
                   all);
    }
}

/* A and C connect to B only, when told; each waits for "check" and checks
 * what it lists, then "stop". H does the same as a hidden node. B waits. */
static void role_mesh(em_term arg)
{
    (void)arg;
    em_dist_config c = dh_config();
    bool hidden = strcmp(dh_me.name, MESH_H) == 0;
    c.hidden = hidden;
    if (dh_start(&c) != 0)
        return;
    if (strcmp(dh_me.name, MESH_B) != 0) {
        if (dh_connect_peer() == EM_NONE)
            return;
        dh_tell("connected");
    }
    char line[256];
    while (dh_hear(line, sizeof line, 60000)) {
        if (strcmp(line, "stop") == 0)
            return;
        if (strncmp(line, "check", 5) != 0)
            continue;
        static const char *const a_sees[] = {MESH_B, MESH_C}, *const b_sees[] = {MESH_A, MESH_C},
                                  *const c_sees[] = {MESH_A, MESH_B}, *const h_sees[] = {MESH_B},
                                  *const b_hidden[] = {MESH_H};
        const char *const *want = NULL;
        size_t nw = 0;
        if (strcmp(dh_me.name, MESH_A) == 0)
            want = a_sees, nw = 2;
        else if (strcmp(dh_me.name, MESH_B) == 0)
            want = b_sees, nw = 2;
        else if (strcmp(dh_me.name, MESH_C) == 0)
            want = c_sees, nw = 2;
        else
            want = h_sees, nw = 1;
        /* The mesh forms in the background, so wait (one deadline for every
         * node awaited) until each expected node is listed before checking the
         * lists exactly. Two seconds were tight under ThreadSanitizer on a
         * loaded machine; MESH_WAIT_MS is generous, and only a mesh that never
         * forms uses it up. B also waits for the hidden node it should list. */
        int64_t deadline = dh_now_ms() + MESH_WAIT_MS;
        for (size_t i = 0; i < nw; i++)
            if (!dh_wait_listed(em_atom(want[i]), false, true, deadline - dh_now_ms()))
                break;
        if (strcmp(dh_me.name, MESH_B) == 0)
            dh_wait_listed(em_atom(MESH_H), true, true, deadline - dh_now_ms());
        check_nodes_exactly(false, want, nw);
        if (strcmp(dh_me.name, MESH_B) == 0)
            check_nodes_exactly(true, b_hidden, 1);
        else
            check_nodes_exactly(true, NULL, 0);
        /* Nobody but B ever connects to the hidden node. */
        if (!hidden && strcmp(dh_me.name, MESH_B) != 0 && dh_wait_listed(em_atom(MESH_H), true, true, 300))
            CHECK_FAIL("[%s] the hidden node was passed on to us", dh_me.name);
        em_dist_stats st;
        CHECK_INT(0, em_dist_stats_get(&st));
        CHECK_INT(hidden ? 1 : strcmp(dh_me.name, MESH_B) == 0 ? 3 : 2, st.peers);
        dh_tell("checked");
    }
    CHECK_FAIL("[%s] the test never said stop", dh_me.name);
}

static void test_mesh_and_hidden_nodes(void **state)
{
    (void)state;
    dh_child a, b, c, h;
    dh_spawn(&b, MESH_B, role_mesh);
    int port = dh_port(&b);
    /* The hidden node joins first, so that B knows it when A and C arrive. */
    dh_spawn(&h, MESH_H, role_mesh);
    dh_port(&h);
    dh_say(&h, "peer %s:%d", MESH_B, port);
    dh_expect(&h, "connected", NULL, 0, 10000);
    dh_spawn(&a, MESH_A, role_mesh);
    dh_port(&a);
    dh_say(&a, "peer %s:%d", MESH_B, port);
    dh_expect(&a, "connected", NULL, 0, 10000);
    dh_spawn(&c, MESH_C, role_mesh);
    dh_port(&c);
    dh_say(&c, "peer %s:%d", MESH_B, port);
    dh_expect(&c, "connected", NULL, 0, 10000);
    dh_child *all[] = {&c, &a, &b, &h};
    for (int i = 0; i < 4; i++) {
        dh_say(all[i], "check");
        dh_expect(all[i], "checked", NULL, 0, MESH_CHECKED_MS);
    }
    for (int i = 0; i < 4; i++)
        dh_say(all[i], "stop");
    for (int i = 0; i < 4; i++)
        DH_ASSERT_ENDS_OK(all[i], 10000);
}

/* --------------------------------------------------------- 12. large messages */

static uint64_t fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* 'big': ['big', Bin, Sum, Round, From] then 100 messages ['small', Round, I]
 * from the same sender; answers ['big_ok', Round, SumOk, SmallsInOrder, Len]. */
static void big_server(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m, bin = EM_NONE;
        uint64_t sum = 0;
        int64_t round = 0;
        em_pid_t from;
        if (em_receive(&m, EM_INFINITY) != 0 || dh_answer_who(m) ||
            !em_match(m, "[big, ~b, ~u, ~i, ~p]", &bin, &sum, &round, &from)) {
            em_heap_release(mk);
            continue;
        }
        const void *data = NULL;
        size_t len = 0;
        em_get_bin(bin, &data, &len);
        bool sum_ok = fnv1a(data, len) == sum;
        bool in_order = true;
        for (int64_t i = 0; i < 100; i++) {
            int64_t r = -1, k = -1;
            if (em_receive_match(&m, 10000, "[small, ~i, ~i]", &r, &k) != 0 || r != round || k != i) {
                in_order = false;
                break;
            }
        }
        em_send(from, EM_ARR(em_atom("big_ok"), em_int(round), em_bool(sum_ok), em_bool(in_order),
                             em_uint(len)));
        em_heap_release(mk);
    }
}

static void role_big_b(em_term arg)
{
    (void)arg;
    serve(echo_server, "echo");
    serve(big_server, "big");
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
}

static atomic_int big_done;

/* Round trips to B's echo until big_done; then ['pings', Count, MaxMs]. */
static void big_pinger(em_term arg)
{
    em_pid_t root = 0, echo = 0;
    CHECK(em_match(arg, "[~p, ~p]", &root, &echo));
    int64_t count = 0, max_ms = 0;
    while (!atomic_load(&big_done)) {
        em_mark mk = em_heap_mark();
        int64_t t0 = dh_now_ms(), v = -1;
        em_send(echo, EM_ARR(em_atom("echo"), em_int(count), em_pid(em_self())));
        if (em_receive_match(NULL, 10000, "[echoed, ~i]", &v) != 0 || v != count) {
            CHECK_FAIL("ping %lld: no echo within 10 s while large messages flowed", (long long)count);
            em_heap_release(mk);
            break;
        }
        int64_t ms = dh_now_ms() - t0;
        if (ms > max_ms)
            max_ms = ms;
        count++;
        em_heap_release(mk);
    }
    em_send(root, EM_ARR(em_atom("pings"), em_int(count), em_int(max_ms)));
}

static void role_big_a(em_term arg)
{
    (void)arg;
    if (dh_start_default() != 0)
        return;
    em_term b = dh_connect_peer();
    if (b == EM_NONE)
        return;
    em_pid_t big = dh_ask_pid("big", b, 5000), echo = dh_ask_pid("echo", b, 5000);
    if (!big || !echo)
        return;
    CHECK_INT(0, em_spawn_link(big_pinger, EM_ARR(em_pid(em_self()), em_pid(echo)), NULL));
    /* 1 MiB rounds, then one of 3 MiB: larger than the peer buffer (1 MiB). */
    static const size_t sizes[] = {1 << 20, 1 << 20, 1 << 20, 1 << 20, 3 << 20};
    size_t rounds = sizeof sizes / sizeof sizes[0];
    int64_t t0 = dh_now_ms();
    for (size_t r = 0; r < rounds; r++) {
        em_mark mk = em_heap_mark();
        unsigned char *data = malloc(sizes[r]);
        if (!data) {
            CHECK_FAIL("no memory for the test's binary");
            break;
        }
        uint64_t x = 0x9E3779B97F4A7C15ull * (r + 1);
        for (size_t i = 0; i < sizes[r]; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            data[i] = (unsigned char)x;
        }
        em_term bin = em_bin(data, sizes[r]);
        uint64_t sum = fnv1a(data, sizes[r]);
        free(data);
        CHECK(bin != EM_NONE);
        CHECK_INT(0, em_send(big, EM_ARR(em_atom("big"), bin, em_uint(sum), em_int((int64_t)r),
                                         em_pid(em_self()))));
        for (int i = 0; i < 100; i++)
            CHECK_INT(0, EM_SEND_ARR(big, em_atom("small"), em_int((int64_t)r), em_int(i)));
        int64_t rr = -1;
        em_term sum_ok = EM_NONE, in_order = EM_NONE;
        uint64_t len = 0;
        if (em_receive_match(NULL, 15000, "[big_ok, ~i, ~t, ~t, ~u]", &rr, &sum_ok, &in_order, &len) != 0) {
            CHECK_FAIL("round %zu: B never confirmed the large message", r);
            em_heap_release(mk);
            break;
        }
        CHECK_INT((int64_t)r, rr);
        CHECK_INT((int64_t)sizes[r], (int64_t)len);
        if (sum_ok != EM_TRUE)
            CHECK_FAIL("round %zu: the %zu-byte binary arrived changed (checksum differs)", r, sizes[r]);
        if (in_order != EM_TRUE)
            CHECK_FAIL("round %zu: the 100 small messages after the binary were lost or out of order", r);
        em_heap_release(mk);
    }
    int64_t ms = dh_now_ms() - t0;
    atomic_store(&big_done, 1);
    int64_t pings = 0, max_ms = 0;
    CHECK_INT(0, em_receive_match(NULL, 15000, "[pings, ~i, ~i]", &pings, &max_ms));
    printf("[big_a] %zu large messages (7 MiB) in %lld ms; meanwhile %lld round trips, the slowest %lld ms\n",
           rounds, (long long)ms, (long long)pings, (long long)max_ms);
    fflush(stdout);
    if (pings < 1)
        CHECK_FAIL("no round trip completed while the large messages flowed");
    if (max_ms > 2000)
        CHECK_FAIL("a round trip took %lld ms behind the large messages (expected < 2000)", (long long)max_ms);
}

static void test_large_messages(void **state)
{
    (void)state;
    run_pair("big_a@127.0.0.1", role_big_a, "big_b@127.0.0.1", role_big_b, DH_WAIT_MS);
}

/* ------------------------------------------------- peers that come and go */

/* The long-lived node: an echo, and a long tick, so that its distribution
 * thread spends its time blocked in zmq_poll while peers come and go. */
static void role_churn_node(em_term arg)
{
    (void)arg;
    serve(echo_server, "echo");
    em_dist_config c = dh_config();
    c.tick_ms = 20000;
    if (dh_start(&c) != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
}

/* A short-lived node: connects, one round trip with the echo, and leaves in
 * order (em_dist_stop at the end of its root says goodbye). */
static void role_churn_client(em_term arg)
{
    (void)arg;
    if (dh_start_default() != 0)
        return;
    em_term b = dh_connect_peer();
    if (b == EM_NONE)
        return;
    em_pid_t echo = dh_ask_pid("echo", b, 5000);
    if (!echo)
        return;
    int64_t v = -1;
    CHECK_INT(0, em_send(echo, EM_ARR(em_atom("echo"), em_int(5), em_pid(em_self()))));
    if (em_receive_match(NULL, 5000, "[echoed, ~i]", &v) != 0 || v != 5)
        CHECK_FAIL("[%s] no echo from the long-lived node", dh_me.name);
}

/* One node stays; others connect to it one after another, talk, and leave.
 * Each must get in: a peer leaving must not cost the node its ability to
 * accept the next one. */
static void test_peers_come_and_go(void **state)
{
    (void)state;
    dh_child b, c;
    const char *bn = "churn_b@127.0.0.1";
    dh_spawn(&b, bn, role_churn_node);
    int port = dh_port(&b);
    enum { CLIENTS = 20 };
    for (int i = 0; i < CLIENTS; i++) {
        char name[64];
        snprintf(name, sizeof name, "churn%d@127.0.0.1", i);
        dh_spawn(&c, name, role_churn_client);
        dh_port(&c);
        dh_say(&c, "peer %s:%d", bn, port);
        int st = dh_wait(&c, 15000);
        if (st != 0) {
            print_error("client %d of %d (%s) failed (status %d): the long-lived node stopped "
                        "accepting after %d peers had come and gone\n", i + 1, CLIENTS, name, st, i);
            fail();
        }
    }
    dh_say(&b, "stop");
    DH_ASSERT_ENDS_OK(&b, 10000);
}

/* ------------------------------------------------------------ 8. busy wait */

/* CPU seconds this process has used, user and system. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* n round trips to echo, each checked. */
static void echo_round_trips(em_pid_t echo, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        em_mark mk = em_heap_mark();
        em_send(echo, EM_ARR(em_atom("echo"), em_int(i), em_pid(em_self())));
        int64_t v = -1;
        int rc = em_receive_match(NULL, 5000, "[echoed, ~i]", &v);
        em_heap_release(mk);
        if (rc != 0 || v != i) {
            CHECK_FAIL("%s: round trip %d: expected [echoed, %d], got rc %d, value %lld", what, i, i, rc,
                       (long long)v);
            return;
        }
    }
}

/* A busy wait out of range is refused with a clear error; round trips work with
 * it on and off; and once input stops, the node stops polling: over an idle
 * stretch right after a burst of round trips it uses a small part of one core,
 * where a wait that never ended would use all of it. */
static void role_busy_a(em_term arg)
{
    (void)arg;
    int bad[] = {-1, 1000001};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        em_dist_config c = dh_config();
        c.busy_wait_us = bad[i];
        c.log_level = 0;
        int rc = em_dist_start(&c);
        if (rc != EM_EINVAL)
            CHECK_FAIL("em_dist_start with busy_wait_us %d: expected %d (EM_EINVAL), got %d", bad[i],
                       EM_EINVAL, rc);
        if (rc == 0)
            return;
    }
    em_dist_config c = dh_config();
    if (c.busy_wait_us != 1000)
        CHECK_FAIL("the default busy_wait_us: expected 1000, got %d", c.busy_wait_us);
    c.busy_wait_us = 100000;   /* long, so that a wait that does not end shows */
    em_pid_t echo = start_find_echo(&c, NULL);
    if (!echo)
        return;
    echo_round_trips(echo, 300, "busy wait on");
    /* The wait goes on for 100 ms after the last input, then ends. */
    em_sleep(150);
    double c0 = cpu_seconds();
    int64_t t0 = dh_now_ms();
    em_sleep(600);
    double used = cpu_seconds() - c0, span = (double)(dh_now_ms() - t0) / 1000.0;
    printf("[busy_a] idle after the round trips: %.0f ms of CPU in %.0f ms\n", used * 1000, span * 1000);
    fflush(stdout);
    if (used > 0.3 * span)
        CHECK_FAIL("an idle node used %.0f ms of CPU in %.0f ms: the busy wait did not end", used * 1000,
                   span * 1000);
    echo_round_trips(echo, 300, "after the idle stretch");
}

/* The same round trips with the busy wait off. */
static void role_busy_off_a(em_term arg)
{
    (void)arg;
    em_dist_config c = dh_config();
    c.busy_wait_us = 0;
    em_pid_t echo = start_find_echo(&c, NULL);
    if (echo)
        echo_round_trips(echo, 300, "busy wait off");
}

static void test_busy_wait(void **state)
{
    (void)state;
    run_pair("busy_a@127.0.0.1", role_busy_a, "busy_b@127.0.0.1", role_echo_node, DH_WAIT_MS);
    run_pair("busyoff_a@127.0.0.1", role_busy_off_a, "busyoff_b@127.0.0.1", role_echo_node, DH_WAIT_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DH_TEST(test_remote_send_and_receive),
        DH_TEST(test_ordering_and_throughput),
        DH_TEST(test_remote_spawn),
        DH_TEST(test_remote_registered_names),
        DH_TEST(test_mesh_and_hidden_nodes),
        DH_TEST(test_large_messages),
        DH_TEST(test_peers_come_and_go),
        DH_TEST(test_busy_wait),
    };
    return DH_RUN(tests);
}
