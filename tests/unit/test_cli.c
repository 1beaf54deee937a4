/*
 * test_cli.c - `culvert-edge tunnel|route ...`: usage errors and exit codes in-process; then, with
 * a real admin API served by a forked child process (its own loop), every command end to end,
 * text and JSON output, token handling and the "edge not running" message. The CLI itself always
 * runs in this process, so its allocations are checked for leaks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <netinet/in.h>
#include <uv.h>

#include "admin.h"
#include "cli.h"
#include "edge.h"
#include "edge_config.h"
#include "json.h"
#include "mem.h"
#include "sock.h"
#include "store.h"
#include "token.h"
#include "tunnel.h"

static char dir[64];
static char config_path[128];
static char sock_path[100];
static char token_path[128];
static char admin_token[64];
static pid_t server_pid = -1;

static char *out_text;
static char *err_text;

/* ---- running the CLI ---------------------------------------------------------------------- */

/* Runs cli_run with the NULL-terminated arguments; output lands in out_text / err_text. */
static int run(const char *first, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    size_t on = 0;
    size_t en = 0;
    FILE *out;
    FILE *err;
    long live = mem_live_count();
    int rv;

    free(out_text);
    free(err_text);
    out_text = NULL;
    err_text = NULL;
    out = open_memstream(&out_text, &on);
    err = open_memstream(&err_text, &en);
    assert_non_null(out);
    assert_non_null(err);
    argv[argc++] = (char *)(uintptr_t)first;
    va_start(ap, first);
    for (;;) {
        const char *a = va_arg(ap, const char *);

        if (a == NULL)
            break;
        assert_true(argc < 31);
        argv[argc++] = (char *)(uintptr_t)a;
    }
    va_end(ap);
    argv[argc] = NULL;
    rv = cli_run(argc, argv, out, err);
    fclose(out);
    fclose(err);
    assert_int_equal(mem_live_count(), live);
    /* The admin token is never printed, whatever happened. */
    if (admin_token[0] != '\0') {
        assert_null(strstr(out_text, admin_token));
        assert_null(strstr(err_text, admin_token));
    }
    return rv;
}

static void expect_err(const char *want)
{
    if (strcmp(err_text, want) != 0)
        fail_msg("stderr \"%s\"\n want \"%s\"", err_text, want);
}

/* ---- the server child --------------------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The child: an edge with only the admin API, until it is killed. */
static void serve_admin(int ready_fd)
{
    uv_loop_t loop;
    struct edge e;
    char err[1024];

    memset(&e, 0, sizeof(e));
    if (uv_loop_init(&loop) != 0)
        _exit(10);
    e.loop = &loop;
    if (sock_loop_init(&e.sl, &loop) != 0 ||
        edge_config_load(config_path, &e.cfg, err, sizeof(err)) != 0)
        _exit(11);
    e.limits = e.cfg->limits;
    if (store_open(e.cfg->data_dir, &e.store, err, sizeof(err)) != 0)
        _exit(12);
    e.reg = tunnel_registry_new(&e);
    e.started_ms = (uint64_t)edge_wall_ms();
    if (e.reg == NULL || admin_start(&e, err, sizeof(err)) != 0)
        _exit(13);
    if (write(ready_fd, "r", 1) != 1)
        _exit(14);
    close(ready_fd);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(0);
}

static int setup(void **state)
{
    char yaml[1024];
    char *tok = NULL;
    size_t len = 0;
    struct token_error terr;
    int fds[2];
    char c;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/culvert-cli-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(config_path, sizeof(config_path), "%s/edge.yml", dir);
    snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", dir);
    snprintf(token_path, sizeof(token_path), "%s/admin.token", dir);
    snprintf(yaml, sizeof(yaml),
             "data_dir: data\n"
             "public: { certificates: [{ cert: c.pem, key: c.key }] }\n"
             "tunnel: { listen: \"127.0.0.1:7844\", cert: t.pem, key: t.key }\n"
             "admin: { listen: \"unix:%s\", token_file: admin.token }\n",
             sock_path);
    write_text(config_path, yaml);
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    server_pid = fork();
    if (server_pid < 0)
        return -1;
    if (server_pid == 0) {
        close(fds[0]);
        serve_admin(fds[1]);
    }
    close(fds[1]);
    if (read(fds[0], &c, 1) != 1) {
        close(fds[0]);
        return -1;
    }
    close(fds[0]);
    if (token_read_secret_file(token_path, &tok, &len, &terr) != 0)
        return -1;
    snprintf(admin_token, sizeof(admin_token), "%s", tok);
    mem_free_secret(tok, len + 1);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    int status;

    (void)state;
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, &status, 0);
        server_pid = -1;
    }
    admin_token[0] = '\0';
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int final_teardown(void **state)
{
    (void)state;
    free(out_text);
    free(err_text);
    out_text = NULL;
    err_text = NULL;
    return 0;
}

