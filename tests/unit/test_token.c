/*
 * test_token.c - tunnel tokens (PRODUCT.md §2 "Token"), credentials files, token files and their
 * permissions, UUIDs, secret digests and the constant-time compare.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "err.h"
#include "mem.h"
#include "token.h"

#define ID_TEXT "6ff42ae2-765d-4adf-8112-31c55c1551ef"
/* 32 bytes 0x00..0x1f in standard base64 (with padding) and base64url (without). */
#define SECRET_STD "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define SECRET_URL "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define CA_HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

/* base64url without padding, for building tokens by hand. Returns a malloc'd string. */
static char *b64url(const char *in)
{
    static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(in);
    char *out = malloc(4 * n / 3 + 4);
    size_t o = 0;
    size_t i;

    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)(uint8_t)in[i] << 16) | ((uint32_t)(uint8_t)in[i + 1] << 8) |
                     (uint8_t)in[i + 2];

        out[o++] = chars[v >> 18];
        out[o++] = chars[(v >> 12) & 63];
        out[o++] = chars[(v >> 6) & 63];
        out[o++] = chars[v & 63];
    }
    if (n - i >= 1) {
        uint32_t v = (uint32_t)(uint8_t)in[i] << 16;

        if (n - i == 2)
            v |= (uint32_t)(uint8_t)in[i + 1] << 8;
        out[o++] = chars[v >> 18];
        out[o++] = chars[(v >> 12) & 63];
        if (n - i == 2)
            out[o++] = chars[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

static void expect_secret_0_to_31(const struct token *t)
{
    for (int i = 0; i < TOKEN_SECRET_LEN; i++)
        assert_int_equal(t->secret[i], i);
}

/* Decodes the token whose JSON payload is |json|; returns the code and sets *|why|. */
static int decode_json(const char *json, struct token *t, const char **why)
{
    char *text = b64url(json);
    int rv;

    *why = NULL;
    rv = token_decode(text, strlen(text), t, why);
    free(text);
    return rv;
}

static void reject_json(const char *json, const char *want_why)
{
    struct token t;
    const char *why;
    long live = mem_live_count();

    token_init(&t);
    if (decode_json(json, &t, &why) != CV_EPARSE)
        fail_msg("accepted: %s", json);
    if (strcmp(why, want_why) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", json, why, want_why);
    /* The token stays empty and nothing leaks. */
    assert_null(t.edges);
    assert_int_equal(t.n_edges, 0);
    for (int i = 0; i < TOKEN_SECRET_LEN; i++)
        assert_int_equal(t.secret[i], 0);
    assert_int_equal(mem_live_count(), live);
    /* Reasons never carry token material. */
    assert_null(strstr(why, "AAEC"));
}

static void test_decode_reads_every_field(void **state)
{
    struct token t;
    const char *why;
    uint8_t ca[32];

    (void)state;
    token_init(&t);
    assert_int_equal(decode_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\","
                                 "\"edges\":[\"Edge.Example.com:7844\",\"[2001:db8::1]:443\","
                                 "\"10.0.0.1:7844\"],\"ca_sha256\":\"" CA_HEX "\"}",
                                 &t, &why),
                     0);
    assert_int_equal(t.id[0], 0x6f);
    assert_int_equal(t.id[15], 0xef);
    expect_secret_0_to_31(&t);
    assert_int_equal(t.n_edges, 3);
    assert_string_equal(t.edges[0].host, "edge.example.com");
    assert_int_equal(t.edges[0].port, 7844);
    assert_int_equal(t.edges[1].host_kind, HOSTNAME_IPV6);
    assert_string_equal(t.edges[1].host, "2001:db8::1");
    assert_int_equal(t.edges[2].host_kind, HOSTNAME_IPV4);
    assert_true(t.has_ca_sha256);
    for (int i = 0; i < 32; i++)
        ca[i] = (uint8_t)((i % 16) * 0x11);
    assert_memory_equal(t.ca_sha256, ca, 32);
    token_cleanup(&t);
}

static void test_decode_accepts_url_secret_unknown_keys_and_whitespace(void **state)
{
    struct token t;
    const char *why;
    char *text;
    char padded[8192];

    (void)state;
    token_init(&t);
    /* base64url secret without padding, unknown keys, ca_sha256 null, upper-case UUID. */
    text = b64url("{\"edges\":[\"e:1\"],\"future\":{\"x\":[1,2]},\"ca_sha256\":null,\"v\":1,"
                  "\"id\":\"6FF42AE2-765D-4ADF-8112-31C55C1551EF\",\"secret\":\"" SECRET_URL "\"}");
    snprintf(padded, sizeof(padded), " \t\n%s\r\n ", text);
    assert_int_equal(token_decode(padded, strlen(padded), &t, &why), 0);
    expect_secret_0_to_31(&t);
    assert_false(t.has_ca_sha256);
    assert_int_equal(t.n_edges, 1);
    assert_int_equal(t.id[0], 0x6f);
    token_cleanup(&t);
    free(text);
}

static void test_decode_rejects_each_bad_field(void **state)
{
    (void)state;
    reject_json("[1]", "the token does not hold a JSON object");
    reject_json("{\"id\":\"" ID_TEXT "\"}", "the token has no version (\"v\"); is it a Culvert token?");
    reject_json("{\"v\":2}", "unsupported token version (this program reads version 1)");
    reject_json("{\"v\":\"1\"}", "unsupported token version (this program reads version 1)");
    reject_json("{\"v\":1.0}", "unsupported token version (this program reads version 1)");
    reject_json("{\"v\":1,\"secret\":\"" SECRET_STD "\",\"edges\":[\"e:1\"]}",
                "the token's tunnel id (\"id\") is missing or not a UUID");
    reject_json("{\"v\":1,\"id\":\"6ff42ae2765d4adf811231c55c1551ef\"}",
                "the token's tunnel id (\"id\") is missing or not a UUID");
    reject_json("{\"v\":1,\"id\":\"{" ID_TEXT "}\"}",
                "the token's tunnel id (\"id\") is missing or not a UUID");
    reject_json("{\"v\":1,\"id\":7}", "the token's tunnel id (\"id\") is missing or not a UUID");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"edges\":[\"e:1\"]}",
                "the token's secret is missing or not 32 bytes of base64");
    /* 31 and 33 bytes. */
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\"}",
                "the token's secret is missing or not 32 bytes of base64");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g\"}",
                "the token's secret is missing or not 32 bytes of base64");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==\"}",
                "the token's secret is missing or not 32 bytes of base64");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9\"}",
                "the token's secret is missing or not 32 bytes of base64"); /* unused bits set */
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"AAECAwQFBgcICQoLDA0O DxAREhMUFRYXGBkaGxwdHh8\"}",
                "the token's secret is missing or not 32 bytes of base64");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\"}",
                "the token has no edge addresses (\"edges\")");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[]}",
                "the edge list is empty");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":\"e:1\"}",
                "the edge list must be a JSON list of \"host:port\" strings");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[7844]}",
                "an edge address is not a string");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"edge\"]}",
                "an edge address is not a valid host:port");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"e:1\",\"e:0\"]}",
                "an edge address is not a valid host:port");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"unix:/x\"]}",
                "an edge address is not a valid host:port");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"e:1\"],"
                "\"ca_sha256\":\"" CA_HEX "0\"}",
                "the token's ca_sha256 is not 64 hex digits");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"e:1\"],"
                "\"ca_sha256\":\"zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}",
                "the token's ca_sha256 is not 64 hex digits");
    reject_json("{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[\"e:1\"],"
                "\"ca_sha256\":5}",
                "the token's ca_sha256 is not 64 hex digits");
    reject_json("{\"v\":1,\"v\":1}", "the token does not hold valid JSON");
    reject_json("{\"v\":1", "the token does not hold valid JSON");
}

