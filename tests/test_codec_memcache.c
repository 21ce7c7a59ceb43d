/* memcache codec tests: requests and replies split at every byte,
 * malformed and oversized input, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"
#include "suites.h"

/* ---------------------------------------------------------------- memcache */

static const struct sample mc_requests[] = {
    { S("get foo\r\n"), MC_VALUES, false, false },
    { S("get k1 k2 k3\r\n"), MC_VALUES, false, false },
    { S("get foo\n"), MC_VALUES, false, false },
    { S("gets k1 k2\r\n"), MC_VALUES, false, false },
    { S("gat 100 k1 k2\r\n"), MC_VALUES, false, false },
    { S("gats 0 k1\r\n"), MC_VALUES, false, false },
    { S("set foo 0 0 5\r\nhello\r\n"), MC_LINE, false, false },
    { S("set foo 0 0 5\nhello\r\n"), MC_LINE, false, false },
    { S("set foo 5 300 8 noreply\r\na\r\nEND\r\n\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("set  foo  0 0  3 \r\nabc\r\n"), MC_LINE, false, false },
    { S("add k 4294967295 -1 0\r\n\r\n"), MC_LINE, false, false },
    { S("replace k 0 0 2\r\nxy\r\n"), MC_LINE, false, false },
    { S("append k 0 0 2\r\nxy\r\n"), MC_LINE, false, false },
    { S("prepend k 0 0 2 noreply\r\nxy\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("cas foo 0 0 3 12345\r\nbar\r\n"), MC_LINE, false, false },
    { S("cas foo 0 0 3 18446744073709551615 noreply\r\nbar\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("delete foo\r\n"), MC_LINE, false, false },
    { S("delete foo noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("delete noreply\r\n"), MC_LINE, false, false },
    { S("incr counter 5\r\n"), MC_LINE, false, false },
    { S("decr counter 1 noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("touch foo 60\r\n"), MC_LINE, false, false },
    { S("flush_all\r\n"), MC_LINE, false, false },
    { S("flush_all 10 noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("version\r\n"), MC_LINE, false, false },
    { S("verbosity 1\r\n"), MC_LINE, false, false },
    { S("stats\r\n"), MC_STATS, false, false },
    { S("stats slabs\r\n"), MC_STATS, false, false },
    { S("quit\r\n"), CODEC_INFO_QUIT, false, false },
    { S("mg foo v f t\r\n"), MC_META, false, false },
    { S("mg foo v q\r\n"), MC_META | CODEC_INFO_UNSUPPORTED, false, false },
    { S("ms foo 5 T60 F3\r\nhello\r\n"), MC_META, false, false },
    { S("ms foo 7 q\r\n\r\nEND\r\n\r\n"), MC_META | CODEC_INFO_UNSUPPORTED, false, false },
    { S("md foo\r\n"), MC_META, false, false },
    { S("md foo q\r\n"), MC_META | CODEC_INFO_UNSUPPORTED, false, false },
    { S("ma foo v D5\r\n"), MC_META, false, false },
    { S("mn\r\n"), MC_META, false, false },
    { S("me foo\r\n"), MC_META, false, false },
};

static const struct sample mc_responses[] = {
    { S("STORED\r\n"), MC_LINE, false, false },
    { S("NOT_STORED\r\n"), MC_LINE, false, false },
    { S("EXISTS\r\n"), MC_LINE, false, false },
    { S("NOT_FOUND\r\n"), MC_LINE, false, false },
    { S("DELETED\r\n"), MC_LINE, false, false },
    { S("TOUCHED\r\n"), MC_LINE, false, false },
    { S("OK\r\n"), MC_LINE, false, false },
    { S("42\r\n"), MC_LINE, false, false },
    { S("VERSION 1.6.21\r\n"), MC_LINE, false, false },
    { S("ERROR\r\n"), MC_LINE, false, false },
    { S("END\r\n"), MC_VALUES, false, false },
    /* get k1 k2 k3: the data blocks hold "\r\nEND\r\n" */
    { S("VALUE k1 0 5\r\nhello\r\nVALUE k2 3 7\r\n\r\nEND\r\n\r\nVALUE k3 0 11\r\nEND\r\nVALUE \r\nEND\r\n"), MC_VALUES, false, false },
    { S("VALUE k 0 3 998877\r\nabc\r\nEND\r\n"), MC_VALUES, false, false },
    { S("VALUE k 0 0\r\n\r\nEND\r\n"), MC_VALUES, false, false },
    { S("ERROR\r\n"), MC_VALUES, false, false },
    { S("CLIENT_ERROR bad command line format\r\n"), MC_VALUES, false, false },
    { S("VALUE k 0 1\r\na\r\nSERVER_ERROR out of memory writing get response\r\n"), MC_VALUES, false, false },
    { S("STAT pid 1\r\nSTAT uptime 10\r\nSTAT version 1.6.21\r\nEND\r\n"), MC_STATS, false, false },
    { S("RESET\r\n"), MC_STATS, false, false },
    { S("END\r\n"), MC_STATS, false, false },
    { S("SERVER_ERROR busy\r\n"), MC_STATS, false, false },
    { S("HD\r\n"), MC_META, false, false },
    { S("EN\r\n"), MC_META, false, false },
    { S("NF\r\n"), MC_META, false, false },
    { S("NS\r\n"), MC_META, false, false },
    { S("EX c5\r\n"), MC_META, false, false },
    { S("MN\r\n"), MC_META, false, false },
    { S("ME foo exp=-1 la=1 cas=2 fetch=no cls=1 size=63\r\n"), MC_META, false, false },
    { S("VA 5 f0 t-1\r\nhello\r\n"), MC_META, false, false },
    { S("VA 7 c1\r\n\r\nEND\r\n\r\n"), MC_META, false, false },
    { S("VA 0\r\n\r\n"), MC_META, false, false },
    { S("CLIENT_ERROR bad data chunk\r\n"), MC_META, false, false },
};

static const struct bad mc_bad_requests[] = {
    { S("bogus\r\n"), 0, "unknown command" },
    { S("GET foo\r\n"), 0, "unknown command" },
    { S("\r\n"), 0, "empty command" },
    { S("get\r\n"), 0, "bad command line" },
    { S("gat 10\r\n"), 0, "bad command line" },
    { S("set foo 0 0\r\n"), 0, "bad command line" },
    { S("set foo 0 0 5 noreply extra\r\nhello\r\n"), 0, "bad command line" },
    { S("set foo x 0 5\r\nhello\r\n"), 0, "bad command line" },
    { S("set foo 4294967296 0 1\r\nx\r\n"), 0, "bad command line" },
    { S("set foo 0 1x 1\r\nx\r\n"), 0, "bad command line" },
    { S("set foo 0 0 -1\r\n"), 0, "chunk size" },
    { S("set foo 0 0 5x\r\n"), 0, "chunk size" },
    { S("set foo 0 0 5\r\nhelloXX"), 0, "bad data chunk" },
    { S("set foo 0 0 5\r\nhello\nX"), 0, "bad data chunk" },
    { S("set foo 0 0 5\r\nhello!\r\n"), 0, "bad data chunk" },
    { S("cas foo 0 0 5\r\nhello\r\n"), 0, "bad command line" },
    { S("cas foo 0 0 5 abc\r\nhello\r\n"), 0, "bad command line" },
    { S("cas foo 0 0 5 18446744073709551616\r\nhello\r\n"), 0, "bad command line" },
    { S("ms foo abc\r\n"), 0, "chunk size" },
    { S("ms foo\r\n"), 0, "bad command line" },
    { S("incr\r\n"), 0, "bad command line" },
    { S("version extra\r\n"), 0, "bad command line" },
    { S("quit now\r\n"), 0, "bad command line" },
    { S("set kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
        "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk 0 0 1\r\nx\r\n"), 0, "bad command line" },
    /* oversized */
    { S("set foo 0 0 1073741825\r\n"), 0, "chunk size" },
    { S("ms foo 99999999999999999999\r\n"), 0, "chunk size" },
};

static const struct bad mc_bad_responses[] = {
    { S("FOO\r\n"), MC_VALUES, "unexpected line" },
    { S("VALUE k 0\r\n"), MC_VALUES, "bad VALUE line" },
    { S("VALUE k 0 abc\r\n"), MC_VALUES, "bad VALUE line" },
    { S("VALUE k 0 3\r\nabcXY"), MC_VALUES, "bad data chunk" },
    { S("VALUE k 0 3\r\nabc\r\nSTORED\r\n"), MC_VALUES, "unexpected line" },
    { S("VALUE k 0 1073741825\r\n"), MC_VALUES, "bad VALUE line" },
    { S("VA x\r\n"), MC_META, "bad VA line" },
    { S("VA\r\n"), MC_META, "bad VA line" },
    { S("VA 3\r\nabc\n\n"), MC_META, "bad data chunk" },
};

START_TEST(test_mc_requests)
{
    check_samples(&codec_memcache, false, mc_requests, PMX_ARRAY_LEN(mc_requests));
    check_streams(&codec_memcache, false, mc_requests, PMX_ARRAY_LEN(mc_requests));
}
END_TEST

START_TEST(test_mc_responses)
{
    check_samples(&codec_memcache, true, mc_responses, PMX_ARRAY_LEN(mc_responses));
    check_streams(&codec_memcache, true, mc_responses, PMX_ARRAY_LEN(mc_responses));
}
END_TEST

START_TEST(test_mc_big)
{
    size_t len;
    char *set = make_big("set big 0 0 1048576\r\n", 1048576, '\n', "\r\n", &len);
    struct sample s = { set, len, MC_LINE, false, false };
    check_sample(&codec_memcache, false, &s, 0);
    char *get = make_big("VALUE big 0 1048576\r\n", 1048576, '\r', "\r\nEND\r\n", &len);
    struct sample r = { get, len, MC_VALUES, false, false };
    check_sample(&codec_memcache, true, &r, 0);
    free(get);
    free(set);
}
END_TEST

START_TEST(test_mc_bad)
{
    size_t len;
    char *m;

    check_bad(&codec_memcache, false, mc_bad_requests, PMX_ARRAY_LEN(mc_bad_requests));
    check_bad(&codec_memcache, true, mc_bad_responses, PMX_ARRAY_LEN(mc_bad_responses));
    expect_whole(&codec_memcache, false, 0, S("set foo 0 0 1073741824\r\nab"), CODEC_MORE, 26);
    /* a 64 KiB line, and a long multi-key get */
    m = make_big("delete ", 64 * 1024 + 2, 'k', "", &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("get ", 100 * 1024, 'k', "\r\n", &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_DONE, len);
    free(m);
    m = make_big("get ", 2 * 1024 * 1024, 'k', "", &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = make_big("STAT ", 64 * 1024 + 2, 's', "", &len);
    expect_whole(&codec_memcache, true, MC_STATS, m, len, CODEC_ERROR, 0);
    free(m);
}
END_TEST

START_TEST(test_mc_reply)
{
    const struct codec_ops *c = &codec_memcache;

    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "bad command line format", 512,
                 "CLIENT_ERROR bad command line format\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream closed", 512,
                 "SERVER_ERROR proximux: upstream closed\r\n");
    expect_reply(c, CODEC_REPLY_TIMEOUT, "timed out", 512, "SERVER_ERROR proximux: timed out\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 512, "SERVER_ERROR proximux: queue full\r\n");
    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "a\r\nb", 512, "CLIENT_ERROR ab\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 512, "");
    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "too long", 18, "CLIENT_ERROR too\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream", 25, "SERVER_ERROR proximux: \r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream", 24, "");
}
END_TEST

Suite *codec_memcache_suite(void)
{
    Suite *s = suite_create("codec_memcache");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mc_requests);
    tcase_add_test(tc, test_mc_responses);
    tcase_add_test(tc, test_mc_bad);
    tcase_add_test(tc, test_mc_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_mc_big);
    suite_add_tcase(s, big);
    return s;
}
