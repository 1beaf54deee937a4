/*
 * test_http1.c - the HTTP/1.1 layer (common/http1.c): the malformed-request corpus of
 * tests/corpus/requests (whole and byte by byte), the eight inputs llhttp 8.1.0 wrongly accepts,
 * valid requests of many shapes split at every position, chunked bodies, pipelining with pauses,
 * upgrades, responses (Content-Length, chunked, close-delimited, HEAD, 204, 304, 1xx, 101), limits,
 * serialization round trips, hop-by-hop rules, the WebSocket accept key, and allocation failures.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "http1.h"
#include "limits.h"
#include "mem.h"
#include "support.h"

#define CORPUS_DIR "../corpus/requests"
#define MAX_MSGS 16

/* ---- a recording harness ------------------------------------------------------------------- */

/* A growable string (test code: plain malloc). */
struct str {
    char *p;
    size_t n;
    size_t cap;
};

static void str_add(struct str *s, const void *p, size_t n)
{
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        assert_non_null(s->p);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
}

static void str_adds(struct str *s, const char *p)
{
    str_add(s, p, strlen(p));
}

static void str_free(struct str *s)
{
    free(s->p);
    memset(s, 0, sizeof(*s));
}

/* What the hooks saw. Heads are described as text so that they can be compared. */
struct rec {
    int pause_on_head;
    int pause_on_body;
    int pause_on_complete;
    int fail_on_head;         /* a negative code to return from on_head */
    int heads;
    int completes;
    struct str desc[MAX_MSGS];
    unsigned flags[MAX_MSGS];
    int status[MAX_MSGS];
    int64_t cl[MAX_MSGS];
    enum http1_upgrade upgrade[MAX_MSGS];
    struct str body;
    int body_calls;
    int results[MAX_MSGS]; /* per message: 200, 101 (upgrade), or an error status */
    int nresults;
};

static void describe(struct str *s, const struct http1_head *h)
{
    size_t i;
    char tmp[64];

    str_adds(s, h->method != NULL ? h->method : "-");
    str_adds(s, "|");
    str_adds(s, h->target != NULL ? h->target : "-");
    str_adds(s, "|");
    str_adds(s, h->path != NULL ? h->path : "-");
    str_adds(s, "|");
    str_adds(s, h->host != NULL ? h->host : "-");
    str_adds(s, "|");
    if (h->authority != NULL)
        str_add(s, h->authority, h->authority_len);
    snprintf(tmp, sizeof(tmp), "|1.%d|%d|", h->version_minor, h->status);
    str_adds(s, tmp);
    str_adds(s, h->reason != NULL ? h->reason : "-");
    for (i = 0; i < h->nfields; i++) {
        assert_int_equal(strlen(h->fields[i].name), h->fields[i].name_len);
        assert_int_equal(strlen(h->fields[i].value), h->fields[i].value_len);
        str_adds(s, "|");
        str_add(s, h->fields[i].name, h->fields[i].name_len);
        str_adds(s, "=");
        str_add(s, h->fields[i].value, h->fields[i].value_len);
    }
    for (i = 0; i < h->nconn_tokens; i++) {
        str_adds(s, "|conn:");
        str_add(s, h->conn_tokens[i].p, h->conn_tokens[i].n);
    }
}

static int on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct rec *r = arg;

    (void)p;
    assert_true(r->heads < MAX_MSGS);
    describe(&r->desc[r->heads], h);
    r->flags[r->heads] = h->flags;
    r->status[r->heads] = h->status;
    r->cl[r->heads] = h->content_length;
    r->upgrade[r->heads] = h->upgrade;
    r->heads++;
    if (r->fail_on_head < 0)
        return r->fail_on_head;
    return r->pause_on_head ? HTTP1_PAUSE : 0;
}

static int on_body(struct http1_parser *p, const uint8_t *d, size_t n, void *arg)
{
    struct rec *r = arg;

    (void)p;
    assert_true(n > 0);
    str_add(&r->body, d, n);
    r->body_calls++;
    return r->pause_on_body ? HTTP1_PAUSE : 0;
}

static int on_complete(struct http1_parser *p, void *arg)
{
    struct rec *r = arg;

    (void)p;
    assert_true(r->heads > 0);
    assert_true(r->nresults < MAX_MSGS);
    r->results[r->nresults++] = (r->flags[r->heads - 1] & HTTP1_F_UPGRADE) ? 101 : 200;
    r->completes++;
    return r->pause_on_complete ? HTTP1_PAUSE : 0;
}

static const struct http1_hooks rec_hooks = {on_head, on_body, on_complete};

static void rec_free(struct rec *r)
{
    int i;

    for (i = 0; i < MAX_MSGS; i++)
        str_free(&r->desc[i]);
    str_free(&r->body);
}

static struct cv_limits default_limits(void)
{
    struct cv_limits l;

    limits_init(&l);
    return l;
}

/*
 * Feeds |n| bytes in pieces of |piece| bytes (0: all at once), resuming every pause, until the input
 * is used up, an error, or DONE/UPGRADED. A response parser gets http1_finish() at the end. Returns
 * the last negative code or 0; *|rest| (may be NULL) gets the unconsumed byte count.
 */
static int run(struct http1_parser *p, struct rec *r, const uint8_t *d, size_t n, size_t piece,
               int finish, size_t *rest)
{
    size_t off = 0;
    size_t end;
    ssize_t k;
    int rv = 0;

    for (;;) {
        end = piece == 0 ? n : (off + piece < n ? off + piece : n);
        k = http1_feed(p, d + off, end - off);
        if (k < 0) {
            rv = (int)k;
            break;
        }
        off += (size_t)k;
        if (http1_paused(p)) {
            http1_resume(p);
            continue;
        }
        if (http1_state(p) == HTTP1_S_DONE || http1_state(p) == HTTP1_S_UPGRADED)
            break;
        if (off == n)
            break;
        assert_int_equal(off, end); /* not paused, not finished: everything offered was taken */
    }
    if (rv == 0) {
        /* A completion held by the last pause. */
        k = http1_feed(p, NULL, 0);
        if (k < 0)
            rv = (int)k;
    }
    if (rv == 0 && finish)
        rv = http1_finish(p);
    if (rv < 0) {
        assert_true(r->nresults < MAX_MSGS);
        r->results[r->nresults++] = http1_error_status(p);
    }
    if (rest != NULL)
        *rest = n - off;
    return rv;
}

/* Parses |text| (a C string) as requests with default limits. */
static int parse_req(struct rec *r, const char *text, size_t piece)
{
    struct cv_limits l = default_limits();
    struct http1_parser *p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, r);
    int rv;

    assert_non_null(p);
    rv = run(p, r, (const uint8_t *)text, strlen(text), piece, 0, NULL);
    http1_parser_free(p);
    return rv;
}

static int parse_resp(struct rec *r, const char *text, size_t piece)
{
    struct cv_limits l = default_limits();
    struct http1_parser *p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, r);
    int rv;

    assert_non_null(p);
    rv = run(p, r, (const uint8_t *)text, strlen(text), piece, 1, NULL);
    http1_parser_free(p);
    return rv;
}

