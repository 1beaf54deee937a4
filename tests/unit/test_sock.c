/*
 * test_sock.c - sock.c on a private libuv loop over 127.0.0.1 (port 0) and unix sockets: a server
 * sock and a client sock (or a hand-driven raw TLS peer) exchange data; every hook is counted and
 * each test ends with the loop closed cleanly and no Culvert allocation left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "err.h"
#include "mem.h"
#include "sock.h"
#include "tls.h"

#include "certs_for_tests.c"

#define MIB (1024 * 1024)

static struct test_certs certs;

struct env;

struct peer {
    struct env *e;
    struct sock *s;
    const char *name;
    /* hook counts */
    int connects;
    int status;
    int handshakes;
    int datas;
    int eofs;
    int errors;
    int err;
    int closes;
    int drains;
    int timeouts;
    int stalled_timeouts; /* of them, sock_send_stalled() */
    int abort_on_timeout;
    int keep_timeouts;      /* this many on_timeouts leave the sock open */
    int pushes;
    int stalled_at[4];      /* sock_send_stalled() in the first on_timeouts */
    uint64_t timeout_at_ms; /* loop time of the last on_timeout */
    int flushes;
    int flush_seq; /* e->seq at the last on_flush */
    int connect_seq;
    int close_seq;
    char err_text[256];
    char alpn[32];
    char servername[64];
    /* input */
    size_t rx;      /* bytes consumed, checked against the pattern */
    int rx_bad;     /* a byte differed from the pattern */
    int hold;       /* leave input unconsumed (back-pressure) */
    size_t held;    /* bytes in sock_in when on_data ran while holding */
    int echo;       /* write back what arrives */
    int close_on_data;
    int abort_on_data;
    int write_after_close; /* sock_write's result after closing inside on_data */
    int close_on_eof;
    size_t reply_on_eof;   /* bytes sent after the peer's end, then close */
    size_t close_after_rx; /* graceful close once this many bytes arrived */
    size_t idle_after_rx;  /* once this many bytes arrived, check memory a little later */
    int pause_each_data;   /* sock_read_stop() in every on_data, sock_read_start() 5 ms later */
    int pauses;
    int paused;
    int eof_while_paused;
    /* output */
    size_t to_send;
    size_t sent;
    int was_full;
    int ignore_full; /* queue everything at once, past the high mark */
    int drains_at_resume;
    size_t queued_at_resume;
    int shutdown_after_send;
    int close_after_send;
    int want_flush_on_start;
    uint64_t timeout_ms;    /* armed at start */
    uint64_t send_timeout_ms; /* sock_set_send_timeout() at start */
    uint64_t start_ms;        /* loop time at start */
    uint64_t close_ms;        /* loop time of on_close */
};

struct env {
    uv_loop_t loop;
    struct sock_loop *sl;
    uv_tcp_t listener;
    uv_pipe_t plistener;
    int use_pipe;
    int listener_open;
    char pipe_path[128];
    int port;
    uv_timer_t guard;
    int guard_fired;
    uv_timer_t aux;
    int aux_used;
    SSL_CTX *sctx;
    SSL_CTX *cctx;
    struct sock_opts sopts;
    struct sock_opts copts;
    struct peer server;
    struct peer client;
    int seq;
    int tolerant;     /* allocation-failure runs: a failed call closes, the test goes on */
    int accept_failed;
    int write_failed;
    long live0;
    long idle_live; /* mem_live_count() on an idle connection */
};

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 31 + (i >> 9));
}

/* ---- hooks ----------------------------------------------------------------------------------- */

static void send_more(struct peer *p)
{
    static uint8_t chunk[64 * 1024];

    while (p->sent < p->to_send) {
        size_t n = p->to_send - p->sent;
        size_t i;

        if (sock_write_full(p->s) && !p->ignore_full) {
            p->was_full = 1;
            return;
        }
        if (n > sizeof(chunk))
            n = sizeof(chunk);
        for (i = 0; i < n; i++)
            chunk[i] = pattern(p->sent + i);
        if (p->e->tolerant) {
            if (sock_write(p->s, chunk, n) < 0) {
                p->e->write_failed++;
                sock_abort(p->s);
                return;
            }
        } else {
            assert_int_equal(sock_write(p->s, chunk, n), 0);
        }
        p->sent += n;
    }
    if (sock_write_full(p->s))
        p->was_full = 1;
    if (p->shutdown_after_send) {
        p->shutdown_after_send = 0;
        assert_int_equal(sock_shutdown(p->s), 0);
        assert_int_equal(sock_write(p->s, "x", 1), CV_ECLOSED);
    }
    if (p->close_after_send) {
        p->close_after_send = 0;
        sock_close(p->s);
    }
}

static void take(struct peer *p)
{
    struct buf *b = sock_in(p->s);
    size_t n = buf_len(b);
    size_t i;

    for (i = 0; i < n; i++) {
        if (b->pos[i] != pattern(p->rx + i))
            p->rx_bad = 1;
    }
    if (p->echo && p->e->tolerant) {
        if (sock_write(p->s, b->pos, n) < 0) {
            p->e->write_failed++;
            sock_abort(p->s);
        }
    } else if (p->echo) {
        assert_int_equal(sock_write(p->s, b->pos, n), 0);
    }
    buf_consume(b, n);
    p->rx += n;
}

static void peer_start(struct peer *p)
{
    p->start_ms = uv_now(&p->e->loop);
    if (p->timeout_ms > 0)
        sock_set_timeout(p->s, p->timeout_ms);
    if (p->send_timeout_ms > 0)
        sock_set_send_timeout(p->s, p->send_timeout_ms);
    if (p->want_flush_on_start)
        sock_want_flush(p->s);
    send_more(p);
}

static void h_connect(struct sock *s, int status, void *arg)
{
    struct peer *p = arg;

    p->connects++;
    p->status = status;
    p->connect_seq = ++p->e->seq;
    if (status < 0) {
        snprintf(p->err_text, sizeof(p->err_text), "%s", sock_error_text(s));
        return;
    }
    if (sock_tls(s) != NULL)
        tls_alpn(sock_tls(s), p->alpn, sizeof(p->alpn));
    peer_start(p);
}

static void h_handshake(struct sock *s, void *arg)
{
    struct peer *p = arg;
    const char *sn = tls_servername(sock_tls(s));

    p->handshakes++;
    tls_alpn(sock_tls(s), p->alpn, sizeof(p->alpn));
    snprintf(p->servername, sizeof(p->servername), "%s", sn != NULL ? sn : "");
    peer_start(p);
}

static void on_idle_check(uv_timer_t *t)
{
    struct env *e = t->data;

    e->idle_live = mem_live_count();
    sock_close(e->client.s);
}

static void on_unpause(uv_timer_t *t)
{
    struct env *e = t->data;

    e->server.paused = 0;
    if (e->server.s != NULL)
        sock_read_start(e->server.s);
}

