/*
 * term.c - building terms, reading them back, and comparing them.
 *
 * Builders allocate boxes in the current heap (term_int.h has the layout) and keep
 * one canonical form per value, which the rest of the runtime relies on: integers
 * in [-2^62, 2^62) are always small, larger ones up to INT64_MAX a BOX_INT, and only
 * values above INT64_MAX a BOX_UINT; binaries over EMI_REFBIN_THRESHOLD bytes are
 * always shared; maps never hold two equal keys.
 *
 * The order of em_compare, Erlang-like:
 *   numbers < atoms (nil, true, false among them, by name) < refs < pids < arrays
 *   < maps < strings < binaries.
 * Numbers compare by value; an integer and a float of the same value are ordered
 * integer first, so em_compare is 0 exactly when em_equal holds. NaN sorts above
 * every other number and equals itself. Arrays and maps compare by size first (like
 * Erlang tuples and maps), then arrays element by element and maps by their keys in
 * term order, then by the values of those keys. Strings and binaries compare
 * byte-wise. The walk over nested terms keeps its own stack, so a deeply nested
 * term cannot overflow a process's C stack.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "mem/heap.h"
#include "term/term_int.h"

/* ------------------------------------------------------------ builders */

static uint64_t *alloc_words(size_t words)
{
    struct em_heap *h = emi_heap_current();
    if (!h || words > SIZE_MAX / 8)
        return NULL;
    return emi_heap_alloc(h, words * 8);
}

static em_term box1(unsigned type, uint64_t payload)
{
    uint64_t *p = alloc_words(2);
    if (!p)
        return EM_NONE;
    p[0] = emi_header(type, 1);
    p[1] = payload;
    return (em_term)(uintptr_t)p;
}

em_term em_int(int64_t v)
{
    if (v >= EMI_SMALL_MIN && v <= EMI_SMALL_MAX)
        return emi_make_small(v);
    return box1(BOX_INT, (uint64_t)v);
}

em_term em_uint(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return em_int((int64_t)v);
    return box1(BOX_UINT, v);
}

em_term em_float(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return box1(BOX_FLOAT, bits);
}

em_term em_bool(bool v) { return v ? EM_TRUE : EM_FALSE; }

em_term em_pid(em_pid_t pid) { return box1(BOX_PID, pid); }

static em_term bytes_box(unsigned type, const void *data, size_t len)
{
    if (len && !data)
        return EM_NONE;
    if (len > SIZE_MAX - 8)
        return EM_NONE;
    uint64_t *p = alloc_words(1 + emi_words(len));
    if (!p)
        return EM_NONE;
    p[0] = emi_header(type, len);
    if (len) {
        p[emi_words(len)] = 0;   /* zero the padding so copies are deterministic */
        memcpy(p + 1, data, len);
    }
    return (em_term)(uintptr_t)p;
}

em_term em_strn(const char *s, size_t len) { return bytes_box(BOX_STR, s, len); }

em_term em_str(const char *s) { return s ? em_strn(s, strlen(s)) : EM_NONE; }

em_term em_bin(const void *data, size_t len)
{
    if (len <= EMI_REFBIN_THRESHOLD)
        return bytes_box(BOX_BIN, data, len);
    struct em_heap *h = emi_heap_current();
    if (!h || !data || len > SIZE_MAX - sizeof(emi_refbin))
        return EM_NONE;
    emi_refbin *rb = malloc(sizeof *rb + len);
    if (!rb)
        return EM_NONE;
    /* Not yet shared with anyone: a plain initialisation is enough. */
    atomic_init(&rb->refs, 1);
    rb->len = len;
    memcpy(rb->data, data, len);
    emi_refbin_box *box = emi_heap_alloc(h, sizeof *box);
    if (!box) {
        free(rb);
        return EM_NONE;
    }
    box->header = emi_header(BOX_REFBIN, len);
    box->bin = rb;
    emi_heap_link_offheap(h, box);
    return (em_term)(uintptr_t)box;
}

