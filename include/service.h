/* A service: one named configuration served by its listeners, its exchange
 * (proxy, fifo or funnel, with its codec) and its upstream connections.
 * The daemon runs several services in one reactor; each owns its state, so
 * one service's load or faults do not reach another beyond sharing the
 * CPU. */
#ifndef SERVICE_H
#define SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "exchange.h"
#include "listener.h"
#include "pmx.h"

struct reactor;
struct resolver;
struct service;
struct upstream;

typedef void (*service_fn)(struct service *s);

struct service {
    /* read-only */
    const struct service_config *config;
    struct exchange exchange;
    struct upstream *upstream;      /* targets, balancer, health, connect engine */
    struct listener listeners[CONFIG_MAX_LISTEN];
    int nlisteners;
    bool accepting;                 /* listeners watched (warmup done) */
    bool stopping;                  /* shutdown begun: listeners closed */
    struct request_log *request_log;        /* request_log: NULL when off */
    struct request_log *next_request_log;   /* opened by service_reload_prepare() */
    uint64_t request_log_dropped;           /* lines dropped by the logs closed at reloads */
    /* public: set by the owner before service_start() */
    service_fn on_idle;             /* told each time its last client leaves */
    service_fn on_fatal;            /* told when it cannot go on (epoll failure) */
    service_fn on_accepting;        /* told when its listeners start accepting (systemd READY=1) */
    void *owner;
};

/* Binds every listen address of cfg (nothing is accepted yet). Returns
 * PMX_OK, or PMX_ERR with one line in err naming the listen setting as the
 * user wrote it; nothing stays open then. */
int service_open(struct service *s, const struct config *all, const struct service_config *cfg,
                 char *err, size_t errlen) PMX_WUR;

/* Where service_open_with() finds a listening socket bound already: returns
 * the fd for lc (the listener owns it from then on), or -1 to bind lc. */
typedef int (*service_inherit_fn)(void *data, const struct listen_config *lc);

/* service_open() taking the listen addresses that inherit has a socket for
 * from it (reload hand-over, binary upgrade); inherit may be NULL. On error
 * the inherited sockets taken so far are closed too. */
int service_open_with(struct service *s, const struct config *all, const struct service_config *cfg,
                      service_inherit_fn inherit, void *data, char *err, size_t errlen) PMX_WUR;

/* Starts the upstream layer and the exchange (warmup) on r; rs resolves
 * target names (may be NULL). The listeners accept once the exchange is
 * ready. Returns PMX_OK or PMX_ERR (out of memory). */
int service_start(struct service *s, struct reactor *r, struct resolver *rs) PMX_WUR;

/* The janitor: timeouts, reconnects, re-resolution. */
void service_tick(struct service *s);

/* Stops accepting (listeners closed). fast: finish what is in flight, then
 * close every client; otherwise serve clients until they leave. */
void service_shutdown(struct service *s, bool fast);

/* Before a reload in place with cfg: opens what the new settings need and
 * may fail to get (the request log, reopened on every reload so that a
 * log moved away is written anew). Returns PMX_OK, or PMX_ERR with one
 * line in err (the reload is refused). service_reload() then uses it, or
 * service_reload_abort() drops it. */
int service_reload_prepare(struct service *s, const struct service_config *cfg, char *err, size_t errlen) PMX_WUR;
void service_reload_abort(struct service *s);

/* The configuration was reloaded: cfg replaces the service's settings (the
 * caller kept those that need a restart, config_service_keep_fixed). */
void service_reload(struct service *s, const struct service_config *cfg);

/* Request log lines dropped since the service started (statistics). */
uint64_t service_request_log_dropped(const struct service *s);

/* Clients connected now. */
size_t service_clients(const struct service *s);

/* Closes the listeners and everything the exchange holds. */
void service_close(struct service *s);

#endif
