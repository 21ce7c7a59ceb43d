/* Target health: the UP/DOWN/MAINT state machine fed by traffic and probe
 * results, and the active probe, a small connect/send/expect exchange run
 * by the reactor under one timeout timer. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "health.h"
#include "net.h"
#include "reactor.h"

/* ---- state machine ---- */

static void health_change(struct health *h, enum health_state state, uint64_t now)
{
    h->state = state;
    h->fails = 0;
    h->rises = 0;
    h->since = now;
}

void health_init(struct health *h, uint64_t now)
{
    memset(h, 0, sizeof(*h));
    health_change(h, HEALTH_UP, now);
    snprintf(h->reason, sizeof(h->reason), "initial");
}

bool health_failure(struct health *h, int fail_after, const char *reason, uint64_t now)
{
    switch (h->state) {
    case HEALTH_UP: {
        if (++h->fails < PMX_MAX(fail_after, 1))
            return false;
        int fails = h->fails;
        health_change(h, HEALTH_DOWN, now);
        snprintf(h->reason, sizeof(h->reason), "%s (%d consecutive failure%s)",
                 reason ? reason : "failure", fails, fails == 1 ? "" : "s");
        return true;
    }
    case HEALTH_DOWN:
        h->rises = 0;
        return false;
    case HEALTH_MAINT:
        return false;
    }
    return false;
}

void health_traffic_ok(struct health *h)
{
    if (h->state == HEALTH_UP)
        h->fails = 0;
}

bool health_probe_ok(struct health *h, int rise_after, uint64_t now)
{
    switch (h->state) {
    case HEALTH_UP:
        h->fails = 0;
        return false;
    case HEALTH_DOWN: {
        if (++h->rises < PMX_MAX(rise_after, 1))
            return false;
        int rises = h->rises;
        health_change(h, HEALTH_UP, now);
        snprintf(h->reason, sizeof(h->reason), "%d successful probe%s", rises, rises == 1 ? "" : "s");
        return true;
    }
    case HEALTH_MAINT:
        return false;
    }
    return false;
}

bool health_set_maint(struct health *h, bool down, uint64_t now)
{
    /* Already in MAINT, or marked up while not in MAINT: nothing to do. */
    if (down == (h->state == HEALTH_MAINT))
        return false;
    health_change(h, down ? HEALTH_MAINT : HEALTH_UP, now);
    snprintf(h->reason, sizeof(h->reason), down ? "marked down" : "marked up");
    return true;
}

bool health_usable(const struct health *h)
{
    return h->state == HEALTH_UP;
}

const char *health_state_name(enum health_state state)
{
    switch (state) {
    case HEALTH_UP:
        return "up";
    case HEALTH_DOWN:
        return "down";
    case HEALTH_MAINT:
        return "maint";
    }
    return "?";
}

/* ---- active probe ---- */

enum probe_phase {
    PROBE_FAILED,               /* failed inside start: the 0 ms timer reports it */
    PROBE_CONNECTING,
    PROBE_SENDING,
    PROBE_READING,
};

/* Reply bytes are read in chunks of at most this size and compared with
 * expect as they arrive; none are kept. */
#define PROBE_READ_CHUNK 512

struct health_probe {
    struct reactor *r;
    struct conn c;              /* fd -1 once closed */
    long long timer;            /* timeout, or the deferred report of PROBE_FAILED */
    enum probe_phase phase;
    health_probe_fn fn;
    void *data;
    size_t send_len;
    size_t sent;
    size_t expect_len;
    size_t got;                 /* reply bytes that matched so far */
    char reason[HEALTH_REASON_MAX]; /* PROBE_FAILED's reason */
    char bytes[];               /* send, then expect */
};

/* Closes the socket and stops the timer (unless the caller is that timer). */
static void probe_release(struct health_probe *p)
{
    conn_close(&p->c, p->r);
    if (p->timer > 0)
        reactor_timer_del(p->r, p->timer);
    p->timer = 0;
}

/* Reports the outcome once and frees the probe. */
static void probe_finish(struct health_probe *p, bool ok, const char *reason)
{
    probe_release(p);
    p->fn(p->data, ok, reason);
    free(p);
}

static void probe_fail_errno(struct health_probe *p, const char *what, int err)
{
    char reason[HEALTH_REASON_MAX];

    snprintf(reason, sizeof(reason), "%s: %s", what, strerror(err));
    probe_finish(p, false, reason);
}

static void probe_on_event(struct reactor *r, int fd, void *data, int mask);

/* Sends what is left of send, then waits for the reply or reports
 * success. */