static void h_data(struct sock *s, void *arg)
{
    struct peer *p = arg;

    p->datas++;
    if (p->close_on_data || p->abort_on_data) {
        if (p->close_on_data)
            sock_close(s);
        else
            sock_abort(s);
        p->write_after_close = sock_write(s, "late", 4);
        sock_close(s); /* idempotent; never turns an abort back into a graceful close */
        return;
    }
    if (p->hold) {
        p->held = buf_len(sock_in(s));
        return;
    }
    take(p);
    if (p->close_after_rx > 0 && p->rx >= p->close_after_rx)
        sock_close(s);
    if (p->idle_after_rx > 0 && p->rx >= p->idle_after_rx)
        uv_timer_start(&p->e->aux, on_idle_check, 210, 0); /* two sweeps: idle for one whole */
    if (p->pause_each_data) {
        p->pauses++;
        p->paused = 1;
        sock_read_stop(s);
        uv_timer_start(&p->e->aux, on_unpause, 5, 0);
    }
}

static void h_eof(struct sock *s, void *arg)
{
    struct peer *p = arg;

    p->eofs++;
    if (p->paused)
        p->eof_while_paused++;
    if (p->reply_on_eof > 0) {
        p->to_send = p->reply_on_eof;
        p->close_after_send = 1;
        send_more(p);
        return;
    }
    if (p->close_on_eof)
        sock_close(s);
}

static void h_error(struct sock *s, int err, void *arg)
{
    struct peer *p = arg;

    p->errors++;
    p->err = err;
    snprintf(p->err_text, sizeof(p->err_text), "%s", sock_error_text(s));
    sock_close(s); /* ignored: the sock is already closing */
}

static void h_drain(struct sock *s, void *arg)
{
    struct peer *p = arg;

    (void)s;
    p->drains++;
    send_more(p);
}

static void h_timeout(struct sock *s, void *arg)
{
    struct peer *p = arg;

    p->timeouts++;
    p->timeout_at_ms = uv_now(&p->e->loop);
    if (sock_send_stalled(s))
        p->stalled_timeouts++;
    if (p->timeouts <= 4)
        p->stalled_at[p->timeouts - 1] = sock_send_stalled(s);
    if (p->keep_timeouts > 0) {
        p->keep_timeouts--;
        return;
    }
    if (p->abort_on_timeout)
        sock_abort(s);
    else
        sock_close(s);
}

static void h_flush(struct sock *s, void *arg)
{
    struct peer *p = arg;

    p->flushes++;
    p->flush_seq = ++p->e->seq;
    p->to_send += 1000;
    (void)s;
    send_more(p);
}

static void h_close(struct sock *s, void *arg)
{
    struct peer *p = arg;

    assert_ptr_equal(s, p->s);
    p->closes++;
    p->close_seq = ++p->e->seq;
    p->close_ms = uv_now(&p->e->loop);
    p->s = NULL;
}

static const struct sock_hooks hooks = {
    .on_connect = h_connect,
    .on_handshake = h_handshake,
    .on_data = h_data,
    .on_eof = h_eof,
    .on_error = h_error,
    .on_flush = h_flush,
    .on_drain = h_drain,
    .on_timeout = h_timeout,
    .on_close = h_close,
};

/* Same, with no on_timeout: expiry becomes on_error(CV_ETIMEDOUT). */
static const struct sock_hooks hooks_no_timeout = {
    .on_connect = h_connect,
    .on_handshake = h_handshake,
    .on_data = h_data,
    .on_eof = h_eof,
    .on_error = h_error,
    .on_drain = h_drain,
    .on_close = h_close,
};

/* ---- environment ----------------------------------------------------------------------------- */

static void on_listener_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_listener(struct env *e)
{
    if (!e->listener_open)
        return;
    e->listener_open = 0;
    if (e->use_pipe)
        uv_close((uv_handle_t *)&e->plistener, on_listener_closed);
    else
        uv_close((uv_handle_t *)&e->listener, on_listener_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct env *e = server->data;
    int err = 0;

    assert_int_equal(status, 0);
    e->server.s = sock_accept(e->sl, server, &e->sopts, &hooks, &e->server, &err);
    close_listener(e); /* one connection per test */
    if (e->server.s == NULL && e->tolerant) {
        e->accept_failed = 1;
        return;
    }
    assert_non_null(e->server.s);
    if (e->sopts.tls_ctx == NULL)
        peer_start(&e->server);
}

static void on_guard(uv_timer_t *t)
{
    struct env *e = t->data;

    e->guard_fired = 1;
    uv_stop(&e->loop);
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    struct tls_client_opts co = {.ca_file = certs.ca_file, .alpn = "culvert/1"};
    char err[512];
    int len = (int)sizeof(ss);

    assert_non_null(e);
    e->sctx = tls_ctx_server_new(certs.chain_file, certs.key_file, TLS_MIN_1_2, "culvert/1", err,
                                 sizeof(err));
    assert_non_null(e->sctx);
    e->cctx = tls_ctx_client_new(&co, err, sizeof(err));
    assert_non_null(e->cctx);
    e->live0 = mem_live_count(); /* the contexts live until the teardown */
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(sock_loop_init(&e->sl, &e->loop), 0);
    assert_int_equal(uv_tcp_init(&e->loop, &e->listener), 0);
    e->listener.data = e;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_bind(&e->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&e->listener, 8, on_connection), 0);
    assert_int_equal(uv_tcp_getsockname(&e->listener, (struct sockaddr *)&ss, &len), 0);
    e->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    e->listener_open = 1;
    assert_int_equal(uv_timer_init(&e->loop, &e->guard), 0);
    e->guard.data = e;
    assert_int_equal(uv_timer_init(&e->loop, &e->aux), 0);
    e->aux.data = e;
    e->server.e = e;
    e->server.name = "server";
    e->client.e = e;
    e->client.name = "client";
    e->sopts.nodelay = 1;
    e->copts.nodelay = 1;
    e->copts.keepalive_s = 30;
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;

    SSL_CTX_free(e->sctx);
    SSL_CTX_free(e->cctx);
    if (e->pipe_path[0] != '\0')
        unlink(e->pipe_path);
    free(e);
    return 0;
}

/* Runs the loop until nothing is left (the guard timer does not keep it alive). */
static void run(struct env *e)
{
    uv_timer_start(&e->guard, on_guard, 15000, 0);
    uv_unref((uv_handle_t *)&e->guard);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&e->guard);
    assert_false(e->guard_fired);
}

/* Ends a test: every sock closed, loop handles closed, the loop closes, nothing leaked. */
static void finish(struct env *e)
{
    assert_null(e->server.s);
    assert_null(e->client.s);
    close_listener(e);
    uv_close((uv_handle_t *)&e->guard, NULL);
    uv_close((uv_handle_t *)&e->aux, NULL);
    sock_loop_cleanup(e->sl);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    assert_int_equal(mem_live_count(), e->live0);
}

static void tls_on(struct env *e)
{
    e->sopts.tls_ctx = e->sctx;
    e->copts.tls_ctx = e->cctx;
    e->copts.servername = "localhost";
}

/*
 * Loopback autotuning here lets a receive buffer grow to tcp_rmem's max (32 MiB) even when the
 * application does not read, which would hide back-pressure. Accepted sockets inherit the
 * listener's fixed SO_RCVBUF, so the server side gets a small, fixed one.
 */
