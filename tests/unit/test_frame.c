/*
 * test_frame.c - the frame codec (common/frame.c) against proto/vectors and PROTOCOL.md §3-§5,
 * §9-§11. Runs with cwd tests/unit, so the vectors are in ../../proto/vectors.
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

#include "err.h"
#include "frame.h"
#include "support.h"
#include "wire.h"

#define VECTOR_DIR "../../proto/vectors"
#define MAX_VECTORS 512
#define OUT_CAP (FRAME_HDR_LEN + FRAME_MAX_MAX_SIZE)

/* One .hex file with its header keys (proto/vectors/README.md). */
struct vector {
    char name[128];
    char layer[16];
    char expect[64];
    char context[32];
    size_t max_frame;
    uint8_t *data;
    size_t len;
    uint8_t *reencode; /* NULL unless a `reencode` key was given */
    size_t reencode_len;
};

static struct vector vectors[MAX_VECTORS];
static size_t nvectors;
static uint8_t out[OUT_CAP];

/* Copies the value of header key |key| from the text into |dst| (|cap| bytes); 1 if found. */
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

static void load_vector(struct vector *v, const char *path)
{
    char *text = support_read_file(path, NULL);
    char tmp[8192];

    assert_non_null(text);
    memset(v, 0, sizeof(*v));
    assert_true(header_value(text, "name", v->name, sizeof(v->name)));
    assert_true(header_value(text, "layer", v->layer, sizeof(v->layer)));
    assert_true(header_value(text, "expect", v->expect, sizeof(v->expect)));
    header_value(text, "context", v->context, sizeof(v->context));
    v->max_frame = FRAME_MIN_MAX_SIZE;
    if (header_value(text, "max-frame", tmp, sizeof(tmp)))
        v->max_frame = strtoul(tmp, NULL, 10);
    if (header_value(text, "reencode", tmp, sizeof(tmp))) {
        v->reencode = support_hex_decode(tmp, &v->reencode_len);
        assert_non_null(v->reencode);
    }
    v->data = support_hex_decode(text, &v->len);
    assert_non_null(v->data);
    free(text);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every *.hex file of VECTOR_DIR (not its subdirectories), sorted by name. */
static int load_all(void **state)
{
    DIR *d = opendir(VECTOR_DIR);
    struct dirent *e;
    char *names[MAX_VECTORS];
    size_t n = 0;

    (void)state;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len < 5 || strcmp(e->d_name + len - 4, ".hex") != 0)
            continue;
        if (n == MAX_VECTORS)
            break;
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[1024];

        snprintf(path, sizeof(path), "%s/%s", VECTOR_DIR, names[i]);
        load_vector(&vectors[i], path);
        free(names[i]);
    }
    nvectors = n;
    return 0;
}

static int free_all(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvectors; i++) {
        free(vectors[i].data);
        free(vectors[i].reencode);
    }
    nvectors = 0;
    return 0;
}

static const struct vector *find_vector(const char *name)
{
    for (size_t i = 0; i < nvectors; i++) {
        if (strcmp(vectors[i].name, name) == 0)
            return &vectors[i];
    }
    fail_msg("no vector %s", name);
    return NULL;
}

/* The frame_decode code an `expect: error CODE connection` line stands for. */
static int expected_code(const struct vector *v)
{
    if (strcmp(v->expect, "error FRAME_SIZE_ERROR connection") == 0)
        return CV_EFRAMESIZE;
    if (strcmp(v->expect, "error PROTOCOL_ERROR connection") == 0)
        return CV_EPROTO;
    fail_msg("%s: unexpected expect line '%s' for layer frame", v->name, v->expect);
    return 0;
}

static int is_layer(const struct vector *v, const char *layer)
{
    return strcmp(v->layer, layer) == 0;
}

static int expects_success(const struct vector *v)
{
    return strcmp(v->expect, "ok") == 0 || strcmp(v->expect, "ignored") == 0;
}

/* The octets of a vector that are frames: a mux vector in `preface` context starts with it. */
static const uint8_t *frames_of(const struct vector *v, size_t *n)
{
    if (strcmp(v->context, "preface") == 0) {
        assert_true(v->len >= FRAME_PREFACE_LEN);
        assert_memory_equal(v->data, FRAME_PREFACE, FRAME_PREFACE_LEN);
        *n = v->len - FRAME_PREFACE_LEN;
        return v->data + FRAME_PREFACE_LEN;
    }
    *n = v->len;
    return v->data;
}

static void test_vector_directory_covers_every_frame_type(void **state)
{
    int seen[256] = {0};
    size_t frame_vectors = 0, mux_vectors = 0;

    (void)state;
    assert_true(nvectors > 50);
    for (size_t i = 0; i < nvectors; i++) {
        const struct vector *v = &vectors[i];
        size_t off = 0;

        if (is_layer(v, "mux"))
            mux_vectors++;
        if (!is_layer(v, "frame"))
            continue;
        frame_vectors++;
        if (!expects_success(v))
            continue;
        while (off + FRAME_HDR_LEN <= v->len) {
            seen[v->data[off + 3]] = 1;
            off += FRAME_HDR_LEN + get_u24(v->data + off);
        }
    }
    for (unsigned t = 0; t < FRAME_TYPE_COUNT; t++) {
        if (!seen[t])
            fail_msg("no valid frame vector of type %s", frame_type_name(t));
    }
    assert_true(frame_vectors > 40);
    assert_true(mux_vectors > 10);
}

