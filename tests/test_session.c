/* Unit tests for the resp session tracker (include/resp_session.h): each
 * buffer of pipelined requests is framed by the resp codec, as the exchange
 * does, and every request handed to session_request(); the verdicts and
 * replies are checked in order. */
#include <check.h>
#include <string.h>

#include "codec.h"
#include "resp_session.h"
#include "suites.h"

#define MAX_REQ 32

struct run {
    int n;
    enum session_verdict v[MAX_REQ];
    char reply[MAX_REQ][2048];
    char what[MAX_REQ][64];
};

/* Frames data[0..len) into requests and runs each through the tracker. */
static void drive(struct resp_session *s, const struct session_policy *pol, const char *data, size_t len,
                  struct run *out)
{
    size_t pos = 0;

    memset(out, 0, sizeof(*out));
    while (pos < len) {
        struct codec_parser p;
        size_t used = 0;
        codec_resp.request_begin(&p);
        int rc = codec_resp.parse_request(&p, data + pos, len - pos, &used);
        ck_assert_int_eq(rc, CODEC_DONE);
        ck_assert_int_lt(out->n, MAX_REQ);
        size_t rlen = 0;
        int i = out->n++;
        out->v[i] = session_request(s, pol, 42, resp_class_of(p.info), data + pos, used, out->reply[i],
                                    sizeof(out->reply[i]) - 1, &rlen, out->what[i]);
        out->reply[i][rlen] = '\0';
        pos += used;
    }
}

#define DRIVE(s, pol, lit, out) drive((s), (pol), (lit), sizeof(lit) - 1, (out))

START_TEST(test_session_select)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\nGET k\r\n", &r);
    ck_assert_int_eq(r.n, 3);
    ck_assert_int_eq(r.v[0], SESSION_FORWARD);
    ck_assert_int_eq(r.v[1], SESSION_ANSWER);
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert_int_eq(r.v[2], SESSION_FORWARD);
    ck_assert_int_eq(s.db, 3);

    DRIVE(&s, NULL, "SELECT 16\r\nSELECT -1\r\nSELECT x\r\nSELECT 01\r\nSELECT\r\nselect 15\r\n", &r);
    ck_assert_str_eq(r.reply[0], "-ERR DB index is out of range\r\n");
    ck_assert_str_eq(r.reply[1], "-ERR DB index is out of range\r\n");
    ck_assert_str_eq(r.reply[2], "-ERR value is not an integer or out of range\r\n");
    ck_assert_str_eq(r.reply[3], "-ERR value is not an integer or out of range\r\n");
    ck_assert_str_eq(r.reply[4], "-ERR wrong number of arguments for 'select' command\r\n");
    ck_assert_str_eq(r.reply[5], "+OK\r\n");
    ck_assert_int_eq(s.db, 15);
    /* SELECT\0x: not SELECT (failed before: strcasecmp stopped at the NUL) */
    DRIVE(&s, NULL, "*2\r\n$8\r\nSELECT\0x\r\n$1\r\n9\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_REFUSE);
    ck_assert_str_eq(r.reply[0], "-ERR proximux: SELECT?X not supported through a shared connection\r\n");
    ck_assert_int_eq(s.db, 15);
}
END_TEST

START_TEST(test_session_hello)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL, "*4\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$7\r\nSETNAME\r\n$2\r\nn1\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_ANSWER);
    ck_assert_str_eq(r.reply[0], "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"
                                 "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:42\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n"
                                 "$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
    ck_assert(s.resp3);
    ck_assert_str_eq(s.name, "n1");
    /* HELLO without a version: the current protocol */
    DRIVE(&s, NULL, "HELLO\r\nCLIENT GETNAME\r\nHELLO 2\r\nHELLO 4\r\nHELLO x\r\nHELLO 3 FOO\r\n", &r);
    ck_assert(strncmp(r.reply[0], "%7\r\n", 4) == 0);
    ck_assert_str_eq(r.reply[1], "$2\r\nn1\r\n");
    ck_assert(strncmp(r.reply[2], "*14\r\n", 5) == 0);
    ck_assert(strstr(r.reply[2], "$5\r\nproto\r\n:2\r\n") != NULL);
    ck_assert_str_eq(r.reply[3], "-NOPROTO unsupported protocol version\r\n");
    ck_assert_str_eq(r.reply[4], "-ERR Protocol version is not an integer or out of range\r\n");
    ck_assert_str_eq(r.reply[5], "-ERR Syntax error in HELLO option 'FOO'\r\n");
    ck_assert(!s.resp3);
}
END_TEST