static void small_server_rcvbuf(struct env *e)
{
    int v = 64 * 1024;

    assert_int_equal(uv_recv_buffer_size((uv_handle_t *)&e->listener, &v), 0);
}

static void connect_client(struct env *e)
{
    struct sockaddr_in addr;
    int err = 0;

    assert_int_equal(uv_ip4_addr("127.0.0.1", e->port, &addr), 0);
    e->client.s = sock_connect(e->sl, (const struct sockaddr *)&addr, &e->copts, &hooks,
                               &e->client, &err);
    assert_non_null(e->client.s);
}

/* Both sides closed exactly once, the client's on_connect before its on_close. */
static void assert_closed_once(struct env *e)
{
    assert_int_equal(e->server.closes, 1);
    assert_int_equal(e->client.closes, 1);
    assert_int_equal(e->client.connects, 1);
    assert_true(e->client.connect_seq < e->client.close_seq);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void echo_case(struct env *e, size_t n)
{
    e->server.echo = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = n;
    e->client.close_after_rx = n;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->client.status, 0);
    assert_int_equal(e->client.rx, n);
    assert_int_equal(e->server.rx, n);
    assert_false(e->client.rx_bad);
    assert_false(e->server.rx_bad);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.errors, 0);
    assert_int_equal(e->client.errors, 0);
    assert_closed_once(e);
}

static void test_plain_echo(void **state)
{
    struct env *e = *state;

    echo_case(e, 300000);
    assert_int_equal(e->server.handshakes, 0);
    finish(e);
}

static void test_tls_echo_with_sni_and_alpn(void **state)
{
    struct env *e = *state;

    tls_on(e);
    echo_case(e, 300000);
    assert_int_equal(e->server.handshakes, 1);
    assert_string_equal(e->server.alpn, "culvert/1");
    assert_string_equal(e->client.alpn, "culvert/1");
    assert_string_equal(e->server.servername, "localhost");
    finish(e);
}

static void idle_case(struct env *e)
{
    e->server.echo = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = 200000;
    e->client.idle_after_rx = 200000;
    sock_loop_set_sweep_ms(e->sl, 100);
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->client.rx, 200000);
    /* The loop state (2) and the two socks, and no buffer: in, pending, inflight all released. */
    assert_int_equal(e->idle_live, e->live0 + 4);
    assert_closed_once(e);
}

static void test_plain_idle_connection_holds_no_buffers(void **state)
{
    struct env *e = *state;

    idle_case(e);
    finish(e);
}

static void test_tls_idle_connection_holds_no_buffers(void **state)
{
    struct env *e = *state;

    tls_on(e);
    idle_case(e);
    finish(e);
}

static void on_accept_check_addresses(uv_stream_t *server, int status)
{
    struct env *e = server->data;
    char want[32];

    on_connection(server, status);
    assert_string_equal(sock_peer_ip(e->server.s), "127.0.0.1");
    assert_true(strncmp(sock_peer(e->server.s), "127.0.0.1:", 10) == 0);
    assert_int_equal(sock_local_port(e->server.s), e->port);
    snprintf(want, sizeof(want), "127.0.0.1:%d", e->port);
    assert_string_equal(sock_peer(e->client.s), want);
    assert_null(sock_tls(e->server.s));
    assert_ptr_equal(sock_arg(e->server.s), &e->server);
    assert_ptr_equal(sock_uv_loop(e->server.s), &e->loop);
    assert_ptr_equal(sock_get_loop(e->server.s), e->sl);
    assert_string_equal(sock_error_text(e->server.s), "");
}

static void test_peer_addresses_are_formatted(void **state)
{
    struct env *e = *state;

    e->listener.connection_cb = on_accept_check_addresses;
    echo_case(e, 10);
    finish(e);
}

static void on_resume(uv_timer_t *t)
{
    struct env *e = t->data;
    struct peer *srv = &e->server;

    /* The client is stuck above its high mark while the server holds a full input buffer. */
    e->client.drains_at_resume = e->client.drains;
    e->client.queued_at_resume = sock_write_queued(e->client.s);
    assert_true(e->client.was_full);
    /* Bytes the kernel took are no longer queued (direct writes): the writer is held above the
     * drain mark (half of out_high), so no on_drain has come yet. */
    assert_true(e->client.queued_at_resume > 128 * 1024);
    assert_int_equal(srv->held, 64 * 1024);
    srv->hold = 0;
    take(srv); /* consumed outside on_data: sock_read_start() resumes */
    sock_read_start(srv->s);
}

/* Raising out_high above twice the queue owes on_drain at once, with the reader still stalled; the
 * writer then queues up to the new mark. Then the reader resumes as in on_resume. */
static void on_raise_checked(uv_timer_t *t)
{
    struct env *e = t->data;

    assert_true(e->client.drains > e->client.drains_at_resume);
    assert_int_equal(e->server.held, 64 * 1024); /* nothing was read meanwhile */
    assert_true(sock_write_queued(e->client.s) > e->client.queued_at_resume);
    on_resume(t);
}

static void on_raise(uv_timer_t *t)
{
    struct env *e = t->data;
    size_t queued = sock_write_queued(e->client.s);

    assert_true(e->client.was_full);
    assert_true(queued > 128 * 1024); /* above the drain mark: no on_drain owed yet */
    e->client.drains_at_resume = e->client.drains;
    e->client.queued_at_resume = queued;
    sock_set_out_high(e->client.s, 4 * queued);
    assert_false(sock_write_full(e->client.s));
    uv_timer_start(&e->aux, on_raise_checked, 100, 0);
}

static void backpressure_case_raise(struct env *e, int raise)
{
    const size_t total = 8 * MIB;

    small_server_rcvbuf(e);
    e->sopts.in_cap = 64 * 1024;
    e->server.hold = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = total;
    e->client.close_after_send = 1;
    connect_client(e);
    uv_timer_start(&e->aux, raise ? on_raise : on_resume, 300, 0);
    run(e);
    assert_int_equal(e->client.sent, total);
    assert_int_equal(e->server.rx, total);
    assert_false(e->server.rx_bad);
    assert_true(e->client.drains > e->client.drains_at_resume); /* on_drain after the resume */
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
}

static void backpressure_case(struct env *e)
{
    backpressure_case_raise(e, 0);
}

static void test_raising_out_high_owes_on_drain(void **state)
{
    struct env *e = *state;

    backpressure_case_raise(e, 1);
    finish(e);
}

static void test_plain_backpressure_8mib(void **state)
{
    struct env *e = *state;

    backpressure_case(e);
    finish(e);
}

static void test_tls_backpressure_8mib(void **state)
{
    struct env *e = *state;

    tls_on(e);
    backpressure_case(e);
    finish(e);
}

static void pause_case(struct env *e)
{
    e->server.pause_each_data = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = MIB;
    e->client.close_after_send = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.rx, MIB);
    assert_false(e->server.rx_bad);
    assert_true(e->server.pauses > 1);
    assert_int_equal(e->server.eof_while_paused, 0);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
}

static void test_plain_read_stop_and_start_lose_nothing(void **state)
{
    struct env *e = *state;

    pause_case(e);
    finish(e);
}

