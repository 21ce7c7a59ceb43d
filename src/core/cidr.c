/* CIDR ranges: parsing and matching (see include/cidr.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "cidr.h"

static const unsigned char cidr_v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Whether the first prefix bits of a and b are equal. */
static bool cidr_bits_equal(const unsigned char *a, const unsigned char *b, int prefix)
{
    int whole = prefix / 8, rest = prefix % 8;

    if (memcmp(a, b, (size_t)whole) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int cidr_parse(const char *s, struct cidr *out, char *err, size_t errlen)
{
    char host[CIDR_TEXT_MAX];
    const char *slash = strchr(s, '/');
    size_t hlen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    int max;

    memset(out, 0, sizeof(*out));
    if (strlen(s) >= sizeof(out->spec) || hlen == 0) {
        snprintf(err, errlen, "not ADDRESS/PREFIX");
        return PMX_ERR;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", host);
        return PMX_ERR;
    }
    out->prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t n = strlen(p);
        if (n == 0 || n > 3 || strspn(p, "0123456789") != n || (n > 1 && p[0] == '0')) {
            snprintf(err, errlen, "prefix \"%s\" is not 0-%d", p, max);
            return PMX_ERR;
        }
        int v = 0;
        for (size_t i = 0; i < n; i++)
            v = v * 10 + (p[i] - '0');
        if (v > max) {
            snprintf(err, errlen, "prefix %d is not 0-%d", v, max);
            return PMX_ERR;
        }
        out->prefix = v;
    }
    unsigned char net[16];
    memset(net, 0, sizeof(net));
    memcpy(net, out->addr, (size_t)out->prefix / 8);
    if (out->prefix % 8)
        net[out->prefix / 8] = (unsigned char)(out->addr[out->prefix / 8] & (0xff << (8 - out->prefix % 8)));
    if (memcmp(net, out->addr, (size_t)max / 8) != 0) {
        snprintf(err, errlen, "host bits set beyond /%d", out->prefix);
        return PMX_ERR;
    }
    /* ::ffff:a.b.c.d/N (N >= 96) is the IPv4 range a.b.c.d/(N-96). */
    if (out->family == AF_INET6 && out->prefix >= 96 && memcmp(out->addr, cidr_v4_mapped, 12) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    snprintf(out->spec, sizeof(out->spec), "%s", s);
    return PMX_OK;
}

bool cidr_match(const struct cidr *c, const struct sockaddr *addr, socklen_t len)
{
    if (addr == NULL)
        return false;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
        return c->family == AF_INET && cidr_bits_equal((const unsigned char *)&a->sin_addr, c->addr, c->prefix);
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
        const unsigned char *b = a->sin6_addr.s6_addr;
        if (memcmp(b, cidr_v4_mapped, 12) == 0)
            return c->family == AF_INET && cidr_bits_equal(b + 12, c->addr, c->prefix);
        return c->family == AF_INET6 && cidr_bits_equal(b, c->addr, c->prefix);
    }
    return false;
}

bool cidr_match_any(const struct cidr *list, int n, const struct sockaddr *addr, socklen_t len)
{
    for (int i = 0; i < n; i++) {
        if (cidr_match(&list[i], addr, len))
            return true;
    }
    return false;
}
