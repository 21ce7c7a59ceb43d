/* The daemon: services on one reactor, the janitor, signals, and the reload
 * that applies a new configuration without dropping a client.
 *
 * A reload sorts the new file's services against the running ones by name:
 * unchanged but for reloadable settings (updated in place, service_reload),
 * changed in a setting that needs a new service object (replaced), new
 * (added), gone (removed). New service objects are opened first, taking the
 * listening socket of any old object that listened on the same address (a
 * dup of it, so the old one's socket is never closed and reopened and no
 * connect is refused); a bind failure refuses the whole reload and nothing
 * changes. Then replaced and removed objects are retired: no listeners,
 * their clients finish (until shutdown_timeout), and they are freed. Every
 * service object holds a reference on the configuration its settings live
 * in, so an old configuration lives as long as a retired service reads it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "exchange.h"
#include "activation.h"
#include "admin.h"
#include "log.h"
#include "notify.h"
#include "reactor.h"
#include "resolver.h"
#include "service.h"
#include "signals.h"
#include "upgrade.h"

extern char **environ;

/* A loaded configuration and how many holders read it (the daemon for the
 * running one, and each service object whose settings live in it). */
struct daemon_conf {
    struct config c;
    int refs;
};

struct daemon_svc {
    struct service service;         /* service.owner is this */
    struct daemon *d;
    struct daemon_conf *conf;       /* holds service.config */
    bool retired;                   /* removed or replaced: clients finishing */
    bool closing;                   /* being freed: callbacks ignored */
    long long deadline_timer;       /* retired: shutdown_timeout */
    long long reap_timer;           /* retired and idle: freed from a timer, outside the exchange */
    struct daemon_svc *next;        /* in d->retired */
};

struct daemon {
    struct reactor *reactor;
    struct resolver *resolver;      /* target names, off the loop */
    struct daemon_conf *conf;       /* the running configuration */
    struct daemon_svc **services;   /* conf's services, in the file's order */
    int nservices;
    struct daemon_svc *retired;     /* replaced or removed, clients finishing */
    bool stopping;
    bool ready;                     /* every service accepted once */
    long long deadline_timer;
    char **argv;
    struct admin *admin;            /* the admin API, when admin.listen is set */
    struct service **view;          /* the admin API's view of services[] */
    int nview;
};

static struct daemon_conf *conf_ref(struct daemon_conf *dc)
{
    dc->refs++;
    return dc;
}

static void conf_unref(struct daemon_conf *dc)
{
    if (dc != NULL && --dc->refs == 0) {
        config_free(&dc->c);
        free(dc);
    }
}

static size_t daemon_clients(const struct daemon *d)
{
    size_t n = 0;

    for (int i = 0; i < d->nservices; i++)
        n += service_clients(&d->services[i]->service);
    for (const struct daemon_svc *v = d->retired; v; v = v->next)
        n += service_clients(&v->service);
    return n;
}

static void svc_free(struct daemon_svc *v)
{
    v->closing = true;
    if (v->deadline_timer)
        reactor_timer_del(v->d->reactor, v->deadline_timer);
    if (v->reap_timer)
        reactor_timer_del(v->d->reactor, v->reap_timer);
    service_close(&v->service);
    conf_unref(v->conf);
    free(v);
}

static void retired_unlink(struct daemon *d, struct daemon_svc *v)
{
    for (struct daemon_svc **p = &d->retired; *p; p = &(*p)->next) {
        if (*p == v) {
            *p = v->next;
            return;
        }
    }
}

static long svc_reap(struct reactor *r, long long id, void *data)
{
    struct daemon_svc *v = data;

    v->reap_timer = 0;
    if (service_clients(&v->service) == 0) {
        log_info("service %s: the retired service's last client has left; closed", v->service.config->name);
        retired_unlink(v->d, v);
        svc_free(v);
    }
    return REACTOR_TIMER_DONE;
}

