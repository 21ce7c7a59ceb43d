/* What a route (SPEC §10) or the Lua route() hook (SPEC §11) decided for a
 * proxy-mode client from its first bytes. Filled by the routes module or by
 * the script module, carried out by the proxy exchange. */
#ifndef ROUTE_DECISION_H
#define ROUTE_DECISION_H

#include <stddef.h>

#include "buf.h"

enum route_action {
    ROUTE_WAIT = 0,     /* nothing decided yet: wait for more bytes (nil, { noop = true }) */
    ROUTE_TARGET,       /* proxy to target (a target name or HOST:PORT) */
    ROUTE_CLOSE,        /* send close_bytes (may be empty), then close */
};

struct route_decision {
    enum route_action action;
    char target[512];           /* ROUTE_TARGET: a target name of the service, or "HOST:PORT" / "[V6]:PORT" */
    /* ROUTE_TARGET: bytes sent to the client before anything else. */
    struct buf reply;
    /* ROUTE_TARGET: bytes sent upstream instead of the buffered ones when
     * has_data; ROUTE_CLOSE: the bytes sent before closing (reply). */
    struct buf data;
    int has_data;
    long connect_timeout;       /* ms, this session only; -1: the service's pool.connect_timeout */
    long inactivity_timeout;    /* ms from connect to the target's first byte; -1: none */
};

/* Sets d to ROUTE_WAIT with empty buffers and no timeouts. */
static inline void route_decision_init(struct route_decision *d)
{
    d->action = ROUTE_WAIT;
    d->target[0] = '\0';
    buf_init(&d->reply);
    buf_init(&d->data);
    d->has_data = 0;
    d->connect_timeout = -1;
    d->inactivity_timeout = -1;
}

/* Frees the buffers of d. */
static inline void route_decision_free(struct route_decision *d)
{
    buf_free(&d->reply);
    buf_free(&d->data);
}

#endif
