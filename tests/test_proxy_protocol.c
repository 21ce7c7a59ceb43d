/* Unit tests for the PROXY protocol encoder and decoder (every split of
 * valid headers, truncated and forged ones, LOCAL, unknown TLVs) and for
 * the CIDR ranges accept_proxy_from is made of. */
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "cidr.h"
#include "config_check.h"
#include "proxy_protocol.h"
#include "suites.h"

static struct sockaddr_in v4(const char *ip, int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 v6(const char *ip, int port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

/* "1.2.3.4:5" / "[::1]:5" of a decoded address. */
static void fmt(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    }
}

/* Decodes hdr+trailing data fed in the pieces cut at split points a <= b:
 * the status, and what was consumed in all. */
static enum proxy_protocol_status decode_split(struct proxy_protocol_decoder *d, const char *data, size_t len,
                                               size_t a, size_t b, size_t *consumed)
{
    size_t cuts[3] = { a, b, len };
    size_t at = 0;
    enum proxy_protocol_status st = PROXY_PROTOCOL_MORE;

    proxy_protocol_decoder_init(d);
    *consumed = 0;
    for (int i = 0; i < 3 && st == PROXY_PROTOCOL_MORE; i++) {
        size_t used;
        st = proxy_protocol_decode(d, data + at, cuts[i] - at, &used);
        ck_assert_uint_le(used, cuts[i] - at);
        *consumed += used;
        if (st == PROXY_PROTOCOL_MORE)
            ck_assert_uint_eq(used, cuts[i] - at);
        at = cuts[i];
    }
    return st;
}

/* Every split of hdr (followed by data bytes) decodes to the same result,
 * consuming exactly the header. */
static void check_every_split(const char *hdr, size_t hlen, bool local, const char *src, const char *dst)
{
    char buf[8192];
    const char tail[] = "GET / HTTP/1.0\r\n";
    size_t len = hlen + sizeof(tail) - 1;

    ck_assert_uint_le(len, sizeof(buf));
    memcpy(buf, hdr, hlen);
    memcpy(buf + hlen, tail, sizeof(tail) - 1);
    /* All pairs of cuts for short headers; with long ones, single cuts. */
    size_t step = hlen > 300 ? hlen : 1;
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b += step) {
            struct proxy_protocol_decoder d;
            size_t consumed;
            enum proxy_protocol_status st = decode_split(&d, buf, len, a, b, &consumed);
            ck_assert_msg(st == PROXY_PROTOCOL_DONE, "split %zu/%zu: %s", a, b, d.error ? d.error : "more");
            ck_assert_uint_eq(consumed, hlen);
            ck_assert_int_eq(d.local, local);
            if (!local) {
                char s[80], t[80];
                fmt(&d.src, s, sizeof(s));
                fmt(&d.dst, t, sizeof(t));
                ck_assert_str_eq(s, src);
                ck_assert_str_eq(t, dst);
            }
        }
    }
}

/* Every strict prefix of hdr asks for more; feeding it all gives want. */
static void check_truncated(const char *hdr, size_t hlen)
{
    for (size_t n = 0; n < hlen; n++) {
        struct proxy_protocol_decoder d;
        size_t used;
        proxy_protocol_decoder_init(&d);
        ck_assert_int_eq(proxy_protocol_decode(&d, hdr, n, &used), PROXY_PROTOCOL_MORE);
        ck_assert_uint_eq(used, n);
    }
}

static enum proxy_protocol_status decode_all(const void *data, size_t len, struct proxy_protocol_decoder *d)
{
    size_t used;
    proxy_protocol_decoder_init(d);
    return proxy_protocol_decode(d, data, len, &used);
}

static void check_decode_error(const void *data, size_t len)
{
    struct proxy_protocol_decoder d;
    ck_assert_msg(decode_all(data, len, &d) == PROXY_PROTOCOL_ERROR, "accepted: %.*s", (int)len, (const char *)data);
    ck_assert_ptr_nonnull(d.error);
}

