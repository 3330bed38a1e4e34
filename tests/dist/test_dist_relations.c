/*
 * test_dist_relations.c - links, monitors and exit signals between processes
 * of two nodes (child OS processes), which must behave as they do between
 * processes of one node: the reason travels, trapping turns it into a message,
 * normal spares a linked process, unlink and demonitor take effect before the
 * exit, a dead pid answers noproc, kill is untrappable, and a remote process
 * linked to a local one dies with it.
 *
 * Node B runs a factory of "victims": processes that do what they are told (end
 * with a reason, trap exits, link to a pid, report their links and monitors).
 * Node A runs one scenario per test and checks what it sees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "dist_harness.h"
#include "ember.h"

/* ------------------------------------------------------------------ node B */

/* A process of B that monitors arg[0], tells arg[1] ['watching'], and ends
 * when the DOWN comes. */
static void local_watcher(em_term arg)
{
    em_pid_t target = 0, tell = 0;
    if (!em_match(arg, "[~p, ~p]", &target, &tell))
        return;
    em_monitor(target, NULL);
    em_send(tell, EM_ARR(em_atom("watching")));
    em_receive_match(NULL, 60000, "['DOWN', _, process, _, _]");
}

/* A victim. Commands:
 *   ['exit', R]          ends with R
 *   ['trap', From]       traps exits; answers ['trapping']
 *   ['watch', From]      from now on forwards each ['EXIT', _, _] it gets as ['got', Msg]
 *   ['link', P, From]    em_link(P); answers ['linked', Rc]
 *   ['info', From]       answers ['info', Links, MonitoredBy]
 *   ['ping', From]       answers ['pong', Self]
 *   ['burst', N, Size, To] sends To N messages ['burst', I], then one binary
 *                        of Size bytes (0: none) as ['bin', Bin], and ends
 *                        with reason done
 *   ['watched', N, From] starts N local processes that monitor it (each ends
 *                        when its DOWN comes); answers ['watched'] once all
 *                        monitors are set                                      */
static void victim(em_term arg)
{
    (void)arg;
    em_pid_t watcher = 0;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m, r;
        em_pid_t from, p;
        int64_t n, sz;
        if (em_receive(&m, EM_INFINITY) != 0) {
        } else if (em_match(m, "[exit, ~t]", &r)) {
            em_exit(r);
        } else if (em_match(m, "[trap, ~p]", &from)) {
            em_trap_exit(true);
            em_send(from, EM_ARR(em_atom("trapping")));
        } else if (em_match(m, "[watch, ~p]", &from)) {
            watcher = from;
        } else if (em_match(m, "['EXIT', _, _]")) {
            if (watcher)
                em_send(watcher, EM_ARR(em_atom("got"), m));
        } else if (em_match(m, "[link, ~p, ~p]", &p, &from)) {
            int rc = em_link(p);
            em_send(from, EM_ARR(em_atom("linked"), em_int(rc)));
        } else if (em_match(m, "[info, ~p]", &from)) {
            em_proc_info info;
            memset(&info, 0, sizeof info);
            em_process_info(em_self(), &info);
            em_send(from, EM_ARR(em_atom("info"), em_int(info.links), em_int(info.monitored_by)));
        } else if (em_match(m, "[ping, ~p]", &from)) {
            em_send(from, EM_ARR(em_atom("pong"), em_pid(em_self())));
        } else if (em_match(m, "[burst, ~i, ~i, ~p]", &n, &sz, &from)) {
            for (int64_t i = 0; i < n; i++)
                EM_SEND_ARR(from, em_atom("burst"), em_int(i));
            if (sz > 0) {
                unsigned char *data = malloc((size_t)sz);
                if (data) {
                    memset(data, 0x5A, (size_t)sz);
                    EM_SEND_ARR(from, em_atom("bin"), em_bin(data, (size_t)sz));
                    free(data);
                }
            }
            em_exit(em_atom("done"));
        } else if (em_match(m, "[watched, ~i, ~p]", &n, &from)) {
            for (int64_t i = 0; i < n; i++) {
                CHECK_INT(0, em_spawn(local_watcher, EM_ARR(em_pid(em_self()), em_pid(em_self())), NULL));
                em_receive_match(NULL, 5000, "[watching]");
            }
            em_send(from, EM_ARR(em_atom("watched")));
        }
        em_heap_release(mk);
    }
}

