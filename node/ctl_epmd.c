/*
 * ctl_epmd.c - ember-ctl epmd-names: what a port mapper has registered.
 *
 * It needs no node: one NAMES request through the port-mapper client
 * (epmd/epmd_client.h), answered by ember-epmd or Erlang's epmd alike.
 */
#include "ctl_epmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl_out.h"
#include "epmd_client.h"

/* A name fit for a terminal: Erlang's epmd registers any bytes but NUL. */
static void printable(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
    out[i] = 0;
}

int ctl_epmd_names(const ctl_opts *o)
{
    const char *host = o->nargs > 0 ? o->args[0] : "127.0.0.1";
    uint16_t port = o->epmd_port ? o->epmd_port : em_epmd_default_port();
    em_epmd_name_list list = {0};
    int rc = em_epmd_names(host, port, (int)o->timeout_ms, &list);
    if (rc == -ECONNREFUSED)
        return ctl_error(CTL_UNREACHABLE, NULL, "no port mapper answers at %s:%u", host, port);
    if (rc)
        return ctl_error(CTL_UNREACHABLE, NULL, "cannot list the names at %s:%u: %s", host, port,
                         em_epmd_strerror(rc));
    if (o->json) {
        ctl_buf b = {0};
        ctl_buf_puts(&b, "{\"host\": ");
        ctl_json_str(&b, host, strlen(host));
        ctl_buf_printf(&b, ", \"epmd_port\": %u, \"names\": [", port);
        for (size_t i = 0; i < list.count; i++) {
            ctl_buf_puts(&b, i ? ", {\"name\": " : "{\"name\": ");
            ctl_json_str(&b, list.names[i].name, strlen(list.names[i].name));
            ctl_buf_printf(&b, ", \"port\": %u}", list.names[i].port);
        }
        ctl_buf_puts(&b, "]}");
        puts(ctl_buf_str(&b));
        ctl_buf_free(&b);
    } else {
        static const char *const head[] = {"NAME", "PORT"};
        static const bool right[] = {false, true};
        ctl_table t;
        ctl_table_init(&t, 2, head, right);
        for (size_t i = 0; i < list.count; i++) {
            char p[8], name[EM_EPMD_MAX_NAME + 1];
            snprintf(p, sizeof p, "%u", list.names[i].port);
            printable(list.names[i].name, name, sizeof name);
            const char *row[] = {name, p};
            ctl_table_row(&t, row);
        }
        ctl_table_print(&t);
        ctl_table_free(&t);
    }
    em_epmd_name_list_free(&list);
    fflush(stdout);
    return CTL_OK;
}
