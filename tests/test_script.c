/* Unit tests for the Lua hooks: load errors with file and line, the
 * sandbox (forbidden libraries absent, memory limit), the instruction
 * budget, and every hook's arguments and results (on_connect, route in
 * all its forms, on_request, on_response, on_event, proximux.log). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "log.h"
#include "route_decision.h"
#include "script.h"
#include "suites.h"

static char script_path[64];

/* Writes text to a temporary file and loads it; the file is removed. */
static struct script *load_text(const char *text, char *err, size_t errlen)
{
    snprintf(script_path, sizeof script_path, "/tmp/pmx_script_XXXXXX");
    int fd = mkstemp(script_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct script *s = script_load(script_path, "svc", err, errlen);
    unlink(script_path);
    return s;
}

static struct script *load_ok(const char *text)
{
    char err[512] = "";
    struct script *s = load_text(text, err, sizeof err);

    ck_assert_msg(s != NULL, "load failed: %s", err);
    return s;
}

/* Runs chunk "return <expr>" through on_connect and returns the reason
 * it refused with ("" when it let the client in). */
static const char *probe(struct script *s, char *reason, size_t n)
{
    if (script_on_connect(s, "127.0.0.1", 1, reason, n))
        snprintf(reason, n, "%s", "");
    return reason;
}

START_TEST(load_errors)
{
    char err[512];

    ck_assert_ptr_null(script_load("/nonexistent/hooks.lua", "svc", err, sizeof err));
    ck_assert_str_eq(err, "cannot open /nonexistent/hooks.lua: No such file or directory");
    ck_assert_ptr_null(load_text("local a = 1\n\nx x\n", err, sizeof err));
    ck_assert_msg(strstr(err, ":3: syntax error near 'x'") != NULL, "%s", err);
    ck_assert_msg(strncmp(err, script_path, strlen(script_path)) == 0, "%s", err);
    ck_assert_ptr_null(load_text("error('boom')\n", err, sizeof err));
    ck_assert_msg(strstr(err, ":1: boom") != NULL, "%s", err);
    /* A main chunk that never ends is cut by the budget. */
    ck_assert_ptr_null(load_text("while true do end\n", err, sizeof err));
    ck_assert_msg(strstr(err, "instruction budget exhausted") != NULL, "%s", err);
    /* A binary chunk is refused. */
    ck_assert_ptr_null(load_text("\x1bLua", err, sizeof err));
}
END_TEST

START_TEST(sandbox)
{
    struct script *s = load_ok(
        "function on_connect(c)\n"
        "  for _, name in ipairs({'io', 'os', 'require', 'package', 'dofile', 'loadfile', 'debug',\n"
        "                         'collectgarbage', 'print'}) do\n"
        "    if _G[name] ~= nil then return false, name .. ' present' end\n"
        "  end\n"
        "  if string.dump ~= nil then return false, 'string.dump present' end\n"
        "  for _, name in ipairs({'string', 'table', 'math', 'utf8', 'pairs', 'pcall', 'tostring'}) do\n"
        "    if _G[name] == nil then return false, name .. ' absent' end\n"
        "  end\n"
        "  local f = load('return 6 * 7')\n"
        "  if f() ~= 42 then return false, 'load text' end\n"
        "  local g, why = load('return 1', 'x', 'b')\n"
        "  if g ~= nil then return false, 'load binary mode' end\n"
        "  local h = load('return y', 'x', 't', { y = 5 })\n"
        "  if h() ~= 5 then return false, 'load env' end\n"
        "  return true\n"
        "end\n");
    char reason[256];

    ck_assert_str_eq(probe(s, reason, sizeof reason), "");
    script_unref(s);
}
END_TEST

START_TEST(memory_limit)
{
    struct script *s = load_ok(
        "function on_connect(c)\n"
        "  local big = string.rep('x', 1024 * 1024 * 1024)\n"
        "  return true\n"
        "end\n"
        "function route(data, c)\n"
        "  local t = {}\n"
        "  for i = 1, 100 do t[i] = string.rep(tostring(i), 1024 * 1024) end\n"
        "  return { remote = 'a:1' }\n"
        "end\n");
    char reason[256];
    struct route_decision d;

    ck_assert(!script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason));
    ck_assert_str_eq(reason, "script error");
    route_decision_init(&d);
    ck_assert_int_eq(script_route(s, "x", 1, "127.0.0.1", 1, &d), PMX_ERR);
    ck_assert_int_eq(d.action, ROUTE_CLOSE);
    route_decision_free(&d);
    ck_assert_uint_eq(script_errors(s), 2);
    script_unref(s);
}
END_TEST

