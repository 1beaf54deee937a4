/*
 * test_edge_config.c - edge.yml: every key, every default, and the exact located message of every
 * kind of error. Each test writes its YAML into a temporary directory and loads it from there.
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
#include <unistd.h>

#include "edge_config.h"
#include "err.h"
#include "mem.h"

#include "certs_for_tests.c"

static struct test_certs certs;
static char dir[64];
static char file[128];
static char err[1024];

/* The two required sections, for tests about something else. */
#define REQUIRED                                                                                   \
    "public:\n"                                                                                    \
    "  certificates:\n"                                                                            \
    "    - { cert: c.pem, key: c.key }\n"                                                          \
    "tunnel:\n"                                                                                    \
    "  cert: t.pem\n"                                                                              \
    "  key: t.key\n"

static int group_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/culvert-edgecfg-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(file, sizeof(file), "%s/edge.yml", dir);
    return certs_create(&certs);
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(file);
    rmdir(dir);
    certs_destroy(&certs);
    return 0;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int load(const char *yaml, struct edge_config **c)
{
    write_text(file, yaml);
    err[0] = 'x';
    return edge_config_load(file, c, err, sizeof(err));
}

static struct edge_config *load_ok(const char *yaml)
{
    struct edge_config *c = NULL;
    int rv = load(yaml, &c);

    if (rv != 0)
        fail_msg("unexpected error %d: %s", rv, err);
    assert_non_null(c);
    assert_string_equal(err, "");
    return c;
}

/* Loads |yaml|, expects CV_ECONFIG (or |code|) and the message "<file>:<where>". */
static void expect_error_code(const char *yaml, int code, const char *where)
{
    struct edge_config *c = (struct edge_config *)1;
    char want[1024];
    int rv = load(yaml, &c);

    snprintf(want, sizeof(want), "%s:%s", file, where);
    assert_int_equal(rv, code);
    assert_null(c);
    assert_string_equal(err, want);
}

static void expect_error(const char *yaml, const char *where)
{
    expect_error_code(yaml, CV_ECONFIG, where);
}

static void addr_is(const struct config_addr *a, const char *text)
{
    char buf[300];

    config_format_addr(a, buf, sizeof(buf));
    assert_string_equal(buf, text);
}

static char *in_dir(const char *name)
{
    static char p[4][256];
    static int i;

    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", dir, name);
    return p[i];
}

/* ---- defaults ------------------------------------------------------------------------------ */

