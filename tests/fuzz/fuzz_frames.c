/*
 * fuzz_frames.c - libFuzzer target for the distribution layer's receive path:
 * each input becomes a frame that an authenticated peer sends to a live node.
 *
 * The node ("fz@127.0.0.1") runs in this OS process, on a thread of its own
 * (em_run blocks its thread), with one scheduler, no preemption (see
 * node_thread), a fixed creation and the cookie "fuzz". The fuzzer's thread plays the peer "ev@127.0.0.1": it derives
 * the cookie's CURVE keys as dist/trust.c does, connects two ZeroMQ DEALERs to
 * the node (the main lane and the bulk lane, told apart by routing id) and
 * listens on a ROUTER of its own, so the node's connection back to it succeeds
 * and what the node sends (replies, echoes, ticks) is drained. Nothing of dist/
 * is called directly: the frames travel the node's real path (ZAP, the reader's
 * token, QSBR, emi_dist_handle_frame, handle_items, every op, reassembly, the
 * codec, delivery into processes), so what the fuzzer finds is what a peer can
 * do.
 *
 * An input is one mode byte, then bytes:
 *   mode % 4 == 0, 1  main lane, after a valid header [0, ev's creation, ours]
 *   mode % 4 == 2     main lane, as is (the input brings its own header)
 *   mode % 4 == 3     bulk lane, after a valid header
 * Most inputs thus reach the items; raw ones reach the header checks and the
 * HELLO that may open a frame.
 *
 * After each input the harness sends a frame that restores the peer's state:
 * [header][HELLO of ev, its creation, its endpoint][ACK of the node's bulk
 * frames it has drained], so an input that said BYE, HELLOed with another
 * creation or upset the connection leaves the next input a connected peer.
 * The node counts each frame in frames_in before it handles it, and handles
 * frames one at a time, so once the counter has grown by every frame sent for
 * an input (a bulk input is followed by a tick on its own lane, which shares no
 * order with the main lane), the input has been handled in full: inputs do not
 * overlap. Every RESET_PEER_EVERY inputs a BYE goes first, which drops the
 * links, monitors and partial reassemblies that inputs piled up (they fire with
 * noconnection), and a new connection checks that the node still admits peers
 * (probe_admission); every RESTART_NODE_EVERY inputs the node starts afresh,
 * which bounds the node table and processes' relations.
 *
 * Nothing stops an input from naming a ZeroMQ endpoint, and a HELLO's endpoint
 * (and its list of other nodes) is where the node connects. So that the fuzzer
 * never makes the node dial out (or ask DNS), the endpoints of a HELLO that
 * opens a main-lane input are overwritten with 'x's, which zmq_connect refuses
 * at once, unless they name the harness's own ROUTER.
 *
 * Inside the node, besides dist's own net_kernel and ember_ctl (which inputs
 * reach too), processes give the ops something to act on:
 *   fz_keeper  the root; traps exits, starts and restarts the others (each
 *              linked to it), notes the death of net_kernel (the node is then
 *              started afresh at the next reset), and beats a heartbeat the
 *              fuzzer's thread watches.
 *   sink       traps exits; monitors nodes; drains its mailbox for ever.
 *   echo       traps exits; obeys [1, Pid, Msg] (send Msg to Pid), [2, Pid]
 *              link, [3, Pid] unlink, [4, Pid] monitor, [5, Pid, Reason]
 *              exit/2, [6, Pid] monitor then demonitor, [7, Pid, A, B] send
 *              [A, B] with em_send_array, [8, Name, Msg] send Msg to Name on
 *              the peer: the node's sending side, on terms the fuzzer made.
 *   plain      does not trap exits: an EXIT or EXIT2 ends it; the keeper
 *              starts it again.
 * and "fz_worker" is a function peers may spawn (it lives 5 ms). sink and echo
 * end the runtime when the keeper dies (an exit signal 'kill' from a peer can
 * do that), and a new one starts: pids are handed out in the same order in
 * each, so the seeds' pids stay right (they also depend on the processes
 * em_dist_start spawns: regenerate the seeds when that changes). If the
 * keeper, sink and echo are all gone, the fuzzer's thread notices the
 * heartbeat stop and kills the rest over the wire, as a peer may.
 *
 * Seeds: tests/fuzz/corpus_frames/, written by this program when the
 * environment has EMBER_FUZZ_FRAMES_SEEDS=dir (it writes them and exits);
 * run.sh only reads them. EMBER_FUZZ_FRAMES_LOG=N sets the node's log level
 * (default 0, quiet). EMBER_FUZZ_FRAMES_PROBE=0 leaves out the check that
 * the node still admits new connections (probe_admission), to fuzz on past a
 * node whose dist thread has ended.
 *
 * Leaks: libFuzzer's check after an input cannot work here (run.sh turns it
 * off with -detect_leaks=0): it would scan a node in mid-flight, whose process
 * table is mapped outside the heap and whose mailbox heads carry a count in
 * their top bits, so live memory would read as lost. Instead, when the fuzzer
 * ends (exit), the node is stopped and its runtime returns all it took, so
 * LeakSanitizer's check at exit reports only what is really lost.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <msgpack.h>

#include "codec.h"
#include "dist_int.h"
#include "ember.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* AddressSanitizer keeps SIGSEGV and SIGBUS: the runtime's fault handler would
 * take a fault in code of this program for a fault of the process running it
 * (runtime/fault/fault.c), and here that code includes the sanitizers'
 * interceptors that libember calls, so a wild pointer in dist/ could end a
 * process quietly instead of being reported. The harness's processes never
 * fault on purpose. ASAN_OPTIONS still overrides this. */
const char *__asan_default_options(void) { return "allow_user_segv_handler=0"; }

