/*
 * test_dist_trust.c - who may talk to a node, and what a node does with input
 * it cannot trust.
 *
 * Trust: a node with the wrong cookie cannot connect and delivers nothing (and
 * the node it knocked on counts it as refused); in keyring mode two nodes that
 * list each other's keys talk, and a third whose key is not listed is refused.
 *
 * Hostile frames: an attacker that holds the cookie (so it passes the CURVE
 * handshake and the trust check) speaks raw ZeroMQ to a node and sends what no
 * ember node would: garbage, truncated msgpack, bad HELLOs, huge declared
 * lengths, deep nesting, unknown extension types, frames for another life of
 * the node. The node must stay up, count the frames as bad, deliver nothing
 * from them, and go on serving a legitimate node.
 *
 * The tests reach libzmq, which libember links privately, through dlsym: the
 * test programs are not linked with it themselves.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>
#include <zmq.h>

#include "check.h"
#include "dist_harness.h"
#include "dist_int.h"
#include "ember.h"

/* ------------------------------------------------------ libzmq, by dlsym */

static struct {
    void *(*ctx_new)(void);
    int (*ctx_term)(void *);
    void *(*socket)(void *, int);
    int (*setsockopt)(void *, int, const void *, size_t);
    int (*connect)(void *, const char *);
    int (*bind)(void *, const char *);
    int (*getsockopt)(void *, int, void *, size_t *);
    int (*send)(void *, const void *, size_t, int);
    int (*close)(void *);
    int (*curve_keypair)(char *, char *);
    char *(*z85_encode)(char *, const uint8_t *, size_t);
} Z;

/* libzmq is loaded with libember; find its functions. False if one is missing. */
static bool zmq_load(void)
{
    void *h = RTLD_DEFAULT;
    *(void **)&Z.ctx_new = dlsym(h, "zmq_ctx_new");
    *(void **)&Z.ctx_term = dlsym(h, "zmq_ctx_term");
    *(void **)&Z.socket = dlsym(h, "zmq_socket");
    *(void **)&Z.setsockopt = dlsym(h, "zmq_setsockopt");
    *(void **)&Z.connect = dlsym(h, "zmq_connect");
    *(void **)&Z.bind = dlsym(h, "zmq_bind");
    *(void **)&Z.getsockopt = dlsym(h, "zmq_getsockopt");
    *(void **)&Z.send = dlsym(h, "zmq_send");
    *(void **)&Z.close = dlsym(h, "zmq_close");
    *(void **)&Z.curve_keypair = dlsym(h, "zmq_curve_keypair");
    *(void **)&Z.z85_encode = dlsym(h, "zmq_z85_encode");
    return Z.ctx_new && Z.ctx_term && Z.socket && Z.setsockopt && Z.connect && Z.bind && Z.getsockopt &&
           Z.send && Z.close &&
           Z.curve_keypair && Z.z85_encode;
}

/* ------------------------------------------------------------- shared parts */

/* 'box': counts what it gets besides ['who', _] and ['report', From]; answers
 * ['ping', N, From] with ['pong', N]; ['report', From] gets ['report', Count,
 * First] (First: the first counted message, or nil). */
static void box_server(em_term arg)
{
    (void)arg;
    int64_t count = 0, n;
    char first[512] = "nil";
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        if (em_receive(&m, EM_INFINITY) != 0 || dh_answer_who(m)) {
        } else if (em_match(m, "[report, ~p]", &from)) {
            em_send(from, EM_ARR(em_atom("report"), em_int(count), em_str(first)));
        } else {
            if (count++ == 0)
                dh_fmt(m, first, sizeof first);
            if (em_match(m, "[ping, ~i, ~p]", &n, &from))
                em_send(from, EM_ARR(em_atom("pong"), em_int(n)));
        }
        em_heap_release(mk);
    }
}

/* Node roles here start from a "cfg ..." line: "cfg cookie SECRET" or
 * "cfg keyring DIR" (plus " tick MS" optionally). */
