/*
 * node_discover.c - finding the cluster: seeds and DNS.
 *
 * Seeds: a node joins the cluster through any one member (the handshake tells
 * each side the visible nodes the other knows, and both connect to the rest),
 * so the seeds process ends as soon as one seed answers. Until then it keeps
 * trying, because in a cluster started all at once the seeds may come up after
 * us.
 *
 * DNS: a name that resolves to several addresses (a Kubernetes headless
 * service, a round-robin record) lists the machines; the port mapper of each
 * lists the nodes there. A node found so is reached as shortname@address, so
 * nodes meant to be found this way are named after their address (--name
 * x@10.1.2.3). The lookups block the scheduler thread that runs this process
 * for as long as they take (getaddrinfo has no timeout of its own), which is
 * why they run in a process of their own and never in the root.
 *
 * The mesh check: the library completes the mesh through the handshake (each
 * side names the visible nodes it knows), but two nodes that join through the
 * same member at the same moment can each miss the other, since neither was up
 * when the member greeted the other. So now and then a node asks a few of its
 * peers' ember_ctl services which nodes they see, and connects by name
 * (through the port mapper of the node's host) to any it does not.
 */
#include "node_discover.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "epmd_client.h"
#include "node_log.h"

#define CONNECT_MS 3000        /* one attempt to reach one node */
#define EPMD_MS 1000           /* one request to one port mapper */
#define SEED_PAUSE_MAX_MS 5000
#define MAX_ADDRS 64           /* addresses of one DNS name we look at */
#define MESH_ASK 4             /* peers asked per round of the mesh check */
#define CTL_MS 2000            /* a peer's ember_ctl has this long to answer */

static const node_opts *opts;

void node_discover_use(const node_opts *o) { opts = o; }

bool node_seed_is_self(const char *seed, const char *self)
{
    const char *at = strchr(seed, '@');
    const char *colon = at ? strchr(at, ':') : NULL;
    size_t len = colon ? (size_t)(colon - seed) : strlen(seed);
    return strlen(self) == len && memcmp(seed, self, len) == 0;
}

/* ---------------------------------------------------------------- seeds */

void node_seeds_main(em_term arg)
{
    (void)arg;
    int64_t pause = 500;
    for (int round = 1;; round++) {
        size_t tried = 0, answered = 0;
        const char *first = NULL;
        for (size_t i = 0; i < opts->nseeds; i++) {
            const char *s = opts->seeds[i];
            if (node_seed_is_self(s, opts->node))
                continue;
            tried++;
            int rc = em_node_connect(s, CONNECT_MS);
            if (rc == 0) {
                answered++;
                if (!first)
                    first = s;
            } else {
                node_log(LOG_DEBUG, "seed %s did not answer: %s", s, em_strerror(rc));
            }
        }
        if (tried == 0) {
            node_log(LOG_DEBUG, "every seed is this node: nothing to join");
            return;
        }
        if (answered) {
            node_log(LOG_INFO, "joined the cluster through %s (%zu of %zu seeds answered)", first,
                     answered, tried);
            return;
        }
        if (round == 1 || round % 10 == 0)
            node_log(round == 1 ? LOG_INFO : LOG_ERROR,
                     "no seed answered yet (%zu tried, round %d); trying again in the background",
                     tried, round);
        em_sleep(pause);
        pause = pause * 2 > SEED_PAUSE_MAX_MS ? SEED_PAUSE_MAX_MS : pause * 2;
    }
}

/* ------------------------------------------------------------------ DNS */

static bool connected(const char *node)
{
    em_term want = em_atom(node), buf[1024];
    size_t n = em_nodes(buf, 1024);
    for (size_t i = 0; i < n && i < 1024; i++)
        if (buf[i] == want)
            return true;
    n = em_nodes_hidden(buf, 1024);
    for (size_t i = 0; i < n && i < 1024; i++)
        if (buf[i] == want)
            return true;
    return false;
}

/* Whether what is registered as name at addr is an ember node (Erlang nodes
 * share port mappers with ember's). */
static bool is_ember(const char *addr, uint16_t port, const char *name)
{
    em_epmd_node n;
    em_epmd_extra x;
    return em_epmd_port_please(addr, port, name, EPMD_MS, &n) == 0 &&
           em_epmd_extra_parse(n.extra, n.extra_len, &x) == 0;
}

