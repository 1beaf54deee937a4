/*
 * test_mux.c - the multiplexer without sockets: an edge mux and a connector mux wired back to back in
 * memory (pump), plus scripted peer bytes for the error cases and the `layer: mux` protocol vectors.
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
#include "limits.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "support.h"
#include "wire.h"

#define MAX_STREAMS 64
#define SINK_CAP (4u * 1024 * 1024)

/* What one side saw. */
struct side {
    struct mux *m;
    int registered;
    int register_calls;
    struct frame_register reg;
    struct frame_registered regd;
    int goaways;
    uint32_t goaway_code;
    uint32_t goaway_last;
    uint64_t rtt_us;
    int pongs;
    int opened;
    int accept_code; /* what on_stream_open returns */
    int auto_consume;
    struct mux_stream *streams[MAX_STREAMS];
    int nstreams;
    /* Per-stream observations, indexed by the order streams were seen. */
    int headers[MAX_STREAMS];
    int status[MAX_STREAMS];
    int ends[MAX_STREAMS];
    int resets[MAX_STREAMS];
    uint32_t reset_code[MAX_STREAMS];
    int dispatched[MAX_STREAMS];
    int writable[MAX_STREAMS];
    size_t data_len[MAX_STREAMS];
    uint8_t *data[MAX_STREAMS];
    char first_header_value[MAX_STREAMS][64];
    int release_on_reset;
};

static const struct mux_stream_hooks stream_hooks;
static struct side edge_side;
static struct side conn_side;
static struct cv_limits limits;

static void on_register(struct mux *m, const struct frame_register *r, void *arg)
{
    struct side *sd = arg;

    (void)m;
    sd->register_calls++;
    sd->reg = *r;
}

static void on_registered(struct mux *m, const struct frame_registered *r, void *arg)
{
    struct side *sd = arg;

    (void)m;
    sd->registered = 1;
    sd->regd = *r;
}

static int on_stream_open(struct mux *m, struct mux_stream *s, const struct meta *md, int end, void *arg)
{
    struct side *sd = arg;
    int i = sd->nstreams;
    const struct meta_field *f;

    (void)m;
    (void)end;
    sd->opened++;
    if (sd->accept_code != 0)
        return sd->accept_code;
    assert_true(i < MAX_STREAMS);
    sd->streams[i] = s;
    sd->nstreams++;
    mux_stream_set_hooks(s, &stream_hooks, (void *)(intptr_t)i);
    sd->headers[i]++;
    f = meta_get(md, ":path");
    if (f != NULL && f->value_len < 64) {
        memcpy(sd->first_header_value[i], f->value, f->value_len);
        sd->first_header_value[i][f->value_len] = '\0';
    }
    if (end)
        sd->ends[i]++;
    return 0;
}

static void on_headers(struct mux_stream *s, const struct meta *md, int end, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;
    int i = (int)(intptr_t)sdata;
    const struct meta_field *f = meta_get(md, ":status");

    (void)end;
    sd->headers[i]++;
    if (f != NULL && f->value_len == 3)
        sd->status[i] = (f->value[0] - '0') * 100 + (f->value[1] - '0') * 10 + (f->value[2] - '0');
}

static void on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;
    int i = (int)(intptr_t)sdata;

    if (sd->data[i] == NULL)
        sd->data[i] = malloc(SINK_CAP);
    assert_true(sd->data_len[i] + n <= SINK_CAP);
    memcpy(sd->data[i] + sd->data_len[i], p, n);
    sd->data_len[i] += n;
    if (sd->auto_consume)
        mux_stream_consumed(s, n);
}

static void on_end(struct mux_stream *s, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;

    sd->ends[(int)(intptr_t)sdata]++;
}

static void on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;
    int i = (int)(intptr_t)sdata;

    sd->resets[i]++;
    sd->reset_code[i] = code;
    if (sd->release_on_reset) {
        mux_stream_release(s);
        sd->streams[i] = NULL;
    }
}

static void on_writable(struct mux_stream *s, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;

    sd->writable[(int)(intptr_t)sdata]++;
}

static void on_dispatched(struct mux_stream *s, void *sdata)
{
    struct side *sd = mux_stream_mux(s) == edge_side.m ? &edge_side : &conn_side;

    sd->dispatched[(int)(intptr_t)sdata]++;
}

static void on_pong(struct mux *m, uint64_t rtt, void *arg)
{
    struct side *sd = arg;

    (void)m;
    sd->pongs++;
    sd->rtt_us = rtt;
}

static void on_goaway(struct mux *m, const struct frame_goaway *g, void *arg)
{
    struct side *sd = arg;

    (void)m;
    sd->goaways++;
    sd->goaway_code = g->code;
    sd->goaway_last = g->last_stream_id;
}

static const struct mux_stream_hooks stream_hooks = {
    .on_headers = on_headers,
    .on_data = on_data,
    .on_end = on_end,
    .on_reset = on_reset,
    .on_writable = on_writable,
    .on_dispatched = on_dispatched,
};

static const struct mux_hooks hooks = {
    .on_register = on_register,
    .on_registered = on_registered,
    .on_stream_open = on_stream_open,
    .on_pong = on_pong,
    .on_goaway = on_goaway,
    .now_us = support_now_us,
};

/* Bytes one side has sent and the other not yet consumed (the receiver keeps partial frames). */
static uint8_t wire_e2c[1 << 21];
static size_t wire_e2c_len;
static uint8_t wire_c2e[1 << 21];
static size_t wire_c2e_len;
static int feed_err_edge;
static int feed_err_conn;

/* Moves |from|'s output to |wire| and feeds |to| from |wire|. Returns bytes moved. */
static size_t move(struct mux *from, uint8_t *wire, size_t *wlen, struct mux *to, int *err)
{
    const uint8_t *p;
    size_t n = mux_pending(from, &p, 256 * 1024);
    size_t moved = n;
    ssize_t used;

    if (n > 0) {
        if (n > (1u << 21) - *wlen)
            n = (1u << 21) - *wlen;
        memcpy(wire + *wlen, p, n);
        *wlen += n;
        mux_consume(from, n);
        moved = n;
    }
    if (*wlen == 0 || *err < 0)
        return moved;
    used = mux_feed(to, wire, *wlen);
    if (used < 0) {
        *err = (int)used;
        *wlen = 0;
        return moved;
    }
    memmove(wire, wire + used, *wlen - (size_t)used);
    *wlen -= (size_t)used;
    return moved + (size_t)used;
}

/* Runs both directions until nothing moves. */
static void pump(void)
{
    for (int i = 0; i < 100000; i++) {
        size_t a = move(edge_side.m, wire_e2c, &wire_e2c_len, conn_side.m, &feed_err_conn);
        size_t b = move(conn_side.m, wire_c2e, &wire_c2e_len, edge_side.m, &feed_err_edge);

        if (a == 0 && b == 0)
            return;
    }
    fail_msg("pump did not settle");
}

static void fill_register(struct frame_register *r)
{
    memset(r, 0, sizeof(*r));
    r->min_version = 1;
    r->max_version = 1;
    memset(r->tunnel_id, 0x11, 16);
    memset(r->secret, 0x22, 32);
    memset(r->connector_id, 0x33, 16);
    r->conn_index = 2;
    strcpy(r->version, "culvert-test");
    strcpy(r->region, "home-lab");
}

static void fill_registered(struct frame_registered *r)
{
    memset(r, 0, sizeof(*r));
    r->connection_id = 77;
    r->heartbeat_ms = 5000;
    strcpy(r->region, "eu-1");
    strcpy(r->name, "edge-a");
}

static long live_before;

static int setup(void **state)
{
    (void)state;
    live_before = mem_live_count();
    memset(&edge_side, 0, sizeof(edge_side));
    memset(&conn_side, 0, sizeof(conn_side));
    wire_e2c_len = 0;
    wire_c2e_len = 0;
    feed_err_edge = 0;
    feed_err_conn = 0;
    support_clock_us = 1000000;
    edge_side.auto_consume = 1;
    conn_side.auto_consume = 1;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &limits, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    assert_non_null(edge_side.m);
    assert_non_null(conn_side.m);
    return 0;
}

static void release_all(struct side *sd)
{
    for (int i = 0; i < sd->nstreams; i++) {
        if (sd->streams[i] != NULL)
            mux_stream_release(sd->streams[i]);
        sd->streams[i] = NULL;
        free(sd->data[i]);
        sd->data[i] = NULL;
    }
}

