/* The configuration: one table of settings drives the defaults, the YAML and
 * environment front ends (both feed the same setters), validation, the -t
 * dump and what SIGHUP may change. */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"
#include "config.h"
#include "config_env.h"
#include "config_yaml.h"

enum setting_type {
    T_INT,      /* int field: a number min..max */
    T_LONG,     /* long field: a number min..max */
    T_PORT,     /* int field: 1..65535 */
    T_BOOL,     /* bool field */
    T_HOST,     /* char[] field: a name or an IPv4/IPv6 literal, [::1] too */
    T_PATH,     /* char[] field: a file path, "" allowed */
    T_MODE,     /* enum exchange_mode field */
    T_CODEC,    /* char[] field: a name codec_find() knows */
};

#define S_REQUIRED 0x1u     /* no default: must be set */
#define S_RELOAD   0x2u     /* SIGHUP may change it */
#define S_OFF      0x4u     /* -1 is allowed too: off, or unlimited */

struct setting {
    const char *path;       /* YAML: "local.port"; in a target, its key */
    const char *env;        /* "LOCAL_PORT"; in a target, the part before n */
    const char *env_suffix; /* in a target, the part after n; else "" */
    enum setting_type type;
    size_t offset;          /* in struct config; in a target, struct target_config */
    size_t size;
    const char *def;        /* parsed like any value; NULL when S_REQUIRED */
    long min, max;          /* numbers */
    const char *unit;       /* "ms", "bytes" or "" */
    unsigned flags;
};

#define CF(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define TF(f) offsetof(struct target_config, f), sizeof(((struct target_config *)0)->f)

/* Sections ("local.") must stay together: the dump follows this order. */
static const struct setting settings[] = {
    /* path                        env                          type     field                 default       min   max         unit     flags */
    { "log_level",                 "LOG_LEVEL", "",                 T_INT,   CF(log_level),        "1",          0,    3,          "",      S_RELOAD },
    { "log_file",                  "LOG_FILE", "",                  T_PATH,  CF(log_file),         "",           0,    0,          "",      S_RELOAD },
    { "local.host",                "LOCAL_HOST", "",                T_HOST,  CF(local_host),       "127.0.0.1",  0,    0,          "",      0 },
    { "local.port",                "LOCAL_PORT", "",                T_PORT,  CF(local_port),       NULL,         1,    65535,      "",      S_REQUIRED },
    { "local.ipv6_only",           "LOCAL_IPV6_ONLY", "",           T_BOOL,  CF(ipv6_only),        "false",      0,    0,          "",      0 },
    { "local.max_connections",     "LOCAL_MAX_CONNECTIONS", "",     T_LONG,  CF(max_connections),  "-1",         1,    1000000,    "",      S_OFF | S_RELOAD },
    { "local.max_wait",            "LOCAL_MAX_WAIT", "",            T_LONG,  CF(max_wait),         "1000",       0,    3600000,    "ms",    S_RELOAD },
    { "local.buffer_size",         "LOCAL_BUFFER_SIZE", "",         T_LONG,  CF(buffer_size),      "65536",      1024, 67108864,   "bytes", 0 },
    { "local.output_limit",        "LOCAL_OUTPUT_LIMIT", "",        T_LONG,  CF(output_limit),     "16777216",   1024, 1073741824, "bytes", S_RELOAD },
    { "exchange.mode",             "EXCHANGE_MODE", "",             T_MODE,  CF(mode),             "auto",       0,    0,          "",      0 },
    { "exchange.codec",            "EXCHANGE_CODEC", "",            T_CODEC, CF(codec),            "raw",        0,    0,          "",      0 },
    { "exchange.funnel_async",     "EXCHANGE_FUNNEL_ASYNC", "",     T_BOOL,  CF(funnel_async),     "false",      0,    0,          "",      0 },
    { "exchange.response_timeout", "EXCHANGE_RESPONSE_TIMEOUT", "", T_LONG,  CF(response_timeout), "30000",         1,    86400000,   "ms",    S_OFF | S_RELOAD },
    { "exchange.queue_limit",      "EXCHANGE_QUEUE_LIMIT", "",      T_LONG,  CF(queue_limit),      "10000",      1,    10000000,   "",      S_RELOAD },
    { "exchange.queue_timeout",    "EXCHANGE_QUEUE_TIMEOUT", "",    T_LONG,  CF(queue_timeout),    "-1",         1,    86400000,   "ms",    S_OFF | S_RELOAD },
    { "exchange.max_message",      "EXCHANGE_MAX_MESSAGE", "",      T_LONG,  CF(max_message),      "67108864",   1024, 1073741824, "bytes", S_RELOAD },
    { "pool.connections",          "PROXY_CONNECTIONS_CNT", "",     T_INT,   CF(connections),      NULL,         1,    100000,     "",      S_REQUIRED },
    { "pool.inactive_timeout",     "PROXY_INACTIVE_TIMEOUT", "",    T_LONG,  CF(inactive_timeout), "-1",         1,    86400000,   "ms",    S_OFF | S_RELOAD },
    { "pool.warmup",               "PROXY_WARMUP", "",              T_BOOL,  CF(warmup),           "false",      0,    0,          "",      0 },
    { "pool.connect_timeout",      "PROXY_CONNECT_TIMEOUT", "",     T_LONG,  CF(connect_timeout),  "5000",       1,    600000,     "ms",    S_RELOAD },
    { "pool.backoff_min",          "PROXY_BACKOFF_MIN", "",         T_LONG,  CF(backoff_min),      "100",        1,    600000,     "ms",    S_RELOAD },
    { "pool.backoff_max",          "PROXY_BACKOFF_MAX", "",         T_LONG,  CF(backoff_max),      "5000",       1,    3600000,    "ms",    S_RELOAD },
    { "limits.request_memory",     "LIMITS_REQUEST_MEMORY", "",     T_LONG,  CF(request_memory),   "268435456",  65536, 1099511627776, "bytes", S_RELOAD },
    { "shutdown_timeout",          "SHUTDOWN_TIMEOUT", "",          T_LONG,  CF(shutdown_timeout), "10000",      0,    3600000,    "ms",    S_RELOAD },
};

