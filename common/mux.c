/*
 * mux.c - one tunnel connection's multiplexer; see mux.h and proto/PROTOCOL.md.
 *
 * Layers: below, the transport (edge/tunnel_conn.c, connector/edge_conn.c) feeds decrypted bytes and
 * pulls frames to encrypt; above, the edge's public side and the connector's origin side own the
 * streams. Sans-I/O and single-threaded (the loop thread).
 *
 * Output: control frames and metadata blocks are encoded into |out| at once, in order; DATA is
 * framed from the per-stream send queues only when the transport pulls (mux_pending), round-robin
 * over |ready| streams, so control frames (PONG, RESET, WINDOW_UPDATE) always go ahead of queued data
 * and no stream starves the others.
 *
 * Stream lifetime: a stream is *open* (counted against the concurrency limit and present in the id
 * table) until both directions are closed or it is reset. It is *held* by the application from its
 * creation until mux_stream_release(). Its memory is freed when it is neither open nor held and owes
 * the peer nothing. Frees requested while a hook is running are deferred to the end of the outermost
 * mux call (|depth|), so hooks may release or reset any stream safely.
 */
#include "mux.h"

#include <string.h>

#include <openssl/crypto.h>

#include "err.h"
#include "list.h"
#include "log.h"
#include "mem.h"
#include "wire.h"

/* Stream flags, one per line with what they block. */
#define S_F_HELD 0x0001          /* the application holds the stream: hooks may be called */
#define S_F_LOCAL_END 0x0002     /* app ended its direction: END_STREAM goes after the queue */
#define S_F_LOCAL_CLOSED 0x0004  /* END_STREAM framed (or reset): nothing more may be sent */
#define S_F_REMOTE_CLOSED 0x0008 /* END_STREAM received (or reset): peer DATA is an error */
#define S_F_RESET 0x0010         /* reset either way: no hooks, no frames but WINDOW_UPDATE ignored */
#define S_F_DISPATCHED 0x0020    /* connector sent / edge received DISPATCHED or a response */
#define S_F_FINAL 0x0040         /* edge: final response block received; DATA allowed */
#define S_F_WRITE_WAIT 0x0080    /* a write was short: on_writable is owed once the queue drains */
#define S_F_OPEN 0x0100          /* counted in nstreams and present in the id table */
#define S_F_ZOMBIE 0x0200        /* on the zombie list, freed at the end of the outermost call */
#define S_F_NOTIFY 0x0400        /* on the notify list for on_writable */

/* Mux flags. */
#define MUX_F_GOAWAY_SENT 0x01   /* we sent GOAWAY: no new streams (edge: none opened) */
#define MUX_F_GOAWAY_RECV 0x02   /* peer sent GOAWAY: edge opens no new streams */
#define MUX_F_PREFACE_OK 0x04    /* edge: the 8-octet preface was checked */
#define MUX_F_WANT_SIGNALED 0x08 /* want_write already called since the last mux_pending */

#define PING_RING 8
/* §12: interim (1xx) responses per stream; a 100 Continue and a few 103 Early Hints fit. */
#define MUX_MAX_INTERIM 16
#define OUT_CAP (8u * 1024 * 1024)
/* §9.5: a stream whose reader consumed half its window within 10 ms (or four round trips, counted
 * up to one second) gets a bigger window. */
#define MUX_GROW_FLOOR_US 10000
#define MUX_GROW_CEIL_US 1000000

struct mux_stream {
    struct mux *m;
    uint32_t id;
    uint32_t flags;
    int64_t send_window;       /* credit the peer gave us */
    int64_t recv_window;       /* credit we gave the peer, minus what it used */
    uint64_t recv_unconsumed;  /* delivered to on_data, not yet consumed */
    uint64_t consumed_pending; /* consumed, not yet returned in a WINDOW_UPDATE */
    uint64_t grant_us;         /* when the last WINDOW_UPDATE was sent; 0 before the first */
    uint64_t unconsumed_peak;  /* most delivered-and-unconsumed bytes since that update */
    uint32_t recv_size;        /* the stream's receive window: initial_stream_window, auto-tuned */
    int64_t expect_len;        /* content-length of what we receive, or -1 */
    uint64_t recv_len;         /* DATA octets received */
    uint32_t interim;          /* 1xx responses received (edge) */
    struct buf sendq;
    struct mux_stream *hnext;  /* id table chain */
    struct list_node all_node;
    struct list_node ready_node;  /* on m->ready: queued data (or END_STREAM) and credit */
    struct list_node notify_node; /* on m->notify: owes on_writable */
    const struct mux_stream_hooks *sh;
    void *data;
};

struct ping_rec {
    uint64_t seq;
    uint64_t sent_us;
};

struct mux {
    enum mux_role role;
    enum mux_state state;
    uint32_t flags;
    struct cv_limits lim;
    const struct mux_hooks *hooks;
    void *arg;
    struct frame_settings local;
    struct frame_settings peer;
    struct buf out;
    struct mux_stream *inplace; /* a DATA frame framed in its send queue: see frame_one */
    size_t inplace_len;         /* its header and payload */
    unsigned control_queued;
    uint64_t data_frames_out; /* DATA frames sent, for the WINDOW_UPDATE ratio */
    uint64_t window_updates_in;

    int64_t conn_send_window;
    int64_t conn_recv_window;
    uint64_t conn_consumed_pending;

    uint32_t next_stream_id;   /* edge: next odd id to open */
    uint32_t last_peer_stream; /* connector: highest id the edge opened */
    uint32_t goaway_last_id;   /* what we announced in our GOAWAY */
    uint32_t goaway_recv_last; /* the Last Stream Id of the peer's latest GOAWAY */
    uint32_t nstreams;

    /* Metadata block being assembled (HEADERS + CONTINUATION). */
    int in_block;
    uint32_t block_stream;
    uint8_t block_flags;
    unsigned block_conts;
    int block_discard;  /* over max_metadata_size: collect nothing, reset at the end */
    int block_new;      /* connector: the block opens a new stream */
    struct buf block;

    /* Budgets (PROTOCOL.md §12). */
    uint64_t reset_tokens_milli;
    uint64_t reset_refill_us;
    unsigned empty_frames;
    unsigned unknown_frames;
    uint64_t unknown_window_us;

    /* Liveness. */
    uint64_t ping_seq;
    unsigned pings_outstanding;
    struct ping_rec pings[PING_RING];
    uint64_t last_rtt_us;
    uint64_t last_recv_us;
    uint64_t window_grown; /* §9.5: credit granted beyond initial_stream_window, all streams */

    /* Registration being judged by the edge's hook. */
    struct frame_register pending_reg;

    /* Streams. */
    struct mux_stream **buckets;
    uint32_t nbuckets;
    struct list_node streams;
    struct list_node ready;
    struct list_node notify;
    struct list_node zombies;
    unsigned depth;

    struct mux_stats st;
};

static const char *const state_names[MUX_S_COUNT] = {"preface", "registering", "open", "closed"};

const char *mux_state_name(enum mux_state st)
{
    return st < MUX_S_COUNT ? state_names[st] : "?";
}

static uint64_t now_us(const struct mux *m)
{
    return m->hooks->now_us != NULL ? m->hooks->now_us(m->arg) : 0;
}

static void want_write(struct mux *m)
{
    if (m->flags & MUX_F_WANT_SIGNALED)
        return;
    m->flags |= MUX_F_WANT_SIGNALED;
    if (m->hooks->want_write != NULL)
        m->hooks->want_write(m, m->arg);
}

/* ---- id table ------------------------------------------------------------------------------- */

static uint32_t bucket_of(const struct mux *m, uint32_t id)
{
    return (id * 2654435761u >> 7) & (m->nbuckets - 1);
}

static struct mux_stream *stream_lookup(const struct mux *m, uint32_t id)
{
    struct mux_stream *s;

    for (s = m->buckets[bucket_of(m, id)]; s != NULL; s = s->hnext) {
        if (s->id == id)
            return s;
    }
    return NULL;
}

static void table_insert(struct mux *m, struct mux_stream *s)
{
    uint32_t b = bucket_of(m, s->id);

    s->hnext = m->buckets[b];
    m->buckets[b] = s;
}

static void table_remove(struct mux *m, struct mux_stream *s)
{
    struct mux_stream **pp = &m->buckets[bucket_of(m, s->id)];

    while (*pp != NULL) {
        if (*pp == s) {
            *pp = s->hnext;
            s->hnext = NULL;
            return;
        }
        pp = &(*pp)->hnext;
    }
}

/* ---- creation ------------------------------------------------------------------------------- */

void mux_local_settings(const struct mux *m, struct frame_settings *s)
{
    *s = m->local;
}

const struct frame_settings *mux_peer_settings(const struct mux *m)
{
    return &m->peer;
}

