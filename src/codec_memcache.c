/* memcache codec: the memcached text protocol, classic and meta commands.
 * The request line tells which shape of response to expect; the shape
 * travels to response_begin in the private bits of the request's info. */
#include <string.h>

#include "codec.h"

#define MC_MAX_LINE     (64 * 1024)
#define MC_MAX_GET_LINE (2 * 1024 * 1024)       /* multi-key get/gets/gat/gats */
#define MC_MAX_DATA     (1024LL * 1024 * 1024)  /* memcached's item size limit is at most 1 GiB */
#define MC_MAX_KEY      250                     /* memcached KEY_MAX_LENGTH */
#define MC_TOKENS       8                       /* tokens kept by mc_split */

/* Response shapes: CODEC_INFO_PRIVATE(shape) in the request's info. */
enum mc_shape {
    MC_SHAPE_NONE = 0,  /* quit: no response */
    MC_SHAPE_LINE,      /* one line: STORED, DELETED, 42, VERSION x, OK... */
    MC_SHAPE_VALUES,    /* VALUE <key> <flags> <bytes> [<cas>] + data block..., END */
    MC_SHAPE_STATS,     /* STAT/ITEM/PREFIX lines then END; RESET or OK alone */
    MC_SHAPE_META,      /* one line; "VA <size> ..." is followed by a data block */
};

enum mc_kind { MC_STORE, MC_CAS, MC_GET, MC_OTHER, MC_QUIT, MC_META, MC_META_SET };

struct mc_command {
    const char *name;
    uint8_t len;
    uint8_t kind;
    uint8_t min_tokens;     /* the command itself included */
    uint8_t max_tokens;     /* 0: any number */
    uint8_t shape;
    bool noreply;           /* may end with "noreply" */
};

/* The most frequent commands first. */
static const struct mc_command mc_commands[] = {
    { "get",       3, MC_GET,      2, 0, MC_SHAPE_VALUES, false },
    { "set",       3, MC_STORE,    5, 6, MC_SHAPE_LINE,   true },
    { "mg",        2, MC_META,     2, 0, MC_SHAPE_META,   false },
    { "ms",        2, MC_META_SET, 3, 0, MC_SHAPE_META,   false },
    { "gets",      4, MC_GET,      2, 0, MC_SHAPE_VALUES, false },
    { "delete",    6, MC_OTHER,    2, 4, MC_SHAPE_LINE,   true },
    { "md",        2, MC_META,     2, 0, MC_SHAPE_META,   false },
    { "incr",      4, MC_OTHER,    3, 4, MC_SHAPE_LINE,   true },
    { "decr",      4, MC_OTHER,    3, 4, MC_SHAPE_LINE,   true },
    { "ma",        2, MC_META,     2, 0, MC_SHAPE_META,   false },
    { "add",       3, MC_STORE,    5, 6, MC_SHAPE_LINE,   true },
    { "replace",   7, MC_STORE,    5, 6, MC_SHAPE_LINE,   true },
    { "append",    6, MC_STORE,    5, 6, MC_SHAPE_LINE,   true },
    { "prepend",   7, MC_STORE,    5, 6, MC_SHAPE_LINE,   true },
    { "cas",       3, MC_CAS,      6, 7, MC_SHAPE_LINE,   true },
    { "touch",     5, MC_OTHER,    3, 4, MC_SHAPE_LINE,   true },
    { "gat",       3, MC_GET,      3, 0, MC_SHAPE_VALUES, false },
    { "gats",      4, MC_GET,      3, 0, MC_SHAPE_VALUES, false },
    { "mn",        2, MC_META,     1, 0, MC_SHAPE_META,   false },
    { "me",        2, MC_META,     2, 0, MC_SHAPE_META,   false },
    { "version",   7, MC_OTHER,    1, 1, MC_SHAPE_LINE,   false },
    { "stats",     5, MC_OTHER,    1, 0, MC_SHAPE_STATS,  false },
    { "flush_all", 9, MC_OTHER,    1, 3, MC_SHAPE_LINE,   true },
    { "verbosity", 9, MC_OTHER,    2, 3, MC_SHAPE_LINE,   true },
    { "quit",      4, MC_QUIT,     1, 1, MC_SHAPE_NONE,   false },
};

