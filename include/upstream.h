/* The upstream layer of a service: its targets (address, health, weight,
 * counters), the balancer that picks a target for each new connection, the
 * probes of down targets, target names re-resolved off the loop, and the
 * one connect engine (connect timeout, retries on other targets, backoff)
 * that proxy sessions and the fifo/funnel pools both use.
 *
 * An owner embeds a struct upstream_conn for each upstream connection it
 * keeps (a proxy session's, a warm spare, a fifo/funnel pool connection)
 * and drives it through the functions below; it reads the fields marked
 * read-only and never writes them.
 *
 *   upstream_conn_open() --> CONNECTING --connected--> READY --close--> CLOSED
 *        |                     | failed: retry another target (retries)
 *        | no usable target    | every try failed: events->failed(),
 *        v                     v   CLOSED; the next open waits for the
 *      CLOSED               BACKOFF (backoff_min doubling to backoff_max)
 */
#ifndef UPSTREAM_H
#define UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "balancer.h"
#include "conn.h"
#include "health.h"
#include "list.h"
#include "net.h"
#include "pmx.h"

struct reactor;
struct resolver;
struct service_config;
struct target_config;
struct upstream;
struct upstream_conn;

/* The reason given when no target is usable: also the error text clients
 * get (resp "-ERR proximux: no upstream available"). */
#define UPSTREAM_NONE_USABLE "no upstream available"

/* Targets one open may try: the first and up to `retries` others (the
 * configuration allows at most 100). */
#define UPSTREAM_MAX_TRIES 101

/* Host name lookups of ad hoc addresses (upstream_conn_open_host) in
 * progress at once per service; one more fails at once (the client is
 * closed) rather than queue behind a slow DNS. */
#define UPSTREAM_MAX_LOOKUPS 64

enum upstream_conn_state {
    UPSTREAM_CLOSED,            /* no socket */
    UPSTREAM_CONNECTING,        /* connect() in progress, under connect_timeout */
    UPSTREAM_READY,             /* connected: the owner does the I/O */
    UPSTREAM_BACKOFF,           /* waiting before connecting again; the engine reconnects */
};

struct upstream_conn_events {
    /* Connected; watched for nothing yet: the owner calls
     * upstream_conn_watch(). */
    void (*connected)(struct upstream_conn *uc);
    /* The READY socket is readable or writable (REACTOR_* mask). */
    void (*io)(struct upstream_conn *uc, int mask);
    /* Connecting gave up: the first target and up to `retries` others
     * failed, or no target is usable. The connection is CLOSED; reason is
     * the last failure (UPSTREAM_NONE_USABLE when none was usable). */
    void (*failed)(struct upstream_conn *uc, const char *reason);
};

struct upstream_conn {
    /* read-only */
    enum upstream_conn_state state;
    struct conn conn;           /* the socket: I/O through conn_*() and upstream_conn_socket() */
    int target;                 /* index of the target connected or being tried; -1 none */
    uint64_t id;                /* connection id for logs */
    char peer[NET_ADDR_MAX];    /* the target's address */
    uint64_t ready_at;          /* ms when it became READY */
    void *data;                 /* the owner's, given to upstream_conn_init() */
    /* private */
    struct upstream *u;
    const struct upstream_conn_events *events;
    int tries;                  /* targets tried in this open */
    int tried[UPSTREAM_MAX_TRIES];  /* those tried, not picked again in this open */
    int giveups;                /* opens in a row that gave up: backoff */
    uint64_t deadline;          /* connect timeout or end of backoff (ms) */
    uint64_t not_before;        /* no connect before this (ms): backoff */
    uint64_t connect_started_us;
    struct sockaddr_storage client;     /* for ip_hash: the client's address */
    socklen_t client_len;
    /* Set by upstream_conn_open_target/_host for one open: the target
     * index tried (no other), or an ad hoc address outside the targets
     * (adhoc: target stays -1, no health, no balancing). */
    int fixed_target;
    bool adhoc;
    struct sockaddr_storage adhoc_addr; /* adhoc_len 0: still being resolved */
    socklen_t adhoc_len;
    long long lookup;                   /* resolver lookup in progress, 0 none */
    long connect_timeout;               /* ms for this open; -1: pool.connect_timeout */
    struct list_node pending;   /* in u->pending while CONNECTING or BACKOFF */
    struct list_node link;      /* in u->conns */
};

