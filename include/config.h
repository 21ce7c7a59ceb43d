/* The configuration: named services, each with its listeners, exchange,
 * pool, targets, balancing, health checks and limits, plus a few global
 * settings. One schema (tables of settings in src/config/config_schema.c)
 * drives the YAML and environment front ends, validation, the -t dump and
 * what a reload may change. */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "balancer.h"
#include "cidr.h"
#include "cidr_set.h"
#include "net.h"
#include "pmx.h"

enum exchange_mode {
    MODE_AUTO = 0,
    MODE_PROXY,
    MODE_FIFO,
    MODE_FUNNEL,
};

#define CONFIG_HOST_MAX NET_HOST_MAX
#define CONFIG_PATH_MAX 4096
#define CONFIG_CODEC_MAX 16
#define CONFIG_NAME_MAX 65          /* service names: 1-64 of [A-Za-z0-9_.-] */
/* A target's name: 1 to CONFIG_TARGET_NAME_MAX - 1 bytes, no control
 * characters; room for its default, "host:port", "[IPV6]:PORT" or the unix
 * path, with a "#N" suffix when two targets would share it. */
#define CONFIG_TARGET_NAME_MAX (CONFIG_HOST_MAX + 24)
#define CONFIG_MAX_LISTEN 16        /* listen addresses per service */
#define CONFIG_MAX_SERVICES 256
#define CONFIG_MAX_TARGETS 1024     /* per service */
#define CONFIG_SECRET_MAX 257       /* user names and passwords (resp AUTH): 0-256 bytes */
#define CONFIG_MAX_AUTH_USERS 64    /* session.auth.users per service */
#define CONFIG_PROBE_MAX 256        /* health.send / health.expect bytes */
#define CONFIG_ERR_MAX 512
#define CONFIG_MAX_PROXY_FROM 64    /* accept_proxy_from ranges per service */
#define CONFIG_MAX_ACCESS 100000    /* allow / deny entries per list (top level, each service) */

#define CONFIG_ROUTE_TEXT_MAX 4096 /* a route's match/prefix/sni/http_host pattern and its reply/data/close bytes */
#define CONFIG_MAX_ROUTES 256       /* routes per service */

/* What a route looks at (SPEC §10): exactly one per route. */
enum route_kind {
    ROUTE_MATCH,                    /* match: POSIX ERE over the buffered bytes, $1..$9 captures */
    ROUTE_PREFIX,                   /* prefix: plain byte prefix */
    ROUTE_SNI,                      /* sni: TLS ClientHello server_name, "*.example.com" wildcards */
    ROUTE_HTTP_HOST,                /* http_host: Host header of the first HTTP request (same wildcards) */
};

/* One item of routes: (SPEC §10). Byte strings are decoded from C escapes
 * (\r \n \t \\ \xNN) and may hold NUL bytes, hence the lengths. */
struct route_config {
    enum route_kind kind;
    char pattern[CONFIG_ROUTE_TEXT_MAX];    /* the regex, prefix bytes, server name or host */
    size_t pattern_len;
    char target[CONFIG_TARGET_NAME_MAX];    /* a target name of the service, or HOST:PORT with $1..$9; "" with close */
    char reply[CONFIG_ROUTE_TEXT_MAX];      /* reply: bytes sent to the client first */
    size_t reply_len;
    char data[CONFIG_ROUTE_TEXT_MAX];       /* data: sent upstream instead of the buffered bytes ($1..$9) */
    size_t data_len;
    bool has_data;
    char close[CONFIG_ROUTE_TEXT_MAX];      /* close: bytes sent, then the client is closed */
    size_t close_len;
    bool has_close;
    long connect_timeout;                   /* ms, -1: pool.connect_timeout */
    long inactivity_timeout;                /* ms from connect to the target's first byte, -1: none */
};

/* One item of session.auth.users: a client may AUTH user password. */
struct auth_user_config {
    char user[CONFIG_SECRET_MAX];
    char password[CONFIG_SECRET_MAX];
};

