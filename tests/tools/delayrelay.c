/*
 * delayrelay.c - a TCP relay for the integration tests that adds a fixed one-way delay.
 *
 *   delayrelay LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS [--listen-host H]
 *
 * Accepts connections on H:LISTEN_PORT (H defaults to 127.0.0.1; port 0 picks a free one), dials
 * TARGET for each, and forwards bytes both ways. Every chunk read is stamped on arrival and written
 * DELAY_MS later, in arrival order (never reordered), so each direction gets a fixed one-way delay
 * and a round trip through the relay costs 2 * DELAY_MS more. netem is not available on the test
 * machines (RELIABILITY.md §7); this stands in for it.
 *
 * Closes are passed on at once, without the delay, so that a killed peer is seen immediately:
 *  - FIN: the bytes still queued in that direction are written now, then the write side of the
 *    other socket is shut down (a half-close; the other direction keeps flowing);
 *  - RST (a read or write error): both sockets are closed with SO_LINGER {1, 0}, which sends
 *    RST, and the queued bytes are dropped. A target that refuses the connection is passed on as
 *    RST too.
 *
 * Memory per connection is bounded: a direction that holds RELAY_HIGH bytes stops reading its
 * source until it is back under RELAY_LOW.
 *
 * Once listening, prints "delayrelay listening on HOST:PORT" on stdout (the tests read the port
 * from it). SIGTERM or SIGINT closes everything and exits 0. One loop thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <uv.h>

#include "list.h"
#include "log.h"
#include "mem.h"

#define RELAY_READ_SIZE (64 * 1024)
#define RELAY_HIGH (1024 * 1024) /* bytes held per direction: stop reading the source */
#define RELAY_LOW (256 * 1024)   /* resume reading below this */
#define RELAY_MAX_DELAY_MS 60000

/* One read, held until it is due, then owned by its write request until the write callback. */
struct chunk {
    struct list_node node; /* in half->queue while not yet due */
    uv_write_t req;
    struct half *h;
    uint64_t due_ms;
    size_t len;
    uint8_t data[];
};

#define HALF_F_EOF 0x01          /* the source sent FIN: nothing more will be queued */
#define HALF_F_SHUT 0x02         /* shutdown of the sink requested */
#define HALF_F_SHUT_DONE 0x04    /* shutdown of the sink completed */
#define HALF_F_READ_STOPPED 0x08 /* over RELAY_HIGH: reading the source is paused */

/* One direction of a relayed connection: bytes read from |from| are written to |to|. */
struct half {
    struct rconn *rc;
    uv_tcp_t *from;
    uv_tcp_t *to;
    const char *name;
    struct list_node queue; /* chunks not due yet, oldest first */
    size_t held;            /* bytes queued or being written */
    unsigned flags;
    uv_shutdown_t shutdown_req;
    uint8_t rbuf[RELAY_READ_SIZE]; /* one read lands here, then is copied into a chunk */
};

enum rconn_state {
    RCONN_S_CONNECTING, /* dialing the target; the client is not read yet */
    RCONN_S_OPEN,       /* bytes flow */
    RCONN_S_CLOSING,    /* handles closing; freed after the last close callback */
    RCONN_S_COUNT
};

struct relay;

struct rconn {
    struct relay *r;
    struct list_node node; /* in relay->conns */
    enum rconn_state state;
    unsigned id;
    unsigned pending_closes;
    uv_tcp_t client;
    uv_tcp_t target;
    uv_connect_t connect_req;
    uv_timer_t timer; /* fires when the earliest queued chunk is due */
    struct half up;   /* client -> target */
    struct half down; /* target -> client */
};

struct relay {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    struct sockaddr_storage target;
    char target_text[300];
    uint64_t delay_ms;
    struct list_node conns;
    unsigned next_id;
    int stopping;
};

static void rconn_abort(struct rconn *rc, const char *why, int err);
static void rconn_schedule(struct rconn *rc);
static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b);

