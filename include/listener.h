/* The listening socket: accepts clients until EAGAIN, enforces
 * max_connections (new clients wait in the listen backlog for up to
 * local.max_wait) and hands each client to the exchange. */
#ifndef LISTENER_H
#define LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include "pmx.h"

struct service_config;
struct exchange;
struct reactor;

struct listener {
    int fd;
    struct reactor *reactor;
    struct exchange *exchange;
    long long retry_timer;      /* set while paused after EMFILE */
    bool full;                  /* paused: max_connections clients connected */
    long long wait_timer;       /* set while clients may be waiting in the backlog */
};

/* Binds and listens on the configured address. Returns PMX_OK, or PMX_ERR
 * with a one-line reason in err (naming LOCAL_HOST/LOCAL_PORT). */
int listener_open(struct listener *l, const struct service_config *c, char *err, size_t errlen) PMX_WUR;

/* Starts accepting clients for x. */
int listener_start(struct listener *l, struct reactor *r, struct exchange *x) PMX_WUR;

/* Out of file descriptors: stops accepting for a moment (100 ms). */
void listener_pause(struct listener *l);

/* A client left: accept again if max_connections had paused accepting. */
void listener_slot_freed(struct listener *l);

/* Stops accepting and closes the socket. */
void listener_close(struct listener *l);

#endif
