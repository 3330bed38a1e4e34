/*
 * bench_dist.c - ember-bench's distribution workloads: two node processes on
 * loopback, CURVE on, cookie mode (a fresh random cookie, handed to the child
 * through the environment of a fork, never through argv).
 *
 *   dist N      what ../shared/anchors/dist_anchor.erl does: N round trips of a
 *               64-byte payload to a registered name on the other node, then a
 *               one-way stream of N such messages that the sink acknowledges.
 *   distbulk N  N messages of 1 MiB streamed one way while another process keeps
 *               doing small round trips: throughput, and the small round trip's
 *               50th and 99th percentiles, idle and during the stream.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "ember.h"

static em_term a_ping, a_stream, a_msg, a_done, a_stop, a_pong, a_pong_name, a_sink, a_peer;
static char cookie[33];
static int port_pipe[2];
static int server_port;
static long dist_n;
static int bulk;
static int busy_wait = -1;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int start_node(const char *name)
{
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = name;
    c.listen = "127.0.0.1:0";
    c.cookie = cookie;
    c.log_level = 1;
    if (busy_wait >= 0)
        c.busy_wait_us = busy_wait;
    int rc = em_dist_start(&c);
    if (rc)
        fprintf(stderr, "ember-bench: em_dist_start: %s\n", em_strerror(rc));
    return rc;
}

/* ------------------------------------------------------------ the server */

/* The sink: counts a stream, then says done. */
static void sink(em_pid_t from, long k)
{
    while (k > 0) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_receive(&m, EM_INFINITY);
        if (em_at(m, 0) == a_msg)
            k--;
        em_heap_release(mk);
    }
    em_send(from, a_done);
}

static void pong_server(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        int64_t k;
        em_receive(&m, EM_INFINITY);
        if (m == a_stop) {
            em_heap_release(mk);
            break;
        }
        if (em_at(m, 0) == a_ping && em_get_pid(em_at(m, 1), &from))
            em_send(from, EM_ARR(a_pong, em_at(m, 2)));
        else if (em_at(m, 0) == a_stream && em_get_pid(em_at(m, 1), &from) &&
                 em_get_int(em_at(m, 2), &k))
            sink(from, k);
        em_heap_release(mk);
    }
}

static void server_root(em_term arg)
{
    (void)arg;
    if (start_node("bench_b@127.0.0.1") != 0)
        em_halt(1);
    em_pid_t p;
    em_spawn(pong_server, EM_NIL, &p);
    em_register(em_atom("pong"), p);
    int port = em_node_port();
    if (write(port_pipe[1], &port, sizeof port) != sizeof port)
        em_halt(1);
    /* The sink for bulk runs is a second registered process. */
    em_pid_t s;
    em_spawn(pong_server, EM_NIL, &s);
    em_register(em_atom("sink"), s);
    /* Lives until the client says stop (to pong), then stops the node. */
    em_monitor(p, NULL);
    em_term m;
    em_receive(&m, EM_INFINITY);
    em_send(s, a_stop);
    em_dist_stop();
}

/* ------------------------------------------------------------ the client */

static em_term peer_node(void) { return a_peer; }

static bool is_pong(em_term m, void *ctx)
{
    (void)ctx;
    return em_at(m, 0) == a_pong;
}

static bool is_stop(em_term m, void *ctx)
{
    (void)ctx;
    return m == a_stop;
}

/* One small round trip to the pong server, in microseconds. */
static uint64_t one_rt(em_term payload)
{
    em_term m;
    uint64_t t0 = now_us();
    em_send_remote(a_pong_name, peer_node(), EM_ARR(a_ping, em_pid(em_self()), payload));
    em_receive_if(&m, EM_INFINITY, is_pong, NULL);
    return now_us() - t0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

static void dist_client(em_term arg)
{
    (void)arg;
    long n = dist_n;
    em_term payload = em_bin((char[64]){0}, 64);
    uint64_t t0 = now_us();
    for (long i = 0; i < n; i++) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_send_remote(a_pong_name, peer_node(), EM_ARR(a_ping, em_pid(em_self()), payload));
        em_receive(&m, EM_INFINITY);
        em_heap_release(mk);
    }
    uint64_t t1 = now_us();
    em_send_remote(a_pong_name, peer_node(), EM_ARR(a_stream, em_pid(em_self()), em_int(n)));
    em_term msg = EM_ARR(a_msg, payload);
    for (long i = 0; i < n; i++)
        em_send_remote(a_pong_name, peer_node(), msg);
    em_term m;
    em_receive(&m, EM_INFINITY);
    uint64_t t2 = now_us();
    printf("dist roundtrips=%ld us_per_rt=%.2f stream_msgs_per_s=%.0f payload=64B\n", n,
           (double)(t1 - t0) / (double)n, (double)n * 1e6 / (double)(t2 - t1));
}

/* Small round trips until told to stop; the times go to the parent. */
static void rt_probe(em_term arg)
{
    em_pid_t parent;
    em_get_pid(arg, &parent);
    em_term payload = em_bin((char[64]){0}, 64);
    size_t cap = 1 << 16, n = 0;
    uint64_t *v = malloc(cap * sizeof *v);
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive_if(&m, 0, is_stop, NULL) == 0) {
            em_heap_release(mk);
            break;
        }
        uint64_t t = one_rt(payload);
        if (v && n < cap)
            v[n++] = t;
        em_heap_release(mk);
        em_sleep(1);
    }
    uint64_t p50 = n ? pct(v, n, 0.50) : 0, p99 = n ? pct(v, n, 0.99) : 0;
    free(v);
    em_send(parent, EM_ARR(em_uint(p50), em_uint(p99), em_uint(n)));
}

