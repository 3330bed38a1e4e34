/*
 * test_services.c - timers, registered names, introspection and idle behaviour.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

/* ---------------------------------------------------------------- timers */

static void root_timers(em_term arg)
{
    (void)arg;
    int64_t t0 = em_now_ms();
    em_send(em_self(), em_atom("early"));
    em_sleep(30);
    int64_t dt = em_now_ms() - t0;
    if (dt < 30 || dt > 1000)
        CHECK_FAIL("em_sleep(30) took %lld ms", (long long)dt);
    em_term m;
    CHECK_INT(0, em_receive(&m, 0)); /* sleeping left the message alone */
    CHECK(em_is_atom(m, "early"));

    em_timer_t keep, drop;
    t0 = em_now_ms();
    CHECK_INT(0, em_send_after(20, em_self(), em_atom("fired"), &keep));
    CHECK_INT(0, em_send_after(10, em_self(), em_atom("cancelled"), &drop));
    CHECK_INT(0, em_cancel_timer(drop));
    CHECK_INT(EM_ENOTFOUND, em_cancel_timer(drop));
    CHECK_INT(0, em_receive(&m, 2000));
    CHECK(em_is_atom(m, "fired"));
    dt = em_now_ms() - t0;
    if (dt < 20)
        CHECK_FAIL("send_after(20) arrived after %lld ms", (long long)dt);
    CHECK_INT(EM_ENOTFOUND, em_cancel_timer(keep));
    CHECK_INT(EM_ETIMEDOUT, em_receive(&m, 30));
    CHECK_INT(EM_ENOTFOUND, em_cancel_timer(0));
    CHECK_INT(EM_ENOTFOUND, em_cancel_timer(~(em_timer_t)0));
    CHECK_INT(EM_EINVAL, em_send_after(-1, em_self(), EM_NIL, NULL));
}

static void test_timers(void **state)
{
    (void)state;
    run_root(2, root_timers);
}

/* A timer to a process that has ended: delivered to nobody, no crash. */
static void quick(em_term arg) { (void)arg; }

static void root_timer_to_dead(em_term arg)
{
    (void)arg;
    em_pid_t p;
    CHECK_INT(0, em_spawn(quick, EM_NIL, &p));
    while (em_is_alive(p))
        em_yield();
    CHECK_INT(0, em_send_after(5, p, em_str("late"), NULL));
    /* Look until the timer has fired, for at most 5 s. */
    em_system_info si;
    int64_t t0 = em_now_ms();
    do {
        em_sleep(2);
        CHECK_INT(0, em_system_info_get(&si));
    } while (si.sends_to_dead < 1 && em_now_ms() - t0 < 5000);
    CHECK(si.sends_to_dead >= 1);
    /* A timer still pending when the runtime stops is freed with it. */
    CHECK_INT(0, em_send_after(100000, em_self(), em_str("never"), NULL));
}

static void test_timer_to_dead_process(void **state)
{
    (void)state;
    run_root(2, root_timer_to_dead);
}

/* ----------------------------------------------------------------- names */

static void named_server(em_term arg)
{
    (void)arg;
    em_term m;
    em_pid_t from;
    while (em_receive(&m, EM_INFINITY) == 0) {
        if (em_is_atom(m, "stop"))
            return;
        if (em_match(m, "{ping, ~p}", &from))
            em_send(from, em_atom("pong"));
    }
}

static void root_names(em_term arg)
{
    (void)arg;
    em_term srv = em_atom("server");
    em_pid_t p;
    CHECK_INT(0, em_spawn(named_server, EM_NIL, &p));
    CHECK_INT(0, em_register(srv, p));
    CHECK_INT(EM_EEXIST, em_register(srv, em_self()));
    CHECK_INT(EM_EEXIST, em_register(em_atom("second_name"), p));
    CHECK_INT(EM_EINVAL, em_register(em_int(1), p));
    CHECK(em_whereis(srv) == p);
    CHECK_INT(0, em_send_named(srv, EM_ARR(em_atom("ping"), em_pid(em_self()))));
    em_term m;
    CHECK_INT(0, em_receive(&m, 2000));
    CHECK(em_is_atom(m, "pong"));
    em_proc_info info;
    CHECK_INT(0, em_process_info(p, &info));
    CHECK(info.name == srv);
    CHECK_INT(EM_ENOTFOUND, em_send_named(em_atom("nobody"), EM_NIL));
    CHECK(em_whereis(em_atom("nobody")) == 0);
    /* The name goes with the process. */
    em_send_named(srv, em_atom("stop"));
    while (em_is_alive(p))
        em_yield();
    CHECK(em_whereis(srv) == 0);
    CHECK_INT(EM_ENOPROC, em_register(srv, p));
    /* And can be taken again, then given up. */
    CHECK_INT(0, em_register(srv, em_self()));
    CHECK_INT(0, em_unregister(srv));
    CHECK_INT(EM_ENOTFOUND, em_unregister(srv));
}

static void test_names(void **state)
{
    (void)state;
    run_root(2, root_names);
}

/* --------------------------------------------------------- introspection */

