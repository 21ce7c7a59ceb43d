/* Unit tests for the MySQL packet follower: sample sessions fed whole,
 * byte by byte and split at every byte of every step, 16 MiB multi-packet
 * payloads, multi-result sets, ERR codes, prepared statements, LOCAL
 * INFILE, DEPRECATE_EOF on and off, TLS and compression (not followed),
 * garbage. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql.h"
#include "suites.h"

/* ---- building sessions ---- */

struct step {
    enum mysql_direction dir;
    char *data;
    size_t len;
};

struct script {
    struct step steps[64];
    int n;
};

static void script_free(struct script *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->steps[i].data);
    s->n = 0;
}

/* Appends a packet (split into 0xFFFFFF pieces when long) to a new step. */
static void packet(struct script *s, enum mysql_direction dir, unsigned seq, const void *payload, size_t len)
{
    size_t pieces = len / 0xFFFFFF + 1;
    struct step *st = &s->steps[s->n++];
    ck_assert_int_le(s->n, 64);
    st->dir = dir;
    st->len = len + 4 * pieces;
    st->data = malloc(st->len);
    ck_assert_ptr_nonnull(st->data);
    size_t at = 0, off = 0;
    for (size_t i = 0; i < pieces; i++) {
        size_t n = len - off > 0xFFFFFF ? 0xFFFFFF : len - off;
        st->data[at++] = (char)(n & 0xFF);
        st->data[at++] = (char)(n >> 8 & 0xFF);
        st->data[at++] = (char)(n >> 16 & 0xFF);
        st->data[at++] = (char)((seq + i) & 0xFF);
        if (n > 0)
            memcpy(st->data + at, (const char *)payload + off, n);
        at += n;
        off += n;
    }
}

static void server(struct script *s, unsigned seq, const void *p, size_t n) { packet(s, MYSQL_FROM_SERVER, seq, p, n); }
static void client(struct script *s, unsigned seq, const void *p, size_t n) { packet(s, MYSQL_FROM_CLIENT, seq, p, n); }

#define CAPS_BASE (MYSQL_CLIENT_PROTOCOL_41 | MYSQL_CLIENT_MULTI_STATEMENTS | MYSQL_CLIENT_MULTI_RESULTS | 0x8000u)

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Greeting, handshake response with client caps, an auth switch, OK. */
static void handshake(struct script *s, uint32_t client_caps)
{
    uint8_t g[80] = { 10 };
    size_t n = 1;
    memcpy(g + n, "10.11.0-MariaDB", 16);
    n += 16;
    n += 4 + 8 + 1;
    uint32_t sc = 0xFFFFFFFFu & ~MYSQL_CLIENT_QUERY_ATTRIBUTES;
    g[n++] = (uint8_t)sc;
    g[n++] = (uint8_t)(sc >> 8);
    g[n++] = 8;
    g[n++] = 2;
    g[n++] = 0;
    g[n++] = (uint8_t)(sc >> 16);
    g[n++] = (uint8_t)(sc >> 24);
    n += 21;
    server(s, 0, g, n);
    uint8_t r[40] = { 0 };
    put32(r, client_caps);
    memcpy(r + 32, "pmx", 4);
    client(s, 1, r, 36);
    if (client_caps & MYSQL_CLIENT_SSL)
        return;
    server(s, 2, "\xfe" "mysql_native_password\0abcdefghijklmnopqrst", 43);
    client(s, 3, "01234567890123456789", 20);
    server(s, 4, "\x00\x00\x00\x02\x00\x00\x00", 7);
}

static void query(struct script *s, uint8_t com, const char *sql)
{
    size_t n = strlen(sql);
    char *p = malloc(n + 1);
    p[0] = (char)com;
    memcpy(p + 1, sql, n);
    client(s, 0, p, n + 1);
    free(p);
}

static void eof(struct script *s, unsigned seq, uint16_t status)
{
    uint8_t e[5] = { 0xFE, 0, 0, (uint8_t)status, (uint8_t)(status >> 8) };
    server(s, seq, e, 5);
}

static void ok(struct script *s, unsigned seq, uint16_t status, bool fe)
{
    uint8_t o[7] = { fe ? 0xFE : 0x00, 0, 0, (uint8_t)status, (uint8_t)(status >> 8), 0, 0 };
    server(s, seq, o, 7);
}

