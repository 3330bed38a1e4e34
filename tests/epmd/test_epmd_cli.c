/*
 * test_epmd_cli.c - ember-epmd's command line: the -names, -kill and -stop
 * client modes, ERL_EPMD_PORT (and -port winning over it), exit status 2 for
 * bad command lines, and --help matching docs/epmd.md line for line and flag
 * for flag.
 */
#include "epmd_test.h"

#include <ctype.h>

#include "epmd_client.h"

static int register_node(uint16_t port, const char *name, uint16_t node_port)
{
    em_epmd_node n;
    memset(&n, 0, sizeof n);
    snprintf(n.name, sizeof n.name, "%s", name);
    n.port = node_port;
    n.node_type = EM_EPMD_TYPE_HIDDEN;
    n.highest_version = 6;
    n.lowest_version = 6;
    int fd = -1;
    EXPECT_INT(0, em_epmd_register(NULL, port, &n, 2000, &fd, NULL));
    return fd;
}

#define CONTAINS(hay, needle)                                                                      \
    EXPECT_TRUE(strstr((hay), (needle)) != NULL, "output containing \"%s\", got \"%s\"", (needle), \
                (hay))

static void test_names_mode(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    int fd = register_node(d.port, "clinode", 4242);
    char portbuf[8], out[1024], want[64];
    snprintf(portbuf, sizeof portbuf, "%u", d.port);
    const char *argv[] = {EMBER_EPMD_BIN, "-names", "-port", portbuf, NULL};
    EXPECT_INT(0, run_capture(argv, NULL, out, sizeof out));
    snprintf(want, sizeof want, "up and running on port %u with data:\n", d.port);
    CONTAINS(out, want);
    CONTAINS(out, "\nname clinode at port 4242\n");
    close(fd);
    stop_daemon(&d);

    /* No daemon there: exit status 1 and a message. */
    EXPECT_INT(1, run_capture(argv, NULL, out, sizeof out));
    CONTAINS(out, "no port mapper");
}

static void test_kill_mode(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON_PLAIN();
    int fd = register_node(d.port, "holdout", 4300);
    char portbuf[8], out[1024];
    snprintf(portbuf, sizeof portbuf, "%u", d.port);
    const char *argv[] = {EMBER_EPMD_BIN, "-kill", "-port", portbuf, NULL};
    EXPECT_INT(1, run_capture(argv, NULL, out, sizeof out));
    CONTAINS(out, "refused");
    EXPECT_INT(1, port_answers(d.port));
    close(fd);
    int rc = 1;
    for (int i = 0; i < 100 && (rc = run_capture(argv, NULL, out, sizeof out)) == 1; i++)
        sleep_ms(10);
    EXPECT_INT(0, rc);
    CONTAINS(out, "Killed");
    int st = wait_exit(d.pid, 3000);
    EXPECT_TRUE(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "exit status 0 after -kill, got %d", st);
    d.pid = 0;
}

static void test_stop_mode(void **state)
{
    (void)state;
    daemon_proc d = START_DAEMON("-relaxed_command_check");
    int fd = register_node(d.port, "stuck", 4400);
    char portbuf[8], out[1024];
    snprintf(portbuf, sizeof portbuf, "%u", d.port);
    const char *argv[] = {EMBER_EPMD_BIN, "-port", portbuf, "-stop", "stuck", NULL};
    EXPECT_INT(0, run_capture(argv, NULL, out, sizeof out));
    CONTAINS(out, "STOPPED stuck");
    EXPECT_INT(1, run_capture(argv, NULL, out, sizeof out));
    CONTAINS(out, "no such name");
    close(fd);
    stop_daemon(&d);
}

static void test_erl_epmd_port_honoured(void **state)
{
    (void)state;
    uint16_t port = 0;
    char env_port[40], out[1024], want[64];
    /* The daemon takes its port from the environment when no -port is given.
     * The port was free when picked; should another process take it before the
     * daemon binds it (the daemon then exits at once), pick another. */
    daemon_proc d = {0};
    bool up = false;
    for (int attempt = 0; attempt < 5 && !up; attempt++) {
        port = free_port();
        snprintf(env_port, sizeof env_port, "ERL_EPMD_PORT=%u", port);
        setenv("ERL_EPMD_PORT", env_port + strlen("ERL_EPMD_PORT="), 1);
        up = try_start_daemon_args(1, port, NULL, &d);
        unsetenv("ERL_EPMD_PORT");
    }
    EXPECT_TRUE(up, "ember-epmd to come up on the port ERL_EPMD_PORT names (5 ports tried)");
    em_epmd_name_list l;
    EXPECT_INT(0, em_epmd_names(NULL, port, 2000, &l));
    EXPECT_INT(port, l.epmd_port);
    em_epmd_name_list_free(&l);
    /* So does the client mode, and the library's default port. */
    const char *names[] = {EMBER_EPMD_BIN, "-names", NULL};
    const char *env[] = {env_port, NULL};
    EXPECT_INT(0, run_capture(names, env, out, sizeof out));
    snprintf(want, sizeof want, "up and running on port %u", port);
    CONTAINS(out, want);
    setenv("ERL_EPMD_PORT", env_port + strlen("ERL_EPMD_PORT="), 1);
    EXPECT_INT(port, em_epmd_default_port());
    EXPECT_INT(0, em_epmd_names(NULL, 0, 2000, &l));
    em_epmd_name_list_free(&l);
    unsetenv("ERL_EPMD_PORT");
    EXPECT_INT(4369, em_epmd_default_port());
    /* -port wins over the environment. */
    char other[40], portbuf[8];
    snprintf(other, sizeof other, "ERL_EPMD_PORT=%u", free_port());
    snprintf(portbuf, sizeof portbuf, "%u", port);
    const char *names_port[] = {EMBER_EPMD_BIN, "-names", "-port", portbuf, NULL};
    const char *env_other[] = {other, NULL};
    EXPECT_INT(0, run_capture(names_port, env_other, out, sizeof out));
    CONTAINS(out, want);
    stop_daemon(&d);
}

