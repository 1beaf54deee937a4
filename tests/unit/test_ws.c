/*
 * test_ws.c - WebSocket frame codec (common/ws.c): RFC 6455 §5.7's examples both ways, every split
 * of the input, the limits, and each protocol violation the decoder must refuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "support.h"
#include "ws.h"

#define MAX_FRAMES 16
#define BIG (70 * 1024)

/* What a decoding produced: each frame's header and whole (unmasked) payload. */
struct got_frame {
    uint8_t opcode;
    uint8_t fin;
    uint64_t len;
    size_t n;
    uint8_t *payload; /* malloc'd, |len| bytes */
};

struct transcript {
    struct got_frame f[MAX_FRAMES];
    size_t count;
    int err;          /* the decoder's error, or 0 */
    const char *why;
};

static void transcript_free(struct transcript *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->f[i].payload);
    memset(t, 0, sizeof(*t));
}

static struct got_frame *begin_frame(struct transcript *t, const struct ws_frame *fr)
{
    struct got_frame *g;

    assert_true(t->count < MAX_FRAMES);
    g = &t->f[t->count++];
    g->opcode = fr->opcode;
    g->fin = fr->fin;
    g->len = fr->len;
    g->n = 0;
    g->payload = malloc(fr->len > 0 ? (size_t)fr->len : 1);
    assert_non_null(g->payload);
    return g;
}

/* Feeds |p| (|n| bytes) to |d| in pieces of |step| bytes (the last may be shorter), unmasking
 * through an output buffer of |outcap| bytes, and records the frames in |t|. */
static void decode_steps(struct ws_decoder *d, const uint8_t *p, size_t n, size_t step,
                         size_t outcap, struct transcript *t)
{
    uint8_t *out = malloc(outcap);
    size_t off = 0;

    assert_non_null(out);
    while (off < n && t->err == 0) {
        size_t k = n - off < step ? n - off : step;
        const uint8_t *q = p + off;

        off += k;
        for (;;) {
            struct ws_event ev;
            ssize_t used = ws_decode(d, q, k, out, outcap, &ev, &t->why);

            if (used < 0) {
                t->err = (int)used;
                break;
            }
            assert_true((size_t)used <= k);
            q += used;
            k -= (size_t)used;
            if (ev.kind == WS_EV_NONE) {
                assert_int_equal(k, 0);
                break;
            }
            if (ev.kind == WS_EV_FRAME || ev.kind == WS_EV_CONTROL) {
                struct got_frame *g = begin_frame(t, &ev.frame);

                if (ev.kind == WS_EV_CONTROL) {
                    assert_int_equal(ev.n, ev.frame.len);
                    memcpy(g->payload, ev.data, ev.n);
                    g->n = ev.n;
                }
            } else {
                struct got_frame *g;

                assert_int_equal(ev.kind, WS_EV_DATA);
                assert_true(t->count > 0);
                g = &t->f[t->count - 1];
                assert_true(ev.n >= 1 && ev.n <= outcap);
                assert_true(g->n + ev.n <= g->len);
                assert_ptr_equal(ev.data, out);
                memcpy(g->payload + g->n, ev.data, ev.n);
                g->n += ev.n;
            }
        }
    }
    free(out);
}

static void decode_all(enum ws_role role, uint64_t max, const uint8_t *p, size_t n, size_t step,
                       struct transcript *t)
{
    struct ws_decoder d;

    ws_decoder_init(&d, role, max);
    memset(t, 0, sizeof(*t));
    decode_steps(&d, p, n, step, 4096, t);
}

static uint8_t *hex(const char *text, size_t *n)
{
    uint8_t *p = support_hex_decode(text, n);

    assert_non_null(p);
    return p;
}

