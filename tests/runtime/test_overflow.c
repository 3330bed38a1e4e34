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
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        alarm(20);
        em_config c;
        em_config_init(&c);
        c.schedulers = 2;
        c.stack_size = 256 * 1024;
        _exit(em_run(&c, root, EM_NIL) == 3 ? 3 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFSIGNALED(status)) {
        print_error("expected the node to die of SIGSEGV, it exited with %d\n",
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        fail();
    }
    assert_int_equal(WTERMSIG(status), SIGSEGV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_faults_instead_of_corrupting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