static void test_minimal_config_gets_every_default(void **state)
{
    struct edge_config *c;
    struct cv_limits def;
    char host[256];
    char adv[300];

    (void)state;
    c = load_ok(REQUIRED);
    limits_init(&def);
    assert_string_equal(c->path, file);
    assert_string_equal(c->region, "default");
    assert_string_equal(c->data_dir, "/var/lib/culvert");
    assert_int_equal(c->n_https, 1);
    addr_is(&c->https[0], "0.0.0.0:443");
    assert_int_equal(c->n_http, 1);
    addr_is(&c->http[0], "0.0.0.0:80");
    assert_true(c->http_redirect);
    assert_int_equal(c->n_certs, 1);
    assert_string_equal(c->certs[0].cert, in_dir("c.pem"));
    assert_string_equal(c->certs[0].key, in_dir("c.key"));
    assert_int_equal(c->n_tunnel_listen, 1);
    addr_is(&c->tunnel_listen[0], "0.0.0.0:7844");
    /* Listening on all addresses: the machine's own name goes into tokens. */
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    for (char *p = host; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
    snprintf(adv, sizeof(adv), "%s:7844", host);
    assert_int_equal(c->n_advertise, 1);
    addr_is(&c->advertise[0], adv);
    assert_null(c->tunnel_ca);
    assert_false(c->has_ca_sha256);
    assert_string_equal(c->tunnel_cert, in_dir("t.pem"));
    assert_string_equal(c->tunnel_key, in_dir("t.key"));
    addr_is(&c->admin_listen, "127.0.0.1:7845");
    assert_string_equal(c->admin_token_file, "/etc/culvert/admin.token");
    assert_int_equal(c->balance, BALANCE_NEAREST);
    assert_int_equal(c->limits.grace_period_ms, 30000);
    assert_int_equal(c->limits.header_read_ms, 10000);
    assert_int_equal(c->limits.keepalive_idle_ms, 75000);
    assert_int_equal(c->limits.response_header_ms, 100000);
    assert_int_equal(c->limits.tls_handshake_ms, 10000);
    assert_memory_equal(&c->limits, &def, sizeof(def));
    assert_string_equal(c->access_log_path, "/var/log/culvert/access.log");
    assert_int_equal(c->access_log_format, ACCESS_LOG_COMBINED);
    assert_int_equal(c->n_hosts, 0);
    assert_null(edge_config_host(c, "example.com"));
    assert_int_equal(c->n_tcp_ports, 0);
    edge_config_free(c);
}

static void test_advertise_defaults_to_a_specific_listen_address(void **state)
{
    struct edge_config *c;

    (void)state;
    c = load_ok(REQUIRED "  listen: [\"127.0.0.1:9000\", \"[::1]:9001\", \"127.0.0.1:9002\"]\n");
    assert_int_equal(c->n_tunnel_listen, 3);
    assert_int_equal(c->n_advertise, 3);
    addr_is(&c->advertise[0], "127.0.0.1:9000");
    addr_is(&c->advertise[1], "[::1]:9001");
    addr_is(&c->advertise[2], "127.0.0.1:9002");
    edge_config_free(c);
}

static void test_advertise_default_merges_any_addresses_on_one_port(void **state)
{
    struct edge_config *c;

    (void)state;
    c = load_ok(REQUIRED "  listen: [\"0.0.0.0:7844\", \"[::]:7844\"]\n");
    assert_int_equal(c->n_tunnel_listen, 2);
    assert_int_equal(c->n_advertise, 1);
    assert_int_equal(c->advertise[0].port, 7844);
    assert_int_equal(c->advertise[0].host_kind, HOSTNAME_NAME);
    edge_config_free(c);
}

/* ---- every key ----------------------------------------------------------------------------- */

static void test_full_config_sets_every_key(void **state)
{
    struct edge_config *c;
    char yaml[4096];
    const struct edge_host *h;

    (void)state;
    snprintf(yaml, sizeof(yaml),
             "region: eu-west.1\n"
             "data_dir: /srv/culvert\n"
             "public:\n"
             "  https: [\"0.0.0.0:8443\", \"[::]:8443\"]\n"
             "  http: []\n"
             "  http_redirect: false\n"
             "  certificates:\n"
             "    - { cert: /etc/a.pem, key: /etc/a.key }\n"
             "    - cert: ./tls/b.pem\n"
             "      key: tls/b.key\n"
             "tunnel:\n"
             "  listen: \"127.0.0.1:7000\"\n"
             "  advertise: [\"edge.example.com:7844\", \"edge2.example.com:7844\"]\n"
             "  ca: %s\n"
             "  cert: /etc/t.pem\n"
             "  key: /etc/t.key\n"
             "admin:\n"
             "  listen: unix:/run/culvert/admin.sock\n"
             "  token_file: secrets/admin.token\n"
             "balance: least_streams\n"
             "grace_period: 1m30s\n"
             "timeouts: { header_read: 5s, keepalive_idle: 1m, response_header: 600s, "
             "tls_handshake: 2500ms }\n"
             "access_log: { path: logs/access.log, format: json }\n"
             "limits:\n"
             "  max_url: 16KiB\n"
             "  max_header_fields: 50\n"
             "  body_idle_ms: 45s\n"
             "  body_min_bytes: 2KiB\n"
             "  max_frame_size: 1MiB\n"
             "hosts:\n"
             "  - { hostname: slow.example.com, timeouts: { response_header: 10m } }\n"
             "  - hostname: \"*.example.com\"\n"
             "    timeouts: { header_read: 3s, keepalive_idle: 5s }\n"
             "  - hostname: \"*.b.example.com\"\n"
             "tcp_ports:\n"
             "  - { listen: \"0.0.0.0:2222\", tunnel: home-lab, hostname: SSH.Example.com }\n",
             certs.ca_file);
    c = load_ok(yaml);
    assert_string_equal(c->region, "eu-west.1");
    assert_string_equal(c->data_dir, "/srv/culvert");
    assert_int_equal(c->n_https, 2);
    addr_is(&c->https[0], "0.0.0.0:8443");
    addr_is(&c->https[1], "[::]:8443");
    assert_int_equal(c->n_http, 0);
    assert_false(c->http_redirect);
    assert_int_equal(c->n_certs, 2);
    assert_string_equal(c->certs[0].cert, "/etc/a.pem");
    assert_string_equal(c->certs[0].key, "/etc/a.key");
    assert_string_equal(c->certs[1].cert, in_dir("tls/b.pem"));
    assert_string_equal(c->certs[1].key, in_dir("tls/b.key"));
    assert_int_equal(c->n_tunnel_listen, 1);
    addr_is(&c->tunnel_listen[0], "127.0.0.1:7000");
    assert_int_equal(c->n_advertise, 2);
    addr_is(&c->advertise[0], "edge.example.com:7844");
    addr_is(&c->advertise[1], "edge2.example.com:7844");
    assert_string_equal(c->tunnel_ca, certs.ca_file);
    assert_true(c->has_ca_sha256);
    assert_memory_equal(c->ca_sha256, certs.ca_sha256, 32);
    assert_string_equal(c->tunnel_cert, "/etc/t.pem");
    assert_string_equal(c->tunnel_key, "/etc/t.key");
    assert_int_equal(c->admin_listen.kind, CONFIG_ADDR_UNIX);
    assert_string_equal(c->admin_listen.path, "/run/culvert/admin.sock");
    assert_string_equal(c->admin_token_file, in_dir("secrets/admin.token"));
    assert_int_equal(c->balance, BALANCE_LEAST_STREAMS);
    assert_int_equal(c->limits.grace_period_ms, 90000);
    assert_int_equal(c->limits.header_read_ms, 5000);
    assert_int_equal(c->limits.keepalive_idle_ms, 60000);
    assert_int_equal(c->limits.response_header_ms, 600000);
    assert_int_equal(c->limits.tls_handshake_ms, 2500);
    assert_int_equal(c->limits.max_url, 16384);
    assert_int_equal(c->limits.max_header_fields, 50);
    assert_int_equal(c->limits.body_idle_ms, 45000);
    assert_int_equal(c->limits.body_min_bytes, 2048);
    assert_int_equal(c->limits.max_frame_size, 1048576);
    assert_int_equal(c->limits.max_header_bytes, 32 * 1024); /* untouched */
    assert_string_equal(c->access_log_path, in_dir("logs/access.log"));
    assert_int_equal(c->access_log_format, ACCESS_LOG_JSON);

    assert_int_equal(c->n_hosts, 3);
    h = edge_config_host(c, "slow.example.com"); /* exact beats wildcard */
    assert_ptr_equal(h, &c->hosts[0]);
    assert_int_equal(h->response_header_ms, 600000);
    assert_int_equal(h->header_read_ms, 5000);     /* inherited from timeouts: */
    assert_int_equal(h->keepalive_idle_ms, 60000); /* inherited */
    h = edge_config_host(c, "a.example.com");
    assert_ptr_equal(h, &c->hosts[1]);
    assert_true(h->pattern.wildcard);
    assert_int_equal(h->header_read_ms, 3000);
    assert_int_equal(h->keepalive_idle_ms, 5000);
    assert_int_equal(h->response_header_ms, 600000);
    h = edge_config_host(c, "x.b.example.com"); /* longer wildcard beats shorter */
    assert_ptr_equal(h, &c->hosts[2]);
    assert_ptr_equal(edge_config_host(c, "x.y.example.com"), &c->hosts[1]);
    assert_null(edge_config_host(c, "example.com"));
    assert_null(edge_config_host(c, "example.org"));

    assert_int_equal(c->n_tcp_ports, 1);
    addr_is(&c->tcp_ports[0].listen, "0.0.0.0:2222");
    assert_string_equal(c->tcp_ports[0].tunnel, "home-lab");
    assert_string_equal(c->tcp_ports[0].hostname, "ssh.example.com");
    edge_config_free(c);
}

static void test_balance_policies_and_access_log_variants(void **state)
{
    struct edge_config *c;

    (void)state;
    c = load_ok(REQUIRED "balance: round_robin\naccess_log: { path: \"-\" }\n");
    assert_int_equal(c->balance, BALANCE_ROUND_ROBIN);
    assert_string_equal(c->access_log_path, "-");
    assert_int_equal(c->access_log_format, ACCESS_LOG_COMBINED);
    edge_config_free(c);
    c = load_ok(REQUIRED "balance: nearest\naccess_log: { path: \"off\", format: combined }\n");
    assert_int_equal(c->balance, BALANCE_NEAREST);
    assert_null(c->access_log_path);
    edge_config_free(c);
    assert_string_equal(edge_balance_name(BALANCE_NEAREST), "nearest");
    assert_string_equal(edge_balance_name(BALANCE_ROUND_ROBIN), "round_robin");
    assert_string_equal(edge_balance_name(BALANCE_LEAST_STREAMS), "least_streams");
}

static void test_null_values_keep_defaults(void **state)
{
    struct edge_config *c;

    (void)state;
    c = load_ok(REQUIRED "region:\nadmin:\ntimeouts: ~\nlimits:\nhosts:\n");
    assert_string_equal(c->region, "default");
    addr_is(&c->admin_listen, "127.0.0.1:7845");
    assert_int_equal(c->limits.header_read_ms, 10000);
    edge_config_free(c);
}

static void test_every_limit_is_settable_by_name(void **state)
{
    const struct limit_desc *d;

    (void)state;
    for (d = limits_table(); d->name != NULL; d++) {
        char yaml[1024];
        struct edge_config *c;
        uint32_t want;
        const char *value;

        /* The connector's three are refused (test_bad_limit_name_is_an_error). */
        if (strcmp(d->name, "stream_idle_ms") == 0 || strcmp(d->name, "backoff_base_ms") == 0 ||
            strcmp(d->name, "backoff_max_exp") == 0)
            continue;
        /* A value inside every limit's range and different from its default. */
        switch (d->kind) {
        case LIMIT_MS:
            value = "7s";
            want = 7000;
            break;
        case LIMIT_BYTES:
            value = "20KiB";
            want = 20480;
            if (strcmp(d->name, "connection_window") == 0) {
                value = "1MiB";
                want = 1048576;
            }
            break;
        default:
            value = "3";
            want = 3;
            break;
        }
        snprintf(yaml, sizeof(yaml), REQUIRED "limits: { %s: %s }\n", d->name, value);
        c = load_ok(yaml);
        assert_int_equal(*(const uint32_t *)(const void *)((const char *)&c->limits + d->offset),
                         want);
        edge_config_free(c);
    }
}

static void test_relative_config_path_resolves_against_its_directory(void **state)
{
    struct edge_config *c = NULL;
    char cwd[4096];
    int rv;

    (void)state;
    write_text(file, REQUIRED "data_dir: state\n");
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir("/tmp"), 0);
    rv = edge_config_load(file + strlen("/tmp/"), &c, err, sizeof(err));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rv, 0);
    assert_string_equal(c->data_dir, in_dir("state"));
    assert_string_equal(c->tunnel_cert, in_dir("t.pem"));
    edge_config_free(c);
    c = NULL;
    /* "./edge.yml" from the file's own directory. */
    assert_int_equal(chdir(dir), 0);
    rv = edge_config_load("./edge.yml", &c, err, sizeof(err));
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rv, 0);
    assert_string_equal(c->data_dir, in_dir("state"));
    edge_config_free(c);
}

