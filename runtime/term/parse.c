/*
 * parse.c - em_parse: terms from their text form (the inverse of em_format).
 *
 * Besides everything em_format writes, the parser takes {a, b} as an array (so
 * Erlang tuples read naturally), whitespace between any two tokens, hexadecimal
 * integers (0x1F, -0x10), \r and \' escapes, and binaries mixing byte values and
 * strings (<<"ab", 0, "c">>).
 *
 * It must never crash on any input, so it is iterative: open containers live on a
 * heap-allocated stack (at most MAX_DEPTH of them) and their elements on another
 * until the closing bracket builds the array or map. Errors report the offset of
 * the first byte that cannot be accepted (the end of the text when it stops
 * early; the backslash of a bad escape; the start of a number, atom or byte that is
 * out of range). Terms built before an error stay in the heap until it is
 * released.
 */
#include <stdlib.h>
#include <string.h>

#include "mem/heap.h"
#include "term/term_int.h"
#include "term/text_int.h"

#define MAX_DEPTH 1000
#define ATOM_MAX_LEN 255

typedef struct open {
    char close;
    char map;
    size_t base;   /* first element of this container on the element stack */
} open_t;

typedef struct pctx {
    const char *s;       /* NUL-terminated (len is its strlen), as text.c's scanners need */
    size_t len, pos;
    int err;
    size_t errpos;
    em_term *stk;        /* elements of open containers */
    size_t sp, scap;
    open_t *open;        /* open containers, innermost last */
    size_t nopen, ocap;
    char *buf;           /* decoded bytes of the current string, atom or binary */
    size_t blen, bcap;
} pctx;

static int fail(pctx *c, size_t pos, int code)
{
    if (!c->err) {
        c->err = code;
        c->errpos = pos;
    }
    return code;
}

/* A builder returned EM_NONE: there is no heap, or it is out of memory. */
static int fail_build(pctx *c, size_t pos)
{
    return fail(c, pos, emi_heap_current() ? EM_ENOMEM : EM_ENOTPROC);
}

static int peek(const pctx *c) { return c->pos < c->len ? (unsigned char)c->s[c->pos] : -1; }
static int peek_at(const pctx *c, size_t off)
{
    return c->pos + off < c->len ? (unsigned char)c->s[c->pos + off] : -1;
}

static void skip_ws(pctx *c)
{
    while (c->pos < c->len) {
        char ch = c->s[c->pos];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\f' && ch != '\v')
            break;
        c->pos++;
    }
}

static int buf_put(pctx *c, char ch)
{
    if (c->blen == c->bcap) {
        size_t ncap = c->bcap ? c->bcap * 2 : 64;
        char *n = realloc(c->buf, ncap);
        if (!n)
            return fail(c, c->pos, EM_ENOMEM);
        c->buf = n;
        c->bcap = ncap;
    }
    c->buf[c->blen++] = ch;
    return 0;
}

/* ------------------------------------------------------------- tokens */

/* Decimal digits at pos into *v, refusing values above max. */
static int lex_dec(pctx *c, uint64_t max, uint64_t *v)
{
    size_t n = emi_text_dec(c->s + c->pos, max, v);
    if (!n)
        return fail(c, c->pos, EM_EBADTERM);
    c->pos += n;
    return 0;
}

/* A quoted string or atom at pos (which holds the quote), decoded and appended to
 * c->buf; pos ends after the closing quote. */
static int lex_quoted(pctx *c)
{
    char q = c->s[c->pos++];
    for (;;) {
        int ch = peek(c);
        if (ch < 0)
            return fail(c, c->len, EM_EBADTERM);   /* unterminated */
        if (ch == q) {
            c->pos++;
            return 0;
        }
        if (ch != '\\') {
            if (buf_put(c, (char)ch))
                return c->err;
            c->pos++;
            continue;
        }
        size_t n;
        int out = emi_text_escape(c->s + c->pos, &n);
        if (out < 0)   /* a backslash that ends the text stopped early */
            return fail(c, c->pos + 1 == c->len ? c->len : c->pos, EM_EBADTERM);
        c->pos += n;
        if (buf_put(c, (char)out))
            return c->err;
    }
}

