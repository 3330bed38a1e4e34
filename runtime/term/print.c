/*
 * print.c - em_format: the text form of a term, for logs, debugging and tests.
 *
 * The text reads back with em_parse into an equal term (one exception: non-finite
 * floats print as inf, -inf and nan, which the parser reads as atoms or rejects,
 * because the text form has no float syntax for them). Floats print in the
 * shortest form that reads back to the same double, always with a '.' or an
 * exponent so they read back as floats. Bytes of 0x80 and above are printed as they
 * are in strings and quoted atoms, so UTF-8 text stays readable.
 *
 * The walk keeps its own stack, so a deeply nested term cannot overflow a
 * process's C stack, and it stops once the text passes INT_MAX bytes, which also
 * bounds the time spent on a term that shares subterms heavily.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "term/term_int.h"
#include "term/text_int.h"

typedef struct out {
    char *buf;
    size_t cap;
    size_t len;   /* bytes the full text needs so far */
} out;

static void put(out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->buf[o->len] = c;
    o->len++;
}

static void put_n(out *o, const char *s, size_t n)
{
    /* Copies what fits and only counts the rest: measuring long text is cheap. */
    if (o->len + 1 < o->cap) {
        size_t room = o->cap - 1 - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put_s(out *o, const char *s) { put_n(o, s, strlen(s)); }

static void put_u64(out *o, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    put_n(o, tmp, (size_t)n);
}

static void put_i64(out *o, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    put_n(o, tmp, (size_t)n);
}

/* ------------------------------------------------------------- floats */

/* Fills digits (NUL-terminated, no leading zero unless v is 0) and the decimal
 * exponent of the first digit, for the fewest digits that read back as v.
 * v is finite and not negative. */
static void shortest_digits(double v, char digits[20], int *exp10)
{
    for (int p = 1; p <= 17; p++) {
        char tmp[48], c[48];
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        /* Take the digits and exponent apart without trusting the decimal point,
         * which is locale-dependent. */
        int nd = 0;
        const char *s = tmp;
        for (; *s && *s != 'e'; s++)
            if (*s >= '0' && *s <= '9' && nd < 19)
                digits[nd++] = *s;
        digits[nd] = '\0';
        *exp10 = *s == 'e' ? atoi(s + 1) : 0;
        snprintf(c, sizeof c, "%c.%se%d", digits[0], digits + 1, *exp10);
        if (emi_text_strtod(c, NULL) == v)
            return;
    }
}

static void put_float(out *o, double v)
{
    if (isnan(v)) {
        put_s(o, "nan");
        return;
    }
    if (signbit(v)) {
        put(o, '-');
        v = -v;
    }
    if (isinf(v)) {
        put_s(o, "inf");
        return;
    }
    char d[20];
    int e;
    shortest_digits(v, d, &e);
    int n = (int)strlen(d);
    if (e >= 0 && e < 16) {
        /* Positional: 1500.0, 3.25, 12345678.9 */
        for (int i = 0; i <= e; i++)
            put(o, i < n ? d[i] : '0');
        put(o, '.');
        if (e + 1 < n)
            put_s(o, d + e + 1);
        else
            put(o, '0');
    } else if (e < 0 && e >= -5) {
        /* Small: 0.001 */
        put_s(o, "0.");
        for (int i = 0; i < -e - 1; i++)
            put(o, '0');
        put_s(o, d);
    } else {
        /* Scientific: 1.0e20, 2.5e-9 */
        put(o, d[0]);
        put(o, '.');
        put_s(o, n > 1 ? d + 1 : "0");
        put(o, 'e');
        put_i64(o, e);
    }
}

/* ------------------------------------------------------- text and bytes */

static void put_escaped(out *o, const unsigned char *s, size_t n, char quote)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        /* Runs of bytes that need no escape go out in one piece. */
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] != 0x7f && s[run] != (unsigned char)quote &&
               s[run] != '\\')
            run++;
        if (run > i) {
            put_n(o, (const char *)s + i, run - i);
            i = run - 1;
            continue;
        }
        unsigned char c = s[i];
        if (c == (unsigned char)quote || c == '\\') {
            put(o, '\\');
            put(o, (char)c);
        } else if (c == '\n') {
            put_s(o, "\\n");
        } else if (c == '\t') {
            put_s(o, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            put_s(o, "\\x");
            put(o, hex[c >> 4]);
            put(o, hex[c & 15]);
        } else {
            put(o, (char)c);
        }
    }
}

static int atom_needs_quotes(const char *s, size_t n)
{
    if (n == 0 || s[0] < 'a' || s[0] > 'z')
        return 1;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '@'))
            return 1;
    }
    /* Unquoted, these would read back as the nil and boolean terms. */
    return (n == 3 && !memcmp(s, "nil", 3)) || (n == 4 && !memcmp(s, "true", 4)) ||
           (n == 5 && !memcmp(s, "false", 5));
}

static int put_atom(out *o, em_term t)
{
    size_t n;
    const char *s = emi_atom_str(emi_atom_index(t), &n);
    if (!s)
        return EM_EBADTERM;
    if (atom_needs_quotes(s, n)) {
        put(o, '\'');
        put_escaped(o, (const unsigned char *)s, n, '\'');
        put(o, '\'');
    } else {
        put_n(o, s, n);
    }
    return 0;
}

