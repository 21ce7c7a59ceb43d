/* The codec registry: finds a codec by the name used in the configuration
 * (exchange.codec / EXCHANGE_CODEC). */
#include <string.h>

#include "codec.h"

static const struct codec_ops *const codecs[] = {
    &codec_raw, &codec_line, &codec_resp, &codec_memcache, &codec_http,
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
    return "raw, line, resp, memcache, http";
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
