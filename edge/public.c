/*
 * public.c - visitors' HTTP(S); see public.h.
 *
 * Layers: above, nothing (this is where visitors arrive); below, sock.c (TLS with the SNI store of
 * certs.c), http1.c (strict request parsing), store.c (routes), tunnel.c (which connection), mux.c
 * (the stream). One loop thread.
 *
 * One connection (struct pconn) serves one request (struct preq) at a time. Pipelined bytes wait in
 * the input buffer (the parser is paused after each message) until the response before them is
 * complete, so responses always go back in request order and every request is routed and checked on
 * its own (RELIABILITY.md 1.5). A request body is fed to the parser only as far as the stream's send
 * queue has room (back-pressure reaches the visitor's TCP window); response bytes are returned to the
 * tunnel's flow control only once the visitor's socket has taken them (sock output below
 * limits.client_output_buffer, or half the stream window once it grew: size_output), so a slow
 * reader stops the origin instead of growing memory.
 *
 * The edge writes the framing towards the visitor itself (Content-Length when the connector gave
 * one, chunked for HTTP/1.1 otherwise, close-delimited for HTTP/1.0); it never copies the origin's.
 * A response that dies after its head was sent ends with an aborted connection, never with a clean
 * end (RELIABILITY.md §6, haproxy truncated_response.vtc).
 */
#include "public.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "buf.h"
#include "certs.h"
#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "errpage.h"
#include "frame.h"
#include "hostname.h"
#include "http1.h"
#include "list.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "pipe.h"
#include "sock.h"
#include "store.h"
#include "strx.h"
#include "token.h"
#include "tunnel.h"

#define MAX_LISTENERS 16
#define IP_BUCKETS 1024
#define PATH_LOG_MAX 1024

struct ip_count {
    struct ip_count *next;
    unsigned n;                /* open connections; the entry may outlive them (abort budget) */
    uint64_t abort_milli;      /* visitor abort budget, thousandths of a token */
    uint64_t abort_refill_ms;
    char ip[64];
};

struct public_side {
    struct edge *e;
    struct listener *https[MAX_LISTENERS];
    size_t nhttps;
    struct listener *http[MAX_LISTENERS];
    size_t nhttp;
    struct list_node conns;
    size_t nconns;
    struct ip_count *ips[IP_BUCKETS];
    struct buf scratch; /* heads and metadata blocks, reused */
    struct list_node expect; /* requests owed a 100 Continue if the origin sends none in time */
    uv_timer_t expect_timer;
    struct list_node waiting; /* requests waiting for a stream slot (limits.stream_queue), oldest first */
    size_t nwaiting;
    uv_check_t waiting_check; /* retries them after every loop turn while any waits */
    uint64_t rid_prefix;
    uint64_t rid_counter;
    int accepting;
};

enum pconn_state {
    PC_S_HANDSHAKE, /* TLS handshake */
    PC_S_IDLE,      /* keep-alive: waiting for the first byte of a request */
    PC_S_HEAD,      /* reading a request head */
    PC_S_REQUEST,   /* a request is in progress */
    PC_S_TUNNEL,    /* upgraded (after the origin's 101): a raw byte pipe to the stream */
    PC_S_CLOSING,   /* closing: nothing more is read or answered */
    PC_S_COUNT
};

static const char *const pconn_state_names[PC_S_COUNT] = {"handshake", "idle", "head", "request",
                                                          "tunnel", "closing"};

#define PC_F_TLS 0x01          /* an HTTPS listener's connection */
#define PC_F_CLOSE_AFTER 0x02  /* close once the current response is written */
#define PC_F_READ_STOPPED 0x04 /* reading paused: the stream's send queue is full */

struct preq;

struct pconn {
    struct public_side *ps;
    struct sock *sock;
    struct http1_parser *parser;
    struct preq *req;
    enum pconn_state state;
    unsigned flags;
    int listen_port;
    unsigned nrequests;
    struct list_node node;
    char peer_ip[64];
    struct ip_count *ipc; /* this address's count and abort budget; NULL when refused */
    char peer[80];
    size_t peer_ip_len;
    size_t peer_len;
    char sni[HOSTNAME_MAX + 1]; /* normalised SNI, "" if none */
    uint32_t header_read_ms;    /* the SNI host's settings (hosts: in edge.yml), else the defaults */
    uint32_t keepalive_idle_ms;
    struct pipe pipe;           /* PC_S_TUNNEL */
};

/* Request flags. */
#define RQ_F_HEAD 0x0001          /* method HEAD: the response has no body */
#define RQ_F_IN_DONE 0x0002       /* the request message is complete (body included) */
#define RQ_F_RESP_HEAD 0x0004     /* the response head was written */
#define RQ_F_RESP_DONE 0x0008     /* the response is complete */
#define RQ_F_RESP_CHUNKED 0x0010  /* we frame the response body as chunked */
#define RQ_F_RESP_EOF 0x0020      /* close-delimited response (HTTP/1.0 visitor, unknown length) */
#define RQ_F_LOCAL 0x0040         /* the edge answers itself (error page, redirect) */
#define RQ_F_DISPATCHED 0x0080    /* the connector handed it to its origin: no retry */
#define RQ_F_RETRIED 0x0100       /* already retried once */
#define RQ_F_HAS_BODY 0x0200      /* the request has a body */
#define RQ_F_JSON 0x0400          /* the visitor prefers JSON error pages */
#define RQ_F_KEEPALIVE 0x0800     /* the visitor's message allows keep-alive */
#define RQ_F_NO_RESP_BODY 0x1000  /* the response has no body (HEAD, 204, 304) */
#define RQ_F_UPGRADE 0x2000       /* a WebSocket upgrade: raw pipe after a valid 101 */
#define RQ_F_EXPECT 0x4000        /* Expect: 100-continue, no interim response yet */
#define RQ_F_SENT_100 0x8000      /* a 100 Continue went to the visitor */
#define RQ_F_TCP 0x10000          /* Upgrade: culvert-tcp: a REQUEST_TCP stream, 101 after its 200 */
#define RQ_F_QUEUED 0x20000       /* in ps->waiting: every connection of the tunnel is at its limit */
#define RQ_F_WANT_100 0x40000     /* Expect: 100-continue, timed once the stream is open */

/* A request body is kept (in preq.replay) until the connector says DISPATCHED, up to this much: a
 * stream refused before that (a connector going away, PROTOCOL.md §7.7) is retried elsewhere with
 * its body, as PRODUCT.md promises for requests not yet handed to an origin. The connector's
 * initial stream window (256 KiB by default) bounds what a stream carries before the connector
 * returns credit, which it does only once it writes the body to its origin, after DISPATCHED: with
 * the default window every stream refused before DISPATCHED can be retried. */
#define REPLAY_MAX (256 * 1024)

struct preq {
    struct pconn *pc;
    struct mux_stream *stream;
    struct mux *mux;          /* the connection the stream is on (avoided on retry) */
    unsigned flags;
    int version_minor;
    int status;
    uint8_t tunnel_id[16];
    char tunnel_name[STORE_NAME_MAX + 1];
    char id[17];
    char method[HTTP1_MAX_METHOD + 1];
    char *path;               /* for the access log, truncated */
    char *referer;
    char *ua;
    char host[HOSTNAME_MAX + 1];
    size_t host_len;
    struct buf meta;          /* the request block, kept for one retry until DISPATCHED */
    struct buf replay;        /* the body given to the stream so far, kept with |meta| (its cap:
                                 REPLAY_MAX, or stream_send_buffer if smaller) */
    uint64_t body_sent;       /* request body bytes given to the stream */
    uint64_t body_progress;   /* body bytes read since the deadline last started (preq_arm) */
    int64_t resp_clen;
    uint64_t resp_bytes;
    uint64_t pending_consume; /* response bytes received but not yet returned to flow control */
    uint64_t start_ms;
    uint64_t expect_deadline; /* RQ_F_EXPECT: when the edge sends its own 100 Continue */
    uint32_t response_header_ms; /* this host's deadline for the origin's response head */
    struct list_node expect_node;
    struct list_node wait_node;
    char ws_key[32];          /* RQ_F_UPGRADE: Sec-WebSocket-Key, to check the origin's answer */
};

static uint64_t now_ms(const struct public_side *ps)
{
    return uv_now(ps->e->loop);
}

/* ---- per-IP connection counts --------------------------------------------------------------- */

static size_t ip_hash(const char *ip)
{
    uint64_t h = 1469598103934665603ull;

    for (; *ip != '\0'; ip++)
        h = (h ^ (uint8_t)*ip) * 1099511628211ull;
    return (size_t)(h % IP_BUCKETS);
}

/*
 * Visitor aborts per client address (RELIABILITY.md T-36, the edge's side of rapid reset): a
 * request abandoned while its stream was open made the connector start origin work for nothing.
 * Each draws from a token bucket with the tunnel's reset budget (reset_burst, reset_per_sec);
 * an empty bucket answers the address's new requests with 429 until it refills. Returns the
 * tokens left after refilling, in thousandths.
 */
static uint64_t ip_abort_tokens(struct public_side *ps, struct ip_count *c)
{
    uint64_t now = uv_now(ps->e->loop);
    uint64_t cap = (uint64_t)ps->e->limits.reset_burst * 1000;

    if (now > c->abort_refill_ms) {
        c->abort_milli += (now - c->abort_refill_ms) * ps->e->limits.reset_per_sec;
        c->abort_refill_ms = now;
    }
    if (c->abort_milli > cap)
        c->abort_milli = cap;
    return c->abort_milli;
}

static void ip_note_abort(struct public_side *ps, struct ip_count *c)
{
    if (ip_abort_tokens(ps, c) < 1000)
        return;
    c->abort_milli -= 1000;
    if (c->abort_milli < 1000)
        LOG_W_RL("public client=%s abort budget exhausted: more than %u requests abandoned with their "
                 "streams open (refill %u/s); its new requests get 429 until it refills",
                 c->ip, ps->e->limits.reset_burst, ps->e->limits.reset_per_sec);
}

/* The visitor abandons |rq| (went away, stopped its body, sent a bad one) while its stream is open
 * at the connector, which may have started origin work: charged to its address (T-36). */
static void preq_abandoned(struct preq *rq)
{
    struct pconn *pc = rq->pc;

    if (rq->stream != NULL && pc->ipc != NULL && !(rq->flags & (RQ_F_RESP_DONE | RQ_F_LOCAL)) &&
        !((rq->flags & RQ_F_UPGRADE) && (rq->flags & RQ_F_RESP_HEAD)))
        ip_note_abort(pc->ps, pc->ipc);
}

/* An entry with no connection is kept while its abort budget is not full, so that closing and
 * reconnecting does not reset it; it goes at a later walk of its bucket once full again. */
static int ip_idle(struct public_side *ps, struct ip_count *c)
{
    return c->n == 0 && ip_abort_tokens(ps, c) >= (uint64_t)ps->e->limits.reset_burst * 1000;
}

/* Counts a new connection from |ip|. Returns its entry, or NULL with *|err| CV_ELIMIT over the
 * per-IP cap (or CV_ENOMEM). */
static struct ip_count *ip_acquire(struct public_side *ps, const char *ip, int *err)
{
    struct ip_count **pp = &ps->ips[ip_hash(ip)];
    struct ip_count *c;

