/*
 * fuzz_hostname.c - libFuzzer target F8 (RELIABILITY.md §8 T-38): the Host/SNI normaliser and the
 * pattern matchers of common/hostname.c.
 *
 * The input is "PATTERN\nNAME" (without a newline the whole input is used for both). Invariants:
 *   - normalise(normalise(x)) == normalise(x), and the result obeys the grammar;
 *   - hostname_split gives a name that is already normal (routing key == policy key);
 *   - a parsed pattern re-parses to itself;
 *   - hostname_pattern_match and hostname_cert_match agree with a label-by-label reference;
 *   - a hostname_table holding the pattern answers lookups exactly as the matchers do;
 *   - a table of every input line as a pattern (so that buckets chain and grow) counts, orders,
 *     refuses duplicates, looks up (exact first, then the longest wildcard suffix) and removes
 *     exactly as a reference list does, before and after every other entry is removed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
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

/* ---- a table of many entries: every input line is a pattern -------------------------------- */

#define TABLE_MAX 48

struct table_ref {
    size_t n;
    char line[TABLE_MAX][HOSTNAME_MAX + 8]; /* NUL-terminated input lines */
    int parsed[TABLE_MAX];                   /* hostname_pattern_parse succeeded */
    struct hostname_pattern pat[TABLE_MAX];
    bool present[TABLE_MAX]; /* inserted and not removed */
    int value[TABLE_MAX];    /* &value[i] is line i's value */
};

static struct table_ref ref;

/* What the table must answer for |name|, from the present entries: the exact entry, else for a
 * route the wildcard with the longest matching suffix, for a certificate the parent's wildcard. */
static int ref_lookup(const char *name, bool cert)
{
    int best = -1;

    for (size_t i = 0; i < ref.n; i++) {
        if (ref.present[i] && !ref.pat[i].wildcard && strcmp(ref.pat[i].text, name) == 0)
            return (int)i;
    }
    for (size_t i = 0; i < ref.n; i++) {
        if (!ref.present[i] || !ref.pat[i].wildcard || !ref_match(&ref.pat[i], name, cert))
            continue;
        if (best < 0 || ref.pat[i].len > ref.pat[best].len)
            best = (int)i;
    }
    return best;
}

static void check_lookup_one(const struct hostname_table *t, const char *name)
{
    for (int cert = 0; cert < 2; cert++) {
        const char *matched = NULL;
        int want = ref_lookup(name, cert);
        void *v = cert ? hostname_table_lookup_cert(t, name, &matched)
                       : hostname_table_lookup(t, name, &matched);

        if (want < 0) {
            if (v != NULL)
                abort();
        } else if (v != &ref.value[want] || strcmp(matched, ref.pat[want].text) != 0) {
            abort();
        }
    }
}

/* Looks up every line as a name, and for every pattern its apex and a name under it. */
static void check_lookups(const struct hostname_table *t)
{
    char name[HOSTNAME_MAX + 8];

    for (size_t i = 0; i < ref.n; i++) {
        if (hostname_normalize(ref.line[i], strlen(ref.line[i]), name, NULL) > 0)
            check_lookup_one(t, name);
        if (!ref.parsed[i])
            continue;
        check_lookup_one(t, ref.pat[i].text + (ref.pat[i].wildcard ? 2 : 0));
        if (ref.pat[i].wildcard && ref.pat[i].len < HOSTNAME_MAX) {
            name[0] = 'x';
            memcpy(name + 1, ref.pat[i].text + 1, ref.pat[i].len); /* "*.a.b" -> "x.a.b" */
            check_lookup_one(t, name);
        }
    }
}

struct order_walk {
    size_t next; /* the line the next entry must come from */
};

static int check_order(const char *pattern, void *value, void *arg)
{
    struct order_walk *w = arg;

    while (w->next < ref.n && !ref.present[w->next])
        w->next++;
    if (w->next == ref.n || value != &ref.value[w->next] ||
        strcmp(pattern, ref.pat[w->next].text) != 0)
        abort();
    w->next++;
    return 0;
}

static size_t ref_count(void)
{
    size_t c = 0;

    for (size_t i = 0; i < ref.n; i++)
        c += ref.present[i];
    return c;
}

static void check_table_state(const struct hostname_table *t)
{
    struct order_walk w = {0};

    if (hostname_table_count(t) != ref_count())
        abort();
    if (hostname_table_foreach(t, check_order, &w) != 0)
        abort();
    check_lookups(t);
}

/* Inserts every line (up to TABLE_MAX) into one table, so that buckets chain and grow, then removes
 * every other entry; after each phase the table must answer as the reference. */
static void check_table(const char *in, size_t n)
{
    struct hostname_table *t;
    size_t off = 0;

    memset(&ref, 0, sizeof(ref));
    while (off <= n && ref.n < TABLE_MAX) {
        const char *nl = memchr(in + off, '\n', n - off);
        size_t len = nl != NULL ? (size_t)(nl - (in + off)) : n - off;

        if (len < sizeof(ref.line[0]) && memchr(in + off, '\0', len) == NULL) {
            memcpy(ref.line[ref.n], in + off, len);
            ref.line[ref.n][len] = '\0';
            ref.n++;
        }
        off += len + 1;
    }
    t = hostname_table_new();
    if (t == NULL)
        abort();
    for (size_t i = 0; i < ref.n; i++) {
        int want = 0;
        int rv;

        ref.parsed[i] = hostname_pattern_parse(ref.line[i], strlen(ref.line[i]), &ref.pat[i],
                                               NULL) == 0;
        if (!ref.parsed[i])
            want = CV_EINVAL;
        for (size_t j = 0; want == 0 && j < i; j++) {
            if (ref.present[j] && strcmp(ref.pat[j].text, ref.pat[i].text) == 0)
                want = CV_EEXIST;
        }
        rv = hostname_table_insert(t, ref.line[i], &ref.value[i], NULL);
        if (rv != want)
            abort();
        ref.present[i] = rv == 0;
        if (ref.parsed[i] && hostname_table_get(t, ref.line[i]) == NULL)
            abort();
    }
    check_table_state(t);
    for (size_t i = 0; i < ref.n; i += 2) {
        void *v = NULL;

        if (!ref.present[i])
            continue;
        if (hostname_table_remove(t, ref.line[i], &v) != 0 || v != &ref.value[i])
            abort();
        ref.present[i] = false;
        if (hostname_table_remove(t, ref.line[i], NULL) != CV_ENOTFOUND ||
            hostname_table_get(t, ref.line[i]) != NULL)
            abort();
    }
    check_table_state(t);
    noop_free_count = 0;
    hostname_table_free(t, noop_free);
    if ((size_t)noop_free_count != ref_count())
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
    check_table(in, size);
    if (mem_live_count() != live)
        abort();
    return 0;
}