/* ---- the corpus ---------------------------------------------------------------------------- */

struct corpus_case {
    char name[256];
    uint8_t *data;
    size_t n;
    int want[MAX_MSGS];
    int nwant;
};

static int parse_statuses(const char *s, int *out)
{
    int n = 0;
    char *end;
    long v;

    for (;;) {
        while (*s == ' ')
            s++;
        if (*s == '\0' || *s == '\n')
            break;
        v = strtol(s, &end, 10);
        if (end == s || n >= MAX_MSGS)
            return -1;
        out[n++] = (int)v;
        s = end;
    }
    return n;
}

/* Reads one corpus file (format: tests/corpus/requests/README.md). */
static void corpus_load(const char *path, struct corpus_case *c)
{
    size_t len;
    char *text = support_read_file(path, &len);
    char *s;
    char *line_end;
    int nparser = 0;
    int parser[MAX_MSGS];
    uint8_t *out;
    size_t n = 0;

    assert_non_null(text);
    s = text;
    c->nwant = 0;
    while (*s == '#') {
        line_end = strchr(s, '\n');
        assert_non_null(line_end);
        *line_end = '\0';
        if (strncmp(s, "# expect:", 9) == 0)
            c->nwant = parse_statuses(s + 9, c->want);
        else if (strncmp(s, "# parser:", 9) == 0)
            nparser = parse_statuses(s + 9, parser);
        s = line_end + 1;
    }
    if (nparser > 0) {
        memcpy(c->want, parser, sizeof(parser[0]) * (size_t)nparser);
        c->nwant = nparser;
    }
    if (c->nwant <= 0)
        fail_msg("%s: no '# expect:' line", path);
    out = malloc(strlen(s) + 1);
    assert_non_null(out);
    while (*s != '\0') {
        if (*s == '\n') {
            s++;
        } else if (*s != '\\') {
            out[n++] = (uint8_t)*s++;
        } else {
            s++;
            switch (*s) {
            case 'r': out[n++] = '\r'; break;
            case 'n': out[n++] = '\n'; break;
            case 't': out[n++] = '\t'; break;
            case '\\': out[n++] = '\\'; break;
            case 'x': {
                char hex[3] = {s[1], s[2], 0};

                out[n++] = (uint8_t)strtoul(hex, NULL, 16);
                s += 2;
                break;
            }
            default:
                fail_msg("%s: unknown escape \\%c", path, *s);
            }
            s++;
        }
    }
    c->data = out;
    c->n = n;
    free(text);
}

static int corpus_each(void (*fn)(struct corpus_case *c))
{
    DIR *d = opendir(CORPUS_DIR);
    struct dirent *e;
    struct corpus_case c;
    char path[512];
    int count = 0;
    size_t len;

    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, e->d_name);
        memset(&c, 0, sizeof(c));
        snprintf(c.name, sizeof(c.name), "%s", e->d_name);
        corpus_load(path, &c);
        fn(&c);
        free(c.data);
        count++;
    }
    closedir(d);
    return count;
}

static void corpus_run(struct corpus_case *c, size_t piece)
{
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    int i;
    long live = mem_live_count();

    memset(&r, 0, sizeof(r));
    r.pause_on_complete = 1; /* one pipelined request at a time */
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    run(p, &r, c->data, c->n, piece, 0, NULL);
    if (r.nresults != c->nwant)
        fail_msg("%s (piece %zu): %d results, want %d (first %d, error '%s')", c->name, piece,
                 r.nresults, c->nwant, r.nresults > 0 ? r.results[0] : 0, http1_error_reason(p));
    for (i = 0; i < c->nwant; i++) {
        if (r.results[i] != c->want[i])
            fail_msg("%s (piece %zu): result %d is %d, want %d ('%s')", c->name, piece, i,
                     r.results[i], c->want[i], http1_error_reason(p));
    }
    http1_parser_free(p);
    rec_free(&r);
    assert_int_equal(mem_live_count(), live);
}

static void corpus_whole(struct corpus_case *c)
{
    corpus_run(c, 0);
}

static void corpus_bytewise(struct corpus_case *c)
{
    corpus_run(c, 1);
}

static void corpus_split7(struct corpus_case *c)
{
    corpus_run(c, 7);
}

static void test_corpus_gives_expected_status_whole(void **state)
{
    (void)state;
    assert_true(corpus_each(corpus_whole) >= 50);
}

static void test_corpus_gives_expected_status_byte_at_a_time(void **state)
{
    (void)state;
    assert_true(corpus_each(corpus_bytewise) >= 50);
}

static void test_corpus_gives_expected_status_in_7_byte_pieces(void **state)
{
    (void)state;
    assert_true(corpus_each(corpus_split7) >= 50);
}

/* ---- the eight inputs llhttp 8.1.0 accepts (RELIABILITY.md §5.2) --------------------------- */

static void test_parser_has_no_lenient_flags(void **state)
{
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_parser_lenient_flags(p), 0);
    assert_int_equal(http1_feed(p, (const uint8_t *)"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27), 27);
    assert_int_equal(http1_parser_lenient_flags(p), 0); /* still, after a reset */
    http1_parser_free(p);
    p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_parser_lenient_flags(p), 0);
    http1_parser_free(p);
    rec_free(&r);
}

static void expect_rejected_without_smuggled_head(const char *text, int heads_before)
{
    struct rec r;
    size_t piece;

    for (piece = 0; piece <= 1; piece++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(parse_req(&r, text, piece) < 0, 1);
        assert_int_equal(r.results[r.nresults - 1], 400);
        assert_int_equal(r.heads, heads_before);
        rec_free(&r);
    }
}

static void test_bare_cr_in_value_does_not_create_a_header(void **state)
{
    (void)state;
    expect_rejected_without_smuggled_head(
        "GET / HTTP/1.1\r\nHost: a\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0);
}

static void test_cr_lf_cr_x_does_not_end_the_head(void **state)
{
    (void)state;
    expect_rejected_without_smuggled_head(
        "GET / HTTP/1.1\r\nHost: a\r\n\rXGET /x HTTP/1.1\r\nHost: a\r\n\r\n", 0);
}

static void test_obs_fold_empty_name_and_space_in_name_are_rejected(void **state)
{
    (void)state;
    expect_rejected_without_smuggled_head("GET / HTTP/1.1\r\nHost: a\r\nFoo: a\r\n b\r\n\r\n", 0);
    expect_rejected_without_smuggled_head("GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", 0);
    expect_rejected_without_smuggled_head("GET / HTTP/1.1\r\nHost: a\r\nFoo Bar: x\r\n\r\n", 0);
}

static void test_bare_cr_in_chunk_size_line_is_rejected(void **state)
{
    (void)state;
    expect_rejected_without_smuggled_head(
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\rX\r\n0\r\n\r\n", 1);
}

static void test_content_length_in_trailers_is_rejected(void **state)
{
    (void)state;
    expect_rejected_without_smuggled_head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                                          "chunked\r\n\r\n1\r\nX\r\n0\r\nContent-Length: 5\r\n\r\n",
                                          1);
}

static void test_data_after_connection_close_is_never_parsed(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
                               "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    size_t first = strlen("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)first);
    assert_int_equal(http1_state(p), HTTP1_S_DONE);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 1);
    assert_false(r.flags[0] & HTTP1_F_KEEP_ALIVE);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + first, strlen(text) - first), 0);
    assert_int_equal(r.heads, 1);
    assert_int_equal(http1_finish(p), 0);
    http1_parser_free(p);
    rec_free(&r);
}

