/*
 * test_hostname.c - the hostname normaliser, Host header splitting, patterns, the two matching rules
 * and the pattern table (RELIABILITY.md §2.2, §5.4).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "err.h"
#include "hostname.h"
#include "mem.h"

static void norm_ok(const char *in, const char *want)
{
    char out[HOSTNAME_MAX + 1];
    const char *why = NULL;
    int rv = hostname_normalize(in, strlen(in), out, &why);

    if (rv < 0)
        fail_msg("\"%s\" rejected: %s", in, why);
    assert_int_equal(rv, strlen(want));
    assert_string_equal(out, want);
}

static const char *norm_bad(const char *in)
{
    char out[HOSTNAME_MAX + 1] = "untouched";
    const char *why = NULL;

    if (hostname_normalize(in, strlen(in), out, &why) != CV_EINVAL)
        fail_msg("\"%s\" accepted", in);
    assert_non_null(why);
    assert_string_equal(out, "untouched");
    return why;
}

static void test_normalize_lowercases_and_strips_one_trailing_dot(void **state)
{
    (void)state;
    norm_ok("Example.COM", "example.com");
    norm_ok("example.com.", "example.com");
    norm_ok("a-b.x1.example", "a-b.x1.example");
    norm_ok("localhost", "localhost");
    norm_ok("xn--bcher-kva.example", "xn--bcher-kva.example");
    norm_ok("123.example.com", "123.example.com");
    norm_ok("a.b2", "a.b2");
}

static void test_normalize_in_place_and_not_nul_terminated(void **state)
{
    char buf[32] = "WWW.Example.Org.";
    char raw[] = {'A', 'b', '.', 'C', 'x', 'x', 'x'};
    char out[HOSTNAME_MAX + 1];

    (void)state;
    assert_int_equal(hostname_normalize(buf, strlen(buf), buf, NULL), 15);
    assert_string_equal(buf, "www.example.org");
    assert_int_equal(hostname_normalize(raw, 4, out, NULL), 4);
    assert_string_equal(out, "ab.c");
}

static void test_normalize_rejects_each_bad_form_with_reason(void **state)
{
    (void)state;
    assert_string_equal(norm_bad(""), "empty hostname");
    assert_string_equal(norm_bad("."), "empty hostname");
    assert_string_equal(norm_bad("example.com.."), "empty label in hostname");
    assert_string_equal(norm_bad(".example.com"), "empty label in hostname");
    assert_string_equal(norm_bad("a..b"), "empty label in hostname");
    assert_string_equal(norm_bad("ex_ample.com"), "\"_\" is not allowed in a hostname");
    assert_string_equal(norm_bad("ex%41mple.com"), "percent-encoding is not allowed in a hostname");
    assert_string_equal(norm_bad("user@example.com"), "userinfo (\"user@\") is not allowed");
    assert_string_equal(norm_bad("example.com:443"), "a hostname must not include a port");
    assert_string_equal(norm_bad("exa mple.com"), "whitespace is not allowed in a hostname");
    assert_string_equal(norm_bad("example.com\t"), "whitespace is not allowed in a hostname");
    assert_string_equal(norm_bad("b\xc3\xbc" "cher.example"),
                        "non-ASCII characters are not allowed (write an IDN as punycode)");
    assert_string_equal(norm_bad("*.example.com"), "\"*\" is not allowed in a hostname");
    assert_string_equal(norm_bad("example.com/x"), "a hostname must not include a path");
    assert_string_equal(norm_bad("-a.example.com"),
                        "a hostname label must not start or end with \"-\"");
    assert_string_equal(norm_bad("a-.example.com"),
                        "a hostname label must not start or end with \"-\"");
    assert_string_equal(norm_bad("example.com-"),
                        "a hostname label must not start or end with \"-\"");
    assert_string_equal(norm_bad("127.0.0.1"),
                        "the last label of a hostname must not be all digits (an IP address?)");
    norm_bad("example.123");
    norm_bad("a\x01" "b");
    norm_bad("a,b");
    {
        char nul[] = {'a', '\0', 'b'};
        char out[HOSTNAME_MAX + 1];

        assert_int_equal(hostname_normalize(nul, 3, out, NULL), CV_EINVAL);
    }
}

static void test_normalize_length_limits(void **state)
{
    char label[80];
    char name[300];
    size_t n = 0;

    (void)state;
    memset(label, 'a', 63);
    label[63] = '\0';
    snprintf(name, sizeof(name), "%s.com", label);
    norm_ok(name, name);
    label[63] = 'a';
    label[64] = '\0';
    snprintf(name, sizeof(name), "%s.com", label);
    assert_string_equal(norm_bad(name), "hostname label longer than 63 characters");

    /* 253 characters: 63 + 1 + 63 + 1 + 63 + 1 + 61. */
    memset(name, 'b', sizeof(name));
    for (n = 63; n < 253; n += 64)
        name[n] = '.';
    name[253] = '\0';
    norm_ok(name, name);
    name[253] = '.'; /* one trailing dot is fine */
    name[254] = '\0';
    {
        char want[254];

        memcpy(want, name, 253);
        want[253] = '\0';
        norm_ok(name, want);
    }
    name[253] = 'b'; /* 254 characters */
    name[254] = '\0';
    assert_string_equal(norm_bad(name), "hostname longer than 253 characters");
}

