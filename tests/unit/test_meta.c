/*
 * test_meta.c - metadata blocks (common/meta.c) against proto/vectors/meta and PROTOCOL.md §8.1,
 * §8.3. Runs with cwd tests/unit, so the vectors are in ../../proto/vectors/meta.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "mem.h"
#include "meta.h"
#include "support.h"
#include "wire.h"

#define VECTOR_DIR "../../proto/vectors/meta"
#define DEFAULT_MAX_SIZE 65536
#define BIG_CAP (1u << 20)

static struct meta md; /* 3 KiB: kept off the stack */

/* ---- helpers ----------------------------------------------------------------------------------- */

struct field {
    const char *name;
    const char *value;
};

/* Builds a block of |type| with |n| NUL-terminated fields into |b| (which it initialises). */
static void build(struct buf *b, uint8_t type, const struct field *f, size_t n)
{
    int start;

    buf_init(b, BIG_CAP);
    start = meta_begin(b, type);
    assert_int_equal(start, 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(meta_add_str(b, f[i].name, f[i].value), 0);
    assert_int_equal(meta_end(b, (size_t)start), 0);
}

/* Builds and decodes with the default limits; returns meta_decode's result. The block is freed:
 * |md| must not be read afterwards. */
static int build_decode(uint8_t type, const struct field *f, size_t n, const char **why)
{
    struct buf b;
    int rv;

    build(&b, type, f, n);
    rv = meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, why);
    buf_cleanup(&b);
    return rv;
}

static const struct field request[] = {
    {":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/"},
};

/* Appends one field with explicit lengths by hand (the builder refuses what is too long). */
static void raw_field(uint8_t *p, size_t *off, const char *name, size_t nl, const char *value,
                      size_t vl)
{
    put_u16(p + *off, (uint16_t)nl);
    put_u16(p + *off + 2, (uint16_t)vl);
    memcpy(p + *off + 4, name, nl);
    memcpy(p + *off + 4 + nl, value, vl);
    *off += 4 + nl + vl;
}

/* ---- vectors ----------------------------------------------------------------------------------- */

