/* Proxy mode: every client gets its own upstream connection for its
 * lifetime and bytes are piped both ways untouched, through bounded buffers
 * with back-pressure. The upstream layer picks the target and connects
 * (retries, health); with warmup, pre-connected spares are handed out with
 * the bytes the target already sent (the MySQL greeting).
 *
 * A service with routes (SPEC §10) first buffers each client's first bytes
 * until a route decides where it goes (a target name, or HOST:PORT), or
 * closes it; the decided session then connects and runs as any other. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "list.h"
#include "log.h"
#include "proxy_mysql.h"
#include "proxy_protocol.h"
#include "reactor.h"
#include "route.h"
#include "script.h"
#include "upstream.h"

/* Most bytes moved per read: bounds the work done for one event. */
#define PROXY_CHUNK (64 * 1024)
/* A warm spare the target closes sooner than this after connecting counts
 * as a failure of the target (it accepts and drops); later it is an idle
 * close (MySQL's connect_timeout) and the spare is simply replaced. */
#define PROXY_SPARE_MIN_LIFE_MS 1000
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
    struct sockaddr_storage addr;  /* the client, for ip_hash */
    socklen_t addr_len;
    struct conn client;
    struct upstream_conn up;        /* the upstream connection, owned by the upstream layer */
    struct conn *upstream;          /* its socket: upstream_conn_socket(&up) */
    int up_mask;                    /* what the upstream socket is watched for */
    bool active;                    /* counts in limits.max_active */
    bool waiting;                   /* in proxy.waiting for a free max_active place */
    bool draining;                  /* fast shutdown: read no more requests */
    bool upstream_error;            /* the upstream failed (reset): a failure of its target */
    uint64_t queued_at;
    uint64_t last_active;
    uint64_t last_upstream_byte;    /* when the upstream last sent something */
    bool awaiting_answer;           /* the client spoke after the upstream last did */
    bool client_released;           /* client socket closed, its max_connections slot freed */
    struct proxy_mysql *mysql;      /* exchange.codec mysql: follows the packets, NULL otherwise */
    /* Routing (SPEC §10): while routing, the client's first bytes wait in
     * `first` (at most route_max_bytes) for a decision; no upstream yet. */
    bool routing;
    bool close_when_flushed;        /* a route closed the client: close once client.out is written */
    struct buf first;
    long long route_timer;          /* route_timeout, 0 none */
    size_t route_tried;             /* bytes of `first` the routes last looked at */
    long long settle_timer;         /* a look at bytes that came in small reads, 0 none */
    /* Decided: the target name or HOST:PORT a route gave; "" the balancer. */
    char dest[sizeof(((struct route_decision *)0)->target)];
    long connect_timeout;           /* ms, -1: pool.connect_timeout */
    long inactivity_timeout;        /* ms from connect to the target's first byte, -1: none */
    long long inactivity_timer;     /* 0 none */
    struct proxy *px;
    struct list_node link;          /* in proxy.sessions */
    struct list_node wait_link;     /* in proxy.waiting */
};

/* send_proxy: queues the PROXY header for client s first in the upstream
 * output (sent once connected, before any byte of the client's). The
 * destination is the address the client connected to (or the one its own
 * PROXY header named). Returns PMX_ERR when out of memory. */
static int session_queue_proxy_header(struct session *s, struct exchange *x, int fd)
{
    struct sockaddr_storage local;
    socklen_t local_len = sizeof(local);
    const struct sockaddr *dst = x->accept_local;
    char hdr[PROXY_PROTOCOL_ENCODE_MAX];

    if (x->config->send_proxy == PROXY_PROTOCOL_OFF)
        return PMX_OK;
    if (dst != NULL) {
        local_len = x->accept_local_len;
    } else if (getsockname(fd, (struct sockaddr *)&local, &local_len) == 0) {
        dst = (const struct sockaddr *)&local;
    } else {
        local_len = 0;
    }
    size_t n = proxy_protocol_encode((enum proxy_protocol_version)x->config->send_proxy,
                                     (const struct sockaddr *)&s->addr, s->addr_len, dst, local_len,
                                     hdr, sizeof(hdr));
    return buf_append(&upstream_conn_socket(&s->up)->out, hdr, n);
}

/* A pre-connected upstream connection (warmup) and what the target sent
 * on it before a client took it. */
struct proxy_spare {
    struct upstream_conn up;
    struct buf early;
    struct proxy *px;
};

struct proxy {
    struct exchange *x;
    struct list_node sessions;
    struct list_node waiting;       /* sessions waiting for max_active, oldest first */
    size_t nwaiting;
    long active;                    /* sessions with an upstream connection (limits.max_active) */
    long long kick_timer;           /* starts waiting sessions after a close, 0 none */
    struct proxy_spare *spares;
    int nspares;
    int next_spare;
    uint64_t started;
    char *scratch;
    struct route_table *routes;     /* the service's routes, NULL without (or out of memory) */
    bool routed;                    /* clients are routed on their first bytes */
};

static void proxy_client_event(struct reactor *r, int fd, void *data, int mask);
static void session_update(struct session *s);
static void proxy_start_waiting(struct proxy *px);
static void proxy_kick_waiting(struct proxy *px);
static void session_route_update(struct session *s);
static void session_route_read(struct session *s);
static void session_begin(struct session *s);

static size_t proxy_limit(const struct proxy *px)
{
    return (size_t)px->x->config->buffer_size;
}

/* No upstream connection to write to yet (waiting, connecting). */
static bool session_connecting(const struct session *s)
{
    return s->up.state != UPSTREAM_READY;
}

