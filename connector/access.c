/*
 * access.c - `culvert-connector access tcp|ssh`; see access.h.
 *
 * One struct tun per carried connection:
 *
 *   RESOLVING -> CONNECTING (TCP + TLS 1.3 to the edge, each address in turn)
 *             -> ANSWER (request written, waiting for the edge's answer)
 *             -> PIPE (after a 101 for culvert-tcp)     or     PAGE (reading an error page)
 *
 * The local end is a sock (access tcp) or stdin/stdout (access ssh, struct sio below). Nothing is
 * read from it before the 101: an SSH client's banner waits in its buffer (tcp) or in the pipe.
 * In PIPE, bytes move both ways with back-pressure: a side whose output queue is over its mark
 * stops the other side's reading until it drains (sock on_drain, sio's write callbacks). Each
 * direction ends on its own: the local EOF becomes sock_shutdown() towards the edge (close_notify,
 * then FIN), the edge's close_notify becomes a FIN (or the close of stdout). A failure on either
 * side aborts the other, so a truncation never looks like a clean end.
 */
#include "access.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "err.h"
#include "http1.h"
#include "limits.h"
#include "list.h"
#include "listener.h"
#include "mem.h"
#include "sock.h"
#include "tls.h"
#include "version.h"

#define ACC_MAX_ADDRS 8
#define ACC_OUT_HIGH (256 * 1024)   /* output queue mark, both sides */
#define ACC_IN_CAP (64 * 1024)      /* input buffer of each side */
#define ACC_PAGE_CAP (8 * 1024)     /* error page bytes kept for the message */
#define ACC_DEFAULT_PORT 443

/* ---- options --------------------------------------------------------------------------------- */

void access_usage(FILE *f)
{
    fprintf(f,
            "usage: culvert-connector access tcp --hostname H --url [HOST:]PORT [--edge-url URL]\n"
            "                                    [--edge-ca F] [--header 'Name: value']...\n"
            "                                    [--loglevel L] [--connect-timeout D]\n"
            "       culvert-connector access ssh --hostname H [--edge-url URL] [--edge-ca F]\n"
            "                                    [--header 'Name: value']... [--loglevel L]\n"
            "                                    [--connect-timeout D]\n"
            "\n"
            "access tcp listens on --url (127.0.0.1 unless a host is given) and carries each\n"
            "connection to the TCP service of hostname H through the edge; access ssh carries\n"
            "stdin/stdout, for ssh:\n"
            "  ssh -o ProxyCommand='culvert-connector access ssh --hostname %%h' user@H\n"
            "\n"
            "  --hostname H     the service's public hostname (TLS SNI, Host, certificate name)\n"
            "  --url ADDR       tcp: where to listen, e.g. 127.0.0.1:2222 or 2222\n"
            "  --edge-url URL   where the edge is, https://host[:port] (default https://H)\n"
            "  --edge-ca F      PEM file of CAs to trust for the edge (default: system store)\n"
            "  --header 'N: v'  an extra request header (repeatable; for access policies)\n"
            "  --loglevel L     error, warn (default), info, debug\n"
            "  --connect-timeout D\n"
            "                   TCP + TLS to one edge address (default 30s); then the next\n"
            "                   address of the name, if any\n");
}

static int is_tchar(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int parse_header(const char *text, struct access_header *h, char *err, size_t errlen)
{
    static const char *const owned[] = {"host", "upgrade", "connection", "content-length",
                                        "transfer-encoding", NULL};
    const char *colon = strchr(text, ':');
    const char *v;
    size_t vl;

    if (colon == NULL || colon == text) {
        snprintf(err, errlen, "--header: expected 'Name: value'");
        return CV_EINVAL;
    }
    for (const char *p = text; p < colon; p++) {
        if (!is_tchar((unsigned char)*p)) {
            snprintf(err, errlen, "--header: the name is not a token");
            return CV_EINVAL;
        }
    }
    if ((size_t)(colon - text) > 256) {
        snprintf(err, errlen, "--header: the name is longer than 256 bytes");
        return CV_EINVAL;
    }
    for (int i = 0; owned[i] != NULL; i++) {
        if (strlen(owned[i]) == (size_t)(colon - text) &&
            strncasecmp(owned[i], text, (size_t)(colon - text)) == 0) {
            snprintf(err, errlen, "--header: %s is set by culvert-connector itself", owned[i]);
            return CV_EINVAL;
        }
    }
    v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        vl--;
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(err, errlen, "--header: the value holds a control character");
            return CV_EINVAL;
        }
    }
    if (vl > HTTP1_MAX_VALUE) {
        snprintf(err, errlen, "--header: the value is longer than %d bytes", HTTP1_MAX_VALUE);
        return CV_EINVAL;
    }
    h->name = text;
    h->name_len = (size_t)(colon - text);
    h->value = v;
    h->value_len = vl;
    return 0;
}

/* --url: [tcp://][host:]port; no host means 127.0.0.1 (loopback unless asked otherwise). */
static int parse_listen(const char *text, struct config_addr *a, char *err, size_t errlen)
{
    char buf[HOSTNAME_MAX + 16];
    const char *why = "invalid";
    const char *s = text;
    int only_digits = 1;

    if (strncasecmp(s, "tcp://", 6) == 0)
        s += 6;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            only_digits = 0;
    }
    if (*s != '\0' && only_digits)
        snprintf(buf, sizeof(buf), "127.0.0.1:%s", s);
    else if (s[0] == ':')
        snprintf(buf, sizeof(buf), "127.0.0.1%s", s);
    else
        snprintf(buf, sizeof(buf), "%s", s);
    if (strlen(s) >= sizeof(buf) - 16 || config_parse_addr(buf, 0, a, &why) < 0) {
        snprintf(err, errlen, "--url: %s (expected [HOST:]PORT, e.g. 127.0.0.1:2222)", why);
        return CV_EINVAL;
    }
    return 0;
}

/* --edge-url: https://host[:port][/] */
static int parse_edge_url(const char *text, struct access_opts *o, char *err, size_t errlen)
{
    struct hostname_host h;
    const char *why = "invalid";
    const char *auth;
    size_t n;

    if (strncasecmp(text, "https://", 8) != 0) {
        snprintf(err, errlen,
                 "--edge-url: must start with https:// (the access client speaks TLS)");
        return CV_EINVAL;
    }
    auth = text + 8;
    n = strcspn(auth, "/?#");
    if (auth[n] != '\0' && strcmp(auth + n, "/") != 0) {
        snprintf(err, errlen, "--edge-url: only https://host[:port] is allowed (no path or query)");
        return CV_EINVAL;
    }
    if (hostname_split(auth, n, &h, &why) < 0) {
        snprintf(err, errlen, "--edge-url: %s", why);
        return CV_EINVAL;
    }
    snprintf(o->edge_host, sizeof(o->edge_host), "%s", h.name);
    o->edge_port = h.port > 0 ? (uint16_t)h.port : ACC_DEFAULT_PORT;
    return 0;
}

