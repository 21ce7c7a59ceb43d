/* The state of one config_load() (private to src/config): the instances of
 * the schema's scopes being filled and where each value came from, and the
 * setters that the YAML and environment front ends both feed. */
#ifndef CONFIG_LOAD_H
#define CONFIG_LOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "config_schema.h"

enum origin {
    FROM_DEFAULT = 0,
    FROM_YAML,
    FROM_ENV,
};

/* Where a value came from, to name the setting as the user wrote it. */
struct where {
    enum origin origin;
    int line;               /* YAML line */
    bool inherited;         /* from the top-level defaults next to services: */
};

/* The items of one list setting of an instance. */
struct inst_list {
    int n;                  /* items so far */
    int cap;                /* room in the arrays (and in a pointer list's array) */
    int line;               /* YAML line of the list; 0: not in the file */
    struct inst **items;    /* mappings: one instance per item */
    struct where *where;    /* scalars: where each came from */
};

/* One mapping being loaded: the top level, the top-level service, or an
 * item of a list (a service, a target). */
struct inst {
    const struct scope *scope;
    char *base;                 /* the struct it fills; NULL for list items (their arrays move) */
    struct inst *parent;        /* list items: the instance holding the list */
    const struct setting *list; /* list items: that list */
    int index;                  /* list items: from 1 */
    int line;                   /* list items from the YAML file: the item's line; else 0 */
    struct where *where;        /* one per setting of scope */
    struct inst_list *lists;    /* one per setting of scope (used by T_LIST ones) */
};

struct load {
    struct config *c;
    bool no_dns;                /* CONFIG_LOAD_NO_DNS: resolve address literals only */
    const char *file;           /* the YAML file, NULL when env only */
    struct inst root;           /* config_global_scope, filling c */
    struct inst top;            /* config_service_scope, filling top_svc */
    /* The top-level service: service "default" of the single-service form,
     * or the defaults services[] inherit. */
    struct service_config top_svc;
};

/* The struct inst's settings live in (list items: computed, as their array
 * may have moved). */
char *config_load_base(const struct inst *i);

/* Whether the file has services:. */
bool config_load_services_form(const struct load *l);

/* The setter both front ends feed: parses value into setting s of i and
 * records where it came from. On error writes one line into err naming the
 * setting as written ("local.port (FILE line 3)", "LOCAL_PORT"). */
int config_load_set(struct load *l, struct inst *i, const struct setting *s, const char *value,
                    enum origin from, int line, char *err, size_t errlen) PMX_WUR;

/* The YAML list of setting list of i starts at line (its items follow). */
void config_load_list(struct inst *i, const struct setting *list, int line);

/* Item n (1..list's max) of list of i, created with its defaults (and any
 * missing before it) if need be. line: the YAML line of the item, 0 from the
 * environment. Sets *item to the item's instance (NULL for scalar items).
 * Returns PMX_OK, or PMX_ERR (out of memory) with one line in err. */
int config_load_item(struct load *l, struct inst *i, const struct setting *list, int n,
                     int line, struct inst **item, char *err, size_t errlen) PMX_WUR;

/* Sets scalar item n of list of i (created as by config_load_item). */
int config_load_set_item(struct load *l, struct inst *i, const struct setting *list, int n,
                         const char *value, enum origin from, int line, char *err, size_t errlen) PMX_WUR;

/* Why the mode of s is what it is: "explicit", "auto: connections == 1"... */
const char *config_mode_reason(const struct service_config *s);

#endif
