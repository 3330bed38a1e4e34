/*
 * ctl_cmds.c - ember-ctl's commands that talk to a node's ember_ctl service
 * (dist/ctl.c is the protocol): each sends one or a few requests and prints the
 * answer as a table or key/value lines for people, or JSON with --json.
 */
#include "ctl_cmds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_argterm.h"
#include "ctl_conn.h"
#include "ctl_out.h"

static void print_json(em_term t, uint32_t home)
{
    ctl_buf b = {0};
    ctl_json(&b, t, home);
    puts(ctl_buf_str(&b));
    ctl_buf_free(&b);
}

/* {"key": "value"} on a line. */
static void print_json_field(const char *key, const char *value, size_t len)
{
    ctl_buf b = {0};
    ctl_buf_puts(&b, "{");
    ctl_json_str(&b, key, strlen(key));
    ctl_buf_puts(&b, ": ");
    ctl_json_str(&b, value, len);
    ctl_buf_puts(&b, "}");
    puts(ctl_buf_str(&b));
    ctl_buf_free(&b);
}

static em_term get(em_term map, const char *key) { return em_map_get(map, em_atom(key)); }

static uint64_t get_u(em_term map, const char *key)
{
    uint64_t v = 0;
    em_get_uint(get(map, key), &v);
    return v;
}

/* Explains an error the node answered with, and returns CTL_FAILED. */
static int node_error(const ctl_node *n, const char *cmd, const char *subject, em_term err)
{
    const char *kind = em_atom_name(err) ? em_atom_name(err) : "error";
    if (!strcmp(kind, "notfound") && !strcmp(cmd, "spawn"))
        return ctl_error(CTL_FAILED, kind, "spawn: no function is registered as %s on %s", subject,
                         n->name);
    if (!strcmp(kind, "notfound"))
        return ctl_error(CTL_FAILED, kind, "%s: no process %s on %s", cmd, subject, n->name);
    return ctl_error(CTL_FAILED, kind, "%s %s failed on %s: %s", cmd, subject, n->name, kind);
}

/* key  value lines, the keys of order first (those present), then the rest. */
static void print_pairs(em_term map, const char *const *order, uint32_t home)
{
    ctl_table t;
    ctl_table_init(&t, 2, NULL, NULL);
    ctl_buf k = {0}, v = {0};
    for (size_t i = 0; order[i]; i++) {
        em_term val = get(map, order[i]);
        if (val == EM_NONE)
            continue;
        ctl_buf_clear(&v);
        ctl_plain(&v, val, home);
        const char *row[] = {order[i], ctl_buf_str(&v)};
        ctl_table_row(&t, row);
    }
    for (size_t i = 0; i < em_len(map); i++) {
        const char *name = em_atom_name(em_map_key(map, i));
        bool seen = false;
        for (size_t j = 0; name && order[j] && !seen; j++)
            seen = !strcmp(order[j], name);
        if (seen)
            continue;
        ctl_buf_clear(&k);
        ctl_buf_clear(&v);
        ctl_plain(&k, em_map_key(map, i), home);
        ctl_plain(&v, em_map_value(map, i), home);
        const char *row[] = {ctl_buf_str(&k), ctl_buf_str(&v)};
        ctl_table_row(&t, row);
    }
    ctl_table_print(&t);
    ctl_table_free(&t);
    ctl_buf_free(&k);
    ctl_buf_free(&v);
}

/* ------------------------------------------------------------ commands */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmd_ping(const ctl_opts *o, ctl_node *n)
{
    em_term v;
    double t0 = now_ms();
    int rc = ctl_call(n, o, "ping", EM_NIL, &v);
    double rtt = now_ms() - t0;
    if (rc == CTL_FAILED)
        return node_error(n, "ping", "", v);
    if (rc)
        return rc;
    const char *name = em_atom_name(v) ? em_atom_name(v) : n->name;
    if (o->json) {
        ctl_buf b = {0};
        ctl_buf_puts(&b, "{\"node\": ");
        ctl_json_str(&b, name, strlen(name));
        ctl_buf_printf(&b, ", \"pong\": true, \"rtt_ms\": %.3f}", rtt);
        puts(ctl_buf_str(&b));
        ctl_buf_free(&b);
    } else {
        printf("pong %s (%.1f ms)\n", name, rtt);
    }
    return CTL_OK;
}

