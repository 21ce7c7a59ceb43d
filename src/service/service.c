/* A service ties its listeners to its exchange: listeners accept once the
 * exchange is ready (after warmup), pause together when the service is out
 * of file descriptors, and hear when a client slot frees. */
#include <stdio.h>
#include <string.h>

#include "activation.h"
#include "codec.h"
#include "log.h"
#include "request_log.h"
#include "script.h"
#include "service.h"
#include "upstream.h"

/* The listen setting as the user wrote it, for error messages; list items
 * are counted from 1, as in the configuration's own messages. */
static void service_listen_name(const struct config *all, const struct service_config *cfg, int i,
                                char *out, size_t n)
{
    int index = (int)(cfg - all->services);

    if (all->nservices == 1 && strcmp(cfg->name, "default") == 0)
        snprintf(out, n, cfg->nlisten == 1 ? "LOCAL_HOST/LOCAL_PORT" : "listen[%d]", i + 1);
    else
        snprintf(out, n, "services[%d].listen[%d] (service %s)", index + 1, i + 1, cfg->name);
}

int service_open(struct service *s, const struct config *all, const struct service_config *cfg,
                 char *err, size_t errlen)
{
    return service_open_with(s, all, cfg, NULL, NULL, err, errlen);
}

int service_open_with(struct service *s, const struct config *all, const struct service_config *cfg,
                      service_inherit_fn inherit, void *data, char *err, size_t errlen)
{
    char why[CONFIG_ERR_MAX], name[128];

    memset(s, 0, sizeof(*s));
    s->config = cfg;
    for (int i = 0; i < cfg->nlisten; i++) {
        /* A socket handed over (reload, binary upgrade) or inherited from
         * systemd (socket activation) for this address is used as is. */
        int fd = inherit != NULL ? inherit(data, &cfg->listen[i]) : -1;
        if (fd >= 0) {
            listener_adopt(&s->listeners[i], &cfg->listen[i], fd);
            s->nlisteners++;
            continue;
        }
        fd = activation_take(&cfg->listen[i], cfg->name);
        if (fd >= 0) {
            listener_adopt(&s->listeners[i], &cfg->listen[i], fd);
            listener_disown(&s->listeners[i]);      /* its file is systemd's */
            s->nlisteners++;
            continue;
        }
        if (listener_open(&s->listeners[i], &cfg->listen[i], cfg->ipv6_only, cfg->listen_mode,
                          why, sizeof(why)) != PMX_OK) {
            service_listen_name(all, cfg, i, name, sizeof(name));
            snprintf(err, errlen, "%s: %s", name, why);
            for (int k = 0; k < i; k++) {
                /* An inherited socket's file belongs to its owner still. */
                if (s->listeners[k].inherited)
                    listener_disown(&s->listeners[k]);
                listener_close(&s->listeners[k]);
            }
            return PMX_ERR;
        }
        s->nlisteners++;
    }
    if (cfg->request_log.file[0] != '\0') {
        s->request_log = request_log_open(&cfg->request_log, why, sizeof(why));
        if (s->request_log == NULL) {
            if (all->nservices == 1 && strcmp(cfg->name, "default") == 0)
                snprintf(err, errlen, "%s", why);
            else
                snprintf(err, errlen, "service %s: %s", cfg->name, why);
            for (int k = 0; k < s->nlisteners; k++) {
                if (s->listeners[k].inherited)
                    listener_disown(&s->listeners[k]);
                listener_close(&s->listeners[k]);
            }
            return PMX_ERR;
        }
    }
    return PMX_OK;
}

static void service_on_ready(struct exchange *x)
{
    struct service *s = x->owner;

    if (s->stopping || s->accepting)
        return;
    for (int i = 0; i < s->nlisteners; i++) {
        if (listener_start(&s->listeners[i], x->reactor, x) != PMX_OK) {
            log_error_errno("service %s: listener %s: epoll", s->config->name, s->listeners[i].spec);
            if (s->on_fatal)
                s->on_fatal(s);
            return;
        }
        log_info("service %s: accepting clients on %s (%s mode, %s codec)", s->config->name,
                 s->listeners[i].spec, x->ops->name, x->codec->name);
    }
    s->accepting = true;
    if (s->on_accepting)
        s->on_accepting(s);
}

static void service_on_idle(struct exchange *x)
{
    struct service *s = x->owner;

    if (s->on_idle)
        s->on_idle(s);
}

static void service_on_client_removed(struct exchange *x)
{
    struct service *s = x->owner;

    if (!s->accepting)
        return;
    for (int i = 0; i < s->nlisteners; i++)
        listener_slot_freed(&s->listeners[i]);
}

static void service_on_out_of_fds(struct exchange *x)
{
    struct service *s = x->owner;

    for (int i = 0; i < s->nlisteners; i++)
        listener_pause(&s->listeners[i]);
}

static void service_on_target_up(void *data)
{
    struct service *s = data;

    if (s->exchange.priv != NULL && s->exchange.ops->target_up != NULL)
        s->exchange.ops->target_up(&s->exchange);
}

