/* http codec: HTTP/1.x message framing by Content-Length, the chunked
 * transfer coding, or (responses only) the upstream closing the connection.
 * Headers are read line by line and consumed; bodies pass as they arrive.
 *
 * Requests are held to RFC 9112 at least as strictly as nginx's defaults
 * (ngx_http_parse.c, ngx_http_request.c): whatever nginx would refuse and
 * close on, and whatever another server (Python's http.server splits header
 * lines at a bare CR) could frame differently, is refused before it is sent.
 * Responses are only held to what their framing needs. */
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define HTTP_MAX_LINE         (64 * 1024)   /* one response line */
#define HTTP_MAX_LENGTH_DIGITS 15   /* Content-Length below 10^15 */
#define HTTP_MAX_CHUNK_DIGITS  15   /* chunk size below 16^15 */

/* Request limits, no looser than nginx's defaults: a line (CRLF included)
 * fits one of its 8 KiB large_client_header_buffers, the head fits the four
 * of them (with the 1 KiB client_header_buffer_size first, see
 * http_ngx_room()) and 32 KiB; Python's http.client takes 100 fields. */
#define HTTP_REQ_MAX_LINE   8192
#define HTTP_REQ_MAX_HEAD   (32 * 1024)
#define HTTP_REQ_MAX_FIELDS 100
#define HTTP_NGX_FIRST_BUF  1024
#define HTTP_NGX_LARGE_BUF  8192
#define HTTP_NGX_LARGE_BUFS 4

/* Private info bits of a request: HEAD, so its response has no body;
 * EXPECT, it asked for "100 Continue" before its body. An EXPECT request
 * whose CODEC_INFO_CONTINUE the exchange has cleared was answered "100
 * Continue" by Proximux: the upstream's own 100 is then not passed on (a
 * second one makes Node's http client emit 'continue' twice and throw
 * "write after end"). */
#define HTTP_PRIV_HEAD   0x1u
#define HTTP_PRIV_EXPECT 0x2u

/*
 * Parser use: state is one of the states below; counts[HTTP_FLAGS] holds the
 * HF_* facts found in the head being read, counts[HTTP_CLEN] its
 * Content-Length, counts[HTTP_STATUS] a response's status code; for a
 * request head, counts[HTTP_FIELDS] the header fields so far,
 * counts[HTTP_HEAD] its bytes so far, counts[HTTP_NGX_ROOM] and
 * counts[HTTP_NGX_LARGE] where nginx would hold it (http_ngx_room()).
 * remaining is the body or chunk bytes still to pass.
 */
#define HTTP_FLAGS     0
#define HTTP_CLEN      1
#define HTTP_STATUS    2
#define HTTP_FIELDS    3
#define HTTP_HEAD      4
#define HTTP_NGX_ROOM  5
#define HTTP_NGX_LARGE 6
#define HTTP_MSG_START 7    /* response: offset of the current start line in the response */
#define HTTP_INTERIM   8    /* response: status of the interim head just read, else 0 */
#define HTTP_METHOD    9    /* request: counts[9..10] hold the method's first 16 bytes, for refusals */
#define HTTP_METHOD_MAX 16

#define HF_CLEN      0x01   /* Content-Length seen */
#define HF_TE        0x02   /* Transfer-Encoding seen */
#define HF_CHUNKED   0x04   /* ... and its last coding is chunked */
#define HF_CLOSE     0x08   /* Connection: close */
#define HF_KEEPALIVE 0x10   /* Connection: keep-alive */
#define HF_HOST      0x20   /* Host seen */
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