/* The keys of one target: YAML targets[n].host, env TARGET_HOST_n... All
 * reloadable: a new list applies to new upstream connections. */
static const struct setting target_settings[] = {
    { "host",       "TARGET_HOST_", "",            T_HOST, TF(host),       NULL,    0, 0,     "", S_REQUIRED | S_RELOAD },
    { "port",       "TARGET_PORT_", "",            T_PORT, TF(port),       NULL,    1, 65535, "", S_REQUIRED | S_RELOAD },
    { "keep_alive", "TARGET_CONN_", "_KEEP_ALIVE", T_BOOL, TF(keep_alive), "false", 0, 0,     "", S_RELOAD },
};

#define NSETTINGS PMX_ARRAY_LEN(settings)
#define NTARGET_SETTINGS PMX_ARRAY_LEN(target_settings)

static const char *const mode_names[] = {
    [MODE_AUTO] = "auto",
    [MODE_PROXY] = "proxy",
    [MODE_FIFO] = "fifo",
    [MODE_FUNNEL] = "funnel",
};

enum origin {
    FROM_DEFAULT = 0,
    FROM_YAML,
    FROM_ENV,
};

/* Where a value came from, to name the setting as the user wrote it. */
struct where {
    enum origin origin;
    int line;               /* YAML line */
};

/* State of one config_load(). */
struct load {
    struct config *c;
    const char *file;       /* the YAML file, NULL when env only */
    struct where set[NSETTINGS];
    struct where target[CONFIG_MAX_TARGETS][NTARGET_SETTINGS];
    int target_line[CONFIG_MAX_TARGETS];    /* YAML line of targets[i + 1] */
    int yaml_targets;       /* items in the YAML targets list */
    int env_targets;        /* highest n of a TARGET_*_n variable */
};

/* A value quoted for a message: at most QUOTE_CHARS characters, each at most
 * 4 bytes (\xNN), plus "..." and the quotes. */
#define QUOTE_CHARS 64
#define QUOTE_MAX (QUOTE_CHARS * 4 + 8)
/* A setting's name as written: "targets[256].keep_alive (FILE line N)". */
#define NAME_MAX_LEN (CONFIG_PATH_MAX + 64)

const char *config_mode_name(enum exchange_mode mode)
{
    if ((unsigned)mode < PMX_ARRAY_LEN(mode_names))
        return mode_names[mode];
    return "?";
}

/* Writes v into out in double quotes, escaping quotes, backslashes and
 * control bytes and cutting it short, so the error stays one readable line. */
