/* http codec: HTTP/1.x message framing by Content-Length, the chunked
 * transfer coding, or (responses only) the upstream closing the connection.
 * Headers are read line by line and consumed; bodies pass as they arrive. */
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define HTTP_MAX_LINE         (64 * 1024)
#define HTTP_MAX_LENGTH_DIGITS 15   /* Content-Length below 10^15 */
#define HTTP_MAX_CHUNK_DIGITS  15   /* chunk size below 16^15 */

/* Private info bit of a request: HEAD, so its response has no body. */
#define HTTP_PRIV_HEAD 0x1u

/*
 * Parser use: state is one of the states below; counts[HTTP_FLAGS] holds the
 * HF_* facts found in the head being read, counts[HTTP_CLEN] its
 * Content-Length, counts[HTTP_STATUS] a response's status code; remaining is
 * the body or chunk bytes still to pass.
 */
#define HTTP_FLAGS  0
#define HTTP_CLEN   1
#define HTTP_STATUS 2

#define HF_CLEN      0x01   /* Content-Length seen */
#define HF_TE        0x02   /* Transfer-Encoding seen */
#define HF_CHUNKED   0x04   /* ... and its last coding is chunked */
#define HF_CLOSE     0x08   /* Connection: close */
#define HF_KEEPALIVE 0x10   /* Connection: keep-alive */
#define HF_UPGRADE   0x20   /* an Upgrade header */
#define HF_HTTP10    0x40   /* HTTP/1.0 */
#define HF_EXPECT    0x80   /* Expect: 100-continue */

enum {
    HS_START_LINE,
    HS_HEADER,
    HS_BODY,
    HS_CHUNK_SIZE,
    HS_CHUNK_DATA,
    HS_CHUNK_CRLF,
    HS_TRAILER,
    HS_UNTIL_CLOSE,
};

/* RFC 9110 tchar: the bytes of a method or a header name. */
static const unsigned char http_tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

static bool http_token(const char *s, const char *e)
{
    if (s == e)
        return false;
    for (; s < e; s++)
        if (!http_tchar[(unsigned char)*s])
            return false;
    return true;
}

/* True if [s, e) equals the lowercase word lit, ignoring ASCII case. */
static bool http_ieq(const char *s, const char *e, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(e - s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        if (c != lit[i])
            return false;
    }
    return true;
}

static inline bool http_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Reads one element [s, e) of a comma-separated header value into flags;
 * returns false when the element is not acceptable. */
typedef bool (*http_elem_fn)(const char *s, const char *e, int64_t *flags);

/* Calls fn on every non-empty, trimmed element of the list [s, e). */
static bool http_list(const char *s, const char *e, int64_t *flags, http_elem_fn fn)
{
    while (s < e) {
        const char *comma = memchr(s, ',', (size_t)(e - s));
        const char *ee = comma != NULL ? comma : e;
        const char *ts = s, *te = ee;
        while (ts < te && http_ows(*ts))
            ts++;
        while (te > ts && http_ows(te[-1]))
            te--;
        if (ts < te && !fn(ts, te, flags))
            return false;
        s = comma != NULL ? comma + 1 : e;
    }
    return true;
}

static bool http_connection_elem(const char *s, const char *e, int64_t *flags)
{
    if (http_ieq(s, e, "close"))
        *flags |= HF_CLOSE;
    else if (http_ieq(s, e, "keep-alive"))
        *flags |= HF_KEEPALIVE;
    return true;
}

/* A coding after chunked is refused: chunked must be the last one. */
static bool http_te_elem(const char *s, const char *e, int64_t *flags)
{
    if (*flags & HF_CHUNKED)
        return false;
    const char *semi = memchr(s, ';', (size_t)(e - s));
    const char *ne = semi != NULL ? semi : e;
    while (ne > s && http_ows(ne[-1]))
        ne--;
    if (http_ieq(s, ne, "chunked"))
        *flags |= HF_CHUNKED;
    return true;
}

/* Splits a header line [s, e) into name and trimmed value. */
static bool http_header_split(const char *s, const char *e, const char **ne,
                              const char **vs, const char **ve)
{
    const char *colon = memchr(s, ':', (size_t)(e - s));

    if (colon == NULL || !http_token(s, colon))
        return false;
    *ne = colon;
    s = colon + 1;
    while (s < e && http_ows(*s))
        s++;
    while (e > s && http_ows(e[-1]))
        e--;
    *vs = s;
    *ve = e;
    return true;
}