static void split_ok(const char *in, enum hostname_kind kind, const char *name, int port)
{
    struct hostname_host h;
    const char *why = NULL;

    if (hostname_split(in, strlen(in), &h, &why) != 0)
        fail_msg("\"%s\" rejected: %s", in, why);
    assert_int_equal(h.kind, kind);
    assert_string_equal(h.name, name);
    assert_int_equal(h.port, port);
}

static void test_split_names_literals_and_ports(void **state)
{
    (void)state;
    split_ok("Example.COM", HOSTNAME_NAME, "example.com", -1);
    split_ok("example.com.:8443", HOSTNAME_NAME, "example.com", 8443);
    split_ok("localhost:1", HOSTNAME_NAME, "localhost", 1);
    split_ok("10.0.0.1", HOSTNAME_IPV4, "10.0.0.1", -1);
    split_ok("10.0.0.1:80", HOSTNAME_IPV4, "10.0.0.1", 80);
    split_ok("[::1]", HOSTNAME_IPV6, "::1", -1);
    split_ok("[::1]:8443", HOSTNAME_IPV6, "::1", 8443);
    split_ok("[2001:DB8:0:0:0:0:0:1]:65535", HOSTNAME_IPV6, "2001:db8::1", 65535);
    split_ok("[::ffff:10.0.0.1]", HOSTNAME_IPV6, "::ffff:10.0.0.1", -1);
}

static void test_split_rejects_bad_hosts(void **state)
{
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"", "empty host"},
        {":80", "empty host"},
        {"example.com:", "empty port"},
        {"example.com:0", "invalid port (must be 1-65535 in decimal)"},
        {"example.com:65536", "invalid port (must be 1-65535 in decimal)"},
        {"example.com:080", "invalid port (must be 1-65535 in decimal)"},
        {"example.com:8o", "invalid port (must be 1-65535 in decimal)"},
        {"example.com:+80", "invalid port (must be 1-65535 in decimal)"},
        {"user@example.com", "userinfo (\"user@\") is not allowed"},
        {"user:pw@example.com:80", "userinfo (\"user@\") is not allowed"},
        {"::1", "an IPv6 literal must be written in brackets"},
        {"example.com:80:80", "an IPv6 literal must be written in brackets"},
        {"[::1", "missing \"]\" after an IPv6 literal"},
        {"[::1]x", "unexpected characters after an IPv6 literal"},
        {"[::1]:", "empty port"},
        {"[fe80::1%25eth0]", "IPv6 zone identifiers are not allowed"},
        {"[]", "invalid IPv6 literal"},
        {"[example.com]", "invalid IPv6 literal"},
        {"[1.2.3.4]", "invalid IPv6 literal"},
        {"01.2.3.4", "the last label of a hostname must not be all digits (an IP address?)"},
        {"1.2.3", "the last label of a hostname must not be all digits (an IP address?)"},
        {"256.0.0.1", "the last label of a hostname must not be all digits (an IP address?)"},
        {"ex_ample.com:80", "\"_\" is not allowed in a hostname"},
        {"a%2eb", "percent-encoding is not allowed in a hostname"},
        {"example.com :80", "whitespace is not allowed in a hostname"},
    };
    struct hostname_host h;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;

        if (hostname_split(bad[i].in, strlen(bad[i].in), &h, &why) != CV_EINVAL)
            fail_msg("\"%s\" accepted", bad[i].in);
        if (strcmp(why, bad[i].why) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].in, why, bad[i].why);
    }
}

