/* Environment front end of the configuration: splits NAME=value entries
 * with getenv(3) semantics and feeds the settings they name, found in the
 * schema, to the loader's setters. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_env.h"
#include "config_load.h"
#include "config_schema.h"

/* Longer names are skipped: no setting has one. */
#define ENV_NAME_MAX 128

/* Whether an entry before env[i] has the same name (name_len bytes + '='). */
static bool seen_before(char *const *env, size_t i, size_t name_len)
{
    for (size_t j = 0; j < i; j++) {
        if (strncmp(env[j], env[i], name_len + 1) == 0)
            return true;
    }
    return false;
}

/* Matches "TARGET_HOST_12" against the item setting s: returns n (12), 0
 * when name is not s's, -1 when it is but n is out of 1..max. */
static int item_index(const struct setting *s, const char *name, int max)
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
    return n >= 1 && n <= max ? (int)n : -1;
}

static int services_form_error(const char *name, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: environment variables configure the single-service form only; "
             "this file has services:", name);
    return PMX_ERR;
}

/* Sets what name names in the scope of i, and in the items of its lists
 * (targets); *found tells whether it named anything. */
static int env_scope(struct load *l, struct inst *i, bool service, const char *name, const char *value,
                     bool *found, char *err, size_t errlen)
{
    const struct scope *sc = i->scope;

    *found = true;
    for (size_t k = 0; k < sc->n; k++) {
        const struct setting *s = &sc->settings[k];
        if (s->env == NULL || strcmp(s->env, name) != 0)
            continue;
        if (service && config_load_services_form(l))
            return services_form_error(name, err, errlen);
        return config_load_set(l, i, s, value, FROM_ENV, 0, err, errlen);
    }
    for (size_t k = 0; k < sc->n; k++) {
        const struct setting *list = &sc->settings[k];
        if (list->type != T_LIST || !list->list->env)
            continue;
        const struct list_def *ld = list->list;
        for (size_t j = 0; j < ld->items->n; j++) {
            const struct setting *s = &ld->items->settings[j];
            if (s->env == NULL)
                continue;
            int n = item_index(s, name, ld->max);
            if (n == 0)
                continue;
            if (config_load_services_form(l))
                return services_form_error(name, err, errlen);
            if (n < 0) {
                snprintf(err, errlen, "%s: no such %s (%s are numbered 1-%d)", name, ld->noun,
                         ld->plural, ld->max);
                return PMX_ERR;
            }
            struct inst *item;
            if (config_load_item(l, i, list, n, 0, &item, err, errlen) != PMX_OK)
                return PMX_ERR;
            return config_load_set(l, item, s, value, FROM_ENV, 0, err, errlen);
        }
    }
    *found = false;
    return PMX_OK;
}

/* One variable: a global setting, or one of the top-level service. */
static int env_var(struct load *l, const char *name, const char *value, char *err, size_t errlen)
{
    bool found;

    if (env_scope(l, &l->root, false, name, value, &found, err, errlen) != PMX_OK)
        return PMX_ERR;
    if (found)
        return PMX_OK;
    return env_scope(l, &l->top, true, name, value, &found, err, errlen);
}

int config_env_read(struct load *l, char *const *env, char *err, size_t errlen)
{
    if (env == NULL)
        return PMX_OK;
    for (size_t i = 0; env[i] != NULL; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq == NULL || eq == env[i])
            continue;
        size_t name_len = (size_t)(eq - env[i]);
        if (name_len >= ENV_NAME_MAX || seen_before(env, i, name_len))
            continue;
        char name[ENV_NAME_MAX];
        memcpy(name, env[i], name_len);
        name[name_len] = '\0';
        if (env_var(l, name, eq + 1, err, errlen) != PMX_OK)
            return PMX_ERR;
    }
    return PMX_OK;
}
