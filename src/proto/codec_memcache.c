/* memcache codec: the memcached text protocol, classic and meta commands.
 * The request line tells which shape of response to expect; the shape
 * travels to response_begin in the private bits of the request's info. */
#include <stdio.h>
#include <string.h>

#include "codec.h"

/*
 * Request lines are checked as memcached 1.6.18 reads them (proto_text.c),
 * so that each line Proximux forwards is one memcached consumes whole,
 * together with its data block, and answers with exactly the replies
 * expected (one, none for noreply):
 * - memcached cuts the line at a NUL (strlen) and strips only the CR right
 *   before the LF: a NUL or any other CR in a line is refused;
 * - it closes the connection when more than 2048 bytes of a line that does
 *   not start with "get " or "gets " are in without a newline, which depends
 *   on how the bytes arrive: such lines are refused above 2048 bytes;
 * - it splits on spaces only and keeps MAX_TOKENS (24) tokens, reading on
 *   past them for get only; a line starting with a space is refused, the
 *   first byte 0x80 (binary protocol) too;
 * - a storage or ms line it refuses leaves the data block to be read as a
 *   command: those are refused here unless every field is one memcached
 *   accepts (its safe_strto* functions, key length, token and flag counts);
 * - a get with a key over 250 bytes makes it drop the replies it holds for
 *   earlier requests: refused, as any key over 250 bytes;
 * - it takes a last token "noreply" as the option even where an argument
 *   stands ("incr k noreply" is silent): mirrored, see mc_commands.
 * Refusing a line memcached would have answered with an error costs one
 * client an error; a line it frames differently hands answers around.
 */
#define MC_MAX_CMD_LINE 2048                    /* any line but get/gets, its CRLF included */
#define MC_MAX_GET_LINE (2 * 1024 * 1024)       /* multi-key get/gets */
#define MC_MAX_LINE     (64 * 1024)             /* a response line */
#define MC_MAX_DATA     (1024LL * 1024 * 1024)  /* memcached's item size limit is at most 1 GiB */
#define MC_MAX_KEY      250                     /* memcached KEY_MAX_LENGTH */
#define MC_TOKENS       24                      /* memcached MAX_TOKENS: more than any command but get needs */
#define MC_META_TOKENS  19                      /* memcached refuses meta lines of MFLAG_MAX_OPT_LENGTH (20)
                                                   tokens, counting its end marker */
#define MC_MAX_OPAQUE   32                      /* MFLAG_MAX_OPAQUE_LENGTH, the 'O' included */
#define MC_BINARY_MAGIC 0x80                    /* first byte of a binary protocol request */

/* Response shapes: CODEC_INFO_PRIVATE(shape) in the request's info. */
enum mc_shape {
    MC_SHAPE_NONE = 0,  /* quit: no response */
    MC_SHAPE_LINE,      /* one line: STORED, DELETED, 42, VERSION x, OK... */
    MC_SHAPE_VALUES,    /* VALUE <key> <flags> <bytes> [<cas>] + data block..., END */
    MC_SHAPE_STATS,     /* STAT/ITEM/PREFIX lines then END; RESET or OK alone */
    MC_SHAPE_META,      /* one line; "VA <size> ..." is followed by a data block */
    MC_SHAPE_QUIET,     /* a quiet group (see below): meta lines and data blocks, up to "MN" */
};

/*
 * Quiet meta commands. A meta command with the 'q' flag gets no reply when
 * it does what was asked (memcached 1.6.18 skips mg's EN on a miss, ms's,
 * md's and ma's HD) and its reply otherwise (an mg hit, NS, EX, NF, errors).
 * Whether a reply comes is known only to memcached, so a quiet command
 * cannot be framed alone. Clients end a chain of quiet commands with "mn",
 * whose "MN" reply comes after every reply of the chain: the codec takes a
 * quiet meta command and everything after it up to and including the next
 * "mn" as one request (a quiet group), whose response is whatever lines
 * and data blocks come up to "MN". A group holds meta commands only (mg,
 * ms, md, ma, me, quiet or not): a classic command in it is refused, since
 * a classic reply's shape is not a meta one. A group is forwarded once its
 * "mn" is in, so a client that ends a quiet chain otherwise (with a
 * non-quiet command) waits until it sends "mn"; the group is bounded by
 * exchange.max_message like any request.
 */
