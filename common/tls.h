/*
 * tls.h - OpenSSL over memory BIOs, with no I/O of its own (sock.c moves the bytes).
 *
 * Ciphertext from the network goes in with tls_feed(), or is read straight into the input buffer
 * (tls_in_reserve()/tls_in_commit()); the handshake, tls_read() and tls_write()
 * run on it; whatever OpenSSL wants to send (handshake records, application data, tickets, KeyUpdate,
 * close_notify) is taken out with tls_pending_out()/tls_consume_out() after *every* call, since TLS 1.3
 * writes even while reading. Runs on the loop thread; one struct tls per connection.
 *
 * Contexts: tls_ctx_server_new() for listeners (SNI selection is done by the caller's servername
 * callback, see edge/certs.c); tls_ctx_client_new() for dialers, with the trust anchor from a CA
 * file, a pinned CA digest, or the system store. Client-initiated renegotiation is never allowed and
 * SSL_OP_IGNORE_UNEXPECTED_EOF is never set: a TCP end without close_notify is an error
 * (RELIABILITY.md 2.6).
 */
#ifndef CV_TLS_H
#define CV_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "buf.h"

enum tls_min_version { TLS_MIN_1_2, TLS_MIN_1_3 };

/*
 * Exactly one trust anchor applies, checked in this order: no_verify, pin_sha256, ca_file,
 * system_store. A pin and a CA file together, or none of the four, is a configuration error.
 */
struct tls_client_opts {
    const char *ca_file;         /* PEM bundle to trust, or NULL */
    const uint8_t *pin_sha256;   /* 32 bytes: trust only a CA with this DER digest, or NULL. The
                                    peer must send that CA in its chain; the leaf is verified
                                    against it as the only anchor (it may be an intermediate). */
    int system_store;            /* 1: trust the system store (when no ca_file and no pin) */
    int no_verify;               /* 1: skip verification (originRequest.noTLSVerify only) */
    const char *alpn;            /* protocol name (e.g. "culvert/1"), or NULL */
    enum tls_min_version min_version;
};

/*
 * Returns a new server context with |cert_file| (PEM chain) and |key_file|, or NULL with a reason
 * written into |err| (|errlen| bytes) naming the file and OpenSSL's error. |alpn|, when not NULL,
 * is the only ALPN protocol accepted: a client offering ALPN without it fails the handshake with
 * no_application_protocol. A client offering no ALPN at all is not refused here (OpenSSL does not
 * call the selection callback); callers that require the protocol check tls_alpn() after the
 * handshake. The caller frees the context with SSL_CTX_free() (contexts are reference counted,
 * live SSL objects keep theirs).
 */
SSL_CTX *tls_ctx_server_new(const char *cert_file, const char *key_file, enum tls_min_version min,
                            const char *alpn, char *err, size_t errlen);
/* Returns a new client context, or NULL with a reason in |err| (unreadable CA file, conflicting or
 * missing trust anchor, bad ALPN name, out of memory). */
SSL_CTX *tls_ctx_client_new(const struct tls_client_opts *o, char *err, size_t errlen);

/* Call first thing in main(), before OpenSSL allocates: routes OpenSSL's record-buffer-sized
 * allocations through a small cache (see tls.c). Harmless if it comes too late. */
void tls_global_init(void);

/* Appends OpenSSL's error queue to |out| ("; "-separated) and clears it. */
void tls_drain_errors(char *out, size_t outlen);

struct tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext in: reads |in| (owned by ssl) */
    BIO *wbio; /* ciphertext out (owned by ssl) */
    int handshake_done;
    int close_notify_sent;
    int close_notify_received;
    int sink; /* ciphertext goes straight to the buffer given to tls_set_sink */
    struct buf in; /* ciphertext received and not yet taken by OpenSSL */
    char last_error[256]; /* reason of the last failure, e.g. "certificate verify failed: hostname
                             mismatch" or OpenSSL's reasons ("; "-separated) */
};