/* Closes the client's socket and frees its slot in max_connections, while
 * the upstream side may still be finishing. */
static void session_release_client(struct session *s)
{
    if (s->client_released)
        return;
    s->client_released = true;
    stats_client_left(&s->px->x->stats, s->client.bytes_in, s->client.bytes_out);
    conn_close(&s->client, s->px->x->reactor);
    exchange_client_removed(s->px->x);
}

static void session_close(struct session *s, const char *reason)
{
    struct proxy *px = s->px;
    struct reactor *r = px->x->reactor;
    bool released = s->client_released;

    log_info("close #%llu client %s upstream %s: %s (from client %llu, to client %llu bytes)",
             (unsigned long long)s->id, s->peer, s->up.target >= 0 || s->up.adhoc ? s->up.peer : "-", reason,
             (unsigned long long)s->client.bytes_in, (unsigned long long)s->client.bytes_out);
    conn_close(&s->client, r);
    /* A query still unanswered: the side that ended first is to blame. */
    proxy_mysql_end(s->mysql, !s->upstream_error && !(s->upstream->eof && !s->client.eof));
    if (s->route_timer > 0)
        reactor_timer_del(r, s->route_timer);
    if (s->settle_timer > 0)
        reactor_timer_del(r, s->settle_timer);
    if (s->inactivity_timer > 0)
        reactor_timer_del(r, s->inactivity_timer);
    buf_free(&s->first);
    if (s->upstream_error)
        upstream_conn_close(&s->up, UPSTREAM_CLOSE_FAILED, reason);
    upstream_conn_release(&s->up);
    list_remove(&s->link);
    if (s->waiting) {
        list_remove(&s->wait_link);
        px->nwaiting--;
    }
    if (s->active)
        px->active--;
    if (!released)
        stats_client_left(&px->x->stats, s->client.bytes_in, s->client.bytes_out);
    free(s);
    if (!released)
        exchange_client_removed(px->x);
    proxy_kick_waiting(px);
}

/* Splits "HOST:PORT" or "[V6]:PORT" (host keeps its brackets, which the
 * resolver takes). Returns false when text is neither. */
static bool proxy_split_address(const char *text, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(text, ':');
    char *end;

    if (colon == NULL || colon == text || colon[1] < '0' || colon[1] > '9')
        return false;
    size_t n = (size_t)(colon - text);
    if (text[0] == '[' ? colon[-1] != ']' : memchr(text, ':', n) != NULL)
        return false;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || p < 1 || p > 65535 || n >= hostlen)
        return false;
    memcpy(host, text, n);
    host[n] = '\0';
    *port = (int)p;
    return true;
}

/* Opens the upstream connection of a routed session: to the target of the
 * service named s->dest (health applies, no other target is tried), or to
 * the HOST:PORT it spells. Returns PMX_ERR with *why. */
static int session_open_routed(struct session *s, const char **why)
{
    struct upstream *u = s->px->x->upstream;
    char host[sizeof(s->dest)];
    int port;
    int i = upstream_target_find(u, s->dest);

    if (i >= 0)
        return upstream_conn_open_target(&s->up, i, s->connect_timeout, why);
    if (!proxy_split_address(s->dest, host, sizeof(host), &port)) {
        *why = "neither a target name of the service nor HOST:PORT";
        errno = 0;
        return PMX_ERR;
    }
    return upstream_conn_open_host(&s->up, host, port, s->connect_timeout, why);
}

/* Asks the upstream layer for a connection. Returns PMX_ERR when the
 * session was closed (no target usable). */
static int session_connect(struct session *s)
{
    struct proxy *px = s->px;
    const char *why = UPSTREAM_NONE_USABLE;
    int rc;

    s->active = true;
    px->active++;
    if (s->dest[0] != '\0')
        rc = session_open_routed(s, &why);
    else
        rc = upstream_conn_open(&s->up, (const struct sockaddr *)&s->addr, s->addr_len);
    if (rc == PMX_OK)
        return PMX_OK;
    if (s->dest[0] != '\0' && errno != EMFILE && errno != ENFILE) {
        char reason[512];
        stats_refused(&px->x->stats, STATS_REFUSED_NO_UPSTREAM);
        exchange_event(px->x, "connect_error", s->dest, why);
        snprintf(reason, sizeof(reason), "connect_error: %s", why);
        session_close(s, reason);
    } else if (errno == EMFILE || errno == ENFILE) {
        /* No descriptor for the upstream socket: stop accepting for a
         * while rather than take clients we cannot serve. */
        exchange_out_of_fds(px->x);
        session_close(s, "out of file descriptors for the upstream connection");
    } else {
        stats_refused(&px->x->stats, STATS_REFUSED_NO_UPSTREAM);
        session_close(s, UPSTREAM_NONE_USABLE);
    }
    return PMX_ERR;
}

/* Starts the sessions waiting for a max_active place, oldest first. */
static void proxy_start_waiting(struct proxy *px)
{
    long max = px->x->config->max_active;

    while (!px->x->shutting_down && px->nwaiting > 0 && (max < 0 || px->active < max)) {
        struct session *s = list_entry(px->waiting.next, struct session, wait_link);
        list_remove(&s->wait_link);
        px->nwaiting--;
        s->waiting = false;
        if (session_connect(s) == PMX_OK)
            session_update(s);
    }
}

static long proxy_kick_timer(struct reactor *r, long long id, void *data)
{
    struct proxy *px = data;

    px->kick_timer = 0;
    proxy_start_waiting(px);
    return REACTOR_TIMER_DONE;
}

