/* The glue between the listener and the exchange modes: mode selection and
 * the client count that max_connections and graceful shutdown rely on. */
#include <string.h>
#include <unistd.h>

#include "access.h"
#include "codec.h"
#include "config.h"
#include "exchange.h"
#include "log.h"

void exchange_init(struct exchange *x, struct reactor *r, const struct service_config *c)
{
    x->reactor = r;
    x->config = c;
    x->codec = codec_find(c->codec);
    x->nclients = 0;
    x->shutting_down = false;
    x->ready = false;
    x->priv = NULL;
    x->accept_local = NULL;
    x->accept_local_len = 0;
    memset(&x->stats, 0, sizeof(x->stats));
    switch (c->effective_mode) {
    case MODE_FIFO:
        x->ops = &exchange_fifo;
        break;
    case MODE_FUNNEL:
        x->ops = &exchange_funnel;
        break;
    case MODE_PROXY:
    case MODE_AUTO:
    default:
        x->ops = &exchange_proxy;
        break;
    }
}

void exchange_accept(struct exchange *x, int fd, const char *peer, const struct sockaddr *addr,
                     socklen_t addr_len)
{
    /* Access lists (SPEC §11): a refused client is closed before any mode,
     * target or warm spare is involved. */
    char why[ACCESS_WHY_MAX];
    if (!access_allowed(x->config, addr, addr_len, why, sizeof(why))) {
        log_info("client %s refused: %s", peer, why);
        stats_refused(&x->stats, STATS_REFUSED_DENIED);
        close(fd);
        return;
    }
    x->ops->accept(x, fd, peer, addr, addr_len);
}

void exchange_ready(struct exchange *x)
{
    if (x->ready)
        return;
    x->ready = true;
    if (x->on_ready)
        x->on_ready(x);
}

void exchange_out_of_fds(struct exchange *x)
{
    if (x->on_out_of_fds)
        x->on_out_of_fds(x);
}

void exchange_client_added(struct exchange *x)
{
    x->nclients++;
    stats_client_added(&x->stats);
}

void exchange_client_removed(struct exchange *x)
{
    x->nclients--;
    if (x->on_client_removed)
        x->on_client_removed(x);
    if (x->nclients == 0 && x->on_idle)
        x->on_idle(x);
}

void exchange_event(struct exchange *x, const char *name, const char *target, const char *detail)
{
    log_error("service %s: event %s target %s: %s", x->config->name, name, target, detail);
}
