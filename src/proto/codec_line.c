/* line codec: a request and a response are each one line ending in '\n'
 * (LF or CRLF). The line is not interpreted, so it is consumed as it
 * arrives; only the exchange's message size limit bounds it. */
#include <string.h>

#include "codec.h"

static void line_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static void line_response_begin(struct codec_parser *p, uint32_t info)
{
    memset(p, 0, sizeof(*p));
    p->info = info;
}

/* Consumes up to and including the first '\n', or everything. */
static int line_parse(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    const char *nl = len > 0 ? memchr(data, '\n', len) : NULL;

    *used = nl != NULL ? (size_t)(nl - data) + 1 : len;
    p->size += *used;
    return nl != NULL ? CODEC_DONE : CODEC_MORE;
}

/* line has no error message: the client is closed instead. */
static size_t line_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    return 0;
}

/* The request log shows the line without its CR LF. */
static size_t line_describe(const char *data, size_t len, char *out, size_t cap)
{
    return codec_describe_words(data, len, 0, out, cap);
}

const struct codec_ops codec_line = {
    .name = "line",
    .by_read = false,
    .request_begin = line_begin,
    .parse_request = line_parse,
    .response_begin = line_response_begin,
    .parse_response = line_parse,
    .reply = line_reply,
    .describe = line_describe,
};
