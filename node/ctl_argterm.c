/*
 * ctl_argterm.c - terms from ember-ctl's command line: pids as the node prints
 * them, process names, and TERM arguments in ember's text form.
 *
 * An operator copies pids from what the node prints about itself, <0.I.S>; to
 * us that would be a process of our own node, so such a pid is rebuilt with the
 * node's index in our node table (the top 16 bits of a pid), and the library
 * translates it back to the node's own numbering on the way.
 */
#include "ctl_argterm.h"

#include <stdlib.h>
#include <string.h>

/* Deeper TERMs are refused: the rebuild below recurses. */
#define MAX_DEPTH 64

static em_pid_t make_pid(uint32_t node, uint64_t index, uint64_t serial)
{
    return ((em_pid_t)node << 48) | ((em_pid_t)serial << 28) | (em_pid_t)index;
}

/* A decimal field of a pid, up to max; advances *s. */
static bool field(const char **s, uint64_t max, uint64_t *out)
{
    const char *p = *s;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p++ - '0');
        if (v > max)
            return false;
    }
    *s = p;
    *out = v;
    return true;
}

/* "<0.I.S>" or "<I.S>": 1 and *out, 0 when text is not a pid at all, -1 when
 * it is malformed or names another node. */
static int read_pid(const char *text, uint32_t home, em_pid_t *out)
{
    if (text[0] != '<')
        return 0;
    const char *s = text + 1;
    uint64_t f[3];
    int n = 0;
    while (n < 3 && field(&s, 0x0FFFFFFF, &f[n])) {
        n++;
        if (*s != '.')
            break;
        s++;
    }
    if (strcmp(s, ">") != 0 || n < 2 || (n == 3 && f[0] != 0))
        return -1;
    uint64_t index = f[n - 2], serial = f[n - 1];
    if (serial > 0xFFFFF)
        return -1;
    *out = make_pid(home, index, serial);
    return 1;
}

int ctl_arg_process(const char *text, uint32_t home, const char *what, em_term *out)
{
    em_pid_t pid;
    int r = read_pid(text, home, &pid);
    if (r < 0)
        return ctl_error(CTL_USAGE, NULL,
                         "%s: \"%s\" is not a pid of the node: write it <0.I.S> as the node prints "
                         "its own pids (or <I.S>)",
                         what, text);
    if (r > 0) {
        *out = em_pid(pid);
        return *out != EM_NONE ? CTL_OK : ctl_error(CTL_INTERNAL, NULL, "out of memory");
    }
    em_term t = EM_NONE;
    if (text[0] == '\'') {
        if (em_parse(text, &t, NULL) != 0 || !em_atom_name(t))
            t = EM_NONE;
    } else if (text[0] && strlen(text) <= 255) {
        t = em_atom(text);
    }
    if (t == EM_NONE)
        return ctl_error(CTL_USAGE, NULL, "%s: \"%s\" is neither a pid <0.I.S> nor a process name",
                         what, text);
    *out = t;
    return CTL_OK;
}

/* t with its local pids made the node's; EM_NONE past MAX_DEPTH or out of
 * memory, *bad set for a pid of another node. */
static em_term remap(em_term t, uint32_t home, int depth, bool *bad)
{
    em_pid_t pid;
    if (depth > MAX_DEPTH)
        return EM_NONE;
    em_type type = em_typeof(t);
    if (type == EM_T_PID) {
        em_get_pid(t, &pid);
        if (em_pid_node(pid) != 0) {
            *bad = true;
            return EM_NONE;
        }
        return em_pid(make_pid(home, em_pid_index(pid), em_pid_serial(pid)));
    }
    if (type != EM_T_ARRAY && type != EM_T_MAP)
        return t;
    size_t n = em_len(t), slots = type == EM_T_MAP ? 2 * n : n;
    if (slots == 0)
        return t;
    em_term *items = malloc(slots * sizeof *items);
    if (!items)
        return EM_NONE;
    em_term result = EM_NONE;
    size_t i = 0;
    for (; i < n; i++) {
        if (type == EM_T_ARRAY) {
            items[i] = remap(em_at(t, i), home, depth + 1, bad);
            if (items[i] == EM_NONE)
                break;
        } else {
            items[2 * i] = remap(em_map_key(t, i), home, depth + 1, bad);
            items[2 * i + 1] = remap(em_map_value(t, i), home, depth + 1, bad);
            if (items[2 * i] == EM_NONE || items[2 * i + 1] == EM_NONE)
                break;
        }
    }
    if (i == n)
        result = type == EM_T_ARRAY ? em_array(n, items) : em_map(n, items);
    free(items);
    return result;
}

int ctl_arg_term(const char *text, uint32_t home, const char *what, em_term *out)
{
    em_term t;
    size_t pos = 0;
    int rc = em_parse(text, &t, &pos);
    if (rc == EM_EBADTERM)
        return ctl_error(CTL_USAGE, NULL,
                         "%s: \"%s\" is not a term in ember's text form (error at byte %zu), e.g. "
                         "'[hello, 42]'",
                         what, text, pos);
    if (rc)
        return ctl_error(CTL_INTERNAL, NULL, "%s: %s", what, em_strerror(rc));
    bool bad = false;
    *out = remap(t, home, 0, &bad);
    if (bad)
        return ctl_error(CTL_USAGE, NULL,
                         "%s: only pids of the node asked can be named, as <0.I.S>", what);
    if (*out == EM_NONE)
        return ctl_error(CTL_USAGE, NULL, "%s: the term is nested more than %d deep", what,
                         MAX_DEPTH);
    return CTL_OK;
}