/* What the owner of the upstream layer hears. */
struct upstream_owner {
    /* A target became usable (up after its probes, marked up, resolved):
     * connections closed for lack of a target may open again. */
    void (*target_up)(void *data);
    /* Every change of a target's state (may be NULL): event is
     * "target_down" or "target_up", reason why (the Lua on_event hook). */
    void (*target_event)(void *data, const char *event, const char *target, const char *reason);
    void *data;
    /* least_latency samples connect times (proxy mode) rather than the
     * response times the owner reports (fifo/funnel). */
    bool connect_latency;
};

/* One target as the service sees it, for statistics and the admin API. */
struct upstream_target_info {
    const char *name;
    const char *address;        /* "1.2.3.4:6379", "unix:/path", "-" before resolution */
    enum health_state state;
    const char *reason;         /* why the last state change */
    unsigned conns;             /* open upstream connections */
    int weight;
    bool backup;
    uint64_t connects;          /* connects started (statistics) */
    uint64_t connect_errors;    /* connects failed */
    uint64_t requests;          /* requests it answered (upstream_conn_answered) */
    uint64_t bytes_sent;        /* bytes written to it on connections closed so far */
    uint64_t bytes_received;    /* bytes read from it, same (upstream_open_bytes() has the open ones) */
    bool draining;              /* removed at runtime: no new connections, gone once it has none */
};

/* Creates the upstream layer of service c (its targets, balancer and
 * probes) on r; rs resolves target names (may be NULL: names keep the
 * address config_load() found). Returns NULL when out of memory. */
struct upstream *upstream_create(struct reactor *r, struct resolver *rs, const struct service_config *c,
                                 const struct upstream_owner *owner);

/* Frees it; every upstream_conn must have been released before. */
void upstream_destroy(struct upstream *u);

/* The configuration was reloaded: targets are matched by name (health and
 * counters kept), added or removed; established connections to a removed
 * target finish; weights, balance, health and limits apply from now on.
 * Returns PMX_OK, or PMX_ERR (out of memory: the old targets stay). */
int upstream_reload(struct upstream *u, const struct service_config *c) PMX_WUR;

/* Janitor: connect timeouts, backoff expiry, re-resolution. */
void upstream_tick(struct upstream *u);

/* Stops everything that runs by itself (probes, resolution, reconnects
 * after backoff): the service is shutting down or was replaced. Opens its
 * owner asks for still work (its remaining clients are served). */
void upstream_stop(struct upstream *u);

/* Whether at least one target may take a new connection. */
bool upstream_available(const struct upstream *u);

/* Number of targets and their state, for logs and the admin API. */
int upstream_target_count(const struct upstream *u);
void upstream_target_info(const struct upstream *u, int i, struct upstream_target_info *out);

/* Calls fn(data, target, sent, received) with the bytes of each open
 * connection to a target (what upstream_target_info() leaves out): one
 * walk of the connections for a snapshot of every target. */
void upstream_open_bytes(const struct upstream *u,
                         void (*fn)(void *data, int target, uint64_t sent, uint64_t received), void *data);

/* The upstream connections of u by state: counts[enum upstream_conn_state]. */
void upstream_conn_states(const struct upstream *u, uint64_t counts[4]);

/* The name of target i, "" when i is not a target's index (a log line's
 * target field: cheap, unlike upstream_target_info). */
const char *upstream_target_name(const struct upstream *u, int i);

/* The index of the target called name, or -1. */
int upstream_target_find(const struct upstream *u, const char *name);

/* Adds a target at runtime (admin API) at the end of the list; tc is
 * copied (addr resolved already, or addr_len 0 and a host name the
 * resolver looks up). It takes new connections at once and lasts until the
 * next reload. Returns PMX_OK, or PMX_ERR with the reason in err (name
 * taken, CONFIG_MAX_TARGETS reached, out of memory). */
int upstream_target_add(struct upstream *u, const struct target_config *tc, char *err, size_t errlen) PMX_WUR;

/* Drains target i: it takes no new connection, pool connections on it are
 * replaced once idle (as after a reload), proxy sessions keep theirs; it
 * leaves the list (indexes after it shift down) once it has no connection,
 * at once or at a later upstream_tick(). */
void upstream_target_drain(struct upstream *u, int i);

/* Marks target i down for maintenance (skipped until marked up) or up. */
void upstream_target_set_maint(struct upstream *u, int i, bool down);