/* Records left inside OpenSSL at the pause must be delivered on resume, with no new input. */
static void test_tls_read_stop_and_start_lose_nothing(void **state)
{
    struct env *e = *state;

    tls_on(e);
    pause_case(e);
    finish(e);
}

static void test_tls_handshake_deadline_is_reported_to_on_connect(void **state)
{
    struct env *e = *state;

    /* A plain server that never answers the ClientHello. */
    e->copts.tls_ctx = e->cctx;
    e->copts.servername = "localhost";
    e->client.timeout_ms = 0;
    e->server.hold = 1;
    connect_client(e);
    sock_set_timeout(e->client.s, 80);
    run(e);
    assert_int_equal(e->client.connects, 1);
    assert_int_equal(e->client.status, CV_ETIMEDOUT);
    assert_string_equal(e->client.err_text, "TLS handshake timed out");
    assert_int_equal(e->client.timeouts, 0);
    assert_int_equal(e->server.errors, 1); /* reset */
    assert_closed_once(e);
    finish(e);
}

static void half_close_case(struct env *e)
{
    e->client.to_send = 5000;
    e->client.shutdown_after_send = 1;
    e->client.close_on_eof = 1;
    e->server.reply_on_eof = 70000;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.rx, 5000);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->client.rx, 70000);
    assert_false(e->client.rx_bad);
    assert_int_equal(e->client.eofs, 1);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
}

static void test_plain_half_close_peer_can_still_answer(void **state)
{
    struct env *e = *state;

    half_close_case(e);
    finish(e);
}

static void test_tls_half_close_peer_can_still_answer(void **state)
{
    struct env *e = *state;

    tls_on(e);
    half_close_case(e);
    finish(e);
}

/*
 * A TLS client driven by hand over a raw uv_tcp_t: after the handshake it sends |payload| pattern
 * bytes, optionally close_notify, then a TCP FIN; it reads until the server's end.
 */
struct raw {
    struct env *e;
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct tls tls;
    uint8_t rbuf[65536];
    size_t payload;
    int close_notify;
    int done;
    int closed;
};

struct raw_write {
    uv_write_t req;
    uint8_t data[];
};

static void raw_write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void raw_flush(struct raw *r)
{
    const uint8_t *p;
    size_t n = tls_pending_out(&r->tls, &p);
    struct raw_write *w;
    uv_buf_t b;

    if (n == 0)
        return;
    w = malloc(sizeof(*w) + n);
    assert_non_null(w);
    memcpy(w->data, p, n);
    tls_consume_out(&r->tls, n);
    b = uv_buf_init((char *)w->data, (unsigned)n);
    assert_int_equal(uv_write(&w->req, (uv_stream_t *)&r->tcp, &b, 1, raw_write_done), 0);
}

static void raw_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct raw *r = h->data;

    (void)suggested;
    *b = uv_buf_init((char *)r->rbuf, sizeof(r->rbuf));
}

static void raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;

    r->closed = 1;
}

static void raw_shutdown_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void raw_send_all(struct raw *r)
{
    uint8_t chunk[16384];
    size_t sent = 0;

    while (sent < r->payload) {
        size_t n = r->payload - sent;
        size_t i;

        if (n > sizeof(chunk))
            n = sizeof(chunk);
        for (i = 0; i < n; i++)
            chunk[i] = pattern(sent + i);
        assert_int_equal(tls_write(&r->tls, chunk, n), 0);
        raw_flush(r);
        sent += n;
    }
    if (r->close_notify) {
        assert_int_equal(tls_shutdown(&r->tls), 0);
        raw_flush(r);
    }
    assert_int_equal(uv_shutdown(&r->sreq, (uv_stream_t *)&r->tcp, raw_shutdown_done), 0);
}

static void raw_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = h->data;
    uint8_t plain[1024];

    (void)b;
    if (n < 0) {
        uv_close((uv_handle_t *)&r->tcp, raw_closed);
        return;
    }
    assert_int_equal(tls_feed(&r->tls, r->rbuf, (size_t)n), 0);
    if (!r->done) {
        int rv = tls_handshake(&r->tls);

        raw_flush(r);
        assert_true(rv >= 0);
        if (rv == 0)
            return;
        r->done = 1;
        raw_send_all(r);
    }
    while (tls_read(&r->tls, plain, sizeof(plain)) > 0)
        ;
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct raw *r = req->data;

    assert_int_equal(status, 0);
    assert_int_equal(tls_init_client(&r->tls, r->e->cctx, "localhost"), 0);
    assert_int_equal(tls_handshake(&r->tls), 0);
    raw_flush(r);
    assert_int_equal(uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read), 0);
}

/* Runs a raw TLS client against a TLS server sock. */
static void raw_case(struct env *e, size_t payload, int close_notify)
{
    struct sockaddr_in addr;
    struct raw *r = calloc(1, sizeof(*r));

    assert_non_null(r);
    tls_on(e);
    r->e = e;
    r->payload = payload;
    r->close_notify = close_notify;
    assert_int_equal(uv_tcp_init(&e->loop, &r->tcp), 0);
    r->tcp.data = r;
    r->creq.data = r;
    assert_int_equal(uv_ip4_addr("127.0.0.1", e->port, &addr), 0);
    assert_int_equal(uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&addr,
                                    raw_connected),
                     0);
    run(e);
    assert_true(r->closed);
    assert_int_equal(e->server.handshakes, 1);
    assert_int_equal(e->server.rx, payload); /* everything before the end is delivered */
    assert_false(e->server.rx_bad);
    assert_int_equal(e->server.closes, 1);
    tls_cleanup(&r->tls);
    free(r);
}

static void test_tls_truncation_is_an_error_not_eof(void **state)
{
    struct env *e = *state;

    raw_case(e, 7, 0);
    assert_int_equal(e->server.eofs, 0);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, CV_ETLS);
    assert_string_equal(e->server.err_text, "unexpected EOF (no close_notify)");
    finish(e);
}

/* The TCP end arrives while decrypted input waits for a paused owner: the data comes first, then
 * the verdict, and it depends only on whether close_notify was in the stream. */
static void test_tls_truncation_after_paused_backlog_is_reported_after_the_data(void **state)
{
    struct env *e = *state;

    e->sopts.in_cap = 4096; /* each on_data leaves records inside OpenSSL */
    e->server.pause_each_data = 1;
    raw_case(e, 300000, 0);
    assert_true(e->server.pauses > 1);
    assert_int_equal(e->server.eofs, 0);
    assert_int_equal(e->server.errors, 1);
    assert_string_equal(e->server.err_text, "unexpected EOF (no close_notify)");
    finish(e);
}

static void test_tls_close_notify_after_paused_backlog_is_a_clean_end(void **state)
{
    struct env *e = *state;

    e->sopts.in_cap = 4096;
    e->server.pause_each_data = 1;
    e->server.close_on_eof = 1;
    raw_case(e, 300000, 1);
    assert_true(e->server.pauses > 1);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.eof_while_paused, 0);
    assert_int_equal(e->server.errors, 0);
    finish(e);
}

static void graceful_close_case(struct env *e)
{
    e->server.to_send = 3 * MIB;
    e->server.close_after_send = 1;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->client.rx, 3 * MIB);
    assert_false(e->client.rx_bad);
    assert_int_equal(e->client.eofs, 1);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
}

