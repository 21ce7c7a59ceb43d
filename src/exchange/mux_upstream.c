/* FIFO/funnel upstream connections: which one a request goes to, writing
 * requests, framing responses and matching each to the head of the sent
 * queue, and what a failed or closed connection means for the requests on
 * it. The connections themselves (connect, retries, health) belong to the
 * upstream layer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"

size_t mux_waiting(const struct mux_upstream *up)
{
    return up->sched.nwaiting + up->wait.len;
}

size_t mux_outstanding(const struct mux_upstream *up)
{
    return mux_waiting(up) + up->sent.len;
}

/* Connections in backoff or retiring come last in the pick; so do closed
 * ones while no target is usable. */
static bool mux_upstream_usable(const struct mux_upstream *up)
{
    if (up->retiring || up->uc.state == UPSTREAM_BACKOFF)
        return false;
    return up->uc.state != UPSTREAM_CLOSED || upstream_available(up->m->x->upstream);
}

/* Picks the upstream for a new request of client c. */
struct mux_upstream *mux_pick(struct mux *m, struct mux_client *c)
{
    int n = m->nups;
    struct mux_upstream *best = NULL;

    if (c->affinity != NULL)
        return c->affinity;
    if (c->noreply_up != NULL) {
        struct mux_upstream *up = c->noreply_up;
        if (up->generation == c->noreply_gen && up->answered < c->noreply_seq)
            return up;
        c->noreply_up = NULL;       /* it ran, or its connection is gone */
    }
    for (int i = 0; i < n; i++) {
        struct mux_upstream *up = &m->ups[(m->next_pick + (unsigned)i) % (unsigned)n];
        /* Connections in backoff or retiring come last. */
        bool usable = mux_upstream_usable(up);
        bool best_usable = best && mux_upstream_usable(best);
        if (best == NULL || (usable && !best_usable) ||
            (usable == best_usable && mux_outstanding(up) < mux_outstanding(best)))
            best = up;
    }
    m->next_pick++;
    return best;
}

/* Whether up can take one more request onto its connection now. */
bool mux_can_send(const struct mux *m, const struct mux_upstream *up)
{
    const struct service_config *cfg = mux_config(m);

    if (up->uc.state != UPSTREAM_READY || up->retiring)
        return false;
    /* A dedicated connection starts on its client's requests once those
     * on shared connections are answered: they ran first. */
    if (up->owner != NULL && mux_client_elsewhere(up->owner, up))
        return false;
    if (!up->dedicated && cfg->max_active >= 0 && m->active >= (size_t)cfg->max_active)
        return false;
    if (!cfg->funnel_async || m->x->codec->one_in_flight)
        return up->sent.len == 0;
    return buf_len(&up->uc.conn.out) < (size_t)cfg->buffer_size;
}

