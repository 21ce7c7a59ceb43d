/* FIFO and funnel modes: many clients multiplexed over a pool of upstream
 * connections (one for FIFO, N for funnel), with a codec framing requests
 * and responses. FIFO is funnel with a single connection, so both modes
 * share this file and differ only in their pool size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "log.h"
#include "reactor.h"
#include "upstream.h"

/* Most bytes read from one socket per event. */
#define MUX_CHUNK (64 * 1024)
/* A client with this many requests outstanding is not read until some are
 * answered: bounds what one pipelining client can queue. */
#define MUX_CLIENT_PIPELINE 1024
/* Room for a locally generated error reply. */
#define MUX_REPLY_MAX 512

/*
 *   clients                      requests                     upstreams
 *
 *   client A --in--> [parser] --> req A1 --+                 +-- wait queue --+
 *                                          +-> pick upstream-+                +--> conn.out ==> upstream 1
 *   client B --in--> [parser] --> req B1 --+   (affinity,    +-- sent queue <-+
 *                                              fewest        |   A1, B1, ...  |
 *                                              outstanding)  |                |
 *   client A <--out-- in client order <---- response of head of sent queue <--+ <== in
 *
 * Every request is in its client's list (the order responses must go back
 * in) and in one upstream queue: "wait" until its bytes are written to the
 * connection's out buffer, then "sent" until its response is read. The
 * response read from an upstream always answers the head of that
 * upstream's sent queue. A request is freed once it has left both lists.
 *
 * A client's requests all go to the same upstream while any of them is
 * outstanding, so that one client's pipelined commands are executed in the
 * order it sent them (a write is seen by its following read); a client with
 * nothing outstanding goes to the upstream with the fewest outstanding
 * requests. Responses are still delivered strictly in client order, since
 * errors generated here (queue full, timeout) may be known before earlier
 * responses arrive.
 *
 * Requests and responses are buffered whole (bounded by max_message) before
 * they are passed on, so a failure never leaves half a message on a client
 * connection: the client gets an error reply in its protocol instead.
 */

struct mux_client;
struct mux_upstream;

struct mux_request {
    struct mux_client *client;      /* NULL once the client has left: swallow */
    struct mux_upstream *up;        /* queued or in flight there; NULL if not */
    char *data;                     /* bytes to send, while waiting (owned) */
    size_t len;
    uint32_t info;                  /* CODEC_INFO_* from the request parser */
    bool done;                      /* response known: in resp, or a close */
    bool close_client;              /* close the client after this response */
    struct buf resp;                /* response held for earlier requests */
    uint64_t queued_at;
    uint64_t sent_at;
    uint64_t sent_us;               /* for least_latency samples only */
    uint64_t seq;                   /* its place among the requests written to its upstream */
    struct mux_request *next;       /* in the upstream's wait or sent queue */
    struct mux_request *cnext;      /* in the client's list */
};

struct mux_queue {
    struct mux_request *head;
    struct mux_request *tail;
    size_t len;
};

struct mux_client {
    uint64_t id;
    char peer[NET_ADDR_MAX];
    struct conn conn;               /* conn.out: responses to write */
    struct buf in;                  /* request bytes not yet framed */
    size_t counted;                 /* in.cap as counted in m->partial_bytes */
    bool mem_paused;                /* not read: the request memory budget is spent */
    struct codec_parser parser;
    size_t scanned;                 /* bytes of in the parser has consumed */
    struct mux_request *head;       /* outstanding requests, in order */
    struct mux_request *tail;
    size_t npending;                /* requests in the list */
    size_t held;                    /* response bytes held in requests */
    struct mux_upstream *affinity;  /* where its requests go while any is out */
    size_t nupstream;               /* its requests in upstream queues */
    /* Its last noreply request, written to noreply_up (while that
     * connection's generation is noreply_gen) as request noreply_seq: until
     * a later request there is answered, it may not have run yet, so the
     * client's next request must follow it on that connection. */
    struct mux_upstream *noreply_up;
    uint64_t noreply_seq;
    uint64_t noreply_gen;
    bool closing;                   /* read no more; close once flushed */
    bool closed;                    /* gone; freed before the loop sleeps */
    bool dirty;                     /* out has bytes to flush before sleep */
    struct mux *m;
    struct mux_client *prev;
    struct mux_client *next;
    struct mux_client *dirty_next;
};

