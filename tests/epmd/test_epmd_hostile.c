/*
 * test_epmd_hostile.c - ember-epmd under input it must survive: truncated,
 * oversize, zero-length, unknown and garbage requests (each closed, and the
 * daemon answering afterwards), 2,000 idle connections beside a working
 * registration, slow senders and silent peers dropped after the packet
 * timeout while registrations stay, a flood of names past the table's bound
 * refused with a clear result, and the oldest idle connections (never a
 * registration) dropped to make room at the connection limit.
 */
#include "epmd_test.h"

#include <sys/resource.h>

#include "epmd_client.h"

#define IDLE_CONNS 2000

static em_epmd_node node_named(const char *name, uint16_t port)
{
    em_epmd_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "%s", name);
    n.port = port;
    n.node_type = EM_EPMD_TYPE_HIDDEN;
    n.highest_version = 6;
    n.lowest_version = 6;
    return n;
}

/* The daemon still serves: NAMES answers with its port and count names. */
static void still_answers(uint16_t port, size_t count)
{
    em_epmd_name_list l;
    int rc = em_epmd_names(NULL, port, 3000, &l);
    EXPECT_INT(0, rc);
    EXPECT_INT(port, l.epmd_port);
    EXPECT_INT(count, l.count);
    em_epmd_name_list_free(&l);
}

/* Sends bytes as they are (no length added) and expects the daemon to close
 * the connection without a reply. */
static void expect_closed_without_reply(uint16_t port, const void *bytes, size_t len,
                                        const char *what)
{
    int fd = tcp_connect(port);
    EXPECT_TRUE(fd >= 0, "a connection for %s", what);
    send_raw(fd, bytes, len);
    char buf[64];
    ssize_t n = recv_all(fd, buf, sizeof buf);
    close(fd);
    if (n != 0) {
        print_error("%s: expected the daemon to close without a reply, got %zd bytes\n", what, n);
        fail();
    }
}

static void test_malformed_requests(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("survivor", 6000);
    int reg;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &reg, NULL));

    /* Length field above the maximum (the daemon does not wait for 65535 bytes). */
    expect_closed_without_reply(d.port, "\xff\xff\x6e", 3, "a 65535-byte length");
    expect_closed_without_reply(d.port, "\x04\x01", 2, "a 1025-byte length");
    /* Zero length. */
    expect_closed_without_reply(d.port, "\x00\x00", 2, "a zero length");
    /* Unknown request codes. */
    expect_closed_without_reply(d.port, "\x00\x01\x01", 3, "request code 1");
    expect_closed_without_reply(d.port, "\x00\x03\xff\x00\x00", 5, "request code 255");
    /* Bytes past the end of the request. */
    expect_closed_without_reply(d.port, "\x00\x01\x6e\x6e", 4, "a NAMES_REQ with a byte too many");
    /* ALIVE2_REQ whose name length runs past the request. */
    uint8_t req[64];
    size_t n = alive2_req(req + 2, "liar", 1, 6, "");
    req[2 + 10] = 60;
    req[0] = 0;
    req[1] = (uint8_t)n;
    expect_closed_without_reply(d.port, req, n + 2,
                                "an ALIVE2_REQ with a name length past its end");
    /* PORT_PLEASE2_REQ with an empty name and with a NUL inside it. */
    expect_closed_without_reply(d.port, "\x00\x01\x7a", 3, "a PORT_PLEASE2_REQ without a name");
    expect_closed_without_reply(d.port, "\x00\x04\x7az\x00z", 6, "a name with a NUL");
    /* Garbage: deterministic pseudo-random bytes, many times. */
    uint64_t x = 0x243F6A8885A308D3ull;
    for (int round = 0; round < 50; round++) {
        uint8_t junk[1500];
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        int fd = tcp_connect(d.port);
        EXPECT_TRUE(fd >= 0, "a connection for garbage round %d", round);
        send(fd, junk, sizeof junk, MSG_NOSIGNAL); /* the daemon may close mid-way */
        EXPECT_TRUE(closed_within(fd, 3000),
                    "the daemon to close a connection sending garbage (round %d)", round);
        close(fd);
    }
    /* Truncated: a request cut short by the peer closing. */
    int fd = tcp_connect(d.port);
    send_raw(fd, "\x00\x10\x78\x00", 4);
    close(fd);
    fd = tcp_connect(d.port);
    send_raw(fd, "\x00", 1);
    close(fd);

    still_answers(d.port, 1);
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "survivor", 2000, &info));
    EXPECT_INT(6000, info.port);
    close(reg);
    stop_daemon(&d);
}

