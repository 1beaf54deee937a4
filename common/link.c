/*
 * link.c - a mux over a sock; see link.h.
 *
 * Layers: above, the edge's tunnel registry or the connector's edge connection (owner hooks);
 * below, sock.c (TLS over libuv) and mux.c (framing). One loop thread.
 */
#include "link.h"

#include <string.h>

#include "err.h"
#include "log.h"
#include "mem.h"

#define LINK_F_CLOSING 0x01   /* close started: no more input is parsed */
#define LINK_F_CLOSED 0x02    /* on_closed delivered */
#define LINK_F_HEARTBEAT 0x04 /* the timer is the heartbeat (else the registration deadline) */
#define LINK_F_FAILED 0x08    /* mux_fail already called */

#define FLUSH_CHUNK (64 * 1024)

struct link {
    struct sock *sock;
    struct mux *mux;
    const struct mux_hooks *owner;
    const struct link_hooks *lh;
    void *arg;
    struct mux_hooks mh; /* ours: forwards to |owner| */
    enum link_heartbeat hb_mode;
    uint64_t hb_ms;
    unsigned misses; /* limits.heartbeat_misses, for the log */
    unsigned flags;
    int close_err;
};

static uint64_t link_now_us(void *arg)
{
    (void)arg;
    return uv_hrtime() / 1000;
}

static void fwd_register(struct mux *m, const struct frame_register *r, void *arg)
{
    struct link *l = arg;

    if (l->owner->on_register != NULL)
        l->owner->on_register(m, r, l->arg);
}

static void fwd_registered(struct mux *m, const struct frame_registered *r, void *arg)
{
    struct link *l = arg;

    if (l->owner->on_registered != NULL)
        l->owner->on_registered(m, r, l->arg);
}

static int fwd_stream_open(struct mux *m, struct mux_stream *s, const struct meta *md, int end,
                           void *arg)
{
    struct link *l = arg;

    if (l->owner->on_stream_open == NULL)
        return CODE_REFUSED_STREAM;
    return l->owner->on_stream_open(m, s, md, end, l->arg);
}

static void fwd_pong(struct mux *m, uint64_t rtt, void *arg)
{
    struct link *l = arg;

    if (l->owner->on_pong != NULL)
        l->owner->on_pong(m, rtt, l->arg);
}

static void fwd_goaway(struct mux *m, const struct frame_goaway *g, void *arg)
{
    struct link *l = arg;

    if (l->owner->on_goaway != NULL)
        l->owner->on_goaway(m, g, l->arg);
}

static void on_want_write(struct mux *m, void *arg)
{
    struct link *l = arg;

    (void)m;
    if (!(l->flags & LINK_F_CLOSED))
        sock_want_flush(l->sock);
}

static void fail_streams(struct link *l, uint32_t code)
{
    if (l->flags & LINK_F_FAILED)
        return;
    l->flags |= LINK_F_FAILED;
    mux_fail(l->mux, code);
}

/* Hands what the mux has to the sock, up to the sock's high-water mark. */
static void on_flush(struct sock *s, void *arg)
{
    struct link *l = arg;
    const uint8_t *p;
    size_t n;

    while (!sock_write_full(s)) {
        n = mux_pending(l->mux, &p, FLUSH_CHUNK);
        if (n == 0)
            break;
        if (sock_write(s, p, n) < 0)
            break;
        mux_consume(l->mux, n);
    }
    /* §6.1: after a connection error, or once a drained connection has no stream left, close. */
    if (!(l->flags & LINK_F_CLOSING) && mux_state(l->mux) == MUX_S_CLOSED) {
        n = mux_pending(l->mux, &p, FLUSH_CHUNK);
        if (n == 0) {
            l->flags |= LINK_F_CLOSING;
            fail_streams(l, CODE_INTERNAL_ERROR);
            sock_close(s);
        }
    }
}

static void on_drain(struct sock *s, void *arg)
{
    (void)arg;
    sock_want_flush(s);
}

static void on_data(struct sock *s, void *arg)
{
    struct link *l = arg;
    struct buf *in = sock_in(s);
    ssize_t used;

    if (l->flags & LINK_F_CLOSING) {
        buf_consume(in, buf_len(in));
        return;
    }
    used = mux_feed(l->mux, in->pos, buf_len(in));
    if (used < 0) {
        /* A connection error (GOAWAY queued) or a rejected registration: flush, then close. */
        l->close_err = (int)used;
        buf_consume(in, buf_len(in));
        sock_want_flush(s);
        if (mux_state(l->mux) != MUX_S_CLOSED) {
            l->flags |= LINK_F_CLOSING;
            fail_streams(l, CODE_INTERNAL_ERROR);
            sock_close(s);
        }
        return;
    }
    buf_consume(in, (size_t)used);
    sock_read_start(s);
    if (mux_state(l->mux) == MUX_S_CLOSED)
        sock_want_flush(s);
}

static void on_eof(struct sock *s, void *arg)
{
    struct link *l = arg;

    /* close_notify from the peer: it sends nothing more. Streams still open fail (§7.6). */
    if (!(l->flags & LINK_F_CLOSING)) {
        l->flags |= LINK_F_CLOSING;
        fail_streams(l, CODE_INTERNAL_ERROR);
        sock_close(s);
    }
}

