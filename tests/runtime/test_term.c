/*
 * test_term.c - building, reading, comparing and copying terms, and the atom table.
 *
 * Runs outside any process: each test installs a fresh heap with em_heap_use.
 */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"
#include "mem/heap.h"
#include "term/term_int.h"

/* ---------------------------------------------------------- scalars */

static void test_scalars_read_back(void **state)
{
    (void)state;
    int64_t i;
    uint64_t u;
    double f;
    bool b;
    const char *s;
    const void *d;
    size_t n;
    em_pid_t p;

    em_term t = em_int(-42);
    assert_int_equal(em_typeof(t), EM_T_INT);
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, -42);
    assert_false(em_get_uint(t, &u));
    assert_true(em_get_float(t, &f));
    assert_true(f == -42.0);

    t = em_float(2.5);
    assert_int_equal(em_typeof(t), EM_T_FLOAT);
    assert_true(em_get_float(t, &f));
    assert_true(f == 2.5);
    assert_false(em_get_int(t, &i));

    assert_int_equal(em_typeof(EM_NIL), EM_T_NIL);
    assert_int_equal(em_typeof(em_bool(true)), EM_T_BOOL);
    assert_true(em_get_bool(em_bool(false), &b));
    assert_false(b);
    assert_true(em_get_bool(EM_TRUE, &b));
    assert_true(b);
    assert_false(em_get_bool(EM_NIL, &b));

    t = em_str("héllo");
    assert_int_equal(em_typeof(t), EM_T_STR);
    assert_true(em_get_str(t, &s, &n));
    assert_int_equal(n, strlen("héllo"));
    assert_memory_equal(s, "héllo", n);
    assert_int_equal(em_len(t), n);
    assert_false(em_get_bin(t, &d, &n));

    t = em_strn("a\0b", 3);
    assert_true(em_get_str(t, &s, &n));
    assert_int_equal(n, 3);
    assert_memory_equal(s, "a\0b", 3);
    assert_int_equal(em_len(em_str("")), 0);

    unsigned char bytes[200];
    for (int k = 0; k < 200; k++)
        bytes[k] = (unsigned char)(k * 7);
    t = em_bin(bytes, 64);   /* at the threshold: still inline */
    assert_int_equal(em_typeof(t), EM_T_BIN);
    assert_int_equal(emi_box_type(t), BOX_BIN);
    assert_true(em_get_bin(t, &d, &n));
    assert_int_equal(n, 64);
    assert_memory_equal(d, bytes, 64);
    t = em_bin(bytes, 65);   /* above: shared */
    assert_int_equal(em_typeof(t), EM_T_BIN);
    assert_int_equal(emi_box_type(t), BOX_REFBIN);
    assert_true(em_get_bin(t, &d, &n));
    assert_int_equal(n, 65);
    assert_memory_equal(d, bytes, 65);
    assert_int_equal(em_len(t), 65);
    assert_int_equal(em_typeof(em_bin(NULL, 0)), EM_T_BIN);

    em_pid_t pid = ((em_pid_t)3 << 48) | ((em_pid_t)77 << 28) | 1234;
    t = em_pid(pid);
    assert_int_equal(em_typeof(t), EM_T_PID);
    assert_true(em_get_pid(t, &p));
    assert_int_equal(p, pid);
    assert_int_equal(em_pid_node(p), 3);
    assert_int_equal(em_pid_serial(p), 77);
    assert_int_equal(em_pid_index(p), 1234);

    em_term r1 = em_make_ref(), r2 = em_make_ref();
    assert_int_equal(em_typeof(r1), EM_T_REF);
    assert_false(em_equal(r1, r2));
    assert_true(em_compare(r1, r2) < 0);

    assert_int_equal(em_typeof(EM_NONE), EM_T_NONE);
    assert_string_equal(em_type_name(EM_T_MAP), "map");
    assert_string_equal(em_type_name(EM_T_UINT), "uint");
    assert_string_equal(em_type_name(EM_T_NONE), "none");
}