START_TEST(test_session_client)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL,
          "CLIENT GETNAME\r\nCLIENT SETNAME app\r\nCLIENT GETNAME\r\nCLIENT ID\r\n"
          "CLIENT SETINFO LIB-NAME x\r\nCLIENT SETNAME \"a b\"\r\nCLIENT TRACKING on\r\nCLIENT REPLY OFF\r\n"
          "RESET\r\nCLIENT KILL ID 1\r\n",
          &r);
    ck_assert_str_eq(r.reply[0], "$-1\r\n");
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert_str_eq(r.reply[2], "$3\r\napp\r\n");
    ck_assert_str_eq(r.reply[3], ":42\r\n");
    ck_assert_str_eq(r.reply[4], "+OK\r\n");
    /* quotes are not interpreted inline: two arguments */
    ck_assert_str_eq(r.reply[5], "-ERR wrong number of arguments for 'client|setname' command\r\n");
    ck_assert_int_eq(r.v[6], SESSION_REFUSE);
    ck_assert_str_eq(r.what[6], "CLIENT TRACKING");
    ck_assert_str_eq(r.reply[6], "-ERR proximux: CLIENT TRACKING not supported through a shared connection\r\n");
    ck_assert_str_eq(r.what[7], "CLIENT REPLY");
    ck_assert_int_eq(r.v[8], SESSION_REFUSE);
    ck_assert_str_eq(r.what[8], "RESET");
    ck_assert_str_eq(r.what[9], "CLIENT KILL");
    DRIVE(&s, NULL, "*3\r\n$6\r\nclient\r\n$7\r\nsetname\r\n$3\r\na b\r\n", &r);
    ck_assert_str_eq(r.reply[0], "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
    s.resp3 = true;
    s.name[0] = '\0';
    DRIVE(&s, NULL, "CLIENT GETNAME\r\n", &r);
    ck_assert_str_eq(r.reply[0], "_\r\n");
}
END_TEST

