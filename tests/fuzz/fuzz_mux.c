/*
 * fuzz_mux.c - the multiplexer's state machine under arbitrary peer input (RELIABILITY.md T-38 F3).
 *
 * Each input builds a fresh mux (nghttp2 fuzz_target.cc style). The first byte picks the role and a
 * starting state: an edge waiting for the preface, or a registered connector / edge with a few
 * streams open in various states. The rest is fed as peer bytes in pieces whose sizes come from the
 * input, buffered the way link.c does it (what mux_feed leaves of a partial frame is fed again with
 * the next piece, so frames of any size arrive whole), with the application reacting to every event
 * (consuming, writing, releasing, resetting), and the output pulled between pieces. After every
 * step the output must decode as frames, and at the end everything is freed.
 *
 * data[0]: bit 0 edge (else connector), bit 1 handshake first, bit 2 the edge opens streams, bit 3
 * PING, bit 4 mux_fail at the end, bit 5 tight limits (small windows and send queues, so that flow
 * control, window growth and full queues are reached by small inputs), bit 6 the application sends
 * GOAWAY after the handshake, bit 7 bulk bodies (20 000 bytes, so DATA is framed in place), the
 * zero-copy writer (reserve/commit/end) for responses and echoes, DISPATCHED, and a transport that
 * takes only half of what is pending after each piece whose last byte has bit 7 set.
 * data[1]: the application's reactions (app_mode), bits 5-7 the tight limits' sizes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "limits.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"

static uint64_t clock_us;
static uint8_t app_mode;
static int bulk_mode;

static uint64_t now_us(void *arg)
{
    (void)arg;
    clock_us += 1000;
    return clock_us;
}

/* The start of a frame the transport has taken only in part (short writes). */
static uint8_t *carry;
static size_t carry_len;

/* The transport takes |take| of the |n| pending bytes at |p|. What was taken before, the partial
 * frame in |carry|, followed by all of |p|, must be whole, valid frames: the mux only ever emits
 * those, and a frame taken in part is offered again from where the transport stopped. */
static void take_output(const uint8_t *p, size_t n, size_t take)
{
    size_t total = carry_len + n;
    size_t cut = carry_len + take;
    size_t start = cut;
    size_t off = 0;
    uint8_t *w = malloc(total);

    if (w == NULL)
        abort();
    if (carry_len > 0)
        memcpy(w, carry, carry_len);
    memcpy(w + carry_len, p, n);
    while (off < total) {
        struct frame f;
        const char *why;
        ssize_t k = frame_decode(&f, w + off, total - off, FRAME_MAX_MAX_SIZE, &why);

        if (k <= 0)
            abort(); /* we must only ever emit whole, valid frames */
        if (off < cut && off + (size_t)k > cut)
            start = off;
        off += (size_t)k;
    }
    free(carry);
    carry = NULL;
    carry_len = cut - start;
    if (carry_len > 0) {
        carry = malloc(carry_len);
        if (carry == NULL)
            abort();
        memcpy(carry, w + start, carry_len);
    }
    free(w);
}

/* Pulls the output as link.c does: pending in chunks until there is none. A short writer takes
 * half of one chunk and stops, as a transport whose buffer filled up. */
static void check_output(struct mux *m, int short_write)
{
    for (int round = 0; round < 16; round++) {
        const uint8_t *p;
        size_t n = mux_pending(m, &p, 64 * 1024);
        size_t take = short_write ? n / 2 : n;

        if (n == 0)
            break;
        take_output(p, n, take);
        mux_consume(m, take);
        if (short_write)
            break;
    }
}

static uint8_t bulk[20000];

/* Queues what the send queue takes of |n| bytes at |p| with the zero-copy writer; returns how
 * many (0: nothing fits). */
static size_t reserve_copy(struct mux_stream *s, const uint8_t *p, size_t n)
{
    size_t len = n;
    uint8_t *q = mux_stream_reserve(s, &len);

    if (q == NULL)
        return 0;
    if (len == 0 || len > n)
        abort();
    memcpy(q, p, len);
    mux_stream_commit(s, len);
    return len;
}

