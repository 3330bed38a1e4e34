/*
 * codec.c - terms to msgpack and back (codec.h has the wire form).
 *
 * Both directions sit on the path of every remote send, so neither mallocs for a
 * small term and neither recurses: each walks the term with an explicit stack of
 * at most EMI_CODEC_MAX_DEPTH frames kept on the C stack. Packing writes straight
 * through the caller's msgpack_packer. Unpacking builds children before their
 * container (the builders take finished items), so the children of the containers
 * being built wait on a value stack that starts on the C stack and moves to
 * malloc'd memory only for large arrays and maps.
 */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mem/heap.h"
#include "term/term_int.h"

/* Fixed part of the pid and ref payloads, before the node name. */
#define PID_FIXED 12   /* creation, index, serial */
#define REF_FIXED 12   /* creation, counter */
#define NODE_NAME_MIN 3
#define PID_INDEX_MAX 0x0FFFFFFFu
#define PID_SERIAL_MAX 0xFFFFFu
#define NODE_INDEX_MAX 0xFFFFu   /* a pid holds the node index in 16 bits */
_Static_assert(PID_FIXED == REF_FIXED, "pack_node_ext sizes one buffer for both");

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v >> 32));
    put_u32(p + 4, (uint32_t)v);
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

bool emi_codec_valid_node_name(const char *name, size_t len)
{
    if (!name || len < NODE_NAME_MIN || len > EMI_NODE_NAME_MAX)
        return false;
    size_t at = 0, ats = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        /* NUL, control characters, space and DEL would break logs, the names'
         * text form and C strings made from them. */
        if (c <= ' ' || c == 0x7F)
            return false;
        if (c == '@') {
            at = i;
            ats++;
        }
    }
    return ats == 1 && at > 0 && at < len - 1;
}

/* ------------------------------------------------------------- packing */

/* The writer's return value is what msgpack_pack_* return; any failure of the
 * caller's buffer is taken as memory running out. */
#define WRITE(call)                                                                          \
    do {                                                                                      \
        if ((call) != 0)                                                                      \
            return EM_ENOMEM;                                                                 \
    } while (0)

/* Packs the ext header and fixed part of a pid or ref, then the node's name. */
static int pack_node_ext(msgpack_packer *pk, int8_t type, const unsigned char *fixed,
                         size_t nfixed, uint64_t node, const emi_codec_nodes *nodes)
{
    const char *name;
    size_t len;
    uint32_t creation;
    if (!nodes || node > UINT32_MAX ||
        !nodes->node_of(nodes->ctx, (uint32_t)node, &name, &len, &creation))
        return EM_EINVAL;
    /* The table checked the name when the node joined; only the bounds matter
     * here, so that the payload size cannot be wrong. */
    if (!name || len < NODE_NAME_MIN || len > EMI_NODE_NAME_MAX)
        return EM_EINVAL;
    unsigned char head[PID_FIXED];
    put_u32(head, creation);
    memcpy(head + 4, fixed, nfixed);
    WRITE(msgpack_pack_ext(pk, 4 + nfixed + len, type));
    WRITE(msgpack_pack_ext_body(pk, head, 4 + nfixed));
    WRITE(msgpack_pack_ext_body(pk, name, len));
    return 0;
}

/* Packs a term that is not a container, or the header of one. */
static int pack_box(msgpack_packer *pk, em_term t, const emi_codec_nodes *nodes)
{
    const uint64_t *b = emi_box(t);
    uint64_t size = emi_box_size(t);
    unsigned char fixed[8];
    double d;
    switch (emi_box_type(t)) {
    case BOX_INT:
        WRITE(msgpack_pack_int64(pk, (int64_t)b[1]));
        return 0;
    case BOX_UINT:
        WRITE(msgpack_pack_uint64(pk, b[1]));
        return 0;
    case BOX_FLOAT:
        memcpy(&d, &b[1], sizeof d);
        WRITE(msgpack_pack_double(pk, d));
        return 0;
    case BOX_STR:
        if (size > UINT32_MAX)
            return EM_ETOOBIG;
        WRITE(msgpack_pack_str(pk, size));
        WRITE(msgpack_pack_str_body(pk, b + 1, size));
        return 0;
    case BOX_BIN:
    case BOX_REFBIN: {
        const void *data;
        size_t len;
        em_get_bin(t, &data, &len);
        if (len > UINT32_MAX)
            return EM_ETOOBIG;
        WRITE(msgpack_pack_bin(pk, len));
        WRITE(msgpack_pack_bin_body(pk, data, len));
        return 0;
    }
    case BOX_ARRAY:
        if (size > UINT32_MAX)
            return EM_ETOOBIG;
        WRITE(msgpack_pack_array(pk, size));
        return 0;
    case BOX_MAP:
        if (size > UINT32_MAX)
            return EM_ETOOBIG;
        WRITE(msgpack_pack_map(pk, size));
        return 0;
    case BOX_PID: {
        em_pid_t p = b[1];
        /* Index 0 names no process: the receiver would refuse the whole message,
         * so the sender learns it here instead. */
        if (em_pid_index(p) == 0)
            return EM_EBADTERM;
        put_u32(fixed, em_pid_index(p));
        put_u32(fixed + 4, em_pid_serial(p));
        return pack_node_ext(pk, EMI_EXT_PID, fixed, 8, em_pid_node(p), nodes);
    }
    case BOX_REF:
        put_u64(fixed, b[2]);
        return pack_node_ext(pk, EMI_EXT_REF, fixed, 8, b[1], nodes);
    default:
        return EM_EBADTERM;
    }
}