static const uint8_t rfc_mask[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- RFC 6455 §5.7 examples ------------------------------------------------------------------ */

static void test_rfc_unmasked_text_hello(void **state)
{
    size_t n;
    uint8_t *p = hex("81 05 48 65 6c 6c 6f", &n);
    struct transcript t;
    uint8_t out[WS_HDR_MAX];

    (void)state;
    decode_all(WS_ROLE_CLIENT, 1024, p, n, n, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.f[0].opcode, WS_OP_TEXT);
    assert_int_equal(t.f[0].fin, 1);
    assert_int_equal(t.f[0].n, 5);
    assert_memory_equal(t.f[0].payload, "Hello", 5);
    /* The encoder writes the same header. */
    assert_int_equal(ws_encode_header(out, WS_OP_TEXT, 1, 5, NULL), 2);
    assert_memory_equal(out, p, 2);
    transcript_free(&t);
    free(p);
}

static void test_rfc_masked_text_hello(void **state)
{
    size_t n;
    uint8_t *p = hex("81 85 37 fa 21 3d 7f 9f 4d 51 58", &n);
    struct transcript t;
    uint8_t frame[16];
    int h;

    (void)state;
    decode_all(WS_ROLE_SERVER, 1024, p, n, n, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.f[0].opcode, WS_OP_TEXT);
    assert_memory_equal(t.f[0].payload, "Hello", 5);
    /* Client side encoding with the same key gives the RFC's bytes. */
    h = ws_encode_header(frame, WS_OP_TEXT, 1, 5, rfc_mask);
    assert_int_equal(h, 6);
    memcpy(frame + h, "Hello", 5);
    ws_mask(frame + h, 5, rfc_mask, 0);
    assert_memory_equal(frame, p, n);
    transcript_free(&t);
    free(p);
}

static void test_rfc_fragmented_text(void **state)
{
    size_t n;
    uint8_t *p = hex("01 03 48 65 6c  80 02 6c 6f", &n);
    struct transcript t;

    (void)state;
    decode_all(WS_ROLE_CLIENT, 1024, p, n, n, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 2);
    assert_int_equal(t.f[0].opcode, WS_OP_TEXT);
    assert_int_equal(t.f[0].fin, 0);
    assert_memory_equal(t.f[0].payload, "Hel", 3);
    assert_int_equal(t.f[1].opcode, WS_OP_CONT);
    assert_int_equal(t.f[1].fin, 1);
    assert_memory_equal(t.f[1].payload, "lo", 2);
    transcript_free(&t);
    free(p);
}

static void test_rfc_ping_and_masked_pong(void **state)
{
    size_t n1, n2;
    uint8_t *ping = hex("89 05 48 65 6c 6c 6f", &n1);
    uint8_t *pong = hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58", &n2);
    uint8_t out[WS_CONTROL_FRAME_MAX];
    struct transcript t;

    (void)state;
    decode_all(WS_ROLE_CLIENT, 1024, ping, n1, n1, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.f[0].opcode, WS_OP_PING);
    assert_memory_equal(t.f[0].payload, "Hello", 5);
    transcript_free(&t);
    decode_all(WS_ROLE_SERVER, 1024, pong, n2, 1, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.f[0].opcode, WS_OP_PONG);
    assert_memory_equal(t.f[0].payload, "Hello", 5);
    transcript_free(&t);
    /* Both encode back exactly. */
    assert_int_equal(ws_encode_control(out, sizeof(out), WS_OP_PING, (const uint8_t *)"Hello", 5,
                                       NULL),
                     (int)n1);
    assert_memory_equal(out, ping, n1);
    assert_int_equal(ws_encode_control(out, sizeof(out), WS_OP_PONG, (const uint8_t *)"Hello", 5,
                                       rfc_mask),
                     (int)n2);
    assert_memory_equal(out, pong, n2);
    free(ping);
    free(pong);
}

static void test_rfc_256_and_64k_binary_lengths(void **state)
{
    uint8_t hdr[WS_HDR_MAX];
    uint8_t *frame = malloc(10 + 65536);
    struct transcript t;

    (void)state;
    assert_non_null(frame);
    /* 256 bytes: 0x82 0x7E 0x0100. */
    assert_int_equal(ws_encode_header(hdr, WS_OP_BINARY, 1, 256, NULL), 4);
    assert_memory_equal(hdr, "\x82\x7e\x01\x00", 4);
    /* 64 KiB: 0x82 0x7F 0x0000000000010000. */
    assert_int_equal(ws_encode_header(hdr, WS_OP_BINARY, 1, 65536, NULL), 10);
    assert_memory_equal(hdr, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    memcpy(frame, hdr, 10);
    for (size_t i = 0; i < 65536; i++)
        frame[10 + i] = (uint8_t)(i * 7);
    decode_all(WS_ROLE_CLIENT, 65536, frame, 10 + 65536, 10 + 65536, &t);
    assert_int_equal(t.err, 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(t.f[0].len, 65536);
    assert_int_equal(t.f[0].n, 65536);
    assert_memory_equal(t.f[0].payload, frame + 10, 65536);
    transcript_free(&t);
    free(frame);
}

/* ---- splits ---------------------------------------------------------------------------------- */

/* A client's stream: masked binary 300 bytes (16-bit length), a ping between the fragments of a
 * message, a masked 70 KiB frame (64-bit length), an empty frame, a close. */
static size_t build_client_stream(uint8_t *buf, uint8_t **payload_big)
{
    static const uint8_t m1[4] = {1, 2, 3, 4};
    static const uint8_t m2[4] = {0xaa, 0x55, 0x0f, 0xf0};
    uint8_t *big = malloc(BIG);
    size_t off = 0;
    int h;

    assert_non_null(big);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (uint8_t)(i ^ (i >> 8));
    /* binary, 300 bytes, not final */
    h = ws_encode_header(buf + off, WS_OP_BINARY, 0, 300, m1);
    assert_int_equal(h, 8);
    off += (size_t)h;
    memcpy(buf + off, big, 300);
    ws_mask(buf + off, 300, m1, 0);
    off += 300;
    /* ping "x" in the middle of the message */
    h = ws_encode_control(buf + off, WS_CONTROL_FRAME_MAX, WS_OP_PING, (const uint8_t *)"x", 1, m2);
    assert_int_equal(h, 7);
    off += (size_t)h;
    /* continuation, 70 KiB, final */
    h = ws_encode_header(buf + off, WS_OP_CONT, 1, BIG, m2);
    assert_int_equal(h, 14);
    off += (size_t)h;
    memcpy(buf + off, big, BIG);
    ws_mask(buf + off, BIG, m2, 0);
    off += BIG;
    /* empty binary frame */
    h = ws_encode_header(buf + off, WS_OP_BINARY, 1, 0, m1);
    off += (size_t)h;
    /* close 1000 "bye" */
    h = ws_encode_close(buf + off, WS_CONTROL_FRAME_MAX, 1000, "bye", 3, m1);
    assert_int_equal(h, 2 + 4 + 5);
    off += (size_t)h;
    *payload_big = big;
    return off;
}

static void check_client_stream(const struct transcript *t, const uint8_t *big)
{
    assert_int_equal(t->err, 0);
    assert_int_equal(t->count, 5);
    assert_int_equal(t->f[0].opcode, WS_OP_BINARY);
    assert_int_equal(t->f[0].fin, 0);
    assert_int_equal(t->f[0].n, 300);
    assert_memory_equal(t->f[0].payload, big, 300);
    assert_int_equal(t->f[1].opcode, WS_OP_PING);
    assert_memory_equal(t->f[1].payload, "x", 1);
    assert_int_equal(t->f[2].opcode, WS_OP_CONT);
    assert_int_equal(t->f[2].n, BIG);
    assert_memory_equal(t->f[2].payload, big, BIG);
    assert_int_equal(t->f[3].opcode, WS_OP_BINARY);
    assert_int_equal(t->f[3].len, 0);
    assert_int_equal(t->f[4].opcode, WS_OP_CLOSE);
    assert_int_equal(t->f[4].n, 5);
    assert_memory_equal(t->f[4].payload, "\x03\xe8" "bye", 5);
}

static void test_decode_same_result_for_every_split_point(void **state)
{
    uint8_t *buf = malloc(BIG + 1024);
    uint8_t *big;
    size_t n;
    struct transcript t;

    (void)state;
    assert_non_null(buf);
    n = build_client_stream(buf, &big);
    /* Two pieces, cut at every header byte and around the frame boundaries; the 70 KiB payload
     * is cut every 997 bytes (every offset there is the same code path). */
    for (size_t cut = 0; cut <= n; cut += (cut < 340 || cut > n - 40) ? 1 : 997) {
        struct ws_decoder d;

        ws_decoder_init(&d, WS_ROLE_SERVER, 1 << 20);
        memset(&t, 0, sizeof(t));
        decode_steps(&d, buf, cut, cut > 0 ? cut : 1, 4096, &t);
        decode_steps(&d, buf + cut, n - cut, n - cut > 0 ? n - cut : 1, 4096, &t);
        check_client_stream(&t, big);
        assert_true(ws_decoder_at_boundary(&d));
        transcript_free(&t);
    }
    free(buf);
    free(big);
}

static void test_decode_one_byte_at_a_time_with_small_output(void **state)
{
    uint8_t *buf = malloc(BIG + 1024);
    uint8_t *big;
    size_t n;
    struct transcript t;
    struct ws_decoder d;

    (void)state;
    assert_non_null(buf);
    n = build_client_stream(buf, &big);
    ws_decoder_init(&d, WS_ROLE_SERVER, 1 << 20);
    memset(&t, 0, sizeof(t));
    decode_steps(&d, buf, n, 1, 1, &t);
    check_client_stream(&t, big);
    transcript_free(&t);
    /* Whole input at once, output 7 bytes at a time. */
    ws_decoder_init(&d, WS_ROLE_SERVER, 1 << 20);
    decode_steps(&d, buf, n, n, 7, &t);
    check_client_stream(&t, big);
    transcript_free(&t);
    free(buf);
    free(big);
}

static void test_boundary_and_message_state(void **state)
{
    struct ws_decoder d;
    struct ws_event ev;
    uint8_t out[16];
    uint8_t frame[32];
    int h;

    (void)state;
    ws_decoder_init(&d, WS_ROLE_CLIENT, 100);
    assert_true(ws_decoder_at_boundary(&d));
    assert_false(ws_decoder_in_message(&d));
    h = ws_encode_header(frame, WS_OP_BINARY, 0, 4, NULL);
    memcpy(frame + h, "abcd", 4);
    /* One header byte: mid-frame. */
    assert_int_equal(ws_decode(&d, frame, 1, out, sizeof(out), &ev, NULL), 1);
    assert_int_equal(ev.kind, WS_EV_NONE);
    assert_false(ws_decoder_at_boundary(&d));
    assert_int_equal(ws_decode(&d, frame + 1, 1, out, sizeof(out), &ev, NULL), 1);
    assert_int_equal(ev.kind, WS_EV_FRAME);
    assert_false(ws_decoder_at_boundary(&d)); /* the payload is owed */
    assert_true(ws_decoder_in_message(&d));
    assert_int_equal(ws_decode(&d, frame + 2, 4, out, sizeof(out), &ev, NULL), 4);
    assert_int_equal(ev.kind, WS_EV_DATA);
    assert_true(ws_decoder_at_boundary(&d));
    assert_true(ws_decoder_in_message(&d)); /* not final */
}

/* ---- refusals -------------------------------------------------------------------------------- */

static int decode_err(enum ws_role role, uint64_t max, const char *text, const char **why)
{
    size_t n;
    uint8_t *p = hex(text, &n);
    struct transcript t;
    int err;

    decode_all(role, max, p, n, n, &t);
    err = t.err;
    if (why != NULL)
        *why = t.why;
    transcript_free(&t);
    free(p);
    return err;
}

static void test_limit_refused_from_header_before_payload(void **state)
{
    struct ws_decoder d;
    struct ws_event ev;
    uint8_t out[16];
    uint8_t hdr[WS_HDR_MAX];
    const char *why = NULL;
    int h;

    (void)state;
    ws_decoder_init(&d, WS_ROLE_SERVER, 1 << 20);
    h = ws_encode_header(hdr, WS_OP_BINARY, 1, (1 << 20) + 1, rfc_mask);
    /* Only the header: the refusal does not wait for the 1 MiB payload. */
    assert_int_equal(ws_decode(&d, hdr, (size_t)h, out, sizeof(out), &ev, &why), CV_ELIMIT);
    assert_non_null(why);
    assert_int_equal(ws_error_close_code(CV_ELIMIT), WS_CLOSE_TOO_BIG);
    /* Exactly the limit is fine. */
    ws_decoder_init(&d, WS_ROLE_SERVER, 1 << 20);
    h = ws_encode_header(hdr, WS_OP_BINARY, 1, 1 << 20, rfc_mask);
    assert_int_equal(ws_decode(&d, hdr, (size_t)h, out, sizeof(out), &ev, &why), h);
    assert_int_equal(ev.kind, WS_EV_FRAME);
    assert_int_equal(ev.frame.len, 1 << 20);
    /* Control frames are bounded at 125 whatever the limit. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "89 7e 00 7e", NULL), CV_EPROTO);
}

static void test_unknown_opcodes_refused(void **state)
{
    static const uint8_t bad[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
    char text[32];

    (void)state;
    for (size_t i = 0; i < sizeof(bad); i++) {
        const char *why = NULL;

        snprintf(text, sizeof(text), "%02x 00", 0x80 | bad[i]);
        assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, text, &why), CV_EPROTO);
        assert_string_equal(why, "unknown opcode");
    }
}

static void test_control_frames_long_or_fragmented_refused(void **state)
{
    const char *why = NULL;

    (void)state;
    /* Ping with 126 (16-bit length) and 127 (64-bit length). */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "89 7e 00 80", &why), CV_EPROTO);
    assert_string_equal(why, "control frame payload over 125 bytes");
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "8a 7f 00 00 00 00 00 01 00 00", NULL),
                     CV_EPROTO);
    /* 125 is fine. */
    {
        uint8_t frame[WS_CONTROL_FRAME_MAX];
        uint8_t payload[125];
        struct transcript t;
        int n;

        memset(payload, 'p', sizeof(payload));
        n = ws_encode_control(frame, sizeof(frame), WS_OP_PING, payload, 125, NULL);
        assert_int_equal(n, 127);
        decode_all(WS_ROLE_CLIENT, 10, frame, (size_t)n, 1, &t);
        assert_int_equal(t.err, 0);
        assert_int_equal(t.f[0].n, 125);
        transcript_free(&t);
    }
    /* Ping, close and pong without FIN. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "09 00", &why), CV_EPROTO);
    assert_string_equal(why, "fragmented control frame");
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "08 00", NULL), CV_EPROTO);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "0a 00", NULL), CV_EPROTO);
}

static void test_reserved_bits_refused(void **state)
{
    (void)state;
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "c2 00", NULL), CV_EPROTO); /* RSV1 */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "a2 00", NULL), CV_EPROTO); /* RSV2 */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "92 00", NULL), CV_EPROTO); /* RSV3 */
}

