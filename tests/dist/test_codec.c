/*
 * test_codec.c - the msgpack term codec of distribution (dist/codec.c): round
 * trips of every kind of term, the exact wire form of pids, refs and atoms, and
 * the refusal of every malformed input the codec can be given.
 *
 * Runs outside any process: each test installs a fresh heap with em_heap_use. A
 * small fake node table stands in for distribution's.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "check.h"
#include "codec.h"
#include "ember.h"
#include "mem/heap.h"
#include "term/term_int.h"

/* ------------------------------------------------------ the fake table */

#define SELF_NAME "self@host"
#define SELF_CREATION 7u
#define FAKE_CAP 8

typedef struct fake_node {
    char name[EMI_NODE_NAME_MAX];
    size_t len;
    uint32_t creation;
} fake_node;

/* Index 0 is this node; index_of adds a node it has not seen, as distribution's
 * table does, until it is full. force_index, when not 0, is what index_of
 * returns instead (to test how the codec takes a bad answer). */
typedef struct fake_table {
    fake_node n[FAKE_CAP];
    size_t count;
    int64_t force_index;
    int lookups;
} fake_table;

static bool fake_node_of(void *ctx, uint32_t idx, const char **name, size_t *len,
                         uint32_t *creation)
{
    fake_table *t = ctx;
    if (idx >= t->count)
        return false;
    *name = t->n[idx].name;
    *len = t->n[idx].len;
    *creation = t->n[idx].creation;
    return true;
}

static int64_t fake_index_of(void *ctx, const char *name, size_t len, uint32_t creation)
{
    fake_table *t = ctx;
    t->lookups++;
    if (t->force_index)
        return t->force_index;
    for (size_t i = 0; i < t->count; i++)
        if (t->n[i].len == len && memcmp(t->n[i].name, name, len) == 0 &&
            t->n[i].creation == creation)
            return (int64_t)i;
    if (t->count == FAKE_CAP)
        return EM_ESYSLIMIT;
    /* A node not seen before, or this node's name in an earlier life. */
    memcpy(t->n[t->count].name, name, len);
    t->n[t->count].len = len;
    t->n[t->count].creation = creation;
    return (int64_t)t->count++;
}

static void fake_add(fake_table *t, const char *name, uint32_t creation)
{
    size_t len = strlen(name);
    memcpy(t->n[t->count].name, name, len);
    t->n[t->count].len = len;
    t->n[t->count].creation = creation;
    t->count++;
}

static fake_table table;
static emi_codec_nodes nodes = {fake_node_of, fake_index_of, &table};

/* The table every test starts with: self at 0, other@host at 1, third@host at 2. */
static int setup(void **state)
{
    memset(&table, 0, sizeof table);
    fake_add(&table, SELF_NAME, SELF_CREATION);
    fake_add(&table, "other@host", 3);
    fake_add(&table, "third@host", 1);
    return heap_setup(state);
}

#define CODEC_TEST(f) cmocka_unit_test_setup_teardown(f, setup, heap_teardown)

/* ------------------------------------------------------------- helpers */

/* Fails the test unless a and b are em_equal, printing both. */
#define assert_term_equal(expected, got)                                                     \
    do {                                                                                      \
        em_term e_ = (expected), g_ = (got);                                                  \
        if (!em_equal(e_, g_)) {                                                              \
            char es_[512], gs_[512];                                                          \
            em_format(e_, es_, sizeof es_);                                                   \
            em_format(g_, gs_, sizeof gs_);                                                   \
            fail_msg("%s: expected %s, got %s", #got, es_, gs_);                              \
        }                                                                                     \
    } while (0)

/* Packs t into a fresh buffer (the caller destroys it); returns the pack's code. */
static int pack(em_term t, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return emi_codec_pack(&pk, t, &nodes);
}

/* Unpacks exactly one msgpack object from bytes and decodes it. msgpack-c must
 * accept the bytes: only the codec's answer is returned. */
static int decode(const void *bytes, size_t len, em_term *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int ur = msgpack_unpack_next(&u, bytes, len, &off);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != len) {
        msgpack_unpacked_destroy(&u);
        fail_msg("msgpack_unpack_next: expected success over %zu bytes, got %d at %zu", len,
                 ur, off);
    }
    *out = EM_NONE;
    int r = emi_codec_unpack(&u.data, &nodes, out);
    msgpack_unpacked_destroy(&u);
    return r;
}

/* t packed and decoded again. */
static em_term round_trip(em_term t)
{
    msgpack_sbuffer sb;
    int r = pack(t, &sb);
    if (r != 0) {
        msgpack_sbuffer_destroy(&sb);
        fail_msg("emi_codec_pack: expected 0, got %d (%s)", r, em_strerror(r));
    }
    em_term back;
    r = decode(sb.data, sb.size, &back);
    msgpack_sbuffer_destroy(&sb);
    if (r != 0)
        fail_msg("emi_codec_unpack: expected 0, got %d (%s)", r, em_strerror(r));
    return back;
}

/* Asserts that t survives a round trip with its type. */
static void assert_round_trip(em_term t)
{
    assert_int_not_equal(t, EM_NONE);
    em_term back = round_trip(t);
    assert_int_equal(em_typeof(back), em_typeof(t));
    assert_term_equal(t, back);
}

/* Packs an ext of the given type and payload alone, and decodes it. */
static int decode_ext(int8_t type, const void *payload, size_t len, em_term *out)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_ext_with_body(&pk, payload, len, type);
    int r = decode(sb.data, sb.size, out);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* A pid ext payload; returns its length. */