static int teardown(void **state)
{
    (void)state;
    release_all(&edge_side);
    release_all(&conn_side);
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    assert_int_equal(mem_live_count(), live_before);
    return 0;
}

/* Registers the pair. */
static void do_register(void)
{
    struct frame_register r;
    struct frame_registered rd;

    fill_register(&r);
    assert_int_equal(mux_register(conn_side.m, &r), 0);
    pump();
    assert_int_equal(edge_side.register_calls, 1);
    fill_registered(&rd);
    assert_int_equal(mux_accept(edge_side.m, &rd), 0);
    pump();
    assert_true(conn_side.registered);
}

/* Builds a request block into |b|. */
static void build_request(struct buf *b, const char *path, const char *clen)
{
    int start;

    buf_init(b, 1 << 20);
    start = meta_begin(b, META_REQUEST_HTTP);
    assert_true(start >= 0);
    assert_int_equal(meta_add_str(b, ":method", "POST"), 0);
    assert_int_equal(meta_add_str(b, ":scheme", "https"), 0);
    assert_int_equal(meta_add_str(b, ":authority", "app.example.com"), 0);
    assert_int_equal(meta_add_str(b, ":path", path), 0);
    if (clen != NULL)
        assert_int_equal(meta_add_str(b, "content-length", clen), 0);
    assert_int_equal(meta_end(b, (size_t)start), 0);
}

static void build_response(struct buf *b, const char *status, const char *clen)
{
    int start;

    buf_init(b, 1 << 20);
    start = meta_begin(b, META_RESPONSE);
    assert_true(start >= 0);
    assert_int_equal(meta_add_str(b, ":status", status), 0);
    if (clen != NULL)
        assert_int_equal(meta_add_str(b, "content-length", clen), 0);
    assert_int_equal(meta_end(b, (size_t)start), 0);
}

/* Edge opens a stream (index i on the edge side). */
static struct mux_stream *edge_open(const char *path, int end, int *err)
{
    struct buf b;
    struct mux_stream *s;
    int i = edge_side.nstreams;

    build_request(&b, path, NULL);
    s = mux_open(edge_side.m, b.pos, buf_len(&b), end, &stream_hooks, (void *)(intptr_t)i, err);
    buf_cleanup(&b);
    if (s != NULL) {
        edge_side.streams[i] = s;
        edge_side.nstreams++;
    }
    return s;
}

static void test_registration_carries_ids_settings_and_labels(void **state)
{
    (void)state;
    do_register();
    assert_int_equal(mux_state(edge_side.m), MUX_S_OPEN);
    assert_int_equal(mux_state(conn_side.m), MUX_S_OPEN);
    assert_int_equal(edge_side.reg.conn_index, 2);
    assert_string_equal(edge_side.reg.region, "home-lab");
    assert_string_equal(edge_side.reg.version, "culvert-test");
    assert_int_equal(edge_side.reg.settings.initial_stream_window, limits.stream_window);
    assert_int_equal(conn_side.regd.connection_id, 77);
    assert_string_equal(conn_side.regd.region, "eu-1");
    assert_int_equal(conn_side.regd.settings.max_frame_size, limits.max_frame_size);
    assert_int_equal(mux_peer_settings(conn_side.m)->connection_window, limits.connection_window);
}

static void test_registration_rejected_reports_auth_failed(void **state)
{
    struct frame_register r;

    (void)state;
    fill_register(&r);
    assert_int_equal(mux_register(conn_side.m, &r), 0);
    pump();
    assert_int_equal(mux_reject(edge_side.m, CODE_AUTH_FAILED, FRAME_RETRY_NEVER,
                                "authentication failed"),
                     0);
    assert_int_equal(mux_state(edge_side.m), MUX_S_CLOSED);
    pump();
    assert_int_equal(feed_err_conn, CV_EAUTH);
    assert_int_equal(conn_side.goaways, 1);
    assert_int_equal(conn_side.goaway_code, CODE_AUTH_FAILED);
    assert_false(conn_side.registered);
}

static void test_registration_without_common_version_is_refused(void **state)
{
    struct frame_register r;

    (void)state;
    fill_register(&r);
    r.min_version = 2;
    r.max_version = 3;
    assert_int_equal(mux_register(conn_side.m, &r), 0);
    pump();
    assert_int_equal(edge_side.register_calls, 0);
    assert_int_equal(feed_err_edge, CV_EVERSION);
    assert_int_equal(feed_err_conn, CV_EVERSION);
    assert_int_equal(conn_side.goaway_code, CODE_UNSUPPORTED_VERSION);
}

static void test_wrong_preface_closes_without_output(void **state)
{
    const uint8_t *p;

    (void)state;
    assert_int_equal(mux_feed(edge_side.m, (const uint8_t *)"GET / HTTP/1.1\r\n", 16), CV_EPROTO);
    assert_int_equal(mux_pending(edge_side.m, &p, 65536), 0);
    assert_int_equal(mux_state(edge_side.m), MUX_S_CLOSED);
}

static void test_frame_before_register_is_protocol_error(void **state)
{
    uint8_t in[FRAME_PREFACE_LEN + FRAME_HDR_LEN + 8];
    uint8_t opaque[8] = {0};
    const uint8_t *p;
    struct frame f;
    const char *why;

    (void)state;
    memcpy(in, FRAME_PREFACE, FRAME_PREFACE_LEN);
    frame_encode_ping(in + FRAME_PREFACE_LEN, sizeof(in) - FRAME_PREFACE_LEN, FRAME_PING, opaque);
    assert_int_equal(mux_feed(edge_side.m, in, sizeof(in)), CV_EPROTO);
    assert_true(mux_pending(edge_side.m, &p, 65536) > 0);
    assert_true(frame_decode(&f, p, FRAME_HDR_LEN + 268, 16384, &why) > 0);
    assert_int_equal(f.hdr.type, FRAME_GOAWAY);
    assert_int_equal(f.u.goaway.code, CODE_PROTOCOL_ERROR);
}

static void test_request_and_response_bodies_cross_both_ways(void **state)
{
    struct mux_stream *s;
    struct buf resp;
    int err = 0;
    uint8_t body[100000];

    (void)state;
    do_register();
    s = edge_open("/upload", 0, &err);
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (uint8_t)(i * 7);
    assert_int_equal(mux_stream_write(s, body, 60000, 0), 60000);
    pump();
    assert_int_equal(conn_side.opened, 1);
    assert_string_equal(conn_side.first_header_value[0], "/upload");
    assert_int_equal(mux_stream_write(s, body + 60000, 40000, 1), 40000);
    pump();
    assert_int_equal(conn_side.data_len[0], sizeof(body));
    assert_memory_equal(conn_side.data[0], body, sizeof(body));
    assert_int_equal(conn_side.ends[0], 1);

    /* The connector answers, marks the stream dispatched, sends a body with END_STREAM. */
    assert_int_equal(mux_stream_dispatched(conn_side.streams[0]), 0);
    build_response(&resp, "200", "5");
    assert_int_equal(mux_stream_headers(conn_side.streams[0], resp.pos, buf_len(&resp), 0), 0);
    buf_cleanup(&resp);
    assert_int_equal(mux_stream_write(conn_side.streams[0], (const uint8_t *)"hello", 5, 1), 5);
    pump();
    assert_int_equal(edge_side.dispatched[0], 1);
    assert_int_equal(edge_side.status[0], 200);
    assert_int_equal(edge_side.data_len[0], 5);
    assert_memory_equal(edge_side.data[0], "hello", 5);
    assert_int_equal(edge_side.ends[0], 1);
    assert_true(mux_stream_was_dispatched(s));
}

static void test_zero_window_blocks_writer_until_window_update(void **state)
{
    struct mux_stream *s;
    struct mux_stream *cs;
    struct buf resp;
    int err = 0;
    static uint8_t big[1024 * 1024];
    size_t sent = 0;

    (void)state;
    do_register();
    edge_side.auto_consume = 0; /* a slow visitor: nothing is consumed */
    s = edge_open("/download", 1, &err);
    assert_non_null(s);
    pump();
    cs = conn_side.streams[0];
    build_response(&resp, "200", NULL);
    assert_int_equal(mux_stream_headers(cs, resp.pos, buf_len(&resp), 0), 0);
    buf_cleanup(&resp);
    memset(big, 'x', sizeof(big));
    /* Keep writing as the queue allows; the stream window (256 KiB) bounds what crosses. */
    for (int round = 0; round < 100; round++) {
        ssize_t k = mux_stream_write(cs, big + sent, sizeof(big) - sent, 0);

        assert_true(k >= 0);
        sent += (size_t)k;
        pump();
    }
    assert_int_equal(edge_side.data_len[0], limits.stream_window);
    assert_true(sent < sizeof(big));
    assert_true(mux_stream_queued(cs) > 0);
    assert_true(conn_side.writable[0] >= 1 || sent == limits.stream_window + limits.stream_send_buffer);

    /* The visitor reads: credit goes back, the writer resumes. */
    mux_stream_consumed(s, edge_side.data_len[0]);
    pump();
    assert_true(edge_side.data_len[0] > limits.stream_window);
    assert_true(edge_side.data_len[0] <= 2 * limits.stream_window);
}