/* Writes req's bytes to the connection's out buffer: it is sent. */
int mux_send(struct mux *m, struct mux_upstream *up, struct mux_request *req,
             const char *data, size_t len)
{
    /* A subscribed connection takes no SELECT or HELLO (Redis refuses them
     * there, and its messages would come before their replies): it is
     * switched once out of that mode. */
    if (m->resp && !up->passthrough && (req->db != up->db || req->resp3 != up->resp3 || up->proto_unknown) &&
        mux_session_switch(m, up, req) != PMX_OK)
        return PMX_ERR;
    if (buf_append(&up->uc.conn.out, data, len) != PMX_OK)
        return PMX_ERR;
    up->dirty = true;               /* written before the loop sleeps */
    req->sent_at = reactor_now(m->x->reactor);
    mux_request_log_sent(req, up);
    if (upstream_wants_latency(m->x->upstream))
        req->sent_us = upstream_clock_us();
    if (req->info & CODEC_INFO_CLOSE) {
        /* The upstream will close after answering this one (HTTP
         * "Connection: close"): pipeline nothing behind it. */
        up->retiring = true;
    }
    req->seq = ++up->written;
    if (up->dedicated && (up->passthrough || req->kind == SESSION_KIND_SUB || req->kind == SESSION_KIND_UNSUB ||
                          req->kind == SESSION_KIND_MONITOR)) {
        /* Subscribed or monitoring: what comes back is passed on as it
         * comes (mux_session_passthrough), not matched to requests. */
        up->passthrough = true;
        up->unsub_last = req->kind == SESSION_KIND_UNSUB;
        /* The client's own SELECT or HELLO may run there now: once out of
         * this mode the connection is switched before its next request. */
        up->db = -1;
        up->proto_unknown = true;
        mux_request_leave_upstream(req);
        mux_respond(req, "", 0, false);
        return PMX_OK;
    }
    if (req->info & CODEC_INFO_NOREPLY) {
        /* Nothing will come back: answered now with nothing. The client's
         * next request must not overtake it on another connection. */
        if (req->client != NULL) {
            req->client->noreply_up = up;
            req->client->noreply_seq = req->seq;
            req->client->noreply_gen = up->generation;
        }
        mux_request_leave_upstream(req);
        mux_respond(req, "", 0, false);
        return PMX_OK;
    }
    mux_queue_push(&up->sent, req);
    /* limits.max_active counts shared connections only: a dedicated one
     * may hold a blocking command as long as its client wants. */
    if (!up->dedicated) {
        m->active++;
        req->counted = true;
    }
    return PMX_OK;
}

/* Writes waiting requests while the connection takes them: on a shared
 * connection one per client in turn (mux_sched), a client with
 * client_inflight requests in flight sitting out; on a dedicated one its
 * client's, in order. Requests of clients that left were dropped when they
 * left (shared) or are dropped here (dedicated). */
void mux_dispatch(struct mux *m, struct mux_upstream *up)
{
    size_t limit = (size_t)mux_config(m)->client_inflight;

    while (mux_waiting(up) > 0) {
        if (up->dedicated && up->wait.head->client == NULL) {
            struct mux_request *gone = mux_queue_pop(&up->wait);
            m->queued--;
            mux_request_leave_upstream(gone);
            mux_request_release(gone);
            continue;
        }
        if (!mux_can_send(m, up)) {
            if (up->uc.state == UPSTREAM_READY && mux_config(m)->max_active >= 0 &&
                m->active >= (size_t)mux_config(m)->max_active)
                m->active_full = true;
            break;
        }
        struct mux_request *req;
        if (up->dedicated) {
            req = mux_queue_pop(&up->wait);
        } else {
            struct sched_client *owner;
            struct sched_item *it = sched_next(&up->sched, limit, &owner);
            if (it == NULL)
                break;          /* every waiting client is at its limit */
            req = list_entry(it, struct mux_request, item);
            req->scheduled = true;
        }
        m->queued--;
        /* mux_send may answer and free req (noreply): take its bytes first. */
        char *data = req->data;
        req->data = NULL;
        int rc = mux_send(m, up, req, data, req->len);
        free(data);
        if (rc != PMX_OK) {
            struct mux_client *c = req->client;
            mux_request_leave_upstream(req);
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
            if (up->dedicated && c != NULL) {
                /* Its session cannot be kept whole (see mux_submit). */
                up->left_dirty = true;
                mux_client_close(c, "out of memory");
            }
        }
    }
    if (mux_waiting(up) > 0 && up->uc.state == UPSTREAM_CLOSED && !up->retiring)
        mux_upstream_open(m, up);
}

/* Fails every request in flight on up with an error reply and closes the
 * connection; requests not yet sent stay queued for the next connection. */
void mux_upstream_fail(struct mux *m, struct mux_upstream *up, const char *reason,
                       enum codec_reply kind, bool failure)
{
    char why[256];
    struct mux_request *req;

