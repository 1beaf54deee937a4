/*
 * origin_http.c - HTTP origins; see origin_http.h.
 *
 * Layers: above, connector.c dispatches a stream here after matching the ingress rule; below,
 * sock.c (TCP, unix socket, optional TLS), http1.c (request serialization, strict response
 * parsing), mux.c (the stream). One loop thread.
 *
 * One exchange (struct oreq) uses one origin connection (struct oconn) at a time. The request head
 * is written as soon as the connection is up, then DISPATCHED tells the edge the request reached the
 * origin (PROTOCOL.md §7.7). Request body bytes that arrive before the connection is up wait in
 * |early| (bounded by the stream window, since no credit is returned until they are written).
 * Response bytes are fed to the parser only as far as the stream's send queue has room, so a slow
 * visitor stops reading from the origin (back-pressure) instead of growing memory.
 *
 * Keep-alive: after a complete exchange on a connection the parser says may continue, the
 * connection goes to its pool. A pooled connection the origin closed meanwhile is retried once on a
 * fresh one when nothing of the response arrived and no body byte was sent. Any doubt about the
 * framing (parse error, truncated body, an upgrade, a response before the request body ended)
 * closes the connection instead (RELIABILITY.md 5.2).
 */
#include "origin_http.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "connector.h"
#include "connector_config.h"
#include "err.h"
#include "frame.h"
#include "hello.h"
#include "http1.h"
#include "ingress.h"
#include "list.h"
#include "log.h"
#include "mem.h"
#include "strx.h"
#include "meta.h"
#include "mux.h"
#include "pipe.h"
#include "sock.h"
#include "tls.h"

#define POOL_KEY_MAX 2048
#define ORIGIN_OUT_HIGH (256 * 1024)

struct opool {
    struct origin_pools *pools;
    struct opool *next;
    char key[POOL_KEY_MAX];
    SSL_CTX *ctx;          /* TLS origins: one context per pool (caPool, noTLSVerify) */
    struct list_node idle; /* struct oconn.idle_node, most recently used first */
    size_t nidle;
    size_t keep_idle;      /* keepAliveConnections of the last rule that released a connection */
    size_t nconns;         /* all connections of this pool, idle or busy */
};

struct origin_pools {
    struct connector *c;
    struct opool *head;
    const struct ingress_rule *last_rule; /* pool_get's cache (rules are immutable; a reloaded */
    struct opool *last_pool;              /* ingress has new rule addresses) */
    uv_timer_t sweep;
    int closing;
};

struct oreq;

struct oconn {
    struct opool *pool;
    struct sock *sock;
    struct http1_parser *parser;
    struct oreq *req;           /* NULL while idle */
    struct list_node idle_node;
    uint64_t idle_since;
    uint64_t keepalive_ms;
    int reused;                 /* served an exchange before */
    int connected;
    int closing;       /* being closed: nothing more is parsed */
    int no_reuse;      /* the exchange left the framing in doubt: never back to the pool */
    int sock_closing;  /* sock_close/sock_abort was called */
};

#define RQ_F_CHUNKED 0x0001      /* we chunk the request body towards the origin */
#define RQ_F_EDGE_END 0x0002     /* the edge ended the request body */
#define RQ_F_LAST_SENT 0x0004    /* the request's end was written (last chunk, or nothing owed) */
#define RQ_F_RESP_HEAD 0x0008    /* the final response head went to the edge */
#define RQ_F_RESP_DONE 0x0010    /* the response is complete */
#define RQ_F_HEAD_METHOD 0x0020  /* HEAD: the response has no body */
#define RQ_F_RETRIED 0x0040      /* already retried on a fresh connection */
#define RQ_F_GOT_BYTES 0x0080    /* response bytes arrived on this connection */
#define RQ_F_BODY_SENT 0x0100    /* request body bytes were written to the origin */
#define RQ_F_DEAD 0x0200         /* the stream is gone (reset or released) */
#define RQ_F_HAS_BODY 0x0400     /* the request has a body */
#define RQ_F_UPGRADE 0x0800      /* a WebSocket upgrade request */
#define RQ_F_PIPE 0x1000         /* after a valid 101: raw bytes both ways (|pipe|) */

struct oreq {
    struct connector *c;
    struct ingress_ref *ing;
    const struct ingress_rule *rule;
    struct mux_stream *stream;
    struct oconn *oc;
    struct buf head;          /* the request head, kept until the first response byte (retry) */
    struct buf early;         /* body bytes that arrived before the connection was up */
    unsigned flags;
    uint64_t pending_consume; /* body bytes written to the origin, not yet credited */
    char authority[256];
    char ws_key[32];          /* RQ_F_UPGRADE: the request's Sec-WebSocket-Key */
    struct pipe pipe;         /* RQ_F_PIPE */
};

static void oconn_close(struct oconn *oc, int abort);
static void oreq_finish(struct oreq *rq);
static void oconn_process(struct oconn *oc);
static int oconn_connect(struct oreq *rq, struct opool *pool);

static uint64_t now_ms(const struct connector *c)
{
    return uv_now(c->loop);
}