static void err(struct script *s, unsigned seq, uint16_t code)
{
    char e[64];
    int n = snprintf(e, sizeof e, "\xff%c%c#42S02Table 'x.t' doesn't exist", code & 0xFF, code >> 8);
    server(s, seq, e, (size_t)n);
}

/* A result set of ncols columns and nrows rows, starting at seq; returns
 * the next seq. status goes in its last EOF/OK. */
static unsigned result_set(struct script *s, unsigned seq, int ncols, int nrows, bool deprecate, uint16_t status)
{
    uint8_t c = (uint8_t)ncols;
    server(s, seq++, &c, 1);
    for (int i = 0; i < ncols; i++)
        server(s, seq++, "\x03" "def\x00\x00\x00\x01" "a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00", 23);
    if (!deprecate)
        eof(s, seq++, 0x0002);
    for (int i = 0; i < nrows; i++)
        server(s, seq++, "\x01" "7", 2);
    if (deprecate)
        ok(s, seq++, (uint16_t)(0x0002 | status), true);
    else
        eof(s, seq++, (uint16_t)(0x0002 | status));
    return seq;
}

/* ---- recording events ---- */

struct rec {
    enum mysql_event_type type;
    uint8_t command;
    char text[256];
    size_t text_len;
    bool truncated;
    int64_t statement_id;
    enum mysql_outcome outcome;
    unsigned error_code;
    uint64_t rows;
    unsigned results;
    uint64_t bytes_in, bytes_out;
    uint64_t text_total;
    uint64_t stamp;
    char reason[64];
};

struct recorder {
    struct rec ev[128];
    int n;
    uint64_t next_stamp;
};

static void record(void *ctx, const struct mysql_event *e)
{
    struct recorder *r = ctx;
    ck_assert_int_lt(r->n, 128);
    struct rec *x = &r->ev[r->n++];
    memset(x, 0, sizeof(*x));
    x->type = e->type;
    x->command = e->command;
    x->text_len = e->text_len;
    if (e->text_len > 0)
        memcpy(x->text, e->text, e->text_len < sizeof(x->text) ? e->text_len : sizeof(x->text) - 1);
    x->truncated = e->truncated;
    x->text_total = e->text_total;
    x->statement_id = e->statement_id;
    x->outcome = e->outcome;
    x->error_code = e->error_code;
    x->rows = e->rows;
    x->results = e->results;
    x->bytes_in = e->bytes_in;
    x->bytes_out = e->bytes_out;
    if (e->type == MYSQL_EVENT_QUERY) {
        ck_assert_ptr_nonnull(e->stamp_slot);
        *e->stamp_slot = ++r->next_stamp;
    }
    x->stamp = e->stamp;
    if (e->reason != NULL)
        snprintf(x->reason, sizeof x->reason, "%s", e->reason);
}

/* Feeds script s to a new follower: each step in pieces of at most chunk
 * bytes (0: whole), but with split, step split_step cut at split_at. */
static void run_split(const struct script *s, struct recorder *r, size_t max_text, size_t chunk, bool split,
                      int split_step, size_t split_at)
{
    struct mysql_follower *f = mysql_follower_new(max_text, record, r);
    ck_assert_ptr_nonnull(f);
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < s->n; i++) {
        const struct step *st = &s->steps[i];
        if (split && i == split_step) {
            mysql_follower_feed(f, st->dir, st->data, split_at);
            mysql_follower_feed(f, st->dir, st->data + split_at, st->len - split_at);
        } else if (chunk == 0) {
            mysql_follower_feed(f, st->dir, st->data, st->len);
        } else {
            for (size_t at = 0; at < st->len; at += chunk)
                mysql_follower_feed(f, st->dir, st->data + at, st->len - at < chunk ? st->len - at : chunk);
        }
    }
    mysql_follower_end(f, MYSQL_CLIENT_GONE);
    mysql_follower_free(f);
}

static void run(const struct script *s, struct recorder *r, size_t max_text, size_t chunk)
{
    run_split(s, r, max_text, chunk, false, 0, 0);
}

static void assert_same(const struct recorder *a, const struct recorder *b)
{
    ck_assert_int_eq(a->n, b->n);
    for (int i = 0; i < a->n; i++)
        ck_assert(memcmp(&a->ev[i], &b->ev[i], sizeof(a->ev[i])) == 0);
}

