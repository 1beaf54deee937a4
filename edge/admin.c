/*
 * admin.c - the admin API server; see admin.h for the endpoints.
 *
 * Above: the CLI (cli.c) and any script with the admin token. Below: common/listener and
 * common/sock (connections), common/http1 (requests), common/json (bodies), store.c (tunnels and
 * routes), tunnel.c (live connectors), common/token (tokens). One loop thread.
 *
 * A connection reads one request (head and body, at most ADMIN_MAX_REQUEST bytes), pauses the
 * parser, answers synchronously (store writes are synchronous and rare), then resumes for the next
 * one. Authentication happens before routing, so an unauthenticated client learns nothing about
 * which paths or tunnels exist.
 */
#include "admin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "http1.h"
#include "json.h"
#include "listener.h"
#include "log.h"
#include "mem.h"
#include "sock.h"
#include "store.h"
#include "token.h"
#include "tunnel.h"
#include "version.h"

#define ADMIN_MAX_PATH 1024          /* request path bytes we route on */
#define ADMIN_MAX_RESPONSE (16u << 20) /* JSON answer cap (a listing of many tunnels) */

struct admin {
    struct edge *e;
    struct listener *l;
    char *token;          /* the admin token (secret), NUL-terminated */
    size_t token_len;
    uint8_t token_digest[SHA256_DIGEST_LENGTH]; /* SHA-256 of the token, compared against */
    struct list_node conns;
    size_t nconns;
    bool stopping;        /* admin_stop ran: freed when the last connection closes */
};

enum aconn_state {
    AC_S_READING, /* reading a request (or idle between requests) */
    AC_S_CLOSING, /* answered with Connection: close, or failed: waiting for on_close */
    AC_S_COUNT
};

struct aconn {
    struct admin *a;
    struct sock *sock;
    struct http1_parser *parser;
    struct list_node node;
    enum aconn_state state;
    char peer[64];
    /* The current request, copied out of the parser's head. */
    char method[16];
    char path[ADMIN_MAX_PATH + 1];
    bool path_too_long;
    bool authorized;
    bool keep_alive;
    bool complete;   /* on_message_complete ran: answer it */
    int reject;      /* a status decided while reading (413 body too large, 400 upgrade) */
    struct buf body; /* request body, capped */
};

/* ---- token -------------------------------------------------------------------------------- */

static void base64url(const uint8_t *p, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i;
    size_t o = 0;

    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

        out[o++] = alphabet[v >> 18 & 63];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
    }
    out[o] = '\0';
}

int admin_token_generate(char out[64])
{
    uint8_t raw[ADMIN_TOKEN_BYTES];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return CV_ETLS;
    base64url(raw, sizeof(raw), out);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/* Creates |path| with a new token (mode 0600, never over an existing file). 0 or -errno/CV_ETLS. */
static int create_token_file(const char *path)
{
    char tok[64];
    char line[66];
    size_t n;
    ssize_t w;
    int fd;
    int rv = admin_token_generate(tok);

    if (rv < 0)
        return rv;
    n = (size_t)snprintf(line, sizeof(line), "%s\n", tok);
    OPENSSL_cleanse(tok, sizeof(tok));
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = -errno;
        OPENSSL_cleanse(line, sizeof(line));
        return rv;
    }
    rv = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (rv == 0) {
        w = write(fd, line, n);
        if (w < 0)
            rv = -errno;
        else if ((size_t)w != n)
            rv = -EIO;
    }
    if (rv == 0 && fsync(fd) < 0)
        rv = -errno;
    if (close(fd) < 0 && rv == 0)
        rv = -errno;
    OPENSSL_cleanse(line, sizeof(line));
    if (rv < 0)
        unlink(path);
    return rv;
}

/* Loads the admin token into |a|, creating the file first when it does not exist. */
static int load_token(struct admin *a, const char *path, char *err, size_t errlen)
{
    struct token_error terr;
    int rv;

    memset(&terr, 0, sizeof(terr));
    rv = token_read_secret_file(path, &a->token, &a->token_len, &terr);
    if (rv == -ENOENT) {
        rv = create_token_file(path);
        if (rv < 0) {
            snprintf(err, errlen, "admin.token_file %s: cannot create: %s", path,
                     cv_strerror(rv));
            return rv;
        }
        LOG_I("admin created a new admin token in %s (mode 0600)", path);
        rv = token_read_secret_file(path, &a->token, &a->token_len, &terr);
    }
    if (rv < 0) {
        snprintf(err, errlen, "admin.token_file: %s", terr.msg);
        return rv;
    }
    SHA256((const unsigned char *)a->token, a->token_len, a->token_digest);
    return 0;
}

/* Constant-time check of an Authorization value against the admin token: both sides are hashed
 * first, so neither the contents nor the length of the token show in the timing. */
static bool token_matches(const struct admin *a, const char *value, size_t len)
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    bool ok;

    SHA256((const unsigned char *)value, len, d);
    ok = CRYPTO_memcmp(d, a->token_digest, sizeof(d)) == 0;
    OPENSSL_cleanse(d, sizeof(d));
    return ok;
}

