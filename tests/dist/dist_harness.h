/*
 * dist_harness.h - what the distribution tests share: nodes run as child OS
 * processes, and the pipes through which the test (the parent) coordinates them.
 *
 * A test forks one child per node before anything in the parent starts a
 * runtime (the parent never runs one: it only coordinates, kills and waits).
 * Each child runs em_run with a root that calls the test's role function; the
 * role starts distribution with dh_start, which reports the port it listens on
 * to the parent as the line "port N". Parent and child then talk in text lines:
 * the parent tells a node where its peers are ("peer b@127.0.0.1:PORT"), when to
 * go on, when it killed another node; a node tells the parent what it learned.
 *
 * Inside a node, the CHECK* macros of check.h record failures (cmocka's asserts
 * must not run on a process stack). A child exits with status 0 only if em_run
 * returned 0 and no CHECK failed; otherwise it prints the first failure, tagged
 * with its node name, and exits with 1. It ends with exit(), not _exit(), so
 * the sanitizers' checks at exit (leaks) run in every node.
 *
 * The parent waits for each child with a deadline and kills it with SIGKILL if
 * it is late, so a hung node fails its test instead of hanging CI; the teardown
 * of every test kills whatever children are left (a failed assert in the parent
 * leaves no stragglers), and each child dies with its parent (PR_SET_PDEATHSIG).
 */
#ifndef EMBER_TEST_DIST_HARNESS_H
#define EMBER_TEST_DIST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
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
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "check.h"
#include "ember.h"

/* The cookie every node of a test shares unless the test says otherwise. */
#define DH_COOKIE "ember-dtest-cookie"
/* Most children a test runs at once. */
#define DH_MAX_CHILDREN 8
/* What a parent waits for a child that should end by itself. */
#define DH_WAIT_MS 20000

/* Monotonic milliseconds, the same clock in every process of the machine, so a
 * time taken by the parent (a kill) and one taken by a node compare. */
static inline int64_t dh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies src into dst (cap bytes), cut to fit and NUL-terminated. */
static inline void dh_copy(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ================================================================ parent */

typedef struct dh_child {
    char name[128];          /* the node's name ("b@127.0.0.1"), for messages */
    pid_t pid;               /* 0 once reaped */
    int to_fd, from_fd;      /* the parent's ends of the two pipes */
    char buf[4096];          /* what came from the child, not yet a whole line */
    size_t len;
    int status;              /* waitpid's status once reaped */
} dh_child;

static dh_child *dh_children[DH_MAX_CHILDREN];

/* What the child knows of itself. */
static struct {
    char name[128];
    int in_fd, out_fd;
    char buf[4096];
    size_t len;
    em_proc_fn role;
    int (*plain)(void);
} dh_me;

static inline void dh_child_root(em_term arg);

/* The child's side of dh_spawn: run the role as a node and exit with what it says. */
static inline _Noreturn void dh_child_main(void)
{
    if (dh_me.plain)
        exit(dh_me.plain());
    CHECK_RESET();
    em_config c = check_config(2);
    int rc = em_run(&c, dh_child_root, EM_NIL);
    if (rc != 0 || atomic_load(&check_failed)) {
        fprintf(stderr, "[%s] FAILED: em_run returned %d; %s (%d failures)\n", dh_me.name, rc,
                check_failure[0] ? check_failure : "no check failed", atomic_load(&check_failed));
        exit(1);
    }
    exit(0);
}

static inline void dh_forget(dh_child *c)
{
    for (int i = 0; i < DH_MAX_CHILDREN; i++)
        if (dh_children[i] == c)
            dh_children[i] = NULL;
}

static inline void dh_spawn_any(dh_child *c, const char *name, em_proc_fn role, int (*plain)(void))
{
    int down[2], up[2];   /* parent -> child, child -> parent */
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    signal(SIGPIPE, SIG_IGN);   /* a dead child's pipe must not end the test */
    assert_int_equal(0, pipe(down));
    assert_int_equal(0, pipe(up));
    fflush(stdout);   /* or the child's exit would print the parent's buffer again */
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(99);
        for (int i = 0; i < DH_MAX_CHILDREN; i++)
            if (dh_children[i]) {
                close(dh_children[i]->to_fd);
                close(dh_children[i]->from_fd);
            }
        close(down[1]);
        close(up[0]);
        snprintf(dh_me.name, sizeof dh_me.name, "%s", name);
        dh_me.in_fd = down[0];
        dh_me.out_fd = up[1];
        dh_me.len = 0;
        dh_me.role = role;
        dh_me.plain = plain;
        fcntl(dh_me.in_fd, F_SETFL, fcntl(dh_me.in_fd, F_GETFL) | O_NONBLOCK);
        dh_child_main();
    }
    close(down[0]);
    close(up[1]);
    c->pid = pid;
    c->to_fd = down[1];
    c->from_fd = up[0];
    for (int i = 0; i < DH_MAX_CHILDREN; i++)
        if (!dh_children[i]) {
            dh_children[i] = c;
            break;
        }
}

