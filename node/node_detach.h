/*
 * node_detach.h - --detached: the node runs in the background, and the command
 * that started it returns once the node is up (or could not start).
 */
#ifndef EMBER_NODE_DETACH_H
#define EMBER_NODE_DETACH_H

/* node_detach_start forks. The parent waits until the child reports, prints
 * "NODE is up on port PORT (pid PID)" and exits 0, or exits 1 if the child ends
 * its report without success. The child (the call returns 0 there) starts a
 * new session, and its standard input goes to /dev/null and its standard
 * output and error to log_fd. NODE_EXIT_FAIL if fork fails. Call it before
 * the runtime starts (no threads yet). */
int node_detach_start(int log_fd);

/* node_detach_ready tells the waiting parent the node is up; node_detach_failed
 * that it will not be. Both do nothing when the node is not detached, and only
 * the first call counts. */
void node_detach_ready(const char *node, int port);
void node_detach_failed(void);

#endif /* EMBER_NODE_DETACH_H */