static void put_bin(out *o, const unsigned char *d, size_t n)
{
    int printable = n > 0;
    for (size_t i = 0; i < n && printable; i++)
        printable = d[i] >= 0x20 && d[i] < 0x7f;
    put_s(o, "<<");
    if (printable) {
        put(o, '"');
        put_escaped(o, d, n, '"');
        put(o, '"');
    } else {
        for (size_t i = 0; i < n; i++) {
            if (i)
                put(o, ',');
            put_u64(o, d[i]);
        }
    }
    put_s(o, ">>");
}

/* Writes a term that is not a non-empty container. */
static int put_leaf(out *o, em_term t)
{
    if (emi_is_small(t)) {
        put_i64(o, emi_small_value(t));
        return 0;
    }
    if (t == EM_NIL || t == EM_TRUE || t == EM_FALSE) {
        put_s(o, t == EM_NIL ? "nil" : t == EM_TRUE ? "true" : "false");
        return 0;
    }
    if (emi_is_atom(t))
        return put_atom(o, t);
    if (!emi_is_box(t))
        return EM_EBADTERM;
    uint64_t *b = emi_box(t);
    double f;
    const void *data;
    size_t n;
    switch (emi_box_type(t)) {
    case BOX_INT: put_i64(o, (int64_t)b[1]); return 0;
    case BOX_UINT: put_u64(o, b[1]); return 0;
    case BOX_FLOAT:
        memcpy(&f, &b[1], sizeof f);
        put_float(o, f);
        return 0;
    case BOX_STR:
        put(o, '"');
        put_escaped(o, (const unsigned char *)(b + 1), emi_box_size(t), '"');
        put(o, '"');
        return 0;
    case BOX_BIN:
    case BOX_REFBIN:
        em_get_bin(t, &data, &n);
        put_bin(o, data, n);
        return 0;
    case BOX_PID:
        put(o, '<');
        put_u64(o, em_pid_node(b[1]));
        put(o, '.');
        put_u64(o, em_pid_index(b[1]));
        put(o, '.');
        put_u64(o, em_pid_serial(b[1]));
        put(o, '>');
        return 0;
    case BOX_REF:
        put_s(o, "#Ref<");
        put_u64(o, b[1]);
        put(o, '.');
        put_u64(o, b[2]);
        put(o, '>');
        return 0;
    case BOX_ARRAY: put_s(o, "[]"); return 0;   /* empty: non-empty ones are walked */
    case BOX_MAP: put_s(o, "#{}"); return 0;
    default: return EM_EBADTERM;
    }
}

/* --------------------------------------------------------------- walk */

typedef struct pframe {
    em_term t;
    uint64_t i, n;   /* child slots: elements, or keys and values interleaved */
    int map;
} pframe;

#define PRINT_LOCAL_FRAMES 32

static int is_open_container(em_term t)
{
    return emi_is_box(t) && (emi_box_type(t) == BOX_ARRAY || emi_box_type(t) == BOX_MAP) &&
           emi_box_size(t) > 0;
}

int em_format(em_term t, char *buf, size_t cap)
{
    if (!buf)
        cap = 0;
    out o = {buf, cap, 0};
    pframe local[PRINT_LOCAL_FRAMES], *st = local;
    size_t sp = 0, scap = PRINT_LOCAL_FRAMES;
    int err = 0;
    em_term next = t;   /* the term to write next, or EM_NONE to continue the top frame */
    for (;;) {
        if (o.len > INT_MAX) {
            err = EM_ETOOBIG;
            break;
        }
        if (next != EM_NONE || sp == 0) {
            if (!is_open_container(next)) {
                err = put_leaf(&o, next);
                if (err)
                    break;
            } else {
                if (sp == scap) {
                    pframe *n = emi_walk_stack_grow(st, local, &scap, sizeof *n);
                    if (!n) {
                        err = EM_ENOMEM;
                        break;
                    }
                    st = n;
                }
                int map = emi_box_type(next) == BOX_MAP;
                put_s(&o, map ? "#{" : "[");
                st[sp++] = (pframe){next, 0, emi_box_size(next) * (map ? 2 : 1), map};
            }
            next = EM_NONE;
            if (sp == 0)
                break;
        }
        pframe *f = &st[sp - 1];
        if (f->i == f->n) {
            put(&o, f->map ? '}' : ']');
            if (--sp == 0)
                break;
            continue;
        }
        if (f->i > 0)
            put_s(&o, f->map && (f->i & 1) ? " => " : ", ");
        next = emi_box(f->t)[1 + f->i++];
        if (next == EM_NONE) {
            err = EM_EBADTERM;
            break;
        }
    }
    if (st != local)
        free(st);
    if (!err && o.len > INT_MAX)
        err = EM_ETOOBIG;
    if (cap > 0)
        buf[err ? 0 : (o.len < cap ? o.len : cap - 1)] = '\0';
    return err ? err : (int)o.len;
}
