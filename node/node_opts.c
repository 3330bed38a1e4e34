/*
 * node_opts.c - ember-node's command line and --config file.
 *
 * One table describes every option: its flag, whether it takes a value, whether
 * a config file may set it, and its line of help. The command line and the
 * config file both go through it, so a key of the file is always spelled as its
 * flag, --help always lists every flag, and docs/ember-node.md is checked
 * against --help by a test.
 *
 * The file is read first and the flags after it: a flag overrides the file's
 * value, except for the options that may be repeated (load, run, connect,
 * discover-dns), whose values add up, the file's first.
 */
#include "node_opts.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Where a setting comes from: the file is read before the flags. */
enum { FROM_FILE = 1, FROM_ARGV = 2 };

typedef enum { ARG_NONE, ARG_ONE, ARG_RUN } arg_kind;

/* What a setter gets: the value (NULL for a flag without one), where it comes
 * from, and for --cookie the command line's own bytes, which it wipes. */
typedef int (*setter)(node_opts *o, const char *value, int from, char *raw);

typedef struct option {
    const char *name;    /* the flag without "--"; NULL: a heading of --help */
    const char *meta;    /* the value's name in --help */
    arg_kind arg;
    bool config;         /* a config file may set it */
    setter set;
    const char *help;    /* lines of help, '\n' between them */
} option;

static const char *where;   /* "--flag" or "FILE:LINE", for error messages */

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember-node: %s: ", where);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (ember-node --help lists the options)\n");
    va_end(ap);
    return NODE_EXIT_USAGE;
}

static int set_str(char **dst, const char *value)
{
    char *copy = strdup(value);
    if (!copy) {
        fprintf(stderr, "ember-node: out of memory\n");
        return NODE_EXIT_FAIL;
    }
    free(*dst);
    *dst = copy;
    return 0;
}

static int parse_int(const char *value, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (!*value || *end || errno || v < lo || v > hi)
        return usage_error("\"%s\" is not a number from %lld to %lld", value, (long long)lo,
                           (long long)hi);
    *out = v;
    return 0;
}