static void quote(const char *v, char out[QUOTE_MAX])
{
    size_t o = 0, i;

    out[o++] = '"';
    for (i = 0; i < QUOTE_CHARS && v[i] != '\0'; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, 5, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    if (v[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* What a value of s is, for messages: "a port". */
static const char *setting_noun(const struct setting *s)
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
    }
    return "a value";
}

/* What values s allows, for messages: "-1 or 1-86400000 ms"; "" if any. */
static void setting_allowed(const struct setting *s, enum origin from, char *out, size_t n)
{
    switch (s->type) {
    case T_INT:
    case T_LONG:
    case T_PORT:
        snprintf(out, n, "%s%ld-%ld%s%s", (s->flags & S_OFF) ? "-1 or " : "",
                 s->min, s->max, *s->unit != '\0' ? " " : "", s->unit);
        return;
    case T_BOOL:
        snprintf(out, n, "%s", from == FROM_YAML ? "true/false, yes/no, on/off, 0/1"
                                                 : "0/1, true/false, yes/no");
        return;
    case T_MODE:
        snprintf(out, n, "auto, proxy, fifo, funnel");
        return;
    case T_CODEC:
        snprintf(out, n, "%s", codec_names());
        return;
    case T_HOST:
    case T_PATH:
        break;
    }
    if (n > 0)
        *out = '\0';
}

static struct where *where_of(struct load *l, const struct setting *s, int ti)
{
    if (ti < 0)
        return &l->set[s - settings];
    return &l->target[ti][s - target_settings];
}

/* Names setting s (of target ti, or -1) as the user wrote it: the env name
 * when it came from the environment, the YAML path and its line when from
 * the file. A value still at its default is named as the user would set it:
 * in the YAML file when there is one (a target: when the list has it). With
 * full false, the file and line are left out. */
static void setting_name(const struct load *l, const struct setting *s, int ti,
                         bool full, char *out, size_t n)
{
    struct where w = ti < 0 ? l->set[s - settings] : l->target[ti][s - target_settings];
    char path[64];

    if (ti >= 0)
        snprintf(path, sizeof path, "targets[%d].%s", ti + 1, s->path);
    else
        snprintf(path, sizeof path, "%s", s->path);

    if (w.origin == FROM_DEFAULT && l->file != NULL) {
        if (ti < 0)
            w.origin = FROM_YAML;
        else if (ti < l->yaml_targets) {
            w.origin = FROM_YAML;
            w.line = l->target_line[ti];
        }
    }
    if (w.origin != FROM_YAML) {
        if (ti >= 0)
            snprintf(out, n, "%s%d%s", s->env, ti + 1, s->env_suffix);
        else
            snprintf(out, n, "%s", s->env);
    } else if (!full) {
        snprintf(out, n, "%s", path);
    } else if (w.line > 0) {
        snprintf(out, n, "%s (%s line %d)", path, l->file, w.line);
    } else {
        snprintf(out, n, "%s (%s)", path, l->file);
    }
}

/* Parses a decimal long: no sign but '-', no spaces, nothing after it.
 * Returns 0, or -1 for not a number, -2 for out of the range of long. */
static int parse_long(const char *v, long *out)
{
    const char *digits = *v == '-' ? v + 1 : v;
    if (*digits < '0' || *digits > '9')
        return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end != '\0')
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = x;
    return 0;
}

static int parse_bool(const char *v, enum origin from, bool *out)
{
    static const char *const yes[] = { "1", "true", "yes", "on" };
    static const char *const no[] = { "0", "false", "no", "off" };
    /* on/off are YAML words; the environment takes the original's set. */
    size_t n = from == FROM_YAML ? 4 : 3;

    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static bool host_chars_ok(const char *v)
{
    for (; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch <= ' ' || ch == 0x7f)
            return false;
    }
    return true;
}

/* The setter both front ends feed: parses value into the field of s at
 * base. On error writes "NAME: "value" is not ... (allowed)" into err. */
static int setting_parse(const struct setting *s, char *base, const char *value,
                         enum origin from, const char *name, char *err, size_t errlen)
{
    void *field = base + s->offset;
    char q[QUOTE_MAX], allowed[256];
    long x = 0;
    bool b;

    quote(value, q);
    setting_allowed(s, from, allowed, sizeof allowed);

    switch (s->type) {
    case T_INT:
    case T_LONG:
    case T_PORT: {
        int rc = parse_long(value, &x);
        if (rc == -1 || (rc != 0 && s->type == T_PORT))
            goto not_a;
        if (rc != 0 || !((x == -1 && (s->flags & S_OFF)) || (x >= s->min && x <= s->max))) {
            if (s->type == T_PORT)
                goto not_a;
            snprintf(err, errlen, "%s: %s is out of range (%s)", name, q, allowed);
            return PMX_ERR;
        }
        if (s->type == T_LONG)
            *(long *)field = x;
        else
            *(int *)field = (int)x;
        return PMX_OK;
    }
    case T_BOOL:
        if (parse_bool(value, from, &b) != 0)
            goto not_a;
        *(bool *)field = b;
        return PMX_OK;
    case T_MODE:
        for (size_t i = 0; i < PMX_ARRAY_LEN(mode_names); i++) {
            if (strcmp(value, mode_names[i]) == 0) {
                *(enum exchange_mode *)field = (enum exchange_mode)i;
                return PMX_OK;
            }
        }
        goto not_a;
    case T_CODEC:
        if (strlen(value) >= s->size || codec_find(value) == NULL)
            goto not_a;
        memcpy(field, value, strlen(value) + 1);
        return PMX_OK;
    case T_HOST: {
        /* "[::1]" as in a URL: getaddrinfo wants it bare. */
        size_t len = strlen(value);
        const char *start = value;
        if (len >= 2 && value[0] == '[' && value[len - 1] == ']') {
            start++;
            len -= 2;
        }
        if (len == 0 || !host_chars_ok(value))
            goto not_a;
        if (len >= s->size)
            goto too_long;
        memcpy(field, start, len);
        ((char *)field)[len] = '\0';
        return PMX_OK;
    }
    case T_PATH:
        if (strlen(value) >= s->size)
            goto too_long;
        memcpy(field, value, strlen(value) + 1);
        return PMX_OK;
    }
not_a:
    if (*allowed != '\0')
        snprintf(err, errlen, "%s: %s is not %s (%s)", name, q, setting_noun(s), allowed);
    else
        snprintf(err, errlen, "%s: %s is not %s", name, q, setting_noun(s));
    return PMX_ERR;
too_long:
    snprintf(err, errlen, "%s: %s is too long (at most %zu bytes)", name, q, s->size - 1);
    return PMX_ERR;
}

/* Sets s (of target ti, or -1) from value and records where it came from. */
static int load_set(struct load *l, const struct setting *s, int ti, const char *value,
                    enum origin from, int line, char *err, size_t errlen)
{
    struct where *w = where_of(l, s, ti);
    struct where old = *w;
    char name[NAME_MAX_LEN];
    char *base = ti < 0 ? (char *)l->c : (char *)&l->c->targets[ti];

    *w = (struct where){ from, line };
    setting_name(l, s, ti, true, name, sizeof name);
    if (setting_parse(s, base, value, from, name, err, errlen) != PMX_OK) {
        *w = old;
        return PMX_ERR;
    }
    if (ti >= 0 && from == FROM_ENV && ti + 1 > l->env_targets)
        l->env_targets = ti + 1;
    return PMX_OK;
}

static const struct setting *find_path(const struct setting *table, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].path, path) == 0)
            return &table[i];
    }
    return NULL;
}

