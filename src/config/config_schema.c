/* The configuration's schema: the tables of settings of the three scopes
 * (global, service, target) and the queries the loader, the front ends and
 * the dump make of them. Reloadability lives here and nowhere else. */
#include <stdio.h>
#include <string.h>

#include "balancer.h"
#include "codec.h"
#include "config.h"
#include "config_schema.h"

#define GF(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define SF(f) offsetof(struct service_config, f), sizeof(((struct service_config *)0)->f)
#define TF(f) offsetof(struct target_config, f), sizeof(((struct target_config *)0)->f)
/* A list's row: its list_def says where the items are; the size is unused. */
#define LF(type, f) offsetof(struct type, f), 0

/* One listen address: an item of listen[]. */
static const struct setting listen_item = {
    "", NULL, "", T_LISTEN, 0, sizeof(struct listen_config), NULL, 0, 0, "", 0, 0, NULL,
};

static const struct list_def listen_list = {
    .item = &listen_item,
    .count_offset = offsetof(struct service_config, nlisten),
    .array_offset = offsetof(struct service_config, listen),
    .pointer = false,
    .item_size = sizeof(struct listen_config),
    .max = CONFIG_MAX_LISTEN,
    .noun = "listen address",
    .plural = "listen addresses",
};

/* One range of accept_proxy_from. */
static const struct setting cidr_item = {
    "", NULL, "", T_CIDR, 0, sizeof(struct cidr), NULL, 0, 0, "", 0, 0, NULL,
};

static const struct list_def proxy_from_list = {
    .item = &cidr_item,
    .count_offset = offsetof(struct service_config, naccept_proxy_from),
    .array_offset = offsetof(struct service_config, accept_proxy_from),
    .pointer = false,
    .item_size = sizeof(struct cidr),
    .max = CONFIG_MAX_PROXY_FROM,
    .noun = "address range",
    .plural = "address ranges",
};

/* allow / deny (SPEC §11): at the top level (struct config) and in a
 * service; long lists (IP block lists), hence allocated. */
#define ACCESS_LIST(scope, list, count) {                   \
    .item = &cidr_item,                                     \
    .count_offset = offsetof(struct scope, count),          \
    .array_offset = offsetof(struct scope, list),           \
    .pointer = true,                                        \
    .item_size = sizeof(struct cidr),                       \
    .max = CONFIG_MAX_ACCESS,                               \
    .noun = "address range",                                \
    .plural = "address ranges",                             \
}
static const struct list_def top_allow_list = ACCESS_LIST(config, allow, nallow);
static const struct list_def top_deny_list = ACCESS_LIST(config, deny, ndeny);
static const struct list_def allow_list = ACCESS_LIST(service_config, allow, nallow);
static const struct list_def deny_list = ACCESS_LIST(service_config, deny, ndeny);

static const struct list_def targets_list = {
    .items = &config_target_scope,
    .count_offset = offsetof(struct service_config, ntargets),
    .array_offset = offsetof(struct service_config, targets),
    .pointer = true,
    .item_size = sizeof(struct target_config),
    .max = CONFIG_MAX_TARGETS,
    .env = true,
    .noun = "target",
    .plural = "targets",
};

/* An item of session.auth.users. */
static const struct setting auth_user_settings[] = {
    { "user",     NULL, "", T_LABEL, offsetof(struct auth_user_config, user), sizeof(((struct auth_user_config *)0)->user),
      NULL, 1, CONFIG_SECRET_MAX - 1, "", S_REQUIRED | S_UNIQUE | S_RELOAD, 0, NULL },
    { "password", NULL, "", T_LABEL, offsetof(struct auth_user_config, password), sizeof(((struct auth_user_config *)0)->password),
      NULL, 0, CONFIG_SECRET_MAX - 1, "", S_REQUIRED | S_RELOAD, 0, NULL },
};

static const struct scope auth_user_scope = {
    "a user of session.auth.users", auth_user_settings, PMX_ARRAY_LEN(auth_user_settings),
};

