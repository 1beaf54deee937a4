/*
 * origin_tcp.c - TCP services (tcp://, ssh://, rdp://); see origin_tcp.h.
 *
 * Layers: above, connector.c dispatches REQUEST_TCP streams and WebSocket upgrades whose rule is a
 * TCP service here; below, sock.c (the target connection), pipe.c (the raw byte pump for
 * REQUEST_TCP), ws.c (frames for the WebSocket flavour) and mux.c (the stream). One loop thread.
 *
 * One struct otcp per stream:
 *
 *   RESOLVING -> CONNECTING (each resolved address in turn, one deadline: connectTimeout)
 *             -> OPEN (200 or 101 sent; bytes flow) -> finished (stream released)
 *
 * Stream bytes that arrive before the target is connected wait in |early| (bounded by the stream
 * window: no credit is returned until they are written). A refused connection tries the next
 * address (localhost is ::1 and 127.0.0.1); when none is left the stream is reset with
 * ORIGIN_UNREACHABLE, when the deadline passes with ORIGIN_TIMEOUT (the edge shows 502 / 504).
 *
 * Raw mode (REQUEST_TCP) is common/pipe.c: flow control both ways, END_STREAM <-> shutdown.
 *
 * WebSocket mode: visitor bytes (stream DATA, bounded by the stream window) are decoded at once;
 * payloads go to the target's socket, and the stream credit for them is returned only while that
 * socket's queue is below its mark, so a slow target stops the visitor (the bytes waiting are the
 * window's, as in pipe.c). Target bytes are framed (binary, unmasked, at most OT_WS_FRAME_OUT per
 * frame) into |ws_out| and handed to the stream as far as its queue takes them; while |ws_out| is
 * not empty the target is not read. Pongs and our Close frame are staged between data frames.
 * Close semantics follow TCP's half-close: the visitor's Close ends its direction (shutdown of the
 * target's write side, later DATA is dropped), the target's FIN becomes our Close (1000) and
 * END_STREAM. A protocol error sends Close with its status (1002, 1003, 1007, 1009), aborts the
 * target, and drops the rest. The stream is released once our END_STREAM is queued and the edge's
 * has arrived, or OT_WS_CLOSE_WAIT_MS after the Close handshake.
 */
#include "origin_tcp.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <uv.h>

#include "buf.h"
#include "connector.h"
#include "err.h"
#include "frame.h"
#include "http1.h"
#include "ingress.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "pipe.h"
#include "sock.h"
#include "version.h"
#include "wire.h"
#include "ws.h"

#define OT_MAX_ADDRS 8
#define OT_OUT_HIGH (256 * 1024)       /* target socket queue mark (as origin_http) */
#define OT_WS_FRAME_OUT (16 * 1024)    /* payload per binary frame we send */
#define OT_WS_OUT_CAP (OT_WS_FRAME_OUT + 2 * WS_CONTROL_FRAME_MAX)
#define OT_WS_SCRATCH (16 * 1024)      /* unmasked payload per decoder event */
#define OT_WS_CLOSE_WAIT_MS 5000       /* after the Close handshake: wait for the edge's end */

enum ot_state {
    OT_S_RESOLVING,  /* uv_getaddrinfo for the target's name */
    OT_S_CONNECTING, /* TCP connect to addrs[next_addr - 1] */
    OT_S_OPEN,       /* answered; bytes flow */
    OT_S_COUNT
};

static const char *const ot_state_names[OT_S_COUNT] = {"resolving", "connecting", "open"};

#define OT_F_WS 0x0001          /* WebSocket flavour (REQUEST_UPGRADE) */
#define OT_F_EDGE_END 0x0002    /* the edge ended its direction (END_STREAM) */
#define OT_F_RESOLVING 0x0004   /* uv_getaddrinfo in flight: the memory waits for its callback */
#define OT_F_TIMER 0x0008       /* |timer| is open: the memory waits for its close callback */
#define OT_F_FINISHED 0x0010    /* stream released, reference and counters returned */
#define OT_F_CLOSE_RCVD 0x0020  /* WS: the visitor's direction is over (Close, END_STREAM, error):
                                 * blocks writing visitor bytes to the target */
#define OT_F_CLOSE_OWED 0x0040  /* WS: our Close frame is to be staged (|close_code|) */
#define OT_F_CLOSE_STAGED 0x0080 /* WS: our Close frame is in |ws_out|: blocks staging anything */
#define OT_F_CLOSE_SENT 0x0100  /* WS: Close and END_STREAM are queued on the stream */
#define OT_F_TARGET_EOF 0x0200  /* WS: the target ended its direction */
#define OT_F_FAILED 0x0400      /* WS: failing the connection: the target is aborted */
#define OT_F_PONG_OWED 0x0800   /* WS: a pong for the last ping is to be staged */
#define OT_F_READ_STOPPED 0x1000 /* WS: target reading paused until |ws_out| drains */

