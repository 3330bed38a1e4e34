/*
 * test_overflow.c - a process that overflows its stack must not silently corrupt
 * another one: the guard page below every stack turns the overflow into a fault.
 * (Turning that fault into the death of the one process is the fault-isolation
 * work; today the node stops.) The node runs in a forked child so the test can
 * watch it die.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ember.h"

static volatile int sink;
static volatile int limit = 1 << 30; /* never reached: the stack ends first */

static int recurse(int depth)
{
    volatile char frame[512];
    frame[0] = (char)depth;
    frame[511] = (char)depth;
    if (depth >= limit)
        return 0;
    return recurse(depth + 1) + frame[0] + frame[511];
}

static void neighbour(em_term arg)
{
    (void)arg;
    em_term m;
    em_receive(&m, EM_INFINITY);
}

static void overflowing(em_term arg)
{
    (void)arg;
    sink = recurse(0);
}

static void root(em_term arg)
{
    (void)arg;
    /* Neighbours on the other stacks: with corruption instead of a fault they
     * would be damaged silently and the node would go on. */
    for (int i = 0; i < 16; i++)
        em_spawn(neighbour, EM_NIL, NULL);
    em_spawn(overflowing, EM_NIL, NULL);
    em_sleep(5000);
    em_halt(3); /* reached only if the overflow went unnoticed */
}

static void test_overflow_faults_instead_of_corrupting(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        alarm(20);
        em_config c;
        em_config_init(&c);
        c.schedulers = 2;
        c.stack_size = 256 * 1024;
        _exit(em_run(&c, root, EM_NIL) == 3 ? 3 : 4);
    }
    close(fds[1]);
    char err[4096];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof err - 1 && (r = read(fds[0], err + got, sizeof err - 1 - got)) > 0)
        got += (size_t)r;
    err[got] = 0;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFSIGNALED(status)) {
        print_error("expected the node to die of SIGSEGV, it exited with %d\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fail();
    }
    assert_int_equal(WTERMSIG(status), SIGSEGV);
#ifndef EMBER_SEPARATE_STACKS
    /* The copy-stack build names the process (sanitizer builds report on
     * their own). */
    if (!strstr(err, "(overflowing) overflowed its stack")) {
        print_error("expected a line naming the process, stderr was: %s\n", err);
        fail();
    }
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_faults_instead_of_corrupting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