static void test_idle_connections_and_a_registration(void **state)
{
    (void)state;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < IDLE_CONNS + 100) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < IDLE_CONNS + 100) {
        print_message("skipped: the descriptor limit (%llu) is below %d\n",
                      (unsigned long long)rl.rlim_cur, IDLE_CONNS + 100);
        skip();
    }
    daemon_proc d = START_DAEMON_PLAIN();
    static int idle[IDLE_CONNS];
    for (int i = 0; i < IDLE_CONNS; i++) {
        idle[i] = tcp_connect(d.port);
        EXPECT_TRUE(idle[i] >= 0, "idle connection %d to be accepted: %s", i, strerror(errno));
        /* Half of them send the first byte of a request and stall. */
        if (i % 2)
            send_raw(idle[i], "\x00", 1);
    }
    em_epmd_node self = node_named("busyhost", 6100);
    int reg;
    long long t0 = test_now_ms();
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 3000, &reg, NULL));
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "busyhost", 3000, &info));
    EXPECT_INT(6100, info.port);
    still_answers(d.port, 1);
    long long took = test_now_ms() - t0;
    EXPECT_TRUE(took < 2000, "three requests beside %d idle connections within 2 s, took %lld ms",
                IDLE_CONNS, took);
    /* The idle connections are all still open (the timeout is 60 s). */
    int open_count = 0;
    for (int i = 0; i < IDLE_CONNS; i++) {
        char b;
        ssize_t r = recv(idle[i], &b, 1, MSG_DONTWAIT);
        open_count += r < 0 && errno == EAGAIN;
    }
    EXPECT_INT(IDLE_CONNS, open_count);
    for (int i = 0; i < IDLE_CONNS; i++)
        close(idle[i]);
    close(reg);
    stop_daemon(&d);
}

static void test_slow_and_silent_peers_time_out(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON("-packet_timeout", "1");
    em_epmd_node self = node_named("patient", 6200);
    int reg;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &reg, NULL));
    int silent = tcp_connect(d.port);
    int slow = tcp_connect(d.port);
    /* A PORT_PLEASE2_REQ dripped one byte every 400 ms would take 2.8 s. The
     * deadline counts from the connection, not from the last byte, so the
     * daemon drops the sender after about 1 s however steadily it sends. */
    long long t0 = test_now_ms();
    const char drip[] = "\x00\x05\x7a\x61\x62\x63\x64";
    int closed = 0;
    for (size_t i = 0; i < sizeof drip - 1 && !closed; i++) {
        if (send(slow, drip + i, 1, MSG_NOSIGNAL) < 0)
            break;
        closed = closed_within(slow, 400);
    }
    if (!closed)
        closed = closed_within(slow, 2000);
    long long slow_ms = test_now_ms() - t0;
    EXPECT_TRUE(closed, "the daemon to drop a slow sender");
    EXPECT_TRUE(slow_ms >= 800 && slow_ms < 2500,
                "the slow sender dropped after about 1 s, took %lld ms", slow_ms);
    EXPECT_TRUE(closed_within(silent, 2000), "the daemon to drop a silent connection");
    /* The registration outlives the timeout. */
    sleep_ms(300);
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "patient", 2000, &info));
    char b;
    EXPECT_INT(-1, recv(reg, &b, 1, MSG_DONTWAIT));
    close(slow);
    close(silent);
    close(reg);
    stop_daemon(&d);
}