static int half_read_start(struct half *h)
{
    return uv_read_start((uv_stream_t *)h->from, on_alloc, on_read);
}

/* ---- closing -------------------------------------------------------------------------------- */

static void drop_queue(struct half *h)
{
    struct list_node *p;
    struct list_node *tmp;

    list_for_each_safe(p, tmp, &h->queue)
    {
        struct chunk *c = container_of(p, struct chunk, node);

        list_remove(&c->node);
        h->held -= c->len;
        mem_free(c);
    }
}

static void on_conn_close(uv_handle_t *hd)
{
    struct rconn *rc = hd->data;

    if (--rc->pending_closes > 0)
        return;
    LOG_D("conn=%u closed", rc->id);
    list_remove(&rc->node);
    mem_free(rc);
}

/* Closes the three handles; |reset| sets SO_LINGER {1, 0} first so that the close sends RST.
 * Writes in flight are cancelled (their callbacks run first, with UV_ECANCELED). */
static void rconn_close(struct rconn *rc, int reset)
{
    uv_tcp_t *socks[2] = {&rc->client, &rc->target};

    if (rc->state == RCONN_S_CLOSING)
        return;
    rc->state = RCONN_S_CLOSING;
    drop_queue(&rc->up);
    drop_queue(&rc->down);
    uv_timer_stop(&rc->timer);
    for (int i = 0; i < 2; i++) {
        uv_os_fd_t fd;

        if (reset && uv_fileno((uv_handle_t *)socks[i], &fd) == 0) {
            struct linger l = {1, 0};

            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        }
        uv_close((uv_handle_t *)socks[i], on_conn_close);
    }
    uv_close((uv_handle_t *)&rc->timer, on_conn_close);
}

static void rconn_abort(struct rconn *rc, const char *why, int err)
{
    if (rc->state == RCONN_S_CLOSING)
        return;
    LOG_I("conn=%u reset: %s%s%s", rc->id, why, err != 0 ? ": " : "",
          err != 0 ? uv_strerror(err) : "");
    rconn_close(rc, 1);
}

/* Both directions ended with FIN and every shutdown completed: an orderly close. */
static void rconn_maybe_finish(struct rconn *rc)
{
    if ((rc->up.flags & HALF_F_SHUT_DONE) && (rc->down.flags & HALF_F_SHUT_DONE)) {
        LOG_D("conn=%u both directions finished", rc->id);
        rconn_close(rc, 0);
    }
}

/* ---- writing -------------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct half *h = req->data;
    struct rconn *rc = h->rc;

    if (status == UV_ECANCELED || rc->state == RCONN_S_CLOSING)
        return;
    if (status < 0) {
        rconn_abort(rc, "shutdown", status);
        return;
    }
    h->flags |= HALF_F_SHUT_DONE;
    rconn_maybe_finish(rc);
}

static void on_write_done(uv_write_t *req, int status)
{
    struct chunk *c = req->data;
    struct half *h = c->h;
    struct rconn *rc = h->rc;
    int rv;

    h->held -= c->len;
    mem_free(c);
    if (status == UV_ECANCELED || rc->state == RCONN_S_CLOSING)
        return;
    if (status < 0) {
        rconn_abort(rc, h->name, status);
        return;
    }
    if ((h->flags & HALF_F_READ_STOPPED) && h->held < RELAY_LOW && !(h->flags & HALF_F_EOF)) {
        h->flags &= ~HALF_F_READ_STOPPED;
        rv = half_read_start(h);
        if (rv < 0)
            rconn_abort(rc, "read", rv);
    }
}

/* Hands the chunks of |h| that are due (all of them when |all|) to the sink, in order. Returns 0,
 * or a libuv error after which the caller aborts. */
