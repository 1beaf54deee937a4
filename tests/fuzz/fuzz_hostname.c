/*
 * fuzz_hostname.c - libFuzzer target F8 (RELIABILITY.md §8 T-38): the Host/SNI normaliser and the
 * pattern matchers of common/hostname.c.
 *
 * The input is "PATTERN\nNAME" (without a newline the whole input is used for both). Invariants:
 *   - normalise(normalise(x)) == normalise(x), and the result obeys the grammar;
 *   - hostname_split gives a name that is already normal (routing key == policy key);
 *   - a parsed pattern re-parses to itself;
 *   - hostname_pattern_match and hostname_cert_match agree with a label-by-label reference;
 *   - a hostname_table holding the pattern answers lookups exactly as the matchers do.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostname.h"
#include "mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_grammar(const char *s, size_t n)
{
    size_t label = 0;

    if (n == 0 || n > HOSTNAME_MAX || strlen(s) != n)
        abort();
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                abort();
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            abort();
        if (c == '-' && label == 0)
            abort();
        if (++label > HOSTNAME_LABEL_MAX)
            abort();
    }
    if (label == 0 || s[n - 1] == '-')
        abort();
}

static void check_normalize(const char *in, size_t n)
{
    char a[HOSTNAME_MAX + 1];
    char b[HOSTNAME_MAX + 1];
    int la = hostname_normalize(in, n, a, NULL);
    int lb;

    if (la < 0)
        return;
    check_grammar(a, (size_t)la);
    lb = hostname_normalize(a, (size_t)la, b, NULL);
    if (lb != la || memcmp(a, b, (size_t)la + 1) != 0)
        abort();
}

static void check_split(const char *in, size_t n)
{
    struct hostname_host h;
    char again[HOSTNAME_MAX + 1];

    if (hostname_split(in, n, &h, NULL) < 0)
        return;
    if (h.port == 0 || h.port > 65535 || h.port < -1)
        abort();
    if (h.kind == HOSTNAME_NAME) {
        int len = hostname_normalize(h.name, strlen(h.name), again, NULL);

        if (len < 0 || strcmp(again, h.name) != 0)
            abort();
    }
}

/* Reference matcher: strip leading labels one at a time. */
static bool ref_match(const struct hostname_pattern *p, const char *name, bool one_label)
{
    const char *suffix = p->text + 2;
    const char *rest = name;
    int stripped = 0;

    if (!p->wildcard)
        return strcmp(p->text, name) == 0;
    while ((rest = strchr(rest, '.')) != NULL) {
        rest++;
        stripped++;
        if (strcmp(rest, suffix) == 0)
            return !one_label || stripped == 1;
    }
    return false;
}

static int noop_free_count;

static void noop_free(void *v)
{
    (void)v;
    noop_free_count++;
}

static void check_pattern(const char *pin, size_t pn, const char *nin, size_t nn)
{
    struct hostname_pattern p;
    struct hostname_pattern q;
    struct hostname_table *t;
    char name[HOSTNAME_MAX + 1];
    int len;
    bool route;
    bool cert;
    static int value;

    if (hostname_pattern_parse(pin, pn, &p, NULL) < 0)
        return;
    if (p.len != strlen(p.text) || p.wildcard != (p.text[0] == '*'))
        abort();
    check_grammar(p.text + (p.wildcard ? 2 : 0), p.len - (p.wildcard ? 2 : 0));
    if (hostname_pattern_parse(p.text, p.len, &q, NULL) < 0 || strcmp(p.text, q.text) != 0 ||
        p.wildcard != q.wildcard)
        abort();
    if (!p.wildcard && !hostname_pattern_match(&p, p.text, p.len))
        abort();
    if (p.wildcard && hostname_pattern_match(&p, p.text + 2, p.len - 2))
        abort(); /* never the apex */

    len = hostname_normalize(nin, nn, name, NULL);
    if (len < 0)
        return;
    route = hostname_pattern_match(&p, name, (size_t)len);
    cert = hostname_cert_match(&p, name, (size_t)len);
    if (route != ref_match(&p, name, false) || cert != ref_match(&p, name, true))
        abort();
    if (cert && !route)
        abort();

    t = hostname_table_new();
    if (t == NULL)
        abort();
    if (hostname_table_insert(t, pin, &value, NULL) == 0) {
        const char *matched = NULL;

        if ((hostname_table_lookup(t, name, &matched) != NULL) != route)
            abort();
        if (route && strcmp(matched, p.text) != 0)
            abort();
        if ((hostname_table_lookup_cert(t, name, NULL) != NULL) != cert)
            abort();
    } else {
        abort(); /* a pattern that parses must insert into an empty table */
    }
    noop_free_count = 0;
    hostname_table_free(t, noop_free);
    if (noop_free_count != 1)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    const char *nl = memchr(in, '\n', size);
    long live = mem_live_count();
    char *pat;
    char *name;
    size_t pn = nl != NULL ? (size_t)(nl - in) : size;
    size_t nn = nl != NULL ? size - pn - 1 : size;

    check_normalize(in, size);
    check_split(in, size);
    /* NUL-terminated copies: the table API takes C strings. */
    pat = malloc(pn + 1);
    name = malloc(nn + 1);
    if (pat == NULL || name == NULL)
        abort();
    memcpy(pat, in, pn);
    pat[pn] = '\0';
    memcpy(name, nl != NULL ? nl + 1 : in, nn);
    name[nn] = '\0';
    if (strlen(pat) == pn) {
        check_normalize(pat, pn);
        check_pattern(pat, pn, name, nn);
    }
    free(pat);
    free(name);
    if (mem_live_count() != live)
        abort();
    return 0;
}
