/*
 * tls.c - OpenSSL over two memory BIOs; see tls.h.
 *
 * Above: sock.c moves ciphertext between the network and this module, and the edge's certificate
 * store (SNI) picks contexts. Below: OpenSSL 3.0. Pure: no sockets, no loop, no clock. Runs on the
 * loop thread only.
 *
 * Per-context settings that OpenSSL callbacks need (the ALPN protocol a server accepts, the CA
 * digest a client pins) live in a struct tls_ctx_data attached to the SSL_CTX as ex_data, freed by
 * OpenSSL's ex_data free callback when the context is freed.
 *
 * Every SSL_* call is preceded by ERR_clear_error() so that a failure's reasons are its own, and a
 * failure drains the queue into t->last_error (or the caller's |err|).
 */
#include "tls.h"

#include <arpa/inet.h>
#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include "buf.h"

/* Clears OpenSSL's error queue before a call (STYLE.md), without the cost of ERR_clear_error() when
 * it is already empty, which is nearly always. */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

#include "err.h"
#include "mem.h"

#define TLS_PIN_LEN 32
/* A memory BIO whose storage grew past this is replaced when empty (tls_release_buffers). */
#define TLS_BIO_KEEP_BYTES 4096

struct tls_ctx_data {
    uint8_t alpn_wire[256]; /* server: accepted protocol in ALPN wire format; client: offered */
    size_t alpn_len;        /* 0: no ALPN */
    int has_pin;
    uint8_t pin[TLS_PIN_LEN]; /* client: SHA-256 of the pinned CA certificate's DER */
};

static int ctx_data_index = -1;

static void ctx_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                          void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (ptr != NULL)
        mem_free_secret(ptr, sizeof(struct tls_ctx_data));
}

/* Appends |src| to the NUL-terminated |out| (|outlen| bytes), truncating. */
static void str_append(char *out, size_t outlen, const char *src)
{
    size_t len;

    if (outlen == 0)
        return;
    len = strnlen(out, outlen);
    if (len >= outlen - 1)
        return;
    snprintf(out + len, outlen - len, "%s", src);
}

void tls_drain_errors(char *out, size_t outlen)
{
    const char *data;
    const char *reason;
    unsigned long e;
    char one[256];
    int flags;

    for (;;) {
        e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);
        if (e == 0)
            break;
        if (out == NULL || outlen == 0)
            continue;
        reason = ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e)) : ERR_reason_error_string(e);
        if (reason == NULL) {
            ERR_error_string_n(e, one, sizeof(one));
        } else if ((flags & ERR_TXT_STRING) && data != NULL && data[0] != '\0') {
            snprintf(one, sizeof(one), "%s (%s)", reason, data);
        } else {
            snprintf(one, sizeof(one), "%s", reason);
        }
        if (strstr(out, one) != NULL)
            continue; /* the same reason from several layers ("system lib") */
        if (out[0] != '\0')
            str_append(out, outlen, "; ");
        str_append(out, outlen, one);
    }
}

/* Writes "|prefix|: <OpenSSL's reasons>" into |err| and clears the queue. */
static void fail_text(char *err, size_t errlen, const char *prefix)
{
    if (err == NULL || errlen == 0) {
        clear_errors();
        return;
    }
    snprintf(err, errlen, "%s: ", prefix);
    {
        size_t len = strlen(err);
        char *rest = err + len;

        rest[0] = '\0';
        tls_drain_errors(rest, errlen - len);
        if (rest[0] == '\0')
            snprintf(rest, errlen - len, "unknown error");
    }
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

static struct tls_ctx_data *ctx_data(SSL_CTX *ctx)
{
    if (ctx_data_index < 0)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, ctx_data_index);
}

/* Creates the context's data block and attaches it. Returns it, or NULL (out of memory). */
static struct tls_ctx_data *ctx_data_attach(SSL_CTX *ctx)
{
    struct tls_ctx_data *d;

