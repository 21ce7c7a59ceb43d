/* resp codec tests: RESP requests and replies split at every byte,
 * malformed and oversized input, refused commands, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* -------------------------------------------------------------------- resp */

static const struct sample resp_requests[] = {
    { S("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), 0, false, false },
    { S("*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"), 0, false, false },
    { S("PING\r\n"), 0, false, false },
    { S("ping\n"), 0, false, false },
    { S("\r\n"), CODEC_INFO_NOREPLY, false, false },
    { S("   \t \r\n"), CODEC_INFO_NOREPLY, false, false },
    { S("*0\r\n"), CODEC_INFO_NOREPLY, false, false },
    { S("*-1\r\n"), CODEC_INFO_NOREPLY, false, false },
    { S("*1\r\n$4\r\nQUIT\r\n"), CODEC_INFO_QUIT, false, false },
    { S("quit\r\n"), CODEC_INFO_QUIT, false, false },
    { S("'quit'\r\n"), CODEC_INFO_QUIT, false, false },
    { S("*1\r\n$5\r\nQUITX\r\n"), 0, false, false },
    { S("*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nnews\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*1\r\n$5\r\nmulti\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*1\r\n$4\r\nExEc\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*2\r\n$12\r\npunsubscribe\r\n$1\r\nx\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*3\r\n$6\r\nCLIENT\r\n$7\r\nSETNAME\r\n$1\r\nx\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("HELLO 3\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("  subscribe news\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("\"MONITOR\"\r\n"), CODEC_INFO_UNSUPPORTED, false, false },
    { S("\"\\x71uit\"\r\n"), CODEC_INFO_QUIT, false, false },
    { S("*6\r\n$5\r\nXREAD\r\n$5\r\nBLOCK\r\n$1\r\n0\r\n$7\r\nSTREAMS\r\n$1\r\ns\r\n$1\r\n$\r\n"), 0, false, false },
    { S("set foo \"bar \\\"baz\\\" \\x41\"\n"), 0, false, false },
    { S("set 'it\\'s' x\r\n"), 0, false, false },
    { S("*1\r\n$0\r\n\r\n"), 0, false, false },
    { S("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), 0, false, false },
    /* a bulk holding protocol bytes */
    { S("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8\r\na\r\n*1\r\n$\r\n"), 0, false, false },
    /* a first argument longer than 32 bytes is not classified */
    { S("*2\r\n$33\r\nsubscribesubscribesubscribesubscr\r\n$1\r\nx\r\n"), 0, false, false },
    { S("*1\r\n$32\r\nsubscribesubscribesubscribesubsc\r\n"), 0, false, false },
};

static const struct sample resp_responses[] = {
    { S("+OK\r\n"), 0, false, false },
    { S("+PONG\r\n"), 0, false, false },
    { S("-ERR unknown command 'foo', with args beginning with: \r\n"), 0, false, false },
    { S(":1000\r\n"), 0, false, false },
    { S(":-1\r\n"), 0, false, false },
    { S("$5\r\nhello\r\n"), 0, false, false },
    { S("$0\r\n\r\n"), 0, false, false },
    { S("$-1\r\n"), 0, false, false },
    { S("*-1\r\n"), 0, false, false },
    { S("*0\r\n"), 0, false, false },
    { S("$8\r\n\r\n*1\r\n:1\r\n"), 0, false, false },
    { S("*2\r\n$3\r\nfoo\r\n$-1\r\n"), 0, false, false },
    /* SCAN */
    { S("*2\r\n$2\r\n17\r\n*3\r\n$4\r\nkey1\r\n$4\r\nkey2\r\n$4\r\nkey3\r\n"), 0, false, false },
    { S("*3\r\n*2\r\n:1\r\n*1\r\n+a\r\n*0\r\n*-1\r\n"), 0, false, false },
    { S("*4\r\n+OK\r\n:5\r\n$-1\r\n-ERR x\r\n"), 0, false, false },
    /* CODEC_MAX_DEPTH arrays deep */
    { S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*2\r\n:1\r\n:2\r\n"), 0, false, false },
    /* XREAD */
    { S("*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"), 0, false, false },
};

static const struct bad resp_bad_requests[] = {
    { S("*2\r\n$3\r\nGET\r\n:3\r\nkey\r\n"), 0, "expected '$'" },
    { S("*x\r\n"), 0, "multibulk length" },
    { S("*01\r\n$4\r\nPING\r\n"), 0, "multibulk length" },
    { S("*-2\r\n"), 0, "multibulk length" },
    { S("*\r\n"), 0, "multibulk length" },
    { S("*1\n$4\r\nPING\r\n"), 0, "multibulk length" },
    { S("*1\r\n$abc\r\n"), 0, "bulk length" },
    { S("*1\r\n$-1\r\n"), 0, "bulk length" },
    { S("*1\r\n$ 4\r\nPING\r\n"), 0, "bulk length" },
    { S("*1\r\n$4\r\nPINGXX"), 0, "terminator" },
    { S("*1\r\n$4\r\nPING\n\n"), 0, "terminator" },
    { S("*2\r\n$3\r\nGET\r\n$40\r\n0123456789012345678901234567890123456789\n\r"), 0, "terminator" },
    { S("set a \"b\r\n"), 0, "unbalanced" },
    { S("set a \"b\"c\r\n"), 0, "unbalanced" },
    { S("set a 'b\r\n"), 0, "unbalanced" },
    /* oversized */
    { S("*1048577\r\n"), 0, "multibulk length" },
    { S("*99999999999999999999\r\n"), 0, "multibulk length" },
    { S("*1\r\n$536870913\r\n"), 0, "bulk length" },
};

static const struct bad resp_bad_responses[] = {
    { S("?x\r\n"), 0, "unknown reply type" },
    { S("%1\r\n"), 0, "unknown reply type" },
    { S("$abc\r\n"), 0, "bulk length" },
    { S("$-2\r\n"), 0, "bulk length" },
    { S("$3\r\nabcd\r\n"), 0, "terminator" },
    { S("*-2\r\n"), 0, "array length" },
    { S("*2\r\n:1\r\n!"), 0, "unknown reply type" },
    { S("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"), 0, "too deep" },
    { S("*2147483648\r\n"), 0, "array length" },
    { S("$536870913\r\n"), 0, "bulk length" },
};

START_TEST(test_resp_requests)
{
    check_samples(&codec_resp, false, resp_requests, PMX_ARRAY_LEN(resp_requests));
    check_streams(&codec_resp, false, resp_requests, PMX_ARRAY_LEN(resp_requests));
}
END_TEST

START_TEST(test_resp_responses)
{
    check_samples(&codec_resp, true, resp_responses, PMX_ARRAY_LEN(resp_responses));
    check_streams(&codec_resp, true, resp_responses, PMX_ARRAY_LEN(resp_responses));
}
END_TEST

START_TEST(test_resp_big)
{
    /* redis-cli SET with a 1 MiB value, and the GET that reads it back */
    size_t len;
    char *set = make_big("*3\r\n$3\r\nSET\r\n$9\r\nbig:value\r\n$1048576\r\n", 1048576, '\r', "\r\n", &len);
    struct sample s = { set, len, 0, false, false };
    check_sample(&codec_resp, false, &s, 0);
    char *get = make_big("$1048576\r\n", 1048576, '\n', "\r\n", &len);
    struct sample r = { get, len, 0, false, false };
    check_sample(&codec_resp, true, &r, 0);
    free(get);
    free(set);
}
END_TEST

START_TEST(test_resp_bad)
{
    check_bad(&codec_resp, false, resp_bad_requests, PMX_ARRAY_LEN(resp_bad_requests));
    check_bad(&codec_resp, true, resp_bad_responses, PMX_ARRAY_LEN(resp_bad_responses));

    /* the limits themselves are accepted */
    expect_whole(&codec_resp, false, 0, S("*1048576\r\n"), CODEC_MORE, 10);
    expect_whole(&codec_resp, false, 0, S("*1\r\n$536870912\r\nab"), CODEC_MORE, 18);
    expect_whole(&codec_resp, true, 0, S("$536870912\r\n"), CODEC_MORE, 12);
    expect_whole(&codec_resp, true, 0, S("*2147483647\r\n"), CODEC_MORE, 13);

    /* an inline line longer than 64 KiB, complete or not */
    size_t len;
    char *m = make_big("", 64 * 1024 + 2, 'a', "", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    expect_whole(&codec_resp, false, 0, m, 64 * 1024 + 1, CODEC_MORE, 0);
    free(m);
    m = make_big("", 64 * 1024 + 1, 'a', "\r\n", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("", 64 * 1024, 'a', "\r\n", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_DONE, len);
    free(m);
    /* a length line that never ends */
    m = make_big("*1\r\n$", 70000, '1', "", &len);
    expect_whole(&codec_resp, false, 0, m, len, CODEC_ERROR, 0);
    expect_whole(&codec_resp, true, 0, m + 4, len - 4, CODEC_ERROR, 0);
    free(m);
    /* a simple reply line passes as it arrives */
    expect_whole(&codec_resp, true, 0, S("+OK but long"), CODEC_MORE, 12);
    /* the short first argument is not consumed until whole */
    expect_whole(&codec_resp, false, 0, S("*2\r\n$9\r\nSUBSCR"), CODEC_MORE, 8);
    expect_whole(&codec_resp, false, 0, S("*2\r\n$40\r\nSUBSCR"), CODEC_MORE, 15);
}
END_TEST

START_TEST(test_resp_reply)
{
    const struct codec_ops *c = &codec_resp;

    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "MULTI is not supported", 512,
                 "-ERR proximux: MULTI is not supported\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream closed", 512, "-ERR proximux: upstream closed\r\n");
    expect_reply(c, CODEC_REPLY_TIMEOUT, "timed out", 512, "-ERR proximux: timed out\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 512, "-ERR proximux: queue full\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "bad\r\nline\n", 512, "-ERR proximux: badline\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 512, "+OK\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 5, "+OK\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 4, "");
    /* truncation to cap */
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 20, "-ERR proximux: que\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 17, "-ERR proximux: \r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 16, "");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 0, "");
    expect_reply(c, CODEC_REPLY_BUSY, "a\r\nb", 19, "-ERR proximux: ab\r\n");
}
END_TEST

Suite *codec_resp_suite(void)
{
    Suite *s = suite_create("codec_resp");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_resp_requests);
    tcase_add_test(tc, test_resp_responses);
    tcase_add_test(tc, test_resp_bad);
    tcase_add_test(tc, test_resp_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_resp_big);
    suite_add_tcase(s, big);
    return s;
}
