/* The -t dump: the effective configuration as YAML that loads back to the
 * same configuration, written by the schema's tables, with each service's
 * derived mode and resolved addresses as comments. */
#include <stdio.h>
#include <string.h>

#include "balancer.h"
#include "config.h"
#include "config_load.h"
#include "config_schema.h"
#include "net.h"

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

/* Whether the character at p (n bytes, code point cp when n > 0) would
 * end a line or be refused by YAML outside double quotes. */
static bool yaml_unsafe(const unsigned char *p, size_t n, unsigned cp)
{
    if (n == 0)
        return *p < 0x20 || *p == 0x7f;
    return (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff ||
           cp == 0xfffe || cp == 0xffff;
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
        unsigned cp = 0;
        size_t n = utf8_char(p, &cp);
        if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (n == 0 && yaml_unsafe(p, n, cp)) {
            fprintf(out, "\\x%02x", *p);
        } else if (n > 0 && yaml_unsafe(p, n, cp)) {
            fprintf(out, "\\u%04x", cp);
        } else {
            fwrite(p, 1, n > 0 ? n : 1, out);
        }
        p += n > 0 ? n : 1;
    }
    fputc('"', out);
}

/* Writes s for a comment: what YAML would take as a line break or refuse
 * becomes '?' (a unix path is written as it is otherwise). */
static void dump_comment_text(const char *s, FILE *out)
{
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        unsigned cp = 0;
        size_t n = utf8_char(p, &cp);
        if (yaml_unsafe(p, n, cp))
            fputc('?', out);
        else
            fwrite(p, 1, n > 0 ? n : 1, out);
        p += n > 0 ? n : 1;
    }
}

/* Writes len bytes (health.send) in the escapes the loader decodes (\r \n
 * \t \\ \xNN; every byte that is not printable ASCII), as a YAML string. */
static void dump_bytes(const char *b, size_t len, FILE *out)
{
    char text[CONFIG_ROUTE_TEXT_MAX * 4 + 1];
    size_t o = 0;

    for (size_t i = 0; i < len && o + 5 <= sizeof text; i++) {
        unsigned char ch = (unsigned char)b[i];
        switch (ch) {
        case '\r': o += (size_t)snprintf(text + o, 3, "\\r"); break;
        case '\n': o += (size_t)snprintf(text + o, 3, "\\n"); break;
        case '\t': o += (size_t)snprintf(text + o, 3, "\\t"); break;
        case '\\': o += (size_t)snprintf(text + o, 3, "\\\\"); break;
        default:
            if (ch < 0x20 || ch >= 0x7f)
                o += (size_t)snprintf(text + o, 5, "\\x%02x", ch);
            else
                text[o++] = (char)ch;
        }
    }
    text[o] = '\0';
    dump_string(text, out);
}

/* Writes a route's match: regex as the loader reads it back: a backslash
 * and a printable byte that the loader keeps as a pair (\. \\) as they
 * are; bytes that are not printable ASCII as \xNN, and so is a backslash
 * the loader would read as an escape of its own (before x r n t, a byte
 * written \xNN, or at the end). */
static void dump_regex(const char *b, size_t len, FILE *out)
{
    char text[CONFIG_ROUTE_TEXT_MAX * 4 + 1];
    size_t o = 0;

    for (size_t i = 0; i < len && o + 10 <= sizeof text; i++) {
        unsigned char ch = (unsigned char)b[i];
        unsigned char next = i + 1 < len ? (unsigned char)b[i + 1] : 0;
        if (ch == '\\' && next >= 0x20 && next < 0x7f && strchr("xrnt", next) == NULL) {
            text[o++] = (char)ch;
            text[o++] = (char)next;
            i++;
        } else if (ch < 0x20 || ch >= 0x7f || ch == '\\') {
            o += (size_t)snprintf(text + o, 5, "\\x%02x", ch);
        } else {
            text[o++] = (char)ch;
        }
    }
    text[o] = '\0';
    dump_string(text, out);
}

