/*
 * sock.c - the connection object over libuv 1.44; see sock.h.
 *
 * Above: the edge's listeners, the connector's dialers and the mux glue, through hooks. Below: a
 * uv_tcp_t or uv_pipe_t, a uv_timer_t, and tls.c for the optional TLS layer (memory BIOs: this file
 * moves the ciphertext). One loop thread.
 *
 * Output: sock_write() appends to |pending| (ciphertext when TLS, copied out of OpenSSL after every
 * SSL call). The per-loop flush pass (a uv_check_t, run after each poll) calls on_flush for socks
 * that asked, then hands all of |pending| to one uv_write: the buffers swap, |inflight| is owned by
 * the write request until its callback, and the next write starts from the callback if more is
 * pending. A uv_idle_t runs while the flush list is non-empty so that a write made outside the poll
 * phase (a timer, a close callback) never waits for the next I/O event.
 *
 * Input: plain socks read straight into |in|; TLS socks read ciphertext into the loop's shared
 * buffer, feed it to OpenSSL and decrypt into |in|. A full |in| stops reading until the owner
 * consumes (inside on_data, or later followed by sock_read_start()).
 *
 * Lifetime: |refs| keeps the memory (one reference for "handles open", one per libuv request in
 * flight and per handle close pending, one per callback on the stack); |depth| counts our callbacks
 * on the stack, and a close requested while it is non-zero only sets a flag that the outermost
 * callback acts on when it unwinds. The close callbacks of both handles are counted
 * (|pending_closes|); after the last, on_close runs once, and the memory goes with the last
 * reference.
 */
#include "sock.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "err.h"
#include "log.h"
#include "mem.h"

#define SOCK_IN_CAP_DEFAULT (64 * 1024)
#define SOCK_OUT_HIGH_DEFAULT (256 * 1024)
#define SOCK_CLOSE_WAIT_DEFAULT_MS 5000
#define SOCK_READ_CHUNK (64 * 1024)    /* one read; also the loop's shared ciphertext buffer */
#define SOCK_RECORD (16 * 1024)        /* a TLS record's plaintext; a first plain read */
#define SOCK_SWEEP_MS 1000             /* a socket idle this long (one to two intervals) is trimmed */
#define SOCK_TLS_WRITE_CHUNK (64 * 1024) /* plaintext per SSL_write: keeps the BIO small */
#define SOCK_DECRYPT_ROUNDS 32           /* on_data calls per callback, then yield (libuv: 32) */

enum sock_state {
    SOCK_S_CONNECTING, /* client: TCP or unix connect in flight */
    SOCK_S_HANDSHAKE,  /* TLS handshake running */
    SOCK_S_OPEN,       /* data flows */
    SOCK_S_CLOSING,    /* graceful close: drain output, close_notify, FIN, wait for the peer */
    SOCK_S_CLOSED,     /* handles closing: on_close comes after the last close callback */
    SOCK_S_COUNT
};

#define SOCK_F_CLIENT (1u << 0)       /* we dialled: on_connect reports the outcome, once */
#define SOCK_F_PIPE (1u << 1)         /* uv_pipe_t (unix socket): no RST, no peer address */
#define SOCK_F_STREAM_INIT (1u << 2)  /* the stream handle was initialised: it must be closed */
#define SOCK_F_READING (1u << 3)      /* uv_read_start is active */
#define SOCK_F_PAUSED (1u << 4)       /* owner's sock_read_stop(): blocks reading */
#define SOCK_F_IN_FULL (1u << 5)      /* |in| is full: blocks reading until the owner consumes */
#define SOCK_F_EOF (1u << 6)          /* peer's end seen (FIN, close_notify): blocks reading */
#define SOCK_F_SHUT_WANTED (1u << 7)  /* our end after the queued output: blocks sock_write */
#define SOCK_F_SHUT_SENT (1u << 8)    /* uv_shutdown issued: blocks further writes */
#define SOCK_F_FIN_DONE (1u << 9)     /* uv_shutdown completed */
#define SOCK_F_WRITING (1u << 10)     /* a uv_write owns |inflight|: blocks starting another */
#define SOCK_F_WANT_FLUSH (1u << 11)  /* owner asked for on_flush in the next flush pass */
#define SOCK_F_DECRYPT (1u << 12)     /* TLS input may wait inside OpenSSL: blocks reading */
#define SOCK_F_ABOVE_HIGH (1u << 13)  /* queue reached out_high: on_drain once it falls to half */
#define SOCK_F_CONNECT_DONE (1u << 14) /* on_connect was called: blocks a second call */
#define SOCK_F_FAILED (1u << 15)      /* fatal error reported: blocks every hook but on_close */
#define SOCK_F_FAIL_LATER (1u << 16)  /* error found inside a public call: reported in the pass */
#define SOCK_F_CLOSE_SCHED (1u << 17) /* graceful close asked inside a callback: runs on unwind */
#define SOCK_F_ABORT_SCHED (1u << 18) /* abort asked inside a callback: runs on unwind */
#define SOCK_F_NO_NOTIFY (1u << 19)   /* closing after a TLS failure: alert, no close_notify */
#define SOCK_F_SILENT (1u << 20)      /* creation failed: no hook is ever called */
#define SOCK_F_EOF_DONE (1u << 21)    /* on_eof ran: blocks delivering input and a second on_eof */
#define SOCK_F_BUSY (1u << 22)        /* I/O since the last sweep: keeps buffers allocated */
#define SOCK_F_DRAIN_OWED (1u << 23)  /* a direct write emptied the queue: on_drain in the pass */
#define SOCK_F_BULK_IN (1u << 24)     /* TLS reads fill their room: read SOCK_READ_CHUNK at once */
#define SOCK_F_SEND_STALLED (1u << 25) /* on_timeout is the send timeout's (sock_send_stalled) */
#define SOCK_F_CLOSE_SEND (1u << 26)  /* closing: the send timeout bounds the flush */
#define SOCK_F_FLUSH_LAST (1u << 27)  /* flushed after the other socks of a pass (sock_set_flush_last) */

struct sock_loop {
    uv_loop_t *loop;
    uv_check_t check; /* the flush pass */
    uv_idle_t idle;   /* keeps poll from blocking while the flush list is non-empty */
    int active;       /* check and idle started */
    struct list_node flush_list;
    struct list_node flush_last; /* socks of sock_set_flush_last(): after flush_list in a pass */
    unsigned long pass;
    unsigned long next_id;
    unsigned nsocks;
    unsigned pending_closes;
    uint8_t *rbuf; /* SOCK_READ_CHUNK bytes: TLS ciphertext, discarded input; used synchronously */
    struct list_node all; /* every sock, for the idle sweep */
    uv_timer_t sweep;     /* gives idle sockets' buffers back (see on_sweep) */
};

struct sock {
    struct sock_loop *sl;
    enum sock_state state;
    unsigned flags;
    unsigned refs;
    unsigned depth;
    unsigned pending_closes;
    unsigned long id;
    unsigned long flush_pass;
    const struct sock_hooks *hooks;
    void *arg;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer; /* the owner's deadline and the send timeout's looks, then a close's wait */
    uint64_t deadline;   /* sock_set_timeout()'s, in loop time; 0: none */
    uint64_t timer_due;  /* when |timer| fires (loop time), 0 when not armed */
    uint64_t send_idle_ms; /* sock_set_send_timeout()'s limit; 0: none */
    uint64_t send_since;   /* loop time of the last write progress seen */
    size_t send_left;      /* send_unread() at that moment */
    uint64_t send_due;     /* the send timeout's next look (loop time); 0: no write waits */
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    struct list_node flush_node;
    struct list_node all_node;
    int use_tls;
    struct tls tls;
    struct buf in;       /* plaintext for the owner */
    struct buf pending;  /* output being filled (ciphertext when TLS) */
    struct buf inflight; /* output owned by the write request */
    struct buf early;    /* TLS: plaintext not yet encrypted (before the handshake finished, and
                          * between flush passes, so that one pass makes full-size records) */
    size_t wlen;         /* bytes of |inflight| in the write request */
    size_t out_high;
    uint64_t close_wait_ms;
    int error;
    char peer[64];
    char peer_ip[48];
    char err_text[256];
};

static const struct sock_hooks null_hooks;