static size_t pid_payload(unsigned char *buf, uint32_t creation, uint32_t index, uint32_t serial,
                          const char *name, size_t nlen)
{
    put32(buf, creation);
    put32(buf + 4, index);
    put32(buf + 8, serial);
    memcpy(buf + 12, name, nlen);
    return 12 + nlen;
}

/* A ref ext payload; returns its length. */
static size_t ref_payload(unsigned char *buf, uint32_t creation, uint64_t counter,
                          const char *name, size_t nlen)
{
    put32(buf, creation);
    put32(buf + 4, (uint32_t)(counter >> 32));
    put32(buf + 8, (uint32_t)counter);
    memcpy(buf + 12, name, nlen);
    return 12 + nlen;
}

/* How many nested containers msgpack-c's unpacker reads (its
 * MSGPACK_EMBED_STACK_SIZE): the codec's limit leaves one of them for the
 * envelope. */
#define MSGPACK_READS (EMI_CODEC_MAX_DEPTH + 1)

static em_pid_t make_pid(uint32_t node, uint32_t serial, uint32_t index)
{
    return (em_pid_t)node << 48 | (em_pid_t)serial << 28 | index;
}

/* A chain of depth arrays, each holding the next; the innermost holds leaf. */
static em_term nested(size_t depth, em_term leaf)
{
    em_term t = leaf;
    for (size_t i = 0; i < depth; i++)
        t = em_array(1, &t);
    return t;
}

/* ------------------------------------------------------- node names */

static void test_valid_node_name(void **state)
{
    (void)state;
    char longest[EMI_NODE_NAME_MAX + 1];
    memset(longest, 'n', sizeof longest);
    longest[10] = '@';

    assert_true(emi_codec_valid_node_name("a@b", 3));
    assert_true(emi_codec_valid_node_name("node1@host.example.com", 22));
    assert_true(emi_codec_valid_node_name("n\xc3\xa9@h", 5));   /* UTF-8 is fine */
    assert_true(emi_codec_valid_node_name(longest, EMI_NODE_NAME_MAX));

    assert_false(emi_codec_valid_node_name(longest, EMI_NODE_NAME_MAX + 1));
    assert_false(emi_codec_valid_node_name(NULL, 3));
    assert_false(emi_codec_valid_node_name("", 0));
    assert_false(emi_codec_valid_node_name("a@", 2));
    assert_false(emi_codec_valid_node_name("abc", 3));         /* no '@' */
    assert_false(emi_codec_valid_node_name("a@b@c", 5));       /* two */
    assert_false(emi_codec_valid_node_name("a@@b", 4));
    assert_false(emi_codec_valid_node_name("@host", 5));       /* empty name */
    assert_false(emi_codec_valid_node_name("name@", 5));       /* empty host */
    assert_false(emi_codec_valid_node_name("na me@host", 10));
    assert_false(emi_codec_valid_node_name("name@ho\0st", 10));
    assert_false(emi_codec_valid_node_name("name\t@host", 10));
    assert_false(emi_codec_valid_node_name("name@host\n", 10));
    assert_false(emi_codec_valid_node_name("name@h\x7fst", 9));
}

/* ------------------------------------------------------- round trips */

static void test_round_trip_scalars(void **state)
{
    (void)state;
    assert_round_trip(EM_NIL);
    assert_round_trip(EM_TRUE);
    assert_round_trip(EM_FALSE);

    const int64_t ints[] = {INT64_MIN, INT64_MIN + 1, EMI_SMALL_MIN - 1, EMI_SMALL_MIN, -1, 0, 1,
                            127, 128, 65536, EMI_SMALL_MAX, (int64_t)1 << 62, INT64_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        em_term back = round_trip(em_int(ints[i]));
        int64_t v;
        assert_int_equal(em_typeof(back), EM_T_INT);
        assert_true(em_get_int(back, &v));
        assert_int_equal(v, ints[i]);
    }
    const uint64_t uints[] = {(uint64_t)INT64_MAX + 1, UINT64_MAX - 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof uints / sizeof uints[0]; i++) {
        em_term back = round_trip(em_uint(uints[i]));
        uint64_t v;
        assert_int_equal(em_typeof(back), EM_T_UINT);
        assert_true(em_get_uint(back, &v));
        assert_int_equal(v, uints[i]);
    }

    const double floats[] = {0.0, -0.0, 1.5, -2.25, DBL_MIN, DBL_MIN / 4, DBL_MAX, INFINITY,
                             -INFINITY, 1.0 / 3.0};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        em_term back = round_trip(em_float(floats[i]));
        double v;
        assert_int_equal(em_typeof(back), EM_T_FLOAT);
        assert_true(em_get_float(back, &v));
        /* Bit for bit: -0.0 keeps its sign. */
        assert_memory_equal(&v, &floats[i], sizeof v);
    }
    double nan_back;
    assert_true(em_get_float(round_trip(em_float(NAN)), &nan_back));
    assert_true(isnan(nan_back));

    /* A float is not decoded as the integer of the same value. */
    assert_int_equal(em_typeof(round_trip(em_float(3.0))), EM_T_FLOAT);
}

