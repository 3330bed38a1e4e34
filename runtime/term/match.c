/*
 * match.c - em_match: testing a term against a pattern written as term text.
 *
 * The pattern text is interpreted directly against the term, without building
 * anything: patterns are short and a receive may test one against many messages,
 * so allocating a pattern term per test would cost more than reading the text.
 * The whole pattern is always read, even after the term has stopped matching, so
 * a malformed pattern never matches and em_match_check agrees with em_match.
 *
 * Semantics:
 *  - literals match terms em_equal to them (1 matches the integer 1, not 1.0;
 *    "abc" matches that string, <<"abc">> that binary);
 *  - [..] and {..} match arrays of exactly that many elements;
 *  - #{k => v, ..} matches any map holding those keys (like Erlang map patterns,
 *    it may hold others too), with values matching; keys must be literals;
 *  - _ matches anything; ~i ~u ~f take what em_get_int, em_get_uint and
 *    em_get_float accept (so ~f takes an integer too); ~a an atom (not nil, true
 *    or false, which are not atoms for em_typeof); ~s a string; ~b a binary; ~t any
 *    term; ~p a pid. A NULL capture pointer is allowed and skipped.
 * Captures are held here (at most MAX_CAPS) and written only after a full match.
 */
#include <string.h>

#include "term/term_int.h"
#include "term/text_int.h"

#define MAX_CAPS 32
#define MAX_DEPTH 100       /* patterns are short; this bounds the C recursion */
#define ATOM_MAX_LEN 255
#define MAX_FLOAT_TEXT 128  /* longest float literal a pattern may hold */

typedef struct cap {
    char kind;
    em_term t;
} cap;

typedef struct mctx {
    const char *s;
    size_t pos;
    int bad;        /* the pattern is malformed */
    int depth;
    int in_key;     /* inside a map key: only literals are allowed */
    int ncap;
    cap caps[MAX_CAPS];
} mctx;

static bool value(mctx *c, em_term t);

static bool set_bad(mctx *c)
{
    c->bad = 1;
    return false;
}

static int peek(const mctx *c) { return (unsigned char)c->s[c->pos]; }
/* Safe because the pattern is NUL-terminated and callers stop at the NUL. */
static int peek1(const mctx *c) { return c->s[c->pos] ? (unsigned char)c->s[c->pos + 1] : 0; }

static void skip_ws(mctx *c)
{
    for (;;) {
        int ch = peek(c);
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\f' && ch != '\v')
            return;
        c->pos++;
    }
}

/* Decimal digits into *v, refusing values above max. */
static bool lex_dec(mctx *c, uint64_t max, uint64_t *v)
{
    size_t n = emi_text_dec(c->s + c->pos, max, v);
    if (!n)
        return set_bad(c);
    c->pos += n;
    return true;
}

#define CH_END (-2)   /* the closing quote */
#define CH_BAD (-1)

/* The next decoded byte of a quoted literal, CH_END after its closing quote. */
static int next_char(mctx *c, char q)
{
    int ch = peek(c);
    if (ch == 0)
        return set_bad(c), CH_BAD;
    c->pos++;
    if (ch == q)
        return CH_END;
    if (ch != '\\')
        return ch;
    size_t n;
    int out = emi_text_escape(c->s + c->pos - 1, &n);
    if (out < 0)
        return set_bad(c), CH_BAD;
    c->pos += n - 1;   /* the backslash is already taken */
    return out;
}

/* ----------------------------------------------------------- literals */

static bool number_lit(mctx *c, em_term t)
{
    emi_number num;
    size_t n;
    if (emi_text_number(c->s + c->pos, &num, &n))
        return set_bad(c);
    /* A pattern's floats are short; a longer literal makes the pattern malformed,
     * as em_match_check has always said. */
    if (num.kind == EMI_NUMBER_FLOAT && n >= MAX_FLOAT_TEXT)
        return set_bad(c);
    c->pos += n;
    int64_t i;
    uint64_t u;
    double f;
    switch (num.kind) {
    case EMI_NUMBER_NEG: return em_get_int(t, &i) && i == num.i;
    case EMI_NUMBER_UINT: return em_get_uint(t, &u) && u == num.u;
    default: return em_typeof(t) == EM_T_FLOAT && em_get_float(t, &f) && f == num.f;
    }
}

static bool name_is(em_term t, const char *name, size_t n)
{
    size_t len;
    const char *s = emi_is_atom(t) ? emi_atom_str(emi_atom_index(t), &len) : NULL;
    return s && len == n && memcmp(s, name, n) == 0;
}

static bool bare_atom_lit(mctx *c, em_term t)
{
    size_t start = c->pos;
    while (emi_text_is_atom_char(peek(c)))
        c->pos++;
    const char *s = c->s + start;
    size_t n = c->pos - start;
    if (n > ATOM_MAX_LEN)
        return set_bad(c);
    if (n == 3 && !memcmp(s, "nil", 3))
        return t == EM_NIL;
    if (n == 4 && !memcmp(s, "true", 4))
        return t == EM_TRUE;
    if (n == 5 && !memcmp(s, "false", 5))
        return t == EM_FALSE;
    return name_is(t, s, n);
}

