/* Proxy mode: every client gets its own upstream connection for its
 * lifetime and bytes are piped both ways untouched, through bounded buffers
 * with back-pressure. With warmup, pre-connected spares are handed out with
 * the bytes the target already sent (the MySQL greeting). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "list.h"
#include "log.h"
#include "pool.h"
#include "reactor.h"

/* Most bytes moved per read: bounds the work done for one event. */
#define PROXY_CHUNK (64 * 1024)
/* Fast shutdown: a session is closed once the upstream has spoken after the
 * client's last bytes (the answer to its last request) and then been quiet
 * this long. */
#define PROXY_DRAIN_QUIET_MS 200

/*
 *            client.out                      upstream.out
 *   client <============ [ session ] <=== ... ===> upstream
 *
 * Bytes read from one side go straight to the other side's socket; only
 * what it does not take at once waits in that side's out buffer. A side is
 * not read while the other side's out buffer holds buffer_size bytes or
 * more (back-pressure). An end of stream is passed on as a half-close once
 * the buffer behind it is flushed; a socket error on one side ends the
 * session after the other side's pending bytes are written.
 */
struct session {
    uint64_t id;
    char peer[NET_ADDR_MAX];       /* the client */
    char target[NET_ADDR_MAX];     /* the upstream */
    struct conn client;
    struct conn upstream;
    bool connecting;
    bool draining;                  /* fast shutdown: read no more requests */
    int target_index;
    int attempts;                   /* targets tried for this client */
    uint64_t deadline;              /* connect timeout */
    uint64_t last_active;
    uint64_t last_upstream_byte;    /* when the upstream last sent something */
    bool awaiting_answer;           /* the client spoke after the upstream last did */
    bool client_released;           /* client socket closed, its max_connections slot freed */
    struct proxy *px;
    struct list_node link;          /* in proxy.sessions */
};

struct proxy {
    struct exchange *x;
    struct list_node sessions;
    struct pool spares;
    int next_target;
    uint64_t started;
    char *scratch;
};

static void proxy_client_event(struct reactor *r, int fd, void *data, int mask);
static void proxy_upstream_event(struct reactor *r, int fd, void *data, int mask);
static void session_update(struct session *s);

static size_t proxy_limit(const struct proxy *px)
{
    return (size_t)px->x->config->buffer_size;
}

/* Closes the client's socket and frees its slot in max_connections, while
 * the upstream side may still be finishing. */
static void session_release_client(struct session *s)
{
    if (s->client_released)
        return;
    s->client_released = true;
    conn_close(&s->client, s->px->x->reactor);
    exchange_client_removed(s->px->x);
}

static void session_close(struct session *s, const char *reason)
{
    struct proxy *px = s->px;
    struct reactor *r = px->x->reactor;
    bool released = s->client_released;

    log_info("close #%llu client %s upstream %s: %s (from client %llu, to client %llu bytes)",
             (unsigned long long)s->id, s->peer, s->target[0] ? s->target : "-", reason,
             (unsigned long long)s->client.bytes_in, (unsigned long long)s->client.bytes_out);
    conn_close(&s->client, r);
    conn_close(&s->upstream, r);
    list_remove(&s->link);
    free(s);
    if (!released)
        exchange_client_removed(px->x);
}

/* Starts connecting to s->target_index; on failure moves on to the next
 * target, and closes the client once every target has failed. Returns
 * PMX_ERR when the session was closed. */
static int session_connect(struct session *s)
{
    struct proxy *px = s->px;
    const struct service_config *c = px->x->config;

    while (s->attempts < c->ntargets) {
        int t = s->target_index % c->ntargets;
        net_format_addr((const struct sockaddr *)&c->targets[t].addr, c->targets[t].addr_len,
                        s->target, sizeof(s->target));
        s->attempts++;
        int fd = pool_connect(c, t);
        if (fd >= 0) {
            s->upstream.fd = fd;
            s->connecting = true;
            s->deadline = reactor_now(px->x->reactor) + (uint64_t)c->connect_timeout;
            return PMX_OK;
        }
        if (errno == EMFILE || errno == ENFILE) {
            /* Not the target's fault: no descriptor for its socket. Stop
             * accepting for a while rather than take clients we cannot
             * serve. */
            exchange_out_of_fds(px->x);
            session_close(s, "out of file descriptors for the upstream connection");
            return PMX_ERR;
        }
        log_error_errno("#%llu client %s: connect to %s", (unsigned long long)s->id, s->peer, s->target);
        s->target_index = t + 1;
    }
    session_close(s, "no target reachable");
    return PMX_ERR;
}

