/*
 * test_json.c - the strict JSON parser (RFC 8259) and the writer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "mem.h"

static struct json_value *parse_ok(const char *text)
{
    struct json_value *v = NULL;
    struct json_error e;
    int rv = json_parse(text, strlen(text), NULL, &v, &e);

    if (rv != 0)
        fail_msg("\"%s\" rejected: %s", text, e.msg);
    return v;
}

/* Expects |text| to fail with |code| at |offset| (SIZE_MAX: any). Returns the reason. */
static const char *parse_bad_n(const char *text, size_t n, int code, size_t offset)
{
    static struct json_error e;
    struct json_value *v = (struct json_value *)1;
    int rv = json_parse(text, n, NULL, &v, &e);

    if (rv != code)
        fail_msg("\"%.*s\": got %d, want %d", (int)n, text, rv, code);
    assert_null(v);
    if (offset != SIZE_MAX && e.offset != offset)
        fail_msg("\"%.*s\": offset %zu, want %zu (%s)", (int)n, text, e.offset, offset, e.msg);
    return e.reason;
}

static const char *parse_bad(const char *text, size_t offset)
{
    return parse_bad_n(text, strlen(text), CV_EPARSE, offset);
}

static void test_parse_object_keeps_order_and_types(void **state)
{
    struct json_value *v = parse_ok(
        " {\"z\": 1, \"a\": [true, false, null, \"s\", -2.5e1], \"m\": {\"k\": \"v\"}, \"e\": {}} \n");
    const struct json_value *a;
    size_t len;
    bool b;
    double d;

    (void)state;
    assert_int_equal(json_typeof(v), JSON_OBJECT);
    assert_int_equal(json_object_count(v), 4);
    assert_string_equal(json_object_key(v, 0, &len), "z");
    assert_int_equal(len, 1);
    assert_string_equal(json_object_key(v, 1, NULL), "a");
    assert_string_equal(json_object_key(v, 2, NULL), "m");
    assert_string_equal(json_object_key(v, 3, NULL), "e");
    assert_null(json_object_key(v, 4, NULL));
    assert_ptr_equal(json_object_value(v, 1), json_object_get(v, "a"));
    a = json_object_get(v, "a");
    assert_int_equal(json_array_count(a), 5);
    assert_int_equal(json_as_bool(json_array_at(a, 0), &b), 0);
    assert_true(b);
    assert_int_equal(json_as_bool(json_array_at(a, 1), &b), 0);
    assert_false(b);
    assert_true(json_is_null(json_array_at(a, 2)));
    assert_string_equal(json_as_string(json_array_at(a, 3), &len), "s");
    assert_int_equal(json_as_double(json_array_at(a, 4), &d), 0);
    assert_true(d == -25.0);
    assert_null(json_array_at(a, 5));
    assert_string_equal(json_as_string(json_object_get(json_object_get(v, "m"), "k"), NULL), "v");
    assert_int_equal(json_object_count(json_object_get(v, "e")), 0);
    assert_null(json_object_get(v, "missing"));
    assert_null(json_object_get(a, "a"));
    /* Wrong-type reads. */
    assert_null(json_as_string(a, NULL));
    assert_int_equal(json_as_bool(a, &b), CV_EINVAL);
    assert_int_equal(json_as_double(a, &d), CV_EINVAL);
    assert_false(json_is_null(NULL));
    assert_int_equal(json_array_count(v), 0);
    json_free(v);
    json_free(NULL);
}

static void test_object_get_with_many_keys(void **state)
{
    char *text = malloc(20 * 500 + 16);
    size_t o = 0;
    struct json_value *v;
    char key[16];
    int64_t n;

    (void)state;
    text[o++] = '{';
    for (int i = 499; i >= 0; i--)
        o += (size_t)sprintf(text + o, "%s\"k%d\":%d", i == 499 ? "" : ",", i, i);
    text[o++] = '}';
    text[o] = '\0';
    v = parse_ok(text);
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(json_as_int64(json_object_get(v, key), &n), 0);
        assert_int_equal(n, i);
    }
    json_free(v);
    free(text);
}

