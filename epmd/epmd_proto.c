/*
 * epmd_proto.c - framing and handling of port-mapper requests (see
 * epmd_proto.h), following Erlang's "Distribution Protocol" document and the
 * behaviour of Erlang's own epmd where the document is silent:
 *
 *  - registration, DUMP, KILL and STOP are served to local peers only; from
 *    elsewhere the connection is closed without a reply;
 *  - KILL stops the daemon only while no name is registered, unless the daemon
 *    runs with -relaxed_command_check (the reply is "OK" or "NO");
 *  - STOP is ignored (closed without a reply) unless relaxed;
 *  - a malformed or unknown request is closed without a reply.
 *
 * Input is untrusted: every length is checked against what was received before
 * a byte is read, and nothing is written past the reply buffer's size.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_log.h"
#include "epmd_proto.h"

/* How many unregistered names keep their creation for the next incarnation. */
#define OLD_NAMES 256

int emi_epmd_state_init(emi_epmd_state *st, uint16_t port, bool relaxed, size_t max_names,
                        uint64_t seed)
{
    memset(st, 0, sizeof *st);
    st->port = port;
    st->relaxed = relaxed;
    st->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    return emi_epmd_table_init(&st->table, max_names, OLD_NAMES);
}

void emi_epmd_state_fini(emi_epmd_state *st) { emi_epmd_table_fini(&st->table); }

void emi_epmd_out_free(emi_epmd_out *out)
{
    free(out->data);
    memset(out, 0, sizeof *out);
}

long emi_epmd_frame(const uint8_t *buf, size_t len)
{
    if (len < 2)
        return 0;
    size_t want = emi_get16(buf);
    if (want == 0)
        return -EINVAL;
    if (want > EMI_EPMD_MAX_REQUEST)
        return -EMSGSIZE;
    if (len < want + 2)
        return 0;
    if (len > want + 2)
        return -EPROTO;
    return (long)(want + 2);
}

/* Appends len bytes to out; -ENOMEM if it cannot grow. */
static int put(emi_epmd_out *out, const void *p, size_t len)
{
    if (out->len + len > out->cap) {
        size_t cap = out->cap ? out->cap : 64;
        while (cap < out->len + len)
            cap *= 2;
        uint8_t *d = realloc(out->data, cap);
        if (!d)
            return -ENOMEM;
        out->data = d;
        out->cap = cap;
    }
    memcpy(out->data + out->len, p, len);
    out->len += len;
    return 0;
}

/* Appends one printf-formatted line; with_nul adds the NUL that Erlang's epmd
 * puts after each DUMP line. */
