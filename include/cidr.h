/* Address ranges in CIDR notation ("10.0.0.0/8", "::1/128", a bare
 * address for one host) and matching a client's address against them; an
 * IPv4 client on an IPv6 socket (::ffff:a.b.c.d) matches IPv4 ranges, and
 * an IPv4-mapped IPv6 range matches IPv4 clients. */
#ifndef CIDR_H
#define CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "pmx.h"

/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" and a NUL. */
#define CIDR_TEXT_MAX 64

struct cidr {
    char spec[CIDR_TEXT_MAX];       /* as written, for the dump and messages */
    int family;                     /* AF_INET or AF_INET6 (an IPv4-mapped range is kept as AF_INET) */
    unsigned char addr[16];         /* the network, host bits cleared */
    int prefix;                     /* 0-32 or 0-128 */
};

/* Parses s ("ADDR/PREFIX" or "ADDR") into out. Returns PMX_OK, or PMX_ERR
 * with the reason in err (e.g. "prefix 33 is not 0-32"). Host bits set
 * beyond the prefix are an error too ("10.0.0.1/8": write 10.0.0.0/8),
 * since they usually mean a typo. */
int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen) PMX_WUR;

/* Whether addr (AF_INET or AF_INET6; anything else never matches) is in c. */
bool cidr_match(const struct cidr *c, const struct sockaddr *addr, socklen_t len);

/* Whether addr is in any of the n ranges. */
bool cidr_match_any(const struct cidr *list, int n, const struct sockaddr *addr, socklen_t len);

#endif
