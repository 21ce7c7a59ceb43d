/* Routing on the first bytes (SPEC §10): a service's routes compiled once,
 * then asked whether the bytes a client sent so far decide where it goes.
 * Regexes are POSIX ERE run with REG_STARTEND, so NUL bytes are data. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "peek.h"
#include "route.h"

/* The captures a regex may have referenced: $1..$9. */
#define ROUTE_CAPTURES 9

/* Checks the $ references of text (len bytes): each $ is followed by $ or
 * a digit 1..ngroups. Returns PMX_OK, or PMX_ERR with the reason in why. */
static int route_check_refs(const char *text, size_t len, size_t ngroups, bool regex, char *why,
                            size_t whylen)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '$')
            continue;
        if (i + 1 < len && text[i + 1] == '$') {
            i++;
            continue;
        }
        if (i + 1 >= len || text[i + 1] < '1' || text[i + 1] > '9') {
            snprintf(why, whylen, "a $ is followed by a digit 1-9 (a capture) or by $ (a literal $)");
            return PMX_ERR;
        }
        size_t n = (size_t)(text[i + 1] - '0');
        if (!regex) {
            snprintf(why, whylen, "$%zu: captures come from match: (a regex); this route has none", n);
            return PMX_ERR;
        }
        if (n > ngroups) {
            snprintf(why, whylen, "$%zu: the regex has %zu group%s", n, ngroups, ngroups == 1 ? "" : "s");
            return PMX_ERR;
        }
        i++;
    }
    return PMX_OK;
}

/* The size a regex takes once glibc has compiled it, estimated from its
 * shape: glibc copies a repeated atom once per repetition ("a+" is "aa*",
 * "(x){1,5}" five copies of x), so nested repetitions multiply and a short
 * regex ("(a+)+++..." or "((a{99}){99}){99}") could take minutes and
 * gigabytes to compile, on the event loop at a reload. Counts atoms,
 * groups and operators; saturates at a high value. */
#define ROUTE_REGEX_MAX_NODES 20000
#define ROUTE_REGEX_MAX_DEPTH 256           /* groups open at once */
#define ROUTE_COST_CAP 1000000000L

static long route_cost_mul(long a, long b)
{
    return a > 0 && b > ROUTE_COST_CAP / a ? ROUTE_COST_CAP : PMX_MIN(a * b, ROUTE_COST_CAP);
}

static long route_cost_add(long a, long b)
{
    return PMX_MIN(a + b, ROUTE_COST_CAP);
}

/* Skips the bracket expression p starts ('['); returns what follows it. */
static const char *route_skip_bracket(const char *p)
{
    p++;
    if (*p == '^')
        p++;
    if (*p == ']')
        p++;
    while (*p != '\0' && *p != ']') {
        if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
            const char *end = strstr(p + 2, p[1] == ':' ? ":]" : p[1] == '.' ? ".]" : "=]");
            if (end == NULL)
                return p + strlen(p);
            p = end + 2;
            continue;
        }
        p++;
    }
    return *p == ']' ? p + 1 : p;
}

/* Reads an interval "{n}", "{n,}" or "{n,m}" at p; returns what follows
 * it and the copies glibc makes in *copies, or NULL if it is none. */
static const char *route_interval(const char *p, long *copies)
{
    long n = 0, m = -1;
    const char *q = p + 1;

    if (*q < '0' || *q > '9')
        return NULL;
    for (; *q >= '0' && *q <= '9'; q++)
        n = PMX_MIN(n * 10 + (*q - '0'), 100000L);
    if (*q == ',') {
        q++;
        if (*q >= '0' && *q <= '9') {
            for (m = 0; *q >= '0' && *q <= '9'; q++)
                m = PMX_MIN(m * 10 + (*q - '0'), 100000L);
        }
    }
    if (*q != '}')
        return NULL;
    *copies = PMX_MAX(PMX_MAX(n, m), 1L);
    return q + 1;
}

