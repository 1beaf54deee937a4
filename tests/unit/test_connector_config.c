/*
 * test_connector_config.c - connector/connector_config.c: flags and config.yml (every key, flag
 * precedence, cloudflared example configs), located validation errors, token sources in their
 * documented order, --token wiped from argv, token and credentials file checks, the default file
 * search, reload, allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "connector_config.h"
#include "err.h"
#include "mem.h"
#include "token.h"

#define UUID1 "11111111-1111-1111-1111-111111111111"
#define UUID6 "66666666-6666-6666-6666-666666666666"

static char tmpdir[64];
static char home[128];

/* ---- helpers -------------------------------------------------------------------------------- */

struct args {
    int argc;
    char *argv[32];
};

/* Fills |a| with writable copies of the NULL-terminated list. */
static void args_set(struct args *a, ...)
{
    va_list ap;
    const char *s;

    a->argc = 0;
    va_start(ap, a);
    while ((s = va_arg(ap, const char *)) != NULL) {
        assert_true(a->argc < 31);
        a->argv[a->argc++] = strdup(s);
    }
    va_end(ap);
    a->argv[a->argc] = NULL;
}

static void args_free(struct args *a)
{
    for (int i = 0; i < a->argc; i++)
        free(a->argv[i]);
    a->argc = 0;
}

/* A token for tunnel id and secret filled with |b|, one edge, optionally a CA digest. Free with
 * free(). */
static char *make_token(uint8_t b, const char *edge, bool ca)
{
    struct token t;
    struct config_addr a;
    char *text;
    char *copy;
    size_t len;

    token_init(&t);
    memset(t.id, b, sizeof(t.id));
    memset(t.secret, (uint8_t)(b + 1), sizeof(t.secret));
    assert_int_equal(config_parse_addr(edge, 0, &a, NULL), 0);
    assert_int_equal(token_add_edge(&t, &a), 0);
    if (ca) {
        t.has_ca_sha256 = true;
        memset(t.ca_sha256, 0xca, sizeof(t.ca_sha256));
    }
    assert_int_equal(token_encode(&t, &text, &len), 0);
    copy = strdup(text);
    mem_free_secret(text, len + 1);
    token_cleanup(&t);
    return copy;
}

static void write_file_mode(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* tmpdir/NAME, written with |text| (mode 0600); returns the path in a static slot. */
static const char *tfile(const char *name, const char *text)
{
    static char slots[8][256];
    static unsigned next;
    char *p = slots[next++ % 8];

    snprintf(p, 256, "%s/%s", tmpdir, name);
    write_file_mode(p, text, 0600);
    return p;
}

/* A cloudflared credentials file for id/secret byte |b|, with an optional "Edge" list. */
static const char *creds_file(const char *name, uint8_t b, const char *edge_json, mode_t mode)
{
    static char path[256];
    uint8_t secret[32];
    unsigned char b64[64];
    uint8_t id[16];
    char idtext[40];
    char json[512];

    memset(id, b, sizeof(id));
    memset(secret, (uint8_t)(b + 1), sizeof(secret));
    token_uuid_format(id, idtext);
    EVP_EncodeBlock(b64, secret, sizeof(secret));
    snprintf(json, sizeof(json),
             "{\"AccountTag\":\"5ab4e9dfbd435d24068829fda0077963\",\"TunnelSecret\":\"%s\","
             "\"TunnelID\":\"%s\",\"Endpoint\":\"\"%s%s}",
             (const char *)b64, idtext, edge_json != NULL ? ",\"Edge\":" : "",
             edge_json != NULL ? edge_json : "");
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    write_file_mode(path, json, mode);
    return path;
}

static int load(struct args *a, struct connector_config **c, char *err, size_t errlen)
{
    *c = NULL;
    err[0] = '\0';
    return connector_config_load(a->argc, a->argv, c, err, errlen);
}

/* Loads --config FILE (plus $CULVERT_TOKEN for credentials) and expects exactly |msg|. */
static void file_fails(const char *text, const char *msg_fmt)
{
    struct connector_config *c;
    struct args a;
    char expect[1024];
    char err[1024];
    const char *path = tfile("bad.yml", text);
    char *tok = make_token(0x11, "edge.example.com:7844", false);

    setenv("CULVERT_TOKEN", tok, 1);
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    assert_null(c);
    /* |msg_fmt| holds one "%s" for the file's path. */
    {
        const char *at = strstr(msg_fmt, "%s");

        assert_non_null(at);
        snprintf(expect, sizeof(expect), "%.*s%s%s", (int)(at - msg_fmt), msg_fmt, path, at + 2);
    }
    assert_string_equal(err, expect);
    assert_null(strstr(err, tok));
    args_free(&a);
    unsetenv("CULVERT_TOKEN");
    free(tok);
}

static void flags_fail(const char *msg, ...)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    va_list ap;
    const char *s;

    a.argc = 0;
    va_start(ap, msg);
    while ((s = va_arg(ap, const char *)) != NULL)
        a.argv[a.argc++] = strdup(s);
    va_end(ap);
    a.argv[a.argc] = NULL;
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    assert_null(c);
    assert_string_equal(err, msg);
    args_free(&a);
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_connector_config.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(home, sizeof(home), "%s/home", tmpdir);
    if (mkdir(home, 0700) != 0)
        return -1;
    setenv("HOME", home, 1);
    unsetenv("CULVERT_TOKEN");
    unsetenv("TUNNEL_TOKEN");
    return 0;
}

static int remove_dir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static bool system_config_exists(void)
{
    return access("/etc/culvert/config.yml", F_OK) == 0 ||
           access("/etc/culvert/config.yaml", F_OK) == 0 ||
           access("/etc/cloudflared/config.yml", F_OK) == 0 ||
           access("/etc/cloudflared/config.yaml", F_OK) == 0;
}

/* ---- basics --------------------------------------------------------------------------------- */

