/*
 * test_store.c - tunnels and routes in a temporary data_dir: persistence, crash safety, corrupt
 * files, authentication, route precedence, cascades, names, failed writes and failed allocations.
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
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "store.h"
#include "token.h"

static char dir[64];
static char path_buf[256];
static char err[512];

static const char *in_dir(const char *name)
{
    snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
    return path_buf;
}

static void rm_rf(const char *p)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/culvert-store-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    rm_rf(dir);
    return 0;
}

static struct store *open_ok(void)
{
    struct store *st = NULL;
    int rv = store_open(dir, &st, err, sizeof(err));

    if (rv != 0)
        fail_msg("store_open: %d %s", rv, err);
    assert_non_null(st);
    return st;
}

static const struct store_tunnel *create_ok(struct store *st, const char *name,
                                            uint8_t secret[TOKEN_SECRET_LEN])
{
    const struct store_tunnel *t = NULL;
    const char *why = NULL;
    uint8_t scratch[TOKEN_SECRET_LEN];
    int rv = store_tunnel_create(st, name, secret != NULL ? secret : scratch, &t, &why);

    if (rv != 0)
        fail_msg("create %s: %d %s", name, rv, why != NULL ? why : "");
    assert_non_null(t);
    return t;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
    static char buf[65536];
    FILE *f = fopen(path, "r");
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- tunnels ------------------------------------------------------------------------------- */