    snprintf(why, sizeof(why), "upstream %s: %s", up->uc.peer, reason);
    if (up->sent.len > 0)
        log_error("upstream #%llu %s: %s; failing %zu requests in flight",
                  (unsigned long long)up->uc.id, up->uc.peer, reason, up->sent.len);
    while ((req = mux_queue_pop(&up->sent)) != NULL) {
        if (req->counted)
            m->active--;
        mux_request_leave_upstream(req);
        req->upstream_gone = true;
        mux_reply(m, req, kind, why);
        kind = kind == CODEC_REPLY_TIMEOUT ? CODEC_REPLY_SERVER_ERROR : kind;
    }
    if (up->owner != NULL && !up->owner->closed && (up->passthrough || session_pinned(&up->owner->session))) {
        /* Its transaction, subscriptions or watches are gone with the
         * connection: the client cannot go on as if they were there. */
        struct mux_client *c = up->owner;
        up->owner = NULL;
        c->dedicated = NULL;
        mux_client_close(c, "its dedicated upstream connection failed");
    }
    up->passthrough = false;
    up->unsub_last = false;
    up->parsing = false;
    up->draining = false;
    up->scanned = 0;
    up->retiring = false;
    up->dirty = false;
    up->generation++;
    buf_free(&up->in);
    upstream_conn_close(&up->uc, failure ? UPSTREAM_CLOSE_FAILED : UPSTREAM_CLOSE_OK, reason);
    /* Requests not yet written go out on a new connection, to whichever
     * target the balancer picks now. */
    if (mux_waiting(up) > 0 || (mux_config(m)->warmup && !up->dedicated && !m->x->shutting_down))
        mux_upstream_open(m, up);
}

/* Reads responses from in: each complete one answers the head of the sent
 * queue. */
static void mux_upstream_parse(struct mux *m, struct mux_upstream *up, struct buf *in)
{
    const struct codec_ops *codec = m->x->codec;
    const struct service_config *cfg = mux_config(m);

    while (buf_len(in) > up->scanned) {
        struct mux_request *req = up->sent.head;
        if (req == NULL && !up->passthrough) {
            mux_upstream_fail(m, up, "sent bytes nobody asked for", CODEC_REPLY_SERVER_ERROR, true);
            return;
        }
        if (!up->parsing) {
            uint32_t info = req != NULL ? req->info : 0;
            if (up->dedicated)          /* subscribed in RESP3: messages are pushes */
                info |= CODEC_INFO_PRIVATE(RESP_INFO_PUSH_OK);
            codec->response_begin(&up->parser, info);
            up->parsing = true;
            up->draining = false;
            up->scanned = 0;
        }
        size_t used = 0;
        int rc = codec->parse_response(&up->parser, buf_start(in) + up->scanned,
                                       buf_len(in) - up->scanned, &used);
        if (rc == CODEC_ERROR) {
            char why[128];
            snprintf(why, sizeof(why), "malformed response (%s)", up->parser.error ? up->parser.error : "?");
            mux_upstream_fail(m, up, why, CODEC_REPLY_SERVER_ERROR, true);
            return;
        }
        up->scanned += used;
        if (up->scanned > (size_t)cfg->max_message && !up->draining) {
            /* Too large to hold: read it to its end and drop it, so that
             * only its own request fails and the connection stays usable. */
            log_error("upstream #%llu %s: response larger than max_message (%ld bytes); dropping it",
                      (unsigned long long)up->uc.id, up->uc.peer, cfg->max_message);
            up->draining = true;
        }
        if (up->draining) {
            buf_consume(in, up->scanned);
            up->scanned = 0;
        }
        if (rc == CODEC_MORE)
            return;
        if (req == NULL) {
            /* Passthrough: a message or reply for the subscribed client. */
            up->parsing = false;
            if (!up->draining)
                mux_session_passthrough(m, up, buf_start(in), up->scanned);
            buf_consume(in, up->scanned);
            up->scanned = 0;
            up->draining = false;
            continue;
        }
        if (req->expect != 0 && (up->draining || !mux_session_reply_ok(req->expect, buf_start(in), up->scanned))) {
            /* The upstream refused to be put in a client's state (SELECT,
             * HELLO, AUTH): nothing may run on it. */
            char why[128];
            size_t n = up->draining ? 0 : PMX_MIN(up->scanned, 80);
            while (n > 0 && (buf_start(in)[n - 1] == '\n' || buf_start(in)[n - 1] == '\r'))
                n--;
            snprintf(why, sizeof(why), "session command refused: %.*s", (int)n, buf_start(in));
            mux_upstream_fail(m, up, why, CODEC_REPLY_SERVER_ERROR, true);
            return;
        }
        /* A whole response: hand it to its client and move on. */
        mux_queue_pop(&up->sent);
        if (req->counted)
            m->active--;
        if (m->active_full)
            m->kick = true;
        up->answered = req->seq;
        up->parsing = false;
        upstream_conn_answered(&up->uc);
        if (!up->proved) {
            /* The first response proves the connection: the target's
             * failure count and the backoff start over. */
            up->proved = true;
            upstream_conn_ok(&up->uc);
        }
        if (req->sent_us != 0) {
            uint64_t us = upstream_clock_us() - req->sent_us;
            upstream_conn_observe(&up->uc, (uint32_t)PMX_MIN(us, UINT32_MAX));
        }
        bool retire = up->parser.close_after;
        mux_request_leave_upstream(req);
        if (up->draining)
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "response larger than max_message");
        else if (req->abort_exec)
            mux_respond(req, MUX_EXECABORT, sizeof(MUX_EXECABORT) - 1, false);
        else
            mux_respond(req, buf_start(in) + up->parser.skip, up->scanned - up->parser.skip, false);
        buf_consume(in, up->scanned);
        up->scanned = 0;
        up->draining = false;
        if (retire) {
            /* The upstream said it will close: send nothing more on it. */
            up->retiring = true;
        }
    }
}