/* Whether path is a section: a mapping holding settings ("local"). */
static bool is_section(const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strncmp(settings[i].path, path, len) == 0 && settings[i].path[len] == '.')
            return true;
    }
    return false;
}

/* Writes the keys of section (or of the top level when section is "") into
 * out, comma separated, in table order. */
static void section_keys(const char *section, char *out, size_t n)
{
    size_t len = strlen(section), used = 0;
    const char *prev = NULL;
    size_t prev_len = 0;

    if (n > 0)
        *out = '\0';
    for (size_t i = 0; i < NSETTINGS + 1; i++) {
        const char *key;
        size_t key_len;
        if (i == NSETTINGS) {
            if (len != 0)
                break;
            key = "targets";
            key_len = strlen(key);
        } else if (len == 0) {
            key = settings[i].path;
            const char *dot = strchr(key, '.');
            key_len = dot != NULL ? (size_t)(dot - key) : strlen(key);
        } else if (strncmp(settings[i].path, section, len) == 0 && settings[i].path[len] == '.') {
            key = settings[i].path + len + 1;
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

/* "path (FILE line N)" for YAML structure errors. */
static void yaml_name(const struct load *l, const char *path, int line, char *out, size_t n)
{
    snprintf(out, n, "%s (%s line %d)", path, l->file, line);
}

static int yaml_target_node(struct load *l, const char *path, enum config_yaml_kind kind,
                            const char *value, int line, char *err, size_t errlen)
{
    char name[NAME_MAX_LEN];
    yaml_name(l, path, line, name, sizeof name);

    if (strcmp(path, "targets") == 0) {
        if (kind != CONFIG_YAML_LIST) {
            snprintf(err, errlen, "%s: expected a list of targets (host, port, keep_alive), not %s",
                     name, config_yaml_kind_name(kind));
            return PMX_ERR;
        }
        return PMX_OK;
    }

    /* The walker writes "targets[N]" and "targets[N].key", N from 1. */
    char *end;
    long n = strtol(path + strlen("targets["), &end, 10);
    if (n < 1 || *end != ']' || (end[1] != '\0' && end[1] != '.')) {
        snprintf(err, errlen, "%s: unknown setting", name);
        return PMX_ERR;
    }
    if (n > CONFIG_MAX_TARGETS) {
        snprintf(err, errlen, "%s: too many targets (at most %d)", name, CONFIG_MAX_TARGETS);
        return PMX_ERR;
    }
    int ti = (int)n - 1;
    if (end[1] == '\0') {
        if (kind != CONFIG_YAML_MAPPING) {
            snprintf(err, errlen, "%s: expected a mapping (host, port, keep_alive), not %s",
                     name, config_yaml_kind_name(kind));
            return PMX_ERR;
        }
        l->target_line[ti] = line;
        if (ti + 1 > l->yaml_targets)
            l->yaml_targets = ti + 1;
        return PMX_OK;
    }

    const struct setting *s = find_path(target_settings, NTARGET_SETTINGS, end + 2);
    if (s == NULL) {
        snprintf(err, errlen, "%s: unknown setting (a target takes host, port, keep_alive)", name);
        return PMX_ERR;
    }
    if (kind != CONFIG_YAML_SCALAR) {
        char allowed[256];
        setting_allowed(s, FROM_YAML, allowed, sizeof allowed);
        snprintf(err, errlen, "%s: expected %s%s%s%s, not %s", name, setting_noun(s),
                 *allowed ? " (" : "", allowed, *allowed ? ")" : "", config_yaml_kind_name(kind));
        return PMX_ERR;
    }
    return load_set(l, s, ti, value, FROM_YAML, line, err, errlen);
}

/* The YAML front end's callback: decides what each path may be. */
static int yaml_node(void *ctx, const char *path, enum config_yaml_kind kind,
                     const char *value, int line, char *err, size_t errlen)
{
    struct load *l = ctx;
    char name[NAME_MAX_LEN];

    if (*path == '\0') {
        if (kind != CONFIG_YAML_MAPPING) {
            snprintf(err, errlen, "%s line %d: expected a mapping of settings, not %s",
                     l->file, line, config_yaml_kind_name(kind));
            return PMX_ERR;
        }
        return PMX_OK;
    }
    if (strncmp(path, "targets", 7) == 0 && (path[7] == '\0' || path[7] == '['))
        return yaml_target_node(l, path, kind, value, line, err, errlen);

    yaml_name(l, path, line, name, sizeof name);
    const struct setting *s = find_path(settings, NSETTINGS, path);
    if (s != NULL) {
        if (kind != CONFIG_YAML_SCALAR) {
            char allowed[256];
            setting_allowed(s, FROM_YAML, allowed, sizeof allowed);
            snprintf(err, errlen, "%s: expected %s%s%s%s, not %s", name, setting_noun(s),
                     *allowed ? " (" : "", allowed, *allowed ? ")" : "",
                     config_yaml_kind_name(kind));
            return PMX_ERR;
        }
        return load_set(l, s, -1, value, FROM_YAML, line, err, errlen);
    }
    if (is_section(path)) {
        if (kind != CONFIG_YAML_MAPPING) {
            snprintf(err, errlen, "%s: expected a mapping", name);
            return PMX_ERR;
        }
        return PMX_OK;
    }

    char section[64], keys[512];
    const char *dot = strrchr(path, '.');
    snprintf(section, sizeof section, "%.*s", dot != NULL ? (int)(dot - path) : 0, path);
    section_keys(section, keys, sizeof keys);
    snprintf(err, errlen, "%s: unknown setting (%s%s takes %s)", name,
             *section ? "" : "the ", *section ? section : "top level", keys);
    return PMX_ERR;
}

/* Matches "TARGET_HOST_12" against s: returns n (12), 0 when name is not
 * s's, -1 when it is but n is no target number. */
static int target_env_index(const struct setting *s, const char *name)
{
    size_t plen = strlen(s->env);
    if (strncmp(name, s->env, plen) != 0)
        return 0;
    const char *p = name + plen;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || strcmp(p + digits, s->env_suffix) != 0)
        return 0;
    if (digits > 9)
        return -1;
    long n = strtol(p, NULL, 10);
    return n >= 1 && n <= CONFIG_MAX_TARGETS ? (int)n : -1;
}

/* The environment front end's callback: sets what it knows, ignores the
 * rest (the environment is shared). */
static int env_var(void *ctx, const char *name, const char *value, char *err, size_t errlen)
{
    struct load *l = ctx;

    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strcmp(settings[i].env, name) == 0)
            return load_set(l, &settings[i], -1, value, FROM_ENV, 0, err, errlen);
    }
    for (size_t i = 0; i < NTARGET_SETTINGS; i++) {
        int n = target_env_index(&target_settings[i], name);
        if (n == 0)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: no such target (targets are numbered 1-%d)",
                     name, CONFIG_MAX_TARGETS);
            return PMX_ERR;
        }
        return load_set(l, &target_settings[i], n - 1, value, FROM_ENV, 0, err, errlen);
    }
    return PMX_OK;
}