    while ((c = *pp) != NULL) {
        if (strcmp(c->ip, ip) == 0) {
            if (c->n >= ps->e->limits.per_ip_connections) {
                *err = CV_ELIMIT;
                return NULL;
            }
            c->n++;
            return c;
        }
        if (ip_idle(ps, c)) {
            *pp = c->next;
            mem_free(c);
            continue;
        }
        pp = &c->next;
    }
    c = mem_calloc(sizeof(*c));
    if (c == NULL) {
        *err = CV_ENOMEM;
        return NULL;
    }
    snprintf(c->ip, sizeof(c->ip), "%s", ip);
    c->n = 1;
    c->abort_milli = (uint64_t)ps->e->limits.reset_burst * 1000;
    c->abort_refill_ms = uv_now(ps->e->loop);
    c->next = *pp;
    *pp = c;
    return c;
}

static void ip_release(struct public_side *ps, struct ip_count *rel)
{
    struct ip_count **pp;

    if (rel == NULL || --rel->n > 0 || !ip_idle(ps, rel))
        return;
    for (pp = &ps->ips[ip_hash(rel->ip)]; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rel) {
            *pp = rel->next;
            mem_free(rel);
            return;
        }
    }
}

/* ---- small helpers -------------------------------------------------------------------------- */

static void pconn_process(struct pconn *pc);
static void preq_finish_check(struct preq *rq);

static void pconn_close(struct pconn *pc)
{
    if (pc->state == PC_S_CLOSING)
        return;
    pc->state = PC_S_CLOSING;
    sock_close(pc->sock);
}

static int pc_closing(const struct pconn *pc)
{
    return pc->state == PC_S_CLOSING;
}

static void pconn_abort(struct pconn *pc)
{
    pc->state = PC_S_CLOSING;
    sock_abort(pc->sock);
}

/*
 * The response was cut after its head went out (RELIABILITY.md §6, haproxy's
 * truncated_response.vtc): the visitor gets every byte that came, then an end it cannot take for a
 * complete response. A body with a length (Content-Length, or chunked without its last chunk) ends
 * with a close after the flush, which keeps the bytes in flight; a close-delimited body can only be
 * marked by a reset.
 */
static void pconn_cut(struct pconn *pc, const struct preq *rq)
{
    if (!(rq->flags & RQ_F_RESP_EOF) && (rq->resp_clen >= 0 || (rq->flags & RQ_F_RESP_CHUNKED)))
        pconn_close(pc);
    else
        pconn_abort(pc);
}

static void new_request_id(struct public_side *ps, char out[17])
{
    uint64_t v = ps->rid_prefix ^ (++ps->rid_counter * 0x9e3779b97f4a7c15ull);

    strx_hex16(out, v);
}

static char *dup_bounded(const char *s, size_t n, size_t max)
{
    if (s == NULL)
        return NULL;
    return mem_strndup(s, n > max ? max : n);
}

static void waiting_remove(struct preq *rq);

/* The request can no longer be retried: its block and its body copy go. */
static void no_retry(struct preq *rq)
{
    buf_cleanup(&rq->meta);
    buf_cleanup(&rq->replay);
}

static void preq_free(struct preq *rq)
{
    if (rq == NULL)
        return;
    list_remove(&rq->expect_node);
    waiting_remove(rq);
    if (rq->stream != NULL) {
        mux_stream_release(rq->stream);
        rq->stream = NULL;
    }
    if (!pc_closing(rq->pc)) /* the next request (or WebSocket) starts from the configured mark */
        sock_set_out_high(rq->pc->sock, (size_t)rq->pc->ps->e->limits.client_output_buffer);
    no_retry(rq);
    mem_free(rq->path);
    mem_free(rq->referer);
    mem_free(rq->ua);
    mem_free(rq);
}

/* ---- overload (RELIABILITY.md §10, buffer budget) ---------------------------------------------- */

/* True when all buffers together hold at least |pct| percent of limits.buffer_budget (0: off). */
static int over_budget(const struct public_side *ps, unsigned pct)
{
    uint64_t budget = ps->e->limits.buffer_budget;

    return budget != 0 && (uint64_t)buf_held_bytes() * 100 >= budget * pct;
}

/* What closing a visitor connection frees of the buffers: its unsent output (response bytes the
 * stream delivered, waiting for the visitor to read), unread input, and its request's send queue
 * (body bytes waiting for the tunnel), kept request block and body copy, as storage. */
static size_t pconn_buffered(struct pconn *pc)
{
    size_t n = sock_buffer_bytes(pc->sock);
    const struct preq *rq = pc->req;

    if (rq != NULL) {
        n += (size_t)(rq->meta.end - rq->meta.base) + (size_t)(rq->replay.end - rq->replay.base);
        if (rq->stream != NULL)
            n += mux_stream_buffer_bytes(rq->stream);
    }
    return n;
}

/* At 98% of the budget: closes the visitor connections that hold the most, largest first, until
 * what is left would be under 95% (Envoy's overload manager does the same with its heap). The
 * process and every other stream go on. Buffers are freed when the closes complete, so what
 * closing connections still hold counts as gone already. */
static void shed(struct public_side *ps)
{
    uint64_t budget = ps->e->limits.buffer_budget;
    uint64_t held = buf_held_bytes();
    struct list_node *p;
    unsigned n = 0;

    list_for_each(p, &ps->conns)
    {
        struct pconn *pc = container_of(p, struct pconn, node);

        if (pc_closing(pc) && pc->sock != NULL) {
            size_t k = pconn_buffered(pc);

            held = held > k ? held - k : 0;
        }
    }
    while (budget != 0 && held * 100 > budget * 95 && n < 1024) {
        struct pconn *big = NULL;
        size_t most = 0;

        list_for_each(p, &ps->conns)
        {
            struct pconn *pc = container_of(p, struct pconn, node);
            size_t k;

            if (pc_closing(pc))
                continue;
            k = pconn_buffered(pc);
            if (k > most) {
                most = k;
                big = pc;
            }
        }
        if (big == NULL)
            break;
        LOG_W_RL("public peer=%s overload: buffers hold %" PRIu64 " KiB of buffer_budget %" PRIu64
                 " KiB; closing this visitor connection, which holds %zu KiB",
                 big->peer, held >> 10, budget >> 10, most >> 10);
        pconn_abort(big);
        held = held > most ? held - most : 0;
        n++;
    }
}

/* Writes to the visitor; a failure closes the connection. */
static void pc_write(struct pconn *pc, const void *p, size_t n)
{
    if (pc->state == PC_S_CLOSING)
        return;
    if (sock_write(pc->sock, p, n) < 0)
        pconn_abort(pc);
}

/* ---- access log ----------------------------------------------------------------------------- */

/* The length of the well-formed UTF-8 sequence at |s| (NUL-terminated), 1 to 4 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one. */
static size_t utf8_len(const unsigned char *s)
{
    size_t n;
    unsigned lo = 0x80;
    unsigned hi = 0xbf;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

/* A JSON string (RFC 8259, so UTF-8): a visitor's field may hold any byte from 0x80 up (obs-text);
 * well-formed UTF-8 is kept, every other such byte becomes U+FFFD, so that each line stays JSON. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    while (s != NULL && *s != '\0') {
        unsigned char c = (unsigned char)*s;
        size_t n = utf8_len((const unsigned char *)s);

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\u%04x", c);
        else if (n == 0)
            fputs("\\ufffd", f);
        else
            fwrite(s, 1, n, f);
        s += n == 0 ? 1 : n;
    }
    fputc('"', f);
}

/* Escapes quotes and control characters like nginx does in its access log. */
static void log_str(FILE *f, const char *s)
{
    if (s == NULL || *s == '\0') {
        fputc('-', f);
        return;
    }
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x7f)
            fprintf(f, "\\x%02X", c);
        else
            fputc(c, f);
    }
}

static void access_log(struct preq *rq)
{
    struct edge *e = rq->pc->ps->e;
    FILE *f = e->access_log;
    char when[64];
    time_t t = time(NULL);
    struct tm tm;
    double dur = (double)(now_ms(rq->pc->ps) - rq->start_ms) / 1000.0;

    if (f == NULL)
        return;
    gmtime_r(&t, &tm);
    if (e->cfg->access_log_format == ACCESS_LOG_JSON) {
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        fprintf(f, "{\"time\":\"%s\",\"remote_addr\":", when);
        json_str(f, rq->pc->peer_ip);
        fprintf(f, ",\"method\":");
        json_str(f, rq->method);
        fprintf(f, ",\"host\":");
        json_str(f, rq->host);
        fprintf(f, ",\"path\":");
        json_str(f, rq->path);
        fprintf(f, ",\"protocol\":\"HTTP/1.%d\",\"status\":%d,\"bytes_sent\":%" PRIu64 ",\"referer\":",
                rq->version_minor, rq->status, rq->resp_bytes);
        json_str(f, rq->referer);
        fprintf(f, ",\"user_agent\":");
        json_str(f, rq->ua);
        fprintf(f, ",\"request_id\":\"%s\",\"tunnel\":", rq->id);
        json_str(f, rq->tunnel_name);
        fprintf(f, ",\"duration\":%.3f}\n", dur);
    } else {
        strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
        fprintf(f, "%s - - [%s] \"", rq->pc->peer_ip, when);
        if (rq->method[0] != '\0') { /* else the request line could not be parsed: "-" */
            fprintf(f, "%s ", rq->method);
            log_str(f, rq->path);
            fprintf(f, " HTTP/1.%d", rq->version_minor);
        } else {
            fputc('-', f);
        }
        fprintf(f, "\" %d %" PRIu64 " \"", rq->status, rq->resp_bytes);
        log_str(f, rq->referer);
        fputs("\" \"", f);
        log_str(f, rq->ua);
        fprintf(f, "\" host=%s rid=%s tunnel=%s time=%.3f\n", rq->host[0] != '\0' ? rq->host : "-",
                rq->id, rq->tunnel_name[0] != '\0' ? rq->tunnel_name : "-", dur);
    }
    fflush(f);
}

/* ---- local answers -------------------------------------------------------------------------- */

/* Cancels |rq|'s stream, if it still has one: a RESET to the connector, and the stream let go. */
static void preq_cancel_stream(struct preq *rq)
{
    if (rq->stream == NULL)
        return;
    mux_stream_reset(rq->stream, CODE_CANCEL);
    mux_stream_release(rq->stream);
    rq->stream = NULL;
}

/* The body bytes of the complete response in |b| (what the access log counts, as nginx's
 * $body_bytes_sent): what follows the blank line. */
static uint64_t answer_body_bytes(const struct buf *b)
{
    const uint8_t *end = memmem(b->pos, buf_len(b), "\r\n\r\n", 4);

    return end != NULL ? (uint64_t)(b->pos + buf_len(b) - (end + 4)) : 0;
}

/*
 * The edge answers |rq| itself with |status|. A request whose body was not read ends the
 * connection after the answer (its bytes cannot be told apart from a next request).
 */
