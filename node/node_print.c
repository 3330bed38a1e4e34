/*
 * node_print.c - --print-config: the settings a command line and a config
 * file add up to, written as config-file lines (the secret only as "given").
 */
#include <stdio.h>

#include "node_opts.h"

void node_opts_print(const node_opts *o, FILE *out)
{
    const char *secrets[] = {"default", "cookie", "cookie-file", "keyring"};
    fprintf(out, "# settings of ember-node%s%s\n", o->config ? ", from " : "",
            o->config ? o->config : "");
    if (o->name)
        fprintf(out, "%s = %s\n", o->short_name ? "sname" : "name", o->node ? o->node : o->name);
    if (o->listen)
        fprintf(out, "listen = %s\n", o->listen);
    fprintf(out, "hidden = %s\n", o->hidden ? "true" : "false");
    fprintf(out, "tick-ms = %u\n", o->tick_ms);
    fprintf(out, "busy-wait-us = %d\n", o->busy_wait_us);
    fprintf(out, "# trust: %s%s\n", secrets[o->secret],
            o->cookie_from_env ? " ($EMBER_COOKIE)" : "");
    if (o->secret == SECRET_COOKIE)
        fprintf(out, "# cookie = (given, not shown)\n");
    if (o->secret == SECRET_COOKIE_FILE)
        fprintf(out, "cookie-file = %s\n", o->cookie_file);
    if (o->secret == SECRET_KEYRING)
        fprintf(out, "keyring = %s\n", o->keyring);
    if (o->epmd_port)
        fprintf(out, "epmd-port = %u\n", o->epmd_port);
    fprintf(out, "no-epmd = %s\n", o->no_epmd ? "true" : "false");
    for (size_t i = 0; i < o->nloads; i++)
        fprintf(out, "load = %s\n", o->loads[i]);
    if (o->module_path)
        fprintf(out, "module-path = %s\n", o->module_path);
    for (size_t i = 0; i < o->nruns; i++)
        fprintf(out, "run = %s%s%s\n", o->runs[i].fn, o->runs[i].arg ? " " : "",
                o->runs[i].arg ? o->runs[i].arg : "");
    fprintf(out, "exit-with-run = %s\n", o->exit_with_run ? "true" : "false");
    if (o->shutdown_ms < 0)
        fprintf(out, "shutdown-ms = infinity\n");
    else
        fprintf(out, "shutdown-ms = %lld\n", (long long)o->shutdown_ms);
    for (size_t i = 0; i < o->nseeds; i++)
        fprintf(out, "connect = %s\n", o->seeds[i]);
    for (size_t i = 0; i < o->ndns; i++)
        fprintf(out, "discover-dns = %s\n", o->dns[i]);
    fprintf(out, "discover-interval = %lld\n", (long long)o->discover_interval_ms);
    fprintf(out, "detached = %s\n", o->detached ? "true" : "false");
    if (o->log_file)
        fprintf(out, "log-file = %s\n", o->log_file);
    fprintf(out, "log-level = %d\n", o->log_level);
    fprintf(out, "schedulers = %d\n", o->schedulers);
}