/* Reads one header line [s, e) into the head's flags. */
static int http_header(struct codec_parser *p, const char *s, const char *e)
{
    const char *ne, *vs, *ve;
    int64_t *flags = &p->counts[HTTP_FLAGS];

    if (http_ows(*s)) {
        p->error = "folded header line";
        return CODEC_ERROR;
    }
    if (!http_header_split(s, e, &ne, &vs, &ve)) {
        p->error = memchr(s, ':', (size_t)(e - s)) ? "bad header name" : "header without colon";
        return CODEC_ERROR;
    }
    switch (ne - s) {
    case 14:
        if (http_ieq(s, ne, "content-length")) {
            size_t n = (size_t)(ve - vs);
            int64_t v = 0;
            if (n == 0 || n > HTTP_MAX_LENGTH_DIGITS) {
                p->error = "invalid content-length";
                return CODEC_ERROR;
            }
            for (size_t i = 0; i < n; i++) {
                if (vs[i] < '0' || vs[i] > '9') {
                    p->error = "invalid content-length";
                    return CODEC_ERROR;
                }
                v = v * 10 + (vs[i] - '0');
            }
            if ((*flags & HF_CLEN) && p->counts[HTTP_CLEN] != v) {
                p->error = "conflicting content-length";
                return CODEC_ERROR;
            }
            *flags |= HF_CLEN;
            p->counts[HTTP_CLEN] = v;
        }
        break;
    case 17:
        if (http_ieq(s, ne, "transfer-encoding")) {
            *flags |= HF_TE;
            if (!http_list(vs, ve, flags, http_te_elem)) {
                p->error = "chunked is not the last transfer-coding";
                return CODEC_ERROR;
            }
        }
        break;
    case 10:
        if (http_ieq(s, ne, "connection"))
            http_list(vs, ve, flags, http_connection_elem);
        break;
    case 7:
        if (http_ieq(s, ne, "upgrade"))
            *flags |= HF_UPGRADE;
        break;
    case 6:
        if (http_ieq(s, ne, "expect") && http_ieq(vs, ve, "100-continue"))
            *flags |= HF_EXPECT;
        break;
    }
    return CODEC_MORE;
}

/* "HTTP/1.x": sets HF_HTTP10 for 1.0. */
static bool http_version(struct codec_parser *p, const char *s, const char *e)
{
    if (e - s != 8 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > '9')
        return false;
    if (s[7] == '0')
        p->counts[HTTP_FLAGS] |= HF_HTTP10;
    return true;
}