/* The connect in progress failed: try the next target. Returns PMX_ERR
 * when the session was closed. */
static int session_connect_failed(struct session *s, const char *reason)
{
    struct proxy *px = s->px;

    log_error("#%llu client %s: connect to %s failed: %s", (unsigned long long)s->id, s->peer,
              s->target, reason);
    /* What the client sent while connecting goes to the next target. */
    struct buf pending = s->upstream.out;
    buf_init(&s->upstream.out);
    conn_close(&s->upstream, px->x->reactor);
    conn_init(&s->upstream, -1);
    s->upstream.out = pending;
    s->connecting = false;
    s->target_index++;
    if (session_connect(s) != PMX_OK)
        return PMX_ERR;
    session_update(s);
    return PMX_OK;
}

/* Moves bytes from one side to the other: at most what the destination's
 * buffer has room for, written through at once when nothing is queued. */
static void session_pump(struct session *s, struct conn *from, struct conn *to)
{
    struct proxy *px = s->px;
    size_t pending = buf_len(&to->out);
    size_t limit = proxy_limit(px);
    ssize_t n;

    if (pending >= limit)
        return;
    size_t room = PMX_MIN(limit - pending, PROXY_CHUNK);
    if (pending == 0 && !s->connecting && !to->failed) {
        n = conn_read(from, px->scratch, room);
        if (n > 0 && conn_send(to, px->scratch, (size_t)n) != PMX_OK)
            to->failed = true;
    } else {
        n = conn_read_buf(from, &to->out, room);
    }
    if (n > 0) {
        s->last_active = reactor_now(px->x->reactor);
        /* An order, not two timestamps: both can fall in one millisecond. */
        if (from == &s->client) {
            s->awaiting_answer = true;
        } else {
            s->awaiting_answer = false;
            s->last_upstream_byte = s->last_active;
        }
    } else if (n == PMX_ERR) {
        log_info_errno("#%llu %s read", (unsigned long long)s->id,
                       from == &s->client ? "client" : "upstream");
        from->failed = true;
        from->eof = true;
    }
}

static void session_flush(struct session *s, struct conn *to)
{
    if (to->failed || to->fd < 0 || (to == &s->upstream && s->connecting))
        return;
    int rc = conn_flush(to);
    if (rc == PMX_ERR) {
        log_info_errno("#%llu %s write", (unsigned long long)s->id,
                       to == &s->client ? "client" : "upstream");
        to->failed = true;
        buf_free(&to->out);
    } else if (buf_len(&to->out) == 0) {
        s->last_active = reactor_now(s->px->x->reactor);
    }
}

/* Half-closes `to` once `from` has ended and its bytes are all written. */
static void session_propagate_eof(struct session *s, struct conn *from, struct conn *to)
{
    if (from->eof && buf_len(&to->out) == 0 && !to->failed && !s->connecting)
        conn_shutdown_write(to);
}

/* Decides whether the session is over, and otherwise which events each
 * side waits for. Every handler ends here. */
