/* Environment front end of the configuration: hands every NAME=value of an
 * environ-style array to the config module's setters. */
#ifndef CONFIG_ENV_H
#define CONFIG_ENV_H

#include <stddef.h>
#include "pmx.h"

/* Called once per variable name, with the value getenv(3) would return (the
 * first entry of a name wins). Returns PMX_OK (also for names it does not
 * know: the environment is shared) or PMX_ERR with one line in err. */
typedef int (*config_env_var_fn)(void *ctx, const char *name, const char *value,
                                 char *err, size_t errlen);

/* Walks env, a NULL-terminated "NAME=value" array like environ (NULL means
 * empty), calling fn for each variable. Entries without '=' are skipped.
 * Returns PMX_OK, or the first PMX_ERR from fn. */
int config_env_read(char *const *env, config_env_var_fn fn, void *ctx,
                    char *err, size_t errlen) PMX_WUR;

#endif
