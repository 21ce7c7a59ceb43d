/* Upstream connections: connects with timeouts, target fail-over and capped
 * exponential backoff, for a fixed set of slots. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pool.h"
#include "reactor.h"

int pool_connect(const struct service_config *c, int t)
{
    const struct target_config *target = &c->targets[t];

    return net_connect((const struct sockaddr *)&target->addr, target->addr_len, target->keep_alive);
}

int pool_init(struct pool *p, struct reactor *r, const struct service_config *c, int n,
              const struct pool_events *events, void *data)
{
    memset(p, 0, sizeof(*p));
    p->slots = calloc((size_t)n, sizeof(*p->slots));
    if (p->slots == NULL)
        return PMX_ERR;
    p->reactor = r;
    p->config = c;
    p->nslots = n;
    p->events = *events;
    p->data = data;
    for (int i = 0; i < n; i++) {
        struct pool_slot *s = &p->slots[i];
        s->pool = p;
        s->index = i;
        s->state = SLOT_CLOSED;
        conn_init(&s->conn, -1);
        buf_init(&s->in);
        s->target = i % c->ntargets;
    }
    return PMX_OK;
}

void pool_destroy(struct pool *p)
{
    for (int i = 0; i < p->nslots; i++) {
        conn_close(&p->slots[i].conn, p->reactor);
        buf_free(&p->slots[i].in);
    }
    free(p->slots);
    p->slots = NULL;
    p->nslots = 0;
}

static void pool_slot_event(struct reactor *r, int fd, void *data, int mask);

/* The delay before the next connect after failures in a row: none while
 * other targets are left to try, then backoff_min doubling up to
 * backoff_max. */
static long pool_backoff(const struct pool *p, const struct pool_slot *s)
{
    const struct service_config *c = p->config;

    if (s->failures == 0 || s->failures % c->ntargets != 0)
        return 0;
    long delay = c->backoff_min;
    for (int round = s->failures / c->ntargets; round > 1 && delay < c->backoff_max; round--)
        delay *= 2;
    return PMX_MIN(delay, c->backoff_max);
}

static void pool_fail(struct pool *p, struct pool_slot *s, const char *reason)
{
    const struct service_config *c = p->config;

    /* The first failure is an error; the retries that follow, one per
     * target and backoff round, would flood the log at that level. */
    if (s->failures == 0)
        log_error("upstream #%llu slot %d: connect to %s failed: %s; retrying with backoff",
                  (unsigned long long)s->id, s->index, s->peer, reason);
    else
        log_info("upstream #%llu slot %d: connect to %s failed again (%d in a row): %s",
                 (unsigned long long)s->id, s->index, s->peer, s->failures + 1, reason);
    conn_close(&s->conn, p->reactor);
    s->failures++;
    s->target = (s->target + 1) % c->ntargets;
    long delay = pool_backoff(p, s);
    s->state = SLOT_BACKOFF;
    s->deadline = reactor_now(p->reactor) + (uint64_t)delay;
    if (p->events.connect_failed)
        p->events.connect_failed(p, s, reason);
    if (delay == 0 && s->state == SLOT_BACKOFF && !p->stopped) {
        s->state = SLOT_CLOSED;
        pool_open(p, s);
    }
}

void pool_open(struct pool *p, struct pool_slot *s)
{
    const struct service_config *c = p->config;

    if (p->stopped || s->state == SLOT_CONNECTING || s->state == SLOT_READY)
        return;
    if (s->target >= c->ntargets)
        s->target = s->index % c->ntargets;
    s->id = conn_next_id();
    net_format_addr((const struct sockaddr *)&c->targets[s->target].addr, c->targets[s->target].addr_len,
                    s->peer, sizeof(s->peer));
    int fd = pool_connect(c, s->target);
    s->state = SLOT_CONNECTING;
    s->deadline = reactor_now(p->reactor) + (uint64_t)c->connect_timeout;
    if (fd < 0) {
        pool_fail(p, s, strerror(errno));
        return;
    }
    conn_init(&s->conn, fd);
    if (reactor_add(p->reactor, fd, REACTOR_WRITABLE, pool_slot_event, s) != PMX_OK) {
        pool_fail(p, s, strerror(errno));
        return;
    }
    log_debug("upstream #%llu slot %d: connecting to %s", (unsigned long long)s->id, s->index, s->peer);
}

