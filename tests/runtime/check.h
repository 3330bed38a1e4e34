/*
 * check.h - what the runtime tests share: assertions for code that runs inside
 * ember processes, and the fixtures that set a test up (a node to run a root
 * process on, or a heap for building terms outside any process).
 *
 * cmocka's asserts jump out of the failing function, which must not happen on a
 * process stack. Inside processes, tests use CHECK* instead: the first failure is
 * recorded with what was expected and what came, and the cmocka test asserts after
 * em_run that nothing failed, printing the record.
 */
#ifndef EMBER_TEST_CHECK_H
#define EMBER_TEST_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ember.h"

static char check_failure[1024];
static atomic_int check_failed;

#define CHECK_FAIL(...)                                                                      \
    do {                                                                                      \
        if (atomic_fetch_add(&check_failed, 1) == 0) {                                        \
            int off_ = snprintf(check_failure, sizeof check_failure, "%s:%d: ", __FILE__,      \
                                __LINE__);                                                    \
            snprintf(check_failure + off_, sizeof check_failure - (size_t)off_, __VA_ARGS__);  \
        }                                                                                     \
    } while (0)

#define CHECK(cond)                                                                          \
    do {                                                                                      \
        if (!(cond))                                                                          \
            CHECK_FAIL("check failed: %s", #cond);                                            \
    } while (0)

#define CHECK_INT(expected, got)                                                             \
    do {                                                                                      \
        long long e_ = (long long)(expected), g_ = (long long)(got);                          \
        if (e_ != g_)                                                                         \
            CHECK_FAIL("%s: expected %lld, got %lld", #got, e_, g_);                          \
    } while (0)

#define CHECK_STR(expected, got)                                                             \
    do {                                                                                      \
        const char *e_ = (expected), *g_ = (got);                                             \
        if (!g_ || strcmp(e_, g_) != 0)                                                       \
            CHECK_FAIL("%s: expected \"%s\", got \"%s\"", #got, e_, g_ ? g_ : "(null)");      \
    } while (0)

/* After em_run: fail the cmocka test with the recorded message. */
#define ASSERT_NO_CHECK_FAILURES()                                                           \
    do {                                                                                      \
        if (atomic_load(&check_failed)) {                                                     \
            print_error("%s (%d failures)\n", check_failure, atomic_load(&check_failed));     \
            fail();                                                                           \
        }                                                                                     \
    } while (0)

#define CHECK_RESET() (atomic_store(&check_failed, 0), check_failure[0] = 0)

/* A node configuration with scheds schedulers and defaults for the rest. */
static inline em_config check_config(int scheds)
{
    em_config c;
    em_config_init(&c);
    c.schedulers = scheds;
    return c;
}

/* Resident memory of this OS process in bytes (/proc/self/statm), 0 if it
 * cannot be read. */
static inline size_t check_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Runs root as the first process of a node with scheds schedulers and fails
 * the cmocka test unless em_run returns 0 and no CHECK inside failed. */
static inline void run_root(int scheds, em_proc_fn root)
{
    CHECK_RESET();
    em_config c = check_config(scheds);
    int rc = em_run(&c, root, EM_NIL);
    assert_int_equal(rc, 0);
    ASSERT_NO_CHECK_FAILURES();
}

/* cmocka setup for tests that build terms outside any process: installs a fresh
 * heap for the thread and keeps it in *state; returns 0, or -1 without memory. */
static inline int heap_setup(void **state)
{
    em_heap *h = em_heap_new();
    if (!h)
        return -1;
    em_heap_use(h);
    *state = h;
    return 0;
}

/* cmocka teardown for heap_setup: frees the heap with every term in it; returns 0. */
static inline int heap_teardown(void **state)
{
    em_heap_free(*state);
    return 0;
}

/* A cmocka test entry for f that runs with a heap of its own (heap_setup). */
#define HEAP_TEST(f) cmocka_unit_test_setup_teardown(f, heap_setup, heap_teardown)

#ifndef EMBER_STRESS_SCALE
#define EMBER_STRESS_SCALE 1
#endif

#endif
