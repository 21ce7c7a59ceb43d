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
