/*
 * ingress.h - the connector's ingress rules: which local service answers a request, chosen by the
 * request's hostname and path, as cloudflared's `ingress:` and `originRequest:` (PRODUCT.md §3).
 *
 * An ingress is an ordered list of rules; the first rule whose hostname pattern and path regular
 * expression both match wins. Validation follows cloudflared's ingress/ingress.go: a hostname is an
 * exact name or "*." plus a name (common/hostname.h), never with a port; the last rule is a
 * catch-all (no hostname or "*", no path) and no other rule is. Destinations come only from the
 * configuration (RELIABILITY.md §2.5 5.1): nothing in a request can choose or change a rule's
 * service, and cloudflared's request-steered services (bastion, socks-proxy, warp-routing) are
 * refused.
 *
 * Every rule carries its own struct origin_request: the top-level `originRequest:` with the rule's
 * own `originRequest:` applied over it key by key.
 *
 * Path expressions use cloudflared's RE2 syntax, compiled with PCRE2 (`\d`, `(?i)`, `^/api/`, ...;
 * `$` matches only at the very end, as in RE2). Each search is bounded by a match limit, so a
 * pathological expression cannot stall the loop: a search that hits the limit counts as no match.
 *
 * Layers: yaml.h (the node tree) and hostname.h below; connector_config.c builds an ingress, the
 * runtime (edge_conn.c, origin_*.c) calls ingress_match() per stream. An ingress is immutable once
 * built, except for scratch match state: use it from one thread (the loop thread). A reload builds
 * a new one and swaps it in. Allocation goes through common/mem, PCRE2's included.
 */
#ifndef CV_INGRESS_H
#define CV_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "config.h"
#include "hostname.h"
#include "yaml.h"

/*
 * Receives one warning, a whole line such as
 *   config.yml:7:9: ingress[0].originRequest.proxyType: not supported by culvert, ignored
 * |msg| is borrowed for the call only. Warnings never quote secrets.
 */
typedef void (*ingress_warn_cb)(const char *msg, void *arg);

/* ---- originRequest -------------------------------------------------------------------------- */

enum origin_proxy_protocol {
    ORIGIN_PROXY_PROTOCOL_OFF, /* default */
    ORIGIN_PROXY_PROTOCOL_V2,  /* TCP services: send a PROXY protocol v2 header first */
};

/*
 * How the connector talks to an origin (cloudflared's originRequest keys, same names and defaults).
 * Durations are milliseconds. Strings are owned (NULL when unset) and freed by
 * origin_request_cleanup().
 */
struct origin_request {
    uint64_t connect_timeout_ms;      /* connectTimeout, 30s; 1ms..24h */
    uint64_t tls_timeout_ms;          /* tlsTimeout, 10s; 1ms..24h */
    uint64_t tcp_keepalive_ms;        /* tcpKeepAlive, 30s; 0 disables TCP keep-alive */
    uint32_t keepalive_connections;   /* keepAliveConnections, 100: idle origin connections kept */
    uint64_t keepalive_timeout_ms;    /* keepAliveTimeout, 90s: idle origin connection lifetime */
    char *http_host_header;           /* httpHostHeader: Host sent to the origin; NULL: the
                                       * visitor's */
    char *origin_server_name;         /* originServerName: TLS SNI and name checked; NULL: the
                                       * service host, or the Host with matchSNItoHost */
    bool match_sni_to_host;           /* matchSNItoHost: SNI = the request's Host (when no
                                       * originServerName) */
    char *ca_pool;                    /* caPool: PEM file of CAs for https origins; NULL: system */
    bool no_tls_verify;               /* noTLSVerify: accept any origin certificate */
    bool disable_chunked_encoding;    /* disableChunkedEncoding: never send the origin a chunked
                                       * request body (for WSGI servers) */
    enum origin_proxy_protocol proxy_protocol; /* proxyProtocol: "v2" or "off" (TCP services) */
    uint64_t tcp_idle_timeout_ms;     /* tcpIdleTimeout: TCP stream idle limit; 0 = none (the
                                       * default) */
    bool allow_link_local;            /* allowLinkLocal (culvert): let this rule reach link-local
                                       * and cloud metadata addresses (see ingress_addr_link_local) */
};