static void test_round_trip_bytes(void **state)
{
    (void)state;
    unsigned char bytes[1000];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 31 + 7);

    assert_round_trip(em_strn("", 0));
    assert_round_trip(em_str("h\xc3\xa9llo"));
    assert_round_trip(em_strn("a\0b", 3));                   /* strings are any bytes */
    assert_round_trip(em_strn("\xff\xfe", 2));               /* not even UTF-8 */
    assert_round_trip(em_strn((const char *)bytes, 300));
    assert_round_trip(em_bin(NULL, 0));
    assert_round_trip(em_bin(bytes, 64));

    /* Above 64 bytes a binary is shared, on both sides. */
    em_term big = em_bin(bytes, sizeof bytes);
    assert_int_equal(emi_box_type(big), BOX_REFBIN);
    em_term back = round_trip(big);
    assert_int_equal(emi_box_type(back), BOX_REFBIN);
    assert_term_equal(big, back);
    back = round_trip(em_bin(bytes, 65));
    assert_int_equal(emi_box_type(back), BOX_REFBIN);
    assert_int_equal(em_len(back), 65);

    /* str and bin stay apart. */
    assert_int_equal(em_typeof(round_trip(em_strn("ab", 2))), EM_T_STR);
    assert_int_equal(em_typeof(round_trip(em_bin("ab", 2))), EM_T_BIN);
}

static void test_round_trip_atoms(void **state)
{
    (void)state;
    char name[256];
    memset(name, 'q', sizeof name);

    assert_round_trip(em_atom("ok"));
    assert_round_trip(em_atom(""));
    assert_round_trip(em_atom("h\xc3\xa9llo w\xc3\xb6rld"));
    assert_round_trip(em_atomn(name, 255));

    /* The atom spelled true is an atom, not the boolean, after the trip too. */
    em_term back = round_trip(em_atom("true"));
    assert_int_equal(em_typeof(back), EM_T_ATOM);
    assert_int_not_equal(back, EM_TRUE);
    assert_int_equal(round_trip(EM_TRUE), EM_TRUE);

    /* The wire form: fixext 2, type 3, the name. */
    msgpack_sbuffer sb;
    assert_int_equal(pack(em_atom("ok"), &sb), 0);
    const unsigned char want[] = {0xd5, 0x03, 'o', 'k'};
    assert_int_equal(sb.size, sizeof want);
    assert_memory_equal(sb.data, want, sizeof want);
    msgpack_sbuffer_destroy(&sb);
}

static void test_round_trip_containers(void **state)
{
    (void)state;
    assert_round_trip(em_array(0, NULL));
    assert_round_trip(em_map(0, NULL));
    assert_round_trip(EM_ARR(em_atom("ping"), em_int(-5), em_str("x"), EM_NIL));

    em_term kv[] = {em_atom("a"), em_int(1),
                    EM_ARR(em_int(1), em_int(2)), em_str("array key"),
                    em_str("b"), EM_ARR(em_map(0, NULL), em_array(0, NULL)),
                    em_float(2.5), EM_TRUE};
    em_term m = em_map(4, kv);
    em_term back = round_trip(m);
    assert_int_equal(em_typeof(back), EM_T_MAP);
    assert_int_equal(em_len(back), 4);
    assert_term_equal(m, back);
    /* The pairs keep their order. */
    for (size_t i = 0; i < 4; i++)
        assert_term_equal(kv[2 * i], em_map_key(back, i));

    /* Nested both ways, and large enough to leave the codec's local buffers. */
    enum { N = 300 };
    em_term items[N], pairs[2 * N];
    for (size_t i = 0; i < N; i++) {
        items[i] = i % 3 ? em_int((int64_t)i) : EM_ARR(em_int((int64_t)i), em_str("in"));
        pairs[2 * i] = em_int((int64_t)i * 1000);
        pairs[2 * i + 1] = items[i];
    }
    em_term big = EM_ARR(em_array(N, items), em_map(N, pairs), m);
    back = round_trip(big);
    assert_term_equal(big, back);
    assert_int_equal(em_len(em_at(back, 0)), N);
    assert_int_equal(em_len(em_at(back, 1)), N);
}

static void test_duplicate_map_keys_merge(void **state)
{
    (void)state;
    /* {1: a, 2: b, 1: c} on the wire: the first position, the last value. */
    const unsigned char wire[] = {0x83, 0x01, 0xd4, 0x03, 'a', 0x02, 0xd4, 0x03, 'b',
                                  0x01, 0xd4, 0x03, 'c'};
    em_term t;
    assert_int_equal(decode(wire, sizeof wire, &t), 0);
    assert_int_equal(em_len(t), 2);
    assert_term_equal(em_int(1), em_map_key(t, 0));
    assert_term_equal(em_atom("c"), em_map_value(t, 0));
    assert_term_equal(em_atom("b"), em_map_get(t, em_int(2)));
}

static void test_integer_formats_and_float32(void **state)
{
    (void)state;
    em_term t;
    double d;
    int64_t i;
    /* float32 1.5 is taken and widened. */
    const unsigned char f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};
    assert_int_equal(decode(f32, sizeof f32, &t), 0);
    assert_int_equal(em_typeof(t), EM_T_FLOAT);
    assert_true(em_get_float(t, &d));
    assert_true(d == 1.5);

    /* Any integer format holding a small value gives the same canonical INT. */
    const unsigned char u8[] = {0xcc, 0x05}, i8[] = {0xd0, 0x05},
                        u64[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 0x05},
                        i64[] = {0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb};
    assert_int_equal(decode(u8, sizeof u8, &t), 0);
    assert_int_equal(t, em_int(5));
    assert_int_equal(decode(i8, sizeof i8, &t), 0);
    assert_int_equal(t, em_int(5));
    assert_int_equal(decode(u64, sizeof u64, &t), 0);
    assert_int_equal(t, em_int(5));
    assert_int_equal(decode(i64, sizeof i64, &t), 0);
    assert_true(em_get_int(t, &i));
    assert_int_equal(i, -5);
    /* UINT64_MAX as uint64 is a UINT. */
    const unsigned char umax[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(decode(umax, sizeof umax, &t), 0);
    assert_int_equal(em_typeof(t), EM_T_UINT);
}

