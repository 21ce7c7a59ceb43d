/* Unit tests of the routes configuration (SPEC §10): routes:, route_max_bytes,
 * route_timeout and route_default, per service and in the single-service
 * form; every rule the loader checks, the -t dump loading back, and that a
 * reload may change them in place. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_check.h"
#include "suites.h"

#define SVC (&cfg->services[0])

/* A proxy-mode single service with two named targets (lines 1-5). */
#define HEAD "local: { host: 127.0.0.1, port: 7001, max_connections: 4 }\n" \
             "pool: { connections: 4 }\n" \
             "targets:\n" \
             "  - { host: 127.0.0.1, port: 7101, name: web }\n" \
             "  - { host: 127.0.0.1, port: 7102, name: api }\n"

static const char every_kind[] =
    HEAD
    "routes:\n"                                                                         /* 6 */
    "  - match: '^....git-upload-pack /([A-Za-z0-9._-]+)/\\.git\\x01\\n'\n"             /* 7 */
    "    target: '$1.git.internal:9418'\n"
    "    connect_timeout: 1000\n"
    "    inactivity_timeout: 10000\n"
    "  - prefix: \"PING\\\\r\\\\n\\\\x00\"\n"
    "    close: \"+PONG\\\\r\\\\n\"\n"
    "  - sni: \"*.Example.COM\"\n"
    "    target: web\n"
    "  - http_host: \"api.example.com\"\n"
    "    target: api\n"
    "    reply: \"HI\"\n"
    "    data: \"GET /$$ HTTP/1.0\\\\r\\\\n\\\\r\\\\n\"\n"
    "  - { prefix: x, target: \"10.0.0.1:80\", data: \"\" }\n"
    "  - { prefix: y, close: \"\" }\n"
    "route_max_bytes: 100\n"
    "route_timeout: 250\n"
    "route_default: api\n";

