/* accept_proxy: a client from an address in accept_proxy_from must send a
 * PROXY v1/v2 header first; it is read here (within
 * PROXY_ACCEPT_TIMEOUT_MS, never a byte past the header) before the client
 * is handed to the exchange with the address the header gives. Clients
 * from elsewhere never get here: they are served with their own address and
 * whatever they send is data. */
#ifndef PROXY_ACCEPT_H
#define PROXY_ACCEPT_H

#include <stdbool.h>
#include <sys/socket.h>
#include "list.h"

struct listener;
struct service_config;

/* A header not complete after this long closes the client. */
#define PROXY_ACCEPT_TIMEOUT_MS 5000
/* Clients reading their header at once, per listener; more are closed (a
 * balancer keeps a few connecting at a time; these are not yet counted in
 * local.max_connections). */
#define PROXY_ACCEPT_MAX_PENDING 1024

/* The clients of one listener still sending their header. */
struct proxy_accept_set {
    struct list_node pending;
    size_t n;
};

void proxy_accept_init(struct proxy_accept_set *set);

/* Whether a client at addr must send a header first (c->accept_proxy and
 * addr in c->accept_proxy_from). */
bool proxy_accept_wanted(const struct service_config *c, const struct sockaddr *addr, socklen_t len);

/* Reads the header of client fd (non-blocking, set up) accepted by l from
 * addr; then hands it to l's exchange, or closes it (malformed header, end
 * of stream, timeout, out of memory, too many pending: each logged). */
void proxy_accept_start(struct listener *l, int fd, const struct sockaddr *addr, socklen_t len);

/* Closes every client of l still sending its header (the listener
 * closes). */
void proxy_accept_close_all(struct listener *l);

#endif
