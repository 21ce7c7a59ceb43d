/* FIFO/funnel clients: reading and framing their requests, delivering the
 * responses in the order the requests came, and the limits that keep one
 * client from holding memory or the others (output_limit, pipeline depth,
 * limits.request_memory). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"

static void mux_client_event(struct reactor *r, int fd, void *data, int mask);

static void mux_client_mark_dirty(struct mux_client *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->dirty_next = c->m->dirty_clients;
    c->m->dirty_clients = c;
}

/*
 * The request memory budget (limits.request_memory): the buffers holding
 * the partial requests of all clients together. Once it is spent, clients
 * that hold a partial request are not read (back-pressure: the kernel
 * buffers fill and they stop sending), while clients holding nothing are
 * still read, since their whole requests need no buffer. The janitor then
 * refuses the clients holding the most until the total is under budget
 * (mux_enforce_request_memory), so that paused clients cannot hold it
 * forever.
 */
static void mux_client_account(struct mux_client *c)
{
    struct mux *m = c->m;

    m->partial_bytes = m->partial_bytes - c->counted + c->in.cap;
    c->counted = c->in.cap;
}

static bool mux_over_budget(const struct mux *m)
{
    return m->partial_bytes >= (size_t)mux_config(m)->request_memory;
}

/* Whether c may be read as far as the request memory budget goes. */
static bool mux_client_within_budget(const struct mux_client *c)
{
    return c->counted == 0 || !mux_over_budget(c->m);
}

/* Disowns every outstanding request of c: responses still to come are
 * read and dropped. */