/* ---- usage -------------------------------------------------------------------------------- */

static void test_usage_errors_exit_2_and_name_the_problem(void **state)
{
    (void)state;
    assert_int_equal(run("tunnel", NULL), 2);
    assert_non_null(strstr(err_text, "usage: culvert-edge tunnel COMMAND"));
    assert_int_equal(run("tunnel", "frob", NULL), 2);
    expect_err("culvert-edge tunnel: unknown command \"frob\" (see culvert-edge tunnel --help)\n");
    assert_int_equal(run("tunnel", "create", NULL), 2);
    expect_err("culvert-edge tunnel create: missing NAME (see --help)\n");
    assert_int_equal(run("route", "add", "app.example.com", NULL), 2);
    expect_err("culvert-edge route add: missing TUNNEL (see --help)\n");
    assert_int_equal(run("route", "add", NULL), 2);
    expect_err("culvert-edge route add: missing HOSTNAME TUNNEL (see --help)\n");
    assert_int_equal(run("tunnel", "list", "extra", NULL), 2);
    expect_err("culvert-edge tunnel list: unexpected argument \"extra\" (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--output", "yaml", NULL), 2);
    expect_err("culvert-edge tunnel list: --output: expected json or text, not \"yaml\" (see "
               "--help)\n");
    assert_int_equal(run("tunnel", "list", "--admin", NULL), 2);
    expect_err("culvert-edge tunnel list: --admin needs a value (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--admin=", NULL), 2);
    expect_err("culvert-edge tunnel list: --admin needs a value (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--bogus", NULL), 2);
    expect_err("culvert-edge tunnel list: unknown option --bogus (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--admin", "nohost", NULL), 2);
    expect_err("culvert-edge tunnel list: --admin: missing port (write host:port) (expected "
               "http://HOST:PORT or unix:/PATH) (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--admin", "https://127.0.0.1:7845", NULL), 2);
    assert_non_null(strstr(err_text, "--admin: the admin API speaks plain http"));
    assert_int_equal(run("tunnel", "create", "bad name", "--admin", "unix:/nonexistent", NULL),
                     2);
    expect_err("culvert-edge tunnel create: NAME \"bad name\": a tunnel name may only hold "
               "letters, digits, '.', '_' and '-' (see --help)\n");
    assert_int_equal(run("route", "delete", "a.*.com", "--admin", "unix:/nonexistent", NULL), 2);
    expect_err("culvert-edge route delete: HOSTNAME \"a.*.com\": \"*\" is only allowed as the "
               "first label (see --help)\n");
    assert_int_equal(run("tunnel", "list", "--config", "/nonexistent/edge.yml", NULL), 2);
    assert_non_null(strstr(err_text, "/nonexistent/edge.yml"));
    assert_int_equal(run("serve", NULL), 2);
    assert_string_equal(out_text, "");
    assert_int_equal(run("tunnel", "--admin", "unix:/x", NULL), 2);
    assert_non_null(strstr(err_text, "usage: culvert-edge tunnel COMMAND"));
    assert_int_equal(run("tunnel", "--output", "yaml", "list", NULL), 2);
    expect_err("culvert-edge tunnel list: --output: expected json or text, not \"yaml\" (see "
               "--help)\n");
}

static void test_help_exits_0(void **state)
{
    (void)state;
    assert_int_equal(run("tunnel", "--help", NULL), 0);
    assert_non_null(strstr(out_text, "usage: culvert-edge tunnel COMMAND"));
    assert_non_null(strstr(out_text, "rotate-token NAME"));
    assert_non_null(strstr(out_text, "--admin-token-file"));
    assert_int_equal(run("route", "-h", NULL), 0);
    assert_non_null(strstr(out_text, "add HOSTNAME TUNNEL"));
    assert_int_equal(run("tunnel", "create", "--help", NULL), 0);
    assert_non_null(strstr(out_text, "usage: culvert-edge tunnel create NAME [options]"));
    assert_int_equal(run("route", "list", "-h", "--admin", "unix:/x", NULL), 0);
    assert_non_null(strstr(out_text, "usage: culvert-edge route list [options]"));
    assert_int_equal(run("route", "--help", "list", NULL), 0);
    assert_non_null(strstr(out_text, "usage: culvert-edge route list [options]"));
    assert_int_equal(run("tunnel", "--config", "x.yml", "--help", NULL), 0);
    assert_non_null(strstr(out_text, "usage: culvert-edge tunnel COMMAND"));
    assert_string_equal(err_text, "");
}

