/* resp session state of one client of a multiplexed service: see
 * include/resp_session.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "resp_session.h"

/* Copies one argument into a (bounded). */
static void session_args_add(struct session_args *a, const char *s, size_t n)
{
    if (a->argc < SESSION_ARGS_MAX) {
        size_t keep = n;
        if (keep > SESSION_ARG_MAX) {
            keep = SESSION_ARG_MAX;
            a->too_long = true;
        }
        if (memchr(s, '\0', keep) != NULL)
            a->nul = true;
        memcpy(a->arg[a->argc], s, keep);
        a->arg[a->argc][keep] = '\0';
        a->len[a->argc] = keep;
    }
    a->argc++;
}

/* A non-negative decimal at s[0..n) ending at '\r'; -1 if not. */
static long long session_header_num(const char *s, size_t n, size_t *used)
{
    long long v = 0;
    size_t i = 0;

    while (i < n && s[i] >= '0' && s[i] <= '9' && v < (1LL << 40))
        v = v * 10 + (s[i++] - '0');
    if (i == 0 || i + 1 >= n || s[i] != '\r' || s[i + 1] != '\n')
        return -1;
    *used = i + 2;
    return v;
}

bool session_args_parse(const char *data, size_t len, struct session_args *a)
{
    a->argc = 0;
    a->too_long = false;
    a->nul = false;
    if (len == 0)
        return false;
    if (data[0] != '*') {
        /* Inline: blanks separate the arguments. */
        size_t end = len;
        while (end > 0 && (data[end - 1] == '\n' || data[end - 1] == '\r'))
            end--;
        size_t i = 0;
        while (i < end) {
            while (i < end && (data[i] == ' ' || data[i] == '\t'))
                i++;
            size_t start = i;
            while (i < end && data[i] != ' ' && data[i] != '\t')
                i++;
            if (i > start)
                session_args_add(a, data + start, i - start);
        }
        return true;
    }
    size_t pos = 1, used;
    long long n = session_header_num(data + pos, len - pos, &used);
    if (n < 0)
        return false;
    pos += used;
    for (long long k = 0; k < n; k++) {
        if (pos >= len || data[pos] != '$')
            return false;
        pos++;
        long long l = session_header_num(data + pos, len - pos, &used);
        if (l < 0)
            return false;
        pos += used;
        if ((size_t)l > len - pos || len - pos - (size_t)l < 2)
            return false;
        session_args_add(a, data + pos, (size_t)l);
        pos += (size_t)l + 2;
    }
    return true;
}

/* ---- reply writing, bounded by cap (>= 1024: what is written here fits) ---- */

struct session_out {
    char *p;
    size_t len;
    size_t cap;
};

static void out_raw(struct session_out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->len = o->cap + 1;        /* marks the overflow: the caller writes an error instead */
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* Writes the concatenation of a, b and c (b and c may be NULL). */
static void out_cat(struct session_out *o, const char *a, const char *b, const char *c)
{
    out_raw(o, a, strlen(a));
    if (b != NULL)
        out_raw(o, b, strlen(b));
    if (c != NULL)
        out_raw(o, c, strlen(c));
}

static void out_bulk(struct session_out *o, const char *s, size_t n)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "$%zu\r\n", n);
    out_raw(o, head, (size_t)h);
    out_raw(o, s, n);
    out_raw(o, "\r\n", 2);
}

static void out_int(struct session_out *o, long long v)
{
    char line[32];
    int h = snprintf(line, sizeof(line), ":%lld\r\n", v);
    out_raw(o, line, (size_t)h);
}

static void out_str(struct session_out *o, const char *s)
{
    out_bulk(o, s, strlen(s));
}

/* The server-info map of Redis 7's HELLO, in the client's protocol: a map
 * in RESP3, an array of key, value pairs in RESP2. */
static void out_hello(struct session_out *o, const struct resp_session *s, uint64_t id)
{
    out_raw(o, s->resp3 ? "%7\r\n" : "*14\r\n", s->resp3 ? 4 : 5);
    out_str(o, "server");
    out_str(o, "redis");
    out_str(o, "version");
    out_str(o, SESSION_SERVER_VERSION);
    out_str(o, "proto");
    out_int(o, s->resp3 ? 3 : 2);
    out_str(o, "id");
    out_int(o, (long long)id);
    out_str(o, "mode");
    out_str(o, "standalone");
    out_str(o, "role");
    out_str(o, "master");
    out_str(o, "modules");
    out_raw(o, "*0\r\n", 4);
}