static void test_decode_rejects_too_many_edges(void **state)
{
    char json[4096];
    size_t o;

    (void)state;
    o = (size_t)snprintf(json, sizeof(json),
                         "{\"v\":1,\"id\":\"" ID_TEXT "\",\"secret\":\"" SECRET_STD "\",\"edges\":[");
    for (int i = 0; i < 33; i++)
        o += (size_t)snprintf(json + o, sizeof(json) - o, "%s\"e%d:1\"", i ? "," : "", i);
    snprintf(json + o, sizeof(json) - o, "]}");
    reject_json(json, "too many edge addresses (at most 32)");
}

static void test_decode_rejects_bad_outer_encoding(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "empty token"},
        {" \n\t ", "empty token"},
        {"eyJ2Ijox+Q", "the token is not valid base64url"},  /* '+' is standard, not url */
        {"eyJ2Ijox/Q", "the token is not valid base64url"},
        {"eyJ2I.jox", "the token is not valid base64url"},
        {"eyJ2I jox", "the token is not valid base64url"},
        {"eyJ2Ijo", "the token does not hold valid JSON"}, /* 3 mod 4 is fine: {"v": */
        {"e", "the token is not valid base64url"},          /* 1 mod 4 never is */
        {"eyJ2Ijox=", "the token is not valid base64url"},  /* wrong amount of padding */
        {"eyJ2IjoxZ", "the token is not valid base64url"},
        {"e30", "the token has no version (\"v\"); is it a Culvert token?"}, /* {} */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct token t;
        const char *why = NULL;
        int rv;

        token_init(&t);
        rv = token_decode(bad[i].text, strlen(bad[i].text), &t, &why);
        if (rv != CV_EPARSE)
            fail_msg("\"%s\" accepted", bad[i].text);
        assert_string_equal(why, bad[i].why);
    }
    {
        char *big = malloc(TOKEN_MAX_TEXT + 2);
        struct token t;
        const char *why;

        memset(big, 'A', TOKEN_MAX_TEXT + 1);
        big[TOKEN_MAX_TEXT + 1] = '\0';
        token_init(&t);
        assert_int_equal(token_decode(big, TOKEN_MAX_TEXT + 1, &t, &why), CV_EPARSE);
        assert_string_equal(why, "token too long");
        free(big);
    }
}