START_TEST(test_pp_encode_v1)
{
    struct sockaddr_in s = v4("127.0.0.5", 40000), d = v4("127.0.0.1", 3306);
    struct sockaddr_in6 s6 = v6("2001:db8::1", 1), d6 = v6("::1", 65535);
    char out[PROXY_PROTOCOL_ENCODE_MAX];
    size_t n;

    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s, sizeof(s), (struct sockaddr *)&d, sizeof(d),
                              out, sizeof(out));
    ck_assert_uint_eq(n, strlen("PROXY TCP4 127.0.0.5 127.0.0.1 40000 3306\r\n"));
    ck_assert(memcmp(out, "PROXY TCP4 127.0.0.5 127.0.0.1 40000 3306\r\n", n) == 0);
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s6, sizeof(s6), (struct sockaddr *)&d6,
                              sizeof(d6), out, sizeof(out));
    ck_assert(memcmp(out, "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", n) == 0);
    /* A v4 client on a v6 listener: both written as IPv6. */
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s, sizeof(s), (struct sockaddr *)&d6,
                              sizeof(d6), out, sizeof(out));
    ck_assert(memcmp(out, "PROXY TCP6 ::ffff:127.0.0.5 ::1 40000 65535\r\n", n) == 0);
    /* A unix-socket client. */
    struct sockaddr_un u = { .sun_family = AF_UNIX };
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&u, sizeof(u), (struct sockaddr *)&u,
                              sizeof(u), out, sizeof(out));
    ck_assert(n == 15 && memcmp(out, "PROXY UNKNOWN\r\n", n) == 0);
    /* The longest header fits PROXY_PROTOCOL_ENCODE_MAX; too small is 0. */
    struct sockaddr_in6 big = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&big, sizeof(big), (struct sockaddr *)&big,
                              sizeof(big), out, sizeof(out));
    ck_assert_uint_eq(n, 104);
    ck_assert_uint_le(n, PROXY_PROTOCOL_V1_MAX);
    ck_assert_uint_eq(proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s, sizeof(s),
                                            (struct sockaddr *)&d, sizeof(d), out, 20), 0);
    ck_assert_uint_eq(proxy_protocol_encode(PROXY_PROTOCOL_OFF, (struct sockaddr *)&s, sizeof(s),
                                            (struct sockaddr *)&d, sizeof(d), out, sizeof(out)), 0);
}
END_TEST

START_TEST(test_pp_encode_v2_roundtrip)
{
    struct sockaddr_in s = v4("10.1.2.3", 1234), d = v4("192.168.0.1", 80);
    struct sockaddr_in6 s6 = v6("2001:db8::7", 4321), d6 = v6("fe80::1", 443);
    char out[PROXY_PROTOCOL_ENCODE_MAX];
    size_t n;

    n = proxy_protocol_encode(PROXY_PROTOCOL_V2, (struct sockaddr *)&s, sizeof(s), (struct sockaddr *)&d, sizeof(d),
                              out, sizeof(out));
    ck_assert_uint_eq(n, 28);
    ck_assert_int_eq((unsigned char)out[12], 0x21);
    ck_assert_int_eq((unsigned char)out[13], 0x11);
    check_every_split(out, n, false, "10.1.2.3:1234", "192.168.0.1:80");
    n = proxy_protocol_encode(PROXY_PROTOCOL_V2, (struct sockaddr *)&s6, sizeof(s6), (struct sockaddr *)&d6,
                              sizeof(d6), out, sizeof(out));
    ck_assert_uint_eq(n, 52);
    check_every_split(out, n, false, "[2001:db8::7]:4321", "[fe80::1]:443");
    /* Unix client: LOCAL, no addresses. */
    struct sockaddr_un u = { .sun_family = AF_UNIX };
    n = proxy_protocol_encode(PROXY_PROTOCOL_V2, (struct sockaddr *)&u, sizeof(u), NULL, 0, out, sizeof(out));
    ck_assert_uint_eq(n, 16);
    ck_assert_int_eq((unsigned char)out[12], 0x20);
    check_every_split(out, n, true, NULL, NULL);
    /* v1 round trips too. */
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s6, sizeof(s6), (struct sockaddr *)&d6,
                              sizeof(d6), out, sizeof(out));
    check_every_split(out, n, false, "[2001:db8::7]:4321", "[fe80::1]:443");
    n = proxy_protocol_encode(PROXY_PROTOCOL_V1, (struct sockaddr *)&s, sizeof(s), (struct sockaddr *)&d,
                              sizeof(d), out, sizeof(out));
    check_every_split(out, n, false, "10.1.2.3:1234", "192.168.0.1:80");
    check_truncated(out, n);
}
END_TEST

