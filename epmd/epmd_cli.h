/*
 * epmd_cli.h - ember-epmd's client modes (-names, -kill, -stop): each talks to
 * the daemon on 127.0.0.1 with the client library and prints the outcome.
 */
#ifndef EMBER_EPMD_CLI_H
#define EMBER_EPMD_CLI_H

#include <stdint.h>

/* Each returns the process exit status: 0 on success, 1 on failure. */
int emi_epmd_cli_names(uint16_t port);
int emi_epmd_cli_kill(uint16_t port);
int emi_epmd_cli_stop(uint16_t port, const char *name);

#endif
