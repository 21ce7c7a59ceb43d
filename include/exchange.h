/* Exchange modes: how client connections are served by upstream
 * connections. One ops table per mode (proxy, fifo, funnel); the listener
 * hands every accepted client to the selected mode. */
#ifndef EXCHANGE_H
#define EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "pmx.h"
#include "stats.h"

struct service_config;
struct codec_ops;
struct reactor;
struct exchange;
struct upstream;
struct request_log;

/* The janitor runs this often (ms): timeouts are checked at this grain. */
#define EXCHANGE_TICK_MS 100

struct exchange_ops {
    const char *name;
    /* Allocates the mode's state and starts the pool (warmup); calls
     * exchange_ready() once clients may be accepted. */
    int (*start)(struct exchange *x);
    /* Takes a new client socket (non-blocking already); peer is its address
     * for logs, addr the same for ip_hash (unix-socket clients have no IP). */
    void (*accept)(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
                   socklen_t addr_len);
    /* Janitor: timeouts. */
    void (*tick)(struct exchange *x);
    /* A target became usable again: reopen connections closed for lack of
     * one (warm spares, pool connections). */
    void (*target_up)(struct exchange *x);
    /* Stops serving new work. fast: finish what is buffered or in flight,
     * then close every client; otherwise serve clients until they leave. */
    void (*shutdown)(struct exchange *x, bool fast);
    /* The configuration was replaced (SIGHUP): read settings from x->config
     * from now on. */
    void (*reload)(struct exchange *x);
    /* Closes everything and frees the mode's state. */
    void (*destroy)(struct exchange *x);
    /* Fills the gauges of the statistics (queue depth, live bytes...). */
    void (*gauges)(const struct exchange *x, struct stats_gauges *g);
};

struct exchange {
    const struct exchange_ops *ops;
    struct reactor *reactor;
    const struct service_config *config;
    const struct codec_ops *codec;
    struct upstream *upstream;      /* the service's upstream layer */
    size_t nclients;            /* clients connected now */
    bool shutting_down;
    bool ready;
    /* Set by the caller: told once when clients may be accepted, and each
     * time the last client leaves. */
    void (*on_ready)(struct exchange *x);
    void (*on_idle)(struct exchange *x);
    /* Told each time a client leaves (its slot in max_connections frees). */
    void (*on_client_removed)(struct exchange *x);
    /* Told when a mode could not get a file descriptor: pause accepting. */
    void (*on_out_of_fds)(struct exchange *x);
    void *owner;
    void *priv;                 /* the mode's state */
    /* Set by the listener only while it calls ops->accept for a client
     * whose PROXY header (accept_proxy) named the address it connected to:
     * send_proxy passes that on. NULL: the socket's own. */
    const struct sockaddr *accept_local;
    socklen_t accept_local_len;
    struct stats stats;         /* counted by the modes, the listener (SPEC §12) */
    /* The service's request log (SPEC §11), NULL when off; owned by the
     * service, replaced on reload: look it up for each record. */
    struct request_log *request_log;
};

extern const struct exchange_ops exchange_proxy;
extern const struct exchange_ops exchange_fifo;
extern const struct exchange_ops exchange_funnel;

/* Fills x for config c: selects the mode and the codec. */
void exchange_init(struct exchange *x, struct reactor *r, const struct service_config *c);

/* Hands a new client to the mode: the one door every accepted client goes
 * through (listener, PROXY header accepted), so that checks on a client
 * (access lists, the on_connect hook) live in one place. peer is the
 * client's address for logs, addr the same for matching and ip_hash. */
void exchange_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
                     socklen_t addr_len);

/* Called by a mode when warmup is over (once). */
void exchange_ready(struct exchange *x);

/* Called by a mode when socket() fails with EMFILE/ENFILE. */
void exchange_out_of_fds(struct exchange *x);

/* Called by a mode when it has registered or released a client. */
void exchange_client_added(struct exchange *x);
void exchange_client_removed(struct exchange *x);

/* An event of a client's session (SPEC §10: "connect_error" when a routed
 * session's connect failed, "inactivity" when its target sent nothing in
 * inactivity_timeout): logged at level 1 as `service S: event NAME target
 * T: DETAIL`; the place where script hooks (on_event) will hear them. */
void exchange_event(struct exchange *x, const char *name, const char *target, const char *detail);

#endif
