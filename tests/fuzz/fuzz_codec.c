/* libFuzzer harness for every codec: parses a stream whole and in random
 * splits, following the caller contract of codec.h, and checks that both
 * find the same messages; then checks reply() against its own parser. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/*
 * Input layout:
 *   [0] bits 0-2: codec (raw, line, resp, memcache, http); bit 3: parse
 *       responses instead of requests
 *   [1] response side: the request info given to response_begin (bits 0-3
 *       common CODEC_INFO_*, bits 4-6 the codec's private bits); bit 7: the
 *       stream is the rest repeated up to 70000 bytes (the codecs' 64 KB
 *       line limits), split in bigger pieces
 *   [2] seed of the splits
 *   [3] reply(): kind (bits 0-2), cap (bits 3-7, x 24)
 *   rest: the byte stream; its first 64 bytes (up to a NUL) are also the
 *   reason given to reply().
 */
#define HEADER 4
#define MAX_MESSAGES 4096

static const struct codec_ops *const codecs[] = {
    &codec_raw, &codec_line, &codec_resp, &codec_memcache, &codec_http,
};

struct message {
    size_t size;
    uint32_t info;
    bool until_close;
    bool close_after;
};

/* What parsing a stream found: the whole messages, then how it stopped. */
struct result {
    struct message msgs[MAX_MESSAGES];
    size_t nmsgs;
    size_t consumed;        /* bytes of whole messages */
    size_t partial;         /* bytes of the unfinished message consumed */
    bool error;
};

struct stream {
    const struct codec_ops *codec;
    bool response;
    uint32_t info;
    struct codec_parser p;
    size_t start;           /* first byte of the current message */
    size_t pos;             /* first byte not consumed */
    size_t msg_calls_used;  /* sum of *used over this message's calls */
    bool copy;              /* pass each window in a buffer of its own */
    struct result *r;
};

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_codec: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

static void stream_begin(struct stream *s)
{
    if (s->response)
        s->codec->response_begin(&s->p, s->info);
    else
        s->codec->request_begin(&s->p);
    s->msg_calls_used = 0;
}

/* Feeds the bytes data[pos..avail) as the exchange would: in a buffer of
 * exactly that size (ASan sees a read past the end), again after every whole
 * message, until the parser wants more. Returns false once stopped by an
 * error or the message limit. */
static bool stream_feed(struct stream *s, const uint8_t *data, size_t avail)
{
    struct result *r = s->r;

    while (avail > s->pos && !r->error && r->nmsgs < MAX_MESSAGES) {
        size_t len = avail - s->pos;
        char *win = (char *)data + s->pos;
        if (s->copy) {
            win = malloc(len);
            CHECK(win != NULL, "out of memory");
            memcpy(win, data + s->pos, len);
        }
        size_t used = (size_t)-1;
        uint64_t size_before = s->p.size;
        int rc = s->response ? s->codec->parse_response(&s->p, win, len, &used)
                             : s->codec->parse_request(&s->p, win, len, &used);
        if (s->copy)
            free(win);
        if (rc == CODEC_ERROR) {
            CHECK(s->p.error != NULL && *s->p.error != '\0', "%s: CODEC_ERROR without a reason", s->codec->name);
            r->error = true;
            return false;
        }
        CHECK(rc == CODEC_MORE || rc == CODEC_DONE, "%s: status %d", s->codec->name, rc);
        CHECK(used <= len, "%s: *used %zu > len %zu", s->codec->name, used, len);
        CHECK(s->p.size == size_before + used, "%s: size grew by %llu, used %zu", s->codec->name,
              (unsigned long long)(s->p.size - size_before), used);
        s->pos += used;
        s->msg_calls_used += used;
        if (rc == CODEC_MORE) {
            /* The raw codec's messages are whole reads: nothing to wait for. */
            CHECK(!s->codec->by_read || len == 0, "raw: CODEC_MORE with %zu bytes", len);
            return true;
        }
        size_t size = s->pos - s->start;
        CHECK(size > 0, "%s: empty message", s->codec->name);
        CHECK(s->p.size == size, "%s: p->size %llu, message %zu", s->codec->name,
              (unsigned long long)s->p.size, size);
        struct message *m = &r->msgs[r->nmsgs++];
        m->size = size;
        m->info = s->p.info;
        m->until_close = s->p.until_close;
        m->close_after = s->p.close_after;
        if (s->response)
            CHECK(!s->p.until_close, "%s: until_close on a finished response", s->codec->name);
        s->start = s->pos;
        r->consumed = s->pos;
        stream_begin(s);
    }
    return !r->error && r->nmsgs < MAX_MESSAGES;
}