static int half_release(struct half *h, int all)
{
    uint64_t now = uv_now(h->rc->r->loop);
    struct list_node *p;
    int rv;

    for (;;) {
        struct chunk *c;
        uv_buf_t b;

        p = list_first(&h->queue);
        if (p == NULL)
            break;
        c = container_of(p, struct chunk, node);
        if (!all && c->due_ms > now)
            break;
        list_remove(&c->node);
        b = uv_buf_init((char *)c->data, (unsigned)c->len);
        c->req.data = c;
        rv = uv_write(&c->req, (uv_stream_t *)h->to, &b, 1, on_write_done);
        if (rv < 0) {
            h->held -= c->len;
            mem_free(c);
            return rv;
        }
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    struct rconn *rc = t->data;
    int rv;

    rv = half_release(&rc->up, 0);
    if (rv == 0)
        rv = half_release(&rc->down, 0);
    if (rv < 0) {
        rconn_abort(rc, "write", rv);
        return;
    }
    rconn_schedule(rc);
}

/* Arms the timer for the earliest chunk still queued in either direction. */
static void rconn_schedule(struct rconn *rc)
{
    struct half *halves[2] = {&rc->up, &rc->down};
    uint64_t now = uv_now(rc->r->loop);
    uint64_t due = UINT64_MAX;

    for (int i = 0; i < 2; i++) {
        struct list_node *p = list_first(&halves[i]->queue);

        if (p != NULL && container_of(p, struct chunk, node)->due_ms < due)
            due = container_of(p, struct chunk, node)->due_ms;
    }
    if (due == UINT64_MAX) {
        uv_timer_stop(&rc->timer);
        return;
    }
    uv_timer_start(&rc->timer, on_timer, due > now ? due - now : 0, 0);
}

/* ---- reading -------------------------------------------------------------------------------- */

static struct half *half_of(struct rconn *rc, const uv_handle_t *hd)
{
    return hd == (const uv_handle_t *)&rc->client ? &rc->up : &rc->down;
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
    struct half *h = half_of(hd->data, hd);

    (void)suggested;
    *b = uv_buf_init((char *)h->rbuf, sizeof(h->rbuf));
}

/* FIN from the source: what is queued goes out now, then the sink's write side is shut down. */
static void half_eof(struct half *h)
{
    struct rconn *rc = h->rc;
    int rv;

    h->flags |= HALF_F_EOF;
    uv_read_stop((uv_stream_t *)h->from);
    LOG_D("conn=%u %s: FIN passed on", rc->id, h->name);
    rv = half_release(h, 1);
    if (rv < 0) {
        rconn_abort(rc, "write", rv);
        return;
    }
    h->shutdown_req.data = h;
    h->flags |= HALF_F_SHUT;
    rv = uv_shutdown(&h->shutdown_req, (uv_stream_t *)h->to, on_shutdown);
    if (rv < 0) {
        rconn_abort(rc, "shutdown", rv);
        return;
    }
    rconn_schedule(rc);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct rconn *rc = s->data;
    struct half *h = half_of(rc, (uv_handle_t *)s);
    struct chunk *c;
    int was_empty;
    int rv;

    if (rc->state == RCONN_S_CLOSING)
        return;
    if (n == UV_EOF) {
        half_eof(h);
        return;
    }
    if (n < 0) {
        /* ECONNRESET and friends: the peer is gone; the other side sees a reset at once. */
        rconn_abort(rc, h->name, (int)n);
        return;
    }
    if (n == 0)
        return;
    c = mem_alloc(sizeof(*c) + (size_t)n);
    if (c == NULL) {
        rconn_abort(rc, "out of memory", 0);
        return;
    }
    memcpy(c->data, b->base, (size_t)n);
    c->len = (size_t)n;
    c->h = h;
    c->due_ms = uv_now(rc->r->loop) + rc->r->delay_ms;
    list_init(&c->node);
    was_empty = list_empty(&h->queue);
    list_push_back(&h->queue, &c->node);
    h->held += c->len;
    if (h->held >= RELAY_HIGH) {
        uv_read_stop(s);
        h->flags |= HALF_F_READ_STOPPED;
    }
    if (rc->r->delay_ms == 0) {
        rv = half_release(h, 1);
        if (rv < 0)
            rconn_abort(rc, "write", rv);
        return;
    }
    /* A later chunk is never due before the queue's head: only a first one moves the timer. */
    if (was_empty)
        rconn_schedule(rc);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    struct rconn *rc = req->data;
    int rv;

    if (status == UV_ECANCELED || rc->state == RCONN_S_CLOSING)
        return;
    if (status < 0) {
        rconn_abort(rc, "cannot connect to the target", status);
        return;
    }
    rc->state = RCONN_S_OPEN;
    uv_tcp_nodelay(&rc->target, 1);
    rv = half_read_start(&rc->up);
    if (rv == 0)
        rv = half_read_start(&rc->down);
    if (rv < 0) {
        rconn_abort(rc, "read", rv);
        return;
    }
    LOG_D("conn=%u connected to %s", rc->id, rc->r->target_text);
}

static void half_init(struct half *h, struct rconn *rc, uv_tcp_t *from, uv_tcp_t *to,
                      const char *name)
{
    h->rc = rc;
    h->from = from;
    h->to = to;
    h->name = name;
    list_init(&h->queue);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct relay *r = server->data;
    struct rconn *rc;
    int rv;

    if (status < 0) {
        LOG_W("accept: %s", uv_strerror(status));
        return;
    }
    rc = mem_calloc(sizeof(*rc));
    if (rc == NULL) {
        LOG_W("accept: out of memory");
        return;
    }
    rc->r = r;
    rc->id = ++r->next_id;
    rc->state = RCONN_S_CONNECTING;
    list_init(&rc->node);
    list_push_back(&r->conns, &rc->node);
    half_init(&rc->up, rc, &rc->client, &rc->target, "client->target");
    half_init(&rc->down, rc, &rc->target, &rc->client, "target->client");
    /* From here on the three handles exist and rconn_close() frees |rc| after their closes. */
    uv_tcp_init(r->loop, &rc->client);
    uv_tcp_init(r->loop, &rc->target);
    uv_timer_init(r->loop, &rc->timer);
    rc->pending_closes = 3;
    rc->client.data = rc;
    rc->target.data = rc;
    rc->timer.data = rc;
    rv = uv_accept(server, (uv_stream_t *)&rc->client);
    if (rv < 0) {
        LOG_W("accept: %s", uv_strerror(rv));
        rconn_close(rc, 0);
        return;
    }
    uv_tcp_nodelay(&rc->client, 1);
    rc->connect_req.data = rc;
    rv = uv_tcp_connect(&rc->connect_req, &rc->target, (const struct sockaddr *)&r->target,
                        on_connect);
    if (rv < 0) {
        rconn_abort(rc, "cannot connect to the target", rv);
        return;
    }
    LOG_D("conn=%u accepted", rc->id);
}

/* ---- the program ---------------------------------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    struct relay *r = s->data;
    struct list_node *p;
    struct list_node *tmp;
    size_t n = 0;

    if (r->stopping)
        return;
    r->stopping = 1;
    list_for_each(p, &r->conns)
        n++;
    LOG_I("signal %d: closing %zu connections and exiting", signum, n);
    uv_close((uv_handle_t *)&r->listener, NULL);
    uv_close((uv_handle_t *)&r->sig_term, NULL);
    uv_close((uv_handle_t *)&r->sig_int, NULL);
    list_for_each_safe(p, tmp, &r->conns)
        rconn_close(container_of(p, struct rconn, node), 0);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* "host:port" or "[v6]:port" into |host| and |port|. */
static int split_host_port(const char *s, char *host, size_t hlen, unsigned long *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t n;

    if (colon == NULL || parse_uint(colon + 1, 65535, port) < 0 || *port == 0)
        return -1;
    n = (size_t)(colon - s);
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        h = s + 1;
        n -= 2;
    }
    if (n == 0 || n >= hlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    return 0;
}

static int resolve(uv_loop_t *loop, const char *host, unsigned long port,
                   struct sockaddr_storage *out)
{
    struct addrinfo hints;
    uv_getaddrinfo_t req;
    char service[8];
    int rv;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%lu", port);
    rv = uv_getaddrinfo(loop, &req, NULL, host, service, &hints); /* NULL callback: synchronous */
    if (rv < 0)
        return rv;
    memset(out, 0, sizeof(*out));
    memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
    uv_freeaddrinfo(req.addrinfo);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: delayrelay LISTEN_PORT TARGET_HOST:TARGET_PORT DELAY_MS [--listen-host H]\n"
               "  relays TCP connections to the target, delaying each chunk by DELAY_MS each way;\n"
               "  FIN and RST pass at once. LISTEN_PORT 0 picks a free port (printed on\n"
               "  stdout).\n");
}

