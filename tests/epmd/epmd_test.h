/*
 * epmd_test.h - what the port-mapper tests share: assertions that print what
 * was expected and what came, a daemon started on a free port for a test, and
 * raw socket helpers for sending requests byte by byte.
 *
 * The daemon under test is the built ember-epmd (EMBER_EPMD_BIN, set by CMake),
 * started with fork and exec and stopped with SIGTERM; a test fails if it does
 * not then exit with status 0, which also catches sanitizer reports at exit.
 */
#ifndef EMBER_TEST_EPMD_H
#define EMBER_TEST_EPMD_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- assertions that say what was expected ---- */

#define EXPECT_INT(expected, got)                                                               \
    do {                                                                                         \
        long long e_ = (long long)(expected), g_ = (long long)(got);                             \
        if (e_ != g_) {                                                                          \
            print_error("%s:%d: %s: expected %lld, got %lld\n", __FILE__, __LINE__, #got, e_, g_); \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

#define EXPECT_TRUE(cond, ...)                                                                   \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            print_error("%s:%d: expected %s: ", __FILE__, __LINE__, #cond);                     \
            print_error(__VA_ARGS__);                                                            \
            print_error("\n");                                                                   \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

#define EXPECT_STR(expected, got)                                                                \
    do {                                                                                         \
        const char *e_ = (expected), *g_ = (got);                                                \
        if (!g_ || strcmp(e_, g_) != 0) {                                                        \
            print_error("%s:%d: %s: expected \"%s\", got \"%s\"\n", __FILE__, __LINE__, #got, e_, \
                        g_ ? g_ : "(null)");                                                     \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

/* Prints len bytes as hex into buf (cut to fit). */
static inline const char *hex_text(char *buf, size_t cap, const void *p, size_t len)
{
    const unsigned char *b = p;
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < len && o + 4 < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%02x ", b[i]);
    return buf;
}

#define EXPECT_BYTES(expected, elen, got, glen)                                                 \
    do {                                                                                         \
        size_t el_ = (elen), gl_ = (glen);                                                       \
        if (el_ != gl_ || memcmp((expected), (got), el_) != 0) {                                 \
            char eb_[512], gb_[512];                                                             \
            print_error("%s:%d: %s: expected [%s] (%zu bytes), got [%s] (%zu bytes)\n", __FILE__, \
                        __LINE__, #got, hex_text(eb_, sizeof eb_, (expected), el_), el_,         \
                        hex_text(gb_, sizeof gb_, (got), gl_), gl_);                             \
            fail();                                                                              \
        }                                                                                        \
    } while (0)

/* ---- time ---- */

static inline long long test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---- raw sockets ---- */

/* A port that was free a moment ago (the kernel's pick for port 0). */
static inline uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        print_error("free_port: %s\n", strerror(errno));
        fail();
    }
    close(fd);
    return ntohs(a.sin_port);
}

/* A blocking connection to 127.0.0.1:port whose reads give up after 5 s; -1 if
 * the connection is refused. */
static inline int tcp_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static inline void send_raw(int fd, const void *p, size_t len)
{
    const char *b = p;
    while (len) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n <= 0) {
            print_error("send_raw: %s\n", n < 0 ? strerror(errno) : "short write");
            fail();
        }
        b += n;
        len -= (size_t)n;
    }
}

/* Sends a request: its 2-byte length, then the bytes. */
static inline void send_req(int fd, const void *req, size_t len)
{
    uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    send_raw(fd, hdr, 2);
    send_raw(fd, req, len);
}

/* Reads until the daemon closes the connection (or 5 s pass: then -1). */
static inline ssize_t recv_all(int fd, void *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, (char *)buf + n, cap - n, 0);
        if (r == 0)
            return (ssize_t)n;
        if (r < 0)
            return errno == ECONNRESET ? (ssize_t)n : -1;
        n += (size_t)r;
        if (n == cap)
            return (ssize_t)n;
    }
}

