/* proximux: command line, start-up, signals (shutdown and reload) and the
 * janitor timer, around one reactor that runs every service. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>

#include "admin.h"
#include "codec.h"
#include "config.h"
#include "exchange.h"
#include "service.h"
#include "log.h"
#include "reactor.h"
#include "resolver.h"
#include "signals.h"

#define EXIT_CONFIG 2

extern char **environ;

struct daemon {
    struct reactor *reactor;
    struct resolver *resolver;      /* target names, off the loop */
    struct config *config;          /* the global settings and every service's */
    struct service *services;       /* config->nservices, in the file's order */
    int nservices;
    bool stopping;
    long long deadline_timer;
    struct admin *admin;            /* the admin API, when admin.listen is set */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: proximux [-c FILE] [-t] [-V] [-h]\n"
            "  -c FILE  YAML configuration (also PROXIMUX_CONFIG); environment variables override it\n"
            "  -t       check the configuration, print it with the mode of every service, and exit\n"
            "  -V       print the version and exit\n"
            "  -h       print this help and exit\n"
            "Without -c, the configuration comes from environment variables alone\n"
            "(LOCAL_PORT, PROXY_CONNECTIONS_CNT, TARGET_HOST_1, TARGET_PORT_1, ...; see README.md).\n");
}

/* Frees a configuration that config_load() filled. */
static void daemon_config_free(struct config *c)
{
    config_free(c);
    free(c);
}

static size_t daemon_clients(const struct daemon *d)
{
    size_t n = 0;

    for (int i = 0; i < d->nservices; i++)
        n += service_clients(&d->services[i]);
    return n;
}

static void daemon_on_idle(struct service *s)
{
    struct daemon *d = s->owner;

    if (d->stopping && daemon_clients(d) == 0) {
        log_info("all clients have left; exiting");
        reactor_stop(d->reactor);
    }
}

static void daemon_on_fatal(struct service *s)
{
    struct daemon *d = s->owner;

    reactor_stop(d->reactor);
}

static long daemon_deadline(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    log_error("shutdown: %zu clients still connected after %ld ms; closing them",
              daemon_clients(d), d->config->shutdown_timeout);
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
    for (int i = 0; i < d->nservices; i++)
        service_shutdown(&d->services[i], fast);
    if (fast && d->deadline_timer == 0)
        d->deadline_timer = reactor_timer_add(d->reactor, d->config->shutdown_timeout, daemon_deadline, d);
    if (daemon_clients(d) == 0)
        reactor_stop(d->reactor);
}

/* Whether fresh has the same services, by name and in the same order, as
 * the running configuration. */
static bool daemon_same_services(const struct daemon *d, const struct config *fresh)
{
    if (fresh->nservices != d->nservices)
        return false;
    for (int i = 0; i < fresh->nservices; i++)
        if (strcmp(fresh->services[i].name, d->services[i].config->name) != 0)
            return false;
    return true;
}

/* SIGHUP: read the configuration again from the same sources. Invalid
 * configurations are refused and the running one is kept. Each service
 * takes its reloadable settings; settings that need a restart keep their
 * running values and are logged. */