static void close_handles(struct sock *s, int reset);
static void do_close(struct sock *s);
static void tls_advance(struct sock *s);
static void tls_decrypt(struct sock *s);

static const char *sock_state_name(enum sock_state st)
{
    static const char *const names[SOCK_S_COUNT] = {"connecting", "handshake", "open", "closing",
                                                    "closed"};

    return st < SOCK_S_COUNT ? names[st] : "?";
}

/* ---- per-loop state -------------------------------------------------------------------------- */

static void on_idle(uv_idle_t *h)
{
    (void)h; /* its only job is to make the poll phase return at once */
}

static void on_check(uv_check_t *h);

static void loop_activate(struct sock_loop *sl)
{
    if (sl->active)
        return;
    uv_check_start(&sl->check, on_check);
    uv_idle_start(&sl->idle, on_idle);
    sl->active = 1;
}

static int sock_live(const struct sock *s);
static void on_sweep(uv_timer_t *t);

int sock_loop_init(struct sock_loop **out, uv_loop_t *loop)
{
    struct sock_loop *sl = mem_calloc(sizeof(*sl));

    *out = NULL;
    if (sl == NULL)
        return CV_ENOMEM;
    sl->rbuf = mem_alloc(SOCK_READ_CHUNK);
    if (sl->rbuf == NULL) {
        mem_free(sl);
        return CV_ENOMEM;
    }
    sl->loop = loop;
    list_init(&sl->flush_list);
    list_init(&sl->flush_last);
    list_init(&sl->all);
    uv_timer_init(loop, &sl->sweep);
    sl->sweep.data = sl;
    uv_timer_start(&sl->sweep, on_sweep, SOCK_SWEEP_MS, SOCK_SWEEP_MS);
    uv_unref((uv_handle_t *)&sl->sweep);
    uv_check_init(loop, &sl->check);
    uv_idle_init(loop, &sl->idle);
    sl->check.data = sl;
    sl->idle.data = sl;
    *out = sl;
    return 0;
}

static void idle_release(struct sock *s);

/*
 * Buffers are given back when a socket has been idle for a whole sweep interval, not after every
 * read or write: releasing at once would allocate and free them (and OpenSSL's record buffers) for
 * every request on a busy connection, while idle connections (thousands of WebSockets) must hold
 * next to nothing.
 */
static void on_sweep(uv_timer_t *t)
{
    struct sock_loop *sl = t->data;
    struct list_node *n;

    list_for_each(n, &sl->all)
    {
        struct sock *s = container_of(n, struct sock, all_node);

        if (s->flags & SOCK_F_BUSY)
            s->flags &= ~SOCK_F_BUSY;
        else
            idle_release(s);
    }
}

void sock_loop_set_sweep_ms(struct sock_loop *sl, uint64_t ms)
{
    uv_timer_start(&sl->sweep, on_sweep, ms, ms);
}

static void on_loop_handle_close(uv_handle_t *h)
{
    struct sock_loop *sl = h->data;

    if (--sl->pending_closes > 0)
        return;
    mem_free(sl->rbuf);
    mem_free(sl);
}

void sock_loop_cleanup(struct sock_loop *sl)
{
    if (sl == NULL)
        return;
    if (sl->nsocks > 0)
        LOG_E("sock loop cleanup with %u sockets still alive", sl->nsocks);
    sl->pending_closes = 3;
    uv_close((uv_handle_t *)&sl->sweep, on_loop_handle_close);
    uv_close((uv_handle_t *)&sl->check, on_loop_handle_close);
    uv_close((uv_handle_t *)&sl->idle, on_loop_handle_close);
}

/* ---- references and callback nesting -------------------------------------------------------- */

/* Frees the buffers of an idle, live socket that hold nothing. */
static void idle_release(struct sock *s)
{
    if (s->state == SOCK_S_CLOSED || !sock_live(s))
        return;
    if (buf_len(&s->in) == 0)
        buf_release(&s->in);
    if (!(s->flags & SOCK_F_WRITING) && sock_write_queued(s) == 0) {
        buf_release(&s->pending);
        buf_release(&s->inflight);
        buf_release(&s->early);
        if (s->use_tls && s->state == SOCK_S_OPEN)
            tls_release_buffers(&s->tls);
    }
}

static void sock_destroy(struct sock *s)
{
    struct sock_loop *sl = s->sl;

    buf_cleanup(&s->in);
    buf_cleanup(&s->pending);
    buf_cleanup(&s->inflight);
    buf_cleanup(&s->early);
    if (s->use_tls)
        tls_cleanup(&s->tls);
    list_remove(&s->all_node);
    sl->nsocks--;
    mem_free(s);
}

void sock_hold(struct sock *s)
{
    s->refs++;
}

void sock_release(struct sock *s)
{
    if (--s->refs == 0)
        sock_destroy(s);
}

/* Not failed, not closing, no close scheduled: hooks may run and data may flow. */
static int sock_live(const struct sock *s)
{
    return s->state < SOCK_S_CLOSING &&
           !(s->flags & (SOCK_F_FAILED | SOCK_F_CLOSE_SCHED | SOCK_F_ABORT_SCHED));
}

static void sock_enter(struct sock *s)
{
    s->refs++;
    s->depth++;
}

/* Leaves a callback; the outermost one runs a close requested meanwhile. May free |s|. */
static void sock_leave(struct sock *s)
{
    if (--s->depth == 0 && (s->flags & (SOCK_F_CLOSE_SCHED | SOCK_F_ABORT_SCHED)) &&
        s->state < SOCK_S_CLOSED) {
        unsigned f = s->flags;

        s->flags &= ~(SOCK_F_CLOSE_SCHED | SOCK_F_ABORT_SCHED);
        if (f & SOCK_F_ABORT_SCHED)
            close_handles(s, 1);
        else
            do_close(s);
    }
    sock_release(s);
}

/* ---- scheduling ------------------------------------------------------------------------------ */

static void flush_enqueue(struct sock *s)
{
    list_push_back((s->flags & SOCK_F_FLUSH_LAST) ? &s->sl->flush_last : &s->sl->flush_list, &s->flush_node);
}

static void sock_schedule(struct sock *s)
{
    if (s->state == SOCK_S_CLOSED || list_linked(&s->flush_node))
        return;
    flush_enqueue(s);
    loop_activate(s->sl);
}

void sock_set_flush_last(struct sock *s)
{
    s->flags |= SOCK_F_FLUSH_LAST;
    if (list_linked(&s->flush_node)) {
        list_remove(&s->flush_node);
        flush_enqueue(s);
    }
}

size_t sock_write_queued(const struct sock *s)
{
    return buf_len(&s->pending) + buf_len(&s->inflight) + buf_len(&s->early);
}

size_t sock_buffer_bytes(const struct sock *s)
{
    const struct buf *b[] = {&s->in, &s->pending, &s->inflight, &s->early};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        n += (size_t)(b[i]->end - b[i]->base);
    return n;
}

/* A queue that was full and fell to half of out_high owes on_drain, told from the flush pass. */
static void owe_drain_if_low(struct sock *s)
{
    if ((s->flags & SOCK_F_ABOVE_HIGH) && sock_write_queued(s) <= s->out_high / 2) {
        s->flags &= ~SOCK_F_ABOVE_HIGH;
        s->flags |= SOCK_F_DRAIN_OWED;
        sock_schedule(s);
    }
}

int sock_write_full(const struct sock *s)
{
    return sock_write_queued(s) >= s->out_high;
}

