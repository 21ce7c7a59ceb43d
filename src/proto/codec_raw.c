/* raw codec: no framing at all. One client read is one request and one
 * upstream read completes one response. Only safe with small messages (one
 * segment each) and a sync exchange: a message split over two reads, or two
 * pipelined messages merged into one read, pair the wrong bytes. */
#include <string.h>

#include "codec.h"

static void raw_begin(struct codec_parser *p)
{
    memset(p, 0, sizeof(*p));
}

static void raw_response_begin(struct codec_parser *p, uint32_t info)
{
    memset(p, 0, sizeof(*p));
    p->info = info;
}

/* Every non-empty chunk is a whole message. */
static int raw_parse(struct codec_parser *p, const char *data, size_t len, size_t *used)
{
    *used = len;
    p->size += len;
    return len > 0 ? CODEC_DONE : CODEC_MORE;
}

/* raw has no error message: the client is closed instead. */
static size_t raw_reply(enum codec_reply kind, const char *reason, char *out, size_t cap)
{
    return 0;
}

const struct codec_ops codec_raw = {
    .name = "raw",
    .by_read = true,
    .request_begin = raw_begin,
    .parse_request = raw_parse,
    .response_begin = raw_response_begin,
    .parse_response = raw_parse,
    .reply = raw_reply,
    .describe = codec_describe_bytes,
};