static void test_bad_command_lines_exit_2(void **state)
{
    (void)state;
    struct {
        const char *argv[6];
        const char *message;
    } cases[] = {
        {{EMBER_EPMD_BIN, "-bogus", NULL}, "unknown flag '-bogus'"},
        {{EMBER_EPMD_BIN, "--port", "4369", NULL}, "unknown flag '--port'"},
        {{EMBER_EPMD_BIN, "-port", NULL}, "-port needs a port number"},
        {{EMBER_EPMD_BIN, "-port", "70000", NULL}, "-port needs a port number"},
        {{EMBER_EPMD_BIN, "-port", "12ab", NULL}, "-port needs a port number"},
        {{EMBER_EPMD_BIN, "-stop", NULL}, "-stop needs a node name"},
        {{EMBER_EPMD_BIN, "-names", "-kill", NULL}, "exclude each other"},
        {{EMBER_EPMD_BIN, "-packet_timeout", "0", NULL}, "-packet_timeout needs seconds"},
        {{EMBER_EPMD_BIN, "-max_names", "-1", NULL}, "-max_names needs a count"},
        {{EMBER_EPMD_BIN, "-daemon", "-names", NULL}, "-daemon starts a daemon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char out[1024];
        int rc = run_capture(cases[i].argv, NULL, out, sizeof out);
        if (rc != 2 || !strstr(out, cases[i].message) || !strstr(out, "--help")) {
            print_error("%s %s: expected exit status 2 and \"%s\", got %d and \"%s\"\n",
                        cases[i].argv[1], cases[i].argv[2] ? cases[i].argv[2] : "",
                        cases[i].message, rc, out);
            fail();
        }
    }
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Whether text holds word as a whole flag (not inside a longer one). */
static int has_flag(const char *text, const char *word)
{
    size_t len = strlen(word);
    for (const char *p = text; (p = strstr(p, word)); p++) {
        char before = p == text ? ' ' : p[-1];
        char after = p[len];
        if (before != '-' && !isalnum((unsigned char)before) && before != '_' && after != '_' &&
            !isalnum((unsigned char)after))
            return 1;
    }
    return 0;
}

static void test_help_matches_docs(void **state)
{
    (void)state;
    static char help[8192];
    const char *argv[] = {EMBER_EPMD_BIN, "--help", NULL};
    EXPECT_INT(0, run_capture(argv, NULL, help, sizeof help));
    const char *doc = read_file(EMBER_EPMD_DOC);
    EXPECT_TRUE(doc != NULL, "%s to be readable", EMBER_EPMD_DOC);

    /* Every line of --help appears in the documentation as it is. */
    char line[256];
    int lines = 0;
    for (const char *p = help; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            EXPECT_TRUE(strstr(doc, line) != NULL, "docs/epmd.md to contain the --help line \"%s\"",
                        line);
            lines++;
        }
        p += len + (nl ? 1 : 0);
    }
    EXPECT_TRUE(lines > 10, "a --help of more than 10 lines, got %d", lines);

    /* And every flag that --help names, wherever it is named. */
    int flags = 0;
    for (const char *p = help; *p; p++) {
        if (*p != '-' || (p > help && !strchr(" [|(", p[-1])))
            continue;
        const char *q = p + 1;
        if (*q == '-')
            q++;
        if (!islower((unsigned char)*q))
            continue;
        while (islower((unsigned char)*q) || *q == '_')
            q++;
        char flag[64];
        size_t len = (size_t)(q - p);
        if (len >= sizeof flag)
            continue;
        memcpy(flag, p, len);
        flag[len] = '\0';
        EXPECT_TRUE(has_flag(doc, flag), "docs/epmd.md to document the flag %s", flag);
        flags++;
    }
    EXPECT_TRUE(flags >= 14, "--help to name at least 14 flags, found %d", flags);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    unsetenv("ERL_EPMD_PORT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_mode),
        cmocka_unit_test(test_kill_mode),
        cmocka_unit_test(test_stop_mode),
        cmocka_unit_test(test_erl_epmd_port_honoured),
        cmocka_unit_test(test_bad_command_lines_exit_2),
        cmocka_unit_test(test_help_matches_docs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
