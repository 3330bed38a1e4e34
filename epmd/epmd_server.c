/*
 * epmd_server.c - the daemon's single-threaded event loop (see epmd_server.h).
 *
 * Every socket is non-blocking and watched by one epoll instance, so a slow or
 * silent peer only ever costs its own connection's memory. A connection that is
 * not a registration must deliver a complete request, and then read the reply,
 * within the packet timeout; connections wait in a list ordered by deadline,
 * so expiring them and choosing which to drop when the connection limit is
 * reached (the oldest) are both cheap. A registration's connection has no
 * deadline: it lives exactly as long as the node keeps it open.
 *
 * Input buffers are allocated on the first byte received, so thousands of idle
 * connections cost a small struct each. Replies waiting to be read are bounded
 * in total (OUT_BUDGET); a request whose reply would pass the bound is closed.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epmd_log.h"
#include "epmd_net.h"
#include "epmd_proto.h"
#include "epmd_server.h"

#define IN_CAP (2 + EMI_EPMD_MAX_REQUEST + 1) /* one byte more than a request can be */
#define OUT_BUDGET (64u << 20)
#define EVENTS 256
#define ACCEPTS_PER_EVENT 256

enum kind { K_LISTEN, K_SIGNAL, K_CONN };

typedef struct watch {
    enum kind kind;
    int fd;
} watch;

enum conn_state { READING, WRITING, REGISTERED };

typedef struct conn {
    watch w; /* first, so that an epoll event's pointer is both */
    enum conn_state state;
    bool local;
    bool dead;
    bool quit_after; /* a granted KILL_REQ: stop once the reply is out */
    uint8_t *in;
    size_t in_len;
    emi_epmd_out out;
    size_t out_off;
    int64_t deadline;
    bool timed;
    struct conn *tprev, *tnext; /* the deadline list, oldest first */
    struct conn *prev, *next;   /* every open connection */
    struct conn *dead_next;     /* closed, freed after the current batch */
} conn;

typedef struct server {
    const emi_epmd_server_config *cfg;
    emi_epmd_state st;
    int ep;
    int spare; /* a descriptor held back, to shed connections when none are left */
    watch listeners[EMI_EPMD_MAX_LISTEN];
    int nlisteners;
    watch sig;
    size_t nconns, max_conns;
    conn *thead, *ttail;
    conn *all;
    conn *dead;
    size_t out_pending;
    bool quit;
} server;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void timed_unlink(server *s, conn *c)
{
    if (!c->timed)
        return;
    if (c->tprev)
        c->tprev->tnext = c->tnext;
    else
        s->thead = c->tnext;
    if (c->tnext)
        c->tnext->tprev = c->tprev;
    else
        s->ttail = c->tprev;
    c->tprev = c->tnext = NULL;
    c->timed = false;
}

/* Every deadline is now plus the same timeout, so appending keeps the list
 * sorted. */
static void timed_append(server *s, conn *c)
{
    timed_unlink(s, c);
    c->deadline = now_ms() + s->cfg->packet_timeout_ms;
    c->tprev = s->ttail;
    c->tnext = NULL;
    if (s->ttail)
        s->ttail->tnext = c;
    else
        s->thead = c;
    s->ttail = c;
    c->timed = true;
}

static void watch_events(server *s, conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(s->ep, EPOLL_CTL_MOD, c->w.fd, &ev);
}

static void close_conn(server *s, conn *c, int level, const char *why)
{
    if (c->dead)
        return;
    if (c->state == REGISTERED)
        emi_epmd_unregister_owner(&s->st, c, why);
    emi_epmd_log(level, "closed connection fd %d: %s", c->w.fd, why);
    close(c->w.fd);
    timed_unlink(s, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->out_pending -= c->out.len - c->out_off;
    emi_epmd_out_free(&c->out);
    free(c->in);
    c->in = NULL;
    c->dead = true;
    c->dead_next = s->dead;
    s->dead = c;
    s->nconns--;
}

static void free_dead(server *s)
{
    while (s->dead) {
        conn *c = s->dead;
        s->dead = c->dead_next;
        free(c);
    }
}

/* Writes what it can of c's reply; once it is all out, the connection closes,
 * or waits as a registration, or the daemon stops (KILL_REQ). */
static void flush(server *s, conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->w.fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                watch_events(s, c, EPOLLOUT | (c->state == REGISTERED ? EPOLLIN : 0));
                return;
            }
            close_conn(s, c, 1, "the reply could not be written");
            return;
        }
        c->out_off += (size_t)n;
        s->out_pending -= (size_t)n;
    }
    emi_epmd_out_free(&c->out);
    c->out_off = 0;
    if (c->quit_after) {
        s->quit = true;
        close_conn(s, c, 2, "answered KILL_REQ");
    } else if (c->state == REGISTERED) {
        watch_events(s, c, EPOLLIN);
    } else {
        close_conn(s, c, 2, "answered");
    }
}

