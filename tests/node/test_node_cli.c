/*
 * test_node_cli.c - ember-node's command line and config file: --help against
 * docs/ember-node.md (both ways, so they cannot drift), exit status 2 for every
 * kind of bad command line or config file, flags overriding the file, the
 * secret never printed and wiped from the command line, and the clear errors
 * of module loading, status 1 for a node that cannot start, and the module
 * example of the doc built and run.
 */
#include "node_test.h"

#define CONTAINS(hay, needle)                                                                      \
    NT_EXPECT(strstr((hay), (needle)) != NULL, "output containing \"%s\", got:\n%s", (needle),     \
              (hay))
#define LACKS(hay, needle)                                                                         \
    NT_EXPECT(strstr((hay), (needle)) == NULL, "output without \"%s\", got:\n%s", (needle), (hay))

static char out[65536];

/* The --flags named in text (each once), written into flags. */
static size_t flags_in(const char *text, char flags[][64], size_t cap)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "--")) != NULL;) {
        bool starts = p == text || !(p[-1] == '-' || (p[-1] >= 'a' && p[-1] <= 'z'));
        const char *q = p + 2;
        while ((*q >= 'a' && *q <= 'z') || *q == '-')
            q++;
        size_t len = (size_t)(q - p);
        if (starts && len > 3 && len < 64 && p[2] >= 'a' && p[2] <= 'z') {
            char f[64];
            memcpy(f, p, len);
            f[len] = 0;
            bool seen = false;
            for (size_t i = 0; i < n && !seen; i++)
                seen = strcmp(flags[i], f) == 0;
            if (!seen && n < cap)
                memcpy(flags[n++], f, len + 1);
        }
        p = q;
    }
    return n;
}

/* Whether text names flag as a whole word ("--load" is not in "--loadx"). */
static bool names_flag(const char *text, const char *flag)
{
    size_t len = strlen(flag);
    for (const char *p = text; (p = strstr(p, flag)) != NULL; p += len) {
        char after = p[len];
        if (!((after >= 'a' && after <= 'z') || after == '-'))
            return true;
    }
    return false;
}

static void test_help_matches_doc(void **state)
{
    (void)state;
    const char *argv[] = {EMBER_NODE_BIN, "--help", NULL};
    NT_EXPECT(nt_run_capture(argv, NULL, out, sizeof out) == 0, "--help exits 0");
    static char doc[200000];
    NT_EXPECT(nt_read_file(EMBER_NODE_DOC, doc, sizeof doc) > 0, "docs/ember-node.md readable");
    static char help_flags[128][64], doc_flags[128][64];
    size_t nh = flags_in(out, help_flags, 128), nd = flags_in(doc, doc_flags, 128);
    NT_EXPECT(nh >= 25, "--help names every flag (found %zu)", nh);
    for (size_t i = 0; i < nh; i++)
        NT_EXPECT(names_flag(doc, help_flags[i]), "docs/ember-node.md to document %s",
                  help_flags[i]);
    /* And the other way: the doc names no flag that --help does not know. */
    for (size_t i = 0; i < nd; i++)
        NT_EXPECT(names_flag(out, doc_flags[i]),
                  "--help to list %s, which docs/ember-node.md names", doc_flags[i]);
}

/* Runs ember-node with argv and expects status 2 and msg in its output. */
static void expect_usage(const char *const argv[], const char *msg)
{
    int rc = nt_run_capture(argv, NULL, out, sizeof out);
    NT_EXPECT(rc == 2, "exit status 2 for %s %s, got %d; output:\n%s", argv[1],
              argv[2] ? argv[2] : "", rc, out);
    CONTAINS(out, msg);
}

