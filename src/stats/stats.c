/* Statistics: the latency histogram, and the Prometheus text (0.0.4) and
 * JSON writers over snapshots of the services. Counting itself is inline in
 * stats.h: the hot path is an increment. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "stats.h"

const uint32_t stats_bounds_us[STATS_NBOUNDS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

const char *const stats_refusal_names[STATS_REFUSED_N] = {
    "max_connections", "max_queued", "no_upstream", "queue_timeout", "request_memory", "denied", "route", "script",
};

const char *const stats_status_names[STATS_STATUS_N] = {
    "ok", "client_error", "server_error", "timeout", "busy", "dropped",
};

const char *const stats_pin_names[STATS_PIN_REASONS] = {
    "multi", "watch", "subscribe", "monitor", "blocking",
};

const char *const stats_conn_state_names[STATS_CONN_STATES] = {
    "closed", "connecting", "ready", "backoff",
};

static uint64_t stats_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t stats_request_start(struct stats *s)
{
    s->requests++;
    return stats_clock_us();
}

void stats_request_done(struct stats *s, enum stats_status status, uint64_t start_us)
{
    if (s == NULL)
        return;
    s->responses[status]++;
    uint64_t now = stats_clock_us();
    stats_observe(&s->latency, now > start_us ? now - start_us : 0);
}

void stats_observe(struct stats_histogram *h, uint64_t us)
{
    int i = 0;

    /* Most samples fall in the first few buckets: a linear scan ends soon. */
    while (i < STATS_NBOUNDS && us > stats_bounds_us[i])
        i++;
    h->buckets[i]++;
    h->count++;
    h->sum_us += us;
}

uint64_t stats_quantile(const struct stats_histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    /* The rank of the sample wanted, 1-based, rounded up. */
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0)
        rank++;
    uint64_t seen = 0;
    for (int i = 0; i < STATS_NBOUNDS; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            return stats_bounds_us[i];
    }
    return stats_bounds_us[STATS_NBOUNDS - 1];
}

/* ---- JSON ---------------------------------------------------------------- */

void stats_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void json_counts(FILE *out, const char *const *names, const uint64_t *v, int n)
{
    fputc('{', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s\"%s\": %" PRIu64, i ? ", " : "", names[i], v[i]);
    fputc('}', out);
}

void stats_write_json(FILE *out, const struct stats_snapshot *svc)
{
    const struct stats *c = svc->counters;
    const struct stats_gauges *g = &svc->gauges;
    const struct stats_histogram *h = &c->latency;

    fputs("{\"name\": ", out);
    stats_json_string(out, svc->name);
    fprintf(out, ", \"clients\": {\"now\": %" PRIu64 ", \"total\": %" PRIu64 ", \"refused\": ", svc->clients,
            c->clients_total);
    json_counts(out, stats_refusal_names, c->refused, STATS_REFUSED_N);
    fprintf(out, "}, \"requests\": %" PRIu64 ", \"responses\": ", c->requests);
    json_counts(out, stats_status_names, c->responses, STATS_STATUS_N);
    fprintf(out, ", \"bytes\": {\"in\": %" PRIu64 ", \"out\": %" PRIu64 "}", c->bytes_in + g->bytes_in,
            c->bytes_out + g->bytes_out);
    fprintf(out, ", \"queue\": {\"waiting\": %" PRIu64 ", \"active\": %" PRIu64 "}", g->queued, g->active);
    fputs(", \"pinned\": ", out);
    json_counts(out, stats_pin_names, g->pinned, STATS_PIN_REASONS);
    fprintf(out, ", \"pin_refused\": %" PRIu64 ", \"session_refused\": %" PRIu64 ", \"dedicated\": %" PRIu64,
            g->pin_refused, g->session_refused, g->dedicated);
    fprintf(out, ", \"request_log_dropped\": %" PRIu64, g->request_log_dropped);
    fputs(", \"upstream_connections\": ", out);
    json_counts(out, stats_conn_state_names, svc->upstream_conns, STATS_CONN_STATES);
    fprintf(out, ", \"latency_us\": {\"count\": %" PRIu64 ", \"sum\": %" PRIu64 ", \"p50\": %" PRIu64
            ", \"p90\": %" PRIu64 ", \"p99\": %" PRIu64 ", \"buckets\": [",
            h->count, h->sum_us, stats_quantile(h, 0.5), stats_quantile(h, 0.9), stats_quantile(h, 0.99));
    for (int i = 0; i < STATS_NBUCKETS; i++) {
        if (i < STATS_NBOUNDS)
            fprintf(out, "%s{\"le\": %" PRIu32 ", \"count\": %" PRIu64 "}", i ? ", " : "", stats_bounds_us[i],
                    h->buckets[i]);
        else
            fprintf(out, ", {\"le\": \"+Inf\", \"count\": %" PRIu64 "}", h->buckets[i]);
    }
    fputs("]}, \"targets\": [", out);
    for (int i = 0; i < svc->ntargets; i++) {
        const struct stats_target *t = &svc->targets[i];
        fputs(i ? ", {\"name\": " : "{\"name\": ", out);
        stats_json_string(out, t->name);
        fputs(", \"address\": ", out);
        stats_json_string(out, t->address);
        fputs(", \"state\": ", out);
        stats_json_string(out, t->state);
        fputs(", \"reason\": ", out);
        stats_json_string(out, t->reason);
        fprintf(out, ", \"connections\": %" PRIu64 ", \"connects\": %" PRIu64 ", \"connect_errors\": %" PRIu64
                ", \"requests\": %" PRIu64 ", \"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64
                ", \"weight\": %d, \"backup\": %s, \"draining\": %s}",
                t->conns, t->connects, t->connect_errors, t->requests, t->bytes_sent, t->bytes_received, t->weight, t->backup ? "true" : "false",
                t->draining ? "true" : "false");
    }
    fputs("]}", out);
}

