/*
 * epmd_main.c - ember-epmd's entry point: reads the command line, then either
 * talks to a running daemon (-names, -kill, -stop) or becomes the daemon.
 *
 * The listening sockets are bound before -daemon detaches, so that when
 * "ember-epmd -daemon" returns, the port already answers, and a port that is
 * taken is reported on the terminal with a failing exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "epmd_args.h"
#include "epmd_cli.h"
#include "epmd_log.h"
#include "epmd_net.h"
#include "epmd_server.h"

/* A port mapper holds one descriptor per registered node and per connection
 * in flight, so it takes all the descriptors the hard limit allows. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Detaches from the terminal: the parent returns 0 at once (the sockets are
 * already listening), the child carries on in a new session with its standard
 * streams on /dev/null and its log in syslog. */
static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -errno;
    if (chdir("/") < 0)
        return -errno;
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    emi_epmd_log_use_syslog();
    return 0;
}

static int serve(const emi_epmd_args *a)
{
    raise_fd_limit();
    int fds[EMI_EPMD_MAX_LISTEN], nfds;
    int rc = emi_epmd_listen(a->port, a->addresses, fds, &nfds);
    if (rc == -EADDRINUSE) {
        fprintf(stderr, "ember-epmd: port %u is already in use (is another port mapper running?)\n",
                a->port);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "ember-epmd: cannot listen on port %u%s%s: %s\n", a->port,
                a->addresses ? " at " : "", a->addresses ? a->addresses : "",
                rc == -EINVAL ? "an address does not parse (or too many)" : strerror(-rc));
        return 1;
    }
    if (a->daemon && (rc = daemonize()) < 0) {
        fprintf(stderr, "ember-epmd: cannot detach: %s\n", strerror(-rc));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    emi_epmd_server_config cfg = {
        .port = a->port,
        .relaxed = a->relaxed,
        .packet_timeout_ms = a->packet_timeout_s * 1000,
        .max_names = a->max_names,
    };
    rc = emi_epmd_serve(&cfg, fds, nfds);
    if (rc < 0) {
        emi_epmd_log(0, "stopped on an error: %s", strerror(-rc));
        return 1;
    }
    emi_epmd_log(0, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    emi_epmd_args a;
    char err[256];
    if (emi_epmd_parse_args(argc, argv, &a, err, sizeof err) < 0) {
        fprintf(stderr, "ember-epmd: %s\nTry 'ember-epmd --help'.\n", err);
        return 2;
    }
    emi_epmd_log_level = a.debug;
    switch (a.mode) {
    case EMI_EPMD_HELP:
        fputs(emi_epmd_help, stdout);
        return 0;
    case EMI_EPMD_NAMES:
        return emi_epmd_cli_names(a.port);
    case EMI_EPMD_KILL:
        return emi_epmd_cli_kill(a.port);
    case EMI_EPMD_STOP:
        return emi_epmd_cli_stop(a.port, a.stop_name);
    case EMI_EPMD_SERVE:
        break;
    }
    return serve(&a);
}
