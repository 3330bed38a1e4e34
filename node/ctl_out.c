/*
 * ctl_out.c - how ember-ctl writes what it learned: terms as text or JSON, pids
 * from the operator's point of view, aligned tables, and errors.
 *
 * The reply of a node's ember_ctl service arrives with its pids translated into
 * our node table (<N.I.S>, N being the node's index here). An operator compares
 * what we print with what the node prints about itself, so a pid of the node
 * being asked is written <0.I.S> again.
 */
#include "ctl_out.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------- buffers */

/* Nothing sensible is left to do for a command-line tool. */
static _Noreturn void out_of_memory(void)
{
    static const char msg[] = "ember-ctl: out of memory\n";
    if (write(2, msg, sizeof msg - 1) < 0)
        _exit(CTL_INTERNAL);
    _exit(CTL_INTERNAL);
}

static void grow(ctl_buf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        out_of_memory();
    b->p = p;
    b->cap = cap;
}

void ctl_buf_put(ctl_buf *b, const char *s, size_t n)
{
    grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ctl_buf_puts(ctl_buf *b, const char *s) { ctl_buf_put(b, s, strlen(s)); }

void ctl_buf_printf(ctl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    grow(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *ctl_buf_str(ctl_buf *b) { return b->p ? b->p : ""; }

void ctl_buf_clear(ctl_buf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = 0;
}

void ctl_buf_free(ctl_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------- errors */

static bool errors_as_json;

void ctl_error_json(bool on) { errors_as_json = on; }

static const char *kind_of(int code)
{
    switch (code) {
    case CTL_FAILED: return "failed";
    case CTL_USAGE: return "usage";
    case CTL_UNREACHABLE: return "unreachable";
    case CTL_REFUSED: return "refused";
    default: return "internal";
    }
}

int ctl_error(int code, const char *kind, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ember-ctl: %s\n", msg);
    if (errors_as_json) {
        ctl_buf b = {0};
        const char *k = kind ? kind : kind_of(code);
        ctl_buf_puts(&b, "{\"error\": ");
        ctl_json_str(&b, k, strlen(k));
        ctl_buf_printf(&b, ", \"exit\": %d, \"message\": ", code);
        ctl_json_str(&b, msg, strlen(msg));
        ctl_buf_puts(&b, "}\n");
        fputs(ctl_buf_str(&b), stdout);
        fflush(stdout);
        ctl_buf_free(&b);
    }
    return code;
}

/* ------------------------------------------------------------ text form */

void ctl_pid_text(ctl_buf *b, em_pid_t pid, uint32_t home)
{
    uint32_t node = em_pid_node(pid);
    if (node == home) {
        ctl_buf_printf(b, "<0.%u.%u>", em_pid_index(pid), em_pid_serial(pid));
        return;
    }
    const char *name = em_atom_name(em_node_of(pid));
    ctl_buf_printf(b, "<%s.%u.%u>", name ? name : "?", em_pid_index(pid), em_pid_serial(pid));
}

/* A term em_format writes well as it is (not a container, not a pid). */
static void leaf_text(ctl_buf *b, em_term t)
{
    char small[128];
    int n = em_format(t, small, sizeof small);
    if (n < 0) {
        ctl_buf_puts(b, "?");
        return;
    }
    if ((size_t)n < sizeof small) {
        ctl_buf_put(b, small, (size_t)n);
        return;
    }
    grow(b, (size_t)n);
    em_format(t, b->p + b->len, (size_t)n + 1);
    b->len += (size_t)n;
}

/* Replies are shallow; a deeper term is cut rather than risking the stack. */
#define MAX_DEPTH 64

static void text_at(ctl_buf *b, em_term t, uint32_t home, int depth)
{
    em_pid_t pid;
    if (depth > MAX_DEPTH) {
        ctl_buf_puts(b, "...");
        return;
    }
    switch (em_typeof(t)) {
    case EM_T_PID:
        em_get_pid(t, &pid);
        ctl_pid_text(b, pid, home);
        return;
    case EM_T_ARRAY:
        ctl_buf_puts(b, "[");
        for (size_t i = 0; i < em_len(t); i++) {
            if (i)
                ctl_buf_puts(b, ", ");
            text_at(b, em_at(t, i), home, depth + 1);
        }
        ctl_buf_puts(b, "]");
        return;
    case EM_T_MAP:
        ctl_buf_puts(b, "#{");
        for (size_t i = 0; i < em_len(t); i++) {
            if (i)
                ctl_buf_puts(b, ", ");
            text_at(b, em_map_key(t, i), home, depth + 1);
            ctl_buf_puts(b, " => ");
            text_at(b, em_map_value(t, i), home, depth + 1);
        }
        ctl_buf_puts(b, "}");
        return;
    default:
        leaf_text(b, t);
    }
}

void ctl_text(ctl_buf *b, em_term t, uint32_t home) { text_at(b, t, home, 0); }

void ctl_plain(ctl_buf *b, em_term t, uint32_t home)
{
    const char *s;
    size_t n;
    if (em_typeof(t) == EM_T_NIL || t == EM_NONE)
        ctl_buf_puts(b, "-");
    else if (em_atom_name(t))
        ctl_buf_puts(b, em_atom_name(t));
    else if (em_get_str(t, &s, &n))
        ctl_buf_put(b, s, n);
    else
        ctl_text(b, t, home);
}

/* ------------------------------------------------------------------ JSON */

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void ctl_json_str(ctl_buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    ctl_buf_puts(b, "\"");
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            ctl_buf_put(b, esc, 2);
            i++;
        } else if (c == '\n') {
            ctl_buf_puts(b, "\\n");
            i++;
        } else if (c == '\t') {
            ctl_buf_puts(b, "\\t");
            i++;
        } else if (c < 0x20) {
            ctl_buf_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                ctl_buf_puts(b, "\\ufffd");
                i++;
            } else {
                ctl_buf_put(b, str + i, len);
                i += len;
            }
        }
    }
    ctl_buf_puts(b, "\"");
}

static void base64(ctl_buf *b, const unsigned char *d, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    ctl_buf_puts(b, "\"");
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < n)
            v |= d[i + 2];
        char q[4] = {abc[(v >> 18) & 63], abc[(v >> 12) & 63], i + 1 < n ? abc[(v >> 6) & 63] : '=',
                     i + 2 < n ? abc[v & 63] : '='};
        ctl_buf_put(b, q, 4);
    }
    ctl_buf_puts(b, "\"");
}