/* The nodes of one host: connect to those we do not know yet. */
static void visit_host(const char *dnsname, const char *addr, uint16_t epmd_port)
{
    em_epmd_name_list l;
    int rc = em_epmd_names(addr, epmd_port, EPMD_MS, &l);
    if (rc) {
        node_log(LOG_DEBUG, "no port mapper answers at %s:%u (%s): %s", addr, epmd_port, dnsname,
                 em_epmd_strerror(rc));
        return;
    }
    const char *self = opts->node, *at = strchr(self, '@');
    size_t selfshort = (size_t)(at - self);
    for (size_t i = 0; i < l.count; i++) {
        em_mark mk = em_heap_mark();
        const em_epmd_name *e = &l.names[i];
        char node[600], spec[620];
        snprintf(node, sizeof node, "%s@%s", e->name, addr);
        /* Ourselves, by our name or by our registration seen from outside. */
        bool me = strcmp(node, self) == 0 ||
                  (strlen(e->name) == selfshort && memcmp(e->name, self, selfshort) == 0 &&
                   e->port == em_node_port());
        if (!me && !connected(node)) {
            if (!is_ember(addr, epmd_port, e->name)) {
                node_log(LOG_DEBUG, "%s at %s is not an ember node", e->name, addr);
            } else {
                snprintf(spec, sizeof spec, "%s:%u", node, e->port);
                rc = em_node_connect(spec, CONNECT_MS);
                if (rc == 0)
                    node_log(LOG_INFO, "found %s through %s", node, dnsname);
                else
                    node_log(LOG_DEBUG, "found %s through %s but cannot connect: %s", node,
                             dnsname, em_strerror(rc));
            }
        }
        em_heap_release(mk);
    }
    em_epmd_name_list_free(&l);
}

/* One look at one --discover-dns NAME[:EPMDPORT]. */
static void discover_once(const char *spec, bool quiet)
{
    char name[512];
    snprintf(name, sizeof name, "%s", spec);
    uint16_t port = opts->epmd_port ? opts->epmd_port : em_epmd_default_port();
    char *colon = strrchr(name, ':');
    if (colon) {
        *colon = 0;
        port = (uint16_t)atoi(colon + 1);
    }
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc) {
        node_log(quiet ? LOG_DEBUG : LOG_ERROR, "cannot resolve %s: %s", name, gai_strerror(rc));
        return;
    }
    char addrs[MAX_ADDRS][INET_ADDRSTRLEN];
    size_t n = 0;
    for (struct addrinfo *a = res; a && n < MAX_ADDRS; a = a->ai_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)a->ai_addr;
        if (!inet_ntop(AF_INET, &sin->sin_addr, addrs[n], sizeof addrs[n]))
            continue;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = strcmp(addrs[j], addrs[n]) == 0;
        if (!seen)
            n++;
    }
    freeaddrinfo(res);
    node_log(LOG_DEBUG, "%s resolves to %zu address%s", name, n, n == 1 ? "" : "es");
    for (size_t i = 0; i < n; i++)
        visit_host(name, addrs[i], port);
}

void node_dns_main(em_term arg)
{
    (void)arg;
    for (int round = 0;; round++) {
        for (size_t i = 0; i < opts->ndns; i++)
            discover_once(opts->dns[i], round > 0);
        if (opts->discover_interval_ms <= 0)
            return;
        em_sleep(opts->discover_interval_ms);
    }
}

/* ----------------------------------------------------------------- mesh */

typedef struct ctl_ref {
    em_term ref;
} ctl_ref;

static bool is_reply(em_term m, void *ctx)
{
    ctl_ref *r = ctx;
    return em_len(m) == 4 && em_is_atom(em_at(m, 0), "$ctl_reply") && em_equal(em_at(m, 1), r->ref);
}

/* The visible nodes peer sees (an array of atoms), or EM_NONE. */
static em_term visible_of(em_term peer)
{
    ctl_ref r = {em_make_ref()};
    em_send_remote(em_atom("ember_ctl"), peer,
                   EM_ARR(em_atom("$ctl"), em_pid(em_self()), r.ref, em_atom("nodes"), EM_NIL));
    em_term m;
    if (em_receive_if(&m, CTL_MS, is_reply, &r) != 0 || !em_is_atom(em_at(m, 2), "ok"))
        return EM_NONE;
    return em_at(em_at(em_at(m, 3), 0), 1);   /* [[visible, [...]], [hidden, [...]]] */
}

void node_mesh_main(em_term arg)
{
    (void)arg;
    em_term self = em_atom(opts->node);
    size_t next = 0;
    for (;;) {
        em_sleep(opts->discover_interval_ms);
        em_mark mk = em_heap_mark();
        while (em_receive(NULL, 0) == 0) {
            /* Replies that came after their time: dropped. */
        }
        em_term peers[256];
        size_t n = em_nodes(peers, 256);
        n = n < 256 ? n : 256;
        for (size_t k = 0; k < n && k < MESH_ASK; k++) {
            em_term peer = peers[(next + k) % n];
            em_term vis = visible_of(peer);
            for (size_t i = 0; vis != EM_NONE && i < em_len(vis); i++) {
                const char *q = em_atom_name(em_at(vis, i));
                if (!q || em_at(vis, i) == self || connected(q))
                    continue;
                int rc = em_node_connect(q, CONNECT_MS);
                if (rc == 0)
                    node_log(LOG_INFO, "connected to %s, which %s sees and the mesh had missed", q,
                             em_atom_name(peer));
                else
                    node_log(LOG_DEBUG, "%s sees %s, but we cannot reach it: %s",
                             em_atom_name(peer), q, em_strerror(rc));
            }
        }
        next += MESH_ASK;
        em_heap_release(mk);
    }
}
