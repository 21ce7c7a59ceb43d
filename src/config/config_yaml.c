/* YAML front end of the configuration: walks one libyaml document, parents
 * before children, finds each node's place in the schema by its path
 * ("services[2].targets[1].host") and hands it to the loader's setters. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config_load.h"
#include "config_schema.h"
#include "config_yaml.h"

#define YAML_PATH_MAX 256
/* The schema is six levels deep (services[1].targets[1].host); this only
 * stops a walk that accepts everything from following an alias loop. */
#define YAML_MAX_DEPTH 8
/* "services[256].targets[1024].keep_alive (FILE line N)" */
#define YAML_NAME_MAX (YAML_PATH_MAX + 4096 + 32)
#define KEYS_MAX 512

enum yaml_kind {
    YAML_KIND_SCALAR,
    YAML_KIND_MAPPING,
    YAML_KIND_LIST,
};

struct walk {
    yaml_document_t *doc;
    const char *file;
    struct load *load;
    char *err;
    size_t errlen;
};

static int walk_node(struct walk *w, yaml_node_t *node, const char *path,
                     int line, int depth);

/* The kind as a message names it. */
static const char *kind_name(enum yaml_kind kind)
{
    switch (kind) {
    case YAML_KIND_SCALAR: return "a scalar";
    case YAML_KIND_MAPPING: return "a mapping";
    case YAML_KIND_LIST: return "a list";
    }
    return "?";
}

/* ---- the schema's side: what a path may be ------------------------------ */

/* One node: its path as the walker writes it (list items counted from 1),
 * kind, value (scalars) and line. */
struct node {
    const char *path;
    enum yaml_kind kind;
    const char *value;
    int line;
};

/* "path (FILE line N)": a node named as the user wrote it. */
static void node_name(const struct walk *w, const struct node *nd, char *out, size_t n)
{
    snprintf(out, n, "%s (%s line %d)", nd->path, w->file, nd->line);
}

/* "expected a port (1-65535), not a mapping" */
static int wrong_kind(const struct walk *w, const struct node *nd, const char *noun, const char *allowed)
{
    char name[YAML_NAME_MAX];

    node_name(w, nd, name, sizeof name);
    snprintf(w->err, w->errlen, "%s: expected %s%s%s%s, not %s", name, noun,
             *allowed ? " (" : "", allowed, *allowed ? ")" : "", kind_name(nd->kind));
    return PMX_ERR;
}

static int wrong_setting_kind(const struct walk *w, const struct node *nd, const struct setting *s)
{
    char allowed[256];

    config_schema_allowed(s, true, allowed, sizeof allowed);
    return wrong_kind(w, nd, config_schema_noun(s), allowed);
}

/* The keys a mapping of the items of ld takes, or what a scalar item is. */
static void item_keys(const struct list_def *ld, char *out, size_t n)
{
    if (ld->items != NULL)
        config_schema_keys(ld->items, "", false, out, n);
    else
        config_schema_allowed(ld->item, true, out, n);
}

static int descend(struct walk *w, struct inst *i, const char *rest, const struct node *nd, bool top);

/* The node of list setting s of i, or (rest = "[N]...") an item of it or
 * below. */
static int list_node(struct walk *w, struct inst *i, const struct setting *s, const char *rest,
                     const struct node *nd)
{
    const struct list_def *ld = s->list;
    char keys[KEYS_MAX], what[KEYS_MAX + 64], name[YAML_NAME_MAX];

    item_keys(ld, keys, sizeof keys);
    if (*rest == '\0') {
        if (nd->kind != YAML_KIND_LIST) {
            snprintf(what, sizeof what, "a list of %s", ld->plural);
            return wrong_kind(w, nd, what, keys);
        }
        config_load_list(i, s, nd->line);
        return PMX_OK;
    }

    /* The walker writes "targets[N]" and "targets[N].key", N from 1. */
    char *end;
    long n = strtol(rest + 1, &end, 10);
    node_name(w, nd, name, sizeof name);
    if (n < 1 || *end != ']' || (end[1] != '\0' && end[1] != '.')) {
        snprintf(w->err, w->errlen, "%s: unknown setting", name);
        return PMX_ERR;
    }
    if (n > ld->max) {
        snprintf(w->err, w->errlen, "%s: too many %s (at most %d)", name, ld->plural, ld->max);
        return PMX_ERR;
    }
    if (end[1] == '.') {
        /* The walker visits an item before what it holds. */
        const struct inst_list *il = &i->lists[s - i->scope->settings];
        if (ld->items == NULL || n > il->n) {
            snprintf(w->err, w->errlen, "%s: unknown setting", name);
            return PMX_ERR;
        }
        return descend(w, il->items[n - 1], end + 2, nd, false);
    }
    if (ld->items == NULL) {
        if (nd->kind != YAML_KIND_SCALAR)
            return wrong_setting_kind(w, nd, ld->item);
        return config_load_set_item(w->load, i, s, (int)n, nd->value, FROM_YAML, nd->line,
                                    w->err, w->errlen);
    }
    if (nd->kind != YAML_KIND_MAPPING)
        return wrong_kind(w, nd, "a mapping", keys);
    struct inst *item;
    return config_load_item(w->load, i, s, (int)n, nd->line, &item, w->err, w->errlen);
}