/* Forks a child that runs role as the root process of a node named name. */
static inline void dh_spawn(dh_child *c, const char *name, em_proc_fn role)
{
    dh_spawn_any(c, name, role, NULL);
}

/* Forks a child that runs fn without a runtime; it exits with fn's result. */
static inline void dh_spawn_plain(dh_child *c, const char *name, int (*fn)(void))
{
    dh_spawn_any(c, name, NULL, fn);
}

/* Tells the child a line. */
static inline void dh_say(dh_child *c, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w;
    do
        w = write(c->to_fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
}

/* The next line from the child, without its newline; false if none came within
 * timeout_ms (or the child closed its end: it has ended). */
static inline bool dh_read(dh_child *c, char *out, size_t cap, int timeout_ms)
{
    int64_t deadline = dh_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t l = (size_t)(nl - c->buf);
            snprintf(out, cap, "%.*s", (int)l, c->buf);
            memmove(c->buf, nl + 1, c->len - l - 1);
            c->len -= l + 1;
            return true;
        }
        int64_t left = deadline - dh_now_ms();
        if (left <= 0 || c->len == sizeof c->buf)
            return false;
        struct pollfd p = {c->from_fd, POLLIN, 0};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return false;
        ssize_t n = read(c->from_fd, c->buf + c->len, sizeof c->buf - c->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        c->len += (size_t)n;
    }
}

/* Waits for a line starting with prefix (other lines are printed and skipped)
 * and copies what follows the prefix into rest; fails the test if none comes. */
static inline void dh_expect(dh_child *c, const char *prefix, char *rest, size_t cap, int timeout_ms)
{
    int64_t deadline = dh_now_ms() + timeout_ms;
    char line[1024];
    size_t pl = strlen(prefix);
    for (;;) {
        int64_t left = deadline - dh_now_ms();
        if (left < 0 || !dh_read(c, line, sizeof line, (int)left)) {
            print_error("expected the line \"%s...\" from %s within %d ms; none came\n", prefix, c->name,
                        timeout_ms);
            fail();
        }
        if (strncmp(line, prefix, pl) == 0) {
            if (rest)
                dh_copy(rest, cap, line + pl);
            return;
        }
        print_message("[%s] said: %s\n", c->name, line);
    }
}

/* The port the child's node listens on (its "port N" line). */
static inline int dh_port(dh_child *c)
{
    char rest[64];
    dh_expect(c, "port ", rest, sizeof rest, 10000);
    int port = atoi(rest);
    if (port <= 0 || port > 65535) {
        print_error("%s reported the port \"%s\"\n", c->name, rest);
        fail();
    }
    return port;
}

/* Reaps the child if it has ended: true (status in c->status) or false. */
static inline bool dh_reap(dh_child *c, bool block)
{
    if (!c->pid)
        return true;
    pid_t r;
    do
        r = waitpid(c->pid, &c->status, block ? 0 : WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r != c->pid)
        return false;
    c->pid = 0;
    return true;
}

/* Sends the child a signal. */
static inline void dh_signal(dh_child *c, int sig)
{
    if (c->pid)
        kill(c->pid, sig);
}

/* Kills the child with SIGKILL and reaps it. */
static inline void dh_kill(dh_child *c)
{
    if (!c->pid)
        return;
    kill(c->pid, SIGKILL);
    dh_reap(c, true);
    close(c->to_fd);
    close(c->from_fd);
    dh_forget(c);
}

/* Waits up to timeout_ms for the child to end; kills it if it does not. Returns
 * its exit status, or -1 (after printing why) if it was late or killed. */