struct otcp {
    struct connector *c;
    struct ingress_ref *ing;
    const struct ingress_rule *rule;
    struct mux_stream *stream;   /* NULL once released */
    struct sock *sock;           /* the current target connection, NULL before and after */
    enum ot_state state;
    unsigned flags;
    unsigned socks;              /* target socks created whose on_close has not run */
    uint32_t id;                 /* stream id, for logs */
    uv_timer_t timer;            /* idle limits and the WebSocket close wait */
    uint64_t deadline;           /* connect deadline, loop milliseconds */
    uint64_t last_active;        /* loop milliseconds of the last byte either way */
    uint64_t close_wait_since;   /* WS: when the Close handshake completed */
    struct sockaddr_storage addrs[OT_MAX_ADDRS];
    size_t naddrs;
    size_t next_addr;
    int last_err;
    struct buf early;            /* stream bytes that arrived before the target was connected */
    char client[64];             /* :client, NUL-terminated; "" when absent */
    char ws_key[32];             /* WS: Sec-WebSocket-Key */
    struct pipe pipe;            /* raw mode */
    struct ws_decoder dec;       /* WS: the visitor's frames */
    struct buf ws_out;           /* WS: frames staged for the stream */
    uint64_t credit;             /* WS: stream bytes decoded, not yet returned to flow control */
    uint64_t to_target;          /* WS: payload bytes written to the target */
    uint64_t to_visitor;         /* WS: target bytes framed */
    uint16_t close_code;         /* WS: our Close frame's status */
    uint8_t pong[WS_CONTROL_MAX];
    size_t pong_len;
};

static void ws_pump(struct otcp *ot);
static void arm_timer(struct otcp *ot);

static uint64_t now_ms(const struct otcp *ot)
{
    return uv_now(ot->c->loop);
}

static void touch(struct otcp *ot)
{
    ot->last_active = now_ms(ot);
}

/* ---- lifetime -------------------------------------------------------------------------------- */

static void maybe_free(struct otcp *ot)
{
    if (!(ot->flags & OT_F_FINISHED) || ot->socks > 0 ||
        (ot->flags & (OT_F_RESOLVING | OT_F_TIMER)))
        return;
    mem_free(ot);
}

static void on_timer_close(uv_handle_t *h)
{
    struct otcp *ot = h->data;

    ot->flags &= ~OT_F_TIMER;
    maybe_free(ot);
}

/*
 * The stream is over: release it, close the target (gracefully: what is queued still goes out;
 * callers that want a reset abort it first), return the ingress reference. The memory stays until
 * the timer's close callback, so callers may still read |ot| afterwards (not the stream).
 */
static void ot_finish(struct otcp *ot)
{
    struct connector *c = ot->c;

    if (ot->flags & OT_F_FINISHED)
        return;
    ot->flags |= OT_F_FINISHED;
    if (ot->stream != NULL) {
        mux_stream_release(ot->stream);
        ot->stream = NULL;
    }
    if (ot->sock != NULL)
        sock_close(ot->sock);
    if (ot->flags & OT_F_TIMER) {
        uv_timer_stop(&ot->timer);
        uv_close((uv_handle_t *)&ot->timer, on_timer_close);
    }
    buf_cleanup(&ot->early);
    buf_cleanup(&ot->ws_out);
    connector_ingress_release(c, ot->ing);
    ot->ing = NULL;
    connector_stream_done(c);
    maybe_free(ot);
}

/* Ends the stream with RESET |code| and a reset towards the target. */
static void ot_fail(struct otcp *ot, uint32_t code, const char *why)
{
    if (ot->flags & OT_F_FINISHED)
        return;
    LOG_I("tcp stream=%u %s (%s): %s", ot->id, ot->rule->service.text, ot_state_names[ot->state],
          why);
    if (ot->stream != NULL)
        mux_stream_reset(ot->stream, code);
    if (ot->sock != NULL)
        sock_abort(ot->sock);
    ot_finish(ot);
}

/* ---- timers ---------------------------------------------------------------------------------- */

/* A direction has ended (the stream is half-closed). */
static int half_closed(const struct otcp *ot)
{
    if (ot->flags & OT_F_WS)
        return (ot->flags &
                (OT_F_CLOSE_RCVD | OT_F_EDGE_END | OT_F_TARGET_EOF | OT_F_CLOSE_SENT)) != 0;
    return (ot->pipe.flags & (PIPE_F_SOCK_EOF | PIPE_F_STREAM_END)) != 0;
}

/* The idle limit in force: tcpIdleTimeout (0: none); a half-closed stream also has
 * limits.stream_idle_ms (RELIABILITY.md §5.4: a half-closed stream never lingers forever). */
static uint64_t idle_limit(const struct otcp *ot)
{
    uint64_t lim = ot->rule->origin.tcp_idle_timeout_ms;
    uint64_t half = ot->c->limits.stream_idle_ms;

    if (half > 0 && half_closed(ot) && (lim == 0 || half < lim))
        lim = half;
    return lim;
}

static int ws_closing(const struct otcp *ot)
{
    return (ot->flags & OT_F_WS) && (ot->flags & OT_F_CLOSE_RCVD) && (ot->flags & OT_F_CLOSE_SENT);
}

static void on_timer(uv_timer_t *t)
{
    struct otcp *ot = t->data;
    uint64_t now = now_ms(ot);
    uint64_t lim;

    if (ot->flags & OT_F_FINISHED)
        return;
    if (ws_closing(ot) && now - ot->close_wait_since >= OT_WS_CLOSE_WAIT_MS) {
        LOG_D("tcp stream=%u WebSocket closed; the edge did not end the stream in time", ot->id);
        ot_finish(ot); /* our END_STREAM is queued: the release resets only the edge's direction */
        return;
    }
    lim = idle_limit(ot);
    if (lim > 0 && now - ot->last_active >= lim) {
        char why[96];

        snprintf(why, sizeof(why), "no traffic for %" PRIu64 "ms%s", lim,
                 half_closed(ot) ? " (half-closed)" : "");
        ot_fail(ot, CODE_TIMEOUT, why);
        return;
    }
    arm_timer(ot);
}