#define COOKIE "fuzz"
#define NODE_NAME "fz@127.0.0.1"
#define NODE_CREATION 0x0F2A0001u
#define PEER_NAME "ev@127.0.0.1"
#define PEER_CREATION 0x0E7A0001u
/* Pids of the peer's processes that the seeds use as `from` (node bits 0). */
#define FROM_PID 7u
#define FROM_PID2 9u

#define RESET_PEER_EVERY 1000
#define RESTART_NODE_EVERY 100000
/* How long the harness waits for the node before it calls the node stuck. */
#define WAIT_MS 10000
#define HEARTBEAT_STALE_MS 3000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

/* A failure of the harness or a node that stopped answering: abort, so that
 * libFuzzer keeps the input and says so. */
static _Noreturn void die(const char *what)
{
    fprintf(stderr, "fuzz_frames: %s\n", what);
    abort();
}

/* ============================================================ the node */

enum { KID_SINK, KID_ECHO, KID_PLAIN, NKIDS };
static const char *const kid_names[NKIDS] = {"sink", "echo", "plain"};

/* What the node's thread and the fuzzer's thread share. `lock` guards the
 * plain fields; the atomics are read without it. */
static struct {
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int gen;                  /* counts node starts; the fuzzer reconnects on a change */
    bool ready;               /* a node of generation gen is up */
    bool failed;              /* it could not start */
    bool done;                /* the node's thread has ended */
    int port;
    _Atomic em_pid_t keeper, kernel, ctl;   /* ctl: ember_ctl, which dist starts */
    _Atomic em_pid_t kids[NKIDS];
    _Atomic(const char *) fatal;  /* a harness failure inside the node (see die_in_node) */
    atomic_int stopping;      /* the program ends: stop for good */
    atomic_int restart;       /* end this runtime; the thread starts another */
    atomic_int kernel_dead;   /* a peer killed net_kernel: restart at the next reset */
    atomic_int_fast64_t heartbeat_ms;
    int log_level;
    bool no_probe;            /* EMBER_FUZZ_FRAMES_PROBE=0: no probe_admission */
    struct sigaction fuzzer_abrt; /* libFuzzer's SIGABRT handler (see keeper_main) */
} N = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* Spawnable by peers: lives a moment, so that spawns do not pile up. */
static void fz_worker(em_term arg)
{
    (void)arg;
    em_receive(NULL, 5);
}

/* Ends this runtime; the node's thread then starts the next one, or stops.
 * The node is stopped first because em_halt alone leaves it to
 * emi_dist_shutdown, which packs a BYE for each peer on this scheduler's
 * thread and frees the peers without emptying the thread's list of peers to
 * flush: the next runtime on the same thread then flushes freed peers (a
 * use-after-free this target found; em_dist_stop flushes the list). */
static void end_runtime(void)
{
    em_dist_stop();
    em_halt(0);
}

/* sink and echo: the keeper's death ends this runtime (the node's thread starts
 * a new one); anything else is drained. */
static bool keeper_died(em_term m)
{
    em_pid_t from;
    return em_match(m, "['EXIT', ~p, _]", &from) && from == atomic_load(&N.keeper);
}

static void sink_main(em_term arg)
{
    (void)arg;
    em_trap_exit(true);
    em_monitor_nodes(true);   /* nodeup and nodedown, as peers come and go */
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m;
        if (em_receive(&m, EM_INFINITY) == 0 && keeper_died(m))
            end_runtime();
        em_heap_release(mk);
    }
}

static void echo_main(em_term arg)
{
    (void)arg;
    em_trap_exit(true);
    for (;;) {
        em_mark mk = em_heap_mark();
        em_term m, t, name;
        em_pid_t pid;
        if (em_receive(&m, EM_INFINITY) != 0) {
            em_heap_release(mk);
            continue;
        }
        if (keeper_died(m))
            end_runtime();
        /* Each call's result is the node's business: a refusal is fine. */
        if (em_match(m, "[1, ~p, ~t]", &pid, &t)) {
            em_send(pid, t);
        } else if (em_match(m, "[2, ~p]", &pid)) {
            em_link(pid);
        } else if (em_match(m, "[3, ~p]", &pid)) {
            em_unlink(pid);
        } else if (em_match(m, "[4, ~p]", &pid)) {
            em_monitor(pid, NULL);
        } else if (em_match(m, "[5, ~p, ~t]", &pid, &t)) {
            if (pid != em_self())   /* echo stays: exits from peers are the point */
                em_exit_pid(pid, t);
        } else if (em_match(m, "[6, ~p]", &pid)) {
            em_term ref;
            if (em_monitor(pid, &ref) == 0)
                em_demonitor(ref, EM_DEMONITOR_FLUSH);
        } else if (em_match(m, "[7, ~p, ~t, _]", &pid, &t)) {
            em_send_array(pid, 2, (em_term[]){t, em_at(m, 3)});
        } else if (em_match(m, "[8, ~a, ~t]", &name, &t)) {
            /* Only to the peer itself: a node named by the input could be any
             * address (see defuse_hello). */
            em_send_remote(name, em_atom(PEER_NAME), t);
        }
        em_heap_release(mk);
    }
}

static void plain_main(em_term arg)
{
    (void)arg;
    for (;;) {
        em_mark mk = em_heap_mark();
        em_receive(NULL, EM_INFINITY);
        em_heap_release(mk);
    }
}

static const em_proc_fn kid_fns[NKIDS] = {sink_main, echo_main, plain_main};

/* Inside a process, abort() is a fault of that process, which the runtime
 * contains (runtime/fault/fault.c): the fuzzer's thread reports it instead. */
static void die_in_node(const char *what)
{
    atomic_store(&N.fatal, what);
    em_exit(em_atom("harness_failure"));
}

static void start_kid(int k)
{
    em_pid_t pid = 0;
    if (em_spawn_link_named(kid_fns[k], kid_names[k], EM_NIL, &pid) != 0)
        die_in_node("the keeper cannot start a process");
    em_register(em_atom(kid_names[k]), pid);   /* the dead one's name went with it */
    atomic_store(&N.kids[k], pid);
}

