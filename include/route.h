/* Routing on the first bytes (SPEC §10): a service's routes compiled once
 * (regexes, patterns) and asked, each time more of a client's first bytes
 * have arrived, whether one of them decides. Pure: no sockets, no timers;
 * the proxy exchange buffers the bytes, applies route_max_bytes,
 * route_timeout and route_default, and carries the decision out. */
#ifndef ROUTE_H
#define ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "pmx.h"
#include "route_decision.h"

struct route_config;
struct route_table;

enum route_result {
    ROUTE_RESULT_WAIT,          /* some route could still match with more bytes */
    ROUTE_RESULT_DECIDED,       /* a route matched: *out is filled */
    ROUTE_RESULT_NO_MATCH,      /* no route can ever match these bytes */
    ROUTE_RESULT_ERROR,         /* out of memory filling *out: the caller closes the client */
};

/* Checks what one route can tell alone: its regex compiles (match:), and
 * the $1..$9 of target and data name groups the regex has ($$ is a literal
 * $). Returns PMX_OK, or PMX_ERR with the setting at fault in *field
 * ("match", "target", "data") and the reason in why. */
int route_check(const struct route_config *r, const char **field, char *why, size_t whylen) PMX_WUR;

/* Compiles n routes (regexes with REG_EXTENDED). Returns NULL with a
 * one-line reason in err naming the route (e.g. `routes[2].match: ...`). */
struct route_table *route_table_create(const struct route_config *routes, int n, char *err,
                                       size_t errlen);

void route_table_free(struct route_table *t);

/* Tries the routes in order over the len first bytes of a client (binary:
 * NUL bytes included). The first route that matches decides, even while an
 * earlier one could still match with more bytes: out gets its action,
 * target and data with $1..$9 replaced by the captures ($$: $), reply,
 * close bytes (in data, for ROUTE_CLOSE) and timeouts. WAIT when no route
 * matched but one could with more bytes (a prefix or TLS/HTTP head not
 * complete yet; a regex that fails, unless it is anchored and the bytes
 * differ from its literal start; a target built from captures that cannot
 * be HOST:PORT); NO_MATCH when none can, and then it stays NO_MATCH with
 * more bytes (the caller applies route_default). out is initialised by the
 * caller (route_decision_init) and freed by it; it is filled only when
 * DECIDED (partly on ERROR). */
enum route_result route_table_decide(const struct route_table *t, const char *data, size_t len,
                                     struct route_decision *out);

#endif