static void test_frame_vectors_decode_as_expected(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvectors; i++) {
        const struct vector *v = &vectors[i];
        size_t off = 0, out_len = 0;
        ssize_t rv = 0;
        struct frame f;
        unsigned last_type = 0;

        if (!is_layer(v, "frame"))
            continue;
        while (off < v->len) {
            const char *why = NULL;

            rv = frame_decode(&f, v->data + off, v->len - off, v->max_frame, &why);
            if (rv <= 0) {
                if (rv < 0 && (why == NULL || why[0] == '\0'))
                    fail_msg("%s: error without a reason", v->name);
                break;
            }
            if ((size_t)rv != FRAME_HDR_LEN + f.hdr.length)
                fail_msg("%s: decode used %zd octets for Length %u", v->name, rv, f.hdr.length);
            if (f.payload != v->data + off + FRAME_HDR_LEN)
                fail_msg("%s: payload does not borrow the input", v->name);
            last_type = f.hdr.type;
            if (expects_success(v)) {
                ssize_t w = frame_encode(out + out_len, sizeof(out) - out_len, &f);

                if (w != rv)
                    fail_msg("%s: re-encoding gave %zd octets, decode used %zd", v->name, w, rv);
                out_len += (size_t)w;
            }
            off += (size_t)rv;
        }
        if (expects_success(v)) {
            const uint8_t *want = v->reencode != NULL ? v->reencode : v->data;
            size_t want_len = v->reencode != NULL ? v->reencode_len : v->len;

            if (rv <= 0 || off != v->len)
                fail_msg("%s: expected ok, decode returned %zd at offset %zu", v->name, rv, off);
            if (out_len != want_len || memcmp(out, want, want_len) != 0)
                fail_msg("%s: re-encoding differs from the vector", v->name);
            if (strcmp(v->expect, "ignored") == 0 && last_type < FRAME_TYPE_COUNT)
                fail_msg("%s: 'ignored' but the last frame has a known type", v->name);
            if (strcmp(v->expect, "ok") == 0 && last_type >= FRAME_TYPE_COUNT)
                fail_msg("%s: 'ok' but the last frame has an unknown type", v->name);
        } else if (rv != expected_code(v)) {
            fail_msg("%s: expected %s, decode returned %zd (%s)", v->name, v->expect, rv,
                     cv_strerror((int)rv));
        }
    }
}

/* Every frame of the mux vectors is valid at the frame layer: only the mux may reject them. */
static void test_mux_vectors_decode_at_the_frame_layer(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvectors; i++) {
        const struct vector *v = &vectors[i];
        const uint8_t *p;
        size_t n, off = 0;
        struct frame f;

        if (!is_layer(v, "mux") || strcmp(v->expect, "close") == 0)
            continue;
        if (v->context[0] == '\0')
            fail_msg("%s: mux vector without a context", v->name);
        p = frames_of(v, &n);
        while (off < n) {
            ssize_t rv = frame_decode(&f, p + off, n - off, v->max_frame, NULL);

            if (rv <= 0)
                fail_msg("%s: frame at offset %zu does not decode (%zd)", v->name, off, rv);
            off += (size_t)rv;
        }
    }
}

/* Feeds |n| octets of one whole valid frame at |p| as growing prefixes. */
static void check_prefixes_of_valid_frame(const char *name, const uint8_t *p, size_t n, size_t max)
{
    struct frame f;

    for (size_t k = 0; k < n; k++) {
        ssize_t rv = frame_decode(&f, p, k, max, NULL);

        if (rv != 0)
            fail_msg("%s: a prefix of %zu of %zu octets returned %zd", name, k, n, rv);
    }
    if (frame_decode(&f, p, n, max, NULL) != (ssize_t)n)
        fail_msg("%s: the whole frame did not decode", name);
}

static void test_valid_frames_decode_only_at_their_last_octet(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvectors; i++) {
        const struct vector *v = &vectors[i];
        const uint8_t *p;
        size_t n, off = 0;

        if (!(is_layer(v, "frame") && expects_success(v)) &&
            !(is_layer(v, "mux") && strcmp(v->expect, "close") != 0))
            continue;
        p = frames_of(v, &n);
        while (off < n) {
            size_t flen = FRAME_HDR_LEN + get_u24(p + off);

            check_prefixes_of_valid_frame(v->name, p + off, flen, v->max_frame);
            off += flen;
        }
    }
}