static void test_integer_boundaries(void **state)
{
    (void)state;
    int64_t i;
    uint64_t u;
    em_term t = em_int(EMI_SMALL_MAX);   /* 2^62 - 1 */
    assert_true(emi_is_small(t));
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, EMI_SMALL_MAX);

    t = em_int(EMI_SMALL_MAX + 1);       /* 2^62 */
    assert_true(emi_is_box(t));
    assert_int_equal(emi_box_type(t), BOX_INT);
    assert_int_equal(em_typeof(t), EM_T_INT);
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, (int64_t)1 << 62);

    t = em_int(EMI_SMALL_MIN);           /* -2^62 */
    assert_true(emi_is_small(t));
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, EMI_SMALL_MIN);
    t = em_int(EMI_SMALL_MIN - 1);
    assert_true(emi_is_box(t));
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, EMI_SMALL_MIN - 1);

    t = em_int(INT64_MIN);
    assert_int_equal(em_typeof(t), EM_T_INT);
    assert_true(em_get_int(t, &i));
    assert_true(i == INT64_MIN);
    assert_false(em_get_uint(t, &u));

    t = em_int(INT64_MAX);
    assert_int_equal(em_typeof(t), EM_T_INT);
    assert_true(em_get_uint(t, &u));
    assert_int_equal(u, (uint64_t)INT64_MAX);

    t = em_uint(UINT64_MAX);
    assert_int_equal(em_typeof(t), EM_T_UINT);
    assert_true(em_get_uint(t, &u));
    assert_true(u == UINT64_MAX);
    assert_false(em_get_int(t, &i));

    t = em_uint((uint64_t)INT64_MAX + 1);
    assert_int_equal(em_typeof(t), EM_T_UINT);
    /* Unsigned values that fit int64 are canonically INT. */
    assert_int_equal(em_typeof(em_uint(5)), EM_T_INT);
    assert_true(emi_is_small(em_uint(5)));
    assert_true(em_equal(em_uint(5), em_int(5)));
    assert_true(em_equal(em_uint((uint64_t)1 << 62), em_int((int64_t)1 << 62)));
}

static void test_builders_fail_as_a_whole(void **state)
{
    em_term items[3] = {em_int(1), EM_NONE, em_int(3)};
    assert_int_equal(em_array(3, items), EM_NONE);
    em_term kv[4] = {em_atom("a"), em_int(1), em_atom("b"), EM_NONE};
    assert_int_equal(em_map(2, kv), EM_NONE);
    assert_int_equal(EM_ARR(em_int(1), EM_ARR(EM_NONE)), EM_NONE);
    assert_int_equal(em_str(NULL), EM_NONE);
    assert_int_equal(em_array(2, NULL), EM_NONE);

    /* Without a heap, boxed builders fail; immediates need none. */
    em_heap_use(NULL);
    assert_int_equal(em_str("x"), EM_NONE);
    assert_int_equal(em_float(1.0), EM_NONE);
    assert_int_equal(em_int((int64_t)1 << 62), EM_NONE);
    char big[100] = {0};
    assert_int_equal(em_bin(big, sizeof big), EM_NONE);
    assert_int_equal(em_make_ref(), EM_NONE);
    assert_int_not_equal(em_int(7), EM_NONE);
    assert_int_not_equal(em_atom("ok"), EM_NONE);
    assert_int_equal(em_bool(true), EM_TRUE);
    em_heap_use(*state);
}

/* ------------------------------------------------------------ atoms */

static void test_atoms(void **state)
{
    (void)state;
    em_term a = em_atom("hello"), b = em_atomn("hello!", 5);
    assert_int_equal(em_typeof(a), EM_T_ATOM);
    assert_int_equal(a, b);
    assert_string_equal(em_atom_name(a), "hello");
    assert_true(em_is_atom(a, "hello"));
    assert_false(em_is_atom(a, "hell"));
    assert_false(em_is_atom(em_int(1), "hello"));
    assert_null(em_atom_name(em_int(1)));
    assert_null(em_atom_name(EM_TRUE));   /* booleans are not atoms for the API */
    assert_int_not_equal(em_atom("other"), a);

    /* An atom spelled nil is not the nil term. */
    em_term nil_atom = em_atom("nil");
    assert_int_equal(em_typeof(nil_atom), EM_T_ATOM);
    assert_false(em_equal(nil_atom, EM_NIL));
    assert_true(em_compare(EM_NIL, nil_atom) < 0);

    char name[300];
    memset(name, 'x', sizeof name);
    assert_int_not_equal(em_atomn(name, 255), EM_NONE);
    assert_int_equal(em_atomn(name, 256), EM_NONE);
    assert_int_equal(emi_atom_intern(name, 256), EM_EINVAL);
    assert_int_equal(em_atomn("a\0b", 3), EM_NONE);
    assert_int_equal(em_atom(NULL), EM_NONE);
    em_term empty = em_atom("");
    assert_int_not_equal(empty, EM_NONE);
    assert_string_equal(em_atom_name(empty), "");

    size_t len;
    const char *s = emi_atom_str(emi_atom_index(a), &len);
    assert_int_equal(len, 5);
    assert_string_equal(s, "hello");
    assert_null(emi_atom_str(1u << 20, &len));
}

