/*
 * sock.h - the connection object: a libuv stream (TCP or unix socket), optional TLS, an input buffer,
 * an output pipeline, one deadline timer, and reference counting for safe closes from callbacks.
 *
 * Reading: bytes (plaintext, after TLS) land in sock_in(s); hooks->on_data tells the owner, which
 * consumes what it can with buf_consume(). A full input buffer stops reading until the owner
 * consumes (back-pressure); sock_read_stop()/sock_read_start() pause it explicitly.
 *
 * Writing: sock_write() appends (encrypting when TLS) to the pending output; nothing is written at
 * once. Once per loop iteration (a uv_check handle) every socket with pending output is flushed with
 * one uv_write of all its bytes; before that, hooks->on_flush lets owners (the mux glue) append what
 * they have. One write is in flight per socket; sock_write_queued() tells owners when to stop
 * producing, and hooks->on_drain when the queue fell below the low mark.
 *
 * Closing: sock_close() is graceful (flushes, sends close_notify, FIN, then closes the handles);
 * sock_abort() closes at once with a TCP reset (truncation must be visible). Both only schedule when
 * called from a hook; hooks->on_close runs last, after which the sock is freed.
 *
 * One loop thread. A struct sock_loop holds the per-loop state (flush list, check handle, shared read
 * buffer for ciphertext).
 */
#ifndef CV_SOCK_H
#define CV_SOCK_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "list.h"
#include "tls.h"

struct sock;
struct sock_loop;

struct sock_hooks {
    /* Client side: TCP connected and (with TLS) the handshake finished; |status| 0 or an error
     * (UV_ECONNREFUSED, CV_ETIMEDOUT, CV_ETLS with sock_error_text()). On failure on_close follows. */
    void (*on_connect)(struct sock *s, int status, void *arg);
    /* Server side with TLS: the handshake finished (SNI and ALPN are available). */
    void (*on_handshake)(struct sock *s, void *arg);
    /* New plaintext is in sock_in(s). */
    void (*on_data)(struct sock *s, void *arg);
    /* Orderly end of the peer's direction: TCP FIN (plain) or close_notify (TLS). */
    void (*on_eof)(struct sock *s, void *arg);
    /* Fatal error (reset, TLS failure, EOF without close_notify = CV_ETLS, deadline = CV_ETIMEDOUT).
     * The sock is being closed; on_close follows. */
    void (*on_error)(struct sock *s, int err, void *arg);
    /* About to flush: the owner may sock_write() more. Only for socks marked with sock_want_flush(). */
    void (*on_flush)(struct sock *s, void *arg);
    /* The output queue fell below the low mark after having been above the high mark. */
    void (*on_drain)(struct sock *s, void *arg);
    /* The deadline set with sock_set_timeout() expired. If NULL, expiry is on_error(CV_ETIMEDOUT). */
    void (*on_timeout)(struct sock *s, void *arg);
    /* Last call: handles are closed; the sock is freed after it returns. */
    void (*on_close)(struct sock *s, void *arg);
};

/* Per-loop state. Returns 0 or a negative code. */
int sock_loop_init(struct sock_loop **sl, uv_loop_t *loop);
/* Closes the check handle; call when no sock is left, before uv_loop_close. */
void sock_loop_cleanup(struct sock_loop *sl);

struct sock_opts {
    SSL_CTX *tls_ctx;         /* NULL: plain */
    const char *servername;   /* client TLS: SNI and certificate name */
    size_t in_cap;            /* input buffer cap (default 64 KiB) */
    size_t out_high;          /* queued output above which sock_write_queued() is "full" (256 KiB) */
    int nodelay;              /* TCP_NODELAY */
    unsigned keepalive_s;     /* TCP keep-alive delay, 0 = off */
};

/*
 * Server side: accepts a pending connection on |server| into a new sock. The TLS handshake (if any)
 * starts at once. Returns the sock, or NULL with *|err|.
 */
struct sock *sock_accept(struct sock_loop *sl, uv_stream_t *server, const struct sock_opts *o,
                         const struct sock_hooks *h, void *arg, int *err);
/* Client side: connects to |addr| (TCP), then TLS if o->tls_ctx. Result in on_connect. */
struct sock *sock_connect(struct sock_loop *sl, const struct sockaddr *addr, const struct sock_opts *o,
                          const struct sock_hooks *h, void *arg, int *err);
/* Client side over a unix socket at |path|. */
struct sock *sock_connect_unix(struct sock_loop *sl, const char *path, const struct sock_opts *o,
                               const struct sock_hooks *h, void *arg, int *err);

struct buf *sock_in(struct sock *s);
/* Appends |n| bytes for sending (encrypted if TLS). Returns 0 or CV_ENOMEM / CV_ECLOSED. Never
 * refuses for size: the owner checks sock_write_queued() against its high mark. */
int sock_write(struct sock *s, const void *p, size_t n);
/* Bytes queued and not yet confirmed written by the kernel. */
size_t sock_write_queued(const struct sock *s);
/* 1 when sock_write_queued() >= out_high. */
int sock_write_full(const struct sock *s);
/* Asks for an on_flush call in this loop iteration's flush pass. */
void sock_want_flush(struct sock *s);
void sock_read_start(struct sock *s);
void sock_read_stop(struct sock *s);
/* Half-close our direction after the queued output: TLS close_notify then TCP FIN. */
int sock_shutdown(struct sock *s);
/* Graceful close (flush, close_notify, FIN, close). */
void sock_close(struct sock *s);
/* Immediate close with TCP RST. */
void sock_abort(struct sock *s);
/* (Re)arms the deadline: on_timeout after |ms|; 0 disarms. */
void sock_set_timeout(struct sock *s, uint64_t ms);

/* The peer's address as "ip:port" / "[ip6]:port"; "" for unix sockets. */
const char *sock_peer(const struct sock *s);
/* The IP part only, for logs and X-Forwarded-For. */
const char *sock_peer_ip(const struct sock *s);
int sock_local_port(const struct sock *s);
struct tls *sock_tls(struct sock *s); /* NULL when plain */
/* A description of the last error (TLS reason, verification failure), "" if none. */
const char *sock_error_text(const struct sock *s);
void *sock_arg(const struct sock *s);
void sock_set_arg(struct sock *s, void *arg);
void sock_set_hooks(struct sock *s, const struct sock_hooks *h);
uv_loop_t *sock_uv_loop(const struct sock *s);
struct sock_loop *sock_get_loop(const struct sock *s);

/* Reference counting around re-entrant use (a hook that may close). */
void sock_hold(struct sock *s);
void sock_release(struct sock *s);

/* Resolves "host:port" asynchronously and connects to the first address that answers. */
typedef void (*sock_resolve_cb)(int status, struct addrinfo *res, void *arg);
int sock_resolve(struct sock_loop *sl, const char *host, const char *port, sock_resolve_cb cb, void *arg);

#endif