/* ---- commands ---- */

/* Argument i is word, in any case, over all its bytes (a NUL in it does
 * not end the comparison). */
static bool session_is(const struct session_args *a, int i, const char *word)
{
    size_t n = strlen(word);
    return i < a->argc && i < SESSION_ARGS_MAX && a->len[i] == n && strncasecmp(a->arg[i], word, n) == 0;
}

/* Upper-cased copy of argument i (and a subcommand) into what. */
static void session_name(const struct session_args *a, bool with_sub, char *what)
{
    size_t n = 0;

    for (int i = 0; i < (with_sub ? 2 : 1) && i < a->argc && i < SESSION_ARGS_MAX; i++) {
        if (i > 0 && n < 63)
            what[n++] = ' ';
        for (size_t k = 0; k < a->len[i] && n < 63; k++) {
            unsigned char c = (unsigned char)a->arg[i][k];
            what[n++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : (c < 0x21 || c > 0x7e) ? '?' : c);
        }
    }
    what[n] = '\0';
}

/* A decimal integer, as Redis's string2ll takes it. */
static bool session_int(const char *s, long long *out)
{
    char *end;
    if (*s == '\0' || (s[0] == '0' && s[1] != '\0') || *s == '+' || *s == ' ')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* Whether user/password (user NULL: "default") may log in, checked
 * against session.auth, or without it against the targets' credentials.
 * Writes the error reply for a refusal to o. */
static bool session_check_auth(const struct session_policy *pol, const char *user, const char *password,
                               bool nul, struct session_out *o)
{
    if (nul) {
        /* The copies end at a NUL: "pw\0x" must not pass for "pw". */
    } else if (session_auth_required(pol)) {
        if ((user == NULL || strcmp(user, "default") == 0) && pol->password != NULL &&
            strcmp(password, pol->password) == 0)
            return true;
        for (int i = 0; user != NULL && i < pol->nusers; i++)
            if (strcmp(user, pol->users[i].user) == 0 && strcmp(password, pol->users[i].password) == 0)
                return true;
    } else {
        const char *tu = pol != NULL && pol->target_user != NULL ? pol->target_user : "default";
        const char *tp = pol != NULL ? pol->target_password : NULL;
        if (tp == NULL) {
            /* The targets' default user has no password (nopass): Redis
             * takes any password for it, and refuses AUTH <password>. */
            if (user == NULL) {
                const char *e = "-ERR AUTH <password> called without any password configured for the default "
                                "user. Are you sure your configuration is correct?\r\n";
                out_raw(o, e, strlen(e));
                return false;
            }
            if (strcmp(user, "default") == 0)
                return true;
        } else if (strcmp(user != NULL ? user : "default", tu) == 0 && strcmp(password, tp) == 0) {
            return true;
        }
    }
    const char *e = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    out_raw(o, e, strlen(e));
    return false;
}

/* A client name: printable, no space (Redis's clientSetName rule). */
static bool session_name_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '!' || s[i] > '~')
            return false;
    return true;
}

static const char ERR_NAME[] = "-ERR Client names cannot contain spaces, newlines or special characters.\r\n";