static int header_value(const char *text, const char *key, char *dst, size_t cap)
{
    size_t klen = strlen(key);
    const char *line = text;

    while (line != NULL && *line != '\0') {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);

        if (len > klen + 4 && strncmp(line, "# ", 2) == 0 && strncmp(line + 2, key, klen) == 0 &&
            strncmp(line + 2 + klen, ": ", 2) == 0) {
            size_t vlen = len - klen - 4;

            if (vlen >= cap)
                vlen = cap - 1;
            memcpy(dst, line + klen + 4, vlen);
            dst[vlen] = '\0';
            return 1;
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    return 0;
}

/* Re-encodes the decoded |m| with the builder and checks it gives back |p|, |n|. */
static void check_rebuild(const char *name, const struct meta *m, const uint8_t *p, size_t n)
{
    struct buf b;
    int start;

    buf_init(&b, BIG_CAP);
    start = meta_begin(&b, m->type);
    assert_int_equal(start, 0);
    for (unsigned i = 0; i < m->count; i++) {
        assert_int_equal(meta_add(&b, m->fields[i].name, m->fields[i].name_len, m->fields[i].value,
                                  m->fields[i].value_len),
                         0);
    }
    assert_int_equal(meta_end(&b, 0), 0);
    if (buf_len(&b) != n || memcmp(b.pos, p, n) != 0)
        fail_msg("%s: the builder does not reproduce the block", name);
    buf_cleanup(&b);
}

static void test_meta_vectors_decode_as_expected(void **state)
{
    DIR *d = opendir(VECTOR_DIR);
    struct dirent *e;
    int count = 0, ok = 0, proto = 0, limit = 0;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[1024], layer[16], expect[64], tmp[32];
        size_t len = strlen(e->d_name), n, max_size = DEFAULT_MAX_SIZE, max_fields = META_MAX_FIELDS;
        char *text;
        uint8_t *data;
        const char *why = NULL;
        int rv, want;

        if (len < 5 || strcmp(e->d_name + len - 4, ".hex") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", VECTOR_DIR, e->d_name);
        text = support_read_file(path, NULL);
        assert_non_null(text);
        assert_true(header_value(text, "layer", layer, sizeof(layer)));
        assert_true(header_value(text, "expect", expect, sizeof(expect)));
        assert_string_equal(layer, "meta");
        if (header_value(text, "max-size", tmp, sizeof(tmp)))
            max_size = strtoul(tmp, NULL, 10);
        if (header_value(text, "max-fields", tmp, sizeof(tmp)))
            max_fields = strtoul(tmp, NULL, 10);
        data = support_hex_decode(text, &n);
        assert_non_null(data);
        if (strcmp(expect, "ok") == 0) {
            want = 0;
            ok++;
        } else if (strcmp(expect, "error PROTOCOL_ERROR stream") == 0) {
            want = CV_EPROTO;
            proto++;
        } else if (strcmp(expect, "error METADATA_TOO_LARGE stream") == 0) {
            want = CV_ELIMIT;
            limit++;
        } else {
            fail_msg("%s: unknown expect line '%s'", e->d_name, expect);
            return;
        }
        rv = meta_decode(&md, data, n, max_size, max_fields, &why);
        if (rv != want)
            fail_msg("%s: expected %s, meta_decode returned %d (%s)", e->d_name, expect, rv,
                     why != NULL ? why : "no reason");
        if (rv < 0 && (why == NULL || why[0] == '\0'))
            fail_msg("%s: error without a reason", e->d_name);
        if (rv == 0)
            check_rebuild(e->d_name, &md, data, n);
        free(data);
        free(text);
        count++;
    }
    closedir(d);
    assert_true(count > 40);
    assert_true(ok >= 15);
    assert_true(proto >= 20);
    assert_true(limit >= 3);
}

/* ---- builder ----------------------------------------------------------------------------------- */

static void test_builder_round_trips_a_request(void **state)
{
    static const struct field f[] = {
        {":method", "POST"}, {":scheme", "https"}, {":authority", "api.example.com"},
        {":path", "/v1/items"}, {":client", "192.0.2.1:51234"}, {"Content-Type", "application/json"},
        {"x-empty", ""}, {"content-type", "second"},
    };
    struct buf b;
    const struct meta_field *mf;

    (void)state;
    build(&b, META_REQUEST_HTTP, f, 8);
    assert_int_equal(b.pos[0], META_REQUEST_HTTP);
    assert_int_equal(get_u16(b.pos + 1), 8);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL),
                     0);
    assert_int_equal(md.type, META_REQUEST_HTTP);
    assert_int_equal(md.count, 8);
    for (unsigned i = 0; i < 8; i++) {
        assert_int_equal(md.fields[i].name_len, strlen(f[i].name));
        assert_memory_equal(md.fields[i].name, f[i].name, strlen(f[i].name));
        assert_int_equal(md.fields[i].value_len, strlen(f[i].value));
        assert_memory_equal(md.fields[i].value, f[i].value, strlen(f[i].value));
        /* Fields borrow the block. */
        assert_true((const uint8_t *)md.fields[i].name > b.pos &&
                    (const uint8_t *)md.fields[i].name < b.last);
    }
    assert_int_equal(meta_first_regular(&md), 5);
    mf = meta_get(&md, "CONTENT-TYPE");
    assert_ptr_equal(mf, &md.fields[5]); /* the first of two */
    mf = meta_get(&md, ":Path");
    assert_ptr_equal(mf, &md.fields[3]);
    assert_null(meta_get(&md, "content"));
    assert_null(meta_get(&md, "content-type-x"));
    assert_null(meta_get(&md, "x-absent"));
    assert_ptr_equal(meta_get(&md, "x-empty"), &md.fields[6]);
    buf_cleanup(&b);
}

