/* The FIFO/funnel exchange's own header, shared by its four files and by
 * nothing else:
 *   exchange_mux.c   the mode: start, janitor, shutdown, before-sleep flushes
 *   mux_client.c     the client side: reading and framing requests, delivering
 *                    responses in client order, back-pressure and limits
 *   mux_request.c    requests: where each goes (answered here, queued, sent)
 *   mux_upstream.c   the upstream side: picking a connection, sending,
 *                    framing responses, failures
 */
#ifndef MUX_H
#define MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "resp_session.h"
#include "script.h"
#include "exchange.h"
#include "mux_sched.h"
#include "upstream.h"

/* Most bytes read from one socket per event. */
#define MUX_CHUNK (64 * 1024)
/* A client with this many requests outstanding is not read until some are
 * answered: bounds what one pipelining client can queue. */
#define MUX_CLIENT_PIPELINE 1024
/* Room for a locally generated error reply. */
#define MUX_REPLY_MAX 512

/*
 *   clients                      requests                     upstreams
 *
 *   client A --in--> [parser] --> req A1 --+                 +-- wait queue --+
 *                                          +-> pick upstream-+                +--> conn.out ==> upstream 1
 *   client B --in--> [parser] --> req B1 --+   (affinity,    +-- sent queue <-+
 *                                              fewest        |   A1, B1, ...  |
 *                                              outstanding)  |                |
 *   client A <--out-- in client order <---- response of head of sent queue <--+ <== in
 *
 * Every request is in its client's list (the order responses must go back
 * in) and in one upstream queue: "wait" until its bytes are written to the
 * connection's out buffer, then "sent" until its response is read. The
 * response read from an upstream always answers the head of that
 * upstream's sent queue. A request is freed once it has left both lists.
 *
 * A client's requests all go to the same upstream while any of them is
 * outstanding, so that one client's pipelined commands are executed in the
 * order it sent them (a write is seen by its following read); a client with
 * nothing outstanding goes to the upstream with the fewest outstanding
 * requests. Responses are still delivered strictly in client order, since
 * errors generated here (queue full, timeout) may be known before earlier
 * responses arrive.
 *
 * Requests and responses are buffered whole (bounded by max_message) before
 * they are passed on, so a failure never leaves half a message on a client
 * connection: the client gets an error reply in its protocol instead.
 */

struct mux_client;
struct mux_upstream;

/* Why a resp client got a dedicated connection (mux.pinned[]). */
enum { MUX_PIN_MULTI, MUX_PIN_WATCH, MUX_PIN_SUBSCRIBE, MUX_PIN_MONITOR, MUX_PIN_BLOCKING, MUX_PIN_REASONS };

struct mux_request {
    struct mux_client *client;      /* NULL once the client has left: swallow */
    struct mux_upstream *up;        /* queued or in flight there; NULL if not */
    char *data;                     /* bytes to send, while waiting (owned) */
    size_t len;
    uint32_t info;                  /* CODEC_INFO_* from the request parser */
    bool scheduled;                 /* taken by the scheduler: counts in its client's client_inflight */
    bool counted;                   /* counts in m->active (limits.max_active): written to a shared connection */
    struct sched_item item;         /* in its client's waiting queue (mux_sched) */
    bool done;                      /* response known: in resp, or a close */
    bool close_client;              /* close the client after this response */
    struct buf resp;                /* response held for earlier requests */
    uint64_t queued_at;
    uint64_t sent_at;
    uint64_t sent_us;               /* for least_latency samples only */
    uint64_t seq;                   /* its place among the requests written to its upstream */
    /* Statistics: a client's request counts its response and latency in
     * stats (NULL for Proximux's own requests); status is set with a reply
     * made here (enum stats_status). */
    struct stats *stats;
    uint64_t start_us;
    uint8_t status;
    /* resp: the client's session state when it sent this request: the
     * connection is put in it before the request is written. */
    int db;
    bool resp3;
    /* resp: a request Proximux sends itself (SELECT, HELLO, AUTH; client
     * NULL): the reply it must get, else the connection fails.
     * MUX_EXPECT_OK "+...", MUX_EXPECT_HELLO a map or an array; 0 none. */
    uint8_t expect;
    uint8_t kind;                   /* resp: SESSION_KIND_* on a dedicated connection */
    bool abort_exec;                /* resp: DISCARD sent for a poisoned EXEC: answer -EXECABORT */
    /* Request log (SPEC §11): the codec's description of a sampled
     * request, until its record is written (mux_request_logged); NULL when
     * not logged. At most request_log.max_text + 4 bytes are kept. */
    char *log_command;
    size_t log_command_len;         /* bytes in log_command */
    size_t log_command_total;       /* the description's whole length */
    uint64_t log_bytes_in;
    uint64_t log_sent_us;           /* when written upstream (upstream_clock_us), 0 never */
    int log_target;                 /* the target it was written to, -1 none */
    bool upstream_gone;             /* failed with its connection (not a timeout) */
    /* The Lua on_response hook: the req table kept for it (hook_ref) in
     * the script it came from (a reference; NULL: no hook to call). */
    struct script *hook_script;
    int hook_ref;
    struct mux_request *next;       /* in the upstream's sent queue */
    struct mux_request *cnext;      /* in the client's list */
};