#define MC_GROUP   1    /* p->counts[1]: inside a quiet group */


enum mc_kind {
    MC_GET,         /* get/gets/gat/gats: keys without limit of number */
    MC_STORE,       /* set/add/... <key> <flags> <exptime> <bytes> [noreply] + data block */
    MC_CAS,         /* cas <key> <flags> <exptime> <bytes> <cas unique> [noreply] + data block */
    MC_KEYED,       /* incr/decr/touch/delete/me <key> ... */
    MC_PLAIN,       /* version, verbosity, flush_all, mn: no key */
    MC_STATS,       /* stats [<subcommand> ...] */
    MC_META,        /* mg/md/ma <key> <flag>* */
    MC_META_SET,    /* ms <key> <datalen> <flag>* + data block */
    MC_QUIT,
};

struct mc_command {
    const char *name;
    uint8_t len;
    uint8_t kind;
    uint8_t min_tokens;     /* the command itself included */
    uint8_t max_tokens;     /* 0: any number */
    uint8_t noreply;        /* a last token "noreply" counts from this many tokens on; 0: never */
    uint8_t shape;
};

/*
 * Token counts as memcached's dispatch checks them (WANT_TOKENS*, its counts
 * include an end marker), a little stricter for version, quit, mn and me,
 * whose extra tokens it ignores. memcached takes a last token "noreply" as
 * the option even where it stands for an argument ("incr k noreply" is
 * silent), except for delete, which needs a key before it; the noreply
 * column mirrors it, or the pairing of responses breaks.
 * The most frequent commands first.
 */
static const struct mc_command mc_commands[] = {
    { "get",       3, MC_GET,      2, 0,              0, MC_SHAPE_VALUES },
    { "set",       3, MC_STORE,    5, 6,              2, MC_SHAPE_LINE },
    { "mg",        2, MC_META,     2, MC_META_TOKENS, 0, MC_SHAPE_META },
    { "ms",        2, MC_META_SET, 3, MC_META_TOKENS, 0, MC_SHAPE_META },
    { "gets",      4, MC_GET,      2, 0,              0, MC_SHAPE_VALUES },
    { "delete",    6, MC_KEYED,    2, 4,              3, MC_SHAPE_LINE },
    { "md",        2, MC_META,     2, MC_META_TOKENS, 0, MC_SHAPE_META },
    { "incr",      4, MC_KEYED,    3, 4,              2, MC_SHAPE_LINE },
    { "decr",      4, MC_KEYED,    3, 4,              2, MC_SHAPE_LINE },
    { "ma",        2, MC_META,     2, MC_META_TOKENS, 0, MC_SHAPE_META },
    { "add",       3, MC_STORE,    5, 6,              2, MC_SHAPE_LINE },
    { "replace",   7, MC_STORE,    5, 6,              2, MC_SHAPE_LINE },
    { "append",    6, MC_STORE,    5, 6,              2, MC_SHAPE_LINE },
    { "prepend",   7, MC_STORE,    5, 6,              2, MC_SHAPE_LINE },
    { "cas",       3, MC_CAS,      6, 7,              2, MC_SHAPE_LINE },
    { "touch",     5, MC_KEYED,    3, 4,              2, MC_SHAPE_LINE },
    { "gat",       3, MC_GET,      3, 0,              0, MC_SHAPE_VALUES },
    { "gats",      4, MC_GET,      3, 0,              0, MC_SHAPE_VALUES },
    { "mn",        2, MC_PLAIN,    1, 1,              0, MC_SHAPE_META },
    { "me",        2, MC_KEYED,    2, 3,              0, MC_SHAPE_META },
    { "version",   7, MC_PLAIN,    1, 1,              0, MC_SHAPE_LINE },
    { "stats",     5, MC_STATS,    1, 4,              0, MC_SHAPE_STATS },
    { "flush_all", 9, MC_PLAIN,    1, 3,              2, MC_SHAPE_LINE },
    { "verbosity", 9, MC_PLAIN,    2, 3,              2, MC_SHAPE_LINE },
    { "quit",      4, MC_QUIT,     1, 1,              0, MC_SHAPE_NONE },
};