static void test_builder_block_after_other_bytes(void **state)
{
    struct buf b;
    int start;

    (void)state;
    buf_init(&b, BIG_CAP);
    assert_int_equal(buf_append(&b, "123456789", 9), 0); /* e.g. a frame header */
    start = meta_begin(&b, META_RESPONSE);
    assert_int_equal(start, 9);
    assert_int_equal(meta_add_str(&b, ":status", "204"), 0);
    assert_int_equal(meta_add_str(&b, "x-a", "b"), 0);
    assert_int_equal(meta_end(&b, (size_t)start), 0);
    assert_memory_equal(b.pos, "123456789", 9);
    assert_int_equal(get_u16(b.pos + 10), 2);
    assert_int_equal(meta_decode(&md, b.pos + 9, buf_len(&b) - 9, DEFAULT_MAX_SIZE,
                                 META_MAX_FIELDS, NULL),
                     0);
    assert_int_equal(md.count, 2);
    buf_cleanup(&b);
}

static void test_builder_refuses_bad_lengths_and_leaves_buffer_unchanged(void **state)
{
    static char name[META_MAX_NAME + 1];
    static char value[META_MAX_VALUE + 1];
    struct buf b;
    size_t len;

    (void)state;
    memset(name, 'n', sizeof(name));
    memset(value, 'v', sizeof(value));
    buf_init(&b, BIG_CAP);
    assert_int_equal(meta_begin(&b, META_TRAILERS), 0);
    len = buf_len(&b);
    assert_int_equal(meta_add(&b, name, 0, "v", 1), CV_EINVAL);
    assert_int_equal(meta_add(&b, name, META_MAX_NAME + 1, "v", 1), CV_EINVAL);
    assert_int_equal(meta_add(&b, "x", 1, value, META_MAX_VALUE + 1), CV_EINVAL);
    assert_int_equal(buf_len(&b), len);
    assert_int_equal(meta_add(&b, name, META_MAX_NAME, value, META_MAX_VALUE), 0);
    assert_int_equal(buf_len(&b), len + 4 + META_MAX_NAME + META_MAX_VALUE);
    assert_int_equal(meta_end(&b, 0), 0);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL),
                     0);
    assert_int_equal(md.fields[0].name_len, META_MAX_NAME);
    assert_int_equal(md.fields[0].value_len, META_MAX_VALUE);
    buf_cleanup(&b);
}

static void test_builder_end_limits_the_field_count(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, BIG_CAP);
    assert_int_equal(meta_begin(&b, META_TRAILERS), 0);
    for (int i = 0; i < META_MAX_FIELDS; i++)
        assert_int_equal(meta_add_str(&b, "x", "y"), 0);
    assert_int_equal(meta_end(&b, 0), 0);
    assert_int_equal(get_u16(b.pos + 1), META_MAX_FIELDS);
    assert_int_equal(meta_add_str(&b, "x", "y"), 0);
    assert_int_equal(meta_end(&b, 0), CV_ELIMIT);
    buf_cleanup(&b);
}

static void test_builder_end_rejects_a_start_that_is_no_block(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, BIG_CAP);
    assert_int_equal(meta_end(&b, 0), CV_EINVAL); /* empty */
    assert_int_equal(meta_begin(&b, META_TRAILERS), 0);
    assert_int_equal(meta_end(&b, 1), CV_EINVAL); /* fewer than 3 octets from |start| */
    assert_int_equal(meta_end(&b, 100), CV_EINVAL);
    assert_int_equal(buf_append(&b, "\x00\x05\x00", 3), 0); /* a field header cut short */
    assert_int_equal(meta_end(&b, 0), CV_EINVAL);
    assert_int_equal(buf_append(&b, "\x00", 1), 0); /* whole header, name missing */
    assert_int_equal(meta_end(&b, 0), CV_EINVAL);
    buf_cleanup(&b);
}