struct mux *mux_new(enum mux_role role, const struct cv_limits *limits, const struct mux_hooks *hooks,
                    void *arg)
{
    struct mux *m = mem_calloc(sizeof(*m));
    uint32_t nb = 16;

    if (m == NULL)
        return NULL;
    m->role = role;
    m->state = role == MUX_ROLE_EDGE ? MUX_S_PREFACE : MUX_S_REGISTERING;
    m->lim = *limits;
    m->hooks = hooks;
    m->arg = arg;
    m->local.initial_stream_window = limits->stream_window;
    m->local.connection_window = limits->connection_window;
    m->local.max_frame_size = limits->max_frame_size;
    m->local.max_concurrent_streams = limits->max_concurrent_streams;
    m->local.max_metadata_size = limits->max_metadata_size;
    /* Until the handshake completes the peer is assumed to use the protocol's defaults (§3.2). */
    m->peer.initial_stream_window = 262144;
    m->peer.connection_window = 16777216;
    m->peer.max_frame_size = FRAME_MIN_MAX_SIZE;
    m->peer.max_concurrent_streams = 256;
    m->peer.max_metadata_size = 65536;
    while (nb < 2 * limits->max_concurrent_streams && nb < 65536)
        nb *= 2;
    m->nbuckets = nb;
    m->buckets = mem_calloc(nb * sizeof(*m->buckets));
    if (m->buckets == NULL) {
        mem_free(m);
        return NULL;
    }
    buf_init(&m->out, OUT_CAP);
    buf_init(&m->block, (size_t)limits->max_metadata_size + FRAME_MAX_MAX_SIZE);
    list_init(&m->streams);
    list_init(&m->ready);
    list_init(&m->notify);
    list_init(&m->zombies);
    m->next_stream_id = 1;
    m->reset_tokens_milli = (uint64_t)limits->reset_burst * 1000;
    m->reset_refill_us = now_us(m);
    m->unknown_window_us = m->reset_refill_us;
    m->last_recv_us = m->reset_refill_us;
    return m;
}

static int stream_settle(struct mux_stream *s);

static void stream_free(struct mux_stream *s)
{
    (void)stream_settle(s);
    if (s->recv_size > s->m->local.initial_stream_window)
        s->m->window_grown -= s->recv_size - s->m->local.initial_stream_window;
    list_remove(&s->all_node);
    list_remove(&s->ready_node);
    list_remove(&s->notify_node);
    buf_cleanup(&s->sendq);
    mem_free(s);
}

void mux_free(struct mux *m)
{
    struct list_node *pos;
    struct list_node *tmp;

    if (m == NULL)
        return;
    m->inplace = NULL; /* nothing will be sent */
    list_for_each_safe(pos, tmp, &m->streams)
    {
        stream_free(container_of(pos, struct mux_stream, all_node));
    }
    list_for_each_safe(pos, tmp, &m->zombies)
    {
        stream_free(container_of(pos, struct mux_stream, all_node));
    }
    OPENSSL_cleanse(m->pending_reg.secret, sizeof(m->pending_reg.secret));
    buf_cleanup(&m->out);
    buf_cleanup(&m->block);
    mem_free(m->buckets);
    mem_free(m);
}

enum mux_state mux_state(const struct mux *m)
{
    return m->state;
}

uint32_t mux_open_streams(const struct mux *m)
{
    return m->nstreams;
}

int64_t mux_send_window(const struct mux *m)
{
    return m->conn_send_window;
}

void mux_stats(const struct mux *m, struct mux_stats *st)
{
    struct list_node *pos;

    *st = m->st;
    st->open_streams = m->nstreams;
    st->conn_send_window = m->conn_send_window;
    st->conn_recv_window = m->conn_recv_window;
    st->rtt_us = m->last_rtt_us;
    st->pings_outstanding = m->pings_outstanding;
    st->queued_bytes = buf_len(&m->out);
    list_for_each(pos, &m->streams)
    {
        st->queued_bytes += buf_len(&container_of(pos, struct mux_stream, all_node)->sendq);
    }
}

/* ---- output helpers ------------------------------------------------------------------------- */

/* Reserves |n| bytes in |out|. On failure the connection cannot go on: the caller fails it. */
static uint8_t *out_reserve(struct mux *m, size_t n)
{
    return buf_reserve(&m->out, n, NULL);
}

static int queue_control(struct mux *m, ssize_t len)
{
    if (len < 0)
        return CV_ENOMEM;
    buf_commit(&m->out, (size_t)len);
    m->st.frames_out++;
    m->control_queued++;
    want_write(m);
    if (m->control_queued > m->lim.max_control_queued)
        return CV_ECALM;
    return 0;
}

static int send_reset_frame(struct mux *m, uint32_t sid, uint32_t code)
{
    uint8_t *p = out_reserve(m, FRAME_HDR_LEN + 4);

    if (p == NULL)
        return CV_ENOMEM;
    m->st.resets_out++;
    return queue_control(m, frame_encode_reset(p, FRAME_HDR_LEN + 4, sid, code));
}

static int send_window_update(struct mux *m, uint32_t sid, uint32_t inc)
{
    uint8_t *p = out_reserve(m, FRAME_HDR_LEN + 4);

    if (p == NULL)
        return CV_ENOMEM;
    return queue_control(m, frame_encode_window_update(p, FRAME_HDR_LEN + 4, sid, inc));
}

static int send_goaway(struct mux *m, uint32_t last_id, uint32_t code, uint32_t retry,
                       const char *reason)
{
    struct frame_goaway g;
    size_t rlen = reason != NULL ? strlen(reason) : 0;
    uint8_t *p;
    ssize_t len;

    if (rlen > FRAME_GOAWAY_MAX_REASON)
        rlen = FRAME_GOAWAY_MAX_REASON;
    g.last_stream_id = last_id;
    g.code = code;
    g.retry_after_ms = retry;
    g.reason = (const uint8_t *)reason;
    g.reason_len = rlen;
    p = out_reserve(m, FRAME_HDR_LEN + 12 + rlen);
    if (p == NULL)
        return CV_ENOMEM;
    len = frame_encode_goaway(p, FRAME_HDR_LEN + 12 + rlen, &g);
    if (len < 0)
        return CV_ENOMEM;
    buf_commit(&m->out, (size_t)len);
    m->st.frames_out++;
    want_write(m);
    return 0;
}

/* Maps a connection-error code to the value mux_feed returns. */
static int code_to_err(uint32_t code)
{
    switch (code) {
    case CODE_FLOW_CONTROL_ERROR:
        return CV_EFLOW;
    case CODE_FRAME_SIZE_ERROR:
        return CV_EFRAMESIZE;
    case CODE_ENHANCE_YOUR_CALM:
        return CV_ECALM;
    case CODE_INTERNAL_ERROR:
        return CV_ENOMEM;
    default:
        return CV_EPROTO;
    }
}

/*
 * Connection error (PROTOCOL.md §6.1): queue GOAWAY with |code| and stop parsing. Returns the error
 * for mux_feed to pass up.
 */
static int conn_error(struct mux *m, uint32_t code, const char *why)
{
    if (m->state != MUX_S_CLOSED) {
        LOG_W("mux role=%s connection error %s: %s", m->role == MUX_ROLE_EDGE ? "edge" : "connector",
              frame_code_name(code), why);
        m->flags |= MUX_F_GOAWAY_SENT;
        /* §11.1: the highest peer-initiated stream we processed (the edge receives none). */
        send_goaway(m, m->role == MUX_ROLE_CONNECTOR ? m->last_peer_stream : 0, code,
                    FRAME_RETRY_NEVER, why);
        m->state = MUX_S_CLOSED;
    }
    return code_to_err(code);
}

/* ---- stream bookkeeping --------------------------------------------------------------------- */

static struct mux_stream *stream_new(struct mux *m, uint32_t id)
{
    struct mux_stream *s = mem_calloc(sizeof(*s));

    if (s == NULL)
        return NULL;
    s->m = m;
    s->id = id;
    s->send_window = m->peer.initial_stream_window;
    s->recv_window = m->local.initial_stream_window;
    s->recv_size = m->local.initial_stream_window;
    s->expect_len = -1;
    buf_init(&s->sendq, m->lim.stream_send_buffer);
    list_init(&s->ready_node);
    list_init(&s->notify_node);
    list_push_back(&m->streams, &s->all_node);
    table_insert(m, s);
    s->flags = S_F_OPEN | S_F_HELD;
    m->nstreams++;
    return s;
}

/* Frees |s| now, or at the end of the outermost mux call when hooks are running. */
static void stream_destroy(struct mux_stream *s)
{
    struct mux *m = s->m;

    if (m->depth > 0) {
        if (!(s->flags & S_F_ZOMBIE)) {
            s->flags |= S_F_ZOMBIE;
            list_remove(&s->all_node);
            list_push_back(&m->zombies, &s->all_node);
            list_remove(&s->ready_node);
            list_remove(&s->notify_node);
        }
        return;
    }
    stream_free(s);
}

/* Leaves the open set (both directions closed or reset). */
static void stream_unopen(struct mux_stream *s)
{
    struct mux *m = s->m;

    if (!(s->flags & S_F_OPEN))
        return;
    s->flags &= ~S_F_OPEN;
    table_remove(m, s);
    m->nstreams--;
}

/* Frees |s| if nobody needs it any more. */
static void stream_maybe_free(struct mux_stream *s)
{
    if (s->flags & (S_F_HELD | S_F_OPEN))
        return;
    stream_destroy(s);
}

static void sweep_zombies(struct mux *m)
{
    struct list_node *pos;
    struct list_node *tmp;

    if (m->depth > 0)
        return;
    list_for_each_safe(pos, tmp, &m->zombies)
    {
        stream_free(container_of(pos, struct mux_stream, all_node));
    }
}

/* Returns connection credit for received octets that will never be consumed. */
static int conn_credit(struct mux *m, uint64_t n)
{
    uint64_t inc;

    m->conn_consumed_pending += n;
    if (m->conn_consumed_pending < m->local.connection_window / 2 || m->state == MUX_S_CLOSED)
        return 0;
    inc = m->conn_consumed_pending;
    m->conn_consumed_pending = 0;
    m->conn_recv_window += (int64_t)inc;
    return send_window_update(m, 0, (uint32_t)inc);
}

/*
 * Draws one token from the reset budget (PROTOCOL.md §12). What counts is what a hostile peer can
 * repeat at no cost: RESETs it sends for streams that are no longer open, and RESETs we send
 * because of its frames (stream errors, the MadeYouReset pattern). Resets as a stream's ordinary
 * outcome (a visitor went away, an origin was unreachable) do not count: a tunnel connection
 * carries many visitors, so the edge budgets their aborts per client IP instead.
 */
