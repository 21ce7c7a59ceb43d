/* FIFO and funnel modes: many clients multiplexed over a pool of upstream
 * connections (one for FIFO, N for funnel), with a codec framing requests
 * and responses. FIFO is funnel with a single connection, so both modes
 * share this code and differ only in their pool size. This file is the
 * mode itself (start, janitor, shutdown, flushing before the loop sleeps);
 * src/exchange/mux.h says where the rest lives. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"

/* Before the loop sleeps: write what handlers queued (many clients'
 * requests go out in one write per upstream), and free closed clients. */
static void mux_before_sleep(struct reactor *r, void *data)
{
    struct mux *m = data;

    mux_upstreams_flush(m);
    while (m->dirty_clients) {
        struct mux_client *c = m->dirty_clients;
        m->dirty_clients = c->dirty_next;
        c->dirty = false;
        mux_client_flush(c);
    }
    while (m->graveyard) {
        struct mux_client *c = m->graveyard;
        m->graveyard = c->next;
        free(c);
    }
}

static int mux_ready_count(const struct mux *m)
{
    int n = 0;

    for (int i = 0; i < m->nups; i++)
        n += m->ups[i].uc.state == UPSTREAM_READY;
    return n;
}

static void mux_warmup_check(struct mux *m)
{
    struct exchange *x = m->x;

    if (x->ready)
        return;
    int ready = mux_ready_count(m);
    if (ready == m->nups) {
        log_info("warmup: %d connections ready", ready);
        exchange_ready(x);
    } else if (reactor_now(x->reactor) - m->started >= (uint64_t)x->config->connect_timeout) {
        log_error("warmup: only %d of %d connections ready after %ld ms; accepting clients anyway",
                  ready, m->nups, x->config->connect_timeout);
        exchange_ready(x);
    }
}

static void mux_tick(struct exchange *x)
{
    struct mux *m = x->priv;
    uint64_t now = reactor_now(x->reactor);

    mux_warmup_check(m);
    mux_enforce_request_memory(m);
    mux_upstreams_tick(m, now);
}

static void mux_target_up(struct exchange *x)
{
    mux_upstreams_reopen(x->priv);
}

static int mux_start(struct exchange *x)
{
    const struct service_config *cfg = x->config;
    struct mux *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return PMX_ERR;
    m->ups = calloc((size_t)cfg->connections, sizeof(*m->ups));
    m->scratch = malloc(MUX_CHUNK);
    if (m->ups == NULL || m->scratch == NULL ||
        reactor_add_before_sleep(x->reactor, mux_before_sleep, m) != PMX_OK) {
        free(m->scratch);
        free(m->ups);
        free(m);
        return PMX_ERR;
    }
    m->nups = cfg->connections;
    m->x = x;
    m->resp = x->codec == &codec_resp;
    mux_session_configure(m);
    for (int i = 0; i < m->nups; i++)
        mux_upstream_init(m, &m->ups[i]);
    m->started = reactor_now(x->reactor);
    x->priv = m;
    if (cfg->warmup) {
        for (int i = 0; i < m->nups; i++)
            mux_upstream_open(m, &m->ups[i]);
        mux_warmup_check(m);
    } else {
        exchange_ready(x);
    }
    return PMX_OK;
}

static void mux_shutdown(struct exchange *x, bool fast)
{
    struct mux *m = x->priv;
    struct mux_client *next;

    if (!fast)
        return;
    /* Read no more requests; answer those accepted, then close. */
    x->shutting_down = true;
    for (struct mux_client *c = m->clients; c; c = next) {
        next = c->next;
        mux_client_update(c);
    }
}

static void mux_reload(struct exchange *x)
{
    struct mux *m = x->priv;

    mux_session_configure(m);
    for (int i = 0; i < m->nups; i++)
        sched_relimit(&m->ups[i].sched, (size_t)x->config->client_inflight);
    for (int i = 0; i < m->nups; i++)
        mux_dispatch(m, &m->ups[i]);
}

static void mux_destroy(struct exchange *x)
{
    struct mux *m = x->priv;

    if (m == NULL)
        return;
    x->shutting_down = true;
    while (m->clients)
        mux_client_close(m->clients, "exit");
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        struct mux_request *req;
        struct sched_client *owner;
        struct sched_item *it;
        while ((it = sched_pop_any(&up->sched, &owner)) != NULL) {
            req = list_entry(it, struct mux_request, item);
            mux_request_leave_upstream(req);
            mux_request_release(req);
        }
        while ((req = mux_queue_pop(&up->sent)) != NULL) {
            mux_request_leave_upstream(req);
            mux_request_release(req);
        }
    }
    m->dirty_clients = NULL;
    mux_before_sleep(x->reactor, m);
    mux_session_destroy(m);
    reactor_remove_before_sleep(x->reactor, mux_before_sleep, m);
    for (int i = 0; i < m->nups; i++)
        mux_upstream_release(&m->ups[i]);
    free(m->ups);
    free(m->scratch);
    free(m);
    x->priv = NULL;
}

/* Statistics: queue depth, requests in flight, the bytes of the clients
 * still connected and the resp session counters. */
static void mux_gauges(const struct exchange *x, struct stats_gauges *g)
{
    const struct mux *m = x->priv;

    memset(g, 0, sizeof(*g));
    if (m == NULL)
        return;
    g->queued = m->queued;
    g->active = m->active;
    for (const struct mux_client *c = m->clients; c; c = c->next) {
        g->bytes_in += c->conn.bytes_in;
        g->bytes_out += c->conn.bytes_out;
    }
    for (int i = 0; i < MUX_PIN_REASONS && i < STATS_PIN_REASONS; i++)
        g->pinned[i] = m->pinned[i];
    g->pin_refused = m->pin_refused;
    g->session_refused = m->session_refused;
    g->dedicated = (uint64_t)PMX_MAX(m->nded, 0);
}

const struct exchange_ops exchange_fifo = {
    .name = "fifo",
    .start = mux_start,
    .accept = mux_accept,
    .tick = mux_tick,
    .target_up = mux_target_up,
    .shutdown = mux_shutdown,
    .reload = mux_reload,
    .destroy = mux_destroy,
    .gauges = mux_gauges,
};

const struct exchange_ops exchange_funnel = {
    .name = "funnel",
    .start = mux_start,
    .accept = mux_accept,
    .tick = mux_tick,
    .target_up = mux_target_up,
    .shutdown = mux_shutdown,
    .reload = mux_reload,
    .destroy = mux_destroy,
    .gauges = mux_gauges,
};