/* ---- pools ---------------------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *t)
{
    struct origin_pools *p = t->data;
    uint64_t now = now_ms(p->c);

    for (struct opool *pool = p->head; pool != NULL; pool = pool->next) {
        struct list_node *n;
        struct list_node *tmp;

        list_for_each_safe(n, tmp, &pool->idle)
        {
            struct oconn *oc = container_of(n, struct oconn, idle_node);

            if (now - oc->idle_since >= oc->keepalive_ms)
                oconn_close(oc, 0);
        }
        /* keepAliveConnections bounds what stays idle: a burst's surplus (connections released
         * while the pool was full) is closed once it has sat unused for a tick. Reuse is most
         * recently used first, so the surplus is what the load stopped needing; closing it at
         * release instead would churn connections under a load that swings around the limit. */
        while (pool->nidle > pool->keep_idle) {
            struct list_node *last = pool->idle.prev;
            struct oconn *oc = container_of(last, struct oconn, idle_node);

            if (now - oc->idle_since < 1000)
                break;
            oconn_close(oc, 0);
        }
    }
}

struct origin_pools *origin_pools_new(struct connector *c)
{
    struct origin_pools *p = mem_calloc(sizeof(*p));

    if (p == NULL)
        return NULL;
    p->c = c;
    uv_timer_init(c->loop, &p->sweep);
    p->sweep.data = p;
    uv_timer_start(&p->sweep, on_sweep, 1000, 1000);
    uv_unref((uv_handle_t *)&p->sweep);
    return p;
}

void origin_pools_close(struct origin_pools *p)
{
    if (p == NULL)
        return;
    p->closing = 1;
    uv_timer_stop(&p->sweep);
    uv_close((uv_handle_t *)&p->sweep, NULL);
    for (struct opool *pool = p->head; pool != NULL; pool = pool->next) {
        struct list_node *n;
        struct list_node *tmp;

        list_for_each_safe(n, tmp, &pool->idle)
        {
            oconn_close(container_of(n, struct oconn, idle_node), 1);
        }
    }
}

void origin_pools_free(struct origin_pools *p)
{
    struct opool *pool;

    if (p == NULL)
        return;
    pool = p->head;
    while (pool != NULL) {
        struct opool *next = pool->next;

        SSL_CTX_free(pool->ctx);
        mem_free(pool);
        pool = next;
    }
    mem_free(p);
}

void origin_pools_forget(struct origin_pools *p)
{
    if (p == NULL)
        return;
    p->last_rule = NULL;
    p->last_pool = NULL;
}

size_t origin_pools_idle(const struct origin_pools *p)
{
    size_t n = 0;

    if (p == NULL)
        return 0;
    for (const struct opool *pool = p->head; pool != NULL; pool = pool->next)
        n += pool->nidle;
    return n;
}

/* The pool key names everything that makes two connections interchangeable. */
static void pool_key(const struct ingress_rule *r, const char *sni, char *out, size_t n)
{
    const struct ingress_service *svc = &r->service;
    const struct origin_request *o = &r->origin;

    if (svc->kind == INGRESS_SVC_UNIX)
        snprintf(out, n, "unix%s:%s|%s|%s|%d", svc->tls ? "+tls" : "", svc->unix_path,
                 sni != NULL ? sni : "", o->ca_pool != NULL ? o->ca_pool : "", o->no_tls_verify);
    else
        snprintf(out, n, "%s://%s:%u|%s|%s|%d", svc->tls ? "https" : "http", svc->host, svc->port,
                 sni != NULL ? sni : "", o->ca_pool != NULL ? o->ca_pool : "", o->no_tls_verify);
}

static struct opool *pool_find(struct origin_pools *p, const struct ingress_rule *r, const char *sni,
                               char *key, char *err, size_t errlen);

static struct opool *pool_get(struct origin_pools *p, const struct ingress_rule *r, const char *sni,
                              char *err, size_t errlen)
{
    char key[POOL_KEY_MAX];
    struct opool *pool;

    /* The common case: the same rule as the last request, with no per-request SNI. */
    if (sni == NULL && r == p->last_rule && p->last_pool != NULL)
        return p->last_pool;
    pool = pool_find(p, r, sni, key, err, errlen);
    if (pool != NULL && sni == NULL) {
        p->last_rule = r;
        p->last_pool = pool;
    }
    return pool;
}