static int reset_budget(struct mux *m)
{
    uint64_t t = now_us(m);
    uint64_t cap = (uint64_t)m->lim.reset_burst * 1000;

    if (t > m->reset_refill_us) {
        m->reset_tokens_milli += (t - m->reset_refill_us) * m->lim.reset_per_sec / 1000;
        if (m->reset_tokens_milli > cap)
            m->reset_tokens_milli = cap;
        m->reset_refill_us = t;
    }
    if (m->reset_tokens_milli < 1000)
        return CV_ECALM;
    m->reset_tokens_milli -= 1000;
    return 0;
}

/* Marks |s| reset: both directions closed, queue dropped, unconsumed credit returned. */
static int stream_mark_reset(struct mux_stream *s)
{
    struct mux *m = s->m;
    int rv;

    (void)stream_settle(s); /* a frame framed before the reset goes first */
    s->flags |= S_F_RESET | S_F_LOCAL_CLOSED | S_F_REMOTE_CLOSED;
    list_remove(&s->ready_node);
    list_remove(&s->notify_node);
    buf_cleanup(&s->sendq);
    stream_unopen(s);
    /* Bytes delivered but never consumed go back to the connection window now. Consumed ones
     * already did (mux_stream_consumed credits the connection at once); only the stream's own
     * window was waiting for them, and the stream is gone. */
    rv = conn_credit(m, s->recv_unconsumed);
    s->recv_unconsumed = 0;
    s->consumed_pending = 0;
    return rv;
}

/*
 * Stream error (PROTOCOL.md §6.2) on |s| (or on a bare id when |s| is NULL): send RESET, tell the
 * application. Returns 0, or a connection-level failure (the reset budget tripped, no memory).
 */
static int stream_error(struct mux *m, struct mux_stream *s, uint32_t sid, uint32_t code, const char *why)
{
    int rv;

    LOG_D("mux stream=%u stream error %s: %s", sid, frame_code_name(code), why);
    if (reset_budget(m) < 0)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "reset budget exhausted");
    if (send_reset_frame(m, sid, code) < 0)
        return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    if (s == NULL || (s->flags & S_F_RESET))
        return 0;
    rv = stream_mark_reset(s);
    if (rv < 0)
        return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_reset != NULL)
        s->sh->on_reset(s, code, s->data);
    stream_maybe_free(s);
    return 0;
}

/* Called when a direction closes; leaves the open set once both are. */
static void stream_check_closed(struct mux_stream *s)
{
    if ((s->flags & S_F_LOCAL_CLOSED) && (s->flags & S_F_REMOTE_CLOSED)) {
        stream_unopen(s);
        stream_maybe_free(s);
    }
}

/* A stream is ready when it has something to frame and (unless it is a bare END_STREAM) credit. */
static void stream_update_ready(struct mux_stream *s)
{
    struct mux *m = s->m;
    int has_data = buf_len(&s->sendq) > 0;
    int has_end = (s->flags & S_F_LOCAL_END) && !(s->flags & S_F_LOCAL_CLOSED);
    int ready;

    if (s->flags & S_F_RESET)
        ready = 0;
    else if (has_data)
        ready = s->send_window > 0;
    else
        ready = has_end;
    if (ready && !list_linked(&s->ready_node)) {
        list_push_back(&m->ready, &s->ready_node);
        want_write(m);
    } else if (!ready && list_linked(&s->ready_node)) {
        list_remove(&s->ready_node);
    }
}

/* ---- input: frames -------------------------------------------------------------------------- */

static int parse_content_length(const struct meta *md, int64_t *out)
{
    const struct meta_field *f = meta_get(md, "content-length");
    int64_t v = 0;

    *out = -1;
    if (f == NULL)
        return 0;
    if (f->value_len == 0 || f->value_len > 15)
        return CV_EPROTO;
    for (uint16_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return CV_EPROTO;
        v = v * 10 + (f->value[i] - '0');
    }
    *out = v;
    return 0;
}

static int status_of(const struct meta *md)
{
    const struct meta_field *f = meta_get(md, ":status");

    if (f == NULL || f->value_len != 3)
        return 0;
    return (f->value[0] - '0') * 100 + (f->value[1] - '0') * 10 + (f->value[2] - '0');
}

/* §8.4: a request body that ends before its content-length is a stream error at the connector, or
 * it would write a short body under the announced length and the origin would take the next
 * request on that connection as the rest (the edge checks responses itself: HEAD, 204, 304). */
static int request_short(const struct mux *m, const struct mux_stream *s)
{
    return m->role == MUX_ROLE_CONNECTOR && s->expect_len >= 0 &&
           s->recv_len != (uint64_t)s->expect_len;
}

static int on_data_frame(struct mux *m, const struct frame *f)
{
    struct mux_stream *s;
    uint32_t len = f->hdr.length;
    int end = (f->hdr.flags & FRAME_F_END_STREAM) != 0;

    /* §9.2: every DATA octet counts against the connection window, whatever the stream. */
    if ((int64_t)len > m->conn_recv_window)
        return conn_error(m, CODE_FLOW_CONTROL_ERROR, "DATA beyond the connection window");
    m->conn_recv_window -= len;
    m->st.bytes_in += len;
    /* §12: at most max_empty_frames consecutive empty DATA frames without END_STREAM. */
    if (len == 0 && !end) {
        if (++m->empty_frames > m->lim.max_empty_frames)
            return conn_error(m, CODE_ENHANCE_YOUR_CALM, "empty DATA frames");
    } else {
        m->empty_frames = 0;
    }
    s = stream_lookup(m, f->hdr.stream_id);
    if (s == NULL) {
        int rv;

        /* §7.3: a frame other than HEADERS on an id never opened is a connection error. */
        if (m->role == MUX_ROLE_CONNECTOR) {
            if ((f->hdr.stream_id & 1) == 0 || f->hdr.stream_id > m->last_peer_stream)
                return conn_error(m, CODE_PROTOCOL_ERROR, "DATA on an idle stream");
        } else if ((f->hdr.stream_id & 1) == 0 || f->hdr.stream_id >= m->next_stream_id) {
            return conn_error(m, CODE_PROTOCOL_ERROR, "DATA on an idle stream");
        }
        rv = conn_credit(m, len); /* a closed stream: drop the octets, keep the credit flowing */
        return rv < 0 ? conn_error(m, CODE_INTERNAL_ERROR, "out of memory") : 0;
    }
    if (s->flags & S_F_REMOTE_CLOSED) {
        if (conn_credit(m, len) < 0)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
        return stream_error(m, s, s->id, CODE_STREAM_CLOSED, "DATA after END_STREAM");
    }
    if (m->role == MUX_ROLE_EDGE && !(s->flags & S_F_FINAL)) {
        if (conn_credit(m, len) < 0)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
        return stream_error(m, s, s->id, CODE_PROTOCOL_ERROR, "DATA before the response");
    }
    if ((int64_t)len > s->recv_window) {
        if (conn_credit(m, len) < 0)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
        return stream_error(m, s, s->id, CODE_FLOW_CONTROL_ERROR, "DATA beyond the stream window");
    }
    s->recv_window -= len;
    s->recv_len += len;
    /* §8.4: never more body than content-length announced (the response-splitting guard). */
    if (s->expect_len >= 0 && s->recv_len > (uint64_t)s->expect_len) {
        if (conn_credit(m, len) < 0)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
        return stream_error(m, s, s->id, CODE_PROTOCOL_ERROR, "DATA beyond content-length");
    }
    if (s->flags & S_F_HELD) {
        s->recv_unconsumed += len;
        if (len > 0 && s->sh != NULL && s->sh->on_data != NULL)
            s->sh->on_data(s, f->payload, len, s->data);
        /* What the reader left unconsumed once it had its turn: its backlog (§9.5). */
        if (s->recv_unconsumed > s->unconsumed_peak)
            s->unconsumed_peak = s->recv_unconsumed;
    } else {
        /* Released: nobody reads; return the credit at once. */
        if (conn_credit(m, len) < 0)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    }
    if (end && !(s->flags & S_F_RESET)) {
        if (request_short(m, s))
            return stream_error(m, s, s->id, CODE_PROTOCOL_ERROR, "body short of content-length");
        s->flags |= S_F_REMOTE_CLOSED;
        if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_end != NULL)
            s->sh->on_end(s, s->data);
        stream_check_closed(s);
    }
    return 0;
}

static struct meta meta_scratch;
static int meta_scratch_busy;