/* Reads exactly len bytes; false if the connection ends first. */
static inline int recv_exact(int fd, void *buf, size_t len)
{
    size_t n = 0;
    while (n < len) {
        ssize_t r = recv(fd, (char *)buf + n, len - n, 0);
        if (r <= 0)
            return 0;
        n += (size_t)r;
    }
    return 1;
}

/* Whether the daemon closes fd within ms (a read sees EOF or a reset). */
static inline int closed_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    long long end = test_now_ms() + ms;
    for (;;) {
        long long left = end - test_now_ms();
        if (left <= 0)
            return 0;
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        char b[256];
        ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return 1;
        if (r < 0 && errno != EAGAIN)
            return 1;
    }
}

/* Builds an ALIVE2_REQ body into buf; returns its length. */
static inline size_t alive2_req(uint8_t *buf, const char *name, uint16_t port, uint16_t highest,
                                const char *extra)
{
    size_t nl = strlen(name), el = strlen(extra);
    buf[0] = 120;
    buf[1] = (uint8_t)(port >> 8);
    buf[2] = (uint8_t)port;
    buf[3] = 77;
    buf[4] = 0;
    buf[5] = (uint8_t)(highest >> 8);
    buf[6] = (uint8_t)highest;
    buf[7] = 0;
    buf[8] = 5;
    buf[9] = (uint8_t)(nl >> 8);
    buf[10] = (uint8_t)nl;
    memcpy(buf + 11, name, nl);
    buf[11 + nl] = (uint8_t)(el >> 8);
    buf[12 + nl] = (uint8_t)el;
    memcpy(buf + 13 + nl, extra, el);
    return 13 + nl + el;
}

/* ---- the daemon under test ---- */

typedef struct daemon_proc {
    pid_t pid;
    uint16_t port;
} daemon_proc;

/* Whether something answers on 127.0.0.1:port. */
static inline int port_answers(uint16_t port)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

static inline void wait_port(uint16_t port, int up)
{
    long long end = test_now_ms() + 5000;
    while (port_answers(port) != up) {
        if (test_now_ms() > end) {
            print_error("port %u: expected it %s within 5 s\n", port, up ? "to answer" : "to close");
            fail();
        }
        sleep_ms(10);
    }
}

/* Daemons still running when a test fails (cmocka jumps out of it) are
 * killed when the test program exits, so that none outlives the run. */
static pid_t leftover_daemons[64];

static inline void kill_leftover_daemons(void)
{
    for (size_t i = 0; i < sizeof leftover_daemons / sizeof *leftover_daemons; i++) {
        if (leftover_daemons[i] > 0) {
            kill(leftover_daemons[i], SIGKILL);
            waitpid(leftover_daemons[i], NULL, 0);
            leftover_daemons[i] = 0;
        }
    }
}

static inline void track_daemon(pid_t pid, int add)
{
    static int registered;
    if (!registered) {
        atexit(kill_leftover_daemons);
        registered = 1;
    }
    for (size_t i = 0; i < sizeof leftover_daemons / sizeof *leftover_daemons; i++) {
        if (add && leftover_daemons[i] == 0) {
            leftover_daemons[i] = pid;
            return;
        }
        if (!add && leftover_daemons[i] == pid) {
            leftover_daemons[i] = 0;
            return;
        }
    }
}

/* When positive, the next daemons started run with this descriptor limit. */
static int daemon_nofile_limit;

/* Starts ember-epmd with the given flags (a NULL-terminated list, after which
 * "-port <port>" is added unless no_port) on port (a free one if 0) and waits
 * until it answers: true, with the daemon in *out. The port was only free a
 * moment ago, so another process may take it before the daemon binds it; the
 * daemon then exits at once, and this returns false (the daemon reaped) for
 * the caller to try another port. Watching for that exit while waiting, rather
 * than only for the port to answer, is what lets the caller retry: a taken
 * port that nobody listens on would never answer. Fails the test if the daemon
 * neither answers nor exits within 5 s. */