/* Whether frame_decode can tell that the frame with header |h| is bad from the header alone. */
static int header_decides(const struct frame_hdr *h, size_t max)
{
    if (h->length > max)
        return 1;
    if (h->type == FRAME_REGISTER)
        return h->stream_id != 0 || h->length < FRAME_REGISTER_FIXED_LEN;
    if (h->type == FRAME_REGISTERED)
        return h->stream_id != 0 || h->length < FRAME_REGISTERED_FIXED_LEN;
    return 1;
}

static void test_malformed_frames_fail_as_soon_as_decidable(void **state)
{
    (void)state;
    for (size_t i = 0; i < nvectors; i++) {
        const struct vector *v = &vectors[i];
        size_t off = 0;
        struct frame f;
        struct frame_hdr h;
        int want;
        size_t avail;

        if (!is_layer(v, "frame") || expects_success(v))
            continue;
        want = expected_code(v);
        /* Skip the valid frames before the bad one. */
        while (frame_decode(&f, v->data + off, v->len - off, v->max_frame, NULL) > 0)
            off += FRAME_HDR_LEN + f.hdr.length;
        avail = v->len - off;
        assert_true(avail >= FRAME_HDR_LEN);
        frame_hdr_decode(&h, v->data + off);
        for (size_t k = 0; k <= avail; k++) {
            ssize_t rv = frame_decode(&f, v->data + off, k, v->max_frame, NULL);

            if (k < FRAME_HDR_LEN && rv != 0)
                fail_msg("%s: %zu octets (less than a header) returned %zd", v->name, k, rv);
            if (k >= FRAME_HDR_LEN && header_decides(&h, v->max_frame) && rv != want)
                fail_msg("%s: with the header in (%zu octets) expected %d, got %zd", v->name, k,
                         want, rv);
            if (k >= FRAME_HDR_LEN && rv != 0 && rv != want)
                fail_msg("%s: %zu octets returned %zd", v->name, k, rv);
        }
        if (h.length > v->max_frame) {
            /* The oversized vectors carry no payload: the failure cannot wait for it. */
            assert_int_equal(avail, FRAME_HDR_LEN);
            assert_int_equal(frame_decode(&f, v->data + off, FRAME_HDR_LEN, v->max_frame, NULL),
                             CV_EFRAMESIZE);
        }
    }
}

static void test_decode_needs_nine_octets_before_judging(void **state)
{
    static const uint8_t oversized[FRAME_HDR_LEN] = {0xff, 0xff, 0xff, 0x05, 0, 0, 0, 0, 1};
    struct frame f;

    (void)state;
    for (size_t k = 0; k < FRAME_HDR_LEN; k++)
        assert_int_equal(frame_decode(&f, oversized, k, FRAME_MIN_MAX_SIZE, NULL), 0);
    assert_int_equal(frame_decode(&f, oversized, FRAME_HDR_LEN, FRAME_MIN_MAX_SIZE, NULL),
                     CV_EFRAMESIZE);
}

static void test_decode_length_equal_to_max_is_accepted_one_more_is_not(void **state)
{
    static uint8_t buf[FRAME_HDR_LEN + 20000];
    struct frame f;
    const char *why = NULL;

    (void)state;
    frame_hdr_encode(buf, 20000, FRAME_DATA, 0, 1);
    assert_int_equal(frame_decode(&f, buf, sizeof(buf), 20000, &why), (ssize_t)sizeof(buf));
    assert_int_equal(frame_decode(&f, buf, sizeof(buf), 19999, &why), CV_EFRAMESIZE);
    assert_non_null(why);
    assert_string_equal(why, "frame length exceeds max_frame_size");
    /* The 24-bit maximum against the largest allowed max_frame_size. */
    frame_hdr_encode(buf, FRAME_MAX_LENGTH, FRAME_DATA, 0, 1);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MAX_MAX_SIZE, NULL), CV_EFRAMESIZE);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MAX_LENGTH, NULL), 0);
}

static void test_decode_uses_one_frame_of_several(void **state)
{
    const struct vector *v = find_vector("headers_continuation_split");
    struct frame f;
    ssize_t rv;

    (void)state;
    rv = frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL);
    assert_true(rv > 0 && (size_t)rv < v->len);
    assert_int_equal(f.hdr.type, FRAME_HEADERS);
    assert_int_equal(f.hdr.flags, FRAME_F_END_STREAM);
    rv = frame_decode(&f, v->data + rv, v->len - (size_t)rv, FRAME_MIN_MAX_SIZE, NULL);
    assert_int_equal(f.hdr.type, FRAME_CONTINUATION);
    assert_int_equal(f.hdr.flags, FRAME_F_END_HEADERS);
    assert_int_equal(f.hdr.stream_id, 1);
}

