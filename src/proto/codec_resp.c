/* resp codec: the Redis protocol. Requests are RESP2 multibulk arrays of
 * bulk strings or inline commands; a response is one RESP2 or RESP3 value,
 * nested to any depth. Commands a shared connection cannot carry are
 * classified here so that the exchange refuses them. */
#include <string.h>

#include "codec.h"
#include "resp_session.h"

/*
 * Request info. Besides the common CODEC_INFO_* bits, parse_request stores
 * the class of the command (what it does to the connection that carries
 * it) in the codec's private bits, for the exchange to read:
 *
 *   bits 16-19  enum resp_class (RESP_ORDINARY = 0, include/resp_session.h)
 *   bit  20     response side only: RESP_INFO_PUSH_OK, set by the exchange
 *   bits 21-31  zero
 *
 * RESP_QUIT comes with CODEC_INFO_QUIT, every class but RESP_ORDINARY and
 * RESP_QUIT with CODEC_INFO_UNSUPPORTED. Bytes that are not a command (an
 * empty inline line, *0, *-1) get CODEC_INFO_SKIP and RESP_ORDINARY.
 * response_begin() ignores the class: every class it is given answers with
 * one value. A push message ('>') where a reply is due is an error unless
 * the info has RESP_INFO_PUSH_OK.
 */
/* enum resp_class and RESP_CLASS_MASK: include/resp_session.h */

#define RESP_MAX_LINE     (64 * 1024)              /* Redis PROTO_INLINE_MAX_SIZE */
#define RESP_MAX_BULK     (512LL * 1024 * 1024)    /* Redis proto-max-bulk-len default */
#define RESP_MAX_ARGS     (1024 * 1024)            /* Redis limit for unauthenticated clients */
#define RESP_MAX_ELEMENTS 2147483647LL             /* response arrays (LRANGE, KEYS) may be big */
#define RESP_MAX_PENDING  (1LL << 62)              /* values a reply may still owe: no overflow */
#define RESP_SHORT_ARG    32                       /* inspected arguments up to this long are taken whole */
#define RESP_NAME_MIN     3                        /* lengths of the names in resp_commands[] */
#define RESP_NAME_MAX     12

/*
 * Every command that is not RESP_ORDINARY (and the subcommands of those
 * that are ordinary), sorted by length, then bytes: resp_command_find()
 * bisects it. From Redis 7.0.15: `COMMAND` of a
 * running server (flags blocking, pubsub, no_multi, noscript, admin) and
 * src/commands/<name>.json, checked against the current Redis source for
 * the commands added since (WAITAOF, 7.2). The BLOCKING flag is set on
 * BLMOVE BLMPOP BLPOP BRPOP BRPOPLPUSH BZMPOP BZPOPMAX BZPOPMIN XREAD
 * XREADGROUP; WAIT and WAITAOF block without it. Redis's processCommand()
 * closes a connection that sends "post" or "host:" (a cross-protocol attack)
 * without a reply. FAILOVER pauses writers; ACL DELUSER and ACL LOAD close
 * the connections of the users they remove; CONFIG SET (timeout,
 * client-output-buffer-limit, proto-max-bulk-len, maxmemory-clients) can
 * make the server close the shared connection. CLIENT covers REPLY OFF/SKIP,
 * KILL, PAUSE, TRACKING, SETNAME, NO-EVICT.
 *
 * An entry with sub set names a command whose subcommand (argument 1) may
 * have an entry "<name>|<subcommand>" of its own (Redis's own naming), with
 * the class that applies instead: the read-only subcommands of ACL and
 * CONFIG (redis-benchmark asks CONFIG GET) are ordinary.
 */
