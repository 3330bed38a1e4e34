/*
 * test_fault.c - a process that faults dies alone: a bad pointer, a division by
 * zero, SIGBUS, an illegal instruction, abort() and a stack overflow each end
 * only the faulting process, with a reason that names the fault, while its
 * monitors are told and every other process goes on. A fault inside the runtime's
 * own code still stops the node, loudly (checked in a forked child).
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

static volatile int sink;
static volatile int zero = 0;
static volatile uintptr_t wild = 0x10;
static volatile int limit = 1 << 30;   /* never reached: the stack ends first */
static atomic_long ticks;

static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = (char)depth;
    if (depth >= limit)
        return 0;
    return recurse(depth + 1) + frame[0] + frame[511];
}

static void null_read(em_term a) { (void)a; sink = *(volatile int *)(uintptr_t)zero; }
static void wild_write(em_term a) { (void)a; *(volatile int *)wild = 1; }
static void divide(em_term a) { (void)a; sink = 7 / zero; }
static void illegal(em_term a) { (void)a; __builtin_trap(); }
static void aborting(em_term a) { (void)a; abort(); }
static void overflowing(em_term a) { (void)a; sink = recurse(0); }

static void bus_error(em_term a)
{
    (void)a;
    /* Touching a file mapping past the end of the file raises SIGBUS. */
    char path[] = "/tmp/ember-sigbus-XXXXXX";
    int fd = mkstemp(path);
    unlink(path);
    if (fd < 0 || ftruncate(fd, 0) != 0)
        em_exit(em_atom("setup_failed"));
    volatile char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        em_exit(em_atom("setup_failed"));
    m[0] = 1;
}

/* Keeps counting while the others crash: proof the node goes on. */
static void ticker(em_term a)
{
    (void)a;
    for (;;) {
        atomic_fetch_add(&ticks, 1);
        em_term m;
        if (em_receive(&m, 1) == 0)
            return;
    }
}

typedef struct fault_case {
    const char *name;
    em_proc_fn fn;
    const char *pattern;   /* the DOWN reason */
} fault_case;

static const fault_case cases[] = {
    {"null_read", null_read, "[fault, sigsegv, 0]"},
    {"wild_write", wild_write, "[fault, sigsegv, 16]"},
    {"divide", divide, "[fault, sigfpe, _]"},
    {"illegal", illegal, "[fault, sigill, _]"},
    {"aborting", aborting, "[fault, sigabrt, nil]"},
    {"bus_error", bus_error, "[fault, sigbus, _]"},
    {"overflowing", overflowing, "stack_overflow"},
};

static void root_faults(em_term arg)
{
    (void)arg;
    em_pid_t tick, linked_to_victim;
    CHECK_INT(0, em_spawn(ticker, EM_NIL, &tick));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        em_pid_t p, who = 0;
        em_term reason = EM_NONE;
        /* A trapping neighbour linked to the victim hears the same reason. */
        em_trap_exit(true);
        CHECK_INT(0, em_spawn_link_named(cases[i].fn, cases[i].name, EM_NIL, &p));
        CHECK_INT(0, em_monitor(p, NULL));
        int rc = em_receive_match(NULL, 10000, "['DOWN', _, process, ~p, ~t]", &who, &reason);
        char buf[128] = "";
        em_format(reason, buf, sizeof buf);
        if (rc != 0 || who != p || !em_match(reason, cases[i].pattern))
            CHECK_FAIL("%s: expected DOWN %s, got %s (%s)", cases[i].name, cases[i].pattern, buf,
                       em_strerror(rc));
        linked_to_victim = 0;
        CHECK_INT(0, em_receive_match(NULL, 5000, "['EXIT', ~p, ~t]", &linked_to_victim, &reason));
        CHECK(linked_to_victim == p);
        CHECK(em_match(reason, cases[i].pattern));
        CHECK(!em_is_alive(p));
        long before = atomic_load(&ticks);
        em_sleep(20);
        CHECK(atomic_load(&ticks) > before);   /* the others still run */
    }
    em_system_info si;
    CHECK_INT(0, em_system_info_get(&si));
    CHECK_INT(2, si.process_count);   /* root and ticker: nothing leaked */
    em_send(tick, em_atom("stop"));
}

