/* libFuzzer harness for the route rules and the first-bytes peek parsers
 * (src/route/route.c, src/proto/peek.c). The input is a client's first
 * bytes, decided on by a table with every kind of route (regexes with
 * captures in target and data, an anchored literal start, prefixes with
 * NUL bytes, sni and http_host wildcards, close) and peeked as TLS and
 * HTTP, at every prefix length (at 64 of them for inputs over 256 bytes):
 * a peek result other than NEED_MORE never changes with more bytes, a name
 * is lowercase host characters that fit; NO_MATCH ("can never match")
 * never turns into anything else with more bytes; a decision's target is
 * non-empty and fits, a close decision carries its route's bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "peek.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_route: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

static struct route_table *table;

/* A string literal and its length (NUL bytes included). */
#define LIT(s) s, sizeof(s) - 1

/* Fills route r: kind, pattern (len bytes), target or (NULL) close bytes,
 * data (NULL: none). */
static void add(struct route_config *r, enum route_kind kind, const char *pattern, size_t len,
                const char *target, const char *data, size_t data_len)
{
    r->kind = kind;
    memcpy(r->pattern, pattern, len);
    r->pattern_len = len;
    r->connect_timeout = -1;
    r->inactivity_timeout = -1;
    if (target != NULL) {
        snprintf(r->target, sizeof r->target, "%s", target);
    } else {
        r->has_close = true;
        memcpy(r->close, "+PONG\r\n", 7);
        r->close_len = 7;
    }
    if (data != NULL) {
        memcpy(r->data, data, data_len);
        r->data_len = data_len;
        r->has_data = true;
    }
}

static void table_make(void)
{
    static struct route_config r[8];
    char err[256];

    add(&r[0], ROUTE_MATCH, LIT("^....git-upload-pack /([A-Za-z0-9._-]+)/"), "$1.git.internal:9418", NULL, 0);
    add(&r[1], ROUTE_MATCH, LIT("^GET /(a|b)([^ ]*) "), "web", LIT("$2-$1-$$\0"));
    add(&r[2], ROUTE_MATCH, LIT("K([^;]*);(x)?"), "$1:$2", NULL, 0);
    add(&r[3], ROUTE_PREFIX, LIT("\0\x01PING"), NULL, NULL, 0);
    add(&r[4], ROUTE_SNI, LIT("*.example.com"), "tls", NULL, 0);
    add(&r[5], ROUTE_HTTP_HOST, LIT("*.example.com"), "http", LIT(""));
    add(&r[6], ROUTE_SNI, LIT("a.b"), "tls2", NULL, 0);
    add(&r[7], ROUTE_HTTP_HOST, LIT("[::1]"), "v6", NULL, 0);
    table = route_table_create(r, 8, err, sizeof err);
    CHECK(table != NULL, "%s", err);
}

static void check_name(const char *name)
{
    size_t len = strlen(name);
    CHECK(len > 0 && len < PEEK_NAME_MAX, "name of %zu bytes", len);
    for (size_t i = 0; i < len; i++)
        CHECK((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              strchr("-_.[]:", name[i]) != NULL, "byte %02x in a name", (unsigned char)name[i]);
}

/* One peek parser at every chosen prefix: results settle. */
static void peek_settles(enum peek_result (*peek)(const char *, size_t, char *, size_t), const char *d,
                         size_t size, size_t step)
{
    enum peek_result first = PEEK_NEED_MORE;
    char name[PEEK_NAME_MAX], first_name[PEEK_NAME_MAX] = "";

    for (size_t k = 0; k <= size; k = k == size ? size + 1 : PMX_MIN(k + step, size)) {
        enum peek_result pr = peek(d, k, name, sizeof name);
        if (pr == PEEK_FOUND)
            check_name(name);
        if (first == PEEK_NEED_MORE) {
            first = pr;
            memcpy(first_name, name, sizeof name);
            continue;
        }
        CHECK(pr == first, "result %d after %d at %zu", pr, first, k);
        if (pr == PEEK_FOUND)
            CHECK(strcmp(name, first_name) == 0, "name %s after %s", name, first_name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    size_t step = size <= 256 ? 1 : size / 64;
    bool never = false;

    if (table == NULL)
        table_make();
    peek_settles(peek_tls_sni, d, size, step);
    peek_settles(peek_http_host, d, size, step);
    for (size_t k = 0; k <= size; k = k == size ? size + 1 : PMX_MIN(k + step, size)) {
        struct route_decision out;
        route_decision_init(&out);
        enum route_result rr = route_table_decide(table, d, k, &out);
        CHECK(rr != ROUTE_RESULT_ERROR, "out of memory");
        CHECK(!never || rr == ROUTE_RESULT_NO_MATCH, "%d at %zu after NO_MATCH", rr, k);
        never = rr == ROUTE_RESULT_NO_MATCH;
        if (rr == ROUTE_RESULT_DECIDED) {
            CHECK(out.action == ROUTE_TARGET || out.action == ROUTE_CLOSE, "action %d", out.action);
            if (out.action == ROUTE_CLOSE) {
                CHECK(buf_len(&out.data) == 7 && memcmp(buf_start(&out.data), "+PONG\r\n", 7) == 0,
                      "close bytes");
            } else {
                size_t tl = strnlen(out.target, sizeof out.target);
                CHECK(tl > 0 && tl < sizeof out.target, "target of %zu bytes", tl);
            }
        } else {
            CHECK(out.action == ROUTE_WAIT && buf_len(&out.data) == 0 && buf_len(&out.reply) == 0,
                  "a result %d filled the decision", rr);
        }
        route_decision_free(&out);
    }
    return 0;
}
