/*
 * test_epmd_daemon.c - the protocol, request by request, against a running
 * ember-epmd on a free port: registration and lookup, registrations ending
 * with their connections, duplicate names, the NAMES and DUMP formats, KILL
 * and STOP, -daemon mode, -address, and peers on the host's own address and
 * on IPv6 loopback. Requests go out as raw bytes where the exact bytes
 * matter, and through the client library elsewhere.
 */
#include "epmd_test.h"

#include <ifaddrs.h>

#include "epmd_client.h"

static em_epmd_node node_named(const char *name, uint16_t port, const char *extra)
{
    em_epmd_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "%s", name);
    n.port = port;
    n.node_type = EM_EPMD_TYPE_HIDDEN;
    n.protocol = EM_EPMD_PROTO_TCP;
    n.highest_version = 6;
    n.lowest_version = 6;
    n.extra_len = strlen(extra);
    memcpy(n.extra, extra, n.extra_len);
    return n;
}

static void test_register_then_port_please(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    /* Raw ALIVE2_REQ: the reply is ALIVE2_X_RESP, result 0, on a connection that stays open. */
    int reg = tcp_connect(d.port);
    uint8_t req[128];
    send_req(reg, req, alive2_req(req, "rawnode", 7001, 6, "ember1 tcp curve=00112233aabbccdd"));
    uint8_t resp[6];
    EXPECT_TRUE(recv_exact(reg, resp, 6), "a 6-byte ALIVE2_X_RESP");
    EXPECT_INT(118, resp[0]);
    EXPECT_INT(0, resp[1]);

    /* Raw PORT_PLEASE2_REQ: the whole PORT2_RESP, then the daemon closes. */
    int q = tcp_connect(d.port);
    send_req(q, "zrawnode", 8);
    uint8_t got[128];
    ssize_t n = recv_all(q, got, sizeof got);
    close(q);
    const char extra[] = "ember1 tcp curve=00112233aabbccdd";
    uint8_t want[128] = {119, 0,   0x1b, 0x59, 77,  0,   0,
                         6,   0,   5,    0,    7,   'r', 'a',
                         'w', 'n', 'o',  'd',  'e', 0,   (uint8_t)(sizeof extra - 1)};
    memcpy(want + 21, extra, sizeof extra - 1);
    EXPECT_BYTES(want, 21 + sizeof extra - 1, got, (size_t)(n < 0 ? 0 : n));

    /* The same through the client library. */
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "rawnode", 2000, &info));
    EXPECT_INT(7001, info.port);
    EXPECT_INT(77, info.node_type);
    EXPECT_INT(6, info.highest_version);
    EXPECT_INT(5, info.lowest_version);
    EXPECT_STR("rawnode", info.name);
    EXPECT_STR(extra, (const char *)info.extra);
    em_epmd_extra x;
    EXPECT_INT(0, em_epmd_extra_parse(info.extra, info.extra_len, &x));
    EXPECT_STR("00112233aabbccdd", x.curve);
    EXPECT_INT(-ENOENT, em_epmd_port_please(NULL, d.port, "nosuchnode", 2000, &info));

    /* A client registration: creation assigned, lookup sees it. */
    em_epmd_node self = node_named("libnode", 7002, "ember1 tcp curve=ffeeddccbbaa9988");
    int fd = -1;
    uint32_t creation = 0;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, &creation));
    EXPECT_TRUE(fd >= 0 && creation != 0,
                "a descriptor and a non-zero creation (fd %d, creation %u)", fd, creation);
    EXPECT_INT(0, em_epmd_port_please("127.0.0.1", d.port, "libnode", 2000, &info));
    EXPECT_INT(7002, info.port);
    EXPECT_INT(72, info.node_type);
    em_epmd_unregister(fd);
    close(reg);
    stop_daemon(&d);
}

