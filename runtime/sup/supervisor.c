/*
 * supervisor.c - the supervisor process (em_supervisor_main): OTP's supervisor
 * behaviour for ember processes.
 *
 * It traps exits, starts its children in order with links, and then serves one
 * message at a time: the EXIT of a child (restart it, and its siblings as the
 * strategy says, within the restart intensity), an exit signal from its parent or
 * a stop request (stop every child in reverse order, then end), and calls from
 * other processes (see spec.c). The term and message layouts are in sup.h.
 *
 * Memory: everything that must last (the children table, the restart history)
 * is em_alloc'd in the supervisor's heap before the main loop's mark, and every
 * iteration releases back to that mark, so a supervisor that handles millions of
 * restarts keeps a constant heap, and a supervisor ended by kill (whose C stack is
 * discarded unwound) leaks nothing: its heap goes with it.
 *
 * Stopping a child, as OTP does: monitor it, unlink it, and take an EXIT it may
 * already have sent; then exit(shutdown), wait for the DOWN up to the child's
 * shutdown time, and exit(kill). Unlinking first guarantees that no EXIT from a
 * stopped child arrives later to be mistaken for a crash of a restarted one.
 */
#include <stdio.h>
#include <string.h>

#include "sup/sup.h"

/* Restart history: at most RING_SPAN buckets of restart counts, each `width` ms
 * wide, so its size is bounded whatever the intensity and period. */
#define RING_SPAN 4096

typedef struct restart_ring {
    struct bucket {
        int64_t at;          /* em_now_ms() / width */
        int64_t count;
    } *b;
    size_t cap, head, len;   /* a ring of len buckets from head, oldest first */
    int64_t width, span;     /* ms per bucket; buckets in a period */
    int64_t total;           /* restarts in the ring */
} restart_ring;

/* Atoms, looked up once per supervisor. */
typedef struct atoms {
    em_term exit, down, call, reply, retry, ack, shutdown, kill, normal;
    em_term which_children, terminate_child, restart_child;
} atoms;

typedef struct sup {
    em_pid_t self;
    em_pid_t parent;         /* 0 when spawned by hand: unknown */
    em_strategy strategy;
    int intensity;
    size_t n;
    emi_child *c;
    restart_ring ring;
    atoms a;
} sup;

static void atoms_init(atoms *a)
{
    a->exit = em_atom("EXIT");
    a->down = em_atom("DOWN");
    a->call = em_atom(EMI_SUP_CALL);
    a->reply = em_atom(EMI_SUP_REPLY);
    a->retry = em_atom(EMI_SUP_RETRY);
    a->ack = em_atom(EMI_SUP_ACK);
    a->shutdown = em_atom("shutdown");
    a->kill = em_atom("kill");
    a->normal = em_atom("normal");
    a->which_children = em_atom("which_children");
    a->terminate_child = em_atom("terminate_child");
    a->restart_child = em_atom("restart_child");
}

/* ---------------------------------------------------------- intensity */

static int ring_init(restart_ring *r, int intensity, int64_t period_ms)
{
    r->width = period_ms <= RING_SPAN ? 1 : (period_ms + RING_SPAN - 1) / RING_SPAN;
    r->span = (period_ms + r->width - 1) / r->width;
    /* While it runs, the ring holds at most `intensity` restarts in at most
     * span + 1 distinct buckets, plus the one being added. */
    int64_t cap = r->span + 1 < (int64_t)intensity + 1 ? r->span + 1 : (int64_t)intensity + 1;
    r->cap = (size_t)cap;
    r->head = r->len = 0;
    r->total = 0;
    r->b = em_alloc(r->cap * sizeof *r->b);
    return r->b ? 0 : EM_ENOMEM;
}

/* Record a restart now; false when that makes more than intensity within the
 * period (OTP keeps restarts at most a period old, the new one included). */