static void answer_local(struct preq *rq, int status, const char *detail, const char *extra)
{
    struct pconn *pc = rq->pc;
    struct buf *b = &pc->ps->scratch;
    int close;

    if (rq->flags & RQ_F_RESP_HEAD) {
        /* Too late for a page: the visitor must see the response was cut. */
        pconn_cut(pc, rq);
        return;
    }
    if ((rq->flags & RQ_F_HAS_BODY) && !(rq->flags & RQ_F_IN_DONE))
        pc->flags |= PC_F_CLOSE_AFTER;
    if (!(rq->flags & RQ_F_KEEPALIVE) || status == 400 || status == 408)
        pc->flags |= PC_F_CLOSE_AFTER;
    close = (pc->flags & PC_F_CLOSE_AFTER) != 0;
    rq->flags |= RQ_F_LOCAL | RQ_F_RESP_HEAD | RQ_F_RESP_DONE;
    rq->status = status;
    buf_consume(b, buf_len(b));
    if (errpage_write(b, status, detail, rq->id, (rq->flags & RQ_F_JSON) != 0, close,
                      (rq->flags & RQ_F_HEAD) != 0, extra) == 0) {
        rq->resp_bytes = answer_body_bytes(b);
        pc_write(pc, b->pos, buf_len(b));
    } else {
        pc->flags |= PC_F_CLOSE_AFTER;
    }
    buf_consume(b, buf_len(b));
    preq_cancel_stream(rq);
    preq_finish_check(rq);
}

/*
 * A parse error (or the head deadline): answer |status| and close. A request whose head was
 * parsed (its body broke) is answered under its own id, the one its origin saw, as it asked (JSON
 * or HTML). Otherwise there is no request to speak of: a new id names it. Either way the answer is
 * written in the access log, so that the id the visitor sees can be found (nginx logs its 400s and
 * 414s too).
 */
static void answer_parse_error(struct pconn *pc, int status)
{
    struct buf *b = &pc->ps->scratch;
    struct preq *rq = pc->req;

    if (rq != NULL) {
        LOG_D("public peer=%s rid=%s bad request body: %d %s", pc->peer, rq->id, status,
              http1_error_reason(pc->parser));
        if (status > 0) {
            pc->flags |= PC_F_CLOSE_AFTER;
            answer_local(rq, status, NULL, NULL); /* resets the stream, logs, closes */
            if (pc->req == NULL || pc_closing(pc))
                return;
        }
        preq_cancel_stream(rq);
        pconn_close(pc);
        return;
    }
    rq = mem_calloc(sizeof(*rq));
    if (rq == NULL) {
        pconn_close(pc);
        return;
    }
    rq->pc = pc;
    rq->version_minor = 1;
    rq->start_ms = now_ms(pc->ps);
    rq->status = status;
    new_request_id(pc->ps, rq->id);
    LOG_D("public peer=%s rid=%s bad request: %d %s", pc->peer, rq->id, status,
          http1_error_reason(pc->parser));
    buf_consume(b, buf_len(b));
    if (status > 0 && errpage_write(b, status, NULL, rq->id,
                                    errpage_wants_json(http1_error_field(pc->parser, "accept")), 1,
                                    0, NULL) == 0) {
        rq->resp_bytes = answer_body_bytes(b);
        pc_write(pc, b->pos, buf_len(b));
        access_log(rq);
    }
    buf_consume(b, buf_len(b));
    mem_free(rq);
    pconn_close(pc);
}

/* ---- 100 Continue ------------------------------------------------------------------------------ */

/* The visitor waits for a 100 before sending its body (Expect: 100-continue). The origin's own 100
 * is relayed when it comes; if none comes in limits.expect_continue_ms, the edge sends its own, as
 * nginx does when it starts reading a body. */
static void send_continue(struct preq *rq)
{
    list_remove(&rq->expect_node);
    rq->flags &= ~RQ_F_EXPECT;
    if (rq->flags & (RQ_F_SENT_100 | RQ_F_RESP_HEAD | RQ_F_LOCAL))
        return;
    rq->flags |= RQ_F_SENT_100;
    pc_write(rq->pc, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void on_expect_tick(uv_timer_t *t)
{
    struct public_side *ps = t->data;
    uint64_t now = now_ms(ps);
    struct list_node *p;
    struct list_node *tmp;

    list_for_each_safe(p, tmp, &ps->expect)
    {
        struct preq *rq = container_of(p, struct preq, expect_node);

        if (now >= rq->expect_deadline)
            send_continue(rq);
    }
    if (list_empty(&ps->expect))
        uv_timer_stop(t);
}

static void expect_start(struct preq *rq)
{
    struct public_side *ps = rq->pc->ps;

    rq->flags |= RQ_F_EXPECT;
    rq->expect_deadline = now_ms(ps) + ps->e->limits.expect_continue_ms;
    list_push_back(&ps->expect, &rq->expect_node);
    if (!uv_is_active((uv_handle_t *)&ps->expect_timer))
        uv_timer_start(&ps->expect_timer, on_expect_tick, 50, 50);
}

static void expect_cancel(struct preq *rq)
{
    list_remove(&rq->expect_node);
    rq->flags &= ~RQ_F_EXPECT;
}

/* ---- upgraded connections ------------------------------------------------------------------- */

/* Both directions of an upgraded connection ended: log it and close. */
static void tunnel_check_done(struct pconn *pc)
{
    struct preq *rq = pc->req;

    if (rq == NULL || !pipe_done(&pc->pipe))
        return;
    rq->resp_bytes = pc->pipe.to_sock;
    access_log(rq);
    pc->req = NULL;
    preq_free(rq);
    pconn_close(pc);
}

static void enter_tunnel(struct preq *rq)
{
    struct pconn *pc = rq->pc;

    pc->state = PC_S_TUNNEL;
    rq->flags |= RQ_F_RESP_HEAD;
    no_retry(rq);
    /* RELIABILITY.md 1.4 and §10: WebSocket streams have no idle timeout; tunnel PINGs keep the
     * connection to the connector alive. */
    sock_set_timeout(pc->sock, 0);
    sock_set_send_timeout(pc->sock, 0);
    if (pc->flags & PC_F_READ_STOPPED) {
        pc->flags &= ~PC_F_READ_STOPPED;
        sock_read_start(pc->sock);
    }
    /* Bytes the visitor sent after its request (before the 101) were held until now. */
    pipe_start(&pc->pipe, pc->sock, rq->stream);
    LOG_D("public rid=%s upgraded to a WebSocket pipe", rq->id);
}

/* ---- deadlines ---------------------------------------------------------------------------------- */

/*
 * One deadline per request at a time (RELIABILITY.md §10):
 *  - while the request body is being read: body_idle until body_min_bytes more arrive
 *    (body_progress; not while the edge itself stopped reading because the tunnel has no room:
 *    that wait is the origin's, not the visitor's);
 *  - once the request is complete and until the response head: response_header (per host);
 *  - while the response streams: none (a quiet origin, a long poll or an event stream, is not the
 *    visitor's fault).
 * Beside it, in every phase and across keep-alive requests, send_idle is a send timeout
 * (sock_set_send_timeout, set at accept): whenever output waits for the visitor to read, it must
 * take a byte within send_idle (a stalled visitor cannot reset it by sending more requests).
 */
static void preq_arm(struct preq *rq)
{
    struct pconn *pc = rq->pc;
    const struct cv_limits *l = &pc->ps->e->limits;
    uint64_t ms = 0;

    if (pc->state != PC_S_REQUEST || (rq->flags & RQ_F_LOCAL))
        return;
    rq->body_progress = 0;
    sock_set_send_timeout(pc->sock, l->send_idle_ms); /* a reload may have changed it */
    if (rq->flags & RQ_F_QUEUED) {
        ms = rq->response_header_ms;
    } else if (!(rq->flags & RQ_F_IN_DONE)) {
        if (!(pc->flags & PC_F_READ_STOPPED))
            ms = l->body_idle_ms;
    } else if (!(rq->flags & RQ_F_RESP_HEAD)) {
        ms = rq->response_header_ms;
    }
    sock_set_timeout(pc->sock, ms);
}

/*
 * Body bytes arrived. body_idle_ms starts again only once body_min_bytes came since it last
 * started (Apache's mod_reqtimeout MinRate, in the same spirit): a body trickled a byte at a time
 * (RUDY, RELIABILITY.md T-05) still ends at body_idle_ms, where a pure idle timer (nginx's
 * client_body_timeout) would wait forever. The bytes counted are the connection's, chunk framing
 * included; a body that ends is done with the deadline anyway.
 */
static void body_progress(struct preq *rq, size_t n)
{
    uint32_t min = rq->pc->ps->e->limits.body_min_bytes;

    rq->body_progress += n;
    if (rq->body_progress >= min)
        preq_arm(rq);
}

/* ---- the response, from the stream ---------------------------------------------------------- */

static int is_hop_by_hop_response(const char *name, size_t n)
{
#define HOP(s) {s, sizeof(s) - 1}
    static const struct {
        const char *name;
        size_t len;
    } names[] = {HOP("connection"),     HOP("keep-alive"), HOP("proxy-connection"),
                 HOP("te"),             HOP("transfer-encoding"), HOP("upgrade"),
                 HOP("trailer"),        HOP("content-length"),    HOP("culvert-request-id")};
#undef HOP

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].len == n && strncasecmp(names[i].name, name, n) == 0)
            return 1;
    }
    return 0;
}

/* A field from a connector is forwarded only if it could not split the response (§8.3 checked names
 * and values already; this keeps the edge's own framing authoritative). */
