/*
 * mux.h - one tunnel connection's multiplexer (proto/PROTOCOL.md): preface, registration, streams,
 * flow control, PING/PONG, GOAWAY, budgets.
 *
 * Sans-I/O: mux_feed() takes decrypted bytes from the peer and reports events through hooks;
 * mux_pending()/mux_consume() hand out the bytes to send. The mux never sees a socket, a timer or the
 * loop, so it is unit-tested by scripting the peer's bytes. It runs on the loop thread only.
 *
 * Streams. The edge opens streams (mux_open); the connector receives them (hook on_stream_open).
 * The application holds each stream it has been given until it calls mux_stream_release(); hooks
 * for a stream are only called while it is held. After release the mux finishes what the stream
 * still owes the peer (queued data and END_STREAM, or a RESET) and frees it.
 *
 * Flow control. Received DATA is passed to on_data() without copying; the application calls
 * mux_stream_consumed() when it has forwarded the bytes (its own output below its mark), and only then
 * is credit returned to the peer (PROTOCOL.md §9.4). Outbound data is queued per stream
 * (mux_stream_write, up to limits->stream_send_buffer) and framed at mux_pending() time, round-robin
 * across streams that have data and credit, after all control frames.
 *
 * Re-entrancy: hooks are called from mux_feed() and mux_fail(), and on_writable also from
 * mux_pending() (after framing, when a stream's queue has room again). Functions the application calls
 * (write, reset, release, open) never call hooks synchronously, except want_write. Hooks must not call
 * mux_free(); they may release, reset and write to any stream.
 */
#ifndef CV_MUX_H
#define CV_MUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "limits.h"
#include "meta.h"

struct mux;
struct mux_stream;

enum mux_role { MUX_ROLE_EDGE, MUX_ROLE_CONNECTOR };

enum mux_state {
    MUX_S_PREFACE,     /* edge: waiting for the preface and REGISTER */
    MUX_S_REGISTERING, /* connector: REGISTER sent, waiting for REGISTERED; edge: REGISTER being judged */
    MUX_S_OPEN,        /* registered: streams may flow */
    MUX_S_CLOSED,      /* connection error or GOAWAY exchange done: input is no longer parsed */
    MUX_S_COUNT
};

/* Events of one stream, delivered to the object that owns it (|sdata|). */
struct mux_stream_hooks {
    /* A metadata block arrived: a response (interim 1xx or final) or trailers. */
    void (*on_headers)(struct mux_stream *s, const struct meta *md, int end_stream, void *sdata);
    /* Body bytes, borrowed for the call. Give credit back later with mux_stream_consumed(). */
    void (*on_data)(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata);
    /* The peer ended its direction (END_STREAM). */
    void (*on_end)(struct mux_stream *s, void *sdata);
    /* The stream died: RESET from the peer (|code|), a stream error we detected, or the connection
     * failed (CODE_INTERNAL_ERROR) or refused it (CODE_REFUSED_STREAM, safe to retry). No further hooks
     * for this stream; the application still releases it. mux_stream_was_dispatched() tells whether
     * the connector had sent DISPATCHED (PROTOCOL.md §7.7). */
    void (*on_reset)(struct mux_stream *s, uint32_t code, void *sdata);
    /* Room in the stream's send queue again (after mux_stream_write accepted less than asked). */
    void (*on_writable)(struct mux_stream *s, void *sdata);
    /* Edge: the connector handed this stream's request to its origin. */
    void (*on_dispatched)(struct mux_stream *s, void *sdata);
};

/* Events of the connection, delivered with the |arg| given to mux_new(). */
struct mux_hooks {
    /* Edge: a REGISTER arrived. The hook answers with mux_accept() or mux_reject() (at once, or later
     * from the loop). Borrowed |r| is valid during the call only. */
    void (*on_register)(struct mux *m, const struct frame_register *r, void *arg);
    /* Connector: the edge accepted the registration. */
    void (*on_registered)(struct mux *m, const struct frame_registered *r, void *arg);
    /* Connector: the edge opened stream |s| with request block |md|; |end_stream| when it has no body.
     * Return 0 to hold the stream (the application now owns a reference and attaches its handler with
     * mux_stream_set_hooks), or a frame_code to refuse it with RESET (the mux frees it). */
    int (*on_stream_open)(struct mux *m, struct mux_stream *s, const struct meta *md, int end_stream,
                          void *arg);
    /* A PONG answered our PING after |rtt_us| microseconds. */
    void (*on_pong)(struct mux *m, uint64_t rtt_us, void *arg);
    /* The peer sent GOAWAY. Streams above |last_id| were already reset with REFUSED_STREAM. */
    void (*on_goaway)(struct mux *m, const struct frame_goaway *g, void *arg);
    /* Output became pending (the transport should schedule a flush). Called from any mux function. */
    void (*want_write)(struct mux *m, void *arg);
    /* Monotonic clock in microseconds (PING RTT, budgets). */
    uint64_t (*now_us)(void *arg);
};