/* The setting, list or section of the scope of i at path rest (the first
 * key of rest: before any '.' or '['), or NULL; *len: its length. */
static const struct setting *first_key(const struct inst *i, const char *rest, bool top, size_t *len)
{
    /* A list inside a section (session.auth.users): its whole path is the
     * key. */
    size_t lk = strcspn(rest, "[");
    const struct setting *l = config_schema_find(i->scope, rest, lk);
    if (l != NULL && l->type == T_LIST && !(top && (l->flags & S_ITEM_ONLY))) {
        *len = lk;
        return l;
    }
    *len = strcspn(rest, ".[");
    const struct setting *s = config_schema_find(i->scope, rest, *len);
    if (s != NULL && top && (s->flags & S_ITEM_ONLY))
        return NULL;
    return s;
}

static bool is_section(const struct inst *i, const char *rest, size_t len)
{
    char section[64];

    if (len >= sizeof section)
        return false;
    memcpy(section, rest, len);
    section[len] = '\0';
    return config_schema_is_section(i->scope, section);
}

static int unknown(const struct walk *w, const struct node *nd, const char *what, const char *keys)
{
    char name[YAML_NAME_MAX];

    node_name(w, nd, name, sizeof name);
    snprintf(w->err, w->errlen, "%s: unknown setting (%s takes %s)", name, what, keys);
    return PMX_ERR;
}

/* The node nd at path rest below i (top: i is the top-level service). */
static int descend(struct walk *w, struct inst *i, const char *rest, const struct node *nd, bool top)
{
    size_t len;
    const struct setting *s = first_key(i, rest, top, &len);

    if (s != NULL && s->type == T_LIST && rest[len] != '.')
        return list_node(w, i, s, rest + len, nd);
    s = config_schema_find(i->scope, rest, strlen(rest));
    if (s != NULL && s->type != T_LIST && !(top && (s->flags & S_ITEM_ONLY))) {
        if (nd->kind != YAML_KIND_SCALAR)
            return wrong_setting_kind(w, nd, s);
        return config_load_set(w->load, i, s, nd->value, FROM_YAML, nd->line, w->err, w->errlen);
    }
    if (config_schema_is_section(i->scope, rest)) {
        if (nd->kind != YAML_KIND_MAPPING) {
            char name[YAML_NAME_MAX];
            node_name(w, nd, name, sizeof name);
            snprintf(w->err, w->errlen, "%s: expected a mapping", name);
            return PMX_ERR;
        }
        return PMX_OK;
    }

    char section[64], keys[KEYS_MAX];
    const char *dot = strrchr(rest, '.');
    snprintf(section, sizeof section, "%.*s", dot != NULL ? (int)(dot - rest) : 0, rest);
    config_schema_keys(i->scope, section, top, keys, sizeof keys);
    return unknown(w, nd, *section ? section : i->scope->noun, keys);
}

/* A node of the document: the root must be a mapping; the top level holds
 * the global settings and those of the top-level service. */
