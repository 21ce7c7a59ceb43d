/* Shared by the configuration test files: a scratch directory for YAML
 * files, a heap config loaded from YAML text and an environment, and checks
 * of the one-line error. */
#ifndef CONFIG_CHECK_H
#define CONFIG_CHECK_H
#include <check.h>
#include <sys/socket.h>

#include "config.h"

/* A NULL-terminated environment for config_load. */
#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

extern char tmpdir[64];         /* made by dir_setup, in the parent */
extern struct config *cfg;      /* on the heap; freed and reloaded by load() */
extern char err[CONFIG_ERR_MAX];
extern char yaml_path[256];     /* the file the last load() wrote */

/* Fixtures: the directory (unchecked), cfg (checked). */
void dir_setup(void);
void dir_teardown(void);
void cfg_setup(void);
void cfg_teardown(void);

/* Writes text into a new file under tmpdir; its path goes to yaml_path. */
const char *write_yaml(const char *text);

/* Frees cfg and loads it from YAML text (NULL: none) and env (NULL: empty). */
int load(const char *yaml, const char *const *env);

/* The load must fail with exactly want (or, with prefix, start with it);
 * in want, @FILE@ stands for yaml_path and @CODECS@ for codec_names(). */
void check_error(int rc, const char *want, int prefix);

/* The -t dump of c, malloc'd. */
char *dump_to_string(const struct config *c);

/* The port of an IPv4/IPv6 address, -1 for anything else. */
int sa_port(const struct sockaddr_storage *ss);

#endif
