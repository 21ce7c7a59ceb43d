/* Bounded byte buffers: the storage between a socket and the module that
 * parses or forwards its bytes. */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include "pmx.h"

/*
 *   data          head                 tail               cap
 *    |  consumed   |   pending bytes    |   free space     |
 *    +-------------+--------------------+------------------+
 *
 * Bytes are appended at tail and consumed from head. Invariant:
 * head <= tail <= cap, and data == NULL exactly when cap == 0. Memory is
 * allocated on first use; buf_release() frees it while the buffer is empty,
 * so an idle connection holds no buffer memory. The owner enforces limits:
 * a buffer grows only when buf_reserve() is asked to.
 */
struct buf {
    char *data;
    size_t head;
    size_t tail;
    size_t cap;
};

#define BUF_MIN_ALLOC 4096

static inline size_t buf_len(const struct buf *b) { return b->tail - b->head; }
/* NULL + 0 is undefined in C: an unallocated buffer starts and ends at NULL. */
static inline char *buf_start(const struct buf *b) { return b->data ? b->data + b->head : NULL; }
static inline char *buf_end(const struct buf *b) { return b->data ? b->data + b->tail : NULL; }
static inline size_t buf_space(const struct buf *b) { return b->cap - b->tail; }

void buf_init(struct buf *b);

/* Makes room for at least n more bytes after tail, moving pending bytes to
 * the front or growing the allocation. Returns PMX_OK or PMX_ERR (ENOMEM). */
int buf_reserve(struct buf *b, size_t n) PMX_WUR;

/* Marks n bytes written into the free space as pending. */
void buf_produce(struct buf *b, size_t n);

/* Drops n pending bytes from the front; resets the cursors when empty. */
void buf_consume(struct buf *b, size_t n);

/* Appends n bytes. Returns PMX_OK or PMX_ERR (ENOMEM). */
int buf_append(struct buf *b, const void *src, size_t n) PMX_WUR;

/* Frees the memory if no byte is pending. */
void buf_release(struct buf *b);

/* Frees the memory, pending bytes included. */
void buf_free(struct buf *b);

#endif