static void bulk_client(em_term arg)
{
    (void)arg;
    long n = dist_n;
    em_pid_t self = em_self(), probe;
    /* Warm up, then the idle round trip. */
    for (int i = 0; i < 100; i++) {
        em_mark mk = em_heap_mark();
        one_rt(em_bin((char[64]){0}, 64));
        em_heap_release(mk);
    }
    em_spawn(rt_probe, em_pid(self), &probe);
    em_sleep(1000);
    em_send(probe, a_stop);
    em_term idle;
    em_receive(&idle, EM_INFINITY);
    /* The same while 1 MiB messages stream. */
    size_t big = 1024 * 1024;
    unsigned char *data = malloc(big);
    for (size_t i = 0; i < big; i++)
        data[i] = (unsigned char)(i * 7);
    em_term payload = em_bin(data, big);
    free(data);
    em_spawn(rt_probe, em_pid(self), &probe);
    em_send_remote(a_sink, peer_node(), EM_ARR(a_stream, em_pid(self), em_int(n)));
    uint64_t t0 = now_us();
    em_term msg = EM_ARR(a_msg, payload);
    for (long i = 0; i < n; i++)
        em_send_remote(a_sink, peer_node(), msg);
    em_term m;
    do
        em_receive(&m, EM_INFINITY);
    while (m != a_done);
    uint64_t t1 = now_us();
    em_send(probe, a_stop);
    em_term during;
    em_receive(&during, EM_INFINITY);
    uint64_t i50, i99, b50, b99, bn;
    em_get_uint(em_at(idle, 0), &i50);
    em_get_uint(em_at(idle, 1), &i99);
    em_get_uint(em_at(during, 0), &b50);
    em_get_uint(em_at(during, 1), &b99);
    em_get_uint(em_at(during, 2), &bn);
    printf("distbulk msgs=%ld size=1MiB mib_per_s=%.1f rt_idle_p50_us=%llu rt_idle_p99_us=%llu "
           "rt_bulk_p50_us=%llu rt_bulk_p99_us=%llu rt_bulk_samples=%llu p99_ratio=%.1f\n",
           n, (double)n * 1e6 / (double)(t1 - t0), (unsigned long long)i50, (unsigned long long)i99,
           (unsigned long long)b50, (unsigned long long)b99, (unsigned long long)bn,
           i99 ? (double)b99 / (double)i99 : 0.0);
}

static void client_root(em_term arg)
{
    (void)arg;
    if (start_node("bench_a@127.0.0.1") != 0)
        em_halt(1);
    char addr[64];
    snprintf(addr, sizeof addr, "bench_b@127.0.0.1:%d", server_port);
    int rc = em_node_connect(addr, 5000);
    if (rc) {
        fprintf(stderr, "ember-bench: cannot connect to the server node: %s\n", em_strerror(rc));
        em_halt(1);
    }
    em_sleep(200);   /* as the anchor does */
    em_pid_t c;
    em_spawn_monitor(bulk ? bulk_client : dist_client, EM_NIL, &c, NULL);
    em_term m;
    em_receive(&m, EM_INFINITY);
    em_send_remote(a_pong_name, peer_node(), a_stop);
    em_sleep(50);
    em_dist_stop();
}

int bench_dist_run(const char *name, long n, int scheds, int busy_wait_us)
{
    busy_wait = busy_wait_us;
    bulk = !strcmp(name, "distbulk");
    dist_n = n;
    a_ping = em_atom("ping");
    a_pong = em_atom("pong");
    a_stream = em_atom("stream");
    a_msg = em_atom("msg");
    a_done = em_atom("done");
    a_stop = em_atom("stop");
    a_pong_name = em_atom("pong");
    a_sink = em_atom("sink");
    a_peer = em_atom("bench_b@127.0.0.1");
    FILE *r = fopen("/dev/urandom", "rb");
    unsigned char raw[32];
    if (!r || fread(raw, 1, sizeof raw, r) != sizeof raw) {
        fprintf(stderr, "ember-bench: no /dev/urandom\n");
        return 1;
    }
    fclose(r);
    for (int i = 0; i < 32; i++)
        cookie[i] = (char)('A' + raw[i] % 26);
    if (pipe(port_pipe) != 0)
        return 1;
    em_config cfg;
    em_config_init(&cfg);
    cfg.schedulers = scheds;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        close(port_pipe[0]);
        _exit(em_run(&cfg, server_root, EM_NIL) == 0 ? 0 : 1);
    }
    close(port_pipe[1]);
    if (read(port_pipe[0], &server_port, sizeof server_port) != sizeof server_port) {
        fprintf(stderr, "ember-bench: the server node did not start\n");
        waitpid(child, NULL, 0);
        return 1;
    }
    close(port_pipe[0]);
    int rc = em_run(&cfg, client_root, EM_NIL);
    fflush(stdout);
    int status = 0;
    for (int i = 0; i < 50 && waitpid(child, &status, WNOHANG) == 0; i++)
        usleep(100000);
    if (waitpid(child, &status, WNOHANG) == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
    }
    return rc < 0 ? 1 : rc;
}
