/* Upstream connections: non-blocking connects to the targets, and a fixed
 * set of slots that stay connected, with connect timeouts, fail-over to the
 * other targets and capped exponential backoff. Proxy mode keeps its warm
 * spares here; FIFO and funnel modes keep their shared connections here. */
#ifndef POOL_H
#define POOL_H

#include <stdbool.h>
#include <stdint.h>
#include "buf.h"
#include "conn.h"
#include "pmx.h"

struct service_config;
struct reactor;
struct pool;

enum pool_state {
    SLOT_CLOSED,        /* no socket; opened on demand */
    SLOT_CONNECTING,    /* connect() in progress, deadline = connect timeout */
    SLOT_READY,         /* connected; events go to the owner */
    SLOT_BACKOFF,       /* waiting until deadline before connecting again */
};

struct pool_slot {
    struct pool *pool;
    int index;
    enum pool_state state;
    struct conn conn;
    struct buf in;          /* bytes read from the upstream, not yet handled */
    int target;             /* index of the target in use or being tried */
    int failures;           /* consecutive failed connects */
    uint64_t deadline;      /* connect timeout or end of backoff (ms) */
    uint64_t last_active;   /* last byte in or out (ms) */
    uint64_t id;            /* connection id for logs */
    char peer[NET_ADDR_MAX];
};

/* What the owner of a pool is told. */
struct pool_events {
    /* The slot is connected and registered for reading. May be NULL. */
    void (*connected)(struct pool *p, struct pool_slot *s);
    /* The slot's socket is readable/writable (mask as in the reactor). */
    void (*io)(struct pool *p, struct pool_slot *s, int mask);
    /* A connect failed; the slot retries by itself. May be NULL. */
    void (*connect_failed)(struct pool *p, struct pool_slot *s, const char *reason);
};

struct pool {
    struct reactor *reactor;
    const struct service_config *config;
    struct pool_slot *slots;
    int nslots;
    struct pool_events events;
    void *data;             /* the owner's */
    bool stopped;           /* no more connects */
};

/* Starts a non-blocking connect to target number t of config c. Returns the
 * socket or PMX_ERR (errno set). */
int pool_connect(const struct service_config *c, int t) PMX_WUR;

/* Creates n slots, all SLOT_CLOSED. Returns PMX_OK or PMX_ERR (ENOMEM). */
int pool_init(struct pool *p, struct reactor *r, const struct service_config *c, int n,
              const struct pool_events *events, void *data) PMX_WUR;
void pool_destroy(struct pool *p);

/* Starts connecting a CLOSED slot now. */
void pool_open(struct pool *p, struct pool_slot *s);

/* Closes the slot's socket and drops its input. With retry, reconnects after
 * the backoff owed to its failures (at once if it has none); otherwise the
 * slot stays CLOSED until pool_open(). */
void pool_close(struct pool *p, struct pool_slot *s, const char *reason, bool retry);

/* Hands a READY slot's connection to the caller: returns its socket (no
 * longer watched) and moves the bytes it has received into early; the slot
 * reconnects at once to replace it. */
int pool_take(struct pool *p, struct pool_slot *s, struct buf *early) PMX_WUR;

/* Like pool_close(..., retry), for a connection that failed (reset, closed
 * with requests in flight, timed out, misbehaved): counts the failure and
 * moves the slot on to the next target, as a failed connect does. */
void pool_close_failed(struct pool *p, struct pool_slot *s, const char *reason);

/* Registers interest for a READY slot: mask as in the reactor. */
void pool_watch(struct pool *p, struct pool_slot *s, int mask);

/* Connect timeouts and backoff expiry; call from the janitor. */
void pool_tick(struct pool *p);

/* Number of READY slots. */
int pool_ready_count(const struct pool *p);

#endif
