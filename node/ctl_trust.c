/*
 * ctl_trust.c - where ember-ctl's secret comes from: a cookie (flag, file,
 * environment, or ~/.ember/cookie) or a keyring directory.
 *
 * The library reads the secret itself (dist/trust.c); this file only decides
 * which source to hand it, and checks beforehand that it can be read, so that
 * the operator gets "cannot read FILE" with exit 2 rather than a node that
 * failed to start.
 */
#include "ctl_trust.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static int readable(const char *what, const char *path)
{
    if (access(path, R_OK) == 0)
        return CTL_OK;
    return ctl_error(CTL_USAGE, NULL, "cannot read %s %s: %s", what, path, strerror(errno));
}

static const char *home_dir(void)
{
    const char *home = getenv("HOME");
    if (home && *home)
        return home;
    struct passwd *pw = getpwuid(getuid());
    return pw ? pw->pw_dir : NULL;
}

/* The first line of path without its line end, in buf. */
static bool first_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\r\n")] = 0;
    return ok;
}

/* The name DIR/peers lists for our own public key, DIR/key.pub. */
static int keyring_name(const char *dir, char *name, size_t cap)
{
    char path[4200], pub[128], line[1024];
    snprintf(path, sizeof path, "%s/key.pub", dir);
    if (!first_line(path, pub, sizeof pub) || strlen(pub) != 40)
        return ctl_error(CTL_USAGE, NULL,
                         "keyring mode needs --name NAME@HOST: cannot read a public key in %s", path);
    snprintf(path, sizeof path, "%s/peers", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ctl_error(CTL_USAGE, NULL, "cannot read %s: %s", path, strerror(errno));
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        if (strncmp(p, pub, 40) != 0 || (p[40] != ' ' && p[40] != '\t'))
            continue;
        p += 40 + strspn(p + 40, " \t");
        size_t n = strcspn(p, " \t\r\n");
        if (n > 0 && n < cap) {
            memcpy(name, p, n);
            name[n] = 0;
            found = true;
        }
    }
    fclose(f);
    if (!found)
        return ctl_error(CTL_USAGE, NULL,
                         "keyring mode needs --name NAME@HOST: %s does not list this keyring's own "
                         "key (%s/key.pub), so the name the node knows us by is unknown",
                         path, dir);
    return CTL_OK;
}

int ctl_trust_prepare(ctl_opts *o, char *name, size_t cap)
{
    name[0] = 0;
    if (o->keyring) {
        char path[4200];
        snprintf(path, sizeof path, "%s/key", o->keyring);
        int rc = readable("the keyring's secret key", path);
        if (rc)
            return rc;
        snprintf(path, sizeof path, "%s/peers", o->keyring);
        if ((rc = readable("the keyring's peers file", path)) != 0)
            return rc;
        return o->self_name ? CTL_OK : keyring_name(o->keyring, name, cap);
    }
    if (o->cookie)
        return CTL_OK;
    if (o->cookie_file)
        return readable("the cookie file", o->cookie_file);
    const char *env = getenv("EMBER_COOKIE");
    if (env && *env) {
        o->cookie = env;
        return CTL_OK;
    }
    static char path[4200];
    const char *home = home_dir();
    if (!home)
        return ctl_error(CTL_USAGE, NULL,
                         "no cookie: give --cookie, --cookie-file or EMBER_COOKIE (no home directory "
                         "for ~/.ember/cookie)");
    snprintf(path, sizeof path, "%s/.ember/cookie", home);
    if (access(path, R_OK) != 0)
        return ctl_error(CTL_USAGE, NULL,
                         "no cookie: give --cookie, --cookie-file or EMBER_COOKIE, or copy the "
                         "nodes' cookie to %s (%s)",
                         path, strerror(errno));
    o->cookie_file = path;
    return CTL_OK;
}

void ctl_trust_forget(ctl_opts *o)
{
    if (o->cookie && o->cookie != getenv("EMBER_COOKIE")) {
        /* Our copy of --cookie (ctl_args.c): volatile, so the wipe is kept. */
        volatile char *p = (volatile char *)(uintptr_t)o->cookie;
        while (*p)
            *p++ = 0;
    }
    o->cookie = NULL;
}