/* A map key: JSON keys are strings. */
static void json_key(ctl_buf *b, em_term k, uint32_t home)
{
    const char *s;
    size_t n;
    if (em_atom_name(k)) {
        ctl_json_str(b, em_atom_name(k), strlen(em_atom_name(k)));
    } else if (em_get_str(k, &s, &n)) {
        ctl_json_str(b, s, n);
    } else {
        ctl_buf t = {0};
        ctl_text(&t, k, home);
        ctl_json_str(b, ctl_buf_str(&t), t.len);
        ctl_buf_free(&t);
    }
}

static void json_at(ctl_buf *b, em_term t, uint32_t home, int depth)
{
    int64_t i;
    uint64_t u;
    double f;
    bool flag;
    const char *s;
    const void *d;
    size_t n;
    if (depth > MAX_DEPTH) {
        ctl_buf_puts(b, "null");
        return;
    }
    switch (em_typeof(t)) {
    case EM_T_NIL: ctl_buf_puts(b, "null"); return;
    case EM_T_BOOL:
        em_get_bool(t, &flag);
        ctl_buf_puts(b, flag ? "true" : "false");
        return;
    case EM_T_INT:
        em_get_int(t, &i);
        ctl_buf_printf(b, "%lld", (long long)i);
        return;
    case EM_T_UINT:
        em_get_uint(t, &u);
        ctl_buf_printf(b, "%llu", (unsigned long long)u);
        return;
    case EM_T_FLOAT:
        em_get_float(t, &f);
        if (isfinite(f))
            ctl_buf_printf(b, "%.17g", f);
        else
            ctl_buf_puts(b, "null");   /* JSON has no infinities or NaN */
        return;
    case EM_T_STR:
        em_get_str(t, &s, &n);
        ctl_json_str(b, s, n);
        return;
    case EM_T_BIN:
        em_get_bin(t, &d, &n);
        base64(b, d, n);
        return;
    case EM_T_ATOM:
        s = em_atom_name(t);
        ctl_json_str(b, s, strlen(s));
        return;
    case EM_T_ARRAY:
        ctl_buf_puts(b, "[");
        for (size_t k = 0; k < em_len(t); k++) {
            if (k)
                ctl_buf_puts(b, ", ");
            json_at(b, em_at(t, k), home, depth + 1);
        }
        ctl_buf_puts(b, "]");
        return;
    case EM_T_MAP:
        ctl_buf_puts(b, "{");
        for (size_t k = 0; k < em_len(t); k++) {
            if (k)
                ctl_buf_puts(b, ", ");
            json_key(b, em_map_key(t, k), home);
            ctl_buf_puts(b, ": ");
            json_at(b, em_map_value(t, k), home, depth + 1);
        }
        ctl_buf_puts(b, "}");
        return;
    default: {
        /* Pids and references: their text form, as a string. */
        ctl_buf txt = {0};
        ctl_text(&txt, t, home);
        ctl_json_str(b, ctl_buf_str(&txt), txt.len);
        ctl_buf_free(&txt);
    }
    }
}

void ctl_json(ctl_buf *b, em_term t, uint32_t home) { json_at(b, t, home, 0); }

/* ---------------------------------------------------------------- tables */

void ctl_table_init(ctl_table *t, size_t ncols, const char *const *head, const bool *right)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->head = head;
    t->right = right;
}

void ctl_table_row(ctl_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        char **grown = realloc(t->cells, cap * t->ncols * sizeof *grown);
        if (!grown)
            out_of_memory();
        t->cells = grown;
        t->cap = cap;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        ctl_buf copy = {0};
        ctl_buf_puts(&copy, cells[c] ? cells[c] : "");
        t->cells[t->rows * t->ncols + c] = copy.p;
    }
    t->rows++;
}

static void print_cell(const char *s, size_t width, bool right, bool last)
{
    size_t len = strlen(s);
    if (right)
        printf("%*s%s", (int)(width - len), "", s);
    else if (last)
        fputs(s, stdout);   /* no trailing blanks */
    else
        printf("%s%*s", s, (int)(width - len), "");
}

void ctl_table_print(const ctl_table *t)
{
    size_t width[16] = {0};
    size_t ncols = t->ncols < 16 ? t->ncols : 16;
    for (size_t c = 0; c < ncols; c++) {
        width[c] = t->head ? strlen(t->head[c]) : 0;
        for (size_t r = 0; r < t->rows; r++) {
            size_t len = strlen(t->cells[r * t->ncols + c]);
            if (len > width[c])
                width[c] = len;
        }
    }
    for (size_t r = t->head ? 0 : 1; r <= t->rows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
            if (c)
                fputs("  ", stdout);
            print_cell(s, width[c], t->right && t->right[c], c + 1 == ncols);
        }
        fputs("\n", stdout);
    }
}

void ctl_table_free(ctl_table *t)
{
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