static struct hostname_pattern pat(const char *s)
{
    struct hostname_pattern p;
    const char *why = NULL;

    if (hostname_pattern_parse(s, strlen(s), &p, &why) != 0)
        fail_msg("pattern \"%s\" rejected: %s", s, why);
    return p;
}

static void test_pattern_parse_normalises_exact_and_wildcard(void **state)
{
    struct hostname_pattern p;

    (void)state;
    p = pat("App.Example.COM.");
    assert_string_equal(p.text, "app.example.com");
    assert_int_equal(p.len, 15);
    assert_false(p.wildcard);
    p = pat("*.Example.com");
    assert_string_equal(p.text, "*.example.com");
    assert_int_equal(p.len, 13);
    assert_true(p.wildcard);
    p = pat("*.com");
    assert_true(p.wildcard);
}

static void test_pattern_parse_rejects_misplaced_wildcards(void **state)
{
    static const struct {
        const char *in;
        const char *why;
    } bad[] = {
        {"*", "a lone \"*\" is not a hostname pattern (write \"*.example.com\")"},
        {"a.*.b", "\"*\" is only allowed as the first label"},
        {"*foo.b", "\"*\" is only allowed as the first label"},
        {"foo*.b", "\"*\" is only allowed as the first label"},
        {"**.b", "\"*\" is only allowed as the first label"},
        {"*.*.b", "\"*\" is only allowed as the first label"},
        {"b.*", "\"*\" is only allowed as the first label"},
        {"*.", "\"*.\" must be followed by a domain"},
        {"*..", "\"*.\" must be followed by a domain"},
        {"*.example.com:443", "a hostname must not include a port"},
        {"example.com:443", "a hostname must not include a port"},
        {"", "empty hostname"},
        {"*.ex_ample.com", "\"_\" is not allowed in a hostname"},
    };
    struct hostname_pattern p;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;

        if (hostname_pattern_parse(bad[i].in, strlen(bad[i].in), &p, &why) != CV_EINVAL)
            fail_msg("\"%s\" accepted", bad[i].in);
        if (strcmp(why, bad[i].why) != 0)
            fail_msg("\"%s\": got \"%s\", want \"%s\"", bad[i].in, why, bad[i].why);
    }
    {
        /* "*." plus a 252-character name would be 254 characters. */
        char name[260] = "*.";
        memset(name + 2, 'c', 252);
        for (size_t i = 2 + 63; i < 254; i += 64)
            name[i] = '.';
        name[254] = '\0';
        assert_int_equal(hostname_pattern_parse(name, strlen(name), &p, NULL), CV_EINVAL);
        name[253] = '\0';
        assert_int_equal(hostname_pattern_parse(name, strlen(name), &p, NULL), 0);
    }
}

static bool m(const char *pattern, const char *name)
{
    struct hostname_pattern p = pat(pattern);

    return hostname_pattern_match(&p, name, strlen(name));
}

static bool cm(const char *pattern, const char *name)
{
    struct hostname_pattern p = pat(pattern);

    return hostname_cert_match(&p, name, strlen(name));
}