static void test_each_fault_ends_only_its_process(void **state)
{
    (void)state;
    CHECK_RESET();
    em_config c = check_config(2);
    c.stack_size = 256 * 1024;
    assert_int_equal(em_run(&c, root_faults, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

static void many_crashers(em_term arg)
{
    int64_t k = 0;
    em_get_int(arg, &k);
    if (k % 3 == 0)
        null_read(EM_NIL);
    else if (k % 3 == 1)
        divide(EM_NIL);
    else
        overflowing(EM_NIL);
}

static void root_many(em_term arg)
{
    (void)arg;
    enum { N = 600 };
    for (int i = 0; i < N; i++)
        CHECK_INT(0, em_spawn_monitor(many_crashers, em_int(i), NULL, NULL));
    int downs = 0;
    em_term m;
    while (downs < N && em_receive(&m, 10000) == 0)
        if (em_match(m, "['DOWN', _, process, _, _]"))
            downs++;
    CHECK_INT(N, downs);
}

static void test_many_faults_in_parallel(void **state)
{
    (void)state;
    CHECK_RESET();
    em_config c = check_config(2);
    c.stack_size = 128 * 1024;
    assert_int_equal(em_run(&c, root_many, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* A term that points nowhere makes the runtime itself fault while copying it. */
static void runtime_faulter(em_term arg)
{
    (void)arg;
    em_send(em_self(), (em_term)(wild << 8));
}

static void root_runtime_fault(em_term arg)
{
    (void)arg;
    em_spawn(runtime_faulter, EM_NIL, NULL);
    em_sleep(5000);
    em_halt(3);   /* reached only if the fault went unnoticed */
}

/* Runs a node with root in a forked child (stderr captured in err, SIG reset to
 * its default first, so that what ember chains to is the default action) and
 * returns the child's wait status. */
static int run_forked(em_proc_fn root, int sig, char *err, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        alarm(20);
        signal(sig, SIG_DFL);   /* cmocka's handler would catch what we chain to */
        em_config c = check_config(2);
        _exit(em_run(&c, root, EM_NIL) == 3 ? 3 : 4);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got < cap - 1 && (r = read(fds[0], err + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    err[got] = 0;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    return status;
}

static void test_runtime_fault_stops_the_node(void **state)
{
    (void)state;
    char err[4096];
    int status = run_forked(root_runtime_fault, SIGSEGV, err, sizeof err);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV) {
        print_error("expected the node to die of SIGSEGV; status %d, stderr: %s\n", status, err);
        fail();
    }
    if (!strstr(err, "in the runtime") || !strstr(err, "(runtime_faulter)")) {
        print_error("expected a line blaming the runtime and naming the process, got: %s\n", err);
        fail();
    }
}

/* Each level calls ember: the stack runs out inside a call to the runtime,
 * which must still end only this process (review finding: it stopped the node). */
static int deep_calls(int n)
{
    volatile char pad[200];
    pad[0] = (char)n;
    em_send(em_self(), EM_ARR(em_int(n), em_atom("x")));
    em_receive(NULL, 0);
    if (n >= limit)
        return 0;
    return deep_calls(n + 1) + pad[0];
}

static void overflow_in_calls(em_term a)
{
    (void)a;
    sink = deep_calls(0);
}

static void root_overflow_in_calls(em_term arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++) {
        em_pid_t p, who = 0;
        em_term reason = EM_NONE;
        CHECK_INT(0, em_spawn_monitor(overflow_in_calls, EM_NIL, &p, NULL));
        CHECK_INT(0, em_receive_match(NULL, 10000, "['DOWN', _, process, ~p, ~t]", &who, &reason));
        CHECK(em_is_atom(reason, "stack_overflow"));
    }
}

static void test_overflow_inside_a_runtime_call_ends_only_the_process(void **state)
{
    (void)state;
    CHECK_RESET();
    em_config c = check_config(2);
    c.stack_size = 128 * 1024;
    assert_int_equal(em_run(&c, root_overflow_in_calls, EM_NIL), 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* A signal sent from outside (kill -ABRT for a core) is not a process's fault:
 * the node does what the signal asks (review finding: an innocent process was
 * ended instead, or containment was switched off). */
static void spinner(em_term a)
{
    (void)a;
    for (;;)
        em_sleep(1);
}

static void root_external(em_term arg)
{
    (void)arg;
    em_spawn(spinner, EM_NIL, NULL);
    em_sleep(50);
    kill(getpid(), SIGABRT);
    em_sleep(5000);
    em_halt(3);   /* reached only if the signal was swallowed */
}

static void test_signal_from_outside_is_not_a_fault(void **state)
{
    (void)state;
    char err[4096];
    int status = run_forked(root_external, SIGABRT, err, sizeof err);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT) {
        print_error("expected the node to die of SIGABRT; status %d, stderr: %s\n", status, err);
        fail();
    }
    if (!strstr(err, "SIGABRT sent by process") || strstr(err, "aborted (pc")) {
        print_error("expected the signal reported as sent from outside, got: %s\n", err);
        fail();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_fault_ends_only_its_process),
        cmocka_unit_test(test_many_faults_in_parallel),
        cmocka_unit_test(test_runtime_fault_stops_the_node),
        cmocka_unit_test(test_overflow_inside_a_runtime_call_ends_only_the_process),
        cmocka_unit_test(test_signal_from_outside_is_not_a_fault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