static void test_new_store_is_empty_and_creates_its_directory_0700(void **state)
{
    struct store *st = NULL;
    struct stat sb;
    char sub[256];

    (void)state;
    snprintf(sub, sizeof(sub), "%s/a/b/data", dir);
    assert_int_equal(store_open(sub, &st, err, sizeof(err)), 0);
    assert_int_equal(stat(sub, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(store_tunnel_count(st), 0);
    assert_int_equal(store_route_count(st), 0);
    assert_string_equal(store_dir(st), sub);
    /* Nothing is written until the first change. */
    snprintf(sub + strlen(sub), sizeof(sub) - strlen(sub), "/state.json");
    assert_int_equal(access(sub, F_OK), -1);
    store_free(st);
}

static void test_create_returns_a_secret_and_stores_only_its_hash(void **state)
{
    struct store *st = open_ok();
    uint8_t secret[TOKEN_SECRET_LEN];
    uint8_t digest[TOKEN_DIGEST_LEN];
    uint8_t zero[TOKEN_SECRET_LEN] = {0};
    char hex[2 * TOKEN_SECRET_LEN + 1];
    const struct store_tunnel *t;
    struct stat sb;
    size_t i;

    (void)state;
    t = create_ok(st, "home-lab", secret);
    assert_string_equal(t->name, "home-lab");
    assert_int_equal(t->generation, 1);
    assert_true(t->created_ms > 1700000000000LL);
    assert_int_equal(t->id[6] >> 4, 4); /* version-4 UUID */
    assert_memory_not_equal(secret, zero, sizeof(zero));
    assert_int_equal(token_secret_hash(secret, digest), 0);
    assert_memory_equal(t->secret_hash, digest, sizeof(digest));
    assert_ptr_equal(store_find_id(st, t->id), t);
    assert_ptr_equal(store_find_name(st, "home-lab"), t);
    assert_null(store_find_name(st, "Home-lab"));

    /* The file holds the digest, never the secret, and is private. */
    for (i = 0; i < TOKEN_SECRET_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", secret[i]);
    assert_null(strstr(read_text(in_dir("state.json")), hex));
    assert_int_equal(stat(in_dir("state.json"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(access(in_dir("state.json.tmp"), F_OK), -1);
    store_free(st);
}

static void test_find_accepts_a_name_or_an_id(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *t = create_ok(st, "web", NULL);
    char id[TOKEN_UUID_TEXT_LEN + 1];
    size_t i;

    (void)state;
    token_uuid_format(t->id, id);
    assert_ptr_equal(store_find(st, id), t);
    for (i = 0; id[i]; i++)
        id[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 'a' + 'A' : id[i]);
    assert_ptr_equal(store_find(st, id), t);
    assert_ptr_equal(store_find(st, "web"), t);
    assert_null(store_find(st, "nope"));
    assert_null(store_find(st, "00000000-0000-4000-8000-000000000000"));
    store_free(st);
}

static void test_persistence_round_trip(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a;
    const struct store_tunnel *b;
    struct store_tunnel a0;
    struct store_tunnel b0;
    uint8_t secret[TOKEN_SECRET_LEN];
    const char *pat = NULL;

    (void)state;
    a = create_ok(st, "alpha", NULL);
    b = create_ok(st, "beta", NULL);
    assert_int_equal(store_tunnel_rotate(st, b->id, secret), 0);
    assert_int_equal(store_route_add(st, "app.example.com", a->id, NULL), 0);
    assert_int_equal(store_route_add(st, "*.example.com", b->id, NULL), 0);
    a0 = *a;
    b0 = *b;
    store_free(st);

    st = open_ok();
    assert_int_equal(store_tunnel_count(st), 2);
    a = store_find_name(st, "alpha");
    b = store_find_name(st, "beta");
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, &a0, sizeof(a0));
    assert_memory_equal(b, &b0, sizeof(b0));
    assert_int_equal(b->generation, 2);
    assert_ptr_equal(store_authenticate(st, b->id, secret), b);
    assert_int_equal(store_route_count(st), 2);
    assert_ptr_equal(store_route_lookup(st, "app.example.com", &pat), a);
    assert_string_equal(pat, "app.example.com");
    assert_ptr_equal(store_route_lookup(st, "x.example.com", &pat), b);
    assert_string_equal(pat, "*.example.com");
    store_free(st);
}

static void test_duplicate_names_are_refused(void **state)
{
    struct store *st = open_ok();
    uint8_t secret[TOKEN_SECRET_LEN];
    uint8_t zero[TOKEN_SECRET_LEN] = {0};

    (void)state;
    create_ok(st, "web", NULL);
    memset(secret, 0xaa, sizeof(secret));
    assert_int_equal(store_tunnel_create(st, "web", secret, NULL, NULL), CV_EEXIST);
    assert_memory_equal(secret, zero, sizeof(zero));
    assert_int_equal(store_tunnel_count(st), 1);
    /* Names are case-sensitive: "Web" is another tunnel. */
    create_ok(st, "Web", NULL);
    assert_int_equal(store_tunnel_count(st), 2);
    store_free(st);
}

static void test_name_validation(void **state)
{
    static const char *const good[] = {
        "a", "home-lab", "web_1", "v1.2", "A.B-c_D", "..a", "a-",
        "1234567890123456789012345678901234567890123456789012345678901234", /* 64 */
    };
    static const char *const bad[] = {
        "", "-a", ".", "..", "a b", "a/b", "é", "a\tb", "a:b", "a%2f",
        "12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
        "6ff42ae2-765d-4adf-8112-31c55c1551ef",
    };
    struct store *st = open_ok();
    const char *why;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        why = NULL;
        if (!store_name_valid(good[i], &why))
            fail_msg("\"%s\" refused: %s", good[i], why);
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t secret[TOKEN_SECRET_LEN];

        why = NULL;
        if (store_name_valid(bad[i], &why))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(why);
        why = NULL;
        assert_int_equal(store_tunnel_create(st, bad[i], secret, NULL, &why), CV_EINVAL);
        assert_non_null(why);
    }
    assert_false(store_name_valid("-x", NULL));
    assert_int_equal(store_tunnel_count(st), 0);
    store_free(st);
}

/* ---- authentication ------------------------------------------------------------------------ */

static void test_authenticate_accepts_only_the_right_secret_for_the_right_id(void **state)
{
    struct store *st = open_ok();
    uint8_t sa[TOKEN_SECRET_LEN];
    uint8_t sb[TOKEN_SECRET_LEN];
    uint8_t unknown[TOKEN_ID_LEN];
    uint8_t wrong[TOKEN_SECRET_LEN];
    const struct store_tunnel *a = create_ok(st, "a", sa);
    const struct store_tunnel *b = create_ok(st, "b", sb);

    (void)state;
    assert_ptr_equal(store_authenticate(st, a->id, sa), a);
    assert_ptr_equal(store_authenticate(st, b->id, sb), b);
    /* Another tunnel's secret, a flipped bit, an unknown id: all NULL. */
    assert_null(store_authenticate(st, a->id, sb));
    memcpy(wrong, sa, sizeof(wrong));
    wrong[31] ^= 1;
    assert_null(store_authenticate(st, a->id, wrong));
    memcpy(unknown, a->id, sizeof(unknown));
    unknown[15] ^= 0x80;
    assert_null(store_authenticate(st, unknown, sa));
    store_free(st);
}

static void test_authenticate_on_an_empty_store_is_null(void **state)
{
    struct store *st = open_ok();
    uint8_t id[TOKEN_ID_LEN] = {0};
    uint8_t secret[TOKEN_SECRET_LEN] = {0};

    (void)state;
    assert_null(store_authenticate(st, id, secret));
    store_free(st);
}

static void test_rotate_replaces_the_secret(void **state)
{
    struct store *st = open_ok();
    uint8_t s1[TOKEN_SECRET_LEN];
    uint8_t s2[TOKEN_SECRET_LEN];
    uint8_t none[TOKEN_ID_LEN] = {0};
    const struct store_tunnel *t = create_ok(st, "t", s1);

    (void)state;
    assert_int_equal(store_tunnel_rotate(st, t->id, s2), 0);
    assert_memory_not_equal(s1, s2, sizeof(s1));
    assert_int_equal(t->generation, 2);
    assert_null(store_authenticate(st, t->id, s1));
    assert_ptr_equal(store_authenticate(st, t->id, s2), t);
    assert_int_equal(store_tunnel_rotate(st, none, s2), CV_ENOTFOUND);
    store_free(st);
}

/* ---- routes -------------------------------------------------------------------------------- */

static void test_route_precedence(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *exact = create_ok(st, "exact", NULL);
    const struct store_tunnel *shortw = create_ok(st, "short", NULL);
    const struct store_tunnel *longw = create_ok(st, "long", NULL);
    const char *pat = NULL;

    (void)state;
    assert_int_equal(store_route_add(st, "*.example.com", shortw->id, NULL), 0);
    assert_int_equal(store_route_add(st, "*.eu.example.com", longw->id, NULL), 0);
    assert_int_equal(store_route_add(st, "api.eu.example.com", exact->id, NULL), 0);
    assert_ptr_equal(store_route_lookup(st, "api.eu.example.com", &pat), exact);
    assert_string_equal(pat, "api.eu.example.com");
    assert_ptr_equal(store_route_lookup(st, "web.eu.example.com", &pat), longw);
    assert_string_equal(pat, "*.eu.example.com");
    assert_ptr_equal(store_route_lookup(st, "a.b.eu.example.com", NULL), longw);
    assert_ptr_equal(store_route_lookup(st, "eu.example.com", NULL), shortw);
    assert_ptr_equal(store_route_lookup(st, "www.example.com", NULL), shortw);
    assert_null(store_route_lookup(st, "example.com", NULL)); /* a wildcard needs a label */
    assert_null(store_route_lookup(st, "example.org", NULL));
    assert_ptr_equal(store_route_get(st, "*.EU.example.com."), longw);
    assert_null(store_route_get(st, "x.eu.example.com"));
    store_free(st);
}

static void test_route_add_normalises_and_refuses_takeover(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a = create_ok(st, "a", NULL);
    const struct store_tunnel *b = create_ok(st, "b", NULL);
    uint8_t none[TOKEN_ID_LEN] = {0};
    const char *why = NULL;

    (void)state;
    assert_int_equal(store_route_add(st, "App.Example.COM.", a->id, NULL), 0);
    assert_ptr_equal(store_route_lookup(st, "app.example.com", NULL), a);
    /* The same route again: a no-op success. */
    assert_int_equal(store_route_add(st, "app.example.com", a->id, NULL), 1);
    /* Another tunnel cannot take the name over. */
    assert_int_equal(store_route_add(st, "APP.example.com", b->id, NULL), CV_EEXIST);
    assert_ptr_equal(store_route_lookup(st, "app.example.com", NULL), a);
    assert_int_equal(store_route_add(st, "a.*.example.com", a->id, &why), CV_EINVAL);
    assert_string_equal(why, "\"*\" is only allowed as the first label");
    assert_int_equal(store_route_add(st, "b.example.com:443", a->id, &why), CV_EINVAL);
    assert_int_equal(store_route_add(st, "c.example.com", none, NULL), CV_ENOTFOUND);
    assert_int_equal(store_route_count(st), 1);
    store_free(st);
}

static void test_route_delete(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a = create_ok(st, "a", NULL);

    (void)state;
    assert_int_equal(store_route_add(st, "a.example.com", a->id, NULL), 0);
    assert_int_equal(store_route_delete(st, "A.EXAMPLE.COM"), 0);
    assert_null(store_route_lookup(st, "a.example.com", NULL));
    assert_int_equal(store_route_delete(st, "a.example.com"), CV_ENOTFOUND);
    assert_int_equal(store_route_delete(st, "a b"), CV_EINVAL);
    store_free(st);
    st = open_ok();
    assert_int_equal(store_route_count(st), 0);
    store_free(st);
}

static void test_delete_cascades_to_routes(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a = create_ok(st, "a", NULL);
    const struct store_tunnel *b = create_ok(st, "b", NULL);
    uint8_t id[TOKEN_ID_LEN];

    (void)state;
    assert_int_equal(store_route_add(st, "a1.example.com", a->id, NULL), 0);
    assert_int_equal(store_route_add(st, "b1.example.com", b->id, NULL), 0);
    assert_int_equal(store_route_add(st, "*.a.example.com", a->id, NULL), 0);
    memcpy(id, a->id, sizeof(id));
    assert_int_equal(store_tunnel_delete(st, id), 0);
    assert_null(store_find_id(st, id));
    assert_null(store_find_name(st, "a"));
    assert_int_equal(store_tunnel_count(st), 1);
    assert_int_equal(store_route_count(st), 1);
    assert_null(store_route_lookup(st, "a1.example.com", NULL));
    assert_null(store_route_lookup(st, "x.a.example.com", NULL));
    assert_ptr_equal(store_route_lookup(st, "b1.example.com", NULL), b);
    assert_int_equal(store_tunnel_delete(st, id), CV_ENOTFOUND);
    store_free(st);

    st = open_ok();
    assert_int_equal(store_tunnel_count(st), 1);
    assert_int_equal(store_route_count(st), 1);
    assert_null(store_route_lookup(st, "a1.example.com", NULL));
    /* A freed hostname goes to another tunnel only by an explicit route add. */
    assert_null(store_route_get(st, "a1.example.com"));
    store_free(st);
}

struct collect {
    char text[1024];
};

static int collect_tunnel(const struct store_tunnel *t, void *arg)
{
    struct collect *c = arg;

    strcat(c->text, t->name);
    strcat(c->text, ";");
    return 0;
}

static int collect_route(const char *pattern, const struct store_tunnel *t, void *arg)
{
    struct collect *c = arg;

    strcat(c->text, pattern);
    strcat(c->text, "=");
    strcat(c->text, t->name);
    strcat(c->text, ";");
    return 0;
}

static int stop_at_second(const struct store_tunnel *t, void *arg)
{
    int *n = arg;

    (void)t;
    return ++*n == 2 ? 7 : 0;
}

static void test_iteration_is_in_creation_order(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *z = create_ok(st, "z", NULL);
    const struct store_tunnel *a = create_ok(st, "a", NULL);
    struct collect c;
    int n = 0;

    (void)state;
    create_ok(st, "m", NULL);
    assert_int_equal(store_route_add(st, "z.example.com", z->id, NULL), 0);
    assert_int_equal(store_route_add(st, "a.example.com", a->id, NULL), 0);
    assert_int_equal(store_route_add(st, "*.z.example.com", z->id, NULL), 0);
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_foreach_tunnel(st, collect_tunnel, &c), 0);
    assert_string_equal(c.text, "z;a;m;");
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_foreach_route(st, NULL, collect_route, &c), 0);
    assert_string_equal(c.text, "z.example.com=z;a.example.com=a;*.z.example.com=z;");
    memset(&c, 0, sizeof(c));
    assert_int_equal(store_foreach_route(st, z, collect_route, &c), 0);
    assert_string_equal(c.text, "z.example.com=z;*.z.example.com=z;");
    assert_int_equal(store_foreach_tunnel(st, stop_at_second, &n), 7);
    assert_int_equal(n, 2);
    store_free(st);
}

/* ---- files --------------------------------------------------------------------------------- */

static void test_leftover_temp_file_is_ignored(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *t;

    (void)state;
    create_ok(st, "kept", NULL);
    store_free(st);
    /* A crash between writing the temporary file and the rename leaves it behind. */
    write_text(in_dir("state.json.tmp"), "{\"version\": 1, \"tunnels\": [{\"garbage");
    st = open_ok();
    assert_int_equal(store_tunnel_count(st), 1);
    assert_non_null(store_find_name(st, "kept"));
    t = create_ok(st, "next", NULL);
    assert_non_null(t);
    assert_int_equal(access(in_dir("state.json.tmp"), F_OK), -1);
    store_free(st);
    st = open_ok();
    assert_int_equal(store_tunnel_count(st), 2);
    store_free(st);
}

static void expect_corrupt(const char *text, const char *detail)
{
    struct store *st = (struct store *)1;
    char want[512];

    write_text(in_dir("state.json"), text);
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), CV_EPARSE);
    assert_null(st);
    snprintf(want, sizeof(want), "%s/state.json: %s", dir, detail);
    if (strstr(err, want) != err)
        fail_msg("got \"%s\", want prefix \"%s\"", err, want);
}