static bool quoted_atom_lit(mctx *c, em_term t)
{
    char name[ATOM_MAX_LEN];
    size_t n = 0;
    c->pos++;
    for (;;) {
        int ch = next_char(c, '\'');
        if (ch == CH_BAD)
            return false;
        if (ch == CH_END)
            break;
        if (ch == 0 || n == ATOM_MAX_LEN)
            return set_bad(c);   /* no atom can have this name */
        name[n++] = (char)ch;
    }
    return name_is(t, name, n);
}

/* Decodes a quoted segment, comparing it with bytes[*i...]. */
static bool quoted_bytes(mctx *c, const unsigned char *bytes, size_t len, size_t *i, bool ok)
{
    char q = (char)peek(c);
    c->pos++;
    for (;;) {
        int ch = next_char(c, q);
        if (ch == CH_BAD)
            return false;
        if (ch == CH_END)
            return ok;
        if (ok && *i < len && bytes[*i] == ch)
            (*i)++;
        else
            ok = false;
    }
}

static bool string_lit(mctx *c, em_term t)
{
    const char *s = NULL;
    size_t len = 0, i = 0;
    bool ok = em_get_str(t, &s, &len);
    ok = quoted_bytes(c, (const unsigned char *)s, len, &i, ok);
    return ok && i == len;
}

static bool binary_lit(mctx *c, em_term t)
{
    const void *d = NULL;
    size_t len = 0, i = 0;
    bool ok = em_get_bin(t, &d, &len);
    const unsigned char *bytes = d;
    c->pos += 2;
    skip_ws(c);
    if (peek(c) == '>' && peek1(c) == '>') {
        c->pos += 2;
        return ok && len == 0;
    }
    for (;;) {
        skip_ws(c);
        if (peek(c) == '"') {
            ok = quoted_bytes(c, bytes, len, &i, ok);
            if (c->bad)
                return false;
        } else {
            uint64_t v;
            if (!lex_dec(c, 255, &v))
                return false;
            if (ok && i < len && bytes[i] == v)
                i++;
            else
                ok = false;
        }
        skip_ws(c);
        if (peek(c) == ',') {
            c->pos++;
        } else if (peek(c) == '>' && peek1(c) == '>') {
            c->pos += 2;
            return ok && i == len;
        } else {
            return set_bad(c);
        }
    }
}

static bool expect(mctx *c, char ch)
{
    if (peek(c) != ch)
        return set_bad(c);
    c->pos++;
    return true;
}

static bool pid_lit(mctx *c, em_term t)
{
    uint64_t node, idx, serial;
    em_pid_t p;
    c->pos++;
    if (!lex_dec(c, 0xFFFF, &node) || !expect(c, '.') || !lex_dec(c, 0x0FFFFFFF, &idx) ||
        !expect(c, '.') || !lex_dec(c, 0xFFFFF, &serial) || !expect(c, '>'))
        return false;
    return em_get_pid(t, &p) && p == ((node << 48) | (serial << 28) | idx);
}

static bool ref_lit(mctx *c, em_term t)
{
    uint64_t node, counter;
    c->pos += 5;
    if (!lex_dec(c, UINT64_MAX, &node) || !expect(c, '.') ||
        !lex_dec(c, UINT64_MAX, &counter) || !expect(c, '>'))
        return false;
    return em_typeof(t) == EM_T_REF && emi_box(t)[1] == node && emi_box(t)[2] == counter;
}

/* ------------------------------------------------- wildcards and captures */

static bool capture(mctx *c, em_term t)
{
    char kind = (char)peek1(c);
    if (c->in_key || !kind || !strchr("iufasbtp", kind))
        return set_bad(c);
    c->pos += 2;
    if (c->ncap == MAX_CAPS)
        return set_bad(c);
    int k = c->ncap++;
    bool ok;
    switch (kind) {
    case 'i': ok = em_get_int(t, NULL); break;
    case 'u': ok = em_get_uint(t, NULL); break;
    case 'f': ok = em_get_float(t, NULL); break;
    case 'a': ok = em_typeof(t) == EM_T_ATOM; break;
    case 's': ok = em_typeof(t) == EM_T_STR; break;
    case 'b': ok = em_typeof(t) == EM_T_BIN; break;
    case 'p': ok = em_typeof(t) == EM_T_PID; break;
    default: ok = t != EM_NONE; break;   /* ~t */
    }
    c->caps[k] = (cap){kind, t};
    return ok;
}

/* ---------------------------------------------------------- containers */

static bool array_pat(mctx *c, em_term t, char close)
{
    c->pos++;
    bool is_arr = em_typeof(t) == EM_T_ARRAY;
    size_t n = is_arr ? em_len(t) : 0, i = 0;
    bool ok = is_arr;
    skip_ws(c);
    if (peek(c) == close) {
        c->pos++;
        return ok && n == 0;
    }
    for (;;) {
        if (!value(c, i < n ? em_at(t, i) : EM_NONE))
            ok = false;
        if (c->bad)
            return false;
        i++;
        skip_ws(c);
        if (peek(c) == ',') {
            c->pos++;
        } else if (peek(c) == close) {
            c->pos++;
            return ok && i == n;
        } else {
            return set_bad(c);
        }
    }
}

