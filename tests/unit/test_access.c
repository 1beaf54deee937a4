/*
 * test_access.c - the pure parts of connector/access.c: command line, the upgrade request (as the
 * edge's own parser reads it) and the error page text. The byte pump runs end to end in the
 * integration tests (access tcp and ssh through a real edge).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "access.h"
#include "buf.h"
#include "err.h"
#include "http1.h"
#include "limits.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct access_opts o;
static char err[512];

static int parse(int argc, const char *const *argv)
{
    err[0] = '\0';
    return access_parse_args(argc, (char **)(uintptr_t)argv, &o, err, sizeof(err));
}

static void test_tcp_defaults(void **state)
{
    const char *argv[] = {"tcp", "--hostname", "SSH.Example.com", "--url", "2222"};

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv), 0);
    assert_int_equal(o.mode, ACCESS_TCP);
    assert_string_equal(o.hostname, "ssh.example.com");
    /* A bare port listens on loopback. */
    assert_string_equal(o.listen.host, "127.0.0.1");
    assert_int_equal(o.listen.port, 2222);
    /* The edge defaults to https://HOSTNAME:443. */
    assert_string_equal(o.edge_host, "ssh.example.com");
    assert_int_equal(o.edge_port, 443);
    assert_null(o.edge_ca);
    assert_int_equal(o.loglevel, LOG_WARN);
}

static void test_url_forms(void **state)
{
    const char *a1[] = {"tcp", "--hostname=h.example", "--url=:2200"};
    const char *a2[] = {"tcp", "-hostname", "h.example", "-url", "tcp://0.0.0.0:2201"};
    const char *a3[] = {"tcp", "--hostname", "h.example", "--url", "[::1]:2202"};
    const char *a4[] = {"tcp", "--hostname", "h.example", "--url", "localhost:2203"};

    (void)state;
    assert_int_equal(parse(ARGC(a1), a1), 0);
    assert_string_equal(o.listen.host, "127.0.0.1");
    assert_int_equal(o.listen.port, 2200);
    assert_int_equal(parse(ARGC(a2), a2), 0);
    assert_string_equal(o.listen.host, "0.0.0.0");
    assert_int_equal(o.listen.port, 2201);
    assert_int_equal(parse(ARGC(a3), a3), 0);
    assert_string_equal(o.listen.host, "::1");
    assert_int_equal(parse(ARGC(a4), a4), 0);
    assert_string_equal(o.listen.host, "localhost");
}

static void test_edge_url_and_headers(void **state)
{
    const char *argv[] = {"ssh", "--hostname", "ssh.example.com", "--edge-url",
                          "https://edge.example.net:8443/", "--edge-ca", "/etc/ca.pem",
                          "--header", "Cf-Access-Token:  abc def  ", "--header", "X-A:b",
                          "--loglevel", "debug"};

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv), 0);
    assert_int_equal(o.mode, ACCESS_SSH);
    assert_string_equal(o.edge_host, "edge.example.net");
    assert_int_equal(o.edge_port, 8443);
    assert_string_equal(o.edge_ca, "/etc/ca.pem");
    assert_int_equal(o.nheaders, 2);
    assert_int_equal(o.headers[0].name_len, 15);
    assert_memory_equal(o.headers[0].name, "Cf-Access-Token", 15);
    assert_int_equal(o.headers[0].value_len, 7);
    assert_memory_equal(o.headers[0].value, "abc def", 7);
    assert_int_equal(o.headers[1].value_len, 1);
    assert_int_equal(o.loglevel, LOG_DEBUG);
}