static void test_corrupt_file_is_an_error_naming_file_and_offset(void **state)
{
    (void)state;
    expect_corrupt("{\"version\": 1, \"tunnels\": [}", "corrupt state file at byte 27");
    expect_corrupt("", "corrupt state file at byte 0");
    expect_corrupt("[]", "corrupt state file: expected an object");
    expect_corrupt("{\"version\": 2}", "unsupported state file version (expected 1)");
    expect_corrupt("{\"version\": 1, \"tunnels\": {}}", "tunnels: expected a list");
    expect_corrupt("{\"version\": 1, \"tunnels\": [{\"id\": \"x\"}]}",
                   "tunnels[0].id: expected a UUID");
    expect_corrupt("{\"version\": 1, \"tunnels\": [{\"id\": \"6ff42ae2-765d-4adf-8112-31c55c1551ef"
                   "\", \"name\": \"a b\"}]}",
                   "tunnels[0].name: invalid tunnel name");
    expect_corrupt("{\"version\": 1, \"tunnels\": [{\"id\": \"6ff42ae2-765d-4adf-8112-31c55c1551ef"
                   "\", \"name\": \"a\", \"secret_sha256\": \"00\"}]}",
                   "tunnels[0].secret_sha256: expected 64 hex digits");
    expect_corrupt("{\"version\": 1, \"routes\": [{\"hostname\": \"a.com\", \"tunnel\": "
                   "\"6ff42ae2-765d-4adf-8112-31c55c1551ef\"}]}",
                   "routes[0].tunnel: no such tunnel");
}