/* RFC 9110 tchar: the bytes of a header name. */
static const unsigned char http_tchar[256] = {
    ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
    ['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
    ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

/* The bytes of a method, as nginx takes them. */
static const unsigned char http_method_char[256] = {
    ['A' ... 'Z'] = 1, ['-'] = 1, ['_'] = 1,
};


static bool http_span(const char *s, const char *e, const unsigned char *table)
{
    if (s == e)
        return false;
    for (; s < e; s++)
        if (!table[(unsigned char)*s])
            return false;
    return true;
}

/* True if [s, e) equals the lowercase word lit, ignoring ASCII case; with
 * dash, '_' in [s, e) matches '-' in lit. */
static bool http_ieq_as(const char *s, const char *e, const char *lit, bool dash)
{
    size_t n = strlen(lit);

    if ((size_t)(e - s) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c | 0x20);
        else if (dash && c == '_')
            c = '-';
        if (c != lit[i])
            return false;
    }
    return true;
}

static bool http_ieq(const char *s, const char *e, const char *lit)
{
    return http_ieq_as(s, e, lit, false);
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

/* Responses: a coding after chunked is refused, chunked must be the last. */
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

    if (colon == NULL || !http_span(s, colon, http_tchar))
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

/*
 * A refusal of a request names its method once the request line is in
 * (`"PATCH": both content-length and transfer-encoding`), in the client's
 * error and the log (level 2). The reason is built in this buffer, which
 * p->error points to until the next refusal: the exchange copies it at
 * once, on its one thread. Bytes outside printable ASCII show as '?'.
 */
static char http_error_buf[HTTP_METHOD_MAX + 160];

static int http_fail(struct codec_parser *p, const char *why)
{
    char method[HTTP_METHOD_MAX + 4];
    size_t n = 0;

    p->error = why;
    if (p->counts[HTTP_METHOD] == 0)
        return CODEC_ERROR;
    memcpy(method, &p->counts[HTTP_METHOD], HTTP_METHOD_MAX);
    while (n < HTTP_METHOD_MAX && method[n] != '\0') {
        if (method[n] < 0x20 || method[n] >= 0x7f || method[n] == '"')
            method[n] = '?';
        n++;
    }
    if (n == HTTP_METHOD_MAX) {
        memcpy(method + n, "...", 3);
        n += 3;
    }
    method[n] = '\0';
    snprintf(http_error_buf, sizeof(http_error_buf), "\"%s\": %s", method, why);
    p->error = http_error_buf;
    return CODEC_ERROR;
}

/* Keeps the method of the request line for http_fail. */
static void http_keep_method(struct codec_parser *p, const char *s, size_t n)
{
    char m[HTTP_METHOD_MAX] = { 0 };

    memcpy(m, s, PMX_MIN(n, sizeof(m)));
    memcpy(&p->counts[HTTP_METHOD], m, sizeof(m));
}

/* Reads one header line [s, e) into the head's flags. */
static int http_header(struct codec_parser *p, const char *s, const char *e, bool response)
{
    const char *ne, *vs, *ve;
    int64_t *flags = &p->counts[HTTP_FLAGS];

    if (http_ows(*s))
        return http_fail(p, "folded header line");
    if (!http_header_split(s, e, &ne, &vs, &ve))
        return http_fail(p, memchr(s, ':', (size_t)(e - s)) ? "bad header name" : "header without colon");
    /* Servers that map header names to CGI-style variables read
     * Content_Length as Content-Length; nginx drops such names. */
    if (!response && memchr(s, '_', (size_t)(ne - s)) != NULL &&
        (http_ieq_as(s, ne, "content-length", true) || http_ieq_as(s, ne, "transfer-encoding", true)))
        return http_fail(p, "underscore in a framing header name");
    /* nginx trims only SP around a value: "\tchunked" is not chunked to it. */
    bool tab = !response && memchr(ne + 1, '\t', (size_t)(e - (ne + 1))) != NULL;
    switch (ne - s) {
    case 14:
        if (http_ieq(s, ne, "content-length")) {
            size_t n = (size_t)(ve - vs);
            int64_t v = 0;
            if (*flags & HF_CLEN)
                return http_fail(p, "duplicate content-length");
            if (n == 0 || n > HTTP_MAX_LENGTH_DIGITS || tab)
                return http_fail(p, "invalid content-length");
            for (size_t i = 0; i < n; i++) {
                if (vs[i] < '0' || vs[i] > '9')
                    return http_fail(p, "invalid content-length");
                v = v * 10 + (vs[i] - '0');
            }
            *flags |= HF_CLEN;
            p->counts[HTTP_CLEN] = v;
        }
        break;
    case 17:
        if (!http_ieq(s, ne, "transfer-encoding"))
            break;
        if (response) {
            *flags |= HF_TE;
            if (!http_list(vs, ve, flags, http_te_elem))
                return http_fail(p, "chunked is not the last transfer-coding");
            break;
        }
        /* nginx takes exactly one field whose whole value is "chunked"
         * and answers 501 to any other coding, list or parameter. */
        if (*flags & HF_TE)
            return http_fail(p, "duplicate transfer-encoding");
        *flags |= HF_TE;
        if (tab || !http_ieq(vs, ve, "chunked"))
            return http_fail(p, "transfer-coding not implemented");
        *flags |= HF_CHUNKED;
        break;
    case 10:
        if (http_ieq(s, ne, "connection"))
            http_list(vs, ve, flags, http_connection_elem);
        break;
    case 7:
        /* The upstream would switch protocols on a shared connection. */
        if (!response && http_ieq(s, ne, "upgrade"))
            return http_fail(p, "protocol upgrade not supported");
        break;
    case 6:
        if (http_ieq(s, ne, "expect") && http_ieq(vs, ve, "100-continue"))
            *flags |= HF_EXPECT;
        break;
    case 4:
        if (!response && http_ieq(s, ne, "host")) {
            if (*flags & HF_HOST)
                return http_fail(p, "duplicate host");
            *flags |= HF_HOST;
        }
        break;
    }
    return CODEC_MORE;
}

/* A request's "HTTP/1.0" or "HTTP/1.1"; a response's "HTTP/1.x". Sets
 * HF_HTTP10 for 1.0. */
static bool http_version(struct codec_parser *p, const char *s, const char *e, bool response)
{
    if (e - s != 8 || memcmp(s, "HTTP/1.", 7) != 0 || s[7] < '0' || s[7] > (response ? '9' : '1'))
        return false;
    if (s[7] == '0')
        p->counts[HTTP_FLAGS] |= HF_HTTP10;
    return true;
}

/* origin-form ("/path?query") or absolute-form ("scheme://..."), visible
 * ASCII only: nginx refuses other forms ("*" too), and Python's
 * http.server splits a request line at 0x85 and 0xa0 as at spaces. */
static bool http_target(const char *s, const char *e)
{
    const char *t;

    if (s == e)
        return false;
    for (t = s; t < e; t++)
        if ((unsigned char)*t <= ' ' || (unsigned char)*t >= 0x7f)
            return false;
    if (*s == '/')
        return true;
    for (t = s; t < e && ((*t | 0x20) >= 'a' && (*t | 0x20) <= 'z'); t++)
        ;
    if (t == s)
        return false;
    for (; t < e && (((*t | 0x20) >= 'a' && (*t | 0x20) <= 'z') || (*t >= '0' && *t <= '9') ||
                     *t == '+' || *t == '-' || *t == '.'); t++)
        ;
    return e - t >= 3 && memcmp(t, "://", 3) == 0;
}

/* "METHOD SP target SP HTTP/1.x", exactly one SP between the parts. */
static int http_request_line(struct codec_parser *p, const char *s, const char *e)
{
    const char *sp1 = memchr(s, ' ', (size_t)(e - s));

    if (sp1 == NULL)
        return http_fail(p, "bad request line");
    if (sp1 > s)
        http_keep_method(p, s, (size_t)(sp1 - s));
    if (!http_span(s, sp1, http_method_char))
        return http_fail(p, "bad method");
    const char *sp2 = memrchr(sp1 + 1, ' ', (size_t)(e - (sp1 + 1)));
    if (sp2 == NULL)
        return http_fail(p, "missing HTTP version");
    if (!http_version(p, sp2 + 1, e, false))
        return http_fail(p, (e - sp2 > 5 && memcmp(sp2 + 1, "HTTP/", 5) == 0) ?
                            "unsupported HTTP version" : "missing HTTP version");
    /* A tunnel cannot share a connection. */
    if (sp1 - s == 7 && memcmp(s, "CONNECT", 7) == 0)
        return http_fail(p, "CONNECT not supported");
    if (!http_target(sp1 + 1, sp2))
        return http_fail(p, "bad request target");
    if (sp1 - s == 4 && memcmp(s, "HEAD", 4) == 0)
        p->info |= CODEC_INFO_PRIVATE(HTTP_PRIV_HEAD);
    return CODEC_MORE;
}

/* "HTTP/1.x SP 3DIGIT [SP reason]" */
static int http_status_line(struct codec_parser *p, const char *s, const char *e)
{
    if (e - s < 12 || !http_version(p, s, s + 8, true) || s[8] != ' ' ||
        s[9] < '1' || s[9] > '9' || s[10] < '0' || s[10] > '9' ||
        s[11] < '0' || s[11] > '9' || (e - s > 12 && s[12] != ' '))
        return http_fail(p, "bad status line");
    p->counts[HTTP_STATUS] = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return CODEC_MORE;
}

/*
 * Whether nginx, with its default buffers, holds one more request head line
 * of len bytes (CRLF included). It reads a head into one 1 KiB buffer, then
 * into up to four 8 KiB ones, and never splits a line between two: a line
 * that does not fit where it starts moves whole to the next buffer. So a
 * head of five 4097-byte lines is refused (400) although it is far below
 * 32 KiB.
 */
static bool http_ngx_room(struct codec_parser *p, size_t len)
{
    int64_t *room = &p->counts[HTTP_NGX_ROOM];
    int64_t *large = &p->counts[HTTP_NGX_LARGE];

    if ((int64_t)len <= *room) {
        *room -= (int64_t)len;
        return true;
    }
    if (*large == HTTP_NGX_LARGE_BUFS || len > HTTP_NGX_LARGE_BUF)
        return false;
    (*large)++;
    *room = HTTP_NGX_LARGE_BUF - (int64_t)len;
    return true;
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

    if (!(flags & HF_HTTP10) && !(flags & HF_HOST))
        return http_fail(p, "missing host");
    if ((flags & HF_TE) && (flags & HF_CLEN))
        return http_fail(p, "both content-length and transfer-encoding");
    /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding must be
     * treated as if its framing were faulty; nginx answers 400 and closes.
     * Refused here, so the upstream never sees it. */
    if ((flags & HF_HTTP10) && (flags & HF_TE))
        return http_fail(p, "transfer-encoding in an HTTP/1.0 request");
    if ((flags & HF_CLOSE) || ((flags & HF_HTTP10) && !(flags & HF_KEEPALIVE)))
        p->info |= CODEC_INFO_CLOSE;
    int rc = http_body_state(p, flags);
    /* The client holds the body back until it hears "100 Continue" (or
     * tires of waiting); HTTP/1.0 clients get no interim answer (RFC 9110
     * 10.1.1). */
    if (rc == CODEC_MORE && (flags & HF_EXPECT) && !(flags & HF_HTTP10))
        p->info |= CODEC_INFO_CONTINUE | CODEC_INFO_PRIVATE(HTTP_PRIV_EXPECT);
    return rc;
}

static int http_response_head_done(struct codec_parser *p)
{
    int64_t flags = p->counts[HTTP_FLAGS];
    int64_t status = p->counts[HTTP_STATUS];

    if (status == 101)
        return http_fail(p, "protocol upgrade not supported");
    if (status < 200) {     /* interim: the final response follows */
        p->counts[HTTP_INTERIM] = status;
        p->counts[HTTP_FLAGS] = 0;
        p->counts[HTTP_CLEN] = 0;
        p->state = HS_START_LINE;
        return CODEC_MORE;
    }
    if ((flags & HF_TE) && (flags & HF_CLEN))
        return http_fail(p, "both content-length and transfer-encoding");
    p->close_after = (flags & HF_CLOSE) || ((flags & HF_HTTP10) && !(flags & HF_KEEPALIVE)) ||
                     ((flags & HF_HTTP10) && (flags & HF_TE)) || (p->info & CODEC_INFO_CLOSE);
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
        if (d - s == HTTP_MAX_CHUNK_DIGITS)
            return http_fail(p, "chunk size too long");
        v = v * 16 + x;
    }
    while (d < e && http_ows(*d))
        d++;
    if (d == s || (d < e && *d != ';'))
        return http_fail(p, "bad chunk size");
    if (v == 0) {
        p->state = HS_TRAILER;
    } else {
        p->remaining = v;
        p->state = HS_CHUNK_DATA;
    }
    return CODEC_MORE;
}

/* The reason a request line of the current state is too long. */
static const char *http_too_long(const struct codec_parser *p)
{
    switch (p->state) {
    case HS_START_LINE:
        return "request line too long";
    case HS_HEADER:
        return "header line too long";
    default:
        return "chunk or trailer line too long";
    }
}

/*
 * Checks the bytes [s, s + n) of a line, up to its LF if complete (the LF
 * not included), or all of the line received so far: a CR only right
 * before the LF; in a request no other control character than HTAB, the
 * line ending in CRLF, and within the length limits; in a response no NUL.
 * Parsers that split lines at a bare CR or stop at a NUL would see other
 * lines than this one.
 */
static int http_line_bytes(struct codec_parser *p, const char *s, size_t n, bool complete, bool response)
{
    /* Bytes refused anywhere in a line. A request (head, chunk size,
     * trailer): 0x00-0x1f and 0x7f but HTAB (allowed in field values and
     * chunk extensions, refused elsewhere by the grammar) and LF (ends the
     * line), CR included. A response: NUL and CR. A CR is allowed as the
     * line's last byte (before its LF, or still waiting for it), so the
     * scan stops short of it. The scan ORs table entries without a branch
     * per byte; the first bad byte is looked for only on failure. */
    static const unsigned char request_bad[256] = {
        [0x00 ... 0x08] = 1, [0x0b ... 0x1f] = 1, [0x7f] = 1,
    };
    static const unsigned char response_bad[256] = { [0x00] = 1, ['\r'] = 1 };
    const unsigned char *bad = response ? response_bad : request_bad;
    size_t m = n > 0 && s[n - 1] == '\r' ? n - 1 : n;
    unsigned char acc = 0;

    for (size_t i = 0; i < m; i++)
        acc |= bad[(unsigned char)s[i]];
    if (acc != 0) {
        size_t i = 0;
        while (!bad[(unsigned char)s[i]])
            i++;
        if (s[i] == '\r')
            return http_fail(p, "bare CR");
        return http_fail(p, response ? "NUL in a response line" : "control character in request");
    }
    if (response) {
        if (n > HTTP_MAX_LINE + 1)
            return http_fail(p, "line too long");
        return CODEC_MORE;
    }
    if (complete && (n == 0 || s[n - 1] != '\r'))
        return http_fail(p, "bare LF");
    /* n + 1: at least the LF is still to come */
    if (n + 1 > HTTP_REQ_MAX_LINE)
        return http_fail(p, http_too_long(p));
    if ((p->state == HS_START_LINE || p->state == HS_HEADER) &&
        (uint64_t)p->counts[HTTP_HEAD] + n + 1 > HTTP_REQ_MAX_HEAD)
        return http_fail(p, "request head too large");
    return CODEC_MORE;
}

/* Interprets one complete line [s, e) (CR/LF removed) of len bytes (CR/LF
 * included) in p->state. */
static int http_line(struct codec_parser *p, const char *s, const char *e, size_t len, bool response)
{
    const char *ne, *vs, *ve;
    int rc;

    if (!response && (p->state == HS_START_LINE || p->state == HS_HEADER) && s < e) {
        p->counts[HTTP_HEAD] += (int64_t)len;
        if (p->state == HS_START_LINE)
            p->counts[HTTP_NGX_ROOM] = HTTP_NGX_FIRST_BUF;
        else if (++p->counts[HTTP_FIELDS] > HTTP_REQ_MAX_FIELDS)
            return http_fail(p, "too many header fields");
        if (!http_ngx_room(p, len))
            return http_fail(p, "request head too large");
    }
    switch (p->state) {
    case HS_START_LINE:
        if (s == e && !response) {
            /* RFC 9112 2.2: an empty line before a request is ignored;
             * dropped here, as a message of its own, rather than passed to
             * a server that might take it for a request. */
            p->info |= CODEC_INFO_SKIP;
            return CODEC_DONE;
        }
        rc = response ? http_status_line(p, s, e) : http_request_line(p, s, e);
        if (rc == CODEC_MORE)
            p->state = HS_HEADER;
        return rc;
    case HS_HEADER:
        if (s < e)
            return http_header(p, s, e, response);
        if (!response && !http_ngx_room(p, len))
            return http_fail(p, "request head too large");
        return response ? http_response_head_done(p) : http_request_head_done(p);
    case HS_CHUNK_SIZE:
        return http_chunk_size(p, s, e);
    case HS_TRAILER:
        if (s == e)
            return CODEC_DONE;
        if (http_ows(*s) || !http_header_split(s, e, &ne, &vs, &ve))
            return http_fail(p, "bad trailer line");
        return CODEC_MORE;
    }
    return http_fail(p, "bad parser state");
}

/* An interim response ended at offset end of the response: an upstream's
 * "100 Continue" to a request Proximux answered one itself is skipped, if
 * only skipped interim responses come before it (the skipped bytes are a
 * prefix of the response). */
static void http_interim_done(struct codec_parser *p, uint64_t end)
{
    bool local = (CODEC_INFO_PRIVATE_GET(p->info) & HTTP_PRIV_EXPECT) && !(p->info & CODEC_INFO_CONTINUE);

    if (p->counts[HTTP_INTERIM] == 100 && local && p->skip == (uint64_t)p->counts[HTTP_MSG_START])
        p->skip = end;
    p->counts[HTTP_INTERIM] = 0;
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
            if (data[pos] != '\r' || data[pos + 1] != '\n')
                return http_fail(p, "bad chunk terminator");
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
        if (http_line_bytes(p, s, n, nl != NULL, response) == CODEC_ERROR)
            return CODEC_ERROR;
        if (nl == NULL)
            goto out;
        if (response && p->state == HS_START_LINE)
            p->counts[HTTP_MSG_START] = (int64_t)(p->size + pos);
        pos += n + 1;
        rc = http_line(p, s, nl > s && nl[-1] == '\r' ? nl - 1 : nl, n + 1, response);
        if (rc == CODEC_ERROR)
            return rc;
        if (response && p->counts[HTTP_INTERIM] != 0)
            http_interim_done(p, p->size + pos);
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

/* The status of a refused request, told by the reason parse_request gave
 * (the exchange passes it on in its reason): 501 for a transfer-coding and
 * 414 for a request line, as nginx answers; 431 (RFC 6585) for an oversized
 * head, where nginx says 400; 400 for everything else. */
static const char *http_client_status(const char *reason)
{
    static const struct {
        const char *marker;
        const char *status;
    } statuses[] = {
        { "transfer-coding not implemented", "501 Not Implemented" },
        { "request line too long", "414 URI Too Long" },
        { "header line too long", "431 Request Header Fields Too Large" },
        { "too many header fields", "431 Request Header Fields Too Large" },
        { "request head too large", "431 Request Header Fields Too Large" },
    };

    for (size_t i = 0; reason != NULL && i < PMX_ARRAY_LEN(statuses); i++)
        if (strstr(reason, statuses[i].marker) != NULL)
            return statuses[i].status;
    return "400 Bad Request";
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
        status = http_client_status(reason);
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

/* The request log: the method and the path ("GET /index.html"). */
static size_t http_describe(const char *data, size_t len, char *out, size_t cap)
{
    return codec_describe_words(data, len, 2, out, cap);
}

/* A 5xx status line: "HTTP/1.1 503 ...". */
static bool http_error_reply(const char *data, size_t len)
{
    if (len < 6 || memcmp(data, "HTTP/", 5) != 0)
        return false;
    const char *sp = memchr(data + 5, ' ', len - 5);
    return sp != NULL && (size_t)(sp - data) + 1 < len && sp[1] == '5';
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
    .describe = http_describe,
    .error_reply = http_error_reply,
};