void sock_set_out_high(struct sock *s, size_t n)
{
    if (n == 0)
        n = SOCK_OUT_HIGH_DEFAULT;
    if (n == s->out_high)
        return;
    s->out_high = n;
    if (sock_write_queued(s) >= n)
        s->flags |= SOCK_F_ABOVE_HIGH; /* full now: on_drain once it falls to half */
    owe_drain_if_low(s);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void set_error_text(struct sock *s, const char *text)
{
    if (s->err_text[0] == '\0')
        snprintf(s->err_text, sizeof(s->err_text), "%s", text);
}

/*
 * Fatal error |err| with |text| for sock_error_text(). Reports it once (on_connect for a client
 * not yet connected, else on_error), then closes: after a TLS failure with an alert to send, by
 * flushing it (no close_notify); otherwise with a reset, so that truncation is visible to the
 * peer. During a graceful close the owner has let go: no hook, just close. Precondition: called
 * from a callback or the flush pass (never from inside a public call the owner is making).
 */
static void sock_fail_text(struct sock *s, int err, const char *text)
{
    if (s->state == SOCK_S_CLOSED || (s->flags & SOCK_F_FAILED))
        return;
    set_error_text(s, text);
    s->error = err;
    s->flags |= SOCK_F_FAILED;
    LOG_D("sock=%lu peer=%s %s: %s", s->id, s->peer, sock_state_name(s->state), s->err_text);
    sock_enter(s);
    if (s->state < SOCK_S_CLOSING) {
        if ((s->flags & SOCK_F_CLIENT) && !(s->flags & SOCK_F_CONNECT_DONE)) {
            s->flags |= SOCK_F_CONNECT_DONE;
            if (s->hooks->on_connect != NULL)
                s->hooks->on_connect(s, err, s->arg);
        } else if (s->hooks->on_error != NULL) {
            s->hooks->on_error(s, err, s->arg);
        }
    }
    if (s->state < SOCK_S_CLOSING && err == CV_ETLS && s->use_tls && buf_len(&s->pending) > 0)
        s->flags |= SOCK_F_CLOSE_SCHED | SOCK_F_NO_NOTIFY;
    else
        s->flags |= SOCK_F_ABORT_SCHED;
    sock_leave(s);
}

static void sock_fail(struct sock *s, int err, const char *what)
{
    char text[256];

    snprintf(text, sizeof(text), "%s: %s", what, cv_strerror(err));
    sock_fail_text(s, err, text);
}

/* An error found inside a public call: reported from the flush pass, never re-entrantly. */
static void sock_fail_later(struct sock *s, int err, const char *what)
{
    char text[256];

    if (s->flags & (SOCK_F_FAILED | SOCK_F_FAIL_LATER))
        return;
    snprintf(text, sizeof(text), "%s: %s", what, cv_strerror(err));
    set_error_text(s, text);
    s->error = err;
    s->flags |= SOCK_F_FAIL_LATER;
    sock_schedule(s);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b);

/* Starts or stops uv reading to match the state and flags. */
static void update_reading(struct sock *s)
{
    int want;
    int rv;

    if (s->state == SOCK_S_CLOSED || s->state == SOCK_S_CONNECTING)
        return;
    if (s->state == SOCK_S_CLOSING)
        want = !(s->flags & SOCK_F_EOF); /* discard until the peer's end */
    else
        want = sock_live(s) && !(s->flags & (SOCK_F_EOF | SOCK_F_PAUSED | SOCK_F_IN_FULL)) &&
               !(s->use_tls && (s->flags & SOCK_F_DECRYPT)); /* TLS: drain OpenSSL first */
    if (want && !(s->flags & SOCK_F_READING)) {
        rv = uv_read_start(&s->h.stream, on_alloc, on_read);
        if (rv < 0) {
            sock_fail_later(s, rv, "read");
            return;
        }
        s->flags |= SOCK_F_READING;
    } else if (!want && (s->flags & SOCK_F_READING)) {
        uv_read_stop(&s->h.stream);
        s->flags &= ~SOCK_F_READING;
    }
}

/* Plain socks in the open state read into |in|; everything else into the loop's buffer. */
static int reads_into_in(const struct sock *s)
{
    return !s->use_tls && s->state == SOCK_S_OPEN && sock_live(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct sock *s = h->data;
    size_t want;
    uint8_t *p;

    (void)suggested;
    if (s->use_tls && s->state != SOCK_S_CLOSING && sock_live(s)) {
        /* Ciphertext goes straight into the TLS input buffer, where OpenSSL reads it. An empty
         * buffer starts as one cached block (pings and small requests fit); then room for a record,
         * and once reads keep filling that (a bulk transfer), fewer, larger reads. */
        size_t room;

        if (s->flags & SOCK_F_BULK_IN)
            want = SOCK_READ_CHUNK;
        else
            want = s->tls.in.base == NULL ? MEM_BLOCK : SOCK_RECORD;
        p = tls_in_reserve(&s->tls, want, &room);
        b->base = (char *)p;
        b->len = p != NULL ? room : 0; /* NULL: libuv reports UV_ENOBUFS */
        return;
    }
    if (!reads_into_in(s)) {
        b->base = (char *)s->sl->rbuf;
        b->len = SOCK_READ_CHUNK;
        return;
    }
    want = buf_space(&s->in);
    /* An unallocated buffer starts small (a connection that only pings holds little); it grows
     * to full reads when data keeps coming. */
    if (want > (s->in.base == NULL ? SOCK_RECORD : SOCK_READ_CHUNK))
        want = s->in.base == NULL ? SOCK_RECORD : SOCK_READ_CHUNK;
    p = want > 0 ? buf_reserve(&s->in, want, NULL) : NULL;
    if (p == NULL) {
        /* Full (or out of memory): libuv reports UV_ENOBUFS to on_read. */
        b->base = NULL;
        b->len = 0;
        return;
    }
    b->base = (char *)p;
    b->len = buf_tailroom(&s->in);
}

/* Plain: new bytes are in |in|. */
static void deliver_plain(struct sock *s)
{
    if (s->hooks->on_data != NULL)
        s->hooks->on_data(s, s->arg);
    if (!sock_live(s))
        return;
    s->flags |= SOCK_F_BUSY;
    if (buf_space(&s->in) == 0)
        s->flags |= SOCK_F_IN_FULL;
    else
        s->flags &= ~SOCK_F_IN_FULL;
    update_reading(s);
}

static void sock_progress(struct sock *s);

/*
 * libuv 1.44 reports UV_EOF when POLLHUP comes after a partial read (uv__stream_io), which is also
 * what a TCP reset looks like: a pending socket error tells the two apart, so that a reset is never
 * taken for an orderly end. Returns the error as a negative code, or 0.
 */
static int pending_socket_error(struct sock *s)
{
    uv_os_fd_t fd;
    socklen_t len = sizeof(int);
    int e = 0;

    if ((s->flags & SOCK_F_PIPE) || uv_fileno(&s->h.handle, &fd) != 0)
        return 0;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0)
        return 0;
    return e != 0 ? -e : 0;
}

static void on_read_end(struct sock *s, ssize_t n)
{
    if (n == UV_ENOBUFS) {
        if (buf_space(&s->in) == 0) {
            s->flags |= SOCK_F_IN_FULL;
            update_reading(s);
            return;
        }
        sock_fail(s, CV_ENOMEM, "read buffer");
        return;
    }
    if (n == UV_EOF) {
        int e = pending_socket_error(s);

        if (e < 0)
            n = e;
    }
    if (n != UV_EOF) {
        if (s->state == SOCK_S_CLOSING) {
            close_handles(s, 0); /* the peer went away while we were closing */
            return;
        }
        sock_fail(s, (int)n, "read");
        return;
    }
    s->flags |= SOCK_F_EOF;
    update_reading(s);
    if (s->state == SOCK_S_CLOSING) {
        sock_progress(s);
        return;
    }
    if (!sock_live(s))
        return;
    if (s->use_tls) {
        if (s->tls.close_notify_received || (s->flags & SOCK_F_DECRYPT)) {
            /* Input still inside OpenSSL (a pause or a full buffer): tls_decrypt() reports the end,
             * or the truncation, once it has delivered it. */
            return;
        }
        /* RELIABILITY.md 2.6: a TCP end without close_notify is truncation, never a clean end. */
        sock_fail_text(s, CV_ETLS,
                       s->tls.handshake_done ? "unexpected EOF (no close_notify)"
                                             : "connection closed during the TLS handshake");
        return;
    }
    s->flags |= SOCK_F_EOF_DONE;
    if (s->hooks->on_eof != NULL)
        s->hooks->on_eof(s, s->arg);
}

static void on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b)
{
    struct sock *s = h->data;
    int rv;

    if (n == 0)
        return; /* EAGAIN */
    sock_enter(s);
    if (n < 0) {
        on_read_end(s, n);
    } else if (s->state == SOCK_S_CLOSING || !sock_live(s)) {
        /* Closing: input is discarded (it must still be read so that close() does not reset). */
    } else if (!s->use_tls) {
        buf_commit(&s->in, (size_t)n);
        deliver_plain(s);
    } else {
        rv = 0;
        if ((const uint8_t *)b->base == s->sl->rbuf)
            rv = tls_feed(&s->tls, (const uint8_t *)b->base, (size_t)n);
        else
            tls_in_commit(&s->tls, (size_t)n);
        if ((size_t)n == b->len || (size_t)n >= SOCK_RECORD)
            s->flags |= SOCK_F_BULK_IN; /* more was probably waiting */
        else
            s->flags &= ~SOCK_F_BULK_IN;
        if (rv < 0)
            sock_fail(s, rv, "TLS input");
        else
            tls_advance(s);
    }
    sock_leave(s);
}