static void test_unreachable_edge_says_so(void **state)
{
    struct sockaddr_in in;
    socklen_t len = sizeof(in);
    char addr[64];
    char want[256];
    int probe;

    (void)state;
    assert_int_equal(run("tunnel", "list", "--admin", "unix:/tmp/culvert-no-such.sock",
                         "--admin-token-file", "/nonexistent", NULL),
                     1);
    expect_err("culvert-edge tunnel list: cannot reach the edge admin API at "
               "unix:/tmp/culvert-no-such.sock (no such file or directory): is `culvert-edge "
               "serve` running?\n");
    /* A free port nobody listens on. */
    probe = socket(AF_INET, SOCK_STREAM, 0);
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(probe, (struct sockaddr *)&in, sizeof(in)), 0);
    assert_int_equal(getsockname(probe, (struct sockaddr *)&in, &len), 0);
    close(probe);
    snprintf(addr, sizeof(addr), "http://127.0.0.1:%u/", ntohs(in.sin_port));
    assert_int_equal(run("route", "list", "--admin", addr, NULL), 1);
    snprintf(want, sizeof(want),
             "culvert-edge route list: cannot reach the edge admin API at http://127.0.0.1:%u "
             "(connection refused): is `culvert-edge serve` running?\n",
             ntohs(in.sin_port));
    expect_err(want);
}

/* ---- against a running admin API --------------------------------------------------------- */

/* The value of "key: value" on a line of out_text (static copy). */
static const char *line_value(const char *prefix)
{
    static char v[4096];
    const char *p = strstr(out_text, prefix);
    size_t n;

    assert_non_null(p);
    p += strlen(prefix);
    n = strcspn(p, "\n");
    snprintf(v, sizeof(v), "%.*s", (int)n, p);
    return v;
}

static struct json_value *out_json(void)
{
    struct json_value *v = NULL;

    if (json_parse(out_text, strlen(out_text), NULL, &v, NULL) != 0)
        fail_msg("not JSON: %s", out_text);
    return v;
}

static const char *jstr(const struct json_value *v, const char *key)
{
    const char *s = json_as_string(json_object_get(v, key), NULL);

    assert_non_null(s);
    return s;
}

static void test_tunnel_create_text_prints_id_and_token_once(void **state)
{
    char token[4096];
    const char *p;
    struct token tok;
    const char *why;

    (void)state;
    assert_int_equal(run("tunnel", "create", "web", "--config", config_path, NULL), 0);
    assert_string_equal(err_text, "");
    assert_non_null(strstr(out_text, "Created tunnel \"web\" with id "));
    assert_non_null(strstr(out_text, "shown only once"));
    /* The token is the line after the blank line following "Token (...):". */
    p = strstr(out_text, "):\n\n");
    assert_non_null(p);
    p += 4;
    snprintf(token, sizeof(token), "%.*s", (int)strcspn(p, "\n"), p);
    token_init(&tok);
    if (token_decode(token, strlen(token), &tok, &why) != 0)
        fail_msg("token_decode: %s (%s)", why, token);
    assert_int_equal(tok.n_edges, 1);
    token_cleanup(&tok);
    /* Printed once only. */
    assert_null(strstr(strstr(out_text, token) + 1, token));

    assert_int_equal(run("tunnel", "create", "web", "--config", config_path, NULL), 1);
    expect_err("culvert-edge tunnel create: a tunnel named \"web\" already exists (HTTP 409)\n");
}