/* (Re)computes the next timer expiry from the current state. Called on state changes; traffic
 * only moves |last_active|, which on_timer reads. */
static void arm_timer(struct otcp *ot)
{
    uint64_t now;
    uint64_t wait = 0;
    uint64_t lim;

    if ((ot->flags & OT_F_FINISHED) || ot->state != OT_S_OPEN)
        return;
    now = now_ms(ot);
    lim = idle_limit(ot);
    if (lim > 0) {
        uint64_t idle = now - ot->last_active;

        wait = idle >= lim ? 1 : lim - idle;
    }
    if (ws_closing(ot)) {
        uint64_t elapsed = now - ot->close_wait_since;
        uint64_t cw = elapsed >= OT_WS_CLOSE_WAIT_MS ? 1 : OT_WS_CLOSE_WAIT_MS - elapsed;

        if (wait == 0 || cw < wait)
            wait = cw;
    }
    if (wait == 0)
        uv_timer_stop(&ot->timer);
    else
        uv_timer_start(&ot->timer, on_timer, wait, 0);
}

/* ---- answers --------------------------------------------------------------------------------- */

/* The RESPONSE that tells the edge the target is connected: 200 (tcp) or 101 (WebSocket). */
static int send_response(struct otcp *ot)
{
    struct buf b;
    int start;
    int rv;

    buf_init(&b, 4096);
    start = meta_begin(&b, META_RESPONSE);
    if (start < 0) {
        buf_cleanup(&b);
        return start;
    }
    if (ot->flags & OT_F_WS) {
        char accept[HTTP1_WS_ACCEPT_LEN + 1];

        rv = http1_ws_accept(ot->ws_key, strlen(ot->ws_key), accept);
        if (rv == 0)
            rv = meta_add_str(&b, ":status", "101");
        if (rv == 0)
            rv = meta_add_str(&b, "upgrade", "websocket");
        if (rv == 0)
            rv = meta_add_str(&b, "sec-websocket-accept", accept);
    } else {
        rv = meta_add_str(&b, ":status", "200");
    }
    if (rv == 0)
        rv = meta_end(&b, (size_t)start);
    if (rv == 0)
        rv = mux_stream_headers(ot->stream, b.pos, buf_len(&b), 0);
    buf_cleanup(&b);
    return rv;
}

/* An HTTP answer for a WebSocket handshake the connector refuses (the edge normally refused it
 * already: this is the second line). Ends and releases |s|. Returns 0 or a frame_code. */
static int refuse_handshake(struct connector *c, struct mux_stream *s, int status, const char *text)
{
    struct buf b;
    char num[24];
    size_t len = strlen(text);
    int start;
    int rv;

    buf_init(&b, 4096);
    start = meta_begin(&b, META_RESPONSE);
    snprintf(num, sizeof(num), "%03d", status);
    rv = start < 0 ? start : meta_add_str(&b, ":status", num);
    if (rv == 0)
        rv = meta_add_str(&b, "content-type", "text/plain; charset=utf-8");
    if (rv == 0 && status == 426)
        rv = meta_add_str(&b, "sec-websocket-version", "13");
    snprintf(num, sizeof(num), "%zu", len);
    if (rv == 0)
        rv = meta_add_str(&b, "content-length", num);
    if (rv == 0)
        rv = meta_add_str(&b, "server", "culvert-connector/" CULVERT_VERSION);
    if (rv == 0)
        rv = meta_end(&b, (size_t)start);
    if (rv == 0)
        rv = mux_stream_headers(s, b.pos, buf_len(&b), 0);
    buf_cleanup(&b);
    if (rv == 0) {
        ssize_t k = mux_stream_write(s, (const uint8_t *)text, len, 1);

        if (k < 0 || (size_t)k != len)
            rv = CV_EFULL;
    }
    if (rv < 0)
        return CODE_INTERNAL_ERROR;
    mux_stream_release(s);
    connector_stream_done(c);
    return 0;
}

/* ---- raw mode (REQUEST_TCP) ------------------------------------------------------------------ */

static void raw_check_done(struct otcp *ot)
{
    if (!pipe_done(&ot->pipe)) {
        arm_timer(ot); /* half-closed streams have their own limit */
        return;
    }
    LOG_D("tcp stream=%u closed (%" PRIu64 " bytes to the target, %" PRIu64 " back)", ot->id,
          ot->pipe.to_sock, ot->pipe.to_stream);
    ot_finish(ot);
}

/* ---- WebSocket mode -------------------------------------------------------------------------- */

/* Returns decoded stream bytes to flow control once the target's queue is below its mark. */
static void ws_give_credit(struct otcp *ot)
{
    if (ot->credit == 0 || ot->stream == NULL)
        return;
    if (ot->sock != NULL && !(ot->flags & OT_F_FAILED) && sock_write_full(ot->sock))
        return; /* on_drain comes once the queue is down to half */
    mux_stream_consumed(ot->stream, (size_t)ot->credit);
    ot->credit = 0;
}

static void ws_check_done(struct otcp *ot)
{
    if (ot->flags & OT_F_FINISHED)
        return;
    if ((ot->flags & OT_F_CLOSE_SENT) && (ot->flags & OT_F_EDGE_END)) {
        LOG_D("tcp stream=%u WebSocket closed (%" PRIu64 " bytes to the target, %" PRIu64
              " back)",
              ot->id, ot->to_target, ot->to_visitor);
        ot_finish(ot);
        return;
    }
    if (ws_closing(ot) && ot->close_wait_since == 0)
        ot->close_wait_since = now_ms(ot) > 0 ? now_ms(ot) : 1;
    arm_timer(ot);
}