/* A complete metadata block is in m->block (or was discarded). */
static int finish_block(struct mux *m)
{
    uint32_t sid = m->block_stream;
    int end = (m->block_flags & FRAME_F_END_STREAM) != 0;
    struct meta *md;
    struct mux_stream *s;
    const char *why = NULL;
    int rv;

    m->in_block = 0;
    if (m->block_discard) {
        buf_release(&m->block);
        s = m->block_new ? NULL : stream_lookup(m, sid);
        return stream_error(m, s, sid, CODE_METADATA_TOO_LARGE, "metadata block too large");
    }
    /* One decoded block at a time per thread: a static scratch saves a 3 KiB allocation per
     * request; a nested use (a hook feeding another mux) falls back to the heap. */
    if (!meta_scratch_busy) {
        md = &meta_scratch;
        meta_scratch_busy = 1;
    } else {
        md = mem_alloc(sizeof(*md));
        if (md == NULL)
            return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    }
    rv = meta_decode(md, m->block.pos, buf_len(&m->block), m->local.max_metadata_size,
                     m->lim.max_metadata_fields, &why);
    if (rv < 0) {
        if (md == &meta_scratch)
            meta_scratch_busy = 0;
        else
            mem_free(md);
        buf_consume(&m->block, buf_len(&m->block));
        s = m->block_new ? NULL : stream_lookup(m, sid);
        return stream_error(m, s, sid,
                            rv == CV_ELIMIT ? CODE_METADATA_TOO_LARGE : CODE_PROTOCOL_ERROR, why);
    }

    if (m->block_new) {
        /* Connector: a request block opens stream |sid| (PROTOCOL.md §7.2). */
        int64_t clen;

        if (md->type != META_REQUEST_HTTP && md->type != META_REQUEST_UPGRADE &&
            md->type != META_REQUEST_TCP) {
            rv = stream_error(m, NULL, sid, CODE_PROTOCOL_ERROR, "stream opened without a request");
            goto done;
        }
        if ((m->flags & MUX_F_GOAWAY_SENT) || m->nstreams >= m->local.max_concurrent_streams) {
            /* §7.2, §11.2: refused, never processed: the edge may retry it elsewhere. */
            rv = stream_error(m, NULL, sid, CODE_REFUSED_STREAM, "stream refused");
            goto done;
        }
        if (parse_content_length(md, &clen) < 0) {
            rv = stream_error(m, NULL, sid, CODE_PROTOCOL_ERROR, "bad content-length");
            goto done;
        }
        if (end && clen > 0) {
            rv = stream_error(m, NULL, sid, CODE_PROTOCOL_ERROR, "body short of content-length");
            goto done;
        }
        s = stream_new(m, sid);
        if (s == NULL) {
            rv = stream_error(m, NULL, sid, CODE_REFUSED_STREAM, "out of memory");
            goto done;
        }
        s->expect_len = clen;
        if (end)
            s->flags |= S_F_REMOTE_CLOSED;
        rv = m->hooks->on_stream_open != NULL ? m->hooks->on_stream_open(m, s, md, end, m->arg)
                                                : CODE_REFUSED_STREAM;
        if (rv != 0) {
            s->flags &= ~S_F_HELD;
            rv = stream_error(m, s, sid, (uint32_t)rv, "refused by the application");
        }
        goto done;
    }

    s = stream_lookup(m, sid);
    if (s == NULL) {
        /* §7.1: a request block may only open a new, higher id. Anything else for a stream we
         * already closed (trailers racing a RESET) is dropped. */
        if (m->role == MUX_ROLE_CONNECTOR &&
            (md->type == META_REQUEST_HTTP || md->type == META_REQUEST_UPGRADE ||
             md->type == META_REQUEST_TCP))
            rv = conn_error(m, CODE_PROTOCOL_ERROR, "stream id not greater than the previous one");
        else
            rv = 0;
        goto done;
    }
    if (md->type == META_TRAILERS) {
        if (!end) {
            rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "trailers without END_STREAM");
            goto done;
        }
        if (m->role == MUX_ROLE_EDGE && !(s->flags & S_F_FINAL)) {
            rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "trailers before the response");
            goto done;
        }
    } else if (m->role == MUX_ROLE_EDGE && md->type == META_RESPONSE && !(s->flags & S_F_FINAL)) {
        int status = status_of(md);
        int64_t clen;

        s->flags |= S_F_DISPATCHED; /* §7.7: a response implies DISPATCHED */
        if (status >= 200 || status == 101) {
            if (parse_content_length(md, &clen) < 0) {
                rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "bad content-length");
                goto done;
            }
            s->flags |= S_F_FINAL;
            s->expect_len = clen;
        } else if (end) {
            rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "interim response with END_STREAM");
            goto done;
        } else if (++s->interim > MUX_MAX_INTERIM) {
            /* §12: HEADERS are not flow-controlled and each 1xx is relayed to the visitor, who
             * may not read: without a cap a connector fills the edge's memory through them. */
            rv = stream_error(m, s, sid, CODE_ENHANCE_YOUR_CALM, "too many interim responses");
            goto done;
        }
    } else {
        rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "unexpected metadata block");
        goto done;
    }
    if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_headers != NULL)
        s->sh->on_headers(s, md, end, s->data);
    rv = 0;
    if (end && !(s->flags & S_F_RESET) && request_short(m, s)) {
        rv = stream_error(m, s, sid, CODE_PROTOCOL_ERROR, "body short of content-length");
        goto done;
    }
    if (end && !(s->flags & S_F_RESET)) {
        s->flags |= S_F_REMOTE_CLOSED;
        if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_end != NULL)
            s->sh->on_end(s, s->data);
        stream_check_closed(s);
    }
done:
    if (md == &meta_scratch)
        meta_scratch_busy = 0;
    else
        mem_free(md);
    buf_consume(&m->block, buf_len(&m->block));
    buf_release(&m->block);
    return rv;
}

static int block_append(struct mux *m, const uint8_t *p, size_t n)
{
    if (m->block_discard)
        return 0;
    if (buf_len(&m->block) + n > m->local.max_metadata_size) {
        /* §8.1: keep honouring the CONTINUATION rules, collect nothing, reset at the end. */
        m->block_discard = 1;
        buf_consume(&m->block, buf_len(&m->block));
        return 0;
    }
    if (buf_append(&m->block, p, n) < 0)
        return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    return 0;
}

static int on_headers_frame(struct mux *m, const struct frame *f)
{
    uint32_t sid = f->hdr.stream_id;
    int rv;

    if (f->hdr.length == 0 && !(f->hdr.flags & FRAME_F_END_HEADERS))
        return conn_error(m, CODE_PROTOCOL_ERROR, "empty HEADERS without END_HEADERS");
    m->block_new = 0;
    if (m->role == MUX_ROLE_CONNECTOR) {
        /* §7.1: edge-initiated ids are odd and strictly increasing. */
        if ((sid & 1) == 0)
            return conn_error(m, CODE_PROTOCOL_ERROR, "HEADERS on an even stream id");
        if (sid > m->last_peer_stream) {
            m->last_peer_stream = sid;
            m->block_new = 1;
        } else {
            struct mux_stream *s = stream_lookup(m, sid);

            if (s != NULL && (s->flags & S_F_REMOTE_CLOSED))
                return stream_error(m, s, sid, CODE_STREAM_CLOSED, "HEADERS after END_STREAM");
        }
    } else {
        if ((sid & 1) == 0 || sid >= m->next_stream_id)
            return conn_error(m, CODE_PROTOCOL_ERROR, "HEADERS on a stream the edge did not open");
        {
            struct mux_stream *s = stream_lookup(m, sid);

            if (s != NULL && (s->flags & S_F_REMOTE_CLOSED))
                return stream_error(m, s, sid, CODE_STREAM_CLOSED, "HEADERS after END_STREAM");
        }
    }
    m->in_block = 1;
    m->block_stream = sid;
    m->block_flags = f->hdr.flags;
    m->block_conts = 0;
    m->block_discard = 0;
    buf_consume(&m->block, buf_len(&m->block));
    rv = block_append(m, f->payload, f->hdr.length);
    if (rv < 0)
        return rv;
    if (f->hdr.flags & FRAME_F_END_HEADERS)
        return finish_block(m);
    return 0;
}

static int on_continuation_frame(struct mux *m, const struct frame *f)
{
    int rv;

    /* §8.2 */
    if (!m->in_block || f->hdr.stream_id != m->block_stream)
        return conn_error(m, CODE_PROTOCOL_ERROR, "CONTINUATION without a header block");
    if (++m->block_conts > m->lim.max_continuations)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "too many CONTINUATION frames");
    if (f->hdr.length == 0 && !(f->hdr.flags & FRAME_F_END_HEADERS))
        return conn_error(m, CODE_PROTOCOL_ERROR, "empty CONTINUATION without END_HEADERS");
    rv = block_append(m, f->payload, f->hdr.length);
    if (rv < 0)
        return rv;
    if (f->hdr.flags & FRAME_F_END_HEADERS)
        return finish_block(m);
    return 0;
}

static int on_reset_frame(struct mux *m, const struct frame *f)
{
    struct mux_stream *s = stream_lookup(m, f->hdr.stream_id);

    m->st.resets_in++;
    if ((s == NULL || (s->flags & S_F_RESET)) && reset_budget(m) < 0)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "reset budget exhausted");
    if (s == NULL) {
        int idle = m->role == MUX_ROLE_CONNECTOR ? f->hdr.stream_id > m->last_peer_stream
                                                 : f->hdr.stream_id >= m->next_stream_id;

        if (idle || (f->hdr.stream_id & 1) == 0)
            return conn_error(m, CODE_PROTOCOL_ERROR, "RESET on an idle stream");
        return 0;
    }
    if (stream_mark_reset(s) < 0)
        return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_reset != NULL)
        s->sh->on_reset(s, f->u.code, s->data);
    stream_maybe_free(s);
    return 0;
}

