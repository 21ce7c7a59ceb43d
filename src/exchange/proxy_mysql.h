/* The mysql codec's side of a proxy session (private to the exchange):
 * feeds a packet follower with the bytes the session passes, and turns
 * each completed query into a request log record and statistics. */
#ifndef PROXY_MYSQL_H
#define PROXY_MYSQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct exchange;
struct proxy_mysql;
struct upstream_conn;

/* A follower for session id of client peer on exchange x; up is the
 * session's upstream connection (its target is read when a query ends, and
 * credited with it). NULL
 * when out of memory: the session is then only piped. */
struct proxy_mysql *proxy_mysql_new(struct exchange *x, uint64_t id, const char *peer, struct upstream_conn *up);

/* len bytes passed from the client (from_client) or from the server. */
void proxy_mysql_feed(struct proxy_mysql *m, bool from_client, const char *data, size_t len);

/* The session ended: queries still waiting for their answer are logged
 * client_gone (client_left) or upstream_gone; m is freed. NULL ignored. */
void proxy_mysql_end(struct proxy_mysql *m, bool client_left);

#endif
