/*
 * test_yaml.c - the YAML loader (tree, locations, RELIABILITY.md §2.7 and §10 limits, duplicate
 * keys, tags) and the typed getters with their located errors.
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
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "err.h"
#include "mem.h"
#include "yaml.h"

static struct yaml_doc *load_ok(const char *text)
{
    struct yaml_doc *d = NULL;
    struct yaml_error e;
    int rv = yaml_load_string(text, strlen(text), "config.yml", NULL, &d, &e);

    if (rv != 0)
        fail_msg("load failed (%d): %s", rv, e.msg);
    assert_non_null(d);
    return d;
}

/* Loads |text| expecting |code| and exactly the message |msg|. */
static void load_bad(const char *text, int code, const char *msg)
{
    struct yaml_doc *d = (struct yaml_doc *)1;
    struct yaml_error e;
    int rv;

    memset(&e, 0, sizeof(e));
    rv = yaml_load_string(text, strlen(text), "config.yml", NULL, &d, &e);
    if (rv != code)
        fail_msg("got %d (%s), want %d", rv, rv ? e.msg : "ok", code);
    assert_null(d);
    assert_string_equal(e.msg, msg);
}

static const char connector_yml[] =
    "tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\n"
    "credentials-file: /etc/culvert/tunnel.json\n"
    "# a comment\n"
    "ingress:\n"
    "  - hostname: app.example.com\n"
    "    path: ^/api/\n"
    "    service: http://localhost:8000\n"
    "  - hostname: \"*.example.com\"\n"
    "    service: https://localhost:8443\n"
    "  - service: http_status:404\n"
    "originRequest: { connectTimeout: 30s, noTLSVerify: false }\n";

static void test_load_builds_tree_with_locations(void **state)
{
    struct yaml_doc *d = load_ok(connector_yml);
    const struct yaml_node *root = yaml_doc_root(d);
    const struct yaml_node *ing;
    const struct yaml_node *rule;
    const struct yaml_node *n;
    size_t len;

    (void)state;
    assert_int_equal(yaml_node_kind(root), YAML_KIND_MAPPING);
    assert_int_equal(yaml_map_count(root), 4);
    /* Pairs come in file order. */
    assert_string_equal(yaml_scalar(yaml_map_key(root, 0), NULL), "tunnel");
    assert_string_equal(yaml_scalar(yaml_map_key(root, 1), NULL), "credentials-file");
    assert_string_equal(yaml_scalar(yaml_map_key(root, 2), NULL), "ingress");
    assert_string_equal(yaml_scalar(yaml_map_key(root, 3), NULL), "originRequest");
    assert_null(yaml_map_key(root, 4));
    assert_null(yaml_map_value(root, 4));

    n = yaml_map_get(root, "tunnel");
    assert_string_equal(yaml_scalar(n, &len), "6ff42ae2-765d-4adf-8112-31c55c1551ef");
    assert_int_equal(len, 36);
    assert_string_equal(yaml_node_file(n), "config.yml");
    assert_int_equal(yaml_node_line(n), 1);
    assert_int_equal(yaml_node_col(n), 9);
    assert_true(yaml_scalar_plain(n));

    ing = yaml_map_get(root, "ingress");
    assert_int_equal(yaml_node_kind(ing), YAML_KIND_SEQUENCE);
    assert_int_equal(yaml_seq_count(ing), 3);
    assert_int_equal(yaml_node_line(ing), 5);
    assert_int_equal(yaml_node_col(ing), 3);
    rule = yaml_seq_at(ing, 1);
    assert_int_equal(yaml_node_line(rule), 8);
    assert_int_equal(yaml_node_col(rule), 5);
    n = yaml_map_get(rule, "hostname");
    assert_string_equal(yaml_scalar(n, NULL), "*.example.com");
    assert_false(yaml_scalar_plain(n));
    assert_int_equal(yaml_node_line(n), 8);
    assert_int_equal(yaml_node_col(n), 15);
    assert_int_equal(yaml_node_line(yaml_map_key(rule, 0)), 8);
    assert_int_equal(yaml_node_col(yaml_map_key(rule, 0)), 5);
    assert_null(yaml_seq_at(ing, 3));
    assert_null(yaml_map_get(rule, "path"));
    assert_null(yaml_map_get(ing, "hostname")); /* not a mapping */

    n = yaml_map_get(yaml_map_get(root, "originRequest"), "noTLSVerify");
    assert_string_equal(yaml_scalar(n, NULL), "false");
    assert_int_equal(yaml_node_line(n), 11);
    assert_int_equal(yaml_node_col(n), 52);
    assert_null(yaml_scalar(ing, NULL));
    assert_int_equal(yaml_seq_count(root), 0);
    assert_int_equal(yaml_map_count(ing), 0);
    assert_null(yaml_map_get(NULL, "x"));
    yaml_doc_free(d);
}

