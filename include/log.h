/* Logging: one line per event on stderr (or a file reopened on SIGHUP),
 * filtered by level. */
#ifndef LOG_H
#define LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include "pmx.h"

enum log_level {
    LOG_NONE = 0,
    LOG_ERROR = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

extern int log_level;

void log_set_level(int level);

/* log_mask_ip (SPEC §11): when on, log_format_client() masks addresses. */
void log_set_mask_ip(bool on);

/* Formats a client's address for log lines (NET_ADDR_MAX bytes) as
 * net_format_addr() does, or masked when log_mask_ip is on: IPv4 keeps its
 * first two bytes ("10.1.x.x:5000"), IPv6 its first 48 bits
 * ("[2001:db8:1::/48]:5000"), IPv4-mapped IPv6 as IPv4
 * ("[::ffff:10.1.x.x]:5000"); the port stays, to tell connections apart.
 * Unix-socket peers carry no address and are never masked. Only the text
 * is masked: matching, ip_hash and send_proxy use the real address. */
void log_format_client(const struct sockaddr *addr, socklen_t len, char *out, size_t outlen);

/* Directs logs to path (appending), or to stderr when path is NULL or
 * empty. Called again on SIGHUP to reopen a rotated file. Returns PMX_OK, or
 * PMX_ERR with errno set; stderr is kept in that case. */
int log_open(const char *path) PMX_WUR;

void log_write(int level, int with_errno, const char *fmt, ...) PMX_PRINTF(3, 4);

/* Level checks are done before the arguments are evaluated. log_*_errno
 * appends strerror(errno), like warn(3); the others do not, like warnx(3). */
#define log_error(...) do { if (log_level >= LOG_ERROR) log_write(LOG_ERROR, 0, __VA_ARGS__); } while (0)
#define log_error_errno(...) do { if (log_level >= LOG_ERROR) log_write(LOG_ERROR, 1, __VA_ARGS__); } while (0)
#define log_info(...) do { if (log_level >= LOG_INFO) log_write(LOG_INFO, 0, __VA_ARGS__); } while (0)
#define log_info_errno(...) do { if (log_level >= LOG_INFO) log_write(LOG_INFO, 1, __VA_ARGS__); } while (0)
#define log_debug(...) do { if (log_level >= LOG_DEBUG) log_write(LOG_DEBUG, 0, __VA_ARGS__); } while (0)

#endif