static enum session_verdict session_hello(struct resp_session *s, const struct session_policy *pol, uint64_t id,
                                          const struct session_args *a, struct session_out *o)
{
    bool resp3 = s->resp3;
    const char *user = NULL, *password = NULL, *name = NULL;

    if (a->argc >= 2) {
        long long v;
        if (!session_int(a->arg[1], &v)) {
            out_cat(o, "-ERR Protocol version is not an integer or out of range\r\n", NULL, NULL);
            return SESSION_ANSWER;
        }
        if (v != 2 && v != 3) {
            out_cat(o, "-NOPROTO unsupported protocol version\r\n", NULL, NULL);
            return SESSION_ANSWER;
        }
        resp3 = v == 3;
    }
    for (int i = 2; i < a->argc; i++) {
        if (i >= SESSION_ARGS_MAX) {
            out_cat(o, "-ERR proximux: HELLO with too many arguments\r\n", NULL, NULL);
            return SESSION_ANSWER;
        }
        if (session_is(a, i, "auth") && i + 2 < a->argc && i + 2 < SESSION_ARGS_MAX) {
            user = a->arg[i + 1];
            password = a->arg[i + 2];
            i += 2;
        } else if (session_is(a, i, "setname") && i + 1 < a->argc && i + 1 < SESSION_ARGS_MAX) {
            name = a->arg[i + 1];
            i += 1;
        } else {
            out_cat(o, "-ERR Syntax error in HELLO option '", a->arg[i], "'\r\n");
            return SESSION_ANSWER;
        }
    }
    if (password != NULL) {
        if (!session_check_auth(pol, user, password, a->nul, o))
            return SESSION_ANSWER;
        s->authed = true;
    } else if (session_auth_required(pol) && !s->authed) {
        out_cat(o, "-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                         "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                         "select the RESP protocol version at the same time\r\n", NULL, NULL);
        return SESSION_ANSWER;
    }
    if (name != NULL) {
        size_t n = strlen(name);
        if (!session_name_ok(name, n) || n > SESSION_NAME_MAX) {
            out_raw(o, ERR_NAME, sizeof(ERR_NAME) - 1);
            return SESSION_ANSWER;
        }
        memcpy(s->name, name, n + 1);
    }
    s->resp3 = resp3;
    out_hello(o, s, id);
    return SESSION_ANSWER;
}

static enum session_verdict session_client(struct resp_session *s, uint64_t id, const struct session_args *a,
                                           struct session_out *o, char *what)
{
    if (session_is(a, 1, "id") && a->argc == 2) {
        out_int(o, (long long)id);
    } else if (session_is(a, 1, "getname") && a->argc == 2) {
        if (s->name[0] != '\0')
            out_str(o, s->name);
        else if (s->resp3)
            out_raw(o, "_\r\n", 3);
        else
            out_raw(o, "$-1\r\n", 5);
    } else if (session_is(a, 1, "setname") && a->argc == 3) {
        if (!session_name_ok(a->arg[2], a->len[2]) || a->too_long || a->len[2] > SESSION_NAME_MAX) {
            out_raw(o, ERR_NAME, sizeof(ERR_NAME) - 1);
        } else {
            memcpy(s->name, a->arg[2], a->len[2] + 1);
            out_raw(o, "+OK\r\n", 5);
        }
    } else if (session_is(a, 1, "setinfo") && a->argc == 4 &&
               (session_is(a, 2, "lib-name") || session_is(a, 2, "lib-ver"))) {
        /* Accepted and not kept: nothing here reports it. */
        out_raw(o, "+OK\r\n", 5);
    } else if (session_is(a, 1, "id") || session_is(a, 1, "getname") || session_is(a, 1, "setname") ||
               session_is(a, 1, "setinfo")) {
        char sub[16];
        size_t i;
        for (i = 0; i < a->len[1] && i < sizeof(sub) - 1; i++)
            sub[i] = (char)(a->arg[1][i] | 0x20);
        sub[i] = '\0';
        out_cat(o, "-ERR wrong number of arguments for 'client|", sub, "' command\r\n");
    } else {
        session_name(a, true, what);
        out_cat(o, "-ERR proximux: ", what, " not supported through a shared connection\r\n");
        return SESSION_REFUSE;
    }
    return SESSION_ANSWER;
}

/*
 * The commands that pin the client to a dedicated connection, and what an
 * ordinary command does while it is pinned. Returns SESSION_ANSWER when
 * the command is none of them (the caller goes on), else the verdict.
 */
static enum session_verdict session_pin(struct resp_session *s, enum resp_class cls, const struct session_args *a,
                                        struct session_out *o)
{
    bool was = session_pinned(s);
    enum session_verdict pin = SESSION_PIN;

