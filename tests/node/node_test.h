/*
 * node_test.h - what the ember-node tests share: ember-node and ember-epmd
 * processes started on free ports with their logs in a temporary directory,
 * and a "probe": a short-lived hidden node run in the test process itself, that
 * talks to the nodes under test (through their ember_ctl services) and records
 * what it saw for the test to assert afterwards.
 *
 * Processes are started only from the test's main thread, never while a probe
 * runs (PR_SET_PDEATHSIG fires when the forking *thread* ends, and a probe's
 * threads end with it). Each started process dies with the test
 * (PR_SET_PDEATHSIG), and every test's teardown kills what is left, so a
 * failed assertion leaves no strays. A probe must not call cmocka's asserts:
 * they would jump off a process's stack. PCHECK records the first failure
 * instead and leaves the probe function; nt_probe asserts it after the
 * runtime has ended.
 */
#ifndef EMBER_TEST_NODE_H
#define EMBER_TEST_NODE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "ember.h"
#include "epmd_client.h"

#define NT_MAX_PROCS 16
#define NT_UP_MS 15000        /* a node has this long to say it is up */
#define NT_EXIT_MS 10000      /* a stopping node has this long to exit */

/* ---------------------------------------------------------------- time */

static inline int64_t nt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void nt_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------- processes */

typedef struct nt_proc {
    char tag[64];
    char log[512];
    pid_t pid;               /* 0 once reaped or never started */
    bool ours;               /* our child (waitpid works); a detached node is not */
    int status;
} nt_proc;

static nt_proc nt_procs[NT_MAX_PROCS];
static char nt_dir[256];
static char nt_cookie_file[300];

/* A port the kernel picked a moment ago and let go. */
static inline uint16_t nt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(0, bind(fd, (struct sockaddr *)&a, sizeof a));
    assert_int_equal(0, getsockname(fd, (struct sockaddr *)&a, &len));
    close(fd);
    return ntohs(a.sin_port);
}

/* Reads a whole (small) file into buf, NUL-terminated; its length. */
static inline size_t nt_read_file(const char *path, char *buf, size_t cap)
{
    buf[0] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    buf[n] = 0;
    close(fd);
    return n;
}

static inline void nt_dump_log(const nt_proc *p)
{
    static char buf[65536];
    nt_read_file(p->log, buf, sizeof buf);
    print_error("---- log of %s (%s) ----\n%s---- end of log ----\n", p->tag, p->log, buf);
}

static inline void nt_dump_logs(void)
{
    for (int i = 0; i < NT_MAX_PROCS; i++)
        if (nt_procs[i].tag[0])
            nt_dump_log(&nt_procs[i]);
}

#define NT_FAIL(...)                                                                             \
    do {                                                                                         \
        print_error("%s:%d: ", __FILE__, __LINE__);                                              \
        print_error(__VA_ARGS__);                                                                \
        print_error("\n");                                                                       \
        nt_dump_logs();                                                                          \
        fail();                                                                                  \
    } while (0)