/* The visitor's direction is over: no more bytes for the target, whose write side is shut. */
static void ws_visitor_done(struct otcp *ot)
{
    if (ot->flags & OT_F_CLOSE_RCVD)
        return;
    ot->flags |= OT_F_CLOSE_RCVD;
    if (ot->sock != NULL && !(ot->flags & OT_F_FAILED))
        sock_shutdown(ot->sock); /* after the queued payload: FIN */
}

/* Fails the WebSocket connection (RFC 6455 §7.1.7): Close with |code|, no more bytes either
 * way. */
static void ws_fail(struct otcp *ot, uint16_t code, const char *why)
{
    if (ot->flags & (OT_F_FAILED | OT_F_FINISHED))
        return;
    LOG_I("tcp stream=%u WebSocket from the visitor refused: %s; closing with %u", ot->id, why,
          code);
    ot->flags |= OT_F_FAILED | OT_F_CLOSE_RCVD;
    if (ot->sock != NULL)
        sock_abort(ot->sock); /* its on_close still comes and is counted in |socks| */
    ot->sock = NULL;
    if (!(ot->flags & (OT_F_CLOSE_STAGED | OT_F_CLOSE_SENT))) {
        ot->flags |= OT_F_CLOSE_OWED;
        ot->close_code = code;
    }
    ws_give_credit(ot);
    ws_pump(ot);
}

/* Decodes visitor bytes (stream DATA, borrowed) and writes their payloads to the target. */
static void ws_feed(struct otcp *ot, const uint8_t *p, size_t n)
{
    static uint8_t scratch[OT_WS_SCRATCH];

    touch(ot);
    while (n > 0 && !(ot->flags & (OT_F_CLOSE_RCVD | OT_F_FINISHED))) {
        struct ws_event ev;
        const char *why = "?";
        ssize_t used = ws_decode(&ot->dec, p, n, scratch, sizeof(scratch), &ev, &why);

        if (used < 0) {
            ot->credit += n;
            n = 0;
            ws_fail(ot, ws_error_close_code((int)used), why);
            break;
        }
        p += used;
        n -= (size_t)used;
        ot->credit += (uint64_t)used;
        switch (ev.kind) {
        case WS_EV_FRAME:
            if (ev.frame.opcode == WS_OP_TEXT) {
                ws_fail(ot, WS_CLOSE_UNSUPPORTED, "text frame (this service carries bytes)");
            }
            break;
        case WS_EV_DATA:
            if (sock_write(ot->sock, ev.data, ev.n) < 0) {
                ot_fail(ot, CODE_ORIGIN_ERROR, "cannot write to the target");
                return;
            }
            ot->to_target += ev.n;
            break;
        case WS_EV_CONTROL:
            if (ev.frame.opcode == WS_OP_PING) {
                /* RFC 6455 §5.5.3: answering only the latest ping is allowed. */
                memcpy(ot->pong, ev.data, ev.n);
                ot->pong_len = ev.n;
                ot->flags |= OT_F_PONG_OWED;
            } else if (ev.frame.opcode == WS_OP_CLOSE) {
                ws_visitor_done(ot);
            }
            break;
        case WS_EV_NONE:
            break;
        }
    }
    /* After the Close (or an error) the rest is dropped, and credited. */
    ot->credit += n;
    if (ot->flags & OT_F_FINISHED)
        return;
    ws_give_credit(ot);
    ws_pump(ot);
}

/* Stages one frame into |ws_out|. Precondition: there is room (OT_WS_OUT_CAP bounds it). */
static void stage(struct otcp *ot, const uint8_t *hdr, size_t h, const uint8_t *p, size_t n)
{
    if (buf_append(&ot->ws_out, hdr, h) < 0 || (n > 0 && buf_append(&ot->ws_out, p, n) < 0))
        ot_fail(ot, CODE_INTERNAL_ERROR, "out of memory for WebSocket output");
}

/* Moves staged frames into the stream, then stages more (pong, target bytes, Close) while the
 * stream takes everything. A short write leaves bytes in |ws_out| and owes us on_writable. */
