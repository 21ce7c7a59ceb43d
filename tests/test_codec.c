/* Codec tests: every corpus message split at every byte and fed one byte at
 * a time through a driver that behaves like the exchange, streams of
 * messages back to back, malformed and oversized input, reply bytes. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "suites.h"

/* Same values as the codecs' private bits (codec_memcache.c, codec_http.c). */
#define MC_LINE   CODEC_INFO_PRIVATE(1)
#define MC_VALUES CODEC_INFO_PRIVATE(2)
#define MC_STATS  CODEC_INFO_PRIVATE(3)
#define MC_META   CODEC_INFO_PRIVATE(4)
#define HTTP_HEAD CODEC_INFO_PRIVATE(1)

#define S(str) str, sizeof(str) - 1

/* ck_assert reports every passing check to the parent process (a syscall):
 * loops that run a million times check with this instead. */
#define REQUIRE(cond, ...) \
    do { \
        if (!(cond)) \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* One well-formed message. For a request, info is what parse_request must
 * find; for a response, the request's info handed to response_begin. */
struct sample {
    const char *data;
    size_t len;
    uint32_t info;
    bool until_close;       /* response ends at end of stream: parse returns MORE */
    bool close_after;
};

/* One malformed message: error is a substring of p->error, or NULL. */
struct bad {
    const char *data;
    size_t len;
    uint32_t info;
    const char *error;
};

struct outcome {
    int rc;
    uint64_t used;      /* bytes consumed */
    size_t left;        /* bytes handed over or not yet fed, not consumed */
    uint32_t info;
    bool until_close;
    bool close_after;
    const char *error;
};

static void begin(const struct codec_ops *c, bool response, struct codec_parser *p, uint32_t info)
{
    memset(p, 0x5a, sizeof(*p));    /* begin must initialize everything */
    if (response)
        c->response_begin(p, info);
    else
        c->request_begin(p);
}

static int parse(const struct codec_ops *c, bool response, struct codec_parser *p,
                 const char *data, size_t len, size_t *used)
{
    return response ? c->parse_response(p, data, len, used) : c->parse_request(p, data, len, used);
}

/*
 * Feeds msg[0..len) to a fresh parser the way the exchange does: a first
 * piece of `first` bytes, then pieces of `step` bytes; the bytes a parser
 * leaves are handed over again in front of the next piece, in a buffer of
 * exactly the size given, so that ASan catches any read beyond len. A parser
 * that returns MORE must have consumed all it can: given the same bytes
 * again, it consumes nothing. Stops at DONE or ERROR.
 */
static struct outcome drive(const struct codec_ops *c, bool response, uint32_t info,
                            const char *msg, size_t len, size_t first, size_t step)
{
    struct codec_parser p;
    struct outcome o = { .rc = CODEC_MORE };
    char *pending = NULL;
    size_t plen = 0, fed = 0, used;

    begin(c, response, &p, info);
    while (fed < len) {
        size_t n = PMX_MIN(fed == 0 ? first : step, len - fed);
        char *buf = malloc(plen + n);
        REQUIRE(buf != NULL, "out of memory");
        if (plen > 0)
            memcpy(buf, pending, plen);
        memcpy(buf + plen, msg + fed, n);
        free(pending);
        pending = buf;
        plen += n;
        fed += n;
        used = (size_t)-1;
        int rc = parse(c, response, &p, pending, plen, &used);
        if (rc == CODEC_ERROR) {
            REQUIRE(p.error != NULL, "%s: CODEC_ERROR without a reason", c->name);
            o.rc = rc;
            o.error = p.error;
            break;
        }
        REQUIRE(rc == CODEC_MORE || rc == CODEC_DONE, "%s: bad status %d", c->name, rc);
        REQUIRE(used <= plen, "%s: used %zu of %zu", c->name, used, plen);
        o.used += used;
        REQUIRE(p.size == o.used, "%s: size %llu, consumed %llu", c->name,
                (unsigned long long)p.size, (unsigned long long)o.used);
        memmove(pending, pending + used, plen - used);
        plen -= used;
        if (rc == CODEC_DONE) {
            o.rc = rc;
            break;
        }
        if (plen > 0) {
            char *again = malloc(plen);
            REQUIRE(again != NULL, "out of memory");
            memcpy(again, pending, plen);
            rc = parse(c, response, &p, again, plen, &used);
            free(again);
            REQUIRE(rc == CODEC_MORE && used == 0,
                    "%s: the same %zu bytes again gave %d and consumed %zu", c->name, plen, rc, used);
        }
    }
    o.left = plen + (len - fed);
    o.info = p.info;
    o.until_close = p.until_close;
    o.close_after = p.close_after;
    free(pending);
    return o;
}

static void expect_sample(const struct codec_ops *c, bool response, const struct sample *s,
                          struct outcome o, int idx, size_t first, size_t step)
{
    int rc = s->until_close ? CODEC_MORE : CODEC_DONE;

    REQUIRE(o.rc == rc && o.used == s->len && o.left == 0,
                  "%s %s #%d first %zu step %zu: rc %d (want %d), used %llu of %zu, %s",
                  c->name, response ? "response" : "request", idx, first, step, o.rc, rc,
                  (unsigned long long)o.used, s->len, o.error ? o.error : "");
    REQUIRE(o.info == s->info, "%s #%d first %zu: info %#x, want %#x",
                  c->name, idx, first, o.info, s->info);
    if (response) {
        REQUIRE(o.until_close == s->until_close && o.close_after == s->close_after,
                      "%s response #%d first %zu: until_close %d close_after %d",
                      c->name, idx, first, o.until_close, o.close_after);
    }
}

/* Whole, split in two at every byte (a sampling of them for big messages),
 * and one byte at a time. */
static void check_sample(const struct codec_ops *c, bool response, const struct sample *s, int idx)
{
    expect_sample(c, response, s, drive(c, response, s->info, s->data, s->len, s->len, s->len),
                  idx, s->len, s->len);
    for (size_t k = 1; k < s->len; k++) {
        if (s->len > 4096 && k > 300 && k < s->len - 300 && k % 4099 != 0)
            continue;
        expect_sample(c, response, s, drive(c, response, s->info, s->data, s->len, k, s->len),
                      idx, k, s->len);
    }
    expect_sample(c, response, s, drive(c, response, s->info, s->data, s->len, 1, 1), idx, 1, 1);
    expect_sample(c, response, s, drive(c, response, s->info, s->data, s->len, 7, 13), idx, 7, 13);
}

static void check_samples(const struct codec_ops *c, bool response, const struct sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_sample(c, response, &s[i], (int)i);
}

/* Every way of feeding a malformed message ends in CODEC_ERROR. */
static void check_bad(const struct codec_ops *c, bool response, const struct bad *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 1; k <= b[i].len; k++) {
            if (b[i].len > 4096 && k > 64 && k < b[i].len - 64 && k % 4099 != 0)
                continue;
            size_t step = k == 1 ? 1 : b[i].len;
            struct outcome o = drive(c, response, b[i].info, b[i].data, b[i].len, k, step);
            REQUIRE(o.rc == CODEC_ERROR, "%s %s bad #%zu first %zu: rc %d, used %llu",
                          c->name, response ? "response" : "request", i, k, o.rc,
                          (unsigned long long)o.used);
            if (b[i].error != NULL)
                REQUIRE(strstr(o.error, b[i].error) != NULL,
                              "%s bad #%zu: error \"%s\", want \"%s\"", c->name, i, o.error, b[i].error);
        }
    }
}