/* One listen address of a service. */
struct listen_config {
    char spec[NET_ADDR_MAX + NET_HOST_MAX];   /* as written: "127.0.0.1:3307", "[::1]:6380", "unix:/path" */
    struct net_listen_spec where;             /* parsed */
    /* Derived by config_load(): TCP addresses resolved (AI_PASSIVE, first
     * result); nothing is bound. Unused for unix sockets. */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct target_config {
    char name[CONFIG_TARGET_NAME_MAX];  /* default "host:port" ("[IPV6]:port") or the unix path; a
                                         * default taken already gets "#2", "#3"...; unique in the service */
    char host[CONFIG_HOST_MAX];     /* host + port, or ... */
    int port;
    char unix_path[NET_UNIX_PATH_MAX];  /* ... unix (then host is "" and port 0) */
    int weight;                     /* 1-1000, default 1 */
    bool backup;                    /* used only while no non-backup target is usable */
    bool keep_alive;                /* SO_KEEPALIVE */
    /* resp: AUTH sent by fifo/funnel connections right after connecting
     * ("" password: none; "" username: AUTH <password>). */
    char username[CONFIG_SECRET_MAX];
    char password[CONFIG_SECRET_MAX];
    /* Derived by config_load(): the address (resolved at load for host
     * names; a unix sockaddr for unix targets). */
    struct sockaddr_storage addr;
    socklen_t addr_len;
};

struct health_config {
    int fail_after;                 /* consecutive failures before a target is down (1-1000, 3) */
    int rise_after;                 /* consecutive probe successes before it is up (1-1000, 2) */
    long interval;                  /* ms between probes (10-3600000, 500) */
    long timeout;                   /* ms a probe may take (10-600000, 1000) */
    char send[CONFIG_PROBE_MAX];    /* bytes a probe sends after connecting; C escapes \r \n \t \\ \xNN are decoded */
    size_t send_len;
    char expect[CONFIG_PROBE_MAX];  /* prefix the reply must start with (same escapes) */
    size_t expect_len;
    bool check_up;                  /* also probe targets that are up */
};

/* request_log: (SPEC §11): one line per request and response pair. */
enum request_log_format {
    REQUEST_LOG_JSON,               /* "json": JSON lines */
    REQUEST_LOG_TEXT,               /* "text": one space-separated line (README "Request log") */
};

struct request_log_config {
    char file[CONFIG_PATH_MAX];     /* request_log.file: "" off, "-" stderr */
    enum request_log_format format; /* request_log.format (json) */
    double sample;                  /* request_log.sample: share of requests logged, 0.0-1.0 (1.0) */
    long max_text;                  /* request_log.max_text: command bytes kept (16-1048576, 1024) */
};

struct service_config {
    char name[CONFIG_NAME_MAX];     /* "default" for the single-service forms */

    /* listen / local */
    int nlisten;
    struct listen_config listen[CONFIG_MAX_LISTEN];
    long listen_mode;               /* listen_mode: unix socket permissions, octal string in YAML ("0660") */
    bool ipv6_only;                 /* local.ipv6_only */
    long max_connections;           /* local.max_connections: -1 or >= 1 */
    long max_wait;                  /* local.max_wait: ms */
    long buffer_size;               /* local.buffer_size */
    long output_limit;              /* local.output_limit */

    /* exchange */
    enum exchange_mode mode;        /* as configured */
    enum exchange_mode effective_mode;  /* derived: never MODE_AUTO */
    char codec[CONFIG_CODEC_MAX];
    bool funnel_async;
    long response_timeout;
    long queue_limit;
    long queue_timeout;
    long max_message;
    long client_inflight;           /* exchange.client_inflight: one client's requests in flight upstream (1-100000, 128) */

    /* pool */
    int connections;
    long inactive_timeout;
    bool warmup;
    long spare_max_age;             /* pool.spare_max_age: ms a warm spare is kept, -1 forever (1-86400000, default 8000) */
    long connect_timeout;
    long backoff_min;
    long backoff_max;
    long resolve_interval;          /* pool.resolve_interval: ms, -1 never (100-86400000, default 30000) */

    /* upstreams */
    enum balance_strategy balance;  /* balance (default round_robin) */
    int retries;                    /* retries: other targets tried after a failed connect (0-100, default 2) */
    struct health_config health;

    /* limits */
    long max_active;                /* limits.max_active: requests in flight upstream, -1 unlimited (1-10000000) */
    long max_queued;                /* limits.max_queued: requests waiting for a connection, -1 unlimited (0-10000000) */
    long request_memory;            /* limits.request_memory: bytes of partial requests, all clients */

    /* session (resp in fifo/funnel, SPEC §13) */
    long dedicated_max;             /* session.dedicated_max: dedicated upstream connections (0-100000, 64) */
    char auth_password[CONFIG_SECRET_MAX];  /* session.auth.password: "" none */
    int nauth_users;
    struct auth_user_config auth_users[CONFIG_MAX_AUTH_USERS];  /* session.auth.users */

    /* PROXY protocol (SPEC §12) */
    int send_proxy;                 /* send_proxy: enum proxy_protocol_version, 0 off (proxy mode only) */
    bool accept_proxy;              /* accept_proxy: read a header from clients in accept_proxy_from */
    int naccept_proxy_from;
    struct cidr accept_proxy_from[CONFIG_MAX_PROXY_FROM];   /* accept_proxy_from: required with accept_proxy */

