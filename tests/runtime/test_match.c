/*
 * test_match.c - em_match, em_vmatch and em_match_check: literals, wildcards,
 * captures of each kind, nesting, map patterns, and malformed patterns.
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

static em_term P(const char *text)
{
    em_term t = EM_NONE;
    size_t pos = 0;
    int r = em_parse(text, &t, &pos);
    if (r)
        fail_msg("parsing \"%s\": expected 0, got %d at %zu", text, r, pos);
    return t;
}

/* Patterns without captures: does the term (given as text) match? */
static const struct {
    const char *term, *pattern;
    bool match;
} literal_cases[] = {
    {"1", "1", true},
    {"1", "2", false},
    {"1", "1.0", false},
    {"1.0", "1.0", true},
    {"1.0", "1", false},
    {"-0.0", "0.0", true},
    {"0.25", "2.5e-1", true},
    {"-9223372036854775808", "-9223372036854775808", true},
    {"18446744073709551615", "18446744073709551615", true},
    {"18446744073709551615", "0xFFFFFFFFFFFFFFFF", true},
    {"255", "0xff", true},
    {"-5", "5", false},
    {"ok", "ok", true},
    {"ok", "'ok'", true},
    {"ok", "error", false},
    {"'hello world'", "'hello world'", true},
    {"'a\\'b'", "'a\\'b'", true},
    {"nil", "nil", true},
    {"nil", "'nil'", false},
    {"'nil'", "'nil'", true},
    {"'nil'", "nil", false},
    {"true", "true", true},
    {"false", "true", false},
    {"\"abc\"", "\"abc\"", true},
    {"\"abc\"", "\"ab\"", false},
    {"\"abc\"", "\"abcd\"", false},
    {"\"a\\nb\"", "\"a\\x0Ab\"", true},
    {"\"abc\"", "<<\"abc\">>", false},
    {"<<\"abc\">>", "<<\"abc\">>", true},
    {"<<\"abc\">>", "<<97, \"b\", 99>>", true},
    {"<<>>", "<<>>", true},
    {"<<1>>", "<<>>", false},
    {"<<1,2>>", "<<1>>", false},
    {"\"abc\"", "abc", false},
    {"<0.5.1>", "<0.5.1>", true},
    {"<0.5.1>", "<0.5.2>", false},
    {"#Ref<0.9>", "#Ref<0.9>", true},
    {"#Ref<0.9>", "#Ref<0.8>", false},
    {"[]", "[]", true},
    {"[]", "{}", true},
    {"[1, 2]", "{1, 2}", true},
    {"[1, 2]", "[1, 2, 3]", false},
    {"[1, 2, 3]", "[1, 2]", false},
    {"[1, [2, [3]]]", "{1, {2, {3}}}", true},
    {"[1, [2, [3]]]", "{1, {2, {4}}}", false},
    {"[1, 2]", "_", true},
    {"[1, 2]", "[_, _]", true},
    {"[1, 2]", "[_]", false},
    {"#{}", "_", true},
    {"ok", "[_]", false},
    {"#{a => 1, b => 2}", "#{}", true},
    {"#{a => 1, b => 2}", "#{b => 2}", true},
    {"#{a => 1, b => 2}", "#{b => 2, a => 1}", true},
    {"#{a => 1, b => 2}", "#{b => 3}", false},
    {"#{a => 1, b => 2}", "#{c => _}", false},
    {"#{a => 1, b => 2}", "#{a => _, b => _}", true},
    {"[1]", "#{}", false},
    {"#{[1, 2] => x}", "#{{1, 2} => x}", true},
    {"#{[1, 2] => x}", "#{[1] => x}", false},
    {"#{#{k => v} => x}", "#{#{k => v} => x}", true},
    {"#{#{k => v, j => w} => x}", "#{#{k => v} => x}", false},   /* keys are exact */
    {"#{\"s\" => #{n => [1, 2]}}", "#{\"s\" => #{n => [_, 2]}}", true},
    {"  [ 1 ]  ", "\n[\t1 ]\n", true},
};

static void test_literals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof literal_cases / sizeof literal_cases[0]; i++) {
        em_term t = P(literal_cases[i].term);
        bool got = em_match(t, literal_cases[i].pattern);
        if (got != literal_cases[i].match)
            fail_msg("%s against %s: expected %s, got %s", literal_cases[i].term,
                     literal_cases[i].pattern, literal_cases[i].match ? "match" : "no match",
                     got ? "match" : "no match");
        assert_int_equal(em_match_check(literal_cases[i].pattern), 0);
    }
}