/* Queues up to |n| bytes of body with the zero-copy writer, as much as the send queue takes. */
static void reserve_bulk(struct mux_stream *s, size_t n)
{
    size_t done;

    while (n > 0 && (done = reserve_copy(s, bulk, n)) > 0)
        n -= done;
}

static void on_headers(struct mux_stream *s, const struct meta *md, int end, void *sdata)
{
    (void)md;
    (void)end;
    (void)sdata;
    if (app_mode & 1)
        mux_stream_reset(s, CODE_CANCEL);
}

/* Echoes |n| bytes at |p| with whichever writer this input uses. */
static void echo(struct mux_stream *s, const uint8_t *p, size_t n)
{
    if (!bulk_mode)
        mux_stream_write(s, p, n, 0);
    else
        (void)reserve_copy(s, p, n);
}

static void on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    (void)sdata;
    if (app_mode & 2)
        mux_stream_consumed(s, n);
    if (app_mode & 4)
        echo(s, p, n);
}

static void on_end(struct mux_stream *s, void *sdata)
{
    (void)sdata;
    if (bulk_mode) {
        reserve_bulk(s, sizeof(bulk));
        mux_stream_end(s);
    } else {
        mux_stream_write(s, (const uint8_t *)"bye", 3, 1);
    }
}

static void on_writable(struct mux_stream *s, void *sdata)
{
    (void)sdata;
    if (app_mode & 4)
        echo(s, (const uint8_t *)"more", 4);
}

static struct mux_stream *held[64];
static size_t nheld;

static void on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    (void)code;
    (void)sdata;
    /* Released here, like the edge and connector do: forget it. */
    for (size_t i = 0; i < nheld; i++) {
        if (held[i] == s)
            held[i] = NULL;
    }
    mux_stream_release(s);
}

static const struct mux_stream_hooks sh = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_end = on_end,
    .on_reset = on_reset,
    .on_writable = on_writable,
};

static int on_stream_open(struct mux *m, struct mux_stream *s, const struct meta *md, int end, void *arg)
{
    struct buf b;
    int start;

    (void)m;
    (void)md;
    (void)arg;
    if (nheld == 64 || (app_mode & 8))
        return CODE_REFUSED_STREAM;
    mux_stream_set_hooks(s, &sh, NULL);
    held[nheld++] = s;
    if (bulk_mode)
        mux_stream_dispatched(s);
    buf_init(&b, 4096);
    start = meta_begin(&b, META_RESPONSE);
    if (start >= 0 && meta_add_str(&b, ":status", "200") == 0 && meta_end(&b, (size_t)start) == 0)
        mux_stream_headers(s, b.pos, buf_len(&b), end && (app_mode & 16));
    buf_cleanup(&b);
    return 0;
}

static void on_register(struct mux *m, const struct frame_register *r, void *arg)
{
    struct frame_registered rd;

    (void)arg;
    memset(&rd, 0, sizeof(rd));
    rd.heartbeat_ms = 5000;
    if (r->secret[0] & 1)
        mux_reject(m, CODE_AUTH_FAILED, FRAME_RETRY_NEVER, "no");
    else
        mux_accept(m, &rd);
}

static const struct mux_hooks hooks = {
    .on_register = on_register,
    .on_stream_open = on_stream_open,
    .now_us = now_us,
};

