/* Unit tests for the request log: JSON and text lines, escaping of binary,
 * UTF-8 and control bytes, max_text truncation, sampling, and dropping
 * (counted) when the sink does not drain. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "config_check.h"
#include "request_log.h"
#include "suites.h"

static char rl_dir[64];
static char path[128];

static void setup(void)
{
    snprintf(rl_dir, sizeof(rl_dir), "/tmp/pmx-rlog-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(rl_dir));
    snprintf(path, sizeof(path), "%s/requests.log", rl_dir);
}

static void teardown(void)
{
    unlink(path);
    rmdir(rl_dir);
}

static struct request_log_config conf(enum request_log_format f, double sample, long max_text)
{
    struct request_log_config c;

    memset(&c, 0, sizeof(c));
    snprintf(c.file, sizeof(c.file), "%s", path);
    c.format = f;
    c.sample = sample;
    c.max_text = max_text;
    return c;
}

static struct request_log_record record(const char *command, size_t len)
{
    struct request_log_record r = {
        .service = "cache", .client = "127.0.0.1:5000", .target = "redis-1",
        .command = command, .command_len = len,
        .bytes_in = 31, .bytes_out = 5, .us = 120, .status = REQUEST_LOG_OK,
        .error_code = 0, .statement_id = -1,
    };
    return r;
}

/* The file's content, NUL-terminated; the caller frees it. */
static char *slurp(void)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    char *text = calloc(1, 1 << 20);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* Writes one record and returns the file's content. */
static char *one_line(const struct request_log_config *c, const struct request_log_record *r)
{
    char why[256];
    struct request_log *log = request_log_open(c, why, sizeof(why));

    ck_assert_msg(log != NULL, "%s", why);
    request_log_write(log, r);
    request_log_close(log);
    return slurp();
}

START_TEST(json_fields)
{
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log_record r = record("GET user:1", 10);
    char *text = one_line(&c, &r);

    /* "ts":"YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
    ck_assert_int_eq(strncmp(text, "{\"ts\":\"", 7), 0);
    ck_assert_int_eq(text[7 + 10], 'T');
    ck_assert_int_eq(text[7 + 19], '.');
    ck_assert_int_eq(text[7 + 26], 'Z');
    ck_assert_str_eq(text + 7 + 27,
                     "\",\"service\":\"cache\",\"client\":\"127.0.0.1:5000\",\"target\":\"redis-1\","
                     "\"command\":\"GET user:1\",\"bytes_in\":31,\"bytes_out\":5,\"us\":120,\"status\":\"ok\"}\n");
    free(text);
}
END_TEST

START_TEST(json_mysql_fields)
{
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log_record r = record("SELECT 1", 8);
    r.status = REQUEST_LOG_ERROR;
    r.error_code = 1064;
    r.statement_id = 7;
    char *text = one_line(&c, &r);

    ck_assert_ptr_nonnull(strstr(text, "\"status\":\"error\",\"error_code\":1064,\"statement_id\":7}\n"));
    free(text);
}
END_TEST

START_TEST(json_escaping)
{
    /* A quote, a backslash, CR LF, a tab, NUL, DEL, valid UTF-8 (é, €, 😀),
     * a lone continuation byte, a truncated sequence, an overlong form. */
    static const char cmd[] = "a\"b\\c\r\n\t\0\x7f" "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" "\x80" "\xe2\x82" "\xc0\xaf";
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log_record r = record(cmd, sizeof(cmd) - 1);
    char *text = one_line(&c, &r);

    ck_assert_ptr_nonnull(strstr(text, "\"command\":\"a\\\"b\\\\c\\r\\n\\t\\u0000\\u007f"
                                       "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                                       "\\u0080\\u00e2\\u0082\\u00c0\\u00af\","));
    free(text);
}
END_TEST

START_TEST(json_escaping_names)
{
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log_record r = record("PING", 4);
    r.target = "we\"ird\n";
    r.client = "";
    char *text = one_line(&c, &r);

    ck_assert_ptr_nonnull(strstr(text, "\"client\":\"\",\"target\":\"we\\\"ird\\n\""));
    free(text);
}
END_TEST

START_TEST(truncation)
{
    char cmd[100];
    memset(cmd, 'x', sizeof(cmd));
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 16);
    struct request_log_record r = record(cmd, sizeof(cmd));
    char *text = one_line(&c, &r);

    ck_assert_ptr_nonnull(strstr(text, "\"command\":\"xxxxxxxxxxxxxxxx...[100 bytes]\","));
    free(text);
}
END_TEST

