/* Codec tests: the registry, raw and line. Each other codec has its own
 * file (test_codec_resp.c, test_codec_memcache.c, test_codec_http.c). */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* ---------------------------------------------------------------- registry */

START_TEST(test_find)
{
    ck_assert_ptr_eq(codec_find("raw"), &codec_raw);
    ck_assert_ptr_eq(codec_find("line"), &codec_line);
    ck_assert_ptr_eq(codec_find("resp"), &codec_resp);
    ck_assert_ptr_eq(codec_find("memcache"), &codec_memcache);
    ck_assert_ptr_eq(codec_find("http"), &codec_http);
    ck_assert_ptr_eq(codec_find("mysql"), &codec_mysql);
    ck_assert_ptr_null(codec_find("redis"));
    ck_assert_ptr_null(codec_find(""));
    ck_assert_ptr_null(codec_find(NULL));
    ck_assert_str_eq(codec_names(), "raw, line, resp, memcache, http, mysql");
    ck_assert(codec_raw.by_read);
    ck_assert(!codec_line.by_read && !codec_resp.by_read && !codec_memcache.by_read && !codec_http.by_read);
}
END_TEST

/* --------------------------------------------------------------------- raw */

START_TEST(test_raw)
{
    struct codec_parser p;
    size_t used = 99;

    codec_raw.request_begin(&p);
    ck_assert_int_eq(codec_raw.parse_request(&p, "", 0, &used), CODEC_MORE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(codec_raw.parse_request(&p, "GET x\r\nGET y", 12, &used), CODEC_DONE);
    ck_assert_uint_eq(used, 12);
    ck_assert_uint_eq(p.size, 12);
    ck_assert_uint_eq(p.info, 0);
    codec_raw.response_begin(&p, 0);
    ck_assert_int_eq(codec_raw.parse_response(&p, "a", 1, &used), CODEC_DONE);
    ck_assert_uint_eq(used, 1);
    for (int k = CODEC_REPLY_CLIENT_ERROR; k <= CODEC_REPLY_QUIT; k++)
        expect_reply(&codec_raw, (enum codec_reply)k, "x", 100, "");
}
END_TEST

/* -------------------------------------------------------------------- line */

static const struct sample line_msgs[] = {
    { S("PING\r\n"), 0, false, false },
    { S("hello world\n"), 0, false, false },
    { S("\n"), 0, false, false },
    { S("GET key with spaces and \r inside\r\n"), 0, false, false },
};

START_TEST(test_line)
{
    check_samples(&codec_line, false, line_msgs, PMX_ARRAY_LEN(line_msgs));
    check_samples(&codec_line, true, line_msgs, PMX_ARRAY_LEN(line_msgs));
    check_streams(&codec_line, false, line_msgs, PMX_ARRAY_LEN(line_msgs));
    check_streams(&codec_line, true, line_msgs, PMX_ARRAY_LEN(line_msgs));
    /* an incomplete line is passed on as it arrives */
    expect_whole(&codec_line, false, 0, "abc", 3, CODEC_MORE, 3);
    expect_whole(&codec_line, false, 0, "ab\ncd\n", 6, CODEC_DONE, 3);
    for (int k = CODEC_REPLY_CLIENT_ERROR; k <= CODEC_REPLY_QUIT; k++)
        expect_reply(&codec_line, (enum codec_reply)k, "x", 100, "");
}
END_TEST

Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_raw);
    tcase_add_test(tc, test_line);
    suite_add_tcase(s, tc);
    return s;
}