/* "Bearer <token>" (scheme case-insensitive, RFC 9110 §11.1). */
static bool authorized(const struct admin *a, const struct http1_head *h)
{
    const struct http1_field *f = NULL;
    size_t i;
    size_t count = 0;
    const char *v;
    size_t n;

    for (i = 0; i < h->nfields; i++) {
        if (strcasecmp(h->fields[i].name, "authorization") == 0) {
            f = &h->fields[i];
            count++;
        }
    }
    if (count != 1)
        return false;
    v = f->value;
    n = f->value_len;
    if (n < 7 || strncasecmp(v, "bearer ", 7) != 0)
        return false;
    v += 7;
    n -= 7;
    while (n > 0 && *v == ' ') {
        v++;
        n--;
    }
    return n > 0 && token_matches(a, v, n);
}

/* ---- responses ---------------------------------------------------------------------------- */

static void aconn_close(struct aconn *c)
{
    if (c->state == AC_S_CLOSING)
        return;
    c->state = AC_S_CLOSING;
    sock_close(c->sock);
}

/*
 * Sends |status| with the JSON in |body| (may be NULL for none). |secret| wipes |body| after it
 * was copied into the socket's output (token answers). Closes after it when the request did not
 * keep the connection alive.
 */
static void respond(struct aconn *c, int status, struct buf *body, bool secret,
                    const char *extra_name, const char *extra_value)
{
    struct http1_field f[5];
    size_t nf = 0;
    char len[24];
    struct buf head;
    size_t blen = body != NULL ? buf_len(body) : 0;
    int rv;

    snprintf(len, sizeof(len), "%zu", blen);
    f[nf++] = (struct http1_field){"Content-Type", "application/json", 12, 16};
    f[nf++] = (struct http1_field){"Content-Length", len, 14, strlen(len)};
    f[nf++] = (struct http1_field){"Cache-Control", "no-store", 13, 8};
    if (extra_name != NULL)
        f[nf++] = (struct http1_field){extra_name, extra_value, strlen(extra_name),
                                       strlen(extra_value)};
    if (!c->keep_alive)
        f[nf++] = (struct http1_field){"Connection", "close", 10, 5};
    buf_init(&head, 4096);
    rv = http1_write_response_head(&head, status, NULL, f, nf);
    if (rv == 0)
        rv = sock_write(c->sock, head.pos, buf_len(&head));
    if (rv == 0 && blen > 0)
        rv = sock_write(c->sock, body->pos, blen);
    buf_cleanup(&head);
    if (body != NULL && secret && body->base != NULL)
        OPENSSL_cleanse(body->base, (size_t)(body->end - body->base));
    LOG_I("admin peer=%s %s %s -> %d", c->peer, c->method, c->path_too_long ? "(long)" : c->path,
          status);
    if (rv < 0 || !c->keep_alive) {
        aconn_close(c);
        return;
    }
    sock_set_timeout(c->sock, ADMIN_IDLE_MS);
}

static void respond_error(struct aconn *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void respond_error(struct aconn *c, int status, const char *fmt, ...)
{
    char msg[512];
    struct json_writer w;
    struct buf b;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "error");
    json_w_string(&w, msg);
    json_w_object_end(&w);
    if (json_w_finish(&w) == 0)
        buf_append(&b, "\n", 1);
    if (status == 401)
        respond(c, status, &b, false, "WWW-Authenticate", "Bearer");
    else
        respond(c, status, &b, false, NULL, NULL);
    buf_cleanup(&b);
}

/* A change the store could not save (a full disk, a read-only data_dir): 500 naming where. */
static void respond_store_error(struct aconn *c, const char *what, int rv)
{
    respond_error(c, 500, "%s: %s (saving the state in data_dir %s)", what, cv_strerror(rv),
                  store_dir(c->a->e->store));
}

/* Ends |w| and sends it with |status|, or a 500 when writing failed. */
static void respond_json(struct aconn *c, int status, struct json_writer *w, bool secret)
{
    int rv = json_w_finish(w);

    if (rv == 0)
        rv = buf_append(w->out, "\n", 1);
    if (rv < 0) {
        if (secret && w->out->base != NULL)
            OPENSSL_cleanse(w->out->base, (size_t)(w->out->end - w->out->base));
        respond_error(c, 500, "cannot build the answer: %s", cv_strerror(rv));
        return;
    }
    respond(c, status, w->out, secret, NULL, NULL);
}

/* ---- handlers ----------------------------------------------------------------------------- */

static void write_time(struct json_writer *w, int64_t ms)
{
    char t[40];

    edge_rfc3339(ms, t, sizeof(t));
    json_w_string(w, t);
}

static void write_id(struct json_writer *w, const uint8_t id[TOKEN_ID_LEN])
{
    char s[TOKEN_UUID_TEXT_LEN + 1];

    token_uuid_format(id, s);
    json_w_string(w, s);
}

