/*
 * epmd_net.c - listening sockets and the local-peer test (see epmd_net.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "epmd_net.h"

/* Opens one socket bound to sa, not yet listening; -EAFNOSUPPORT when the host
 * has no such address family (IPv6 disabled), which callers skip. */
static int bind_on(const struct sockaddr *sa, socklen_t len)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Without SO_REUSEADDR a restarted daemon could not bind while the last
     * one's connections linger in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, sa, len) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Whether a bind failure only means the host lacks that kind of address. */
static bool skippable(int rc)
{
    return rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL || rc == -EPROTONOSUPPORT;
}

static int add_v4(struct in_addr a, uint16_t port, int *fds, int *nfds)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = a};
    int fd = bind_on((struct sockaddr *)&sin, sizeof sin);
    if (fd < 0)
        return fd;
    fds[(*nfds)++] = fd;
    return 0;
}

static int add_v6(struct in6_addr a, uint16_t port, int *fds, int *nfds)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = a};
    int fd = bind_on((struct sockaddr *)&sin6, sizeof sin6);
    if (fd < 0)
        return fd;
    fds[(*nfds)++] = fd;
    return 0;
}

static void close_all(int *fds, int *nfds)
{
    for (int i = 0; i < *nfds; i++)
        close(fds[i]);
    *nfds = 0;
}

/* Every socket is bound before any listens: a client that finds the daemon
 * answering on one address finds it on all of them (a test reached loopback,
 * then was refused on the host's address, bound a moment later). */
static int listen_all(int *fds, int *nfds)
{
    for (int i = 0; i < *nfds; i++)
        if (listen(fds[i], SOMAXCONN) < 0) {
            int e = errno;
            close_all(fds, nfds);
            return -e;
        }
    return 0;
}

static int bind_all(uint16_t port, const char *addresses, int *fds, int *nfds);

int emi_epmd_listen(uint16_t port, const char *addresses, int *fds, int *nfds)
{
    int rc = bind_all(port, addresses, fds, nfds);
    return rc < 0 ? rc : listen_all(fds, nfds);
}

/* Binds a socket for each address (see emi_epmd_listen). */
static int bind_all(uint16_t port, const char *addresses, int *fds, int *nfds)
{
    int rc;
    *nfds = 0;
    if (!addresses || addresses[strspn(addresses, " ,")] == '\0') {
        struct in_addr any4 = {.s_addr = htonl(INADDR_ANY)};
        if ((rc = add_v4(any4, port, fds, nfds)) < 0)
            return rc;
        if ((rc = add_v6(in6addr_any, port, fds, nfds)) < 0 && !skippable(rc)) {
            close_all(fds, nfds);
            return rc;
        }
        return 0;
    }
    /* Loopback always, so that local nodes and tools reach the daemon whatever
     * addresses it was given. */
    struct in_addr lo4 = {.s_addr = htonl(INADDR_LOOPBACK)};
    if ((rc = add_v4(lo4, port, fds, nfds)) < 0)
        return rc;
    if ((rc = add_v6(in6addr_loopback, port, fds, nfds)) < 0 && !skippable(rc)) {
        close_all(fds, nfds);
        return rc;
    }
    char *copy = strdup(addresses);
    if (!copy) {
        close_all(fds, nfds);
        return -ENOMEM;
    }
    rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        struct in_addr a4;
        struct in6_addr a6;
        if (*nfds >= EMI_EPMD_MAX_LISTEN) {
            rc = -EINVAL;
        } else if (inet_pton(AF_INET, tok, &a4) == 1) {
            rc = a4.s_addr == lo4.s_addr ? 0 : add_v4(a4, port, fds, nfds);
        } else if (inet_pton(AF_INET6, tok, &a6) == 1) {
            rc = IN6_IS_ADDR_LOOPBACK(&a6) ? 0 : add_v6(a6, port, fds, nfds);
        } else {
            rc = -EINVAL;
        }
        if (rc < 0)
            break;
    }
    free(copy);
    if (rc < 0)
        close_all(fds, nfds);
    return rc;
}

bool emi_epmd_is_local(int fd)
{
    struct sockaddr_storage peer, self;
    socklen_t plen = sizeof peer, slen = sizeof self;
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0 ||
        getsockname(fd, (struct sockaddr *)&self, &slen) < 0 || peer.ss_family != self.ss_family)
        return false;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
        const struct sockaddr_in *s = (const struct sockaddr_in *)&self;
        return (ntohl(p->sin_addr.s_addr) & 0xFF000000u) == 0x7F000000u ||
               p->sin_addr.s_addr == s->sin_addr.s_addr;
    }
    if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&self;
        if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr))
            return true;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127)
            return true;
        return IN6_ARE_ADDR_EQUAL(&p->sin6_addr, &s->sin6_addr);
    }
    return false;
}

void emi_epmd_peer_text(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    char a[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&peer, &plen) == 0) {
        if (peer.ss_family == AF_INET) {
            const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
            inet_ntop(AF_INET, &p->sin_addr, a, sizeof a);
            port = ntohs(p->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
            inet_ntop(AF_INET6, &p->sin6_addr, a, sizeof a);
            port = ntohs(p->sin6_port);
        }
    }
    snprintf(buf, cap, "%s port %u", a, port);
}
