/*
 * test_config.c - value parsers of common/config.c: durations, sizes, booleans, integers,
 * addresses, paths, and the formatters that must read back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "err.h"

static uint64_t dur_ok(const char *s, unsigned flags)
{
    uint64_t ms = 12345;
    const char *why = NULL;

    assert_int_equal(config_parse_duration(s, flags, &ms, &why), 0);
    assert_null(why);
    return ms;
}

static const char *dur_bad(const char *s, unsigned flags)
{
    uint64_t ms = 777;
    const char *why = NULL;

    assert_int_equal(config_parse_duration(s, flags, &ms, &why), CV_EINVAL);
    assert_non_null(why);
    assert_int_equal(ms, 777); /* untouched on failure */
    return why;
}

static void test_duration_accepts_units_and_combinations(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("30s", 0), 30000);
    assert_int_equal(dur_ok("5m", 0), 300000);
    assert_int_equal(dur_ok("1h", 0), 3600000);
    assert_int_equal(dur_ok("250ms", 0), 250);
    assert_int_equal(dur_ok("1h30m", 0), 5400000);
    assert_int_equal(dur_ok("1m30s", 0), 90000);
    assert_int_equal(dur_ok("1h30m0s", 0), 5400000); /* Go's Duration.String() */
    assert_int_equal(dur_ok("2h0m0s", 0), 7200000);
    assert_int_equal(dur_ok("1s500ms", 0), 1500);
    assert_int_equal(dur_ok("1.5s", 0), 1500);
    assert_int_equal(dur_ok("0.25s", 0), 250);
    assert_int_equal(dur_ok("1.5h", 0), 5400000);
    assert_int_equal(dur_ok("0", 0), 0);
    assert_int_equal(dur_ok("0s", 0), 0);
    assert_int_equal(dur_ok("600s", 0), 600000);
}

static void test_duration_plain_integer_needs_flag(void **state)
{
    (void)state;
    assert_string_equal(dur_bad("30", 0), "a duration needs a unit (for example 30s, 5m, 1h, 250ms)");
    assert_int_equal(dur_ok("30", CONFIG_DUR_PLAIN_SECONDS), 30000);
    dur_bad("030", CONFIG_DUR_PLAIN_SECONDS);
}

static void test_duration_rejects_malformed(void **state)
{
    (void)state;
    dur_bad("", 0);
    dur_bad("-5s", 0);
    dur_bad("+5s", 0);
    dur_bad(" 5s", 0);
    dur_bad("5s ", 0);
    dur_bad("5 s", 0);
    dur_bad("5x", 0);
    dur_bad("s", 0);
    dur_bad("5", 0);
    dur_bad("1.s", 0);
    dur_bad(".5s", 0);
    dur_bad("1m1h", 0);  /* order */
    dur_bad("1s1s", 0);  /* repeated */
    dur_bad("5m3", 0);   /* trailing number */
    dur_bad("1d", 0);
    assert_string_equal(dur_bad("10us", 0), "durations below a millisecond are not supported");
    dur_bad("10ns", 0);
    assert_string_equal(dur_bad("1.5ms", 0), "duration is not a whole number of milliseconds");
    dur_bad("0.0001s", 0);
    dur_bad("1.0000000001s", 0); /* too many decimals */
}

static void test_duration_overflow_is_rejected(void **state)
{
    (void)state;
    /* UINT64_MAX ms = 18446744073709551615. */
    assert_int_equal(dur_ok("18446744073709551615ms", 0), UINT64_MAX);
    assert_string_equal(dur_bad("18446744073709551616ms", 0), "duration too large");
    dur_bad("18446744073709551615s", 0);
    dur_bad("5124095576031h", 0);
    assert_int_equal(dur_ok("5124095576030h", 0), 5124095576030ULL * 3600000ULL);
    assert_int_equal(dur_ok("5124095576030h25m51s615ms", 0), UINT64_MAX);
    /* Sum overflow across groups. */
    assert_string_equal(dur_bad("5124095576030h25m51s616ms", 0), "duration too large");
    dur_bad("5124095576030h26m", 0);
    dur_bad("5124095576030h1h", 0); /* order checked too */
    dur_bad("99999999999999999999999s", 0);
    dur_bad("18446744073709551615", CONFIG_DUR_PLAIN_SECONDS);
}

