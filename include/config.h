/* The configuration: one table of settings drives the YAML and environment
 * front ends, validation, the -t dump and SIGHUP reload. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include "pmx.h"

enum exchange_mode {
    MODE_AUTO = 0,
    MODE_PROXY,
    MODE_FIFO,
    MODE_FUNNEL,
};

#define CONFIG_HOST_MAX 256
#define CONFIG_PATH_MAX 4096
#define CONFIG_CODEC_MAX 16
#define CONFIG_MAX_TARGETS 256
#define CONFIG_ERR_MAX 512

struct target_config {
    char host[CONFIG_HOST_MAX];
    int port;
    bool keep_alive;
    /* Resolved by config_load() (getaddrinfo, first result). */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct config {
    int log_level;                      /* LOG_LEVEL, log_level: 0..3 */
    char log_file[CONFIG_PATH_MAX];     /* LOG_FILE, log_file: "" = stderr */

    char local_host[CONFIG_HOST_MAX];   /* LOCAL_HOST, local.host */
    int local_port;                     /* LOCAL_PORT, local.port: required */
    bool ipv6_only;                     /* LOCAL_IPV6_ONLY, local.ipv6_only */
    long max_connections;               /* LOCAL_MAX_CONNECTIONS, local.max_connections: -1 or >= 1 */
    long max_wait;                      /* LOCAL_MAX_WAIT, local.max_wait: ms a client waits for a free slot; 0 refuse at once */
    long buffer_size;                   /* LOCAL_BUFFER_SIZE, local.buffer_size: bytes per direction */
    long output_limit;                  /* LOCAL_OUTPUT_LIMIT, local.output_limit: bytes queued to one client */

    enum exchange_mode mode;            /* EXCHANGE_MODE, exchange.mode: as configured */
    char codec[CONFIG_CODEC_MAX];       /* EXCHANGE_CODEC, exchange.codec */
    bool funnel_async;                  /* EXCHANGE_FUNNEL_ASYNC, exchange.funnel_async */
    long response_timeout;              /* EXCHANGE_RESPONSE_TIMEOUT, exchange.response_timeout: ms, -1 off */
    long queue_limit;                   /* EXCHANGE_QUEUE_LIMIT, exchange.queue_limit: requests waiting */
    long queue_timeout;                 /* EXCHANGE_QUEUE_TIMEOUT, exchange.queue_timeout: ms, -1 off */
    long max_message;                   /* EXCHANGE_MAX_MESSAGE, exchange.max_message: bytes */

    int connections;                    /* PROXY_CONNECTIONS_CNT, pool.connections: required */
    long inactive_timeout;              /* PROXY_INACTIVE_TIMEOUT, pool.inactive_timeout: ms, -1 off */
    bool warmup;                        /* PROXY_WARMUP, pool.warmup */
    long connect_timeout;               /* PROXY_CONNECT_TIMEOUT, pool.connect_timeout: ms */
    long backoff_min;                   /* PROXY_BACKOFF_MIN, pool.backoff_min: ms */
    long backoff_max;                   /* PROXY_BACKOFF_MAX, pool.backoff_max: ms */

    long request_memory;                /* LIMITS_REQUEST_MEMORY, limits.request_memory: bytes of partial requests, all clients */

    long shutdown_timeout;              /* SHUTDOWN_TIMEOUT, shutdown_timeout: ms */

    int ntargets;
    struct target_config targets[CONFIG_MAX_TARGETS];

    /* Derived by config_load(): the mode actually run (never MODE_AUTO). */
    enum exchange_mode effective_mode;
    /* Derived by config_load(): local.host/local.port resolved with
     * AI_PASSIVE (first result); nothing is bound. */
    struct sockaddr_storage local_addr;
    socklen_t local_addr_len;
    /* Where the YAML came from ("" when env only); kept for SIGHUP. */
    char path[CONFIG_PATH_MAX];
};

/* Fills c from the built-in defaults, then the YAML file at yaml_path (may be
 * NULL), then the environment env (a NULL-terminated "NAME=value" array like
 * environ), validates it, derives effective_mode and resolves the listen and
 * target addresses. On error returns PMX_ERR and writes one line into err,
 * naming the setting, the bad value and what is allowed, e.g.
 * `LOCAL_PORT: "abc" is not a port (1-65535)`. */
int config_load(struct config *c, const char *yaml_path, char *const *env,
                char *err, size_t errlen) PMX_WUR;

/* Writes the effective configuration as YAML, with the derived mode. */
void config_dump(const struct config *c, FILE *out);

const char *config_mode_name(enum exchange_mode mode);

/* Which settings differ between old and new and cannot change without a
 * restart: writes their names, comma separated, into out ("" if none). */
void config_unreloadable_changes(const struct config *old, const struct config *new,
                                 char *out, size_t outlen);

#endif