/* ------------------------------------------------------- pids and refs */

static void test_local_pid_and_ref(void **state)
{
    (void)state;
    em_pid_t p = make_pid(0, 5, 42);
    msgpack_sbuffer sb;
    assert_int_equal(pack(em_pid(p), &sb), 0);
    /* ext 8 of 21 bytes, type 1: creation 7, index 42, serial 5, this node's name. */
    unsigned char want[3 + 21] = {0xc7, 21, 0x01};
    pid_payload(want + 3, SELF_CREATION, 42, 5, SELF_NAME, strlen(SELF_NAME));
    assert_int_equal(sb.size, sizeof want);
    assert_memory_equal(sb.data, want, sizeof want);
    em_term back;
    assert_int_equal(decode(sb.data, sb.size, &back), 0);
    msgpack_sbuffer_destroy(&sb);
    em_pid_t got;
    assert_true(em_get_pid(back, &got));
    assert_int_equal(got, p);
    assert_int_equal(em_pid_node(got), 0);

    /* Boundaries of index and serial. */
    p = make_pid(0, 0xFFFFF, 0x0FFFFFFF);
    assert_true(em_get_pid(round_trip(em_pid(p)), &got));
    assert_int_equal(got, p);

    em_term r = em_make_ref();
    uint64_t counter = emi_box(r)[2];
    assert_int_equal(pack(r, &sb), 0);
    unsigned char rwant[3 + 21] = {0xc7, 21, 0x02};
    ref_payload(rwant + 3, SELF_CREATION, counter, SELF_NAME, strlen(SELF_NAME));
    assert_int_equal(sb.size, sizeof rwant);
    assert_memory_equal(sb.data, rwant, sizeof rwant);
    assert_int_equal(decode(sb.data, sb.size, &back), 0);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(em_typeof(back), EM_T_REF);
    assert_int_equal(emi_box(back)[1], 0);
    assert_int_equal(emi_box(back)[2], counter);
    assert_term_equal(r, back);
    /* No node was added for our own name. */
    assert_int_equal(table.count, 3);
}

static void test_remote_pid_and_ref(void **state)
{
    (void)state;
    em_pid_t p = make_pid(1, 9, 1234), got;
    assert_true(em_get_pid(round_trip(em_pid(p)), &got));
    assert_int_equal(got, p);
    p = make_pid(2, 0, 1);
    assert_true(em_get_pid(round_trip(em_pid(p)), &got));
    assert_int_equal(got, p);

    em_term r = emi_ref_box(emi_heap_current(), 2, UINT64_MAX);
    em_term back = round_trip(r);
    assert_int_equal(emi_box(back)[1], 2);
    assert_true(emi_box(back)[2] == UINT64_MAX);

    /* A node never seen gets a fresh index, and packs back under its own name. */
    unsigned char buf[64];
    size_t n = pid_payload(buf, 11, 77, 3, "new@host", 8);
    em_term t;
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);
    assert_true(em_get_pid(t, &got));
    assert_int_equal(em_pid_node(got), 3);
    assert_int_equal(em_pid_index(got), 77);
    assert_int_equal(em_pid_serial(got), 3);
    msgpack_sbuffer sb;
    assert_int_equal(pack(t, &sb), 0);
    assert_int_equal(sb.size, 3 + n);
    assert_memory_equal(sb.data + 3, buf, n);
    msgpack_sbuffer_destroy(&sb);

    /* Both in one message, beside local ones. */
    em_term msg = EM_ARR(em_pid(make_pid(1, 1, 1)), em_pid(make_pid(0, 1, 1)), r,
                         em_make_ref(), t);
    assert_term_equal(msg, round_trip(msg));
}

static void test_earlier_creation_is_another_node(void **state)
{
    (void)state;
    /* Our own name with creation 6: a pid of this node's previous life. */
    unsigned char buf[64];
    size_t n = pid_payload(buf, SELF_CREATION - 1, 10, 2, SELF_NAME, strlen(SELF_NAME));
    em_term t;
    em_pid_t got;
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);
    assert_true(em_get_pid(t, &got));
    assert_int_not_equal(em_pid_node(got), 0);
    assert_int_equal(em_pid_index(got), 10);
    /* It packs back with the old creation, not as a pid of the living node. */
    msgpack_sbuffer sb;
    assert_int_equal(pack(t, &sb), 0);
    assert_int_equal(sb.size, 3 + n);
    assert_memory_equal(sb.data + 3, buf, n);
    msgpack_sbuffer_destroy(&sb);

    n = ref_payload(buf, SELF_CREATION + 1, 99, SELF_NAME, strlen(SELF_NAME));
    assert_int_equal(decode_ext(EMI_EXT_REF, buf, n, &t), 0);
    assert_int_not_equal(emi_box(t)[1], 0);
}