static void test_json_outputs_have_the_documented_shapes(void **state)
{
    struct json_value *v;
    const struct json_value *t;
    char first_token[4096];

    (void)state;
    assert_int_equal(run("tunnel", "create", "web", "--config", config_path, "--output", "json",
                         NULL),
                     0);
    v = out_json();
    assert_int_equal(json_object_count(v), 3);
    assert_string_equal(jstr(v, "name"), "web");
    assert_int_equal(strlen(jstr(v, "id")), 36);
    snprintf(first_token, sizeof(first_token), "%s", jstr(v, "token"));
    json_free(v);

    /* Options may come before the command. */
    assert_int_equal(run("tunnel", "--config", config_path, "-o", "json", "list", NULL), 0);
    v = out_json();
    assert_int_equal(json_array_count(v), 1);
    t = json_array_at(v, 0);
    assert_int_equal(json_object_count(t), 4);
    assert_string_equal(jstr(t, "name"), "web");
    assert_non_null(jstr(t, "created_at"));
    assert_int_equal(json_typeof(json_object_get(t, "connectors")), JSON_NUMBER);
    json_free(v);

    assert_int_equal(run("route", "add", "app.example.com", "web", "--config", config_path,
                         "--output=json", NULL),
                     0);
    assert_int_equal(run("route", "list", "--config", config_path, "--output", "json", NULL), 0);
    v = out_json();
    assert_int_equal(json_array_count(v), 1);
    assert_string_equal(jstr(json_array_at(v, 0), "hostname"), "app.example.com");
    assert_string_equal(jstr(json_array_at(v, 0), "tunnel"), "web");
    json_free(v);

    assert_int_equal(run("tunnel", "info", "web", "--config", config_path, "--output", "json",
                         NULL),
                     0);
    v = out_json();
    assert_string_equal(jstr(v, "name"), "web");
    assert_non_null(jstr(v, "id"));
    assert_non_null(jstr(v, "created_at"));
    assert_int_equal(json_array_count(json_object_get(v, "routes")), 1);
    assert_int_equal(json_typeof(json_object_get(v, "connectors")), JSON_ARRAY);
    json_free(v);

    assert_int_equal(run("tunnel", "rotate-token", "web", "--config", config_path, "--output",
                         "json", NULL),
                     0);
    v = out_json();
    assert_int_equal(json_object_count(v), 3);
    assert_string_not_equal(jstr(v, "token"), first_token);
    json_free(v);
}

static void test_text_outputs(void **state)
{
    (void)state;
    assert_int_equal(run("tunnel", "list", "--config", config_path, NULL), 0);
    assert_string_equal(out_text, "No tunnels. Create one with `culvert-edge tunnel create "
                                  "NAME`.\n");
    assert_int_equal(run("route", "list", "--config", config_path, NULL), 0);
    assert_string_equal(out_text, "No routes. Add one with `culvert-edge route add HOSTNAME "
                                  "TUNNEL`.\n");
    assert_int_equal(run("tunnel", "create", "home-lab", "--config", config_path, NULL), 0);
    assert_int_equal(run("tunnel", "list", "--config", config_path, NULL), 0);
    assert_int_equal(strncmp(out_text, "ID                                    NAME      CREATED "
                                       "              CONNECTORS\n",
                             strlen("ID                                    NAME      CREATED    "
                                    "           CONNECTORS\n")),
                     0);
    assert_non_null(strstr(out_text, "  home-lab  "));
    assert_int_equal(out_text[strlen(out_text) - 2], '0');

    assert_int_equal(run("route", "add", "App.Example.COM", "home-lab", "--config", config_path,
                         NULL),
                     0);
    assert_string_equal(out_text, "Routed app.example.com to tunnel \"home-lab\".\n");
    assert_int_equal(run("route", "add", "app.example.com", "home-lab", "--config", config_path,
                         NULL),
                     0);
    assert_string_equal(out_text, "app.example.com already routes to tunnel \"home-lab\": nothing "
                                  "to do.\n");
    assert_int_equal(run("route", "add", "*.example.com", "home-lab", "--config", config_path,
                         NULL),
                     0);
    assert_int_equal(run("route", "list", "--config", config_path, NULL), 0);
    assert_string_equal(out_text, "HOSTNAME         TUNNEL\n"
                                  "app.example.com  home-lab\n"
                                  "*.example.com    home-lab\n");
    assert_int_equal(run("tunnel", "info", "home-lab", "--config", config_path, NULL), 0);
    assert_string_equal(line_value("Name:        "), "home-lab");
    assert_int_equal(strlen(line_value("ID:          ")), 36);
    assert_string_equal(line_value("Routes:      "), "app.example.com");
    assert_non_null(strstr(out_text, "\n             *.example.com\n"));
    assert_string_equal(line_value("Connectors:  "), "0 online");

    assert_int_equal(run("route", "delete", "app.example.com", "--config", config_path, NULL),
                     0);
    assert_string_equal(out_text, "Removed the route app.example.com (it went to tunnel "
                                  "\"home-lab\").\n");
    assert_int_equal(run("route", "delete", "app.example.com", "--config", config_path, NULL),
                     1);
    expect_err("culvert-edge route delete: no route for app.example.com (HTTP 404)\n");

    assert_int_equal(run("tunnel", "rotate-token", "home-lab", "--config", config_path, NULL), 0);
    assert_non_null(strstr(out_text, "Rotated the token of tunnel \"home-lab\""));
    assert_non_null(strstr(out_text, "shown only once"));

    assert_int_equal(run("tunnel", "delete", "home-lab", "--config", config_path, NULL), 0);
    assert_non_null(strstr(out_text, "Deleted tunnel \"home-lab\" (id "));
    assert_non_null(strstr(out_text, "and 1 route;"));
    assert_int_equal(run("tunnel", "info", "home-lab", "--config", config_path, NULL), 1);
    expect_err("culvert-edge tunnel info: no tunnel named \"home-lab\" (HTTP 404)\n");
    assert_int_equal(run("route", "add", "x.example.com", "home-lab", "--config", config_path,
                         NULL),
                     1);
    expect_err("culvert-edge route add: no tunnel named \"home-lab\" (HTTP 404)\n");
}