static void test_map_get_finds_every_key_of_a_big_mapping(void **state)
{
    char *text = malloc(64 * 1000);
    size_t o = 0;
    struct yaml_doc *d;
    const struct yaml_node *root;
    char key[32];

    (void)state;
    for (int i = 999; i >= 0; i--)
        o += (size_t)sprintf(text + o, "k%d: %d\n", i, i);
    d = load_ok(text);
    root = yaml_doc_root(d);
    assert_int_equal(yaml_map_count(root), 1000);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(text, 32, "%d", i);
        assert_string_equal(yaml_scalar(yaml_map_get(root, key), NULL), text);
    }
    assert_null(yaml_map_get(root, "k1000"));
    assert_null(yaml_map_get(root, "k"));
    assert_null(yaml_map_get(root, ""));
    yaml_doc_free(d);
    free(text);
}

static void test_empty_and_comment_only_files_have_no_root(void **state)
{
    struct yaml_doc *d;

    (void)state;
    d = load_ok("");
    assert_null(yaml_doc_root(d));
    yaml_doc_free(d);
    d = load_ok("# only a comment\n\n");
    assert_null(yaml_doc_root(d));
    yaml_doc_free(d);
    d = load_ok("---\n");
    assert_true(yaml_is_null(yaml_doc_root(d)));
    yaml_doc_free(d);
    yaml_doc_free(NULL);
}

static void test_syntax_errors_are_located(void **state)
{
    (void)state;
    load_bad("a: [1, 2\n", CV_EPARSE,
             "config.yml:2:1: did not find expected ',' or ']' (while parsing a flow sequence at "
             "line 1)");
    load_bad("a: 1\n b: 2\n", CV_EPARSE, "config.yml:2:3: mapping values are not allowed in this context");
    load_bad("a:\n  - b\n  c: d\n", CV_EPARSE,
             "config.yml:3:3: did not find expected '-' indicator (while parsing a block collection "
             "at line 2)");
    /* Reader errors carry an offset; it is turned into a line and column. */
    load_bad("a: 1\nb: \xff\n", CV_EPARSE, "config.yml:2:4: invalid leading UTF-8 octet");
    {
        /* A raw NUL byte in the input is a control character to libyaml. */
        static const char raw[] = "a: 1\nb: x\0y\n";
        struct yaml_doc *d = NULL;
        struct yaml_error e;

        assert_int_equal(yaml_load_string(raw, sizeof(raw) - 1, "config.yml", NULL, &d, &e),
                         CV_EPARSE);
        assert_string_equal(e.msg, "config.yml:2:5: control characters are not allowed");
        assert_null(d);
    }
}

static void test_anchors_and_aliases_are_rejected(void **state)
{
    (void)state;
    load_bad("a: &x 1\nb: *x\n", CV_EPARSE, "config.yml:1:4: anchors and aliases are not allowed");
    load_bad("a: 1\nb: *x\n", CV_EPARSE, "config.yml:2:4: anchors and aliases are not allowed");
    load_bad("base: &b {x: 1}\n", CV_EPARSE, "config.yml:1:7: anchors and aliases are not allowed");
    load_bad("l: &l [1]\n", CV_EPARSE, "config.yml:1:4: anchors and aliases are not allowed");
    /* Billion laughs (CVE-2019-11253) stops at the first anchor. */
    load_bad("a: &a [\"lol\",\"lol\"]\nb: &b [*a,*a]\nc: &c [*b,*b]\n", CV_EPARSE,
             "config.yml:1:4: anchors and aliases are not allowed");
    /* Merge keys need aliases, so they fail the same way. */
    load_bad("a: {x: 1}\nb:\n  <<: *a\n", CV_EPARSE,
             "config.yml:3:7: anchors and aliases are not allowed");
}