#define RESP_CMD(name, cls) { name, sizeof(name) - 1, cls, false }
#define RESP_SUB(name, cls) { name, sizeof(name) - 1, cls, true }
static const struct resp_command {
    const char *name;
    size_t len;
    enum resp_class cls;
    bool sub;
} resp_commands[] = {
    RESP_SUB("acl", RESP_CLOSES),
    RESP_CMD("auth", RESP_STATE),
    RESP_CMD("exec", RESP_TRANSACTION),
    RESP_CMD("post", RESP_CLOSES),
    RESP_CMD("quit", RESP_QUIT),
    RESP_CMD("sync", RESP_REPLY_FLOW),
    RESP_CMD("wait", RESP_BLOCKING),
    RESP_CMD("blpop", RESP_BLOCKING),
    RESP_CMD("brpop", RESP_BLOCKING),
    RESP_CMD("debug", RESP_CLOSES),
    RESP_CMD("hello", RESP_STATE),
    RESP_CMD("host:", RESP_CLOSES),
    RESP_CMD("multi", RESP_TRANSACTION),
    RESP_CMD("psync", RESP_REPLY_FLOW),
    RESP_CMD("reset", RESP_STATE),
    RESP_CMD("watch", RESP_TRANSACTION),
    RESP_CMD("xread", RESP_XREAD),
    RESP_CMD("asking", RESP_STATE),
    RESP_CMD("blmove", RESP_BLOCKING),
    RESP_CMD("blmpop", RESP_BLOCKING),
    RESP_CMD("bzmpop", RESP_BLOCKING),
    RESP_CMD("client", RESP_STATE),
    RESP_SUB("config", RESP_CLOSES),
    RESP_CMD("select", RESP_STATE),
    RESP_CMD("acl|cat", RESP_ORDINARY),
    RESP_CMD("acl|log", RESP_ORDINARY),
    RESP_CMD("discard", RESP_TRANSACTION),
    RESP_CMD("monitor", RESP_REPLY_FLOW),
    RESP_CMD("unwatch", RESP_TRANSACTION),
    RESP_CMD("waitaof", RESP_BLOCKING),
    RESP_CMD("acl|help", RESP_ORDINARY),
    RESP_CMD("acl|list", RESP_ORDINARY),
    RESP_CMD("bzpopmax", RESP_BLOCKING),
    RESP_CMD("bzpopmin", RESP_BLOCKING),
    RESP_CMD("failover", RESP_CLOSES),
    RESP_CMD("readonly", RESP_STATE),
    RESP_CMD("replconf", RESP_REPLY_FLOW),
    RESP_CMD("shutdown", RESP_CLOSES),
    RESP_CMD("acl|users", RESP_ORDINARY),
    RESP_CMD("readwrite", RESP_STATE),
    RESP_CMD("subscribe", RESP_PUBSUB),
    RESP_CMD("acl|dryrun", RESP_ORDINARY),
    RESP_CMD("acl|whoami", RESP_ORDINARY),
    RESP_CMD("brpoplpush", RESP_BLOCKING),
    RESP_CMD("config|get", RESP_ORDINARY),
    RESP_CMD("psubscribe", RESP_PUBSUB),
    RESP_CMD("ssubscribe", RESP_PUBSUB),
    RESP_CMD("xreadgroup", RESP_XREAD),
    RESP_CMD("acl|genpass", RESP_ORDINARY),
    RESP_CMD("acl|getuser", RESP_ORDINARY),
    RESP_CMD("config|help", RESP_ORDINARY),
    RESP_CMD("unsubscribe", RESP_PUBSUB),
    RESP_CMD("punsubscribe", RESP_PUBSUB),
    RESP_CMD("sunsubscribe", RESP_PUBSUB),
};
#undef RESP_CMD
#undef RESP_SUB

/*
 * Request states. counts[RQ_LEFT] holds the bulks left (the current one
 * included), counts[RQ_INDEX] the index of the current one (0: the command
 * name), counts[RQ_SCAN] which arguments are inspected after the name
 * (below), counts[RQ_CMD] the resp_commands[] index of a command with sub,
 * counts[RQ_FLAGS] the ARG_* bits of an inspected argument that streams
 * through RQ_ARG_DATA; remaining the bytes of the current bulk still to
 * pass.
 */