static inline int dh_wait(dh_child *c, int timeout_ms)
{
    int64_t deadline = dh_now_ms() + timeout_ms;
    bool late = false;
    while (!dh_reap(c, false)) {
        if (dh_now_ms() > deadline) {
            print_error("%s did not end within %d ms: killed\n", c->name, timeout_ms);
            kill(c->pid, SIGKILL);
            dh_reap(c, true);
            late = true;
            break;
        }
        /* Print what the child says meanwhile: it helps to read a failure. */
        char line[1024];
        while (dh_read(c, line, sizeof line, 0))
            print_message("[%s] said: %s\n", c->name, line);
        usleep(5000);
    }
    close(c->to_fd);
    close(c->from_fd);
    dh_forget(c);
    if (late)
        return -1;
    if (WIFSIGNALED(c->status)) {
        print_error("%s was killed by signal %d\n", c->name, WTERMSIG(c->status));
        return -1;
    }
    return WEXITSTATUS(c->status);
}

/* Fails the test unless the child ends by itself with status 0. */
#define DH_ASSERT_ENDS_OK(c, timeout_ms)                                                         \
    do {                                                                                          \
        int st_ = dh_wait((c), (timeout_ms));                                                     \
        if (st_ != 0) {                                                                           \
            print_error("%s:%d: node %s: expected exit status 0, got %d\n", __FILE__, __LINE__,   \
                        (c)->name, st_);                                                          \
            fail();                                                                               \
        }                                                                                         \
    } while (0)

/* cmocka teardown: kill and reap whatever children a test left. */
static inline int dh_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < DH_MAX_CHILDREN; i++) {
        dh_child *c = dh_children[i];
        if (!c)
            continue;
        if (c->pid) {
            kill(c->pid, SIGKILL);
            dh_reap(c, true);
        }
        close(c->to_fd);
        close(c->from_fd);
        dh_children[i] = NULL;
    }
    return 0;
}

#define DH_TEST(f) cmocka_unit_test_teardown(f, dh_teardown)

/* Runs the group; DTEST_FILTER=pattern in the environment runs only the tests
 * whose names match it (cmocka's wildcards), to look at one test alone. */
#define DH_RUN(tests)                                                                            \
    (getenv("DTEST_FILTER") ? cmocka_set_test_filter(getenv("DTEST_FILTER")) : (void)0,           \
     cmocka_run_group_tests((tests), NULL, NULL))

/* ================================================================= child */

/* Tells the parent a line. Any thread, any time. */
static inline void dh_tell(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w;
    do
        w = write(dh_me.out_fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
}

/* The next line from the parent, within timeout_ms (EM_INFINITY: for ever).
 * Process only: it polls the pipe and sleeps as a process between looks, so
 * the scheduler thread is never blocked in read(). */
static inline bool dh_hear(char *out, size_t cap, int64_t timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : dh_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(dh_me.buf, '\n', dh_me.len);
        if (nl) {
            size_t l = (size_t)(nl - dh_me.buf);
            snprintf(out, cap, "%.*s", (int)l, dh_me.buf);
            memmove(dh_me.buf, nl + 1, dh_me.len - l - 1);
            dh_me.len -= l + 1;
            return true;
        }
        ssize_t n = read(dh_me.in_fd, dh_me.buf + dh_me.len, sizeof dh_me.buf - dh_me.len);
        if (n > 0) {
            dh_me.len += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR) || dh_now_ms() >= deadline)
            return false;
        em_sleep(2);
    }
}

/* Waits for a line from the parent that starts with prefix and copies the rest
 * (rest may be NULL); a CHECK failure and false if none comes in time. */
static inline bool dh_hear_expect(const char *prefix, char *rest, size_t cap, int64_t timeout_ms)
{
    char line[1024];
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : dh_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = timeout_ms < 0 ? EM_INFINITY : deadline - dh_now_ms();
        if ((timeout_ms >= 0 && left < 0) || !dh_hear(line, sizeof line, left)) {
            CHECK_FAIL("[%s] expected the line \"%s...\" from the test within %lld ms; none came",
                       dh_me.name, prefix, (long long)timeout_ms);
            return false;
        }
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            if (rest)
                dh_copy(rest, cap, line + strlen(prefix));
            return true;
        }
    }
}

/* The configuration nodes of a test start from: this child's name, a free port
 * on the loopback, the shared cookie, a tick of 3 s, errors only in the log
 * (EMBER_DTEST_LOG=2 or 3 in the environment shows more). */
static inline em_dist_config dh_config(void)
{
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = dh_me.name;
    c.listen = "127.0.0.1:0";
    c.cookie = DH_COOKIE;
    c.tick_ms = 3000;
    const char *lv = getenv("EMBER_DTEST_LOG");
    c.log_level = lv ? atoi(lv) : 1;
    return c;
}