static void make_token(struct token *t)
{
    struct config_addr a;

    token_init(t);
    assert_int_equal(token_uuid_random(t->id), 0);
    assert_int_equal(token_secret_random(t->secret), 0);
    assert_int_equal(config_parse_addr("edge.example.com:7844", 0, &a, NULL), 0);
    assert_int_equal(token_add_edge(t, &a), 0);
    assert_int_equal(config_parse_addr("[::1]:7844", 0, &a, NULL), 0);
    assert_int_equal(token_add_edge(t, &a), 0);
}

static void assert_same_token(const struct token *a, const struct token *b)
{
    char x[300];
    char y[300];

    assert_memory_equal(a->id, b->id, TOKEN_ID_LEN);
    assert_memory_equal(a->secret, b->secret, TOKEN_SECRET_LEN);
    assert_int_equal(a->n_edges, b->n_edges);
    for (size_t i = 0; i < a->n_edges; i++) {
        config_format_addr(&a->edges[i], x, sizeof(x));
        config_format_addr(&b->edges[i], y, sizeof(y));
        assert_string_equal(x, y);
    }
    assert_int_equal(a->has_ca_sha256, b->has_ca_sha256);
    if (a->has_ca_sha256)
        assert_memory_equal(a->ca_sha256, b->ca_sha256, TOKEN_DIGEST_LEN);
}

static void test_encode_decode_round_trip(void **state)
{
    struct token t;
    struct token back;
    char *text;
    size_t len;
    const char *why;

    (void)state;
    for (int with_ca = 0; with_ca < 2; with_ca++) {
        make_token(&t);
        if (with_ca) {
            t.has_ca_sha256 = true;
            memset(t.ca_sha256, 0xab, sizeof(t.ca_sha256));
        }
        assert_int_equal(token_encode(&t, &text, &len), 0);
        assert_int_equal(strlen(text), len);
        assert_int_equal(strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                         len);
        token_init(&back);
        assert_int_equal(token_decode(text, len, &back, &why), 0);
        assert_same_token(&t, &back);
        mem_free_secret(text, len + 1);
        token_cleanup(&back);
        token_cleanup(&t);
    }
}