static char cfg_secret[512];
static em_dist_config config_from_test(void)
{
    em_dist_config c = dh_config();
    char rest[600], mode[32];
    long tick = 0;
    if (!dh_hear_expect("cfg ", rest, sizeof rest, 10000))
        return c;
    int got = sscanf(rest, "%31s %511s tick %ld", mode, cfg_secret, &tick);
    if (got < 2) {
        CHECK_FAIL("[%s] a bad cfg line: \"%s\"", dh_me.name, rest);
        return c;
    }
    if (strcmp(mode, "keyring") == 0) {
        c.trust = EM_TRUST_KEYRING;
        c.keyring = cfg_secret;
        c.cookie = NULL;
    } else {
        c.cookie = cfg_secret;
    }
    if (got == 3 && tick > 0)
        c.tick_ms = (uint32_t)tick;
    return c;
}

/* The node others knock on: a 'box'; on "check N NODE" it checks that the box
 * got exactly N messages (the trusted nodes' pings), that at least one
 * connection was refused, and that NODE (the untrusted one) was never listed;
 * then waits for "stop". */
static void role_gate(em_term arg)
{
    (void)arg;
    char g[512], rest[300], untrusted[256] = "";
    em_pid_t box = 0;
    CHECK_INT(0, em_spawn_link(box_server, EM_NIL, &box));
    CHECK_INT(0, em_register(em_atom("box"), box));
    em_dist_config c = config_from_test();
    if (dh_start(&c) != 0)
        return;
    if (!dh_hear_expect("check ", rest, sizeof rest, 30000))
        return;
    long long want = -1;
    if (sscanf(rest, "%lld %255s", &want, untrusted) != 2)
        CHECK_FAIL("[%s] a bad check line: \"%s\"", dh_me.name, rest);
    int64_t count = -1;
    em_term first = EM_NONE;
    em_send(box, EM_ARR(em_atom("report"), em_pid(em_self())));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[report, ~i, ~t]", &count, &first));
    if (count != want)
        CHECK_FAIL("[%s] the box got %lld messages, expected %lld (the first: %s)", dh_me.name,
                   (long long)count, (long long)want, dh_fmt(first, g, sizeof g));
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    if (st.refused == 0)
        CHECK_FAIL("[%s] em_dist_stats.refused is 0 after an untrusted node knocked", dh_me.name);
    printf("[%s] refused %llu connection(s); %u peer(s)\n", dh_me.name, (unsigned long long)st.refused,
           st.peers);
    fflush(stdout);
    em_term un = em_atom(untrusted);
    if (dh_wait_listed(un, false, true, 10) || dh_wait_listed(un, true, true, 10))
        CHECK_FAIL("[%s] the untrusted node %s is listed as connected", dh_me.name, untrusted);
    dh_tell("checked");
    dh_hear_expect("stop", NULL, 0, 30000);
}

/* A node that must be let in: it connects to the gate and pings its box. */
static void role_trusted(em_term arg)
{
    (void)arg;
    em_dist_config c = config_from_test();
    if (dh_start(&c) != 0)
        return;
    em_term gate = dh_connect_peer();
    if (gate == EM_NONE)
        return;
    int64_t n = -1;
    CHECK_INT(0, em_send_remote(em_atom("box"), gate, EM_ARR(em_atom("ping"), em_int(7), em_pid(em_self()))));
    CHECK_INT(0, em_receive_match(NULL, 5000, "[pong, ~i]", &n));
    CHECK_INT(7, n);
}

/* A node that must be kept out: its connect fails, what it sends goes nowhere,
 * and it never lists the gate. */