START_TEST(test_pp_v1_forms)
{
    const char unknown[] = "PROXY UNKNOWN\r\n";
    const char unknown_more[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
    const char zero_port[] = "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n";

    check_every_split(unknown, sizeof(unknown) - 1, true, NULL, NULL);
    check_every_split(unknown_more, sizeof(unknown_more) - 1, true, NULL, NULL);
    check_every_split(zero_port, sizeof(zero_port) - 1, false, "1.2.3.4:0", "5.6.7.8:65535");
    check_truncated(zero_port, sizeof(zero_port) - 1);
}
END_TEST

START_TEST(test_pp_v1_forged)
{
    static const char *const bad[] = {
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",       /* case */
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",      /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",      /* trailing space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",         /* missing port */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",     /* extra field */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",       /* protocol */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 ::1 ::1 1 2\r\n",               /* v6 under TCP4 */
        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",       /* v4 under TCP6 */
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",   /* port range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",      /* leading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",         /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6\r7.8 1 2\r\n",      /* stray CR */
        "PROXY UNKNOWNX\r\n",
        "PROXY\r\n",
        "GET / HTTP/1.1\r\n",                        /* not a header at all */
        "\r\n\r\n\r\n",                            /* not v2 either */
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(bad); i++)
        check_decode_error(bad[i], strlen(bad[i]));
    /* The error comes as soon as the prefix is wrong, not at the CRLF. */
    struct proxy_protocol_decoder d;
    ck_assert_int_eq(decode_all("PROXX", 5, &d), PROXY_PROTOCOL_ERROR);
    ck_assert_int_eq(decode_all("X", 1, &d), PROXY_PROTOCOL_ERROR);
    /* A NUL inside the line. */
    check_decode_error("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 34);
    /* 107 bytes is the bound: a line without CRLF by then is refused. */
    char longline[200];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY UNKNOWN ", 14);
    ck_assert_int_eq(decode_all(longline, PROXY_PROTOCOL_V1_MAX - 1, &d), PROXY_PROTOCOL_MORE);
    ck_assert_int_eq(decode_all(longline, PROXY_PROTOCOL_V1_MAX, &d), PROXY_PROTOCOL_ERROR);
    memcpy(longline + PROXY_PROTOCOL_V1_MAX - 2, "\r\n", 2);
    ck_assert_int_eq(decode_all(longline, PROXY_PROTOCOL_V1_MAX, &d), PROXY_PROTOCOL_DONE);
    memcpy(longline + PROXY_PROTOCOL_V1_MAX - 2, "xx\r\n", 4);
    ck_assert_int_eq(decode_all(longline, PROXY_PROTOCOL_V1_MAX + 2, &d), PROXY_PROTOCOL_ERROR);
}
END_TEST

/* A v2 header: command, family, the address block and the TLV bytes. */
static size_t v2_header(unsigned char *out, unsigned char cmd, unsigned char fam, const void *addrs, size_t alen,
                        const void *tlvs, size_t tlen)
{
    static const unsigned char sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };
    size_t len = alen + tlen;

    memcpy(out, sig, 12);
    out[12] = cmd;
    out[13] = fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (alen > 0)
        memcpy(out + 16, addrs, alen);
    if (tlen > 0)
        memcpy(out + 16 + alen, tlvs, tlen);
    return 16 + len;
}

static const unsigned char tcp4_addrs[12] = { 127, 0, 0, 9, 10, 0, 0, 1, 0x30, 0x39, 0x0c, 0xea };

START_TEST(test_pp_v2_tlvs_and_local)
{
    unsigned char h[8192];
    /* ALPN "h2", an unknown type 0xE7 of 5 bytes, an empty NOOP, a CRC32C. */
    const unsigned char tlvs[] = { 0x01, 0x00, 0x02, 'h', '2', 0xE7, 0x00, 0x05, 1, 2, 3, 4, 5, 0x04, 0x00, 0x00,
                                   0x03, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef };
    size_t n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, tlvs, sizeof(tlvs));
    check_every_split((const char *)h, n, false, "127.0.0.9:12345", "10.0.0.1:3306");
    check_truncated((const char *)h, n);

    /* A large unknown TLV (PROXY_PROTOCOL_V2_MAX_LEN in all). */
    unsigned char big[PROXY_PROTOCOL_V2_MAX_LEN];
    size_t vlen = PROXY_PROTOCOL_V2_MAX_LEN - 12 - 3;
    memset(big, 0xAB, sizeof(big));
    big[0] = 0xEE;
    big[1] = (unsigned char)(vlen >> 8);
    big[2] = (unsigned char)vlen;
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, big, vlen + 3);
    check_every_split((const char *)h, n, false, "127.0.0.9:12345", "10.0.0.1:3306");

    /* LOCAL: the addresses (of any family, even garbage) are skipped. */
    n = v2_header(h, 0x20, 0x00, NULL, 0, NULL, 0);
    check_every_split((const char *)h, n, true, NULL, NULL);
    n = v2_header(h, 0x20, 0x11, tcp4_addrs, 12, "\xff\xff", 2);
    check_every_split((const char *)h, n, true, NULL, NULL);
    n = v2_header(h, 0x20, 0x77, NULL, 0, "junk", 4);
    check_every_split((const char *)h, n, true, NULL, NULL);
    /* PROXY over UNSPEC or UNIX: no address to use either. */
    n = v2_header(h, 0x21, 0x00, NULL, 0, NULL, 0);
    check_every_split((const char *)h, n, true, NULL, NULL);
    unsigned char unix_addrs[216] = { '/', 't' };
    n = v2_header(h, 0x21, 0x31, unix_addrs, sizeof(unix_addrs), NULL, 0);
    check_every_split((const char *)h, n, true, NULL, NULL);
}
END_TEST