#define NT_EXPECT(cond, ...)                                                                     \
    do {                                                                                         \
        if (!(cond))                                                                             \
            NT_FAIL("expected " #cond ": " __VA_ARGS__);                                         \
    } while (0)

/* Starts argv[0] (a full path) with stdout and stderr appended to
 * nt_dir/<tag>.log and extra environment entries env (NULL-terminated, may be
 * NULL). The new process dies with the test. */
static inline nt_proc *nt_start(const char *tag, const char *const argv[], const char *const env[])
{
    nt_proc *p = NULL;
    for (int i = 0; i < NT_MAX_PROCS && !p; i++)
        if (!nt_procs[i].tag[0])
            p = &nt_procs[i];
    assert_non_null(p);
    memset(p, 0, sizeof *p);
    snprintf(p->tag, sizeof p->tag, "%s", tag);
    snprintf(p->log, sizeof p->log, "%s/%s.log", nt_dir, tag);
    int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    p->pid = pid;
    p->ours = true;
    return p;
}

/* Waits up to ms for p to exit; its wait status, or -1 if it is still running. */
static inline int nt_wait(nt_proc *p, int ms)
{
    if (!p->pid)
        return p->status;
    int64_t end = nt_now_ms() + ms;
    for (;;) {
        if (p->ours) {
            int st;
            pid_t r = waitpid(p->pid, &st, WNOHANG);
            if (r == p->pid) {
                p->pid = 0;
                p->status = st;
                return st;
            }
        } else if (kill(p->pid, 0) != 0) {
            p->pid = 0;
            p->status = 0;
            return 0;
        } else {
            /* Not our child: gone once it is a zombie of someone else. */
            char path[64], stat[512];
            snprintf(path, sizeof path, "/proc/%d/stat", (int)p->pid);
            nt_read_file(path, stat, sizeof stat);
            const char *close_paren = strrchr(stat, ')');
            if (close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z') {
                p->pid = 0;
                return 0;
            }
        }
        if (nt_now_ms() >= end)
            return -1;
        nt_sleep_ms(10);
    }
}

/* Sends sig and waits for the exit; the wait status, or -1. */
static inline int nt_signal_wait(nt_proc *p, int sig, int ms)
{
    if (p->pid)
        kill(p->pid, sig);
    return nt_wait(p, ms);
}

static inline bool nt_exited_with(int status, int code)
{
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

/* Whether p's log holds needle. */
static inline bool nt_log_has(const nt_proc *p, const char *needle)
{
    static char buf[65536];
    nt_read_file(p->log, buf, sizeof buf);
    return strstr(buf, needle) != NULL;
}

/* Waits up to ms for needle to appear in p's log; whether it did. */
static inline bool nt_wait_log(const nt_proc *p, const char *needle, int ms)
{
    int64_t end = nt_now_ms() + ms;
    while (!nt_log_has(p, needle)) {
        if (nt_now_ms() > end)
            return false;
        nt_sleep_ms(20);
    }
    return true;
}

/* Where needle first appears in p's log (-1 if it does not). */
static inline long nt_log_pos(const nt_proc *p, const char *needle)
{
    static char buf[65536];
    nt_read_file(p->log, buf, sizeof buf);
    const char *at = strstr(buf, needle);
    return at ? at - buf : -1;
}

/* Waits until the node logs "up on port N"; N. Fails the test (with the log)
 * if the node exits or is late. */
static inline int nt_wait_up(nt_proc *p)
{
    static char buf[65536];
    int64_t end = nt_now_ms() + NT_UP_MS;
    for (;;) {
        nt_read_file(p->log, buf, sizeof buf);
        const char *up = strstr(buf, ": up on port ");
        if (up)
            return atoi(up + strlen(": up on port "));
        if (p->ours && nt_wait(p, 0) != -1)
            NT_FAIL("%s exited (status %d) before it was up", p->tag, p->status);
        if (nt_now_ms() > end)
            NT_FAIL("%s is not up after %d ms", p->tag, NT_UP_MS);
        nt_sleep_ms(20);
    }
}

/* Starts ember-epmd in the foreground on a free port (a test's own port
 * mapper, stopped by the teardown); its port. The port was only free a moment
 * ago: should another process take it before ember-epmd binds it, ember-epmd
 * exits at once, and another port is tried (a few times). */
static inline uint16_t nt_start_epmd(void)
{
    for (int attempt = 1;; attempt++) {
        uint16_t port = nt_free_port();
        char portbuf[8];
        snprintf(portbuf, sizeof portbuf, "%u", port);
        const char *argv[] = {EMBER_EPMD_BIN, "-port", portbuf, NULL};
        nt_proc *p = nt_start("epmd", argv, NULL);
        int64_t end = nt_now_ms() + 5000;
        for (;;) {
            em_epmd_name_list l;
            if (em_epmd_names(NULL, port, 500, &l) == 0) {
                em_epmd_name_list_free(&l);
                return port;
            }
            if (nt_wait(p, 0) != -1) {
                if (attempt < 5 && nt_log_has(p, "already in use")) {
                    print_message("port %u was taken before ember-epmd bound it: trying another\n",
                                  port);
                    memset(p, 0, sizeof *p);   /* its slot, for the next attempt */
                    break;
                }
                NT_FAIL("ember-epmd on port %u exited before it answered (status %d)", port,
                        p->status);
            }
            if (nt_now_ms() > end)
                NT_FAIL("ember-epmd on port %u did not come up", port);
            nt_sleep_ms(10);
        }
    }
}

/* Runs argv to its end (at most 20 s) with stdout and stderr captured into out
 * and extra environment env; its exit status (-1 if it was killed). */
static inline int nt_run_capture(const char *const argv[], const char *const env[], char *out,
                                 size_t cap)
{
    char path[400];
    static int seq;
    snprintf(path, sizeof path, "%s/capture-%d.out", nt_dir, ++seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(fd);
    int st = 0;
    int64_t end = nt_now_ms() + 20000;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (nt_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            nt_read_file(path, out, cap);
            print_error("%s did not end within 20 s; output:\n%s\n", argv[0], out);
            return -1;
        }
        nt_sleep_ms(5);
    }
    nt_read_file(path, out, cap);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ----------------------------------------------------- setup, teardown */

static inline int nt_setup(void **state)
{
    (void)state;
    memset(nt_procs, 0, sizeof nt_procs);
    snprintf(nt_dir, sizeof nt_dir, "/tmp/ember-node-test.XXXXXX");
    if (!mkdtemp(nt_dir))
        return -1;
    snprintf(nt_cookie_file, sizeof nt_cookie_file, "%s/cookie", nt_dir);
    FILE *f = fopen(nt_cookie_file, "w");
    if (!f)
        return -1;
    fputs("ember-node-test-cookie\n", f);
    fclose(f);
    chmod(nt_cookie_file, 0400);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Kills what a test left running (nodes first, port mappers last, so that a
 * mapper has no registrations left when it goes), and removes the directory. */
static inline int nt_teardown(void **state)
{
    (void)state;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NT_MAX_PROCS; i++) {
            nt_proc *p = &nt_procs[i];
            bool epmd = strcmp(p->tag, "epmd") == 0;
            if (p->pid && epmd == (pass == 1)) {
                kill(p->pid, SIGKILL);
                if (nt_wait(p, 3000) == -1)
                    print_error("teardown: %s (pid %d) did not die\n", p->tag, (int)p->pid);
            }
        }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", nt_dir);
    if (nt_dir[0] && system(cmd) != 0)
        print_error("teardown: cannot remove %s\n", nt_dir);
    memset(nt_procs, 0, sizeof nt_procs);
    return 0;
}

/* ----------------------------------------------------------- the probe */

static char nt_probe_failure[2048];
static char nt_probe_name[64];

static inline void nt_probe_fail(const char *file, int line, const char *fmt, ...)
{
    if (nt_probe_failure[0])
        return;
    int n = snprintf(nt_probe_failure, sizeof nt_probe_failure, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nt_probe_failure + n, sizeof nt_probe_failure - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Inside a probe: record the failure and leave the probe function. */
#define PCHECK(cond, ...)                                                                        \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            nt_probe_fail(__FILE__, __LINE__, "expected " #cond ": " __VA_ARGS__);               \
            return;                                                                              \
        }                                                                                        \
    } while (0)

typedef void (*nt_probe_fn)(void *ctx);
static nt_probe_fn nt_probe_body;
static void *nt_probe_ctx;

static inline void nt_probe_root(em_term arg)
{
    (void)arg;
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = nt_probe_name;
    c.cookie_file = nt_cookie_file;
    c.hidden = true;
    c.log_level = 1;
    int rc = em_dist_start(&c);
    if (rc != 0) {
        nt_probe_fail(__FILE__, __LINE__, "the probe node cannot start: %s", em_strerror(rc));
        em_halt(0);
        return;
    }
    nt_probe_body(nt_probe_ctx);
    em_dist_stop();
    em_halt(0);
}

/* Runs fn(ctx) in a hidden node of its own named probeN@127.0.0.1, and fails
 * the test (with every log) if a PCHECK failed in it. */
static inline void nt_probe(nt_probe_fn fn, void *ctx)
{
    static int seq;
    snprintf(nt_probe_name, sizeof nt_probe_name, "probe%d_%d@127.0.0.1", (int)getpid(), ++seq);
    nt_probe_failure[0] = 0;
    nt_probe_body = fn;
    nt_probe_ctx = ctx;
    em_config cfg;
    em_config_init(&cfg);
    cfg.schedulers = 2;
    int rc = em_run(&cfg, nt_probe_root, EM_NIL);
    if (rc != 0)
        NT_FAIL("the probe's runtime returned %d", rc);
    if (nt_probe_failure[0])
        NT_FAIL("%s", nt_probe_failure);
}

/* In a probe: connects to name@127.0.0.1:port. */
static inline int nt_connect(const char *node, int port)
{
    char spec[300];
    snprintf(spec, sizeof spec, "%s:%d", node, port);
    return em_node_connect(spec, 5000);
}

typedef struct nt_ref {
    em_term ref;
} nt_ref;

static inline bool nt_is_ctl_reply(em_term m, void *ctx)
{
    nt_ref *r = ctx;
    return em_len(m) == 4 && em_is_atom(em_at(m, 0), "$ctl_reply") && em_equal(em_at(m, 1), r->ref);
}

/* In a probe: asks node's ember_ctl service; 0 with *value (may be NULL) for
 * an ok reply, EM_EINVAL for an error reply, EM_ETIMEDOUT. */
static inline int nt_ctl(const char *node, const char *cmd, em_term arg, em_term *value,
                         int64_t timeout_ms)
{
    nt_ref r = {em_make_ref()};
    em_send_remote(em_atom("ember_ctl"), em_atom(node),
                   EM_ARR(em_atom("$ctl"), em_pid(em_self()), r.ref, em_atom(cmd), arg));
    em_term m;
    int rc = em_receive_if(&m, timeout_ms, nt_is_ctl_reply, &r);
    if (rc)
        return rc;
    if (value)
        *value = em_at(m, 3);
    return em_is_atom(em_at(m, 2), "ok") ? 0 : EM_EINVAL;
}

/* In a probe: the visible nodes node says it is connected to, as text
 * ("[a@..., b@...]"); false if it does not answer. */
static inline bool nt_visible_of(const char *node, char *out, size_t cap)
{
    em_term v;
    out[0] = 0;
    if (nt_ctl(node, "nodes", EM_NIL, &v, 2000) != 0)
        return false;
    /* [[visible, [...]], [hidden, [...]]] */
    em_term vis = em_at(em_at(v, 0), 1);
    if (vis == EM_NONE)
        return false;
    em_format(vis, out, cap);
    return true;
}

/* In a probe: waits up to ms until each of the n nodes lists every other as
 * visible; true, or false with what each said in why. */
static inline bool nt_wait_mesh(const char *const nodes[], size_t n, int64_t ms, char *why,
                                size_t cap)
{
    int64_t end = em_now_ms() + ms;
    for (;;) {
        bool all = true;
        size_t o = 0;
        why[0] = 0;
        for (size_t i = 0; i < n; i++) {
            char vis[1024];
            bool ok = nt_visible_of(nodes[i], vis, sizeof vis);
            if (o < cap)
                o += (size_t)snprintf(why + o, cap - o, "%s sees %s; ", nodes[i],
                                      ok ? vis : "(no answer)");
            for (size_t j = 0; j < n; j++) {
                char quoted[300];
                snprintf(quoted, sizeof quoted, "'%s'", nodes[j]);
                if (j != i && (!ok || !strstr(vis, quoted)))
                    all = false;
            }
        }
        if (all)
            return true;
        if (em_now_ms() > end)
            return false;
        em_sleep(100);
    }
}

#endif /* EMBER_TEST_NODE_H */