static bool ring_add(restart_ring *r, int intensity)
{
    int64_t now = em_now_ms() / r->width;
    while (r->len && r->b[r->head].at < now - r->span) {
        r->total -= r->b[r->head].count;
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    struct bucket *last = r->len ? &r->b[(r->head + r->len - 1) % r->cap] : NULL;
    if (last && last->at == now) {
        last->count++;
    } else {
        if (r->len == r->cap)
            return false;   /* cannot happen (see ring_init); fail safe */
        struct bucket *b = &r->b[(r->head + r->len) % r->cap];
        b->at = now;
        b->count = 1;
        r->len++;
    }
    r->total++;
    return r->total <= intensity;
}

/* ------------------------------------------------------ small matchers */

/* ['EXIT', Pid, _] for the pid in ctx. */
struct exit_of {
    em_term exit;
    em_pid_t pid;
};

static bool is_exit_of(em_term m, void *ctx)
{
    struct exit_of *e = ctx;
    em_pid_t p;
    return em_typeof(m) == EM_T_ARRAY && em_len(m) == 3 && em_at(m, 0) == e->exit &&
           em_get_pid(em_at(m, 1), &p) && p == e->pid;
}

static bool is_down_ref(em_term m, void *ctx)
{
    return em_typeof(m) == EM_T_ARRAY && em_len(m) == 5 && em_is_atom(em_at(m, 0), "DOWN") &&
           em_equal(em_at(m, 1), *(em_term *)ctx);
}

/* A nested supervisor's ack (by its ref) or the DOWN of the monitor on it. */
struct ack_wait {
    em_term ack, mref, ack_atom;
};

static bool is_ack_or_down(em_term m, void *ctx)
{
    struct ack_wait *w = ctx;
    if (em_typeof(m) == EM_T_ARRAY && em_len(m) == 3 && em_at(m, 0) == w->ack_atom)
        return em_equal(em_at(m, 1), w->ack);
    return is_down_ref(m, &w->mref);
}

/* ------------------------------------------------- stopping a child */

/* Wait for the DOWN of mref; EM_ETIMEDOUT after ms (EM_INFINITY: never). */
static int wait_down(em_term mref, int64_t ms)
{
    return em_receive_if(NULL, ms, is_down_ref, &mref);
}

/* Stop pid, as described at the top; when this returns, pid has ended and no
 * EXIT or DOWN of it is left in the mailbox or still to come. */
static void stop_pid(sup *s, em_pid_t pid, int64_t shutdown_ms)
{
    em_mark mark = em_heap_mark();
    em_term mref;
    struct exit_of eo = {s->a.exit, pid};
    bool monitored = em_monitor(pid, &mref) == 0;
    em_unlink(pid);
    if (em_receive_if(NULL, 0, is_exit_of, &eo) == 0) {
        /* It had ended already; its DOWN is in the mailbox or on its way. */
        if (monitored)
            wait_down(mref, EM_INFINITY);
        goto out;
    }
    if (!monitored) {
        /* No memory for a monitor: kill it and watch it go. */
        em_exit_pid(pid, s->a.kill);
        while (em_is_alive(pid))
            em_sleep(1);
        goto out;
    }
    if (shutdown_ms != EM_BRUTAL_KILL) {
        em_exit_pid(pid, s->a.shutdown);
        if (wait_down(mref, shutdown_ms) == 0)
            goto out;
    }
    em_exit_pid(pid, s->a.kill);
    wait_down(mref, EM_INFINITY);
out:
    em_heap_release(mark);
}

static void stop_child(sup *s, emi_child *c)
{
    if (c->pid) {
        em_pid_t pid = c->pid;
        c->pid = 0;
        stop_pid(s, pid, c->shutdown_ms);
    }
    if (c->restart == EM_TEMPORARY)
        c->deleted = true;   /* OTP forgets a temporary child once it is stopped */
}

/* Stop children hi-1 down to lo (reverse start order), all but `except`. */
static void stop_range(sup *s, size_t lo, size_t hi, size_t except)
{
    for (size_t j = hi; j-- > lo;)
        if (j != except && !s->c[j].deleted)
            stop_child(s, &s->c[j]);
}

_Noreturn static void stop_all_and_exit(sup *s, em_term reason)
{
    stop_range(s, 0, s->n, SIZE_MAX);
    em_exit(reason);
}

/* ------------------------------------------------- starting a child */

/* Start child i: spawn it linked; a nested supervisor is told who its parent is,
 * and is waited for until its own children are up (OTP's start of a child is
 * synchronous, so the next child may rely on the ones before it). The flag, not
 * the start function's address, says which children are supervisors: a function
 * may be known by more than one address across a shared library's boundary, and
 * a start function may do some work and then call em_supervisor_main. */
static int start_child(sup *s, size_t i)
{
    emi_child *c = &s->c[i];
    bool nested = c->supervisor;
    const char *entry = nested ? EMI_SUP_ENTRY : em_atom_name(c->id);
    em_mark mark = em_heap_mark();
    struct ack_wait w = {EM_NIL, EM_NONE, s->a.ack};
    em_term arg = c->arg, msg;
    em_pid_t pid = 0;
    int64_t code;
    int rc = 0;
    if (nested) {
        w.ack = em_make_ref();
        arg = EM_ARR(em_atom(EMI_SUP_START), em_pid(s->self), w.ack, c->arg);
        if (arg == EM_NONE) {
            rc = EM_ENOMEM;
            goto out;
        }
    }
    rc = em_spawn_link_named(c->start, entry, arg, &pid);
    if (rc || !nested)
        goto out;
    rc = em_monitor(pid, &w.mref);
    if (rc == 0) {
        em_receive_if(&msg, EM_INFINITY, is_ack_or_down, &w);
        if (em_len(msg) == 5)
            rc = EM_ENOPROC;
        else if (!em_get_int(em_at(msg, 2), &code) || code > 0 || code < INT32_MIN)
            rc = EM_EBADTERM;
        else
            rc = (int)code;
        em_demonitor(w.mref, EM_DEMONITOR_FLUSH);
    }
    if (rc)
        stop_pid(s, pid, EM_BRUTAL_KILL);   /* ending, or dead: make sure */
out:
    em_heap_release(mark);
    if (rc == 0)
        c->pid = pid;
    return rc;
}

/* A restart that failed to spawn is tried again through the mailbox, as OTP's
 * try_again_restart, so that requests and exits are served in between and the
 * intensity bounds the retries. */
static void retry_later(sup *s, size_t i)
{
    em_mark mark = em_heap_mark();
    em_send(s->self, EM_ARR(s->a.retry, s->c[i].id));
    em_heap_release(mark);
}

/* Start children from..n-1 that are not deleted, in order; on a failure, stop
 * and retry from that child later. */
static void start_from(sup *s, size_t from)
{
    for (size_t j = from; j < s->n; j++) {
        if (s->c[j].deleted || s->c[j].pid)
            continue;
        if (start_child(s, j) != 0) {
            retry_later(s, j);
            return;
        }
    }
}

/* ------------------------------------------------------- restarting */

_Noreturn static void give_up(sup *s)
{
    char pid[40];
    em_mark mark = em_heap_mark();
    if (em_format(em_pid(s->self), pid, sizeof pid) < 0)
        strcpy(pid, "?");
    em_heap_release(mark);
    fprintf(stderr, "ember: supervisor %s: reached_max_restart_intensity, shutting down\n", pid);
    stop_all_and_exit(s, s->a.shutdown);
}

/* Restart child i (not running) and its siblings as the strategy says. */
static void restart(sup *s, size_t i)
{
    if (!ring_add(&s->ring, s->intensity))
        give_up(s);
    switch (s->strategy) {
    case EM_ONE_FOR_ONE:
        if (start_child(s, i) != 0)
            retry_later(s, i);
        break;
    case EM_ONE_FOR_ALL:
        stop_range(s, 0, s->n, i);
        start_from(s, 0);
        break;
    case EM_REST_FOR_ONE:
        stop_range(s, i + 1, s->n, i);
        start_from(s, i);
        break;
    }
}

static void child_exited(sup *s, size_t i, em_term reason)
{
    emi_child *c = &s->c[i];
    c->pid = 0;
    if (c->restart == EM_TEMPORARY) {
        c->deleted = true;
        return;
    }
    if (c->restart == EM_TRANSIENT && emi_sup_clean_exit(reason))
        return;
    restart(s, i);
}

static size_t find_pid(const sup *s, em_pid_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->c[i].pid == pid)
            return i;
    return SIZE_MAX;
}

