/*
 * test_term_text.c - the text form: em_format and em_parse, and that one undoes
 * the other, on a table of cases, on random nested terms (which are also deep
 * copied) and on malformed text.
 */
#include <math.h>
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
#include "term/term_int.h"

/* The text of t, in a buffer that lives until the next call. */
static const char *fmt(em_term t)
{
    static char *buf;
    static size_t cap;
    int n = em_format(t, buf, cap);
    assert_true(n >= 0);
    if ((size_t)n >= cap) {
        free(buf);
        cap = (size_t)n + 1;
        buf = malloc(cap);
        assert_non_null(buf);
        assert_int_equal(em_format(t, buf, cap), n);
    }
    return buf;
}

static em_term parse_ok(const char *text)
{
    em_term t = EM_NONE;
    size_t pos = 12345;
    int r = em_parse(text, &t, &pos);
    if (r != 0)
        fail_msg("parsing \"%s\": expected 0, got %d at %zu", text, r, pos);
    return t;
}

/* ------------------------------------------------------------ table */

static const struct {
    const char *in, *out;   /* out NULL: prints as in */
} cases[] = {
    {"42", NULL},
    {"-7", NULL},
    {"0", NULL},
    {"-0", "0"},
    {"4611686018427387903", NULL},    /* 2^62 - 1 */
    {"4611686018427387904", NULL},    /* 2^62 */
    {"-9223372036854775808", NULL},   /* INT64_MIN */
    {"9223372036854775807", NULL},
    {"18446744073709551615", NULL},   /* UINT64_MAX */
    {"0x1F", "31"},
    {"-0x10", "-16"},
    {"0xFFFFFFFFFFFFFFFF", "18446744073709551615"},
    {"1.5", NULL},
    {"-1.5", NULL},
    {"0.0", NULL},
    {"-0.0", NULL},
    {"0.1", NULL},
    {"100.0", NULL},
    {"1e3", "1000.0"},
    {"2.5E-3", "0.0025"},
    {"1.0e20", NULL},
    {"1e16", "1.0e16"},
    {"1e15", "1000000000000000.0"},
    {"0.00001", NULL},
    {"0.000001", "1.0e-6"},
    {"123456.789", NULL},
    {"1.7976931348623157e308", NULL},
    {"5.0e-324", NULL},
    {"0.30000000000000004", NULL},
    {"nil", NULL},
    {"true", NULL},
    {"false", NULL},
    {"ok", NULL},
    {"node@host", NULL},
    {"aB_9@", NULL},
    {"'Quoted atom'", NULL},
    {"'nil'", NULL},
    {"'true'", NULL},
    {"''", NULL},
    {"'a\\'b\\\\c'", NULL},
    {"'\\x01\\n'", "'\\x01\\n'"},
    {"'ok'", "ok"},
    {"\"string\"", NULL},
    {"\"\"", NULL},
    {"\"q\\\"b\\\\s\\n\\t\\x01\\x7F\"", NULL},
    {"\"\\r\\'\"", "\"\\x0D'\""},
    {"\"\\x41\"", "\"A\""},
    {"\"h\xc3\xa9llo\"", NULL},
    {"<<>>", NULL},
    {"<<1,2,255>>", NULL},
    {"<<\"bytes\">>", NULL},
    {"<<104,105>>", "<<\"hi\">>"},
    {"<< \"a\" , 0 , \"b\" >>", "<<97,0,98>>"},
    {"<<\"q\\\"\">>", NULL},
    {"[]", NULL},
    {"[1, two, \"three\"]", NULL},
    {"{a, b}", "[a, b]"},
    {"{}", "[]"},
    {"[[[]]]", NULL},
    {"#{}", NULL},
    {"#{k => v}", NULL},
    {"#{a => 1, \"b\" => [2, 3], #{} => <<>>}", NULL},
    {"#{a => 1, a => 2}", "#{a => 2}"},
    {"<0.12.1>", NULL},
    {"<65535.268435455.1048575>", NULL},
    {"#Ref<0.5>", NULL},
    {"#Ref<3.18446744073709551615>", NULL},
    {" \t\n[ 1 ,\r\n{ok , 2} , #{ x=>y } ] \n", "[1, [ok, 2], #{x => y}]"},
};