static struct opool *pool_find(struct origin_pools *p, const struct ingress_rule *r, const char *sni,
                               char *key, char *err, size_t errlen)
{
    struct opool *pool;

    pool_key(r, sni, key, POOL_KEY_MAX);
    for (pool = p->head; pool != NULL; pool = pool->next) {
        if (strcmp(pool->key, key) == 0)
            return pool;
    }
    pool = mem_calloc(sizeof(*pool));
    if (pool == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pool->pools = p;
    snprintf(pool->key, sizeof(pool->key), "%s", key);
    list_init(&pool->idle);
    if (r->service.tls) {
        struct tls_client_opts o;

        memset(&o, 0, sizeof(o));
        o.ca_file = r->origin.ca_pool;
        o.system_store = r->origin.ca_pool == NULL;
        o.no_verify = r->origin.no_tls_verify;
        o.min_version = TLS_MIN_1_2;
        pool->ctx = tls_ctx_client_new(&o, err, errlen);
        if (pool->ctx == NULL) {
            mem_free(pool);
            return NULL;
        }
    }
    pool->next = p->head;
    p->head = pool;
    return pool;
}

/* ---- the exchange --------------------------------------------------------------------------- */

static void oreq_fail(struct oreq *rq, uint32_t code, const char *why)
{
    if (!(rq->flags & RQ_F_DEAD)) {
        LOG_W("origin stream=%u %s: %s", mux_stream_id(rq->stream), rq->rule->service.text, why);
        mux_stream_reset(rq->stream, code);
        rq->flags |= RQ_F_DEAD;
    }
    oreq_finish(rq);
}

/* Gives the edge credit for body bytes the origin socket has taken. */
static void give_credit(struct oreq *rq)
{
    if ((rq->flags & RQ_F_DEAD) || rq->pending_consume == 0 || rq->oc == NULL)
        return;
    if (sock_write_full(rq->oc->sock))
        return; /* on_drain comes once the queue is down to half */
    mux_stream_consumed(rq->stream, (size_t)rq->pending_consume);
    rq->pending_consume = 0;
}

static void write_body(struct oreq *rq, const uint8_t *p, size_t n)
{
    struct oconn *oc = rq->oc;
    char hdr[24];

    if (n == 0)
        return;
    if (rq->flags & RQ_F_CHUNKED) {
        int k = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);

        sock_write(oc->sock, hdr, (size_t)k);
        sock_write(oc->sock, p, n);
        sock_write(oc->sock, "\r\n", 2);
    } else {
        sock_write(oc->sock, p, n);
    }
    rq->flags |= RQ_F_BODY_SENT;
    rq->pending_consume += n;
}

static void write_request_end(struct oreq *rq)
{
    if (rq->flags & RQ_F_LAST_SENT)
        return;
    rq->flags |= RQ_F_LAST_SENT;
    if (rq->flags & RQ_F_CHUNKED)
        sock_write(rq->oc->sock, "0\r\n\r\n", 5);
}

/* The connection is up: head, early body, DISPATCHED. */
static void oreq_send(struct oreq *rq)
{
    struct oconn *oc = rq->oc;

    if (sock_write(oc->sock, rq->head.pos, buf_len(&rq->head)) < 0) {
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, "cannot write to the origin");
        return;
    }
    if (!(rq->flags & RQ_F_DEAD))
        mux_stream_dispatched(rq->stream);
    if (buf_len(&rq->early) > 0) {
        write_body(rq, rq->early.pos, buf_len(&rq->early));
        buf_cleanup(&rq->early);
    }
    if ((rq->flags & RQ_F_EDGE_END) && !(rq->flags & RQ_F_UPGRADE))
        write_request_end(rq);
    give_credit(rq);
    oconn_process(oc);
}

/* Both directions of an upgraded exchange ended: the connection is not reusable. */
static void pipe_check_done(struct oreq *rq)
{
    struct oconn *oc = rq->oc;

    if (!pipe_done(&rq->pipe))
        return;
    LOG_D("origin stream=%u WebSocket closed (%" PRIu64 " bytes in, %" PRIu64 " out)",
          mux_stream_id(rq->stream), rq->pipe.to_stream, rq->pipe.to_sock);
    if (oc != NULL) {
        oc->req = NULL;
        rq->oc = NULL;
        oconn_close(oc, 0);
    }
    rq->flags |= RQ_F_RESP_DONE;
    oreq_finish(rq);
}

static void st_on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    struct oreq *rq = sdata;

    (void)s;
    if (rq->flags & RQ_F_PIPE) {
        pipe_on_stream_data(&rq->pipe, p, n);
        return;
    }
    if (rq->flags & RQ_F_RESP_DONE) {
        mux_stream_consumed(rq->stream, n); /* the origin answered already: drop the rest */
        return;
    }
    if (rq->oc == NULL || !rq->oc->connected) {
        /* Bounded by the stream window: no credit is returned until these are written. */
        if (buf_append(&rq->early, p, n) < 0)
            oreq_fail(rq, CODE_INTERNAL_ERROR, "out of memory for the request body");
        return;
    }
    write_body(rq, p, n);
    give_credit(rq);
}

static void st_on_end(struct mux_stream *s, void *sdata)
{
    struct oreq *rq = sdata;

    (void)s;
    rq->flags |= RQ_F_EDGE_END;
    if (rq->flags & RQ_F_PIPE) {
        pipe_on_stream_end(&rq->pipe);
        pipe_check_done(rq);
        return;
    }
    if (rq->oc != NULL && rq->oc->connected && !(rq->flags & RQ_F_UPGRADE))
        write_request_end(rq);
    if (rq->flags & RQ_F_RESP_DONE)
        oreq_finish(rq);
}

static void st_on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    struct oreq *rq = sdata;

    (void)s;
    LOG_D("origin stream=%u reset by the edge: %s", mux_stream_id(rq->stream), frame_code_name(code));
    rq->flags |= RQ_F_DEAD;
    if (rq->oc != NULL) {
        struct oconn *oc = rq->oc;

        /* The origin may still be writing this response: its connection cannot be reused. */
        oc->req = NULL;
        rq->oc = NULL;
        oconn_close(oc, 1);
    }
    oreq_finish(rq);
}

static void st_on_writable(struct mux_stream *s, void *sdata)
{
    struct oreq *rq = sdata;

    (void)s;
    if (rq->flags & RQ_F_PIPE) {
        pipe_on_stream_writable(&rq->pipe);
        return;
    }
    if (rq->oc != NULL) {
        sock_read_start(rq->oc->sock);
        oconn_process(rq->oc);
    }
}

