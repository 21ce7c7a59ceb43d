/* The PROXY protocol v1/v2 encoder and incremental decoder (see
 * include/proxy_protocol.h; the format is HAProxy's proxy-protocol.txt). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_protocol.h"

static const unsigned char pp_v2_sig[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
};
static const char pp_v1_prefix[] = "PROXY ";

#define PP_V2_CMD_LOCAL 0x20
#define PP_V2_CMD_PROXY 0x21
#define PP_V2_UNSPEC 0x00
#define PP_V2_TCP4 0x11
#define PP_V2_TCP6 0x21
#define PP_V2_UNIX 0x31
#define PP_V2_TCP4_LEN 12
#define PP_V2_TCP6_LEN 36
#define PP_V2_UNIX_LEN 216

/* The IPv6 form of a (maybe IPv4) address: v4 becomes ::ffff:a.b.c.d. */
static void pp_to_v6(const struct sockaddr *sa, struct in6_addr *out, uint16_t *port)
{
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        *out = s6->sin6_addr;
        *port = s6->sin6_port;
        return;
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
    memset(out, 0, sizeof(*out));
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    memcpy(&out->s6_addr[12], &s4->sin_addr, 4);
    *port = s4->sin_port;
}

static bool pp_is_ip(const struct sockaddr *sa, socklen_t len)
{
    if (sa == NULL)
        return false;
    if (sa->sa_family == AF_INET)
        return len >= (socklen_t)sizeof(struct sockaddr_in);
    if (sa->sa_family == AF_INET6)
        return len >= (socklen_t)sizeof(struct sockaddr_in6);
    return false;
}

size_t proxy_protocol_encode(enum proxy_protocol_version v, const struct sockaddr *src, socklen_t src_len,
                             const struct sockaddr *dst, socklen_t dst_len, char *out, size_t outlen)
{
    bool ip = pp_is_ip(src, src_len) && pp_is_ip(dst, dst_len);
    bool v4 = ip && src->sa_family == AF_INET && dst->sa_family == AF_INET;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)src;
    const struct sockaddr_in *d4 = (const struct sockaddr_in *)(const void *)dst;
    struct in6_addr s6, d6;
    uint16_t sport = 0, dport = 0;

    if (ip && !v4) {
        pp_to_v6(src, &s6, &sport);
        pp_to_v6(dst, &d6, &dport);
    } else if (v4) {
        sport = s4->sin_port;
        dport = d4->sin_port;
    }
    if (v == PROXY_PROTOCOL_V1) {
        char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
        int n;
        if (!ip) {
            n = snprintf(out, outlen, "PROXY UNKNOWN\r\n");
        } else {
            if (v4) {
                inet_ntop(AF_INET, &s4->sin_addr, sa, sizeof(sa));
                inet_ntop(AF_INET, &d4->sin_addr, da, sizeof(da));
            } else {
                inet_ntop(AF_INET6, &s6, sa, sizeof(sa));
                inet_ntop(AF_INET6, &d6, da, sizeof(da));
            }
            n = snprintf(out, outlen, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", sa, da,
                         (unsigned)ntohs(sport), (unsigned)ntohs(dport));
        }
        return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
    }
    if (v != PROXY_PROTOCOL_V2)
        return 0;
    size_t alen = !ip ? 0 : v4 ? PP_V2_TCP4_LEN : PP_V2_TCP6_LEN;
    size_t total = PROXY_PROTOCOL_V2_FIXED + alen;
    unsigned char *p = (unsigned char *)out;
    if (outlen < total)
        return 0;
    memcpy(p, pp_v2_sig, sizeof(pp_v2_sig));
    p[12] = ip ? PP_V2_CMD_PROXY : PP_V2_CMD_LOCAL;
    p[13] = !ip ? PP_V2_UNSPEC : v4 ? PP_V2_TCP4 : PP_V2_TCP6;
    p[14] = (unsigned char)(alen >> 8);
    p[15] = (unsigned char)(alen & 0xff);
    p += PROXY_PROTOCOL_V2_FIXED;
    if (v4) {
        memcpy(p, &s4->sin_addr, 4);
        memcpy(p + 4, &d4->sin_addr, 4);
        memcpy(p + 8, &sport, 2);
        memcpy(p + 10, &dport, 2);
    } else if (ip) {
        memcpy(p, &s6, 16);
        memcpy(p + 16, &d6, 16);
        memcpy(p + 32, &sport, 2);
        memcpy(p + 34, &dport, 2);
    }
    return total;
}

void proxy_protocol_decoder_init(struct proxy_protocol_decoder *d)
{
    memset(d, 0, sizeof(*d));
    d->status = PROXY_PROTOCOL_MORE;
}

