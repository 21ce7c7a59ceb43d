/* http codec tests: requests and responses split at every byte,
 * malformed input, framing flags, 100-continue, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* -------------------------------------------------------------------- http */

static const struct sample http_requests[] = {
    { S("GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.4.0\r\n"
        "Accept: */*\r\n\r\n"), 0, false, false },
    { S("POST /api HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 13\r\n\r\nhello=world&x"), 0, false, false },
    { S("POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5;name=val;x=\"y\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n"
        "X-Checksum: abc\r\nX-Other: 1\r\n\r\n"), 0, false, false },
    { S("PUT /z HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
        "2 ; ext\r\n\r\n\r\n0\r\n\r\n"), 0, false, false },
    { S("POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\ncontent-length: 4\r\n\r\n0\r\n\r"),
      CODEC_INFO_CONTINUE, false, false },
    { S("POST /d HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), 0, false, false },
    { S("POST /z HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_HEAD, false, false },
    { S("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.0\r\n\r\n"), CODEC_INFO_CLOSE, false, false },
    { S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0, false, false },
    { S("GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
      CODEC_INFO_UNSUPPORTED, false, false },
    { S("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
      CODEC_INFO_UNSUPPORTED, false, false },
    { S("GET / HTTP/1.1\nHost: x\n\n"), 0, false, false },
    { S("\r\nGET /after-crlf HTTP/1.1\r\nHost:x\r\nX-Empty:\r\n\r\n"), 0, false, false },
};

static const struct sample http_responses[] = {
    { S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello"), 0, false, false },
    { S("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200\r\ncontent-length: 2\r\n\r\nok"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"), HTTP_HEAD, false, false },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_HEAD, false, false },
    { S("HTTP/1.1 204 No Content\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 0, false, false },
    { S("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"), 0, false, true },
    { S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"), 0, false, true },
    { S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"), 0, false, false },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), CODEC_INFO_CLOSE, false, true },
    /* until close */
    { S("HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n<html>body</html>\r\n\r\n"), 0, true, true },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxyz"), 0, true, true },
};

static const struct bad http_bad_requests[] = {
    { S("GET /\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / FOO\r\n\r\n"), 0, "missing HTTP version" },
    { S("GET / HTTP/2.0\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, "unsupported HTTP version" },
    { S("GET\r\n\r\n"), 0, "bad request line" },
    { S("GET  / HTTP/1.1\r\n\r\n"), 0, "bad request line" },
    { S(" GET / HTTP/1.1\r\n\r\n"), 0, "bad request line" },
    { S("G(T / HTTP/1.1\r\n\r\n"), 0, "bad request line" },
    { S("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 0, "header without colon" },
    { S("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 0, "folded" },
    { S("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), 0, "bad header name" },
    { S("GET / HTTP/1.1\r\n: x\r\n\r\n"), 0, "bad header name" },
    { S("POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, "both" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 0, "both" },
    { S("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), 0, "conflicting" },
    { S("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"), 0, "invalid content-length" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), 0, "chunked is not the last" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 0, "chunked is not the last" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 0, "unsupported transfer-encoding" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\n"), 0, "bad chunk size" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX"), 0, "bad chunk terminator" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad\r\n\r\n"), 0, "bad trailer" },
    /* oversized */
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n"), 0, "chunk size too long" },
    { S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000001\r\n"), 0, "chunk size too long" },
    { S("POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n"), 0, "invalid content-length" },
};

static const struct bad http_bad_responses[] = {
    { S("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"), 0, "protocol upgrade not supported" },
    { S("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n"), 0, "protocol upgrade" },
    { S("HTTP/1.1 20 OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 200OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/2 200\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 099 x\r\n\r\n"), 0, "bad status line" },
    { S("FOO\r\n\r\n"), 0, "bad status line" },
    { S("\r\nHTTP/1.1 200 OK\r\n\r\n"), 0, "bad status line" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"), 0, "both" },
    { S("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), 0, "invalid content-length" },
    { S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcX"), 0, "bad chunk terminator" },
};

START_TEST(test_http_requests)
{
    check_samples(&codec_http, false, http_requests, PMX_ARRAY_LEN(http_requests));
    check_streams(&codec_http, false, http_requests, PMX_ARRAY_LEN(http_requests));
}
END_TEST

START_TEST(test_http_responses)
{
    check_samples(&codec_http, true, http_responses, PMX_ARRAY_LEN(http_responses));
    /* the until-close responses cannot be followed by another one */
    check_streams(&codec_http, true, http_responses, PMX_ARRAY_LEN(http_responses) - 2);
}
END_TEST

START_TEST(test_http_big)
{
    size_t len;
    char *post = make_big("POST /blob HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
                          1048576, '\n', "", &len);
    struct sample s = { post, len, 0, false, false };
    check_sample(&codec_http, false, &s, 0);
    char *resp = make_big("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n",
                          1048576, '0', "\r\n0\r\n\r\n", &len);
    struct sample r = { resp, len, 0, false, false };
    check_sample(&codec_http, true, &r, 0);
    free(resp);
    free(post);
}
END_TEST

START_TEST(test_http_bad)
{
    size_t len;
    char *m;

    check_bad(&codec_http, false, http_bad_requests, PMX_ARRAY_LEN(http_bad_requests));
    check_bad(&codec_http, true, http_bad_responses, PMX_ARRAY_LEN(http_bad_responses));
    /* the limits themselves are accepted */
    expect_whole(&codec_http, false, 0,
                 S("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffff\r\nab"), CODEC_MORE, 66);
    expect_whole(&codec_http, false, 0,
                 S("POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\nab"), CODEC_MORE, 54);
    /* a header line beyond 64 KiB, complete or not */
    m = make_big("GET / HTTP/1.1\r\nX-Big: ", 64 * 1024, 'b', "", &len);
    expect_whole(&codec_http, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("GET / HTTP/1.1\r\nX-Big: ", 64 * 1024, 'b', "\r\n\r\n", &len);
    expect_whole(&codec_http, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("GET / HTTP/1.1\r\nX-Big: ", 60 * 1024, 'b', "\r\n\r\n", &len);
    expect_whole(&codec_http, false, 0, m, len, CODEC_DONE, len);
    free(m);
    /* headers are consumed line by line, bodies as they arrive */
    expect_whole(&codec_http, false, 0, S("GET / HTTP/1.1\r\nHost: x\r\nAcc"), CODEC_MORE, 25);
    expect_whole(&codec_http, true, 0, S("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), CODEC_MORE, 42);
}
END_TEST

START_TEST(test_http_flags)
{
    /* until_close: every byte is consumed, however many */
    struct codec_parser p;
    size_t used;

    codec_http.response_begin(&p, 0);
    ck_assert_int_eq(codec_http.parse_response(&p, S("HTTP/1.1 200 OK\r\n\r\nabc"), &used), CODEC_MORE);
    ck_assert_uint_eq(used, 22);
    ck_assert(p.until_close && p.close_after);
    ck_assert_int_eq(codec_http.parse_response(&p, S("HTTP/1.1 200 OK\r\n"), &used), CODEC_MORE);
    ck_assert_uint_eq(used, 17);
    ck_assert_uint_eq(p.size, 39);
    /* interim responses do not count toward close_after */
    codec_http.response_begin(&p, 0);
    ck_assert_int_eq(codec_http.parse_response(&p,
        S("HTTP/1.0 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), &used), CODEC_DONE);
    ck_assert(!p.close_after && !p.until_close);
}
END_TEST

/* Parses a request head (and nothing of its body); returns its info. */
static uint32_t http_head_info(const char *head, int want_rc)
{
    struct codec_parser p;
    size_t used;

    codec_http.request_begin(&p);
    ck_assert_int_eq(codec_http.parse_request(&p, head, strlen(head), &used), want_rc);
    ck_assert_uint_eq(used, strlen(head));
    return p.info;
}

START_TEST(test_http_expect_continue)
{
    /* Set once the head is read and a body is still to come... */
    ck_assert(http_head_info("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
                             CODEC_MORE) & CODEC_INFO_CONTINUE);
    ck_assert(http_head_info("PUT / HTTP/1.1\r\nEXPECT:  100-Continue \r\nTransfer-Encoding: chunked\r\n\r\n",
                             CODEC_MORE) & CODEC_INFO_CONTINUE);
    /* ...not before the head ends, */
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    /* not without a body, not for HTTP/1.0, not for other expectations */
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
                               CODEC_DONE) & CODEC_INFO_CONTINUE));
    ck_assert(!(http_head_info("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    ck_assert(!(http_head_info("POST / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 4\r\n\r\n",
                               CODEC_MORE) & CODEC_INFO_CONTINUE));
    expect_reply(&codec_http, CODEC_REPLY_CONTINUE, NULL, 1024, "HTTP/1.1 100 Continue\r\n\r\n");
    expect_reply(&codec_http, CODEC_REPLY_CONTINUE, NULL, 24, "");
}
END_TEST

/* Checks an HTTP reply: status line, headers, Content-Length matching the
 * body, and the body. */
static void expect_http_reply(enum codec_reply kind, const char *reason, size_t cap,
                              const char *status, bool close, const char *body)
{
    char want[1024];

    snprintf(want, sizeof(want),
             "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
             status, strlen(body), close ? "Connection: close\r\n" : "", body);
    expect_reply(&codec_http, kind, reason, cap, want);
}

START_TEST(test_http_reply)
{
    expect_http_reply(CODEC_REPLY_CLIENT_ERROR, "bad request line", 1024, "400 Bad Request", true,
                      "proximux: bad request line\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 1024, "502 Bad Gateway", false,
                      "proximux: upstream closed\n");
    expect_http_reply(CODEC_REPLY_TIMEOUT, "timed out", 1024, "504 Gateway Timeout", false,
                      "proximux: timed out\n");
    expect_http_reply(CODEC_REPLY_BUSY, "queue full", 1024, "503 Service Unavailable", false,
                      "proximux: queue full\n");
    expect_http_reply(CODEC_REPLY_BUSY, "a\r\nb", 1024, "503 Service Unavailable", false,
                      "proximux: ab\n");
    expect_reply(&codec_http, CODEC_REPLY_QUIT, "bye", 1024, "");
    expect_reply(&codec_http, CODEC_REPLY_SERVER_ERROR, "upstream closed", 1024,
                 "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n\r\n"
                 "proximux: upstream closed\n");
    /* truncation: the 502 head is 74 bytes (2-digit length), its body 11 + reason */
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 15, "502 Bad Gateway", false,
                      "proximux: upstream closed\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 14, "502 Bad Gateway", false,
                      "proximux: upstream close\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11 + 5, "502 Bad Gateway", false,
                      "proximux: upstr\n");
    expect_http_reply(CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 11, "502 Bad Gateway", false,
                      "proximux: \n");
    expect_reply(&codec_http, CODEC_REPLY_SERVER_ERROR, "upstream closed", 74 + 10, "");
    expect_reply(&codec_http, CODEC_REPLY_CLIENT_ERROR, "x", 10, "");
}
END_TEST

Suite *codec_http_suite(void)
{
    Suite *s = suite_create("codec_http");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_http_requests);
    tcase_add_test(tc, test_http_responses);
    tcase_add_test(tc, test_http_bad);
    tcase_add_test(tc, test_http_flags);
    tcase_add_test(tc, test_http_expect_continue);
    tcase_add_test(tc, test_http_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_http_big);
    suite_add_tcase(s, big);
    return s;
}