static void test_captures(void **state)
{
    (void)state;
    em_pid_t me = ((em_pid_t)1 << 48) | ((em_pid_t)3 << 28) | 77;
    unsigned char big[100];
    memset(big, 4, sizeof big);
    em_term msg = EM_ARR(em_atom("req"), em_pid(me), em_int(-12), em_uint(UINT64_MAX),
                         em_float(2.5), em_atom("mode"), em_str("text"), em_bin(big, 100),
                         EM_ARR(em_int(1), EM_NIL));
    int64_t i = 0;
    uint64_t u = 0;
    double f = 0;
    em_term a = EM_NONE, s = EM_NONE, b = EM_NONE, t = EM_NONE;
    em_pid_t p = 0;
    assert_true(em_match(msg, "{req, ~p, ~i, ~u, ~f, ~a, ~s, ~b, ~t}", &p, &i, &u, &f, &a, &s,
                         &b, &t));
    assert_int_equal(p, me);
    assert_int_equal(i, -12);
    assert_true(u == UINT64_MAX);
    assert_true(f == 2.5);
    assert_int_equal(a, em_atom("mode"));
    assert_true(em_equal(s, em_str("text")));
    assert_true(em_equal(b, em_bin(big, 100)));
    assert_true(em_equal(t, EM_ARR(em_int(1), EM_NIL)));

    /* ~i takes a UINT that fits, ~u a non-negative INT, ~f an integer. */
    assert_true(em_match(em_int(7), "~u", &u));
    assert_int_equal(u, 7);
    assert_false(em_match(em_int(-7), "~u", &u));
    assert_false(em_match(em_uint(UINT64_MAX), "~i", &i));
    assert_true(em_match(em_int(3), "~f", &f));
    assert_true(f == 3.0);
    assert_false(em_match(em_float(1.5), "~i", &i));

    /* Kinds are checked. */
    assert_false(em_match(EM_TRUE, "~a", &a));   /* true is a bool, not an atom */
    assert_false(em_match(em_str("x"), "~b", &b));
    assert_false(em_match(em_bin("x", 1), "~s", &s));
    assert_false(em_match(em_int(1), "~p", &p));
    assert_true(em_match(EM_NIL, "~t", &t));
    assert_int_equal(t, EM_NIL);

    /* NULL capture pointers are skipped. */
    assert_true(em_match(EM_ARR(em_int(1), em_int(2)), "[~i, ~i]", (int64_t *)NULL, &i));
    assert_int_equal(i, 2);

    /* Captures inside maps and nested arrays, in text order. */
    em_term kv[] = {em_atom("id"), em_int(9), em_atom("tags"), EM_ARR(em_str("x"), em_str("y"))};
    em_term m = em_map(2, kv);
    em_term t1 = EM_NONE, t2 = EM_NONE;
    assert_true(em_match(m, "#{tags => [~s, ~t], id => ~i}", &t1, &t2, &i));
    assert_true(em_equal(t1, em_str("x")));
    assert_true(em_equal(t2, em_str("y")));
    assert_int_equal(i, 9);
}

static void test_no_capture_on_failure(void **state)
{
    (void)state;
    em_term msg = EM_ARR(em_atom("ok"), em_int(5), em_str("s"));
    int64_t i = 111;
    em_term s = EM_NIL;
    /* Fails at the last element, after the captures were seen. */
    assert_false(em_match(msg, "{ok, ~i, ~a}", &i, &s));
    assert_int_equal(i, 111);
    assert_int_equal(s, EM_NIL);
    assert_false(em_match(msg, "{ok, ~i, ~s, extra}", &i, &s));
    assert_int_equal(i, 111);
    assert_false(em_match(msg, "{error, ~i, ~s}", &i, &s));
    assert_int_equal(i, 111);
    assert_int_equal(s, EM_NIL);
    /* A map missing a key. */
    em_term kv[] = {em_atom("a"), em_int(1)};
    assert_false(em_match(em_map(1, kv), "#{a => ~i, b => _}", &i));
    assert_int_equal(i, 111);
    /* A malformed pattern after a matching prefix. */
    assert_false(em_match(msg, "{ok, ~i, ~s} trailing", &i, &s));
    assert_int_equal(i, 111);
    assert_false(em_match(EM_NONE, "~t", &s));
    assert_int_equal(s, EM_NIL);
}

static bool vmatch_twice(em_term a, em_term b, const char *pattern, ...)
{
    /* As a receive does: the same arguments tried against several terms. */
    va_list ap, ap2;
    va_start(ap, pattern);
    va_copy(ap2, ap);
    bool ra = em_vmatch(a, pattern, ap2);
    va_end(ap2);
    bool rb = !ra && em_vmatch(b, pattern, ap);
    va_end(ap);
    return ra || rb;
}