/* Resolves host:port (first result) into ss/len. Returns PMX_OK, or PMX_ERR
 * with the reason in *why. */
static int resolve(const char *host, int port, bool passive,
                   struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
    struct addrinfo hints, *res;
    char service[16];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        *why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
        return PMX_ERR;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return PMX_OK;
}

static int resolve_error(const struct load *l, const struct setting *s, int ti,
                         const char *host, const char *why, char *err, size_t errlen)
{
    char name[NAME_MAX_LEN], q[QUOTE_MAX];
    setting_name(l, s, ti, true, name, sizeof name);
    quote(host, q);
    snprintf(err, errlen, "%s: %s cannot be resolved (%s)", name, q, why);
    return PMX_ERR;
}

/* Why auto chose what it chose, or "explicit". */
static const char *mode_reason(const struct config *c)
{
    if (c->mode != MODE_AUTO)
        return "explicit";
    if (c->max_connections == c->connections)
        return "auto: max_connections == connections";
    if (c->connections == 1)
        return "auto: connections == 1";
    return "auto: connections > 1, max_connections != connections";
}

static enum exchange_mode derive_mode(const struct config *c)
{
    if (c->mode != MODE_AUTO)
        return c->mode;
    if (c->max_connections == c->connections)
        return MODE_PROXY;
    if (c->connections == 1)
        return MODE_FIFO;
    return MODE_FUNNEL;
}