/* Statistics for logs, admin API and tests. */
struct mux_stats {
    uint32_t open_streams;
    uint64_t frames_in, frames_out;
    uint64_t bytes_in, bytes_out; /* DATA payload */
    uint64_t resets_in, resets_out;
    int64_t conn_send_window;
    int64_t conn_recv_window;
    uint64_t queued_bytes; /* bytes held in stream send queues and the output buffer */
    uint64_t rtt_us;       /* last sample; 0 before the first PONG */
    uint32_t pings_outstanding;
};

/*
 * Returns a new mux for |role|, with limits copied from |limits| (which it does not keep), or NULL.
 * |arg| is passed to connection-level hooks.
 */
struct mux *mux_new(enum mux_role role, const struct cv_limits *limits, const struct mux_hooks *hooks,
                    void *arg);
/* Frees |m| and every stream it still has. No hooks are called. */
void mux_free(struct mux *m);

enum mux_state mux_state(const struct mux *m);
const char *mux_state_name(enum mux_state st);
void mux_stats(const struct mux *m, struct mux_stats *st);
/* Cheap counters for per-request decisions (mux_stats walks every stream). */
uint32_t mux_open_streams(const struct mux *m);
int64_t mux_send_window(const struct mux *m);
/* Our settings as announced in REGISTER/REGISTERED (from the limits). */
void mux_local_settings(const struct mux *m, struct frame_settings *s);
/* The peer's settings (valid once registered). */
const struct frame_settings *mux_peer_settings(const struct mux *m);

/*
 * Feeds |n| bytes received from the peer. Returns the number of bytes used (the caller keeps the
 * rest and feeds them again with more; it must be able to hold a whole frame, 9 + max_frame_size),
 * or a negative code on a connection error: the mux has queued a GOAWAY (flush it, then close) and
 * parses nothing more. CV_EAUTH / CV_EVERSION / CV_ELIMIT when the edge rejected our registration,
 * CV_ECLOSED after a GOAWAY exchange.
 */
ssize_t mux_feed(struct mux *m, const uint8_t *p, size_t n);

/*
 * Output. mux_pending() returns the number of bytes ready at *|p| (control frames first, then DATA
 * framed from stream queues within credit, up to about |hint| bytes in all); mux_consume() drops |n|
 * of them once the transport has taken them. Pointers stay valid until the next mux call. A bulk
 * DATA frame (4 KiB to 16 KiB with its header, when nothing else is queued) comes alone, straight
 * from its stream's send queue: one TLS record, no copy. Once mux_state() is MUX_S_CLOSED the
 * transport flushes what is pending and closes the connection.
 */
size_t mux_pending(struct mux *m, const uint8_t **p, size_t hint);
void mux_consume(struct mux *m, size_t n);

/* Connector: queues the preface and REGISTER (settings are filled in from the limits). */
int mux_register(struct mux *m, const struct frame_register *r);
/* Edge: accepts the pending registration with REGISTERED (settings filled in). */
int mux_accept(struct mux *m, const struct frame_registered *r);
/* Edge: rejects the registration with GOAWAY(|code|, retry, reason); the transport closes after flush. */
int mux_reject(struct mux *m, uint32_t code, uint32_t retry_after_ms, const char *reason);

/* Queues a PING (its send time is remembered for the RTT of the matching PONG). Returns 0, or
 * CV_ETIMEDOUT when limits->heartbeat_misses PINGs are already unanswered: the link is dead and the
 * caller closes it (PROTOCOL.md §10.2). */
int mux_ping(struct mux *m);
/* Microseconds since anything was last received (for the connector's silence-triggered PING). */
uint64_t mux_idle_us(const struct mux *m);
/* Queues GOAWAY (|code|, retry hint, reason) and stops accepting (connector) or opening (edge)
 * streams. With CODE_NO_ERROR existing streams continue. Returns 0. */