    if (ctx_data_index < 0) {
        ctx_data_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_data_free);
        if (ctx_data_index < 0)
            return NULL;
    }
    d = mem_calloc(sizeof(*d));
    if (d == NULL)
        return NULL;
    if (SSL_CTX_set_ex_data(ctx, ctx_data_index, d) != 1) {
        mem_free(d);
        return NULL;
    }
    return d;
}

/* Encodes |name| as a one-entry ALPN protocol list. Returns 0 or CV_EINVAL (empty or > 255). */
static int alpn_encode(struct tls_ctx_data *d, const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > 255)
        return CV_EINVAL;
    d->alpn_wire[0] = (uint8_t)len;
    memcpy(d->alpn_wire + 1, name, len);
    d->alpn_len = len + 1;
    return 0;
}

static int set_min_version(SSL_CTX *ctx, enum tls_min_version min)
{
    int v = min == TLS_MIN_1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;

    return SSL_CTX_set_min_proto_version(ctx, v) == 1 ? 1 : 0;
}

/*
 * Common options. SSL_OP_NO_RENEGOTIATION refuses renegotiation in both directions (RELIABILITY.md
 * 2.6: thc-ssl-dos); ALLOW_CLIENT_RENEGOTIATION and IGNORE_UNEXPECTED_EOF are never set.
 * RELEASE_BUFFERS gives OpenSSL's record buffers back as soon as they are empty, so a keep-alive or
 * idle connection holds none; the allocator hooks below make that cheap.
 */
static void set_common(SSL_CTX *ctx)
{
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

/*
 * With RELEASE_BUFFERS OpenSSL allocates and frees a ~17 KiB record buffer for nearly every record
 * read and written (two to four per proxied request); glibc serves these from its main arena at a
 * few hundred instructions per pair. Allocations of that size go through a small LIFO cache of
 * equal chunks instead: the same few chunks (warm in cache, already paged in) serve every
 * connection in turn, and memory stays what RELEASE_BUFFERS intends. Off in sanitizer builds.
 */
#define REC_CHUNK_MIN (16 * 1024)
#define REC_CHUNK (18 * 1024)
#if defined(__SANITIZE_ADDRESS__)
#define REC_CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REC_CACHE_ON 0
#endif
#endif
#ifndef REC_CACHE_ON
#define REC_CACHE_ON 1
#endif
#define REC_CACHE 32

#if REC_CACHE_ON
static void *rec_cache[REC_CACHE];
static unsigned rec_cached;

static int is_rec_chunk(void *p)
{
    size_t n = malloc_usable_size(p);

    return n >= REC_CHUNK && n < REC_CHUNK + 64;
}

static void *rec_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (n < REC_CHUNK_MIN || n > REC_CHUNK)
        return malloc(n);
    if (rec_cached > 0)
        return rec_cache[--rec_cached];
    return malloc(REC_CHUNK);
}

static void rec_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p != NULL && rec_cached < REC_CACHE && is_rec_chunk(p)) {
        rec_cache[rec_cached++] = p;
        return;
    }
    free(p);
}

static void *rec_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL)
        return rec_malloc(n, file, line);
    if (is_rec_chunk(p) && n <= REC_CHUNK && n > 0)
        return p;
    return realloc(p, n);
}
#endif

void tls_global_init(void)
{
#if REC_CACHE_ON
    /* Refused once OpenSSL has allocated anything: then it simply keeps glibc's functions. */
    (void)CRYPTO_set_mem_functions(rec_malloc, rec_realloc, rec_free);
#endif
}

