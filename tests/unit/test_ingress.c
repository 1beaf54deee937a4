/*
 * test_ingress.c - connector/ingress.c: services, originRequest (defaults, inheritance, warnings),
 * rule validation with located messages, first-match lookup (exact, wildcard, path expressions in
 * RE2 syntax), the rule description, the `ingress validate|rule` commands, allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "ingress.h"
#include "mem.h"
#include "yaml.h"

/* ---- helpers -------------------------------------------------------------------------------- */

struct collected {
    char lines[16][512];
    size_t n;
};

static void collect(const char *msg, void *arg)
{
    struct collected *c = arg;

    if (c->n < 16)
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s", msg);
}

/* Parses |text| as config.yml: originRequest over the defaults, then the ingress section. */
static int build(const char *text, struct ingress **out, struct yaml_error *err,
                 struct collected *warns)
{
    struct yaml_doc *doc = NULL;
    struct origin_request defaults;
    const struct yaml_node *root;
    int rv;

    *out = NULL;
    rv = yaml_load_string(text, strlen(text), "config.yml", NULL, &doc, err);
    if (rv < 0)
        return rv;
    root = yaml_doc_root(doc);
    origin_request_init(&defaults);
    rv = origin_request_parse(yaml_map_get(root, "originRequest"), "originRequest", &defaults,
                              collect, warns, err);
    if (rv == 0 || rv == CV_ENOTFOUND)
        rv = ingress_parse(yaml_map_get(root, "ingress"), &defaults, collect, warns, out, err);
    origin_request_cleanup(&defaults);
    yaml_doc_free(doc);
    return rv;
}

static struct ingress *build_ok(const char *text)
{
    struct ingress *ing = NULL;
    struct yaml_error err;
    struct collected w = {.n = 0};
    int rv = build(text, &ing, &err, &w);

    if (rv != 0)
        fail_msg("unexpected error: %s", err.msg);
    return ing;
}

/* Expects |text| to fail with CV_ECONFIG and exactly |msg|. */
static void build_fails(const char *text, const char *msg)
{
    struct ingress *ing = NULL;
    struct yaml_error err;
    struct collected w = {.n = 0};

    memset(&err, 0, sizeof(err));
    assert_int_equal(build(text, &ing, &err, &w), CV_ECONFIG);
    assert_null(ing);
    assert_string_equal(err.msg, msg);
}

static unsigned match_num(struct ingress *ing, const char *host, const char *path)
{
    const struct ingress_rule *r = ingress_match(ing, host, strlen(host), path, strlen(path));

    assert_non_null(r);
    return r->number;
}

static void svc_ok(const char *text, bool default_http, enum ingress_service_kind kind,
                   const char *host, unsigned port, const char *canonical)
{
    struct ingress_service s;
    char why[256];

    if (ingress_service_parse(text, default_http, &s, why, sizeof(why)) != 0)
        fail_msg("%s: %s", text, why);
    assert_int_equal(s.kind, kind);
    if (host != NULL)
        assert_string_equal(s.host, host);
    assert_int_equal(s.port, port);
    assert_string_equal(s.text, canonical);
    ingress_service_cleanup(&s);
}

static void svc_bad(const char *text, const char *why_expected)
{
    struct ingress_service s;
    char why[256];

    assert_int_equal(ingress_service_parse(text, false, &s, why, sizeof(why)), CV_EINVAL);
    assert_string_equal(why, why_expected);
}

/* ---- services ------------------------------------------------------------------------------- */

static void test_service_parses_every_supported_form(void **state)
{
    struct ingress_service s;
    char why[256];

    (void)state;
    svc_ok("http://localhost:8000", false, INGRESS_SVC_HTTP, "localhost", 8000,
           "http://localhost:8000");
    svc_ok("http://localhost", false, INGRESS_SVC_HTTP, "localhost", 80, "http://localhost");
    svc_ok("https://LocalHost:8443/", false, INGRESS_SVC_HTTP, "localhost", 8443,
           "https://localhost:8443");
    svc_ok("HTTPS://example.com", false, INGRESS_SVC_HTTP, "example.com", 443,
           "https://example.com");
    svc_ok("http://127.0.0.1:8080", false, INGRESS_SVC_HTTP, "127.0.0.1", 8080,
           "http://127.0.0.1:8080");
    svc_ok("http://[::1]:8080", false, INGRESS_SVC_HTTP, "::1", 8080, "http://[::1]:8080");
    svc_ok("http://my_app:3000", false, INGRESS_SVC_HTTP, "my_app", 3000, "http://my_app:3000");
    svc_ok("tcp://localhost:5432", false, INGRESS_SVC_TCP, "localhost", 5432,
           "tcp://localhost:5432");
    svc_ok("ssh://localhost", false, INGRESS_SVC_TCP, "localhost", 22, "ssh://localhost:22");
    svc_ok("ssh://localhost:2222", false, INGRESS_SVC_TCP, "localhost", 2222,
           "ssh://localhost:2222");
    svc_ok("rdp://10.0.0.5", false, INGRESS_SVC_TCP, "10.0.0.5", 3389, "rdp://10.0.0.5:3389");
    /* cloudflared's SMB service: TCP, port 445 unless written. */
    svc_ok("smb://fileserver", false, INGRESS_SVC_TCP, "fileserver", 445, "smb://fileserver:445");
    svc_ok("SMB://10.0.0.6:1445", false, INGRESS_SVC_TCP, "10.0.0.6", 1445,
           "smb://10.0.0.6:1445");
    svc_ok("hello_world", false, INGRESS_SVC_HELLO_WORLD, NULL, 0, "hello_world");
    svc_ok("hello-world", false, INGRESS_SVC_HELLO_WORLD, NULL, 0, "hello_world");
    svc_ok("http_status:404", false, INGRESS_SVC_HTTP_STATUS, NULL, 0, "http_status:404");

    assert_int_equal(ingress_service_parse("https://h/app/v1/", false, &s, why, sizeof(why)), 0);
    assert_true(s.tls);
    assert_string_equal(s.base_path, "/app/v1");
    assert_string_equal(s.text, "https://h/app/v1");
    ingress_service_cleanup(&s);

    assert_int_equal(ingress_service_parse("unix:/run/app.sock", false, &s, why, sizeof(why)), 0);
    assert_int_equal(s.kind, INGRESS_SVC_UNIX);
    assert_false(s.tls);
    assert_string_equal(s.unix_path, "/run/app.sock");
    assert_string_equal(s.text, "unix:/run/app.sock");
    ingress_service_cleanup(&s);

    assert_int_equal(ingress_service_parse("unix+tls:/run/app.sock", false, &s, why, sizeof(why)),
                     0);
    assert_int_equal(s.kind, INGRESS_SVC_UNIX);
    assert_true(s.tls);
    assert_string_equal(s.text, "unix+tls:/run/app.sock");
    ingress_service_cleanup(&s);

    assert_int_equal(ingress_service_parse("http_status:503", false, &s, why, sizeof(why)), 0);
    assert_int_equal(s.status, 503);
    ingress_service_cleanup(&s);
}

