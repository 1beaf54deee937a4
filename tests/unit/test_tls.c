/*
 * test_tls.c - tls.c without sockets: a client and a server struct tls shuttle ciphertext in
 * memory.
 * Certificates are generated at start-up (certs_for_tests.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "err.h"
#include "mem.h"
#include "tls.h"

#include "certs_for_tests.c"

static struct test_certs certs;

struct pair {
    SSL_CTX *sctx;
    SSL_CTX *cctx;
    struct tls s;
    struct tls c;
    int rs; /* last tls_handshake() result, server */
    int rc; /* client */
    long live0;
};

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

/* Moves |from|'s pending ciphertext into |to|. Returns the byte count. */
static size_t shuttle(struct tls *from, struct tls *to)
{
    const uint8_t *p;
    size_t n = tls_pending_out(from, &p);

    if (n == 0)
        return 0;
    assert_int_equal(tls_feed(to, p, n), 0);
    tls_consume_out(from, n);
    return n;
}

/* Runs both handshakes until both finish, one fails (its alert reaching the peer), or stall. */
static void run_handshake(struct pair *pr)
{
    int i;

    pr->rc = 0;
    pr->rs = 0;
    for (i = 0; i < 50; i++) {
        size_t moved = 0;

        if (pr->rc == 0)
            pr->rc = tls_handshake(&pr->c);
        moved += shuttle(&pr->c, &pr->s);
        if (pr->rs == 0)
            pr->rs = tls_handshake(&pr->s);
        moved += shuttle(&pr->s, &pr->c);
        if (pr->rc < 0 || pr->rs < 0) {
            /* Let the other side read the alert. */
            if (pr->rc == 0)
                pr->rc = tls_handshake(&pr->c);
            if (pr->rs == 0)
                pr->rs = tls_handshake(&pr->s);
            return;
        }
        if (pr->rc == 1 && pr->rs == 1 && moved == 0)
            return;
    }
}

static SSL_CTX *server_ctx(const char *chain, const char *key, enum tls_min_version min,
                           const char *alpn)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_ctx_server_new(chain, key, min, alpn, err, sizeof(err));

    if (ctx == NULL)
        fail_msg("server ctx: %s", err);
    return ctx;
}

static SSL_CTX *client_ctx(const struct tls_client_opts *o)
{
    char err[512] = "";
    SSL_CTX *ctx = tls_ctx_client_new(o, err, sizeof(err));

    if (ctx == NULL)
        fail_msg("client ctx: %s", err);
    return ctx;
}

/* Sets up a pair over the given contexts (taken) and runs the handshake. */
static void pair_start(struct pair *pr, SSL_CTX *sctx, SSL_CTX *cctx, const char *servername)
{
    pr->sctx = sctx;
    pr->cctx = cctx;
    assert_int_equal(tls_init_server(&pr->s, sctx), 0);
    assert_int_equal(tls_init_client(&pr->c, cctx, servername), 0);
    run_handshake(pr);
}

static void pair_end(struct pair *pr)
{
    tls_cleanup(&pr->s);
    tls_cleanup(&pr->c);
    SSL_CTX_free(pr->sctx);
    SSL_CTX_free(pr->cctx);
    assert_int_equal(mem_live_count(), pr->live0);
}

static void pair_default(struct pair *pr, const char *servername)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file, .alpn = "culvert/1"};

    memset(pr, 0, sizeof(*pr));
    pr->live0 = mem_live_count();
    pair_start(pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, "culvert/1"),
               client_ctx(&o), servername);
}

/* Reads everything |to| can decrypt after shuttling from |from|, into |out|. Returns the count. */
static size_t recv_all(struct tls *from, struct tls *to, uint8_t *out, size_t cap)
{
    size_t got = 0;
    int n;

    shuttle(from, to);
    for (;;) {
        n = tls_read(to, out + got, cap - got);
        shuttle(to, from); /* tickets, KeyUpdate answers */
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap)
            break;
    }
    return got;
}