/* Server ALPN: accept exactly the configured protocol, fail the handshake otherwise. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    struct tls_ctx_data *d = ctx_data(SSL_get_SSL_CTX(ssl));
    unsigned int i = 0;

    (void)arg;
    if (d == NULL || d->alpn_len == 0)
        return SSL_TLSEXT_ERR_NOACK;
    while (i < inlen) {
        unsigned int len = in[i];

        if (len == 0 || len > inlen - i - 1)
            break; /* malformed list: OpenSSL already checks, stay safe anyway */
        if (len + 1 == d->alpn_len && memcmp(in + i, d->alpn_wire, d->alpn_len) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)len;
            return SSL_TLSEXT_ERR_OK;
        }
        i += len + 1;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX *tls_ctx_server_new(const char *cert_file, const char *key_file, enum tls_min_version min,
                            const char *alpn, char *err, size_t errlen)
{
    struct tls_ctx_data *d;
    char prefix[1100];
    SSL_CTX *ctx;

    if (cert_file == NULL || key_file == NULL) {
        set_err(err, errlen, "certificate and key files are required");
        return NULL;
    }
    clear_errors();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        fail_text(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    d = ctx_data_attach(ctx);
    if (d == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    set_common(ctx);
    clear_errors();
    if (set_min_version(ctx, min) != 1) {
        fail_text(err, errlen, "minimum TLS version");
        goto fail;
    }
    clear_errors();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        snprintf(prefix, sizeof(prefix), "certificate file %s", cert_file);
        fail_text(err, errlen, prefix);
        goto fail;
    }
    clear_errors();
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        snprintf(prefix, sizeof(prefix), "key file %s", key_file);
        fail_text(err, errlen, prefix);
        goto fail;
    }
    clear_errors();
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(prefix, sizeof(prefix), "key file %s does not match certificate file %s", key_file,
                 cert_file);
        fail_text(err, errlen, prefix);
        goto fail;
    }
    if (alpn != NULL) {
        if (alpn_encode(d, alpn) < 0) {
            set_err(err, errlen, "ALPN protocol name must be 1 to 255 bytes");
            goto fail;
        }
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    clear_errors();
    return NULL;
}

/*
 * Pinned-CA verification (replaces OpenSSL's chain building for the handshake). The peer's chain is
 * searched for a CA certificate whose DER has the pinned SHA-256 digest; the leaf must then verify
 * against that certificate as the only trust anchor (partial chains allowed, so the pin may be an
 * intermediate), with the host name or IP from the SSL's parameters. Returns 1 (trusted) or 0, with
 * the error code on |xs| for SSL_get_verify_result().
 */
static int pin_verify(X509_STORE_CTX *xs, void *arg)
{
    struct tls_ctx_data *d = arg;
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_untrusted(xs);
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls *t = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    X509_STORE_CTX *vx = NULL;
    X509_STORE *store = NULL;
    X509 *anchor = NULL;
    int n = chain != NULL ? sk_X509_num(chain) : 0;
    int ok = 0;
    int i;

    for (i = -1; i < n && anchor == NULL; i++) {
        X509 *c = i < 0 ? leaf : sk_X509_value(chain, i);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;

        if (c == NULL || X509_digest(c, EVP_sha256(), md, &mdlen) != 1 || mdlen != TLS_PIN_LEN)
            continue;
        if (CRYPTO_memcmp(md, d->pin, TLS_PIN_LEN) == 0 && X509_check_ca(c) >= 1)
            anchor = c;
    }
    if (anchor == NULL) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_UNTRUSTED);
        if (t != NULL)
            snprintf(t->last_error, sizeof(t->last_error),
                     "certificate verify failed: no CA certificate with the pinned SHA-256 digest "
                     "in the peer's chain");
        return 0;
    }
    store = X509_STORE_new();
    vx = X509_STORE_CTX_new();
    if (store == NULL || vx == NULL || X509_STORE_add_cert(store, anchor) != 1 ||
        X509_STORE_CTX_init(vx, store, leaf, chain) != 1) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_OUT_OF_MEM);
        goto done;
    }
    X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(vx), X509_STORE_CTX_get0_param(xs));
    X509_VERIFY_PARAM_set_flags(X509_STORE_CTX_get0_param(vx), X509_V_FLAG_PARTIAL_CHAIN);
    ok = X509_verify_cert(vx) == 1;
    X509_STORE_CTX_set_error(xs, X509_STORE_CTX_get_error(vx));
    X509_STORE_CTX_set_error_depth(xs, X509_STORE_CTX_get_error_depth(vx));
    if (ok) {
        STACK_OF(X509) *verified = X509_STORE_CTX_get1_chain(vx);

        if (verified != NULL)
            X509_STORE_CTX_set0_verified_chain(xs, verified);
        X509_VERIFY_PARAM_move_peername(X509_STORE_CTX_get0_param(xs),
                                        X509_STORE_CTX_get0_param(vx));
    }
