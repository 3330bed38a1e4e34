/*
 * epmd_net.h - the daemon's sockets: the listening sockets for -port and
 * -address, and the test that tells a local peer from a remote one.
 */
#ifndef EMBER_EPMD_NET_H
#define EMBER_EPMD_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most this many listening sockets (loopback v4 and v6 plus addresses). */
#define EMI_EPMD_MAX_LISTEN 16

/* emi_epmd_listen opens non-blocking listening sockets on port: on every
 * address (IPv4 and IPv6) if addresses is NULL or blank, else on the
 * comma-separated addresses plus loopback, as Erlang's epmd does. The
 * descriptors go to fds (EMI_EPMD_MAX_LISTEN of them at most), their number to
 * *nfds. Returns 0, -EADDRINUSE if the port is taken, -EINVAL for an address
 * that does not parse (or too many), or another negative errno. */
int emi_epmd_listen(uint16_t port, const char *addresses, int *fds, int *nfds);

/* emi_epmd_is_local says whether the peer of connected socket fd is on this
 * host: a loopback address, or the very address it connected to. */
bool emi_epmd_is_local(int fd);

/* emi_epmd_peer_text writes the peer address of fd as text ("?" if unknown). */
void emi_epmd_peer_text(int fd, char *buf, size_t cap);

#endif