static void session_update(struct session *s)
{
    struct reactor *r = s->px->x->reactor;
    size_t limit = proxy_limit(s->px);
    struct conn *cl = &s->client;
    struct conn *up = &s->upstream;

    if (!s->connecting) {
        session_propagate_eof(s, cl, up);
        session_propagate_eof(s, up, cl);
    }
    if (cl->failed || up->failed) {
        /* One side is gone: deliver what the other is owed, then close. */
        struct conn *other = cl->failed ? up : cl;
        if (other->failed || buf_len(&other->out) == 0 || (other == up && s->connecting)) {
            session_close(s, cl->failed ? "client error" : "upstream error");
            return;
        }
        /* A client that is gone for good (reset, failed write) gives its
         * slot back now; its last bytes still go to the upstream. */
        if (cl->failed)
            session_release_client(s);
    } else if (cl->eof && up->eof && buf_len(&cl->out) == 0 && buf_len(&up->out) == 0) {
        session_close(s, up->bytes_in == 0 && cl->bytes_in == 0 ? "closed without data" : "closed");
        return;
    } else if (s->draining && buf_len(&cl->out) == 0 && (buf_len(&up->out) == 0 || s->connecting) &&
               (up->eof || s->connecting ||
                (!s->awaiting_answer &&
                 reactor_now(r) - s->last_upstream_byte >= PROXY_DRAIN_QUIET_MS))) {
        /* Shutting down and the response in flight, if any, is through. */
        session_close(s, "shutdown");
        return;
    }

    bool reading = !cl->failed && !up->failed;
    int want_cl = REACTOR_NONE;
    int want_up = REACTOR_NONE;

    if (reading && !s->draining && !cl->eof && buf_len(&up->out) < limit)
        want_cl |= REACTOR_READABLE;
    if (buf_len(&cl->out) > 0 && !cl->failed)
        want_cl |= REACTOR_WRITABLE;
    if (s->connecting) {
        want_up = REACTOR_WRITABLE;
    } else {
        if (reading && !up->eof && buf_len(&cl->out) < limit)
            want_up |= REACTOR_READABLE;
        if (buf_len(&up->out) > 0 && !up->failed)
            want_up |= REACTOR_WRITABLE;
    }
    if ((cl->fd >= 0 && reactor_set(r, cl->fd, want_cl, proxy_client_event, s) != PMX_OK) ||
        (up->fd >= 0 && reactor_set(r, up->fd, want_up, proxy_upstream_event, s) != PMX_OK)) {
        log_error_errno("#%llu epoll", (unsigned long long)s->id);
        session_close(s, "epoll error");
    }
}

static void proxy_client_event(struct reactor *r, int fd, void *data, int mask)
{
    struct session *s = data;

    if (mask & REACTOR_WRITABLE)
        session_flush(s, &s->client);
    if ((mask & REACTOR_READABLE) && !s->client.eof) {
        session_pump(s, &s->client, &s->upstream);
        session_flush(s, &s->upstream);
    }
    session_update(s);
}

static void proxy_upstream_event(struct reactor *r, int fd, void *data, int mask)
{
    struct session *s = data;

    if (s->connecting) {
        if (net_connect_result(fd) != PMX_OK) {
            (void)session_connect_failed(s, strerror(errno));
            return;
        }
        s->connecting = false;
        log_debug("#%llu client %s: connected to %s", (unsigned long long)s->id, s->peer, s->target);
        session_flush(s, &s->upstream);
        session_update(s);
        return;
    }
    if (mask & REACTOR_WRITABLE)
        session_flush(s, &s->upstream);
    if ((mask & REACTOR_READABLE) && !s->upstream.eof) {
        session_pump(s, &s->upstream, &s->client);
        session_flush(s, &s->client);
    }
    session_update(s);
}

/* A warm spare ready for a client, or NULL. */
static struct pool_slot *proxy_ready_spare(struct proxy *px)
{
    for (int i = 0; i < px->spares.nslots; i++) {
        struct pool_slot *s = &px->spares.slots[(px->next_target + i) % px->spares.nslots];
        if (s->state == SLOT_READY)
            return s;
    }
    return NULL;
}

static void proxy_accept(struct exchange *x, int fd, const char *peer)
{
    struct proxy *px = x->priv;
    struct session *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        log_error("client %s: out of memory, closing", peer);
        close(fd);
        return;
    }
    s->id = conn_next_id();
    s->px = px;
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    conn_init(&s->client, fd);
    conn_init(&s->upstream, -1);
    s->last_active = reactor_now(x->reactor);
    list_add_tail(&px->sessions, &s->link);
    exchange_client_added(x);
    log_info("accept #%llu client %s", (unsigned long long)s->id, s->peer);

    struct pool_slot *spare = proxy_ready_spare(px);
    if (spare != NULL) {
        snprintf(s->target, sizeof(s->target), "%s", spare->peer);
        s->target_index = spare->target;
        s->attempts = x->config->ntargets;
        px->next_target = spare->index + 1;
        s->upstream.fd = pool_take(&px->spares, spare, &s->client.out);
        log_debug("#%llu client %s: took warm connection to %s with %zu early bytes",
                  (unsigned long long)s->id, s->peer, s->target, buf_len(&s->client.out));
        session_flush(s, &s->client);
    } else {
        s->target_index = px->next_target++;
        if (session_connect(s) != PMX_OK)
            return;
    }
    session_update(s);
}

/* Warm spares: read what the target sends before a client takes the
 * connection (bounded by buffer_size), and replace a spare the target
 * closes, with backoff so a target that refuses at once is not hammered. */
