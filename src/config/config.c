/* The configuration loader: defaults, then the YAML and environment front
 * ends feeding the setters here, then what no single value can tell
 * (inheritance, listen addresses, targets, relations, mode, resolving). */
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "codec.h"
#include "config.h"
#include "route.h"
#include "config_env.h"
#include "config_load.h"
#include "config_schema.h"
#include "config_yaml.h"
#include "script.h"

static const char *const mode_names[] = {
    [MODE_AUTO] = "auto",
    [MODE_PROXY] = "proxy",
    [MODE_FIFO] = "fifo",
    [MODE_FUNNEL] = "funnel",
};

/* A value quoted for a message: at most QUOTE_CHARS characters, each at most
 * 4 bytes (\xNN), plus "..." and the quotes. */
#define QUOTE_CHARS 64
#define QUOTE_MAX (QUOTE_CHARS * 4 + 8)
/* A setting's name as written: "services[256].targets[1024].keep_alive (FILE line N)". */
#define NAME_MAX_LEN (CONFIG_PATH_MAX + 128)
#define INST_PATH_MAX 128

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

/* ---- instances ---------------------------------------------------------- */

static struct where *where_of(const struct inst *i, const struct setting *s)
{
    return &i->where[s - i->scope->settings];
}

static struct inst_list *list_of(const struct inst *i, const struct setting *list)
{
    return &i->lists[list - i->scope->settings];
}

/* The setting of sc at path: one the loader names itself, so it exists. */
static const struct setting *setting_of(const struct scope *sc, const char *path)
{
    const struct setting *s = config_schema_find(sc, path, strlen(path));

    if (s == NULL)
        abort();
    return s;
}

static const struct setting *svc_setting(const char *path)
{
    return setting_of(&config_service_scope, path);
}

char *config_load_base(const struct inst *i)
{
    if (i->parent == NULL)
        return i->base;
    char *parent = config_load_base(i->parent);
    const struct list_def *ld = i->list->list;
    char *array = ld->pointer ? *(char **)(void *)(parent + ld->array_offset) : parent + ld->array_offset;
    return array + (size_t)(i->index - 1) * ld->item_size;
}

static int inst_init(struct inst *i, const struct scope *sc)
{
    i->scope = sc;
    i->where = calloc(sc->n, sizeof(*i->where));
    i->lists = calloc(sc->n, sizeof(*i->lists));
    return i->where != NULL && i->lists != NULL ? PMX_OK : PMX_ERR;
}

/* Frees what i holds (its items too), not i itself. */
static void inst_free(struct inst *i)
{
    if (i->lists != NULL) {
        for (size_t k = 0; k < i->scope->n; k++) {
            struct inst_list *il = &i->lists[k];
            for (int n = 0; il->items != NULL && n < il->n; n++) {
                inst_free(il->items[n]);
                free(il->items[n]);
            }
            free(il->items);
            free(il->where);
        }
    }
    free(i->lists);
    free(i->where);
    i->lists = NULL;
    i->where = NULL;
}

bool config_load_services_form(const struct load *l)
{
    return list_of(&l->root, setting_of(&config_global_scope, "services"))->line > 0;
}

/* The YAML path of i: "" at the top, "services[2]", "services[2].targets[1]". */
static void inst_path(const struct inst *i, char *out, size_t n)
{
    if (i->parent == NULL) {
        if (n > 0)
            *out = '\0';
        return;
    }
    inst_path(i->parent, out, n);
    size_t len = strlen(out);
    snprintf(out + len, n - len, "%s%s[%d]", len > 0 ? "." : "", i->list->path, i->index);
}

/*
 * Names setting s of i (with item > 0: scalar item number item of list s) as
 * the user wrote it: the environment name when it came from there, the YAML
 * path and its line when from the file. A value still at its default is
 * named as the user would set it: in the YAML file when there is one (a
 * list item: when the file has the item, at the item's line). An inherited
 * value is named where the top level sets it. With full false, the file and
 * line are left out.
 */
static void name_of(const struct load *l, const struct inst *i, const struct setting *s, int item,
                    bool full, char *out, size_t n)
{
    struct where w = item > 0 ? list_of(i, s)->where[item - 1] : *where_of(i, s);
    char prefix[INST_PATH_MAX], path[INST_PATH_MAX + 64];

    if (w.inherited)
        *prefix = '\0';
    else
        inst_path(i, prefix, sizeof prefix);
    if (item > 0)
        snprintf(path, sizeof path, "%s%s%s[%d]", prefix, *prefix ? "." : "", s->path, item);
    else
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", s->path);

    if (w.origin == FROM_DEFAULT && l->file != NULL) {
        if (i->parent == NULL) {
            w.origin = FROM_YAML;
        } else if (i->line > 0) {
            w.origin = FROM_YAML;
            w.line = i->line;
        }
    }
    if (w.origin != FROM_YAML && s->env != NULL) {
        if (i->parent != NULL)
            snprintf(out, n, "%s%d%s", s->env, i->index, s->env_suffix);
        else
            snprintf(out, n, "%s", s->env);
    } else if (!full || l->file == NULL) {
        snprintf(out, n, "%s", path);
    } else if (w.line > 0) {
        snprintf(out, n, "%s (%s line %d)", path, l->file, w.line);
    } else {
        snprintf(out, n, "%s (%s)", path, l->file);
    }
}

/* ---- values ------------------------------------------------------------- */

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

/* Paths go into one-line logs: no control characters. */
static bool path_chars_ok(const char *v)
{
    for (; *v != '\0'; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Decodes the escapes \r \n \t \\ \xNN of v into out (at most max bytes).
 * Returns the length, -1 for a bad escape, -2 when it does not fit. */
static long decode_bytes(const char *v, char *out, size_t max)
{
    size_t o = 0;

    for (const char *p = v; *p != '\0'; p++) {
        char ch = *p;
        if (ch == '\\') {
            p++;
            switch (*p) {
            case 'r': ch = '\r'; break;
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case '\\': ch = '\\'; break;
            case 'x': {
                int hi = hex_digit(p[1]);
                int lo = hi < 0 ? -1 : hex_digit(p[2]);
                if (lo < 0)
                    return -1;
                ch = (char)(hi << 4 | lo);
                p += 2;
                break;
            }
            default:
                return -1;
            }
        }
        if (o == max)
            return -2;
        out[o++] = ch;
    }
    return (long)o;
}

/* Decodes a route's match: regex. \xNN \r \n \t become the byte (POSIX
 * gives them no meaning in a regex); any other backslash pair is kept for
 * regcomp (\. \\ \( ...). A NUL byte cannot be part of a regex (regcomp
 * takes a C string). Returns the length, -1 for a bad \x, -2 when it does
 * not fit, -3 for \x00. */
static long decode_regex(const char *v, char *out, size_t max)
{
    size_t o = 0;

    for (const char *p = v; *p != '\0'; p++) {
        char pair[2] = { *p, '\0' };
        size_t n = 1;
        if (*p == '\\' && (p[1] == 'x' || p[1] == 'r' || p[1] == 'n' || p[1] == 't')) {
            p++;
            if (*p == 'x') {
                int hi = hex_digit(p[1]);
                int lo = hi < 0 ? -1 : hex_digit(p[2]);
                if (lo < 0)
                    return -1;
                if (hi == 0 && lo == 0)
                    return -3;
                pair[0] = (char)(hi << 4 | lo);
                p += 2;
            } else {
                pair[0] = *p == 'r' ? '\r' : *p == 'n' ? '\n' : '\t';
            }
        } else if (*p == '\\' && p[1] != '\0') {
            pair[1] = *++p;
            n = 2;
        }
        if (o + n > max)
            return -2;
        memcpy(out + o, pair, n);
        o += n;
    }
    return (long)o;
}

/* A route's sni: or http_host: name: letters, digits, '-', '_' and '.',
 * optionally after a leading "*." (one or more labels); lowercased in
 * place, as names are compared without case. */
static bool route_host_ok(char *v, size_t len)
{
    size_t start = 0;

    if (len >= 2 && v[0] == '*' && v[1] == '.')
        start = 2;
    if (start == len || v[start] == '.' || v[len - 1] == '.')
        return false;
    for (size_t i = start; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch >= 'A' && ch <= 'Z')
            v[i] = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
                   (ch == '.' && v[i - 1] != '.')))
            return false;
    }
    return true;
}