static void test_relative_unix_admin_socket_is_resolved(void **state)
{
    struct edge_config *c;

    (void)state;
    c = load_ok(REQUIRED "admin: { listen: \"unix:run/admin.sock\" }\n");
    assert_int_equal(c->admin_listen.kind, CONFIG_ADDR_UNIX);
    assert_string_equal(c->admin_listen.path, in_dir("run/admin.sock"));
    edge_config_free(c);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void test_unknown_top_level_key_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "regoin: eu\n",
                 "7:1: regoin: unknown key (expected one of: region, data_dir, public, tunnel, "
                 "admin, balance, grace_period, timeouts, access_log, limits, hosts, "
                 "tcp_ports)");
}

static void test_unknown_nested_keys_are_errors(void **state)
{
    (void)state;
    expect_error(REQUIRED "admin:\n  listen: 127.0.0.1:1\n  tokenfile: x\n",
                 "9:3: admin.tokenfile: unknown key (expected one of: listen, token_file)");
    expect_error("public:\n  certificates:\n    - { cert: a, key: b, chain: c }\n",
                 "3:26: public.certificates[0].chain: unknown key (expected one of: cert, key)");
    expect_error(REQUIRED "timeouts: { read: 1s }\n",
                 "7:13: timeouts.read: unknown key (expected one of: header_read, "
                 "keepalive_idle, response_header, tls_handshake)");
    expect_error(REQUIRED "hosts:\n  - { hostname: a.com, timeouts: { tls_handshake: 1s } }\n",
                 "8:36: hosts[0].timeouts.tls_handshake: unknown key (expected one of: "
                 "header_read, keepalive_idle, response_header)");
    expect_error(REQUIRED "  pin: x\n",
                 "7:3: tunnel.pin: unknown key (expected one of: listen, advertise, ca, cert, "
                 "key)");
}

