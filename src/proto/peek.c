/* Peeking at a client's first bytes (SPEC §10): the TLS ClientHello's
 * server_name and the HTTP/1.x Host header, parsed from the start of the
 * bytes buffered so far, never consuming them. Every length read from the
 * wire is checked against what encloses it. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "peek.h"

/* TLS: record header (type, version, length), handshake type ClientHello,
 * extension server_name, name type host_name (RFC 8446, RFC 6066). */
#define TLS_RECORD_HEADER 5
#define TLS_RECORD_MAX 16384        /* a record's plaintext length at most (2^14) */
#define TLS_HANDSHAKE 0x16
#define TLS_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME 0
#define TLS_HOST_NAME 0
/* A ClientHello's fixed part: version, random, and the smallest session
 * id, cipher suites and compression methods. */
#define TLS_HELLO_MIN (2 + 32 + 1 + 2 + 2 + 1 + 1)

#define HTTP_METHOD_MAX 32

/* Copies a name of len bytes into out lowercased, without one trailing
 * dot. Returns false when it is empty, too long for out, has an empty
 * label, or a byte other than letters, digits, '-', '_' and '.'. */
static bool peek_name_copy(const unsigned char *name, size_t len, char *out, size_t outlen)
{
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len >= outlen || len >= PEEK_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = name[i];
        bool empty_label = ch == '.' && (i == 0 || name[i - 1] == '.');
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch - 'A' + 'a');
        else if (empty_label ||
                 !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
            return false;
        out[i] = (char)ch;
    }
    out[len] = '\0';
    return true;
}

bool peek_name_match(const char *pattern, const char *name)
{
    if (pattern[0] == '*' && pattern[1] == '.') {
        size_t sl = strlen(pattern + 1), nl = strlen(name);
        /* ".example.com" after at least one byte of labels. */
        return nl > sl && strcmp(name + nl - sl, pattern + 1) == 0;
    }
    return strcmp(pattern, name) == 0;
}

/* ---- TLS ClientHello ---------------------------------------------------- */

/* Reads the handshake bytes carried by consecutive handshake records,
 * forward only. */
struct tls_reader {
    const unsigned char *d;
    size_t len;
    size_t pos;         /* next byte of d */
    size_t left;        /* bytes left in the current record */
};

/* Reads n handshake bytes into out (NULL: skips them). Returns PEEK_FOUND
 * when they were there, PEEK_NEED_MORE or PEEK_INVALID. */
static enum peek_result tls_read(struct tls_reader *r, unsigned char *out, size_t n)
{
    while (n > 0) {
        if (r->left == 0) {
            /* A record header: what of it has arrived must be right. */
            size_t have = r->len - r->pos;
            const unsigned char *h = r->d + r->pos;
            if (have >= 1 && h[0] != TLS_HANDSHAKE)
                return PEEK_INVALID;
            if (have >= 2 && h[1] != 3)
                return PEEK_INVALID;
            if (have < TLS_RECORD_HEADER)
                return PEEK_NEED_MORE;
            size_t rl = (size_t)h[3] << 8 | h[4];
            if (rl == 0 || rl > TLS_RECORD_MAX)
                return PEEK_INVALID;
            r->pos += TLS_RECORD_HEADER;
            r->left = rl;
        }
        size_t take = n < r->left ? n : r->left;
        if (take > r->len - r->pos)
            take = r->len - r->pos;
        if (take == 0)
            return PEEK_NEED_MORE;
        if (out != NULL) {
            memcpy(out, r->d + r->pos, take);
            out += take;
        }
        r->pos += take;
        r->left -= take;
        n -= take;
    }
    return PEEK_FOUND;
}

/* Reads a big-endian number of n (1-3) bytes, counting them in *used
 * against limit. */
static enum peek_result tls_number(struct tls_reader *r, size_t n, size_t *value, size_t *used, size_t limit)
{
    unsigned char b[3];

    if (*used + n > limit)
        return PEEK_INVALID;
    enum peek_result pr = tls_read(r, b, n);
    if (pr != PEEK_FOUND)
        return pr;
    *used += n;
    *value = 0;
    for (size_t i = 0; i < n; i++)
        *value = *value << 8 | b[i];
    return PEEK_FOUND;
}

/* Skips n bytes counted in *used against limit. */
static enum peek_result tls_skip(struct tls_reader *r, size_t n, size_t *used, size_t limit)
{
    if (*used + n > limit)
        return PEEK_INVALID;
    enum peek_result pr = tls_read(r, NULL, n);
    if (pr == PEEK_FOUND)
        *used += n;
    return pr;
}