static void test_duplicates_in_the_file_are_corrupt(void **state)
{
    static const char tunnel[] =
        "{\"id\": \"6ff42ae2-765d-4adf-8112-31c55c1551ef\", \"name\": \"a\", \"secret_sha256\": "
        "\"00000000000000000000000000000000000000000000000000000000000000ff\", "
        "\"created_ms\": 5, \"generation\": 1}";
    char text[2048];
    struct store *st;

    (void)state;
    snprintf(text, sizeof(text), "{\"version\": 1, \"tunnels\": [%s, %s]}", tunnel, tunnel);
    expect_corrupt(text, "tunnels[1].id: duplicate tunnel id");
    snprintf(text, sizeof(text),
             "{\"version\": 1, \"tunnels\": [%s], \"routes\": ["
             "{\"hostname\": \"a.com\", \"tunnel\": \"6ff42ae2-765d-4adf-8112-31c55c1551ef\"},"
             "{\"hostname\": \"A.com\", \"tunnel\": \"6ff42ae2-765d-4adf-8112-31c55c1551ef\"}]}",
             tunnel);
    expect_corrupt(text, "routes[1].hostname: duplicate route");
    /* The same file without the duplicate loads. */
    snprintf(text, sizeof(text), "{\"version\": 1, \"tunnels\": [%s]}", tunnel);
    write_text(in_dir("state.json"), text);
    st = open_ok();
    assert_int_equal(store_find_name(st, "a")->created_ms, 5);
    store_free(st);
}

