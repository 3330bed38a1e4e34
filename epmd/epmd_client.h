/*
 * epmd_client.h - ember's client for port mappers that speak Erlang/OTP's EPMD
 * protocol: ember-epmd, or Erlang's own epmd. Nodes use it to register their
 * name and distribution port; tools and peers use it to look nodes up, list
 * them, and stop a daemon. It is the static library ember_epmd_client and
 * depends on nothing but libc.
 *
 * Conventions, for every function below:
 *  - Calls block until they are done or timeout_ms milliseconds have passed in
 *    all (a negative timeout_ms waits without limit). Resolving a host name
 *    (getaddrinfo) is not covered by the timeout: pass a numeric address where
 *    that matters.
 *  - host NULL means 127.0.0.1, the daemon of this host; epmd_port 0 means
 *    em_epmd_default_port().
 *  - Functions that can fail return 0 or a negative errno value: -ETIMEDOUT,
 *    -ECONNREFUSED (no daemon there), -ECONNRESET (the daemon closed the
 *    connection without a reply: it refused or could not parse the request),
 *    -EPROTO (a reply that does not parse), -EINVAL (a bad argument), and the
 *    per-call codes named below. em_epmd_strerror describes any of them.
 *  - Nothing is global: calls may run on any threads at once.
 */
#ifndef EMBER_EPMD_CLIENT_H
#define EMBER_EPMD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EM_EPMD_MAX_NAME 255  /* bytes in a node name */
#define EM_EPMD_MAX_EXTRA 255 /* bytes in an Extra field */

/* Node types and protocols, as Erlang defines them. */
#define EM_EPMD_TYPE_NORMAL 77 /* a normal Erlang node */
#define EM_EPMD_TYPE_HIDDEN 72 /* a hidden node (C node); what ember nodes register as */
#define EM_EPMD_PROTO_TCP 0    /* TCP/IPv4 */

/* What a daemon knows about one node: what it registered with. */
typedef struct em_epmd_node {
    char name[EM_EPMD_MAX_NAME + 1]; /* NUL-terminated */
    uint16_t port;                   /* the node's distribution port */
    uint8_t node_type;               /* EM_EPMD_TYPE_* */
    uint8_t protocol;                /* EM_EPMD_PROTO_TCP */
    uint16_t highest_version;        /* distribution versions it speaks */
    uint16_t lowest_version;
    size_t extra_len;
    unsigned char extra[EM_EPMD_MAX_EXTRA + 1]; /* extra_len bytes, then a NUL */
} em_epmd_node;

/* One line of a NAMES reply. */
typedef struct em_epmd_name {
    char name[EM_EPMD_MAX_NAME + 1];
    uint16_t port;
} em_epmd_name;

typedef struct em_epmd_name_list {
    uint32_t epmd_port; /* the port the daemon says it listens on */
    size_t count;
    em_epmd_name *names; /* count entries, malloc'd: em_epmd_name_list_free */
} em_epmd_name_list;

/* em_epmd_default_port returns $ERL_EPMD_PORT if it holds a port number
 * (1-65535), else 4369. */
uint16_t em_epmd_default_port(void);

/* em_epmd_register registers self (name, port, type, protocol, versions and
 * Extra; name 1 to 255 bytes of UTF-8, Extra at most 255 bytes) with the daemon
 * with an ALIVE2_REQ. Blocks until the daemon replies. On success *fd is the
 * connection that holds the registration, which is the caller's: the name stays
 * registered exactly as long as it is open (em_epmd_unregister closes it). The
 * daemon never writes on it, so the descriptor becoming readable means the
 * daemon went away. *creation is the creation the daemon assigned: 32 bits from
 * an ALIVE2_X_RESP (sent when highest_version >= 6), 1 to 3 from an older
 * ALIVE2_RESP. Errors: -EADDRINUSE (the name is registered), -ENOSPC (the
 * daemon's table is full), -EINVAL (a bad name or Extra, here or at the daemon),
 * -ECONNRESET (refused: not a local peer). creation may be NULL. */
