/*
 * spec.c - supervisors from the outside: child specs turned into the term a
 * supervisor is spawned with (and read back by it), and the synchronous calls
 * other processes make to a supervisor (start, which_children, terminate_child,
 * restart_child, stop).
 *
 * The layouts of the terms and messages are in sup.h. Every call takes a mark of
 * the caller's heap on entry and releases to it before returning: what it built
 * (the request, the monitor's reference) and received (the reply) is gone, and
 * what it hands back (pids, ids that are interned atom names) does not live in the
 * heap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup/sup.h"

#define ID_MAX_LEN 255

void em_sup_flags_init(em_sup_flags *f)
{
    if (!f)
        return;
    f->strategy = EM_ONE_FOR_ONE;
    f->intensity = 1;
    f->period_ms = 5000;
}

/* ------------------------------------------------------------ checking */

static int check_flags(const em_sup_flags *f)
{
    if (!f)
        return EM_EINVAL;
    if (f->strategy != EM_ONE_FOR_ONE && f->strategy != EM_ONE_FOR_ALL &&
        f->strategy != EM_REST_FOR_ONE)
        return EM_EINVAL;
    if (f->intensity < 0 || f->period_ms <= 0)
        return EM_EINVAL;
    return 0;
}

static bool restart_ok(int64_t r)
{
    return r == EM_PERMANENT || r == EM_TRANSIENT || r == EM_TEMPORARY;
}

/* A resolved shutdown: brutal kill, infinity, or a positive number of ms. */
static bool shutdown_ok(int64_t ms) { return ms == EM_BRUTAL_KILL || ms == EM_INFINITY || ms > 0; }

static int cmp_term(const void *a, const void *b)
{
    em_term x = *(const em_term *)a, y = *(const em_term *)b;
    return x < y ? -1 : x > y;
}

int emi_sup_ids_unique(const em_term *ids, size_t n)
{
    if (n < 2)
        return 1;
    /* malloc rather than the heap: freed before returning, and no call in between
     * may switch. */
    em_term *s = malloc(n * sizeof *s);
    if (!s)
        return -1;
    memcpy(s, ids, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_term);
    int unique = 1;
    for (size_t i = 1; i < n && unique; i++)
        unique = s[i] != s[i - 1];
    free(s);
    return unique;
}

bool emi_sup_clean_exit(em_term reason)
{
    return em_is_atom(reason, "normal") || em_is_atom(reason, "shutdown") ||
           em_match(reason, "[shutdown, _]");
}

/* ------------------------------------------------------- building a spec */

static em_term fn_term(em_proc_fn fn)
{
    /* The function pointer's bytes, in a binary: the term model has no function
     * type, and memcpy keeps this well-defined C. */
    return em_bin(&fn, sizeof fn);
}

int em_supervisor_arg(const em_sup_flags *flags, const em_child_spec *children, size_t n,
                      em_term *out)
{
    int rc = check_flags(flags);
    if (rc)
        return rc;
    if (!out || n > EM_SUP_MAX_CHILDREN || (n > 0 && !children))
        return EM_EINVAL;
    em_term *items = malloc((n ? n : 1) * sizeof *items);
    em_term *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!items || !ids) {
        rc = EM_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const em_child_spec *c = &children[i];
        size_t len = c->id ? strlen(c->id) : 0;
        int64_t sd = c->shutdown_ms;
        if (len == 0 || len > ID_MAX_LEN || !c->start || !restart_ok(c->restart) ||
            (sd != EM_SHUTDOWN_DEFAULT && !shutdown_ok(sd))) {
            rc = EM_EINVAL;
            goto out;
        }
        /* A supervisor child gets its arg wrapped and is waited for (see
         * supervisor.c): its arg must be a spec. The address test is best effort
         * (a function may have several addresses across a shared library). */
        em_term arg = c->arg == EM_NONE ? EM_NIL : c->arg;
        bool is_spec = em_typeof(arg) == EM_T_ARRAY && em_len(arg) == 5 &&
                       em_is_atom(em_at(arg, 0), EMI_SUP_SPEC);
        if ((c->supervisor && !is_spec) || (!c->supervisor && c->start == em_supervisor_main)) {
            rc = EM_EINVAL;
            goto out;
        }
        if (sd == EM_SHUTDOWN_DEFAULT)
            sd = c->supervisor ? EM_INFINITY : EMI_SUP_WORKER_SHUTDOWN_MS;
        ids[i] = em_atomn(c->id, len);
        if (ids[i] == EM_NONE) {
            rc = EM_ESYSLIMIT;   /* the length is fine: the atom table is full */
            goto out;
        }
        items[i] = EM_ARR(ids[i], fn_term(c->start), arg, em_int(c->restart), em_int(sd),
                          em_bool(c->supervisor));
        if (items[i] == EM_NONE) {
            rc = EM_ENOMEM;
            goto out;
        }
    }
    int u = emi_sup_ids_unique(ids, n);
    if (u <= 0) {
        rc = u < 0 ? EM_ENOMEM : EM_EINVAL;
        goto out;
    }
    em_term spec = EM_ARR(em_atom(EMI_SUP_SPEC), em_int(flags->strategy),
                          em_int(flags->intensity), em_int(flags->period_ms),
                          em_array(n, items));
    if (spec == EM_NONE) {
        rc = EM_ENOMEM;
        goto out;
    }
    *out = spec;