static enum proxy_protocol_status pp_fail(struct proxy_protocol_decoder *d, const char *why)
{
    d->error = why;
    d->status = PROXY_PROTOCOL_ERROR;
    return d->status;
}

/* A decimal port: 1-5 digits, no leading zero (but "0"), at most 65535. */
static bool pp_v1_port(const char *s, uint16_t *out)
{
    size_t n = strlen(s);
    unsigned long v = 0;

    if (n == 0 || n > 5 || (n > 1 && s[0] == '0') || strspn(s, "0123456789") != n)
        return false;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (v > 65535)
        return false;
    *out = htons((uint16_t)v);
    return true;
}

static bool pp_v1_addr(int family, const char *s, uint16_t port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)(void *)ss;
        a->sin_family = AF_INET;
        a->sin_port = port;
        *len = sizeof(*a);
        return inet_pton(AF_INET, s, &a->sin_addr) == 1;
    }
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)(void *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = port;
    *len = sizeof(*a);
    return inet_pton(AF_INET6, s, &a->sin6_addr) == 1;
}

/* The complete v1 line is in buf (CRLF included). */
static enum proxy_protocol_status pp_v1_parse(struct proxy_protocol_decoder *d)
{
    char line[PROXY_PROTOCOL_V1_MAX + 1];
    char *tok[7];
    int ntok = 0;
    size_t n = d->stored - 2;      /* without CRLF */

    memcpy(line, d->buf, n);
    line[n] = '\0';
    if (memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL)
        return pp_fail(d, "v1: stray CR or NUL in the line");
    if (strncmp(line + 6, "UNKNOWN", 7) == 0 && (line[13] == '\0' || line[13] == ' ')) {
        d->local = true;
        return d->status = PROXY_PROTOCOL_DONE;
    }
    /* Single spaces: an empty token is an error. */
    char *p = line;
    while (ntok < 7) {
        tok[ntok++] = p;
        char *sp = strchr(p, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        p = sp + 1;
    }
    if (ntok != 6)
        return pp_fail(d, "v1: not PROXY TCP4|TCP6 SRC DST SPORT DPORT");
    int family;
    if (strcmp(tok[1], "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(tok[1], "TCP6") == 0)
        family = AF_INET6;
    else
        return pp_fail(d, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
    uint16_t sport, dport;
    if (!pp_v1_port(tok[4], &sport) || !pp_v1_port(tok[5], &dport))
        return pp_fail(d, "v1: bad port");
    if (!pp_v1_addr(family, tok[2], sport, &d->src, &d->src_len) ||
        !pp_v1_addr(family, tok[3], dport, &d->dst, &d->dst_len))
        return pp_fail(d, "v1: bad address for the protocol");
    return d->status = PROXY_PROTOCOL_DONE;
}

static enum proxy_protocol_status pp_v1_byte(struct proxy_protocol_decoder *d, unsigned char c)
{
    if (d->stored < sizeof(pp_v1_prefix) - 1 && c != (unsigned char)pp_v1_prefix[d->stored])
        return pp_fail(d, "not a PROXY header");
    d->buf[d->stored++] = c;
    if (c == '\n') {
        if (d->stored < 2 || d->buf[d->stored - 2] != '\r')
            return pp_fail(d, "v1: line not ended by CRLF");
        return pp_v1_parse(d);
    }
    if (d->stored >= PROXY_PROTOCOL_V1_MAX)
        return pp_fail(d, "v1: line longer than 107 bytes");
    return PROXY_PROTOCOL_MORE;
}

/* The fixed part is in buf: check it and learn the lengths. */
static enum proxy_protocol_status pp_v2_fixed(struct proxy_protocol_decoder *d)
{
    unsigned char cmd = d->buf[12], fam = d->buf[13];
    size_t len = ((size_t)d->buf[14] << 8) | d->buf[15];

    if (len > PROXY_PROTOCOL_V2_MAX_LEN)
        return pp_fail(d, "v2: header longer than 4096 bytes after its fixed part");
    d->total = PROXY_PROTOCOL_V2_FIXED + len;
    if (cmd == PP_V2_CMD_LOCAL) {
        d->local = true;
        d->skip_all = true;
        return PROXY_PROTOCOL_MORE;
    }
    switch (fam) {
    case PP_V2_UNSPEC: d->addr_len = 0; d->local = true; break;
    case PP_V2_TCP4: d->addr_len = PP_V2_TCP4_LEN; break;
    case PP_V2_TCP6: d->addr_len = PP_V2_TCP6_LEN; break;
    case PP_V2_UNIX: d->addr_len = PP_V2_UNIX_LEN; d->local = true; break;
    default: return pp_fail(d, "v2: family is not UNSPEC, TCP over IPv4/IPv6 or UNIX stream");
    }
    if (len < d->addr_len)
        return pp_fail(d, "v2: length shorter than the family's addresses");
    return PROXY_PROTOCOL_MORE;
}

/* The address block is in buf. */
static void pp_v2_addresses(struct proxy_protocol_decoder *d)
{
    const unsigned char *a = d->buf + PROXY_PROTOCOL_V2_FIXED;

    if (d->local)
        return;
    memset(&d->src, 0, sizeof(d->src));
    memset(&d->dst, 0, sizeof(d->dst));
    if (d->buf[13] == PP_V2_TCP4) {
        struct sockaddr_in *s = (struct sockaddr_in *)(void *)&d->src;
        struct sockaddr_in *t = (struct sockaddr_in *)(void *)&d->dst;
        s->sin_family = t->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&t->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&t->sin_port, a + 10, 2);
        d->src_len = d->dst_len = sizeof(struct sockaddr_in);
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)&d->src;
        struct sockaddr_in6 *t = (struct sockaddr_in6 *)(void *)&d->dst;
        s->sin6_family = t->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&t->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&t->sin6_port, a + 34, 2);
        d->src_len = d->dst_len = sizeof(struct sockaddr_in6);
    }
}

/* One byte of the TLV area: TLV headers are read, values skipped. */
static enum proxy_protocol_status pp_v2_tlv_byte(struct proxy_protocol_decoder *d, unsigned char c)
{
    if (d->tlv_left > 0) {
        d->tlv_left--;
        return PROXY_PROTOCOL_MORE;
    }
    d->tlv_head[d->tlv_head_have++] = c;
    if (d->tlv_head_have == 3) {
        d->tlv_left = ((size_t)d->tlv_head[1] << 8) | d->tlv_head[2];
        d->tlv_head_have = 0;
    }
    return PROXY_PROTOCOL_MORE;
}

static enum proxy_protocol_status pp_v2_byte(struct proxy_protocol_decoder *d, unsigned char c)
{
    size_t pos = d->consumed;      /* of this byte in the header */

