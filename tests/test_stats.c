/* Unit tests for the statistics: histogram buckets and quantiles, the
 * Prometheus writer (HELP/TYPE lines, _total counters, cumulative buckets,
 * label escaping) and the JSON writer (string escaping). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "suites.h"

/* Runs the writer into a string the caller frees. */
static char *prometheus_text(const struct stats_snapshot *s, int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(out);
    stats_write_prometheus(out, s, n);
    fclose(out);
    return text;
}

static char *json_text(const struct stats_snapshot *s)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(out);
    stats_write_json(out, s);
    fclose(out);
    return text;
}

START_TEST(histogram_buckets)
{
    struct stats_histogram h;

    memset(&h, 0, sizeof(h));
    stats_observe(&h, 0);           /* <= 100 us */
    stats_observe(&h, 100);         /* on the bound: still the first bucket */
    stats_observe(&h, 101);         /* 250 */
    stats_observe(&h, 10000000);    /* the last bound */
    stats_observe(&h, 10000001);    /* +Inf */
    ck_assert_uint_eq(h.buckets[0], 2);
    ck_assert_uint_eq(h.buckets[1], 1);
    ck_assert_uint_eq(h.buckets[STATS_NBOUNDS - 1], 1);
    ck_assert_uint_eq(h.buckets[STATS_NBOUNDS], 1);
    ck_assert_uint_eq(h.count, 5);
    ck_assert_uint_eq(h.sum_us, 0 + 100 + 101 + 10000000 + 10000001);
}
END_TEST

START_TEST(histogram_quantiles)
{
    struct stats_histogram h;

    memset(&h, 0, sizeof(h));
    ck_assert_uint_eq(stats_quantile(&h, 0.5), 0);
    /* 90 fast samples (<= 100 us), 9 at 2 ms, 1 at 1 s. */
    for (int i = 0; i < 90; i++)
        stats_observe(&h, 50);
    for (int i = 0; i < 9; i++)
        stats_observe(&h, 2000);
    stats_observe(&h, 1000000);
    ck_assert_uint_eq(stats_quantile(&h, 0.5), 100);
    ck_assert_uint_eq(stats_quantile(&h, 0.9), 100);
    ck_assert_uint_eq(stats_quantile(&h, 0.91), 2500);
    ck_assert_uint_eq(stats_quantile(&h, 0.99), 2500);
    ck_assert_uint_eq(stats_quantile(&h, 1.0), 1000000);
}
END_TEST

START_TEST(request_counting)
{
    struct stats s;

    memset(&s, 0, sizeof(s));
    uint64_t t = stats_request_start(&s);
    stats_request_done(&s, STATS_OK, t);
    t = stats_request_start(&s);
    stats_request_done(&s, STATS_BUSY, t);
    stats_request_done(NULL, STATS_OK, t);  /* Proximux's own request: nothing */
    ck_assert_uint_eq(s.requests, 2);
    ck_assert_uint_eq(s.responses[STATS_OK], 1);
    ck_assert_uint_eq(s.responses[STATS_BUSY], 1);
    ck_assert_uint_eq(s.latency.count, 2);
}
END_TEST

/* A snapshot of one service with a name that needs escaping. */
static void sample(struct stats_snapshot *snap, struct stats *c, struct stats_target *t, const char *name)
{
    memset(snap, 0, sizeof(*snap));
    memset(c, 0, sizeof(*c));
    memset(t, 0, sizeof(*t));
    snap->name = name;
    snap->mode = "fifo";
    snap->codec = "resp";
    snap->clients = 3;
    snap->counters = c;
    c->clients_total = 7;
    c->refused[STATS_REFUSED_MAX_CONNECTIONS] = 2;
    c->requests = 5;
    c->responses[STATS_OK] = 4;
    c->responses[STATS_TIMEOUT] = 1;
    c->bytes_in = 100;
    snap->gauges.bytes_in = 11;
    stats_observe(&c->latency, 50);
    stats_observe(&c->latency, 300);
    stats_observe(&c->latency, 300);
    stats_observe(&c->latency, 20000000);
    t->name = "t\"1";
    t->address = "127.0.0.1:1";
    t->state = "up";
    t->reason = "initial";
    t->conns = 1;
    t->connects = 4;
    snap->targets = t;
    snap->ntargets = 1;
}