START_TEST(budget)
{
    struct script *s = load_ok(
        "n = 0\n"
        "function on_connect(c)\n"
        "  n = n + 1\n"
        "  if c.addr == '10.0.0.1' then while true do end end\n"
        "  return true\n"
        "end\n");
    char reason[256];

    ck_assert(!script_on_connect(s, "10.0.0.1", 1, reason, sizeof reason));
    ck_assert_str_eq(reason, "script budget exhausted");
    /* The state keeps serving after a cut call. */
    for (int i = 0; i < 100; i++)
        ck_assert(script_on_connect(s, "10.0.0.2", 1, reason, sizeof reason));
    ck_assert(!script_on_connect(s, "10.0.0.1", 1, reason, sizeof reason));
    ck_assert(script_on_connect(s, "10.0.0.2", 1, reason, sizeof reason));
    ck_assert_uint_eq(script_errors(s), 2);
    script_unref(s);
}
END_TEST

START_TEST(on_connect_refusal)
{
    struct script *s = load_ok(
        "local blocked = { ['127.0.0.2'] = true }\n"
        "function on_connect(c)\n"
        "  if c.service ~= 'svc' or c.port ~= 4242 then return false, 'bad args' end\n"
        "  if blocked[c.addr] then return false, 'blocked\\nhere' end\n"
        "  if c.addr == '127.0.0.3' then return false end\n"
        "  if c.addr == '127.0.0.4' then error('oops') end\n"
        "end\n");
    char reason[256];

    ck_assert(script_on_connect(s, "127.0.0.1", 4242, reason, sizeof reason));
    ck_assert(!script_on_connect(s, "127.0.0.2", 4242, reason, sizeof reason));
    ck_assert_str_eq(reason, "blocked here");
    ck_assert(!script_on_connect(s, "127.0.0.3", 4242, reason, sizeof reason));
    ck_assert_str_eq(reason, "refused by on_connect");
    ck_assert(!script_on_connect(s, "127.0.0.4", 4242, reason, sizeof reason));
    ck_assert_str_eq(reason, "script error");
    script_unref(s);
    /* No hook: everyone comes in. */
    s = load_ok("x = 1\n");
    ck_assert(script_on_connect(s, "127.0.0.2", 1, reason, sizeof reason));
    ck_assert(!script_has(s, "on_connect"));
    script_unref(s);
    ck_assert(script_on_connect(NULL, "127.0.0.2", 1, reason, sizeof reason));
}
END_TEST

/* Calls route with data and returns the decision's action. */
static int route_of(struct script *s, const char *data, size_t len, struct route_decision *d)
{
    route_decision_init(d);
    int rc = script_route(s, data, len, "127.0.0.1", 5555, d);
    return rc == PMX_OK ? (int)d->action : -1;
}