/* Fills |o| with cloudflared's defaults (above); no strings. */
void origin_request_init(struct origin_request *o);
/* Frees |o|'s strings; |o| is left with the defaults. */
void origin_request_cleanup(struct origin_request *o);
/* Makes |dst| (uninitialised) a deep copy of |src|. Returns 0, or CV_ENOMEM with |dst| holding the
 * defaults. */
int origin_request_copy(struct origin_request *dst, const struct origin_request *src);

/*
 * Sets the one originRequest key |key| (cloudflared's camelCase name) of |o| from |v|, as
 * origin_request_parse does for each key of a mapping (|path| names it in messages). Returns 0;
 * CV_ENOTFOUND for a null value; CV_EINVAL when culvert does not implement the key; CV_ECONFIG
 * with |err|; CV_ENOMEM.
 */
int origin_request_set(struct origin_request *o, const char *key, const struct yaml_node *v,
                       const char *path, struct yaml_error *err);

/*
 * Applies the `originRequest:` mapping |n| (the value node; |path| is its key path for messages,
 * e.g. "originRequest" or "ingress[2].originRequest") over |o|, key by key: keys absent or null
 * keep |o|'s value, which is how a rule inherits the top-level settings. An empty string for
 * httpHostHeader, originServerName or caPool unsets it. A leading "~/" in caPool is expanded with
 * $HOME. cloudflared keys culvert does not implement (noHappyEyeballs, proxyAddress, proxyPort,
 * proxyType, ipRules, bastionMode, access, http2Origin) are reported through |warn| as "not
 * supported by culvert, ignored", other keys as "unknown key, ignored"; |warn| may be NULL. The
 * one exception is `access: { required: true }`, an error: culvert has no Access check, and
 * ignoring it would serve the origin to everyone.
 * Returns 0; CV_ENOTFOUND when |n| is absent or null (|o| untouched); CV_ECONFIG with |err| when
 * |n| is not a mapping or a value is invalid; CV_ENOMEM. |o| is unchanged on failure.
 */
int origin_request_parse(const struct yaml_node *n, const char *path, struct origin_request *o,
                         ingress_warn_cb warn, void *warn_arg, struct yaml_error *err);

/*
 * RELIABILITY.md 5.1 (SSRF): link-local and cloud metadata addresses are never an origin unless the
 * rule sets originRequest.allowLinkLocal: 169.254.0.0/16 (IPv4 link-local, where clouds serve
 * instance credentials at 169.254.169.254), fe80::/10, fd00:ec2::254 (AWS's IPv6 metadata address),
 * and the IPv4-mapped forms of the first. Returns 1 for such an address (AF_INET or AF_INET6),
 * else 0.
 */
int ingress_addr_link_local(const struct sockaddr *sa);

/* ---- services ------------------------------------------------------------------------------- */

enum ingress_service_kind {
    INGRESS_SVC_HTTP,        /* http:// or https:// origin at host:port */
    INGRESS_SVC_UNIX,        /* HTTP over a unix socket (unix:), or HTTPS (unix+tls:) */
    INGRESS_SVC_HTTP_STATUS, /* http_status:NNN: answer every request with that status */
    INGRESS_SVC_HELLO_WORLD, /* hello_world: the built-in test origin (hello.c) */
    INGRESS_SVC_TCP,         /* tcp://, ssh://, rdp://, smb://: a byte stream to host:port */
};

/*
 * A parsed service. |host| is a normalised DNS name (lower case; '_' is allowed there, as Docker
 * service names use it), an IPv4 literal, or an IPv6 literal without brackets (|host_kind| says
 * which). Owned strings are freed by ingress_service_cleanup().
 */