static void keeper_main(em_term arg)
{
    (void)arg;
    /* The runtime's fault handler took SIGABRT (a process that aborts dies
     * alone), and passes an abort elsewhere to the handler it found by
     * returning, after which glibc's abort() raises again with the default
     * action: libFuzzer's handler would never run, and an abort in the dist
     * thread, in libzmq or in this harness would leave no input behind. The
     * harness's processes do not abort, so aborts all go to libFuzzer. */
    sigaction(SIGABRT, &N.fuzzer_abrt, NULL);
    em_trap_exit(true);
    em_dist_config c;
    em_dist_config_init(&c);
    c.name = NODE_NAME;
    c.listen = "127.0.0.1:0";
    c.cookie = COOKIE;
    c.creation = NODE_CREATION;
    c.log_level = N.log_level;
    if (em_dist_start(&c) != 0) {
        pthread_mutex_lock(&N.lock);
        N.failed = true;
        pthread_cond_broadcast(&N.cond);
        pthread_mutex_unlock(&N.lock);
        return;
    }
    em_register_fn("fz_worker", fz_worker);
    em_register(em_atom("fz_keeper"), em_self());
    em_pid_t kernel = em_whereis(em_atom("net_kernel"));
    em_monitor(kernel, NULL);
    atomic_store(&N.keeper, em_self());
    atomic_store(&N.kernel, kernel);
    atomic_store(&N.ctl, em_whereis(em_atom("ember_ctl")));
    atomic_store(&N.kernel_dead, 0);
    for (int k = 0; k < NKIDS; k++)
        start_kid(k);
    atomic_store(&N.heartbeat_ms, now_ms());
    pthread_mutex_lock(&N.lock);
    N.port = em_node_port();
    N.gen++;
    N.ready = true;
    pthread_cond_broadcast(&N.cond);
    pthread_mutex_unlock(&N.lock);

    for (;;) {
        atomic_store(&N.heartbeat_ms, now_ms());
        if (atomic_load(&N.stopping) || atomic_exchange(&N.restart, 0))
            end_runtime();
        em_mark mk = em_heap_mark();
        em_term m;
        em_pid_t from;
        if (em_receive(&m, 20) == 0) {
            if (em_match(m, "['EXIT', ~p, _]", &from)) {
                for (int k = 0; k < NKIDS; k++)
                    if (from == atomic_load(&N.kids[k]))
                        start_kid(k);
            } else if (em_match(m, "['DOWN', _, _, ~p, _]", &from) && from == kernel) {
                /* A peer killed net_kernel (it does not trap exits, so any
                 * reason does it): this node no longer spawns for peers. The
                 * fuzzer's thread starts a new one at its next reset, not at
                 * once: inputs that do this are common, and a restart costs
                 * a few hundred inputs' time. */
                atomic_store(&N.kernel_dead, 1);
            }
        }
        em_heap_release(mk);
    }
}

static void *node_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&N.stopping)) {
        em_config c;
        em_config_init(&c);
        /* One scheduler: fewer threads to interleave, so inputs replay alike. */
        c.schedulers = 1;
        c.max_processes = 1 << 16;
        /* No preemption: the harness's processes never spin, and in this build
         * it is not safe. A process is interrupted only in the program's own
         * code (runtime/fault/code.c), and here the program also holds the
         * sanitizers' interceptors and the coverage hooks that libember calls
         * from inside its critical sections: echo was seen preempted in
         * __sanitizer_cov_trace_const_cmp8 under emi_pack_commit's peer lock,
         * and the scheduler then waited on that lock for good. */
        c.time_slice_us = 0;
        int rc = em_run(&c, keeper_main, EM_NIL);
        pthread_mutex_lock(&N.lock);
        N.ready = false;
        bool failed = N.failed || rc < 0;
        pthread_cond_broadcast(&N.cond);
        pthread_mutex_unlock(&N.lock);
        if (failed) {
            fprintf(stderr, "fuzz_frames: the node did not start (em_run: %d)\n", rc);
            break;
        }
    }
    pthread_mutex_lock(&N.lock);
    N.done = true;
    N.failed = true;   /* no node any more, whoever waits */
    pthread_cond_broadcast(&N.cond);
    pthread_mutex_unlock(&N.lock);
    return NULL;
}

/* ============================================================ the peer */

static struct {
    void *ctx;
    void *main, *bulk;        /* our DEALERs to the node's ROUTER */
    void *router;             /* where the node connects back */
    char endpoint[64];        /* the ROUTER's, as our HELLO gives it */
    uint8_t pk[32], sk[32];
    int gen;                  /* the node generation the DEALERs reach */
    int port;                 /* that node's */
    em_pid_t kernel, keeper, ctl;
    uint64_t sent;            /* frames the node has been sent, in frames_in's terms */
    uint64_t inputs;
    unsigned bulk_unacked;    /* the node's bulk-lane frames we drained */
} P;

static uint64_t frames_in(void)
{
    /* Relaxed: the node's counter; only its growth matters. */
    return atomic_load_explicit(&emi_dist_g.frames_in, memory_order_relaxed);
}

/* The cookie's key pair, as dist/trust.c derives it (docs/distribution.md,
 * "Trust"): BLAKE2b of the cookie keyed with the context string, as the seed
 * of a crypto_box key pair. Holding it is what makes us a trusted peer. */
static void cookie_keys(void)
{
    static const char ctx[] = "ember cookie key v1";
    uint8_t seed[crypto_box_SEEDBYTES];
    if (sodium_init() < 0)
        die("libsodium does not start");
    crypto_generichash(seed, sizeof seed, (const uint8_t *)COOKIE, strlen(COOKIE),
                       (const uint8_t *)ctx, sizeof ctx - 1);
    crypto_box_seed_keypair(P.pk, P.sk, seed);
}

