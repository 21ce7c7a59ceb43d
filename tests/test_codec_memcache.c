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

#define K50  "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
#define K250 K50 K50 K50 K50 K50
#define K251 K250 "k"
/* 16 distinct meta flags memcached 1.6.18 accepts on ms and mg */
#define FLAGS16 "T0 I k c s t f v h u l O1 P L R0 N0"
/* A quiet group: a quiet meta command up to and including "mn" (same
 * value as MC_SHAPE_QUIET in codec_memcache.c). */
#define MC_QUIET CODEC_INFO_PRIVATE(5)

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
    /* quiet commands: one request up to the client's mn, meta commands
     * quiet or not in between, data blocks holding "mn\r\n" */
    { S("mg foo v q\r\nmn\r\n"), MC_QUIET, false, false },
    { S("mg a v q\r\nmg b v qx k O1\r\nmg c v\r\nme d\r\nmn\r\n"), MC_QUIET, false, false },
    { S("ms foo 4 q\r\nmn\r\n\r\nms bar 2 T0\r\nxy\r\nmd foo q\r\nma n q\r\nmn\r\n"), MC_QUIET, false, false },
    { S("md foo q\nmn\n"), MC_QUIET, false, false },
    { S("ms foo 5 T60 F3\r\nhello\r\n"), MC_META, false, false },
    { S("ms foo 7 q\r\n\r\nEND\r\n\r\nmn\r\n"), MC_QUIET, false, false },
    { S("md foo\r\n"), MC_META, false, false },
    { S("ma foo v D5\r\n"), MC_META, false, false },
    { S("mn\r\n"), MC_META, false, false },
    { S("me foo\r\n"), MC_META, false, false },
    { S("me Zm9v b\r\n"), MC_META, false, false },
    /* noreply where memcached honours it, even in an argument's place */
    { S("set k 0 0 2 junk\r\nxy\r\n"), MC_LINE, false, false },
    { S("incr k noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("touch k noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("delete k 0\r\n"), MC_LINE, false, false },
    { S("delete k 0 noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("delete k x noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("delete k x\r\n"), MC_LINE, false, false },
    { S("verbosity noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("verbosity 1 noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("flush_all noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("flush_all noreply 10\r\n"), MC_LINE, false, false },
    { S("get noreply\r\n"), MC_VALUES, false, false },
    /* numbers as memcached reads them: leading zeros, negative exptime */
    { S("set k 007 -1 0002\r\nab\r\n"), MC_LINE, false, false },
    { S("ms k 00\r\n\r\n"), MC_META, false, false },
    /* keys of exactly 250 bytes */
    { S("set " K250 " 0 0 1\r\nx\r\n"), MC_LINE, false, false },
    { S("get a " K250 " b\r\n"), MC_VALUES, false, false },
    { S("gat 10 " K250 "\r\n"), MC_VALUES, false, false },
    { S("ms " K250 " 1 T0\r\nx\r\n"), MC_META, false, false },
    { S("mg " K250 " v\r\n"), MC_META, false, false },
    { S("delete " K250 " noreply\r\n"), MC_LINE | CODEC_INFO_NOREPLY, false, false },
    { S("incr " K250 " 1\r\n"), MC_LINE, false, false },
    { S("touch " K250 " 1\r\n"), MC_LINE, false, false },
    /* the most flags memcached takes: 16 for ms, 17 for mg/md/ma; an
     * opaque token of 32 bytes */
    { S("ms k 2 " FLAGS16 "\r\nhi\r\n"), MC_META, false, false },
    { S("ms k 10 " FLAGS16 "\r\nget secret\r\n"), MC_META, false, false },
    { S("mg k " FLAGS16 " F0\r\n"), MC_META, false, false },
    { S("ma k " FLAGS16 " F0\r\n"), MC_META, false, false },
    { S("mg k O1234567890123456789012345678901\r\n"), MC_META, false, false },
    /* stats whose reply ends with END, RESET or OK; the others refused */
    { S("stats items\r\n"), MC_STATS, false, false },
    { S("stats reset\r\n"), MC_STATS, false, false },
    { S("stats detail dump\r\n"), MC_STATS, false, false },
    { S("stats cachedump 1 10\r\n"), MC_STATS, false, false },
    { S("stats sizes_enable\r\n"), MC_STATS | CODEC_INFO_UNSUPPORTED, false, false },
    { S("stats sizes_disable\r\n"), MC_STATS | CODEC_INFO_UNSUPPORTED, false, false },
    { S("stats detail\r\n"), MC_STATS | CODEC_INFO_UNSUPPORTED, false, false },
    { S("stats proxy\r\n"), MC_STATS | CODEC_INFO_UNSUPPORTED, false, false },
    /* spaces between and after tokens, control bytes memcached keeps in a
     * key; the data block may hold anything */
    { S("get  a   b \r\n"), MC_VALUES, false, false },
    { S("get a\tb\x01\r\n"), MC_VALUES, false, false },
    { S("set k 0 0 4\r\n\0\r\x80\n\r\n"), MC_LINE, false, false },
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
    /* a quiet group: hits, errors, data blocks holding "MN\r\n", then MN */
    { S("MN\r\n"), MC_QUIET, false, false },
    { S("VA 4 kb\r\nMN\r\n\r\nHD\r\nEN\r\nNS\r\nCLIENT_ERROR bad data chunk\r\nSERVER_ERROR x\r\nVA 0\r\n\r\nMN\r\n"), MC_QUIET, false, false },
};

static const struct bad mc_bad_requests[] = {
    { S("bogus\r\n"), 0, "\"bogus\": unknown command" },
    { S("b\x01\"gus x\r\n"), 0, "\"b??gus\": unknown command" },
    { S("kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\r\n"), 0, "\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\": unknown command" },
    { S("mg " K251 " v\r\n"), 0, "\"mg\": key too long" },
    /* a quiet group holds meta commands only, each checked as alone */
    { S("mg a q v\r\nget a\r\nmn\r\n"), 0, "\"get\": not a meta command inside a quiet meta group" },
    { S("md a q\r\nset a 0 0 1 noreply\r\nx\r\nmn\r\n"), 0, "\"set\": not a meta command inside a quiet meta group" },
    { S("mg a q v\r\nmg " K251 " v\r\nmn\r\n"), 0, "key too long" },
    { S("ms a 1 q\r\nxy\r\nmn\r\n"), 0, "bad data chunk" },
    { S("mg a q\r\n\x80"), 0, "binary protocol" },
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
    /* oversized */
    { S("set foo 0 0 1073741825\r\n"), 0, "chunk size" },
    { S("ms foo 99999999999999999999\r\n"), 0, "chunk size" },
    /* The audit's bytes. memcached stops reading a line at a NUL: it
     * answers ERROR and runs the data block as a command; it answers a
     * noreply delete, or leaves the other one unanswered. */
    { S("set a\0 0 0 10\r\nget secret\r\n"), 0, "NUL in command line" },
    { S("delete k noreply\0\r\n"), 0, "NUL in command line" },
    { S("delete k\0 noreply\r\n"), 0, "NUL in command line" },
    { S("\0"), 0, "NUL in command line" },
    /* memcached refuses the ms line and runs its data block as a command */
    { S("ms " K251 " 10\r\nget secret\r\n"), 0, "key too long" },
    { S("ms k 10 " FLAGS16 " F0\r\nget secret\r\n"), 0, "too many meta flags" },
    /* a CR other than the one before the LF: memcached keeps it in a token
     * ("5\r" is 5 to strtol, "noreply\r" is not noreply) */
    { S("set k 0 0 5\r\r\nhello\r\n"), 0, "CR inside" },
    { S("delete k noreply\r\r\n"), 0, "CR inside" },
    { S("get a\rb\r\n"), 0, "CR inside" },
    { S("\rget k\r\n"), 0, "CR inside" },
    /* keys of 251 bytes */
    { S("set " K251 " 0 0 1\r\nx\r\n"), 0, "key too long" },
    { S("cas " K251 " 0 0 1 1\r\nx\r\n"), 0, "key too long" },
    { S("get " K251 "\r\n"), 0, "key too long" },
    { S("gets a b " K251 " c\r\n"), 0, "key too long" },
    { S("gat 0 " K251 "\r\n"), 0, "key too long" },
    { S("mg " K251 " v\r\n"), 0, "key too long" },
    { S("md " K251 "\r\n"), 0, "key too long" },
    { S("ma " K251 "\r\n"), 0, "key too long" },
    { S("me " K251 "\r\n"), 0, "key too long" },
    { S("delete " K251 "\r\n"), 0, "key too long" },
    { S("delete " K251 " noreply\r\n"), 0, "key too long" },
    { S("incr " K251 " 1\r\n"), 0, "key too long" },
    { S("touch " K251 " 1\r\n"), 0, "key too long" },
    /* meta flags past memcached's limits */
    { S("mg k " FLAGS16 " F0 J0\r\n"), 0, "too many meta flags" },
    { S("md k " FLAGS16 " F0 J0\r\n"), 0, "too many meta flags" },
    { S("mg k O12345678901234567890123456789012\r\n"), 0, "opaque token too long" },
    { S("ms k 1 O12345678901234567890123456789012\r\nx\r\n"), 0, "opaque token too long" },
    /* more tokens than the command takes, past MAX_TOKENS too */
    { S("set k 0 0 1 noreply x\r\nx\r\n"), 0, "bad command line" },
    { S("set k 0 0 1 a b c d e f g h i j k l m n o p q r s t u v w x y z\r\nx\r\n"), 0, "bad command line" },
    { S("incr k 1 noreply x\r\n"), 0, "bad command line" },
    { S("delete k 0 noreply x\r\n"), 0, "bad command line" },
    { S("flush_all 1 noreply x\r\n"), 0, "bad command line" },
    { S("verbosity\r\n"), 0, "bad command line" },
    { S("mn x\r\n"), 0, "bad command line" },
    { S("stats a b c d\r\n"), 0, "bad command line" },
    /* storage fields memcached's safe_strto* would refuse, or that it reads
     * differently: refused before the data block */
    { S("set k -1 0 1\r\nx\r\n"), 0, "bad command line" },
    { S("set k +1 0 1\r\nx\r\n"), 0, "bad command line" },
    { S("set k 0 2147483648 1\r\nx\r\n"), 0, "bad command line" },
    { S("set k 0 0 +1\r\nx\r\n"), 0, "chunk size" },
    { S("set k 0 0 4294967297\r\nx\r\n"), 0, "chunk size" },
    { S("set k 0 0 1\tx\r\nx\r\n"), 0, "chunk size" },
    { S("set k 0 0 noreply\r\n"), 0, "chunk size" },
    { S("cas k 0 0 1 noreply\r\nx\r\n"), 0, "bad command line" },
    { S("cas k 0 0 1 -1\r\nx\r\n"), 0, "bad command line" },
    { S("ms k -1\r\n"), 0, "chunk size" },
    { S("ms k S1\r\nx\r\n"), 0, "chunk size" },
    /* what memcached's dispatch does not read as this protocol */
    { S("\x80\x00\x00\x05"), 0, "binary protocol not supported" },
    { S("\x80"), 0, "binary protocol not supported" },
    { S(" get k\r\n"), 0, "starts with a space" },
    { S(" \r\n"), 0, "starts with a space" },
    { S("get\tk\r\n"), 0, "unknown command" },
    { S("bget k\r\n"), 0, "unknown command" },
    { S("GET / HTTP/1.1\r\n"), 0, "unknown command" },
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
    { S("HD\r\nVA x\r\n"), MC_QUIET, "bad VA line" },
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
    check_bad(&codec_memcache, false, mc_bad_requests, PMX_ARRAY_LEN(mc_bad_requests));
    check_bad(&codec_memcache, true, mc_bad_responses, PMX_ARRAY_LEN(mc_bad_responses));
    expect_whole(&codec_memcache, false, 0, S("set foo 0 0 1073741824\r\nab"), CODEC_MORE, 26);
    /* refused as soon as the byte that decides has come */
    expect_whole(&codec_memcache, false, 0, S("\x80"), CODEC_ERROR, 0);
    expect_whole(&codec_memcache, false, 0, S(" "), CODEC_ERROR, 0);
    expect_whole(&codec_memcache, false, 0, S("set a\0"), CODEC_ERROR, 0);
    expect_whole(&codec_memcache, false, 0, S("get a\rb"), CODEC_ERROR, 0);
    expect_whole(&codec_memcache, false, 0, S("get a\r"), CODEC_MORE, 0);
    expect_whole(&codec_memcache, false, 0, S("\r"), CODEC_MORE, 0);
    /* a quiet group's lines are consumed as they come; it ends with mn */
    expect_whole(&codec_memcache, false, 0, S("mg a q v\r\nmg b q v\r\nm"), CODEC_MORE, 20);
    expect_whole(&codec_memcache, false, 0, S("mg a q v\r\nmn\r\nmn\r\n"), CODEC_DONE, 14);
}
END_TEST

/* A line of exactly len bytes: head, spaces, tail ("\r\n", or "" for a
 * line still coming). */
static char *mc_line(const char *head, size_t len, const char *tail)
{
    size_t n;
    char *m = make_big(head, len - strlen(head) - strlen(tail), ' ', tail, &n);

    ck_assert_uint_eq(n, len);
    return m;
}

/* A get line of about len bytes with keys of 8 bytes, CRLF at the end. */
static char *mc_get_line(const char *cmd, size_t len, size_t *n)
{
    char *m = malloc(len + 32);

    ck_assert_ptr_nonnull(m);
    size_t off = (size_t)sprintf(m, "%s", cmd);
    for (unsigned i = 0; off < len; i++)
        off += (size_t)sprintf(m + off, " k%06u", i % 1000000);
    memcpy(m + off, "\r\n", 2);
    *n = off + 2;
    return m;
}

/* Line lengths: memcached closes the connection when more than 2048 bytes
 * of a line that does not start with "get " or "gets " are in without a
 * newline. */
START_TEST(test_mc_limits)
{
    static const char *const heads[] = { "delete k", "mg k v", "set k 0 0 1", "gat 0 k", "gats 0 k", "ms k 1" };
    struct sample s = { NULL, 0, 0, false, false };
    size_t len;
    char *m;

    for (size_t i = 0; i < PMX_ARRAY_LEN(heads); i++) {
        bool data = heads[i][0] == 's' || heads[i][1] == 's';
        /* 2048 bytes with the CRLF: forwarded */
        m = mc_line(heads[i], 2048, "\r\n");
        s.data = m;
        s.len = 2048;
        s.info = heads[i][0] == 'g' ? MC_VALUES : heads[i][0] == 'm' ? MC_META : MC_LINE;
        if (!data)
            check_sample(&codec_memcache, false, &s, (int)i);
        expect_whole(&codec_memcache, false, 0, m, 2048, data ? CODEC_MORE : CODEC_DONE, 2048);
        /* 2047 bytes without a newline yet: waits */
        expect_whole(&codec_memcache, false, 0, m, 2047, CODEC_MORE, 0);
        free(m);
        /* 2049 bytes with the CRLF, or 2048 bytes without a newline:
         * refused, at every split */
        struct bad b[2] = { { NULL, 2049, 0, "line too long" }, { NULL, 2048, 0, "line too long" } };
        char *m1 = mc_line(heads[i], 2049, "\r\n"), *m2 = mc_line(heads[i], 2048, "");
        b[0].data = m1;
        b[1].data = m2;
        check_bad(&codec_memcache, false, b, 2);
        free(m1);
        free(m2);
    }
    /* a LF alone ends a line too: 2048 bytes with it */
    m = mc_line("delete k", 2048, "\n");
    expect_whole(&codec_memcache, false, 0, m, 2048, CODEC_DONE, 2048);
    free(m);

    /* long get and gets lines are read whole, up to 2 MiB */
    m = mc_get_line("get", 100 * 1024, &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_DONE, len);
    for (size_t first = 1; first < len; first += first < 8192 ? 997 : 30011) {
        struct outcome o = drive(&codec_memcache, false, 0, m, len, first, 4096);
        ck_assert_msg(o.rc == CODEC_DONE && o.used == len && o.info == MC_VALUES,
                      "get line first %zu: rc %d used %llu", first, o.rc, (unsigned long long)o.used);
    }
    free(m);
    m = mc_get_line("gets", 4000, &len);
    s.data = m;
    s.len = len;
    s.info = MC_VALUES;
    check_sample(&codec_memcache, false, &s, 0);
    free(m);
    m = mc_get_line("gat 0", 4000, &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    m = mc_line("get k", 2 * 1024 * 1024, "\r\n");
    expect_whole(&codec_memcache, false, 0, m, 2 * 1024 * 1024, CODEC_DONE, 2 * 1024 * 1024);
    free(m);
    m = mc_line("get k", 2 * 1024 * 1024 + 1, "\r\n");
    expect_whole(&codec_memcache, false, 0, m, 2 * 1024 * 1024 + 1, CODEC_ERROR, 0);
    free(m);
    m = make_big("get ", 2 * 1024 * 1024, 'k', "", &len);
    expect_whole(&codec_memcache, false, 0, m, len, CODEC_ERROR, 0);
    free(m);
    /* "get" needs its space to be a get line */
    m = mc_line("get\tk", 2049, "\r\n");
    expect_whole(&codec_memcache, false, 0, m, 2049, CODEC_ERROR, 0);
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
                 "CLIENT_ERROR proximux: bad command line format\r\n");
    expect_reply(c, CODEC_REPLY_SERVER_ERROR, "upstream closed", 512,
                 "SERVER_ERROR proximux: upstream closed\r\n");
    expect_reply(c, CODEC_REPLY_TIMEOUT, "timed out", 512, "SERVER_ERROR proximux: timed out\r\n");
    expect_reply(c, CODEC_REPLY_BUSY, "queue full", 512, "SERVER_ERROR proximux: queue full\r\n");
    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "a\r\nb", 512, "CLIENT_ERROR proximux: ab\r\n");
    expect_reply(c, CODEC_REPLY_QUIT, "bye", 512, "");
    expect_reply(c, CODEC_REPLY_CLIENT_ERROR, "too long", 28, "CLIENT_ERROR proximux: too\r\n");
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
    tcase_add_test(tc, test_mc_limits);
    tcase_add_test(tc, test_mc_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_mc_big);
    suite_add_tcase(s, big);
    return s;
}