static void test_builder_reports_full_buffer_unchanged(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    assert_int_equal(meta_begin(&b, META_RESPONSE), 0);
    assert_int_equal(meta_add_str(&b, ":status", "200"), CV_EFULL); /* needs 14 octets */
    assert_int_equal(buf_len(&b), 3);
    assert_int_equal(meta_add_str(&b, "abc", ""), 0); /* 7 octets: exactly full */
    assert_int_equal(buf_len(&b), 10);
    assert_int_equal(meta_begin(&b, META_RESPONSE), CV_EFULL);
    assert_int_equal(buf_len(&b), 10);
    assert_int_equal(meta_end(&b, 0), 0);
    buf_cleanup(&b);
}

/* Builds a full response, failing allocation number |n| (0: none). Returns the first error. */
static int build_with_failure(unsigned long n, struct buf *b)
{
    int rv;
    char value[3000];

    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    buf_init(b, BIG_CAP);
    mem_fail_after(n);
    rv = meta_begin(b, META_RESPONSE);
    if (rv < 0)
        goto out;
    /* Enough octets that the 4 KiB first allocation has to grow twice. */
    for (int i = 0; i < 4; i++) {
        rv = meta_add_str(b, i == 0 ? ":status" : "x-big", i == 0 ? "200" : value);
        if (rv < 0)
            goto out;
    }
    rv = meta_end(b, 0);
out:
    mem_fail_after(0);
    return rv;
}

static void test_builder_fails_cleanly_on_every_allocation_failure(void **state)
{
    long live = mem_live_count();
    struct buf b;
    unsigned long n;
    int failures = 0;

    (void)state;
    for (n = 1; n < 20; n++) {
        size_t before;
        int rv = build_with_failure(n, &b);

        if (rv == 0) {
            /* No allocation left to fail: the block is whole and valid. */
            assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE,
                                         META_MAX_FIELDS, NULL),
                             0);
            assert_int_equal(md.count, 4);
            buf_cleanup(&b);
            break;
        }
        assert_int_equal(rv, CV_ENOMEM);
        failures++;
        /* What was appended before the failure is intact: the buffer is usable. */
        before = buf_len(&b);
        assert_true(before == 0 || b.pos[0] == META_RESPONSE);
        buf_cleanup(&b);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n < 20);
    assert_int_equal(failures, 3); /* first allocation and two growths */
    assert_int_equal(mem_live_count(), live);
}

/* ---- decoder rules ----------------------------------------------------------------------------- */

static void test_decode_block_types_and_required_pseudo_fields(void **state)
{
    uint8_t p[3];
    const char *why;

    (void)state;
    for (unsigned t = 0; t < 256; t++) {
        int rv;

        p[0] = (uint8_t)t;
        p[1] = 0;
        p[2] = 0;
        why = NULL;
        rv = meta_decode(&md, p, 3, DEFAULT_MAX_SIZE, META_MAX_FIELDS, &why);
        if (t == META_TRAILERS) {
            assert_int_equal(rv, 0);
            assert_int_equal(md.count, 0);
            assert_int_equal(meta_first_regular(&md), 0);
        } else if (t == META_REQUEST_HTTP || t == META_REQUEST_UPGRADE || t == META_REQUEST_TCP ||
                   t == META_RESPONSE) {
            assert_int_equal(rv, CV_EPROTO);
            assert_string_equal(why, "required pseudo-field missing");
        } else {
            assert_int_equal(rv, CV_EPROTO);
            assert_string_equal(why, "unknown metadata block type");
        }
    }
}

