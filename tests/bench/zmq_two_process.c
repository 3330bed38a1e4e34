/*
 * zmq_two_process.c - the floor of ember's distribution round trip on this
 * machine: the same exchange as ../shared/anchors/zmq_limit.c (a 64-byte
 * message and its echo over CURVE on loopback), but between two OS processes,
 * each with its own ZeroMQ context and I/O thread, as two ember nodes are.
 * zmq_limit runs both ends in one process, where one I/O thread serves both
 * connections and a message crosses one thread fewer each way.
 *
 *   zmq-two-process [N] [SHAPE] [WAIT]
 *
 * SHAPE says which sockets carry the exchange:
 *   dealer  a DEALER pair, one connection (the anchor's sockets; the default)
 *   router  the client's DEALER to the echo's ROUTER, which answers on the
 *           same connection
 *   ember   ember's shape: each end binds a ROUTER for what it receives and
 *           connects a DEALER to the other's ROUTER for what it sends (two
 *           TCP connections, one per direction)
 * WAIT says how a receiver waits:
 *   block   a blocking zmq_recv (the default)
 *   fd      the socket's ZMQ_EVENTS, then poll() on its ZMQ_FD, as an ember
 *           scheduler does when it waits for network input and local work
 *
 * Prints: zmq+curve-2proc roundtrips=N us_per_rt=... payload=64B, followed by
 * shape=... wait=... when either is not the default.
 */
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

enum shape { SHAPE_DEALER, SHAPE_ROUTER, SHAPE_EMBER };

static char server_pub[41], server_sec[41], client_pub[41], client_sec[41];
static enum shape shape = SHAPE_DEALER;
static bool wait_fd;

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

/* The bound end of a connection: the CURVE server. */
static void *bound(void *ctx, int type, const char *endpoint)
{
    void *s = zmq_socket(ctx, type);
    int one = 1;
    check(zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one), "curve server");
    check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, server_sec, 40), "server key");
    check(zmq_bind(s, endpoint), "bind");
    return s;
}

/* The connecting end: a DEALER, the CURVE client, named so a ROUTER can answer. */
static void *connected(void *ctx, const char *endpoint, const char *name)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    check(zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_pub, 40), "server public key");
    check(zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, client_pub, 40), "client public key");
    check(zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, client_sec, 40), "client secret key");
    check(zmq_setsockopt(s, ZMQ_ROUTING_ID, name, strlen(name)), "routing id");
    check(zmq_connect(s, endpoint), "connect");
    return s;
}

