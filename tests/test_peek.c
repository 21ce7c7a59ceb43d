/* Unit tests of the first-bytes peek parsers (SPEC §10): the TLS
 * ClientHello server_name, from a real openssl s_client ClientHello fed at
 * every split and re-framed into small records, malformed and oversized
 * lengths; the HTTP/1.x Host header at every split; name wildcards. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peek.h"
#include "suites.h"

/* `openssl s_client -servername x.example.com` (OpenSSL 3.0), captured by
 * a listener: one TLS record holding the ClientHello. */
static const char hello_sni_hex[] =
    "160301013a01000136030316a987189b6c4c46d63e8acc8889286bdb348b07b0c80d835af5d0d021556ac5209cbb5729"
    "d370b63d08148cafc409594cfabac18b8bf030414c27c6fb89739726003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000af"
    "00000012001000000d782e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900180100"
    "0101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806"
    "040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d002037"
    "e0c6e11c4d4828eb7eb5f5c77723ec347d14f30b9b4db45102f7093323f318";
/* The same with -noservername. */
static const char hello_nosni_hex[] =
    "1603010124010001200303d9ba740d4cf6e5e637b87e3b2b4b0a34a486719fc19ee824ce48a74390cc93c02066027a13"
    "f651cfdaf9fe30b86a34e1fd4319bf2c4e9d988deca4c06b1d248c58003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff01000099"
    "000b000403000102000a00160014001d0017001e0019001801000101010201030104002300000016000000170000000d"
    "002a0028040305030603080708080809080a080b080408050806040105010601030303010302040205020602002b0009"
    "080304030303020301002d00020101003300260024001d0020c671e7a7ad845472ba104fdadf12674f2703aa57025efb"
    "371ffe1af14e6f530d";

/* Decodes hex into a malloc'd buffer; its length in *len. */
static unsigned char *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    unsigned char *b = malloc(n + 1);
    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (unsigned char)v;
    }
    *len = n;
    return b;
}

/* The handshake bytes of a one-record hello re-framed into records of at
 * most size bytes; malloc'd, length in *len. */
static unsigned char *reframe(const unsigned char *hello, size_t hello_len, size_t size, size_t *len)
{
    const unsigned char *hs = hello + 5;
    size_t hs_len = hello_len - 5, o = 0;
    unsigned char *b = malloc(hs_len + (hs_len / size + 1) * 5);
    ck_assert_ptr_nonnull(b);
    for (size_t at = 0; at < hs_len; at += size) {
        size_t n = hs_len - at < size ? hs_len - at : size;
        b[o++] = 0x16;
        b[o++] = 3;
        b[o++] = 1;
        b[o++] = (unsigned char)(n >> 8);
        b[o++] = (unsigned char)n;
        memcpy(b + o, hs + at, n);
        o += n;
    }
    *len = o;
    return b;
}

/* Every prefix of hello: NEED_MORE until the name is read, then FOUND
 * with want (or, want NULL, NEED_MORE until the whole hello, then NONE). */
static void check_every_split(const unsigned char *hello, size_t len, const char *want)
{
    char out[PEEK_NAME_MAX];
    size_t first = len;

    for (size_t k = 0; k <= len; k++) {
        enum peek_result pr = peek_tls_sni((const char *)hello, k, out, sizeof out);
        if (pr == PEEK_NEED_MORE) {
            ck_assert_msg(k < first, "NEED_MORE at %zu after a result at %zu", k, first);
            continue;
        }
        if (first == len)
            first = k;
        ck_assert_int_eq(pr, want != NULL ? PEEK_FOUND : PEEK_NONE);
        if (want != NULL)
            ck_assert_str_eq(out, want);
    }
    ck_assert_msg(want == NULL ? first == len : first < len, "first result at %zu of %zu", first, len);
}

START_TEST(tls_real_hello_every_split)
{
    size_t len;
    unsigned char *hello = unhex(hello_sni_hex, &len);
    check_every_split(hello, len, "x.example.com");
    free(hello);
}
END_TEST

START_TEST(tls_no_server_name)
{
    size_t len;
    unsigned char *hello = unhex(hello_nosni_hex, &len);
    check_every_split(hello, len, NULL);
    free(hello);
}
END_TEST

START_TEST(tls_hello_over_several_records)
{
    static const size_t sizes[] = { 1, 2, 7, 64, 100, 16384 };
    size_t len;
    unsigned char *hello = unhex(hello_sni_hex, &len);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t rlen;
        unsigned char *r = reframe(hello, len, sizes[i], &rlen);
        check_every_split(r, rlen, "x.example.com");
        /* A record of another type before the hello is complete. */
        if (sizes[i] == 64) {
            r[64 + 5] = 0x17;
            char out[PEEK_NAME_MAX];
            ck_assert_int_eq(peek_tls_sni((const char *)r, rlen, out, sizeof out), PEEK_INVALID);
        }
        free(r);
    }
    free(hello);
}
END_TEST

