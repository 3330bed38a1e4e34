/*
 * check.h - assertions for code that runs inside ember processes.
 *
 * cmocka's asserts jump out of the failing function, which must not happen on a
 * process stack. Inside processes, tests use CHECK* instead: the first failure is
 * recorded with what was expected and what came, and the cmocka test asserts after
 * em_run that nothing failed, printing the record.
 */
#ifndef EMBER_TEST_CHECK_H
#define EMBER_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

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

#ifndef EMBER_STRESS_SCALE
#define EMBER_STRESS_SCALE 1
#endif

#endif
