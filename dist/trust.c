/*
 * trust.c - who may connect: CURVE keys from a cookie or from a keyring.
 *
 * Cookie mode, like Erlang's: every node holding the same secret derives the same
 * Curve25519 key pair from it (BLAKE2b of the cookie, as the seed of a crypto_box
 * key pair). Each node is then both the server key its peers expect and the only
 * client key it accepts, so a node without the cookie can neither complete the
 * CURVE handshake against us nor pass our ZAP check. Keyring mode: each node has
 * its own pair in DIR/key and DIR/key.pub (Z85, as zmq_curve_keypair writes them)
 * and DIR/peers lists the public keys it accepts, one "KEY name" per line; the
 * same list says which key to expect from a node we connect to.
 *
 * Secrets never leave this file except as the bytes ZeroMQ needs; nothing here
 * logs a key or a cookie.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "dist_int.h"

typedef struct known_key {
    uint8_t key[32];
    char name[EMI_NODE_NAME_MAX + 1];
} known_key;

static struct {
    em_trust mode;
    uint8_t pk[32], sk[32];
    known_key *peers;
    size_t npeers;
} T;

static int read_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? EM_ENOTFOUND : EM_EINVAL;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0)
        return EM_EINVAL;
    buf[n] = 0;
    *len = (size_t)n;
    return 0;
}

/* Erlang's way: a cookie file made on first use, readable by its owner only. */
static int default_cookie(char *buf, size_t cap, size_t *len)
{
    const char *home = getenv("HOME");
    if (!home || !*home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home)
        return EM_ENOTFOUND;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/.ember", home);
    snprintf(path, sizeof path, "%s/cookie", dir);
    int rc = read_file(path, buf, cap, len);
    if (rc != EM_ENOTFOUND)
        return rc;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return EM_EINVAL;
    char fresh[33];
    for (int i = 0; i < 32; i++)
        fresh[i] = (char)('A' + randombytes_uniform(26));
    fresh[32] = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
    if (fd < 0)
        return errno == EEXIST ? read_file(path, buf, cap, len) : EM_EINVAL;
    bool ok = write(fd, fresh, 32) == 32;
    close(fd);
    if (!ok)
        return EM_EINVAL;
    emi_dist_log(2, "created a cookie in %s", path);
    return read_file(path, buf, cap, len);
}

static void trim(char *s, size_t *len)
{
    while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r' || s[*len - 1] == ' '))
        s[--*len] = 0;
}

static int cookie_keys(const em_dist_config *c)
{
    char buf[1024];
    size_t len = 0;
    int rc = 0;
    if (c->cookie) {
        len = strlen(c->cookie);
        if (len >= sizeof buf)
            return EM_EINVAL;
        memcpy(buf, c->cookie, len + 1);
    } else if (c->cookie_file) {
        rc = read_file(c->cookie_file, buf, sizeof buf, &len);
        if (rc) {
            emi_dist_log(1, "cannot read the cookie file %s", c->cookie_file);
            return rc;
        }
    } else if ((rc = default_cookie(buf, sizeof buf, &len)) != 0) {
        emi_dist_log(1, "no cookie: give one, or let ember create ~/.ember/cookie");
        return rc;
    }
    trim(buf, &len);
    if (len == 0) {
        emi_dist_log(1, "the cookie is empty");
        return EM_EINVAL;
    }
    uint8_t seed[crypto_box_SEEDBYTES];
    static const char ctx[] = "ember cookie key v1";
    crypto_generichash(seed, sizeof seed, (const uint8_t *)buf, len, (const uint8_t *)ctx,
                       sizeof ctx - 1);
    crypto_box_seed_keypair(T.pk, T.sk, seed);
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(buf, sizeof buf);
    return 0;
}

static int z85_key(const char *text, size_t len, uint8_t out[32])
{
    if (len != 40)
        return EM_EINVAL;
    char z[41];
    memcpy(z, text, 40);
    z[40] = 0;
    return zmq_z85_decode(out, z) ? 0 : EM_EINVAL;
}

static int keyring_keys(const char *dir)
{
    char path[4200], buf[65536];
    size_t len;
    snprintf(path, sizeof path, "%s/key", dir);
    int rc = read_file(path, buf, sizeof buf, &len);
    if (rc) {
        emi_dist_log(1, "keyring: cannot read %s", path);
        return rc;
    }
    trim(buf, &len);
    rc = z85_key(buf, len, T.sk);
    sodium_memzero(buf, sizeof buf);
    if (rc) {
        emi_dist_log(1, "keyring: %s is not a Z85 secret key (40 characters)", path);
        return rc;
    }
    crypto_scalarmult_base(T.pk, T.sk);
    snprintf(path, sizeof path, "%s/peers", dir);
    rc = read_file(path, buf, sizeof buf, &len);
    if (rc) {
        emi_dist_log(1, "keyring: cannot read %s", path);
        return rc;
    }
    int lineno = 0;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line == '#' || *line == 0 || *line == '\r')
            continue;
        char *sp = strpbrk(line, " \t");
        known_key k = {0};
        if (!sp || z85_key(line, (size_t)(sp - line), k.key) != 0) {
            emi_dist_log(1, "keyring: %s line %d: expected \"KEY name\"", path, lineno);
            return EM_EINVAL;
        }
        while (*sp == ' ' || *sp == '\t')
            sp++;
        size_t nl = strcspn(sp, " \t\r");
        if (!emi_codec_valid_node_name(sp, nl)) {
            emi_dist_log(1, "keyring: %s line %d: bad node name", path, lineno);
            return EM_EINVAL;
        }
        memcpy(k.name, sp, nl);
        known_key *grown = realloc(T.peers, (T.npeers + 1) * sizeof *grown);
        if (!grown)
            return EM_ENOMEM;
        T.peers = grown;
        T.peers[T.npeers++] = k;
    }
    return 0;
}

int emi_trust_init(const em_dist_config *c)
{
    if (sodium_init() < 0)
        return EM_ENOMEM;
    T.mode = c->trust;
    if (c->trust == EM_TRUST_COOKIE)
        return cookie_keys(c);
    if (c->trust == EM_TRUST_KEYRING) {
        if (!c->keyring) {
            emi_dist_log(1, "keyring mode needs a keyring directory");
            return EM_EINVAL;
        }
        return keyring_keys(c->keyring);
    }
    return EM_EINVAL;
}

void emi_trust_fini(void)
{
    sodium_memzero(T.sk, sizeof T.sk);
    free(T.peers);
    T.peers = NULL;
    T.npeers = 0;
}

bool emi_trust_server_key(const char *name, size_t len, uint8_t out[32])
{
    if (T.mode == EM_TRUST_COOKIE) {
        memcpy(out, T.pk, 32);
        return true;
    }
    for (size_t i = 0; i < T.npeers; i++)
        if (strlen(T.peers[i].name) == len && memcmp(T.peers[i].name, name, len) == 0) {
            memcpy(out, T.peers[i].key, 32);
            return true;
        }
    return false;
}

const uint8_t *emi_trust_public(void) { return T.pk; }
const uint8_t *emi_trust_secret(void) { return T.sk; }

bool emi_trust_accepts(const uint8_t key[32])
{
    if (sodium_memcmp(key, T.pk, 32) == 0)
        return true;
    if (T.mode == EM_TRUST_COOKIE)
        return false;
    for (size_t i = 0; i < T.npeers; i++)
        if (sodium_memcmp(key, T.peers[i].key, 32) == 0)
            return true;
    return false;
}