done:
    X509_STORE_CTX_free(vx);
    X509_STORE_free(store);
    return ok;
}

SSL_CTX *tls_ctx_client_new(const struct tls_client_opts *o, char *err, size_t errlen)
{
    struct tls_ctx_data *d;
    char prefix[1100];
    SSL_CTX *ctx;

    if (o == NULL) {
        set_err(err, errlen, "no client TLS options");
        return NULL;
    }
    if (!o->no_verify && o->pin_sha256 != NULL && o->ca_file != NULL) {
        set_err(err, errlen, "a pinned CA digest and a CA file are mutually exclusive");
        return NULL;
    }
    if (!o->no_verify && o->pin_sha256 == NULL && o->ca_file == NULL && !o->system_store) {
        set_err(err, errlen,
                "no trust anchor: give a CA file, a pinned CA digest or the system store");
        return NULL;
    }
    clear_errors();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        fail_text(err, errlen, "SSL_CTX_new");
        return NULL;
    }
    d = ctx_data_attach(ctx);
    if (d == NULL) {
        set_err(err, errlen, "out of memory");
        goto fail;
    }
    set_common(ctx);
    clear_errors();
    if (set_min_version(ctx, o->min_version) != 1) {
        fail_text(err, errlen, "minimum TLS version");
        goto fail;
    }
    if (o->no_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else if (o->pin_sha256 != NULL) {
        memcpy(d->pin, o->pin_sha256, TLS_PIN_LEN);
        d->has_pin = 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_cert_verify_callback(ctx, pin_verify, d);
    } else if (o->ca_file != NULL) {
        clear_errors();
        if (SSL_CTX_load_verify_file(ctx, o->ca_file) != 1) {
            snprintf(prefix, sizeof(prefix), "CA file %s", o->ca_file);
            fail_text(err, errlen, prefix);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        clear_errors();
        if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            fail_text(err, errlen, "system certificate store");
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (o->alpn != NULL) {
        if (alpn_encode(d, o->alpn) < 0) {
            set_err(err, errlen, "ALPN protocol name must be 1 to 255 bytes");
            goto fail;
        }
        clear_errors();
        /* Returns 0 on success (sic). */
        if (SSL_CTX_set_alpn_protos(ctx, d->alpn_wire, (unsigned int)d->alpn_len) != 0) {
            fail_text(err, errlen, "ALPN");
            goto fail;
        }
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    clear_errors();
    return NULL;
}

/* ---- a read BIO that takes ciphertext from struct tls's input buffer -------------------------- */

static BIO_METHOD *source_method;

static int source_read(BIO *b, char *out, int len)
{
    struct tls *t = BIO_get_data(b);
    size_t n = buf_len(&t->in);

    BIO_clear_retry_flags(b);
    if (n == 0) {
        /* "More to come", never EOF: sock.c reports the TCP end itself. */
        BIO_set_retry_read(b);
        return -1;
    }
    if (len <= 0)
        return 0;
    if (n > (size_t)len)
        n = (size_t)len;
    memcpy(out, t->in.pos, n);
    buf_consume(&t->in, n);
    /* A small buffer goes back to the block cache at once: an idle connection (pings, small
     * requests) holds no input memory between reads. Bulk buffers stay until the idle sweep. */
    if (buf_len(&t->in) == 0 && (size_t)(t->in.end - t->in.base) <= MEM_BLOCK)
        buf_release(&t->in);
    return (int)n;
}

static long source_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls *t = BIO_get_data(b);

    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)buf_len(&t->in);
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

/* Our two BIO types, made once: a read-only source and a write-only sink. */
static BIO_METHOD *bio_method_get(BIO_METHOD **slot, const char *name,
                                  int (*rd)(BIO *, char *, int), int (*wr)(BIO *, const char *, int),
                                  long (*ctrl)(BIO *, int, long, void *))
{
    if (*slot != NULL)
        return *slot;
    *slot = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, name);
    if (*slot == NULL)
        return NULL;
    if ((rd != NULL && BIO_meth_set_read(*slot, rd) != 1) ||
        (wr != NULL && BIO_meth_set_write(*slot, wr) != 1) || BIO_meth_set_ctrl(*slot, ctrl) != 1) {
        BIO_meth_free(*slot);
        *slot = NULL;
    }
    return *slot;
}

static BIO_METHOD *source_get_method(void)
{
    return bio_method_get(&source_method, "culvert source", source_read, NULL, source_ctrl);
}

/* ---- a write BIO that appends ciphertext straight to the caller's buffer (tls_set_sink) ---- */

static BIO_METHOD *sink_method;

static int sink_write(BIO *b, const char *data, int len)
{
    struct buf *out = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (out == NULL || len < 0 || buf_append(out, data, (size_t)len) < 0)
        return -1;
    return len;
}

static long sink_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
    case BIO_CTRL_WPENDING:
        return 0;
    default:
        return 0;
    }
}