static void test_service_url_flag_defaults_to_http(void **state)
{
    (void)state;
    svc_ok("localhost:8080", true, INGRESS_SVC_HTTP, "localhost", 8080, "http://localhost:8080");
    svc_bad("localhost:8080",
            "missing scheme (use http://, https://, unix:, unix+tls:, tcp://, ssh://, rdp://, "
            "http_status:NNN or hello_world)");
}

static void test_service_rejects_bad_forms_with_reasons(void **state)
{
    (void)state;
    svc_bad("", "empty service");
    svc_bad("ftp://files.local",
            "unsupported scheme \"ftp\" (use http, https, unix, unix+tls, tcp, ssh, rdp, smb, "
            "http_status:NNN or hello_world)");
    svc_bad("ws://localhost:80",
            "unsupported scheme \"ws\" (use http, https, unix, unix+tls, tcp, ssh, rdp, smb, "
            "http_status:NNN or hello_world)");
    svc_bad("http://", "missing host");
    svc_bad("http://:8080", "missing host");
    svc_bad("http:///path", "missing host");
    svc_bad("http://localhost:0", "invalid port (must be 1-65535 in decimal)");
    svc_bad("http://localhost:65536", "invalid port (must be 1-65535 in decimal)");
    svc_bad("http://localhost:http", "invalid port (must be 1-65535 in decimal)");
    svc_bad("http://localhost:", "empty port");
    svc_bad("http://my_app:", "empty port");
    svc_bad("http://my_app:123456", "invalid port (must be 1-65535 in decimal)");
    svc_bad("http://user:pw@localhost", "userinfo (\"user@\") is not allowed");
    svc_bad("http://localhost/?q=1", "a service URL cannot have a query or a fragment");
    svc_bad("http://localhost/a#b", "a service URL cannot have a query or a fragment");
    svc_bad("tcp://localhost", "tcp:// needs a port (tcp://host:port)");
    svc_bad("ssh://localhost:22/home", "a ssh:// service cannot have a path, query or fragment");
    svc_bad("rdp://localhost/", "a rdp:// service cannot have a path, query or fragment");
    svc_bad("smb://localhost/share", "a smb:// service cannot have a path, query or fragment");
    svc_bad("tcp://db:5432?x", "a tcp:// service cannot have a path, query or fragment");
    svc_bad("http_status:99", "invalid HTTP status (expected http_status:NNN, 100-599)");
    svc_bad("http_status:600", "invalid HTTP status (expected http_status:NNN, 100-599)");
    svc_bad("http_status:abc", "invalid HTTP status (expected http_status:NNN, 100-599)");
    svc_bad("http_status:", "invalid HTTP status (expected http_status:NNN, 100-599)");
    svc_bad("unix:", "missing unix socket path");
    svc_bad("bastion",
            "\"bastion\" is not supported by culvert: a request must never choose its destination");
    svc_bad("socks-proxy", "\"socks-proxy\" is not supported by culvert: a request must never "
                           "choose its destination");
    svc_bad("localhost", "missing scheme (use http://, https://, unix:, unix+tls:, tcp://, "
                         "ssh://, rdp://, http_status:NNN or hello_world)");
}

/* ---- originRequest -------------------------------------------------------------------------- */

static void test_origin_request_defaults_match_cloudflared(void **state)
{
    struct origin_request o;

    (void)state;
    origin_request_init(&o);
    assert_int_equal(o.connect_timeout_ms, 30000);
    assert_int_equal(o.tls_timeout_ms, 10000);
    assert_int_equal(o.tcp_keepalive_ms, 30000);
    assert_int_equal(o.keepalive_connections, 100);
    assert_int_equal(o.keepalive_timeout_ms, 90000);
    assert_null(o.http_host_header);
    assert_null(o.origin_server_name);
    assert_null(o.ca_pool);
    assert_false(o.no_tls_verify);
    assert_false(o.match_sni_to_host);
    assert_false(o.disable_chunked_encoding);
    assert_int_equal(o.proxy_protocol, ORIGIN_PROXY_PROTOCOL_OFF);
    assert_int_equal(o.tcp_idle_timeout_ms, 0);
    origin_request_cleanup(&o);
}