static void test_longest_name_and_extra(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("", 7050, "");
    memset(self.name, 'n', EM_EPMD_MAX_NAME);
    self.name[EM_EPMD_MAX_NAME] = '\0';
    memset(self.extra, 'e', EM_EPMD_MAX_EXTRA);
    self.extra_len = EM_EPMD_MAX_EXTRA;
    int fd;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, NULL));
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, self.name, 2000, &info));
    EXPECT_INT(EM_EPMD_MAX_EXTRA, info.extra_len);
    EXPECT_STR(self.name, info.name);
    EXPECT_BYTES(self.extra, (size_t)EM_EPMD_MAX_EXTRA, info.extra, info.extra_len);
    em_epmd_name_list l;
    EXPECT_INT(0, em_epmd_names(NULL, d.port, 2000, &l));
    EXPECT_INT(1, l.count);
    EXPECT_STR(self.name, l.names[0].name);
    em_epmd_name_list_free(&l);
    /* One byte more of either is refused by the client before sending. */
    self.extra_len = EM_EPMD_MAX_EXTRA + 1;
    int fd2;
    EXPECT_INT(-EINVAL, em_epmd_register(NULL, d.port, &self, 2000, &fd2, NULL));
    close(fd);
    stop_daemon(&d);
}

static void test_registration_ends_with_connection(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("shortlived", 7100, "");
    int fd;
    uint32_t c1, c2;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, &c1));
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "shortlived", 2000, &info));
    em_epmd_unregister(fd);
    /* The daemon notices the close on its next loop turn. */
    int rc = 0;
    for (int i = 0;
         i < 200 && (rc = em_epmd_port_please(NULL, d.port, "shortlived", 2000, &info)) == 0; i++)
        sleep_ms(5);
    EXPECT_INT(-ENOENT, rc);
    /* The next incarnation gets the next creation. */
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, &c2));
    EXPECT_INT(c1 + 1 ? c1 + 1 : 1, c2);
    /* A registering connection that sends more bytes loses its registration. */
    send_raw(fd, "x", 1);
    EXPECT_TRUE(closed_within(fd, 2000), "the daemon to close a registration that sent data");
    EXPECT_INT(-ENOENT, em_epmd_port_please(NULL, d.port, "shortlived", 2000, &info));
    close(fd);
    stop_daemon(&d);
}

static void test_duplicate_name_refused(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("twin", 7200, "");
    int fd1, fd2 = -1;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd1, NULL));
    self.port = 7201;
    EXPECT_INT(-EADDRINUSE, em_epmd_register(NULL, d.port, &self, 2000, &fd2, NULL));
    /* Raw: ALIVE2_X_RESP with result 1, then the daemon closes. */
    int raw = tcp_connect(d.port);
    uint8_t req[64], resp[16];
    send_req(raw, req, alive2_req(req, "twin", 7202, 6, ""));
    ssize_t n = recv_all(raw, resp, sizeof resp);
    close(raw);
    const uint8_t want[] = {118, 1, 0, 0, 0, 0};
    EXPECT_BYTES(want, sizeof want, resp, (size_t)(n < 0 ? 0 : n));
    /* The first registration is untouched. */
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "twin", 2000, &info));
    EXPECT_INT(7200, info.port);
    close(fd1);
    stop_daemon(&d);
}

static void test_names_and_dump_format(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    int fds[2];
    const char *names[] = {"north", "south"};
    for (int i = 0; i < 2; i++) {
        em_epmd_node self = node_named(names[i], (uint16_t)(9000 + i), "");
        EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fds[i], NULL));
    }
    char want[256], got[512];
    uint8_t p[4] = {0, 0, (uint8_t)(d.port >> 8), (uint8_t)d.port};

    int q = tcp_connect(d.port);
    send_req(q, "n", 1);
    ssize_t n = recv_all(q, got, sizeof got);
    close(q);
    memcpy(want, p, 4);
    int len = 4 + snprintf(want + 4, sizeof want - 4,
                           "name north at port 9000\nname south at port 9001\n");
    EXPECT_BYTES(want, (size_t)len, got, (size_t)(n < 0 ? 0 : n));

    /* DUMP: one "active name" line per node, each followed by a NUL, with the
     * daemon's descriptor for the node (not known here, so checked by shape). */
    q = tcp_connect(d.port);
    send_req(q, "d", 1);
    n = recv_all(q, got, sizeof got - 1);
    close(q);
    EXPECT_TRUE(n > 4 && memcmp(got, p, 4) == 0, "DUMP_RESP to start with the port");
    got[n] = '\0';
    const char *line = got + 4;
    for (int i = 0; i < 2; i++) {
        char head[64];
        int fd_no = -1;
        snprintf(head, sizeof head, "active name     <%s> at port %d, fd = ", names[i], 9000 + i);
        EXPECT_TRUE(strncmp(line, head, strlen(head)) == 0, "line \"%s...\", got \"%s\"", head,
                    line);
        EXPECT_INT(1, sscanf(line + strlen(head), "%d", &fd_no));
        line += strlen(line);
        EXPECT_INT('\n', line[-1]);
        line++; /* the NUL after the newline */
    }
    EXPECT_INT(n, line - got);

    /* The client's parse of the same. */
    em_epmd_name_list l;
    EXPECT_INT(0, em_epmd_names(NULL, d.port, 2000, &l));
    EXPECT_INT(d.port, l.epmd_port);
    EXPECT_INT(2, l.count);
    EXPECT_STR("north", l.names[0].name);
    EXPECT_INT(9000, l.names[0].port);
    EXPECT_STR("south", l.names[1].name);
    EXPECT_INT(9001, l.names[1].port);
    em_epmd_name_list_free(&l);
    close(fds[0]);
    close(fds[1]);
    stop_daemon(&d);
}