#define ATOM_THREADS 4
#define ATOMS_PER_THREAD 2000

static void *intern_many(void *arg)
{
    em_term *out = arg;
    char name[32];
    for (int i = 0; i < ATOMS_PER_THREAD; i++) {
        snprintf(name, sizeof name, "shared_%d", i);
        out[i] = em_atom(name);
    }
    return NULL;
}

static void test_atoms_concurrent(void **state)
{
    (void)state;
    static em_term got[ATOM_THREADS][ATOMS_PER_THREAD];
    pthread_t th[ATOM_THREADS];
    for (int t = 0; t < ATOM_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, intern_many, got[t]), 0);
    for (int t = 0; t < ATOM_THREADS; t++)
        pthread_join(th[t], NULL);
    char name[32];
    for (int i = 0; i < ATOMS_PER_THREAD; i++) {
        snprintf(name, sizeof name, "shared_%d", i);
        for (int t = 0; t < ATOM_THREADS; t++) {
            assert_int_not_equal(got[t][i], EM_NONE);
            assert_int_equal(got[t][i], got[0][i]);
        }
        assert_string_equal(em_atom_name(got[0][i]), name);
    }
}

/* Runs last: fills the table to its limit, then empties it with emi_atoms_fini. */
static void test_atom_limit_and_fini(void **state)
{
    (void)state;
    emi_atoms_fini();
    char name[32];
    int64_t last = -1;
    for (uint32_t i = 0; i < (1u << 20); i++) {
        snprintf(name, sizeof name, "a%u", i);
        last = emi_atom_intern(name, strlen(name));
        if (last < 0) {
            fail_msg("interning atom %u failed with %lld", i, (long long)last);
        }
    }
    assert_int_equal(last, (1 << 20) - 1);
    assert_int_equal(emi_atom_intern("one_too_many", 12), EM_ESYSLIMIT);
    assert_int_equal(em_atom("one_too_many"), EM_NONE);
    /* Existing atoms are still found at the limit. */
    assert_int_equal(emi_atom_intern("a17", 3), 17);
    emi_atoms_fini();
    assert_null(emi_atom_str(0, NULL));
    assert_int_equal(emi_atom_intern("fresh", 5), 0);
    assert_string_equal(em_atom_name(em_atom("fresh")), "fresh");
    emi_atoms_fini();
}

/* -------------------------------------------------- arrays and maps */

static void test_arrays(void **state)
{
    (void)state;
    em_term a = EM_ARR(em_int(1), em_str("two"), em_atom("three"));
    assert_int_equal(em_typeof(a), EM_T_ARRAY);
    assert_int_equal(em_len(a), 3);
    assert_true(em_equal(em_at(a, 1), em_str("two")));
    assert_int_equal(em_at(a, 3), EM_NONE);
    assert_int_equal(em_at(em_int(1), 0), EM_NONE);
    em_term e = em_array(0, NULL);
    assert_int_equal(em_typeof(e), EM_T_ARRAY);
    assert_int_equal(em_len(e), 0);
}

