/*
 * cli.c - the tunnel and route commands; see cli.h.
 *
 * Above: main.c (argv from "tunnel"/"route" on). Below: edge_config (--config), common/token (the
 * admin token file, read with the same permission checks as the edge), common/http1 (the answer),
 * common/json, and blocking POSIX sockets with poll() deadlines: this is a short-lived process, not
 * the server loop.
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "config.h"
#include "edge_config.h"
#include "err.h"
#include "http1.h"
#include "json.h"
#include "limits.h"
#include "mem.h"
#include "store.h"
#include "token.h"

#define CLI_MAX_ANSWER (16u << 20)
#define CLI_MAX_ARGS 4

enum output { OUT_TEXT, OUT_JSON };

struct cli {
    FILE *out;
    FILE *err;
    const char *prog; /* "culvert-edge tunnel create" for messages */
    char prog_buf[96];
    /* options */
    const char *admin;
    const char *token_file;
    const char *config;
    enum output output;
    bool help;
    bool allow_overlap; /* route add --allow-overlap */
    const char *args[CLI_MAX_ARGS];
    int nargs;
    /* resolved target */
    struct config_addr addr;
    char addr_text[CONFIG_UNIX_PATH_MAX + 300]; /* "http://127.0.0.1:7845" or "unix:/path" */
    char *token_path;                          /* owned */
};

struct command;
typedef int (*command_fn)(struct cli *c, const struct command *cmd);

struct command {
    const char *group;
    const char *name;
    int nargs;
    const char *args;    /* "NAME", "HOSTNAME TUNNEL" */
    const char *summary; /* one line for the group help */
    const char *help;    /* one paragraph for the command's help */
    command_fn run;
};

/* ---- messages ----------------------------------------------------------------------------- */