START_TEST(test_pp_v2_forged)
{
    unsigned char h[8192];
    size_t n;

    /* Signature broken at each byte. */
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, NULL, 0);
    for (size_t i = 0; i < 12; i++) {
        unsigned char c[64];
        memcpy(c, h, n);
        c[i] ^= 0x40;
        check_decode_error(c, n);
    }
    v2_header(h, 0x11, 0x11, tcp4_addrs, 12, NULL, 0);                         /* version 1 */
    check_decode_error(h, 13);
    n = v2_header(h, 0x31, 0x11, tcp4_addrs, 12, NULL, 0);                      /* version 3 */
    check_decode_error(h, n);
    n = v2_header(h, 0x22, 0x11, tcp4_addrs, 12, NULL, 0);                      /* command 2 */
    check_decode_error(h, n);
    n = v2_header(h, 0x21, 0x12, tcp4_addrs, 12, NULL, 0);                      /* UDP */
    check_decode_error(h, n);
    n = v2_header(h, 0x21, 0x41, tcp4_addrs, 12, NULL, 0);                      /* family 4 */
    check_decode_error(h, n);
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 11, NULL, 0);                      /* too short for TCP4 */
    check_decode_error(h, 16);
    n = v2_header(h, 0x21, 0x21, tcp4_addrs, 12, NULL, 0);                      /* too short for TCP6 */
    check_decode_error(h, 16);
    /* Longer than the bound: refused on the fixed part alone. */
    h[14] = (unsigned char)((PROXY_PROTOCOL_V2_MAX_LEN + 1) >> 8);
    h[15] = (unsigned char)(PROXY_PROTOCOL_V2_MAX_LEN + 1);
    h[13] = 0x11;
    check_decode_error(h, 16);
    /* TLVs that overrun the length: a value, or a header cut short. */
    const unsigned char overrun[] = { 0x01, 0x00, 0x05, 'a', 'b' };
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, overrun, sizeof(overrun));
    check_decode_error(h, n);
    const unsigned char cut[] = { 0x04, 0x00, 0x00, 0x05, 0x00 };
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, cut, sizeof(cut));
    check_decode_error(h, n);
    /* Truncated: the decoder waits (the caller's timeout ends it). */
    n = v2_header(h, 0x21, 0x11, tcp4_addrs, 12, NULL, 0);
    check_truncated((const char *)h, n);
}
END_TEST

/* A decoder that saw DONE or ERROR consumes nothing more. */
START_TEST(test_pp_after_end)
{
    struct proxy_protocol_decoder d;
    size_t used;
    const char h[] = "PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n";

    proxy_protocol_decoder_init(&d);
    ck_assert_int_eq(proxy_protocol_decode(&d, h, sizeof(h) - 1, &used), PROXY_PROTOCOL_DONE);
    ck_assert_uint_eq(used, 15);
    ck_assert_int_eq(proxy_protocol_decode(&d, h, 5, &used), PROXY_PROTOCOL_DONE);
    ck_assert_uint_eq(used, 0);
    ck_assert_int_eq(decode_all("\x0d\x0aX", 3, &d), PROXY_PROTOCOL_ERROR);
    ck_assert_int_eq(proxy_protocol_decode(&d, h, 5, &used), PROXY_PROTOCOL_ERROR);
    ck_assert_uint_eq(used, 0);
}
END_TEST

