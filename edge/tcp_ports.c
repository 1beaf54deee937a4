/*
 * tcp_ports.c - public TCP ports; see tcp_ports.h.
 *
 * Layers: listener.c and sock.c below (plain TCP: a TCP port carries the service's own protocol,
 * SSH or RDP or anything, unencrypted by us); store.c for the tunnel by name, tunnel.c for the
 * connection, mux.c for the stream, pipe.c for the bytes once the connector said 200.
 */
#include "tcp_ports.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "frame.h"
#include "list.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "pipe.h"
#include "sock.h"
#include "store.h"
#include "tunnel.h"

struct tcp_port {
    struct tcp_ports *owner;
    struct listener *l;
    char addr[160];          /* the listen address as text (the reload key) */
    char tunnel[STORE_NAME_MAX + 1];
    char hostname[HOSTNAME_MAX + 1];
    struct tcp_port *next;
};

struct tcp_ports {
    struct edge *e;
    struct tcp_port *ports;
    struct list_node conns;
    size_t nconns;
};

#define TC_F_PIPE 0x01    /* the connector answered 200: bytes flow */
#define TC_F_EOF 0x02     /* the visitor ended its direction before the 200 */
#define TC_F_RETRIED 0x04 /* retried once after a refused stream */
#define TC_F_CLOSING 0x08

struct tcp_conn {
    struct tcp_ports *owner;
    struct sock *sock;
    struct mux_stream *stream;
    struct pipe pipe;
    struct list_node node;
    unsigned flags;
    uint8_t tunnel_id[16];
    char hostname[HOSTNAME_MAX + 1];
    char peer[80];
    char port[160];
};

static void tc_close(struct tcp_conn *tc, int abort)
{
    if (tc->flags & TC_F_CLOSING)
        return;
    tc->flags |= TC_F_CLOSING;
    if (tc->stream != NULL) {
        mux_stream_release(tc->stream);
        tc->stream = NULL;
    }
    if (abort)
        sock_abort(tc->sock);
    else
        sock_close(tc->sock);
}

static int tc_open_stream(struct tcp_conn *tc, const struct mux *avoid);

/* ---- stream side ---------------------------------------------------------------------------- */

static void st_on_headers(struct mux_stream *s, const struct meta *md, int end, void *sdata)
{
    struct tcp_conn *tc = sdata;
    const struct meta_field *st = meta_get(md, ":status");

    (void)s;
    if (tc->flags & TC_F_PIPE)
        return;
    if (st == NULL || st->value_len != 3 || memcmp(st->value, "200", 3) != 0 || end) {
        LOG_I("tcp port %s: connection from %s refused by the connector", tc->port, tc->peer);
        tc_close(tc, 0);
        return;
    }
    tc->flags |= TC_F_PIPE;
    pipe_start(&tc->pipe, tc->sock, tc->stream);
    if (tc->flags & TC_F_EOF)
        pipe_on_sock_eof(&tc->pipe);
}

static void check_done(struct tcp_conn *tc)
{
    if ((tc->flags & TC_F_PIPE) && pipe_done(&tc->pipe)) {
        LOG_D("tcp port %s: connection from %s done (%llu bytes in, %llu out)", tc->port, tc->peer,
              (unsigned long long)tc->pipe.to_stream, (unsigned long long)tc->pipe.to_sock);
        tc_close(tc, 0);
    }
}

static void st_on_data(struct mux_stream *s, const uint8_t *p, size_t n, void *sdata)
{
    struct tcp_conn *tc = sdata;

    if (!(tc->flags & TC_F_PIPE)) {
        mux_stream_consumed(s, n);
        return;
    }
    pipe_on_stream_data(&tc->pipe, p, n);
}

static void st_on_end(struct mux_stream *s, void *sdata)
{
    struct tcp_conn *tc = sdata;

    (void)s;
    if (!(tc->flags & TC_F_PIPE)) {
        tc_close(tc, 0);
        return;
    }
    pipe_on_stream_end(&tc->pipe);
    check_done(tc);
}

static void st_on_reset(struct mux_stream *s, uint32_t code, void *sdata)
{
    struct tcp_conn *tc = sdata;
    int dispatched = mux_stream_was_dispatched(s);
    struct mux *m = mux_stream_mux(s);

    mux_stream_release(s);
    tc->stream = NULL;
    if (!(tc->flags & TC_F_PIPE) && code == CODE_REFUSED_STREAM && !dispatched &&
        !(tc->flags & TC_F_RETRIED)) {
        tc->flags |= TC_F_RETRIED;
        if (tc_open_stream(tc, m) == 0)
            return;
    }
    LOG_I("tcp port %s: connection from %s ended by the tunnel: %s", tc->port, tc->peer,
          frame_code_name(code));
    /* Bytes may have been lost: a reset, not a clean FIN, tells the visitor (RELIABILITY.md §6). */
    tc_close(tc, 1);
}