static void test_second_open_of_one_directory_is_refused(void **state)
{
    struct store *a = open_ok();
    struct store *b = (struct store *)1;
    char want[256];

    (void)state;
    assert_int_equal(store_open(dir, &b, err, sizeof(err)), CV_EEXIST);
    assert_null(b);
    snprintf(want, sizeof(want), "%s: in use by another culvert-edge", dir);
    assert_string_equal(err, want);
    store_free(a);
    b = open_ok();
    store_free(b);
}

static void test_data_dir_that_is_a_file_is_an_error(void **state)
{
    struct store *st = (struct store *)1;
    char sub[256];

    (void)state;
    snprintf(sub, sizeof(sub), "%s/file", dir);
    write_text(sub, "x");
    assert_int_equal(store_open(sub, &st, err, sizeof(err)), -ENOTDIR);
    assert_null(st);
    assert_non_null(strstr(err, "cannot create the data directory"));
}

/* Makes every write fail: a directory where the temporary file goes (fails even as root). */
static void break_writes(void)
{
    assert_int_equal(mkdir(in_dir("state.json.tmp"), 0700), 0);
}

static void mend_writes(void)
{
    assert_int_equal(rmdir(in_dir("state.json.tmp")), 0);
}

static void test_failed_write_leaves_memory_unchanged(void **state)
{
    struct store *st = open_ok();
    uint8_t s1[TOKEN_SECRET_LEN];
    uint8_t s2[TOKEN_SECRET_LEN];
    uint8_t zero[TOKEN_SECRET_LEN] = {0};
    const struct store_tunnel *a = create_ok(st, "a", s1);
    const struct store_tunnel *b = create_ok(st, "b", NULL);
    const struct store_tunnel *out = NULL;
    struct store_tunnel before;
    char *file_before;

    (void)state;
    assert_int_equal(store_route_add(st, "a.example.com", a->id, NULL), 0);
    file_before = strdup(read_text(in_dir("state.json")));
    before = *a;
    break_writes();

    assert_int_equal(store_tunnel_create(st, "c", s2, &out, NULL), -EISDIR);
    assert_null(out);
    assert_memory_equal(s2, zero, sizeof(zero));
    assert_null(store_find_name(st, "c"));
    assert_int_equal(store_tunnel_count(st), 2);

    assert_int_equal(store_tunnel_rotate(st, a->id, s2), -EISDIR);
    assert_memory_equal(s2, zero, sizeof(zero));
    assert_memory_equal(a, &before, sizeof(before));
    assert_ptr_equal(store_authenticate(st, a->id, s1), a);

    assert_int_equal(store_tunnel_delete(st, a->id), -EISDIR);
    assert_ptr_equal(store_find_name(st, "a"), a);
    assert_ptr_equal(store_route_lookup(st, "a.example.com", NULL), a);

    assert_int_equal(store_route_add(st, "b.example.com", b->id, NULL), -EISDIR);
    assert_null(store_route_lookup(st, "b.example.com", NULL));
    assert_int_equal(store_route_delete(st, "a.example.com"), -EISDIR);
    assert_ptr_equal(store_route_lookup(st, "a.example.com", NULL), a);
    assert_int_equal(store_route_count(st), 1);

    assert_string_equal(read_text(in_dir("state.json")), file_before);
    free(file_before);
    mend_writes();

    /* Everything works again, and what was hidden during the failed delete is back in the file. */
    assert_int_equal(store_route_add(st, "b.example.com", b->id, NULL), 0);
    store_free(st);
    st = open_ok();
    assert_int_equal(store_tunnel_count(st), 2);
    assert_int_equal(store_route_count(st), 2);
    assert_ptr_equal(store_route_lookup(st, "a.example.com", NULL), store_find_name(st, "a"));
    store_free(st);
}