static void write_response_head(struct preq *rq, const struct meta *md, int end)
{
    struct pconn *pc = rq->pc;
    struct buf *b = &pc->ps->scratch;
    const struct meta_field *cl = meta_get(md, "content-length");
    unsigned i;
    int rv = 0;
    char line[128];
    struct http1_field fs[META_MAX_FIELDS + 4]; /* the connector's fields and the edge's four */
    size_t nf = 0;

    rq->resp_clen = -1;
    if (rq->status == 101) {
        /* The handshake's answer: no body framing; the connection becomes the pipe. */
        buf_consume(b, buf_len(b));
        rv |= http1_write_status_line(b, 101, NULL);
        for (i = meta_first_regular(md); i < md->count && rv == 0; i++) {
            const struct meta_field *f = &md->fields[i];

            if (!is_hop_by_hop_response(f->name, f->name_len))
                rv |= http1_write_field(b, f->name, f->name_len, f->value, f->value_len);
        }
        rv |= http1_write_field(b, "Upgrade", 7, "websocket", 9);
        rv |= http1_write_field(b, "Connection", 10, "Upgrade", 7);
        rv |= http1_write_field(b, "Culvert-Request-Id", 18, rq->id, strlen(rq->id));
        rv |= http1_write_head_end(b);
        if (rv != 0) {
            buf_consume(b, buf_len(b));
            answer_local(rq, 502, "The origin's response could not be relayed.", NULL);
            return;
        }
        pc_write(pc, b->pos, buf_len(b));
        buf_consume(b, buf_len(b));
        return;
    }
    if (cl != NULL) {
        int64_t v = 0;

        for (uint16_t k = 0; k < cl->value_len; k++)
            v = v * 10 + (cl->value[k] - '0');
        rq->resp_clen = v;
    }
    if ((rq->flags & RQ_F_HEAD) || rq->status == 204 || rq->status == 304)
        rq->flags |= RQ_F_NO_RESP_BODY;
    if (!(rq->flags & RQ_F_NO_RESP_BODY) && rq->resp_clen < 0) {
        if (rq->version_minor >= 1)
            rq->flags |= RQ_F_RESP_CHUNKED;
        else
            rq->flags |= RQ_F_RESP_EOF;
    }
    if ((rq->flags & RQ_F_RESP_EOF) || !(rq->flags & RQ_F_KEEPALIVE))
        pc->flags |= PC_F_CLOSE_AFTER;
    /* An upgrade answered with anything but 101: the visitor's next bytes were meant for the new
     * protocol and cannot be read as HTTP (RELIABILITY.md 1.6: normal response, then close). */
    if (rq->flags & RQ_F_UPGRADE)
        pc->flags |= PC_F_CLOSE_AFTER;
    if (pc->ps->e->draining)
        pc->flags |= PC_F_CLOSE_AFTER;
    /* The whole head at once: every field checked, then one reservation and one pass of copies. */
    for (i = meta_first_regular(md); i < md->count; i++) {
        const struct meta_field *f = &md->fields[i];

        if (!is_hop_by_hop_response(f->name, f->name_len))
            fs[nf++] = (struct http1_field){f->name, f->value, f->name_len, f->value_len};
    }
    if (rq->resp_clen >= 0 && rq->status != 204 && !(rq->status >= 100 && rq->status < 200))
        fs[nf++] = (struct http1_field){"Content-Length", line, 14,
                                        strx_u64(line, (uint64_t)rq->resp_clen)};
    if (rq->flags & RQ_F_RESP_CHUNKED)
        fs[nf++] = (struct http1_field){"Transfer-Encoding", "chunked", 17, 7};
    fs[nf++] = (struct http1_field){"Culvert-Request-Id", rq->id, 18, 16};
    if (pc->flags & PC_F_CLOSE_AFTER)
        fs[nf++] = (struct http1_field){"Connection", "close", 10, 5};
    else if (rq->version_minor == 0)
        fs[nf++] = (struct http1_field){"Connection", "keep-alive", 10, 10};
    buf_consume(b, buf_len(b));
    rv = http1_write_response_head(b, rq->status, NULL, fs, nf);
    if (rv != 0) {
        buf_consume(b, buf_len(b));
        LOG_W("public rid=%s response head from the connector cannot be written", rq->id);
        answer_local(rq, 502, "The origin's response could not be relayed.", NULL);
        return;
    }
    rq->flags |= RQ_F_RESP_HEAD;
    pc_write(pc, b->pos, buf_len(b));
    buf_consume(b, buf_len(b));
    (void)end;
}

static void body_resume(struct preq *rq);

static void st_on_headers(struct mux_stream *s, const struct meta *md, int end, void *sdata)
{
    struct preq *rq = sdata;
    const struct meta_field *st = meta_get(md, ":status");
    int status;
    int capped; /* the body may have waited at REPLAY_MAX for a DISPATCHED this stands for */

    (void)s;
    if (md->type == META_TRAILERS)
        return; /* dropped (PROTOCOL.md §8.1); the body's end comes with on_end */
    capped = buf_len(&rq->meta) > 0 && (rq->flags & RQ_F_HAS_BODY) && !(rq->flags & RQ_F_IN_DONE);
    rq->flags |= RQ_F_DISPATCHED;
    no_retry(rq);
    expect_cancel(rq);
    status = (st->value[0] - '0') * 100 + (st->value[1] - '0') * 10 + (st->value[2] - '0');
    if (status < 200 && status != 101) {
        /* Interim: relayed to HTTP/1.1 visitors as they come (100 Continue, 103 Early Hints). */
        if (status == 100 && (rq->flags & RQ_F_SENT_100))
            return; /* the edge's own went first */
        if (status == 100)
            rq->flags |= RQ_F_SENT_100;
        if (rq->version_minor >= 1 && !(rq->flags & RQ_F_RESP_HEAD)) {
            char line[64];
            int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n\r\n", status,
                             http1_status_reason(status));

            pc_write(rq->pc, line, (size_t)n);
        }
        return;
    }
    if (rq->flags & RQ_F_TCP) {
        if (status != 200) {
            answer_local(rq, 502, "The tunnel did not accept this TCP connection.", NULL);
            return;
        }
        /* The connector reached the TCP service: now, and only now, the visitor gets its 101. */
        rq->status = 101;
        {
            char head[256];
            int n = snprintf(head, sizeof(head),
                             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: culvert-tcp\r\n"
                             "Connection: Upgrade\r\nCulvert-Request-Id: %s\r\n\r\n",
                             rq->id);

            pc_write(rq->pc, head, (size_t)n);
        }
        if (pc_closing(rq->pc))
            return;
        enter_tunnel(rq);
        return;
    }
    if (status == 101) {
        const struct meta_field *acc = meta_get(md, "sec-websocket-accept");

        /* RELIABILITY.md 1.6: raw mode only after a 101 that answers this request's key. */
        if (!(rq->flags & RQ_F_UPGRADE) || acc == NULL ||
            !http1_ws_accept_ok(rq->ws_key, strlen(rq->ws_key), acc->value, acc->value_len)) {
            LOG_I("public rid=%s origin answered 101 without a valid WebSocket handshake", rq->id);
            answer_local(rq, 502, "The origin's WebSocket handshake was invalid.", NULL);
            return;
        }
        rq->status = 101;
        write_response_head(rq, md, end);
        if (pc_closing(rq->pc))
            return;
        enter_tunnel(rq);
        return;
    }
    rq->status = status;
    write_response_head(rq, md, end);
    preq_arm(rq);
    if (capped && !pc_closing(rq->pc))
        body_resume(rq);
}

/*
 * How much response output the visitor's connection may queue before credit is held. A stream whose
 * window grew (mux.c window_growth: its reader kept up) may queue half its window, the amount one
 * WINDOW_UPDATE returns (§9.4), so that while that credit travels to the connector and the next
 * bytes come back, the visitor still has bytes to read. With only client_output_buffer a fast
 * download stopped for a credit round trip after every drained queue: credit was held for 60% of a
 * 100 MiB download and the machine sat 27% idle (bench/NOTES.md). A slow reader never grows its
 * window, so its queue stays within client_output_buffer (RELIABILITY.md T-06).
 */
static void size_output(struct preq *rq)
{
    const struct cv_limits *l = &rq->pc->ps->e->limits;
    size_t high = (size_t)l->client_output_buffer;
    uint32_t w = mux_stream_window_size(rq->stream);

    if (w > l->stream_window && w / 2 > high)
        high = w / 2;
    sock_set_out_high(rq->pc->sock, high);
}

/* Returns credit for response bytes once the visitor's socket has room (RELIABILITY.md §6 slow
 * reader: buffered bytes stay within the stream window plus the output cushion above). */
static void give_credit(struct preq *rq)
{
    struct pconn *pc = rq->pc;

    if (rq->stream == NULL || rq->pending_consume == 0)
        return;
    if (sock_write_full(pc->sock))
        return; /* on_drain comes once the visitor took half of it */
    mux_stream_consumed(rq->stream, (size_t)rq->pending_consume);
    rq->pending_consume = 0;
}

static void st_on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    struct preq *rq = sdata;
    struct pconn *pc = rq->pc;
    char hdr[24];

    (void)s;
    /* What arrives from the tunnel is what fills the buffers when visitors read slowly. */
    if (over_budget(pc->ps, 98)) {
        shed(pc->ps);
        if (pc_closing(pc))
            return; /* shed itself: its stream is released with the connection */
    }
    if (pc->state == PC_S_TUNNEL) {
        pipe_on_stream_data(&pc->pipe, p, n);
        return;
    }
    if (!(rq->flags & RQ_F_RESP_HEAD) || (rq->flags & RQ_F_LOCAL)) {
        mux_stream_consumed(rq->stream, n);
        return;
    }
    if (rq->flags & RQ_F_NO_RESP_BODY) {
        mux_stream_consumed(rq->stream, n);
        return;
    }
    if (rq->flags & RQ_F_RESP_CHUNKED) {
        size_t k = strx_hex(hdr, n);

        hdr[k++] = '\r';
        hdr[k++] = '\n';
        pc_write(pc, hdr, k);
        pc_write(pc, p, n);
        pc_write(pc, "\r\n", 2);
    } else {
        pc_write(pc, p, n);
    }
    rq->resp_bytes += n;
    rq->pending_consume += n;
    size_output(rq);
    give_credit(rq);
    preq_arm(rq);
}

static void st_on_end(struct mux_stream *s, void *sdata)
{
    struct preq *rq = sdata;
    struct pconn *pc = rq->pc;

    (void)s;
    if (pc->state == PC_S_TUNNEL) {
        pipe_on_stream_end(&pc->pipe);
        tunnel_check_done(pc);
        return;
    }
    if (rq->flags & RQ_F_LOCAL)
        return;
    if (!(rq->flags & RQ_F_RESP_HEAD)) {
        answer_local(rq, 502, "The tunnel ended the response before it began.", NULL);
        return;
    }
    if (!(rq->flags & RQ_F_NO_RESP_BODY) && rq->resp_clen >= 0 &&
        rq->resp_bytes != (uint64_t)rq->resp_clen) {
        /* Fewer bytes than announced: the visitor must see a truncated response, not a clean one. */
        LOG_W("public rid=%s response truncated: %" PRIu64 " of %" PRId64 " bytes", rq->id,
              rq->resp_bytes, rq->resp_clen);
        pconn_cut(pc, rq);
        return;
    }
    if (rq->flags & RQ_F_RESP_CHUNKED)
        pc_write(pc, "0\r\n\r\n", 5);
    rq->flags |= RQ_F_RESP_DONE;
    /* The origin answered before the request body was read: the rest cannot be told apart from a
     * next request, so the connection closes after this response. */
    if (!(rq->flags & RQ_F_IN_DONE))
        pc->flags |= PC_F_CLOSE_AFTER;
    preq_finish_check(rq);
}

static int open_stream(struct preq *rq, const struct mux *avoid);

/* The retried stream is open: it gets the body sent so far, and its end if the body was done. */
static void retry_started(struct preq *rq)
{
    size_t n = buf_len(&rq->replay);

    if (n > 0 && mux_stream_write(rq->stream, rq->replay.pos, n, 0) != (ssize_t)n) {
        answer_local(rq, 502, NULL, NULL);
        return;
    }
    if ((rq->flags & RQ_F_HAS_BODY) && (rq->flags & RQ_F_IN_DONE) && !(rq->flags & RQ_F_UPGRADE))
        mux_stream_end(rq->stream);
    no_retry(rq); /* retried once: never again */
    pconn_process(rq->pc);
}