static void test_handshake_then_data_flows_both_ways(void **state)
{
    struct pair pr;
    uint8_t buf[64];
    char alpn[32];

    (void)state;
    pair_default(&pr, "localhost");
    assert_int_equal(pr.rc, 1);
    assert_int_equal(pr.rs, 1);
    assert_true(pr.c.handshake_done);
    assert_true(pr.s.handshake_done);
    assert_string_equal(tls_version(&pr.c), "TLSv1.3");
    assert_string_equal(tls_servername(&pr.s), "localhost");
    tls_alpn(&pr.s, alpn, sizeof(alpn));
    assert_string_equal(alpn, "culvert/1");
    tls_alpn(&pr.c, alpn, sizeof(alpn));
    assert_string_equal(alpn, "culvert/1");

    assert_int_equal(tls_write(&pr.c, (const uint8_t *)"ping", 4), 0);
    assert_int_equal(recv_all(&pr.c, &pr.s, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "ping", 4);
    assert_int_equal(tls_write(&pr.s, (const uint8_t *)"pong!", 5), 0);
    assert_int_equal(recv_all(&pr.s, &pr.c, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "pong!", 5);
    /* Nothing more: a read wants more ciphertext. */
    assert_int_equal(tls_read(&pr.c, buf, sizeof(buf)), 0);
    pair_end(&pr);
}

static void test_close_notify_reads_as_closed_and_other_direction_stays_open(void **state)
{
    struct pair pr;
    uint8_t buf[64];

    (void)state;
    pair_default(&pr, "localhost");
    assert_int_equal(tls_write(&pr.c, (const uint8_t *)"last", 4), 0);
    assert_int_equal(tls_shutdown(&pr.c), 0);
    assert_true(pr.c.close_notify_sent);
    assert_int_equal(tls_write(&pr.c, (const uint8_t *)"x", 1), CV_ECLOSED);
    shuttle(&pr.c, &pr.s);
    assert_int_equal(tls_read(&pr.s, buf, sizeof(buf)), 4);
    assert_int_equal(tls_read(&pr.s, buf, sizeof(buf)), CV_ECLOSED);
    assert_true(pr.s.close_notify_received);
    assert_int_equal(tls_read(&pr.s, buf, sizeof(buf)), CV_ECLOSED);

    /* Half-close: the server still answers, then closes its side too. */
    assert_int_equal(tls_write(&pr.s, (const uint8_t *)"answer", 6), 0);
    assert_int_equal(tls_shutdown(&pr.s), 0);
    shuttle(&pr.s, &pr.c);
    assert_int_equal(tls_read(&pr.c, buf, sizeof(buf)), 6);
    assert_memory_equal(buf, "answer", 6);
    assert_int_equal(tls_read(&pr.c, buf, sizeof(buf)), CV_ECLOSED);
    pair_end(&pr);
}

static void test_alpn_mismatch_fails_handshake(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file, .alpn = "h2"};
    struct pair pr;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, "culvert/1"),
               client_ctx(&o), "localhost");
    assert_int_equal(pr.rs, CV_ETLS);
    assert_int_equal(pr.rc, CV_ETLS);
    assert_non_null(strstr(pr.c.last_error, "no application protocol"));
    pair_end(&pr);
}

static void test_client_without_alpn_is_not_refused_and_negotiates_none(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    struct pair pr;
    char alpn[32];

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, "culvert/1"),
               client_ctx(&o), "localhost");
    assert_int_equal(pr.rs, 1);
    assert_int_equal(pr.rc, 1);
    tls_alpn(&pr.s, alpn, sizeof(alpn));
    assert_string_equal(alpn, "");
    pair_end(&pr);
}

static void test_tls13_only_server_rejects_tls12_client(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    struct pair pr;
    SSL_CTX *cctx;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    cctx = client_ctx(&o);
    assert_int_equal(SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION), 1);
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_3, NULL), cctx,
               "localhost");
    assert_int_equal(pr.rs, CV_ETLS);
    assert_int_equal(pr.rc, CV_ETLS);
    assert_non_null(strstr(pr.s.last_error, "unsupported protocol"));
    assert_non_null(strstr(pr.c.last_error, "protocol version"));
    pair_end(&pr);
}

static void test_tls12_client_works_with_tls12_server(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    struct pair pr;
    uint8_t buf[8];

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pr.cctx = client_ctx(&o);
    assert_int_equal(SSL_CTX_set_max_proto_version(pr.cctx, TLS1_2_VERSION), 1);
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, NULL), pr.cctx,
               "localhost");
    assert_int_equal(pr.rc, 1);
    assert_int_equal(pr.rs, 1);
    assert_string_equal(tls_version(&pr.s), "TLSv1.2");
    assert_int_equal(tls_write(&pr.c, (const uint8_t *)"12", 2), 0);
    assert_int_equal(recv_all(&pr.c, &pr.s, buf, sizeof(buf)), 2);
    pair_end(&pr);
}

