/*
 * test_epmd_interop.c - ember-epmd and Erlang/OTP's tools on each other: the
 * stock epmd's -names and -kill against ember-epmd, ember's client against a
 * stock epmd, and a real Erlang node registering with ember-epmd. Each test is
 * skipped, saying why, when the Erlang program it needs is not installed
 * (Debian: erlang-base).
 */
#include "epmd_test.h"

#include "epmd_client.h"

#define STOCK_EPMD "/usr/bin/epmd"
#define STOCK_ERL "/usr/bin/erl"

static void need(const char *program)
{
    if (access(program, X_OK) != 0) {
        print_message("skipped: %s is not installed (Debian package erlang-base)\n", program);
        skip();
    }
}

static void test_stock_names_and_kill_against_ember(void **state)
{
    (void)state;
    need(STOCK_EPMD);
    daemon_proc d = START_DAEMON_PLAIN();
    em_epmd_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "embernode");
    n.port = 45678;
    n.node_type = EM_EPMD_TYPE_HIDDEN;
    n.highest_version = 6;
    n.lowest_version = 6;
    n.extra_len =
        (size_t)em_epmd_extra_build((char *)n.extra, sizeof n.extra, "tcp", "0011223344556677");
    int fd;
    EXPECT_INT(0, em_epmd_register(NULL, d.port, &n, 2000, &fd, NULL));

    char portbuf[8], out[2048], want[64];
    snprintf(portbuf, sizeof portbuf, "%u", d.port);
    /* Stock epmd wants -port before the command. */
    const char *names[] = {STOCK_EPMD, "-port", portbuf, "-names", NULL};
    EXPECT_INT(0, run_capture(names, NULL, out, sizeof out));
    snprintf(want, sizeof want, "up and running on port %u with data:", d.port);
    EXPECT_TRUE(strstr(out, want) != NULL, "stock epmd -names to say \"%s\", got \"%s\"", want,
                out);
    EXPECT_TRUE(strstr(out, "name embernode at port 45678") != NULL,
                "stock epmd -names to list embernode, got \"%s\"", out);

    /* Stock -kill: refused while a name is registered, obeyed once it is gone. */
    const char *kill_argv[] = {STOCK_EPMD, "-port", portbuf, "-kill", NULL};
    run_capture(kill_argv, NULL, out, sizeof out);
    EXPECT_INT(-1, wait_exit(d.pid, 200));
    close(fd);
    sleep_ms(100);
    run_capture(kill_argv, NULL, out, sizeof out);
    int st = wait_exit(d.pid, 3000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "ember-epmd to exit 0 after stock epmd -kill (output \"%s\"), got wait status %d",
                out, st);
    d.pid = 0;
}

static void test_ember_client_against_stock_epmd(void **state)
{
    (void)state;
    need(STOCK_EPMD);
    uint16_t port = free_port();
    char portbuf[8], out[2048];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    const char *start[] = {STOCK_EPMD, "-port", portbuf, "-daemon", NULL};
    EXPECT_INT(0, run_capture(start, NULL, out, sizeof out));
    wait_port(port, 1);

    em_epmd_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "emberclient");
    n.port = 45679;
    n.node_type = EM_EPMD_TYPE_HIDDEN;
    n.protocol = EM_EPMD_PROTO_TCP;
    n.highest_version = 6;
    n.lowest_version = 6;
    int len = em_epmd_extra_build((char *)n.extra, sizeof n.extra, "tcp", "8899aabbccddeeff");
    EXPECT_TRUE(len > 0, "an Extra field, got %d", len);
    n.extra_len = (size_t)len;
    int fd = -1;
    uint32_t creation = 0;
    int rc = em_epmd_register(NULL, port, &n, 2000, &fd, &creation);
    em_epmd_node info;
    em_epmd_name_list l = {0};
    int rc_pp = rc == 0 ? em_epmd_port_please(NULL, port, "emberclient", 2000, &info) : rc;
    int rc_names = rc == 0 ? em_epmd_names(NULL, port, 2000, &l) : rc;
    int rc_dup = -1, fd2 = -1;
    if (rc == 0)
        rc_dup = em_epmd_register(NULL, port, &n, 2000, &fd2, NULL);
    if (fd >= 0)
        close(fd);
    if (fd2 >= 0)
        close(fd2);
    /* Stop the stock daemon before asserting, so that a failure leaves none behind. */
    sleep_ms(100);
    const char *kill_argv[] = {STOCK_EPMD, "-port", portbuf, "-kill", NULL};
    int rc_kill = run_capture(kill_argv, NULL, out, sizeof out);
    if (rc_kill != 0)
        em_epmd_kill(NULL, port, 2000);

    EXPECT_INT(0, rc);
    EXPECT_TRUE(creation != 0, "a creation from the stock epmd's ALIVE2_X_RESP");
    EXPECT_INT(0, rc_pp);
    EXPECT_INT(45679, info.port);
    EXPECT_INT(EM_EPMD_TYPE_HIDDEN, info.node_type);
    EXPECT_STR("ember1 tcp curve=8899aabbccddeeff", (const char *)info.extra);
    EXPECT_INT(0, rc_names);
    EXPECT_INT(1, l.count);
    if (l.count == 1) {
        EXPECT_STR("emberclient", l.names[0].name);
        EXPECT_INT(45679, l.names[0].port);
    }
    EXPECT_INT(port, l.epmd_port);
    em_epmd_name_list_free(&l);
    EXPECT_INT(-EADDRINUSE, rc_dup);
    EXPECT_INT(0, rc_kill);
    EXPECT_TRUE(strstr(out, "Killed") != NULL, "stock epmd -kill to say Killed, got \"%s\"", out);
    wait_port(port, 0);
}

static void test_erlang_node_registers_with_ember(void **state)
{
    (void)state;
    need(STOCK_ERL);
    daemon_proc d = START_DAEMON_PLAIN();
    char env_port[40], out[4096];
    snprintf(env_port, sizeof env_port, "ERL_EPMD_PORT=%u", d.port);
    /* The node registers (as -sname does), lists the names through its own
     * EPMD client, and stops. */
    const char *argv[] = {
        STOCK_ERL,  "-sname", "emberinterop",
        "-noshell", "-eval",  "io:format(\"~p~n\", [net_adm:names()]), init:stop().",
        NULL};
    const char *env[] = {env_port, NULL};
    int rc = run_capture(argv, env, out, sizeof out);
    EXPECT_INT(0, rc);
    EXPECT_TRUE(strstr(out, "{ok,[{\"emberinterop\",") != NULL,
                "the Erlang node to find itself through ember-epmd, got \"%s\"", out);
    /* Its registration ended with it. */
    em_epmd_node info;
    int pp = 0;
    for (int i = 0;
         i < 200 && (pp = em_epmd_port_please(NULL, d.port, "emberinterop", 2000, &info)) == 0; i++)
        sleep_ms(10);
    EXPECT_INT(-ENOENT, pp);
    stop_daemon(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    unsetenv("ERL_EPMD_PORT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stock_names_and_kill_against_ember),
        cmocka_unit_test(test_ember_client_against_stock_epmd),
        cmocka_unit_test(test_erlang_node_registers_with_ember),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
