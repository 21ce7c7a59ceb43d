/* YAML front end of the configuration (private to src/config): reads a file
 * with libyaml and hands every node to the loader's setters, by the schema:
 * a scalar to its setting, a list item to its list. */
#ifndef CONFIG_YAML_H
#define CONFIG_YAML_H

#include <stddef.h>
#include "pmx.h"

struct load;

/* Reads the YAML file at file and sets what its single document holds. An
 * empty document sets nothing. Returns PMX_OK, or PMX_ERR with one line in
 * err: the file cannot be read, a YAML syntax error with its line, a
 * duplicate key, an unknown key, a value of the wrong type or refused by
 * its setter. */
int config_yaml_read(struct load *l, const char *file, char *err, size_t errlen) PMX_WUR;

#endif