static void test_client_renegotiation_is_refused(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    struct pair pr;
    uint8_t buf[8];
    int n;
    int i;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pr.cctx = client_ctx(&o);
    assert_int_equal(SSL_CTX_set_max_proto_version(pr.cctx, TLS1_2_VERSION), 1);
    /* Our contexts forbid renegotiation on both sides: let this client try anyway. */
    SSL_CTX_clear_options(pr.cctx, SSL_OP_NO_RENEGOTIATION);
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, NULL), pr.cctx,
               "localhost");
    assert_int_equal(pr.rc, 1);
    assert_int_equal(pr.rs, 1);
    assert_int_equal(SSL_renegotiate(pr.c.ssl), 1);
    (void)SSL_do_handshake(pr.c.ssl); /* sends the new ClientHello */
    n = 0;
    for (i = 0; i < 5 && n >= 0; i++) {
        shuttle(&pr.c, &pr.s);
        assert_true(tls_read(&pr.s, buf, sizeof(buf)) >= 0); /* the server refuses, politely */
        shuttle(&pr.s, &pr.c);
        n = tls_read(&pr.c, buf, sizeof(buf));
    }
    assert_int_equal(n, CV_ETLS);
    assert_non_null(strstr(pr.c.last_error, "renegotiation"));
    pair_end(&pr);
}

static void test_hostname_mismatch_fails_with_clear_reason(void **state)
{
    struct pair pr;

    (void)state;
    pair_default(&pr, "other.example.com");
    assert_int_equal(pr.rc, CV_ETLS);
    assert_string_equal(pr.c.last_error, "certificate verify failed: hostname mismatch");
    assert_int_equal(pr.rs, CV_ETLS); /* the client's alert */
    pair_end(&pr);
}

static void test_ip_literal_is_checked_against_ip_san_without_sni(void **state)
{
    struct pair pr;

    (void)state;
    pair_default(&pr, "127.0.0.1");
    assert_int_equal(pr.rc, 1);
    assert_int_equal(pr.rs, 1);
    assert_null(tls_servername(&pr.s));
    pair_end(&pr);

    pair_default(&pr, "[::1]");
    assert_int_equal(pr.rc, 1);
    pair_end(&pr);

    pair_default(&pr, "127.0.0.2");
    assert_int_equal(pr.rc, CV_ETLS);
    assert_string_equal(pr.c.last_error, "certificate verify failed: IP address mismatch");
    pair_end(&pr);
}

static void test_wrong_ca_fails_verification(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.other_ca_file};
    struct pair pr;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(certs.leaf_only_file, certs.key_file, TLS_MIN_1_2, NULL),
               client_ctx(&o), "localhost");
    assert_int_equal(pr.rc, CV_ETLS);
    assert_string_equal(pr.c.last_error,
                        "certificate verify failed: unable to get local issuer certificate");
    pair_end(&pr);
}

static void test_system_store_does_not_trust_private_ca(void **state)
{
    struct tls_client_opts o = {.system_store = 1};
    struct pair pr;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(certs.chain_file, certs.key_file, TLS_MIN_1_2, NULL),
               client_ctx(&o), "localhost");
    assert_int_equal(pr.rc, CV_ETLS);
    assert_non_null(strstr(pr.c.last_error, "certificate verify failed"));
    pair_end(&pr);
}

static void pin_case(const char *chain, const char *key, const uint8_t *pin, const char *name,
                     int expect_ok, const char *expect_error)
{
    struct tls_client_opts o = {.pin_sha256 = pin, .min_version = TLS_MIN_1_3};
    struct pair pr;

    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(chain, key, TLS_MIN_1_3, NULL), client_ctx(&o), name);
    if (expect_ok) {
        assert_int_equal(pr.rc, 1);
        assert_int_equal(pr.rs, 1);
        assert_int_equal(SSL_get_verify_result(pr.c.ssl), X509_V_OK);
        assert_non_null(SSL_get0_verified_chain(pr.c.ssl));
    } else {
        assert_int_equal(pr.rc, CV_ETLS);
        assert_string_equal(pr.c.last_error, expect_error);
    }
    pair_end(&pr);
}

static void test_pinned_ca_in_chain_is_accepted(void **state)
{
    (void)state;
    pin_case(certs.chain_file, certs.key_file, certs.ca_sha256, "localhost", 1, NULL);
}

static void test_pinned_intermediate_ca_is_accepted(void **state)
{
    (void)state;
    pin_case(certs.inter_chain_file, certs.inter_key_file, certs.inter_sha256, "localhost", 1,
             NULL);
    pin_case(certs.inter_chain_file, certs.inter_key_file, certs.ca_sha256, "localhost", 1, NULL);
}

