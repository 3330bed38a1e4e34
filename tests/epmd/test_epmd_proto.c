/*
 * test_epmd_proto.c - the port mapper's protocol core without sockets: framing
 * of byte buffers, every request's effect on the name table and its reply
 * bytes, the local-only and relaxed-only rules, and ember's Extra convention.
 */
#include "epmd_test.h"

#include "epmd_client.h"
#include "epmd_log.h"
#include "epmd_proto.h"

/* Two pretend connections: owners are only compared, never dereferenced. */
static int conn_a, conn_b, conn_c;
static const emi_epmd_peer local_a = {.owner = &conn_a, .fd = 10, .local = true};
static const emi_epmd_peer local_b = {.owner = &conn_b, .fd = 11, .local = true};
static const emi_epmd_peer local_c = {.owner = &conn_c, .fd = 12, .local = true};
static const emi_epmd_peer remote = {.owner = &conn_c, .fd = 13, .local = false};

typedef struct fixture {
    emi_epmd_state st;
    emi_epmd_out out;
    emi_epmd_result res;
} fixture;

static int setup(void **state, bool relaxed, size_t max_names)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || emi_epmd_state_init(&f->st, 4369, relaxed, max_names, 42) < 0)
        return -1;
    emi_epmd_log_level = -1;
    *state = f;
    return 0;
}

static int setup_plain(void **state) { return setup(state, false, 8); }
static int setup_relaxed(void **state) { return setup(state, true, 8); }
static int setup_small(void **state) { return setup(state, false, 2); }

static int teardown(void **state)
{
    fixture *f = *state;
    emi_epmd_out_free(&f->out);
    emi_epmd_state_fini(&f->st);
    free(f);
    return 0;
}

/* Handles one request and leaves the reply in f->out (emptied first). */
static int handle(fixture *f, const emi_epmd_peer *peer, const void *req, size_t n)
{
    f->out.len = 0;
    return emi_epmd_handle(&f->st, peer, req, n, &f->out, &f->res);
}

static void do_register(fixture *f, const emi_epmd_peer *peer, const char *name, uint16_t port,
                        uint16_t highest, const char *extra)
{
    uint8_t req[600];
    size_t n = alive2_req(req, name, port, highest, extra);
    EXPECT_INT(0, handle(f, peer, req, n));
}

static void test_frame(void **state)
{
    (void)state;
    const uint8_t names[] = {0, 1, 110};
    EXPECT_INT(0, emi_epmd_frame(names, 0));
    EXPECT_INT(0, emi_epmd_frame(names, 1));
    EXPECT_INT(0, emi_epmd_frame(names, 2));
    EXPECT_INT(3, emi_epmd_frame(names, 3));
    const uint8_t zero[] = {0, 0};
    EXPECT_INT(-EINVAL, emi_epmd_frame(zero, 2));
    const uint8_t big[] = {0xff, 0xff, 1};
    EXPECT_INT(-EMSGSIZE, emi_epmd_frame(big, 3));
    const uint8_t max_ok[] = {EMI_EPMD_MAX_REQUEST >> 8, EMI_EPMD_MAX_REQUEST & 0xff};
    EXPECT_INT(0, emi_epmd_frame(max_ok, 2));
    const uint8_t past[] = {0, 1, 110, 110};
    EXPECT_INT(-EPROTO, emi_epmd_frame(past, 4));
}