static void test_plain_graceful_close_delivers_all_queued_bytes(void **state)
{
    struct env *e = *state;

    graceful_close_case(e);
    finish(e);
}

static void test_tls_graceful_close_delivers_all_queued_bytes(void **state)
{
    struct env *e = *state;

    tls_on(e);
    graceful_close_case(e);
    finish(e);
}

static void on_late_reader(uv_timer_t *t)
{
    struct env *e = t->data;

    e->server.hold = 0;
    take(&e->server);
    sock_read_start(e->server.s);
}

static void test_graceful_close_gives_up_with_reset_when_peer_never_reads(void **state)
{
    struct env *e = *state;

    small_server_rcvbuf(e);
    e->copts.close_wait_ms = 100;
    e->sopts.in_cap = 16 * 1024;
    e->client.to_send = 16 * MIB;
    e->client.ignore_full = 1;
    e->client.close_after_send = 1;
    e->server.hold = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_late_reader, 600, 0);
    run(e);
    /* The client could not flush everything in time: the server sees truncation as a reset. */
    assert_int_equal(e->client.sent, 16 * MIB);
    assert_true(e->server.rx < 16 * MIB);
    assert_false(e->server.rx_bad);
    assert_int_equal(e->server.eofs, 0);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, UV_ECONNRESET);
    assert_int_equal(e->client.errors, 0); /* the client had let go: no hook but on_close */
    assert_closed_once(e);
    finish(e);
}

/* The send-timeout cases: a client that queues |n| bytes at once, with a send timeout of |ms|, to a
 * server with a small fixed receive buffer. */
static void send_timeout_case(struct env *e, size_t n, uint64_t ms)
{
    small_server_rcvbuf(e);
    e->sopts.in_cap = 16 * 1024;
    e->client.to_send = n;
    e->client.ignore_full = 1;
    e->client.send_timeout_ms = ms;
}

/* A server that reads nothing (16 MiB do not fit in the buffers on the way). */
static void stalled_reader(struct env *e, uint64_t ms)
{
    send_timeout_case(e, 16 * MIB, ms);
    e->server.hold = 1;
}

/* A server that reads 16 KiB, then nothing for 5 ms: 4 MiB take at least 256 pauses. */
static void slow_reader(struct env *e, uint64_t ms)
{
    send_timeout_case(e, 4 * MIB, ms);
    e->server.pause_each_data = 1;
}

/* A peer that stops reading: once the kernel refuses more, the send timeout runs out. */
static void test_send_timeout_fires_when_the_peer_stops_reading(void **state)
{
    struct env *e = *state;

    stalled_reader(e, 100);
    e->copts.close_wait_ms = 50;
    connect_client(e);
    uv_timer_start(&e->aux, on_late_reader, 400, 0); /* reads again, to see the client's end */
    run(e);
    assert_int_equal(e->client.timeouts, 1);
    assert_int_equal(e->client.stalled_timeouts, 1);
    assert_int_equal(e->client.errors, 0);
    /* The limit, plus at most a quarter of it, plus room for a busy machine. */
    assert_true(e->client.timeout_at_ms - e->client.start_ms >= 100);
    assert_true(e->client.timeout_at_ms - e->client.start_ms < 400);
    assert_true(e->server.rx < 16 * MIB);
    assert_closed_once(e);
    finish(e);
}

/* What the edge does between and during requests: deadlines set, moved and disarmed, the same send
 * timeout set again. */
static void on_push_deadline(uv_timer_t *t)
{
    struct env *e = t->data;

    if (e->client.s != NULL) {
        switch (e->client.pushes++ % 3) {
        case 0:
            sock_set_timeout(e->client.s, 10000);
            break;
        case 1:
            sock_set_timeout(e->client.s, 0);
            break;
        default:
            sock_set_send_timeout(e->client.s, e->client.send_timeout_ms);
            break;
        }
    } else if (e->server.s != NULL && e->server.hold) {
        uv_timer_stop(t);
        on_late_reader(t); /* to see the client's reset */
    }
}

/* The send timeout runs beside the deadline: an owner that keeps moving or disarming its deadline
 * and setting the same send timeout again (a visitor sending a new request now and then) does not
 * reset the send clock of a peer that reads nothing. */
static void test_send_timeout_is_not_reset_by_the_deadline(void **state)
{
    struct env *e = *state;

    stalled_reader(e, 100);
    e->client.abort_on_timeout = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_push_deadline, 30, 30);
    run(e);
    assert_int_equal(e->client.timeouts, 1);
    assert_int_equal(e->client.stalled_timeouts, 1);
    assert_true(e->client.timeout_at_ms - e->client.start_ms < 400);
    assert_closed_once(e);
    finish(e);
}

/* An owner that keeps the sock after on_timeout: a deadline that fired first leaves the send clock
 * running, and a stall is told again after another limit. */
static void test_send_timeout_goes_on_for_an_owner_that_keeps_the_sock(void **state)
{
    struct env *e = *state;

    stalled_reader(e, 100);
    e->client.timeout_ms = 30;
    e->client.keep_timeouts = 2;
    e->client.abort_on_timeout = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_late_reader, 800, 0); /* to see the client's reset */
    run(e);
    assert_int_equal(e->client.timeouts, 3);
    assert_int_equal(e->client.stalled_at[0], 0);
    assert_int_equal(e->client.stalled_at[1], 1);
    assert_int_equal(e->client.stalled_at[2], 1);
    /* Two limits and their quarters, plus room for a busy machine. */
    assert_true(e->client.timeout_at_ms - e->client.start_ms >= 200);
    assert_true(e->client.timeout_at_ms - e->client.start_ms < 700);
    assert_closed_once(e);
    finish(e);
}

/* ... and the deadline runs beside the send timeout, told apart by sock_send_stalled(). */
static void test_deadline_fires_while_output_waits(void **state)
{
    struct env *e = *state;

    stalled_reader(e, 10000);
    e->client.timeout_ms = 80;
    e->client.abort_on_timeout = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_late_reader, 300, 0); /* to see the client's reset */
    run(e);
    assert_int_equal(e->client.timeouts, 1);
    assert_int_equal(e->client.stalled_timeouts, 0);
    assert_true(e->client.timeout_at_ms - e->client.start_ms >= 80);
    assert_true(e->client.timeout_at_ms - e->client.start_ms < 1000);
    assert_closed_once(e);
    finish(e);
}

/* One write request of 4 MiB that a slow reader takes over far longer than the limit: each byte
 * taken restarts the clock, even inside the request. */
static void test_send_timeout_restarts_with_each_byte_the_peer_takes(void **state)
{
    struct env *e = *state;

    /* The receiver opens its window in steps (up to a few tens of ms apart here): the limit is
     * well above one step and well below the whole transfer. */
    slow_reader(e, 150);
    e->server.close_after_rx = 4 * MIB;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.rx, 4 * MIB);
    assert_false(e->server.rx_bad);
    assert_int_equal(e->client.timeouts, 0);
    /* Not vacuous: the transfer took several times the limit. */
    assert_true(e->client.close_ms - e->client.start_ms >= 3 * 150);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
    finish(e);
}

