/*
 * node_root.h - ember-node's root process, registered as `ember_node`: it
 * makes the runtime a node, starts the --run processes and discovery, and
 * shuts everything down in order on SIGTERM, SIGINT or [stop] (what
 * ember_ctl's stop command sends it).
 */
#ifndef EMBER_NODE_ROOT_H
#define EMBER_NODE_ROOT_H

#include "ember.h"
#include "node_opts.h"

/* node_root_use gives the root its settings (kept, not copied). */
void node_root_use(const node_opts *o);

/* node_signals_install makes SIGTERM and SIGINT ask the root for an orderly
 * stop (a second one ends the program at once, with status 1), and ignores
 * SIGPIPE. Call it before the runtime starts. */
int node_signals_install(void);

/* The root process: em_run(cfg, node_root_main, EM_NIL). The runtime halts
 * with NODE_EXIT_OK after an orderly stop, NODE_EXIT_FAIL if the node could not
 * start or a --run process failed under --exit-with-run. */
void node_root_main(em_term arg);

#endif /* EMBER_NODE_ROOT_H */