START_TEST(route_forms)
{
    struct script *s = load_ok(
        "function route(data, c)\n"
        "  if c.addr ~= '127.0.0.1' or c.port ~= 5555 or c.service ~= 'svc' then error('args') end\n"
        "  if data == 'nil' then return nil end\n"
        "  if data == 'noop' then return { noop = true } end\n"
        "  if data == 'close' then return { close = true } end\n"
        "  if data == 'closeb' then return { close = 'bye\\0!' } end\n"
        "  if data == 'remote' then return { remote = 'localhost:25' } end\n"
        "  if data == 'full' then return { remote = '[::1]:80', data = 'GET\\0/', reply = 'ok\\n',\n"
        "                                  connect_timeout = 1.5, inactivity_timeout = 10 } end\n"
        "  if data == 'typo' then return { remot = 'x:1' } end\n"
        "  if data == 'badtype' then return { remote = 12 } end\n"
        "  if data == 'badto' then return { remote = 'a:1', connect_timeout = -1 } end\n"
        "  if data == 'string' then return 'a:1' end\n"
        "  if data == 'empty' then return {} end\n"
        "  if data == 'long' then return { remote = string.rep('a', 600) } end\n"
        "  if data == 'loop' then while true do end end\n"
        "  if data == 'falseclose' then return { close = false, noop = true } end\n"
        "  if data == '\\0\\1bin' then return { remote = 'bin:1' } end\n"
        "  error('unexpected ' .. data)\n"
        "end\n");
    struct route_decision d;

    ck_assert_int_eq(route_of(s, "nil", 3, &d), ROUTE_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "noop", 4, &d), ROUTE_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "falseclose", 10, &d), ROUTE_WAIT);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "close", 5, &d), ROUTE_CLOSE);
    ck_assert_uint_eq(buf_len(&d.data), 0);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "closeb", 6, &d), ROUTE_CLOSE);
    ck_assert_uint_eq(buf_len(&d.data), 5);
    ck_assert_int_eq(memcmp(buf_start(&d.data), "bye\0!", 5), 0);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "remote", 6, &d), ROUTE_TARGET);
    ck_assert_str_eq(d.target, "localhost:25");
    ck_assert_int_eq(d.has_data, 0);
    ck_assert_uint_eq(buf_len(&d.reply), 0);
    ck_assert_int_eq(d.connect_timeout, -1);
    ck_assert_int_eq(d.inactivity_timeout, -1);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "full", 4, &d), ROUTE_TARGET);
    ck_assert_str_eq(d.target, "[::1]:80");
    ck_assert_int_eq(d.has_data, 1);
    ck_assert_uint_eq(buf_len(&d.data), 5);
    ck_assert_int_eq(memcmp(buf_start(&d.data), "GET\0/", 5), 0);
    ck_assert_uint_eq(buf_len(&d.reply), 3);
    ck_assert_int_eq(memcmp(buf_start(&d.reply), "ok\n", 3), 0);
    ck_assert_int_eq(d.connect_timeout, 1500);
    ck_assert_int_eq(d.inactivity_timeout, 10000);
    route_decision_free(&d);
    /* From a socket address, as the routing phase calls it (IPv4, and
     * IPv4-mapped IPv6 shown as IPv4). */
    struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(5555) };
    inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
    route_decision_init(&d);
    ck_assert_int_eq(script_route_client(s, "remote", 6, (struct sockaddr *)&in4, sizeof in4, &d), PMX_OK);
    ck_assert_str_eq(d.target, "localhost:25");
    route_decision_free(&d);
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(5555) };
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    route_decision_init(&d);
    ck_assert_int_eq(script_route_client(s, "remote", 6, (struct sockaddr *)&in6, sizeof in6, &d), PMX_OK);
    ck_assert_int_eq(d.action, ROUTE_TARGET);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "\0\1bin", 5, &d), ROUTE_TARGET);
    ck_assert_str_eq(d.target, "bin:1");
    route_decision_free(&d);
    /* Every malformed result, error and loop: a close with nothing to send. */
    const char *bad[] = { "typo", "badtype", "badto", "string", "empty", "long", "loop", "other" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(route_of(s, bad[i], strlen(bad[i]), &d), -1);
        ck_assert_int_eq(d.action, ROUTE_CLOSE);
        ck_assert_uint_eq(buf_len(&d.data), 0);
        ck_assert_uint_eq(buf_len(&d.reply), 0);
        route_decision_free(&d);
    }
    ck_assert_uint_eq(script_errors(s), 8);
    script_unref(s);
    /* No route function: a close, PMX_ERR. */
    s = load_ok("x = 1\n");
    ck_assert_int_eq(route_of(s, "x", 1, &d), -1);
    route_decision_free(&d);
    script_unref(s);
}
END_TEST