static void test_token_and_url_alone_give_a_complete_config(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];
    char *tok = make_token(0x11, "edge.example.com:7844", true);
    uint8_t secret[32];

    (void)state;
    if (system_config_exists())
        skip();
    args_set(&a, "--token", tok, "--url", "http://localhost:8080", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_null(c->config_path);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_FLAG);
    assert_string_equal(c->tunnel_id_text, UUID1);
    memset(secret, 0x12, sizeof(secret));
    assert_memory_equal(c->secret, secret, 32);
    assert_int_equal(c->n_edges, 1);
    assert_string_equal(c->edges[0].host, "edge.example.com");
    assert_int_equal(c->edges[0].port, 7844);
    assert_true(c->has_ca_sha256);
    assert_int_equal(c->ca_sha256[0], 0xca);
    assert_null(c->edge_ca);
    assert_int_equal(c->ha_connections, 4);
    assert_int_equal(c->metrics_mode, CONNECTOR_METRICS_DEFAULT);
    assert_int_equal(c->loglevel, LOG_INFO);
    assert_int_equal(c->grace_period_ms, 30000);
    assert_int_equal(c->retry_base_ms, 1000);
    assert_int_equal(c->heartbeat_ms, 5000);
    assert_null(c->region);
    assert_string_equal(c->url, "http://localhost:8080");
    assert_true(c->url_from_flag);
    assert_int_equal(ingress_rule_count(c->ingress), 1);
    assert_string_equal(ingress_rule_at(c->ingress, 0)->service.text, "http://localhost:8080");
    assert_int_equal(c->n_warnings, 0);
    connector_config_free(c);
    args_free(&a);
    free(tok);
}

static bool contains(struct args *a, const char *needle)
{
    for (int i = 0; i < a->argc; i++) {
        if (strstr(a->argv[i], needle) != NULL)
            return true;
    }
    return false;
}

static void test_token_flag_is_wiped_from_argv(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];
    char *tok = make_token(0x11, "edge.example.com:7844", false);
    char eq[2048];
    size_t n = strlen(tok);

    (void)state;
    args_set(&a, "--url", "http://localhost:8080", "--token", tok, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_false(contains(&a, tok));
    assert_int_equal(strlen(a.argv[3]), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(a.argv[3][i], 'x');
    assert_string_equal(a.argv[2], "--token");
    connector_config_free(c);
    args_free(&a);

    snprintf(eq, sizeof(eq), "--token=%s", tok);
    args_set(&a, eq, "--url", "http://localhost:8080", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_false(contains(&a, tok));
    assert_int_equal(strncmp(a.argv[0], "--token=xxxx", 12), 0);
    assert_int_equal(strlen(a.argv[0]), 8 + n);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_FLAG);
    connector_config_free(c);
    args_free(&a);

    /* Wiped even when parsing fails before or after it, and never quoted. */
    args_set(&a, "--bogus", "-token", tok, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    assert_string_equal(err, "unknown flag --bogus (see --help)");
    assert_false(contains(&a, tok));
    args_free(&a);

    args_set(&a, "--token", "eyJ2IjoxfQ-SECRETSECRETSECRET", "--url", "http://x", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    assert_null(strstr(err, "SECRET"));
    assert_non_null(strstr(err, "--token: invalid token: "));
    assert_false(contains(&a, "SECRET"));
    args_free(&a);
    free(tok);
}

static void test_help_and_usage(void **state)
{
    struct connector_config *c = (struct connector_config *)&c;
    struct args a;
    char err[512];
    char text[4096];
    FILE *f = tmpfile();
    size_t k;

    (void)state;
    args_set(&a, "--url", "http://x", "--help", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CONNECTOR_CONFIG_HELP);
    assert_null(c);
    args_free(&a);
    args_set(&a, "-h", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CONNECTOR_CONFIG_HELP);
    args_free(&a);

    connector_config_usage(f);
    rewind(f);
    k = fread(text, 1, sizeof(text) - 1, f);
    text[k] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "usage: culvert-connector run"));
    assert_non_null(strstr(text, "--token-file FILE"));
    assert_non_null(strstr(text, "--ha-connections N     connections to keep, 1-16 (default 4)"));
    assert_non_null(strstr(text, "127.0.0.1:20241-20245"));
    assert_null(strstr(text, "--retry-base")); /* hidden */
}

/* ---- every key, and flags over the file ----------------------------------------------------- */

static const char *full_config(void)
{
    static char text[2048];
    char *tok = make_token(0x33, "token-edge.example.com:7844", false);

    snprintf(text, sizeof(text),
             "tunnel: " UUID1 "\n"
             "token: %s\n"
             "edge: [\"edge1.example.com:7844\", \"[2001:db8::1]:7844\"]\n"
             "edge-ca: /etc/culvert/edge-ca.pem\n"
             "ha-connections: 2\n"
             "region: home-lab\n"
             "metrics: 127.0.0.1:20300\n"
             "loglevel: debug\n"
             "grace-period: 1m30s\n"
             "originRequest: { connectTimeout: 3s, keepAliveConnections: 10 }\n"
             "ingress:\n"
             "  - hostname: app.example.com\n"
             "    path: ^/api/\n"
             "    service: http://localhost:8000\n"
             "    originRequest: { httpHostHeader: api.internal }\n"
             "  - service: http_status:404\n",
             tok);
    free(tok);
    return text;
}

static void test_config_file_sets_every_key(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];
    const char *path = tfile("full.yml", full_config());
    const struct ingress_rule *r;

    (void)state;
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_string_equal(c->config_path, path);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_CONFIG);
    assert_string_equal(c->tunnel_id_text, "33333333-3333-3333-3333-333333333333");
    assert_int_equal(c->n_edges, 2); /* edge: beats the token's list */
    assert_string_equal(c->edges[0].host, "edge1.example.com");
    assert_int_equal(c->edges[1].host_kind, HOSTNAME_IPV6);
    assert_string_equal(c->edges[1].host, "2001:db8::1");
    assert_string_equal(c->edge_ca, "/etc/culvert/edge-ca.pem");
    assert_int_equal(c->ha_connections, 2);
    assert_string_equal(c->region, "home-lab");
    assert_int_equal(c->metrics_mode, CONNECTOR_METRICS_ADDR);
    assert_string_equal(c->metrics.host, "127.0.0.1");
    assert_int_equal(c->metrics.port, 20300);
    assert_int_equal(c->loglevel, LOG_DEBUG);
    assert_int_equal(c->grace_period_ms, 90000);
    assert_null(c->url);
    assert_int_equal(ingress_rule_count(c->ingress), 2);
    r = ingress_rule_at(c->ingress, 0);
    assert_int_equal(r->origin.connect_timeout_ms, 3000);
    assert_int_equal(r->origin.keepalive_connections, 10);
    assert_string_equal(r->origin.http_host_header, "api.internal");
    assert_int_equal(ingress_defaults(c->ingress)->connect_timeout_ms, 3000);
    /* tunnel: names another tunnel than the token: warned, the token wins. */
    assert_int_equal(c->n_warnings, 1);
    assert_string_equal(c->warnings[0],
                        "tunnel " UUID1 " (--tunnel or tunnel:) differs from the token's tunnel "
                        "33333333-3333-3333-3333-333333333333: using the token");
    connector_config_free(c);
    args_free(&a);
}