static void dump_value(const struct setting *s, const char *base, FILE *out)
{
    const void *field = base + s->offset;

    switch (s->type) {
    case T_INT:
    case T_PORT: fprintf(out, "%d", *(const int *)field); return;
    case T_LONG: fprintf(out, "%ld", *(const long *)field); return;
    case T_OCTAL: fprintf(out, "\"%04lo\"", (unsigned long)*(const long *)field); return;
    case T_BOOL: fputs(*(const bool *)field ? "true" : "false", out); return;
    case T_MODE: fputs(config_mode_name(*(const enum exchange_mode *)field), out); return;
    case T_BALANCE: fputs(balancer_strategy_name(*(const enum balance_strategy *)field), out); return;
    case T_CODEC: fputs((const char *)field, out); return;
    case T_HOST:
    case T_PATH:
    case T_NAME:
    case T_LABEL:
    case T_UNIX: dump_string((const char *)field, out); return;
    case T_BYTES: dump_bytes((const char *)field, *(const size_t *)(const void *)(base + s->aux), out); return;
    case T_LISTEN: dump_string(((const struct listen_config *)field)->spec, out); return;
    case T_SEND_PROXY: fputs(*(const int *)field == 2 ? "v2" : *(const int *)field == 1 ? "v1" : "off", out); return;
    case T_CIDR: dump_string(((const struct cidr *)field)->spec, out); return;
    case T_LOG_FORMAT: fputs(*(const enum request_log_format *)field == REQUEST_LOG_TEXT ? "text" : "json", out); return;
    case T_FRACTION: fprintf(out, "%g", *(const double *)field); return;
    case T_PATTERN:
        if (s->min == ROUTE_MATCH)
            dump_regex((const char *)field, *(const size_t *)(const void *)(base + s->aux), out);
        else
            dump_bytes((const char *)field, *(const size_t *)(const void *)(base + s->aux), out);
        return;
    case T_LIST: return;
    }
}

/* Whether s holds nothing at base: "" or 0 (S_OMIT_EMPTY). */
static bool value_empty(const struct setting *s, const char *base)
{
    const void *field = base + s->offset;

    switch (s->type) {
    case T_INT:
    case T_PORT: return *(const int *)field == 0;
    case T_HOST:
    case T_PATH:
    case T_NAME:
    case T_LABEL:
    case T_UNIX: return *(const char *)field == '\0';
    case T_BOOL: return !*(const bool *)field;
    case T_LIST: return *(const int *)(const void *)(base + s->list->count_offset) == 0;
    case T_LONG: return (s->flags & S_OFF) && *(const long *)field == -1;
    case T_BYTES: return *(const size_t *)(const void *)(base + s->aux) == 0;
    default: return false;
    }
}

/* Starts a line indented by indent; the first line of a list item gets
 * its "- " instead of the last two spaces. */
static void line_start(FILE *out, int indent, bool *first)
{
    if (*first) {
        fprintf(out, "%*s- ", indent - 2, "");
        *first = false;
    } else {
        fprintf(out, "%*s", indent, "");
    }
}

/* One line per target, in flow style, with its address as a comment. */
static void dump_targets(const struct service_config *sv, int indent, FILE *out)
{
    char addr[NET_ADDR_MAX];

    for (int k = 0; k < sv->ntargets; k++) {
        const struct target_config *t = &sv->targets[k];
        const char *sep = "";
        fprintf(out, "%*s- {", indent, "");
        for (size_t i = 0; i < config_target_scope.n; i++) {
            const struct setting *s = &config_target_scope.settings[i];
            if ((s->flags & S_OMIT_EMPTY) && value_empty(s, (const char *)t))
                continue;
            fprintf(out, "%s %s: ", sep, s->path);
            dump_value(s, (const char *)t, out);
            sep = ",";
        }
        fputs(" }", out);
        if (t->addr_len > 0) {
            net_format_addr((const struct sockaddr *)&t->addr, t->addr_len, addr, sizeof addr);
            fputs("  # ", out);
            dump_comment_text(addr, out);
        }
        fputc('\n', out);
    }
}