static void test_register_and_look_up(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "alpha", 5555, 6, "ember1 tcp curve=0011223344556677");
    EXPECT_INT(EMI_EPMD_KEEP, f->res.action);
    EXPECT_INT(6, f->out.len);
    EXPECT_INT(EMI_EPMD_ALIVE2_X_RESP, f->out.data[0]);
    EXPECT_INT(0, f->out.data[1]);
    EXPECT_TRUE(emi_get32(f->out.data + 2) != 0, "a non-zero creation");

    const uint8_t req[] = {122, 'a', 'l', 'p', 'h', 'a'};
    EXPECT_INT(0, handle(f, &remote, req, sizeof req));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    const char extra[] = "ember1 tcp curve=0011223344556677";
    uint8_t want[64] = {119,
                        0,
                        0x15,
                        0xb3,
                        77,
                        0,
                        0,
                        6,
                        0,
                        5,
                        0,
                        5,
                        'a',
                        'l',
                        'p',
                        'h',
                        'a',
                        0,
                        (uint8_t)(sizeof extra - 1)};
    memcpy(want + 19, extra, sizeof extra - 1);
    EXPECT_BYTES(want, 19 + sizeof extra - 1, f->out.data, f->out.len);

    const uint8_t miss[] = {122, 'b', 'e', 't', 'a'};
    EXPECT_INT(0, handle(f, &local_b, miss, sizeof miss));
    const uint8_t notfound[] = {119, 1};
    EXPECT_BYTES(notfound, 2, f->out.data, f->out.len);
}

static void test_old_version_gets_alive2_resp(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "old", 4000, 5, "");
    EXPECT_INT(EMI_EPMD_KEEP, f->res.action);
    EXPECT_INT(4, f->out.len);
    EXPECT_INT(EMI_EPMD_ALIVE2_RESP, f->out.data[0]);
    EXPECT_INT(0, f->out.data[1]);
    unsigned c = emi_get16(f->out.data + 2);
    EXPECT_TRUE(c >= 1 && c <= 3, "a 16-bit creation in 1..3, got %u", c);
}

static void test_creation_changes_on_reregistration(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "node", 4000, 6, "");
    uint32_t first = emi_get32(f->out.data + 2);
    EXPECT_TRUE(emi_epmd_unregister_owner(&f->st, &conn_a, "test"), "the registration to exist");
    do_register(f, &local_b, "node", 4001, 6, "");
    EXPECT_INT(0, f->out.data[1]);
    uint32_t second = emi_get32(f->out.data + 2);
    EXPECT_INT(first + 1 ? first + 1 : 1, second);
}

static void test_duplicate_and_full_and_invalid(void **state)
{
    fixture *f = *state; /* a table of two names */
    do_register(f, &local_a, "one", 1, 6, "");
    do_register(f, &local_b, "one", 2, 6, "");
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(EMI_EPMD_RESULT_TAKEN, f->out.data[1]);
    do_register(f, &local_b, "two", 2, 6, "");
    EXPECT_INT(0, f->out.data[1]);
    do_register(f, &local_c, "three", 3, 6, "");
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(EMI_EPMD_RESULT_FULL, f->out.data[1]);
    EXPECT_INT(2, f->st.table.count);

    /* Invalid names and Extra fields: refused with result 3, table unchanged. */
    emi_epmd_unregister_owner(&f->st, &conn_b, "test");
    const char *bad[] = {"", "a\nb", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "tab\there"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        do_register(f, &local_c, bad[i], 3, 6, "");
        EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
        EXPECT_INT(EMI_EPMD_RESULT_INVALID, f->out.data[1]);
    }
    char longname[300];
    memset(longname, 'n', 256);
    longname[256] = '\0';
    do_register(f, &local_c, longname, 3, 6, "");
    EXPECT_INT(EMI_EPMD_RESULT_INVALID, f->out.data[1]);
    char longextra[300];
    memset(longextra, 'e', 256);
    longextra[256] = '\0';
    do_register(f, &local_c, "fine", 3, 6, longextra);
    EXPECT_INT(EMI_EPMD_RESULT_INVALID, f->out.data[1]);
    longextra[255] = '\0';
    do_register(f, &local_c, "fine", 3, 6, longextra);
    EXPECT_INT(0, f->out.data[1]);
    do_register(f, &local_b, "h\xc3\xa9llo", 4, 6, "");
    EXPECT_INT(EMI_EPMD_RESULT_FULL, f->out.data[1]); /* valid UTF-8, but the table is full */
}

