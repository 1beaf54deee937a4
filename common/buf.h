/*
 * buf.h - bounded byte buffer.
 *
 *   base        pos           last           end
 *    |  consumed |    data     |    free      |
 *
 * Data is appended at |last| (buf_reserve + buf_commit, or buf_append) and taken from |pos|
 * (buf_consume). Storage is allocated lazily, grows up to |cap| bytes, is compacted (data moved to
 * base) before growing, and can be released when empty (buf_release), so an idle connection holds no
 * buffer memory. Nothing here copies per byte; callers read into buf_reserve() space directly.
 */
#ifndef CV_BUF_H
#define CV_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    uint8_t *base; /* allocation, or NULL */
    uint8_t *pos;  /* first byte of data */
    uint8_t *last; /* one past the last byte of data */
    uint8_t *end;  /* one past the allocation */
    size_t cap;    /* the allocation never grows past this */
};

/* Makes |b| an empty buffer that may grow to |cap| bytes. Allocates nothing. */
void buf_init(struct buf *b, size_t cap);
/* Frees |b|'s storage; |b| is empty afterwards and may be reused. */
void buf_cleanup(struct buf *b);

static inline size_t buf_len(const struct buf *b)
{
    return (size_t)(b->last - b->pos);
}

/* Room left after |last| without moving or growing. */
static inline size_t buf_tailroom(const struct buf *b)
{
    return (size_t)(b->end - b->last);
}

/* How many more bytes the buffer could hold after compaction and growth up to |cap|. */
static inline size_t buf_space(const struct buf *b)
{
    return b->cap - buf_len(b);
}

/*
 * Makes at least |n| contiguous free bytes available at |last| (compacting and growing as needed;
 * growth doubles up to |cap|). Returns a pointer to them, or NULL: *|err| is CV_EFULL past the cap or
 * CV_ENOMEM; |b| is unchanged on failure. |err| may be NULL.
 */
uint8_t *buf_reserve(struct buf *b, size_t n, int *err);
/* Marks |n| bytes written at |last| (after buf_reserve) as data. Precondition: n <= tailroom. */
void buf_commit(struct buf *b, size_t n);
/* Appends |n| bytes of |p| to |b|. Borrows |p|. Returns 0, or CV_EFULL / CV_ENOMEM; |b| unchanged. */
int buf_append(struct buf *b, const void *p, size_t n);
/* Drops |n| bytes from the front. When the buffer becomes empty, pos and last rewind to base. */
void buf_consume(struct buf *b, size_t n);
/* Moves the data to the start of the allocation. */
void buf_compact(struct buf *b);
/* Frees the storage if the buffer is empty (for idle connections). */
void buf_release(struct buf *b);
/* Bytes of storage held by all buffers of the process (their capacity). */
size_t buf_held_bytes(void);

#endif
