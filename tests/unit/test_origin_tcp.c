/*
 * test_origin_tcp.c - the pure parts of connector/origin_tcp.c: the PROXY protocol v2 header
 * (haproxy's proxy-protocol.txt §2.2) and the `:client` pseudo-field parser. The stream <-> socket
 * paths run end to end in the integration tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "err.h"
#include "origin_tcp.h"
#include "support.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static void v4(struct sockaddr_storage *ss, const char *ip, int port)
{
    assert_int_equal(uv_ip4_addr(ip, port, (struct sockaddr_in *)ss), 0);
}

static void v6(struct sockaddr_storage *ss, const char *ip, int port)
{
    assert_int_equal(uv_ip6_addr(ip, port, (struct sockaddr_in6 *)ss), 0);
}

static void expect_bytes(const uint8_t *got, size_t n, const char *hex)
{
    size_t want_n;
    uint8_t *want = support_hex_decode(hex, &want_n);

    assert_non_null(want);
    assert_int_equal(n, want_n);
    assert_memory_equal(got, want, n);
    free(want);
}

static void test_proxy_v2_ipv4_both_sides(void **state)
{
    struct sockaddr_storage dst;
    uint8_t out[ORIGIN_TCP_PROXY_V2_MAX];
    const char *client = "192.0.2.1:51234";
    ssize_t n;

    (void)state;
    v4(&dst, "127.0.0.1", 22);
    n = origin_tcp_proxy_v2(out, sizeof(out), client, strlen(client), (struct sockaddr *)&dst);
    assert_int_equal(n, 28);
    expect_bytes(out, (size_t)n,
                 "0d0a0d0a000d0a515549540a" /* signature */
                 "21 11 000c"               /* v2 PROXY, TCP over IPv4, 12 bytes */
                 "c0000201 7f000001"        /* 192.0.2.1 -> 127.0.0.1 */
                 "c822 0016");              /* 51234 -> 22 */
}

static void test_proxy_v2_ipv6_both_sides(void **state)
{
    struct sockaddr_storage dst;
    uint8_t out[ORIGIN_TCP_PROXY_V2_MAX];
    const char *client = "[2001:db8::1]:443";
    ssize_t n;

    (void)state;
    v6(&dst, "::1", 3389);
    n = origin_tcp_proxy_v2(out, sizeof(out), client, strlen(client), (struct sockaddr *)&dst);
    assert_int_equal(n, 52);
    expect_bytes(out, (size_t)n,
                 "0d0a0d0a000d0a515549540a 21 21 0024"
                 "20010db8000000000000000000000001"
                 "00000000000000000000000000000001"
                 "01bb 0d3d");
}

static void test_proxy_v2_mixed_families_use_ipv4_mapped(void **state)
{
    struct sockaddr_storage dst;
    uint8_t out[ORIGIN_TCP_PROXY_V2_MAX];
    const char *client = "198.51.100.7:1000";
    const char *client6 = "[2001:db8::2]:1000";
    ssize_t n;

    (void)state;
    /* An IPv4 visitor, an IPv6 target. */
    v6(&dst, "::1", 22);
    n = origin_tcp_proxy_v2(out, sizeof(out), client, strlen(client), (struct sockaddr *)&dst);
    assert_int_equal(n, 52);
    expect_bytes(out, (size_t)n,
                 "0d0a0d0a000d0a515549540a 21 21 0024"
                 "00000000000000000000ffff c6336407"
                 "00000000000000000000000000000001"
                 "03e8 0016");
    /* An IPv6 visitor, an IPv4 target. */
    v4(&dst, "10.0.0.5", 80);
    n = origin_tcp_proxy_v2(out, sizeof(out), client6, strlen(client6), (struct sockaddr *)&dst);
    assert_int_equal(n, 52);
    assert_memory_equal(out + 32, "\0\0\0\0\0\0\0\0\0\0\xff\xff\x0a\x00\x00\x05", 16);
}

static void test_proxy_v2_local_without_client(void **state)
{
    struct sockaddr_storage dst;
    uint8_t out[ORIGIN_TCP_PROXY_V2_MAX];
    static const char *const bad[] = {"", "192.0.2.1", "192.0.2.1:", "192.0.2.1:65536",
                                      "2001:db8::1:80", "[2001:db8::1]", "[::1]x80",
                                      "host.example:80", "1.2.3.4:8a"};
    ssize_t n;

    (void)state;
    v4(&dst, "127.0.0.1", 22);
    n = origin_tcp_proxy_v2(out, sizeof(out), NULL, 0, (struct sockaddr *)&dst);
    assert_int_equal(n, 16);
    assert_memory_equal(out, sig, 12);
    assert_memory_equal(out + 12, "\x20\x00\x00\x00", 4); /* v2 LOCAL, UNSPEC, no addresses */
    /* A :client that is not an address is never guessed at: LOCAL too. */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = origin_tcp_proxy_v2(out, sizeof(out), bad[i], strlen(bad[i]),
                                (struct sockaddr *)&dst);
        assert_int_equal(n, 16);
        assert_int_equal(out[12], 0x20);
    }
}

static void test_proxy_v2_small_buffer_refused(void **state)
{
    struct sockaddr_storage dst;
    uint8_t out[ORIGIN_TCP_PROXY_V2_MAX];
    const char *client = "192.0.2.1:1";

    (void)state;
    v4(&dst, "127.0.0.1", 22);
    assert_int_equal(origin_tcp_proxy_v2(out, 27, client, strlen(client), (struct sockaddr *)&dst),
                     CV_EFULL);
    assert_int_equal(origin_tcp_proxy_v2(out, 15, NULL, 0, (struct sockaddr *)&dst), CV_EFULL);
    /* A destination that is not IP while a PROXY header is needed. */
    memset(&dst, 0, sizeof(dst));
    dst.ss_family = AF_UNIX;
    assert_int_equal(origin_tcp_proxy_v2(out, sizeof(out), client, strlen(client),
                                         (struct sockaddr *)&dst),
                     CV_EINVAL);
}

static void test_parse_client_forms(void **state)
{
    struct sockaddr_storage ss;
    char ip[64];

    (void)state;
    assert_int_equal(origin_tcp_parse_client("203.0.113.9:65535", 17, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 65535);
    inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof(ip));
    assert_string_equal(ip, "203.0.113.9");
    assert_int_equal(origin_tcp_parse_client("[fe80::1:2]:7", 13, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 7);
    /* Only |len| bytes count. */
    assert_int_equal(origin_tcp_parse_client("10.0.0.1:80garbage", 11, &ss), 0);
    assert_int_equal(origin_tcp_parse_client("10.0.0.1:123456", 15, &ss), CV_EINVAL);
    assert_int_equal(origin_tcp_parse_client("10.0.0.256:1", 12, &ss), CV_EINVAL);
    assert_int_equal(origin_tcp_parse_client("[::1]:", 6, &ss), CV_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_v2_ipv4_both_sides),
        cmocka_unit_test(test_proxy_v2_ipv6_both_sides),
        cmocka_unit_test(test_proxy_v2_mixed_families_use_ipv4_mapped),
        cmocka_unit_test(test_proxy_v2_local_without_client),
        cmocka_unit_test(test_proxy_v2_small_buffer_refused),
        cmocka_unit_test(test_parse_client_forms),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