/* A max_active place may have freed: the waiting sessions start from a
 * timer of their own, since the close that freed it may be running inside
 * a walk of the session list. */
static void proxy_kick_waiting(struct proxy *px)
{
    if (px->nwaiting == 0 || px->kick_timer > 0 || px->x->shutting_down)
        return;
    long long id = reactor_timer_add(px->x->reactor, 0, proxy_kick_timer, px);
    px->kick_timer = id > 0 ? id : 0;
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
    const char *seen;               /* the bytes read, for the mysql follower */
    if (pending == 0 && !(to == s->upstream && session_connecting(s)) && !to->failed) {
        n = conn_read(from, px->scratch, room);
        seen = px->scratch;
        if (n > 0 && conn_send(to, px->scratch, (size_t)n) != PMX_OK) {
            to->failed = true;
            if (to == s->upstream)
                s->upstream_error = true;
        }
    } else {
        n = conn_read_buf(from, &to->out, room);
        seen = n > 0 ? buf_end(&to->out) - n : NULL;
    }
    if (n > 0) {
        if (s->mysql != NULL)
            proxy_mysql_feed(s->mysql, from == &s->client, seen, (size_t)n);
        s->last_active = reactor_now(px->x->reactor);
        /* An order, not two timestamps: both can fall in one millisecond. */
        if (from == &s->client) {
            s->awaiting_answer = true;
        } else {
            s->awaiting_answer = false;
            s->last_upstream_byte = s->last_active;
            if (s->inactivity_timer > 0) {
                reactor_timer_del(px->x->reactor, s->inactivity_timer);
                s->inactivity_timer = 0;
            }
        }
    } else if (n == PMX_ERR) {
        log_info_errno("#%llu %s read", (unsigned long long)s->id,
                       from == &s->client ? "client" : "upstream");
        from->failed = true;
        from->eof = true;
        if (from == s->upstream)
            s->upstream_error = true;
    }
}

static void session_flush(struct session *s, struct conn *to)
{
    if (to->failed || to->fd < 0 || (to == s->upstream && session_connecting(s)))
        return;
    int rc = conn_flush(to);
    if (rc == PMX_ERR) {
        log_info_errno("#%llu %s write", (unsigned long long)s->id,
                       to == &s->client ? "client" : "upstream");
        to->failed = true;
        if (to == s->upstream)
            s->upstream_error = true;
        buf_free(&to->out);
    } else if (buf_len(&to->out) == 0) {
        s->last_active = reactor_now(s->px->x->reactor);
    }
}

/* Half-closes `to` once `from` has ended and its bytes are all written. */
static void session_propagate_eof(struct session *s, struct conn *from, struct conn *to)
{
    if (from->eof && buf_len(&to->out) == 0 && !to->failed && !session_connecting(s))
        conn_shutdown_write(to);
}

/* Decides whether the session is over, and otherwise which events each
 * side waits for. Every handler ends here. */