struct ingress_service {
    enum ingress_service_kind kind;
    bool tls;                      /* HTTP: https://; UNIX: unix+tls: */
    enum hostname_kind host_kind;  /* HTTP, TCP */
    char host[HOSTNAME_MAX + 1];   /* HTTP, TCP */
    uint16_t port;                 /* HTTP, TCP: as written, else 80/443 (http/https), 22 (ssh),
                                    * 3389 (rdp), 445 (smb); tcp:// requires one */
    char *base_path;               /* HTTP: path written after host[:port] without a trailing '/'
                                    * ("/app" for http://h/app/), prefixed to every request path;
                                    * NULL when none */
    char unix_path[CONFIG_UNIX_PATH_MAX + 1]; /* UNIX: the socket's path */
    int status;                    /* HTTP_STATUS: 100..599 */
    char *text;                    /* canonical text, as `ingress rule` prints it ("ssh://h:22") */
};

/*
 * Parses service text: http://host[:port][/path], https://..., unix:PATH, unix+tls:PATH,
 * http_status:NNN, hello_world (also hello-world, helloworld), tcp://host:port,
 * ssh://host[:port], rdp://host[:port], smb://host[:port] (cloudflared's SMB service). Schemes are
 * case-insensitive. Refused, with a reason in |why| (|whylen| bytes, always NUL-terminated): other
 * schemes and cloudflared's bastion, socks-proxy and warp-routing; a missing host; userinfo; a bad
 * or missing (tcp://) port; a path, query or fragment on tcp-like services; a query or fragment on
 * http(s); an empty or too long unix path; a status outside 100..599. With |default_http| (the
 * --url flag), text without "://" that is not one of the special forms is read as http://TEXT, as
 * cloudflared does. Returns 0 and fills |svc| (uninitialised before), CV_EINVAL with |why| (|svc|
 * holds nothing to clean up), or CV_ENOMEM.
 */
int ingress_service_parse(const char *text, bool default_http, struct ingress_service *svc,
                          char *why, size_t whylen);
/* Frees |svc|'s strings. */
void ingress_service_cleanup(struct ingress_service *svc);

/* ---- rules and the ingress ------------------------------------------------------------------ */

struct ingress_regex; /* a compiled path expression (PCRE2), private to ingress.c */

struct ingress_rule {
    unsigned number;              /* 1-based position: "rule #N" */
    bool any_host;                /* no hostname, "" or "*" */
    struct hostname_pattern host; /* when !any_host */
    bool star;                    /* hostname was written "*" (printed back as such) */
    char *path;                   /* path expression as written, NULL when none */
    struct ingress_regex *path_re; /* compiled |path|, NULL when none */
    struct ingress_service service;
    struct origin_request origin; /* effective settings: top level, then the rule's own */
};

struct ingress;

/*
 * Builds an ingress from the `ingress:` value node |rules| (a non-empty list of mappings with keys
 * hostname, path, service, originRequest; other keys are warned about) over the top-level settings
 * |defaults| (borrowed, copied into each rule). Checks, each a located CV_ECONFIG error naming
 * "ingress[I]..." (I 0-based, as in the file; messages say "rule #N", 1-based, like cloudflared):
 *   - a hostname with a port ("a hostname cannot contain a port"), a misplaced "*", a bad name;
 *   - a path that is not a valid expression (PCRE2's message and offset);
 *   - a missing or invalid service (ingress_service_parse);
 *   - an invalid originRequest (origin_request_parse);
 *   - the last rule not being a catch-all (cloudflared's errLastRuleNotCatchAll text), or an
 *     earlier rule being one ("rule #N is a catch-all but not the last rule ...").
 * A rule that can never match because an earlier rule without a path covers its hostname is warned
 * about. Returns 0 and a new ingress in *|out| (free with ingress_free); CV_ENOTFOUND when |rules|
 * is absent or null (|err| untouched: the caller decides, see connector_config.h); CV_ECONFIG with
 * |err| (an empty list too: "The config file doesn't contain any ingress rules"); CV_ENOMEM.
 */
int ingress_parse(const struct yaml_node *rules, const struct origin_request *defaults,
                  ingress_warn_cb warn, void *warn_arg, struct ingress **out,
                  struct yaml_error *err);