/*
 * Answers {"id","name","token"} for |t| with the fresh |secret|, which is wiped here. The token
 * carries the current config's advertise list and CA digest.
 */
static void respond_token(struct aconn *c, int status, const struct store_tunnel *t,
                          uint8_t secret[TOKEN_SECRET_LEN])
{
    const struct edge_config *cfg = c->a->e->cfg;
    struct token tok;
    struct json_writer w;
    struct buf b;
    char *text = NULL;
    size_t len = 0;
    size_t i;
    int rv = 0;

    token_init(&tok);
    memcpy(tok.id, t->id, TOKEN_ID_LEN);
    memcpy(tok.secret, secret, TOKEN_SECRET_LEN);
    OPENSSL_cleanse(secret, TOKEN_SECRET_LEN);
    for (i = 0; rv == 0 && i < cfg->n_advertise; i++)
        rv = token_add_edge(&tok, &cfg->advertise[i]);
    if (cfg->has_ca_sha256) {
        tok.has_ca_sha256 = true;
        memcpy(tok.ca_sha256, cfg->ca_sha256, TOKEN_DIGEST_LEN);
    }
    if (rv == 0)
        rv = token_encode(&tok, &text, &len);
    token_cleanup(&tok);
    if (rv < 0) {
        respond_error(c, 500, "cannot build the token: %s", cv_strerror(rv));
        return;
    }
    buf_init(&b, 64 * 1024);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "id");
    write_id(&w, t->id);
    json_w_key(&w, "name");
    json_w_string(&w, t->name);
    json_w_key(&w, "token");
    json_w_stringn(&w, text, len);
    json_w_object_end(&w);
    mem_free_secret(text, len + 1);
    respond_json(c, status, &w, true);
    buf_cleanup(&b);
}

static int count_route_cb(const char *pattern, const struct store_tunnel *t, void *arg)
{
    size_t *n = arg;

    (void)pattern;
    (void)t;
    (*n)++;
    return 0;
}

static void handle_status(struct aconn *c)
{
    struct edge *e = c->a->e;
    struct json_writer w;
    struct buf b;
    size_t conns = 0;
    size_t streams = 0;

    tunnel_registry_counts(e->reg, &conns, &streams);
    buf_init(&b, 64 * 1024);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "version");
    json_w_string(&w, CULVERT_VERSION);
    json_w_key(&w, "region");
    json_w_string(&w, e->cfg->region);
    json_w_key(&w, "started_at");
    write_time(&w, (int64_t)e->started_ms);
    json_w_key(&w, "tunnels");
    json_w_uint(&w, store_tunnel_count(e->store));
    json_w_key(&w, "routes");
    json_w_uint(&w, store_route_count(e->store));
    json_w_key(&w, "connections");
    json_w_uint(&w, conns);
    json_w_key(&w, "streams");
    json_w_uint(&w, streams);
    json_w_key(&w, "draining");
    json_w_bool(&w, e->draining != 0);
    json_w_object_end(&w);
    respond_json(c, 200, &w, false);
    buf_cleanup(&b);
}

struct list_ctx {
    struct json_writer *w;
    const struct tunnel_registry *reg;
};

static int list_tunnel_cb(const struct store_tunnel *t, void *arg)
{
    struct list_ctx *lc = arg;

    json_w_object_begin(lc->w);
    json_w_key(lc->w, "id");
    write_id(lc->w, t->id);
    json_w_key(lc->w, "name");
    json_w_string(lc->w, t->name);
    json_w_key(lc->w, "created_at");
    write_time(lc->w, t->created_ms);
    json_w_key(lc->w, "connectors");
    json_w_uint(lc->w, tunnel_registry_connector_count(lc->reg, t->id));
    json_w_object_end(lc->w);
    return 0;
}

static void handle_tunnel_list(struct aconn *c)
{
    struct json_writer w;
    struct buf b;
    struct list_ctx lc;

    buf_init(&b, ADMIN_MAX_RESPONSE);
    json_w_init(&w, &b, 0);
    lc.w = &w;
    lc.reg = c->a->e->reg;
    json_w_array_begin(&w);
    store_foreach_tunnel(c->a->e->store, list_tunnel_cb, &lc);
    json_w_array_end(&w);
    respond_json(c, 200, &w, false);
    buf_cleanup(&b);
}

/* Parses the request body as a JSON object; answers 400 itself and returns NULL on failure. */
static struct json_value *body_object(struct aconn *c)
{
    struct json_value *v = NULL;
    struct json_error jerr;
    int rv;