/* http1_error_field: the fields of a head refused by the end-of-head checks, for the error page's
 * format; nothing for an error in a body (its trailers are not a head). */
static void test_error_field_gives_fields_read_before_a_head_error(void **state)
{
    static const char head_err[] = "TRACE / HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n\r\n";
    static const char body_err[] = "POST / HTTP/1.1\r\nHost: a\r\nAccept: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\nzz\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_null(http1_error_field(p, "accept")); /* no error */
    assert_true(http1_feed(p, (const uint8_t *)head_err, strlen(head_err)) < 0);
    assert_int_equal(http1_error_status(p), 405);
    assert_string_equal(http1_error_field(p, "ACCEPT"), "application/json");
    assert_null(http1_error_field(p, "user-agent"));
    http1_parser_free(p);

    l = default_limits();
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_true(http1_feed(p, (const uint8_t *)body_err, strlen(body_err)) < 0);
    assert_int_equal(http1_error_status(p), 400);
    assert_null(http1_error_field(p, "accept"));
    http1_parser_free(p);
    rec_free(&r);
}

/* ---- valid requests ------------------------------------------------------------------------- */

static void test_get_head_is_parsed(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET /a/b?c=d HTTP/1.1\r\nHost: Example.COM:8443\r\n"
                                   "User-Agent: t/1\r\nAccept: */*\r\n\r\n", 0), 0);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 1);
    assert_string_equal(r.desc[0].p, "GET|/a/b?c=d|/a/b?c=d|Example.COM:8443||1.1|0|-"
                                     "|Host=Example.COM:8443|User-Agent=t/1|Accept=*/*");
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_int_equal(r.cl[0], -1);
    assert_int_equal(r.upgrade[0], HTTP1_UP_NONE);
    assert_int_equal(r.body.n, 0);
    rec_free(&r);
}

static void test_field_values_lose_surrounding_whitespace_only(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t in  side \t\r\nX-B:\r\n"
                                   "X-C:   \r\n\r\n", 0), 0);
    assert_string_equal(r.desc[0].p, "GET|/|/|a||1.1|0|-|Host=a|X-A=in  side|X-B=|X-C=");
    rec_free(&r);
}

static void test_content_length_body_is_delivered(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n"
                                   "hello world", 0), 0);
    assert_int_equal(r.cl[0], 11);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE);
    assert_string_equal(r.body.p, "hello world");
    assert_int_equal(r.completes, 1);
    rec_free(&r);
}

static void test_chunked_body_with_extensions_and_trailers(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "5;name=value\r\nhello\r\n1;q=\"a b\"\r\n \r\n"
                                   "A\r\n0123456789\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n",
                               0), 0);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_CHUNKED);
    assert_string_equal(r.body.p, "hello 0123456789");
    assert_int_equal(r.completes, 1);
    /* Trailers are dropped: never part of the head. */
    assert_null(strstr(r.desc[0].p, "Trailer"));
    assert_null(strstr(r.desc[0].p, "X-Other"));
    rec_free(&r);
}

/* Every valid shape, split at every position into two feeds, gives the same events. */
static void test_valid_requests_split_at_every_position(void **state)
{
    static const char *const shapes[] = {
        "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        "\r\nGET http://a.test/x?y HTTP/1.1\r\nHost: A.test\r\nConnection: keep-alive, X-Z\r\n"
        "X-Z: 1\r\n\r\n",
        "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
        "PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n"
        "2\r\nde\r\n0\r\nT: v\r\n\r\n",
        "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.0\r\nHost: b\r\nConnection: keep-alive\r\n"
        "\r\nDELETE /3 HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    };
    struct cv_limits l = default_limits();
    size_t s;
    size_t cut;
    size_t n;
    struct rec whole;
    struct rec split;
    struct http1_parser *p;
    int i;

    (void)state;
    for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        memset(&whole, 0, sizeof(whole));
        whole.pause_on_complete = 1;
        assert_int_equal(parse_req(&whole, shapes[s], 0), 0);
        assert_true(whole.completes >= 1);
        n = strlen(shapes[s]);
        for (cut = 1; cut < n; cut++) {
            size_t rest = 0;

            memset(&split, 0, sizeof(split));
            split.pause_on_complete = (int)(cut & 1);
            p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &split);
            assert_non_null(p);
            assert_int_equal(run(p, &split, (const uint8_t *)shapes[s], cut, 0, 0, &rest), 0);
            assert_int_equal(run(p, &split, (const uint8_t *)shapes[s] + cut - rest, n - cut + rest,
                                 0, 0, NULL), 0);
            assert_int_equal(split.heads, whole.heads);
            assert_int_equal(split.completes, whole.completes);
            for (i = 0; i < whole.heads; i++) {
                assert_string_equal(split.desc[i].p, whole.desc[i].p);
                assert_int_equal(split.flags[i], whole.flags[i]);
            }
            assert_int_equal(split.body.n, whole.body.n);
            if (whole.body.n > 0)
                assert_memory_equal(split.body.p, whole.body.p, whole.body.n);
            http1_parser_free(p);
            rec_free(&split);
        }
        rec_free(&whole);
    }
}

static void test_absolute_form_gives_authority_and_origin_path(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET https://A.Test:8443?x=1 HTTP/1.1\r\nHost: a.test:8443\r\n\r\n"
                                   "GET http://a.test HTTP/1.1\r\nHost: a.test\r\n\r\n", 0), 0);
    assert_string_equal(r.desc[0].p,
                        "GET|https://A.Test:8443?x=1|/?x=1|a.test:8443|A.Test:8443|1.1|0|-"
                        "|Host=a.test:8443");
    assert_true(r.flags[0] & HTTP1_F_ABSOLUTE_FORM);
    assert_string_equal(r.desc[1].p, "GET|http://a.test|/|a.test|a.test|1.1|0|-|Host=a.test");
    rec_free(&r);
}

static void test_keep_alive_follows_version_and_connection(void **state)
{
    static const struct {
        const char *text;
        int keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\n\r\n", 0},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1},
        {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0},
    };
    size_t i;
    struct rec r;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(parse_req(&r, cases[i].text, 0), 0);
        assert_int_equal(!!(r.flags[0] & HTTP1_F_KEEP_ALIVE), cases[i].keep_alive);
        rec_free(&r);
    }
}

static void test_connection_tokens_are_listed(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-A\r\n"
                                   "Connection: ,,X-B ,\r\n\r\n", 0), 0);
    assert_non_null(strstr(r.desc[0].p, "|conn:keep-alive|conn:X-A|conn:X-B"));
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_true(parse_req(&r, "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", 0) < 0);
    assert_int_equal(r.results[0], 400);
    rec_free(&r);
}