static long svc_deadline(struct reactor *r, long long id, void *data)
{
    struct daemon_svc *v = data;

    v->deadline_timer = 0;
    log_error("service %s: %zu clients of the retired service still connected after shutdown_timeout %ld ms; "
              "closing them", v->service.config->name, service_clients(&v->service),
              v->d->conf->c.shutdown_timeout);
    retired_unlink(v->d, v);
    svc_free(v);
    return REACTOR_TIMER_DONE;
}

static void daemon_on_idle(struct service *s)
{
    struct daemon_svc *v = s->owner;
    struct daemon *d = v->d;

    if (v->closing)
        return;
    /* Not freed here: the exchange calling us is still on the stack. */
    if (v->retired && v->reap_timer == 0)
        v->reap_timer = reactor_timer_add(d->reactor, 0, svc_reap, v);
    if (d->stopping && daemon_clients(d) == 0) {
        log_info("all clients have left; exiting");
        reactor_stop(d->reactor);
    }
}

static void daemon_on_fatal(struct service *s)
{
    struct daemon_svc *v = s->owner;

    reactor_stop(v->d->reactor);
}

/* systemd's STATUS= line: services and clients. */
static const char *daemon_status(const struct daemon *d)
{
    static char status[128];
    size_t clients = daemon_clients(d);

    snprintf(status, sizeof(status), "%s%d service%s, %zu client%s", d->stopping ? "stopping: " : "",
             d->nservices, d->nservices == 1 ? "" : "s", clients, clients == 1 ? "" : "s");
    return status;
}

/* READY=1 (systemd) and the upgrade's readiness once every service
 * accepts (listeners bound, warmup done). */
static void daemon_on_accepting(struct service *s)
{
    struct daemon_svc *v = s->owner;
    struct daemon *d = v->d;

    if (d->ready)
        return;
    for (int i = 0; i < d->nservices; i++)
        if (!d->services[i]->service.accepting)
            return;
    d->ready = true;
    log_info("every service is accepting clients");
    upgrade_ready();
    notify_ready(daemon_status(d));
}

/* A service object for cfg, which lives in dc; listeners bound or taken
 * from inherit. NULL with err on failure. */
static struct daemon_svc *svc_create(struct daemon *d, struct daemon_conf *dc, const struct service_config *cfg,
                                     service_inherit_fn inherit, void *data, char *err, size_t errlen)
{
    struct daemon_svc *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        snprintf(err, errlen, "service %s: out of memory", cfg->name);
        return NULL;
    }
    if (service_open_with(&v->service, &dc->c, cfg, inherit, data, err, errlen) != PMX_OK) {
        free(v);
        return NULL;
    }
    v->d = d;
    v->conf = conf_ref(dc);
    v->service.owner = v;
    v->service.on_idle = daemon_on_idle;
    v->service.on_fatal = daemon_on_fatal;
    v->service.on_accepting = daemon_on_accepting;
    return v;
}

static int svc_start(struct daemon *d, struct daemon_svc *v)
{
    if (service_start(&v->service, d->reactor, d->resolver) != PMX_OK) {
        log_error("service %s: cannot start: out of memory", v->service.config->name);
        return PMX_ERR;
    }
    return PMX_OK;
}

/* Replaced or removed: stop accepting (the listeners are closed; those
 * handed to a new object were disowned, their sockets live on there), let
 * its clients finish, free it when the last leaves or at shutdown_timeout. */
static void svc_retire(struct daemon *d, struct daemon_svc *v)
{
    v->retired = true;
    v->next = d->retired;
    d->retired = v;
    service_shutdown(&v->service, false);
    if (service_clients(&v->service) == 0) {
        if (v->reap_timer == 0)
            v->reap_timer = reactor_timer_add(d->reactor, 0, svc_reap, v);
        return;
    }
    log_info("service %s: retired with %zu clients connected; they finish on it", v->service.config->name,
             service_clients(&v->service));
    v->deadline_timer = reactor_timer_add(d->reactor, d->conf->c.shutdown_timeout, svc_deadline, v);
}