/* Request and response states. */
enum { MC_LINE, MC_DATA, MC_DATA_CRLF };

struct mc_tok {
    const char *s;
    size_t n;
};

/* A line split on spaces, as memcached's tokenize_command splits it. */
struct mc_line {
    struct mc_tok tok[MC_TOKENS];   /* the first MC_TOKENS tokens */
    size_t n;                       /* the number of tokens */
    size_t longest;                 /* the length of the longest token after the first */
};

static void mc_split(const char *s, const char *e, struct mc_line *l)
{
    l->n = 0;
    l->longest = 0;
    while (s < e) {
        if (*s == ' ') {
            s++;
            continue;
        }
        const char *sp = memchr(s, ' ', (size_t)(e - s));
        const char *te = sp != NULL ? sp : e;
        size_t n = (size_t)(te - s);
        if (l->n < MC_TOKENS)
            l->tok[l->n] = (struct mc_tok){ s, n };
        if (l->n > 0 && n > l->longest)
            l->longest = n;
        l->n++;
        s = te;
    }
}

static inline bool mc_tok_is(struct mc_tok t, const char *word)
{
    size_t n = strlen(word);
    return t.n == n && memcmp(t.s, word, n) == 0;
}

/* Parses a decimal token, '-' allowed when min < 0, into [min, max]: digits
 * only, a subset of what memcached's safe_strtol/safe_strtoul accept. */
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

/* memcached's int32 fields (exptime, delay): safe_strtol. */
static inline bool mc_i32(struct mc_tok t)
{
    int64_t v;
    return mc_number(t, INT32_MIN, INT32_MAX, &v);
}

/* memcached's uint32 fields (flags, verbosity level): safe_strtoul. */
static inline bool mc_u32(struct mc_tok t)
{
    int64_t v;
    return mc_number(t, 0, UINT32_MAX, &v);
}

/* An unsigned 64-bit decimal token (a cas unique, a delta): safe_strtoull. */
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

/* stats subcommands whose reply ends as the response parser expects (END,
 * RESET, OK, or one error line). Others (sizes_enable and sizes_disable
 * answer STAT lines without END) are refused. */
static bool mc_stats_ok(const struct mc_line *l)
{
    static const char *const plain[] = { "items", "slabs", "sizes", "settings", "conns", "reset" };

    if (l->n == 1)
        return true;
    struct mc_tok sub = l->tok[1];
    for (size_t i = 0; i < PMX_ARRAY_LEN(plain); i++) {
        if (mc_tok_is(sub, plain[i]))
            return l->n == 2;
    }
    if (mc_tok_is(sub, "detail"))
        return l->n == 3 && (mc_tok_is(l->tok[2], "on") || mc_tok_is(l->tok[2], "off") ||
                             mc_tok_is(l->tok[2], "dump"));
    if (mc_tok_is(sub, "cachedump"))
        return l->n == 4 && mc_u32(l->tok[2]) && mc_u32(l->tok[3]);
    return false;
}

/* The length of the longest key of the line, 0 for a command without a
 * key. A base64 key (meta 'b' flag) counts as sent: memcached checks the
 * token before decoding it. */
static size_t mc_key_len(const struct mc_command *cmd, const struct mc_line *l)
{
    switch (cmd->kind) {
    case MC_GET:
        return l->longest;     /* gat's exptime too: refusing a 251-digit one costs nothing */
    case MC_STORE:
    case MC_CAS:
    case MC_KEYED:
    case MC_META:
    case MC_META_SET:
        return l->tok[1].n;
    default:
        return 0;
    }
}

/* Checks the flags of a meta command, tokens from `first` on: the opaque
 * token's length. Sets *quiet if the quiet flag is there (memcached looks
 * at the first byte of each flag token only). */