static void test_maps(void **state)
{
    (void)state;
    em_term kv[] = {em_atom("a"), em_int(1), em_str("b"), em_int(2), em_int(3), EM_NIL};
    em_term m = em_map(3, kv);
    assert_int_equal(em_typeof(m), EM_T_MAP);
    assert_int_equal(em_len(m), 3);
    assert_true(em_equal(em_map_key(m, 1), em_str("b")));   /* insertion order */
    assert_true(em_equal(em_map_value(m, 1), em_int(2)));
    assert_true(em_equal(em_map_get(m, em_str("b")), em_int(2)));
    assert_int_equal(em_map_get(m, em_int(3)), EM_NIL);
    assert_int_equal(em_map_get(m, em_atom("zz")), EM_NONE);
    assert_int_equal(em_map_get(m, em_float(3.0)), EM_NONE);   /* 3.0 is not 3 */
    assert_int_equal(em_map_key(m, 3), EM_NONE);

    /* Repeated keys: the first position, the last value. */
    em_term dup[] = {em_atom("k"), em_int(1), em_atom("j"), em_int(2),
                     em_atom("k"), em_int(3), em_str("k"), em_int(4)};
    m = em_map(4, dup);
    assert_int_equal(em_len(m), 3);
    assert_int_equal(em_map_key(m, 0), em_atom("k"));
    assert_true(em_equal(em_map_value(m, 0), em_int(3)));
    assert_true(em_equal(em_map_get(m, em_str("k")), em_int(4)));

    /* The same with more pairs than the pairwise path takes. */
    enum { N = 100 };
    em_term big[4 * N];
    for (int i = 0; i < 2 * N; i++) {
        big[2 * i] = em_int(i % N);
        big[2 * i + 1] = em_int(i);
    }
    m = em_map(2 * N, big);
    assert_int_equal(em_len(m), N);
    for (int i = 0; i < N; i++) {
        assert_true(em_equal(em_map_key(m, (size_t)i), em_int(i)));
        int64_t v;
        assert_true(em_get_int(em_map_get(m, em_int(i)), &v));
        assert_int_equal(v, i + N);
    }
}

/* --------------------------------------------- equality and ordering */

static em_term map2(em_term k1, em_term v1, em_term k2, em_term v2)
{
    em_term kv[] = {k1, v1, k2, v2};
    return em_map(2, kv);
}

static void test_ordering_table(void **state)
{
    (void)state;
    unsigned char big[100];
    memset(big, 1, sizeof big);
    em_term kv1[] = {em_atom("a"), em_int(1)};
    em_term kv2[] = {em_atom("a"), em_int(2)};
    em_term kv3[] = {em_atom("b"), em_int(0)};
    /* Strictly ascending. */
    em_term seq[] = {
        em_float(-INFINITY),
        em_int(INT64_MIN),
        em_float(-1.5),
        em_int(-1),
        em_int(0),
        em_float(0.0),          /* same value as 0: the integer sorts first */
        em_float(0.5),
        em_int(1),
        em_float(1.0),
        em_int((int64_t)1 << 62),
        em_int(INT64_MAX),
        em_uint((uint64_t)1 << 63),
        em_float(9223372036854775808.0),
        em_uint(UINT64_MAX),
        em_float(1e30),
        em_float(INFINITY),
        em_float(NAN),
        em_atom("a"),
        em_atom("abc"),
        EM_FALSE,
        em_atom("false"),
        EM_NIL,
        em_atom("nil"),
        em_atom("ok"),
        EM_TRUE,
        em_atom("zzz"),
        em_make_ref(),
        em_make_ref(),
        em_pid(5),
        em_pid(((em_pid_t)1 << 48) | 1),
        em_array(0, NULL),
        EM_ARR(em_int(1)),
        EM_ARR(em_int(2)),
        EM_ARR(em_atom("a")),
        EM_ARR(em_int(1), em_int(1)),
        EM_ARR(EM_ARR(em_int(0)), em_int(1)),
        em_map(0, NULL),
        em_map(1, kv1),
        em_map(1, kv2),
        em_map(1, kv3),
        map2(em_atom("a"), em_int(9), em_atom("b"), em_int(0)),
        map2(em_atom("a"), em_int(0), em_atom("c"), em_int(0)),
        em_str(""),
        em_str("a"),
        em_str("ab"),
        em_str("b"),
        em_bin(NULL, 0),
        em_bin("\0", 1),
        em_bin(big, sizeof big),
        em_bin("b", 1),
    };
    size_t n = sizeof seq / sizeof seq[0];
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(seq[i], EM_NONE);
        for (size_t j = 0; j < n; j++) {
            int want = i < j ? -1 : i > j;
            int got = em_compare(seq[i], seq[j]);
            if (got != want || em_equal(seq[i], seq[j]) != (i == j))
                fail_msg("compare(seq[%zu], seq[%zu]): expected %d, got %d (equal %d)", i, j,
                         want, got, em_equal(seq[i], seq[j]));
        }
    }
}