int access_parse_args(int argc, char **argv, struct access_opts *o, char *err, size_t errlen)
{
    const char *hostname = NULL;
    const char *url = NULL;
    const char *edge_url = NULL;
    const char *why = "invalid";
    int i;
    int rv;

    memset(o, 0, sizeof(*o));
    o->loglevel = LOG_WARN;
    o->connect_timeout_ms = 30000;
    o->answer_timeout_ms = 120000;
    if (argc < 1) {
        snprintf(err, errlen, "access: expected tcp or ssh");
        return CV_EINVAL;
    }
    if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0 ||
        strcmp(argv[0], "help") == 0)
        return ACCESS_HELP;
    if (strcmp(argv[0], "tcp") == 0) {
        o->mode = ACCESS_TCP;
    } else if (strcmp(argv[0], "ssh") == 0) {
        o->mode = ACCESS_SSH;
    } else {
        snprintf(err, errlen, "access: unknown mode \"%.40s\" (expected tcp or ssh)", argv[0]);
        return CV_EINVAL;
    }
    for (i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *name;
        const char *value = NULL;
        const char *eq;
        size_t nlen;

        if (arg[0] != '-' || arg[1] == '\0') {
            snprintf(err, errlen, "access: unexpected argument \"%.60s\"", arg);
            return CV_EINVAL;
        }
        name = arg[1] == '-' ? arg + 2 : arg + 1;
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (nlen == 4 && strncmp(name, "help", 4) == 0)
            return ACCESS_HELP;
#define FLAG(s) (nlen == sizeof(s) - 1 && strncmp(name, s, nlen) == 0)
        if (!FLAG("hostname") && !FLAG("url") && !FLAG("edge-url") && !FLAG("edge-ca") &&
            !FLAG("header") && !FLAG("loglevel") && !FLAG("connect-timeout")) {
            snprintf(err, errlen, "access %s: unknown flag --%.*s", argv[0],
                     (int)(nlen > 40 ? 40 : nlen), name);
            return CV_EINVAL;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "--%.*s: missing value", (int)(nlen > 40 ? 40 : nlen), name);
            return CV_EINVAL;
        }
        if (FLAG("hostname")) {
            hostname = value;
        } else if (FLAG("url")) {
            url = value;
        } else if (FLAG("edge-url")) {
            edge_url = value;
        } else if (FLAG("edge-ca")) {
            if (config_check_path(value, 0, &why) < 0) {
                snprintf(err, errlen, "--edge-ca: %s", why);
                return CV_EINVAL;
            }
            o->edge_ca = value;
        } else if (FLAG("header")) {
            if (o->nheaders == ACCESS_MAX_HEADERS) {
                snprintf(err, errlen, "--header: at most %d headers", ACCESS_MAX_HEADERS);
                return CV_EINVAL;
            }
            rv = parse_header(value, &o->headers[o->nheaders], err, errlen);
            if (rv < 0)
                return rv;
            o->nheaders++;
        } else if (FLAG("loglevel")) {
            if (log_parse_level(value, &o->loglevel) < 0) {
                snprintf(err, errlen, "--loglevel: expected error, warn, info, debug or trace");
                return CV_EINVAL;
            }
        } else if (FLAG("connect-timeout")) {
            if (config_parse_duration(value, 0, &o->connect_timeout_ms, &why) < 0) {
                snprintf(err, errlen, "--connect-timeout: %s", why);
                return CV_EINVAL;
            }
            if (o->connect_timeout_ms == 0) {
                snprintf(err, errlen, "--connect-timeout: must be more than 0");
                return CV_EINVAL;
            }
        }
#undef FLAG
    }
    {
        size_t total = 0;

        for (size_t k = 0; k < o->nheaders; k++)
            total += o->headers[k].name_len + o->headers[k].value_len + 4; /* ": " and CRLF */
        if (total > ACCESS_MAX_HEADER_BYTES) {
            snprintf(err, errlen, "--header: the headers total %zu bytes, more than %d (the edge "
                                  "refuses heads over 32 KiB by default)", total,
                     ACCESS_MAX_HEADER_BYTES);
            return CV_EINVAL;
        }
    }
    if (hostname == NULL) {
        snprintf(err, errlen, "access %s: --hostname is required", argv[0]);
        return CV_EINVAL;
    }
    if (hostname_normalize(hostname, strlen(hostname), o->hostname, &why) < 0) {
        snprintf(err, errlen, "--hostname: %s", why);
        return CV_EINVAL;
    }
    if (o->mode == ACCESS_TCP) {
        if (url == NULL) {
            snprintf(err, errlen, "access tcp: --url is required (where to listen, e.g. "
                                  "127.0.0.1:2222)");
            return CV_EINVAL;
        }
        rv = parse_listen(url, &o->listen, err, errlen);
        if (rv < 0)
            return rv;
    } else if (url != NULL) {
        snprintf(err, errlen, "access ssh: --url is not used (the data goes over stdin/stdout)");
        return CV_EINVAL;
    }
    if (edge_url != NULL) {
        rv = parse_edge_url(edge_url, o, err, errlen);
        if (rv < 0)
            return rv;
    } else {
        snprintf(o->edge_host, sizeof(o->edge_host), "%s", o->hostname);
        o->edge_port = ACC_DEFAULT_PORT;
    }
    return 0;
}

int access_build_request(struct buf *b, const struct access_opts *o)
{
    struct http1_field f[4 + ACCESS_MAX_HEADERS];
    static const char ua[] = "culvert-connector/" CULVERT_VERSION " access";
    size_t n = 0;

    f[n++] = (struct http1_field){"Host", o->hostname, 4, strlen(o->hostname)};
    f[n++] = (struct http1_field){"Upgrade", "culvert-tcp", 7, 11};
    f[n++] = (struct http1_field){"Connection", "Upgrade", 10, 7};
    f[n++] = (struct http1_field){"User-Agent", ua, 10, sizeof(ua) - 1};
    for (size_t i = 0; i < o->nheaders; i++) {
        f[n].name = o->headers[i].name;
        f[n].name_len = o->headers[i].name_len;
        f[n].value = o->headers[i].value;
        f[n].value_len = o->headers[i].value_len;
        n++;
    }
    return http1_write_request_head(b, "GET", "/", f, n);
}

/* ---- error pages ----------------------------------------------------------------------------- */

