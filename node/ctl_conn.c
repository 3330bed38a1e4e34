/*
 * ctl_conn.c - reaching a node: its address (given, or from the port mapper of
 * its host), our own name, the connection with a diagnosis when it fails, and
 * one request to its ember_ctl service.
 *
 * Telling "unreachable" (exit 3) from "refused" (exit 4). The library says only
 * that em_node_connect did not finish in time, so we look at how it failed:
 *  - We ask the port mapper ourselves rather than through em_dist_config.epmd:
 *    "no port mapper", "no such name" and "not an ember node" each get their
 *    own message, and our hidden tool node is not registered anywhere.
 *  - A node that holds another cookie (or does not list our key) closes the
 *    CURVE handshake at once, and the library gives up on the peer: the call
 *    fails well before its timeout. That is what "refused" means here.
 *  - A node that is not there lets ZeroMQ retry in silence until the timeout.
 *    We wait a short while first, then try a plain TCP connection to its port:
 *    "connection refused" means nothing listens, which we report at once
 *    instead of after the whole timeout. Only a node that listens but has not
 *    finished the handshake after that short while sees this probe, and logs it
 *    as a failed handshake from our address.
 */
#include "ctl_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epmd_client.h"

/* How long the first attempt waits before we check that something listens. */
#define FIRST_WAIT_MS 1000
/* A failure this much earlier than the wait is the peer turning us down. */
#define FAST_MARGIN_MS 100

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool loopback_host(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
}

/* ------------------------------------------------- before the runtime */

void ctl_node_parse(const char *spec, ctl_node *n)
{
    memset(n, 0, sizeof *n);
    const char *at = strchr(spec, '@');
    const char *colon = strchr(at, ':');
    size_t nl = colon ? (size_t)(colon - spec) : strlen(spec);
    snprintf(n->name, sizeof n->name, "%.*s", (int)nl, spec);
    snprintf(n->host, sizeof n->host, "%.*s", (int)(spec + nl - at - 1), at + 1);
    n->port = colon ? (uint16_t)atoi(colon + 1) : 0;
}

static void set_addr(ctl_node *n)
{
    snprintf(n->addr, sizeof n->addr, "%s:%u", n->name, n->port);
}

int ctl_resolve(ctl_node *n, const ctl_opts *o)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(n->host, NULL, &hints, &res);
    if (g != 0)
        return ctl_error(CTL_UNREACHABLE, NULL, "cannot reach %s: cannot resolve host %s: %s",
                         n->name, n->host, gai_strerror(g));
    freeaddrinfo(res);
    if (n->port) {
        set_addr(n);
        return CTL_OK;
    }
    char alive[CTL_NAME_MAX + 1];
    snprintf(alive, sizeof alive, "%.*s", (int)(strchr(n->name, '@') - n->name), n->name);
    uint16_t mport = o->epmd_port ? o->epmd_port : em_epmd_default_port();
    em_epmd_node found;
    int rc = em_epmd_port_please(n->host, mport, alive, (int)o->timeout_ms, &found);
    if (rc == -ECONNREFUSED)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: no port mapper answers at %s:%u (start ember-epmd "
                         "there, give --epmd-port, or give the node's port: --node %s:PORT)",
                         n->name, n->host, mport, n->name);
    if (rc == -ENOENT)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: no node named %s is registered with the port mapper "
                         "at %s:%u",
                         n->name, alive, n->host, mport);
    if (rc == -ETIMEDOUT)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: the port mapper at %s:%u did not answer within %lld ms",
                         n->name, n->host, mport, (long long)o->timeout_ms);
    if (rc)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: asking the port mapper at %s:%u failed: %s", n->name,
                         n->host, mport, em_epmd_strerror(rc));
    em_epmd_extra x;
    if (em_epmd_extra_parse(found.extra, found.extra_len, &x) != 0)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: %s is registered at %s but is not an ember node (an "
                         "Erlang node?)",
                         n->name, alive, n->host);
    if (strcmp(x.transport, "tcp") != 0)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: it listens on transport \"%s\", which ember-ctl does not "
                         "speak",
                         n->name, x.transport);
    n->port = found.port;
    n->via_epmd = true;
    set_addr(n);
    return CTL_OK;
}

/* Our address on the route to host (no packet is sent: a UDP socket only
 * looks the route up when connected). */
