/* The configuration's schema (private to src/config): one table of settings
 * per scope (global, service, target), lists as rows whose items are a scope
 * or a scalar; loading, the -t dump and the reload checks all read them. */
#ifndef CONFIG_SCHEMA_H
#define CONFIG_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

enum setting_type {
    T_INT,      /* int field: a number min..max */
    T_LONG,     /* long field: a number min..max */
    T_PORT,     /* int field: 1..65535 */
    T_BOOL,     /* bool field */
    T_HOST,     /* char[] field: a name or an IPv4/IPv6 literal, [::1] too */
    T_PATH,     /* char[] field: a file path, "" allowed */
    T_MODE,     /* enum exchange_mode field */
    T_CODEC,    /* char[] field: a name codec_find() knows */
    T_BALANCE,  /* enum balance_strategy field */
    T_OCTAL,    /* long field: a file mode, 1-4 octal digits, min..max */
    T_BYTES,    /* char[] field + size_t length at aux: text with \r \n \t \\ \xNN decoded */
    T_NAME,     /* char[] field: 1-64 of [A-Za-z0-9_.-] (a service name) */
    T_LABEL,    /* char[] field: min-max bytes, no control characters (a target name) */
    T_UNIX,     /* char[] field: a unix socket path */
    T_LISTEN,   /* struct listen_config: "HOST:PORT", "[IPV6]:PORT" or "unix:/path" */
    T_LIST,     /* a list: see struct list_def */
    T_SEND_PROXY,   /* int field: PROXY protocol version, "off", "v1" or "v2" (0, 1, 2) */
    T_CIDR,     /* struct cidr: "ADDR/PREFIX" or "ADDR" */
    T_LOG_FORMAT,   /* enum request_log_format field: "json" or "text" */
    T_FRACTION, /* double field: a number 0.0-1.0 */
    T_PATTERN,  /* a route's pattern (struct route_config): char[] field + length at aux; min is the
                 * enum route_kind the key sets; match keeps regex escapes (\. stays \.) */
};

#define S_REQUIRED   0x001u  /* must be set (for a list item: in each item) */
#define S_RELOAD     0x002u  /* a reload may change it in a running service */
#define S_OFF        0x004u  /* -1 is allowed too: off, or unlimited */
#define S_ITEM_ONLY  0x008u  /* only in a list item, not at the top level (a service's name) */
#define S_INHERIT    0x010u  /* next to services:, the top-level value is each service's default */
#define S_UNIQUE     0x020u  /* unique among the items of its list (when set) */
#define S_ALIAS      0x040u  /* another way to write a list's field (local.host/port is
                              * listen[1]): neither dumped nor compared on its own */
#define S_OMIT_EMPTY 0x080u  /* dumped only when not "" or 0 (a target's host/port vs unix) */

struct scope;
struct setting;

/* The items of a T_LIST setting and where they live in the parent. */
struct list_def {
    const struct scope *items;      /* items are mappings of this scope, or ... */
    const struct setting *item;     /* ... scalars parsed by this setting (offset 0 in an item) */
    size_t count_offset;            /* int in the parent: how many items */
    size_t array_offset;            /* in the parent: the array, or a malloc'd pointer to it */
    bool pointer;                   /* array_offset holds a pointer (grown while loading) */
    size_t item_size;
    int max;
    bool env;                       /* items are numbered in the environment (TARGET_HOST_n) */
    const char *noun;               /* "target": "no such target", "too many targets" */
    const char *plural;             /* "targets" */
};

struct setting {
    const char *path;       /* YAML: "local.port", relative to its scope; "" for a list's item */
    const char *env;        /* "LOCAL_PORT"; in a list item, the part before n; NULL: none */
    const char *env_suffix; /* in a list item, the part after n ("_KEEP_ALIVE"); else "" */
    enum setting_type type;
    size_t offset;          /* of the field in the scope's struct */
    size_t size;
    const char *def;        /* parsed like any value; NULL: none (required, or derived) */
    long min, max;          /* numbers */
    const char *unit;       /* "ms", "bytes" or "" */
    unsigned flags;
    size_t aux;             /* T_BYTES: offset of the size_t length */
    const struct list_def *list;    /* T_LIST */
};

/* The settings of one kind of mapping. Sections ("local.") stay together:
 * the dump follows the table order. */
struct scope {
    const char *noun;       /* for messages: "a service takes ..." */
    const struct setting *settings;
    size_t n;
};

/* The top level: log_level, log_file, shutdown_timeout, services. */
extern const struct scope config_global_scope;
/* A service; at the top level too (the single-service form, or the
 * defaults of services[] for the S_INHERIT settings). */
extern const struct scope config_service_scope;
/* An item of a service's targets. */
extern const struct scope config_target_scope;
/* An item of a service's routes (SPEC §10). */
extern const struct scope config_route_scope;

/* The setting of sc whose path is the first len bytes of path, or NULL. */
const struct setting *config_schema_find(const struct scope *sc, const char *path, size_t len);

/* Whether path is a section of sc: a mapping holding settings ("health"). */
bool config_schema_is_section(const struct scope *sc, const char *path);

/* Writes the keys of section (or of the scope when section is "") into out,
 * comma separated, in table order. top leaves out S_ITEM_ONLY settings. */
void config_schema_keys(const struct scope *sc, const char *section, bool top, char *out, size_t n);

/* What a value of s is, for messages: "a port". */
const char *config_schema_noun(const struct setting *s);

/* What values s allows, for messages: "-1 or 1-86400000 ms"; "" if any.
 * yaml: the words a YAML boolean takes (on/off too). */
void config_schema_allowed(const struct setting *s, bool yaml, char *out, size_t n);

#endif