/* Opens a download stream from the connector to the edge; |*cs| is the connector's end. */
static struct mux_stream *open_download(struct mux_stream **cs)
{
    struct mux_stream *s;
    struct buf resp;
    int err = 0;

    s = edge_open("/download", 1, &err);
    assert_non_null(s);
    pump();
    *cs = conn_side.streams[conn_side.nstreams - 1];
    build_response(&resp, "200", NULL);
    assert_int_equal(mux_stream_headers(*cs, resp.pos, buf_len(&resp), 0), 0);
    buf_cleanup(&resp);
    return s;
}

/*
 * A reader that keeps up: the edge consumes each DATA frame as it arrives. Each round the connector
 * writes 128 KiB (half the initial window) and the clock moves |step_us|. Returns the stream's
 * receive window at the end of |total| bytes. The pair is registered.
 */
static uint32_t window_after_prompt_reader(uint64_t step_us, size_t total)
{
    static uint8_t chunk[128 * 1024];
    struct mux_stream *s, *cs;
    size_t sent = 0;
    int idx = edge_side.nstreams;

    edge_side.auto_consume = 1;
    s = open_download(&cs);
    memset(chunk, 'w', sizeof(chunk));
    for (int round = 0; round < 100000 && sent < total; round++) {
        size_t done = 0;

        for (int i = 0; i < 1000 && done < sizeof(chunk); i++) {
            ssize_t k = mux_stream_write(cs, chunk + done, sizeof(chunk) - done, 0);

            assert_true(k >= 0);
            done += (size_t)k;
            pump();
        }
        assert_int_equal(done, sizeof(chunk));
        sent += done;
        edge_side.data_len[idx] = 0;
        support_clock_us += step_us;
    }
    assert_int_equal(sent, total);
    return mux_stream_window_size(s);
}

/*
 * A reader with a backlog: each round the connector writes until the window stops it and, |step_us|
 * later, the edge consumes all it got in |parts| calls back to back. Returns the most bytes received
 * and not yet consumed at once (the window at its largest). The pair is registered.
 */
static size_t peak_with_late_reader(uint64_t step_us, size_t total, unsigned parts)
{
    static uint8_t big[256 * 1024];
    struct mux_stream *s, *cs;
    size_t sent = 0, got = 0, peak = 0;

    edge_side.auto_consume = 0;
    s = open_download(&cs);
    memset(big, 'w', sizeof(big));
    for (int round = 0; round < 1000 && got < total; round++) {
        for (int i = 0; i < 100 && sent < total; i++) {
            size_t want = total - sent < sizeof(big) ? total - sent : sizeof(big);
            ssize_t k = mux_stream_write(cs, big, want, 0);

            assert_true(k >= 0);
            sent += (size_t)k;
            pump();
            if (k == 0)
                break;
        }
        if (edge_side.data_len[0] > peak)
            peak = edge_side.data_len[0];
        support_clock_us += step_us;
        got += edge_side.data_len[0];
        for (unsigned k = 0; k < parts; k++) {
            size_t part = edge_side.data_len[0] / parts;

            mux_stream_consumed(s, k + 1 < parts ? part : edge_side.data_len[0] - part * (parts - 1));
        }
        edge_side.data_len[0] = 0;
        pump();
    }
    assert_int_equal(got, total);
    assert_int_equal(mux_stream_window_size(s), peak);
    return peak;
}

/* Gives the edge's mux an RTT sample of |rtt_us|. */
static void edge_rtt(uint64_t rtt_us)
{
    const uint8_t *p;
    size_t n;

    assert_int_equal(mux_ping(edge_side.m), 0);
    n = mux_pending(edge_side.m, &p, 65536);
    memcpy(wire_e2c, p, n);
    wire_e2c_len = n;
    mux_consume(edge_side.m, n);
    support_clock_us += rtt_us;
    pump();
    assert_int_equal(edge_side.rtt_us, rtt_us);
}

static void test_window_grows_for_a_reader_that_keeps_up(void **state)
{
    (void)state;
    /* Half a window every millisecond and no backlog: the window doubles up to stream_window_max
     * (the last doubling, 2 -> 4 MiB, sees 1 MiB consumed in 8 ms). */
    do_register();
    assert_int_equal(window_after_prompt_reader(1000, 16u * 1024 * 1024), limits.stream_window_max);
}

static void test_window_stays_for_a_slow_reader(void **state)
{
    (void)state;
    /* Half a window every 10 ms is not faster than the 10 ms floor (no RTT sample yet). */
    do_register();
    assert_int_equal(window_after_prompt_reader(10000, 4u * 1024 * 1024), limits.stream_window);
}

static void test_window_stays_for_a_reader_with_a_backlog(void **state)
{
    (void)state;
    /* The whole window waits 50 ms for its reader: a backlog, whatever the timing of the updates. */
    do_register();
    assert_int_equal(peak_with_late_reader(50000, 4u * 1024 * 1024, 1), limits.stream_window);
}

static void test_window_stays_for_a_reader_that_drains_a_backlog_in_parts(void **state)
{
    (void)state;
    /* A window per second, consumed in two calls back to back: the second update follows the first
     * at once, but the reader had a whole window of backlog, so the window stays. */
    do_register();
    assert_int_equal(peak_with_late_reader(1000000, 4u * 1024 * 1024, 2), limits.stream_window);
}

static void test_window_growth_allows_four_round_trips(void **state)
{
    (void)state;
    /* A 20 ms round trip allows 80 ms per half window: at 10 ms per 128 KiB the window grows while
     * half of it takes less (256 KiB -> 512 KiB -> 1 MiB -> 2 MiB, where half takes 80 ms). The
     * same reader without the RTT sample keeps 256 KiB (test_window_stays_for_a_slow_reader). */
    do_register();
    edge_rtt(20000);
    assert_int_equal(window_after_prompt_reader(10000, 8u * 1024 * 1024), 2u * 1024 * 1024);
}

static void test_window_round_trip_allowance_is_capped(void **state)
{
    (void)state;
    /* A 30 s round trip (a late PONG) would allow two minutes per half window; the allowance stops
     * at one second, so half a window every two seconds does not grow it. */
    do_register();
    edge_rtt(30000000);
    assert_int_equal(window_after_prompt_reader(2000000, 2u * 1024 * 1024), limits.stream_window);
}