static void test_unknown_node_on_pack(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    assert_int_equal(pack(em_pid(make_pid(9, 1, 1)), &sb), EM_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack(emi_ref_box(emi_heap_current(), 9, 1), &sb), EM_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    /* A node word no table index can be. */
    assert_int_equal(pack(emi_ref_box(emi_heap_current(), (uint64_t)1 << 40, 1), &sb),
                     EM_EINVAL);
    msgpack_sbuffer_destroy(&sb);
    /* Deep inside a message too. */
    assert_int_equal(pack(EM_ARR(em_int(1), EM_ARR(em_pid(make_pid(4, 1, 1)))), &sb), EM_EINVAL);
    msgpack_sbuffer_destroy(&sb);

    /* Without a table, pids and refs cannot be packed; anything else can. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(emi_codec_pack(&pk, em_pid(make_pid(0, 1, 1)), NULL), EM_EINVAL);
    assert_int_equal(emi_codec_pack(&pk, EM_ARR(em_int(1), em_str("s")), NULL), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* ------------------------------------------------ what pack refuses */

static int write_fails_after(void *data, const char *buf, size_t len)
{
    (void)buf;
    size_t *room = data;
    if (len > *room)
        return -1;
    *room -= len;
    return 0;
}

static void test_pack_refuses_bad_terms(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    assert_int_equal(pack(EM_NONE, &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack((em_term)0x22, &sb), EM_EBADTERM);          /* no such immediate */
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack(emi_make_atom(0xFFFFFF), &sb), EM_EBADTERM); /* not interned */
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack(em_pid(make_pid(0, 1, 0)), &sb), EM_EBADTERM); /* index 0 */
    msgpack_sbuffer_destroy(&sb);

    /* A box of no known type, inside an array. */
    uint64_t *box = em_alloc(16);
    assert_non_null(box);
    box[0] = emi_header(0x77, 1);
    box[1] = 0;
    em_term items[2] = {em_int(1), (em_term)(uintptr_t)box};
    uint64_t *arr = em_alloc(24);
    assert_non_null(arr);
    arr[0] = emi_header(BOX_ARRAY, 2);
    memcpy(arr + 1, items, sizeof items);
    assert_int_equal(pack((em_term)(uintptr_t)arr, &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
    /* An EM_NONE slot in a map. */
    uint64_t *map = em_alloc(24);
    assert_non_null(map);
    map[0] = emi_header(BOX_MAP, 1);
    map[1] = em_atom("k");
    map[2] = EM_NONE;
    assert_int_equal(pack((em_term)(uintptr_t)map, &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);

    /* Sizes msgpack cannot carry (more than 2^32 - 1): refused before a byte of
     * the payload is read, so headers alone make the test. */
    const unsigned types[] = {BOX_STR, BOX_ARRAY, BOX_MAP};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        uint64_t *huge = em_alloc(8);
        assert_non_null(huge);
        huge[0] = emi_header(types[i], (uint64_t)1 << 32);
        int r = pack((em_term)(uintptr_t)huge, &sb);
        msgpack_sbuffer_destroy(&sb);
        if (r != EM_ETOOBIG)
            fail_msg("box type %u of 2^32 elements: expected %d, got %d", types[i], EM_ETOOBIG, r);
    }
    emi_refbin fake_bin = {.len = (size_t)1 << 32};
    emi_refbin_box *huge_bin = em_alloc(sizeof *huge_bin);
    assert_non_null(huge_bin);
    huge_bin->header = emi_header(BOX_REFBIN, (uint64_t)1 << 32);
    huge_bin->bin = &fake_bin;
    huge_bin->next = NULL;
    assert_int_equal(pack((em_term)(uintptr_t)huge_bin, &sb), EM_ETOOBIG);
    msgpack_sbuffer_destroy(&sb);

    /* A writer that fails at any point is reported, never ignored. */
    em_term msg = EM_ARR(em_atom("hello"), em_pid(make_pid(1, 2, 3)), em_str("text"),
                         em_float(1.5), em_map(1, (em_term[]){em_int(1), em_make_ref()}));
    assert_int_equal(pack(msg, &sb), 0);
    size_t full = sb.size;
    msgpack_sbuffer_destroy(&sb);
    for (size_t room = 0; room <= full; room++) {
        size_t left = room;
        msgpack_packer pk;
        msgpack_packer_init(&pk, &left, write_fails_after);
        int r = emi_codec_pack(&pk, msg, &nodes);
        if (r != (room < full ? EM_ENOMEM : 0))
            fail_msg("writer with %zu of %zu bytes: expected %d, got %d", room, full,
                     room < full ? EM_ENOMEM : 0, r);
    }
}

static void test_pack_depth_limit(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    /* As deep as the codec goes: packs, parses and decodes, alone... */
    em_term deepest = nested(EMI_CODEC_MAX_DEPTH, em_int(1));
    assert_term_equal(deepest, round_trip(deepest));
    /* ...and inside an envelope array, as distribution sends it. */
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, 1);
    assert_int_equal(emi_codec_pack(&pk, deepest, &nodes), 0);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb.size);
    em_term inner;
    assert_int_equal(u.data.via.array.size, 2);
    assert_int_equal(emi_codec_unpack(&u.data.via.array.ptr[1], &nodes, &inner), 0);
    assert_term_equal(deepest, inner);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);

    /* An empty container counts as a level too. */
    em_term empty_deep = em_array(0, NULL);
    for (int i = 1; i < EMI_CODEC_MAX_DEPTH; i++)
        empty_deep = em_map(1, (em_term[]){em_int(i), empty_deep});
    assert_term_equal(empty_deep, round_trip(empty_deep));

    /* One more level: refused by the sender, since in its envelope it would be
     * past what msgpack-c reads. */
    assert_int_equal(pack(nested(EMI_CODEC_MAX_DEPTH + 1, em_int(1)), &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack(em_array(1, &empty_deep), &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);

    /* Very deep terms cost no C stack. */
    assert_int_equal(pack(nested(200000, em_int(1)), &sb), EM_EBADTERM);
    msgpack_sbuffer_destroy(&sb);

    /* Wide is not deep. */
    em_term wide[100];
    for (int i = 0; i < 100; i++)
        wide[i] = nested(EMI_CODEC_MAX_DEPTH - 1, em_atom("leaf"));
    em_term w = em_array(100, wide);
    assert_term_equal(w, round_trip(w));
}

/* ---------------------------------------------- what unpack refuses */

static void test_unknown_ext_types(void **state)
{
    (void)state;
    em_term t;
    const int8_t types[] = {0, 4, 5, 127, -1, -128};
    for (size_t i = 0; i < sizeof types; i++) {
        int r = decode_ext(types[i], "abcd", 4, &t);
        if (r != EM_EBADTERM)
            fail_msg("ext type %d: expected %d, got %d", types[i], EM_EBADTERM, r);
    }
    /* The timestamp msgpack-c itself can pack is not an ember term either. */
    const unsigned char ts[] = {0xd6, 0xff, 0, 0, 0, 1};
    assert_int_equal(decode(ts, sizeof ts, &t), EM_EBADTERM);
}

static void test_short_and_long_ext_payloads(void **state)
{
    (void)state;
    unsigned char buf[400];
    em_term t;
    size_t n = pid_payload(buf, 3, 5, 6, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);   /* the good one */
    /* Cut anywhere short of a 3-byte name. */
    for (size_t len = 0; len < 12 + 3; len++) {
        int r = decode_ext(EMI_EXT_PID, buf, len, &t);
        if (r != EM_EBADTERM)
            fail_msg("pid payload of %zu bytes: expected %d, got %d", len, EM_EBADTERM, r);
    }
    n = ref_payload(buf, 3, 5, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_REF, buf, n, &t), 0);
    for (size_t len = 0; len < 12 + 3; len++) {
        int r = decode_ext(EMI_EXT_REF, buf, len, &t);
        if (r != EM_EBADTERM)
            fail_msg("ref payload of %zu bytes: expected %d, got %d", len, EM_EBADTERM, r);
    }
    /* Names longer than 255 bytes. */
    char name[300];
    memset(name, 'h', sizeof name);
    name[1] = '@';
    n = pid_payload(buf, 3, 5, 6, name, 255);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);
    n = pid_payload(buf, 3, 5, 6, name, 256);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_EBADTERM);
    n = ref_payload(buf, 3, 5, name, 256);
    assert_int_equal(decode_ext(EMI_EXT_REF, buf, n, &t), EM_EBADTERM);
}