static BIO_METHOD *sink_get_method(void)
{
    return bio_method_get(&sink_method, "culvert sink", NULL, sink_write, sink_ctrl);
}

int tls_set_sink(struct tls *t, struct buf *out)
{
    BIO_METHOD *m;
    BIO *b;

    clear_errors();
    m = sink_get_method();
    b = m != NULL ? BIO_new(m) : NULL;
    if (b == NULL) {
        clear_errors();
        return CV_ENOMEM;
    }
    /* Whatever the memory BIO holds (nothing, before the first flight) goes first. */
    if (t->wbio != NULL && BIO_ctrl_pending(t->wbio) > 0) {
        const uint8_t *p;
        size_t n = tls_pending_out(t, &p);

        if (buf_append(out, p, n) < 0) {
            BIO_free(b);
            return CV_ENOMEM;
        }
    }
    BIO_set_data(b, out);
    BIO_set_init(b, 1);
    SSL_set0_wbio(t->ssl, b); /* frees the memory BIO */
    t->wbio = NULL;
    t->sink = 1;
    return 0;
}

static int tls_init_common(struct tls *t, SSL_CTX *ctx)
{
    memset(t, 0, sizeof(*t));
    clear_errors();
    t->ssl = SSL_new(ctx);
    if (t->ssl == NULL)
        goto fail;
    buf_init(&t->in, SIZE_MAX); /* bounded by the reader: sock.c stops reading while plaintext waits */
    t->rbio = source_get_method() != NULL ? BIO_new(source_method) : NULL;
    if (t->rbio == NULL)
        goto fail;
    BIO_set_data(t->rbio, t);
    BIO_set_init(t->rbio, 1);
    t->wbio = BIO_new(BIO_s_mem());
    if (t->wbio == NULL)
        goto fail;
    BIO_set_mem_eof_return(t->wbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_app_data(t->ssl, t);
    return 0;
fail:
    tls_drain_errors(t->last_error, sizeof(t->last_error));
    BIO_free(t->rbio);
    BIO_free(t->wbio);
    SSL_free(t->ssl);
    memset(t, 0, sizeof(*t));
    return CV_ENOMEM;
}

int tls_init_server(struct tls *t, SSL_CTX *ctx)
{
    int rv = tls_init_common(t, ctx);

    if (rv < 0)
        return rv;
    SSL_set_accept_state(t->ssl);
    return 0;
}

/* Returns 1 and copies the address without brackets into |out| when |name| is an IP literal. */
static int ip_literal(const char *name, char *out, size_t outlen)
{
    unsigned char addr[16];
    size_t len = strlen(name);

    if (len >= 2 && name[0] == '[' && name[len - 1] == ']') {
        name++;
        len -= 2;
    }
    if (len == 0 || len >= outlen)
        return 0;
    memcpy(out, name, len);
    out[len] = '\0';
    if (inet_pton(AF_INET, out, addr) == 1 || inet_pton(AF_INET6, out, addr) == 1)
        return 1;
    return 0;
}

int tls_init_client(struct tls *t, SSL_CTX *ctx, const char *servername)
{
    int verify = SSL_CTX_get_verify_mode(ctx) != SSL_VERIFY_NONE;
    char name[256]; /* SSL_set_tlsext_host_name takes a non-const pointer */
    char ip[64];
    int is_ip;
    int rv;

    if (verify && (servername == NULL || servername[0] == '\0'))
        return CV_EINVAL;
    if (servername != NULL && strlen(servername) >= sizeof(name))
        return CV_EINVAL;
    rv = tls_init_common(t, ctx);
    if (rv < 0)
        return rv;
    SSL_set_connect_state(t->ssl);
    if (servername == NULL || servername[0] == '\0')
        return 0;
    is_ip = ip_literal(servername, ip, sizeof(ip));
    snprintf(name, sizeof(name), "%s", servername);
    clear_errors();
    if (!is_ip && SSL_set_tlsext_host_name(t->ssl, name) != 1)
        goto fail;
    if (verify) {
        clear_errors();
        if (is_ip) {
            if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), ip) != 1)
                goto fail;
        } else {
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (SSL_set1_host(t->ssl, servername) != 1)
                goto fail;
        }
    }
    return 0;