/* ---- Prometheus text format 0.0.4 ----------------------------------------- */

/* A label value: backslash, double quote and line feed are escaped. */
static void prom_label(FILE *out, const char *s)
{
    fputc('"', out);
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '\\')
            fputs("\\\\", out);
        else if (*p == '"')
            fputs("\\\"", out);
        else if (*p == '\n')
            fputs("\\n", out);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void prom_family(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP proximux_%s %s\n# TYPE proximux_%s %s\n", name, help, name, type);
}

/* Starts a sample: proximux_NAME{service="..." */
static void prom_sample(FILE *out, const char *name, const struct stats_snapshot *svc)
{
    fprintf(out, "proximux_%s{service=", name);
    prom_label(out, svc->name);
}

static void prom_simple(FILE *out, const char *name, const struct stats_snapshot *svc, uint64_t v)
{
    prom_sample(out, name, svc);
    fprintf(out, "} %" PRIu64 "\n", v);
}

static void prom_labelled(FILE *out, const char *name, const struct stats_snapshot *svc, const char *label,
                          const char *value, uint64_t v)
{
    prom_sample(out, name, svc);
    fprintf(out, ",%s=", label);
    prom_label(out, value);
    fprintf(out, "} %" PRIu64 "\n", v);
}

/* One family whose samples are one number per service. */
#define PROM_EACH(name, type, help, expr)                                   \
    do {                                                                    \
        prom_family(out, name, type, help);                                 \
        for (int i_ = 0; i_ < n; i_++) {                                    \
            const struct stats_snapshot *s = &svc[i_];                      \
            prom_simple(out, name, s, (expr));                              \
        }                                                                   \
    } while (0)

/* One family with a label over an array per service. */
#define PROM_EACH_LABEL(name, type, help, label, names, count, expr)        \
    do {                                                                    \
        prom_family(out, name, type, help);                                 \
        for (int i_ = 0; i_ < n; i_++) {                                    \
            const struct stats_snapshot *s = &svc[i_];                      \
            for (int k = 0; k < (count); k++)                               \
                prom_labelled(out, name, s, label, (names)[k], (expr));       \
        }                                                                   \
    } while (0)

/* Seconds from microseconds, exactly (no float rounding in the text). */
static void prom_seconds(FILE *out, uint64_t us)
{
    fprintf(out, "%" PRIu64 ".%06" PRIu64, us / 1000000u, us % 1000000u);
}

static void prom_target(FILE *out, const char *name, const struct stats_snapshot *s, const struct stats_target *t,
                        const char *extra, const char *extra_value, uint64_t v)
{
    prom_sample(out, name, s);
    fputs(",target=", out);
    prom_label(out, t->name);
    if (extra != NULL) {
        fprintf(out, ",%s=", extra);
        prom_label(out, extra_value);
    }
    fprintf(out, "} %" PRIu64 "\n", v);
}