static void test_decode_checks_structure(void **state)
{
    uint8_t p[64] = {0};
    size_t off;

    (void)state;
    assert_int_equal(meta_decode(&md, p, 0, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    p[0] = META_TRAILERS;
    p[1] = 0;
    assert_int_equal(meta_decode(&md, p, 2, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    /* One field "a: b", then each cut short. */
    put_u16(p + 1, 1);
    off = 3;
    raw_field(p, &off, "a", 1, "b", 1);
    assert_int_equal(off, 9);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), 0);
    for (size_t n = 3; n < off; n++)
        assert_int_equal(meta_decode(&md, p, n, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    /* Count says two. */
    put_u16(p + 1, 2);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    /* Count says zero: the field is trailing. */
    put_u16(p + 1, 0);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    /* Lengths that would wrap a 16-bit sum still stay inside the block check. */
    put_u16(p + 1, 1);
    put_u16(p + 3, 0xffff);
    put_u16(p + 5, 0xffff);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
}

static void test_decode_name_bytes_are_tchar(void **state)
{
    static const char tchar_punct[] = "!#$%&'*+-.^_`|~";

    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        uint8_t p[16];
        size_t off = 3;
        char name[2] = {'x', (char)c};
        int is_tchar = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                       (c != 0 && strchr(tchar_punct, (int)c) != NULL);
        const char *why = NULL;
        int rv;

        p[0] = META_TRAILERS;
        put_u16(p + 1, 1);
        raw_field(p, &off, name, 2, "v", 1);
        rv = meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, &why);
        if (is_tchar) {
            assert_int_equal(rv, 0);
        } else {
            assert_int_equal(rv, CV_EPROTO);
            assert_string_equal(why, "field name has a byte outside tchar");
        }
    }
}

static void test_decode_value_bytes_exclude_only_cr_lf_nul(void **state)
{
    /* Every byte at every position of a 19-byte value: the check reads eight bytes at a time and
     * then the tail, and must find the byte in either. */
    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        for (size_t at = 0; at < 19; at++) {
            uint8_t p[40];
            size_t off = 3;
            char value[19];
            int rv;

            memset(value, 0x0e, sizeof(value)); /* the smallest byte the word test lets through */
            value[at] = (char)c;
            p[0] = META_TRAILERS;
            put_u16(p + 1, 1);
            raw_field(p, &off, "x", 1, value, sizeof(value));
            rv = meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL);
            assert_int_equal(rv, (c == '\r' || c == '\n' || c == 0) ? CV_EPROTO : 0);
        }
    }
}

static void test_decode_name_and_value_length_limits(void **state)
{
    static uint8_t p[3 + 4 + 300 + 16400];
    static char big[16400];
    size_t off;

    (void)state;
    memset(big, 'n', sizeof(big));
    p[0] = META_TRAILERS;
    put_u16(p + 1, 1);
    off = 3;
    raw_field(p, &off, big, META_MAX_NAME, "v", 1);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), 0);
    off = 3;
    raw_field(p, &off, big, META_MAX_NAME + 1, "v", 1);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    off = 3;
    raw_field(p, &off, "", 0, "v", 1);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    off = 3;
    raw_field(p, &off, "x", 1, big, META_MAX_VALUE);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), 0);
    off = 3;
    raw_field(p, &off, "x", 1, big, META_MAX_VALUE + 1);
    assert_int_equal(meta_decode(&md, p, off, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
}

static void test_decode_size_limit_at_and_one_past(void **state)
{
    struct buf b;
    size_t n;
    const char *why = NULL;

    (void)state;
    build(&b, META_TRAILERS, (const struct field[]){{"x", "0123456789"}}, 1);
    n = buf_len(&b);
    assert_int_equal(n, 3 + 4 + 1 + 10);
    assert_int_equal(meta_decode(&md, b.pos, n, n, META_MAX_FIELDS, &why), 0);
    assert_int_equal(meta_decode(&md, b.pos, n, n - 1, META_MAX_FIELDS, &why), CV_ELIMIT);
    assert_string_equal(why, "metadata block larger than max_metadata_size");
    /* The size limit is judged before the content: a bad block over the limit is "too large". */
    b.pos[0] = 0x7f;
    assert_int_equal(meta_decode(&md, b.pos, n, n - 1, META_MAX_FIELDS, NULL), CV_ELIMIT);
    assert_int_equal(meta_decode(&md, b.pos, n, n, META_MAX_FIELDS, NULL), CV_EPROTO);
    buf_cleanup(&b);
}

static void test_decode_field_limit_at_and_one_past(void **state)
{
    struct buf b;
    const char *why = NULL;

    (void)state;
    buf_init(&b, BIG_CAP);
    assert_int_equal(meta_begin(&b, META_TRAILERS), 0);
    for (int i = 0; i < META_MAX_FIELDS; i++)
        assert_int_equal(meta_add_str(&b, "x", "y"), 0);
    assert_int_equal(meta_end(&b, 0), 0);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL),
                     0);
    assert_int_equal(md.count, META_MAX_FIELDS);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS - 1,
                                 &why),
                     CV_ELIMIT);
    assert_string_equal(why, "metadata block has too many fields");
    /* 129 fields (patched by hand: the builder refuses) are too many even with a bigger limit. */
    assert_int_equal(meta_add_str(&b, "x", "y"), 0);
    put_u16(b.pos + 1, META_MAX_FIELDS + 1);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL),
                     CV_ELIMIT);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, 100000, NULL),
                     CV_ELIMIT);
    buf_cleanup(&b);
    /* A lowered limit: exactly at it, and one past. */
    build(&b, META_TRAILERS, (const struct field[]){{"a", "1"}, {"b", "2"}, {"c", "3"}}, 3);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, 3, NULL), 0);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, 2, NULL), CV_ELIMIT);
    buf_cleanup(&b);
}