static int pack_immediate(msgpack_packer *pk, em_term t)
{
    if (emi_is_small(t)) {
        WRITE(msgpack_pack_int64(pk, emi_small_value(t)));
        return 0;
    }
    if (t == EM_NIL) {
        WRITE(msgpack_pack_nil(pk));
        return 0;
    }
    if (t == EM_TRUE) {
        WRITE(msgpack_pack_true(pk));
        return 0;
    }
    if (t == EM_FALSE) {
        WRITE(msgpack_pack_false(pk));
        return 0;
    }
    if (!emi_is_atom(t))
        return EM_EBADTERM;   /* EM_NONE among them */
    size_t len;
    const char *name = emi_atom_str(emi_atom_index(t), &len);
    if (!name)
        return EM_EBADTERM;
    WRITE(msgpack_pack_ext(pk, len, EMI_EXT_ATOM));
    WRITE(msgpack_pack_ext_body(pk, name, len));
    return 0;
}

/* A container being packed: its child slots (a map's are k0, v0, k1, v1...). */
typedef struct pframe {
    const em_term *items;
    uint64_t i, n;
} pframe;

int emi_codec_pack(msgpack_packer *pk, em_term t, const emi_codec_nodes *nodes)
{
    if (!pk)
        return EM_EINVAL;
    pframe st[EMI_CODEC_MAX_DEPTH];
    size_t sp = 0;
    for (;;) {
        int r;
        if (!emi_is_box(t)) {
            r = pack_immediate(pk, t);
        } else {
            unsigned type = emi_box_type(t);
            bool container = type == BOX_ARRAY || type == BOX_MAP;
            /* t's depth is sp + 1: the stack holds the containers around it. */
            if (container && sp == EMI_CODEC_MAX_DEPTH)
                return EM_EBADTERM;
            r = pack_box(pk, t, nodes);
            if (r == 0 && container && emi_box_size(t) > 0)
                st[sp++] = (pframe){(const em_term *)emi_box(t) + 1, 0,
                                    emi_box_size(t) * (type == BOX_MAP ? 2 : 1)};
        }
        if (r < 0)
            return r;
        while (sp && st[sp - 1].i == st[sp - 1].n)
            sp--;
        if (!sp)
            return 0;
        t = st[sp - 1].items[st[sp - 1].i++];
    }
}

/* ----------------------------------------------------------- unpacking */

/* Maps (name, creation) to a node-table index a pid or ref can hold. */
static int64_t node_index(const emi_codec_nodes *nodes, const unsigned char *name, size_t len,
                          uint32_t creation)
{
    if (!nodes)
        return EM_EINVAL;
    if (!emi_codec_valid_node_name((const char *)name, len))
        return EM_EBADTERM;
    int64_t idx = nodes->index_of(nodes->ctx, (const char *)name, len, creation);
    if (idx < 0)
        return idx;
    return idx > NODE_INDEX_MAX ? EM_ESYSLIMIT : idx;
}

