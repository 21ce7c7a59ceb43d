/* Proxy sessions with exchange.codec mysql: the packet follower sees every
 * byte the session passes (it never changes or holds one); each query it
 * reports done becomes one request log record (SPEC §11) and one request
 * in the service's statistics (requests, responses, latency). */
#include <stdlib.h>

#include "config.h"
#include "exchange.h"
#include "log.h"
#include "mysql.h"
#include "request_log.h"
#include "script.h"
#include "stats.h"
#include "upstream.h"
#include "proxy_mysql.h"

struct proxy_mysql {
    struct exchange *x;
    struct mysql_follower *follower;
    uint64_t id;
    const char *peer;           /* the session's, outlives m */
    struct upstream_conn *up;   /* the session's upstream connection, outlives m */
    /* The Lua hooks the session started with (a reference), and the req
     * tables of the queries in flight, oldest first, for on_response: a
     * client may pipeline commands (the follower keeps MYSQL_MAX_PENDING),
     * and MySQL answers them in order. */
    struct script *script;
    unsigned inflight;          /* queries counted by stats_request_start(), not done yet */
    int hook_refs[MYSQL_MAX_PENDING];
    unsigned hook_first;
    unsigned hook_count;
};

/* Forgets the req tables of the queries in flight (the session ended, or
 * the follower gave up: no answer will be matched to them). */
static void proxy_mysql_forget_hooks(struct proxy_mysql *m)
{
    for (; m->hook_count > 0; m->hook_count--) {
        script_forget(m->script, m->hook_refs[m->hook_first]);
        m->hook_first = (m->hook_first + 1) % MYSQL_MAX_PENDING;
    }
}

/* A query's stamp: its start (stats clock, microseconds) shifted left by
 * one, the low bit saying whether the request log samples it. */
#define PROXY_MYSQL_SAMPLED 1u

static enum request_log_status proxy_mysql_log_status(enum mysql_outcome o)
{
    switch (o) {
    case MYSQL_OK:
        return REQUEST_LOG_OK;
    case MYSQL_ERROR:
        return REQUEST_LOG_ERROR;
    case MYSQL_CLIENT_GONE:
        return REQUEST_LOG_CLIENT_GONE;
    case MYSQL_UPSTREAM_GONE:
    default:
        return REQUEST_LOG_UPSTREAM_GONE;
    }
}

/* The Lua hooks, observing only: the bytes have passed already and the
 * session is never changed (on_request's result is ignored). */
static void proxy_mysql_script(struct proxy_mysql *m, const struct mysql_event *ev, uint64_t us)
{
    static const char *const status[] = {
        [MYSQL_OK] = "ok", [MYSQL_ERROR] = "error", [MYSQL_CLIENT_GONE] = "dropped",
        [MYSQL_UPSTREAM_GONE] = "server_error",
    };

    if (ev->type == MYSQL_EVENT_QUERY) {
        const char *text = ev->text != NULL ? ev->text : "";
        int ref = SCRIPT_NO_REF;
        (void)script_on_request(m->script, m->peer, text, ev->text_len, text, ev->text_len, NULL, &ref);
        if (m->hook_count == MYSQL_MAX_PENDING) {
            /* Not expected: the follower stops following past this. */
            script_forget(m->script, ref);
            return;
        }
        m->hook_refs[(m->hook_first + m->hook_count) % MYSQL_MAX_PENDING] = ref;
        m->hook_count++;
        return;
    }
    if (m->hook_count == 0)
        return;
    int ref = m->hook_refs[m->hook_first];
    m->hook_first = (m->hook_first + 1) % MYSQL_MAX_PENDING;
    m->hook_count--;
    script_on_response(m->script, ref, (unsigned)ev->outcome < PMX_ARRAY_LEN(status) ? status[ev->outcome] : "error",
                       NULL, (size_t)ev->bytes_out, us);
}

