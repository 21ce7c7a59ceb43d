/* The listening socket: accepts clients until EAGAIN, enforces
 * max_connections (new clients wait in the listen backlog for up to
 * local.max_wait) and hands each client to the exchange. */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include "net.h"
#include "pmx.h"
#include "proxy_accept.h"

struct listen_config;
struct exchange;
struct reactor;

struct listener {
    int fd;
    /* The address as configured, for logs: a copy, since a reload frees
     * the configuration it came from while the listener stays. */
    char spec[NET_ADDR_MAX + NET_HOST_MAX];
    char unix_path[108];        /* a unix socket to remove at close; "" for TCP */
    struct reactor *reactor;
    struct exchange *exchange;
    long long retry_timer;      /* set while paused after EMFILE */
    bool full;                  /* paused: max_connections clients connected */
    long long wait_timer;       /* set while clients may be waiting in the backlog */
    struct proxy_accept_set proxy_pending;  /* accept_proxy: clients sending their header */
    bool inherited;             /* listener_adopt(): the socket came from elsewhere */
};

/* Binds and listens on address lc: TCP (IPV6_V6ONLY as ipv6_only says) or a
 * unix socket created with permissions unix_mode. Returns PMX_OK, or
 * PMX_ERR with the reason in err. */
int listener_open(struct listener *l, const struct listen_config *lc, bool ipv6_only, long unix_mode,
                  char *err, size_t errlen) PMX_WUR;

/* Takes fd, a listening socket bound to lc already: inherited from
 * systemd (socket activation; then call listener_disown(): the unix socket
 * file belongs to systemd), or handed over by another service object on
 * reload or by the old process on a binary upgrade. The listener owns it
 * from now on as if listener_open() had bound it. */
void listener_adopt(struct listener *l, const struct listen_config *lc, int fd);

/* Its socket lives on elsewhere (systemd, a new service object or a new
 * process has it): listener_close() must not remove the unix socket's file. */
void listener_disown(struct listener *l);

/* Starts accepting clients for x. */
int listener_start(struct listener *l, struct reactor *r, struct exchange *x) PMX_WUR;

/* Out of file descriptors: stops accepting for a moment (100 ms). */
void listener_pause(struct listener *l);

/* A client left: accept again if max_connections had paused accepting. */
void listener_slot_freed(struct listener *l);

/* Stops accepting and closes the socket (a unix socket's file is
 * removed). */
void listener_close(struct listener *l);

#endif