/* ---- TLS ------------------------------------------------------------------------------------- */

/* Moves OpenSSL's pending ciphertext into |pending|. Returns 0 or CV_ENOMEM. */
static int tls_collect(struct sock *s)
{
    const uint8_t *p;
    size_t n;
    uint8_t *dst;
    int rv = 0;

    if (s->tls.sink) {
        /* OpenSSL wrote straight into |pending|. */
        if (buf_len(&s->pending) > 0)
            sock_schedule(s);
        return 0;
    }
    n = tls_pending_out(&s->tls, &p);
    if (n == 0)
        return 0;
    /* Straight from OpenSSL's write BIO into the output buffer: one copy. */
    dst = buf_reserve(&s->pending, n, &rv);
    if (dst == NULL)
        return rv;
    buf_commit(&s->pending, tls_take_out(&s->tls, dst, n));
    sock_schedule(s);
    return 0;
}

/* Encrypts |n| bytes into |pending|, in chunks so OpenSSL's write BIO stays small. */
static int tls_encrypt(struct sock *s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t chunk = n > SOCK_TLS_WRITE_CHUNK ? SOCK_TLS_WRITE_CHUNK : n;
        int rv = tls_write(&s->tls, p, chunk);
        int rc = tls_collect(s);

        if (rv < 0)
            return rv;
        if (rc < 0)
            return rc;
        p += chunk;
        n -= chunk;
    }
    return 0;
}

/*
 * Encrypts the plaintext written since the last pass in one go. Writing each sock_write() as its
 * own record would double the records (and their cost) for a head followed by a small body.
 * Returns 0 or a negative code (the caller fails the sock).
 */
static int encrypt_early(struct sock *s)
{
    int rv;

    if (!s->use_tls || !s->tls.handshake_done || buf_len(&s->early) == 0 ||
        s->tls.close_notify_sent)
        return 0;
    rv = tls_encrypt(s, s->early.pos, buf_len(&s->early));
    buf_consume(&s->early, buf_len(&s->early));
    return rv;
}

static void handshake_finished(struct sock *s)
{
    int rv;

    s->state = SOCK_S_OPEN;
    LOG_D("sock=%lu peer=%s TLS handshake done: %s", s->id, s->peer, tls_version(&s->tls));
    if (buf_len(&s->early) > 0) {
        rv = tls_encrypt(s, s->early.pos, buf_len(&s->early));
        buf_cleanup(&s->early);
        if (rv < 0) {
            sock_fail_text(s, rv, rv == CV_ETLS ? s->tls.last_error : cv_strerror(rv));
            return;
        }
    }
    if ((s->flags & SOCK_F_SHUT_WANTED) && !s->tls.close_notify_sent) {
        tls_shutdown(&s->tls);
        if (tls_collect(s) < 0) {
            sock_fail(s, CV_ENOMEM, "TLS output");
            return;
        }
    }
    sock_schedule(s);
    if (s->flags & SOCK_F_CLIENT) {
        s->flags |= SOCK_F_CONNECT_DONE;
        if (s->hooks->on_connect != NULL)
            s->hooks->on_connect(s, 0, s->arg);
    } else if (s->hooks->on_handshake != NULL) {
        s->hooks->on_handshake(s, s->arg);
    }
}

/* New ciphertext arrived: advance the handshake, then decrypt. */
static void tls_advance(struct sock *s)
{
    int rv;

    if (!s->tls.handshake_done) {
        rv = tls_handshake(&s->tls);
        if (tls_collect(s) < 0) {
            sock_fail(s, CV_ENOMEM, "TLS output");
            return;
        }
        if (rv < 0) {
            sock_fail_text(s, CV_ETLS, s->tls.last_error);
            return;
        }
        if (rv == 0)
            return;
        handshake_finished(s);
        if (!sock_live(s))
            return;
    }
    tls_decrypt(s);
}

/*
 * Decrypts into |in| and calls on_data, while the owner makes room, at most SOCK_DECRYPT_ROUNDS
 * times (then the flush pass continues). Stops with SOCK_F_DECRYPT set when |in| is full or the
 * owner paused: plaintext may be waiting inside OpenSSL, and sock_read_start() resumes from there.
 * While it is set, no new ciphertext is read, so that a TCP end is judged only after the input
 * before it was delivered.
 */
