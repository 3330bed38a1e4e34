/*
 * epmd_client.c - the requests of ember's port-mapper client (see
 * epmd_client.h): each opens a connection, sends one request and reads the
 * reply, all against one deadline.
 *
 * Sockets stay non-blocking and every wait is a poll() bounded by what is left
 * of the caller's timeout, so a daemon that accepts and then says nothing costs
 * the caller timeout_ms and no more.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epmd_client.h"
#include "epmd_wire.h"

/* Replies larger than this are not from a port mapper (a NAMES reply for a
 * full table of the longest names is about 300 KiB). */
#define MAX_REPLY (16u << 20)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_of(int timeout_ms) { return timeout_ms < 0 ? -1 : now_ms() + timeout_ms; }

/* Waits for events on fd until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int t = -1;
        if (deadline >= 0) {
            int64_t left = deadline - now_ms();
            if (left <= 0)
                return -ETIMEDOUT;
            t = left > 1000000 ? 1000000 : (int)left;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, t);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

uint16_t em_epmd_default_port(void)
{
    const char *s = getenv("ERL_EPMD_PORT");
    if (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end == '\0' && v > 0 && v <= 65535)
            return (uint16_t)v;
    }
    return EMI_EPMD_DEFAULT_PORT;
}

/* Connects to host:port (each address in turn) before the deadline; returns a
 * non-blocking descriptor or a negative errno. */
static int dial(const char *host, uint16_t port, int64_t deadline)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port ? port : em_epmd_default_port());
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res;
    int g = getaddrinfo(host ? host : "127.0.0.1", service, &hints, &res);
    if (g != 0)
        return g == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
    int rc = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        if (errno == EINPROGRESS) {
            rc = wait_fd(fd, POLLOUT, deadline);
            if (rc == 0) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err == 0) {
                    freeaddrinfo(res);
                    return fd;
                }
                rc = -err;
            }
        } else {
            rc = -errno;
        }
        close(fd);
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