static bool match(const char *range, const char *ip)
{
    struct cidr c;
    char why[128];
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;

    ck_assert_msg(cidr_parse(range, &c, why, sizeof(why)) == PMX_OK, "%s: %s", range, why);
    if (strchr(ip, ':') == NULL) {
        a4 = v4(ip, 1);
        return cidr_match(&c, (struct sockaddr *)&a4, sizeof(a4));
    }
    a6 = v6(ip, 1);
    return cidr_match(&c, (struct sockaddr *)&a6, sizeof(a6));
}

START_TEST(test_cidr)
{
    struct cidr c;
    char why[128];

    ck_assert(match("127.0.0.0/8", "127.1.2.3"));
    ck_assert(!match("127.0.0.0/8", "128.0.0.1"));
    ck_assert(match("10.0.0.0/31", "10.0.0.1"));
    ck_assert(!match("10.0.0.0/31", "10.0.0.2"));
    ck_assert(match("192.168.1.7", "192.168.1.7"));
    ck_assert(!match("192.168.1.7", "192.168.1.8"));
    ck_assert(match("0.0.0.0/0", "8.8.8.8"));
    ck_assert(!match("0.0.0.0/0", "::1"));
    ck_assert(match("::/0", "2001:db8::1"));
    ck_assert(match("::1/128", "::1"));
    ck_assert(match("::1", "::1"));
    ck_assert(!match("::1/128", "::2"));
    ck_assert(match("2001:db8::/33", "2001:db8:7fff::1"));
    ck_assert(!match("2001:db8::/33", "2001:db8:8000::1"));
    /* IPv4 clients on an IPv6 socket match IPv4 ranges, not IPv6 ones. */
    ck_assert(match("127.0.0.0/8", "::ffff:127.0.0.5"));
    ck_assert(!match("127.0.0.0/8", "::ffff:10.0.0.5"));
    ck_assert(!match("::/0", "::ffff:127.0.0.5"));
    /* An IPv4-mapped range is the IPv4 range. */
    ck_assert(match("::ffff:127.0.0.0/104", "127.0.0.5"));
    ck_assert(match("::ffff:127.0.0.0/104", "::ffff:127.0.0.5"));
    ck_assert(!match("::ffff:127.0.0.0/104", "10.0.0.1"));
    ck_assert_int_eq(cidr_parse("::ffff:10.0.0.0/104", &c, why, sizeof(why)), PMX_OK);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_int_eq(c.prefix, 8);
    ck_assert_str_eq(c.spec, "::ffff:10.0.0.0/104");

    static const char *const bad[] = {
        "", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/08", "10.0.0.0/-1", "10.0.0.0/8/8", "10.0.0.1/8",
        "::1/129", "2001:db8::1/32", "localhost", "10.0.0", "10.0.0.0 /8", "1.2.3.4/1x",
        "0123:4567:89ab:cdef:0123:4567:89ab:cdef:0123:4567:89ab/128",
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(bad); i++)
        ck_assert_msg(cidr_parse(bad[i], &c, why, sizeof(why)) == PMX_ERR, "accepted %s", bad[i]);
    ck_assert_int_eq(cidr_parse("10.0.0.0/33", &c, why, sizeof(why)), PMX_ERR);
    ck_assert_str_eq(why, "prefix 33 is not 0-32");
    /* A unix address never matches. */
    struct sockaddr_un u = { .sun_family = AF_UNIX };
    ck_assert_int_eq(cidr_parse("0.0.0.0/0", &c, why, sizeof(why)), PMX_OK);
    ck_assert(!cidr_match(&c, (struct sockaddr *)&u, sizeof(u)));
    ck_assert(!cidr_match_any(&c, 1, NULL, 0));
}
END_TEST

#define PP_BASE "local: { port: 7001 }\npool: { connections: 2 }\ntargets: [{ host: 127.0.0.1, port: 6379 }]\n"