static void test_encode_needs_an_edge(void **state)
{
    struct token t;
    char *text = (char *)1;
    size_t len = 9;

    (void)state;
    token_init(&t);
    assert_int_equal(token_encode(&t, &text, &len), CV_EINVAL);
    assert_null(text);
    assert_int_equal(len, 0);
}

static void test_add_edge_limits(void **state)
{
    struct token t;
    struct config_addr a;

    (void)state;
    token_init(&t);
    assert_int_equal(config_parse_addr("unix:/x", CONFIG_ADDR_ALLOW_UNIX, &a, NULL), 0);
    assert_int_equal(token_add_edge(&t, &a), CV_EINVAL);
    assert_int_equal(config_parse_addr("e:1", 0, &a, NULL), 0);
    for (int i = 0; i < TOKEN_MAX_EDGES; i++)
        assert_int_equal(token_add_edge(&t, &a), 0);
    assert_int_equal(token_add_edge(&t, &a), CV_ELIMIT);
    assert_int_equal(t.n_edges, TOKEN_MAX_EDGES);
    mem_fail_after(1);
    token_cleanup(&t);
    assert_int_equal(token_add_edge(&t, &a), CV_ENOMEM);
    mem_fail_after(0);
    assert_int_equal(t.n_edges, 0);
    token_cleanup(&t);
}

static void test_cleanup_wipes_secret(void **state)
{
    struct token t;

    (void)state;
    make_token(&t);
    memset(t.secret, 0x5a, sizeof(t.secret));
    token_cleanup(&t);
    for (int i = 0; i < TOKEN_SECRET_LEN; i++)
        assert_int_equal(t.secret[i], 0);
    assert_null(t.edges);
    assert_int_equal(t.n_edges, 0);
    token_cleanup(&t); /* twice is fine */
}

static void test_decode_and_encode_allocation_failures(void **state)
{
    struct token t;
    struct token back;
    char *text;
    size_t len;
    long live;
    int failures = 0;
    unsigned long n;

    (void)state;
    make_token(&t);
    assert_int_equal(token_encode(&t, &text, &len), 0);
    live = mem_live_count();
    for (n = 1; n < 200; n++) {
        const char *why;
        int rv;

        token_init(&back);
        mem_fail_after(n);
        rv = token_decode(text, len, &back, &why);
        mem_fail_after(0);
        if (rv == 0) {
            token_cleanup(&back);
            break;
        }
        failures++;
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(back.edges);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n < 200);
    assert_true(failures >= 5);
    mem_free_secret(text, len + 1);

    live = mem_live_count();
    for (n = 1; n < 20; n++) {
        char *out = NULL;
        int rv;

        mem_fail_after(n);
        rv = token_encode(&t, &out, &len);
        mem_fail_after(0);
        if (rv == 0) {
            mem_free_secret(out, len + 1);
            break;
        }
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(out);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n >= 3 && n < 20);
    token_cleanup(&t);
}

/* ---- credentials files -------------------------------------------------------------------- */

static void test_credentials_cloudflared_format(void **state)
{
    static const char cf[] = "{\"AccountTag\":\"0123456789abcdef\",\"TunnelSecret\":\"" SECRET_STD "\","
                             "\"TunnelID\":\"" ID_TEXT "\",\"Endpoint\":\"\"}";
    static const char ours[] = "{\"TunnelID\":\"" ID_TEXT "\",\"TunnelSecret\":\"" SECRET_URL "\","
                               "\"Edge\":[\"edge.example.com:7844\"]}";
    struct token t;
    const char *why;

    (void)state;
    token_init(&t);
    assert_int_equal(token_parse_credentials(cf, strlen(cf), &t, &why), 0);
    expect_secret_0_to_31(&t);
    assert_int_equal(t.id[1], 0xf4);
    assert_int_equal(t.n_edges, 0);
    token_cleanup(&t);
    assert_int_equal(token_parse_credentials(ours, strlen(ours), &t, &why), 0);
    assert_int_equal(t.n_edges, 1);
    assert_string_equal(t.edges[0].host, "edge.example.com");
    token_cleanup(&t);
}