static void test_mask_bit_must_match_role(void **state)
{
    const char *why = NULL;

    (void)state;
    assert_int_equal(decode_err(WS_ROLE_SERVER, 100, "82 01 41", &why), CV_EPROTO);
    assert_string_equal(why, "unmasked frame from a client");
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "82 81 00 00 00 00 41", &why), CV_EPROTO);
    assert_string_equal(why, "masked frame from a server");
    assert_int_equal(ws_error_close_code(CV_EPROTO), WS_CLOSE_PROTOCOL);
}

static void test_non_minimal_lengths_refused(void **state)
{
    const char *why = NULL;

    (void)state;
    /* 16-bit length holding 125; 64-bit length holding 65535; 64-bit with the top bit. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "82 7e 00 7d", &why), CV_EPROTO);
    assert_string_equal(why, "16-bit length for a payload under 126 bytes");
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "82 7f 00 00 00 00 00 00 ff ff", &why),
                     CV_EPROTO);
    assert_string_equal(why, "64-bit length for a payload under 65536 bytes");
    assert_int_equal(decode_err(WS_ROLE_CLIENT, UINT64_MAX, "82 7f 80 00 00 00 00 00 00 00", &why),
                     CV_EPROTO);
    assert_string_equal(why, "64-bit length with its most significant bit set");
    /* The smallest valid values of each form. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "82 7e 00 7e", NULL), 0);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 1 << 20, "82 7f 00 00 00 00 00 01 00 00", NULL), 0);
}

static void test_fragmentation_order_enforced(void **state)
{
    const char *why = NULL;

    (void)state;
    /* CONT with nothing to continue. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "80 00", &why), CV_EPROTO);
    assert_string_equal(why, "continuation frame without a message to continue");
    /* A new BINARY while a TEXT message is open. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "01 01 41  82 01 42", &why), CV_EPROTO);
    assert_string_equal(why, "new data frame inside a fragmented message");
    /* Control frames in between are fine; CONT then ends it; a new message may start. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "02 01 41  89 00  80 01 42  82 00", NULL), 0);
    /* After the final CONT, another CONT is refused. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "02 01 41  80 01 42  80 00", NULL), CV_EPROTO);
}

static void test_close_payload_checked(void **state)
{
    const char *why = NULL;
    uint16_t code = 0;

    (void)state;
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 01 03", &why), CV_EPROTO);
    assert_string_equal(why, "Close payload of one byte");
    /* 1005 and 999 may not be sent; 1004 is reserved; 5000 is out of range. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 03 ed", NULL), CV_EPROTO);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 03 e7", NULL), CV_EPROTO);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 03 ec", NULL), CV_EPROTO);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 13 88", NULL), CV_EPROTO);
    /* A reason that is not UTF-8: 1007. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 04 03 e8 c0 af", &why), CV_EPARSE);
    assert_string_equal(why, "Close reason is not UTF-8");
    assert_int_equal(ws_error_close_code(CV_EPARSE), WS_CLOSE_INVALID_DATA);
    /* Empty, 1000, 3000 and 4999 with a UTF-8 reason are fine. */
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 00", NULL), 0);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 03 e8", NULL), 0);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 02 0b b8", NULL), 0);
    assert_int_equal(decode_err(WS_ROLE_CLIENT, 100, "88 05 13 87 c3 a9 21", NULL), 0);
    assert_int_equal(ws_close_parse(NULL, 0, &code, NULL), 0);
    assert_int_equal(code, WS_CLOSE_NO_STATUS);
    assert_int_equal(ws_close_parse((const uint8_t *)"\x03\xf1", 2, &code, NULL), 0);
    assert_int_equal(code, WS_CLOSE_TOO_BIG);
}