/* Closing under a send timeout: the output still queued is flushed for as long as the peer keeps
 * taking it, well past the close wait (which bounds only the wait for the peer's end). */
static void test_closing_under_a_send_timeout_flushes_while_the_peer_reads(void **state)
{
    struct env *e = *state;

    slow_reader(e, 150);
    e->server.close_on_eof = 1;
    e->copts.close_wait_ms = 100;
    e->client.close_after_send = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.rx, 4 * MIB);
    assert_false(e->server.rx_bad);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.errors, 0);
    assert_true(e->client.close_ms - e->client.start_ms >= 3 * 100);
    assert_closed_once(e);
    finish(e);
}

/* ... and a peer that takes nothing is reset after the send timeout, not after the close wait. */
static void test_closing_under_a_send_timeout_resets_a_stalled_peer(void **state)
{
    struct env *e = *state;

    stalled_reader(e, 100);
    e->copts.close_wait_ms = 10000;
    e->client.close_after_send = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_late_reader, 1500, 0); /* reads again, to see the reset */
    run(e);
    assert_true(e->client.close_ms - e->client.start_ms >= 100);
    assert_true(e->client.close_ms - e->client.start_ms < 1500);
    assert_true(e->server.rx < 16 * MIB);
    assert_false(e->server.rx_bad);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, UV_ECONNRESET);
    assert_int_equal(e->client.errors, 0);
    assert_closed_once(e);
    finish(e);
}

static void on_close_client(uv_timer_t *t)
{
    struct env *e = t->data;

    sock_close(e->client.s);
}

/* Output the kernel took whole leaves no clock running, however long the peer waits to read. */
static void test_send_timeout_idle_while_the_kernel_took_everything(void **state)
{
    struct env *e = *state;

    e->client.to_send = 1000;
    e->client.send_timeout_ms = 20;
    e->server.hold = 1;
    e->server.close_on_eof = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_close_client, 200, 0);
    run(e);
    assert_int_equal(e->client.timeouts, 0);
    assert_int_equal(e->server.eofs, 1);
    assert_int_equal(e->server.errors + e->client.errors, 0);
    assert_closed_once(e);
    finish(e);
}

static void on_abort_timer(uv_timer_t *t)
{
    struct env *e = t->data;

    /* Outside any hook: the abort happens at once. */
    assert_int_equal(sock_write(e->server.s, "bye", 3), 0);
    sock_abort(e->server.s);
    assert_int_equal(sock_write(e->server.s, "more", 4), CV_ECLOSED);
    assert_int_equal(sock_shutdown(e->server.s), CV_ECLOSED);
}

static void on_accept_abort(uv_stream_t *server, int status)
{
    struct env *e = server->data;

    on_connection(server, status);
    /* Later, so that the client's connect has completed (a reset before it would be a connect
     * error instead). */
    uv_timer_start(&e->aux, on_abort_timer, 50, 0);
}

static void test_abort_gives_the_peer_a_reset(void **state)
{
    struct env *e = *state;

    e->listener.connection_cb = on_accept_abort;
    e->client.hold = 1; /* keep reading until the reset shows */
    connect_client(e);
    run(e);
    assert_int_equal(e->client.status, 0);
    assert_int_equal(e->client.errors, 1);
    assert_int_equal(e->client.err, UV_ECONNRESET);
    assert_int_equal(e->client.eofs, 0);
    assert_int_equal(e->server.errors, 0);
    assert_closed_once(e);
    finish(e);
}

static void test_connect_refused_reports_then_closes(void **state)
{
    struct env *e = *state;
    struct sockaddr_in addr;
    int err = 0;

    close_listener(e);
    uv_run(&e->loop, UV_RUN_NOWAIT); /* the port is closed now */
    assert_int_equal(uv_ip4_addr("127.0.0.1", e->port, &addr), 0);
    e->client.s =
        sock_connect(e->sl, (const struct sockaddr *)&addr, &e->copts, &hooks, &e->client, &err);
    assert_non_null(e->client.s);
    run(e);
    assert_int_equal(e->client.connects, 1);
    assert_int_equal(e->client.status, UV_ECONNREFUSED);
    assert_non_null(strstr(e->client.err_text, "connect: "));
    assert_int_equal(e->client.errors, 0);
    assert_int_equal(e->client.closes, 1);
    assert_true(e->client.connect_seq < e->client.close_seq);
    finish(e);
}

static void test_close_while_connecting_reports_cancel_once(void **state)
{
    struct env *e = *state;

    e->server.close_on_eof = 1;
    connect_client(e);
    sock_close(e->client.s);
    assert_int_equal(sock_write(e->client.s, "x", 1), CV_ECLOSED);
    run(e);
    assert_int_equal(e->client.connects, 1);
    assert_int_equal(e->client.status, UV_ECANCELED);
    assert_int_equal(e->client.closes, 1);
    if (e->server.s != NULL || e->server.closes > 0)
        assert_int_equal(e->server.closes, 1);
    finish(e);
}

static void test_timeout_calls_on_timeout(void **state)
{
    struct env *e = *state;

    e->client.timeout_ms = 50;
    e->server.close_on_eof = 1;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->client.timeouts, 1);
    assert_int_equal(e->client.errors, 0);
    assert_int_equal(e->server.eofs, 1);
    assert_closed_once(e);
    finish(e);
}

static void on_accept_no_timeout_hook(uv_stream_t *server, int status)
{
    struct env *e = server->data;

    on_connection(server, status);
    sock_set_hooks(e->server.s, &hooks_no_timeout);
    sock_set_timeout(e->server.s, 40);
}

static void test_timeout_without_hook_is_an_error(void **state)
{
    struct env *e = *state;

    e->listener.connection_cb = on_accept_no_timeout_hook;
    e->client.hold = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, CV_ETIMEDOUT);
    assert_int_equal(e->server.timeouts, 0);
    assert_int_equal(e->client.errors, 1); /* the server reset the connection */
    assert_closed_once(e);
    finish(e);
}

static void on_timer_write(uv_timer_t *t);

static void test_timeout_can_be_disarmed(void **state)
{
    struct env *e = *state;

    e->server.close_after_rx = 777;
    connect_client(e);
    sock_set_timeout(e->client.s, 30);
    sock_set_timeout(e->client.s, 0);
    uv_timer_start(&e->aux, on_timer_write, 100, 0); /* well after 30 ms */
    run(e);
    assert_int_equal(e->client.timeouts, 0);
    assert_int_equal(e->client.errors, 0);
    assert_int_equal(e->server.rx, 777);
    assert_closed_once(e);
    finish(e);
}

static unsigned timeouts_seen_at_aux;

static void on_aux_count_timeouts(uv_timer_t *t)
{
    struct env *e = t->data;

    timeouts_seen_at_aux = e->client.timeouts + 1000; /* +1000: the check ran */
}

/* Deadlines move lazily (the timer stays armed at the earliest one): a deadline moved later must
 * not fire at the earlier time, and must still fire, once, at the later one. */