static void test_equality(void **state)
{
    (void)state;
    /* Structurally equal terms built separately. */
    em_term a = EM_ARR(em_str("x"), em_float(1.25), map2(em_atom("k"), em_int(1), em_int(2), EM_NIL));
    em_term b = EM_ARR(em_str("x"), em_float(1.25), map2(em_int(2), EM_NIL, em_atom("k"), em_int(1)));
    assert_true(em_equal(a, b));   /* map key order does not matter */
    assert_int_equal(em_compare(a, b), 0);
    assert_false(em_equal(em_int(1), em_float(1.0)));
    assert_true(em_equal(em_float(0.0), em_float(-0.0)));
    assert_true(em_equal(em_float(NAN), em_float(NAN)));
    assert_false(em_equal(em_str("abc"), em_bin("abc", 3)));
    unsigned char big[80];
    memset(big, 9, sizeof big);
    assert_true(em_equal(em_bin(big, 80), em_bin(big, 80)));
    assert_false(em_equal(em_pid(1), em_pid(2)));

    /* Large maps (the sorted path) compare regardless of insertion order. */
    enum { N = 50 };
    em_term f[2 * N], r[2 * N];
    for (int i = 0; i < N; i++) {
        f[2 * i] = em_int(i);
        f[2 * i + 1] = em_str("v");
        r[2 * (N - 1 - i)] = em_int(i);
        r[2 * (N - 1 - i) + 1] = em_str("v");
    }
    em_term mf = em_map(N, f), mr = em_map(N, r);
    assert_true(em_equal(mf, mr));
    r[1] = em_str("w");   /* key N-1 now maps to "w" */
    em_term mr2 = em_map(N, r);
    assert_false(em_equal(mf, mr2));
    assert_true(em_compare(mf, mr2) < 0);
    assert_true(em_compare(mr2, mf) > 0);
}

static em_term nest(int depth, em_term leaf)
{
    em_term t = leaf;
    for (int i = 0; i < depth; i++)
        t = EM_ARR(t);
    return t;
}

static void test_deep_compare(void **state)
{
    (void)state;
    /* Far deeper than a process stack could recurse. */
    em_term a = nest(200000, em_int(1)), b = nest(200000, em_int(1)), c = nest(200000, em_int(2));
    assert_true(em_equal(a, b));
    assert_true(em_compare(a, c) < 0);
    assert_true(em_compare(c, a) > 0);
}

/* ------------------------------------------------------------ copies */

static em_term sample_term(void)
{
    unsigned char big[300];
    for (int i = 0; i < 300; i++)
        big[i] = (unsigned char)i;
    em_term kv[] = {em_atom("bin"), em_bin(big, sizeof big), em_str("list"),
                    EM_ARR(em_int(1), em_int(-((int64_t)1 << 62) - 5), em_float(3.5), EM_NIL),
                    em_int(7), em_uint(UINT64_MAX)};
    return EM_ARR(em_map(3, kv), em_pid(42), em_make_ref(), em_str("tail"), em_bin("ab", 2),
                  em_array(0, NULL), EM_TRUE);
}

static void test_copy(void **state)
{
    (void)state;
    em_term t = sample_term();
    em_term refbin_term = em_map_get(em_at(t, 0), em_atom("bin"));
    emi_refbin *rb = ((emi_refbin_box *)emi_box(refbin_term))->bin;
    /* Relaxed loads: only this thread touches the count here. */
    assert_int_equal(atomic_load_explicit(&rb->refs, memory_order_relaxed), 1);

    int64_t size = emi_term_size(t);
    assert_true(size > 0);
    assert_int_equal(size % 8, 0);
    unsigned char *buf = malloc((size_t)size);
    assert_non_null(buf);
    emi_refbin_box *offheap = NULL;
    em_term c = emi_term_copy(t, buf, &offheap);
    assert_true(em_equal(c, t));
    assert_int_equal(em_compare(c, t), 0);
    /* The copy lives in buf, not in the heap. */
    assert_true((unsigned char *)emi_box(c) >= buf && (unsigned char *)emi_box(c) < buf + size);
    em_term inner = em_at(em_map_get(em_at(c, 0), em_str("list")), 2);
    assert_true((unsigned char *)emi_box(inner) >= buf &&
                (unsigned char *)emi_box(inner) < buf + size);

    /* The shared binary was referenced, not copied. */
    assert_non_null(offheap);
    assert_null(offheap->next);
    assert_ptr_equal(offheap->bin, rb);
    assert_int_equal(atomic_load_explicit(&rb->refs, memory_order_relaxed), 2);
    const void *d1, *d2;
    size_t n1, n2;
    assert_true(em_get_bin(em_map_get(em_at(c, 0), em_atom("bin")), &d1, &n1));
    assert_true(em_get_bin(refbin_term, &d2, &n2));
    assert_ptr_equal(d1, d2);

    emi_offheap_release(offheap, NULL);
    assert_int_equal(atomic_load_explicit(&rb->refs, memory_order_relaxed), 1);
    free(buf);

    /* Immediates need no space and copy as themselves. */
    assert_int_equal(emi_term_size(em_int(5)), 0);
    assert_int_equal(emi_term_size(em_atom("x")), 0);
    assert_int_equal(emi_term_copy(EM_NIL, NULL, &offheap), EM_NIL);
}

