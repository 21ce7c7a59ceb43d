/* The daemon: every service of the configuration on one reactor, the
 * janitor, signals (shutdown, reload, binary upgrade) and the reload that
 * adds, removes, replaces and updates services without dropping clients. */
#ifndef DAEMON_H
#define DAEMON_H

#include <stddef.h>
#include "pmx.h"

struct config;
struct daemon;

/* The reply of a reload for whoever asked (SIGHUP's log line, the admin
 * API's POST /api/v1/reload): PMX_OK with what changed, or PMX_ERR with why
 * it was refused, one line in msg (cut at len). */
typedef int (*reload_fn)(void *data, char *msg, size_t len);

/* Takes c (loaded by config_load(), allocated with malloc) and argv (for a
 * binary upgrade); binds or inherits every listener. Returns the daemon,
 * or NULL with one line in err (c is freed then). */
struct daemon *daemon_create(struct config *c, char **argv, char *err, size_t errlen);

/* Runs until shutdown. Returns the exit status. */
int daemon_run(struct daemon *d);

/* Closes everything and frees d. */
void daemon_destroy(struct daemon *d);

/* Reloads the configuration (as SIGHUP does): see reload_fn. */
int daemon_reload(struct daemon *d, char *msg, size_t len);

/* daemon_reload() as a reload_fn, data being the daemon. */
int daemon_reload_fn(void *data, char *msg, size_t len);

#endif