static int on_window_update_frame(struct mux *m, const struct frame *f)
{
    uint32_t inc = f->u.increment;
    struct mux_stream *s;

    /* §12, CVE-2019-9511 (data dribble): a receiver updates a window after reading at least one
     * DATA frame's worth; many more updates than DATA frames sent is a flood (Envoy's ratio, with
     * room for the first updates of a connection). */
    if (++m->window_updates_in > 100 + (uint64_t)m->lim.window_updates_per_data * m->data_frames_out)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "WINDOW_UPDATE flood");
    if (f->hdr.stream_id == 0) {
        /* §9.3 */
        if (inc == 0)
            return conn_error(m, CODE_PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection");
        if (m->conn_send_window + (int64_t)inc > FRAME_MAX_WINDOW)
            return conn_error(m, CODE_FLOW_CONTROL_ERROR, "connection window overflow");
        m->conn_send_window += inc;
        if (!list_empty(&m->ready))
            want_write(m);
        return 0;
    }
    s = stream_lookup(m, f->hdr.stream_id);
    if (s == NULL) {
        int idle = m->role == MUX_ROLE_CONNECTOR ? f->hdr.stream_id > m->last_peer_stream
                                                 : f->hdr.stream_id >= m->next_stream_id;

        if (idle || (f->hdr.stream_id & 1) == 0)
            return conn_error(m, CODE_PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream");
        return 0; /* closed stream: ignored (§9.3) */
    }
    if (inc == 0)
        return stream_error(m, s, s->id, CODE_PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
    if (s->send_window + (int64_t)inc > FRAME_MAX_WINDOW)
        return stream_error(m, s, s->id, CODE_FLOW_CONTROL_ERROR, "stream window overflow");
    s->send_window += inc;
    stream_update_ready(s);
    return 0;
}

static int on_ping_frame(struct mux *m, const struct frame *f)
{
    uint8_t *p = out_reserve(m, FRAME_HDR_LEN + 8);

    if (p == NULL)
        return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
    /* §10.1: PONG goes into |out| at once, so it precedes any DATA framed later. */
    if (queue_control(m, frame_encode_ping(p, FRAME_HDR_LEN + 8, FRAME_PONG, f->u.opaque)) < 0)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "control frames not read by the peer");
    return 0;
}

static void on_pong_frame(struct mux *m, const struct frame *f)
{
    uint64_t seq = get_u64(f->u.opaque);
    struct ping_rec *r = &m->pings[seq % PING_RING];
    uint64_t t;

    /* §10.1: a PONG matching no outstanding PING is ignored (and cannot fake an RTT). */
    if (r->seq != seq || seq == 0)
        return;
    t = now_us(m);
    m->last_rtt_us = t > r->sent_us ? t - r->sent_us : 0;
    r->seq = 0;
    m->pings_outstanding = 0;
    if (m->hooks->on_pong != NULL)
        m->hooks->on_pong(m, m->last_rtt_us, m->arg);
}

static int on_goaway_frame(struct mux *m, const struct frame *f)
{
    const struct frame_goaway *g = &f->u.goaway;
    struct list_node *pos;
    struct list_node *tmp;

    LOG_D("mux goaway received code=%s last=%u retry=%u", frame_code_name(g->code), g->last_stream_id,
          g->retry_after_ms);
    if (m->state == MUX_S_REGISTERING && m->role == MUX_ROLE_CONNECTOR) {
        /* §4.5: the edge rejected our registration. */
        if (m->hooks->on_goaway != NULL)
            m->hooks->on_goaway(m, g, m->arg);
        m->state = MUX_S_CLOSED;
        switch (g->code) {
        case CODE_AUTH_FAILED:
            return CV_EAUTH;
        case CODE_UNSUPPORTED_VERSION:
            return CV_EVERSION;
        case CODE_LIMIT_EXCEEDED:
            return CV_ELIMIT;
        default:
            return CV_EPROTO;
        }
    }
    /* §11.3: Last Stream Id never goes up between GOAWAYs; streams above the first were refused. */
    if ((m->flags & MUX_F_GOAWAY_RECV) && g->last_stream_id > m->goaway_recv_last)
        return conn_error(m, CODE_PROTOCOL_ERROR, "GOAWAY last stream id increased");
    m->goaway_recv_last = g->last_stream_id;
    m->flags |= MUX_F_GOAWAY_RECV;
    if (m->role == MUX_ROLE_EDGE) {
        /* §11.2: streams above Last Stream Id were never processed: refused, retryable. */
        list_for_each_safe(pos, tmp, &m->streams)
        {
            struct mux_stream *s = container_of(pos, struct mux_stream, all_node);

            if (s->id > g->last_stream_id && (s->flags & S_F_OPEN)) {
                if (stream_mark_reset(s) < 0)
                    return conn_error(m, CODE_INTERNAL_ERROR, "out of memory");
                if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_reset != NULL)
                    s->sh->on_reset(s, CODE_REFUSED_STREAM, s->data);
                stream_maybe_free(s);
            }
        }
    }
    if (m->hooks->on_goaway != NULL)
        m->hooks->on_goaway(m, g, m->arg);
    return 0;
}

static int on_register_frame(struct mux *m, const struct frame *f)
{
    const char *why = NULL;

    if (m->role != MUX_ROLE_EDGE || m->state != MUX_S_PREFACE)
        return conn_error(m, CODE_PROTOCOL_ERROR, "unexpected REGISTER");
    if (frame_settings_validate(&f->u.reg.settings, &why) < 0)
        return conn_error(m, CODE_PROTOCOL_ERROR, why);
    m->pending_reg = f->u.reg;
    m->state = MUX_S_REGISTERING;
    /* §4.2: version negotiation. */
    if (f->u.reg.min_version > FRAME_VERSION || f->u.reg.max_version < FRAME_VERSION) {
        mux_reject(m, CODE_UNSUPPORTED_VERSION, FRAME_RETRY_NEVER, "edge speaks 1..1");
        return CV_EVERSION;
    }
    m->peer = f->u.reg.settings;
    if (m->hooks->on_register != NULL)
        m->hooks->on_register(m, &m->pending_reg, m->arg);
    OPENSSL_cleanse(m->pending_reg.secret, sizeof(m->pending_reg.secret));
    return 0;
}

static int on_registered_frame(struct mux *m, const struct frame *f)
{
    const char *why = NULL;

    if (m->role != MUX_ROLE_CONNECTOR || m->state != MUX_S_REGISTERING)
        return conn_error(m, CODE_PROTOCOL_ERROR, "unexpected REGISTERED");
    if (frame_settings_validate(&f->u.regd.settings, &why) < 0)
        return conn_error(m, CODE_PROTOCOL_ERROR, why);
    if (f->u.regd.version != FRAME_VERSION)
        return conn_error(m, CODE_PROTOCOL_ERROR, "edge chose a version we did not offer");
    m->peer = f->u.regd.settings;
    m->conn_send_window = m->peer.connection_window;
    m->conn_recv_window = m->local.connection_window;
    m->state = MUX_S_OPEN;
    if (m->hooks->on_registered != NULL)
        m->hooks->on_registered(m, &f->u.regd, m->arg);
    return 0;
}