static void *dealer(const char *rid, size_t rid_len, int port)
{
    void *s = zmq_socket(P.ctx, ZMQ_DEALER);
    int zero = 0, hwm = 1000, tmo = WAIT_MS;
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    if (!s || zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, P.pk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, P.pk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, P.sk, 32) != 0 ||
        zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, rid_len) != 0 ||
        zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDTIMEO, &tmo, sizeof tmo) != 0 || zmq_connect(s, ep) != 0)
        die("cannot open a DEALER to the node");
    return s;
}

static void peer_open(void)
{
    cookie_keys();
    P.ctx = zmq_ctx_new();
    P.router = P.ctx ? zmq_socket(P.ctx, ZMQ_ROUTER) : NULL;
    int one = 1, zero = 0;
    if (!P.router || zmq_setsockopt(P.router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(P.router, ZMQ_CURVE_SECRETKEY, P.sk, 32) != 0 ||
        zmq_setsockopt(P.router, ZMQ_ROUTER_HANDOVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(P.router, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(P.router, "tcp://127.0.0.1:0") != 0)
        die("cannot open the peer's ROUTER");
    size_t len = sizeof P.endpoint;
    if (zmq_getsockopt(P.router, ZMQ_LAST_ENDPOINT, P.endpoint, &len) != 0)
        die("the peer's ROUTER has no endpoint");
}

/* ------------------------------------------------------ building frames */

/* The header in the twelve bytes the node reads it from: fixarray, fixint 0,
 * then each creation as a uint32 whatever its value. */
static void pk_header(msgpack_packer *pk, uint32_t ours, uint32_t theirs)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, OP_HDR);
    msgpack_pack_fix_uint32(pk, ours);
    msgpack_pack_fix_uint32(pk, theirs);
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void pk_hello(msgpack_packer *pk, uint32_t creation, const char *endpoint)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, OP_HELLO);
    pk_str(pk, PEER_NAME);
    msgpack_pack_uint32(pk, creation);
    msgpack_pack_false(pk);
    pk_str(pk, endpoint);
    msgpack_pack_array(pk, 0);
}

static void send_frame(void *sock, const void *data, size_t len)
{
    if (zmq_send(sock, data, len, 0) != (int)len)
        die("the node does not take frames");
    P.sent++;
}

/* Drain what the node sent us; its bulk-lane frames are owed an ACK. */
static void drain(void)
{
    for (;;) {
        zmq_msg_t id, m;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, P.router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        size_t il = zmq_msg_size(&id);
        bool bulk = il > 2 && memcmp((char *)zmq_msg_data(&id) + il - 2, EMI_BULK_SUFFIX, 2) == 0;
        int more = zmq_msg_more(&id);
        zmq_msg_close(&id);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, P.router, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (bulk)
            P.bulk_unacked++;
    }
}

/* The frame that restores the peer after an input: a HELLO (first, as the
 * node wants it), then an ACK for the bulk frames we drained. */
