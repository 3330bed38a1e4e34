/*
 * ember_node.c - ember-node, the program that runs one node (docs/ember-node.md).
 *
 * main does, in this order, what must happen before the runtime's threads
 * exist or while errors can still reach the terminal: read the settings, check
 * them, load the modules (a bad module is reported on the terminal, even with
 * --detached), detach, install the signal handlers, make sure this host has a
 * port mapper; then it runs the root process (node_root.c) until the node
 * stops, and exits with the root's status.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ember.h"
#include "node_detach.h"
#include "node_epmd.h"
#include "node_load.h"
#include "node_log.h"
#include "node_opts.h"
#include "node_root.h"

/* What can be checked without a runtime: --run arguments parse, seeds can be
 * found. NODE_EXIT_USAGE after a line on stderr. */
static int check_settings(const node_opts *o)
{
    for (size_t i = 0; i < o->nseeds; i++) {
        const char *at = strchr(o->seeds[i], '@');
        if (o->no_epmd && !strchr(at, ':')) {
            fprintf(stderr, "ember-node: --connect %s: without a port mapper (--no-epmd) a seed "
                            "needs its port: name@host:port\n", o->seeds[i]);
            return NODE_EXIT_USAGE;
        }
    }
    if (o->ndns && o->no_epmd) {
        fprintf(stderr,
                "ember-node: --discover-dns asks port mappers: it cannot go with --no-epmd\n");
        return NODE_EXIT_USAGE;
    }
    /* Parse each --run argument in a heap of our own: a typo is a usage error
     * now rather than a failed start later. */
    em_heap *h = em_heap_new();
    if (!h)
        return NODE_EXIT_FAIL;
    em_heap_use(h);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < o->nruns; i++) {
        em_term t;
        size_t pos = 0;
        if (o->runs[i].arg && em_parse(o->runs[i].arg, &t, &pos) != 0) {
            fprintf(stderr,
                    "ember-node: --run %s: the argument \"%s\" is not a term (at byte %zu)\n",
                    o->runs[i].fn, o->runs[i].arg, pos);
            rc = NODE_EXIT_USAGE;
        }
    }
    em_heap_use(NULL);
    em_heap_free(h);
    return rc;
}

static int load_modules(const node_opts *o)
{
    for (size_t i = 0; i < o->nloads; i++) {
        int rc = node_load_module(o->loads[i], o->module_path);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < o->nruns; i++) {
        if (!node_module_fn(o->runs[i].fn, NULL)) {
            char names[2048];
            node_module_names(names, sizeof names);
            fprintf(stderr, "ember-node: --run %s: no such function (loaded: %s)\n", o->runs[i].fn,
                    names);
            return NODE_EXIT_FAIL;
        }
    }
    return 0;
}

static int open_log(const node_opts *o, int *fd)
{
    *fd = -1;
    if (!o->log_file)
        return 0;
    *fd = open(o->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (*fd < 0) {
        fprintf(stderr, "ember-node: cannot open the log file %s: %s\n", o->log_file,
                strerror(errno));
        return NODE_EXIT_FAIL;
    }
    return 0;
}

static int run(node_opts *o)
{
    int rc = check_settings(o);
    if (rc == 0)
        rc = load_modules(o);
    int log_fd = -1;
    if (rc == 0)
        rc = open_log(o, &log_fd);
    if (rc)
        return rc;
    node_log_init(o->log_level, o->node);
    if (o->detached) {
        if ((rc = node_detach_start(log_fd)) != 0)
            return rc;
    } else if (log_fd >= 0) {
        dup2(log_fd, STDERR_FILENO);
        close(log_fd);
    }
    if (node_signals_install() != 0) {
        node_log(LOG_ERROR, "cannot install signal handlers");
        node_detach_failed();
        return NODE_EXIT_FAIL;
    }
    if (!o->no_epmd && (rc = node_epmd_ensure(o->epmd_port)) != 0) {
        node_detach_failed();
        return rc;
    }
    em_config cfg;
    em_config_init(&cfg);
    cfg.schedulers = o->schedulers;
    node_root_use(o);
    rc = em_run(&cfg, node_root_main, EM_NIL);
    if (rc < 0) {
        node_log(LOG_ERROR, "cannot start the runtime: %s", em_strerror(rc));
        node_detach_failed();
        return NODE_EXIT_FAIL;
    }
    return rc;
}

int main(int argc, char **argv)
{
    static node_opts o;
    node_opts_init(&o);
    int rc = node_opts_parse(&o, argc, argv);
    if (rc == 0 && o.help) {
        node_opts_help(stdout);
    } else if (rc == 0 && o.print_config) {
        if (o.name)
            rc = node_opts_resolve_name(&o);
        if (rc == 0)
            node_opts_print(&o, stdout);
    } else if (rc == 0 && (rc = node_opts_resolve_name(&o)) == 0) {
        rc = run(&o);
    }
    fflush(stdout);
    node_unload_all();
    node_opts_free(&o);
    return rc;
}
