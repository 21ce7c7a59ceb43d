/* The listening socket: accept until EAGAIN, refuse clients over
 * max_connections, and back off from the accept loop on EMFILE instead of
 * spinning on a listener that stays readable. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "listener.h"
#include "log.h"
#include "reactor.h"

#define LISTENER_BACKLOG 1024
#define LISTENER_EMFILE_RETRY_MS 100
/* Clients accepted per readable event, so a flood cannot starve the others. */
#define LISTENER_ACCEPT_BATCH 256

int listener_open(struct listener *l, const struct config *c, char *err, size_t errlen)
{
    char addr[CONN_ADDR_MAX];
    int one = 1;

    l->fd = -1;
    l->retry_timer = 0;
    conn_format_addr((const struct sockaddr *)&c->local_addr, addr, sizeof(addr));
    int fd = socket(c->local_addr.ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        goto fail;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (c->local_addr.ss_family == AF_INET6) {
        int v6only = c->ipv6_only ? 1 : 0;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
            goto fail;
    }
    if (bind(fd, (const struct sockaddr *)&c->local_addr, c->local_addr_len) < 0 ||
        listen(fd, LISTENER_BACKLOG) < 0 || conn_setup_socket(fd) != PMX_OK)
        goto fail;
    l->fd = fd;
    return PMX_OK;
fail:
    snprintf(err, errlen, "LOCAL_HOST/LOCAL_PORT: cannot listen on %s: %s", addr, strerror(errno));
    if (fd >= 0)
        close(fd);
    return PMX_ERR;
}

static void listener_accept(struct reactor *r, int fd, void *data, int mask);

static long listener_retry(struct reactor *r, long long id, void *data)
{
    struct listener *l = data;

    l->retry_timer = 0;
    if (l->fd >= 0 && reactor_add(r, l->fd, REACTOR_READABLE, listener_accept, l) != PMX_OK)
        log_error_errno("listener: epoll");
    return REACTOR_TIMER_DONE;
}

/* Out of file descriptors: stop watching the listener (it would stay
 * readable and spin) and look again shortly. */
void listener_pause(struct listener *l)
{
    if (l->fd < 0 || l->reactor == NULL)
        return;
    log_error("accept: out of file descriptors; pausing accept for %d ms", LISTENER_EMFILE_RETRY_MS);
    reactor_del(l->reactor, l->fd, REACTOR_READABLE);
    if (l->retry_timer == 0)
        l->retry_timer = reactor_timer_add(l->reactor, LISTENER_EMFILE_RETRY_MS, listener_retry, l);
}

static void listener_accept(struct reactor *r, int fd, void *data, int mask)
{
    struct listener *l = data;
    struct exchange *x = l->exchange;

    for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        char peer[CONN_ADDR_MAX];

        int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listener_pause(l);
            else if (errno != EAGAIN && errno != EWOULDBLOCK)
                log_error_errno("accept");
            return;
        }
        conn_format_addr((const struct sockaddr *)&addr, peer, sizeof(peer));
        long max = x->config->max_connections;
        if (max >= 0 && x->nclients >= (size_t)max) {
            log_error("client %s refused: max_connections %ld reached", peer, max);
            close(cfd);
            continue;
        }
        if (conn_setup_socket(cfd) != PMX_OK) {
            log_error_errno("client %s: socket setup", peer);
            close(cfd);
            continue;
        }
        x->ops->accept(x, cfd, peer);
    }
}

int listener_start(struct listener *l, struct reactor *r, struct exchange *x)
{
    l->reactor = r;
    l->exchange = x;
    return reactor_add(r, l->fd, REACTOR_READABLE, listener_accept, l);
}

void listener_close(struct listener *l)
{
    if (l->retry_timer)
        reactor_timer_del(l->reactor, l->retry_timer);
    l->retry_timer = 0;
    if (l->fd >= 0) {
        if (l->reactor)
            reactor_del(l->reactor, l->fd, REACTOR_READABLE);
        close(l->fd);
        l->fd = -1;
    }
}