static void proxy_spare_io(struct pool *p, struct pool_slot *s, int mask)
{
    struct proxy *px = p->data;
    size_t limit = proxy_limit(px);
    size_t room = limit - PMX_MIN(limit, buf_len(&s->in));

    if (room == 0) {
        pool_watch(p, s, REACTOR_NONE);
        return;
    }
    ssize_t n = conn_read_buf(&s->conn, &s->in, PMX_MIN(room, (size_t)PROXY_CHUNK));
    if (n > 0 || n == PMX_AGAIN)
        return;
    pool_close_failed(p, s, n == 0 ? "target closed the spare connection" : strerror(errno));
}

static void proxy_warmup_check(struct proxy *px)
{
    struct exchange *x = px->x;

    if (x->ready)
        return;
    int ready = pool_ready_count(&px->spares);
    if (ready == px->spares.nslots) {
        log_info("warmup: %d connections ready", ready);
        exchange_ready(x);
    } else if (reactor_now(x->reactor) - px->started >= (uint64_t)x->config->connect_timeout) {
        log_error("warmup: only %d of %d connections ready after %ld ms; accepting clients anyway",
                  ready, px->spares.nslots, x->config->connect_timeout);
        exchange_ready(x);
    }
}

static int proxy_start(struct exchange *x)
{
    const struct service_config *c = x->config;
    struct proxy *px = calloc(1, sizeof(*px));
    static const struct pool_events spare_events = {
        .io = proxy_spare_io,
    };

    if (px == NULL)
        return PMX_ERR;
    list_init(&px->sessions);
    px->scratch = malloc(PROXY_CHUNK);
    if (px->scratch == NULL ||
        pool_init(&px->spares, x->reactor, c, c->warmup ? c->connections : 0, &spare_events, px) != PMX_OK) {
        free(px->scratch);
        free(px);
        return PMX_ERR;
    }
    px->x = x;
    px->started = reactor_now(x->reactor);
    x->priv = px;
    for (int i = 0; i < px->spares.nslots; i++)
        pool_open(&px->spares, &px->spares.slots[i]);
    if (!c->warmup)
        exchange_ready(x);
    else
        proxy_warmup_check(px);
    return PMX_OK;
}

static void proxy_tick(struct exchange *x)
{
    struct proxy *px = x->priv;
    const struct service_config *c = x->config;
    uint64_t now = reactor_now(x->reactor);
    struct list_node *n, *next;

    pool_tick(&px->spares);
    proxy_warmup_check(px);
    list_for_each_safe(n, next, &px->sessions) {
        struct session *s = list_entry(n, struct session, link);
        if (s->connecting && now >= s->deadline) {
            (void)session_connect_failed(s, "connect timeout");
        } else if (s->draining) {
            session_update(s);
        } else if (c->inactive_timeout > 0 && now - s->last_active >= (uint64_t)c->inactive_timeout) {
            session_close(s, "inactive timeout");
        }
    }
}

static void proxy_shutdown(struct exchange *x, bool fast)
{
    struct proxy *px = x->priv;
    struct list_node *n, *next;

    x->shutting_down = true;
    px->spares.stopped = true;
    for (int i = 0; i < px->spares.nslots; i++)
        pool_close(&px->spares, &px->spares.slots[i], "shutdown", false);
    if (!fast)
        return;
    list_for_each_safe(n, next, &px->sessions) {
        struct session *s = list_entry(n, struct session, link);
        s->draining = true;
        session_update(s);
    }
}

static void proxy_reload(struct exchange *x)
{
    struct proxy *px = x->priv;

    px->spares.config = x->config;
}

static void proxy_destroy(struct exchange *x)
{
    struct proxy *px = x->priv;

    if (px == NULL)
        return;
    struct list_node *n, *next;
    list_for_each_safe(n, next, &px->sessions) {
        struct session *s = list_entry(n, struct session, link);
        session_close(s, "exit");
    }
    pool_destroy(&px->spares);
    free(px->scratch);
    free(px);
    x->priv = NULL;
}

const struct exchange_ops exchange_proxy = {
    .name = "proxy",
    .start = proxy_start,
    .accept = proxy_accept,
    .tick = proxy_tick,
    .shutdown = proxy_shutdown,
    .reload = proxy_reload,
    .destroy = proxy_destroy,
};