/*
 * Builds the one-rule ingress of `--url URL` (or the config's legacy `url:` key): a catch-all to
 * the service |url| (ingress_service_parse with default_http) with |defaults| (borrowed, copied).
 * |name| prefixes messages ("--url", or "config.yml:3:6: url"). Returns 0 and *|out|, CV_EINVAL
 * with "NAME: reason" in |err| (|errlen| bytes), or CV_ENOMEM.
 */
int ingress_from_url(const char *url, const char *name, const struct origin_request *defaults,
                     struct ingress **out, char *err, size_t errlen);

/* Frees |ing| and its rules (NULL is fine). */
void ingress_free(struct ingress *ing);

/* Number of rules (>= 1). */
size_t ingress_rule_count(const struct ingress *ing);
/* Rule |i| (0-based; borrowed, valid until ingress_free), or NULL past the end. */
const struct ingress_rule *ingress_rule_at(const struct ingress *ing, size_t i);
/* The top-level originRequest settings the rules inherited (borrowed). */
const struct origin_request *ingress_defaults(const struct ingress *ing);

/*
 * Returns the rule serving a request, never NULL (the last rule is a catch-all): the first rule that
 * matches, as in cloudflared, except that a match on a wildcard hostname yields to a later matching
 * rule with a more specific hostname (an exact name, or a longer wildcard), as PRODUCT.md section 2
 * says for routes and ingress alike; rules without a hostname keep their place. |host| is
 * the request's Host (|host_len| bytes; a port and a trailing dot are ignored, case does not
 * matter); a host that is not a valid name (an IP literal, garbage, empty) matches only rules
 * without a hostname. |path| (|path_len| bytes) is the request target's path; the query string
 * ("?..." onwards) is not part of it. Like cloudflared, which matches Go's decoded URL.Path, the
 * expression is searched (unanchored) in the percent-decoded path; a path with an invalid escape,
 * or longer than 8 KiB, is searched as it is. Borrows everything; no allocation except PCRE2's
 * match frames for deep expressions (a failure there, like the match limit, counts as no match).
 */
const struct ingress_rule *ingress_match(struct ingress *ing, const char *host, size_t host_len,
                                         const char *path, size_t path_len);

/*
 * Writes |r| as `culvert-connector ingress rule` prints it, in cloudflared's format:
 *   "Matched rule #N\n\thostname: H\n\tpath: P\n\tservice: S\n"
 * leaving out the hostname line when the rule has none and the path line when it has no path.
 * Always NUL-terminates |out| (|n| >= 1); returns the length the full text needs (like snprintf).
 */
size_t ingress_rule_describe(const struct ingress_rule *r, char *out, size_t n);

/* ---- commands ------------------------------------------------------------------------------- */

/*
 * `culvert-connector ingress validate [--config FILE]`. |argv| holds the |argc| arguments after
 * "validate". Loads the config file (--config, else the search order of connector_config_find)
 * and checks every key and the ingress as `run` would, without reading token or credentials
 * files. Prints "Validating rules from FILE", each warning as "warning: ..." on |errf|, then "OK"
 * on |out|; on failure "Validation failed: MESSAGE" on |errf|. Returns the exit code: 0, or 2
 * (usage or configuration error). --help prints usage on |out| and returns 0.
 */
int ingress_cmd_validate_io(int argc, char **argv, FILE *out, FILE *errf);
/* ingress_cmd_validate_io on stdout and stderr. */
int ingress_cmd_validate(int argc, char **argv);

/*
 * `culvert-connector ingress rule URL [--config FILE]`. |argv| holds the |argc| arguments after
 * "rule". URL needs a scheme and a host ("https://app.example.com/api/v1?q=1"). Prints
 * "Using rules from FILE" and the matching rule (ingress_rule_describe) on |out|. Returns 0, or 2
 * with a message on |errf| (usage, a URL without a host, configuration errors).
 */
int ingress_cmd_rule_io(int argc, char **argv, FILE *out, FILE *errf);
/* ingress_cmd_rule_io on stdout and stderr. */
int ingress_cmd_rule(int argc, char **argv);

#endif
