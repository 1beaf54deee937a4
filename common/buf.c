/*
 * buf.c - bounded byte buffer; see buf.h.
 */
#include "buf.h"

#include <string.h>

#include "err.h"
#include "mem.h"

/* Bytes of storage all buffers hold (capacity, not length): the overload budget's measure. */
static size_t held_bytes;

size_t buf_held_bytes(void)
{
    return held_bytes;
}

void buf_init(struct buf *b, size_t cap)
{
    b->base = NULL;
    b->pos = NULL;
    b->last = NULL;
    b->end = NULL;
    b->cap = cap;
}

/* Frees a buffer's storage, recycling blocks of the starting size. */
static void storage_free(struct buf *b)
{
    held_bytes -= (size_t)(b->end - b->base);
    if (b->base != NULL && (size_t)(b->end - b->base) == MEM_BLOCK)
        mem_block_free(b->base);
    else
        mem_free(b->base);
}

void buf_cleanup(struct buf *b)
{
    storage_free(b);
    b->base = NULL;
    b->pos = NULL;
    b->last = NULL;
    b->end = NULL;
}

void buf_compact(struct buf *b)
{
    size_t len = buf_len(b);

    if (b->base == NULL || b->pos == b->base)
        return;
    if (len > 0)
        memmove(b->base, b->pos, len);
    b->pos = b->base;
    b->last = b->base + len;
}

uint8_t *buf_reserve(struct buf *b, size_t n, int *err)
{
    size_t len = buf_len(b);
    size_t size = (size_t)(b->end - b->base);
    size_t want;
    uint8_t *nb;

    if (buf_tailroom(b) >= n)
        return b->last;
    if (n > b->cap - len) {
        if (err != NULL)
            *err = CV_EFULL;
        return NULL;
    }
    if (size - len >= n) {
        buf_compact(b);
        return b->last;
    }
    want = size > 0 ? size : 4096;
    while (want < len + n)
        want *= 2;
    if (want > b->cap)
        want = b->cap;
    if (b->base != NULL && b->pos != b->base)
        buf_compact(b);
    if (b->base == NULL && want == MEM_BLOCK) {
        nb = mem_block_alloc();
    } else if (b->base != NULL && (size_t)(b->end - b->base) == MEM_BLOCK) {
        /* Leaving the block size: a fresh allocation, and the block goes back to the cache. */
        nb = mem_alloc(want);
        if (nb != NULL) {
            if (len > 0)
                memcpy(nb, b->pos, len);
            mem_block_free(b->base);
        }
    } else {
        nb = mem_realloc(b->base, want);
    }
    if (nb == NULL) {
        if (err != NULL)
            *err = CV_ENOMEM;
        return NULL;
    }
    held_bytes += want - size;
    b->pos = nb;
    b->last = nb + len;
    b->base = nb;
    b->end = nb + want;
    return b->last;
}

void buf_commit(struct buf *b, size_t n)
{
    if (n > 0)
        b->last += n;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    int err = 0;
    uint8_t *dst;

    if (n == 0)
        return 0;
    dst = buf_reserve(b, n, &err);
    if (dst == NULL)
        return err;
    memcpy(dst, p, n);
    b->last += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n == 0)
        return; /* also keeps pointer arithmetic off a NULL base */
    b->pos += n;
    if (b->pos == b->last) {
        b->pos = b->base;
        b->last = b->base;
    }
}

void buf_release(struct buf *b)
{
    if (b->base != NULL && b->pos == b->last)
        buf_cleanup(b);
}