static long route_regex_cost(const char *p)
{
    /* One frame per open group: finished alternatives, the current one,
     * and the last atom (what a repetition copies). */
    struct frame {
        long total, branch, last;
    } st[ROUTE_REGEX_MAX_DEPTH];
    int depth = 0;

    st[0] = (struct frame){ 0, 0, 0 };
    while (*p != '\0') {
        struct frame *f = &st[depth];
        long copies = 1, atom = 1;
        const char *next = p + 1;
        switch (*p) {
        case '(':
            if (depth + 1 == ROUTE_REGEX_MAX_DEPTH)
                return ROUTE_COST_CAP;      /* deeper than anyone writes: refused */
            st[++depth] = (struct frame){ 0, 0, 0 };
            p++;
            continue;
        case ')':
            if (depth > 0) {
                atom = route_cost_add(route_cost_add(f->total, f->branch), 1);
                depth--;
                f = &st[depth];
            }
            break;
        case '|':
            f->total = route_cost_add(route_cost_add(f->total, f->branch), 1);
            f->branch = 0;
            f->last = 0;
            p++;
            continue;
        case '*':
        case '?':
            f->branch = route_cost_add(f->branch, 1);
            f->last = route_cost_add(f->last, 1);
            p++;
            continue;
        case '+':
            copies = 2;
            break;
        case '{':
            next = route_interval(p, &copies);
            if (next == NULL) {
                next = p + 1;
                copies = 1;
                break;      /* a literal '{' */
            }
            break;
        case '[':
            next = route_skip_bracket(p);
            break;
        case '\\':
            next = p[1] != '\0' ? p + 2 : p + 1;
            break;
        default:
            break;
        }
        if (*p == '+' || (*p == '{' && next != p + 1)) {
            /* A repetition of the last atom: copies of it, plus one node. */
            long grown = route_cost_add(route_cost_mul(f->last, copies), 1);
            f->branch = route_cost_add(f->branch, grown - f->last);
            f->last = grown;
        } else {
            f->branch = route_cost_add(f->branch, atom);
            f->last = atom;
        }
        p = next;
    }
    long cost = 0;
    for (int k = depth; k >= 0; k--)
        cost = route_cost_add(cost, route_cost_add(st[k].total, st[k].branch));
    return cost;
}

/* Whether pattern has a back-reference (\1..\9 outside a bracket
 * expression). glibc accepts them in EREs, but matching one is exponential
 * in the bytes on input that does not match: one client could hold the
 * event loop for minutes. */
static bool route_has_backref(const char *p)
{
    while (*p != '\0') {
        if (*p == '[') {
            p = route_skip_bracket(p);
        } else if (*p == '\\' && p[1] != '\0') {
            if (p[1] >= '1' && p[1] <= '9')
                return true;
            p += 2;
        } else {
            p++;
        }
    }
    return false;
}

int route_check(const struct route_config *r, const char **field, char *why, size_t whylen)
{
    size_t ngroups = 0;
    regex_t re;

    if (r->kind == ROUTE_MATCH && route_regex_cost(r->pattern) > ROUTE_REGEX_MAX_NODES) {
        *field = "match";
        snprintf(why, whylen, "is too complex: its repetitions make more than %d copies of its parts "
                 "(glibc copies a repeated part once per repetition; nest fewer +, {n,m})",
                 ROUTE_REGEX_MAX_NODES);
        return PMX_ERR;
    }
    if (r->kind == ROUTE_MATCH && route_has_backref(r->pattern)) {
        *field = "match";
        snprintf(why, whylen, "has a back-reference (\\1..\\9): refused, matching one takes time "
                 "exponential in the client's bytes");
        return PMX_ERR;
    }
    if (r->kind == ROUTE_MATCH) {
        int rc = regcomp(&re, r->pattern, REG_EXTENDED);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &re, msg, sizeof msg);
            *field = "match";
            snprintf(why, whylen, "does not compile: %s", msg);
            return PMX_ERR;
        }
        ngroups = re.re_nsub;
        regfree(&re);
    }
    bool regex = r->kind == ROUTE_MATCH;
    if (route_check_refs(r->target, strlen(r->target), ngroups, regex, why, whylen) != PMX_OK) {
        *field = "target";
        return PMX_ERR;
    }
    if (route_check_refs(r->data, r->data_len, ngroups, regex, why, whylen) != PMX_OK) {
        *field = "data";
        return PMX_ERR;
    }
    return PMX_OK;
}

/* ---- the table ---------------------------------------------------------- */

/* One compiled route. cfg is a copy: the table outlives a reload of the
 * configuration it was made from. */
struct route_entry {
    struct route_config cfg;
    regex_t re;                 /* match: */
    bool compiled;
    /* match: the literal bytes an anchored regex starts with ("^GET /" ->
     * "GET /"): data that differs from them can never match. */
    char lit[CONFIG_ROUTE_TEXT_MAX];
    size_t lit_len;
};

struct route_table {
    int n;
    struct route_entry *e;      /* n entries */
    bool regex;                 /* some route is a match: */
};

/* A route's verdict on the bytes so far. */
enum route_verdict {
    ROUTE_NEVER,                /* cannot match, whatever follows */
    ROUTE_NOT_YET,              /* does not match; more bytes might */
    ROUTE_MATCHES,
};

static bool route_regex_special(char ch)
{
    return ch != '\0' && strchr(".[]()*+?{}|\\^$", ch) != NULL;
}

/* The literal prefix of an anchored regex without alternation: the bytes
 * after '^' up to the first operator; a byte followed by a quantifier is
 * left out ("^ab*" -> "a"). Escaped operators are literal ("\\." is "."). */