void pool_close(struct pool *p, struct pool_slot *s, const char *reason, bool retry)
{
    if (s->state == SLOT_READY || s->state == SLOT_CONNECTING)
        log_info("upstream #%llu slot %d: close %s: %s (in %llu, out %llu bytes)",
                 (unsigned long long)s->id, s->index, s->peer, reason,
                 (unsigned long long)s->conn.bytes_in, (unsigned long long)s->conn.bytes_out);
    conn_close(&s->conn, p->reactor);
    buf_free(&s->in);
    s->state = SLOT_CLOSED;
    if (!retry || p->stopped)
        return;
    long delay = pool_backoff(p, s);
    if (delay == 0) {
        pool_open(p, s);
    } else {
        s->state = SLOT_BACKOFF;
        s->deadline = reactor_now(p->reactor) + (uint64_t)delay;
    }
}

void pool_close_failed(struct pool *p, struct pool_slot *s, const char *reason)
{
    s->failures++;
    s->target = (s->target + 1) % p->config->ntargets;
    pool_close(p, s, reason, true);
}

int pool_take(struct pool *p, struct pool_slot *s, struct buf *early)
{
    int fd = s->conn.fd;

    reactor_del(p->reactor, fd, REACTOR_READABLE | REACTOR_WRITABLE);
    buf_free(early);
    *early = s->in;
    buf_init(&s->in);
    conn_init(&s->conn, -1);
    s->state = SLOT_CLOSED;
    s->failures = 0;
    pool_open(p, s);
    return fd;
}

void pool_watch(struct pool *p, struct pool_slot *s, int mask)
{
    if (s->conn.fd < 0)
        return;
    if (reactor_set(p->reactor, s->conn.fd, mask, pool_slot_event, s) != PMX_OK)
        log_error_errno("upstream #%llu: epoll", (unsigned long long)s->id);
}

static void pool_slot_event(struct reactor *r, int fd, void *data, int mask)
{
    struct pool_slot *s = data;
    struct pool *p = s->pool;

    if (s->state == SLOT_CONNECTING) {
        if (net_connect_result(fd) != PMX_OK) {
            pool_fail(p, s, strerror(errno));
            return;
        }
        /* failures is reset by the owner once the connection has proved
         * itself (a response, a client taking it): a target that accepts
         * and closes at once must still back off. */
        s->state = SLOT_READY;
        s->last_active = reactor_now(r);
        log_info("upstream #%llu slot %d: connected to %s", (unsigned long long)s->id, s->index, s->peer);
        pool_watch(p, s, REACTOR_READABLE);
        if (p->events.connected)
            p->events.connected(p, s);
        return;
    }
    if (s->state == SLOT_READY)
        p->events.io(p, s, mask);
}

void pool_tick(struct pool *p)
{
    uint64_t now = reactor_now(p->reactor);

    for (int i = 0; i < p->nslots; i++) {
        struct pool_slot *s = &p->slots[i];
        if (s->state == SLOT_CONNECTING && now >= s->deadline) {
            pool_fail(p, s, "connect timeout");
        } else if (s->state == SLOT_BACKOFF && now >= s->deadline && !p->stopped) {
            s->state = SLOT_CLOSED;
            pool_open(p, s);
        }
    }
}

int pool_ready_count(const struct pool *p)
{
    int n = 0;

    for (int i = 0; i < p->nslots; i++)
        n += p->slots[i].state == SLOT_READY;
    return n;
}