/* 'factory': ['make', From] spawns a victim and answers ['made', V]; 'stop'
 * kills every victim still alive and ends. */
static void factory(em_term arg)
{
    (void)arg;
    em_pid_t made[256];
    int n = 0;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        if (em_receive(&m, EM_INFINITY) != 0) {
        } else if (em_match(m, "[make, ~p]", &from)) {
            em_pid_t v = 0;
            int rc = em_spawn(victim, EM_NIL, &v);
            CHECK_INT(0, rc);
            if (n < 256)
                made[n++] = v;
            em_send(from, EM_ARR(em_atom("made"), em_pid(v)));
        } else if (em_is_atom(m, "stop")) {
            for (int i = 0; i < n; i++)
                em_exit_pid(made[i], em_atom("kill"));
            em_heap_release(mk);
            return;
        }
        em_heap_release(mk);
    }
}

static void role_b(em_term arg)
{
    (void)arg;
    em_pid_t f = 0;
    CHECK_INT(0, em_spawn(factory, EM_NIL, &f));
    CHECK_INT(0, em_register(em_atom("factory"), f));
    if (dh_start_default() != 0)
        return;
    dh_hear_expect("stop", NULL, 0, 60000);
    CHECK_INT(0, em_monitor(f, NULL));
    em_send(f, em_atom("stop"));
    CHECK_INT(0, em_receive_match(NULL, 5000, "['DOWN', _, process, _, _]"));
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    CHECK_INT(0, st.bad_frames);
}

/* ------------------------------------------------------------------ node A */

static em_term node_b;

/* A new victim on B. */
static em_pid_t make_victim(void)
{
    em_pid_t v = 0;
    CHECK_INT(0, em_send_remote(em_atom("factory"), node_b, EM_ARR(em_atom("make"), em_pid(em_self()))));
    if (em_receive_match(NULL, 5000, "[made, ~p]", &v) != 0)
        CHECK_FAIL("the factory on B made no victim");
    return v;
}

/* What a victim holds: links and monitors. False if it does not answer. */
static bool victim_info(em_pid_t v, int64_t *links, int64_t *mons)
{
    em_send(v, EM_ARR(em_atom("info"), em_pid(em_self())));
    if (em_receive_match(NULL, 5000, "[info, ~i, ~i]", links, mons) != 0) {
        CHECK_FAIL("victim %llx did not answer 'info'", (unsigned long long)v);
        return false;
    }
    return true;
}

static bool victim_alive(em_pid_t v)
{
    em_pid_t who = 0;
    em_send(v, EM_ARR(em_atom("ping"), em_pid(em_self())));
    return em_receive_match(NULL, 2000, "[pong, ~p]", &who) == 0 && who == v;
}

static void victim_trap(em_pid_t v)
{
    em_send(v, EM_ARR(em_atom("trap"), em_pid(em_self())));
    if (em_receive_match(NULL, 5000, "[trapping]") != 0)
        CHECK_FAIL("victim %llx did not start trapping", (unsigned long long)v);
}

/* The DOWN of pid (any ref); its reason, or EM_NONE (a CHECK failure) if none came. */
static em_term down_of(em_pid_t pid, em_term *ref, int64_t ms)
{
    em_term reason = EM_NONE, r = EM_NONE;
    em_pid_t who = 0;
    int64_t deadline = dh_now_ms() + ms;
    for (;;) {
        int64_t left = deadline - dh_now_ms();
        if (left < 0 || em_receive_match(NULL, left, "['DOWN', ~t, process, ~p, ~t]", &r, &who, &reason) != 0) {
            CHECK_FAIL("no DOWN for %llx within %lld ms", (unsigned long long)pid, (long long)ms);
            return EM_NONE;
        }
        if (who == pid)
            break;
    }
    if (ref)
        *ref = r;
    return reason;
}