static int starts_ci(const char *p, const char *end, const char *s)
{
    size_t k = strlen(s);

    return (size_t)(end - p) >= k && strncasecmp(p, s, k) == 0;
}

/* Skips from |p| past the closing tag |close| (case-insensitive), or to |end|. */
static const char *skip_past(const char *p, const char *end, const char *close)
{
    while (p < end && !starts_ci(p, end, close))
        p++;
    return p < end ? p + strlen(close) : end;
}

size_t access_page_text(const char *body, size_t n, char *out, size_t cap)
{
    static const struct {
        const char *name;
        const char *text;
    } ents[] = {{"&amp;", "&"},  {"&lt;", "<"},   {"&gt;", ">"},    {"&quot;", "\""},
                {"&#39;", "'"},  {"&nbsp;", " "}, {"&middot;", "-"}};
    const char *p = body;
    const char *end = body + n;
    int html = 0;
    int space = 0;
    size_t len = 0;

    for (const char *q = body; q < end && q < body + 64; q++) {
        if (*q == '<') {
            html = 1;
            break;
        }
    }
    while (p < end && len + 1 < cap) {
        char c = *p;

        if (html && c == '<') {
            if (starts_ci(p, end, "<head>") || starts_ci(p, end, "<head "))
                p = skip_past(p, end, "</head>"); /* not <header>: its text is the message */
            else if (starts_ci(p, end, "<h1"))
                p = skip_past(p, end, "</h1>");
            else if (starts_ci(p, end, "<title"))
                p = skip_past(p, end, "</title>");
            else
                p = skip_past(p, end, ">");
            space = 1;
            continue;
        }
        if (html && c == '&') {
            size_t k;

            for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
                if (starts_ci(p, end, ents[k].name))
                    break;
            }
            if (k < sizeof(ents) / sizeof(ents[0])) {
                p += strlen(ents[k].name);
                c = ents[k].text[0];
                if (c == ' ') {
                    space = 1;
                    continue;
                }
            } else {
                p++;
            }
        } else {
            p++;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = 1;
            continue;
        }
        if ((unsigned char)c < 0x20 || c == 0x7f)
            continue;
        if (space && len > 0 && len + 2 < cap)
            out[len++] = ' ';
        space = 0;
        out[len++] = c;
    }
    out[len] = '\0';
    return len;
}

/* ---- stdin/stdout ---------------------------------------------------------------------------- */

struct tun;

/* stdin and stdout as one local end (access ssh). */
struct sio {
    struct tun *t;
    union {
        uv_pipe_t pipe;
        uv_tty_t tty;
        uv_idle_t idle;   /* in_file: reads are made from an idle callback */
        uv_stream_t stream;
        uv_handle_t handle;
    } in, out;
    int in_open;          /* |in| initialised and not closed */
    int out_open;
    int in_file;          /* stdin is a regular file or a device: plain read() calls */
    int out_file;         /* stdout is a file or a device: plain write() calls (|out| unused) */
    int out_sock;         /* stdout is a socket: its direction ends with a shutdown (|sreq|) */
    int reading;          /* uv_read_start active */
    int paused;           /* the pump stopped reading (the edge is full) */
    int eof;              /* stdin ended */
    int shut;             /* stdout is being (or was) closed */
    int above_high;       /* queued reached ACC_OUT_HIGH: a drain is owed */
    size_t queued;        /* bytes in uv_write requests */
    struct buf in_buf;
    uv_shutdown_t sreq;   /* out_sock: shutdown(SHUT_WR) before the close */
};

struct sio_write {
    uv_write_t req;
    struct sio *sio;
    size_t n;
    uint8_t data[];
};

/* ---- the tunnel ------------------------------------------------------------------------------ */

enum tun_state {
    TUN_S_RESOLVING,
    TUN_S_CONNECTING,
    TUN_S_ANSWER, /* request sent: waiting for the edge's answer */
    TUN_S_PIPE,   /* after the 101 */
    TUN_S_PAGE,   /* reading an error page */
    TUN_S_DONE,
    TUN_S_COUNT
};

#define TUN_F_LOCAL_EOF 0x01   /* the local side ended its direction */
#define TUN_F_EDGE_EOF 0x02    /* the edge sent close_notify */
#define TUN_F_EDGE_SHUT 0x04   /* sock_shutdown towards the edge was asked */
#define TUN_F_LOCAL_SHUT 0x08  /* the local side's write direction was ended */
#define TUN_F_LOCAL_PAUSED 0x10 /* local reading stopped: the edge's queue is full */
#define TUN_F_EDGE_PAUSED 0x20 /* edge reading stopped: the local queue is full */
#define TUN_F_RESOLVING 0x40   /* uv_getaddrinfo in flight */
#define TUN_F_FAILED 0x80      /* ended with an error: access ssh exits 1 */

struct access;

struct tun {
    struct access *a;
    struct list_node node;      /* a->tuns */
    unsigned long id;
    enum tun_state state;
    unsigned flags;
    unsigned pending;           /* socks and stdio handles whose close has not completed */
    struct sock *edge;
    struct sock *local;         /* access tcp */
    struct sio *sio;            /* access ssh */
    struct http1_parser *parser;
    struct sockaddr_storage addrs[ACC_MAX_ADDRS];
    size_t naddrs;
    size_t next_addr;
    int last_err;
    char last_text[256];
    int status;                 /* PAGE: the edge's status */
    char reason[64];
    struct buf page;            /* PAGE: the body, bounded */
};

struct access {
    struct access_opts *o;
    uv_loop_t *loop;
    struct sock_loop *sl;
    SSL_CTX *ctx;
    struct cv_limits limits;
    struct listener *lst;
    uv_signal_t sig_int;
    uv_signal_t sig_term;
    struct list_node tuns;
    unsigned long next_id;
    int stopping;
    int exit_code;
    int fl0;                    /* stdin/stdout file status flags to restore */
    int fl1;
};