static void test_route_match_any_depth_but_not_apex(void **state)
{
    (void)state;
    assert_true(m("example.com", "example.com"));
    assert_false(m("example.com", "a.example.com"));
    assert_false(m("example.com", "xample.com"));
    assert_true(m("*.example.com", "a.example.com"));
    assert_true(m("*.example.com", "a.b.c.example.com"));
    assert_false(m("*.example.com", "example.com"));
    assert_false(m("*.example.com", ".example.com"));
    assert_false(m("*.example.com", "aexample.com"));
    assert_false(m("*.example.com", "a.example.org"));
    assert_false(m("*.example.com", "a.example.com.evil"));
}

static void test_cert_match_one_label_only(void **state)
{
    (void)state;
    assert_true(cm("example.com", "example.com"));
    assert_true(cm("*.example.com", "a.example.com"));
    assert_false(cm("*.example.com", "a.b.example.com"));
    assert_false(cm("*.example.com", "example.com"));
    assert_false(cm("*.example.com", "aexample.com"));
}

/* ---- table -------------------------------------------------------------------------------- */

static int tag[8];

static void test_table_exact_beats_wildcard_and_longer_wildcard_wins(void **state)
{
    struct hostname_table *t = hostname_table_new();
    const char *matched = NULL;

    (void)state;
    assert_non_null(t);
    assert_int_equal(hostname_table_insert(t, "*.example.com", &tag[0], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "*.b.example.com", &tag[1], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "x.b.example.com", &tag[2], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "example.com", &tag[3], NULL), 0);
    assert_int_equal(hostname_table_count(t), 4);

    assert_ptr_equal(hostname_table_lookup(t, "x.b.example.com", &matched), &tag[2]);
    assert_string_equal(matched, "x.b.example.com");
    assert_ptr_equal(hostname_table_lookup(t, "y.b.example.com", &matched), &tag[1]);
    assert_string_equal(matched, "*.b.example.com");
    assert_ptr_equal(hostname_table_lookup(t, "z.y.b.example.com", NULL), &tag[1]);
    assert_ptr_equal(hostname_table_lookup(t, "b.example.com", &matched), &tag[0]);
    assert_string_equal(matched, "*.example.com");
    assert_ptr_equal(hostname_table_lookup(t, "a.example.com", NULL), &tag[0]);
    assert_ptr_equal(hostname_table_lookup(t, "example.com", NULL), &tag[3]);
    matched = "unchanged";
    assert_null(hostname_table_lookup(t, "example.org", &matched));
    assert_string_equal(matched, "unchanged");
    assert_null(hostname_table_lookup(t, "com", NULL));
    assert_null(hostname_table_lookup(t, "aexample.com", NULL));
    hostname_table_free(t, NULL);
}

static void test_table_apex_is_not_matched_by_its_wildcard(void **state)
{
    struct hostname_table *t = hostname_table_new();

    (void)state;
    assert_int_equal(hostname_table_insert(t, "*.example.com", &tag[0], NULL), 0);
    assert_null(hostname_table_lookup(t, "example.com", NULL));
    assert_null(hostname_table_lookup_cert(t, "example.com", NULL));
    hostname_table_free(t, NULL);
}

static void test_table_cert_lookup_follows_one_label_rule(void **state)
{
    struct hostname_table *t = hostname_table_new();
    const char *matched = NULL;

    (void)state;
    assert_int_equal(hostname_table_insert(t, "*.example.com", &tag[0], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "www.example.com", &tag[1], NULL), 0);
    assert_ptr_equal(hostname_table_lookup_cert(t, "a.example.com", &matched), &tag[0]);
    assert_string_equal(matched, "*.example.com");
    assert_ptr_equal(hostname_table_lookup_cert(t, "www.example.com", NULL), &tag[1]);
    assert_null(hostname_table_lookup_cert(t, "a.b.example.com", NULL));
    assert_ptr_equal(hostname_table_lookup(t, "a.b.example.com", NULL), &tag[0]);
    assert_null(hostname_table_lookup_cert(t, "localhost", NULL));
    hostname_table_free(t, NULL);
}

