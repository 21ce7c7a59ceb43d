/* Host name resolution off the reactor thread: one helper thread runs
 * getaddrinfo() for queued lookups and hands the results back through an
 * eventfd, so every callback runs on the reactor thread. */
#ifndef RESOLVER_H
#define RESOLVER_H

#include <stddef.h>
#include <sys/socket.h>

#include "pmx.h"
#include "reactor.h"

/* Addresses kept per lookup, in getaddrinfo() order. */
#define RESOLVER_MAX_ADDRS 8
/* Lookups alive at once (queued, being resolved, or awaiting delivery). */
#define RESOLVER_MAX_LOOKUPS 1024

struct resolver;

/* The result of a lookup, called on the reactor thread. err is 0 or a
 * getaddrinfo() EAI_* code (text via gai_strerror(); EAI_SYSTEM does not
 * carry its errno across threads). On success naddrs is 1 to
 * RESOLVER_MAX_ADDRS and addrs/lens hold the addresses with the port set;
 * on failure naddrs is 0. The arrays are valid during the call only. */
typedef void (*resolver_fn)(void *data, int err, const struct sockaddr_storage *addrs,
                            const socklen_t *lens, int naddrs);

/* A resolver delivering through r. The helper thread starts with the first
 * lookup that needs it. Returns NULL with errno set on failure. */
struct resolver *resolver_create(struct reactor *r);

/* Stops and joins the helper thread (waiting for a getaddrinfo() in
 * progress) and frees everything; callbacks not yet run never run. May be
 * called from a resolver callback. */
void resolver_destroy(struct resolver *rs);

/* Resolves host (a name, an IPv4 or IPv6 literal, or "[v6 literal]") and
 * port (0-65535) for a TCP connection. A literal is parsed at once without
 * the helper thread; either way fn runs later from the reactor, never from
 * inside this call. Returns the lookup id (> 0), or PMX_ERR with errno
 * EAGAIN when RESOLVER_MAX_LOOKUPS are alive, ENOMEM, EINVAL for a bad
 * port, or the error of starting the helper thread. */
long long resolver_lookup(struct resolver *rs, const char *host, int port,
                          resolver_fn fn, void *data) PMX_WUR;

/* The callback of lookup id will not run. An id already delivered or
 * unknown is ignored. */
void resolver_cancel(struct resolver *rs, long long id);

/* Resolves host and port at once on the calling thread (start-up and -t,
 * before the reactor runs; it may block). Fills addrs/lens with up to max
 * addresses in getaddrinfo() order and returns how many (>= 1), or PMX_ERR
 * with a one-line reason in err ("Name or service not known"). */
int resolver_resolve_now(const char *host, int port, struct sockaddr_storage *addrs,
                         socklen_t *lens, int max, char *err, size_t errlen) PMX_WUR;

#endif
