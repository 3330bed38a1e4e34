/*
 * ctl_conn.h - reaching a node: its address (given, or from the port mapper of
 * its host), our own name, the connection with a diagnosis when it fails, and
 * one request to its ember_ctl service.
 */
#ifndef EMBER_CTL_CONN_H
#define EMBER_CTL_CONN_H

#include "ctl.h"

/* Before the runtime starts. */

/* ctl_node_parse fills n's name, host and port from "name@host[:port]" (the
 * command line checked its form already). */
void ctl_node_parse(const char *spec, ctl_node *n);
/* ctl_resolve finds n's port when the command line gave none: it asks the port
 * mapper of n's host. CTL_OK, or CTL_UNREACHABLE after saying why (no such host,
 * no port mapper, no such name, not an ember node). */
int ctl_resolve(ctl_node *n, const ctl_opts *o);
/* ctl_self_name chooses our node name and listen address: --name, else the
 * keyring's name for our key (keyring_name, may be empty), else
 * "ctl-<pid>@HOST", HOST being the target's host when it is a loopback one, and
 * otherwise our address on the route to it (the node connects back to us).
 * CTL_OK or CTL_USAGE. */
int ctl_self_name(const ctl_opts *o, const ctl_node *target, const char *keyring_name, char *name,
                  size_t cap, char *listen, size_t lcap);

/* In the runtime, from ember-ctl's root process. */

/* ctl_connect connects to n and monitors it. On failure it says why and returns
 * CTL_UNREACHABLE (nothing listens, no answer) or CTL_REFUSED (the node
 * turned the handshake down at once: the cookie or key does not match). */
int ctl_connect(ctl_node *n, const ctl_opts *o);
/* ctl_call sends ['$ctl', Self, Ref, cmd, arg] to {ember_ctl, n} and waits for
 * the reply: CTL_OK with *value set; CTL_FAILED with *value the node's error
 * atom; CTL_UNREACHABLE (reported) when no answer came in time or the
 * connection was lost. */
int ctl_call(ctl_node *n, const ctl_opts *o, const char *cmd, em_term arg, em_term *value);
/* ctl_wait_down waits up to timeout_ms for n to go down; true if it did. */
bool ctl_wait_down(ctl_node *n, int64_t timeout_ms);

/* A watch on n's listening port, to see the node stop: a plain TCP connection
 * that says nothing, which the node closes when it stops listening (well
 * before ZeroMQ's 30 s handshake timeout would). ctl_port_watch_open returns
 * the descriptor, or -1; ctl_port_watch_closed waits up to timeout_ms, as a
 * process that lets others run, for the node to close it (true), and closes
 * it. */
int ctl_port_watch_open(const ctl_node *n, int64_t timeout_ms);
bool ctl_port_watch_closed(int fd, int64_t timeout_ms);

#endif