static void test_expect_continue_is_flagged_on_http11_only(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                                   "Content-Length: 1\r\n\r\nx"
                                   "POST / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n"
                                   "Content-Length: 1\r\n\r\nx", 0), 0);
    assert_true(r.flags[0] & HTTP1_F_EXPECT_CONTINUE);
    assert_false(r.flags[1] & HTTP1_F_EXPECT_CONTINUE);
    rec_free(&r);
}

/* ---- pausing and pipelining ------------------------------------------------------------------- */

static void test_pipelined_requests_come_one_at_a_time(void **state)
{
    static const char text[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                               "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                               "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    size_t a = strlen("GET /1 HTTP/1.1\r\nHost: a\r\n\r\n");
    size_t b = strlen("POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    size_t n = strlen(text);

    (void)state;
    memset(&r, 0, sizeof(r));
    r.pause_on_complete = 1;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, n), (ssize_t)a);
    assert_int_equal(r.completes, 1);
    assert_true(http1_paused(p));
    assert_int_equal(http1_state(p), HTTP1_S_IDLE);
    /* Paused: nothing more is taken. */
    assert_int_equal(http1_feed(p, (const uint8_t *)text + a, n - a), 0);
    http1_resume(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + a, n - a), (ssize_t)b);
    assert_int_equal(r.completes, 2);
    assert_string_equal(r.body.p, "abc");
    http1_resume(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + a + b, n - a - b), (ssize_t)(n - a - b));
    assert_int_equal(r.completes, 3);
    assert_int_equal(r.heads, 3);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_pause_on_head_holds_the_completion_until_resume(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.pause_on_head = 1;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.completes, 0);
    assert_true(http1_paused(p));
    assert_int_equal(http1_feed(p, NULL, 0), 0);
    assert_int_equal(r.completes, 0);
    http1_resume(p);
    assert_int_equal(http1_feed(p, NULL, 0), 0);
    assert_int_equal(r.completes, 1);
    assert_int_equal(http1_state(p), HTTP1_S_IDLE);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_pause_on_body_stops_within_the_body(void **state)
{
    static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char text[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    size_t off;
    ssize_t k;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.pause_on_body = 1;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    k = http1_feed(p, (const uint8_t *)text, strlen(text));
    /* Stopped after the first chunk's data: its CRLF and the rest are left. */
    assert_int_equal(k, (ssize_t)(strlen(head) + strlen("3\r\nabc")));
    assert_string_equal(r.body.p, "abc");
    assert_int_equal(http1_state(p), HTTP1_S_BODY);
    off = (size_t)k;
    http1_resume(p);
    k = http1_feed(p, (const uint8_t *)text + off, strlen(text) - off);
    assert_true(k > 0);
    assert_string_equal(r.body.p, "abcde");
    assert_int_equal(r.completes, 0);
    off += (size_t)k;
    http1_resume(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + off, strlen(text) - off),
                     (ssize_t)(strlen(text) - off));
    assert_int_equal(r.completes, 1);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_upgrade_leaves_the_rest_to_the_caller(void **state)
{
    static const char head[] = "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n"
                               "Upgrade: WebSocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n";
    char text[512];
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    snprintf(text, sizeof(text), "%s%s", head, "\x81\x05hello GET / HTTP/1.1\r\n");
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(head));
    assert_int_equal(http1_state(p), HTTP1_S_UPGRADED);
    assert_int_equal(r.flags[0], HTTP1_F_UPGRADE | HTTP1_F_NO_BODY);
    assert_int_equal(r.upgrade[0], HTTP1_UP_WEBSOCKET);
    assert_int_equal(r.completes, 1);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + strlen(head), 5), 0);
    assert_int_equal(http1_finish(p), 0);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_culvert_tcp_upgrade_is_accepted_without_websocket_fields(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET / HTTP/1.1\r\nHost: ssh.a\r\nConnection: upgrade\r\n"
                                   "Upgrade: culvert-tcp\r\n\r\n", 0), 0);
    assert_int_equal(r.results[0], 101);
    assert_int_equal(r.upgrade[0], HTTP1_UP_CULVERT_TCP);
    rec_free(&r);
}

static void test_upgrade_without_connection_token_is_a_plain_request(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"
                                   "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 0), 0);
    assert_int_equal(r.completes, 2);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_int_equal(r.upgrade[0], HTTP1_UP_NONE);
    rec_free(&r);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void test_hook_error_aborts_with_its_code_and_sticks(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.fail_on_head = CV_EAUTH;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), CV_EAUTH);
    assert_int_equal(http1_state(p), HTTP1_S_ERROR);
    assert_int_equal(http1_error_status(p), 500);
    assert_int_equal(r.completes, 0);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), CV_EAUTH);
    assert_int_equal(http1_finish(p), CV_EAUTH);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_error_kinds_and_reasons(void **state)
{
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_error_status(p), 0);
    assert_string_equal(http1_error_reason(p), "");
    assert_int_equal(http1_feed(p, (const uint8_t *)"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n", 31),
                     CV_EPARSE);
    assert_int_equal(http1_error_status(p), 400);
    assert_string_equal(http1_error_reason(p), "control character in field value");
    assert_string_equal(http1_state_name(http1_state(p)), "error");
    http1_parser_free(p);

    l.max_url = 4;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)"GET /abcd HTTP/1.1\r\n", 20), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 414);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_small_limits_are_exact(void **state)
{
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    /* Field section: "Host: a\r\n" (9) + "X: 12345\r\n" (10) + "\r\n" (2) = 21 bytes, 2 fields. */
    static const char text[] = "GET /1234 HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n";
    static const char chunked[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "1;ab\r\nx\r\n0;c\r\nT: 1\r\n\r\n";
    size_t n = strlen(text);

    (void)state;
    memset(&r, 0, sizeof(r));
    l.max_url = 5;
    l.max_header_bytes = 21;
    l.max_header_fields = 2;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, n), (ssize_t)n);
    http1_parser_free(p);

    l.max_url = 4;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, n), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 414);
    http1_parser_free(p);

    l.max_url = 5;
    l.max_header_bytes = 20;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, n), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 431);
    http1_parser_free(p);

    l.max_header_bytes = 21;
    l.max_header_fields = 1;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, n), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 431);
    http1_parser_free(p);

    /* Chunk extensions: ";ab" + ";c" = 5 bytes per message. */
    limits_init(&l);
    l.max_chunk_ext = 5;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)chunked, strlen(chunked)),
                     (ssize_t)strlen(chunked));
    http1_parser_free(p);
    l.max_chunk_ext = 4;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)chunked, strlen(chunked)), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 400);
    http1_parser_free(p);

    /* Trailers count against the field limits of their message: head 2 fields + 1 trailer. */
    limits_init(&l);
    l.max_header_fields = 2;
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)chunked, strlen(chunked)), CV_ELIMIT);
    assert_int_equal(http1_error_status(p), 431);
    http1_parser_free(p);
    rec_free(&r);
}