static void test_truncated_alive2_closes_without_reply(void **state)
{
    fixture *f = *state;
    uint8_t req[64];
    size_t n = alive2_req(req, "abc", 1, 6, "xyz");
    /* Every cut short of the whole request is malformed: no reply, no entry. */
    for (size_t cut = 1; cut < n; cut++) {
        EXPECT_INT(0, handle(f, &local_a, req, cut));
        EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
        EXPECT_INT(0, f->out.len);
    }
    EXPECT_INT(0, f->st.table.count);
    /* A name length past the end. */
    req[10] = 200;
    EXPECT_INT(0, handle(f, &local_a, req, n));
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, f->st.table.count);
}

static void test_local_only_requests(void **state)
{
    fixture *f = *state;
    uint8_t req[64];
    size_t n = alive2_req(req, "sneaky", 1, 6, "");
    EXPECT_INT(0, handle(f, &remote, req, n));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, f->st.table.count);
    const uint8_t kill[] = {107}, dump[] = {100}, names[] = {110};
    EXPECT_INT(0, handle(f, &remote, kill, 1));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, handle(f, &remote, dump, 1));
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, handle(f, &remote, names, 1));
    EXPECT_INT(4, f->out.len); /* names are public: just the port, no names */
}

static void test_names_and_dump_format(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "first", 1234, 6, "");
    do_register(f, &local_b, "second", 65535, 5, "");
    const uint8_t names[] = {110};
    EXPECT_INT(0, handle(f, &local_c, names, 1));
    const char want[] = "\0\0\x11\x11name first at port 1234\nname second at port 65535\n";
    EXPECT_BYTES(want, sizeof want - 1, f->out.data, f->out.len);

    emi_epmd_unregister_owner(&f->st, &conn_a, "test");
    const uint8_t dump[] = {100};
    EXPECT_INT(0, handle(f, &local_c, dump, 1));
    const char dwant[] = "\0\0\x11\x11"
                         "active name     <second> at port 65535, fd = 11\n\0"
                         "old/unused name <first>, port = 1234, fd = -1 \n\0";
    EXPECT_BYTES(dwant, sizeof dwant - 1, f->out.data, f->out.len);
}

static void test_kill(void **state)
{
    fixture *f = *state;
    const uint8_t kill[] = {107};
    do_register(f, &local_a, "alive", 1, 6, "");
    EXPECT_INT(0, handle(f, &local_b, kill, 1));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_BYTES("NO", 2, f->out.data, f->out.len);
    emi_epmd_unregister_owner(&f->st, &conn_a, "test");
    EXPECT_INT(0, handle(f, &local_b, kill, 1));
    EXPECT_INT(EMI_EPMD_EXIT, f->res.action);
    EXPECT_BYTES("OK", 2, f->out.data, f->out.len);
}

static void test_kill_and_stop_relaxed(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "victim", 1, 6, "");
    const uint8_t stop[] = {115, 'v', 'i', 'c', 't', 'i', 'm'};
    EXPECT_INT(0, handle(f, &local_b, stop, sizeof stop));
    EXPECT_BYTES("STOPPED", 7, f->out.data, f->out.len);
    EXPECT_TRUE(f->res.stopped == &conn_a, "STOP_REQ to name the registering connection");
    EXPECT_INT(0, f->st.table.count);
    EXPECT_INT(0, handle(f, &local_b, stop, sizeof stop));
    EXPECT_BYTES("NOEXIST", 7, f->out.data, f->out.len);
    EXPECT_TRUE(f->res.stopped == NULL, "no connection to close");
    EXPECT_INT(0, handle(f, &remote, stop, sizeof stop));
    EXPECT_INT(0, f->out.len);

    do_register(f, &local_a, "alive", 1, 6, "");
    const uint8_t kill[] = {107};
    EXPECT_INT(0, handle(f, &local_b, kill, 1));
    EXPECT_INT(EMI_EPMD_EXIT, f->res.action);
    EXPECT_BYTES("OK", 2, f->out.data, f->out.len);
}

static void test_stop_ignored_unless_relaxed(void **state)
{
    fixture *f = *state;
    do_register(f, &local_a, "victim", 1, 6, "");
    const uint8_t stop[] = {115, 'v', 'i', 'c', 't', 'i', 'm'};
    EXPECT_INT(0, handle(f, &local_b, stop, sizeof stop));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(1, f->st.table.count);
}