static void route_literal_prefix(struct route_entry *e)
{
    const char *p = e->cfg.pattern;

    e->lit_len = 0;
    if (p[0] != '^' || strchr(p, '|') != NULL)
        return;
    for (p++; *p != '\0';) {
        char ch = *p;
        const char *next = p + 1;
        if (ch == '\\') {
            if (!route_regex_special(p[1]))
                return;         /* \w, \b, a back-reference...: not a literal */
            ch = p[1];
            next = p + 2;
        } else if (route_regex_special(ch)) {
            return;
        }
        if (*next == '*' || *next == '+' || *next == '?' || *next == '{')
            return;
        e->lit[e->lit_len++] = ch;
        p = next;
    }
}

struct route_table *route_table_create(const struct route_config *routes, int n, char *err, size_t errlen)
{
    struct route_table *t = calloc(1, sizeof(*t));
    char why[256];
    const char *field;

    if (t == NULL || (n > 0 && (t->e = calloc((size_t)n, sizeof(*t->e))) == NULL)) {
        free(t);
        snprintf(err, errlen, "out of memory compiling the routes");
        return NULL;
    }
    for (int k = 0; k < n; k++) {
        struct route_entry *e = &t->e[k];
        if (route_check(&routes[k], &field, why, sizeof why) != PMX_OK) {
            snprintf(err, errlen, "routes[%d].%s: %s", k + 1, field, why);
            route_table_free(t);
            return NULL;
        }
        e->cfg = routes[k];
        if (e->cfg.kind == ROUTE_MATCH) {
            int rc = regcomp(&e->re, e->cfg.pattern, REG_EXTENDED);
            if (rc != 0) {      /* checked above: only out of memory is left */
                regerror(rc, &e->re, why, sizeof why);
                snprintf(err, errlen, "routes[%d].match: %s", k + 1, why);
                route_table_free(t);
                return NULL;
            }
            e->compiled = true;
            t->regex = true;
            route_literal_prefix(e);
        }
        t->n = k + 1;
    }
    return t;
}

void route_table_free(struct route_table *t)
{
    if (t == NULL)
        return;
    for (int k = 0; k < t->n; k++) {
        if (t->e[k].compiled)
            regfree(&t->e[k].re);
    }
    free(t->e);
    free(t);
}

/* Appends text (len bytes) to out with $1..$9 replaced by the captures of
 * data in m (an empty string for a group that took no part; m NULL: no
 * captures) and $$ by $. Returns PMX_OK or PMX_ERR (out of memory). */
static int route_subst(const char *text, size_t len, const char *data, const regmatch_t *m, struct buf *out)
{
    size_t from = 0;

    for (size_t i = 0; i < len; i++) {
        if (text[i] != '$' || i + 1 >= len)
            continue;
        if (buf_append(out, text + from, i - from) != PMX_OK)
            return PMX_ERR;
        char ref = text[i + 1];
        if (ref == '$') {
            if (buf_append(out, "$", 1) != PMX_OK)
                return PMX_ERR;
        } else if (ref >= '1' && ref <= '9' && m != NULL && m[ref - '0'].rm_so >= 0) {
            const regmatch_t *g = &m[ref - '0'];
            if (buf_append(out, data + g->rm_so, (size_t)(g->rm_eo - g->rm_so)) != PMX_OK)
                return PMX_ERR;
        }
        i++;
        from = i + 1;
    }
    return buf_append(out, text + from, len - from);
}

/* Writes the target of e with its captures into out. Returns PMX_OK,
 * PMX_ERR (out of memory), or PMX_AGAIN when a target built from captures
 * cannot be one: empty, longer than out holds, or with a control byte (NUL
 * included), a space or a '/', which no HOST:PORT has. */
static int route_target(const struct route_entry *e, const char *data, const regmatch_t *m, char *out,
                        size_t outlen)
{
    struct buf b;
    int rc = PMX_OK;

    /* Without $: a name or HOST:PORT the loader checked. */
    if (strchr(e->cfg.target, '$') == NULL) {
        snprintf(out, outlen, "%s", e->cfg.target);
        return PMX_OK;
    }
    buf_init(&b);
    if (route_subst(e->cfg.target, strlen(e->cfg.target), data, m, &b) != PMX_OK) {
        buf_free(&b);
        return PMX_ERR;
    }
    size_t len = buf_len(&b);
    const char *p = buf_start(&b);
    if (len == 0 || len >= outlen)
        rc = PMX_AGAIN;
    for (size_t i = 0; rc == PMX_OK && i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch == 0x7f || ch == '/')
            rc = PMX_AGAIN;
    }
    if (rc == PMX_OK) {
        memcpy(out, p, len);
        out[len] = '\0';
    }
    buf_free(&b);
    return rc;
}

