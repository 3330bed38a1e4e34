/*
 * node_load.c - ember-node's modules: dlopen a shared object, read its export
 * table, and register each function as "module:function" with em_register_fn
 * so that --run, ember_ctl's spawn and em_spawn_on from other nodes can start
 * it.
 *
 * Everything is checked before anything is registered, so a module with one
 * bad entry adds nothing. Modules stay loaded until the runtime has ended:
 * processes may run their code until then.
 */
#include "node_load.h"

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ember_module.h"
#include "node_opts.h"

#define NAME_MAX_LEN 127      /* a module's or a function's name */
#define MAX_EXPORTS 4096      /* a table longer than this lacks its {NULL, NULL} */

typedef struct loaded_fn {
    char *name;               /* "module:function" */
    em_proc_fn fn;
} loaded_fn;

typedef struct module {
    char name[NAME_MAX_LEN + 1];
    char path[PATH_MAX];
    void *handle;
} module;

static module *mods;
static size_t nmods;
static loaded_fn *fns;
static size_t nfns;

static int load_error(const char *spec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int load_error(const char *spec, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember-node: cannot load module %s: ", spec);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return NODE_EXIT_FAIL;
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

/* The directory this program lives in (its bin/), or "" if unknown. */
static void exe_dir(char *out, size_t cap)
{
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    out[0] = 0;
    if (n <= 0)
        return;
    path[n] = 0;
    snprintf(out, cap, "%s", dirname(path));
}

/* Looks for libNAME.so, then NAME.so, in each directory of the colon-separated
 * list dirs; true with the path in out. */
static bool search_dirs(const char *dirs, const char *name, char *out, size_t cap)
{
    while (dirs && *dirs) {
        size_t n = strcspn(dirs, ":");
        if (n) {
            snprintf(out, cap, "%.*s/lib%s.so", (int)n, dirs, name);
            if (access(out, R_OK) == 0)
                return true;
            snprintf(out, cap, "%.*s/%s.so", (int)n, dirs, name);
            if (access(out, R_OK) == 0)
                return true;
        }
        dirs += n;
        if (*dirs == ':')
            dirs++;
    }
    return false;
}

/* spec as a path: given as one (a '/' or a ".so" in it), or found by name. */
static int find_module(const char *spec, const char *search_path, char *out, size_t cap)
{
    if (strchr(spec, '/') || strstr(spec, ".so")) {
        if (access(spec, R_OK) != 0)
            return load_error(spec, "%s", strerror(errno));
        snprintf(out, cap, "%s", spec);
        return 0;
    }
    if (!valid_name(spec, strlen(spec)))
        return load_error(spec, "a module name takes 1 to %d letters, digits and '_'",
                          NAME_MAX_LEN);
    char here[PATH_MAX], beside[3 * PATH_MAX + 64];
    exe_dir(here, sizeof here);
    snprintf(beside, sizeof beside, "%s/../lib:%s/../modules:%s", here, here, here);
    if (search_dirs(search_path, spec, out, cap) ||
        search_dirs(getenv("EMBER_MODULE_PATH"), spec, out, cap) ||
        (here[0] && search_dirs(beside, spec, out, cap)))
        return 0;
    return load_error(spec, "no lib%s.so or %s.so in --module-path (%s), $EMBER_MODULE_PATH "
                            "(%s) or beside ember-node (%s)",
                      spec, spec, search_path ? search_path : "unset",
                      getenv("EMBER_MODULE_PATH") ? getenv("EMBER_MODULE_PATH") : "unset",
                      here[0] ? beside : "unknown");
}

/* The module's name: its file's name without "lib" and from ".so" on. */
static int module_name(const char *spec, const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "lib", 3) == 0 && base[3] && base[3] != '.')
        base += 3;
    const char *so = strstr(base, ".so");
    size_t len = so ? (size_t)(so - base) : strlen(base);
    if (!valid_name(base, len))
        return load_error(spec, "its name \"%.*s\" (the file's name without \"lib\" and \".so\") "
                                "must be 1 to %d letters, digits and '_'",
                          (int)len, base, NAME_MAX_LEN);
    snprintf(out, cap, "%.*s", (int)len, base);
    return 0;
}