static void test_rule_inherits_top_level_origin_request_key_by_key(void **state)
{
    struct ingress *ing;
    const struct ingress_rule *r;

    (void)state;
    ing = build_ok("originRequest:\n"
                   "  connectTimeout: 5s\n"
                   "  httpHostHeader: top.internal\n"
                   "  caPool: /etc/ca.pem\n"
                   "  keepAliveConnections: 7\n"
                   "ingress:\n"
                   "  - hostname: a.example.com\n"
                   "    service: https://localhost:8443\n"
                   "    originRequest:\n"
                   "      httpHostHeader: api.internal\n"
                   "      noTLSVerify: true\n"
                   "      originServerName: Origin.Example.COM\n"
                   "      tlsTimeout: 2s\n"
                   "      matchSNItoHost: yes\n"
                   "      disableChunkedEncoding: true\n"
                   "      tcpKeepAlive: 0s\n"
                   "      keepAliveTimeout: 1m30s\n"
                   "      connectTimeout: ~\n"
                   "  - hostname: ssh.example.com\n"
                   "    service: ssh://localhost:22\n"
                   "    originRequest: { proxyProtocol: v2, tcpIdleTimeout: 10m, caPool: \"\" }\n"
                   "  - service: http_status:404\n");
    r = ingress_rule_at(ing, 0);
    assert_int_equal(r->origin.connect_timeout_ms, 5000); /* null keeps the inherited value */
    assert_int_equal(r->origin.tls_timeout_ms, 2000);
    assert_string_equal(r->origin.http_host_header, "api.internal");
    assert_string_equal(r->origin.origin_server_name, "origin.example.com");
    assert_string_equal(r->origin.ca_pool, "/etc/ca.pem");
    assert_true(r->origin.no_tls_verify);
    assert_true(r->origin.match_sni_to_host);
    assert_true(r->origin.disable_chunked_encoding);
    assert_int_equal(r->origin.tcp_keepalive_ms, 0);
    assert_int_equal(r->origin.keepalive_timeout_ms, 90000);
    assert_int_equal(r->origin.keepalive_connections, 7);

    r = ingress_rule_at(ing, 1);
    assert_int_equal(r->origin.connect_timeout_ms, 5000);
    assert_int_equal(r->origin.tls_timeout_ms, 10000);
    assert_string_equal(r->origin.http_host_header, "top.internal");
    assert_null(r->origin.ca_pool); /* "" unsets */
    assert_false(r->origin.no_tls_verify);
    assert_int_equal(r->origin.proxy_protocol, ORIGIN_PROXY_PROTOCOL_V2);
    assert_int_equal(r->origin.tcp_idle_timeout_ms, 600000);

    r = ingress_rule_at(ing, 2);
    assert_string_equal(r->origin.http_host_header, "top.internal");
    assert_int_equal(r->origin.proxy_protocol, ORIGIN_PROXY_PROTOCOL_OFF);
    assert_string_equal(ingress_defaults(ing)->http_host_header, "top.internal");
    ingress_free(ing);
}

static void test_origin_request_ca_pool_expands_home(void **state)
{
    struct ingress *ing;
    char *old = getenv("HOME") != NULL ? strdup(getenv("HOME")) : NULL;

    (void)state;
    setenv("HOME", "/home/alice", 1);
    ing = build_ok("originRequest: { caPool: ~/.cloudflared/origin-ca.pem }\n"
                   "ingress:\n  - service: https://localhost\n");
    assert_string_equal(ingress_rule_at(ing, 0)->origin.ca_pool,
                        "/home/alice/.cloudflared/origin-ca.pem");
    ingress_free(ing);
    if (old != NULL)
        setenv("HOME", old, 1);
    else
        unsetenv("HOME");
    free(old);
}

static void test_origin_request_warns_about_unsupported_and_unknown_keys(void **state)
{
    struct ingress *ing = NULL;
    struct yaml_error err;
    struct collected w = {.n = 0};

    (void)state;
    assert_int_equal(build("originRequest:\n"
                           "  noHappyEyeballs: true\n"
                           "  proxyType: socks\n"
                           "  connectTimout: 5s\n"
                           "ingress:\n"
                           "  - service: http://localhost:80\n"
                           "    originRequest:\n"
                           "      http2Origin: true\n"
                           "      access: { required: false, teamName: t, audTag: [a] }\n"
                           "      ipRules: []\n"
                           "      bastionMode: true\n"
                           "      proxyAddress: 127.0.0.1\n"
                           "      proxyPort: 0\n",
                           &ing, &err, &w),
                     0);
    assert_int_equal(w.n, 9);
    assert_string_equal(w.lines[0],
                        "config.yml:2:3: originRequest.noHappyEyeballs: not supported by culvert, "
                        "ignored");
    assert_string_equal(w.lines[1],
                        "config.yml:3:3: originRequest.proxyType: not supported by culvert, "
                        "ignored");
    assert_string_equal(w.lines[2],
                        "config.yml:4:3: originRequest.connectTimout: unknown key, ignored");
    assert_string_equal(w.lines[3], "config.yml:8:7: ingress[0].originRequest.http2Origin: not "
                                    "supported by culvert, ignored");
    assert_string_equal(w.lines[4], "config.yml:9:7: ingress[0].originRequest.access: not "
                                    "supported by culvert, ignored");
    assert_string_equal(w.lines[5], "config.yml:10:7: ingress[0].originRequest.ipRules: not "
                                    "supported by culvert, ignored");
    assert_string_equal(w.lines[6], "config.yml:11:7: ingress[0].originRequest.bastionMode: not "
                                    "supported by culvert, ignored");
    assert_string_equal(w.lines[7], "config.yml:12:7: ingress[0].originRequest.proxyAddress: not "
                                    "supported by culvert, ignored");
    assert_string_equal(w.lines[8], "config.yml:13:7: ingress[0].originRequest.proxyPort: not "
                                    "supported by culvert, ignored");
    /* connectTimout (a typo) changed nothing. */
    assert_int_equal(ingress_rule_at(ing, 0)->origin.connect_timeout_ms, 30000);
    ingress_free(ing);
}

/* cloudflared's access.required denies every request without an Access token; culvert has no such
 * check, so a rule that asks for it must not start serving everyone (fail closed). */
static void test_origin_request_access_required_is_refused(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: admin.example.com\n"
                "    service: http://localhost:8080\n"
                "    originRequest:\n"
                "      access: { required: true, teamName: t, audTag: [a] }\n"
                "  - service: http_status:404\n",
                "config.yml:5:27: ingress[0].originRequest.access.required: culvert does not check "
                "Cloudflare Access tokens, so requests would reach the origin unchecked: protect "
                "the origin another way and remove originRequest.access");
    build_fails("originRequest:\n"
                "  access:\n"
                "    required: yes\n"
                "ingress:\n"
                "  - service: http://localhost:8080\n",
                "config.yml:3:15: originRequest.access.required: culvert does not check "
                "Cloudflare Access tokens, so requests would reach the origin unchecked: protect "
                "the origin another way and remove originRequest.access");
    build_fails("ingress:\n"
                "  - service: http://localhost:8080\n"
                "    originRequest: { access: { required: maybe } }\n",
                "config.yml:3:42: ingress[0].originRequest.access.required: expected a boolean "
                "(true or false)");
}

