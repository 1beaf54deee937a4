/*
 * sock.h - the connection object: a libuv stream (TCP or unix socket), optional TLS, an input buffer,
 * an output pipeline, one deadline timer, and reference counting for safe closes from callbacks.
 *
 * Reading: bytes (plaintext, after TLS) land in sock_in(s); hooks->on_data tells the owner, which
 * consumes what it can with buf_consume(). A full input buffer stops reading (back-pressure, for TLS
 * too: the rest stays inside OpenSSL). Room made inside on_data is used at once; an owner that
 * consumes later (e.g. when its downstream drained) calls sock_read_start() afterwards to resume.
 * sock_read_stop()/sock_read_start() also pause and resume explicitly. Empty buffers are freed, so an
 * idle connection holds little memory.
 *
 * Writing: sock_write() appends (encrypting when TLS) to the pending output; nothing is written at
 * once. Once per loop iteration (a uv_check handle) every socket with pending output is flushed with
 * one uv_write of all its bytes; before that, hooks->on_flush lets owners (the mux glue) append what
 * they have. One write is in flight per socket; sock_write_queued() tells owners when to stop
 * producing, and hooks->on_drain when the queue fell below the low mark.
 *
 * Closing: sock_close() is graceful (flushes, sends close_notify, FIN, then closes the handles);
 * sock_abort() closes at once with a TCP reset (truncation must be visible). Both only schedule when
 * called from a hook; hooks->on_close runs last, after which the sock is freed. No public function
 * calls a hook synchronously: hooks run from the loop only.
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

/* Every hook may be NULL. The table is borrowed (usually static) and must outlive the sock. */
struct sock_hooks {
    /* Client side: TCP connected and (with TLS) the handshake finished; |status| 0 or an error
     * (UV_ECONNREFUSED, CV_ETIMEDOUT, CV_ETLS with sock_error_text(), UV_ECANCELED when the owner
     * closed it first). Called exactly once per client sock. On failure on_close follows. */
    void (*on_connect)(struct sock *s, int status, void *arg);
    /* Server side with TLS: the handshake finished (SNI and ALPN are available). */
    void (*on_handshake)(struct sock *s, void *arg);
    /* New plaintext is in sock_in(s). */
    void (*on_data)(struct sock *s, void *arg);
    /* Orderly end of the peer's direction: TCP FIN (plain) or close_notify (TLS). */
    void (*on_eof)(struct sock *s, void *arg);
    /* Fatal error (reset, TLS failure, EOF without close_notify = CV_ETLS with sock_error_text()
     * "unexpected EOF (no close_notify)", deadline = CV_ETIMEDOUT). The sock is being closed
     * (with a reset, or after flushing a TLS alert); on_close follows. Not called after
     * sock_close(). */
    void (*on_error)(struct sock *s, int err, void *arg);
    /* About to flush: the owner may sock_write() more. Only for socks marked with sock_want_flush(). */
    void (*on_flush)(struct sock *s, void *arg);
    /* The output queue fell below the low mark after having been above the high mark. */
    void (*on_drain)(struct sock *s, void *arg);
    /* The deadline set with sock_set_timeout() expired. If NULL, expiry is on_error(CV_ETIMEDOUT).
     * Before the connection is up (connect, TLS handshake) expiry always fails the sock with
     * CV_ETIMEDOUT (on_connect for clients, on_error for servers). */
    void (*on_timeout)(struct sock *s, void *arg);
    /* Last call: handles are closed; the sock is freed after it returns. */
    void (*on_close)(struct sock *s, void *arg);
};

/* Per-loop state (flush pass handles, shared 64 KiB read buffer). Returns 0 or CV_ENOMEM. */
int sock_loop_init(struct sock_loop **sl, uv_loop_t *loop);
/* Closes the loop's handles; call when no sock is left (and no sock_resolve() is pending). The
 * memory goes in their close callbacks: run the loop once more (uv_run) before uv_loop_close. */
