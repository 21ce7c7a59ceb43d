/* resp session state: what one client of a multiplexed (fifo/funnel) resp
 * service has set on "its" connection (database, protocol, name,
 * authentication), kept here instead of on the shared upstream
 * connections, and the decision for each command that is not an ordinary
 * one-request-one-reply command: answer it here, forward it (in the
 * client's state), or refuse it naming the command.
 *
 * This is a pure state machine over the bytes of whole requests (as framed
 * by the resp codec): no sockets, no exchange, so that it is unit tested
 * alone. The exchange (src/exchange/mux_*.c) applies the verdicts.
 */
#ifndef RESP_SESSION_H
#define RESP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a command does to the connection that carries it, found by the resp
 * codec's request parser and stored in the codec's private info bits
 * (CODEC_INFO_PRIVATE(cls)); read it with resp_class_of(). */
enum resp_class {
    RESP_ORDINARY = 0,  /* one request, one reply, no connection state: forwarded */
    RESP_QUIT,          /* answered +OK by Proximux, then the client is closed */
    RESP_TRANSACTION,   /* state across requests (MULTI, WATCH) */
    RESP_PUBSUB,        /* the connection then hears messages instead of replies */
    RESP_BLOCKING,      /* holds the connection until another client acts or a timeout */
    RESP_STATE,         /* changes the connection's database, user, protocol or flags */
    RESP_REPLY_FLOW,    /* not one reply per request (MONITOR, replication) */
    RESP_CLOSES,        /* the server may close or stall the connection */
    RESP_BAD_NAME,      /* a name with a byte outside 0x21..0x7e: Redis may take it for another command */
    RESP_XREAD,         /* codec table only: RESP_BLOCKING with a BLOCK option before STREAMS, else ordinary */
};
#define RESP_CLASS_MASK 0xfu

/* Response info bit (codec private, bit 20): the connection may carry
 * RESP3 push messages ('>') as replies (a dedicated connection). Without
 * it a push message is a protocol error: nobody asked for it. */
#define RESP_INFO_PUSH_OK 0x10u

static inline enum resp_class resp_class_of(uint32_t info)
{
    return (enum resp_class)((info >> 16) & RESP_CLASS_MASK);
}

/* Bounds. A command with more arguments than SESSION_ARGS_MAX, or one of
 * its first SESSION_ARGS_MAX arguments longer than SESSION_ARG_MAX, is
 * answered with an error by the commands handled here (none of them needs
 * more). */
#define SESSION_ARGS_MAX 8
#define SESSION_ARG_MAX  256
/* Client names (CLIENT SETNAME, HELLO SETNAME) up to this long; longer
 * ones are refused. */
#define SESSION_NAME_MAX 128
/* SELECT takes 0 .. SESSION_DBS - 1 (Redis's default `databases 16`); the
 * range is checked here because a SELECT that failed upstream would fail
 * the shared connection that other clients use. */
#define SESSION_DBS 16
/* The version announced in the HELLO reply. */
#define SESSION_SERVER_VERSION "7.0.0"

/* The arguments of one request, copied (bounded). */
struct session_args {
    int argc;                       /* all of them, kept or not */
    bool too_long;                  /* a kept argument was longer than SESSION_ARG_MAX */
    bool nul;                       /* a kept argument holds a NUL byte */
    size_t len[SESSION_ARGS_MAX];
    char arg[SESSION_ARGS_MAX][SESSION_ARG_MAX + 1];  /* NUL-terminated copies */
};

/* Decodes the whole request data[0..len) (a multibulk array, or an inline
 * line split at blanks: quotes are not interpreted). Returns false when
 * the bytes are not a request (cannot happen for what the codec framed). */
bool session_args_parse(const char *data, size_t len, struct session_args *a);

struct session_user {
    const char *user;
    const char *password;
};

/* Credentials: clients to Proximux (session.auth.*), and Proximux to the
 * targets (targets[].username/password, the same for every target). */
struct session_policy {
    const char *password;           /* session.auth.password, or NULL */
    const struct session_user *users;  /* session.auth.users */
    int nusers;
    const char *target_user;        /* NULL: "default" */
    const char *target_password;    /* NULL: the targets need no AUTH */
};

/* Whether clients must authenticate to Proximux. */
static inline bool session_auth_required(const struct session_policy *p)
{
    return p != NULL && (p->password != NULL || p->nusers > 0);
}

