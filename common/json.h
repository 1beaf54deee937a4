/*
 * json.h - a small strict JSON (RFC 8259) parser into a tree, and a writer into a struct buf.
 *
 * Parser: one value, optionally surrounded by whitespace; UTF-8 only (invalid, overlong and surrogate
 * encodings rejected); no comments, trailing commas, single quotes, NaN, leading zeros or control
 * characters in strings; \u escapes decoded, surrogate pairs combined, lone surrogates rejected.
 * Objects keep their keys in order and reject duplicate keys. Nesting and input size are limited.
 * Numbers are kept as double and as their text, so json_as_int64() is exact up to 2^63-1.
 * Errors carry a byte offset and a static reason; they never quote the input (tokens and
 * credentials files go through here).
 *
 * Writer: json_write_string() appends one escaped string to a struct buf (for code that builds JSON
 * by hand); struct json_writer (json_w_*) puts in commas, checks the structure, optionally
 * pretty-prints, and keeps the first error so a caller checks once at json_w_finish(). Used by the
 * admin API, `--output json` and tokens.
 *
 * Single-threaded; allocation through common/mem. Trees are freed with json_free(), which also wipes
 * every string (they may hold secrets).
 */
#ifndef CV_JSON_H
#define CV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_value;

#define JSON_DEFAULT_MAX_BYTES (1024 * 1024)
#define JSON_DEFAULT_MAX_DEPTH 32

struct json_limits {
    size_t max_bytes;   /* longest input accepted */
    unsigned max_depth; /* arrays and objects nested at most this deep */
};

struct json_error {
    size_t offset;      /* byte offset of the problem in the input */
    const char *reason; /* static text */
    char msg[96];       /* "byte 17: expected ':' after an object key" */
};

/*
 * Parses the |n| bytes at |p| (borrowed). |lim| NULL means JSON_DEFAULT_MAX_BYTES and
 * JSON_DEFAULT_MAX_DEPTH. Returns 0 and sets *|out| to a new tree (free with json_free), or
 * CV_EPARSE (syntax, duplicate key, depth), CV_ELIMIT (input too long) or CV_ENOMEM, with |err|
 * filled (|err| may be NULL) and *|out| NULL.
 */
int json_parse(const char *p, size_t n, const struct json_limits *lim, struct json_value **out,
               struct json_error *err);

/* Frees |v| and everything under it, wiping strings first (NULL is fine). */
void json_free(struct json_value *v);

/* ---- reading a tree (all accept NULL and return the "absent" answer) ---------------------- */

enum json_type json_typeof(const struct json_value *v);
bool json_is_null(const struct json_value *v);
/* A string's bytes (borrowed, NUL-terminated; may contain NUL from \u0000, so use *|len|), or NULL
 * when |v| is not a string. |len| may be NULL. */
const char *json_as_string(const struct json_value *v, size_t *len);
/* 0 and *|out|, or CV_EINVAL when |v| is not a boolean. */
int json_as_bool(const struct json_value *v, bool *out);
/* 0 and *|out|, or CV_EINVAL when |v| is not a number. */
int json_as_double(const struct json_value *v, double *out);
/* 0 and *|out| when |v| is a number written as an integer ("-12", not "1.0" or "1e3") that fits in
 * int64_t; else CV_EINVAL. */
int json_as_int64(const struct json_value *v, int64_t *out);

/* Array length (0 for a non-array) and element |i| (NULL past the end). */
size_t json_array_count(const struct json_value *v);
const struct json_value *json_array_at(const struct json_value *v, size_t i);
/* Object member count (0 for a non-object); member |i|'s key (NUL-terminated, *|len| bytes) and
 * value in input order (NULL past the end). */
size_t json_object_count(const struct json_value *v);
const char *json_object_key(const struct json_value *v, size_t i, size_t *len);
const struct json_value *json_object_value(const struct json_value *v, size_t i);
/* The value under |key| (NUL-terminated, exact), or NULL. O(log members). */
const struct json_value *json_object_get(const struct json_value *v, const char *key);

/* ---- writing ------------------------------------------------------------------------------ */

/*
 * Appends the |n| bytes at |s| to |out| as one quoted JSON string: '"', '\\' and control characters
 * escaped, valid UTF-8 kept as is, each byte of invalid UTF-8 written as \ufffd. Returns 0, or
 * CV_EFULL / CV_ENOMEM with |out| unchanged.
 */
int json_write_string(struct buf *out, const char *s, size_t n);

#define JSON_WRITER_MAX_DEPTH 32
#define JSON_W_PRETTY 0x1 /* newlines and two-space indentation */

/*
 * A structured writer: puts in commas (and indentation), checks that keys and values alternate in
 * objects, and keeps the first error so the caller checks once, at json_w_finish().
 */
struct json_writer {
    struct buf *out;
    unsigned flags;
    int err;        /* first error, or 0 */
    unsigned depth; /* open containers */
    bool after_key; /* a key was written; the next item is its value */
    bool has_items[JSON_WRITER_MAX_DEPTH + 1]; /* per level: an item was written (comma needed) */
    bool is_object[JSON_WRITER_MAX_DEPTH + 1];
    bool done;      /* a complete top-level value was written */
};

/* Starts a writer appending to |out| (borrowed; must outlive the writer). */
void json_w_init(struct json_writer *w, struct buf *out, unsigned flags);
/*
 * Returns 0 when exactly one complete value was written, else the first error: CV_EFULL or
 * CV_ENOMEM (from the buf), CV_EINVAL (misuse: value without key in an object, key outside an
 * object, unbalanced end, a second top-level value, NaN/infinity, nothing written), CV_ELIMIT
 * (deeper than JSON_WRITER_MAX_DEPTH). What was appended before the error stays in the buf.
 */
int json_w_finish(struct json_writer *w);

void json_w_object_begin(struct json_writer *w);
void json_w_object_end(struct json_writer *w);
void json_w_array_begin(struct json_writer *w);
void json_w_array_end(struct json_writer *w);
/* An object key (then exactly one value must follow). */
void json_w_key(struct json_writer *w, const char *key);
/* A string value (NUL-terminated, or |n| bytes), escaped as json_write_string. */
void json_w_string(struct json_writer *w, const char *s);
void json_w_stringn(struct json_writer *w, const char *s, size_t n);
void json_w_int(struct json_writer *w, int64_t v);
void json_w_uint(struct json_writer *w, uint64_t v);
/* Shortest text that reads back as the same double; NaN and infinities are an error (CV_EINVAL). */
void json_w_double(struct json_writer *w, double v);
void json_w_bool(struct json_writer *w, bool v);
void json_w_null(struct json_writer *w);

#endif
