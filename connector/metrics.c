/*
 * metrics.c - the loopback metrics server; see metrics.h.
 *
 * One request per connection (answers carry Connection: close), parsed with http1.c, bounded by
 * the request limits and a 10 s deadline.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connector.h"
#include "connector_config.h"
#include "err.h"
#include "http1.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "origin_http.h"
#include "sock.h"
#include "supervisor.h"
#include "token.h"
#include "version.h"

struct metrics {
    struct connector *c;
    struct listener *l;
};

struct mconn {
    struct metrics *m;
    struct sock *sock;
    struct http1_parser *parser;
    int answered;
};

static void answer(struct mconn *mc, int status, const char *ctype, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, http1_status_reason(status), ctype, strlen(body));

    sock_write(mc->sock, head, (size_t)n);
    sock_write(mc->sock, body, strlen(body));
    mc->answered = 1;
    sock_close(mc->sock);
}

static int on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct mconn *mc = arg;
    struct connector *c = mc->m->c;
    size_t ready = 0;
    uint64_t reconnects = 0;
    size_t streams = 0;
    char body[2048];

    (void)p;
    supervisor_counts(c->sup, &ready, &reconnects, &streams);
    if (h->path_len == 6 && memcmp(h->path, "/ready", 6) == 0) {
        char id[TOKEN_UUID_TEXT_LEN + 1];

        /* cloudflared's shape; the id is this process's, as `tunnel info` shows it. */
        token_uuid_format(c->connector_id, id);
        snprintf(body, sizeof(body), "{\"status\":%d,\"readyConnections\":%zu,\"connectorId\":\"%s\"}\n",
                 ready > 0 ? 200 : 503, ready, id);
        answer(mc, ready > 0 ? 200 : 503, "application/json", body);
    } else if (h->path_len == 12 && memcmp(h->path, "/healthcheck", 12) == 0) {
        answer(mc, 200, "text/plain", "OK\n");
    } else if (h->path_len == 8 && memcmp(h->path, "/metrics", 8) == 0) {
        snprintf(body, sizeof(body),
                 "# HELP culvert_tunnel_connections Registered tunnel connections.\n"
                 "# TYPE culvert_tunnel_connections gauge\n"
                 "culvert_tunnel_connections %zu\n"
                 "# HELP culvert_tunnel_reconnects_total Reconnect attempts.\n"
                 "# TYPE culvert_tunnel_reconnects_total counter\n"
                 "culvert_tunnel_reconnects_total %" PRIu64 "\n"
                 "# HELP culvert_streams_open Streams open on all tunnel connections.\n"
                 "# TYPE culvert_streams_open gauge\n"
                 "culvert_streams_open %zu\n"
                 "# HELP culvert_streams_total Streams served since start.\n"
                 "# TYPE culvert_streams_total counter\n"
                 "culvert_streams_total %" PRIu64 "\n"
                 "# HELP culvert_origin_idle_connections Idle keep-alive connections to origins.\n"
                 "# TYPE culvert_origin_idle_connections gauge\n"
                 "culvert_origin_idle_connections %zu\n"
                 "# HELP culvert_build_info Build information.\n"
                 "# TYPE culvert_build_info gauge\n"
                 "culvert_build_info{version=\"%s\"} 1\n",
                 ready, reconnects, streams, c->streams_total, origin_pools_idle(c->pools),
                 CULVERT_VERSION);
        answer(mc, 200, "text/plain; version=0.0.4", body);
    } else {
        answer(mc, 404, "text/plain", "not found\n");
    }
    return HTTP1_PAUSE;
}

static const struct http1_hooks mhooks = {
    .on_head = on_head,
};

static void mc_on_data(struct sock *s, void *arg)
{
    struct mconn *mc = arg;
    struct buf *in = sock_in(s);
    ssize_t n;

    if (mc->answered) {
        buf_consume(in, buf_len(in));
        return;
    }
    n = http1_feed(mc->parser, in->pos, buf_len(in));
    if (n < 0) {
        int st = http1_error_status(mc->parser);

        answer(mc, st > 0 ? st : 400, "text/plain", "bad request\n");
        buf_consume(in, buf_len(in));
        return;
    }
    buf_consume(in, (size_t)n);
}

static void mc_on_close(struct sock *s, void *arg)
{
    struct mconn *mc = arg;

    (void)s;
    http1_parser_free(mc->parser);
    mem_free(mc);
}

static const struct sock_hooks mc_hooks = {
    .on_data = mc_on_data,
    .on_close = mc_on_close,
};

static void on_accept(struct listener *l, uv_stream_t *server, void *arg)
{
    struct metrics *m = arg;
    struct mconn *mc = mem_calloc(sizeof(*mc));
    struct sock_opts o;
    int err = 0;

    (void)l;
    if (mc == NULL)
        return;
    memset(&o, 0, sizeof(o));
    o.in_cap = 16 * 1024;
    o.out_high = 64 * 1024;
    mc->m = m;
    mc->parser = http1_parser_new(HTTP1_REQUEST, &m->c->limits, &mhooks, mc);
    mc->sock = sock_accept(m->c->sl, server, &o, &mc_hooks, mc, &err);
    if (mc->sock == NULL) {
        http1_parser_free(mc->parser);
        mem_free(mc);
        return;
    }
    if (mc->parser == NULL) {
        sock_abort(mc->sock);
        return;
    }
    sock_set_timeout(mc->sock, 10000);
}

int metrics_start(struct connector *c, char *err, size_t errlen)
{
    const struct connector_config *cfg = c->cfg;
    struct metrics *m;

    if (cfg->metrics_mode == CONNECTOR_METRICS_OFF)
        return 0;
    m = mem_calloc(sizeof(*m));
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->c = c;
    if (cfg->metrics_mode == CONNECTOR_METRICS_ADDR) {
        m->l = listener_start(c->loop, &cfg->metrics, 0600, on_accept, m, err, errlen);
        if (m->l == NULL) {
            mem_free(m);
            return -1;
        }
    } else {
        for (int port = CONNECTOR_METRICS_PORT_FIRST; port <= CONNECTOR_METRICS_PORT_LAST; port++) {
            struct config_addr a;
            char why[256];

            memset(&a, 0, sizeof(a));
            a.kind = CONFIG_ADDR_TCP;
            a.host_kind = HOSTNAME_IPV4;
            snprintf(a.host, sizeof(a.host), "127.0.0.1");
            a.port = (uint16_t)port;
            m->l = listener_start(c->loop, &a, 0, on_accept, m, why, sizeof(why));
            if (m->l != NULL)
                break;
        }
        if (m->l == NULL) {
            LOG_W("metrics: no free port in 127.0.0.1:%d-%d; metrics are off", CONNECTOR_METRICS_PORT_FIRST,
                  CONNECTOR_METRICS_PORT_LAST);
            mem_free(m);
            return 0;
        }
    }
    LOG_I("metrics server on %s (/ready, /healthcheck, /metrics)", listener_name(m->l));
    c->metrics = m;
    return 0;
}

void metrics_stop(struct connector *c)
{
    if (c->metrics == NULL)
        return;
    listener_stop(c->metrics->l);
    mem_free(c->metrics);
    c->metrics = NULL;
}