static void test_timeout_moved_later_fires_at_the_later_deadline(void **state)
{
    struct env *e = *state;
    uint64_t t0;

    e->server.close_on_eof = 1;
    connect_client(e);
    t0 = uv_now(&e->loop);
    sock_set_timeout(e->client.s, 30);
    sock_set_timeout(e->client.s, 0);
    sock_set_timeout(e->client.s, 150);
    timeouts_seen_at_aux = 0;
    uv_timer_start(&e->aux, on_aux_count_timeouts, 80, 0); /* after 30, before 150 */
    run(e);
    assert_int_equal(timeouts_seen_at_aux, 1000);
    assert_int_equal(e->client.timeouts, 1);
    assert_true(uv_now(&e->loop) - t0 >= 150);
    assert_closed_once(e);
    finish(e);
}

/* ...and a deadline moved earlier fires at the earlier time. */
static void test_timeout_moved_earlier_fires_at_the_earlier_deadline(void **state)
{
    struct env *e = *state;
    uint64_t t0;

    e->server.close_on_eof = 1;
    connect_client(e);
    t0 = uv_now(&e->loop);
    sock_set_timeout(e->client.s, 5000);
    sock_set_timeout(e->client.s, 40);
    run(e);
    assert_int_equal(e->client.timeouts, 1);
    assert_true(uv_now(&e->loop) - t0 < 2000);
    assert_closed_once(e);
    finish(e);
}

static void close_in_data_case(struct env *e, int abort)
{
    e->server.close_on_data = !abort;
    e->server.abort_on_data = abort;
    e->client.to_send = 2 * MIB;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->server.datas, 1);
    assert_int_equal(e->server.write_after_close, CV_ECLOSED);
    assert_int_equal(e->server.errors, 0);
    assert_int_equal(e->server.eofs, 0);
    assert_closed_once(e);
}

static void test_close_inside_on_data_is_safe(void **state)
{
    struct env *e = *state;

    close_in_data_case(e, 0);
    assert_int_equal(e->client.eofs, 1);
    finish(e);
}

static void test_abort_inside_on_data_is_safe(void **state)
{
    struct env *e = *state;

    close_in_data_case(e, 1);
    assert_int_equal(e->client.errors, 1);
    finish(e);
}

static void test_tls_close_inside_on_data_is_safe(void **state)
{
    struct env *e = *state;

    tls_on(e);
    close_in_data_case(e, 0);
    assert_int_equal(e->client.eofs, 1);
    finish(e);
}

static void test_tls_verification_failure_reaches_both_sides(void **state)
{
    struct env *e = *state;

    tls_on(e);
    e->copts.servername = "wrong.example";
    connect_client(e);
    run(e);
    assert_int_equal(e->client.connects, 1);
    assert_int_equal(e->client.status, CV_ETLS);
    assert_string_equal(e->client.err_text, "certificate verify failed: hostname mismatch");
    assert_int_equal(e->client.errors, 0);
    assert_int_equal(e->server.handshakes, 0);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, CV_ETLS);
    assert_non_null(strstr(e->server.err_text, "alert")); /* the client's alert was delivered */
    assert_closed_once(e);
    finish(e);
}

static void test_plain_client_to_tls_server_fails_handshake(void **state)
{
    struct env *e = *state;

    e->sopts.tls_ctx = e->sctx;
    e->client.to_send = 100;
    e->client.close_on_eof = 1;
    connect_client(e);
    run(e);
    assert_int_equal(e->client.status, 0);
    assert_int_equal(e->server.errors, 1);
    assert_int_equal(e->server.err, CV_ETLS);
    assert_true(e->server.err_text[0] != '\0');
    assert_int_equal(e->client.errors + e->client.eofs, 1); /* alert then FIN, or a reset */
    assert_closed_once(e);
    finish(e);
}

static void on_timer_write(uv_timer_t *t)
{
    struct env *e = t->data;

    /* Outside the poll phase: the flush pass must still run without waiting for I/O. */
    e->client.to_send += 777;
    e->client.close_on_eof = 1;
    send_more(&e->client);
}

static void test_write_from_timer_and_on_flush_are_sent(void **state)
{
    struct env *e = *state;

    e->client.want_flush_on_start = 1; /* on_flush writes 1000 bytes */
    e->server.close_after_rx = 1777;
    connect_client(e);
    uv_timer_start(&e->aux, on_timer_write, 100, 0);
    run(e);
    assert_int_equal(e->client.flushes, 1);
    assert_int_equal(e->server.rx, 1777);
    assert_false(e->server.rx_bad);
    assert_closed_once(e);
    finish(e);
}

static void on_timer_flush_both(uv_timer_t *t)
{
    struct env *e = t->data;

    /* Asked client first, but the client is a flush-last sock (like a tunnel connection). */
    sock_set_flush_last(e->client.s);
    sock_want_flush(e->client.s);
    sock_want_flush(e->server.s);
}

static void test_flush_last_sock_is_flushed_after_the_others(void **state)
{
    struct env *e = *state;

    e->server.close_after_rx = 1000; /* each on_flush writes 1000 bytes */
    e->client.close_on_eof = 1;
    connect_client(e);
    uv_timer_start(&e->aux, on_timer_flush_both, 100, 0);
    run(e);
    assert_int_equal(e->client.flushes, 1);
    assert_int_equal(e->server.flushes, 1);
    assert_true(e->server.flush_seq < e->client.flush_seq);
    assert_int_equal(e->server.rx, 1000);
    assert_false(e->server.rx_bad);
    assert_closed_once(e);
    finish(e);
}

static void on_pipe_connection(uv_stream_t *server, int status)
{
    on_connection(server, status);
}

static void test_unix_socket_echo(void **state)
{
    struct env *e = *state;
    int err = 0;

    close_listener(e);
    snprintf(e->pipe_path, sizeof(e->pipe_path), "/tmp/culvert-test-%d.sock", (int)getpid());
    unlink(e->pipe_path);
    assert_int_equal(uv_pipe_init(&e->loop, &e->plistener, 0), 0);
    e->plistener.data = e;
    assert_int_equal(uv_pipe_bind(&e->plistener, e->pipe_path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&e->plistener, 8, on_pipe_connection), 0);
    e->use_pipe = 1;
    e->listener_open = 1;
    e->server.echo = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = 100000;
    e->client.close_after_rx = 100000;
    e->client.close_on_eof = 1;
    e->client.s = sock_connect_unix(e->sl, e->pipe_path, NULL, &hooks, &e->client, &err);
    assert_non_null(e->client.s);
    assert_string_equal(sock_peer(e->client.s), "");
    assert_int_equal(sock_local_port(e->client.s), 0);
    run(e);
    assert_int_equal(e->client.status, 0);
    assert_int_equal(e->client.rx, 100000);
    assert_false(e->client.rx_bad);
    assert_closed_once(e);
    finish(e);
}

static void test_unix_connect_to_missing_path_fails(void **state)
{
    struct env *e = *state;
    int err = 0;

    close_listener(e);
    e->client.s =
        sock_connect_unix(e->sl, "/nonexistent/culvert.sock", NULL, &hooks, &e->client, &err);
    assert_non_null(e->client.s);
    run(e);
    assert_int_equal(e->client.status, UV_ENOENT);
    assert_int_equal(e->client.closes, 1);
    finish(e);
}

