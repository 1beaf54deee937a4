/*
 * pipe.h - a raw byte pipe between a sock and a mux stream, both ways, with flow control and
 * half-close: what an upgraded WebSocket and a TCP stream become on either side of the tunnel.
 *
 * The owner keeps its own sock and stream hooks and forwards the events named below; the pipe does
 * the work. Bytes from the sock go into the stream only as far as its send queue has room (the sock
 * stops reading meanwhile); bytes from the stream are written to the sock and credited back to the
 * tunnel only once the sock's queue is below its high mark. A FIN (or close_notify) from the sock
 * ends the stream's direction (END_STREAM); END_STREAM from the stream half-closes the sock. The
 * pipe is done when both directions are. One loop thread.
 */
#ifndef CV_PIPE_H
#define CV_PIPE_H

#include <stddef.h>
#include <stdint.h>

struct sock;
struct mux_stream;

#define PIPE_F_SOCK_EOF 0x01   /* the sock's peer ended its direction */
#define PIPE_F_STREAM_END 0x02 /* the stream's peer ended its direction */
#define PIPE_F_SENT_END 0x04   /* END_STREAM queued towards the stream */
#define PIPE_F_SHUT 0x08       /* the sock was half-closed towards its peer */
#define PIPE_F_STOPPED 0x10    /* reading the sock is paused: the stream queue is full */

struct pipe {
    struct sock *sock;
    struct mux_stream *stream;
    uint64_t credit;   /* stream bytes written to the sock, not yet returned to flow control */
    uint64_t to_sock;  /* totals, for logs */
    uint64_t to_stream;
    unsigned flags;
};

/* Starts piping between |s| and |st| (both borrowed; the owner keeps them alive). Bytes already in
 * the sock's input buffer are moved at once, and reading resumes if it had stopped. */
void pipe_start(struct pipe *p, struct sock *s, struct mux_stream *st);
/* Forward from the owner's hooks. */
void pipe_on_sock_data(struct pipe *p);                                /* sock on_data */
void pipe_on_sock_eof(struct pipe *p);                                 /* sock on_eof */
void pipe_on_sock_drain(struct pipe *p);                               /* sock on_drain */
void pipe_on_stream_data(struct pipe *p, const uint8_t *d, size_t n);  /* stream on_data */
void pipe_on_stream_end(struct pipe *p);                               /* stream on_end */
void pipe_on_stream_writable(struct pipe *p);                          /* stream on_writable */
/* 1 when both directions are ended (the owner then releases the stream and closes the sock). */
int pipe_done(const struct pipe *p);

#endif