/* Request and response states. */
enum { MC_LINE, MC_DATA, MC_DATA_CRLF };

struct mc_tok {
    const char *s;
    size_t n;
};

/* Splits [s, e) on spaces, keeping the first MC_TOKENS tokens in tok[] and
 * the last one in *last; *q tells whether a token after the second starts
 * with 'q' (a meta command's quiet flag). Returns the number of tokens. */
static size_t mc_split(const char *s, const char *e, struct mc_tok *tok, struct mc_tok *last, bool *q)
{
    size_t n = 0;

    *q = false;
    while (s < e) {
        if (*s == ' ') {
            s++;
            continue;
        }
        const char *sp = memchr(s, ' ', (size_t)(e - s));
        const char *te = sp != NULL ? sp : e;
        if (n < MC_TOKENS)
            tok[n] = (struct mc_tok){ s, (size_t)(te - s) };
        if (n >= 2 && *s == 'q')
            *q = true;
        *last = (struct mc_tok){ s, (size_t)(te - s) };
        n++;
        s = te;
    }
    return n;
}

/* Parses a decimal token, '-' allowed when min < 0, into [min, max]. */
static bool mc_number(struct mc_tok t, int64_t min, int64_t max, int64_t *out)
{
    const char *s = t.s;
    size_t n = t.n;
    bool neg = false;

    if (n > 0 && *s == '-' && min < 0) {
        neg = true;
        s++;
        n--;
    }
    if (n == 0 || n > 18)
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* An unsigned 64-bit decimal token (a cas unique). */
static bool mc_u64(struct mc_tok t)
{
    uint64_t v = 0;

    if (t.n == 0 || t.n > 20)
        return false;
    for (size_t i = 0; i < t.n; i++) {
        if (t.s[i] < '0' || t.s[i] > '9')
            return false;
        unsigned d = (unsigned)(t.s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    return true;
}

/* The line at data[pos..len) through its '\n', or NULL if not complete. */
static inline const char *mc_newline(const char *data, size_t pos, size_t len)
{
    return pos < len ? memchr(data + pos, '\n', len - pos) : NULL;
}

/* Passes the data block of p->remaining bytes at data[*pos] and the CRLF
 * after it, in the MC_DATA and MC_DATA_CRLF states. Returns 1 when both
 * are through, 0 when more bytes are needed, -1 when the CRLF is missing. */
static int mc_data_block(struct codec_parser *p, const char *data, size_t len, size_t *pos)
{
    if (p->state == MC_DATA) {
        size_t n = PMX_MIN(len - *pos, (size_t)p->remaining);
        *pos += n;
        p->remaining -= (int64_t)n;
        if (p->remaining > 0)
            return 0;
        p->state = MC_DATA_CRLF;
    }
    if (len - *pos < 2)
        return 0;
    if (data[*pos] != '\r' || data[*pos + 1] != '\n')
        return -1;
    *pos += 2;
    return 1;
}

/*
 * Interprets the request line [s, e) (CR/LF removed). Returns 1 when a data
 * block of p->remaining bytes follows, 0 when the request ends with the
 * line, -1 with p->error set when it is malformed.
 */
static int mc_request_line(struct codec_parser *p, const char *s, const char *e)
{
    struct mc_tok tok[MC_TOKENS], last = { NULL, 0 };
    const struct mc_command *cmd = NULL;
    bool q;
    int64_t v;
    size_t n = mc_split(s, e, tok, &last, &q);

    if (n == 0) {
        p->error = "empty command";
        return -1;
    }
    for (size_t i = 0; i < PMX_ARRAY_LEN(mc_commands); i++) {
        if (mc_commands[i].len == tok[0].n && memcmp(mc_commands[i].name, tok[0].s, tok[0].n) == 0) {
            cmd = &mc_commands[i];
            break;
        }
    }
    if (cmd == NULL) {
        p->error = "unknown command";
        return -1;
    }
    if (n < cmd->min_tokens || (cmd->max_tokens != 0 && n > cmd->max_tokens)) {
        p->error = "bad command line format";
        return -1;
    }
    p->info |= CODEC_INFO_PRIVATE(cmd->shape);
    /* memcached takes a last token "noreply" as the option even where it
     * stands for an argument ("incr k noreply" is silent), except for
     * delete, which needs a key before it. Mirror it, or the pairing of
     * responses breaks. */
    if (cmd->noreply && n >= (strcmp(cmd->name, "delete") == 0 ? 3u : 2u) &&
        last.n == 7 && memcmp(last.s, "noreply", 7) == 0)
        p->info |= CODEC_INFO_NOREPLY;

    switch (cmd->kind) {
    case MC_STORE:
    case MC_CAS:
        /* memcached answers a bad storage line without swallowing the data
         * block, which would then be read as a command: refuse it here. */
        if (tok[1].n > MC_MAX_KEY || !mc_number(tok[2], 0, UINT32_MAX, &v) ||
            !mc_number(tok[3], INT32_MIN, INT32_MAX, &v) ||
            (cmd->kind == MC_CAS && !mc_u64(tok[5]))) {
            p->error = "bad command line format";
            return -1;
        }
        if (!mc_number(tok[4], 0, MC_MAX_DATA, &v)) {
            p->error = "bad data chunk size";
            return -1;
        }
        p->remaining = v;
        return 1;
    case MC_META_SET:
        if (!mc_number(tok[2], 0, MC_MAX_DATA, &v)) {
            p->error = "bad data chunk size";
            return -1;
        }
        if (q)
            p->info |= CODEC_INFO_UNSUPPORTED;
        p->remaining = v;
        return 1;
    case MC_META:
        if (q)
            p->info |= CODEC_INFO_UNSUPPORTED;
        return 0;
    case MC_QUIT:
        p->info |= CODEC_INFO_QUIT;
        return 0;
    default:
        return 0;
    }
}

/* The longest request line accepted (its CR included): multi-key
 * retrievals may be long, anything else is short. */
static size_t mc_line_max(const char *data, size_t len)
{
    if (len >= 4 && (memcmp(data, "get", 3) == 0 || memcmp(data, "gat", 3) == 0))
        return MC_MAX_GET_LINE + 1;
    return MC_MAX_LINE + 1;
}

static void mc_request_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static int mc_parse_request(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, n;
    const char *nl, *e;
    int rc = CODEC_MORE;

    switch (p->state) {
    case MC_LINE:
        nl = mc_newline(data, 0, len);
        n = nl != NULL ? (size_t)(nl - data) : len;    /* the line so far, without '\n' */
        if (n > MC_MAX_LINE + 1 && n > mc_line_max(data, len)) {
            p->error = "line too long";
            return CODEC_ERROR;
        }
        if (nl == NULL)
            goto out;
        pos = n + 1;
        e = nl > data && nl[-1] == '\r' ? nl - 1 : nl;
        switch (mc_request_line(p, data, e)) {
        case -1:
            return CODEC_ERROR;
        case 0:
            rc = CODEC_DONE;
            goto out;
        }
        p->state = MC_DATA;
        /* fall through */
    case MC_DATA:
    case MC_DATA_CRLF:
        switch (mc_data_block(p, data, len, &pos)) {
        case 0:
            goto out;
        case -1:
            p->error = "bad data chunk";
            return CODEC_ERROR;
        }
        rc = CODEC_DONE;
        break;
    }
out:
    *used = pos;
    p->size += pos;
    return rc;
}

static void mc_response_begin(struct codec_parser *p, uint32_t info)
{
    memset(p, 0, sizeof(*p));
    p->info = info;
}

/* True if the line [s, e) is word alone or followed by a space. */
static inline bool mc_is(const char *s, const char *e, const char *word, size_t n)
{
    return (size_t)(e - s) >= n && memcmp(s, word, n) == 0 && (s + n == e || s[n] == ' ');
}

/*
 * Interprets the response line [s, e) (CR/LF removed). Returns CODEC_DONE
 * when it ends the response, CODEC_MORE when more lines or a data block of
 * p->remaining bytes (p->state MC_DATA) follow, CODEC_ERROR.
 */
static int mc_response_line(struct codec_parser *p, const char *s, const char *e)
{
    struct mc_tok tok[MC_TOKENS], last;
    bool q;
    int64_t v;

    if (e > s && (s[0] == 'E' || s[0] == 'C' || s[0] == 'S') &&
        (mc_is(s, e, "ERROR", 5) || mc_is(s, e, "CLIENT_ERROR", 12) || mc_is(s, e, "SERVER_ERROR", 12)))
        return CODEC_DONE;
    switch (CODEC_INFO_PRIVATE_GET(p->info)) {
    case MC_SHAPE_VALUES:
        if (mc_is(s, e, "END", 3))
            return CODEC_DONE;
        if (!mc_is(s, e, "VALUE", 5)) {
            p->error = "unexpected line in retrieval reply";
            return CODEC_ERROR;
        }
        {
            size_t n = mc_split(s, e, tok, &last, &q);
            if ((n != 4 && n != 5) || !mc_number(tok[3], 0, MC_MAX_DATA, &v)) {
                p->error = "bad VALUE line";
                return CODEC_ERROR;
            }
        }
        p->remaining = v;
        p->state = MC_DATA;
        return CODEC_MORE;
    case MC_SHAPE_STATS:
        if (mc_is(s, e, "END", 3) || mc_is(s, e, "RESET", 5) || mc_is(s, e, "OK", 2))
            return CODEC_DONE;
        return CODEC_MORE;
    case MC_SHAPE_META:
        if (!mc_is(s, e, "VA", 2))
            return CODEC_DONE;
        if (mc_split(s, e, tok, &last, &q) < 2 || !mc_number(tok[1], 0, MC_MAX_DATA, &v)) {
            p->error = "bad VA line";
            return CODEC_ERROR;
        }
        p->remaining = v;
        p->state = MC_DATA;
        return CODEC_MORE;
    default:
        return CODEC_DONE;
    }
}

static int mc_parse_response(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, n;
    const char *nl, *e;
    int rc = CODEC_MORE;

    for (;;) {
        switch (p->state) {
        case MC_LINE:
            nl = mc_newline(data, pos, len);
            n = nl != NULL ? (size_t)(nl - (data + pos)) : len - pos;
            if (n > MC_MAX_LINE + 1) {
                p->error = "line too long";
                return CODEC_ERROR;
            }
            if (nl == NULL)
                goto out;
            e = nl > data + pos && nl[-1] == '\r' ? nl - 1 : nl;
            rc = mc_response_line(p, data + pos, e);
            pos = (size_t)(nl - data) + 1;
            if (rc != CODEC_MORE)
                goto out;
            break;
        case MC_DATA:
        case MC_DATA_CRLF:
            switch (mc_data_block(p, data, len, &pos)) {
            case 0:
                goto out;
            case -1:
                p->error = "bad data chunk in reply";
                return CODEC_ERROR;
            }
            if (CODEC_INFO_PRIVATE_GET(p->info) != MC_SHAPE_VALUES) {
                rc = CODEC_DONE;
                goto out;
            }
            p->state = MC_LINE;
            break;
        }
    }
out:
    *used = pos;
    p->size += pos;
    return rc;
}

/* CLIENT_ERROR <reason>, SERVER_ERROR proximux: <reason>; nothing for
 * QUIT (memcached just closes). */
static size_t mc_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    const char *prefix;

    switch (kind) {
    case CODEC_REPLY_CLIENT_ERROR:
        prefix = "CLIENT_ERROR ";
        break;
    case CODEC_REPLY_SERVER_ERROR:
    case CODEC_REPLY_TIMEOUT:
    case CODEC_REPLY_BUSY:
        prefix = "SERVER_ERROR proximux: ";
        break;
    default:
        return 0;
    }
    return codec_error_line(prefix, reason, out, cap);
}

const struct codec_ops codec_memcache = {
    .name = "memcache",
    .by_read = false,
    .request_begin = mc_request_begin,
    .parse_request = mc_parse_request,
    .response_begin = mc_response_begin,
    .parse_response = mc_parse_response,
    .reply = mc_reply,
};