/* The verdict of e on data; captures in m (10 slots) for a regex. */
static enum route_verdict route_eval(const struct route_entry *e, const char *data, size_t len, regmatch_t *m)
{
    const struct route_config *c = &e->cfg;
    char name[PEEK_NAME_MAX];
    enum peek_result pr;

    switch (c->kind) {
    case ROUTE_MATCH:
        /* REG_STARTEND: the range is m[0], NUL bytes are data. */
        m[0].rm_so = 0;
        m[0].rm_eo = (regoff_t)len;
        if (regexec(&e->re, data, ROUTE_CAPTURES + 1, m, REG_STARTEND) == 0)
            return ROUTE_MATCHES;
        if (e->lit_len > 0 && memcmp(data, e->lit, PMX_MIN(len, e->lit_len)) != 0)
            return ROUTE_NEVER;
        return ROUTE_NOT_YET;
    case ROUTE_PREFIX:
        if (memcmp(data, c->pattern, PMX_MIN(len, c->pattern_len)) != 0)
            return ROUTE_NEVER;
        return len >= c->pattern_len ? ROUTE_MATCHES : ROUTE_NOT_YET;
    case ROUTE_SNI:
    case ROUTE_HTTP_HOST:
        pr = c->kind == ROUTE_SNI ? peek_tls_sni(data, len, name, sizeof name)
                                  : peek_http_host(data, len, name, sizeof name);
        if (pr == PEEK_NEED_MORE)
            return ROUTE_NOT_YET;
        if (pr == PEEK_FOUND && peek_name_match(c->pattern, name))
            return ROUTE_MATCHES;
        return ROUTE_NEVER;
    }
    return ROUTE_NEVER;
}

/* Fills out with what e decided on data (captures in m, or NULL).
 * Returns DECIDED, ERROR (out of memory), or WAIT when the target made
 * from the captures cannot be one: that route does not decide, and as
 * captures may change with more bytes, it is not ruled out either. */
static enum route_result route_fill(const struct route_entry *e, const char *data, const regmatch_t *m,
                                    struct route_decision *out)
{
    const struct route_config *c = &e->cfg;

    if (c->has_close) {
        out->action = ROUTE_CLOSE;
        out->has_data = 1;
        return buf_append(&out->data, c->close, c->close_len) == PMX_OK ? ROUTE_RESULT_DECIDED
                                                                         : ROUTE_RESULT_ERROR;
    }
    int rc = route_target(e, data, m, out->target, sizeof out->target);
    if (rc == PMX_ERR)
        return ROUTE_RESULT_ERROR;
    if (rc == PMX_AGAIN)
        return ROUTE_RESULT_WAIT;
    out->action = ROUTE_TARGET;
    out->connect_timeout = c->connect_timeout;
    out->inactivity_timeout = c->inactivity_timeout;
    if (buf_append(&out->reply, c->reply, c->reply_len) != PMX_OK)
        return ROUTE_RESULT_ERROR;
    out->has_data = c->has_data;
    if (c->has_data && route_subst(c->data, c->data_len, data, m, &out->data) != PMX_OK)
        return ROUTE_RESULT_ERROR;
    return ROUTE_RESULT_DECIDED;
}

enum route_result route_table_decide(const struct route_table *t, const char *data, size_t len,
                                     struct route_decision *out)
{
    regmatch_t m[ROUTE_CAPTURES + 1];
    bool wait = false;
    char *copy = NULL;
    enum route_result result = ROUTE_RESULT_NO_MATCH;

    /* regexec() gets a NUL-terminated copy: REG_STARTEND bounds what glibc
     * reads, but not what a sanitizer's interceptor reads (it runs strlen
     * on the string), and the caller's buffer need not hold a NUL. */
    if (t->regex) {
        copy = malloc(len + 1);
        if (copy == NULL)
            return ROUTE_RESULT_ERROR;
        memcpy(copy, data, len);
        copy[len] = '\0';
        data = copy;
    }
    for (int k = 0; k < t->n; k++) {
        const struct route_entry *e = &t->e[k];
        enum route_verdict v = route_eval(e, data, len, m);
        if (v == ROUTE_NOT_YET)
            wait = true;
        if (v != ROUTE_MATCHES)
            continue;
        enum route_result rr = route_fill(e, data, e->cfg.kind == ROUTE_MATCH ? m : NULL, out);
        if (rr != ROUTE_RESULT_WAIT) {
            result = rr;
            break;
        }
        wait = true;
    }
    free(copy);
    if (result == ROUTE_RESULT_NO_MATCH && wait)
        result = ROUTE_RESULT_WAIT;
    return result;
}