static void test_table_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *in = cases[i].in, *want = cases[i].out ? cases[i].out : in;
        em_term t = parse_ok(in);
        const char *got = fmt(t);
        if (strcmp(got, want) != 0)
            fail_msg("case %zu: %s printed as \"%s\", expected \"%s\"", i, in, got, want);
        em_term back = parse_ok(got);
        if (!em_equal(back, t))
            fail_msg("case %zu: \"%s\" did not read back equal", i, got);
    }
}

static void test_parse_values(void **state)
{
    (void)state;
    int64_t i;
    uint64_t u;
    double f;
    assert_true(em_get_int(parse_ok("-9223372036854775808"), &i));
    assert_true(i == INT64_MIN);
    assert_int_equal(em_typeof(parse_ok("18446744073709551615")), EM_T_UINT);
    assert_true(em_get_uint(parse_ok("18446744073709551615"), &u));
    assert_true(u == UINT64_MAX);
    assert_int_equal(em_typeof(parse_ok("9223372036854775807")), EM_T_INT);
    assert_int_equal(em_typeof(parse_ok("1.0")), EM_T_FLOAT);
    assert_true(em_get_float(parse_ok("-2.5e-3"), &f));
    assert_true(f == -2.5e-3);
    assert_true(signbit(em_get_float(parse_ok("-0.0"), &f) ? f : 1.0));
    assert_int_equal(parse_ok("nil"), EM_NIL);
    assert_int_equal(parse_ok("true"), EM_TRUE);
    assert_int_equal(parse_ok("false"), EM_FALSE);
    assert_int_equal(parse_ok("'nil'"), em_atom("nil"));
    assert_int_equal(parse_ok("hello"), em_atom("hello"));

    em_pid_t p;
    assert_true(em_get_pid(parse_ok("<2.12.1>"), &p));
    assert_int_equal(em_pid_node(p), 2);
    assert_int_equal(em_pid_index(p), 12);
    assert_int_equal(em_pid_serial(p), 1);

    em_term m = parse_ok("#{b => 1, a => 2}");
    assert_int_equal(em_len(m), 2);
    assert_int_equal(em_map_key(m, 0), em_atom("b"));   /* text order kept */

    unsigned char big[100];
    for (int k = 0; k < 100; k++)
        big[k] = (unsigned char)(k * 3);
    em_term b = em_bin(big, sizeof big);
    em_term back = parse_ok(fmt(b));
    assert_true(em_equal(back, b));
    assert_int_equal(emi_box_type(back), BOX_REFBIN);   /* long binaries are shared */

    /* A float that needs all 17 digits, and one just above 2^53. */
    em_term t = em_float(0.1 + 0.2);
    assert_string_equal(fmt(t), "0.30000000000000004");
    t = em_float(9007199254740993.0);
    assert_true(em_equal(parse_ok(fmt(t)), t));

    /* A string of every byte value but NUL, and one with NUL. */
    char all[256];
    for (int k = 1; k < 256; k++)
        all[k - 1] = (char)k;
    t = em_strn(all, 255);
    assert_true(em_equal(parse_ok(fmt(t)), t));
    t = em_strn("a\0b", 3);
    assert_string_equal(fmt(t), "\"a\\x00b\"");
    assert_true(em_equal(parse_ok(fmt(t)), t));

    /* 1,000 nested arrays are within the limit. */
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = 0;
    t = parse_ok(deep);
    for (int k = 0; k < 999; k++)
        t = em_at(t, 0);
    assert_int_equal(em_typeof(t), EM_T_ARRAY);
    assert_int_equal(em_len(t), 0);
}