static void test_origin_request_rejects_invalid_values_with_location(void **state)
{
    (void)state;
    build_fails("originRequest:\n  connectTimeout: 30\ningress:\n  - service: http_status:404\n",
                "config.yml:2:19: originRequest.connectTimeout: a duration needs a unit (for "
                "example 30s, 5m, 1h, 250ms)");
    build_fails("ingress:\n"
                "  - service: http://localhost\n"
                "    originRequest:\n"
                "      keepAliveConnections: -1\n",
                "config.yml:4:29: ingress[0].originRequest.keepAliveConnections: must be between 0 "
                "and 10000");
    build_fails("originRequest: { httpHostHeader: \"a b\" }\ningress:\n  - service: hello_world\n",
                "config.yml:1:34: originRequest.httpHostHeader: only printable ASCII without "
                "spaces is allowed");
    build_fails("originRequest: { originServerName: \"a/b\" }\n"
                "ingress:\n  - service: hello_world\n",
                "config.yml:1:36: originRequest.originServerName: invalid character in hostname "
                "(allowed: letters, digits, \"-\", \"_\" and \".\")");
    build_fails("originRequest: { proxyProtocol: v1 }\ningress:\n  - service: tcp://db:5432\n",
                "config.yml:1:33: originRequest.proxyProtocol: only PROXY protocol v2 is "
                "supported (write v2 or off)");
    build_fails("originRequest: { noTLSVerify: maybe }\ningress:\n  - service: hello_world\n",
                "config.yml:1:31: originRequest.noTLSVerify: expected a boolean (true or false)");
    build_fails("originRequest: [a]\ningress:\n  - service: hello_world\n",
                "config.yml:1:16: originRequest: expected a mapping, found a list");
}

/* ---- rule validation ------------------------------------------------------------------------ */

static void test_rejects_hostname_with_port(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: app.example.com:8080\n"
                "    service: http://localhost:8000\n"
                "  - service: http_status:404\n",
                "config.yml:2:15: ingress[0].hostname: a hostname cannot contain a port (rule #1)");
}

static void test_rejects_misplaced_wildcard(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - service: http://localhost:8000\n"
                "    hostname: \"app.*.example.com\"\n"
                "  - service: http_status:404\n",
                "config.yml:3:15: ingress[0].hostname: \"*\" is only allowed as the first label "
                "(rule #1)");
    build_fails("ingress:\n"
                "  - hostname: \"*example.com\"\n"
                "    service: http://localhost:8000\n"
                "  - service: http_status:404\n",
                "config.yml:2:15: ingress[0].hostname: \"*\" is only allowed as the first label "
                "(rule #1)");
}

static void test_rejects_last_rule_that_is_not_a_catch_all(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: a.example.com\n"
                "    service: http://localhost:8000\n"
                "  - hostname: b.example.com\n"
                "    service: http://localhost:8001\n",
                "config.yml:4:5: ingress[1]: The last ingress rule must match all URLs (i.e. it "
                "should not have a hostname or path filter)");
    /* A path makes it not a catch-all either, even with hostname "*". */
    build_fails("ingress:\n"
                "  - hostname: \"*\"\n"
                "    path: ^/api\n"
                "    service: http://localhost:8000\n",
                "config.yml:2:5: ingress[0]: The last ingress rule must match all URLs (i.e. it "
                "should not have a hostname or path filter)");
}

static void test_rejects_catch_all_before_the_last_rule(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: a.example.com\n"
                "    service: http://localhost:8000\n"
                "  - hostname: \"*\"\n"
                "    service: http://localhost:8001\n"
                "  - service: http_status:404\n",
                "config.yml:4:5: ingress[1]: rule #2 is a catch-all but not the last rule: the "
                "rules after it would never be used (give it a hostname or path, or move it last)");
}

static void test_rejects_invalid_path_expression(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: a.example.com\n"
                "    path: \"^/(api\"\n"
                "    service: http://localhost:8000\n"
                "  - service: http_status:404\n",
                "config.yml:3:11: ingress[0].path: invalid regular expression at offset 6: "
                "missing closing parenthesis (rule #1)");
}

static void test_rejects_missing_and_invalid_service(void **state)
{
    (void)state;
    build_fails("ingress:\n"
                "  - hostname: a.example.com\n"
                "  - service: http_status:404\n",
                "config.yml:2:5: ingress[0].service: missing: rule #1 needs a service");
    build_fails("ingress:\n"
                "  - hostname: a.example.com\n"
                "    service: tcp://localhost\n"
                "  - service: http_status:404\n",
                "config.yml:3:14: ingress[0].service: tcp:// needs a port (tcp://host:port) "
                "(rule #1)");
    build_fails("ingress:\n"
                "  - service: http_status:404\n"
                "    hostname: \"\"\n"
                "  - service: bastion\n",
                "config.yml:2:5: ingress[0]: rule #1 is a catch-all but not the last rule: the "
                "rules after it would never be used (give it a hostname or path, or move it last)");
}

static void test_rejects_empty_or_malformed_ingress(void **state)
{
    struct ingress *ing = (struct ingress *)&ing;
    struct yaml_error err;
    struct collected w = {.n = 0};

    (void)state;
    build_fails("ingress: []\n",
                "config.yml:1:10: ingress: The config file doesn't contain any ingress rules");
    build_fails("ingress: {service: hello_world}\n",
                "config.yml:1:10: ingress: expected a list, found a mapping");
    build_fails("ingress:\n  - http://localhost\n",
                "config.yml:2:5: ingress[0]: expected a mapping, found a string");
    build_fails("ingress:\n  -\n  - service: hello_world\n",
                "config.yml:2:4: ingress[0]: rule #1 is empty");
    /* No ingress at all is the caller's decision (connector_config.c). */
    assert_int_equal(build("tunnel: x\n", &ing, &err, &w), CV_ENOTFOUND);
    assert_null(ing);
}