static void st_on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    struct preq *rq = sdata;
    int dispatched = mux_stream_was_dispatched(s) || (rq->flags & RQ_F_DISPATCHED);
    struct mux *failed = rq->mux;

    mux_stream_release(s);
    rq->stream = NULL;
    if (rq->pc->state == PC_S_TUNNEL) {
        /* The origin side of the pipe died: the visitor must see an abort, not a clean close. */
        pconn_abort(rq->pc);
        return;
    }
    if (rq->flags & RQ_F_LOCAL)
        return;
    if (rq->flags & RQ_F_RESP_DONE) {
        /* The connector ended its response and wants no more of the request (NO_ERROR). */
        if (!(rq->flags & RQ_F_IN_DONE))
            rq->pc->flags |= PC_F_CLOSE_AFTER;
        preq_finish_check(rq);
        return;
    }
    if (rq->flags & RQ_F_RESP_HEAD) {
        LOG_I("public rid=%s response aborted by the tunnel: %s", rq->id, frame_code_name(code));
        pconn_cut(rq->pc, rq);
        return;
    }
    /* PROTOCOL.md §7.7: never reached an origin, nothing of the body lost: retry once elsewhere. */
    if (code == CODE_REFUSED_STREAM && !dispatched && !(rq->flags & RQ_F_RETRIED) && buf_len(&rq->meta) > 0) {
        rq->flags |= RQ_F_RETRIED;
        LOG_I("public rid=%s retrying on another connection (stream refused%s)", rq->id,
              rq->body_sent > 0 ? ", with the body sent so far" : "");
        if (open_stream(rq, failed) == 0)
            retry_started(rq);
        return; /* open_stream answered otherwise */
    }
    switch (code) {
    case CODE_ORIGIN_TIMEOUT:
        answer_local(rq, 504, NULL, NULL);
        break;
    case CODE_ORIGIN_UNREACHABLE:
        answer_local(rq, 502, "The connector could not reach the origin service.", NULL);
        break;
    case CODE_NO_SERVICE:
        if (rq->flags & RQ_F_TCP)
            answer_local(rq, 404, "This hostname has no TCP service on its tunnel.", NULL);
        else
            answer_local(rq, 502,
                         "This hostname has no HTTP service on its tunnel (a TCP service is reached "
                         "with culvert-connector access tcp).",
                         NULL);
        break;
    default:
        answer_local(rq, 502, NULL, NULL);
        break;
    }
}

/* The request body may flow again (the stream has room, or DISPATCHED lifted the retry cap). */
static void body_resume(struct preq *rq)
{
    struct pconn *pc = rq->pc;

    if (pc->flags & PC_F_READ_STOPPED) {
        pc->flags &= ~PC_F_READ_STOPPED;
        sock_read_start(pc->sock);
        preq_arm(rq);
    }
    pconn_process(pc);
}

static void st_on_writable(struct mux_stream *s, void *sdata)
{
    struct preq *rq = sdata;

    (void)s;
    if (rq->pc->state == PC_S_TUNNEL) {
        pipe_on_stream_writable(&rq->pc->pipe);
        return;
    }
    body_resume(rq);
}

static void st_on_dispatched(struct mux_stream *s, void *sdata)
{
    struct preq *rq = sdata;
    int capped = buf_len(&rq->meta) > 0 && (rq->flags & RQ_F_HAS_BODY) && !(rq->flags & RQ_F_IN_DONE);

    (void)s;
    rq->flags |= RQ_F_DISPATCHED;
    no_retry(rq); /* the block and the body copy are not needed any more */
    if (capped)
        body_resume(rq); /* reading may have waited at the copy's cap */
}

static const struct mux_stream_hooks stream_hooks = {
    .on_headers = st_on_headers,
    .on_data = st_on_data,
    .on_end = st_on_end,
    .on_reset = st_on_reset,
    .on_writable = st_on_writable,
    .on_dispatched = st_on_dispatched,
};

/* ---- the request ---------------------------------------------------------------------------- */

/* Picks a connection and opens the stream with the kept request block. Returns 0 when a stream is
 * open, else why no connection took it (CV_ELIMIT: every one is at its stream limit). */
static int try_open(struct preq *rq, const struct mux *avoid)
{
    struct edge *e = rq->pc->ps->e;
    int why = 0;
    int err = 0;
    struct mux *m;
    int end = !(rq->flags & (RQ_F_HAS_BODY | RQ_F_UPGRADE));

    for (int attempt = 0; attempt < 4; attempt++) {
        m = tunnel_registry_pick(e->reg, rq->tunnel_id, avoid, &why);
        if (m == NULL)
            break;
        rq->stream = mux_open(m, rq->meta.pos, buf_len(&rq->meta), end, &stream_hooks, rq, &err);
        if (rq->stream != NULL) {
            rq->mux = m;
            if (end)
                rq->flags |= RQ_F_IN_DONE;
            return 0;
        }
        LOG_D("public rid=%s cannot open a stream: %s", rq->id, cv_strerror(err));
        why = err == CV_ELIMIT ? CV_ELIMIT : why;
        avoid = m;
    }
    return why != 0 ? why : CV_ENOTFOUND;
}

static void answer_unavailable(struct preq *rq, int why)
{
    if (why == CV_ELIMIT) {
        answer_local(rq, 503, "Every connector of this tunnel is busy; try again shortly.", "Retry-After: 1");
    } else {
        LOG_I("public rid=%s host=%s tunnel=%s has no connector online", rq->id, rq->host,
              rq->tunnel_name);
        answer_local(rq, 502, "The tunnel for this site has no connector online.", NULL);
    }
}

/* ---- requests waiting for a stream slot ------------------------------------------------------- */

static void waiting_remove(struct preq *rq)
{
    if (!(rq->flags & RQ_F_QUEUED))
        return;
    rq->flags &= ~RQ_F_QUEUED;
    list_remove(&rq->wait_node);
    rq->pc->ps->nwaiting--;
}

/* The stream is open: what on_request_head does after opening it. */
static void request_started(struct preq *rq)
{
    if (rq->flags & RQ_F_WANT_100) {
        rq->flags &= ~RQ_F_WANT_100;
        expect_start(rq);
    }
    preq_arm(rq);
}

/* After every loop turn while requests wait: streams that ended may have freed slots. Oldest
 * first; a request whose tunnel has no connector left gets its 502 now. */
static void on_waiting_check(uv_check_t *h)
{
    struct public_side *ps = h->data;
    struct list_node *p;
    struct list_node *tmp;
    const uint8_t *full[16]; /* tunnels found full in this pass: their other requests wait too */
    size_t nfull = 0;

    list_for_each_safe(p, tmp, &ps->waiting)
    {
        struct preq *rq = container_of(p, struct preq, wait_node);
        struct pconn *pc = rq->pc;
        size_t i;
        int why;

        if (pc_closing(pc)) {
            waiting_remove(rq); /* its visitor is gone: no stream, no origin work for it */
            continue;
        }
        for (i = 0; i < nfull && memcmp(full[i], rq->tunnel_id, 16) != 0; i++)
            ;
        if (i < nfull)
            continue;
        why = try_open(rq, NULL);
        if (why == CV_ELIMIT) {
            if (nfull < sizeof(full) / sizeof(full[0]))
                full[nfull++] = rq->tunnel_id;
            continue;
        }
        waiting_remove(rq);
        if (why == 0)
            request_started(rq);
        else
            answer_unavailable(rq, why);
        pconn_process(pc);
        /* pconn_process answers and frees only this connection's requests; |tmp| is another's. */
    }
    if (ps->nwaiting == 0)
        uv_check_stop(h);
}

/* Opens the stream, or queues the request while every connection is at its stream limit
 * (limits.stream_queue requests in all, RELIABILITY.md §10), or answers 503 (Retry-After) or 502.
 * Returns 0 when open, 1 when queued, -1 when answered. A retry (|avoid| set) is not queued. */
static int open_stream(struct preq *rq, const struct mux *avoid)
{
    struct public_side *ps = rq->pc->ps;
    int why = try_open(rq, avoid);

    if (why == 0)
        return 0;
    if (why == CV_ELIMIT && avoid == NULL && ps->nwaiting < ps->e->limits.stream_queue) {
        rq->flags |= RQ_F_QUEUED;
        /* A request without a body is complete while it waits: the visitor may half-close. */
        if (!(rq->flags & (RQ_F_HAS_BODY | RQ_F_UPGRADE)))
            rq->flags |= RQ_F_IN_DONE;
        list_push_back(&ps->waiting, &rq->wait_node);
        ps->nwaiting++;
        if (!uv_is_active((uv_handle_t *)&ps->waiting_check))
            uv_check_start(&ps->waiting_check, on_waiting_check);
        LOG_D("public rid=%s waits for a stream slot (%zu waiting)", rq->id, ps->nwaiting);
        return 1;
    }
    answer_unavailable(rq, why);
    return -1;
}

/* Appends one field to the block, recording failure in |*rv|. */
#define LOOP_MARKER_MAX (8 + EDGE_REGION_MAX + 1)

/* "culvert-<region>", this edge's CDN-Loop member (RFC 8586); returns its length. */
static size_t loop_marker(const char *region, char out[LOOP_MARKER_MAX])
{
    memcpy(out, "culvert-", 8);
    return 8 + strx_copy(out + 8, LOOP_MARKER_MAX - 8, region, strlen(region));
}

/* Appends |s| to the comma-separated list in |list| (|len| long, |cap| bytes with the NUL);
 * returns the new length, or |len| unchanged when it would not fit. */
static size_t list_append(char *list, size_t cap, size_t len, const char *s, size_t n)
{
    size_t sep = len > 0 ? 2 : 0;

    if (len + sep + n + 1 > cap)
        return len;
    if (sep != 0) {
        list[len] = ',';
        list[len + 1] = ' ';
    }
    memcpy(list + len + sep, s, n);
    list[len + sep + n] = '\0';
    return len + sep + n;
}

static void add(struct buf *b, const char *n, size_t nl, const char *v, size_t vl, int *rv)
{
    if (*rv == 0)
        *rv = meta_add(b, n, nl, v, vl);
}

static int starts_with_ci(const char *s, size_t n, const char *prefix)
{
    size_t k = strlen(prefix);

    return n >= k && strncasecmp(s, prefix, k) == 0;
}

static int name_is(const char *s, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(s, name, n) == 0;
}

/*
 * Builds the request block (PROTOCOL.md §8.3, §8.4): pseudo-fields, the visitor's fields minus
 * hop-by-hop and internal ones, then the edge's own forwarding fields (RELIABILITY.md 5.5: appended
 * last, so nothing the visitor sent can remove or forge them).
 */