static const struct setting *setting_of(const char *path)
{
    return find_path(settings, NSETTINGS, path);
}

/* Checks what no single value can: required settings, the targets, the
 * relations between settings; derives the mode; resolves the addresses. */
static int load_finish(struct load *l, char *err, size_t errlen)
{
    struct config *c = l->c;
    char name[NAME_MAX_LEN], other[NAME_MAX_LEN], allowed[256];

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if ((s->flags & S_REQUIRED) && l->set[i].origin == FROM_DEFAULT) {
            setting_name(l, s, -1, true, name, sizeof name);
            setting_allowed(s, FROM_DEFAULT, allowed, sizeof allowed);
            snprintf(err, errlen, "%s: missing (required; %s %s)", name, setting_noun(s), allowed);
            return PMX_ERR;
        }
    }

    int n = PMX_MAX(l->yaml_targets, l->env_targets);
    if (n == 0) {
        if (l->file != NULL)
            snprintf(err, errlen, "targets (%s): missing (at least one target is required)", l->file);
        else
            snprintf(err, errlen, "%s1: missing (at least one target is required)",
                     target_settings[0].env);
        return PMX_ERR;
    }
    for (int ti = 0; ti < n; ti++) {
        for (size_t k = 0; k < NTARGET_SETTINGS; k++) {
            const struct setting *s = &target_settings[k];
            if (l->target[ti][k].origin != FROM_DEFAULT)
                continue;
            if (s->flags & S_REQUIRED) {
                setting_name(l, s, ti, true, name, sizeof name);
                snprintf(err, errlen, "%s: missing (every target needs a host and a port)", name);
                return PMX_ERR;
            }
            if (setting_parse(s, (char *)&c->targets[ti], s->def, FROM_DEFAULT,
                              s->path, err, errlen) != PMX_OK)
                return PMX_ERR;
        }
    }
    c->ntargets = n;
    if (n > c->connections) {
        setting_name(l, &target_settings[0], n - 1, true, name, sizeof name);
        setting_name(l, setting_of("pool.connections"), -1, false, other, sizeof other);
        snprintf(err, errlen, "%s: %d targets for %s %d (targets must be 1..connections)",
                 name, n, other, c->connections);
        return PMX_ERR;
    }

    if (c->backoff_max < c->backoff_min) {
        const struct setting *smin = setting_of("pool.backoff_min");
        const struct setting *smax = setting_of("pool.backoff_max");
        bool max_set = l->set[smax - settings].origin != FROM_DEFAULT;
        setting_name(l, max_set ? smax : smin, -1, true, name, sizeof name);
        setting_name(l, max_set ? smin : smax, -1, false, other, sizeof other);
        snprintf(err, errlen, "%s: \"%ld\" is out of range (must be %s %s, %ld)", name,
                 max_set ? c->backoff_max : c->backoff_min, max_set ? ">=" : "<=", other,
                 max_set ? c->backoff_min : c->backoff_max);
        return PMX_ERR;
    }

    if (c->mode == MODE_FIFO && c->connections != 1) {
        setting_name(l, setting_of("exchange.mode"), -1, true, name, sizeof name);
        setting_name(l, setting_of("pool.connections"), -1, false, other, sizeof other);
        snprintf(err, errlen, "%s: \"fifo\" needs exactly 1 upstream connection (%s is %d)",
                 name, other, c->connections);
        return PMX_ERR;
    }
    c->effective_mode = derive_mode(c);

    const char *why;
    if (resolve(c->local_host, c->local_port, true, &c->local_addr,
                &c->local_addr_len, &why) != PMX_OK)
        return resolve_error(l, setting_of("local.host"), -1, c->local_host, why, err, errlen);
    for (int ti = 0; ti < n; ti++) {
        struct target_config *t = &c->targets[ti];
        if (resolve(t->host, t->port, false, &t->addr, &t->addr_len, &why) != PMX_OK)
            return resolve_error(l, &target_settings[0], ti, t->host, why, err, errlen);
    }
    return PMX_OK;
}

