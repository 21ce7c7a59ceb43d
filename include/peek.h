/* Peeking at a client's first bytes without consuming or terminating them
 * (SPEC §10): the server name of a TLS ClientHello and the Host header of
 * an HTTP/1.x request, for routes. Pure functions over the bytes buffered
 * so far; called again from the start when more arrive. */
#ifndef PEEK_H
#define PEEK_H

#include <stdbool.h>
#include <stddef.h>

/* Room for a name: DNS names are at most 253 bytes (255 on the wire). */
#define PEEK_NAME_MAX 256

enum peek_result {
    PEEK_NEED_MORE,     /* consistent so far, not complete: wait for more bytes */
    PEEK_FOUND,         /* complete, with a name: out holds it */
    PEEK_NONE,          /* complete, without a usable name (no server_name / no Host) */
    PEEK_INVALID,       /* not this protocol, or malformed: more bytes cannot change it */
};

/* The host_name of the server_name extension of the TLS ClientHello that
 * starts data (len bytes), lowercased, without a trailing dot, into out
 * (outlen >= PEEK_NAME_MAX). The ClientHello may span several handshake
 * records (each at most 16384 bytes); anything but a handshake record
 * before it is complete is PEEK_INVALID. A name with bytes that are not
 * letters, digits, '-', '_' or '.' is PEEK_NONE. */
enum peek_result peek_tls_sni(const char *data, size_t len, char *out, size_t outlen);

/* The Host header of the HTTP/1.x request whose head starts data (len
 * bytes): request line "METHOD SP TARGET SP HTTP/1.x" then header lines up
 * to the empty line (CRLF or LF). The value is lowercased, without its
 * port and trailing dot, into out (outlen >= PEEK_NAME_MAX); an IPv6
 * literal keeps its brackets. No Host is PEEK_NONE, as is a value that is
 * not a host name; two Host headers, a folded line or anything that is not
 * HTTP/1.x is PEEK_INVALID, as soon as the bytes show it. */
enum peek_result peek_http_host(const char *data, size_t len, char *out, size_t outlen);

/* Whether name matches pattern (both lowercase): equal, or pattern
 * "*.example.com" and name ends in ".example.com" after one or more labels
 * ("a.example.com", "a.b.example.com"; not "example.com"). */
bool peek_name_match(const char *pattern, const char *name);

#endif