#define CHECK_REASON(expected_text, reason)                                                     \
    do {                                                                                        \
        char b_[256];                                                                           \
        dh_fmt((reason), b_, sizeof b_);                                                        \
        if (strcmp((expected_text), b_) != 0)                                                  \
            CHECK_FAIL("%s: expected %s, got %s", #reason, (expected_text), b_);                \
    } while (0)

static bool is_ref(em_term m, void *ctx)
{
    return em_match(m, "['DOWN', _, _, _, _]") && em_equal(em_at(m, 1), *(em_term *)ctx);
}

static void no_other_message(void)
{
    char g[256];
    em_term extra;
    if (!dh_quiet(100, &extra))
        CHECK_FAIL("an unexpected message: %s", dh_fmt(extra, g, sizeof g));
}

/* A local process that links to arg's victim, tells the root, then waits; if
 * arg's third element is true it must have died before 10 s pass. */
static void linker(em_term arg)
{
    em_pid_t v = 0, root = 0;
    em_term die = EM_NONE;
    CHECK(em_match(arg, "[~p, ~p, ~t]", &v, &root, &die));
    CHECK_INT(0, em_link(v));
    em_send(root, EM_ARR(em_atom("l_linked"), em_pid(em_self())));
    em_sleep(die == EM_TRUE ? 10000 : EM_INFINITY);
    CHECK_FAIL("the linker outlived its linked remote victim");
}

/* Waits for 'quit' and ends normally. */
static void waiter(em_term arg)
{
    (void)arg;
    em_receive_match(NULL, EM_INFINITY, "quit");
}

/* The common start of every scenario: a node connected to B. */
static bool setup_a(void)
{
    if (dh_start_default() != 0)
        return false;
    node_b = dh_connect_peer();
    return node_b != EM_NONE;
}

/* (a) A link, the remote process ends with boom: a trapping process gets
 * ['EXIT', Pid, boom] and its link is gone. */
static void role_a_link_trap(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_trap_exit(true);
    em_pid_t v = make_victim(), who = 0;
    int64_t links = -1, mons = -1;
    CHECK_INT(0, em_link(v));
    if (victim_info(v, &links, &mons))
        CHECK_INT(1, links);   /* the link reached B */
    em_proc_info me;
    CHECK_INT(0, em_process_info(em_self(), &me));
    CHECK_INT(1, me.links);
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    em_term reason = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "['EXIT', ~p, ~t]", &who, &reason));
    CHECK(who == v);
    CHECK_REASON("boom", reason);
    CHECK_INT(0, em_process_info(em_self(), &me));
    CHECK_INT(0, me.links);
    no_other_message();
}

/* (b) A local process that does not trap exits dies with its linked remote
 * process's reason. */
static void role_a_link_kills(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_pid_t v = make_victim(), l = 0;
    CHECK_INT(0, em_spawn(linker, EM_ARR(em_pid(v), em_pid(em_self()), EM_TRUE), &l));
    CHECK_INT(0, em_monitor(l, NULL));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[l_linked, _]"));
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    CHECK_REASON("boom", down_of(l, NULL, 5000));
    no_other_message();
}

/* (c) normal does not take a linked process down. */
static void role_a_link_normal(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_pid_t v = make_victim(), l = 0;
    CHECK_INT(0, em_spawn(linker, EM_ARR(em_pid(v), em_pid(em_self()), EM_FALSE), &l));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[l_linked, _]"));
    CHECK_INT(0, em_monitor(v, NULL));
    em_send(v, EM_ARR(em_atom("exit"), em_atom("normal")));
    CHECK_REASON("normal", down_of(v, NULL, 5000));
    em_sleep(200);   /* the exit signal came before the DOWN; give it time to act */
    CHECK(em_is_alive(l));
    em_proc_info info;
    CHECK_INT(0, em_process_info(l, &info));
    CHECK_INT(0, info.links);   /* the link went with the victim */
    CHECK_INT(0, em_monitor(l, NULL));
    CHECK_INT(0, em_exit_pid(l, em_atom("kill")));
    CHECK_REASON("killed", down_of(l, NULL, 5000));
    no_other_message();
}