static void proxy_mysql_done(struct proxy_mysql *m, const struct mysql_event *ev)
{
    struct exchange *x = m->x;
    uint64_t start = ev->stamp >> 1;
    uint64_t now = upstream_clock_us();

    if (m->script != NULL)
        proxy_mysql_script(m, ev, now > start ? now - start : 0);

    /* An ERR packet is the upstream's answer (as a resp -ERR is in
     * fifo/funnel); the request log tells it apart. */
    if (ev->outcome == MYSQL_OK || ev->outcome == MYSQL_ERROR)
        upstream_conn_answered(m->up);
    if (ev->outcome == MYSQL_CLIENT_GONE)
        stats_request_dropped(&x->stats);
    else
        stats_request_done(&x->stats, ev->outcome == MYSQL_UPSTREAM_GONE ? STATS_SERVER_ERROR : STATS_OK, start);
    if (x->request_log == NULL || !(ev->stamp & PROXY_MYSQL_SAMPLED))
        return;
    struct request_log_record r = {
        .service = x->config->name,
        .client = m->peer,
        .target = upstream_target_name(x->upstream, m->up->target),
        .command = ev->text != NULL ? ev->text : "",
        .command_len = ev->text_len,
        .command_total = (size_t)ev->text_total,
        .bytes_in = ev->bytes_in,
        .bytes_out = ev->bytes_out,
        .us = now > start ? now - start : 0,
        .status = proxy_mysql_log_status(ev->outcome),
        .error_code = ev->outcome == MYSQL_ERROR ? ev->error_code : 0,
        .statement_id = ev->statement_id,
    };
    request_log_write(x->request_log, &r);
}

static void proxy_mysql_event(void *ctx, const struct mysql_event *ev)
{
    struct proxy_mysql *m = ctx;
    struct exchange *x = m->x;

    switch (ev->type) {
    case MYSQL_EVENT_QUERY: {
        uint64_t start = stats_request_start(&x->stats);
        bool sampled = x->request_log != NULL && request_log_sampled(x->request_log);
        *ev->stamp_slot = start << 1 | (sampled ? PROXY_MYSQL_SAMPLED : 0);
        m->inflight++;
        if (m->script != NULL)
            proxy_mysql_script(m, ev, 0);
        break;
    }
    case MYSQL_EVENT_DONE:
        if (m->inflight > 0)
            m->inflight--;
        proxy_mysql_done(m, ev);
        break;
    case MYSQL_EVENT_QUIT:
        break;
    case MYSQL_EVENT_NOT_FOLLOWED:
        /* Queries in flight will never be seen done: counted dropped so
         * that requests and responses still add up (no log record). */
        for (; m->inflight > 0; m->inflight--)
            stats_request_dropped(&x->stats);
        proxy_mysql_forget_hooks(m);
        log_info("#%llu client %s: mysql session not followed (%s): piped untouched, not logged",
                 (unsigned long long)m->id, m->peer, ev->reason);
        break;
    }
}

struct proxy_mysql *proxy_mysql_new(struct exchange *x, uint64_t id, const char *peer, struct upstream_conn *up)
{
    struct proxy_mysql *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    m->x = x;
    m->id = id;
    m->peer = peer;
    m->up = up;
    m->follower = mysql_follower_new((size_t)x->config->request_log.max_text, proxy_mysql_event, m);
    if (m->follower == NULL) {
        free(m);
        return NULL;
    }
    m->script = script_ref(x->script);
    return m;
}

void proxy_mysql_feed(struct proxy_mysql *m, bool from_client, const char *data, size_t len)
{
    mysql_follower_feed(m->follower, from_client ? MYSQL_FROM_CLIENT : MYSQL_FROM_SERVER, data, len);
}

void proxy_mysql_end(struct proxy_mysql *m, bool client_left)
{
    if (m == NULL)
        return;
    mysql_follower_end(m->follower, client_left ? MYSQL_CLIENT_GONE : MYSQL_UPSTREAM_GONE);
    mysql_follower_free(m->follower);
    proxy_mysql_forget_hooks(m);
    script_unref(m->script);
    free(m);
}