struct mux_upstream {
    struct upstream_conn uc;        /* the connection, owned by the upstream layer */
    struct buf in;                  /* response bytes read, not yet handled */
    uint64_t last_active;           /* last byte in or out (ms) */
    struct mux *m;
    struct mux_queue wait;
    struct mux_queue sent;
    struct codec_parser parser;     /* response to the head of sent */
    bool parsing;                   /* parser holds a response in progress */
    bool draining;                  /* ... larger than max_message: dropped as parsed */
    size_t scanned;                 /* bytes of in the parser consumed */
    bool retiring;                  /* upstream will close: send no more */
    bool dirty;
    uint64_t written;               /* requests written so far (each gets the next seq) */
    uint64_t answered;              /* seq of the latest request answered: all before it ran */
    uint64_t generation;            /* incremented each time the connection closes */
};

struct mux {
    struct exchange *x;
    struct mux_upstream *ups;
    int nups;
    struct mux_client *clients;
    struct mux_client *dirty_clients;
    struct mux_client *graveyard;   /* closed clients, freed before sleep */
    size_t queued;                  /* requests waiting, all upstreams */
    size_t active;                  /* requests sent and not answered, all upstreams */
    bool active_full;               /* a send waited for limits.max_active */
    bool kick;                      /* ... and a response freed a place: dispatch every upstream */
    size_t partial_bytes;           /* memory of all clients' partial requests (their in) */
    size_t mem_paused;              /* clients not read because of it */
    unsigned next_pick;
    uint64_t started;
    char *scratch;                  /* reads land here first: see mux_read */
};

static void mux_client_event(struct reactor *r, int fd, void *data, int mask);
static void mux_client_update(struct mux_client *c);
static void mux_dispatch(struct mux *m, struct mux_upstream *up);
static void mux_upstream_open(struct mux *m, struct mux_upstream *up);

static const struct service_config *mux_config(const struct mux *m)
{
    return m->x->config;
}

/* ---- queues and request lifetime ---------------------------------------- */

static void queue_push(struct mux_queue *q, struct mux_request *req)
{
    req->next = NULL;
    if (q->tail)
        q->tail->next = req;
    else
        q->head = req;
    q->tail = req;
    q->len++;
}

static struct mux_request *queue_pop(struct mux_queue *q)
{
    struct mux_request *req = q->head;

    if (req == NULL)
        return NULL;
    q->head = req->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->len--;
    req->next = NULL;
    return req;
}

static void request_free(struct mux_request *req)
{
    free(req->data);
    buf_free(&req->resp);
    free(req);
}

/* Frees req once neither its client nor an upstream holds it. */
static void request_release(struct mux_request *req)
{
    if (req->client == NULL && req->up == NULL)
        request_free(req);
}

/* req has left its upstream queue (popped by the caller). The caller then
 * answers it (mux_respond) or releases it. */
static void request_leave_upstream(struct mux_request *req)
{
    struct mux_client *c = req->client;

    req->up = NULL;
    if (c != NULL && --c->nupstream == 0)
        c->affinity = NULL;
}

/* ---- clients ------------------------------------------------------------ */

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

    for (struct mux_request *req = c->head; req; req = next) {
        next = req->cnext;
        if (req->up != NULL)
            c->nupstream--;
        req->client = NULL;
        req->cnext = NULL;
        request_release(req);
    }
    c->head = c->tail = NULL;
    c->npending = 0;
    c->held = 0;
    c->affinity = NULL;
}

/* Closes the client now; the struct itself is freed before the loop
 * sleeps, so callers up the stack may still test c->closed. */
