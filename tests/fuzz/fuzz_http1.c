/*
 * fuzz_http1.c - libFuzzer target for the HTTP/1.1 layer (common/http1.c): RELIABILITY.md T-38 F1
 * (the edge's request head: pre-check, llhttp, §5.4 checks, limits) and F7 (the connector's
 * response parser).
 *
 * The first input byte chooses the mode: bit 0 request (0) or response (1); bit 1 every response
 * answers a HEAD request; bit 2 hooks pause after every event (and the target resumes); bits 3-7
 * the feeding piece size (0: everything at once, else 1..31 bytes). The rest is one connection's
 * input, followed by EOF (http1_finish).
 *
 * Invariants (abort on violation): consumed counts never exceed what was offered and are short
 * only when paused, UPGRADED or DONE; an error is sticky and comes with a status (400/405/414/426/
 * 431/505 for requests, 502 for responses); body bytes never exceed the input; every accepted head
 * is well-formed (names are tokens, values hold no CR/LF/NUL, strings NUL-terminated at their
 * lengths) and, written back with http1_write_request_head / http1_write_response_head and parsed
 * again, gives the same head (T-39's round-trip property). Everything allocated is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "http1.h"
#include "limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_state {
    int pause;
    int head_response;
    size_t body_bytes;
    unsigned heads;
    unsigned completes;
};

/* The head being compared by the inner (re-)parse. */
static const struct http1_head *outer_head;
static int inner_seen;

static void check_field_bytes(const struct http1_field *f)
{
    size_t i;

    if (f->name_len == 0 || strlen(f->name) != f->name_len || strlen(f->value) != f->value_len)
        abort();
    for (i = 0; i < f->value_len; i++) {
        unsigned char c = (unsigned char)f->value[i];

        if (c == '\r' || c == '\n' || c == 0)
            abort();
    }
    if (f->value_len > 0 && (f->value[0] == ' ' || f->value[f->value_len - 1] == ' ' ||
                             f->value[0] == '\t' || f->value[f->value_len - 1] == '\t'))
        abort();
}

static int same_str(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static int inner_on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    const struct http1_head *o = outer_head;
    /* absolute-form is written back as origin-form: the path, the authority as Host. */
    unsigned mask = ~(unsigned)HTTP1_F_ABSOLUTE_FORM;
    size_t i;

    (void)p;
    (void)arg;
    /* A response's keep-alive also depends on the interim heads before it (http1.h). */
    if (o->method == NULL)
        mask &= ~(unsigned)HTTP1_F_KEEP_ALIVE;
    inner_seen++;
    if (inner_seen > 1)
        return HTTP1_PAUSE; /* only the first head is compared */
    if (h->nfields != o->nfields || (h->flags & mask) != (o->flags & mask) ||
        h->content_length != o->content_length || h->upgrade != o->upgrade ||
        h->status != o->status || h->version_minor != 1 || h->nconn_tokens != o->nconn_tokens)
        abort();
    if (o->method != NULL &&
        (!same_str(h->method, h->method_len, o->method, o->method_len) ||
         !same_str(h->target, h->target_len, o->path, o->path_len)))
        abort();
    if (o->reason != NULL && !same_str(h->reason, h->reason_len, o->reason, o->reason_len))
        abort();
    for (i = 0; i < h->nfields; i++) {
        if (!same_str(h->fields[i].name, h->fields[i].name_len, o->fields[i].name,
                      o->fields[i].name_len) ||
            !same_str(h->fields[i].value, h->fields[i].value_len, o->fields[i].value,
                      o->fields[i].value_len))
            abort();
    }
    return HTTP1_PAUSE;
}

static const struct http1_hooks inner_hooks = {inner_on_head, NULL, NULL};

/* Writes |h| back and parses it again: same head (HTTP/1.1 is written; 1.0 differs by design). */
static void round_trip(const struct http1_head *h, int is_request, int head_response)
{
    struct cv_limits l;
    struct http1_parser *p;
    struct buf b;
    int rv;
    ssize_t k;

    if (h->version_minor != 1)
        return;
    limits_init(&l);
    buf_init(&b, 1 << 20);
    if (is_request)
        rv = http1_write_request_head(&b, h->method, h->path, h->fields, h->nfields);
    else
        rv = http1_write_response_head(&b, h->status, h->reason, h->fields, h->nfields);
    if (rv != 0)
        abort(); /* what the parser accepts, the writer must accept */
    p = http1_parser_new(is_request ? HTTP1_REQUEST : HTTP1_RESPONSE, &l, &inner_hooks, NULL);
    if (p == NULL)
        abort();
    if (head_response)
        http1_expect_head_response(p);
    outer_head = h;
    inner_seen = 0;
    k = http1_feed(p, b.pos, buf_len(&b));
    if (k < 0 || inner_seen != 1)
        abort();
    http1_parser_free(p);
    buf_cleanup(&b);
}