    /* routing on the first bytes (SPEC §10), proxy mode */
    int nroutes;
    struct route_config *routes;    /* routes: nroutes entries, owned */
    long route_max_bytes;           /* route_max_bytes: bytes buffered while no route decides (1-1048576, 4096) */
    long route_timeout;             /* route_timeout: ms to wait for a decision (1-3600000, 5000) */
    char route_default[CONFIG_TARGET_NAME_MAX]; /* route_default: "close" or a target name */

    int ntargets;
    struct target_config *targets;  /* ntargets entries, owned */

    struct request_log_config request_log;  /* request_log: (SPEC §11) */
    /* access control (SPEC §11): the service's own allow/deny, checked
     * after the top-level ones (struct config) */
    int nallow;
    struct cidr *allow;             /* allow: nallow entries, owned */
    int ndeny;
    struct cidr *deny;              /* deny: ndeny entries, owned */
    /* Derived by config_load(): lookup sets of these lists (owned) and of
     * the top-level ones (owned by the struct config); NULL when empty. */
    struct cidr_set *allow_set, *deny_set;
    const struct cidr_set *top_allow_set, *top_deny_set;
};

struct config {
    int log_level;                      /* LOG_LEVEL, log_level: 0..3 */
    char log_file[CONFIG_PATH_MAX];     /* LOG_FILE, log_file: "" = stderr */
    long shutdown_timeout;              /* SHUTDOWN_TIMEOUT, shutdown_timeout: ms */
    char admin_listen[NET_ADDR_MAX + NET_HOST_MAX]; /* admin.listen: "" = no admin API (SPEC §12) */
    char admin_token[CONFIG_SECRET_MAX];    /* admin.token: bearer token, "" = none */

    int nservices;
    struct service_config *services;    /* nservices entries, owned; names unique */
    /* The file has services: (else services[0] is the single service
     * "default" of the top-level settings and the environment). */
    bool services_form;

    /* Where the YAML came from ("" when env only); kept for reload. */
    char path[CONFIG_PATH_MAX];

    /* access control (SPEC §11): top-level allow/deny apply to every
     * service, before its own; log_mask_ip masks client addresses in logs */
    bool log_mask_ip;
    int nallow;
    struct cidr *allow;             /* allow: nallow entries, owned */
    int ndeny;
    struct cidr *deny;              /* deny: ndeny entries, owned */
    struct cidr_set *allow_set, *deny_set;  /* derived by config_load(), owned; NULL when empty */
};

/* Fills c from the built-in defaults, then the YAML file at yaml_path (may be
 * NULL), then the environment env (a NULL-terminated "NAME=value" array like
 * environ), validates it, derives every service's effective_mode and
 * resolves the listen and target addresses (blocking: at start and for -t;
 * the daemon re-resolves off the loop later). On error returns PMX_ERR and
 * writes one line into err naming the setting, the bad value and what is
 * allowed, e.g. `LOCAL_PORT: "abc" is not a port (1-65535)` or
 * `services[2].listen[1] (FILE line 7): "localhost" missing port (HOST:PORT,
 * [IPV6]:PORT or unix:/path)`. List items are counted from 1 in messages,
 * as TARGET_HOST_1 is. c must be zeroed or freed before; on error it holds
 * nothing to free. */
int config_load(struct config *c, const char *yaml_path, char *const *env,
                char *err, size_t errlen) PMX_WUR;

/* config_load() with flags: CONFIG_LOAD_NO_DNS resolves address literals
 * only and leaves names unresolved (addr_len 0), so that a reload on the
 * event loop never blocks on DNS: the upstream layer resolves target names
 * off the loop, and listeners keep their running addresses. */
#define CONFIG_LOAD_NO_DNS 1
int config_load_flags(struct config *c, const char *yaml_path, char *const *env, int flags,
                      char *err, size_t errlen) PMX_WUR;

/* Frees what config_load() allocated (services, targets); c is zeroed.
 * Harmless on a zeroed config. */
void config_free(struct config *c);

/* Writes the effective configuration as YAML, with each service's derived
 * mode. */
void config_dump(const struct config *c, FILE *out);

/* The service called name, or NULL. */
const struct service_config *config_service(const struct config *c, const char *name);

const char *config_mode_name(enum exchange_mode mode);

/* Which settings of one service differ between old and new and cannot
 * change without replacing the service (listeners, mode, codec, ...):
 * writes their names, comma separated, into out ("" if none). */
void config_service_fixed_changes(const struct service_config *old, const struct service_config *new,
                                  char *out, size_t outlen);

/* Copies into fresh the running values of the settings that cannot change
 * without replacing the service (those config_service_fixed_changes()
 * names) and what derives from them (effective_mode, the resolved listen
 * addresses), so that a reload in place sees one consistent picture. */
void config_service_keep_fixed(struct service_config *fresh, const struct service_config *running);

#endif