fail:
    tls_drain_errors(t->last_error, sizeof(t->last_error));
    SSL_free(t->ssl);
    t->ssl = NULL;
    return CV_EINVAL;
}

void tls_cleanup(struct tls *t)
{
    if (t->ssl != NULL)
        SSL_free(t->ssl); /* frees both BIOs */
    buf_cleanup(&t->in);
    memset(t, 0, sizeof(*t));
}

int tls_feed(struct tls *t, const uint8_t *p, size_t n)
{
    if (buf_append(&t->in, p, n) < 0) {
        snprintf(t->last_error, sizeof(t->last_error), "out of memory for TLS input");
        return CV_ENOMEM;
    }
    return 0;
}

uint8_t *tls_in_reserve(struct tls *t, size_t want, size_t *room)
{
    uint8_t *p = buf_reserve(&t->in, want, NULL);

    *room = p != NULL ? buf_tailroom(&t->in) : 0;
    return p;
}

void tls_in_commit(struct tls *t, size_t n)
{
    buf_commit(&t->in, n);
}

/* Fills t->last_error after a failed SSL call that returned |ret|. */
static void record_failure(struct tls *t, int ret)
{
    long vr = SSL_get_verify_result(t->ssl);
    int e = SSL_get_error(t->ssl, ret);

    if (t->last_error[0] != '\0') {
        /* Set by the pin callback: more precise than the queue. */
        clear_errors();
        return;
    }
    if (vr != X509_V_OK && !t->handshake_done) {
        snprintf(t->last_error, sizeof(t->last_error), "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
        clear_errors();
        return;
    }
    tls_drain_errors(t->last_error, sizeof(t->last_error));
    if (t->last_error[0] == '\0')
        snprintf(t->last_error, sizeof(t->last_error), "TLS error %d", e);
}

int tls_handshake(struct tls *t)
{
    int ret;
    int e;

    if (t->handshake_done)
        return 1;
    t->last_error[0] = '\0';
    clear_errors();
    ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->handshake_done = 1;
        return 1;
    }
    e = SSL_get_error(t->ssl, ret);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        clear_errors();
        return 0;
    }
    record_failure(t, ret);
    return CV_ETLS;
}

int tls_read(struct tls *t, uint8_t *out, size_t cap)
{
    size_t got = 0;
    int ret;
    int e;

    if (t->close_notify_received)
        return CV_ECLOSED;
    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX;
    clear_errors();
    ret = SSL_read_ex(t->ssl, out, cap, &got);
    if (ret == 1)
        return (int)got;
    e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        clear_errors();
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        clear_errors();
        t->close_notify_received = 1;
        return CV_ECLOSED;
    default:
        t->last_error[0] = '\0';
        record_failure(t, ret);
        return CV_ETLS;
    }
}

int tls_read_more(const struct tls *t)
{
    return SSL_has_pending(t->ssl) || buf_len(&t->in) > 0;
}

