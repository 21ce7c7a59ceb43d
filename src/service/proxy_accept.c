/* accept_proxy: reading the PROXY header of clients from the trusted
 * balancers before the exchange sees them (see include/proxy_accept.h).
 * Bytes are peeked, fed to the decoder, and only the header's bytes are
 * taken from the socket: what follows stays for the exchange. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "exchange.h"
#include "listener.h"
#include "log.h"
#include "net.h"
#include "proxy_accept.h"
#include "proxy_protocol.h"
#include "reactor.h"

/* Bytes peeked per read: a v1 line, or a v2 header without large TLVs. */
#define PROXY_ACCEPT_PEEK 512

struct proxy_accept_client {
    struct list_node link;          /* in listener.proxy_pending.pending */
    struct listener *l;
    int fd;
    long long timer;
    struct sockaddr_storage addr;   /* the balancer's address */
    socklen_t addr_len;
    char peer[NET_ADDR_MAX];
    struct proxy_protocol_decoder dec;
};

void proxy_accept_init(struct proxy_accept_set *set)
{
    list_init(&set->pending);
    set->n = 0;
}

bool proxy_accept_wanted(const struct service_config *c, const struct sockaddr *addr, socklen_t len)
{
    return c->accept_proxy && cidr_match_any(c->accept_proxy_from, c->naccept_proxy_from, addr, len);
}

/* Forgets pc (and closes its socket unless handed over). */
static void pa_free(struct proxy_accept_client *pc, bool close_fd)
{
    struct listener *l = pc->l;

    if (pc->timer != 0)
        reactor_timer_del(l->reactor, pc->timer);
    reactor_del(l->reactor, pc->fd, REACTOR_READABLE);
    if (close_fd)
        close(pc->fd);
    list_remove(&pc->link);
    l->proxy_pending.n--;
    free(pc);
}

static void pa_fail(struct proxy_accept_client *pc, const char *why)
{
    log_error("client %s refused: PROXY header: %s", pc->peer, why);
    pa_free(pc, true);
}

/* The header is complete: the client goes to the exchange with the
 * address it gives (its own for LOCAL/UNKNOWN). */
static void pa_done(struct proxy_accept_client *pc)
{
    struct listener *l = pc->l;
    struct exchange *x = l->exchange;
    struct proxy_protocol_decoder *d = &pc->dec;
    char real[NET_ADDR_MAX];
    int fd = pc->fd;

    if (d->local) {
        log_info("client %s: PROXY v%d header without an address (LOCAL/UNKNOWN): its own address is used",
                 pc->peer, d->version);
        memcpy(real, pc->peer, sizeof(real));
        struct sockaddr_storage addr = pc->addr;
        socklen_t len = pc->addr_len;
        pa_free(pc, false);
        exchange_accept(x, fd, real, (const struct sockaddr *)&addr, len);
        return;
    }
    log_format_client((const struct sockaddr *)&d->src, d->src_len, real, sizeof(real));
    log_info("client %s: PROXY v%d header: client %s", pc->peer, d->version, real);
    struct sockaddr_storage src = d->src, dst = d->dst;
    socklen_t src_len = d->src_len, dst_len = d->dst_len;
    pa_free(pc, false);
    x->accept_local = (const struct sockaddr *)&dst;
    x->accept_local_len = dst_len;
    exchange_accept(x, fd, real, (const struct sockaddr *)&src, src_len);
    x->accept_local = NULL;
    x->accept_local_len = 0;
}

static void pa_readable(struct reactor *r, int fd, void *data, int mask)
{
    struct proxy_accept_client *pc = data;
    char buf[PROXY_ACCEPT_PEEK];

    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            log_info_errno("client %s: reading its PROXY header", pc->peer);
            pa_free(pc, true);
            return;
        }
        if (n == 0) {
            pa_fail(pc, pc->dec.consumed == 0 ? "closed before sending one" : "closed in the middle of it");
            return;
        }
        size_t used;
        enum proxy_protocol_status st = proxy_protocol_decode(&pc->dec, buf, (size_t)n, &used);
        if (st == PROXY_PROTOCOL_ERROR) {
            pa_fail(pc, pc->dec.error);
            return;
        }
        /* Take the header's bytes (they were peeked: they are there). */
        ssize_t got;
        do {
            got = recv(fd, buf, used, 0);
        } while (got < 0 && errno == EINTR);
        if (got != (ssize_t)used) {
            pa_fail(pc, "socket error");
            return;
        }
        if (st == PROXY_PROTOCOL_DONE) {
            pa_done(pc);
            return;
        }
    }
}

static long pa_timeout(struct reactor *r, long long id, void *data)
{
    struct proxy_accept_client *pc = data;

    pc->timer = 0;
    pa_fail(pc, "not complete within 5000 ms");
    return REACTOR_TIMER_DONE;
}

void proxy_accept_start(struct listener *l, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct proxy_accept_client *pc;
    char peer[NET_ADDR_MAX];

    log_format_client(addr, len, peer, sizeof(peer));
    if (l->proxy_pending.n >= PROXY_ACCEPT_MAX_PENDING) {
        log_error("client %s refused: %d clients are sending their PROXY header already",
                  peer, PROXY_ACCEPT_MAX_PENDING);
        close(fd);
        return;
    }
    pc = calloc(1, sizeof(*pc));
    if (pc == NULL) {
        log_error("client %s: out of memory, closing", peer);
        close(fd);
        return;
    }
    pc->l = l;
    pc->fd = fd;
    memcpy(&pc->addr, addr, PMX_MIN((size_t)len, sizeof(pc->addr)));
    pc->addr_len = len;
    memcpy(pc->peer, peer, sizeof(peer));
    proxy_protocol_decoder_init(&pc->dec);
    list_add_tail(&l->proxy_pending.pending, &pc->link);
    l->proxy_pending.n++;
    pc->timer = reactor_timer_add(l->reactor, PROXY_ACCEPT_TIMEOUT_MS, pa_timeout, pc);
    if (pc->timer <= 0 || reactor_add(l->reactor, fd, REACTOR_READABLE, pa_readable, pc) != PMX_OK) {
        if (pc->timer < 0)
            pc->timer = 0;
        log_error_errno("client %s: epoll", peer);
        pa_free(pc, true);
        return;
    }
    /* The header often came with the connection. */
    pa_readable(l->reactor, fd, pc, REACTOR_READABLE);
}

void proxy_accept_close_all(struct listener *l)
{
    struct list_node *n, *next;

    if (l->proxy_pending.pending.next == NULL)
        return;
    list_for_each_safe(n, next, &l->proxy_pending.pending) {
        struct proxy_accept_client *pc = list_entry(n, struct proxy_accept_client, link);
        log_info("client %s closed: the listener closed while it was sending its PROXY header", pc->peer);
        pa_free(pc, true);
    }
}