static void test_decode_fills_register_fields(void **state)
{
    const struct vector *v = find_vector("register");
    struct frame f;
    const struct frame_register *r = &f.u.reg;
    static const uint8_t tunnel[16] = {0x6f, 0x1c, 0x2a, 0x8e, 0x4b, 0x3d, 0x4f, 0x6e,
                                       0x9a, 0x7b, 0x1c, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b};
    uint8_t secret[32];

    (void)state;
    for (int i = 0; i < 32; i++)
        secret[i] = (uint8_t)(0xa0 + i);
    assert_int_equal(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL), (ssize_t)v->len);
    assert_int_equal(f.hdr.type, FRAME_REGISTER);
    assert_int_equal(r->min_version, 1);
    assert_int_equal(r->max_version, 1);
    assert_memory_equal(r->tunnel_id, tunnel, 16);
    assert_memory_equal(r->secret, secret, 32);
    assert_int_equal(r->connector_id[0], 0x1f);
    assert_int_equal(r->connector_id[15], 0xf0);
    assert_int_equal(r->conn_index, 2);
    assert_int_equal(r->settings.initial_stream_window, 262144);
    assert_int_equal(r->settings.connection_window, 16777216);
    assert_int_equal(r->settings.max_frame_size, 16384);
    assert_int_equal(r->settings.max_concurrent_streams, 256);
    assert_int_equal(r->settings.max_metadata_size, 65536);
    assert_string_equal(r->version, "culvert-connector/0.1.0");
    assert_string_equal(r->region, "eu-west-1");
}

static void test_decode_fills_registered_fields(void **state)
{
    const struct vector *v = find_vector("registered");
    struct frame f;

    (void)state;
    assert_int_equal(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL), (ssize_t)v->len);
    assert_int_equal(f.u.regd.version, 1);
    assert_true(f.u.regd.connection_id == 0x0102030405060708ull);
    assert_int_equal(f.u.regd.settings.max_frame_size, 16384);
    assert_int_equal(f.u.regd.heartbeat_ms, 5000);
    assert_string_equal(f.u.regd.region, "eu-west");
    assert_string_equal(f.u.regd.name, "edge-1");
}

static void test_decode_fills_goaway_ping_reset_window_fields(void **state)
{
    const struct vector *v;
    struct frame f;

    (void)state;
    v = find_vector("goaway_reason");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.u.goaway.last_stream_id, 7);
    assert_int_equal(f.u.goaway.code, CODE_NO_ERROR);
    assert_int_equal(f.u.goaway.retry_after_ms, 5000);
    assert_int_equal(f.u.goaway.reason_len, 18);
    assert_ptr_equal(f.u.goaway.reason, v->data + FRAME_HDR_LEN + 12);
    assert_memory_equal(f.u.goaway.reason, "edge shutting down", 18);

    v = find_vector("goaway_no_reason");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.u.goaway.reason_len, 0);

    v = find_vector("goaway_reserved_bit_ignored");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.u.goaway.last_stream_id, 3);

    v = find_vector("ping");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_memory_equal(f.u.opaque, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);

    v = find_vector("reset_cancel");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.u.code, CODE_CANCEL);
    assert_int_equal(f.hdr.stream_id, 1);

    v = find_vector("window_update_reserved_bit_ignored");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.u.increment, 1024);

    v = find_vector("data_reserved_bit_ignored");
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.hdr.stream_id, 1);
}

static void test_decode_leaves_semantic_rules_to_the_mux(void **state)
{
    uint8_t buf[64];
    struct frame f;
    struct frame_register r;
    ssize_t n;

    (void)state;
    /* PROTOCOL.md §9.3: increment 0 is the mux's PROTOCOL_ERROR, not a decode error. */
    n = frame_encode_window_update(buf, sizeof(buf), 1, 0);
    assert_int_equal(frame_decode(&f, buf, (size_t)n, FRAME_MIN_MAX_SIZE, NULL), n);
    assert_int_equal(f.u.increment, 0);
    /* PROTOCOL.md §4.4: settings ranges are checked by frame_settings_validate. */
    memset(&r, 0, sizeof(r));
    n = frame_encode_register(out, sizeof(out), &r);
    assert_int_equal(frame_decode(&f, out, (size_t)n, FRAME_MIN_MAX_SIZE, NULL), n);
    assert_int_equal(f.u.reg.settings.max_frame_size, 0);
    /* PROTOCOL.md §7.4: an empty DATA without END_STREAM is the mux's business too. */
    n = frame_encode_raw(buf, sizeof(buf), FRAME_DATA, 0, 1, NULL, 0);
    assert_int_equal(frame_decode(&f, buf, (size_t)n, FRAME_MIN_MAX_SIZE, NULL), n);
}

/* A REGISTER with the given labels, built by hand (not by the encoder under test). */
static size_t hand_register(uint8_t *buf, const char *ver, const char *reg)
{
    size_t vl = strlen(ver), rl = strlen(reg);
    size_t len = FRAME_REGISTER_FIXED_LEN + vl + rl;

    memset(buf, 0, FRAME_HDR_LEN + len);
    frame_hdr_encode(buf, (uint32_t)len, FRAME_REGISTER, 0, 0);
    buf[FRAME_HDR_LEN + 92] = (uint8_t)vl;
    memcpy(buf + FRAME_HDR_LEN + 93, ver, vl);
    buf[FRAME_HDR_LEN + 93 + vl] = (uint8_t)rl;
    memcpy(buf + FRAME_HDR_LEN + 94 + vl, reg, rl);
    return FRAME_HDR_LEN + len;
}