static void mux_client_close(struct mux_client *c, const char *reason)
{
    struct mux *m = c->m;

    if (c->closed)
        return;
    log_info("close #%llu client %s: %s (from client %llu, to client %llu bytes, %zu requests outstanding)",
             (unsigned long long)c->id, c->peer, reason, (unsigned long long)c->conn.bytes_in,
             (unsigned long long)c->conn.bytes_out, c->npending);
    /* Outstanding requests stay in their upstream queues, ownerless: their
     * responses are read and dropped, which keeps the upstream in sync. */
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
 * response has been passed on (it must not overtake them). The upstream
 * may send its own "100 Continue" later, with the final response; clients
 * take any number of them. Returns PMX_ERR when the client was closed. */
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
        request_release(req);
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
static void mux_respond(struct mux_request *req, const char *data, size_t len, bool close_client)
{
    struct mux_client *c = req->client;

    req->done = true;
    req->close_client = req->close_client || close_client;
    if (c == NULL) {
        request_release(req);
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
        request_release(req);
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
static void mux_reply(struct mux *m, struct mux_request *req, enum codec_reply kind, const char *reason)
{
    char reply[MUX_REPLY_MAX];
    size_t len = m->x->codec->reply(kind, reason, reply, sizeof(reply));
    bool close = len == 0 || kind == CODEC_REPLY_QUIT || kind == CODEC_REPLY_CLIENT_ERROR;

    if (req->client && kind != CODEC_REPLY_QUIT)
        log_info("#%llu client %s: %s", (unsigned long long)req->client->id, req->client->peer, reason);
    mux_respond(req, reply, len, close);
}

/* ---- upstreams ---------------------------------------------------------- */

static size_t mux_outstanding(const struct mux_upstream *up)
{
    return up->wait.len + up->sent.len;
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
static struct mux_upstream *mux_pick(struct mux *m, struct mux_client *c)
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
static bool mux_can_send(const struct mux *m, const struct mux_upstream *up)
{
    const struct service_config *cfg = mux_config(m);

    if (up->uc.state != UPSTREAM_READY || up->retiring)
        return false;
    if (cfg->max_active >= 0 && m->active >= (size_t)cfg->max_active)
        return false;
    if (!cfg->funnel_async || m->x->codec->one_in_flight)
        return up->sent.len == 0;
    return buf_len(&up->uc.conn.out) < (size_t)cfg->buffer_size;
}

/* Writes req's bytes to the connection's out buffer: it is sent. */
static int mux_send(struct mux *m, struct mux_upstream *up, struct mux_request *req,
                    const char *data, size_t len)
{
    if (buf_append(&up->uc.conn.out, data, len) != PMX_OK)
        return PMX_ERR;
    up->dirty = true;               /* written before the loop sleeps */
    req->sent_at = reactor_now(m->x->reactor);
    if (upstream_wants_latency(m->x->upstream))
        req->sent_us = upstream_clock_us();
    if (req->info & CODEC_INFO_CLOSE) {
        /* The upstream will close after answering this one (HTTP
         * "Connection: close"): pipeline nothing behind it. */
        up->retiring = true;
    }
    req->seq = ++up->written;
    if (req->info & CODEC_INFO_NOREPLY) {
        /* Nothing will come back: answered now with nothing. The client's
         * next request must not overtake it on another connection. */
        if (req->client != NULL) {
            req->client->noreply_up = up;
            req->client->noreply_seq = req->seq;
            req->client->noreply_gen = up->generation;
        }
        request_leave_upstream(req);
        mux_respond(req, "", 0, false);
        return PMX_OK;
    }
    queue_push(&up->sent, req);
    m->active++;
    return PMX_OK;
}

static void mux_dispatch(struct mux *m, struct mux_upstream *up)
{
    while (up->wait.head) {
        struct mux_request *req = up->wait.head;
        if (req->client == NULL) {
            /* Its client left before it was sent: no need to send it. */
            queue_pop(&up->wait);
            m->queued--;
            request_leave_upstream(req);
            request_release(req);
            continue;
        }
        if (!mux_can_send(m, up)) {
            if (up->uc.state == UPSTREAM_READY && mux_config(m)->max_active >= 0 &&
                m->active >= (size_t)mux_config(m)->max_active)
                m->active_full = true;
            break;
        }
        queue_pop(&up->wait);
        m->queued--;
        /* mux_send may answer and free req (noreply): take its bytes first. */
        char *data = req->data;
        req->data = NULL;
        int rc = mux_send(m, up, req, data, req->len);
        free(data);
        if (rc != PMX_OK) {
            request_leave_upstream(req);
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
        }
    }
    if (up->wait.head && up->uc.state == UPSTREAM_CLOSED && !up->retiring)
        mux_upstream_open(m, up);
}

/* Fails every request in flight on up with an error reply and closes the
 * connection; requests not yet sent stay queued for the next connection. */
static void mux_upstream_fail(struct mux *m, struct mux_upstream *up, const char *reason,
                              enum codec_reply kind, bool failure)
{
    char why[256];
    struct mux_request *req;

    snprintf(why, sizeof(why), "upstream %s: %s", up->uc.peer, reason);
    if (up->sent.len > 0)
        log_error("upstream #%llu %s: %s; failing %zu requests in flight",
                  (unsigned long long)up->uc.id, up->uc.peer, reason, up->sent.len);
    while ((req = queue_pop(&up->sent)) != NULL) {
        m->active--;
        request_leave_upstream(req);
        mux_reply(m, req, kind, why);
        kind = kind == CODEC_REPLY_TIMEOUT ? CODEC_REPLY_SERVER_ERROR : kind;
    }
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
    if (up->wait.len > 0 || (mux_config(m)->warmup && !m->x->shutting_down))
        mux_upstream_open(m, up);
}

/* Reads from conn. When in holds nothing, the bytes land in the shared
 * scratch buffer, seen through *view, so that the usual case (whole
 * messages in one read) allocates and copies nothing; otherwise they are
 * appended to in. *cur tells which buffer holds them. Returns as
 * conn_read(). */
static ssize_t mux_read(struct mux *m, struct conn *conn, struct buf *in, struct buf *view,
                        struct buf **cur)
{
    if (buf_len(in) > 0) {
        *cur = in;
        return conn_read_buf(conn, in, MUX_CHUNK);
    }
    view->data = m->scratch;
    view->head = view->tail = 0;
    view->cap = MUX_CHUNK;
    *cur = view;
    ssize_t n = conn_read(conn, m->scratch, MUX_CHUNK);
    if (n > 0)
        view->tail = (size_t)n;
    return n;
}

/* Moves what the parser left in the scratch view (the start of a message)
 * into in, before the next read reuses the scratch buffer. */
static int mux_keep(struct buf *in, const struct buf *cur)
{
    if (cur == in || buf_len(cur) == 0)
        return PMX_OK;
    return buf_append(in, buf_start(cur), buf_len(cur));
}

/* Reads responses from in: each complete one answers the head of the sent
 * queue. */
static void mux_upstream_parse(struct mux *m, struct mux_upstream *up, struct buf *in)
{
    const struct codec_ops *codec = m->x->codec;
    const struct service_config *cfg = mux_config(m);

    while (buf_len(in) > up->scanned) {
        struct mux_request *req = up->sent.head;
        if (req == NULL) {
            mux_upstream_fail(m, up, "sent bytes nobody asked for", CODEC_REPLY_SERVER_ERROR, true);
            return;
        }
        if (!up->parsing) {
            codec->response_begin(&up->parser, req->info);
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
        /* A whole response: hand it to its client and move on. */
        queue_pop(&up->sent);
        m->active--;
        if (m->active_full)
            m->kick = true;
        up->answered = req->seq;
        up->parsing = false;
        upstream_conn_ok(&up->uc);
        if (req->sent_us != 0) {
            uint64_t us = upstream_clock_us() - req->sent_us;
            upstream_conn_observe(&up->uc, (uint32_t)PMX_MIN(us, UINT32_MAX));
        }
        bool retire = up->parser.close_after;
        request_leave_upstream(req);
        if (up->draining)
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "response larger than max_message");
        else
            mux_respond(req, buf_start(in), up->scanned, false);
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
            struct mux_request *req = queue_pop(&up->sent);
            m->active--;
            up->parsing = false;
            request_leave_upstream(req);
            /* Its client can only tell where the body ends by the close. */
            if (up->draining)
                mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "response larger than max_message");
            else
                mux_respond(req, buf_start(&up->in), up->scanned, true);
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
        mux_upstream_fail(m, up, "upstream asked to close", CODEC_REPLY_SERVER_ERROR, false);
        return;
    }
dispatch:
    mux_dispatch(m, up);
}

static void mux_upstream_connected(struct upstream_conn *uc)
{
    struct mux_upstream *up = uc->data;

    up->last_active = reactor_now(up->m->x->reactor);
    upstream_conn_watch(uc, REACTOR_READABLE);
    mux_dispatch(up->m, up);
}

/* Fails the requests waiting for up's connection, which could not be
 * opened (reason, for the log): nothing waits for a dead target. Clients
 * hear "no upstream available" whatever the cause. */
static void mux_fail_waiting(struct mux *m, struct mux_upstream *up, const char *reason)
{
    struct mux_request *req;

    if (up->wait.len > 0)
        log_error("service %s: no upstream connection (%s); failing %zu requests not yet sent",
                  mux_config(m)->name, reason, up->wait.len);
    while ((req = queue_pop(&up->wait)) != NULL) {
        m->queued--;
        free(req->data);
        req->data = NULL;
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, UPSTREAM_NONE_USABLE);
    }
}

static void mux_upstream_failed(struct upstream_conn *uc, const char *reason)
{
    struct mux_upstream *up = uc->data;
    struct mux *m = up->m;

    mux_fail_waiting(m, up, reason);
    if (mux_config(m)->warmup && !m->x->shutting_down)
        mux_upstream_open(m, up);
}

static const struct upstream_conn_events mux_upstream_events = {
    .connected = mux_upstream_connected,
    .io = mux_upstream_io,
    .failed = mux_upstream_failed,
};

/* Opens up's connection; with no target usable, what waits for it fails
 * at once. */
static void mux_upstream_open(struct mux *m, struct mux_upstream *up)
{
    if (up->uc.state != UPSTREAM_CLOSED)
        return;
    if (upstream_conn_open(&up->uc, NULL, 0) == PMX_OK)
        return;
    if (errno == EMFILE || errno == ENFILE)
        exchange_out_of_fds(m->x);
    mux_fail_waiting(m, up, errno == EMFILE || errno == ENFILE ? "out of file descriptors" : UPSTREAM_NONE_USABLE);
}

/* ---- requests from clients --------------------------------------------- */

/* A whole request of client c: answer it here, or queue it for an
 * upstream, or (fast path) write it straight to one. */
static void mux_submit(struct mux *m, struct mux_client *c, const char *data, size_t len, uint32_t info)
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
    if (c->tail)
        c->tail->cnext = req;
    else
        c->head = req;
    c->tail = req;
    c->npending++;

    if (info & CODEC_INFO_QUIT) {
        /* Nothing the client sent after QUIT may run. */
        c->closing = true;
        mux_reply(m, req, CODEC_REPLY_QUIT, "quit");
        return;
    }
    if (info & CODEC_INFO_UNSUPPORTED) {
        req->close_client = false;
        char reply[MUX_REPLY_MAX];
        size_t n = m->x->codec->reply(CODEC_REPLY_CLIENT_ERROR,
                                      "command not supported through a shared connection", reply, sizeof(reply));
        /* An unsupported command is refused; the client may go on. */
        mux_respond(req, reply, n, n == 0);
        return;
    }
    if (info & CODEC_INFO_CLOSE) {
        /* Last request of this client: read nothing after it. */
        req->close_client = true;
        c->closing = true;
    }
    struct mux_upstream *up = mux_pick(m, c);
    req->up = up;
    c->affinity = up;
    c->nupstream++;
    if (up->wait.head == NULL && mux_can_send(m, up)) {
        if (mux_send(m, up, req, data, len) != PMX_OK) {
            request_leave_upstream(req);
            mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
        }
        return;
    }
    if (up->uc.state == UPSTREAM_CLOSED && !upstream_available(m->x->upstream)) {
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, UPSTREAM_NONE_USABLE);
        return;
    }
    if (m->queued >= (size_t)cfg->queue_limit) {
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, "queue limit reached");
        return;
    }
    if (cfg->max_queued >= 0 && m->queued >= (size_t)cfg->max_queued) {
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, "limits.max_queued reached");
        return;
    }
    req->data = malloc(len ? len : 1);
    if (req->data == NULL) {
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_SERVER_ERROR, "out of memory");
        return;
    }
    memcpy(req->data, data, len);
    req->len = len;
    queue_push(&up->wait, req);
    m->queued++;
    mux_dispatch(m, up);
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
static void mux_client_update(struct mux_client *c)
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

