/* One end of a TCP connection (a client or an upstream): its socket, the
 * bytes waiting to be written to it and its counters. The only place that
 * reads from or writes to sockets, so EINTR, EAGAIN and partial writes are
 * handled once. */
#ifndef CONN_H
#define CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "buf.h"
#include "net.h"
#include "pmx.h"

struct reactor;

struct conn {
    int fd;
    struct buf out;         /* bytes waiting to be written to fd */
    uint64_t bytes_in;      /* read from fd */
    uint64_t bytes_out;     /* written to fd */
    bool eof;               /* the peer shut down its sending side */
    bool shut_wr;           /* we shut down our sending side */
    bool failed;            /* a socket error: nothing more can pass */
};

void conn_init(struct conn *c, int fd);

/* Reads at most max bytes into dst. Returns the count (> 0), 0 at end of
 * stream (sets c->eof), PMX_AGAIN when nothing is ready, PMX_ERR on a
 * socket error (errno set). */
ssize_t conn_read(struct conn *c, char *dst, size_t max) PMX_WUR;

/* Same, appending to b after making room for max bytes. */
ssize_t conn_read_buf(struct conn *c, struct buf *b, size_t max) PMX_WUR;

/* Writes as much of src as the socket takes. Returns the count written
 * (0 if the socket is full), or PMX_ERR (errno set). */
ssize_t conn_write(struct conn *c, const char *src, size_t len) PMX_WUR;

/* Writes c->out. Returns PMX_OK when it is empty, PMX_AGAIN when bytes are
 * left, PMX_ERR on a socket error. */
int conn_flush(struct conn *c) PMX_WUR;

/* Sends what is in src now and queues the rest in c->out, keeping order.
 * Returns PMX_OK or PMX_ERR (socket error or out of memory). */
int conn_send(struct conn *c, const char *src, size_t len) PMX_WUR;

/* Shuts down our sending side once (propagates a half-close). */
void conn_shutdown_write(struct conn *c);

/* Removes fd from r, closes it and frees the buffer. */
void conn_close(struct conn *c, struct reactor *r);

/* A process-wide increasing id for log lines. */
uint64_t conn_next_id(void);

#endif
