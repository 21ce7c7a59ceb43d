/* The codec test driver: see codec_check.h. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec_check.h"

void begin(const struct codec_ops *c, bool response, struct codec_parser *p, uint32_t info)
{
    memset(p, 0x5a, sizeof(*p));    /* begin must initialize everything */
    if (response)
        c->response_begin(p, info);
    else
        c->request_begin(p);
}

int parse(const struct codec_ops *c, bool response, struct codec_parser *p,
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
struct outcome drive(const struct codec_ops *c, bool response, uint32_t info,
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
void check_sample(const struct codec_ops *c, bool response, const struct sample *s, int idx)
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

void check_samples(const struct codec_ops *c, bool response, const struct sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_sample(c, response, &s[i], (int)i);
}

/* Every way of feeding a malformed message ends in CODEC_ERROR. */
void check_bad(const struct codec_ops *c, bool response, const struct bad *b, size_t n)
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

void check_streams(const struct codec_ops *c, bool response, const struct sample *s, size_t n)
{
    check_stream(c, response, s, n, 0, 1);
    check_stream(c, response, s, n, 1, 1);
    for (uint32_t seed = 1; seed <= 20; seed++)
        check_stream(c, response, s, n, 2 + seed * 7, seed);
}

/* A message made of head, fill bytes of value c, and tail. */
char *make_big(const char *head, size_t fill, char c, const char *tail, size_t *len)
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
void expect_whole(const struct codec_ops *c, bool response, uint32_t info,
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

void expect_reply(const struct codec_ops *c, enum codec_reply kind, const char *reason,
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