static void test_flags_beat_the_file(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];
    const char *path = tfile("full.yml", full_config());

    (void)state;
    args_set(&a, "--config", path, "--ha-connections", "8", "--region=eu-west", "--metrics", "off",
             "--loglevel", "error", "--grace-period", "5s", "--edge-ca", "~/ca.pem", "--edge",
             "a.example.net:1", "--edge=b.example.net:2", "--edge", "c.example.net:3",
             "--retry-base", "100ms", "--heartbeat", "250ms", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(c->ha_connections, 8);
    assert_string_equal(c->region, "eu-west");
    assert_int_equal(c->metrics_mode, CONNECTOR_METRICS_OFF);
    assert_int_equal(c->loglevel, LOG_ERROR);
    assert_int_equal(c->grace_period_ms, 5000);
    assert_int_equal(c->retry_base_ms, 100);
    assert_int_equal(c->heartbeat_ms, 250);
    assert_non_null(strstr(c->edge_ca, "/home/ca.pem"));
    assert_int_equal(strncmp(c->edge_ca, tmpdir, strlen(tmpdir)), 0);
    assert_int_equal(c->n_edges, 3);
    assert_string_equal(c->edges[0].host, "a.example.net");
    assert_string_equal(c->edges[2].host, "c.example.net");
    assert_int_equal(c->edges[2].port, 3);
    connector_config_free(c);
    args_free(&a);

    /* --metrics with an address; cloudflared's single-dash spelling. */
    args_set(&a, "-config", path, "-metrics", "localhost:0", "-ha-connections=1", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(c->metrics_mode, CONNECTOR_METRICS_ADDR);
    assert_int_equal(c->metrics.port, 0);
    assert_int_equal(c->ha_connections, 1);
    connector_config_free(c);
    args_free(&a);
}

/* ---- token sources -------------------------------------------------------------------------- */

static void expect_source(struct args *a, enum connector_token_source src, uint8_t idbyte)
{
    struct connector_config *c;
    char err[512];
    uint8_t id[16];

    if (load(a, &c, err, sizeof(err)) != 0)
        fail_msg("load: %s", err);
    assert_int_equal(c->token_source, src);
    memset(id, idbyte, sizeof(id));
    assert_memory_equal(c->tunnel_id, id, 16);
    connector_config_free(c);
}

static void test_token_sources_follow_the_documented_order(void **state)
{
    struct args a;
    char *t1 = make_token(0x11, "e.example.com:1", false);
    char *t2 = make_token(0x22, "e.example.com:1", false);
    char *t3 = make_token(0x33, "e.example.com:1", false);
    char *t4 = make_token(0x44, "e.example.com:1", false);
    char *t5 = make_token(0x55, "e.example.com:1", false);
    char text[2048];
    char tokfile[256];
    char with_token[256];
    char without_token[256];
    const char *creds = creds_file("six.json", 0x66, "[\"e.example.com:1\"]", 0600);

    (void)state;
    snprintf(tokfile, sizeof(tokfile), "%s", tfile("token", t2));
    snprintf(text, sizeof(text), "tunnel: " UUID6 "\ncredentials-file: %s\ntoken: %s\n"
                                 "url: http://localhost:1\n", creds, t3);
    snprintf(with_token, sizeof(with_token), "%s", tfile("with_token.yml", text));
    snprintf(text, sizeof(text), "tunnel: " UUID6 "\ncredentials-file: %s\n"
                                 "url: http://localhost:1\n", creds);
    snprintf(without_token, sizeof(without_token), "%s", tfile("without_token.yml", text));
    setenv("CULVERT_TOKEN", t4, 1);
    setenv("TUNNEL_TOKEN", t5, 1);

    args_set(&a, "--token", t1, "--token-file", tokfile, "--config", with_token, NULL);
    expect_source(&a, CONNECTOR_TOKEN_FLAG, 0x11);
    args_free(&a);
    args_set(&a, "--token-file", tokfile, "--config", with_token, NULL);
    expect_source(&a, CONNECTOR_TOKEN_FILE, 0x22);
    args_free(&a);
    args_set(&a, "--config", with_token, NULL);
    expect_source(&a, CONNECTOR_TOKEN_CONFIG, 0x33);
    args_free(&a);
    args_set(&a, "--config", without_token, NULL);
    expect_source(&a, CONNECTOR_TOKEN_ENV_CULVERT, 0x44);
    setenv("CULVERT_TOKEN", "", 1); /* empty counts as unset */
    expect_source(&a, CONNECTOR_TOKEN_ENV_TUNNEL, 0x55);
    unsetenv("CULVERT_TOKEN");
    unsetenv("TUNNEL_TOKEN");
    expect_source(&a, CONNECTOR_TOKEN_CREDENTIALS, 0x66);
    args_free(&a);

    /* A bad environment token is named, never quoted. */
    setenv("TUNNEL_TOKEN", "bm90IGEgdG9rZW4", 1);
    {
        struct connector_config *c;
        char err[512];

        args_set(&a, "--config", without_token, NULL);
        assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
        assert_int_equal(strncmp(err, "$TUNNEL_TOKEN: invalid token: ", 30), 0);
        assert_null(strstr(err, "bm90IGEgdG9rZW4"));
        args_free(&a);
    }
    unsetenv("TUNNEL_TOKEN");
    free(t1);
    free(t2);
    free(t3);
    free(t4);
    free(t5);
}

static void test_token_file_readable_by_others_is_refused(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char expect[1024];
    char *tok = make_token(0x22, "e.example.com:1", false);
    const char *path = tfile("loose-token", tok);

    (void)state;
    args_set(&a, "--token-file", path, "--url", "http://localhost:1", NULL);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_EAUTH);
    snprintf(expect, sizeof(expect),
             "--token-file: %s: refusing a secret file that group or others can access (mode "
             "0644); run: chmod 600 %s", path, path);
    assert_string_equal(err, expect);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_EAUTH);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_FILE);
    assert_string_equal(c->credentials_path, path);
    connector_config_free(c);
    args_free(&a);

    args_set(&a, "--token-file", "/nonexistent/token", "--url", "http://localhost:1", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "--token-file: /nonexistent/token: cannot open: no such file or "
                             "directory");
    args_free(&a);
    free(tok);
}