static void test_format_specials(void **state)
{
    (void)state;
    assert_string_equal(fmt(em_float(INFINITY)), "inf");
    assert_string_equal(fmt(em_float(-INFINITY)), "-inf");
    assert_string_equal(fmt(em_float(NAN)), "nan");
    assert_string_equal(fmt(em_atom("Caps")), "'Caps'");
    assert_string_equal(fmt(em_atom("with space")), "'with space'");
    assert_string_equal(fmt(em_atom("_x")), "'_x'");
    assert_string_equal(fmt(em_atom("a-b")), "'a-b'");
    assert_string_equal(fmt(em_pid(((em_pid_t)1 << 48) | ((em_pid_t)2 << 28) | 3)), "<1.3.2>");
    em_term r = em_make_ref();
    char want[64];
    snprintf(want, sizeof want, "#Ref<0.%llu>", (unsigned long long)emi_box(r)[2]);
    assert_string_equal(fmt(r), want);
    assert_string_equal(fmt(em_bin("a\nb", 3)), "<<97,10,98>>");
    assert_string_equal(fmt(em_bin("\\", 1)), "<<\"\\\\\">>");

    /* Not terms. */
    char buf[8] = "xxxxxxx";
    assert_int_equal(em_format(EM_NONE, buf, sizeof buf), EM_EBADTERM);
    assert_string_equal(buf, "");
    static uint64_t bogus[2] __attribute__((aligned(8))) = {0x55, 0};
    assert_int_equal(em_format(EM_ARR(em_int(1), (em_term)(uintptr_t)bogus), buf, sizeof buf),
                     EM_EBADTERM);
    assert_int_equal(em_format(emi_make_atom(1u << 19), buf, sizeof buf), EM_EBADTERM);
}

static void test_format_truncation(void **state)
{
    (void)state;
    em_term t = parse_ok("[hello, \"world\", 12345]");
    const char *full = "[hello, \"world\", 12345]";
    int n = (int)strlen(full);
    assert_int_equal(em_format(t, NULL, 0), n);
    char buf[64];
    memset(buf, '#', sizeof buf);
    assert_int_equal(em_format(t, buf, 0), n);
    assert_int_equal(buf[0], '#');   /* cap 0: nothing written */
    for (size_t cap = 1; cap <= (size_t)n + 1; cap++) {
        memset(buf, '#', sizeof buf);
        assert_int_equal(em_format(t, buf, cap), n);
        assert_int_equal(strlen(buf), cap - 1);
        assert_memory_equal(buf, full, cap - 1);
        assert_int_equal(buf[cap], '#');   /* nothing past cap */
    }
    assert_int_equal(em_format(t, buf, sizeof buf), n);
    assert_string_equal(buf, full);

    /* Deep terms print without recursion. */
    em_term d = em_int(0);
    for (int i = 0; i < 100000; i++)
        d = EM_ARR(d);
    assert_int_equal(em_format(d, NULL, 0), 200001);

#if EMBER_STRESS_SCALE == 1
    /* Text past INT_MAX is refused, and the walk stops there even for a term that
     * shares subterms (whose text would be 2^40 MiB). Scans 2 GiB: full runs only. */
    char *mb = malloc(1 << 20);
    memset(mb, 'x', 1 << 20);
    em_term dag = em_strn(mb, 1 << 20);
    free(mb);
    for (int i = 0; i < 40; i++)
        dag = EM_ARR(dag, dag);
    assert_int_equal(em_format(dag, NULL, 0), EM_ETOOBIG);
#endif
}

/* --------------------------------------------------- random terms */

static uint64_t rng;

static uint64_t next_rand(void)
{
    /* xorshift64*: small, seeded, reproducible. */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ull;
}

static em_term random_term(int depth)
{
    int kind = (int)(next_rand() % (depth > 0 ? 16 : 12));
    char s[40];
    size_t n = next_rand() % sizeof s;
    for (size_t i = 0; i < n; i++)
        s[i] = (char)(next_rand() % 3 ? 'a' + next_rand() % 26 : next_rand() % 256);
    double f;
    uint64_t bits;
    switch (kind) {
    case 0: return em_int((int64_t)next_rand());
    case 1: return em_int((int64_t)(next_rand() % 2001) - 1000);
    case 2: return em_uint(next_rand() | (1ull << 63));
    case 3:
        do {
            bits = next_rand();
            memcpy(&f, &bits, sizeof f);
        } while (!isfinite(f));
        return em_float(f);
    case 4: return em_float((double)(int64_t)(next_rand() % 100000) / 64.0);
    case 5: return (em_term[]){EM_NIL, EM_TRUE, EM_FALSE}[next_rand() % 3];
    case 6: {
        for (size_t i = 0; i < n; i++)
            if (!s[i])
                s[i] = 'z';
        return em_atomn(s, n);
    }
    case 7: return em_strn(s, n);
    case 8: return em_bin(s, n);
    case 9: {
        unsigned char big[200];
        for (size_t i = 0; i < sizeof big; i++)
            big[i] = (unsigned char)next_rand();
        return em_bin(big, 65 + next_rand() % 100);
    }
    case 10: return em_pid(next_rand());
    case 11: return em_make_ref();
    case 12:
    case 13: {
        em_term items[6];
        size_t k = next_rand() % 6;
        for (size_t i = 0; i < k; i++)
            items[i] = random_term(depth - 1);
        return em_array(k, items);
    }
    default: {
        em_term kv[10];
        size_t k = next_rand() % 5;
        for (size_t i = 0; i < 2 * k; i++)
            kv[i] = random_term(depth - 1);
        return em_map(k, kv);
    }
    }
}

