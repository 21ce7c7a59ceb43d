/* libFuzzer harness for the request log's parsers and escapers: each
 * codec's describe() (the RESP one reads lengths from the input) and
 * error_reply(), then the JSON and text formatting of the description with
 * a small max_text (escaping, UTF-8 checks, truncation). The first byte
 * picks the codec and the room given to describe(); the output buffer is
 * exactly that size so that ASan sees any write past it, and a shorter
 * room must give a prefix of the longer one's text with the same length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"
#include "request_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_request_log: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

static const struct codec_ops *const codecs[] = {
    &codec_resp, &codec_memcache, &codec_http, &codec_line, &codec_raw,
};

/* Two logs on /dev/null, one per format: formatting runs on every input;
 * kept open for the whole run. */
static struct request_log *logs[2];

static void open_logs(void)
{
    char err[256];

    for (int f = 0; f < 2; f++) {
        struct request_log_config c;
        memset(&c, 0, sizeof(c));
        snprintf(c.file, sizeof(c.file), "/dev/null");
        c.format = f == 0 ? REQUEST_LOG_JSON : REQUEST_LOG_TEXT;
        c.sample = 1.0;
        c.max_text = 16;
        logs[f] = request_log_open(&c, err, sizeof(err));
        CHECK(logs[f] != NULL, "%s", err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (logs[0] == NULL)
        open_logs();
    if (size < 1)
        return 0;
    const struct codec_ops *codec = codecs[data[0] % PMX_ARRAY_LEN(codecs)];
    size_t cap = (size_t)(data[0] >> 3);    /* 0-31 bytes */
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    char *small = malloc(cap > 0 ? cap : 1);
    char *big = malloc(len + 8);
    CHECK(small != NULL && big != NULL, "out of memory");
    size_t n_small = codec->describe(in, len, small, cap);
    size_t n_big = codec->describe(in, len, big, len + 8);
    CHECK(codec->describe(in, len, NULL, 0) == n_big, "length without room differs");
    CHECK(n_small == n_big, "length %zu with room %zu, %zu with room %zu", n_small, cap, n_big, len + 8);
    CHECK(n_big <= len + 8, "description longer than the room: %zu", n_big);
    CHECK(memcmp(small, big, PMX_MIN(n_small, cap)) == 0, "room %zu: not a prefix", cap);
    if (codec->error_reply != NULL)
        (void)codec->error_reply(in, len);

    for (int f = 0; f < 2; f++) {
        struct request_log_record r = {
            .service = "fuzz", .client = "127.0.0.1:1", .target = "t",
            .command = big, .command_len = n_big,
            .command_total = (data[0] & 1) ? n_big + 100 : 0,
            .status = (enum request_log_status)(data[0] % 6),
            .error_code = data[0] & 2 ? 1064 : 0,
            .statement_id = data[0] & 4 ? 7 : -1,
        };
        request_log_write(logs[f], &r);
        /* The raw input too: any bytes as a command. */
        r.command = in;
        r.command_len = len;
        r.command_total = 0;
        request_log_write(logs[f], &r);
    }
    free(small);
    free(big);
    return 0;
}