static void test_allocation_failures_during_open_fail_cleanly(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a = create_ok(st, "a", NULL);
    long live;
    unsigned long n;

    (void)state;
    assert_int_equal(store_route_add(st, "a.example.com", a->id, NULL), 0);
    assert_int_equal(store_route_add(st, "*.example.com", a->id, NULL), 0);
    create_ok(st, "b", NULL);
    store_free(st);
    live = mem_live_count();
    for (n = 1; n < 1000; n++) {
        int rv;

        st = NULL;
        mem_fail_after(n);
        rv = store_open(dir, &st, err, sizeof(err));
        mem_fail_after(0);
        if (rv == 0) {
            assert_int_equal(store_tunnel_count(st), 2);
            assert_int_equal(store_route_count(st), 2);
            store_free(st);
            break;
        }
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(st);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(n > 5);
    assert_int_equal(mem_live_count(), live);
}

static void test_allocation_failures_during_changes_leave_the_store_unchanged(void **state)
{
    struct store *st = open_ok();
    const struct store_tunnel *a = create_ok(st, "a", NULL);
    unsigned long n;
    int rv;

    (void)state;
    for (n = 1; n < 1000; n++) {
        uint8_t secret[TOKEN_SECRET_LEN];

        mem_fail_after(n);
        rv = store_tunnel_create(st, "b", secret, NULL, NULL);
        mem_fail_after(0);
        if (rv == 0)
            break;
        assert_int_equal(rv, CV_ENOMEM);
        assert_int_equal(store_tunnel_count(st), 1);
        store_free(st);
        st = open_ok(); /* the file agrees with memory */
        assert_int_equal(store_tunnel_count(st), 1);
        a = store_find_name(st, "a");
    }
    assert_true(n > 1);
    for (n = 1; n < 1000; n++) {
        mem_fail_after(n);
        rv = store_route_add(st, "x.example.com", a->id, NULL);
        mem_fail_after(0);
        if (rv == 0)
            break;
        assert_int_equal(rv, CV_ENOMEM);
        assert_null(store_route_lookup(st, "x.example.com", NULL));
    }
    for (n = 1; n < 1000; n++) {
        mem_fail_after(n);
        rv = store_tunnel_delete(st, a->id);
        mem_fail_after(0);
        if (rv == 0)
            break;
        assert_int_equal(rv, CV_ENOMEM);
        assert_ptr_equal(store_route_lookup(st, "x.example.com", NULL), a);
    }
    assert_int_equal(rv, 0);
    assert_int_equal(store_route_count(st), 0);
    store_free(st);
}

/* Anyone who can write the directory can rename a state.json of their own over the edge's (their
 * tunnels, their routes), or create state.json.tmp first and own the next state.json. */
static void test_world_writable_data_dir_is_refused(void **state)
{
    struct store *st = (struct store *)1;
    char want[300];

    (void)state;
    assert_int_equal(chmod(dir, 01777), 0);
    assert_int_equal(store_open(dir, &st, err, sizeof(err)), CV_EAUTH);
    assert_null(st);
    snprintf(want, sizeof(want), "%s: refusing a data directory that others can write", dir);
    if (strstr(err, want) != err || strstr(err, "chmod 700") == NULL)
        fail_msg("got \"%s\"", err);
    assert_int_equal(chmod(dir, 0750), 0);
    st = open_ok();
    store_free(st);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_new_store_is_empty_and_creates_its_directory_0700),
        T(test_create_returns_a_secret_and_stores_only_its_hash),
        T(test_find_accepts_a_name_or_an_id),
        T(test_persistence_round_trip),
        T(test_duplicate_names_are_refused),
        T(test_name_validation),
        T(test_authenticate_accepts_only_the_right_secret_for_the_right_id),
        T(test_authenticate_on_an_empty_store_is_null),
        T(test_rotate_replaces_the_secret),
        T(test_route_precedence),
        T(test_route_add_normalises_and_refuses_takeover),
        T(test_route_delete),
        T(test_delete_cascades_to_routes),
        T(test_iteration_is_in_creation_order),
        T(test_leftover_temp_file_is_ignored),
        T(test_corrupt_file_is_an_error_naming_file_and_offset),
        T(test_duplicates_in_the_file_are_corrupt),
        T(test_second_open_of_one_directory_is_refused),
        T(test_data_dir_that_is_a_file_is_an_error),
        T(test_world_writable_data_dir_is_refused),
        T(test_failed_write_leaves_memory_unchanged),
        T(test_allocation_failures_during_open_fail_cleanly),
        T(test_allocation_failures_during_changes_leave_the_store_unchanged),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