static void test_table_insert_normalises_and_rejects_duplicates(void **state)
{
    struct hostname_table *t = hostname_table_new();
    const char *why = NULL;

    (void)state;
    assert_int_equal(hostname_table_insert(t, "App.Example.com.", &tag[0], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "app.example.com", &tag[1], NULL), CV_EEXIST);
    assert_int_equal(hostname_table_insert(t, "*.EXAMPLE.com", &tag[2], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "*.example.com.", &tag[3], NULL), CV_EEXIST);
    assert_int_equal(hostname_table_insert(t, "a.*.example.com", &tag[4], &why), CV_EINVAL);
    assert_string_equal(why, "\"*\" is only allowed as the first label");
    assert_int_equal(hostname_table_count(t), 2);
    assert_ptr_equal(hostname_table_get(t, "APP.example.com"), &tag[0]);
    assert_ptr_equal(hostname_table_get(t, "*.example.com"), &tag[2]);
    assert_null(hostname_table_get(t, "x.example.com")); /* get does not match wildcards */
    assert_null(hostname_table_get(t, "bad pattern"));
    hostname_table_free(t, NULL);
}

static void test_table_remove_falls_back_to_wildcard(void **state)
{
    struct hostname_table *t = hostname_table_new();
    void *v = NULL;

    (void)state;
    assert_int_equal(hostname_table_insert(t, "*.example.com", &tag[0], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "a.example.com", &tag[1], NULL), 0);
    assert_ptr_equal(hostname_table_lookup(t, "a.example.com", NULL), &tag[1]);
    assert_int_equal(hostname_table_remove(t, "A.example.com.", &v), 0);
    assert_ptr_equal(v, &tag[1]);
    assert_ptr_equal(hostname_table_lookup(t, "a.example.com", NULL), &tag[0]);
    assert_int_equal(hostname_table_remove(t, "a.example.com", NULL), CV_ENOTFOUND);
    assert_int_equal(hostname_table_remove(t, "*", NULL), CV_EINVAL);
    assert_int_equal(hostname_table_remove(t, "*.example.com", NULL), 0);
    assert_null(hostname_table_lookup(t, "a.example.com", NULL));
    assert_int_equal(hostname_table_count(t), 0);
    /* A removed name can be inserted again. */
    assert_int_equal(hostname_table_insert(t, "a.example.com", &tag[2], NULL), 0);
    assert_ptr_equal(hostname_table_lookup(t, "a.example.com", NULL), &tag[2]);
    hostname_table_free(t, NULL);
}

struct visit {
    char seen[8][HOSTNAME_MAX + 1];
    int count;
    int stop_at;
};

static int visit_cb(const char *pattern, void *value, void *arg)
{
    struct visit *v = arg;

    (void)value;
    snprintf(v->seen[v->count], sizeof(v->seen[0]), "%s", pattern);
    v->count++;
    return v->count == v->stop_at ? 42 : 0;
}

static void test_table_foreach_in_insertion_order_and_stops(void **state)
{
    struct hostname_table *t = hostname_table_new();
    struct visit v;

    (void)state;
    assert_int_equal(hostname_table_insert(t, "c.example", &tag[0], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "*.a.example", &tag[1], NULL), 0);
    assert_int_equal(hostname_table_insert(t, "b.example", &tag[2], NULL), 0);
    assert_int_equal(hostname_table_remove(t, "c.example", NULL), 0);
    assert_int_equal(hostname_table_insert(t, "C.example", &tag[3], NULL), 0);
    memset(&v, 0, sizeof(v));
    assert_int_equal(hostname_table_foreach(t, visit_cb, &v), 0);
    assert_int_equal(v.count, 3);
    assert_string_equal(v.seen[0], "*.a.example");
    assert_string_equal(v.seen[1], "b.example");
    assert_string_equal(v.seen[2], "c.example");
    memset(&v, 0, sizeof(v));
    v.stop_at = 2;
    assert_int_equal(hostname_table_foreach(t, visit_cb, &v), 42);
    assert_int_equal(v.count, 2);
    hostname_table_free(t, NULL);
}

static int freed;