START_TEST(truncation_exact_and_utf8)
{
    /* 16 bytes exactly: kept whole. */
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 16);
    struct request_log_record r = record("0123456789abcdef", 16);
    char *text = one_line(&c, &r);
    ck_assert_ptr_nonnull(strstr(text, "\"command\":\"0123456789abcdef\","));
    free(text);
    unlink(path);

    /* The cut falls inside "€" (bytes 15-17): backed up before it. */
    static const char cmd[] = "012345678901234\xe2\x82\xac" "tail";
    r = record(cmd, sizeof(cmd) - 1);
    text = one_line(&c, &r);
    ck_assert_ptr_nonnull(strstr(text, "\"command\":\"012345678901234...[22 bytes]\","));
    free(text);
}
END_TEST

START_TEST(text_format)
{
    static const char cmd[] = "SET k \"v\"\r\n\x01";
    struct request_log_config c = conf(REQUEST_LOG_TEXT, 1.0, 1024);
    struct request_log_record r = record(cmd, sizeof(cmd) - 1);
    r.target = "";
    r.status = REQUEST_LOG_CLIENT_GONE;
    char *text = one_line(&c, &r);

    ck_assert_int_eq(text[10], 'T');
    ck_assert_int_eq(text[26], 'Z');
    ck_assert_str_eq(text + 27, " cache 127.0.0.1:5000 - client_gone 120us in=31 out=5 \"SET k \\\"v\\\"\\r\\n\\x01\"\n");
    free(text);
}
END_TEST

START_TEST(sampling)
{
    char why[256];
    struct request_log_config c = conf(REQUEST_LOG_JSON, 0.0, 1024);
    struct request_log *log = request_log_open(&c, why, sizeof(why));
    ck_assert_ptr_nonnull(log);
    for (int i = 0; i < 1000; i++)
        ck_assert(!request_log_sampled(log));
    request_log_close(log);

    c.sample = 1.0;
    log = request_log_open(&c, why, sizeof(why));
    ck_assert_ptr_nonnull(log);
    for (int i = 0; i < 1000; i++)
        ck_assert(request_log_sampled(log));
    request_log_close(log);

    c.sample = 0.5;
    log = request_log_open(&c, why, sizeof(why));
    ck_assert_ptr_nonnull(log);
    int n = 0;
    for (int i = 0; i < 10000; i++)
        n += request_log_sampled(log);
    request_log_close(log);
    ck_assert_int_gt(n, 4500);
    ck_assert_int_lt(n, 5500);
    ck_assert(!request_log_sampled(NULL));
}
END_TEST