/* http1.h "Known limitation": if this starts passing, llhttp was upgraded; update the header. */
static void test_llhttp_8_1_0_refuses_an_extension_after_a_valued_one(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "1;a=b;c=d\r\nx\r\n0\r\n\r\n", 0), CV_EPARSE);
    assert_int_equal(r.results[0], 400);
    rec_free(&r);
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                                   "1;c;a=b\r\nx\r\n0\r\n\r\n", 0), 0);
    rec_free(&r);
}

static void test_finish_inside_a_request_is_an_error(void **state)
{
    static const char text[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_finish(p), 0); /* idle */
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(http1_state(p), HTTP1_S_BODY);
    assert_int_equal(http1_finish(p), CV_EPARSE);
    assert_int_equal(http1_state(p), HTTP1_S_ERROR);
    http1_parser_free(p);
    rec_free(&r);
}

/* ---- responses ------------------------------------------------------------------------------- */

static void test_response_with_content_length_then_another(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 0), 0);
    assert_int_equal(r.completes, 2);
    assert_string_equal(r.desc[0].p, "-|-|-|-||1.1|200|OK|Content-Length=5");
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE);
    assert_int_equal(r.status[1], 404);
    assert_int_equal(r.flags[1], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_string_equal(r.body.p, "hello");
    rec_free(&r);
}

static void test_response_chunked_byte_at_a_time(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    "4\r\ndata\r\n0\r\nX-T: 1\r\n\r\n", 1), 0);
    assert_int_equal(r.completes, 1);
    assert_string_equal(r.body.p, "data");
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_CHUNKED);
    rec_free(&r);
}

static void test_response_close_delimited_completes_at_finish(void **state)
{
    static const char text[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstream of bytes";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(r.flags[0], HTTP1_F_EOF_BODY);
    assert_int_equal(r.completes, 0);
    assert_int_equal(http1_finish(p), 0);
    assert_int_equal(r.completes, 1);
    assert_int_equal(http1_state(p), HTTP1_S_DONE);
    assert_string_equal(r.body.p, "stream of bytes");
    http1_parser_free(p);
    rec_free(&r);
}

static void test_response_truncated_body_is_an_error_at_finish(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n40 bytes", 0),
                     CV_EPARSE);
    assert_int_equal(r.completes, 0);
    assert_int_equal(r.results[0], 502);
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", 0),
                     CV_EPARSE);
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nContent-Len", 0), CV_EPARSE);
    rec_free(&r);
}

static void test_response_to_head_has_no_body(void **state)
{
    static const char r1[] = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
    static const char r2[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char text[] = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    size_t a = strlen(r1);
    size_t b = strlen(r2);
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, &r);
    assert_non_null(p);
    r.pause_on_complete = 1;
    http1_expect_head_response(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)a);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_int_equal(r.cl[0], 1234);
    http1_resume(p);
    http1_expect_head_response(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + a, strlen(text) - a), (ssize_t)b);
    assert_int_equal(r.flags[1], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY | HTTP1_F_CHUNKED);
    http1_resume(p);
    /* The flag was used up: the third response (to a GET) has its body. */
    assert_int_equal(http1_feed(p, (const uint8_t *)text + a + b, strlen(text) - a - b),
                     (ssize_t)(strlen(text) - a - b));
    assert_int_equal(r.completes, 3);
    assert_string_equal(r.body.p, "ok");
    http1_parser_free(p);
    rec_free(&r);
}

static void test_response_204_and_304_have_no_body(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    /* llhttp 8.1.0 alone would read 5 body bytes after this 204. */
    assert_int_equal(parse_resp(&r, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0), 0);
    assert_int_equal(r.flags[0], HTTP1_F_NO_BODY); /* and not reusable */
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
                                    "HTTP/1.1 204 No Content\r\n\r\n", 0), 0);
    assert_int_equal(r.completes, 2);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_int_equal(r.flags[1], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    assert_int_equal(r.body.n, 0);
    rec_free(&r);
}

static void test_response_interim_heads_precede_the_final_one(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                                    "Link: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\n"
                                    "Content-Length: 2\r\n\r\nok", 1), 0);
    assert_int_equal(r.heads, 3);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.flags[0], HTTP1_F_INTERIM | HTTP1_F_NO_BODY);
    assert_int_equal(r.flags[1], HTTP1_F_INTERIM | HTTP1_F_NO_BODY);
    assert_string_equal(r.desc[1].p, "-|-|-|-||1.1|103|Early Hints|Link=</s.css>");
    assert_int_equal(r.status[2], 201);
    assert_string_equal(r.body.p, "ok");
    rec_free(&r);

    /* An interim head with body framing makes the exchange not reusable. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n"
                                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0), 0);
    assert_int_equal(r.flags[1], HTTP1_F_NO_BODY);
    rec_free(&r);
}

static void test_response_101_switches_protocols(void **state)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    char text[256];
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;

    (void)state;
    snprintf(text, sizeof(text), "%s\x81\x02hi", head);
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, &r);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(head));
    assert_int_equal(http1_state(p), HTTP1_S_UPGRADED);
    assert_int_equal(r.flags[0], HTTP1_F_UPGRADE | HTTP1_F_NO_BODY);
    assert_int_equal(r.upgrade[0], HTTP1_UP_WEBSOCKET);
    assert_int_equal(r.completes, 1);
    http1_parser_free(p);
    rec_free(&r);

    /* A 101 without Upgrade fields still ends HTTP on the connection. */
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_RESPONSE, &l, &rec_hooks, &r);
    assert_int_equal(http1_feed(p, (const uint8_t *)"HTTP/1.1 101 x\r\n\r\nraw", 21), 18);
    assert_int_equal(http1_state(p), HTTP1_S_UPGRADED);
    assert_int_equal(r.upgrade[0], HTTP1_UP_OTHER);
    http1_parser_free(p);
    rec_free(&r);
}

static void test_response_errors_are_bad_gateway(void **state)
{
    static const char *const bad[] = {
        "HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 600 High\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 20 Short\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2000 Long\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nX: a\rSet-Cookie: evil\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
        "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n folded\r\n\r\n",
    };
    size_t i;
    struct rec r;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&r, 0, sizeof(r));
        if (parse_resp(&r, bad[i], 0) >= 0)
            fail_msg("response %zu accepted", i);
        assert_int_equal(r.results[r.nresults - 1], 502);
        rec_free(&r);
    }
}

static void test_response_http10_and_close_are_not_reusable(void **state)
{
    struct rec r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0), 0);
    assert_int_equal(r.flags[0], HTTP1_F_NO_BODY);
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                                    "Content-Length: 0\r\n\r\n", 0), 0);
    assert_int_equal(r.flags[0], HTTP1_F_KEEP_ALIVE | HTTP1_F_NO_BODY);
    rec_free(&r);

    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n"
                                    "\r\nxHTTP/1.1 200 OK\r\n\r\n", 0), 0);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.flags[0], 0);
    rec_free(&r);
}

/* ---- serialization --------------------------------------------------------------------------- */