static void test_vmatch(void **state)
{
    (void)state;
    int64_t i = 0;
    em_term s = EM_NONE;
    assert_true(vmatch_twice(em_int(1), EM_ARR(em_int(4), em_str("z")), "[~i, ~s]", &i, &s));
    assert_int_equal(i, 4);
    assert_true(em_equal(s, em_str("z")));
}

static const char *bad_patterns[] = {
    "",
    "   ",
    "[1,",
    "[1,]",
    "[1 2]",
    "{1]",
    "#{a}",
    "#{a => }",
    "#{_ => 1}",          /* keys must be literals */
    "#{~i => 1}",
    "#{[_] => 1}",
    "~",
    "~x",
    "~I",
    "_x",
    "__",
    "Var",
    "\"open",
    "\"bad \\q escape\"",
    "'\\x4'",
    "'\\x00'",
    "<<256>>",
    "<<1,>>",
    "<1.2>",
    "<99999.0.0>",
    "#Ref<1>",
    "#x",
    "18446744073709551616",
    "-9223372036854775809",
    "1e999",
    "0x",
    "ok ok",
    "[ok] ]",
    "@",
};

static void test_bad_patterns(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_patterns / sizeof bad_patterns[0]; i++) {
        int r = em_match_check(bad_patterns[i]);
        if (r != EM_EBADTERM)
            fail_msg("em_match_check(\"%s\"): expected %d, got %d", bad_patterns[i], EM_EBADTERM,
                     r);
        /* A bad pattern never matches, even a term its start would fit. */
        em_term dummy;
        int64_t x;
        assert_false(em_match(em_atom("ok"), bad_patterns[i], &dummy, &x));
    }
    assert_int_equal(em_match_check(NULL), EM_EINVAL);
    assert_false(em_match(em_int(1), NULL));

    /* A 256-byte atom cannot exist; 255 is fine. */
    char pat[300] = "'";
    memset(pat + 1, 'a', 256);
    strcpy(pat + 257, "'");
    assert_int_equal(em_match_check(pat), EM_EBADTERM);
    strcpy(pat + 256, "'");
    assert_int_equal(em_match_check(pat), 0);

    /* At most 32 captures. */
    char many[200] = "[";
    for (int k = 0; k < 33; k++)
        strcat(many, k ? ", _" : "_");
    strcat(many, "]");
    assert_int_equal(em_match_check(many), 0);
    char caps[200] = "[";
    for (int k = 0; k < 32; k++)
        strcat(caps, k ? ", ~t" : "~t");
    strcat(caps, "]");
    assert_int_equal(em_match_check(caps), 0);
    strcpy(caps + strlen(caps) - 1, ", ~t]");
    assert_int_equal(em_match_check(caps), EM_EBADTERM);

    /* Nesting deeper than 100 is refused; 100 is fine. */
    char deep[400];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    deep[200] = 0;
    assert_int_equal(em_match_check(deep), 0);
    memset(deep, '[', 101);
    memset(deep + 101, ']', 101);
    deep[202] = 0;
    assert_int_equal(em_match_check(deep), EM_EBADTERM);

    /* Valid patterns of every kind. */
    assert_int_equal(em_match_check("{ping, ~p}"), 0);
    assert_int_equal(em_match_check("#{k => [~i, ~u, ~f], 'q' => {~a, ~s, ~b, ~t}} "), 0);
    assert_int_equal(em_match_check("<<\"x\", 1>>"), 0);
}

/* Every term the text-form tests print also matches its own text as a pattern. */
static void test_term_matches_own_text(void **state)
{
    (void)state;
    const char *texts[] = {
        "[1, -2, 3.5, nil, true, false, ok, 'Q a', \"s\\n\", <<1,2>>, <<\"b\">>]",
        "#{a => [1, #{b => \"c\"}], \"k\" => <0.1.2>, 7 => #Ref<0.42>}",
        "[18446744073709551615, -9223372036854775808, 1.0e-6, 0.1]",
    };
    char buf[512];
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        em_term t = P(texts[i]);
        assert_true(em_format(t, buf, sizeof buf) < (int)sizeof buf);
        if (!em_match(t, buf))
            fail_msg("\"%s\" does not match its own text", buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        HEAP_TEST(test_literals),
        HEAP_TEST(test_captures),
        HEAP_TEST(test_no_capture_on_failure),
        HEAP_TEST(test_vmatch),
        HEAP_TEST(test_bad_patterns),
        HEAP_TEST(test_term_matches_own_text),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    emi_atoms_fini();
    return r;
}
