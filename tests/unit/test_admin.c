/*
 * test_admin.c - the admin API on a private loop: a non-blocking client socket in the same thread
 * writes requests and the loop runs until the answer is complete. Covers authentication, every
 * endpoint and its JSON shape, tokens (decoded and checked against the store), errors, keep-alive,
 * pipelining, request size bounds, the token file, and a clean stop.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>
#include <uv.h>

#include "admin.h"
#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "http1.h"
#include "json.h"
#include "mem.h"
#include "sock.h"
#include "store.h"
#include "token.h"
#include "tunnel.h"

#include "certs_for_tests.c"

static struct test_certs certs;

struct fixture {
    char dir[64];
    char sock_path[100];
    char token_path[128];
    char token[64];
    uv_loop_t loop;
    struct edge e;
    long live;
};

static struct fixture fx;

/* ---- fixture ------------------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
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

/* Loads a config whose admin API listens on |listen| (NULL: a unix socket in the directory). */
static void edge_up(const char *listen)
{
    char yaml[2048];
    char path[160];
    char err[1024];

    snprintf(path, sizeof(path), "%s/edge.yml", fx.dir);
    snprintf(yaml, sizeof(yaml),
             "data_dir: data\n"
             "public: { certificates: [{ cert: c.pem, key: c.key }] }\n"
             "tunnel:\n"
             "  listen: [\"127.0.0.1:7844\"]\n"
             "  advertise: [\"edge1.example.com:7844\", \"[2001:db8::1]:443\"]\n"
             "  ca: %s\n"
             "  cert: t.pem\n"
             "  key: t.key\n"
             "admin: { listen: \"%s%s\", token_file: admin.token }\n"
             "region: test-region\n",
             certs.ca_file, listen != NULL ? "" : "unix:", listen != NULL ? listen : fx.sock_path);
    write_text(path, yaml);
    memset(&fx.e, 0, sizeof(fx.e));
    assert_int_equal(uv_loop_init(&fx.loop), 0);
    fx.e.loop = &fx.loop;
    assert_int_equal(sock_loop_init(&fx.e.sl, &fx.loop), 0);
    assert_int_equal(edge_config_load(path, &fx.e.cfg, err, sizeof(err)), 0);
    fx.e.limits = fx.e.cfg->limits;
    assert_int_equal(store_open(fx.e.cfg->data_dir, &fx.e.store, err, sizeof(err)), 0);
    fx.e.reg = tunnel_registry_new(&fx.e);
    assert_non_null(fx.e.reg);
    fx.e.started_ms = (uint64_t)edge_wall_ms();
}

static void start_admin(void)
{
    char err[1024];
    char *tok = NULL;
    size_t len = 0;
    struct token_error terr;

    if (admin_start(&fx.e, err, sizeof(err)) != 0)
        fail_msg("admin_start: %s", err);
    assert_non_null(fx.e.admin);
    assert_int_equal(token_read_secret_file(fx.token_path, &tok, &len, &terr), 0);
    snprintf(fx.token, sizeof(fx.token), "%s", tok);
    mem_free_secret(tok, len + 1);
}

static void run_loop_briefly(void)
{
    for (int i = 0; i < 20; i++)
        uv_run(&fx.loop, UV_RUN_NOWAIT);
}

static void edge_down(void)
{
    admin_stop(fx.e.admin);
    fx.e.admin = NULL;
    run_loop_briefly();
    tunnel_registry_free(fx.e.reg);
    store_free(fx.e.store);
    sock_loop_cleanup(fx.e.sl);
    run_loop_briefly();
    assert_int_equal(uv_loop_close(&fx.loop), 0);
    edge_config_free(fx.e.cfg);
}

static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof(fx));
    fx.live = mem_live_count();
    snprintf(fx.dir, sizeof(fx.dir), "/tmp/culvert-admin-XXXXXX");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    snprintf(fx.sock_path, sizeof(fx.sock_path), "%s/admin.sock", fx.dir);
    snprintf(fx.token_path, sizeof(fx.token_path), "%s/admin.token", fx.dir);
    edge_up(NULL);
    start_admin();
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    edge_down();
    assert_int_equal(mem_live_count(), fx.live);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- client -------------------------------------------------------------------------------- */

