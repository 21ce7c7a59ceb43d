/* Socket I/O for one end of a connection: the single read and write
 * functions of Proximux. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "reactor.h"

void conn_init(struct conn *c, int fd)
{
    memset(c, 0, sizeof(*c));
    c->fd = fd;
    buf_init(&c->out);
}

ssize_t conn_read(struct conn *c, char *dst, size_t max)
{
    for (;;) {
        ssize_t n = recv(c->fd, dst, max, 0);
        if (n > 0) {
            c->bytes_in += (uint64_t)n;
            return n;
        }
        if (n == 0) {
            c->eof = true;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return PMX_AGAIN;
        return PMX_ERR;
    }
}

ssize_t conn_read_buf(struct conn *c, struct buf *b, size_t max)
{
    if (buf_reserve(b, max) != PMX_OK) {
        errno = ENOMEM;
        return PMX_ERR;
    }
    ssize_t n = conn_read(c, buf_end(b), max);
    if (n > 0)
        buf_produce(b, (size_t)n);
    return n;
}

ssize_t conn_write(struct conn *c, const char *src, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = send(c->fd, src + done, len - done, MSG_NOSIGNAL);
        if (n >= 0) {
            done += (size_t)n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            break;
        c->bytes_out += done;
        return PMX_ERR;
    }
    c->bytes_out += done;
    return (ssize_t)done;
}

int conn_flush(struct conn *c)
{
    size_t len = buf_len(&c->out);

    if (len == 0)
        return PMX_OK;
    ssize_t n = conn_write(c, buf_start(&c->out), len);
    if (n < 0)
        return PMX_ERR;
    buf_consume(&c->out, (size_t)n);
    if (buf_len(&c->out) > 0)
        return PMX_AGAIN;
    buf_release(&c->out);
    return PMX_OK;
}

int conn_send(struct conn *c, const char *src, size_t len)
{
    size_t done = 0;

    if (buf_len(&c->out) == 0) {
        ssize_t n = conn_write(c, src, len);
        if (n < 0)
            return PMX_ERR;
        done = (size_t)n;
    }
    if (buf_append(&c->out, src + done, len - done) != PMX_OK) {
        errno = ENOMEM;
        return PMX_ERR;
    }
    return PMX_OK;
}

void conn_shutdown_write(struct conn *c)
{
    if (c->shut_wr || c->fd < 0)
        return;
    c->shut_wr = true;
    /* ENOTCONN here means the peer is already gone: nothing to tell it. */
    (void)shutdown(c->fd, SHUT_WR);
}

void conn_close(struct conn *c, struct reactor *r)
{
    if (c->fd >= 0) {
        reactor_del(r, c->fd, REACTOR_READABLE | REACTOR_WRITABLE);
        close(c->fd);
        c->fd = -1;
    }
    buf_free(&c->out);
}

uint64_t conn_next_id(void)
{
    static uint64_t next_id;

    return ++next_id;
}