static void test_bad_node_names_in_ext(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        size_t len;
    } bad[] = {
        {"nohost", 6},     {"a@b@c", 5},       {"@host", 5},         {"name@", 5},
        {"na me@host", 10}, {"name@ho\0st", 10}, {"name\n@host", 10}, {"a@", 2},
    };
    unsigned char buf[64];
    em_term t;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = pid_payload(buf, 1, 5, 6, bad[i].name, bad[i].len);
        int r = decode_ext(EMI_EXT_PID, buf, n, &t);
        if (r != EM_EBADTERM)
            fail_msg("pid from node name #%zu: expected %d, got %d", i, EM_EBADTERM, r);
        n = ref_payload(buf, 1, 5, bad[i].name, bad[i].len);
        r = decode_ext(EMI_EXT_REF, buf, n, &t);
        if (r != EM_EBADTERM)
            fail_msg("ref from node name #%zu: expected %d, got %d", i, EM_EBADTERM, r);
    }
    /* The table was never asked about any of them. */
    assert_int_equal(table.lookups, 0);
    assert_int_equal(table.count, 3);
}

static void test_bad_pid_fields(void **state)
{
    (void)state;
    unsigned char buf[64];
    em_term t;
    size_t n = pid_payload(buf, 3, 0, 6, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_EBADTERM);   /* index 0 */
    n = pid_payload(buf, 3, 0x10000000, 6, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_EBADTERM);
    n = pid_payload(buf, 3, 5, 0x100000, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_EBADTERM);
    n = pid_payload(buf, 3, 0x0FFFFFFF, 0xFFFFF, "other@host", 10);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);
    em_pid_t p;
    assert_true(em_get_pid(t, &p));
    assert_int_equal(p, make_pid(1, 0xFFFFF, 0x0FFFFFFF));
}

static void test_bad_atoms(void **state)
{
    (void)state;
    char name[300];
    memset(name, 'z', sizeof name);
    em_term t;
    assert_int_equal(decode_ext(EMI_EXT_ATOM, name, 255, &t), 0);
    assert_int_equal(t, em_atomn(name, 255));
    assert_int_equal(decode_ext(EMI_EXT_ATOM, name, 256, &t), EM_EBADTERM);
    assert_int_equal(decode_ext(EMI_EXT_ATOM, name, 299, &t), EM_EBADTERM);
    /* em_atomn refuses a NUL byte, so the codec must too. */
    assert_int_equal(em_atomn("a\0b", 3), EM_NONE);
    assert_int_equal(decode_ext(EMI_EXT_ATOM, "a\0b", 3, &t), EM_EBADTERM);
    assert_int_equal(decode_ext(EMI_EXT_ATOM, "\0", 1, &t), EM_EBADTERM);
    /* The empty atom is an atom. */
    assert_int_equal(decode_ext(EMI_EXT_ATOM, "", 0, &t), 0);
    assert_int_equal(t, em_atom(""));
}

