/*
 * node_epmd.c - starting a port mapper when this host has none, as `erl` does.
 *
 * The daemon outlives the node (it serves every node of the host), so it must
 * hold none of the node's descriptors: the child closes every descriptor above
 * stderr before it execs. `ember-epmd -daemon` binds before it detaches and
 * returns 0 only once the port answers; a status of 1 usually means another
 * node started one on the same port a moment earlier, which the probe after
 * it finds.
 */
#include "node_epmd.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "epmd_client.h"
#include "node_log.h"
#include "node_opts.h"

#define PROBE_MS 500
#define START_WAIT_MS 5000

bool node_epmd_running(uint16_t port)
{
    em_epmd_name_list l;
    if (em_epmd_names(NULL, port, PROBE_MS, &l) != 0)
        return false;
    em_epmd_name_list_free(&l);
    return true;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Waits up to ms for pid; its wait status, or -1 if it is still running. */
static int wait_child(pid_t pid, int ms)
{
    for (int waited = 0;; waited += 10) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= ms)
            return -1;
        sleep_ms(10);
    }
}

static int start_once(uint16_t port, bool *missing);

int node_epmd_ensure(uint16_t port)
{
    if (port == 0)
        port = em_epmd_default_port();
    /* Two port mappers started at once can each take one of the loopback
     * addresses and then both give up (a CI run saw it with two nodes starting
     * together): after a short, different wait, look and try again. */
    for (int attempt = 0;; attempt++) {
        bool missing = false;
        if (start_once(port, &missing) == 0)
            return 0;
        if (missing || attempt == 2)
            return NODE_EXIT_FAIL;
        sleep_ms(50 + (int)((unsigned)getpid() * 37u % 200u));
    }
}

static int start_once(uint16_t port, bool *missing)
{
    if (node_epmd_running(port))
        return 0;
    char self[PATH_MAX], beside[PATH_MAX + 16], portbuf[8];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    beside[0] = 0;
    if (n > 0) {
        self[n] = 0;
        snprintf(beside, sizeof beside, "%s/ember-epmd", dirname(self));
    }
    snprintf(portbuf, sizeof portbuf, "%u", port);
    bool here = beside[0] && access(beside, X_OK) == 0;
    node_log(LOG_INFO, "no port mapper on port %u: starting %s -daemon -port %u", port,
             here ? beside : "ember-epmd (from $PATH)", port);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        node_log(LOG_ERROR, "cannot start ember-epmd: fork: %s", strerror(errno));
        return NODE_EXIT_FAIL;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls here: the parent may have threads. */
        close_range(3, ~0U, 0);
        if (here) {
            char *argv[] = {beside, "-daemon", "-port", portbuf, NULL};
            execv(beside, argv);
        }
        char *argv[] = {"ember-epmd", "-daemon", "-port", portbuf, NULL};
        execvp("ember-epmd", argv);
        _exit(127);
    }
    int st = wait_child(pid, START_WAIT_MS);
    if (st == -1) {
        node_log(LOG_ERROR, "ember-epmd -daemon did not return within %d ms", START_WAIT_MS);
        return NODE_EXIT_FAIL;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
        node_log(LOG_ERROR, "cannot start ember-epmd: not beside ember-node nor in $PATH");
        *missing = true;
        return NODE_EXIT_FAIL;
    }
    /* Started, or lost a race with another node starting one: either way the
     * port should answer now. */
    for (int i = 0; i < 20; i++) {
        if (node_epmd_running(port)) {
            node_log(LOG_INFO, "port mapper started on port %u", port);
            return 0;
        }
        sleep_ms(50);
    }
    node_log(LOG_ERROR, "ember-epmd exited with status %d and nothing answers on port %u",
             WIFEXITED(st) ? WEXITSTATUS(st) : -1, port);
    return NODE_EXIT_FAIL;
}