static void tun_fail(struct tun *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void move_edge_to_local(struct tun *t);
static void move_local_to_edge(struct tun *t);
static void tun_check_done(struct tun *t);

/* A message for the person at the terminal (access ssh) or the operator (access tcp). */
static void say(const struct access *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const struct access *a, const char *fmt, ...)
{
    va_list ap;

    (void)a;
    fputs("culvert-connector access: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void access_stop(struct access *a);

static void tun_free_if_done(struct tun *t)
{
    struct access *a = t->a;

    if (t->state != TUN_S_DONE || t->pending > 0 || (t->flags & TUN_F_RESOLVING))
        return;
    list_remove(&t->node);
    /* access ssh carries one connection: its failure is the process's. access tcp is a server:
     * a failed connection is reported on stderr, and SIGTERM still ends it with 0. */
    if ((t->flags & TUN_F_FAILED) && a->o->mode == ACCESS_SSH)
        a->exit_code = 1;
    http1_parser_free(t->parser);
    buf_cleanup(&t->page);
    mem_free(t);
    if (a->o->mode == ACCESS_SSH)
        access_stop(a); /* the one connection is over: so is the process */
}

/* ---- local side: sock or stdin/stdout -------------------------------------------------------- */

static void sio_close_handle(struct sio *s, int out);
static void sio_end_out(struct sio *s);

static struct buf *local_in(struct tun *t)
{
    return t->local != NULL ? sock_in(t->local) : &t->sio->in_buf;
}

static int local_write_full(const struct tun *t)
{
    if (t->local != NULL)
        return sock_write_full(t->local);
    return t->sio != NULL && t->sio->queued >= ACC_OUT_HIGH;
}

static void sio_on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b);
static void sio_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);

static void sio_on_idle_read(uv_idle_t *h);

static void sio_update_reading(struct sio *s)
{
    int want = s->in_open && !s->eof && !s->paused && buf_space(&s->in_buf) > 0 &&
               s->t != NULL && s->t->state == TUN_S_PIPE && !uv_is_closing(&s->in.handle);

    if (want && !s->reading) {
        if (s->in_file)
            s->reading = uv_idle_start(&s->in.idle, sio_on_idle_read) == 0;
        else
            s->reading = uv_read_start(&s->in.stream, sio_on_alloc, sio_on_read) == 0;
    } else if (!want && s->reading) {
        if (s->in_file)
            uv_idle_stop(&s->in.idle);
        else
            uv_read_stop(&s->in.stream);
        s->reading = 0;
    }
}

static void local_read(struct tun *t, int on)
{
    if (t->local != NULL) {
        if (on)
            sock_read_start(t->local);
        else
            sock_read_stop(t->local);
        return;
    }
    if (t->sio != NULL) {
        t->sio->paused = !on;
        sio_update_reading(t->sio);
    }
}

static void sio_on_write(uv_write_t *req, int status)
{
    struct sio_write *w = container_of(req, struct sio_write, req);
    struct sio *s = w->sio;
    struct tun *t = s->t;

    s->queued -= w->n;
    mem_free(w);
    if (t == NULL)
        return;
    if (status < 0 && status != UV_ECANCELED) {
        tun_fail(t, "writing to stdout failed: %s", uv_strerror(status));
        return;
    }
    if (s->above_high && s->queued <= ACC_OUT_HIGH / 2) {
        s->above_high = 0;
        if (t->flags & TUN_F_EDGE_PAUSED) {
            t->flags &= ~TUN_F_EDGE_PAUSED;
            sock_read_start(t->edge);
            move_edge_to_local(t);
        }
    }
    if (s->queued == 0 && (t->flags & TUN_F_LOCAL_SHUT))
        sio_end_out(s);
    tun_check_done(t);
}

static int sio_write(struct sio *s, const uint8_t *p, size_t n)
{
    struct sio_write *w;
    uv_buf_t b;
    int rv;

    if (!s->out_open || s->shut)
        return CV_ECLOSED;
    if (s->out_file) {
        /* A file or a device does not block for long: written at once. */
        while (n > 0) {
            ssize_t k = write(1, p, n);

            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return -errno;
            p += k;
            n -= (size_t)k;
        }
        return 0;
    }
    w = mem_alloc(sizeof(*w) + n);
    if (w == NULL)
        return CV_ENOMEM;
    w->sio = s;
    w->n = n;
    memcpy(w->data, p, n);
    b = uv_buf_init((char *)w->data, (unsigned)n);
    rv = uv_write(&w->req, &s->out.stream, &b, 1, sio_on_write);
    if (rv < 0) {
        mem_free(w);
        return rv;
    }
    s->queued += n;
    if (s->queued >= ACC_OUT_HIGH)
        s->above_high = 1;
    return 0;
}

static int local_write(struct tun *t, const uint8_t *p, size_t n)
{
    if (t->local != NULL)
        return sock_write(t->local, p, n);
    return sio_write(t->sio, p, n);
}

static void sio_on_handle_close(uv_handle_t *h)
{
    struct sio *s = h->data;
    struct tun *t = s->t;

    if (h == &s->in.handle)
        s->in_open = 0;
    else
        s->out_open = 0;
    t->pending--;
    if (!s->in_open && !s->out_open) {
        buf_cleanup(&s->in_buf);
        t->sio = NULL;
        mem_free(s);
    }
    tun_free_if_done(t);
}

/* Closes stdin (|out| 0) or stdout (1): for stdout, the end of our direction towards ssh. */
static void sio_close_handle(struct sio *s, int out)
{
    uv_handle_t *h = out ? &s->out.handle : &s->in.handle;
    int open = out ? s->out_open : s->in_open;

    if (!open || uv_is_closing(h))
        return;
    if (!out && s->reading) {
        if (s->in_file)
            uv_idle_stop(&s->in.idle);
        else
            uv_read_stop(&s->in.stream);
        s->reading = 0;
    }
    if (out)
        s->shut = 1;
    if (out && s->out_file) {
        /* No handle (and no |pending| count): a file has no direction to end. The sio is freed
         * with stdin's handle, which is always closed after this. */
        s->out_open = 0;
        return;
    }
    uv_close(h, sio_on_handle_close);
}

static void sio_on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* done, failed or cancelled by the close: the handle is closed either way */
    sio_close_handle(req->data, 1);
}

/* Ends our direction towards the local side (stdout's queued writes are done). A socket (socat's
 * EXEC, inetd) is shut down first: closing fd 1 sends no FIN while fd 0 holds the same socket. */
static void sio_end_out(struct sio *s)
{
    if (!s->out_open || s->shut || uv_is_closing(&s->out.handle))
        return;
    if (s->out_sock) {
        s->shut = 1;
        s->sreq.data = s;
        if (uv_shutdown(&s->sreq, &s->out.stream, sio_on_shutdown) == 0)
            return;
    }
    sio_close_handle(s, 1);
}

static void sio_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct sio *s = h->data;
    uint8_t *p;

    (void)suggested;
    p = buf_reserve(&s->in_buf, 1, NULL);
    if (p == NULL) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    *b = uv_buf_init((char *)p, (unsigned)buf_tailroom(&s->in_buf));
}

static void sio_got(struct sio *s, ssize_t n);