/* One client's session. All zero is the state of a new client: database 0,
 * RESP2, no name, not authenticated. */
struct resp_session {
    int db;
    bool resp3;
    bool authed;
    /* Its MULTI was refused: every command up to EXEC or DISCARD is
     * refused too, so that no part of the transaction runs. */
    bool multi_refused;
    /* Pinned to a dedicated upstream connection while any of these holds
     * (session_pinned()). */
    bool in_multi;          /* MULTI sent, no EXEC/DISCARD yet */
    bool watching;          /* WATCH sent, no EXEC/DISCARD/UNWATCH yet */
    bool subscribed;        /* a (P|S)(UN)SUBSCRIBE sent; cleared by the exchange when the
                             * server says no subscription is left */
    bool monitor;           /* MONITOR: for the rest of the connection */
    /* A command inside MULTI was refused here (SELECT, CLIENT...): the
     * server queued the others, so EXEC must not run them. */
    bool multi_poisoned;
    bool pin_by_multi;      /* the current pinning started with MULTI */
    uint8_t kind;           /* SESSION_KIND_* of the last request given SESSION_PIN */
    char name[SESSION_NAME_MAX + 1];
};

/* What a request given SESSION_PIN does on its dedicated connection. */
enum {
    SESSION_KIND_PLAIN = 0, /* one request, one reply */
    SESSION_KIND_SUB,       /* SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: replies and messages come as they come */
    SESSION_KIND_UNSUB,     /* their UNSUBSCRIBEs: the same; the last may end the subscriptions */
    SESSION_KIND_MONITOR,   /* MONITOR: a stream of lines */
    SESSION_KIND_BLOCK,     /* a blocking command: pinned for its duration only */
};

static inline bool session_pinned(const struct resp_session *s)
{
    return s->in_multi || s->watching || s->subscribed || s->monitor;
}

/* Whether a request of class cls goes to a shared connection as it is,
 * with nothing to track: the usual case, decided without parsing. */
static inline bool session_plain(const struct resp_session *s, const struct session_policy *pol,
                                 enum resp_class cls)
{
    return cls == RESP_ORDINARY && !s->multi_refused && !session_pinned(s) &&
           (s->authed || !session_auth_required(pol));
}

/* The client could not get a dedicated connection for the request just
 * given SESSION_PIN (it was not pinned before): its state goes back to
 * unpinned, and a refused MULTI refuses what follows up to EXEC/DISCARD. */
void session_pin_failed(struct resp_session *s);

/* The server said the client has no subscription left. */
static inline void session_unsubscribed(struct resp_session *s)
{
    s->subscribed = false;
}

enum session_verdict {
    SESSION_FORWARD,    /* send it upstream, on a connection in the client's state */
    SESSION_ANSWER,     /* answered here: the reply is written */
    SESSION_REFUSE,     /* refused: the reply (an error naming the command) is written */
    SESSION_PIN,        /* send it on the client's dedicated connection (s->kind says how) */
    SESSION_ABORT,      /* EXEC of a transaction with a command refused here: send DISCARD
                         * instead on the dedicated connection, and answer the client with the
                         * reply written (-EXECABORT) */
};

/*
 * The verdict on a request of class cls (resp_class_of(info)) whose bytes
 * are data[0..len), for the client with session s and id id; updates s.
 * With SESSION_ANSWER / SESSION_REFUSE / SESSION_ABORT the reply is
 * written to reply (at most cap bytes, cap >= 1024) and its length stored
 * in *reply_len; what (at most 64 bytes) names the command for the log
 * ("MULTI", "CLIENT TRACKING"), except for SESSION_FORWARD.
 */
enum session_verdict session_request(struct resp_session *s, const struct session_policy *pol, uint64_t id,
                                     enum resp_class cls, const char *data, size_t len,
                                     char *reply, size_t cap, size_t *reply_len, char *what);

/* The request bytes Proximux sends itself to put an upstream connection in
 * a state: "SELECT n", "HELLO p", "AUTH [user] pass" as multibulk arrays.
 * Return the length written (0 if it does not fit in cap). */
size_t session_select_cmd(int db, char *out, size_t cap);
size_t session_hello_cmd(bool resp3, char *out, size_t cap);
size_t session_auth_cmd(const char *user, const char *password, char *out, size_t cap);

#endif