static void test_decode_checks_label_characters(void **state)
{
    uint8_t buf[512];
    struct frame f;
    size_t n;
    const char *why = NULL;

    (void)state;
    n = hand_register(buf, "!~az09", "Az09._-");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, NULL), (ssize_t)n);
    n = hand_register(buf, "v\x7f", "");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, &why), CV_EPROTO);
    assert_string_equal(why, "label has a byte outside printable ASCII");
    n = hand_register(buf, "v\x80", "");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, NULL), CV_EPROTO);
    n = hand_register(buf, "v", "eu+west");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, &why), CV_EPROTO);
    assert_string_equal(why, "region label has a character outside [A-Za-z0-9._-]");
    n = hand_register(buf, "v", "eu\x01");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, NULL), CV_EPROTO);
    /* Region labels of 64 octets pass; 65 do not, even with consistent lengths. */
    n = hand_register(buf, "", "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, NULL), (ssize_t)n);
    assert_int_equal(strlen(f.u.reg.region), 64);
    n = hand_register(buf, "", "rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr");
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, &why), CV_EPROTO);
    assert_string_equal(why, "label longer than 64 octets");
}

static void test_decode_rejects_register_lengths_that_do_not_add_up(void **state)
{
    uint8_t buf[512];
    struct frame f;
    size_t n;

    (void)state;
    /* Ver Len pointing exactly at the last octet leaves no room for Reg Len. */
    n = hand_register(buf, "abc", "");
    buf[FRAME_HDR_LEN + 92] = 4;
    assert_int_equal(frame_decode(&f, buf, n, FRAME_MIN_MAX_SIZE, NULL), CV_EFRAMESIZE);
    /* The largest impossible Length is caught from the header alone. */
    frame_hdr_encode(buf, FRAME_REGISTER_FIXED_LEN + 511, FRAME_REGISTER, 0, 0);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MIN_MAX_SIZE, NULL), CV_EFRAMESIZE);
    frame_hdr_encode(buf, FRAME_REGISTERED_FIXED_LEN + 511, FRAME_REGISTERED, 0, 0);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MIN_MAX_SIZE, NULL), CV_EFRAMESIZE);
}

static void test_decode_accepts_null_why(void **state)
{
    const struct vector *v = find_vector("ping_length_7");
    struct frame f;

    (void)state;
    assert_int_equal(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL), CV_EFRAMESIZE);
}

static void test_window_update_any_stream_unknown_type_any_stream(void **state)
{
    uint8_t buf[32];
    struct frame f;

    (void)state;
    frame_hdr_encode(buf, 0, 0x0c, 0, 0);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MIN_MAX_SIZE, NULL), FRAME_HDR_LEN);
    frame_hdr_encode(buf, 0, 0x0c, 0, 9);
    assert_int_equal(frame_decode(&f, buf, FRAME_HDR_LEN, FRAME_MIN_MAX_SIZE, NULL), FRAME_HDR_LEN);
    assert_int_equal(f.hdr.stream_id, 9);
    assert_string_equal(frame_type_name(f.hdr.type), "UNKNOWN");
}

/* ---- encoders ------------------------------------------------------------------------------ */

/* Checks that an encoder wrote exactly the |n| octets of vector |name| (or its `reencode`). */
static void check_encoded(const char *name, const uint8_t *buf, ssize_t n)
{
    const struct vector *v = find_vector(name);
    const uint8_t *want = v->reencode != NULL ? v->reencode : v->data;
    size_t want_len = v->reencode != NULL ? v->reencode_len : v->len;

    assert_int_equal(n, (ssize_t)want_len);
    assert_memory_equal(buf, want, want_len);
}

/* Every byte of |buf| still holds the canary 0xee. */
static void assert_untouched(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf[i], 0xee);
}

static void test_encode_reset_matches_vector_and_reports_full(void **state)
{
    uint8_t buf[32];

    (void)state;
    check_encoded("reset_cancel", buf, frame_encode_reset(buf, sizeof(buf), 1, CODE_CANCEL));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_reset(buf, 12, 1, CODE_CANCEL), CV_EFULL);
    assert_int_equal(frame_encode_reset(buf, 0, 1, CODE_CANCEL), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
    assert_int_equal(frame_encode_reset(buf, 13, 1, CODE_CANCEL), 13);
}

static void test_encode_window_update_matches_vectors_and_clears_reserved_bits(void **state)
{
    uint8_t buf[32];

    (void)state;
    check_encoded("window_update_stream", buf, frame_encode_window_update(buf, sizeof(buf), 1, 65536));
    check_encoded("window_update_connection", buf,
                  frame_encode_window_update(buf, sizeof(buf), 0, 1048576));
    check_encoded("window_update_reserved_bit_ignored", buf,
                  frame_encode_window_update(buf, sizeof(buf), 0x80000000u, 0x80000400u));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_window_update(buf, 12, 1, 1), CV_EFULL);
    assert_int_equal(frame_encode_window_update(buf, 8, 1, 1), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
}