static int unpack_ext(const msgpack_object_ext *e, const emi_codec_nodes *nodes, em_term *out)
{
    const unsigned char *p = (const unsigned char *)e->ptr;
    if (e->size && !p)
        return EM_EBADTERM;
    switch (e->type) {
    case EMI_EXT_PID: {
        if (e->size < PID_FIXED + NODE_NAME_MIN || e->size > PID_FIXED + EMI_NODE_NAME_MAX)
            return EM_EBADTERM;
        uint32_t index = get_u32(p + 4), serial = get_u32(p + 8);
        if (index == 0 || index > PID_INDEX_MAX || serial > PID_SERIAL_MAX)
            return EM_EBADTERM;
        int64_t node = node_index(nodes, p + PID_FIXED, e->size - PID_FIXED, get_u32(p));
        if (node < 0)
            return (int)node;
        *out = em_pid((uint64_t)node << 48 | (uint64_t)serial << 28 | index);
        break;
    }
    case EMI_EXT_REF: {
        if (e->size < REF_FIXED + NODE_NAME_MIN || e->size > REF_FIXED + EMI_NODE_NAME_MAX)
            return EM_EBADTERM;
        int64_t node = node_index(nodes, p + REF_FIXED, e->size - REF_FIXED, get_u32(p));
        if (node < 0)
            return (int)node;
        *out = emi_ref_box(emi_heap_current(), (uint64_t)node, get_u64(p + 4));
        break;
    }
    case EMI_EXT_ATOM: {
        if (e->size > 255)
            return EM_EBADTERM;
        /* The intern call tells a refused name (a NUL byte) from a full table,
         * which em_atomn's EM_NONE does not. */
        int64_t idx = emi_atom_intern(e->size ? e->ptr : "", e->size);
        if (idx < 0)
            return idx == EM_EINVAL ? EM_EBADTERM : (int)idx;
        *out = emi_make_atom((uint32_t)idx);
        return 0;
    }
    default:
        return EM_EBADTERM;
    }
    return *out == EM_NONE ? EM_ENOMEM : 0;
}