static void mux_client_flush(struct mux_client *c)
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

static void mux_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
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
    snprintf(c->peer, sizeof(c->peer), "%s", peer);
    conn_init(&c->conn, fd);
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

/* Before the loop sleeps: write what handlers queued (many clients'
 * requests go out in one write per upstream), and free closed clients. */
static void mux_before_sleep(struct reactor *r, void *data)
{
    struct mux *m = data;

    if (m->kick) {
        /* limits.max_active: a response on one connection lets a request
         * waiting on another go. */
        m->kick = false;
        m->active_full = false;
        for (int i = 0; i < m->nups; i++)
            mux_dispatch(m, &m->ups[i]);
    }
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
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
            up->last_active = reactor_now(r);
            upstream_conn_watch(&up->uc, rc == PMX_AGAIN ? REACTOR_READABLE | REACTOR_WRITABLE : REACTOR_READABLE);
            if (rc == PMX_OK)
                mux_dispatch(m, up);
        }
    }
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

/* Fails waiting requests older than queue_timeout; the queue is in
 * arrival order, so only its head needs looking at. */
static void mux_expire_queue(struct mux *m, struct mux_upstream *up, uint64_t now)
{
    const struct service_config *cfg = mux_config(m);

    while (cfg->queue_timeout > 0 && up->wait.head &&
           now - up->wait.head->queued_at >= (uint64_t)cfg->queue_timeout) {
        struct mux_request *req = queue_pop(&up->wait);
        m->queued--;
        free(req->data);
        req->data = NULL;
        request_leave_upstream(req);
        mux_reply(m, req, CODEC_REPLY_BUSY, "queue timeout: no upstream connection free in time");
    }
}