struct mux_queue {
    struct mux_request *head;
    struct mux_request *tail;
    size_t len;
};

struct mux_client {
    uint64_t id;
    char peer[NET_ADDR_MAX];
    struct conn conn;               /* conn.out: responses to write */
    struct buf in;                  /* request bytes not yet framed */
    size_t counted;                 /* in.cap as counted in m->partial_bytes */
    bool mem_paused;                /* not read: the request memory budget is spent */
    struct codec_parser parser;
    size_t scanned;                 /* bytes of in the parser has consumed */
    struct mux_request *head;       /* outstanding requests, in order */
    struct mux_request *tail;
    size_t npending;                /* requests in the list */
    size_t held;                    /* response bytes held in requests */
    struct mux_upstream *affinity;  /* where its requests go while any is out */
    size_t nupstream;               /* its requests in upstream queues */
    struct sched_client sched;      /* its requests waiting for its connection, and in flight */
    const char *refusal;            /* the codec's reason for refusing the request being submitted */
    /* Its last noreply request, written to noreply_up (while that
     * connection's generation is noreply_gen) as request noreply_seq: until
     * a later request there is answered, it may not have run yet, so the
     * client's next request must follow it on that connection. */
    struct mux_upstream *noreply_up;
    uint64_t noreply_seq;
    uint64_t noreply_gen;
    struct resp_session session;    /* resp: database, protocol, name, auth (all zero: a new client) */
    struct mux_upstream *dedicated; /* resp: its dedicated connection while pinned or in use */
    struct script *script;          /* the service's Lua hooks when it came (a reference), or NULL */
    bool closing;                   /* read no more; close once flushed */
    bool closed;                    /* gone; freed before the loop sleeps */
    bool dirty;                     /* out has bytes to flush before sleep */
    struct mux *m;
    struct mux_client *prev;
    struct mux_client *next;
    struct mux_client *dirty_next;
};

struct mux_upstream {
    struct upstream_conn uc;        /* the connection, owned by the upstream layer */
    struct buf in;                  /* response bytes read, not yet handled */
    uint64_t last_active;           /* last byte in or out (ms) */
    bool proved;                    /* a response came on this connection */
    struct mux *m;
    struct sched_upstream sched;    /* shared: requests waiting for this connection, per client */
    struct mux_queue wait;          /* dedicated: its one client's requests waiting, in order */
    struct mux_queue sent;
    struct codec_parser parser;     /* response to the head of sent */
    bool parsing;                   /* parser holds a response in progress */
    bool draining;                  /* ... larger than max_message: dropped as parsed */
    size_t scanned;                 /* bytes of in the parser consumed */
    bool retiring;                  /* upstream will close: send no more */
    bool dirty;
    uint64_t written;               /* requests written so far (each gets the next seq) */
    uint64_t answered;              /* seq of the latest request answered: all before it ran */
    uint64_t generation;            /* incremented each time the connection closes */
    /* resp: the session state the connection is in once what was written
     * to it has run (reset when it connects). db -1: unknown (a client's
     * own SELECT or HELLO ran there while subscribed); proto_unknown: send
     * HELLO before the next request. */
    int db;
    bool resp3;
    bool proto_unknown;
    /* resp: a dedicated connection (not in ups[]): it carries the requests
     * of owner only (MULTI, WATCH, subscriptions, MONITOR, blocking
     * commands), or none while idle (owner NULL), kept for reuse. */
    bool dedicated;
    struct mux_client *owner;
    /* Subscribed or MONITOR: the replies are not matched to requests;
     * every value read is passed to owner in order. unsub_last: the last
     * request written was an UNSUBSCRIBE of some kind. */
    bool passthrough;
    bool unsub_last;
    /* Its client left (or a request of its session could not be sent)
     * while something of that session may be on it: it is closed, never
     * handed to another client. */
    bool left_dirty;
    struct mux_upstream *ded_next;  /* in mux.ded */
};