    memset(&jerr, 0, sizeof(jerr));
    rv = json_parse((const char *)c->body.pos, buf_len(&c->body), NULL, &v, &jerr);
    if (rv == CV_ENOMEM) {
        respond_error(c, 500, "out of memory");
        return NULL;
    }
    if (rv < 0) {
        respond_error(c, 400, "the body is not valid JSON (%s)", jerr.msg);
        return NULL;
    }
    if (json_typeof(v) != JSON_OBJECT) {
        json_free(v);
        respond_error(c, 400, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

/* A string member of |obj| without NUL bytes; answers 400 and returns NULL when missing. */
static const char *body_string(struct aconn *c, const struct json_value *obj, const char *key)
{
    size_t len = 0;
    const char *s = json_as_string(json_object_get(obj, key), &len);

    if (s == NULL || strlen(s) != len) {
        respond_error(c, 400, "\"%s\" (a string) is required", key);
        return NULL;
    }
    return s;
}

static void handle_tunnel_create(struct aconn *c)
{
    struct json_value *v = body_object(c);
    const struct store_tunnel *t = NULL;
    uint8_t secret[TOKEN_SECRET_LEN];
    const char *name;
    const char *why = NULL;
    int rv;

    if (v == NULL)
        return;
    name = body_string(c, v, "name");
    if (name == NULL) {
        json_free(v);
        return;
    }
    rv = store_tunnel_create(c->a->e->store, name, secret, &t, &why);
    if (rv == 0) {
        char id[TOKEN_UUID_TEXT_LEN + 1];

        token_uuid_format(t->id, id);
        LOG_I("admin peer=%s created tunnel %s (%s)", c->peer, t->name, id);
        respond_token(c, 201, t, secret);
    } else if (rv == CV_EINVAL) {
        respond_error(c, 400, "invalid tunnel name: %s", why);
    } else if (rv == CV_EEXIST) {
        respond_error(c, 409, "a tunnel named \"%s\" already exists", name);
    } else {
        respond_store_error(c, "cannot create the tunnel", rv);
    }
    OPENSSL_cleanse(secret, sizeof(secret));
    json_free(v);
}

static int info_route_cb(const char *pattern, const struct store_tunnel *t, void *arg)
{
    (void)t;
    json_w_string(arg, pattern);
    return 0;
}

static void handle_tunnel_info(struct aconn *c, const struct store_tunnel *t)
{
    struct json_writer w;
    struct buf b;

    buf_init(&b, ADMIN_MAX_RESPONSE);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "id");
    write_id(&w, t->id);
    json_w_key(&w, "name");
    json_w_string(&w, t->name);
    json_w_key(&w, "created_at");
    write_time(&w, t->created_ms);
    json_w_key(&w, "routes");
    json_w_array_begin(&w);
    store_foreach_route(c->a->e->store, t, info_route_cb, &w);
    json_w_array_end(&w);
    json_w_key(&w, "connectors");
    tunnel_registry_describe(c->a->e->reg, t->id, &w);
    json_w_object_end(&w);
    respond_json(c, 200, &w, false);
    buf_cleanup(&b);
}

static void handle_tunnel_delete(struct aconn *c, const struct store_tunnel *t)
{
    struct edge *e = c->a->e;
    uint8_t id[TOKEN_ID_LEN];
    char name[STORE_NAME_MAX + 1];
    char ids[TOKEN_UUID_TEXT_LEN + 1];
    size_t routes = 0;
    struct json_writer w;
    struct buf b;
    int rv;

    memcpy(id, t->id, sizeof(id));
    snprintf(name, sizeof(name), "%s", t->name);
    store_foreach_route(e->store, t, count_route_cb, &routes);
    rv = store_tunnel_delete(e->store, id);
    if (rv < 0) {
        respond_store_error(c, "cannot delete the tunnel", rv);
        return;
    }
    token_uuid_format(id, ids);
    LOG_I("admin peer=%s deleted tunnel %s (%s) and %zu routes", c->peer, name, ids, routes);
    /* RELIABILITY.md §2.2 row 2.5: its live connections go at once. */
    tunnel_registry_kick(e->reg, id, "tunnel deleted");
    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "id");
    json_w_string(&w, ids);
    json_w_key(&w, "name");
    json_w_string(&w, name);
    json_w_key(&w, "routes_removed");
    json_w_uint(&w, routes);
    json_w_object_end(&w);
    respond_json(c, 200, &w, false);
    buf_cleanup(&b);
}

static void handle_tunnel_rotate(struct aconn *c, const struct store_tunnel *t)
{
    struct edge *e = c->a->e;
    uint8_t secret[TOKEN_SECRET_LEN];
    char ids[TOKEN_UUID_TEXT_LEN + 1];
    int rv;

    rv = store_tunnel_rotate(e->store, t->id, secret);
    if (rv < 0) {
        respond_store_error(c, "cannot rotate the token", rv);
        return;
    }
    token_uuid_format(t->id, ids);
    LOG_I("admin peer=%s rotated the token of tunnel %s (%s), generation %u", c->peer, t->name,
          ids, t->generation);
    tunnel_registry_kick(e->reg, t->id, "token rotated");
    respond_token(c, 200, t, secret);
}

static int list_route_cb(const char *pattern, const struct store_tunnel *t, void *arg)
{
    struct json_writer *w = arg;

    json_w_object_begin(w);
    json_w_key(w, "hostname");
    json_w_string(w, pattern);
    json_w_key(w, "tunnel");
    json_w_string(w, t->name);
    json_w_key(w, "tunnel_id");
    write_id(w, t->id);
    json_w_object_end(w);
    return 0;
}

static void handle_route_list(struct aconn *c)
{
    struct json_writer w;
    struct buf b;

    buf_init(&b, ADMIN_MAX_RESPONSE);
    json_w_init(&w, &b, 0);
    json_w_array_begin(&w);
    store_foreach_route(c->a->e->store, NULL, list_route_cb, &w);
    json_w_array_end(&w);
    respond_json(c, 200, &w, false);
    buf_cleanup(&b);
}

static void respond_route(struct aconn *c, int status, const char *pattern,
                          const struct store_tunnel *t, int created)
{
    struct json_writer w;
    struct buf b;

    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "hostname");
    json_w_string(&w, pattern);
    json_w_key(&w, "tunnel");
    json_w_string(&w, t->name);
    json_w_key(&w, "tunnel_id");
    write_id(&w, t->id);
    if (created >= 0) {
        json_w_key(&w, "created");
        json_w_bool(&w, created != 0);
    }
    json_w_object_end(&w);
    respond_json(c, status, &w, false);
    buf_cleanup(&b);
}

