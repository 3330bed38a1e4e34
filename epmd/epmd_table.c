/*
 * epmd_table.c - the bounded table of registered names and the ring of recently
 * unregistered ones (see epmd_table.h).
 *
 * Lookups scan the table. A host runs a handful of nodes, the table is bounded,
 * and a scan of a few thousand short names costs microseconds, so an index would
 * add code without buying anything a port mapper needs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_table.h"

int emi_epmd_table_init(emi_epmd_table *t, size_t max_names, size_t old_max)
{
    memset(t, 0, sizeof *t);
    if (max_names == 0)
        return -EINVAL;
    t->live = calloc(max_names, sizeof *t->live);
    if (!t->live)
        return -ENOMEM;
    if (old_max) {
        t->old = calloc(old_max, sizeof *t->old);
        if (!t->old) {
            free(t->live);
            t->live = NULL;
            return -ENOMEM;
        }
    }
    t->max_names = max_names;
    t->old_max = old_max;
    return 0;
}

void emi_epmd_table_fini(emi_epmd_table *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->live[i]);
    free(t->live);
    free(t->old);
    memset(t, 0, sizeof *t);
}

emi_epmd_node *emi_epmd_table_find(const emi_epmd_table *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->count; i++) {
        emi_epmd_node *n = t->live[i];
        if (n->name_len == len && memcmp(n->name, name, len) == 0)
            return n;
    }
    return NULL;
}

emi_epmd_node *emi_epmd_table_find_owner(const emi_epmd_table *t, const void *owner)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->live[i]->owner == owner)
            return t->live[i];
    return NULL;
}

/* The remembered entry for a name, or NULL. */
static emi_epmd_old *find_old(const emi_epmd_table *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->old_max; i++) {
        emi_epmd_old *o = &t->old[i];
        if (o->name_len == len && memcmp(o->name, name, len) == 0)
            return o;
    }
    return NULL;
}

int emi_epmd_table_add(emi_epmd_table *t, const emi_epmd_node *node, uint32_t fresh_creation,
                       emi_epmd_node **out)
{
    if (emi_epmd_table_find(t, node->name, node->name_len))
        return -EEXIST;
    if (t->count >= t->max_names)
        return -ENOSPC;
    emi_epmd_node *n = malloc(sizeof *n);
    if (!n)
        return -ENOMEM;
    *n = *node;
    n->name[n->name_len] = '\0';
    emi_epmd_old *o = find_old(t, node->name, node->name_len);
    if (o) {
        /* A new incarnation of a known name: a creation its peers have not seen
         * for it yet. Zero means "unknown" to Erlang, so it is skipped. */
        n->creation = o->creation + 1;
        if (n->creation == 0)
            n->creation = 1;
        o->name_len = 0;
    } else {
        n->creation = fresh_creation ? fresh_creation : 1;
    }
    t->live[t->count++] = n;
    *out = n;
    return 0;
}

void emi_epmd_table_remove(emi_epmd_table *t, emi_epmd_node *node)
{
    for (size_t i = 0; i < t->count; i++) {
        if (t->live[i] != node)
            continue;
        memmove(&t->live[i], &t->live[i + 1], (t->count - i - 1) * sizeof *t->live);
        t->count--;
        if (t->old_max) {
            emi_epmd_old *o = &t->old[t->old_next];
            t->old_next = (t->old_next + 1) % t->old_max;
            memcpy(o->name, node->name, node->name_len + 1);
            o->name_len = node->name_len;
            o->port = node->port;
            o->creation = node->creation;
        }
        free(node);
        return;
    }
}