static void test_window_growth_stays_within_half_the_connection_window(void **state)
{
    struct cv_limits small = limits;

    (void)state;
    /* A 2 MiB connection window leaves 1 MiB of growth for all streams: 256 KiB doubles twice
     * (+256 KiB, +512 KiB) and then gets the last 256 KiB, 1.25 MiB in all. */
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    small.connection_window = 2u * 1024 * 1024;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &small, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    do_register();
    assert_int_equal(window_after_prompt_reader(1000, 16u * 1024 * 1024), 1280u * 1024);
    /* A second stream next to it finds no room left. */
    assert_int_equal(window_after_prompt_reader(1000, 4u * 1024 * 1024), limits.stream_window);
    /* Once both are done and gone, the room is back for the next one. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(mux_stream_end(conn_side.streams[i]), 0);
        mux_stream_release(conn_side.streams[i]);
        conn_side.streams[i] = NULL;
    }
    pump();
    for (int i = 0; i < 2; i++) {
        mux_stream_release(edge_side.streams[i]);
        edge_side.streams[i] = NULL;
    }
    pump();
    assert_int_equal(window_after_prompt_reader(1000, 16u * 1024 * 1024), 1280u * 1024);
}

static void test_window_growth_off_when_max_is_the_window(void **state)
{
    struct cv_limits fixed = limits;

    (void)state;
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    fixed.stream_window_max = fixed.stream_window;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &fixed, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    do_register();
    assert_int_equal(window_after_prompt_reader(1000, 4u * 1024 * 1024), limits.stream_window);
}

static void test_connection_window_bounds_all_streams(void **state)
{
    struct cv_limits small = limits;
    struct buf resp;
    int err = 0;
    static uint8_t chunk[64 * 1024];
    size_t total = 0;

    (void)state;
    /* Rebuild the pair with a small connection window on the edge (receiver). */
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    small.connection_window = 100000;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &small, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    do_register();
    edge_side.auto_consume = 0;
    memset(chunk, 'y', sizeof(chunk));
    for (int i = 0; i < 4; i++) {
        assert_non_null(edge_open("/x", 1, &err));
    }
    pump();
    assert_int_equal(conn_side.nstreams, 4);
    for (int i = 0; i < 4; i++) {
        build_response(&resp, "200", NULL);
        assert_int_equal(mux_stream_headers(conn_side.streams[i], resp.pos, buf_len(&resp), 0), 0);
        buf_cleanup(&resp);
        assert_int_equal(mux_stream_write(conn_side.streams[i], chunk, sizeof(chunk), 0),
                         (ssize_t)sizeof(chunk));
    }
    pump();
    for (int i = 0; i < 4; i++)
        total += edge_side.data_len[i];
    assert_int_equal(total, 100000);
    /* Round-robin: every stream got some of the window. */
    for (int i = 0; i < 4; i++)
        assert_true(edge_side.data_len[i] > 0);
}

static void test_released_streams_return_unconsumed_bytes_to_the_connection(void **state)
{
    struct cv_limits small = limits;
    static uint8_t chunk[60000];
    struct buf resp;
    int err = 0;

    (void)state;
    /* The edge gets a small connection window and never consumes: each finished stream is released
     * with its bytes unconsumed. The window must come back, or the fourth stream would starve. */
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    small.connection_window = 130000;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &small, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    do_register();
    edge_side.auto_consume = 0;
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 8; i++) {
        assert_non_null(edge_open("/n", 1, &err));
        pump();
        build_response(&resp, "200", "60000");
        assert_int_equal(mux_stream_headers(conn_side.streams[i], resp.pos, buf_len(&resp), 0), 0);
        buf_cleanup(&resp);
        assert_int_equal(mux_stream_write(conn_side.streams[i], chunk, sizeof(chunk), 1),
                         (ssize_t)sizeof(chunk));
        pump();
        assert_int_equal(edge_side.data_len[i], sizeof(chunk));
        assert_int_equal(edge_side.ends[i], 1);
        mux_stream_release(edge_side.streams[i]);
        edge_side.streams[i] = NULL;
        pump();
    }
}

static void test_ping_measures_rtt_and_misses_are_counted(void **state)
{
    (void)state;
    do_register();
    support_clock_us = 5000000;
    edge_rtt(12345);
    assert_int_equal(edge_side.pongs, 1);

    /* Five unanswered pings: the sixth reports the link dead. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(mux_ping(edge_side.m), 0);
    assert_int_equal(mux_ping(edge_side.m), CV_ETIMEDOUT);
    pump();
    assert_int_equal(mux_ping(edge_side.m), 0);
}

static void test_forged_pong_does_not_fake_rtt(void **state)
{
    uint8_t frame[FRAME_HDR_LEN + 8];
    uint8_t opaque[8];

    (void)state;
    do_register();
    assert_int_equal(mux_ping(edge_side.m), 0);
    put_u64(opaque, 999);
    frame_encode_ping(frame, sizeof(frame), FRAME_PONG, opaque);
    assert_int_equal(mux_feed(edge_side.m, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    assert_int_equal(edge_side.pongs, 0);
}

static void test_pong_goes_ahead_of_queued_data(void **state)
{
    struct mux_stream *cs;
    static uint8_t chunk[64 * 1024];
    uint8_t ping[FRAME_HDR_LEN + 8];
    uint8_t opaque[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t *p;
    struct frame f;
    const char *why;
    size_t n;

    (void)state;
    do_register();
    open_download(&cs);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    mux_consume(conn_side.m, n);
    assert_int_equal(mux_stream_write(cs, chunk, sizeof(chunk), 0), (ssize_t)sizeof(chunk));
    /* Data is queued; a PING arrives before the transport pulls. */
    frame_encode_ping(ping, sizeof(ping), FRAME_PING, opaque);
    assert_int_equal(mux_feed(conn_side.m, ping, sizeof(ping)), (ssize_t)sizeof(ping));
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_true(n > sizeof(chunk));
    assert_true(frame_decode(&f, p, n, 1 << 20, &why) > 0);
    assert_int_equal(f.hdr.type, FRAME_PONG);
    assert_memory_equal(f.u.opaque, opaque, 8);
    mux_consume(conn_side.m, n);
}

/* Puts bytes the test took from the connector's output on the wire to the edge (pump feeds them). */
static void onto_wire_c2e(const uint8_t *p, size_t n)
{
    assert_true(n <= sizeof(wire_c2e) - wire_c2e_len);
    memcpy(wire_c2e + wire_c2e_len, p, n);
    wire_c2e_len += n;
}

/* Queues |len| patterned bytes on a download stream whose response head is on the wire. Returns
 * the connector's stream. */
static struct mux_stream *bulk_download(uint8_t *body, size_t len)
{
    struct mux_stream *cs;
    const uint8_t *p;
    size_t n;

    for (size_t i = 0; i < len; i++)
        body[i] = (uint8_t)(i * 13 + 5);
    open_download(&cs);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    onto_wire_c2e(p, n); /* the response head */
    mux_consume(conn_side.m, n);
    assert_int_equal(mux_stream_write(cs, body, len, 0), (ssize_t)len);
    return cs;
}

static void test_bulk_data_is_framed_in_place_one_record_per_frame(void **state)
{
    static uint8_t body[200 * 1024];
    const uint8_t *p;
    struct frame f;
    const char *why;
    size_t n;

    (void)state;
    do_register();
    bulk_download(body, sizeof(body));
    /* One DATA frame per call, header and payload straight from the queue, 16 KiB in all; the first
     * one too (the empty queue took the data after room for a header). */
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_int_equal(n, 16 * 1024);
    assert_true(frame_decode(&f, p, n, 16384, &why) > 0);
    assert_int_equal(f.hdr.type, FRAME_DATA);
    assert_int_equal(f.hdr.length, 16 * 1024 - FRAME_HDR_LEN);
    /* Asked again before it was consumed: the same frame. */
    assert_int_equal(mux_pending(conn_side.m, &p, 1 << 20), n);
    onto_wire_c2e(p, n);
    mux_consume(conn_side.m, n);
    pump();
    assert_int_equal(edge_side.data_len[0], sizeof(body));
    assert_memory_equal(edge_side.data[0], body, sizeof(body));
}

static void test_frame_in_place_not_taken_survives_a_write_and_a_reset(void **state)
{
    static uint8_t body[100 * 1024];
    static uint8_t more[8 * 1024];
    struct mux_stream *cs;
    const uint8_t *p;
    size_t n;

    (void)state;
    do_register();
    cs = bulk_download(body, sizeof(body));
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_int_equal(n, 16 * 1024);
    /* The transport did not take it; the application writes more (its queue may move), then a
     * PING arrives: the frame goes out first, then the PONG, and no byte is lost or reordered. */
    memset(more, 'm', sizeof(more));
    assert_int_equal(mux_stream_write(cs, more, sizeof(more), 0), (ssize_t)sizeof(more));
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_true(n > 16 * 1024);
    pump();
    assert_int_equal(edge_side.data_len[0], sizeof(body) + sizeof(more));
    assert_memory_equal(edge_side.data[0], body, sizeof(body));
    assert_memory_equal(edge_side.data[0] + sizeof(body), more, sizeof(more));
    /* Again, and this time the stream is reset before the transport takes the frame: it still
     * goes out ahead of the RESET, which ends the stream. */
    assert_int_equal(mux_stream_write(cs, body, sizeof(body), 0), (ssize_t)sizeof(body));
    n = mux_pending(conn_side.m, &p, 32 * 1024);
    onto_wire_c2e(p, n);
    mux_consume(conn_side.m, n);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_int_equal(n, 16 * 1024);
    mux_stream_reset(cs, CODE_CANCEL);
    pump();
    assert_int_equal(edge_side.resets[0], 1);
    n = sizeof(body) + sizeof(more);
    assert_true(edge_side.data_len[0] >= n + 2 * (16 * 1024 - FRAME_HDR_LEN));
    assert_memory_equal(edge_side.data[0] + n, body, edge_side.data_len[0] - n);
}