/* (d) em_unlink before the exit: nothing comes, and B dropped its half. */
static void role_a_unlink(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_trap_exit(true);
    em_pid_t v = make_victim();
    int64_t links = -1, mons = -1;
    CHECK_INT(0, em_link(v));
    CHECK_INT(0, em_unlink(v));
    if (victim_info(v, &links, &mons))
        CHECK_INT(0, links);
    CHECK_INT(0, em_monitor(v, NULL));
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    CHECK_REASON("boom", down_of(v, NULL, 5000));
    if (em_receive_match(NULL, 300, "['EXIT', _, _]") != EM_ETIMEDOUT)
        CHECK_FAIL("an EXIT came from a process we had unlinked from");
    em_proc_info me;
    CHECK_INT(0, em_process_info(em_self(), &me));
    CHECK_INT(0, me.links);
    no_other_message();
}

/* (e) A monitor: ['DOWN', Ref, process, Pid, Reason] with our ref; then a
 * monitor of the dead pid fires at once with noproc, and a trapping link to it
 * gives ['EXIT', Pid, noproc]. */
static void role_a_monitor(em_term arg)
{
    (void)arg;
    char g[256];
    if (!setup_a())
        return;
    em_pid_t v = make_victim();
    em_term ref = EM_NONE, dref = EM_NONE;
    CHECK_INT(0, em_monitor(v, &ref));
    CHECK(em_typeof(ref) == EM_T_REF);
    em_term why = EM_ARR(em_atom("custom"), em_str("x"), em_int(-1));
    em_send(v, EM_ARR(em_atom("exit"), why));
    em_term reason = down_of(v, &dref, 5000);
    if (reason != EM_NONE && !em_equal(reason, why))
        CHECK_FAIL("the DOWN's reason: expected [custom, \"x\", -1], got %s", dh_fmt(reason, g, sizeof g));
    if (!em_equal(ref, dref))
        CHECK_FAIL("the DOWN's ref is not the monitor's");
    CHECK_INT(0, em_demonitor(ref, 0));   /* it fired */

    /* The pid is dead now. */
    int64_t t0 = dh_now_ms();
    CHECK_INT(0, em_monitor(v, &ref));
    CHECK_REASON("noproc", down_of(v, &dref, 5000));
    CHECK(em_equal(ref, dref));
    if (dh_now_ms() - t0 > 1000)
        CHECK_FAIL("the noproc DOWN took %lld ms", (long long)(dh_now_ms() - t0));
    em_trap_exit(true);
    em_pid_t who = 0;
    CHECK_INT(0, em_link(v));
    reason = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "['EXIT', ~p, ~t]", &who, &reason));
    CHECK(who == v);
    CHECK_REASON("noproc", reason);
    no_other_message();
}

/* (f) em_demonitor before the exit: 1, and no DOWN for that ref; another
 * monitor of the same process still fires. */
static void role_a_demonitor(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_pid_t v = make_victim();
    em_term r1 = EM_NONE, r2 = EM_NONE, dref = EM_NONE;
    CHECK_INT(0, em_monitor(v, &r1));
    CHECK_INT(0, em_monitor(v, &r2));
    CHECK(!em_equal(r1, r2));
    CHECK_INT(1, em_demonitor(r1, 0));
    CHECK_INT(0, em_demonitor(r1, 0));
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    CHECK_REASON("boom", down_of(v, &dref, 5000));
    if (!em_equal(dref, r2))
        CHECK_FAIL("the DOWN that came is for the monitor we had removed");
    if (em_receive_if(NULL, 300, is_ref, &r1) != EM_ETIMEDOUT)
        CHECK_FAIL("a DOWN came for a monitor em_demonitor had removed");
    CHECK_INT(0, em_demonitor(r2, 0));
    no_other_message();
}