static void test_bad_command_lines(void **state)
{
    (void)state;
    const char *unknown[] = {EMBER_NODE_BIN, "--sname", "a", "--bogus", NULL};
    expect_usage(unknown, "--bogus: unknown flag");
    const char *missing[] = {EMBER_NODE_BIN, "--sname", NULL};
    expect_usage(missing, "--sname: needs a value");
    const char *level[] = {EMBER_NODE_BIN, "--sname", "a", "--log-level", "7", NULL};
    expect_usage(level, "not a number from 0 to 3");
    const char *port[] = {EMBER_NODE_BIN, "--sname", "a", "--epmd-port", "70000", NULL};
    expect_usage(port, "not a number from 1 to 65535");
    const char *busy[] = {EMBER_NODE_BIN, "--sname", "a", "--busy-wait-us", "-5", NULL};
    expect_usage(busy, "\"-5\" is not a number from 0 to 1000000");
    const char *both[] = {EMBER_NODE_BIN, "--sname", "a", "--name", "b@h", NULL};
    expect_usage(both, "give --sname or --name, not both");
    const char *noname[] = {EMBER_NODE_BIN, "--hidden", NULL};
    expect_usage(noname, "a node needs a name");
    const char *positional[] = {EMBER_NODE_BIN, "--sname", "a", "stray", NULL};
    expect_usage(positional, "stray: unexpected argument");
    const char *switchval[] = {EMBER_NODE_BIN, "--sname", "a", "--hidden=yes", NULL};
    expect_usage(switchval, "--hidden: takes no value");
    const char *badname[] = {EMBER_NODE_BIN, "--name", "a b@host", NULL};
    expect_usage(badname, "the name before '@' takes letters");
    const char *runfn[] = {EMBER_NODE_BIN, "--sname", "a", "--run", "nocolon", NULL};
    expect_usage(runfn, "\"nocolon\" is not module:function");
    const char *runarg[] = {EMBER_NODE_BIN, "--sname", "a", "--no-epmd", "--run", "demo:echo",
                            "[1,", NULL};
    expect_usage(runarg, "is not a term");
    const char *seedport[] = {EMBER_NODE_BIN, "--sname", "a", "--no-epmd", "--connect",
                              "b@127.0.0.1", NULL};
    expect_usage(seedport, "a seed needs its port");
    const char *secrets[] = {EMBER_NODE_BIN, "--sname", "a", "--cookie", "x", "--keyring", "/k",
                             NULL};
    expect_usage(secrets, "give one of --cookie, --cookie-file and --keyring");
    const char *noconfig[] = {EMBER_NODE_BIN, "--config", "/nonexistent/ember.conf", NULL};
    expect_usage(noconfig, "cannot read the config file");
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_file(void **state)
{
    (void)state;
    char conf[400];
    snprintf(conf, sizeof conf, "%s/node.conf", nt_dir);
    write_file(conf, "# a node of the demo cluster\n"
                     "name = cfg@10.0.0.7\n"
                     "cookie-file = /etc/ember/cookie\n"
                     "  listen = 0.0.0.0:9101  \n"
                     "\n"
                     "load = demo\n"
                     "run = demo:sup 2\n"
                     "connect = a@10.0.0.1, b@10.0.0.2:9101\n"
                     "log-level = 1\n"
                     "epmd-port = 4400\n"
                     "tick-ms = 4000\n"
                     "busy-wait-us = 250\n"
                     "hidden = true\n");
    const char *argv[] = {EMBER_NODE_BIN, "--config", conf, "--log-level", "3", "--load",
                          "/opt/extra.so", "--hidden=", NULL};
    /* "--hidden=" is a switch given a value: a usage error, even after a good file. */
    expect_usage(argv, "--hidden: takes no value");
    argv[7] = "--print-config";
    int rc = nt_run_capture(argv, NULL, out, sizeof out);
    NT_EXPECT(rc == 0, "--print-config exits 0, got %d:\n%s", rc, out);
    CONTAINS(out, "\nname = cfg@10.0.0.7\n");
    CONTAINS(out, "\ncookie-file = /etc/ember/cookie\n");
    CONTAINS(out, "\nlisten = 0.0.0.0:9101\n");
    CONTAINS(out, "\nload = demo\nload = /opt/extra.so\n");   /* lists add up, the file's first */
    CONTAINS(out, "\nrun = demo:sup 2\n");
    CONTAINS(out, "\nconnect = a@10.0.0.1\nconnect = b@10.0.0.2:9101\n");
    CONTAINS(out, "\nlog-level = 3\n");                       /* the flag wins */
    CONTAINS(out, "\nepmd-port = 4400\n");
    CONTAINS(out, "\ntick-ms = 4000\n");
    CONTAINS(out, "\nbusy-wait-us = 250\n");
    CONTAINS(out, "\nhidden = true\n");

    /* Bad files: status 2, and the line that is wrong. */
    write_file(conf, "sname = a\ncolour = blue\n");
    const char *bad[] = {EMBER_NODE_BIN, "--config", conf, NULL};
    expect_usage(bad, "node.conf:2: unknown key \"colour\"");
    write_file(conf, "sname = a\nhidden = maybe\n");
    expect_usage(bad, "node.conf:2: \"maybe\" is not true or false");
    write_file(conf, "sname = a\njust some words\n");
    expect_usage(bad, "node.conf:2: expected \"key = value\"");
    write_file(conf, "config = /etc/other.conf\n");
    expect_usage(bad, "node.conf:1: \"config\" cannot be set in a config file");
    write_file(conf, "sname = a\nlisten =\n");
    expect_usage(bad, "node.conf:2: \"listen\" needs a value");
}

static void test_secret_never_shown(void **state)
{
    (void)state;
    const char *argv[] = {EMBER_NODE_BIN, "--sname", "a", "--cookie", "s3cr3t-value",
                          "--print-config", NULL};
    NT_EXPECT(nt_run_capture(argv, NULL, out, sizeof out) == 0, "exit 0");
    LACKS(out, "s3cr3t-value");
    CONTAINS(out, "# trust: cookie\n");
    const char *env_argv[] = {EMBER_NODE_BIN, "--sname", "a", "--print-config", NULL};
    const char *env[] = {"EMBER_COOKIE=from-the-env", NULL};
    NT_EXPECT(nt_run_capture(env_argv, env, out, sizeof out) == 0, "exit 0");
    LACKS(out, "from-the-env");
    CONTAINS(out, "# trust: cookie ($EMBER_COOKIE)\n");
}

/* A running node's command line (what ps shows) no longer holds the cookie. */
static void test_cookie_wiped_from_ps(void **state)
{
    (void)state;
    const char *argv[] = {EMBER_NODE_BIN, "--name", "wipe@127.0.0.1", "--no-epmd", "--cookie",
                          "ember-node-test-cookie", "--schedulers", "1", NULL};
    nt_proc *p = nt_start("wipe", argv, NULL);
    nt_wait_up(p);
    char path[64], cmdline[4096];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)p->pid);
    size_t n = nt_read_file(path, cmdline, sizeof cmdline);
    NT_EXPECT(n > 0, "a readable %s", path);
    for (size_t i = 0; i < n; i++)
        if (!cmdline[i])
            cmdline[i] = ' ';
    LACKS(cmdline, "ember-node-test-cookie");
    CONTAINS(cmdline, "--cookie xxxxxxxx");
    int st = nt_signal_wait(p, SIGTERM, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "exit status 0 after SIGTERM, got %d", st);
}