em_term em_array(size_t n, const em_term *items)
{
    if (n && !items)
        return EM_NONE;
    for (size_t i = 0; i < n; i++)
        if (items[i] == EM_NONE)
            return EM_NONE;
    if (n > SIZE_MAX / 8 - 1)
        return EM_NONE;
    uint64_t *p = alloc_words(1 + n);
    if (!p)
        return EM_NONE;
    p[0] = emi_header(BOX_ARRAY, n);
    if (n)
        memcpy(p + 1, items, n * sizeof *items);
    return (em_term)(uintptr_t)p;
}

typedef struct kidx {
    em_term key;
    size_t idx;
} kidx;

static int kidx_cmp(const void *x, const void *y)
{
    const kidx *a = x, *b = y;
    int r = em_compare(a->key, b->key);
    if (r)
        return r;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

#define MAP_SMALL 16   /* up to this many pairs, duplicates are found pairwise */

em_term em_map(size_t npairs, const em_term *kv)
{
    if (npairs && !kv)
        return EM_NONE;
    if (npairs > SIZE_MAX / 16 - 1)
        return EM_NONE;
    for (size_t i = 0; i < 2 * npairs; i++)
        if (kv[i] == EM_NONE)
            return EM_NONE;

    /* first[i]: the index of the first pair whose key equals pair i's key. The
     * map keeps that pair's position and the last pair's value, like an Erlang
     * map literal with a repeated key. */
    size_t small_first[MAP_SMALL], small_slot[MAP_SMALL];
    size_t *first = small_first, *slot = small_slot;
    size_t out = 0;
    if (npairs <= MAP_SMALL) {
        for (size_t i = 0; i < npairs; i++) {
            first[i] = i;
            for (size_t j = 0; j < i; j++) {
                if (em_equal(kv[2 * i], kv[2 * j])) {
                    first[i] = first[j];
                    break;
                }
            }
        }
    } else {
        /* Sort (key, index) so equal keys sit together, first occurrence first. */
        first = malloc(2 * npairs * sizeof *first);
        kidx *ord = malloc(npairs * sizeof *ord);
        if (!first || !ord) {
            free(first);
            free(ord);
            return EM_NONE;
        }
        slot = first + npairs;
        for (size_t i = 0; i < npairs; i++)
            ord[i] = (kidx){kv[2 * i], i};
        qsort(ord, npairs, sizeof *ord, kidx_cmp);
        for (size_t i = 0; i < npairs; i++) {
            if (i > 0 && em_compare(ord[i].key, ord[i - 1].key) == 0)
                first[ord[i].idx] = first[ord[i - 1].idx];
            else
                first[ord[i].idx] = ord[i].idx;
        }
        free(ord);
    }
    for (size_t i = 0; i < npairs; i++)
        out += first[i] == i;

    em_term result = EM_NONE;
    uint64_t *p = alloc_words(1 + 2 * out);
    if (p) {
        p[0] = emi_header(BOX_MAP, out);
        em_term *pairs = (em_term *)(p + 1);
        size_t next = 0;
        for (size_t i = 0; i < npairs; i++) {
            if (first[i] == i) {
                slot[i] = next++;
                pairs[2 * slot[i]] = kv[2 * i];
            }
            pairs[2 * slot[first[i]] + 1] = kv[2 * i + 1];
        }
        result = (em_term)(uintptr_t)p;
    }
    if (first != small_first)
        free(first);
    return result;
}

/* Node-wide so that two processes never make the same ref; relaxed because only
 * uniqueness matters, not ordering with other memory. */
static atomic_uint_fast64_t ref_counter;

uint64_t emi_ref_next(void)
{
    return (uint64_t)atomic_fetch_add_explicit(&ref_counter, 1, memory_order_relaxed) + 1;
}

em_term emi_ref_box(struct em_heap *h, uint64_t node, uint64_t counter)
{
    uint64_t *p = h ? emi_heap_alloc(h, 24) : NULL;
    if (!p)
        return EM_NONE;
    p[0] = emi_header(BOX_REF, 2);
    p[1] = node;
    p[2] = counter;
    return (em_term)(uintptr_t)p;
}

em_term em_make_ref(void) { return emi_ref_box(emi_heap_current(), 0, emi_ref_next()); }

/* ------------------------------------------------------------ accessors */

em_type em_typeof(em_term t)
{
    if (t == EM_NONE)
        return EM_T_NONE;
    if (emi_is_small(t))
        return EM_T_INT;
    if (t == EM_NIL)
        return EM_T_NIL;
    if (t == EM_TRUE || t == EM_FALSE)
        return EM_T_BOOL;
    if (emi_is_atom(t))
        return EM_T_ATOM;
    if (!emi_is_box(t))
        return EM_T_NONE;
    switch (emi_box_type(t)) {
    case BOX_INT: return EM_T_INT;
    case BOX_UINT: return EM_T_UINT;
    case BOX_FLOAT: return EM_T_FLOAT;
    case BOX_STR: return EM_T_STR;
    case BOX_BIN:
    case BOX_REFBIN: return EM_T_BIN;
    case BOX_ARRAY: return EM_T_ARRAY;
    case BOX_MAP: return EM_T_MAP;
    case BOX_PID: return EM_T_PID;
    case BOX_REF: return EM_T_REF;
    default: return EM_T_NONE;
    }
}

const char *em_type_name(em_type t)
{
    switch (t) {
    case EM_T_NONE: return "none";
    case EM_T_NIL: return "nil";
    case EM_T_BOOL: return "bool";
    case EM_T_INT: return "int";
    case EM_T_UINT: return "uint";
    case EM_T_FLOAT: return "float";
    case EM_T_STR: return "str";
    case EM_T_BIN: return "bin";
    case EM_T_ARRAY: return "array";
    case EM_T_MAP: return "map";
    case EM_T_ATOM: return "atom";
    case EM_T_PID: return "pid";
    case EM_T_REF: return "ref";
    }
    return "unknown";
}

static bool is_box_of(em_term t, unsigned type)
{
    return emi_is_box(t) && emi_box_type(t) == type;
}

bool em_get_int(em_term t, int64_t *out)
{
    int64_t v;
    if (emi_is_small(t))
        v = emi_small_value(t);
    else if (is_box_of(t, BOX_INT))
        v = (int64_t)emi_box(t)[1];
    else if (is_box_of(t, BOX_UINT) && emi_box(t)[1] <= (uint64_t)INT64_MAX)
        v = (int64_t)emi_box(t)[1];
    else
        return false;
    if (out)
        *out = v;
    return true;
}

bool em_get_uint(em_term t, uint64_t *out)
{
    uint64_t v;
    int64_t i;
    if (is_box_of(t, BOX_UINT))
        v = emi_box(t)[1];
    else if (em_get_int(t, &i) && i >= 0)
        v = (uint64_t)i;
    else
        return false;
    if (out)
        *out = v;
    return true;
}

static double box_float(em_term t)
{
    double d;
    memcpy(&d, &emi_box(t)[1], sizeof d);
    return d;
}

bool em_get_float(em_term t, double *out)
{
    double d;
    int64_t i;
    if (is_box_of(t, BOX_FLOAT))
        d = box_float(t);
    else if (is_box_of(t, BOX_UINT))
        d = (double)emi_box(t)[1];
    else if (em_get_int(t, &i))
        d = (double)i;
    else
        return false;
    if (out)
        *out = d;
    return true;
}

bool em_get_bool(em_term t, bool *out)
{
    if (t != EM_TRUE && t != EM_FALSE)
        return false;
    if (out)
        *out = t == EM_TRUE;
    return true;
}

bool em_get_str(em_term t, const char **s, size_t *len)
{
    if (!is_box_of(t, BOX_STR))
        return false;
    if (s)
        *s = (const char *)(emi_box(t) + 1);
    if (len)
        *len = emi_box_size(t);
    return true;
}

bool em_get_bin(em_term t, const void **data, size_t *len)
{
    const void *d;
    size_t n;
    if (is_box_of(t, BOX_BIN)) {
        d = emi_box(t) + 1;
        n = emi_box_size(t);
    } else if (is_box_of(t, BOX_REFBIN)) {
        const emi_refbin_box *b = (const emi_refbin_box *)emi_box(t);
        d = b->bin->data;
        n = b->bin->len;
    } else {
        return false;
    }
    if (data)
        *data = d;
    if (len)
        *len = n;
    return true;
}

bool em_get_pid(em_term t, em_pid_t *out)
{
    if (!is_box_of(t, BOX_PID))
        return false;
    if (out)
        *out = emi_box(t)[1];
    return true;
}

size_t em_len(em_term t)
{
    if (!emi_is_box(t))
        return 0;
    switch (emi_box_type(t)) {
    case BOX_STR:
    case BOX_BIN:
    case BOX_REFBIN:
    case BOX_ARRAY:
    case BOX_MAP:
        return emi_box_size(t);
    default:
        return 0;
    }
}

em_term em_at(em_term array, size_t i)
{
    if (!is_box_of(array, BOX_ARRAY) || i >= emi_box_size(array))
        return EM_NONE;
    return emi_box(array)[1 + i];
}

em_term em_map_key(em_term map, size_t i)
{
    if (!is_box_of(map, BOX_MAP) || i >= emi_box_size(map))
        return EM_NONE;
    return emi_box(map)[1 + 2 * i];
}

em_term em_map_value(em_term map, size_t i)
{
    if (!is_box_of(map, BOX_MAP) || i >= emi_box_size(map))
        return EM_NONE;
    return emi_box(map)[2 + 2 * i];
}

em_term em_map_get(em_term map, em_term key)
{
    if (!is_box_of(map, BOX_MAP) || key == EM_NONE)
        return EM_NONE;
    size_t n = emi_box_size(map);
    const em_term *kv = (const em_term *)(emi_box(map) + 1);
    for (size_t i = 0; i < n; i++)
        if (em_equal(kv[2 * i], key))
            return kv[2 * i + 1];
    return EM_NONE;
}

/* ----------------------------------------------------------- comparing */

enum rank { R_NUM, R_ATOM, R_REF, R_PID, R_ARRAY, R_MAP, R_STR, R_BIN, R_BAD };

static enum rank rank_of(em_term t)
{
    switch (em_typeof(t)) {
    case EM_T_INT:
    case EM_T_UINT:
    case EM_T_FLOAT: return R_NUM;
    case EM_T_NIL:
    case EM_T_BOOL:
    case EM_T_ATOM: return R_ATOM;
    case EM_T_REF: return R_REF;
    case EM_T_PID: return R_PID;
    case EM_T_ARRAY: return R_ARRAY;
    case EM_T_MAP: return R_MAP;
    case EM_T_STR: return R_STR;
    case EM_T_BIN: return R_BIN;
    default: return R_BAD;
    }
}

static int sign_u(uint64_t a, uint64_t b) { return a < b ? -1 : a > b; }

/* Exact comparison of an integer with a double, by value. */
static int cmp_int_float(int64_t i, double f)
{
    if (isnan(f))
        return -1;
    if (f >= 9223372036854775808.0)
        return -1;
    if (f < -9223372036854775808.0)
        return 1;
    double t = trunc(f);
    int64_t ti = (int64_t)t;   /* exact: |t| < 2^63 */
    if (i != ti)
        return i < ti ? -1 : 1;
    return f > t ? -1 : f < t ? 1 : 0;
}

static int cmp_uint_float(uint64_t u, double f)
{
    if (isnan(f))
        return -1;
    if (f >= 18446744073709551616.0)
        return -1;
    if (f < 0)
        return 1;
    double t = trunc(f);
    uint64_t tu = (uint64_t)t;
    if (u != tu)
        return u < tu ? -1 : 1;
    return f > t ? -1 : 0;
}

typedef struct num {
    int kind;   /* 0 signed, 1 unsigned, 2 float */
    int64_t i;
    uint64_t u;
    double f;
} num;

static void get_num(em_term t, num *n)
{
    if (is_box_of(t, BOX_FLOAT)) {
        n->kind = 2;
        n->f = box_float(t);
    } else if (is_box_of(t, BOX_UINT)) {
        n->kind = 1;
        n->u = emi_box(t)[1];
    } else {
        n->kind = 0;
        em_get_int(t, &n->i);
    }
}

static int cmp_num(em_term a, em_term b)
{
    num x, y;
    get_num(a, &x);
    get_num(b, &y);
    if (x.kind == 2 && y.kind == 2) {
        bool na = isnan(x.f), nb = isnan(y.f);
        if (na || nb)
            return na == nb ? 0 : na ? 1 : -1;
        return x.f < y.f ? -1 : x.f > y.f;
    }
    if (x.kind == 2 || y.kind == 2) {
        /* Same value: the integer sorts first, keeping compare == 0 iff equal. */
        int r;
        if (x.kind == 2) {
            r = y.kind == 0 ? cmp_int_float(y.i, x.f) : cmp_uint_float(y.u, x.f);
            return r ? -r : 1;
        }
        r = x.kind == 0 ? cmp_int_float(x.i, y.f) : cmp_uint_float(x.u, y.f);
        return r ? r : -1;
    }
    if (x.kind == 0 && y.kind == 0)
        return x.i < y.i ? -1 : x.i > y.i;
    if (x.kind == 0)
        return x.i < 0 ? -1 : sign_u((uint64_t)x.i, y.u);
    if (y.kind == 0)
        return y.i < 0 ? 1 : sign_u(x.u, (uint64_t)y.i);
    return sign_u(x.u, y.u);
}

static const char *atom_text(em_term t, size_t *len, int *special)
{
    *special = 1;
    if (t == EM_NIL) {
        *len = 3;
        return "nil";
    }
    if (t == EM_TRUE) {
        *len = 4;
        return "true";
    }
    if (t == EM_FALSE) {
        *len = 5;
        return "false";
    }
    *special = 0;
    const char *s = emi_atom_str(emi_atom_index(t), len);
    if (!s) {
        *len = 0;
        s = "";
    }
    return s;
}

static int cmp_bytes(const void *a, size_t la, const void *b, size_t lb)
{
    size_t m = la < lb ? la : lb;
    int r = m ? memcmp(a, b, m) : 0;
    if (r)
        return r < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

static int cmp_atom(em_term a, em_term b)
{
    size_t la, lb;
    int sa, sb;
    const char *x = atom_text(a, &la, &sa);
    const char *y = atom_text(b, &lb, &sb);
    int r = cmp_bytes(x, la, y, lb);
    if (r)
        return r;
    /* The special nil/true/false sort before an atom spelled the same way. */
    return sb - sa;
}

/* Compares the top level of a and b; sets *descend when they are containers of the
 * same kind and size whose contents decide. */
static int cmp_shallow(em_term a, em_term b, bool *descend)
{
    *descend = false;
    if (a == b)
        return 0;
    enum rank ra = rank_of(a), rb = rank_of(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    const void *da = NULL, *db = NULL;
    const char *sa = NULL, *sb = NULL;
    size_t la = 0, lb = 0;
    switch (ra) {
    case R_NUM: return cmp_num(a, b);
    case R_ATOM: return cmp_atom(a, b);
    case R_REF: {
        int r = sign_u(emi_box(a)[1], emi_box(b)[1]);
        return r ? r : sign_u(emi_box(a)[2], emi_box(b)[2]);
    }
    case R_PID: return sign_u(emi_box(a)[1], emi_box(b)[1]);
    case R_ARRAY:
    case R_MAP: {
        int r = sign_u(emi_box_size(a), emi_box_size(b));
        *descend = r == 0 && emi_box_size(a) > 0;
        return r;
    }
    case R_STR:
        em_get_str(a, &sa, &la);
        em_get_str(b, &sb, &lb);
        return cmp_bytes(sa, la, sb, lb);
    case R_BIN:
        em_get_bin(a, &da, &la);
        em_get_bin(b, &db, &lb);
        return cmp_bytes(da, la, db, lb);
    default:
        /* Not terms: ordered by their bits, only so the order stays total. */
        return sign_u(a, b);
    }
}

enum { F_ARRAY, F_MAP_KEYS, F_MAP_VALUES };
#define NO_KEY SIZE_MAX
#define SORT_MIN 9   /* maps with fewer pairs find their key order by scanning */

typedef struct cframe {
    em_term a, b;
    size_t i, n;
    kidx *ord;        /* a's keys sorted, then b's; NULL: scan for the next key */
    size_t la, lb;    /* scan mode: the keys visited last */
    int kind;
} cframe;

/* Index of the smallest key of map above key `prev` (NO_KEY: the smallest). */
static size_t next_key(em_term map, size_t n, size_t prev)
{
    size_t best = NO_KEY;
    for (size_t i = 0; i < n; i++) {
        em_term k = em_map_key(map, i);
        if (prev != NO_KEY && em_compare(k, em_map_key(map, prev)) <= 0)
            continue;
        if (best == NO_KEY || em_compare(k, em_map_key(map, best)) < 0)
            best = i;
    }
    return best;
}

static void frame_init(cframe *f, em_term a, em_term b)
{
    f->a = a;
    f->b = b;
    f->i = 0;
    f->n = emi_box_size(a);
    f->ord = NULL;
    f->la = f->lb = NO_KEY;
    if (emi_box_type(a) == BOX_ARRAY) {
        f->kind = F_ARRAY;
        return;
    }
    f->kind = F_MAP_KEYS;
    if (f->n < SORT_MIN)
        return;
    /* Sorting needs memory; without it the scan gives the same order, slower. */
    f->ord = malloc(2 * f->n * sizeof *f->ord);
    if (!f->ord)
        return;
    for (size_t i = 0; i < f->n; i++) {
        f->ord[i] = (kidx){em_map_key(a, i), i};
        f->ord[f->n + i] = (kidx){em_map_key(b, i), i};
    }
    qsort(f->ord, f->n, sizeof *f->ord, kidx_cmp);
    qsort(f->ord + f->n, f->n, sizeof *f->ord, kidx_cmp);
}

/* The next pair of children of frame f to compare. */
static void frame_next(cframe *f, em_term *ca, em_term *cb)
{
    if (f->kind == F_ARRAY) {
        *ca = emi_box(f->a)[1 + f->i];
        *cb = emi_box(f->b)[1 + f->i];
    } else {
        size_t ia, ib;
        if (f->ord) {
            ia = f->ord[f->i].idx;
            ib = f->ord[f->n + f->i].idx;
        } else {
            ia = f->la = next_key(f->a, f->n, f->la);
            ib = f->lb = next_key(f->b, f->n, f->lb);
        }
        int v = f->kind == F_MAP_VALUES;
        *ca = emi_box(f->a)[1 + 2 * ia + v];
        *cb = emi_box(f->b)[1 + 2 * ib + v];
    }
    f->i++;
}

#define CMP_LOCAL_FRAMES 16

static int cmp_deep(em_term a, em_term b)
{
    bool descend;
    int r = cmp_shallow(a, b, &descend);
    if (r || !descend)
        return r;
    cframe local[CMP_LOCAL_FRAMES], *st = local;
    size_t sp = 0, cap = CMP_LOCAL_FRAMES;
    frame_init(&st[sp++], a, b);
    while (sp) {
        cframe *f = &st[sp - 1];
        if (f->i == f->n) {
            if (f->kind == F_MAP_KEYS) {
                f->kind = F_MAP_VALUES;
                f->i = 0;
                f->la = f->lb = NO_KEY;
            } else {
                free(f->ord);
                sp--;
            }
            continue;
        }
        em_term ca, cb;
        frame_next(f, &ca, &cb);
        if (ca == cb)
            continue;
        r = cmp_shallow(ca, cb, &descend);
        if (r)
            break;
        if (!descend)
            continue;
        if (sp == cap) {
            cframe *n = emi_walk_stack_grow(st, local, &cap, sizeof *n);
            if (!n) {
                /* No memory for a deeper stack: recurse for this child instead. */
                r = cmp_deep(ca, cb);
                if (r)
                    break;
                continue;
            }
            st = n;
        }
        frame_init(&st[sp++], ca, cb);
    }
    while (sp)
        free(st[--sp].ord);
    if (st != local)
        free(st);
    return r;
}

int em_compare(em_term a, em_term b) { return cmp_deep(a, b); }

bool em_equal(em_term a, em_term b)
{
    if (a == b)
        return true;
    /* Two different immediates never hold the same value (integers are canonical). */
    if (!emi_is_box(a) && !emi_is_box(b))
        return false;
    return cmp_deep(a, b) == 0;
}