static const struct list_def auth_users_list = {
    .items = &auth_user_scope,
    .count_offset = offsetof(struct service_config, nauth_users),
    .array_offset = offsetof(struct service_config, auth_users),
    .pointer = false,
    .item_size = sizeof(struct auth_user_config),
    .max = CONFIG_MAX_AUTH_USERS,
    .noun = "user",
    .plural = "users",
};

/* An item of routes (SPEC §10): exactly one of match, prefix, sni and
 * http_host (they share the pattern field; the key sets the kind), and
 * exactly one of target and close: checked by the loader. All reloadable:
 * a client takes its service's routes when it is accepted. */
#define RF(f) offsetof(struct route_config, f), sizeof(((struct route_config *)0)->f)
static const struct setting route_settings[] = {
    { "match",              NULL, "", T_PATTERN, RF(pattern), NULL, ROUTE_MATCH, 0, "", S_RELOAD,
      offsetof(struct route_config, pattern_len), NULL },
    { "prefix",             NULL, "", T_PATTERN, RF(pattern), NULL, ROUTE_PREFIX, 0, "", S_RELOAD,
      offsetof(struct route_config, pattern_len), NULL },
    { "sni",                NULL, "", T_PATTERN, RF(pattern), NULL, ROUTE_SNI, 0, "", S_RELOAD,
      offsetof(struct route_config, pattern_len), NULL },
    { "http_host",          NULL, "", T_PATTERN, RF(pattern), NULL, ROUTE_HTTP_HOST, 0, "", S_RELOAD,
      offsetof(struct route_config, pattern_len), NULL },
    { "target",             NULL, "", T_LABEL,   RF(target),  "", 0, CONFIG_TARGET_NAME_MAX - 1, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "reply",              NULL, "", T_BYTES,   RF(reply),   "", 0, 0, "", S_OMIT_EMPTY | S_RELOAD,
      offsetof(struct route_config, reply_len), NULL },
    { "data",               NULL, "", T_BYTES,   RF(data),    "", 0, 0, "", S_OMIT_EMPTY | S_RELOAD,
      offsetof(struct route_config, data_len), NULL },
    { "close",              NULL, "", T_BYTES,   RF(close),   "", 0, 0, "", S_OMIT_EMPTY | S_RELOAD,
      offsetof(struct route_config, close_len), NULL },
    { "connect_timeout",    NULL, "", T_LONG,    RF(connect_timeout), "-1", 1, 600000, "ms", S_OFF | S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "inactivity_timeout", NULL, "", T_LONG,    RF(inactivity_timeout), "-1", 1, 86400000, "ms", S_OFF | S_OMIT_EMPTY | S_RELOAD, 0, NULL },
};

const struct scope config_route_scope = {
    "a route", route_settings, PMX_ARRAY_LEN(route_settings),
};

static const struct list_def routes_list = {
    .items = &config_route_scope,
    .count_offset = offsetof(struct service_config, nroutes),
    .array_offset = offsetof(struct service_config, routes),
    .pointer = true,
    .item_size = sizeof(struct route_config),
    .max = CONFIG_MAX_ROUTES,
    .noun = "route",
    .plural = "routes",
};

static const struct list_def services_list = {
    .items = &config_service_scope,
    .count_offset = offsetof(struct config, nservices),
    .array_offset = offsetof(struct config, services),
    .pointer = true,
    .item_size = sizeof(struct service_config),
    .max = CONFIG_MAX_SERVICES,
    .noun = "service",
    .plural = "services",
};