/* stdin is a file: one read() per loop iteration while reading is wanted. */
static void sio_on_idle_read(uv_idle_t *h)
{
    struct sio *s = h->data;
    uint8_t *p = buf_reserve(&s->in_buf, 1, NULL);
    ssize_t n;

    if (p == NULL) {
        sio_update_reading(s);
        return;
    }
    n = read(0, p, buf_tailroom(&s->in_buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    sio_got(s, n == 0 ? UV_EOF : n < 0 ? -errno : n);
}

static void sio_on_read(uv_stream_t *h, ssize_t n, const uv_buf_t *b)
{
    (void)b; /* the bytes landed in in_buf (sio_on_alloc) */
    sio_got(h->data, n);
}

/* |n| bytes landed in |in_buf|, or the end (UV_EOF), or an error. */
static void sio_got(struct sio *s, ssize_t n)
{
    struct tun *t = s->t;

    if (n == 0 || t == NULL)
        return;
    if (n == UV_ENOBUFS) {
        sio_update_reading(s);
        return;
    }
    if (n == UV_EOF) {
        s->eof = 1;
        sio_update_reading(s);
        t->flags |= TUN_F_LOCAL_EOF;
        move_local_to_edge(t);
        return;
    }
    if (n < 0) {
        tun_fail(t, "reading stdin failed: %s", uv_strerror((int)n));
        return;
    }
    buf_commit(&s->in_buf, (size_t)n);
    move_local_to_edge(t);
    if (s->t != NULL)
        sio_update_reading(s);
}

/* Opens fd 0 (|out| 0) or fd 1 (|out| 1) as a libuv stream: a tty, or a pipe or socket. Returns 0
 * or a libuv error; a handle that was initialised is counted open either way (close it). */
static int sio_open(struct sio *s, int out)
{
    struct tun *t = s->t;
    int fd = out ? 1 : 0;
    uv_handle_type type = uv_guess_handle(fd);
    uv_handle_t *h = out ? &s->out.handle : &s->in.handle;
    int *open = out ? &s->out_open : &s->in_open;
    int rv;

    if (type == UV_TTY) {
        rv = uv_tty_init(t->a->loop, out ? &s->out.tty : &s->in.tty, fd, !out);
        if (rv < 0)
            return rv; /* nothing to close: libuv fails before initialising the handle */
    } else if (type == UV_NAMED_PIPE || type == UV_TCP) {
        struct stat st;

        uv_pipe_init(t->a->loop, out ? &s->out.pipe : &s->in.pipe, 0);
        if (out && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            s->out_sock = 1;
    } else if (type == UV_FILE && out) {
        /* A file or a device cannot be polled: written synchronously, no handle. */
        s->out_file = 1;
        s->out.handle.data = s;
        *open = 1;
        return 0;
    } else if (type == UV_FILE) {
        s->in_file = 1;
        uv_idle_init(t->a->loop, &s->in.idle);
    } else {
        return UV_EINVAL;
    }
    h->data = s;
    *open = 1;
    t->pending++;
    if (type == UV_TTY || type == UV_FILE)
        return 0;
    rv = uv_pipe_open(out ? &s->out.pipe : &s->in.pipe, fd);
    return rv;
}

/* Attaches stdin/stdout to |t| as its local end. Returns 0, or CV_EINVAL with a reason in |err|
 * (what was opened is being closed; |t| is then failed by the caller). */
static int sio_attach(struct tun *t, char *err, size_t errlen)
{
    struct sio *s = mem_calloc(sizeof(*s));
    int rv;

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return CV_ENOMEM;
    }
    s->t = t;
    buf_init(&s->in_buf, ACC_IN_CAP);
    t->sio = s;
    rv = sio_open(s, 0);
    if (rv < 0) {
        snprintf(err, errlen, "stdin must be a pipe, a socket or a terminal (as ssh's ProxyCommand "
                              "gives): %s", uv_strerror(rv));
        goto fail;
    }
    rv = sio_open(s, 1);
    if (rv < 0) {
        snprintf(err, errlen, "stdout must be a pipe, a socket or a terminal: %s",
                 uv_strerror(rv));
        goto fail;
    }
    return 0;
fail:
    if (!s->in_open && !s->out_open) {
        buf_cleanup(&s->in_buf);
        t->sio = NULL;
        mem_free(s);
    } else {
        sio_close_handle(s, 0);
        sio_close_handle(s, 1);
    }
    return CV_EINVAL;
}

/* Our direction towards the local side ends: FIN for a sock, the close of stdout for ssh (once
 * its queued writes are done). */
static void local_shutdown(struct tun *t)
{
    if (t->local != NULL) {
        sock_shutdown(t->local);
        return;
    }
    if (t->sio != NULL && t->sio->queued == 0)
        sio_end_out(t->sio);
}

static void local_close(struct tun *t, int abort)
{
    if (t->local != NULL) {
        if (abort)
            sock_abort(t->local);
        else
            sock_close(t->local);
        return;
    }
    if (t->sio != NULL) {
        /* A graceful end comes only once stdout's writes are done (tun_check_done); an abort
         * cancels them. */
        sio_close_handle(t->sio, 0);
        sio_close_handle(t->sio, 1);
    }
}

/* ---- the pump -------------------------------------------------------------------------------- */

static void move_local_to_edge(struct tun *t)
{
    struct buf *in;

    if (t->state != TUN_S_PIPE)
        return;
    in = local_in(t);
    if (buf_len(in) > 0) {
        if (sock_write(t->edge, in->pos, buf_len(in)) < 0) {
            tun_fail(t, "cannot write to the edge");
            return;
        }
        buf_consume(in, buf_len(in));
    }
    if (sock_write_full(t->edge)) {
        if (!(t->flags & TUN_F_LOCAL_PAUSED)) {
            t->flags |= TUN_F_LOCAL_PAUSED;
            local_read(t, 0); /* the edge's on_drain resumes */
        }
    }
    if ((t->flags & TUN_F_LOCAL_EOF) && !(t->flags & TUN_F_EDGE_SHUT)) {
        t->flags |= TUN_F_EDGE_SHUT;
        LOG_D("access conn=%lu local side ended: close_notify to the edge", t->id);
        sock_shutdown(t->edge); /* after the queued bytes: close_notify, then FIN */
    }
    tun_check_done(t);
}

static void move_edge_to_local(struct tun *t)
{
    struct buf *in = sock_in(t->edge);

    if (t->state != TUN_S_PIPE)
        return;
    if (buf_len(in) > 0) {
        if (local_write(t, in->pos, buf_len(in)) < 0) {
            tun_fail(t, "cannot write to the local connection");
            return;
        }
        buf_consume(in, buf_len(in));
    }
    if (local_write_full(t) && !(t->flags & TUN_F_EDGE_PAUSED)) {
        t->flags |= TUN_F_EDGE_PAUSED;
        sock_read_stop(t->edge); /* the local side's drain resumes */
    }
    if ((t->flags & TUN_F_EDGE_EOF) && !(t->flags & TUN_F_LOCAL_SHUT)) {
        t->flags |= TUN_F_LOCAL_SHUT;
        LOG_D("access conn=%lu the edge ended its direction", t->id);
        local_shutdown(t);
    }
    tun_check_done(t);
}

static void tun_end(struct tun *t, int abort)
{
    if (t->state == TUN_S_DONE)
        return;
    t->state = TUN_S_DONE;
    if (t->edge != NULL) {
        if (abort)
            sock_abort(t->edge);
        else
            sock_close(t->edge);
    }
    local_close(t, abort);
    tun_free_if_done(t);
}

static void tun_check_done(struct tun *t)
{
    unsigned both = TUN_F_LOCAL_EOF | TUN_F_EDGE_EOF | TUN_F_EDGE_SHUT | TUN_F_LOCAL_SHUT;

    if (t->state != TUN_S_PIPE || (t->flags & both) != both)
        return;
    if (t->sio != NULL && t->sio->queued > 0)
        return; /* stdout is still being written */
    LOG_I("access conn=%lu closed", t->id);
    tun_end(t, 0);
}

static void tun_fail(struct tun *t, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (t->state == TUN_S_DONE)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (t->a->o->mode == ACCESS_TCP)
        say(t->a, "conn %lu: %s", t->id, msg);
    else
        say(t->a, "%s", msg);
    t->flags |= TUN_F_FAILED;
    tun_end(t, 1);
}

/* ---- the edge's answer ----------------------------------------------------------------------- */

static int ans_on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct tun *t = arg;

    (void)p;
    if (h->flags & HTTP1_F_INTERIM)
        return 0;
    if (h->status == 101) {
        if (h->upgrade != HTTP1_UP_CULVERT_TCP) {
            tun_fail(t, "the edge at %s:%u answered 101 for another protocol than culvert-tcp",
                     t->a->o->edge_host, t->a->o->edge_port);
            return CV_EPROTO;
        }
        t->state = TUN_S_PIPE;
        return HTTP1_PAUSE;
    }
    t->state = TUN_S_PAGE;
    t->status = h->status;
    snprintf(t->reason, sizeof(t->reason), "%.*s", (int)(h->reason_len < 60 ? h->reason_len : 60),
             h->reason);
    return 0;
}

static int ans_on_body(struct http1_parser *p, const uint8_t *data, size_t n, void *arg)
{
    struct tun *t = arg;
    size_t room = buf_space(&t->page);

    (void)p;
    if (room > 0)
        (void)buf_append(&t->page, data, n < room ? n : room);
    return 0;
}

static void report_page(struct tun *t)
{
    char text[1024];

    access_page_text((const char *)t->page.pos, buf_len(&t->page), text, sizeof(text));
    tun_fail(t, "%s: the edge answered %d %s%s%s", t->a->o->hostname, t->status, t->reason,
             text[0] != '\0' ? ": " : "", text);
}

static int ans_on_complete(struct http1_parser *p, void *arg)
{
    struct tun *t = arg;

    (void)p;
    if (t->state == TUN_S_PAGE)
        report_page(t);
    return HTTP1_PAUSE;
}

static const struct http1_hooks answer_hooks = {
    .on_head = ans_on_head,
    .on_body = ans_on_body,
    .on_message_complete = ans_on_complete,
};

/* The 101 arrived: bytes already read past it belong to the pipe. */
static void enter_pipe(struct tun *t)
{
    sock_set_timeout(t->edge, 0);
    LOG_I("access conn=%lu connected to %s through %s:%u", t->id, t->a->o->hostname,
          t->a->o->edge_host, t->a->o->edge_port);
    if (t->local != NULL)
        sock_read_start(t->local);
    else if (t->sio != NULL)
        sio_update_reading(t->sio);
    move_edge_to_local(t);
    if (t->state == TUN_S_PIPE)
        move_local_to_edge(t);
}

static void feed_answer(struct tun *t)
{
    struct buf *in = sock_in(t->edge);
    ssize_t used;

    if (buf_len(in) == 0)
        return;
    used = http1_feed(t->parser, in->pos, buf_len(in));
    if (t->state == TUN_S_DONE)
        return;
    if (used < 0) {
        tun_fail(t, "the edge at %s:%u did not answer with HTTP: %s", t->a->o->edge_host,
                 t->a->o->edge_port, http1_error_reason(t->parser));
        return;
    }
    buf_consume(in, (size_t)used);
    if (t->state == TUN_S_PIPE)
        enter_pipe(t);
}

/* ---- edge connection ------------------------------------------------------------------------- */

static void try_next_edge(struct tun *t);

static void edge_on_connect(struct sock *s, int status, void *arg)
{
    struct tun *t = arg;
    struct buf b;

    if (t->state == TUN_S_DONE || s != t->edge) {
        if (status == 0)
            sock_abort(s);
        return;
    }
    if (status < 0) {
        t->edge = NULL; /* on_close follows */
        t->last_err = status;
        snprintf(t->last_text, sizeof(t->last_text), "%s", sock_error_text(s));
        if (status == CV_ETLS) {
            tun_fail(t, "TLS with the edge %s:%u for %s failed: %s%s", t->a->o->edge_host,
                     t->a->o->edge_port, t->a->o->hostname,
                     t->last_text[0] != '\0' ? t->last_text : cv_strerror(status),
                     t->a->o->edge_ca == NULL ? " (use --edge-ca for a private CA)" : "");
            return;
        }
        /* A refused or timed-out address (TCP or TLS): the name's next one may answer. */
        LOG_I("access conn=%lu edge address %s: %s%s", t->id, sock_peer(s),
              t->last_text[0] != '\0' ? t->last_text : cv_strerror(status),
              t->next_addr < t->naddrs ? "; trying the next address" : "");
        try_next_edge(t);
        return;
    }
    buf_init(&b, 64 * 1024 + 4096);
    if (access_build_request(&b, t->a->o) < 0 || sock_write(s, b.pos, buf_len(&b)) < 0) {
        buf_cleanup(&b);
        tun_fail(t, "cannot send the request to the edge");
        return;
    }
    buf_cleanup(&b);
    t->state = TUN_S_ANSWER;
    sock_set_timeout(s, t->a->o->answer_timeout_ms);
    LOG_D("access conn=%lu TLS to %s, waiting for the edge's answer", t->id, sock_peer(s));
}

static void edge_on_data(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    if (t->state == TUN_S_ANSWER || t->state == TUN_S_PAGE)
        feed_answer(t);
    else if (t->state == TUN_S_PIPE)
        move_edge_to_local(t);
}

static void edge_on_eof(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    if (t->state == TUN_S_ANSWER || t->state == TUN_S_PAGE) {
        feed_answer(t);
        if (t->state == TUN_S_PAGE) {
            /* A close-delimited page ends here; a truncated one is shown as far as it came. */
            (void)http1_finish(t->parser);
            if (t->state == TUN_S_PAGE)
                report_page(t);
            return;
        }
        if (t->state == TUN_S_ANSWER) {
            tun_fail(t, "the edge at %s:%u closed the connection without an answer",
                     t->a->o->edge_host, t->a->o->edge_port);
            return;
        }
    }
    if (t->state != TUN_S_PIPE)
        return;
    t->flags |= TUN_F_EDGE_EOF;
    move_edge_to_local(t);
}

static void edge_on_error(struct sock *s, int err, void *arg)
{
    struct tun *t = arg;

    if (t->state == TUN_S_PIPE)
        tun_fail(t, "the connection to %s was cut: %s%s%s", t->a->o->hostname, cv_strerror(err),
                 sock_error_text(s)[0] != '\0' ? ": " : "", sock_error_text(s));
    else
        tun_fail(t, "the edge at %s:%u failed: %s%s%s", t->a->o->edge_host, t->a->o->edge_port,
                 cv_strerror(err), sock_error_text(s)[0] != '\0' ? ": " : "",
                 sock_error_text(s));
}

static void edge_on_drain(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    if (t->state == TUN_S_PIPE && (t->flags & TUN_F_LOCAL_PAUSED)) {
        t->flags &= ~TUN_F_LOCAL_PAUSED;
        local_read(t, 1);
        move_local_to_edge(t);
    }
}

static void edge_on_timeout(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    tun_fail(t, "the edge at %s:%u did not answer in time", t->a->o->edge_host,
             t->a->o->edge_port);
}

static void edge_on_close(struct sock *s, void *arg)
{
    struct tun *t = arg;

    if (t->edge == s)
        t->edge = NULL;
    t->pending--;
    if (t->state != TUN_S_DONE && t->edge == NULL && t->state != TUN_S_CONNECTING &&
        t->state != TUN_S_RESOLVING)
        tun_fail(t, "the connection to the edge closed");
    tun_free_if_done(t);
}

static const struct sock_hooks edge_hooks = {
    .on_connect = edge_on_connect,
    .on_data = edge_on_data,
    .on_eof = edge_on_eof,
    .on_error = edge_on_error,
    .on_drain = edge_on_drain,
    .on_timeout = edge_on_timeout,
    .on_close = edge_on_close,
};

static void try_next_edge(struct tun *t)
{
    struct access *a = t->a;

    while (t->next_addr < t->naddrs) {
        const struct sockaddr *sa = (const struct sockaddr *)&t->addrs[t->next_addr++];
        struct sock_opts o;
        int err = 0;

        memset(&o, 0, sizeof(o));
        o.tls_ctx = a->ctx;
        o.servername = a->o->hostname; /* SNI and the certificate check: always --hostname */
        o.in_cap = ACC_IN_CAP;
        o.out_high = ACC_OUT_HIGH;
        o.nodelay = 1;
        o.keepalive_s = 30;
        t->edge = sock_connect(a->sl, sa, &o, &edge_hooks, t, &err);
        if (t->edge == NULL) {
            t->last_err = err;
            continue;
        }
        t->pending++;
        t->state = TUN_S_CONNECTING;
        sock_set_timeout(t->edge, a->o->connect_timeout_ms);
        return;
    }
    tun_fail(t, "cannot connect to the edge at %s:%u: %s", a->o->edge_host, a->o->edge_port,
             t->last_text[0] != '\0' ? t->last_text
             : t->last_err != 0      ? cv_strerror(t->last_err)
                                     : "no address");
}

static void on_edge_resolved(int status, struct addrinfo *res, void *arg)
{
    struct tun *t = arg;

    t->flags &= ~TUN_F_RESOLVING;
    if (t->state == TUN_S_DONE) {
        tun_free_if_done(t);
        return;
    }
    if (status < 0 || res == NULL) {
        tun_fail(t, "cannot resolve the edge's name %s: %s", t->a->o->edge_host,
                 uv_strerror(status));
        return;
    }
    for (const struct addrinfo *ai = res; ai != NULL && t->naddrs < ACC_MAX_ADDRS;
         ai = ai->ai_next) {
        if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
            ai->ai_addrlen <= sizeof(t->addrs[0]))
            memcpy(&t->addrs[t->naddrs++], ai->ai_addr, ai->ai_addrlen);
    }
    try_next_edge(t);
}