static void test_random_round_trip(void **state)
{
    (void)state;
    rng = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 3000; i++) {
        em_mark m = em_heap_mark();
        em_term t = random_term(4);
        assert_int_not_equal(t, EM_NONE);
        char *text = strdup(fmt(t));
        em_term back = EM_NONE;
        size_t pos = 0;
        int r = em_parse(text, &back, &pos);
        if (r != 0)
            fail_msg("term %d: \"%s\" failed to parse: %d at %zu", i, text, r, pos);
        if (!em_equal(back, t) || em_compare(back, t) != 0)
            fail_msg("term %d: \"%s\" read back as \"%s\"", i, text, fmt(back));
        /* Printing is deterministic: the copy prints the same text. */
        if (strcmp(fmt(back), text) != 0)
            fail_msg("term %d: printed \"%s\" then \"%s\"", i, text, fmt(back));
        /* A deep copy into a separate buffer is equal too. */
        int64_t size = emi_term_size(t);
        assert_true(size >= 0);
        void *buf = malloc(size ? (size_t)size : 1);
        emi_refbin_box *offheap = NULL;
        em_term copy = emi_term_copy(t, buf, &offheap);
        if (!em_equal(copy, t))
            fail_msg("term %d: \"%s\" copied as \"%s\"", i, text, fmt(copy));
        emi_offheap_release(offheap, NULL);
        free(buf);
        free(text);
        em_heap_release(m);
    }
}

/* ------------------------------------------------------ malformed */

static const struct {
    const char *text;
    size_t errpos;
} bad[] = {
    {"", 0},
    {"   ", 3},
    {"\"abc", 4},                   /* unterminated string */
    {"\"abc\\", 5},
    {"'abc", 4},                    /* unterminated atom */
    {"\"a\\qb\"", 2},               /* unknown escape: at its backslash */
    {"\"\\x4\"", 1},
    {"\"\\xZZ\"", 1},
    {"[1,", 3},
    {"[1,]", 3},
    {"[1 2]", 3},
    {"[1}", 2},
    {"{1]", 2},
    {"#{1 =>}", 6},
    {"#{1}", 3},
    {"#{1 => 2,}", 9},
    {"#{1 = 2}", 4},
    {"#x", 0},
    {"#Ref<1>", 6},
    {"#Ref<1.x>", 7},
    {"<<256>>", 2},
    {"<<1,>>", 4},
    {"<<-1>>", 2},
    {"<<1 2>>", 4},
    {"<<\"a\"", 5},
    {"<1.2>", 4},
    {"<1.2.3", 6},
    {"<65536.0.0>", 1},
    {"<0.268435456.0>", 3},
    {"<0.0.1048576>", 5},
    {"18446744073709551616", 0},
    {"-9223372036854775809", 0},
    {"0x", 2},
    {"0x10000000000000000", 0},
    {"-", 1},
    {"1e999", 0},
    {"1.", 1},
    {"1 2", 2},
    {"ok ok", 3},
    {"Var", 0},
    {"_", 0},
    {"~i", 0},
    {"'\\x00'", 0},                 /* atoms cannot hold NUL */
    {"[a, b", 5},
    {"@", 0},
};

