/* Unit tests of the route rules (SPEC §10): matching in order, captures
 * substituted in target and data, binary data with NUL bytes, partial
 * input that cannot match yet vs can never match, SNI and Host routes fed
 * at every split, and the table's errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "route.h"
#include "suites.h"

static struct route_config routes[8];
static int nroutes;

static void routes_reset(void)
{
    memset(routes, 0, sizeof routes);
    nroutes = 0;
}

/* Adds a route: kind and pattern (len bytes), then target or, with
 * target NULL, close bytes. */
static struct route_config *add(enum route_kind kind, const char *pattern, size_t len, const char *target)
{
    struct route_config *r = &routes[nroutes++];
    r->kind = kind;
    memcpy(r->pattern, pattern, len);
    r->pattern_len = len;
    r->connect_timeout = -1;
    r->inactivity_timeout = -1;
    if (target != NULL)
        snprintf(r->target, sizeof r->target, "%s", target);
    else
        r->has_close = true;
    return r;
}

#define ADD(kind, pattern, target) add(kind, pattern, sizeof(pattern) - 1, target)

static void set_bytes(char *field, size_t *len, const char *v, size_t n)
{
    memcpy(field, v, n);
    *len = n;
}

/* Decides on n bytes of data; the decision in *d (initialised here). */
static enum route_result decide(const char *data, size_t n, struct route_decision *d)
{
    char err[256];
    struct route_table *t = route_table_create(routes, nroutes, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);
    route_decision_init(d);
    enum route_result rr = route_table_decide(t, data, n, d);
    route_table_free(t);
    return rr;
}

#define DECIDE(lit, d) decide(lit, sizeof(lit) - 1, d)

START_TEST(git_capture_with_nul_bytes)
{
    /* A git pkt-line: NUL bytes after the path. */
    static const char req[] = "0032git-upload-pack /alice/proj.git\0host=example.com\0";
    struct route_decision d;
    routes_reset();
    struct route_config *r = ADD(ROUTE_MATCH, "^....git-upload-pack /([A-Za-z0-9._-]+)/", "$1.git.internal:9418");
    r->connect_timeout = 1000;
    r->inactivity_timeout = 10000;
    ck_assert_int_eq(DECIDE(req, &d), ROUTE_RESULT_DECIDED);
    ck_assert_int_eq(d.action, ROUTE_TARGET);
    ck_assert_str_eq(d.target, "alice.git.internal:9418");
    ck_assert_int_eq(d.connect_timeout, 1000);
    ck_assert_int_eq(d.inactivity_timeout, 10000);
    ck_assert_int_eq(d.has_data, 0);
    ck_assert_uint_eq(buf_len(&d.reply), 0);
    route_decision_free(&d);
    /* Fed a byte at a time: WAIT until the capture's closing '/'. */
    size_t slash = (size_t)(strchr(req + 22, '/') - req);
    for (size_t k = 0; k <= sizeof req - 1; k++) {
        enum route_result rr = decide(req, k, &d);
        ck_assert_int_eq(rr, k > slash ? ROUTE_RESULT_DECIDED : ROUTE_RESULT_WAIT);
        route_decision_free(&d);
    }
}
END_TEST

