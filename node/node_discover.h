/*
 * node_discover.h - how ember-node finds its cluster: seeds (--connect), DNS
 * (--discover-dns), and a check that the mesh is complete. Each runs as a
 * process of its own, linked to the node's root, so that a slow peer or
 * resolver never holds up the root.
 */
#ifndef EMBER_NODE_DISCOVER_H
#define EMBER_NODE_DISCOVER_H

#include "ember.h"
#include "node_opts.h"

/* node_discover_use gives the processes below the settings (kept, not copied:
 * they must outlive the runtime). */
void node_discover_use(const node_opts *o);

/* The seeds process: tries every seed, then again with a growing pause (up to
 * 5 s), until at least one answers; then it ends. */
void node_seeds_main(em_term arg);

/* The DNS process: resolves each --discover-dns name, asks the port mapper of
 * every address for its nodes, and connects to each as name@address; again
 * every --discover-interval (or once). */
void node_dns_main(em_term arg);

/* The mesh check: every --discover-interval, asks a few peers' ember_ctl which
 * nodes they see, and connects (by name, through the port mapper) to those
 * this node does not: it completes a mesh that two simultaneous joins left
 * incomplete. */
void node_mesh_main(em_term arg);

/* node_seed_is_self: whether a seed ("name@host" or "name@host:port") names
 * this very node. */
bool node_seed_is_self(const char *seed, const char *self);

#endif /* EMBER_NODE_DISCOVER_H */
