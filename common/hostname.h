/*
 * hostname.h - the one hostname normaliser and matcher of Culvert (RELIABILITY.md §2.2, §5.4 "Host
 * grammar"). Routing, certificates, ingress and policy all key on its output, so a name that routes
 * one way can never be checked another way.
 *
 * Normal form: lower-case ASCII letters, digits, '-' and '.'; labels of 1..63 characters that neither
 * start nor end with '-'; at most 253 characters; one trailing dot removed; the last label is not
 * all digits (that is an IPv4 address, handled by hostname_split). No userinfo, '%', whitespace, '_'
 * or non-ASCII (an IDN must arrive as punycode).
 *
 * Patterns are an exact name or "*." followed by a name. Two matching rules exist:
 *   routes and ingress: "*.example.com" matches every name ending in ".example.com", with any number
 *                       of labels before it, but not "example.com" itself;
 *   certificates:       TLS's rule (RFC 6125 §6.4.3): "*" stands for exactly one label.
 * A hostname_table maps patterns to values and answers "exact beats wildcard, longer wildcard beats
 * shorter" in time proportional to the number of labels of the name, not the number of entries.
 *
 * Pure functions and single-threaded tables: no I/O, no logging. Reasons (|why|) are static strings
 * that never quote the input.
 */
#ifndef CV_HOSTNAME_H
#define CV_HOSTNAME_H

#include <stdbool.h>
#include <stddef.h>

#define HOSTNAME_MAX 253      /* characters in a normalised name, without a trailing dot */
#define HOSTNAME_LABEL_MAX 63 /* characters in one label */

/*
 * Normalises the |n| bytes at |in| (need not be NUL-terminated) into |out|, which has room for
 * HOSTNAME_MAX + 1 bytes and may be |in| itself. Returns the length of the NUL-terminated result
 * (>= 1), or CV_EINVAL with *|why| set; |out| is untouched on failure. |why| may be NULL.
 * Rejects IP literals (use hostname_split for Host header values) and '*' (use patterns).
 */
int hostname_normalize(const char *in, size_t n, char *out, const char **why);

enum hostname_kind {
    HOSTNAME_NAME, /* a DNS name in normal form */
    HOSTNAME_IPV4, /* a dotted-quad IPv4 literal */
    HOSTNAME_IPV6, /* an IPv6 literal in canonical text (RFC 5952), without brackets or zone */
};

struct hostname_host {
    enum hostname_kind kind;
    char name[HOSTNAME_MAX + 1]; /* normalised name, or the literal's text */
    int port;                    /* 1..65535, or -1 when the value carries no port */
};

/*
 * Splits a Host header value or URL authority ("example.com", "Example.COM.:8443", "10.0.0.1:80",
 * "[::1]:8443") into a normalised host and an optional port. The port is 1..65535 in decimal without
 * leading zeros; "host:" (empty port), userinfo ("user@host"), zones ("[fe80::1%eth0]") and unbracketed
 * IPv6 are rejected. Borrows |in| (|n| bytes). Returns 0 and fills |h|, or CV_EINVAL with *|why|; |h|
 * is unspecified on failure.
 */
int hostname_split(const char *in, size_t n, struct hostname_host *h, const char **why);

/* ---- patterns ----------------------------------------------------------------------------- */

struct hostname_pattern {
    char text[HOSTNAME_MAX + 1]; /* normal form: "example.com" or "*.example.com" */
    size_t len;                  /* strlen(text) */
    bool wildcard;               /* text starts with "*." */
};

/*
 * Parses a route, ingress or certificate pattern: an exact name or "*." plus a name, both in the
 * rules of hostname_normalize. '*' anywhere else ("a.*.b", "*foo.b", "foo*.b") is rejected with
 * "\"*\" is only allowed as the first label"; a lone "*" is rejected too (ingress treats "*" as its
 * catch-all before calling this). A port is rejected. Borrows |in| (|n| bytes). Returns 0 and fills
 * |p|, or CV_EINVAL with *|why|.
 */
int hostname_pattern_parse(const char *in, size_t n, struct hostname_pattern *p, const char **why);

/*
 * Route and ingress rule: true when the normalised |name| (|n| bytes) equals an exact |p|, or ends in
 * "." plus |p|'s suffix after at least one label of its own ("*.example.com" matches "a.example.com"
 * and "a.b.example.com", never "example.com").
 */
bool hostname_pattern_match(const struct hostname_pattern *p, const char *name, size_t n);

/* Certificate rule: like hostname_pattern_match, but '*' stands for exactly one label. */
bool hostname_cert_match(const struct hostname_pattern *p, const char *name, size_t n);

/* ---- table -------------------------------------------------------------------------------- */

struct hostname_table;

/* Returns a new empty table, or NULL (out of memory). */
struct hostname_table *hostname_table_new(void);

/* Frees |t| (NULL is fine), calling |free_value| (may be NULL) on each value first. */
void hostname_table_free(struct hostname_table *t, void (*free_value)(void *value));

/*
 * Adds |pattern| (parsed and normalised as hostname_pattern_parse; borrowed, copied) with |value|
 * (borrowed; the table never dereferences it). Returns 0, CV_EINVAL with *|why| for a bad pattern,
 * CV_EEXIST when the normalised pattern is already present (the old value stays), or CV_ENOMEM;
 * the table is unchanged on failure.
 */
int hostname_table_insert(struct hostname_table *t, const char *pattern, void *value,
                          const char **why);

/*
 * Removes |pattern| (normalised first, so "EXAMPLE.com." removes "example.com"). Sets *|value| (if
 * not NULL) to the value it held. Returns 0, CV_ENOTFOUND, or CV_EINVAL for a bad pattern.
 */
int hostname_table_remove(struct hostname_table *t, const char *pattern, void **value);

/* Returns the value stored under exactly |pattern| (normalised first; no wildcard matching), or NULL. */
void *hostname_table_get(const struct hostname_table *t, const char *pattern);

/*
 * Route/ingress lookup for the normalised name |name| (NUL-terminated, from hostname_normalize or
 * hostname_split): the exact entry if any, else the wildcard with the longest suffix that matches
 * under hostname_pattern_match. Returns the value, or NULL. When |pattern| is not NULL it receives
 * the matching entry's pattern text (borrowed, valid until that entry is removed).
 */
void *hostname_table_lookup(const struct hostname_table *t, const char *name, const char **pattern);

/* Certificate lookup: like hostname_table_lookup under hostname_cert_match (exact, then the wildcard
 * for the name's parent only). */
void *hostname_table_lookup_cert(const struct hostname_table *t, const char *name,
                                 const char **pattern);

/* Number of entries. */
size_t hostname_table_count(const struct hostname_table *t);

/*
 * Calls |cb| for each entry in insertion order with its normalised pattern and value. Stops at the
 * first non-zero return from |cb| and returns it; returns 0 after the last entry. |cb| must not
 * insert into or remove from |t|.
 */
int hostname_table_foreach(const struct hostname_table *t,
                           int (*cb)(const char *pattern, void *value, void *arg), void *arg);

#endif