/* ---- local connections ----------------------------------------------------------------------- */

static void local_on_data(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    move_local_to_edge(t); /* before the 101 the bytes wait in the sock's buffer */
}

static void local_on_eof(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    t->flags |= TUN_F_LOCAL_EOF;
    if (t->state == TUN_S_PIPE) {
        move_local_to_edge(t);
        return;
    }
    /* Before the 101: the local client gave up; so do we. */
    LOG_I("access conn=%lu the local client left before the edge answered", t->id);
    tun_end(t, 1);
}

static void local_on_error(struct sock *s, int err, void *arg)
{
    struct tun *t = arg;

    (void)s;
    LOG_I("access conn=%lu local connection failed: %s", t->id, cv_strerror(err));
    tun_end(t, 1); /* the edge sees the truncation (no close_notify) */
}

static void local_on_drain(struct sock *s, void *arg)
{
    struct tun *t = arg;

    (void)s;
    if (t->state == TUN_S_PIPE && (t->flags & TUN_F_EDGE_PAUSED)) {
        t->flags &= ~TUN_F_EDGE_PAUSED;
        sock_read_start(t->edge);
        move_edge_to_local(t);
    }
}

static void local_on_close(struct sock *s, void *arg)
{
    struct tun *t = arg;

    if (t->local == s)
        t->local = NULL;
    t->pending--;
    if (t->state != TUN_S_DONE)
        tun_end(t, 1);
    tun_free_if_done(t);
}

