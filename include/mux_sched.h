/* The FIFO/funnel scheduler: which waiting request goes next onto an
 * upstream connection. Each client keeps its own queue of requests waiting
 * for its connection; clients take turns, one request per turn, and a
 * client with `limit` requests sent and not yet answered sits out until one
 * is (exchange.client_inflight). So one client's flood delays another's
 * request by at most one turn of each waiting client, and never holds more
 * than `limit` requests on the wire ahead of it.
 *
 * Pure bookkeeping, no I/O: the exchange embeds a sched_upstream in each
 * connection's state, a sched_client in each client's and a sched_item in
 * each request, and says when an item was taken and when it is done. */
#ifndef MUX_SCHED_H
#define MUX_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "list.h"

struct sched_item {
    struct sched_item *next;
};

struct sched_upstream;

/* read-only outside mux_sched.c */
struct sched_client {
    struct sched_item *head;        /* waiting, oldest first */
    struct sched_item *tail;
    size_t nwaiting;
    size_t insent;                  /* taken, not yet done */
    struct sched_upstream *up;      /* where its items wait; NULL when none wait */
    struct list_node turn;          /* in up->ring (may take a turn) or up->parked (at the limit) */
    bool parked;                    /* in up->parked */
};

struct sched_upstream {
    struct list_node ring;          /* clients with items waiting, in turn order */
    struct list_node parked;        /* clients with items waiting but `limit` in flight */
    size_t nwaiting;                /* items waiting, all clients */
};

void sched_upstream_init(struct sched_upstream *u);
void sched_client_init(struct sched_client *c);

/* Appends it to c's queue on u. A client's items all wait for one
 * upstream: c must have none waiting elsewhere. limit as in sched_next(). */
void sched_push(struct sched_upstream *u, struct sched_client *c, struct sched_item *it, size_t limit);

/* The next item to send on u: the oldest of the client whose turn it is,
 * which then goes to the back of the ring (or out of it: nothing left, or
 * `limit` in flight). Counts it as taken (insent). NULL when no client may
 * go; *owner gets the client. */
struct sched_item *sched_next(struct sched_upstream *u, size_t limit, struct sched_client **owner);

/* An item of c sent without waiting (nothing waited on u): counts it as
 * taken. */
void sched_taken(struct sched_client *c);

/* Whether c may send one more now: fewer than limit in flight. */
bool sched_may_send(const struct sched_client *c, size_t limit);

/* A taken item of c is done (answered, failed, or needs no answer): c may
 * take its turn again. */
void sched_done(struct sched_client *c, size_t limit);

/* Removes and returns the oldest waiting item of c, or NULL. */
struct sched_item *sched_pop(struct sched_client *c);

/* Removes and returns the oldest waiting item of the first client waiting
 * on u (in the ring or parked), or NULL; *owner gets the client. For
 * failing or dropping everything that waits. */
struct sched_item *sched_pop_any(struct sched_upstream *u, struct sched_client **owner);

/* The limit changed (reload): clients parked under the old one may take
 * turns again, and clients over the new one sit out. */
void sched_relimit(struct sched_upstream *u, size_t limit);

#endif