/* A switch: bare on the command line, true/false in a file. */
static int parse_bool(const char *value, bool *out)
{
    if (!value) {
        *out = true;
        return 0;
    }
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(value, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(value, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return usage_error("\"%s\" is not true or false", value);
}

static int list_add(char **list, size_t *n, const char *value)
{
    if (*n >= NODE_MAX_LIST)
        return usage_error("at most %d values", NODE_MAX_LIST);
    list[*n] = NULL;
    int rc = set_str(&list[*n], value);
    if (rc == 0)
        (*n)++;
    return rc;
}

/* ----------------------------------------------------------- the setters */

/* Which of --sname and --name the command line gave: not both. */
static bool name_short_from_argv, name_long_from_argv;

static int set_name_kind(node_opts *o, const char *value, int from, bool short_name)
{
    if (from == FROM_ARGV) {
        if ((short_name && name_long_from_argv) || (!short_name && name_short_from_argv))
            return usage_error("give --sname or --name, not both");
        if (short_name)
            name_short_from_argv = true;
        else
            name_long_from_argv = true;
    }
    if (!*value)
        return usage_error("the node's name is empty");
    o->short_name = short_name;
    return set_str(&o->name, value);
}

static int set_sname(node_opts *o, const char *v, int from, char *raw)
{
    (void)raw;
    return set_name_kind(o, v, from, true);
}

static int set_name(node_opts *o, const char *v, int from, char *raw)
{
    (void)raw;
    return set_name_kind(o, v, from, false);
}

static int set_listen(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return set_str(&o->listen, v);
}

static int set_hidden(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return parse_bool(v, &o->hidden);
}

static int set_tick(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    int64_t n;
    int rc = parse_int(v, 1, UINT32_MAX, &n);
    if (rc == 0)
        o->tick_ms = (uint32_t)n;
    return rc;
}

static int set_busy_wait(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    int64_t n;
    int rc = parse_int(v, 0, 1000000, &n);
    if (rc == 0)
        o->busy_wait_us = (int)n;
    return rc;
}

/* The secret: one kind per source; the flags' replaces the file's. */
static int set_secret(node_opts *o, enum node_secret kind, const char *v, int from)
{
    if (o->secret != SECRET_DEFAULT && o->secret_source == from && o->secret != kind)
        return usage_error("give one of --cookie, --cookie-file and --keyring");
    if (!*v)
        return usage_error("an empty value");
    o->secret = kind;
    o->secret_source = from;
    char **dst = kind == SECRET_COOKIE ? &o->cookie
               : kind == SECRET_COOKIE_FILE ? &o->cookie_file : &o->keyring;
    return set_str(dst, v);
}

static int set_cookie(node_opts *o, const char *v, int from, char *raw)
{
    int rc = set_secret(o, SECRET_COOKIE, v, from);
    /* Wipe the command line's copy at once: /proc/PID/cmdline (what ps shows)
     * reads these very bytes. */
    if (raw)
        memset(raw, 'x', strlen(raw));
    return rc;
}

static int set_cookie_file(node_opts *o, const char *v, int from, char *raw)
{
    (void)raw;
    return set_secret(o, SECRET_COOKIE_FILE, v, from);
}

static int set_keyring(node_opts *o, const char *v, int from, char *raw)
{
    (void)raw;
    return set_secret(o, SECRET_KEYRING, v, from);
}

static int set_epmd_port(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    int64_t n;
    int rc = parse_int(v, 1, 65535, &n);
    if (rc == 0)
        o->epmd_port = (uint16_t)n;
    return rc;
}

static int set_no_epmd(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return parse_bool(v, &o->no_epmd);
}

static int set_load(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    if (!*v)
        return usage_error("an empty module");
    return list_add(o->loads, &o->nloads, v);
}

static int set_module_path(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return set_str(&o->module_path, v);
}

/* "module:function", each part a name (the module's loader checks the rest). */
static bool valid_fn_name(const char *s)
{
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || !colon[1] || strchr(colon + 1, ':'))
        return false;
    for (const char *p = s; *p; p++)
        if (p != colon && !isalnum((unsigned char)*p) && *p != '_')
            return false;
    return true;
}

/* v is "module:function" or, from a file, "module:function ARG". */
static int set_run(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    if (o->nruns >= NODE_MAX_LIST)
        return usage_error("at most %d values", NODE_MAX_LIST);
    size_t fl = strcspn(v, " \t");
    const char *arg = v + fl;
    while (*arg == ' ' || *arg == '\t')
        arg++;
    node_run *r = &o->runs[o->nruns];
    r->fn = strndup(v, fl);
    r->arg = *arg ? strdup(arg) : NULL;
    if (!r->fn || (*arg && !r->arg)) {
        free(r->fn);
        free(r->arg);
        fprintf(stderr, "ember-node: out of memory\n");
        return NODE_EXIT_FAIL;
    }
    o->nruns++;
    if (!valid_fn_name(r->fn))
        return usage_error("\"%s\" is not module:function", r->fn);
    return 0;
}

static int set_run_arg(node_opts *o, const char *arg)
{
    node_run *r = &o->runs[o->nruns - 1];
    return set_str(&r->arg, arg);
}

static int set_exit_with_run(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return parse_bool(v, &o->exit_with_run);
}

static int set_shutdown(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    if (strcmp(v, "infinity") == 0) {
        o->shutdown_ms = -1;
        return 0;
    }
    return parse_int(v, 0, INT32_MAX, &o->shutdown_ms);
}

/* --connect a@h,b@h:9101: each node a seed of its own. */
static int set_connect(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    const char *p = v;
    while (*p) {
        size_t n = strcspn(p, ", \t");
        if (n) {
            char one[512];
            if (n >= sizeof one)
                return usage_error("a node name longer than 255 bytes");
            memcpy(one, p, n);
            one[n] = 0;
            if (!strchr(one, '@'))
                return usage_error("\"%s\" is not name@host or name@host:port", one);
            int rc = list_add(o->seeds, &o->nseeds, one);
            if (rc)
                return rc;
        }
        p += n;
        p += strspn(p, ", \t");
    }
    return 0;
}

static int set_dns(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    const char *colon = strrchr(v, ':');
    if (!*v || colon == v)
        return usage_error("expected NAME or NAME:EPMDPORT");
    if (colon) {
        int64_t port;
        int rc = parse_int(colon + 1, 1, 65535, &port);
        if (rc)
            return rc;
    }
    return list_add(o->dns, &o->ndns, v);
}

static int set_interval(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return parse_int(v, 0, INT32_MAX, &o->discover_interval_ms);
}

static int set_detached(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return parse_bool(v, &o->detached);
}

static int set_log_file(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return set_str(&o->log_file, v);
}

static int set_log_level(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    int64_t n;
    int rc = parse_int(v, 0, 3, &n);
    if (rc == 0)
        o->log_level = (int)n;
    return rc;
}

static int set_schedulers(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    int64_t n;
    int rc = parse_int(v, 0, 1024, &n);
    if (rc == 0)
        o->schedulers = (int)n;
    return rc;
}

static int set_config(node_opts *o, const char *v, int from, char *raw)
{
    (void)from, (void)raw;
    return set_str(&o->config, v);
}

static int set_print(node_opts *o, const char *v, int from, char *raw)
{
    (void)v, (void)from, (void)raw;
    o->print_config = true;
    return 0;
}

static int set_help(node_opts *o, const char *v, int from, char *raw)
{
    (void)v, (void)from, (void)raw;
    o->help = true;
    return 0;
}

/* ------------------------------------------------------------ the table */

static const option options[] = {
    {NULL, NULL, ARG_NONE, false, NULL, "The node:"},
    {"sname", "NAME", ARG_ONE, true, set_sname,
     "the node is NAME@<this host's short name> (or give\n"
     "NAME@HOST)"},
    {"name", "NAME", ARG_ONE, true, set_name,
     "the node is NAME@<this host's full name> (or give\n"
     "NAME@HOST, HOST an address or a name that resolves on\n"
     "every machine)"},
    {"listen", "ADDR", ARG_ONE, true, set_listen,
     "listen on host:port (default: a free port, on 127.0.0.1\n"
     "for a loopback host, else on every address)"},
    {"hidden", NULL, ARG_NONE, true, set_hidden,
     "a hidden node: connects only where asked, not passed on\n"
     "to the mesh"},
    {"tick-ms", "MS", ARG_ONE, true, set_tick,
     "a silent peer is down after MS milliseconds (default\n"
     "10000)"},
    {"busy-wait-us", "US", ARG_ONE, true, set_busy_wait,
     "after input from a peer, keep polling the network US\n"
     "microseconds before sleeping, yielding the core to any\n"
     "thread that wants it (default 1000; 0 off)"},
    {NULL, NULL, ARG_NONE, false, NULL,
     "Trust (one of; default $EMBER_COOKIE, else ~/.ember/cookie):"},
    {"cookie-file", "FILE", ARG_ONE, true, set_cookie_file, "read the cookie from FILE"},
    {"cookie", "VALUE", ARG_ONE, true, set_cookie,
     "the cookie itself; ember-node overwrites it in its\n"
     "command line at once, but ps may catch it before:\n"
     "prefer --cookie-file or $EMBER_COOKIE"},
    {"keyring", "DIR", ARG_ONE, true, set_keyring,
     "keyring mode: DIR holds this node's key, key.pub and\n"
     "peers"},
    {NULL, NULL, ARG_NONE, false, NULL, "Port mapper:"},
    {"epmd-port", "PORT", ARG_ONE, true, set_epmd_port,
     "the port mapper's port (default $ERL_EPMD_PORT, else\n"
     "4369); one is started (ember-epmd -daemon) when none\n"
     "answers there"},
    {"no-epmd", NULL, ARG_NONE, true, set_no_epmd,
     "neither register with a port mapper nor start one\n"
     "(peers then need name@host:port)"},
    {NULL, NULL, ARG_NONE, false, NULL, "Code:"},
    {"load", "MODULE", ARG_ONE, true, set_load,
     "load a module: a path to a .so, or a name looked up as\n"
     "libNAME.so or NAME.so in the module path; repeatable"},
    {"module-path", "DIRS", ARG_ONE, true, set_module_path,
     "colon-separated directories to look for modules in,\n"
     "before $EMBER_MODULE_PATH and the lib/ and modules/\n"
     "beside ember-node's bin/"},
    {"run", "MOD:FUN [ARG]", ARG_RUN, true, set_run,
     "spawn MOD:FUN(ARG) linked to the node once it is up;\n"
     "ARG is one term in ember's text form (default nil);\n"
     "repeatable, started in order and stopped in reverse\n"
     "order"},
    {"exit-with-run", NULL, ARG_NONE, true, set_exit_with_run,
     "stop the node when a --run process ends (exit status 0\n"
     "if it ended normally, else 1); without it the node\n"
     "keeps running"},
    {"shutdown-ms", "MS", ARG_ONE, true, set_shutdown,
     "at shutdown, how long each --run process (a supervisor:\n"
     "its whole tree) may take to stop before it is killed\n"
     "(default 30000; infinity)"},
    {NULL, NULL, ARG_NONE, false, NULL, "Cluster:"},
    {"connect", "NODES", ARG_ONE, true, set_connect,
     "comma-separated seeds, name@host (through host's port\n"
     "mapper) or name@host:port; tried in the background\n"
     "until one answers, and joining one member joins the\n"
     "cluster; repeatable"},
    {"discover-dns", "NAME[:EPMDPORT]", ARG_ONE, true, set_dns,
     "connect to every node registered with the port mapper\n"
     "(at EPMDPORT, default --epmd-port) of every IPv4\n"
     "address NAME resolves to, as shortname@address;\n"
     "repeatable"},
    {"discover-interval", "MS", ARG_ONE, true, set_interval,
     "look up the --discover-dns names again, and check that\n"
     "the mesh is complete, every MS milliseconds (default\n"
     "5000; 0: look once, and no check)"},
    {NULL, NULL, ARG_NONE, false, NULL, "Running:"},
    {"detached", NULL, ARG_NONE, true, set_detached,
     "run in the background; print the node's name, port and\n"
     "pid once it is up, and exit 0 (1 if it could not start)"},
    {"log-file", "FILE", ARG_ONE, true, set_log_file,
     "append the log to FILE (with --detached the default is\n"
     "/dev/null)"},
    {"log-level", "N", ARG_ONE, true, set_log_level,
     "0 quiet, 1 errors, 2 events (default), 3 debug"},
    {"schedulers", "N", ARG_ONE, true, set_schedulers,
     "scheduler threads (default 0: one per core)"},
    {"config", "FILE", ARG_ONE, false, set_config,
     "read settings from FILE: \"key = value\" lines, keys\n"
     "spelled as these flags without the dashes, switches set\n"
     "with true or false, '#' starts a comment line; flags\n"
     "override it"},
    {"print-config", NULL, ARG_NONE, false, set_print,
     "print the settings (never the secret) and exit"},
    {"help", NULL, ARG_NONE, false, set_help, "print this help and exit"},
};
#define NOPTIONS (sizeof options / sizeof options[0])

static const option *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (options[i].name && strlen(options[i].name) == len &&
            memcmp(options[i].name, name, len) == 0)
            return &options[i];
    return NULL;
}