static void probe_send(struct health_probe *p)
{
    if (p->sent < p->send_len) {
        ssize_t n = conn_write(&p->c, p->bytes + p->sent, p->send_len - p->sent);
        if (n < 0) {
            probe_fail_errno(p, "send", errno);
            return;
        }
        p->sent += (size_t)n;
        if (p->sent < p->send_len)
            return;             /* still watching WRITABLE */
    }
    if (p->expect_len == 0) {
        probe_finish(p, true, "connected");
        return;
    }
    p->phase = PROBE_READING;
    if (reactor_set(p->r, p->c.fd, REACTOR_READABLE, probe_on_event, p) != PMX_OK)
        probe_fail_errno(p, "reactor", errno);
}

static void probe_connected(struct health_probe *p)
{
    struct sockaddr_storage peer;
    socklen_t len = sizeof(peer);

    if (net_connect_result(p->c.fd) != PMX_OK) {
        probe_fail_errno(p, "connect", errno);
        return;
    }
    /* A writable event for an fd number reused within one epoll batch can
     * arrive before the connect completed: no peer yet means wait on. */
    if (getpeername(p->c.fd, (struct sockaddr *)&peer, &len) < 0) {
        if (errno != ENOTCONN)
            probe_fail_errno(p, "connect", errno);
        return;
    }
    p->phase = PROBE_SENDING;
    probe_send(p);
}

static void probe_read(struct health_probe *p)
{
    const char *expect = p->bytes + p->send_len;
    char chunk[PROBE_READ_CHUNK];
    size_t want = PMX_MIN(sizeof(chunk), p->expect_len - p->got);
    ssize_t n = conn_read(&p->c, chunk, want);

    if (n == PMX_AGAIN)
        return;
    if (n < 0) {
        probe_fail_errno(p, "read", errno);
        return;
    }
    if (n == 0) {
        probe_finish(p, false, p->got == 0 ? "closed before reply" : "closed in the middle of the reply");
        return;
    }
    if (memcmp(chunk, expect + p->got, (size_t)n) != 0) {
        probe_finish(p, false, "reply does not start with expected bytes");
        return;
    }
    p->got += (size_t)n;
    if (p->got == p->expect_len)
        probe_finish(p, true, "reply matched");
}

static void probe_on_event(struct reactor *r, int fd, void *data, int mask)
{
    struct health_probe *p = data;

    switch (p->phase) {
    case PROBE_CONNECTING:
        probe_connected(p);
        break;
    case PROBE_SENDING:
        probe_send(p);
        break;
    case PROBE_READING:
        probe_read(p);
        break;
    case PROBE_FAILED:
        break;
    }
}

static long probe_on_timer(struct reactor *r, long long id, void *data)
{
    struct health_probe *p = data;
    static const char *const timeouts[] = {
        [PROBE_CONNECTING] = "connect timeout",
        [PROBE_SENDING] = "send timeout",
        [PROBE_READING] = "reply timeout",
    };

    p->timer = 0;               /* the reactor deletes it on REACTOR_TIMER_DONE */
    if (p->phase == PROBE_FAILED)
        probe_finish(p, false, p->reason);
    else
        probe_finish(p, false, timeouts[p->phase]);
    return REACTOR_TIMER_DONE;
}

struct health_probe *health_probe_start(struct reactor *r, const struct sockaddr *addr, socklen_t len,
                                        const char *send, size_t send_len,
                                        const char *expect, size_t expect_len,
                                        long timeout_ms, health_probe_fn fn, void *data)
{
    if (expect_len > SIZE_MAX - sizeof(struct health_probe)
        || send_len > SIZE_MAX - sizeof(struct health_probe) - expect_len) {
        errno = ENOMEM;
        return NULL;
    }
    struct health_probe *p = calloc(1, sizeof(*p) + send_len + expect_len);
    if (p == NULL)
        return NULL;
    p->r = r;
    p->fn = fn;
    p->data = data;
    p->send_len = send_len;
    p->expect_len = expect_len;
    if (send_len > 0)
        memcpy(p->bytes, send, send_len);
    if (expect_len > 0)
        memcpy(p->bytes + send_len, expect, expect_len);

    /* An immediate failure is kept in p->reason and reported by a 0 ms
     * timer, so that fn never runs inside this call. */
    int fd = net_connect(addr, len, false);
    int err = errno;
    conn_init(&p->c, fd);
    p->phase = PROBE_CONNECTING;
    if (fd < 0) {
        snprintf(p->reason, sizeof(p->reason), "connect: %s", strerror(err));
        p->phase = PROBE_FAILED;
    } else if (reactor_add(r, fd, REACTOR_WRITABLE, probe_on_event, p) != PMX_OK) {
        snprintf(p->reason, sizeof(p->reason), "reactor: %s", strerror(errno));
        conn_close(&p->c, r);
        p->phase = PROBE_FAILED;
    }
    p->timer = reactor_timer_add(r, p->phase == PROBE_FAILED ? 0 : timeout_ms, probe_on_timer, p);
    if (p->timer == PMX_ERR) {
        p->timer = 0;
        probe_release(p);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

void health_probe_cancel(struct health_probe *p)
{
    if (p == NULL)
        return;
    probe_release(p);
    free(p);
}
