/*
 * ctl.c - the control service every node runs: what ember-ctl (or any node)
 * asks a node about itself.
 *
 * A process registered as `ember_ctl` answers requests sent to {ember_ctl, Node}:
 *
 *   ['$ctl', ReplyTo, Ref, Command, Arg]  ->  ['$ctl_reply', Ref, ok | error, Value]
 *
 * Commands: ping (Value: the node's name), nodes (visible and hidden nodes),
 * ps (a map per process), info (Arg: a pid or a registered name; one map),
 * send (Arg: [Dest, Term], Dest a pid or a name), spawn (Arg: [Function, ArgTerm]),
 * kill (Arg: a pid or name), stop (the node shuts down in order: a process
 * registered as `ember_node` is told [stop], else the runtime halts), system
 * (the node's figures). Errors come back as a short atom: notfound, badarg, ...
 */
#include <stdlib.h>
#include <string.h>

#include "dist_int.h"

static em_term a_ctl, a_ctl_reply, a_ok, a_error;
static bool halt_requested;

static em_term kv(const char *k, em_term v) { return EM_ARR(em_atom(k), v); }

/* A map from key/value pairs built with kv(). */
static em_term map_of(size_t n, const em_term *pairs)
{
    em_term flat[32];
    for (size_t i = 0; i < n && i < 16; i++) {
        flat[2 * i] = em_at(pairs[i], 0);
        flat[2 * i + 1] = em_at(pairs[i], 1);
    }
    return em_map(n < 16 ? n : 16, flat);
}

static em_term proc_map(const em_proc_info *in, bool full)
{
    em_term pairs[12];
    size_t n = 0;
    pairs[n++] = kv("pid", em_pid(in->pid));
    pairs[n++] = kv("status", em_atom(em_status_name(in->status)));
    pairs[n++] = kv("mailbox", em_uint(in->mailbox_len));
    pairs[n++] = kv("memory", em_uint(in->memory_bytes));
    pairs[n++] = kv("reductions", em_uint(in->reductions));
    pairs[n++] = kv("entry", em_str(in->entry ? in->entry : "?"));
    pairs[n++] = kv("name", in->name != EM_NONE ? in->name : EM_NIL);
    if (full) {
        pairs[n++] = kv("links", em_uint(in->links));
        pairs[n++] = kv("monitored_by", em_uint(in->monitored_by));
        pairs[n++] = kv("trap_exit", em_bool(in->trap_exit));
        pairs[n++] = kv("scheduler", em_int(in->scheduler));
    }
    return map_of(n, pairs);
}

/* A pid, or the pid registered under a name (atom or string). */
static em_pid_t target_of(em_term t)
{
    em_pid_t p;
    const char *s;
    size_t len;
    if (em_get_pid(t, &p))
        return p;
    if (em_atom_name(t))
        return em_whereis(t);
    if (em_get_str(t, &s, &len)) {
        em_term a = em_atomn(s, len);
        return a != EM_NONE ? em_whereis(a) : 0;
    }
    return 0;
}

static em_term nodes_list(bool hidden)
{
    em_term buf[256];
    size_t n = hidden ? em_nodes_hidden(buf, 256) : em_nodes(buf, 256);
    return em_array(n < 256 ? n : 256, buf);
}

static em_term do_ps(void)
{
    size_t cap = 4096;
    em_pid_t *pids = malloc(cap * sizeof *pids);
    em_term *items = malloc(cap * sizeof *items);
    em_term out = EM_NONE;
    if (pids && items) {
        size_t n = em_processes(pids, cap), k = 0;
        for (size_t i = 0; i < n && i < cap; i++) {
            em_proc_info in;
            if (em_process_info(pids[i], &in) == 0)
                items[k++] = proc_map(&in, false);
        }
        out = em_array(k, items);
    }
    free(pids);
    free(items);
    return out;
}