struct mux {
    struct exchange *x;
    struct mux_upstream *ups;
    int nups;
    struct mux_client *clients;
    struct mux_client *dirty_clients;
    struct mux_client *graveyard;   /* closed clients, freed before sleep */
    size_t queued;                  /* requests waiting, all upstreams */
    size_t active;                  /* requests sent and not answered, all upstreams */
    bool active_full;               /* a send waited for limits.max_active */
    bool kick;                      /* ... and a response freed a place: dispatch every upstream */
    size_t partial_bytes;           /* memory of all clients' partial requests (their in) */
    size_t mem_paused;              /* clients not read because of it */
    unsigned next_pick;
    uint64_t started;
    char *scratch;                  /* reads land here first: see mux_read */
    bool resp;                      /* the codec is resp: session state applies */
    struct session_policy policy;   /* resp: credentials (session.auth, targets) */
    struct session_user users[CONFIG_MAX_AUTH_USERS];   /* policy.users: into the config */
    struct mux_upstream *ded;       /* dedicated connections, in use or idle (session.dedicated_max) */
    int nded;
    /* resp session counters, for the statistics (SPEC §12): clients given
     * a dedicated connection, by reason (MUX_PIN_*); commands refused
     * (named in the log), and pinnings refused at session.dedicated_max. */
    uint64_t pinned[MUX_PIN_REASONS];
    uint64_t session_refused;
    uint64_t pin_refused;
};

static inline const struct service_config *mux_config(const struct mux *m)
{
    return m->x->config;
}

/* ---- queues and request lifetime (mux_request.c) ---- */

static inline void mux_queue_push(struct mux_queue *q, struct mux_request *req)
{
    req->next = NULL;
    if (q->tail)
        q->tail->next = req;
    else
        q->head = req;
    q->tail = req;
    q->len++;
}

static inline struct mux_request *mux_queue_pop(struct mux_queue *q)
{
    struct mux_request *req = q->head;

    if (req == NULL)
        return NULL;
    q->head = req->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->len--;
    req->next = NULL;
    return req;
}

void mux_request_free(struct mux_request *req);

/* Frees req once neither its client nor an upstream holds it. */
static inline void mux_request_release(struct mux_request *req)
{
    if (req->client == NULL && req->up == NULL)
        mux_request_free(req);
}

/* req has left its upstream queue (popped by the caller). The caller then
 * answers it (mux_respond) or releases it. */
void mux_request_leave_upstream(struct mux_request *req);

/* A whole request of client c: answer it here, or queue it for an
 * upstream, or (fast path) write it straight to one. */
void mux_submit(struct mux *m, struct mux_client *c, const char *data, size_t len, uint32_t info);

/* Request log: a new request of len bytes, data[0..len) as the client
 * sent it: describes it if the log samples it. */
void mux_request_log_begin(struct mux *m, struct mux_request *req, const char *data, size_t len);
/* Request log: req was written to up. */
void mux_request_log_sent(struct mux_request *req, const struct mux_upstream *up);
/* Request log: req's fate is known. The one place records are written:
 * status from how it ended (its reply made here, the response data[0..len)
 * of the upstream, or the client gone); client is its address. Nothing
 * when req is not logged, or logged already. */
void mux_request_logged(struct mux *m, struct mux_request *req, const char *client, const char *data,
                        size_t len, bool client_gone);

/* Fails the requests of up's wait queue older than queue_timeout. */
void mux_expire_queue(struct mux *m, struct mux_upstream *up, uint64_t now);

/* ---- resp session state (mux_session.c) ---- */

#define MUX_EXPECT_OK    1
#define MUX_EXPECT_HELLO 2
#define MUX_EXECABORT "-EXECABORT Transaction discarded because of previous errors.\r\n"

/* Decides about request req (bytes *data[0..*len), *info) of client c of
 * a resp service: returns true when it was answered or refused here, false
 * when it goes upstream (req->db / resp3 then hold the state it runs in;
 * *up is the client's dedicated connection, or NULL for a shared one;
 * *data, *len and *info may be replaced). */
bool mux_session_submit(struct mux *m, struct mux_client *c, struct mux_request *req,
                        const char **data, size_t *len, uint32_t *info, struct mux_upstream **up);
/* A value read on a dedicated connection in passthrough: to its owner. */
void mux_session_passthrough(struct mux *m, struct mux_upstream *up, const char *data, size_t len);
/* Whether c has requests in queues of upstreams other than up. */
bool mux_client_elsewhere(const struct mux_client *c, const struct mux_upstream *up);
/* Before the loop sleeps: dedicated connections of clients that left or
 * are no longer pinned go idle (or close), the others send and flush. */
void mux_session_sweep(struct mux *m);
/* Janitor for dedicated connections: queue timeouts, idle ones closed after
 * pool.inactive_timeout. */
void mux_session_tick(struct mux *m, uint64_t now);
/* Frees every dedicated connection (the exchange ends). */
void mux_session_destroy(struct mux *m);
/* Before req is written to up: writes the SELECT / HELLO that put up in
 * req's state, as requests of Proximux's own. */