/* A pair whose edge announces a stream window of two frames framed in place; the first is sent. */
static struct mux_stream *two_frame_window_download(uint8_t *body, size_t len)
{
    struct cv_limits small = limits;
    struct mux_stream *cs;
    const uint8_t *p;
    size_t n;

    mux_free(edge_side.m);
    mux_free(conn_side.m);
    small.stream_window = 2 * (16384 - FRAME_HDR_LEN);
    small.stream_window_max = small.stream_window;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &small, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
    do_register();
    edge_side.auto_consume = 0; /* no credit comes back */
    open_download(&cs);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    onto_wire_c2e(p, n);
    mux_consume(conn_side.m, n);
    memset(body, 'b', len);
    assert_int_equal(mux_stream_write(cs, body, len, 0), (ssize_t)len);
    n = mux_pending(conn_side.m, &p, 1);
    assert_int_equal(n, 16 * 1024);
    onto_wire_c2e(p, n);
    mux_consume(conn_side.m, n);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_int_equal(n, 16 * 1024); /* in place: the rest of the queue and of the window */
    return cs;
}

static void test_end_after_a_frame_taken_in_part_still_goes_out(void **state)
{
    static uint8_t body[2 * (16384 - FRAME_HDR_LEN)];
    struct mux_stream *cs;
    const uint8_t *p;
    size_t n;

    (void)state;
    cs = two_frame_window_download(body, sizeof(body));
    assert_int_equal(mux_stream_end(cs), 0);
    n = mux_pending(conn_side.m, &p, 1 << 20);
    assert_int_equal(n, 16 * 1024); /* the same frame */
    onto_wire_c2e(p, 100); /* the transport takes part of it */
    mux_consume(conn_side.m, 100);
    pump();
    assert_int_equal(edge_side.data_len[0], sizeof(body));
    assert_int_equal(edge_side.ends[0], 1);
}

static void test_goaway_refuses_streams_above_last_id(void **state)
{
    int err = 0;

    (void)state;
    do_register();
    assert_non_null(edge_open("/a", 1, &err)); /* id 1, reaches the connector */
    pump();
    assert_int_equal(conn_side.opened, 1);
    assert_non_null(edge_open("/b", 1, &err)); /* id 3, still in flight */
    assert_int_equal(mux_goaway(conn_side.m, CODE_NO_ERROR, 0, "shutting down"), 0);
    pump();
    /* The connector refused id 3 on arrival, and the GOAWAY named 1 as the last stream. */
    assert_int_equal(edge_side.goaways, 1);
    assert_int_equal(edge_side.goaway_last, 1);
    assert_int_equal(edge_side.resets[1], 1);
    assert_int_equal(edge_side.reset_code[1], CODE_REFUSED_STREAM);
    assert_false(mux_stream_was_dispatched(edge_side.streams[1]));
    assert_int_equal(edge_side.resets[0], 0);
    assert_null(edge_open("/c", 1, &err));
    assert_int_equal(err, CV_EGOAWAY);
    assert_true(mux_is_draining(edge_side.m));
    assert_false(mux_is_idle(conn_side.m));
}

static void test_reset_from_edge_reaches_connector_and_frees(void **state)
{
    int err = 0;
    struct mux_stream *s;

    (void)state;
    do_register();
    s = edge_open("/r", 0, &err);
    pump();
    assert_int_equal(conn_side.opened, 1);
    mux_stream_reset(s, CODE_CANCEL);
    pump();
    assert_int_equal(conn_side.resets[0], 1);
    assert_int_equal(conn_side.reset_code[0], CODE_CANCEL);
    {
        struct mux_stats st;

        mux_stats(conn_side.m, &st);
        assert_int_equal(st.open_streams, 0);
        mux_stats(edge_side.m, &st);
        assert_int_equal(st.open_streams, 0);
    }
}

static void test_release_before_end_sends_cancel(void **state)
{
    int err = 0;
    struct mux_stream *s;

    (void)state;
    do_register();
    s = edge_open("/r", 0, &err);
    pump();
    mux_stream_release(s);
    edge_side.streams[0] = NULL;
    pump();
    assert_int_equal(conn_side.resets[0], 1);
    assert_int_equal(conn_side.reset_code[0], CODE_CANCEL);
}

static void test_concurrency_limit_refuses_extra_stream(void **state)
{
    struct cv_limits two = limits;
    int err = 0;

    (void)state;
    mux_free(conn_side.m);
    two.max_concurrent_streams = 2;
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &two, &hooks, &conn_side);
    do_register();
    assert_non_null(edge_open("/1", 1, &err));
    assert_non_null(edge_open("/2", 1, &err));
    /* The edge honours the announced limit itself. */
    assert_null(edge_open("/3", 1, &err));
    assert_int_equal(err, CV_ELIMIT);
    pump();
    assert_int_equal(conn_side.opened, 2);
}

static void test_connector_enforces_concurrency_against_a_lying_edge(void **state)
{
    struct cv_limits two = limits;
    struct buf b;
    uint8_t frame[4096];
    ssize_t n;

    (void)state;
    mux_free(conn_side.m);
    two.max_concurrent_streams = 1;
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &two, &hooks, &conn_side);
    do_register();
    build_request(&b, "/x", NULL);
    for (uint32_t id = 1; id <= 3; id += 2) {
        const uint8_t *p;
        size_t k;

        n = frame_encode_raw(frame, sizeof(frame), FRAME_HEADERS, FRAME_F_END_HEADERS, id, b.pos,
                             buf_len(&b));
        assert_true(n > 0);
        assert_int_equal(mux_feed(conn_side.m, frame, (size_t)n), n);
        k = mux_pending(conn_side.m, &p, 65536);
        mux_consume(conn_side.m, k);
        if (id == 3) {
            struct frame f;
            const char *why;

            assert_true(frame_decode(&f, p, k, 16384, &why) > 0);
            assert_int_equal(f.hdr.type, FRAME_RESET);
            assert_int_equal(f.hdr.stream_id, 3);
            assert_int_equal(f.u.code, CODE_REFUSED_STREAM);
        }
    }
    buf_cleanup(&b);
    assert_int_equal(conn_side.opened, 1);
}

static void test_large_metadata_spans_continuations(void **state)
{
    struct buf b;
    int start;
    int err = 0;
    char value[8000];
    char name[32];

    (void)state;
    do_register();
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    buf_init(&b, 1 << 20);
    start = meta_begin(&b, META_REQUEST_HTTP);
    meta_add_str(&b, ":method", "GET");
    meta_add_str(&b, ":scheme", "https");
    meta_add_str(&b, ":authority", "a.example.com");
    meta_add_str(&b, ":path", "/big-head");
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "x-big-%d", i);
        meta_add_str(&b, name, value);
    }
    assert_int_equal(meta_end(&b, (size_t)start), 0);
    assert_true(buf_len(&b) > 3 * 16384 - 9);
    assert_non_null(mux_open(edge_side.m, b.pos, buf_len(&b), 1, &stream_hooks, (void *)0, &err));
    edge_side.nstreams = 1;
    edge_side.streams[0] = NULL;
    buf_cleanup(&b);
    pump();
    assert_int_equal(conn_side.opened, 1);
    assert_string_equal(conn_side.first_header_value[0], "/big-head");
    assert_int_equal(feed_err_conn, 0);
    /* The edge side's stream is held with no record: release it through the connector's reset. */
    mux_stream_reset(conn_side.streams[0], CODE_CANCEL);
    pump();
}

static void test_too_many_continuations_is_calm_error(void **state)
{
    uint8_t frame[64];
    ssize_t n;
    uint8_t head[] = {META_REQUEST_HTTP, 0, 0};

    (void)state;
    do_register();
    n = frame_encode_raw(frame, sizeof(frame), FRAME_HEADERS, 0, 1, head, 1);
    assert_int_equal(mux_feed(conn_side.m, frame, (size_t)n), n);
    for (int i = 0; i < 8; i++) {
        n = frame_encode_raw(frame, sizeof(frame), FRAME_CONTINUATION, 0, 1, head, 1);
        assert_int_equal(mux_feed(conn_side.m, frame, (size_t)n), n);
    }
    n = frame_encode_raw(frame, sizeof(frame), FRAME_CONTINUATION, 0, 1, head, 1);
    assert_int_equal(mux_feed(conn_side.m, frame, (size_t)n), CV_ECALM);
    assert_int_equal(mux_state(conn_side.m), MUX_S_CLOSED);
}