static bool name_chars_ok(const struct setting *s, const char *v)
{
    size_t len = strlen(v);

    if (len < (size_t)s->min || len > (size_t)s->max)
        return false;
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (s->type == T_NAME ? !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-')
                              : (*p < 0x20 || *p == 0x7f))
            return false;
    }
    return true;
}

/* Parses "HOST:PORT", "[IPV6]:PORT" or "unix:/path" into the listen_config
 * at field. */
static int parse_listen(const char *value, struct listen_config *lc, const char *name,
                        const char *q, char *err, size_t errlen)
{
    char why[128];

    if (strlen(value) >= sizeof lc->spec) {
        snprintf(err, errlen, "%s: %s is too long (at most %zu bytes)", name, q, sizeof lc->spec - 1);
        return PMX_ERR;
    }
    /* Before net_parse_listen(), whose reason quotes parts of the value:
     * the message stays one line. */
    if (!path_chars_ok(value)) {
        snprintf(err, errlen, "%s: %s is not a listen address (HOST:PORT, [IPV6]:PORT or unix:/path)",
                 name, q);
        return PMX_ERR;
    }
    if (net_parse_listen(value, &lc->where, why, sizeof why) != PMX_OK) {
        snprintf(err, errlen, "%s: %s %s", name, q, why);
        return PMX_ERR;
    }
    if (!lc->where.unix_socket && !host_chars_ok(lc->where.host)) {
        snprintf(err, errlen, "%s: %s is not a listen address (HOST:PORT, [IPV6]:PORT or unix:/path)",
                 name, q);
        return PMX_ERR;
    }
    memcpy(lc->spec, value, strlen(value) + 1);
    memset(&lc->addr, 0, sizeof lc->addr);
    lc->addr_len = 0;
    return PMX_OK;
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
    config_schema_allowed(s, from == FROM_YAML, allowed, sizeof allowed);

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
    case T_OCTAL: {
        size_t len = strlen(value);
        if (len == 0 || len > 8 || strspn(value, "01234567") != len)
            goto not_a;
        x = strtol(value, NULL, 8);
        if (x < s->min || x > s->max) {
            snprintf(err, errlen, "%s: %s is out of range (%s)", name, q, allowed);
            return PMX_ERR;
        }
        *(long *)field = x;
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
    case T_BALANCE: {
        enum balance_strategy bs;
        if (balancer_strategy_parse(value, &bs) != PMX_OK)
            goto not_a;
        *(enum balance_strategy *)field = bs;
        return PMX_OK;
    }
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
    case T_NAME:
    case T_LABEL:
        if (!name_chars_ok(s, value))
            goto not_a;
        memcpy(field, value, strlen(value) + 1);
        return PMX_OK;
    case T_UNIX:
        if (*value == '\0' || !path_chars_ok(value))
            goto not_a;
        /* fall through */
    case T_PATH:
        if (strlen(value) >= s->size)
            goto too_long;
        memcpy(field, value, strlen(value) + 1);
        return PMX_OK;
    case T_PATTERN: {
        char bytes[CONFIG_ROUTE_TEXT_MAX];
        long len = s->min == ROUTE_MATCH ? decode_regex(value, bytes, PMX_MIN(s->size, sizeof bytes) - 1)
                                         : decode_bytes(value, bytes, PMX_MIN(s->size, sizeof bytes) - 1);
        if (len == -1) {
            snprintf(err, errlen, "%s: %s has a bad escape (%s)", name, q, allowed);
            return PMX_ERR;
        }
        if (len == -2) {
            snprintf(err, errlen, "%s: %s is too long (at most %zu bytes after escapes)",
                     name, q, s->size - 1);
            return PMX_ERR;
        }
        if (len == -3) {
            snprintf(err, errlen, "%s: %s has a NUL byte (\\x00), which a regex cannot hold "
                     "(match it with [^...] or use prefix:)", name, q);
            return PMX_ERR;
        }
        if ((s->min != ROUTE_MATCH && len == 0) ||
            ((s->min == ROUTE_SNI || s->min == ROUTE_HTTP_HOST) && !route_host_ok(bytes, (size_t)len)))
            goto not_a;
        memcpy(field, bytes, (size_t)len);
        ((char *)field)[len] = '\0';
        *(size_t *)(void *)(base + s->aux) = (size_t)len;
        ((struct route_config *)(void *)base)->kind = (enum route_kind)s->min;
        return PMX_OK;
    }
    case T_BYTES: {
        char bytes[CONFIG_ROUTE_TEXT_MAX];
        long len = decode_bytes(value, bytes, PMX_MIN(s->size, sizeof bytes) - 1);
        if (len == -1) {
            snprintf(err, errlen, "%s: %s has a bad escape (%s)", name, q, allowed);
            return PMX_ERR;
        }
        if (len < 0) {
            snprintf(err, errlen, "%s: %s is too long (at most %zu bytes after escapes)",
                     name, q, s->size - 1);
            return PMX_ERR;
        }
        memcpy(field, bytes, (size_t)len);
        ((char *)field)[len] = '\0';
        *(size_t *)(void *)(base + s->aux) = (size_t)len;
        return PMX_OK;
    }
    case T_LISTEN:
        return parse_listen(value, field, name, q, err, errlen);
    case T_SEND_PROXY:
        if (strcmp(value, "off") == 0)
            *(int *)field = 0;
        else if (strcmp(value, "v1") == 0)
            *(int *)field = 1;
        else if (strcmp(value, "v2") == 0)
            *(int *)field = 2;
        else
            goto not_a;
        return PMX_OK;
    case T_CIDR: {
        char why[128];
        if (cidr_parse(value, field, why, sizeof why) != PMX_OK) {
            snprintf(err, errlen, "%s: %s is not an address range: %s (%s)", name, q, why, allowed);
            return PMX_ERR;
        }
        return PMX_OK;
    }
    case T_LOG_FORMAT:
        if (strcmp(value, "json") == 0)
            *(enum request_log_format *)field = REQUEST_LOG_JSON;
        else if (strcmp(value, "text") == 0)
            *(enum request_log_format *)field = REQUEST_LOG_TEXT;
        else
            goto not_a;
        return PMX_OK;
    case T_FRACTION: {
        char *end;
        errno = 0;
        double f = strtod(value, &end);
        /* Digits only: no "nan", "inf" or hex floats. */
        if (*value == '\0' || *end != '\0' || errno != 0 || strspn(value, "0123456789.") != strlen(value))
            goto not_a;
        if (!(f >= 0.0 && f <= 1.0)) {
            snprintf(err, errlen, "%s: %s is out of range (%s)", name, q, allowed);
            return PMX_ERR;
        }
        *(double *)field = f;
        return PMX_OK;
    }
    case T_LIST:
        break;
    }
not_a:
    if (*allowed != '\0')
        snprintf(err, errlen, "%s: %s is not %s (%s)", name, q, config_schema_noun(s), allowed);
    else
        snprintf(err, errlen, "%s: %s is not %s", name, q, config_schema_noun(s));
    return PMX_ERR;
too_long:
    snprintf(err, errlen, "%s: %s is too long (at most %zu bytes)", name, q, s->size - 1);
    return PMX_ERR;
}

