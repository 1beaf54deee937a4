/*
 * certs.c - SNI certificate store; see certs.h.
 *
 * Each configured {cert, key} becomes an SSL_CTX (TLS 1.2+, no ALPN: visitors speak HTTP/1.1). Its
 * names come from the certificate's subjectAltName DNS entries (the CN only when there are none, as
 * browsers did before RFC 6125 §6.4.4 made SANs mandatory). The base context is the first
 * certificate's; its servername callback looks the SNI up (hostname_table_lookup_cert: exact, then a
 * wildcard covering exactly one label) and switches the connection to that context.
 */
#include "certs.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "edge_config.h"
#include "err.h"
#include "hostname.h"
#include "log.h"
#include "mem.h"
#include "tls.h"

struct certs {
    SSL_CTX **ctxs;
    size_t nctx;
    struct hostname_table *names; /* pattern -> SSL_CTX * */
    size_t nnames;
};

static int servername_cb(SSL *ssl, int *alert, void *arg)
{
    const struct certs *c = arg;
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char name[HOSTNAME_MAX + 1];
    SSL_CTX *ctx;
    int n;

    (void)alert;
    if (sni == NULL)
        return SSL_TLSEXT_ERR_OK; /* the default certificate */
    n = hostname_normalize(sni, strlen(sni), name, NULL);
    if (n < 0)
        return SSL_TLSEXT_ERR_OK; /* HTTP will answer 421 for a Host that does not match */
    ctx = hostname_table_lookup_cert(c->names, name, NULL);
    if (ctx != NULL && ctx != SSL_get_SSL_CTX(ssl))
        SSL_set_SSL_CTX(ssl, ctx);
    return SSL_TLSEXT_ERR_OK;
}

static int add_name(struct certs *c, const char *name, size_t len, SSL_CTX *ctx, const char *file)
{
    struct hostname_pattern pat;
    const char *why = NULL;
    int rv;

    if (hostname_pattern_parse(name, len, &pat, &why) < 0) {
        LOG_W("certificate %s: name \"%.*s\" ignored: %s", file, (int)len, name, why);
        return 0;
    }
    if (hostname_table_get(c->names, pat.text) != NULL)
        return 0; /* the first certificate listing a name wins */
    rv = hostname_table_insert(c->names, pat.text, ctx, NULL);
    if (rv < 0)
        return rv;
    c->nnames++;
    return 0;
}

static int collect_names(struct certs *c, SSL_CTX *ctx, const char *file)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    GENERAL_NAMES *sans;
    int found = 0;
    int rv = 0;

    if (x == NULL)
        return CV_ETLS;
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (sans != NULL) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans) && rv == 0; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);

            if (g->type != GEN_DNS)
                continue;
            found = 1;
            rv = add_name(c, (const char *)ASN1_STRING_get0_data(g->d.dNSName),
                          (size_t)ASN1_STRING_length(g->d.dNSName), ctx, file);
        }
        GENERAL_NAMES_free(sans);
    }
    if (!found && rv == 0) {
        char cn[256];
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));

        if (n > 0)
            rv = add_name(c, cn, (size_t)n, ctx, file);
    }
    return rv;
}

struct certs *certs_load(const struct edge_config *cfg, char *err, size_t errlen)
{
    struct certs *c = mem_calloc(sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->names = hostname_table_new();
    c->ctxs = mem_calloc(cfg->n_certs * sizeof(*c->ctxs) + 1);
    if (c->names == NULL || c->ctxs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_certs; i++) {
        SSL_CTX *ctx = tls_ctx_server_new(cfg->certs[i].cert, cfg->certs[i].key, TLS_MIN_1_2, NULL,
                                          err, errlen);

        if (ctx == NULL) {
            edge_config_blame(err, errlen, cfg->certs[i].cert_at, cfg->certs[i].key_at);
            goto fail;
        }
        c->ctxs[c->nctx++] = ctx;
        if (collect_names(c, ctx, cfg->certs[i].cert) < 0) {
            snprintf(err, errlen, "%s: certificate %s: cannot read its names",
                     cfg->certs[i].cert_at, cfg->certs[i].cert);
            goto fail;
        }
    }
    if (c->nctx == 0) {
        snprintf(err, errlen, "no public certificate configured");
        goto fail;
    }
    SSL_CTX_set_tlsext_servername_callback(c->ctxs[0], servername_cb);
    SSL_CTX_set_tlsext_servername_arg(c->ctxs[0], c);
    return c;
fail:
    certs_free(c);
    return NULL;
}

void certs_free(struct certs *c)
{
    if (c == NULL)
        return;
    if (c->nctx > 0) {
        /* Connections that outlive the store keep their context; none may call back into |c|. */
        SSL_CTX_set_tlsext_servername_callback(c->ctxs[0], NULL);
        SSL_CTX_set_tlsext_servername_arg(c->ctxs[0], NULL);
    }
    for (size_t i = 0; i < c->nctx; i++)
        SSL_CTX_free(c->ctxs[i]);
    hostname_table_free(c->names, NULL);
    mem_free(c->ctxs);
    mem_free(c);
}

SSL_CTX *certs_ctx(const struct certs *c)
{
    return c->ctxs[0];
}

size_t certs_name_count(const struct certs *c)
{
    return c->nnames;
}
