/*
 * tunnel_listener.c - the tunnel port; see tunnel_listener.h.
 *
 * Above: tunnel.c takes each connection once TLS is up. Below: listener.c, sock.c, tls.c.
 */
#include "tunnel_listener.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "frame.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "sock.h"
#include "tls.h"
#include "tunnel.h"

#define MAX_LISTENERS 16

struct tunnel_listener {
    struct edge *e;
    SSL_CTX *ctx;
    struct listener *ls[MAX_LISTENERS];
    size_t nls;
};

static SSL_CTX *make_ctx(const struct edge_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_ctx_server_new(cfg->tunnel_cert, cfg->tunnel_key, TLS_MIN_1_3, FRAME_ALPN, err,
                                      errlen);
    BIO *bio;
    X509 *ca;

    if (ctx == NULL)
        edge_config_blame(err, errlen, cfg->tunnel_cert_at, cfg->tunnel_key_at);
    if (ctx == NULL || cfg->tunnel_ca == NULL)
        return ctx;
    /* Connectors pin the CA by digest (PRODUCT.md "Token"): send it in the chain so they can find it. */
    bio = BIO_new_file(cfg->tunnel_ca, "r");
    ca = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (ca == NULL || SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
        snprintf(err, errlen, "tunnel.ca %s: cannot read a certificate", cfg->tunnel_ca);
        X509_free(ca);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return NULL;
    }
    return ctx;
}

/* Replaced by the link's at once (tunnel_registry_adopt). */
static const struct sock_hooks no_hooks;

static void on_accept(struct listener *l, uv_stream_t *server, void *arg)
{
    struct tunnel_listener *tl = arg;
    struct edge *e = tl->e;
    struct sock_opts o;
    struct sock *s;
    int err = 0;
    int rv;

    (void)l;
    memset(&o, 0, sizeof(o));
    o.tls_ctx = tl->ctx;
    /* A whole frame must fit: the mux leaves partial frames in the input buffer. */
    o.in_cap = 2 * ((size_t)e->limits.max_frame_size + FRAME_HDR_LEN) + 64 * 1024;
    o.out_high = 256 * 1024;
    o.nodelay = 1;
    o.keepalive_s = 30;
    s = sock_accept(e->sl, server, &o, &no_hooks, NULL, &err);
    if (s == NULL) {
        LOG_W_RL("tunnel accept failed: %s", cv_strerror(err));
        return;
    }
    if (e->draining) {
        sock_abort(s);
        return;
    }
    /* The registry takes the connection at once: the TLS handshake and the registration share one
     * deadline and one cap on pending connections (RELIABILITY.md 3.5). */
    rv = tunnel_registry_adopt(e->reg, s);
    if (rv < 0)
        sock_abort(s);
}

int tunnel_listener_check(const struct edge_config *cfg, char *err, size_t errlen)
{
    SSL_CTX *ctx = make_ctx(cfg, err, errlen);

    if (ctx == NULL)
        return -1;
    SSL_CTX_free(ctx);
    return 0;
}

int tunnel_listener_start(struct edge *e, char *err, size_t errlen)
{
    struct tunnel_listener *tl = mem_calloc(sizeof(*tl));

    if (tl == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tl->e = e;
    tl->ctx = make_ctx(e->cfg, err, errlen);
    if (tl->ctx == NULL) {
        mem_free(tl);
        return -1;
    }
    e->tl = tl;
    for (size_t i = 0; i < e->cfg->n_tunnel_listen && i < MAX_LISTENERS; i++) {
        struct listener *l = listener_start(e->loop, &e->cfg->tunnel_listen[i], 0, on_accept, tl, err,
                                            errlen);

        if (l == NULL) {
            tunnel_listener_stop(e);
            return -1;
        }
        tl->ls[tl->nls++] = l;
        LOG_I("tunnel listening on %s", listener_name(l));
    }
    return 0;
}

void tunnel_listener_stop(struct edge *e)
{
    struct tunnel_listener *tl = e->tl;

    if (tl == NULL)
        return;
    for (size_t i = 0; i < tl->nls; i++)
        listener_stop(tl->ls[i]);
    tl->nls = 0;
}

void tunnel_listener_free(struct edge *e)
{
    if (e->tl == NULL)
        return;
    SSL_CTX_free(e->tl->ctx);
    mem_free(e->tl);
    e->tl = NULL;
}

int tunnel_listener_reload(struct edge *e, char *err, size_t errlen)
{
    struct tunnel_listener *tl = e->tl;
    SSL_CTX *ctx = make_ctx(e->cfg, err, errlen);

    if (ctx == NULL)
        return -1;
    SSL_CTX_free(tl->ctx); /* handshakes in progress hold their own reference */
    tl->ctx = ctx;
    return 0;
}

int tunnel_listener_port(const struct edge *e)
{
    return e->tl != NULL && e->tl->nls > 0 ? listener_port(e->tl->ls[0]) : 0;
}