static void session_update(struct session *s)
{
    struct reactor *r = s->px->x->reactor;
    size_t limit = proxy_limit(s->px);
    struct conn *cl = &s->client;
    struct conn *up = s->upstream;
    bool connecting = session_connecting(s);

    if (s->routing || s->close_when_flushed) {
        session_route_update(s);
        return;
    }
    if (!connecting) {
        session_propagate_eof(s, cl, up);
        session_propagate_eof(s, up, cl);
    }
    if (cl->failed || up->failed) {
        /* One side is gone: deliver what the other is owed, then close. */
        struct conn *other = cl->failed ? up : cl;
        if (other->failed || buf_len(&other->out) == 0 || (other == up && connecting)) {
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
    } else if (s->draining && buf_len(&cl->out) == 0 && (buf_len(&up->out) == 0 || connecting) &&
               (up->eof || connecting ||
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
    if (!connecting) {
        if (reading && !up->eof && buf_len(&cl->out) < limit)
            want_up |= REACTOR_READABLE;
        if (buf_len(&up->out) > 0 && !up->failed)
            want_up |= REACTOR_WRITABLE;
        if (want_up != s->up_mask) {
            upstream_conn_watch(&s->up, want_up);
            s->up_mask = want_up;
        }
    }
    if (cl->fd >= 0 && reactor_set(r, cl->fd, want_cl, proxy_client_event, s) != PMX_OK) {
        log_error_errno("#%llu epoll", (unsigned long long)s->id);
        session_close(s, "epoll error");
    }
}

static void proxy_client_event(struct reactor *r, int fd, void *data, int mask)
{
    struct session *s = data;

    if (mask & REACTOR_WRITABLE)
        session_flush(s, &s->client);
    if ((mask & REACTOR_READABLE) && !s->client.eof && s->routing) {
        session_route_read(s);
        return;
    }
    if ((mask & REACTOR_READABLE) && !s->client.eof) {
        session_pump(s, &s->client, s->upstream);
        session_flush(s, s->upstream);
    }
    session_update(s);
}

static void session_upstream_io(struct upstream_conn *uc, int mask)
{
    struct session *s = uc->data;

    if (mask & REACTOR_WRITABLE)
        session_flush(s, s->upstream);
    if ((mask & REACTOR_READABLE) && !s->upstream->eof) {
        session_pump(s, s->upstream, &s->client);
        session_flush(s, &s->client);
    }
    session_update(s);
}

static long session_inactivity_timer(struct reactor *r, long long id, void *data)
{
    struct session *s = data;
    char detail[128];

    s->inactivity_timer = 0;
    snprintf(detail, sizeof(detail), "no byte from the target within inactivity_timeout (%ld ms)",
             s->inactivity_timeout);
    exchange_event(s->px->x, "inactivity", s->dest, detail);
    session_close(s, "inactivity: no byte from the target within inactivity_timeout");
    return REACTOR_TIMER_DONE;
}

static void session_upstream_connected(struct upstream_conn *uc)
{
    struct session *s = uc->data;

    upstream_conn_ok(uc);
    s->up_mask = REACTOR_NONE;      /* the upstream layer watches nothing once connected */
    if (s->inactivity_timeout >= 0) {
        long long id = reactor_timer_add(s->px->x->reactor, s->inactivity_timeout, session_inactivity_timer, s);
        s->inactivity_timer = id > 0 ? id : 0;
    }
    log_debug("#%llu client %s: connected to %s", (unsigned long long)s->id, s->peer, uc->peer);
    session_flush(s, s->upstream);
    session_update(s);
}

static void session_upstream_failed(struct upstream_conn *uc, const char *reason)
{
    struct session *s = uc->data;
    char why[256];

    stats_refused(&s->px->x->stats, STATS_REFUSED_NO_UPSTREAM);
    if (s->dest[0] != '\0') {
        exchange_event(s->px->x, "connect_error", s->dest, reason);
        snprintf(why, sizeof(why), "connect_error: %s", reason);
    } else {
        snprintf(why, sizeof(why), "no target reachable (%s)", reason);
    }
    session_close(s, why);
}

static const struct upstream_conn_events session_upstream_events = {
    .connected = session_upstream_connected,
    .io = session_upstream_io,
    .failed = session_upstream_failed,
};

static void proxy_spare_open(struct proxy_spare *sp);

/* Reads what the target sent on spare sp into sp->early (at most
 * buffer_size bytes in all). Returns false when the spare is dead: the
 * target closed it or it failed (it is then closed, counted as a failure
 * of the target only if it lived less than PROXY_SPARE_MIN_LIFE_MS, and
 * reopened), true while it is open. */
static bool proxy_spare_read(struct proxy_spare *sp)
{
    struct upstream_conn *uc = &sp->up;
    struct proxy *px = sp->px;
    size_t limit = proxy_limit(px);
    ssize_t n;

    do {
        size_t room = limit - PMX_MIN(limit, buf_len(&sp->early));
        if (room == 0) {
            upstream_conn_watch(uc, REACTOR_NONE);
            return true;
        }
        n = conn_read_buf(upstream_conn_socket(uc), &sp->early, PMX_MIN(room, (size_t)PROXY_CHUNK));
    } while (n > 0);
    if (n == PMX_AGAIN)
        return true;
    bool quick = reactor_now(px->x->reactor) - uc->ready_at < PROXY_SPARE_MIN_LIFE_MS;
    upstream_conn_close(uc, n == 0 && !quick ? UPSTREAM_CLOSE_OK : UPSTREAM_CLOSE_FAILED,
                        n == 0 ? "target closed the spare connection" : strerror(errno));
    buf_free(&sp->early);
    proxy_spare_open(sp);
    return false;
}

/* True if spare sp (READY) has lived pool.spare_max_age or longer. */
static bool proxy_spare_old(const struct proxy_spare *sp, uint64_t now)
{
    long max_age = sp->px->x->config->spare_max_age;

    return max_age > 0 && now - sp->up.ready_at >= (uint64_t)max_age;
}

/* Closes a spare that has lived pool.spare_max_age and opens another: the
 * target would close it soon (MySQL's connect_timeout, 10 s by default,
 * counts from the connect, the greeting being unanswered), and one it
 * closes just as a client takes it costs that client its session. Not a
 * failure of the target. */
static void proxy_spare_renew(struct proxy_spare *sp)
{
    upstream_conn_close(&sp->up, UPSTREAM_CLOSE_OK, "replaced: warm spare reached pool.spare_max_age");
    buf_free(&sp->early);
    proxy_spare_open(sp);
}

/* A warm spare ready for client s, or NULL. With ip_hash only one on the
 * target the client's address hashes to will do. A spare is handed over
 * only if it is younger than pool.spare_max_age and still open: what the
 * target sent is read first (this event may come before the one that would
 * have told its close), and one found closed or failed is replaced, not
 * handed over; the next one is tried. */
static struct proxy_spare *proxy_ready_spare(struct proxy *px, const struct session *s)
{
    int want = -1;
    uint64_t now = reactor_now(px->x->reactor);

    if (px->nspares == 0)
        return NULL;
    if (upstream_sticky(px->x->upstream)) {
        want = upstream_pick(px->x->upstream, (const struct sockaddr *)&s->addr, s->addr_len);
        if (want < 0)
            return NULL;
    }
    for (int i = 0; i < px->nspares; i++) {
        struct proxy_spare *sp = &px->spares[(px->next_spare + i) % px->nspares];
        if (sp->up.state != UPSTREAM_READY || (want >= 0 && sp->up.target != want))
            continue;
        if (proxy_spare_old(sp, now)) {
            proxy_spare_renew(sp);
            continue;
        }
        if (!proxy_spare_read(sp)) {
            log_info("warm spare on %s found closed when client %s arrived; not handed over",
                     sp->up.peer, s->peer);
            continue;
        }
        px->next_spare = (px->next_spare + i + 1) % px->nspares;
        return sp;
    }
    return NULL;
}

static void proxy_spare_open(struct proxy_spare *sp)
{
    if (sp->px->x->shutting_down)
        return;
    /* No usable target: reopened when one comes up (proxy_target_up). */
    if (upstream_conn_open(&sp->up, NULL, 0) != PMX_OK)
        log_debug("warm spare: %s; waiting for a target", UPSTREAM_NONE_USABLE);
}

/* ---- routing on the first bytes (SPEC §10) ------------------------------ */

/* Asks what to do with the first bytes of s buffered so far: the service's
 * routes, in order, then, while they have not decided, the script's
 * route() hook (SPEC §10: it decides when routes do not). The hook waiting
 * ({ noop = true }) keeps the client waiting even when no route can match. */
static enum route_result session_decide(struct session *s, struct route_decision *out)
{
    struct proxy *px = s->px;
    struct script *script = px->x->script;
    enum route_result res = ROUTE_RESULT_NO_MATCH;

    /* A NUL after the bytes, not counted in them: regexec() under
     * REG_STARTEND honours the length, but AddressSanitizer's interceptor
     * strlen()s the string first and would read past the buffer. */
    if (buf_reserve(&s->first, 1) != PMX_OK)
        return ROUTE_RESULT_ERROR;
    *buf_end(&s->first) = '\0';
    if (px->routes != NULL)
        res = route_table_decide(px->routes, buf_start(&s->first), buf_len(&s->first), out);
    if (res == ROUTE_RESULT_DECIDED || res == ROUTE_RESULT_ERROR || !script_has(script, "route"))
        return res;
    route_decision_free(out);
    route_decision_init(out);
    if (script_route_client(script, buf_start(&s->first), buf_len(&s->first),
                            (const struct sockaddr *)&s->addr, s->addr_len, out) != PMX_OK)
        return ROUTE_RESULT_DECIDED;    /* a close: the script module logged why */
    return out->action == ROUTE_WAIT ? ROUTE_RESULT_WAIT : ROUTE_RESULT_DECIDED;
}

/* Carries out decision d (ROUTE_TARGET or ROUTE_CLOSE) for s: reply bytes
 * go to the client first; then either the client is closed once they are
 * written (close), or the buffered bytes (or d->data) are queued for the
 * target after any PROXY header, and the session connects. */
static void session_route_apply(struct session *s, const struct route_decision *d, const char *why)
{
    struct proxy *px = s->px;
    struct reactor *r = px->x->reactor;
    struct conn *up = s->upstream;
    int rc;

    s->routing = false;
    if (s->route_timer > 0)
        reactor_timer_del(r, s->route_timer);
    s->route_timer = 0;
    rc = buf_append(&s->client.out, buf_start(&d->reply), buf_len(&d->reply));
    if (d->action == ROUTE_CLOSE) {
        /* The close bytes: route.h puts them in data; reply, if any, first. */
        if (rc == PMX_OK)
            rc = buf_append(&s->client.out, buf_start(&d->data), buf_len(&d->data));
        buf_free(&s->first);
        if (rc != PMX_OK) {
            session_close(s, "out of memory for a route's close bytes");
            return;
        }
        log_info("#%llu client %s: route decided close (%s)", (unsigned long long)s->id, s->peer, why);
        s->close_when_flushed = true;
        session_flush(s, &s->client);
        session_update(s);
        return;
    }
    if (rc == PMX_OK && d->has_data)
        rc = buf_append(&up->out, buf_start(&d->data), buf_len(&d->data));
    else if (rc == PMX_OK)
        rc = buf_append(&up->out, buf_start(&s->first), buf_len(&s->first));
    buf_free(&s->first);
    if (rc != PMX_OK) {
        session_close(s, "out of memory replaying the first bytes");
        return;
    }
    snprintf(s->dest, sizeof(s->dest), "%s", d->target);
    s->connect_timeout = d->connect_timeout;
    s->inactivity_timeout = d->inactivity_timeout;
    log_info("#%llu client %s: routed to %s (%s)", (unsigned long long)s->id, s->peer, s->dest, why);
    session_flush(s, &s->client);
    if (s->client.failed) {
        session_close(s, "client error");
        return;
    }
    session_begin(s);
}

/* No route decided (none can match, route_max_bytes, route_timeout, the
 * client ended): route_default applies. `close` refuses the client
 * (counted under the refusal reason route). */
static void session_route_default(struct session *s, const char *why)
{
    struct proxy *px = s->px;
    const char *def = px->x->config->route_default;
    char reason[256];

    if (def[0] == '\0' || strcmp(def, "close") == 0) {
        stats_refused(&px->x->stats, STATS_REFUSED_ROUTE);
        snprintf(reason, sizeof(reason), "route: %s, route_default close", why);
        session_close(s, reason);
        return;
    }
    struct route_decision d;
    route_decision_init(&d);
    d.action = ROUTE_TARGET;
    snprintf(d.target, sizeof(d.target), "%s", def);
    snprintf(reason, sizeof(reason), "%s, route_default", why);
    session_route_apply(s, &d, reason);
    route_decision_free(&d);
}

/* Asks for a decision over the bytes buffered so far and carries it out,
 * or keeps waiting while a route could still match and there is room. */
static void session_route_try(struct session *s)
{
    const struct service_config *c = s->px->x->config;
    struct route_decision d;

    s->route_tried = buf_len(&s->first);
    route_decision_init(&d);
    enum route_result res = session_decide(s, &d);
    if (res == ROUTE_RESULT_DECIDED && d.action != ROUTE_WAIT) {
        session_route_apply(s, &d, "route matched");
    } else if (res == ROUTE_RESULT_ERROR) {
        session_close(s, "out of memory routing the first bytes");
    } else if (res == ROUTE_RESULT_NO_MATCH) {
        session_route_default(s, "no route matches");
    } else if (buf_len(&s->first) >= (size_t)c->route_max_bytes) {
        session_route_default(s, "route_max_bytes reached");
    } else if (s->client.eof) {
        session_route_default(s, "the client ended its stream before a route decided");
    } else {
        session_update(s);
    }
    route_decision_free(&d);
}

/* Bytes that arrive in small reads are looked at once they have grown the
 * buffer by a quarter (and 64 bytes) since the last look, or once the
 * client has paused for ROUTE_SETTLE_MS: the routes (and route()) run over
 * the whole buffer each time, so a client trickling one byte per read
 * makes O(log n) looks instead of n (a regex over all of them each). */
#define ROUTE_SETTLE_MS 1

static long session_route_settled(struct reactor *r, long long id, void *data)
{
    struct session *s = data;

    s->settle_timer = 0;
    if (s->routing && buf_len(&s->first) > s->route_tried)
        session_route_try(s);
    return REACTOR_TIMER_DONE;
}

/* After a read of the routing phase: decides now, or once the client has
 * paused (the settle timer restarts with each read). */
static void session_route_arrived(struct session *s)
{
    struct reactor *r = s->px->x->reactor;
    size_t have = buf_len(&s->first);

    if (s->route_tried == 0 || have >= s->route_tried + s->route_tried / 4 + 64 ||
        have >= (size_t)s->px->x->config->route_max_bytes) {
        session_route_try(s);
        return;
    }
    if (s->settle_timer > 0)
        reactor_timer_del(r, s->settle_timer);
    long long id = reactor_timer_add(r, ROUTE_SETTLE_MS, session_route_settled, s);
    s->settle_timer = id > 0 ? id : 0;
    if (id <= 0) {
        session_route_try(s);
        return;
    }
    session_update(s);
}

/* The client is readable while routing: its bytes go to `first`, at most
 * route_max_bytes in all (it is not read beyond: the decision is due). */
static void session_route_read(struct session *s)
{
    const struct service_config *c = s->px->x->config;
    size_t have = buf_len(&s->first);
    size_t room = (size_t)c->route_max_bytes - PMX_MIN(have, (size_t)c->route_max_bytes);

    if (room == 0) {
        /* A reload lowered route_max_bytes below what is buffered. */
        session_route_try(s);
        return;
    }
    ssize_t n = conn_read_buf(&s->client, &s->first, PMX_MIN(room, (size_t)PROXY_CHUNK));

    if (n > 0) {
        s->last_active = reactor_now(s->px->x->reactor);
        session_route_arrived(s);
    } else if (n == 0) {
        session_route_try(s);       /* end of stream: decide with what came */
    } else if (n == PMX_ERR) {
        log_info_errno("#%llu client read", (unsigned long long)s->id);
        s->client.failed = true;
        session_update(s);
    } else {
        session_update(s);
    }
}

static long session_route_timer(struct reactor *r, long long id, void *data)
{
    struct session *s = data;

    s->route_timer = 0;
    if (!s->routing)
        return REACTOR_TIMER_DONE;
    /* A last look: a route may decide on bytes that came with the timer. */
    struct route_decision d;
    route_decision_init(&d);
    if (session_decide(s, &d) == ROUTE_RESULT_DECIDED && d.action != ROUTE_WAIT)
        session_route_apply(s, &d, "route matched");
    else
        session_route_default(s, "route_timeout reached");
    route_decision_free(&d);
    return REACTOR_TIMER_DONE;
}

/* Events of a session that is routing or closing after a route's close
 * bytes: the client only. */
static void session_route_update(struct session *s)
{
    struct conn *cl = &s->client;
    int want = REACTOR_NONE;

    if (cl->failed) {
        session_close(s, "client error");
        return;
    }
    if (s->close_when_flushed && buf_len(&cl->out) == 0) {
        session_close(s, "closed by a route");
        return;
    }
    if (s->draining) {
        session_close(s, "shutdown");
        return;
    }
    if (s->routing && !cl->eof)
        want |= REACTOR_READABLE;
    if (buf_len(&cl->out) > 0)
        want |= REACTOR_WRITABLE;
    if (reactor_set(s->px->x->reactor, cl->fd, want, proxy_client_event, s) != PMX_OK) {
        log_error_errno("#%llu epoll", (unsigned long long)s->id);
        session_close(s, "epoll error");
    }
}

/* A client of a routed service: wait for its first bytes, route_timeout
 * at most. */
static void session_route_start(struct session *s)
{
    struct reactor *r = s->px->x->reactor;

    s->routing = true;
    long long id = reactor_timer_add(r, s->px->x->config->route_timeout, session_route_timer, s);
    if (id <= 0) {
        session_close(s, "out of memory for the route timer");
        return;
    }
    s->route_timer = id;
    session_update(s);
}

static void proxy_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
                         socklen_t addr_len)
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
    if (addr != NULL && addr_len <= sizeof(s->addr)) {
        memcpy(&s->addr, addr, addr_len);
        s->addr_len = addr_len;
    }
    conn_init(&s->client, fd);
    buf_init(&s->first);
    s->connect_timeout = -1;
    s->inactivity_timeout = -1;
    upstream_conn_init(x->upstream, &s->up, &session_upstream_events, s);
    s->upstream = upstream_conn_socket(&s->up);
    s->last_active = reactor_now(x->reactor);
    list_init(&s->wait_link);
    list_add_tail(&px->sessions, &s->link);
    exchange_client_added(x);
    log_info("accept #%llu client %s", (unsigned long long)s->id, s->peer);
    if (x->codec != NULL && x->codec->proxy_only) {
        s->mysql = proxy_mysql_new(x, s->id, s->peer, &s->up);
        if (s->mysql == NULL)
            log_error("#%llu client %s: out of memory for the mysql follower; piped, not logged",
                      (unsigned long long)s->id, s->peer);
    }
    if (session_queue_proxy_header(s, x, fd) != PMX_OK) {
        session_close(s, "out of memory for the PROXY header");
        return;
    }
    if (px->routed)
        session_route_start(s);
    else
        session_begin(s);
}

/* Gives client s its upstream connection: a max_active place (or a place
 * in the queue), then a warm spare or a new connection. A routed session
 * never takes a spare: the spare's target was picked by the balancer, the
 * session's by its route. */
static void session_begin(struct session *s)
{
    struct proxy *px = s->px;
    struct exchange *x = px->x;
    const struct service_config *c = x->config;

    if (c->max_active >= 0 && px->active >= c->max_active) {
        if (c->max_queued >= 0 && px->nwaiting >= (size_t)c->max_queued) {
            stats_refused(&x->stats, STATS_REFUSED_MAX_QUEUED);
            session_close(s, "limits.max_active and limits.max_queued reached");
            return;
        }
        /* Its bytes are buffered (up to buffer_size) until it gets a
         * connection. */
        s->waiting = true;
        s->queued_at = s->last_active;
        list_add_tail(&px->waiting, &s->wait_link);
        px->nwaiting++;
        session_update(s);
        return;
    }
    struct proxy_spare *spare = s->dest[0] == '\0' ? proxy_ready_spare(px, s) : NULL;
    if (spare != NULL) {
        s->active = true;
        px->active++;
        /* A spare connected before its client was known: nothing was sent
         * on it, so a PROXY header queued above still goes first. */
        struct buf header = s->upstream->out;
        buf_init(&s->upstream->out);
        upstream_conn_move(&spare->up, &s->up);
        s->upstream->out = header;
        upstream_conn_ok(&s->up);
        buf_free(&s->client.out);
        s->client.out = spare->early;
        buf_init(&spare->early);
        /* The greeting came before the client: the follower starts there. */
        if (s->mysql != NULL && buf_len(&s->client.out) > 0)
            proxy_mysql_feed(s->mysql, false, buf_start(&s->client.out), buf_len(&s->client.out));
        log_debug("#%llu client %s: took warm connection to %s with %zu early bytes",
                  (unsigned long long)s->id, s->peer, s->up.peer, buf_len(&s->client.out));
        proxy_spare_open(spare);
        session_flush(s, s->upstream);
        session_flush(s, &s->client);
    } else if (session_connect(s) != PMX_OK) {
        return;
    }
    session_update(s);
}

/* Warm spares: read what the target sends before a client takes the
 * connection (bounded by buffer_size), and replace a spare the target
 * closes. */
static void proxy_spare_io(struct upstream_conn *uc, int mask)
{
    proxy_spare_read(uc->data);
}

static void proxy_spare_connected(struct upstream_conn *uc)
{
    upstream_conn_watch(uc, REACTOR_READABLE);
}

static void proxy_spare_failed(struct upstream_conn *uc, const char *reason)
{
    /* Tries again after the backoff, or when a target comes up. */
    proxy_spare_open(uc->data);
}

static const struct upstream_conn_events spare_events = {
    .connected = proxy_spare_connected,
    .io = proxy_spare_io,
    .failed = proxy_spare_failed,
};

static int proxy_ready_spares(const struct proxy *px)
{
    int n = 0;

    for (int i = 0; i < px->nspares; i++)
        n += px->spares[i].up.state == UPSTREAM_READY;
    return n;
}

static void proxy_warmup_check(struct proxy *px)
{
    struct exchange *x = px->x;

    if (x->ready)
        return;
    int ready = proxy_ready_spares(px);
    if (ready == px->nspares) {
        log_info("warmup: %d connections ready", ready);
        exchange_ready(x);
    } else if (reactor_now(x->reactor) - px->started >= (uint64_t)x->config->connect_timeout) {
        log_error("warmup: only %d of %d connections ready after %ld ms; accepting clients anyway",
                  ready, px->nspares, x->config->connect_timeout);
        exchange_ready(x);
    }
}

/* (Re)compiles the routes of the configuration in force. The old table is
 * freed first: it may point into the configuration a reload replaced. Out
 * of memory leaves no table: routed clients then get route_default. */
static void proxy_routes_load(struct proxy *px)
{
    const struct service_config *c = px->x->config;
    char err[CONFIG_ERR_MAX];

    if (px->routes != NULL)
        route_table_free(px->routes);
    px->routes = NULL;
    px->routed = c->nroutes > 0 || script_has(px->x->script, "route");
    if (c->nroutes == 0)
        return;
    px->routes = route_table_create(c->routes, c->nroutes, err, sizeof(err));
    if (px->routes == NULL)
        log_error("service %s: routes: %s; clients get route_default", c->name, err);
}

static int proxy_start(struct exchange *x)
{
    const struct service_config *c = x->config;
    struct proxy *px = calloc(1, sizeof(*px));

    if (px == NULL)
        return PMX_ERR;
    list_init(&px->sessions);
    list_init(&px->waiting);
    px->x = x;
    proxy_routes_load(px);
    /* A routed client's target is its route's: a spare the balancer placed
     * in advance cannot serve it, so a routed service keeps none. */
    px->nspares = c->warmup && !px->routed ? c->connections : 0;
    px->scratch = malloc(PROXY_CHUNK);
    px->spares = calloc((size_t)PMX_MAX(px->nspares, 1), sizeof(*px->spares));
    if (px->scratch == NULL || px->spares == NULL) {
        if (px->routes != NULL)
            route_table_free(px->routes);
        free(px->scratch);
        free(px->spares);
        free(px);
        return PMX_ERR;
    }
    px->x = x;
    px->started = reactor_now(x->reactor);
    x->priv = px;
    for (int i = 0; i < px->nspares; i++) {
        px->spares[i].px = px;
        buf_init(&px->spares[i].early);
        upstream_conn_init(x->upstream, &px->spares[i].up, &spare_events, &px->spares[i]);
    }
    for (int i = 0; i < px->nspares; i++)
        proxy_spare_open(&px->spares[i]);
    if (!c->warmup)
        exchange_ready(x);
    else
        proxy_warmup_check(px);
    return PMX_OK;
}

/* A target came up (or a reload changed them): spares closed for lack of a
 * target reopen, and idle spares on a removed or backup target are
 * replaced so that the next clients go to the primaries (fail-back).
 * Sessions keep their connection. */
static void proxy_target_up(struct exchange *x)
{
    struct proxy *px = x->priv;

    for (int i = 0; i < px->nspares; i++) {
        struct proxy_spare *sp = &px->spares[i];
        if (upstream_conn_misplaced(&sp->up)) {
            upstream_conn_close(&sp->up, UPSTREAM_CLOSE_OK, "replaced: target removed, or backup while a primary is up");
            buf_free(&sp->early);
        }
        if (sp->up.state == UPSTREAM_CLOSED)
            proxy_spare_open(sp);
    }
}

static void proxy_tick(struct exchange *x)
{
    struct proxy *px = x->priv;
    const struct service_config *c = x->config;
    uint64_t now = reactor_now(x->reactor);
    struct list_node *n, *next;

    proxy_warmup_check(px);
    proxy_target_up(x);
    for (int i = 0; i < px->nspares && !x->shutting_down; i++) {
        struct proxy_spare *sp = &px->spares[i];
        if (sp->up.state == UPSTREAM_READY && proxy_spare_old(sp, now))
            proxy_spare_renew(sp);
    }
    list_for_each_safe(n, next, &px->sessions) {
        struct session *s = list_entry(n, struct session, link);
        if (s->waiting && c->queue_timeout > 0 && now - s->queued_at >= (uint64_t)c->queue_timeout) {
            stats_refused(&x->stats, STATS_REFUSED_QUEUE_TIMEOUT);
            session_close(s, "queue timeout: no limits.max_active place free in time");
        } else if (s->draining) {
            session_update(s);
        } else if (c->inactive_timeout > 0 && now - s->last_active >= (uint64_t)c->inactive_timeout) {
            session_close(s, "inactive timeout");
        }
    }
    /* A reload may have raised max_active. */
    proxy_kick_waiting(px);
}

static void proxy_shutdown(struct exchange *x, bool fast)
{
    struct proxy *px = x->priv;
    struct list_node *n, *next;

    x->shutting_down = true;
    for (int i = 0; i < px->nspares; i++) {
        upstream_conn_close(&px->spares[i].up, UPSTREAM_CLOSE_OK, "shutdown");
        buf_free(&px->spares[i].early);
    }
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
    /* New clients are routed by the new routes; those routing now too. */
    proxy_routes_load(x->priv);
}

static void proxy_destroy(struct exchange *x)
{
    struct proxy *px = x->priv;

    if (px == NULL)
        return;
    x->shutting_down = true;
    if (px->kick_timer > 0)
        reactor_timer_del(x->reactor, px->kick_timer);
    struct list_node *n, *next;
    list_for_each_safe(n, next, &px->sessions) {
        struct session *s = list_entry(n, struct session, link);
        session_close(s, "exit");
    }
    for (int i = 0; i < px->nspares; i++) {
        upstream_conn_release(&px->spares[i].up);
        buf_free(&px->spares[i].early);
    }
    free(px->spares);
    free(px->scratch);
    if (px->routes != NULL)
        route_table_free(px->routes);
    free(px);
    x->priv = NULL;
}

/* Statistics: sessions waiting for a max_active place, those holding one,
 * and the bytes of the clients still connected. */
static void proxy_gauges(const struct exchange *x, struct stats_gauges *g)
{
    const struct proxy *px = x->priv;
    const struct list_node *n;

    memset(g, 0, sizeof(*g));
    if (px == NULL)
        return;
    g->queued = px->nwaiting;
    g->active = (uint64_t)PMX_MAX(px->active, 0);
    for (n = px->sessions.next; n != &px->sessions; n = n->next) {
        const struct session *s = list_entry(n, struct session, link);
        if (!s->client_released) {
            g->bytes_in += s->client.bytes_in;
            g->bytes_out += s->client.bytes_out;
        }
    }
}

const struct exchange_ops exchange_proxy = {
    .name = "proxy",
    .start = proxy_start,
    .accept = proxy_accept,
    .tick = proxy_tick,
    .target_up = proxy_target_up,
    .shutdown = proxy_shutdown,
    .reload = proxy_reload,
    .destroy = proxy_destroy,
    .gauges = proxy_gauges,
};
