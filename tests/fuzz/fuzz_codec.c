/*
 * fuzz_codec.c - libFuzzer target for the msgpack term codec (dist/codec.c).
 *
 * Each input is read as a run of msgpack objects, as a frame from a peer would
 * be. Every object msgpack-c accepts goes through emi_codec_unpack; every term
 * that decodes must pack again, and the packed bytes must decode to an equal
 * term and pack to the very same bytes. A failure of any of these is a bug in
 * the codec (or the term builders), so it aborts for libFuzzer to report; a
 * refusal of the first decode is the codec doing its job.
 *
 * Terms live in a heap made per input and freed after it, so nothing carries
 * over between inputs except atoms, which are interned for good by design.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "codec.h"
#include "ember.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* --------------------------------------------------- a node table */

#define TABLE_CAP 64

typedef struct node {
    char name[EMI_NODE_NAME_MAX];
    size_t len;
    uint32_t creation;
} node;

/* Node 0 is this node; others are added as inputs name them, until the table is
 * full (the codec must then answer EM_ESYSLIMIT, which is not a bug). */
static node table[TABLE_CAP];
static size_t table_len;

static void table_reset(void)
{
    static const char self[] = "fuzz@host";
    memcpy(table[0].name, self, sizeof self - 1);
    table[0].len = sizeof self - 1;
    table[0].creation = 1;
    table_len = 1;
}

static bool node_of(void *ctx, uint32_t idx, const char **name, size_t *len, uint32_t *creation)
{
    (void)ctx;
    if (idx >= table_len)
        return false;
    *name = table[idx].name;
    *len = table[idx].len;
    *creation = table[idx].creation;
    return true;
}

static int64_t index_of(void *ctx, const char *name, size_t len, uint32_t creation)
{
    (void)ctx;
    /* The codec promises a checked name; hold it to that. */
    if (!emi_codec_valid_node_name(name, len)) {
        fprintf(stderr, "fuzz_codec: index_of given an invalid node name\n");
        abort();
    }
    for (size_t i = 0; i < table_len; i++)
        if (table[i].len == len && table[i].creation == creation &&
            memcmp(table[i].name, name, len) == 0)
            return (int64_t)i;
    if (table_len == TABLE_CAP)
        return EM_ESYSLIMIT;
    memcpy(table[table_len].name, name, len);
    table[table_len].len = len;
    table[table_len].creation = creation;
    return (int64_t)table_len++;
}

static const emi_codec_nodes nodes = {node_of, index_of, NULL};

/* ---------------------------------------- what msgpack-c may be given */

/* ------------------------------------------------------- the target */

/* code: the EM_E* code that came with the failure, 0 if none. */
static void fail(const char *what, int code)
{
    if (code)
        fprintf(stderr, "fuzz_codec: %s (%d: %s)\n", what, code, em_strerror(code));
    else
        fprintf(stderr, "fuzz_codec: %s\n", what);
    abort();
}

/* Packs t into sb (emptied first); any error is a bug, since t was decoded. */
static void pack_or_die(msgpack_sbuffer *sb, em_term t)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int r = emi_codec_pack(&pk, t, &nodes);
    if (r != 0)
        fail("a decoded term does not pack", r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size = emi_codec_plausible_prefix(data, size);
    em_heap *h = em_heap_new();
    if (!h)
        return 0;
    em_heap_use(h);
    table_reset();

    msgpack_unpacked in, again;
    msgpack_unpacked_init(&in);
    msgpack_unpacked_init(&again);
    msgpack_sbuffer first, second;
    msgpack_sbuffer_init(&first);
    msgpack_sbuffer_init(&second);
    size_t off = 0;
    while (msgpack_unpack_next(&in, (const char *)data, size, &off) == MSGPACK_UNPACK_SUCCESS) {
        em_term t, u;
        size_t held = em_heap_bytes();
        int r = emi_codec_unpack(&in.data, &nodes, &t);
        if (r != 0) {
            /* A refusal names the input's fault (or the full table) and leaves
             * nothing behind in the heap. */
            if (r != EM_EBADTERM && r != EM_ESYSLIMIT)
                fail("a refusal with an unexpected code", r);
            if (em_heap_bytes() != held)
                fail("a refused decode kept heap memory", 0);
            continue;
        }
        pack_or_die(&first, t);

        size_t off2 = 0;
        int ur = msgpack_unpack_next(&again, first.data, first.size, &off2);
        if (ur != MSGPACK_UNPACK_SUCCESS || off2 != first.size) {
            fprintf(stderr, "fuzz_codec: msgpack-c reads back %d at %zu of %zu packed bytes\n",
                    ur, off2, first.size);
            abort();
        }
        r = emi_codec_unpack(&again.data, &nodes, &u);
        if (r != 0)
            fail("the codec does not decode what it packed", r);
        if (!em_equal(t, u))
            fail("the decoded term changed across a round trip", 0);

        pack_or_die(&second, u);
        if (second.size != first.size || memcmp(second.data, first.data, first.size) != 0)
            fail("packing is not stable across a round trip", 0);
    }
    msgpack_sbuffer_destroy(&first);
    msgpack_sbuffer_destroy(&second);
    msgpack_unpacked_destroy(&in);
    msgpack_unpacked_destroy(&again);
    em_heap_use(NULL);
    em_heap_free(h);
    return 0;
}
