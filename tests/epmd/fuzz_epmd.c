/*
 * fuzz_epmd.c - libFuzzer target for the port mapper's request handling: the
 * input is a script of connections and bytes played through the same framing
 * and handling code the daemon runs (epmd_proto.c), with a small name table so
 * that floods, duplicates and re-registrations are reached quickly.
 *
 * Script: each step takes one byte choosing a connection (low 3 bits) and
 * whether it is local (bit 3) or closes (bit 4), one byte n, then n bytes that
 * arrive on that connection. The invariants checked are the daemon's: a reply
 * only follows a complete request, the table never holds more than its bound
 * or a name that fails validation, and every registration belongs to a
 * connection that is still open.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_log.h"
#include "epmd_proto.h"

#define CONNS 8
#define MAX_NAMES 4

typedef struct fconn {
    uint8_t in[2 + EMI_EPMD_MAX_REQUEST + 1];
    size_t len;
    int open;
    int registered;
} fconn;

static void check(int cond)
{
    if (!cond)
        abort();
}

static void close_conn(emi_epmd_state *st, fconn *c)
{
    emi_epmd_unregister_owner(st, c, "fuzz close");
    c->len = 0;
    c->open = 0;
    c->registered = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fconn conns[CONNS];
    emi_epmd_state st;
    emi_epmd_log_level = -1;
    if (emi_epmd_state_init(&st, 4369, size && (data[0] & 1), MAX_NAMES, 1) < 0)
        return 0;
    memset(conns, 0, sizeof conns);
    emi_epmd_out out = {0};
    size_t i = size ? 1 : 0;
    while (i + 2 <= size) {
        uint8_t ctl = data[i], n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = (uint8_t)(size - i);
        fconn *c = &conns[ctl & (CONNS - 1)];
        if (ctl & 0x10) {
            close_conn(&st, c);
            i += n;
            continue;
        }
        c->open = 1;
        if (c->registered) {
            /* Bytes on a registration end it, as in the daemon. */
            if (n)
                close_conn(&st, c);
            i += n;
            continue;
        }
        size_t room = sizeof c->in - c->len, take = n < room ? n : room;
        memcpy(c->in + c->len, data + i, take);
        c->len += take;
        i += n;
        long f = emi_epmd_frame(c->in, c->len);
        if (f == 0)
            continue;
        if (f < 0) {
            close_conn(&st, c);
            continue;
        }
        check((size_t)f == c->len && f >= 3);
        emi_epmd_peer peer = {.owner = c, .fd = (int)(c - conns), .local = (ctl & 0x08) != 0};
        emi_epmd_result res;
        out.len = 0;
        size_t before = st.table.count;
        if (emi_epmd_handle(&st, &peer, c->in + 2, c->len - 2, &out, &res) < 0) {
            close_conn(&st, c);
            continue;
        }
        check(st.table.count <= MAX_NAMES);
        if (res.action == EMI_EPMD_KEEP) {
            check(peer.local && st.table.count == before + 1 && out.len >= 4 && out.data[1] == 0);
            c->registered = 1;
            c->len = 0;
        } else {
            if (res.stopped) {
                fconn *v = res.stopped;
                check(v >= conns && v < conns + CONNS && v->registered && v != c);
                close_conn(&st, v);
            }
            close_conn(&st, c);
        }
        if (res.action == EMI_EPMD_EXIT)
            check(out.len == 2 && memcmp(out.data, "OK", 2) == 0);
        for (size_t k = 0; k < st.table.count; k++) {
            const emi_epmd_node *nd = st.table.live[k];
            const fconn *owner = nd->owner;
            check(owner >= conns && owner < conns + CONNS && owner->registered);
            check(emi_epmd_valid_name((const uint8_t *)nd->name, nd->name_len));
            check(nd->extra_len <= EMI_EPMD_MAX_EXTRA && nd->name[nd->name_len] == '\0');
        }
    }
    emi_epmd_out_free(&out);
    emi_epmd_state_fini(&st);
    return 0;
}