static void test_warns_about_unknown_rule_keys_and_shadowed_rules(void **state)
{
    struct ingress *ing = NULL;
    struct yaml_error err;
    struct collected w = {.n = 0};

    (void)state;
    assert_int_equal(build("ingress:\n"
                           "  - hostname: \"*.example.com\"\n"
                           "    service: http://localhost:8000\n"
                           "  - hostname: app.example.com\n"
                           "    service: http://localhost:8001\n"
                           "    sevrice: oops\n"
                           "  - hostname: app.example.com\n"
                           "    path: ^/x\n"
                           "    service: http://localhost:8002\n"
                           "  - service: http_status:404\n",
                           &ing, &err, &w),
                     0);
    /* Rule #2 is exact: it beats the earlier wildcard (PRODUCT.md section 2), so only rule #3,
     * hidden by rule #2's equal hostname without a path, is warned about. */
    assert_int_equal(w.n, 2);
    assert_string_equal(w.lines[0], "config.yml:6:5: ingress[1].sevrice: unknown key, ignored");
    assert_string_equal(w.lines[1],
                        "config.yml:7:5: ingress[2]: rule #3 can never match: rule #2 (hostname "
                        "app.example.com, no path) comes first and matches every request it would");
    ingress_free(ing);
}

static void test_match_exact_and_longer_wildcards_beat_earlier_wildcards(void **state)
{
    struct ingress *ing = NULL;
    struct yaml_error err;
    struct collected w = {.n = 0};
    const struct ingress_rule *r;

    (void)state;
    assert_int_equal(build("ingress:\n"
                           "  - path: ^/health$\n"
                           "    service: http_status:204\n"
                           "  - hostname: \"*.example.com\"\n"
                           "    service: http://localhost:8000\n"
                           "  - hostname: ssh.example.com\n"
                           "    service: ssh://localhost:22\n"
                           "  - hostname: \"*.b.example.com\"\n"
                           "    service: http://localhost:8002\n"
                           "  - service: http_status:404\n",
                           &ing, &err, &w),
                     0);
    assert_int_equal(w.n, 0);
    r = ingress_match(ing, "ssh.example.com", 15, "/", 1);
    assert_int_equal(r->number, 3); /* exact beats the earlier wildcard */
    r = ingress_match(ing, "x.b.example.com", 15, "/", 1);
    assert_int_equal(r->number, 4); /* the longer wildcard beats the shorter one */
    r = ingress_match(ing, "www.example.com", 15, "/", 1);
    assert_int_equal(r->number, 2);
    r = ingress_match(ing, "ssh.example.com", 15, "/health", 7);
    assert_int_equal(r->number, 1); /* a host-less rule keeps its place, as in cloudflared */
    r = ingress_match(ing, "other.org", 9, "/", 1);
    assert_int_equal(r->number, 5);
    ingress_free(ing);
}

/* ---- matching ------------------------------------------------------------------------------- */

static const char *const site =
    "ingress:\n"
    "  - hostname: app.example.com\n"      /* 1 */
    "    path: ^/api/\n"
    "    service: http://localhost:8000\n"
    "  - hostname: app.example.com\n"      /* 2 */
    "    service: http://localhost:8001\n"
    "  - hostname: \"*.example.com\"\n"    /* 3 */
    "    path: ^/v\\d+/\n"
    "    service: https://localhost:8443\n"
    "  - hostname: \"*.example.com\"\n"    /* 4 */
    "    path: (?i)\\.PNG$\n"
    "    service: unix:/run/img.sock\n"
    "  - hostname: \"*.example.com\"\n"    /* 5 */
    "    service: http://localhost:8002\n"
    "  - hostname: example.com\n"          /* 6 */
    "    service: http_status:418\n"
    "  - service: http_status:404\n";      /* 7 */

static void test_match_exact_hostname_and_path(void **state)
{
    struct ingress *ing = build_ok(site);

    (void)state;
    assert_int_equal(ingress_rule_count(ing), 7);
    assert_int_equal(match_num(ing, "app.example.com", "/api/users"), 1);
    assert_int_equal(match_num(ing, "app.example.com", "/apix"), 2);
    assert_int_equal(match_num(ing, "app.example.com", "/"), 2);
    assert_int_equal(match_num(ing, "app.example.com", ""), 2);
    /* Case, a trailing dot and a port in Host do not matter. */
    assert_int_equal(match_num(ing, "APP.Example.COM.:8443", "/api/x"), 1);
    ingress_free(ing);
}

static void test_match_wildcard_covers_subdomains_not_apex(void **state)
{
    struct ingress *ing = build_ok(site);

    (void)state;
    assert_int_equal(match_num(ing, "www.example.com", "/"), 5);
    assert_int_equal(match_num(ing, "a.b.example.com", "/"), 5);
    assert_int_equal(match_num(ing, "example.com", "/"), 6);
    /* cloudflared's plain suffix test would take these; the label rule does not. */
    assert_int_equal(match_num(ing, "badexample.com", "/"), 7);
    assert_int_equal(match_num(ing, "www.example.com.evil.net", "/"), 7);
    ingress_free(ing);
}

static void test_match_path_regex_uses_re2_syntax(void **state)
{
    struct ingress *ing = build_ok(site);

    (void)state;
    assert_int_equal(match_num(ing, "www.example.com", "/v2/items"), 3);
    assert_int_equal(match_num(ing, "www.example.com", "/v10/items"), 3);
    assert_int_equal(match_num(ing, "www.example.com", "/vx/items"), 5);
    assert_int_equal(match_num(ing, "www.example.com", "/img/LOGO.png"), 4);
    assert_int_equal(match_num(ing, "www.example.com", "/img/logo.PNG"), 4);
    /* RE2's "$" is the very end: a final newline does not count. */
    assert_int_equal(match_num(ing, "www.example.com", "/img/logo.png%0A"), 5);
    assert_int_equal(match_num(ing, "www.example.com", "/img/logo.pngx"), 5);
    ingress_free(ing);
}