static int send_all(int fd, const uint8_t *p, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads exactly len bytes; -ECONNRESET if the daemon closes first. */
static int recv_exact(int fd, uint8_t *p, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t n = recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -ECONNRESET;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Reads until the daemon closes the connection, into a malloc'd buffer of at
 * most max bytes (*buf, *len); -EPROTO past max. The buffer may grow to one
 * byte more than max, so that a reply of exactly max bytes is told apart from
 * a longer one. */
static int recv_to_eof(int fd, size_t max, uint8_t **buf, size_t *len, int64_t deadline)
{
    size_t cap = 256, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n > max) {
            free(b);
            return -EPROTO;
        }
        if (n == cap) {
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            uint8_t *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
        }
        ssize_t r = recv(fd, b + n, cap - n, 0);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        if (r == 0)
            break;
        int rc = (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                     ? wait_fd(fd, POLLIN, deadline)
                     : -errno;
        if (rc < 0) {
            free(b);
            return rc;
        }
    }
    *buf = b;
    *len = n;
    return 0;
}

/* Connects and sends one request (len bytes after the length field); returns
 * the connection or a negative errno. */
static int request(const char *host, uint16_t port, const uint8_t *req, size_t len,
                   int64_t deadline)
{
    if (len == 0 || len > EMI_EPMD_MAX_REQUEST)
        return -EINVAL;
    uint8_t buf[2 + EMI_EPMD_MAX_REQUEST];
    emi_put16(buf, (uint16_t)len);
    memcpy(buf + 2, req, len);
    int fd = dial(host, port, deadline);
    if (fd < 0)
        return fd;
    int rc = send_all(fd, buf, len + 2, deadline);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

/* One request whose whole reply ends with the daemon closing the connection. */
static int request_reply(const char *host, uint16_t port, const uint8_t *req, size_t len,
                         int timeout_ms, size_t max, uint8_t **reply, size_t *reply_len)
{
    int64_t deadline = deadline_of(timeout_ms);
    int fd = request(host, port, req, len, deadline);
    if (fd < 0)
        return fd;
    int rc = recv_to_eof(fd, max, reply, reply_len, deadline);
    close(fd);
    return rc;
}

static bool name_ok(const char *name, size_t *len)
{
    if (!name)
        return false;
    *len = strnlen(name, EM_EPMD_MAX_NAME + 1);
    return *len >= 1 && *len <= EM_EPMD_MAX_NAME;
}

int em_epmd_register(const char *host, uint16_t epmd_port, const em_epmd_node *self, int timeout_ms,
                     int *fd_out, uint32_t *creation)
{
    size_t nlen;
    if (!self || !fd_out || !name_ok(self->name, &nlen) || self->extra_len > EM_EPMD_MAX_EXTRA)
        return -EINVAL;
    uint8_t req[EMI_EPMD_ALIVE2_FIXED + EM_EPMD_MAX_NAME + 2 + EM_EPMD_MAX_EXTRA];
    req[0] = EMI_EPMD_ALIVE2_REQ;
    emi_put16(req + 1, self->port);
    req[3] = self->node_type;
    req[4] = self->protocol;
    emi_put16(req + 5, self->highest_version);
    emi_put16(req + 7, self->lowest_version);
    emi_put16(req + 9, (uint16_t)nlen);
    memcpy(req + EMI_EPMD_ALIVE2_FIXED, self->name, nlen);
    size_t o = EMI_EPMD_ALIVE2_FIXED + nlen;
    emi_put16(req + o, (uint16_t)self->extra_len);
    memcpy(req + o + 2, self->extra, self->extra_len);

    int64_t deadline = deadline_of(timeout_ms);
    int fd = request(host, epmd_port, req, o + 2 + self->extra_len, deadline);
    if (fd < 0)
        return fd;
    uint8_t r[6];
    int rc = recv_exact(fd, r, 1, deadline);
    size_t rest = r[0] == EMI_EPMD_ALIVE2_X_RESP ? 5 : r[0] == EMI_EPMD_ALIVE2_RESP ? 3 : 0;
    if (rc == 0 && rest == 0)
        rc = -EPROTO;
    if (rc == 0)
        rc = recv_exact(fd, r + 1, rest, deadline);
    if (rc == 0 && r[1] != EMI_EPMD_RESULT_OK)
        rc = r[1] == EMI_EPMD_RESULT_FULL      ? -ENOSPC
             : r[1] == EMI_EPMD_RESULT_INVALID ? -EINVAL
                                               : -EADDRINUSE;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (creation)
        *creation = rest == 5 ? emi_get32(r + 2) : emi_get16(r + 2);
    /* The caller only holds the descriptor open; blocking mode suits whatever
     * it does with it (poll for the daemon going away, or nothing). */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    *fd_out = fd;
    return 0;
}

int em_epmd_unregister(int fd) { return close(fd) < 0 ? -errno : 0; }

int em_epmd_port_please(const char *host, uint16_t epmd_port, const char *name, int timeout_ms,
                        em_epmd_node *out)
{
    size_t nlen;
    if (!out || !name_ok(name, &nlen))
        return -EINVAL;
    uint8_t req[1 + EM_EPMD_MAX_NAME];
    req[0] = EMI_EPMD_PORT_PLEASE2_REQ;
    memcpy(req + 1, name, nlen);
    uint8_t *r;
    size_t n;
    int rc = request_reply(host, epmd_port, req, 1 + nlen, timeout_ms,
                           12 + EM_EPMD_MAX_NAME + 2 + EM_EPMD_MAX_EXTRA, &r, &n);
    if (rc < 0)
        return rc;
    rc = -EPROTO;
    if (n == 0)
        rc = -ECONNRESET;
    else if (n >= 2 && r[0] == EMI_EPMD_PORT2_RESP && r[1] != 0)
        rc = -ENOENT;
    else if (n >= 14 && r[0] == EMI_EPMD_PORT2_RESP) {
        size_t rn = emi_get16(r + 10);
        if (rn <= EM_EPMD_MAX_NAME && n >= 14 + rn) {
            size_t el = emi_get16(r + 12 + rn);
            if (el <= EM_EPMD_MAX_EXTRA && n == 14 + rn + el) {
                memset(out, 0, sizeof *out);
                out->port = emi_get16(r + 2);
                out->node_type = r[4];
                out->protocol = r[5];
                out->highest_version = emi_get16(r + 6);
                out->lowest_version = emi_get16(r + 8);
                memcpy(out->name, r + 12, rn);
                out->extra_len = el;
                memcpy(out->extra, r + 14 + rn, el);
                rc = 0;
            }
        }
    }
    free(r);
    return rc;
}

/* Parses one "name <name> at port <port>" line (without its newline). */
static int parse_name_line(const char *line, size_t len, em_epmd_name *out)
{
    static const char head[] = "name ", mid[] = " at port ";
    if (len < sizeof head - 1 || memcmp(line, head, sizeof head - 1) != 0)
        return -EPROTO;
    /* The last " at port " ends the name, whatever the name holds. */
    const char *at = NULL;
    for (const char *p = line; p + sizeof mid - 1 <= line + len; p++)
        if (memcmp(p, mid, sizeof mid - 1) == 0)
            at = p;
    if (!at)
        return -EPROTO;
    size_t nlen = (size_t)(at - line) - (sizeof head - 1);
    const char *num = at + sizeof mid - 1;
    size_t numlen = (size_t)(line + len - num);
    if (nlen == 0 || nlen > EM_EPMD_MAX_NAME || numlen == 0 || numlen > 5)
        return -EPROTO;
    unsigned port = 0;
    for (size_t i = 0; i < numlen; i++) {
        if (num[i] < '0' || num[i] > '9')
            return -EPROTO;
        port = port * 10 + (unsigned)(num[i] - '0');
    }
    if (port > 65535)
        return -EPROTO;
    memcpy(out->name, line + sizeof head - 1, nlen);
    out->name[nlen] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

int em_epmd_names(const char *host, uint16_t epmd_port, int timeout_ms, em_epmd_name_list *out)
{
    if (!out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    uint8_t req = EMI_EPMD_NAMES_REQ, *r;
    size_t n;
    int rc = request_reply(host, epmd_port, &req, 1, timeout_ms, MAX_REPLY, &r, &n);
    if (rc < 0)
        return rc;
    if (n < 4) {
        free(r);
        return n == 0 ? -ECONNRESET : -EPROTO;
    }
    size_t lines = 0;
    for (size_t i = 4; i < n; i++)
        lines += r[i] == '\n';
    em_epmd_name_list l = {.epmd_port = emi_get32(r)};
    if (lines && !(l.names = calloc(lines, sizeof *l.names)))
        rc = -ENOMEM;
    size_t start = 4;
    for (size_t i = 4; rc == 0 && i < n; i++) {
        if (r[i] != '\n')
            continue;
        rc = parse_name_line((const char *)r + start, i - start, &l.names[l.count]);
        if (rc == 0)
            l.count++;
        start = i + 1;
    }
    if (rc == 0 && start != n)
        rc = -EPROTO; /* a line without its newline */
    free(r);
    if (rc < 0) {
        em_epmd_name_list_free(&l);
        return rc;
    }
    *out = l;
    return 0;
}

void em_epmd_name_list_free(em_epmd_name_list *list)
{
    if (!list)
        return;
    free(list->names);
    memset(list, 0, sizeof *list);
}

int em_epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms)
{
    uint8_t req = EMI_EPMD_KILL_REQ, *r;
    size_t n;
    int rc = request_reply(host, epmd_port, &req, 1, timeout_ms, 16, &r, &n);
    if (rc < 0)
        return rc;
    if (n == 2 && memcmp(r, "OK", 2) == 0)
        rc = 0;
    else if (n == 2 && memcmp(r, "NO", 2) == 0)
        rc = -EBUSY;
    else
        rc = n == 0 ? -ECONNRESET : -EPROTO;
    free(r);
    return rc;
}

int em_epmd_stop(const char *host, uint16_t epmd_port, const char *name, int timeout_ms)
{
    size_t nlen;
    if (!name_ok(name, &nlen))
        return -EINVAL;
    uint8_t req[1 + EM_EPMD_MAX_NAME], *r;
    req[0] = EMI_EPMD_STOP_REQ;
    memcpy(req + 1, name, nlen);
    size_t n;
    int rc = request_reply(host, epmd_port, req, 1 + nlen, timeout_ms, 16, &r, &n);
    if (rc < 0)
        return rc;
    /* Erlang's epmd answers an unknown name with NOEXIST and then STOPPED as
     * well; NOEXIST first is what counts. */
    if (n >= 7 && memcmp(r, "NOEXIST", 7) == 0)
        rc = -ENOENT;
    else if (n == 7 && memcmp(r, "STOPPED", 7) == 0)
        rc = 0;
    else
        rc = n == 0 ? -EPERM : -EPROTO;
    free(r);
    return rc;
}

const char *em_epmd_strerror(int rc)
{
    switch (rc) {
    case 0:
        return "success";
    case -ECONNRESET:
        return "the port mapper closed the connection without a reply (request refused)";
    case -ECONNREFUSED:
        return "no port mapper is listening there";
    case -EPROTO:
        return "the port mapper's reply does not parse";
    case -EADDRINUSE:
        return "the name is already registered";
    case -ENOSPC:
        return "the port mapper's name table is full";
    case -ENOENT:
        return "no such name is registered";
    case -EBUSY:
        return "refused: names are registered (the daemon lacks -relaxed_command_check)";
    case -EPERM:
        return "refused: the daemon allows this only with -relaxed_command_check, from its host";
    case -ETIMEDOUT:
        return "timed out";
    default:
        return rc < 0 ? strerror(-rc) : "unknown result";
    }
}
