/* Statistics of a service (SPEC §12): counters bumped on the reactor
 * thread by the modules that own the events (plain integer increments, so
 * they stay on always), a fixed-bucket latency histogram, and the writers
 * that turn a snapshot of every service into Prometheus text (0.0.4) or
 * JSON. Gauges (clients now, queue depth, upstream connections by state,
 * targets) are not kept here: they are read from their owners when a
 * snapshot is taken. */
#ifndef STATS_H
#define STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Why a client was refused (closed without being served). */
enum stats_refusal {
    STATS_REFUSED_MAX_CONNECTIONS,  /* local.max_connections reached (after max_wait) */
    STATS_REFUSED_MAX_QUEUED,       /* proxy: limits.max_active and limits.max_queued reached */
    STATS_REFUSED_NO_UPSTREAM,      /* proxy: no target reachable for its session */
    STATS_REFUSED_QUEUE_TIMEOUT,    /* proxy: no limits.max_active place in queue_timeout */
    STATS_REFUSED_REQUEST_MEMORY,   /* fifo/funnel: limits.request_memory spent */
    STATS_REFUSED_DENIED,           /* allow/deny lists (SPEC §11) */
    STATS_REFUSED_ROUTE,            /* proxy routes: route_default close (no match, route_max_bytes, route_timeout) */
    STATS_REFUSED_SCRIPT,           /* the Lua on_connect hook refused it (or failed) */
    STATS_REFUSED_N,
};

/* How a request was answered (fifo/funnel). The error kinds are those of
 * enum codec_reply, in the same order from STATS_CLIENT_ERROR. */
enum stats_status {
    STATS_OK,                       /* the upstream's response, or a reply made here that is no error (QUIT) */
    STATS_CLIENT_ERROR,             /* malformed, oversized or unsupported request */
    STATS_SERVER_ERROR,             /* the upstream failed */
    STATS_TIMEOUT,                  /* no response within response_timeout */
    STATS_BUSY,                     /* queue full, queue timeout, no upstream available */
    STATS_DROPPED,                  /* none: the client left before it was answered */
    STATS_STATUS_N,
};

/* Latency buckets: upper bounds in microseconds, 100 us to 10 s; the last
 * bucket (+Inf) takes everything slower. */
#define STATS_NBOUNDS 16
#define STATS_NBUCKETS (STATS_NBOUNDS + 1)
extern const uint32_t stats_bounds_us[STATS_NBOUNDS];

struct stats_histogram {
    uint64_t buckets[STATS_NBUCKETS];   /* not cumulative: bucket i counts bounds[i-1] < us <= bounds[i] */
    uint64_t count;
    uint64_t sum_us;
};

/* Resp session counters (SPEC §13), by reason of pinning: multi, watch,
 * subscribe, monitor, blocking. */
#define STATS_PIN_REASONS 5
extern const char *const stats_pin_names[STATS_PIN_REASONS];

/* The counters of one service, embedded in its exchange. */
struct stats {
    uint64_t clients_total;             /* clients accepted */
    uint64_t refused[STATS_REFUSED_N];
    uint64_t requests;                  /* requests framed (fifo/funnel) */
    uint64_t responses[STATS_STATUS_N];
    uint64_t bytes_in;                  /* from clients that have left; live ones are added to a snapshot */
    uint64_t bytes_out;                 /* to clients that have left */
    struct stats_histogram latency;     /* request framed -> response known (fifo/funnel) */
};

/* Gauges the exchange mode reports for a snapshot. */
struct stats_gauges {
    uint64_t queued;                    /* requests waiting for an upstream connection */
    uint64_t active;                    /* requests sent upstream, not answered */
    uint64_t bytes_in;                  /* of the clients connected now */
    uint64_t bytes_out;
    uint64_t pinned[STATS_PIN_REASONS]; /* clients given a dedicated connection, by reason (counter) */
    uint64_t pin_refused;               /* pinnings refused at session.dedicated_max (counter) */
    uint64_t session_refused;           /* commands refused by the session rules (counter) */
    uint64_t dedicated;                 /* dedicated connections now */
    uint64_t request_log_dropped;       /* request log lines dropped, sink too slow (counter) */
};

/* Upstream connections of a service by state (enum upstream_conn_state). */
#define STATS_CONN_STATES 4
extern const char *const stats_conn_state_names[STATS_CONN_STATES];

struct stats_target {
    const char *name;
    const char *address;
    const char *state;                  /* "up", "down", "maint"... */
    const char *reason;
    uint64_t conns;                     /* open connections */
    uint64_t connects;                  /* connects started */
    uint64_t connect_errors;            /* connects failed */
    uint64_t requests;                  /* requests it answered */
    uint64_t bytes_sent;                /* bytes written to it */
    uint64_t bytes_received;            /* bytes read from it */
    int weight;
    bool backup;
    bool draining;                      /* removed at runtime, waiting for its connections to end */
};

/* Everything known about one service at one moment. */
struct stats_snapshot {
    const char *name;
    const char *mode;
    const char *codec;
    uint64_t clients;                   /* connected now */
    const struct stats *counters;
    struct stats_gauges gauges;
    uint64_t upstream_conns[STATS_CONN_STATES];
    const struct stats_target *targets;
    int ntargets;
};

static inline void stats_client_added(struct stats *s)
{
    s->clients_total++;
}

static inline void stats_refused(struct stats *s, enum stats_refusal why)
{
    s->refused[why]++;
}

/* A client left after bytes_in bytes from it and bytes_out to it. */
static inline void stats_client_left(struct stats *s, uint64_t bytes_in, uint64_t bytes_out)
{
    s->bytes_in += bytes_in;
    s->bytes_out += bytes_out;
}

/* A request was framed: counts it and returns the start of its latency
 * (monotonic microseconds). */
uint64_t stats_request_start(struct stats *s);

/* The request started at start_us (stats_request_start) was answered with
 * status: counts the response and its latency. s NULL: not a client's
 * request (one Proximux sent itself), nothing is counted. */
void stats_request_done(struct stats *s, enum stats_status status, uint64_t start_us);

/* A request counted by stats_request_start() is freed unanswered (its
 * client left first). s NULL: nothing is counted. */
static inline void stats_request_dropped(struct stats *s)
{
    if (s != NULL)
        s->responses[STATS_DROPPED]++;
}

/* Counts one sample of us microseconds. */
void stats_observe(struct stats_histogram *h, uint64_t us);

/* The upper bound in microseconds of the bucket holding the q-th quantile
 * (0 < q <= 1), or 0 when the histogram is empty. The last bucket reports
 * the largest bound (10 s). */
uint64_t stats_quantile(const struct stats_histogram *h, double q);

extern const char *const stats_refusal_names[STATS_REFUSED_N];
extern const char *const stats_status_names[STATS_STATUS_N];

/* Writes the snapshots of n services in Prometheus text format 0.0.4:
 * proximux_* families with HELP and TYPE lines, counters ending in _total,
 * the latency histogram as _bucket{le=...} (cumulative), _sum and _count in
 * seconds, label values escaped. */
void stats_write_prometheus(FILE *out, const struct stats_snapshot *svc, int n);

/* Writes one service's statistics as a JSON object (see README "Metrics
 * and admin API"). */
void stats_write_json(FILE *out, const struct stats_snapshot *svc);

/* Writes s as a JSON string (quoted, escaped). */
void stats_json_string(FILE *out, const char *s);

#endif
