/*
 * hostname.c - hostname normalisation, Host header splitting, patterns and the pattern table; see
 * hostname.h. Used by the edge (router, certificate store, public Host checks) and the connector
 * (ingress). Pure code on the loop thread; the table allocates through common/mem.
 */
#include "hostname.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "list.h"
#include "mem.h"

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return CV_EINVAL;
}

static int lower(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 'a';
    return c;
}

/* Explains why |c| cannot appear in a hostname. */
static const char *bad_char_reason(unsigned char c)
{
    if (c >= 0x80)
        return "non-ASCII characters are not allowed (write an IDN as punycode)";
    switch (c) {
    case '_':
        return "\"_\" is not allowed in a hostname";
    case '%':
        return "percent-encoding is not allowed in a hostname";
    case '@':
        return "userinfo (\"user@\") is not allowed";
    case ':':
        return "a hostname must not include a port";
    case '*':
        return "\"*\" is not allowed in a hostname";
    case '/':
        return "a hostname must not include a path";
    case ' ':
    case '\t':
    case '\r':
    case '\n':
    case '\v':
    case '\f':
        return "whitespace is not allowed in a hostname";
    default:
        return "invalid character in hostname (allowed: letters, digits, \"-\" and \".\")";
    }
}

static int host_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

int hostname_normalize(const char *in, size_t n, char *out, const char **why)
{
    size_t label_len = 0;
    int label_digits = 1;
    size_t i;

    if (n == 0)
        return fail(why, "empty hostname");
    /* RFC 1034 §3.1 allows one trailing dot (the root); drop it. */
    if (in[n - 1] == '.')
        n--;
    if (n == 0)
        return fail(why, "empty hostname");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];

        if (c == '.') {
            if (label_len == 0)
                return fail(why, "empty label in hostname");
            if (in[i - 1] == '-')
                return fail(why, "a hostname label must not start or end with \"-\"");
            label_len = 0;
            label_digits = 1;
            continue;
        }
        if (!host_char(c))
            return fail(why, bad_char_reason(c));
        if (c == '-' && label_len == 0)
            return fail(why, "a hostname label must not start or end with \"-\"");
        if (c < '0' || c > '9')
            label_digits = 0;
        label_len++;
        if (label_len > HOSTNAME_LABEL_MAX)
            return fail(why, "hostname label longer than 63 characters");
    }
    if (label_len == 0)
        return fail(why, "empty label in hostname");
    if (in[n - 1] == '-')
        return fail(why, "a hostname label must not start or end with \"-\"");
    if (n > HOSTNAME_MAX)
        return fail(why, "hostname longer than 253 characters");
    if (label_digits)
        return fail(why, "the last label of a hostname must not be all digits (an IP address?)");
    for (i = 0; i < n; i++)
        out[i] = (char)lower((unsigned char)in[i]);
    out[n] = '\0';
    return (int)n;
}

