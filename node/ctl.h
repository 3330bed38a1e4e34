/*
 * ctl.h - what the parts of ember-ctl share: its exit codes, its options, the
 * nodes it talks to, and how it reports an error.
 *
 * ember-ctl is itself a hidden ember node. ember_ctl.c reads the command line
 * (ctl_args.c), finds the node's address (ctl_conn.c), starts the runtime and
 * runs one command (ctl_cmds.c) against the `ember_ctl` service of the node
 * (dist/ctl.c is the protocol), printing tables or JSON (ctl_out.c).
 * `epmd-names` needs no node (ctl_epmd.c).
 */
#ifndef EMBER_CTL_H
#define EMBER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

/* Exit codes: scripts rely on them (docs/ember-ctl.md, and --help). */
enum ctl_exit {
    CTL_OK = 0,          /* the command did what it says */
    CTL_FAILED = 1,      /* the node answered with an error (notfound, badarg, ...) */
    CTL_USAGE = 2,       /* a bad command line, or a missing cookie or keyring file */
    CTL_UNREACHABLE = 3, /* the node (or port mapper) cannot be reached, or it did not answer */
    CTL_REFUSED = 4,     /* the node refused us: the cookie (or key) does not match */
    CTL_INTERNAL = 5,    /* ember-ctl itself could not run (its runtime or node did not start) */
};

#define CTL_DEFAULT_TIMEOUT_MS 5000
#define CTL_NAME_MAX 255

/* A node ember-ctl talks to. */
typedef struct ctl_node {
    char name[CTL_NAME_MAX + 1];   /* "name@host" */
    char host[CTL_NAME_MAX + 1];
    uint16_t port;                 /* from the command line, or from the port mapper */
    bool via_epmd;                 /* the port came from the port mapper of host */
    char addr[CTL_NAME_MAX + 8];   /* "name@host:port", what em_node_connect takes */
    em_term atom;                  /* the name as an atom, once the runtime runs */
    uint32_t index;                /* its index in our node table, once connected */
} ctl_node;

typedef struct ctl_opts {
    const char *node;          /* --node */
    const char *self_name;     /* --name, or chosen by ember-ctl */
    const char *cookie;        /* --cookie (a copy: argv is wiped) or $EMBER_COOKIE */
    const char *cookie_file;   /* --cookie-file, or ~/.ember/cookie */
    const char *keyring;       /* --keyring */
    uint16_t epmd_port;        /* --epmd-port; 0: $ERL_EPMD_PORT, else 4369 */
    int64_t timeout_ms;        /* --timeout */
    bool json;                 /* --json */
    const char *sort;          /* --sort, ps only */
    bool verbose;              /* --verbose: the library's connection log on stderr */
    bool help;
    const char *command;
    char **args;               /* the command's arguments */
    int nargs;
} ctl_opts;

/* ctl_error reports a failure and returns code: one line "ember-ctl: ..." on
 * stderr and, under --json, {"error": kind, "message": ...} on stdout. kind is
 * the node's error atom for CTL_FAILED, NULL for the default name of code. */
int ctl_error(int code, const char *kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether errors are also printed as JSON (set once, from --json). */
void ctl_error_json(bool on);

#endif