static void send_hello(void)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pk_header(&pk, PEER_CREATION, NODE_CREATION);
    pk_hello(&pk, PEER_CREATION, P.endpoint);
    if (P.bulk_unacked) {
        msgpack_pack_array(&pk, 2);
        msgpack_pack_uint8(&pk, OP_ACK);
        msgpack_pack_uint32(&pk, P.bulk_unacked);
        P.bulk_unacked = 0;
    }
    send_frame(P.main, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void send_items(void *sock, void (*items)(msgpack_packer *pk))
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pk_header(&pk, PEER_CREATION, NODE_CREATION);
    items(&pk);
    send_frame(sock, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void item_tick(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint8(pk, OP_TICK);
}

static void item_bye(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint8(pk, OP_BYE);
}

static void pk_atom(msgpack_packer *pk, const char *name)
{
    msgpack_pack_ext(pk, strlen(name), EMI_EXT_ATOM);
    msgpack_pack_ext_body(pk, name, strlen(name));
}

/* Exit signals 'kill' from one of our pids to every process the harness knows:
 * what a peer may do, and the way out when the keeper is gone. */
static void item_kill_all(msgpack_packer *pk)
{
    em_pid_t to[3 + NKIDS] = {P.kernel, P.keeper, P.ctl};
    for (int k = 0; k < NKIDS; k++)
        to[3 + k] = atomic_load(&N.kids[k]);
    for (int i = 0; i < 3 + NKIDS; i++) {
        if (!to[i])
            continue;
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint8(pk, OP_EXIT2);
        msgpack_pack_uint64(pk, FROM_PID);
        msgpack_pack_uint64(pk, to[i]);
        pk_atom(pk, "kill");
    }
}

/* ------------------------------------------------- the node's lifecycle */

/* Until the node's generation moves past `gen`; false at the deadline. */
static bool wait_gen_past(int gen, int64_t ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&N.lock);
    int rc = 0;
    while (!(N.ready && N.gen != gen) && !N.failed && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&N.cond, &N.lock, &dl);
    bool ok = N.ready && N.gen != gen;
    pthread_mutex_unlock(&N.lock);
    return ok;
}

static bool node_moved(void)
{
    pthread_mutex_lock(&N.lock);
    bool moved = !N.ready || N.gen != P.gen;
    pthread_mutex_unlock(&N.lock);
    return moved;
}

/* Until the node has taken `target` frames in all; false if the node went
 * away meanwhile (a new one starts). A node that stops reading is a bug:
 * `stuck` says which. */
static bool wait_frames(uint64_t target, const char *stuck)
{
    int64_t deadline = now_ms() + WAIT_MS;
    for (unsigned i = 0;; i++) {
        if (frames_in() >= target)
            return true;
        if ((i & 63) == 63 && node_moved())
            return false;
        if (i > 64 && now_ms() > deadline)
            die(stuck);
        if (i < 16)
            sched_yield();
        else
            nap_us(20);
    }
}

/* Connect to the node of the current generation (waiting for one if a new
 * one is starting) and say HELLO. */
static void peer_connect(void)
{
    if (!wait_gen_past(P.gen, 30000))
        die("the node did not come (back) up");
    pthread_mutex_lock(&N.lock);
    P.gen = N.gen;
    P.port = N.port;
    pthread_mutex_unlock(&N.lock);
    P.kernel = atomic_load(&N.kernel);
    P.keeper = atomic_load(&N.keeper);
    P.ctl = atomic_load(&N.ctl);
    if (P.main)
        zmq_close(P.main);
    if (P.bulk)
        zmq_close(P.bulk);
    /* The bulk lane's routing id: the name, then the two bytes of the suffix. */
    char bid[sizeof PEER_NAME + 2];
    size_t nl = strlen(PEER_NAME);
    memcpy(bid, PEER_NAME, nl);
    memcpy(bid + nl, EMI_BULK_SUFFIX, 2);
    P.main = dealer(PEER_NAME, nl, P.port);
    P.bulk = dealer(bid, nl + 2, P.port);
    drain();
    P.bulk_unacked = 0;   /* that was the old node's */
    P.sent = frames_in();
    send_hello();
    if (!wait_frames(P.sent, "the node does not admit the peer (no ZAP answer, or its frames are lost)"))
        peer_connect();
}

/* A new connection from the peer, which only the node's dist thread can admit
 * (it alone answers ZAP): a node whose dist thread has ended still reads frames
 * on connections it has (its schedulers read them too), sends no ticks and
 * admits nobody, so its peers drop it a tick later. Made every
 * RESET_PEER_EVERY inputs, so the input it blames may be a later one than the
 * one that did it. */
static void probe_admission(void)
{
    zmq_close(P.main);
    P.main = dealer(PEER_NAME, strlen(PEER_NAME), P.port);
    send_hello();
    if (!wait_frames(P.sent, "a new connection was not admitted within 10 s: the node's dist "
                             "thread no longer answers ZAP (has it ended?)"))
        peer_connect();
}

/* The harness's processes may all be gone (a peer can kill them all) while
 * dist's own (net_kernel, ember_ctl) live on: then nothing beats the heartbeat
 * and nothing ends the runtime; kill the rest over the wire, as a peer may, and
 * wait for the new node. */
static void check_health(void)
{
    const char *fatal = atomic_load(&N.fatal);
    if (fatal)
        die(fatal);
    int64_t beat = atomic_load(&N.heartbeat_ms);
    if (now_ms() - beat < HEARTBEAT_STALE_MS || node_moved())
        return;
    int gen = P.gen;
    send_items(P.main, item_kill_all);
    if (!wait_gen_past(gen, 15000))
        die("the node's processes are gone and it cannot be restarted");
}

/* --------------------------------------------- endpoints the node dials */

static void defuse_str(char *buf, size_t len, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
        return;
    const char *p = o->via.str.ptr;
    size_t n = o->via.str.size;
    if (p < buf || p > buf + len || n > (size_t)(buf + len - p))
        die("msgpack-c copied a string: the endpoints cannot be checked");
    if (n == strlen(P.endpoint) && memcmp(p, P.endpoint, n) == 0)
        return;
    memset(buf + (p - buf), 'x', n);
}

/* A HELLO that opens a frame names endpoints the node connects to: ours may
 * stay, any other becomes 'x's. The frame is read as the node reads it
 * (emi_dist_handle_frame): a header of twelve bytes, then the first item,
 * from the plausible prefix of what follows the header. */
static void defuse_hello(char *buf, size_t len)
{
    size_t off = 12;
    if (len <= off)
        return;
    size_t plen = off + emi_codec_plausible_prefix(buf + off, len - off);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return r = msgpack_unpack_next(&u, buf, plen, &off);
    const msgpack_object *o = &u.data;
    if ((r == MSGPACK_UNPACK_SUCCESS || r == MSGPACK_UNPACK_EXTRA_BYTES) &&
        o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 4 &&
        o->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        o->via.array.ptr[0].via.u64 == OP_HELLO) {
        const msgpack_object *a = o->via.array.ptr;
        defuse_str(buf, len, &a[4]);
        if (o->via.array.size > 5 && a[5].type == MSGPACK_OBJECT_ARRAY)
            for (uint32_t i = 0; i < a[5].via.array.size; i++) {
                const msgpack_object *e = &a[5].via.array.ptr[i];
                if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2)
                    defuse_str(buf, len, &e->via.array.ptr[1]);
            }
    }
    msgpack_unpacked_destroy(&u);
}

/* ============================================================== seeds */

static msgpack_sbuffer seed_sb;
static msgpack_packer seed_pk;

static void pk_pid_ext(msgpack_packer *pk, const char *node, uint32_t creation, uint32_t index,
                       uint32_t serial)
{
    size_t nl = strlen(node);
    unsigned char b[12];
    uint32_t v[3] = {creation, index, serial};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            b[i * 4 + j] = (unsigned char)(v[i] >> (24 - 8 * j));
    msgpack_pack_ext(pk, 12 + nl, EMI_EXT_PID);
    msgpack_pack_ext_body(pk, b, 12);
    msgpack_pack_ext_body(pk, node, nl);
}

static void pk_ref_ext(msgpack_packer *pk, const char *node, uint32_t creation, uint64_t counter)
{
    size_t nl = strlen(node);
    unsigned char b[12];
    for (int j = 0; j < 4; j++)
        b[j] = (unsigned char)(creation >> (24 - 8 * j));
    for (int j = 0; j < 8; j++)
        b[4 + j] = (unsigned char)(counter >> (56 - 8 * j));
    msgpack_pack_ext(pk, 12 + nl, EMI_EXT_REF);
    msgpack_pack_ext_body(pk, b, 12);
    msgpack_pack_ext_body(pk, node, nl);
}