static int cmd_nodes(const ctl_opts *o, ctl_node *n)
{
    em_term v;
    int rc = ctl_call(n, o, "nodes", EM_NIL, &v);
    if (rc == CTL_FAILED)
        return node_error(n, "nodes", "", v);
    if (rc)
        return rc;
    /* [[visible, [Nodes]], [hidden, [Nodes]]] */
    if (o->json) {
        ctl_buf b = {0};
        ctl_buf_puts(&b, "{");
        for (size_t i = 0; i < em_len(v); i++) {
            em_term kind = em_at(em_at(v, i), 0);
            const char *k = em_atom_name(kind) ? em_atom_name(kind) : "?";
            ctl_buf_puts(&b, i ? ", " : "");
            ctl_json_str(&b, k, strlen(k));
            ctl_buf_puts(&b, ": ");
            ctl_json(&b, em_at(em_at(v, i), 1), n->index);
        }
        ctl_buf_puts(&b, "}");
        puts(ctl_buf_str(&b));
        ctl_buf_free(&b);
        return CTL_OK;
    }
    static const char *const head[] = {"NODE", "TYPE"};
    ctl_table t;
    ctl_table_init(&t, 2, head, NULL);
    for (size_t i = 0; i < em_len(v); i++) {
        em_term kind = em_at(em_at(v, i), 0), list = em_at(em_at(v, i), 1);
        for (size_t j = 0; j < em_len(list); j++) {
            em_term node = em_at(list, j);
            char type[64];
            snprintf(type, sizeof type, "%s%s", em_atom_name(kind) ? em_atom_name(kind) : "?",
                     node == em_node() ? " (this ember-ctl)" : "");
            const char *row[] = {em_atom_name(node) ? em_atom_name(node) : "?", type};
            ctl_table_row(&t, row);
        }
    }
    ctl_table_print(&t);
    ctl_table_free(&t);
    return CTL_OK;
}

/* ps --sort: the key, for qsort (which takes no context). */
static const char *sort_key;

static int by_key(const void *a, const void *b)
{
    em_term x = *(const em_term *)a, y = *(const em_term *)b;
    if (strcmp(sort_key, "pid") != 0) {
        uint64_t u = get_u(x, sort_key), v = get_u(y, sort_key);
        if (u != v)
            return u > v ? -1 : 1;   /* largest first */
    }
    /* By pid, and for ties: the same order every time. */
    em_pid_t p = 0, q = 0;
    em_get_pid(get(x, "pid"), &p);
    em_get_pid(get(y, "pid"), &q);
    return em_pid_index(p) < em_pid_index(q) ? -1 : em_pid_index(p) > em_pid_index(q);
}

static int cmd_ps(const ctl_opts *o, ctl_node *n)
{
    em_term v;
    int rc = ctl_call(n, o, "ps", EM_NIL, &v);
    if (rc == CTL_FAILED)
        return node_error(n, "ps", "", v);
    if (rc)
        return rc;
    size_t count = em_len(v);
    em_term *procs = malloc((count ? count : 1) * sizeof *procs);
    if (!procs)
        return ctl_error(CTL_INTERNAL, NULL, "out of memory");
    for (size_t i = 0; i < count; i++)
        procs[i] = em_at(v, i);
    sort_key = o->sort ? o->sort : "pid";
    qsort(procs, count, sizeof *procs, by_key);
    if (o->json) {
        print_json(em_array(count, procs), n->index);
        free(procs);
        return CTL_OK;
    }
    static const char *const head[] = {"PID", "STATUS", "MAILBOX", "MEMORY", "REDUCTIONS",
                                       "NAME/ENTRY"};
    static const bool right[] = {false, false, true, true, true, false};
    ctl_table t;
    ctl_table_init(&t, 6, head, right);
    ctl_buf pid = {0}, status = {0}, who = {0};
    for (size_t i = 0; i < count; i++) {
        em_term p = procs[i], name = get(p, "name");
        char mailbox[24], memory[24], reds[24];
        ctl_buf_clear(&pid);
        ctl_buf_clear(&status);
        ctl_buf_clear(&who);
        ctl_plain(&pid, get(p, "pid"), n->index);
        ctl_plain(&status, get(p, "status"), n->index);
        if (em_atom_name(name)) {
            ctl_buf_puts(&who, em_atom_name(name));
        } else {
            ctl_buf_puts(&who, "(");
            ctl_plain(&who, get(p, "entry"), n->index);
            ctl_buf_puts(&who, ")");
        }
        snprintf(mailbox, sizeof mailbox, "%llu", (unsigned long long)get_u(p, "mailbox"));
        snprintf(memory, sizeof memory, "%llu", (unsigned long long)get_u(p, "memory"));
        snprintf(reds, sizeof reds, "%llu", (unsigned long long)get_u(p, "reductions"));
        const char *row[] = {ctl_buf_str(&pid), ctl_buf_str(&status), mailbox, memory, reds,
                             ctl_buf_str(&who)};
        ctl_table_row(&t, row);
    }
    ctl_table_print(&t);
    ctl_table_free(&t);
    ctl_buf_free(&pid);
    ctl_buf_free(&status);
    ctl_buf_free(&who);
    free(procs);
    return CTL_OK;
}