static bool route_address(const char *host, char *out, size_t cap)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *res = NULL;
    if (getaddrinfo(host, "9", &hints, &res) != 0)
        return false;
    bool ok = false;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        struct sockaddr_in me;
        socklen_t len = sizeof me;
        ok = getsockname(fd, (struct sockaddr *)&me, &len) == 0 &&
             inet_ntop(AF_INET, &me.sin_addr, out, (socklen_t)cap) != NULL;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return ok;
}

int ctl_self_name(const ctl_opts *o, const ctl_node *target, const char *keyring_name, char *name,
                  size_t cap, char *listen, size_t lcap)
{
    if (o->self_name) {
        snprintf(name, cap, "%s", o->self_name);
    } else if (keyring_name[0]) {
        snprintf(name, cap, "%s", keyring_name);
    } else {
        char host[CTL_NAME_MAX + 1];
        if (loopback_host(target->host) || !route_address(target->host, host, sizeof host)) {
            if (loopback_host(target->host) || gethostname(host, sizeof host) != 0)
                snprintf(host, sizeof host, "%s", target->host);
        }
        snprintf(name, cap, "ctl-%ld@%s", (long)getpid(), host);
    }
    if (strcmp(name, target->name) == 0)
        return ctl_error(CTL_USAGE, NULL, "our own name %s is the name of the node we talk to",
                         name);
    /* The node connects back to the host of our name, at the port we listen on. */
    snprintf(listen, lcap, "%s", loopback_host(strchr(name, '@') + 1) ? "127.0.0.1:0" : "0.0.0.0:0");
    return CTL_OK;
}

/* ------------------------------------------------------ connecting */

/* A plain TCP connection to host:port: 0 and *fd (non-blocking, when fd is
 * not NULL; else closed), or the errno of the failure. */
static int tcp_connect(const char *host, uint16_t port, int64_t timeout_ms, int *fd_out)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return EHOSTUNREACH;
    int err = ETIMEDOUT;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        err = errno;
    } else if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
        err = 0;
    } else if (errno != EINPROGRESS) {
        err = errno;
    } else {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, (int)(timeout_ms > 0 ? timeout_ms : 1)) == 1) {
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    if (fd >= 0 && err == 0 && fd_out)
        *fd_out = fd;
    else if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    return err;
}

static int tcp_probe(const char *host, uint16_t port, int64_t timeout_ms)
{
    return tcp_connect(host, port, timeout_ms, NULL);
}

static int refused(const ctl_node *n, const ctl_opts *o)
{
    if (o->keyring)
        return ctl_error(CTL_REFUSED, NULL,
                         "cannot connect to %s: the keys do not match (it does not list our key "
                         "in its peers file, or it holds another key than %s/peers lists for it)",
                         n->name, o->keyring);
    return ctl_error(CTL_REFUSED, NULL,
                     "cannot connect to %s: the cookie does not match (it turned down the "
                     "handshake at %s:%u)",
                     n->name, n->host, n->port);
}

/* Our index for n: the newest life of that name in our node table. */
static uint32_t index_of(em_term atom)
{
    uint32_t found = 0;
    for (uint32_t i = 1; i < 65536; i++) {
        em_term a = em_node_of((em_pid_t)i << 48);
        if (a == EM_NONE)
            break;
        if (a == atom)
            found = i;
    }
    return found;
}

static int connected(ctl_node *n)
{
    n->index = index_of(n->atom);
    if (n->index == 0)
        return ctl_error(CTL_INTERNAL, NULL, "connected to %s, but it is not in our node table",
                         n->name);
    em_monitor_node(n->atom, true);
    return CTL_OK;
}