static uint32_t rand_next(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/*
 * Streams the messages of s[] back to back, in pieces of 1..max_piece
 * bytes (pseudo-random sizes from seed; max_piece 0: the whole stream in
 * one piece). Each message must end exactly at its boundary with its info;
 * the bytes after a DONE are parsed as the next message at once.
 */
static void check_stream(const struct codec_ops *c, bool response, const struct sample *s,
                         size_t n, size_t max_piece, uint32_t seed)
{
    size_t total = 0, off = 0;
    for (size_t i = 0; i < n; i++)
        total += s[i].len;
    char *stream = malloc(total);
    size_t *ends = malloc(n * sizeof(*ends));
    ck_assert(stream != NULL && ends != NULL);
    for (size_t i = 0; i < n; i++) {
        memcpy(stream + off, s[i].data, s[i].len);
        off += s[i].len;
        ends[i] = off;
    }

    struct codec_parser p;
    char *pending = malloc(total);
    size_t plen = 0, fed = 0, consumed = 0, msg = 0;
    ck_assert_ptr_nonnull(pending);
    begin(c, response, &p, s[0].info);
    while (msg < n) {
        REQUIRE(fed < total, "%s stream: input ended in message %zu", c->name, msg);
        size_t piece = max_piece == 0 ? total : 1 + rand_next(&seed) % max_piece;
        piece = PMX_MIN(piece, total - fed);
        memcpy(pending + plen, stream + fed, piece);
        plen += piece;
        fed += piece;
        for (;;) {
            size_t used;
            char *buf = malloc(plen ? plen : 1);
            REQUIRE(buf != NULL, "out of memory");
            memcpy(buf, pending, plen);
            int rc = parse(c, response, &p, buf, plen, &used);
            free(buf);
            REQUIRE(rc != CODEC_ERROR, "%s stream message %zu: %s", c->name, msg, p.error);
            consumed += used;
            memmove(pending, pending + used, plen - used);
            plen -= used;
            if (rc == CODEC_MORE)
                break;
            REQUIRE(consumed == ends[msg], "%s stream message %zu ends at %zu, want %zu",
                          c->name, msg, consumed, ends[msg]);
            if (!response)
                REQUIRE(p.info == s[msg].info, "%s stream message %zu: info %#x want %#x",
                              c->name, msg, p.info, s[msg].info);
            if (++msg == n)
                break;
            begin(c, response, &p, s[msg].info);
            if (plen == 0)
                break;
        }
    }
    ck_assert_uint_eq(consumed, total);
    free(pending);
    free(ends);
    free(stream);
}

static void check_streams(const struct codec_ops *c, bool response, const struct sample *s, size_t n)
{
    check_stream(c, response, s, n, 0, 1);
    check_stream(c, response, s, n, 1, 1);
    for (uint32_t seed = 1; seed <= 20; seed++)
        check_stream(c, response, s, n, 2 + seed * 7, seed);
}

/* A message made of head, fill bytes of value c, and tail. */
static char *make_big(const char *head, size_t fill, char c, const char *tail, size_t *len)
{
    size_t h = strlen(head), t = strlen(tail);
    char *m = malloc(h + fill + t);

    ck_assert_ptr_nonnull(m);
    memcpy(m, head, h);
    memset(m + h, c, fill);
    memcpy(m + h + fill, tail, t);
    *len = h + fill + t;
    return m;
}

/* Feeds data whole and expects status rc with exactly used bytes consumed. */
static void expect_whole(const struct codec_ops *c, bool response, uint32_t info,
                         const char *data, size_t len, int rc, size_t used_want)
{
    struct codec_parser p;
    size_t used = (size_t)-1;

    begin(c, response, &p, info);
    int got = parse(c, response, &p, data, len, &used);
    ck_assert_msg(got == rc, "%s: rc %d, want %d (%s)", c->name, got, rc, got == CODEC_ERROR ? p.error : "");
    if (rc != CODEC_ERROR)
        ck_assert_uint_eq(used, used_want);
}

static void expect_reply(const struct codec_ops *c, enum codec_reply kind, const char *reason,
                         size_t cap, const char *want)
{
    char out[1024];

    memset(out, '#', sizeof(out));
    size_t n = c->reply(kind, reason, out, cap);
    ck_assert_msg(n == strlen(want) && memcmp(out, want, n) == 0,
                  "%s reply %d cap %zu: got \"%.*s\" (%zu), want \"%s\"",
                  c->name, (int)kind, cap, (int)n, out, n, want);
    ck_assert_msg(n == sizeof(out) || out[n] == '#', "%s reply wrote beyond its length", c->name);
}

/* ---------------------------------------------------------------- registry */

START_TEST(test_find)
{
    ck_assert_ptr_eq(codec_find("raw"), &codec_raw);
    ck_assert_ptr_eq(codec_find("line"), &codec_line);
    ck_assert_ptr_eq(codec_find("resp"), &codec_resp);
    ck_assert_ptr_eq(codec_find("memcache"), &codec_memcache);
    ck_assert_ptr_eq(codec_find("http"), &codec_http);
    ck_assert_ptr_null(codec_find("redis"));
    ck_assert_ptr_null(codec_find(""));
    ck_assert_ptr_null(codec_find(NULL));
    ck_assert_str_eq(codec_names(), "raw, line, resp, memcache, http");
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

Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("basic");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_raw);
    tcase_add_test(tc, test_line);
    tcase_add_test(tc, test_resp_requests);
    tcase_add_test(tc, test_resp_responses);
    tcase_add_test(tc, test_resp_bad);
    tcase_add_test(tc, test_resp_reply);
    tcase_add_test(tc, test_mc_requests);
    tcase_add_test(tc, test_mc_responses);
    tcase_add_test(tc, test_mc_bad);
    tcase_add_test(tc, test_mc_reply);
    tcase_add_test(tc, test_http_requests);
    tcase_add_test(tc, test_http_responses);
    tcase_add_test(tc, test_http_bad);
    tcase_add_test(tc, test_http_flags);
    tcase_add_test(tc, test_http_expect_continue);
    tcase_add_test(tc, test_http_reply);
    suite_add_tcase(s, tc);

    TCase *big = tcase_create("big");
    tcase_set_timeout(big, 300);
    tcase_add_test(big, test_resp_big);
    tcase_add_test(big, test_mc_big);
    tcase_add_test(big, test_http_big);
    suite_add_tcase(s, big);
    return s;
}