static void test_credentials_rejections(void **state)
{
    static const struct {
        const char *json;
        const char *why;
    } bad[] = {
        {"not json", "the credentials file is not valid JSON"},
        {"[]", "the credentials file does not hold a JSON object"},
        {"{\"TunnelSecret\":\"" SECRET_STD "\"}", "TunnelID is missing or not a UUID"},
        {"{\"TunnelID\":\"" ID_TEXT "\"}", "TunnelSecret is missing or not 32 bytes of base64"},
        {"{\"TunnelID\":\"" ID_TEXT "\",\"TunnelSecret\":\"c2hvcnQ=\"}",
         "TunnelSecret is missing or not 32 bytes of base64"},
        {"{\"TunnelID\":\"" ID_TEXT "\",\"TunnelSecret\":\"" SECRET_STD "\",\"Edge\":\"e:1\"}",
         "the edge list must be a JSON list of \"host:port\" strings"},
        {"{\"TunnelID\":\"" ID_TEXT "\",\"TunnelSecret\":\"" SECRET_STD "\",\"Edge\":[\"e\"]}",
         "an edge address is not a valid host:port"},
        {"{\"tunnelid\":\"" ID_TEXT "\",\"TunnelSecret\":\"" SECRET_STD "\"}",
         "TunnelID is missing or not a UUID"},
    };
    long live = mem_live_count();

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct token t;
        const char *why = NULL;

        token_init(&t);
        assert_int_equal(token_parse_credentials(bad[i].json, strlen(bad[i].json), &t, &why),
                         CV_EPARSE);
        assert_string_equal(why, bad[i].why);
        assert_null(t.edges);
        assert_int_equal(mem_live_count(), live);
    }
}

/* ---- files -------------------------------------------------------------------------------- */

static char tmpdir[64];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_token_XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int teardown_dir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_token_file_mode_is_checked(void **state)
{
    static const mode_t refused[] = {0644, 0640, 0604, 0660, 0610, 0601, 0777};
    struct token t;
    struct token want;
    struct token_error e;
    char path[128];
    char expect[512];
    char *text;
    char *content;
    size_t len;

    (void)state;
    make_token(&want);
    assert_int_equal(token_encode(&want, &text, &len), 0);
    content = malloc(len + 8);
    snprintf(content, len + 8, "  %s\n\n", text);
    snprintf(path, sizeof(path), "%s/token", tmpdir);

    write_file(path, content, 0600);
    token_init(&t);
    assert_int_equal(token_load_file(path, &t, &e), 0);
    assert_same_token(&want, &t);
    token_cleanup(&t);

    write_file(path, content, 0400);
    assert_int_equal(token_load_file(path, &t, &e), 0);
    token_cleanup(&t);

    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        write_file(path, content, refused[i]);
        assert_int_equal(token_load_file(path, &t, &e), CV_EAUTH);
        snprintf(expect, sizeof(expect),
                 "%s: refusing a secret file that group or others can access (mode %04o); run: "
                 "chmod 600 %s",
                 path, (unsigned)refused[i], path);
        assert_string_equal(e.msg, expect);
        assert_null(strstr(e.msg, text));
        assert_null(t.edges);
    }
    free(content);
    mem_free_secret(text, len + 1);
    token_cleanup(&want);
}