START_TEST(many_lines_whole)
{
    char why[256];
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log *log = request_log_open(&c, why, sizeof(why));
    ck_assert_ptr_nonnull(log);
    struct request_log_record r = record("GET key", 7);
    for (int i = 0; i < 5000; i++)
        request_log_write(log, &r);
    uint64_t dropped = request_log_dropped(log);
    request_log_close(log);

    char *text = slurp();
    uint64_t lines = 0;
    for (char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    ck_assert_uint_eq(lines + dropped, 5000);
    free(text);
}
END_TEST

/* A FIFO whose reader never reads: the writer blocks once the pipe is
 * full, the buffers fill, and the rest is dropped and counted; the loop's
 * side never waits. */
START_TEST(drops_when_sink_blocked)
{
    char why[256];
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    int rfd = open(path, O_RDONLY | O_NONBLOCK);
    ck_assert_int_ge(rfd, 0);
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    struct request_log *log = request_log_open(&c, why, sizeof(why));
    ck_assert_msg(log != NULL, "%s", why);

    char cmd[200];
    memset(cmd, 'k', sizeof(cmd));
    struct request_log_record r = record(cmd, sizeof(cmd));
    /* About 330 bytes a line: 20000 lines are 6.6 MB, far more than the
     * pipe (64 KiB) and the buffers (1 MiB) hold. */
    for (int i = 0; i < 20000; i++)
        request_log_write(log, &r);
    uint64_t dropped = request_log_dropped(log);
    ck_assert_uint_gt(dropped, 10000);
    ck_assert_uint_lt(dropped, 20000);
    request_log_close(log);   /* the writer, stuck in write(), is abandoned */
    close(rfd);
}
END_TEST

START_TEST(open_errors)
{
    char why[256];
    struct request_log_config c = conf(REQUEST_LOG_JSON, 1.0, 1024);
    snprintf(c.file, sizeof(c.file), "%s/no/such/dir/x.log", rl_dir);
    ck_assert_ptr_null(request_log_open(&c, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "request_log.file"));
    ck_assert_ptr_nonnull(strstr(why, "No such file"));

    /* A FIFO without a reader: an error, not a hang. */
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    snprintf(c.file, sizeof(c.file), "%s", path);
    ck_assert_ptr_null(request_log_open(&c, why, sizeof(why)));
    ck_assert_ptr_nonnull(strstr(why, "No such device"));
    request_log_close(NULL);
    struct request_log_record r = record("x", 1);
    request_log_write(NULL, &r);
}
END_TEST

/* ---- the codecs' describe() and error_reply() ---- */

/* describe() of data with room for cap bytes: the text written (NUL
 * terminated here) and the whole length. */
static size_t describe(const struct codec_ops *c, const char *data, size_t cap, char *out)
{
    size_t n = c->describe(data, strlen(data), out, cap);
    out[PMX_MIN(n, cap)] = '\0';
    return n;
}

START_TEST(describe_resp)
{
    char out[64];

    ck_assert_uint_eq(describe(&codec_resp, "*3\r\n$3\r\nSET\r\n$6\r\nuser:1\r\n$5\r\nhello\r\n", 63, out), 10);
    ck_assert_str_eq(out, "SET user:1");
    ck_assert_uint_eq(describe(&codec_resp, "*1\r\n$4\r\nPING\r\n", 63, out), 4);
    ck_assert_str_eq(out, "PING");
    /* Inline commands: the first two words. */
    ck_assert_uint_eq(describe(&codec_resp, "GET  user:1 extra\r\n", 63, out), 10);
    ck_assert_str_eq(out, "GET user:1");
    /* Cut at cap; the whole length is returned. */
    ck_assert_uint_eq(describe(&codec_resp, "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n", 6, out), 14);
    ck_assert_str_eq(out, "GET 01");
    ck_assert_uint_eq(describe(&codec_resp, "*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n", 2, out), 14);
    ck_assert_str_eq(out, "GE");
    ck_assert_uint_eq(codec_resp.describe("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 20, NULL, 0), 5);
    /* Binary keys are kept as they are (the log escapes them). */
    char bin[] = "*2\r\n$3\r\nGET\r\n$3\r\na\0b\r\n";
    char raw[16];
    ck_assert_uint_eq(codec_resp.describe(bin, sizeof(bin) - 1, raw, sizeof(raw)), 7);
    ck_assert_int_eq(memcmp(raw, "GET a\0b", 7), 0);
    /* Malformed or short: what can be read, never past the end. */
    ck_assert_uint_eq(describe(&codec_resp, "*2\r\n$3\r\nGET\r\n$99\r\nab\r\n", 63, out), 3);
    ck_assert_str_eq(out, "GET");
    ck_assert_uint_eq(describe(&codec_resp, "*x\r\n", 63, out), 0);
    ck_assert_uint_eq(describe(&codec_resp, "*", 63, out), 0);
    ck_assert_uint_eq(describe(&codec_resp, "", 63, out), 0);

    ck_assert(codec_resp.error_reply("-ERR no\r\n", 9));
    ck_assert(codec_resp.error_reply("!5\r\nerror\r\n", 10));
    ck_assert(!codec_resp.error_reply("+OK\r\n", 5));
    ck_assert(!codec_resp.error_reply("$-1\r\n", 5));
    ck_assert(!codec_resp.error_reply("", 0));
}
END_TEST

START_TEST(describe_memcache)
{
    char out[64];

    ck_assert_uint_eq(describe(&codec_memcache, "set user:1 0 0 5\r\nhello\r\n", 63, out), 10);
    ck_assert_str_eq(out, "set user:1");
    ck_assert_uint_eq(describe(&codec_memcache, "get a b c\r\n", 63, out), 5);
    ck_assert_str_eq(out, "get a");
    ck_assert_uint_eq(describe(&codec_memcache, "version\r\n", 63, out), 7);
    ck_assert_str_eq(out, "version");
    ck_assert_uint_eq(describe(&codec_memcache, "mg key v\r\n", 63, out), 6);
    ck_assert_str_eq(out, "mg key");

    ck_assert(codec_memcache.error_reply("ERROR\r\n", 7));
    ck_assert(codec_memcache.error_reply("CLIENT_ERROR bad\r\n", 18));
    ck_assert(codec_memcache.error_reply("SERVER_ERROR out of memory\r\n", 28));
    ck_assert(!codec_memcache.error_reply("END\r\n", 5));
    ck_assert(!codec_memcache.error_reply("STORED\r\n", 8));
}
END_TEST

START_TEST(describe_http)
{
    char out[64];

    ck_assert_uint_eq(describe(&codec_http, "GET /index.html?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", 63, out), 19);
    ck_assert_str_eq(out, "GET /index.html?q=1");
    ck_assert_uint_eq(describe(&codec_http, "POST /api HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", 63, out), 9);
    ck_assert_str_eq(out, "POST /api");

    ck_assert(codec_http.error_reply("HTTP/1.1 502 Bad Gateway\r\n\r\n", 28));
    ck_assert(codec_http.error_reply("HTTP/1.0 500 x\r\n\r\n", 18));
    ck_assert(!codec_http.error_reply("HTTP/1.1 404 Not Found\r\n\r\n", 26));
    ck_assert(!codec_http.error_reply("HTTP/1.1 200 OK\r\n\r\n", 19));
    ck_assert(!codec_http.error_reply("HTTP/1.1", 8));
}
END_TEST

START_TEST(describe_line_raw)
{
    char out[64];

    ck_assert_uint_eq(describe(&codec_line, "hello world, all of it\r\n", 63, out), 22);
    ck_assert_str_eq(out, "hello world, all of it");
    ck_assert_uint_eq(describe(&codec_line, "no newline", 63, out), 10);
    ck_assert_uint_eq(describe(&codec_line, "abcdef\n", 3, out), 6);
    ck_assert_str_eq(out, "abc");
    ck_assert_ptr_null(codec_line.error_reply);

    ck_assert_uint_eq(describe(&codec_raw, "\x01\x02 bytes\r\n", 63, out), 10);
    ck_assert_str_eq(out, "\x01\x02 bytes\r\n");
    ck_assert_uint_eq(describe(&codec_raw, "0123456789", 4, out), 10);
    ck_assert_str_eq(out, "0123");
    ck_assert_ptr_null(codec_raw.error_reply);
}
END_TEST

/* ---- the request_log: settings ---- */

#define RL_BASE "local: {port: 6380}\npool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 6379}]\n"

START_TEST(config_settings)
{
    ck_assert_int_eq(load(RL_BASE, NULL), PMX_OK);
    ck_assert_str_eq(cfg->services[0].request_log.file, "");
    ck_assert_int_eq(cfg->services[0].request_log.format, REQUEST_LOG_JSON);
    ck_assert(cfg->services[0].request_log.sample == 1.0);
    ck_assert_int_eq(cfg->services[0].request_log.max_text, 1024);

    ck_assert_int_eq(load(RL_BASE "request_log: {file: /tmp/r.log, format: text, sample: 0.25, max_text: 16}\n",
                          NULL), PMX_OK);
    ck_assert_str_eq(cfg->services[0].request_log.file, "/tmp/r.log");
    ck_assert_int_eq(cfg->services[0].request_log.format, REQUEST_LOG_TEXT);
    ck_assert(cfg->services[0].request_log.sample == 0.25);
    ck_assert_int_eq(cfg->services[0].request_log.max_text, 16);
    char *d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d, "\nrequest_log:\n  file: \"/tmp/r.log\"\n  format: text\n  sample: 0.25\n"
                                    "  max_text: 16\n"));
    free(d);

    ck_assert_int_eq(load(RL_BASE, ENV("REQUEST_LOG_FILE=-", "REQUEST_LOG_SAMPLE=0")), PMX_OK);
    ck_assert_str_eq(cfg->services[0].request_log.file, "-");
    ck_assert(cfg->services[0].request_log.sample == 0.0);
}
END_TEST

START_TEST(config_errors)
{
    check_error(load(RL_BASE "request_log: {format: xml}\n", NULL),
                "request_log.format (@FILE@ line 4): \"xml\" is not a log format (json, text)", 0);
    check_error(load(RL_BASE "request_log: {sample: 1.5}\n", NULL),
                "request_log.sample (@FILE@ line 4): \"1.5\" is out of range (0.0-1.0)", 0);
    check_error(load(RL_BASE "request_log: {sample: nan}\n", NULL),
                "request_log.sample (@FILE@ line 4): \"nan\" is not a fraction (0.0-1.0)", 0);
    check_error(load(RL_BASE "request_log: {max_text: 8}\n", NULL),
                "request_log.max_text (@FILE@ line 4): \"8\" is out of range (16-1048576 bytes)", 0);
}
END_TEST

Suite *request_log_suite(void)
{
    Suite *s = suite_create("request_log");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, json_fields);
    tcase_add_test(tc, json_mysql_fields);
    tcase_add_test(tc, json_escaping);
    tcase_add_test(tc, json_escaping_names);
    tcase_add_test(tc, truncation);
    tcase_add_test(tc, truncation_exact_and_utf8);
    tcase_add_test(tc, text_format);
    tcase_add_test(tc, sampling);
    tcase_add_test(tc, many_lines_whole);
    tcase_add_test(tc, drops_when_sink_blocked);
    tcase_add_test(tc, open_errors);
    suite_add_tcase(s, tc);

    TCase *dc = tcase_create("describe");
    tcase_add_test(dc, describe_resp);
    tcase_add_test(dc, describe_memcache);
    tcase_add_test(dc, describe_http);
    tcase_add_test(dc, describe_line_raw);
    suite_add_tcase(s, dc);

    TCase *cf = tcase_create("config");
    tcase_add_unchecked_fixture(cf, dir_setup, dir_teardown);
    tcase_add_checked_fixture(cf, cfg_setup, cfg_teardown);
    tcase_add_test(cf, config_settings);
    tcase_add_test(cf, config_errors);
    suite_add_tcase(s, cf);
    return s;
}
