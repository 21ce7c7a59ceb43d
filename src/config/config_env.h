/* Environment front end of the configuration (private to src/config): hands
 * every NAME=value of an environ-style array that names a setting to the
 * loader's setters. */
#ifndef CONFIG_ENV_H
#define CONFIG_ENV_H

#include <stddef.h>
#include "pmx.h"

struct load;

/* Walks env, a NULL-terminated "NAME=value" array like environ (NULL means
 * empty), with getenv(3) semantics (the first entry of a name wins; entries
 * without '=' are skipped), and sets every setting it names: the global
 * ones, those of the top-level service (LOCAL_PORT...) and of its targets
 * (TARGET_HOST_n...). Names of no setting are ignored: the environment is
 * shared. Service settings are an error when the file has services:.
 * Returns PMX_OK, or PMX_ERR with one line in err. */
int config_env_read(struct load *l, char *const *env, char *err, size_t errlen) PMX_WUR;

#endif
