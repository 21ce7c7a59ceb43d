/* FIFO/funnel with the resp codec: each client's session state (database,
 * protocol, name, authentication; include/resp_session.h decides) and the
 * upstream connections put in the state of the client whose request they
 * carry, with requests of Proximux's own (SELECT, HELLO, AUTH) whose
 * replies are checked and never delivered. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"

/* Room for a reply written here: the HELLO map is the largest. */
#define MUX_SESSION_REPLY 2048
/* Room for a request of Proximux's own (AUTH with a long password). */
#define MUX_SESSION_CMD (2 * SESSION_ARG_MAX + 64)

/* Writes cmd[0..n) to up as a request of Proximux's own. */
static int mux_session_internal(struct mux *m, struct mux_upstream *up, const char *cmd, size_t n,
                                uint8_t expect)
{
    struct mux_request *req = calloc(1, sizeof(*req));

    if (req == NULL)
        return PMX_ERR;
    buf_init(&req->resp);
    if (n == 0 || buf_append(&up->uc.conn.out, cmd, n) != PMX_OK) {
        free(req);
        return PMX_ERR;
    }
    req->up = up;
    req->expect = expect;
    req->queued_at = req->sent_at = reactor_now(m->x->reactor);
    req->seq = ++up->written;
    up->dirty = true;
    mux_queue_push(&up->sent, req);
    if (!up->dedicated) {
        m->active++;
        req->counted = true;
    }
    return PMX_OK;
}

int mux_session_switch(struct mux *m, struct mux_upstream *up, const struct mux_request *req)
{
    char cmd[MUX_SESSION_CMD];

    /* HELLO first: it does not change the database. */
    if (req->resp3 != up->resp3 || up->proto_unknown) {
        if (mux_session_internal(m, up, cmd, session_hello_cmd(req->resp3, cmd, sizeof(cmd)),
                                 MUX_EXPECT_HELLO) != PMX_OK)
            return PMX_ERR;
        up->resp3 = req->resp3;
        up->proto_unknown = false;
    }
    if (req->db != up->db) {
        if (mux_session_internal(m, up, cmd, session_select_cmd(req->db, cmd, sizeof(cmd)),
                                 MUX_EXPECT_OK) != PMX_OK)
            return PMX_ERR;
        up->db = req->db;
    }
    return PMX_OK;
}

void mux_session_configure(struct mux *m)
{
    const struct service_config *cfg = mux_config(m);
    struct session_policy *p = &m->policy;

    memset(p, 0, sizeof(*p));
    p->password = cfg->auth_password[0] != '\0' ? cfg->auth_password : NULL;
    for (int i = 0; i < cfg->nauth_users && i < CONFIG_MAX_AUTH_USERS; i++) {
        m->users[i].user = cfg->auth_users[i].user;
        m->users[i].password = cfg->auth_users[i].password;
    }
    p->users = m->users;
    p->nusers = cfg->nauth_users;
    /* A client's AUTH without session.auth is checked against the first
     * target's credentials (targets of one service share them). */
    if (cfg->ntargets > 0 && cfg->targets[0].password[0] != '\0') {
        p->target_password = cfg->targets[0].password;
        p->target_user = cfg->targets[0].username[0] != '\0' ? cfg->targets[0].username : NULL;
    }
}

int mux_session_connected(struct mux *m, struct mux_upstream *up)
{
    const struct service_config *cfg = mux_config(m);
    char cmd[MUX_SESSION_CMD];

    up->db = 0;
    up->proto_unknown = false;
    up->resp3 = false;
    if (up->uc.target < 0 || up->uc.target >= cfg->ntargets)
        return PMX_OK;
    const struct target_config *t = &cfg->targets[up->uc.target];
    if (t->password[0] == '\0')
        return PMX_OK;
    return mux_session_internal(m, up, cmd,
                                session_auth_cmd(t->username[0] != '\0' ? t->username : NULL, t->password, cmd,
                                                 sizeof(cmd)),
                                MUX_EXPECT_OK);
}

bool mux_session_reply_ok(uint8_t expect, const char *data, size_t len)
{
    if (len == 0)
        return false;
    if (expect == MUX_EXPECT_OK)
        return data[0] == '+';
    return data[0] == '%' || data[0] == '*';
}

/* ---- dedicated connections ---- */

/* c's dedicated connection: the one it has, an idle one, or a new one
 * within session.dedicated_max; NULL over the limit. */
static struct mux_upstream *mux_session_acquire(struct mux *m, struct mux_client *c)
{
    struct mux_upstream *up;