static void handle_route_add(struct aconn *c)
{
    struct store *st = c->a->e->store;
    struct json_value *v = body_object(c);
    const struct store_tunnel *t;
    const struct store_tunnel *owner;
    const struct json_value *allow;
    struct hostname_pattern pat;
    const char *host;
    const char *tref;
    const char *other;
    const char *why = NULL;
    bool allow_overlap = false;
    int rv;

    if (v == NULL)
        return;
    host = body_string(c, v, "hostname");
    tref = host != NULL ? body_string(c, v, "tunnel") : NULL;
    if (host == NULL || tref == NULL)
        goto out;
    allow = json_object_get(v, "allow_overlap");
    if (allow != NULL && json_as_bool(allow, &allow_overlap) < 0) {
        respond_error(c, 400, "\"allow_overlap\" must be true or false");
        goto out;
    }
    if (hostname_pattern_parse(host, strlen(host), &pat, &why) < 0) {
        respond_error(c, 400, "invalid hostname: %s", why);
        goto out;
    }
    t = store_find(st, tref);
    if (t == NULL) {
        respond_error(c, 404, "no tunnel named \"%s\"", tref);
        goto out;
    }
    /* RELIABILITY.md 2.2: one tunnel's route covering part of another's only when asked for. */
    other = NULL;
    if (!allow_overlap && store_route_get(st, pat.text) == NULL)
        other = store_route_overlap(st, pat.text, t->id, &owner);
    if (other != NULL) {
        respond_error(c, 409,
                      "%s overlaps the route %s of tunnel \"%s\": requests for some names would change "
                      "tunnels; add it with --allow-overlap (\"allow_overlap\": true) if that is meant",
                      pat.text, other, owner->name);
        goto out;
    }
    rv = store_route_add(st, pat.text, t->id, &why);
    if (rv == 0 || rv == 1) {
        if (rv == 0)
            LOG_I("admin peer=%s routed %s to tunnel %s", c->peer, pat.text, t->name);
        respond_route(c, rv == 0 ? 201 : 200, pat.text, t, rv == 0);
    } else if (rv == CV_EEXIST) {
        owner = store_route_get(st, pat.text);
        respond_error(c, 409, "%s is already routed to tunnel \"%s\": delete that route first",
                      pat.text, owner != NULL ? owner->name : "?");
    } else if (rv == CV_EINVAL) {
        respond_error(c, 400, "invalid hostname: %s", why);
    } else {
        respond_store_error(c, "cannot add the route", rv);
    }
out:
    json_free(v);
}

static void handle_route_delete(struct aconn *c, const char *host)
{
    struct store *st = c->a->e->store;
    struct hostname_pattern pat;
    const struct store_tunnel *t;
    struct store_tunnel copy;
    const char *why = NULL;
    int rv;

    if (hostname_pattern_parse(host, strlen(host), &pat, &why) < 0) {
        respond_error(c, 400, "invalid hostname: %s", why);
        return;
    }
    t = store_route_get(st, pat.text);
    if (t == NULL) {
        respond_error(c, 404, "no route for %s", pat.text);
        return;
    }
    copy = *t;
    rv = store_route_delete(st, pat.text);
    if (rv < 0) {
        respond_store_error(c, "cannot delete the route", rv);
        return;
    }
    LOG_I("admin peer=%s removed route %s (tunnel %s)", c->peer, pat.text, copy.name);
    respond_route(c, 200, pat.text, &copy, -1);
}

/* ---- routing ------------------------------------------------------------------------------ */

