/*
 * ctl_args.c - ember-ctl's command line: flags, commands, and the help text.
 *
 * Flags may come before or after the command (`ember-ctl ps --node a@h` works
 * as well as `ember-ctl --node a@h ps`), as `--flag VALUE` or `--flag=VALUE`.
 * Only words that start with "--", and -h and -v, are flags: a TERM such as -5
 * stays an argument. "--" ends the flags.
 */
#include "ctl_args.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_out.h"

/* The commands, with how many arguments each takes. */
static const struct command {
    const char *name;
    int min_args, max_args;
    const char *args;   /* for the error message */
} commands[] = {
    {"ping", 0, 0, ""},
    {"nodes", 0, 0, ""},
    {"ps", 0, 0, ""},
    {"info", 1, 1, " PID|NAME"},
    {"send", 2, 2, " DEST TERM"},
    {"spawn", 2, 3, " NODE MODULE:FUNCTION [ARGS]"},
    {"kill", 1, 1, " PID|NAME"},
    {"stop", 0, 0, ""},
    {"system", 0, 0, ""},
    {"epmd-names", 0, 1, " [HOST]"},
};

static const char help_text[] =
    "usage: ember-ctl [OPTIONS] --node NAME@HOST[:PORT] COMMAND [ARGS]\n"
    "       ember-ctl [OPTIONS] spawn NODE MODULE:FUNCTION [ARGS]\n"
    "       ember-ctl [--epmd-port PORT] [--json] epmd-names [HOST]\n"
    "       ember-ctl -h | --help\n"
    "\n"
    "An operator's tool for ember nodes: a hidden node that asks the ember_ctl\n"
    "service of a node about its processes, sends to them, spawns and kills them,\n"
    "and stops the node.\n"
    "\n"
    "Commands:\n"
    "  ping                  check that the node answers: prints pong and its name\n"
    "  nodes                 the nodes it is connected to, visible and hidden\n"
    "  ps                    its processes: pid, status, mailbox, memory,\n"
    "                        reductions, registered name or entry function\n"
    "  info PID|NAME         everything the node tells about one process\n"
    "  send DEST TERM        send TERM (ember's text form, e.g. '[hello, 42]')\n"
    "                        to a pid or a registered name\n"
    "  spawn NODE M:F [ARGS] spawn the function NODE registered as M:F with the\n"
    "                        term ARGS (default nil); prints the new pid\n"
    "  kill PID|NAME         end a process (exit reason kill); waits until it is gone\n"
    "  stop                  stop the node and wait until it is down\n"
    "  system                the node's figures: processes, memory, uptime, traffic\n"
    "  epmd-names [HOST]     the names registered with the port mapper of HOST\n"
    "                        (default 127.0.0.1); needs no --node\n"
    "\n"
    "Options:\n"
    "  --node NAME@HOST[:PORT]  the node to talk to; without a port, the port\n"
    "                        mapper of HOST says where it listens\n"
    "  --cookie VALUE        the cookie (wiped from the command line ps shows)\n"
    "  --cookie-file FILE    read the cookie from FILE\n"
    "  --keyring DIR         keyring mode: our key pair and peers file are in DIR\n"
    "  --name NAME@HOST      our own node name (default ctl-PID@HOST, HOST being\n"
    "                        the address the node can reach us at; in keyring\n"
    "                        mode, the name DIR/peers lists for DIR/key.pub)\n"
    "  --epmd-port PORT      the port mappers' port (default $ERL_EPMD_PORT, else\n"
    "                        4369)\n"
    "  --timeout MS          how long to wait to connect, and for each answer\n"
    "                        (default 5000)\n"
    "  --sort KEY            ps: by memory, reductions or mailbox (largest first),\n"
    "                        or by pid (the default)\n"
    "  --json                print JSON instead of tables\n"
    "  -v, --verbose         print the library's connection log on stderr\n"
    "  -h, --help            print this help\n"
    "\n"
    "Without --cookie or --cookie-file, the cookie is $EMBER_COOKIE, else the file\n"
    "~/.ember/cookie. Pids are written as the node itself prints them: <0.I.S>\n"
    "(<I.S> is read the same way).\n"
    "\n"
    "Exit status:\n"
    "  0  the command succeeded\n"
    "  1  the node answered with an error (no such process, no such function, ...)\n"
    "  2  a bad command line, or a cookie or keyring that cannot be read\n"
    "  3  the node cannot be reached: no port mapper, no such name registered,\n"
    "     nothing listening, or no answer in time\n"
    "  4  the node refused us: the cookie (or key) does not match\n"
    "  5  ember-ctl itself could not start\n";

void ctl_print_help(void) { fputs(help_text, stdout); }

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

bool ctl_command_needs_node(const char *command) { return strcmp(command, "epmd-names") != 0; }

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ctl_error(CTL_USAGE, NULL, "%s (try ember-ctl --help)", msg);
}

/* A decimal number in [lo, hi]. */
static bool number(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* "name@host" with both parts non-empty, optionally ":port" when allowed. */
static bool node_spec_ok(const char *s, bool port_allowed)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@') || strlen(s) > CTL_NAME_MAX)
        return false;
    const char *colon = strchr(at + 1, ':');
    if (!colon)
        return true;
    long port;
    return port_allowed && colon > at + 1 && number(colon + 1, 1, 65535, &port);
}