static void test_encode_ping_and_pong_match_vectors(void **state)
{
    static const uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t buf[32];

    (void)state;
    check_encoded("ping", buf, frame_encode_ping(buf, sizeof(buf), FRAME_PING, opaque));
    check_encoded("pong", buf, frame_encode_ping(buf, sizeof(buf), FRAME_PONG, opaque));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_ping(buf, 16, FRAME_PING, opaque), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
    assert_int_equal(frame_encode_ping(buf, 17, FRAME_PING, opaque), 17);
}

static void test_encode_goaway_matches_vectors(void **state)
{
    static const char reason[] = "edge shutting down";
    struct frame_goaway g = {7, CODE_NO_ERROR, 5000, (const uint8_t *)reason, sizeof(reason) - 1};
    uint8_t buf[300];
    uint8_t r256[FRAME_GOAWAY_MAX_REASON + 1];

    (void)state;
    check_encoded("goaway_reason", buf, frame_encode_goaway(buf, sizeof(buf), &g));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_goaway(buf, FRAME_HDR_LEN + 12 + g.reason_len - 1, &g), CV_EFULL);
    assert_untouched(buf, sizeof(buf));

    g = (struct frame_goaway){0x80000003u, CODE_NO_ERROR, 0, NULL, 0};
    check_encoded("goaway_reserved_bit_ignored", buf, frame_encode_goaway(buf, sizeof(buf), &g));
    g.last_stream_id = 0;
    check_encoded("goaway_no_reason", buf, frame_encode_goaway(buf, sizeof(buf), &g));

    memset(r256, 'r', sizeof(r256));
    g = (struct frame_goaway){0, CODE_PROTOCOL_ERROR, FRAME_RETRY_NEVER, r256, 256};
    check_encoded("goaway_max_reason", buf, frame_encode_goaway(buf, sizeof(buf), &g));
    g.reason_len = 257;
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_goaway(buf, sizeof(buf), &g), CV_EINVAL);
    assert_untouched(buf, sizeof(buf));
}

static void fill_register(struct frame_register *r)
{
    static const uint8_t tunnel[16] = {0x6f, 0x1c, 0x2a, 0x8e, 0x4b, 0x3d, 0x4f, 0x6e,
                                       0x9a, 0x7b, 0x1c, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b};
    static const uint8_t connector[16] = {0x1f, 0x2e, 0x3d, 0x4c, 0x5b, 0x6a, 0x47, 0x98,
                                          0x87, 0x96, 0xa5, 0xb4, 0xc3, 0xd2, 0xe1, 0xf0};

    memset(r, 0, sizeof(*r));
    r->min_version = 1;
    r->max_version = 1;
    memcpy(r->tunnel_id, tunnel, 16);
    for (int i = 0; i < 32; i++)
        r->secret[i] = (uint8_t)(0xa0 + i);
    memcpy(r->connector_id, connector, 16);
    r->conn_index = 2;
    r->settings = (struct frame_settings){262144, 16777216, 16384, 256, 65536};
    strcpy(r->version, "culvert-connector/0.1.0");
    strcpy(r->region, "eu-west-1");
}

static void test_encode_register_matches_vector(void **state)
{
    struct frame_register r;
    uint8_t buf[300];

    (void)state;
    fill_register(&r);
    check_encoded("register", buf, frame_encode_register(buf, sizeof(buf), &r));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_register(buf, FRAME_HDR_LEN + 125, &r), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
    r.version[0] = '\0';
    r.region[0] = '\0';
    check_encoded("register_empty_labels", buf, frame_encode_register(buf, sizeof(buf), &r));
    /* A label filling its array without a NUL is more than 64 octets. */
    memset(r.version, 'v', sizeof(r.version));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_register(buf, sizeof(buf), &r), CV_EINVAL);
    assert_untouched(buf, sizeof(buf));
    r.version[FRAME_LABEL_MAX] = '\0';
    memset(r.region, 'r', FRAME_LABEL_MAX);
    r.region[FRAME_LABEL_MAX] = '\0';
    check_encoded("register_max_labels", buf, frame_encode_register(buf, sizeof(buf), &r));
}

static void test_encode_registered_matches_vector(void **state)
{
    struct frame_registered r;
    uint8_t buf[200];

    (void)state;
    memset(&r, 0, sizeof(r));
    r.version = 1;
    r.connection_id = 0x0102030405060708ull;
    r.settings = (struct frame_settings){262144, 16777216, 16384, 256, 65536};
    r.heartbeat_ms = 5000;
    strcpy(r.region, "eu-west");
    strcpy(r.name, "edge-1");
    check_encoded("registered", buf, frame_encode_registered(buf, sizeof(buf), &r));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_registered(buf, FRAME_HDR_LEN + 50, &r), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
    memset(r.name, 'n', sizeof(r.name));
    assert_int_equal(frame_encode_registered(buf, sizeof(buf), &r), CV_EINVAL);
    assert_untouched(buf, sizeof(buf));
    r.name[0] = '\0';
    r.region[0] = '\0';
    check_encoded("registered_empty_labels", buf, frame_encode_registered(buf, sizeof(buf), &r));
}