static void test_copy_release_frees_last(void **state)
{
    (void)state;
    unsigned char big[100] = {1};
    em_term t = EM_ARR(em_bin(big, 100), em_bin(big, 100));
    int64_t size = emi_term_size(t);
    assert_int_equal(size, 8 + 16 + 2 * 24);
    uint64_t *b1 = malloc((size_t)size), *b2 = malloc((size_t)size);
    emi_refbin_box *o1 = NULL, *o2 = NULL;
    em_term c1 = emi_term_copy(t, b1, &o1);
    /* A copy of a copy, then the first copy goes away: the bytes stay. */
    em_term c2 = emi_term_copy(c1, b2, &o2);
    emi_offheap_release(o1, NULL);
    free(b1);
    assert_true(em_equal(c2, t));
    emi_refbin *rb = ((emi_refbin_box *)emi_box(em_at(t, 0)))->bin;
    assert_int_equal(atomic_load_explicit(&rb->refs, memory_order_relaxed), 2);
    /* Releasing stops at `stop`. */
    assert_non_null(o2->next);
    emi_offheap_release(o2, o2->next);
    emi_offheap_release(o2->next, NULL);
    free(b2);
    assert_int_equal(atomic_load_explicit(&rb->refs, memory_order_relaxed), 1);
}

static void test_copy_rejects_bad_terms(void **state)
{
    (void)state;
    assert_int_equal(emi_term_size(EM_NONE), EM_EBADTERM);
    /* A box of an unknown type, inside an array. */
    static uint64_t bogus[2] __attribute__((aligned(8))) = {0x77, 0};
    em_term bad = (em_term)(uintptr_t)bogus;
    assert_int_equal(emi_term_size(EM_ARR(em_int(1), EM_ARR(bad))), EM_EBADTERM);
    assert_int_equal(emi_term_size(bad), EM_EBADTERM);
    /* An atom index that was never interned. */
    assert_int_equal(emi_term_size(EM_ARR(emi_make_atom(1u << 19))), EM_EBADTERM);

    /* Depth: 10,000 nested containers are fine, 10,001 are not. */
    int64_t ok = emi_term_size(nest(10000, em_int(1)));
    assert_int_equal(ok, 10000 * 16);
    assert_int_equal(emi_term_size(nest(10001, em_int(1))), EM_EBADTERM);
    assert_int_equal(emi_term_size(nest(10001, em_array(0, NULL)) /* 10,002 */), EM_EBADTERM);

    /* A term sharing one subterm at every level: its copy would be 2^64 boxes. */
    static char leaf[100000];
    em_term dag = em_strn(leaf, sizeof leaf);
    for (int i = 0; i < 64; i++)
        dag = EM_ARR(dag, dag);
    assert_int_equal(emi_term_size(dag), EM_ETOOBIG);
}

static void test_refs_unique(void **state)
{
    (void)state;
    uint64_t a = emi_ref_next(), b = emi_ref_next();
    assert_true(b > a);
    em_term r = em_make_ref();
    assert_true(emi_box(r)[2] > b);
    assert_int_equal(emi_box(r)[1], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        HEAP_TEST(test_scalars_read_back),
        HEAP_TEST(test_integer_boundaries),
        HEAP_TEST(test_builders_fail_as_a_whole),
        HEAP_TEST(test_atoms),
        HEAP_TEST(test_atoms_concurrent),
        HEAP_TEST(test_arrays),
        HEAP_TEST(test_maps),
        HEAP_TEST(test_ordering_table),
        HEAP_TEST(test_equality),
        HEAP_TEST(test_deep_compare),
        HEAP_TEST(test_copy),
        HEAP_TEST(test_copy_release_frees_last),
        HEAP_TEST(test_copy_rejects_bad_terms),
        HEAP_TEST(test_refs_unique),
        HEAP_TEST(test_atom_limit_and_fini),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