void sock_loop_cleanup(struct sock_loop *sl);
/* Flushes |s| after every other sock in each flush pass. The connector's tunnel connections are:
 * a request written to an origin in a loop turn reaches the origin's socket before the DISPATCHED
 * announcing it (PROTOCOL.md §7.7) leaves for the edge, so a connector killed in between cannot
 * have told the edge "handed over" for a request its origin never got. */
void sock_set_flush_last(struct sock *s);
/* Sets the idle-buffer sweep interval (default 1000 ms; a socket idle for a whole interval gives
 * its buffers back). For tests, which would otherwise wait two seconds to see a release. */
void sock_loop_set_sweep_ms(struct sock_loop *sl, uint64_t ms);

struct sock_opts {
    SSL_CTX *tls_ctx;         /* NULL: plain */
    const char *servername;   /* client TLS: SNI and certificate name */
    size_t in_cap;            /* input buffer cap (default 64 KiB) */
    size_t out_high;          /* queued output above which sock_write_queued() is "full" (256 KiB) */
    int nodelay;              /* TCP_NODELAY */
    unsigned keepalive_s;     /* TCP keep-alive delay, 0 = off */
    uint64_t close_wait_ms;   /* graceful close: longest wait for output to drain and for the
                                 peer's end before closing anyway (reset if output is left), 5 s */
};

/*
 * Server side: accepts a pending connection on |server| (TCP or unix listener) into a new sock; |o|
 * may be NULL (plain, defaults). Reading and the TLS handshake (if o->tls_ctx) start at once;
 * on_handshake tells when TLS is up, a handshake failure is on_error(CV_ETLS). Returns the sock, or
 * NULL with *|err| (uv_accept's error, CV_ENOMEM); after NULL no hook is ever called.
 */
struct sock *sock_accept(struct sock_loop *sl, uv_stream_t *server, const struct sock_opts *o,
                         const struct sock_hooks *h, void *arg, int *err);
/* Client side: connects to |addr| (TCP), then TLS if o->tls_ctx (SNI and name check with
 * o->servername). Result in on_connect. Returns the sock, or NULL with *|err| (CV_ENOMEM,
 * CV_EINVAL: no servername while verifying, or uv_tcp_connect's error); after NULL no hook is
 * ever called.
 * Writes made before on_connect are queued and sent once the connection is up. */
struct sock *sock_connect(struct sock_loop *sl, const struct sockaddr *addr, const struct sock_opts *o,
                          const struct sock_hooks *h, void *arg, int *err);
/* Client side over a unix socket at |path|; UV_ENOENT, UV_ECONNREFUSED... come to on_connect. */
struct sock *sock_connect_unix(struct sock_loop *sl, const char *path, const struct sock_opts *o,
                               const struct sock_hooks *h, void *arg, int *err);

struct buf *sock_in(struct sock *s);
/* Appends |n| bytes for sending (encrypted if TLS). Borrows |p|. Returns 0 or CV_ENOMEM /
 * CV_ECLOSED (after sock_shutdown/sock_close/abort or a failure). Never refuses for size: the
 * owner checks sock_write_full() and waits for on_drain. For TLS a CV_ENOMEM also fails the sock
 * (on_error follows from the loop), since part of the data may already be encrypted. */
int sock_write(struct sock *s, const void *p, size_t n);
/* Bytes queued and not yet confirmed written by the kernel (ciphertext when TLS, plus plaintext
 * written before the handshake finished). */
size_t sock_write_queued(const struct sock *s);
/* 1 when sock_write_queued() >= out_high. */
int sock_write_full(const struct sock *s);
/* Changes out_high (0: the default). A queue already at or above the new mark is "full" at once
 * and owes on_drain when it falls to half; raising it past twice the queue owes on_drain at once,
 * from the flush pass. */