START_TEST(data_with_captures)
{
    struct route_decision d;
    routes_reset();
    struct route_config *r = ADD(ROUTE_MATCH, "^(GET|HEAD) /([a-z]+)(/x)?", "web");
    set_bytes(r->data, &r->data_len, "$2 $1 [$3] $$1 \0x", 17);
    r->has_data = true;
    set_bytes(r->reply, &r->reply_len, "OK\0\r\n", 5);
    ck_assert_int_eq(DECIDE("GET /abc HTTP/1.0\r\n", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "web");
    ck_assert_int_eq(d.has_data, 1);
    /* Group 3 took no part: empty; $$ is $; a NUL byte stays. */
    ck_assert_uint_eq(buf_len(&d.data), 16);
    ck_assert_mem_eq(buf_start(&d.data), "abc GET [] $1 \0x", 16);
    ck_assert_uint_eq(buf_len(&d.reply), 5);
    ck_assert_mem_eq(buf_start(&d.reply), "OK\0\r\n", 5);
    route_decision_free(&d);
    /* Captures holding NUL bytes go into data as they are. */
    routes_reset();
    r = ADD(ROUTE_MATCH, "^K([^;]*);", "web");
    set_bytes(r->data, &r->data_len, "<$1>", 4);
    r->has_data = true;
    ck_assert_int_eq(DECIDE("Ka\0b;rest", &d), ROUTE_RESULT_DECIDED);
    ck_assert_uint_eq(buf_len(&d.data), 5);
    ck_assert_mem_eq(buf_start(&d.data), "<a\0b>", 5);
    route_decision_free(&d);
    /* An empty data replaces the buffered bytes with nothing. */
    routes_reset();
    r = ADD(ROUTE_PREFIX, "x", "web");
    r->has_data = true;
    ck_assert_int_eq(DECIDE("xyz", &d), ROUTE_RESULT_DECIDED);
    ck_assert_int_eq(d.has_data, 1);
    ck_assert_uint_eq(buf_len(&d.data), 0);
    route_decision_free(&d);
}
END_TEST

START_TEST(all_nine_captures)
{
    struct route_decision d;
    routes_reset();
    struct route_config *r = ADD(ROUTE_MATCH, "^(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)", "h$9$8$7:1$1");
    set_bytes(r->data, &r->data_len, "$1$2$3$4$5$6$7$8$9", 18);
    r->has_data = true;
    ck_assert_int_eq(DECIDE("123456789A", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "h987:11");
    ck_assert_uint_eq(buf_len(&d.data), 9);
    ck_assert_mem_eq(buf_start(&d.data), "123456789", 9);
    route_decision_free(&d);
}
END_TEST

START_TEST(binary_prefix_and_regex)
{
    struct route_decision d;
    routes_reset();
    ADD(ROUTE_PREFIX, "\0\x01\xff", "a");
    ADD(ROUTE_MATCH, "^a[^x]b", "b");
    ADD(ROUTE_MATCH, "^c.d", "c");
    ck_assert_int_eq(DECIDE("\0\x01\xff\0", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "a");
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("\0\x01", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    /* A bracket expression matches a NUL byte ... */
    ck_assert_int_eq(DECIDE("a\0b", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "b");
    route_decision_free(&d);
    /* ... '.' does not (glibc's POSIX syntax): "c" may still go on. */
    ck_assert_int_eq(DECIDE("c\0d", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("cxd", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "c");
    route_decision_free(&d);
    /* Bytes after a NUL are seen (REG_STARTEND, not strlen). */
    routes_reset();
    ADD(ROUTE_MATCH, "TAIL$", "t");
    ck_assert_int_eq(DECIDE("x\0\0TAIL", &d), ROUTE_RESULT_DECIDED);
    route_decision_free(&d);
}
END_TEST

START_TEST(not_yet_vs_never)
{
    struct route_decision d;
    routes_reset();
    ADD(ROUTE_PREFIX, "PING\r\n", NULL);
    ck_assert_int_eq(DECIDE("", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("PIN", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("PX", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("PING\r\nmore", &d), ROUTE_RESULT_DECIDED);
    route_decision_free(&d);

    /* An anchored regex with a literal start: never once it differs. */
    routes_reset();
    ADD(ROUTE_MATCH, "^GET /a[0-9]", "x");
    ck_assert_int_eq(DECIDE("GE", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("GET /a", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("POST", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
    /* Past the literal start a regex cannot tell: it waits (the caller's
     * route_max_bytes and route_timeout end it). */
    ck_assert_int_eq(DECIDE("GET /ax", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    /* Escaped operators are literal; a quantified byte ends the start. */
    routes_reset();
    ADD(ROUTE_MATCH, "^\\.ab*c", "x");
    ck_assert_int_eq(DECIDE("xa", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE(".b", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE(".ax", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
    /* Unanchored, or with alternation: always may match later. */
    routes_reset();
    ADD(ROUTE_MATCH, "git", "x");
    ADD(ROUTE_MATCH, "^a|^b", "x");
    ck_assert_int_eq(DECIDE("zzzz", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
}
END_TEST

START_TEST(order_and_waiting)
{
    struct route_decision d;
    routes_reset();
    ADD(ROUTE_PREFIX, "GET /admin", "admin");
    ADD(ROUTE_PREFIX, "GET ", "web");
    ADD(ROUTE_MATCH, "^GET", "never-reached");
    /* The first route that matches the bytes so far decides ... */
    ck_assert_int_eq(DECIDE("GET /admin/x", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "admin");
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("GET /x", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "web");
    route_decision_free(&d);
    /* ... even while an earlier one still waits for more. */
    ck_assert_int_eq(DECIDE("GET /ad", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "web");
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("GE", &d), ROUTE_RESULT_WAIT);
    route_decision_free(&d);
}
END_TEST

START_TEST(close_with_bytes)
{
    struct route_decision d;
    routes_reset();
    struct route_config *r = ADD(ROUTE_PREFIX, "PING", NULL);
    set_bytes(r->close, &r->close_len, "+PONG\r\n", 7);
    ADD(ROUTE_PREFIX, "QUIT", NULL);
    ck_assert_int_eq(DECIDE("PING\r\n", &d), ROUTE_RESULT_DECIDED);
    ck_assert_int_eq(d.action, ROUTE_CLOSE);
    ck_assert_uint_eq(buf_len(&d.data), 7);
    ck_assert_mem_eq(buf_start(&d.data), "+PONG\r\n", 7);
    ck_assert_uint_eq(buf_len(&d.reply), 0);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("QUIT", &d), ROUTE_RESULT_DECIDED);
    ck_assert_int_eq(d.action, ROUTE_CLOSE);
    ck_assert_uint_eq(buf_len(&d.data), 0);
    route_decision_free(&d);
}
END_TEST

START_TEST(target_from_captures_checked)
{
    struct route_decision d;
    routes_reset();
    ADD(ROUTE_MATCH, "^H ([^\r]*)\r", "$1:80");
    ADD(ROUTE_PREFIX, "H ", "fallback");
    ck_assert_int_eq(DECIDE("H db.internal\r", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "db.internal:80");
    route_decision_free(&d);
    /* A space, a '/', a NUL: not a HOST:PORT; the next route decides. */
    ck_assert_int_eq(DECIDE("H a b\r", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "fallback");
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("H a/b\r", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "fallback");
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("H a\0b\r", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "fallback");
    route_decision_free(&d);
    /* Longer than a target: the same. */
    char big[700];
    memset(big, 'a', sizeof big);
    memcpy(big, "H ", 2);
    big[sizeof big - 1] = '\r';
    ck_assert_int_eq(decide(big, sizeof big, &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "fallback");
    route_decision_free(&d);
    /* A literal target may hold anything the loader took: a unix path name. */
    routes_reset();
    ADD(ROUTE_PREFIX, "U", "/run/redis/redis.sock");
    ck_assert_int_eq(DECIDE("U", &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "/run/redis/redis.sock");
    route_decision_free(&d);
}
END_TEST

/* `openssl s_client -servername x.example.com`'s ClientHello, the first
 * 96 bytes and the server_name extension onwards (tests/test_peek.c has
 * it whole). */
static const char hello_hex[] =
    "160301013a01000136030316a987189b6c4c46d63e8acc8889286bdb348b07b0c80d835af5d0d021556ac5209cbb5729"
    "d370b63d08148cafc409594cfabac18b8bf030414c27c6fb89739726003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000af"
    "00000012001000000d782e6578616d706c652e636f6d000b000403000102000a00160014001d0017001e001900180100"
    "0101010201030104002300000016000000170000000d002a0028040305030603080708080809080a080b080408050806"
    "040105010601030303010302040205020602002b0009080304030303020301002d00020101003300260024001d002037"
    "e0c6e11c4d4828eb7eb5f5c77723ec347d14f30b9b4db45102f7093323f318";

START_TEST(sni_and_host_routes)
{
    size_t len = strlen(hello_hex) / 2;
    char *hello = malloc(len);
    ck_assert_ptr_nonnull(hello);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hello_hex + 2 * i, "%2x", &v), 1);
        hello[i] = (char)v;
    }
    struct route_decision d;
    routes_reset();
    ADD(ROUTE_SNI, "*.other.com", "other");
    ADD(ROUTE_HTTP_HOST, "*.example.com", "http");
    ADD(ROUTE_SNI, "*.example.com", "tls");
    /* Split at every byte: WAIT until the name, then the SNI route. */
    bool decided = false;
    for (size_t k = 0; k <= len; k++) {
        enum route_result rr = decide(hello, k, &d);
        if (rr == ROUTE_RESULT_DECIDED) {
            decided = true;
            ck_assert_str_eq(d.target, "tls");
        } else {
            ck_assert_msg(!decided && rr == ROUTE_RESULT_WAIT, "at %zu: %d", k, rr);
        }
        route_decision_free(&d);
    }
    ck_assert(decided);
    free(hello);
    /* The HTTP request: the Host route; TLS routes never match it. */
    static const char req[] = "GET / HTTP/1.1\r\nHost: www.Example.com:8080\r\n\r\n";
    for (size_t k = 0; k < sizeof req - 1; k++) {
        ck_assert_int_eq(decide(req, k, &d), ROUTE_RESULT_WAIT);
        route_decision_free(&d);
    }
    ck_assert_int_eq(DECIDE(req, &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "http");
    route_decision_free(&d);
    /* example.com itself is no *.example.com; neither HTTP nor TLS: no route. */
    ck_assert_int_eq(DECIDE("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
    ck_assert_int_eq(DECIDE("SSH-2.0-OpenSSH\r\n", &d), ROUTE_RESULT_NO_MATCH);
    route_decision_free(&d);
}
END_TEST

START_TEST(table_errors)
{
    char err[256];
    const char *field;
    struct route_decision d;

    routes_reset();
    ADD(ROUTE_PREFIX, "a", "x");
    ADD(ROUTE_MATCH, "(", "x");
    ck_assert_ptr_null(route_table_create(routes, nroutes, err, sizeof err));
    ck_assert_str_eq(err, "routes[2].match: does not compile: Unmatched ( or \\(");
    ck_assert_int_eq(route_check(&routes[1], &field, err, sizeof err), PMX_ERR);
    ck_assert_str_eq(field, "match");
    routes_reset();
    ADD(ROUTE_MATCH, "(a)", "$2:1");
    ck_assert_ptr_null(route_table_create(routes, nroutes, err, sizeof err));
    ck_assert_str_eq(err, "routes[1].target: $2: the regex has 1 group");
    routes_reset();
    struct route_config *r = ADD(ROUTE_PREFIX, "a", "x");
    set_bytes(r->data, &r->data_len, "$1", 2);
    ck_assert_int_eq(route_check(r, &field, err, sizeof err), PMX_ERR);
    ck_assert_str_eq(field, "data");
    ck_assert_str_eq(err, "$1: captures come from match: (a regex); this route has none");
    set_bytes(r->data, &r->data_len, "$$", 2);
    ck_assert_int_eq(route_check(r, &field, err, sizeof err), PMX_OK);
    /* No routes: nothing ever matches. */
    struct route_table *t = route_table_create(routes, 0, err, sizeof err);
    ck_assert_ptr_nonnull(t);
    route_decision_init(&d);
    ck_assert_int_eq(route_table_decide(t, "x", 1, &d), ROUTE_RESULT_NO_MATCH);
    route_table_free(t);
    route_table_free(NULL);
}
END_TEST

/* Regexes whose compiled form would be huge are refused before regcomp
 * (glibc copies a repeated part once per repetition). */
START_TEST(regex_too_complex)
{
    static const struct {
        const char *re;
        int ok;
    } cases[] = {
        { "^....git-upload-pack /([A-Za-z0-9._-]+)/", 1 },
        { "[a-z]{1,255}", 1 },
        { "^(a+)+$", 1 },
        { "(((((((a+)+)+)+)+)+)+)+", 1 },
        { "(x{1,100}){1,100}", 1 },
        { "[[:alpha:]]{1,200}[]{]{1,10}\\{", 1 },
        { "((a{99}){99}){99}", 0 },
        { "(ab|cd){1,30000}", 0 },
        { "([A-Za-z0-9._-]+)++++++++++++++++++++++++++++++++++", 0 },
    };
    char err[512];
    const char *field;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        routes_reset();
        struct route_config *r = add(ROUTE_MATCH, cases[i].re, strlen(cases[i].re), "x:1");
        int rc = route_check(r, &field, err, sizeof err);
        ck_assert_msg((rc == PMX_OK) == cases[i].ok, "%s: %s", cases[i].re, rc == PMX_OK ? "accepted" : err);
        if (rc != PMX_OK)
            ck_assert_ptr_nonnull(strstr(err, "is too complex"));
    }
    /* Back-references: exponential to match, refused; a backslash digit
     * inside a bracket expression is none. */
    static const struct {
        const char *re;
        int ok;
    } refs[] = {
        { "^(.*)(.*)(.*)\\3\\2\\1X", 0 },
        { "(a)\\1", 0 },
        { "^[\\1]x", 1 },
        { "^a\\.b\\\\1", 1 },
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        routes_reset();
        struct route_config *br = add(ROUTE_MATCH, refs[i].re, strlen(refs[i].re), "x:1");
        int rc = route_check(br, &field, err, sizeof err);
        ck_assert_msg((rc == PMX_OK) == refs[i].ok, "%s: %s", refs[i].re, rc == PMX_OK ? "accepted" : err);
        if (rc != PMX_OK)
            ck_assert_ptr_nonnull(strstr(err, "back-reference"));
    }
    /* Groups nested deeper than anyone writes. */
    routes_reset();
    char deep[600];
    memset(deep, '(', 300);
    memset(deep + 300, ')', 300);
    struct route_config *r = add(ROUTE_MATCH, deep, sizeof deep, "x:1");
    r->pattern[sizeof deep] = '\0';
    ck_assert_int_eq(route_check(r, &field, err, sizeof err), PMX_ERR);
}
END_TEST

/* The table is a copy: the configuration may go away (a reload). */
START_TEST(table_outlives_config)
{
    char err[256];
    struct route_decision d;
    struct route_config *copy = calloc(1, sizeof *copy);
    ck_assert_ptr_nonnull(copy);
    copy->kind = ROUTE_PREFIX;
    memcpy(copy->pattern, "abc", 3);
    copy->pattern_len = 3;
    snprintf(copy->target, sizeof copy->target, "t");
    copy->connect_timeout = -1;
    copy->inactivity_timeout = -1;
    struct route_table *t = route_table_create(copy, 1, err, sizeof err);
    ck_assert_ptr_nonnull(t);
    memset(copy, 0xff, sizeof *copy);
    free(copy);
    route_decision_init(&d);
    ck_assert_int_eq(route_table_decide(t, "abcd", 4, &d), ROUTE_RESULT_DECIDED);
    ck_assert_str_eq(d.target, "t");
    route_decision_free(&d);
    route_table_free(t);
}
END_TEST

/* The worked example of README's "Routing on the first bytes":
 * config/examples/routes-one-port.yaml, loaded as the daemon loads it. */
START_TEST(readme_example)
{
    struct config c;
    char err[CONFIG_ERR_MAX];
    struct route_decision d;
    static const char *const env[] = { NULL };

    ck_assert_msg(config_load(&c, "config/examples/routes-one-port.yaml", (char *const *)env, err, sizeof err) ==
                  PMX_OK, "%s", err);
    const struct service_config *sc = config_service(&c, "edge");
    ck_assert_ptr_nonnull(sc);
    ck_assert_str_eq(sc->route_default, "close");
    struct route_table *t = route_table_create(sc->routes, sc->nroutes, err, sizeof err);
    ck_assert_msg(t != NULL, "%s", err);

    size_t len = strlen(hello_hex) / 2;
    char *hello = malloc(len);
    ck_assert_ptr_nonnull(hello);
    for (size_t i = 0; i < len; i++) {
        unsigned v;
        ck_assert_int_eq(sscanf(hello_hex + 2 * i, "%2x", &v), 1);
        hello[i] = (char)v;
    }
    static const struct {
        const char *bytes;      /* NULL: the ClientHello for x.example.com */
        enum route_result want;
        enum route_action action;
        const char *target;     /* or the close bytes */
    } cases[] = {
        { NULL, ROUTE_RESULT_DECIDED, ROUTE_TARGET, "web-tls" },
        { "GET / HTTP/1.1\r\nHost: api.example.com:8443\r\n\r\n", ROUTE_RESULT_DECIDED, ROUTE_TARGET, "api" },
        { "GET / HTTP/1.1\r\nHost: WWW.example.com\r\n\r\n", ROUTE_RESULT_DECIDED, ROUTE_TARGET, "www" },
        { "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", ROUTE_RESULT_NO_MATCH, ROUTE_WAIT, "" },
        { "GET / HTTP/1.1\r\nHost: api.example.com\r\n", ROUTE_RESULT_WAIT, ROUTE_WAIT, "" },
        { "PING\r\n", ROUTE_RESULT_DECIDED, ROUTE_CLOSE, "+PONG\r\n" },
        { "PIN", ROUTE_RESULT_WAIT, ROUTE_WAIT, "" },
        { "SSH-2.0-OpenSSH_9.2\r\n", ROUTE_RESULT_NO_MATCH, ROUTE_WAIT, "" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        route_decision_init(&d);
        const char *b = cases[i].bytes != NULL ? cases[i].bytes : hello;
        size_t n = cases[i].bytes != NULL ? strlen(b) : len;
        ck_assert_int_eq(route_table_decide(t, b, n, &d), cases[i].want);
        ck_assert_int_eq(d.action, cases[i].action);
        if (d.action == ROUTE_TARGET)
            ck_assert_str_eq(d.target, cases[i].target);
        if (d.action == ROUTE_CLOSE) {
            ck_assert_uint_eq(buf_len(&d.data), strlen(cases[i].target));
            ck_assert_mem_eq(buf_start(&d.data), cases[i].target, buf_len(&d.data));
        }
        route_decision_free(&d);
    }
    free(hello);
    route_table_free(t);
    config_free(&c);
}
END_TEST

Suite *route_suite(void)
{
    Suite *s = suite_create("route");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, git_capture_with_nul_bytes);
    tcase_add_test(tc, data_with_captures);
    tcase_add_test(tc, all_nine_captures);
    tcase_add_test(tc, binary_prefix_and_regex);
    tcase_add_test(tc, not_yet_vs_never);
    tcase_add_test(tc, order_and_waiting);
    tcase_add_test(tc, close_with_bytes);
    tcase_add_test(tc, target_from_captures_checked);
    tcase_add_test(tc, sni_and_host_routes);
    tcase_add_test(tc, table_errors);
    tcase_add_test(tc, table_outlives_config);
    tcase_add_test(tc, readme_example);
    tcase_add_test(tc, regex_too_complex);
    suite_add_tcase(s, tc);
    return s;
}