static int usage_error(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int usage_error(struct cli *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(c->err, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fprintf(c->err, " (see --help)\n");
    return 2;
}

static int failure(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int failure(struct cli *c, const char *fmt, ...)
{
    va_list ap;

    fprintf(c->err, "%s: ", c->prog);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
    return 1;
}

static const char options_help[] =
    "Options:\n"
    "  --admin URL              admin API: http://HOST:PORT or unix:/PATH\n"
    "                           (default: from /etc/culvert/edge.yml if it exists, else\n"
    "                           http://127.0.0.1:7845)\n"
    "  --admin-token-file FILE  admin token (default: admin.token_file of the config, else\n"
    "                           /etc/culvert/admin.token)\n"
    "  --config FILE            read admin.listen and admin.token_file from this edge.yml\n"
    "  --output json|text       output format (default text)\n"
    "  --help                   this help\n";
static const char overlap_help[] =
    "  --allow-overlap          accept a route that overlaps another tunnel's\n";

/* ---- admin address and token -------------------------------------------------------------- */

/* Parses --admin: "http://HOST:PORT[/]", "HOST:PORT" or "unix:/PATH". */
static int parse_admin_url(struct cli *c, const char *url)
{
    char tmp[CONFIG_UNIX_PATH_MAX + 300];
    const char *why = "invalid address";
    size_t n;

    if (strncmp(url, "https://", 8) == 0)
        return usage_error(c, "--admin: the admin API speaks plain http on loopback or a unix "
                              "socket (write http://HOST:PORT or unix:/PATH)");
    if (strncmp(url, "http://", 7) == 0)
        url += 7;
    else if (strstr(url, "://") != NULL)
        return usage_error(c, "--admin: %.*s is not a scheme the admin API speaks (expected "
                              "http://HOST:PORT or unix:/PATH)",
                           (int)(strstr(url, "://") - url + 3), url);
    n = strlen(url);
    if (n >= sizeof(tmp))
        return usage_error(c, "--admin: address too long");
    memcpy(tmp, url, n + 1);
    if (n > 0 && tmp[n - 1] == '/' && strncmp(tmp, "unix:", 5) != 0)
        tmp[n - 1] = '\0';
    if (config_parse_addr(tmp, CONFIG_ADDR_ALLOW_UNIX, &c->addr, &why) < 0)
        return usage_error(c, "--admin: %s (expected http://HOST:PORT or unix:/PATH)", why);
    return 0;
}

static int set_token_path(struct cli *c, const char *p)
{
    char *copy = mem_strdup(p);

    if (copy == NULL)
        return failure(c, "out of memory");
    mem_free(c->token_path);
    c->token_path = copy;
    return 0;
}

/* Decides where to connect and which token file to read (see cli.h for the precedence). */
static int resolve_target(struct cli *c)
{
    const char *config = c->config;
    int rv;

    if (config == NULL && c->admin == NULL && access(EDGE_CONFIG_DEFAULT_PATH, F_OK) == 0)
        config = EDGE_CONFIG_DEFAULT_PATH;
    if (config != NULL) {
        struct edge_config *cfg = NULL;
        char err[1024];

        if (edge_config_load(config, &cfg, err, sizeof(err)) < 0) {
            fprintf(c->err, "%s: %s\n", c->prog, err);
            return 2;
        }
        c->addr = cfg->admin_listen;
        rv = set_token_path(c, cfg->admin_token_file);
        edge_config_free(cfg);
        if (rv != 0)
            return rv;
    } else {
        config_parse_addr(EDGE_CONFIG_DEFAULT_ADMIN, 0, &c->addr, NULL);
        rv = set_token_path(c, EDGE_CONFIG_DEFAULT_TOKEN_FILE);
        if (rv != 0)
            return rv;
    }
    if (c->admin != NULL) {
        rv = parse_admin_url(c, c->admin);
        if (rv != 0)
            return rv;
    }
    if (c->token_file != NULL) {
        rv = set_token_path(c, c->token_file);
        if (rv != 0)
            return rv;
    }
    /* A server on every interface is reached on loopback. */
    if (c->addr.kind == CONFIG_ADDR_TCP && c->addr.host_kind == HOSTNAME_IPV4 &&
        strcmp(c->addr.host, "0.0.0.0") == 0)
        snprintf(c->addr.host, sizeof(c->addr.host), "127.0.0.1");
    if (c->addr.kind == CONFIG_ADDR_TCP && c->addr.host_kind == HOSTNAME_IPV6 &&
        strcmp(c->addr.host, "::") == 0)
        snprintf(c->addr.host, sizeof(c->addr.host), "::1");
    if (c->addr.kind == CONFIG_ADDR_UNIX) {
        snprintf(c->addr_text, sizeof(c->addr_text), "unix:%s", c->addr.path);
    } else {
        char hp[300];

        config_format_addr(&c->addr, hp, sizeof(hp));
        snprintf(c->addr_text, sizeof(c->addr_text), "http://%s", hp);
    }
    return 0;
}

/* ---- connection --------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline)
{
    int64_t left = deadline - mono_ms();

    return left > 0 ? (int)left : 0;
}

/* Waits until |fd| is ready for |events| or the deadline. 0, CV_ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p;
    int rv;

    for (;;) {
        p.fd = fd;
        p.events = events;
        p.revents = 0;
        rv = poll(&p, 1, remaining(deadline));
        if (rv > 0)
            return 0;
        if (rv == 0)
            return CV_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Non-blocking connect to |sa| with the deadline. Returns the socket, or a negative code. */
static int connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int soerr = 0;
    socklen_t slen = sizeof(soerr);
    int rv;

    if (fd < 0)
        return -errno;
    if (connect(fd, sa, len) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        rv = -errno;
        close(fd);
        return rv;
    }
    rv = wait_fd(fd, POLLOUT, deadline);
    if (rv == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0)
        rv = -errno;
    if (rv == 0 && soerr != 0)
        rv = -soerr;
    if (rv < 0) {
        close(fd);
        return rv;
    }
    return fd;
}

/* Connects to the admin API. Returns the socket, or 1 after printing why. */
static int admin_connect(struct cli *c, int64_t deadline, int *fd_out)
{
    int fd = -1;
    int rv;

    if (c->addr.kind == CONFIG_ADDR_UNIX) {
        struct sockaddr_un un;

        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", c->addr.path);
        rv = connect_addr((const struct sockaddr *)&un, sizeof(un), deadline);
        fd = rv;
    } else {
        struct addrinfo hints;
        struct addrinfo *res = NULL;
        struct addrinfo *ai;
        char port[8];
        int gai;

        memset(&hints, 0, sizeof(hints));
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_family = AF_UNSPEC;
        snprintf(port, sizeof(port), "%u", c->addr.port);
        gai = getaddrinfo(c->addr.host, port, &hints, &res);
        if (gai != 0)
            return failure(c, "cannot resolve the edge admin API address %s: %s", c->addr_text,
                           gai_strerror(gai));
        rv = -ECONNREFUSED;
        for (ai = res; ai != NULL; ai = ai->ai_next) {
            rv = connect_addr(ai->ai_addr, ai->ai_addrlen, deadline);
            if (rv >= 0 || rv == CV_ETIMEDOUT)
                break;
        }
        freeaddrinfo(res);
        fd = rv;
    }
    if (fd < 0) {
        const char *why = fd == CV_ETIMEDOUT ? "timed out" : cv_strerror(fd);

        return failure(c, "cannot reach the edge admin API at %s (%s): is `culvert-edge serve` "
                          "running?",
                       c->addr_text, why);
    }
    *fd_out = fd;
    return 0;
}

static int send_all(int fd, const uint8_t *p, size_t n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rv = wait_fd(fd, POLLOUT, deadline);

            if (rv < 0)
                return rv;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

struct answer {
    int status;
    bool done;
    struct buf body;
};

static int ans_on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct answer *a = arg;

    (void)p;
    if (!(h->flags & HTTP1_F_INTERIM))
        a->status = h->status;
    return 0;
}

static int ans_on_body(struct http1_parser *p, const uint8_t *data, size_t n, void *arg)
{
    struct answer *a = arg;

    (void)p;
    return buf_append(&a->body, data, n);
}

static int ans_on_complete(struct http1_parser *p, void *arg)
{
    struct answer *a = arg;

    (void)p;
    a->done = true;
    return HTTP1_PAUSE;
}

static const struct http1_hooks answer_hooks = {
    .on_head = ans_on_head,
    .on_body = ans_on_body,
    .on_message_complete = ans_on_complete,
};

/* Reads one answer from |fd| into |a|. Returns 0, or 1 after printing why. */
static int read_answer(struct cli *c, int fd, struct answer *a, int64_t deadline)
{
    struct cv_limits lim;
    struct http1_parser *p;
    uint8_t chunk[16384];
    int rv = 0;

    limits_init(&lim);
    p = http1_parser_new(HTTP1_RESPONSE, &lim, &answer_hooks, a);
    if (p == NULL)
        return failure(c, "out of memory");
    while (!a->done) {
        ssize_t n;

        rv = wait_fd(fd, POLLIN, deadline);
        if (rv < 0)
            break;
        n = recv(fd, chunk, sizeof(chunk), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (n < 0) {
            rv = -errno;
            break;
        }
        if (n == 0) {
            rv = http1_finish(p);
            if (rv == 0 && !a->done)
                rv = CV_EPARSE;
            break;
        }
        if (http1_feed(p, chunk, (size_t)n) < 0) {
            rv = CV_EPARSE;
            break;
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk)); /* may hold a tunnel token */
    http1_parser_free(p);
    if (a->done)
        return 0;
    if (rv == CV_ETIMEDOUT)
        return failure(c, "the edge admin API at %s did not answer within %ds", c->addr_text,
                       CLI_TIMEOUT_MS / 1000);
    if (rv == CV_EPARSE)
        return failure(c, "the edge admin API at %s sent an invalid answer", c->addr_text);
    return failure(c, "reading from the edge admin API at %s failed: %s", c->addr_text,
                   cv_strerror(rv));
}

/*
 * Sends |method| |path| with |body| (JSON or NULL) and parses the JSON answer into *|out|. A 2xx
 * answer returns 0; anything else prints the reason and returns 1.
 */
static int call(struct cli *c, const char *method, const char *path, const char *body,
                struct json_value **out)
{
    int64_t deadline = mono_ms() + CLI_TIMEOUT_MS;
    struct token_error terr;
    struct answer a;
    struct buf req;
    struct json_error jerr;
    char *token = NULL;
    size_t token_len = 0;
    char host[300];
    char len[24];
    int fd = -1;
    int list;
    int rv;

    *out = NULL;
    rv = admin_connect(c, deadline, &fd);
    if (rv != 0)
        return rv;
    memset(&terr, 0, sizeof(terr));
    rv = token_read_secret_file(c->token_path, &token, &token_len, &terr);
    if (rv < 0) {
        close(fd);
        return failure(c, "cannot use the admin token: %s (set --admin-token-file or --config)",
                       terr.msg);
    }
    if (c->addr.kind == CONFIG_ADDR_UNIX)
        snprintf(host, sizeof(host), "localhost");
    else
        config_format_addr(&c->addr, host, sizeof(host));
    snprintf(len, sizeof(len), "%zu", body != NULL ? strlen(body) : 0);
    buf_init(&req, 64 * 1024);
    rv = buf_append(&req, method, strlen(method));
    rv = rv == 0 ? buf_append(&req, " ", 1) : rv;
    rv = rv == 0 ? buf_append(&req, path, strlen(path)) : rv;
    rv = rv == 0 ? buf_append(&req, " HTTP/1.1\r\nHost: ", 17) : rv;
    rv = rv == 0 ? buf_append(&req, host, strlen(host)) : rv;
    rv = rv == 0 ? buf_append(&req, "\r\nAuthorization: Bearer ", 24) : rv;
    rv = rv == 0 ? buf_append(&req, token, token_len) : rv;
    rv = rv == 0 ? buf_append(&req, "\r\nAccept: application/json\r\nConnection: close\r\n", 47)
                 : rv;
    if (body != NULL) {
        rv = rv == 0 ? buf_append(&req, "Content-Type: application/json\r\nContent-Length: ", 48)
                     : rv;
        rv = rv == 0 ? buf_append(&req, len, strlen(len)) : rv;
        rv = rv == 0 ? buf_append(&req, "\r\n", 2) : rv;
    }
    rv = rv == 0 ? buf_append(&req, "\r\n", 2) : rv;
    if (body != NULL)
        rv = rv == 0 ? buf_append(&req, body, strlen(body)) : rv;
    mem_free_secret(token, token_len + 1);
    if (rv == 0)
        rv = send_all(fd, req.pos, buf_len(&req), deadline);
    if (req.base != NULL)
        OPENSSL_cleanse(req.base, (size_t)(req.end - req.base)); /* holds the admin token */
    buf_cleanup(&req);
    if (rv < 0) {
        close(fd);
        if (rv == CV_ETIMEDOUT)
            return failure(c, "the edge admin API at %s did not answer within %ds", c->addr_text,
                           CLI_TIMEOUT_MS / 1000);
        return failure(c, "sending to the edge admin API at %s failed: %s", c->addr_text,
                       cv_strerror(rv));
    }
    memset(&a, 0, sizeof(a));
    buf_init(&a.body, CLI_MAX_ANSWER);
    rv = read_answer(c, fd, &a, deadline);
    close(fd);
    if (rv == 0 && buf_len(&a.body) > 0) {
        struct json_limits jl = {CLI_MAX_ANSWER, JSON_DEFAULT_MAX_DEPTH};

        memset(&jerr, 0, sizeof(jerr));
        if (json_parse((const char *)a.body.pos, buf_len(&a.body), &jl, out, &jerr) < 0)
            *out = NULL;
    }
    if (a.body.base != NULL)
        OPENSSL_cleanse(a.body.base, (size_t)(a.body.end - a.body.base));
    buf_cleanup(&a.body);
    if (rv != 0)
        return rv;
    if (a.status == 401) {
        json_free(*out);
        *out = NULL;
        return failure(c, "the edge admin API at %s refused the admin token from %s (401): use "
                          "the file named by admin.token_file in edge.yml (--admin-token-file "
                          "or --config)",
                       c->addr_text, c->token_path);
    }
    if (a.status < 200 || a.status > 299) {
        const char *msg = json_as_string(json_object_get(*out, "error"), NULL);

        rv = failure(c, "%s (HTTP %d)", msg != NULL ? msg : http1_status_reason(a.status),
                     a.status);
        json_free(*out);
        *out = NULL;
        return rv;
    }
    if (*out == NULL)
        return failure(c, "the edge admin API at %s sent an answer that is not JSON",
                       c->addr_text);
    /* The lists are arrays; every other answer is an object naming a tunnel ("id") or a route
     * ("hostname"). Anything else came from something that is not culvert-edge's admin API
     * (another service on that port). */
    list = strcmp(method, "GET") == 0 &&
           (strcmp(path, "/v1/tunnels") == 0 || strcmp(path, "/v1/routes") == 0);
    if (list ? json_typeof(*out) != JSON_ARRAY
             : json_as_string(json_object_get(*out, "id"), NULL) == NULL &&
                   json_as_string(json_object_get(*out, "hostname"), NULL) == NULL) {
        json_free(*out);
        *out = NULL;
        return failure(c, "the service at %s did not answer %s %s as culvert-edge's admin API "
                          "does: is that the edge's admin address?",
                       c->addr_text, method, path);
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static void write_value(struct json_writer *w, const struct json_value *v)
{
    size_t i;
    size_t len;
    int64_t iv;
    double dv;
    bool bv;

    switch (json_typeof(v)) {
    case JSON_NULL:
        json_w_null(w);
        break;
    case JSON_BOOL:
        json_as_bool(v, &bv);
        json_w_bool(w, bv);
        break;
    case JSON_NUMBER:
        if (json_as_int64(v, &iv) == 0) {
            json_w_int(w, iv);
        } else {
            json_as_double(v, &dv);
            json_w_double(w, dv);
        }
        break;
    case JSON_STRING: {
        const char *s = json_as_string(v, &len);

        json_w_stringn(w, s, len);
        break;
    }
    case JSON_ARRAY:
        json_w_array_begin(w);
        for (i = 0; i < json_array_count(v); i++)
            write_value(w, json_array_at(v, i));
        json_w_array_end(w);
        break;
    case JSON_OBJECT:
        json_w_object_begin(w);
        for (i = 0; i < json_object_count(v); i++) {
            json_w_key(w, json_object_key(v, i, NULL));
            write_value(w, json_object_value(v, i));
        }
        json_w_object_end(w);
        break;
    }
}

/* --output json: the answer, pretty-printed. */
static int print_json(struct cli *c, const struct json_value *v)
{
    struct json_writer w;
    struct buf b;
    int rv;

    buf_init(&b, CLI_MAX_ANSWER * 2);
    json_w_init(&w, &b, JSON_W_PRETTY);
    write_value(&w, v);
    rv = json_w_finish(&w);
    if (rv == 0) {
        fwrite(b.pos, 1, buf_len(&b), c->out);
        fputc('\n', c->out);
    }
    if (b.base != NULL)
        OPENSSL_cleanse(b.base, (size_t)(b.end - b.base));
    buf_cleanup(&b);
    if (rv < 0)
        return failure(c, "cannot print the answer: %s", cv_strerror(rv));
    return 0;
}

static const char *str(const struct json_value *obj, const char *key)
{
    const char *s = json_as_string(json_object_get(obj, key), NULL);

    /* "-" for an empty value too (a connector started without a region) */
    return s != NULL && s[0] != '\0' ? s : "-";
}

static int64_t num(const struct json_value *obj, const char *key)
{
    int64_t v = 0;
    double d;

    if (json_as_int64(json_object_get(obj, key), &v) == 0)
        return v;
    if (json_as_double(json_object_get(obj, key), &d) == 0)
        return (int64_t)d;
    return 0;
}

static int print_token(struct cli *c, const struct json_value *v, bool rotated)
{
    const char *name = str(v, "name");

    if (rotated)
        fprintf(c->out, "Rotated the token of tunnel \"%s\" (id %s); connectors using the old "
                        "token were disconnected.\n",
                name, str(v, "id"));
    else
        fprintf(c->out, "Created tunnel \"%s\" with id %s.\n", name, str(v, "id"));
    fprintf(c->out, "\nToken (shown only once: store it now; `culvert-edge tunnel rotate-token "
                    "%s` makes a new one):\n\n%s\n\n",
            name, str(v, "token"));
    fprintf(c->out, "Run a connector with:\n  culvert-connector run --token <TOKEN> --url "
                    "http://localhost:8080\n");
    if (!rotated)
        fprintf(c->out, "and route a hostname to it with:\n  culvert-edge route add "
                        "app.example.com %s\n",
                name);
    return 0;
}

/* ---- commands ----------------------------------------------------------------------------- */

/* Percent-encodes a path segment (names and hostnames hold only unreserved characters and '*',
 * but user input may hold anything). */
static void encode_segment(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '*') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

/* {"k1": v1, "k2": v2} with JSON-escaped values, into a new string (NULL: out of memory). */
/* {"k1": "v1", "k2": "v2", "flag": true}; |k2| and |flag| may be NULL. */
static char *json_body(const char *k1, const char *v1, const char *k2, const char *v2, const char *flag)
{
    struct json_writer w;
    struct buf b;
    char *s = NULL;

    buf_init(&b, 64 * 1024);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, k1);
    json_w_string(&w, v1);
    if (k2 != NULL) {
        json_w_key(&w, k2);
        json_w_string(&w, v2);
    }
    if (flag != NULL) {
        json_w_key(&w, flag);
        json_w_bool(&w, true);
    }
    json_w_object_end(&w);
    if (json_w_finish(&w) == 0)
        s = mem_strndup((const char *)b.pos, buf_len(&b));
    buf_cleanup(&b);
    return s;
}

static int cmd_tunnel_create(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    char *body;
    const char *why = NULL;
    int rv;

    (void)cmd;
    if (!store_name_valid(c->args[0], &why))
        return usage_error(c, "NAME \"%s\": %s", c->args[0], why);
    body = json_body("name", c->args[0], NULL, NULL, NULL);
    if (body == NULL)
        return failure(c, "out of memory");
    rv = call(c, "POST", "/v1/tunnels", body, &v);
    mem_free(body);
    if (rv != 0)
        return rv;
    rv = c->output == OUT_JSON ? print_json(c, v) : print_token(c, v, false);
    json_free(v);
    return rv;
}

/* Pads |s| to |width| columns. */
static void cell(FILE *f, const char *s, int width)
{
    fprintf(f, "%-*s", width, s);
}

static int cmd_tunnel_list(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    size_t i;
    size_t n;
    int wname = 4;
    int rv;

    (void)cmd;
    rv = call(c, "GET", "/v1/tunnels", NULL, &v);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    n = json_array_count(v);
    if (n == 0) {
        fprintf(c->out, "No tunnels. Create one with `culvert-edge tunnel create NAME`.\n");
        json_free(v);
        return 0;
    }
    for (i = 0; i < n; i++) {
        int len = (int)strlen(str(json_array_at(v, i), "name"));

        if (len > wname)
            wname = len;
    }
    cell(c->out, "ID", 38);
    cell(c->out, "NAME", wname + 2);
    cell(c->out, "CREATED", 22);
    fprintf(c->out, "CONNECTORS\n");
    for (i = 0; i < n; i++) {
        const struct json_value *t = json_array_at(v, i);

        cell(c->out, str(t, "id"), 38);
        cell(c->out, str(t, "name"), wname + 2);
        cell(c->out, str(t, "created_at"), 22);
        fprintf(c->out, "%lld\n", (long long)num(t, "connectors"));
    }
    json_free(v);
    return 0;
}

static int tunnel_path(struct cli *c, const char *suffix, char *out, size_t cap)
{
    char enc[STORE_NAME_MAX * 3 + 1];

    if (strlen(c->args[0]) > 256)
        return usage_error(c, "NAME is too long");
    encode_segment(c->args[0], enc, sizeof(enc));
    snprintf(out, cap, "/v1/tunnels/%s%s", enc, suffix);
    return 0;
}

static int cmd_tunnel_info(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    const struct json_value *routes;
    const struct json_value *conns;
    char path[1024];
    size_t i;
    size_t j;
    int rv;

    (void)cmd;
    rv = tunnel_path(c, "", path, sizeof(path));
    if (rv == 0)
        rv = call(c, "GET", path, NULL, &v);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    routes = json_object_get(v, "routes");
    conns = json_object_get(v, "connectors");
    fprintf(c->out, "Name:        %s\n", str(v, "name"));
    fprintf(c->out, "ID:          %s\n", str(v, "id"));
    fprintf(c->out, "Created:     %s\n", str(v, "created_at"));
    fprintf(c->out, "Routes:      ");
    if (json_array_count(routes) == 0)
        fprintf(c->out, "none\n");
    for (i = 0; i < json_array_count(routes); i++) {
        const char *h = json_as_string(json_array_at(routes, i), NULL);

        fprintf(c->out, "%s%s\n", i > 0 ? "             " : "", h != NULL ? h : "-");
    }
    fprintf(c->out, "Connectors:  %zu online\n", json_array_count(conns));
    for (i = 0; i < json_array_count(conns); i++) {
        const struct json_value *k = json_array_at(conns, i);
        const struct json_value *cl = json_object_get(k, "connections");

        fprintf(c->out, "  connector %s  version %s  region %s  %zu connection%s\n", str(k, "id"),
                str(k, "version"), str(k, "region"), json_array_count(cl),
                json_array_count(cl) == 1 ? "" : "s");
        for (j = 0; j < json_array_count(cl); j++) {
            const struct json_value *cn = json_array_at(cl, j);
            double rtt = 0;
            int64_t streams = 0;

            json_as_double(json_object_get(cn, "rtt_ms"), &rtt);
            json_as_int64(json_object_get(cn, "streams"), &streams);
            fprintf(c->out,
                    "    connection %s  edge %s  rtt %.1f ms  streams %" PRId64 "  since %s\n",
                    str(cn, "id"), str(cn, "edge"), rtt, streams, str(cn, "opened_at"));
        }
    }
    json_free(v);
    return 0;
}

static int cmd_tunnel_delete(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    char path[1024];
    int64_t routes;
    int rv;

    (void)cmd;
    rv = tunnel_path(c, "", path, sizeof(path));
    if (rv == 0)
        rv = call(c, "DELETE", path, NULL, &v);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    routes = num(v, "routes_removed");
    fprintf(c->out, "Deleted tunnel \"%s\" (id %s) and %lld route%s; its connectors were "
                    "disconnected.\n",
            str(v, "name"), str(v, "id"), (long long)routes, routes == 1 ? "" : "s");
    json_free(v);
    return 0;
}

static int cmd_tunnel_rotate(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    char path[1024];
    int rv;

    (void)cmd;
    rv = tunnel_path(c, "/rotate-token", path, sizeof(path));
    if (rv == 0)
        rv = call(c, "POST", path, "{}", &v);
    if (rv != 0)
        return rv;
    rv = c->output == OUT_JSON ? print_json(c, v) : print_token(c, v, true);
    json_free(v);
    return rv;
}

static int check_hostname(struct cli *c, const char *host)
{
    struct hostname_pattern pat;
    const char *why = NULL;

    if (hostname_pattern_parse(host, strlen(host), &pat, &why) < 0)
        return usage_error(c, "HOSTNAME \"%s\": %s", host, why);
    return 0;
}

static int cmd_route_add(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    char *body;
    bool created = false;
    int rv;

    (void)cmd;
    rv = check_hostname(c, c->args[0]);
    if (rv != 0)
        return rv;
    body = json_body("hostname", c->args[0], "tunnel", c->args[1],
                     c->allow_overlap ? "allow_overlap" : NULL);
    if (body == NULL)
        return failure(c, "out of memory");
    rv = call(c, "POST", "/v1/routes", body, &v);
    mem_free(body);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    json_as_bool(json_object_get(v, "created"), &created);
    if (created)
        fprintf(c->out, "Routed %s to tunnel \"%s\".\n", str(v, "hostname"), str(v, "tunnel"));
    else
        fprintf(c->out, "%s already routes to tunnel \"%s\": nothing to do.\n",
                str(v, "hostname"), str(v, "tunnel"));
    json_free(v);
    return 0;
}

static int cmd_route_delete(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    char enc[HOSTNAME_MAX * 3 + 1];
    char path[1024];
    int rv;

    (void)cmd;
    rv = check_hostname(c, c->args[0]);
    if (rv != 0)
        return rv;
    encode_segment(c->args[0], enc, sizeof(enc));
    snprintf(path, sizeof(path), "/v1/routes/%s", enc);
    rv = call(c, "DELETE", path, NULL, &v);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    fprintf(c->out, "Removed the route %s (it went to tunnel \"%s\").\n", str(v, "hostname"),
            str(v, "tunnel"));
    json_free(v);
    return 0;
}

static int cmd_route_list(struct cli *c, const struct command *cmd)
{
    struct json_value *v = NULL;
    size_t i;
    size_t n;
    int wh = 8;
    int rv;

    (void)cmd;
    rv = call(c, "GET", "/v1/routes", NULL, &v);
    if (rv != 0)
        return rv;
    if (c->output == OUT_JSON) {
        rv = print_json(c, v);
        json_free(v);
        return rv;
    }
    n = json_array_count(v);
    if (n == 0) {
        fprintf(c->out, "No routes. Add one with `culvert-edge route add HOSTNAME TUNNEL`.\n");
        json_free(v);
        return 0;
    }
    for (i = 0; i < n; i++) {
        int len = (int)strlen(str(json_array_at(v, i), "hostname"));

        if (len > wh)
            wh = len;
    }
    cell(c->out, "HOSTNAME", wh + 2);
    fprintf(c->out, "TUNNEL\n");
    for (i = 0; i < n; i++) {
        const struct json_value *r = json_array_at(v, i);

        cell(c->out, str(r, "hostname"), wh + 2);
        fprintf(c->out, "%s\n", str(r, "tunnel"));
    }
    json_free(v);
    return 0;
}

static const struct command commands[] = {
    {"tunnel", "create", 1, "NAME", "create a tunnel; prints its id and token (once)",
     "Creates a tunnel and prints its id and token (shown only once). NAME has 1 to 64 letters,\n"
     "digits, '.', '_' or '-'.",
     cmd_tunnel_create},
    {"tunnel", "list", 0, "", "list tunnels",
     "Lists the tunnels with the number of connectors online.", cmd_tunnel_list},
    {"tunnel", "info", 1, "NAME", "show a tunnel's routes and connectors",
     "Shows a tunnel (NAME or id): its routes and its connectors with their connections.",
     cmd_tunnel_info},
    {"tunnel", "delete", 1, "NAME", "delete a tunnel and its routes",
     "Deletes a tunnel (NAME or id) and every route to it; its connectors are disconnected.",
     cmd_tunnel_delete},
    {"tunnel", "rotate-token", 1, "NAME", "new secret and token; old connectors are dropped",
     "Gives a tunnel (NAME or id) a new secret and prints the new token (shown only once);\n"
     "connectors using the old token are disconnected.",
     cmd_tunnel_rotate},
    {"route", "add", 2, "HOSTNAME TUNNEL", "route a hostname (or *.domain) to a tunnel",
     "Routes HOSTNAME (exact, or *.example.com) to TUNNEL (name or id). A hostname routed to\n"
     "another tunnel is refused: delete that route first. A route that overlaps another\n"
     "tunnel's (pay.example.com under *.example.com, or the reverse) is refused unless\n"
     "--allow-overlap is given.",
     cmd_route_add},
    {"route", "delete", 1, "HOSTNAME", "remove a route",
     "Removes the route of HOSTNAME (exactly as added).", cmd_route_delete},
    {"route", "list", 0, "", "list routes", "Lists the routes: hostname and tunnel.",
     cmd_route_list},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void group_help(struct cli *c, const char *group, FILE *f)
{
    size_t i;

    fprintf(f, "usage: culvert-edge %s COMMAND [options]\n\nCommands:\n", group);
    for (i = 0; i < NCOMMANDS; i++) {
        char left[64];

        if (strcmp(commands[i].group, group) != 0)
            continue;
        snprintf(left, sizeof(left), "%s %s", commands[i].name, commands[i].args);
        fprintf(f, "  %-26s %s\n", left, commands[i].summary);
    }
    fprintf(f, "\nThey talk to the running edge's admin API.\n\n%s", options_help);
    if (strcmp(group, "route") == 0)
        fprintf(f, "route add:\n%s", overlap_help);
    (void)c;
}

static void command_help(const struct command *cmd, FILE *f)
{
    fprintf(f, "usage: culvert-edge %s %s%s%s [options]\n\n%s\n\n%s%s", cmd->group, cmd->name,
            cmd->args[0] != '\0' ? " " : "", cmd->args, cmd->help, options_help,
            strcmp(cmd->group, "route") == 0 && strcmp(cmd->name, "add") == 0 ? overlap_help : "");
}

/* Reads the value of option |name| from "--name=value" or the next argument. */
static int option_value(struct cli *c, int argc, char **argv, int *i, const char *name,
                        const char **out)
{
    const char *a = argv[*i];
    size_t n = strlen(name);

    if (a[n] == '=') {
        *out = a + n + 1;
    } else if (*i + 1 < argc) {
        *out = argv[++*i];
    } else {
        return usage_error(c, "%s needs a value", name);
    }
    if ((*out)[0] == '\0')
        return usage_error(c, "%s needs a value", name);
    return 0;
}

static bool is_option(const char *a, const char *name)
{
    size_t n = strlen(name);

    return strncmp(a, name, n) == 0 && (a[n] == '\0' || a[n] == '=');
}

static int parse_options(struct cli *c, int argc, char **argv)
{
    bool dashdash = false;
    int i;
    int rv;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;

        if (dashdash || a[0] != '-' || a[1] == '\0') {
            if (c->nargs == CLI_MAX_ARGS)
                return usage_error(c, "too many arguments");
            c->args[c->nargs++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = true;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            c->help = true;
        } else if (is_option(a, "--admin")) {
            rv = option_value(c, argc, argv, &i, "--admin", &c->admin);
            if (rv != 0)
                return rv;
        } else if (is_option(a, "--admin-token-file")) {
            rv = option_value(c, argc, argv, &i, "--admin-token-file", &c->token_file);
            if (rv != 0)
                return rv;
        } else if (is_option(a, "--config")) {
            rv = option_value(c, argc, argv, &i, "--config", &c->config);
            if (rv != 0)
                return rv;
        } else if (strcmp(a, "--allow-overlap") == 0) {
            c->allow_overlap = true;
        } else if (is_option(a, "--output") || is_option(a, "-o")) {
            rv = option_value(c, argc, argv, &i, a[1] == 'o' ? "-o" : "--output", &v);
            if (rv != 0)
                return rv;
            if (strcmp(v, "json") == 0)
                c->output = OUT_JSON;
            else if (strcmp(v, "text") == 0)
                c->output = OUT_TEXT;
            else
                return usage_error(c, "--output: expected json or text, not \"%s\"", v);
        } else {
            return usage_error(c, "unknown option %s", a);
        }
    }
    return 0;
}

/* Index in |argv| of the command name: the first argument that is neither an option nor an
 * option's separate value. Returns -1 when there is none. */
static int find_command(int argc, char **argv)
{
    static const char *const with_value[] = {"--admin", "--admin-token-file", "--config",
                                             "--output", "-o", NULL};
    int i;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t k;

        if (strcmp(a, "--") == 0)
            return i + 1 < argc ? i + 1 : -1;
        if (a[0] != '-' || a[1] == '\0')
            return i;
        for (k = 0; with_value[k] != NULL; k++) {
            if (strcmp(a, with_value[k]) == 0) {
                i++; /* skip the value */
                break;
            }
        }
    }
    return -1;
}

#define CLI_MAX_ARGV 64

int cli_run(int argc, char **argv, FILE *out, FILE *err)
{
    struct cli c;
    const struct command *cmd = NULL;
    char *rest[CLI_MAX_ARGV];
    const char *group;
    const char *name;
    int nrest = 0;
    int ci;
    int k;
    size_t i;
    int rv;

    memset(&c, 0, sizeof(c));
    c.out = out;
    c.err = err;
    c.prog = "culvert-edge";
    if (argc < 1 || (strcmp(argv[0], "tunnel") != 0 && strcmp(argv[0], "route") != 0)) {
        fprintf(err, "culvert-edge: expected \"tunnel\" or \"route\"\n");
        return 2;
    }
    group = argv[0];
    snprintf(c.prog_buf, sizeof(c.prog_buf), "culvert-edge %s", group);
    c.prog = c.prog_buf;
    if (argc > CLI_MAX_ARGV)
        return usage_error(&c, "too many arguments");
    /* Options may come before or after the command: find it, then parse everything else. */
    ci = find_command(argc, argv);
    if (ci < 0) {
        for (k = 1; k < argc; k++) {
            if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
                group_help(&c, group, out);
                return 0;
            }
        }
        group_help(&c, group, err);
        return 2;
    }
    name = argv[ci];
    if (strcmp(name, "help") == 0) {
        group_help(&c, group, out);
        return 0;
    }
    for (i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].group, group) == 0 && strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    }
    if (cmd == NULL) {
        fprintf(err, "culvert-edge %s: unknown command \"%s\" (see culvert-edge %s --help)\n",
                group, name, group);
        return 2;
    }
    snprintf(c.prog_buf, sizeof(c.prog_buf), "culvert-edge %s %s", group, cmd->name);
    for (k = 1; k < argc; k++) {
        if (k != ci)
            rest[nrest++] = argv[k];
    }
    rv = parse_options(&c, nrest, rest);
    if (rv != 0)
        return rv;
    if (c.help) {
        command_help(cmd, out);
        return 0;
    }
    if (c.nargs < cmd->nargs)
        return usage_error(&c, "missing %s", cmd->args + (cmd->nargs == 2 && c.nargs == 1
                                                              ? strcspn(cmd->args, " ") + 1
                                                              : 0));
    if (c.nargs > cmd->nargs)
        return usage_error(&c, "unexpected argument \"%s\"", c.args[cmd->nargs]);
    if (c.allow_overlap && cmd->run != cmd_route_add)
        return usage_error(&c, "--allow-overlap is an option of route add only");
    rv = resolve_target(&c);
    if (rv == 0)
        rv = cmd->run(&c, cmd);
    mem_free(c.token_path);
    fflush(out);
    return rv;
}

int cli_main(int argc, char **argv)
{
    return cli_run(argc, argv, stdout, stderr);
}