static void test_second_document_is_rejected(void **state)
{
    struct yaml_doc *d;

    (void)state;
    load_bad("a: 1\n---\nb: 2\n", CV_EPARSE,
             "config.yml:2:1: only one YAML document is allowed (found a second \"---\")");
    load_bad("---\na: 1\n...\n---\n", CV_EPARSE,
             "config.yml:4:1: only one YAML document is allowed (found a second \"---\")");
    d = load_ok("---\na: 1\n...\n");
    assert_int_equal(yaml_map_count(yaml_doc_root(d)), 1);
    yaml_doc_free(d);
}

static void test_duplicate_keys_name_both_lines(void **state)
{
    (void)state;
    load_bad("a: 1\nb: 2\na: 3\n", CV_EPARSE, "config.yml:3:1: duplicate key \"a\" (first at line 1)");
    load_bad("x:\n  port: 1\n  host: h\n  port: 2\n", CV_EPARSE,
             "config.yml:4:3: duplicate key \"port\" (first at line 2)");
    load_bad("a: {b: 1, b: 2}\n", CV_EPARSE, "config.yml:1:11: duplicate key \"b\" (first at line 1)");
    /* With several duplicates the first repeat in the file is reported. */
    load_bad("z: 1\ny: 2\ny: 3\nz: 4\nz: 5\n", CV_EPARSE,
             "config.yml:3:1: duplicate key \"y\" (first at line 2)");
    load_bad("b: 1\na: 1\na: 2\nb: 2\n", CV_EPARSE,
             "config.yml:3:1: duplicate key \"a\" (first at line 2)");
    /* Quoted and plain spellings of one key are the same key. */
    load_bad("k: 1\n\"k\": 2\n", CV_EPARSE, "config.yml:2:1: duplicate key \"k\" (first at line 1)");
    /* Keys are escaped in the message. */
    load_bad("\"a\\tb\": 1\n\"a\\tb\": 2\n", CV_EPARSE,
             "config.yml:2:1: duplicate key \"a\\x09b\" (first at line 1)");
}

static void test_same_key_in_sibling_mappings_is_fine(void **state)
{
    struct yaml_doc *d = load_ok("a: {k: 1}\nb: {k: 2}\nl:\n  - {k: 3}\n  - {k: 4}\n");
    const struct yaml_node *r = yaml_doc_root(d);

    (void)state;
    assert_string_equal(yaml_scalar(yaml_map_get(yaml_map_get(r, "b"), "k"), NULL), "2");
    assert_string_equal(yaml_scalar(yaml_map_get(yaml_seq_at(yaml_map_get(r, "l"), 1), "k"), NULL),
                        "4");
    yaml_doc_free(d);
}

static void test_tags_outside_the_core_schema_are_rejected(void **state)
{
    struct yaml_doc *d;
    const struct yaml_node *root;

    (void)state;
    load_bad("x: !foo 1\n", CV_EPARSE, "config.yml:1:4: unsupported tag \"!foo\" for a string");
    load_bad("x: !!binary aGk=\n", CV_EPARSE, "config.yml:1:4: unsupported tag \"!!binary\" for a string");
    load_bad("x: !!map 1\n", CV_EPARSE, "config.yml:1:4: unsupported tag \"!!map\" for a string");
    load_bad("x: !!str [1]\n", CV_EPARSE, "config.yml:1:4: unsupported tag \"!!str\" for a list");
    load_bad("x: !!python/object:os.system {}\n", CV_EPARSE,
             "config.yml:1:4: unsupported tag \"!!python/object:os.system\" for a mapping");
    d = load_ok("a: !!str yes\nb: ! on\nc: !!int 5\nd: !!null ''\ne: !!seq [1]\nf: !!map {}\n"
                "g: !!bool true\nh: !!float 1.5\n");
    root = yaml_doc_root(d);
    assert_false(yaml_scalar_plain(yaml_map_get(root, "a")));
    assert_false(yaml_scalar_plain(yaml_map_get(root, "b")));
    assert_true(yaml_scalar_plain(yaml_map_get(root, "c")));
    assert_true(yaml_is_null(yaml_map_get(root, "d")));
    assert_int_equal(yaml_seq_count(yaml_map_get(root, "e")), 1);
    yaml_doc_free(d);
}