static em_term parse_number(pctx *c)
{
    size_t start = c->pos, n;
    emi_number num;
    if (emi_text_number(c->s + start, &num, &n)) {
        fail(c, start + n, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos += n;
    em_term t;
    switch (num.kind) {
    case EMI_NUMBER_NEG: t = em_int(num.i); break;
    case EMI_NUMBER_UINT: t = em_uint(num.u); break;
    default: t = em_float(num.f); break;
    }
    if (t == EM_NONE)
        fail_build(c, start);
    return t;
}

static em_term make_atom(pctx *c, const char *name, size_t len, size_t start)
{
    if (len > ATOM_MAX_LEN || memchr(name, '\0', len)) {
        fail(c, start, EM_EBADTERM);
        return EM_NONE;
    }
    int64_t idx = emi_atom_intern(name, len);
    if (idx < 0) {
        fail(c, start, (int)idx);
        return EM_NONE;
    }
    return emi_make_atom((uint32_t)idx);
}

static em_term parse_bare_atom(pctx *c)
{
    size_t start = c->pos;
    while (emi_text_is_atom_char(peek(c)))
        c->pos++;
    const char *s = c->s + start;
    size_t n = c->pos - start;
    if (n == 3 && !memcmp(s, "nil", 3))
        return EM_NIL;
    if (n == 4 && !memcmp(s, "true", 4))
        return EM_TRUE;
    if (n == 5 && !memcmp(s, "false", 5))
        return EM_FALSE;
    return make_atom(c, s, n, start);
}

static em_term parse_quoted(pctx *c, int atom)
{
    size_t start = c->pos;
    c->blen = 0;
    if (lex_quoted(c))
        return EM_NONE;
    if (atom)
        return make_atom(c, c->blen ? c->buf : "", c->blen, start);
    em_term t = em_strn(c->buf, c->blen);
    if (t == EM_NONE)
        fail_build(c, start);
    return t;
}

/* <<>>, <<1,2,3>>, <<"text">>, or a mix of byte values and strings. */
static em_term parse_binary(pctx *c)
{
    size_t start = c->pos;
    c->pos += 2;
    c->blen = 0;
    skip_ws(c);
    if (peek(c) == '>' && peek_at(c, 1) == '>') {
        c->pos += 2;
    } else {
        for (;;) {
            skip_ws(c);
            if (peek(c) == '"') {
                if (lex_quoted(c))
                    return EM_NONE;
            } else {
                uint64_t v;
                if (lex_dec(c, 255, &v) || buf_put(c, (char)v))
                    return EM_NONE;
            }
            skip_ws(c);
            if (peek(c) == ',') {
                c->pos++;
            } else if (peek(c) == '>' && peek_at(c, 1) == '>') {
                c->pos += 2;
                break;
            } else {
                fail(c, c->pos, EM_EBADTERM);
                return EM_NONE;
            }
        }
    }
    em_term t = em_bin(c->buf, c->blen);
    if (t == EM_NONE)
        fail_build(c, start);
    return t;
}

/* <NODE.INDEX.SERIAL> */
static em_term parse_pid(pctx *c)
{
    size_t start = c->pos++;
    uint64_t node, idx, serial;
    if (lex_dec(c, 0xFFFF, &node))
        return EM_NONE;
    if (peek(c) != '.') {
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos++;
    if (lex_dec(c, 0x0FFFFFFF, &idx))
        return EM_NONE;
    if (peek(c) != '.') {
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos++;
    if (lex_dec(c, 0xFFFFF, &serial))
        return EM_NONE;
    if (peek(c) != '>') {
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos++;
    em_term t = em_pid((node << 48) | (serial << 28) | idx);
    if (t == EM_NONE)
        fail_build(c, start);
    return t;
}

/* #Ref<NODE.COUNTER> */
static em_term parse_ref(pctx *c)
{
    size_t start = c->pos;
    c->pos += 5;
    uint64_t node, counter;
    if (lex_dec(c, UINT64_MAX, &node))
        return EM_NONE;
    if (peek(c) != '.') {
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos++;
    if (lex_dec(c, UINT64_MAX, &counter))
        return EM_NONE;
    if (peek(c) != '>') {
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    c->pos++;
    em_term r = emi_ref_box(emi_heap_current(), node, counter);
    if (r == EM_NONE)
        fail_build(c, start);
    return r;
}

/* ------------------------------------------------------------- driver */

static int push_open(pctx *c, char close, char map)
{
    if (c->nopen == MAX_DEPTH)
        return fail(c, c->pos, EM_EBADTERM);
    if (c->nopen == c->ocap) {
        size_t ncap = c->ocap ? c->ocap * 2 : 16;
        open_t *n = realloc(c->open, ncap * sizeof *n);
        if (!n)
            return fail(c, c->pos, EM_ENOMEM);
        c->open = n;
        c->ocap = ncap;
    }
    c->open[c->nopen++] = (open_t){close, map, c->sp};
    return 0;
}

static int push_elem(pctx *c, em_term t)
{
    if (c->sp == c->scap) {
        size_t ncap = c->scap ? c->scap * 2 : 32;
        em_term *n = realloc(c->stk, ncap * sizeof *n);
        if (!n)
            return fail(c, c->pos, EM_ENOMEM);
        c->stk = n;
        c->scap = ncap;
    }
    c->stk[c->sp++] = t;
    return 0;
}

/* Builds the innermost open container from its elements and closes it. */
static em_term close_open(pctx *c)
{
    open_t *o = &c->open[--c->nopen];
    size_t n = c->sp - o->base;
    em_term t = o->map ? em_map(n / 2, c->stk + o->base) : em_array(n, c->stk + o->base);
    c->sp = o->base;
    if (t == EM_NONE)
        fail_build(c, c->pos);
    return t;
}

/* One value, or the opening of a container (*opened set, EM_NONE returned) unless
 * the container is empty, in which case it is returned whole. */
static em_term parse_start(pctx *c, int *opened)
{
    *opened = 0;
    skip_ws(c);
    int ch = peek(c);
    char close = 0, map = 0;
    switch (ch) {
    case '[': close = ']'; break;
    case '{': close = '}'; break;
    case '#':
        if (peek_at(c, 1) == '{') {
            close = '}';
            map = 1;
            break;
        }
        if (c->len - c->pos >= 5 && !memcmp(c->s + c->pos, "#Ref<", 5))
            return parse_ref(c);
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    case '<':
        return peek_at(c, 1) == '<' ? parse_binary(c) : parse_pid(c);
    case '"': return parse_quoted(c, 0);
    case '\'': return parse_quoted(c, 1);
    case '-': return parse_number(c);
    default:
        if (emi_text_is_digit(ch))
            return parse_number(c);
        if (ch >= 'a' && ch <= 'z')
            return parse_bare_atom(c);
        fail(c, c->pos, EM_EBADTERM);
        return EM_NONE;
    }
    if (push_open(c, close, map))
        return EM_NONE;
    c->pos += map ? 2 : 1;
    skip_ws(c);
    if (peek(c) == close) {
        c->pos++;
        return close_open(c);
    }
    *opened = 1;
    return EM_NONE;
}

static em_term parse_all(pctx *c)
{
    for (;;) {
        int opened;
        em_term v = parse_start(c, &opened);
        if (c->err)
            return EM_NONE;
        if (opened)
            continue;
        /* v is complete: file it in the innermost container, closing as many as
         * the text closes, until the next value is due. */
        for (;;) {
            if (c->nopen == 0)
                return v;
            open_t *o = &c->open[c->nopen - 1];
            if (push_elem(c, v))
                return EM_NONE;
            skip_ws(c);
            int ch = peek(c);
            if (o->map && ((c->sp - o->base) & 1)) {
                if (ch != '=' || peek_at(c, 1) != '>') {
                    fail(c, c->pos, EM_EBADTERM);
                    return EM_NONE;
                }
                c->pos += 2;
                break;
            }
            if (ch == ',') {
                c->pos++;
                break;
            }
            if (ch != o->close) {
                fail(c, c->pos, EM_EBADTERM);
                return EM_NONE;
            }
            c->pos++;
            v = close_open(c);
            if (c->err)
                return EM_NONE;
        }
    }
}

int em_parse(const char *text, em_term *out, size_t *errpos)
{
    if (!text || !out)
        return EM_EINVAL;
    pctx c = {.s = text, .len = strlen(text)};
    em_term t = parse_all(&c);
    if (!c.err) {
        skip_ws(&c);
        if (c.pos != c.len)
            fail(&c, c.pos, EM_EBADTERM);   /* something after the term */
    }
    free(c.stk);
    free(c.open);
    free(c.buf);
    if (c.err) {
        *out = EM_NONE;
        if (errpos)
            *errpos = c.errpos;
        return c.err;
    }
    *out = t;
    return 0;
}
