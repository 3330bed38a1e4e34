/*
 * node_opts.h - ember-node's settings, and how they are read from the command
 * line and from a --config file (one table of options serves both, and --help).
 */
#ifndef EMBER_NODE_OPTS_H
#define EMBER_NODE_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses: what scripts and init systems can tell apart. */
#define NODE_EXIT_OK 0
#define NODE_EXIT_FAIL 1    /* the node could not start, or stopped on an error */
#define NODE_EXIT_USAGE 2   /* a bad command line or config file */

/* The most values a repeatable option (load, run, connect, discover-dns) takes. */
#define NODE_MAX_LIST 64

/* Where the secret comes from. */
enum node_secret { SECRET_DEFAULT = 0, SECRET_COOKIE, SECRET_COOKIE_FILE, SECRET_KEYRING };

typedef struct node_run {
    char *fn;     /* "module:function" */
    char *arg;    /* the argument's text form, or NULL for nil */
} node_run;

typedef struct node_opts {
    char *name;            /* as given to --sname / --name (maybe without a host) */
    bool short_name;       /* --sname: the host part is this host's short name */
    char *node;            /* the full node name, "name@host", once resolved */
    char *listen;
    bool hidden;
    uint32_t tick_ms;
    int busy_wait_us;      /* em_dist_config's busy_wait_us */
    enum node_secret secret;
    char *cookie;          /* a copy: the command line's is wiped */
    char *cookie_file;
    char *keyring;
    int secret_source;     /* 1 file, 2 command line: two kinds from one source are an error */
    bool cookie_from_env;  /* the cookie came from $EMBER_COOKIE */
    uint16_t epmd_port;    /* 0: $ERL_EPMD_PORT, else 4369 */
    bool no_epmd;
    char *loads[NODE_MAX_LIST];
    size_t nloads;
    char *module_path;
    node_run runs[NODE_MAX_LIST];
    size_t nruns;
    bool exit_with_run;
    int64_t shutdown_ms;
    char *seeds[NODE_MAX_LIST];    /* one node each: --connect a,b is split */
    size_t nseeds;
    char *dns[NODE_MAX_LIST];      /* NAME[:EPMDPORT] */
    size_t ndns;
    int64_t discover_interval_ms;
    bool detached;
    char *log_file;
    int log_level;
    int schedulers;
    char *config;          /* the --config file read, for --print-config */
    bool print_config;
    bool help;
} node_opts;

/* node_opts_init fills o with the defaults. */
void node_opts_init(node_opts *o);
/* node_opts_free frees what parsing allocated. */
void node_opts_free(node_opts *o);

/* node_opts_parse reads the command line (and the --config file it names, whose
 * settings the flags override) into o. It wipes the value of --cookie in argv
 * so that ps does not show it, and takes $EMBER_COOKIE (removing it from the
 * environment, so that programs the node starts do not inherit it) when no
 * other secret is given. On a bad command line or config file it prints one
 * line to stderr and returns NODE_EXIT_USAGE; else 0. */
int node_opts_parse(node_opts *o, int argc, char **argv);

/* node_opts_resolve_name turns the given name into "name@host" (the host from
 * gethostname, short or full) and checks it. 0, or NODE_EXIT_USAGE after a
 * line on stderr. */
int node_opts_resolve_name(node_opts *o);

/* node_opts_help prints every flag; node_opts_print prints the settings (never
 * the secret itself) as config-file lines. */
void node_opts_help(FILE *out);
void node_opts_print(const node_opts *o, FILE *out);

#endif /* EMBER_NODE_OPTS_H */