static void test_mapping_keys_must_be_scalars(void **state)
{
    (void)state;
    load_bad("? [a]\n: 1\n", CV_EPARSE, "config.yml:1:3: a mapping key must be a scalar, not a list");
    load_bad("{[a]: 1}", CV_EPARSE, "config.yml:1:2: a mapping key must be a scalar, not a list");
    load_bad("? {a: 1}\n: 1\n", CV_EPARSE,
             "config.yml:1:3: a mapping key must be a scalar, not a mapping");
}

static char *nested(unsigned depth)
{
    char *s = malloc(2 * depth + 1);

    for (unsigned i = 0; i < depth; i++) {
        s[i] = '[';
        s[depth + i] = ']';
    }
    s[2 * depth] = '\0';
    return s;
}

static void test_depth_limit_is_32(void **state)
{
    char *ok = nested(32);
    char *bad = nested(33);
    struct yaml_doc *d = load_ok(ok);
    const struct yaml_node *n = yaml_doc_root(d);
    unsigned depth = 0;

    (void)state;
    while (n != NULL && yaml_node_kind(n) == YAML_KIND_SEQUENCE) {
        depth++;
        n = yaml_seq_at(n, 0);
    }
    assert_int_equal(depth, 32);
    yaml_doc_free(d);
    load_bad(bad, CV_ELIMIT, "config.yml:1:33: nesting deeper than 32 levels");
    free(ok);
    free(bad);
}

static void test_depth_limit_counts_block_mappings(void **state)
{
    char text[4096];
    size_t o = 0;

    (void)state;
    for (int i = 0; i < 33; i++)
        o += (size_t)sprintf(text + o, "%*sk:\n", i, "");
    o += (size_t)sprintf(text + o, "%*sv: 1\n", 33, "");
    load_bad(text, CV_ELIMIT, "config.yml:33:33: nesting deeper than 32 levels");
}

static char *flat_list(unsigned items)
{
    char *s = malloc(2 * items + 3);
    size_t o = 0;

    s[o++] = '[';
    for (unsigned i = 0; i < items; i++) {
        s[o++] = '0';
        s[o++] = ',';
    }
    s[o++] = ']';
    s[o] = '\0';
    return s;
}

static void test_node_limit_is_10000(void **state)
{
    char *ok = flat_list(9999); /* the list itself + 9 999 scalars */
    char *bad = flat_list(10000);
    struct yaml_doc *d = load_ok(ok);

    (void)state;
    assert_int_equal(yaml_seq_count(yaml_doc_root(d)), 9999);
    yaml_doc_free(d);
    load_bad(bad, CV_ELIMIT, "config.yml:1:20000: too many nodes (the limit is 10000)");
    free(ok);
    free(bad);
}

static void test_size_limit_is_one_mebibyte(void **state)
{
    size_t n = 1024 * 1024;
    char *text = malloc(n + 2);
    struct yaml_doc *d = NULL;
    struct yaml_error e;

    (void)state;
    memset(text, '#', n + 1);
    text[n + 1] = '\0';
    assert_int_equal(yaml_load_string(text, n + 1, "big.yml", NULL, &d, &e), CV_ELIMIT);
    assert_string_equal(e.msg, "big.yml: larger than the 1MiB limit for configuration files");
    assert_null(d);
    text[n - 1] = '\n';
    assert_int_equal(yaml_load_string(text, n, "big.yml", NULL, &d, &e), 0);
    assert_null(yaml_doc_root(d));
    yaml_doc_free(d);
    free(text);
}