static void mux_upstream_io(struct upstream_conn *uc, int mask)
{
    struct mux_upstream *up = uc->data;
    struct mux *m = up->m;
    struct conn *sock = upstream_conn_socket(uc);
    const struct codec_ops *codec = m->x->codec;

    up->last_active = reactor_now(m->x->reactor);
    if (mask & REACTOR_WRITABLE) {
        if (conn_flush(sock) == PMX_ERR) {
            mux_upstream_fail(m, up, strerror(errno), CODEC_REPLY_SERVER_ERROR, true);
            return;
        }
        if (buf_len(&sock->out) == 0)
            upstream_conn_watch(uc, REACTOR_READABLE);
    }
    if (!(mask & REACTOR_READABLE))
        goto dispatch;
    struct buf view;
    struct buf *in;
    ssize_t n = mux_read(m, sock, &up->in, &view, &in);
    if (n == PMX_AGAIN)
        goto dispatch;
    if (n == PMX_ERR) {
        mux_upstream_fail(m, up, strerror(errno), CODEC_REPLY_SERVER_ERROR, true);
        return;
    }
    if (n == 0) {
        /* Closed by the upstream: the end of a response that runs until
         * close, an idle connection dropped, or a failure. */
        if (up->parsing && up->parser.until_close && up->sent.head) {
            struct mux_request *req = mux_queue_pop(&up->sent);
            if (req->counted)
                m->active--;
            up->parsing = false;
            mux_request_leave_upstream(req);
            /* Its client can only tell where the body ends by the close. */
            if (up->draining)
                mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "response larger than max_message");
            else
                mux_respond(req, buf_start(&up->in) + up->parser.skip, up->scanned - up->parser.skip, true);
            buf_consume(&up->in, up->scanned);
            up->scanned = 0;
        }
        bool failure = up->sent.len > 0 || buf_len(&up->in) > 0;
        mux_upstream_fail(m, up, "connection closed by upstream", CODEC_REPLY_SERVER_ERROR, failure);
        return;
    }
    if (codec->by_read) {
        /* raw: this read is the whole response to the head request. */
        up->parsing = false;
        up->scanned = 0;
    }
    mux_upstream_parse(m, up, in);
    if (uc->state != UPSTREAM_READY)
        return;
    if (mux_keep(&up->in, in) != PMX_OK) {
        mux_upstream_fail(m, up, "out of memory", CODEC_REPLY_SERVER_ERROR, true);
        return;
    }
    if (up->retiring && up->sent.len == 0) {
        mux_upstream_fail(m, up, "retired", CODEC_REPLY_SERVER_ERROR, false);
        return;
    }