/* Loading fails with status 1 and a line that says what is wrong. */
static void expect_load_error(const char *module, const char *msg)
{
    const char *argv[] = {EMBER_NODE_BIN, "--sname", "a", "--no-epmd", "--load", module, NULL};
    int rc = nt_run_capture(argv, NULL, out, sizeof out);
    NT_EXPECT(rc == 1, "exit status 1 for --load %s, got %d:\n%s", module, rc, out);
    CONTAINS(out, "cannot load module");
    CONTAINS(out, msg);
}

static void test_module_errors(void **state)
{
    (void)state;
    expect_load_error("/nonexistent/libnothing.so", "No such file or directory");
    expect_load_error("nosuchmodule", "no libnosuchmodule.so or nosuchmodule.so");
    expect_load_error(EMBER_TEST_MODULE_DIR "/libnode_test_noexports.so",
                      "exports no ember_module_exports table");
    expect_load_error(EMBER_TEST_MODULE_DIR "/libnode_test_badname.so",
                      "\"bad name\" is not a function name");
    /* A file whose name does not make a module name. */
    char odd[400], cmd[1000];
    snprintf(odd, sizeof odd, "%s/odd-name.so", nt_dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", EMBER_DEMO_MODULE, odd);
    NT_EXPECT(system(cmd) == 0, "copied the demo module");
    expect_load_error(odd, "its name \"odd-name\"");
    /* The same module twice: by name, then by path. */
    const char *twice[] = {EMBER_NODE_BIN, "--sname", "a", "--no-epmd", "--load", "demo",
                           "--load", EMBER_DEMO_MODULE, NULL};
    NT_EXPECT(nt_run_capture(twice, NULL, out, sizeof out) == 1, "exit 1 for a module twice");
    CONTAINS(out, "a module named demo is loaded already");
    /* A --run function that no module exports. */
    const char *nofn[] = {EMBER_NODE_BIN, "--sname", "a", "--no-epmd", "--load", "demo",
                          "--run", "demo:nope", NULL};
    NT_EXPECT(nt_run_capture(nofn, NULL, out, sizeof out) == 1, "exit 1 for an unknown --run");
    CONTAINS(out, "--run demo:nope: no such function (loaded: demo:echo, demo:worker");
}

/* A node that cannot start says why and exits 1: a listen address that does
 * not parse, a cookie file that is not there, a name taken on this host. */
static void test_start_failures(void **state)
{
    (void)state;
    const char *listen[] = {EMBER_NODE_BIN, "--name", "f@127.0.0.1", "--no-epmd",
                            "--cookie-file", nt_cookie_file, "--listen", "nowhere", NULL};
    int rc = nt_run_capture(listen, NULL, out, sizeof out);
    NT_EXPECT(rc == 1, "exit 1 for a bad listen address, got %d:\n%s", rc, out);
    CONTAINS(out, "bad listen address \"nowhere\"");
    CONTAINS(out, "cannot start the node");
    const char *cookie[] = {EMBER_NODE_BIN, "--name", "f@127.0.0.1", "--no-epmd", "--cookie-file",
                            "/nonexistent/cookie", NULL};
    rc = nt_run_capture(cookie, NULL, out, sizeof out);
    NT_EXPECT(rc == 1, "exit 1 for a missing cookie file, got %d:\n%s", rc, out);
    CONTAINS(out, "cannot read the cookie file /nonexistent/cookie");
    char port[8];
    snprintf(port, sizeof port, "%u", nt_start_epmd());
    const char *taken[] = {EMBER_NODE_BIN, "--name", "twice@127.0.0.1", "--cookie-file",
                           nt_cookie_file, "--epmd-port", port, "--schedulers", "1", NULL};
    nt_proc *first = nt_start("twice", taken, NULL);
    nt_wait_up(first);
    rc = nt_run_capture(taken, NULL, out, sizeof out);
    NT_EXPECT(rc == 1, "exit 1 for a name registered already, got %d:\n%s", rc, out);
    CONTAINS(out, "its name is registered already");
    int st = nt_signal_wait(first, SIGTERM, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "the first node exits 0 (%d)", st);
}

/* The module example of docs/ember-node.md (its first C block) builds with the
 * command the page gives and does what the page says when run. */
static void test_doc_module_example(void **state)
{
    (void)state;
    static char doc[200000];
    NT_EXPECT(nt_read_file(EMBER_NODE_DOC, doc, sizeof doc) > 0, "docs/ember-node.md readable");
    const char *start = strstr(doc, "\n```c\n");
    NT_EXPECT(start != NULL, "a C block in docs/ember-node.md");
    start += strlen("\n```c\n");
    const char *end = strstr(start, "\n```\n");
    NT_EXPECT(end != NULL, "the C block ends");
    char src[400], lib[400], cmd[2000];
    snprintf(src, sizeof src, "%s/greet.c", nt_dir);
    snprintf(lib, sizeof lib, "%s/libgreet.so", nt_dir);
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fwrite(start, 1, (size_t)(end - start) + 1, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "'%s' -std=c11 -Wall -Wextra -Werror -shared -fPIC -I'%s/include' "
                              "-I'%s/node' '%s' -o '%s' 2>&1",
             EMBER_CC, EMBER_SRC_DIR, EMBER_SRC_DIR, src, lib);
    NT_EXPECT(system(cmd) == 0, "the example builds: %s", cmd);
    const char *argv[] = {EMBER_NODE_BIN, "--name", "g@127.0.0.1", "--no-epmd", "--cookie-file",
                          nt_cookie_file, "--load", lib, "--run", "greet:hello", "world",
                          "--exit-with-run", NULL};
    int rc = nt_run_capture(argv, NULL, out, sizeof out);
    NT_EXPECT(rc == 0, "the example's node exits 0, got %d:\n%s", rc, out);
    CONTAINS(out, "hello, world, from g@127.0.0.1\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_help_matches_doc, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_bad_command_lines, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_config_file, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_secret_never_shown, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_cookie_wiped_from_ps, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_module_errors, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_start_failures, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_doc_module_example, nt_setup, nt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