/* Builds a term that is not a container. */
static int unpack_leaf(const msgpack_object *o, const emi_codec_nodes *nodes, em_term *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        *out = EM_NIL;
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        *out = em_bool(o->via.boolean);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = em_uint(o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = em_int(o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:   /* msgpack-c widens it into f64 already */
    case MSGPACK_OBJECT_FLOAT64:
        *out = em_float(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        if (o->via.str.size && !o->via.str.ptr)
            return EM_EBADTERM;
        *out = em_strn(o->via.str.ptr, o->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        if (o->via.bin.size && !o->via.bin.ptr)
            return EM_EBADTERM;
        *out = em_bin(o->via.bin.ptr, o->via.bin.size);
        break;
    case MSGPACK_OBJECT_EXT:
        return unpack_ext(&o->via.ext, nodes, out);
    default:
        return EM_EBADTERM;
    }
    return *out == EM_NONE ? EM_ENOMEM : 0;
}

/* A container being unpacked: its children so far sit on the value stack from
 * base on. A map's n counts keys and values. */
typedef struct uframe {
    const msgpack_object *o;
    uint64_t i, n;
    size_t base;
} uframe;

#define VALUES_LOCAL 64

/* The i-th child of container f (a map's keys and values alternate). */
static const msgpack_object *child(const uframe *f, uint64_t i)
{
    if (f->o->type == MSGPACK_OBJECT_ARRAY)
        return &f->o->via.array.ptr[i];
    const msgpack_object_kv *kv = &f->o->via.map.ptr[i / 2];
    return i % 2 ? &kv->val : &kv->key;
}

/* Sets up the frame of container o, or returns EM_EBADTERM for a NULL array. */
static int frame_init(uframe *f, const msgpack_object *o, size_t base)
{
    f->o = o;
    f->i = 0;
    f->base = base;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        f->n = o->via.array.size;
        return f->n && !o->via.array.ptr ? EM_EBADTERM : 0;
    }
    f->n = 2 * (uint64_t)o->via.map.size;
    return f->n && !o->via.map.ptr ? EM_EBADTERM : 0;
}

static bool is_container(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP;
}

static int unpack_tree(const msgpack_object *o, const emi_codec_nodes *nodes, em_term *out)
{
    uframe st[EMI_CODEC_MAX_DEPTH];
    em_term local[VALUES_LOCAL], *vals = local;
    size_t sp = 0, nv = 0, cap = VALUES_LOCAL;
    int r = frame_init(&st[sp++], o, 0);
    while (r == 0) {
        uframe *f = &st[sp - 1];
        em_term t;
        if (f->i == f->n) {
            /* Every child is built: build the container from them. */
            size_t n = (size_t)f->n;
            t = f->o->type == MSGPACK_OBJECT_ARRAY ? em_array(n, vals + f->base)
                                                   : em_map(n / 2, vals + f->base);
            if (t == EM_NONE) {
                r = EM_ENOMEM;
                break;
            }
            nv = f->base;
            if (--sp == 0) {
                *out = t;
                break;
            }
        } else {
            const msgpack_object *c = child(f, f->i++);
            if (is_container(c)) {
                if (sp == EMI_CODEC_MAX_DEPTH)
                    r = EM_EBADTERM;
                else
                    r = frame_init(&st[sp++], c, nv);
                continue;
            }
            r = unpack_leaf(c, nodes, &t);
            if (r < 0)
                break;
        }
        if (nv == cap) {
            em_term *g = emi_walk_stack_grow(vals, local, &cap, sizeof *vals);
            if (!g) {
                r = EM_ENOMEM;
                break;
            }
            vals = g;
        }
        vals[nv++] = t;
    }
    if (vals != local)
        free(vals);
    return r;
}

int emi_codec_unpack(const msgpack_object *o, const emi_codec_nodes *nodes, em_term *out)
{
    if (!o || !out)
        return EM_EINVAL;
    struct em_heap *h = emi_heap_current();
    if (!h)
        return EM_ENOTPROC;
    /* Whatever a failed build left in the heap goes back, so a peer sending bad
     * messages cannot make a process's heap grow. */
    em_mark m = emi_heap_mark(h);
    int r = is_container(o) ? unpack_tree(o, nodes, out) : unpack_leaf(o, nodes, out);
    if (r < 0)
        emi_heap_release(h, m);
    return r;
}

/* -------------------------------------------------- before msgpack-c */

static bool take(const uint8_t *p, size_t n, size_t *i, size_t bytes, uint64_t *v)
{
    if (n - *i < bytes)
        return false;
    *v = 0;
    for (size_t k = 0; k < bytes; k++)
        *v = *v << 8 | p[(*i)++];
    return true;
}

/* msgpack-c allocates 24 bytes for each element an array or map header declares
 * before any element arrives, so a few bytes can ask for gigabytes and the
 * receiver would try to (codec.h).
 * This returns the length of the leading objects of p whose declared counts
 * fit in the bytes that follow (each element takes at least one byte); the rest
 * of the input is not given to msgpack-c. */
size_t emi_codec_plausible_prefix(const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        uint64_t need = 1, v;
        while (need > 0) {
            if (i == n)
                return n;   /* truncated: msgpack-c stops there by itself */
            uint8_t c = p[i++];
            need--;
            uint64_t count = 0, skip = 0;
            size_t lenbytes = 0;
            if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
                /* no payload */
            } else if (c <= 0x8f) {
                count = 2u * (c & 0x0f);
            } else if (c <= 0x9f) {
                count = c & 0x0f;
            } else if (c <= 0xbf) {
                skip = c & 0x1f;
            } else {
                switch (c) {
                case 0xc4: case 0xd9: lenbytes = 1; break;
                case 0xc5: case 0xda: lenbytes = 2; break;
                case 0xc6: case 0xdb: lenbytes = 4; break;
                case 0xc7: lenbytes = 1; skip = 1; break;
                case 0xc8: lenbytes = 2; skip = 1; break;
                case 0xc9: lenbytes = 4; skip = 1; break;
                case 0xca: skip = 4; break;
                case 0xcb: skip = 8; break;
                case 0xcc: case 0xd0: skip = 1; break;
                case 0xcd: case 0xd1: skip = 2; break;
                case 0xce: case 0xd2: skip = 4; break;
                case 0xcf: case 0xd3: skip = 8; break;
                case 0xd4: skip = 2; break;
                case 0xd5: skip = 3; break;
                case 0xd6: skip = 5; break;
                case 0xd7: skip = 9; break;
                case 0xd8: skip = 17; break;
                case 0xdc: case 0xde:   /* array 16, map 16 */
                case 0xdd: case 0xdf:   /* array 32, map 32 */
                    if (!take(p, n, &i, c == 0xdc || c == 0xde ? 2 : 4, &v))
                        return n;
                    count = c >= 0xde ? 2 * v : v;
                    break;
                default:
                    return n;   /* 0xc1: msgpack-c refuses it without allocating */
                }
            }
            if (lenbytes) {
                if (!take(p, n, &i, lenbytes, &v))
                    return n;
                skip += v;
            }
            if (need + count > n - i)
                return start;
            need += count;
            if (skip > n - i)
                return n;
            i += (size_t)skip;
        }
    }
    return n;
}