static void test_bad_key_or_item_fails_whole_term(void **state)
{
    (void)state;
    em_term t = EM_NIL;
    /* {<unknown ext>: 1} */
    const unsigned char key[] = {0x81, 0xd4, 0x09, 'x', 0x01};
    assert_int_equal(decode(key, sizeof key, &t), EM_EBADTERM);
    /* {a: <pid with index 0>} */
    unsigned char val[64] = {0x81, 0xd4, 0x03, 'a', 0xc7, 22, 0x01};
    size_t n = pid_payload(val + 7, 3, 0, 1, "other@host", 10);
    assert_int_equal(decode(val, 7 + n, &t), EM_EBADTERM);
    /* [1, [2, <atom with NUL>], 3] */
    const unsigned char item[] = {0x93, 0x01, 0x92, 0x02, 0xd5, 0x03, 'a', 0x00, 0x03};
    assert_int_equal(decode(item, sizeof item, &t), EM_EBADTERM);

    /* A failed decode gives back the heap it used: many long items, then a bad one. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    unsigned char blob[500] = {0};
    msgpack_pack_array(&pk, 201);
    for (int i = 0; i < 200; i++) {
        msgpack_pack_bin_with_body(&pk, blob, i % 2 ? sizeof blob : 10);
    }
    msgpack_pack_ext_with_body(&pk, "", 0, 42);
    size_t before = em_heap_bytes();
    em_mark m = em_heap_mark();
    assert_int_equal(decode(sb.data, sb.size, &t), EM_EBADTERM);
    assert_int_equal(em_heap_bytes(), before);
    em_mark m2 = em_heap_mark();
    assert_memory_equal(&m, &m2, sizeof m);
    msgpack_sbuffer_destroy(&sb);
}

static void test_node_table_answers(void **state)
{
    (void)state;
    unsigned char buf[64];
    em_term t;
    /* A full table. */
    table.force_index = EM_ESYSLIMIT;
    size_t n = pid_payload(buf, 1, 5, 6, "far@away", 8);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_ESYSLIMIT);
    n = ref_payload(buf, 1, 5, "far@away", 8);
    assert_int_equal(decode_ext(EMI_EXT_REF, buf, n, &t), EM_ESYSLIMIT);
    /* An index a pid cannot hold. */
    table.force_index = 0x10000;
    n = pid_payload(buf, 1, 5, 6, "far@away", 8);
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), EM_ESYSLIMIT);
    table.force_index = 0xFFFF;
    assert_int_equal(decode_ext(EMI_EXT_PID, buf, n, &t), 0);
    em_pid_t p;
    assert_true(em_get_pid(t, &p));
    assert_int_equal(em_pid_node(p), 0xFFFF);
    table.force_index = 0;

    /* The fake table itself fills up after FAKE_CAP nodes. */
    char name[16];
    int r = 0;
    for (int i = 0; i < FAKE_CAP && r == 0; i++) {
        snprintf(name, sizeof name, "n%d@h", i);
        n = pid_payload(buf, 1, 5, 6, name, strlen(name));
        r = decode_ext(EMI_EXT_PID, buf, n, &t);
    }
    assert_int_equal(r, EM_ESYSLIMIT);
}

/* Builds a hand-made chain of depth arrays (each holding the next) in objs. */
static void object_chain(msgpack_object *objs, size_t depth)
{
    for (size_t i = 0; i < depth; i++) {
        objs[i].type = MSGPACK_OBJECT_ARRAY;
        objs[i].via.array.size = 1;
        objs[i].via.array.ptr = &objs[i + 1];
    }
    objs[depth].type = MSGPACK_OBJECT_NIL;
}

static void test_unpack_depth_limit(void **state)
{
    (void)state;
    enum { DEEP = 100000 };
    msgpack_object *objs = calloc(DEEP + 1, sizeof *objs);
    assert_non_null(objs);
    em_term t;
    object_chain(objs, EMI_CODEC_MAX_DEPTH);
    assert_int_equal(emi_codec_unpack(objs, &nodes, &t), 0);
    assert_term_equal(nested(EMI_CODEC_MAX_DEPTH, EM_NIL), t);
    object_chain(objs, EMI_CODEC_MAX_DEPTH + 1);
    assert_int_equal(emi_codec_unpack(objs, &nodes, &t), EM_EBADTERM);
    /* Far deeper than any C stack would take if the codec recursed. */
    object_chain(objs, DEEP);
    assert_int_equal(emi_codec_unpack(objs, &nodes, &t), EM_EBADTERM);
    /* Maps count too. */
    msgpack_object_kv kv[EMI_CODEC_MAX_DEPTH + 1];
    msgpack_object top;
    top.type = MSGPACK_OBJECT_MAP;
    top.via.map.size = 1;
    top.via.map.ptr = &kv[0];
    for (size_t i = 0; i <= EMI_CODEC_MAX_DEPTH; i++) {
        kv[i].key.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        kv[i].key.via.u64 = i;
        kv[i].val.type = MSGPACK_OBJECT_MAP;
        kv[i].val.via.map.size = i < EMI_CODEC_MAX_DEPTH ? 1 : 0;
        kv[i].val.via.map.ptr = i < EMI_CODEC_MAX_DEPTH ? &kv[i + 1] : NULL;
    }
    assert_int_equal(emi_codec_unpack(&top, &nodes, &t), EM_EBADTERM);
    kv[EMI_CODEC_MAX_DEPTH - 1].val.via.map.size = 0;   /* one level too many */
    assert_int_equal(emi_codec_unpack(&top, &nodes, &t), EM_EBADTERM);
    kv[EMI_CODEC_MAX_DEPTH - 2].val.via.map.size = 0;   /* exactly the limit */
    assert_int_equal(emi_codec_unpack(&top, &nodes, &t), 0);
    free(objs);

    /* msgpack-c's own unpacker reads one level more than the codec takes (the
     * envelope's) and fails past it, so deeper bytes never reach the codec. */
    for (int depth = MSGPACK_READS; depth <= MSGPACK_READS + 1; depth++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        for (int i = 0; i < depth; i++)
            msgpack_pack_array(&pk, i < depth - 1 ? 1 : 0);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        int r = msgpack_unpack_next(&u, sb.data, sb.size, &off);
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&sb);
        int want = depth <= MSGPACK_READS ? MSGPACK_UNPACK_SUCCESS : MSGPACK_UNPACK_NOMEM_ERROR;
        if (r != want)
            fail_msg("msgpack-c on %d levels: expected %d, got %d", depth, want, r);
    }
}