static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        em_term t = em_int(99);
        size_t pos = 777;
        int r = em_parse(bad[i].text, &t, &pos);
        if (r != EM_EBADTERM || pos != bad[i].errpos)
            fail_msg("\"%s\": expected EM_EBADTERM at %zu, got %d at %zu", bad[i].text,
                     bad[i].errpos, r, pos);
        assert_int_equal(t, EM_NONE);
    }
    /* A quoted atom of 256 bytes is too long; 255 is fine. */
    char atom[300];
    atom[0] = '\'';
    memset(atom + 1, 'q', 256);
    strcpy(atom + 257, "'");
    size_t pos = 0;
    em_term t;
    assert_int_equal(em_parse(atom, &t, &pos), EM_EBADTERM);
    assert_int_equal(pos, 0);
    strcpy(atom + 256, "'");
    assert_int_equal(em_parse(atom, &t, &pos), 0);
    assert_int_equal(strlen(em_atom_name(t)), 255);

    /* Arguments. */
    assert_int_equal(em_parse(NULL, &t, &pos), EM_EINVAL);
    assert_int_equal(em_parse("1", NULL, &pos), EM_EINVAL);
    assert_int_equal(em_parse("[1,", &t, NULL), EM_EBADTERM);
}

static void test_deep_nesting_rejected(void **state)
{
    (void)state;
    size_t n = 100000;
    char *text = malloc(n + 1);
    memset(text, '[', n);
    text[n] = 0;
    em_term t;
    size_t pos = 0;
    assert_int_equal(em_parse(text, &t, &pos), EM_EBADTERM);
    assert_int_equal(pos, 1000);   /* the 1,001st bracket */
    /* The same for mixed brackets, and closed ones. */
    for (size_t i = 0; i < n; i++)
        text[i] = "[{"[i % 2];
    assert_int_equal(em_parse(text, &t, &pos), EM_EBADTERM);
    assert_int_equal(pos, 1000);
    char *closed = malloc(2 * n + 1);
    memset(closed, '[', n);
    memset(closed + n, ']', n);
    closed[2 * n] = 0;
    assert_int_equal(em_parse(closed, &t, &pos), EM_EBADTERM);
    assert_int_equal(pos, 1000);
    free(closed);
    free(text);
}

static void test_parse_without_heap(void **state)
{
    em_heap_use(NULL);
    em_term t;
    size_t pos = 5;
    /* Immediates need no heap. */
    assert_int_equal(em_parse("[]", &t, &pos), EM_ENOTPROC);
    assert_int_equal(em_parse("ok", &t, &pos), 0);
    assert_int_equal(t, em_atom("ok"));
    assert_int_equal(em_parse("\"s\"", &t, &pos), EM_ENOTPROC);
    em_heap_use(*state);
}

/* Hand-rolled mutation fuzzing: the parser must return, not crash. */
static void test_parse_mutations(void **state)
{
    (void)state;
    rng = 12345;
    const char *alphabet = "[]{}#<>,.=>\"'\\x0123456789abcdefAZ_@-e ~Ref";
    size_t alen = strlen(alphabet);
    char text[64];
    for (int i = 0; i < 20000; i++) {
        em_mark m = em_heap_mark();
        size_t n = next_rand() % (sizeof text - 1);
        for (size_t k = 0; k < n; k++)
            text[k] = alphabet[next_rand() % alen];
        text[n] = 0;
        em_term t;
        size_t pos = SIZE_MAX;
        int r = em_parse(text, &t, &pos);
        if (r == 0) {
            /* Whatever parses prints and reads back equal. */
            em_term back;
            assert_int_equal(em_parse(fmt(t), &back, NULL), 0);
            assert_true(em_equal(back, t));
        } else {
            assert_int_equal(r, EM_EBADTERM);
            assert_true(pos <= n);
        }
        em_heap_release(m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        HEAP_TEST(test_table_round_trip),
        HEAP_TEST(test_parse_values),
        HEAP_TEST(test_format_specials),
        HEAP_TEST(test_format_truncation),
        HEAP_TEST(test_random_round_trip),
        HEAP_TEST(test_malformed),
        HEAP_TEST(test_deep_nesting_rejected),
        HEAP_TEST(test_parse_without_heap),
        HEAP_TEST(test_parse_mutations),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    emi_atoms_fini();
    return r;
}
