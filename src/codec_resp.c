/* resp codec: the Redis protocol, RESP2. Requests are multibulk arrays of
 * bulk strings or inline commands; a response is one RESP2 value (arrays
 * nested up to CODEC_MAX_DEPTH). Commands that hold per-connection state are
 * flagged so the exchange refuses them. */
#include <string.h>

#include "codec.h"

#define RESP_MAX_LINE     (64 * 1024)              /* Redis PROTO_INLINE_MAX_SIZE */
#define RESP_MAX_BULK     (512LL * 1024 * 1024)    /* Redis proto-max-bulk-len default */
#define RESP_MAX_ARGS     (1024 * 1024)            /* Redis limit for unauthenticated clients */
#define RESP_MAX_ELEMENTS 2147483647LL             /* response arrays (LRANGE, KEYS) may be big */
#define RESP_CMD_MAX      32                       /* longer first arguments are not special */

/*
 * Request states. counts[0] holds the bulks left, counts[1] the index of the
 * next bulk (0: the command name, which is classified), remaining the bytes
 * of the current bulk still to pass.
 */
enum {
    RQ_START,       /* first byte: '*' multibulk, anything else inline */
    RQ_ARG_LEN,     /* "$<len>\r\n" */
    RQ_FIRST_ARG,   /* a short command name, taken whole with its CRLF */
    RQ_ARG_DATA,    /* bulk bytes */
    RQ_ARG_CRLF,    /* the CRLF after a bulk */
};

/* Response states; depth/counts[] is the stack of arrays being read. */
enum {
    RS_TYPE,        /* the type byte of the next value */
    RS_SIMPLE,      /* rest of a + - : line, passed as it arrives */
    RS_BULK_DATA,
    RS_BULK_CRLF,
};

/* Commands that hold per-connection state or block the connection. */
#define RESP_CMD(name) { name, sizeof(name) - 1 }
static const struct {
    const char *name;
    size_t len;
} resp_unsupported[] = {
    RESP_CMD("subscribe"), RESP_CMD("psubscribe"), RESP_CMD("ssubscribe"),
    RESP_CMD("unsubscribe"), RESP_CMD("punsubscribe"), RESP_CMD("sunsubscribe"),
    RESP_CMD("monitor"), RESP_CMD("multi"), RESP_CMD("exec"), RESP_CMD("discard"),
    RESP_CMD("watch"), RESP_CMD("unwatch"), RESP_CMD("select"), RESP_CMD("auth"),
    RESP_CMD("hello"), RESP_CMD("reset"), RESP_CMD("sync"), RESP_CMD("psync"),
    RESP_CMD("replconf"), RESP_CMD("client"), RESP_CMD("blpop"), RESP_CMD("brpop"),
    RESP_CMD("blmove"), RESP_CMD("brpoplpush"), RESP_CMD("bzpopmin"),
    RESP_CMD("bzpopmax"), RESP_CMD("blmpop"), RESP_CMD("bzmpop"), RESP_CMD("wait"),
    RESP_CMD("waitaof"),
};
#undef RESP_CMD

/* CODEC_INFO_* of the command called name[0..n), in any case. */
static uint32_t resp_classify(const char *name, size_t n)
{
    char low[RESP_CMD_MAX];

    if (n < 4 || n > 12)    /* the lengths of the names below */
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
    }
    if (n == 4 && memcmp(low, "quit", 4) == 0)
        return CODEC_INFO_QUIT;
    for (size_t i = 0; i < PMX_ARRAY_LEN(resp_unsupported); i++)
        if (resp_unsupported[i].len == n && memcmp(low, resp_unsupported[i].name, n) == 0)
            return CODEC_INFO_UNSUPPORTED;
    return 0;
}

/* Length of the line starting at data[pos], '\n' included, or 0 if it is
 * not complete yet. */
static inline size_t resp_line(const char *data, size_t pos, size_t len)
{
    if (pos >= len)
        return 0;
    const char *nl = memchr(data + pos, '\n', len - pos);
    return nl != NULL ? (size_t)(nl - (data + pos)) + 1 : 0;
}

/* Parses line[0..n), "<type><integer>\r\n", the way Redis's string2ll
 * reads the integer: optional '-', no leading zero, digits only. */
static bool resp_header(const char *line, size_t n, int64_t *out)
{
    if (n < 4 || line[n - 2] != '\r')
        return false;
    const char *s = line + 1;
    size_t digits = n - 3;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
        digits--;
    }
    if (digits == 0 || digits > 18 || (s[0] == '0' && (digits > 1 || neg)))
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return true;
}

static int resp_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

/*
 * Checks an inline command line[0..n) (CR/LF removed) the way Redis splits
 * it (sdssplitargs) and classifies its first argument. Returns the
 * CODEC_INFO_* bits, or -1 when Redis would refuse it (unbalanced quotes),
 * which also closes its connection.
 */
