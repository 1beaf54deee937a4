/*
 * meta.h - metadata blocks (PROTOCOL.md section 8): the request and response heads that cross the
 * tunnel as a typed list of (name, value) fields.
 *
 * Encoding appends to a struct buf; decoding borrows the block bytes and fills a caller-provided
 * field array. Pure: no I/O; the only allocation is the buf growth done by buf.c.
 */
#ifndef CV_META_H
#define CV_META_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define META_MAX_FIELDS 128
#define META_MAX_NAME 256
#define META_MAX_VALUE 16384
#define META_BLOCK_HDR 3

enum meta_type {
    META_REQUEST_HTTP = 0x01,
    META_REQUEST_UPGRADE = 0x02,
    META_REQUEST_TCP = 0x03,
    META_RESPONSE = 0x10,
    META_TRAILERS = 0x11,
};

struct meta_field {
    const char *name; /* borrowed, not NUL-terminated */
    const char *value;
    uint16_t name_len;
    uint16_t value_len;
};

/* A decoded block. Fields borrow the block bytes. */
struct meta {
    uint8_t type;
    uint16_t count;
    struct meta_field fields[META_MAX_FIELDS];
};

/*
 * Starts a block of |type| in |b| (appends the 3-octet block header). Returns the offset of the block
 * start in |b| (for meta_end), or a negative code (CV_EFULL, CV_ENOMEM). The offset counts from the
 * buffer's data start (b->pos): do not consume from |b| until meta_end.
 */
int meta_begin(struct buf *b, uint8_t type);
/* Appends one field. Returns 0, CV_EINVAL for an empty name or a name/value too long (over
 * META_MAX_NAME / META_MAX_VALUE), or CV_EFULL / CV_ENOMEM; |b| is unchanged on failure. The
 * caller is responsible for the content rules of §8.3 (edge and connector validate their inputs). */
int meta_add(struct buf *b, const char *name, size_t name_len, const char *value, size_t value_len);
/* As meta_add for NUL-terminated strings. */
int meta_add_str(struct buf *b, const char *name, const char *value);
/* Patches the field count of the block that starts at offset |start|, counting the fields appended
 * since meta_begin. Returns 0, CV_ELIMIT (more than META_MAX_FIELDS fields; the count is not patched) or
 * CV_EINVAL (the bytes from |start| on are not a block built by meta_begin/meta_add). */
int meta_end(struct buf *b, size_t start);

/*
 * Decodes and validates the |n|-byte block at |p| into |m| (PROTOCOL.md §8.1, §8.3): block type
 * known, field lengths inside the block with no trailing bytes, names tchar (1..256), values free of
 * CR/LF/NUL (<= 16 KiB), pseudo-fields known for the block type, first, once each, required ones
 * present. Requests (REQUEST_HTTP, REQUEST_UPGRADE) open with :method :scheme :authority :path in
 * that order, then optionally :client; REQUEST_TCP has :authority and optionally :client in any
 * order; RESPONSE has :status (three digits 100..599); TRAILERS none. Pseudo-field values: :method
 * a token, :scheme exactly "https" or "http", :path starting with "/", :authority non-empty.
 * Pseudo-field names compare case-insensitively, like all names.
 * Returns 0, or CV_ELIMIT (over |max_size| bytes or |max_fields| fields: METADATA_TOO_LARGE; both are
 * known from the block header, so they are reported before any other error) or CV_EPROTO, with a
 * static reason in *|why| (which may be NULL). |max_fields| above META_MAX_FIELDS counts as
 * META_MAX_FIELDS. On error the contents of |m| are unspecified.
 */
int meta_decode(struct meta *m, const uint8_t *p, size_t n, size_t max_size, size_t max_fields,
                const char **why);

/* Returns the first field named |name| (case-insensitive), or NULL. */
const struct meta_field *meta_get(const struct meta *m, const char *name);
/* Index of the first regular (non-pseudo) field. */
unsigned meta_first_regular(const struct meta *m);

#endif
