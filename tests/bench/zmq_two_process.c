/*
 * zmq_two_process.c - the floor of ember's distribution round trip on this
 * machine: the same exchange as ../shared/anchors/zmq_limit.c (a 64-byte
 * message and its echo over a CURVE DEALER pair on loopback), but between two
 * OS processes, each with its own ZeroMQ context and I/O thread, as two ember
 * nodes are. zmq_limit runs both ends in one process, where one I/O thread
 * serves both connections and a message crosses one thread fewer each way.
 *
 *   zmq-two-process [N]    prints: raw zmq+curve-2proc roundtrips=N us_per_rt=...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static char server_pub[41], server_sec[41], client_pub[41], client_sec[41];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "zmq-two-process: %s: %s\n", what, zmq_strerror(zmq_errno()));
        exit(1);
    }
    return rc;
}

/* The echo end: binds, answers n messages, exits. */
static void echo(const char *endpoint, int n)
{
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int one = 1;
    check(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one), "curve server");
    check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_sec, 40), "server key");
    check(zmq_bind(s, endpoint), "bind");
    char buf[256];
    for (int i = 0; i < n; i++) {
        int len = zmq_recv(s, buf, sizeof buf, 0);
        if (len < 0 || zmq_send(s, buf, (size_t)len, 0) < 0)
            break;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    if (n < 2) {
        fprintf(stderr, "usage: zmq-two-process [ROUND_TRIPS >= 2]\n");
        return 2;
    }
    check(zmq_curve_keypair(server_pub, server_sec), "keypair");
    check(zmq_curve_keypair(client_pub, client_sec), "keypair");
    /* A port the kernel picks, found by binding in the parent first. */
    void *probe_ctx = zmq_ctx_new();
    void *probe = zmq_socket(probe_ctx, ZMQ_DEALER);
    check(zmq_bind(probe, "tcp://127.0.0.1:*"), "bind a free port");
    char endpoint[64];
    size_t len = sizeof endpoint;
    check(zmq_getsockopt(probe, ZMQ_LAST_ENDPOINT, endpoint, &len), "last endpoint");
    zmq_close(probe);
    zmq_ctx_term(probe_ctx);

    pid_t child = fork();
    if (child < 0) {
        perror("zmq-two-process: fork");
        return 1;
    }
    if (child == 0) {
        echo(endpoint, n);
        _exit(0);
    }
    void *ctx = zmq_ctx_new();
    void *c = zmq_socket(ctx, ZMQ_DEALER);
    check(zmq_setsockopt(c, ZMQ_CURVE_SERVERKEY, server_pub, 40), "server public key");
    check(zmq_setsockopt(c, ZMQ_CURVE_PUBLICKEY, client_pub, 40), "client public key");
    check(zmq_setsockopt(c, ZMQ_CURVE_SECRETKEY, client_sec, 40), "client secret key");
    check(zmq_connect(c, endpoint), "connect");
    char msg[64] = {0}, buf[256];
    /* The first exchange waits for the child's bind and the handshake. */
    if (zmq_send(c, msg, sizeof msg, 0) < 0 || zmq_recv(c, buf, sizeof buf, 0) < 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fprintf(stderr, "zmq-two-process: the echo process did not answer\n");
        return 1;
    }
    double t0 = now_s();
    for (int i = 1; i < n; i++)
        if (zmq_send(c, msg, sizeof msg, 0) < 0 || zmq_recv(c, buf, sizeof buf, 0) < 0)
            break;
    double t1 = now_s();
    printf("zmq+curve-2proc roundtrips=%d us_per_rt=%.2f payload=64B\n", n, (t1 - t0) * 1e6 / (n - 1));
    waitpid(child, NULL, 0);
    zmq_close(c);
    zmq_ctx_term(ctx);
    return 0;
}