static void test_token_file_errors_name_file_not_contents(void **state)
{
    struct token t;
    struct token_error e;
    char path[128];
    char expect[512];
    const char *bogus = "eyJ2IjoyLCJzZWNyZXQiOiJ0b3Atc2VjcmV0In0"; /* {"v":2,"secret":"top-secret"} */

    (void)state;
    token_init(&t);
    assert_int_equal(token_load_file("/nonexistent/token", &t, &e), UV_ENOENT);
    assert_string_equal(e.msg, "/nonexistent/token: cannot open: no such file or directory");

    assert_int_equal(token_load_file(tmpdir, &t, &e), CV_EPARSE);
    snprintf(expect, sizeof(expect), "%s: not a regular file", tmpdir);
    assert_string_equal(e.msg, expect);

    snprintf(path, sizeof(path), "%s/empty", tmpdir);
    write_file(path, " \n\t\n", 0600);
    assert_int_equal(token_load_file(path, &t, &e), CV_EPARSE);
    snprintf(expect, sizeof(expect), "%s: the file is empty", path);
    assert_string_equal(e.msg, expect);

    snprintf(path, sizeof(path), "%s/bad", tmpdir);
    write_file(path, bogus, 0600);
    assert_int_equal(token_load_file(path, &t, &e), CV_EPARSE);
    snprintf(expect, sizeof(expect),
             "%s: invalid token: unsupported token version (this program reads version 1)", path);
    assert_string_equal(e.msg, expect);
    assert_null(strstr(e.msg, bogus));
    assert_null(strstr(e.msg, "top-secret"));

    snprintf(path, sizeof(path), "%s/creds.json", tmpdir);
    write_file(path, "{\"TunnelID\":\"" ID_TEXT "\",\"TunnelSecret\":\"c2hvcnQ=\"}", 0600);
    assert_int_equal(token_load_file(path, &t, &e), CV_EPARSE);
    snprintf(expect, sizeof(expect),
             "%s: invalid credentials file: TunnelSecret is missing or not 32 bytes of base64", path);
    assert_string_equal(e.msg, expect);
    assert_null(strstr(e.msg, "c2hvcnQ"));

    {
        char *big = malloc(TOKEN_MAX_TEXT + 2);

        memset(big, 'A', TOKEN_MAX_TEXT + 1);
        big[TOKEN_MAX_TEXT + 1] = '\0';
        snprintf(path, sizeof(path), "%s/big", tmpdir);
        write_file(path, big, 0600);
        assert_int_equal(token_load_file(path, &t, &e), CV_EPARSE);
        snprintf(expect, sizeof(expect), "%s: larger than 16384 bytes", path);
        assert_string_equal(e.msg, expect);
        free(big);
    }
}

static void test_credentials_file_loads(void **state)
{
    struct token t;
    struct token_error e;
    char path[128];

    (void)state;
    snprintf(path, sizeof(path), "%s/tunnel.json", tmpdir);
    write_file(path, "\n{\"AccountTag\":\"x\",\"TunnelSecret\":\"" SECRET_STD "\",\"TunnelID\":\"" ID_TEXT
                     "\",\"Edge\":[\"edge.example.com:7844\"]}\n",
               0400);
    token_init(&t);
    assert_int_equal(token_load_file(path, &t, &e), 0);
    expect_secret_0_to_31(&t);
    assert_int_equal(t.n_edges, 1);
    token_cleanup(&t);
}

static void test_read_secret_file_strips_whitespace(void **state)
{
    struct token_error e;
    char path[128];
    char *out;
    size_t len;

    (void)state;
    snprintf(path, sizeof(path), "%s/admin.token", tmpdir);
    write_file(path, "\r\n  s3cr3t value \n", 0600);
    assert_int_equal(token_read_secret_file(path, &out, &len, &e), 0);
    assert_int_equal(len, 12);
    assert_string_equal(out, "s3cr3t value");
    mem_free_secret(out, len + 1);
}

/* ---- ids and digests ---------------------------------------------------------------------- */

static void test_uuid_parse_and_format(void **state)
{
    static const char *const bad[] = {
        "",
        "6ff42ae2-765d-4adf-8112-31c55c1551e",
        "6ff42ae2-765d-4adf-8112-31c55c1551eff",
        "6ff42ae2765d-4adf-8112-31c55c1551ef0",
        "6ff42ae2-765d4-adf-8112-31c55c1551ef",
        "6ff42ae2-765d-4adf-8112_31c55c1551ef",
        "6ff42ae2-765d-4adf-8112-31c55c1551eg",
        "{6ff42ae2-765d-4adf-8112-31c55c1551}",
        "6ff42ae2 765d 4adf 8112 31c55c1551ef",
        "+ff42ae2-765d-4adf-8112-31c55c1551ef",
    };
    uint8_t id[TOKEN_ID_LEN];
    uint8_t same[TOKEN_ID_LEN];
    char text[TOKEN_UUID_TEXT_LEN + 1];

    (void)state;
    assert_int_equal(token_uuid_parse(ID_TEXT, 36, id), 0);
    token_uuid_format(id, text);
    assert_string_equal(text, ID_TEXT);
    assert_int_equal(token_uuid_parse("6FF42AE2-765D-4ADF-8112-31C55C1551EF", 36, same), 0);
    assert_memory_equal(id, same, sizeof(id));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(same, 0x77, sizeof(same));
        if (token_uuid_parse(bad[i], strlen(bad[i]), same) != CV_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(same[0], 0x77);
    }
}