static void expect_usage_error(int argc, const char *const *argv, const char *needle)
{
    assert_int_equal(parse(argc, argv), CV_EINVAL);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void test_usage_errors_name_the_flag(void **state)
{
    const char *no_mode[] = {"udp", "--hostname", "h.example"};
    const char *no_host[] = {"tcp", "--url", "2222"};
    const char *ip_host[] = {"tcp", "--hostname", "10.0.0.1", "--url", "2222"};
    const char *no_url[] = {"tcp", "--hostname", "h.example"};
    const char *bad_url[] = {"tcp", "--hostname", "h.example", "--url", "h:0"};
    const char *ssh_url[] = {"ssh", "--hostname", "h.example", "--url", "2222"};
    const char *http_edge[] = {"ssh", "--hostname", "h.example", "--edge-url", "http://e:80"};
    const char *path_edge[] = {"ssh", "--hostname", "h.example", "--edge-url", "https://e/x"};
    const char *bad_hdr[] = {"ssh", "--hostname", "h.example", "--header", "no colon"};
    const char *host_hdr[] = {"ssh", "--hostname", "h.example", "--header", "Host: x"};
    const char *ctl_hdr[] = {"ssh", "--hostname", "h.example", "--header", "A: b\r\nX: y"};
    const char *unknown[] = {"ssh", "--hostname", "h.example", "--bogus", "1"};
    const char *unknown_last[] = {"ssh", "--hostname", "h.example", "--verbose"};
    const char *missing[] = {"ssh", "--hostname"};
    const char *level[] = {"ssh", "--hostname", "h.example", "--loglevel", "loud"};
    const char *ct_zero[] = {"ssh", "--hostname", "h.example", "--connect-timeout", "0s"};
    static char big[9000];
    const char *huge[] = {"ssh", "--hostname", "h.example", "--header", big, "--header", big};
    const char *ct_bad[] = {"ssh", "--hostname", "h.example", "--connect-timeout", "soon"};

    (void)state;
    expect_usage_error(ARGC(no_mode), no_mode, "tcp or ssh");
    expect_usage_error(ARGC(no_host), no_host, "--hostname");
    expect_usage_error(ARGC(ip_host), ip_host, "--hostname");
    expect_usage_error(ARGC(no_url), no_url, "--url");
    expect_usage_error(ARGC(bad_url), bad_url, "--url");
    expect_usage_error(ARGC(ssh_url), ssh_url, "--url");
    expect_usage_error(ARGC(http_edge), http_edge, "https://");
    expect_usage_error(ARGC(path_edge), path_edge, "--edge-url");
    expect_usage_error(ARGC(bad_hdr), bad_hdr, "--header");
    expect_usage_error(ARGC(host_hdr), host_hdr, "host");
    expect_usage_error(ARGC(ctl_hdr), ctl_hdr, "control");
    expect_usage_error(ARGC(unknown), unknown, "--bogus");
    expect_usage_error(ARGC(unknown_last), unknown_last, "unknown flag --verbose");
    expect_usage_error(ARGC(missing), missing, "missing value");
    expect_usage_error(ARGC(level), level, "--loglevel");
    expect_usage_error(ARGC(ct_zero), ct_zero, "--connect-timeout: must be more than 0");
    expect_usage_error(ARGC(ct_bad), ct_bad, "--connect-timeout");
    memset(big, 'v', sizeof(big) - 1);
    memcpy(big, "X-Big: ", 7);
    expect_usage_error(ARGC(huge), huge, "the headers total 18002 bytes");
}

static void test_help(void **state)
{
    const char *a1[] = {"--help"};
    const char *a2[] = {"tcp", "--help"};

    (void)state;
    assert_int_equal(parse(ARGC(a1), a1), ACCESS_HELP);
    assert_int_equal(parse(ARGC(a2), a2), ACCESS_HELP);
}

/* ---- the request ------------------------------------------------------------------------------ */

struct seen {
    int heads;
    int upgrade;
    char host[64];
    char extra[64];
};

static int on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct seen *s = arg;
    const struct http1_field *f = http1_head_find(h, "x-policy");

    (void)p;
    s->heads++;
    s->upgrade = (h->flags & HTTP1_F_UPGRADE) ? (int)h->upgrade : -1;
    snprintf(s->host, sizeof(s->host), "%.*s", (int)h->host_len, h->host);
    if (f != NULL)
        snprintf(s->extra, sizeof(s->extra), "%s", f->value);
    return 0;
}

static void test_request_is_a_culvert_tcp_upgrade_for_the_edge(void **state)
{
    const char *argv[] = {"ssh", "--hostname", "ssh.example.com", "--edge-url",
                          "https://127.0.0.1:8443", "--header", "X-Policy: token 1"};
    static const struct http1_hooks hooks = {.on_head = on_head};
    struct cv_limits lim;
    struct http1_parser *p;
    struct seen seen;
    struct buf b;
    ssize_t used;

    (void)state;
    assert_int_equal(parse(ARGC(argv), argv), 0);
    buf_init(&b, 65536);
    assert_int_equal(access_build_request(&b, &o), 0);
    /* Host is the hostname, never the --edge-url address. */
    assert_true(buf_len(&b) > 0);
    assert_memory_equal(b.pos, "GET / HTTP/1.1\r\nHost: ssh.example.com\r\n", 39);
    limits_init(&lim);
    memset(&seen, 0, sizeof(seen));
    p = http1_parser_new(HTTP1_REQUEST, &lim, &hooks, &seen);
    assert_non_null(p);
    used = http1_feed(p, b.pos, buf_len(&b));
    assert_int_equal(used, (ssize_t)buf_len(&b));
    assert_int_equal(seen.heads, 1);
    assert_int_equal(seen.upgrade, HTTP1_UP_CULVERT_TCP);
    assert_string_equal(seen.host, "ssh.example.com");
    assert_string_equal(seen.extra, "token 1");
    http1_parser_free(p);
    buf_cleanup(&b);
}

/* ---- error pages ------------------------------------------------------------------------------ */

static void test_page_text_keeps_the_message(void **state)
{
    static const char page[] =
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>502 Bad Gateway</title></head>\n"
        "<body style=\"font-family:sans-serif\">\n<h1>502 Bad Gateway</h1>\n"
        "<p>The connector could not reach the origin service.</p>\n"
        "<p><small>Request ID: 0c9ac6c3 &middot; culvert &amp; co</small></p>\n</body></html>\n";
    char out[256];
    size_t n;

    (void)state;
    n = access_page_text(page, sizeof(page) - 1, out, sizeof(out));
    assert_string_equal(out, "The connector could not reach the origin service. Request ID: "
                             "0c9ac6c3 - culvert & co");
    assert_int_equal(n, strlen(out));
    /* Truncated to the room given, always terminated. */
    n = access_page_text(page, sizeof(page) - 1, out, 10);
    assert_int_equal(n, 9);
    assert_string_equal(out, "The conne");
    /* Not HTML: kept, on one line, control characters dropped. */
    n = access_page_text("{\"status\": 404,\n \"error\": \"x\"}\x1b", 31, out, sizeof(out));
    assert_string_equal(out, "{\"status\": 404, \"error\": \"x\"}");
    assert_int_equal(access_page_text("", 0, out, 1), 0);
    assert_string_equal(out, "");
    /* Another server's page with a <header>: its text is kept (only <head> is skipped). */
    n = access_page_text("<html><body><header>Maintenance until 18:00</header></body></html>", 66,
                         out, sizeof(out));
    assert_string_equal(out, "Maintenance until 18:00");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_defaults),
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_edge_url_and_headers),
        cmocka_unit_test(test_usage_errors_name_the_flag),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_request_is_a_culvert_tcp_upgrade_for_the_edge),
        cmocka_unit_test(test_page_text_keeps_the_message),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