/* Checks the export table; *count is its length without the terminator. */
static int check_exports(const char *spec, const em_module_export *t, size_t *count)
{
    size_t n = 0;
    for (; n < MAX_EXPORTS && (t[n].name || t[n].fn); n++) {
        if (!t[n].name)
            return load_error(spec, "entry %zu of ember_module_exports has a function but no name",
                              n);
        if (!valid_name(t[n].name, strlen(t[n].name)))
            return load_error(spec, "\"%s\" is not a function name (1 to %d letters, digits "
                                    "and '_')", t[n].name, NAME_MAX_LEN);
        if (!t[n].fn)
            return load_error(spec, "\"%s\" has no function", t[n].name);
        for (size_t j = 0; j < n; j++)
            if (strcmp(t[j].name, t[n].name) == 0)
                return load_error(spec, "\"%s\" is exported twice", t[n].name);
    }
    if (n == MAX_EXPORTS)
        return load_error(spec, "ember_module_exports has no {NULL, NULL} at its end");
    if (n == 0)
        return load_error(spec, "ember_module_exports is empty");
    *count = n;
    return 0;
}

int node_load_module(const char *spec, const char *search_path)
{
    char path[PATH_MAX], name[NAME_MAX_LEN + 1];
    int rc = find_module(spec, search_path, path, sizeof path);
    if (rc == 0)
        rc = module_name(spec, path, name, sizeof name);
    if (rc)
        return rc;
    for (size_t i = 0; i < nmods; i++)
        if (strcmp(mods[i].name, name) == 0)
            return load_error(spec, "a module named %s is loaded already (from %s)", name,
                              mods[i].path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h)
        return load_error(spec, "%s", dlerror());
    const em_module_export *table = dlsym(h, EM_MODULE_EXPORTS_SYMBOL);
    size_t n = 0;
    if (!table)
        rc = load_error(spec, "%s exports no %s table (see node/ember_module.h)", path,
                        EM_MODULE_EXPORTS_SYMBOL);
    else
        rc = check_exports(spec, table, &n);
    module *grown = rc ? NULL : realloc(mods, (nmods + 1) * sizeof *mods);
    loaded_fn *fgrown = rc || !grown ? NULL : realloc(fns, (nfns + n) * sizeof *fns);
    if (grown)
        mods = grown;
    if (fgrown)
        fns = fgrown;
    if (rc == 0 && (!grown || !fgrown))
        rc = load_error(spec, "out of memory");
    if (rc == 0) {
        int (*init)(void);
        *(void **)&init = dlsym(h, EM_MODULE_INIT_SYMBOL);
        int irc = init ? init() : 0;
        if (irc != 0)
            rc = load_error(spec, "its ember_module_init returned %d", irc);
    }
    size_t first = nfns;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char full[2 * NAME_MAX_LEN + 2];
        snprintf(full, sizeof full, "%s:%s", name, table[i].name);
        int erc = em_register_fn(full, table[i].fn);
        fns[nfns].name = strdup(full);
        fns[nfns].fn = table[i].fn;
        if (erc != 0 || !fns[nfns].name) {
            free(fns[nfns].name);
            rc = load_error(spec, "cannot register %s: %s", full,
                            erc ? em_strerror(erc) : "out of memory");
        } else {
            nfns++;
        }
    }
    if (rc) {
        /* Names already registered with the library stay there, pointing at
         * code that is about to go: the node does not start after this. */
        while (nfns > first)
            free(fns[--nfns].name);
        dlclose(h);
        return rc;
    }
    snprintf(mods[nmods].name, sizeof mods[nmods].name, "%s", name);
    snprintf(mods[nmods].path, sizeof mods[nmods].path, "%s", path);
    mods[nmods].handle = h;
    nmods++;
    return 0;
}

em_proc_fn node_module_fn(const char *name, const char **entry)
{
    for (size_t i = 0; i < nfns; i++)
        if (strcmp(fns[i].name, name) == 0) {
            if (entry)
                *entry = fns[i].name;
            return fns[i].fn;
        }
    return NULL;
}

void node_module_names(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (size_t i = 0; i < nfns && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? ", " : "", fns[i].name);
    if (nfns == 0)
        snprintf(buf, cap, "none");
}

void node_unload_all(void)
{
    for (size_t i = 0; i < nfns; i++)
        free(fns[i].name);
    free(fns);
    fns = NULL;
    nfns = 0;
    for (size_t i = 0; i < nmods; i++)
        dlclose(mods[i].handle);
    free(mods);
    mods = NULL;
    nmods = 0;
}