enum {
    RQ_START,       /* first byte: '*' multibulk, anything else inline */
    RQ_ARG_LEN,     /* "$<len>\r\n" */
    RQ_SHORT_ARG,   /* an argument to inspect, of at most RESP_SHORT_ARG bytes: taken whole with its CRLF */
    RQ_ARG_DATA,    /* bulk bytes, passed as they arrive */
    RQ_ARG_CRLF,    /* the CRLF after a bulk */
};
enum { RQ_LEFT, RQ_INDEX, RQ_SCAN, RQ_FLAGS, RQ_CMD };

/* counts[RQ_SCAN]: SCAN_OFF nothing more to inspect; SCAN_SUB the next
 * argument is a subcommand; for XREAD, SCAN_OPTION the next argument is
 * where Redis's xreadCommand() looks for an option, n > SCAN_OPTION the
 * next n - 1 arguments are the values of an option (COUNT n, GROUP g c). */
#define SCAN_SUB    (-1)
#define SCAN_OFF    0
#define SCAN_OPTION 1

/* What an inspected argument holds, over all its bytes. */
#define ARG_CHECK 1u    /* counts[RQ_FLAGS]: collect the bits below as the bytes pass */
#define ARG_ODD   2u    /* a byte outside 0x21..0x7e */
#define ARG_NUL   4u    /* a NUL byte (Redis compares options with strcasecmp, which stops there) */

/* Response states. counts[RS_PENDING] holds the values the response still
 * owes (an array of n adds n and is itself one), remaining the bytes of the
 * current bulk still to pass. */
enum {
    RS_TYPE,        /* the type byte of the next value */
    RS_SIMPLE,      /* rest of a one-line value (+ - : _ , # (), passed as it arrives */
    RS_BULK_DATA,
    RS_BULK_CRLF,
};
enum { RS_PENDING };

/* The entry of resp_commands[] for name[0..n), in any case, over all its
 * bytes, or NULL. */