static int64_t resp_inline_info(const char *s, size_t n)
{
    const char *p = s, *e = s + n;
    char first[RESP_CMD_MAX];
    size_t first_len = 0;
    bool first_long = false;
    int args = 0;

    for (;;) {
        while (p < e && *p != '\0' && (*p == ' ' || (*p >= '\t' && *p <= '\r')))
            p++;
        if (p == e || *p == '\0')
            break;
        bool inq = false, insq = false, done = false;
        while (!done) {
            int c = -1;         /* the byte added to the argument, if any */
            if (inq) {
                if (p == e || *p == '\0')
                    return -1;
                if (*p == '\\' && e - p >= 4 && p[1] == 'x' && resp_hex(p[2]) >= 0 && resp_hex(p[3]) >= 0) {
                    c = resp_hex(p[2]) * 16 + resp_hex(p[3]);
                    p += 3;
                } else if (*p == '\\' && e - p >= 2 && p[1] != '\0') {
                    p++;
                    c = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' :
                        *p == 'b' ? '\b' : *p == 'a' ? '\a' : (unsigned char)*p;
                } else if (*p == '"') {
                    if (e - p >= 2 && p[1] != '\0' && !(p[1] == ' ' || (p[1] >= '\t' && p[1] <= '\r')))
                        return -1;
                    done = true;
                } else {
                    c = (unsigned char)*p;
                }
            } else if (insq) {
                if (p == e || *p == '\0')
                    return -1;
                if (*p == '\\' && e - p >= 2 && p[1] == '\'') {
                    p++;
                    c = '\'';
                } else if (*p == '\'') {
                    if (e - p >= 2 && p[1] != '\0' && !(p[1] == ' ' || (p[1] >= '\t' && p[1] <= '\r')))
                        return -1;
                    done = true;
                } else {
                    c = (unsigned char)*p;
                }
            } else if (p == e) {
                done = true;
            } else {
                switch (*p) {
                case ' ': case '\n': case '\r': case '\t': case '\0':
                    done = true;
                    break;
                case '"':
                    inq = true;
                    break;
                case '\'':
                    insq = true;
                    break;
                default:
                    c = (unsigned char)*p;
                    break;
                }
            }
            if (c >= 0 && args == 0) {
                if (first_len < sizeof(first))
                    first[first_len++] = (char)c;
                else
                    first_long = true;
            }
            if (p < e && !(done && *p == '\0'))
                p++;
        }
        args++;
        if (p < e && *p == '\0')
            break;
    }
    if (args == 0)
        return CODEC_INFO_NOREPLY;   /* Redis ignores an empty line */
    return first_long ? 0 : resp_classify(first, first_len);
}

static void resp_request_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static int resp_parse_request(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, n;
    int64_t v;
    int rc = CODEC_MORE;

    for (;;) {
        switch (p->state) {
        case RQ_START:
            n = resp_line(data, 0, len);
            if (n == 0)
                goto incomplete;
            if (data[0] != '*') {
                size_t end = n - 1;
                if (end > 0 && data[end - 1] == '\r')
                    end--;
                if (end > RESP_MAX_LINE) {
                    p->error = "line too long";
                    return CODEC_ERROR;
                }
                int64_t info = resp_inline_info(data, end);
                if (info < 0) {
                    p->error = "unbalanced quotes in inline request";
                    return CODEC_ERROR;
                }
                p->info |= (uint32_t)info;
                pos = n;
                rc = CODEC_DONE;
                goto out;
            }
            if (!resp_header(data, n, &v) || v < -1 || v > RESP_MAX_ARGS) {
                p->error = "invalid multibulk length";
                return CODEC_ERROR;
            }
            pos = n;
            if (v <= 0) {       /* Redis ignores *0 and *-1 */
                p->info |= CODEC_INFO_NOREPLY;
                rc = CODEC_DONE;
                goto out;
            }
            p->counts[0] = v;
            p->counts[1] = 0;
            p->state = RQ_ARG_LEN;
            break;

        case RQ_ARG_LEN:
            n = resp_line(data, pos, len);
            if (n == 0)
                goto incomplete;
            if (data[pos] != '$') {
                p->error = "expected '$' in multibulk request";
                return CODEC_ERROR;
            }
            if (!resp_header(data + pos, n, &v) || v < 0 || v > RESP_MAX_BULK) {
                p->error = "invalid bulk length";
                return CODEC_ERROR;
            }
            pos += n;
            p->remaining = v;
            p->state = p->counts[1] == 0 && v <= RESP_CMD_MAX ? RQ_FIRST_ARG : RQ_ARG_DATA;
            break;

        case RQ_FIRST_ARG:
            n = (size_t)p->remaining;
            if (len - pos < n + 2)
                goto out;
            if (data[pos + n] != '\r' || data[pos + n + 1] != '\n') {
                p->error = "bad bulk terminator";
                return CODEC_ERROR;
            }
            p->info |= resp_classify(data + pos, n);
            pos += n + 2;
            p->remaining = 0;
            goto arg_done;

        case RQ_ARG_DATA:
            n = PMX_MIN(len - pos, (size_t)p->remaining);
            pos += n;
            p->remaining -= (int64_t)n;
            if (p->remaining > 0)
                goto out;
            p->state = RQ_ARG_CRLF;
            /* fall through */
        case RQ_ARG_CRLF:
            if (len - pos < 2)
                goto out;
            if (data[pos] != '\r' || data[pos + 1] != '\n') {
                p->error = "bad bulk terminator";
                return CODEC_ERROR;
            }
            pos += 2;
        arg_done:
            p->counts[1]++;
            if (--p->counts[0] == 0) {
                rc = CODEC_DONE;
                goto out;
            }
            p->state = RQ_ARG_LEN;
            break;
        }
    }

incomplete:
    if (len - pos > RESP_MAX_LINE + 1) {    /* + 1: its CR */
        p->error = "line too long";
        return CODEC_ERROR;
    }
out:
    *used = pos;
    p->size += pos;
    return rc;
}

