/* The codec registry: finds a codec by the name used in the configuration
 * (exchange.codec / EXCHANGE_CODEC). */
#include <string.h>

#include "codec.h"

static const struct codec_ops *const codecs[] = {
    &codec_raw, &codec_line, &codec_resp, &codec_memcache, &codec_http, &codec_mysql,
};

const struct codec_ops *codec_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < PMX_ARRAY_LEN(codecs); i++)
        if (strcmp(codecs[i]->name, name) == 0)
            return codecs[i];
    return NULL;
}

const char *codec_names(void)
{
    return "raw, line, resp, memcache, http, mysql";
}

size_t codec_error_line(const char *prefix, const char *reason, char *out, size_t cap)
{
    size_t n = strlen(prefix);

    if (cap < n + 2)
        return 0;
    memcpy(out, prefix, n);
    /* The reason must not end the line early: CR and LF are dropped. */
    for (const char *r = reason ? reason : "error"; *r != '\0' && n < cap - 2; r++)
        if (*r != '\r' && *r != '\n')
            out[n++] = *r;
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

/* Copies data[0..n) into out at *pos as far as cap allows; *pos counts
 * every byte. */
static void codec_describe_put(const char *data, size_t n, char *out, size_t cap, size_t *pos)
{
    if (*pos < cap)
        memcpy(out + *pos, data, PMX_MIN(n, cap - *pos));
    *pos += n;
}

size_t codec_describe_words(const char *data, size_t len, int words, char *out, size_t cap)
{
    const char *nl = memchr(data, '\n', len);
    size_t end = nl != NULL ? (size_t)(nl - data) : len, pos = 0, i = 0;

    if (end > 0 && data[end - 1] == '\r')
        end--;
    if (words == 0) {
        codec_describe_put(data, end, out, cap, &pos);
        return pos;
    }
    for (int w = 0; w < words; w++) {
        while (i < end && (data[i] == ' ' || data[i] == '\t'))
            i++;
        size_t start = i;
        while (i < end && data[i] != ' ' && data[i] != '\t')
            i++;
        if (i == start)
            break;
        if (w > 0)
            codec_describe_put(" ", 1, out, cap, &pos);
        codec_describe_put(data + start, i - start, out, cap, &pos);
    }
    return pos;
}

size_t codec_describe_bytes(const char *data, size_t len, char *out, size_t cap)
{
    size_t pos = 0;

    codec_describe_put(data, len, out, cap, &pos);
    return pos;
}