out:
    free(items);
    free(ids);
    return rc;
}

/* ------------------------------------------------------- reading a spec */

static bool get_small(em_term t, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v;
    if (!em_get_int(t, &v) || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int read_child(em_term t, emi_child *c)
{
    em_term start;
    const void *bytes;
    size_t len;
    int64_t restart, sd;
    bool sup;
    if (em_typeof(t) != EM_T_ARRAY || em_len(t) != 6)
        return EM_EINVAL;
    c->id = em_at(t, 0);
    start = em_at(t, 1);
    c->arg = em_at(t, 2);
    if (em_typeof(c->id) != EM_T_ATOM || !em_get_bin(start, &bytes, &len) ||
        len != sizeof c->start || !get_small(em_at(t, 3), EM_PERMANENT, EM_TEMPORARY, &restart) ||
        !em_get_int(em_at(t, 4), &sd) || !shutdown_ok(sd) || !em_get_bool(em_at(t, 5), &sup))
        return EM_EINVAL;
    memcpy(&c->start, bytes, sizeof c->start);
    if (!c->start)
        return EM_EINVAL;
    c->restart = (em_restart)restart;
    c->shutdown_ms = sd;
    c->supervisor = sup;
    c->pid = 0;
    c->deleted = false;
    return 0;
}

int emi_sup_read(em_term spec, emi_sup_spec *out)
{
    int64_t strategy, intensity, period;
    if (em_typeof(spec) != EM_T_ARRAY || em_len(spec) != 5 ||
        !em_is_atom(em_at(spec, 0), EMI_SUP_SPEC) ||
        !get_small(em_at(spec, 1), EM_ONE_FOR_ONE, EM_REST_FOR_ONE, &strategy) ||
        !get_small(em_at(spec, 2), 0, INT32_MAX, &intensity) ||
        !get_small(em_at(spec, 3), 1, INT64_MAX, &period))
        return EM_EINVAL;
    em_term list = em_at(spec, 4);
    size_t n = em_len(list);
    if (em_typeof(list) != EM_T_ARRAY || n > EM_SUP_MAX_CHILDREN)
        return EM_EINVAL;
    emi_child *cs = em_alloc((n ? n : 1) * sizeof *cs);
    em_term *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!cs || !ids) {
        free(ids);
        return EM_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = read_child(em_at(list, i), &cs[i]);
        ids[i] = cs[i].id;
    }
    if (!rc) {
        int u = emi_sup_ids_unique(ids, n);
        rc = u < 0 ? EM_ENOMEM : u == 0 ? EM_EINVAL : 0;
    }
    free(ids);
    if (rc)
        return rc;
    out->strategy = (em_strategy)strategy;
    out->intensity = (int)intensity;
    out->period_ms = period;
    out->n = n;
    out->children = cs;
    return 0;
}

/* ----------------------------------------------------------- the calls */

/* Matches the reply or the DOWN that a call waits for: both carry its ref. */
static bool is_reply_or_down(em_term m, void *ctx)
{
    em_term ref = *(em_term *)ctx;
    if (em_typeof(m) != EM_T_ARRAY || em_len(m) < 3 || !em_equal(em_at(m, 1), ref))
        return false;
    return (em_len(m) == 3 && em_is_atom(em_at(m, 0), EMI_SUP_REPLY)) ||
           (em_len(m) == 5 && em_is_atom(em_at(m, 0), "DOWN"));
}

typedef int (*decode_fn)(em_term result, void *ctx);

/* Send Request to sup and wait for its reply, which decode reads. The monitor's
 * reference tags the request: it is unique, and the DOWN carries it too. */
static int sup_call(em_pid_t sup, em_term req, int64_t timeout_ms, decode_fn decode, void *ctx)
{
    em_pid_t self = em_self();
    if (!self)
        return EM_ENOTPROC;
    if (sup == self)
        return EM_EINVAL;   /* it would wait for its own reply */
    em_mark mark = em_heap_mark();
    em_term ref, msg;
    int rc = req == EM_NONE ? EM_ENOMEM : em_monitor(sup, &ref);
    if (rc)
        goto out;
    rc = em_send(sup, EM_ARR(em_atom(EMI_SUP_CALL), em_pid(self), ref, req));
    if (rc == 0)
        rc = em_receive_if(&msg, timeout_ms, is_reply_or_down, &ref);
    if (rc == 0)
        rc = em_len(msg) == 5 ? EM_ENOPROC : decode(em_at(msg, 2), ctx);
    em_demonitor(ref, EM_DEMONITOR_FLUSH);
out:
    em_heap_release(mark);
    return rc;
}

static int decode_code(em_term result, void *ctx)
{
    (void)ctx;
    int64_t code;
    if (!em_get_int(result, &code) || code > 0 || code < INT32_MIN)
        return EM_EBADTERM;
    return (int)code;
}

struct which {
    em_child_info *out;
    size_t cap, count;
};

static int decode_which(em_term result, void *ctx)
{
    struct which *w = ctx;
    if (em_typeof(result) == EM_T_INT)
        return decode_code(result, NULL);   /* the supervisor could not reply */
    if (em_typeof(result) != EM_T_ARRAY)
        return EM_EBADTERM;
    w->count = em_len(result);
    for (size_t i = 0; i < w->count && i < w->cap; i++) {
        em_term e = em_at(result, i), id, pidt;
        int64_t restart;
        bool sup;
        em_pid_t pid = 0;
        if (!em_match(e, "[~a, ~t, ~i, _]", &id, &pidt, &restart) ||
            !em_get_bool(em_at(e, 3), &sup) || (pidt != EM_NIL && !em_get_pid(pidt, &pid)))
            return EM_EBADTERM;
        w->out[i].id = em_atom_name(id);
        w->out[i].pid = pid;
        w->out[i].restart = (em_restart)restart;
        w->out[i].supervisor = sup;
    }
    return 0;
}

int em_supervisor_which_children(em_pid_t sup, em_child_info *out, size_t cap, size_t *count,
                                 int64_t timeout_ms)
{
    if (cap > 0 && !out)
        return EM_EINVAL;
    struct which w = {out, cap, 0};
    int rc = sup_call(sup, em_atom("which_children"), timeout_ms, decode_which, &w);
    if (rc == 0 && count)
        *count = w.count;
    return rc;
}

static int id_call(em_pid_t sup, const char *verb, const char *id, int64_t timeout_ms)
{
    size_t len = id ? strlen(id) : 0;
    if (len == 0 || len > ID_MAX_LEN)
        return EM_EINVAL;
    if (!em_self())
        return EM_ENOTPROC;
    em_term idt = em_atomn(id, len);
    if (idt == EM_NONE)
        return EM_ESYSLIMIT;
    /* sup_call releases what this builds: take the mark here. */
    em_mark mark = em_heap_mark();
    int rc = sup_call(sup, EM_ARR(em_atom(verb), idt), timeout_ms, decode_code, NULL);
    em_heap_release(mark);
    return rc;
}

int em_supervisor_terminate_child(em_pid_t sup, const char *id, int64_t timeout_ms)
{
    return id_call(sup, "terminate_child", id, timeout_ms);
}

int em_supervisor_restart_child(em_pid_t sup, const char *id, int64_t timeout_ms)
{
    return id_call(sup, "restart_child", id, timeout_ms);
}

static bool is_down_for(em_term m, void *ctx)
{
    return em_typeof(m) == EM_T_ARRAY && em_len(m) == 5 && em_is_atom(em_at(m, 0), "DOWN") &&
           em_equal(em_at(m, 1), *(em_term *)ctx);
}

int em_supervisor_stop(em_pid_t sup, int64_t timeout_ms)
{
    em_pid_t self = em_self();
    if (!self)
        return EM_ENOTPROC;
    if (sup == self)
        return EM_EINVAL;
    em_mark mark = em_heap_mark();
    em_term ref, down;
    int rc = em_monitor(sup, &ref);
    if (rc)
        goto out;
    /* The supervisor ends with shutdown: a linked caller would end with it. */
    em_unlink(sup);
    rc = em_exit_pid(sup, em_atom("shutdown"));
    if (rc == 0)
        rc = em_receive_if(&down, timeout_ms, is_down_for, &ref);
    if (rc == 0)
        rc = em_is_atom(em_at(down, 4), "noproc") ? EM_ENOPROC : 0;
    else
        em_demonitor(ref, EM_DEMONITOR_FLUSH);
out:
    em_heap_release(mark);
    return rc;
}

/* Matches the supervisor's ack (by ack ref) or its DOWN (by monitor ref). */
struct start_wait {
    em_term ack, mref;
};

static bool is_ack_or_down(em_term m, void *ctx)
{
    struct start_wait *w = ctx;
    if (em_typeof(m) != EM_T_ARRAY)
        return false;
    if (em_len(m) == 3 && em_is_atom(em_at(m, 0), EMI_SUP_ACK))
        return em_equal(em_at(m, 1), w->ack);
    return is_down_for(m, &w->mref);
}

int em_supervisor_start_link(const em_sup_flags *flags, const em_child_spec *children,
                             size_t n, em_pid_t *out)
{
    em_pid_t self = em_self();
    if (!self)
        return EM_ENOTPROC;
    em_mark mark = em_heap_mark();
    em_term spec, msg;
    struct start_wait w;
    em_pid_t pid;
    int64_t code;
    int rc = em_supervisor_arg(flags, children, n, &spec);
    if (rc)
        goto out;
    w.ack = em_make_ref();
    em_term arg = EM_ARR(em_atom(EMI_SUP_START), em_pid(self), w.ack, spec);
    if (arg == EM_NONE) {
        rc = EM_ENOMEM;
        goto out;
    }
    rc = em_spawn_link_named(em_supervisor_main, EMI_SUP_ENTRY, arg, &pid);
    if (rc)
        goto out;
    rc = em_monitor(pid, &w.mref);
    if (rc) {
        /* Without a monitor the wait below could last for ever: give up on it. */
        em_unlink(pid);
        em_exit_pid(pid, em_atom("kill"));
        goto out;
    }
    em_receive_if(&msg, EM_INFINITY, is_ack_or_down, &w);
    if (em_len(msg) == 5) {
        rc = EM_ENOPROC;   /* killed before its children were up */
    } else if (!em_get_int(em_at(msg, 2), &code) || code > 0 || code < INT32_MIN) {
        rc = EM_EBADTERM;   /* not from em_supervisor_main: leave it running */
        em_demonitor(w.mref, EM_DEMONITOR_FLUSH);
    } else if ((rc = (int)code) != 0) {
        /* It has unlinked from us and is ending: return once it has. */
        em_receive_if(&msg, EM_INFINITY, is_down_for, &w.mref);
    } else {
        em_demonitor(w.mref, EM_DEMONITOR_FLUSH);
        if (out)
            *out = pid;
    }
out:
    em_heap_release(mark);
    return rc;
}