int config_load(struct config *c, const char *yaml_path, char *const *env,
                char *err, size_t errlen)
{
    struct load *l = calloc(1, sizeof *l);
    int rc = PMX_ERR;

    if (errlen > 0)
        *err = '\0';
    if (l == NULL) {
        snprintf(err, errlen, "out of memory loading the configuration");
        return PMX_ERR;
    }
    memset(c, 0, sizeof *c);
    l->c = c;

    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if (s->def != NULL &&
            setting_parse(s, (char *)c, s->def, FROM_DEFAULT, s->path, err, errlen) != PMX_OK)
            goto out;
    }
    if (yaml_path != NULL && *yaml_path != '\0') {
        if (strlen(yaml_path) >= sizeof c->path) {
            snprintf(err, errlen, "%.64s...: path too long", yaml_path);
            goto out;
        }
        snprintf(c->path, sizeof(c->path), "%s", yaml_path);
        l->file = c->path;
        if (config_yaml_read(l->file, yaml_node, l, err, errlen) != PMX_OK)
            goto out;
    }
    if (config_env_read(env, env_var, l, err, errlen) != PMX_OK)
        goto out;
    rc = load_finish(l, err, errlen);
out:
    free(l);
    return rc;
}

/* The code point of the 2- or 3-byte UTF-8 sequence at s and its length,
 * or 0 for anything else (ASCII, 4 bytes, invalid). */
static size_t utf8_char(const unsigned char *s, unsigned *cp)
{
    if (s[0] >= 0xc2 && s[0] <= 0xdf && (s[1] & 0xc0) == 0x80) {
        *cp = (s[0] & 0x1fu) << 6 | (s[1] & 0x3fu);
        return 2;
    }
    if ((s[0] & 0xf0) == 0xe0 && (s[1] & 0xc0) == 0x80 && (s[2] & 0xc0) == 0x80) {
        *cp = (s[0] & 0x0fu) << 12 | (s[1] & 0x3fu) << 6 | (s[2] & 0x3fu);
        return *cp >= 0x800 && (*cp < 0xd800 || *cp > 0xdfff) ? 3 : 0;
    }
    return 0;
}

/* Writes s as a YAML double-quoted scalar that reads back as s: escapes
 * what YAML would take as a line break (NEL, LS, PS) or refuse unescaped
 * (C0/C1 controls, BOM, U+FFFE/U+FFFF). Bytes that are not UTF-8 (from the
 * environment) have no YAML form and are written as they are. */