START_TEST(on_request_results)
{
    struct script *s = load_ok(
        "seen = {}\n"
        "function on_request(req)\n"
        "  if req.client ~= '1.2.3.4:5' or req.service ~= 'svc' then error('args') end\n"
        "  req.mark = 'm' .. req.command\n"
        "  if req.command == 'PING' then return { reply = '+PONG\\r\\n' } end\n"
        "  if req.command == 'QUIT' then return { close = true } end\n"
        "  if req.command == 'ERR' then error('bad') end\n"
        "  if req.command == 'LOOP' then while true do end end\n"
        "  if req.command == 'ODD' then return 5 end\n"
        "  return nil\n"
        "end\n"
        "function on_response(req, resp)\n"
        "  seen[#seen + 1] = req.mark .. ' ' .. req.bytes .. ' ' .. resp.status .. ' ' .. resp.bytes\n"
        "    .. ' ' .. tostring(resp.us)\n"
        "end\n"
        "function on_connect(c)\n"
        "  if #seen ~= 1 or seen[1] ~= 'mGET GET k ok $1\\r\\nv 1234' then return false, tostring(seen[1]) end\n"
        "end\n");
    struct buf reply;
    int ref;
    char reason[256];

    buf_init(&reply);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "PING", 4, "x", 1, &reply, &ref), SCRIPT_REPLY);
    ck_assert_int_eq(ref, SCRIPT_NO_REF);
    ck_assert_uint_eq(buf_len(&reply), 7);
    ck_assert_int_eq(memcmp(buf_start(&reply), "+PONG\r\n", 7), 0);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "QUIT", 4, "x", 1, &reply, &ref), SCRIPT_CLOSE);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "ERR", 3, "x", 1, &reply, &ref), SCRIPT_CLOSE);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "LOOP", 4, "x", 1, &reply, &ref), SCRIPT_CLOSE);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "ODD", 3, "x", 1, &reply, &ref), SCRIPT_CLOSE);
    ck_assert_uint_eq(script_errors(s), 3);
    /* A pass keeps req for on_response, which sees what on_request set. */
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "GET", 3, "GET k", 5, &reply, &ref), SCRIPT_PASS);
    ck_assert_int_ne(ref, SCRIPT_NO_REF);
    script_on_response(s, ref, "ok", "$1\r\nv", 5, 1234);
    ck_assert(script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason));
    /* Observing only (mysql): a reply is not read, req is kept. */
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "PING", 4, "x", 1, NULL, &ref), SCRIPT_PASS);
    ck_assert_int_ne(ref, SCRIPT_NO_REF);
    script_on_response(s, ref, "ok", NULL, 99, 1);
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "ERR", 3, "x", 1, NULL, &ref), SCRIPT_CLOSE);
    ck_assert_int_eq(ref, SCRIPT_NO_REF);
    /* A handle given back without a response. */
    ck_assert_int_eq(script_on_request(s, "1.2.3.4:5", "SET", 3, "SET k v", 7, &reply, &ref), SCRIPT_PASS);
    script_forget(s, ref);
    buf_free(&reply);
    script_unref(s);

    /* A request larger than SCRIPT_BYTES_MAX: bytes is cut, size is whole. */
    {
        size_t big = 4 * SCRIPT_BYTES_MAX;
        char *data = calloc(1, big);
        struct script *t = load_ok("function on_request(req)\n"
                                   "  return { reply = #req.bytes .. ' ' .. req.size }\n"
                                   "end\n");
        buf_init(&reply);
        ck_assert_ptr_nonnull(data);
        ck_assert_int_eq(script_on_request(t, "c", "SET", 3, data, big, &reply, &ref), SCRIPT_REPLY);
        char want[64];
        int n = snprintf(want, sizeof want, "%d %zu", SCRIPT_BYTES_MAX, big);
        ck_assert_uint_eq(buf_len(&reply), (size_t)n);
        ck_assert_int_eq(memcmp(buf_start(&reply), want, (size_t)n), 0);
        buf_free(&reply);
        free(data);
        script_unref(t);
    }
    /* Only on_response: req is still built. */
    s = load_ok("n = 0\nfunction on_response(req, resp) n = n + #req.bytes end\n");
    buf_init(&reply);
    ck_assert_int_eq(script_on_request(s, "c", "GET", 3, "GET k", 5, &reply, &ref), SCRIPT_PASS);
    ck_assert_int_ne(ref, SCRIPT_NO_REF);
    script_on_response(s, ref, "ok", "", 0, 1);
    buf_free(&reply);
    script_unref(s);
    /* No request hooks: nothing is built. */
    s = load_ok("x = 1\n");
    buf_init(&reply);
    ck_assert_int_eq(script_on_request(s, "c", "GET", 3, "GET k", 5, &reply, &ref), SCRIPT_PASS);
    ck_assert_int_eq(ref, SCRIPT_NO_REF);
    buf_free(&reply);
    script_unref(s);
}
END_TEST