static void test_duplicate_key_is_an_error(void **state)
{
    struct edge_config *c = NULL;

    (void)state;
    assert_int_equal(load(REQUIRED "region: a\nregion: b\n", &c), CV_EPARSE);
    assert_null(c);
    assert_non_null(strstr(err, "edge.yml:8:1:"));
    assert_non_null(strstr(err, "duplicate"));
}

static void test_wrong_types_are_errors(void **state)
{
    (void)state;
    expect_error("public: [1]\n", "1:9: public: expected a mapping, found a list");
    expect_error("- a\n", "1:1: expected a mapping, found a list");
    expect_error(REQUIRED "region: [a]\n", "7:9: region: expected a string, found a list");
    expect_error(REQUIRED "limits: 5\n", "7:9: limits: expected a mapping, found a string");
    expect_error(REQUIRED "hosts: { a: b }\n", "7:8: hosts: expected a list, found a mapping");
    expect_error("public:\n  https: { a: 1 }\n",
                 "2:10: public.https: expected a list of addresses, found a mapping");
    expect_error("public:\n  http_redirect: maybe\n",
                 "2:18: public.http_redirect: expected a boolean (true or false)");
    expect_error("public:\n  certificates: [a.pem]\n",
                 "2:18: public.certificates[0]: expected a mapping, found a string");
}