START_TEST(tls_name_case_and_chars)
{
    size_t len;
    unsigned char *hello = unhex(hello_sni_hex, &len);
    unsigned char *name = memmem(hello, len, "x.example.com", 13);
    char out[PEEK_NAME_MAX];
    ck_assert_ptr_nonnull(name);
    memcpy(name, "X.EXAMPLE.Com", 13);
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_FOUND);
    ck_assert_str_eq(out, "x.example.com");
    memcpy(name, "x.example.co.", 13);       /* trailing dot left out */
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_FOUND);
    ck_assert_str_eq(out, "x.example.co");
    memcpy(name, "x example.com", 13);
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_NONE);
    memcpy(name, "x..xample.com", 13);
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_NONE);
    memcpy(name, "x.ex\0mple.com", 13);
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_NONE);
    /* Name type other than host_name: skipped, no name. */
    memcpy(name, "x.example.com", 13);
    name[-3] = 1;
    ck_assert_int_eq(peek_tls_sni((const char *)hello, len, out, sizeof out), PEEK_NONE);
    free(hello);
}
END_TEST

/* One byte of the real hello changed at off: the result. */
static enum peek_result mutated(size_t off, unsigned char value)
{
    size_t len;
    unsigned char *hello = unhex(hello_sni_hex, &len);
    char out[PEEK_NAME_MAX];
    hello[off] = value;
    enum peek_result pr = peek_tls_sni((const char *)hello, len, out, sizeof out);
    free(hello);
    return pr;
}

START_TEST(tls_malformed)
{
    char out[PEEK_NAME_MAX];
    /* Not TLS: known from the first byte or two. */
    ck_assert_int_eq(peek_tls_sni("G", 1, out, sizeof out), PEEK_INVALID);
    ck_assert_int_eq(peek_tls_sni("\x16\x02", 2, out, sizeof out), PEEK_INVALID);
    ck_assert_int_eq(peek_tls_sni("\x16", 1, out, sizeof out), PEEK_NEED_MORE);
    ck_assert_int_eq(peek_tls_sni("", 0, out, sizeof out), PEEK_NEED_MORE);
    ck_assert_int_eq(mutated(0, 0x17), PEEK_INVALID);          /* application data */
    ck_assert_int_eq(mutated(3, 0), PEEK_INVALID);             /* record of 0x3a bytes: what follows is no record header */
    ck_assert_int_eq(peek_tls_sni("\x16\x03\x01\x00\x00", 5, out, sizeof out), PEEK_INVALID);  /* empty record */
    ck_assert_int_eq(peek_tls_sni("\x16\x03\x01\x40\x01", 5, out, sizeof out), PEEK_INVALID);  /* > 2^14 */
    ck_assert_int_eq(peek_tls_sni("\x16\x03\x01\x40\x00", 5, out, sizeof out), PEEK_NEED_MORE);
    ck_assert_int_eq(mutated(5, 2), PEEK_INVALID);             /* ServerHello */
    ck_assert_int_eq(mutated(6, 0xff), PEEK_INVALID);          /* hello longer than its extensions say */
    ck_assert_int_eq(mutated(8, 0x10), PEEK_INVALID);          /* hello shorter than it is */
    ck_assert_int_eq(mutated(9, 2), PEEK_INVALID);             /* version 2.x */
    ck_assert_int_eq(mutated(43, 33), PEEK_INVALID);           /* session id > 32 */
    ck_assert_int_eq(mutated(77, 0x3f), PEEK_INVALID);         /* odd cipher suites length */
    ck_assert_int_eq(mutated(76, 0xff), PEEK_INVALID);         /* cipher suites past the hello */
    /* The server_name extension: its list and name lengths. */
    size_t len;
    unsigned char *hello = unhex(hello_sni_hex, &len);
    size_t name = (size_t)((unsigned char *)memmem(hello, len, "x.example.com", 13) - hello);
    free(hello);
    ck_assert_int_eq(mutated(name - 4, 0x20), PEEK_INVALID);   /* list length != extension length */
    ck_assert_int_eq(mutated(name - 1, 0x30), PEEK_INVALID);   /* name past the extension */
    ck_assert_int_eq(mutated(name - 6, 0x00), PEEK_INVALID);   /* extension of 0x0000 + list: lengths disagree */
    /* A very long declared hello only waits (the caller bounds the bytes). */
    ck_assert_int_eq(peek_tls_sni("\x16\x03\x01\x00\x04\x01\xff\xff\xff", 9, out, sizeof out), PEEK_NEED_MORE);
    ck_assert_int_eq(peek_tls_sni("\x16\x03\x01\x00\x04\x01\x00\x00\x10", 9, out, sizeof out), PEEK_INVALID);
}
END_TEST

/* ---- HTTP ---- */

static const char request[] =
    "GET /a/b?c=d HTTP/1.1\r\nUser-Agent: curl/8\r\nHost:  API.Example.com:8080 \r\nAccept: */*\r\n\r\n";

START_TEST(http_every_split)
{
    char out[PEEK_NAME_MAX];
    size_t len = strlen(request);
    for (size_t k = 0; k < len; k++)
        ck_assert_msg(peek_http_host(request, k, out, sizeof out) == PEEK_NEED_MORE, "at %zu", k);
    ck_assert_int_eq(peek_http_host(request, len, out, sizeof out), PEEK_FOUND);
    ck_assert_str_eq(out, "api.example.com");
    /* Bytes after the head (a body, the next request) change nothing. */
    char more[256];
    snprintf(more, sizeof more, "%sGARBAGE\x01", request);
    ck_assert_int_eq(peek_http_host(more, strlen(more), out, sizeof out), PEEK_FOUND);
}
END_TEST