void stats_write_prometheus(FILE *out, const struct stats_snapshot *svc, int n)
{
    PROM_EACH("clients", "gauge", "Clients connected now.", s->clients);
    PROM_EACH("clients_accepted_total", "counter", "Clients accepted.", s->counters->clients_total);
    PROM_EACH_LABEL("clients_refused_total", "counter", "Clients refused, by reason.", "reason",
                    stats_refusal_names, STATS_REFUSED_N, s->counters->refused[k]);
    PROM_EACH("requests_total", "counter", "Requests framed (fifo and funnel).", s->counters->requests);
    PROM_EACH_LABEL("responses_total", "counter", "Responses, by status.", "status", stats_status_names,
                    STATS_STATUS_N, s->counters->responses[k]);
    PROM_EACH("client_received_bytes_total", "counter", "Bytes read from clients.",
              s->counters->bytes_in + s->gauges.bytes_in);
    PROM_EACH("client_sent_bytes_total", "counter", "Bytes written to clients.",
              s->counters->bytes_out + s->gauges.bytes_out);
    PROM_EACH("queued_requests", "gauge", "Requests waiting for an upstream connection.", s->gauges.queued);
    PROM_EACH("active_requests", "gauge", "Requests sent upstream and not answered yet.", s->gauges.active);
    PROM_EACH_LABEL("pinned_clients_total", "counter", "Clients given a dedicated connection, by reason.",
                    "reason", stats_pin_names, STATS_PIN_REASONS, s->gauges.pinned[k]);
    PROM_EACH("pin_refused_total", "counter", "Dedicated connections refused at session.dedicated_max.",
              s->gauges.pin_refused);
    PROM_EACH("session_refused_total", "counter", "Commands refused by the session rules.",
              s->gauges.session_refused);
    PROM_EACH("dedicated_connections", "gauge", "Dedicated upstream connections now.", s->gauges.dedicated);
    PROM_EACH("request_log_dropped_total", "counter", "Request log lines dropped (sink too slow).",
              s->gauges.request_log_dropped);
    PROM_EACH_LABEL("upstream_connections", "gauge", "Upstream connections, by state.", "state",
                    stats_conn_state_names, STATS_CONN_STATES, s->upstream_conns[k]);

    prom_family(out, "request_duration_seconds", "histogram",
                "Time from a request framed to its response known (fifo and funnel).");
    for (int i = 0; i < n; i++) {
        const struct stats_snapshot *s = &svc[i];
        const struct stats_histogram *h = &s->counters->latency;
        uint64_t cumulative = 0;
        for (int b = 0; b < STATS_NBUCKETS; b++) {
            cumulative += h->buckets[b];
            prom_sample(out, "request_duration_seconds_bucket", s);
            fputs(",le=\"", out);
            if (b < STATS_NBOUNDS)
                prom_seconds(out, stats_bounds_us[b]);
            else
                fputs("+Inf", out);
            fprintf(out, "\"} %" PRIu64 "\n", cumulative);
        }
        prom_sample(out, "request_duration_seconds_sum", s);
        fputs("} ", out);
        prom_seconds(out, h->sum_us);
        fputc('\n', out);
        prom_simple(out, "request_duration_seconds_count", s, h->count);
    }

    prom_family(out, "target_up", "gauge", "1 when the target takes new connections (state up).");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_up", &svc[i], &svc[i].targets[t], NULL, NULL,
                        strcmp(svc[i].targets[t].state, "up") == 0 && !svc[i].targets[t].draining);
    prom_family(out, "target_state", "gauge", "The target's state: 1 for the state it is in.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_state", &svc[i], &svc[i].targets[t], "state", svc[i].targets[t].state, 1);
    prom_family(out, "target_connections", "gauge", "Open upstream connections to the target.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_connections", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].conns);
    prom_family(out, "target_connects_total", "counter", "Connects started to the target.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_connects_total", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].connects);
    prom_family(out, "target_connect_errors_total", "counter", "Connects to the target that failed.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_connect_errors_total", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].connect_errors);
    prom_family(out, "target_requests_total", "counter", "Requests the target answered.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_requests_total", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].requests);
    prom_family(out, "target_bytes_sent_total", "counter", "Bytes written to the target.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_bytes_sent_total", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].bytes_sent);
    prom_family(out, "target_bytes_received_total", "counter", "Bytes read from the target.");
    for (int i = 0; i < n; i++)
        for (int t = 0; t < svc[i].ntargets; t++)
            prom_target(out, "target_bytes_received_total", &svc[i], &svc[i].targets[t], NULL, NULL,
                        svc[i].targets[t].bytes_received);
}