static int putf(emi_epmd_out *out, bool with_nul, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int putf(emi_epmd_out *out, bool with_nul, const char *fmt, ...)
{
    char line[EMI_EPMD_MAX_NAME + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return -ENOMEM;
    return put(out, line, (size_t)n + (with_nul ? 1 : 0));
}

bool emi_epmd_valid_name(const uint8_t *s, size_t len)
{
    if (len == 0 || len > EMI_EPMD_MAX_NAME)
        return false;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t extra;
        uint32_t cp;
        /* Control characters are refused as well (Erlang's epmd only refuses
         * NUL): a newline in a name would forge lines in NAMES replies. */
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            extra = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i - 1 < extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (cc & 0x3F);
        }
        /* Overlong forms, UTF-16 surrogates and code points past Unicode's end
         * are not well-formed UTF-8. */
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

static uint32_t next_creation(emi_epmd_state *st)
{
    /* xorshift64*: creations only need to differ between incarnations, not to
     * be secret. */
    uint64_t x = st->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    st->rng = x;
    uint32_t c = (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
    return c ? c : 1;
}

/* The ALIVE2 reply: ALIVE2_X_RESP for nodes that speak version 6, ALIVE2_RESP
 * (creation 1 to 3) for older ones, as Erlang's epmd answers. */
static int alive_reply(emi_epmd_out *out, uint16_t highest, uint8_t result, uint32_t creation)
{
    uint8_t r[6];
    if (highest >= EMI_EPMD_X_RESP_VERSION) {
        r[0] = EMI_EPMD_ALIVE2_X_RESP;
        r[1] = result;
        emi_put32(r + 2, creation);
        return put(out, r, 6);
    }
    r[0] = EMI_EPMD_ALIVE2_RESP;
    r[1] = result;
    emi_put16(r + 2, (uint16_t)(result ? 0 : creation % 3 + 1));
    return put(out, r, 4);
}

static int do_alive2(emi_epmd_state *st, const emi_epmd_peer *peer, const uint8_t *req, size_t n,
                     emi_epmd_out *out, emi_epmd_result *res)
{
    char name_txt[4 * EMI_EPMD_MAX_NAME + 1], extra_txt[4 * EMI_EPMD_MAX_EXTRA + 1];
    if (!peer->local) {
        emi_epmd_log(0, "refused registration from a non-local peer (fd %d)", peer->fd);
        return 0;
    }
    if (n < EMI_EPMD_ALIVE2_FIXED) {
        emi_epmd_log(1, "malformed ALIVE2_REQ: %zu bytes (fd %d)", n, peer->fd);
        return 0;
    }
    emi_epmd_node node;
    memset(&node, 0, sizeof node);
    node.port = emi_get16(req + 1);
    node.type = req[3];
    node.protocol = req[4];
    node.highest = emi_get16(req + 5);
    node.lowest = emi_get16(req + 7);
    size_t nlen = emi_get16(req + 9);
    if (n < EMI_EPMD_ALIVE2_FIXED + nlen + 2) {
        emi_epmd_log(1, "malformed ALIVE2_REQ: name of %zu bytes in %zu (fd %d)", nlen, n,
                     peer->fd);
        return 0;
    }
    const uint8_t *name = req + EMI_EPMD_ALIVE2_FIXED;
    size_t elen = emi_get16(name + nlen);
    const uint8_t *extra = name + nlen + 2;
    if (n < EMI_EPMD_ALIVE2_FIXED + nlen + 2 + elen) {
        emi_epmd_log(1, "malformed ALIVE2_REQ: extra of %zu bytes in %zu (fd %d)", elen, n,
                     peer->fd);
        return 0;
    }
    emi_epmd_escape(name_txt, sizeof name_txt, name, nlen);
    if (!emi_epmd_valid_name(name, nlen) || elen > EMI_EPMD_MAX_EXTRA) {
        emi_epmd_log(0, "refused registration of \"%s\": invalid name or extra (%zu and %zu bytes)",
                     name_txt, nlen, elen);
        return alive_reply(out, node.highest, EMI_EPMD_RESULT_INVALID, 0);
    }
    memcpy(node.name, name, nlen);
    node.name_len = nlen;
    memcpy(node.extra, extra, elen);
    node.extra_len = elen;
    node.owner = peer->owner;
    node.fd = peer->fd;

    /* The reply is sized before the table changes, so that running out of
     * memory for it leaves the table as it was. */
    if (put(out, "\0\0\0\0\0\0", 6) < 0)
        return -ENOMEM;
    out->len -= 6;
    emi_epmd_node *added;
    int rc = emi_epmd_table_add(&st->table, &node, next_creation(st), &added);
    if (rc == -EEXIST || rc == -ENOSPC) {
        emi_epmd_log(0, "refused registration of \"%s\" on port %u: %s", name_txt, node.port,
                     rc == -EEXIST ? "the name is taken" : "the name table is full");
        return alive_reply(out, node.highest,
                           rc == -EEXIST ? EMI_EPMD_RESULT_TAKEN : EMI_EPMD_RESULT_FULL, 0);
    }
    if (rc < 0)
        return rc;
    emi_epmd_log(0,
                 "registered \"%s\" on port %u, creation %u, type %u, protocol %u, versions %u-%u, "
                 "extra \"%s\" (fd %d)",
                 name_txt, added->port, (unsigned)added->creation, added->type, added->protocol,
                 added->lowest, added->highest,
                 emi_epmd_escape(extra_txt, sizeof extra_txt, extra, elen), peer->fd);
    res->action = EMI_EPMD_KEEP;
    return alive_reply(out, added->highest, EMI_EPMD_RESULT_OK, added->creation);
}

/* The name in a PORT_PLEASE2 or STOP request: the bytes after the code, less
 * one trailing NUL that old clients send. Returns false if it is no valid name. */
static bool request_name(const uint8_t *req, size_t n, const uint8_t **name, size_t *len)
{
    *name = req + 1;
    *len = n - 1;
    if (*len && (*name)[*len - 1] == 0)
        (*len)--;
    return emi_epmd_valid_name(*name, *len);
}

static int do_port_please(emi_epmd_state *st, const emi_epmd_peer *peer, const uint8_t *req,
                          size_t n, emi_epmd_out *out)
{
    const uint8_t *name;
    size_t len;
    char txt[4 * EMI_EPMD_MAX_NAME + 1];
    if (!request_name(req, n, &name, &len)) {
        emi_epmd_log(1, "malformed PORT_PLEASE2_REQ (fd %d)", peer->fd);
        return 0;
    }
    emi_epmd_escape(txt, sizeof txt, name, len);
    const emi_epmd_node *node = emi_epmd_table_find(&st->table, (const char *)name, len);
    uint8_t r[12 + EMI_EPMD_MAX_NAME + 2 + EMI_EPMD_MAX_EXTRA];
    r[0] = EMI_EPMD_PORT2_RESP;
    if (!node) {
        emi_epmd_log(1, "PORT_PLEASE2_REQ for \"%s\": not registered (fd %d)", txt, peer->fd);
        r[1] = 1;
        return put(out, r, 2);
    }
    emi_epmd_log(1, "PORT_PLEASE2_REQ for \"%s\": port %u (fd %d)", txt, node->port, peer->fd);
    r[1] = 0;
    emi_put16(r + 2, node->port);
    r[4] = node->type;
    r[5] = node->protocol;
    emi_put16(r + 6, node->highest);
    emi_put16(r + 8, node->lowest);
    emi_put16(r + 10, (uint16_t)node->name_len);
    memcpy(r + 12, node->name, node->name_len);
    size_t o = 12 + node->name_len;
    emi_put16(r + o, (uint16_t)node->extra_len);
    memcpy(r + o + 2, node->extra, node->extra_len);
    return put(out, r, o + 2 + node->extra_len);
}

static int do_names(emi_epmd_state *st, const emi_epmd_peer *peer, bool dump, emi_epmd_out *out)
{
    if (dump && !peer->local) {
        emi_epmd_log(0, "refused DUMP_REQ from a non-local peer (fd %d)", peer->fd);
        return 0;
    }
    emi_epmd_log(1, "%s (fd %d)", dump ? "DUMP_REQ" : "NAMES_REQ", peer->fd);
    uint8_t port[4];
    emi_put32(port, st->port);
    int rc = put(out, port, 4);
    const emi_epmd_table *t = &st->table;
    for (size_t i = 0; rc == 0 && i < t->count; i++) {
        const emi_epmd_node *nd = t->live[i];
        if (dump)
            rc = putf(out, true, "active name     <%s> at port %u, fd = %d\n", nd->name, nd->port,
                      nd->fd);
        else
            rc = putf(out, false, "name %s at port %u\n", nd->name, nd->port);
    }
    for (size_t i = 0; dump && rc == 0 && i < t->old_max; i++) {
        const emi_epmd_old *o = &t->old[i];
        if (o->name_len)
            rc = putf(out, true, "old/unused name <%s>, port = %u, fd = -1 \n", o->name, o->port);
    }
    return rc;
}

static int do_kill(emi_epmd_state *st, const emi_epmd_peer *peer, emi_epmd_out *out,
                   emi_epmd_result *res)
{
    if (!peer->local) {
        emi_epmd_log(0, "refused KILL_REQ from a non-local peer (fd %d)", peer->fd);
        return 0;
    }
    if (st->table.count && !st->relaxed) {
        emi_epmd_log(0, "refused KILL_REQ: %zu names registered and no -relaxed_command_check",
                     st->table.count);
        return put(out, "NO", 2);
    }
    emi_epmd_log(0, "stopping: KILL_REQ (fd %d)", peer->fd);
    res->action = EMI_EPMD_EXIT;
    return put(out, "OK", 2);
}

static int do_stop(emi_epmd_state *st, const emi_epmd_peer *peer, const uint8_t *req, size_t n,
                   emi_epmd_out *out, emi_epmd_result *res)
{
    const uint8_t *name;
    size_t len;
    char txt[4 * EMI_EPMD_MAX_NAME + 1];
    if (!peer->local || !st->relaxed) {
        emi_epmd_log(0, "refused STOP_REQ (fd %d): %s", peer->fd,
                     peer->local ? "no -relaxed_command_check" : "non-local peer");
        return 0;
    }
    if (!request_name(req, n, &name, &len)) {
        emi_epmd_log(1, "malformed STOP_REQ (fd %d)", peer->fd);
        return 0;
    }
    emi_epmd_escape(txt, sizeof txt, name, len);
    emi_epmd_node *node = emi_epmd_table_find(&st->table, (const char *)name, len);
    if (!node) {
        emi_epmd_log(1, "STOP_REQ for \"%s\": not registered (fd %d)", txt, peer->fd);
        return put(out, "NOEXIST", 7);
    }
    if (put(out, "STOPPED", 7) < 0)
        return -ENOMEM;
    emi_epmd_log(0, "unregistered \"%s\" (port %u, fd %d): STOP_REQ (fd %d)", txt, node->port,
                 node->fd, peer->fd);
    res->stopped = node->owner;
    emi_epmd_table_remove(&st->table, node);
    return 0;
}

int emi_epmd_handle(emi_epmd_state *st, const emi_epmd_peer *peer, const uint8_t *req, size_t n,
                    emi_epmd_out *out, emi_epmd_result *res)
{
    res->action = EMI_EPMD_CLOSE;
    res->stopped = NULL;
    if (n == 0)
        return 0;
    size_t before = out->len;
    int rc;
    switch (req[0]) {
    case EMI_EPMD_ALIVE2_REQ:
        rc = do_alive2(st, peer, req, n, out, res);
        break;
    case EMI_EPMD_PORT_PLEASE2_REQ:
        rc = do_port_please(st, peer, req, n, out);
        break;
    case EMI_EPMD_NAMES_REQ:
        rc = do_names(st, peer, false, out);
        break;
    case EMI_EPMD_DUMP_REQ:
        rc = do_names(st, peer, true, out);
        break;
    case EMI_EPMD_KILL_REQ:
        rc = do_kill(st, peer, out, res);
        break;
    case EMI_EPMD_STOP_REQ:
        rc = do_stop(st, peer, req, n, out, res);
        break;
    default:
        emi_epmd_log(1, "unknown request code %u (%zu bytes, fd %d)", req[0], n, peer->fd);
        rc = 0;
        break;
    }
    if (rc < 0) {
        /* A half-built reply is never sent; a registration made before the
         * failure would outlive a connection about to be closed. */
        out->len = before;
        if (res->action == EMI_EPMD_KEEP)
            emi_epmd_unregister_owner(st, peer->owner, "out of memory");
        res->action = EMI_EPMD_CLOSE;
        res->stopped = NULL;
    }
    return rc;
}

bool emi_epmd_unregister_owner(emi_epmd_state *st, void *owner, const char *why)
{
    emi_epmd_node *node = emi_epmd_table_find_owner(&st->table, owner);
    if (!node)
        return false;
    char txt[4 * EMI_EPMD_MAX_NAME + 1];
    emi_epmd_log(0, "unregistered \"%s\" (port %u, fd %d): %s",
                 emi_epmd_escape(txt, sizeof txt, node->name, node->name_len), node->port, node->fd,
                 why);
    emi_epmd_table_remove(&st->table, node);
    return true;
}