/* Whether s of the item at base is written: not an empty S_OMIT_EMPTY
 * value; for a route, only the key of its kind, and data or close only
 * when given (an empty one means something). */
static bool item_has(const struct list_def *ld, const struct setting *s, const char *base)
{
    if (ld->items == &config_route_scope) {
        const struct route_config *r = (const struct route_config *)(const void *)base;
        if (s->type == T_PATTERN)
            return r->kind == (enum route_kind)s->min;
        if (strcmp(s->path, "data") == 0)
            return r->has_data;
        if (strcmp(s->path, "close") == 0)
            return r->has_close;
    }
    return !((s->flags & S_OMIT_EMPTY) && value_empty(s, base));
}

/* The items of a list of mappings other than targets (session.auth.users),
 * one line each in flow style. */
static void dump_items(const struct list_def *ld, const char *parent, int indent, FILE *out)
{
    int n = *(const int *)(const void *)(parent + ld->count_offset);
    const char *array = ld->pointer ? *(const char *const *)(const void *)(parent + ld->array_offset)
                                    : parent + ld->array_offset;

    for (int k = 0; k < n; k++) {
        const char *base = array + (size_t)k * ld->item_size;
        const char *sep = "";
        fprintf(out, "%*s- {", indent, "");
        for (size_t i = 0; i < ld->items->n; i++) {
            const struct setting *s = &ld->items->settings[i];
            if (!item_has(ld, s, base))
                continue;
            fprintf(out, "%s %s: ", sep, s->path);
            dump_value(s, base, out);
            sep = ",";
        }
        fputs(" }\n", out);
    }
}

/* A list of scalars (accept_proxy_from, allow, deny) of the struct at
 * base, in flow style, as "key: [...]". */
static void dump_scalar_list(const struct setting *s, const char *key, const char *base, FILE *out)
{
    const struct list_def *ld = s->list;
    int n = *(const int *)(const void *)(base + ld->count_offset);
    const char *array = ld->pointer ? *(const char *const *)(const void *)(base + ld->array_offset)
                                    : base + ld->array_offset;

    fprintf(out, "%s: [", key);
    for (int k = 0; k < n; k++) {
        fputs(k > 0 ? ", " : "", out);
        dump_value(ld->item, array + (size_t)k * ld->item_size, out);
    }
    fputs("]\n", out);
}

/* The settings of sv at indent (item: as an item of services:). A single
 * TCP listen address is written in the local: form, others as listen:. */