static const struct sock_hooks local_hooks = {
    .on_data = local_on_data,
    .on_eof = local_on_eof,
    .on_error = local_on_error,
    .on_drain = local_on_drain,
    .on_close = local_on_close,
};

/* Starts a tunnel for a local end already attached to |t|. */
static void tun_start(struct tun *t)
{
    struct access *a = t->a;
    struct access_opts *o = a->o;
    char port[8];
    int rv;

    t->parser = http1_parser_new(HTTP1_RESPONSE, &a->limits, &answer_hooks, t);
    if (t->parser == NULL) {
        tun_fail(t, "out of memory");
        return;
    }
    if (uv_ip4_addr(o->edge_host, o->edge_port, (struct sockaddr_in *)&t->addrs[0]) == 0 ||
        uv_ip6_addr(o->edge_host, o->edge_port, (struct sockaddr_in6 *)&t->addrs[0]) == 0) {
        t->naddrs = 1;
        try_next_edge(t);
        return;
    }
    snprintf(port, sizeof(port), "%u", o->edge_port);
    t->state = TUN_S_RESOLVING;
    rv = sock_resolve(a->sl, o->edge_host, port, on_edge_resolved, t);
    if (rv < 0) {
        tun_fail(t, "cannot resolve the edge's name %s: %s", o->edge_host, cv_strerror(rv));
        return;
    }
    t->flags |= TUN_F_RESOLVING;
}