/* Starts distribution with c and tells the parent the port. */
static inline int dh_start(const em_dist_config *c)
{
    int rc = em_dist_start(c);
    if (rc != 0) {
        CHECK_FAIL("[%s] em_dist_start: expected 0, got %d (%s)", dh_me.name, rc, em_strerror(rc));
        return rc;
    }
    int port = em_node_port();
    if (port <= 0)
        CHECK_FAIL("[%s] em_node_port: expected a port, got %d", dh_me.name, port);
    dh_tell("port %d", port);
    return 0;
}

/* Starts distribution with dh_config()'s settings. */
static inline int dh_start_default(void)
{
    em_dist_config c = dh_config();
    return dh_start(&c);
}

/* The atom of the node in spec "name@host:port" (or "name@host"). */
static inline em_term dh_node_atom(const char *spec)
{
    const char *at = strchr(spec, '@');
    const char *colon = strrchr(spec, ':');
    size_t len = at && colon && colon > at ? (size_t)(colon - spec) : strlen(spec);
    return em_atomn(spec, len);
}

/* Waits for "peer SPEC" from the parent and connects to it: the node's atom,
 * or EM_NONE (after a CHECK failure). */
static inline em_term dh_connect_peer(void)
{
    char spec[512];
    if (!dh_hear_expect("peer ", spec, sizeof spec, 10000))
        return EM_NONE;
    int rc = em_node_connect(spec, 5000);
    if (rc != 0) {
        CHECK_FAIL("[%s] em_node_connect(\"%s\"): expected 0, got %d (%s)", dh_me.name, spec, rc,
                   em_strerror(rc));
        return EM_NONE;
    }
    return dh_node_atom(spec);
}

/* The root of every node: the role, then distribution stops, and the root ends
 * with reason shutdown so that the helpers the role spawn-linked end too. */
static inline void dh_child_root(em_term arg)
{
    dh_me.role(arg);
    em_dist_stop();   /* EM_ESTATE if the role stopped it already: fine */
    em_exit(em_atom("shutdown"));
}

/* Text of a term for failure messages (a static buffer per call site is not
 * needed: each caller passes its own). */
static inline const char *dh_fmt(em_term t, char *buf, size_t cap)
{
    if (t == EM_NONE)
        snprintf(buf, cap, "(none)");
    else if (em_format(t, buf, cap) < 0)
        snprintf(buf, cap, "(unprintable)");
    return buf;
}

/* True if no message arrives within ms (the mailbox stays empty); otherwise
 * the message that came is in *got (got may be NULL). */
static inline bool dh_quiet(int64_t ms, em_term *got)
{
    em_term m;
    if (em_receive(&m, ms) == EM_ETIMEDOUT)
        return true;
    if (got)
        *got = m;
    return false;
}

/* A server's answer to ['who', From]: ['me', Self]. Returns true if msg was one. */
static inline bool dh_answer_who(em_term msg)
{
    em_pid_t from;
    if (!em_match(msg, "[who, ~p]", &from))
        return false;
    em_send(from, EM_ARR(em_atom("me"), em_pid(em_self())));
    return true;
}

/* The pid registered as name on node, asked with ['who', self()] (the server
 * must answer with dh_answer_who): 0 if no answer came in timeout_ms. */
static inline em_pid_t dh_ask_pid(const char *name, em_term node, int64_t timeout_ms)
{
    em_pid_t p = 0;
    int rc = em_send_remote(em_atom(name), node, EM_ARR(em_atom("who"), em_pid(em_self())));
    if (rc != 0) {
        CHECK_FAIL("[%s] em_send_remote(%s): expected 0, got %d", dh_me.name, name, rc);
        return 0;
    }
    if (em_receive_match(NULL, timeout_ms, "[me, ~p]", &p) != 0) {
        CHECK_FAIL("[%s] no answer from %s on %s within %lld ms", dh_me.name, name,
                   em_atom_name(node), (long long)timeout_ms);
        return 0;
    }
    return p;
}

/* Waits (a process) until the node list holds want (a visible node unless
 * hidden) or timeout_ms passes; true if it does. */
static inline bool dh_wait_listed(em_term node, bool hidden, bool want, int64_t timeout_ms)
{
    int64_t deadline = dh_now_ms() + timeout_ms;
    for (;;) {
        em_term list[64];
        size_t n = hidden ? em_nodes_hidden(list, 64) : em_nodes(list, 64);
        bool found = false;
        for (size_t i = 0; i < n && i < 64; i++)
            found |= list[i] == node;
        if (found == want)
            return true;
        if (dh_now_ms() >= deadline)
            return false;
        em_sleep(10);
    }
}

#endif