static void test_limits_come_from_cv_limits(void **state)
{
    struct cv_limits lim;
    struct yaml_doc *d = NULL;
    struct yaml_error e;
    const char *text = "a: {b: {c: 1}}\n";

    (void)state;
    limits_init(&lim);
    lim.config_max_depth = 2;
    assert_int_equal(yaml_load_string(text, strlen(text), "c.yml", &lim, &d, &e), CV_ELIMIT);
    assert_string_equal(e.msg, "c.yml:1:8: nesting deeper than 2 levels");
    limits_init(&lim);
    lim.config_max_nodes = 5;
    assert_int_equal(yaml_load_string(text, strlen(text), "c.yml", &lim, &d, &e), CV_ELIMIT);
    assert_string_equal(e.msg, "c.yml:1:9: too many nodes (the limit is 5)");
    limits_init(&lim);
    lim.config_max_bytes = 10;
    assert_int_equal(yaml_load_string(text, strlen(text), "c.yml", &lim, &d, &e), CV_ELIMIT);
    assert_string_equal(e.msg, "c.yml: larger than the 10 limit for configuration files");
}

static void test_null_forms(void **state)
{
    struct yaml_doc *d = load_ok("a:\nb: ~\nc: null\nd: NULL\ne: \"null\"\nf: ''\ng: Null\nh: nul\n"
                                 "i: [x]\n");
    const struct yaml_node *r = yaml_doc_root(d);

    (void)state;
    assert_true(yaml_is_null(yaml_map_get(r, "a")));
    assert_true(yaml_is_null(yaml_map_get(r, "b")));
    assert_true(yaml_is_null(yaml_map_get(r, "c")));
    assert_true(yaml_is_null(yaml_map_get(r, "d")));
    assert_false(yaml_is_null(yaml_map_get(r, "e")));
    assert_false(yaml_is_null(yaml_map_get(r, "f")));
    assert_true(yaml_is_null(yaml_map_get(r, "g")));
    assert_false(yaml_is_null(yaml_map_get(r, "h")));
    assert_false(yaml_is_null(yaml_map_get(r, "i")));
    assert_true(yaml_is_null(yaml_map_get(r, "missing")));
    yaml_doc_free(d);
}

/* ---- getters ------------------------------------------------------------------------------ */

static const char getters_yml[] =
    "name: edge-1\n"                 /* 1 */
    "grace_period: 30s\n"            /* 2 */
    "bad_duration: 30\n"             /* 3 */
    "quoted: \"5m\"\n"               /* 4 */
    "big: 2h\n"                      /* 5 */
    "size: 64KiB\n"                  /* 6 */
    "bad_size: 64K\n"                /* 7 */
    "flag: yes\n"                    /* 8 */
    "bad_flag: maybe\n"              /* 9 */
    "count: 4\n"                     /* 10 */
    "bad_count: 99\n"                /* 11 */
    "listen: 127.0.0.1:7845\n"       /* 12 */
    "bad_listen: 127.0.0.1\n"        /* 13 */
    "sock: unix:/run/a.sock\n"       /* 14 */
    "empty:\n"                       /* 15 */
    "map: {a: 1}\n"                  /* 16 */
    "path: relative/file.pem\n"      /* 17 */
    "nul: \"a\\0b\"\n"               /* 18 */
    "ingress:\n"                     /* 19 */
    "  - hostname: a.*.example.com\n"  /* 20 */
    "  - hostname: App.Example.COM\n"  /* 21 */
    "  - hostname: \"*.Example.com\"\n" /* 22 */
    "bytes: 512\n"                   /* 23 */
    "tiny: 100ms\n";                 /* 24 */

struct fixture {
    struct yaml_doc *doc;
    const struct yaml_node *root;
};