static int hex_val(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes the segment |s| (|n| bytes) into |out| (|cap| bytes with NUL). Refuses "%00",
 * an encoded '/', bad escapes and overflow. Returns 0 or -1. */
static int decode_segment(const char *s, size_t n, char *out, size_t cap)
{
    size_t i;
    size_t o = 0;

    for (i = 0; i < n; i++) {
        char ch = s[i];

        if (ch == '%') {
            int hi;
            int lo;

            if (i + 2 >= n)
                return -1;
            hi = hex_val(s[i + 1]);
            lo = hex_val(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            if (ch == '\0' || ch == '/')
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

/* Splits the path (without query) into at most 4 segments after "/v1". Returns the count, or
 * -1 when it is not under /v1 or a segment is malformed. */
static int split_path(const char *path, char seg[4][ADMIN_MAX_PATH + 1])
{
    const char *p = path;
    const char *q = strchr(path, '?');
    size_t len = q != NULL ? (size_t)(q - path) : strlen(path);
    const char *end = path + len;
    int count = 0;

    if (len < 3 || strncmp(p, "/v1", 3) != 0 || (len > 3 && p[3] != '/'))
        return -1;
    p += 3;
    while (p < end) {
        const char *s;

        p++; /* the '/' */
        s = p;
        while (p < end && *p != '/')
            p++;
        if (p == s) {
            if (p == end)
                break; /* a trailing '/' */
            return -1;
        }
        if (count == 4)
            return -1;
        if (decode_segment(s, (size_t)(p - s), seg[count], ADMIN_MAX_PATH + 1) < 0)
            return -1;
        count++;
    }
    return count;
}

static bool method_is(const struct aconn *c, const char *m)
{
    return strcmp(c->method, m) == 0;
}

static void not_allowed(struct aconn *c, const char *allow)
{
    char msg[128];
    struct buf b;

    snprintf(msg, sizeof(msg), "{\"error\":\"method %s not allowed here\"}\n", c->method);
    buf_init(&b, sizeof(msg));
    buf_append(&b, msg, strlen(msg));
    respond(c, 405, &b, false, "Allow", allow);
    buf_cleanup(&b);
}

static void dispatch_tunnels(struct aconn *c, int n, char seg[4][ADMIN_MAX_PATH + 1])
{
    const struct store_tunnel *t;

    if (n == 1) {
        if (method_is(c, "GET"))
            handle_tunnel_list(c);
        else if (method_is(c, "POST"))
            handle_tunnel_create(c);
        else
            not_allowed(c, "GET, POST");
        return;
    }
    if (n > 3 || (n == 3 && strcmp(seg[2], "rotate-token") != 0)) {
        respond_error(c, 404, "no such endpoint");
        return;
    }
    if (n == 2 && !method_is(c, "GET") && !method_is(c, "DELETE")) {
        not_allowed(c, "GET, DELETE");
        return;
    }
    if (n == 3 && !method_is(c, "POST")) {
        not_allowed(c, "POST");
        return;
    }
    t = store_find(c->a->e->store, seg[1]);
    if (t == NULL)
        respond_error(c, 404, "no tunnel named \"%s\"", seg[1]);
    else if (n == 3)
        handle_tunnel_rotate(c, t);
    else if (method_is(c, "GET"))
        handle_tunnel_info(c, t);
    else
        handle_tunnel_delete(c, t);
}

static void dispatch_routes(struct aconn *c, int n, char seg[4][ADMIN_MAX_PATH + 1])
{
    if (n == 1) {
        if (method_is(c, "GET"))
            handle_route_list(c);
        else if (method_is(c, "POST"))
            handle_route_add(c);
        else
            not_allowed(c, "GET, POST");
    } else if (n == 2) {
        if (method_is(c, "DELETE"))
            handle_route_delete(c, seg[1]);
        else
            not_allowed(c, "DELETE");
    } else {
        respond_error(c, 404, "no such endpoint");
    }
}

/* Authentication first, then the request's own problems, then the endpoint. */
static void dispatch(struct aconn *c)
{
    static char seg[4][ADMIN_MAX_PATH + 1];
    int n;

    if (!c->authorized) {
        LOG_W_RL("admin peer=%s request without a valid admin token", c->peer);
        respond_error(c, 401, "unauthorized");
        return;
    }
    if (c->reject != 0) {
        respond_error(c, c->reject, "%s", c->reject == 413 ? "request too large (64 KiB at most)"
                                                           : "upgrades are not supported");
        return;
    }
    if (c->path_too_long) {
        respond_error(c, 414, "path too long");
        return;
    }
    n = split_path(c->path, seg);
    if (n >= 1 && strcmp(seg[0], "status") == 0 && n == 1) {
        if (method_is(c, "GET"))
            handle_status(c);
        else
            not_allowed(c, "GET");
    } else if (n >= 1 && strcmp(seg[0], "tunnels") == 0) {
        dispatch_tunnels(c, n, seg);
    } else if (n >= 1 && strcmp(seg[0], "routes") == 0) {
        dispatch_routes(c, n, seg);
    } else {
        respond_error(c, 404, "no such endpoint");
    }
}

/* ---- parser hooks ------------------------------------------------------------------------- */

/* Expect: 100-continue on a request with a body to come. */
static bool expects_continue(const struct http1_head *h)
{
    const struct http1_field *f = http1_head_find(h, "expect");

    return f != NULL && f->value_len == 12 && strncasecmp(f->value, "100-continue", 12) == 0 &&
           (h->content_length > 0 || (h->flags & HTTP1_F_CHUNKED));
}

static int on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct aconn *c = arg;
    size_t plen = h->path_len;

    (void)p;
    snprintf(c->method, sizeof(c->method), "%.*s", (int)h->method_len, h->method);
    c->path_too_long = plen > ADMIN_MAX_PATH;
    if (c->path_too_long)
        plen = 0;
    memcpy(c->path, h->path, plen);
    c->path[plen] = '\0';
    c->keep_alive = (h->flags & HTTP1_F_KEEP_ALIVE) != 0;
    c->authorized = authorized(c->a, h);
    c->reject = 0;
    c->complete = false;
    buf_cleanup(&c->body);
    if (h->flags & HTTP1_F_UPGRADE) {
        c->reject = 400;
        c->keep_alive = false;
    } else if (h->content_length > ADMIN_MAX_REQUEST) {
        c->reject = 413;
        c->keep_alive = false;
        return CV_ELIMIT; /* stop here: the body is never read */
    } else if (expects_continue(h)) {
        /* RFC 9110 §10.1.1: answer before the body is sent (curl waits a second otherwise). */
        if (!c->authorized) {
            c->reject = 401;
            c->keep_alive = false;
            return CV_EAUTH; /* the body is never read */
        }
        sock_write(c->sock, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    }
    return 0;
}

static int on_body(struct http1_parser *p, const uint8_t *data, size_t n, void *arg)
{
    struct aconn *c = arg;

    (void)p;
    if (c->reject != 0)
        return 0;
    if (buf_append(&c->body, data, n) < 0) {
        c->reject = 413;
        c->keep_alive = false;
        return CV_ELIMIT;
    }
    return 0;
}

static int on_message_complete(struct http1_parser *p, void *arg)
{
    struct aconn *c = arg;

    (void)p;
    c->complete = true;
    return HTTP1_PAUSE; /* one request at a time: pipelined ones wait for this answer */
}

static const struct http1_hooks parser_hooks = {
    .on_head = on_head,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* Feeds buffered input and answers each complete request in turn. */
static void aconn_process(struct aconn *c)
{
    struct buf *in = sock_in(c->sock);

    while (c->state == AC_S_READING) {
        size_t n = buf_len(in);
        ssize_t used;

        if (n == 0 && !http1_paused(c->parser))
            break;
        if (http1_paused(c->parser))
            http1_resume(c->parser);
        used = http1_feed(c->parser, in->pos, n);
        if (used < 0) {
            int status = c->reject != 0 ? c->reject : http1_error_status(c->parser);

            c->keep_alive = false;
            if (c->reject != 0 && c->authorized)
                dispatch(c); /* names the reason (413) */
            else if (c->reject != 0)
                respond_error(c, 401, "unauthorized");
            else
                respond_error(c, status != 0 ? status : 400, "malformed request: %s",
                              http1_error_reason(c->parser));
            return;
        }
        buf_consume(in, (size_t)used);
        if (c->complete) {
            c->complete = false;
            dispatch(c);
            buf_cleanup(&c->body);
            http1_parser_trim(c->parser);
            continue;
        }
        if (http1_state(c->parser) == HTTP1_S_DONE || http1_state(c->parser) == HTTP1_S_UPGRADED) {
            aconn_close(c);
            return;
        }
        if (used == 0)
            break;
    }
}

/* ---- connections -------------------------------------------------------------------------- */

static void maybe_free_admin(struct admin *a);

static void ac_on_data(struct sock *s, void *arg)
{
    (void)s;
    aconn_process(arg);
}

static void ac_on_eof(struct sock *s, void *arg)
{
    struct aconn *c = arg;

    (void)s;
    aconn_close(c);
}

static void ac_on_close(struct sock *s, void *arg)
{
    struct aconn *c = arg;
    struct admin *a = c->a;

    (void)s;
    list_remove(&c->node);
    a->nconns--;
    http1_parser_free(c->parser);
    buf_cleanup(&c->body);
    mem_free(c);
    maybe_free_admin(a);
}

static const struct sock_hooks aconn_hooks = {
    .on_data = ac_on_data,
    .on_eof = ac_on_eof,
    .on_close = ac_on_close,
};

/*
 * At the cap, the oldest connection still reading (idle, or holding a request it never finished)
 * makes room for |c|: whoever can connect to the admin address (any local user for a loopback
 * port) cannot lock the API out by holding every slot. Answers are synchronous, so no request in
 * progress is lost; a client that just got its answer reconnects. False when every other
 * connection is closing already.
 */
static bool evict_oldest(struct admin *a, const struct aconn *c)
{
    struct list_node *n;

    for (n = a->conns.next; n != &a->conns; n = n->next) {
        struct aconn *old = container_of(n, struct aconn, node);

        if (old == c || old->state != AC_S_READING)
            continue;
        LOG_W_RL("admin peer=%s: too many admin connections, closing the oldest (peer=%s)",
                 c->peer, old->peer);
        old->state = AC_S_CLOSING;
        sock_abort(old->sock);
        return true;
    }
    return false;
}

static void on_admin_conn(struct listener *l, uv_stream_t *server, void *arg)
{
    struct admin *a = arg;
    struct cv_limits lim;
    struct sock_opts o;
    struct aconn *c;
    int err = 0;

    (void)l;
    memset(&o, 0, sizeof(o));
    o.in_cap = ADMIN_MAX_REQUEST + 4096;
    o.nodelay = 1;
    c = mem_calloc(sizeof(*c));
    if (c == NULL) {
        LOG_W_RL("admin accept: out of memory");
        return;
    }
    c->a = a;
    list_init(&c->node);
    buf_init(&c->body, ADMIN_MAX_REQUEST);
    c->sock = sock_accept(a->e->sl, server, &o, &aconn_hooks, c, &err);
    if (c->sock == NULL) {
        mem_free(c);
        LOG_W_RL("admin accept failed: %s", cv_strerror(err));
        return;
    }
    list_push_back(&a->conns, &c->node);
    a->nconns++;
    snprintf(c->peer, sizeof(c->peer), "%s", sock_peer(c->sock)[0] != '\0' ? sock_peer(c->sock)
                                                                             : "unix");
    c->state = AC_S_READING;
    if (a->stopping || (a->nconns > ADMIN_MAX_CONNECTIONS && !evict_oldest(a, c))) {
        LOG_W_RL("admin peer=%s refused: too many admin connections", c->peer);
        c->state = AC_S_CLOSING;
        sock_abort(c->sock);
        return;
    }
    /* Requests are small: at most ADMIN_MAX_REQUEST bytes, head included. */
    lim = a->e->limits;
    lim.max_url = ADMIN_MAX_PATH * 4 < lim.max_url ? ADMIN_MAX_PATH * 4 : lim.max_url;
    lim.max_header_bytes = 16 * 1024 < lim.max_header_bytes ? 16 * 1024 : lim.max_header_bytes;
    c->parser = http1_parser_new(HTTP1_REQUEST, &lim, &parser_hooks, c);
    if (c->parser == NULL) {
        c->state = AC_S_CLOSING;
        sock_abort(c->sock);
        return;
    }
    sock_set_timeout(c->sock, ADMIN_IDLE_MS);
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void admin_free(struct admin *a)
{
    if (a->token != NULL)
        mem_free_secret(a->token, a->token_len + 1);
    OPENSSL_cleanse(a->token_digest, sizeof(a->token_digest));
    mem_free(a);
}

static void maybe_free_admin(struct admin *a)
{
    if (a->stopping && a->nconns == 0)
        admin_free(a);
}

static bool is_loopback(const struct config_addr *addr)
{
    if (addr->kind == CONFIG_ADDR_UNIX)
        return true;
    if (addr->host_kind == HOSTNAME_IPV4)
        return strncmp(addr->host, "127.", 4) == 0;
    if (addr->host_kind == HOSTNAME_IPV6)
        return strcmp(addr->host, "::1") == 0;
    return strcmp(addr->host, "localhost") == 0;
}

int admin_start(struct edge *e, char *err, size_t errlen)
{
    const struct edge_config *cfg = e->cfg;
    struct admin *a = mem_calloc(sizeof(*a));
    char name[CONFIG_UNIX_PATH_MAX + 300];
    int rv;

    if (a == NULL) {
        snprintf(err, errlen, "admin: out of memory");
        return CV_ENOMEM;
    }
    a->e = e;
    list_init(&a->conns);
    rv = load_token(a, cfg->admin_token_file, err, errlen);
    if (rv < 0) {
        admin_free(a);
        return rv;
    }
    a->l = listener_start(e->loop, &cfg->admin_listen, 0600, on_admin_conn, a, err, errlen);
    if (a->l == NULL) {
        admin_free(a);
        return CV_ECONFIG;
    }
    config_format_addr(&cfg->admin_listen, name, sizeof(name));
    if (!is_loopback(&cfg->admin_listen))
        LOG_W("admin API on %s is not a loopback address: the admin token travels unencrypted",
              name);
    LOG_I("admin API listening on %s (token in %s)", name, cfg->admin_token_file);
    e->admin = a;
    return 0;
}

void admin_stop(struct admin *a)
{
    struct list_node *n;
    struct list_node *next;

    if (a == NULL || a->stopping)
        return;
    a->stopping = true;
    if (a->e->admin == a)
        a->e->admin = NULL;
    if (a->l != NULL) {
        listener_stop(a->l);
        a->l = NULL;
    }
    for (n = a->conns.next; n != &a->conns; n = next) {
        struct aconn *c = container_of(n, struct aconn, node);

        next = n->next;
        aconn_close(c);
    }
    if (a->token != NULL) {
        mem_free_secret(a->token, a->token_len + 1);
        a->token = NULL;
    }
    maybe_free_admin(a);
}

int admin_port(const struct admin *a)
{
    return a != NULL && a->l != NULL ? listener_port(a->l) : 0;
}