static void seed_begin(int mode)
{
    msgpack_sbuffer_clear(&seed_sb);
    unsigned char m = (unsigned char)mode;
    msgpack_sbuffer_write(&seed_sb, (const char *)&m, 1);
}

static void seed_write(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(seed_sb.data, 1, seed_sb.size, f) != seed_sb.size || fclose(f) != 0)
        die("cannot write a seed");
}

static void op3(int op, uint64_t a, uint64_t b)
{
    msgpack_pack_array(&seed_pk, 3);
    msgpack_pack_uint8(&seed_pk, (uint8_t)op);
    msgpack_pack_uint64(&seed_pk, a);
    msgpack_pack_uint64(&seed_pk, b);
}

/* [op, a, b, ...]: the caller packs the rest (n - 3 elements). */
static void op_n(int op, uint32_t n, uint64_t a, uint64_t b)
{
    msgpack_pack_array(&seed_pk, n);
    msgpack_pack_uint8(&seed_pk, (uint8_t)op);
    msgpack_pack_uint64(&seed_pk, a);
    msgpack_pack_uint64(&seed_pk, b);
}

static void write_seeds(const char *dir)
{
    msgpack_packer *pk = &seed_pk;
    msgpack_sbuffer_init(&seed_sb);
    msgpack_packer_init(pk, &seed_sb, msgpack_sbuffer_write);
    em_pid_t sink = atomic_load(&N.kids[KID_SINK]), echo = atomic_load(&N.kids[KID_ECHO]),
             plain = atomic_load(&N.kids[KID_PLAIN]);
    const em_pid_t dead = 4000;   /* an index nobody has */
    mkdir(dir, 0755);
    fprintf(stderr, "fuzz_frames: seeds for sink <0.%u.%u>, echo <0.%u.%u>, plain <0.%u.%u>\n",
            em_pid_index(sink), em_pid_serial(sink), em_pid_index(echo), em_pid_serial(echo),
            em_pid_index(plain), em_pid_serial(plain));

    /* SEND of every kind of term. */
    seed_begin(0);
    op_n(OP_SEND, 4, FROM_PID, sink);
    msgpack_pack_array(pk, 12);
    pk_atom(pk, "hello");
    msgpack_pack_int64(pk, -5);
    msgpack_pack_uint64(pk, UINT64_MAX);
    pk_str(pk, "text");
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\x00\x01\x02", 3);
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_nil(pk);
    msgpack_pack_true(pk);
    msgpack_pack_map(pk, 1);
    pk_atom(pk, "k");
    msgpack_pack_array(pk, 0);
    pk_pid_ext(pk, PEER_NAME, PEER_CREATION, FROM_PID, 0);
    pk_ref_ext(pk, PEER_NAME, PEER_CREATION, 99);
    pk_pid_ext(pk, NODE_NAME, NODE_CREATION, em_pid_index(sink), em_pid_serial(sink));
    seed_write(dir, "send");

    seed_begin(0);
    op_n(OP_SEND, 4, FROM_PID, dead);
    msgpack_pack_int8(pk, 1);
    op_n(OP_SEND, 4, FROM_PID, sink);
    /* A pid and a reference of a third node: a new node-table entry. */
    msgpack_pack_array(pk, 2);
    pk_pid_ext(pk, "zz@10.0.0.1", 77, 3, 1);
    pk_ref_ext(pk, "zz@10.0.0.1", 77, 5);
    seed_write(dir, "send_dead_third");

    seed_begin(0);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_REG_SEND);
    msgpack_pack_uint64(pk, FROM_PID);
    pk_str(pk, "sink");
    msgpack_pack_array(pk, 2);
    pk_atom(pk, "hello");
    msgpack_pack_int8(pk, 2);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_REG_SEND);
    msgpack_pack_uint64(pk, FROM_PID);
    pk_str(pk, "nobody");
    pk_atom(pk, "lost");
    seed_write(dir, "reg_send");

    seed_begin(0);
    op3(OP_LINK, FROM_PID, sink);
    op3(OP_UNLINK, FROM_PID, sink);
    op3(OP_LINK, FROM_PID2, sink);
    op3(OP_LINK, FROM_PID, dead);
    seed_write(dir, "link_unlink");

    seed_begin(0);
    op3(OP_LINK, FROM_PID, plain);
    op_n(OP_EXIT, 4, FROM_PID, plain);
    pk_atom(pk, "boom");
    seed_write(dir, "link_exit");

    seed_begin(0);
    op_n(OP_EXIT2, 4, FROM_PID, sink);
    msgpack_pack_array(pk, 2);
    pk_atom(pk, "shutdown");
    msgpack_pack_int8(pk, 1);
    op_n(OP_EXIT2, 4, FROM_PID, plain);
    pk_atom(pk, "normal");
    seed_write(dir, "exit2");

    seed_begin(0);
    op_n(OP_MONITOR, 4, FROM_PID, sink);
    msgpack_pack_uint8(pk, 42);
    op_n(OP_DEMONITOR, 4, FROM_PID, sink);
    msgpack_pack_uint8(pk, 42);
    op_n(OP_MONITOR, 4, FROM_PID, dead);
    msgpack_pack_uint8(pk, 43);
    op_n(OP_MONITOR, 4, FROM_PID2, plain);
    msgpack_pack_uint8(pk, 44);
    seed_write(dir, "monitor");

    /* A spawn reply with a monitor the node now holds, then its DOWN. */
    seed_begin(0);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, OP_SPAWN_REPLY);
    msgpack_pack_uint64(pk, sink);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint64(pk, FROM_PID2);
    msgpack_pack_uint8(pk, EM_SPAWN_MONITOR);
    msgpack_pack_uint8(pk, 77);
    msgpack_pack_nil(pk);
    msgpack_pack_array(pk, 5);
    msgpack_pack_uint8(pk, OP_DOWN);
    msgpack_pack_uint64(pk, FROM_PID2);
    msgpack_pack_uint64(pk, sink);
    msgpack_pack_uint8(pk, 77);
    pk_atom(pk, "normal");
    seed_write(dir, "spawn_reply_down");

    seed_begin(0);
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, OP_SPAWN_REPLY);
    msgpack_pack_uint64(pk, echo);
    msgpack_pack_uint8(pk, 2);
    msgpack_pack_uint64(pk, FROM_PID);
    msgpack_pack_uint8(pk, EM_SPAWN_LINK);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_nil(pk);
    op_n(OP_EXIT, 4, FROM_PID, echo);
    pk_atom(pk, "crash");
    msgpack_pack_array(pk, 7);
    msgpack_pack_uint8(pk, OP_SPAWN_REPLY);
    msgpack_pack_uint64(pk, sink);
    msgpack_pack_uint8(pk, 3);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 0);
    msgpack_pack_uint8(pk, 0);
    pk_atom(pk, "notfound");
    seed_write(dir, "spawn_reply_link");

    seed_begin(0);
    static const struct {
        const char *fn;
        int flags;
    } spawns[] = {{"fz_worker", 0}, {"fz_worker", EM_SPAWN_LINK}, {"fz_worker", EM_SPAWN_MONITOR},
                  {"nope", 0}};
    for (unsigned i = 0; i < sizeof spawns / sizeof spawns[0]; i++) {
        msgpack_pack_array(pk, 7);
        msgpack_pack_uint8(pk, OP_SPAWN_REQ);
        msgpack_pack_uint64(pk, FROM_PID);
        msgpack_pack_uint8(pk, (uint8_t)(i + 1));
        pk_str(pk, spawns[i].fn);
        msgpack_pack_array(pk, 1);
        msgpack_pack_uint8(pk, (uint8_t)i);
        msgpack_pack_uint8(pk, (uint8_t)spawns[i].flags);
        msgpack_pack_uint8(pk, (uint8_t)(10 + i));
    }
    seed_write(dir, "spawn_req");

    /* echo's commands: the node sends, links, monitors and exits on our terms. */
    seed_begin(0);
    for (int cmd = 1; cmd <= 6; cmd++) {
        op_n(OP_SEND, 4, FROM_PID, echo);
        msgpack_pack_array(pk, cmd == 1 || cmd == 5 ? 3 : 2);
        msgpack_pack_uint8(pk, (uint8_t)cmd);
        pk_pid_ext(pk, PEER_NAME, PEER_CREATION, cmd == 3 ? FROM_PID2 : FROM_PID, 0);
        if (cmd == 1) {
            msgpack_pack_array(pk, 2);
            pk_atom(pk, "pong");
            pk_ref_ext(pk, NODE_NAME, NODE_CREATION, 1);
        } else if (cmd == 5) {
            pk_atom(pk, "bye");
        }
    }
    op_n(OP_SEND, 4, FROM_PID, echo);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 7);
    pk_pid_ext(pk, PEER_NAME, PEER_CREATION, FROM_PID, 0);
    pk_atom(pk, "two");
    msgpack_pack_array(pk, 1);
    pk_ref_ext(pk, "zz@10.0.0.1", 77, 6);
    op_n(OP_SEND, 4, FROM_PID, echo);
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 8);
    pk_atom(pk, "named");
    pk_str(pk, "by name");
    seed_write(dir, "echo");

    /* A large SEND in two fragments, and one that never completes. */
    {
        msgpack_sbuffer big;
        msgpack_sbuffer_init(&big);
        msgpack_packer bp;
        msgpack_packer_init(&bp, &big, msgpack_sbuffer_write);
        msgpack_pack_array(&bp, 4);
        msgpack_pack_uint8(&bp, OP_SEND);
        msgpack_pack_uint64(&bp, FROM_PID);
        msgpack_pack_uint64(&bp, sink);
        static char blob[EMI_FRAG_MAX + 600];
        memset(blob, 'b', sizeof blob);
        msgpack_pack_bin(&bp, sizeof blob);
        msgpack_pack_bin_body(&bp, blob, sizeof blob);
        size_t half = big.size / 2;
        seed_begin(0);
        for (int i = 0; i < 2; i++) {
            msgpack_pack_array(pk, 4);
            msgpack_pack_uint8(pk, OP_FRAG);
            msgpack_pack_uint64(pk, FROM_PID);
            msgpack_pack_uint64(pk, big.size);
            size_t off = i ? half : 0, n = i ? big.size - half : half;
            msgpack_pack_bin(pk, n);
            msgpack_pack_bin_body(pk, big.data + off, n);
        }
        seed_write(dir, "frag");
        msgpack_sbuffer_destroy(&big);
    }
    seed_begin(0);
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, OP_FRAG);
    msgpack_pack_uint64(pk, FROM_PID2);
    msgpack_pack_uint32(pk, 20000);
    msgpack_pack_bin(pk, 4);
    msgpack_pack_bin_body(pk, "\x94\x01\x07\x03", 4);
    seed_write(dir, "frag_partial");

    seed_begin(0);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, OP_ACK);
    msgpack_pack_uint8(pk, 1);
    item_tick(pk);
    seed_write(dir, "ack_tick");

    seed_begin(0);
    item_bye(pk);
    seed_write(dir, "bye");

    /* Raw: a HELLO of a new life of ev, with a node to join, then a SEND. */
    seed_begin(2);
    pk_header(pk, PEER_CREATION + 1, NODE_CREATION);
    msgpack_pack_array(pk, 6);
    msgpack_pack_uint8(pk, OP_HELLO);
    pk_str(pk, PEER_NAME);
    msgpack_pack_uint32(pk, PEER_CREATION + 1);
    msgpack_pack_false(pk);
    pk_str(pk, "tcp://127.0.0.1:1");
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    pk_str(pk, "zz@127.0.0.1");
    pk_str(pk, "tcp://127.0.0.1:2");
    op_n(OP_SEND, 4, FROM_PID, sink);
    pk_atom(pk, "reborn");
    seed_write(dir, "hello_raw");

    /* Raw: a frame for an earlier life of the node, and one with no header. */
    seed_begin(2);
    pk_header(pk, PEER_CREATION, NODE_CREATION + 1);
    item_tick(pk);
    seed_write(dir, "stale_raw");
    seed_begin(2);
    op3(OP_LINK, FROM_PID, sink);
    seed_write(dir, "noheader_raw");

    seed_begin(3);
    op_n(OP_SEND, 4, FROM_PID, sink);
    msgpack_pack_array(pk, 2);
    pk_atom(pk, "bulk");
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint8(pk, OP_ACK);
    msgpack_pack_uint8(pk, 1);
    seed_write(dir, "bulk");

    /* Requests to the control service every node runs (dist/ctl.c). */
    seed_begin(0);
    static const char *const ctl_cmds[] = {"ping", "info", "nodes"};
    for (unsigned i = 0; i < sizeof ctl_cmds / sizeof ctl_cmds[0]; i++) {
        msgpack_pack_array(pk, 4);
        msgpack_pack_uint8(pk, OP_REG_SEND);
        msgpack_pack_uint64(pk, FROM_PID);
        pk_str(pk, "ember_ctl");
        msgpack_pack_array(pk, 5);
        pk_atom(pk, "$ctl");
        pk_pid_ext(pk, PEER_NAME, PEER_CREATION, FROM_PID, 0);
        msgpack_pack_uint8(pk, (uint8_t)i);
        pk_atom(pk, ctl_cmds[i]);
        pk_str(pk, "sink");
    }
    seed_write(dir, "ctl");

    seed_begin(0);
    op_n(OP_SEND, 3, FROM_PID, sink);
    seed_write(dir, "malformed");

    msgpack_sbuffer_destroy(&seed_sb);
}

