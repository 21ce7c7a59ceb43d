/* The request log (SPEC §11): one line per request/response pair, JSON
 * lines or text, written for the fifo/funnel codecs and for the mysql
 * codec in proxy mode. Records are formatted on the reactor thread into a
 * bounded buffer; a writer thread empties it into the file, so a slow sink
 * never blocks the loop: when the buffer is full, lines are dropped,
 * counted, and the count is logged. */
#ifndef REQUEST_LOG_H
#define REQUEST_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pmx.h"

struct reactor;
struct request_log_config;

/* How a logged request ended (SPEC §11 `status`). */
enum request_log_status {
    REQUEST_LOG_OK,             /* "ok": answered by the upstream (or locally) */
    REQUEST_LOG_ERROR,          /* "error": an error reply (resp -ERR, memcache ERROR/SERVER_ERROR, http 5xx, mysql ERR) */
    REQUEST_LOG_TIMEOUT,        /* "timeout": response_timeout */
    REQUEST_LOG_BUSY,           /* "busy": refused by a limit, or no upstream available */
    REQUEST_LOG_CLIENT_GONE,    /* "client_gone": the client left before its answer */
    REQUEST_LOG_UPSTREAM_GONE,  /* "upstream_gone": the connection failed with it in flight */
};

/* One request/response pair. Strings need not be NUL-terminated where a
 * length is given; the log escapes them (JSON) and truncates command to
 * max_text bytes. */
struct request_log_record {
    const char *service;
    const char *client;         /* the client's address as logs show it (log_mask_ip applied by the caller) */
    const char *target;         /* target name, "" when none */
    const char *command;        /* resp/memcache: command and first key; http: method and path; mysql: the SQL */
    size_t command_len;
    /* The command's whole length when command holds only its first
     * command_len bytes (a caller that kept a prefix); 0: command_len. */
    size_t command_total;
    uint64_t bytes_in;          /* request bytes from the client */
    uint64_t bytes_out;         /* response bytes to the client */
    uint64_t us;                /* request sent upstream -> response complete; 0 when never sent */
    enum request_log_status status;
    /* mysql only (0 / -1 when not applicable): the ERR packet's code, the
     * prepared statement id of COM_STMT_PREPARE's answer or of an EXECUTE. */
    unsigned error_code;
    int64_t statement_id;
};

struct request_log;

/* Opens the log described by c (request_log: file, format, sample,
 * max_text) and starts its writer thread. Returns NULL with a one-line
 * reason in err naming request_log.file (file cannot be opened). Each log
 * buffers up to 1 MiB (two halves of 512 KiB, more when max_text needs it);
 * request_log_write() drops a line that does not fit. */
struct request_log *request_log_open(const struct request_log_config *c, char *err, size_t errlen);

/* Whether the next request is logged (sample: 1.0 always, 0.25 about one
 * in four). Asked once per request, when it starts. */
bool request_log_sampled(struct request_log *log);

/* Formats r into the log's buffer; dropped and counted when full. */
void request_log_write(struct request_log *log, const struct request_log_record *r);

/* Lines dropped so far (buffer full, or a failed write). */
uint64_t request_log_dropped(struct request_log *log);

/* "ok", "error", ... as the log writes s. */
const char *request_log_status_name(enum request_log_status s);

/* Flushes what is buffered, stops the writer thread and closes the file.
 * Waits for the writer at most 500 ms: a writer still blocked then (a
 * stuck sink) is left to free the log itself when its write() returns, so
 * the loop never waits longer. NULL is ignored. */
void request_log_close(struct request_log *log);

#endif