static int mc_meta_flags(struct codec_parser *p, const struct mc_line *l, size_t first, bool *quiet)
{
    *quiet = false;
    for (size_t i = first; i < l->n; i++) {
        struct mc_tok t = l->tok[i];
        if (t.s[0] == 'O' && t.n > MC_MAX_OPAQUE) {
            p->error = "opaque token too long";
            return -1;
        }
        if (t.s[0] == 'q')
            *quiet = true;
    }
    return 0;
}

/* Starts a quiet group with this request line, or checks that a line
 * inside one may be there: meta commands only. */
static int mc_group_member(struct codec_parser *p, const struct mc_command *cmd, bool quiet)
{
    bool meta = cmd->kind == MC_META || cmd->kind == MC_META_SET || cmd->shape == MC_SHAPE_META;

    if (p->counts[1] == MC_GROUP) {
        if (!meta) {
            p->error = "not a meta command inside a quiet meta group (before its mn)";
            return -1;
        }
        return 0;
    }
    if (quiet) {
        p->counts[1] = MC_GROUP;
        p->info = CODEC_INFO_PRIVATE(MC_SHAPE_QUIET);
    }
    return 0;
}

/*
 * Interprets the request line [s, e) (its CR/LF removed, checked for NUL,
 * CR and length). Returns 1 when a data block of p->remaining bytes
 * follows, 0 when the request ends with the line, -1 with p->error set when
 * it is refused.
 */
static int mc_request_line_check(struct codec_parser *p, const char *s, const char *e)
{
    struct mc_line l;
    const struct mc_command *cmd = NULL;
    int64_t v;
    bool quiet = false;

    mc_split(s, e, &l);
    if (l.n == 0) {
        p->error = "empty command";
        return -1;
    }
    for (size_t i = 0; i < PMX_ARRAY_LEN(mc_commands); i++) {
        if (mc_commands[i].len == l.tok[0].n && memcmp(mc_commands[i].name, l.tok[0].s, l.tok[0].n) == 0) {
            cmd = &mc_commands[i];
            break;
        }
    }
    if (cmd == NULL) {
        p->error = "unknown command";
        return -1;
    }
    if (l.n < cmd->min_tokens || (cmd->max_tokens != 0 && l.n > cmd->max_tokens)) {
        /* memcached answers an error, and for ms leaves the data block
         * to be read as a command. */
        bool meta = cmd->kind == MC_META || cmd->kind == MC_META_SET;
        p->error = meta && l.n > MC_META_TOKENS ? "too many meta flags" : "bad command line format";
        return -1;
    }
    if (mc_key_len(cmd, &l) > MC_MAX_KEY) {
        p->error = "key too long";
        return -1;
    }
    if (p->counts[1] == MC_GROUP) {
        if (mc_group_member(p, cmd, false) < 0)
            return -1;
    } else {
        p->info |= CODEC_INFO_PRIVATE(cmd->shape);
    }
    if (cmd->noreply != 0 && l.n >= cmd->noreply && l.n <= MC_TOKENS &&
        mc_tok_is(l.tok[l.n - 1], "noreply"))
        p->info |= CODEC_INFO_NOREPLY;

    /* Past this point memcached answers any other mistake with one error
     * line (none for noreply), except in the lines with a data block. */
    switch (cmd->kind) {
    case MC_STORE:
    case MC_CAS:
        /* memcached answers a bad storage line without swallowing the data
         * block, which would then be read as a command: refuse it here. */
        if (!mc_u32(l.tok[2]) || !mc_i32(l.tok[3]) || (cmd->kind == MC_CAS && !mc_u64(l.tok[5]))) {
            p->error = "bad command line format";
            return -1;
        }
        if (!mc_number(l.tok[4], 0, MC_MAX_DATA, &v)) {
            p->error = "bad data chunk size";
            return -1;
        }
        p->remaining = v;
        return 1;
    case MC_STATS:
        if (!mc_stats_ok(&l)) {
            p->info |= CODEC_INFO_UNSUPPORTED;
            p->error = "\"stats\" with this subcommand not supported through a shared connection "
                       "(its reply has no END)";
        }
        return 0;
    case MC_META:
        if (mc_meta_flags(p, &l, 2, &quiet) < 0 || mc_group_member(p, cmd, quiet) < 0)
            return -1;
        return 0;
    case MC_META_SET:
        if (!mc_number(l.tok[2], 0, MC_MAX_DATA, &v)) {
            p->error = "bad data chunk size";
            return -1;
        }
        if (mc_meta_flags(p, &l, 3, &quiet) < 0 || mc_group_member(p, cmd, quiet) < 0)
            return -1;
        p->remaining = v;
        return 1;
    case MC_PLAIN:
        /* "mn" ends a quiet group. */
        if (p->counts[1] == MC_GROUP && cmd->shape == MC_SHAPE_META)
            p->counts[1] = 0;
        return 0;
    case MC_QUIT:
        p->info |= CODEC_INFO_QUIT;
        return 0;
    default:
        return 0;
    }
}

