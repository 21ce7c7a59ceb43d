/* Access control (SPEC §11): whether a client's address may be served by a
 * service, from the allow/deny lists of the top level and of the service.
 * The exchange asks once per accepted client, before any mode sees it. */
#ifndef ACCESS_H
#define ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct service_config;

/* Room for access_allowed()'s reason: "deny " and an entry as written. */
#define ACCESS_WHY_MAX 96

/* Whether a client at addr may be served by c. It is refused when it
 * matches a deny entry (top-level or the service's), or when an allow list
 * (top-level, or the service's) is non-empty and it matches none of that
 * list; IPv4-mapped IPv6 clients match IPv4 entries. Unix-socket clients
 * have no address: the lists do not apply to them. When refused, why gets
 * the reason for the log ("deny 10.0.0.0/8", "not in allow"). */
bool access_allowed(const struct service_config *c, const struct sockaddr *addr, socklen_t len,
                    char *why, size_t whylen);

#endif