int tls_write(struct tls *t, const uint8_t *p, size_t n)
{
    if (t->close_notify_sent)
        return CV_ECLOSED;
    while (n > 0) {
        size_t done = 0;
        int ret;

        clear_errors();
        ret = SSL_write_ex(t->ssl, p, n, &done);
        if (ret != 1) {
            int e = SSL_get_error(t->ssl, ret);

            t->last_error[0] = '\0';
            record_failure(t, ret);
            return e == SSL_ERROR_ZERO_RETURN ? CV_ECLOSED : CV_ETLS;
        }
        p += done;
        n -= done;
    }
    return 0;
}

int tls_shutdown(struct tls *t)
{
    int ret;

    if (t->close_notify_sent)
        return 0;
    t->close_notify_sent = 1;
    if (!t->handshake_done)
        return 0; /* nothing to close: no session yet */
    clear_errors();
    ret = SSL_shutdown(t->ssl);
    if (ret < 0) {
        int e = SSL_get_error(t->ssl, ret);

        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            t->last_error[0] = '\0';
            record_failure(t, ret);
            return CV_ETLS;
        }
    }
    clear_errors();
    return 0;
}

size_t tls_pending_out(struct tls *t, const uint8_t **p)
{
    char *data = NULL;
    long n;

    if (t->wbio == NULL) {
        *p = NULL;
        return 0;
    }
    n = BIO_get_mem_data(t->wbio, &data);
    if (n <= 0) {
        *p = NULL;
        return 0;
    }
    *p = (const uint8_t *)data;
    return (size_t)n;
}

void tls_consume_out(struct tls *t, size_t n)
{
    uint8_t scratch[16384];

    /* A memory BIO is consumed by reading it; the bytes were already copied by the caller. */
    while (n > 0) {
        int chunk = n > sizeof(scratch) ? (int)sizeof(scratch) : (int)n;
        int r = BIO_read(t->wbio, scratch, chunk);

        if (r <= 0)
            break;
        n -= (size_t)r;
    }
}

size_t tls_take_out(struct tls *t, uint8_t *dst, size_t cap)
{
    size_t got = 0;

    if (t->wbio == NULL || cap == 0)
        return 0;
    if (cap > (size_t)INT_MAX)
        cap = (size_t)INT_MAX;
    if (BIO_read_ex(t->wbio, dst, cap, &got) != 1)
        return 0;
    return got;
}

/* Replaces the write memory BIO with a fresh one if it is empty but grew large. */
static void swap_wbio_if_big(struct tls *t)
{
    BIO *b = t->wbio;
    BUF_MEM *bm = NULL;
    BIO *nb;

    if (b == NULL || BIO_ctrl_pending(b) != 0)
        return;
    BIO_get_mem_ptr(b, &bm);
    if (bm == NULL || bm->max <= TLS_BIO_KEEP_BYTES)
        return;
    nb = BIO_new(BIO_s_mem());
    if (nb == NULL) {
        clear_errors();
        return; /* keep the old one: harmless */
    }
    BIO_set_mem_eof_return(nb, -1);
    SSL_set0_wbio(t->ssl, nb); /* frees the old one */
    t->wbio = nb;
}

void tls_release_buffers(struct tls *t)
{
    if (buf_len(&t->in) == 0)
        buf_release(&t->in);
    if (t->ssl == NULL)
        return;
    if (t->sink)
        return;
    swap_wbio_if_big(t);
}

const char *tls_servername(const struct tls *t)
{
    if (t->ssl == NULL)
        return NULL;
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

void tls_alpn(const struct tls *t, char *out, size_t outlen)
{
    const unsigned char *p = NULL;
    unsigned int len = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (t->ssl == NULL)
        return;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (p == NULL || len == 0)
        return;
    if (len >= outlen)
        len = (unsigned int)outlen - 1;
    memcpy(out, p, len);
    out[len] = '\0';
}

const char *tls_version(const struct tls *t)
{
    if (t->ssl == NULL)
        return "";
    return SSL_get_version(t->ssl);
}