static const struct mux_stream_hooks stream_hooks = {
    .on_data = st_on_data,
    .on_end = st_on_end,
    .on_reset = st_on_reset,
    .on_writable = st_on_writable,
};

/* Releases everything once both the response and (for reuse) the request are done. */
static void oreq_finish(struct oreq *rq)
{
    struct connector *c = rq->c;
    struct oconn *oc = rq->oc;

    if (!(rq->flags & RQ_F_DEAD) && !(rq->flags & RQ_F_RESP_DONE))
        return;
    if (oc != NULL) {
        rq->oc = NULL;
        oc->req = NULL;
        /* Reuse only after a clean exchange whose request fully went out (RELIABILITY.md 5.2). */
        if (!(rq->flags & RQ_F_DEAD) && (rq->flags & RQ_F_LAST_SENT) && !oc->closing &&
            !oc->no_reuse &&
            http1_state(oc->parser) == HTTP1_S_IDLE && buf_len(sock_in(oc->sock)) == 0 &&
            rq->rule->origin.keepalive_connections > 0 && !oc->pool->pools->closing && !c->draining) {
            oc->reused = 1;
            oc->idle_since = now_ms(c);
            oc->keepalive_ms = rq->rule->origin.keepalive_timeout_ms;
            http1_parser_trim(oc->parser);
            list_push_front(&oc->pool->idle, &oc->idle_node);
            oc->pool->nidle++;
            oc->pool->keep_idle = rq->rule->origin.keepalive_connections;
            sock_set_timeout(oc->sock, 0);
            sock_read_start(oc->sock);
        } else {
            oconn_close(oc, 0);
        }
    }
    if (rq->stream != NULL) {
        /* With the response ended and the request body still coming, the release tells the edge
         * we want no more of it (RESET NO_ERROR after our END_STREAM). */
        mux_stream_release(rq->stream);
        rq->stream = NULL;
    }
    buf_cleanup(&rq->head);
    buf_cleanup(&rq->early);
    connector_ingress_release(c, rq->ing);
    mem_free(rq);
    connector_stream_done(c);
}

/* ---- the response --------------------------------------------------------------------------- */

static int is_hop(const struct http1_head *h, const struct http1_field *f)
{
    if (http1_is_hop_by_hop(h, f->name, f->name_len))
        return 1;
    /* The edge frames the body itself; the mux block carries content-length when it is known. */
    return f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0;
}

static int on_resp_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct oconn *oc = arg;
    struct oreq *rq = oc->req;
    struct buf b;
    char num[32];
    int start;
    int rv = 0;
    int end;

    (void)p;
    if (rq == NULL || (rq->flags & RQ_F_DEAD))
        return CV_ECLOSED;
    rq->flags |= RQ_F_GOT_BYTES;
    buf_cleanup(&rq->head);
    if (h->status == 101) {
        const struct http1_field *acc = http1_head_find(h, "sec-websocket-accept");

        /* PROTOCOL.md §8.5, RELIABILITY.md 1.6: a 101 is accepted only for a WebSocket request
         * and with the Sec-WebSocket-Accept that answers its key. */
        if (!(rq->flags & RQ_F_UPGRADE) || h->upgrade != HTTP1_UP_WEBSOCKET || acc == NULL ||
            !http1_ws_accept_ok(rq->ws_key, strlen(rq->ws_key), acc->value, acc->value_len)) {
            oreq_fail(rq, CODE_ORIGIN_ERROR, "the origin's 101 is not a valid WebSocket handshake");
            return CV_EPROTO;
        }
    } else if (rq->flags & RQ_F_UPGRADE) {
        /* Any other answer to an upgrade ends the connection's use (RELIABILITY.md 5.2). */
        oc->no_reuse = 1;
    }
    /* A 101 keeps the stream open: the WebSocket bytes follow (PROTOCOL.md §8.5). */
    end = (h->flags & HTTP1_F_NO_BODY) != 0 && !(h->flags & HTTP1_F_INTERIM) && h->status != 101;
    buf_init(&b, 96 * 1024);
    start = meta_begin(&b, META_RESPONSE);
    num[0] = (char)('0' + h->status / 100 % 10); /* llhttp: 3 digits */
    num[1] = (char)('0' + h->status / 10 % 10);
    num[2] = (char)('0' + h->status % 10);
    rv = start < 0 ? start : meta_add(&b, ":status", 7, num, 3);
    for (size_t i = 0; i < h->nfields && rv == 0; i++) {
        if (is_hop(h, &h->fields[i]))
            continue;
        rv = meta_add(&b, h->fields[i].name, h->fields[i].name_len, h->fields[i].value,
                      h->fields[i].value_len);
    }
    if (rv == 0 && h->content_length >= 0 && !(h->flags & HTTP1_F_INTERIM) &&
        !(h->flags & HTTP1_F_CHUNKED)) {
        size_t n = strx_u64(num, (uint64_t)h->content_length);

        rv = meta_add(&b, "content-length", 14, num, n);
    }
    if (rv == 0)
        rv = meta_end(&b, (size_t)start);
    if (rv == 0)
        rv = mux_stream_headers(rq->stream, b.pos, buf_len(&b), end);
    buf_cleanup(&b);
    if (rv < 0) {
        oreq_fail(rq, CODE_ORIGIN_ERROR, "the origin's response head cannot cross the tunnel");
        return CV_EPROTO;
    }
    if (!(h->flags & HTTP1_F_INTERIM))
        rq->flags |= RQ_F_RESP_HEAD;
    if (h->status == 101) {
        rq->flags |= RQ_F_PIPE; /* oconn_process starts the pipe once the parser stopped */
        return HTTP1_PAUSE;
    }
    return 0;
}