static void tls_decrypt(struct sock *s)
{
    int rounds;

    for (rounds = 0; rounds < SOCK_DECRYPT_ROUNDS; rounds++) {
        size_t got = 0;
        int rv = 0;
        int err = 0;
        int drained = 0; /* OpenSSL holds nothing more: no SSL_read just to hear WANT_READ */

        if (!sock_live(s) || s->state != SOCK_S_OPEN || (s->flags & SOCK_F_EOF_DONE))
            return;
        if (s->flags & SOCK_F_PAUSED) {
            s->flags |= SOCK_F_DECRYPT;
            update_reading(s);
            return;
        }
        for (;;) {
            size_t want = buf_space(&s->in);
            uint8_t *dst;

            if (want == 0)
                break;
            /* SSL_read yields at most one record: room for one is enough. */
            if (want > SOCK_RECORD)
                want = SOCK_RECORD;
            dst = buf_reserve(&s->in, want, &err);
            if (dst == NULL) {
                sock_fail(s, err, "read buffer");
                return;
            }
            rv = tls_read(&s->tls, dst, buf_tailroom(&s->in));
            if (tls_collect(s) < 0) {
                sock_fail(s, CV_ENOMEM, "TLS output");
                return;
            }
            if (rv <= 0)
                break;
            buf_commit(&s->in, (size_t)rv);
            got += (size_t)rv;
            rv = 0;
            if (!tls_read_more(&s->tls)) {
                drained = 1;
                break;
            }
        }
        if (got > 0 && s->hooks->on_data != NULL)
            s->hooks->on_data(s, s->arg);
        if (!sock_live(s))
            return;
        s->flags |= SOCK_F_BUSY;
        if (rv < 0 && rv != CV_ECLOSED) {
            sock_fail_text(s, CV_ETLS, s->tls.last_error);
            return;
        }
        if (s->flags & SOCK_F_PAUSED) {
            /* Paused inside on_data: even the end waits (tls_read reports it again). */
            s->flags |= SOCK_F_DECRYPT;
            update_reading(s);
            return;
        }
        if (rv == CV_ECLOSED) {
            /* close_notify: the peer's orderly end. We may still write (half-close). */
            s->flags |= SOCK_F_EOF | SOCK_F_EOF_DONE;
            update_reading(s);
            if (s->hooks->on_eof != NULL)
                s->hooks->on_eof(s, s->arg);
            return;
        }
        if (buf_space(&s->in) == 0) {
            s->flags |= SOCK_F_IN_FULL | SOCK_F_DECRYPT;
            update_reading(s);
            return;
        }
        if (got == 0 || drained) {
            /* OpenSSL wants more ciphertext. */
            s->flags &= ~(SOCK_F_IN_FULL | SOCK_F_DECRYPT);
            if (s->flags & SOCK_F_EOF) {
                /* The TCP end came while input waited here, and no close_notify followed. */
                sock_fail_text(s, CV_ETLS, "unexpected EOF (no close_notify)");
                return;
            }
            update_reading(s);
            return;
        }
    }
    s->flags |= SOCK_F_DECRYPT; /* yield: the flush pass continues */
    sock_schedule(s);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void on_write_done(uv_write_t *req, int status);
static void on_shutdown_done(uv_shutdown_t *req, int status);
static void send_wait_start(struct sock *s);
static void close_wait_start(struct sock *s);

static void start_write(struct sock *s)
{
    uv_buf_t b;
    struct buf tmp;
    int rv;

    if ((s->flags & (SOCK_F_WRITING | SOCK_F_SHUT_SENT)) || s->state == SOCK_S_CONNECTING ||
        s->state == SOCK_S_CLOSED)
        return;
    if (buf_len(&s->inflight) == 0) {
        if (buf_len(&s->pending) == 0)
            return;
        tmp = s->inflight;
        s->inflight = s->pending;
        s->pending = tmp;
    }
    s->wlen = buf_len(&s->inflight);
    b.base = (char *)s->inflight.pos;
    b.len = s->wlen;
    /* Most writes fit in the socket buffer at once: write directly. A uv_write request would cost
     * a callback in the next iteration and, in libuv 1.44, an epoll_ctl on every completion. */
    rv = uv_try_write(&s->h.stream, &b, 1);
    if (rv > 0) {
        buf_consume(&s->inflight, (size_t)rv);
        s->flags |= SOCK_F_BUSY;
        if (buf_len(&s->inflight) == 0) {
            s->wlen = 0;
            owe_drain_if_low(s);
            if (buf_len(&s->pending) > 0)
                sock_schedule(s); /* the next batch goes out in the pass */
            return;
        }
        s->wlen = buf_len(&s->inflight);
        b.base = (char *)s->inflight.pos;
        b.len = s->wlen;
    } else if (rv < 0 && rv != UV_EAGAIN) {
        if (s->state == SOCK_S_CLOSING)
            close_handles(s, 1);
        else
            sock_fail(s, rv, "write");
        return;
    }
    rv = uv_write(&s->wreq, &s->h.stream, &b, 1, on_write_done);
    if (rv < 0) {
        if (s->state == SOCK_S_CLOSING)
            close_handles(s, 1);
        else
            sock_fail(s, rv, "write");
        return;
    }
    s->flags |= SOCK_F_WRITING;
    s->refs++; /* the request's */
    if (s->send_idle_ms > 0 && s->state < SOCK_S_CLOSING)
        send_wait_start(s); /* the kernel refused part of it: now the peer must read */
}

/* Moves the output side forward: next write, then FIN once everything is out, then the end of a
 * graceful close once our FIN is done and the peer's end was seen. */
static void sock_progress(struct sock *s)
{
    int ready;
    int rv;

    if (s->state == SOCK_S_CLOSED || s->state == SOCK_S_CONNECTING ||
        (s->flags & SOCK_F_ABORT_SCHED))
        return;
    rv = encrypt_early(s);
    if (rv < 0) {
        /* Part of it may be encrypted already: the record stream is broken. */
        if (s->state == SOCK_S_CLOSING)
            close_handles(s, 1);
        else
            sock_fail_text(s, rv, rv == CV_ETLS ? s->tls.last_error : cv_strerror(rv));
        return;
    }
    start_write(s);
    if (s->state == SOCK_S_CLOSED)
        return;
    ready = !s->use_tls || s->tls.handshake_done || (s->flags & SOCK_F_NO_NOTIFY);
    if ((s->flags & SOCK_F_SHUT_WANTED) && !(s->flags & (SOCK_F_SHUT_SENT | SOCK_F_WRITING)) &&
        sock_write_queued(s) == 0 && ready) {
        rv = uv_shutdown(&s->sreq, &s->h.stream, on_shutdown_done);
        if (rv < 0) {
            if (s->state == SOCK_S_CLOSING)
                close_handles(s, 1);
            else
                sock_fail(s, rv, "shutdown");
            return;
        }
        s->flags |= SOCK_F_SHUT_SENT;
        s->refs++; /* the request's */
    }
    if (s->state == SOCK_S_CLOSING && (s->flags & SOCK_F_CLOSE_SEND) && sock_write_queued(s) == 0)
        close_wait_start(s); /* all of it went out: now the wait for the FIN and the peer's end */
    if (s->state == SOCK_S_CLOSING && (s->flags & SOCK_F_FIN_DONE) && (s->flags & SOCK_F_EOF))
        close_handles(s, 0);
}

static void on_write_done(uv_write_t *req, int status)
{
    struct sock *s = req->data;

    s->flags &= ~SOCK_F_WRITING;
    sock_enter(s);
    if (status == UV_ECANCELED || s->state == SOCK_S_CLOSED)
        goto out; /* the handle is closing; the bytes are dropped with it */
    if (status < 0) {
        if (s->state == SOCK_S_CLOSING)
            close_handles(s, 1);
        else
            sock_fail(s, status, "write");
        goto out;
    }
    buf_consume(&s->inflight, s->wlen);
    s->wlen = 0;
    s->send_due = 0; /* progress; the next write request starts the clock again */
    if ((s->flags & SOCK_F_ABOVE_HIGH) && sock_write_queued(s) <= s->out_high / 2) {
        s->flags &= ~SOCK_F_ABOVE_HIGH;
        if (sock_live(s) && s->hooks->on_drain != NULL)
            s->hooks->on_drain(s, s->arg);
    }
    sock_progress(s);
    s->flags |= SOCK_F_BUSY; /* the idle sweep gives the buffers back later */
out:
    sock_leave(s);
    sock_release(s); /* the request's */
}

static void on_shutdown_done(uv_shutdown_t *req, int status)
{
    struct sock *s = req->data;

    sock_enter(s);
    if (status == UV_ECANCELED || s->state == SOCK_S_CLOSED)
        goto out;
    if (status < 0) {
        if (s->state == SOCK_S_CLOSING)
            close_handles(s, 1);
        else
            sock_fail(s, status, "shutdown");
        goto out;
    }
    s->flags |= SOCK_F_FIN_DONE;
    update_reading(s);
    sock_progress(s);
out:
    sock_leave(s);
    sock_release(s); /* the request's */
}

int sock_write(struct sock *s, const void *p, size_t n)
{
    int rv;

    if (s->state >= SOCK_S_CLOSING ||
        (s->flags & (SOCK_F_FAILED | SOCK_F_FAIL_LATER | SOCK_F_CLOSE_SCHED | SOCK_F_ABORT_SCHED |
                     SOCK_F_SHUT_WANTED)))
        return CV_ECLOSED;
    if (n == 0)
        return 0;
    if (!s->use_tls) {
        rv = buf_append(&s->pending, p, n);
        if (rv < 0)
            return rv; /* nothing was queued: the stream is intact */
    } else if (!s->tls.handshake_done) {
        rv = buf_append(&s->early, p, n);
        if (rv < 0)
            return rv;
    } else if (buf_len(&s->early) + n < SOCK_RECORD) {
        /* Small: encrypted in the flush pass, together with what else is written until then. */
        rv = buf_append(&s->early, p, n);
        if (rv < 0)
            return rv;
    } else {
        /* Enough for full records: encrypt now, without the extra copy. */
        rv = encrypt_early(s);
        if (rv == 0)
            rv = tls_encrypt(s, p, n);
        if (rv < 0) {
            /* Part of it may be encrypted already: the record stream is broken. */
            sock_fail_later(s, rv, "TLS write");
            return rv;
        }
    }
    if (sock_write_queued(s) >= s->out_high)
        s->flags |= SOCK_F_ABOVE_HIGH;
    sock_schedule(s);
    return 0;
}

void sock_want_flush(struct sock *s)
{
    if (!sock_live(s))
        return;
    s->flags |= SOCK_F_WANT_FLUSH;
    sock_schedule(s);
}

/* ---- the flush pass -------------------------------------------------------------------------- */

static void flush_one(struct sock *s)
{
    sock_enter(s);
    if (s->flags & SOCK_F_FAIL_LATER) {
        s->flags &= ~SOCK_F_FAIL_LATER;
        sock_fail_text(s, s->error, s->err_text);
    }
    if ((s->flags & SOCK_F_DRAIN_OWED) && sock_live(s)) {
        s->flags &= ~SOCK_F_DRAIN_OWED;
        if (s->hooks->on_drain != NULL)
            s->hooks->on_drain(s, s->arg);
    }
    if ((s->flags & SOCK_F_WANT_FLUSH) && sock_live(s)) {
        s->flags &= ~SOCK_F_WANT_FLUSH;
        if (s->hooks->on_flush != NULL)
            s->hooks->on_flush(s, s->arg);
    }
    if ((s->flags & SOCK_F_DECRYPT) && sock_live(s) && s->state == SOCK_S_OPEN &&
        !(s->flags & SOCK_F_PAUSED)) {
        s->flags &= ~SOCK_F_DECRYPT;
        tls_decrypt(s);
    }
    sock_progress(s);
    sock_leave(s);
}

static void on_check(uv_check_t *h)
{
    struct sock_loop *sl = h->data;
    unsigned long pass = ++sl->pass;
    struct list_node later;
    struct list_node *n;

    list_init(&later);
    /* Every ordinary sock first, then the flush-last ones (tunnel connections), again ordinary
     * ones that those scheduled, and so on. */
    while ((n = list_first(&sl->flush_list)) != NULL || (n = list_first(&sl->flush_last)) != NULL) {
        struct sock *s = container_of(n, struct sock, flush_node);

        list_remove(n);
        if (s->flush_pass == pass) {
            list_push_back(&later, n); /* asked again during this pass: next iteration */
            continue;
        }
        s->flush_pass = pass;
        flush_one(s);
    }
    while ((n = list_first(&later)) != NULL) {
        list_remove(n);
        flush_enqueue(container_of(n, struct sock, flush_node));
    }
    if (list_empty(&sl->flush_list) && list_empty(&sl->flush_last)) {
        uv_check_stop(&sl->check);
        uv_idle_stop(&sl->idle);
        sl->active = 0;
    }
}

/* ---- closing --------------------------------------------------------------------------------- */

static void sock_finish(struct sock *s)
{
    if (!(s->flags & SOCK_F_SILENT)) {
        if ((s->flags & SOCK_F_CLIENT) && !(s->flags & SOCK_F_CONNECT_DONE)) {
            s->flags |= SOCK_F_CONNECT_DONE;
            if (s->hooks->on_connect != NULL)
                s->hooks->on_connect(s, s->error != 0 ? s->error : UV_ECANCELED, s->arg);
        }
        if (s->hooks->on_close != NULL)
            s->hooks->on_close(s, s->arg);
    }
    sock_release(s); /* the "handles open" reference */
}

static void on_handle_close(uv_handle_t *h)
{
    struct sock *s = h->data;

    if (--s->pending_closes == 0)
        sock_finish(s);
    sock_release(s); /* this close's */
}

/* Sets SO_LINGER {1, 0} so that close() sends RST. */
static void set_linger_zero(struct sock *s)
{
    struct linger l = {1, 0};
    uv_os_fd_t fd;

    if (uv_fileno(&s->h.handle, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
}

/* Closes both handles (the stream with RST when |reset| and TCP). on_close follows. */
static void close_handles(struct sock *s, int reset)
{
    if (s->state == SOCK_S_CLOSED)
        return;
    LOG_D("sock=%lu peer=%s close%s from %s", s->id, s->peer, reset ? " (reset)" : "",
          sock_state_name(s->state));
    s->state = SOCK_S_CLOSED;
    list_remove(&s->flush_node);
    uv_timer_stop(&s->timer);
    s->flags &= ~SOCK_F_READING;
    s->pending_closes++;
    s->refs++;
    uv_close((uv_handle_t *)&s->timer, on_handle_close);
    if (!(s->flags & SOCK_F_STREAM_INIT))
        return;
    s->pending_closes++;
    s->refs++;
    if (reset && !(s->flags & SOCK_F_PIPE)) {
        if (uv_tcp_close_reset(&s->h.tcp, on_handle_close) == 0)
            return;
        set_linger_zero(s); /* refused after uv_shutdown: do it by hand */
    }
    uv_close(&s->h.handle, on_handle_close);
}

static void on_timer(uv_timer_t *t);
static void timer_rearm(struct sock *s);
static uint64_t send_idle_step(const struct sock *s);
static size_t send_unread(struct sock *s, int all);
static uint64_t send_check(struct sock *s, uint64_t now, int all);

/* Closing: the timer is the close's alone, restarted for |ms| from now whatever it was set to. */
static void timer_restart(struct sock *s, uint64_t ms)
{
    s->timer_due = uv_now(s->sl->loop) + ms;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

/* The bounded wait of a graceful close, from now. */
static void close_wait_start(struct sock *s)
{
    s->flags &= ~SOCK_F_CLOSE_SEND;
    timer_restart(s, s->close_wait_ms);
}

/* Graceful close: flush, close_notify, FIN, wait (bounded) for the peer's end, close. */
static void do_close(struct sock *s)
{
    int send_wait;

    if (s->state >= SOCK_S_CLOSING)
        return;
    if (s->state == SOCK_S_CONNECTING ||
        (s->use_tls && !s->tls.handshake_done && !(s->flags & SOCK_F_NO_NOTIFY))) {
        close_handles(s, 0); /* no session yet: nothing to flush */
        return;
    }
    send_wait = s->send_idle_ms > 0;
    s->state = SOCK_S_CLOSING;
    s->flags |= SOCK_F_SHUT_WANTED;
    s->flags &= ~(SOCK_F_PAUSED | SOCK_F_IN_FULL | SOCK_F_DECRYPT | SOCK_F_WANT_FLUSH);
    if (s->use_tls && !(s->flags & SOCK_F_NO_NOTIFY) && !s->tls.close_notify_sent) {
        /* Plaintext still waiting goes before the close_notify. */
        if (encrypt_early(s) < 0) {
            close_handles(s, 1);
            return;
        }
        tls_shutdown(&s->tls);
        if (tls_collect(s) < 0) {
            close_handles(s, 1);
            return;
        }
    }
    s->deadline = 0;
    if (send_wait && sock_write_queued(s) > 0) {
        uint64_t now = uv_now(s->sl->loop);

        /* Under a send timeout the output still queued is flushed for as long as the peer keeps
         * taking it (nginx's send_timeout does the same before its lingering close); the close
         * wait starts once it is all out (sock_progress). A write that already waits keeps its
         * clock; from here the sum counts all output, to which nothing is added any more. */
        if (!(s->flags & SOCK_F_WRITING) || send_unread(s, 0) < s->send_left)
            s->send_since = now;
        s->send_left = send_unread(s, 1);
        s->send_due = 0;
        s->flags |= SOCK_F_CLOSE_SEND;
        timer_restart(s, send_idle_step(s));
    } else {
        close_wait_start(s);
    }
    update_reading(s);
    sock_schedule(s);
}

void sock_close(struct sock *s)
{
    if (s->state >= SOCK_S_CLOSING || (s->flags & SOCK_F_FAILED))
        return;
    if (s->depth > 0) {
        s->flags |= SOCK_F_CLOSE_SCHED;
        update_reading(s); /* stop delivering now */
        return;
    }
    do_close(s);
}

void sock_abort(struct sock *s)
{
    if (s->state == SOCK_S_CLOSED || (s->flags & SOCK_F_FAILED))
        return;
    if (s->depth > 0) {
        s->flags |= SOCK_F_ABORT_SCHED;
        if (s->state != SOCK_S_CLOSING)
            update_reading(s);
        return;
    }
    close_handles(s, 1);
}

int sock_shutdown(struct sock *s)
{
    if (!sock_live(s) || (s->flags & SOCK_F_FAIL_LATER))
        return CV_ECLOSED;
    if (s->flags & SOCK_F_SHUT_WANTED)
        return 0;
    s->flags |= SOCK_F_SHUT_WANTED;
    if (s->use_tls && s->tls.handshake_done) {
        if (encrypt_early(s) < 0) {
            sock_fail_later(s, CV_ETLS, "TLS write");
            return CV_ETLS;
        }
        tls_shutdown(&s->tls);
        if (tls_collect(s) < 0) {
            sock_fail_later(s, CV_ENOMEM, "TLS output");
            return CV_ENOMEM;
        }
    }
    sock_schedule(s);
    return 0;
}

/* ---- deadline -------------------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t)
{
    struct sock *s = t->data;
    uint64_t now = uv_now(s->sl->loop);

    s->timer_due = 0;
    if (s->state != SOCK_S_CLOSING) {
        /* The deadline and the send timeout's looks move without touching the timer when they
         * can: the timer may find nothing to do, or a later time to wait for. */
        int fire = 0;

        if (s->send_due != 0 && now >= s->send_due) {
            uint64_t next = (s->flags & SOCK_F_WRITING) ? send_check(s, now, 0) : 1;

            if (!(s->flags & SOCK_F_WRITING)) {
                s->send_due = 0;
            } else if (next == 0) {
                /* Told once per limit: an owner that keeps the sock hears again after another. */
                s->send_since = now;
                s->send_due = now + send_idle_step(s);
                s->flags |= SOCK_F_SEND_STALLED;
                fire = 1;
            } else {
                s->send_due = now + next;
            }
        }
        if (!fire && s->deadline != 0 && now >= s->deadline) {
            s->deadline = 0;
            fire = 1;
        }
        if (!fire) {
            timer_rearm(s);
            return;
        }
    } else if (s->flags & SOCK_F_CLOSE_SEND) {
        uint64_t next = send_check(s, now, 1);

        if (next > 0) {
            timer_restart(s, next);
            return;
        }
    }
    sock_enter(s);
    if (s->state == SOCK_S_CLOSING) {
        /* The bounded wait of a graceful close: unsent output means a reset (truncation shows). */
        LOG_D("sock=%lu peer=%s close wait expired with %zu bytes unsent", s->id, s->peer,
              sock_write_queued(s));
        close_handles(s, sock_write_queued(s) > 0 || !(s->flags & SOCK_F_FIN_DONE));
    } else if (sock_live(s)) {
        if (s->state == SOCK_S_OPEN && s->hooks->on_timeout != NULL) {
            s->hooks->on_timeout(s, s->arg);
            s->flags &= ~SOCK_F_SEND_STALLED;
            if (s->state == SOCK_S_OPEN)
                timer_rearm(s); /* the other of the two clocks, if the owner kept the sock */
        } else if (s->state == SOCK_S_CONNECTING)
            sock_fail_text(s, CV_ETIMEDOUT, "connect timed out");
        else if (s->state == SOCK_S_HANDSHAKE)
            sock_fail_text(s, CV_ETIMEDOUT, "TLS handshake timed out");
        else
            sock_fail_text(s, CV_ETIMEDOUT, "timed out");
    }
    sock_leave(s);
}

/* Deadlines change several times per request (header read, response, keep-alive): a timer heap
 * update each time showed in profiles. The timer stays armed at the earliest time it has been
 * given and re-arms itself when it fires early; it is only restarted when a time moves earlier
 * than it. */
static void timer_by(struct sock *s, uint64_t due)
{
    uint64_t now = uv_now(s->sl->loop);

    if (s->timer_due != 0 && s->timer_due <= due)
        return;
    s->timer_due = due;
    uv_timer_start(&s->timer, on_timer, due > now ? due - now : 0, 0);
}

/* After the timer fired: armed for the earlier of the deadline and the send timeout's next look. */
static void timer_rearm(struct sock *s)
{
    uint64_t due = s->deadline;

    if (s->send_due != 0 && (due == 0 || s->send_due < due))
        due = s->send_due;
    if (due != 0)
        timer_by(s, due);
}

void sock_set_timeout(struct sock *s, uint64_t ms)
{
    if (s->state >= SOCK_S_CLOSING)
        return;
    if (ms == 0) {
        s->deadline = 0; /* an armed timer finds nothing to do */
        return;
    }
    s->deadline = uv_now(s->sl->loop) + ms;
    timer_by(s, s->deadline);
}

/*
 * The send timeout (nginx's send_timeout): it runs only while a write request waits for the peer
 * to read (the kernel refused part of what was written), and starts again with every byte the
 * peer takes. The kernel only asks for more once half its send buffer (up to megabytes) drained,
 * so a slow reader's progress shows first as the kernel's unacknowledged bytes shrinking
 * (TIOCOUTQ): the timer looks every quarter of the limit, and a stall is noticed between the
 * limit and a quarter past it.
 */
static uint64_t send_idle_step(const struct sock *s)
{
    return s->send_idle_ms >= 4 ? s->send_idle_ms / 4 : 1;
}

/* Bytes not yet taken by the peer: the rest of the write request (libuv's count) plus what the
 * kernel holds (TCP: written and not acknowledged, exact; a unix socket reports buffer memory,
 * which only drops when the reader took a whole packet, so there a reader must take one packet
 * per limit: the edge's visitors are TCP). With |all|, also the output not yet in a write
 * request: once closing nothing is added, so that sum only shrinks (open, the owner adds to it,
 * so each write request is followed on its own). */
static size_t send_unread(struct sock *s, int all)
{
    uv_os_fd_t fd;
    int q = 0;
    size_t n = s->h.stream.write_queue_size;

    if (uv_fileno(&s->h.handle, &fd) != 0 || ioctl(fd, TIOCOUTQ, &q) != 0 || q < 0)
        q = 0;
    n += (size_t)q;
    if (all)
        n += buf_len(&s->pending) + buf_len(&s->early);
    return n;
}

/* One look of the send timeout: notes progress since the last; returns 0 when none came for the
 * limit, else the wait until the next look. */
static uint64_t send_check(struct sock *s, uint64_t now, int all)
{
    size_t unread = send_unread(s, all);
    uint64_t step = send_idle_step(s);
    uint64_t left;

    if (unread < s->send_left) {
        s->send_left = unread;
        s->send_since = now;
    }
    if (now - s->send_since >= s->send_idle_ms)
        return 0;
    left = s->send_since + s->send_idle_ms - now;
    return left < step ? left : step;
}

/* A write request waits for the peer: the clock starts (each request follows its own bytes). */
static void send_wait_start(struct sock *s)
{
    s->send_since = uv_now(s->sl->loop);
    s->send_left = send_unread(s, 0);
    s->send_due = s->send_since + send_idle_step(s);
    timer_by(s, s->send_due);
}

void sock_set_send_timeout(struct sock *s, uint64_t ms)
{
    if (s->state >= SOCK_S_CLOSING || ms == s->send_idle_ms)
        return;
    s->send_idle_ms = ms;
    s->send_due = 0;
    if (ms > 0 && (s->flags & SOCK_F_WRITING))
        send_wait_start(s);
}

int sock_send_stalled(const struct sock *s)
{
    return (s->flags & SOCK_F_SEND_STALLED) != 0;
}

/* ---- creation -------------------------------------------------------------------------------- */

static struct sock *sock_alloc(struct sock_loop *sl, const struct sock_opts *o,
                               const struct sock_hooks *h, void *arg)
{
    struct sock *s = mem_calloc(sizeof(*s));

    if (s == NULL)
        return NULL;
    s->sl = sl;
    s->id = ++sl->next_id;
    s->refs = 1;
    s->hooks = h != NULL ? h : &null_hooks;
    s->arg = arg;
    list_init(&s->flush_node);
    buf_init(&s->in, o != NULL && o->in_cap > 0 ? o->in_cap : SOCK_IN_CAP_DEFAULT);
    buf_init(&s->pending, SIZE_MAX);
    buf_init(&s->inflight, SIZE_MAX);
    buf_init(&s->early, SIZE_MAX);
    s->out_high = o != NULL && o->out_high > 0 ? o->out_high : SOCK_OUT_HIGH_DEFAULT;
    s->close_wait_ms =
        o != NULL && o->close_wait_ms > 0 ? o->close_wait_ms : SOCK_CLOSE_WAIT_DEFAULT_MS;
    uv_timer_init(sl->loop, &s->timer);
    s->timer.data = s;
    s->h.handle.data = s;
    s->creq.data = s;
    s->wreq.data = s;
    s->sreq.data = s;
    list_push_back(&sl->all, &s->all_node);
    sl->nsocks++;
    return s;
}

/* Undoes a creation that failed after the handles were initialised: no hook will run. */
static void sock_abandon(struct sock *s)
{
    s->flags |= SOCK_F_SILENT;
    close_handles(s, 0);
}

static void format_addr(struct sock *s, const struct sockaddr *sa)
{
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

        uv_ip4_name(in, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        snprintf(s->peer, sizeof(s->peer), "%s:%u", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

        uv_ip6_name(in6, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        snprintf(s->peer, sizeof(s->peer), "[%s]:%u", ip, port);
    } else {
        return;
    }
    snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", ip);
}

static void apply_tcp_opts(struct sock *s, const struct sock_opts *o)
{
    if (o == NULL || (s->flags & SOCK_F_PIPE))
        return;
    if (o->nodelay)
        (void)uv_tcp_nodelay(&s->h.tcp, 1);
    if (o->keepalive_s > 0)
        (void)uv_tcp_keepalive(&s->h.tcp, 1, o->keepalive_s);
}

struct sock *sock_accept(struct sock_loop *sl, uv_stream_t *server, const struct sock_opts *o,
                         const struct sock_hooks *h, void *arg, int *err)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    struct sock *s;
    int rv;

    s = sock_alloc(sl, o, h, arg);
    if (s == NULL) {
        *err = CV_ENOMEM;
        return NULL;
    }
    if (server->type == UV_NAMED_PIPE) {
        s->flags |= SOCK_F_PIPE;
        rv = uv_pipe_init(sl->loop, &s->h.pipe, 0);
    } else {
        rv = uv_tcp_init(sl->loop, &s->h.tcp);
    }
    if (rv < 0)
        goto fail;
    s->flags |= SOCK_F_STREAM_INIT;
    s->h.handle.data = s;
    rv = uv_accept(server, &s->h.stream);
    if (rv < 0)
        goto fail;
    if (o != NULL && o->tls_ctx != NULL) {
        rv = tls_init_server(&s->tls, o->tls_ctx);
        if (rv == 0)
            rv = tls_set_sink(&s->tls, &s->pending);
        if (rv < 0)
            goto fail;
        s->use_tls = 1;
    }
    if (!(s->flags & SOCK_F_PIPE) &&
        uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &len) == 0)
        format_addr(s, (const struct sockaddr *)&ss);
    apply_tcp_opts(s, o);
    s->state = s->use_tls ? SOCK_S_HANDSHAKE : SOCK_S_OPEN;
    rv = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (rv < 0)
        goto fail;
    s->flags |= SOCK_F_READING;
    LOG_D("sock=%lu peer=%s accepted%s", s->id, s->peer, s->use_tls ? " (TLS)" : "");
    return s;
fail:
    *err = rv;
    sock_abandon(s);
    return NULL;
}

static void on_connected(uv_connect_t *req, int status)
{
    struct sock *s = req->data;

    sock_enter(s);
    if (status == UV_ECANCELED || !sock_live(s))
        goto out;
    if (status < 0) {
        sock_fail(s, status, "connect");
        goto out;
    }
    if (s->use_tls) {
        s->state = SOCK_S_HANDSHAKE;
        update_reading(s);
        tls_advance(s); /* ClientHello */
    } else {
        s->state = SOCK_S_OPEN;
        s->flags |= SOCK_F_CONNECT_DONE;
        update_reading(s);
        sock_schedule(s); /* anything written while connecting */
        if (s->hooks->on_connect != NULL)
            s->hooks->on_connect(s, 0, s->arg);
    }
out:
    sock_leave(s);
    sock_release(s); /* the request's */
}

/* Shared part of the two client constructors, up to the connect call. */
static struct sock *client_new(struct sock_loop *sl, const struct sock_opts *o,
                               const struct sock_hooks *h, void *arg, int *err)
{
    struct sock *s = sock_alloc(sl, o, h, arg);
    int rv;

    if (s == NULL) {
        *err = CV_ENOMEM;
        return NULL;
    }
    s->flags |= SOCK_F_CLIENT;
    if (o != NULL && o->tls_ctx != NULL) {
        rv = tls_init_client(&s->tls, o->tls_ctx, o->servername);
        if (rv == 0)
            rv = tls_set_sink(&s->tls, &s->pending);
        if (rv < 0) {
            *err = rv;
            s->flags |= SOCK_F_SILENT;
            close_handles(s, 0);
            return NULL;
        }
        s->use_tls = 1;
    }
    return s;
}

struct sock *sock_connect(struct sock_loop *sl, const struct sockaddr *addr,
                          const struct sock_opts *o, const struct sock_hooks *h, void *arg,
                          int *err)
{
    struct sock *s = client_new(sl, o, h, arg, err);
    int rv;

    if (s == NULL)
        return NULL;
    format_addr(s, addr);
    rv = uv_tcp_init(sl->loop, &s->h.tcp);
    if (rv < 0)
        goto fail;
    s->flags |= SOCK_F_STREAM_INIT;
    s->h.handle.data = s;
    rv = uv_tcp_connect(&s->creq, &s->h.tcp, addr, on_connected);
    if (rv < 0)
        goto fail;
    s->refs++; /* the request's */
    apply_tcp_opts(s, o);
    return s;
fail:
    *err = rv;
    sock_abandon(s);
    return NULL;
}

struct sock *sock_connect_unix(struct sock_loop *sl, const char *path, const struct sock_opts *o,
                               const struct sock_hooks *h, void *arg, int *err)
{
    struct sock *s = client_new(sl, o, h, arg, err);
    int rv;

    if (s == NULL)
        return NULL;
    s->flags |= SOCK_F_PIPE;
    rv = uv_pipe_init(sl->loop, &s->h.pipe, 0);
    if (rv < 0) {
        *err = rv;
        sock_abandon(s);
        return NULL;
    }
    s->flags |= SOCK_F_STREAM_INIT;
    s->h.handle.data = s;
    uv_pipe_connect(&s->creq, &s->h.pipe, path, on_connected); /* errors come to on_connected */
    s->refs++;
    return s;
}

/* ---- reading control and accessors ----------------------------------------------------------- */

struct buf *sock_in(struct sock *s)
{
    return &s->in;
}

void sock_read_start(struct sock *s)
{
    unsigned was_held = s->flags & (SOCK_F_PAUSED | SOCK_F_IN_FULL);

    if (s->state >= SOCK_S_CLOSING)
        return;
    /* Not paused and not full: nothing to resume (owners call this freely; it must not turn into
     * epoll_ctl calls per request). */
    if (was_held == 0)
        return;
    s->flags &= ~SOCK_F_PAUSED;
    if (buf_space(&s->in) > 0)
        s->flags &= ~SOCK_F_IN_FULL;
    if (s->use_tls && s->state == SOCK_S_OPEN && sock_live(s) && !(s->flags & SOCK_F_EOF_DONE)) {
        s->flags |= SOCK_F_DECRYPT; /* plaintext may be waiting inside OpenSSL */
        sock_schedule(s);
    }
    update_reading(s);
}

void sock_read_stop(struct sock *s)
{
    if (s->state >= SOCK_S_CLOSING)
        return;
    s->flags |= SOCK_F_PAUSED;
    update_reading(s);
}

const char *sock_peer(const struct sock *s)
{
    return s->peer;
}

const char *sock_peer_ip(const struct sock *s)
{
    return s->peer_ip;
}

int sock_local_port(const struct sock *s)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    int rv;

    if ((s->flags & SOCK_F_PIPE) || !(s->flags & SOCK_F_STREAM_INIT) || s->state == SOCK_S_CLOSED)
        return 0;
    rv = uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &len);
    if (rv < 0)
        return rv;
    if (ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)&ss)->sin6_port);
    return 0;
}