/* Server side over |ctx|. Returns 0 or CV_ENOMEM / CV_ETLS. */
int tls_init_server(struct tls *t, SSL_CTX *ctx);
/*
 * Client side. |servername| is sent as SNI (not for IP literals, which may be bracketed) and
 * checked against the certificate (DNS name, or IP address for IP literals), unless the context has
 * no_verify. Returns 0, CV_EINVAL (no |servername| while verifying: a chain without a name check
 * would accept any certificate of the CA; a name of 256 bytes or more, or one OpenSSL refuses)
 * or CV_ENOMEM.
 */
int tls_init_client(struct tls *t, SSL_CTX *ctx, const char *servername);
void tls_cleanup(struct tls *t);

/* Gives |n| ciphertext bytes to OpenSSL (copied). Returns 0 or CV_ENOMEM. */
int tls_feed(struct tls *t, const uint8_t *p, size_t n);
/* Room for at least |want| bytes of ciphertext at the end of the input, to read the network into
 * directly; *|room| is how much there is. Returns NULL when out of memory. */
uint8_t *tls_in_reserve(struct tls *t, size_t want, size_t *room);
/* Marks |n| bytes written at tls_in_reserve()'s pointer as received. */
void tls_in_commit(struct tls *t, size_t n);
/* Advances the handshake. Returns 1 when done, 0 when it needs more input, or CV_ETLS (reason in
 * t->last_error: certificate verification, ALPN, protocol version...). */
int tls_handshake(struct tls *t);
/*
 * Decrypts up to |cap| bytes into |out|. Returns the count (> 0), 0 when more ciphertext is needed,
 * CV_ECLOSED once close_notify was received (orderly end), or CV_ETLS.
 */
int tls_read(struct tls *t, uint8_t *out, size_t cap);
/* 1 when OpenSSL may return more plaintext without new ciphertext (buffered records or unread
 * input), so another tls_read() is worth it. */
int tls_read_more(const struct tls *t);
/* Encrypts |n| bytes (all of them: the write BIO grows). Returns 0 or CV_ETLS / CV_ECLOSED. */
int tls_write(struct tls *t, const uint8_t *p, size_t n);
/* Queues close_notify (once; before the handshake finished there is no session and nothing is
 * queued). Returns 0, or CV_ETLS if OpenSSL refuses (after a fatal error). */
int tls_shutdown(struct tls *t);
struct buf;
/*
 * From now on, ciphertext is appended straight to |out| (borrowed: it must outlive |t|) instead of a
 * memory BIO: no copy between OpenSSL and the caller's output. tls_pending_out() then returns 0.
 * Returns 0 or CV_ENOMEM.
 */
int tls_set_sink(struct tls *t, struct buf *out);
/* Ciphertext waiting to be sent: returns its length and points *|p| at it. */
size_t tls_pending_out(struct tls *t, const uint8_t **p);
/* Moves up to |cap| bytes of pending ciphertext into |dst| (one copy). Returns the count. */
size_t tls_take_out(struct tls *t, uint8_t *dst, size_t cap);
/* Drops |n| bytes of pending ciphertext (the caller copied them). */
void tls_consume_out(struct tls *t, size_t n);
/* Idle connections: frees an empty input buffer and replaces an empty memory BIO whose storage grew
 * large with a fresh one, so an idle connection holds little memory. Call only when
 * tls_pending_out() is empty. */
void tls_release_buffers(struct tls *t);

/* After the handshake: the SNI the client sent (server side), or NULL. */
const char *tls_servername(const struct tls *t);
/* After the handshake: the negotiated ALPN protocol into |out| (NUL-terminated), "" if none. */
void tls_alpn(const struct tls *t, char *out, size_t outlen);
/* "TLSv1.3" etc. */
const char *tls_version(const struct tls *t);

#endif