static int setup_getters(void **state)
{
    static struct fixture f;
    struct yaml_error e;

    if (yaml_load_string(getters_yml, strlen(getters_yml), "config.yml", NULL, &f.doc, &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    f.root = yaml_doc_root(f.doc);
    *state = &f;
    return 0;
}

static int teardown_getters(void **state)
{
    struct fixture *f = *state;

    yaml_doc_free(f->doc);
    return 0;
}

#define GET(key) yaml_map_get(f->root, key)

static void test_getter_string_and_kinds(void **state)
{
    struct fixture *f = *state;
    struct yaml_error e;
    const char *s = "default";

    assert_int_equal(yaml_as_string(GET("name"), "name", &s, &e), 0);
    assert_string_equal(s, "edge-1");
    s = "default";
    assert_int_equal(yaml_as_string(GET("missing"), "missing", &s, &e), CV_ENOTFOUND);
    assert_int_equal(yaml_as_string(GET("empty"), "empty", &s, &e), CV_ENOTFOUND);
    assert_string_equal(s, "default");
    assert_int_equal(yaml_as_string(GET("map"), "map", &s, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:16:6: map: expected a string, found a mapping");
    assert_int_equal(yaml_as_string(GET("nul"), "nul", &s, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:18:6: nul: NUL characters are not allowed");
    assert_int_equal(yaml_expect(GET("ingress"), "ingress", YAML_KIND_SEQUENCE, &e), 0);
    assert_int_equal(yaml_expect(GET("ingress"), "ingress", YAML_KIND_MAPPING, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:20:3: ingress: expected a mapping, found a list");
    assert_int_equal(yaml_expect(GET("empty"), "empty", YAML_KIND_MAPPING, &e), CV_ENOTFOUND);
    assert_int_equal(yaml_expect(NULL, "x", YAML_KIND_MAPPING, &e), CV_ENOTFOUND);
}

static void test_getter_duration_errors_are_located(void **state)
{
    struct fixture *f = *state;
    struct yaml_error e;
    uint64_t ms = 1;

    assert_int_equal(yaml_as_duration(GET("grace_period"), "grace_period", 0, 0, UINT64_MAX, &ms, &e), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(yaml_as_duration(GET("quoted"), "quoted", 0, 0, UINT64_MAX, &ms, &e), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(yaml_as_duration(GET("bad_duration"), "bad_duration", 0, 0, UINT64_MAX, &ms, &e),
                     CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:3:15: bad_duration: a duration needs a unit (for example "
                               "30s, 5m, 1h, 250ms)");
    assert_int_equal(ms, 300000);
    assert_int_equal(yaml_as_duration(GET("bad_duration"), "bad_duration", CONFIG_DUR_PLAIN_SECONDS,
                                      0, UINT64_MAX, &ms, &e),
                     0);
    assert_int_equal(ms, 30000);
    assert_int_equal(yaml_as_duration(GET("big"), "timeouts.x", 0, 1000, 3600000, &ms, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:5:6: timeouts.x: must be between 1s and 1h");
    assert_int_equal(yaml_as_duration(GET("tiny"), "t", 0, 1000, UINT64_MAX, &ms, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:24:7: t: must be at least 1s");
    assert_int_equal(yaml_as_duration(GET("big"), "t", 0, 0, 60000, &ms, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:5:6: t: must be at most 1m");
    assert_int_equal(yaml_as_duration(GET("missing"), "t", 0, 0, 1, &ms, &e), CV_ENOTFOUND);
}

static void test_getter_size_bool_int(void **state)
{
    struct fixture *f = *state;
    struct yaml_error e;
    uint64_t sz = 0;
    bool b = false;
    int64_t v = 0;

    assert_int_equal(yaml_as_size(GET("size"), "size", 0, UINT64_MAX, &sz, &e), 0);
    assert_int_equal(sz, 65536);
    assert_int_equal(yaml_as_size(GET("bytes"), "bytes", 0, UINT64_MAX, &sz, &e), 0);
    assert_int_equal(sz, 512);
    assert_int_equal(yaml_as_size(GET("bad_size"), "limits.max_frame_size", 0, UINT64_MAX, &sz, &e),
                     CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:7:11: limits.max_frame_size: ambiguous size unit: write "
                               "KiB, MiB, GiB (1024) or KB, MB, GB (1000)");
    assert_int_equal(yaml_as_size(GET("size"), "s", 1024, 16384, &sz, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:6:7: s: must be between 1KiB and 16KiB");

    assert_int_equal(yaml_as_bool(GET("flag"), "flag", &b, &e), 0);
    assert_true(b);
    assert_int_equal(yaml_as_bool(GET("bad_flag"), "bad_flag", &b, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:9:11: bad_flag: expected a boolean (true or false)");

    assert_int_equal(yaml_as_int(GET("count"), "ha-connections", 1, 64, &v, &e), 0);
    assert_int_equal(v, 4);
    assert_int_equal(yaml_as_int(GET("bad_count"), "ha-connections", 1, 64, &v, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:11:12: ha-connections: must be between 1 and 64");
    assert_int_equal(yaml_as_int(GET("name"), "n", 1, 64, &v, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:1:7: n: expected a whole number");
    assert_int_equal(v, 4);
}

static void test_getter_addr_path(void **state)
{
    struct fixture *f = *state;
    struct yaml_error e;
    struct config_addr a;
    const char *p = NULL;

    assert_int_equal(yaml_as_addr(GET("listen"), "admin.listen", 0, &a, &e), 0);
    assert_string_equal(a.host, "127.0.0.1");
    assert_int_equal(a.port, 7845);
    assert_int_equal(yaml_as_addr(GET("bad_listen"), "admin.listen", 0, &a, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:13:13: admin.listen: missing port (write host:port)");
    assert_int_equal(yaml_as_addr(GET("sock"), "admin.listen", 0, &a, &e), CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:14:7: admin.listen: a unix socket is not allowed here "
                               "(write host:port)");
    assert_int_equal(yaml_as_addr(GET("sock"), "admin.listen", CONFIG_ADDR_ALLOW_UNIX, &a, &e), 0);
    assert_string_equal(a.path, "/run/a.sock");

    assert_int_equal(yaml_as_path(GET("path"), "tunnel.cert", 0, &p, &e), 0);
    assert_string_equal(p, "relative/file.pem");
    assert_int_equal(yaml_as_path(GET("path"), "tunnel.cert", CONFIG_PATH_ABSOLUTE, &p, &e),
                     CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:17:7: tunnel.cert: the path must be absolute (start with "
                               "\"/\")");
}

static void test_getter_hostname_pattern_example_from_style_guide(void **state)
{
    struct fixture *f = *state;
    const struct yaml_node *ing = GET("ingress");
    struct hostname_pattern p;
    char name[HOSTNAME_MAX + 1];
    struct yaml_error e;

    assert_int_equal(yaml_as_pattern(yaml_map_get(yaml_seq_at(ing, 0), "hostname"),
                                     "ingress[0].hostname", &p, &e),
                     CV_ECONFIG);
    assert_string_equal(e.msg,
                        "config.yml:20:15: ingress[0].hostname: \"*\" is only allowed as the first label");
    assert_int_equal(yaml_as_pattern(yaml_map_get(yaml_seq_at(ing, 2), "hostname"),
                                     "ingress[2].hostname", &p, &e),
                     0);
    assert_string_equal(p.text, "*.example.com");
    assert_int_equal(yaml_as_hostname(yaml_map_get(yaml_seq_at(ing, 1), "hostname"), "h", name, &e), 0);
    assert_string_equal(name, "app.example.com");
    assert_int_equal(yaml_as_hostname(yaml_map_get(yaml_seq_at(ing, 2), "hostname"), "h", name, &e),
                     CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:22:15: h: \"*\" is not allowed in a hostname");
}

static void test_errorf_formats(void **state)
{
    struct fixture *f = *state;
    struct yaml_error e;

    assert_int_equal(yaml_errorf(&e, GET("ingress"), "ingress", "the last rule must be a catch-all"),
                     CV_ECONFIG);
    assert_string_equal(e.msg, "config.yml:20:3: ingress: the last rule must be a catch-all");
    yaml_errorf(&e, NULL, "public.certificates", "at least one certificate is required (%d given)", 0);
    assert_string_equal(e.msg, "public.certificates: at least one certificate is required (0 given)");
    yaml_errorf(&e, f->root, NULL, "unknown key");
    assert_string_equal(e.msg, "config.yml:1:1: unknown key");
    yaml_errorf(&e, f->root, "", "x");
    assert_string_equal(e.msg, "config.yml:1:1: x");
    assert_string_equal(yaml_kind_name(YAML_KIND_SEQUENCE), "a list");
}

/* ---- files and allocation failures --------------------------------------------------------- */

static void test_load_file_reports_open_errors_and_reads_files(void **state)
{
    char path[] = "/tmp/test_yaml_XXXXXX";
    struct yaml_doc *d = NULL;
    struct yaml_error e;
    int fd;

    (void)state;
    assert_int_equal(yaml_load_file("/nonexistent/edge.yml", NULL, &d, &e), UV_ENOENT);
    assert_string_equal(e.msg, "/nonexistent/edge.yml: cannot open: no such file or directory");
    assert_null(d);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a: 1\nb: [x, y\n", 14), 14);
    close(fd);
    assert_int_equal(yaml_load_file(path, NULL, &d, &e), CV_EPARSE);
    {
        char want[200];

        snprintf(want, sizeof(want),
                 "%s:3:1: did not find expected ',' or ']' (while parsing a flow sequence at line 2)",
                 path);
        assert_string_equal(e.msg, want);
    }
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "a: 1\n", 5), 5);
    close(fd);
    assert_int_equal(yaml_load_file(path, NULL, &d, &e), 0);
    assert_string_equal(yaml_node_file(yaml_doc_root(d)), path);
    yaml_doc_free(d);

    /* One byte over the limit. */
    {
        struct cv_limits lim;

        limits_init(&lim);
        lim.config_max_bytes = 4;
        assert_int_equal(yaml_load_file(path, &lim, &d, &e), CV_ELIMIT);
        lim.config_max_bytes = 5;
        assert_int_equal(yaml_load_file(path, &lim, &d, &e), 0);
        yaml_doc_free(d);
    }
    assert_int_equal(yaml_load_file("/tmp", NULL, &d, &e), UV_EISDIR);
    unlink(path);
}

static void test_allocation_failures_fail_cleanly(void **state)
{
    long live = mem_live_count();
    unsigned long n;
    int failures = 0;

    (void)state;
    for (n = 1; n < 1000; n++) {
        struct yaml_doc *d = (struct yaml_doc *)1;
        struct yaml_error e;
        int rv;

        mem_fail_after(n);
        rv = yaml_load_string(connector_yml, strlen(connector_yml), "config.yml", NULL, &d, &e);
        mem_fail_after(0);
        if (rv == 0) {
            yaml_doc_free(d);
            break;
        }
        failures++;
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(d);
        assert_non_null(strstr(e.msg, "out of memory"));
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(failures >= 3);
    assert_true(n < 1000);
    assert_int_equal(mem_live_count(), live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_builds_tree_with_locations),
        cmocka_unit_test(test_map_get_finds_every_key_of_a_big_mapping),
        cmocka_unit_test(test_empty_and_comment_only_files_have_no_root),
        cmocka_unit_test(test_syntax_errors_are_located),
        cmocka_unit_test(test_anchors_and_aliases_are_rejected),
        cmocka_unit_test(test_second_document_is_rejected),
        cmocka_unit_test(test_duplicate_keys_name_both_lines),
        cmocka_unit_test(test_same_key_in_sibling_mappings_is_fine),
        cmocka_unit_test(test_tags_outside_the_core_schema_are_rejected),
        cmocka_unit_test(test_mapping_keys_must_be_scalars),
        cmocka_unit_test(test_depth_limit_is_32),
        cmocka_unit_test(test_depth_limit_counts_block_mappings),
        cmocka_unit_test(test_node_limit_is_10000),
        cmocka_unit_test(test_size_limit_is_one_mebibyte),
        cmocka_unit_test(test_limits_come_from_cv_limits),
        cmocka_unit_test(test_null_forms),
        cmocka_unit_test_setup_teardown(test_getter_string_and_kinds, setup_getters, teardown_getters),
        cmocka_unit_test_setup_teardown(test_getter_duration_errors_are_located, setup_getters,
                                        teardown_getters),
        cmocka_unit_test_setup_teardown(test_getter_size_bool_int, setup_getters, teardown_getters),
        cmocka_unit_test_setup_teardown(test_getter_addr_path, setup_getters, teardown_getters),
        cmocka_unit_test_setup_teardown(test_getter_hostname_pattern_example_from_style_guide,
                                        setup_getters, teardown_getters),
        cmocka_unit_test_setup_teardown(test_errorf_formats, setup_getters, teardown_getters),
        cmocka_unit_test(test_load_file_reports_open_errors_and_reads_files),
        cmocka_unit_test(test_allocation_failures_fail_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