#define TLS_TRY(expr)                       \
    do {                                    \
        enum peek_result tls_try_ = (expr); \
        if (tls_try_ != PEEK_FOUND)         \
            return tls_try_;                \
    } while (0)

/* The server_name extension's body (elen bytes, counted in *used against
 * limit). PEEK_FOUND with the name, PEEK_NONE without a usable one. */
static enum peek_result tls_server_name(struct tls_reader *r, size_t elen, size_t *used, size_t limit,
                                        char *out, size_t outlen)
{
    size_t list_len, end = *used + elen;

    if (elen < 2)
        return PEEK_INVALID;
    TLS_TRY(tls_number(r, 2, &list_len, used, end));
    if (list_len != elen - 2)
        return PEEK_INVALID;
    while (*used < end) {
        size_t type, nlen;
        TLS_TRY(tls_number(r, 1, &type, used, end));
        TLS_TRY(tls_number(r, 2, &nlen, used, end));
        if (type != TLS_HOST_NAME) {
            TLS_TRY(tls_skip(r, nlen, used, end));
            continue;
        }
        /* The first host_name is the name (RFC 6066 allows one). */
        unsigned char name[PEEK_NAME_MAX];
        if (nlen >= sizeof name) {
            TLS_TRY(tls_skip(r, nlen, used, end));
            return PEEK_NONE;
        }
        if (*used + nlen > end)
            return PEEK_INVALID;
        TLS_TRY(tls_read(r, name, nlen));
        *used += nlen;
        return peek_name_copy(name, nlen, out, outlen) ? PEEK_FOUND : PEEK_NONE;
    }
    (void)limit;
    return PEEK_NONE;
}

enum peek_result peek_tls_sni(const char *data, size_t len, char *out, size_t outlen)
{
    struct tls_reader r = { (const unsigned char *)data, len, 0, 0 };
    size_t type, hlen, used = 0, n, version;

    if (outlen > 0)
        *out = '\0';
    /* The handshake header: type and a 3-byte length. */
    TLS_TRY(tls_number(&r, 1, &type, &used, 4));
    if (type != TLS_CLIENT_HELLO)
        return PEEK_INVALID;
    TLS_TRY(tls_number(&r, 3, &hlen, &used, 4));
    if (hlen < TLS_HELLO_MIN)
        return PEEK_INVALID;
    used = 0;
    TLS_TRY(tls_number(&r, 2, &version, &used, hlen));
    if (version >> 8 != 3)
        return PEEK_INVALID;
    TLS_TRY(tls_skip(&r, 32, &used, hlen));                 /* random */
    TLS_TRY(tls_number(&r, 1, &n, &used, hlen));            /* session id */
    if (n > 32)
        return PEEK_INVALID;
    TLS_TRY(tls_skip(&r, n, &used, hlen));
    TLS_TRY(tls_number(&r, 2, &n, &used, hlen));            /* cipher suites */
    if (n < 2 || n % 2 != 0)
        return PEEK_INVALID;
    TLS_TRY(tls_skip(&r, n, &used, hlen));
    TLS_TRY(tls_number(&r, 1, &n, &used, hlen));            /* compression methods */
    if (n < 1)
        return PEEK_INVALID;
    TLS_TRY(tls_skip(&r, n, &used, hlen));
    if (used == hlen)
        return PEEK_NONE;                                   /* no extensions */
    size_t ext_total;
    TLS_TRY(tls_number(&r, 2, &ext_total, &used, hlen));
    if (used + ext_total != hlen)
        return PEEK_INVALID;
    while (used < hlen) {
        size_t etype, elen;
        TLS_TRY(tls_number(&r, 2, &etype, &used, hlen));
        TLS_TRY(tls_number(&r, 2, &elen, &used, hlen));
        if (used + elen > hlen)
            return PEEK_INVALID;
        if (etype == TLS_EXT_SERVER_NAME)
            return tls_server_name(&r, elen, &used, hlen, out, outlen);
        TLS_TRY(tls_skip(&r, elen, &used, hlen));
    }
    return PEEK_NONE;
}

/* ---- HTTP/1.x Host ------------------------------------------------------ */

