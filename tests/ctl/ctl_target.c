/*
 * ctl_target.c - the node ember-ctl's tests talk to.
 *
 *   ctl_target NAME SECRET [EPMD_PORT]
 *
 * starts node NAME on 127.0.0.1 (a free port) with SECRET, a cookie or
 * "keyring:DIR" for keyring mode, registered with the port mapper on EPMD_PORT
 * when one is given (0: none), and runs until something stops it
 * (ember-ctl stop). It registers the function "demo:echo" for remote spawn and
 * two processes: `counter`, which prints every message it takes, and `sink`,
 * which never reads its mailbox (so a message sent to it stays there). It
 * prints, one per line and flushed at once, what the tests read:
 *
 *   port N
 *   counter <0.I.S>
 *   sink <0.I.S>
 *   ready
 *   counter got TERM        (for every message counter takes)
 *   echo started with TERM  (for every demo:echo spawned)
 *   halted                  (when em_run returns)
 *
 * It dies with its parent (the test script), so a failed test leaves no node.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "ember.h"

static const char *node_name, *secret;
static int epmd_port, log_level = 1;

static void say(const char *what, em_term t)
{
    char text[512];
    if (em_format(t, text, sizeof text) < 0)
        snprintf(text, sizeof text, "?");
    printf("%s %s\n", what, text);
    fflush(stdout);
}

static void counter(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive(&m, EM_INFINITY) == 0)
            say("counter got", m);
        em_heap_release(mk);
    }
}

static void sink(em_term arg)
{
    (void)arg;
    em_sleep(EM_INFINITY);   /* messages wait in the mailbox */
}

/* demo:echo - answers [From, Msg] with Msg until it is told stop. */
static void echo(em_term arg)
{
    say("echo started with", arg);
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        em_receive(&m, EM_INFINITY);
        if (em_is_atom(m, "stop"))
            return;
        if (em_get_pid(em_at(m, 0), &from))
            em_send(from, em_at(m, 1));
        em_heap_release(mk);
    }
}

static void root(em_term arg)
{
    (void)arg;
    em_register_fn("demo:echo", echo);
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = node_name;
    c.listen = "127.0.0.1:0";
    if (strncmp(secret, "keyring:", 8) == 0) {
        c.trust = EM_TRUST_KEYRING;
        c.keyring = secret + 8;
    } else {
        c.cookie = secret;
    }
    c.log_level = log_level;
    if (epmd_port > 0) {
        c.epmd = true;
        c.epmd_port = (uint16_t)epmd_port;
    }
    int rc = em_dist_start(&c);
    if (rc) {
        fprintf(stderr, "ctl_target: cannot start %s: %s\n", node_name, em_strerror(rc));
        em_halt(1);
    }
    em_pid_t p;
    printf("port %d\n", em_node_port());
    em_spawn(counter, EM_NIL, &p);
    em_register(em_atom("counter"), p);
    say("counter", em_pid(p));
    em_spawn(sink, EM_NIL, &p);
    em_register(em_atom("sink"), p);
    say("sink", em_pid(p));
    printf("ready\n");
    fflush(stdout);
    /* The node runs until ember-ctl stop halts the runtime. */
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: ctl_target NAME SECRET [EPMD_PORT]\n");
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    node_name = argv[1];
    secret = argv[2];
    epmd_port = argc == 4 ? atoi(argv[3]) : 0;
    /* CTL_TARGET_LOG: the library's log level (connections at 2), to debug. */
    if (getenv("CTL_TARGET_LOG"))
        log_level = atoi(getenv("CTL_TARGET_LOG"));
    em_config cfg;
    em_config_init(&cfg);
    cfg.schedulers = 1;
    int rc = em_run(&cfg, root, EM_NIL);
    printf("halted\n");
    fflush(stdout);
    return rc == 0 ? 0 : 1;
}