static void test_wrong_pin_is_rejected(void **state)
{
    static const char reason[] = "certificate verify failed: no CA certificate with the pinned "
                                 "SHA-256 digest in the peer's chain";

    (void)state;
    pin_case(certs.chain_file, certs.key_file, certs.other_ca_sha256, "localhost", 0, reason);
    /* The leaf's own digest: present, but not a CA. */
    pin_case(certs.chain_file, certs.key_file, certs.leaf_sha256, "localhost", 0, reason);
    /* The pinned CA is not in the chain the server sends. */
    pin_case(certs.leaf_only_file, certs.key_file, certs.ca_sha256, "localhost", 0, reason);
}

static void test_pinned_ca_still_checks_hostname(void **state)
{
    (void)state;
    pin_case(certs.chain_file, certs.key_file, certs.ca_sha256, "evil.example", 0,
             "certificate verify failed: hostname mismatch");
}

static void test_no_verify_accepts_any_certificate_and_name(void **state)
{
    struct tls_client_opts o = {.no_verify = 1};
    struct pair pr;

    (void)state;
    memset(&pr, 0, sizeof(pr));
    pr.live0 = mem_live_count();
    pair_start(&pr, server_ctx(certs.leaf_only_file, certs.key_file, TLS_MIN_1_2, NULL),
               client_ctx(&o), "not-the-name.example");
    assert_int_equal(pr.rc, 1);
    assert_int_equal(pr.rs, 1);
    assert_string_equal(tls_servername(&pr.s), "not-the-name.example");
    pair_end(&pr);
}

static void test_one_mebibyte_round_trips(void **state)
{
    const size_t len = 1 << 20;
    uint8_t *src = malloc(len);
    uint8_t *dst = malloc(len);
    struct pair pr;
    size_t got;
    size_t i;

    (void)state;
    assert_non_null(src);
    assert_non_null(dst);
    for (i = 0; i < len; i++)
        src[i] = (uint8_t)(i * 7 + (i >> 11));
    pair_default(&pr, "localhost");
    assert_int_equal(tls_write(&pr.c, src, len), 0);
    got = recv_all(&pr.c, &pr.s, dst, len);
    assert_int_equal(got, len);
    assert_memory_equal(src, dst, len);
    /* And back. */
    memset(dst, 0, len);
    assert_int_equal(tls_write(&pr.s, src, len), 0);
    got = recv_all(&pr.s, &pr.c, dst, len);
    assert_int_equal(got, len);
    assert_memory_equal(src, dst, len);
    /* Idle: the big memory BIOs are swapped for small ones and the session keeps working. */
    tls_release_buffers(&pr.c);
    tls_release_buffers(&pr.s);
    assert_int_equal(tls_write(&pr.c, (const uint8_t *)"after", 5), 0);
    assert_int_equal(recv_all(&pr.c, &pr.s, dst, len), 5);
    assert_memory_equal(dst, "after", 5);
    pair_end(&pr);
    free(src);
    free(dst);
}

static void test_garbage_from_peer_is_a_tls_error(void **state)
{
    struct pair pr;
    static const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    uint8_t buf[16];

    (void)state;
    pair_default(&pr, "localhost");
    assert_int_equal(tls_feed(&pr.s, junk, sizeof(junk) - 1), 0);
    assert_int_equal(tls_read(&pr.s, buf, sizeof(buf)), CV_ETLS);
    assert_true(pr.s.last_error[0] != '\0');
    pair_end(&pr);
}

static void test_server_ctx_names_the_missing_file(void **state)
{
    char err[512] = "";
    long live = mem_live_count();

    (void)state;
    assert_null(tls_ctx_server_new("/nonexistent/cert.pem", certs.key_file, TLS_MIN_1_2, NULL, err,
                                   sizeof(err)));
    assert_non_null(strstr(err, "certificate file /nonexistent/cert.pem: "));
    assert_non_null(strstr(err, "No such file"));
    assert_null(tls_ctx_server_new(certs.chain_file, "/nonexistent/key.pem", TLS_MIN_1_2, NULL, err,
                                   sizeof(err)));
    assert_non_null(strstr(err, "key file /nonexistent/key.pem: "));
    /* A key that does not belong to the certificate. */
    assert_null(tls_ctx_server_new(certs.chain_file, certs.inter_key_file, TLS_MIN_1_2, NULL, err,
                                   sizeof(err)));
    assert_non_null(strstr(err, "key values mismatch"));
    assert_null(tls_ctx_server_new(certs.chain_file, certs.key_file, TLS_MIN_1_2, "", err,
                                   sizeof(err)));
    assert_non_null(strstr(err, "ALPN"));
    assert_int_equal(mem_live_count(), live);
}

