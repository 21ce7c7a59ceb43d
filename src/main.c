/* proximux: command line and start-up; the daemon (services, signals,
 * reload, upgrade) is src/service/daemon.c. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>

#include "config.h"
#include "daemon.h"
#include "log.h"

#define EXIT_CONFIG 2

extern char **environ;

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
static void main_config_free(struct config *c)
{
    config_free(c);
    free(c);
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

    struct config *config = calloc(1, sizeof(*config));
    if (config == NULL) {
        fprintf(stderr, "proximux: out of memory\n");
        return 1;
    }
    if (config_load(config, path && path[0] ? path : NULL, environ, err, sizeof(err)) != PMX_OK) {
        fprintf(stderr, "proximux: %s\n", err);
        free(config);
        return EXIT_CONFIG;
    }
    if (check_only) {
        config_dump(config, stdout);
        printf("configuration OK\n");
        main_config_free(config);
        return 0;
    }
    log_set_level(config->log_level);
    log_set_mask_ip(config->log_mask_ip);
    if (log_open(config->log_file) != PMX_OK) {
        fprintf(stderr, "proximux: LOG_FILE: \"%s\" cannot be opened: %s\n", config->log_file, strerror(errno));
        main_config_free(config);
        return EXIT_CONFIG;
    }
    struct daemon *d = daemon_create(config, argv, err, sizeof(err));
    if (d == NULL) {
        fprintf(stderr, "proximux: %s\n", err);
        return EXIT_CONFIG;
    }
    raise_fd_limit();
    /* Buffers come and go with every burst of requests; glibc's default
     * trims the heap top as soon as 128 KiB are free, which cost one brk()
     * for every two requests under load. Keep a few MiB instead. */
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
    mallopt(M_TOP_PAD, 1 << 20);

    int status = daemon_run(d);
    daemon_destroy(d);
    return status;
}
