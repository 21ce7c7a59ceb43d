/* The listening socket: accept until EAGAIN, hold new clients in the
 * kernel's listen backlog while max_connections are connected (closing
 * those that waited local.max_wait), and back off from the accept loop on
 * EMFILE instead of spinning on a listener that stays readable. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
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

int listener_open(struct listener *l, const struct listen_config *lc, bool ipv6_only, long unix_mode,
                  char *err, size_t errlen)
{
    memset(l, 0, sizeof(*l));
    proxy_accept_init(&l->proxy_pending);
    snprintf(l->spec, sizeof(l->spec), "%s", lc->spec);
    if (lc->where.unix_socket) {
        l->fd = net_listen_unix(lc->where.path, (mode_t)unix_mode, LISTENER_BACKLOG, err, errlen);
        if (l->fd >= 0)
            snprintf(l->unix_path, sizeof(l->unix_path), "%s", lc->where.path);
    } else {
        l->fd = net_listen_tcp((const struct sockaddr *)&lc->addr, lc->addr_len, ipv6_only,
                               LISTENER_BACKLOG, err, errlen);
    }
    return l->fd >= 0 ? PMX_OK : PMX_ERR;
}

void listener_adopt(struct listener *l, const struct listen_config *lc, int fd)
{
    memset(l, 0, sizeof(*l));
    snprintf(l->spec, sizeof(l->spec), "%s", lc->spec);
    l->fd = fd;
    proxy_accept_init(&l->proxy_pending);
    l->inherited = true;
    if (lc->where.unix_socket)
        snprintf(l->unix_path, sizeof(l->unix_path), "%s", lc->where.path);
}

void listener_disown(struct listener *l)
{
    l->unix_path[0] = '\0';
}

static void listener_accept(struct reactor *r, int fd, void *data, int mask);

/* Watches the listener again unless something keeps it paused. */
static void listener_resume(struct listener *l)
{
    if (l->fd < 0 || l->reactor == NULL || l->full || l->retry_timer != 0)
        return;
    if (reactor_add(l->reactor, l->fd, REACTOR_READABLE, listener_accept, l) != PMX_OK)
        log_error_errno("listener: epoll");
}

static long listener_retry(struct reactor *r, long long id, void *data)
{
    struct listener *l = data;

    l->retry_timer = 0;
    listener_resume(l);
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

/* Accepts one waiting client only to close it: it found max_connections
 * reached and waited its max_wait. Returns false once none is waiting. */
static bool listener_refuse_one(struct listener *l, long max, long waited)
{
    struct sockaddr_storage addr;
    socklen_t len = sizeof(addr);
    char peer[NET_ADDR_MAX];

    int cfd = accept4(l->fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return errno == EINTR || errno == ECONNABORTED;
    log_format_client((const struct sockaddr *)&addr, len, peer, sizeof(peer));
    stats_refused(&l->exchange->stats, STATS_REFUSED_MAX_CONNECTIONS);
    if (waited > 0)
        log_error("client %s refused: max_connections %ld reached, no slot freed within max_wait %ld ms",
                  peer, max, waited);
    else
        log_error("client %s refused: max_connections %ld reached", peer, max);
    close(cfd);
    return true;
}

/*
 * The oldest client waiting in the backlog may have waited max_wait now
 * (the timer starts when the first one is seen waiting and runs until the
 * backlog is found empty, so no client waits longer, though one that came
 * later may be refused sooner). Refuses every client waiting, and counts
 * again for those that come next.
 */
static long listener_wait_expired(struct reactor *r, long long id, void *data)
{
    struct listener *l = data;
    const struct service_config *c = l->exchange->config;

    if (!l->full || c->max_wait == 0) {
        /* Accepting again, or max_wait was set to 0 by a reload: the
         * accept loop refuses at once from now on. */
        l->wait_timer = 0;
        l->full = false;
        listener_resume(l);
        return REACTOR_TIMER_DONE;
    }
    for (int i = 0; i < LISTENER_BACKLOG && listener_refuse_one(l, c->max_connections, c->max_wait); i++)
        ;
    return c->max_wait;
}

/* max_connections clients are connected: leave new ones in the backlog
 * until a slot frees (listener_slot_freed) or max_wait passes. */
static void listener_wait_full(struct listener *l)
{
    l->full = true;
    reactor_del(l->reactor, l->fd, REACTOR_READABLE);
    if (l->wait_timer == 0)
        l->wait_timer = reactor_timer_add(l->reactor, l->exchange->config->max_wait,
                                          listener_wait_expired, l);
}

static void listener_backlog_empty(struct listener *l)
{
    if (l->wait_timer != 0)
        reactor_timer_del(l->reactor, l->wait_timer);
    l->wait_timer = 0;
}

void listener_slot_freed(struct listener *l)
{
    const struct service_config *c;

    if (!l->full || l->exchange == NULL)
        return;
    c = l->exchange->config;
    if (c->max_connections >= 0 && l->exchange->nclients >= (size_t)c->max_connections)
        return;
    l->full = false;
    listener_resume(l);
}

static void listener_accept(struct reactor *r, int fd, void *data, int mask)
{
    struct listener *l = data;
    struct exchange *x = l->exchange;

    for (int i = 0; i < LISTENER_ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof(addr);
        char peer[NET_ADDR_MAX];
        long max = x->config->max_connections;

        if (max >= 0 && x->nclients >= (size_t)max) {
            if (x->config->max_wait == 0) {
                if (!listener_refuse_one(l, max, 0))
                    return;
                continue;
            }
            /* Pause only while someone waits: its wait starts now. */
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            if (poll(&pfd, 1, 0) > 0)
                listener_wait_full(l);
            else
                listener_backlog_empty(l);
            return;
        }
        int cfd = accept4(fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                listener_pause(l);
            else if (errno == EAGAIN || errno == EWOULDBLOCK)
                listener_backlog_empty(l);
            else
                log_error_errno("accept");
            return;
        }
        log_format_client((const struct sockaddr *)&addr, len, peer, sizeof(peer));
        if (net_setup_socket(cfd) != PMX_OK) {
            log_error_errno("client %s: socket setup", peer);
            close(cfd);
            continue;
        }
        /* accept_proxy: a trusted balancer's client is served once its
         * PROXY header has told who it is. */
        if (proxy_accept_wanted(x->config, (const struct sockaddr *)&addr, len)) {
            proxy_accept_start(l, cfd, (const struct sockaddr *)&addr, len);
            continue;
        }
        exchange_accept(x, cfd, peer, (const struct sockaddr *)&addr, len);
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
    listener_backlog_empty(l);
    l->full = false;
    proxy_accept_close_all(l);
    if (l->fd >= 0) {
        if (l->reactor)
            reactor_del(l->reactor, l->fd, REACTOR_READABLE);
        close(l->fd);
        l->fd = -1;
    }
    if (l->unix_path[0] != '\0') {
        (void)unlink(l->unix_path);
        l->unix_path[0] = '\0';
    }
}