static void test_match_ignores_query_and_decodes_percent_escapes(void **state)
{
    struct ingress *ing = build_ok(site);

    (void)state;
    assert_int_equal(match_num(ing, "app.example.com", "/x?next=/api/"), 2);
    assert_int_equal(match_num(ing, "app.example.com", "/api/?q=1"), 1);
    assert_int_equal(match_num(ing, "app.example.com", "/%61pi/users"), 1);
    assert_int_equal(match_num(ing, "www.example.com", "/img/a%2Epng"), 4);
    /* An invalid escape: the path is searched as it is. */
    assert_int_equal(match_num(ing, "app.example.com", "/api/%zz"), 1);
    assert_int_equal(match_num(ing, "app.example.com", "/%6"), 2);
    ingress_free(ing);
}

static void test_match_bad_or_ip_host_reaches_only_host_free_rules(void **state)
{
    struct ingress *ing = build_ok(site);

    (void)state;
    assert_int_equal(match_num(ing, "", "/api/x"), 7);
    assert_int_equal(match_num(ing, "10.0.0.1:443", "/api/x"), 7);
    assert_int_equal(match_num(ing, "[::1]", "/"), 7);
    assert_int_equal(match_num(ing, "app.example.com/x", "/api/x"), 7);
    assert_int_equal(match_num(ing, "app_1.example.com", "/"), 7);
    ingress_free(ing);
}

static void test_match_limit_stops_pathological_expression(void **state)
{
    struct ingress *ing;
    char path[200];

    (void)state;
    ing = build_ok("ingress:\n"
                   "  - path: ^/(a+)+$\n"
                   "    service: http://localhost:1\n"
                   "  - path: ^/a\n"
                   "    service: http://localhost:2\n"
                   "  - service: http_status:404\n");
    path[0] = '/';
    memset(path + 1, 'a', 60);
    path[61] = 'b';
    path[62] = '\0';
    /* 2^60 backtracking steps without the limit; with it the rule is skipped, fast. */
    assert_int_equal(match_num(ing, "x.example.com", path), 2);
    path[61] = '\0';
    assert_int_equal(match_num(ing, "x.example.com", path), 1);
    ingress_free(ing);
}

static void test_hostname_star_and_missing_hostname_are_catch_alls(void **state)
{
    struct ingress *ing = build_ok("ingress:\n  - hostname: \"*\"\n    service: hello_world\n");

    (void)state;
    assert_int_equal(match_num(ing, "anything.test", "/x"), 1);
    assert_true(ingress_rule_at(ing, 0)->any_host);
    assert_null(ingress_rule_at(ing, 1));
    ingress_free(ing);
}

/* ---- description ---------------------------------------------------------------------------- */

static void test_describe_prints_cloudflared_rule_format(void **state)
{
    struct ingress *ing = build_ok(site);
    char out[512];
    size_t n;

    (void)state;
    n = ingress_rule_describe(ingress_rule_at(ing, 0), out, sizeof(out));
    assert_string_equal(out, "Matched rule #1\n"
                             "\thostname: app.example.com\n"
                             "\tpath: ^/api/\n"
                             "\tservice: http://localhost:8000\n");
    assert_int_equal(n, strlen(out));
    ingress_rule_describe(ingress_rule_at(ing, 4), out, sizeof(out));
    assert_string_equal(out, "Matched rule #5\n"
                             "\thostname: *.example.com\n"
                             "\tservice: http://localhost:8002\n");
    ingress_rule_describe(ingress_rule_at(ing, 6), out, sizeof(out));
    assert_string_equal(out, "Matched rule #7\n\tservice: http_status:404\n");
    /* Too small: truncated, NUL-terminated, the full length returned. */
    n = ingress_rule_describe(ingress_rule_at(ing, 0), out, 10);
    assert_string_equal(out, "Matched r");
    assert_int_equal(n, strlen("Matched rule #1\n\thostname: app.example.com\n\tpath: ^/api/\n"
                               "\tservice: http://localhost:8000\n"));
    ingress_free(ing);

    ing = build_ok("ingress:\n  - hostname: \"*\"\n    service: ssh://bastion.lan\n");
    ingress_rule_describe(ingress_rule_at(ing, 0), out, sizeof(out));
    assert_string_equal(out, "Matched rule #1\n\thostname: *\n\tservice: ssh://bastion.lan:22\n");
    ingress_free(ing);
}

/* ---- --url ---------------------------------------------------------------------------------- */

static void test_from_url_builds_single_catch_all(void **state)
{
    struct origin_request d;
    struct ingress *ing = NULL;
    char err[256];

    (void)state;
    origin_request_init(&d);
    d.no_tls_verify = true;
    assert_int_equal(ingress_from_url("https://localhost:8443", "--url", &d, &ing, err,
                                      sizeof(err)),
                     0);
    assert_int_equal(ingress_rule_count(ing), 1);
    assert_int_equal(match_num(ing, "any.host", "/whatever"), 1);
    assert_true(ingress_rule_at(ing, 0)->origin.no_tls_verify);
    assert_string_equal(ingress_rule_at(ing, 0)->service.text, "https://localhost:8443");
    ingress_free(ing);

    assert_int_equal(ingress_from_url("ftp://x", "--url", &d, &ing, err, sizeof(err)), CV_EINVAL);
    assert_null(ing);
    assert_string_equal(err, "--url: unsupported scheme \"ftp\" (use http, https, unix, unix+tls, "
                             "tcp, ssh, rdp, smb, http_status:NNN or hello_world)");
    origin_request_cleanup(&d);
}

/* ---- link-local and metadata origins (RELIABILITY.md 5.1) ---------------------------------- */

/* ingress_addr_link_local() of the IPv4 or IPv6 address |a|. */
static int ll(const char *a)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, a, &sin->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else {
        assert_int_equal(inet_pton(AF_INET6, a, &sin6->sin6_addr), 1);
        ss.ss_family = AF_INET6;
    }
    return ingress_addr_link_local((const struct sockaddr *)&ss);
}