struct reply {
    int status;
    int count;        /* complete answers received */
    bool closed;      /* the server closed the connection */
    char head[2048];  /* the last head's fields, "name: value\n" */
    char body[65536]; /* the last answer's body */
    size_t body_len;
    struct json_value *json;
};

static int r_on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct reply *r = arg;
    size_t used = 0;

    (void)p;
    r->status = h->status;
    r->body_len = 0;
    r->body[0] = '\0';
    r->head[0] = '\0';
    for (size_t i = 0; i < h->nfields && used < sizeof(r->head); i++)
        used += (size_t)snprintf(r->head + used, sizeof(r->head) - used, "%s: %s\n",
                                 h->fields[i].name, h->fields[i].value);
    return 0;
}

static int r_on_body(struct http1_parser *p, const uint8_t *d, size_t n, void *arg)
{
    struct reply *r = arg;

    (void)p;
    assert_true(r->body_len + n < sizeof(r->body));
    memcpy(r->body + r->body_len, d, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return 0;
}

static int r_on_complete(struct http1_parser *p, void *arg)
{
    struct reply *r = arg;

    (void)p;
    r->count++;
    return 0;
}

static const struct http1_hooks reply_hooks = {r_on_head, r_on_body, r_on_complete};

static int client_connect(void)
{
    int fd;

    if (admin_port(fx.e.admin) != 0) {
        struct sockaddr_in in;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        memset(&in, 0, sizeof(in));
        in.sin_family = AF_INET;
        in.sin_port = htons((uint16_t)admin_port(fx.e.admin));
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&in, sizeof(in)) < 0)
            assert_int_equal(errno, EINPROGRESS);
    } else {
        struct sockaddr_un un;

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        snprintf(un.sun_path, sizeof(un.sun_path), "%s", fx.sock_path);
        assert_int_equal(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
    }
    assert_true(fd >= 0);
    return fd;
}