/* (g) Several monitors of one remote process each fire, as locally ("monitoring
 * twice makes two monitors and two DOWN messages"), and B counts them. */
static void role_a_many_monitors(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_pid_t v = make_victim();
    enum { N = 6 };
    em_term refs[N];
    for (int i = 0; i < N; i++)
        CHECK_INT(0, em_monitor(v, &refs[i]));
    int64_t links = -1, mons = -1;
    bool answered = victim_info(v, &links, &mons);
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    int got = 0;
    for (int i = 0; i < N; i++)
        if (em_receive_if(NULL, i == 0 ? 5000 : 1000, is_ref, &refs[i]) == 0)
            got++;
    if (got != N)
        CHECK_FAIL("%d monitors of one remote process: expected %d DOWN messages, got %d", N, N, got);
    printf("[many_a] B counts %lld monitors of the victim (%d set)\n", (long long)mons, N);
    fflush(stdout);
    if (answered && mons != N)
        CHECK_FAIL("B's em_process_info(victim).monitored_by: expected %d, got %lld", N, (long long)mons);
    no_other_message();
}

/* (g') One remote monitor, then a few local monitors of the same process on
 * its own node: the remote one must still fire. */
static void role_a_monitor_beside_local(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    em_pid_t v = make_victim();
    em_term ref = EM_NONE;
    CHECK_INT(0, em_monitor(v, &ref));
    em_send(v, EM_ARR(em_atom("watched"), em_int(3), em_pid(em_self())));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[watched]"));
    em_send(v, EM_ARR(em_atom("exit"), em_atom("boom")));
    if (em_receive_if(NULL, 5000, is_ref, &ref) != 0)
        CHECK_FAIL("no DOWN for our monitor of a remote process that 3 of its own node's processes "
                   "monitored too");
    no_other_message();
}

/* (h) em_exit_pid on a remote pid: normal spares a process that does not
 * trap, another reason ends it; a trapping one gets ['EXIT', Caller, R] (our
 * pid, back as ours), and kill ends it anyway with killed. */
static void role_a_exit_pid(em_term arg)
{
    (void)arg;
    char g[256];
    if (!setup_a())
        return;
    em_pid_t v = make_victim();
    CHECK_INT(0, em_monitor(v, NULL));
    CHECK_INT(0, em_exit_pid(v, em_atom("normal")));
    CHECK(victim_alive(v));
    CHECK_INT(0, em_exit_pid(v, em_atom("bye")));
    CHECK_REASON("bye", down_of(v, NULL, 5000));

    v = make_victim();
    victim_trap(v);
    em_send(v, EM_ARR(em_atom("watch"), em_pid(em_self())));
    CHECK_INT(0, em_monitor(v, NULL));
    CHECK_INT(0, em_exit_pid(v, em_atom("other")));
    em_term fwd = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "[got, ~t]", &fwd));
    em_pid_t from = 0;
    if (!em_match(fwd, "['EXIT', ~p, other]", &from) || from != em_self())
        CHECK_FAIL("the trapping victim got %s, expected ['EXIT', <our pid>, other]",
                   dh_fmt(fwd, g, sizeof g));
    CHECK(victim_alive(v));
    CHECK_INT(0, em_exit_pid(v, em_atom("kill")));
    CHECK_REASON("killed", down_of(v, NULL, 5000));
    no_other_message();
}

/* (i) The other way: a remote process links to a local one, and the local one
 * ending takes it down (or, trapping, tells it). */