static void test_decode_status_is_three_digits_100_to_599(void **state)
{
    static const char *const bad[] = {"", "2", "20", "2000", "20x", "x00", " 200", "200 ", "+20",
                                      "-20", "2.0"};

    (void)state;
    for (int s = 0; s < 1000; s++) {
        char v[4];
        struct field f[1] = {{":status", v}};

        v[0] = (char)('0' + s / 100);
        v[1] = (char)('0' + s / 10 % 10);
        v[2] = (char)('0' + s % 10);
        v[3] = '\0';
        assert_int_equal(build_decode(META_RESPONSE, f, 1, NULL), s >= 100 && s <= 599 ? 0 : CV_EPROTO);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct field f[1] = {{":status", bad[i]}};
        const char *why = NULL;

        assert_int_equal(build_decode(META_RESPONSE, f, 1, &why), CV_EPROTO);
        assert_string_equal(why, ":status is not three digits 100..599");
    }
}

static void test_decode_request_pseudo_fields_in_order(void **state)
{
    static const int perm[24][4] = {
        {0, 1, 2, 3}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {0, 3, 2, 1},
        {1, 0, 2, 3}, {1, 0, 3, 2}, {1, 2, 0, 3}, {1, 2, 3, 0}, {1, 3, 0, 2}, {1, 3, 2, 0},
        {2, 0, 1, 3}, {2, 0, 3, 1}, {2, 1, 0, 3}, {2, 1, 3, 0}, {2, 3, 0, 1}, {2, 3, 1, 0},
        {3, 0, 1, 2}, {3, 0, 2, 1}, {3, 1, 0, 2}, {3, 1, 2, 0}, {3, 2, 0, 1}, {3, 2, 1, 0},
    };

    (void)state;
    for (int t = META_REQUEST_HTTP; t <= META_REQUEST_UPGRADE; t++) {
        for (int i = 0; i < 24; i++) {
            struct field f[4];

            for (int j = 0; j < 4; j++)
                f[j] = request[perm[i][j]];
            assert_int_equal(build_decode((uint8_t)t, f, 4, NULL), i == 0 ? 0 : CV_EPROTO);
        }
        /* :client optional, after the four; any earlier position is refused. */
        for (int pos = 0; pos <= 4; pos++) {
            struct field f[5];
            int k = 0;

            for (int j = 0; j < 5; j++)
                f[j] = j == pos ? (struct field){":client", "192.0.2.1:1"} : request[k++];
            assert_int_equal(build_decode((uint8_t)t, f, 5, NULL), pos == 4 ? 0 : CV_EPROTO);
        }
        /* Each of the four missing. */
        for (int miss = 0; miss < 4; miss++) {
            struct field f[3];
            int k = 0;
            const char *why = NULL;

            for (int j = 0; j < 4; j++) {
                if (j != miss)
                    f[k++] = request[j];
            }
            assert_int_equal(build_decode((uint8_t)t, f, 3, &why), CV_EPROTO);
            assert_string_equal(why, "required pseudo-field missing");
        }
    }
}