static int on_resp_body(struct http1_parser *p, const uint8_t *data, size_t n, void *arg)
{
    struct oconn *oc = arg;
    struct oreq *rq = oc->req;
    ssize_t k;

    (void)p;
    if (rq == NULL || (rq->flags & RQ_F_DEAD))
        return CV_ECLOSED;
    k = mux_stream_write(rq->stream, data, n, 0);
    if (k < 0 || (size_t)k != n) {
        oreq_fail(rq, CODE_INTERNAL_ERROR, "stream queue overflow");
        return CV_EPROTO;
    }
    return 0;
}

static int on_resp_complete(struct http1_parser *p, void *arg)
{
    struct oconn *oc = arg;
    struct oreq *rq = oc->req;

    (void)p;
    if (rq == NULL || (rq->flags & RQ_F_DEAD))
        return HTTP1_PAUSE;
    if (!mux_stream_local_closed(rq->stream))
        mux_stream_end(rq->stream);
    rq->flags |= RQ_F_RESP_DONE;
    /* A response before the request body ended leaves the connection unusable. */
    if (!(rq->flags & RQ_F_LAST_SENT))
        oc->no_reuse = 1;
    /* oconn_process() finishes the exchange once the parser's input is consumed. */
    return HTTP1_PAUSE;
}

static const struct http1_hooks resp_hooks = {
    .on_head = on_resp_head,
    .on_body = on_resp_body,
    .on_message_complete = on_resp_complete,
};

/* Feeds the origin's bytes to the parser as far as the stream can take them. */
static void oconn_process(struct oconn *oc)
{
    struct buf *in = sock_in(oc->sock);

    if (oc->req != NULL && (oc->req->flags & RQ_F_PIPE)) {
        pipe_on_sock_data(&oc->req->pipe);
        return;
    }
    while (oc->req != NULL && !oc->closing && buf_len(in) > 0) {
        struct oreq *rq = oc->req;
        size_t n = buf_len(in);
        size_t space;
        ssize_t used;

        if (rq->flags & RQ_F_DEAD)
            return;
        space = mux_stream_write_space(rq->stream);
        if (rq->flags & RQ_F_RESP_HEAD) {
            if (space == 0) {
                sock_read_stop(oc->sock);
                return;
            }
            if (n > space)
                n = space;
        }
        if (http1_paused(oc->parser))
            http1_resume(oc->parser);
        used = http1_feed(oc->parser, in->pos, n);
        if (used < 0) {
            struct oreq *r = oc->req;

            oc->closing = 1;
            if (r != NULL) {
                LOG_W("origin %s sent a bad response: %s", r->rule->service.text,
                      http1_error_reason(oc->parser));
                oc->req = NULL;
                r->oc = NULL;
                oconn_close(oc, 1);
                oreq_fail(r, CODE_ORIGIN_ERROR, "bad response from the origin");
            }
            return;
        }
        buf_consume(in, (size_t)used);
        if (rq->flags & RQ_F_PIPE) {
            /* The 101 is out: what follows in the buffer is the origin's first WebSocket bytes. */
            sock_set_timeout(oc->sock, 0);
            pipe_start(&rq->pipe, oc->sock, rq->stream);
            return;
        }
        if (rq->flags & RQ_F_RESP_DONE) {
            oreq_finish(rq);
            return;
        }
        if (used == 0)
            break;
    }
}

/* ---- origin connections --------------------------------------------------------------------- */

static void oc_on_connect(struct sock *s, int status, void *arg)
{
    struct oconn *oc = arg;
    struct oreq *rq = oc->req;

    if (status < 0) {
        if (rq != NULL) {
            char why[300];

            snprintf(why, sizeof(why), "cannot connect: %s%s%s", cv_strerror(status),
                     sock_error_text(s)[0] != '\0' ? ": " : "", sock_error_text(s));
            oc->req = NULL;
            rq->oc = NULL;
            oreq_fail(rq, status == CV_ETIMEDOUT ? CODE_ORIGIN_TIMEOUT : CODE_ORIGIN_UNREACHABLE, why);
        }
        return; /* on_close frees the connection */
    }
    oc->connected = 1;
    sock_set_timeout(s, 0);
    if (rq == NULL) {
        oconn_close(oc, 0);
        return;
    }
    oreq_send(rq);
}

static void oc_on_data(struct sock *s, void *arg)
{
    struct oconn *oc = arg;

    if (oc->req == NULL) {
        /* Bytes on an idle connection: the origin broke the framing; never reuse it. */
        buf_consume(sock_in(s), buf_len(sock_in(s)));
        oconn_close(oc, 1);
        return;
    }
    oconn_process(oc);
}