static const char *const proc_order[] = {"pid", "name", "status", "entry", "mailbox", "memory",
                                         "reductions", "links", "monitored_by", "trap_exit",
                                         "scheduler", NULL};

static int cmd_info(const ctl_opts *o, ctl_node *n)
{
    em_term who, v;
    int rc = ctl_arg_process(o->args[0], n->index, "info", &who);
    if (rc)
        return rc;
    if ((rc = ctl_call(n, o, "info", who, &v)) == CTL_FAILED)
        return node_error(n, "info", o->args[0], v);
    if (rc)
        return rc;
    if (o->json)
        print_json(v, n->index);
    else
        print_pairs(v, proc_order, n->index);
    return CTL_OK;
}

static int cmd_system(const ctl_opts *o, ctl_node *n)
{
    static const char *const order[] = {"node", "uptime_ms", "schedulers", "processes",
                                        "process_limit", "memory_total", "memory_processes",
                                        "messages_sent", NULL};
    em_term v;
    int rc = ctl_call(n, o, "system", EM_NIL, &v);
    if (rc == CTL_FAILED)
        return node_error(n, "system", "", v);
    if (rc)
        return rc;
    if (o->json)
        print_json(v, n->index);
    else
        print_pairs(v, order, n->index);
    return CTL_OK;
}

static int cmd_send(const ctl_opts *o, ctl_node *n)
{
    em_term dest, msg, v;
    int rc = ctl_arg_process(o->args[0], n->index, "send", &dest);
    if (rc || (rc = ctl_arg_term(o->args[1], n->index, "send TERM", &msg)) != 0)
        return rc;
    if ((rc = ctl_call(n, o, "send", EM_ARR(dest, msg), &v)) == CTL_FAILED)
        return node_error(n, "send", o->args[0], v);
    if (rc)
        return rc;
    ctl_buf to = {0};
    ctl_plain(&to, dest, n->index);
    if (o->json) {
        ctl_buf b = {0};
        ctl_buf_puts(&b, "{\"sent\": true, \"to\": ");
        ctl_json_str(&b, ctl_buf_str(&to), to.len);
        ctl_buf_puts(&b, "}");
        puts(ctl_buf_str(&b));
        ctl_buf_free(&b);
    } else {
        printf("sent to %s\n", ctl_buf_str(&to));
    }
    ctl_buf_free(&to);
    return CTL_OK;
}

static int cmd_spawn(const ctl_opts *o, ctl_node *n)
{
    em_term arg = EM_NIL, v;
    int rc = o->nargs == 3 ? ctl_arg_term(o->args[2], n->index, "spawn ARGS", &arg) : CTL_OK;
    if (rc)
        return rc;
    if ((rc = ctl_call(n, o, "spawn", EM_ARR(em_str(o->args[1]), arg), &v)) == CTL_FAILED)
        return node_error(n, "spawn", o->args[1], v);
    if (rc)
        return rc;
    ctl_buf pid = {0};
    ctl_plain(&pid, v, n->index);
    if (o->json) {
        ctl_buf b = {0};
        ctl_buf_puts(&b, "{\"pid\": ");
        ctl_json_str(&b, ctl_buf_str(&pid), pid.len);
        ctl_buf_puts(&b, ", \"node\": ");
        ctl_json_str(&b, n->name, strlen(n->name));
        ctl_buf_puts(&b, "}");
        puts(ctl_buf_str(&b));
        ctl_buf_free(&b);
    } else {
        puts(ctl_buf_str(&pid));
    }
    ctl_buf_free(&pid);
    return CTL_OK;
}

