/*
 * epmd_cli.c - the client modes of ember-epmd (see epmd_cli.h). Results go to
 * stdout, failures to stderr, so that "ember-epmd -names" can feed a script.
 */
#include <errno.h>
#include <stdio.h>

#include "epmd_cli.h"
#include "epmd_client.h"

#define CLI_TIMEOUT_MS 5000

static int report(uint16_t port, int rc)
{
    if (rc == -ECONNREFUSED)
        fprintf(stderr, "ember-epmd: no port mapper on 127.0.0.1 port %u\n", port);
    else
        fprintf(stderr, "ember-epmd: port %u: %s\n", port, em_epmd_strerror(rc));
    return 1;
}

int emi_epmd_cli_names(uint16_t port)
{
    em_epmd_name_list l;
    int rc = em_epmd_names(NULL, port, CLI_TIMEOUT_MS, &l);
    if (rc < 0)
        return report(port, rc);
    printf("ember-epmd: up and running on port %u with data:\n", (unsigned)l.epmd_port);
    for (size_t i = 0; i < l.count; i++)
        printf("name %s at port %u\n", l.names[i].name, l.names[i].port);
    em_epmd_name_list_free(&l);
    return 0;
}

int emi_epmd_cli_kill(uint16_t port)
{
    int rc = em_epmd_kill(NULL, port, CLI_TIMEOUT_MS);
    if (rc < 0)
        return report(port, rc);
    printf("Killed\n");
    return 0;
}

int emi_epmd_cli_stop(uint16_t port, const char *name)
{
    int rc = em_epmd_stop(NULL, port, name, CLI_TIMEOUT_MS);
    if (rc < 0)
        return report(port, rc);
    printf("STOPPED %s\n", name);
    return 0;
}