static void ws_pump(struct otcp *ot)
{
    uint8_t frame[WS_CONTROL_FRAME_MAX];
    int h;

    while (!(ot->flags & OT_F_FINISHED) && ot->stream != NULL) {
        struct buf *in;

        if (buf_len(&ot->ws_out) > 0) {
            ssize_t k = mux_stream_write(ot->stream, ot->ws_out.pos, buf_len(&ot->ws_out), 0);

            if (k < 0) {
                ot_fail(ot, CODE_INTERNAL_ERROR, "stream closed for sending");
                return;
            }
            buf_consume(&ot->ws_out, (size_t)k);
            if (buf_len(&ot->ws_out) > 0) {
                if (ot->sock != NULL && !(ot->flags & OT_F_READ_STOPPED)) {
                    ot->flags |= OT_F_READ_STOPPED;
                    sock_read_stop(ot->sock);
                }
                return;
            }
            buf_release(&ot->ws_out);
        }
        if (ot->flags & (OT_F_CLOSE_STAGED | OT_F_CLOSE_SENT))
            break; /* nothing may follow our Close */
        if (ot->flags & OT_F_PONG_OWED) {
            ot->flags &= ~OT_F_PONG_OWED;
            h = ws_encode_control(frame, sizeof(frame), WS_OP_PONG, ot->pong, ot->pong_len, NULL);
            if (h > 0)
                stage(ot, frame, (size_t)h, NULL, 0);
            continue;
        }
        in = ot->sock != NULL && !(ot->flags & OT_F_FAILED) ? sock_in(ot->sock) : NULL;
        if (in != NULL && buf_len(in) > 0) {
            size_t n = buf_len(in) < OT_WS_FRAME_OUT ? buf_len(in) : OT_WS_FRAME_OUT;

            h = ws_encode_header(frame, WS_OP_BINARY, 1, n, NULL);
            stage(ot, frame, (size_t)h, in->pos, n);
            buf_consume(in, n);
            ot->to_visitor += n;
            touch(ot);
            continue;
        }
        if ((ot->flags & OT_F_TARGET_EOF) && !(ot->flags & OT_F_CLOSE_OWED)) {
            ot->flags |= OT_F_CLOSE_OWED;
            ot->close_code = WS_CLOSE_NORMAL;
        }
        if (ot->flags & OT_F_CLOSE_OWED) {
            h = ws_encode_close(frame, sizeof(frame), ot->close_code, NULL, 0, NULL);
            if (h > 0)
                stage(ot, frame, (size_t)h, NULL, 0);
            ot->flags |= OT_F_CLOSE_STAGED;
            continue;
        }
        break;
    }
    if (ot->flags & OT_F_FINISHED)
        return;
    if ((ot->flags & OT_F_CLOSE_STAGED) && !(ot->flags & OT_F_CLOSE_SENT) &&
        buf_len(&ot->ws_out) == 0 && ot->stream != NULL) {
        ot->flags |= OT_F_CLOSE_SENT;
        mux_stream_end(ot->stream);
    }
    if ((ot->flags & OT_F_READ_STOPPED) && buf_len(&ot->ws_out) == 0 && ot->sock != NULL) {
        ot->flags &= ~OT_F_READ_STOPPED;
        sock_read_start(ot->sock);
    }
    ws_check_done(ot);
}

/* The edge ended the visitor's direction. At a frame boundary that is a half-close without a
 * Close frame (the visitor shut its socket); inside a frame the bytes were cut: reset. */
static void ws_edge_end(struct otcp *ot)
{
    if (!(ot->flags & OT_F_CLOSE_RCVD) && !ws_decoder_at_boundary(&ot->dec)) {
        ot_fail(ot, CODE_CANCEL, "the visitor's WebSocket ended inside a frame");
        return;
    }
    ws_visitor_done(ot);
    ws_pump(ot);
}

/* ---- target connection ----------------------------------------------------------------------- */

static void try_next_addr(struct otcp *ot);

/* The target is connected: PROXY header, answer, early bytes, then the bytes flow. */
static void ot_open(struct otcp *ot)
{
    const struct sockaddr *dst = (const struct sockaddr *)&ot->addrs[ot->next_addr - 1];
    size_t early = buf_len(&ot->early);

    ot->state = OT_S_OPEN;
    sock_set_timeout(ot->sock, 0);
    touch(ot);
    if (ot->rule->origin.proxy_protocol == ORIGIN_PROXY_PROTOCOL_V2) {
        uint8_t hdr[ORIGIN_TCP_PROXY_V2_MAX];
        ssize_t n = origin_tcp_proxy_v2(hdr, sizeof(hdr), ot->client[0] != '\0' ? ot->client : NULL,
                                        strlen(ot->client), dst);

        if (n < 0 || sock_write(ot->sock, hdr, (size_t)n) < 0) {
            ot_fail(ot, CODE_INTERNAL_ERROR, "cannot write the PROXY protocol header");
            return;
        }
    }
    /* PROTOCOL.md §7.7: connected is "dispatched" for a tcp stream; then §8.6's answer. */
    mux_stream_dispatched(ot->stream);
    if (send_response(ot) < 0) {
        ot_fail(ot, CODE_INTERNAL_ERROR, "cannot send the answer");
        return;
    }
    LOG_D("tcp stream=%u connected to %s (%s)", ot->id, ot->rule->service.text,
          sock_peer(ot->sock));
    if (ot->flags & OT_F_WS) {
        ws_decoder_init(&ot->dec, WS_ROLE_SERVER, ORIGIN_TCP_WS_MAX_PAYLOAD);
        buf_init(&ot->ws_out, OT_WS_OUT_CAP);
        if (early > 0) {
            struct buf tmp = ot->early;

            buf_init(&ot->early, 0);
            ws_feed(ot, tmp.pos, buf_len(&tmp));
            buf_cleanup(&tmp);
        }
        if (ot->flags & OT_F_FINISHED)
            return;
        if (ot->flags & OT_F_EDGE_END)
            ws_edge_end(ot);
        else
            ws_pump(ot);
        return;
    }
    if (early > 0 && sock_write(ot->sock, ot->early.pos, early) < 0) {
        ot_fail(ot, CODE_ORIGIN_ERROR, "cannot write to the target");
        return;
    }
    buf_cleanup(&ot->early);
    pipe_start(&ot->pipe, ot->sock, ot->stream);
    if (early > 0) {
        /* Those bytes were never credited: the pipe returns them with its own. */
        ot->pipe.credit += early;
        pipe_on_sock_drain(&ot->pipe);
    }
    if (ot->flags & OT_F_EDGE_END)
        pipe_on_stream_end(&ot->pipe);
    raw_check_done(ot);
}