static void finish_request(server *s, conn *c)
{
    emi_epmd_peer peer = {.owner = c, .fd = c->w.fd, .local = c->local};
    emi_epmd_result res;
    int rc = emi_epmd_handle(&s->st, &peer, c->in + 2, c->in_len - 2, &c->out, &res);
    free(c->in);
    c->in = NULL;
    c->in_len = 0;
    if (rc < 0) {
        close_conn(s, c, 0, "out of memory for the reply");
        return;
    }
    if (res.stopped)
        close_conn(s, (conn *)res.stopped, 1, "stopped by STOP_REQ");
    if (res.action == EMI_EPMD_KEEP) {
        c->state = REGISTERED;
        timed_unlink(s, c);
    } else {
        c->state = WRITING;
        timed_append(s, c);
    }
    c->quit_after = res.action == EMI_EPMD_EXIT;
    if (c->out.len == 0 && res.action != EMI_EPMD_KEEP) {
        if (c->quit_after)
            s->quit = true;
        close_conn(s, c, 1, "request refused or malformed; no reply");
        return;
    }
    if (s->out_pending + c->out.len > OUT_BUDGET) {
        /* Not yet counted in out_pending: dropped before close_conn sees it. */
        emi_epmd_out_free(&c->out);
        close_conn(s, c, 0, "too many replies waiting to be read; dropped");
        return;
    }
    s->out_pending += c->out.len;
    c->out_off = 0;
    flush(s, c);
}

static void on_readable(server *s, conn *c)
{
    if (c->state == REGISTERED) {
        /* A registering connection carries nothing after its request, as with
         * Erlang's epmd: bytes mean a confused or hostile peer, EOF a node
         * that went away. Either ends the registration. */
        uint8_t scratch[64];
        ssize_t n = recv(c->w.fd, scratch, sizeof scratch, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        close_conn(s, c, 1, n > 0 ? "data after registration" : "connection closed");
        return;
    }
    if (!c->in && !(c->in = malloc(IN_CAP))) {
        close_conn(s, c, 0, "out of memory for a request");
        return;
    }
    ssize_t n = recv(c->w.fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        close_conn(s, c, 1, "read error");
        return;
    }
    if (n == 0) {
        close_conn(s, c, c->in_len ? 1 : 2,
                   c->in_len ? "closed by the peer inside a request" : "closed by the peer");
        return;
    }
    c->in_len += (size_t)n;
    long f = emi_epmd_frame(c->in, c->in_len);
    if (f == 0)
        return;
    if (f < 0) {
        close_conn(s, c, 1,
                   f == -EINVAL     ? "zero-length request"
                   : f == -EMSGSIZE ? "request length above the maximum"
                                    : "bytes past the end of the request");
        return;
    }
    finish_request(s, c);
}

static void on_accept(server *s, int lfd)
{
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: make room by dropping the oldest waiting
                 * connection; with none to drop, take the newcomer with the
                 * spare descriptor and close it, so it is not left hanging. */
                if (s->thead) {
                    close_conn(s, s->thead, 1, "dropped (out of descriptors) to make room");
                    continue;
                }
                if (s->spare >= 0) {
                    close(s->spare);
                    int victim = accept(lfd, NULL, NULL);
                    if (victim >= 0)
                        close(victim);
                    s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
                }
                emi_epmd_log(0, "refused a connection: out of descriptors");
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                emi_epmd_log(0, "accept failed: %s", strerror(errno));
            return;
        }
        if (s->nconns >= s->max_conns) {
            if (!s->thead) {
                emi_epmd_log(0, "refused a connection: %zu connections, all registrations",
                             s->nconns);
                close(fd);
                continue;
            }
            close_conn(s, s->thead, 1, "dropped (connection limit) to make room");
        }
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            emi_epmd_log(0, "refused a connection: out of memory");
            continue;
        }
        c->w.kind = K_CONN;
        c->w.fd = fd;
        c->state = READING;
        c->local = emi_epmd_is_local(fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->all;
        if (s->all)
            s->all->prev = c;
        s->all = c;
        s->nconns++;
        timed_append(s, c);
        if (emi_epmd_log_level >= 2) {
            char peer[80];
            emi_epmd_peer_text(fd, peer, sizeof peer);
            emi_epmd_log(2, "opened connection fd %d from %s (%s)", fd, peer,
                         c->local ? "local" : "remote");
        }
    }
}

