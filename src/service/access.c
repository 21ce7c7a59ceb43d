/* Access control: the allow/deny decision for one client (see
 * include/access.h); the lookups are cidr_set bisections, so long block
 * lists cost O(log n) per accepted client. */
#include <stdio.h>

#include "access.h"
#include "cidr_set.h"
#include "config.h"

bool access_allowed(const struct service_config *c, const struct sockaddr *addr, socklen_t len,
                    char *why, size_t whylen)
{
    const struct cidr *hit;

    if (addr == NULL || (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return true;
    /* The top level's lists first: they apply to every service. */
    if ((hit = cidr_set_find(c->top_deny_set, addr, len)) != NULL ||
        (hit = cidr_set_find(c->deny_set, addr, len)) != NULL) {
        snprintf(why, whylen, "deny %s", hit->spec);
        return false;
    }
    if ((cidr_set_size(c->top_allow_set) > 0 && cidr_set_find(c->top_allow_set, addr, len) == NULL) ||
        (cidr_set_size(c->allow_set) > 0 && cidr_set_find(c->allow_set, addr, len) == NULL)) {
        snprintf(why, whylen, "not in allow");
        return false;
    }
    return true;
}