/* ======================================================== the target */

static void stop_node(void)
{
    if (!N.thread_started)
        return;
    atomic_store(&N.stopping, 1);
    /* The keeper halts the runtime; if it is gone, kill the rest ourselves. */
    int64_t until = now_ms() + WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&N.lock);
        bool done = N.done;
        pthread_mutex_unlock(&N.lock);
        if (done)
            break;
        if (now_ms() > until) {
            if (P.main)
                send_items(P.main, item_kill_all);
            until = now_ms() + WAIT_MS;
        }
        nap_us(1000);
    }
    pthread_join(N.thread, NULL);
    N.thread_started = false;
    if (P.main)
        zmq_close(P.main);
    if (P.bulk)
        zmq_close(P.bulk);
    if (P.router)
        zmq_close(P.router);
    if (P.ctx)
        zmq_ctx_term(P.ctx);
    P.main = P.bulk = P.router = P.ctx = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *lv = getenv("EMBER_FUZZ_FRAMES_LOG");
    N.log_level = lv ? atoi(lv) : 0;
    const char *probe = getenv("EMBER_FUZZ_FRAMES_PROBE");
    N.no_probe = probe && strcmp(probe, "0") == 0;
    peer_open();
    return 0;
}

/* The node starts with the first input, not in LLVMFuzzerInitialize: libFuzzer
 * sets its signal handlers after that and leaves alone those it finds, so the
 * runtime's must come after libFuzzer's (which the runtime's fault handler
 * then hands a fault that is not a process's). */