static void test_name_flood_refused(void **state)
{
    (void)state;
    enum { BOUND = 50, FLOOD = 70 };
    daemon_proc d = START_DAEMON("-max_names", "50");
    int fds[FLOOD];
    int ok = 0, full = 0;
    for (int i = 0; i < FLOOD; i++) {
        char name[32];
        snprintf(name, sizeof name, "flood%03d", i);
        em_epmd_node self = node_named(name, (uint16_t)(10000 + i));
        fds[i] = -1;
        int rc = em_epmd_register(NULL, d.port, &self, 2000, &fds[i], NULL);
        if (rc == 0)
            ok++;
        else if (rc == -ENOSPC)
            full++;
        else {
            print_error("registration %d: expected 0 or -ENOSPC, got %d (%s)\n", i, rc,
                        em_epmd_strerror(rc));
            fail();
        }
    }
    EXPECT_INT(BOUND, ok);
    EXPECT_INT(FLOOD - BOUND, full);
    /* The refusal on the wire: ALIVE2_X_RESP with result 2. */
    int raw = tcp_connect(d.port);
    uint8_t req[64], resp[16];
    send_req(raw, req, alive2_req(req, "onemore", 1, 6, ""));
    ssize_t n = recv_all(raw, resp, sizeof resp);
    close(raw);
    const uint8_t want[] = {118, 2, 0, 0, 0, 0};
    EXPECT_BYTES(want, sizeof want, resp, (size_t)(n < 0 ? 0 : n));
    still_answers(d.port, BOUND);
    /* A freed slot is usable again. */
    close(fds[0]);
    em_epmd_node late = node_named("latecomer", 9999);
    int lfd = -1, rc = -ENOSPC;
    for (int i = 0;
         i < 200 && (rc = em_epmd_register(NULL, d.port, &late, 2000, &lfd, NULL)) == -ENOSPC; i++)
        sleep_ms(5);
    EXPECT_INT(0, rc);
    still_answers(d.port, BOUND);
    for (int i = 1; i < FLOOD; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    close(lfd);
    stop_daemon(&d);
}

static void test_connection_limit_drops_oldest(void **state)
{
    (void)state;
    enum { LIMIT_FDS = 128, EXTRA = 300 };
    /* With 128 descriptors the daemon keeps at most 96 connections. */
    daemon_nofile_limit = LIMIT_FDS;
    daemon_proc d = START_DAEMON_PLAIN();
    daemon_nofile_limit = 0;
    em_epmd_node self = node_named("anchored", 6300);
    int reg;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &reg, NULL));
    static int idle[EXTRA];
    for (int i = 0; i < EXTRA; i++) {
        idle[i] = tcp_connect(d.port);
        EXPECT_TRUE(idle[i] >= 0, "connection %d to be accepted", i);
    }
    /* New connections keep being served; the oldest idle ones made room. */
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "anchored", 3000, &info));
    still_answers(d.port, 1);
    EXPECT_TRUE(closed_within(idle[0], 2000), "the oldest idle connection to be dropped");
    char b;
    EXPECT_INT(-1, recv(reg, &b, 1, MSG_DONTWAIT)); /* the registration was not */
    int dropped = 0;
    for (int i = 0; i < EXTRA; i++) {
        dropped += closed_within(idle[i], 0) || recv(idle[i], &b, 1, MSG_DONTWAIT) == 0;
        close(idle[i]);
    }
    EXPECT_TRUE(dropped >= EXTRA - 96, "at least %d idle connections dropped, got %d", EXTRA - 96,
                dropped);
    close(reg);
    stop_daemon(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_idle_connections_and_a_registration),
        cmocka_unit_test(test_slow_and_silent_peers_time_out),
        cmocka_unit_test(test_name_flood_refused),
        cmocka_unit_test(test_connection_limit_drops_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