START_TEST(events_and_log)
{
    char log_path[] = "/tmp/pmx_script_log_XXXXXX";
    int fd = mkstemp(log_path);

    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(log_open(log_path), PMX_OK);
    log_set_level(LOG_INFO);
    struct script *s = load_ok(
        "function on_event(name, info)\n"
        "  proximux.log(1, name .. ' ' .. info.service .. ' ' .. tostring(info.target) .. ' ' .. tostring(info.reason))\n"
        "  proximux.log(3, 'debug line')\n"
        "end\n"
        "function on_connect(c) proximux.log(7, 'x') end\n");
    char reason[64];

    script_event(s, "target_down", "svc", "r1", "connection refused");
    script_event(s, "target_up", "svc", "r1", NULL);
    ck_assert(!script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason));
    script_unref(s);
    /* Errors past SCRIPT_ERRORS_PER_SECOND in one second are counted, not logged. */
    s = load_ok("function on_connect(c) error('every time') end\n");
    for (int i = 0; i < 50; i++)
        ck_assert(!script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason));
    ck_assert_uint_eq(script_errors(s), 50);
    script_unref(s);
    ck_assert_int_eq(log_open(NULL), PMX_OK);
    log_set_level(LOG_ERROR);

    FILE *f = fopen(log_path, "r");
    char line[1024];
    int down = 0, up = 0, debug = 0, level = 0, every = 0;
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f) != NULL) {
        down += strstr(line, "service svc: script: target_down svc r1 connection refused") != NULL;
        up += strstr(line, "service svc: script: target_up svc r1 nil") != NULL;
        debug += strstr(line, "debug line") != NULL;
        level += strstr(line, "level must be 1, 2 or 3") != NULL;
        every += strstr(line, "every time") != NULL;
    }
    fclose(f);
    unlink(log_path);
    ck_assert_int_eq(down, 1);
    ck_assert_int_eq(up, 1);
    ck_assert_int_eq(debug, 0);
    ck_assert_int_eq(level, 1);
    ck_assert_int_eq(every, SCRIPT_ERRORS_PER_SECOND);
}
END_TEST

START_TEST(references)
{
    struct script *s = load_ok("function on_connect(c) return false, 'no' end\n");
    char reason[64];

    ck_assert_ptr_eq(script_ref(s), s);
    script_unref(s);
    /* Still alive: one reference left. */
    ck_assert(!script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason));
    ck_assert_str_eq(reason, "no");
    script_unref(s);
    script_unref(NULL);
    ck_assert_ptr_null(script_ref(NULL));
}
END_TEST