static void st_on_writable(struct mux_stream *s, void *sdata)
{
    struct tcp_conn *tc = sdata;

    (void)s;
    if (tc->flags & TC_F_PIPE)
        pipe_on_stream_writable(&tc->pipe);
}

static const struct mux_stream_hooks stream_hooks = {
    .on_headers = st_on_headers,
    .on_data = st_on_data,
    .on_end = st_on_end,
    .on_reset = st_on_reset,
    .on_writable = st_on_writable,
};

static int tc_open_stream(struct tcp_conn *tc, const struct mux *avoid)
{
    struct edge *e = tc->owner->e;
    struct buf block;
    struct mux *m;
    int why = 0;
    int err = 0;

    m = tunnel_registry_pick(e->reg, tc->tunnel_id, avoid, &why);
    if (m == NULL) {
        LOG_I("tcp port %s: connection from %s closed: the tunnel has no connector online", tc->port,
              tc->peer);
        return -1;
    }
    if (edge_tcp_block(&block, e->limits.max_metadata_size, tc->hostname, tc->peer) < 0) {
        buf_cleanup(&block);
        return -1;
    }
    tc->stream = mux_open(m, block.pos, buf_len(&block), 0, &stream_hooks, tc, &err);
    buf_cleanup(&block);
    if (tc->stream == NULL) {
        LOG_I("tcp port %s: connection from %s closed: %s", tc->port, tc->peer, cv_strerror(err));
        return -1;
    }
    return 0;
}

/* ---- visitor side --------------------------------------------------------------------------- */

static void tc_on_data(struct sock *s, void *arg)
{
    struct tcp_conn *tc = arg;

    (void)s;
    if (tc->flags & TC_F_PIPE)
        pipe_on_sock_data(&tc->pipe);
    /* Before the 200, bytes wait in the input buffer; a full buffer stops reading. */
}

static void tc_on_eof(struct sock *s, void *arg)
{
    struct tcp_conn *tc = arg;

    (void)s;
    if (!(tc->flags & TC_F_PIPE)) {
        tc->flags |= TC_F_EOF;
        return;
    }
    pipe_on_sock_eof(&tc->pipe);
    check_done(tc);
}

static void tc_on_error(struct sock *s, int err, void *arg)
{
    struct tcp_conn *tc = arg;

    (void)s;
    LOG_D("tcp port %s: connection from %s failed: %s", tc->port, tc->peer, cv_strerror(err));
    tc->flags |= TC_F_CLOSING;
    if (tc->stream != NULL) {
        mux_stream_reset(tc->stream, CODE_CANCEL);
        mux_stream_release(tc->stream);
        tc->stream = NULL;
    }
}

static void tc_on_drain(struct sock *s, void *arg)
{
    struct tcp_conn *tc = arg;

    (void)s;
    if (tc->flags & TC_F_PIPE)
        pipe_on_sock_drain(&tc->pipe);
}

static void tc_on_close(struct sock *s, void *arg)
{
    struct tcp_conn *tc = arg;

    (void)s;
    if (tc->stream != NULL) {
        mux_stream_release(tc->stream);
        tc->stream = NULL;
    }
    list_remove(&tc->node);
    tc->owner->nconns--;
    mem_free(tc);
}

static const struct sock_hooks conn_hooks = {
    .on_data = tc_on_data,
    .on_eof = tc_on_eof,
    .on_error = tc_on_error,
    .on_drain = tc_on_drain,
    .on_close = tc_on_close,
};

static void on_accept(struct listener *l, uv_stream_t *server, void *arg)
{
    struct tcp_port *tp = arg;
    struct tcp_ports *ps = tp->owner;
    struct edge *e = ps->e;
    const struct store_tunnel *t;
    struct tcp_conn *tc = mem_calloc(sizeof(*tc));
    struct sock_opts o;
    int err = 0;

    (void)l;
    if (tc == NULL)
        return;
    memset(&o, 0, sizeof(o));
    o.in_cap = 64 * 1024;
    o.out_high = e->limits.client_output_buffer;
    o.nodelay = 1;
    o.keepalive_s = 60;
    tc->owner = ps;
    tc->sock = sock_accept(e->sl, server, &o, &conn_hooks, tc, &err);
    if (tc->sock == NULL) {
        mem_free(tc);
        return;
    }
    list_push_back(&ps->conns, &tc->node);
    ps->nconns++;
    snprintf(tc->peer, sizeof(tc->peer), "%s", sock_peer(tc->sock));
    snprintf(tc->port, sizeof(tc->port), "%s", tp->addr);
    snprintf(tc->hostname, sizeof(tc->hostname), "%s", tp->hostname);
    if (e->draining) {
        tc_close(tc, 0);
        return;
    }
    /* The tunnel may be created after the edge starts: looked up on every connection. */
    t = store_find_name(e->store, tp->tunnel);
    if (t == NULL) {
        LOG_I("tcp port %s: connection from %s closed: tunnel \"%s\" does not exist", tp->addr,
              tc->peer, tp->tunnel);
        tc_close(tc, 0);
        return;
    }
    memcpy(tc->tunnel_id, t->id, sizeof(tc->tunnel_id));
    if (tc_open_stream(tc, NULL) < 0)
        tc_close(tc, 0);
}