START_TEST(prometheus_format)
{
    struct stats_snapshot snap;
    struct stats c;
    struct stats_target t;

    sample(&snap, &c, &t, "svc");
    char *text = prometheus_text(&snap, 1);
    ck_assert_ptr_nonnull(strstr(text, "# HELP proximux_clients Clients connected now.\n"
                                       "# TYPE proximux_clients gauge\nproximux_clients{service=\"svc\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "# TYPE proximux_clients_accepted_total counter\n"
                                       "proximux_clients_accepted_total{service=\"svc\"} 7\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_clients_refused_total{service=\"svc\",reason=\"max_connections\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_responses_total{service=\"svc\",status=\"timeout\"} 1\n"));
    /* Bytes of the clients that left plus those connected. */
    ck_assert_ptr_nonnull(strstr(text, "proximux_client_received_bytes_total{service=\"svc\"} 111\n"));
    /* Cumulative buckets, seconds in le, +Inf = count. */
    ck_assert_ptr_nonnull(strstr(text, "# TYPE proximux_request_duration_seconds histogram\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_bucket{service=\"svc\",le=\"0.000100\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_bucket{service=\"svc\",le=\"0.000250\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_bucket{service=\"svc\",le=\"0.000500\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_bucket{service=\"svc\",le=\"10.000000\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_bucket{service=\"svc\",le=\"+Inf\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_sum{service=\"svc\"} 20.000650\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_request_duration_seconds_count{service=\"svc\"} 4\n"));
    /* The target's label value is escaped. */
    ck_assert_ptr_nonnull(strstr(text, "proximux_target_connects_total{service=\"svc\",target=\"t\\\"1\"} 4\n"));
    ck_assert_ptr_nonnull(strstr(text, "proximux_target_up{service=\"svc\",target=\"t\\\"1\"} 1\n"));
    /* Every counter family ends in _total. */
    for (const char *p = strstr(text, "# TYPE "); p != NULL; p = strstr(p + 1, "# TYPE ")) {
        const char *eol = strchr(p, '\n');
        if (eol - p > 8 && strncmp(eol - 7, "counter", 7) == 0)
            ck_assert_msg(strncmp(eol - 14, "_total ", 7) == 0, "counter without _total: %.*s", (int)(eol - p), p);
    }
    free(text);
}
END_TEST

START_TEST(prometheus_escaping)
{
    struct stats_snapshot snap;
    struct stats c;
    struct stats_target t;

    sample(&snap, &c, &t, "a\"b\\c\nd");
    char *text = prometheus_text(&snap, 1);
    ck_assert_ptr_nonnull(strstr(text, "proximux_clients{service=\"a\\\"b\\\\c\\nd\"} 3\n"));
    /* No raw line feed inside a sample: every line starts with # or proximux_. */
    for (const char *line = text; *line; line = strchr(line, '\n') + 1)
        ck_assert_msg(line[0] == '#' || strncmp(line, "proximux_", 9) == 0, "stray line: %.40s", line);
    free(text);
}
END_TEST

START_TEST(json_escaping)
{
    struct stats_snapshot snap;
    struct stats c;
    struct stats_target t;

    sample(&snap, &c, &t, "a\"b\\c\nd\x01");
    char *text = json_text(&snap);
    ck_assert_ptr_nonnull(strstr(text, "{\"name\": \"a\\\"b\\\\c\\u000ad\\u0001\", \"clients\": {\"now\": 3, \"total\": 7"));
    ck_assert_ptr_nonnull(strstr(text, "\"p50\": 500, \"p90\": 10000000, \"p99\": 10000000"));
    ck_assert_ptr_nonnull(strstr(text, "\"bytes\": {\"in\": 111, \"out\": 0}"));
    ck_assert_ptr_nonnull(strstr(text, "\"targets\": [{\"name\": \"t\\\"1\""));
    free(text);
}
END_TEST

Suite *stats_suite(void)
{
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");

    tcase_add_test(tc, histogram_buckets);
    tcase_add_test(tc, histogram_quantiles);
    tcase_add_test(tc, request_counting);
    tcase_add_test(tc, prometheus_format);
    tcase_add_test(tc, prometheus_escaping);
    tcase_add_test(tc, json_escaping);
    suite_add_tcase(s, tc);
    return s;
}
