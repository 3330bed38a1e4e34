/*
 * relations.c - the table of a process's links and monitors (relations.h).
 *
 * Most processes have no relation at all (no table is allocated) or one or two
 * (a link to the parent, a monitor from a supervisor); a few servers have many
 * thousands. Open addressing with linear probing keeps every operation O(1) for
 * both, and deletion shifts entries back instead of leaving tombstones.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "mem/pool.h"
#include "proc/relations.h"

void emi_rel_lock(emi_proc *p)
{
    for (unsigned spins = 0;; spins++) {
        /* Acquire: the table as the last holder left it is visible. */
        if (!atomic_exchange_explicit(&p->rel_lock, 1, memory_order_acquire))
            return;
        /* Relaxed spin on a plain load keeps the line shared until it frees. */
        while (atomic_load_explicit(&p->rel_lock, memory_order_relaxed)) {
            if (spins++ > 1000)
                sched_yield();   /* the holder's thread was descheduled by the OS */
            else
                emi_cpu_relax();
        }
    }
}

void emi_rel_unlock(emi_proc *p)
{
    /* Release: our table writes are visible to the next holder. */
    atomic_store_explicit(&p->rel_lock, 0, memory_order_release);
}

size_t emi_reltab_bytes(uint32_t cap) { return sizeof(emi_reltab) + (size_t)cap * sizeof(emi_rel); }

static inline uint32_t slot_of(const emi_reltab *t, int kind, uint64_t key)
{
    uint64_t h = (key ^ ((uint64_t)kind << 61)) * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) & (t->cap - 1);
}

static emi_reltab *tab_new(uint32_t cap)
{
    emi_reltab *t = emi_pool_alloc(emi_reltab_bytes(cap));
    if (!t)
        return NULL;
    memset(t, 0, emi_reltab_bytes(cap));
    t->cap = cap;
    return t;
}

void emi_reltab_free(emi_reltab *t)
{
    if (t)
        emi_pool_free(t, emi_reltab_bytes(t->cap));
}

/* p's table, or NULL (the caller holds p's lock). */
static emi_reltab *rels_of(const emi_proc *p)
{
    emi_proc_ext *x = emi_proc_ext_peek(p);
    return x ? x->rels : NULL;
}

emi_rel *emi_rel_find(emi_proc *p, int kind, uint64_t key)
{
    emi_reltab *t = rels_of(p);
    if (!t)
        return NULL;
    for (uint32_t i = slot_of(t, kind, key);; i = (i + 1) & (t->cap - 1)) {
        emi_rel *e = &t->e[i];
        if (!e->kind)
            return NULL;
        if (e->kind == kind && e->key == key)
            return e;
    }
}

static void put(emi_reltab *t, const emi_rel *r)
{
    uint32_t i = slot_of(t, r->kind, r->key);
    while (t->e[i].kind)
        i = (i + 1) & (t->cap - 1);
    t->e[i] = *r;
    t->len++;
}

/* An entry worth keeping: a link, or a monitor whose monitoring process lives.
 * (A process that ends does not remove the monitors it set: they are dropped
 * here, when their target's table grows or is counted.) A monitor held from
 * another node is kept: its node removes it (DEMONITOR) or takes it away when
 * the connection goes. */
static bool live(const emi_rel *e)
{
    return e->kind == REL_LINK ||
           (e->kind == REL_MON_IN && (em_pid_node(e->pid) != 0 || emi_proc_lookup(e->pid)));
}

int emi_rel_add(emi_proc *p, int kind, uint64_t key, em_pid_t pid)
{
    emi_proc_ext *x = emi_proc_ext_get(p);
    if (!x)
        return EM_ENOMEM;
    emi_reltab *t = x->rels;
    /* Keep the load at or under 3/4 so probes stay short and a slot is free. */
    if (!t || (t->len + 1) * 4 > t->cap * 3) {
        /* Size the new table from what survives, so that a long-lived process
         * monitored by many short-lived ones keeps a table the size of its live
         * monitors: amortised O(1), and it shrinks. */
        uint32_t keep = 0;
        for (uint32_t i = 0; t && i < t->cap; i++)
            keep += t->e[i].kind && live(&t->e[i]);
        uint32_t cap = 4;
        while ((keep + 1) * 2 > cap)
            cap *= 2;
        emi_reltab *n = tab_new(cap);
        if (!n)
            return EM_ENOMEM;
        for (uint32_t i = 0; t && i < t->cap; i++)
            if (t->e[i].kind && live(&t->e[i]))
                put(n, &t->e[i]);
        emi_reltab_free(t);
        x->rels = t = n;
    }
    emi_rel r = {.key = key, .pid = pid, .kind = (uint8_t)kind, .exiting = 0};
    put(t, &r);
    return 0;
}

bool emi_rel_remove(emi_proc *p, int kind, uint64_t key)
{
    emi_rel *e = emi_rel_find(p, kind, key);
    if (!e)
        return false;
    emi_reltab *t = rels_of(p);
    uint32_t mask = t->cap - 1, i = (uint32_t)(e - t->e);
    /* Backward shift: move later members of the probe run into the hole when
     * their home slot does not lie cyclically between the hole and them. */
    for (uint32_t j = (i + 1) & mask;; j = (j + 1) & mask) {
        if (!t->e[j].kind)
            break;
        uint32_t home = slot_of(t, t->e[j].kind, t->e[j].key);
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        t->e[i] = t->e[j];
        i = j;
    }
    t->e[i].kind = 0;
    t->len--;
    if (t->len == 0) {
        emi_reltab_free(t);
        emi_proc_ext_peek(p)->rels = NULL;
    }
    return true;
}

void emi_rel_count(emi_proc *p, uint32_t *links, uint32_t *monitored_by)
{
    uint32_t l = 0, m = 0;
    emi_reltab *t = rels_of(p);
    for (uint32_t i = 0; t && i < t->cap; i++) {
        if (t->e[i].kind == REL_LINK)
            l++;
        else if (t->e[i].kind == REL_MON_IN && live(&t->e[i]))
            m++;
    }
    *links = l;
    *monitored_by = m;
}

emi_reltab *emi_rel_take(emi_proc *p)
{
    emi_proc_ext *x = emi_proc_ext_peek(p);
    emi_reltab *t = x ? x->rels : NULL;
    if (x)
        x->rels = NULL;
    /* Release: whoever sees it dead (em_is_alive) sees the name and mailbox gone. */
    atomic_store_explicit(&p->rel_dead, true, memory_order_release);
    return t;
}