static void test_link_local_and_metadata_addresses_recognised(void **state)
{
    (void)state;
    assert_true(ll("169.254.169.254"));
    assert_true(ll("169.254.0.1"));
    assert_false(ll("169.253.255.255"));
    assert_false(ll("169.255.0.1"));
    assert_false(ll("127.0.0.1"));
    assert_false(ll("10.0.0.1"));
    assert_true(ll("fe80::1"));
    assert_true(ll("febf::1"));
    assert_false(ll("fec0::1"));
    assert_true(ll("fd00:ec2::254"));
    assert_false(ll("fd00:ec2::253"));
    assert_true(ll("::ffff:169.254.169.254"));
    assert_false(ll("::ffff:127.0.0.1"));
    assert_false(ll("::1"));
    assert_false(ingress_addr_link_local(NULL));
}

static void test_link_local_origin_refused_unless_allowed(void **state)
{
    struct ingress *ing;
    struct origin_request d;
    char err[256];

    (void)state;
    build_fails("ingress:\n"
                "  - hostname: meta.example.com\n"
                "    service: http://169.254.169.254\n"
                "  - service: http_status:404\n",
                "config.yml:3:14: ingress[0].service: 169.254.169.254 is a link-local or cloud "
                "metadata address, refused as an origin; set originRequest.allowLinkLocal: true "
                "to allow it (rule #1)");
    build_fails("ingress:\n"
                "  - hostname: ssh.example.com\n"
                "    service: tcp://[fe80::1]:22\n"
                "  - service: http_status:404\n",
                "config.yml:3:14: ingress[0].service: fe80::1 is a link-local or cloud metadata "
                "address, refused as an origin; set originRequest.allowLinkLocal: true to allow it "
                "(rule #1)");
    /* Allowed per rule, or for every rule from the top level. */
    ing = build_ok("ingress:\n"
                   "  - hostname: meta.example.com\n"
                   "    service: http://169.254.169.254\n"
                   "    originRequest: {allowLinkLocal: true}\n"
                   "  - service: http_status:404\n");
    assert_true(ingress_rule_at(ing, 0)->origin.allow_link_local);
    assert_false(ingress_rule_at(ing, 1)->origin.allow_link_local);
    ingress_free(ing);
    ing = build_ok("originRequest: {allowLinkLocal: true}\n"
                   "ingress:\n"
                   "  - service: http://[fd00:ec2::254]\n");
    ingress_free(ing);

    origin_request_init(&d);
    assert_int_equal(ingress_from_url("http://169.254.169.254:80", "--url", &d, &ing, err,
                                      sizeof(err)),
                     CV_EINVAL);
    assert_null(ing);
    assert_string_equal(err, "--url: 169.254.169.254 is a link-local or cloud metadata address, "
                             "refused as an origin; set originRequest.allowLinkLocal: true to "
                             "allow it");
    origin_request_cleanup(&d);
}

/* ---- allocation failures -------------------------------------------------------------------- */

static void test_parse_fails_cleanly_on_every_allocation_failure(void **state)
{
    struct yaml_doc *doc = NULL;
    struct yaml_error err;
    struct origin_request d;
    struct ingress *ing;
    const char *text = site;
    long before;
    unsigned long n;
    int rv;
    bool succeeded = false;

    (void)state;
    assert_int_equal(yaml_load_string(text, strlen(text), "config.yml", NULL, &doc, &err), 0);
    origin_request_init(&d);
    d.http_host_header = mem_strdup("h.internal");
    before = mem_live_count();
    for (n = 1; n < 500 && !succeeded; n++) {
        ing = NULL;
        mem_fail_after(n);
        rv = ingress_parse(yaml_map_get(yaml_doc_root(doc), "ingress"), &d, NULL, NULL, &ing, &err);
        mem_fail_after(0);
        if (rv == 0) {
            succeeded = true;
            assert_int_equal(match_num(ing, "app.example.com", "/api/"), 1);
            ingress_free(ing);
        } else {
            assert_int_equal(rv, CV_ENOMEM);
            assert_null(ing);
        }
        assert_int_equal(mem_live_count(), before);
    }
    assert_true(succeeded);
    assert_true(n > 10);
    origin_request_cleanup(&d);
    yaml_doc_free(doc);
}

/* ---- commands ------------------------------------------------------------------------------- */

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_ingress.XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int remove_tmpdir(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Runs a command with output captured; returns the exit code. */
static int run_cmd(int (*cmd)(int, char **, FILE *, FILE *), int argc, const char **args,
                   char *out, size_t outn, char *errs, size_t errn)
{
    char *argv[8];
    FILE *o = tmpfile();
    FILE *e = tmpfile();
    size_t k;
    int i;
    int rc;

    assert_true(argc < 8);
    for (i = 0; i < argc; i++)
        argv[i] = strdup(args[i]);
    argv[argc] = NULL;
    rc = cmd(argc, argv, o, e);
    rewind(o);
    rewind(e);
    k = fread(out, 1, outn - 1, o);
    out[k] = '\0';
    k = fread(errs, 1, errn - 1, e);
    errs[k] = '\0';
    fclose(o);
    fclose(e);
    for (i = 0; i < argc; i++)
        free(argv[i]);
    return rc;
}

static void test_cmd_validate_prints_ok_or_the_error(void **state)
{
    char path[128];
    char expect[512];
    char out[2048];
    char errs[2048];
    const char *args[2];

    (void)state;
    snprintf(path, sizeof(path), "%s/good.yml", tmpdir);
    write_file(path, "tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\n"
                     "credentials-file: /nonexistent/creds.json\n"
                     "protocol: quic\n"
                     "ingress:\n"
                     "  - hostname: app.example.com\n"
                     "    service: http://localhost:8000\n"
                     "  - service: http_status:404\n");
    args[0] = "--config";
    args[1] = path;
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 2, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     0);
    snprintf(expect, sizeof(expect), "Validating rules from %s\nOK\n", path);
    assert_string_equal(out, expect);
    snprintf(expect, sizeof(expect),
             "warning: %s:3:1: protocol: not supported by culvert, ignored\n", path);
    assert_string_equal(errs, expect);

    snprintf(path, sizeof(path), "%s/bad.yml", tmpdir);
    write_file(path, "ingress:\n"
                     "  - hostname: app.example.com\n"
                     "    service: http://localhost:8000\n");
    args[0] = "--config=";
    snprintf(expect, sizeof(expect), "--config=%s", path);
    args[0] = expect;
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 1, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     2);
    snprintf(expect, sizeof(expect),
             "Validation failed: %s:2:5: ingress[0]: The last ingress rule must match all URLs "
             "(i.e. it should not have a hostname or path filter)\n", path);
    assert_string_equal(errs, expect);

    /* A file without ingress rules is an error too. */
    snprintf(path, sizeof(path), "%s/empty.yml", tmpdir);
    write_file(path, "loglevel: debug\n");
    args[0] = "--config";
    args[1] = path;
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 2, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     2);
    assert_non_null(strstr(errs, "no ingress rules"));

    /* Usage errors. */
    args[0] = "--bogus";
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 1, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     2);
    assert_string_equal(errs, "error: unknown flag --bogus\n");
    args[0] = "--config";
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 1, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     2);
    args[0] = "--help";
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 1, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     0);
    assert_non_null(strstr(out, "usage: culvert-connector ingress validate"));

    /* A --config file that does not exist. */
    args[0] = "--config";
    args[1] = "/nonexistent/config.yml";
    assert_int_equal(run_cmd(ingress_cmd_validate_io, 2, args, out, sizeof(out), errs,
                             sizeof(errs)),
                     2);
    assert_string_equal(errs, "Validation failed: /nonexistent/config.yml: cannot open: no such "
                              "file or directory\n");
}

