/*
 * node_epmd.h - making sure this host has a port mapper, as `erl` does: if
 * none answers on the port, ember-node starts `ember-epmd -daemon`.
 */
#ifndef EMBER_NODE_EPMD_H
#define EMBER_NODE_EPMD_H

#include <stdbool.h>
#include <stdint.h>

/* node_epmd_running: true if a port mapper answers on 127.0.0.1:port (0: the
 * default port, $ERL_EPMD_PORT or 4369). */
bool node_epmd_running(uint16_t port);

/* node_epmd_ensure starts `ember-epmd -daemon -port PORT` (the one beside this
 * program, else the first in $PATH) unless a port mapper answers already, and
 * waits until it answers. 0 once one answers; NODE_EXIT_FAIL after a log line.
 * Safe in a threaded program: the child only closes descriptors and execs. */
int node_epmd_ensure(uint16_t port);

#endif /* EMBER_NODE_EPMD_H */
