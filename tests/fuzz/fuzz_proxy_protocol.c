/* libFuzzer harness for the PROXY protocol decoder (and the CIDR parser
 * accept_proxy_from uses). The input is fed whole, then one byte at a time,
 * then in pieces whose sizes come from the input's first byte: every way
 * must end the same (status, bytes consumed, addresses), never consume past
 * the header's bound, and a decoded address must survive a re-encode in
 * both versions. The input is also parsed as a CIDR range. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr.h"
#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_proxy_protocol: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

/* Feeds data in pieces of `piece` bytes (0: whole). */
static enum proxy_protocol_status feed(struct proxy_protocol_decoder *d, const uint8_t *data, size_t size,
                                       size_t piece, size_t *consumed)
{
    enum proxy_protocol_status st = PROXY_PROTOCOL_MORE;
    size_t at = 0;

    proxy_protocol_decoder_init(d);
    *consumed = 0;
    do {
        size_t n = piece == 0 ? size - at : PMX_MIN(piece, size - at);
        size_t used;
        st = proxy_protocol_decode(d, data + at, n, &used);
        CHECK(used <= n, "used %zu of %zu", used, n);
        CHECK(st != PROXY_PROTOCOL_MORE || used == n, "MORE but used %zu of %zu", used, n);
        *consumed += used;
        at += n;
    } while (st == PROXY_PROTOCOL_MORE && at < size);
    return st;
}

static void same(const struct proxy_protocol_decoder *a, const struct proxy_protocol_decoder *b)
{
    CHECK(a->local == b->local, "local differs");
    CHECK(a->src_len == b->src_len && memcmp(&a->src, &b->src, a->src_len) == 0, "src differs");
    CHECK(a->dst_len == b->dst_len && memcmp(&a->dst, &b->dst, a->dst_len) == 0, "dst differs");
}

static void roundtrip(const struct proxy_protocol_decoder *d)
{
    char out[PROXY_PROTOCOL_ENCODE_MAX];

    for (int v = PROXY_PROTOCOL_V1; v <= PROXY_PROTOCOL_V2; v++) {
        struct proxy_protocol_decoder e;
        size_t used;
        size_t n = proxy_protocol_encode((enum proxy_protocol_version)v, (const struct sockaddr *)&d->src,
                                         d->src_len, (const struct sockaddr *)&d->dst, d->dst_len, out, sizeof(out));
        CHECK(n > 0, "encode v%d failed", v);
        proxy_protocol_decoder_init(&e);
        CHECK(proxy_protocol_decode(&e, out, n, &used) == PROXY_PROTOCOL_DONE, "re-decode v%d: %s", v,
              e.error ? e.error : "more");
        CHECK(used == n, "re-decode v%d used %zu of %zu", v, used, n);
        same(d, &e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_protocol_decoder whole, bytes, pieces;
    size_t c1, c2, c3;
    size_t piece = size > 0 ? (size_t)(data[0] % 17) + 2 : 1;

    enum proxy_protocol_status s1 = feed(&whole, data, size, 0, &c1);
    enum proxy_protocol_status s2 = feed(&bytes, data, size, 1, &c2);
    enum proxy_protocol_status s3 = feed(&pieces, data, size, piece, &c3);
    CHECK(s1 == s2 && s1 == s3, "status %d %d %d", s1, s2, s3);
    if (s1 == PROXY_PROTOCOL_DONE) {
        CHECK(c1 == c2 && c1 == c3, "consumed %zu %zu %zu", c1, c2, c3);
        CHECK(c1 <= (whole.version == 1 ? (size_t)PROXY_PROTOCOL_V1_MAX
                                        : (size_t)PROXY_PROTOCOL_V2_FIXED + PROXY_PROTOCOL_V2_MAX_LEN),
              "header of %zu bytes", c1);
        same(&whole, &bytes);
        same(&whole, &pieces);
        if (!whole.local)
            roundtrip(&whole);
    } else if (s1 == PROXY_PROTOCOL_ERROR) {
        CHECK(whole.error != NULL && bytes.error != NULL && pieces.error != NULL, "error without reason");
    }

    /* The input as a CIDR range: a parsed one matches its own network. */
    char text[CIDR_TEXT_MAX + 8];
    size_t tlen = PMX_MIN(size, sizeof(text) - 1);
    memcpy(text, data, tlen);
    text[tlen] = '\0';
    struct cidr c;
    char err[128];
    if (cidr_parse(text, &c, err, sizeof(err)) == PMX_OK) {
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        if (c.family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)(void *)&ss;
            a->sin_family = AF_INET;
            memcpy(&a->sin_addr, c.addr, 4);
            CHECK(cidr_match(&c, (struct sockaddr *)a, sizeof(*a)), "%s misses its network", text);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)&ss;
            a->sin6_family = AF_INET6;
            memcpy(&a->sin6_addr, c.addr, 16);
            CHECK(cidr_match(&c, (struct sockaddr *)a, sizeof(*a)), "%s misses its network", text);
        }
        CHECK(c.prefix >= 0 && c.prefix <= (c.family == AF_INET ? 32 : 128), "prefix %d", c.prefix);
    }
    return 0;
}