/*
 * A refusal names the command, so that the client's error and the log
 * (level 2) say which: `"gat": key too long`. The reason is built in this
 * buffer, which p->error points to until the next refusal: the exchange
 * copies it at once, on its one thread. At most MC_NAME_MAX bytes of the
 * command are shown, bytes outside printable ASCII as '?'.
 */
#define MC_NAME_MAX 32
static char mc_error_buf[MC_NAME_MAX + 128];

static void mc_name_error(struct codec_parser *p, const char *s, const char *e)
{
    const char *sp = memchr(s, ' ', (size_t)(e - s));
    size_t n = (size_t)((sp != NULL ? sp : e) - s);
    char name[MC_NAME_MAX + 4];
    size_t k;

    for (k = 0; k < n && k < MC_NAME_MAX; k++)
        name[k] = s[k] >= 0x20 && s[k] < 0x7f && s[k] != '"' ? s[k] : '?';
    if (n > MC_NAME_MAX) {
        memcpy(name + k, "...", 3);
        k += 3;
    }
    name[k] = '\0';
    snprintf(mc_error_buf, sizeof(mc_error_buf), "\"%s\": %s", name, p->error ? p->error : "refused");
    p->error = mc_error_buf;
}

/* Interprets a request line (mc_request_line_check); a refusal names the
 * command. */
static int mc_request_line(struct codec_parser *p, const char *s, const char *e)
{
    int rc = mc_request_line_check(p, s, e);

    if (rc < 0 && e > s)
        mc_name_error(p, s, e);
    return rc;
}

/* The longest request line accepted, its CRLF included: memcached reads
 * long get/gets lines, and closes the connection on any other line of more
 * than 2048 bytes that does not come with its newline in one read. */
static size_t mc_line_max(const char *data, size_t len)
{
    if ((len >= 4 && memcmp(data, "get ", 4) == 0) || (len >= 5 && memcmp(data, "gets ", 5) == 0))
        return MC_MAX_GET_LINE;
    return MC_MAX_CMD_LINE;
}

static void mc_request_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

/*
 * The request line so far is data[0, end), with its '\n' at data[end] if
 * nl; data[0, from) has been checked by an earlier call. Refuses a NUL
 * anywhere, and a CR anywhere but just before the '\n' (the last byte, if
 * the '\n' has not come yet). Returns false with p->error set, or true with
 * p->counts[0] the number of bytes checked for good.
 */
static bool mc_check_line(struct codec_parser *p, const char *data, size_t from, size_t end, bool nl)
{
    if (memchr(data + from, '\0', end - from) != NULL) {
        p->error = "NUL in command line";
        return false;
    }
    const char *cr = memchr(data + from, '\r', end - from);
    if (cr != NULL && (size_t)(cr - data) != end - 1) {
        p->error = "CR inside command line";
        return false;
    }
    /* A CR at the end of a line not yet complete is judged again with the
     * byte after it. */
    p->counts[0] = (int64_t)(cr != NULL && !nl ? end - 1 : end);
    return true;
}

/* Ends the request, or in a quiet group goes on with the next line. */
static inline bool mc_request_ends(struct codec_parser *p)
{
    p->state = MC_LINE;
    p->counts[0] = 0;
    return p->counts[1] != MC_GROUP;
}