int em_epmd_register(const char *host, uint16_t epmd_port, const em_epmd_node *self, int timeout_ms,
                     int *fd, uint32_t *creation);

/* em_epmd_unregister ends the registration held by fd (closes it); 0 or a
 * negative errno from close. */
int em_epmd_unregister(int fd);

/* em_epmd_port_please looks name up with a PORT_PLEASE2_REQ and fills *out with
 * what the node registered. Blocks until the reply. -ENOENT if no node of that
 * name is registered. */
int em_epmd_port_please(const char *host, uint16_t epmd_port, const char *name, int timeout_ms,
                        em_epmd_node *out);

/* em_epmd_names lists the registered names with a NAMES_REQ. Blocks until the
 * daemon has sent the whole list. On success *out holds malloc'd entries that
 * the caller frees with em_epmd_name_list_free (on failure there is nothing to
 * free). */
int em_epmd_names(const char *host, uint16_t epmd_port, int timeout_ms, em_epmd_name_list *out);

/* em_epmd_name_list_free frees the entries of a list filled by em_epmd_names
 * and empties it; a zeroed list is fine too. */
void em_epmd_name_list_free(em_epmd_name_list *list);

/* em_epmd_kill asks the daemon to stop with a KILL_REQ. Blocks until it
 * answers. 0 if it is stopping; -EBUSY if it refused because names are
 * registered (and it was not started with -relaxed_command_check); -ECONNRESET
 * if it refused to answer (the request did not come from its host). */
int em_epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms);

/* em_epmd_stop forcibly unregisters name with a STOP_REQ. Blocks until the
 * daemon answers. 0 if it was unregistered, -ENOENT if it was not registered,
 * -EPERM if the daemon ignored the request (it allows it only with
 * -relaxed_command_check, and only from its host). */
int em_epmd_stop(const char *host, uint16_t epmd_port, const char *name, int timeout_ms);

/* em_epmd_strerror returns a static description of a code returned above. */
const char *em_epmd_strerror(int rc);

/* ---- ember's Extra field (docs/epmd.md, "The Extra field") ----
 *
 * An ember node registers with Extra "ember1 <transport> curve=<fingerprint>",
 * for example "ember1 tcp curve=3f9a0c4b5d6e7f80": the convention's version,
 * how to connect (ZeroMQ transport), and the first 16 hex digits (lowercase) of
 * the BLAKE2b-256 hash of the node's CURVE public key. More "key=value" tokens
 * may follow; parsers ignore the ones they do not know. */

#define EM_EPMD_EXTRA_TAG "ember1"
#define EM_EPMD_MAX_TRANSPORT 15 /* characters in a transport name */
#define EM_EPMD_FINGERPRINT_LEN 16

typedef struct em_epmd_extra {
    char transport[EM_EPMD_MAX_TRANSPORT + 1]; /* e.g. "tcp" */
    char curve[EM_EPMD_FINGERPRINT_LEN + 1];   /* 16 lowercase hex digits */
} em_epmd_extra;

/* em_epmd_extra_build writes ember's Extra text for transport (1 to 15
 * characters a-z, 0-9) and curve_fingerprint (16 hex digits, written in
 * lowercase) into buf, NUL-terminated. Returns its length without the NUL,
 * -EINVAL for a bad argument, -ENOSPC if cap is too small. */
int em_epmd_extra_build(char *buf, size_t cap, const char *transport,
                        const char *curve_fingerprint);

/* em_epmd_extra_parse reads an Extra field (len bytes, as em_epmd_node holds
 * it) into *out. Returns 0; -ENOENT if it is not ember's (for example the
 * empty Extra of an Erlang node, or a later version of the convention);
 * -EPROTO if it is ember's but malformed (no curve fingerprint, a bad token). */
int em_epmd_extra_parse(const void *extra, size_t len, em_epmd_extra *out);

#ifdef __cplusplus
}
#endif

#endif