    if (c->dedicated != NULL)
        return c->dedicated;
    for (up = m->ded; up != NULL; up = up->ded_next)
        if (up->owner == NULL && !up->retiring && up->uc.state != UPSTREAM_BACKOFF)
            break;
    if (up == NULL) {
        if (m->nded >= mux_config(m)->dedicated_max)
            return NULL;
        up = calloc(1, sizeof(*up));
        if (up == NULL)
            return NULL;
        mux_upstream_init(m, up);
        up->dedicated = true;
        up->ded_next = m->ded;
        m->ded = up;
        m->nded++;
    }
    up->owner = c;
    c->dedicated = up;
    return up;
}

bool mux_client_elsewhere(const struct mux_client *c, const struct mux_upstream *up)
{
    for (const struct mux_request *r = c->head; r != NULL; r = r->cnext)
        if (r->up != NULL && r->up != up)
            return true;
    return false;
}

static bool mux_session_submit_tracked(struct mux *m, struct mux_client *c, struct mux_request *req,
                                       const char **data, size_t *len, uint32_t *info,
                                       struct mux_upstream **up);

bool mux_session_submit(struct mux *m, struct mux_client *c, struct mux_request *req,
                        const char **data, size_t *len, uint32_t *info, struct mux_upstream **up)
{
    /* The usual request: nothing to parse or track. */
    if (session_plain(&c->session, &m->policy, resp_class_of(*info))) {
        req->db = c->session.db;
        req->resp3 = c->session.resp3;
        return false;
    }
    return mux_session_submit_tracked(m, c, req, data, len, info, up);
}

static bool mux_session_submit_tracked(struct mux *m, struct mux_client *c, struct mux_request *req,
                                       const char **data, size_t *len, uint32_t *info,
                                       struct mux_upstream **up)
{
    static const char discard[] = "*1\r\n$7\r\nDISCARD\r\n";
    char reply[MUX_SESSION_REPLY], what[64];
    size_t n = 0;
    bool was = session_pinned(&c->session);
    enum session_verdict v = session_request(&c->session, &m->policy, c->id, resp_class_of(*info), *data, *len,
                                             reply, sizeof(reply), &n, what);

    req->db = c->session.db;
    req->resp3 = c->session.resp3;
    if (v == SESSION_FORWARD)
        return false;
    if (v == SESSION_PIN || v == SESSION_ABORT) {
        bool had = c->dedicated != NULL;
        struct mux_upstream *d = mux_session_acquire(m, c);
        if (d != NULL && !had) {
            const struct resp_session *s = &c->session;
            m->pinned[s->in_multi ? MUX_PIN_MULTI : s->watching ? MUX_PIN_WATCH : s->monitor ? MUX_PIN_MONITOR :
                      s->subscribed ? MUX_PIN_SUBSCRIBE : MUX_PIN_BLOCKING]++;
        }
        if (d == NULL) {
            m->pin_refused++;
            if (!was)
                session_pin_failed(&c->session);
            log_info("#%llu client %s: refused %s: session.dedicated_max (%ld) reached",
                     (unsigned long long)c->id, c->peer, what, mux_config(m)->dedicated_max);
            char busy[128];
            snprintf(busy, sizeof(busy), "%s refused: session.dedicated_max reached", what);
            mux_reply(m, req, CODEC_REPLY_BUSY, busy);
            return true;
        }
        req->kind = c->session.kind;
        /* The codec marked it unsupported on a shared connection. */
        *info &= ~CODEC_INFO_UNSUPPORTED;
        if (v == SESSION_ABORT) {
            /* The transaction must not run: DISCARD it, answer EXECABORT. */
            req->abort_exec = true;
            *data = discard;
            *len = sizeof(discard) - 1;
        }
        *up = d;
        return false;
    }
    if (v == SESSION_REFUSE) {
        m->session_refused++;
        req->status = STATS_CLIENT_ERROR;
        log_info("#%llu client %s: refused %s", (unsigned long long)c->id, c->peer, what);
    }
    mux_respond(req, reply, n, false);
    return true;
}

/* A subscription reply saying no subscription is left: an array or push
 * of 3, "unsubscribe" (p, s), the channel, then :0. */
static bool mux_session_unsub_zero(const char *d, size_t n)
{
    static const char *const kinds[] = { "$11\r\nunsubscribe\r\n", "$12\r\npunsubscribe\r\n",
                                         "$12\r\nsunsubscribe\r\n" };

    if (n < 9 || (d[0] != '*' && d[0] != '>') || memcmp(d + 1, "3\r\n", 3) != 0 ||
        memcmp(d + n - 4, ":0\r\n", 4) != 0 || d[n - 5] != '\n')
        return false;
    for (size_t i = 0; i < PMX_ARRAY_LEN(kinds); i++) {
        size_t k = strlen(kinds[i]);
        if (n - 4 >= k && strncasecmp(d + 4, kinds[i], k) == 0)
            return true;
    }
    return false;
}