static void role_untrusted(em_term arg)
{
    (void)arg;
    char spec[512];
    em_dist_config c = config_from_test();
    if (dh_start(&c) != 0)
        return;
    if (!dh_hear_expect("peer ", spec, sizeof spec, 10000))
        return;
    int64_t t0 = dh_now_ms();
    int rc = em_node_connect(spec, 3000);
    printf("[%s] em_node_connect to the gate: %d (%s) after %lld ms\n", dh_me.name, rc, em_strerror(rc),
           (long long)(dh_now_ms() - t0));
    fflush(stdout);
    if (rc == 0)
        CHECK_FAIL("[%s] an untrusted node connected to the gate", dh_me.name);
    em_term gate = dh_node_atom(spec);
    em_send_remote(em_atom("box"), gate, EM_ARR(em_atom("ping"), em_int(666), em_pid(em_self())));
    if (em_receive_match(NULL, 1500, "[pong, _]") == 0)
        CHECK_FAIL("[%s] the gate's box answered an untrusted node", dh_me.name);
    if (dh_wait_listed(gate, false, true, 10))
        CHECK_FAIL("[%s] the gate is listed by em_nodes on an untrusted node", dh_me.name);
}

/* ------------------------------------------------------------ 8. cookies */

static void test_wrong_cookie_is_refused(void **state)
{
    (void)state;
    dh_child gate, evil, good;
    const char *gn = "gate_c@127.0.0.1";
    dh_spawn(&gate, gn, role_gate);
    dh_say(&gate, "cfg cookie right-cookie");
    int port = dh_port(&gate);
    dh_spawn(&evil, "wrong_c@127.0.0.1", role_untrusted);
    dh_say(&evil, "cfg cookie wrong-cookie");
    dh_port(&evil);
    dh_say(&evil, "peer %s:%d", gn, port);
    DH_ASSERT_ENDS_OK(&evil, DH_WAIT_MS);
    /* The gate still lets a node with the cookie in. */
    dh_spawn(&good, "right_c@127.0.0.1", role_trusted);
    dh_say(&good, "cfg cookie right-cookie");
    dh_port(&good);
    dh_say(&good, "peer %s:%d", gn, port);
    DH_ASSERT_ENDS_OK(&good, DH_WAIT_MS);
    dh_say(&gate, "check 1 wrong_c@127.0.0.1");
    dh_expect(&gate, "checked", NULL, 0, 10000);
    dh_say(&gate, "stop");
    DH_ASSERT_ENDS_OK(&gate, 10000);
}

/* ------------------------------------------------------------ 8'. keyring */

typedef struct keypair {
    char pub[41], sec[41];
} keypair;