int mux_goaway(struct mux *m, uint32_t code, uint32_t retry_after_ms, const char *reason);
/* Tests only: the edge's next stream id (reaching the end of the id space without 2^30 streams). */
void mux_test_set_next_stream_id(struct mux *m, uint32_t id);
/* 1 once either side sent GOAWAY: no new streams. */
int mux_is_draining(const struct mux *m);
/* 1 when the transport may close: a GOAWAY was sent or received and no stream is left. */
int mux_is_idle(const struct mux *m);

/*
 * The transport failed (TCP closed, TLS error, heartbeat): every held stream gets on_reset(|code|)
 * (normally CODE_INTERNAL_ERROR; streams the peer never dispatched may be retried). Then the mux is
 * closed. The application still releases its streams and then frees the mux.
 */
void mux_fail(struct mux *m, uint32_t code);

/*
 * Edge: opens a stream and queues its request block (|block|, |len| bytes built with meta_*), split
 * into HEADERS + CONTINUATION frames of at most the peer's max_frame_size. |end_stream| when there is
 * no body. Returns the stream (held by the caller) or NULL with *|err|: CV_EGOAWAY (draining),
 * CV_ELIMIT (peer's max_concurrent_streams reached), CV_EINVAL (block over the peer's
 * max_metadata_size), CV_ENOMEM.
 */
struct mux_stream *mux_open(struct mux *m, const uint8_t *block, size_t len, int end_stream,
                            const struct mux_stream_hooks *sh, void *sdata, int *err);
/* Queues a metadata block (response, interim or final; trailers) on a held stream. Returns 0,
 * CV_ECLOSED if the stream is closed for sending, CV_EINVAL if too large, CV_ENOMEM. */
int mux_stream_headers(struct mux_stream *s, const uint8_t *block, size_t len, int end_stream);
/*
 * Queues up to |n| bytes of body (copied) and returns how many were taken (0 when the queue is
 * full: on_writable will follow), or CV_ECLOSED. |fin| ends the direction once all queued bytes are
 * sent; it only takes effect when every byte was accepted.
 */
ssize_t mux_stream_write(struct mux_stream *s, const uint8_t *p, size_t n, int fin);
/* Zero-copy variant: returns a pointer to at least 1 and at most *|len| free bytes of the send queue
 * (*|len| updated), or NULL if the queue is full; then mux_stream_commit() the bytes written. */
uint8_t *mux_stream_reserve(struct mux_stream *s, size_t *len);
void mux_stream_commit(struct mux_stream *s, size_t n);
/* Ends our direction (END_STREAM after the queued bytes). Returns 0 or CV_ECLOSED. */
int mux_stream_end(struct mux_stream *s);
/* Bytes the application may still queue before the send queue is full. When it returns 0, an
 * on_writable follows once the queue has room again. */
size_t mux_stream_write_space(struct mux_stream *s);
/* Storage the stream's send queue holds (capacity; counted in buf_held_bytes). */
size_t mux_stream_buffer_bytes(const struct mux_stream *s);
/* Bytes queued and not yet framed. */
size_t mux_stream_queued(const struct mux_stream *s);
/* Connector: tells the edge the request reached the origin (DISPATCHED, once). */
int mux_stream_dispatched(struct mux_stream *s);
/* The stream's receive window: initial_stream_window, or more once auto-tuning grew it (§9.5). */
uint32_t mux_stream_window_size(const struct mux_stream *s);
/* Returns |n| bytes of received DATA to the flow-control windows (the application forwarded them). */
void mux_stream_consumed(struct mux_stream *s, size_t n);
/* Resets the stream with |code| (no hooks follow). The stream stays held until released. */
void mux_stream_reset(struct mux_stream *s, uint32_t code);
/*
 * The application is done with |s| and will not touch it again. If our direction is still open it is
 * reset with CANCEL; if only the peer's is, with NO_ERROR. Queued data is still sent when our side
 * had ended.
 */
void mux_stream_release(struct mux_stream *s);

uint32_t mux_stream_id(const struct mux_stream *s);
struct mux *mux_stream_mux(const struct mux_stream *s);
void *mux_stream_data(const struct mux_stream *s);
/* Attaches the stream's event handler (hooks may be NULL individually). */
void mux_stream_set_hooks(struct mux_stream *s, const struct mux_stream_hooks *sh, void *sdata);
/* The connection's |arg| (given to mux_new). */
void *mux_arg(const struct mux *m);
/* 1 once the connector sent (or, at the edge, we received) DISPATCHED or a response. */
int mux_stream_was_dispatched(const struct mux_stream *s);
/* 1 when our direction is ended; 1 when the peer's is. */
int mux_stream_local_closed(const struct mux_stream *s);
int mux_stream_remote_closed(const struct mux_stream *s);

#endif