static void check_format_duration(uint64_t ms, const char *want)
{
    char buf[64];
    uint64_t back;

    assert_int_equal(config_format_duration(ms, buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, want);
    assert_int_equal(config_parse_duration(buf, 0, &back, NULL), 0);
    assert_int_equal(back, ms);
}

static void test_format_duration_reads_back(void **state)
{
    char small[4];

    (void)state;
    check_format_duration(0, "0s");
    check_format_duration(250, "250ms");
    check_format_duration(30000, "30s");
    check_format_duration(90000, "1m30s");
    check_format_duration(5400000, "1h30m");
    check_format_duration(3600000 + 1, "1h1ms");
    check_format_duration(UINT64_MAX, "5124095576030h25m51s615ms");
    /* Truncation keeps a NUL and reports the full length. */
    assert_int_equal(config_format_duration(5400000, small, sizeof(small)), 5);
    assert_string_equal(small, "1h3");
}

static uint64_t size_ok(const char *s)
{
    uint64_t v = 1;

    assert_int_equal(config_parse_size(s, &v, NULL), 0);
    return v;
}

static const char *size_bad(const char *s)
{
    uint64_t v = 99;
    const char *why = NULL;

    assert_int_equal(config_parse_size(s, &v, &why), CV_EINVAL);
    assert_int_equal(v, 99);
    assert_non_null(why);
    return why;
}

static void test_size_binary_and_decimal_units(void **state)
{
    (void)state;
    assert_int_equal(size_ok("512"), 512);
    assert_int_equal(size_ok("0"), 0);
    assert_int_equal(size_ok("512B"), 512);
    assert_int_equal(size_ok("64KiB"), 65536);
    assert_int_equal(size_ok("6MiB"), 6 * 1048576);
    assert_int_equal(size_ok("1GiB"), 1073741824);
    assert_int_equal(size_ok("2TiB"), 2ULL << 40);
    assert_int_equal(size_ok("64KB"), 64000);
    assert_int_equal(size_ok("64kB"), 64000);
    assert_int_equal(size_ok("6MB"), 6000000);
    assert_int_equal(size_ok("1GB"), 1000000000);
    assert_int_equal(size_ok("1TB"), 1000000000000ULL);
}

static void test_size_rejects_ambiguous_and_malformed(void **state)
{
    (void)state;
    assert_string_equal(size_bad("64K"),
                        "ambiguous size unit: write KiB, MiB, GiB (1024) or KB, MB, GB (1000)");
    size_bad("6M");
    size_bad("1g");
    assert_string_equal(size_bad("1.5MiB"), "a size must be a whole number (write 1536KiB, not 1.5MiB)");
    size_bad("64 KiB");
    size_bad("64kib");
    size_bad("64KiBs");
    size_bad("");
    size_bad("-1");
    size_bad("+1");
    size_bad("KiB");
    size_bad("012");
    size_bad("0x10");
    /* Overflow of the number and of the multiplication. */
    assert_int_equal(size_ok("18446744073709551615"), UINT64_MAX);
    assert_string_equal(size_bad("18446744073709551616"), "size too large");
    size_bad("16777216TiB");
    assert_int_equal(size_ok("16777215TiB"), 16777215ULL << 40);
}

static void test_format_size_uses_largest_exact_unit(void **state)
{
    char buf[32];
    uint64_t back;

    (void)state;
    config_format_size(65536, buf, sizeof(buf));
    assert_string_equal(buf, "64KiB");
    config_format_size(6 * 1048576, buf, sizeof(buf));
    assert_string_equal(buf, "6MiB");
    config_format_size(1000, buf, sizeof(buf));
    assert_string_equal(buf, "1000");
    config_format_size(0, buf, sizeof(buf));
    assert_string_equal(buf, "0");
    config_format_size(1536 * 1024, buf, sizeof(buf));
    assert_string_equal(buf, "1536KiB");
    assert_int_equal(config_parse_size(buf, &back, NULL), 0);
    assert_int_equal(back, 1536 * 1024);
}

static void test_bool_yaml11_forms(void **state)
{
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES",
                                      "on", "On", "ON", "y", "Y"};
    static const char *const no[] = {"false", "False", "FALSE", "no", "No", "NO",
                                     "off", "Off", "OFF", "n", "N"};
    static const char *const bad[] = {"", "tRUE", "1", "0", "yess", "enable", " true", "t"};
    bool b;

    (void)state;
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        b = false;
        assert_int_equal(config_parse_bool(yes[i], &b, NULL), 0);
        assert_true(b);
        b = true;
        assert_int_equal(config_parse_bool(no[i], &b, NULL), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;

        assert_int_equal(config_parse_bool(bad[i], &b, &why), CV_EINVAL);
        assert_string_equal(why, "expected a boolean (true or false)");
    }
}