static void role_a_remote_links_local(em_term arg)
{
    (void)arg;
    char g[256];
    if (!setup_a())
        return;
    em_pid_t v = make_victim(), l = 0;
    int64_t rc = -99;
    CHECK_INT(0, em_spawn(waiter, EM_NIL, &l));
    em_send(v, EM_ARR(em_atom("link"), em_pid(l), em_pid(em_self())));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[linked, ~i]", &rc));
    CHECK_INT(0, rc);
    em_proc_info info;
    CHECK_INT(0, em_process_info(l, &info));
    CHECK_INT(1, info.links);
    CHECK_INT(0, em_monitor(v, NULL));
    CHECK_INT(0, em_exit_pid(l, em_atom("boom")));
    CHECK_REASON("boom", down_of(v, NULL, 5000));

    /* Trapping: the victim gets ['EXIT', L, Reason] with L our process. */
    v = make_victim();
    victim_trap(v);
    em_send(v, EM_ARR(em_atom("watch"), em_pid(em_self())));
    em_pid_t l2 = 0, l3 = 0, from = 0;
    CHECK_INT(0, em_spawn(waiter, EM_NIL, &l2));
    CHECK_INT(0, em_spawn(waiter, EM_NIL, &l3));
    em_send(v, EM_ARR(em_atom("link"), em_pid(l2), em_pid(em_self())));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[linked, ~i]", &rc));
    em_send(v, EM_ARR(em_atom("link"), em_pid(l3), em_pid(em_self())));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[linked, ~i]", &rc));
    CHECK_INT(0, em_exit_pid(l2, em_atom("bye")));
    em_term fwd = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "[got, ~t]", &fwd));
    if (!em_match(fwd, "['EXIT', ~p, bye]", &from) || from != l2)
        CHECK_FAIL("the trapping victim got %s, expected ['EXIT', <l2>, bye]", dh_fmt(fwd, g, sizeof g));
    /* A normal end reaches a trapping process too. */
    em_send(l3, em_atom("quit"));
    fwd = EM_NONE;
    CHECK_INT(0, em_receive_match(NULL, 5000, "[got, ~t]", &fwd));
    if (!em_match(fwd, "['EXIT', ~p, normal]", &from) || from != l3)
        CHECK_FAIL("the trapping victim got %s, expected ['EXIT', <l3>, normal]", dh_fmt(fwd, g, sizeof g));
    CHECK(victim_alive(v));
    no_other_message();
}

/* (j) What a remote process sent before it ended arrives before its DOWN and
 * before its EXIT, small messages and a large one (which travels in
 * fragments) alike: signals keep their place among the sender's messages. */
static void expect_burst_then(em_pid_t v, int64_t n, int64_t size, const char *signal_pattern)
{
    char g[256];
    int64_t next = 0;
    bool got_bin = size == 0;
    for (;;) {
        em_term m;
        if (em_receive(&m, 5000) != 0) {
            CHECK_FAIL("%s: nothing more after %lld of %lld messages", signal_pattern, (long long)next,
                       (long long)n);
            return;
        }
        int64_t i = -1;
        em_term bin = EM_NONE;
        em_pid_t who = 0;
        if (em_match(m, "[burst, ~i]", &i)) {
            if (i != next)
                CHECK_FAIL("%s: message %lld came when %lld was due", signal_pattern, (long long)i,
                           (long long)next);
            next = i + 1;
        } else if (em_match(m, "[bin, ~b]", &bin)) {
            if (next != n)
                CHECK_FAIL("%s: the binary came after %lld of the %lld messages sent before it",
                           signal_pattern, (long long)next, (long long)n);
            if ((int64_t)em_len(bin) != size)
                CHECK_FAIL("%s: the binary has %zu bytes, expected %lld", signal_pattern, em_len(bin),
                           (long long)size);
            got_bin = true;
        } else if (em_match(m, signal_pattern, &who) && who == v) {
            if (next != n || !got_bin)
                CHECK_FAIL("%s came after %lld of %lld messages%s: it overtook what was sent before it",
                           signal_pattern, (long long)next, (long long)n,
                           got_bin ? "" : " and before the large one");
            return;
        } else {
            CHECK_FAIL("an unexpected message: %s", dh_fmt(m, g, sizeof g));
        }
    }
}

