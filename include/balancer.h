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
 * when out of memory or s is not a strategy. */
struct balancer *balancer_create(enum balance_strategy s, uint32_t seed);
void balancer_destroy(struct balancer *b);

/* The set of targets changed (added, removed, renamed, reweighted): called
 * before the next pick with the new array. ip_hash rebuilds its ring (only
 * the changed targets' share of clients moves); round robin resets its
 * state (every target's current to 0). Returns PMX_OK or PMX_ERR (ENOMEM;
 * the old state is kept).
 *
 * The ip_hash ring holds 160 points per unit of weight, placed by hashing
 * the target's name and the point's index, so it depends on names and
 * weights only, not on the array order. Names should be unique: targets
 * sharing a name share their points. To bound memory a target has at most
 * 1600 points (12.5 KiB): ip_hash counts weights above 10 as 10. The ring
 * is sorted here, on the calling thread: about 0.1 s for 4096 targets of
 * weight 1, 1 s for 4096 of weight 10 or more (50 MiB). */
int balancer_update(struct balancer *b, struct balancer_target *t, size_t n) PMX_WUR;

/* Index of the target for the next connection, or -1 when no target is
 * usable (or n is 0 or above INT_MAX). Non-backup targets are considered
 * first; backup targets only when no non-backup target is usable. client
 * is the client's address for ip_hash (IPv4-mapped IPv6 hashes as the IPv4
 * address; the port is ignored); NULL elsewhere (and for fifo/funnel pool
 * connections, where ip_hash falls back to round robin). ip_hash also
 * falls back to round robin for a client without an IP address (a unix
 * socket peer) and when n differs from the last balancer_update's.
 *
 * least_conn compares conns / weight (as conns1 * weight2 < conns2 *
 * weight1), ties go to the higher weight, then to each target in turn.
 * least_latency picks a usable target without samples first (in turn),
 * sends 1 pick in 20 to the other usable targets in turn so they stay
 * measured, and otherwise the lowest balancer_latency (ties in turn);
 * weights do not count. */
int balancer_pick(struct balancer *b, struct balancer_target *t, size_t n,
                  const struct sockaddr *client);

/* Records a latency sample (response time in fifo/funnel, connect time in
 * proxy mode) for least_latency. */
void balancer_observe(struct balancer_target *t, uint32_t us);

/* Mean of the recorded samples (the last BALANCER_LATENCY_WINDOW), rounded
 * down; 0 when none. */
uint32_t balancer_latency(const struct balancer_target *t);

#endif
