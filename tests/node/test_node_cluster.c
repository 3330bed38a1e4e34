/*
 * test_node_cluster.c - ember-node processes forming a cluster, and serving a
 * module's functions to other nodes:
 *  - a node with --load demo --run demo:echo answers a message from another
 *    node, and spawns demo functions for it (em_spawn_on);
 *  - three nodes join through the port mapper (c and b name a@127.0.0.1 only);
 *  - three nodes join through seeds with explicit ports and no port mapper,
 *    the first started before its seed is up;
 *  - a mesh that the handshake alone leaves incomplete is completed by the
 *    mesh check;
 *  - three nodes find each other through DNS (localhost) and the port mapper.
 * Each cluster is checked by asking every node's ember_ctl which nodes it sees.
 */
#include "node_test.h"

#define MESH_MS 20000

static char epmd_port_arg[8];

/* Starts node name@127.0.0.1 with the test's cookie, its port mapper and the
 * extra arguments (NULL-terminated). */
static nt_proc *start_node(const char *name, const char *const extra[])
{
    const char *argv[40];
    char full[64];
    size_t n = 0;
    snprintf(full, sizeof full, "%s@127.0.0.1", name);
    argv[n++] = EMBER_NODE_BIN;
    argv[n++] = "--name";
    argv[n++] = strdup(full);
    argv[n++] = "--cookie-file";
    argv[n++] = nt_cookie_file;
    argv[n++] = "--schedulers";
    argv[n++] = "1";
    if (epmd_port_arg[0]) {
        argv[n++] = "--epmd-port";
        argv[n++] = epmd_port_arg;
    }
    for (size_t i = 0; extra && extra[i] && n < 39; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    nt_proc *p = nt_start(name, argv, NULL);
    free((char *)argv[2]);
    return p;
}

static void use_epmd(uint16_t port)
{
    if (port)
        snprintf(epmd_port_arg, sizeof epmd_port_arg, "%u", port);
    else
        epmd_port_arg[0] = 0;
}

/* ------------------------------------------------------------ echo */

typedef struct echo_ctx {
    int port;
} echo_ctx;

static void echo_probe(void *arg)
{
    echo_ctx *c = arg;
    em_term a = em_atom("a@127.0.0.1"), m;
    PCHECK(nt_connect("a@127.0.0.1", c->port) == 0, "connect to a on port %d", c->port);
    /* The --run process, registered as echo. */
    em_send_remote(em_atom("echo"), a, EM_ARR(em_pid(em_self()), em_atom("hello")));
    PCHECK(em_receive(&m, 5000) == 0, "an answer from demo:echo");
    PCHECK(em_match(m, "[echo, hello]"), "[echo, hello]");
    /* A remote spawn of a module function, by its "module:function" name. */
    em_pid_t pid;
    em_term ref;
    int rc = em_spawn_on(a, "demo:echo", em_atom("echo2"), EM_SPAWN_MONITOR, &pid, &ref, 5000);
    PCHECK(rc == 0, "em_spawn_on demo:echo: %s", em_strerror(rc));
    PCHECK(em_node_of(pid) == a, "the child runs on a");
    em_send(pid, EM_ARR(em_pid(em_self()), em_int(42)));
    PCHECK(em_receive_match(&m, 5000, "[echo, 42]") == 0, "[echo, 42] from the spawned echo");
    em_send(pid, em_atom("stop"));
    PCHECK(em_receive_match(&m, 5000, "['DOWN', _, process, _, normal]") == 0,
           "the spawned echo ends normally");
    /* demo:counter, spawned, counts what it is sent. */
    rc = em_spawn_on(a, "demo:counter", EM_NIL, 0, &pid, NULL, 5000);
    PCHECK(rc == 0, "em_spawn_on demo:counter: %s", em_strerror(rc));
    for (int i = 0; i < 5; i++)
        em_send(pid, em_int(i));
    em_send(pid, EM_ARR(em_atom("get"), em_pid(em_self())));
    PCHECK(em_receive_match(&m, 5000, "[count, 5]") == 0, "[count, 5]");
    /* A function no module exports. */
    rc = em_spawn_on(a, "demo:nope", EM_NIL, 0, &pid, NULL, 5000);
    PCHECK(rc == EM_ENOTFOUND, "EM_ENOTFOUND for demo:nope, got %s", em_strerror(rc));
}

static void test_echo_answers_another_node(void **state)
{
    (void)state;
    use_epmd(0);
    const char *extra[] = {"--no-epmd", "--load", "demo", "--run", "demo:echo", NULL};
    nt_proc *a = start_node("a", extra);
    echo_ctx c = {.port = nt_wait_up(a)};
    nt_probe(echo_probe, &c);
    int st = nt_signal_wait(a, SIGTERM, NT_EXIT_MS);
    NT_EXPECT(nt_exited_with(st, 0), "a exits 0 after SIGTERM (status %d)", st);
}

/* ------------------------------------------------------------ meshes */

typedef struct mesh_ctx {
    const char *names[3];
    int ports[3];
} mesh_ctx;

static void mesh_probe(void *arg)
{
    mesh_ctx *c = arg;
    for (int i = 0; i < 3; i++)
        PCHECK(nt_connect(c->names[i], c->ports[i]) == 0, "connect to %s", c->names[i]);
    char why[4096];
    PCHECK(nt_wait_mesh(c->names, 3, MESH_MS, why, sizeof why), "a full mesh: %s", why);
}

static mesh_ctx mesh_of(nt_proc *p[3])
{
    mesh_ctx c = {.names = {"a@127.0.0.1", "b@127.0.0.1", "c@127.0.0.1"}};
    for (int i = 0; i < 3; i++)
        c.ports[i] = nt_wait_up(p[i]);
    return c;
}

static void stop_all(nt_proc *p[3])
{
    for (int i = 0; i < 3; i++)
        kill(p[i]->pid, SIGTERM);
    for (int i = 0; i < 3; i++) {
        int st = nt_wait(p[i], NT_EXIT_MS);
        NT_EXPECT(nt_exited_with(st, 0), "%s exits 0 after SIGTERM (status %d)", p[i]->tag, st);
    }
}

static void test_mesh_through_epmd(void **state)
{
    (void)state;
    use_epmd(nt_start_epmd());
    nt_proc *p[3];
    p[0] = start_node("a", NULL);
    nt_wait_up(p[0]);
    const char *to_a[] = {"--connect", "a@127.0.0.1", NULL};
    p[1] = start_node("b", to_a);
    p[2] = start_node("c", to_a);
    mesh_ctx c = mesh_of(p);
    nt_probe(mesh_probe, &c);
    NT_EXPECT(nt_wait_log(p[2], "joined the cluster through a@127.0.0.1", 8000),
              "c joined through a");
    stop_all(p);
}

/* Without port mappers, the joins are made one at a time: the library's
 * handshake lists the nodes the greeting side knew when it first dialled, so a
 * join that overlaps another (or a seed dialled before the cluster formed) can
 * leave two nodes unconnected, and without port mappers the mesh check cannot
 * repair that. */
static void test_mesh_through_seeds(void **state)
{
    (void)state;
    use_epmd(0);
    uint16_t ports[3] = {nt_free_port(), nt_free_port(), nt_free_port()};
    char listen[3][32], seeds_a[160], seed_b[64];
    for (int i = 0; i < 3; i++)
        snprintf(listen[i], sizeof listen[i], "127.0.0.1:%u", ports[i]);
    snprintf(seed_b, sizeof seed_b, "b@127.0.0.1:%u", ports[1]);
    /* a's list names a itself too, as a list shared by every node would. */
    snprintf(seeds_a, sizeof seeds_a, "a@127.0.0.1:%u,%s", ports[0], seed_b);
    /* c first: its seed b is not up yet, so it has to try again. */
    nt_proc *p[3];
    const char *ec[] = {"--no-epmd", "--listen", listen[2], "--connect", seed_b, NULL};
    p[2] = start_node("c", ec);
    nt_wait_up(p[2]);
    NT_EXPECT(nt_wait_log(p[2], "no seed answered yet", 10000), "c says its seed did not answer");
    const char *eb[] = {"--no-epmd", "--listen", listen[1], NULL};
    p[1] = start_node("b", eb);
    nt_wait_up(p[1]);
    NT_EXPECT(nt_wait_log(p[2], "joined the cluster through b@127.0.0.1", 10000),
              "c joined through b once b was up");
    /* a joins through b alone, and meets c through b's handshake. */
    const char *ea[] = {"--no-epmd", "--listen", listen[0], "--connect", seeds_a, NULL};
    p[0] = start_node("a", ea);
    mesh_ctx c = mesh_of(p);
    for (int i = 0; i < 3; i++)
        NT_EXPECT(c.ports[i] == ports[i], "%s listens on the port given (%u), not %d", p[i]->tag,
                  ports[i], c.ports[i]);
    nt_probe(mesh_probe, &c);
    NT_EXPECT(nt_wait_log(p[0], "joined the cluster through b@127.0.0.1", 10000),
              "a joined through b");
    stop_all(p);
}

/* The overlap the mesh check is for: b dials a before a is up, c joins through
 * b, then a comes up. b's greeting to a was made when b knew nobody, so the
 * handshake alone leaves a and c apart; the mesh check (asking b which nodes it
 * sees) connects them through the port mapper. */
static void test_mesh_check_completes_mesh(void **state)
{
    (void)state;
    use_epmd(nt_start_epmd());
    uint16_t port_a = nt_free_port(), port_b = nt_free_port();
    char listen_a[32], listen_b[32], seed_a[64], seed_b[64];
    snprintf(listen_a, sizeof listen_a, "127.0.0.1:%u", port_a);
    snprintf(listen_b, sizeof listen_b, "127.0.0.1:%u", port_b);
    snprintf(seed_a, sizeof seed_a, "a@127.0.0.1:%u", port_a);
    snprintf(seed_b, sizeof seed_b, "b@127.0.0.1:%u", port_b);
    nt_proc *p[3];
    const char *eb[] = {"--listen", listen_b, "--connect", seed_a, "--discover-interval", "300",
                        NULL};
    p[1] = start_node("b", eb);
    NT_EXPECT(nt_wait_log(p[1], "no seed answered yet", 10000), "b's seed a is not up yet");
    const char *ec[] = {"--connect", seed_b, "--discover-interval", "300", NULL};
    p[2] = start_node("c", ec);
    NT_EXPECT(nt_wait_log(p[2], "joined the cluster through b@127.0.0.1", 10000), "c joined b");
    const char *ea[] = {"--listen", listen_a, "--discover-interval", "300", NULL};
    p[0] = start_node("a", ea);
    mesh_ctx c = mesh_of(p);
    nt_probe(mesh_probe, &c);
    stop_all(p);
}

static void test_mesh_through_dns(void **state)
{
    (void)state;
    uint16_t epmd = nt_start_epmd();
    use_epmd(epmd);
    char dns[64];
    snprintf(dns, sizeof dns, "localhost:%u", epmd);
    const char *extra[] = {"--discover-dns", dns, "--discover-interval", "300", NULL};
    nt_proc *p[3];
    p[0] = start_node("a", extra);
    p[1] = start_node("b", extra);
    p[2] = start_node("c", extra);
    mesh_ctx c = mesh_of(p);
    nt_probe(mesh_probe, &c);
    bool found = false;
    for (int i = 0; i < 3; i++)
        found = found || nt_log_has(p[i], "@127.0.0.1 through localhost");
    NT_EXPECT(found, "a node says it found another through localhost");
    stop_all(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_echo_answers_another_node, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_mesh_through_epmd, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_mesh_through_seeds, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_mesh_check_completes_mesh, nt_setup, nt_teardown),
        cmocka_unit_test_setup_teardown(test_mesh_through_dns, nt_setup, nt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