static void test_oversized_metadata_resets_only_that_stream(void **state)
{
    struct cv_limits small = limits;
    struct buf b;
    int err = 0;
    int start;
    char value[6000];

    (void)state;
    mux_free(conn_side.m);
    small.max_metadata_size = 4096;
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &small, &hooks, &conn_side);
    do_register();
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    buf_init(&b, 1 << 20);
    start = meta_begin(&b, META_REQUEST_HTTP);
    meta_add_str(&b, ":method", "GET");
    meta_add_str(&b, ":scheme", "https");
    meta_add_str(&b, ":authority", "a.example.com");
    meta_add_str(&b, ":path", "/");
    meta_add_str(&b, "x-big", value);
    meta_end(&b, (size_t)start);
    /* The edge believes the peer allows 64 KiB only until REGISTERED; now it knows 4 KiB. */
    assert_null(mux_open(edge_side.m, b.pos, buf_len(&b), 1, &stream_hooks, NULL, &err));
    assert_int_equal(err, CV_EINVAL);
    buf_cleanup(&b);

    /* A lying edge sends it anyway: the connector resets that stream and keeps going. */
    {
        uint8_t frames[16384];
        ssize_t n;
        struct buf big;
        const uint8_t *p;
        size_t k;
        struct frame f;
        const char *why;

        buf_init(&big, 1 << 20);
        start = meta_begin(&big, META_REQUEST_HTTP);
        meta_add_str(&big, ":method", "GET");
        meta_add_str(&big, ":scheme", "https");
        meta_add_str(&big, ":authority", "a.example.com");
        meta_add_str(&big, ":path", "/");
        meta_add_str(&big, "x-big", value);
        meta_end(&big, (size_t)start);
        n = frame_encode_raw(frames, sizeof(frames), FRAME_HEADERS, FRAME_F_END_HEADERS | FRAME_F_END_STREAM,
                             1, big.pos, buf_len(&big));
        buf_cleanup(&big);
        assert_true(n > 0);
        assert_int_equal(mux_feed(conn_side.m, frames, (size_t)n), n);
        k = mux_pending(conn_side.m, &p, 65536);
        assert_true(frame_decode(&f, p, k, 16384, &why) > 0);
        assert_int_equal(f.hdr.type, FRAME_RESET);
        assert_int_equal(f.u.code, CODE_METADATA_TOO_LARGE);
        mux_consume(conn_side.m, k);
        assert_int_equal(mux_state(conn_side.m), MUX_S_OPEN);
        assert_int_equal(conn_side.opened, 0);
    }
}

static void test_data_beyond_content_length_is_stream_error(void **state)
{
    struct buf resp;
    int err = 0;

    (void)state;
    do_register();
    assert_non_null(edge_open("/cl", 0, &err)); /* request body still open: the stream stays */
    pump();
    build_response(&resp, "200", "3");
    assert_int_equal(mux_stream_headers(conn_side.streams[0], resp.pos, buf_len(&resp), 0), 0);
    buf_cleanup(&resp);
    assert_int_equal(mux_stream_write(conn_side.streams[0], (const uint8_t *)"abcdef", 6, 1), 6);
    pump();
    assert_int_equal(edge_side.resets[0], 1);
    assert_int_equal(edge_side.reset_code[0], CODE_PROTOCOL_ERROR);
    assert_int_equal(edge_side.data_len[0], 0);
    assert_int_equal(conn_side.resets[0], 1);
}

/* PROTOCOL.md §8.4 at the connector: a request body that ends short of its content-length would
 * go to the origin under the announced length, and the origin would read the next request on that
 * connection as the rest of this body. */
static void test_request_body_short_of_content_length_is_stream_error(void **state)
{
    struct buf req;
    struct mux_stream *s;
    int err = 0;

    (void)state;
    do_register();
    build_request(&req, "/short", "5");
    s = mux_open(edge_side.m, req.pos, buf_len(&req), 0, &stream_hooks, (void *)(intptr_t)0, &err);
    buf_cleanup(&req);
    assert_non_null(s);
    edge_side.streams[0] = s;
    edge_side.nstreams = 1;
    assert_int_equal(mux_stream_write(s, (const uint8_t *)"abc", 3, 1), 3);
    pump();
    assert_int_equal(conn_side.data_len[0], 3);
    assert_int_equal(conn_side.ends[0], 0);
    assert_int_equal(conn_side.resets[0], 1);
    assert_int_equal(conn_side.reset_code[0], CODE_PROTOCOL_ERROR);
    assert_int_equal(edge_side.resets[0], 1);
    /* A request block with END_STREAM and a content-length above 0 never opens a stream. */
    build_request(&req, "/none", "5");
    s = mux_open(edge_side.m, req.pos, buf_len(&req), 1, &stream_hooks, (void *)(intptr_t)1, &err);
    buf_cleanup(&req);
    assert_non_null(s);
    edge_side.streams[1] = s;
    edge_side.nstreams = 2;
    pump();
    assert_int_equal(conn_side.opened, 1);
    assert_int_equal(edge_side.resets[1], 1);
    assert_int_equal(edge_side.reset_code[1], CODE_PROTOCOL_ERROR);
    assert_int_equal(mux_state(conn_side.m), MUX_S_OPEN);
}

/* PROTOCOL.md §12: HEADERS are not flow-controlled, so 1xx responses are capped per stream (each
 * one is relayed to a visitor who may not read). */
static void test_interim_response_flood_is_stream_error(void **state)
{
    struct buf resp;
    int err = 0;

    (void)state;
    do_register();
    assert_non_null(edge_open("/interim", 1, &err));
    pump();
    build_response(&resp, "103", NULL);
    for (int i = 0; i < 17; i++) {
        assert_int_equal(mux_stream_headers(conn_side.streams[0], resp.pos, buf_len(&resp), 0), 0);
        pump();
    }
    buf_cleanup(&resp);
    assert_int_equal(edge_side.headers[0], 16);
    assert_int_equal(edge_side.resets[0], 1);
    assert_int_equal(edge_side.reset_code[0], CODE_ENHANCE_YOUR_CALM);
    assert_int_equal(mux_state(edge_side.m), MUX_S_OPEN);
}

static void test_transport_failure_marks_undispatched_streams_retryable(void **state)
{
    int err = 0;

    (void)state;
    do_register();
    assert_non_null(edge_open("/a", 1, &err));
    assert_non_null(edge_open("/b", 1, &err));
    pump();
    assert_int_equal(mux_stream_dispatched(conn_side.streams[0]), 0);
    pump();
    mux_fail(edge_side.m, CODE_INTERNAL_ERROR);
    assert_int_equal(edge_side.reset_code[0], CODE_INTERNAL_ERROR);
    assert_int_equal(edge_side.reset_code[1], CODE_REFUSED_STREAM);
    assert_int_equal(mux_state(edge_side.m), MUX_S_CLOSED);
}

static void test_reset_flood_trips_budget(void **state)
{
    uint8_t frame[FRAME_HDR_LEN + 4];
    int err = 0;
    ssize_t rv = 0;

    (void)state;
    do_register();
    assert_non_null(edge_open("/a", 1, &err)); /* id 1 exists, so RESETs on it are not idle */
    pump();
    frame_encode_reset(frame, sizeof(frame), 1, CODE_CANCEL);
    /* The first RESET ends the open stream (an ordinary outcome, free); every later one is for
     * a stream that no longer exists and draws from the budget (burst 1000). */
    int i;
    for (i = 0; i < 1100 && rv >= 0; i++)
        rv = mux_feed(edge_side.m, frame, sizeof(frame));
    assert_int_equal(rv, CV_ECALM);
    assert_int_equal(i, 1 + (int)limits.reset_burst + 1);
}

/* CVE-2019-9511 (data dribble), RELIABILITY.md §10: more than 10 WINDOW_UPDATEs per DATA frame
 * sent (after 100 free ones) is a flood. */
static void test_window_update_flood_is_calm_error(void **state)
{
    uint8_t frame[FRAME_HDR_LEN + 4];
    ssize_t rv = 0;
    int i;

    (void)state;
    do_register();
    frame_encode_window_update(frame, sizeof(frame), 0, 1);
    for (i = 0; i < 200 && rv >= 0; i++)
        rv = mux_feed(conn_side.m, frame, sizeof(frame));
    assert_int_equal(rv, CV_ECALM);
    assert_int_equal(i, 101);
}