static void test_truncated_and_garbage_input(void **state)
{
    (void)state;
    em_term msg = EM_ARR(em_atom("hello"), em_pid(make_pid(1, 2, 3)), em_str("text"),
                         em_uint(UINT64_MAX), em_float(0.5),
                         em_map(1, (em_term[]){em_int(1), em_make_ref()}));
    msgpack_sbuffer sb;
    assert_int_equal(pack(msg, &sb), 0);
    /* Every strict prefix is incomplete to msgpack-c: it returns no object, so
     * the codec is never handed half a message. */
    for (size_t len = 0; len < sb.size; len++) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        int r = msgpack_unpack_next(&u, sb.data, len, &off);
        msgpack_unpacked_destroy(&u);
        if (r != MSGPACK_UNPACK_CONTINUE)
            fail_msg("prefix of %zu of %zu bytes: expected %d, got %d", len, sb.size,
                     MSGPACK_UNPACK_CONTINUE, r);
    }
    msgpack_sbuffer_destroy(&sb);
    /* 0xc1 is never used by msgpack: a parse error, again before the codec. */
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, "\x91\xc1", 2, &off), MSGPACK_UNPACK_PARSE_ERROR);
    msgpack_unpacked_destroy(&u);

    /* Objects made by hand that lie: the codec refuses them rather than read NULL. */
    em_term t;
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.size = 5;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    o.type = MSGPACK_OBJECT_BIN;
    o.via.bin.size = 100;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    o.type = MSGPACK_OBJECT_EXT;
    o.via.ext.type = EMI_EXT_ATOM;
    o.via.ext.size = 3;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    o.type = MSGPACK_OBJECT_ARRAY;
    o.via.array.size = 2;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    o.type = MSGPACK_OBJECT_MAP;
    o.via.map.size = 2;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    o.type = (msgpack_object_type)0x55;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_EBADTERM);
    /* Empty containers need no pointer. */
    o.type = MSGPACK_OBJECT_ARRAY;
    o.via.array.size = 0;
    o.via.array.ptr = NULL;
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), 0);
    assert_int_equal(em_len(t), 0);
    assert_int_equal(em_typeof(t), EM_T_ARRAY);
}

static void test_arguments_and_no_heap(void **state)
{
    em_term t = EM_NIL;
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = "abc";
    o.via.str.size = 3;
    assert_int_equal(emi_codec_unpack(NULL, &nodes, &t), EM_EINVAL);
    assert_int_equal(emi_codec_unpack(&o, &nodes, NULL), EM_EINVAL);
    assert_int_equal(emi_codec_pack(NULL, em_int(1), &nodes), EM_EINVAL);

    /* A pid or ref to decode without a table. */
    unsigned char buf[64];
    msgpack_object e;
    e.type = MSGPACK_OBJECT_EXT;
    e.via.ext.type = EMI_EXT_PID;
    e.via.ext.size = (uint32_t)pid_payload(buf, 1, 2, 3, "other@host", 10);
    e.via.ext.ptr = (const char *)buf;
    assert_int_equal(emi_codec_unpack(&e, NULL, &t), EM_EINVAL);

    /* No heap to build in. */
    em_heap_use(NULL);
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), EM_ENOTPROC);
    em_heap_use(*state);
    assert_int_equal(emi_codec_unpack(&o, &nodes, &t), 0);
    assert_term_equal(em_str("abc"), t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CODEC_TEST(test_valid_node_name),
        CODEC_TEST(test_round_trip_scalars),
        CODEC_TEST(test_round_trip_bytes),
        CODEC_TEST(test_round_trip_atoms),
        CODEC_TEST(test_round_trip_containers),
        CODEC_TEST(test_duplicate_map_keys_merge),
        CODEC_TEST(test_integer_formats_and_float32),
        CODEC_TEST(test_local_pid_and_ref),
        CODEC_TEST(test_remote_pid_and_ref),
        CODEC_TEST(test_earlier_creation_is_another_node),
        CODEC_TEST(test_unknown_node_on_pack),
        CODEC_TEST(test_pack_refuses_bad_terms),
        CODEC_TEST(test_pack_depth_limit),
        CODEC_TEST(test_unknown_ext_types),
        CODEC_TEST(test_short_and_long_ext_payloads),
        CODEC_TEST(test_bad_node_names_in_ext),
        CODEC_TEST(test_bad_pid_fields),
        CODEC_TEST(test_bad_atoms),
        CODEC_TEST(test_bad_key_or_item_fails_whole_term),
        CODEC_TEST(test_node_table_answers),
        CODEC_TEST(test_unpack_depth_limit),
        CODEC_TEST(test_truncated_and_garbage_input),
        CODEC_TEST(test_arguments_and_no_heap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