START_TEST(test_pp_config)
{
    ck_assert_int_eq(load(PP_BASE "exchange: { mode: proxy }\nsend_proxy: v1\naccept_proxy: yes\n"
                          "accept_proxy_from: [10.0.0.0/8, \"::1\", 192.168.1.7]\n", NULL), PMX_OK);
    const struct service_config *sc = &cfg->services[0];
    ck_assert_int_eq(sc->send_proxy, PROXY_PROTOCOL_V1);
    ck_assert(sc->accept_proxy);
    ck_assert_int_eq(sc->naccept_proxy_from, 3);
    ck_assert_str_eq(sc->accept_proxy_from[1].spec, "::1");
    ck_assert_int_eq(sc->accept_proxy_from[2].prefix, 32);
    char *dump = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(dump, "send_proxy: v1\n"));
    ck_assert_ptr_nonnull(strstr(dump, "accept_proxy_from: [\"10.0.0.0/8\", \"::1\", \"192.168.1.7\"]\n"));
    free(dump);
    /* Defaults: off. The environment sets send_proxy too. */
    ck_assert_int_eq(load(PP_BASE, NULL), PMX_OK);
    ck_assert_int_eq(cfg->services[0].send_proxy, PROXY_PROTOCOL_OFF);
    ck_assert(!cfg->services[0].accept_proxy);
    ck_assert_int_eq(load(PP_BASE "exchange: { mode: proxy }\n", ENV("SEND_PROXY=v2")), PMX_OK);
    ck_assert_int_eq(cfg->services[0].send_proxy, PROXY_PROTOCOL_V2);
    /* accept_proxy_from alone (accept_proxy off) is kept and harmless. */
    ck_assert_int_eq(load(PP_BASE "accept_proxy_from: [127.0.0.0/8]\n", NULL), PMX_OK);
}
END_TEST

START_TEST(test_pp_config_errors)
{
    check_error(load(PP_BASE "exchange: { mode: proxy }\naccept_proxy: true\n", NULL),
                "accept_proxy (@FILE@ line 5): true needs accept_proxy_from (the address ranges of the balancers "
                "allowed to send a PROXY header, e.g. [10.0.0.0/8])", 0);
    check_error(load(PP_BASE "accept_proxy: true\naccept_proxy_from: []\n", NULL),
                "accept_proxy (@FILE@ line 4): true needs accept_proxy_from", 1);
    check_error(load(PP_BASE "exchange: { mode: funnel }\nsend_proxy: v2\n", NULL),
                "send_proxy (@FILE@ line 5): \"v2\" needs exchange.mode proxy (the mode is funnel: upstream "
                "connections are shared by clients)", 0);
    check_error(load(PP_BASE "send_proxy: v3\n", NULL),
                "send_proxy (@FILE@ line 4): \"v3\" is not a PROXY protocol version (off, v1, v2)", 0);
    check_error(load(PP_BASE "accept_proxy: true\naccept_proxy_from: [10.0.0.1/8]\n", NULL),
                "accept_proxy_from[1] (@FILE@ line 5): \"10.0.0.1/8\" is not an address range: host bits set "
                "beyond /8 (ADDRESS/PREFIX or ADDRESS, IPv4 or IPv6)", 0);
    check_error(load(PP_BASE "accept_proxy: true\naccept_proxy_from: [localhost]\n", NULL),
                "accept_proxy_from[1] (@FILE@ line 5): \"localhost\" is not an address range", 1);
}
END_TEST

Suite *proxy_protocol_suite(void)
{
    Suite *s = suite_create("proxy_protocol");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_pp_encode_v1);
    tcase_add_test(tc, test_pp_encode_v2_roundtrip);
    tcase_add_test(tc, test_pp_v1_forms);
    tcase_add_test(tc, test_pp_v1_forged);
    tcase_add_test(tc, test_pp_v2_tlvs_and_local);
    tcase_add_test(tc, test_pp_v2_forged);
    tcase_add_test(tc, test_pp_after_end);
    tcase_add_test(tc, test_cidr);
    suite_add_tcase(s, tc);

    TCase *cf = tcase_create("config");
    tcase_add_unchecked_fixture(cf, dir_setup, dir_teardown);
    tcase_add_checked_fixture(cf, cfg_setup, cfg_teardown);
    tcase_add_test(cf, test_pp_config);
    tcase_add_test(cf, test_pp_config_errors);
    suite_add_tcase(s, cf);
    return s;
}