static void test_encode_dispatched_matches_vector(void **state)
{
    uint8_t buf[16];

    (void)state;
    check_encoded("dispatched", buf, frame_encode_dispatched(buf, sizeof(buf), 1));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_dispatched(buf, 8, 1), CV_EFULL);
    assert_untouched(buf, sizeof(buf));
    assert_int_equal(frame_encode_dispatched(buf, 9, 1), 9);
}

static void test_encode_raw_matches_vectors_and_clears_reserved_bit(void **state)
{
    uint8_t buf[64];

    (void)state;
    check_encoded("data_end_stream", buf,
                  frame_encode_raw(buf, sizeof(buf), FRAME_DATA, FRAME_F_END_STREAM, 1,
                                   (const uint8_t *)"hello", 5));
    check_encoded("data_empty_end_stream", buf,
                  frame_encode_raw(buf, sizeof(buf), FRAME_DATA, FRAME_F_END_STREAM, 3, NULL, 0));
    check_encoded("data_reserved_bit_ignored", buf,
                  frame_encode_raw(buf, sizeof(buf), FRAME_DATA, FRAME_F_END_STREAM, 0x80000001u,
                                   (const uint8_t *)"hi", 2));
    check_encoded("unknown_type_ignored", buf,
                  frame_encode_raw(buf, sizeof(buf), 0x0b, 0, 0, (const uint8_t *)"future", 6));
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(frame_encode_raw(buf, 13, FRAME_DATA, 0, 1, (const uint8_t *)"hello", 5),
                     CV_EFULL);
    assert_int_equal(frame_encode_raw(buf, 0, FRAME_DATA, 0, 1, NULL, 0), CV_EFULL);
    /* Larger than the 24-bit Length can carry: refused before |payload| is read. */
    assert_int_equal(frame_encode_raw(buf, sizeof(buf), FRAME_DATA, 0, 1, NULL, FRAME_MAX_LENGTH + 1),
                     CV_EINVAL);
    assert_untouched(buf, sizeof(buf));
}