void node_opts_help(FILE *out)
{
    fprintf(out,
            "usage: ember-node (--sname NAME | --name NAME[@HOST]) [options]\n"
            "       ember-node --config FILE [options]\n"
            "\n"
            "Runs one ember node: registers it with this host's port mapper (starting\n"
            "ember-epmd if none runs), loads modules, spawns --run functions, joins the\n"
            "cluster through seeds or DNS, and logs one line per event to stderr. SIGTERM,\n"
            "SIGINT or ember-ctl's stop shut it down in order: --run processes (and the\n"
            "trees under supervisors) stop in reverse order, peers are told, exit 0.\n");
    for (size_t i = 0; i < NOPTIONS; i++) {
        const option *op = &options[i];
        if (!op->name) {
            fprintf(out, "\n%s\n", op->help);
            continue;
        }
        char flag[64];
        snprintf(flag, sizeof flag, "--%s%s%s", op->name, op->meta ? " " : "",
                 op->meta ? op->meta : "");
        const char *h = op->help;
        bool first = true;
        while (*h) {
            size_t n = strcspn(h, "\n");
            if (first && strlen(flag) <= 22)
                fprintf(out, "  %-22s %.*s\n", flag, (int)n, h);
            else if (first)
                fprintf(out, "  %s\n  %-22s %.*s\n", flag, "", (int)n, h);
            else
                fprintf(out, "  %-22s %.*s\n", "", (int)n, h);
            first = false;
            h += n;
            if (*h == '\n')
                h++;
        }
    }
    fprintf(out, "\nExit status: 0 after an orderly stop, 1 when the node cannot start or stops\n"
                 "on an error, 2 for a bad command line or config file.\n");
}