/* The origin closed (or failed). Decides between a retry, a close-delimited end, and an error. */
static void origin_gone(struct oconn *oc, int err)
{
    struct oreq *rq = oc->req;
    int rv;

    oc->closing = 1;
    if (rq == NULL)
        return;
    if (err == 0 && !(rq->flags & RQ_F_DEAD)) {
        /* Bytes may still be buffered (a slow visitor): they end the body before EOF is judged. */
        oconn_process(oc);
        rq = oc->req;
        if (rq == NULL)
            return;
        rv = http1_finish(oc->parser);
        rq = oc->req;
        if (rq == NULL)
            return;
        if (rv == 0 && (rq->flags & RQ_F_RESP_DONE)) {
            oreq_finish(rq); /* a close-delimited body ended */
            return;
        }
    }
    oc->req = NULL;
    rq->oc = NULL;
    if (rq->flags & RQ_F_DEAD) {
        oreq_finish(rq);
        return;
    }
    /* A pooled connection the origin had closed: retry once on a fresh one (nothing was lost). */
    if (oc->reused && !(rq->flags & (RQ_F_GOT_BYTES | RQ_F_BODY_SENT | RQ_F_RETRIED)) &&
        buf_len(&rq->head) > 0) {
        struct opool *pool = oc->pool;

        rq->flags |= RQ_F_RETRIED;
        LOG_D("origin %s: pooled connection closed, retrying on a new one", rq->rule->service.text);
        if (oconn_connect(rq, pool) == 0)
            return;
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, "cannot reconnect to the origin");
        return;
    }
    oreq_fail(rq, CODE_ORIGIN_ERROR,
              err != 0 ? cv_strerror(err) : "the origin closed the connection early");
}

static void oc_on_eof(struct sock *s, void *arg)
{
    struct oconn *oc = arg;

    (void)s;
    if (oc->req != NULL && (oc->req->flags & RQ_F_PIPE)) {
        /* The origin ended its direction; the other may still flow (half-close). */
        pipe_on_sock_eof(&oc->req->pipe);
        pipe_check_done(oc->req);
        return;
    }
    origin_gone(oc, 0);
    oconn_close(oc, 0);
}

static void oc_on_error(struct sock *s, int err, void *arg)
{
    struct oconn *oc = arg;

    (void)s;
    if (!oc->connected)
        return; /* on_connect reports it */
    origin_gone(oc, err);
}

static void oc_on_drain(struct sock *s, void *arg)
{
    struct oconn *oc = arg;

    (void)s;
    if (oc->req != NULL && (oc->req->flags & RQ_F_PIPE))
        pipe_on_sock_drain(&oc->req->pipe);
    else if (oc->req != NULL)
        give_credit(oc->req);
}

static void oc_on_timeout(struct sock *s, void *arg)
{
    struct oconn *oc = arg;

    if (!oc->connected && oc->req != NULL) {
        struct oreq *rq = oc->req;

        oc->req = NULL;
        rq->oc = NULL;
        oreq_fail(rq, CODE_ORIGIN_TIMEOUT, "connect timed out");
    }
    sock_abort(s);
}

static void oc_on_close(struct sock *s, void *arg)
{
    struct oconn *oc = arg;

    (void)s;
    if (oc->req != NULL) {
        struct oreq *rq = oc->req;

        oc->req = NULL;
        rq->oc = NULL;
        oreq_fail(rq, CODE_ORIGIN_ERROR, "origin connection closed");
    }
    if (list_linked(&oc->idle_node)) {
        list_remove(&oc->idle_node);
        oc->pool->nidle--;
    }
    oc->pool->nconns--;
    http1_parser_free(oc->parser);
    mem_free(oc);
}

static const struct sock_hooks oconn_hooks = {
    .on_connect = oc_on_connect,
    .on_data = oc_on_data,
    .on_eof = oc_on_eof,
    .on_error = oc_on_error,
    .on_drain = oc_on_drain,
    .on_timeout = oc_on_timeout,
    .on_close = oc_on_close,
};

static void oconn_close(struct oconn *oc, int abort)
{
    if (list_linked(&oc->idle_node)) {
        list_remove(&oc->idle_node);
        oc->pool->nidle--;
    }
    oc->closing = 1;
    if (oc->sock_closing && !abort)
        return;
    oc->sock_closing = 1;
    if (abort)
        sock_abort(oc->sock);
    else
        sock_close(oc->sock);
}

/* Resolution result for a new origin connection to a named host. */
struct dial {
    struct oreq *rq;
    struct opool *pool;
    uint16_t port;
};

static int dial_addr(struct oreq *rq, struct opool *pool, const struct sockaddr *sa);

static void on_origin_resolved(int status, struct addrinfo *res, void *arg)
{
    struct dial *d = arg;
    struct oreq *rq = d->rq;
    const struct addrinfo *ai;

    if (rq->flags & RQ_F_DEAD) {
        mem_free(d);
        oreq_finish(rq);
        return;
    }
    if (status < 0 || res == NULL) {
        mem_free(d);
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, "cannot resolve the origin's host name");
        return;
    }
    /* The first address that is not link-local or a metadata address, unless the rule allows
     * those (RELIABILITY.md 5.1: a name must not turn into a way to the cloud's metadata). */
    ai = res;
    if (!rq->rule->origin.allow_link_local) {
        while (ai != NULL && ingress_addr_link_local(ai->ai_addr))
            ai = ai->ai_next;
    }
    if (ai == NULL) {
        char why[HOSTNAME_MAX + 160];

        snprintf(why, sizeof(why),
                 "%s resolves only to link-local or metadata addresses, refused "
                 "(originRequest.allowLinkLocal)",
                 rq->rule->service.host);
        mem_free(d);
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, why);
        return;
    }
    if (dial_addr(rq, d->pool, ai->ai_addr) < 0)
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, "cannot connect to the origin");
    mem_free(d);
}