static void test_int_ranges_and_format(void **state)
{
    int64_t v = 5;
    const char *why;

    (void)state;
    assert_int_equal(config_parse_int("42", 0, 100, &v, NULL), 0);
    assert_int_equal(v, 42);
    assert_int_equal(config_parse_int("-7", -10, 10, &v, NULL), 0);
    assert_int_equal(v, -7);
    assert_int_equal(config_parse_int("0", 0, 0, &v, NULL), 0);
    assert_int_equal(v, 0);
    assert_int_equal(config_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(config_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v, NULL), 0);
    assert_true(v == INT64_MIN);
    v = 5;
    assert_int_equal(config_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v, &why),
                     CV_EINVAL);
    assert_string_equal(why, "number out of range");
    assert_int_equal(config_parse_int("101", 0, 100, &v, &why), CV_EINVAL);
    assert_string_equal(why, "number too large");
    assert_int_equal(config_parse_int("-1", 0, 100, &v, &why), CV_EINVAL);
    assert_string_equal(why, "number too small");
    assert_int_equal(config_parse_int("007", 0, 100, &v, &why), CV_EINVAL);
    assert_int_equal(config_parse_int("+7", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(config_parse_int("0x10", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(config_parse_int("", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(config_parse_int("-", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(config_parse_int("1 ", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(config_parse_int("1.0", 0, 100, &v, NULL), CV_EINVAL);
    assert_int_equal(v, 5);
}

static void test_addr_host_port_forms(void **state)
{
    struct config_addr a;
    char text[300];

    (void)state;
    assert_int_equal(config_parse_addr("Edge.Example.COM:7844", 0, &a, NULL), 0);
    assert_int_equal(a.kind, CONFIG_ADDR_TCP);
    assert_int_equal(a.host_kind, HOSTNAME_NAME);
    assert_string_equal(a.host, "edge.example.com");
    assert_int_equal(a.port, 7844);
    config_format_addr(&a, text, sizeof(text));
    assert_string_equal(text, "edge.example.com:7844");

    assert_int_equal(config_parse_addr("127.0.0.1:7845", 0, &a, NULL), 0);
    assert_int_equal(a.host_kind, HOSTNAME_IPV4);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 7845);

    assert_int_equal(config_parse_addr("[::1]:8443", 0, &a, NULL), 0);
    assert_int_equal(a.host_kind, HOSTNAME_IPV6);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 8443);
    config_format_addr(&a, text, sizeof(text));
    assert_string_equal(text, "[::1]:8443");

    assert_int_equal(config_parse_addr("[2001:DB8:0:0:0:0:0:1]:443", 0, &a, NULL), 0);
    assert_string_equal(a.host, "2001:db8::1");

    assert_int_equal(config_parse_addr("localhost:65535", 0, &a, NULL), 0);
    assert_int_equal(a.port, 65535);
}

static void test_addr_rejects_bad_ports_and_hosts(void **state)
{
    static const char *const bad[] = {
        "",           "example.com",      "example.com:",      ":443",
        "example.com:0", "example.com:65536", "example.com:08080", "example.com:http",
        "example.com:-1", "::1:443",          "[::1]",              "[::1]443",
        "[::1:443",    "[fe80::1%eth0]:443", "user@host:443",     "exa mple.com:80",
        "ex_ample.com:80", "256.1.1.1:80",    "1.2.3:80",           "[1.2.3.4]:80",
        "example.com:99999999999999999999",
    };
    struct config_addr a;

    (void)state;
    memset(&a, 0x5a, sizeof(a));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;

        if (config_parse_addr(bad[i], 0, &a, &why) != CV_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(why);
    }
    assert_int_equal(a.port, 0x5a5a); /* untouched */
}

static void test_addr_port_zero_and_unix_need_flags(void **state)
{
    struct config_addr a;
    const char *why;
    char text[200];

    (void)state;
    assert_int_equal(config_parse_addr("127.0.0.1:0", 0, &a, NULL), CV_EINVAL);
    assert_int_equal(config_parse_addr("127.0.0.1:0", CONFIG_ADDR_ALLOW_PORT0, &a, NULL), 0);
    assert_int_equal(a.port, 0);

    assert_int_equal(config_parse_addr("unix:/run/culvert/admin.sock", 0, &a, &why), CV_EINVAL);
    assert_string_equal(why, "a unix socket is not allowed here (write host:port)");
    assert_int_equal(config_parse_addr("unix:/run/culvert/admin.sock", CONFIG_ADDR_ALLOW_UNIX, &a,
                                       NULL),
                     0);
    assert_int_equal(a.kind, CONFIG_ADDR_UNIX);
    assert_string_equal(a.path, "/run/culvert/admin.sock");
    config_format_addr(&a, text, sizeof(text));
    assert_string_equal(text, "unix:/run/culvert/admin.sock");
    assert_int_equal(config_parse_addr("unix:", CONFIG_ADDR_ALLOW_UNIX, &a, &why), CV_EINVAL);
    assert_string_equal(why, "empty unix socket path");
    {
        char longpath[5 + 109];

        memcpy(longpath, "unix:", 5);
        memset(longpath + 5, 'a', 108);
        longpath[5 + 108] = '\0';
        assert_int_equal(config_parse_addr(longpath, CONFIG_ADDR_ALLOW_UNIX, &a, &why), CV_EINVAL);
        longpath[5 + 107] = '\0';
        assert_int_equal(config_parse_addr(longpath, CONFIG_ADDR_ALLOW_UNIX, &a, &why), 0);
    }
}

static void test_check_path(void **state)
{
    char big[4097];
    const char *why;

    (void)state;
    assert_int_equal(config_check_path("/etc/culvert/edge.yml", CONFIG_PATH_ABSOLUTE, NULL), 0);
    assert_int_equal(config_check_path("tls/cert.pem", 0, NULL), 0);
    assert_int_equal(config_check_path("tls/cert.pem", CONFIG_PATH_ABSOLUTE, &why), CV_EINVAL);
    assert_string_equal(why, "the path must be absolute (start with \"/\")");
    assert_int_equal(config_check_path("", 0, NULL), CV_EINVAL);
    assert_int_equal(config_check_path("/a\nb", 0, &why), CV_EINVAL);
    assert_string_equal(why, "control characters are not allowed in a path");
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(config_check_path(big, 0, NULL), CV_EINVAL);
    big[4095] = '\0';
    assert_int_equal(config_check_path(big, 0, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_accepts_units_and_combinations),
        cmocka_unit_test(test_duration_plain_integer_needs_flag),
        cmocka_unit_test(test_duration_rejects_malformed),
        cmocka_unit_test(test_duration_overflow_is_rejected),
        cmocka_unit_test(test_format_duration_reads_back),
        cmocka_unit_test(test_size_binary_and_decimal_units),
        cmocka_unit_test(test_size_rejects_ambiguous_and_malformed),
        cmocka_unit_test(test_format_size_uses_largest_exact_unit),
        cmocka_unit_test(test_bool_yaml11_forms),
        cmocka_unit_test(test_int_ranges_and_format),
        cmocka_unit_test(test_addr_host_port_forms),
        cmocka_unit_test(test_addr_rejects_bad_ports_and_hosts),
        cmocka_unit_test(test_addr_port_zero_and_unix_need_flags),
        cmocka_unit_test(test_check_path),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
