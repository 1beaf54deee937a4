/*
 * fuzz_token.c - libFuzzer target F6 (RELIABILITY.md §8 T-38): tunnel tokens and credentials files
 * (common/token.c, and through them common/json.c and the edge address parser).
 *
 * The input is decoded as a token and, separately, parsed as a credentials file. Whatever decodes
 * is encoded again and must decode to an identical token (id, secret, edges, CA digest). Nothing may
 * leak (mem_live_count), and a failed decode leaves the token empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_empty(const struct token *t)
{
    static const uint8_t zero[TOKEN_SECRET_LEN];

    return t->edges == NULL && t->n_edges == 0 && !t->has_ca_sha256 &&
           memcmp(t->secret, zero, sizeof(zero)) == 0;
}

static void check_equal(const struct token *a, const struct token *b)
{
    char x[HOSTNAME_MAX + 16];
    char y[HOSTNAME_MAX + 16];

    if (memcmp(a->id, b->id, TOKEN_ID_LEN) != 0 || memcmp(a->secret, b->secret, TOKEN_SECRET_LEN) ||
        a->n_edges != b->n_edges || a->has_ca_sha256 != b->has_ca_sha256)
        abort();
    if (a->has_ca_sha256 && memcmp(a->ca_sha256, b->ca_sha256, TOKEN_DIGEST_LEN) != 0)
        abort();
    for (size_t i = 0; i < a->n_edges; i++) {
        config_format_addr(&a->edges[i], x, sizeof(x));
        config_format_addr(&b->edges[i], y, sizeof(y));
        if (strcmp(x, y) != 0)
            abort();
    }
}

/* Encodes |t| and decodes the result: it must be the same token. */
static void round_trip(const struct token *t)
{
    struct token back;
    const char *why;
    char *text;
    size_t len;

    if (t->n_edges == 0)
        return;
    if (token_encode(t, &text, &len) != 0)
        abort();
    token_init(&back);
    if (token_decode(text, len, &back, &why) != 0)
        abort();
    check_equal(t, &back);
    token_cleanup(&back);
    mem_free_secret(text, len + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    long live = mem_live_count();
    struct token t;
    const char *why = NULL;

    token_init(&t);
    if (token_decode((const char *)data, size, &t, &why) == 0) {
        if (t.n_edges == 0)
            abort(); /* a token always names an edge */
        round_trip(&t);
        token_cleanup(&t);
    } else if (!is_empty(&t) || why == NULL) {
        abort();
    }
    if (token_parse_credentials((const char *)data, size, &t, &why) == 0) {
        round_trip(&t);
        token_cleanup(&t);
    } else if (!is_empty(&t)) {
        abort();
    }
    if (mem_live_count() != live)
        abort();
    return 0;
}