static void test_route_conflict_exits_1(void **state)
{
    (void)state;
    assert_int_equal(run("tunnel", "create", "a", "--config", config_path, NULL), 0);
    assert_int_equal(run("tunnel", "create", "b", "--config", config_path, NULL), 0);
    assert_int_equal(run("route", "add", "x.example.com", "a", "--config", config_path, NULL), 0);
    assert_int_equal(run("route", "add", "x.example.com", "b", "--config", config_path, NULL), 1);
    expect_err("culvert-edge route add: x.example.com is already routed to tunnel \"a\": delete "
               "that route first (HTTP 409)\n");
}

static void test_admin_flags_work_without_a_config(void **state)
{
    char admin[128];

    (void)state;
    snprintf(admin, sizeof(admin), "unix:%s", sock_path);
    assert_int_equal(run("tunnel", "list", "--admin", admin, "--admin-token-file", token_path,
                         NULL),
                     0);
    /* --admin beats the config's address. */
    assert_int_equal(run("tunnel", "list", "--config", config_path, "--admin",
                         "unix:/tmp/culvert-no-such.sock", NULL),
                     1);
    assert_non_null(strstr(err_text, "unix:/tmp/culvert-no-such.sock (no such file"));
}

static void test_wrong_or_unsafe_admin_token_fails_without_printing_it(void **state)
{
    char other[160];
    char admin[128];
    char want[512];

    (void)state;
    snprintf(admin, sizeof(admin), "unix:%s", sock_path);
    snprintf(other, sizeof(other), "%s/other.token", dir);
    write_text(other, "not-the-token\n");
    assert_int_equal(chmod(other, 0600), 0);
    assert_int_equal(run("tunnel", "list", "--admin", admin, "--admin-token-file", other, NULL),
                     1);
    snprintf(want, sizeof(want),
             "culvert-edge tunnel list: the edge admin API at %s refused the admin token from %s "
             "(401): use the file named by admin.token_file in edge.yml (--admin-token-file or "
             "--config)\n",
             admin, other);
    expect_err(want);
    assert_null(strstr(err_text, "not-the-token"));

    assert_int_equal(chmod(token_path, 0644), 0);
    assert_int_equal(run("tunnel", "list", "--config", config_path, NULL), 1);
    assert_non_null(strstr(err_text, "chmod 600"));
    assert_int_equal(chmod(token_path, 0600), 0);

    snprintf(other, sizeof(other), "%s/missing.token", dir);
    assert_int_equal(run("tunnel", "list", "--admin", admin, "--admin-token-file", other, NULL),
                     1);
    assert_non_null(strstr(err_text, "cannot use the admin token"));
    assert_non_null(strstr(err_text, other));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors_exit_2_and_name_the_problem),
        cmocka_unit_test(test_help_exits_0),
        cmocka_unit_test(test_unreachable_edge_says_so),
        T(test_tunnel_create_text_prints_id_and_token_once),
        T(test_json_outputs_have_the_documented_shapes),
        T(test_text_outputs),
        T(test_route_conflict_exits_1),
        T(test_admin_flags_work_without_a_config),
        T(test_wrong_or_unsafe_admin_token_fails_without_printing_it),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, final_teardown);
}