static void start_node(void)
{
    sigaction(SIGABRT, NULL, &N.fuzzer_abrt);
    if (pthread_create(&N.thread, NULL, node_thread, NULL) != 0)
        die("cannot start the node's thread");
    N.thread_started = true;
    atexit(stop_node);
    peer_connect();
    const char *seeds = getenv("EMBER_FUZZ_FRAMES_SEEDS");
    if (seeds && *seeds) {
        write_seeds(seeds);
        fprintf(stderr, "fuzz_frames: seeds written to %s\n", seeds);
        stop_node();
        _exit(0);   /* exit() inside an input would read to libFuzzer as a crash */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!N.thread_started)
        start_node();
    if (size == 0)
        return 0;
    if (node_moved())
        peer_connect();
    int mode = data[0] % 4;
    bool header = mode != 2;
    void *lane = mode == 3 ? P.bulk : P.main;
    size_t n = size - 1, hl = 0;
    char *buf = malloc(16 + n);
    if (!buf)
        return 0;
    if (header) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pk_header(&pk, PEER_CREATION, NODE_CREATION);
        hl = sb.size;
        memcpy(buf, sb.data, hl);
        msgpack_sbuffer_destroy(&sb);
    }
    memcpy(buf + hl, data + 1, n);
    if (lane == P.main)
        defuse_hello(buf, hl + n);
    send_frame(lane, buf, hl + n);
    free(buf);
    if (lane == P.bulk)
        send_items(P.bulk, item_tick);   /* after the input on its lane: the input is done */
    bool reset = ++P.inputs % RESET_PEER_EVERY == 0;
    if (reset)
        send_items(P.main, item_bye);
    drain();
    send_hello();
    if (!wait_frames(P.sent, "the node stopped reading frames")) {
        peer_connect();   /* the node restarted under the input */
        return 0;
    }
    drain();
    check_health();
    if (reset && !N.no_probe)
        probe_admission();
    if (P.inputs % RESTART_NODE_EVERY == 0 || (reset && atomic_exchange(&N.kernel_dead, 0))) {
        int gen = P.gen;
        atomic_store(&N.restart, 1);
        if (!wait_gen_past(gen, 30000))
            die("the node did not restart");
    }
    return 0;
}