/* Sets every setting of sc that has a default in the struct at base. */
static int apply_defaults(const struct scope *sc, char *base, char *err, size_t errlen)
{
    for (size_t k = 0; k < sc->n; k++) {
        const struct setting *s = &sc->settings[k];
        if (s->def != NULL && s->type != T_LIST &&
            setting_parse(s, base, s->def, FROM_DEFAULT, s->path, err, errlen) != PMX_OK)
            return PMX_ERR;
    }
    return PMX_OK;
}

/* ---- the setters -------------------------------------------------------- */

int config_load_set(struct load *l, struct inst *i, const struct setting *s, const char *value,
                    enum origin from, int line, char *err, size_t errlen)
{
    struct where *w = where_of(i, s);
    struct where old = *w;
    char name[NAME_MAX_LEN];

    *w = (struct where){ from, line, false };
    name_of(l, i, s, 0, true, name, sizeof name);
    if (setting_parse(s, config_load_base(i), value, from, name, err, errlen) != PMX_OK) {
        *w = old;
        return PMX_ERR;
    }
    return PMX_OK;
}

void config_load_list(struct inst *i, const struct setting *list, int line)
{
    list_of(i, list)->line = line;
}

/* Makes room for cap items of list of i: the parent's array when it is a
 * pointer, and the instances or wheres. */
static int list_grow(struct inst *i, const struct setting *list, int cap)
{
    const struct list_def *ld = list->list;
    struct inst_list *il = list_of(i, list);
    size_t old = (size_t)il->cap, want = (size_t)cap;

    if (ld->pointer) {
        char **array = (char **)(void *)(config_load_base(i) + ld->array_offset);
        char *grown = realloc(*array, want * ld->item_size);
        if (grown == NULL)
            return PMX_ERR;
        memset(grown + old * ld->item_size, 0, (want - old) * ld->item_size);
        *array = grown;
    }
    if (ld->items != NULL) {
        struct inst **items = realloc(il->items, want * sizeof(struct inst *));
        if (items == NULL)
            return PMX_ERR;
        memset(items + old, 0, (want - old) * sizeof(struct inst *));
        il->items = items;
    } else {
        struct where *where = realloc(il->where, want * sizeof(*where));
        if (where == NULL)
            return PMX_ERR;
        memset(where + old, 0, (want - old) * sizeof(*where));
        il->where = where;
    }
    il->cap = cap;
    return PMX_OK;
}

int config_load_item(struct load *l, struct inst *i, const struct setting *list, int n,
                     int line, struct inst **item, char *err, size_t errlen)
{
    const struct list_def *ld = list->list;
    struct inst_list *il = list_of(i, list);

    while (il->n < n) {
        if (il->n == il->cap && list_grow(i, list, PMX_MIN(PMX_MAX(il->cap * 2, 4), ld->max)) != PMX_OK)
            goto oom;
        struct inst *child = NULL;
        if (ld->items != NULL) {
            child = calloc(1, sizeof(*child));
            if (child == NULL)
                goto oom;
            il->items[il->n] = child;
        }
        il->n++;
        *(int *)(void *)(config_load_base(i) + ld->count_offset) = il->n;
        if (child == NULL)
            continue;
        /* Counted already: inst_free() frees it whatever happens next. */
        child->scope = ld->items;
        if (inst_init(child, ld->items) != PMX_OK)
            goto oom;
        child->parent = i;
        child->list = list;
        child->index = il->n;
        if (apply_defaults(ld->items, config_load_base(child), err, errlen) != PMX_OK)
            return PMX_ERR;
    }
    *item = NULL;
    if (ld->items != NULL) {
        *item = il->items[n - 1];
        if (line > 0)
            (*item)->line = line;
    }
    return PMX_OK;
oom:
    snprintf(err, errlen, "out of memory loading the configuration");
    return PMX_ERR;
}

int config_load_set_item(struct load *l, struct inst *i, const struct setting *list, int n,
                         const char *value, enum origin from, int line, char *err, size_t errlen)
{
    const struct list_def *ld = list->list;
    struct inst *unused;
    char name[NAME_MAX_LEN];

    if (config_load_item(l, i, list, n, line, &unused, err, errlen) != PMX_OK)
        return PMX_ERR;
    list_of(i, list)->where[n - 1] = (struct where){ from, line, false };
    name_of(l, i, list, n, true, name, sizeof name);
    char *base = config_load_base(i);
    char *array = ld->pointer ? *(char **)(void *)(base + ld->array_offset) : base + ld->array_offset;
    return setting_parse(ld->item, array + (size_t)(n - 1) * ld->item_size, value, from, name,
                         err, errlen);
}

/* ---- what no single value can tell -------------------------------------- */

/* Resolves host:port (first result) into ss/len. Returns PMX_OK, or PMX_ERR
 * with the reason in *why. */
static int resolve(const char *host, int port, bool passive, bool no_dns,
                   struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
    struct addrinfo hints, *res;
    char service[16];

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) | (no_dns ? AI_NUMERICHOST : 0);
    snprintf(service, sizeof service, "%d", port);
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc == EAI_NONAME && no_dns) {
        /* A name: left unresolved (addr_len 0) for the caller to resolve
         * off the loop. */
        memset(ss, 0, sizeof *ss);
        *len = 0;
        return PMX_OK;
    }
    if (rc != 0) {
        *why = rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc);
        return PMX_ERR;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return PMX_OK;
}

static void unix_addr(const char *path, struct sockaddr_storage *ss, socklen_t *len)
{
    struct sockaddr_un *sun = (struct sockaddr_un *)ss;

    memset(ss, 0, sizeof *ss);
    sun->sun_family = AF_UNIX;
    snprintf(sun->sun_path, sizeof sun->sun_path, "%s", path);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(sun->sun_path) + 1);
}

static int resolve_error(const char *name, const char *host, const char *why, char *err, size_t errlen)
{
    char q[QUOTE_MAX];
    quote(host, q);
    snprintf(err, errlen, "%s: %s cannot be resolved (%s)", name, q, why);
    return PMX_ERR;
}