/* kill: the process must exist (the service's kill cannot tell: exit signals
 * to dead pids are not errors), and we wait until it is gone. */
static int cmd_kill(const ctl_opts *o, ctl_node *n)
{
    em_term who, info, v;
    int rc = ctl_arg_process(o->args[0], n->index, "kill", &who);
    if (rc)
        return rc;
    if ((rc = ctl_call(n, o, "info", who, &info)) == CTL_FAILED)
        return node_error(n, "kill", o->args[0], info);
    if (rc)
        return rc;
    if (em_is_atom(get(info, "name"), "ember_ctl"))
        return ctl_error(CTL_FAILED, "refused",
                         "kill: %s is the ember_ctl service this tool talks to; not killing it",
                         o->args[0]);
    em_term pid = get(info, "pid");
    if ((rc = ctl_call(n, o, "kill", pid, &v)) == CTL_FAILED)
        return node_error(n, "kill", o->args[0], v);
    if (rc)
        return rc;
    ctl_buf text = {0};
    ctl_plain(&text, pid, n->index);
    /* The exit signal is on its way; see it land. */
    double t0 = now_ms();
    for (;;) {
        em_mark mk = em_heap_mark();
        rc = ctl_call(n, o, "info", pid, &v);
        em_heap_release(mk);
        if (rc == CTL_FAILED)
            break;
        if (rc) {
            ctl_buf_free(&text);
            return rc;
        }
        if (now_ms() - t0 > (double)o->timeout_ms) {
            rc = ctl_error(CTL_FAILED, "still_alive", "kill: %s is still alive after %lld ms",
                           ctl_buf_str(&text), (long long)o->timeout_ms);
            ctl_buf_free(&text);
            return rc;
        }
        em_sleep(10);
    }
    if (o->json) {
        print_json_field("killed", ctl_buf_str(&text), text.len);
    } else {
        printf("killed %s\n", ctl_buf_str(&text));
    }
    ctl_buf_free(&text);
    return CTL_OK;
}

/* stop: the node is down once it no longer listens (a lost connection alone
 * would not prove it stopped), so we watch its port. We drop our connection
 * first, so that the node's goodbye does not reach us (see the race noted in
 * ember_ctl.c, which a goodbye read by our scheduler would hit). */
static int cmd_stop(const ctl_opts *o, ctl_node *n)
{
    em_term v;
    int watch = ctl_port_watch_open(n, o->timeout_ms);
    int rc = ctl_call(n, o, "stop", EM_NIL, &v);
    if (rc) {
        if (watch >= 0)
            ctl_port_watch_closed(watch, 0);
        return rc == CTL_FAILED ? node_error(n, "stop", "", v) : rc;
    }
    bool down;
    if (watch >= 0) {
        if (em_node_disconnect(n->atom) == 0)
            ctl_wait_down(n, 1000);
        down = ctl_port_watch_closed(watch, o->timeout_ms);
    } else {
        down = ctl_wait_down(n, o->timeout_ms);
    }
    if (!down)
        return ctl_error(CTL_FAILED, "still_up",
                         "stop: %s agreed to stop but is still up after %lld ms", n->name,
                         (long long)o->timeout_ms);
    if (o->json) {
        print_json_field("stopped", n->name, strlen(n->name));
    } else {
        printf("%s stopped\n", n->name);
    }
    return CTL_OK;
}

int ctl_run_command(const ctl_opts *o, ctl_node *n)
{
    static const struct {
        const char *name;
        int (*run)(const ctl_opts *, ctl_node *);
    } table[] = {
        {"ping", cmd_ping}, {"nodes", cmd_nodes}, {"ps", cmd_ps},     {"info", cmd_info},
        {"send", cmd_send}, {"spawn", cmd_spawn}, {"kill", cmd_kill}, {"stop", cmd_stop},
        {"system", cmd_system},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, o->command)) {
            int rc = table[i].run(o, n);
            fflush(stdout);
            return rc;
        }
    return ctl_error(CTL_USAGE, NULL, "unknown command \"%s\"", o->command);
}
