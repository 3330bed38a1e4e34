/*
 * epmd_args.c - parsing ember-epmd's command line (see epmd_args.h). Flags are
 * spelled as Erlang's epmd spells them, with one dash, so that scripts written
 * for one work with the other.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_args.h"
#include "epmd_wire.h"

const char emi_epmd_help[] =
    "usage: ember-epmd [-d|-debug]... [-port No] [-address List] [-relaxed_command_check]\n"
    "                  [-packet_timeout Seconds] [-max_names N] [-daemon]\n"
    "       ember-epmd [-port No] -names | -kill | -stop Name\n"
    "       ember-epmd -h | -help | --help\n"
    "\n"
    "A port mapper that speaks Erlang/OTP's EPMD protocol: nodes register their name\n"
    "and distribution port with it, and peers look them up by name.\n"
    "\n"
    "Daemon flags:\n"
    "  -port No                 listen on TCP port No (default $ERL_EPMD_PORT, else 4369)\n"
    "  -address List            listen only on the comma-separated IP addresses and on\n"
    "                           loopback (default $ERL_EPMD_ADDRESS, else every address)\n"
    "  -relaxed_command_check   let -kill stop the daemon while names are registered, and\n"
    "                           allow -stop (also set by $ERL_EPMD_RELAXED_COMMAND_CHECK)\n"
    "  -daemon                  detach once listening, and log to syslog\n"
    "  -d, -debug               log more: once for every request, twice for every\n"
    "                           connection too\n"
    "  -packet_timeout Seconds  close a connection that has not sent a complete request,\n"
    "                           or read its reply, after Seconds (default 60)\n"
    "  -max_names N             register at most N names at a time (default 1024)\n"
    "\n"
    "Client flags (talk to the daemon on 127.0.0.1 at -port):\n"
    "  -names                   list the registered names\n"
    "  -kill                    stop the daemon (refused while names are registered,\n"
    "                           unless it runs with -relaxed_command_check)\n"
    "  -stop Name               unregister Name (only with -relaxed_command_check)\n"
    "  -h, -help, --help        print this help\n"
    "\n"
    "Exit status: 0 on success, 1 on failure, 2 for a bad command line.\n";

/* Parses a decimal number in [lo, hi]; false if s is anything else. */
static bool number(const char *s, long lo, long hi, long *v)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

static int fail(char *err, size_t cap, const char *fmt, const char *what)
{
    snprintf(err, cap, fmt, what);
    return -EINVAL;
}

int emi_epmd_parse_args(int argc, char **argv, emi_epmd_args *a, char *err, size_t errcap)
{
    memset(a, 0, sizeof *a);
    a->mode = EMI_EPMD_SERVE;
    a->port = EMI_EPMD_DEFAULT_PORT;
    a->packet_timeout_s = 60;
    a->max_names = 1024;
    long v;
    const char *env = getenv("ERL_EPMD_ADDRESS");
    if (env && *env)
        a->addresses = env;
    if (getenv("ERL_EPMD_RELAXED_COMMAND_CHECK"))
        a->relaxed = true;

    int client_modes = 0;
    bool port_given = false;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "-h") || !strcmp(f, "-help") || !strcmp(f, "--help")) {
            a->mode = EMI_EPMD_HELP;
            return 0;
        } else if (!strcmp(f, "-d") || !strcmp(f, "-debug")) {
            a->debug++;
        } else if (!strcmp(f, "-daemon")) {
            a->daemon = true;
        } else if (!strcmp(f, "-relaxed_command_check")) {
            a->relaxed = true;
        } else if (!strcmp(f, "-names")) {
            a->mode = EMI_EPMD_NAMES;
            client_modes++;
        } else if (!strcmp(f, "-kill")) {
            a->mode = EMI_EPMD_KILL;
            client_modes++;
        } else if (!strcmp(f, "-stop")) {
            if (!next || !*next)
                return fail(err, errcap, "%s needs a node name", f);
            a->mode = EMI_EPMD_STOP;
            a->stop_name = next;
            client_modes++;
            i++;
        } else if (!strcmp(f, "-port")) {
            if (!number(next, 1, 65535, &v))
                return fail(err, errcap, "-port needs a port number (1-65535), got '%s'",
                            next ? next : "");
            a->port = (uint16_t)v;
            port_given = true;
            i++;
        } else if (!strcmp(f, "-address")) {
            if (!next)
                return fail(err, errcap, "%s needs a comma-separated list of IP addresses", f);
            a->addresses = next;
            i++;
        } else if (!strcmp(f, "-packet_timeout")) {
            if (!number(next, 1, 86400, &v))
                return fail(err, errcap, "-packet_timeout needs seconds (1-86400), got '%s'",
                            next ? next : "");
            a->packet_timeout_s = (int)v;
            i++;
        } else if (!strcmp(f, "-max_names")) {
            if (!number(next, 1, 1000000, &v))
                return fail(err, errcap, "-max_names needs a count (1-1000000), got '%s'",
                            next ? next : "");
            a->max_names = (size_t)v;
            i++;
        } else {
            return fail(err, errcap, "unknown flag '%s'", f);
        }
    }
    /* The flag wins over the environment, as with Erlang's epmd. */
    env = getenv("ERL_EPMD_PORT");
    if (!port_given && env && *env) {
        if (!number(env, 1, 65535, &v))
            return fail(err, errcap, "ERL_EPMD_PORT is not a port number: '%s'", env);
        a->port = (uint16_t)v;
    }
    if (client_modes > 1)
        return fail(err, errcap, "%s", "-names, -kill and -stop exclude each other");
    if (client_modes && a->daemon)
        return fail(err, errcap, "%s",
                    "-daemon starts a daemon; -names, -kill and -stop talk to one");
    return 0;
}