dispatch:
    mux_dispatch(m, up);
}

static void mux_upstream_connected(struct upstream_conn *uc)
{
    struct mux_upstream *up = uc->data;

    up->last_active = reactor_now(up->m->x->reactor);
    up->proved = false;
    upstream_conn_watch(uc, REACTOR_READABLE);
    if (up->m->resp && mux_session_connected(up->m, up) != PMX_OK) {
        mux_upstream_fail(up->m, up, "out of memory", CODEC_REPLY_SERVER_ERROR, false);
        return;
    }
    mux_dispatch(up->m, up);
}

/* Fails the requests waiting for up's connection, which could not be
 * opened (reason, for the log): nothing waits for a dead target. Clients
 * hear "no upstream available" whatever the cause. */
static void mux_fail_waiting(struct mux *m, struct mux_upstream *up, const char *reason)
{
    struct mux_request *req;

    struct sched_client *owner;
    struct sched_item *it;

    if (mux_waiting(up) > 0)
        log_error("service %s: no upstream connection (%s); failing %zu requests not yet sent",
                  mux_config(m)->name, reason, mux_waiting(up));
    while ((req = mux_queue_pop(&up->wait)) != NULL) {
        m->queued--;
        free(req->data);
        req->data = NULL;
        mux_request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, UPSTREAM_NONE_USABLE);
    }
    while ((it = sched_pop_any(&up->sched, &owner)) != NULL) {
        req = list_entry(it, struct mux_request, item);
        m->queued--;
        free(req->data);
        req->data = NULL;
        mux_request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, UPSTREAM_NONE_USABLE);
    }
}

static void mux_upstream_failed(struct upstream_conn *uc, const char *reason)
{
    struct mux_upstream *up = uc->data;
    struct mux *m = up->m;

    mux_fail_waiting(m, up, reason);
    if (up->owner != NULL && !up->owner->closed && session_pinned(&up->owner->session)) {
        /* Its pinned requests failed: what follows must not run without
         * them (outside the transaction). */
        struct mux_client *c = up->owner;
        up->owner = NULL;
        c->dedicated = NULL;
        mux_client_close(c, "no dedicated upstream connection");
    }
    if (mux_config(m)->warmup && !up->dedicated && !m->x->shutting_down)
        mux_upstream_open(m, up);
}

static const struct upstream_conn_events mux_upstream_events = {
    .connected = mux_upstream_connected,
    .io = mux_upstream_io,
    .failed = mux_upstream_failed,
};

/* Opens up's connection; with no target usable, what waits for it fails
 * at once. */
void mux_upstream_open(struct mux *m, struct mux_upstream *up)
{
    if (up->uc.state != UPSTREAM_CLOSED)
        return;
    if (upstream_conn_open(&up->uc, NULL, 0) == PMX_OK)
        return;
    if (errno == EMFILE || errno == ENFILE)
        exchange_out_of_fds(m->x);
    mux_fail_waiting(m, up, errno == EMFILE || errno == ENFILE ? "out of file descriptors" : UPSTREAM_NONE_USABLE);
}

