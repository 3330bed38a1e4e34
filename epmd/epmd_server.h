/*
 * epmd_server.h - the daemon's event loop: accepts connections on the listening
 * sockets, reads one request per connection, answers it with epmd_proto.c and
 * keeps registering connections open for as long as their nodes live.
 */
#ifndef EMBER_EPMD_SERVER_H
#define EMBER_EPMD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct emi_epmd_server_config {
    uint16_t port;         /* reported in NAMES and DUMP replies */
    bool relaxed;          /* -relaxed_command_check */
    int packet_timeout_ms; /* how long a connection may take to send a request and read the reply */
    size_t max_names;      /* the name table's bound */
    size_t max_conns;      /* open connections at most; 0: from the descriptor limit */
} emi_epmd_server_config;

/* emi_epmd_serve runs the daemon on the listening sockets lfds (nlfds of them,
 * which it closes on return) until a KILL_REQ is granted or SIGTERM, SIGINT or
 * SIGHUP arrives. Returns 0, or a negative errno if the loop could not start or
 * failed. */
int emi_epmd_serve(const emi_epmd_server_config *cfg, const int *lfds, int nlfds);

#endif