/* Whole, byte by byte, and every split of every step give the same events. */
static void run_all_splits(const struct script *s, struct recorder *whole)
{
    static struct recorder other;
    run(s, whole, 1024, 0);
    run(s, &other, 1024, 1);
    assert_same(whole, &other);
    for (int i = 0; i < s->n; i++) {
        for (size_t at = 0; at <= s->steps[i].len; at++) {
            run_split(s, &other, 1024, 0, true, i, at);
            assert_same(whole, &other);
        }
    }
}

static const struct rec *find(const struct recorder *r, enum mysql_event_type type, int nth)
{
    for (int i = 0; i < r->n; i++)
        if (r->ev[i].type == type && nth-- == 0)
            return &r->ev[i];
    return NULL;
}

static void check_text(const struct rec *e, const char *text)
{
    ck_assert_uint_eq(e->text_len, strlen(text));
    ck_assert_uint_eq(e->text_total, strlen(text));
    ck_assert(memcmp(e->text, text, e->text_len) == 0);
}

/* ---- tests ---- */

static void basic_session(bool deprecate)
{
    static struct recorder r;
    struct script s = { .n = 0 };
    handshake(&s, CAPS_BASE | (deprecate ? MYSQL_CLIENT_DEPRECATE_EOF : 0));
    query(&s, MYSQL_COM_QUERY, "SELECT a FROM t");
    result_set(&s, 1, 2, 3, deprecate, 0);
    query(&s, MYSQL_COM_QUERY, "SELECT * FROM missing");
    err(&s, 1, 1146);
    query(&s, 0x0e, "");                /* PING: followed, not reported */
    ok(&s, 1, 2, false);
    query(&s, MYSQL_COM_QUERY, "INSERT INTO t VALUES (1)");
    ok(&s, 1, 2, false);
    query(&s, MYSQL_COM_QUIT, "");
    run_all_splits(&s, &r);

    ck_assert_int_eq(r.n, 7);
    const struct rec *q = find(&r, MYSQL_EVENT_QUERY, 0);
    const struct rec *d = find(&r, MYSQL_EVENT_DONE, 0);
    check_text(q, "SELECT a FROM t");
    check_text(d, "SELECT a FROM t");
    ck_assert_int_eq(d->outcome, MYSQL_OK);
    ck_assert_uint_eq(d->rows, 3);
    ck_assert_uint_eq(d->results, 1);
    ck_assert_uint_eq(d->bytes_in, 4 + 16);
    ck_assert_uint_eq(d->stamp, 1);
    ck_assert_uint_eq(d->bytes_out, 5 + 2 * 27 + (deprecate ? 0 : 9) + 3 * 6 + (deprecate ? 11 : 9));
    d = find(&r, MYSQL_EVENT_DONE, 1);
    check_text(d, "SELECT * FROM missing");
    ck_assert_int_eq(d->outcome, MYSQL_ERROR);
    ck_assert_uint_eq(d->error_code, 1146);
    ck_assert_uint_eq(d->stamp, 2);
    d = find(&r, MYSQL_EVENT_DONE, 2);
    check_text(d, "INSERT INTO t VALUES (1)");
    ck_assert_int_eq(d->outcome, MYSQL_OK);
    ck_assert_uint_eq(d->rows, 0);
    ck_assert_int_eq(r.ev[6].type, MYSQL_EVENT_QUIT);
    script_free(&s);
}

START_TEST(test_mysql_session_eof)
{
    basic_session(false);
}
END_TEST

START_TEST(test_mysql_session_deprecate_eof)
{
    basic_session(true);
}
END_TEST