static size_t find_id(const sup *s, em_term id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->c[i].id == id && !s->c[i].deleted)
            return i;
    return SIZE_MAX;
}

static void on_exit(sup *s, em_pid_t from, em_term reason)
{
    size_t i = find_pid(s, from);
    if (i != SIZE_MAX) {
        child_exited(s, i, reason);
        return;
    }
    /* Not a child: its parent ends (whatever the reason), or someone asks it to
     * stop. A normal exit of another linked process is no concern of ours. */
    if (from == s->parent || reason != s->a.normal)
        stop_all_and_exit(s, reason);
}

/* ------------------------------------------------------------ calls */

static em_term which_children(sup *s)
{
    size_t k = 0;
    em_term *items = em_alloc((s->n ? s->n : 1) * sizeof *items);
    if (!items)
        return EM_NONE;
    for (size_t i = 0; i < s->n; i++) {
        emi_child *c = &s->c[i];
        if (c->deleted)
            continue;
        items[k++] = EM_ARR(c->id, c->pid ? em_pid(c->pid) : EM_NIL, em_int(c->restart),
                            em_bool(c->supervisor));
    }
    return em_array(k, items);
}

static void on_call(sup *s, em_pid_t from, em_term ref, em_term req)
{
    em_term result, id;
    size_t i;
    if (req == s->a.which_children) {
        result = which_children(s);
    } else if (em_typeof(req) == EM_T_ARRAY && em_len(req) == 2 &&
               em_typeof(id = em_at(req, 1)) == EM_T_ATOM &&
               (em_at(req, 0) == s->a.terminate_child || em_at(req, 0) == s->a.restart_child)) {
        int rc = 0;
        i = find_id(s, id);
        if (i == SIZE_MAX)
            rc = EM_ENOTFOUND;
        else if (em_at(req, 0) == s->a.terminate_child)
            stop_child(s, &s->c[i]);
        else if (s->c[i].pid)
            rc = EM_EEXIST;
        else
            rc = start_child(s, i);
        result = em_int(rc);
    } else {
        return;   /* not a request we know: as OTP, no reply */
    }
    if (result == EM_NONE)
        result = em_int(EM_ENOMEM);
    int rc = em_send(from, EM_ARR(s->a.reply, ref, result));
    if (rc != 0)   /* out of memory: say so rather than leave the caller waiting */
        em_send(from, EM_ARR(s->a.reply, ref, em_int(rc)));
}

