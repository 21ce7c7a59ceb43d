/* FIFO/funnel requests: where each framed request goes (answered here,
 * refused, queued for a connection or written at once), and their
 * lifetime between the client's list and an upstream queue. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"
#include "request_log.h"

void mux_request_free(struct mux_request *req)
{
    if (!req->done)
        stats_request_dropped(req->stats);
    if (req->hook_script != NULL) {
        script_forget(req->hook_script, req->hook_ref);
        script_unref(req->hook_script);
    }
    free(req->data);
    free(req->log_command);
    buf_free(&req->resp);
    free(req);
}

void mux_request_log_begin(struct mux *m, struct mux_request *req, const char *data, size_t len)
{
    const struct codec_ops *codec = m->x->codec;

    req->log_target = -1;
    if (m->x->request_log == NULL || codec->describe == NULL || !request_log_sampled(m->x->request_log))
        return;
    /* A few bytes past max_text: the log sees that it cuts the text, and
     * where a UTF-8 sequence starts. */
    size_t cap = (size_t)mux_config(m)->request_log.max_text + 4;
    /* Measured first: most descriptions are a few bytes, and a small
     * allocation is much cheaper than one of max_text. */
    size_t total = codec->describe(data, len, NULL, 0);
    cap = PMX_MIN(cap, total);
    req->log_command = malloc(cap > 0 ? cap : 1);
    if (req->log_command == NULL)
        return;     /* out of memory: this request is not logged */
    req->log_command_total = codec->describe(data, len, req->log_command, cap);
    req->log_command_len = cap;
    req->log_bytes_in = len;
}

void mux_request_log_sent(struct mux_request *req, const struct mux_upstream *up)
{
    if (req->log_command == NULL)
        return;
    req->log_sent_us = upstream_clock_us();
    req->log_target = up->uc.target;
}

/* How req ended, as the request log says it. */
static enum request_log_status mux_request_log_status(const struct mux *m, const struct mux_request *req,
                                                      const char *data, size_t len)
{
    switch (req->status) {
    case STATS_OK:
        if (m->x->codec->error_reply != NULL && m->x->codec->error_reply(data, len))
            return REQUEST_LOG_ERROR;
        return REQUEST_LOG_OK;
    case STATS_TIMEOUT:
        return REQUEST_LOG_TIMEOUT;
    case STATS_BUSY:
        return REQUEST_LOG_BUSY;
    default:
        return req->upstream_gone ? REQUEST_LOG_UPSTREAM_GONE : REQUEST_LOG_ERROR;
    }
}

void mux_request_logged(struct mux *m, struct mux_request *req, const char *client, const char *data,
                        size_t len, bool client_gone)
{
    if (req->log_command == NULL)
        return;
    struct request_log_record r = {
        .service = mux_config(m)->name,
        .client = client,
        .target = upstream_target_name(m->x->upstream, req->log_target),
        .command = req->log_command,
        .command_len = req->log_command_len,
        .command_total = req->log_command_total,
        .bytes_in = req->log_bytes_in,
        .bytes_out = client_gone ? 0 : len,
        .us = req->log_sent_us != 0 ? upstream_clock_us() - req->log_sent_us : 0,
        .status = client_gone ? REQUEST_LOG_CLIENT_GONE : mux_request_log_status(m, req, data, len),
        .error_code = 0,
        .statement_id = -1,
    };
    request_log_write(m->x->request_log, &r);
    free(req->log_command);
    req->log_command = NULL;
}

/* req has left its upstream queue (popped by the caller). The caller then
 * answers it (mux_respond) or releases it. */
void mux_request_leave_upstream(struct mux_request *req)
{
    struct mux_client *c = req->client;

    req->up = NULL;
    if (c != NULL) {
        /* A place in its client_inflight frees: it may take turns again. */
        if (req->scheduled)
            sched_done(&c->sched, (size_t)mux_config(c->m)->client_inflight);
        if (--c->nupstream == 0)
            c->affinity = NULL;
    }
    req->scheduled = false;
}

/* The Lua on_request hook (SPEC §11) for req, the bytes data[0..len) of
 * client c. Returns true when the hook answered it (a local reply, in the
 * client's order like any response) or closed the client; false when it
 * goes on (req then keeps what on_response needs). */
static bool mux_script_request(struct mux *m, struct mux_client *c, struct mux_request *req,
                               const char *data, size_t len)
{
    /* The same `command` as the request log's (codec describe()), cut. */
    char command[256];
    size_t n = m->x->codec->describe != NULL ? m->x->codec->describe(data, len, command, sizeof(command)) : 0;
    if (n > sizeof(command))
        n = sizeof(command);
    struct buf reply;
    int ref;

    buf_init(&reply);
    enum script_verdict v = script_on_request(c->script, c->peer, command, n, data, len, &reply, &ref);
    if (v == SCRIPT_PASS) {
        if (ref != SCRIPT_NO_REF) {
            req->hook_script = script_ref(c->script);
            req->hook_ref = ref;
        }
        return false;
    }
    if (v == SCRIPT_CLOSE) {
        /* Nothing the client sent after it may run. */
        c->closing = true;
        req->status = STATS_CLIENT_ERROR;
        log_info("#%llu client %s: closed by on_request", (unsigned long long)c->id, c->peer);
        mux_respond(req, "", 0, true);
    } else {
        /* A request that gets no response (memcached noreply) gets none
         * from the hook either. */
        bool silent = (req->info & CODEC_INFO_NOREPLY) != 0;
        req->status = STATS_OK;
        mux_respond(req, silent ? "" : buf_start(&reply), silent ? 0 : buf_len(&reply), false);
    }
    buf_free(&reply);
    return true;
}

