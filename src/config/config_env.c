/* Environment front end of the configuration: splits NAME=value entries and
 * feeds them to the config module's setters, with getenv(3) semantics. */
#include <stdbool.h>
#include <string.h>

#include "config_env.h"

/* Longer names are skipped: no setting has one (see config.c). */
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

int config_env_read(char *const *env, config_env_var_fn fn, void *ctx,
                    char *err, size_t errlen)
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
        if (fn(ctx, name, eq + 1, err, errlen) != PMX_OK)
            return PMX_ERR;
    }
    return PMX_OK;
}