static bool map_pat(mctx *c, em_term t)
{
    c->pos += 2;
    bool is_map = em_typeof(t) == EM_T_MAP;
    size_t n = is_map ? em_len(t) : 0, pairs = 0;
    bool ok = is_map;
    skip_ws(c);
    if (peek(c) == '}') {
        c->pos++;
        return ok && (!c->in_key || n == 0);
    }
    for (;;) {
        /* Read the key once without a term to check it and find its end, then
         * again against each key of the map until one is equal. */
        size_t key_start = c->pos;
        c->in_key++;
        value(c, EM_NONE);
        if (c->bad)
            return false;
        size_t key_end = c->pos, found = SIZE_MAX;
        for (size_t i = 0; ok && i < n && found == SIZE_MAX; i++) {
            c->pos = key_start;
            if (value(c, em_map_key(t, i)))
                found = i;
        }
        c->pos = key_end;
        c->in_key--;
        skip_ws(c);
        if (peek(c) != '=' || peek1(c) != '>')
            return set_bad(c);
        c->pos += 2;
        if (!value(c, found != SIZE_MAX ? em_map_value(t, found) : EM_NONE) ||
            found == SIZE_MAX)
            ok = false;
        if (c->bad)
            return false;
        pairs++;
        skip_ws(c);
        if (peek(c) == ',') {
            c->pos++;
        } else if (peek(c) == '}') {
            c->pos++;
            /* A map used as a key is a literal: it must be equal, not a subset. */
            return ok && (!c->in_key || pairs == n);
        } else {
            return set_bad(c);
        }
    }
}

/* Reads one pattern at pos and tells whether t matches it (EM_NONE: no term,
 * only read). */
static bool value(mctx *c, em_term t)
{
    skip_ws(c);
    int ch = peek(c);
    if (ch == '[' || ch == '{' || (ch == '#' && peek1(c) == '{')) {
        if (++c->depth > MAX_DEPTH)
            return set_bad(c);
        bool r = ch == '#' ? map_pat(c, t) : array_pat(c, t, ch == '[' ? ']' : '}');
        c->depth--;
        return r;
    }
    switch (ch) {
    case '_':
        if (c->in_key || emi_text_is_atom_char(peek1(c)))
            return set_bad(c);
        c->pos++;
        return t != EM_NONE;
    case '~': return capture(c, t);
    case '#':
        if (!strncmp(c->s + c->pos, "#Ref<", 5))
            return ref_lit(c, t);
        return set_bad(c);
    case '<': return peek1(c) == '<' ? binary_lit(c, t) : pid_lit(c, t);
    case '"': return string_lit(c, t);
    case '\'': return quoted_atom_lit(c, t);
    case '-': return number_lit(c, t);
    default:
        if (emi_text_is_digit(ch))
            return number_lit(c, t);
        if (ch >= 'a' && ch <= 'z')
            return bare_atom_lit(c, t);
        return set_bad(c);
    }
}

/* Matches the whole pattern; on success c->caps holds the captures. */
static bool run(mctx *c, em_term t, const char *pattern)
{
    memset(c, 0, offsetof(mctx, caps));
    c->s = pattern;
    bool ok = value(c, t);
    if (!c->bad) {
        skip_ws(c);
        if (peek(c) != 0)
            set_bad(c);   /* something after the pattern */
    }
    return ok && !c->bad;
}

/* ------------------------------------------------------------- public */

bool em_vmatch(em_term t, const char *pattern, va_list ap)
{
    if (!pattern)
        return false;
    mctx c;
    if (!run(&c, t, pattern))
        return false;
    for (int k = 0; k < c.ncap; k++) {
        em_term v = c.caps[k].t;
        switch (c.caps[k].kind) {
        case 'i': {
            int64_t *p = va_arg(ap, int64_t *);
            if (p)
                em_get_int(v, p);
            break;
        }
        case 'u': {
            uint64_t *p = va_arg(ap, uint64_t *);
            if (p)
                em_get_uint(v, p);
            break;
        }
        case 'f': {
            double *p = va_arg(ap, double *);
            if (p)
                em_get_float(v, p);
            break;
        }
        case 'p': {
            em_pid_t *p = va_arg(ap, em_pid_t *);
            if (p)
                em_get_pid(v, p);
            break;
        }
        default: {   /* ~a ~s ~b ~t */
            em_term *p = va_arg(ap, em_term *);
            if (p)
                *p = v;
            break;
        }
        }
    }
    return true;
}

bool em_match(em_term t, const char *pattern, ...)
{
    va_list ap;
    va_start(ap, pattern);
    bool r = em_vmatch(t, pattern, ap);
    va_end(ap);
    return r;
}

int em_match_check(const char *pattern)
{
    if (!pattern)
        return EM_EINVAL;
    mctx c;
    run(&c, EM_NONE, pattern);
    return c.bad ? EM_EBADTERM : 0;
}