/* Refuses the clients holding the largest partial requests until the
 * budget is no longer spent, then reads the paused ones again. */
static void mux_enforce_request_memory(struct mux *m)
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
    const struct service_config *cfg = x->config;
    uint64_t now = reactor_now(x->reactor);

    mux_warmup_check(m);
    mux_enforce_request_memory(m);
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        mux_expire_queue(m, up, now);
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

/* A target came back: connections closed for lack of one reopen if
 * something waits for them (warmup keeps the whole pool open). */
static void mux_target_up(struct exchange *x)
{
    struct mux *m = x->priv;

    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        if (up->uc.state == UPSTREAM_CLOSED && (up->wait.len > 0 || x->config->warmup) && !x->shutting_down)
            mux_upstream_open(m, up);
    }
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
    for (int i = 0; i < m->nups; i++) {
        struct mux_upstream *up = &m->ups[i];
        up->m = m;
        buf_init(&up->in);
        upstream_conn_init(x->upstream, &up->uc, &mux_upstream_events, up);
    }
    m->x = x;
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
        while ((req = queue_pop(&up->wait)) != NULL) {
            request_leave_upstream(req);
            request_release(req);
        }
        while ((req = queue_pop(&up->sent)) != NULL) {
            request_leave_upstream(req);
            request_release(req);
        }
    }
    m->dirty_clients = NULL;
    mux_before_sleep(x->reactor, m);
    reactor_remove_before_sleep(x->reactor, mux_before_sleep, m);
    for (int i = 0; i < m->nups; i++) {
        upstream_conn_release(&m->ups[i].uc);
        buf_free(&m->ups[i].in);
    }
    free(m->ups);
    free(m->scratch);
    free(m);
    x->priv = NULL;
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
};