static void test_bad_duration_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "grace_period: 30\n",
                 "7:15: grace_period: a duration needs a unit (for example 30s, 5m, 1h, 250ms)");
    expect_error(REQUIRED "timeouts: { header_read: 10x }\n",
                 "7:26: timeouts.header_read: unknown duration unit (use h, m, s or ms)");
    expect_error(REQUIRED "timeouts: { keepalive_idle: 0s }\n",
                 "7:29: timeouts.keepalive_idle: must be between 1ms and 1193h2m47s295ms");
    expect_error(REQUIRED "hosts:\n  - { hostname: a.com, timeouts: { response_header: -1s } }\n",
                 "8:53: hosts[0].timeouts.response_header: a duration must not have a sign");
}

static void test_bad_address_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "  listen: [\"0.0.0.0:7844\", nope]\n",
                 "7:28: tunnel.listen[1]: missing port (write host:port)");
    expect_error(REQUIRED "  listen: [\"0.0.0.0:7844\", \"0.0.0.0:7844\"]\n",
                 "7:28: tunnel.listen[1]: duplicate of tunnel.listen[0]");
    expect_error(REQUIRED "  listen: []\n",
                 "7:11: tunnel.listen: at least one address is required");
    expect_error("public:\n  https: [\"unix:/x\"]\n",
                 "2:11: public.https[0]: a unix socket is not allowed here (write host:port)");
    expect_error(REQUIRED "admin: { listen: \"127.0.0.1:99999\" }\n",
                 "7:18: admin.listen: port out of range (1-65535)");
    expect_error(REQUIRED "  advertise: [\"edge:0\"]\n",
                 "7:15: tunnel.advertise[0]: port out of range (1-65535)");
}