static void test_unknown_and_malformed_requests(void **state)
{
    fixture *f = *state;
    const uint8_t unknown[] = {1, 2, 3}, empty_port_please[] = {122},
                  nul_name[] = {122, 'a', 0, 'b'};
    EXPECT_INT(0, handle(f, &local_a, unknown, sizeof unknown));
    EXPECT_INT(EMI_EPMD_CLOSE, f->res.action);
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, handle(f, &local_a, empty_port_please, 1));
    EXPECT_INT(0, f->out.len);
    EXPECT_INT(0, handle(f, &local_a, nul_name, sizeof nul_name));
    EXPECT_INT(0, f->out.len);
    /* One trailing NUL (old clients) is allowed. */
    do_register(f, &local_b, "a", 7, 6, "");
    const uint8_t trailing[] = {122, 'a', 0};
    EXPECT_INT(0, handle(f, &local_a, trailing, sizeof trailing));
    EXPECT_INT(0, f->out.data[1]);
}

static void test_extra_convention(void **state)
{
    (void)state;
    char buf[64];
    EXPECT_INT(33, em_epmd_extra_build(buf, sizeof buf, "tcp", "0123456789ABCDEF"));
    EXPECT_STR("ember1 tcp curve=0123456789abcdef", buf);
    em_epmd_extra x;
    EXPECT_INT(0, em_epmd_extra_parse(buf, strlen(buf), &x));
    EXPECT_STR("tcp", x.transport);
    EXPECT_STR("0123456789abcdef", x.curve);
    const char *later = "ember1 ipc curve=fedcba9876543210 addr=10.0.0.1 future=yes";
    EXPECT_INT(0, em_epmd_extra_parse(later, strlen(later), &x));
    EXPECT_STR("ipc", x.transport);
    EXPECT_STR("fedcba9876543210", x.curve);

    EXPECT_INT(-EINVAL, em_epmd_extra_build(buf, sizeof buf, "TCP", "0123456789abcdef"));
    EXPECT_INT(-EINVAL, em_epmd_extra_build(buf, sizeof buf, "tcp", "0123456789abcde"));
    EXPECT_INT(-EINVAL, em_epmd_extra_build(buf, sizeof buf, "tcp", "0123456789abcdeg"));
    EXPECT_INT(-ENOSPC, em_epmd_extra_build(buf, 10, "tcp", "0123456789abcdef"));

    const char *not_ours[] = {"", "erlang", "ember10 tcp curve=0123456789abcdef", "ember2 tcp"};
    for (size_t i = 0; i < sizeof not_ours / sizeof *not_ours; i++)
        EXPECT_INT(-ENOENT, em_epmd_extra_parse(not_ours[i], strlen(not_ours[i]), &x));
    const char *broken[] = {"ember1",
                            "ember1 tcp",
                            "ember1 tcp curve=0123",
                            "ember1  tcp curve=0123456789abcdef",
                            "ember1 tcp curve=0123456789abcdef ",
                            "ember1 TCP curve=0123456789abcdef",
                            "ember1 tcp =x curve=0123456789abcdef",
                            "ember1 tcp\tcurve=0123456789abcdef"};
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        int rc = em_epmd_extra_parse(broken[i], strlen(broken[i]), &x);
        if (rc != -EPROTO) {
            print_error("extra \"%s\": expected %d (-EPROTO), got %d\n", broken[i], -EPROTO, rc);
            fail();
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame),
        cmocka_unit_test_setup_teardown(test_register_and_look_up, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_old_version_gets_alive2_resp, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_creation_changes_on_reregistration, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_and_full_and_invalid, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_alive2_closes_without_reply, setup_plain,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_local_only_requests, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_dump_format, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_kill, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_kill_and_stop_relaxed, setup_relaxed, teardown),
        cmocka_unit_test_setup_teardown(test_stop_ignored_unless_relaxed, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_malformed_requests, setup_plain, teardown),
        cmocka_unit_test(test_extra_convention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