static void on_error(struct sock *s, int err, void *arg)
{
    struct link *l = arg;

    (void)s;
    if (l->close_err == 0)
        l->close_err = err;
    l->flags |= LINK_F_CLOSING;
    fail_streams(l, CODE_INTERNAL_ERROR);
}

static void on_timeout(struct sock *s, void *arg)
{
    struct link *l = arg;
    int rv;

    if (l->flags & LINK_F_CLOSING)
        return;
    if (!(l->flags & LINK_F_HEARTBEAT)) {
        LOG_I("link peer=%s registration deadline expired", sock_peer(s));
        l->close_err = CV_ETIMEDOUT;
        link_abort(l, CV_ETIMEDOUT);
        return;
    }
    if (mux_is_idle(l->mux)) {
        /* Draining (a GOAWAY either way: the edge ran out of stream ids, a side is shutting down)
         * and no stream is left: nothing more can happen here; the connector dials afresh. */
        LOG_I("link peer=%s drained: closing", sock_peer(s));
        link_close(l);
        return;
    }
    if (l->hb_mode == LINK_HB_EDGE || mux_idle_us(l->mux) >= l->hb_ms * 1000) {
        rv = mux_ping(l->mux);
        if (rv == CV_ETIMEDOUT) {
            /* §10.2: heartbeat_misses PINGs unanswered: the link is dead. */
            LOG_W("link peer=%s heartbeat lost: no PONG to %u PINGs", sock_peer(s), l->misses);
            link_abort(l, CV_ETIMEDOUT);
            return;
        }
    }
    sock_set_timeout(s, l->hb_ms);
}

static void on_close(struct sock *s, void *arg)
{
    struct link *l = arg;

    (void)s;
    fail_streams(l, CODE_INTERNAL_ERROR);
    l->flags |= LINK_F_CLOSED | LINK_F_CLOSING;
    l->sock = NULL;
    if (l->lh->on_closed != NULL)
        l->lh->on_closed(l, l->close_err, l->arg);
}

static const struct sock_hooks link_sock_hooks = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_error = on_error,
    .on_flush = on_flush,
    .on_drain = on_drain,
    .on_timeout = on_timeout,
    .on_close = on_close,
};

struct link *link_new(struct sock *s, enum mux_role role, const struct cv_limits *lim,
                      const struct mux_hooks *mh, const struct link_hooks *lh, void *arg,
                      uint64_t deadline_ms, int *err)
{
    struct link *l = mem_calloc(sizeof(*l));

    if (l == NULL) {
        *err = CV_ENOMEM;
        return NULL;
    }
    l->sock = s;
    l->owner = mh;
    l->lh = lh;
    l->arg = arg;
    l->hb_ms = lim->heartbeat_ms;
    l->misses = lim->heartbeat_misses;
    l->mh.on_register = fwd_register;
    l->mh.on_registered = fwd_registered;
    l->mh.on_stream_open = fwd_stream_open;
    l->mh.on_pong = fwd_pong;
    l->mh.on_goaway = fwd_goaway;
    l->mh.want_write = on_want_write;
    l->mh.now_us = link_now_us;
    l->mux = mux_new(role, lim, &l->mh, l);
    if (l->mux == NULL) {
        mem_free(l);
        *err = CV_ENOMEM;
        return NULL;
    }
    sock_set_hooks(s, &link_sock_hooks);
    sock_set_arg(s, l);
    sock_set_flush_last(s);
    if (deadline_ms > 0)
        sock_set_timeout(s, deadline_ms);
    return l;
}

void link_free(struct link *l)
{
    if (l == NULL)
        return;
    mux_free(l->mux);
    mem_free(l);
}

struct mux *link_mux(const struct link *l)
{
    return l->mux;
}

struct sock *link_sock(const struct link *l)
{
    return l->sock;
}

void *link_arg(const struct link *l)
{
    return l->arg;
}

void link_start_heartbeat(struct link *l, enum link_heartbeat mode, uint64_t interval_ms)
{
    if (l->flags & LINK_F_CLOSING)
        return;
    l->hb_mode = mode;
    if (interval_ms > 0)
        l->hb_ms = interval_ms;
    l->flags |= LINK_F_HEARTBEAT;
    if (mode == LINK_HB_EDGE)
        mux_ping(l->mux); /* §10.2: right after registration */
    sock_set_timeout(l->sock, l->hb_ms);
}

void link_close(struct link *l)
{
    if (l->flags & LINK_F_CLOSING)
        return;
    on_flush(l->sock, l); /* hand the mux's last frames (GOAWAY) to the sock before it closes */
    if (l->flags & LINK_F_CLOSING)
        return;
    l->flags |= LINK_F_CLOSING;
    fail_streams(l, CODE_INTERNAL_ERROR);
    sock_close(l->sock);
}

void link_abort(struct link *l, int err)
{
    if (l->flags & LINK_F_CLOSED)
        return;
    if (l->close_err == 0)
        l->close_err = err;
    l->flags |= LINK_F_CLOSING;
    fail_streams(l, CODE_INTERNAL_ERROR);
    sock_abort(l->sock);
}

int link_closing(const struct link *l)
{
    return (l->flags & LINK_F_CLOSING) != 0;
}
