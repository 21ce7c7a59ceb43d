/* FIFO/funnel with the resp codec: each client's session state (database,
 * protocol, name, authentication; include/resp_session.h decides) and the
 * upstream connections put in the state of the client whose request they
 * carry, with requests of Proximux's own (SELECT, HELLO, AUTH) whose
 * replies are checked and never delivered. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mux.h"
#include "reactor.h"

/* Room for a reply written here: the HELLO map is the largest. */
#define MUX_SESSION_REPLY 2048
/* Room for a request of Proximux's own (AUTH with a long password). */
#define MUX_SESSION_CMD (2 * SESSION_ARG_MAX + 64)

bool mux_session_submit(struct mux *m, struct mux_client *c, struct mux_request *req,
                        const char *data, size_t len, uint32_t info)
{
    char reply[MUX_SESSION_REPLY], what[64];
    size_t n = 0;
    enum session_verdict v = session_request(&c->session, &m->policy, c->id, resp_class_of(info), data, len,
                                             reply, sizeof(reply), &n, what);

    if (v == SESSION_FORWARD) {
        req->db = c->session.db;
        req->resp3 = c->session.resp3;
        return false;
    }
    if (v == SESSION_REFUSE)
        log_info("#%llu client %s: refused %s", (unsigned long long)c->id, c->peer, what);
    mux_respond(req, reply, n, false);
    return true;
}

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
    m->active++;
    return PMX_OK;
}

int mux_session_switch(struct mux *m, struct mux_upstream *up, const struct mux_request *req)
{
    char cmd[MUX_SESSION_CMD];

    /* HELLO first: it does not change the database. */
    if (req->resp3 != up->resp3) {
        if (mux_session_internal(m, up, cmd, session_hello_cmd(req->resp3, cmd, sizeof(cmd)),
                                 MUX_EXPECT_HELLO) != PMX_OK)
            return PMX_ERR;
        up->resp3 = req->resp3;
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