static void test_client_ctx_requires_exactly_one_trust_anchor(void **state)
{
    struct tls_client_opts none = {.alpn = "culvert/1"};
    struct tls_client_opts both = {.ca_file = certs.ca_file, .pin_sha256 = certs.ca_sha256};
    struct tls_client_opts bad_file = {.ca_file = "/nonexistent/ca.pem"};
    char err[512] = "";

    (void)state;
    assert_null(tls_ctx_client_new(&none, err, sizeof(err)));
    assert_non_null(strstr(err, "no trust anchor"));
    assert_null(tls_ctx_client_new(&both, err, sizeof(err)));
    assert_non_null(strstr(err, "mutually exclusive"));
    assert_null(tls_ctx_client_new(&bad_file, err, sizeof(err)));
    assert_non_null(strstr(err, "CA file /nonexistent/ca.pem"));
}

static void test_client_requires_servername_when_verifying(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    struct tls_client_opts nv = {.no_verify = 1};
    SSL_CTX *ctx = client_ctx(&o);
    SSL_CTX *nvctx = client_ctx(&nv);
    struct tls t;

    (void)state;
    assert_int_equal(tls_init_client(&t, ctx, NULL), CV_EINVAL);
    assert_int_equal(tls_init_client(&t, ctx, ""), CV_EINVAL);
    assert_int_equal(tls_init_client(&t, nvctx, NULL), 0);
    tls_cleanup(&t);
    SSL_CTX_free(ctx);
    SSL_CTX_free(nvctx);
}

static void test_ctx_allocation_failure_is_clean(void **state)
{
    struct tls_client_opts o = {.ca_file = certs.ca_file};
    long live = mem_live_count();
    char err[128] = "";

    (void)state;
    mem_fail_after(1);
    assert_null(tls_ctx_server_new(certs.chain_file, certs.key_file, TLS_MIN_1_2, NULL, err,
                                   sizeof(err)));
    assert_string_equal(err, "out of memory");
    mem_fail_after(1);
    assert_null(tls_ctx_client_new(&o, err, sizeof(err)));
    assert_string_equal(err, "out of memory");
    mem_fail_after(0);
    assert_int_equal(mem_live_count(), live);
}

static void test_drain_errors_appends_and_clears(void **state)
{
    char out[256] = "first";

    (void)state;
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    tls_drain_errors(out, sizeof(out));
    assert_string_equal(out, "first; bad length");
    assert_int_equal(ERR_peek_error(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_then_data_flows_both_ways),
        cmocka_unit_test(test_close_notify_reads_as_closed_and_other_direction_stays_open),
        cmocka_unit_test(test_alpn_mismatch_fails_handshake),
        cmocka_unit_test(test_client_without_alpn_is_not_refused_and_negotiates_none),
        cmocka_unit_test(test_tls13_only_server_rejects_tls12_client),
        cmocka_unit_test(test_tls12_client_works_with_tls12_server),
        cmocka_unit_test(test_client_renegotiation_is_refused),
        cmocka_unit_test(test_hostname_mismatch_fails_with_clear_reason),
        cmocka_unit_test(test_ip_literal_is_checked_against_ip_san_without_sni),
        cmocka_unit_test(test_wrong_ca_fails_verification),
        cmocka_unit_test(test_system_store_does_not_trust_private_ca),
        cmocka_unit_test(test_pinned_ca_in_chain_is_accepted),
        cmocka_unit_test(test_pinned_intermediate_ca_is_accepted),
        cmocka_unit_test(test_wrong_pin_is_rejected),
        cmocka_unit_test(test_pinned_ca_still_checks_hostname),
        cmocka_unit_test(test_no_verify_accepts_any_certificate_and_name),
        cmocka_unit_test(test_one_mebibyte_round_trips),
        cmocka_unit_test(test_garbage_from_peer_is_a_tls_error),
        cmocka_unit_test(test_server_ctx_names_the_missing_file),
        cmocka_unit_test(test_client_ctx_requires_exactly_one_trust_anchor),
        cmocka_unit_test(test_client_requires_servername_when_verifying),
        cmocka_unit_test(test_ctx_allocation_failure_is_clean),
        cmocka_unit_test(test_drain_errors_appends_and_clears),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