void mux_upstream_init(struct mux *m, struct mux_upstream *up)
{
    up->m = m;
    buf_init(&up->in);
    sched_upstream_init(&up->sched);
    upstream_conn_init(m->x->upstream, &up->uc, &mux_upstream_events, up);
}

void mux_upstream_release(struct mux_upstream *up)
{
    upstream_conn_release(&up->uc);
    buf_free(&up->in);
}

void mux_upstream_flush(struct mux *m, struct mux_upstream *up)
{
    /* A flush that empties the buffer lets more waiting requests in,
     * which must go out before the loop sleeps. */
    while (up->dirty) {
        up->dirty = false;
        if (up->uc.state != UPSTREAM_READY)
            break;
        int rc = conn_flush(upstream_conn_socket(&up->uc));
        if (rc == PMX_ERR) {
            mux_upstream_fail(m, up, strerror(errno), CODEC_REPLY_SERVER_ERROR, true);
            break;
        }
        up->last_active = reactor_now(m->x->reactor);
        upstream_conn_watch(&up->uc, rc == PMX_AGAIN ? REACTOR_READABLE | REACTOR_WRITABLE : REACTOR_READABLE);
        if (rc == PMX_OK)
            mux_dispatch(m, up);
    }
}

void mux_upstreams_flush(struct mux *m)
{
    if (m->resp)
        mux_session_sweep(m);
    if (m->kick) {
        /* limits.max_active: a response on one connection lets a request
         * waiting on another go. */
        m->kick = false;
        m->active_full = false;
        for (int i = 0; i < m->nups; i++)
            mux_dispatch(m, &m->ups[i]);
    }
    for (int i = 0; i < m->nups; i++)
        mux_upstream_flush(m, &m->ups[i]);
}

/* A connection whose target was removed, or that is on a backup target
 * while a primary is usable again, is replaced: it takes no more requests,
 * closes once its responses are in, and the next one goes where the
 * balancer says. */
static void mux_upstream_replace_misplaced(struct mux *m, struct mux_upstream *up)
{
    if (up->retiring || !upstream_conn_misplaced(&up->uc))
        return;
    log_info("upstream #%llu %s: %s; replacing it", (unsigned long long)up->uc.id, up->uc.peer,
             up->uc.target < 0 ? "its target was removed" : "on a backup target while a primary is up");
    if (up->sent.len == 0 && buf_len(&up->uc.conn.out) == 0)
        mux_upstream_fail(m, up, "replaced", CODEC_REPLY_SERVER_ERROR, false);
    else
        up->retiring = true;
}

void mux_upstreams_tick(struct mux *m, uint64_t now)
{
    const struct service_config *cfg = mux_config(m);

    if (m->resp)
        mux_session_tick(m, now);
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        mux_expire_queue(m, up, now);
        mux_upstream_replace_misplaced(m, up);
        if (up->uc.state != UPSTREAM_READY)
            continue;
        if (cfg->response_timeout > 0 && up->sent.head &&
            now - up->sent.head->sent_at >= (uint64_t)cfg->response_timeout) {
            mux_upstream_fail(m, up, "response timeout", CODEC_REPLY_TIMEOUT, true);
        } else if (cfg->inactive_timeout > 0 && mux_outstanding(up) == 0 &&
                   buf_len(&up->uc.conn.out) == 0 && now - up->last_active >= (uint64_t)cfg->inactive_timeout) {
            /* Reopened on demand by the next request. */
            mux_upstream_fail(m, up, "inactive timeout", CODEC_REPLY_SERVER_ERROR, false);
        }
    }
}

/* Connections closed for lack of a usable target reopen if something waits
 * for them (warmup keeps the whole pool open). */
void mux_upstreams_reopen(struct mux *m)
{
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        mux_upstream_replace_misplaced(m, up);
        if (up->uc.state == UPSTREAM_CLOSED && (mux_waiting(up) > 0 || mux_config(m)->warmup) &&
            !m->x->shutting_down)
            mux_upstream_open(m, up);
    }
}