static const struct setting global_settings[] = {
    /* path                 env                  type     field                  default    min max      unit  flags */
    { "log_level",          "LOG_LEVEL", "",        T_INT,   GF(log_level),         "1",       0,  3,       "",   S_RELOAD, 0, NULL },
    { "log_file",           "LOG_FILE", "",         T_PATH,  GF(log_file),          "",        0,  0,       "",   S_RELOAD, 0, NULL },
    { "shutdown_timeout",   "SHUTDOWN_TIMEOUT", "", T_LONG,  GF(shutdown_timeout),  "10000",   0,  3600000, "ms", S_RELOAD, 0, NULL },
    { "admin.listen",       "ADMIN_LISTEN", "",     T_LABEL, GF(admin_listen),      "",        0,  NET_ADDR_MAX + NET_HOST_MAX - 1, "", S_OMIT_EMPTY, 0, NULL },
    { "admin.token",        "ADMIN_TOKEN", "",      T_LABEL, GF(admin_token),       "",        0,  CONFIG_SECRET_MAX - 1, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "services",           NULL, "",               T_LIST,  LF(config, services),  NULL,      0,  0,       "",   0, 0, &services_list },
    { "log_mask_ip",        "LOG_MASK_IP", "",      T_BOOL,  GF(log_mask_ip),       "false",   0,  0,       "",   S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "allow",              NULL, "",               T_LIST,  LF(config, allow),     NULL,      0,  0,       "",   S_OMIT_EMPTY | S_RELOAD, 0, &top_allow_list },
    { "deny",               NULL, "",               T_LIST,  LF(config, deny),      NULL,      0,  0,       "",   S_OMIT_EMPTY | S_RELOAD, 0, &top_deny_list },
};

/* A service. local.host and local.port are the single listen address of
 * the local: form (and of LOCAL_HOST/LOCAL_PORT): they write listen[1]. */