/* RFC 9110 tchar: the bytes of a method or a header name. */
static bool http_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Parses a Host value (len bytes, OWS around it) into out. */
static enum peek_result http_host_value(const unsigned char *v, size_t len, char *out, size_t outlen)
{
    while (len > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    size_t host_len = len;
    if (len > 0 && v[0] == '[') {
        /* An IPv6 literal: kept with its brackets. */
        const unsigned char *close = memchr(v, ']', len);
        if (close == NULL)
            return PEEK_NONE;
        host_len = (size_t)(close - v) + 1;
        if (host_len >= outlen || host_len >= PEEK_NAME_MAX || host_len < 3)
            return PEEK_NONE;
        for (size_t i = 1; i + 1 < host_len; i++) {
            unsigned char ch = v[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') ||
                  ch == ':' || ch == '.'))
                return PEEK_NONE;
            out[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
        }
        out[0] = '[';
        out[host_len - 1] = ']';
        out[host_len] = '\0';
    } else {
        const unsigned char *colon = memchr(v, ':', len);
        if (colon != NULL)
            host_len = (size_t)(colon - v);
        if (!peek_name_copy(v, host_len, out, outlen))
            return PEEK_NONE;
    }
    /* What follows the host: nothing, or ":" and a port of digits. */
    if (host_len < len) {
        if (v[host_len] != ':')
            return PEEK_NONE;
        for (size_t i = host_len + 1; i < len; i++) {
            if (v[i] < '0' || v[i] > '9')
                return PEEK_NONE;
        }
    }
    return PEEK_FOUND;
}

enum peek_result peek_http_host(const char *data, size_t len, char *out, size_t outlen)
{
    static const char version[] = "HTTP/1.";
    const unsigned char *d = (const unsigned char *)data;
    size_t i = 0, host_at = 0, host_len = 0;
    bool host = false;

    if (outlen > 0)
        *out = '\0';
    /* Request line: METHOD SP TARGET SP HTTP/1.x (CR) LF. */
    while (i < len && http_tchar(d[i])) {
        if (++i > HTTP_METHOD_MAX)
            return PEEK_INVALID;
    }
    if (i == len)
        return PEEK_NEED_MORE;
    if (i == 0 || d[i] != ' ')
        return PEEK_INVALID;
    size_t target = ++i;
    while (i < len && d[i] > ' ' && d[i] != 0x7f)
        i++;
    if (i == len)
        return PEEK_NEED_MORE;
    if (i == target || d[i] != ' ')
        return PEEK_INVALID;
    i++;
    for (size_t k = 0; k < sizeof version - 1; k++, i++) {
        if (i == len)
            return PEEK_NEED_MORE;
        if (d[i] != (unsigned char)version[k])
            return PEEK_INVALID;
    }
    if (i == len)
        return PEEK_NEED_MORE;
    if (d[i] < '0' || d[i] > '9')
        return PEEK_INVALID;
    i++;
    /* Each line ends with LF, a CR only right before it. */
    for (bool request_line = true;; request_line = false) {
        size_t start = i;
        if (!request_line) {
            if (i == len)
                return PEEK_NEED_MORE;
            if (d[i] == ' ' || d[i] == '\t')
                return PEEK_INVALID;        /* obsolete line folding */
        }
        size_t name_end = i;
        if (!request_line && d[i] != '\r' && d[i] != '\n') {
            while (i < len && http_tchar(d[i]))
                i++;
            if (i == len)
                return PEEK_NEED_MORE;
            if (i == start || d[i] != ':')
                return PEEK_INVALID;
            name_end = i++;
        }
        size_t value = i;
        while (i < len && d[i] != '\n' && d[i] != '\r' && d[i] != '\0')
            i++;
        if (i == len)
            return PEEK_NEED_MORE;
        size_t value_end = i;
        if (d[i] == '\0')
            return PEEK_INVALID;
        if (d[i] == '\r') {
            if (++i == len)
                return PEEK_NEED_MORE;
            if (d[i] != '\n')
                return PEEK_INVALID;
        }
        i++;
        if (request_line) {
            if (value != value_end)
                return PEEK_INVALID;    /* bytes after HTTP/1.x */
            continue;
        }
        if (name_end == start)
            break;                      /* the empty line: the head is complete */
        if (name_end - start == 4 && strncasecmp((const char *)d + start, "host", 4) == 0) {
            if (host)
                return PEEK_INVALID;    /* two Hosts: ambiguous, refused as servers do */
            host = true;
            host_at = value;
            host_len = value_end - value;
        }
    }
    if (!host)
        return PEEK_NONE;
    return http_host_value(d + host_at, host_len, out, outlen);
}