    if (cls == RESP_TRANSACTION) {
        if (session_is(a, 0, "multi")) {
            if (!s->in_multi) {
                s->in_multi = true;
                s->multi_poisoned = false;
            }
        } else if (session_is(a, 0, "exec") || session_is(a, 0, "discard")) {
            if (!s->in_multi)
                return was ? SESSION_PIN : SESSION_FORWARD;  /* "ERR EXEC without MULTI": one reply */
            if (s->multi_poisoned && session_is(a, 0, "exec")) {
                out_cat(o, "-EXECABORT Transaction discarded because of previous errors.\r\n", NULL, NULL);
                pin = SESSION_ABORT;
            }
            s->in_multi = false;
            s->watching = false;
            s->multi_poisoned = false;
        } else if (session_is(a, 0, "watch")) {
            if (!s->in_multi)           /* inside MULTI: the server refuses it */
                s->watching = true;
        } else if (session_is(a, 0, "unwatch")) {
            if (!was)
                return SESSION_FORWARD;     /* nothing watched: "+OK" */
            if (!s->in_multi)
                s->watching = false;
        } else {
            return SESSION_ANSWER;
        }
    } else if (cls == RESP_PUBSUB) {
        if (!s->in_multi) {
            s->subscribed = true;
            s->kind = session_is(a, 0, "unsubscribe") || session_is(a, 0, "punsubscribe") ||
                      session_is(a, 0, "sunsubscribe") ? SESSION_KIND_UNSUB : SESSION_KIND_SUB;
        }
    } else if (cls == RESP_BLOCKING) {
        if (!s->in_multi)               /* inside MULTI it does not block */
            s->kind = SESSION_KIND_BLOCK;
    } else if (cls == RESP_REPLY_FLOW && session_is(a, 0, "monitor") && !s->in_multi) {
        s->monitor = true;
        s->kind = SESSION_KIND_MONITOR;
    } else {
        return SESSION_ANSWER;
    }
    if (!was)
        s->pin_by_multi = s->in_multi;
    return pin;
}

void session_pin_failed(struct resp_session *s)
{
    if (s->pin_by_multi)
        s->multi_refused = true;
    s->in_multi = s->watching = s->subscribed = s->monitor = false;
    s->multi_poisoned = s->pin_by_multi = false;
}