/* RELIABILITY.md §2.4: the last odd id is used, then the edge says GOAWAY and opens no more
 * streams on the connection (the registry picks others; the link closes once it is idle). */
static void test_stream_id_space_exhaustion_drains_the_connection(void **state)
{
    int err = 0;

    (void)state;
    do_register();
    mux_test_set_next_stream_id(edge_side.m, FRAME_MAX_STREAM_ID - 2);
    assert_non_null(edge_open("/a", 1, &err));
    assert_false(mux_is_draining(edge_side.m));
    assert_non_null(edge_open("/b", 1, &err)); /* id 0x7fffffff, the last one */
    assert_true(mux_is_draining(edge_side.m));
    assert_null(edge_open("/c", 1, &err));
    assert_int_equal(err, CV_EGOAWAY);
    pump();
    assert_int_equal(conn_side.opened, 2);
    assert_int_equal(conn_side.goaways, 1);
    assert_int_equal(conn_side.goaway_code, CODE_NO_ERROR);
    assert_false(mux_is_idle(edge_side.m)); /* the two streams still run */
}

/* MadeYouReset: frames that make us reset streams (DATA on a stream the peer already ended) draw
 * from the budget too. */
static void test_stream_errors_we_send_drain_budget(void **state)
{
    struct cv_limits small = limits;
    uint8_t frame[FRAME_HDR_LEN + 1];
    int err = 0;
    ssize_t rv = 0;
    int i;

    (void)state;
    mux_free(conn_side.m);
    small.reset_burst = 4;
    small.reset_per_sec = 0;
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &small, &hooks, &conn_side);
    do_register();
    /* Each request ends with END_STREAM, so its stream is half-closed (remote) at the connector;
     * DATA on it is a stream error and costs the connector one RESET. (Later DATA on a stream
     * already reset is ignored, so the pattern needs a new stream each time.) */
    for (i = 0; i < 20 && rv >= 0; i++) {
        assert_non_null(edge_open("/a", 1, &err));
        pump();
        frame_hdr_encode(frame, 1, FRAME_DATA, 0, (uint32_t)(2 * i + 1));
        frame[FRAME_HDR_LEN] = 'x';
        rv = mux_feed(conn_side.m, frame, sizeof(frame));
    }
    assert_int_equal(rv, CV_ECALM);
    assert_int_equal(i, (int)small.reset_burst + 1);
}

/* Resets as a stream's ordinary outcome, both ways: the edge cancels (a visitor went away) and the
 * connector refuses (origin unreachable). Many times the burst, no refill: neither side trips, so
 * a tunnel serving many visitors is not cut off by their aborts or by a dead origin. */
static void test_ordinary_resets_do_not_drain_budget(void **state)
{
    struct cv_limits small = limits;
    int err = 0;

    (void)state;
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    small.reset_burst = 4;
    small.reset_per_sec = 0;
    edge_side.m = mux_new(MUX_ROLE_EDGE, &small, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &small, &hooks, &conn_side);
    do_register();
    conn_side.release_on_reset = 1;
    edge_side.release_on_reset = 1;
    for (int i = 0; i < 20; i++) {
        struct mux_stream *s = edge_open("/r", 1, &err);

        assert_non_null(s);
        pump();
        assert_int_equal(conn_side.nstreams, i + 1);
        if (i % 2 == 0) {
            mux_stream_reset(s, CODE_CANCEL);
            mux_stream_release(s);
            edge_side.streams[i] = NULL;
        } else {
            mux_stream_reset(conn_side.streams[i], CODE_ORIGIN_UNREACHABLE);
            mux_stream_release(conn_side.streams[i]);
            conn_side.streams[i] = NULL;
        }
        pump();
        assert_int_equal(mux_state(edge_side.m), MUX_S_OPEN);
        assert_int_equal(mux_state(conn_side.m), MUX_S_OPEN);
    }
    assert_int_equal(feed_err_edge, 0);
    assert_int_equal(feed_err_conn, 0);
}

static void test_empty_data_flood_is_calm_error(void **state)
{
    uint8_t frame[FRAME_HDR_LEN];
    int err = 0;
    struct buf resp;

    (void)state;
    do_register();
    assert_non_null(edge_open("/a", 1, &err));
    pump();
    build_response(&resp, "200", NULL);
    mux_stream_headers(conn_side.streams[0], resp.pos, buf_len(&resp), 0);
    buf_cleanup(&resp);
    pump();
    frame_hdr_encode(frame, 0, FRAME_DATA, 0, 1);
    assert_int_equal(mux_feed(edge_side.m, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    assert_int_equal(mux_feed(edge_side.m, frame, sizeof(frame)), CV_ECALM);
}

static void test_ping_flood_not_read_trips_control_queue(void **state)
{
    uint8_t frame[FRAME_HDR_LEN + 8];
    uint8_t opaque[8] = {0};
    ssize_t rv = 0;
    int i;

    (void)state;
    do_register();
    frame_encode_ping(frame, sizeof(frame), FRAME_PING, opaque);
    /* Nobody pulls the PONGs: the peer is not reading. */
    for (i = 0; i < 2000 && rv >= 0; i++)
        rv = mux_feed(conn_side.m, frame, sizeof(frame));
    assert_int_equal(rv, CV_ECALM);
    assert_int_equal(i, (int)limits.max_control_queued + 1);
}

static void test_byte_at_a_time_feeding_works(void **state)
{
    struct frame_register r;
    const uint8_t *p;
    size_t n;
    static uint8_t copy[4096];
    size_t have = 0;

    (void)state;
    fill_register(&r);
    assert_int_equal(mux_register(conn_side.m, &r), 0);
    n = mux_pending(conn_side.m, &p, 65536);
    memcpy(copy, p, n);
    mux_consume(conn_side.m, n);
    for (size_t i = 0; i < n; i++) {
        ssize_t used;

        have++;
        used = mux_feed(edge_side.m, copy + (i + 1 - have), have);
        assert_true(used >= 0);
        have -= (size_t)used;
    }
    assert_int_equal(have, 0);
    assert_int_equal(edge_side.register_calls, 1);
}

static void test_allocation_failures_fail_cleanly(void **state)
{
    (void)state;
    mux_free(edge_side.m);
    mux_free(conn_side.m);
    /* Run a whole exchange with the Nth allocation failing, for every N until one run passes. */
    for (unsigned long nth = 1; nth < 200; nth++) {
        struct mux *e;
        struct mux *c;
        struct frame_register r;
        struct frame_registered rd;
        struct buf b;
        int err = 0;
        long before = mem_live_count();
        int ok = 0;

        memset(&edge_side, 0, sizeof(edge_side));
        memset(&conn_side, 0, sizeof(conn_side));
        edge_side.auto_consume = conn_side.auto_consume = 1;
        edge_side.release_on_reset = conn_side.release_on_reset = 1;
        wire_e2c_len = wire_c2e_len = 0;
        feed_err_edge = feed_err_conn = 0;
        mem_fail_after(nth);
        e = mux_new(MUX_ROLE_EDGE, &limits, &hooks, &edge_side);
        c = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
        edge_side.m = e;
        conn_side.m = c;
        if (e != NULL && c != NULL) {
            fill_register(&r);
            fill_registered(&rd);
            if (mux_register(c, &r) == 0) {
                pump();
                if (edge_side.register_calls == 1 && mux_accept(e, &rd) == 0) {
                    struct mux_stream *s;

                    int start;

                    pump();
                    buf_init(&b, 4096);
                    start = meta_begin(&b, META_REQUEST_HTTP);
                    s = NULL;
                    if (start >= 0 && meta_add_str(&b, ":method", "GET") == 0 &&
                        meta_add_str(&b, ":scheme", "https") == 0 &&
                        meta_add_str(&b, ":authority", "a.example.com") == 0 &&
                        meta_add_str(&b, ":path", "/p") == 0 && meta_end(&b, (size_t)start) == 0)
                        s = mux_open(e, b.pos, buf_len(&b), 0, &stream_hooks, (void *)0, &err);
                    buf_cleanup(&b);
                    if (s != NULL) {
                        edge_side.streams[0] = s;
                        edge_side.nstreams = 1;
                        if (mux_stream_write(s, (const uint8_t *)"body", 4, 1) == 4) {
                            pump();
                            ok = conn_side.nstreams == 1 && conn_side.data_len[0] == 4;
                        }
                    }
                }
            }
        }
        mem_fail_after(0);
        release_all(&edge_side);
        release_all(&conn_side);
        mux_free(e);
        mux_free(c);
        edge_side.m = conn_side.m = NULL;
        if (mem_live_count() != before)
            fail_msg("allocation %lu failing leaked %ld allocations", nth, mem_live_count() - before);
        if (ok)
            break;
    }
    edge_side.m = mux_new(MUX_ROLE_EDGE, &limits, &hooks, &edge_side);
    conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &limits, &hooks, &conn_side);
}

/* ---- the `layer: mux` vectors of proto/vectors ------------------------------------------------ */

struct vector {
    char name[128];
    char layer[16];
    char expect[128];
    char context[32];
    char role[16];
    unsigned long stream_window;
    unsigned long max_frame;
    uint8_t *bytes;
    size_t len;
};

static int load_vector(const char *path, struct vector *v)
{
    size_t n;
    char *text = support_read_file(path, &n);
    char *line;
    char *save = NULL;
    char *copy;

    memset(v, 0, sizeof(*v));
    if (text == NULL)
        return -1;
    copy = strdup(text);
    for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (sscanf(line, "# name: %127[^\n]", v->name) == 1)
            continue;
        if (sscanf(line, "# layer: %15s", v->layer) == 1)
            continue;
        if (sscanf(line, "# expect: %127[^\n]", v->expect) == 1)
            continue;
        if (sscanf(line, "# context: %31s", v->context) == 1)
            continue;
        if (sscanf(line, "# role: %15s", v->role) == 1)
            continue;
        if (sscanf(line, "# stream-window: %lu", &v->stream_window) == 1)
            continue;
        if (sscanf(line, "# max-frame: %lu", &v->max_frame) == 1)
            continue;
    }
    free(copy);
    v->bytes = support_hex_decode(text, &v->len);
    free(text);
    return v->bytes != NULL ? 0 : -1;
}