static int on_dispatched_frame(struct mux *m, const struct frame *f)
{
    struct mux_stream *s;

    if (m->role != MUX_ROLE_EDGE)
        return conn_error(m, CODE_PROTOCOL_ERROR, "DISPATCHED sent to the connector");
    if ((f->hdr.stream_id & 1) == 0 || f->hdr.stream_id >= m->next_stream_id)
        return conn_error(m, CODE_PROTOCOL_ERROR, "DISPATCHED on an idle stream");
    s = stream_lookup(m, f->hdr.stream_id);
    if (s == NULL || (s->flags & S_F_DISPATCHED))
        return 0; /* §7.7: a second one is ignored */
    s->flags |= S_F_DISPATCHED;
    if ((s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_dispatched != NULL)
        s->sh->on_dispatched(s, s->data);
    return 0;
}

static int on_unknown_frame(struct mux *m)
{
    uint64_t t = now_us(m);

    if (t - m->unknown_window_us >= 1000000) {
        m->unknown_window_us = t;
        m->unknown_frames = 0;
    }
    if (++m->unknown_frames > m->lim.unknown_frames_per_sec)
        return conn_error(m, CODE_ENHANCE_YOUR_CALM, "unknown frame flood");
    return 0;
}

static int dispatch_frame(struct mux *m, const struct frame *f)
{
    m->st.frames_in++;
    /* §8.2: nothing may interleave a header block. */
    if (m->in_block && f->hdr.type != FRAME_CONTINUATION)
        return conn_error(m, CODE_PROTOCOL_ERROR, "frame inside a header block");
    /* §4.1: registration comes first. */
    if (m->state == MUX_S_PREFACE && f->hdr.type != FRAME_REGISTER)
        return conn_error(m, CODE_PROTOCOL_ERROR, "first frame is not REGISTER");
    if (m->state == MUX_S_REGISTERING) {
        if (m->role == MUX_ROLE_EDGE)
            return conn_error(m, CODE_PROTOCOL_ERROR, "frame before REGISTERED");
        if (f->hdr.type != FRAME_REGISTERED && f->hdr.type != FRAME_GOAWAY)
            return conn_error(m, CODE_PROTOCOL_ERROR, "frame before REGISTERED");
    }
    switch (f->hdr.type) {
    case FRAME_DATA:
        return on_data_frame(m, f);
    case FRAME_HEADERS:
        return on_headers_frame(m, f);
    case FRAME_CONTINUATION:
        return on_continuation_frame(m, f);
    case FRAME_RESET:
        return on_reset_frame(m, f);
    case FRAME_WINDOW_UPDATE:
        return on_window_update_frame(m, f);
    case FRAME_PING:
        return on_ping_frame(m, f);
    case FRAME_PONG:
        on_pong_frame(m, f);
        return 0;
    case FRAME_GOAWAY:
        return on_goaway_frame(m, f);
    case FRAME_REGISTER:
        return on_register_frame(m, f);
    case FRAME_REGISTERED:
        return on_registered_frame(m, f);
    case FRAME_DISPATCHED:
        return on_dispatched_frame(m, f);
    default:
        return on_unknown_frame(m);
    }
}

ssize_t mux_feed(struct mux *m, const uint8_t *p, size_t n)
{
    size_t used = 0;
    ssize_t rv = 0;

    if (m->state == MUX_S_CLOSED)
        return CV_ECLOSED;
    m->depth++;
    if (n > 0)
        m->last_recv_us = now_us(m);
    if (m->state == MUX_S_PREFACE && !(m->flags & MUX_F_PREFACE_OK)) {
        size_t k = n < FRAME_PREFACE_LEN ? n : FRAME_PREFACE_LEN;

        /* §4.1: a wrong preface is closed without a GOAWAY (it is not our protocol). */
        if (memcmp(p, FRAME_PREFACE, k) != 0) {
            m->state = MUX_S_CLOSED;
            rv = CV_EPROTO;
            goto out;
        }
        if (n < FRAME_PREFACE_LEN)
            goto out;
        m->flags |= MUX_F_PREFACE_OK;
        used = FRAME_PREFACE_LEN;
    }
    while (m->state != MUX_S_CLOSED && used < n) {
        struct frame f;
        const char *why = NULL;
        /* §3.2: before the handshake completes the limit is 16 384. */
        size_t max = m->state == MUX_S_OPEN ? m->local.max_frame_size : FRAME_MIN_MAX_SIZE;
        ssize_t k = frame_decode(&f, p + used, n - used, max, &why);

        if (k == 0)
            break;
        if (k < 0) {
            rv = conn_error(m, k == CV_EFRAMESIZE ? CODE_FRAME_SIZE_ERROR : CODE_PROTOCOL_ERROR,
                            why != NULL ? why : "malformed frame");
            goto out;
        }
        used += (size_t)k;
        rv = dispatch_frame(m, &f);
        if (rv < 0)
            goto out;
    }
    rv = (ssize_t)used;
out:
    m->depth--;
    sweep_zombies(m);
    return rv;
}

uint64_t mux_idle_us(const struct mux *m)
{
    uint64_t t = now_us(m);

    return t > m->last_recv_us ? t - m->last_recv_us : 0;
}

/* ---- output: framing DATA ------------------------------------------------------------------- */

/* What a stream's send queue takes now without moving more than SENDQ_MOVE_MAX queued bytes. Bulk
 * transfers keep the queue nearly full while it is framed from the front: taking the free space
 * behind the data would compact it first, copying every byte a second time. Past that, the writer
 * gets the room behind the data and waits for the queue to drain for the rest. */
#define SENDQ_MOVE_MAX (16 * 1024)

static size_t sendq_room(const struct mux_stream *s)
{
    const struct buf *b = &s->sendq;

    if (b->base == NULL || buf_len(b) <= SENDQ_MOVE_MAX || (size_t)(b->end - b->base) < b->cap)
        return buf_space(b);
    return buf_tailroom(b);
}

/*
 * DATA frames of at least INPLACE_MIN bytes are framed in place when nothing else is queued: the
 * header goes into the nine bytes before the payload in the stream's send queue (bytes already
 * framed), and mux_pending hands out header and payload from there, so a bulk transfer's payload is
 * not copied into |out| first (one copy of every byte fewer; bench/NOTES.md). Such a frame stays
 * within INPLACE_MAX so that it fills one TLS record exactly (16 KiB of plaintext). Smaller frames
 * are copied: several of them share a record.
 */
#define INPLACE_MIN 4096
#define INPLACE_MAX (16 * 1024 - FRAME_HDR_LEN)

/* Frames one DATA frame from |s| into |out|, or in place (m->inplace). Returns the payload length,
 * or -1 if out of memory. */
static ssize_t frame_one(struct mux *m, struct mux_stream *s)
{
    size_t len = buf_len(&s->sendq);
    uint8_t flags = 0;
    uint8_t *p;

    if (len > (size_t)s->send_window)
        len = (size_t)s->send_window;
    if (len > (size_t)m->conn_send_window)
        len = (size_t)m->conn_send_window;
    if (len > m->peer.max_frame_size)
        len = m->peer.max_frame_size;
    if (len == buf_len(&s->sendq) && (s->flags & S_F_LOCAL_END))
        flags = FRAME_F_END_STREAM;
    if (len == 0 && flags == 0)
        return 0;
    if (flags == 0 && len >= INPLACE_MIN && buf_len(&m->out) == 0 &&
        (size_t)(s->sendq.pos - s->sendq.base) >= FRAME_HDR_LEN) {
        if (len > INPLACE_MAX)
            len = INPLACE_MAX;
        frame_hdr_encode(s->sendq.pos - FRAME_HDR_LEN, (uint32_t)len, FRAME_DATA, 0, s->id);
        m->inplace = s;
        m->inplace_len = FRAME_HDR_LEN + len;
    } else {
        p = out_reserve(m, FRAME_HDR_LEN + len);
        if (p == NULL)
            return -1;
        frame_hdr_encode(p, (uint32_t)len, FRAME_DATA, flags, s->id);
        if (len > 0)
            memcpy(p + FRAME_HDR_LEN, s->sendq.pos, len);
        buf_commit(&m->out, FRAME_HDR_LEN + len);
        buf_consume(&s->sendq, len);
    }
    s->send_window -= (int64_t)len;
    m->conn_send_window -= (int64_t)len;
    m->st.bytes_out += len;
    m->st.frames_out++;
    m->data_frames_out++;
    if (flags & FRAME_F_END_STREAM)
        s->flags |= S_F_LOCAL_CLOSED;
    return (ssize_t)len;
}

/* After bytes left |s|'s send queue: on_writable is owed once half of its room is free, and an
 * empty queue is given back. Returns 1 when on_writable became owed. */
static int stream_drained(struct mux *m, struct mux_stream *s)
{
    int owed = 0;

    if ((s->flags & S_F_WRITE_WAIT) && sendq_room(s) >= s->sendq.cap / 2 &&
        !list_linked(&s->notify_node)) {
        list_push_back(&m->notify, &s->notify_node);
        owed = 1;
    }
    if (buf_len(&s->sendq) == 0)
        buf_release(&s->sendq);
    return owed;
}

/* After a frame framed in place left its stream's queue. */
static void inplace_done(struct mux *m, struct mux_stream *s)
{
    if (stream_drained(m, s))
        want_write(m); /* the next mux_pending calls on_writable */
    stream_update_ready(s); /* an END_STREAM may be all that is left */
}

/*
 * Moves a DATA frame framed in place (frame_one) into |out| after all, in front of what was queued
 * since (it was framed first). Called before its stream's send queue changes or goes away while the
 * frame is still unsent (mux_pending handed it out but mux_consume never came, or took part of
 * it). Returns 0, or -1 when there was no memory for the copy: the frame is lost, so the
 * connection cannot go on and is closed.
 */
static int inplace_settle(struct mux *m)
{
    struct mux_stream *s = m->inplace;
    size_t n = m->inplace_len;
    size_t queued = buf_len(&m->out);

    if (s == NULL)
        return 0;
    m->inplace = NULL;
    if (out_reserve(m, n) == NULL) {
        buf_consume(&s->sendq, n - FRAME_HDR_LEN);
        m->state = MUX_S_CLOSED;
        want_write(m); /* the transport closes */
        return -1;
    }
    memmove(m->out.pos + n, m->out.pos, queued);
    memcpy(m->out.pos, s->sendq.pos - FRAME_HDR_LEN, n);
    buf_commit(&m->out, n);
    buf_consume(&s->sendq, n - FRAME_HDR_LEN);
    inplace_done(m, s);
    return 0;
}

/* Settles |s|'s frame framed in place, if it has the one: before its queue changes or goes away. */
static int stream_settle(struct mux_stream *s)
{
    return s->m->inplace == s ? inplace_settle(s->m) : 0;
}

static void notify_writable(struct mux *m)
{
    struct list_node *pos;

    while ((pos = list_first(&m->notify)) != NULL) {
        struct mux_stream *s = container_of(pos, struct mux_stream, notify_node);

        list_remove(pos);
        s->flags &= ~S_F_WRITE_WAIT;
        if ((s->flags & S_F_HELD) && !(s->flags & S_F_RESET) && s->sh != NULL && s->sh->on_writable != NULL)
            s->sh->on_writable(s, s->data);
    }
}

/* Frames DATA from ready streams, round-robin, until |out| holds about |hint| bytes or a frame was
 * framed in place. */
static void frame_ready(struct mux *m, size_t hint)
{
    m->flags &= ~MUX_F_WANT_SIGNALED;
    m->depth++;
    notify_writable(m); /* owed since a frame framed in place was consumed */
    while (m->state == MUX_S_OPEN && buf_len(&m->out) < hint && !list_empty(&m->ready) &&
           m->inplace == NULL) {
        struct mux_stream *s = container_of(list_first(&m->ready), struct mux_stream, ready_node);
        ssize_t k;

        if (m->conn_send_window <= 0 && buf_len(&s->sendq) > 0)
            break; /* wait for a connection WINDOW_UPDATE */
        list_remove(&s->ready_node);
        k = frame_one(m, s);
        if (k < 0)
            break;
        if (s->flags & S_F_LOCAL_CLOSED) {
            buf_release(&s->sendq);
            if (!(s->flags & S_F_HELD) && !(s->flags & S_F_REMOTE_CLOSED)) {
                /* Released after ending: we no longer want the peer's data (§7.5 NO_ERROR). */
                if (send_reset_frame(m, s->id, CODE_NO_ERROR) == 0)
                    stream_mark_reset(s);
            }
            stream_check_closed(s);
            if (s->flags & S_F_ZOMBIE)
                continue;
        } else {
            stream_update_ready(s); /* back at the tail if it still can send: round-robin */
        }
        (void)stream_drained(m, s); /* the hooks run below */
    }
    /* Owed on_writable hooks, outside the framing loop; after a frame framed in place, in the next
     * call (the writer they wake would move its queue under the frame). */
    if (m->inplace == NULL)
        notify_writable(m);
    m->depth--;
    sweep_zombies(m);
}

size_t mux_pending(struct mux *m, const uint8_t **p, size_t hint)
{
    /* A frame framed in place and not consumed yet (the write failed) comes again. */
    if (m->inplace == NULL)
        frame_ready(m, hint);
    if (m->inplace != NULL) {
        *p = m->inplace->sendq.pos - FRAME_HDR_LEN;
        return m->inplace_len;
    }
    *p = m->out.pos;
    return buf_len(&m->out);
}

void mux_consume(struct mux *m, size_t n)
{
    struct mux_stream *s = m->inplace;

    if (s != NULL && n < m->inplace_len) {
        /* Part of it: the rest waits in |out| (or, without memory, the connection is closed). */
        if (inplace_settle(m) < 0)
            return;
        s = NULL;
    }
    if (s != NULL) {
        /* The frame framed in place: its payload leaves the send queue now. */
        m->inplace = NULL;
        buf_consume(&s->sendq, m->inplace_len - FRAME_HDR_LEN);
        inplace_done(m, s);
        return;
    }
    buf_consume(&m->out, n);
    if (buf_len(&m->out) == 0) {
        m->control_queued = 0;
        if (m->out.end - m->out.base > 256 * 1024)
            buf_release(&m->out); /* do not keep a burst's worth of memory */
    }
}

/* ---- registration --------------------------------------------------------------------------- */

int mux_register(struct mux *m, const struct frame_register *r)
{
    struct frame_register reg = *r;
    uint8_t *p;
    ssize_t len;
    size_t need = FRAME_PREFACE_LEN + FRAME_HDR_LEN + FRAME_REGISTER_FIXED_LEN + 2 * FRAME_LABEL_MAX;

    if (m->role != MUX_ROLE_CONNECTOR || m->state != MUX_S_REGISTERING)
        return CV_EINVAL;
    reg.settings = m->local;
    p = out_reserve(m, need);
    if (p == NULL) {
        memset(reg.secret, 0, sizeof(reg.secret));
        return CV_ENOMEM;
    }
    memcpy(p, FRAME_PREFACE, FRAME_PREFACE_LEN);
    len = frame_encode_register(p + FRAME_PREFACE_LEN, need - FRAME_PREFACE_LEN, &reg);
    memset(reg.secret, 0, sizeof(reg.secret));
    if (len < 0)
        return (int)len;
    buf_commit(&m->out, FRAME_PREFACE_LEN + (size_t)len);
    m->st.frames_out++;
    want_write(m);
    return 0;
}

int mux_accept(struct mux *m, const struct frame_registered *r)
{
    struct frame_registered regd = *r;
    uint8_t *p;
    ssize_t len;
    size_t need = FRAME_HDR_LEN + FRAME_REGISTERED_FIXED_LEN + 2 * FRAME_LABEL_MAX;

    if (m->role != MUX_ROLE_EDGE || m->state != MUX_S_REGISTERING)
        return CV_EINVAL;
    regd.version = FRAME_VERSION;
    regd.settings = m->local;
    p = out_reserve(m, need);
    if (p == NULL)
        return CV_ENOMEM;
    len = frame_encode_registered(p, need, &regd);
    if (len < 0)
        return (int)len;
    buf_commit(&m->out, (size_t)len);
    m->st.frames_out++;
    m->conn_send_window = m->peer.connection_window;
    m->conn_recv_window = m->local.connection_window;
    m->state = MUX_S_OPEN;
    want_write(m);
    return 0;
}

int mux_reject(struct mux *m, uint32_t code, uint32_t retry_after_ms, const char *reason)
{
    int rv;

    if (m->state == MUX_S_CLOSED)
        return CV_ECLOSED;
    rv = send_goaway(m, 0, code, retry_after_ms, reason);
    m->flags |= MUX_F_GOAWAY_SENT;
    m->state = MUX_S_CLOSED;
    return rv;
}

/* ---- ping, goaway, failure ------------------------------------------------------------------ */

int mux_ping(struct mux *m)
{
    uint8_t opaque[8];
    struct ping_rec *r;
    uint8_t *p;

    if (m->state != MUX_S_OPEN)
        return CV_ECLOSED;
    if (m->pings_outstanding >= m->lim.heartbeat_misses)
        return CV_ETIMEDOUT;
    m->ping_seq++;
    r = &m->pings[m->ping_seq % PING_RING];
    r->seq = m->ping_seq;
    r->sent_us = now_us(m);
    put_u64(opaque, m->ping_seq);
    p = out_reserve(m, FRAME_HDR_LEN + 8);
    if (p == NULL)
        return CV_ENOMEM;
    buf_commit(&m->out, (size_t)frame_encode_ping(p, FRAME_HDR_LEN + 8, FRAME_PING, opaque));
    m->st.frames_out++;
    m->pings_outstanding++;
    want_write(m);
    return 0;
}

int mux_goaway(struct mux *m, uint32_t code, uint32_t retry_after_ms, const char *reason)
{
    uint32_t last = m->role == MUX_ROLE_CONNECTOR ? m->last_peer_stream : 0;

    if (m->state == MUX_S_CLOSED)
        return CV_ECLOSED;
    /* §11.3: Last Stream Id never increases between GOAWAYs. */
    if ((m->flags & MUX_F_GOAWAY_SENT) && last > m->goaway_last_id)
        last = m->goaway_last_id;
    m->goaway_last_id = last;
    m->flags |= MUX_F_GOAWAY_SENT;
    if (code != CODE_NO_ERROR)
        m->state = MUX_S_CLOSED;
    return send_goaway(m, last, code, retry_after_ms, reason);
}

void mux_test_set_next_stream_id(struct mux *m, uint32_t id)
{
    m->next_stream_id = id;
}

int mux_is_draining(const struct mux *m)
{
    return (m->flags & (MUX_F_GOAWAY_SENT | MUX_F_GOAWAY_RECV)) != 0 || m->state == MUX_S_CLOSED;
}

int mux_is_idle(const struct mux *m)
{
    return mux_is_draining(m) && m->nstreams == 0;
}

void mux_fail(struct mux *m, uint32_t code)
{
    struct list_node *pos;
    struct list_node *tmp;

    m->depth++;
    m->state = MUX_S_CLOSED;
    list_for_each_safe(pos, tmp, &m->streams)
    {
        struct mux_stream *s = container_of(pos, struct mux_stream, all_node);
        int was_reset = (s->flags & S_F_RESET) != 0;
        int done = (s->flags & S_F_LOCAL_CLOSED) && (s->flags & S_F_REMOTE_CLOSED);

        if (s->flags & S_F_ZOMBIE)
            continue;
        s->flags |= S_F_RESET | S_F_LOCAL_CLOSED | S_F_REMOTE_CLOSED;
        list_remove(&s->ready_node);
        stream_unopen(s);
        /* §7.6: streams still open end as if reset; finished ones need no news. */
        if (!was_reset && !done && (s->flags & S_F_HELD) && s->sh != NULL && s->sh->on_reset != NULL) {
            uint32_t c = code;

            if (m->role == MUX_ROLE_EDGE && !(s->flags & S_F_DISPATCHED) && code == CODE_INTERNAL_ERROR)
                c = CODE_REFUSED_STREAM; /* never reached an origin: retryable (§7.7) */
            s->sh->on_reset(s, c, s->data);
        }
        stream_maybe_free(s);
    }
    m->depth--;
    sweep_zombies(m);
}

/* ---- streams: application side -------------------------------------------------------------- */

/* Splits a metadata block into HEADERS + CONTINUATION frames in |out| (§8.2). */
static int queue_block(struct mux *m, uint32_t sid, const uint8_t *block, size_t len, int end_stream)
{
    size_t max = m->peer.max_frame_size;
    size_t off = 0;
    size_t frames = len == 0 ? 1 : (len + max - 1) / max;
    uint8_t *p;
    int first = 1;

    if (len > m->peer.max_metadata_size || frames > 1 + m->lim.max_continuations)
        return CV_EINVAL;
    p = out_reserve(m, len + frames * FRAME_HDR_LEN);
    if (p == NULL)
        return CV_EFULL;
    do {
        size_t k = len - off > max ? max : len - off;
        uint8_t flags = 0;

        if (off + k == len)
            flags |= FRAME_F_END_HEADERS;
        if (first && end_stream)
            flags |= FRAME_F_END_STREAM;
        frame_hdr_encode(p, (uint32_t)k, first ? FRAME_HEADERS : FRAME_CONTINUATION, flags, sid);
        memcpy(p + FRAME_HDR_LEN, block + off, k);
        p += FRAME_HDR_LEN + k;
        buf_commit(&m->out, FRAME_HDR_LEN + k);
        m->st.frames_out++;
        off += k;
        first = 0;
    } while (off < len);
    want_write(m);
    return 0;
}

struct mux_stream *mux_open(struct mux *m, const uint8_t *block, size_t len, int end_stream,
                            const struct mux_stream_hooks *sh, void *sdata, int *err)
{
    struct mux_stream *s;
    int rv;

    if (m->role != MUX_ROLE_EDGE || m->state != MUX_S_OPEN) {
        *err = m->state == MUX_S_CLOSED ? CV_ECLOSED : CV_EINVAL;
        return NULL;
    }
    if (mux_is_draining(m) || m->next_stream_id > FRAME_MAX_STREAM_ID) {
        *err = CV_EGOAWAY;
        return NULL;
    }
    if (m->nstreams >= m->peer.max_concurrent_streams) {
        *err = CV_ELIMIT;
        return NULL;
    }
    if (len > m->peer.max_metadata_size) {
        *err = CV_EINVAL;
        return NULL;
    }
    rv = queue_block(m, m->next_stream_id, block, len, end_stream);
    if (rv < 0) {
        *err = rv;
        return NULL;
    }
    s = stream_new(m, m->next_stream_id);
    if (s == NULL) {
        /* The HEADERS are already queued: cancel the stream on the wire. */
        send_reset_frame(m, m->next_stream_id, CODE_CANCEL);
        m->next_stream_id += 2;
        *err = CV_ENOMEM;
        return NULL;
    }
    m->next_stream_id += 2;
    s->sh = sh;
    s->data = sdata;
    if (end_stream)
        s->flags |= S_F_LOCAL_END | S_F_LOCAL_CLOSED;
    if (m->next_stream_id > FRAME_MAX_STREAM_ID) {
        /* RELIABILITY.md §2.4: the id space is used up; the connection drains (no new streams,
         * the registry picks others) and the edge closes it once idle, so the connector dials a
         * fresh one. */
        LOG_I("mux stream ids used up: draining the connection");
        mux_goaway(m, CODE_NO_ERROR, 0, "stream ids used up");
    }
    return s;
}

int mux_stream_headers(struct mux_stream *s, const uint8_t *block, size_t len, int end_stream)
{
    struct mux *m = s->m;
    int rv;

    if (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED | S_F_RESET) || m->state != MUX_S_OPEN)
        return CV_ECLOSED;
    rv = queue_block(m, s->id, block, len, end_stream);
    if (rv < 0)
        return rv;
    if (m->role == MUX_ROLE_CONNECTOR)
        s->flags |= S_F_DISPATCHED;
    if (end_stream) {
        s->flags |= S_F_LOCAL_END | S_F_LOCAL_CLOSED;
        (void)stream_settle(s); /* ahead of the trailers */
        buf_release(&s->sendq);
        stream_check_closed(s);
    }
    return 0;
}