static void resp_response_begin(struct codec_parser *p, uint32_t info)
{
    memset(p, 0, sizeof(*p));
    p->info = info;
}

/* One value ended: pops the arrays it completes. Returns true when the
 * whole response ended. */
static inline bool resp_value_done(struct codec_parser *p)
{
    p->state = RS_TYPE;
    while (p->depth > 0) {
        if (--p->counts[p->depth - 1] > 0)
            return false;
        p->depth--;
    }
    return true;
}

static int resp_parse_response(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, n;
    int64_t v;
    const char *nl;

    for (;;) {
        switch (p->state) {
        case RS_TYPE:
            if (pos == len)
                goto more;
            switch (data[pos]) {
            case '+': case '-': case ':':
                pos++;
                p->state = RS_SIMPLE;
                break;
            case '$':
                n = resp_line(data, pos, len);
                if (n == 0)
                    goto incomplete;
                if (!resp_header(data + pos, n, &v) || v < -1 || v > RESP_MAX_BULK) {
                    p->error = "invalid bulk length in reply";
                    return CODEC_ERROR;
                }
                pos += n;
                if (v < 0) {
                    if (resp_value_done(p))
                        goto done;
                    break;
                }
                p->remaining = v;
                p->state = RS_BULK_DATA;
                break;
            case '*':
                n = resp_line(data, pos, len);
                if (n == 0)
                    goto incomplete;
                if (!resp_header(data + pos, n, &v) || v < -1 || v > RESP_MAX_ELEMENTS) {
                    p->error = "invalid array length in reply";
                    return CODEC_ERROR;
                }
                pos += n;
                if (v <= 0) {
                    if (resp_value_done(p))
                        goto done;
                    break;
                }
                if (p->depth == CODEC_MAX_DEPTH) {
                    p->error = "reply nested too deep";
                    return CODEC_ERROR;
                }
                p->counts[p->depth++] = v;
                break;
            default:
                p->error = "unknown reply type";
                return CODEC_ERROR;
            }
            break;

        case RS_SIMPLE:
            nl = pos < len ? memchr(data + pos, '\n', len - pos) : NULL;
            if (nl == NULL) {
                pos = len;
                goto more;
            }
            pos = (size_t)(nl - data) + 1;
            if (resp_value_done(p))
                goto done;
            break;

        case RS_BULK_DATA:
            n = PMX_MIN(len - pos, (size_t)p->remaining);
            pos += n;
            p->remaining -= (int64_t)n;
            if (p->remaining > 0)
                goto more;
            p->state = RS_BULK_CRLF;
            /* fall through */
        case RS_BULK_CRLF:
            if (len - pos < 2)
                goto more;
            if (data[pos] != '\r' || data[pos + 1] != '\n') {
                p->error = "bad bulk terminator in reply";
                return CODEC_ERROR;
            }
            pos += 2;
            if (resp_value_done(p))
                goto done;
            break;
        }
    }

incomplete:
    if (len - pos > RESP_MAX_LINE + 1) {    /* + 1: its CR */
        p->error = "line too long";
        return CODEC_ERROR;
    }
more:
    *used = pos;
    p->size += pos;
    return CODEC_MORE;
done:
    *used = pos;
    p->size += pos;
    return CODEC_DONE;
}

/* "-ERR proximux: <reason>\r\n" for every error, "+OK\r\n" for QUIT. */
static size_t resp_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    if (kind == CODEC_REPLY_QUIT) {
        if (cap < 5)
            return 0;
        memcpy(out, "+OK\r\n", 5);
        return 5;
    }
    return codec_error_line("-ERR proximux: ", reason, out, cap);
}

const struct codec_ops codec_resp = {
    .name = "resp",
    .by_read = false,
    .request_begin = resp_request_begin,
    .parse_request = resp_parse_request,
    .response_begin = resp_response_begin,
    .parse_response = resp_parse_response,
    .reply = resp_reply,
};