static int build_request_block(struct preq *rq, const struct http1_head *h, uint8_t type)
{
    struct pconn *pc = rq->pc;
    struct edge *e = pc->ps->e;
    struct buf *b = &rq->meta;
    char xff[2048];
    char loop[512];
    char marker[LOOP_MARKER_MAX];
    size_t xff_len = 0;
    size_t loop_len = 0;
    int start;
    int rv = 0;
    size_t n;

    buf_init(b, (size_t)e->limits.max_metadata_size);
    start = meta_begin(b, type);
    if (start < 0)
        return start;
    add(b, ":method", 7, h->method, h->method_len, &rv);
    add(b, ":scheme", 7, (pc->flags & PC_F_TLS) ? "https" : "http", (pc->flags & PC_F_TLS) ? 5 : 4,
        &rv);
    add(b, ":authority", 10, rq->host, rq->host_len, &rv);
    add(b, ":path", 5, h->path, h->path_len, &rv);
    add(b, ":client", 7, pc->peer, pc->peer_len, &rv);
    xff[0] = '\0';
    loop[0] = '\0';
    for (size_t i = 0; i < h->nfields && rv == 0; i++) {
        const struct http1_field *f = &h->fields[i];

        if (http1_is_hop_by_hop(h, f->name, f->name_len) || name_is(f->name, f->name_len, "host"))
            continue;
        /* Internal and edge-owned fields: the visitor's copies are dropped (5.5). */
        if (starts_with_ci(f->name, f->name_len, "culvert-") ||
            name_is(f->name, f->name_len, "x-forwarded-proto") ||
            name_is(f->name, f->name_len, "x-forwarded-host"))
            continue;
        if (name_is(f->name, f->name_len, "x-forwarded-for")) {
            xff_len = list_append(xff, sizeof(xff), xff_len, f->value, f->value_len);
            continue;
        }
        if (name_is(f->name, f->name_len, "cdn-loop")) {
            loop_len = list_append(loop, sizeof(loop), loop_len, f->value, f->value_len);
            continue;
        }
        add(b, f->name, f->name_len, f->value, f->value_len, &rv);
    }
    if (type == META_REQUEST_UPGRADE)
        add(b, "Upgrade", 7, "websocket", 9, &rv); /* §8.4: kept on REQUEST_UPGRADE */
    n = list_append(xff, sizeof(xff), xff_len, pc->peer_ip, pc->peer_ip_len);
    if (n == xff_len) /* an absurd chain: keep only the truth */
        n = list_append(xff, sizeof(xff), 0, pc->peer_ip, pc->peer_ip_len);
    add(b, "X-Forwarded-For", 15, xff, n, &rv);
    add(b, "X-Forwarded-Proto", 17, (pc->flags & PC_F_TLS) ? "https" : "http",
        (pc->flags & PC_F_TLS) ? 5 : 4, &rv);
    add(b, "X-Forwarded-Host", 16, rq->host, rq->host_len, &rv);
    add(b, "Culvert-Connecting-IP", 21, pc->peer_ip, pc->peer_ip_len, &rv);
    add(b, "Culvert-Request-Id", 18, rq->id, 16, &rv);
    /* RFC 8586: append our marker. */
    n = list_append(loop, sizeof(loop), loop_len, marker, loop_marker(e->cfg->region, marker));
    if (n == loop_len)
        return CV_ELIMIT;
    add(b, "CDN-Loop", 8, loop, n, &rv);
    if (rv == 0)
        rv = meta_end(b, (size_t)start);
    return rv;
}

/* Returns 1 when a CDN-Loop field of |h| carries this edge's marker (RFC 8586). */
static int has_loop_marker(const struct http1_head *h, const char *region)
{
    char marker[LOOP_MARKER_MAX];
    size_t mlen = loop_marker(region, marker);

    for (size_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];
        const char *p;
        const char *end;

        if (!name_is(f->name, f->name_len, "cdn-loop"))
            continue;
        p = f->value;
        end = f->value + f->value_len;
        while (p < end) {
            const char *q = p;

            while (q < end && *q != ',')
                q++;
            /* A member is "culvert-<region>" optionally followed by parameters. */
            while (p < q && (*p == ' ' || *p == '\t'))
                p++;
            if ((size_t)(q - p) >= mlen && strncasecmp(p, marker, mlen) == 0 &&
                (p + mlen == q || p[mlen] == ';' || p[mlen] == ' ' || p[mlen] == '\t'))
                return 1;
            p = q + 1;
        }
    }
    return 0;
}

/* May a Host name port |port| on connection |pc|? Its listener's port, or the one advertised for
 * that scheme (public.advertise_ports: the listener sits behind a port mapping). */
static int serves_port(const struct pconn *pc, int port)
{
    const struct edge_config *cfg = pc->ps->e->cfg;
    int advertised = pc->flags & PC_F_TLS ? cfg->advertise_https_port : cfg->advertise_http_port;

    return port == pc->listen_port || (advertised != 0 && port == advertised);
}

static void redirect_to_https(struct preq *rq, const struct http1_head *h)
{
    struct edge *e = rq->pc->ps->e;
    char location[HOSTNAME_MAX + 64 + 8192];
    int port = e->cfg->advertise_https_port != 0 ? e->cfg->advertise_https_port
                                                  : public_https_port(e);
    int n;

    if (port == 443 || port == 0)
        n = snprintf(location, sizeof(location), "Location: https://%s%.*s", rq->host,
                     (int)h->path_len, h->path);
    else
        n = snprintf(location, sizeof(location), "Location: https://%s:%d%.*s", rq->host, port,
                     (int)h->path_len, h->path);
    if (n < 0 || (size_t)n >= sizeof(location)) {
        answer_local(rq, 414, NULL, NULL);
        return;
    }
    answer_local(rq, (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0) ? 301 : 308,
                 NULL, location);
}

/* Does the request prefer JSON for the edge's own pages? Several Accept lines count as one list
 * (RFC 9110 §5.3); the usual single line is judged in place. */
static bool accept_wants_json(const struct http1_head *h)
{
    const struct http1_field *first = http1_head_find(h, "accept");
    char joined[2048];
    size_t n = 0;

    if (first == NULL)
        return false;
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http1_field *f = &h->fields[i];

        if (f == first || f->name_len != 6 || strcasecmp(f->name, "accept") != 0)
            continue;
        if (n == 0)
            n = strx_copy(joined, sizeof(joined), first->value, first->value_len);
        if (n + 2 + f->value_len >= sizeof(joined))
            break; /* the first 2 KiB decide */
        memcpy(joined + n, ", ", 2);
        memcpy(joined + n + 2, f->value, f->value_len);
        n += 2 + f->value_len;
        joined[n] = '\0';
    }
    return errpage_wants_json(n > 0 ? joined : first->value);
}

static int on_request_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct pconn *pc = arg;
    struct public_side *ps = pc->ps;
    struct edge *e = ps->e;
    struct preq *rq;
    struct hostname_host hh;
    const struct store_tunnel *t;
    const struct edge_host *hc;
    const char *why = NULL;
    int rv;

    (void)p;
    rq = mem_calloc(sizeof(*rq));
    if (rq == NULL)
        return CV_ENOMEM;
    rq->pc = pc;
    /* A retried stream takes the copy in one write: no more than its send queue holds. */
    buf_init(&rq->replay, e->limits.stream_send_buffer < REPLAY_MAX ? (size_t)e->limits.stream_send_buffer
                                                                    : REPLAY_MAX);
    list_init(&rq->expect_node);
    list_init(&rq->wait_node);
    pc->req = rq;
    pc->state = PC_S_REQUEST;
    pc->nrequests++;
    rq->start_ms = now_ms(ps);
    rq->version_minor = h->version_minor;
    rq->resp_clen = -1;
    new_request_id(ps, rq->id);
    strx_copy(rq->method, sizeof(rq->method), h->method, h->method_len);
    /* Only the access log needs these copies. */
    if (e->access_log != NULL) {
        const struct http1_field *f = http1_head_find(h, "referer");

        rq->path = dup_bounded(h->target, h->target_len, PATH_LOG_MAX);

        if (f != NULL)
            rq->referer = dup_bounded(f->value, f->value_len, 512);
        f = http1_head_find(h, "user-agent");
        if (f != NULL)
            rq->ua = dup_bounded(f->value, f->value_len, 512);
    }
    if (accept_wants_json(h))
        rq->flags |= RQ_F_JSON;
    if (strcmp(rq->method, "HEAD") == 0)
        rq->flags |= RQ_F_HEAD;
    if (h->flags & HTTP1_F_KEEP_ALIVE)
        rq->flags |= RQ_F_KEEPALIVE;
    if (!(h->flags & HTTP1_F_NO_BODY) && (h->content_length > 0 || (h->flags & HTTP1_F_CHUNKED)))
        rq->flags |= RQ_F_HAS_BODY;
    if (pc->nrequests >= e->limits.keepalive_requests)
        pc->flags |= PC_F_CLOSE_AFTER;
    sock_set_timeout(pc->sock, 0);

    /* Host: one normaliser for routing and every check (RELIABILITY.md 2.2). */
    if (h->host == NULL) {
        if (pc->sni[0] == '\0') {
            answer_local(rq, 400, "The request has no Host.", NULL);
            return HTTP1_PAUSE;
        }
        rq->host_len = strx_copy(rq->host, sizeof(rq->host), pc->sni, strlen(pc->sni)); /* HTTP/1.0 */
    } else {
        if (hostname_split(h->host, h->host_len, &hh, &why) < 0) {
            answer_local(rq, 400, "The Host header is not a valid host name.", NULL);
            return HTTP1_PAUSE;
        }
        if (hh.port != -1 && !serves_port(pc, hh.port)) {
            answer_local(rq, 421, "The Host names a port this edge does not serve here.", NULL);
            return HTTP1_PAUSE;
        }
        rq->host_len = strx_copy(rq->host, sizeof(rq->host), hh.name, strlen(hh.name));
        if (hh.kind != HOSTNAME_NAME) {
            answer_local(rq, 404, NULL, NULL);
            return HTTP1_PAUSE;
        }
    }
    /* RELIABILITY.md 2.3: SNI and Host must name the same host, on every request. */
    if ((pc->flags & PC_F_TLS) && strcmp(pc->sni, rq->host) != 0) {
        answer_local(rq, 421, "The TLS server name and the Host header name different hosts.", NULL);
        return HTTP1_PAUSE;
    }
    if (has_loop_marker(h, e->cfg->region)) {
        answer_local(rq, 508, NULL, NULL);
        return HTTP1_PAUSE;
    }
    t = store_route_lookup(e->store, rq->host, NULL);
    if (t == NULL) {
        answer_local(rq, 404, NULL, NULL);
        return HTTP1_PAUSE;
    }
    memcpy(rq->tunnel_id, t->id, 16);
    strx_copy(rq->tunnel_name, sizeof(rq->tunnel_name), t->name, strlen(t->name));
    if (!(pc->flags & PC_F_TLS) && e->cfg->http_redirect) {
        redirect_to_https(rq, h);
        return HTTP1_PAUSE;
    }
    if (e->draining) {
        pc->flags |= PC_F_CLOSE_AFTER;
        answer_local(rq, 503, "The edge is restarting; try again.", NULL);
        return HTTP1_PAUSE;
    }
    if (pc->ipc != NULL && ip_abort_tokens(ps, pc->ipc) < 1000) {
        LOG_W_RL("public rid=%s client=%s too many abandoned requests: 429", rq->id, pc->peer_ip);
        answer_local(rq, 429, "Too many requests from your address were abandoned; try again shortly.",
                     "Retry-After: 1");
        return HTTP1_PAUSE;
    }
    if (over_budget(ps, 90)) {
        LOG_W_RL("public rid=%s overload: buffers hold %zu KiB, 90%% or more of buffer_budget: new "
                 "requests get 503",
                 rq->id, buf_held_bytes() >> 10);
        answer_local(rq, 503, "The edge is overloaded; try again shortly.", "Retry-After: 1");
        return HTTP1_PAUSE;
    }
    if (h->flags & HTTP1_F_UPGRADE) {
        const struct http1_field *key = http1_head_find(h, "sec-websocket-key");

        if (h->upgrade == HTTP1_UP_CULVERT_TCP) {
            /* The access client's raw TCP stream (PROTOCOL.md §8.6): the connector's ingress decides
             * whether this hostname is a TCP service; the 101 waits for its answer. */
            rq->flags |= RQ_F_UPGRADE | RQ_F_TCP;
        } else if (h->upgrade == HTTP1_UP_WEBSOCKET && key != NULL && key->value_len < sizeof(rq->ws_key)) {
            memcpy(rq->ws_key, key->value, key->value_len);
            rq->ws_key[key->value_len] = '\0';
            rq->flags |= RQ_F_UPGRADE;
        } else {
            answer_local(rq, 400, "This upgrade is not supported.", NULL);
            return HTTP1_PAUSE;
        }
    }
    if (rq->flags & RQ_F_TCP) {
        if (edge_tcp_block(&rq->meta, e->limits.max_metadata_size, rq->host, pc->peer) < 0) {
            answer_local(rq, 500, NULL, NULL);
            return HTTP1_PAUSE;
        }
    } else if (build_request_block(rq, h, (rq->flags & RQ_F_UPGRADE) ? META_REQUEST_UPGRADE
                                                                     : META_REQUEST_HTTP) < 0) {
        answer_local(rq, 431, NULL, NULL);
        return HTTP1_PAUSE;
    }
    hc = edge_config_host(e->cfg, rq->host);
    rq->response_header_ms = hc != NULL && hc->response_header_ms != 0 ? hc->response_header_ms
                                                                       : e->limits.response_header_ms;
    if ((h->flags & HTTP1_F_EXPECT_CONTINUE) && (rq->flags & RQ_F_HAS_BODY) && rq->version_minor >= 1)
        rq->flags |= RQ_F_WANT_100;
    rv = open_stream(rq, NULL);
    if (rv == 0)
        request_started(rq);
    else if (rv > 0)
        preq_arm(rq); /* queued: the response deadline covers the wait */
    return HTTP1_PAUSE;
}

