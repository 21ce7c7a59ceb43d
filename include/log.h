/* Logging: one line per event on stderr (or a file reopened on SIGHUP),
 * filtered by level. */
#ifndef LOG_H
#define LOG_H

#include "pmx.h"

enum log_level {
    LOG_NONE = 0,
    LOG_ERROR = 1,
    LOG_INFO = 2,
    LOG_DEBUG = 3,
};

extern int log_level;

void log_set_level(int level);

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
