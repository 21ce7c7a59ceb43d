/* YAML front end of the configuration: loads one document with libyaml and
 * walks it, handing every node with its path and line to the config module,
 * which decides what each path may be. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "config_yaml.h"

#define YAML_PATH_MAX 256
/* The schema is three levels deep (targets[1].host); this only stops a
 * callback that accepts everything from following an alias loop. */
#define YAML_MAX_DEPTH 8

struct walk {
    yaml_document_t *doc;
    const char *file;
    config_yaml_node_fn fn;
    void *ctx;
    char *err;
    size_t errlen;
};

static int walk_node(struct walk *w, yaml_node_t *node, const char *path,
                     int line, int depth);

const char *config_yaml_kind_name(enum config_yaml_kind kind)
{
    switch (kind) {
    case CONFIG_YAML_SCALAR: return "a scalar";
    case CONFIG_YAML_MAPPING: return "a mapping";
    case CONFIG_YAML_LIST: return "a list";
    }
    return "?";
}

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
         * ("a\n\nb" folds to "a\nb") or holds control bytes is no name. */
        for (const char *c = name; *c != '\0'; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                error_at(w, path, node_line(key), "a key contains a line break or control character");
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
        return w->fn(w->ctx, path, CONFIG_YAML_SCALAR, value, line, w->err, w->errlen);
    }
    case YAML_MAPPING_NODE:
        if (w->fn(w->ctx, path, CONFIG_YAML_MAPPING, NULL, line, w->err, w->errlen) != PMX_OK)
            return PMX_ERR;
        return walk_mapping(w, node, path, depth);
    case YAML_SEQUENCE_NODE:
        if (w->fn(w->ctx, path, CONFIG_YAML_LIST, NULL, line, w->err, w->errlen) != PMX_OK)
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

int config_yaml_read(const char *file, config_yaml_node_fn fn, void *ctx,
                     char *err, size_t errlen)
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
        struct walk w = { &doc, file, fn, ctx, err, errlen };
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