static void parse_stream(const struct codec_ops *codec, bool response, uint32_t info,
                         const uint8_t *data, size_t len, uint32_t seed, bool whole,
                         size_t big_step, struct result *r)
{
    /* Whole, the input's own end is the window's end. */
    struct stream s = { .codec = codec, .response = response, .info = info, .copy = !whole, .r = r };
    size_t avail = 0;

    r->nmsgs = 0;
    r->consumed = r->partial = 0;
    r->error = false;
    stream_begin(&s);
    while (avail < len) {
        size_t step = len - avail;
        if (!whole) {
            /* xorshift: many 1-3 byte pieces, some longer ones */
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            step = (seed & 3) != 0 ? 1 + (seed >> 8) % 3 : 1 + (seed >> 8) % 64;
            if (big_step > 0)
                step = 1 + (seed >> 4) % big_step;
            if (step > len - avail)
                step = len - avail;
        }
        avail += step;
        if (!stream_feed(&s, data, avail))
            break;
    }
    r->partial = s.pos - s.start;
}

/* reply() must fit cap and, where the protocol has the reply, be exactly one
 * response of that codec: the client stays in step. */
static void check_reply(const struct codec_ops *codec, enum codec_reply kind,
                        const char *reason, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    CHECK(out != NULL, "out of memory");
    size_t n = codec->reply(kind, reason, out, cap);
    CHECK(n <= cap, "%s: reply %zu bytes for cap %zu", codec->name, n, cap);
    if (n > 0 && codec != &codec_raw) {
        struct codec_parser p;
        size_t used = (size_t)-1;
        /* A memcache "get" shape: errors end any shape. HTTP: a GET. */
        uint32_t info = codec == &codec_memcache ? CODEC_INFO_PRIVATE(2) : 0;
        codec->response_begin(&p, info);
        int rc = codec->parse_response(&p, out, n, &used);
        CHECK(rc == CODEC_DONE && used == n, "%s: reply kind %d (%zu bytes) parses as rc %d used %zu: %.*s",
              codec->name, kind, n, rc, used, (int)n, out);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct result whole, split;

    if (size < HEADER)
        return 0;
    const struct codec_ops *codec = codecs[(data[0] & 7) % PMX_ARRAY_LEN(codecs)];
    bool response = (data[0] & 8) != 0;
    uint32_t info = (data[1] & 0x0fu) | CODEC_INFO_PRIVATE((data[1] >> 4) & 7u);
    uint32_t seed = 0x9e3779b9u ^ ((uint32_t)data[2] << 8) ^ data[2];
    const uint8_t *body = data + HEADER;
    size_t len = size - HEADER;
    uint8_t *big = NULL;
    size_t big_step = 0;

    if ((data[1] & 0x80) && len > 0) {
        size_t n = 70000 - 70000 % len + len;
        big = malloc(n);
        CHECK(big != NULL, "out of memory");
        for (size_t i = 0; i < n; i += len)
            memcpy(big + i, body, len);
        body = big;
        len = n;
        big_step = 8192;
    }

    parse_stream(codec, response, info, body, len, seed, true, 0, &whole);
    parse_stream(codec, response, info, body, len, seed, false, big_step, &split);

    /* raw frames by read, so splits change its messages by design. */
    if (!codec->by_read) {
        CHECK(whole.nmsgs == split.nmsgs, "%s %s: %zu messages whole, %zu split", codec->name,
              response ? "responses" : "requests", whole.nmsgs, split.nmsgs);
        for (size_t i = 0; i < whole.nmsgs; i++) {
            const struct message *a = &whole.msgs[i], *b = &split.msgs[i];
            CHECK(a->size == b->size && a->info == b->info && a->close_after == b->close_after,
                  "%s %s: message %zu: whole %zu bytes info %#x close %d, split %zu bytes info %#x close %d",
                  codec->name, response ? "responses" : "requests", i, a->size, a->info,
                  a->close_after, b->size, b->info, b->close_after);
        }
        CHECK(whole.error == split.error, "%s %s: error whole %d, split %d", codec->name,
              response ? "responses" : "requests", whole.error, split.error);
        CHECK(whole.consumed == split.consumed, "%s: consumed %zu whole, %zu split", codec->name,
              whole.consumed, split.consumed);
        if (!whole.error)
            CHECK(whole.partial == split.partial, "%s %s: unfinished message: %zu bytes consumed whole, %zu split",
                  codec->name, response ? "responses" : "requests", whole.partial, split.partial);
    }
    size_t sum = 0;
    for (size_t i = 0; i < whole.nmsgs; i++)
        sum += whole.msgs[i].size;
    CHECK(sum == whole.consumed, "%s: sizes sum to %zu, consumed %zu", codec->name, sum, whole.consumed);
    CHECK(whole.consumed + whole.partial <= len, "%s: consumed past the end", codec->name);

    char reason[65];
    size_t rlen = 0;
    while (rlen < len && rlen < 64 && body[rlen] != '\0') {
        reason[rlen] = (char)body[rlen];
        rlen++;
    }
    reason[rlen] = '\0';
    enum codec_reply kind = (enum codec_reply)((data[3] & 7) % 5);
    size_t cap = (size_t)(data[3] >> 3) * 24;
    check_reply(codec, kind, reason, cap);
    check_reply(codec, kind, NULL, 512);
    free(big);
    return 0;
}
