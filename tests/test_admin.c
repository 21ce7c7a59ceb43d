/* Unit tests for the admin API's router (admin_handle): malformed requests,
 * unknown paths, wrong methods, the bearer token, and the JSON errors. The
 * routes over live services are covered by tests/integration/test_admin.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "reactor.h"
#include "service.h"
#include "suites.h"
#include "upstream.h"

static struct config admin_cfg;
static int reloads;

/* One fifo service "svc" with target "t1", its upstream layer on a reactor
 * that is never run (nothing connects: there is no exchange). */
static struct service_config svc_cfg;
static struct target_config svc_targets[1];
static struct service svc;
static struct reactor *svc_reactor;

static struct service *const *one_service(void *data, int *n)
{
    static struct service *const list[] = { &svc };

    *n = 1;
    return list;
}

static struct service *const *no_services(void *data, int *n)
{
    *n = 0;
    return NULL;
}

static const struct config *test_config(void *data)
{
    return &admin_cfg;
}

static bool test_reload(void *data, char *msg, size_t msglen)
{
    reloads++;
    snprintf(msg, msglen, "%s", reloads % 2 ? "applied" : "invalid file");
    return reloads % 2 == 1;
}

static const struct admin_hooks hooks = { no_services, test_config, test_reload, NULL };
static const struct admin_hooks svc_hooks = { one_service, test_config, test_reload, NULL };
static const struct admin_hooks *cur_hooks = &hooks;

/* Handles raw and checks the status and that the body contains want. */
static void expect(const char *raw, int status, const char *want)
{
    struct admin_response resp;

    admin_handle(cur_hooks, raw, strlen(raw), &resp);
    ck_assert_msg(resp.status == status, "%s: status %d, want %d (%.*s)", raw, resp.status, status,
                  (int)resp.len, resp.body ? resp.body : "");
    ck_assert_ptr_nonnull(resp.body);
    ck_assert_msg(strstr(resp.body, want) != NULL, "%s: body %.*s lacks %s", raw, (int)resp.len, resp.body, want);
    if (status >= 400)
        ck_assert_msg(strncmp(resp.body, "{\"error\": \"", 11) == 0, "not a JSON error: %s", resp.body);
    ck_assert_uint_eq(resp.len, strlen(resp.body));
    free(resp.body);
}

static void setup(void)
{
    memset(&admin_cfg, 0, sizeof(admin_cfg));
    reloads = 0;
    cur_hooks = &hooks;
}

static void svc_setup(void)
{
    setup();
    cur_hooks = &svc_hooks;
    memset(&svc_cfg, 0, sizeof(svc_cfg));
    memset(svc_targets, 0, sizeof(svc_targets));
    memset(&svc, 0, sizeof(svc));
    snprintf(svc_cfg.name, sizeof(svc_cfg.name), "svc");
    snprintf(svc_cfg.codec, sizeof(svc_cfg.codec), "resp");
    svc_cfg.mode = svc_cfg.effective_mode = MODE_FIFO;
    svc_cfg.health.fail_after = 3;
    svc_cfg.health.rise_after = 2;
    svc_cfg.health.interval = 1000;
    svc_cfg.health.timeout = 1000;
    snprintf(svc_targets[0].name, sizeof(svc_targets[0].name), "t1");
    snprintf(svc_targets[0].host, sizeof(svc_targets[0].host), "127.0.0.1");
    svc_targets[0].port = 1;
    svc_targets[0].weight = 1;
    svc_cfg.targets = svc_targets;
    svc_cfg.ntargets = 1;
    svc.config = &svc_cfg;
    svc_reactor = reactor_create(64);
    ck_assert_ptr_nonnull(svc_reactor);
    svc.upstream = upstream_create(svc_reactor, NULL, &svc_cfg, NULL);
    ck_assert_ptr_nonnull(svc.upstream);
}

static void svc_teardown(void)
{
    upstream_destroy(svc.upstream);
    reactor_destroy(svc_reactor);
}

