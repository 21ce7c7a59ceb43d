/* A set of CIDR ranges built once (at configuration load) for fast
 * lookups: per family, the ranges sorted by first address with the nested
 * ones dropped, searched by bisection, so that a client is matched against
 * thousands of entries in O(log n). IPv4-mapped IPv6 clients
 * (::ffff:a.b.c.d) are looked up among the IPv4 ranges. */
#ifndef CIDR_SET_H
#define CIDR_SET_H

#include <sys/socket.h>
#include "cidr.h"
#include "pmx.h"

struct cidr_set;

/* Builds the set of the n ranges of list (n >= 0; a set of none matches
 * nothing). The set keeps copies of the entries it needs, so list may go
 * away. Returns PMX_OK with *out set, or PMX_ERR when out of memory. */
int cidr_set_build(const struct cidr *list, int n, struct cidr_set **out) PMX_WUR;

/* The entry of the set addr falls in (AF_INET or AF_INET6; anything else,
 * NULL or a short len matches nothing), or NULL. When entries nest
 * ("10.0.0.0/8" and "10.1.0.0/16") the outermost one is returned. */
const struct cidr *cidr_set_find(const struct cidr_set *s, const struct sockaddr *addr, socklen_t len);

/* How many entries the set was built from (0 for NULL). */
int cidr_set_size(const struct cidr_set *s);

/* Harmless on NULL. */
void cidr_set_free(struct cidr_set *s);

#endif
