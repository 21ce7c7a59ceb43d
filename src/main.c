/* proximux: command line, start-up, signals (shutdown and reload) and the
 * janitor timer around one reactor. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>

#include "codec.h"
#include "config.h"
#include "exchange.h"
#include "listener.h"
#include "log.h"
#include "reactor.h"
#include "signals.h"

#define EXIT_CONFIG 2

extern char **environ;

struct daemon {
    struct reactor *reactor;
    struct config *config;          /* the global settings; its one service runs */
    struct listener listener;
    struct exchange exchange;
    bool accepting;
    bool stopping;
    long long deadline_timer;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: proximux [-c FILE] [-t] [-V] [-h]\n"
            "  -c FILE  YAML configuration (also PROXIMUX_CONFIG); environment variables override it\n"
            "  -t       check the configuration, print it with the mode chosen, and exit\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n"
            "Without -c, the configuration comes from environment variables alone\n"
            "(LOCAL_PORT, PROXY_CONNECTIONS_CNT, TARGET_HOST_1, TARGET_PORT_1, ...; see README.md).\n");
}

/* The service that runs: the only one (more are refused at start). */
static const struct service_config *daemon_service(const struct daemon *d)
{
    return &d->config->services[0];
}

/* Frees a configuration that config_load() filled. */
static void daemon_config_free(struct config *c)
{
    config_free(c);
    free(c);
}

static void daemon_on_ready(struct exchange *x)
{
    struct daemon *d = x->owner;

    if (d->stopping || d->accepting)
        return;
    if (listener_start(&d->listener, d->reactor, x) != PMX_OK) {
        log_error_errno("listener: epoll");
        reactor_stop(d->reactor);
        return;
    }
    d->accepting = true;
    log_info("accepting clients on %s (%s mode, %s codec)", daemon_service(d)->listen[0].spec,
             x->ops->name, x->codec->name);
}

static void daemon_on_idle(struct exchange *x)
{
    struct daemon *d = x->owner;

    if (d->stopping) {
        log_info("all clients have left; exiting");
        reactor_stop(d->reactor);
    }
}

static void daemon_on_client_removed(struct exchange *x)
{
    struct daemon *d = x->owner;

    if (d->accepting)
        listener_slot_freed(&d->listener);
}

static void daemon_on_out_of_fds(struct exchange *x)
{
    struct daemon *d = x->owner;

    listener_pause(&d->listener);
}

static long daemon_deadline(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    log_error("shutdown: %zu clients still connected after %ld ms; closing them",
              d->exchange.nclients, d->config->shutdown_timeout);
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

/* fast: SIGTERM/SIGINT, finish what is in flight within shutdown_timeout;
 * otherwise SIGQUIT, wait for every client to leave. */
static void daemon_shutdown(struct daemon *d, bool fast)
{
    if (d->stopping && !fast)
        return;
    log_info("%s shutdown: %zu clients connected", fast ? "fast" : "graceful", d->exchange.nclients);
    d->stopping = true;
    listener_close(&d->listener);
    d->accepting = false;
    d->exchange.ops->shutdown(&d->exchange, fast);
    if (fast && d->deadline_timer == 0)
        d->deadline_timer = reactor_timer_add(d->reactor, d->config->shutdown_timeout, daemon_deadline, d);
    if (d->exchange.nclients == 0)
        reactor_stop(d->reactor);
}

/* SIGHUP: read the configuration again from the same sources. Invalid
 * configurations are refused and the running one is kept. */
static void daemon_reload(struct daemon *d)
{
    char err[CONFIG_ERR_MAX];
    char fixed[CONFIG_ERR_MAX];
    struct config *fresh = calloc(1, sizeof(*fresh));

    if (fresh == NULL) {
        log_error("reload: out of memory; keeping the running configuration");
        return;
    }
    if (config_load(fresh, d->config->path[0] ? d->config->path : NULL, environ, err, sizeof(err)) != PMX_OK) {
        log_error("reload: %s; keeping the running configuration", err);
        free(fresh);
        return;
    }
    if (fresh->nservices > 1) {
        log_error("reload: services: running more than one service is not built yet; "
                  "keeping the running configuration");
        daemon_config_free(fresh);
        return;
    }
    config_service_fixed_changes(daemon_service(d), &fresh->services[0], fixed, sizeof(fixed));
    if (fixed[0] != '\0')
        log_error("reload: %s changed but only take effect on restart", fixed);
    /* Settings that need a restart keep their running values, so that
     * everything reading the configuration sees one consistent picture. */
    config_service_keep_fixed(&fresh->services[0], daemon_service(d));

    if (log_open(fresh->log_file) != PMX_OK)
        log_error_errno("reload: cannot open log file %s", fresh->log_file);
    log_set_level(fresh->log_level);

    struct config *old = d->config;
    d->config = fresh;
    d->exchange.config = daemon_service(d);
    d->exchange.ops->reload(&d->exchange);
    daemon_config_free(old);
    log_info("reloaded configuration%s%s", fresh->path[0] ? " from " : "", fresh->path);
}

static void daemon_signal(int signo, void *data)
{
    struct daemon *d = data;

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
        daemon_reload(d);
        break;
    default:
        break;
    }
}