static void test_cmd_rule_prints_the_matching_rule(void **state)
{
    char path[128];
    char expect[512];
    char out[2048];
    char errs[2048];
    const char *args[3];

    (void)state;
    snprintf(path, sizeof(path), "%s/site.yml", tmpdir);
    write_file(path, site);
    args[0] = "https://APP.example.com:443/api/v1?x=/";
    args[1] = "--config";
    args[2] = path;
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     0);
    snprintf(expect, sizeof(expect),
             "Using rules from %s\nMatched rule #1\n\thostname: app.example.com\n\tpath: ^/api/\n"
             "\tservice: http://localhost:8000\n", path);
    assert_string_equal(out, expect);
    assert_string_equal(errs, "");

    args[0] = "http://nowhere.test";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     0);
    snprintf(expect, sizeof(expect), "Using rules from %s\nMatched rule #7\n"
                                     "\tservice: http_status:404\n", path);
    assert_string_equal(out, expect);

    args[0] = "www.example.com/v1/";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     2);
    assert_string_equal(errs,
                        "www.example.com/v1/ doesn't have a hostname, consider adding a scheme\n");
    /* A scheme but an empty host (as cloudflared, which checks URL.Hostname()). */
    args[0] = "https:///api/v1";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     2);
    assert_string_equal(errs, "https:///api/v1 doesn't have a hostname, consider adding a scheme\n");
    assert_string_equal(out, "");
    args[0] = "https://:8443/api/v1";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     2);
    args[0] = "https://";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 3, args, out, sizeof(out), errs, sizeof(errs)),
                     2);

    args[0] = "--config";
    args[1] = path;
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 2, args, out, sizeof(out), errs, sizeof(errs)),
                     2);
    assert_string_equal(errs, "culvert-connector ingress rule expects a single argument, the URL "
                              "to test\n");

    args[0] = "http://a";
    args[1] = "http://b";
    assert_int_equal(run_cmd(ingress_cmd_rule_io, 2, args, out, sizeof(out), errs, sizeof(errs)),
                     2);
    assert_string_equal(errs, "error: unexpected argument http://b\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_parses_every_supported_form),
        cmocka_unit_test(test_service_url_flag_defaults_to_http),
        cmocka_unit_test(test_service_rejects_bad_forms_with_reasons),
        cmocka_unit_test(test_origin_request_defaults_match_cloudflared),
        cmocka_unit_test(test_rule_inherits_top_level_origin_request_key_by_key),
        cmocka_unit_test(test_origin_request_ca_pool_expands_home),
        cmocka_unit_test(test_origin_request_warns_about_unsupported_and_unknown_keys),
        cmocka_unit_test(test_origin_request_access_required_is_refused),
        cmocka_unit_test(test_origin_request_rejects_invalid_values_with_location),
        cmocka_unit_test(test_rejects_hostname_with_port),
        cmocka_unit_test(test_rejects_misplaced_wildcard),
        cmocka_unit_test(test_rejects_last_rule_that_is_not_a_catch_all),
        cmocka_unit_test(test_rejects_catch_all_before_the_last_rule),
        cmocka_unit_test(test_rejects_invalid_path_expression),
        cmocka_unit_test(test_rejects_missing_and_invalid_service),
        cmocka_unit_test(test_rejects_empty_or_malformed_ingress),
        cmocka_unit_test(test_warns_about_unknown_rule_keys_and_shadowed_rules),
        cmocka_unit_test(test_match_exact_and_longer_wildcards_beat_earlier_wildcards),
        cmocka_unit_test(test_match_exact_hostname_and_path),
        cmocka_unit_test(test_match_wildcard_covers_subdomains_not_apex),
        cmocka_unit_test(test_match_path_regex_uses_re2_syntax),
        cmocka_unit_test(test_match_ignores_query_and_decodes_percent_escapes),
        cmocka_unit_test(test_match_bad_or_ip_host_reaches_only_host_free_rules),
        cmocka_unit_test(test_match_limit_stops_pathological_expression),
        cmocka_unit_test(test_hostname_star_and_missing_hostname_are_catch_alls),
        cmocka_unit_test(test_describe_prints_cloudflared_rule_format),
        cmocka_unit_test(test_from_url_builds_single_catch_all),
        cmocka_unit_test(test_link_local_and_metadata_addresses_recognised),
        cmocka_unit_test(test_link_local_origin_refused_unless_allowed),
        cmocka_unit_test(test_parse_fails_cleanly_on_every_allocation_failure),
        cmocka_unit_test(test_cmd_validate_prints_ok_or_the_error),
        cmocka_unit_test(test_cmd_rule_prints_the_matching_rule),
    };

    return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
