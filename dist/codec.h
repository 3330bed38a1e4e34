/*
 * codec.h - terms to msgpack and back, for messages that cross between nodes.
 *
 * The wire form is msgpack's data model as it is: nil, booleans, integers (a
 * non-negative integer may be packed in any msgpack integer format; it decodes to
 * EM_T_INT when it fits int64_t and to EM_T_UINT above), float64 (float32 is
 * accepted and widened), str, bin, array and map. The three kinds of term msgpack
 * lacks travel as extension types, each payload in network byte order:
 *
 *   ext 1  pid    u32 creation, u32 index, u32 serial, then the node name's bytes
 *   ext 2  ref    u32 creation, u64 counter, then the node name's bytes
 *   ext 3  atom   the atom's UTF-8 bytes (at most 255)
 *
 * A node name is "name@host", 3 to 255 bytes. A pid or a reference of this node
 * is packed with this node's name and creation; one of another node with that
 * node's. Decoding maps (name, creation) back to a node-table index through the
 * emi_codec_nodes the caller gives, so the same code serves the distribution
 * layer, the tests and the fuzzer.
 *
 * Arrays and maps nest at most EMI_CODEC_MAX_DEPTH (31) deep, on both sides.
 * msgpack-c's unpacker reads 32 levels (its MSGPACK_EMBED_STACK_SIZE) and fails
 * the whole buffer past that; distribution sends each term inside one envelope
 * array ([op, from, to, msg]), so 31 is what a term may use. A term that packs is
 * then one the receiver can read, and a deeper one is refused by the sender with
 * EM_EBADTERM instead of failing to parse at the receiver (where msgpack-c cannot
 * skip it, so whatever follows it in the same buffer is lost with it).
 * Neither direction recurses: both walk with an explicit stack of that many
 * frames on the C stack.
 *
 * A receiver should check the sizes a message declares against its length before
 * msgpack-c's unpacker sees it: the unpacker allocates an array's or map's
 * objects (24 bytes each) as soon as it reads the declared count, before any
 * element arrives, so 5 bytes can ask for 96 GiB (tests/fuzz/fuzz_codec.c has
 * such a check).
 */
#ifndef EMBER_DIST_CODEC_H
#define EMBER_DIST_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ember.h"

enum {
    EMI_EXT_PID = 1,
    EMI_EXT_REF = 2,
    EMI_EXT_ATOM = 3,
};

#define EMI_NODE_NAME_MAX 255
/* Containers nested deeper than this are refused (see above). */
#define EMI_CODEC_MAX_DEPTH 31

/* How the codec names nodes. Both callbacks may be called from any thread. */
typedef struct emi_codec_nodes {
    /* node_of: the name (not NUL-terminated) and creation of node-table index idx;
     * idx 0 is this node. False if idx is unknown: the term cannot be packed. */
    bool (*node_of)(void *ctx, uint32_t idx, const char **name, size_t *len, uint32_t *creation);
    /* index_of: the node-table index for (name, creation), 0 when that is this
     * node in its current life, a fresh index for a node not seen before; a
     * negative EM_E* code when the table is full. The name has already passed
     * emi_codec_valid_node_name. */
    int64_t (*index_of)(void *ctx, const char *name, size_t len, uint32_t creation);
    void *ctx;
} emi_codec_nodes;

/* emi_codec_pack packs t with pk. Returns 0, EM_EBADTERM for a malformed term
 * (EM_NONE, a bad immediate or box, a pid with index 0, nesting deeper than
 * EMI_CODEC_MAX_DEPTH), EM_EINVAL for a pid or reference of a node that node_of
 * does not know (or a NULL pk, or NULL nodes when t holds a pid or reference),
 * EM_ETOOBIG for a string or binary of more than UINT32_MAX bytes or an array or
 * map of more than UINT32_MAX elements (msgpack's limits), or EM_ENOMEM when the
 * packer's writer fails. On error the packer's output holds a partial term: the
 * caller discards it. Any thread; t is only read; the codec allocates nothing
 * itself (the writer may). */
int emi_codec_pack(msgpack_packer *pk, em_term t, const emi_codec_nodes *nodes);

/* emi_codec_unpack builds the term that o describes in the calling thread's
 * current heap (the running process's, or the one installed by em_heap_use).
 * Returns 0 and sets *out, or EM_EBADTERM for anything ember cannot represent
 * (an unknown extension type, a malformed ext payload, a bad node name, a pid
 * with index 0 or a serial or index out of range, an atom with a NUL byte or over
 * 255 bytes, nesting deeper than EMI_CODEC_MAX_DEPTH, a NULL pointer with a
 * non-zero size, an unknown object type), EM_ESYSLIMIT when the atom or node
 * table is full (or index_of gives an index above 0xFFFF, which a pid cannot
 * hold), the code index_of returned, EM_ENOMEM, EM_ENOTPROC with no current heap,
 * EM_EINVAL for a NULL o or out (or NULL nodes when o holds a pid or reference).
 * On error the heap is released back to where it was (atoms and node-table
 * entries made meanwhile stay). Never trusts o: sizes, nesting and ext payloads
 * are checked; only the pointers in it are assumed to hold their sizes' bytes,
 * as msgpack-c's unpacker guarantees. Duplicate map keys are merged as em_map
 * does (first key's position, last value). *out is written only on success. */
int emi_codec_unpack(const msgpack_object *o, const emi_codec_nodes *nodes, em_term *out);

/* emi_codec_valid_node_name: 3 to 255 bytes, exactly one '@' with at least one
 * byte either side, no NUL, no control characters or spaces. */
bool emi_codec_valid_node_name(const char *name, size_t len);

/* emi_codec_plausible_prefix: the length of the leading msgpack objects of data
 * whose declared array and map counts fit in the bytes that follow (each element
 * takes at least one byte). msgpack-c allocates for every declared element before
 * reading any, so five hostile bytes could ask it for 96 GiB: a receiver gives it
 * only this prefix. Reads n bytes at most; never allocates. */
size_t emi_codec_plausible_prefix(const void *data, size_t n);

#endif