/* Maps "error FLOW_CONTROL_ERROR stream" to a code and a scope. */
static uint32_t code_by_name(const char *name)
{
    for (uint32_t c = 0; c < 0x40; c++) {
        if (strcmp(frame_code_name(c), name) == 0)
            return c;
    }
    fail_msg("unknown code %s", name);
    return 0;
}

static void run_mux_vector(const struct vector *v)
{
    ssize_t rv;
    const uint8_t *p;
    size_t n;
    struct frame f;
    const char *why;
    char code[64] = "";
    char scope[32] = "";
    int err = 0;
    struct side *target = &conn_side;

    if (v->stream_window != 0 || v->max_frame != 0) {
        /* The receiving side announces the vector's settings. */
        struct cv_limits l = limits;

        if (v->stream_window != 0)
            l.stream_window = (uint32_t)v->stream_window;
        if (v->max_frame != 0)
            l.max_frame_size = (uint32_t)v->max_frame;
        mux_free(conn_side.m);
        conn_side.m = mux_new(MUX_ROLE_CONNECTOR, &l, &hooks, &conn_side);
    }
    if (strcmp(v->context, "preface") == 0) {
        target = &edge_side;
    } else {
        do_register();
        if (strcmp(v->context, "open-stream") == 0) {
            struct buf resp;

            assert_non_null(edge_open("/v", 0, &err));
            pump();
            assert_int_equal(conn_side.nstreams, 1);
            build_response(&resp, "200", NULL);
            assert_int_equal(mux_stream_headers(conn_side.streams[0], resp.pos, buf_len(&resp), 0), 0);
            buf_cleanup(&resp);
            pump();
        }
        if (strcmp(v->role, "edge") == 0)
            target = &edge_side;
    }
    rv = mux_feed(target->m, v->bytes, v->len);
    if (strcmp(v->expect, "ok") == 0 || strcmp(v->expect, "ignored") == 0) {
        if (rv != (ssize_t)v->len)
            fail_msg("vector %s: expected ok, mux_feed returned %zd", v->name, rv);
        return;
    }
    if (strcmp(v->expect, "close") == 0) {
        /* §4.1: not our protocol: closed without a GOAWAY. */
        if (rv >= 0)
            fail_msg("vector %s: expected a close, mux_feed returned %zd", v->name, rv);
        assert_int_equal(mux_pending(target->m, &p, 1 << 20), 0);
        assert_int_equal(mux_state(target->m), MUX_S_CLOSED);
        return;
    }
    if (sscanf(v->expect, "error %63s %31s", code, scope) != 2)
        fail_msg("vector %s: bad expect line '%s'", v->name, v->expect);
    n = mux_pending(target->m, &p, 1 << 20);
    if (strcmp(scope, "connection") == 0) {
        if (rv >= 0)
            fail_msg("vector %s: expected a connection error, mux_feed returned %zd", v->name, rv);
        assert_int_equal(mux_state(target->m), MUX_S_CLOSED);
        /* The last frame queued is the GOAWAY naming the code. */
        while (n > 0) {
            ssize_t k = frame_decode(&f, p, n, 1 << 20, &why);

            assert_true(k > 0);
            if (f.hdr.type == FRAME_GOAWAY)
                break;
            p += k;
            n -= (size_t)k;
        }
        if (n == 0)
            fail_msg("vector %s: no GOAWAY queued", v->name);
        if (f.u.goaway.code != code_by_name(code))
            fail_msg("vector %s: GOAWAY code %s, expected %s", v->name, frame_code_name(f.u.goaway.code),
                     code);
    } else {
        int found = 0;

        if (rv < 0)
            fail_msg("vector %s: expected a stream error, got connection error %zd", v->name, rv);
        while (n > 0) {
            ssize_t k = frame_decode(&f, p, n, 1 << 20, &why);

            assert_true(k > 0);
            if (f.hdr.type == FRAME_RESET && f.u.code == code_by_name(code))
                found = 1;
            p += k;
            n -= (size_t)k;
        }
        if (!found)
            fail_msg("vector %s: no RESET %s queued", v->name, code);
        assert_int_equal(mux_state(target->m), MUX_S_OPEN);
    }
}

static void test_protocol_vectors_of_the_mux_layer(void **state)
{
    const char *dir = "../../proto/vectors";
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;

    (void)state;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char path[512];
        struct vector v;
        size_t len = strlen(e->d_name);

        if (len < 5 || strcmp(e->d_name + len - 4, ".hex") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        assert_int_equal(load_vector(path, &v), 0);
        if (strcmp(v.layer, "mux") == 0) {
            /* Fresh pair for every vector. */
            teardown(NULL);
            setup(NULL);
            run_mux_vector(&v);
            count++;
        }
        free(v.bytes);
    }
    closedir(d);
    assert_true(count >= 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registration_carries_ids_settings_and_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_rejected_reports_auth_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registration_without_common_version_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_preface_closes_without_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_before_register_is_protocol_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_and_response_bodies_cross_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zero_window_blocks_writer_until_window_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_grows_for_a_reader_that_keeps_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_stays_for_a_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_stays_for_a_reader_with_a_backlog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_growth_allows_four_round_trips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_stays_for_a_reader_that_drains_a_backlog_in_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_round_trip_allowance_is_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_growth_stays_within_half_the_connection_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_growth_off_when_max_is_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_window_bounds_all_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_released_streams_return_unconsumed_bytes_to_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_measures_rtt_and_misses_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_pong_does_not_fake_rtt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pong_goes_ahead_of_queued_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_data_is_framed_in_place_one_record_per_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frame_in_place_not_taken_survives_a_write_and_a_reset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_end_after_a_frame_taken_in_part_still_goes_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_goaway_refuses_streams_above_last_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_from_edge_reaches_connector_and_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_before_end_sends_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency_limit_refuses_extra_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connector_enforces_concurrency_against_a_lying_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_metadata_spans_continuations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_continuations_is_calm_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_metadata_resets_only_that_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_beyond_content_length_is_stream_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_body_short_of_content_length_is_stream_error,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_interim_response_flood_is_stream_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transport_failure_marks_undispatched_streams_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset_flood_trips_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordinary_resets_do_not_drain_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_errors_we_send_drain_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_id_space_exhaustion_drains_the_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_window_update_flood_is_calm_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_data_flood_is_calm_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ping_flood_not_read_trips_control_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_at_a_time_feeding_works, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_failures_fail_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protocol_vectors_of_the_mux_layer, setup, teardown),
    };

    limits_init(&limits);
    log_set_level(LOG_ERROR); /* the connection errors provoked here are expected */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
