/*
 * pipe.c - raw byte pipe between a sock and a mux stream; see pipe.h.
 */
#include "pipe.h"

#include "buf.h"
#include "mux.h"
#include "sock.h"

/* Moves what the sock has read into the stream, as far as the stream's queue takes it. */
static void move_to_stream(struct pipe *p)
{
    struct buf *in = sock_in(p->sock);

    while (buf_len(in) > 0) {
        size_t room = mux_stream_write_space(p->stream);
        size_t n = buf_len(in);
        ssize_t k;

        if (room == 0) {
            /* on_writable follows: resume then (mux_stream_write_space promises it). */
            if (!(p->flags & PIPE_F_STOPPED)) {
                p->flags |= PIPE_F_STOPPED;
                sock_read_stop(p->sock);
            }
            return;
        }
        if (n > room)
            n = room;
        k = mux_stream_write(p->stream, in->pos, n, 0);
        if (k <= 0)
            return;
        buf_consume(in, (size_t)k);
        p->to_stream += (uint64_t)k;
    }
    if (p->flags & PIPE_F_STOPPED) {
        p->flags &= ~PIPE_F_STOPPED;
        sock_read_start(p->sock);
    }
    /* The sock's end is forwarded once its bytes are all in the stream. */
    if ((p->flags & PIPE_F_SOCK_EOF) && !(p->flags & PIPE_F_SENT_END)) {
        p->flags |= PIPE_F_SENT_END;
        mux_stream_end(p->stream);
    }
}

static void give_credit(struct pipe *p)
{
    if (p->credit == 0 || sock_write_full(p->sock))
        return;
    mux_stream_consumed(p->stream, (size_t)p->credit);
    p->credit = 0;
}

void pipe_start(struct pipe *p, struct sock *s, struct mux_stream *st)
{
    p->sock = s;
    p->stream = st;
    p->credit = 0;
    p->to_sock = 0;
    p->to_stream = 0;
    p->flags = 0;
    move_to_stream(p);
    /* Bytes may have filled the input buffer while the owner waited for the other side (which
     * stopped reading): the pipe reads from now on. */
    if (!(p->flags & PIPE_F_STOPPED))
        sock_read_start(s);
}

void pipe_on_sock_data(struct pipe *p)
{
    move_to_stream(p);
}

void pipe_on_sock_eof(struct pipe *p)
{
    p->flags |= PIPE_F_SOCK_EOF;
    move_to_stream(p);
}

void pipe_on_sock_drain(struct pipe *p)
{
    give_credit(p);
}

void pipe_on_stream_data(struct pipe *p, const uint8_t *d, size_t n)
{
    if (p->flags & PIPE_F_SHUT) {
        mux_stream_consumed(p->stream, n);
        return;
    }
    sock_write(p->sock, d, n);
    p->to_sock += n;
    p->credit += n;
    give_credit(p);
}

void pipe_on_stream_end(struct pipe *p)
{
    p->flags |= PIPE_F_STREAM_END;
    if (!(p->flags & PIPE_F_SHUT)) {
        p->flags |= PIPE_F_SHUT;
        sock_shutdown(p->sock); /* after the queued bytes: TLS close_notify, then FIN */
    }
}

void pipe_on_stream_writable(struct pipe *p)
{
    move_to_stream(p);
}

int pipe_done(const struct pipe *p)
{
    return (p->flags & PIPE_F_SENT_END) && (p->flags & PIPE_F_STREAM_END);
}