static const struct setting service_settings[] = {
    /* path                        env                          type       field                   default        min    max            unit     flags */
    { "name",                      NULL, "",                        T_NAME,    SF(name),               "default",     1,     64,            "",      S_REQUIRED | S_ITEM_ONLY | S_UNIQUE | S_RELOAD, 0, NULL },
    { "listen",                    NULL, "",                        T_LIST,    LF(service_config, listen), NULL,          0,     0,             "",      0, 0, &listen_list },
    { "listen_mode",               "LOCAL_LISTEN_MODE", "",         T_OCTAL,   SF(listen_mode),        "0660",        0,     0777,          "",      0, 0, NULL },
    { "local.host",                "LOCAL_HOST", "",                T_HOST,    SF(listen[0].where.host), "127.0.0.1", 0,     0,             "",      S_ALIAS, 0, NULL },
    { "local.port",                "LOCAL_PORT", "",                T_PORT,    SF(listen[0].where.port), NULL,        1,     65535,         "",      S_ALIAS | S_REQUIRED, 0, NULL },
    { "local.ipv6_only",           "LOCAL_IPV6_ONLY", "",           T_BOOL,    SF(ipv6_only),          "false",       0,     0,             "",      0, 0, NULL },
    { "local.max_connections",     "LOCAL_MAX_CONNECTIONS", "",     T_LONG,    SF(max_connections),    "-1",          1,     1000000,       "",      S_OFF | S_RELOAD, 0, NULL },
    { "local.max_wait",            "LOCAL_MAX_WAIT", "",            T_LONG,    SF(max_wait),           "1000",        0,     3600000,       "ms",    S_RELOAD, 0, NULL },
    { "local.buffer_size",         "LOCAL_BUFFER_SIZE", "",         T_LONG,    SF(buffer_size),        "65536",       1024,  67108864,      "bytes", 0, 0, NULL },
    { "local.output_limit",        "LOCAL_OUTPUT_LIMIT", "",        T_LONG,    SF(output_limit),       "16777216",    1024,  1073741824,    "bytes", S_RELOAD, 0, NULL },
    { "exchange.mode",             "EXCHANGE_MODE", "",             T_MODE,    SF(mode),               "auto",        0,     0,             "",      S_INHERIT, 0, NULL },
    { "exchange.codec",            "EXCHANGE_CODEC", "",            T_CODEC,   SF(codec),              "raw",         0,     0,             "",      S_INHERIT, 0, NULL },
    { "exchange.funnel_async",     "EXCHANGE_FUNNEL_ASYNC", "",     T_BOOL,    SF(funnel_async),       "false",       0,     0,             "",      S_INHERIT, 0, NULL },
    { "exchange.response_timeout", "EXCHANGE_RESPONSE_TIMEOUT", "", T_LONG,    SF(response_timeout),   "30000",       1,     86400000,      "ms",    S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "exchange.queue_limit",      "EXCHANGE_QUEUE_LIMIT", "",      T_LONG,    SF(queue_limit),        "10000",       1,     10000000,      "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "exchange.queue_timeout",    "EXCHANGE_QUEUE_TIMEOUT", "",    T_LONG,    SF(queue_timeout),      "-1",          1,     86400000,      "ms",    S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "exchange.client_inflight",  "EXCHANGE_CLIENT_INFLIGHT", "",  T_LONG,    SF(client_inflight),    "128",         1,     100000,        "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "exchange.max_message",      "EXCHANGE_MAX_MESSAGE", "",      T_LONG,    SF(max_message),        "67108864",    1024,  1073741824,    "bytes", S_INHERIT | S_RELOAD, 0, NULL },
    { "pool.connections",          "PROXY_CONNECTIONS_CNT", "",     T_INT,     SF(connections),        NULL,          1,     100000,        "",      S_INHERIT | S_REQUIRED, 0, NULL },
    { "pool.inactive_timeout",     "PROXY_INACTIVE_TIMEOUT", "",    T_LONG,    SF(inactive_timeout),   "-1",          1,     86400000,      "ms",    S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "pool.warmup",               "PROXY_WARMUP", "",              T_BOOL,    SF(warmup),             "false",       0,     0,             "",      S_INHERIT, 0, NULL },
    { "pool.spare_max_age",        "PROXY_SPARE_MAX_AGE", "",       T_LONG,    SF(spare_max_age),      "8000",        1,     86400000,      "ms",    S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "pool.connect_timeout",      "PROXY_CONNECT_TIMEOUT", "",     T_LONG,    SF(connect_timeout),    "5000",        1,     600000,        "ms",    S_INHERIT | S_RELOAD, 0, NULL },
    { "pool.backoff_min",          "PROXY_BACKOFF_MIN", "",         T_LONG,    SF(backoff_min),        "100",         1,     600000,        "ms",    S_INHERIT | S_RELOAD, 0, NULL },
    { "pool.backoff_max",          "PROXY_BACKOFF_MAX", "",         T_LONG,    SF(backoff_max),        "5000",        1,     3600000,       "ms",    S_INHERIT | S_RELOAD, 0, NULL },
    { "pool.resolve_interval",     "PROXY_RESOLVE_INTERVAL", "",    T_LONG,    SF(resolve_interval),   "30000",       100,   86400000,      "ms",    S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "balance",                   "BALANCE", "",                   T_BALANCE, SF(balance),            "round_robin", 0,     0,             "",      S_RELOAD, 0, NULL },
    { "retries",                   "RETRIES", "",                   T_INT,     SF(retries),            "2",           0,     100,           "",      S_RELOAD, 0, NULL },
    { "health.fail_after",         "HEALTH_FAIL_AFTER", "",         T_INT,     SF(health.fail_after),  "3",           1,     1000,          "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "health.rise_after",         "HEALTH_RISE_AFTER", "",         T_INT,     SF(health.rise_after),  "2",           1,     1000,          "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "health.interval",           "HEALTH_INTERVAL", "",           T_LONG,    SF(health.interval),    "500",         10,    3600000,       "ms",    S_INHERIT | S_RELOAD, 0, NULL },
    { "health.timeout",            "HEALTH_TIMEOUT", "",            T_LONG,    SF(health.timeout),     "1000",        10,    600000,        "ms",    S_INHERIT | S_RELOAD, 0, NULL },
    { "health.send",               "HEALTH_SEND", "",               T_BYTES,   SF(health.send),        "",            0,     0,             "",      S_INHERIT | S_RELOAD,
      offsetof(struct service_config, health.send_len), NULL },
    { "health.expect",             "HEALTH_EXPECT", "",             T_BYTES,   SF(health.expect),      "",            0,     0,             "",      S_INHERIT | S_RELOAD,
      offsetof(struct service_config, health.expect_len), NULL },
    { "health.check_up",           "HEALTH_CHECK_UP", "",           T_BOOL,    SF(health.check_up),    "false",       0,     0,             "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "limits.max_active",         "LIMITS_MAX_ACTIVE", "",         T_LONG,    SF(max_active),         "-1",          1,     10000000,      "",      S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "limits.max_queued",         "LIMITS_MAX_QUEUED", "",         T_LONG,    SF(max_queued),         "-1",          0,     10000000,      "",      S_INHERIT | S_OFF | S_RELOAD, 0, NULL },
    { "limits.request_memory",     "LIMITS_REQUEST_MEMORY", "",     T_LONG,    SF(request_memory),     "268435456",   65536, 1099511627776,  "bytes", S_INHERIT | S_RELOAD, 0, NULL },
    { "session.dedicated_max",     "SESSION_DEDICATED_MAX", "",     T_LONG,    SF(dedicated_max),      "64",          0,     100000,        "",      S_INHERIT | S_RELOAD, 0, NULL },
    { "session.auth.password",     "SESSION_AUTH_PASSWORD", "",     T_LABEL,   SF(auth_password),      "",            0,     CONFIG_SECRET_MAX - 1, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "session.auth.users",        NULL, "",                        T_LIST,    LF(service_config, auth_users), NULL,      0,     0,             "",      S_RELOAD, 0, &auth_users_list },
    { "send_proxy",                "SEND_PROXY", "",                T_SEND_PROXY, SF(send_proxy),      "off",         0,     0,             "",      S_RELOAD, 0, NULL },
    { "accept_proxy",              NULL, "",                        T_BOOL,    SF(accept_proxy),       "false",       0,     0,             "",      S_RELOAD, 0, NULL },
    { "accept_proxy_from",         NULL, "",                        T_LIST,    LF(service_config, accept_proxy_from), NULL, 0, 0,           "",      S_RELOAD, 0, &proxy_from_list },
    { "targets",                   NULL, "",                        T_LIST,    LF(service_config, targets), NULL,         0,     0,             "",      S_RELOAD, 0, &targets_list },
    { "request_log.file",          "REQUEST_LOG_FILE", "",          T_PATH,    SF(request_log.file),   "",            0,     0,             "",      S_RELOAD, 0, NULL },
    { "request_log.format",        "REQUEST_LOG_FORMAT", "",        T_LOG_FORMAT, SF(request_log.format), "json",     0,     0,             "",      S_RELOAD, 0, NULL },
    { "request_log.sample",        "REQUEST_LOG_SAMPLE", "",        T_FRACTION, SF(request_log.sample), "1.0",         0,     0,             "",      S_RELOAD, 0, NULL },
    { "request_log.max_text",      "REQUEST_LOG_MAX_TEXT", "",      T_LONG,    SF(request_log.max_text), "1024",      16,    1048576,       "bytes", S_RELOAD, 0, NULL },
    /* At the top level allow/deny are the global lists (config_global_scope). */
    { "allow",                     NULL, "",                        T_LIST,    LF(service_config, allow), NULL,           0,     0,             "",      S_ITEM_ONLY | S_OMIT_EMPTY | S_RELOAD, 0, &allow_list },
    { "deny",                      NULL, "",                        T_LIST,    LF(service_config, deny), NULL,            0,     0,             "",      S_ITEM_ONLY | S_OMIT_EMPTY | S_RELOAD, 0, &deny_list },
    { "routes",                    NULL, "",                        T_LIST,    LF(service_config, routes), NULL,          0,     0,             "",      S_RELOAD, 0, &routes_list },
    { "route_max_bytes",           NULL, "",                        T_LONG,    SF(route_max_bytes),    "4096",        1,     1048576,       "bytes", S_RELOAD, 0, NULL },
    { "route_timeout",             NULL, "",                        T_LONG,    SF(route_timeout),      "5000",        1,     3600000,       "ms",    S_RELOAD, 0, NULL },
    { "route_default",             NULL, "",                        T_LABEL,   SF(route_default),      "close",       1,     CONFIG_TARGET_NAME_MAX - 1, "", S_RELOAD, 0, NULL },
};

/* A target: YAML targets[n].host, env TARGET_HOST_n... All reloadable: a
 * new list applies to new upstream connections. Its name defaults to
 * host:port or the unix path (set by the loader); a name written may be as
 * long as a default one, so that the dump loads back. */
static const struct setting target_settings[] = {
    { "name",       "TARGET_NAME_", "",            T_LABEL, TF(name),       NULL,    1, CONFIG_TARGET_NAME_MAX - 1, "", S_UNIQUE | S_RELOAD, 0, NULL },
    { "host",       "TARGET_HOST_", "",            T_HOST,  TF(host),       NULL,    0, 0,     "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "port",       "TARGET_PORT_", "",            T_PORT,  TF(port),       NULL,    1, 65535, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "unix",       "TARGET_UNIX_", "",            T_UNIX,  TF(unix_path),  NULL,    0, 0,     "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "weight",     "TARGET_WEIGHT_", "",          T_INT,   TF(weight),     "1",     1, 1000,  "", S_RELOAD, 0, NULL },
    { "backup",     "TARGET_BACKUP_", "",          T_BOOL,  TF(backup),     "false", 0, 0,     "", S_RELOAD, 0, NULL },
    { "keep_alive", "TARGET_CONN_", "_KEEP_ALIVE", T_BOOL,  TF(keep_alive), "false", 0, 0,     "", S_RELOAD, 0, NULL },
    { "username",   "TARGET_USERNAME_", "",        T_LABEL, TF(username),   "",      0, CONFIG_SECRET_MAX - 1, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
    { "password",   "TARGET_PASSWORD_", "",        T_LABEL, TF(password),   "",      0, CONFIG_SECRET_MAX - 1, "", S_OMIT_EMPTY | S_RELOAD, 0, NULL },
};

const struct scope config_global_scope = {
    "the top level", global_settings, PMX_ARRAY_LEN(global_settings),
};

const struct scope config_service_scope = {
    "a service", service_settings, PMX_ARRAY_LEN(service_settings),
};

const struct scope config_target_scope = {
    "a target", target_settings, PMX_ARRAY_LEN(target_settings),
};

const struct setting *config_schema_find(const struct scope *sc, const char *path, size_t len)
{
    for (size_t i = 0; i < sc->n; i++) {
        const struct setting *s = &sc->settings[i];
        if (strncmp(s->path, path, len) == 0 && s->path[len] == '\0')
            return s;
    }
    return NULL;
}

bool config_schema_is_section(const struct scope *sc, const char *path)
{
    size_t len = strlen(path);

    for (size_t i = 0; i < sc->n; i++) {
        if (strncmp(sc->settings[i].path, path, len) == 0 && sc->settings[i].path[len] == '.')
            return true;
    }
    return false;
}

void config_schema_keys(const struct scope *sc, const char *section, bool top, char *out, size_t n)
{
    size_t len = strlen(section), used = 0;
    const char *prev = NULL;
    size_t prev_len = 0;

    if (n > 0)
        *out = '\0';
    for (size_t i = 0; i < sc->n; i++) {
        const struct setting *s = &sc->settings[i];
        const char *key;
        size_t key_len;
        if (top && (s->flags & S_ITEM_ONLY))
            continue;
        if (len == 0) {
            key = s->path;
            const char *dot = strchr(key, '.');
            key_len = dot != NULL ? (size_t)(dot - key) : strlen(key);
        } else if (strncmp(s->path, section, len) == 0 && s->path[len] == '.') {
            key = s->path + len + 1;
            key_len = strlen(key);
        } else {
            continue;
        }
        if (prev != NULL && prev_len == key_len && strncmp(prev, key, key_len) == 0)
            continue;
        prev = key;
        prev_len = key_len;
        int w = snprintf(out + used, n - used, "%s%.*s", used ? ", " : "", (int)key_len, key);
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
}

const char *config_schema_noun(const struct setting *s)
{
    switch (s->type) {
    case T_INT:
    case T_LONG: return "a number";
    case T_PORT: return "a port";
    case T_BOOL: return "a boolean";
    case T_HOST: return "a host name or address";
    case T_PATH: return "a file path";
    case T_MODE: return "a mode";
    case T_CODEC: return "a codec";
    case T_BALANCE: return "a balancing strategy";
    case T_OCTAL: return "a file mode";
    case T_BYTES: return "a string";
    case T_NAME: return "a service name";
    case T_LABEL: return "a target name";
    case T_UNIX: return "a unix socket path";
    case T_LISTEN: return "a listen address";
    case T_LIST: return "a list";
    case T_SEND_PROXY: return "a PROXY protocol version";
    case T_CIDR: return "an address range";
    case T_LOG_FORMAT: return "a log format";
    case T_FRACTION: return "a fraction";
    case T_PATTERN: return "a pattern";
    }
    return "a value";
}

void config_schema_allowed(const struct setting *s, bool yaml, char *out, size_t n)
{
    switch (s->type) {
    case T_INT:
    case T_LONG:
    case T_PORT:
        snprintf(out, n, "%s%ld-%ld%s%s", (s->flags & S_OFF) ? "-1 or " : "",
                 s->min, s->max, *s->unit != '\0' ? " " : "", s->unit);
        return;
    case T_BOOL:
        snprintf(out, n, "%s", yaml ? "true/false, yes/no, on/off, 0/1" : "0/1, true/false, yes/no");
        return;
    case T_MODE:
        snprintf(out, n, "auto, proxy, fifo, funnel");
        return;
    case T_CODEC:
        snprintf(out, n, "%s", codec_names());
        return;
    case T_BALANCE:
        snprintf(out, n, "%s", balancer_strategy_names());
        return;
    case T_OCTAL:
        snprintf(out, n, "octal %04lo-%04lo", (unsigned long)s->min, (unsigned long)s->max);
        return;
    case T_BYTES:
        snprintf(out, n, "escapes \\r \\n \\t \\\\ \\xNN");
        return;
    case T_PATTERN:
        if (s->min == ROUTE_MATCH)
            snprintf(out, n, "a POSIX extended regex; escapes \\r \\n \\t \\xNN, no NUL byte");
        else if (s->min == ROUTE_PREFIX)
            snprintf(out, n, "1-%zu bytes; escapes \\r \\n \\t \\\\ \\xNN", s->size - 1);
        else
            snprintf(out, n, "a host name or *.domain");
        return;
    case T_NAME:
        snprintf(out, n, "%ld-%ld characters of A-Z a-z 0-9 _ . -", s->min, s->max);
        return;
    case T_LABEL:
        snprintf(out, n, "%ld-%ld bytes, no control characters", s->min, s->max);
        return;
    case T_LISTEN:
        snprintf(out, n, "HOST:PORT, [IPV6]:PORT or unix:/path");
        return;
    case T_UNIX:
        snprintf(out, n, "1-%zu bytes, no control characters", s->size - 1);
        return;
    case T_SEND_PROXY:
        snprintf(out, n, "off, v1, v2");
        return;
    case T_CIDR:
        snprintf(out, n, "ADDRESS/PREFIX or ADDRESS, IPv4 or IPv6");
        return;
    case T_LOG_FORMAT:
        snprintf(out, n, "json, text");
        return;
    case T_FRACTION:
        snprintf(out, n, "0.0-1.0");
        return;
    case T_HOST:
    case T_PATH:
    case T_LIST:
        break;
    }
    if (n > 0)
        *out = '\0';
}