/* Why auto chose what it chose, or "explicit". */
const char *config_mode_reason(const struct service_config *s)
{
    if (s->mode != MODE_AUTO)
        return "explicit";
    if (s->max_connections == s->connections)
        return "auto: max_connections == connections";
    if (s->connections == 1)
        return "auto: connections == 1";
    return "auto: connections > 1, max_connections != connections";
}

static enum exchange_mode derive_mode(const struct service_config *s)
{
    if (s->mode != MODE_AUTO)
        return s->mode;
    if (s->max_connections == s->connections)
        return MODE_PROXY;
    if (s->connections == 1)
        return MODE_FIFO;
    return MODE_FUNNEL;
}

/* Services form: a service takes the top-level exchange, pool, health and
 * limits values it does not set itself, key by key. */
static void inherit(struct load *l, struct inst *svc)
{
    char *to = config_load_base(svc);
    const char *from = (const char *)&l->top_svc;

    for (size_t k = 0; k < config_service_scope.n; k++) {
        const struct setting *s = &config_service_scope.settings[k];
        struct where *sw = &svc->where[k], *tw = &l->top.where[k];
        if (!(s->flags & S_INHERIT) || sw->origin != FROM_DEFAULT || tw->origin == FROM_DEFAULT)
            continue;
        memcpy(to + s->offset, from + s->offset, s->size);
        if (s->type == T_BYTES)
            memcpy(to + s->aux, from + s->aux, sizeof(size_t));
        *sw = *tw;
        sw->inherited = true;
    }
}

/* Services form: the top level holds no service of its own. */
static int check_top_unused(struct load *l, char *err, size_t errlen)
{
    char name[NAME_MAX_LEN];

    for (size_t k = 0; k < config_service_scope.n; k++) {
        const struct setting *s = &config_service_scope.settings[k];
        if (s->flags & S_INHERIT)
            continue;
        int line = s->type == T_LIST ? list_of(&l->top, s)->line : 0;
        if (line == 0 && l->top.where[k].origin == FROM_DEFAULT)
            continue;
        if (line > 0)
            snprintf(name, sizeof name, "%s (%s line %d)", s->path, l->file, line);
        else
            name_of(l, &l->top, s, 0, true, name, sizeof name);
        snprintf(err, errlen, "%s: not allowed next to services: (set it in each service; the top "
                 "level holds only the exchange, pool, health and limits defaults)", name);
        return PMX_ERR;
    }
    return PMX_OK;
}

/* Whether listen[k + 1] of svc is the local: form's (local.host/local.port,
 * or LOCAL_HOST/LOCAL_PORT over the file's listen[1]). */
static bool listen_is_local(const struct inst *svc, int k)
{
    const struct where *wh = where_of(svc, svc_setting("local.host"));
    const struct where *wp = where_of(svc, svc_setting("local.port"));

    return list_of(svc, svc_setting("listen"))->n == 0 ||
           (k == 0 && (wh->origin == FROM_ENV || wp->origin == FROM_ENV));
}

/* Names listen[k + 1] of svc; a local: form address by the setting given. */
static void listen_name(const struct load *l, const struct inst *svc, int k, const char *local,
                        bool full, char *out, size_t n)
{
    if (listen_is_local(svc, k))
        name_of(l, svc, svc_setting(local), 0, full, out, n);
    else
        name_of(l, svc, svc_setting("listen"), k + 1, full, out, n);
}

/* Writes "host:port" or "[host]:port". */
static void host_port(const char *host, int port, char *out, size_t n)
{
    snprintf(out, n, strchr(host, ':') != NULL ? "[%s]:%d" : "%s:%d", host, port);
}

/* The listen addresses of svc: the listen list, or the local: form
 * (local.host/local.port, LOCAL_HOST/LOCAL_PORT) as listen[1]. The
 * environment overrides the file's listen[1]. */
static int finish_listen(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    const struct setting *ls = svc_setting("listen");
    const struct setting *lh = svc_setting("local.host"), *lp = svc_setting("local.port");
    struct inst_list *il = list_of(svc, ls);
    const struct where *wh = where_of(svc, lh), *wp = where_of(svc, lp);
    struct net_listen_spec *first = &sc->listen[0].where;
    char name[NAME_MAX_LEN], other[NAME_MAX_LEN];

    if (il->n > 0) {
        const struct setting *local = wh->origin == FROM_YAML ? lh : wp->origin == FROM_YAML ? lp : NULL;
        if (local != NULL) {
            name_of(l, svc, local, 0, true, name, sizeof name);
            name_of(l, svc, ls, 1, false, other, sizeof other);
            snprintf(err, errlen, "%s: conflicts with %s (line %d): give listen or local.host/local.port, "
                     "not both", name, other, il->where[0].line);
            return PMX_ERR;
        }
        if (wh->origin != FROM_ENV && wp->origin != FROM_ENV)
            return PMX_OK;
        /* LOCAL_HOST/LOCAL_PORT replace the file's listen[1]. */
        if (first->unix_socket) {
            first->unix_socket = false;
            first->path[0] = '\0';
        }
        if (first->host[0] == '\0')
            snprintf(first->host, sizeof first->host, "%s", lh->def);
    } else if (svc->parent != NULL && wh->origin == FROM_DEFAULT && wp->origin == FROM_DEFAULT) {
        name_of(l, svc, ls, 0, true, name, sizeof name);
        snprintf(err, errlen, "%s: missing (at least one listen address is required: "
                 "listen: [HOST:PORT, [IPV6]:PORT or unix:/path], or local: {host, port})", name);
        return PMX_ERR;
    }
    if (first->port == 0) {
        char allowed[64];
        if (il->n > 0)      /* over a unix listen[1]: LOCAL_HOST alone is not enough */
            snprintf(name, sizeof name, "%s", lp->env);
        else
            name_of(l, svc, lp, 0, true, name, sizeof name);
        config_schema_allowed(lp, false, allowed, sizeof allowed);
        snprintf(err, errlen, "%s: missing (required; %s %s)", name, config_schema_noun(lp), allowed);
        return PMX_ERR;
    }
    first->unix_socket = false;
    host_port(first->host, first->port, sc->listen[0].spec, sizeof sc->listen[0].spec);
    if (sc->nlisten == 0)
        sc->nlisten = 1;
    return PMX_OK;
}

/* Settings that must be set: in the single-service form and in each
 * service (after inheritance). The local: port is finish_listen's. */
static int check_required(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    char name[NAME_MAX_LEN], allowed[256];

    for (size_t k = 0; k < svc->scope->n; k++) {
        const struct setting *s = &svc->scope->settings[k];
        if (!(s->flags & S_REQUIRED) || (s->flags & S_ALIAS) || svc->where[k].origin != FROM_DEFAULT)
            continue;
        if ((s->flags & S_ITEM_ONLY) && svc->parent == NULL)
            continue;
        name_of(l, svc, s, 0, true, name, sizeof name);
        config_schema_allowed(s, false, allowed, sizeof allowed);
        snprintf(err, errlen, "%s: missing (required; %s %s)", name, config_schema_noun(s), allowed);
        return PMX_ERR;
    }
    return PMX_OK;
}