static void write_text(const char *dir, const char *file, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A keyring directory: this node's pair, and the peers it accepts. */
static void make_keyring(char *dir, size_t cap, const keypair *self, const char *peers)
{
    snprintf(dir, cap, "/tmp/ember-dtest-keyring-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char text[128];
    snprintf(text, sizeof text, "%s\n", self->sec);
    write_text(dir, "key", text);
    snprintf(text, sizeof text, "%s\n", self->pub);
    write_text(dir, "key.pub", text);
    write_text(dir, "peers", peers);
}

/* The keyrings of the running test, removed by its teardown even when it fails. */
static char keyring_dirs[3][64];

static void remove_keyring(const char *dir)
{
    static const char *const files[] = {"key", "key.pub", "peers"};
    char path[512];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_keyring(void **state)
{
    (void)state;
    assert_true(zmq_load());
    keypair k1, k2, k3;
    assert_int_equal(0, Z.curve_keypair(k1.pub, k1.sec));
    assert_int_equal(0, Z.curve_keypair(k2.pub, k2.sec));
    assert_int_equal(0, Z.curve_keypair(k3.pub, k3.sec));
    const char *n1 = "kr1@127.0.0.1", *n2 = "kr2@127.0.0.1", *n3 = "kr3@127.0.0.1";
    char *d1 = keyring_dirs[0], *d2 = keyring_dirs[1], *d3 = keyring_dirs[2], peers[512];
    /* 1 and 2 list each other; 3 knows 2's key, but 2 does not list 3. */
    snprintf(peers, sizeof peers, "# the gate\n%s %s\n", k2.pub, n2);
    make_keyring(d1, sizeof keyring_dirs[0], &k1, peers);
    snprintf(peers, sizeof peers, "%s %s\n", k1.pub, n1);
    make_keyring(d2, sizeof keyring_dirs[1], &k2, peers);
    snprintf(peers, sizeof peers, "%s %s\n", k2.pub, n2);
    make_keyring(d3, sizeof keyring_dirs[2], &k3, peers);

    dh_child gate, one, three;
    dh_spawn(&gate, n2, role_gate);
    dh_say(&gate, "cfg keyring %s", d2);
    int port = dh_port(&gate);
    dh_spawn(&one, n1, role_trusted);
    dh_say(&one, "cfg keyring %s", d1);
    dh_port(&one);
    dh_say(&one, "peer %s:%d", n2, port);
    DH_ASSERT_ENDS_OK(&one, DH_WAIT_MS);
    dh_spawn(&three, n3, role_untrusted);
    dh_say(&three, "cfg keyring %s", d3);
    dh_port(&three);
    dh_say(&three, "peer %s:%d", n2, port);
    DH_ASSERT_ENDS_OK(&three, DH_WAIT_MS);
    dh_say(&gate, "check 1 %s", n3);
    dh_expect(&gate, "checked", NULL, 0, 10000);
    dh_say(&gate, "stop");
    DH_ASSERT_ENDS_OK(&gate, 10000);
}

/* The nodes' teardown, then the keyrings go. */
static int keyring_teardown(void **state)
{
    dh_teardown(state);
    for (int i = 0; i < 3; i++)
        if (keyring_dirs[i][0]) {
            remove_keyring(keyring_dirs[i]);
            keyring_dirs[i][0] = 0;
        }
    return 0;
}

/* ------------------------------------------------------- 10. hostile frames */

#define EVIL_NAME "evil@127.0.0.1"
#define EVIL_CREATION 4242u

/* The node under attack: a 'target' (a box) that nothing but the attacker's
 * final, well-formed message may reach, and an 'echo' (also a box) for the
 * legitimate node. It tells the test the target's pid and, on "check N",
 * checks that N or more bad frames were counted and the target got exactly
 * the one message. */
static void role_attacked(em_term arg)
{
    (void)arg;
    char g[512], rest[64];
    em_pid_t target = 0, echo = 0;
    CHECK_INT(0, em_spawn_link(box_server, EM_NIL, &target));
    CHECK_INT(0, em_register(em_atom("target"), target));
    CHECK_INT(0, em_spawn_link(box_server, EM_NIL, &echo));
    CHECK_INT(0, em_register(em_atom("echo"), echo));
    em_dist_config c = dh_config();
    c.tick_ms = 10000;   /* the attacker sends no ticks: keep it up while it talks */
    if (dh_start(&c) != 0)
        return;
    dh_tell("target %llu %llu", (unsigned long long)target, (unsigned long long)em_self());
    if (!dh_hear_expect("check ", rest, sizeof rest, 30000))
        return;
    long long want_bad = atoll(rest);
    em_dist_stats st;
    CHECK_INT(0, em_dist_stats_get(&st));
    printf("[%s] bad_frames %llu (at least %lld expected), frames_in %llu, msgs_in %llu\n", dh_me.name,
           (unsigned long long)st.bad_frames, want_bad, (unsigned long long)st.frames_in,
           (unsigned long long)st.msgs_in);
    fflush(stdout);
    if ((long long)st.bad_frames < want_bad)
        CHECK_FAIL("[%s] bad_frames: expected at least %lld, got %llu", dh_me.name, want_bad,
                   (unsigned long long)st.bad_frames);
    int64_t count = -1;
    em_term first = EM_NONE;
    /* The well-formed last frame came after all the others: once the target
     * has it, every hostile frame has been handled. */
    for (int64_t deadline = dh_now_ms() + 3000;;) {
        em_send(target, EM_ARR(em_atom("report"), em_pid(em_self())));
        CHECK_INT(0, em_receive_match(NULL, 5000, "[report, ~i, ~t]", &count, &first));
        if (count > 0 || dh_now_ms() > deadline)
            break;
        em_sleep(20);
    }
    const char *f = "";
    size_t fl = 0;
    em_get_str(first, &f, &fl);
    if (count != 1 || fl != strlen("[sentinel]") || memcmp(f, "[sentinel]", fl) != 0)
        CHECK_FAIL("[%s] the target got %lld message(s), the first %s; expected only [sentinel]", dh_me.name,
                   (long long)count, dh_fmt(first, g, sizeof g));
    em_term extra;
    if (!dh_quiet(50, &extra))
        CHECK_FAIL("[%s] the root got a message: %s", dh_me.name, dh_fmt(extra, g, sizeof g));
    dh_tell("checked");
    dh_hear_expect("stop", NULL, 0, 30000);
}

/* The legitimate node: round trips with the attacked node's echo. */
static void role_legit(em_term arg)
{
    (void)arg;
    if (dh_start_default() != 0)
        return;
    em_term a = dh_connect_peer();
    if (a == EM_NONE)
        return;
    for (int i = 0; i < 20; i++) {
        int64_t n = -1;
        em_send_remote(em_atom("echo"), a, EM_ARR(em_atom("ping"), em_int(i), em_pid(em_self())));
        if (em_receive_match(NULL, 5000, "[pong, ~i]", &n) != 0 || n != i) {
            CHECK_FAIL("ping %d to the attacked node: no pong", i);
            break;
        }
    }
}

/* -- the attacker: a plain child, no runtime -- */

/* A line from the test, waiting up to 10 s (the child has no runtime: poll). */
static bool plain_hear(char *out, size_t cap)
{
    int64_t deadline = dh_now_ms() + 10000;
    while (dh_now_ms() < deadline) {
        char *nl = memchr(dh_me.buf, '\n', dh_me.len);
        if (nl) {
            size_t l = (size_t)(nl - dh_me.buf);
            snprintf(out, cap, "%.*s", (int)l, dh_me.buf);
            memmove(dh_me.buf, nl + 1, dh_me.len - l - 1);
            dh_me.len -= l + 1;
            return true;
        }
        struct pollfd p = {dh_me.in_fd, POLLIN, 0};
        poll(&p, 1, 100);
        ssize_t n = read(dh_me.in_fd, dh_me.buf + dh_me.len, sizeof dh_me.buf - dh_me.len);
        if (n > 0)
            dh_me.len += (size_t)n;
        else if (n == 0)
            return false;
    }
    return false;
}

typedef struct attack {
    void *sock;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int counted;                 /* frames the node must count as bad */
    int sent;
} attack;

static void frame_begin(attack *at)
{
    msgpack_sbuffer_clear(&at->sb);
}

/* The frame header, as a node writes it: [0, sender, receiver] in twelve
 * bytes (a fixarray of 3, fixint 0, two uint32), the form ember's reader
 * insists on. */
static void frame_header(attack *at, uint32_t sender, uint32_t receiver)
{
    unsigned char h[12] = {0x93, OP_HDR, 0xce, 0, 0, 0, 0, 0xce, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        h[3 + i] = (unsigned char)(sender >> (24 - 8 * i));
        h[8 + i] = (unsigned char)(receiver >> (24 - 8 * i));
    }
    msgpack_sbuffer_write(&at->sb, (const char *)h, sizeof h);
}

static void frame_raw(attack *at, const void *data, size_t len)
{
    msgpack_sbuffer_write(&at->sb, data, len);
}

/* Sends the frame; counted says whether the node must count it as bad. */
static void frame_send(attack *at, bool counted)
{
    if (Z.send(at->sock, at->sb.data, at->sb.size, 0) < 0)
        fprintf(stderr, "[attacker] zmq_send failed\n");
    at->sent++;
    at->counted += counted;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pack_atom(msgpack_packer *pk, const char *s)
{
    msgpack_pack_ext(pk, strlen(s), EMI_EXT_ATOM);
    msgpack_pack_ext_body(pk, s, strlen(s));
}

static void pack_hello(msgpack_packer *pk, const char *name, uint32_t creation, const char *endpoint)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, OP_HELLO);
    pack_str(pk, name);
    msgpack_pack_uint32(pk, creation);
    msgpack_pack_false(pk);
    pack_str(pk, endpoint);
    msgpack_pack_array(pk, 0);
}

static int attacker_main(void)
{
    char line[256];
    if (!zmq_load()) {
        fprintf(stderr, "[attacker] libzmq's functions are not reachable with dlsym\n");
        return 2;
    }
    if (!plain_hear(line, sizeof line) || strncmp(line, "attack ", 7) != 0)
        return 3;
    unsigned long long target = 0, root = 0;
    int port = 0;
    if (sscanf(line + 7, "%d %llu %llu", &port, &target, &root) != 3)
        return 4;
    /* The cookie's keys, from the node's own code. */
    em_dist_config cfg;
    em_dist_config_init(&cfg);
    cfg.cookie = DH_COOKIE;
    cfg.log_level = 0;
    if (emi_trust_init(&cfg) != 0) {
        fprintf(stderr, "[attacker] emi_trust_init failed\n");
        return 5;
    }
    void *ctx = Z.ctx_new();
    attack at = {0};
    at.sock = Z.socket(ctx, ZMQ_DEALER);
    int linger = 3000, rc = 0;
    rc |= Z.setsockopt(at.sock, ZMQ_CURVE_SERVERKEY, emi_trust_public(), 32);
    rc |= Z.setsockopt(at.sock, ZMQ_CURVE_PUBLICKEY, emi_trust_public(), 32);
    rc |= Z.setsockopt(at.sock, ZMQ_CURVE_SECRETKEY, emi_trust_secret(), 32);
    rc |= Z.setsockopt(at.sock, ZMQ_ROUTING_ID, EVIL_NAME, strlen(EVIL_NAME));
    rc |= Z.setsockopt(at.sock, ZMQ_LINGER, &linger, sizeof linger);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    rc |= Z.connect(at.sock, ep);
    if (rc) {
        fprintf(stderr, "[attacker] cannot set up the socket\n");
        return 6;
    }
    /* Where the node connects back to us: a ROUTER with the cookie's keys,
     * which nothing reads (a node needs an address for every peer). */
    void *rback = Z.socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    char back[256];
    size_t bl = sizeof back;
    rc |= Z.setsockopt(rback, ZMQ_CURVE_SERVER, &one, sizeof one);
    rc |= Z.setsockopt(rback, ZMQ_CURVE_SECRETKEY, emi_trust_secret(), 32);
    rc |= Z.setsockopt(rback, ZMQ_LINGER, &zero, sizeof zero);
    rc |= Z.bind(rback, "tcp://127.0.0.1:0");
    rc |= Z.getsockopt(rback, ZMQ_LAST_ENDPOINT, back, &bl);
    if (rc) {
        fprintf(stderr, "[attacker] cannot listen for the node's connection back\n");
        return 7;
    }
    msgpack_sbuffer_init(&at.sb);
    msgpack_packer_init(&at.pk, &at.sb, msgpack_sbuffer_write);
    msgpack_packer *pk = &at.pk;
    const uint64_t from = (1ull << 28) | 5;   /* some pid of the attacker's "node" */
    static const unsigned char garbage[] = {0xc1, 0xc1, 0xff, 0x00, 'g', 'a', 'r', 'b', 'a', 'g', 'e'};
    static const unsigned char huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};   /* array32, 4 G items */
    static const unsigned char huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};     /* map32, 4 G pairs */
    static const unsigned char huge_bin[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3};   /* bin32, 4 GiB */
    unsigned char deep[1000];
    memset(deep, 0x91, sizeof deep);   /* [[[[...]]]] a thousand deep */

    /* ---- as a stranger (no HELLO yet) ---- */
    frame_begin(&at);
    frame_raw(&at, garbage, sizeof garbage);
    frame_send(&at, true);
    frame_begin(&at);
    frame_raw(&at, "\x93\x00", 2);   /* an array of 3 that stops after 1 */
    frame_send(&at, true);
    frame_begin(&at);
    frame_send(&at, true);   /* empty */
    frame_begin(&at);
    frame_header(&at, 1, 0);
    frame_raw(&at, garbage, sizeof garbage);
    frame_send(&at, false);   /* a stranger's frame without a HELLO is ignored */
    frame_begin(&at);
    frame_header(&at, 1, 0);
    msgpack_pack_array(pk, 6);   /* a HELLO with bad fields */
    msgpack_pack_uint8(pk, OP_HELLO);
    pack_str(pk, EVIL_NAME);
    pack_str(pk, "not a number");
    msgpack_pack_true(pk);
    msgpack_pack_uint8(pk, 7);
    msgpack_pack_nil(pk);
    frame_send(&at, true);
    frame_begin(&at);
    frame_header(&at, 1, 0);
    pack_hello(pk, "other@127.0.0.1", 5, "");   /* a name that is not its routing id */
    frame_send(&at, true);
    frame_begin(&at);
    frame_header(&at, 1, 0);
    msgpack_pack_array(pk, 2);   /* a HELLO too short */
    msgpack_pack_uint8(pk, OP_HELLO);
    pack_str(pk, EVIL_NAME);
    frame_send(&at, true);
    frame_begin(&at);
    frame_raw(&at, deep, sizeof deep);
    frame_send(&at, true);
    frame_begin(&at);
    frame_raw(&at, huge_array, sizeof huge_array);
    frame_send(&at, true);
    frame_begin(&at);
    frame_raw(&at, huge_map, sizeof huge_map);
    frame_send(&at, true);

    /* ---- a valid HELLO: from here on the node takes us for a peer ---- */
    frame_begin(&at);
    frame_header(&at, EVIL_CREATION, 0);
    pack_hello(pk, EVIL_NAME, EVIL_CREATION, back);
    frame_send(&at, false);

#define PEER_FRAME() (frame_begin(&at), frame_header(&at, EVIL_CREATION, 0))
    PEER_FRAME();
    frame_raw(&at, garbage, sizeof garbage);   /* [0, C, 0] then garbage */
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_uint8(pk, 5);   /* an item that is not an array */
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 0);   /* an empty item */
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 3);   /* an unknown operation */
    msgpack_pack_uint8(pk, 99);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, 2);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND of an unknown extension type */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    msgpack_pack_ext(pk, 2, 42);
    msgpack_pack_ext_body(pk, "xx", 2);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND of a pid whose payload is cut short */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    msgpack_pack_ext(pk, 3, EMI_EXT_PID);
    msgpack_pack_ext_body(pk, "\x00\x00\x01", 3);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND of an atom with a NUL byte */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    msgpack_pack_ext(pk, 3, EMI_EXT_ATOM);
    msgpack_pack_ext_body(pk, "a\0b", 3);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND of a term nested 40 deep */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    for (int i = 0; i < 40; i++)
        msgpack_pack_array(pk, 1);
    msgpack_pack_nil(pk);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND of an array that says 4 G items */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    frame_raw(&at, huge_array, sizeof huge_array);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* ... a map that says 4 G pairs */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    frame_raw(&at, huge_map, sizeof huge_map);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* ... a binary that says 4 GiB */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    frame_raw(&at, huge_bin, sizeof huge_bin);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND to a pid with node bits */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target | (3ull << 48));
    pack_atom(pk, "hi");
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* SEND from pid 0 */
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, target);
    pack_atom(pk, "hi");
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* REG_SEND to a name of 300 bytes */
    msgpack_pack_uint8(pk, OP_REG_SEND);
    msgpack_pack_uint64(pk, from);
    char longname[301];
    memset(longname, 'n', 300);
    longname[300] = 0;
    pack_str(pk, longname);
    pack_atom(pk, "hi");
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 3);   /* LINK with a string for a pid */
    msgpack_pack_uint8(pk, OP_LINK);
    pack_str(pk, "pid");
    msgpack_pack_uint64(pk, root);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* MONITOR with an id out of range */
    msgpack_pack_uint8(pk, OP_MONITOR);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, root);
    msgpack_pack_uint64(pk, UINT64_MAX);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 7);   /* SPAWN_REQ with a ref out of range */
    msgpack_pack_uint8(pk, OP_SPAWN_REQ);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, 1);
    pack_str(pk, "dt_anything");
    msgpack_pack_nil(pk);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, UINT64_MAX);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* a fragment of a message larger than any allowed */
    msgpack_pack_uint8(pk, OP_FRAG);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, UINT64_MAX / 2);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "abcd", 4);
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 4);   /* fragments that do not add up */
    msgpack_pack_uint8(pk, OP_FRAG);
    msgpack_pack_uint64(pk, from + 1);
    msgpack_pack_uint64(pk, 20000);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "abcd", 4);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_FRAG);
    msgpack_pack_uint64(pk, from + 1);
    msgpack_pack_uint64(pk, 30000);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "abcd", 4);
    frame_send(&at, true);
    PEER_FRAME();
    {   /* fragments that add up to garbage */
        static unsigned char junk[EMI_FRAG_MAX + 16];
        memset(junk, 0xc1, sizeof junk);
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint8(pk, OP_FRAG);
        msgpack_pack_uint64(pk, from + 2);
        msgpack_pack_uint64(pk, sizeof junk);
        msgpack_pack_bin(pk, sizeof junk);
        msgpack_pack_bin_body(pk, junk, sizeof junk);
    }
    frame_send(&at, true);
    PEER_FRAME();
    msgpack_pack_array(pk, 2);   /* a HELLO again, with bad fields */
    msgpack_pack_uint8(pk, OP_HELLO);
    msgpack_pack_nil(pk);
    frame_send(&at, true);

    /* Well-formed sends the node must drop quietly: meant for another life of
     * it, or from another life of ours. */
    frame_begin(&at);
    frame_header(&at, EVIL_CREATION, 12345);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    msgpack_pack_array(pk, 1);
    pack_atom(pk, "for_another_life_of_yours");
    frame_send(&at, false);
    frame_begin(&at);
    frame_header(&at, EVIL_CREATION + 1, 0);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_SEND);
    msgpack_pack_uint64(pk, from);
    msgpack_pack_uint64(pk, target);
    msgpack_pack_array(pk, 1);
    pack_atom(pk, "from_another_life_of_mine");
    frame_send(&at, false);

    /* The last one is well-formed: it must be all the target ever gets. */
    PEER_FRAME();
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_REG_SEND);
    msgpack_pack_uint64(pk, from);
    pack_str(pk, "target");
    msgpack_pack_array(pk, 1);
    pack_atom(pk, "sentinel");
    frame_send(&at, false);