static void client_send(int fd, const char *data, size_t n)
{
    size_t off = 0;

    for (int i = 0; off < n && i < 10000; i++) {
        ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);

        if (w > 0)
            off += (size_t)w;
        else
            uv_run(&fx.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(off, n);
}

/* Runs the loop and reads until |want| answers arrived or the server closed (2 s at most). */
static void client_read(int fd, struct http1_parser *p, struct reply *r, int want)
{
    char buf[65536];

    for (int i = 0; i < 2000 && r->count < want && !r->closed; i++) {
        ssize_t n;

        uv_run(&fx.loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, sizeof(buf), 0);
        if (n > 0) {
            assert_true(http1_feed(p, (const uint8_t *)buf, (size_t)n) >= 0);
            continue;
        }
        if (n == 0) {
            r->closed = true;
            break;
        }
        poll(NULL, 0, 1);
    }
    json_free(r->json);
    r->json = NULL;
    if (r->body_len > 0)
        json_parse(r->body, r->body_len, NULL, &r->json, NULL);
}

/* Waits briefly for the server to close |fd|. */
static bool server_closed(int fd)
{
    char buf[256];

    for (int i = 0; i < 2000; i++) {
        ssize_t n;

        uv_run(&fx.loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        poll(NULL, 0, 1);
    }
    return false;
}

static struct reply rep;

/* One request on a new connection; the answer lands in |rep|. |auth| NULL sends no header. */
static void request_auth(const char *method, const char *path, const char *body, const char *auth)
{
    struct cv_limits lim;
    struct http1_parser *p;
    char req[70000];
    int fd = client_connect();
    int n;

    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n%s%s%s", method, path,
                 auth != NULL ? "Authorization: " : "", auth != NULL ? auth : "",
                 auth != NULL ? "\r\n" : "");
    if (body != NULL)
        n += snprintf(req + n, sizeof(req) - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      strlen(body), body);
    else
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    limits_init(&lim);
    p = http1_parser_new(HTTP1_RESPONSE, &lim, &reply_hooks, &rep);
    json_free(rep.json);
    memset(&rep, 0, sizeof(rep));
    client_send(fd, req, (size_t)n);
    client_read(fd, p, &rep, 1);
    assert_int_equal(rep.count, 1);
    http1_parser_free(p);
    close(fd);
    run_loop_briefly();
}

static void request(const char *method, const char *path, const char *body)
{
    char auth[200];

    snprintf(auth, sizeof(auth), "Bearer %s", fx.token);
    request_auth(method, path, body, auth);
}

static const char *jstr(const struct json_value *v, const char *key)
{
    const char *s = json_as_string(json_object_get(v, key), NULL);

    if (s == NULL)
        fail_msg("no string \"%s\" in %s", key, rep.body);
    return s;
}

static int64_t jint(const struct json_value *v, const char *key)
{
    int64_t n = -1;

    if (json_as_int64(json_object_get(v, key), &n) != 0)
        fail_msg("no integer \"%s\" in %s", key, rep.body);
    return n;
}

static void expect_error(int status, const char *msg)
{
    if (rep.status != status)
        fail_msg("status %d, want %d: %s", rep.status, status, rep.body);
    assert_non_null(rep.json);
    assert_int_equal(json_object_count(rep.json), 1);
    assert_string_equal(jstr(rep.json, "error"), msg);
    assert_non_null(strstr(rep.head, "Content-Type: application/json\n"));
}

/* Creates |name| through the API and returns the token text (static). */
static const char *create(const char *name)
{
    static char token[4096];
    char body[256];

    snprintf(body, sizeof(body), "{\"name\": \"%s\"}", name);
    request("POST", "/v1/tunnels", body);
    if (rep.status != 201)
        fail_msg("create %s: %d %s", name, rep.status, rep.body);
    snprintf(token, sizeof(token), "%s", jstr(rep.json, "token"));
    return token;
}

/* ---- token file ---------------------------------------------------------------------------- */

static void test_token_file_is_created_0600_and_reused(void **state)
{
    struct stat sb;
    char first[128];

    (void)state;
    assert_int_equal(stat(fx.token_path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(strlen(fx.token), 43); /* 32 bytes in base64url without padding */
    assert_int_equal(strspn(fx.token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-_"),
                     43);
    snprintf(first, sizeof(first), "%s", fx.token);
    edge_down();
    edge_up(NULL);
    start_admin();
    assert_string_equal(fx.token, first);
}

static void test_group_readable_token_file_is_refused(void **state)
{
    char err[1024];

    (void)state;
    edge_down();
    assert_int_equal(chmod(fx.token_path, 0640), 0);
    edge_up(NULL);
    assert_int_equal(admin_start(&fx.e, err, sizeof(err)), CV_EAUTH);
    assert_null(fx.e.admin);
    assert_non_null(strstr(err, "chmod 600"));
    assert_non_null(strstr(err, fx.token_path));
    assert_null(strstr(err, fx.token));
}

static void test_generated_tokens_differ(void **state)
{
    char a[64];
    char b[64];

    (void)state;
    assert_int_equal(admin_token_generate(a), 0);
    assert_int_equal(admin_token_generate(b), 0);
    assert_int_equal(strlen(a), 43);
    assert_string_not_equal(a, b);
}

static void test_unix_socket_is_private(void **state)
{
    struct stat sb;

    (void)state;
    assert_int_equal(stat(fx.sock_path, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(admin_port(fx.e.admin), 0);
}

/* ---- authentication ------------------------------------------------------------------------ */

static void test_requests_without_the_token_get_a_bare_401(void **state)
{
    char auth[256];

    (void)state;
    request_auth("GET", "/v1/tunnels", NULL, NULL);
    expect_error(401, "unauthorized");
    assert_non_null(strstr(rep.head, "WWW-Authenticate: Bearer\n"));
    request_auth("GET", "/v1/tunnels", NULL, "Bearer wrong");
    expect_error(401, "unauthorized");
    snprintf(auth, sizeof(auth), "Basic %s", fx.token);
    request_auth("GET", "/v1/tunnels", NULL, auth);
    expect_error(401, "unauthorized");
    snprintf(auth, sizeof(auth), "Bearer %.*s", 42, fx.token); /* a prefix */
    request_auth("GET", "/v1/tunnels", NULL, auth);
    expect_error(401, "unauthorized");
    snprintf(auth, sizeof(auth), "Bearer %sx", fx.token);
    request_auth("GET", "/v1/tunnels", NULL, auth);
    expect_error(401, "unauthorized");
    /* Unknown paths and bad bodies say nothing before authentication. */
    request_auth("GET", "/nope", NULL, "Bearer wrong");
    expect_error(401, "unauthorized");
    request_auth("POST", "/v1/tunnels", "{\"name\": \"x\"}", NULL);
    expect_error(401, "unauthorized");
    assert_int_equal(store_tunnel_count(fx.e.store), 0);
}

static void test_bearer_scheme_is_case_insensitive(void **state)
{
    char auth[256];

    (void)state;
    snprintf(auth, sizeof(auth), "bEaReR %s", fx.token);
    request_auth("GET", "/v1/status", NULL, auth);
    assert_int_equal(rep.status, 200);
}

static void test_two_authorization_fields_are_refused(void **state)
{
    char auth[256];

    (void)state;
    snprintf(auth, sizeof(auth), "Bearer %s\r\nAuthorization: Bearer %s", fx.token, fx.token);
    request_auth("GET", "/v1/status", NULL, auth);
    expect_error(401, "unauthorized");
}

/* ---- tunnels ------------------------------------------------------------------------------- */

static void test_create_returns_a_token_that_authenticates(void **state)
{
    const char *text;
    struct token tok;
    const struct store_tunnel *t;
    char id[TOKEN_UUID_TEXT_LEN + 1];
    char edge[300];
    const char *why = NULL;

    (void)state;
    text = create("home-lab");
    assert_int_equal(json_object_count(rep.json), 3);
    assert_string_equal(jstr(rep.json, "name"), "home-lab");
    assert_non_null(strstr(rep.head, "Cache-Control: no-store\n"));
    t = store_find_name(fx.e.store, "home-lab");
    assert_non_null(t);
    token_uuid_format(t->id, id);
    assert_string_equal(jstr(rep.json, "id"), id);

    token_init(&tok);
    if (token_decode(text, strlen(text), &tok, &why) != 0)
        fail_msg("token_decode: %s", why);
    assert_memory_equal(tok.id, t->id, TOKEN_ID_LEN);
    assert_ptr_equal(store_authenticate(fx.e.store, tok.id, tok.secret), t);
    assert_int_equal(tok.n_edges, 2);
    config_format_addr(&tok.edges[0], edge, sizeof(edge));
    assert_string_equal(edge, "edge1.example.com:7844");
    config_format_addr(&tok.edges[1], edge, sizeof(edge));
    assert_string_equal(edge, "[2001:db8::1]:443");
    assert_true(tok.has_ca_sha256);
    assert_memory_equal(tok.ca_sha256, certs.ca_sha256, 32);
    token_cleanup(&tok);
}

static void test_create_errors(void **state)
{
    (void)state;
    create("web");
    request("POST", "/v1/tunnels", "{\"name\": \"web\"}");
    expect_error(409, "a tunnel named \"web\" already exists");
    request("POST", "/v1/tunnels", "{\"name\": \"a b\"}");
    expect_error(400, "invalid tunnel name: a tunnel name may only hold letters, digits, '.', "
                      "'_' and '-'");
    request("POST", "/v1/tunnels", "{\"title\": \"x\"}");
    expect_error(400, "\"name\" (a string) is required");
    request("POST", "/v1/tunnels", "{\"name\": 5}");
    expect_error(400, "\"name\" (a string) is required");
    request("POST", "/v1/tunnels", "{\"name\": \"x\\u0000y\"}");
    expect_error(400, "\"name\" (a string) is required");
    request("POST", "/v1/tunnels", "[\"x\"]");
    expect_error(400, "the body must be a JSON object");
    request("POST", "/v1/tunnels", "{\"name\": ");
    assert_int_equal(rep.status, 400);
    assert_non_null(strstr(jstr(rep.json, "error"), "the body is not valid JSON (byte "));
    request("POST", "/v1/tunnels", NULL);
    assert_int_equal(rep.status, 400);
    assert_int_equal(store_tunnel_count(fx.e.store), 1);
}

static void test_list_shape(void **state)
{
    const struct json_value *t;

    (void)state;
    request("GET", "/v1/tunnels", NULL);
    assert_int_equal(rep.status, 200);
    assert_int_equal(json_typeof(rep.json), JSON_ARRAY);
    assert_int_equal(json_array_count(rep.json), 0);
    create("b");
    create("a");
    request("GET", "/v1/tunnels", NULL);
    assert_int_equal(rep.status, 200);
    assert_int_equal(json_array_count(rep.json), 2);
    t = json_array_at(rep.json, 0);
    assert_string_equal(jstr(t, "name"), "b");
    assert_int_equal(strlen(jstr(t, "id")), 36);
    assert_int_equal(strlen(jstr(t, "created_at")), 20);
    assert_int_equal(jstr(t, "created_at")[19], 'Z');
    assert_int_equal(jint(t, "connectors"), 0);
    assert_int_equal(json_object_count(t), 4);
    assert_string_equal(jstr(json_array_at(rep.json, 1), "name"), "a");
    assert_null(strstr(rep.body, "secret"));
}

static void test_info_by_name_or_id(void **state)
{
    char path[128];
    char id[64];
    const struct json_value *routes;

    (void)state;
    create("web");
    snprintf(id, sizeof(id), "%s", jstr(rep.json, "id"));
    request("POST", "/v1/routes", "{\"hostname\": \"a.example.com\", \"tunnel\": \"web\"}");
    request("POST", "/v1/routes", "{\"hostname\": \"*.example.com\", \"tunnel\": \"web\"}");
    request("GET", "/v1/tunnels/web", NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "id"), id);
    assert_string_equal(jstr(rep.json, "name"), "web");
    assert_int_equal(strlen(jstr(rep.json, "created_at")), 20);
    routes = json_object_get(rep.json, "routes");
    assert_int_equal(json_array_count(routes), 2);
    assert_string_equal(json_as_string(json_array_at(routes, 0), NULL), "a.example.com");
    assert_string_equal(json_as_string(json_array_at(routes, 1), NULL), "*.example.com");
    assert_int_equal(json_typeof(json_object_get(rep.json, "connectors")), JSON_ARRAY);
    assert_int_equal(json_array_count(json_object_get(rep.json, "connectors")), 0);
    snprintf(path, sizeof(path), "/v1/tunnels/%s", id);
    request("GET", path, NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "name"), "web");
    request("GET", "/v1/tunnels/nope", NULL);
    expect_error(404, "no tunnel named \"nope\"");
    request("GET", "/v1/tunnels/w%65b?x=1", NULL); /* percent-decoded, query ignored */
    assert_int_equal(rep.status, 200);
}

static void test_rotate_gives_a_new_secret(void **state)
{
    char first[4096];
    struct token a;
    struct token b;
    const char *why;

    (void)state;
    snprintf(first, sizeof(first), "%s", create("web"));
    request("POST", "/v1/tunnels/web/rotate-token", NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "name"), "web");
    token_init(&a);
    token_init(&b);
    assert_int_equal(token_decode(first, strlen(first), &a, &why), 0);
    assert_int_equal(token_decode(jstr(rep.json, "token"), strlen(jstr(rep.json, "token")), &b,
                                  &why),
                     0);
    assert_memory_equal(a.id, b.id, TOKEN_ID_LEN);
    assert_null(store_authenticate(fx.e.store, a.id, a.secret));
    assert_non_null(store_authenticate(fx.e.store, b.id, b.secret));
    assert_int_equal(store_find_name(fx.e.store, "web")->generation, 2);
    token_cleanup(&a);
    token_cleanup(&b);
    request("GET", "/v1/tunnels/web/rotate-token", NULL);
    expect_error(405, "method GET not allowed here");
    assert_non_null(strstr(rep.head, "Allow: POST\n"));
    request("POST", "/v1/tunnels/nope/rotate-token", NULL);
    expect_error(404, "no tunnel named \"nope\"");
}

static void test_delete_removes_the_tunnel_and_its_routes(void **state)
{
    (void)state;
    create("web");
    create("other");
    request("POST", "/v1/routes", "{\"hostname\": \"a.example.com\", \"tunnel\": \"web\"}");
    request("POST", "/v1/routes", "{\"hostname\": \"b.example.com\", \"tunnel\": \"web\"}");
    request("POST", "/v1/routes", "{\"hostname\": \"c.example.com\", \"tunnel\": \"other\"}");
    request("DELETE", "/v1/tunnels/web", NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "name"), "web");
    assert_int_equal(jint(rep.json, "routes_removed"), 2);
    assert_null(store_find_name(fx.e.store, "web"));
    assert_null(store_route_lookup(fx.e.store, "a.example.com", NULL));
    assert_non_null(store_route_lookup(fx.e.store, "c.example.com", NULL));
    request("DELETE", "/v1/tunnels/web", NULL);
    expect_error(404, "no tunnel named \"web\"");
}

/* ---- routes -------------------------------------------------------------------------------- */

static void test_routes(void **state)
{
    const struct json_value *r;

    (void)state;
    create("web");
    create("other");
    request("POST", "/v1/routes", "{\"hostname\": \"App.Example.COM.\", \"tunnel\": \"web\"}");
    assert_int_equal(rep.status, 201);
    assert_string_equal(jstr(rep.json, "hostname"), "app.example.com");
    assert_string_equal(jstr(rep.json, "tunnel"), "web");
    assert_int_equal(json_typeof(json_object_get(rep.json, "created")), JSON_BOOL);
    assert_non_null(strstr(rep.body, "\"created\":true"));
    /* Applies at once: the store answers the public side's lookups. */
    assert_ptr_equal(store_route_lookup(fx.e.store, "app.example.com", NULL),
                     store_find_name(fx.e.store, "web"));
    request("POST", "/v1/routes", "{\"hostname\": \"app.example.com\", \"tunnel\": \"web\"}");
    assert_int_equal(rep.status, 200);
    assert_non_null(strstr(rep.body, "\"created\":false"));
    request("POST", "/v1/routes", "{\"hostname\": \"app.example.com\", \"tunnel\": \"other\"}");
    expect_error(409, "app.example.com is already routed to tunnel \"web\": delete that route "
                      "first");
    request("POST", "/v1/routes", "{\"hostname\": \"a.*.example.com\", \"tunnel\": \"web\"}");
    expect_error(400, "invalid hostname: \"*\" is only allowed as the first label");
    request("POST", "/v1/routes", "{\"hostname\": \"x.example.com\", \"tunnel\": \"nope\"}");
    expect_error(404, "no tunnel named \"nope\"");
    request("POST", "/v1/routes", "{\"hostname\": \"x.example.com\"}");
    expect_error(400, "\"tunnel\" (a string) is required");
    /* RELIABILITY.md 2.2: the wildcard would take names from another tunnel's route. */
    request("POST", "/v1/routes", "{\"hostname\": \"*.example.com\", \"tunnel\": \"other\"}");
    expect_error(409, "*.example.com overlaps the route app.example.com of tunnel \"web\": requests for "
                      "some names would change tunnels; add it with --allow-overlap "
                      "(\"allow_overlap\": true) if that is meant");
    request("POST", "/v1/routes", "{\"hostname\": \"*.example.com\", \"tunnel\": \"other\", "
                                  "\"allow_overlap\": 1}");
    expect_error(400, "\"allow_overlap\" must be true or false");
    request("POST", "/v1/routes", "{\"hostname\": \"*.example.com\", \"tunnel\": \"other\", "
                                  "\"allow_overlap\": true}");
    assert_int_equal(rep.status, 201);

    request("GET", "/v1/routes", NULL);
    assert_int_equal(rep.status, 200);
    assert_int_equal(json_array_count(rep.json), 2);
    r = json_array_at(rep.json, 1);
    assert_string_equal(jstr(r, "hostname"), "*.example.com");
    assert_string_equal(jstr(r, "tunnel"), "other");
    assert_int_equal(strlen(jstr(r, "tunnel_id")), 36);

    request("DELETE", "/v1/routes/%2A.example.com", NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "hostname"), "*.example.com");
    assert_string_equal(jstr(rep.json, "tunnel"), "other");
    request("DELETE", "/v1/routes/APP.example.com", NULL);
    assert_int_equal(rep.status, 200);
    request("DELETE", "/v1/routes/app.example.com", NULL);
    expect_error(404, "no route for app.example.com");
    request("DELETE", "/v1/routes/a_b", NULL);
    expect_error(400, "invalid hostname: \"_\" is not allowed in a hostname");
    assert_int_equal(store_route_count(fx.e.store), 0);
}

/* ---- other endpoints and errors ------------------------------------------------------------ */

static void test_status_shape(void **state)
{
    bool draining = true;

    (void)state;
    create("web");
    request("GET", "/v1/status", NULL);
    assert_int_equal(rep.status, 200);
    assert_string_equal(jstr(rep.json, "region"), "test-region");
    assert_non_null(jstr(rep.json, "version"));
    assert_int_equal(strlen(jstr(rep.json, "started_at")), 20);
    assert_int_equal(jint(rep.json, "tunnels"), 1);
    assert_int_equal(jint(rep.json, "routes"), 0);
    assert_int_equal(jint(rep.json, "connections"), 0);
    assert_int_equal(jint(rep.json, "streams"), 0);
    assert_int_equal(json_as_bool(json_object_get(rep.json, "draining"), &draining), 0);
    assert_false(draining);
}

static void test_unknown_endpoints_and_methods(void **state)
{
    (void)state;
    request("GET", "/", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v2/tunnels", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v1tunnels", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v1/tunnels/a/b", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v1/tunnels//x", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v1/tunnels/a%2fb", NULL);
    expect_error(404, "no such endpoint");
    request("GET", "/v1/tunnels/a%zz", NULL);
    expect_error(404, "no such endpoint");
    request("PUT", "/v1/tunnels", NULL);
    expect_error(405, "method PUT not allowed here");
    assert_non_null(strstr(rep.head, "Allow: GET, POST\n"));
    request("POST", "/v1/status", "{}");
    expect_error(405, "method POST not allowed here");
    request("GET", "/v1/routes/a.com", NULL);
    expect_error(405, "method GET not allowed here");
    assert_non_null(strstr(rep.head, "Allow: DELETE\n"));
    request("GET", "/v1/tunnels/", NULL); /* a trailing slash is the collection */
    assert_int_equal(rep.status, 200);
}

static void test_keep_alive_and_pipelining(void **state)
{
    struct cv_limits lim;
    struct http1_parser *p;
    char req[2048];
    int fd;
    int n;

    (void)state;
    limits_init(&lim);
    p = http1_parser_new(HTTP1_RESPONSE, &lim, &reply_hooks, &rep);
    json_free(rep.json);
    memset(&rep, 0, sizeof(rep));
    fd = client_connect();
    n = snprintf(req, sizeof(req),
                 "POST /v1/tunnels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Content-Length: 14\r\n\r\n{\"name\": \"p1\"}"
                 "GET /v1/tunnels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n",
                 fx.token, fx.token);
    client_send(fd, req, (size_t)n);
    client_read(fd, p, &rep, 2);
    assert_int_equal(rep.count, 2);
    assert_false(rep.closed);
    /* The second answer saw the first one's tunnel: requests ran in order. */
    assert_int_equal(rep.status, 200);
    assert_int_equal(json_array_count(rep.json), 1);
    /* A third request on the same connection, then Connection: close. */
    n = snprintf(req, sizeof(req),
                 "GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                 "Connection: close\r\n\r\n",
                 fx.token);
    client_send(fd, req, (size_t)n);
    client_read(fd, p, &rep, 3);
    assert_int_equal(rep.count, 3);
    assert_non_null(strstr(rep.head, "Connection: close\n"));
    assert_true(server_closed(fd));
    close(fd);
    http1_parser_free(p);
    json_free(rep.json);
    rep.json = NULL;
}

static void test_oversized_request_gets_413_and_a_close(void **state)
{
    char *body;

    (void)state;
    body = malloc(ADMIN_MAX_REQUEST + 10);
    assert_non_null(body);
    memset(body, ' ', ADMIN_MAX_REQUEST + 9);
    body[ADMIN_MAX_REQUEST + 9] = '\0';
    body[0] = '{';
    body[ADMIN_MAX_REQUEST + 8] = '}';
    request("POST", "/v1/tunnels", body);
    free(body);
    expect_error(413, "request too large (64 KiB at most)");
    assert_non_null(strstr(rep.head, "Connection: close\n"));
}

static void test_malformed_request_gets_400(void **state)
{
    struct cv_limits lim;
    struct http1_parser *p;
    static const char bad[] = "GET /v1/status HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n";
    int fd = client_connect();

    (void)state;
    limits_init(&lim);
    p = http1_parser_new(HTTP1_RESPONSE, &lim, &reply_hooks, &rep);
    memset(&rep, 0, sizeof(rep));
    client_send(fd, bad, sizeof(bad) - 1);
    client_read(fd, p, &rep, 1);
    assert_int_equal(rep.status, 400);
    assert_true(server_closed(fd));
    close(fd);
    http1_parser_free(p);
    json_free(rep.json);
    rep.json = NULL;
}

static void test_stop_closes_open_connections(void **state)
{
    int fd;

    (void)state;
    fd = client_connect();
    client_send(fd, "GET /v1/status HTTP/1.1\r\n", 25); /* half a request */
    run_loop_briefly();
    admin_stop(fx.e.admin);
    assert_null(fx.e.admin);
    assert_true(server_closed(fd));
    close(fd);
    /* teardown checks that everything was freed */
}

static void test_tcp_listener(void **state)
{
    struct sockaddr_in in;
    socklen_t len = sizeof(in);
    char listen[64];
    int probe;

    (void)state;
    edge_down();
    /* Find a free port: bind port 0, read it back, release it. */
    probe = socket(AF_INET, SOCK_STREAM, 0);
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(probe, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&in, &len), 0);
    close(probe);
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", ntohs(in.sin_port));
    edge_up(listen);
    start_admin();
    assert_int_equal(admin_port(fx.e.admin), ntohs(in.sin_port));
    request("GET", "/v1/status", NULL);
    assert_int_equal(rep.status, 200);
    request_auth("GET", "/v1/status", NULL, NULL);
    assert_int_equal(rep.status, 401);
}

static int free_reply(void **state)
{
    json_free(rep.json);
    rep.json = NULL;
    return teardown(state);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, free_reply)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_token_file_is_created_0600_and_reused),
        T(test_group_readable_token_file_is_refused),
        T(test_generated_tokens_differ),
        T(test_unix_socket_is_private),
        T(test_requests_without_the_token_get_a_bare_401),
        T(test_bearer_scheme_is_case_insensitive),
        T(test_two_authorization_fields_are_refused),
        T(test_create_returns_a_token_that_authenticates),
        T(test_create_errors),
        T(test_list_shape),
        T(test_info_by_name_or_id),
        T(test_rotate_gives_a_new_secret),
        T(test_delete_removes_the_tunnel_and_its_routes),
        T(test_routes),
        T(test_status_shape),
        T(test_unknown_endpoints_and_methods),
        T(test_keep_alive_and_pipelining),
        T(test_oversized_request_gets_413_and_a_close),
        T(test_malformed_request_gets_400),
        T(test_stop_closes_open_connections),
        T(test_tcp_listener),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