static void expire(server *s)
{
    int64_t now = now_ms();
    while (s->thead && s->thead->deadline <= now) {
        conn *c = s->thead;
        close_conn(s, c, 1,
                   c->state == READING ? "no complete request within the packet timeout"
                                       : "reply not read within the packet timeout");
    }
}

static void on_signal(server *s)
{
    struct signalfd_siginfo si;
    if (read(s->sig.fd, &si, sizeof si) == (ssize_t)sizeof si) {
        emi_epmd_log(0, "stopping: signal %s", strsignal((int)si.ssi_signo));
        s->quit = true;
    }
}

static void dispatch(server *s, struct epoll_event *ev)
{
    watch *w = ev->data.ptr;
    if (w->kind == K_LISTEN) {
        on_accept(s, w->fd);
        return;
    }
    if (w->kind == K_SIGNAL) {
        on_signal(s);
        return;
    }
    conn *c = (conn *)w;
    if (c->dead)
        return;
    bool out_pending = c->out_off < c->out.len;
    if ((ev->events & EPOLLOUT) || (c->state == WRITING && (ev->events & (EPOLLHUP | EPOLLERR)))) {
        if (out_pending)
            flush(s, c);
        if (c->dead)
            return;
    }
    if ((ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->state != WRITING)
        on_readable(s, c);
}

static size_t default_max_conns(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return 65536;
    /* A few descriptors stay free for the listeners, epoll, the signal
     * descriptor, the spare and the standard streams. */
    return rl.rlim_cur > 64 + 32 ? (size_t)rl.rlim_cur - 32 : 32;
}

static int setup(server *s, const emi_epmd_server_config *cfg, const int *lfds, int nlfds)
{
    s->cfg = cfg;
    s->ep = -1;
    s->sig.fd = -1;
    s->spare = -1;
    s->max_conns = cfg->max_conns ? cfg->max_conns : default_max_conns();
    uint64_t seed = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32);
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &seed, sizeof seed) != (ssize_t)sizeof seed)
            seed ^= (uint64_t)time(NULL);
        close(fd);
    }
    int rc = emi_epmd_state_init(&s->st, cfg->port, cfg->relaxed, cfg->max_names, seed);
    if (rc < 0)
        return rc;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (s->ep < 0)
        return -errno;
    for (int i = 0; i < nlfds; i++) {
        s->listeners[i] = (watch){.kind = K_LISTEN, .fd = lfds[i]};
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->listeners[i]};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, lfds[i], &ev) < 0)
            return -errno;
        s->nlisteners++;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    s->sig = (watch){.kind = K_SIGNAL, .fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)};
    if (s->sig.fd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &s->sig};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->sig.fd, &ev) < 0)
        return -errno;
    s->spare = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return 0;
}

static void teardown(server *s, const int *lfds, int nlfds)
{
    while (s->all)
        close_conn(s, s->all, 2, "the daemon is stopping");
    free_dead(s);
    emi_epmd_state_fini(&s->st);
    for (int i = 0; i < nlfds; i++)
        close(lfds[i]);
    if (s->ep >= 0)
        close(s->ep);
    if (s->sig.fd >= 0)
        close(s->sig.fd);
    if (s->spare >= 0)
        close(s->spare);
}

int emi_epmd_serve(const emi_epmd_server_config *cfg, const int *lfds, int nlfds)
{
    server s;
    memset(&s, 0, sizeof s);
    int rc = nlfds > EMI_EPMD_MAX_LISTEN ? -EINVAL : setup(&s, cfg, lfds, nlfds);
    if (rc < 0) {
        teardown(&s, lfds, nlfds);
        return rc;
    }
    emi_epmd_log(0, "listening on port %u (%d sockets, at most %zu names and %zu connections%s)",
                 cfg->port, nlfds, cfg->max_names, s.max_conns,
                 cfg->relaxed ? ", relaxed command check" : "");
    struct epoll_event evs[EVENTS];
    while (!s.quit) {
        int timeout = -1;
        if (s.thead) {
            int64_t left = s.thead->deadline - now_ms();
            timeout = left < 0 ? 0 : left > 60000 ? 60000 : (int)left;
        }
        int n = epoll_wait(s.ep, evs, EVENTS, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            emi_epmd_log(0, "epoll_wait failed: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !s.quit; i++)
            dispatch(&s, &evs[i]);
        free_dead(&s);
        expire(&s);
        free_dead(&s);
    }
    teardown(&s, lfds, nlfds);
    return rc;
}