/* ------------------------------------------------------------ the file */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = 0;
    return s;
}

static int read_config(node_opts *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ember-node: cannot read the config file %s: %s\n", path, strerror(errno));
        return NODE_EXIT_USAGE;
    }
    char line[4096], at[600];
    int rc = 0;
    for (int lineno = 1; rc == 0 && fgets(line, sizeof line, f); lineno++) {
        snprintf(at, sizeof at, "%.500s:%d", path, lineno);
        where = at;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = usage_error("a line longer than %zu bytes", sizeof line - 2);
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = usage_error("expected \"key = value\"");
            break;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        const option *op = find_option(key, strlen(key));
        if (!op)
            rc = usage_error("unknown key \"%s\"", key);
        else if (!op->config)
            rc = usage_error("\"%s\" cannot be set in a config file", key);
        else if (!*value && op->arg != ARG_NONE)
            rc = usage_error("\"%s\" needs a value", key);
        else
            rc = op->set(o, value, FROM_FILE, NULL);   /* a switch: "" is not true or false */
    }
    fclose(f);
    return rc;
}

/* ------------------------------------------------------- the command line */

void node_opts_init(node_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tick_ms = 10000;
    o->busy_wait_us = 1000;
    o->log_level = 2;
    o->shutdown_ms = 30000;
    o->discover_interval_ms = 5000;
}