/* The target the balancer would give a client at addr now (ip_hash: the
 * target its address hashes to), or -1 when none is usable. For handing
 * such a client a warm spare on that target. Round robin and the other
 * stateful strategies advance as if a connection had been opened. */
int upstream_pick(struct upstream *u, const struct sockaddr *client, socklen_t client_len);

/* Whether the balancer keeps a client on a target of its own (ip_hash):
 * then a warm spare may only go to a client whose target it is on. */
bool upstream_sticky(const struct upstream *u);

/* Makes uc a CLOSED connection of u that reports to events with data. */
void upstream_conn_init(struct upstream *u, struct upstream_conn *uc,
                        const struct upstream_conn_events *events, void *data);

/* Closes uc if open and detaches it from u: it may be freed after. */
void upstream_conn_release(struct upstream_conn *uc);

/* Starts connecting a CLOSED connection: the balancer picks the target
 * (client is the client's address for ip_hash, NULL for pool connections).
 * Returns PMX_OK when CONNECTING or BACKOFF (the engine connects when the
 * backoff ends), PMX_ERR when no target is usable or every try failed at
 * once (the connection stays CLOSED; nothing is reported; errno is EMFILE
 * or ENFILE when the process ran out of descriptors, 0 otherwise). An open or connecting one is left alone
 * (PMX_OK). Bytes already in uc->conn.out are sent once connected. */
int upstream_conn_open(struct upstream_conn *uc, const struct sockaddr *client, socklen_t client_len) PMX_WUR;

/* Like upstream_conn_open(), but to target i only (a route named it): it
 * is tried once if usable (health applies), never another target (retries
 * move between targets, so they do not apply). connect_timeout in ms, -1:
 * pool.connect_timeout. Returns PMX_ERR with *why set when the target is
 * not usable or the connect failed at once; the connection stays CLOSED
 * and nothing is reported. Failures later go to events->failed(). */
int upstream_conn_open_target(struct upstream_conn *uc, int i, long connect_timeout, const char **why) PMX_WUR;

/* Connects to host:port outside the targets (an address a route built from
 * the client's bytes): no health, no balancing, one try. A name is looked
 * up off the loop by the service's resolver (UPSTREAM_MAX_LOOKUPS at
 * once); connect_timeout (ms, -1: pool.connect_timeout) covers the lookup
 * and the connect. host may be "[v6]". Returns as upstream_conn_open_target. */
int upstream_conn_open_host(struct upstream_conn *uc, const char *host, int port, long connect_timeout,
                            const char **why) PMX_WUR;

/* How a connection ended, for the target's health. */
enum upstream_close {
    UPSTREAM_CLOSE_OK,          /* idle close, shutdown, the owner is done */
    UPSTREAM_CLOSE_FAILED,      /* reset, timeout, closed with work in flight: a failure of the target */
};

/* Closes the socket (pending output is dropped); the connection is CLOSED
 * and may be opened again. */
void upstream_conn_close(struct upstream_conn *uc, enum upstream_close how, const char *reason);

/* The target answered a request on uc: counted for its statistics. */
void upstream_conn_answered(struct upstream_conn *uc);

/* The connection proved itself (a response arrived; a proxy session
 * connected): the target's failure count and the backoff start over. */
void upstream_conn_ok(struct upstream_conn *uc);

/* A latency sample for least_latency: response time (fifo/funnel) in
 * microseconds. Ignored under the other strategies. */
void upstream_conn_observe(struct upstream_conn *uc, uint32_t us);

/* Whether least_latency wants samples (upstream_conn_observe is worth a
 * clock read). */
bool upstream_wants_latency(const struct upstream *u);

/* Whether a READY connection should be replaced by a new one the balancer
 * places: its target was removed by a reload, or it is on a backup target
 * while a non-backup target is usable again (fail-back). */
bool upstream_conn_misplaced(const struct upstream_conn *uc);

/* Sets the events a READY connection is watched for (REACTOR_* mask). */
void upstream_conn_watch(struct upstream_conn *uc, int mask);

/* The connection's socket and output buffer, for the owner's I/O. */
struct conn *upstream_conn_socket(struct upstream_conn *uc);

/* Moves the READY connection from into the CLOSED connection to (of the
 * same upstream): a warm spare handed to a client. from is CLOSED after;
 * to reports to its own events and is watched for nothing yet. */
void upstream_conn_move(struct upstream_conn *from, struct upstream_conn *to);

/* Microseconds on the monotonic clock (for latency samples). */
uint64_t upstream_clock_us(void);

#endif