static void test_request_head_round_trips(void **state)
{
    static const struct http1_field f[] = {
        {"Host", "a.test", 4, 6},
        {"X-Forwarded-For", "192.0.2.1, 198.51.100.7", 15, 23},
        {"X-Empty", "", 7, 0},
        {"X-Obs", "caf\xc3\xa9", 5, 5},
        {"Content-Length", "3", 14, 1},
    };
    struct buf b;
    struct rec r;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(http1_write_request_head(&b, "PATCH", "/a/b?c=%20", f, 5), 0);
    assert_int_equal(buf_append(&b, "xyz", 3), 0);
    assert_int_equal(http1_write_request_head(&b, "GET", "/2", f, 1), 0);
    buf_append(&b, "", 1); /* NUL for parse_req */
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, (const char *)b.pos, 0), 0);
    assert_int_equal(r.completes, 2);
    assert_string_equal(r.desc[0].p, "PATCH|/a/b?c=%20|/a/b?c=%20|a.test||1.1|0|-|Host=a.test"
                                     "|X-Forwarded-For=192.0.2.1, 198.51.100.7|X-Empty="
                                     "|X-Obs=caf\xc3\xa9|Content-Length=3");
    assert_string_equal(r.body.p, "xyz");
    assert_string_equal(r.desc[1].p, "GET|/2|/2|a.test||1.1|0|-|Host=a.test");
    buf_cleanup(&b);
    rec_free(&r);
}

static void test_response_head_round_trips(void **state)
{
    static const struct http1_field f[] = {
        {"Content-Type", "text/html; charset=utf-8", 12, 24},
        {"Culvert-Request-Id", "01J2", 18, 4},
        {"Content-Length", "0", 14, 1},
    };
    struct buf b;
    struct rec r;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(http1_write_response_head(&b, 502, NULL, f, 3), 0);
    assert_int_equal(http1_write_response_head(&b, 299, "", f + 2, 1), 0);
    buf_append(&b, "", 1);
    assert_string_equal((const char *)b.pos,
                        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html; charset=utf-8\r\n"
                        "Culvert-Request-Id: 01J2\r\nContent-Length: 0\r\n\r\n"
                        "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_resp(&r, (const char *)b.pos, 0), 0);
    assert_int_equal(r.completes, 2);
    assert_string_equal(r.desc[0].p, "-|-|-|-||1.1|502|Bad Gateway|Content-Type=text/html; "
                                     "charset=utf-8|Culvert-Request-Id=01J2|Content-Length=0");
    assert_string_equal(r.desc[1].p, "-|-|-|-||1.1|299||Content-Length=0");
    buf_cleanup(&b);
    rec_free(&r);
}

/* A parsed head written back and parsed again gives the same head (T-39's invariant). */
static struct buf rewritten;

static int rewrite_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    (void)p;
    (void)arg;
    assert_int_equal(http1_write_request_head(&rewritten, h->method, h->path, h->fields,
                                              h->nfields), 0);
    return 0;
}

static void test_parsed_head_rewritten_parses_the_same(void **state)
{
    static const char *const shapes[] = {
        "POST /x?y HTTP/1.1\r\nHost: a.test\r\nX-A:  spaced  value \r\nAccept: */*\r\n"
        "Content-Length: 0\r\n\r\n",
        "GET /a%20b HTTP/1.1\r\nhost: A.test\r\nX-Obs: caf\xe9\r\nX-E:\r\n"
        "!#$%&'*+-.^_`|~09azAZ: t\r\n\r\n",
        "DELETE / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Y\r\nX-Y: 1\r\n\r\n",
    };
    static const struct http1_hooks hooks = {rewrite_head, NULL, NULL};
    struct cv_limits l = default_limits();
    struct http1_parser *p;
    struct rec r;
    struct rec again;
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(parse_req(&r, shapes[i], 0), 0);
        buf_init(&rewritten, 65536);
        p = http1_parser_new(HTTP1_REQUEST, &l, &hooks, NULL);
        assert_non_null(p);
        assert_int_equal(http1_feed(p, (const uint8_t *)shapes[i], strlen(shapes[i])),
                         (ssize_t)strlen(shapes[i]));
        http1_parser_free(p);
        assert_int_equal(buf_append(&rewritten, "", 1), 0);
        memset(&again, 0, sizeof(again));
        assert_int_equal(parse_req(&again, (const char *)rewritten.pos, 0), 0);
        assert_string_equal(again.desc[0].p, r.desc[0].p);
        assert_int_equal(again.flags[0], r.flags[0]);
        buf_cleanup(&rewritten);
        rec_free(&r);
        rec_free(&again);
    }
}

static void test_writers_reject_invalid_input_and_leave_the_buffer(void **state)
{
    struct http1_field f = {"X-A", "ok", 3, 2};
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    assert_int_equal(buf_append(&b, "keep", 4), 0);
    assert_int_equal(http1_write_field(&b, "X A", 3, "v", 1), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "", 0, "v", 1), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "X:", 2, "v", 1), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "X", 1, "a\r\nSet-Cookie: x", 17), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "X", 1, "a\nb", 3), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "X", 1, "a\0b", 3), CV_EINVAL);
    assert_int_equal(http1_write_field(&b, "X", 1, "a\x7f", 2), CV_EINVAL);
    assert_int_equal(http1_write_request_line(&b, "GET", 3, "/a b", 4), CV_EINVAL);
    assert_int_equal(http1_write_request_line(&b, "GET", 3, "", 0), CV_EINVAL);
    assert_int_equal(http1_write_request_line(&b, "G T", 3, "/", 1), CV_EINVAL);
    assert_int_equal(http1_write_request_line(&b, "GET", 3, "/\xc3\xa9", 3), CV_EINVAL);
    assert_int_equal(http1_write_status_line(&b, 99, NULL), CV_EINVAL);
    assert_int_equal(http1_write_status_line(&b, 600, NULL), CV_EINVAL);
    assert_int_equal(http1_write_status_line(&b, 200, "O\r\nK"), CV_EINVAL);
    f.value = "bad\r";
    f.value_len = 4;
    assert_int_equal(http1_write_request_head(&b, "GET", "/", &f, 1), CV_EINVAL);
    assert_int_equal(http1_write_response_head(&b, 200, NULL, &f, 1), CV_EINVAL);
    assert_int_equal(http1_write_response_head(&b, 1000, NULL, NULL, 0), CV_EINVAL);
    {
        /* A bad field anywhere: nothing of the good ones before it is written either. */
        const struct http1_field two[] = {{"X-Good", "fine", 6, 4}, {"X-Bad", "a\r\nb", 5, 4}};

        assert_int_equal(http1_write_fields_end(&b, two, 2), CV_EINVAL);
    }
    assert_int_equal(http1_write_chunk_header(&b, 0), CV_EINVAL);
    assert_int_equal(buf_len(&b), 4);
    assert_memory_equal(b.pos, "keep", 4);
    buf_cleanup(&b);
}