ssize_t mux_stream_write(struct mux_stream *s, const uint8_t *p, size_t n, int fin)
{
    size_t k;

    if (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED | S_F_RESET))
        return CV_ECLOSED;
    if (stream_settle(s) < 0) /* the queue may move */
        return CV_ENOMEM;
    k = sendq_room(s);
    if (k > n)
        k = n;
    if (k >= INPLACE_MIN && buf_len(&s->sendq) == 0 &&
        buf_reserve(&s->sendq, FRAME_HDR_LEN + k, NULL) != NULL) {
        /* An empty queue takes bulk data after room for a frame header, so that its first frame
         * can be framed in place too (frame_one). */
        s->sendq.pos += FRAME_HDR_LEN;
        s->sendq.last += FRAME_HDR_LEN;
    }
    if (k > 0 && buf_append(&s->sendq, p, k) < 0)
        return CV_ENOMEM;
    if (k < n)
        s->flags |= S_F_WRITE_WAIT;
    else if (fin)
        s->flags |= S_F_LOCAL_END;
    stream_update_ready(s);
    return (ssize_t)k;
}

uint8_t *mux_stream_reserve(struct mux_stream *s, size_t *len)
{
    size_t room;
    uint8_t *p;

    if (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED | S_F_RESET))
        return NULL;
    if (stream_settle(s) < 0) /* the queue may move */
        return NULL;
    room = sendq_room(s);
    if (room == 0) {
        s->flags |= S_F_WRITE_WAIT;
        return NULL;
    }
    if (room > *len)
        room = *len;
    p = buf_reserve(&s->sendq, room, NULL);
    if (p == NULL)
        return NULL;
    *len = room;
    return p;
}