int main(int argc, char **argv)
{
    static struct relay r;
    const char *pos[3];
    const char *listen_host = "127.0.0.1";
    char thost[256];
    unsigned long lport;
    unsigned long tport;
    unsigned long delay;
    struct sockaddr_storage laddr;
    int namelen = sizeof(laddr);
    char lname[64];
    uv_loop_t loop;
    int npos = 0;
    int rv;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen-host") == 0 && i + 1 < argc) {
            listen_host = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || npos == 3) {
            usage(stderr);
            return 2;
        } else {
            pos[npos++] = argv[i];
        }
    }
    if (npos != 3 || parse_uint(pos[0], 65535, &lport) < 0 ||
        split_host_port(pos[1], thost, sizeof(thost), &tport) < 0 ||
        parse_uint(pos[2], RELAY_MAX_DELAY_MS, &delay) < 0) {
        usage(stderr);
        return 2;
    }
    log_set_program("delayrelay");
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    r.loop = &loop;
    r.delay_ms = delay;
    list_init(&r.conns);
    snprintf(r.target_text, sizeof(r.target_text), "%s", pos[1]);
    rv = resolve(&loop, thost, tport, &r.target);
    if (rv < 0) {
        fprintf(stderr, "delayrelay: cannot resolve %s: %s\n", pos[1], uv_strerror(rv));
        return 2;
    }
    rv = resolve(&loop, listen_host, lport, &laddr);
    if (rv < 0) {
        fprintf(stderr, "delayrelay: cannot resolve %s: %s\n", listen_host, uv_strerror(rv));
        return 2;
    }
    uv_tcp_init(&loop, &r.listener);
    r.listener.data = &r;
    rv = uv_tcp_bind(&r.listener, (const struct sockaddr *)&laddr, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&r.listener, 128, on_accept);
    if (rv == 0)
        rv = uv_tcp_getsockname(&r.listener, (struct sockaddr *)&laddr, &namelen);
    if (rv < 0) {
        fprintf(stderr, "delayrelay: cannot listen on %s:%lu: %s\n", listen_host, lport,
                uv_strerror(rv));
        uv_close((uv_handle_t *)&r.listener, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    if (laddr.ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)&laddr, lname, sizeof(lname));
        lport = ntohs(((const struct sockaddr_in6 *)&laddr)->sin6_port);
    } else {
        uv_ip4_name((const struct sockaddr_in *)&laddr, lname, sizeof(lname));
        lport = ntohs(((const struct sockaddr_in *)&laddr)->sin_port);
    }
    uv_signal_init(&loop, &r.sig_term);
    uv_signal_init(&loop, &r.sig_int);
    r.sig_term.data = &r;
    r.sig_int.data = &r;
    uv_signal_start(&r.sig_term, on_signal, SIGTERM);
    uv_signal_start(&r.sig_int, on_signal, SIGINT);
    printf("delayrelay listening on %s:%lu -> %s, delay %lums each way\n", lname, lport, pos[1],
           delay);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    rv = uv_loop_close(&loop);
    if (rv != 0) {
        LOG_W("exit: the loop still had handles open");
        return 1;
    }
    return 0;
}