static long daemon_janitor(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    d->exchange.ops->tick(&d->exchange);
    return EXCHANGE_TICK_MS;
}

/* Room for every client plus its upstream: raise the soft fd limit to the
 * hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *path = getenv("PROXIMUX_CONFIG");
    bool check_only = false;
    char err[CONFIG_ERR_MAX];
    int opt;

    while ((opt = getopt(argc, argv, "c:tVh")) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'V':
            printf("proximux %s\n", PMX_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "proximux: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return EXIT_CONFIG;
    }

    struct daemon d;
    memset(&d, 0, sizeof(d));
    d.config = calloc(1, sizeof(*d.config));
    if (d.config == NULL) {
        fprintf(stderr, "proximux: out of memory\n");
        return 1;
    }
    if (config_load(d.config, path && path[0] ? path : NULL, environ, err, sizeof(err)) != PMX_OK) {
        fprintf(stderr, "proximux: %s\n", err);
        free(d.config);
        return EXIT_CONFIG;
    }
    if (check_only) {
        config_dump(d.config, stdout);
        printf("configuration OK\n");
        daemon_config_free(d.config);
        return 0;
    }
    /* The runtime serves one service on one TCP address for now. */
    const char *not_yet = NULL;
    if (d.config->nservices > 1)
        not_yet = "services: running more than one service is not built yet";
    else if (daemon_service(&d)->nlisten > 1 || daemon_service(&d)->listen[0].where.unix_socket)
        not_yet = "listen: unix sockets and more than one listen address are not built yet";
    if (not_yet != NULL) {
        fprintf(stderr, "proximux: %s\n", not_yet);
        daemon_config_free(d.config);
        return EXIT_CONFIG;
    }

    log_set_level(d.config->log_level);
    if (log_open(d.config->log_file) != PMX_OK) {
        fprintf(stderr, "proximux: LOG_FILE: \"%s\" cannot be opened: %s\n", d.config->log_file, strerror(errno));
        daemon_config_free(d.config);
        return EXIT_CONFIG;
    }
    if (listener_open(&d.listener, daemon_service(&d), err, sizeof(err)) != PMX_OK) {
        fprintf(stderr, "proximux: %s\n", err);
        daemon_config_free(d.config);
        return EXIT_CONFIG;
    }
    raise_fd_limit();
    /* Buffers come and go with every burst of requests; glibc's default
     * trims the heap top as soon as 128 KiB are free, which cost one brk()
     * for every two requests under load. Keep a few MiB instead. */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    mallopt(M_TOP_PAD, 1 << 20);

    int status = 1;
    d.reactor = reactor_create(1024);
    if (d.reactor == NULL) {
        fprintf(stderr, "proximux: cannot create the event loop: %s\n", strerror(errno));
        goto out;
    }
    if (signals_init(d.reactor, daemon_signal, &d) != PMX_OK) {
        fprintf(stderr, "proximux: cannot set up signals: %s\n", strerror(errno));
        goto out;
    }
    exchange_init(&d.exchange, d.reactor, daemon_service(&d));
    d.exchange.owner = &d;
    d.exchange.on_ready = daemon_on_ready;
    d.exchange.on_idle = daemon_on_idle;
    d.exchange.on_client_removed = daemon_on_client_removed;
    d.exchange.on_out_of_fds = daemon_on_out_of_fds;
    log_info("proximux %s starting: %s mode, %s codec, %d upstream connection%s, %d target%s",
             PMX_VERSION, d.exchange.ops->name, d.exchange.codec->name, daemon_service(&d)->connections,
             daemon_service(&d)->connections == 1 ? "" : "s", daemon_service(&d)->ntargets,
             daemon_service(&d)->ntargets == 1 ? "" : "s");
    if (d.exchange.ops->start(&d.exchange) != PMX_OK) {
        fprintf(stderr, "proximux: cannot start the %s exchange: out of memory\n", d.exchange.ops->name);
        goto out;
    }
    if (reactor_timer_add(d.reactor, EXCHANGE_TICK_MS, daemon_janitor, &d) < 0) {
        fprintf(stderr, "proximux: out of memory\n");
        goto out;
    }
    if (reactor_run(d.reactor) != PMX_OK)
        log_error_errno("epoll_wait");
    else
        status = 0;
    log_info("exiting");
out:
    listener_close(&d.listener);
    if (d.exchange.ops && d.exchange.priv)
        d.exchange.ops->destroy(&d.exchange);
    if (d.reactor) {
        signals_close(d.reactor);
        reactor_destroy(d.reactor);
    }
    daemon_config_free(d.config);
    return status;
}