static struct oconn *oconn_new(struct opool *pool, struct oreq *rq)
{
    struct oconn *oc = mem_calloc(sizeof(*oc));

    if (oc == NULL)
        return NULL;
    oc->pool = pool;
    oc->req = rq;
    list_init(&oc->idle_node);
    oc->parser = http1_parser_new(HTTP1_RESPONSE, &rq->c->limits, &resp_hooks, oc);
    if (oc->parser == NULL) {
        mem_free(oc);
        return NULL;
    }
    return oc;
}

static void fill_opts(struct sock_opts *o, struct opool *pool, const struct oreq *rq)
{
    const struct origin_request *orq = &rq->rule->origin;

    memset(o, 0, sizeof(*o));
    o->tls_ctx = pool->ctx;
    if (pool->ctx != NULL) {
        if (orq->origin_server_name != NULL)
            o->servername = orq->origin_server_name;
        else if (orq->match_sni_to_host)
            o->servername = rq->authority;
        else if (rq->rule->service.kind == INGRESS_SVC_HTTP)
            o->servername = rq->rule->service.host;
    }
    o->in_cap = 256 * 1024;
    o->out_high = ORIGIN_OUT_HIGH;
    o->nodelay = 1;
    o->keepalive_s = (unsigned)(orq->tcp_keepalive_ms / 1000);
}

static int dial_addr(struct oreq *rq, struct opool *pool, const struct sockaddr *sa)
{
    struct oconn *oc = oconn_new(pool, rq);
    struct sock_opts o;
    int err = 0;

    if (oc == NULL)
        return CV_ENOMEM;
    fill_opts(&o, pool, rq);
    if (sa != NULL)
        oc->sock = sock_connect(rq->c->sl, sa, &o, &oconn_hooks, oc, &err);
    else
        oc->sock = sock_connect_unix(rq->c->sl, rq->rule->service.unix_path, &o, &oconn_hooks, oc,
                                     &err);
    if (oc->sock == NULL) {
        http1_parser_free(oc->parser);
        mem_free(oc);
        return err < 0 ? err : CV_ENOMEM;
    }
    pool->nconns++;
    rq->oc = oc;
    if (rq->flags & RQ_F_HEAD_METHOD)
        http1_expect_head_response(oc->parser);
    /* connectTimeout bounds the TCP connect; a TLS origin adds tlsTimeout for its handshake (the
     * sock reports both as one step). */
    sock_set_timeout(oc->sock, rq->rule->origin.connect_timeout_ms +
                                   (pool->ctx != NULL ? rq->rule->origin.tls_timeout_ms : 0));
    return 0;
}

/* A new connection for |rq| (after DNS when the host is a name). */
static int oconn_connect(struct oreq *rq, struct opool *pool)
{
    const struct ingress_service *svc = &rq->rule->service;
    struct sockaddr_storage ss;
    char port[8];
    struct dial *d;

    if (svc->kind == INGRESS_SVC_UNIX)
        return dial_addr(rq, pool, NULL);
    if (svc->host_kind == HOSTNAME_IPV4 &&
        uv_ip4_addr(svc->host, svc->port, (struct sockaddr_in *)&ss) == 0)
        return dial_addr(rq, pool, (const struct sockaddr *)&ss);
    if (svc->host_kind == HOSTNAME_IPV6 &&
        uv_ip6_addr(svc->host, svc->port, (struct sockaddr_in6 *)&ss) == 0)
        return dial_addr(rq, pool, (const struct sockaddr *)&ss);
    d = mem_calloc(sizeof(*d));
    if (d == NULL)
        return CV_ENOMEM;
    d->rq = rq;
    d->pool = pool;
    d->port = svc->port;
    snprintf(port, sizeof(port), "%u", svc->port);
    if (sock_resolve(rq->c->sl, svc->host, port, on_origin_resolved, d) < 0) {
        mem_free(d);
        return CV_ENOTFOUND;
    }
    return 0;
}

/* ---- start ---------------------------------------------------------------------------------- */