/* Values of the S_UNIQUE settings set in the items of list of i differ. */
static int check_unique(struct load *l, struct inst *i, const struct setting *list, char *err, size_t errlen)
{
    const struct inst_list *il = list_of(i, list);
    const struct scope *sc = list->list->items;
    char name[NAME_MAX_LEN], other[NAME_MAX_LEN], q[QUOTE_MAX];

    for (size_t k = 0; k < sc->n; k++) {
        const struct setting *s = &sc->settings[k];
        if (!(s->flags & S_UNIQUE))
            continue;
        for (int a = 1; a < il->n; a++) {
            const struct inst *ia = il->items[a];
            if (ia->where[k].origin == FROM_DEFAULT)
                continue;
            const char *va = config_load_base(ia) + s->offset;
            for (int b = 0; b < a; b++) {
                const struct inst *ib = il->items[b];
                if (ib->where[k].origin == FROM_DEFAULT || strcmp(va, config_load_base(ib) + s->offset) != 0)
                    continue;
                name_of(l, ia, s, 0, true, name, sizeof name);
                name_of(l, ib, s, 0, false, other, sizeof other);
                quote(va, q);
                if (ib->where[k].origin == FROM_YAML)
                    snprintf(err, errlen, "%s: %s is used twice (also %s, line %d)", name, q, other,
                             ib->where[k].line);
                else
                    snprintf(err, errlen, "%s: %s is used twice (also %s)", name, q, other);
                return PMX_ERR;
            }
        }
    }
    return PMX_OK;
}

static bool target_name_taken(const struct service_config *sc, int self, const char *name)
{
    for (int j = 0; j < sc->ntargets; j++) {
        if (j != self && strcmp(sc->targets[j].name, name) == 0)
            return true;
    }
    return false;
}

/* A target without a name gets host:port or its unix path; when another
 * target has that name already, "#2", "#3"... */
static void name_targets(struct inst *svc, const struct setting *ts)
{
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    const struct inst_list *il = list_of(svc, ts);
    const struct setting *tn = setting_of(&config_target_scope, "name");

    for (int k = 0; k < sc->ntargets; k++) {
        struct target_config *t = &sc->targets[k];
        char base[CONFIG_TARGET_NAME_MAX - 12];     /* room for "#N" */
        if (where_of(il->items[k], tn)->origin != FROM_DEFAULT)
            continue;
        if (t->unix_path[0] != '\0')
            snprintf(base, sizeof base, "%s", t->unix_path);
        else
            host_port(t->host, t->port, base, sizeof base);
        /* Start after the earlier unnamed targets of the same address. */
        int same = 0;
        for (int j = 0; j < k; j++) {
            const struct target_config *o = &sc->targets[j];
            same += where_of(il->items[j], tn)->origin == FROM_DEFAULT && strcmp(o->host, t->host) == 0 &&
                    o->port == t->port && strcmp(o->unix_path, t->unix_path) == 0;
        }
        for (int n = same + 1;; n++) {
            if (n == 1)
                snprintf(t->name, sizeof t->name, "%s", base);
            else
                snprintf(t->name, sizeof t->name, "%s#%d", base, n);
            if (!target_name_taken(sc, k, t->name))
                break;
        }
    }
}