static void sleeper(em_term arg)
{
    (void)arg;
    em_sleep(60000);   /* killed by the root once it has looked */
}

static void root_info(em_term arg)
{
    (void)arg;
    em_pid_t p;
    CHECK_INT(0, em_spawn(sleeper, EM_NIL, &p));
    em_sleep(20);
    for (int i = 0; i < 3; i++)
        em_send(p, em_int(i));
    /* Each message woke the sleeper once: look until it has parked again, for
     * at most 5 s (it took up to 4.5 ms under valgrind). */
    em_proc_info info;
    int64_t t0 = em_now_ms();
    do {
        em_sleep(1);
        CHECK_INT(0, em_process_info(p, &info));
    } while (info.status != EM_WAITING && em_now_ms() - t0 < 5000);
    CHECK_INT(EM_WAITING, info.status);
    CHECK_STR("waiting", em_status_name(info.status));
    CHECK_INT(3, info.mailbox_len);
    CHECK_STR("sleeper", info.entry);
    CHECK(info.memory_bytes > 0);
    CHECK(info.reductions > 0);
    CHECK(info.name == EM_NONE);
    CHECK_INT(0, em_process_info(em_self(), &info));
    CHECK_INT(EM_RUNNING, info.status);
    CHECK_STR("root", info.entry);
    CHECK_INT(EM_ENOPROC, em_process_info(p + 1, &info));

    em_pid_t pids[8];
    size_t n = em_processes(pids, 8);
    CHECK_INT(2, n);
    CHECK(pids[0] == em_self() || pids[1] == em_self());
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    CHECK_INT(2, si.schedulers);
    CHECK_INT(2, si.process_count);
    CHECK(si.spawned_total >= 2);
    CHECK(si.messages_sent >= 3);
    CHECK(si.memory_processes > 0);
    CHECK(si.memory_total >= si.memory_processes);
    em_sched_info sc;
    CHECK_INT(0, em_scheduler_info(0, &sc));
    CHECK(sc.total_ns >= sc.busy_ns && sc.total_ns > 0);
    CHECK(sc.processes_run > 0);
    CHECK_INT(EM_ENOTFOUND, em_scheduler_info(2, &sc));
    /* While this process sleeps, nothing runs (the sleeper waits): both schedulers are idle, and
     * their figures must say so before they wake (a long sleep used to count
     * as busy until it ended). */
    em_sched_info a[2], b[2];
    for (int i = 0; i < 2; i++)
        CHECK_INT(0, em_scheduler_info(i, &a[i]));
    em_sleep(300);
    for (int i = 0; i < 2; i++)
        CHECK_INT(0, em_scheduler_info(i, &b[i]));
    for (int i = 0; i < 2; i++) {
        uint64_t busy = b[i].busy_ns - a[i].busy_ns, total = b[i].total_ns - a[i].total_ns;
        if (busy * 2 > total)
            CHECK_FAIL("scheduler %d during a 300 ms sleep of the only process: busy %.1f ms of "
                       "%.1f, expected under half",
                       i, busy / 1e6, total / 1e6);
    }
    CHECK_INT(0, em_exit_pid(p, em_atom("kill")));
}

static void test_introspection(void **state)
{
    (void)state;
    run_root(2, root_info);
}

/* A mailbox longer than the inbox head's 16-bit count is still counted exactly.
 * The receiver only yields, so nothing drains its inbox until it is told. */
static atomic_int drain_now;

static void slow_reader(em_term arg)
{
    (void)arg;
    while (!atomic_load(&drain_now))
        em_yield();
    em_term m;
    for (int64_t i = 0; i < 70000; i++) {
        if (em_receive(&m, 0) != 0 || m != em_int(i)) {
            CHECK_FAIL("message %lld missing or out of order", (long long)i);
            return;
        }
    }
    CHECK_INT(EM_ETIMEDOUT, em_receive(&m, 0));
}

static void root_long_mailbox(em_term arg)
{
    (void)arg;
    em_pid_t p;
    atomic_store(&drain_now, 0);
    CHECK_INT(0, em_spawn(slow_reader, EM_NIL, &p));
    for (int i = 0; i < 70000; i++)
        em_send(p, em_int(i));
    em_proc_info info;
    CHECK_INT(0, em_process_info(p, &info));
    CHECK_INT(70000, info.mailbox_len);
    atomic_store(&drain_now, 1);
}

static void test_long_mailbox_length(void **state)
{
    (void)state;
    run_root(2, root_long_mailbox);
}

/* ---------------------------------------------------------------- idle */

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void root_idle(em_term arg)
{
    (void)arg;
    double c0 = cpu_seconds();
    em_sleep(500);
    double used = cpu_seconds() - c0;
    /* Two schedulers with nothing to do for half a second: they should sleep. */
    if (used > 0.05)
        CHECK_FAIL("idle node used %.3f s of CPU in 0.5 s (expected < 0.05)", used);
}

static void test_idle_node_sleeps(void **state)
{
    (void)state;
    run_root(2, root_idle);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_timer_to_dead_process),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_introspection),
        cmocka_unit_test(test_long_mailbox_length),
        cmocka_unit_test(test_idle_node_sleeps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