/* Rebuilds a clean HTTP/1.1 request head (PROTOCOL.md §8.4). */
static int build_head(struct oreq *rq, const struct meta *md, int end)
{
    const struct origin_request *orq = &rq->rule->origin;
    const struct meta_field *method = meta_get(md, ":method");
    const struct meta_field *path = meta_get(md, ":path");
    const struct meta_field *auth = meta_get(md, ":authority");
    const char *base = rq->rule->service.base_path;
    size_t blen = base != NULL ? strlen(base) : 0;
    struct buf *b = &rq->head;
    size_t tlen = blen + path->value_len;
    char tbuf[512];
    const char *target = path->value; /* without a base path, the path as it came */
    char *joined = NULL;
    const char *host;
    struct http1_field fs[META_MAX_FIELDS + 2]; /* Host first, Connection or Transfer-Encoding last */
    size_t nf = 0;
    int has_cl = 0;
    int rv;

    strx_copy(rq->authority, sizeof(rq->authority), auth->value, auth->value_len);
    if (blen > 0) {
        joined = tlen <= sizeof(tbuf) ? tbuf : mem_alloc(tlen);
        if (joined == NULL)
            return CV_ENOMEM;
        memcpy(joined, base, blen);
        memcpy(joined + blen, path->value, path->value_len);
        target = joined;
    }
    buf_init(b, 96 * 1024);
    rv = http1_write_request_line(b, method->value, method->value_len, target, tlen);
    if (joined != NULL && joined != tbuf)
        mem_free(joined);
    if (rv != 0)
        return rv;
    host = orq->http_host_header != NULL ? orq->http_host_header : rq->authority;
    fs[nf++] = (struct http1_field){"Host", host, 4, strlen(host)};
    for (unsigned i = meta_first_regular(md); i < md->count; i++) {
        const struct meta_field *f = &md->fields[i];

        if ((f->name_len == 4 && strncasecmp(f->name, "host", 4) == 0) ||
            (f->name_len == 10 && strncasecmp(f->name, "connection", 10) == 0) ||
            (f->name_len == 17 && strncasecmp(f->name, "transfer-encoding", 17) == 0))
            continue;
        if (f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0)
            has_cl = 1;
        fs[nf++] = (struct http1_field){f->name, f->value, f->name_len, f->value_len};
    }
    if (rq->flags & RQ_F_UPGRADE) {
        fs[nf++] = (struct http1_field){"Connection", "Upgrade", 10, 7};
    } else if (!end && !has_cl) {
        /* A body of unknown length: chunked towards the origin. */
        rq->flags |= RQ_F_CHUNKED;
        fs[nf++] = (struct http1_field){"Transfer-Encoding", "chunked", 17, 7};
    }
    return http1_write_fields_end(b, fs, nf);
}

int origin_http_start(struct connector *c, struct ingress_ref *ing, const struct ingress_rule *rule,
                      struct mux_stream *s, const struct meta *md, int end)
{
    struct oreq *rq = mem_calloc(sizeof(*rq));
    const struct meta_field *method = meta_get(md, ":method");
    struct opool *pool;
    char err[256];
    struct list_node *n;
    int rv;

    if (rq == NULL)
        return CODE_REFUSED_STREAM;
    rq->c = c;
    rq->rule = rule;
    rq->stream = s;
    buf_init(&rq->early, (size_t)c->limits.stream_window + 64 * 1024);
    if (md->type == META_REQUEST_UPGRADE) {
        const struct meta_field *key = meta_get(md, "sec-websocket-key");

        if (key == NULL || key->value_len >= sizeof(rq->ws_key)) {
            mem_free(rq);
            return CODE_PROTOCOL_ERROR;
        }
        memcpy(rq->ws_key, key->value, key->value_len);
        rq->ws_key[key->value_len] = '\0';
        rq->flags |= RQ_F_UPGRADE;
    } else if (end) {
        rq->flags |= RQ_F_EDGE_END;
    } else {
        rq->flags |= RQ_F_HAS_BODY;
    }
    if (method != NULL && method->value_len == 4 && memcmp(method->value, "HEAD", 4) == 0)
        rq->flags |= RQ_F_HEAD_METHOD;
    if (build_head(rq, md, end) < 0) {
        buf_cleanup(&rq->head);
        mem_free(rq);
        return CODE_PROTOCOL_ERROR;
    }
    if ((rq->flags & RQ_F_CHUNKED) && rule->origin.disable_chunked_encoding) {
        /* originRequest.disableChunkedEncoding: the origin cannot read chunked bodies (WSGI), and a
         * body of unknown length cannot be sent any other way: 411 Length Required. */
        buf_cleanup(&rq->head);
        mem_free(rq);
        connector_ingress_release(c, ing);
        return status_start(c, s, 411, end);
    }
    if ((!(rq->flags & RQ_F_CHUNKED) && end) || (rq->flags & RQ_F_UPGRADE))
        rq->flags |= RQ_F_LAST_SENT; /* nothing is owed after the head */
    {
        const char *sni = NULL;

        if (rule->service.tls) {
            if (rule->origin.origin_server_name != NULL)
                sni = rule->origin.origin_server_name;
            else if (rule->origin.match_sni_to_host)
                sni = rq->authority;
        }
        pool = pool_get(c->pools, rule, sni, err, sizeof(err));
    }
    if (pool == NULL) {
        LOG_W("origin %s: %s", rule->service.text, err);
        buf_cleanup(&rq->head);
        mem_free(rq);
        return CODE_ORIGIN_UNREACHABLE;
    }
    rq->ing = ing; /* the dispatcher's reference is ours now */
    mux_stream_set_hooks(s, &stream_hooks, rq);
    n = list_first(&pool->idle);
    if (n != NULL) {
        struct oconn *oc = container_of(n, struct oconn, idle_node);

        list_remove(n);
        pool->nidle--;
        oc->req = rq;
        rq->oc = oc;
        if (rq->flags & RQ_F_HEAD_METHOD)
            http1_expect_head_response(oc->parser);
        oreq_send(rq);
        return 0;
    }
    rv = oconn_connect(rq, pool);
    if (rv < 0) {
        /* The stream is ours now: answer with a reset ourselves. */
        oreq_fail(rq, CODE_ORIGIN_UNREACHABLE, cv_strerror(rv));
    }
    return 0;
}