static int on_request_body(struct http1_parser *p, const uint8_t *data, size_t n, void *arg)
{
    struct pconn *pc = arg;
    struct preq *rq = pc->req;
    ssize_t k;

    (void)p;
    if (rq == NULL || rq->stream == NULL || (rq->flags & RQ_F_LOCAL))
        return 0; /* the answer is already given: the body is dropped */
    k = mux_stream_write(rq->stream, data, n, 0);
    if (k < 0 || (size_t)k != n) {
        /* pconn_process() never feeds more than the queue takes; a short write means the stream
         * died under us. */
        answer_local(rq, 502, NULL, NULL);
        return 0;
    }
    rq->body_sent += n;
    if (buf_len(&rq->meta) > 0 && buf_append(&rq->replay, data, n) < 0)
        no_retry(rq); /* no room for the copy: this request can no longer be retried */
    return 0;
}

static int on_request_complete(struct http1_parser *p, void *arg)
{
    struct pconn *pc = arg;
    struct preq *rq = pc->req;

    (void)p;
    if (rq == NULL)
        return HTTP1_PAUSE;
    if (!(rq->flags & RQ_F_IN_DONE)) {
        rq->flags |= RQ_F_IN_DONE;
        /* An upgrade keeps its direction open: after a 101 it carries the WebSocket bytes. */
        if (rq->stream != NULL && !(rq->flags & RQ_F_LOCAL) && !(rq->flags & RQ_F_UPGRADE))
            mux_stream_end(rq->stream);
        preq_arm(rq);
    }
    preq_finish_check(rq);
    return HTTP1_PAUSE; /* pipelined requests wait until this one's response is done */
}

static const struct http1_hooks parser_hooks = {
    .on_head = on_request_head,
    .on_body = on_request_body,
    .on_message_complete = on_request_complete,
};

/* Ends the request when both directions are done; starts the next one on keep-alive. */
static void preq_finish_check(struct preq *rq)
{
    struct pconn *pc = rq->pc;

    if (!(rq->flags & RQ_F_RESP_DONE))
        return;
    if (!(rq->flags & RQ_F_IN_DONE) && !(pc->flags & PC_F_CLOSE_AFTER))
        return;
    access_log(rq);
    if (pc->req == rq)
        pc->req = NULL;
    preq_free(rq);
    if ((pc->flags & PC_F_CLOSE_AFTER) || pc->ps->e->draining || pc->state == PC_S_CLOSING) {
        pconn_close(pc);
        return;
    }
    pc->state = PC_S_IDLE;
    http1_parser_trim(pc->parser);
    sock_set_timeout(pc->sock, pc->keepalive_idle_ms);
    http1_resume(pc->parser);
    /* Pipelined bytes may already wait; run them from a fresh stack on the next flush pass. */
    sock_want_flush(pc->sock);
}

/* Feeds buffered input to the parser as far as the current request allows. */
static void pconn_process(struct pconn *pc)
{
    struct buf *in = sock_in(pc->sock);
    ssize_t used;

    while (pc->state != PC_S_CLOSING) {
        struct preq *rq = pc->req;
        size_t n = buf_len(in);

        if (rq == NULL) {
            /* Between requests: a completion held back by a pause may be pending even with no
             * input (http1.h), so feed even when empty once. */
            if (n == 0 && !http1_paused(pc->parser))
                break;
            /* A visitor that pipelines requests and reads nothing would otherwise get a fresh
             * stream window of response bytes queued per request (RELIABILITY.md T-06): the next
             * request waits for the output queue to drain (pc_on_drain). Its bytes are here:
             * the visitor is not idle, and the send timeout bounds a stalled reader. */
            if (n > 0 && pc->state == PC_S_IDLE && sock_write_full(pc->sock)) {
                sock_set_timeout(pc->sock, 0);
                break;
            }
            if (n > 0 && pc->state == PC_S_IDLE) {
                pc->state = PC_S_HEAD;
                /* header_read_ms is a total (RELIABILITY.md §1.4): the first request's deadline
                 * runs from the handshake (or accept), not from its first byte; a keep-alive
                 * connection's next request starts a new one when it leaves the idle wait. */
                if (pc->nrequests > 0)
                    sock_set_timeout(pc->sock, pc->header_read_ms);
            }
        } else if (rq->flags & (RQ_F_IN_DONE | RQ_F_QUEUED)) {
            break; /* pipelined, or waiting for a stream slot: wait for this response */
        } else if (rq->stream != NULL && !(rq->flags & RQ_F_LOCAL)) {
            size_t space = mux_stream_write_space(rq->stream);

            /* Until DISPATCHED, no more body than is kept for a retry: the stream window would not
             * let much more out before the connector's credit anyway (REPLAY_MAX). */
            if (buf_len(&rq->meta) > 0 && (rq->flags & RQ_F_HAS_BODY) &&
                space > rq->replay.cap - rq->body_sent)
                space = (size_t)(rq->replay.cap - rq->body_sent);
            if (space == 0) {
                if (!(pc->flags & PC_F_READ_STOPPED)) {
                    pc->flags |= PC_F_READ_STOPPED;
                    sock_read_stop(pc->sock);
                    preq_arm(rq);
                }
                break;
            }
            if (n > space)
                n = space;
        } else if (rq->flags & RQ_F_LOCAL) {
            /* Answered already. A body is not read (the connection closes after the answer); a
             * request without one is parsed to its end so that keep-alive goes on. */
            if (rq->flags & RQ_F_HAS_BODY)
                break;
        }
        if (http1_paused(pc->parser))
            http1_resume(pc->parser);
        used = http1_feed(pc->parser, in->pos, n);
        if (used < 0) {
            int status = http1_error_status(pc->parser);

            if (pc->req != NULL && (pc->req->flags & RQ_F_RESP_HEAD)) {
                pconn_abort(pc); /* a bad body after the response started */
                return;
            }
            if (pc->req != NULL)
                preq_abandoned(pc->req);
            answer_parse_error(pc, status);
            return;
        }
        buf_consume(in, (size_t)used);
        if (used > 0 && pc->req != NULL && pc->req == rq && !(rq->flags & RQ_F_IN_DONE))
            body_progress(rq, (size_t)used);
        if (http1_state(pc->parser) == HTTP1_S_DONE && pc->req == NULL) {
            pconn_close(pc);
            return;
        }
        if (used == 0 && !http1_paused(pc->parser))
            break;
        if (used == 0 && pc->req == NULL && buf_len(in) == 0)
            break;
    }
    if (pc->state != PC_S_CLOSING && !(pc->flags & PC_F_READ_STOPPED))
        sock_read_start(pc->sock);
}

/* ---- connection ----------------------------------------------------------------------------- */

static void pc_on_handshake(struct sock *s, void *arg)
{
    struct pconn *pc = arg;
    const char *sni = tls_servername(sock_tls(s));

    pc->sni[0] = '\0';
    if (sni != NULL && hostname_normalize(sni, strlen(sni), pc->sni, NULL) < 0)
        pc->sni[0] = '\0';
    pc->state = PC_S_IDLE;
    if (pc->sni[0] != '\0') {
        /* hosts: in edge.yml: the SNI names the host before any header arrives. */
        const struct edge_host *hc = edge_config_host(pc->ps->e->cfg, pc->sni);

        if (hc != NULL) {
            pc->header_read_ms = hc->header_read_ms;
            pc->keepalive_idle_ms = hc->keepalive_idle_ms;
        }
    }
    sock_set_timeout(s, pc->header_read_ms);
}

static void pc_on_data(struct sock *s, void *arg)
{
    struct pconn *pc = arg;

    (void)s;
    if (pc->state == PC_S_TUNNEL) {
        pipe_on_sock_data(&pc->pipe);
        return;
    }
    if (pc->state == PC_S_HANDSHAKE)
        pc->state = PC_S_IDLE;
    pconn_process(pc);
}

static void pc_on_eof(struct sock *s, void *arg)
{
    struct pconn *pc = arg;
    struct preq *rq = pc->req;

    (void)s;
    if (pc->state == PC_S_TUNNEL) {
        pipe_on_sock_eof(&pc->pipe);
        tunnel_check_done(pc);
        return;
    }
    /* The visitor finished sending. A request whose body is incomplete is aborted (RELIABILITY.md
     * T-25); a complete one still gets its response (half-close is allowed). */
    if (rq != NULL && !(rq->flags & RQ_F_IN_DONE)) {
        preq_abandoned(rq);
        preq_cancel_stream(rq);
        pconn_abort(pc);
        return;
    }
    pc->flags |= PC_F_CLOSE_AFTER;
    if (rq == NULL)
        pconn_close(pc);
}

static void pc_on_error(struct sock *s, int err, void *arg)
{
    struct pconn *pc = arg;

    LOG_D("public peer=%s state=%s error: %s %s", pc->peer, pconn_state_names[pc->state],
          cv_strerror(err), sock_error_text(s));
    pc->state = PC_S_CLOSING;
    if (pc->req != NULL && pc->req->stream != NULL) {
        mux_stream_reset(pc->req->stream, CODE_CANCEL);
    }
}

static void pc_on_flush(struct sock *s, void *arg)
{
    struct pconn *pc = arg;

    (void)s;
    /* A keep-alive turn asked to run pipelined input from a fresh stack. */
    if (pc->req == NULL && pc->state == PC_S_IDLE)
        pconn_process(pc);
}