enum session_verdict session_request(struct resp_session *s, const struct session_policy *pol, uint64_t id,
                                     enum resp_class cls, const char *data, size_t len,
                                     char *reply, size_t cap, size_t *reply_len, char *what)
{
    struct session_out o = { reply, 0, cap };
    struct session_args a;
    enum session_verdict v = SESSION_ANSWER;

    what[0] = '\0';
    if (session_plain(s, pol, cls))
        return SESSION_FORWARD;
    if (!session_args_parse(data, len, &a) || a.argc == 0) {
        out_cat(&o, "-ERR proximux: unreadable request\r\n", NULL, NULL);
        *reply_len = o.len;
        return SESSION_ANSWER;
    }
    if (session_auth_required(pol) && !s->authed && !session_is(&a, 0, "auth") && !session_is(&a, 0, "hello")) {
        out_cat(&o, "-NOAUTH Authentication required.\r\n", NULL, NULL);
        *reply_len = o.len;
        return SESSION_ANSWER;
    }
    if (s->multi_refused) {
        /* The client queues a transaction Proximux did not start: what it
         * queues must not run on its own. */
        session_name(&a, false, what);
        if (session_is(&a, 0, "exec")) {
            s->multi_refused = false;
            out_cat(&o, "-EXECABORT Transaction discarded because of previous errors.\r\n", NULL, NULL);
        } else if (session_is(&a, 0, "discard")) {
            s->multi_refused = false;
            out_raw(&o, "+OK\r\n", 5);
            *reply_len = o.len;
            return SESSION_ANSWER;
        } else {
            out_cat(&o, "-ERR proximux: ", what, " refused: its transaction's MULTI was refused\r\n");
        }
        *reply_len = o.len;
        return SESSION_REFUSE;
    }
    session_name(&a, false, what);
    s->kind = SESSION_KIND_PLAIN;
    if (cls == RESP_BAD_NAME) {
        /* A name Redis may read as another command (MULTI\0x is MULTI):
         * never taken for one here either. */
        if (s->in_multi)
            s->multi_poisoned = true;
        out_cat(&o, "-ERR proximux: ", what, " not supported through a shared connection\r\n");
        *reply_len = o.len;
        return SESSION_REFUSE;
    }
    if (cls == RESP_ORDINARY)
        return session_pinned(s) ? SESSION_PIN : SESSION_FORWARD;
    v = session_pin(s, cls, &a, &o);
    if (v != SESSION_ANSWER) {
        *reply_len = o.len;
        return v;
    }
    if (s->in_multi) {
        /* A command that changes the connection's state, or is refused,
         * inside MULTI: refused without running; the server never queued
         * it, so EXEC must not run the rest either. */
        s->multi_poisoned = true;
        out_cat(&o, "-ERR proximux: ", what, " inside MULTI not supported\r\n");
        *reply_len = o.len;
        return SESSION_REFUSE;
    }
    if (a.too_long && !session_is(&a, 0, "client")) {
        session_name(&a, false, what);
        out_cat(&o, "-ERR proximux: ", what, " with an argument too long\r\n");
        v = SESSION_REFUSE;
    } else if ((s->subscribed || s->monitor) &&
               (session_is(&a, 0, "select") || session_is(&a, 0, "hello") || session_is(&a, 0, "auth") ||
                session_is(&a, 0, "client"))) {
        /* Subscribed or monitoring: answered by the server on the
         * dedicated connection, in order with the messages there (a reply
         * made here would overtake them). In RESP2 the server refuses them
         * in that mode; in RESP3 a SELECT runs there, and is tracked. */
        long long db;
        if (s->resp3 && session_is(&a, 0, "select") && a.argc == 2 && session_int(a.arg[1], &db) &&
            db >= 0 && db < SESSION_DBS)
            s->db = (int)db;
        s->kind = SESSION_KIND_PLAIN;
        return SESSION_PIN;
    } else if (session_is(&a, 0, "select")) {
        long long db;
        if (a.argc != 2)
            out_cat(&o, "-ERR wrong number of arguments for 'select' command\r\n", NULL, NULL);
        else if (!session_int(a.arg[1], &db))
            out_cat(&o, "-ERR value is not an integer or out of range\r\n", NULL, NULL);
        else if (db < 0 || db >= SESSION_DBS)
            out_cat(&o, "-ERR DB index is out of range\r\n", NULL, NULL);
        else {
            s->db = (int)db;
            out_raw(&o, "+OK\r\n", 5);
        }
    } else if (session_is(&a, 0, "hello")) {
        v = session_hello(s, pol, id, &a, &o);
    } else if (session_is(&a, 0, "auth")) {
        if (a.argc != 2 && a.argc != 3) {
            out_cat(&o, "-ERR wrong number of arguments for 'auth' command\r\n", NULL, NULL);
        } else if (session_check_auth(pol, a.argc == 3 ? a.arg[1] : NULL, a.arg[a.argc - 1], a.nul, &o)) {
            s->authed = true;
            out_raw(&o, "+OK\r\n", 5);
        }
    } else if (session_is(&a, 0, "client")) {
        v = session_client(s, id, &a, &o, what);
    } else {
        session_name(&a, false, what);
        out_cat(&o, "-ERR proximux: ", what, " not supported through a shared connection\r\n");
        v = SESSION_REFUSE;
    }

    if (o.len > cap) {
        o.len = 0;
        out_cat(&o, "-ERR proximux: reply too long\r\n", NULL, NULL);
    }
    *reply_len = o.len;
    return v;
}

static size_t session_cmd(int argc, const char *const *argv, char *out, size_t cap)
{
    struct session_out o = { out, 0, cap };
    char head[32];
    int h = snprintf(head, sizeof(head), "*%d\r\n", argc);

    out_raw(&o, head, (size_t)h);
    for (int i = 0; i < argc; i++)
        out_str(&o, argv[i]);
    return o.len > cap ? 0 : o.len;
}

size_t session_select_cmd(int db, char *out, size_t cap)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", db);
    const char *argv[] = { "SELECT", n };
    return session_cmd(2, argv, out, cap);
}

size_t session_hello_cmd(bool resp3, char *out, size_t cap)
{
    const char *argv[] = { "HELLO", resp3 ? "3" : "2" };
    return session_cmd(2, argv, out, cap);
}

size_t session_auth_cmd(const char *user, const char *password, char *out, size_t cap)
{
    if (user != NULL) {
        const char *argv[] = { "AUTH", user, password };
        return session_cmd(3, argv, out, cap);
    }
    const char *argv[] = { "AUTH", password };
    return session_cmd(2, argv, out, cap);
}
