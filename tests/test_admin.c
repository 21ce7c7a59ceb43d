/* Unit tests for the admin API's router (admin_handle): malformed requests,
 * unknown paths, wrong methods, the bearer token, and the JSON errors. The
 * routes over live services are covered by tests/integration/test_admin.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "config.h"
#include "suites.h"

static struct config admin_cfg;
static int reloads;

static struct service *no_services(void *data, int *n)
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

/* Handles raw and checks the status and that the body contains want. */
static void expect(const char *raw, int status, const char *want)
{
    struct admin_response resp;

    admin_handle(&hooks, raw, strlen(raw), &resp);
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
    return s;
}