static void test_errors_are_final(void **state)
{
    struct ws_decoder d;
    struct ws_event ev;
    uint8_t out[8];
    const char *why = NULL;
    static const uint8_t bad[] = {0x83, 0x00};
    static const uint8_t good[] = {0x82, 0x00};

    (void)state;
    ws_decoder_init(&d, WS_ROLE_CLIENT, 100);
    assert_int_equal(ws_decode(&d, bad, 2, out, sizeof(out), &ev, &why), CV_EPROTO);
    why = NULL;
    assert_int_equal(ws_decode(&d, good, 2, out, sizeof(out), &ev, &why), CV_EPROTO);
    assert_string_equal(why, "unknown opcode");
    /* No output space is a caller error. */
    ws_decoder_init(&d, WS_ROLE_CLIENT, 100);
    assert_int_equal(ws_decode(&d, good, 2, out, 0, &ev, NULL), CV_EINVAL);
}

/* ---- encoders and helpers -------------------------------------------------------------------- */

static void test_encoders_refuse_invalid_frames(void **state)
{
    uint8_t out[WS_CONTROL_FRAME_MAX];
    uint8_t payload[126];

    (void)state;
    memset(payload, 0, sizeof(payload));
    assert_int_equal(ws_encode_header(out, 3, 1, 0, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_header(out, WS_OP_PING, 0, 0, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_header(out, WS_OP_CLOSE, 1, 126, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_header(out, WS_OP_BINARY, 1, (uint64_t)1 << 63, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_control(out, sizeof(out), WS_OP_BINARY, payload, 1, NULL),
                     CV_EINVAL);
    assert_int_equal(ws_encode_control(out, sizeof(out), WS_OP_PING, payload, 126, NULL),
                     CV_EINVAL);
    assert_int_equal(ws_encode_control(out, 6, WS_OP_PING, payload, 5, NULL), CV_EFULL);
    assert_int_equal(ws_encode_close(out, sizeof(out), 1005, NULL, 0, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_close(out, sizeof(out), 1000, "\xff", 1, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_close(out, sizeof(out), 0, "x", 1, NULL), CV_EINVAL);
    assert_int_equal(ws_encode_close(out, sizeof(out), 0, NULL, 0, NULL), 2);
    assert_memory_equal(out, "\x88\x00", 2);
    assert_int_equal(ws_encode_close(out, sizeof(out), 1009, "big", 3, NULL), 7);
    assert_memory_equal(out, "\x88\x05\x03\xf1" "big", 7);
}

static void test_header_len_matches_encoder(void **state)
{
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536, (uint64_t)1 << 40};
    uint8_t out[WS_HDR_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        assert_int_equal(ws_header_len(lens[i], 0),
                         (size_t)ws_encode_header(out, WS_OP_BINARY, 1, lens[i], NULL));
        assert_int_equal(ws_header_len(lens[i], 1),
                         (size_t)ws_encode_header(out, WS_OP_BINARY, 1, lens[i], rfc_mask));
    }
    assert_int_equal(ws_header_len(125, 0), 2);
    assert_int_equal(ws_header_len(126, 0), 4);
    assert_int_equal(ws_header_len(65536, 1), 14);
}

static void test_mask_with_offset_continues_the_key(void **state)
{
    uint8_t a[10];
    uint8_t b[10];

    (void)state;
    memcpy(a, "0123456789", 10);
    memcpy(b, "0123456789", 10);
    ws_mask(a, 10, rfc_mask, 0);
    /* The same bytes masked in three pieces at their offsets. */
    ws_mask(b, 3, rfc_mask, 0);
    ws_mask(b + 3, 2, rfc_mask, 3);
    ws_mask(b + 5, 5, rfc_mask, 5);
    assert_memory_equal(a, b, 10);
    assert_int_equal(a[0], '0' ^ 0x37);
    assert_int_equal(a[5], '5' ^ 0xfa);
    ws_mask(a, 10, rfc_mask, 0);
    assert_memory_equal(a, "0123456789", 10);
}

static void test_utf8_validator(void **state)
{
    (void)state;
    assert_true(ws_utf8_valid((const uint8_t *)"", 0));
    assert_true(ws_utf8_valid((const uint8_t *)"plain", 5));
    assert_true(ws_utf8_valid((const uint8_t *)"\xc3\xa9", 2));         /* U+00E9 */
    assert_true(ws_utf8_valid((const uint8_t *)"\xe2\x82\xac", 3));     /* U+20AC */
    assert_true(ws_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4)); /* U+1F600 */
    assert_true(ws_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    assert_false(ws_utf8_valid((const uint8_t *)"\xc0\xaf", 2));        /* overlong '/' */
    assert_false(ws_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));    /* overlong */
    assert_false(ws_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));    /* surrogate */
    assert_false(ws_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(ws_utf8_valid((const uint8_t *)"\xe2\x82", 2));        /* truncated */
    assert_false(ws_utf8_valid((const uint8_t *)"\x80", 1));            /* lone continuation */
    assert_false(ws_utf8_valid((const uint8_t *)"\xc3\x28", 2));        /* bad continuation */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_unmasked_text_hello),
        cmocka_unit_test(test_rfc_masked_text_hello),
        cmocka_unit_test(test_rfc_fragmented_text),
        cmocka_unit_test(test_rfc_ping_and_masked_pong),
        cmocka_unit_test(test_rfc_256_and_64k_binary_lengths),
        cmocka_unit_test(test_decode_same_result_for_every_split_point),
        cmocka_unit_test(test_decode_one_byte_at_a_time_with_small_output),
        cmocka_unit_test(test_boundary_and_message_state),
        cmocka_unit_test(test_limit_refused_from_header_before_payload),
        cmocka_unit_test(test_unknown_opcodes_refused),
        cmocka_unit_test(test_control_frames_long_or_fragmented_refused),
        cmocka_unit_test(test_reserved_bits_refused),
        cmocka_unit_test(test_mask_bit_must_match_role),
        cmocka_unit_test(test_non_minimal_lengths_refused),
        cmocka_unit_test(test_fragmentation_order_enforced),
        cmocka_unit_test(test_close_payload_checked),
        cmocka_unit_test(test_errors_are_final),
        cmocka_unit_test(test_encoders_refuse_invalid_frames),
        cmocka_unit_test(test_header_len_matches_encoder),
        cmocka_unit_test(test_mask_with_offset_continues_the_key),
        cmocka_unit_test(test_utf8_validator),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
