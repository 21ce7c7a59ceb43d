/* The MySQL packet follower (SPEC §11, exchange.codec mysql in proxy mode):
 * fed the bytes of both directions as the proxy passes them, in any
 * segmentation, it follows the handshake, the auth exchanges and the
 * commands, and reports each query with its outcome. It never changes or
 * holds a byte: it only observes, and owns no socket.
 *
 * Memory per session is bounded: the current packet's header and first
 * MYSQL_HEAD_MAX payload bytes per direction, the SQL text of each command
 * in flight (at most MYSQL_MAX_PENDING, each truncated to max_text), and
 * the texts of at most MYSQL_MAX_STATEMENTS prepared statements; text
 * buffers grow with the text, so short queries cost little. */
#ifndef MYSQL_H
#define MYSQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* First payload bytes of a packet kept to decode it (greeting, handshake
 * response, OK/ERR/EOF, PREPARE_OK, column count). */
#define MYSQL_HEAD_MAX 128
/* Commands a client may send before the answer to the first (pipelining):
 * one more makes the session "not followed". */
#define MYSQL_MAX_PENDING 16
/* Prepared statements remembered per session; preparing one more forgets
 * the oldest (an EXECUTE of a forgotten one is reported without text). */
#define MYSQL_MAX_STATEMENTS 64
/* Upper bound of max_text (bytes of SQL text kept per command). */
#define MYSQL_TEXT_LIMIT (1024 * 1024)

/* Command bytes the follower reports or needs to name. */
#define MYSQL_COM_QUIT          0x01
#define MYSQL_COM_QUERY         0x03
#define MYSQL_COM_STMT_PREPARE  0x16
#define MYSQL_COM_STMT_EXECUTE  0x17
#define MYSQL_COM_STMT_CLOSE    0x19

/* Capability flags the follower looks at. */
#define MYSQL_CLIENT_PROTOCOL_41      0x00000200u
#define MYSQL_CLIENT_COMPRESS         0x00000020u
#define MYSQL_CLIENT_SSL              0x00000800u
#define MYSQL_CLIENT_MULTI_STATEMENTS 0x00010000u
#define MYSQL_CLIENT_MULTI_RESULTS    0x00020000u
#define MYSQL_CLIENT_ZSTD             0x04000000u
#define MYSQL_CLIENT_QUERY_ATTRIBUTES 0x08000000u
#define MYSQL_CLIENT_DEPRECATE_EOF    0x01000000u

#define MYSQL_SERVER_MORE_RESULTS_EXISTS 0x0008u
#define MYSQL_SERVER_STATUS_CURSOR_EXISTS 0x0040u

enum mysql_direction {
    MYSQL_FROM_CLIENT,
    MYSQL_FROM_SERVER,
};

enum mysql_event_type {
    MYSQL_EVENT_QUERY,          /* COM_QUERY / PREPARE / EXECUTE complete from the client: it starts */
    MYSQL_EVENT_DONE,           /* its last result packet passed (or the session ended first) */
    MYSQL_EVENT_QUIT,           /* COM_QUIT */
    MYSQL_EVENT_NOT_FOLLOWED,   /* once: the rest of the session is only piped (reason) */
};

enum mysql_outcome {
    MYSQL_OK,                   /* OK, or a result set ended by EOF/OK */
    MYSQL_ERROR,                /* an ERR packet (error_code) */
    MYSQL_CLIENT_GONE,          /* mysql_follower_end(): the client left first */
    MYSQL_UPSTREAM_GONE,        /* mysql_follower_end(): the server left first */
};

struct mysql_event {
    enum mysql_event_type type;
    uint8_t command;            /* MYSQL_COM_* */
    const char *text;           /* the SQL text (the prepared one for EXECUTE), not NUL-terminated */
    size_t text_len;            /* at most max_text */
    bool truncated;             /* the text was longer */
    uint64_t text_total;        /* the whole text's length */
    int64_t statement_id;       /* PREPARE (its answer's id) and EXECUTE, else -1 */
    /* QUERY: where the caller may keep a stamp (its start time); DONE
     * gives it back. */
    uint64_t *stamp_slot;
    uint64_t stamp;
    /* DONE: */
    enum mysql_outcome outcome;
    unsigned error_code;        /* MYSQL_ERROR: the ERR packet's code */
    uint64_t rows;              /* rows of all result sets */
    unsigned results;           /* result sets and OKs (more than 1: multi-statement/multi-result) */
    uint64_t bytes_in;          /* bytes of the command (and LOCAL INFILE data) from the client */
    uint64_t bytes_out;         /* bytes of its answer from the server */
    /* NOT_FOLLOWED: a short static reason. */
    const char *reason;
};

typedef void (*mysql_event_fn)(void *ctx, const struct mysql_event *ev);

struct mysql_follower;

/* A follower for one session, reporting to fn(ctx, ...); max_text bytes of
 * SQL text are kept per command (clamped to 1..MYSQL_TEXT_LIMIT). NULL
 * when out of memory. */
struct mysql_follower *mysql_follower_new(size_t max_text, mysql_event_fn fn, void *ctx);

/* Observes len bytes that passed in direction dir. Events are reported
 * from inside this call. Never fails: what it cannot follow it reports
 * once (MYSQL_EVENT_NOT_FOLLOWED) and then ignores. */
void mysql_follower_feed(struct mysql_follower *f, enum mysql_direction dir, const char *data, size_t len);

/* True once the session is only piped (TLS, compression, a packet not
 * understood). */
bool mysql_follower_lost(const struct mysql_follower *f);

/* The session ended: every command still waiting for its answer is
 * reported DONE with outcome (MYSQL_CLIENT_GONE or MYSQL_UPSTREAM_GONE). */
void mysql_follower_end(struct mysql_follower *f, enum mysql_outcome outcome);

/* Frees f (no events). NULL is ignored. */
void mysql_follower_free(struct mysql_follower *f);

/* Bytes f holds now, for tests of its bound. */
size_t mysql_follower_memory(const struct mysql_follower *f);

#endif
