/*
 * epmd_proto.h - the port mapper's protocol as pure functions of bytes: framing
 * (is this buffer a complete request, a partial one, or garbage?) and handling
 * (what does a complete request do to the name table, and what is the reply?).
 *
 * Nothing here touches a socket, so the same code serves the daemon's event loop,
 * the unit tests and the fuzz target. The caller owns connections: it passes who
 * is asking (an opaque owner pointer, its descriptor, whether it is local) and
 * acts on the returned action.
 */
#ifndef EMBER_EPMD_PROTO_H
#define EMBER_EPMD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "epmd_table.h"

typedef struct emi_epmd_state {
    emi_epmd_table table;
    uint16_t port; /* the daemon's port, reported by NAMES_REQ and DUMP_REQ */
    bool relaxed;  /* -relaxed_command_check */
    uint64_t rng;  /* xorshift state for the creations of new names */
} emi_epmd_state;

typedef struct emi_epmd_peer {
    void *owner; /* the connection the request came on */
    int fd;      /* its descriptor (only shown by DUMP_REQ) */
    bool local;  /* loopback, or the host's own address */
} emi_epmd_peer;

/* A reply being built; data is malloc'd and grows as needed. */
typedef struct emi_epmd_out {
    uint8_t *data;
    size_t len;
    size_t cap;
} emi_epmd_out;

enum emi_epmd_action {
    EMI_EPMD_CLOSE, /* write the reply (which may be empty), then close */
    EMI_EPMD_KEEP,  /* write the reply and keep the connection: it holds a registration */
    EMI_EPMD_EXIT,  /* write the reply, then stop the daemon */
};

typedef struct emi_epmd_result {
    enum emi_epmd_action action;
    void *stopped; /* STOP_REQ: the owner whose registration was removed, or NULL */
} emi_epmd_result;

/* emi_epmd_state_init prepares a daemon state with an empty table of at most
 * max_names names; seed starts the creation generator. 0 or a negative errno. */
int emi_epmd_state_init(emi_epmd_state *st, uint16_t port, bool relaxed, size_t max_names,
                        uint64_t seed);

/* emi_epmd_state_fini frees the table. */
void emi_epmd_state_fini(emi_epmd_state *st);

/* emi_epmd_frame looks at the first len bytes received on a connection. It
 * returns 0 if more bytes are needed, the request's total size (length field
 * included) if the buffer holds exactly one complete request, or a negative
 * errno if the connection must be closed: -EINVAL for a zero length, -EMSGSIZE
 * for a length above EMI_EPMD_MAX_REQUEST, -EPROTO for bytes past the request. */
long emi_epmd_frame(const uint8_t *buf, size_t len);

/* emi_epmd_handle carries out one complete request (req: n bytes after the
 * length field, n >= 1) from peer, appends the reply to out and says in *res
 * what the caller must do with the connection. Returns 0, or -ENOMEM if the
 * reply could not be built (the caller closes the connection; the table is as
 * before the request). */
int emi_epmd_handle(emi_epmd_state *st, const emi_epmd_peer *peer, const uint8_t *req, size_t n,
                    emi_epmd_out *out, emi_epmd_result *res);

/* emi_epmd_unregister_owner removes the registration held by owner, if any,
 * because its connection closed; returns true if there was one. */
bool emi_epmd_unregister_owner(emi_epmd_state *st, void *owner, const char *why);

/* emi_epmd_valid_name says whether name (len bytes) is acceptable as a node
 * name: 1 to EMI_EPMD_MAX_NAME bytes of well-formed UTF-8 without control
 * characters (NUL, newline, DEL, ...). */
bool emi_epmd_valid_name(const uint8_t *name, size_t len);

/* emi_epmd_out_free releases a reply buffer. */
void emi_epmd_out_free(emi_epmd_out *out);

#endif