/* "METHOD SP target SP HTTP/1.x" */
static int http_request_line(struct codec_parser *p, const char *s, const char *e)
{
    const char *sp1 = memchr(s, ' ', (size_t)(e - s));

    if (sp1 == NULL || !http_token(s, sp1)) {
        p->error = "bad request line";
        return CODEC_ERROR;
    }
    const char *sp2 = memrchr(sp1 + 1, ' ', (size_t)(e - (sp1 + 1)));
    if (sp2 == NULL) {
        p->error = "missing HTTP version";
        return CODEC_ERROR;
    }
    if (sp2 == sp1 + 1 || memchr(sp1 + 1, ' ', (size_t)(sp2 - (sp1 + 1))) != NULL) {
        p->error = "bad request line";
        return CODEC_ERROR;
    }
    if (!http_version(p, sp2 + 1, e)) {
        p->error = (e - sp2 > 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0) ?
            "unsupported HTTP version" : "missing HTTP version";
        return CODEC_ERROR;
    }
    if (sp1 - s == 4 && memcmp(s, "HEAD", 4) == 0)
        p->info |= CODEC_INFO_PRIVATE(HTTP_PRIV_HEAD);
    else if (sp1 - s == 7 && memcmp(s, "CONNECT", 7) == 0)
        p->info |= CODEC_INFO_UNSUPPORTED;
    return CODEC_MORE;
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" */
static int http_status_line(struct codec_parser *p, const char *s, const char *e)
{
    if (e - s < 12 || !http_version(p, s, s + 8) || s[8] != ' ' ||
        s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
        s[11] < '0' || s[11] > '9' || (e - s > 12 && s[12] != ' ')) {
        p->error = "bad status line";
        return CODEC_ERROR;
    }
    p->counts[HTTP_STATUS] = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return CODEC_MORE;
}

/* Sets the body state once the head is read; DONE if there is no body. */
static int http_body_state(struct codec_parser *p, int64_t flags)
{
    if (flags & HF_CHUNKED) {
        p->state = HS_CHUNK_SIZE;
        return CODEC_MORE;
    }
    if ((flags & HF_CLEN) && p->counts[HTTP_CLEN] > 0) {
        p->remaining = p->counts[HTTP_CLEN];
        p->state = HS_BODY;
        return CODEC_MORE;
    }
    return CODEC_DONE;
}

static int http_request_head_done(struct codec_parser *p)
{
    int64_t flags = p->counts[HTTP_FLAGS];

    if ((flags & HF_TE) && !(flags & HF_CHUNKED)) {
        p->error = "unsupported transfer-encoding";
        return CODEC_ERROR;
    }
    if ((flags & HF_TE) && (flags & HF_CLEN)) {
        p->error = "both content-length and transfer-encoding";
        return CODEC_ERROR;
    }
    if ((flags & HF_CLOSE) || ((flags & HF_HTTP10) && !(flags & HF_KEEPALIVE)))
        p->info |= CODEC_INFO_CLOSE;
    if (flags & HF_UPGRADE)
        p->info |= CODEC_INFO_UNSUPPORTED;
    int rc = http_body_state(p, flags);
    /* The client holds the body back until it hears "100 Continue" (or
     * tires of waiting); HTTP/1.0 clients get no interim answer (RFC 9110
     * 10.1.1). */
    if (rc == CODEC_MORE && (flags & HF_EXPECT) && !(flags & HF_HTTP10))
        p->info |= CODEC_INFO_CONTINUE;
    return rc;
}

static int http_response_head_done(struct codec_parser *p)
{
    int64_t flags = p->counts[HTTP_FLAGS];
    int64_t status = p->counts[HTTP_STATUS];

    if (status == 101) {
        p->error = "protocol upgrade not supported";
        return CODEC_ERROR;
    }
    if (status < 200) {     /* interim: the final response follows */
        p->counts[HTTP_FLAGS] = 0;
        p->counts[HTTP_CLEN] = 0;
        p->state = HS_START_LINE;
        return CODEC_MORE;
    }
    if ((flags & HF_TE) && (flags & HF_CLEN)) {
        p->error = "both content-length and transfer-encoding";
        return CODEC_ERROR;
    }
    p->close_after = (flags & HF_CLOSE) || ((flags & HF_HTTP10) && !(flags & HF_KEEPALIVE)) ||
                     (p->info & CODEC_INFO_CLOSE);
    if ((CODEC_INFO_PRIVATE_GET(p->info) & HTTP_PRIV_HEAD) || status == 204 || status == 304)
        return CODEC_DONE;
    if (!(flags & HF_CHUNKED) && ((flags & HF_TE) || !(flags & HF_CLEN))) {
        p->until_close = true;
        p->close_after = true;
        p->state = HS_UNTIL_CLOSE;
        return CODEC_MORE;
    }
    return http_body_state(p, flags);
}

/* "<hex>[ext]": chunk-ext is not interpreted. */
static int http_chunk_size(struct codec_parser *p, const char *s, const char *e)
{
    int64_t v = 0;
    const char *d = s;

    for (; d < e; d++) {
        int x;
        if (*d >= '0' && *d <= '9')
            x = *d - '0';
        else if ((*d | 0x20) >= 'a' && (*d | 0x20) <= 'f')
            x = (*d | 0x20) - 'a' + 10;
        else
            break;
        if (d - s == HTTP_MAX_CHUNK_DIGITS) {
            p->error = "chunk size too long";
            return CODEC_ERROR;
        }
        v = v * 16 + x;
    }
    while (d < e && http_ows(*d))
        d++;
    if (d == s || (d < e && *d != ';')) {
        p->error = "bad chunk size";
        return CODEC_ERROR;
    }
    if (v == 0) {
        p->state = HS_TRAILER;
    } else {
        p->remaining = v;
        p->state = HS_CHUNK_DATA;
    }
    return CODEC_MORE;
}

/* Interprets one complete line [s, e) (CR/LF removed) in p->state. */
static int http_line(struct codec_parser *p, const char *s, const char *e, bool response)
{
    const char *ne, *vs, *ve;
    int rc;

    switch (p->state) {
    case HS_START_LINE:
        if (s == e && !response)
            return CODEC_MORE;      /* RFC 9112 2.2: empty lines before a request */
        rc = response ? http_status_line(p, s, e) : http_request_line(p, s, e);
        if (rc == CODEC_MORE)
            p->state = HS_HEADER;
        return rc;
    case HS_HEADER:
        if (s < e)
            return http_header(p, s, e);
        return response ? http_response_head_done(p) : http_request_head_done(p);
    case HS_CHUNK_SIZE:
        return http_chunk_size(p, s, e);
    case HS_TRAILER:
        if (s == e)
            return CODEC_DONE;
        if (http_ows(*s) || !http_header_split(s, e, &ne, &vs, &ve)) {
            p->error = "bad trailer line";
            return CODEC_ERROR;
        }
        return CODEC_MORE;
    }
    p->error = "bad parser state";
    return CODEC_ERROR;
}

static int http_parse(struct codec_parser *p, const char *data, size_t len, size_t *used, bool response)
{
    size_t pos = 0, n;
    int rc = CODEC_MORE;

    while (rc == CODEC_MORE) {
        switch (p->state) {
        case HS_BODY:
        case HS_CHUNK_DATA:
            n = PMX_MIN(len - pos, (size_t)p->remaining);
            pos += n;
            p->remaining -= (int64_t)n;
            if (p->remaining > 0)
                goto out;
            if (p->state == HS_BODY) {
                rc = CODEC_DONE;
                goto out;
            }
            p->state = HS_CHUNK_CRLF;
            continue;
        case HS_CHUNK_CRLF:
            if (len - pos < 2)
                goto out;
            if (data[pos] != '\r' || data[pos + 1] != '\n') {
                p->error = "bad chunk terminator";
                return CODEC_ERROR;
            }
            pos += 2;
            p->state = HS_CHUNK_SIZE;
            continue;
        case HS_UNTIL_CLOSE:
            pos = len;
            goto out;
        default:
            break;
        }
        const char *s = data + pos;
        const char *nl = pos < len ? memchr(s, '\n', len - pos) : NULL;
        n = nl != NULL ? (size_t)(nl - s) : len - pos;     /* the line without '\n' */
        if (n > HTTP_MAX_LINE + 1) {
            p->error = "line too long";
            return CODEC_ERROR;
        }
        if (nl == NULL)
            goto out;
        pos += n + 1;
        rc = http_line(p, s, nl > s && nl[-1] == '\r' ? nl - 1 : nl, response);
        if (rc == CODEC_ERROR)
            return rc;
    }
out:
    *used = pos;
    p->size += pos;
    return rc;
}

static void http_request_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static int http_parse_request(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    return http_parse(p, data, len, used, false);
}

static void http_response_begin(struct codec_parser *p, uint32_t info)
{
    memset(p, 0, sizeof(*p));
    p->info = info;
}

static int http_parse_response(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    return http_parse(p, data, len, used, true);
}

static size_t http_digits(size_t v)
{
    size_t d = 1;

    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* An error: a complete text/plain response whose body is "proximux:
 * <reason>\n", the reason shortened so that the whole fits in cap. Or the
 * interim "100 Continue". */
static size_t http_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    static const char body_prefix[] = "proximux: ";
    const char *status, *conn = "";
    char head[160];
    static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";

    switch (kind) {
    case CODEC_REPLY_CONTINUE:
        if (cap < sizeof(interim) - 1)
            return 0;
        memcpy(out, interim, sizeof(interim) - 1);
        return sizeof(interim) - 1;
    case CODEC_REPLY_CLIENT_ERROR:
        status = "400 Bad Request";
        conn = "Connection: close\r\n";
        break;
    case CODEC_REPLY_SERVER_ERROR:
        status = "502 Bad Gateway";
        break;
    case CODEC_REPLY_TIMEOUT:
        status = "504 Gateway Timeout";
        break;
    case CODEC_REPLY_BUSY:
        status = "503 Service Unavailable";
        break;
    default:
        return 0;
    }
    if (reason == NULL)
        reason = "error";
    size_t rlen = 0;
    for (const char *r = reason; *r != '\0'; r++)
        rlen += *r != '\r' && *r != '\n';

    /* head + body for a reason of r bytes */
    size_t fixed = strlen("HTTP/1.1 \r\nContent-Type: text/plain\r\nContent-Length: \r\n\r\n") +
                   strlen(status) + strlen(conn) + sizeof(body_prefix) - 1 + 1;
#define HTTP_REPLY_LEN(r) (fixed + http_digits(sizeof(body_prefix) + (r)) + (r))
    while (HTTP_REPLY_LEN(rlen) > cap) {
        size_t over = HTTP_REPLY_LEN(rlen) - cap;
        if (rlen == 0)
            return 0;
        rlen = over > rlen ? 0 : rlen - over;
    }
#undef HTTP_REPLY_LEN
    size_t body_len = sizeof(body_prefix) - 1 + rlen + 1;
    int hn = snprintf(head, sizeof(head),
                      "HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n",
                      status, body_len, conn);
    if (hn < 0 || (size_t)hn >= sizeof(head) || (size_t)hn + body_len > cap)
        return 0;
    size_t n = (size_t)hn;
    memcpy(out, head, n);
    memcpy(out + n, body_prefix, sizeof(body_prefix) - 1);
    n += sizeof(body_prefix) - 1;
    for (const char *r = reason; *r != '\0' && rlen > 0; r++) {
        if (*r != '\r' && *r != '\n') {
            out[n++] = *r;
            rlen--;
        }
    }
    out[n++] = '\n';
    return n;
}

const struct codec_ops codec_http = {
    .name = "http",
    .by_read = false,
    .one_in_flight = true,
    .request_begin = http_request_begin,
    .parse_request = http_parse_request,
    .response_begin = http_response_begin,
    .parse_response = http_parse_response,
    .reply = http_reply,
};