static int yaml_node(struct walk *w, const char *path, enum yaml_kind kind, const char *value, int line)
{
    struct load *l = w->load;
    const struct node nd = { path, kind, value, line };
    size_t len;

    if (*path == '\0') {
        if (kind != YAML_KIND_MAPPING) {
            snprintf(w->err, w->errlen, "%s line %d: expected a mapping of settings, not %s",
                     w->file, line, kind_name(kind));
            return PMX_ERR;
        }
        return PMX_OK;
    }
    if (first_key(&l->root, path, true, &len) != NULL || is_section(&l->root, path, len))
        return descend(w, &l->root, path, &nd, true);
    if (first_key(&l->top, path, true, &len) != NULL || is_section(&l->top, path, len))
        return descend(w, &l->top, path, &nd, true);

    char keys[2 * KEYS_MAX], more[KEYS_MAX];
    config_schema_keys(l->root.scope, "", true, keys, sizeof keys);
    config_schema_keys(l->top.scope, "", true, more, sizeof more);
    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), ", %s", more);
    return unknown(w, &nd, l->root.scope->noun, keys);
}

/* ---- the walk ----------------------------------------------------------- */

static int node_line(const yaml_node_t *node)
{
    return (int)node->start_mark.line + 1;
}

/* Writes "path (file line N): " or, for the root, "file line N: ". */
static void error_at(struct walk *w, const char *path, int line, const char *what)
{
    if (*path != '\0')
        snprintf(w->err, w->errlen, "%s (%s line %d): %s", path, w->file, line, what);
    else
        snprintf(w->err, w->errlen, "%s line %d: %s", w->file, line, what);
}

static int walk_mapping(struct walk *w, yaml_node_t *node, const char *path, int depth)
{
    yaml_node_pair_t *first = node->data.mapping.pairs.start;
    yaml_node_pair_t *end = node->data.mapping.pairs.top;

    for (yaml_node_pair_t *pair = first; pair < end; pair++) {
        yaml_node_t *key = yaml_document_get_node(w->doc, pair->key);
        yaml_node_t *value = yaml_document_get_node(w->doc, pair->value);
        if (key == NULL || value == NULL) {
            error_at(w, path, node_line(node), "broken YAML document");
            return PMX_ERR;
        }
        if (key->type != YAML_SCALAR_NODE) {
            error_at(w, path, node_line(key), "a key must be a name, not a mapping or list");
            return PMX_ERR;
        }
        const char *name = (const char *)key->data.scalar.value;
        char child[YAML_PATH_MAX];
        int n = *path != '\0' ? snprintf(child, sizeof child, "%s.%s", path, name)
                              : snprintf(child, sizeof child, "%s", name);
        if (n < 0 || (size_t)n >= sizeof child || strlen(name) != key->data.scalar.length) {
            error_at(w, path, node_line(key), "a key is too long or contains a NUL byte");
            return PMX_ERR;
        }
        /* Paths go into one-line messages unquoted: a key that spans lines
         * ("a\n\nb" folds to "a\nb") or holds control bytes is no name;
         * nor is one that would read as a path ("local.port", "targets[2]"). */
        for (const char *c = name; *c != '\0'; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                error_at(w, path, node_line(key), "a key contains a line break or control character");
                return PMX_ERR;
            }
            if (*c == '.' || *c == '[' || *c == ']') {
                char what[64];
                snprintf(what, sizeof what, "'%c' in a key (keys are names: nest mappings)", *c);
                error_at(w, child, node_line(key), what);
                return PMX_ERR;
            }
        }
        for (yaml_node_pair_t *prev = first; prev < pair; prev++) {
            yaml_node_t *pk = yaml_document_get_node(w->doc, prev->key);
            if (pk != NULL && pk->type == YAML_SCALAR_NODE &&
                strcmp((const char *)pk->data.scalar.value, name) == 0) {
                char what[64];
                snprintf(what, sizeof what, "set twice (also line %d)", node_line(pk));
                error_at(w, child, node_line(key), what);
                return PMX_ERR;
            }
        }
        if (walk_node(w, value, child, node_line(key), depth + 1) != PMX_OK)
            return PMX_ERR;
    }
    return PMX_OK;
}

static int walk_list(struct walk *w, yaml_node_t *node, const char *path, int depth)
{
    yaml_node_item_t *first = node->data.sequence.items.start;
    yaml_node_item_t *end = node->data.sequence.items.top;

    for (yaml_node_item_t *item = first; item < end; item++) {
        yaml_node_t *value = yaml_document_get_node(w->doc, *item);
        if (value == NULL) {
            error_at(w, path, node_line(node), "broken YAML document");
            return PMX_ERR;
        }
        char child[YAML_PATH_MAX];
        int n = snprintf(child, sizeof child, "%s[%d]", path, (int)(item - first) + 1);
        if (n < 0 || (size_t)n >= sizeof child) {
            error_at(w, path, node_line(value), "path too long");
            return PMX_ERR;
        }
        if (walk_node(w, value, child, node_line(value), depth + 1) != PMX_OK)
            return PMX_ERR;
    }
    return PMX_OK;
}