int mux_session_switch(struct mux *m, struct mux_upstream *up, const struct mux_request *req);
/* up just connected: its state is the server's default; sends AUTH with the
 * targets' credentials first if they have some. */
int mux_session_connected(struct mux *m, struct mux_upstream *up);
/* Whether the reply data[0..len) to a request of Proximux's own is the one
 * it expects. */
bool mux_session_reply_ok(uint8_t expect, const char *data, size_t len);
/* Reads the credentials from the configuration (at start and reload). */
void mux_session_configure(struct mux *m);

/* ---- clients (mux_client.c) ---- */

void mux_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr, socklen_t addr_len);
void mux_client_close(struct mux_client *c, const char *reason);
/* c is closing: its dedicated connection, if any, is detached from it now
 * (the client is freed before the loop sleeps) and closed at the next
 * sweep if anything of its session may be on it. */
void mux_session_client_left(struct mux_client *c);
/* Decides whether c is finished, and whether to read from it. */
void mux_client_update(struct mux_client *c);
void mux_client_flush(struct mux_client *c);
/* The response to req is data[0..len), or with close_client nothing more:
 * the client is closed after the responses before it. */
void mux_respond(struct mux_request *req, const char *data, size_t len, bool close_client);
/* Answers req with a reply made here (error, quit). Codecs without such a
 * reply (line, raw) close the client instead. */
void mux_reply(struct mux *m, struct mux_request *req, enum codec_reply kind, const char *reason);
/* limits.request_memory: refuses the clients holding the largest partial
 * requests until the budget is no longer spent. */
void mux_enforce_request_memory(struct mux *m);

/* ---- upstream connections (mux_upstream.c) ---- */

void mux_upstream_init(struct mux *m, struct mux_upstream *up);
void mux_upstream_release(struct mux_upstream *up);
size_t mux_outstanding(const struct mux_upstream *up);
/* Requests waiting to be written to up. */
size_t mux_waiting(const struct mux_upstream *up);
/* Picks the upstream for a new request of client c. */
struct mux_upstream *mux_pick(struct mux *m, struct mux_client *c);
/* Whether up can take one more request onto its connection now. */
bool mux_can_send(const struct mux *m, const struct mux_upstream *up);
/* Writes req's bytes to the connection's out buffer: it is sent. */
int mux_send(struct mux *m, struct mux_upstream *up, struct mux_request *req, const char *data, size_t len);
/* Fails every request in flight on up with an error reply of kind and
 * closes the connection (failure: counts against the target); requests not
 * yet sent stay queued for the next connection. */
void mux_upstream_fail(struct mux *m, struct mux_upstream *up, const char *reason,
                       enum codec_reply kind, bool failure);
/* Sends what waits on up while it can. */
void mux_dispatch(struct mux *m, struct mux_upstream *up);
void mux_upstream_open(struct mux *m, struct mux_upstream *up);
/* Writes what handlers queued on up's connection (more waiting requests
 * go out as room frees). */
void mux_upstream_flush(struct mux *m, struct mux_upstream *up);
/* Before the loop sleeps: writes what handlers queued on every connection. */
void mux_upstreams_flush(struct mux *m);
/* Janitor: response and inactivity timeouts. */
void mux_upstreams_tick(struct mux *m, uint64_t now);
/* A target came back: reopen the connections something waits for. */
void mux_upstreams_reopen(struct mux *m);

/* ---- reading, for both sides ---- */

/* Reads from conn. When in holds nothing, the bytes land in the shared
 * scratch buffer, seen through *view, so that the usual case (whole
 * messages in one read) allocates and copies nothing; otherwise they are
 * appended to in. *cur tells which buffer holds them. Returns as
 * conn_read(). */
static inline ssize_t mux_read(struct mux *m, struct conn *conn, struct buf *in, struct buf *view,
                               struct buf **cur)
{
    if (buf_len(in) > 0) {
        *cur = in;
        return conn_read_buf(conn, in, MUX_CHUNK);
    }
    view->data = m->scratch;
    view->head = view->tail = 0;
    view->cap = MUX_CHUNK;
    *cur = view;
    ssize_t n = conn_read(conn, m->scratch, MUX_CHUNK);
    if (n > 0)
        view->tail = (size_t)n;
    return n;
}

/* Moves what the parser left in the scratch view (the start of a message)
 * into in, before the next read reuses the scratch buffer. */
static inline int mux_keep(struct buf *in, const struct buf *cur)
{
    if (cur == in || buf_len(cur) == 0)
        return PMX_OK;
    return buf_append(in, buf_start(cur), buf_len(cur));
}

#endif