/* ---- credentials files ---------------------------------------------------------------------- */

static void test_credentials_file_in_cloudflared_format(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char expect[1024];
    char text[1024];
    char creds[256];
    const char *path;
    uint8_t secret[32];

    (void)state;
    snprintf(creds, sizeof(creds), "%s",
             creds_file("creds.json", 0x66, "[\"edge.example.com:7844\"]", 0400));
    /* The tunnel id may be written in upper case. */
    snprintf(text, sizeof(text),
             "tunnel: 66666666-6666-6666-6666-666666666666\ncredentials-file: %s\n"
             "ingress:\n  - service: hello_world\n", creds);
    path = tfile("creds.yml", text);
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_CREDENTIALS);
    assert_string_equal(c->tunnel_id_text, UUID6);
    memset(secret, 0x67, sizeof(secret));
    assert_memory_equal(c->secret, secret, 32);
    assert_int_equal(c->n_edges, 1);
    assert_string_equal(c->edges[0].host, "edge.example.com");
    assert_false(c->has_ca_sha256);
    assert_string_equal(c->credentials_path, creds);
    connector_config_free(c);
    args_free(&a);

    /* The ids must agree. */
    snprintf(text, sizeof(text), "ingress:\n  - service: hello_world\ntunnel: %s\n"
                                 "credentials-file: %s\n", UUID1, creds);
    path = tfile("mismatch.yml", text);
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    snprintf(expect, sizeof(expect), "%s:3:9: tunnel: " UUID1 " does not match the TunnelID "
                                     UUID6 " in %s", path, creds);
    assert_string_equal(err, expect);
    args_free(&a);
    args_set(&a, "--config", path, "--tunnel", UUID6, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0); /* the flag beats the file */
    connector_config_free(c);
    args_free(&a);
    args_set(&a, UUID1, "--config", path, "--credentials-file", creds, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    snprintf(expect, sizeof(expect), "--tunnel: " UUID1 " does not match the TunnelID " UUID6
                                     " in %s", creds);
    assert_string_equal(err, expect);
    args_free(&a);

    /* cloudflared's own files have no Edge list: edge: or --edge supplies it. */
    snprintf(creds, sizeof(creds), "%s", creds_file("noedge.json", 0x66, NULL, 0600));
    snprintf(text, sizeof(text), "tunnel: %s\ncredentials-file: %s\nurl: http://localhost:1\n",
             UUID6, creds);
    path = tfile("noedge.yml", text);
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    assert_string_equal(err, "no edge address: the credentials carry none; give --edge HOST:PORT "
                             "or edge: in the config");
    args_free(&a);
    args_set(&a, "--config", path, "--edge", "edge.example.com:7844", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_int_equal(c->n_edges, 1);
    connector_config_free(c);
    args_free(&a);

    /* Group-readable credentials are refused; broken JSON is named without its contents. */
    assert_int_equal(chmod(creds, 0640), 0);
    args_set(&a, "--config", path, "--edge", "edge.example.com:7844", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_EAUTH);
    assert_non_null(strstr(err, "chmod 600"));
    write_file_mode(creds, "{\"TunnelID\":\"" UUID6 "\",\"TunnelSecret\":\"c2hvcnQ=\"}", 0600);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    snprintf(expect, sizeof(expect), "credentials-file: %s: invalid credentials file: ", creds);
    assert_int_equal(strncmp(err, expect, strlen(expect)), 0);
    assert_null(strstr(err, "c2hvcnQ"));
    args_free(&a);
}

static void test_credentials_file_found_by_tunnel_id(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char expect[512];
    const char *path;
    const char *creds;

    (void)state;
    creds = creds_file(UUID6 ".json", 0x66, "[\"edge.example.com:7844\"]", 0600);
    path = tfile("byid.yml", "tunnel: " UUID6 "\nurl: http://localhost:1\n");
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_string_equal(c->credentials_path, creds);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_CREDENTIALS);
    connector_config_free(c);
    args_free(&a);

    path = tfile("byid1.yml", "tunnel: " UUID1 "\nurl: http://localhost:1\n");
    args_set(&a, "--config", path, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    snprintf(expect, sizeof(expect),
             "no credentials for tunnel " UUID1 ": give credentials-file: (or --credentials-file), "
             "or a token (--token, --token-file, token:, $CULVERT_TOKEN or $TUNNEL_TOKEN)");
    assert_string_equal(err, expect);
    args_free(&a);
}

static void test_no_credentials_is_an_error(void **state)
{
    (void)state;
    if (system_config_exists())
        skip();
    flags_fail("no credentials: give --token, --token-file, token: in the config, $CULVERT_TOKEN "
               "or $TUNNEL_TOKEN, or tunnel: with credentials-file:",
               "--url", "http://localhost:8080", NULL);
    flags_fail("nothing to serve: give --url URL, or a config file (--config FILE) with ingress "
               "rules", NULL);
}

/* ---- cloudflared users' configs ------------------------------------------------------------- */

static void test_cloudflared_example_configs_run_unchanged(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char text[2048];
    const char *path;
    const struct ingress_rule *r;
    char dir[256];

    (void)state;
    /* 1. The documented layout: ~/.cloudflared/UUID.json, hostnames, ssh, a 404 catch-all. */
    snprintf(dir, sizeof(dir), "%s/.cloudflared", home);
    mkdir(dir, 0700);
    {
        char p[300];
        uint8_t secret[32];
        unsigned char b64[64];

        memset(secret, 7, sizeof(secret));
        EVP_EncodeBlock(b64, secret, sizeof(secret));
        snprintf(p, sizeof(p), "%s/.cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json", home);
        snprintf(text, sizeof(text),
                 "{\"AccountTag\":\"699d98642c564d2e855e9661899b7252\",\"TunnelSecret\":\"%s\","
                 "\"TunnelID\":\"6ff42ae2-765d-4adf-8112-31c55c1551ef\"}", (const char *)b64);
        write_file_mode(p, text, 0400);
    }
    path = tfile("cf1.yml",
                 "tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\n"
                 "credentials-file: ~/.cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json\n"
                 "\n"
                 "ingress:\n"
                 "  - hostname: gitlab.widgetcorp.tech\n"
                 "    service: http://localhost:80\n"
                 "  - hostname: gitlab-ssh.widgetcorp.tech\n"
                 "    service: ssh://localhost:22\n"
                 "  - service: http_status:404\n");
    args_set(&a, "--config", path, "--edge", "tunnel.example.org:7844", NULL);
    if (load(&a, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->tunnel_id_text, "6ff42ae2-765d-4adf-8112-31c55c1551ef");
    assert_int_equal(ingress_rule_count(c->ingress), 3);
    r = ingress_match(c->ingress, "gitlab-ssh.widgetcorp.tech", 26, "/", 1);
    assert_int_equal(r->service.kind, INGRESS_SVC_TCP);
    assert_int_equal(c->n_warnings, 0);
    connector_config_free(c);
    args_free(&a);

    /* 2. A busy one: cloudflared-only settings, legacy flags, originRequest everywhere. */
    path = tfile("cf2.yml",
                 "tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\n"
                 "credentials-file: ~/.cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json\n"
                 "protocol: quic\n"
                 "no-autoupdate: true\n"
                 "logfile: /var/log/cloudflared.log\n"
                 "metrics: localhost:60123\n"
                 "loglevel: warn\n"
                 "no-tls-verify: true\n"
                 "warp-routing:\n"
                 "  enabled: true\n"
                 "originRequest:\n"
                 "  connectTimeout: 10s\n"
                 "  noTLSVerify: true\n"
                 "  noHappyEyeballs: true\n"
                 "ingress:\n"
                 "  - hostname: grafana.home.example\n"
                 "    service: http://grafana:3000\n"
                 "  - hostname: nas.home.example\n"
                 "    service: https://192.168.1.10:5001\n"
                 "    originRequest:\n"
                 "      originServerName: nas.home.example\n"
                 "      caPool: /etc/ssl/nas-ca.pem\n"
                 "  - hostname: \"*.apps.home.example\"\n"
                 "    path: \"\\\\.(jpg|png|css|js)$\"\n"
                 "    service: http://static_files:8080\n"
                 "  - hostname: \"*.apps.home.example\"\n"
                 "    service: http://traefik:80\n"
                 "  - service: http_status:404\n"
                 "foo: bar\n");
    args_set(&a, "--config", path, "--edge", "tunnel.example.org:7844", NULL);
    if (load(&a, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->loglevel, LOG_WARN);
    assert_int_equal(c->metrics_mode, CONNECTOR_METRICS_ADDR);
    assert_string_equal(c->metrics.host, "localhost");
    assert_int_equal(c->n_warnings, 7);
    snprintf(text, sizeof(text), "%s:3:1: protocol: not supported by culvert, ignored", path);
    assert_string_equal(c->warnings[0], text);
    snprintf(text, sizeof(text), "%s:4:1: no-autoupdate: not supported by culvert, ignored", path);
    assert_string_equal(c->warnings[1], text);
    snprintf(text, sizeof(text), "%s:5:1: logfile: not supported by culvert, ignored", path);
    assert_string_equal(c->warnings[2], text);
    snprintf(text, sizeof(text), "%s:9:1: warp-routing: not supported by culvert, ignored", path);
    assert_string_equal(c->warnings[3], text);
    snprintf(text, sizeof(text), "%s:14:3: originRequest.noHappyEyeballs: not supported by "
                                 "culvert, ignored", path);
    assert_string_equal(c->warnings[4], text);
    snprintf(text, sizeof(text), "%s:29:1: foo: unknown key, ignored", path);
    assert_string_equal(c->warnings[5], text);
    /* Judged once the file is read: beside ingress rules it does nothing (as in cloudflared). */
    snprintf(text, sizeof(text), "%s:8:1: no-tls-verify: applies only to a single origin (url: or "
                                 "--url), ignored; for ingress rules use originRequest: { "
                                 "noTLSVerify: ... }", path);
    assert_string_equal(c->warnings[6], text);
    r = ingress_match(c->ingress, "x.apps.home.example", 19, "/site.css", 9);
    assert_int_equal(r->number, 3);
    assert_string_equal(r->service.host, "static_files");
    assert_true(r->origin.no_tls_verify);
    r = ingress_match(c->ingress, "nas.home.example", 16, "/", 1);
    assert_string_equal(r->origin.origin_server_name, "nas.home.example");
    assert_int_equal(r->origin.connect_timeout_ms, 10000);
    connector_config_free(c);
    args_free(&a);

    /* 3. Legacy single origin with a tunnel name (Docker Compose style). */
    path = tfile("cf3.yml",
                 "tunnel: my-home-tunnel\n"
                 "credentials-file: ~/.cloudflared/6ff42ae2-765d-4adf-8112-31c55c1551ef.json\n"
                 "url: http://web_app:8080\n"
                 "edge: tunnel.example.org:7844\n");
    args_set(&a, "--config", path, NULL);
    if (load(&a, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(c->n_warnings, 1);
    snprintf(text, sizeof(text), "%s:1:9: tunnel: not a tunnel id (UUID): culvert identifies the "
                                 "tunnel by the id in the credentials file or token; the name is "
                                 "ignored", path);
    assert_string_equal(c->warnings[0], text);
    assert_string_equal(c->url, "http://web_app:8080");
    assert_false(c->url_from_flag);
    assert_string_equal(ingress_rule_at(c->ingress, 0)->service.text, "http://web_app:8080");
    assert_int_equal(c->n_edges, 1);
    connector_config_free(c);
    args_free(&a);
}

/* ---- located validation errors -------------------------------------------------------------- */

static void test_invalid_values_stop_with_file_line_col_and_key(void **state)
{
    (void)state;
    file_fails("url: http://x\nha-connections: 0\n",
               "%s:2:17: ha-connections: must be between 1 and 16");
    file_fails("url: http://x\nha-connections: many\n",
               "%s:2:17: ha-connections: expected a whole number");
    file_fails("url: http://x\ngrace-period: 30\n",
               "%s:2:15: grace-period: a duration needs a unit (for example 30s, 5m, 1h, 250ms)");
    file_fails("url: http://x\nmetrics: localhost\n",
               "%s:2:10: metrics: missing port (write host:port); or off to disable metrics");
    file_fails("url: http://x\nloglevel: loud\n",
               "%s:2:11: loglevel: unknown level (use trace, debug, info, warn, error or fatal)");
    file_fails("url: http://x\nregion: \"home lab\"\n",
               "%s:2:9: region: a region may only hold letters, digits, \"-\", \"_\" and \".\"");
    file_fails("url: http://x\nedge: [\"edge.example.com:7844\", edge.example.com]\n",
               "%s:2:33: edge[1]: missing port (write host:port)");
    file_fails("url: http://x\nedge: []\n", "%s:2:7: edge: the list is empty");
    file_fails("url: http://x\nedge: {a: b}\n",
               "%s:2:7: edge: expected a string or a list, found a mapping");
    file_fails("url: http://x\ntoken: bm90LWEtdG9rZW4\n",
               "%s:2:8: token: invalid token: the token does not hold valid JSON");
    file_fails("url: http://x\ncredentials-file: \"\"\n",
               "%s:2:19: credentials-file: empty path");
    file_fails("url: http://x\nedge-ca: [a]\n",
               "%s:2:10: edge-ca: expected a string, found a list");
    file_fails("url: ftp://x\n",
               "%s:1:6: url: unsupported scheme \"ftp\" (use http, https, unix, unix+tls, tcp, "
               "ssh, rdp, smb, http_status:NNN or hello_world)");
    file_fails("url: http://x\ningress:\n  - service: hello_world\n",
               "%s:1:6: url: can't be used together with the ingress rules (line 2): remove one "
               "of them");
    file_fails("loglevel: info\n",
               "%s: no ingress rules: add an ingress section whose last rule is a catch-all (for "
               "example `- service: http_status:404`), or give --url");
    file_fails("ingress: []\n",
               "%s:1:10: ingress: The config file doesn't contain any ingress rules");
    file_fails("ingress:\n  - hostname: a.example.com:443\n    service: hello_world\n"
               "  - service: http_status:404\n",
               "%s:2:15: ingress[0].hostname: a hostname cannot contain a port (rule #1)");
    file_fails("- url: http://x\n", "%s:1:1: expected a mapping of settings, found a list");
    file_fails("loglevel: info\nloglevel: debug\nurl: http://x\n",
               "%s:2:1: duplicate key \"loglevel\" (first at line 1)");
}

static void test_url_flag_conflicts_with_ingress_section(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char expect[1024];
    char *tok = make_token(0x11, "e.example.com:1", false);
    const char *path = tfile("ing.yml", "loglevel: info\ningress:\n  - service: hello_world\n");

    (void)state;
    args_set(&a, "--config", path, "--url", "http://localhost:1", "--token", tok, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), CV_ECONFIG);
    snprintf(expect, sizeof(expect), "--url: can't be used with the ingress rules of %s (line 2): "
                                     "remove one of them", path);
    assert_string_equal(err, expect);
    args_free(&a);

    /* --url beats the file's url: key. */
    path = tfile("url.yml", "url: http://from-file:1\n");
    args_set(&a, "--config", path, "--url", "http://from-flag:2", "--token", tok, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    assert_string_equal(ingress_rule_at(c->ingress, 0)->service.text, "http://from-flag:2");
    connector_config_free(c);
    args_free(&a);
    free(tok);
}

static void test_flag_errors_name_the_flag(void **state)
{
    char p[256];

    (void)state;
    snprintf(p, sizeof(p), "%s", tfile("ok.yml", "url: http://localhost:1\n"));
    flags_fail("unknown flag --bogus (see --help)", "--bogus", NULL);
    flags_fail("unknown flag --tokn (see --help)", "--tokn=SECRET", NULL);
    flags_fail("unknown flag -x (see --help)", "-x", NULL);
    flags_fail("--ha-connections needs a value", "--ha-connections", NULL);
    flags_fail("--region needs a value", "--region=", NULL);
    flags_fail("--help takes no value", "--help=1", NULL);
    flags_fail("--edge-ca given twice", "--edge-ca", "a", "--edge-ca", "b", NULL);
    flags_fail("--token given twice", "--token", "a", "--token", "b", NULL);
    flags_fail("unexpected extra argument #2 (run takes at most one: the tunnel id)", UUID1,
               "SECRET", NULL);
    flags_fail("the tunnel is given twice (--tunnel and an argument)", UUID1, "--tunnel", UUID1,
               NULL);
    flags_fail("--ha-connections: must be between 1 and 16", "--config", p, "--ha-connections",
               "17", "--token-file", "/dev/null", NULL);
    flags_fail("--grace-period: a duration needs a unit (for example 30s, 5m, 1h, 250ms)",
               "--config", p, "--grace-period", "5", NULL);
    flags_fail("--retry-base: out of range", "--config", p, "--retry-base", "0s", NULL);
    flags_fail("--heartbeat: out of range", "--config", p, "--heartbeat", "1h", NULL);
    flags_fail("--metrics: missing port (write host:port); or off to disable metrics", "--config",
               p, "--metrics", "nope", NULL);
    flags_fail("--loglevel: unknown level (use trace, debug, info, warn, error or fatal)", "--config", p,
               "--loglevel", "loud", NULL);
    flags_fail("--region: a region is 1 to 64 characters", "--config", p, "--region",
               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL);
    flags_fail("--tunnel: not a tunnel id (a UUID such as 6ff42ae2-765d-4adf-8112-31c55c1551ef)",
               "--config", p, "--tunnel", "my-tunnel", NULL);
    flags_fail("--url: missing host", "--url", "http://", NULL);
}

/* `cloudflared tunnel run NAME`: a tunnel name as the argument is warned about and ignored, as
 * `tunnel: NAME` in the file is, not an error about a --tunnel flag that was never given. */
static void test_tunnel_name_argument_is_ignored_with_a_warning(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];
    char *tok = make_token(0x11, "edge.example.com:7844", true);

    (void)state;
    args_set(&a, "my-tunnel", "--token", tok, "--url", "http://localhost:8080", NULL);
    if (load(&a, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(c->tunnel_id_text, UUID1);
    assert_int_equal(c->n_warnings, 1);
    assert_string_equal(c->warnings[0], "the tunnel argument is not a tunnel id (UUID): culvert "
                                        "identifies the tunnel by the id in the credentials file "
                                        "or token; the name is ignored");
    assert_null(strstr(c->warnings[0], "my-tunnel")); /* never echoed: it may be a token */
    connector_config_free(c);
    args_free(&a);
    free(tok);
}

static void test_missing_config_file_is_reported(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[512];

    (void)state;
    args_set(&a, "--config", "/nonexistent/config.yml", "--url", "http://x", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), -ENOENT);
    assert_string_equal(err, "/nonexistent/config.yml: cannot open: no such file or directory");
    args_free(&a);
}

/* ---- the default file ----------------------------------------------------------------------- */

static void test_default_config_search_order(void **state)
{
    char dir[200];
    char p[256];
    char found[512];

    (void)state;
    snprintf(dir, sizeof(dir), "%s/.cloudflared", home);
    mkdir(dir, 0700);
    snprintf(p, sizeof(p), "%s/config.yaml", dir);
    write_file_mode(p, "url: http://a\n", 0600);
    assert_int_equal(connector_config_find(found, sizeof(found)), 0);
    assert_string_equal(found, p);

    snprintf(dir, sizeof(dir), "%s/.culvert", home);
    mkdir(dir, 0700);
    snprintf(p, sizeof(p), "%s/config.yml", dir);
    write_file_mode(p, "url: http://b\n", 0600);
    assert_int_equal(connector_config_find(found, sizeof(found)), 0);
    assert_string_equal(found, p);
    assert_int_equal(connector_config_find(found, 10), CV_ELIMIT);

    /* run without --config reads it. */
    {
        struct connector_config *c;
        struct args a;
        char err[512];
        char *tok = make_token(0x11, "e.example.com:1", false);

        args_set(&a, "--token", tok, NULL);
        assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
        assert_string_equal(c->config_path, p);
        assert_string_equal(c->url, "http://b");
        connector_config_free(c);
        args_free(&a);
        free(tok);
    }
    unlink(p);
    rmdir(dir);
    snprintf(p, sizeof(p), "%s/.cloudflared/config.yaml", home);
    unlink(p);
    if (!system_config_exists()) {
        assert_int_equal(connector_config_find(found, sizeof(found)), CV_ENOTFOUND);
        assert_string_equal(found, "");
    }
}

/* ---- load_file and reload ------------------------------------------------------------------- */

/* PRODUCT.md section 3: unsupported cloudflared keys say so, rather than "unknown key". */
static void test_more_cloudflared_keys_are_named_unsupported(void **state)
{
    static const char *const keys[] = {
        "http2-origin", "proxy-connection-timeout", "proxy-expect-continue-timeout",
        "trace-output", "dial-edge-timeout", "use-reconnect-token", "max-active-flows",
        "quic-connection-level-flow-control-limit", "quic-stream-level-flow-control-limit",
        "management-hostname", "stdin-control", "cacert", NULL,
    };
    struct connector_config *c;
    char text[2048];
    char want[512];
    size_t n = 0;
    size_t i;
    const char *path;
    char err[1024];

    (void)state;
    text[0] = '\0';
    for (i = 0; keys[i] != NULL; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s: x\n", keys[i]);
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "ingress:\n  - service: hello_world\n");
    path = tfile("cfkeys.yml", text);
    if (connector_config_load_file(path, &c, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    for (i = 0; keys[i] != NULL; i++) {
        snprintf(want, sizeof(want), "%s:%zu:1: %s: not supported by culvert, ignored", path, i + 1,
                 keys[i]);
        assert_true(i < c->n_warnings);
        assert_string_equal(c->warnings[i], want);
        n++;
    }
    assert_int_equal(c->n_warnings, n);
    connector_config_free(c);
}

static void test_load_file_checks_everything_but_credentials(void **state)
{
    struct connector_config *c;
    char err[1024];
    const char *path = tfile("lf.yml", "tunnel: " UUID6 "\ncredentials-file: /nonexistent.json\n"
                                       "ha-connections: 3\ningress:\n  - service: hello_world\n");

    (void)state;
    assert_int_equal(connector_config_load_file(path, &c, err, sizeof(err)), 0);
    assert_int_equal(c->token_source, CONNECTOR_TOKEN_NONE);
    assert_int_equal(c->n_edges, 0);
    assert_int_equal(c->ha_connections, 3);
    assert_int_equal(ingress_rule_count(c->ingress), 1);
    connector_config_free(c);

    path = tfile("lf2.yml", "ha-connections: 30\ningress:\n  - service: hello_world\n");
    assert_int_equal(connector_config_load_file(path, &c, err, sizeof(err)), CV_ECONFIG);
    assert_null(c);
}

static void test_reload_builds_a_new_ingress_or_keeps_the_old(void **state)
{
    struct connector_config *c;
    struct ingress *ing = NULL;
    struct args a;
    char err[1024];
    char *tok = make_token(0x11, "e.example.com:1", false);
    const char *path = tfile("reload.yml", "ingress:\n  - service: http_status:404\n");
    char saved[256];

    (void)state;
    snprintf(saved, sizeof(saved), "%s", path);
    args_set(&a, "--config", saved, "--token", tok, NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    args_free(&a);
    write_file_mode(saved, "ingress:\n  - hostname: a.example.com\n    service: hello_world\n"
                           "  - service: http_status:503\n", 0600);
    assert_int_equal(connector_config_reload_ingress(c, &ing, err, sizeof(err)), 0);
    assert_int_equal(ingress_rule_count(ing), 2);
    ingress_free(ing);

    write_file_mode(saved, "ingress:\n  - hostname: a.example.com\n    service: hello_world\n",
                    0600);
    assert_int_equal(connector_config_reload_ingress(c, &ing, err, sizeof(err)), CV_ECONFIG);
    assert_null(ing);
    assert_non_null(strstr(err, "The last ingress rule must match all URLs"));
    assert_int_equal(ingress_rule_count(c->ingress), 1); /* the old one is untouched */
    connector_config_free(c);

    /* A run with --url keeps serving its URL, with the file's new originRequest. */
    write_file_mode(saved, "loglevel: info\n", 0600);
    args_set(&a, "--config", saved, "--token", tok, "--url", "http://localhost:9", NULL);
    assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
    args_free(&a);
    write_file_mode(saved, "originRequest: { connectTimeout: 2s }\n", 0600);
    assert_int_equal(connector_config_reload_ingress(c, &ing, err, sizeof(err)), 0);
    assert_string_equal(ingress_rule_at(ing, 0)->service.text, "http://localhost:9");
    assert_int_equal(ingress_rule_at(ing, 0)->origin.connect_timeout_ms, 2000);
    ingress_free(ing);
    connector_config_free(c);

    /* Without a file there is nothing to reload. */
    if (!system_config_exists()) {
        args_set(&a, "--token", tok, "--url", "http://localhost:9", NULL);
        assert_int_equal(load(&a, &c, err, sizeof(err)), 0);
        args_free(&a);
        assert_int_equal(connector_config_reload_ingress(c, &ing, err, sizeof(err)),
                         CV_ENOTFOUND);
        connector_config_free(c);
    }
    free(tok);
}

/* ---- allocation failures -------------------------------------------------------------------- */

static void test_load_fails_cleanly_on_every_allocation_failure(void **state)
{
    struct connector_config *c;
    struct args a;
    char err[1024];
    char text[2048];
    char path[256];
    char *tok = make_token(0x11, "e.example.com:1", false);
    const char *creds = creds_file("alloc.json", 0x66, "[\"e.example.com:1\"]", 0600);
    long before;
    unsigned long n;
    bool ok = false;
    int rv;

    (void)state;
    snprintf(text, sizeof(text),
             "tunnel: " UUID6 "\ncredentials-file: %s\nregion: r\nedge-ca: /ca.pem\n"
             "originRequest: { httpHostHeader: h, caPool: /p.pem, originServerName: o }\n"
             "ingress:\n  - hostname: a.example.com\n    path: ^/x\\d\n    service: hello_world\n"
             "  - service: http_status:404\n", creds);
    snprintf(path, sizeof(path), "%s", tfile("alloc.yml", text));
    before = mem_live_count();
    for (n = 1; n < 2000 && !ok; n++) {
        args_set(&a, "--config", path, "--edge", "x.example.com:2", "--region", "r2", NULL);
        mem_fail_after(n);
        rv = load(&a, &c, err, sizeof(err));
        mem_fail_after(0);
        if (rv == 0) {
            ok = true;
            assert_int_equal(c->token_source, CONNECTOR_TOKEN_CREDENTIALS);
            connector_config_free(c);
        } else {
            assert_int_equal(rv, CV_ENOMEM);
            assert_null(c);
        }
        args_free(&a);
        assert_int_equal(mem_live_count(), before);
    }
    assert_true(ok);
    assert_true(n > 20);

    /* The same with --token, whose copy is the first allocation. */
    ok = false;
    for (n = 1; n < 2000 && !ok; n++) {
        args_set(&a, "--config", path, "--token", tok, NULL);
        mem_fail_after(n);
        rv = load(&a, &c, err, sizeof(err));
        mem_fail_after(0);
        assert_false(contains(&a, tok));
        if (rv == 0) {
            ok = true;
            connector_config_free(c);
        } else {
            assert_int_equal(rv, CV_ENOMEM);
        }
        args_free(&a);
        assert_int_equal(mem_live_count(), before);
    }
    assert_true(ok);
    free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_and_url_alone_give_a_complete_config),
        cmocka_unit_test(test_token_flag_is_wiped_from_argv),
        cmocka_unit_test(test_help_and_usage),
        cmocka_unit_test(test_config_file_sets_every_key),
        cmocka_unit_test(test_flags_beat_the_file),
        cmocka_unit_test(test_token_sources_follow_the_documented_order),
        cmocka_unit_test(test_token_file_readable_by_others_is_refused),
        cmocka_unit_test(test_credentials_file_in_cloudflared_format),
        cmocka_unit_test(test_credentials_file_found_by_tunnel_id),
        cmocka_unit_test(test_no_credentials_is_an_error),
        cmocka_unit_test(test_cloudflared_example_configs_run_unchanged),
        cmocka_unit_test(test_invalid_values_stop_with_file_line_col_and_key),
        cmocka_unit_test(test_url_flag_conflicts_with_ingress_section),
        cmocka_unit_test(test_flag_errors_name_the_flag),
        cmocka_unit_test(test_tunnel_name_argument_is_ignored_with_a_warning),
        cmocka_unit_test(test_missing_config_file_is_reported),
        cmocka_unit_test(test_default_config_search_order),
        cmocka_unit_test(test_more_cloudflared_keys_are_named_unsupported),
        cmocka_unit_test(test_load_file_checks_everything_but_credentials),
        cmocka_unit_test(test_reload_builds_a_new_ingress_or_keeps_the_old),
        cmocka_unit_test(test_load_fails_cleanly_on_every_allocation_failure),
    };

    return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