static int mc_parse_request(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    size_t pos = 0, end, from;
    const char *nl, *line;
    int rc = CODEC_MORE;

    for (;;) {
        switch (p->state) {
        case MC_LINE:
            if (len == pos)
                goto out;
            line = data + pos;
            if ((unsigned char)line[0] == MC_BINARY_MAGIC) {
                p->error = "binary protocol not supported";
                return CODEC_ERROR;
            }
            if (line[0] == ' ') {
                p->error = "command line starts with a space";
                return CODEC_ERROR;
            }
            /* p->counts[0]: bytes of this line checked by earlier calls, so
             * that a long line is scanned once however it arrives. */
            from = PMX_MIN((size_t)p->counts[0], len - pos);
            nl = mc_newline(line, from, len - pos);
            end = nl != NULL ? (size_t)(nl - line) : len - pos;
            if (end + 1 > mc_line_max(line, end)) {
                p->error = "line too long";
                return CODEC_ERROR;
            }
            if (!mc_check_line(p, line, from, end, nl != NULL))
                return CODEC_ERROR;
            if (nl == NULL)
                goto out;
            pos += end + 1;
            if (end > 0 && line[end - 1] == '\r')
                end--;
            switch (mc_request_line(p, line, line + end)) {
            case -1:
                return CODEC_ERROR;
            case 0:
                if (mc_request_ends(p)) {
                    rc = CODEC_DONE;
                    goto out;
                }
                continue;
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
            if (mc_request_ends(p)) {
                rc = CODEC_DONE;
                goto out;
            }
            continue;
        }
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
    struct mc_line l;
    int64_t v;

    if (CODEC_INFO_PRIVATE_GET(p->info) == MC_SHAPE_QUIET) {
        /* Any number of replies (errors too), then MN. */
        if (mc_is(s, e, "MN", 2))
            return CODEC_DONE;
        if (!mc_is(s, e, "VA", 2))
            return CODEC_MORE;
        mc_split(s, e, &l);
        if (l.n < 2 || !mc_number(l.tok[1], 0, MC_MAX_DATA, &v)) {
            p->error = "bad VA line";
            return CODEC_ERROR;
        }
        p->remaining = v;
        p->state = MC_DATA;
        return CODEC_MORE;
    }
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
        mc_split(s, e, &l);
        if ((l.n != 4 && l.n != 5) || !mc_number(l.tok[3], 0, MC_MAX_DATA, &v)) {
            p->error = "bad VALUE line";
            return CODEC_ERROR;
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
        mc_split(s, e, &l);
        if (l.n < 2 || !mc_number(l.tok[1], 0, MC_MAX_DATA, &v)) {
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
            if (CODEC_INFO_PRIVATE_GET(p->info) != MC_SHAPE_VALUES &&
                CODEC_INFO_PRIVATE_GET(p->info) != MC_SHAPE_QUIET) {
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

/* CLIENT_ERROR proximux: <reason>, SERVER_ERROR proximux: <reason>;
 * nothing for QUIT (memcached just closes). */
static size_t mc_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    const char *prefix;

    switch (kind) {
    case CODEC_REPLY_CLIENT_ERROR:
        prefix = "CLIENT_ERROR proximux: ";
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

/* The request log: the command and its first key ("get user:1"). */
static size_t mc_describe(const char *data, size_t len, char *out, size_t cap)
{
    return codec_describe_words(data, len, 2, out, cap);
}

static bool mc_starts(const char *data, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(data, word, n) == 0;
}

/* ERROR, CLIENT_ERROR, SERVER_ERROR (text protocol). */
static bool mc_error_reply(const char *data, size_t len)
{
    return mc_starts(data, len, "ERROR") || mc_starts(data, len, "CLIENT_ERROR") ||
           mc_starts(data, len, "SERVER_ERROR");
}

const struct codec_ops codec_memcache = {
    .name = "memcache",
    .by_read = false,
    .request_begin = mc_request_begin,
    .parse_request = mc_parse_request,
    .response_begin = mc_response_begin,
    .parse_response = mc_parse_response,
    .reply = mc_reply,
    .describe = mc_describe,
    .error_reply = mc_error_reply,
};