static void test_uuid_random_is_version_4(void **state)
{
    uint8_t a[TOKEN_ID_LEN];
    uint8_t b[TOKEN_ID_LEN];
    char text[TOKEN_UUID_TEXT_LEN + 1];

    (void)state;
    for (int i = 0; i < 64; i++) {
        assert_int_equal(token_uuid_random(a), 0);
        assert_int_equal(a[6] >> 4, 4);
        assert_int_equal(a[8] >> 6, 2);
        token_uuid_format(a, text);
        assert_int_equal(text[14], '4');
        assert_non_null(strchr("89ab", text[19]));
        assert_int_equal(token_uuid_parse(text, 36, b), 0);
        assert_memory_equal(a, b, sizeof(a));
    }
    assert_int_equal(token_uuid_random(b), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

static void test_secret_hash_is_sha256(void **state)
{
    uint8_t secret[TOKEN_SECRET_LEN];
    uint8_t digest[TOKEN_DIGEST_LEN];
    char hex[2 * TOKEN_DIGEST_LEN + 1];

    (void)state;
    memset(secret, 0, sizeof(secret));
    assert_int_equal(token_secret_hash(secret, digest), 0);
    for (int i = 0; i < TOKEN_DIGEST_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    /* SHA-256 of 32 zero bytes. */
    assert_string_equal(hex, "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    for (int i = 0; i < TOKEN_SECRET_LEN; i++)
        secret[i] = (uint8_t)i;
    assert_int_equal(token_secret_hash(secret, digest), 0);
    for (int i = 0; i < TOKEN_DIGEST_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    assert_string_equal(hex, "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd");
}

static void test_digest_equal_compares_every_byte(void **state)
{
    uint8_t a[TOKEN_DIGEST_LEN];
    uint8_t b[TOKEN_DIGEST_LEN];

    (void)state;
    for (int i = 0; i < TOKEN_DIGEST_LEN; i++)
        a[i] = (uint8_t)(i * 7 + 3);
    memcpy(b, a, sizeof(a));
    assert_true(token_digest_equal(a, b));
    for (int i = 0; i < TOKEN_DIGEST_LEN; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            assert_false(token_digest_equal(a, b));
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_true(token_digest_equal(a, b));
    memset(b, 0, sizeof(b));
    assert_false(token_digest_equal(a, b));
}

/*
 * RELIABILITY.md T-17 (a): does token_digest_equal() take longer when more leading bytes match?
 * The method of dudect (Reparaz, Balasch, Verbauwhede, "Dude, is my code constant time?", 2017):
 * time many calls on two classes of input, picked at random call by call so that whatever else
 * the machine does falls on both alike; drop the slowest 10% (interrupts, preemption); Welch's t
 * between the classes. |t| >= 4.5 is the usual threshold for "the classes differ". Class 0 differs
 * from the stored digest in every byte, class 1 only in the last. The same harness run on an
 * early-exit byte compare must find the leak, or it could not have found one in ours.
 */
typedef bool (*digest_cmp)(const uint8_t *, const uint8_t *);

static bool leaky_equal(const uint8_t *a, const uint8_t *b)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;

    for (int i = 0; i < TOKEN_DIGEST_LEN; i++) {
        if (x[i] != y[i])
            return false;
    }
    return true;
}

static bool real_equal(const uint8_t *a, const uint8_t *b)
{
    return token_digest_equal(a, b);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Welch's t between the two classes over |n| timed calls of |cmp|, each timing |reps| calls. */
static double welch_t(digest_cmp cmp, int n, int reps)
{
    static uint8_t inputs[2][TOKEN_DIGEST_LEN];
    uint8_t stored[TOKEN_DIGEST_LEN];
    uint8_t in[TOKEN_DIGEST_LEN];
    uint64_t *t = malloc(sizeof(uint64_t) * (size_t)n);
    uint64_t *sorted = malloc(sizeof(uint64_t) * (size_t)n);
    uint8_t *cls = malloc((size_t)n);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    double sum[2] = {0, 0};
    double sq[2] = {0, 0};
    double cnt[2] = {0, 0};
    volatile bool sink = false;
    uint64_t cut;

    assert_non_null(t);
    assert_non_null(sorted);
    assert_non_null(cls);
    for (int i = 0; i < TOKEN_DIGEST_LEN; i++) {
        stored[i] = (uint8_t)(i * 29 + 11);
        inputs[0][i] = (uint8_t)~stored[i];
        inputs[1][i] = stored[i];
    }
    inputs[1][TOKEN_DIGEST_LEN - 1] ^= 0x01;
    for (int k = 0; k < n; k++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        cls[k] = (uint8_t)(rng & 1);
    }
    for (int k = 0; k < n; k++) {
        uint64_t t0;

        memcpy(in, inputs[cls[k]], sizeof(in));
        t0 = now_ns();
        for (int r = 0; r < reps; r++)
            sink = cmp(stored, in) || sink;
        t[k] = now_ns() - t0;
    }
    (void)sink;
    memcpy(sorted, t, sizeof(uint64_t) * (size_t)n);
    qsort(sorted, (size_t)n, sizeof(uint64_t), cmp_u64);
    cut = sorted[(size_t)n * 9 / 10];
    for (int k = 0; k < n; k++) {
        if (t[k] > cut)
            continue;
        sum[cls[k]] += (double)t[k];
        sq[cls[k]] += (double)t[k] * (double)t[k];
        cnt[cls[k]] += 1;
    }
    free(t);
    free(sorted);
    free(cls);
    double m0 = sum[0] / cnt[0];
    double m1 = sum[1] / cnt[1];
    double v0 = sq[0] / cnt[0] - m0 * m0;
    double v1 = sq[1] / cnt[1] - m1 * m1;

    return (m0 - m1) / sqrt(v0 / cnt[0] + v1 / cnt[1] + 1e-12);
}

static void test_digest_equal_time_does_not_depend_on_matching_bytes(void **state)
{
    double leak;
    double ours;

    (void)state;
    /* 200,000 timings of 8 calls each: about 0.1 s per compare function. */
    leak = welch_t(leaky_equal, 200000, 8);
    ours = welch_t(real_equal, 200000, 8);
    print_message("dudect t: early-exit compare %.1f, token_digest_equal %.1f\n", leak, ours);
    assert_true(fabs(leak) >= 10.0);
    assert_true(fabs(ours) < 4.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_reads_every_field),
        cmocka_unit_test(test_decode_accepts_url_secret_unknown_keys_and_whitespace),
        cmocka_unit_test(test_decode_rejects_each_bad_field),
        cmocka_unit_test(test_decode_rejects_too_many_edges),
        cmocka_unit_test(test_decode_rejects_bad_outer_encoding),
        cmocka_unit_test(test_encode_decode_round_trip),
        cmocka_unit_test(test_encode_needs_an_edge),
        cmocka_unit_test(test_add_edge_limits),
        cmocka_unit_test(test_cleanup_wipes_secret),
        cmocka_unit_test(test_decode_and_encode_allocation_failures),
        cmocka_unit_test(test_credentials_cloudflared_format),
        cmocka_unit_test(test_credentials_rejections),
        cmocka_unit_test_setup_teardown(test_token_file_mode_is_checked, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_token_file_errors_name_file_not_contents, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_credentials_file_loads, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_read_secret_file_strips_whitespace, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_uuid_parse_and_format),
        cmocka_unit_test(test_uuid_random_is_version_4),
        cmocka_unit_test(test_secret_hash_is_sha256),
        cmocka_unit_test(test_digest_equal_compares_every_byte),
        cmocka_unit_test(test_digest_equal_time_does_not_depend_on_matching_bytes),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