/* ---- ports ---------------------------------------------------------------------------------- */

static struct tcp_port *port_start(struct tcp_ports *ps, const struct edge_tcp_port *cfg, char *err,
                                   size_t errlen)
{
    struct tcp_port *tp = mem_calloc(sizeof(*tp));

    if (tp == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    tp->owner = ps;
    config_format_addr(&cfg->listen, tp->addr, sizeof(tp->addr));
    snprintf(tp->tunnel, sizeof(tp->tunnel), "%s", cfg->tunnel);
    snprintf(tp->hostname, sizeof(tp->hostname), "%s", cfg->hostname);
    tp->l = listener_start(ps->e->loop, &cfg->listen, 0, on_accept, tp, err, errlen);
    if (tp->l == NULL) {
        mem_free(tp);
        return NULL;
    }
    LOG_I("tcp port %s -> tunnel %s, hostname %s", tp->addr, tp->tunnel, tp->hostname);
    return tp;
}

static void port_stop(struct tcp_port *tp)
{
    listener_stop(tp->l);
    mem_free(tp);
}

int tcp_ports_start(struct edge *e, char *err, size_t errlen)
{
    struct tcp_ports *ps = mem_calloc(sizeof(*ps));

    if (ps == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ps->e = e;
    list_init(&ps->conns);
    e->tcp = ps;
    for (size_t i = 0; i < e->cfg->n_tcp_ports; i++) {
        struct tcp_port *tp = port_start(ps, &e->cfg->tcp_ports[i], err, errlen);

        if (tp == NULL)
            return -1;
        tp->next = ps->ports;
        ps->ports = tp;
    }
    return 0;
}

int tcp_ports_reload(struct edge *e, char *err, size_t errlen)
{
    struct tcp_ports *ps = e->tcp;
    struct tcp_port *keep = NULL;
    struct tcp_port *tp;
    int rv = 0;

    if (ps == NULL)
        return 0;
    for (size_t i = 0; i < e->cfg->n_tcp_ports; i++) {
        const struct edge_tcp_port *c = &e->cfg->tcp_ports[i];
        struct tcp_port **pp;
        char addr[160];

        config_format_addr(&c->listen, addr, sizeof(addr));
        for (pp = &ps->ports; *pp != NULL; pp = &(*pp)->next) {
            if (strcmp((*pp)->addr, addr) == 0)
                break;
        }
        if (*pp != NULL) {
            tp = *pp;
            *pp = tp->next;
            snprintf(tp->tunnel, sizeof(tp->tunnel), "%s", c->tunnel);
            snprintf(tp->hostname, sizeof(tp->hostname), "%s", c->hostname);
        } else {
            tp = port_start(ps, c, err, errlen);
            if (tp == NULL) {
                rv = -1;
                continue;
            }
        }
        tp->next = keep;
        keep = tp;
    }
    while (ps->ports != NULL) {
        tp = ps->ports;
        ps->ports = tp->next;
        LOG_I("tcp port %s removed", tp->addr);
        port_stop(tp);
    }
    ps->ports = keep;
    return rv;
}

void tcp_ports_stop_accepting(struct edge *e)
{
    struct tcp_ports *ps = e->tcp;

    if (ps == NULL)
        return;
    while (ps->ports != NULL) {
        struct tcp_port *tp = ps->ports;

        ps->ports = tp->next;
        port_stop(tp);
    }
}

void tcp_ports_close_all(struct edge *e)
{
    struct tcp_ports *ps = e->tcp;
    struct list_node *p;
    struct list_node *tmp;

    if (ps == NULL)
        return;
    list_for_each_safe(p, tmp, &ps->conns)
    {
        tc_close(container_of(p, struct tcp_conn, node), 1);
    }
}

size_t tcp_ports_connection_count(const struct edge *e)
{
    return e->tcp != NULL ? e->tcp->nconns : 0;
}

void tcp_ports_free(struct edge *e)
{
    if (e->tcp == NULL)
        return;
    tcp_ports_stop_accepting(e);
    mem_free(e->tcp);
    e->tcp = NULL;
}