static void test_bad_hostname_pattern_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "hosts:\n  - hostname: \"a.*.example.com\"\n",
                 "8:15: hosts[0].hostname: \"*\" is only allowed as the first label");
    expect_error(REQUIRED "hosts:\n  - hostname: a_b.example.com\n",
                 "8:15: hosts[0].hostname: \"_\" is not allowed in a hostname");
    expect_error(REQUIRED "hosts:\n  - hostname: a.com\n  - hostname: A.COM.\n",
                 "9:15: hosts[1].hostname: duplicate of hosts[0]");
    expect_error(REQUIRED "hosts:\n  - timeouts: { header_read: 1s }\n",
                 "8:5: hosts[0].hostname: is required");
}

static void test_missing_certificates_is_an_error(void **state)
{
    (void)state;
    expect_error("", " public.certificates: is required: at least one { cert: FILE, key: FILE }");
    expect_error("region: x\n",
                 "1:1: public.certificates: is required: at least one { cert: FILE, key: FILE }");
    expect_error("public:\n  https: [\"0.0.0.0:443\"]\n",
                 "2:3: public.certificates: is required: at least one { cert: FILE, key: FILE }");
    expect_error("public:\n  certificates: []\n",
                 "2:17: public.certificates: at least one { cert: FILE, key: FILE } is required");
    expect_error("public:\n  certificates:\n    - { cert: a.pem }\n",
                 "3:7: public.certificates[0].key: is required");
}

static void test_missing_tunnel_certificate_is_an_error(void **state)
{
    (void)state;
    expect_error("public:\n  certificates: [{ cert: a, key: b }]\n",
                 "1:1: tunnel.cert: is required (the tunnel listener's certificate)");
    expect_error("public:\n  certificates: [{ cert: a, key: b }]\ntunnel:\n  key: k\n",
                 "4:3: tunnel.cert: is required (the tunnel listener's certificate)");
    expect_error("public:\n  certificates: [{ cert: a, key: b }]\ntunnel:\n  cert: c\n",
                 "4:3: tunnel.key: is required (the tunnel listener's private key)");
}

static void test_bad_limit_name_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "limits:\n  max_url: 1KiB\n  max_urls: 2KiB\n",
                 "9:3: limits.max_urls: unknown limit (see the limits table in the README)");
    /* The connector's limits: edge.yml would accept and ignore them. */
    expect_error(REQUIRED "limits:\n  stream_idle_ms: 10s\n",
                 "8:3: limits.stream_idle_ms: a connector setting, not used by the edge (the "
                 "connector's --stream-idle and --retry-base set it)");
    expect_error(REQUIRED "limits: { backoff_max_exp: 2 }\n",
                 "7:11: limits.backoff_max_exp: a connector setting, not used by the edge (the "
                 "connector's --stream-idle and --retry-base set it)");
}

static void test_limit_values_follow_their_kind(void **state)
{
    (void)state;
    expect_error(REQUIRED "limits: { header_read_ms: 5 }\n",
                 "7:27: limits.header_read_ms: a duration needs a unit (for example 30s, 5m, "
                 "1h, 250ms)");
    expect_error(REQUIRED "limits: { max_url: 8K }\n",
                 "7:20: limits.max_url: ambiguous size unit: write KiB, MiB, GiB (1024) or KB, "
                 "MB, GB (1000)");
    expect_error(REQUIRED "limits: { max_header_fields: 10s }\n",
                 "7:30: limits.max_header_fields: expected a whole number");
    expect_error(REQUIRED "limits: { max_frame_size: 1KiB }\n",
                 "7:27: limits.max_frame_size: must be between 16KiB and 1MiB");
    expect_error(REQUIRED "limits: { max_concurrent_streams: 0 }\n",
                 "7:35: limits.max_concurrent_streams: must be between 1 and 65535");
    /* Settings the edge advertises in REGISTERED stay in PROTOCOL.md §4.4's ranges, or every
     * connector would refuse the registration. */
    expect_error(REQUIRED "limits: { max_concurrent_streams: 100000 }\n",
                 "7:35: limits.max_concurrent_streams: must be between 1 and 65535");
    expect_error(REQUIRED "limits: { max_metadata_size: 2KiB }\n",
                 "7:30: limits.max_metadata_size: must be between 4KiB and 1MiB");
    expect_error(REQUIRED "limits: { max_url: }\n", "7:11: limits.max_url: a value is required");
}