static void t_on_connect(struct sock *s, int status, void *arg)
{
    struct otcp *ot = arg;

    if ((ot->flags & OT_F_FINISHED) || s != ot->sock) {
        if (status == 0)
            sock_abort(s);
        return;
    }
    if (status < 0) {
        ot->sock = NULL; /* on_close follows */
        ot->last_err = status;
        if (status == CV_ETIMEDOUT) {
            ot_fail(ot, CODE_ORIGIN_TIMEOUT, "connect timed out");
            return;
        }
        LOG_D("tcp stream=%u cannot connect to %s: %s", ot->id, sock_peer(s), cv_strerror(status));
        try_next_addr(ot);
        return;
    }
    ot_open(ot);
}

static void t_on_data(struct sock *s, void *arg)
{
    struct otcp *ot = arg;

    (void)s;
    if (ot->state != OT_S_OPEN || (ot->flags & OT_F_FINISHED))
        return;
    touch(ot);
    if (ot->flags & OT_F_WS) {
        ws_pump(ot);
        return;
    }
    pipe_on_sock_data(&ot->pipe);
}

static void t_on_eof(struct sock *s, void *arg)
{
    struct otcp *ot = arg;

    (void)s;
    if (ot->flags & OT_F_FINISHED)
        return;
    if (ot->flags & OT_F_WS) {
        ot->flags |= OT_F_TARGET_EOF;
        ws_pump(ot);
        return;
    }
    pipe_on_sock_eof(&ot->pipe);
    raw_check_done(ot);
}

static void t_on_drain(struct sock *s, void *arg)
{
    struct otcp *ot = arg;

    (void)s;
    if (ot->flags & OT_F_FINISHED)
        return;
    if (ot->flags & OT_F_WS)
        ws_give_credit(ot);
    else
        pipe_on_sock_drain(&ot->pipe);
}

static void t_on_error(struct sock *s, int err, void *arg)
{
    struct otcp *ot = arg;
    char why[300];

    if (ot->flags & OT_F_FINISHED)
        return;
    /* Truncation must show (RELIABILITY.md 7): a reset by the target is a reset of the stream. */
    snprintf(why, sizeof(why), "target connection failed: %s", cv_strerror(err));
    (void)s;
    ot_fail(ot, CODE_ORIGIN_ERROR, why);
}

static void t_on_close(struct sock *s, void *arg)
{
    struct otcp *ot = arg;

    ot->socks--;
    if (ot->sock == s) {
        ot->sock = NULL;
        if (!(ot->flags & OT_F_FINISHED))
            ot_fail(ot, CODE_ORIGIN_ERROR, "target connection closed");
    }
    maybe_free(ot);
}

static const struct sock_hooks target_hooks = {
    .on_connect = t_on_connect,
    .on_data = t_on_data,
    .on_eof = t_on_eof,
    .on_error = t_on_error,
    .on_drain = t_on_drain,
    .on_close = t_on_close,
};

static void try_next_addr(struct otcp *ot)
{
    const struct origin_request *orq = &ot->rule->origin;

    while (ot->next_addr < ot->naddrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&ot->addrs[ot->next_addr++];
        uint64_t now = now_ms(ot);
        struct sock_opts o;
        struct sock *s;
        int err = 0;

        if (now >= ot->deadline) {
            ot_fail(ot, CODE_ORIGIN_TIMEOUT, "connect timed out");
            return;
        }
        memset(&o, 0, sizeof(o));
        o.out_high = OT_OUT_HIGH;
        o.nodelay = 1;
        if (orq->tcp_keepalive_ms > 0)
            o.keepalive_s = orq->tcp_keepalive_ms >= 1000 ? (unsigned)(orq->tcp_keepalive_ms / 1000)
                                                           : 1;
        s = sock_connect(ot->c->sl, sa, &o, &target_hooks, ot, &err);
        if (s == NULL) {
            ot->last_err = err;
            continue;
        }
        ot->socks++;
        ot->sock = s;
        ot->state = OT_S_CONNECTING;
        sock_set_timeout(s, ot->deadline - now);
        return;
    }
    {
        char why[200];

        snprintf(why, sizeof(why), "cannot connect: %s",
                 ot->last_err != 0 ? cv_strerror(ot->last_err) : "no address");
        ot_fail(ot, CODE_ORIGIN_UNREACHABLE, why);
    }
}