/* A whole request of client c: answer it here, or queue it for an
 * upstream, or (fast path) write it straight to one. */
void mux_submit(struct mux *m, struct mux_client *c, const char *data, size_t len, uint32_t info)
{
    const struct service_config *cfg = mux_config(m);
    struct mux_request *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        mux_client_close(c, "out of memory");
        return;
    }
    buf_init(&req->resp);
    req->client = c;
    req->info = info;
    req->queued_at = reactor_now(m->x->reactor);
    req->start_us = stats_request_start(req->stats = &m->x->stats);
    mux_request_log_begin(m, req, data, len);
    if (c->tail)
        c->tail->cnext = req;
    else
        c->head = req;
    c->tail = req;
    c->npending++;

    if (c->script != NULL && mux_script_request(m, c, req, data, len))
        return;
    if (info & CODEC_INFO_QUIT) {
        /* Nothing the client sent after QUIT may run. */
        c->closing = true;
        mux_reply(m, req, CODEC_REPLY_QUIT, "quit");
        return;
    }
    struct mux_upstream *up = NULL;
    if (m->resp && mux_session_submit(m, c, req, &data, &len, &info, &up))
        return;
    if (info & CODEC_INFO_UNSUPPORTED) {
        const char *why = c->refusal ? c->refusal : "command not supported through a shared connection";
        req->close_client = false;
        char reply[MUX_REPLY_MAX];
        size_t n = m->x->codec->reply(CODEC_REPLY_CLIENT_ERROR, why, reply, sizeof(reply));
        log_info("#%llu client %s: refused: %s", (unsigned long long)c->id, c->peer, why);
        /* An unsupported command is refused; the client may go on. */
        req->status = STATS_CLIENT_ERROR;
        mux_respond(req, reply, n, n == 0);
        return;
    }
    if (info & CODEC_INFO_CLOSE) {
        /* Last request of this client: read nothing after it. */
        req->close_client = true;
        c->closing = true;
    }
    if (up == NULL)
        up = mux_pick(m, c);
    req->up = up;
    c->affinity = up;
    c->nupstream++;
    /* Nothing waits on up and the client is under its client_inflight:
     * straight onto the connection. A dedicated connection serves one
     * client, in order, without turns. */
    bool shared = !up->dedicated;
    if ((shared ? up->sched.nwaiting == 0 && sched_may_send(&c->sched, (size_t)cfg->client_inflight)
                : up->wait.head == NULL) &&
        mux_can_send(m, up)) {
        if (shared) {
            sched_taken(&c->sched);
            req->scheduled = true;
        }
        if (mux_send(m, up, req, data, len) != PMX_OK) {
            mux_request_leave_upstream(req);
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
        }
        return;
    }
    const char *busy = NULL;
    if (up->uc.state == UPSTREAM_CLOSED && !upstream_available(m->x->upstream))
        busy = UPSTREAM_NONE_USABLE;
    else if (m->queued >= (size_t)cfg->queue_limit)
        busy = "queue limit reached";
    else if (cfg->max_queued >= 0 && m->queued >= (size_t)cfg->max_queued)
        busy = "limits.max_queued reached";
    if (busy != NULL) {
        mux_request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, busy);
        if (up->dedicated) {
            /* A request of a transaction or subscription that cannot
             * run: the client's session on its dedicated connection can no
             * longer be kept whole, and the connection (the server may be
             * inside MULTI or WATCH) goes with it. */
            up->left_dirty = true;
            mux_client_close(c, busy);
        }
        return;
    }
    req->data = malloc(len ? len : 1);
    if (req->data == NULL) {
        mux_request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
        if (up->dedicated) {
            up->left_dirty = true;
            mux_client_close(c, "out of memory");
        }
        return;
    }
    memcpy(req->data, data, len);
    req->len = len;
    if (shared)
        sched_push(&up->sched, &c->sched, &req->item, (size_t)cfg->client_inflight);
    else
        mux_queue_push(&up->wait, req);
    m->queued++;
    mux_dispatch(m, up);
}

/* A client waiting on u whose oldest request has waited timeout ms, or
 * NULL. */
static struct sched_client *mux_sched_expired(struct sched_upstream *u, uint64_t now, uint64_t timeout)
{
    struct list_node *lists[] = { &u->ring, &u->parked };

    for (int i = 0; i < 2; i++) {
        for (struct list_node *n = lists[i]->next; n != lists[i]; n = n->next) {
            struct sched_client *sc = list_entry(n, struct sched_client, turn);
            struct mux_request *req = list_entry(sc->head, struct mux_request, item);
            if (now - req->queued_at >= timeout)
                return sc;
        }
    }
    return NULL;
}

/* Fails waiting requests older than queue_timeout. */
void mux_expire_queue(struct mux *m, struct mux_upstream *up, uint64_t now)
{
    const struct service_config *cfg = mux_config(m);
    struct sched_client *sc;

    if (cfg->queue_timeout <= 0)
        return;
    /* Each client's queue is in arrival order: only heads need looking at.
     * One at a time, from the start: a reply may close a client, which
     * drops its other requests from the lists being walked. */
    while ((sc = mux_sched_expired(&up->sched, now, (uint64_t)cfg->queue_timeout)) != NULL) {
        struct mux_request *req = list_entry(sched_pop(sc), struct mux_request, item);
        m->queued--;
        free(req->data);
        req->data = NULL;
        mux_request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, "queue timeout: no upstream connection free in time");
    }
}