START_TEST(test_mysql_multi_result)
{
    static struct recorder r;
    for (int deprecate = 0; deprecate < 2; deprecate++) {
        struct script s = { .n = 0 };
        handshake(&s, CAPS_BASE | (deprecate ? MYSQL_CLIENT_DEPRECATE_EOF : 0));
        /* "SELECT 1; SELECT 2, 3; UPDATE": two result sets and an OK. */
        query(&s, MYSQL_COM_QUERY, "SELECT 1; SELECT 2, 3; UPDATE t SET a = 1");
        unsigned seq = result_set(&s, 1, 1, 1, deprecate, MYSQL_SERVER_MORE_RESULTS_EXISTS);
        seq = result_set(&s, seq, 2, 4, deprecate, MYSQL_SERVER_MORE_RESULTS_EXISTS);
        ok(&s, seq, 2, false);
        /* A multi-statement whose second statement fails. */
        query(&s, MYSQL_COM_QUERY, "SELECT 1; SELECT * FROM nope");
        seq = result_set(&s, 1, 1, 1, deprecate, MYSQL_SERVER_MORE_RESULTS_EXISTS);
        err(&s, seq, 1146);
        run_all_splits(&s, &r);
        ck_assert_int_eq(r.n, 4);
        const struct rec *d = find(&r, MYSQL_EVENT_DONE, 0);
        ck_assert_int_eq(d->outcome, MYSQL_OK);
        ck_assert_uint_eq(d->results, 3);
        ck_assert_uint_eq(d->rows, 5);
        d = find(&r, MYSQL_EVENT_DONE, 1);
        ck_assert_int_eq(d->outcome, MYSQL_ERROR);
        ck_assert_uint_eq(d->error_code, 1146);
        ck_assert_uint_eq(d->rows, 1);
        script_free(&s);
    }
}
END_TEST

START_TEST(test_mysql_prepared)
{
    static struct recorder r;
    for (int deprecate = 0; deprecate < 2; deprecate++) {
        struct script s = { .n = 0 };
        handshake(&s, CAPS_BASE | (deprecate ? MYSQL_CLIENT_DEPRECATE_EOF : 0));
        query(&s, MYSQL_COM_STMT_PREPARE, "SELECT a FROM t WHERE b = ?");
        uint8_t pok[12] = { 0x00, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0 };
        server(&s, 1, pok, 12);
        unsigned seq = 2;
        server(&s, seq++, "\x03" "def\x00\x00\x00\x01" "?\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00", 23);
        if (!deprecate)
            eof(&s, seq++, 2);
        server(&s, seq++, "\x03" "def\x00\x00\x00\x01" "a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00", 23);
        if (!deprecate)
            eof(&s, seq++, 2);
        uint8_t ex[14] = { MYSQL_COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0 };
        client(&s, 0, ex, 14);
        result_set(&s, 1, 1, 2, deprecate, 0);
        uint8_t cl[5] = { MYSQL_COM_STMT_CLOSE, 7, 0, 0, 0 };
        client(&s, 0, cl, 5);
        client(&s, 0, ex, 14);          /* forgotten: no text */
        err(&s, 1, 1243);
        run_all_splits(&s, &r);
        ck_assert_int_eq(r.n, 6);
        const struct rec *d = find(&r, MYSQL_EVENT_DONE, 0);
        ck_assert_uint_eq(d->command, MYSQL_COM_STMT_PREPARE);
        check_text(d, "SELECT a FROM t WHERE b = ?");
        ck_assert_int_eq(d->statement_id, 7);
        ck_assert_int_eq(d->outcome, MYSQL_OK);
        d = find(&r, MYSQL_EVENT_QUERY, 1);
        ck_assert_uint_eq(d->command, MYSQL_COM_STMT_EXECUTE);
        check_text(d, "SELECT a FROM t WHERE b = ?");
        d = find(&r, MYSQL_EVENT_DONE, 1);
        ck_assert_uint_eq(d->command, MYSQL_COM_STMT_EXECUTE);
        ck_assert_int_eq(d->statement_id, 7);
        check_text(d, "SELECT a FROM t WHERE b = ?");
        ck_assert_uint_eq(d->rows, 2);
        d = find(&r, MYSQL_EVENT_DONE, 2);
        ck_assert_int_eq(d->statement_id, 7);
        ck_assert_uint_eq(d->text_len, 0);
        ck_assert_int_eq(d->outcome, MYSQL_ERROR);
        ck_assert_uint_eq(d->error_code, 1243);
        script_free(&s);
    }
}
END_TEST