static void on_resolved(int status, struct addrinfo *res, void *arg)
{
    struct otcp *ot = arg;
    unsigned refused = 0;

    ot->flags &= ~OT_F_RESOLVING;
    if (ot->flags & OT_F_FINISHED) {
        maybe_free(ot);
        return;
    }
    if (status < 0 || res == NULL) {
        char why[HOSTNAME_MAX + 128];

        snprintf(why, sizeof(why), "cannot resolve %s: %s", ot->rule->service.host,
                 uv_strerror(status));
        ot_fail(ot, CODE_ORIGIN_UNREACHABLE, why);
        return;
    }
    for (const struct addrinfo *ai = res; ai != NULL && ot->naddrs < OT_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(ot->addrs[0]))
            continue;
        /* RELIABILITY.md 5.1: no way to link-local or metadata addresses through a name. */
        if (!ot->rule->origin.allow_link_local && ingress_addr_link_local(ai->ai_addr)) {
            refused++;
            continue;
        }
        memcpy(&ot->addrs[ot->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    if (ot->naddrs == 0 && refused > 0) {
        char why[HOSTNAME_MAX + 160];

        snprintf(why, sizeof(why),
                 "%s resolves only to link-local or metadata addresses, refused "
                 "(originRequest.allowLinkLocal)",
                 ot->rule->service.host);
        ot_fail(ot, CODE_ORIGIN_UNREACHABLE, why);
        return;
    }
    try_next_addr(ot);
}

/* ---- stream hooks ---------------------------------------------------------------------------- */

static void st_on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    struct otcp *ot = sdata;

    (void)s;
    if (ot->state != OT_S_OPEN) {
        /* Bounded by the stream window: no credit is returned until these are written. */
        if (buf_append(&ot->early, p, n) < 0)
            ot_fail(ot, CODE_INTERNAL_ERROR, "no room for early bytes");
        return;
    }
    if (ot->flags & OT_F_WS) {
        ws_feed(ot, p, n);
        return;
    }
    touch(ot);
    pipe_on_stream_data(&ot->pipe, p, n);
}

static void st_on_end(struct mux_stream *s, void *sdata)
{
    struct otcp *ot = sdata;

    (void)s;
    ot->flags |= OT_F_EDGE_END;
    if (ot->state != OT_S_OPEN)
        return; /* applied once connected */
    if (ot->flags & OT_F_WS) {
        ws_edge_end(ot);
        return;
    }
    pipe_on_stream_end(&ot->pipe);
    raw_check_done(ot);
}

static void st_on_writable(struct mux_stream *s, void *sdata)
{
    struct otcp *ot = sdata;

    (void)s;
    if (ot->state != OT_S_OPEN)
        return;
    if (ot->flags & OT_F_WS) {
        ws_pump(ot);
        return;
    }
    pipe_on_stream_writable(&ot->pipe);
    raw_check_done(ot);
}

static void st_on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    struct otcp *ot = sdata;

    (void)s;
    LOG_D("tcp stream=%u reset by the edge: %s", ot->id, frame_code_name(code));
    if (ot->sock != NULL)
        sock_abort(ot->sock); /* the visitor went away: the target sees it as a reset too */
    ot_finish(ot);
}

static const struct mux_stream_hooks stream_hooks = {
    .on_data = st_on_data,
    .on_end = st_on_end,
    .on_reset = st_on_reset,
    .on_writable = st_on_writable,
};

/* ---- start ----------------------------------------------------------------------------------- */

static int field_is(const struct meta_field *f, const char *value)
{
    return f != NULL && f->value_len == strlen(value) &&
           strncasecmp(f->value, value, f->value_len) == 0;
}

/* RFC 6455 §4.2.1 for the connector's own end of a WebSocket: returns 0, or the HTTP status to
 * answer with and a text. */
static int check_handshake(const struct meta *md, const char **text)
{
    const struct meta_field *method = meta_get(md, ":method");
    const struct meta_field *key = meta_get(md, "sec-websocket-key");
    const struct meta_field *version = meta_get(md, "sec-websocket-version");
    const struct meta_field *upgrade = meta_get(md, "upgrade");

    if (method == NULL || method->value_len != 3 || memcmp(method->value, "GET", 3) != 0) {
        *text = "A WebSocket handshake must use GET.\n";
        return 400;
    }
    if (!field_is(upgrade, "websocket")) {
        *text = "This hostname serves a TCP service: connect with a WebSocket or with "
                "`culvert-connector access tcp`.\n";
        return 400;
    }
    if (key == NULL || !http1_ws_key_valid(key->value, key->value_len)) {
        *text = "Sec-WebSocket-Key is missing or invalid.\n";
        return 400;
    }
    if (!field_is(version, "13")) {
        *text = "Only WebSocket version 13 is supported.\n";
        return 426;
    }
    return 0;
}

int origin_tcp_start(struct connector *c, struct ingress_ref *ing, const struct ingress_rule *rule,
                     struct mux_stream *s, const struct meta *md, int end)
{
    const struct ingress_service *svc = &rule->service;
    const struct meta_field *client = meta_get(md, ":client");
    struct otcp *ot;
    char port[8];
    int rv;