static void test_limit_set_twice_is_an_error(void **state)
{
    (void)state;
    expect_error(REQUIRED "limits: { header_read_ms: 5s }\ntimeouts: { header_read: 6s }\n",
                 "8:26: timeouts.header_read: also set as limits.header_read_ms: set it in one "
                 "place");
    expect_error(REQUIRED "limits: { grace_period_ms: 5s }\ngrace_period: 6s\n",
                 "8:15: grace_period: also set as limits.grace_period_ms: set it in one place");
}

static void test_bad_enums_and_region_are_errors(void **state)
{
    (void)state;
    expect_error(REQUIRED "balance: fastest\n",
                 "7:10: balance: expected nearest, round_robin or least_streams");
    expect_error(REQUIRED "access_log: { format: clf }\n",
                 "7:23: access_log.format: expected combined or json");
    expect_error(REQUIRED "region: \"eu west\"\n",
                 "7:9: region: only letters, digits, '-', '_' and '.' are allowed");
    expect_error(REQUIRED "region: \"\"\n", "7:9: region: must be 1 to 64 characters");
}

static void test_tunnel_ca_errors_name_the_file(void **state)
{
    char yaml[1024];
    char want[1024];

    (void)state;
    snprintf(yaml, sizeof(yaml), REQUIRED "  ca: missing-ca.pem\n");
    snprintf(want, sizeof(want), "7:7: tunnel.ca: cannot read %s: No such file or directory",
             in_dir("missing-ca.pem"));
    expect_error(yaml, want);

    write_text(in_dir("bad-ca.pem"), "not a certificate\n");
    snprintf(yaml, sizeof(yaml), REQUIRED "  ca: bad-ca.pem\n");
    snprintf(want, sizeof(want), "7:7: tunnel.ca: %s holds no PEM certificate",
             in_dir("bad-ca.pem"));
    expect_error(yaml, want);
    unlink(in_dir("bad-ca.pem"));
}

static void test_tunnel_ca_digest_uses_the_first_certificate(void **state)
{
    struct edge_config *c;
    char yaml[1024];

    (void)state;
    /* chain_file holds leaf + root: the digest is the leaf's, the first one. */
    snprintf(yaml, sizeof(yaml), REQUIRED "  ca: %s\n", certs.chain_file);
    c = load_ok(yaml);
    assert_true(c->has_ca_sha256);
    assert_memory_equal(c->ca_sha256, certs.leaf_sha256, 32);
    edge_config_free(c);
}

static void test_tcp_ports_are_validated(void **state)
{
    (void)state;
    expect_error(REQUIRED "tcp_ports:\n  - { listen: \"0.0.0.0:22\", tunnel: \"bad name\", "
                          "hostname: a.com }\n",
                 "8:37: tcp_ports[0].tunnel: a tunnel name may only hold letters, digits, '.', "
                 "'_' and '-'");
    expect_error(REQUIRED "tcp_ports:\n  - { listen: \"0.0.0.0:22\", tunnel: t }\n",
                 "8:5: tcp_ports[0].hostname: is required");
    expect_error(REQUIRED "tcp_ports:\n  - { tunnel: t, hostname: a.com }\n",
                 "8:5: tcp_ports[0].listen: is required");
    expect_error(REQUIRED "tcp_ports:\n  - { listen: \"0.0.0.0:22\", tunnel: t, hostname: "
                          "\"*.a.com\" }\n",
                 "8:50: tcp_ports[0].hostname: \"*\" is not allowed in a hostname");
    expect_error(REQUIRED "tcp_ports:\n"
                          "  - { listen: \"0.0.0.0:22\", tunnel: t, hostname: a.com }\n"
                          "  - { listen: \"0.0.0.0:22\", tunnel: u, hostname: b.com }\n",
                 "9:15: tcp_ports[1].listen: duplicate of tcp_ports[0].listen");
}

static void test_missing_file_is_an_errno(void **state)
{
    struct edge_config *c = (struct edge_config *)1;
    char path[256];

    (void)state;
    snprintf(path, sizeof(path), "%s/nope.yml", dir);
    assert_int_equal(edge_config_load(path, &c, err, sizeof(err)), -ENOENT);
    assert_null(c);
    assert_non_null(strstr(err, path));
}