START_TEST(test_session_auth_proximux)
{
    static const struct session_user users[] = { { "app", "s3cret" } };
    struct session_policy pol = { .password = "pw", .users = users, .nusers = 1 };
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, &pol, "GET k\r\nSELECT 1\r\nHELLO 3\r\nAUTH bad\r\nAUTH app bad\r\nAUTH pw\r\nGET k\r\n", &r);
    ck_assert_str_eq(r.reply[0], "-NOAUTH Authentication required.\r\n");
    ck_assert_str_eq(r.reply[1], "-NOAUTH Authentication required.\r\n");
    ck_assert(strncmp(r.reply[2], "-NOAUTH HELLO must be called", 28) == 0);
    ck_assert_str_eq(r.reply[3], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    ck_assert_str_eq(r.reply[4], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    ck_assert_str_eq(r.reply[5], "+OK\r\n");
    ck_assert_int_eq(r.v[6], SESSION_FORWARD);
    ck_assert_int_eq(s.db, 0);
    ck_assert(!s.resp3);

    struct resp_session s2 = { 0 };
    DRIVE(&s2, &pol, "HELLO 3 AUTH app s3cret SETNAME x\r\nGET k\r\n", &r);
    ck_assert(strncmp(r.reply[0], "%7\r\n", 4) == 0);
    ck_assert_int_eq(r.v[1], SESSION_FORWARD);
    ck_assert(s2.authed && s2.resp3);
    /* a NUL in the password: the copy would end there (failed before) */
    struct resp_session s4 = { 0 };
    DRIVE(&s4, &pol, "*2\r\n$4\r\nAUTH\r\n$4\r\npw\0x\r\n*3\r\n$4\r\nAUTH\r\n$3\r\napp\r\n$7\r\ns3cret\0\r\n", &r);
    ck_assert_str_eq(r.reply[0], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    ck_assert_str_eq(r.reply[1], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    ck_assert(!s4.authed);
    struct resp_session s3 = { 0 };
    DRIVE(&s3, &pol, "AUTH default pw\r\nGET k\r\n", &r);
    ck_assert_str_eq(r.reply[0], "+OK\r\n");
    ck_assert_int_eq(r.v[1], SESSION_FORWARD);
}
END_TEST

START_TEST(test_session_auth_targets)
{
    struct session_policy none = { 0 };
    struct session_policy pw = { .target_password = "tp" };
    struct session_policy user = { .target_user = "u", .target_password = "tp" };
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, &none, "AUTH x\r\nAUTH default x\r\nAUTH other x\r\nGET k\r\n", &r);
    ck_assert(strncmp(r.reply[0], "-ERR AUTH <password> called without any password configured", 59) == 0);
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert_str_eq(r.reply[2], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    ck_assert_int_eq(r.v[3], SESSION_FORWARD);  /* no session.auth: nothing is required */
    DRIVE(&s, &pw, "AUTH tp\r\nAUTH default tp\r\nAUTH no\r\n", &r);
    ck_assert_str_eq(r.reply[0], "+OK\r\n");
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert_str_eq(r.reply[2], "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    DRIVE(&s, &user, "AUTH tp\r\nAUTH u tp\r\nAUTH u no\r\n", &r);
    ck_assert(strncmp(r.reply[0], "-WRONGPASS", 10) == 0);
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert(strncmp(r.reply[2], "-WRONGPASS", 10) == 0);
}
END_TEST

/* MULTI, SET, INCR, EXEC in one write, as redis-py and ioredis send them:
 * all pinned, then back to shared connections. */
START_TEST(test_session_multi_pipelined)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL,
          "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
          "*1\r\n$4\r\nEXEC\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
          &r);
    ck_assert_int_eq(r.n, 5);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r.v[i], SESSION_PIN);
    ck_assert_str_eq(r.what[0], "MULTI");
    ck_assert_int_eq(r.v[4], SESSION_FORWARD);
    ck_assert(!session_pinned(&s));

    /* WATCH .. MULTI .. EXEC; UNWATCH alone; EXEC without MULTI */
    DRIVE(&s, NULL, "WATCH k\r\nGET k\r\nMULTI\r\nSET k 1\r\nEXEC\r\nGET k\r\nUNWATCH\r\nEXEC\r\nDISCARD\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    ck_assert(r.v[1] == SESSION_PIN && r.v[2] == SESSION_PIN && r.v[3] == SESSION_PIN && r.v[4] == SESSION_PIN);
    ck_assert_int_eq(r.v[5], SESSION_FORWARD);
    ck_assert_int_eq(r.v[6], SESSION_FORWARD);
    ck_assert_int_eq(r.v[7], SESSION_FORWARD);
    ck_assert_int_eq(r.v[8], SESSION_FORWARD);
    DRIVE(&s, NULL, "WATCH a b\r\nUNWATCH\r\nGET a\r\nWATCH a\r\nMULTI\r\nUNWATCH\r\nDISCARD\r\nGET a\r\n", &r);
    ck_assert(r.v[0] == SESSION_PIN && r.v[1] == SESSION_PIN);
    ck_assert_int_eq(r.v[2], SESSION_FORWARD);
    ck_assert(r.v[3] == SESSION_PIN && r.v[4] == SESSION_PIN && r.v[5] == SESSION_PIN && r.v[6] == SESSION_PIN);
    ck_assert_int_eq(r.v[7], SESSION_FORWARD);
}
END_TEST

/* A state command inside MULTI is refused, and EXEC then runs nothing. */
START_TEST(test_session_multi_poisoned)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL, "MULTI\r\nSET k v\r\nSELECT 2\r\nCLIENT SETNAME x\r\nEXEC\r\nGET k\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    ck_assert_int_eq(r.v[1], SESSION_PIN);
    ck_assert_int_eq(r.v[2], SESSION_REFUSE);
    ck_assert_str_eq(r.reply[2], "-ERR proximux: SELECT inside MULTI not supported\r\n");
    ck_assert_int_eq(s.db, 0);
    ck_assert_int_eq(r.v[3], SESSION_REFUSE);
    ck_assert_str_eq(s.name, "");
    ck_assert_int_eq(r.v[4], SESSION_ABORT);
    ck_assert_str_eq(r.reply[4], "-EXECABORT Transaction discarded because of previous errors.\r\n");
    ck_assert_int_eq(r.v[5], SESSION_FORWARD);
    /* DISCARD of a poisoned transaction is an ordinary DISCARD */
    DRIVE(&s, NULL, "MULTI\r\nRESET\r\nDISCARD\r\n", &r);
    ck_assert_int_eq(r.v[1], SESSION_REFUSE);
    ck_assert_int_eq(r.v[2], SESSION_PIN);
    ck_assert(!session_pinned(&s));
}
END_TEST

/* No dedicated connection for MULTI (session.dedicated_max): none of the
 * queued commands may run. */
START_TEST(test_session_refused_multi)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL, "*1\r\n$5\r\nMULTI\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    session_pin_failed(&s);
    ck_assert(!session_pinned(&s));
    DRIVE(&s, NULL,
          "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n"
          "*1\r\n$4\r\nEXEC\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
          &r);
    ck_assert_int_eq(r.n, 4);
    ck_assert_int_eq(r.v[0], SESSION_REFUSE);
    ck_assert_str_eq(r.reply[0], "-ERR proximux: SET refused: its transaction's MULTI was refused\r\n");
    ck_assert_int_eq(r.v[1], SESSION_REFUSE);
    ck_assert_str_eq(r.what[1], "INCR");
    ck_assert_int_eq(r.v[2], SESSION_REFUSE);
    ck_assert_str_eq(r.reply[2], "-EXECABORT Transaction discarded because of previous errors.\r\n");
    ck_assert_int_eq(r.v[3], SESSION_FORWARD);  /* after EXEC: back to normal */
    ck_assert(!s.multi_refused);

    DRIVE(&s, NULL, "MULTI\r\n", &r);
    session_pin_failed(&s);
    DRIVE(&s, NULL, "SELECT 2\r\nDISCARD\r\nGET k\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_REFUSE);   /* not even SELECT changes the state */
    ck_assert_int_eq(s.db, 0);
    ck_assert_int_eq(r.v[1], SESSION_ANSWER);
    ck_assert_str_eq(r.reply[1], "+OK\r\n");
    ck_assert_int_eq(r.v[2], SESSION_FORWARD);
    /* a refused WATCH (not MULTI) refuses nothing after it */
    DRIVE(&s, NULL, "WATCH k\r\n", &r);
    session_pin_failed(&s);
    DRIVE(&s, NULL, "GET k\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_FORWARD);
}
END_TEST

START_TEST(test_session_subscribe_block_monitor)
{
    struct resp_session s = { 0 };
    struct run r;

    DRIVE(&s, NULL, "SUBSCRIBE a b\r\nPING\r\nPSUBSCRIBE p*\r\nUNSUBSCRIBE\r\nPUNSUBSCRIBE\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    ck_assert_int_eq(r.v[1], SESSION_PIN);
    ck_assert_int_eq(r.v[2], SESSION_PIN);
    ck_assert_int_eq(r.v[3], SESSION_PIN);
    ck_assert_int_eq(s.kind, SESSION_KIND_UNSUB);
    ck_assert(s.subscribed);     /* until the server says none is left */
    session_unsubscribed(&s);
    DRIVE(&s, NULL, "GET k\r\nSSUBSCRIBE s\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_FORWARD);
    ck_assert_int_eq(r.v[1], SESSION_PIN);
    ck_assert_int_eq(s.kind, SESSION_KIND_SUB);
    session_unsubscribed(&s);

    /* blocking: pinned for that request only */
    DRIVE(&s, NULL, "BLPOP q 0\r\nGET k\r\nXREAD BLOCK 0 STREAMS s $\r\nXREAD STREAMS s 0\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    ck_assert_int_eq(r.v[1], SESSION_FORWARD);
    ck_assert_int_eq(r.v[2], SESSION_PIN);
    ck_assert_int_eq(s.kind, SESSION_KIND_BLOCK);
    ck_assert_int_eq(r.v[3], SESSION_FORWARD);
    /* inside MULTI a blocking command is queued like any other */
    DRIVE(&s, NULL, "MULTI\r\nBLPOP q 0\r\nEXEC\r\n", &r);
    ck_assert_int_eq(r.v[1], SESSION_PIN);
    ck_assert_int_eq(s.kind, SESSION_KIND_PLAIN);

    DRIVE(&s, NULL, "MONITOR\r\nGET k\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_PIN);
    ck_assert_int_eq(r.v[1], SESSION_PIN);
    ck_assert(s.monitor && session_pinned(&s));
    struct resp_session t = { 0 };
    DRIVE(&t, NULL, "SYNC\r\n", &r);
    ck_assert_int_eq(r.v[0], SESSION_REFUSE);
}
END_TEST

START_TEST(test_session_args)
{
    struct session_args a;
    char big[600];

    ck_assert(session_args_parse("*2\r\n$4\r\nAUTH\r\n$0\r\n\r\n", 20, &a));
    ck_assert_int_eq(a.argc, 2);
    ck_assert_int_eq((int)a.len[1], 0);
    ck_assert(session_args_parse("  a\tbb  c \r\n", 12, &a));
    ck_assert_int_eq(a.argc, 3);
    ck_assert_str_eq(a.arg[1], "bb");
    ck_assert(!session_args_parse("*2\r\n$4\r\nAUTH\r\n$9\r\nx\r\n", 21, &a));
    /* an argument over SESSION_ARG_MAX is flagged and refused */
    memset(big, 'x', sizeof(big));
    memcpy(big, "AUTH ", 5);
    memcpy(big + sizeof(big) - 2, "\r\n", 2);
    ck_assert(session_args_parse(big, sizeof(big), &a));
    ck_assert(a.too_long);
    struct resp_session s = { 0 };
    char reply[1024], what[64];
    size_t n;
    ck_assert_int_eq(session_request(&s, NULL, 1, RESP_STATE, big, sizeof(big), reply, sizeof(reply), &n, what),
                     SESSION_REFUSE);
    ck_assert_str_eq(what, "AUTH");
    /* internal commands */
    ck_assert_uint_eq(session_select_cmd(12, reply, sizeof(reply)), 24);
    ck_assert(memcmp(reply, "*2\r\n$6\r\nSELECT\r\n$2\r\n12\r\n", 24) == 0);
    ck_assert_uint_eq(session_hello_cmd(true, reply, sizeof(reply)), 22);
    ck_assert(memcmp(reply, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n", 22) == 0);
    n = session_auth_cmd("u", "p", reply, sizeof(reply));
    ck_assert(n == 28 && memcmp(reply, "*3\r\n$4\r\nAUTH\r\n$1\r\nu\r\n$1\r\np\r\n", 28) == 0);
    ck_assert_uint_eq(session_auth_cmd(NULL, "p", reply, 10), 0);
}
END_TEST

Suite *session_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("resp");

    tcase_add_test(tc, test_session_select);
    tcase_add_test(tc, test_session_hello);
    tcase_add_test(tc, test_session_client);
    tcase_add_test(tc, test_session_auth_proximux);
    tcase_add_test(tc, test_session_auth_targets);
    tcase_add_test(tc, test_session_multi_pipelined);
    tcase_add_test(tc, test_session_multi_poisoned);
    tcase_add_test(tc, test_session_refused_multi);
    tcase_add_test(tc, test_session_subscribe_block_monitor);
    tcase_add_test(tc, test_session_args);
    suite_add_tcase(s, tc);
    return s;
}
