/* The PROXY protocol (HAProxy's, versions 1 and 2): the header a balancer
 * writes first on a connection to tell the server the real client address.
 * An encoder for the send side and an incremental decoder, fed bytes as
 * they arrive in any split, that never consumes a byte past the header. */
#ifndef PROXY_PROTOCOL_H
#define PROXY_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "pmx.h"

enum proxy_protocol_version {
    PROXY_PROTOCOL_OFF = 0,
    PROXY_PROTOCOL_V1 = 1,
    PROXY_PROTOCOL_V2 = 2,
};

/* A v1 line is at most 107 bytes with its CRLF (the specification's bound). */
#define PROXY_PROTOCOL_V1_MAX 107
/* The fixed part of a v2 header: signature, version/command, family, length. */
#define PROXY_PROTOCOL_V2_FIXED 16
/* The most bytes a v2 header may announce after its fixed part (addresses
 * and TLVs). The format allows 65535; real balancers send a few hundred at
 * most, and a header announcing more is refused as malformed. */
#define PROXY_PROTOCOL_V2_MAX_LEN 4096
/* Room enough for any header proxy_protocol_encode() writes. */
#define PROXY_PROTOCOL_ENCODE_MAX 108
/* The v2 address block of a unix-socket address: the largest stored. */
#define PROXY_PROTOCOL_V2_ADDR_MAX 216

/* Writes the header of version v (V1 or V2) telling that a client at src
 * connected to dst into out. TCP4 when both are IPv4, TCP6 when both are
 * IPv6 (an IPv4 one beside an IPv6 one is written IPv4-mapped); any other
 * pair (a unix-socket client, no address) gives "PROXY UNKNOWN" in v1 and
 * the LOCAL command in v2: the server then uses the connection's own
 * address. Returns the header's length, or 0 when outlen is too small
 * (PROXY_PROTOCOL_ENCODE_MAX always suffices) or v is OFF. */
size_t proxy_protocol_encode(enum proxy_protocol_version v, const struct sockaddr *src, socklen_t src_len,
                             const struct sockaddr *dst, socklen_t dst_len, char *out, size_t outlen);

enum proxy_protocol_status {
    PROXY_PROTOCOL_MORE,        /* the header is not complete yet: feed more */
    PROXY_PROTOCOL_DONE,        /* the header is complete: see local, src, dst */
    PROXY_PROTOCOL_ERROR,       /* malformed (see error); feed no more */
};

struct proxy_protocol_decoder {
    /* results, once DONE */
    int version;                /* 1 or 2 (known from the first byte) */
    bool local;                 /* no address given: v2 LOCAL, v1 UNKNOWN, v2 UNSPEC or
                                 * UNIX family: use the connection's own address */
    struct sockaddr_storage src;    /* the client, when !local */
    socklen_t src_len;
    struct sockaddr_storage dst;    /* the address it connected to, when !local */
    socklen_t dst_len;
    const char *error;          /* why, once ERROR */
    size_t consumed;            /* bytes of the header fed so far */
    /* private */
    enum proxy_protocol_status status;
    size_t stored;              /* bytes in buf */
    size_t total;               /* v2: the header's length (fixed part + announced) */
    size_t addr_len;            /* v2: address block of the family (stored) */
    unsigned char tlv_head[3];  /* v2: the TLV header being read */
    size_t tlv_head_have;
    size_t tlv_left;            /* v2: bytes of the current TLV's value left to skip */
    bool skip_all;              /* v2 LOCAL: the rest is skipped unparsed */
    unsigned char buf[PROXY_PROTOCOL_V2_FIXED + PROXY_PROTOCOL_V2_ADDR_MAX];
};

void proxy_protocol_decoder_init(struct proxy_protocol_decoder *d);

/* Feeds len bytes that follow those fed before. Consumes bytes up to the
 * end of the header and no further: *used says how many of these were
 * header bytes (on DONE, the rest belong to the connection's data).
 * Validation is strict: v1 "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with
 * single spaces, addresses of the family, decimal ports without leading
 * zeros, at most 107 bytes, or "PROXY UNKNOWN..."; v2 the 12-byte
 * signature, version 2, command LOCAL or PROXY, family UNSPEC, TCP over
 * IPv4/IPv6 or UNIX stream, a length that holds the family's addresses and
 * at most PROXY_PROTOCOL_V2_MAX_LEN, TLVs that fit it exactly (their types
 * are not interpreted: unknown ones are skipped). A first byte that starts
 * neither version is an error at once. */
enum proxy_protocol_status proxy_protocol_decode(struct proxy_protocol_decoder *d, const void *data, size_t len,
                                                 size_t *used);

#endif