static void test_encode_of_decoded_frame_keeps_flags(void **state)
{
    const struct vector *v = find_vector("data_undefined_flags_ignored");
    struct frame f;
    uint8_t buf[64];
    uint8_t ping[FRAME_HDR_LEN + 8];

    (void)state;
    assert_true(frame_decode(&f, v->data, v->len, FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(f.hdr.flags, 0x20);
    assert_int_equal(frame_encode(buf, sizeof(buf), &f), (ssize_t)v->len);
    assert_int_equal(buf[4], 0x20);
    /* A typed frame re-encodes its decoded flags too, but the typed encoder sends none. */
    assert_int_equal(frame_encode_ping(ping, sizeof(ping), FRAME_PING, (const uint8_t *)"abcdefgh"),
                     sizeof(ping));
    ping[4] = 0x81;
    assert_true(frame_decode(&f, ping, sizeof(ping), FRAME_MIN_MAX_SIZE, NULL) > 0);
    assert_int_equal(frame_encode(buf, sizeof(buf), &f), (ssize_t)sizeof(ping));
    assert_memory_equal(buf, ping, sizeof(ping));
    assert_int_equal(frame_encode(buf, sizeof(ping) - 1, &f), CV_EFULL);
}

static void test_hdr_encode_clears_reserved_bit_and_decode_ignores_it(void **state)
{
    uint8_t buf[FRAME_HDR_LEN];
    struct frame_hdr h;

    (void)state;
    frame_hdr_encode(buf, 0x123456, 0xab, 0xcd, 0xffffffffu);
    assert_memory_equal(buf, "\x12\x34\x56\xab\xcd\x7f\xff\xff\xff", FRAME_HDR_LEN);
    buf[5] = 0xff;
    frame_hdr_decode(&h, buf);
    assert_int_equal(h.length, 0x123456);
    assert_int_equal(h.type, 0xab);
    assert_int_equal(h.flags, 0xcd);
    assert_int_equal(h.stream_id, FRAME_MAX_STREAM_ID);
}

/* ---- settings and names ---------------------------------------------------------------------- */

static void test_settings_validate_checks_every_range_at_both_ends(void **state)
{
    static const struct {
        size_t off;
        uint32_t lo, hi;
    } ranges[] = {
        {offsetof(struct frame_settings, initial_stream_window), 1, 0x7fffffffu},
        {offsetof(struct frame_settings, connection_window), 65535, 0x7fffffffu},
        {offsetof(struct frame_settings, max_frame_size), 16384, 1048576},
        {offsetof(struct frame_settings, max_concurrent_streams), 1, 65535},
        {offsetof(struct frame_settings, max_metadata_size), 4096, 1048576},
    };
    const struct frame_settings defaults = {262144, 16777216, 16384, 256, 65536};

    (void)state;
    assert_int_equal(frame_settings_validate(&defaults, NULL), 0);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        struct frame_settings s = defaults;
        uint32_t *field = (uint32_t *)((char *)&s + ranges[i].off);
        const char *why = NULL;

        *field = ranges[i].lo;
        assert_int_equal(frame_settings_validate(&s, NULL), 0);
        *field = ranges[i].hi;
        assert_int_equal(frame_settings_validate(&s, NULL), 0);
        *field = ranges[i].lo - 1;
        assert_int_equal(frame_settings_validate(&s, &why), CV_EPROTO);
        assert_non_null(why);
        why = NULL;
        *field = ranges[i].hi + 1;
        assert_int_equal(frame_settings_validate(&s, &why), CV_EPROTO);
        assert_non_null(why);
        *field = 0xffffffffu;
        assert_int_equal(frame_settings_validate(&s, NULL), CV_EPROTO);
    }
}

static void test_names_cover_every_type_and_code(void **state)
{
    static const char *const types[] = {"DATA", "HEADERS", "CONTINUATION", "RESET", "WINDOW_UPDATE",
                                        "PING", "PONG", "GOAWAY", "REGISTER", "REGISTERED",
                                        "DISPATCHED"};
    static const struct {
        uint32_t code;
        const char *name;
    } codes[] = {
        {0x00, "NO_ERROR"}, {0x01, "PROTOCOL_ERROR"}, {0x02, "INTERNAL_ERROR"},
        {0x03, "FLOW_CONTROL_ERROR"}, {0x04, "TIMEOUT"}, {0x05, "STREAM_CLOSED"},
        {0x06, "FRAME_SIZE_ERROR"}, {0x07, "REFUSED_STREAM"}, {0x08, "CANCEL"},
        {0x09, "METADATA_TOO_LARGE"}, {0x0b, "ENHANCE_YOUR_CALM"}, {0x20, "AUTH_FAILED"},
        {0x21, "UNSUPPORTED_VERSION"}, {0x22, "LIMIT_EXCEEDED"}, {0x30, "ORIGIN_UNREACHABLE"},
        {0x31, "ORIGIN_TIMEOUT"}, {0x32, "ORIGIN_ERROR"}, {0x33, "NO_SERVICE"},
    };

    (void)state;
    for (unsigned t = 0; t < FRAME_TYPE_COUNT; t++)
        assert_string_equal(frame_type_name(t), types[t]);
    assert_string_equal(frame_type_name(FRAME_TYPE_COUNT), "UNKNOWN");
    assert_string_equal(frame_type_name(0xffffffffu), "UNKNOWN");
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_string_equal(frame_code_name(codes[i].code), codes[i].name);
    assert_string_equal(frame_code_name(0x0a), "UNKNOWN");
    assert_string_equal(frame_code_name(0xffffffffu), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_directory_covers_every_frame_type),
        cmocka_unit_test(test_frame_vectors_decode_as_expected),
        cmocka_unit_test(test_mux_vectors_decode_at_the_frame_layer),
        cmocka_unit_test(test_valid_frames_decode_only_at_their_last_octet),
        cmocka_unit_test(test_malformed_frames_fail_as_soon_as_decidable),
        cmocka_unit_test(test_decode_needs_nine_octets_before_judging),
        cmocka_unit_test(test_decode_length_equal_to_max_is_accepted_one_more_is_not),
        cmocka_unit_test(test_decode_uses_one_frame_of_several),
        cmocka_unit_test(test_decode_fills_register_fields),
        cmocka_unit_test(test_decode_fills_registered_fields),
        cmocka_unit_test(test_decode_fills_goaway_ping_reset_window_fields),
        cmocka_unit_test(test_decode_leaves_semantic_rules_to_the_mux),
        cmocka_unit_test(test_decode_checks_label_characters),
        cmocka_unit_test(test_decode_rejects_register_lengths_that_do_not_add_up),
        cmocka_unit_test(test_decode_accepts_null_why),
        cmocka_unit_test(test_window_update_any_stream_unknown_type_any_stream),
        cmocka_unit_test(test_encode_reset_matches_vector_and_reports_full),
        cmocka_unit_test(test_encode_window_update_matches_vectors_and_clears_reserved_bits),
        cmocka_unit_test(test_encode_ping_and_pong_match_vectors),
        cmocka_unit_test(test_encode_goaway_matches_vectors),
        cmocka_unit_test(test_encode_register_matches_vector),
        cmocka_unit_test(test_encode_registered_matches_vector),
        cmocka_unit_test(test_encode_dispatched_matches_vector),
        cmocka_unit_test(test_encode_raw_matches_vectors_and_clears_reserved_bit),
        cmocka_unit_test(test_encode_of_decoded_frame_keeps_flags),
        cmocka_unit_test(test_hdr_encode_clears_reserved_bit_and_decode_ignores_it),
        cmocka_unit_test(test_settings_validate_checks_every_range_at_both_ends),
        cmocka_unit_test(test_names_cover_every_type_and_code),
    };

    return cmocka_run_group_tests(tests, load_all, free_all);
}