/* A block of |type| with its required pseudo-fields, then |extra|, then a regular field. */
static int decode_with_extra(uint8_t type, struct field extra, const char **why)
{
    struct field f[6];
    size_t n = 0;

    if (type == META_REQUEST_HTTP || type == META_REQUEST_UPGRADE) {
        for (int i = 0; i < 4; i++)
            f[n++] = request[i];
    } else if (type == META_REQUEST_TCP) {
        f[n++] = (struct field){":authority", "ssh.example.com"};
    } else if (type == META_RESPONSE) {
        f[n++] = (struct field){":status", "200"};
    }
    f[n++] = extra;
    f[n++] = (struct field){"x-regular", "1"};
    return build_decode(type, f, n, why);
}

static void test_decode_pseudo_fields_allowed_per_block_type(void **state)
{
    static const uint8_t types[] = {META_REQUEST_HTTP, META_REQUEST_UPGRADE, META_REQUEST_TCP,
                                    META_RESPONSE, META_TRAILERS};
    static const struct field extras[] = {
        {":method", "GET"}, {":scheme", "https"}, {":authority", "example.com"}, {":path", "/"},
        {":client", "192.0.2.1:1"}, {":status", "200"}, {":protocol", "websocket"}, {":", "x"},
    };
    /* Which extra is fine after the required ones: only a not-yet-present allowed one. */
    static const int ok[5][8] = {
        {0, 0, 0, 0, 1, 0, 0, 0}, /* HTTP: the four are present; :client may follow */
        {0, 0, 0, 0, 1, 0, 0, 0}, /* UPGRADE */
        {0, 0, 0, 0, 1, 0, 0, 0}, /* TCP: :authority present; :client may follow */
        {0, 0, 0, 0, 0, 0, 0, 0}, /* RESPONSE: :status present */
        {0, 0, 0, 0, 0, 0, 0, 0}, /* TRAILERS: none */
    };

    (void)state;
    for (int t = 0; t < 5; t++) {
        for (int e = 0; e < 8; e++) {
            int rv = decode_with_extra(types[t], extras[e], NULL);

            if (rv != (ok[t][e] ? 0 : CV_EPROTO))
                fail_msg("block type 0x%02x with %s: %d", types[t], extras[e].name, rv);
        }
    }
}

static void test_decode_pseudo_fields_first_and_once(void **state)
{
    const char *why = NULL;

    (void)state;
    assert_int_equal(build_decode(META_RESPONSE,
                                  (const struct field[]){{"x", "1"}, {":status", "200"}}, 2, &why),
                     CV_EPROTO);
    assert_string_equal(why, "pseudo-field after a regular field");
    assert_int_equal(build_decode(META_REQUEST_TCP,
                                  (const struct field[]){{":authority", "a"}, {":authority", "b"}},
                                  2, &why),
                     CV_EPROTO);
    assert_string_equal(why, "pseudo-field repeated");
    /* Case-insensitive names: ":AUTHORITY" repeats ":authority". */
    assert_int_equal(build_decode(META_REQUEST_TCP,
                                  (const struct field[]){{":authority", "a"}, {":AUTHORITY", "b"}},
                                  2, NULL),
                     CV_EPROTO);
    /* REQUEST_TCP: either order of :authority and :client. */
    assert_int_equal(build_decode(META_REQUEST_TCP,
                                  (const struct field[]){{":client", "192.0.2.1:1"},
                                                         {":authority", "a"}},
                                  2, NULL),
                     0);
    assert_int_equal(build_decode(META_TRAILERS,
                                  (const struct field[]){{":status", "200"}}, 1, &why),
                     CV_EPROTO);
    assert_string_equal(why, "pseudo-field not allowed in this block type");
}

