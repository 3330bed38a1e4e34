/*
 * ember_module.h - what a module that ember-node loads (--load) exports.
 *
 * A module is a shared object (cc -shared -fPIC) that defines
 *
 *     const em_module_export ember_module_exports[] = {
 *         {"echo", echo},
 *         {"worker", worker},
 *         {NULL, NULL},
 *     };
 *
 * and, optionally, `int ember_module_init(void)`. ember-node names the module
 * after its file (libdemo.so and demo.so are both "demo") and registers every
 * function as "module:function" with em_register_fn, so that --run, ember_ctl's
 * spawn and em_spawn_on from any node of the cluster can start it.
 *
 * Names are 1 to 127 characters of letters, digits and '_'. ember_module_init
 * runs once, when the module is loaded, before the runtime starts: it may set up
 * plain C state, not call ember functions that need a process. A non-zero
 * return refuses the module. docs/ember-node.md is the guide.
 */
#ifndef EMBER_MODULE_H
#define EMBER_MODULE_H

#include "ember.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct em_module_export {
    const char *name;   /* the function's name within its module */
    em_proc_fn fn;      /* the process function: fn(arg) runs as a process */
} em_module_export;

/* The symbols ember-node looks up in a module. */
#define EM_MODULE_EXPORTS_SYMBOL "ember_module_exports"
#define EM_MODULE_INIT_SYMBOL "ember_module_init"

#ifdef __cplusplus
}
#endif
#endif /* EMBER_MODULE_H */