void mux_stream_commit(struct mux_stream *s, size_t n)
{
    buf_commit(&s->sendq, n);
    stream_update_ready(s);
}

int mux_stream_end(struct mux_stream *s)
{
    if (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED | S_F_RESET))
        return CV_ECLOSED;
    s->flags |= S_F_LOCAL_END;
    stream_update_ready(s);
    return 0;
}

size_t mux_stream_buffer_bytes(const struct mux_stream *s)
{
    return (size_t)(s->sendq.end - s->sendq.base);
}

size_t mux_stream_write_space(struct mux_stream *s)
{
    size_t room;

    if (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED | S_F_RESET))
        return 0;
    room = sendq_room(s);
    if (room == 0)
        s->flags |= S_F_WRITE_WAIT; /* the caller waits: on_writable is owed */
    return room;
}

size_t mux_stream_queued(const struct mux_stream *s)
{
    return buf_len(&s->sendq);
}

int mux_stream_dispatched(struct mux_stream *s)
{
    struct mux *m = s->m;
    uint8_t *p;

    if (m->role != MUX_ROLE_CONNECTOR || (s->flags & (S_F_DISPATCHED | S_F_RESET)))
        return 0;
    if (m->state != MUX_S_OPEN)
        return CV_ECLOSED;
    p = out_reserve(m, FRAME_HDR_LEN);
    if (p == NULL)
        return CV_ENOMEM;
    buf_commit(&m->out, (size_t)frame_encode_dispatched(p, FRAME_HDR_LEN, s->id));
    m->st.frames_out++;
    s->flags |= S_F_DISPATCHED;
    want_write(m);
    return 0;
}

/*
 * §9.5 window auto-tuning. Half of the stream's window was consumed (forwarded onward) since the last
 * update. The window doubles, up to stream_window_max, when the reader kept up: it never left half
 * of the window unconsumed since that update, and it got through that half in less
 * than MUX_GROW_FLOOR_US, or four round trips where those are longer (counted up to
 * MUX_GROW_CEIL_US). Then the window, not the reader, limits the stream: the sender waits a credit
 * round trip per window. The extra credit goes out with this update. A reader that falls behind or
 * drains slowly keeps its window, so what the receiver buffers for it stays the window it had plus
 * its output buffer. The grown parts of all windows of a connection stay within half the connection
 * window: streams that stall after growing cannot pin all of it, and the other half is left for
 * everyone else's initial windows.
 */
static uint64_t window_growth(struct mux *m, struct mux_stream *s)
{
    uint64_t t = now_us(m), last = s->grant_us, within, extra, room;
    uint64_t backlog = s->unconsumed_peak;

    s->grant_us = t;
    s->unconsumed_peak = s->recv_unconsumed;
    if (s->recv_size >= m->lim.stream_window_max || last == 0 || t < last ||
        backlog >= s->recv_size / 2)
        return 0;
    within = 4 * m->last_rtt_us;
    if (within < MUX_GROW_FLOOR_US)
        within = MUX_GROW_FLOOR_US;
    if (within > MUX_GROW_CEIL_US)
        within = MUX_GROW_CEIL_US;
    if (t - last >= within)
        return 0;
    room = m->local.connection_window / 2;
    room = room > m->window_grown ? room - m->window_grown : 0;
    extra = s->recv_size;
    if (extra > m->lim.stream_window_max - s->recv_size)
        extra = m->lim.stream_window_max - s->recv_size;
    if (extra > room)
        extra = room;
    s->recv_size += (uint32_t)extra;
    m->window_grown += extra;
    return extra;
}

uint32_t mux_stream_window_size(const struct mux_stream *s)
{
    return s->recv_size;
}

void mux_stream_consumed(struct mux_stream *s, size_t n)
{
    struct mux *m = s->m;
    uint64_t inc;

    if (s->flags & S_F_RESET)
        return;
    if (n > s->recv_unconsumed)
        n = (size_t)s->recv_unconsumed;
    s->recv_unconsumed -= n;
    conn_credit(m, n);
    if (s->flags & S_F_REMOTE_CLOSED || m->state != MUX_S_OPEN)
        return;
    s->consumed_pending += n;
    /* §9.4: update once half the window was consumed. */
    if (s->consumed_pending < s->recv_size / 2)
        return;
    inc = s->consumed_pending + window_growth(m, s);
    s->consumed_pending = 0;
    s->recv_window += (int64_t)inc;
    send_window_update(m, s->id, (uint32_t)inc);
}

void mux_stream_reset(struct mux_stream *s, uint32_t code)
{
    struct mux *m = s->m;

    if (s->flags & S_F_RESET)
        return;
    if (!((s->flags & S_F_LOCAL_CLOSED) && (s->flags & S_F_REMOTE_CLOSED)) && m->state == MUX_S_OPEN)
        send_reset_frame(m, s->id, code);
    stream_mark_reset(s);
}

void mux_stream_release(struct mux_stream *s)
{
    if (!(s->flags & S_F_HELD))
        return;
    /* §9.4: the application will never consume what it still holds: the connection window gets
     * it back, or every finished stream would shrink it for good. */
    if (s->recv_unconsumed > 0) {
        conn_credit(s->m, s->recv_unconsumed);
        s->recv_unconsumed = 0;
    }
    s->flags &= ~S_F_HELD;
    s->sh = NULL;
    s->data = NULL;
    list_remove(&s->notify_node);
    if (!(s->flags & S_F_RESET)) {
        if (!(s->flags & S_F_LOCAL_END))
            mux_stream_reset(s, CODE_CANCEL);
        else if ((s->flags & S_F_LOCAL_CLOSED) && !(s->flags & S_F_REMOTE_CLOSED))
            mux_stream_reset(s, CODE_NO_ERROR);
        /* else: END_STREAM still queued; mux_pending sends it and finishes the stream. */
    }
    stream_maybe_free(s);
}

uint32_t mux_stream_id(const struct mux_stream *s)
{
    return s->id;
}

struct mux *mux_stream_mux(const struct mux_stream *s)
{
    return s->m;
}

void *mux_stream_data(const struct mux_stream *s)
{
    return s->data;
}

void mux_stream_set_hooks(struct mux_stream *s, const struct mux_stream_hooks *sh, void *sdata)
{
    s->sh = sh;
    s->data = sdata;
}

void *mux_arg(const struct mux *m)
{
    return m->arg;
}

int mux_stream_was_dispatched(const struct mux_stream *s)
{
    return (s->flags & S_F_DISPATCHED) != 0;
}

int mux_stream_local_closed(const struct mux_stream *s)
{
    return (s->flags & (S_F_LOCAL_END | S_F_LOCAL_CLOSED)) != 0;
}

int mux_stream_remote_closed(const struct mux_stream *s)
{
    return (s->flags & S_F_REMOTE_CLOSED) != 0;
}
