/* The "command" of a framed request as a person reads it (SPEC §11): the
 * first words of a resp or memcache request, an HTTP request's method and
 * path, a line's text. For hooks and logs; never used for framing. */
#include <string.h>

#include "codec.h"

/* Appends word[0..n) to out (space separated); returns the new length. */
static size_t codec_command_add(char *out, size_t cap, size_t used, const char *word, size_t n)
{
    if (cap == 0)
        return 0;
    if (used > 0 && used + 1 < cap)
        out[used++] = ' ';
    if (n > cap - 1 - used)
        n = cap - 1 - used;
    memcpy(out + used, word, n);
    used += n;
    out[used] = '\0';
    return used;
}

/* The line of data up to CR/LF (or all of it). */
static size_t codec_command_line(const char *data, size_t len)
{
    size_t n = 0;

    while (n < len && data[n] != '\r' && data[n] != '\n')
        n++;
    return n;
}

/* Up to words space-separated tokens of the first line. */
static size_t codec_command_tokens(const char *data, size_t len, int words, char *out, size_t cap)
{
    size_t end = codec_command_line(data, len), used = 0, i = 0;

    for (int w = 0; w < words; w++) {
        while (i < end && (data[i] == ' ' || data[i] == '\t'))
            i++;
        size_t start = i;
        while (i < end && data[i] != ' ' && data[i] != '\t')
            i++;
        if (i == start)
            break;
        used = codec_command_add(out, cap, used, data + start, i - start);
    }
    return used;
}

/* A decimal number at data[*i] ending in CRLF; -1 if none. */
static long codec_command_number(const char *data, size_t len, size_t *i)
{
    long v = 0;
    size_t start = *i;

    while (*i < len && data[*i] >= '0' && data[*i] <= '9' && v < 1000000000L)
        v = v * 10 + (data[(*i)++] - '0');
    if (*i == start || *i + 1 >= len || data[*i] != '\r' || data[*i + 1] != '\n')
        return -1;
    *i += 2;
    return v;
}

/* The first words bulk strings of a RESP array (an inline command is read
 * as tokens). */
static size_t codec_command_resp(const char *data, size_t len, int words, char *out, size_t cap)
{
    size_t i = 1, used = 0;

    if (len == 0 || data[0] != '*')
        return codec_command_tokens(data, len, words, out, cap);
    long count = codec_command_number(data, len, &i);
    for (long k = 0; k < count && k < words; k++) {
        if (i >= len || data[i] != '$')
            break;
        i++;
        long n = codec_command_number(data, len, &i);
        if (n < 0 || (size_t)n > len - i)
            break;
        used = codec_command_add(out, cap, used, data + i, (size_t)n);
        i += (size_t)n + 2;
    }
    return used;
}

size_t codec_command(const struct codec_ops *codec, const char *data, size_t len, int words, char *out,
                     size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    if (codec == &codec_resp)
        return codec_command_resp(data, len, words, out, cap);
    if (codec == &codec_memcache)
        return codec_command_tokens(data, len, words, out, cap);
    if (codec == &codec_http)
        return codec_command_tokens(data, len, 2, out, cap);
    return codec_command_add(out, cap, 0, data, codec_command_line(data, len));
}