static void mux_client_drop_requests(struct mux_client *c)
{
    struct mux_request *next;
    struct sched_item *it;

    /* Requests not yet written are dropped: nobody wants their answer. */
    while ((it = sched_pop(&c->sched)) != NULL) {
        struct mux_request *req = list_entry(it, struct mux_request, item);
        c->m->queued--;
        free(req->data);
        req->data = NULL;
        mux_request_leave_upstream(req);
    }

    for (struct mux_request *req = c->head; req; req = next) {
        next = req->cnext;
        if (!req->done)
            mux_request_logged(c->m, req, c->peer, NULL, 0, true);
        if (req->up != NULL)
            c->nupstream--;
        req->client = NULL;
        req->cnext = NULL;
        mux_request_release(req);
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    c->held = 0;
    c->affinity = NULL;
}

/* Closes the client now; the struct itself is freed before the loop
 * sleeps, so callers up the stack may still test c->closed. */
void mux_client_close(struct mux_client *c, const char *reason)
{
    struct mux *m = c->m;

    if (c->closed)
        return;
    log_info("close #%llu client %s: %s (from client %llu, to client %llu bytes, %zu requests outstanding)",
             (unsigned long long)c->id, c->peer, reason, (unsigned long long)c->conn.bytes_in,
             (unsigned long long)c->conn.bytes_out, c->npending);
    /* Outstanding requests stay in their upstream queues, ownerless: their
     * responses are read and dropped, which keeps the upstream in sync. */
    stats_client_left(&m->x->stats, c->conn.bytes_in, c->conn.bytes_out);
    mux_session_client_left(c);
    mux_client_drop_requests(c);
    if (c->dirty) {
        for (struct mux_client **pc = &m->dirty_clients; *pc; pc = &(*pc)->dirty_next) {
            if (*pc == c) {
                *pc = c->dirty_next;
                break;
            }
        }
        c->dirty = false;
    }
    conn_close(&c->conn, m->x->reactor);
    buf_free(&c->in);
    mux_client_account(c);
    if (c->mem_paused) {
        c->mem_paused = false;
        m->mem_paused--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        m->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->closed = true;
    script_unref(c->script);
    c->script = NULL;
    c->next = m->graveyard;
    m->graveyard = c;
    exchange_client_removed(m->x);
}

/* Appends a response to the client's output, enforcing output_limit.
 * Returns PMX_ERR when the client was closed. */
static int mux_client_output(struct mux_client *c, const char *data, size_t len)
{
    const struct service_config *cfg = mux_config(c->m);

    size_t pending = buf_len(&c->conn.out) + c->held;

    /* One response is always taken (max_message bounds it); what piles up
     * behind unread ones is what the limit is for. */
    if (pending > 0 && pending + len > (size_t)cfg->output_limit) {
        mux_client_close(c, "output limit reached (client does not read its responses)");
        return PMX_ERR;
    }
    if (buf_append(&c->conn.out, data, len) != PMX_OK) {
        mux_client_close(c, "out of memory");
        return PMX_ERR;
    }
    if (len > 0)
        mux_client_mark_dirty(c);
    return PMX_OK;
}

/* HTTP "Expect: 100-continue": the client holds back the body of the
 * request being framed until it is told to go on. Forwarding waits for the
 * whole request, so the go-ahead comes from here, once every earlier
 * response has been passed on (it must not overtake them). Clearing
 * CODEC_INFO_CONTINUE records that it was sent: the codec then drops the
 * upstream's own "100 Continue" from the response (parser.skip), since
 * some clients (Node's http) act on each one. Returns PMX_ERR when the
 * client was closed. */
static int mux_client_continue(struct mux_client *c)
{
    char reply[MUX_REPLY_MAX];

    if (!(c->parser.info & CODEC_INFO_CONTINUE) || c->head != NULL || c->closing)
        return PMX_OK;
    c->parser.info &= ~CODEC_INFO_CONTINUE;
    size_t len = c->m->x->codec->reply(CODEC_REPLY_CONTINUE, NULL, reply, sizeof(reply));
    return mux_client_output(c, reply, len);
}

/* Passes on the responses at the front of the client's list that are
 * known, in order. Returns PMX_ERR when the client was closed. */
static int mux_client_deliver(struct mux_client *c)
{
    while (c->head && c->head->done) {
        struct mux_request *req = c->head;
        c->head = req->cnext;
        if (c->head == NULL)
            c->tail = NULL;
        c->npending--;
        c->held -= buf_len(&req->resp);
        req->client = NULL;
        req->cnext = NULL;
        bool close_after = req->close_client;
        int rc = mux_client_output(c, buf_start(&req->resp), buf_len(&req->resp));
        mux_request_release(req);
        if (rc != PMX_OK)
            return PMX_ERR;
        if (close_after) {
            /* Nothing after this request will be answered. */
            c->closing = true;
            mux_client_drop_requests(c);
            break;
        }
    }
    return mux_client_continue(c);
}

/* The response to req is data[0..len), or with close_client nothing more:
 * the client is closed after the responses before it. */
/* The Lua on_response hook of req, with its response data[0..len). */
static void mux_script_response(struct mux_request *req, const char *data, size_t len)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    script_on_response(req->hook_script, req->hook_ref, stats_status_names[req->status], data, len,
                       now > req->start_us ? now - req->start_us : 0);
    script_unref(req->hook_script);
    req->hook_script = NULL;
}

void mux_respond(struct mux_request *req, const char *data, size_t len, bool close_client)
{
    struct mux_client *c = req->client;

    if (req->hook_script != NULL)
        mux_script_response(req, data, len);
    req->done = true;
    stats_request_done(req->stats, req->status, req->start_us);
    if (c != NULL)
        mux_request_logged(c->m, req, c->peer, data, len, false);
    req->close_client = req->close_client || close_client;
    if (c == NULL) {
        mux_request_release(req);
        return;
    }
    if (c->head == req && !req->close_client && buf_len(&req->resp) == 0) {
        /* The usual case: the oldest request; no copy into req->resp. */
        c->head = req->cnext;
        if (c->head == NULL)
            c->tail = NULL;
        c->npending--;
        req->client = NULL;
        req->cnext = NULL;
        mux_request_release(req);
        if (mux_client_output(c, data, len) == PMX_OK && mux_client_deliver(c) == PMX_OK)
            mux_client_update(c);
        return;
    }
    if (buf_append(&req->resp, data, len) != PMX_OK) {
        mux_client_close(c, "out of memory");
        return;
    }
    c->held += len;
    if (mux_client_deliver(c) == PMX_OK)
        mux_client_update(c);
}

/* Answers req with a reply made here (error, quit). Codecs without such a
 * reply (line, raw) close the client instead. */
void mux_reply(struct mux *m, struct mux_request *req, enum codec_reply kind, const char *reason)
{
    char reply[MUX_REPLY_MAX];
    size_t len = m->x->codec->reply(kind, reason, reply, sizeof(reply));
    bool close = len == 0 || kind == CODEC_REPLY_QUIT || kind == CODEC_REPLY_CLIENT_ERROR;

    req->status = kind <= CODEC_REPLY_BUSY ? (uint8_t)(STATS_CLIENT_ERROR + kind) : STATS_OK;

    /* Busy replies come by the thousand in an outage or under a limit;
     * what caused them is logged once where it happened. */
    if (req->client && kind == CODEC_REPLY_BUSY)
        log_debug("#%llu client %s: %s", (unsigned long long)req->client->id, req->client->peer, reason);
    else if (req->client && kind != CODEC_REPLY_QUIT)
        log_info("#%llu client %s: %s", (unsigned long long)req->client->id, req->client->peer, reason);
    mux_respond(req, reply, len, close);
}

/* A request that cannot be framed (malformed or too large): the client
 * gets an error after the responses it is owed and is closed. */
static void mux_client_refuse(struct mux *m, struct mux_client *c, const char *why)
{
    struct mux_request *req = calloc(1, sizeof(*req));

    c->closing = true;
    buf_free(&c->in);
    mux_client_account(c);
    c->scanned = 0;
    if (req == NULL) {
        mux_client_close(c, "out of memory");
        return;
    }
    buf_init(&req->resp);
    req->client = c;
    req->start_us = stats_request_start(req->stats = &m->x->stats);
    if (c->tail)
        c->tail->cnext = req;
    else
        c->head = req;
    c->tail = req;
    c->npending++;
    mux_reply(m, req, CODEC_REPLY_CLIENT_ERROR, why);
}

/* Frames the requests of c held in `in` (c->in or the scratch view); c may
 * be closed on return. */
static void mux_client_parse(struct mux *m, struct mux_client *c, struct buf *in)
{
    const struct codec_ops *codec = m->x->codec;
    const struct service_config *cfg = mux_config(m);

    while (!c->closing && buf_len(in) > c->scanned) {
        size_t used = 0;
        int rc = codec->parse_request(&c->parser, buf_start(in) + c->scanned,
                                      buf_len(in) - c->scanned, &used);
        if (rc == CODEC_ERROR) {
            char why[128];
            snprintf(why, sizeof(why), "malformed request (%s)", c->parser.error ? c->parser.error : "?");
            mux_client_refuse(m, c, why);
            return;
        }
        c->scanned += used;
        if (c->scanned > (size_t)cfg->max_message ||
            (rc == CODEC_MORE && buf_len(in) > (size_t)cfg->max_message)) {
            mux_client_refuse(m, c, "request larger than max_message");
            return;
        }
        if (rc == CODEC_MORE) {
            /* A client waiting for "100 Continue" hears at once that its
             * announced body is too large, before it sends it. */
            if ((c->parser.info & CODEC_INFO_CONTINUE) &&
                c->scanned + (uint64_t)c->parser.remaining > (uint64_t)cfg->max_message) {
                mux_client_refuse(m, c, "request larger than max_message");
                return;
            }
            mux_client_continue(c);
            return;
        }
        size_t len = c->scanned;
        uint32_t info = c->parser.info;
        /* Why the codec refuses it, naming the command, if it said. */
        c->refusal = (info & CODEC_INFO_UNSUPPORTED) ? c->parser.error : NULL;
        c->scanned = 0;
        codec->request_begin(&c->parser);
        if (!(info & CODEC_INFO_SKIP)) {
            mux_submit(m, c, buf_start(in), len, info);
            if (c->closed)
                return;
        }
        buf_consume(in, len);
    }
}

/* Decides whether c is finished, and whether to read from it. */
void mux_client_update(struct mux_client *c)
{
    struct mux *m = c->m;
    const struct service_config *cfg = mux_config(m);

    if (c->closed)
        return;
    if ((c->closing || m->x->shutting_down) && c->head == NULL && buf_len(&c->conn.out) == 0) {
        mux_client_close(c, c->conn.eof ? "client closed" : c->closing ? "closing" : "shutdown");
        return;
    }
    mux_client_account(c);
    bool reading = !c->closing && !c->conn.eof && !m->x->shutting_down &&
                   buf_len(&c->conn.out) < (size_t)cfg->buffer_size && c->npending < MUX_CLIENT_PIPELINE;
    bool paused = reading && !mux_client_within_budget(c);
    if (paused != c->mem_paused) {
        c->mem_paused = paused;
        if (paused)
            m->mem_paused++;
        else
            m->mem_paused--;
    }
    if (!reading || paused) {
        reactor_del(m->x->reactor, c->conn.fd, REACTOR_READABLE);
    } else if (reactor_add(m->x->reactor, c->conn.fd, REACTOR_READABLE, mux_client_event, c) != PMX_OK) {
        log_error_errno("#%llu epoll", (unsigned long long)c->id);
        mux_client_close(c, "epoll error");
    }
}

void mux_client_flush(struct mux_client *c)
{
    struct reactor *r = c->m->x->reactor;
    int rc = conn_flush(&c->conn);

    if (rc == PMX_ERR) {
        log_info_errno("#%llu client %s write", (unsigned long long)c->id, c->peer);
        mux_client_close(c, "client write error");
        return;
    }
    if (rc == PMX_AGAIN) {
        if (reactor_add(r, c->conn.fd, REACTOR_WRITABLE, mux_client_event, c) != PMX_OK)
            mux_client_close(c, "epoll error");
        return;
    }
    reactor_del(r, c->conn.fd, REACTOR_WRITABLE);
    mux_client_update(c);
}

static void mux_client_event(struct reactor *r, int fd, void *data, int mask)
{
    struct mux_client *c = data;
    struct mux *m = c->m;

    if (mask & REACTOR_WRITABLE) {
        mux_client_flush(c);
        if (c->closed)
            return;
    }
    if ((mask & REACTOR_READABLE) && !c->closing && !c->conn.eof && mux_client_within_budget(c)) {
        struct buf view;
        struct buf *in;
        ssize_t n = mux_read(m, &c->conn, &c->in, &view, &in);
        if (n == PMX_ERR) {
            log_info_errno("#%llu client %s read", (unsigned long long)c->id, c->peer);
            mux_client_close(c, "client read error");
            return;
        }
        if (n == 0) {
            /* Half-closed: answer what it asked, then close. */
            c->closing = true;
        } else if (n > 0) {
            mux_client_parse(m, c, in);
            if (c->closed)
                return;
            if (c->closing) {
                buf_free(&c->in);
            } else if (mux_keep(&c->in, in) != PMX_OK) {
                mux_client_close(c, "out of memory");
                return;
            }
            buf_release(&c->in);
        }
    }
    mux_client_update(c);
}

void mux_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
                socklen_t addr_len)
{
    struct mux *m = x->priv;
    struct mux_client *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        log_error("client %s: out of memory, closing", peer);
        close(fd);
        return;
    }
    c->id = conn_next_id();
    c->m = m;
    c->script = script_ref(x->script);
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    conn_init(&c->conn, fd);
    sched_client_init(&c->sched);
    buf_init(&c->in);
    x->codec->request_begin(&c->parser);
    c->next = m->clients;
    if (m->clients)
        m->clients->prev = c;
    m->clients = c;
    exchange_client_added(x);
    log_info("accept #%llu client %s", (unsigned long long)c->id, c->peer);
    mux_client_update(c);
}

/* Refuses the clients holding the largest partial requests until the
 * budget is no longer spent, then reads the paused ones again. */
void mux_enforce_request_memory(struct mux *m)
{
    struct mux_client *next;

    while (mux_over_budget(m)) {
        struct mux_client *big = NULL;
        for (struct mux_client *c = m->clients; c; c = c->next)
            if (c->counted > 0 && (big == NULL || c->counted > big->counted))
                big = c;
        if (big == NULL)
            break;
        log_error("#%llu client %s: holds %zu bytes of partial request; request memory budget (%ld) spent, refusing it",
                  (unsigned long long)big->id, big->peer, big->counted, mux_config(m)->request_memory);
        stats_refused(&m->x->stats, STATS_REFUSED_REQUEST_MEMORY);
        mux_client_refuse(m, big, "request memory limit reached");
        mux_client_update(big);
    }
    if (m->mem_paused == 0)
        return;
    for (struct mux_client *c = m->clients; c; c = next) {
        next = c->next;
        if (c->mem_paused)
            mux_client_update(c);
    }
}