static const struct resp_command *resp_command_find(const char *name, size_t n)
{
    /* For each length, the first bytes (folded to lower case, modulo 64)
     * that some entry of that length starts with: most commands on the hot
     * path (GET, SET, INCR...) are turned away here without a search. */
    static uint64_t first_bytes[RESP_NAME_MAX + 1];
    static bool first_bytes_ready;
    char low[RESP_NAME_MAX];

    if (n < RESP_NAME_MIN || n > RESP_NAME_MAX)
        return NULL;
    if (!first_bytes_ready) {
        for (size_t i = 0; i < PMX_ARRAY_LEN(resp_commands); i++)
            first_bytes[resp_commands[i].len] |= 1ULL << ((unsigned char)resp_commands[i].name[0] & 63);
        first_bytes_ready = true;
    }
    char c0 = name[0];
    c0 = (c0 >= 'A' && c0 <= 'Z') ? (char)(c0 | 0x20) : c0;
    if (!(first_bytes[n] & (1ULL << ((unsigned char)c0 & 63))))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        low[i] = (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
    }
    size_t lo = 0, hi = PMX_ARRAY_LEN(resp_commands);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct resp_command *c = &resp_commands[mid];
        int cmp = c->len != n ? (c->len < n ? -1 : 1) : memcmp(c->name, low, n);
        if (cmp == 0)
            return c;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Sets the request's class and the common bits that go with it. */
static void resp_set_class(struct codec_parser *p, enum resp_class cls)
{
    p->info &= ~(CODEC_INFO_QUIT | CODEC_INFO_UNSUPPORTED | CODEC_INFO_PRIVATE(RESP_CLASS_MASK));
    p->info |= CODEC_INFO_PRIVATE((uint32_t)cls);
    if (cls == RESP_QUIT)
        p->info |= CODEC_INFO_QUIT;
    else if (cls != RESP_ORDINARY)
        p->info |= CODEC_INFO_UNSUPPORTED;
}

static inline unsigned resp_byte_flags(unsigned char c)
{
    if (c >= 0x21 && c <= 0x7e)
        return 0;
    return c == 0 ? ARG_ODD | ARG_NUL : ARG_ODD;
}

/* The ARG_* bits of a[0..n). */
static unsigned resp_arg_flags(const char *a, size_t n)
{
    unsigned f = 0;

    for (size_t i = 0; i < n && !(f & ARG_NUL); i++)
        f |= resp_byte_flags((unsigned char)a[i]);
    return f;
}

/* a[0..n) is word, in any case. */
static inline bool resp_is(const char *a, size_t n, const char *word)
{
    size_t wn = strlen(word);

    if (n != wn)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (((c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c) != word[i])
            return false;
    }
    return true;
}

/* Whether the next argument must be inspected: the command name, a
 * subcommand, or where an XREAD option may be. */
static inline bool resp_arg_inspected(const struct codec_parser *p)
{
    return p->counts[RQ_INDEX] == 0 || p->counts[RQ_SCAN] == SCAN_OPTION || p->counts[RQ_SCAN] == SCAN_SUB;
}

/*
 * Inspects argument number counts[RQ_INDEX], which just ended, with
 * moreargs arguments after it. head holds its bytes when it is at most
 * RESP_SHORT_ARG long, else it is NULL; flags are the ARG_* bits of all its
 * bytes (known only for arguments resp_arg_inspected() asked for).
 *
 * The name classifies the command; a subcommand with an entry of its own
 * changes the class. For XREAD and XREADGROUP the options are read the way
 * Redis's xreadCommand() reads them (t_stream.c): BLOCK and COUNT take one
 * value, GROUP two, STREAMS ends the options; an option is compared with
 * strcasecmp, so an argument holding a NUL might be any of them and counts
 * as BLOCK.
 */
static void resp_arg_end(struct codec_parser *p, const char *head, size_t len, unsigned flags,
                         int64_t moreargs)
{
    int64_t scan = p->counts[RQ_SCAN];

    if (p->counts[RQ_INDEX] == 0) {
        const struct resp_command *c = NULL;
        if (flags & ARG_ODD)
            resp_set_class(p, RESP_BAD_NAME);
        else if (head != NULL && (c = resp_command_find(head, len)) != NULL) {
            if (c->cls == RESP_XREAD) {
                p->counts[RQ_SCAN] = SCAN_OPTION;
                return;
            }
            resp_set_class(p, c->cls);
            if (c->sub) {
                p->counts[RQ_SCAN] = SCAN_SUB;
                p->counts[RQ_CMD] = c - resp_commands;
            }
        }
        return;
    }
    if (scan == SCAN_SUB) {
        const struct resp_command *c = &resp_commands[p->counts[RQ_CMD]];
        char name[RESP_NAME_MAX];
        p->counts[RQ_SCAN] = SCAN_OFF;
        if (head == NULL || (flags & ARG_ODD) || c->len + 1 + len > sizeof(name))
            return;
        memcpy(name, c->name, c->len);
        name[c->len] = '|';
        memcpy(name + c->len + 1, head, len);
        c = resp_command_find(name, c->len + 1 + len);
        if (c != NULL)
            resp_set_class(p, c->cls);
        return;
    }
    if (scan != SCAN_OPTION) {
        if (scan > SCAN_OPTION)
            p->counts[RQ_SCAN]--;
        return;
    }
    if ((flags & ARG_NUL) || (head != NULL && moreargs >= 1 && resp_is(head, len, "block"))) {
        resp_set_class(p, RESP_BLOCKING);
        p->counts[RQ_SCAN] = SCAN_OFF;
    } else if (head == NULL) {
        /* too long to be an option: Redis answers a syntax error */
    } else if (moreargs >= 1 && resp_is(head, len, "count")) {
        p->counts[RQ_SCAN] = SCAN_OPTION + 1;
    } else if (moreargs >= 2 && resp_is(head, len, "group")) {
        p->counts[RQ_SCAN] = SCAN_OPTION + 2;
    } else if (moreargs >= 1 && resp_is(head, len, "streams")) {
        p->counts[RQ_SCAN] = SCAN_OFF;
    }
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

/* One argument of an inline command, as Redis decodes it. */
struct resp_word {
    char head[RESP_SHORT_ARG];  /* its first bytes: all of them when len <= RESP_SHORT_ARG */
    size_t len;
    unsigned flags;             /* ARG_ODD, ARG_NUL over all its bytes */
};

/*
 * Decodes the argument of an inline line that starts at or after *pp (the
 * line ends at e) the way Redis's sdssplitargs() does: blanks separate
 * arguments; "..." with \xHH \n \r \t \b \a and \<any> escapes, '...' with
 * \' only; a closing quote must end the argument. The line holds no control
 * byte but tab, so space and tab are the only blanks. Returns 1 with *w set
 * and *pp past the argument, 0 when no argument is left, -1 on unbalanced
 * quotes.
 */
static int resp_word_next(const char **pp, const char *e, struct resp_word *w)
{
    const char *p = *pp;
    bool inq = false, insq = false;

    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    if (p == e) {
        *pp = p;
        return 0;
    }
    w->len = 0;
    w->flags = 0;
    for (;;) {
        int c = -1;         /* the byte added to the argument, if any */
        if (inq) {
            if (p == e)
                return -1;
            if (*p == '\\' && e - p >= 4 && p[1] == 'x' && resp_hex(p[2]) >= 0 && resp_hex(p[3]) >= 0) {
                c = resp_hex(p[2]) * 16 + resp_hex(p[3]);
                p += 3;
            } else if (*p == '\\' && e - p >= 2) {
                p++;
                c = *p == 'n' ? '\n' : *p == 'r' ? '\r' : *p == 't' ? '\t' :
                    *p == 'b' ? '\b' : *p == 'a' ? '\a' : (unsigned char)*p;
            } else if (*p == '"') {
                if (e - p >= 2 && p[1] != ' ' && p[1] != '\t')
                    return -1;
                p++;
                break;
            } else {
                c = (unsigned char)*p;
            }
        } else if (insq) {
            if (p == e)
                return -1;
            if (*p == '\\' && e - p >= 2 && p[1] == '\'') {
                p++;
                c = '\'';
            } else if (*p == '\'') {
                if (e - p >= 2 && p[1] != ' ' && p[1] != '\t')
                    return -1;
                p++;
                break;
            } else {
                c = (unsigned char)*p;
            }
        } else if (p == e || *p == ' ' || *p == '\t') {
            break;
        } else if (*p == '"') {
            inq = true;
        } else if (*p == '\'') {
            insq = true;
        } else {
            c = (unsigned char)*p;
        }
        if (c >= 0) {
            if (w->len < RESP_SHORT_ARG)
                w->head[w->len] = (char)c;
            w->len++;
            w->flags |= resp_byte_flags((unsigned char)c);
        }
        p++;
    }
    *pp = p;
    return 1;
}

/*
 * An inline command s[0..n), without its LF and the CR before it. Redis
 * finds the end of the line with strchr (a NUL hides the LF: it waits for
 * more), and splits arguments at other control bytes than Proximux would,
 * so the line may hold no control byte but tab. Sets p->info (SKIP for a
 * line without arguments, which Redis ignores) or p->error and returns
 * false.
 */
static bool resp_inline(struct codec_parser *p, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            p->error = "control byte in inline request";
            return false;
        }
    }

    const char *q = s, *e = s + n;
    struct resp_word w, name = { .len = 0 };
    int64_t args = 0;
    int r;
    while ((r = resp_word_next(&q, e, &w)) > 0) {
        if (args == 0)
            name = w;
        args++;
    }
    if (r < 0) {
        p->error = "unbalanced quotes in inline request";
        return false;
    }
    if (args == 0) {
        p->info |= CODEC_INFO_SKIP;
        return true;
    }
    resp_arg_end(p, name.len <= RESP_SHORT_ARG ? name.head : NULL, name.len, name.flags, args - 1);
    if (p->counts[RQ_SCAN] != SCAN_OFF) {      /* a subcommand, XREAD options */
        q = s;
        (void)resp_word_next(&q, e, &w);
        for (int64_t i = 1; i < args && p->counts[RQ_SCAN] != SCAN_OFF; i++) {
            (void)resp_word_next(&q, e, &w);
            p->counts[RQ_INDEX] = i;
            resp_arg_end(p, w.len <= RESP_SHORT_ARG ? w.head : NULL, w.len, w.flags, args - 1 - i);
        }
    }
    return true;
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
                if (!resp_inline(p, data, end))
                    return CODEC_ERROR;
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
                p->info |= CODEC_INFO_SKIP;
                rc = CODEC_DONE;
                goto out;
            }
            p->counts[RQ_LEFT] = v;
            p->counts[RQ_INDEX] = 0;
            p->counts[RQ_SCAN] = SCAN_OFF;
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
            p->counts[RQ_FLAGS] = resp_arg_inspected(p) ? ARG_CHECK : 0;
            p->state = p->counts[RQ_FLAGS] != 0 && v <= RESP_SHORT_ARG ? RQ_SHORT_ARG : RQ_ARG_DATA;
            break;

        case RQ_SHORT_ARG:
            n = (size_t)p->remaining;
            if (len - pos < n + 2)
                goto out;
            if (data[pos + n] != '\r' || data[pos + n + 1] != '\n') {
                p->error = "bad bulk terminator";
                return CODEC_ERROR;
            }
            resp_arg_end(p, data + pos, n, resp_arg_flags(data + pos, n), p->counts[RQ_LEFT] - 1);
            pos += n + 2;
            p->remaining = 0;
            goto arg_done;

        case RQ_ARG_DATA:
            n = PMX_MIN(len - pos, (size_t)p->remaining);
            if (p->counts[RQ_FLAGS] != 0)   /* a long name or option: check its bytes as they pass */
                p->counts[RQ_FLAGS] |= resp_arg_flags(data + pos, n);
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
            /* Most arguments (keys, values) have nothing to inspect. */
            if (p->counts[RQ_INDEX] == 0 || p->counts[RQ_SCAN] != SCAN_OFF)
                resp_arg_end(p, NULL, 0, (unsigned)p->counts[RQ_FLAGS], p->counts[RQ_LEFT] - 1);
        arg_done:
            p->counts[RQ_INDEX]++;
            if (--p->counts[RQ_LEFT] == 0) {
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
    p->counts[RS_PENDING] = 1;
}