static long daemon_deadline(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    log_error("shutdown: %zu clients still connected after %ld ms; closing them",
              daemon_clients(d), d->conf->c.shutdown_timeout);
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

/* fast: SIGTERM/SIGINT, finish what is in flight within shutdown_timeout;
 * otherwise SIGQUIT, wait for every client to leave. */
static void daemon_shutdown(struct daemon *d, bool fast)
{
    if (d->stopping && !fast)
        return;
    log_info("%s shutdown: %zu clients connected", fast ? "fast" : "graceful", daemon_clients(d));
    d->stopping = true;
    notify_stopping();
    for (int i = 0; i < d->nservices; i++)
        service_shutdown(&d->services[i]->service, fast);
    for (struct daemon_svc *v = d->retired; v; v = v->next)
        service_shutdown(&v->service, fast);
    if (fast && d->deadline_timer == 0)
        d->deadline_timer = reactor_timer_add(d->reactor, d->conf->c.shutdown_timeout, daemon_deadline, d);
    if (daemon_clients(d) == 0)
        reactor_stop(d->reactor);
}

/* ---- reload ---- */

/* Whether old (a running listener's address) and new name the same
 * socket: same spec as written, or the same resolved address. */
static bool listen_same(const struct listen_config *old, const struct listen_config *new)
{
    if (old->where.unix_socket || new->where.unix_socket)
        return old->where.unix_socket && new->where.unix_socket &&
               strcmp(old->where.path, new->where.path) == 0;
    if (strcmp(old->spec, new->spec) == 0)
        return true;
    return old->addr_len != 0 && old->addr_len == new->addr_len && memcmp(&old->addr, &new->addr, old->addr_len) == 0;
}

/* The listeners of the service objects a reload replaces or removes: a new
 * object listening on the same address takes a dup of the socket. */
struct reload_pool {
    struct daemon_svc **olds;       /* running objects not kept */
    int nolds;
    struct listener **donors;       /* listeners whose socket was taken */
    int ndonors;                    /* bounded: each listener gives once */
};

static int reload_inherit(void *data, const struct listen_config *lc)
{
    struct reload_pool *p = data;

    for (int i = 0; i < p->nolds; i++) {
        struct service *s = &p->olds[i]->service;
        for (int k = 0; k < s->nlisteners; k++) {
            struct listener *l = &s->listeners[k];
            if (l->fd < 0 || !listen_same(&s->config->listen[k], lc))
                continue;
            for (int j = 0; j < p->ndonors; j++)
                if (p->donors[j] == l)
                    return -1;      /* twice in the new file: the bind reports it */
            int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
            if (fd < 0) {
                log_error_errno("reload: listener %s: cannot duplicate the socket", l->spec);
                return -1;
            }
            p->donors[p->ndonors++] = l;
            return fd;
        }
    }
    return -1;
}

/* The reload loaded without DNS: a new listen address given by name is
 * resolved here (blocking, once; listen names are rare and local). */
static int reload_resolve_listen(struct listen_config *lc, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char port[16];

    if (lc->where.unix_socket || lc->addr_len != 0)
        return PMX_OK;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", lc->where.port);
    int rc = getaddrinfo(lc->where.host[0] ? lc->where.host : NULL, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s: %s", lc->spec, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return PMX_ERR;
    }
    memcpy(&lc->addr, res->ai_addr, res->ai_addrlen);
    lc->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return PMX_OK;
}

/* Appends "what name" items to a one-line summary, cut at whole items. */
static void msg_add(char *msg, size_t len, size_t *used, const char *what, const char *name)
{
    if (*used >= len)
        return;
    int w = snprintf(msg + *used, len - *used, "%s%s %s", *used ? ", " : "", what, name);
    if (w < 0 || (size_t)w >= len - *used)
        msg[*used] = '\0';
    else
        *used += (size_t)w;
}

static struct daemon_svc *daemon_find(const struct daemon *d, const char *name)
{
    for (int i = 0; i < d->nservices; i++)
        if (strcmp(d->services[i]->service.config->name, name) == 0)
            return d->services[i];
    return NULL;
}

static int daemon_reload_apply(struct daemon *d, char *msg, size_t len);

int daemon_reload(struct daemon *d, char *msg, size_t len)
{
    /* systemd: RELOADING=1 then READY=1 around it, applied or refused; a
     * reload before start-up finished is no reload to it. */
    bool ready = d->ready;
    if (ready)
        notify_reloading();
    int rc = daemon_reload_apply(d, msg, len);
    if (ready)
        notify_ready(daemon_status(d));
    return rc;
}

static int daemon_reload_apply(struct daemon *d, char *msg, size_t len)
{
    char err[CONFIG_ERR_MAX], fixed[CONFIG_ERR_MAX];
    struct daemon_conf *fresh = NULL;
    struct daemon_svc **next = NULL;
    bool *kept = NULL;
    struct reload_pool pool = { 0 };
    int n = 0, status = PMX_ERR;
    size_t used = 0;

    msg[0] = '\0';
    if (d->stopping) {
        snprintf(msg, len, "reload refused: shutting down");
        goto out;
    }
    fresh = calloc(1, sizeof(*fresh));
    if (fresh == NULL) {
        snprintf(msg, len, "reload refused: out of memory");
        goto out;
    }
    fresh->refs = 1;
    /* No DNS here, on the loop: target names are resolved by the upstream
     * layer's resolver thread, running listeners keep their addresses. */
    const char *path = d->conf->c.path[0] ? d->conf->c.path : NULL;
    if (config_load_flags(&fresh->c, path, environ, CONFIG_LOAD_NO_DNS, err, sizeof(err)) != PMX_OK) {
        snprintf(msg, len, "reload refused: %s", err);
        free(fresh);
        fresh = NULL;
        goto out;
    }
    n = fresh->c.nservices;
    next = calloc((size_t)n, sizeof(struct daemon_svc *));
    kept = calloc((size_t)PMX_MAX(d->nservices, 1), sizeof(*kept));
    pool.olds = calloc((size_t)PMX_MAX(d->nservices, 1), sizeof(struct daemon_svc *));
    pool.donors = calloc((size_t)PMX_MAX(d->nservices, 1) * CONFIG_MAX_LISTEN, sizeof(struct listener *));
    if (next == NULL || kept == NULL || pool.olds == NULL || pool.donors == NULL) {
        snprintf(msg, len, "reload refused: out of memory");
        goto out;
    }

    /* Kept in place: the same name and no setting that needs a new object. */
    for (int i = 0; i < n; i++) {
        struct service_config *sc = &fresh->c.services[i];
        struct daemon_svc *old = daemon_find(d, sc->name);
        if (old == NULL)
            continue;
        config_service_fixed_changes(old->service.config, sc, fixed, sizeof(fixed));
        if (fixed[0] != '\0') {
            log_info("reload: service %s: %s changed; a new service object takes new clients", sc->name, fixed);
            continue;
        }
        /* Derived values (resolved listen addresses, effective mode) too. */
        config_service_keep_fixed(sc, old->service.config);
        next[i] = old;
        for (int j = 0; j < d->nservices; j++)
            if (d->services[j] == old)
                kept[j] = true;
    }
    for (int j = 0; j < d->nservices; j++)
        if (!kept[j])
            pool.olds[pool.nolds++] = d->services[j];

    /* New objects: open every listener now, so a failure changes nothing. */
    for (int i = 0; i < n; i++) {
        struct service_config *sc = &fresh->c.services[i];
        if (next[i] != NULL)
            continue;
        for (int k = 0; k < sc->nlisten; k++) {
            bool handed = false;
            for (int j = 0; j < pool.nolds && !handed; j++) {
                const struct service_config *oc = pool.olds[j]->service.config;
                for (int m = 0; m < oc->nlisten && !handed; m++) {
                    handed = listen_same(&oc->listen[m], &sc->listen[k]);
                    /* A name left unresolved: the socket's address. */
                    if (handed && sc->listen[k].addr_len == 0) {
                        sc->listen[k].addr = oc->listen[m].addr;
                        sc->listen[k].addr_len = oc->listen[m].addr_len;
                    }
                }
            }
            if (!handed && reload_resolve_listen(&sc->listen[k], err, sizeof(err)) != PMX_OK) {
                snprintf(msg, len, "reload refused: service %s: %s", sc->name, err);
                goto rollback;
            }
        }
        next[i] = svc_create(d, fresh, sc, reload_inherit, &pool, err, sizeof(err));
        if (next[i] == NULL) {
            snprintf(msg, len, "reload refused: %s", err);
            goto rollback;
        }
    }

    /* Services kept in place open their new request logs now, so that a
     * log that cannot be opened refuses the reload. */
    for (int i = 0; i < n; i++) {
        if (next[i]->conf == fresh)
            continue;
        if (service_reload_prepare(&next[i]->service, &fresh->c.services[i], err, sizeof(err)) != PMX_OK) {
            snprintf(msg, len, "reload refused: %s", err);
            for (int k = 0; k < i; k++)
                if (next[k]->conf != fresh)
                    service_reload_abort(&next[k]->service);
            goto rollback;
        }
    }

    /* Commit. */
    if (log_open(fresh->c.log_file) != PMX_OK)
        log_error_errno("reload: cannot open log file %s", fresh->c.log_file);
    log_set_level(fresh->c.log_level);
    log_set_mask_ip(fresh->c.log_mask_ip);
    for (int j = 0; j < pool.ndonors; j++)
        listener_disown(pool.donors[j]);
    struct daemon_conf *old_conf = d->conf;
    d->conf = fresh;
    fresh = NULL;
    for (int j = 0; j < pool.nolds; j++) {
        struct daemon_svc *v = pool.olds[j];
        bool replaced = config_service(&d->conf->c, v->service.config->name) != NULL;
        msg_add(msg, len, &used, replaced ? "replaced" : "removed", v->service.config->name);
        svc_retire(d, v);
    }
    int updated = 0;
    for (int i = 0; i < n; i++) {
        struct daemon_svc *v = next[i];
        if (v->conf == d->conf) {
            if (config_service(&old_conf->c, v->service.config->name) == NULL)
                msg_add(msg, len, &used, "added", v->service.config->name);
            continue;
        }
        service_reload(&v->service, &d->conf->c.services[i]);
        conf_unref(v->conf);
        v->conf = conf_ref(d->conf);
        updated++;
    }
    free(d->services);
    d->services = next;
    d->nservices = n;
    next = NULL;
    conf_unref(old_conf);
    for (int i = 0; i < d->nservices; i++)
        if (d->services[i]->service.upstream == NULL)
            (void)svc_start(d, d->services[i]);
    if (used < len)
        snprintf(msg + used, len - used, "%s%d updated in place", used ? "; " : "", updated);
    status = PMX_OK;
    goto out;

rollback:
    for (int i = 0; i < n; i++) {
        struct daemon_svc *v = next[i];
        if (v == NULL || v->conf != fresh)
            continue;
        for (int k = 0; k < v->service.nlisteners; k++)
            if (v->service.listeners[k].inherited)
                listener_disown(&v->service.listeners[k]);
        svc_free(v);
    }
out:
    if (fresh != NULL)
        conf_unref(fresh);
    free(next);
    free(kept);
    free(pool.olds);
    free(pool.donors);
    if (status == PMX_OK)
        log_info("reloaded configuration%s%s: %s", d->conf->c.path[0] ? " from " : "", d->conf->c.path, msg);
    else
        log_error("%s; keeping the running configuration", msg);
    return status;
}

int daemon_reload_fn(void *data, char *msg, size_t len)
{
    return daemon_reload(data, msg, len);
}

/* ---- binary upgrade ---- */

/* The new process is ready: its listening sockets are the same as ours,
 * so closing ours must not remove a unix socket's file. */
static void daemon_upgraded(void *data)
{
    struct daemon *d = data;

    for (int i = 0; i < d->nservices; i++)
        for (int k = 0; k < d->services[i]->service.nlisteners; k++)
            listener_disown(&d->services[i]->service.listeners[k]);
    /* The new process is the service's main process now (it sent
     * MAINPID=): this one's exit is no stop of the service. */
    notify_close();
    daemon_shutdown(d, false);
}

/* SIGUSR2: hand every listening socket to a new process of the binary. */
static void daemon_upgrade(struct daemon *d)
{
    struct upgrade_listener *ls = calloc((size_t)PMX_MAX(d->nservices, 1) * CONFIG_MAX_LISTEN, sizeof(*ls));
    char err[256];
    int n = 0;

    if (d->stopping) {
        log_error("upgrade refused: shutting down");
        free(ls);
        return;
    }
    if (ls == NULL) {
        log_error("upgrade refused: out of memory; this process keeps serving");
        return;
    }
    for (int i = 0; i < d->nservices; i++) {
        struct service *s = &d->services[i]->service;
        for (int k = 0; k < s->nlisteners; k++) {
            if (s->listeners[k].fd < 0)
                continue;
            ls[n].fd = s->listeners[k].fd;
            ls[n].spec = s->config->listen[k].spec;
            n++;
        }
    }
    if (upgrade_start(d->reactor, d->argv, ls, n, daemon_upgraded, d, err, sizeof(err)) != PMX_OK)
        log_error("upgrade refused: %s; this process keeps serving", err);
    free(ls);
}

static void daemon_signal(int signo, void *data)
{
    struct daemon *d = data;
    char msg[512];

    switch (signo) {
    case SIGTERM:
    case SIGINT:
        log_info("received %s", signo == SIGTERM ? "SIGTERM" : "SIGINT");
        daemon_shutdown(d, true);
        break;
    case SIGQUIT:
        log_info("received SIGQUIT");
        daemon_shutdown(d, false);
        break;
    case SIGHUP:
        log_info("received SIGHUP");
        (void)daemon_reload(d, msg, sizeof(msg));
        break;
    case SIGUSR2:
        log_info("received SIGUSR2");
        daemon_upgrade(d);
        break;
    default:
        break;
    }
}

/* ---- the admin API's view of the daemon ---- */

static struct service *const *daemon_admin_services(void *data, int *n)
{
    struct daemon *d = data;

    if (d->nview < d->nservices) {
        struct service **view = realloc(d->view, (size_t)d->nservices * sizeof(struct service *));
        if (view == NULL) {
            *n = 0;
            return NULL;
        }
        d->view = view;
        d->nview = d->nservices;
    }
    for (int i = 0; i < d->nservices; i++)
        d->view[i] = &d->services[i]->service;
    *n = d->nservices;
    return d->view;
}

static const struct config *daemon_admin_config(void *data)
{
    return &((struct daemon *)data)->conf->c;
}

static bool daemon_admin_reload(void *data, char *msg, size_t msglen)
{
    log_info("reload asked through the admin API");
    return daemon_reload(data, msg, msglen) == PMX_OK;
}

static long daemon_janitor(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    for (int i = 0; i < d->nservices; i++)
        service_tick(&d->services[i]->service);
    for (struct daemon_svc *v = d->retired; v; v = v->next)
        service_tick(&v->service);
    upgrade_tick();
    if (d->ready)
        notify_status(daemon_status(d));
    return EXCHANGE_TICK_MS;
}

struct daemon *daemon_create(struct config *c, char **argv, char *err, size_t errlen)
{
    struct daemon *d = calloc(1, sizeof(*d));
    struct daemon_conf *dc = calloc(1, sizeof(*dc));

    if (d == NULL || dc == NULL) {
        snprintf(err, errlen, "out of memory");
        free(d);
        free(dc);
        config_free(c);
        free(c);
        return NULL;
    }
    /* The configuration moves into its counted holder. */
    dc->c = *c;
    dc->refs = 1;
    free(c);
    d->conf = dc;
    d->argv = argv;
    d->services = calloc((size_t)PMX_MAX(dc->c.nservices, 1), sizeof(struct daemon_svc *));
    if (d->services == NULL) {
        snprintf(err, errlen, "out of memory");
        daemon_destroy(d);
        return NULL;
    }
    /* Started by a binary upgrade: the old process's sockets are taken
     * rather than bound again. */
    upgrade_init();
    activation_init();
    for (int i = 0; i < dc->c.nservices; i++) {
        d->services[i] = svc_create(d, dc, &dc->c.services[i], upgrade_inherit, NULL, err, errlen);
        if (d->services[i] == NULL) {
            upgrade_inherit_done();
            daemon_destroy(d);
            return NULL;
        }
        d->nservices++;
    }
    upgrade_inherit_done();
    activation_close_unused();
    return d;
}

int daemon_run(struct daemon *d)
{
    d->reactor = reactor_create(1024);
    if (d->reactor == NULL) {
        fprintf(stderr, "proximux: cannot create the event loop: %s\n", strerror(errno));
        return 1;
    }
    if (signals_init(d->reactor, daemon_signal, d) != PMX_OK) {
        fprintf(stderr, "proximux: cannot set up signals: %s\n", strerror(errno));
        return 1;
    }
    notify_init(d->reactor);
    d->resolver = resolver_create(d->reactor);
    if (d->resolver == NULL) {
        fprintf(stderr, "proximux: cannot create the resolver: %s\n", strerror(errno));
        return 1;
    }
    log_info("proximux %s starting: %d service%s", PMX_VERSION, d->nservices, d->nservices == 1 ? "" : "s");
    for (int i = 0; i < d->nservices; i++)
        if (svc_start(d, d->services[i]) != PMX_OK)
            return 1;
    if (d->conf->c.admin_listen[0] != '\0') {
        char err[256];
        struct admin_hooks hooks = { daemon_admin_services, daemon_admin_config, daemon_admin_reload, d };
        d->admin = admin_start(d->reactor, d->conf->c.admin_listen, &hooks, err, sizeof(err));
        if (d->admin == NULL) {
            fprintf(stderr, "proximux: %s\n", err);
            return 2;
        }
    }
    if (reactor_timer_add(d->reactor, EXCHANGE_TICK_MS, daemon_janitor, d) < 0) {
        fprintf(stderr, "proximux: out of memory\n");
        return 1;
    }
    if (reactor_run(d->reactor) != PMX_OK) {
        log_error_errno("epoll_wait");
        return 1;
    }
    log_info("exiting");
    notify_stopping();
    return 0;
}

void daemon_destroy(struct daemon *d)
{
    admin_stop(d->admin);
    free(d->view);
    for (int i = 0; i < d->nservices; i++)
        svc_free(d->services[i]);
    free(d->services);
    while (d->retired) {
        struct daemon_svc *v = d->retired;
        d->retired = v->next;
        svc_free(v);
    }
    if (d->resolver)
        resolver_destroy(d->resolver);
    if (d->reactor) {
        upgrade_close(d->reactor);
        signals_close(d->reactor);
        reactor_destroy(d->reactor);
    }
    conf_unref(d->conf);
    free(d);
}
