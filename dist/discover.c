/*
 * discover.c - finding nodes through a port mapper (ember-epmd, or Erlang's own
 * epmd), when em_dist_config.epmd is set.
 *
 * A node registers its short name (the part before '@') and port with the
 * mapper of its own host, as an Erlang node does, for as long as it runs: the
 * registration lives exactly as long as the connection that made it. A node
 * that must reach "name@host" without an address asks the mapper on that host.
 * The registration's Extra field says "ember1 tcp curve=<fingerprint>", the
 * fingerprint being the first 16 hex digits of the BLAKE2b hash of the node's
 * CURVE public key: a peer whose fingerprint is not the one we expect holds
 * another cookie (or key), which we can say at once instead of after a failed
 * handshake.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dist_int.h"
#include "epmd_client.h"

static int epmd_fd = -1;

static void fingerprint(const uint8_t key[32], char out[EM_EPMD_FINGERPRINT_LEN + 1])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, key, 32, NULL, 0);
    for (int i = 0; i < EM_EPMD_FINGERPRINT_LEN / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static uint16_t mapper_port(void)
{
    return emi_dist_g.cfg.epmd_port ? emi_dist_g.cfg.epmd_port : em_epmd_default_port();
}

int emi_discover_register(void)
{
    emi_dist *d = &emi_dist_g;
    if (!d->cfg.epmd)
        return 0;
    em_epmd_node self;
    memset(&self, 0, sizeof self);
    const char *at = strchr(d->self, '@');
    snprintf(self.name, sizeof self.name, "%.*s", (int)(at - d->self), d->self);
    self.port = (uint16_t)d->port;
    self.node_type = EM_EPMD_TYPE_HIDDEN;   /* Erlang nodes must not dial us */
    self.protocol = EM_EPMD_PROTO_TCP;
    self.highest_version = 6;
    self.lowest_version = 6;
    char fp[EM_EPMD_FINGERPRINT_LEN + 1];
    fingerprint(emi_trust_public(), fp);
    int n = em_epmd_extra_build((char *)self.extra, sizeof self.extra, "tcp", fp);
    self.extra_len = n > 0 ? (size_t)n : 0;
    uint32_t creation;
    int rc = em_epmd_register(NULL, mapper_port(), &self, 2000, &epmd_fd, &creation);
    if (rc) {
        emi_dist_log(1, "cannot register %s with the port mapper on port %u: %s", self.name,
                     mapper_port(), em_epmd_strerror(rc));
        epmd_fd = -1;
        return rc == -EADDRINUSE ? EM_EEXIST : EM_ENOTFOUND;
    }
    emi_dist_log(2, "registered %s (port %d) with the port mapper on port %u", self.name, d->port,
                 mapper_port());
    return 0;
}

void emi_discover_unregister(void)
{
    if (epmd_fd >= 0)
        em_epmd_unregister(epmd_fd);
    epmd_fd = -1;
}

bool emi_discover_enabled(void) { return emi_dist_g.cfg.epmd; }

int emi_discover_lookup(emi_peer *pr, char *endpoint, size_t cap)
{
    char name[EMI_NODE_NAME_MAX + 1], host[EMI_NODE_NAME_MAX + 1];
    const char *at = memchr(pr->name, '@', pr->len);
    if (!at)
        return EM_EINVAL;
    snprintf(name, sizeof name, "%.*s", (int)(at - pr->name), pr->name);
    snprintf(host, sizeof host, "%.*s", (int)(pr->name + pr->len - at - 1), at + 1);
    em_epmd_node n;
    int rc = em_epmd_port_please(host, mapper_port(), name, 1000, &n);
    if (rc) {
        emi_dist_log(1, "cannot find node %.*s through the port mapper at %s: %s", (int)pr->len,
                     pr->name, host, em_epmd_strerror(rc));
        return EM_ENOTFOUND;
    }
    em_epmd_extra ex;
    if (em_epmd_extra_parse(n.extra, n.extra_len, &ex) != 0) {
        emi_dist_log(1, "%.*s is registered at %s but is not an ember node", (int)pr->len, pr->name,
                     host);
        return EM_ENOTFOUND;
    }
    char want[EM_EPMD_FINGERPRINT_LEN + 1];
    fingerprint(pr->serverkey, want);
    if (pr->has_key && strcmp(want, ex.curve) != 0) {
        emi_dist_log(1, "%.*s presents another key than the one we expect: %s", (int)pr->len,
                     pr->name,
                     emi_dist_g.cfg.trust == EM_TRUST_COOKIE ? "it holds another cookie"
                                                             : "check the keyring");
        return EM_EINVAL;
    }
    snprintf(endpoint, cap, "tcp://%s:%u", host, n.port);
    return 0;
}