#undef PEER_FRAME

    printf("[attacker] sent %d frames, %d of them malformed\n", at.sent, at.counted);
    fflush(stdout);
    dh_tell("counted %d", at.counted);
    Z.close(at.sock);   /* lingers until the frames are out */
    Z.close(rback);
    Z.ctx_term(ctx);
    msgpack_sbuffer_destroy(&at.sb);
    emi_trust_fini();
    return 0;
}

static void test_hostile_frames(void **state)
{
    (void)state;
    dh_child a, evil, legit;
    const char *an = "attacked@127.0.0.1";
    dh_spawn(&a, an, role_attacked);
    int port = dh_port(&a);
    char rest[128];
    dh_expect(&a, "target ", rest, sizeof rest, 10000);
    dh_spawn_plain(&evil, EVIL_NAME, attacker_main);
    dh_say(&evil, "attack %d %s", port, rest);
    dh_expect(&evil, "counted ", rest, sizeof rest, 10000);
    int counted = atoi(rest);
    DH_ASSERT_ENDS_OK(&evil, DH_WAIT_MS);
    /* Still serving a legitimate node. */
    dh_spawn(&legit, "legit@127.0.0.1", role_legit);
    dh_port(&legit);
    dh_say(&legit, "peer %s:%d", an, port);
    DH_ASSERT_ENDS_OK(&legit, DH_WAIT_MS);
    dh_say(&a, "check %d", counted);
    dh_expect(&a, "checked", NULL, 0, 10000);
    dh_say(&a, "stop");
    DH_ASSERT_ENDS_OK(&a, 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DH_TEST(test_wrong_cookie_is_refused),
        cmocka_unit_test_teardown(test_keyring, keyring_teardown),
        DH_TEST(test_hostile_frames),
    };
    return DH_RUN(tests);
}