struct tls *sock_tls(struct sock *s)
{
    return s->use_tls ? &s->tls : NULL;
}

const char *sock_error_text(const struct sock *s)
{
    return s->err_text;
}

void *sock_arg(const struct sock *s)
{
    return s->arg;
}

void sock_set_arg(struct sock *s, void *arg)
{
    s->arg = arg;
}

void sock_set_hooks(struct sock *s, const struct sock_hooks *h)
{
    s->hooks = h != NULL ? h : &null_hooks;
}

uv_loop_t *sock_uv_loop(const struct sock *s)
{
    return s->sl->loop;
}

struct sock_loop *sock_get_loop(const struct sock *s)
{
    return s->sl;
}

/* ---- name resolution ------------------------------------------------------------------------- */

struct sock_resolve_req {
    uv_getaddrinfo_t req;
    sock_resolve_cb cb;
    void *arg;
};

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct sock_resolve_req *r = req->data;

    r->cb(status, status == 0 ? res : NULL, r->arg);
    if (res != NULL)
        uv_freeaddrinfo(res);
    mem_free(r);
}

int sock_resolve(struct sock_loop *sl, const char *host, const char *port, sock_resolve_cb cb,
                 void *arg)
{
    struct sock_resolve_req *r = mem_calloc(sizeof(*r));
    struct addrinfo hints;
    int rv;

    if (r == NULL)
        return CV_ENOMEM;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    r->cb = cb;
    r->arg = arg;
    r->req.data = r;
    rv = uv_getaddrinfo(sl->loop, &r->req, on_resolved, host, port, &hints);
    if (rv < 0) {
        mem_free(r);
        return rv;
    }
    return 0;
}