static void dump_service(const struct service_config *sv, int indent, bool item, FILE *out)
{
    bool local_form = sv->nlisten == 1 && !sv->listen[0].where.unix_socket;
    bool first = item;
    const char *section = NULL;     /* the path of the last setting written in a section */
    size_t section_len = 0;         /* ... and the length of its section ("session.auth") */
    char addr[NET_ADDR_MAX];

    for (size_t i = 0; i < config_service_scope.n; i++) {
        const struct setting *s = &config_service_scope.settings[i];
        bool listen = s->type == T_LIST && s->list->item != NULL && s->list->item->type == T_LISTEN;
        if ((!item && (s->flags & S_ITEM_ONLY)) || (listen && local_form) ||
            ((s->flags & S_ALIAS) && !local_form))
            continue;
        if ((s->flags & S_OMIT_EMPTY) && value_empty(s, (const char *)sv))
            continue;
        /* The route settings mean nothing without routes (SPEC §10). */
        if (sv->nroutes == 0 && strncmp(s->path, "route", 5) == 0)
            continue;
        /* Sections may nest (session.auth.password): a header for each
         * level not open already. */
        const char *dot = strrchr(s->path, '.');
        const char *key = s->path;
        int depth = 0;
        if (dot != NULL) {
            size_t len = (size_t)(dot - s->path);
            const char *start = s->path;
            for (size_t end = 0; end <= len; end++) {
                if (end < len && s->path[end] != '.')
                    continue;
                /* Level s->path[0..end) is open if the last section
                 * written starts with it as a whole level. */
                bool open = section != NULL && end <= section_len && strncmp(section, s->path, end) == 0 &&
                            (end == section_len || section[end] == '.');
                if (!open) {
                    line_start(out, indent + 2 * depth, &first);
                    fprintf(out, "%.*s:\n", (int)(s->path + end - start), start);
                }
                depth++;
                start = s->path + end + 1;
            }
            section = s->path;
            section_len = len;
            key = dot + 1;
        } else {
            section = NULL;
        }
        line_start(out, indent + 2 * depth, &first);
        if (listen) {
            fprintf(out, "%s: [", key);
            for (int k = 0; k < sv->nlisten; k++) {
                fputs(k > 0 ? ", " : "", out);
                dump_string(sv->listen[k].spec, out);
            }
            fputs("]\n", out);
        } else if (s->type == T_LIST && s->list->item != NULL) {
            dump_scalar_list(s, key, (const char *)sv, out);
        } else if (s->type == T_LIST && s->list->items != &config_target_scope) {
            int n = *(const int *)(const void *)((const char *)sv + s->list->count_offset);
            fprintf(out, "%s:%s\n", key, n > 0 ? "" : " []");
            dump_items(s->list, (const char *)sv, indent + 2 * depth + 2, out);
        } else if (s->type == T_LIST) {
            fprintf(out, "%s:%s\n", key, sv->ntargets > 0 ? "" : " []");
            dump_targets(sv, indent + 2, out);
        } else {
            fprintf(out, "%s: ", key);
            dump_value(s, (const char *)sv, out);
            fputc('\n', out);
        }
    }

    if (sv->nlisten > 0 && sv->listen[0].addr_len > 0) {
        line_start(out, indent, &first);
        fputs("# listen:", out);
        for (int k = 0; k < sv->nlisten; k++) {
            net_format_addr((const struct sockaddr *)&sv->listen[k].addr, sv->listen[k].addr_len,
                            addr, sizeof addr);
            fputs(k > 0 ? ", " : " ", out);
            dump_comment_text(addr, out);
        }
        fputc('\n', out);
    }
    line_start(out, indent, &first);
    fprintf(out, "# mode: %s (%s)\n", config_mode_name(sv->effective_mode), config_mode_reason(sv));
    if (strcmp(sv->codec, "http") == 0 && sv->effective_mode != MODE_PROXY) {
        line_start(out, indent, &first);
        fprintf(out, "# http: one request in flight per upstream connection; funnel_async %s\n",
                sv->funnel_async ? "changes nothing for http" : "is off");
    }
}

void config_dump(const struct config *c, FILE *out)
{
    const char *section = NULL;     /* the last dotted setting written (admin.listen) */

    fprintf(out, "# proximux %s effective configuration\n", PMX_VERSION);
    for (size_t i = 0; i < config_global_scope.n; i++) {
        const struct setting *s = &config_global_scope.settings[i];
        const char *dot = strchr(s->path, '.');
        if (s->type == T_LIST && s->list->item != NULL) {
            if (!value_empty(s, (const char *)c))      /* allow, deny (S_OMIT_EMPTY) */
                dump_scalar_list(s, s->path, (const char *)c, out);
            continue;
        }
        if (s->type == T_LIST || ((s->flags & S_OMIT_EMPTY) && value_empty(s, (const char *)c)))
            continue;
        /* One level of sections at the top (admin:). */
        if (dot != NULL && (section == NULL || strncmp(section, s->path, (size_t)(dot - s->path) + 1) != 0))
            fprintf(out, "%.*s:\n", (int)(dot - s->path), s->path);
        section = dot ? s->path : NULL;
        fprintf(out, dot ? "  %s: " : "%s: ", dot ? dot + 1 : s->path);
        dump_value(s, (const char *)c, out);
        fputc('\n', out);
    }
    if (!c->services_form && c->nservices == 1) {
        dump_service(&c->services[0], 0, false, out);
        return;
    }
    fputs(c->nservices > 0 ? "services:\n" : "services: []\n", out);
    for (int k = 0; k < c->nservices; k++)
        dump_service(&c->services[k], 4, true, out);
}