static int walk_node(struct walk *w, yaml_node_t *node, const char *path,
                     int line, int depth)
{
    if (depth > YAML_MAX_DEPTH) {
        error_at(w, path, line, "nested too deeply");
        return PMX_ERR;
    }
    switch (node->type) {
    case YAML_SCALAR_NODE: {
        const char *value = (const char *)node->data.scalar.value;
        if (strlen(value) != node->data.scalar.length) {
            error_at(w, path, line, "the value contains a NUL byte");
            return PMX_ERR;
        }
        return yaml_node(w, path, YAML_KIND_SCALAR, value, line);
    }
    case YAML_MAPPING_NODE:
        if (yaml_node(w, path, YAML_KIND_MAPPING, NULL, line) != PMX_OK)
            return PMX_ERR;
        return walk_mapping(w, node, path, depth);
    case YAML_SEQUENCE_NODE:
        if (yaml_node(w, path, YAML_KIND_LIST, NULL, line) != PMX_OK)
            return PMX_ERR;
        return walk_list(w, node, path, depth);
    case YAML_NO_NODE:
        break;
    }
    error_at(w, path, line, "broken YAML document");
    return PMX_ERR;
}

static void syntax_error(const yaml_parser_t *p, const char *file, char *err, size_t errlen)
{
    const char *problem = p->problem != NULL ? p->problem : "unknown problem";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        snprintf(err, errlen, "%s: out of memory reading YAML", file);
        return;
    case YAML_READER_ERROR:
        snprintf(err, errlen, "%s: YAML error: %s at byte offset %zu",
                 file, problem, p->problem_offset);
        return;
    case YAML_SCANNER_ERROR:
    case YAML_PARSER_ERROR:
    case YAML_COMPOSER_ERROR:
        if (p->context != NULL)
            snprintf(err, errlen, "%s line %zu: YAML syntax error: %s (%s at line %zu)",
                     file, p->problem_mark.line + 1, problem, p->context,
                     p->context_mark.line + 1);
        else
            snprintf(err, errlen, "%s line %zu: YAML syntax error: %s",
                     file, p->problem_mark.line + 1, problem);
        return;
    default:
        snprintf(err, errlen, "%s: YAML error: %s", file, problem);
        return;
    }
}

/* A document that holds nothing: no root, or a bare "---". */
static bool document_empty(yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    return root == NULL ||
           (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
            root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
}

int config_yaml_read(struct load *l, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
        return PMX_ERR;
    }
    struct stat st;
    bool unreadable = fstat(fileno(f), &st) != 0;
    if (!unreadable && S_ISDIR(st.st_mode)) {
        errno = EISDIR;
        unreadable = true;
    }
    if (unreadable) {
        snprintf(err, errlen, "%s: cannot read: %s", file, strerror(errno));
        fclose(f);
        return PMX_ERR;
    }

    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory reading YAML", file);
        fclose(f);
        return PMX_ERR;
    }
    yaml_parser_set_input_file(&parser, f);

    int rc = PMX_ERR;
    yaml_document_t doc;
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&parser, file, err, errlen);
        goto out;
    }
    if (!document_empty(&doc)) {
        struct walk w = { &doc, file, l, err, errlen };
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (walk_node(&w, root, "", node_line(root), 0) != PMX_OK) {
            yaml_document_delete(&doc);
            goto out;
        }
    }
    yaml_document_delete(&doc);

    /* A second document would be silently ignored: refuse it. */
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&parser, file, err, errlen);
        goto out;
    }
    yaml_node_t *second = yaml_document_get_root_node(&doc);
    if (second != NULL) {
        snprintf(err, errlen, "%s line %d: a second YAML document (only one is read)",
                 file, node_line(second));
        yaml_document_delete(&doc);
        goto out;
    }
    yaml_document_delete(&doc);
    rc = PMX_OK;
out:
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