static void daemon_reload(struct daemon *d)
{
    char err[CONFIG_ERR_MAX];
    char fixed[CONFIG_ERR_MAX];
    struct config *fresh = calloc(1, sizeof(*fresh));

    if (fresh == NULL) {
        log_error("reload: out of memory; keeping the running configuration");
        return;
    }
    /* No DNS here, on the loop: target names are resolved by the upstream
     * layer's resolver thread, listeners keep their addresses. */
    if (config_load_flags(fresh, d->config->path[0] ? d->config->path : NULL, environ, CONFIG_LOAD_NO_DNS,
                          err, sizeof(err)) != PMX_OK) {
        log_error("reload: %s; keeping the running configuration", err);
        free(fresh);
        return;
    }
    if (!daemon_same_services(d, fresh)) {
        log_error("reload: services were added, removed or renamed; that takes effect on restart; "
                  "keeping the running configuration");
        daemon_config_free(fresh);
        return;
    }
    for (int i = 0; i < d->nservices; i++) {
        struct service_config *sc = &fresh->services[i];
        config_service_fixed_changes(d->services[i].config, sc, fixed, sizeof(fixed));
        if (fixed[0] != '\0')
            log_error("reload: service %s: %s changed but only take effect on restart", sc->name, fixed);
        /* Settings that need a restart keep their running values, so that
         * everything reading the configuration sees one consistent picture. */
        config_service_keep_fixed(sc, d->services[i].config);
    }

    if (log_open(fresh->log_file) != PMX_OK)
        log_error_errno("reload: cannot open log file %s", fresh->log_file);
    log_set_level(fresh->log_level);

    struct config *old = d->config;
    d->config = fresh;
    for (int i = 0; i < d->nservices; i++)
        service_reload(&d->services[i], &fresh->services[i]);
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

/* ---- the admin API's view of the daemon ---- */

static struct service *daemon_admin_services(void *data, int *n)
{
    struct daemon *d = data;

    *n = d->nservices;
    return d->services;
}

static const struct config *daemon_admin_config(void *data)
{
    return ((struct daemon *)data)->config;
}

static bool daemon_admin_reload(void *data, char *msg, size_t msglen)
{
    struct daemon *d = data;

    log_info("reload asked through the admin API");
    daemon_reload(d);
    snprintf(msg, msglen, "reload done: see the log for what changed or why it was refused");
    return true;
}

static long daemon_janitor(struct reactor *r, long long id, void *data)
{
    struct daemon *d = data;

    for (int i = 0; i < d->nservices; i++)
        service_tick(&d->services[i]);
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
    log_set_level(d.config->log_level);
    if (log_open(d.config->log_file) != PMX_OK) {
        fprintf(stderr, "proximux: LOG_FILE: \"%s\" cannot be opened: %s\n", d.config->log_file, strerror(errno));
        daemon_config_free(d.config);
        return EXIT_CONFIG;
    }
    d.services = calloc((size_t)d.config->nservices, sizeof(*d.services));
    if (d.services == NULL) {
        fprintf(stderr, "proximux: out of memory\n");
        daemon_config_free(d.config);
        return 1;
    }
    for (int i = 0; i < d.config->nservices; i++) {
        if (service_open(&d.services[i], d.config, &d.config->services[i], err, sizeof(err)) != PMX_OK) {
            fprintf(stderr, "proximux: %s\n", err);
            for (int k = 0; k < d.nservices; k++)
                service_close(&d.services[k]);
            free(d.services);
            daemon_config_free(d.config);
            return EXIT_CONFIG;
        }
        d.services[i].owner = &d;
        d.services[i].on_idle = daemon_on_idle;
        d.services[i].on_fatal = daemon_on_fatal;
        d.nservices++;
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
    d.resolver = resolver_create(d.reactor);
    if (d.resolver == NULL) {
        fprintf(stderr, "proximux: cannot create the resolver: %s\n", strerror(errno));
        goto out;
    }
    log_info("proximux %s starting: %d service%s", PMX_VERSION, d.nservices, d.nservices == 1 ? "" : "s");
    for (int i = 0; i < d.nservices; i++) {
        if (service_start(&d.services[i], d.reactor, d.resolver) != PMX_OK) {
            fprintf(stderr, "proximux: service %s: cannot start: out of memory\n", d.services[i].config->name);
            goto out;
        }
    }
    if (d.config->admin_listen[0] != '\0') {
        struct admin_hooks hooks = { daemon_admin_services, daemon_admin_config, daemon_admin_reload, &d };
        d.admin = admin_start(d.reactor, d.config->admin_listen, &hooks, err, sizeof(err));
        if (d.admin == NULL) {
            fprintf(stderr, "proximux: %s\n", err);
            status = EXIT_CONFIG;
            goto out;
        }
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
    admin_stop(d.admin);
    for (int i = 0; i < d.nservices; i++)
        service_close(&d.services[i]);
    free(d.services);
    if (d.resolver)
        resolver_destroy(d.resolver);
    if (d.reactor) {
        signals_close(d.reactor);
        reactor_destroy(d.reactor);
    }
    daemon_config_free(d.config);
    return status;
}