static void test_decode_request_pseudo_field_values(void **state)
{
    static const struct {
        int index;
        const char *value;
        int ok;
    } cases[] = {
        {0, "GET", 1}, {0, "M-SEARCH", 1}, {0, "", 0}, {0, "GE T", 0}, {0, "GET/", 0},
        {1, "http", 1}, {1, "https", 1}, {1, "HTTPS", 0}, {1, "ftp", 0}, {1, "", 0}, {1, "httpss", 0},
        {2, "a", 1}, {2, "", 0},
        {3, "/", 1}, {3, "/a?b#c", 1}, {3, "", 0}, {3, "*", 0}, {3, "http://x/", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct field f[4];

        memcpy(f, request, sizeof(f));
        f[cases[i].index].value = cases[i].value;
        if (build_decode(META_REQUEST_HTTP, f, 4, NULL) != (cases[i].ok ? 0 : CV_EPROTO))
            fail_msg("%s = '%s' should be %s", f[cases[i].index].name, cases[i].value,
                     cases[i].ok ? "accepted" : "refused");
    }
    assert_int_equal(build_decode(META_REQUEST_TCP, (const struct field[]){{":authority", ""}}, 1,
                                  NULL),
                     CV_EPROTO);
}

static void test_decode_accepts_null_why_and_gives_reasons(void **state)
{
    uint8_t p[4] = {META_TRAILERS, 0, 0, 0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(meta_decode(&md, p, 4, DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL), CV_EPROTO);
    assert_int_equal(meta_decode(&md, p, 4, DEFAULT_MAX_SIZE, META_MAX_FIELDS, &why), CV_EPROTO);
    assert_string_equal(why, "trailing octets after the last field");
}

static void test_first_regular_and_get_on_pseudo_only_block(void **state)
{
    struct buf b;

    (void)state;
    build(&b, META_REQUEST_HTTP, request, 4);
    assert_int_equal(meta_decode(&md, b.pos, buf_len(&b), DEFAULT_MAX_SIZE, META_MAX_FIELDS, NULL),
                     0);
    assert_int_equal(meta_first_regular(&md), 4);
    assert_ptr_equal(meta_get(&md, ":METHOD"), &md.fields[0]);
    assert_null(meta_get(&md, ":client"));
    assert_null(meta_get(&md, ""));
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_vectors_decode_as_expected),
        cmocka_unit_test(test_builder_round_trips_a_request),
        cmocka_unit_test(test_builder_block_after_other_bytes),
        cmocka_unit_test(test_builder_refuses_bad_lengths_and_leaves_buffer_unchanged),
        cmocka_unit_test(test_builder_end_limits_the_field_count),
        cmocka_unit_test(test_builder_end_rejects_a_start_that_is_no_block),
        cmocka_unit_test(test_builder_reports_full_buffer_unchanged),
        cmocka_unit_test(test_builder_fails_cleanly_on_every_allocation_failure),
        cmocka_unit_test(test_decode_block_types_and_required_pseudo_fields),
        cmocka_unit_test(test_decode_checks_structure),
        cmocka_unit_test(test_decode_name_bytes_are_tchar),
        cmocka_unit_test(test_decode_value_bytes_exclude_only_cr_lf_nul),
        cmocka_unit_test(test_decode_name_and_value_length_limits),
        cmocka_unit_test(test_decode_size_limit_at_and_one_past),
        cmocka_unit_test(test_decode_field_limit_at_and_one_past),
        cmocka_unit_test(test_decode_status_is_three_digits_100_to_599),
        cmocka_unit_test(test_decode_request_pseudo_fields_in_order),
        cmocka_unit_test(test_decode_pseudo_fields_allowed_per_block_type),
        cmocka_unit_test(test_decode_pseudo_fields_first_and_once),
        cmocka_unit_test(test_decode_request_pseudo_field_values),
        cmocka_unit_test(test_decode_accepts_null_why_and_gives_reasons),
        cmocka_unit_test(test_first_regular_and_get_on_pseudo_only_block),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