    if (svc->kind != INGRESS_SVC_TCP ||
        (md->type != META_REQUEST_TCP && md->type != META_REQUEST_UPGRADE))
        return CODE_NO_SERVICE;
    if (md->type == META_REQUEST_UPGRADE) {
        const char *text = NULL;
        int status = check_handshake(md, &text);

        if (status != 0) {
            LOG_I("tcp stream=%u %s: WebSocket handshake refused with %d", mux_stream_id(s),
                  svc->text, status);
            rv = refuse_handshake(c, s, status, text);
            if (rv == 0)
                connector_ingress_release(c, ing);
            return rv;
        }
    }
    ot = mem_calloc(sizeof(*ot));
    if (ot == NULL)
        return CODE_REFUSED_STREAM;
    ot->c = c;
    ot->rule = rule;
    ot->stream = s;
    ot->id = mux_stream_id(s);
    ot->state = OT_S_RESOLVING;
    /* Early bytes are bounded by the stream window (no credit until they are written). */
    buf_init(&ot->early, (size_t)c->limits.stream_window + 64 * 1024);
    buf_init(&ot->ws_out, OT_WS_OUT_CAP);
    if (client != NULL && client->value_len < sizeof(ot->client)) {
        memcpy(ot->client, client->value, client->value_len);
        ot->client[client->value_len] = '\0';
    }
    if (md->type == META_REQUEST_UPGRADE) {
        const struct meta_field *key = meta_get(md, "sec-websocket-key");

        memcpy(ot->ws_key, key->value, key->value_len); /* 24 bytes: checked above */
        ot->ws_key[key->value_len] = '\0';
        ot->flags |= OT_F_WS;
    }
    if (end)
        ot->flags |= OT_F_EDGE_END;
    uv_timer_init(c->loop, &ot->timer);
    ot->timer.data = ot;
    ot->flags |= OT_F_TIMER;
    ot->ing = ing; /* the dispatcher's reference is ours now */
    ot->deadline = now_ms(ot) + rule->origin.connect_timeout_ms;
    mux_stream_set_hooks(s, &stream_hooks, ot);
    /* RELIABILITY.md 5.1: the destination is the rule's, never the request's. */
    if (svc->host_kind == HOSTNAME_IPV4 &&
        uv_ip4_addr(svc->host, svc->port, (struct sockaddr_in *)&ot->addrs[0]) == 0) {
        ot->naddrs = 1;
        try_next_addr(ot);
        return 0;
    }
    if (svc->host_kind == HOSTNAME_IPV6 &&
        uv_ip6_addr(svc->host, svc->port, (struct sockaddr_in6 *)&ot->addrs[0]) == 0) {
        ot->naddrs = 1;
        try_next_addr(ot);
        return 0;
    }
    snprintf(port, sizeof(port), "%u", svc->port);
    rv = sock_resolve(c->sl, svc->host, port, on_resolved, ot);
    if (rv < 0) {
        ot_fail(ot, CODE_ORIGIN_UNREACHABLE, "cannot resolve the target's name");
        return 0; /* the stream is ours: it was reset */
    }
    ot->flags |= OT_F_RESOLVING;
    return 0;
}

/* ---- PROXY protocol v2 ----------------------------------------------------------------------- */

int origin_tcp_parse_client(const char *text, size_t len, struct sockaddr_storage *ss)
{
    char host[64];
    const char *port;
    size_t hlen;
    unsigned long pv = 0;
    size_t plen;

    memset(ss, 0, sizeof(*ss));
    if (len == 0 || len >= sizeof(host))
        return CV_EINVAL;
    if (text[0] == '[') {
        const char *close = memchr(text, ']', len);

        if (close == NULL || (size_t)(close - text) + 1 >= len || close[1] != ':')
            return CV_EINVAL;
        hlen = (size_t)(close - text) - 1;
        memcpy(host, text + 1, hlen);
        port = close + 2;
    } else {
        const char *colon = NULL;

        for (size_t i = 0; i < len; i++) {
            if (text[i] == ':')
                colon = text + i;
        }
        if (colon == NULL)
            return CV_EINVAL;
        hlen = (size_t)(colon - text);
        memcpy(host, text, hlen);
        port = colon + 1;
    }
    host[hlen] = '\0';
    plen = len - (size_t)(port - text);
    if (plen == 0 || plen > 5)
        return CV_EINVAL;
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9')
            return CV_EINVAL;
        pv = pv * 10 + (unsigned long)(port[i] - '0');
    }
    if (pv > 65535)
        return CV_EINVAL;
    if (text[0] == '[')
        return uv_ip6_addr(host, (int)pv, (struct sockaddr_in6 *)ss) == 0 ? 0 : CV_EINVAL;
    return uv_ip4_addr(host, (int)pv, (struct sockaddr_in *)ss) == 0 ? 0 : CV_EINVAL;
}

/* The 16 bytes of an IPv6 address for |sa|; IPv4 becomes IPv4-mapped (::ffff:a.b.c.d). */
static void addr16(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return;
    }
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
}

static uint16_t port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

ssize_t origin_tcp_proxy_v2(uint8_t *out, size_t cap, const char *client, size_t client_len,
                            const struct sockaddr *dst)
{
    static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                    0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    struct sockaddr_storage src;
    const struct sockaddr *sa = (const struct sockaddr *)&src;
    size_t len;

    if (client == NULL || origin_tcp_parse_client(client, client_len, &src) < 0) {
        /* LOCAL: the connection is the proxy's own; the receiver uses the real addresses. */
        if (cap < 16)
            return CV_EFULL;
        memcpy(out, sig, 12);
        out[12] = 0x20; /* version 2, LOCAL */
        out[13] = 0x00; /* UNSPEC */
        put_u16(out + 14, 0);
        return 16;
    }
    if (dst == NULL || (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
        return CV_EINVAL;
    len = src.ss_family == AF_INET && dst->sa_family == AF_INET ? 12 : 36;
    if (cap < 16 + len)
        return CV_EFULL;
    memcpy(out, sig, 12);
    out[12] = 0x21; /* version 2, PROXY */
    put_u16(out + 14, (uint16_t)len);
    if (len == 12) {
        out[13] = 0x11; /* TCP over IPv4 */
        memcpy(out + 16, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        memcpy(out + 20, &((const struct sockaddr_in *)(const void *)dst)->sin_addr, 4);
        put_u16(out + 24, port_of(sa));
        put_u16(out + 26, port_of(dst));
    } else {
        out[13] = 0x21; /* TCP over IPv6 */
        addr16(sa, out + 16);
        addr16(dst, out + 32);
        put_u16(out + 48, port_of(sa));
        put_u16(out + 50, port_of(dst));
    }
    return (ssize_t)(16 + len);
}