/* Which value-taking flag this is; NULL for none. */
static const char **value_slot(ctl_opts *o, const char *flag, const char **raw_port,
                               const char **raw_timeout)
{
    if (!strcmp(flag, "--node"))
        return &o->node;
    if (!strcmp(flag, "--name"))
        return &o->self_name;
    if (!strcmp(flag, "--cookie"))
        return &o->cookie;
    if (!strcmp(flag, "--cookie-file"))
        return &o->cookie_file;
    if (!strcmp(flag, "--keyring"))
        return &o->keyring;
    if (!strcmp(flag, "--sort"))
        return &o->sort;
    if (!strcmp(flag, "--epmd-port"))
        return raw_port;
    if (!strcmp(flag, "--timeout"))
        return raw_timeout;
    return NULL;
}

/* A copy of the cookie that outlives the wiped argv. */
static char cookie_copy[1024];

static int keep_cookie(ctl_opts *o, char *value)
{
    size_t len = strlen(value);
    if (len == 0 || len >= sizeof cookie_copy)
        return usage("--cookie needs a value of 1 to %zu bytes", sizeof cookie_copy - 1);
    memcpy(cookie_copy, value, len + 1);
    memset(value, 0, len);   /* what /proc/PID/cmdline (ps) shows */
    o->cookie = cookie_copy;
    return CTL_OK;
}

/* The checks that need every flag: conflicts, and what each command needs. */
static int check(ctl_opts *o, const char *raw_port, const char *raw_timeout)
{
    long v;
    if (raw_port) {
        if (!number(raw_port, 1, 65535, &v))
            return usage("--epmd-port: \"%s\" is not a port number (1 to 65535)", raw_port);
        o->epmd_port = (uint16_t)v;
    }
    if (raw_timeout) {
        if (!number(raw_timeout, 1, 86400000, &v))
            return usage("--timeout: \"%s\" is not a number of milliseconds (1 to 86400000)",
                         raw_timeout);
        o->timeout_ms = v;
    }
    if (o->help)
        return CTL_OK;
    if (o->cookie && o->cookie_file)
        return usage("give either --cookie or --cookie-file");
    if (o->keyring && (o->cookie || o->cookie_file))
        return usage("--keyring cannot go with --cookie or --cookie-file");
    if (o->node && !node_spec_ok(o->node, true))
        return usage("--node: \"%s\" is not NAME@HOST or NAME@HOST:PORT", o->node);
    if (o->self_name && !node_spec_ok(o->self_name, false))
        return usage("--name: \"%s\" is not NAME@HOST", o->self_name);
    if (!o->command)
        return usage("no command given");
    const struct command *c = find_command(o->command);
    if (!c)
        return usage("unknown command \"%s\"", o->command);
    if (o->nargs < c->min_args || o->nargs > c->max_args) {
        return usage("usage: ember-ctl %s%s", c->name, c->args);
    }
    if (o->sort && strcmp(c->name, "ps") != 0)
        return usage("--sort applies to ps only, not to %s", c->name);
    if (o->sort && strcmp(o->sort, "memory") && strcmp(o->sort, "reductions") &&
        strcmp(o->sort, "mailbox") && strcmp(o->sort, "pid"))
        return usage("--sort: \"%s\" is not memory, reductions, mailbox or pid", o->sort);
    if (!strcmp(c->name, "spawn")) {
        if (!node_spec_ok(o->args[0], true))
            return usage("spawn: \"%s\" is not NAME@HOST or NAME@HOST:PORT", o->args[0]);
        if (!o->args[1][0] || strlen(o->args[1]) > 255)
            return usage("spawn: \"%s\" is not a function name such as demo:echo", o->args[1]);
    } else if (ctl_command_needs_node(c->name) && !o->node) {
        return usage("%s needs --node NAME@HOST[:PORT]", c->name);
    }
    return CTL_OK;
}

int ctl_parse_args(int argc, char **argv, ctl_opts *o)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    /* --json first, so that even a usage error is reported as JSON. */
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (!strcmp(argv[i], "--json"))
            ctl_error_json(o->json = true);
    static char *positional[64];
    int np = 0;
    const char *raw_port = NULL, *raw_timeout = NULL;
    bool flags_done = false;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        bool is_flag = !flags_done && (strncmp(a, "--", 2) == 0 || !strcmp(a, "-h") || !strcmp(a, "-v"));
        if (!is_flag) {
            if (np == (int)(sizeof positional / sizeof positional[0]))
                return usage("too many arguments (from \"%s\" on)", a);
            positional[np++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            flags_done = true;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            o->help = true;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = true;
        } else if (!strcmp(a, "--json")) {
            o->json = true;
        } else {
            char flag[32];
            char *eq = strchr(a, '=');
            size_t fl = eq ? (size_t)(eq - a) : strlen(a);
            snprintf(flag, sizeof flag, "%.*s", (int)(fl < sizeof flag ? fl : sizeof flag - 1), a);
            const char **slot = value_slot(o, flag, &raw_port, &raw_timeout);
            if (!slot || fl >= sizeof flag)
                return usage("unknown flag \"%s\"", a);
            char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
            if (!value)
                return usage("%s needs a value", flag);
            if (!strcmp(flag, "--cookie")) {
                int rc = keep_cookie(o, value);
                if (rc)
                    return rc;
            } else {
                *slot = value;
            }
        }
    }
    if (np > 0) {
        o->command = positional[0];
        o->args = positional + 1;
        o->nargs = np - 1;
    }
    return check(o, raw_port, raw_timeout);
}