/* POST /api/v1/services/svc/targets with body. */
static void add(const char *body, int status, const char *want)
{
    char raw[4096];

    snprintf(raw, sizeof(raw), "POST /api/v1/services/svc/targets HTTP/1.1\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    expect(raw, status, want);
}

START_TEST(routes)
{
    expect("GET /api/v1/services HTTP/1.1\r\nHost: x\r\n\r\n", 200, "{\"services\": []}");
    expect("GET /api/v1/stats?pretty=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, "{\"services\": []}");
    expect("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, "# TYPE proximux_clients gauge");
    expect("GET /api/v1/config HTTP/1.1\r\nHost: x\r\n\r\n", 200, "# proximux");
    expect("POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 200, "\"message\": \"applied\"");
    expect("POST /api/v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 409, "invalid file");
}
END_TEST

START_TEST(unknown_paths)
{
    expect("GET / HTTP/1.1\r\n\r\n", 404, "no such path");
    expect("GET /api/v2/services HTTP/1.1\r\n\r\n", 404, "no such path");
    expect("GET /api/v1/nothing HTTP/1.1\r\n\r\n", 404, "no such path");
    expect("GET /api/v1/services/a/b/c/d/e/f/g/h/i HTTP/1.1\r\n\r\n", 400, "too many segments");
    expect("GET /api/v1/services/nope HTTP/1.1\r\n\r\n", 404, "no service \\\"nope\\\"");
    expect("GET /api/v1/stats/n%6Fpe HTTP/1.1\r\n\r\n", 404, "no service \\\"nope\\\"");
    expect("POST /api/v1/services/nope/targets/t/dead HTTP/1.1\r\n\r\n", 404, "no service");
    expect("POST /api/v1/services/nope/targets/t/sleep HTTP/1.1\r\n\r\n", 404, "no such path");
}
END_TEST

START_TEST(methods)
{
    struct admin_response resp;
    const char *raw = "DELETE /metrics HTTP/1.1\r\n\r\n";

    admin_handle(&hooks, raw, strlen(raw), &resp);
    ck_assert_int_eq(resp.status, 405);
    ck_assert_str_eq(resp.allow, "GET");
    free(resp.body);
    expect("POST /api/v1/services HTTP/1.1\r\n\r\n", 405, "use GET");
    expect("GET /api/v1/reload HTTP/1.1\r\n\r\n", 405, "use POST");
    expect("GET /api/v1/services/x/targets/y/dead HTTP/1.1\r\n\r\n", 405, "use POST");
}
END_TEST

START_TEST(malformed)
{
    expect("GET\r\n\r\n", 400, "malformed request line");
    expect("GET /metrics\r\n\r\n", 400, "malformed request line");
    expect("GET metrics HTTP/1.1\r\n\r\n", 400, "must be a path");
    expect("GET /api/v1/stats/%zz HTTP/1.1\r\n\r\n", 400, "malformed path segment");
    expect("GET /api/v1/stats/%0a HTTP/1.1\r\n\r\n", 400, "malformed path segment");
    expect("GET /api/v1/stats/% HTTP/1.1\r\n\r\n", 400, "malformed path segment");
    expect("GET /metrics HTTP/1.1\r\nHost: x\r\n", 400, "malformed header");
    expect("POST /api/v1/reload HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Content-Length");
    expect("", 400, "malformed request line");
}
END_TEST

START_TEST(token)
{
    snprintf(admin_cfg.admin_token, sizeof(admin_cfg.admin_token), "s3cret");
    expect("GET /metrics HTTP/1.1\r\n\r\n", 401, "a bearer token is required");
    expect("GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cre\r\n\r\n", 401, "wrong token");
    expect("GET /metrics HTTP/1.1\r\nAuthorization: Bearer s3cret1\r\n\r\n", 401, "wrong token");
    expect("GET /metrics HTTP/1.1\r\nAuthorization: Basic s3cret\r\n\r\n", 401, "wrong token");
    /* Unknown paths are not revealed without the token. */
    expect("GET /nope HTTP/1.1\r\n\r\n", 401, "token");
    expect("GET /metrics HTTP/1.1\r\nauthorization:   Bearer s3cret  \r\n\r\n", 200, "proximux_clients");
    /* A reload is refused without the token. */
    expect("POST /api/v1/reload HTTP/1.1\r\n\r\n", 401, "token");
    ck_assert_int_eq(reloads, 0);
}
END_TEST

START_TEST(targets_add)
{
    add("{\"host\": \"127.0.0.1\", \"port\": 6380}", 201,
        "{\"target\": \"127.0.0.1:6380\", \"address\": \"127.0.0.1:6380\", \"state\": \"up\"}");
    add(" { \"name\" : \"u\\u0031\", \"unix\": \"/tmp/x.sock\", \"weight\": 3, \"backup\": true } ", 201,
        "\"target\": \"u1\", \"address\": \"unix:/tmp/x.sock\"");
    add("{\"host\": \"::1\", \"port\": 1}", 201, "\"target\": \"[::1]:1\"");
    ck_assert_int_eq(upstream_target_count(svc.upstream), 4);
    ck_assert_int_eq(upstream_target_find(svc.upstream, "u1"), 2);
    add("{\"name\": \"t1\", \"host\": \"127.0.0.1\", \"port\": 2}", 409, "exists already");
    expect("GET /api/v1/services/svc HTTP/1.1\r\n\r\n", 200, "\"name\": \"u1\", \"address\": \"unix:/tmp/x.sock\"");
}
END_TEST

START_TEST(targets_bad_json)
{
    add("", 400, "must be a JSON object");
    add("[1]", 400, "must be a JSON object");
    add("{", 400, "malformed JSON");
    add("{\"host\": \"a\", }", 400, "malformed JSON");
    add("{\"host\": \"a\"} x", 400, "bytes after");
    add("{\"host\": \"a\", \"host\": \"b\"}", 400, "repeated");
    add("{\"host\": \"a\\n\", \"port\": 1}", 400, "malformed JSON string");
    add("{\"host\": \"a\\u0001\", \"port\": 1}", 400, "malformed JSON string");
    add("{\"host\": \"a\", \"port\": 1.5}", 400, "integer");
    add("{\"host\": \"a\", \"port\": 99999999999}", 400, "out of range");
    add("{\"host\": \"a\", \"port\": 70000}", 400, "a target takes");
    add("{\"host\": \"a\", \"port\": \"1\"}", 400, "a target takes");
    add("{\"host\": \"a\", \"port\": null}", 400, "malformed JSON");
    add("{\"host\": {\"a\": 1}}", 400, "malformed JSON");
    add("{\"colour\": \"red\"}", 400, "a target takes");
    add("{\"host\": \"a\"}", 400, "needs host and port");
    add("{\"unix\": \"/x\", \"port\": 1}", 400, "not both");
    add("{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1}", 400, "too many fields");
    ck_assert_int_eq(upstream_target_count(svc.upstream), 1);
    expect("GET /api/v1/services/svc/targets HTTP/1.1\r\n\r\n", 405, "use POST");
}
END_TEST

START_TEST(targets_drain)
{
    /* The last target stays. */
    expect("DELETE /api/v1/services/svc/targets/t1 HTTP/1.1\r\n\r\n", 409, "last target");
    add("{\"name\": \"t2\", \"host\": \"127.0.0.1\", \"port\": 2}", 201, "t2");
    expect("DELETE /api/v1/services/svc/targets/nope HTTP/1.1\r\n\r\n", 404, "no target \\\"nope\\\"");
    expect("POST /api/v1/services/svc/targets/t1 HTTP/1.1\r\n\r\n", 405, "use DELETE");
    /* No connection: removed at once; t2 moves to index 0. */
    expect("DELETE /api/v1/services/svc/targets/t1 HTTP/1.1\r\n\r\n", 202,
           "{\"target\": \"t1\", \"draining\": true, \"connections\": 0, \"removed\": true}");
    ck_assert_int_eq(upstream_target_count(svc.upstream), 1);
    ck_assert_int_eq(upstream_target_find(svc.upstream, "t2"), 0);
    expect("POST /api/v1/services/svc/targets/t2/dead HTTP/1.1\r\n\r\n", 200, "\"state\": \"maint\"");
    expect("POST /api/v1/services/svc/targets/t2/alive HTTP/1.1\r\n\r\n", 200, "\"state\": \"up\"");
}
END_TEST

Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("router");

    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, routes);
    tcase_add_test(tc, unknown_paths);
    tcase_add_test(tc, methods);
    tcase_add_test(tc, malformed);
    tcase_add_test(tc, token);
    suite_add_tcase(s, tc);
    tc = tcase_create("targets");
    tcase_add_checked_fixture(tc, svc_setup, svc_teardown);
    tcase_add_test(tc, targets_add);
    tcase_add_test(tc, targets_bad_json);
    tcase_add_test(tc, targets_drain);
    suite_add_tcase(s, tc);
    return s;
}
