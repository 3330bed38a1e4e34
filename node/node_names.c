/*
 * node_names.c - the node's full name from --sname or --name: the host part
 * from this host's name when it is not given, and the checks that keep a name
 * usable as a node name, a port-mapper name and a host others can dial.
 */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_opts.h"

static int name_error(const char *flag, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int name_error(const char *flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ember-node: %s: ", flag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return NODE_EXIT_USAGE;
}

/* This host's name: full (with its domain, from the resolver if gethostname
 * has none) or short (up to the first dot). */
static int host_name(bool short_name, char *out, size_t cap)
{
    char h[256];
    if (gethostname(h, sizeof h) != 0 || !h[0]) {
        fprintf(stderr, "ember-node: cannot find this host's name: %s\n", strerror(errno));
        return NODE_EXIT_FAIL;
    }
    h[sizeof h - 1] = 0;
    if (short_name) {
        h[strcspn(h, ".")] = 0;
    } else if (!strchr(h, '.')) {
        struct addrinfo hints = {.ai_flags = AI_CANONNAME, .ai_family = AF_UNSPEC};
        struct addrinfo *res = NULL;
        if (getaddrinfo(h, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
            strchr(res->ai_canonname, '.'))
            snprintf(h, sizeof h, "%s", res->ai_canonname);
        if (res)
            freeaddrinfo(res);
    }
    snprintf(out, cap, "%s", h);
    return 0;
}

int node_opts_resolve_name(node_opts *o)
{
    const char *flag = o->short_name ? "--sname" : "--name";
    char full[512];
    const char *at = strchr(o->name, '@');
    if (at) {
        snprintf(full, sizeof full, "%s", o->name);
    } else {
        char host[256];
        int rc = host_name(o->short_name, host, sizeof host);
        if (rc)
            return rc;
        snprintf(full, sizeof full, "%s@%s", o->name, host);
    }
    at = strchr(full, '@');
    size_t nl = (size_t)(at - full);
    if (nl == 0 || nl > 127)
        return name_error(flag, "\"%s\": the name before '@' must be 1 to 127 characters", full);
    for (size_t i = 0; i < nl; i++)
        if (!isalnum((unsigned char)full[i]) && full[i] != '_' && full[i] != '-')
            return name_error(flag,
                              "\"%s\": the name before '@' takes letters, digits, '_' and '-'",
                              full);
    const char *host = at + 1;
    if (!*host || strlen(full) > 255)
        return name_error(flag, "\"%s\": expected name@host, at most 255 bytes", full);
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return name_error(flag,
                              "\"%s\": the host takes letters, digits, '.', '-' and '_' "
                              "(an IPv4 address or a DNS name)",
                              full);
    free(o->node);
    o->node = strdup(full);
    if (!o->node) {
        fprintf(stderr, "ember-node: out of memory\n");
        return NODE_EXIT_FAIL;
    }
    return 0;
}