static inline bool try_start_daemon_args(int no_port, uint16_t port, const char *const *flags,
                                         daemon_proc *out)
{
    daemon_proc d = {.port = port ? port : free_port()};
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", d.port);
    const char *argv[32];
    int argc = 0;
    argv[argc++] = EMBER_EPMD_BIN;
    for (int i = 0; flags && flags[i] && argc < 28; i++)
        argv[argc++] = flags[i];
    if (!no_port) {
        argv[argc++] = "-port";
        argv[argc++] = portbuf;
    }
    argv[argc] = NULL;
    d.pid = fork();
    if (d.pid == 0) {
        if (daemon_nofile_limit > 0) {
            struct rlimit rl = {.rlim_cur = (rlim_t)daemon_nofile_limit,
                                .rlim_max = (rlim_t)daemon_nofile_limit};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(EMBER_EPMD_BIN, (char **)argv);
        _exit(127);
    }
    track_daemon(d.pid, 1);
    long long end = test_now_ms() + 5000;
    for (;;) {
        int st;
        if (waitpid(d.pid, &st, WNOHANG) == d.pid) {
            track_daemon(d.pid, 0);
            print_message("ember-epmd on port %u exited at once (wait status %d)\n", d.port, st);
            return false;
        }
        if (port_answers(d.port)) {
            *out = d;
            return true;
        }
        if (test_now_ms() > end) {
            print_error("port %u: expected ember-epmd to answer there within 5 s\n", d.port);
            fail();
        }
        sleep_ms(10);
    }
}

/* try_start_daemon_args that fails the test if the daemon does not come up;
 * with port 0 it tries up to six free ports. */
static inline daemon_proc start_daemon_args(int no_port, uint16_t port, const char *const *flags)
{
    daemon_proc d;
    for (int attempt = 0;; attempt++) {
        if (try_start_daemon_args(no_port, port, flags, &d))
            return d;
        if (port || attempt == 5) {
            print_error("ember-epmd did not come up (it exited at once)\n");
            fail();
        }
    }
}

#define START_DAEMON(...) start_daemon_args(0, 0, (const char *const[]){__VA_ARGS__, NULL})
#define START_DAEMON_PLAIN() start_daemon_args(0, 0, NULL)

/* Waits (up to ms) for the daemon to exit by itself; returns its wait status,
 * or -1 if it is still running. */
static inline int wait_exit(pid_t pid, int ms)
{
    long long end = test_now_ms() + ms;
    int st;
    while (test_now_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            track_daemon(pid, 0);
            return st;
        }
        sleep_ms(10);
    }
    return -1;
}

/* Stops the daemon with SIGTERM and checks that it exits with status 0. */
static inline void stop_daemon(daemon_proc *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGTERM);
    int st = wait_exit(d->pid, 5000);
    if (st == -1) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, &st, 0);
        track_daemon(d->pid, 0);
        print_error("ember-epmd (pid %d) did not stop within 5 s of SIGTERM\n", (int)d->pid);
        d->pid = 0;
        fail();
    }
    d->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        print_error("ember-epmd: expected exit status 0 after SIGTERM, got %s %d\n",
                    WIFEXITED(st) ? "exit status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        fail();
    }
}

/* Runs argv (with extra environment "NAME=value" strings) and captures its
 * stdout and stderr together into out; returns the exit status, or -1. */
static inline int run_capture(const char *const *argv, const char *const *env, char *out, size_t cap)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char **)argv);
        _exit(127);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(p[0], out + n, cap - n - 1)) > 0)
        n += (size_t)r;
    out[n] = '\0';
    /* Drain whatever does not fit, so that the child never blocks on a full pipe. */
    char sink[4096];
    while (read(p[0], sink, sizeof sink) > 0) {
    }
    close(p[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

#endif
