/*
 * epmd_table.h - the daemon's table of registered names.
 *
 * The table is bounded: a registration past max_names is refused rather than
 * letting a flood of names grow memory without end. It also remembers the last
 * creation of a bounded number of recently unregistered names, so that a node
 * registering again under the same name gets a different creation and its peers
 * can tell the new incarnation's pids from the old one's.
 */
#ifndef EMBER_EPMD_TABLE_H
#define EMBER_EPMD_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "epmd_wire.h"

typedef struct emi_epmd_node {
    char name[EMI_EPMD_MAX_NAME + 1]; /* NUL-terminated; never contains NUL */
    size_t name_len;
    uint16_t port;
    uint8_t type;
    uint8_t protocol;
    uint16_t highest;
    uint16_t lowest;
    size_t extra_len;
    uint8_t extra[EMI_EPMD_MAX_EXTRA];
    uint32_t creation;
    void *owner; /* the connection whose life is the registration's */
    int fd;      /* that connection's descriptor, shown by DUMP_REQ */
} emi_epmd_node;

typedef struct emi_epmd_old {
    char name[EMI_EPMD_MAX_NAME + 1];
    size_t name_len; /* 0: the slot is empty */
    uint16_t port;
    uint32_t creation;
} emi_epmd_old;

typedef struct emi_epmd_table {
    emi_epmd_node **live; /* in registration order */
    size_t count;
    size_t max_names;
    emi_epmd_old *old; /* a ring of recently unregistered names */
    size_t old_max;
    size_t old_next; /* the slot the next unregistered name overwrites */
} emi_epmd_table;

/* emi_epmd_table_init prepares an empty table for at most max_names live names
 * and old_max remembered ones; 0 or -ENOMEM (or -EINVAL for a zero max_names). */
int emi_epmd_table_init(emi_epmd_table *t, size_t max_names, size_t old_max);

/* emi_epmd_table_fini frees the table and every node in it. */
void emi_epmd_table_fini(emi_epmd_table *t);

/* emi_epmd_table_find returns the live node called name (len bytes), or NULL. */
emi_epmd_node *emi_epmd_table_find(const emi_epmd_table *t, const char *name, size_t len);

/* emi_epmd_table_find_owner returns the live node registered by owner, or NULL. */
emi_epmd_node *emi_epmd_table_find_owner(const emi_epmd_table *t, const void *owner);

/* emi_epmd_table_add copies node into the table and returns the copy in *out.
 * The creation is the remembered one plus one if the name was registered before
 * (never 0), fresh_creation otherwise. -EEXIST if the name is live, -ENOSPC if
 * the table is full, -ENOMEM. */
int emi_epmd_table_add(emi_epmd_table *t, const emi_epmd_node *node, uint32_t fresh_creation,
                       emi_epmd_node **out);

/* emi_epmd_table_remove unregisters node (a live node of t): its name and
 * creation are remembered and the node is freed. */
void emi_epmd_table_remove(emi_epmd_table *t, emi_epmd_node *node);

#endif