/* Brings |m| to OPEN by feeding it a scripted peer handshake produced by a second mux. */
static void handshake(struct mux *m, enum mux_role role, const struct cv_limits *lim)
{
    struct mux *peer = mux_new(role == MUX_ROLE_EDGE ? MUX_ROLE_CONNECTOR : MUX_ROLE_EDGE, lim, &hooks, NULL);
    struct frame_register r;
    const uint8_t *p;
    size_t n;

    if (peer == NULL)
        return;
    memset(&r, 0, sizeof(r));
    r.min_version = r.max_version = 1;
    if (role == MUX_ROLE_EDGE) {
        mux_register(peer, &r);
        n = mux_pending(peer, &p, 1 << 20);
        mux_feed(m, p, n); /* the edge's hook accepts */
        mux_consume(peer, n);
        check_output(m, 0);
    } else {
        mux_register(m, &r);
        n = mux_pending(m, &p, 1 << 20);
        mux_feed(peer, p, n);
        mux_consume(m, n);
        n = mux_pending(peer, &p, 1 << 20);
        mux_feed(m, p, n);
        mux_consume(peer, n);
    }
    mux_free(peer);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cv_limits lim;
    struct mux *m;
    enum mux_role role;
    size_t off = 2;
    size_t end = 2;

    if (size < 2)
        return 0;
    log_set_level(LOG_ERROR); /* connection errors are expected here; keep the fuzzer fast */
    limits_init(&lim);
    lim.max_control_queued = 64;
    lim.reset_burst = 32;
    if (data[0] & 32) {
        /* Small limits a configuration may set: windows and send queues from 1 byte up, the
         * settings' minima of PROTOCOL.md §4.4 for the connection window and metadata size. */
        static const uint32_t windows[8] = {1, 16, 64, 100, 1000, 4096, 16384, 70000};
        static const uint32_t sendq[8] = {1, 9, 10, 64, 100, 1000, 16393, 65536};

        lim.stream_window = windows[data[1] >> 5];
        lim.stream_window_max = 4 * lim.stream_window;
        lim.connection_window = 65535;
        lim.stream_send_buffer = sendq[data[1] >> 5];
        lim.max_metadata_size = 4096;
        lim.max_concurrent_streams = 4;
    }
    role = (data[0] & 1) ? MUX_ROLE_EDGE : MUX_ROLE_CONNECTOR;
    app_mode = data[1];
    bulk_mode = (data[0] & 128) != 0;
    nheld = 0;
    clock_us = 0;
    m = mux_new(role, &lim, &hooks, NULL);
    if (m == NULL)
        return 0;
    if (data[0] & 2)
        handshake(m, role, &lim);
    if (role == MUX_ROLE_EDGE && mux_state(m) == MUX_S_OPEN && (data[0] & 4)) {
        /* A few streams opened by the edge so that responses have somewhere to land. */
        struct buf b;
        int start;
        int err;

        buf_init(&b, 4096);
        start = meta_begin(&b, META_REQUEST_HTTP);
        meta_add_str(&b, ":method", "POST");
        meta_add_str(&b, ":scheme", "https");
        meta_add_str(&b, ":authority", "a.example");
        meta_add_str(&b, ":path", "/");
        meta_end(&b, (size_t)start);
        for (int i = 0; i < 3 && nheld < 64; i++) {
            struct mux_stream *s = mux_open(m, b.pos, buf_len(&b), i == 2, &sh, NULL, &err);

            if (s != NULL) {
                held[nheld++] = s;
                mux_stream_write(s, (const uint8_t *)"body", 4, i == 1);
            }
        }
        buf_cleanup(&b);
        if (bulk_mode) {
            /* With the HEADERS sent, the first DATA of a bulk body is framed in place. */
            check_output(m, 0);
            for (size_t i = 0; i < nheld; i++) {
                if (held[i] != NULL)
                    mux_stream_write(held[i], bulk, sizeof(bulk), 0);
            }
        }
    }
    if (data[0] & 8)
        mux_ping(m);
    if (data[0] & 64)
        mux_goaway(m, CODE_NO_ERROR, 0, "fuzz");
    /* [off, end) is what the transport has buffered: each step a piece arrives, and the bytes of a
     * partial frame the mux leaves unused are fed again with the next piece, as link.c does. */
    while (off < size && mux_state(m) != MUX_S_CLOSED) {
        size_t piece = 1 + data[end - 1] % 97;
        ssize_t used;

        if (piece > size - end)
            piece = size - end;
        end += piece;
        used = mux_feed(m, data + off, end - off);
        check_output(m, bulk_mode && (data[end - 1] & 0x80));
        if (used < 0)
            break;
        if ((size_t)used > end - off)
            abort();
        off += (size_t)used;
        if (end == size)
            break; /* the input ended inside a frame */
    }
    if (data[0] & 16)
        mux_fail(m, CODE_INTERNAL_ERROR);
    check_output(m, 0);
    for (size_t i = 0; i < nheld; i++) {
        if (held[i] != NULL)
            mux_stream_release(held[i]);
    }
    nheld = 0;
    check_output(m, 0);
    mux_free(m);
    free(carry);
    carry = NULL;
    carry_len = 0;
    return 0;
}