static void test_error_message_is_truncated_safely(void **state)
{
    struct edge_config *c = NULL;
    char small[16];

    (void)state;
    write_text(file, REQUIRED "nope: 1\n");
    assert_int_equal(edge_config_load(file, &c, small, sizeof(small)), CV_ECONFIG);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_shipped_example_is_valid(void **state)
{
    struct edge_config *c = NULL;
    int rv;

    (void)state;
    /* Unit tests run from tests/unit. */
    rv = edge_config_load("../../deploy/edge.yml.example", &c, err, sizeof(err));
    if (rv != 0)
        fail_msg("deploy/edge.yml.example: %s", err);
    assert_int_equal(c->n_certs, 2);
    assert_int_equal(c->n_advertise, 1);
    addr_is(&c->advertise[0], "edge.example.com:7844");
    assert_string_equal(c->admin_token_file, "/etc/culvert/admin.token");
    assert_int_equal(c->n_hosts, 2);
    assert_int_equal(edge_config_host(c, "slow.example.com")->response_header_ms, 600000);
    assert_int_equal(edge_config_host(c, "v1.api.example.com")->keepalive_idle_ms, 30000);
    assert_int_equal(c->n_tcp_ports, 1);
    edge_config_free(c);
}

static void test_allocation_failures_fail_cleanly(void **state)
{
    char yaml[2048];
    unsigned long n;
    long live = mem_live_count();

    (void)state;
    snprintf(yaml, sizeof(yaml),
             REQUIRED "  ca: %s\n"
             "hosts:\n  - { hostname: a.example.com }\n  - { hostname: \"*.example.com\" }\n"
             "tcp_ports:\n  - { listen: \"0.0.0.0:22\", tunnel: t, hostname: a.com }\n"
             "access_log: { path: x.log }\n",
             certs.ca_file);
    write_text(file, yaml);
    for (n = 1; n < 10000; n++) {
        struct edge_config *c = NULL;
        int rv;

        mem_fail_after(n);
        rv = edge_config_load(file, &c, err, sizeof(err));
        mem_fail_after(0);
        if (rv == 0) {
            assert_non_null(c);
            edge_config_free(c);
            break;
        }
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(c);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n > 10);
    assert_int_equal(mem_live_count(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_config_gets_every_default),
        cmocka_unit_test(test_advertise_defaults_to_a_specific_listen_address),
        cmocka_unit_test(test_advertise_default_merges_any_addresses_on_one_port),
        cmocka_unit_test(test_full_config_sets_every_key),
        cmocka_unit_test(test_balance_policies_and_access_log_variants),
        cmocka_unit_test(test_null_values_keep_defaults),
        cmocka_unit_test(test_every_limit_is_settable_by_name),
        cmocka_unit_test(test_relative_config_path_resolves_against_its_directory),
        cmocka_unit_test(test_relative_unix_admin_socket_is_resolved),
        cmocka_unit_test(test_unknown_top_level_key_is_an_error),
        cmocka_unit_test(test_unknown_nested_keys_are_errors),
        cmocka_unit_test(test_duplicate_key_is_an_error),
        cmocka_unit_test(test_wrong_types_are_errors),
        cmocka_unit_test(test_bad_duration_is_an_error),
        cmocka_unit_test(test_bad_address_is_an_error),
        cmocka_unit_test(test_bad_hostname_pattern_is_an_error),
        cmocka_unit_test(test_missing_certificates_is_an_error),
        cmocka_unit_test(test_missing_tunnel_certificate_is_an_error),
        cmocka_unit_test(test_bad_limit_name_is_an_error),
        cmocka_unit_test(test_limit_values_follow_their_kind),
        cmocka_unit_test(test_limit_set_twice_is_an_error),
        cmocka_unit_test(test_bad_enums_and_region_are_errors),
        cmocka_unit_test(test_tunnel_ca_errors_name_the_file),
        cmocka_unit_test(test_tunnel_ca_digest_uses_the_first_certificate),
        cmocka_unit_test(test_tcp_ports_are_validated),
        cmocka_unit_test(test_missing_file_is_an_errno),
        cmocka_unit_test(test_error_message_is_truncated_safely),
        cmocka_unit_test(test_shipped_example_is_valid),
        cmocka_unit_test(test_allocation_failures_fail_cleanly),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