START_TEST(test_mysql_statement_table_bound)
{
    static struct recorder r;
    struct mysql_follower *f = mysql_follower_new(100, record, &r);
    struct script s = { .n = 0 };
    handshake(&s, CAPS_BASE);
    for (int i = 0; i < s.n; i++)
        mysql_follower_feed(f, s.steps[i].dir, s.steps[i].data, s.steps[i].len);
    script_free(&s);
    size_t peak = 0;
    for (uint32_t id = 1; id <= MYSQL_MAX_STATEMENTS + 10; id++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %u", id);
        query(&s, MYSQL_COM_STMT_PREPARE, sql);
        uint8_t pok[12] = { 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        put32(pok + 1, id);
        server(&s, 1, pok, 12);
        for (int i = 0; i < s.n; i++)
            mysql_follower_feed(f, s.steps[i].dir, s.steps[i].data, s.steps[i].len);
        script_free(&s);
        r.n = 0;
        if (mysql_follower_memory(f) > peak)
            peak = mysql_follower_memory(f);
    }
    ck_assert_uint_le(peak, 200000);
    /* The oldest were forgotten, the newest are known. */
    uint8_t ex[10] = { MYSQL_COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0 };
    client(&s, 0, ex, 10);
    ok(&s, 1, 2, false);
    put32(ex + 1, MYSQL_MAX_STATEMENTS + 10);
    client(&s, 0, ex, 10);
    ok(&s, 1, 2, false);
    for (int i = 0; i < s.n; i++)
        mysql_follower_feed(f, s.steps[i].dir, s.steps[i].data, s.steps[i].len);
    script_free(&s);
    ck_assert_int_eq(r.n, 4);
    ck_assert_uint_eq(r.ev[1].text_len, 0);
    check_text(&r.ev[3], "SELECT 74");
    mysql_follower_free(f);
}
END_TEST

START_TEST(test_mysql_local_infile)
{
    static struct recorder r;
    struct script s = { .n = 0 };
    handshake(&s, CAPS_BASE | 0x80u);
    query(&s, MYSQL_COM_QUERY, "LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t");
    server(&s, 1, "\xfb/tmp/x", 7);
    client(&s, 2, "1\n2\n3\n", 6);
    client(&s, 3, "4\n", 2);
    client(&s, 4, "", 0);
    server(&s, 5, "\xff\xff\xff\x01\x01\x00\x10\x00\x00\x04load", 14);  /* MariaDB progress report */
    ok(&s, 6, 2, false);
    query(&s, MYSQL_COM_QUERY, "SELECT 1");
    result_set(&s, 1, 1, 1, false, 0);
    run_all_splits(&s, &r);
    ck_assert_int_eq(r.n, 4);
    const struct rec *d = find(&r, MYSQL_EVENT_DONE, 0);
    ck_assert_int_eq(d->outcome, MYSQL_OK);
    ck_assert_uint_eq(d->bytes_in, 4 + 1 + strlen("LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE t") + 10 + 6 + 4);
    ck_assert_uint_eq(d->bytes_out, 11 + 18 + 11);
    d = find(&r, MYSQL_EVENT_DONE, 1);
    check_text(d, "SELECT 1");
    ck_assert_uint_eq(d->rows, 1);
    script_free(&s);
}
END_TEST

/* 16 MiB payloads: a query text and a row over several packets. */
START_TEST(test_mysql_multi_packet)
{
    static struct recorder r;
    struct script s = { .n = 0 };
    handshake(&s, CAPS_BASE);
    size_t big = 0xFFFFFF + 0xFFFFFF + 1000;
    char *sql = malloc(big + 1);
    ck_assert_ptr_nonnull(sql);
    sql[0] = MYSQL_COM_QUERY;
    memcpy(sql + 1, "SELECT '", 8);
    memset(sql + 9, 'x', big - 9);
    client(&s, 0, sql, big);
    server(&s, 3, "\x01", 1);
    server(&s, 4, "\x03" "def\x00\x00\x00\x01" "a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00", 23);
    eof(&s, 5, 2);
    /* A row of exactly 0xFFFFFF bytes: an empty packet ends it. */
    sql[0] = (char)0xFD;
    packet(&s, MYSQL_FROM_SERVER, 6, sql, 0xFFFFFF);
    packet(&s, MYSQL_FROM_SERVER, 8, sql, 0xFFFFFF + 10);
    eof(&s, 10, 2);
    free(sql);
    run(&s, &r, 64, 0);
    ck_assert_int_eq(r.n, 2);
    const struct rec *d = find(&r, MYSQL_EVENT_DONE, 0);
    ck_assert_int_eq(d->outcome, MYSQL_OK);
    ck_assert_uint_eq(d->rows, 2);
    ck_assert_uint_eq(d->text_len, 64);
    ck_assert(d->truncated);
    ck_assert(memcmp(d->text, "SELECT 'xxx", 11) == 0);
    ck_assert_uint_eq(d->text_total, big - 1);
    ck_assert_uint_eq(d->bytes_in, big + 3 * 4);
    /* In pieces of 1000 bytes too. */
    static struct recorder r2;
    run(&s, &r2, 64, 1000);
    assert_same(&r, &r2);
    script_free(&s);
}
END_TEST

START_TEST(test_mysql_tls_not_followed)
{
    static struct recorder r;
    struct script s = { .n = 0 };
    handshake(&s, CAPS_BASE | MYSQL_CLIENT_SSL);
    /* Then TLS records both ways. */
    client(&s, 7, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
    server(&s, 9, "\x16\x03\x03\x00\x5a\x02", 6);
    query(&s, MYSQL_COM_QUERY, "SELECT 1");
    run_all_splits(&s, &r);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.ev[0].type, MYSQL_EVENT_NOT_FOLLOWED);
    ck_assert_str_eq(r.ev[0].reason, "TLS");
    script_free(&s);

    handshake(&s, CAPS_BASE | MYSQL_CLIENT_COMPRESS);
    query(&s, MYSQL_COM_QUERY, "SELECT 1");
    run(&s, &r, 1024, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.ev[0].reason, "compression");
    script_free(&s);
}
END_TEST

START_TEST(test_mysql_not_followed)
{
    static struct recorder r;
    struct script s = { .n = 0 };
    /* A sequence id off. */
    handshake(&s, CAPS_BASE);
    client(&s, 1, "\x03SELECT 1", 9);
    run(&s, &r, 1024, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_str_eq(r.ev[0].reason, "sequence id out of order");
    script_free(&s);
    /* The client speaks first (not MySQL). */
    client(&s, 0, "GET / HTTP/1.1\r\n", 16);
    run(&s, &r, 1024, 0);
    ck_assert_int_eq(r.n, 1);
    ck_assert_int_eq(r.ev[0].type, MYSQL_EVENT_NOT_FOLLOWED);
    script_free(&s);
    /* A query in flight when the client leaves. */
    handshake(&s, CAPS_BASE);
    query(&s, MYSQL_COM_QUERY, "SELECT SLEEP(10)");
    server(&s, 1, "\x01", 1);
    run(&s, &r, 1024, 0);
    ck_assert_int_eq(r.n, 2);
    ck_assert_int_eq(r.ev[1].type, MYSQL_EVENT_DONE);
    ck_assert_int_eq(r.ev[1].outcome, MYSQL_CLIENT_GONE);
    script_free(&s);
}
END_TEST

/* Random bytes both ways: no crash, at most one NOT_FOLLOWED, memory
 * bounded. */
START_TEST(test_mysql_garbage)
{
    static struct recorder r;
    unsigned seed = 12345;
    char buf[512];
    for (int round = 0; round < 200; round++) {
        struct mysql_follower *f = mysql_follower_new(256, record, &r);
        memset(&r, 0, sizeof(r));
        for (int i = 0; i < 50 && r.n < 100; i++) {
            size_t n = (size_t)(rand_r(&seed) % sizeof(buf));
            for (size_t k = 0; k < n; k++)
                buf[k] = (char)(rand_r(&seed) % 8 == 0 ? 0 : rand_r(&seed));
            mysql_follower_feed(f, rand_r(&seed) % 2 ? MYSQL_FROM_CLIENT : MYSQL_FROM_SERVER, buf, n);
            ck_assert_uint_le(mysql_follower_memory(f), 200000);
        }
        int lost = 0;
        for (int i = 0; i < r.n; i++)
            lost += r.ev[i].type == MYSQL_EVENT_NOT_FOLLOWED;
        ck_assert_int_le(lost, 1);
        mysql_follower_free(f);
    }
}
END_TEST

Suite *mysql_suite(void)
{
    Suite *s = suite_create("mysql");
    TCase *tc = tcase_create("follower");

    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mysql_session_eof);
    tcase_add_test(tc, test_mysql_session_deprecate_eof);
    tcase_add_test(tc, test_mysql_multi_result);
    tcase_add_test(tc, test_mysql_prepared);
    tcase_add_test(tc, test_mysql_statement_table_bound);
    tcase_add_test(tc, test_mysql_local_infile);
    tcase_add_test(tc, test_mysql_multi_packet);
    tcase_add_test(tc, test_mysql_tls_not_followed);
    tcase_add_test(tc, test_mysql_not_followed);
    tcase_add_test(tc, test_mysql_garbage);
    suite_add_tcase(s, tc);
    return s;
}