static void test_writers_fail_whole_on_a_full_buffer(void **state)
{
    static const struct http1_field f[] = {{"Host", "a.test", 4, 6}, {"X", "y", 1, 1}};
    struct buf b;

    (void)state;
    buf_init(&b, 30);
    assert_int_equal(buf_append(&b, "12345", 5), 0);
    assert_int_equal(http1_write_request_head(&b, "GET", "/", f, 2), CV_EFULL); /* 36 bytes */
    assert_int_equal(buf_len(&b), 5);
    assert_int_equal(http1_write_request_line(&b, "GET", 3, "/", 1), 0);
    assert_int_equal(http1_write_field(&b, "Host", 4, "a.test", 6), CV_EFULL);
    assert_int_equal(http1_write_fields_end(&b, f, 2), CV_EFULL); /* 22 bytes, 9 left */
    assert_int_equal(buf_len(&b), 5 + 16);
    buf_cleanup(&b);
}

static void test_writers_trim_value_whitespace(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 256);
    assert_int_equal(http1_write_field(&b, "X-A", 3, " \t v v\t ", 8), 0);
    assert_int_equal(http1_write_head_end(&b), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal((const char *)b.pos, "X-A: v v\r\n\r\n");
    buf_consume(&b, buf_len(&b));
    {
        const struct http1_field f[] = {{"X-A", " a ", 3, 3}, {"X-B", "\tb", 3, 2}, {"X-C", "", 3, 0}};

        assert_int_equal(http1_write_fields_end(&b, f, 3), 0);
        assert_int_equal(buf_append(&b, "", 1), 0);
        assert_string_equal((const char *)b.pos, "X-A: a\r\nX-B: b\r\nX-C: \r\n\r\n");
    }
    buf_cleanup(&b);
}

static void test_chunked_writer_round_trips(void **state)
{
    static const char *const pieces[] = {"a", "0123456789abcdef0", "", "last piece"};
    struct buf b;
    struct rec r;
    size_t i;
    size_t n;
    char big[300];

    (void)state;
    buf_init(&b, 4096);
    {
        static const struct http1_field f[] = {{"Host", "a", 4, 1},
                                               {"Transfer-Encoding", "chunked", 17, 7}};

        assert_int_equal(http1_write_request_head(&b, "POST", "/", f, 2), 0);
    }
    for (i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        n = strlen(pieces[i]);
        if (n == 0)
            continue;
        assert_int_equal(http1_write_chunk_header(&b, n), 0);
        assert_int_equal(buf_append(&b, pieces[i], n), 0);
        assert_int_equal(http1_write_chunk_end(&b), 0);
    }
    memset(big, 'z', sizeof(big));
    assert_int_equal(http1_write_chunk_header(&b, sizeof(big)), 0);
    assert_int_equal(buf_append(&b, big, sizeof(big)), 0);
    assert_int_equal(http1_write_chunk_end(&b), 0);
    assert_int_equal(http1_write_last_chunk(&b), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_non_null(strstr((const char *)b.pos, "\r\n11\r\n0123456789abcdef0\r\na\r\nlast piece\r\n12c\r\n"));
    memset(&r, 0, sizeof(r));
    assert_int_equal(parse_req(&r, (const char *)b.pos, 0), 0);
    assert_int_equal(r.completes, 1);
    assert_int_equal(r.body.n, 1 + 17 + 10 + sizeof(big));
    assert_memory_equal(r.body.p, "a0123456789abcdef0last piece", 28);
    buf_cleanup(&b);
    rec_free(&r);
}

static void test_status_reasons(void **state)
{
    (void)state;
    assert_string_equal(http1_status_reason(400), "Bad Request");
    assert_string_equal(http1_status_reason(421), "Misdirected Request");
    assert_string_equal(http1_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http1_status_reason(508), "Loop Detected");
    assert_string_equal(http1_status_reason(299), "Unknown");
}

/* ---- hop-by-hop and WebSocket --------------------------------------------------------------- */

static void test_hop_by_hop_fixed_list(void **state)
{
    (void)state;
    assert_int_equal(http1_is_hop_by_hop(NULL, "Connection", 10), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "keep-alive", 10), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "Proxy-Connection", 16), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "TE", 2), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "Transfer-Encoding", 17), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "UPGRADE", 7), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "Trailer", 7), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "HTTP2-Settings", 14), 1);
    assert_int_equal(http1_is_hop_by_hop(NULL, "Content-Length", 14), 0);
    assert_int_equal(http1_is_hop_by_hop(NULL, "Trailers", 8), 0);
    assert_int_equal(http1_is_hop_by_hop(NULL, "X-Secret", 8), 0);
}

static const struct http1_head *captured;
static int hop_result[8];

static int capture_hop(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    (void)p;
    (void)arg;
    captured = h;
    hop_result[0] = http1_is_hop_by_hop(h, "x-secret", 8);
    hop_result[1] = http1_is_hop_by_hop(h, "X-Forwarded-For", 15);
    hop_result[2] = http1_is_hop_by_hop(h, "Culvert-Connecting-IP", 21);
    hop_result[3] = http1_is_hop_by_hop(h, "Host", 4);
    hop_result[4] = http1_is_hop_by_hop(h, "cdn-loop", 8);
    hop_result[5] = http1_is_hop_by_hop(h, "X-Secre", 7);
    hop_result[6] = http1_head_find(h, "CONNECTION") != NULL;
    hop_result[7] = http1_head_find(h, "X-Secret") == NULL;
    return 0;
}

static void test_connection_cannot_remove_what_the_edge_relies_on(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, X-Secret, "
                               "X-Forwarded-For, Culvert-Connecting-IP, host, CDN-Loop\r\n\r\n";
    static const struct http1_hooks hooks = {capture_hop, NULL, NULL};
    struct cv_limits l = default_limits();
    struct http1_parser *p;

    (void)state;
    p = http1_parser_new(HTTP1_REQUEST, &l, &hooks, NULL);
    assert_non_null(p);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_non_null(captured);
    assert_int_equal(hop_result[0], 1); /* listed */
    assert_int_equal(hop_result[1], 0); /* CVE-2022-31813 */
    assert_int_equal(hop_result[2], 0);
    assert_int_equal(hop_result[3], 0);
    assert_int_equal(hop_result[4], 0);
    assert_int_equal(hop_result[5], 0); /* a prefix of a token is not the token */
    assert_int_equal(hop_result[6], 1);
    assert_int_equal(hop_result[7], 1);
    /* The head stays valid after the message (DONE: Connection: close). */
    assert_int_equal(http1_state(p), HTTP1_S_DONE);
    assert_string_equal(captured->host, "a");
    http1_parser_trim(p);
    http1_parser_free(p);
    captured = NULL;
}

