/*
 * node_load.h - loading ember-node's modules (--load): shared objects whose
 * functions become spawnable as "module:function" (node/ember_module.h).
 */
#ifndef EMBER_NODE_LOAD_H
#define EMBER_NODE_LOAD_H

#include <stdbool.h>

#include "ember.h"

/* node_load_module finds the module spec names (a path, or a name looked up in
 * search_path, $EMBER_MODULE_PATH, then lib/ and modules/ beside the program's
 * bin/), loads it, runs its ember_module_init and registers its functions.
 * 0, or NODE_EXIT_FAIL after one line on stderr saying what is wrong. Call it
 * before the runtime starts. */
int node_load_module(const char *spec, const char *search_path);

/* node_module_fn: the function of a loaded module registered as "module:fn",
 * or NULL; *entry (may be NULL) is that name as a string that lives until
 * node_unload_all, for em_spawn_named. */
em_proc_fn node_module_fn(const char *name, const char **entry);

/* node_module_names writes the loaded functions' names, comma-separated, into
 * buf (for an error message). */
void node_module_names(char *buf, size_t cap);

/* node_unload_all forgets the modules (after the runtime has ended: no process
 * may run their code any more). */
void node_unload_all(void);

#endif /* EMBER_NODE_LOAD_H */