static void test_string_escapes_and_surrogate_pairs(void **state)
{
    struct json_value *v;
    size_t len;
    const char *s;

    (void)state;
    v = parse_ok("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"");
    assert_string_equal(json_as_string(v, NULL), "a\"b\\c/d\b\f\n\r\t");
    json_free(v);
    v = parse_ok("\"\\u00e9\\u20AC\\ud83d\\ude00\"");
    assert_string_equal(json_as_string(v, &len), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    assert_int_equal(len, 9);
    json_free(v);
    v = parse_ok("\"x\\u0000y\"");
    s = json_as_string(v, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "x\0y", 3);
    json_free(v);
    v = parse_ok("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    assert_string_equal(json_as_string(v, NULL), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    json_free(v);

    assert_string_equal(parse_bad("\"\\ud83d\"", 1), "high surrogate not followed by a low surrogate");
    assert_string_equal(parse_bad("\"\\ud83dx\"", 1), "high surrogate not followed by a low surrogate");
    assert_string_equal(parse_bad("\"\\ud83d\\u0041\"", 1),
                        "high surrogate not followed by a low surrogate");
    assert_string_equal(parse_bad("\"\\ude00\"", 1), "lone low surrogate in \\u escape");
    assert_string_equal(parse_bad("\"\\u12\"", 1), "invalid \\u escape");
    assert_string_equal(parse_bad("\"\\u12g4\"", 1), "invalid \\u escape");
    assert_string_equal(parse_bad("\"\\x41\"", 1), "invalid escape in string");
    assert_string_equal(parse_bad("\"\\'\"", 1), "invalid escape in string");
    assert_string_equal(parse_bad("\"a\nb\"", 2), "control character in string (must be escaped)");
    assert_string_equal(parse_bad("\"a\tb\"", 2), "control character in string (must be escaped)");
    assert_string_equal(parse_bad("\"abc", 0), "unterminated string");
    assert_string_equal(parse_bad("\"abc\\\"", 0), "unterminated string");
}

static void test_invalid_utf8_is_rejected(void **state)
{
    static const char *const bad[] = {
        "\"\xc0\x80\"",         /* overlong NUL */
        "\"\xc1\xbf\"",         /* overlong */
        "\"\xe0\x80\xaf\"",     /* overlong '/' */
        "\"\xed\xa0\x80\"",     /* UTF-16 surrogate encoded in UTF-8 */
        "\"\xf0\x80\x80\xaf\"", /* overlong */
        "\"\xf4\x90\x80\x80\"", /* past U+10FFFF */
        "\"\xf5\x80\x80\x80\"",
        "\"\xff\"",
        "\"\x80\"",             /* lone continuation */
        "\"\xc3\"",             /* truncated */
        "\"\xe2\x82\"",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_string_equal(parse_bad(bad[i], 1), "invalid UTF-8 in string");
    /* Outside strings any byte >= 0x80 is just unexpected. */
    assert_string_equal(parse_bad("\xef\xbb\xbf{}", 0), "unexpected character"); /* BOM */
}

static void test_numbers_follow_the_grammar(void **state)
{
    static const char *const good[] = {"0", "-0", "1", "-12", "1.5", "1e3", "1E+2", "2.5e-3",
                                       "123456789012345678901234567890"};
    static const char *const bad[] = {"01", "-01", "1.", ".5", "+1", "1e", "1e+", "-", "--1",
                                      "0x10", "NaN", "Infinity", "-Infinity", "1.e3", "1e400",
                                      "-1e400"};
    double d;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        json_free(parse_ok(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], SIZE_MAX);
    {
        struct json_value *v = parse_ok("2.5e-3");

        assert_int_equal(json_as_double(v, &d), 0);
        assert_true(d == 2.5e-3);
        json_free(v);
    }
    assert_string_equal(parse_bad("01", 1), "leading zeros are not allowed in numbers");
    assert_string_equal(parse_bad("1e400", 0), "number out of range");
}

static void test_int64_getter_is_exact(void **state)
{
    struct json_value *v;
    int64_t n = 7;

    (void)state;
    v = parse_ok("[9007199254740993, 9223372036854775807, -9223372036854775808, 9223372036854775808,"
                 " 1.0, 1e2, -0, -9223372036854775809, 99999999999999999999999]");
    assert_int_equal(json_as_int64(json_array_at(v, 0), &n), 0);
    assert_true(n == 9007199254740993LL); /* not representable as a double */
    assert_int_equal(json_as_int64(json_array_at(v, 1), &n), 0);
    assert_true(n == INT64_MAX);
    assert_int_equal(json_as_int64(json_array_at(v, 2), &n), 0);
    assert_true(n == INT64_MIN);
    n = 7;
    assert_int_equal(json_as_int64(json_array_at(v, 3), &n), CV_EINVAL);
    assert_int_equal(json_as_int64(json_array_at(v, 4), &n), CV_EINVAL);
    assert_int_equal(json_as_int64(json_array_at(v, 5), &n), CV_EINVAL);
    assert_int_equal(n, 7);
    assert_int_equal(json_as_int64(json_array_at(v, 6), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(json_as_int64(json_array_at(v, 7), &n), CV_EINVAL);
    assert_int_equal(json_as_int64(json_array_at(v, 8), &n), CV_EINVAL);
    assert_int_equal(json_as_int64(v, &n), CV_EINVAL);
    json_free(v);
}

static void test_structure_errors_with_offsets(void **state)
{
    (void)state;
    assert_string_equal(parse_bad("", 0), "unexpected end of input");
    assert_string_equal(parse_bad("   ", 3), "unexpected end of input");
    assert_string_equal(parse_bad("{\"a\" 1}", 5), "expected ':' after an object key");
    assert_string_equal(parse_bad("{\"a\":1,}", 7), "expected a string key in object");
    assert_string_equal(parse_bad("[1,]", 3), "unexpected character");
    assert_string_equal(parse_bad("[1 2]", 3), "expected ',' or ']' in array");
    assert_string_equal(parse_bad("{\"a\":1 \"b\":2}", 7), "expected ',' or '}' in object");
    assert_string_equal(parse_bad("{a:1}", 1), "expected a string key in object");
    assert_string_equal(parse_bad("{'a':1}", 1), "expected a string key in object");
    assert_string_equal(parse_bad("{} {}", 3), "unexpected data after the value");
    assert_string_equal(parse_bad("[1] // c", 4), "unexpected data after the value");
    assert_string_equal(parse_bad("/* c */ 1", 0), "unexpected character");
    assert_string_equal(parse_bad("tru", 0), "invalid literal");
    assert_string_equal(parse_bad("nul", 0), "invalid literal");
    assert_string_equal(parse_bad("True", 0), "unexpected character");
    assert_string_equal(parse_bad("[", 1), "unexpected end of input");
    assert_string_equal(parse_bad("{\"a\":", 5), "unexpected end of input");
    assert_string_equal(parse_bad_n("[1]\0", 4, CV_EPARSE, 3), "unexpected data after the value");
    {
        struct json_error e;
        struct json_value *v;

        assert_int_equal(json_parse("{\"a\" 1}", 7, NULL, &v, &e), CV_EPARSE);
        assert_string_equal(e.msg, "byte 5: expected ':' after an object key");
        assert_int_equal(json_parse("{\"a\" 1}", 7, NULL, &v, NULL), CV_EPARSE); /* err optional */
    }
}

static void test_duplicate_keys_are_rejected(void **state)
{
    (void)state;
    assert_string_equal(parse_bad("{\"a\":1,\"a\":2}", 7), "duplicate key in object");
    assert_string_equal(parse_bad("{\"x\":{\"b\":1,\"c\":2,\"b\":3}}", 18), "duplicate key in object");
    /* The first repeat in input order is reported. */
    parse_bad("{\"z\":1,\"y\":1,\"y\":2,\"z\":2}", 13);
    /* Escaped and plain spellings decode to the same key. */
    parse_bad("{\"a\":1,\"\\u0061\":2}", 7);
    json_free(parse_ok("{\"a\":{\"a\":1},\"b\":{\"a\":2}}"));
}

static void test_depth_and_size_limits(void **state)
{
    char deep[80];
    struct json_limits lim = {16, 2};
    struct json_value *v;
    struct json_error e;

    (void)state;
    memset(deep, '[', 32);
    memset(deep + 32, ']', 32);
    deep[64] = '\0';
    json_free(parse_ok(deep));
    memset(deep, '[', 33);
    memset(deep + 33, ']', 33);
    deep[66] = '\0';
    assert_string_equal(parse_bad(deep, 32), "nesting too deep");

    assert_int_equal(json_parse("[[1]]", 5, &lim, &v, &e), 0);
    json_free(v);
    assert_int_equal(json_parse("[[[1]]]", 7, &lim, &v, &e), CV_EPARSE);
    assert_int_equal(e.offset, 2);
    assert_int_equal(json_parse("[1,2,3,4,5,6,7,8,9]", 19, &lim, &v, &e), CV_ELIMIT);
    assert_string_equal(e.reason, "input too long");
    assert_null(v);
}

static void test_parse_allocation_failures_fail_cleanly(void **state)
{
    static const char text[] = "{\"a\":[1,\"two\",{\"b\":null,\"c\":[true,false]}],\"d\":\"\\u00e9\","
                               "\"e\":-1.5,\"f\":{}}";
    long live = mem_live_count();
    int failures = 0;
    unsigned long n;

    (void)state;
    for (n = 1; n < 500; n++) {
        struct json_value *v = (struct json_value *)1;
        int rv;

        mem_fail_after(n);
        rv = json_parse(text, strlen(text), NULL, &v, NULL);
        mem_fail_after(0);
        if (rv == 0) {
            json_free(v);
            break;
        }
        failures++;
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(v);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n < 500);
    assert_true(failures >= 10);
    assert_int_equal(mem_live_count(), live);
}

/* ---- writer ------------------------------------------------------------------------------- */

static char *text_of(struct buf *b)
{
    static char out[4096];
    size_t n = buf_len(b);

    assert_true(n < sizeof(out));
    memcpy(out, b->pos, n);
    out[n] = '\0';
    return out;
}

static void write_sample(struct json_writer *w)
{
    json_w_object_begin(w);
    json_w_key(w, "id");
    json_w_string(w, "6ff42ae2");
    json_w_key(w, "connectors");
    json_w_int(w, 2);
    json_w_key(w, "routes");
    json_w_array_begin(w);
    json_w_string(w, "a.example.com");
    json_w_bool(w, true);
    json_w_null(w);
    json_w_array_end(w);
    json_w_key(w, "empty");
    json_w_array_begin(w);
    json_w_array_end(w);
    json_w_key(w, "nested");
    json_w_object_begin(w);
    json_w_key(w, "rtt_ms");
    json_w_double(w, 1.25);
    json_w_object_end(w);
    json_w_object_end(w);
}

static void test_writer_compact_and_pretty(void **state)
{
    struct json_writer w;
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    write_sample(&w);
    assert_int_equal(json_w_finish(&w), 0);
    assert_string_equal(text_of(&b), "{\"id\":\"6ff42ae2\",\"connectors\":2,\"routes\":[\"a.example.com\","
                                     "true,null],\"empty\":[],\"nested\":{\"rtt_ms\":1.25}}");
    buf_cleanup(&b);

    buf_init(&b, 4096);
    json_w_init(&w, &b, JSON_W_PRETTY);
    write_sample(&w);
    assert_int_equal(json_w_finish(&w), 0);
    assert_string_equal(text_of(&b), "{\n"
                                     "  \"id\": \"6ff42ae2\",\n"
                                     "  \"connectors\": 2,\n"
                                     "  \"routes\": [\n"
                                     "    \"a.example.com\",\n"
                                     "    true,\n"
                                     "    null\n"
                                     "  ],\n"
                                     "  \"empty\": [],\n"
                                     "  \"nested\": {\n"
                                     "    \"rtt_ms\": 1.25\n"
                                     "  }\n"
                                     "}");
    buf_cleanup(&b);
}

static void test_write_string_escapes(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(json_write_string(&b, "a\"b\\c\n\r\t\b\f\x01\x1f\x7f/", 14), 0);
    assert_string_equal(text_of(&b), "\"a\\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\x7f/\"");
    buf_consume(&b, buf_len(&b));
    assert_int_equal(json_write_string(&b, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10), 0);
    assert_string_equal(text_of(&b), "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");
    buf_consume(&b, buf_len(&b));
    /* Each invalid byte becomes U+FFFD; the valid rest is kept. */
    assert_int_equal(json_write_string(&b, "a\xff" "b\xc3\xed\xa0\x80" "c", 8), 0);
    assert_string_equal(text_of(&b), "\"a\\ufffdb\\ufffd\\ufffd\\ufffd\\ufffdc\"");
    buf_consume(&b, buf_len(&b));
    assert_int_equal(json_write_string(&b, "x\0y", 3), 0);
    assert_string_equal(text_of(&b), "\"x\\u0000y\"");
    buf_consume(&b, buf_len(&b));
    assert_int_equal(json_write_string(&b, "", 0), 0);
    assert_string_equal(text_of(&b), "\"\"");
    buf_cleanup(&b);
}

static void test_write_string_full_buffer_leaves_it_unchanged(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_append(&b, "[", 1), 0);
    assert_int_equal(json_write_string(&b, "abcdefgh", 8), CV_EFULL);
    assert_int_equal(buf_len(&b), 1);
    /* Fails halfway (after "\"a"): what was appended is taken back. */
    assert_int_equal(json_write_string(&b, "a\x01" "b", 3), CV_EFULL);
    assert_int_equal(buf_len(&b), 1);
    assert_int_equal(json_write_string(&b, "abcd", 4), 0);
    assert_string_equal(text_of(&b), "[\"abcd\"");
    buf_cleanup(&b);
}

static void test_writer_numbers(void **state)
{
    struct json_writer w;
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_array_begin(&w);
    json_w_int(&w, INT64_MIN);
    json_w_uint(&w, UINT64_MAX);
    json_w_double(&w, 0.1);
    json_w_double(&w, 1e300);
    json_w_double(&w, -2.5);
    json_w_double(&w, 1.0 / 3.0);
    json_w_array_end(&w);
    assert_int_equal(json_w_finish(&w), 0);
    assert_string_equal(text_of(&b), "[-9223372036854775808,18446744073709551615,0.1,1e+300,-2.5,"
                                     "0.3333333333333333]");
    {
        /* What the writer wrote reads back to the same doubles. */
        struct json_value *v = NULL;
        double d;

        assert_int_equal(json_parse((const char *)b.pos, buf_len(&b), NULL, &v, NULL), 0);
        assert_int_equal(json_as_double(json_array_at(v, 5), &d), 0);
        assert_true(d == 1.0 / 3.0);
        json_free(v);
    }
    buf_cleanup(&b);

    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_double(&w, NAN);
    assert_int_equal(json_w_finish(&w), CV_EINVAL);
    buf_cleanup(&b);
    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    json_w_double(&w, INFINITY);
    assert_int_equal(json_w_finish(&w), CV_EINVAL);
    assert_int_equal(buf_len(&b), 0);
    buf_cleanup(&b);
}

static int misuse(void (*script)(struct json_writer *w))
{
    struct json_writer w;
    struct buf b;
    int rv;

    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    script(&w);
    rv = json_w_finish(&w);
    buf_cleanup(&b);
    return rv;
}

static void value_without_key(struct json_writer *w)
{
    json_w_object_begin(w);
    json_w_int(w, 1);
    json_w_object_end(w);
}

static void key_in_array(struct json_writer *w)
{
    json_w_array_begin(w);
    json_w_key(w, "k");
    json_w_array_end(w);
}

static void key_without_value(struct json_writer *w)
{
    json_w_object_begin(w);
    json_w_key(w, "k");
    json_w_object_end(w);
}

static void two_keys(struct json_writer *w)
{
    json_w_object_begin(w);
    json_w_key(w, "k");
    json_w_key(w, "l");
    json_w_int(w, 1);
    json_w_object_end(w);
}

static void wrong_end(struct json_writer *w)
{
    json_w_array_begin(w);
    json_w_object_end(w);
}

static void unclosed(struct json_writer *w)
{
    json_w_array_begin(w);
    json_w_int(w, 1);
}

static void two_values(struct json_writer *w)
{
    json_w_int(w, 1);
    json_w_int(w, 2);
}

static void nothing(struct json_writer *w)
{
    (void)w;
}

static void top_level_key(struct json_writer *w)
{
    json_w_key(w, "k");
}

static void too_deep(struct json_writer *w)
{
    for (int i = 0; i < JSON_WRITER_MAX_DEPTH + 1; i++)
        json_w_array_begin(w);
}

static void deepest_ok(struct json_writer *w)
{
    for (int i = 0; i < JSON_WRITER_MAX_DEPTH; i++)
        json_w_array_begin(w);
    for (int i = 0; i < JSON_WRITER_MAX_DEPTH; i++)
        json_w_array_end(w);
}

static void test_writer_rejects_misuse(void **state)
{
    (void)state;
    assert_int_equal(misuse(value_without_key), CV_EINVAL);
    assert_int_equal(misuse(key_in_array), CV_EINVAL);
    assert_int_equal(misuse(key_without_value), CV_EINVAL);
    assert_int_equal(misuse(two_keys), CV_EINVAL);
    assert_int_equal(misuse(wrong_end), CV_EINVAL);
    assert_int_equal(misuse(unclosed), CV_EINVAL);
    assert_int_equal(misuse(two_values), CV_EINVAL);
    assert_int_equal(misuse(nothing), CV_EINVAL);
    assert_int_equal(misuse(top_level_key), CV_EINVAL);
    assert_int_equal(misuse(too_deep), CV_ELIMIT);
    assert_int_equal(misuse(deepest_ok), 0);
}

static void test_writer_keeps_first_buffer_error(void **state)
{
    struct json_writer w;
    struct buf b;

    (void)state;
    buf_init(&b, 10);
    json_w_init(&w, &b, 0);
    json_w_array_begin(&w);
    json_w_string(&w, "0123456789");
    json_w_int(&w, 1); /* fits, but ignored after the first error */
    json_w_array_end(&w);
    assert_int_equal(json_w_finish(&w), CV_EFULL);
    assert_string_equal(text_of(&b), "[");
    buf_cleanup(&b);

    buf_init(&b, 4096);
    json_w_init(&w, &b, 0);
    mem_fail_after(1);
    json_w_array_begin(&w);
    mem_fail_after(0);
    json_w_array_end(&w);
    assert_int_equal(json_w_finish(&w), CV_ENOMEM);
    buf_cleanup(&b);
}

static void test_written_strings_parse_back_identically(void **state)
{
    static const char *const samples[] = {"", "plain", "quote\" and \\ backslash", "tab\tnl\n",
                                          "\x01\x02\x1f", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"};
    struct buf b;

    (void)state;
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        struct json_value *v = NULL;
        size_t len;

        buf_init(&b, 4096);
        assert_int_equal(json_write_string(&b, samples[i], strlen(samples[i])), 0);
        assert_int_equal(json_parse((const char *)b.pos, buf_len(&b), NULL, &v, NULL), 0);
        assert_string_equal(json_as_string(v, &len), samples[i]);
        assert_int_equal(len, strlen(samples[i]));
        json_free(v);
        buf_cleanup(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_object_keeps_order_and_types),
        cmocka_unit_test(test_object_get_with_many_keys),
        cmocka_unit_test(test_string_escapes_and_surrogate_pairs),
        cmocka_unit_test(test_invalid_utf8_is_rejected),
        cmocka_unit_test(test_numbers_follow_the_grammar),
        cmocka_unit_test(test_int64_getter_is_exact),
        cmocka_unit_test(test_structure_errors_with_offsets),
        cmocka_unit_test(test_duplicate_keys_are_rejected),
        cmocka_unit_test(test_depth_and_size_limits),
        cmocka_unit_test(test_parse_allocation_failures_fail_cleanly),
        cmocka_unit_test(test_writer_compact_and_pretty),
        cmocka_unit_test(test_write_string_escapes),
        cmocka_unit_test(test_write_string_full_buffer_leaves_it_unchanged),
        cmocka_unit_test(test_writer_numbers),
        cmocka_unit_test(test_writer_rejects_misuse),
        cmocka_unit_test(test_writer_keeps_first_buffer_error),
        cmocka_unit_test(test_written_strings_parse_back_identically),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