void sock_set_out_high(struct sock *s, size_t n);
/* Storage its buffers hold (capacity, as buf_held_bytes counts it). */
size_t sock_buffer_bytes(const struct sock *s);
/* Asks for an on_flush call in this loop iteration's flush pass (inside on_flush: the next). */
void sock_want_flush(struct sock *s);
/* Resumes reading (clears sock_read_stop() and a full-buffer stop); for TLS, plaintext buffered
 * inside OpenSSL is delivered from the next flush pass. */
void sock_read_start(struct sock *s);
/* Pauses reading until sock_read_start(). */
void sock_read_stop(struct sock *s);
/* Half-close our direction after the queued output: TLS close_notify then TCP FIN. Reading goes
 * on. Returns 0 (also when already asked), or CV_ECLOSED once closing or failed; later sock_write()
 * calls return CV_ECLOSED. */
int sock_shutdown(struct sock *s);
/* Graceful close: no more hooks but on_close; flushes the queued output, close_notify, FIN, then
 * discards input until the peer's end (so close() never resets unread data) or o->close_wait_ms,
 * then closes the handles (with a reset if output was left). Before the connection is up it closes
 * at once. Idempotent; inside a hook it takes effect when the hook returns. */
void sock_close(struct sock *s);
/* Immediate close with TCP RST (plain close for unix sockets); queued output is dropped. Also
 * ends a graceful close early. Inside a hook it takes effect when the hook returns. */
void sock_abort(struct sock *s);
/* (Re)arms the deadline: on_timeout after |ms|; 0 disarms. Ignored once closing. */
void sock_set_timeout(struct sock *s, uint64_t ms);
/* The send timeout (nginx's send_timeout), beside the deadline above: whenever output waits for
 * the peer to read (the kernel refused part of a write), on_timeout comes once the peer took no
 * byte for |ms|, checked every |ms|/4 (so up to a quarter late); sock_send_stalled() is 1 inside
 * that on_timeout. No clock runs while the kernel takes everything written. 0 turns it off; the
 * same |ms| again changes nothing; an owner that keeps the sock after a stall hears again
 * after another |ms| without progress. Ignored once closing. A graceful close with a send timeout
 * flushes the queued output for as long as the peer keeps taking it (a reset once it took nothing
 * for |ms|), and close_wait_ms bounds only what follows. */
void sock_set_send_timeout(struct sock *s, uint64_t ms);
int sock_send_stalled(const struct sock *s);

/* The peer's address as "ip:port" / "[ip6]:port"; "" for unix sockets. */
const char *sock_peer(const struct sock *s);
/* The IP part only, for logs and X-Forwarded-For. */
const char *sock_peer_ip(const struct sock *s);
/* Our TCP port, 0 for unix sockets or a closed sock, or a negative code. */
int sock_local_port(const struct sock *s);
struct tls *sock_tls(struct sock *s); /* NULL when plain */
/* A description of the last error (TLS reason, verification failure), "" if none. */
const char *sock_error_text(const struct sock *s);
void *sock_arg(const struct sock *s);
void sock_set_arg(struct sock *s, void *arg);
void sock_set_hooks(struct sock *s, const struct sock_hooks *h);
uv_loop_t *sock_uv_loop(const struct sock *s);
struct sock_loop *sock_get_loop(const struct sock *s);

/* Reference counting of the memory (not of the connection): an owner that keeps the pointer past
 * on_close holds a reference; the memory goes with the last release. After on_close only
 * sock_release() and the accessors may be called. */
void sock_hold(struct sock *s);
void sock_release(struct sock *s);

/*
 * Resolves |host| and |port| asynchronously (uv_getaddrinfo, any family, TCP). |cb| gets the status
 * (0 or UV_EAI_*) and the list, borrowed: it is freed when |cb| returns (copy the address to pass
 * to sock_connect()). Returns 0 (|cb| will run exactly once) or a negative code (it will not).
 */
typedef void (*sock_resolve_cb)(int status, struct addrinfo *res, void *arg);
int sock_resolve(struct sock_loop *sl, const char *host, const char *port, sock_resolve_cb cb, void *arg);

#endif