/* Parses a decimal port of 1..5 digits without leading zeros. Returns the port (0..65535) or -1. */
static int parse_port(const char *p, size_t n)
{
    unsigned v = 0;

    if (n == 0 || n > 5 || (p[0] == '0' && n > 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > 65535)
        return -1;
    return (int)v;
}

int hostname_split(const char *in, size_t n, struct hostname_host *h, const char **why)
{
    const char *host = in;
    size_t host_len = n;
    const char *colon = NULL;
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    int rv;

    if (n == 0)
        return fail(why, "empty host");
    if (memchr(in, '@', n) != NULL)
        return fail(why, "userinfo (\"user@\") is not allowed");
    h->port = -1;
    if (in[0] == '[') {
        const char *close = memchr(in, ']', n);
        size_t lit_len;

        if (close == NULL)
            return fail(why, "missing \"]\" after an IPv6 literal");
        lit_len = (size_t)(close - in) - 1;
        if (memchr(in + 1, '%', lit_len) != NULL)
            return fail(why, "IPv6 zone identifiers are not allowed");
        if (lit_len == 0 || lit_len >= sizeof(tmp))
            return fail(why, "invalid IPv6 literal");
        memcpy(tmp, in + 1, lit_len);
        tmp[lit_len] = '\0';
        if (inet_pton(AF_INET6, tmp, addr) != 1)
            return fail(why, "invalid IPv6 literal");
        if (inet_ntop(AF_INET6, addr, h->name, sizeof(h->name)) == NULL)
            return fail(why, "invalid IPv6 literal");
        h->kind = HOSTNAME_IPV6;
        if ((size_t)(close - in) + 1 == n)
            return 0;
        if (close[1] != ':')
            return fail(why, "unexpected characters after an IPv6 literal");
        colon = close + 1;
    } else {
        colon = memchr(in, ':', n);
        if (colon != NULL) {
            if (memchr(colon + 1, ':', n - (size_t)(colon - in) - 1) != NULL)
                return fail(why, "an IPv6 literal must be written in brackets");
            host_len = (size_t)(colon - in);
        }
        if (host_len == 0)
            return fail(why, "empty host");
        if (host_len < sizeof(tmp)) {
            memcpy(tmp, host, host_len);
            tmp[host_len] = '\0';
            if (inet_pton(AF_INET, tmp, addr) == 1) {
                memcpy(h->name, tmp, host_len + 1);
                h->kind = HOSTNAME_IPV4;
                goto port;
            }
        }
        rv = hostname_normalize(host, host_len, h->name, why);
        if (rv < 0)
            return rv;
        h->kind = HOSTNAME_NAME;
    }
port:
    if (colon != NULL) {
        size_t plen = n - (size_t)(colon - in) - 1;
        int port;

        if (plen == 0)
            return fail(why, "empty port");
        port = parse_port(colon + 1, plen);
        if (port <= 0)
            return fail(why, "invalid port (must be 1-65535 in decimal)");
        h->port = port;
    }
    return 0;
}

/* ---- patterns ----------------------------------------------------------------------------- */

int hostname_pattern_parse(const char *in, size_t n, struct hostname_pattern *p, const char **why)
{
    const char *rest = in;
    size_t rest_len = n;
    bool wildcard = false;
    char name[HOSTNAME_MAX + 1];
    int len;

    if (n == 1 && in[0] == '*')
        return fail(why, "a lone \"*\" is not a hostname pattern (write \"*.example.com\")");
    if (n >= 1 && in[0] == '*') {
        if (n < 2 || in[1] != '.')
            return fail(why, "\"*\" is only allowed as the first label");
        wildcard = true;
        rest = in + 2;
        rest_len = n - 2;
        if (rest_len == 0 || (rest_len == 1 && rest[0] == '.'))
            return fail(why, "\"*.\" must be followed by a domain");
    }
    if (memchr(rest, '*', rest_len) != NULL)
        return fail(why, "\"*\" is only allowed as the first label");
    len = hostname_normalize(rest, rest_len, name, why);
    if (len < 0)
        return len;
    if (wildcard) {
        if ((size_t)len + 2 > HOSTNAME_MAX)
            return fail(why, "hostname longer than 253 characters");
        p->text[0] = '*';
        p->text[1] = '.';
        memcpy(p->text + 2, name, (size_t)len + 1);
        p->len = (size_t)len + 2;
    } else {
        memcpy(p->text, name, (size_t)len + 1);
        p->len = (size_t)len;
    }
    p->wildcard = wildcard;
    return 0;
}

bool hostname_pattern_match(const struct hostname_pattern *p, const char *name, size_t n)
{
    size_t suffix_len;

    if (!p->wildcard)
        return n == p->len && memcmp(name, p->text, n) == 0;
    /* "*.example.com" : the name needs at least one character, then ".example.com". */
    suffix_len = p->len - 1;
    if (n <= suffix_len)
        return false;
    return memcmp(name + n - suffix_len, p->text + 1, suffix_len) == 0;
}

bool hostname_cert_match(const struct hostname_pattern *p, const char *name, size_t n)
{
    size_t suffix_len;

    if (!hostname_pattern_match(p, name, n))
        return false;
    if (!p->wildcard)
        return true;
    /* RFC 6125 §6.4.3: the wildcard stands for one whole label, so no dot before the suffix. */
    suffix_len = p->len - 1;
    return memchr(name, '.', n - suffix_len) == NULL;
}

/* ---- table -------------------------------------------------------------------------------- */

/*
 * Two chained hash tables: exact names keyed by the name, wildcards keyed by their suffix (the text
 * after "*."). A lookup hashes the name once for the exact table, then each suffix that follows a
 * dot, longest first, in the wildcard table: O(labels) probes whatever the table size. The keys come
 * from the operator's configuration, not from visitors, so an unkeyed hash cannot be flooded by
 * requests (lookups never insert).
 */
struct ht_entry {
    struct ht_entry *next;  /* bucket chain */
    struct list_node order; /* insertion order, for foreach */
    uint64_t hash;          /* of the key (the name, or the wildcard's suffix) */
    void *value;
    bool wildcard;
    size_t len;             /* of pattern */
    char pattern[];         /* normalised pattern text; the key is pattern + (wildcard ? 2 : 0) */
};

struct ht {
    struct ht_entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

struct hostname_table {
    struct ht exact;
    struct ht wild;
    struct list_node order;
};

#define HT_INITIAL_BUCKETS 16

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a 64 */

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static const char *entry_key(const struct ht_entry *e, size_t *len)
{
    size_t off = e->wildcard ? 2 : 0;

    *len = e->len - off;
    return e->pattern + off;
}

static struct ht_entry *ht_find(const struct ht *h, const char *key, size_t n, uint64_t hash)
{
    struct ht_entry *e;

    if (h->nbuckets == 0)
        return NULL;
    for (e = h->buckets[hash & (h->nbuckets - 1)]; e != NULL; e = e->next) {
        size_t klen;
        const char *k = entry_key(e, &klen);

        if (e->hash == hash && klen == n && memcmp(k, key, n) == 0)
            return e;
    }
    return NULL;
}

/* Grows |h| so one more entry keeps the load at or under 3/4. Returns 0 or CV_ENOMEM. */
static int ht_reserve(struct ht *h)
{
    size_t nb;
    struct ht_entry **b;

    if (h->nbuckets != 0 && (h->count + 1) * 4 <= h->nbuckets * 3)
        return 0;
    nb = h->nbuckets == 0 ? HT_INITIAL_BUCKETS : h->nbuckets * 2;
    b = mem_calloc(nb * sizeof(*b));
    if (b == NULL)
        return CV_ENOMEM;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct ht_entry *e = h->buckets[i];

        while (e != NULL) {
            struct ht_entry *next = e->next;

            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    mem_free(h->buckets);
    h->buckets = b;
    h->nbuckets = nb;
    return 0;
}

static void ht_unlink(struct ht *h, struct ht_entry *e)
{
    struct ht_entry **pp = &h->buckets[e->hash & (h->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    h->count--;
}

struct hostname_table *hostname_table_new(void)
{
    struct hostname_table *t = mem_calloc(sizeof(*t));

    if (t == NULL)
        return NULL;
    list_init(&t->order);
    return t;
}

void hostname_table_free(struct hostname_table *t, void (*free_value)(void *value))
{
    if (t == NULL)
        return;
    while (!list_empty(&t->order)) {
        struct ht_entry *e = container_of(t->order.next, struct ht_entry, order);

        list_remove(&e->order);
        if (free_value != NULL)
            free_value(e->value);
        mem_free(e);
    }
    mem_free(t->exact.buckets);
    mem_free(t->wild.buckets);
    mem_free(t);
}

int hostname_table_insert(struct hostname_table *t, const char *pattern, void *value,
                          const char **why)
{
    struct hostname_pattern p;
    struct ht *h;
    struct ht_entry *e;
    const char *key;
    size_t klen;
    uint64_t hash;
    int rv;

    rv = hostname_pattern_parse(pattern, strlen(pattern), &p, why);
    if (rv < 0)
        return rv;
    h = p.wildcard ? &t->wild : &t->exact;
    key = p.text + (p.wildcard ? 2 : 0);
    klen = p.len - (p.wildcard ? 2 : 0);
    hash = hash_bytes(key, klen);
    if (ht_find(h, key, klen, hash) != NULL)
        return CV_EEXIST;
    rv = ht_reserve(h);
    if (rv < 0)
        return rv;
    e = mem_alloc(sizeof(*e) + p.len + 1);
    if (e == NULL)
        return CV_ENOMEM;
    e->hash = hash;
    e->value = value;
    e->wildcard = p.wildcard;
    e->len = p.len;
    memcpy(e->pattern, p.text, p.len + 1);
    e->next = h->buckets[hash & (h->nbuckets - 1)];
    h->buckets[hash & (h->nbuckets - 1)] = e;
    h->count++;
    list_push_back(&t->order, &e->order);
    return 0;
}

static struct ht_entry *find_pattern(const struct hostname_table *t, const char *pattern, int *rv)
{
    struct hostname_pattern p;
    const struct ht *h;
    size_t off;

    *rv = hostname_pattern_parse(pattern, strlen(pattern), &p, NULL);
    if (*rv < 0)
        return NULL;
    h = p.wildcard ? &t->wild : &t->exact;
    off = p.wildcard ? 2 : 0;
    return ht_find(h, p.text + off, p.len - off, hash_bytes(p.text + off, p.len - off));
}

int hostname_table_remove(struct hostname_table *t, const char *pattern, void **value)
{
    struct ht_entry *e;
    int rv;

    e = find_pattern(t, pattern, &rv);
    if (rv < 0)
        return rv;
    if (e == NULL)
        return CV_ENOTFOUND;
    ht_unlink(e->wildcard ? &t->wild : &t->exact, e);
    list_remove(&e->order);
    if (value != NULL)
        *value = e->value;
    mem_free(e);
    return 0;
}

void *hostname_table_get(const struct hostname_table *t, const char *pattern)
{
    struct ht_entry *e;
    int rv;

    e = find_pattern(t, pattern, &rv);
    return e != NULL ? e->value : NULL;
}

static void *found(const struct ht_entry *e, const char **pattern)
{
    if (pattern != NULL)
        *pattern = e->pattern;
    return e->value;
}

void *hostname_table_lookup(const struct hostname_table *t, const char *name, const char **pattern)
{
    size_t n = strlen(name);
    struct ht_entry *e;

    e = ht_find(&t->exact, name, n, hash_bytes(name, n));
    if (e != NULL)
        return found(e, pattern);
    if (t->wild.count == 0)
        return NULL;
    /* Longest suffix first: the one after the first dot, then after the second, ... */
    for (size_t i = 1; i < n; i++) {
        if (name[i - 1] != '.')
            continue;
        e = ht_find(&t->wild, name + i, n - i, hash_bytes(name + i, n - i));
        if (e != NULL)
            return found(e, pattern);
    }
    return NULL;
}

void *hostname_table_lookup_cert(const struct hostname_table *t, const char *name,
                                 const char **pattern)
{
    size_t n = strlen(name);
    const char *dot;
    struct ht_entry *e;

    e = ht_find(&t->exact, name, n, hash_bytes(name, n));
    if (e != NULL)
        return found(e, pattern);
    dot = memchr(name, '.', n);
    if (dot == NULL || dot == name || (size_t)(dot - name) + 1 >= n)
        return NULL;
    dot++;
    e = ht_find(&t->wild, dot, n - (size_t)(dot - name), hash_bytes(dot, n - (size_t)(dot - name)));
    return e != NULL ? found(e, pattern) : NULL;
}

size_t hostname_table_count(const struct hostname_table *t)
{
    return t->exact.count + t->wild.count;
}

int hostname_table_foreach(const struct hostname_table *t,
                           int (*cb)(const char *pattern, void *value, void *arg), void *arg)
{
    struct list_node *n;

    for (n = t->order.next; n != &t->order; n = n->next) {
        const struct ht_entry *e = container_of(n, struct ht_entry, order);
        int rv = cb(e->pattern, e->value, arg);

        if (rv != 0)
            return rv;
    }
    return 0;
}