static void test_kill_from_loopback(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("keeper", 7300, "");
    int fd;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, NULL));
    /* With a name registered: "NO", and the daemon carries on. */
    int q = tcp_connect(d.port);
    send_req(q, "k", 1);
    char got[16];
    ssize_t n = recv_all(q, got, sizeof got);
    close(q);
    EXPECT_BYTES("NO", 2, got, (size_t)(n < 0 ? 0 : n));
    EXPECT_INT(-1, wait_exit(d.pid, 100));
    EXPECT_INT(-EBUSY, em_epmd_kill(NULL, d.port, 2000));
    /* Once empty: "OK", and the daemon exits with status 0. */
    close(fd);
    int rc = -EBUSY;
    for (int i = 0; i < 200 && (rc = em_epmd_kill(NULL, d.port, 2000)) == -EBUSY; i++)
        sleep_ms(5);
    EXPECT_INT(0, rc);
    int st = wait_exit(d.pid, 3000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "exit status 0 after KILL_REQ, got wait status %d", st);
    d.pid = 0;
    EXPECT_INT(0, port_answers(d.port));
}

static void test_relaxed_kill_and_stop(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON("-relaxed_command_check");
    em_epmd_node self = node_named("forced", 7400, "");
    int fd;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, NULL));
    EXPECT_INT(0, em_epmd_stop(NULL, d.port, "forced", 2000));
    EXPECT_TRUE(closed_within(fd, 2000), "STOP_REQ to close the registering connection");
    close(fd);
    EXPECT_INT(-ENOENT, em_epmd_stop(NULL, d.port, "forced", 2000));
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, NULL));
    EXPECT_INT(0, em_epmd_kill(NULL, d.port, 2000)); /* relaxed: even with a name */
    int st = wait_exit(d.pid, 3000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "exit status 0 after KILL_REQ, got wait status %d", st);
    d.pid = 0;
    close(fd);
}

static void test_stop_ignored_without_relaxed(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("safe", 7500, "");
    int fd;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &self, 2000, &fd, NULL));
    EXPECT_INT(-EPERM, em_epmd_stop(NULL, d.port, "safe", 2000));
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(NULL, d.port, "safe", 2000, &info));
    close(fd);
    stop_daemon(&d);
}

static void test_daemon_mode(void **state)
{
    (void)state;
    uint16_t port = 0;
    char portbuf[8], out[512];
    const char *argv[] = {EMBER_EPMD_BIN, "-daemon", "-port", portbuf, NULL};
    long long t0 = 0;
    int rc = -1;
    /* The port was free when picked; should another process take it before the
     * daemon binds it, the daemon says so (as checked below) and another is
     * tried. */
    for (int attempt = 0; attempt < 5; attempt++) {
        port = free_port();
        snprintf(portbuf, sizeof portbuf, "%u", port);
        t0 = test_now_ms();
        rc = run_capture(argv, NULL, out, sizeof out);
        if (rc != 1 || !strstr(out, "already in use"))
            break;
        print_message("port %u was taken before ember-epmd bound it: trying another\n", port);
    }
    EXPECT_INT(0, rc);
    /* It returns only once listening: the port answers at once. */
    EXPECT_INT(1, port_answers(port));
    EXPECT_TRUE(test_now_ms() - t0 < 3000, "-daemon to return promptly");
    em_epmd_name_list l;
    EXPECT_INT(0, em_epmd_names(NULL, port, 2000, &l));
    EXPECT_INT(port, l.epmd_port);
    em_epmd_name_list_free(&l);
    /* A second daemon on the same port fails clearly. */
    const char *again[] = {EMBER_EPMD_BIN, "-port", portbuf, NULL};
    EXPECT_INT(1, run_capture(again, NULL, out, sizeof out));
    EXPECT_TRUE(strstr(out, "already in use") != NULL, "an \"already in use\" message, got \"%s\"",
                out);
    EXPECT_INT(0, em_epmd_kill(NULL, port, 2000));
    wait_port(port, 0);
}