/* One frame from s, waiting as WAIT says; -1 on error. */
static int recv_frame(void *s, void *buf, size_t cap)
{
    if (!wait_fd)
        return zmq_recv(s, buf, cap, 0);
    for (;;) {
        int ev = 0, fd = -1;
        size_t l = sizeof ev;
        if (zmq_getsockopt(s, ZMQ_EVENTS, &ev, &l) != 0)
            return -1;
        if (ev & ZMQ_POLLIN)
            return zmq_recv(s, buf, cap, ZMQ_DONTWAIT);
        l = sizeof fd;
        if (zmq_getsockopt(s, ZMQ_FD, &fd, &l) != 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        poll(&p, 1, -1);
    }
}

/* One message: a ROUTER's comes after the sender's routing id (kept in id). */
static int recv_msg(void *s, bool router, char *id, int *id_len, char *buf, size_t cap)
{
    if (router && (*id_len = recv_frame(s, id, 255)) < 0)
        return -1;
    return recv_frame(s, buf, cap);
}

static int send_msg(void *s, bool router, const char *id, int id_len, const char *buf, int len)
{
    if (router && zmq_send(s, id, (size_t)id_len, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(s, buf, (size_t)len, 0);
}

/* The echo end: answers n messages, then exits. */
static void echo(const char *endpoint, const char *back, int n)
{
    void *ctx = zmq_ctx_new();
    void *in, *out;
    bool router_in = shape != SHAPE_DEALER, router_out = shape == SHAPE_ROUTER;
    in = bound(ctx, router_in ? ZMQ_ROUTER : ZMQ_DEALER, endpoint);
    out = shape == SHAPE_EMBER ? connected(ctx, back, "echo") : in;
    char id[256], buf[256];
    int id_len = 0;
    for (int i = 0; i < n; i++) {
        int len = recv_msg(in, router_in, id, &id_len, buf, sizeof buf);
        if (len < 0 || send_msg(out, router_out, id, id_len, buf, len) < 0)
            break;
    }
    if (out != in)
        zmq_close(out);
    zmq_close(in);
    zmq_ctx_term(ctx);
}

/* A loopback endpoint on a port the kernel picks. */
static void free_endpoint(char *endpoint, size_t cap)
{
    void *ctx = zmq_ctx_new();
    void *probe = zmq_socket(ctx, ZMQ_DEALER);
    check(zmq_bind(probe, "tcp://127.0.0.1:*"), "bind a free port");
    size_t len = cap;
    check(zmq_getsockopt(probe, ZMQ_LAST_ENDPOINT, endpoint, &len), "last endpoint");
    zmq_close(probe);
    zmq_ctx_term(ctx);
}

static int usage(void)
{
    fprintf(stderr, "usage: zmq-two-process [ROUND_TRIPS >= 2] [dealer|router|ember] [block|fd]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    if (n < 2)
        return usage();
    if (argc > 2) {
        if (!strcmp(argv[2], "dealer"))
            shape = SHAPE_DEALER;
        else if (!strcmp(argv[2], "router"))
            shape = SHAPE_ROUTER;
        else if (!strcmp(argv[2], "ember"))
            shape = SHAPE_EMBER;
        else
            return usage();
    }
    if (argc > 3) {
        if (!strcmp(argv[3], "fd"))
            wait_fd = true;
        else if (strcmp(argv[3], "block"))
            return usage();
    }
    if (argc > 4)
        return usage();
    check(zmq_curve_keypair(server_pub, server_sec), "keypair");
    check(zmq_curve_keypair(client_pub, client_sec), "keypair");
    /* The ember shape needs a second endpoint: the one the client binds. */
    char endpoint[64], back[64] = "";
    free_endpoint(endpoint, sizeof endpoint);
    if (shape == SHAPE_EMBER)
        free_endpoint(back, sizeof back);
    pid_t child = fork();
    if (child < 0) {
        perror("zmq-two-process: fork");
        return 1;
    }
    if (child == 0) {
        echo(endpoint, back, n);
        _exit(0);
    }
    void *ctx = zmq_ctx_new();
    void *out = connected(ctx, endpoint, "client");
    bool router_in = shape == SHAPE_EMBER;
    void *in = router_in ? bound(ctx, ZMQ_ROUTER, back) : out;
    char msg[64] = {0}, buf[256], id[256];
    int id_len = 0;
    /* The first exchange waits for the child's bind and the handshakes. */
    if (zmq_send(out, msg, sizeof msg, 0) < 0 || recv_msg(in, router_in, id, &id_len, buf, sizeof buf) < 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
        fprintf(stderr, "zmq-two-process: the echo process did not answer\n");
        return 1;
    }
    double t0 = now_s();
    int done = 1;
    for (; done < n; done++)
        if (zmq_send(out, msg, sizeof msg, 0) < 0 || recv_msg(in, router_in, id, &id_len, buf, sizeof buf) < 0)
            break;
    double t1 = now_s();
    if (done < n) {
        fprintf(stderr, "zmq-two-process: the exchange stopped after %d round trips\n", done);
        kill(child, SIGKILL);
    }
    static const char *const names[] = {"dealer", "router", "ember"};
    printf("zmq+curve-2proc roundtrips=%d us_per_rt=%.2f payload=64B", n, (t1 - t0) * 1e6 / (n - 1));
    if (shape != SHAPE_DEALER || wait_fd)
        printf(" shape=%s wait=%s", names[shape], wait_fd ? "fd" : "block");
    printf("\n");
    waitpid(child, NULL, 0);
    if (in != out)
        zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(ctx);
    return done < n;
}