/* A target went down or came up: the Lua on_event hook. */
static void service_on_target_event(void *data, const char *event, const char *target, const char *reason)
{
    struct service *s = data;

    script_event(s->exchange.script, event, s->config->name, target, reason);
}

/* Loads cfg's script (none: NULL). Returns PMX_ERR, logged, when it does
 * not load (the file changed since the configuration was checked). */
static int service_load_script(const struct service_config *cfg, struct script **out)
{
    char why[CONFIG_ERR_MAX];

    *out = NULL;
    if (cfg->script[0] == '\0')
        return PMX_OK;
    *out = script_load(cfg->script, cfg->name, why, sizeof(why));
    if (*out == NULL) {
        log_error("service %s: script: %s", cfg->name, why);
        return PMX_ERR;
    }
    return PMX_OK;
}

int service_start(struct service *s, struct reactor *r, struct resolver *rs)
{
    const struct service_config *cfg = s->config;
    struct upstream_owner owner = {
        .target_up = service_on_target_up,
        .target_event = service_on_target_event,
        .data = s,
        .connect_latency = cfg->effective_mode == MODE_PROXY,
    };

    s->upstream = upstream_create(r, rs, cfg, &owner);
    if (s->upstream == NULL)
        return PMX_ERR;
    exchange_init(&s->exchange, r, cfg);
    s->exchange.upstream = s->upstream;
    s->exchange.request_log = s->request_log;
    s->exchange.owner = s;
    s->exchange.on_ready = service_on_ready;
    s->exchange.on_idle = service_on_idle;
    s->exchange.on_client_removed = service_on_client_removed;
    s->exchange.on_out_of_fds = service_on_out_of_fds;
    if (service_load_script(cfg, &s->exchange.script) != PMX_OK)
        return PMX_ERR;
    log_info("service %s: %s mode, %s codec, %d upstream connection%s, %d target%s", cfg->name,
             s->exchange.ops->name, s->exchange.codec->name, cfg->connections, cfg->connections == 1 ? "" : "s",
             cfg->ntargets, cfg->ntargets == 1 ? "" : "s");
    return s->exchange.ops->start(&s->exchange);
}

void service_tick(struct service *s)
{
    if (s->upstream != NULL)
        upstream_tick(s->upstream);
    if (s->exchange.priv != NULL)
        s->exchange.ops->tick(&s->exchange);
}

void service_shutdown(struct service *s, bool fast)
{
    s->stopping = true;
    s->accepting = false;
    for (int i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    if (s->upstream != NULL)
        upstream_stop(s->upstream);
    if (s->exchange.priv != NULL)
        s->exchange.ops->shutdown(&s->exchange, fast);
}

int service_reload_prepare(struct service *s, const struct service_config *cfg, char *err, size_t errlen)
{
    char why[CONFIG_ERR_MAX];

    s->next_request_log = NULL;
    if (cfg->request_log.file[0] == '\0')
        return PMX_OK;
    s->next_request_log = request_log_open(&cfg->request_log, why, sizeof(why));
    if (s->next_request_log == NULL) {
        snprintf(err, errlen, "service %s: %s", cfg->name, why);
        return PMX_ERR;
    }
    return PMX_OK;
}

void service_reload_abort(struct service *s)
{
    request_log_close(s->next_request_log);
    s->next_request_log = NULL;
}

void service_reload(struct service *s, const struct service_config *cfg)
{
    struct script *fresh;

    /* What is buffered goes to the old file; new records to the new one. */
    s->request_log_dropped += request_log_dropped(s->request_log);
    request_log_close(s->request_log);
    s->request_log = s->next_request_log;
    s->next_request_log = NULL;
    s->exchange.request_log = s->request_log;
    s->config = cfg;
    s->exchange.config = cfg;
    /* New clients get the script as the file is now; connected ones keep
     * the state they started with (their reference). */
    if (service_load_script(cfg, &fresh) == PMX_OK) {
        script_unref(s->exchange.script);
        s->exchange.script = fresh;
    } else {
        log_error("service %s: reload: keeping the running script", cfg->name);
    }
    if (s->upstream != NULL && upstream_reload(s->upstream, cfg) != PMX_OK)
        log_error("service %s: reload: out of memory; keeping the running targets", cfg->name);
    if (s->exchange.priv != NULL)
        s->exchange.ops->reload(&s->exchange);
}

uint64_t service_request_log_dropped(const struct service *s)
{
    return s->request_log_dropped + request_log_dropped(s->request_log);
}

size_t service_clients(const struct service *s)
{
    return s->exchange.nclients;
}

void service_close(struct service *s)
{
    for (int i = 0; i < s->nlisteners; i++)
        listener_close(&s->listeners[i]);
    s->nlisteners = 0;
    if (s->exchange.ops != NULL && s->exchange.priv != NULL)
        s->exchange.ops->destroy(&s->exchange);
    upstream_destroy(s->upstream);
    s->upstream = NULL;
    request_log_close(s->request_log);
    s->request_log = NULL;
    s->exchange.request_log = NULL;
    script_unref(s->exchange.script);
    s->exchange.script = NULL;
}
