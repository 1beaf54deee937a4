/*
 * certs.h - the public certificates, picked by SNI (exact names, then TLS one-label wildcards), with a
 * default (the first configured certificate) for clients without SNI or with an unknown name.
 *
 * A store is built whole from the config and swapped on reload; connections that already started
 * keep the SSL_CTX they got (OpenSSL reference counts). One loop thread.
 */
#ifndef CV_CERTS_H
#define CV_CERTS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct edge_config;
struct certs;

/* Loads every certificate of |cfg|. Returns the store, or NULL with a reason naming the file. */
struct certs *certs_load(const struct edge_config *cfg, char *err, size_t errlen);
void certs_free(struct certs *c);
/* The context listeners hand to new connections (its servername callback switches to the
 * certificate matching SNI). Borrowed from |c|. */
SSL_CTX *certs_ctx(const struct certs *c);
/* Number of names (SAN DNS names or CN) served, for logs. */
size_t certs_name_count(const struct certs *c);

#endif