static void test_websocket_accept_matches_rfc6455_example(void **state)
{
    char out[HTTP1_WS_ACCEPT_LEN + 1];

    (void)state;
    assert_int_equal(http1_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(http1_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", 24,
                                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), 1);
    assert_int_equal(http1_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", 24,
                                        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo", 27), 0);
    assert_int_equal(http1_ws_accept_ok("dGhlIHNhbXBsZSBub25jZQ==", 24,
                                        "t3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), 0);
    assert_int_equal(http1_ws_accept_ok("bad", 3, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28), 0);
    assert_int_equal(http1_ws_accept("c2hvcnQ=", 8, out), CV_EINVAL);
    assert_int_equal(http1_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24), 1);
    assert_int_equal(http1_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAA=", 24), 0);
    assert_int_equal(http1_ws_key_valid("AAAAAAAAAAAAAAAAAAAAA-==", 24), 0);
    assert_int_equal(http1_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAAA==", 26), 0);
}

/* ---- memory -------------------------------------------------------------------------------- */

static void test_allocation_failures_fail_cleanly(void **state)
{
    struct cv_limits l = default_limits();
    struct str text;
    struct rec r;
    struct http1_parser *p;
    unsigned long n;
    long live = mem_live_count();
    int i;
    int rv;
    int succeeded = 0;
    char line[64];

    (void)state;
    memset(&text, 0, sizeof(text));
    str_adds(&text, "GET http://a.test/long HTTP/1.1\r\nHost: a.test\r\n");
    for (i = 0; i < 40; i++) {
        snprintf(line, sizeof(line), "X-Field-%02d: %040d\r\n", i, i);
        str_adds(&text, line);
    }
    str_adds(&text, "\r\n");
    for (n = 1; n < 40 && !succeeded; n++) {
        memset(&r, 0, sizeof(r));
        mem_fail_after(n);
        p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
        if (p == NULL) {
            assert_int_equal(n, 1);
            mem_fail_after(0);
            rec_free(&r);
            continue;
        }
        rv = run(p, &r, (const uint8_t *)text.p, text.n, 0, 0, NULL);
        mem_fail_after(0);
        if (rv == 0) {
            succeeded = 1;
            assert_int_equal(r.completes, 1);
        } else {
            assert_int_equal(rv, CV_ENOMEM);
            assert_int_equal(http1_error_status(p), 500);
            assert_int_equal(r.heads, 0);
        }
        http1_parser_free(p);
        rec_free(&r);
        assert_int_equal(mem_live_count(), live);
    }
    assert_true(succeeded);
    assert_true(n > 3); /* several allocations were failed on the way */
    str_free(&text);
}

static void test_trim_frees_the_arena_between_messages(void **state)
{
    static const char text[] = "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    struct cv_limits l = default_limits();
    struct rec r;
    struct http1_parser *p;
    long live = mem_live_count();
    long with_parser;

    (void)state;
    memset(&r, 0, sizeof(r));
    p = http1_parser_new(HTTP1_REQUEST, &l, &rec_hooks, &r);
    assert_non_null(p);
    with_parser = mem_live_count();
    assert_int_equal(with_parser, live + 1); /* nothing but the parser until the first byte */
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_true(mem_live_count() > with_parser);
    /* Not between messages: trim does nothing. */
    assert_int_equal(http1_feed(p, (const uint8_t *)"GET", 3), 3);
    http1_parser_trim(p);
    assert_true(mem_live_count() > with_parser);
    assert_int_equal(http1_feed(p, (const uint8_t *)text + 3, strlen(text) - 3),
                     (ssize_t)strlen(text) - 3);
    http1_parser_trim(p);
    assert_int_equal(mem_live_count(), with_parser);
    assert_int_equal(http1_feed(p, (const uint8_t *)text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(r.completes, 3);
    http1_parser_free(p);
    assert_int_equal(mem_live_count(), live);
    rec_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_has_no_lenient_flags),
        cmocka_unit_test(test_corpus_gives_expected_status_whole),
        cmocka_unit_test(test_corpus_gives_expected_status_byte_at_a_time),
        cmocka_unit_test(test_corpus_gives_expected_status_in_7_byte_pieces),
        cmocka_unit_test(test_bare_cr_in_value_does_not_create_a_header),
        cmocka_unit_test(test_cr_lf_cr_x_does_not_end_the_head),
        cmocka_unit_test(test_obs_fold_empty_name_and_space_in_name_are_rejected),
        cmocka_unit_test(test_bare_cr_in_chunk_size_line_is_rejected),
        cmocka_unit_test(test_content_length_in_trailers_is_rejected),
        cmocka_unit_test(test_data_after_connection_close_is_never_parsed),
        cmocka_unit_test(test_error_field_gives_fields_read_before_a_head_error),
        cmocka_unit_test(test_get_head_is_parsed),
        cmocka_unit_test(test_field_values_lose_surrounding_whitespace_only),
        cmocka_unit_test(test_content_length_body_is_delivered),
        cmocka_unit_test(test_chunked_body_with_extensions_and_trailers),
        cmocka_unit_test(test_valid_requests_split_at_every_position),
        cmocka_unit_test(test_absolute_form_gives_authority_and_origin_path),
        cmocka_unit_test(test_keep_alive_follows_version_and_connection),
        cmocka_unit_test(test_connection_tokens_are_listed),
        cmocka_unit_test(test_expect_continue_is_flagged_on_http11_only),
        cmocka_unit_test(test_pipelined_requests_come_one_at_a_time),
        cmocka_unit_test(test_pause_on_head_holds_the_completion_until_resume),
        cmocka_unit_test(test_pause_on_body_stops_within_the_body),
        cmocka_unit_test(test_upgrade_leaves_the_rest_to_the_caller),
        cmocka_unit_test(test_culvert_tcp_upgrade_is_accepted_without_websocket_fields),
        cmocka_unit_test(test_upgrade_without_connection_token_is_a_plain_request),
        cmocka_unit_test(test_hook_error_aborts_with_its_code_and_sticks),
        cmocka_unit_test(test_error_kinds_and_reasons),
        cmocka_unit_test(test_small_limits_are_exact),
        cmocka_unit_test(test_llhttp_8_1_0_refuses_an_extension_after_a_valued_one),
        cmocka_unit_test(test_finish_inside_a_request_is_an_error),
        cmocka_unit_test(test_response_with_content_length_then_another),
        cmocka_unit_test(test_response_chunked_byte_at_a_time),
        cmocka_unit_test(test_response_close_delimited_completes_at_finish),
        cmocka_unit_test(test_response_truncated_body_is_an_error_at_finish),
        cmocka_unit_test(test_response_to_head_has_no_body),
        cmocka_unit_test(test_response_204_and_304_have_no_body),
        cmocka_unit_test(test_response_interim_heads_precede_the_final_one),
        cmocka_unit_test(test_response_101_switches_protocols),
        cmocka_unit_test(test_response_errors_are_bad_gateway),
        cmocka_unit_test(test_response_http10_and_close_are_not_reusable),
        cmocka_unit_test(test_request_head_round_trips),
        cmocka_unit_test(test_response_head_round_trips),
        cmocka_unit_test(test_parsed_head_rewritten_parses_the_same),
        cmocka_unit_test(test_writers_reject_invalid_input_and_leave_the_buffer),
        cmocka_unit_test(test_writers_fail_whole_on_a_full_buffer),
        cmocka_unit_test(test_writers_trim_value_whitespace),
        cmocka_unit_test(test_chunked_writer_round_trips),
        cmocka_unit_test(test_status_reasons),
        cmocka_unit_test(test_hop_by_hop_fixed_list),
        cmocka_unit_test(test_connection_cannot_remove_what_the_edge_relies_on),
        cmocka_unit_test(test_websocket_accept_matches_rfc6455_example),
        cmocka_unit_test(test_allocation_failures_fail_cleanly),
        cmocka_unit_test(test_trim_frees_the_arena_between_messages),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