    if (pos < sizeof(pp_v2_sig)) {
        if (c != pp_v2_sig[pos])
            return pp_fail(d, pos == 0 ? "not a PROXY header" : "v2: bad signature");
        d->buf[d->stored++] = c;
        return PROXY_PROTOCOL_MORE;
    }
    if (pos < PROXY_PROTOCOL_V2_FIXED) {
        /* Version and command are refused as soon as seen. */
        if (pos == 12 && (c & 0xf0) != 0x20)
            return pp_fail(d, "v2: version is not 2");
        if (pos == 12 && c != PP_V2_CMD_LOCAL && c != PP_V2_CMD_PROXY)
            return pp_fail(d, "v2: command is neither LOCAL nor PROXY");
        d->buf[d->stored++] = c;
        return pos + 1 == PROXY_PROTOCOL_V2_FIXED ? pp_v2_fixed(d) : PROXY_PROTOCOL_MORE;
    }
    if (d->skip_all)
        return PROXY_PROTOCOL_MORE;
    if (pos < PROXY_PROTOCOL_V2_FIXED + d->addr_len) {
        d->buf[d->stored++] = c;
        if (pos + 1 == PROXY_PROTOCOL_V2_FIXED + d->addr_len)
            pp_v2_addresses(d);
        return PROXY_PROTOCOL_MORE;
    }
    return pp_v2_tlv_byte(d, c);
}

/* The last byte of a v2 header was consumed. */
static enum proxy_protocol_status pp_v2_end(struct proxy_protocol_decoder *d)
{
    if (!d->skip_all && (d->tlv_left > 0 || d->tlv_head_have > 0))
        return pp_fail(d, "v2: a TLV runs past the header's length");
    return d->status = PROXY_PROTOCOL_DONE;
}

enum proxy_protocol_status proxy_protocol_decode(struct proxy_protocol_decoder *d, const void *data, size_t len,
                                                 size_t *used)
{
    const unsigned char *p = data;
    size_t i = 0;

    *used = 0;
    while (d->status == PROXY_PROTOCOL_MORE && i < len) {
        unsigned char c = p[i];
        if (d->consumed == 0) {
            if (c == 'P')
                d->version = 1;
            else if (c == pp_v2_sig[0])
                d->version = 2;
            else
                return pp_fail(d, "not a PROXY header");
        }
        enum proxy_protocol_status st = d->version == 1 ? pp_v1_byte(d, c) : pp_v2_byte(d, c);
        if (st == PROXY_PROTOCOL_ERROR)
            return st;
        i++;
        d->consumed++;
        if (d->version == 2 && d->total > 0 && d->consumed == d->total)
            pp_v2_end(d);
        *used = i;
    }
    return d->status;
}
