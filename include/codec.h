/* Codecs find where one request and one response end in a byte stream, so
 * that a multiplexing exchange can pair every response with its request.
 * Each codec is an ops table; parsers are incremental and never copy.
 *
 * The framing rule. A request is forwarded to a shared connection only if
 * the upstream will frame it exactly as the codec did and answer it with
 * exactly the replies the codec expects. Anything the upstream might parse
 * differently (NUL or control bytes where the server's parser stops or
 * splits, lines or tokens over the server's limits, ambiguous HTTP framing),
 * refuse, close the connection on, or leave unanswered is refused by the
 * codec (CODEC_ERROR, or CODEC_INFO_UNSUPPORTED when the client may go on)
 * before it is sent. When in doubt, refuse: a refused request costs one
 * client an error, a mis-framed one hands other clients' answers around. */
#ifndef CODEC_H
#define CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pmx.h"

enum codec_status {
    CODEC_MORE = 0,     /* the message goes on: call again with more bytes */
    CODEC_DONE = 1,     /* the message ended */
    CODEC_ERROR = -1,   /* malformed bytes: parser->error says why */
};

/* Facts about a request, found by parse_request and kept by the exchange in
 * parser->info. The low 16 bits are common to all codecs; the high 16 bits
 * are the codec's own (e.g. which kind of reply a memcached command gets),
 * and are handed back to response_begin(). */
#define CODEC_INFO_NOREPLY     0x0001u  /* no response will come (memcached noreply) */
#define CODEC_INFO_QUIT        0x0002u  /* the client says goodbye: answer with CODEC_REPLY_QUIT, close it */
#define CODEC_INFO_UNSUPPORTED 0x0004u  /* cannot be multiplexed (MULTI, SUBSCRIBE...): refuse with CODEC_REPLY_CLIENT_ERROR */
#define CODEC_INFO_CLOSE       0x0008u  /* HTTP: close the client after this response */
#define CODEC_INFO_CONTINUE    0x0010u  /* HTTP: the client waits for CODEC_REPLY_CONTINUE before sending the body */
#define CODEC_INFO_SKIP        0x0020u  /* not a request (empty lines the server ignores): drop the bytes, send nothing */
#define CODEC_INFO_PRIVATE(x)  ((uint32_t)(x) << 16)
#define CODEC_INFO_PRIVATE_GET(info) ((uint32_t)(info) >> 16)

#define CODEC_MAX_DEPTH 16

/* State of one message being parsed. Zeroed by request_begin or
 * response_begin; the fields mean what each codec says they mean. */
struct codec_parser {
    int state;
    uint32_t info;          /* CODEC_INFO_* of the request (request side: found; response side: given) */
    int64_t remaining;      /* bytes of a body, bulk or chunk still to pass */
    int depth;              /* nesting depth (RESP arrays) */
    int64_t counts[CODEC_MAX_DEPTH]; /* elements left at each depth */
    uint64_t size;          /* bytes of this message consumed so far */
    const char *error;      /* set with CODEC_ERROR: a short static reason */
    /* HTTP responses: this response ends only when the upstream closes the
     * connection (no Content-Length, not chunked); parse_response consumes
     * every byte and returns CODEC_MORE, and the exchange completes the
     * response at end of stream. */
    bool until_close;
    /* HTTP responses: the upstream closes the connection after this
     * response (Connection: close, HTTP/1.0 without keep-alive, or a request
     * that asked for close); send nothing more on that connection. */
    bool close_after;
    /* Responses: the first skip bytes of the response are not for the
     * client (HTTP: the upstream's "100 Continue" to a client Proximux
     * already answered one); the exchange passes on the rest. */
    uint64_t skip;
};

/* Kinds of reply the exchange asks a codec to write for a client. */
enum codec_reply {
    CODEC_REPLY_CLIENT_ERROR,   /* malformed, oversized or unsupported request: resp -ERR, memcache CLIENT_ERROR, http 400 */
    CODEC_REPLY_SERVER_ERROR,   /* upstream failed: resp -ERR, memcache SERVER_ERROR, http 502 */
    CODEC_REPLY_TIMEOUT,        /* no response in time: resp -ERR, memcache SERVER_ERROR, http 504 */
    CODEC_REPLY_BUSY,           /* queue full or waited too long: resp -ERR, memcache SERVER_ERROR, http 503 */
    CODEC_REPLY_QUIT,           /* answer to a CODEC_INFO_QUIT request: resp +OK, others nothing */
    CODEC_REPLY_CONTINUE,       /* interim answer to a CODEC_INFO_CONTINUE request: http "100 Continue";
                                   asked only of codecs that set that info */
};