static void role_a_order_before_down(em_term arg)
{
    (void)arg;
    if (!setup_a())
        return;
    int64_t n = 2000;
    em_pid_t v = make_victim();
    CHECK_INT(0, em_monitor(v, NULL));
    em_send(v, EM_ARR(em_atom("burst"), em_int(n), em_int(0), em_pid(em_self())));
    expect_burst_then(v, n, 0, "['DOWN', _, process, ~p, done]");

    v = make_victim();
    CHECK_INT(0, em_monitor(v, NULL));
    em_send(v, EM_ARR(em_atom("burst"), em_int(n), em_int(1 << 20), em_pid(em_self())));
    expect_burst_then(v, n, 1 << 20, "['DOWN', _, process, ~p, done]");

    em_trap_exit(true);
    v = make_victim();
    CHECK_INT(0, em_link(v));
    em_send(v, EM_ARR(em_atom("burst"), em_int(n), em_int(1 << 20), em_pid(em_self())));
    expect_burst_then(v, n, 1 << 20, "['EXIT', ~p, done]");
    no_other_message();
}

/* ----------------------------------------------------------------- the tests */

static void run_scenario(const char *a_name, const char *b_name, em_proc_fn role_a)
{
    dh_child a, b;
    dh_spawn(&b, b_name, role_b);
    int port = dh_port(&b);
    dh_spawn(&a, a_name, role_a);
    dh_port(&a);
    dh_say(&a, "peer %s:%d", b_name, port);
    DH_ASSERT_ENDS_OK(&a, DH_WAIT_MS);
    dh_say(&b, "stop");
    DH_ASSERT_ENDS_OK(&b, 10000);
}

#define SCENARIO(test, tag, role)                                                                \
    static void test(void **state)                                                               \
    {                                                                                            \
        (void)state;                                                                             \
        run_scenario("rel_" tag "_a@127.0.0.1", "rel_" tag "_b@127.0.0.1", role);                \
    }

SCENARIO(test_link_exit_reaches_trapping_process, "trap", role_a_link_trap)
SCENARIO(test_link_takes_down_non_trapping_process, "kills", role_a_link_kills)
SCENARIO(test_normal_exit_spares_linked_process, "normal", role_a_link_normal)
SCENARIO(test_unlink_before_exit, "unlink", role_a_unlink)
SCENARIO(test_monitor_down_and_noproc, "monitor", role_a_monitor)
SCENARIO(test_demonitor_before_exit, "demon", role_a_demonitor)
SCENARIO(test_several_monitors_of_one_remote_process, "many", role_a_many_monitors)
SCENARIO(test_remote_monitor_beside_local_monitors, "beside", role_a_monitor_beside_local)
SCENARIO(test_exit_pid_on_remote_process, "exitpid", role_a_exit_pid)
SCENARIO(test_remote_process_linked_to_local_one, "rlink", role_a_remote_links_local)
SCENARIO(test_messages_arrive_before_down_and_exit, "order", role_a_order_before_down)

int main(void)
{
    const struct CMUnitTest tests[] = {
        DH_TEST(test_link_exit_reaches_trapping_process),
        DH_TEST(test_link_takes_down_non_trapping_process),
        DH_TEST(test_normal_exit_spares_linked_process),
        DH_TEST(test_unlink_before_exit),
        DH_TEST(test_monitor_down_and_noproc),
        DH_TEST(test_demonitor_before_exit),
        DH_TEST(test_several_monitors_of_one_remote_process),
        DH_TEST(test_remote_monitor_beside_local_monitors),
        DH_TEST(test_exit_pid_on_remote_process),
        DH_TEST(test_remote_process_linked_to_local_one),
        DH_TEST(test_messages_arrive_before_down_and_exit),
    };
    return DH_RUN(tests);
}
