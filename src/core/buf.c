/* Bounded byte buffers with lazy allocation; see include/buf.h for the
 * cursor layout. */
#include <stdlib.h>
#include <string.h>
#include <assert.h>

#include "buf.h"

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->head = b->tail = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t n)
{
    size_t len = buf_len(b);

    if (buf_space(b) >= n)
        return PMX_OK;
    /* Compacting is enough when the consumed prefix makes room. */
    if (b->cap - len >= n && b->head > 0) {
        memmove(b->data, b->data + b->head, len);
        b->head = 0;
        b->tail = len;
        return PMX_OK;
    }
    size_t cap = b->cap ? b->cap : BUF_MIN_ALLOC;
    while (cap - len < n) {
        if (cap > ((size_t)-1) / 2)
            return PMX_ERR;
        cap *= 2;
    }
    char *data = malloc(cap);
    if (data == NULL)
        return PMX_ERR;
    if (len > 0)
        memcpy(data, b->data + b->head, len);
    free(b->data);
    b->data = data;
    b->head = 0;
    b->tail = len;
    b->cap = cap;
    return PMX_OK;
}

void buf_produce(struct buf *b, size_t n)
{
    assert(n <= buf_space(b));
    b->tail += n;
}

void buf_consume(struct buf *b, size_t n)
{
    assert(n <= buf_len(b));
    b->head += n;
    if (b->head == b->tail)
        b->head = b->tail = 0;
}

int buf_append(struct buf *b, const void *src, size_t n)
{
    if (n == 0)
        return PMX_OK;
    if (buf_reserve(b, n) != PMX_OK)
        return PMX_ERR;
    memcpy(b->data + b->tail, src, n);
    b->tail += n;
    return PMX_OK;
}

void buf_release(struct buf *b)
{
    if (buf_len(b) == 0)
        buf_free(b);
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}