/*
 * parse_request / parse_response scan data[0..len), which starts with the
 * first byte of the current message not yet consumed. They set *used to the
 * number of leading bytes that belong to the message and are understood:
 * the caller may forward or drop them and must not pass them again. Bytes
 * after *used (a header or length line not yet complete) must be passed
 * again, followed by what arrives next. A parser never consumes a partial
 * line it still has to interpret; it may consume part of a body.
 *
 * Returns CODEC_DONE when the message ends at data[*used - 1], CODEC_MORE
 * when it needs more bytes, CODEC_ERROR when the bytes cannot be this
 * protocol (p->error says why; *used is meaningless then).
 */
typedef int (*codec_parse_fn)(struct codec_parser *p, const char *data, size_t len, size_t *used);

struct codec_ops {
    const char *name;
    /* true for raw: every chunk handed over is a whole message (one read is
     * one request, one upstream read completes a response). */
    bool by_read;
    /* true for http: one request in flight per upstream connection, even
     * when the exchange pipelines (funnel_async). An HTTP upstream closes
     * the connection on many errors, and a response whose framing the
     * upstream gets wrong would be handed to the next client; nginx,
     * HAProxy and Envoy never pipeline upstream either. */
    bool one_in_flight;
    void (*request_begin)(struct codec_parser *p);
    codec_parse_fn parse_request;
    /* info is the request's p->info as found by parse_request. */
    void (*response_begin)(struct codec_parser *p, uint32_t info);
    codec_parse_fn parse_response;
    /* Writes a reply of the given kind with reason into out (at most cap
     * bytes, truncating reason if needed) and returns its length; 0 means
     * the protocol has no such reply and the client is closed instead. */
    size_t (*reply)(enum codec_reply kind, const char *reason, char *out, size_t cap);
    /* The request log's `command` for the whole request data[0..len):
     * resp and memcache the command and its first key, http the method and
     * path, line the line, raw the bytes. Writes at most cap bytes of it
     * into out and returns its whole length (like snprintf, no NUL; out
     * may be NULL when cap is 0); the request itself is not copied. */
    size_t (*describe)(const char *data, size_t len, char *out, size_t cap);
    /* Whether the whole response data[0..len) is an error reply (resp
     * "-ERR", memcache ERROR / CLIENT_ERROR / SERVER_ERROR, http 5xx); NULL
     * when the protocol has none (line, raw). */
    bool (*error_reply)(const char *data, size_t len);
    /* true for mysql: no framing functions; exchange.codec accepts it with
     * mode proxy only (a proxy session follows the packets itself). */
    bool proxy_only;
};

/* The codec called name ("raw", "line", "resp", "memcache", "http"), or
 * NULL. */
const struct codec_ops *codec_find(const char *name);

/* The names of all codecs, separated by ", ", for error messages. */
const char *codec_names(void);

/* Writes prefix, reason (without CR or LF, truncated to fit) and CRLF into
 * out; returns the length, or 0 if not even prefix and CRLF fit in cap. For
 * the reply() of line-based protocols. */
size_t codec_error_line(const char *prefix, const char *reason, char *out, size_t cap);

/* For describe(): up to `words` space-separated words of the first line of
 * data[0..len) (the line without CR/LF; words 0: the whole line), joined
 * by one space. Returns the whole length; writes at most cap bytes. */
size_t codec_describe_words(const char *data, size_t len, int words, char *out, size_t cap);

/* For describe(): the bytes as they are. */
size_t codec_describe_bytes(const char *data, size_t len, char *out, size_t cap);

extern const struct codec_ops codec_raw;
extern const struct codec_ops codec_line;
extern const struct codec_ops codec_resp;
extern const struct codec_ops codec_memcache;
extern const struct codec_ops codec_http;
extern const struct codec_ops codec_mysql;

#endif