static void count_free(void *value)
{
    (void)value;
    freed++;
}

static void test_table_many_entries_grow_and_free_values(void **state)
{
    long live = mem_live_count();
    struct hostname_table *t = hostname_table_new();
    char name[64];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "h%d.example.com", i);
        assert_int_equal(hostname_table_insert(t, name, (void *)(intptr_t)(i + 1), NULL), 0);
        snprintf(name, sizeof(name), "*.w%d.example.com", i);
        assert_int_equal(hostname_table_insert(t, name, (void *)(intptr_t)(-i - 1), NULL), 0);
    }
    assert_int_equal(hostname_table_count(t), 10000);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(name, sizeof(name), "h%d.example.com", i);
        assert_ptr_equal(hostname_table_lookup(t, name, NULL), (void *)(intptr_t)(i + 1));
        snprintf(name, sizeof(name), "x.y.w%d.example.com", i);
        assert_ptr_equal(hostname_table_lookup(t, name, NULL), (void *)(intptr_t)(-i - 1));
    }
    assert_null(hostname_table_lookup(t, "h5000.example.com", NULL));
    freed = 0;
    hostname_table_free(t, count_free);
    assert_int_equal(freed, 10000);
    assert_int_equal(mem_live_count(), live);
}

static void test_table_allocation_failures_leave_table_unchanged(void **state)
{
    long live = mem_live_count();
    int failures = 0;

    (void)state;
    mem_fail_after(1);
    assert_null(hostname_table_new());
    mem_fail_after(0);
    assert_int_equal(mem_live_count(), live);

    /* Fail each allocation of a run of inserts in turn (bucket array, growth, entry). */
    for (unsigned long n = 1; n < 64; n++) {
        struct hostname_table *t = hostname_table_new();
        char name[32];
        int rv = 0;
        int i;

        assert_non_null(t);
        mem_fail_after(n);
        for (i = 0; i < 20; i++) {
            snprintf(name, sizeof(name), "%s%d.example", i % 2 ? "*." : "", i);
            rv = hostname_table_insert(t, name, &tag[0], NULL);
            if (rv < 0)
                break;
        }
        mem_fail_after(0);
        if (rv < 0) {
            failures++;
            assert_int_equal(rv, CV_ENOMEM);
            assert_int_equal(hostname_table_count(t), (size_t)i);
            /* The failed name is absent; inserting it now works. */
            assert_null(hostname_table_get(t, name));
            assert_int_equal(hostname_table_insert(t, name, &tag[1], NULL), 0);
            assert_ptr_equal(hostname_table_get(t, name), &tag[1]);
        }
        hostname_table_free(t, NULL);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(failures > 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_lowercases_and_strips_one_trailing_dot),
        cmocka_unit_test(test_normalize_in_place_and_not_nul_terminated),
        cmocka_unit_test(test_normalize_rejects_each_bad_form_with_reason),
        cmocka_unit_test(test_normalize_length_limits),
        cmocka_unit_test(test_split_names_literals_and_ports),
        cmocka_unit_test(test_split_rejects_bad_hosts),
        cmocka_unit_test(test_pattern_parse_normalises_exact_and_wildcard),
        cmocka_unit_test(test_pattern_parse_rejects_misplaced_wildcards),
        cmocka_unit_test(test_route_match_any_depth_but_not_apex),
        cmocka_unit_test(test_cert_match_one_label_only),
        cmocka_unit_test(test_table_exact_beats_wildcard_and_longer_wildcard_wins),
        cmocka_unit_test(test_table_apex_is_not_matched_by_its_wildcard),
        cmocka_unit_test(test_table_cert_lookup_follows_one_label_rule),
        cmocka_unit_test(test_table_insert_normalises_and_rejects_duplicates),
        cmocka_unit_test(test_table_remove_falls_back_to_wildcard),
        cmocka_unit_test(test_table_foreach_in_insertion_order_and_stops),
        cmocka_unit_test(test_table_many_entries_grow_and_free_values),
        cmocka_unit_test(test_table_allocation_failures_leave_table_unchanged),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