/* One value ended. Returns true when it was the last the response owed. */
static inline bool resp_value_done(struct codec_parser *p)
{
    p->state = RS_TYPE;
    return --p->counts[RS_PENDING] == 0;
}

/*
 * A response is one value of any depth: RESP2 + - : $ *, and RESP3 _ , # (
 * (one line), = ! (bulk-like), % (map: two values an entry), ~ > (like an
 * array) and | (an attribute: its entries, then the value it describes).
 * Instead of a stack of arrays, counts[RS_PENDING] counts the values still
 * owed: each value header takes one and an aggregate adds its elements.
 */
static int resp_parse_response(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, n;
    int64_t v;
    const char *nl;
    char type;

    for (;;) {
        switch (p->state) {
        case RS_TYPE:
            if (pos == len)
                goto more;
            type = data[pos];
            switch (type) {
            case '+': case '-': case ':':
            case '_': case ',': case '#': case '(':
                pos++;
                p->state = RS_SIMPLE;
                break;
            case '$': case '=': case '!':
                n = resp_line(data, pos, len);
                if (n == 0)
                    goto incomplete;
                if (!resp_header(data + pos, n, &v) || v < (type == '$' ? -1 : 0) || v > RESP_MAX_BULK) {
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
            case '*': case '%': case '~': case '>': case '|':
                if (type == '>' && p->size + pos == 0 &&
                    !(CODEC_INFO_PRIVATE_GET(p->info) & RESP_INFO_PUSH_OK)) {
                    /* A push message where a reply is due (client tracking
                     * invalidation, a subscription): nobody on this shared
                     * connection asked for it, and taking it for the reply
                     * would hand every later reply to the wrong client. */
                    p->error = "unexpected push message";
                    return CODEC_ERROR;
                }
                n = resp_line(data, pos, len);
                if (n == 0)
                    goto incomplete;
                if (!resp_header(data + pos, n, &v) || v < (type == '|' ? 0 : -1) || v > RESP_MAX_ELEMENTS) {
                    p->error = "invalid aggregate length in reply";
                    return CODEC_ERROR;
                }
                pos += n;
                if (type == '%' || type == '|')
                    v *= 2;
                if (type == '|') {
                    p->counts[RS_PENDING] += v;     /* the described value is still owed */
                } else if (v <= 0) {
                    if (resp_value_done(p))
                        goto done;
                    break;
                } else {
                    p->counts[RS_PENDING] += v - 1;
                }
                if (p->counts[RS_PENDING] > RESP_MAX_PENDING) {
                    p->error = "reply too large";
                    return CODEC_ERROR;
                }
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

/* The length of the RESP line of data[pos..len) (to its CR LF) as a
 * number after its type byte, or -1. */
static long resp_describe_number(const char *data, size_t len, size_t *pos)
{
    long n = 0;
    size_t i = *pos + 1;

    if (i >= len)
        return -1;
    for (; i < len && data[i] >= '0' && data[i] <= '9'; i++) {
        if (n > 1000000000L)
            return -1;
        n = n * 10 + (data[i] - '0');
    }
    if (i == *pos + 1 || i + 1 >= len || data[i] != '\r' || data[i + 1] != '\n')
        return -1;
    *pos = i + 2;
    return n;
}

/* The request log: the command and its first argument ("GET user:1"),
 * from a multibulk request or an inline one. */
static size_t resp_describe(const char *data, size_t len, char *out, size_t cap)
{
    size_t pos = 0, total = 0;

    if (len == 0 || data[0] != '*')
        return codec_describe_words(data, len, 2, out, cap);
    long argc = resp_describe_number(data, len, &pos);
    for (long a = 0; a < argc && a < 2; a++) {
        if (pos >= len || data[pos] != '$')
            break;
        long n = resp_describe_number(data, len, &pos);
        if (n < 0 || (size_t)n > len - pos)
            break;
        if (a > 0) {
            if (total < cap)
                out[total] = ' ';
            total++;
        }
        size_t at = PMX_MIN(total, cap);
        total += codec_describe_bytes(data + pos, (size_t)n, at < cap ? out + at : NULL, cap - at);
        pos += (size_t)n + 2;
    }
    return total;
}

/* An error reply: "-ERR ..." or a RESP3 blob error "!". */
static bool resp_error_reply(const char *data, size_t len)
{
    return len > 0 && (data[0] == '-' || data[0] == '!');
}

const struct codec_ops codec_resp = {
    .name = "resp",
    .by_read = false,
    .request_begin = resp_request_begin,
    .parse_request = resp_parse_request,
    .response_begin = resp_response_begin,
    .parse_response = resp_parse_response,
    .reply = resp_reply,
    .describe = resp_describe,
    .error_reply = resp_error_reply,
};