static void test_creation_failures_leave_nothing_behind(void **state)
{
    struct env *e = *state;
    struct sock_loop *sl2 = (struct sock_loop *)1;
    struct sockaddr_in addr;
    struct sock_opts bad = {.tls_ctx = e->cctx}; /* verifying, but no servername */
    int err = 0;

    close_listener(e);
    mem_fail_after(1);
    assert_int_equal(sock_loop_init(&sl2, &e->loop), CV_ENOMEM);
    assert_null(sl2);
    mem_fail_after(2);
    assert_int_equal(sock_loop_init(&sl2, &e->loop), CV_ENOMEM);
    mem_fail_after(0);

    assert_int_equal(uv_ip4_addr("127.0.0.1", e->port, &addr), 0);
    mem_fail_after(1);
    assert_null(sock_connect(e->sl, (const struct sockaddr *)&addr, &e->copts, &hooks, &e->client,
                             &err));
    mem_fail_after(0);
    assert_int_equal(err, CV_ENOMEM);
    assert_null(sock_connect(e->sl, (const struct sockaddr *)&addr, &bad, &hooks, &e->client,
                             &err));
    assert_int_equal(err, CV_EINVAL);
    run(e); /* the abandoned handles close; no hook runs */
    assert_int_equal(e->client.connects + e->client.closes, 0);
    finish(e);
}

struct resolved {
    int calls;
    int status;
    int family;
};

static void on_resolved_cb(int status, struct addrinfo *res, void *arg)
{
    struct resolved *r = arg;

    r->calls++;
    r->status = status;
    r->family = res != NULL ? res->ai_family : -1;
}

static void test_resolve_numeric_host(void **state)
{
    struct env *e = *state;
    struct resolved r = {0, 0, 0};

    close_listener(e);
    assert_int_equal(sock_resolve(e->sl, "127.0.0.1", "443", on_resolved_cb, &r), 0);
    run(e);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.family, AF_INET);
    finish(e);
}

/* One echo with the |n|th allocation failing. Returns 1 when the echo completed. */
static int alloc_failure_round(int tls, unsigned long n)
{
    struct sockaddr_in addr;
    struct env *e;
    void *st = NULL;
    int created_client;
    int created_server;
    int complete;
    int err = 0;

    env_setup(&st);
    e = st;
    if (tls)
        tls_on(e);
    e->tolerant = 1;
    e->server.echo = 1;
    e->server.close_on_eof = 1;
    e->client.to_send = 100000;
    e->client.close_after_rx = 100000;
    e->client.close_on_eof = 1;
    assert_int_equal(uv_ip4_addr("127.0.0.1", e->port, &addr), 0);
    mem_fail_after(n);
    e->client.s = sock_connect(e->sl, (const struct sockaddr *)&addr, &e->copts, &hooks,
                               &e->client, &err);
    created_client = e->client.s != NULL;
    if (!created_client) {
        assert_int_equal(err, CV_ENOMEM);
        close_listener(e);
    }
    run(e);
    mem_fail_after(0);
    created_server = e->server.closes > 0 || e->server.s != NULL;
    complete = e->client.rx == 100000 && e->server.errors + e->client.errors == 0 &&
               e->write_failed == 0;
    /* Whatever failed, every sock that was created closed exactly once, and nothing leaked. */
    assert_int_equal(e->client.closes, created_client);
    assert_int_equal(e->server.closes, created_server && !e->accept_failed);
    if (created_client)
        assert_int_equal(e->client.connects, 1);
    assert_false(e->client.rx_bad);
    finish(e);
    env_teardown(&st);
    return complete;
}

static void allocation_failure_sweep(int tls)
{
    unsigned long n;
    int complete = 0;

    for (n = 1; n <= 200 && !complete; n++)
        complete = alloc_failure_round(tls, n);
    assert_true(complete); /* the sweep went past the last allocation */
    assert_true(n > 5);
}

static void test_plain_allocation_failures_close_cleanly(void **state)
{
    (void)state;
    allocation_failure_sweep(0);
}

static void test_tls_allocation_failures_close_cleanly(void **state)
{
    (void)state;
    allocation_failure_sweep(1);
}

static int group_setup(void **state)
{
    (void)state;
    return certs_create(&certs);
}

static int group_teardown(void **state)
{
    (void)state;
    certs_destroy(&certs);
    return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, env_setup, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_plain_echo),
        T(test_tls_echo_with_sni_and_alpn),
        T(test_peer_addresses_are_formatted),
        T(test_plain_idle_connection_holds_no_buffers),
        T(test_tls_idle_connection_holds_no_buffers),
        T(test_plain_backpressure_8mib),
        T(test_tls_backpressure_8mib),
        T(test_raising_out_high_owes_on_drain),
        T(test_plain_read_stop_and_start_lose_nothing),
        T(test_tls_read_stop_and_start_lose_nothing),
        T(test_tls_handshake_deadline_is_reported_to_on_connect),
        T(test_plain_half_close_peer_can_still_answer),
        T(test_tls_half_close_peer_can_still_answer),
        T(test_tls_truncation_is_an_error_not_eof),
        T(test_tls_truncation_after_paused_backlog_is_reported_after_the_data),
        T(test_tls_close_notify_after_paused_backlog_is_a_clean_end),
        T(test_plain_graceful_close_delivers_all_queued_bytes),
        T(test_tls_graceful_close_delivers_all_queued_bytes),
        T(test_graceful_close_gives_up_with_reset_when_peer_never_reads),
        T(test_abort_gives_the_peer_a_reset),
        T(test_connect_refused_reports_then_closes),
        T(test_close_while_connecting_reports_cancel_once),
        T(test_timeout_calls_on_timeout),
        T(test_timeout_without_hook_is_an_error),
        T(test_timeout_can_be_disarmed),
        T(test_send_timeout_fires_when_the_peer_stops_reading),
        T(test_send_timeout_is_not_reset_by_the_deadline),
        T(test_send_timeout_goes_on_for_an_owner_that_keeps_the_sock),
        T(test_deadline_fires_while_output_waits),
        T(test_send_timeout_restarts_with_each_byte_the_peer_takes),
        T(test_send_timeout_idle_while_the_kernel_took_everything),
        T(test_closing_under_a_send_timeout_flushes_while_the_peer_reads),
        T(test_closing_under_a_send_timeout_resets_a_stalled_peer),
        T(test_timeout_moved_later_fires_at_the_later_deadline),
        T(test_timeout_moved_earlier_fires_at_the_earlier_deadline),
        T(test_close_inside_on_data_is_safe),
        T(test_abort_inside_on_data_is_safe),
        T(test_tls_close_inside_on_data_is_safe),
        T(test_tls_verification_failure_reaches_both_sides),
        T(test_plain_client_to_tls_server_fails_handshake),
        T(test_write_from_timer_and_on_flush_are_sent),
        T(test_flush_last_sock_is_flushed_after_the_others),
        T(test_unix_socket_echo),
        T(test_unix_connect_to_missing_path_fails),
        T(test_creation_failures_leave_nothing_behind),
        T(test_resolve_numeric_host),
        cmocka_unit_test(test_plain_allocation_failures_close_cleanly),
        cmocka_unit_test(test_tls_allocation_failures_close_cleanly),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
