/* Socket helpers: listening (TCP and unix), non-blocking connects and their
 * result, listen-address strings, address formatting. Like Redis' anet,
 * they fill an error buffer and return a status; they never log: the
 * caller decides what a failure means. */
#ifndef NET_H
#define NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include "pmx.h"

/* "[ipv6]:port", or "unix:" and a socket path. */
#define NET_ADDR_MAX 128
/* sun_path holds 108 bytes with its NUL. */
#define NET_UNIX_PATH_MAX 108
#define NET_HOST_MAX 256

/* A listen address as written in the configuration: "HOST:PORT",
 * "[IPV6]:PORT" or "unix:/path". */
struct net_listen_spec {
    bool unix_socket;
    char host[NET_HOST_MAX];        /* without brackets */
    int port;
    char path[NET_UNIX_PATH_MAX];
};

/* Parses s into spec. Returns PMX_OK, or PMX_ERR with what is wrong in err
 * (e.g. "missing port", "port 0 is not 1-65535"). */
int net_parse_listen(const char *s, struct net_listen_spec *spec, char *err, size_t errlen) PMX_WUR;

/* Makes a socket non-blocking, close-on-exec, with TCP_NODELAY where it
 * applies. */
int net_setup_socket(int fd) PMX_WUR;

/* A listening TCP socket bound to addr (SO_REUSEADDR; IPV6_V6ONLY as
 * asked on IPv6), non-blocking. Returns the fd, or PMX_ERR with the reason
 * in err. */
int net_listen_tcp(const struct sockaddr *addr, socklen_t len, bool ipv6_only, int backlog,
                   char *err, size_t errlen) PMX_WUR;

/* A listening unix socket at path with permissions mode. A stale socket
 * file (nobody accepts on it) is replaced; a live one is an error, and so
 * is any other kind of file. Returns the fd, or PMX_ERR with the reason in
 * err. */
int net_listen_unix(const char *path, mode_t mode, int backlog, char *err, size_t errlen) PMX_WUR;

/* Starts a non-blocking connect to addr (SO_KEEPALIVE when keep_alive).
 * Returns the socket, or PMX_ERR with errno set. */
int net_connect(const struct sockaddr *addr, socklen_t len, bool keep_alive) PMX_WUR;

/* For a socket whose connect completed (writable): PMX_OK when connected,
 * else PMX_ERR with errno set to the connect error. */
int net_connect_result(int fd) PMX_WUR;

/* Formats addr as "1.2.3.4:5", "[::1]:5" or "unix:/path" ("unix" for an
 * unnamed unix peer) into out (NET_ADDR_MAX). */
void net_format_addr(const struct sockaddr *addr, socklen_t len, char *out, size_t outlen);

#endif