static void on_retry(sup *s, em_term id)
{
    size_t i = find_id(s, id);
    if (i != SIZE_MAX && !s->c[i].pid)
        restart(s, i);
}

/* ------------------------------------------------------------ the process */

static void handle(sup *s, em_term m)
{
    em_term tag, reason, ref;
    em_pid_t from;
    size_t len = em_len(m);
    if (em_typeof(m) != EM_T_ARRAY || len < 2)
        return;   /* OTP logs an unexpected message; we drop it */
    tag = em_at(m, 0);
    if (tag == s->a.exit && len == 3 && em_get_pid(em_at(m, 1), &from)) {
        reason = em_at(m, 2);
        on_exit(s, from, reason);
    } else if (tag == s->a.call && len == 4 && em_get_pid(em_at(m, 1), &from)) {
        ref = em_at(m, 2);
        on_call(s, from, ref, em_at(m, 3));
    } else if (tag == s->a.retry && len == 2) {
        on_retry(s, em_at(m, 1));
    }
}

static void ack(em_pid_t to, em_term ref, int code)
{
    if (!to || ref == EM_NIL)
        return;
    em_mark mark = em_heap_mark();
    em_send(to, EM_ARR(em_atom(EMI_SUP_ACK), ref, em_int(code)));
    em_heap_release(mark);
}

_Noreturn static void init_failed(sup *s, em_term ackref, int code, em_term reason)
{
    /* A starter that waits for the ack gets the code instead of our exit signal. */
    if (ackref != EM_NIL && s->parent) {
        em_unlink(s->parent);
        ack(s->parent, ackref, code);
    }
    em_exit(reason);
}

void em_supervisor_main(em_term arg)
{
    sup s;
    memset(&s, 0, sizeof s);
    em_trap_exit(true);
    s.self = em_self();
    atoms_init(&s.a);
    em_term spec = arg, ackref = EM_NIL;
    if (em_typeof(arg) == EM_T_ARRAY && em_len(arg) == 4 &&
        em_is_atom(em_at(arg, 0), EMI_SUP_START) && em_get_pid(em_at(arg, 1), &s.parent)) {
        ackref = em_at(arg, 2);
        spec = em_at(arg, 3);
    }
    emi_sup_spec sp;
    int rc = emi_sup_read(spec, &sp);
    if (rc == 0) {
        s.strategy = sp.strategy;
        s.intensity = sp.intensity;
        s.n = sp.n;
        s.c = sp.children;
        rc = ring_init(&s.ring, sp.intensity, sp.period_ms);
    }
    if (rc) {
        char pid[40];
        if (em_format(em_pid(s.self), pid, sizeof pid) < 0)
            strcpy(pid, "?");
        fprintf(stderr, "ember: supervisor %s: %s\n", pid,
                rc == EM_EINVAL ? "malformed argument" : em_strerror(rc));
        init_failed(&s, ackref, rc, em_atom(rc == EM_EINVAL ? "badarg" : "enomem"));
    }
    for (size_t i = 0; i < s.n; i++) {
        rc = start_child(&s, i);
        if (rc) {
            stop_range(&s, 0, i, SIZE_MAX);
            em_term reason = EM_ARR(s.a.shutdown, EM_ARR(em_atom("failed_to_start_child"),
                                                         s.c[i].id, em_int(rc)));
            init_failed(&s, ackref, rc, reason == EM_NONE ? s.a.shutdown : reason);
        }
    }
    ack(s.parent, ackref, 0);
    em_mark top = em_heap_mark();
    for (;;) {
        em_term m;
        if (em_receive(&m, EM_INFINITY) == 0)
            handle(&s, m);
        em_heap_release(top);
    }
}