/* config/examples/socks4.lua, as the README shows it (unit tests run from
 * the top of the tree). */
START_TEST(socks4_example)
{
    char err[512];
    struct script *s = script_load("config/examples/socks4.lua", "socks4", err, sizeof err);
    struct route_decision d;
    static const char req[] = "\x04\x01\x1f\x90\x7f\x00\x00\x01user\0GET / HTTP/1.0\r\n\r\n";
    size_t len = sizeof req - 1;

    ck_assert_msg(s != NULL, "%s", err);
    /* Every prefix that stops before the user id's NUL waits. */
    for (size_t n = 0; n < 13; n++) {
        ck_assert_int_eq(route_of(s, req, n, &d), ROUTE_WAIT);
        route_decision_free(&d);
    }
    ck_assert_int_eq(route_of(s, req, len, &d), ROUTE_TARGET);
    ck_assert_str_eq(d.target, "127.0.0.1:8080");
    ck_assert_uint_eq(buf_len(&d.reply), 8);
    ck_assert_int_eq(memcmp(buf_start(&d.reply), "\x00\x5a\x1f\x90\x7f\x00\x00\x01", 8), 0);
    ck_assert_int_eq(d.has_data, 1);
    ck_assert_uint_eq(buf_len(&d.data), len - 13);
    ck_assert_int_eq(memcmp(buf_start(&d.data), "GET / HTTP/1.0\r\n\r\n", len - 13), 0);
    route_decision_free(&d);
    /* The request alone: nothing to pass on. */
    ck_assert_int_eq(route_of(s, req, 13, &d), ROUTE_TARGET);
    ck_assert_uint_eq(buf_len(&d.data), 0);
    route_decision_free(&d);
    /* BIND (2) and SOCKS4a are rejected with 0x5b. */
    ck_assert_int_eq(route_of(s, "\x04\x02\x00\x50\x7f\x00\x00\x01\0", 9, &d), ROUTE_CLOSE);
    ck_assert_uint_eq(buf_len(&d.data), 8);
    ck_assert_int_eq(memcmp(buf_start(&d.data), "\x00\x5b\x00\x50\x7f\x00\x00\x01", 8), 0);
    route_decision_free(&d);
    ck_assert_int_eq(route_of(s, "\x04\x01\x00\x50\x00\x00\x00\x07\0host\0", 14, &d), ROUTE_CLOSE);
    route_decision_free(&d);
    ck_assert_uint_eq(script_errors(s), 0);
    script_unref(s);
}
END_TEST

/* config/examples/blocklist.lua, as the README shows it. */
START_TEST(blocklist_example)
{
    char err[512], reason[64];
    struct script *s = script_load("config/examples/blocklist.lua", "blocklist", err, sizeof err);

    ck_assert_msg(s != NULL, "%s", err);
    ck_assert(!script_on_connect(s, "127.0.0.2", 1, reason, sizeof reason));
    ck_assert_str_eq(reason, "blocked");
    ck_assert(!script_on_connect(s, "2001:db8::10", 1, reason, sizeof reason));
    ck_assert(script_on_connect(s, "127.0.0.3", 1, reason, sizeof reason));
    script_unref(s);
}
END_TEST

Suite *script_suite(void)
{
    Suite *s = suite_create("script");
    TCase *tc = tcase_create("script");

    tcase_add_test(tc, load_errors);
    tcase_add_test(tc, sandbox);
    tcase_add_test(tc, memory_limit);
    tcase_add_test(tc, budget);
    tcase_add_test(tc, on_connect_refusal);
    tcase_add_test(tc, route_forms);
    tcase_add_test(tc, on_request_results);
    tcase_add_test(tc, events_and_log);
    tcase_add_test(tc, references);
    tcase_add_test(tc, socks4_example);
    tcase_add_test(tc, blocklist_example);
    suite_add_tcase(s, tc);
    return s;
}
