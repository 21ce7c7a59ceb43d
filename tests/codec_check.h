/* Shared by the codec test files: a driver that feeds a message to a codec
 * the way the exchange does (split at every byte, one byte at a time,
 * streams back to back), and checks of samples, malformed input and
 * reply bytes. */
#ifndef CODEC_CHECK_H
#define CODEC_CHECK_H
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

/* Same values as the codecs' private bits (codec_memcache.c, codec_http.c). */
#define MC_LINE   CODEC_INFO_PRIVATE(1)
#define MC_VALUES CODEC_INFO_PRIVATE(2)
#define MC_STATS  CODEC_INFO_PRIVATE(3)
#define MC_META   CODEC_INFO_PRIVATE(4)
#define HTTP_HEAD CODEC_INFO_PRIVATE(1)

#define S(str) str, sizeof(str) - 1

/* ck_assert reports every passing check to the parent process (a syscall):
 * loops that run a million times check with this instead. */
#define REQUIRE(cond, ...) \
    do { \
        if (!(cond)) \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

/* One well-formed message. For a request, info is what parse_request must
 * find; for a response, the request's info handed to response_begin. */
struct sample {
    const char *data;
    size_t len;
    uint32_t info;
    bool until_close;       /* response ends at end of stream: parse returns MORE */
    bool close_after;
};

/* One malformed message: error is a substring of p->error, or NULL. */
struct bad {
    const char *data;
    size_t len;
    uint32_t info;
    const char *error;
};

struct outcome {
    int rc;
    uint64_t used;      /* bytes consumed */
    size_t left;        /* bytes handed over or not yet fed, not consumed */
    uint32_t info;
    bool until_close;
    bool close_after;
    const char *error;
};

void begin(const struct codec_ops *c, bool response, struct codec_parser *p, uint32_t info);

int parse(const struct codec_ops *c, bool response, struct codec_parser *p,
                 const char *data, size_t len, size_t *used);

struct outcome drive(const struct codec_ops *c, bool response, uint32_t info,
                            const char *msg, size_t len, size_t first, size_t step);

void check_sample(const struct codec_ops *c, bool response, const struct sample *s, int idx);

void check_samples(const struct codec_ops *c, bool response, const struct sample *s, size_t n);

void check_bad(const struct codec_ops *c, bool response, const struct bad *b, size_t n);

void check_streams(const struct codec_ops *c, bool response, const struct sample *s, size_t n);

char *make_big(const char *head, size_t fill, char c, const char *tail, size_t *len);

void expect_whole(const struct codec_ops *c, bool response, uint32_t info,
                         const char *data, size_t len, int rc, size_t used_want);

void expect_reply(const struct codec_ops *c, enum codec_reply kind, const char *reason,
                         size_t cap, const char *want);

#endif