void node_opts_free(node_opts *o)
{
    free(o->name);
    free(o->node);
    free(o->listen);
    if (o->cookie)
        memset(o->cookie, 0, strlen(o->cookie));
    free(o->cookie);
    free(o->cookie_file);
    free(o->keyring);
    for (size_t i = 0; i < o->nloads; i++)
        free(o->loads[i]);
    free(o->module_path);
    for (size_t i = 0; i < o->nruns; i++) {
        free(o->runs[i].fn);
        free(o->runs[i].arg);
    }
    for (size_t i = 0; i < o->nseeds; i++)
        free(o->seeds[i]);
    for (size_t i = 0; i < o->ndns; i++)
        free(o->dns[i]);
    free(o->log_file);
    free(o->config);
    node_opts_init(o);
}

/* The flag at argv[i] ("--name", "--name=value"); *i moves past what it took. */
static int one_flag(node_opts *o, int argc, char **argv, int *i)
{
    char *arg = argv[*i];
    static char flagname[128];
    if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
        where = arg;
        return usage_error("unexpected argument");
    }
    char *name = arg + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    snprintf(flagname, sizeof flagname, "--%.*s", (int)(len < 100 ? len : 100), name);
    where = flagname;
    const option *op = find_option(name, len);
    if (!op)
        return usage_error("unknown flag");
    if (op->arg == ARG_NONE) {
        if (eq)
            return usage_error("takes no value");
        (*i)++;
        return op->set(o, NULL, FROM_ARGV, NULL);
    }
    char *value;
    if (eq) {
        value = eq + 1;
        (*i)++;
    } else {
        if (*i + 1 >= argc)
            return usage_error("needs a value (%s)", op->meta);
        value = argv[*i + 1];
        *i += 2;
    }
    int rc = op->set(o, value, FROM_ARGV, value);
    /* --run's argument: the next word, unless it is a flag. */
    if (rc == 0 && op->arg == ARG_RUN && *i < argc && strncmp(argv[*i], "--", 2) != 0) {
        rc = set_run_arg(o, argv[*i]);
        (*i)++;
    }
    return rc;
}

int node_opts_parse(node_opts *o, int argc, char **argv)
{
    /* --config first: the file's settings come before every flag's. --help
     * wins over everything, so that a broken command line can still ask. */
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            o->help = true;
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
    }
    name_short_from_argv = name_long_from_argv = false;
    int rc = 0;
    if (config)
        rc = read_config(o, config);
    for (int i = 1; rc == 0 && i < argc;)
        rc = one_flag(o, argc, argv, &i);
    if (rc)
        return rc;
    where = "the environment";
    const char *env = getenv("EMBER_COOKIE");
    if (o->secret == SECRET_DEFAULT && env && *env) {
        if ((rc = set_str(&o->cookie, env)) != 0)
            return rc;
        o->secret = SECRET_COOKIE;
        o->cookie_from_env = true;
    }
    /* Programs the node starts (ember-epmd) have no use for it, and the bytes
     * themselves are overwritten: /proc/PID/environ shows the process's
     * original environment block, whatever unsetenv does to the pointers. */
    char *raw = getenv("EMBER_COOKIE");
    if (raw)
        memset(raw, 'x', strlen(raw));
    unsetenv("EMBER_COOKIE");
    if (o->help || o->print_config)
        return 0;
    where = "the command line";
    if (!o->name)
        return usage_error("a node needs a name: --sname NAME or --name NAME@HOST");
    if (o->log_file && !*o->log_file)
        return usage_error("--log-file is empty");
    return 0;
}