void mux_session_passthrough(struct mux *m, struct mux_upstream *up, const char *data, size_t len)
{
    struct mux_client *c = up->owner;

    if (c == NULL || c->closed)
        return;                     /* the client left: the connection closes at the sweep */
    if (up->unsub_last && mux_session_unsub_zero(data, len)) {
        /* Out of subscribed mode, nothing else asked for is on the way:
         * replies are matched to requests again. */
        up->passthrough = false;
        up->unsub_last = false;
        if (!c->session.monitor)
            session_unsubscribed(&c->session);
    }
    /* Delivered in order with the client's other responses, as the answer
     * to a request of its own that was never sent. */
    struct mux_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        mux_client_close(c, "out of memory");
        return;
    }
    buf_init(&req->resp);
    req->client = c;
    req->queued_at = reactor_now(m->x->reactor);
    if (c->tail)
        c->tail->cnext = req;
    else
        c->head = req;
    c->tail = req;
    c->npending++;
    mux_respond(req, data, len, false);
}

/* Whether up holds a blocking command in flight. */
static bool mux_session_blocked(const struct mux_upstream *up)
{
    for (const struct mux_request *r = up->sent.head; r != NULL; r = r->next)
        if (r->kind == SESSION_KIND_BLOCK)
            return true;
    return false;
}

void mux_session_client_left(struct mux_client *c)
{
    struct mux_upstream *up = c->dedicated;

    if (up == NULL)
        return;
    up->left_dirty = up->left_dirty || up->passthrough || session_pinned(&c->session) || mux_outstanding(up) > 0;
    up->owner = NULL;
    c->dedicated = NULL;
}

void mux_session_sweep(struct mux *m)
{
    for (struct mux_upstream *up = m->ded; up != NULL; up = up->ded_next) {
        struct mux_client *c = up->owner;
        if (c != NULL && !c->closed && c->closing && (up->passthrough || mux_session_blocked(up))) {
            /* The client closed its side while subscribed, monitoring or
             * blocked: what it waits for may never come. Redis drops a
             * client at end of stream too. */
            mux_client_close(c, "end of stream while subscribed or blocked");
        }
        if (c == NULL) {
            /* Its client left (mux_session_client_left): its unsent
             * requests are dropped, and the connection is kept for another
             * only if nothing of its session is on it. */
            struct mux_request *req;
            while ((req = mux_queue_pop(&up->wait)) != NULL) {
                m->queued--;
                mux_request_leave_upstream(req);
                mux_request_release(req);
            }
            if (up->left_dirty) {
                up->left_dirty = false;
                if (up->uc.state != UPSTREAM_CLOSED)
                    mux_upstream_fail(m, up, "its client left", CODEC_REPLY_SERVER_ERROR, false);
            }
        } else if (c != NULL && !session_pinned(&c->session) && !up->passthrough && mux_outstanding(up) == 0 &&
                   c->affinity != up) {
            /* Done with it: idle, warm for the next client pinned. */
            up->owner = NULL;
            c->dedicated = NULL;
        } else if (c != NULL && up->wait.head != NULL) {
            mux_dispatch(m, up);
        }
        mux_upstream_flush(m, up);
    }
}

void mux_session_tick(struct mux *m, uint64_t now)
{
    const struct service_config *cfg = mux_config(m);

    for (struct mux_upstream *up = m->ded; up != NULL; up = up->ded_next) {
        /* No queue timeout (its requests wait only for the connect, or for
         * their client's earlier requests) and no response timeout here: a blocking command or a subscription
         * holds its connection as long as its client wants. */
        if (up->owner == NULL && up->uc.state == UPSTREAM_READY && cfg->inactive_timeout > 0 &&
            mux_outstanding(up) == 0 && now - up->last_active >= (uint64_t)cfg->inactive_timeout)
            mux_upstream_fail(m, up, "inactive timeout", CODEC_REPLY_SERVER_ERROR, false);
    }
}

void mux_session_destroy(struct mux *m)
{
    struct mux_upstream *up, *next;

    for (up = m->ded; up != NULL; up = next) {
        struct mux_request *req;
        next = up->ded_next;
        while ((req = mux_queue_pop(&up->wait)) != NULL) {
            mux_request_leave_upstream(req);
            mux_request_release(req);
        }
        while ((req = mux_queue_pop(&up->sent)) != NULL) {
            mux_request_leave_upstream(req);
            mux_request_release(req);
        }
        mux_upstream_release(up);
        free(up);
    }
    m->ded = NULL;
    m->nded = 0;
}