START_TEST(routes_every_kind)
{
    ck_assert_msg(load(every_kind, NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(SVC->nroutes, 6);
    const struct route_config *r = SVC->routes;
    ck_assert_int_eq(r[0].kind, ROUTE_MATCH);
    /* Regex escapes kept, \x01 and \n decoded. */
    ck_assert_str_eq(r[0].pattern, "^....git-upload-pack /([A-Za-z0-9._-]+)/\\.git\x01\n");
    ck_assert_uint_eq(r[0].pattern_len, strlen(r[0].pattern));
    ck_assert_str_eq(r[0].target, "$1.git.internal:9418");
    ck_assert_int_eq(r[0].connect_timeout, 1000);
    ck_assert_int_eq(r[0].inactivity_timeout, 10000);
    ck_assert(!r[0].has_data && !r[0].has_close);
    ck_assert_int_eq(r[1].kind, ROUTE_PREFIX);
    ck_assert_uint_eq(r[1].pattern_len, 7);
    ck_assert_mem_eq(r[1].pattern, "PING\r\n\0", 7);
    ck_assert(r[1].has_close);
    ck_assert_uint_eq(r[1].close_len, 7);
    ck_assert_str_eq(r[1].close, "+PONG\r\n");
    ck_assert_str_eq(r[1].target, "");
    ck_assert_int_eq(r[1].connect_timeout, -1);
    ck_assert_int_eq(r[1].inactivity_timeout, -1);
    ck_assert_int_eq(r[2].kind, ROUTE_SNI);
    ck_assert_str_eq(r[2].pattern, "*.example.com");        /* lowercased */
    ck_assert_int_eq(r[3].kind, ROUTE_HTTP_HOST);
    ck_assert_str_eq(r[3].reply, "HI");
    ck_assert(r[3].has_data);
    ck_assert_str_eq(r[3].data, "GET /$$ HTTP/1.0\r\n\r\n");
    ck_assert(r[4].has_data);
    ck_assert_uint_eq(r[4].data_len, 0);
    ck_assert_str_eq(r[4].target, "10.0.0.1:80");
    ck_assert(r[5].has_close);
    ck_assert_uint_eq(r[5].close_len, 0);
    ck_assert_int_eq(SVC->route_max_bytes, 100);
    ck_assert_int_eq(SVC->route_timeout, 250);
    ck_assert_str_eq(SVC->route_default, "api");
}
END_TEST

START_TEST(routes_defaults)
{
    ck_assert_msg(load(HEAD, NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(SVC->nroutes, 0);
    ck_assert_ptr_null(SVC->routes);
    ck_assert_int_eq(SVC->route_max_bytes, 4096);
    ck_assert_int_eq(SVC->route_timeout, 5000);
    ck_assert_str_eq(SVC->route_default, "close");
    /* Not proxy mode, no routes: the route settings are harmless. */
    ck_assert_msg(load("local: {port: 1}\npool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 2}]\n"
                       "route_timeout: 10\n", NULL) == PMX_OK, "%s", err);
}
END_TEST

START_TEST(routes_per_service)
{
    ck_assert_msg(load("pool: { connections: 2 }\n"
                       "services:\n"
                       "  - name: a\n"
                       "    local: { host: 127.0.0.1, port: 7001, max_connections: 2 }\n"
                       "    targets: [{ host: 127.0.0.1, port: 7101, name: t1 }]\n"
                       "    routes: [{ prefix: A, target: t1 }, { match: 'B(.)', target: '$1:80' }]\n"
                       "    route_default: t1\n"
                       "  - name: b\n"
                       "    local: { host: 127.0.0.1, port: 7002 }\n"
                       "    targets: [{ host: 127.0.0.1, port: 7101 }]\n",
                       NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(cfg->services[0].nroutes, 2);
    ck_assert_int_eq(cfg->services[0].routes[1].kind, ROUTE_MATCH);
    ck_assert_str_eq(cfg->services[0].route_default, "t1");
    ck_assert_int_eq(cfg->services[1].nroutes, 0);
    ck_assert_str_eq(cfg->services[1].route_default, "close");
}
END_TEST

/* The dump loads back into the same routes, and a second dump is equal. */
START_TEST(routes_dump_round_trip)
{
    ck_assert_msg(load(every_kind, NULL) == PMX_OK, "%s", err);
    char *first = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(first, "routes:\n  - { match: \"^....git-upload-pack /([A-Za-z0-9._-]+)/"
                                        "\\\\.git\\\\x01\\\\x0a\", target: \"$1.git.internal:9418\", "
                                        "connect_timeout: 1000, inactivity_timeout: 10000 }\n"));
    ck_assert_ptr_nonnull(strstr(first, "  - { prefix: \"PING\\\\r\\\\n\\\\x00\", close: \"+PONG\\\\r\\\\n\" }\n"));
    ck_assert_ptr_nonnull(strstr(first, "  - { sni: \"*.example.com\", target: \"web\" }\n"));
    ck_assert_ptr_nonnull(strstr(first, "  - { prefix: \"x\", target: \"10.0.0.1:80\", data: \"\" }\n"));
    ck_assert_ptr_nonnull(strstr(first, "  - { prefix: \"y\", close: \"\" }\n"));
    ck_assert_ptr_nonnull(strstr(first, "route_max_bytes: 100\nroute_timeout: 250\nroute_default: \"api\"\n"));
    struct config *saved = cfg;
    cfg = calloc(1, sizeof *cfg);
    ck_assert_msg(load(first, NULL) == PMX_OK, "%s", err);
    char *second = dump_to_string(cfg);
    ck_assert_str_eq(first, second);
    ck_assert_int_eq(cfg->services[0].nroutes, saved->services[0].nroutes);
    for (int k = 0; k < cfg->services[0].nroutes; k++) {
        const struct route_config *a = &cfg->services[0].routes[k], *b = &saved->services[0].routes[k];
        ck_assert_int_eq(a->kind, b->kind);
        ck_assert_uint_eq(a->pattern_len, b->pattern_len);
        ck_assert_mem_eq(a->pattern, b->pattern, a->pattern_len);
        ck_assert_int_eq(a->has_data, b->has_data);
        ck_assert_int_eq(a->has_close, b->has_close);
    }
    config_free(saved);
    free(saved);
    free(first);
    free(second);
}
END_TEST

/* Regexes whose backslashes the loader could read two ways dump to text
 * that loads back to the same bytes. */
START_TEST(routes_dump_regex_backslashes)
{
    static const char *const values[] = {
        "'a\\x5cn'",          /* a backslash byte, then n: not the \n escape */
        "'a\\x5c\\x5c'",      /* two backslash bytes at the end */
        "'a\\\\n\\.'",        /* a kept \\ pair, n, a kept \. pair */
        "'a\\x5c\\x0a'",      /* a backslash before a byte written \xNN */
        "'\\x5c\\x5c\\x5c\\x5cx41\\xc3\\xa9'",
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(values); i++) {
        char yaml[512];
        snprintf(yaml, sizeof yaml, HEAD "routes:\n  - { match: %s, target: web }\n", values[i]);
        ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s: %s", values[i], err);
        char want[CONFIG_ROUTE_TEXT_MAX];
        size_t want_len = SVC->routes[0].pattern_len;
        memcpy(want, SVC->routes[0].pattern, want_len);
        char *dump = dump_to_string(cfg);
        ck_assert_msg(load(dump, NULL) == PMX_OK, "%s: %s", values[i], err);
        ck_assert_uint_eq(SVC->routes[0].pattern_len, want_len);
        ck_assert_msg(memcmp(SVC->routes[0].pattern, want, want_len) == 0, "%s: dump %s", values[i], dump);
        free(dump);
    }
}
END_TEST

/* Routes are reloadable in place: a changed list is no fixed change. */
START_TEST(routes_reload_in_place)
{
    struct config *other = calloc(1, sizeof *other);
    char out[256];
    ck_assert_ptr_nonnull(other);
    ck_assert_msg(load(every_kind, NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(config_load(other, write_yaml(HEAD "routes: [{ sni: a.example.com, target: web }]\n"
                                                   "route_default: web\nroute_max_bytes: 10\n"),
                                 NULL, err, sizeof err), PMX_OK);
    config_service_fixed_changes(SVC, &other->services[0], out, sizeof out);
    ck_assert_str_eq(out, "");
    config_free(other);
    free(other);
}
END_TEST

/* A longest pattern: CONFIG_ROUTE_TEXT_MAX - 1 bytes after escapes. */
START_TEST(routes_long_pattern)
{
    size_t n = CONFIG_ROUTE_TEXT_MAX - 1;
    char *yaml = malloc(n * 5 + 512);
    ck_assert_ptr_nonnull(yaml);
    int o = sprintf(yaml, "%sroutes:\n  - prefix: \"", HEAD);
    for (size_t i = 0; i < n; i++)
        o += sprintf(yaml + o, "\\\\x%02x", (unsigned)(i % 255 + 1));
    sprintf(yaml + o, "\"\n    target: web\n");
    ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s", err);
    ck_assert_uint_eq(SVC->routes[0].pattern_len, n);
    ck_assert_int_eq((unsigned char)SVC->routes[0].pattern[n - 1], (n - 1) % 255 + 1);
    char *dump = dump_to_string(cfg);
    struct config *saved = cfg;
    cfg = calloc(1, sizeof *cfg);
    ck_assert_msg(load(dump, NULL) == PMX_OK, "%s", err);
    ck_assert_mem_eq(cfg->services[0].routes[0].pattern, saved->services[0].routes[0].pattern, n);
    config_free(saved);
    free(saved);
    free(dump);
    /* One byte more is refused. */
    o = sprintf(yaml, "%sroutes:\n  - prefix: \"", HEAD);
    for (size_t i = 0; i <= n; i++)
        o += sprintf(yaml + o, "a");
    sprintf(yaml + o, "\"\n    target: web\n");
    ck_assert_int_eq(load(yaml, NULL), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "routes[1].prefix (")); 
    ck_assert_ptr_nonnull(strstr(err, "is too long (at most 4095 bytes after escapes)"));
    free(yaml);
}
END_TEST

static const struct {
    const char *yaml;   /* after HEAD */
    const char *want;
} routes_bad[] = {
    { "routes:\n  - { match: '(', target: web }\n",
      "routes[1].match (@FILE@ line 7): does not compile: Unmatched ( or \\(" },
    { "routes:\n  - { match: a, prefix: b, target: web }\n",
      "routes[1].prefix (@FILE@ line 7): a route has one of match, prefix, sni, http_host (also match)" },
    { "routes:\n  - { target: web }\n",
      "routes[1] (@FILE@ line 7): missing match, prefix, sni or http_host (one is required)" },
    { "routes:\n  - { prefix: a, target: web }\n  - { prefix: a }\n",
      "routes[2] (@FILE@ line 8): missing target or close (a route has one of them: where to proxy, "
      "or the bytes sent before closing)" },
    { "routes:\n  - { prefix: a, target: web, close: \"\" }\n",
      "routes[1].close (@FILE@ line 7): conflicts with target (a route has one of them: where to proxy, "
      "or the bytes sent before closing)" },
    { "routes:\n  - { prefix: a, close: \"\", data: x }\n",
      "routes[1].data (@FILE@ line 7): only with target (a close route sends its bytes and closes)" },
    { "routes:\n  - { prefix: a, close: \"\", connect_timeout: 5 }\n",
      "routes[1].connect_timeout (@FILE@ line 7): only with target (a close route sends its bytes and closes)" },
    { "routes:\n  - { prefix: a, target: nope }\n",
      "routes[1].target (@FILE@ line 7): \"nope\" is not a target name of the service nor HOST:PORT" },
    { "routes:\n  - { prefix: a, target: \"host:0\" }\n",
      "routes[1].target (@FILE@ line 7): \"host:0\" is not a target name of the service nor HOST:PORT" },
    { "routes:\n  - { prefix: a, target: \"unix:/tmp/x\" }\n",
      "routes[1].target (@FILE@ line 7): \"unix:/tmp/x\" is not a target name of the service nor HOST:PORT" },
    { "routes:\n  - { prefix: a, target: '$1:80' }\n",
      "routes[1].target (@FILE@ line 7): $1: captures come from match: (a regex); this route has none" },
    { "routes:\n  - { match: '(a)', target: '$2:80' }\n",
      "routes[1].target (@FILE@ line 7): $2: the regex has 1 group" },
    { "routes:\n  - { match: 'a', target: '$0:80' }\n",
      "routes[1].target (@FILE@ line 7): a $ is followed by a digit 1-9 (a capture) or by $ (a literal $)" },
    { "routes:\n  - { match: '(a)', target: web, data: 'x$' }\n",
      "routes[1].data (@FILE@ line 7): a $ is followed by a digit 1-9 (a capture) or by $ (a literal $)" },
    { "routes:\n  - { match: 'a\\x00', target: web }\n",
      "routes[1].match (@FILE@ line 7): \"a\\\\x00\" has a NUL byte (\\x00), which a regex cannot hold "
      "(match it with [^...] or use prefix:)" },
    { "routes:\n  - { match: 'a\\xzz', target: web }\n",
      "routes[1].match (@FILE@ line 7): \"a\\\\xzz\" has a bad escape (a POSIX extended regex; escapes "
      "\\r \\n \\t \\xNN, no NUL byte)" },
    { "routes:\n  - { prefix: '', target: web }\n",
      "routes[1].prefix (@FILE@ line 7): \"\" is not a pattern (1-4095 bytes; escapes \\r \\n \\t \\\\ \\xNN)" },
    { "routes:\n  - { sni: 'a b', target: web }\n",
      "routes[1].sni (@FILE@ line 7): \"a b\" is not a pattern (a host name or *.domain)" },
    { "routes:\n  - { sni: 'a..b', target: web }\n",
      "routes[1].sni (@FILE@ line 7): \"a..b\" is not a pattern (a host name or *.domain)" },
    { "routes:\n  - { http_host: '*.', target: web }\n",
      "routes[1].http_host (@FILE@ line 7): \"*.\" is not a pattern (a host name or *.domain)" },
    { "routes:\n  - { http_host: 'a.*', target: web }\n",
      "routes[1].http_host (@FILE@ line 7): \"a.*\" is not a pattern (a host name or *.domain)" },
    { "routes:\n  - { prefix: a, target: web, connect_timeout: 0 }\n",
      "routes[1].connect_timeout (@FILE@ line 7): \"0\" is out of range (-1 or 1-600000 ms)" },
    { "routes:\n  - { prefix: a, target: web, colour: red }\n",
      "routes[1].colour (@FILE@ line 7): unknown setting (a route takes match, prefix, sni, http_host, "
      "target, reply, data, close, connect_timeout, inactivity_timeout)" },
    { "routes:\n  - { match: '((a{99}){99}){99}', target: web }\n",
      "routes[1].match (@FILE@ line 7): is too complex: its repetitions make more than 20000 copies of its "
      "parts (glibc copies a repeated part once per repetition; nest fewer +, {n,m})" },
    { "routes:\n  - { match: '^(.*)(.*)(.*)\\3\\2\\1X', target: web }\n",
      "routes[1].match (@FILE@ line 7): has a back-reference (\\1..\\9): refused, matching one takes time "
      "exponential in the client's bytes" },
    { "route_default: nope\n",
      "route_default (@FILE@ line 6): \"nope\" is not close or a target name of the service" },
    { "route_max_bytes: 0\n",
      "route_max_bytes (@FILE@ line 6): \"0\" is out of range (1-1048576 bytes)" },
    { "route_timeout: 3600001\n",
      "route_timeout (@FILE@ line 6): \"3600001\" is out of range (1-3600000 ms)" },
};

START_TEST(routes_bad_value)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s%s", HEAD, routes_bad[_i].yaml);
    check_error(load(yaml, NULL), routes_bad[_i].want, 0);
}
END_TEST

START_TEST(routes_need_proxy_mode)
{
    check_error(load("local: {port: 1}\npool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 2}]\n"
                     "routes:\n  - { prefix: a, close: x }\n", NULL),
                "routes (@FILE@ line 4): routes need exchange.mode proxy (the mode is fifo: a client's "
                "bytes go to shared upstream connections)", 0);
    check_error(load("pool: {connections: 1}\nservices:\n  - name: s\n    local: {port: 1}\n"
                     "    targets: [{host: 127.0.0.1, port: 2}]\n    exchange: {mode: funnel}\n"
                     "    routes:\n      - { prefix: a, close: x }\n", NULL),
                "services[1].routes (@FILE@ line 7): routes need exchange.mode proxy (the mode is funnel: "
                "a client's bytes go to shared upstream connections)", 0);
    /* A MySQL client waits for the greeting: nothing to route on. */
    check_error(load("pool: {connections: 2}\nservices:\n  - name: s\n    local: {port: 1, max_connections: 2}\n"
                     "    targets: [{host: 127.0.0.1, port: 2}]\n    exchange: {codec: mysql}\n"
                     "    routes:\n      - { prefix: a, close: x }\n", NULL),
                "services[1].routes (@FILE@ line 7): routes cannot work with exchange.codec mysql (a MySQL "
                "client says nothing before the server's greeting)", 0);
    /* Next to services: a route list is per service. */
    check_error(load("pool: {connections: 1}\nroutes:\n  - { prefix: a, close: x }\nservices:\n  - name: s\n"
                     "    local: {port: 1}\n    targets: [{host: 127.0.0.1, port: 2}]\n", NULL),
                "routes (@FILE@ line 2): not allowed next to services:", 1);
    check_error(load("pool: {connections: 2}\nservices:\n  - name: s\n    local: {port: 1, max_connections: 2}\n"
                     "    targets: [{host: 127.0.0.1, port: 2}]\n    routes:\n      - { match: 'a', target: x }\n",
                     NULL),
                "services[1].routes[1].target (@FILE@ line 7): \"x\" is not a target name of the service nor HOST:PORT", 0);
}
END_TEST

Suite *config_routes_suite(void)
{
    Suite *s = suite_create("config_routes");

    TCase *good = tcase_create("good");
    tcase_add_unchecked_fixture(good, dir_setup, dir_teardown);
    tcase_add_checked_fixture(good, cfg_setup, cfg_teardown);
    tcase_add_test(good, routes_every_kind);
    tcase_add_test(good, routes_defaults);
    tcase_add_test(good, routes_per_service);
    tcase_add_test(good, routes_dump_round_trip);
    tcase_add_test(good, routes_reload_in_place);
    tcase_add_test(good, routes_dump_regex_backslashes);
    tcase_add_test(good, routes_long_pattern);
    suite_add_tcase(s, good);

    TCase *bad = tcase_create("bad");
    tcase_add_unchecked_fixture(bad, dir_setup, dir_teardown);
    tcase_add_checked_fixture(bad, cfg_setup, cfg_teardown);
    tcase_add_loop_test(bad, routes_bad_value, 0, (int)PMX_ARRAY_LEN(routes_bad));
    tcase_add_test(bad, routes_need_proxy_mode);
    suite_add_tcase(s, bad);
    return s;
}
