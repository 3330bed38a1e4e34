/*
 * node_detach.c - --detached, as Erlang's `erl -detached`: the node leaves the
 * terminal's session, and the command returns as soon as the node is up.
 *
 * The fork happens before the runtime starts any thread. The child reports
 * through a pipe: one line "up NODE PORT PID" once em_dist_start has succeeded
 * and the --run processes are started; the pipe closing without that line
 * (the child failed, or died) means it did not start. The pipe is close-on-exec
 * so a port mapper the node starts does not keep it.
 */
#include "node_detach.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node_opts.h"

#define REPORT_WAIT_MS 120000

static int report_fd = -1;

static int parent_wait(int fd)
{
    char buf[1024];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, REPORT_WAIT_MS);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "ember-node: the detached node has not reported within %d s\n",
                    REPORT_WAIT_MS / 1000);
            return NODE_EXIT_FAIL;
        }
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = 0;
        if (strchr(buf, '\n') || len == sizeof buf - 1)
            break;
    }
    buf[len] = 0;
    char node[512];
    int port, pid;
    if (sscanf(buf, "up %511s %d %d", node, &port, &pid) == 3) {
        printf("%s is up on port %d (pid %d)\n", node, port, pid);
        return NODE_EXIT_OK;
    }
    fprintf(stderr, "ember-node: the node did not start (its log says why)\n");
    return NODE_EXIT_FAIL;
}

int node_detach_start(int log_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "ember-node: cannot detach: pipe: %s\n", strerror(errno));
        return NODE_EXIT_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ember-node: cannot detach: fork: %s\n", strerror(errno));
        return NODE_EXIT_FAIL;
    }
    if (pid > 0) {
        close(p[1]);
        exit(parent_wait(p[0]));
    }
    close(p[0]);
    report_fd = p[1];
    setsid();
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        if (log_fd < 0)
            log_fd = null;
    }
    if (log_fd >= 0) {
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
    }
    if (log_fd > STDERR_FILENO && log_fd != null)
        close(log_fd);
    if (null > STDERR_FILENO)
        close(null);
    return 0;
}

void node_detach_ready(const char *node, int port)
{
    if (report_fd < 0)
        return;
    char line[600];
    int n = snprintf(line, sizeof line, "up %s %d %d\n", node, port, (int)getpid());
    if (n > 0 && write(report_fd, line, (size_t)n) != n) {
        /* The parent is gone: nobody is waiting for the report. */
    }
    close(report_fd);
    report_fd = -1;
}

void node_detach_failed(void)
{
    if (report_fd < 0)
        return;
    close(report_fd);
    report_fd = -1;
}
