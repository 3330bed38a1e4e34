/*
 * epmd_wire.h - what the daemon and the client agree on: the request and reply
 * codes of Erlang's port-mapper protocol, the size limits ember applies, and
 * big-endian field readers and writers.
 *
 * Every request is a 2-byte big-endian length followed by that many bytes, the
 * first of which is the request code. Replies carry no length: the daemon closes
 * the connection after a reply, except after a successful registration, whose
 * connection stays open for as long as the node is registered.
 */
#ifndef EMBER_EPMD_WIRE_H
#define EMBER_EPMD_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* The port a port mapper listens on unless told otherwise. */
#define EMI_EPMD_DEFAULT_PORT 4369

/* Request codes (the first byte after the length). */
#define EMI_EPMD_ALIVE2_REQ 120       /* 'x': register a node */
#define EMI_EPMD_PORT_PLEASE2_REQ 122 /* 'z': look a node up by name */
#define EMI_EPMD_NAMES_REQ 110        /* 'n': list registered names */
#define EMI_EPMD_DUMP_REQ 100         /* 'd': list everything, for debugging */
#define EMI_EPMD_KILL_REQ 107         /* 'k': stop the daemon */
#define EMI_EPMD_STOP_REQ 115         /* 's': forcibly unregister a name */

/* Reply codes. */
#define EMI_EPMD_ALIVE2_X_RESP 118 /* registration result, 32-bit creation */
#define EMI_EPMD_ALIVE2_RESP 121   /* registration result, 16-bit creation */
#define EMI_EPMD_PORT2_RESP 119    /* lookup result */

/* ALIVE2 result codes. Erlang's nodes treat any non-zero result as "name taken";
 * ember's client tells the reasons apart. */
#define EMI_EPMD_RESULT_OK 0
#define EMI_EPMD_RESULT_TAKEN 1   /* the name is registered by a live connection */
#define EMI_EPMD_RESULT_FULL 2    /* the daemon's name table is full */
#define EMI_EPMD_RESULT_INVALID 3 /* the name or the Extra field is not acceptable */

/* Registrations whose highest version is at least this get ALIVE2_X_RESP. */
#define EMI_EPMD_X_RESP_VERSION 6

/* Limits. Names and Extra fields are at most 255 bytes, as in Erlang's epmd, so
 * that a registration accepted by one daemon is accepted by the other. A request
 * longer than EMI_EPMD_MAX_REQUEST cannot be valid and closes the connection. */
#define EMI_EPMD_MAX_NAME 255
#define EMI_EPMD_MAX_EXTRA 255
#define EMI_EPMD_MAX_REQUEST 1024

/* The fixed part of ALIVE2_REQ before the name: code, port, type, protocol,
 * highest and lowest version, name length. */
#define EMI_EPMD_ALIVE2_FIXED 11

static inline uint16_t emi_get16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t emi_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void emi_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void emi_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
