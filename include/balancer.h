/* Balancing: which target a new upstream connection (fifo/funnel) or a new
 * client (proxy) goes to. The upstream layer owns the targets and fills a
 * balancer_target for each; the balancer only reads them, keeps its own
 * per-strategy state, and picks an index. */
#ifndef BALANCER_H
#define BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "pmx.h"

enum balance_strategy {
    BALANCE_ROUND_ROBIN = 0,    /* smooth weighted round robin (nginx) */
    BALANCE_RANDOM,             /* weighted random */
    BALANCE_IP_HASH,            /* consistent hashing of the client address */
    BALANCE_LEAST_CONN,         /* fewest open upstream connections, ties by weight */
    BALANCE_LEAST_LATENCY,      /* lowest recent latency, a small share explores */
    BALANCE_FIRST,              /* first usable in order: fail-over only */
};

#define BALANCER_LATENCY_WINDOW 16  /* samples kept per target */

/* One target as the balancer sees it. The upstream layer writes the
 * public fields before each pick; the balancer owns the private ones. */
struct balancer_target {
    /* public */
    const char *name;           /* stable identity: ip_hash places it on the ring by name */
    int weight;                 /* 1..1000 */
    bool usable;                /* up, not draining, not marked down */
    bool backup;                /* used only while no non-backup target is usable */
    unsigned conns;             /* open upstream connections to it */
    /* private */
    int64_t current;            /* smooth round robin */
    uint32_t latency_us[BALANCER_LATENCY_WINDOW];
    unsigned nlatency;          /* samples recorded so far (ring index = nlatency % WINDOW) */
};

struct balancer;

/* Name <-> strategy, for the configuration ("round_robin", "random",
 * "ip_hash", "least_conn", "least_latency", "first"). Returns PMX_ERR for an
 * unknown name. */
int balancer_strategy_parse(const char *name, enum balance_strategy *out) PMX_WUR;
const char *balancer_strategy_name(enum balance_strategy s);
/* "round_robin, random, ip_hash, least_conn, least_latency, first" */
const char *balancer_strategy_names(void);

/* A balancer for strategy; seed makes random choices reproducible. NULL
 * when out of memory. */
struct balancer *balancer_create(enum balance_strategy s, uint32_t seed);
void balancer_destroy(struct balancer *b);

/* The set of targets changed (added, removed, renamed, reweighted): called
 * before the next pick with the new array. ip_hash rebuilds its ring (only
 * the changed targets' share of clients moves); round robin resets its
 * state. Returns PMX_OK or PMX_ERR (ENOMEM; the old state is kept). */
int balancer_update(struct balancer *b, struct balancer_target *t, size_t n) PMX_WUR;

/* Index of the target for the next connection, or -1 when no target is
 * usable. Non-backup targets are considered first; backup targets only
 * when no non-backup target is usable. client is the client's address for
 * ip_hash (IPv4-mapped IPv6 hashes as the IPv4 address); NULL elsewhere
 * (and for fifo/funnel pool connections, where ip_hash falls back to round
 * robin). */
int balancer_pick(struct balancer *b, struct balancer_target *t, size_t n,
                  const struct sockaddr *client);

/* Records a latency sample (response time in fifo/funnel, connect time in
 * proxy mode) for least_latency. */
void balancer_observe(struct balancer_target *t, uint32_t us);

/* Mean of the recorded samples, 0 when none. */
uint32_t balancer_latency(const struct balancer_target *t);

#endif
