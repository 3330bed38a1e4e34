/*
 * registry.c - registered names: an atom that stands for a local process.
 *
 * A small open-addressing table from atom to pid under one mutex: registration is
 * rare and lookups are short, so a lock costs less than it would save to avoid.
 * A process holds at most one name, and its name goes with it when it ends.
 */
#include <stdlib.h>

#include "core/rt.h"

typedef struct slot {
    em_term name;     /* EM_NONE: empty; 1: deleted */
    em_pid_t pid;
} slot;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static slot *tab;
static size_t cap, used, live;

#define DELETED ((em_term)1)

static size_t hash(em_term name) { return (size_t)((name >> 8) * 0x9E3779B97F4A7C15ull); }

int emi_registry_init(void) { return 0; }

void emi_registry_fini(void)
{
    pthread_mutex_lock(&lock);
    free(tab);
    tab = NULL;
    cap = used = live = 0;
    pthread_mutex_unlock(&lock);
}

static slot *find(em_term name)
{
    if (!cap)
        return NULL;
    for (size_t i = hash(name) & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (tab[i].name == name)
            return &tab[i];
        if (tab[i].name == EM_NONE)
            return NULL;
    }
}

static int grow(void)
{
    size_t ncap = cap ? cap * 2 : 64;
    if (live * 4 < cap)
        ncap = cap; /* mostly tombstones: rehash at the same size */
    slot *n = calloc(ncap, sizeof *n);
    if (!n)
        return EM_ENOMEM;
    for (size_t i = 0; i < cap; i++) {
        if (tab[i].name == EM_NONE || tab[i].name == DELETED)
            continue;
        size_t j = hash(tab[i].name) & (ncap - 1);
        while (n[j].name != EM_NONE)
            j = (j + 1) & (ncap - 1);
        n[j] = tab[i];
    }
    free(tab);
    tab = n;
    cap = ncap;
    used = live;
    return 0;
}

int em_register(em_term name, em_pid_t pid)
{
    if (!em_atom_name(name))
        return EM_EINVAL;
    emi_proc *p = emi_proc_lookup(pid);
    if (!p || atomic_load_explicit(&p->status, memory_order_relaxed) == EM_EXITING)
        return EM_ENOPROC;
    /* Made before the name is stored, so that the exit path finds it (seq_cst
     * in emi_proc_ext_get and emi_proc_destroy). */
    emi_proc_ext *x = emi_proc_ext_get(p);
    if (!x)
        return EM_ENOMEM;
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (find(name) || atomic_load_explicit(&x->name, memory_order_relaxed) != EM_NONE) {
        rc = EM_EEXIST;
    } else if ((used + 1) * 4 > cap * 3 && (rc = grow()) != 0) {
        /* out of memory */
    } else {
        size_t i = hash(name) & (cap - 1);
        while (tab[i].name != EM_NONE && tab[i].name != DELETED)
            i = (i + 1) & (cap - 1);
        if (tab[i].name == EM_NONE)
            used++;
        tab[i].name = name;
        tab[i].pid = pid;
        live++;
        /* seq_cst: pairs with the exit path's store of EXITING then load of the
         * name (see emi_proc_destroy); if the process began to exit meanwhile,
         * take the name back ourselves. */
        atomic_store_explicit(&x->name, name, memory_order_seq_cst);
        if (atomic_load_explicit(&p->status, memory_order_seq_cst) == EM_EXITING) {
            tab[i].name = DELETED;
            tab[i].pid = 0;
            live--;
            atomic_store_explicit(&x->name, EM_NONE, memory_order_relaxed);
            rc = EM_ENOPROC;
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int drop(em_term name, em_pid_t only)
{
    int rc = EM_ENOTFOUND;
    pthread_mutex_lock(&lock);
    slot *s = find(name);
    if (s && (!only || s->pid == only)) {
        emi_proc *p = emi_proc_lookup(s->pid);
        emi_proc_ext *x = p ? emi_proc_ext_peek(p) : NULL;
        if (x)
            atomic_store_explicit(&x->name, EM_NONE, memory_order_relaxed);
        s->name = DELETED;
        s->pid = 0;
        live--;
        rc = 0;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int em_unregister(em_term name)
{
    if (!em_atom_name(name))
        return EM_EINVAL;
    return drop(name, 0);
}

void emi_registry_drop(emi_proc *p)
{
    em_term name = emi_proc_name(p);
    if (name != EM_NONE)
        drop(name, p->pid);
}

em_pid_t em_whereis(em_term name)
{
    pthread_mutex_lock(&lock);
    slot *s = find(name);
    em_pid_t pid = s ? s->pid : 0;
    pthread_mutex_unlock(&lock);
    return pid;
}

em_pid_t emi_whereis_name(const char *name, size_t len)
{
    int64_t idx = emi_atom_lookup(name, len);
    return idx < 0 ? 0 : em_whereis(emi_make_atom((uint32_t)idx));
}

int em_send_named(em_term name, em_term msg)
{
    if (!em_atom_name(name))
        return EM_EINVAL;
    em_pid_t pid = em_whereis(name);
    if (!pid)
        return EM_ENOTFOUND;
    return em_send(pid, msg);
}