static int on_head(struct http1_parser *p, const struct http1_head *h, void *arg)
{
    struct fuzz_state *st = arg;
    size_t i;

    st->heads++;
    if (http1_state(p) != HTTP1_S_HEAD)
        abort();
    for (i = 0; i < h->nfields; i++)
        check_field_bytes(&h->fields[i]);
    if (h->method != NULL) {
        if (h->path == NULL || h->path[0] != '/' || strlen(h->method) != h->method_len ||
            strlen(h->target) != h->target_len)
            abort();
        if ((h->flags & HTTP1_F_ABSOLUTE_FORM) &&
            (h->authority == NULL || h->host == NULL || h->authority_len != h->host_len))
            abort();
    } else if (h->status < 100 || h->status > 599) {
        abort();
    }
    round_trip(h, h->method != NULL, st->head_response);
    return st->pause ? HTTP1_PAUSE : 0;
}

static int on_body(struct http1_parser *p, const uint8_t *d, size_t n, void *arg)
{
    struct fuzz_state *st = arg;

    (void)p;
    (void)d;
    if (n == 0)
        abort();
    st->body_bytes += n;
    return st->pause ? HTTP1_PAUSE : 0;
}

static int on_complete(struct http1_parser *p, void *arg)
{
    struct fuzz_state *st = arg;

    st->completes++;
    if (st->completes > st->heads)
        abort();
    if (st->head_response)
        http1_expect_head_response(p); /* every response on this connection answers HEAD */
    return st->pause ? HTTP1_PAUSE : 0;
}

static const struct http1_hooks hooks = {on_head, on_body, on_complete};

static void check_error(struct http1_parser *p, int rv, int is_request)
{
    int status = http1_error_status(p);

    if (http1_state(p) != HTTP1_S_ERROR || http1_error_reason(p)[0] == '\0')
        abort();
    if (rv != CV_EPARSE && rv != CV_ELIMIT && rv != CV_ENOMEM)
        abort();
    if (!is_request && status != 502)
        abort();
    if (is_request && status != 400 && status != 405 && status != 414 && status != 426 &&
        status != 431 && status != 505 && status != 500)
        abort();
    if (http1_feed(p, (const uint8_t *)"x", 1) != rv || http1_finish(p) != rv)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cv_limits l;
    struct fuzz_state st;
    struct http1_parser *p;
    int is_request;
    size_t piece;
    size_t off = 0;
    size_t end;
    ssize_t k;
    int rv = 0;

    if (size < 1)
        return 0;
    memset(&st, 0, sizeof(st));
    is_request = !(data[0] & 1);
    st.head_response = !is_request && (data[0] & 2);
    st.pause = (data[0] & 4) != 0;
    piece = data[0] >> 3;
    data++;
    size--;
    limits_init(&l);
    p = http1_parser_new(is_request ? HTTP1_REQUEST : HTTP1_RESPONSE, &l, &hooks, &st);
    if (p == NULL)
        abort();
    if (http1_parser_lenient_flags(p) != 0)
        abort();
    if (st.head_response)
        http1_expect_head_response(p);
    for (;;) {
        end = piece == 0 ? size : (off + piece < size ? off + piece : size);
        k = http1_feed(p, data + off, end - off);
        if (k < 0) {
            rv = (int)k;
            break;
        }
        if ((size_t)k > end - off)
            abort();
        off += (size_t)k;
        if (http1_paused(p)) {
            http1_resume(p);
            continue;
        }
        if (http1_state(p) == HTTP1_S_DONE || http1_state(p) == HTTP1_S_UPGRADED)
            break;
        if (off != end)
            abort(); /* short without a reason */
        if (off == size)
            break;
    }
    if (rv == 0)
        rv = (int)http1_feed(p, NULL, 0);
    if (rv == 0 && !http1_paused(p))
        rv = http1_finish(p);
    if (rv < 0)
        check_error(p, rv, is_request);
    if (st.body_bytes > size)
        abort();
    http1_parser_free(p);
    return 0;
}