static void dump_string(const char *s, FILE *out)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', out);
    while (*p != '\0') {
        unsigned cp;
        size_t n = utf8_char(p, &cp);
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
        } else if (n > 0 && ((cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
                             cp == 0xfeff || cp == 0xfffe || cp == 0xffff)) {
            fprintf(out, "\\u%04x", cp);
        } else {
            fwrite(p, 1, n > 0 ? n : 1, out);
        }
        p += n > 0 ? n : 1;
    }
    fputc('"', out);
}

static void dump_value(const struct setting *s, const char *base, FILE *out)
{
    const void *field = base + s->offset;

    switch (s->type) {
    case T_INT:
    case T_PORT: fprintf(out, "%d", *(const int *)field); return;
    case T_LONG: fprintf(out, "%ld", *(const long *)field); return;
    case T_BOOL: fputs(*(const bool *)field ? "true" : "false", out); return;
    case T_MODE: fputs(config_mode_name(*(const enum exchange_mode *)field), out); return;
    case T_CODEC: fputs((const char *)field, out); return;
    case T_HOST:
    case T_PATH: dump_string((const char *)field, out); return;
    }
}

/* Writes "1.2.3.4:80" or "[::1]:80" for a resolved address; "" if none. */
static void format_addr(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t n)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];

    if (len == 0 || getnameinfo((const struct sockaddr *)ss, len, host, sizeof host,
                                serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        if (n > 0)
            *out = '\0';
        return;
    }
    snprintf(out, n, ss->ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

void config_dump(const struct config *c, FILE *out)
{
    const char *section = NULL;
    size_t section_len = 0;
    char addr[NI_MAXHOST + NI_MAXSERV + 4];

    fprintf(out, "# proximux %s effective configuration\n", PMX_VERSION);
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        const char *dot = strchr(s->path, '.');
        const char *key = s->path;
        if (dot != NULL) {
            size_t len = (size_t)(dot - s->path);
            if (section == NULL || len != section_len || strncmp(section, s->path, len) != 0)
                fprintf(out, "%.*s:\n", (int)len, s->path);
            section = s->path;
            section_len = len;
            key = dot + 1;
        } else {
            section = NULL;
        }
        fprintf(out, "%s%s: ", dot != NULL ? "  " : "", key);
        dump_value(s, (const char *)c, out);
        fputc('\n', out);
    }
    fputs(c->ntargets > 0 ? "targets:\n" : "targets: []\n", out);
    for (int ti = 0; ti < c->ntargets; ti++) {
        const struct target_config *t = &c->targets[ti];
        fputs("  - {", out);
        for (size_t k = 0; k < NTARGET_SETTINGS; k++) {
            fprintf(out, "%s %s: ", k ? "," : "", target_settings[k].path);
            dump_value(&target_settings[k], (const char *)t, out);
        }
        fputs(" }", out);
        format_addr(&t->addr, t->addr_len, addr, sizeof addr);
        if (*addr != '\0')
            fprintf(out, "  # %s", addr);
        fputc('\n', out);
    }
    format_addr(&c->local_addr, c->local_addr_len, addr, sizeof addr);
    if (*addr != '\0')
        fprintf(out, "# listen: %s\n", addr);
    fprintf(out, "# mode: %s (%s)\n", config_mode_name(derive_mode(c)), mode_reason(c));
    if (strcmp(c->codec, "http") == 0 && derive_mode(c) != MODE_PROXY)
        fprintf(out, "# http: one request in flight per upstream connection; funnel_async %s\n",
                c->funnel_async ? "changes nothing for http" : "is off");
}

static bool field_equal(const struct setting *s, const struct config *a, const struct config *b)
{
    const char *fa = (const char *)a + s->offset;
    const char *fb = (const char *)b + s->offset;

    switch (s->type) {
    case T_HOST:
    case T_PATH:
    case T_CODEC:
        return strncmp(fa, fb, s->size) == 0;
    default:
        return memcmp(fa, fb, s->size) == 0;
    }
}

void config_unreloadable_changes(const struct config *old, const struct config *new,
                                 char *out, size_t outlen)
{
    size_t used = 0;

    if (outlen == 0)
        return;
    *out = '\0';
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        if ((s->flags & S_RELOAD) || field_equal(s, old, new))
            continue;
        int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", s->path);
        if (w < 0 || (size_t)w >= outlen - used) {
            out[used] = '\0';     /* whole names only */
            return;
        }
        used += (size_t)w;
    }
}