static em_term do_system(void)
{
    em_system_info si;
    em_system_info_get(&si);
    em_dist_stats ds;
    em_dist_stats_get(&ds);
    em_term pairs[] = {
        kv("node", em_node()),
        kv("schedulers", em_int(si.schedulers)),
        kv("processes", em_uint(si.process_count)),
        kv("process_limit", em_uint(si.process_limit)),
        kv("memory_processes", em_uint(si.memory_processes)),
        kv("memory_total", em_uint(si.memory_total)),
        kv("uptime_ms", em_uint(si.uptime_ms)),
        kv("messages_sent", em_uint(si.messages_sent)),
        kv("dist_msgs_out", em_uint(ds.msgs_out)),
        kv("dist_msgs_in", em_uint(ds.msgs_in)),
        kv("dist_dropped", em_uint(ds.dropped)),
        kv("dist_bad_frames", em_uint(ds.bad_frames)),
    };
    return map_of(sizeof pairs / sizeof pairs[0], pairs);
}

/* Answer one request: *ok false for an error, whose atom is the value. */
static em_term answer(em_term cmd, em_term arg, bool *ok)
{
    *ok = true;
    if (em_is_atom(cmd, "ping"))
        return em_node();
    if (em_is_atom(cmd, "nodes"))
        return EM_ARR(kv("visible", nodes_list(false)), kv("hidden", nodes_list(true)));
    if (em_is_atom(cmd, "ps"))
        return do_ps();
    if (em_is_atom(cmd, "system"))
        return do_system();
    if (em_is_atom(cmd, "info")) {
        em_proc_info in;
        em_pid_t p = target_of(arg);
        if (p && em_pid_node(p) == 0 && em_process_info(p, &in) == 0)
            return proc_map(&in, true);
        *ok = false;
        return em_atom("notfound");
    }
    if (em_is_atom(cmd, "send")) {
        em_pid_t p = target_of(em_at(arg, 0));
        em_term msg = em_at(arg, 1);
        *ok = p != 0 && msg != EM_NONE && em_send(p, msg) == 0;
        return *ok ? a_ok : em_atom("notfound");
    }
    if (em_is_atom(cmd, "kill")) {
        em_pid_t p = target_of(arg);
        *ok = p != 0 && em_exit_pid(p, em_atom("kill")) == 0;
        return *ok ? em_pid(p) : em_atom("notfound");
    }
    if (em_is_atom(cmd, "spawn")) {
        const char *fn;
        size_t fl;
        char name[256];
        em_pid_t child;
        if (!em_get_str(em_at(arg, 0), &fn, &fl) || fl >= sizeof name) {
            *ok = false;
            return em_atom("badarg");
        }
        memcpy(name, fn, fl);
        name[fl] = 0;
        em_term a = em_at(arg, 1) != EM_NONE ? em_at(arg, 1) : EM_NIL;
        int rc = em_spawn_on(em_node(), name, a, 0, &child, NULL, 1000);
        *ok = rc == 0;
        return rc == 0 ? em_pid(child) : em_atom(rc == EM_ENOTFOUND ? "notfound" : "error");
    }
    if (em_is_atom(cmd, "stop")) {
        em_pid_t n = em_whereis(em_atom("ember_node"));
        if (n)
            em_send(n, EM_ARR(em_atom("stop")));
        else
            halt_requested = true;
        return a_ok;
    }
    *ok = false;
    return em_atom("badarg");
}


void emi_ctl_main(em_term arg)
{
    (void)arg;
    a_ctl = em_atom("$ctl");
    a_ctl_reply = em_atom("$ctl_reply");
    a_ok = em_atom("ok");
    a_error = em_atom("error");
    halt_requested = false;   /* a runtime started again in this program */
    em_trap_exit(true);       /* as Erlang's system processes: a peer's exit signal is a message */
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive(&m, EM_INFINITY) != 0)
            continue;
        if (em_is_atom(m, "$stop")) {
            em_heap_release(mk);
            return;
        }
        em_pid_t to;
        if (em_len(m) == 5 && em_at(m, 0) == a_ctl && em_get_pid(em_at(m, 1), &to)) {
            bool ok;
            em_term v = answer(em_at(m, 3), em_at(m, 4), &ok);
            em_term reply = EM_ARR(a_ctl_reply, em_at(m, 2), ok ? a_ok : a_error,
                                   v != EM_NONE ? v : em_atom("nomem"));
            em_send(to, reply != EM_NONE ? reply : EM_ARR(a_ctl_reply, em_at(m, 2), a_error, EM_NIL));
            if (halt_requested) {
                em_sleep(50);   /* let the reply leave */
                em_halt(0);
            }
        }
        em_heap_release(mk);
    }
}