int ctl_connect(ctl_node *n, const ctl_opts *o)
{
    n->atom = em_atom(n->name);
    int64_t start = now_ms(), deadline = start + o->timeout_ms;
    int64_t first = o->timeout_ms < FIRST_WAIT_MS ? o->timeout_ms : FIRST_WAIT_MS;
    int rc = em_node_connect(n->addr, first);
    if (rc == 0)
        return connected(n);
    if (rc == EM_ENOTFOUND && o->keyring)
        return ctl_error(CTL_REFUSED, NULL,
                         "cannot connect to %s: %s/peers lists no key for it (add the line "
                         "ember-keygen printed for it)",
                         n->name, o->keyring);
    if (rc != EM_ETIMEDOUT)
        return ctl_error(CTL_INTERNAL, NULL, "cannot connect to %s: %s", n->name, em_strerror(rc));
    if (now_ms() - start + FAST_MARGIN_MS < first)
        return refused(n, o);
    int64_t left = deadline - now_ms();
    int err = tcp_probe(n->host, n->port, left);
    const char *where = n->via_epmd ? " although the port mapper lists it there" : "";
    if (err == ECONNREFUSED)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "cannot reach %s: nothing listens at %s:%u (connection refused)%s; is the "
                         "node running?",
                         n->name, n->host, n->port, where);
    if (err)
        return ctl_error(CTL_UNREACHABLE, NULL, "cannot reach %s: no connection to %s:%u: %s",
                         n->name, n->host, n->port, strerror(err));
    left = deadline - now_ms();
    if (left > 0) {
        int64_t t0 = now_ms();
        rc = em_node_connect(n->addr, left);
        if (rc == 0)
            return connected(n);
        if (rc == EM_ETIMEDOUT && now_ms() - t0 + FAST_MARGIN_MS < left)
            return refused(n, o);
    }
    return ctl_error(CTL_UNREACHABLE, NULL,
                     "cannot reach %s: something listens at %s:%u but did not finish the "
                     "handshake within %lld ms (a busy node, or not an ember node)",
                     n->name, n->host, n->port, (long long)o->timeout_ms);
}

/* ---------------------------------------------------------- requests */

typedef struct waiting {
    em_term ref, node;
} waiting;

static bool is_answer(em_term m, void *ctx)
{
    waiting *w = ctx;
    if (em_typeof(m) != EM_T_ARRAY)
        return false;
    if (em_len(m) == 4 && em_is_atom(em_at(m, 0), "$ctl_reply") && em_equal(em_at(m, 1), w->ref))
        return true;
    return em_len(m) == 2 && em_is_atom(em_at(m, 0), "nodedown") && em_at(m, 1) == w->node;
}

int ctl_call(ctl_node *n, const ctl_opts *o, const char *cmd, em_term arg, em_term *value)
{
    waiting w = {em_make_ref(), n->atom};
    em_term req = EM_ARR(em_atom("$ctl"), em_pid(em_self()), w.ref, em_atom(cmd), arg);
    if (w.ref == EM_NONE || req == EM_NONE)
        return ctl_error(CTL_INTERNAL, NULL, "cannot build the %s request: out of memory", cmd);
    int rc = em_send_remote(em_atom("ember_ctl"), n->atom, req);
    if (rc)
        return ctl_error(CTL_INTERNAL, NULL, "cannot send the %s request to %s: %s", cmd, n->name,
                         em_strerror(rc));
    em_term m;
    rc = em_receive_if(&m, o->timeout_ms, is_answer, &w);
    if (rc == EM_ETIMEDOUT)
        return ctl_error(CTL_UNREACHABLE, NULL,
                         "%s did not answer %s within %lld ms (is it an ember node with the "
                         "ember_ctl service?)",
                         n->name, cmd, (long long)o->timeout_ms);
    if (rc)
        return ctl_error(CTL_INTERNAL, NULL, "waiting for %s: %s", n->name, em_strerror(rc));
    if (em_len(m) == 2)
        return ctl_error(CTL_UNREACHABLE, NULL, "lost the connection to %s during %s", n->name,
                         cmd);
    *value = em_at(m, 3);
    return em_is_atom(em_at(m, 2), "ok") ? CTL_OK : CTL_FAILED;
}

static bool is_down(em_term m, void *ctx)
{
    return em_typeof(m) == EM_T_ARRAY && em_len(m) == 2 && em_is_atom(em_at(m, 0), "nodedown") &&
           em_at(m, 1) == *(em_term *)ctx;
}

bool ctl_wait_down(ctl_node *n, int64_t timeout_ms)
{
    em_term m;
    return em_receive_if(&m, timeout_ms, is_down, &n->atom) == 0;
}

/* ------------------------------------------------------- port watch */

int ctl_port_watch_open(const ctl_node *n, int64_t timeout_ms)
{
    int fd = -1;
    return tcp_connect(n->host, n->port, timeout_ms, &fd) == 0 ? fd : -1;
}

bool ctl_port_watch_closed(int fd, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    bool closed = false;
    char junk[256];
    while (!closed) {
        /* The node's greeting comes first: read it away until the end. */
        ssize_t got = read(fd, junk, sizeof junk);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            closed = true;
        else if (got < 0 && now_ms() >= deadline)
            break;
        else if (got < 0)
            em_sleep(10);
    }
    close(fd);
    return closed;
}
