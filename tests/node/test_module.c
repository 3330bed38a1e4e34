/*
 * test_module.c - broken modules for test_node_cli: built once with
 * NODE_TEST_NOEXPORTS (no export table at all) and once with
 * NODE_TEST_BADNAME (a table with a name that is not one), so that ember-node's
 * errors for each can be checked.
 */
#include "ember_module.h"

static void nothing(em_term arg) { (void)arg; }

#if defined(NODE_TEST_NOEXPORTS)
/* Exported under another name than the one ember-node looks for. */
const em_module_export ember_module_export[] = {{"nothing", nothing}, {NULL, NULL}};
#elif defined(NODE_TEST_BADNAME)
const em_module_export ember_module_exports[] = {
    {"fine", nothing},
    {"bad name", nothing},
    {NULL, NULL},
};
#else
#error "build with NODE_TEST_NOEXPORTS or NODE_TEST_BADNAME"
#endif
