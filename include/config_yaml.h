/* YAML front end of the configuration: reads a file with libyaml and hands
 * every node to the config module, which owns the schema and the setters. */
#ifndef CONFIG_YAML_H
#define CONFIG_YAML_H

#include <stddef.h>
#include "pmx.h"

enum config_yaml_kind {
    CONFIG_YAML_SCALAR,
    CONFIG_YAML_MAPPING,
    CONFIG_YAML_LIST,
};

/* Called once per node, parents before children. path names the node as a
 * user reads it: "" for the document root, "local", "local.port", and list
 * items counted from 1: "targets[1]", "targets[1].host". value is the text
 * of a scalar, NULL otherwise. line (from 1) is where the node's key, or the
 * list item, starts. Returns PMX_OK to accept the node (and walk into a
 * mapping or list), or PMX_ERR with one line in err. */
typedef int (*config_yaml_node_fn)(void *ctx, const char *path,
                                   enum config_yaml_kind kind, const char *value,
                                   int line, char *err, size_t errlen);

/* Reads the YAML file at file and walks its single document with fn. An
 * empty document has no nodes. Returns PMX_OK, or PMX_ERR with one line in
 * err: the file cannot be read, a YAML syntax error with its line, a
 * duplicate key, or whatever fn refused. */
int config_yaml_read(const char *file, config_yaml_node_fn fn, void *ctx,
                     char *err, size_t errlen) PMX_WUR;

/* The kind as an error message names it: "a scalar", "a mapping", "a list". */
const char *config_yaml_kind_name(enum config_yaml_kind kind);

#endif