/* Every target of svc: host and port, or unix; names; at least one. */
static int finish_targets(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    const struct setting *ts = svc_setting("targets");
    const struct inst_list *il = list_of(svc, ts);
    const struct setting *th = setting_of(&config_target_scope, "host");
    const struct setting *tp = setting_of(&config_target_scope, "port");
    const struct setting *tu = setting_of(&config_target_scope, "unix");
    char name[NAME_MAX_LEN];

    if (il->n == 0) {
        if (svc->parent == NULL && l->file == NULL)
            snprintf(err, errlen, "%s1: missing (at least one target is required)", th->env);
        else {
            name_of(l, svc, ts, 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: missing (at least one target is required)", name);
        }
        return PMX_ERR;
    }
    for (int k = 0; k < il->n; k++) {
        const struct inst *t = il->items[k];
        bool host = where_of(t, th)->origin != FROM_DEFAULT;
        bool port = where_of(t, tp)->origin != FROM_DEFAULT;
        if (where_of(t, tu)->origin != FROM_DEFAULT) {
            if (!host && !port)
                continue;
            name_of(l, t, tu, 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: a target has host and port, or unix, not both", name);
            return PMX_ERR;
        }
        if (!host || !port) {
            name_of(l, t, host ? tp : th, 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: missing (every target needs a host and a port, or a unix path)", name);
            return PMX_ERR;
        }
    }
    if (check_unique(l, svc, ts, err, errlen) != PMX_OK)
        return PMX_ERR;
    name_targets(svc, ts);
    return PMX_OK;
}

/* Relations between settings of svc; derives the mode. */
static int finish_relations(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    char name[NAME_MAX_LEN], other[NAME_MAX_LEN];

    if (sc->backoff_max < sc->backoff_min) {
        const struct setting *smin = svc_setting("pool.backoff_min");
        const struct setting *smax = svc_setting("pool.backoff_max");
        bool max_set = where_of(svc, smax)->origin != FROM_DEFAULT;
        name_of(l, svc, max_set ? smax : smin, 0, true, name, sizeof name);
        name_of(l, svc, max_set ? smin : smax, 0, false, other, sizeof other);
        snprintf(err, errlen, "%s: \"%ld\" is out of range (must be %s %s, %ld)", name,
                 max_set ? sc->backoff_max : sc->backoff_min, max_set ? ">=" : "<=", other,
                 max_set ? sc->backoff_min : sc->backoff_max);
        return PMX_ERR;
    }
    if (sc->mode == MODE_FIFO && sc->connections != 1) {
        name_of(l, svc, svc_setting("exchange.mode"), 0, true, name, sizeof name);
        name_of(l, svc, svc_setting("pool.connections"), 0, false, other, sizeof other);
        snprintf(err, errlen, "%s: \"fifo\" needs exactly 1 upstream connection (%s is %d)",
                 name, other, sc->connections);
        return PMX_ERR;
    }
    sc->effective_mode = derive_mode(sc);
    /* A proxy-only codec (mysql) follows one client's session on its own
     * upstream connection; fifo/funnel would need it to frame requests. */
    if (codec_find(sc->codec) != NULL && codec_find(sc->codec)->proxy_only && sc->effective_mode != MODE_PROXY) {
        name_of(l, svc, svc_setting("exchange.codec"), 0, true, name, sizeof name);
        snprintf(err, errlen, "%s: \"%s\" needs exchange.mode proxy (the mode is %s)", name, sc->codec,
                 config_mode_name(sc->effective_mode));
        return PMX_ERR;
    }
    /* PROXY protocol: a header goes first on an upstream connection of one
     * client, which only proxy mode has; one is read only from the
     * balancers listed (any client could forge its address otherwise). */
    if (sc->send_proxy != 0 && sc->effective_mode != MODE_PROXY) {
        name_of(l, svc, svc_setting("send_proxy"), 0, true, name, sizeof name);
        snprintf(err, errlen, "%s: \"v%d\" needs exchange.mode proxy (the mode is %s: upstream connections "
                 "are shared by clients)", name, sc->send_proxy, config_mode_name(sc->effective_mode));
        return PMX_ERR;
    }
    if (sc->accept_proxy && sc->naccept_proxy_from == 0) {
        name_of(l, svc, svc_setting("accept_proxy"), 0, true, name, sizeof name);
        snprintf(err, errlen, "%s: true needs accept_proxy_from (the address ranges of the balancers "
                 "allowed to send a PROXY header, e.g. [10.0.0.0/8])", name);
        return PMX_ERR;
    }
    return PMX_OK;
}

static const struct setting *route_setting(const char *path)
{
    return setting_of(&config_route_scope, path);
}

/* Whether route setting path was given in item it. */
static bool route_set(const struct inst *it, const char *path)
{
    return where_of(it, route_setting(path))->origin != FROM_DEFAULT;
}

/* Whether name is a target name of sc. */
static bool service_has_target(const struct service_config *sc, const char *name)
{
    return target_name_taken(sc, -1, name);
}

/* The routes of svc (SPEC §10), once its targets are named and its mode is
 * known: proxy mode only; per route exactly one of match/prefix/sni/
 * http_host and one of target/close; a target without $ names a target of
 * the service or is HOST:PORT; regexes compile; route_default is close or
 * a target name. Sets has_data and has_close. */
static int finish_routes(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    static const char *const kinds[] = { "match", "prefix", "sni", "http_host" };
    static const char *const target_only[] = { "reply", "data", "connect_timeout", "inactivity_timeout" };
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    const struct setting *rs = svc_setting("routes");
    const struct inst_list *il = list_of(svc, rs);
    char name[NAME_MAX_LEN], q[QUOTE_MAX], why[256];

    if (sc->route_default[0] != '\0' && strcmp(sc->route_default, "close") != 0 &&
        !service_has_target(sc, sc->route_default)) {
        name_of(l, svc, svc_setting("route_default"), 0, true, name, sizeof name);
        quote(sc->route_default, q);
        snprintf(err, errlen, "%s: %s is not close or a target name of the service", name, q);
        return PMX_ERR;
    }
    if (il->n == 0)
        return PMX_OK;
    if (sc->effective_mode != MODE_PROXY) {
        char ipath[INST_PATH_MAX];
        inst_path(svc, ipath, sizeof ipath);
        if (snprintf(name, sizeof name, "%s%sroutes (%s line %d)", ipath, *ipath ? "." : "",
                     l->file != NULL ? l->file : "", il->line) < 0)
            *name = '\0';
        snprintf(err, errlen, "%s: routes need exchange.mode proxy (the mode is %s: a client's bytes "
                 "go to shared upstream connections)", name, config_mode_name(sc->effective_mode));
        return PMX_ERR;
    }
    if (strcmp(sc->codec, "mysql") == 0) {
        /* A MySQL client sends nothing before the server's greeting, which
         * a routed client gets only once routed: it would wait for
         * route_timeout, then route_default. */
        char ipath[INST_PATH_MAX];
        inst_path(svc, ipath, sizeof ipath);
        if (snprintf(name, sizeof name, "%s%sroutes (%s line %d)", ipath, *ipath ? "." : "",
                     l->file != NULL ? l->file : "", il->line) < 0)
            *name = '\0';
        snprintf(err, errlen, "%s: routes cannot work with exchange.codec mysql (a MySQL client says "
                 "nothing before the server's greeting)", name);
        return PMX_ERR;
    }
    for (int k = 0; k < il->n; k++) {
        const struct inst *it = il->items[k];
        struct route_config *r = &sc->routes[k];
        const char *kind = NULL, *field;

        char ipath[INST_PATH_MAX];
        inst_path(it, ipath, sizeof ipath);
        if (l->file == NULL || it->line == 0 ||
            snprintf(name, sizeof name, "%s (%s line %d)", ipath, l->file, it->line) < 0)
            snprintf(name, sizeof name, "%s", ipath);
        for (size_t j = 0; j < PMX_ARRAY_LEN(kinds); j++) {
            if (!route_set(it, kinds[j]))
                continue;
            if (kind != NULL) {
                name_of(l, it, route_setting(kinds[j]), 0, true, name, sizeof name);
                snprintf(err, errlen, "%s: a route has one of match, prefix, sni, http_host (also %s)",
                         name, kind);
                return PMX_ERR;
            }
            kind = kinds[j];
        }
        if (kind == NULL) {
            snprintf(err, errlen, "%s: missing match, prefix, sni or http_host (one is required)", name);
            return PMX_ERR;
        }
        r->has_data = route_set(it, "data");
        r->has_close = route_set(it, "close");
        bool target = route_set(it, "target");
        if (target == r->has_close) {
            if (target)
                name_of(l, it, route_setting("close"), 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: %s (a route has one of them: where to proxy, or the bytes "
                     "sent before closing)", name, target ? "conflicts with target" : "missing target or close");
            return PMX_ERR;
        }
        for (size_t j = 0; r->has_close && j < PMX_ARRAY_LEN(target_only); j++) {
            if (!route_set(it, target_only[j]))
                continue;
            name_of(l, it, route_setting(target_only[j]), 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: only with target (a close route sends its bytes and closes)", name);
            return PMX_ERR;
        }
        if (route_check(r, &field, why, sizeof why) != PMX_OK) {
            name_of(l, it, route_setting(field), 0, true, name, sizeof name);
            snprintf(err, errlen, "%s: %s", name, why);
            return PMX_ERR;
        }
        if (target && strchr(r->target, '$') == NULL && !service_has_target(sc, r->target)) {
            struct net_listen_spec spec;
            char reason[128];
            if (net_parse_listen(r->target, &spec, reason, sizeof reason) != PMX_OK || spec.unix_socket) {
                name_of(l, it, route_setting("target"), 0, true, name, sizeof name);
                quote(r->target, q);
                snprintf(err, errlen, "%s: %s is not a target name of the service nor HOST:PORT", name, q);
                return PMX_ERR;
            }
        }
    }
    return PMX_OK;
}

/* Resolves the listen addresses and targets of svc. */
static int finish_resolve(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    const struct setting *ts = svc_setting("targets");
    char name[NAME_MAX_LEN];
    const char *why;

    for (int k = 0; k < sc->nlisten; k++) {
        struct listen_config *lc = &sc->listen[k];
        if (lc->where.unix_socket) {
            unix_addr(lc->where.path, &lc->addr, &lc->addr_len);
            continue;
        }
        if (resolve(lc->where.host, lc->where.port, true, l->no_dns, &lc->addr, &lc->addr_len, &why) == PMX_OK)
            continue;
        listen_name(l, svc, k, "local.host", true, name, sizeof name);
        return resolve_error(name, lc->where.host, why, err, errlen);
    }
    for (int k = 0; k < sc->ntargets; k++) {
        struct target_config *t = &sc->targets[k];
        if (t->unix_path[0] != '\0') {
            unix_addr(t->unix_path, &t->addr, &t->addr_len);
            continue;
        }
        if (resolve(t->host, t->port, false, l->no_dns, &t->addr, &t->addr_len, &why) == PMX_OK)
            continue;
        name_of(l, list_of(svc, ts)->items[k], setting_of(&config_target_scope, "host"), 0, true,
                name, sizeof name);
        return resolve_error(name, t->host, why, err, errlen);
    }
    return PMX_OK;
}

/* script: a relative path is taken from the YAML file's directory (as the
 * file is read from wherever the daemon runs); the file loads and its main
 * chunk runs (a syntax error, a missing file or a failing chunk is a
 * configuration error, with the file's line). */
static int finish_script(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    struct service_config *sc = (struct service_config *)(void *)config_load_base(svc);
    char name[NAME_MAX_LEN], why[CONFIG_ERR_MAX];
    const char *slash = l->file != NULL ? strrchr(l->file, '/') : NULL;

    if (sc->script[0] == '\0')
        return PMX_OK;
    if (sc->script[0] != '/' && slash != NULL && where_of(svc, svc_setting("script"))->origin == FROM_YAML) {
        char joined[CONFIG_PATH_MAX];
        int n = snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - l->file), l->file, sc->script);
        if (n < 0 || (size_t)n >= sizeof joined) {
            name_of(l, svc, svc_setting("script"), 0, false, name, sizeof name);
            snprintf(err, errlen, "%s: \"%s\" is too long once joined to the directory of %s", name,
                     sc->script, l->file);
            return PMX_ERR;
        }
        memcpy(sc->script, joined, (size_t)n + 1);
    }
    struct script *s = script_load(sc->script, sc->name, why, sizeof why);
    if (s != NULL) {
        script_unref(s);
        return PMX_OK;
    }
    name_of(l, svc, svc_setting("script"), 0, false, name, sizeof name);
    snprintf(err, errlen, "%s: %s", name, why);
    return PMX_ERR;
}

/* Everything about one service once both front ends are done. */
static int finish_service(struct load *l, struct inst *svc, char *err, size_t errlen)
{
    if (svc->parent != NULL)
        inherit(l, svc);
    if (finish_listen(l, svc, err, errlen) != PMX_OK ||
        check_required(l, svc, err, errlen) != PMX_OK ||
        finish_targets(l, svc, err, errlen) != PMX_OK ||
        finish_relations(l, svc, err, errlen) != PMX_OK ||
        finish_routes(l, svc, err, errlen) != PMX_OK ||
        finish_resolve(l, svc, err, errlen) != PMX_OK ||
        finish_script(l, svc, err, errlen) != PMX_OK)
        return PMX_ERR;
    return PMX_OK;
}

/* The address a listener of svc would bind, for comparing: "1.2.3.4:80",
 * "[::1]:80", "unix:/path". */
static void listen_key(const struct listen_config *lc, char *out, size_t n)
{
    if (lc->addr_len == 0)
        snprintf(out, n, "%s", lc->spec);   /* a name not resolved (CONFIG_LOAD_NO_DNS) */
    else
        net_format_addr((const struct sockaddr *)&lc->addr, lc->addr_len, out, n);
}

/* No two listen addresses (of any services) are the same. */
static int check_listen_unique(struct load *l, struct inst *const *svcs, int n, char *err, size_t errlen)
{
    char a[NET_ADDR_MAX], b[NET_ADDR_MAX], name[NAME_MAX_LEN], other[NAME_MAX_LEN], q[QUOTE_MAX];

    for (int s = 0; s < n; s++) {
        const struct service_config *sa = (const struct service_config *)(void *)config_load_base(svcs[s]);
        for (int i = 0; i < sa->nlisten; i++) {
            listen_key(&sa->listen[i], a, sizeof a);
            for (int t = 0; t <= s; t++) {
                const struct service_config *sb = (const struct service_config *)(void *)config_load_base(svcs[t]);
                for (int j = 0; j < (t == s ? i : sb->nlisten); j++) {
                    listen_key(&sb->listen[j], b, sizeof b);
                    if (strcmp(a, b) != 0)
                        continue;
                    listen_name(l, svcs[s], i, "local.port", true, name, sizeof name);
                    listen_name(l, svcs[t], j, "local.port", false, other, sizeof other);
                    quote(sa->listen[i].spec, q);
                    snprintf(err, errlen, "%s: %s is already listened on by %s (%s)", name, q, other, a);
                    return PMX_ERR;
                }
            }
        }
    }
    return PMX_OK;
}

/* Builds the lookup sets of the allow/deny lists (SPEC §11): the top
 * level's, then each service's, which also points at the top level's. */
static int finish_access(struct config *c, char *err, size_t errlen)
{
    if ((c->nallow > 0 && cidr_set_build(c->allow, c->nallow, &c->allow_set) != PMX_OK) ||
        (c->ndeny > 0 && cidr_set_build(c->deny, c->ndeny, &c->deny_set) != PMX_OK))
        goto oom;
    for (int k = 0; k < c->nservices; k++) {
        struct service_config *sc = &c->services[k];
        if ((sc->nallow > 0 && cidr_set_build(sc->allow, sc->nallow, &sc->allow_set) != PMX_OK) ||
            (sc->ndeny > 0 && cidr_set_build(sc->deny, sc->ndeny, &sc->deny_set) != PMX_OK))
            goto oom;
        sc->top_allow_set = c->allow_set;
        sc->top_deny_set = c->deny_set;
    }
    return PMX_OK;
oom:
    snprintf(err, errlen, "out of memory loading the configuration (allow/deny lists)");
    return PMX_ERR;
}

/* Checks what no single value can, service by service; derives the mode;
 * resolves the addresses; in the single-service form makes the top-level
 * service services[0]. */
static int load_finish(struct load *l, char *err, size_t errlen)
{
    struct config *c = l->c;
    const struct setting *ss = setting_of(&config_global_scope, "services");
    struct inst_list *il = list_of(&l->root, ss);

    c->services_form = config_load_services_form(l);
    if (!c->services_form) {
        struct inst *top = &l->top;
        if (finish_service(l, top, err, errlen) != PMX_OK ||
            check_listen_unique(l, &top, 1, err, errlen) != PMX_OK)
            return PMX_ERR;
        c->services = malloc(sizeof(*c->services));
        if (c->services == NULL) {
            snprintf(err, errlen, "out of memory loading the configuration");
            return PMX_ERR;
        }
        c->services[0] = l->top_svc;
        c->nservices = 1;
        l->top_svc.targets = NULL;
        l->top_svc.routes = NULL;
        return finish_access(c, err, errlen);
    }

    if (check_top_unused(l, err, errlen) != PMX_OK)
        return PMX_ERR;
    if (il->n == 0) {
        snprintf(err, errlen, "services (%s line %d): missing (at least one service is required)",
                 l->file, il->line);
        return PMX_ERR;
    }
    /* Names first: the other messages may name the service. */
    const struct setting *sn = svc_setting("name");
    for (int k = 0; k < il->n; k++) {
        if (where_of(il->items[k], sn)->origin == FROM_DEFAULT) {
            char name[NAME_MAX_LEN], allowed[128];
            name_of(l, il->items[k], sn, 0, true, name, sizeof name);
            config_schema_allowed(sn, true, allowed, sizeof allowed);
            snprintf(err, errlen, "%s: missing (required; %s %s)", name, config_schema_noun(sn), allowed);
            return PMX_ERR;
        }
    }
    if (check_unique(l, &l->root, ss, err, errlen) != PMX_OK)
        return PMX_ERR;
    for (int k = 0; k < il->n; k++) {
        if (finish_service(l, il->items[k], err, errlen) != PMX_OK)
            return PMX_ERR;
    }
    if (check_listen_unique(l, il->items, il->n, err, errlen) != PMX_OK)
        return PMX_ERR;
    return finish_access(c, err, errlen);
}

int config_load(struct config *c, const char *yaml_path, char *const *env,
                char *err, size_t errlen)
{
    return config_load_flags(c, yaml_path, env, 0, err, errlen);
}

int config_load_flags(struct config *c, const char *yaml_path, char *const *env, int flags,
                      char *err, size_t errlen)
{
    struct load *l = calloc(1, sizeof *l);
    int rc = PMX_ERR;

    if (errlen > 0)
        *err = '\0';
    memset(c, 0, sizeof *c);
    if (l == NULL) {
        snprintf(err, errlen, "out of memory loading the configuration");
        return PMX_ERR;
    }
    l->c = c;
    l->no_dns = flags & CONFIG_LOAD_NO_DNS;
    l->root.base = (char *)c;
    l->top.base = (char *)&l->top_svc;
    if (inst_init(&l->root, &config_global_scope) != PMX_OK ||
        inst_init(&l->top, &config_service_scope) != PMX_OK) {
        snprintf(err, errlen, "out of memory loading the configuration");
        goto out;
    }
    if (apply_defaults(&config_global_scope, (char *)c, err, errlen) != PMX_OK ||
        apply_defaults(&config_service_scope, (char *)&l->top_svc, err, errlen) != PMX_OK)
        goto out;
    if (yaml_path != NULL && *yaml_path != '\0') {
        if (strlen(yaml_path) >= sizeof c->path) {
            snprintf(err, errlen, "%.64s...: path too long", yaml_path);
            goto out;
        }
        snprintf(c->path, sizeof(c->path), "%s", yaml_path);
        l->file = c->path;
        if (config_yaml_read(l, l->file, err, errlen) != PMX_OK)
            goto out;
    }
    if (config_env_read(l, env, err, errlen) != PMX_OK)
        goto out;
    rc = load_finish(l, err, errlen);
out:
    inst_free(&l->root);
    inst_free(&l->top);
    free(l->top_svc.targets);
    free(l->top_svc.routes);
    free(l);
    if (rc != PMX_OK)
        config_free(c);
    return rc;
}

void config_free(struct config *c)
{
    for (int k = 0; c->services != NULL && k < c->nservices; k++) {
        free(c->services[k].targets);
        free(c->services[k].allow);
        free(c->services[k].deny);
        cidr_set_free(c->services[k].allow_set);
        cidr_set_free(c->services[k].deny_set);
        free(c->services[k].routes);
    }
    free(c->services);
    free(c->allow);
    free(c->deny);
    cidr_set_free(c->allow_set);
    cidr_set_free(c->deny_set);
    memset(c, 0, sizeof *c);
}

const struct service_config *config_service(const struct config *c, const char *name)
{
    for (int k = 0; k < c->nservices; k++) {
        if (strcmp(c->services[k].name, name) == 0)
            return &c->services[k];
    }
    return NULL;
}

/* ---- reload ------------------------------------------------------------- */

static bool field_equal(const struct setting *s, const char *a, const char *b)
{
    const char *fa = a + s->offset, *fb = b + s->offset;

    switch (s->type) {
    case T_HOST:
    case T_PATH:
    case T_CODEC:
    case T_NAME:
    case T_LABEL:
    case T_UNIX:
        return strncmp(fa, fb, s->size) == 0;
    case T_PATTERN:
        /* The four keys share one field: equal when kind and bytes are. */
        if (((const struct route_config *)(const void *)a)->kind !=
            ((const struct route_config *)(const void *)b)->kind)
            return false;
        /* fall through */
    case T_BYTES: {
        size_t la = *(const size_t *)(const void *)(a + s->aux);
        size_t lb = *(const size_t *)(const void *)(b + s->aux);
        return la == lb && memcmp(fa, fb, la) == 0;
    }
    case T_LIST: {
        const struct list_def *ld = s->list;
        int na = *(const int *)(const void *)(a + ld->count_offset);
        int nb = *(const int *)(const void *)(b + ld->count_offset);
        if (na != nb)
            return false;
        if (ld->pointer) {
            fa = *(char *const *)(const void *)fa;
            fb = *(char *const *)(const void *)fb;
        }
        for (int k = 0; k < na; k++) {
            const char *ia = fa + (size_t)k * ld->item_size, *ib = fb + (size_t)k * ld->item_size;
            if (ld->item != NULL && ld->item->type == T_LISTEN) {
                /* The address, however it was spelled ("h:080" is "h:80"). */
                const struct net_listen_spec *wa = &((const struct listen_config *)(const void *)ia)->where;
                const struct net_listen_spec *wb = &((const struct listen_config *)(const void *)ib)->where;
                if (wa->unix_socket != wb->unix_socket || strcmp(wa->host, wb->host) != 0 ||
                    wa->port != wb->port || strcmp(wa->path, wb->path) != 0)
                    return false;
                continue;
            }
            if (ld->item != NULL && ld->item->type == T_CIDR) {
                if (strcmp(((const struct cidr *)(const void *)ia)->spec, ((const struct cidr *)(const void *)ib)->spec) != 0)
                    return false;
                continue;
            }
            for (size_t j = 0; ld->items != NULL && j < ld->items->n; j++) {
                if (!field_equal(&ld->items->settings[j], ia, ib))
                    return false;
            }
        }
        return true;
    }
    default:
        return memcmp(fa, fb, s->size) == 0;
    }
}

void config_service_fixed_changes(const struct service_config *old, const struct service_config *new,
                                  char *out, size_t outlen)
{
    size_t used = 0;

    if (outlen == 0)
        return;
    *out = '\0';
    for (size_t i = 0; i < config_service_scope.n; i++) {
        const struct setting *s = &config_service_scope.settings[i];
        if ((s->flags & (S_RELOAD | S_ALIAS)) || field_equal(s, (const char *)old, (const char *)new))
            continue;
        int w = snprintf(out + used, outlen - used, "%s%s", used ? ", " : "", s->path);
        if (w < 0 || (size_t)w >= outlen - used) {
            out[used] = '\0';     /* whole names only */
            return;
        }
        used += (size_t)w;
    }
}

void config_service_keep_fixed(struct service_config *fresh, const struct service_config *running)
{
    char *to = (char *)fresh;
    const char *from = (const char *)running;

    for (size_t i = 0; i < config_service_scope.n; i++) {
        const struct setting *s = &config_service_scope.settings[i];
        if (s->flags & (S_RELOAD | S_ALIAS))
            continue;
        if (s->type == T_LIST) {
            /* A list that needs a restart is an array in the service
             * (listen): its items come along with the count. */
            const struct list_def *ld = s->list;
            memcpy(to + ld->count_offset, from + ld->count_offset, sizeof(int));
            if (!ld->pointer)
                memcpy(to + ld->array_offset, from + ld->array_offset, (size_t)ld->max * ld->item_size);
            continue;
        }
        memcpy(to + s->offset, from + s->offset, s->size);
        if (s->type == T_BYTES)
            memcpy(to + s->aux, from + s->aux, sizeof(size_t));
    }
    fresh->effective_mode = running->effective_mode;
}