START_TEST(http_hosts)
{
    static const struct {
        const char *req;
        enum peek_result want;
        const char *host;
    } cases[] = {
        { "GET / HTTP/1.1\nhost: a.example.com\n\n", PEEK_FOUND, "a.example.com" },
        { "GET / HTTP/1.0\r\nHOST:a.example.com.\r\n\r\n", PEEK_FOUND, "a.example.com" },
        { "POST /x HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", PEEK_FOUND, "[::1]" },
        { "GET / HTTP/1.1\r\nHost: [FE80::1]\r\n\r\n", PEEK_FOUND, "[fe80::1]" },
        { "GET / HTTP/1.1\r\nHost: 10.0.0.1:\r\n\r\n", PEEK_FOUND, "10.0.0.1" },
        { "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n", PEEK_NONE, "" },
        { "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", PEEK_NONE, "" },
        { "GET / HTTP/1.1\r\nHost: a.com:80x\r\n\r\n", PEEK_NONE, "" },
        { "GET / HTTP/1.1\r\nHost: \r\n\r\n", PEEK_NONE, "" },
        { "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", PEEK_NONE, "" },
        { "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", PEEK_INVALID, "" },
        { "GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: a\r\n\r\n", PEEK_INVALID, "" },     /* folding */
        { "GET / HTTP/1.1\r\nHost : a\r\n\r\n", PEEK_INVALID, "" },
        { "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n", PEEK_INVALID, "" },
        { "GET / HTTP/1.1\rHost: a\r\n\r\n", PEEK_INVALID, "" },
        { "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", PEEK_INVALID, "" },
        { "GET / HTTP/2.0\r\n", PEEK_INVALID, "" },
        { "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", PEEK_INVALID, "" },
        { "GET  / HTTP/1.1\r\n", PEEK_INVALID, "" },
        { "PING\r\n", PEEK_INVALID, "" },
        { "\x16\x03\x01", PEEK_INVALID, "" },
        { "GETTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT / HTTP/1.1\r\n", PEEK_INVALID, "" },
        { "GET", PEEK_NEED_MORE, "" },
        { "GET / HTTP/1.1\r\nHost: a\r\n", PEEK_NEED_MORE, "" },
        { "", PEEK_NEED_MORE, "" },
    };
    char out[PEEK_NAME_MAX];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* Lengths by hand: one case holds a NUL. */
        size_t len = strlen(cases[i].req);
        if (strncmp(cases[i].req, "GET / HTTP/1.1\r\nHo", 18) == 0 && cases[i].req[18] == '\0')
            len = 31;
        enum peek_result pr = peek_http_host(cases[i].req, len, out, sizeof out);
        ck_assert_msg(pr == cases[i].want, "case %zu: %d, want %d", i, pr, cases[i].want);
        if (pr == PEEK_FOUND)
            ck_assert_str_eq(out, cases[i].host);
    }
}
END_TEST

START_TEST(http_long_host)
{
    char req[1024], out[PEEK_NAME_MAX];
    char name[300];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", name);
    ck_assert_int_eq(peek_http_host(req, strlen(req), out, sizeof out), PEEK_NONE);
    name[PEEK_NAME_MAX - 1] = '\0';     /* 255 bytes: fits */
    snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", name);
    ck_assert_int_eq(peek_http_host(req, strlen(req), out, sizeof out), PEEK_FOUND);
    ck_assert_uint_eq(strlen(out), PEEK_NAME_MAX - 1);
}
END_TEST

START_TEST(name_wildcards)
{
    ck_assert(peek_name_match("*.example.com", "a.example.com"));
    ck_assert(peek_name_match("*.example.com", "a.b.example.com"));
    ck_assert(!peek_name_match("*.example.com", "example.com"));
    ck_assert(!peek_name_match("*.example.com", "aexample.com"));
    ck_assert(!peek_name_match("*.example.com", "a.example.com.evil"));
    ck_assert(peek_name_match("example.com", "example.com"));
    ck_assert(!peek_name_match("example.com", "a.example.com"));
}
END_TEST

Suite *peek_suite(void)
{
    Suite *s = suite_create("peek");
    TCase *tls = tcase_create("tls");
    tcase_add_test(tls, tls_real_hello_every_split);
    tcase_add_test(tls, tls_no_server_name);
    tcase_add_test(tls, tls_hello_over_several_records);
    tcase_add_test(tls, tls_name_case_and_chars);
    tcase_add_test(tls, tls_malformed);
    suite_add_tcase(s, tls);
    TCase *http = tcase_create("http");
    tcase_add_test(http, http_every_split);
    tcase_add_test(http, http_hosts);
    tcase_add_test(http, http_long_host);
    tcase_add_test(http, name_wildcards);
    suite_add_tcase(s, http);
    return s;
}