/* A non-loopback IPv4 address of this host, or 0 if it has none. */
static int host_address(struct in_addr *out)
{
    struct ifaddrs *ifs, *i;
    if (getifaddrs(&ifs) < 0)
        return 0;
    int found = 0;
    for (i = ifs; i && !found; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET)
            continue;
        struct in_addr a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
        if ((ntohl(a.s_addr) >> 24) != 127) {
            *out = a;
            found = 1;
        }
    }
    freeifaddrs(ifs);
    return found;
}

static void test_address_flag_and_same_host_peers(void **state)
{
    (void)state;
    struct in_addr a;
    if (!host_address(&a)) {
        print_message("skipped: this host has no non-loopback IPv4 address\n");
        skip();
    }
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, text, sizeof text);
    /* Listening everywhere: a peer connecting from the host's own address to
     * that address is local, so it may register (as with Erlang's epmd). */
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("viaeth", 7600, "");
    int fd;
    EXPECT_INT(0, em_epmd_register(text, d.port, &self, 2000, &fd, NULL));
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please(text, d.port, "viaeth", 2000, &info));
    close(fd);
    stop_daemon(&d);

    /* -address 127.0.0.1: loopback only, the host's other address refuses. */
    d = START_DAEMON("-address", "127.0.0.1");
    em_epmd_name_list l;
    EXPECT_INT(-ECONNREFUSED, em_epmd_names(text, d.port, 2000, &l));
    EXPECT_INT(0, em_epmd_names("127.0.0.1", d.port, 2000, &l));
    em_epmd_name_list_free(&l);
    stop_daemon(&d);

    /* -address <host address>: that address and loopback (always added). */
    d = START_DAEMON("-address", text);
    EXPECT_INT(0, em_epmd_names(text, d.port, 2000, &l));
    em_epmd_name_list_free(&l);
    EXPECT_INT(0, em_epmd_names("127.0.0.1", d.port, 2000, &l));
    em_epmd_name_list_free(&l);
    stop_daemon(&d);

    /* An address that does not parse: exit status 1 and a message. */
    char out[512], portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", free_port());
    const char *bad[] = {EMBER_EPMD_BIN, "-port", portbuf, "-address", "300.1.2.3", NULL};
    EXPECT_INT(1, run_capture(bad, NULL, out, sizeof out));
    EXPECT_TRUE(strstr(out, "does not parse") != NULL, "a message about the address, got \"%s\"",
                out);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node self = node_named("sixer", 7700, "");
    int fd;
    int rc = em_epmd_register("::1", d.port, &self, 2000, &fd, NULL);
    if (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL || rc == -ENETUNREACH || rc == -EHOSTUNREACH ||
        rc == -ECONNREFUSED) {
        stop_daemon(&d);
        print_message("skipped: no IPv6 loopback here (%s)\n", em_epmd_strerror(rc));
        skip();
    }
    EXPECT_INT(0, rc); /* ::1 is local: registration allowed */
    em_epmd_node info;
    EXPECT_INT(0, em_epmd_port_please("::1", d.port, "sixer", 2000, &info));
    EXPECT_INT(7700, info.port);
    close(fd);
    stop_daemon(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_then_port_please),
        cmocka_unit_test(test_longest_name_and_extra),
        cmocka_unit_test(test_registration_ends_with_connection),
        cmocka_unit_test(test_duplicate_name_refused),
        cmocka_unit_test(test_names_and_dump_format),
        cmocka_unit_test(test_kill_from_loopback),
        cmocka_unit_test(test_relaxed_kill_and_stop),
        cmocka_unit_test(test_stop_ignored_without_relaxed),
        cmocka_unit_test(test_daemon_mode),
        cmocka_unit_test(test_address_flag_and_same_host_peers),
        cmocka_unit_test(test_ipv6_loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