static void pc_on_drain(struct sock *s, void *arg)
{
    struct pconn *pc = arg;

    (void)s;
    if (pc->state == PC_S_TUNNEL) {
        pipe_on_sock_drain(&pc->pipe);
        return;
    }
    if (pc->req != NULL) {
        give_credit(pc->req);
        preq_arm(pc->req);
    } else if (pc->state == PC_S_IDLE) {
        sock_want_flush(pc->sock); /* pipelined input held back by a full output queue */
    }
}

static void pc_on_timeout(struct sock *s, void *arg)
{
    struct pconn *pc = arg;
    struct preq *rq = pc->req;

    if (sock_send_stalled(s)) {
        /* Output waited send_idle_ms with no byte taken, in whatever phase (RELIABILITY.md T-06). */
        LOG_I("public peer=%s send idle timeout", pc->peer);
        pconn_abort(pc);
        return;
    }
    switch (pc->state) {
    case PC_S_HANDSHAKE:
    case PC_S_IDLE:
        pconn_close(pc);
        break;
    case PC_S_HEAD:
        /* RELIABILITY.md 1.4: the head deadline is total, not per byte. */
        answer_parse_error(pc, 408);
        break;
    case PC_S_REQUEST:
        if (rq != NULL && (rq->flags & RQ_F_QUEUED)) {
            LOG_I("public rid=%s host=%s no stream slot freed in time", rq->id, rq->host);
            waiting_remove(rq);
            pc->flags |= PC_F_CLOSE_AFTER;
            answer_unavailable(rq, CV_ELIMIT);
        } else if (rq != NULL && !(rq->flags & RQ_F_IN_DONE)) {
            /* RELIABILITY.md 1.4 (slow POST): the body stopped arriving. */
            LOG_I("public rid=%s host=%s request body idle for too long", rq->id, rq->host);
            preq_abandoned(rq);
            preq_cancel_stream(rq);
            pc->flags |= PC_F_CLOSE_AFTER;
            answer_local(rq, 408, NULL, NULL);
        } else if (rq != NULL && !(rq->flags & RQ_F_RESP_HEAD)) {
            LOG_I("public rid=%s host=%s no response from the origin in time", rq->id, rq->host);
            preq_cancel_stream(rq);
            pc->flags |= PC_F_CLOSE_AFTER;
            answer_local(rq, 504, NULL, NULL);
        } else {
            /* A deadline left from an earlier phase of a locally answered request. */
            LOG_I("public rid=%s host=%s timed out while its answer was written",
                  rq != NULL ? rq->id : "-", rq != NULL ? rq->host : "-");
            pconn_abort(pc);
        }
        break;
    default:
        sock_abort(s);
        break;
    }
}

static void pc_on_close(struct sock *s, void *arg)
{
    struct pconn *pc = arg;

    (void)s;
    if (pc->req != NULL) {
        preq_abandoned(pc->req);
        if (pc->req->status == 0)
            pc->req->status = 499; /* nginx's "client closed request" for the log */
        if ((pc->req->flags & RQ_F_UPGRADE) && pc->pipe.sock != NULL)
            pc->req->resp_bytes = pc->pipe.to_sock;
        if (pc->req->flags & RQ_F_RESP_HEAD)
            access_log(pc->req);
        preq_free(pc->req);
        pc->req = NULL;
    }
    http1_parser_free(pc->parser);
    ip_release(pc->ps, pc->ipc);
    list_remove(&pc->node);
    pc->ps->nconns--;
    mem_free(pc);
}

static const struct sock_hooks pconn_hooks = {
    .on_handshake = pc_on_handshake,
    .on_data = pc_on_data,
    .on_eof = pc_on_eof,
    .on_error = pc_on_error,
    .on_flush = pc_on_flush,
    .on_drain = pc_on_drain,
    .on_timeout = pc_on_timeout,
    .on_close = pc_on_close,
};

static void accept_conn(struct public_side *ps, uv_stream_t *server, int tls, int port)
{
    struct edge *e = ps->e;
    struct sock_opts o;
    struct pconn *pc;
    struct sock *s;
    int err = 0;

    memset(&o, 0, sizeof(o));
    o.tls_ctx = tls ? certs_ctx(e->certs) : NULL;
    o.in_cap = (size_t)e->limits.max_header_bytes + e->limits.max_url + 16 * 1024;
    o.out_high = e->limits.client_output_buffer;
    o.nodelay = 1;
    pc = mem_calloc(sizeof(*pc));
    if (pc == NULL)
        return;
    s = sock_accept(e->sl, server, &o, &pconn_hooks, pc, &err);
    if (s == NULL) {
        mem_free(pc);
        LOG_W_RL("public accept failed: %s", cv_strerror(err));
        return;
    }
    pc->ps = ps;
    pc->sock = s;
    pc->listen_port = port;
    pc->header_read_ms = e->limits.header_read_ms;
    pc->keepalive_idle_ms = e->limits.keepalive_idle_ms;
    /* For the connection's whole life, whatever its request is doing: output that waits for the
     * visitor must be taken (preq_arm). */
    sock_set_send_timeout(s, e->limits.send_idle_ms);
    pc->state = tls ? PC_S_HANDSHAKE : PC_S_IDLE;
    if (tls)
        pc->flags |= PC_F_TLS;
    pc->peer_len = strx_copy(pc->peer, sizeof(pc->peer), sock_peer(s), strlen(sock_peer(s)));
    pc->peer_ip_len = strx_copy(pc->peer_ip, sizeof(pc->peer_ip), sock_peer_ip(s), strlen(sock_peer_ip(s)));
    list_push_back(&ps->conns, &pc->node);
    ps->nconns++;
    if (ps->nconns > e->limits.max_connections) {
        /* Over a cap: close before reading anything (pc->ipc is NULL: nothing to release). */
        LOG_W_RL("public peer=%s refused: max_connections (%u) reached", pc->peer,
                 e->limits.max_connections);
        pc->state = PC_S_CLOSING;
        sock_abort(s);
        return;
    }
    if ((pc->ipc = ip_acquire(ps, pc->peer_ip, &err)) == NULL) {
        if (err == CV_ELIMIT)
            LOG_W_RL("public peer=%s refused: per_ip_connections (%u) open from this address",
                     pc->peer, e->limits.per_ip_connections);
        else
            LOG_W_RL("public peer=%s refused: %s", pc->peer, cv_strerror(err));
        pc->state = PC_S_CLOSING;
        sock_abort(s);
        return;
    }
    pc->parser = http1_parser_new(HTTP1_REQUEST, &e->limits, &parser_hooks, pc);
    if (pc->parser == NULL) {
        pconn_abort(pc);
        return;
    }
    sock_set_timeout(s, tls ? e->limits.tls_handshake_ms : e->limits.header_read_ms);
}

static void on_https(struct listener *l, uv_stream_t *server, void *arg)
{
    accept_conn(arg, server, 1, listener_port(l));
}

static void on_http(struct listener *l, uv_stream_t *server, void *arg)
{
    accept_conn(arg, server, 0, listener_port(l));
}

int public_start(struct edge *e, char *err, size_t errlen)
{
    struct public_side *ps = mem_calloc(sizeof(*ps));

    if (ps == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ps->e = e;
    list_init(&ps->conns);
    list_init(&ps->expect);
    uv_timer_init(e->loop, &ps->expect_timer);
    ps->expect_timer.data = ps;
    list_init(&ps->waiting);
    uv_check_init(e->loop, &ps->waiting_check);
    ps->waiting_check.data = ps;
    buf_init(&ps->scratch, (size_t)e->limits.max_metadata_size + 64 * 1024);
    if (RAND_bytes((unsigned char *)&ps->rid_prefix, sizeof(ps->rid_prefix)) != 1)
        ps->rid_prefix = (uint64_t)time(NULL) * 2654435761u;
    e->pub = ps;
    for (size_t i = 0; i < e->cfg->n_https && i < MAX_LISTENERS; i++) {
        struct listener *l = listener_start(e->loop, &e->cfg->https[i], 0, on_https, ps, err, errlen);

        if (l == NULL)
            return -1;
        ps->https[ps->nhttps++] = l;
        LOG_I("public https listening on %s", listener_name(l));
    }
    for (size_t i = 0; i < e->cfg->n_http && i < MAX_LISTENERS; i++) {
        struct listener *l = listener_start(e->loop, &e->cfg->http[i], 0, on_http, ps, err, errlen);

        if (l == NULL)
            return -1;
        ps->http[ps->nhttp++] = l;
        LOG_I("public http listening on %s%s", listener_name(l),
              e->cfg->http_redirect ? " (redirects to https)" : "");
    }
    ps->accepting = 1;
    return 0;
}

void public_stop_accepting(struct edge *e)
{
    struct public_side *ps = e->pub;
    struct list_node *p;
    struct list_node *tmp;

    if (ps == NULL || !ps->accepting)
        return;
    ps->accepting = 0;
    for (size_t i = 0; i < ps->nhttps; i++)
        listener_stop(ps->https[i]);
    for (size_t i = 0; i < ps->nhttp; i++)
        listener_stop(ps->http[i]);
    ps->nhttps = 0;
    ps->nhttp = 0;
    list_for_each_safe(p, tmp, &ps->conns)
    {
        struct pconn *pc = container_of(p, struct pconn, node);

        if (pc->req == NULL && pc->state != PC_S_CLOSING)
            pconn_close(pc);
        else
            pc->flags |= PC_F_CLOSE_AFTER;
    }
}

void public_close_all(struct edge *e)
{
    struct public_side *ps = e->pub;
    struct list_node *p;
    struct list_node *tmp;

    if (ps == NULL)
        return;
    if (!uv_is_closing((uv_handle_t *)&ps->expect_timer))
        uv_close((uv_handle_t *)&ps->expect_timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&ps->waiting_check))
        uv_close((uv_handle_t *)&ps->waiting_check, NULL);
    /* Graceful closes too: one flushing to a slow reader may go on for as long as it reads
     * (sock_set_send_timeout), which must not hold the exit. */
    list_for_each_safe(p, tmp, &ps->conns)
    {
        struct pconn *pc = container_of(p, struct pconn, node);

        pconn_abort(pc);
    }
}

void public_free(struct edge *e)
{
    struct public_side *ps = e->pub;

    if (ps == NULL)
        return;
    for (size_t b = 0; b < IP_BUCKETS; b++) {
        while (ps->ips[b] != NULL) {
            struct ip_count *c = ps->ips[b];

            ps->ips[b] = c->next;
            mem_free(c);
        }
    }
    buf_cleanup(&ps->scratch);
    mem_free(ps);
    e->pub = NULL;
}

size_t public_connection_count(const struct edge *e)
{
    return e->pub != NULL ? e->pub->nconns : 0;
}

int public_https_port(const struct edge *e)
{
    return e->pub != NULL && e->pub->nhttps > 0 ? listener_port(e->pub->https[0]) : 0;
}

int public_http_port(const struct edge *e)
{
    return e->pub != NULL && e->pub->nhttp > 0 ? listener_port(e->pub->http[0]) : 0;
}