static struct tun *tun_new(struct access *a)
{
    struct tun *t = mem_calloc(sizeof(*t));

    if (t == NULL)
        return NULL;
    t->a = a;
    t->id = ++a->next_id;
    t->state = TUN_S_RESOLVING;
    buf_init(&t->page, ACC_PAGE_CAP);
    list_push_back(&a->tuns, &t->node);
    return t;
}

static void on_accept(struct listener *l, uv_stream_t *server, void *arg)
{
    struct access *a = arg;
    struct sock_opts o;
    struct tun *t;
    int err = 0;

    (void)l;
    memset(&o, 0, sizeof(o));
    o.in_cap = ACC_IN_CAP;
    o.out_high = ACC_OUT_HIGH;
    o.nodelay = 1;
    t = tun_new(a);
    if (t == NULL) {
        struct sock *s = sock_accept(a->sl, server, &o, NULL, NULL, &err);

        if (s != NULL)
            sock_abort(s);
        say(a, "out of memory: connection refused");
        return;
    }
    t->local = sock_accept(a->sl, server, &o, &local_hooks, t, &err);
    if (t->local == NULL) {
        LOG_W("access: accept failed: %s", cv_strerror(err));
        t->state = TUN_S_DONE;
        tun_free_if_done(t);
        return;
    }
    t->pending++;
    sock_read_stop(t->local); /* nothing moves before the edge's 101 */
    LOG_I("access conn=%lu accepted %s", t->id, sock_peer(t->local));
    tun_start(t);
}

/* ---- process --------------------------------------------------------------------------------- */

static void access_stop(struct access *a)
{
    struct list_node *n;
    struct list_node *tmp;

    if (a->stopping)
        return;
    a->stopping = 1;
    if (a->lst != NULL) {
        listener_stop(a->lst);
        a->lst = NULL;
    }
    uv_signal_stop(&a->sig_int);
    uv_signal_stop(&a->sig_term);
    uv_close((uv_handle_t *)&a->sig_int, NULL);
    uv_close((uv_handle_t *)&a->sig_term, NULL);
    list_for_each_safe(n, tmp, &a->tuns)
    {
        tun_end(container_of(n, struct tun, node), 1);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct access *a = h->data;

    LOG_I("access: signal %d, stopping", signum);
    if (a->o->mode == ACCESS_SSH)
        a->exit_code = 1;
    access_stop(a);
}

static int run(struct access_opts *o)
{
    struct access a;
    struct tls_client_opts to;
    uv_loop_t loop;
    char err[1024];

    memset(&a, 0, sizeof(a));
    a.o = o;
    list_init(&a.tuns);
    limits_init(&a.limits);
    memset(&to, 0, sizeof(to));
    to.ca_file = o->edge_ca;
    to.system_store = o->edge_ca == NULL;
    to.alpn = "http/1.1";
    to.min_version = TLS_MIN_1_3; /* PRODUCT.md section 3: the access client speaks TLS 1.3 */
    a.ctx = tls_ctx_client_new(&to, err, sizeof(err));
    if (a.ctx == NULL) {
        fprintf(stderr, "culvert-connector access: --edge-ca: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    a.fl0 = fcntl(0, F_GETFL);
    a.fl1 = fcntl(1, F_GETFL);
    uv_loop_init(&loop);
    a.loop = &loop;
    if (sock_loop_init(&a.sl, &loop) < 0) {
        SSL_CTX_free(a.ctx);
        fprintf(stderr, "culvert-connector access: cannot initialise the event loop\n");
        return 1;
    }
    uv_signal_init(&loop, &a.sig_int);
    uv_signal_init(&loop, &a.sig_term);
    a.sig_int.data = &a;
    a.sig_term.data = &a;
    uv_signal_start(&a.sig_int, on_signal, SIGINT);
    uv_signal_start(&a.sig_term, on_signal, SIGTERM);
    if (o->mode == ACCESS_TCP) {
        a.lst = listener_start(&loop, &o->listen, 0, on_accept, &a, err, sizeof(err));
        if (a.lst == NULL) {
            fprintf(stderr, "culvert-connector access: cannot %s\n", err);
            a.exit_code = 1;
            access_stop(&a);
        } else {
            char addr[300];

            config_format_addr(&o->listen, addr, sizeof(addr));
            fprintf(stderr, "culvert-connector access: listening on %s for %s (through %s:%u)\n",
                    addr, o->hostname, o->edge_host, o->edge_port);
        }
    } else {
        struct tun *t = tun_new(&a);

        if (t == NULL) {
            fprintf(stderr, "culvert-connector access: out of memory\n");
            a.exit_code = 1;
            access_stop(&a);
        } else {
            if (sio_attach(t, err, sizeof(err)) < 0) {
                say(&a, "%s", err);
                t->flags |= TUN_F_FAILED;
                tun_end(t, 1);
            } else {
                tun_start(t);
            }
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    sock_loop_cleanup(a.sl);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        LOG_W("access: event loop closed with handles still open");
    SSL_CTX_free(a.ctx);
    /* uv_pipe_open made the descriptors non-blocking; they are shared with the parent. */
    if (a.fl0 >= 0)
        (void)fcntl(0, F_SETFL, a.fl0);
    if (a.fl1 >= 0)
        (void)fcntl(1, F_SETFL, a.fl1);
    return a.exit_code;
}

int access_main(int argc, char **argv)
{
    struct access_opts o;
    char err[512];
    int rv = access_parse_args(argc, argv, &o, err, sizeof(err));

    if (rv == ACCESS_HELP) {
        access_usage(stdout);
        return 0;
    }
    if (rv < 0) {
        fprintf(stderr, "culvert-connector: %s\n(see culvert-connector access --help)\n", err);
        return 2;
    }
    log_set_program("access");
    log_set_level(o.loglevel);
    return run(&o);
}
