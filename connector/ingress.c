/*
 * ingress.c - ingress rules: originRequest settings, service parsing, rule validation (as
 * cloudflared's ingress/ingress.go), first-match lookup, and the `ingress validate|rule` commands.
 * See ingress.h.
 *
 * Below: yaml.h for the node tree and located messages, hostname.h for patterns, PCRE2 for path
 * expressions (its memory comes from common/mem through a general context). Above:
 * connector_config.c builds ingresses; the runtime matches streams against them on the loop thread.
 */
#include "ingress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "connector_config.h"
#include "err.h"
#include "log.h"
#include "mem.h"

#define MS_PER_S 1000ULL
#define MS_PER_DAY (24ULL * 3600 * MS_PER_S)

/* Bounds on one path search (PCRE2 match context): work units, backtracking depth, heap KiB. */
#define INGRESS_MATCH_LIMIT 100000
#define INGRESS_DEPTH_LIMIT 10000
#define INGRESS_HEAP_LIMIT_KIB 4096

/* Paths longer than this are searched without percent-decoding (the edge refuses them: 414). */
#define INGRESS_DECODE_MAX 8192

#define KEY_PATH_MAX 160 /* "ingress[123456].originRequest.keepAliveConnections" and more */
#define WHY_MAX 256

struct ingress_regex {
    pcre2_code *code;
};

struct ingress {
    struct ingress_rule *rules;
    size_t count;
    struct origin_request defaults;
    pcre2_general_context *gctx; /* created with the first path expression */
    pcre2_match_context *mctx;
    pcre2_match_data *md;        /* scratch for ingress_match: one thread only */
    bool oom;                    /* an allocation made for PCRE2 failed */
};

/* ---- small helpers -------------------------------------------------------------------------- */

/*
 * How specific a rule's hostname is (PRODUCT.md section 2 "Hostnames", routes and ingress alike):
 * an exact name beats any wildcard, a longer wildcard beats a shorter one; among equals the first
 * rule wins (first match, as in cloudflared). Host-less rules rank 0.
 */
static size_t rule_rank(const struct ingress_rule *r)
{
    if (r->any_host)
        return 0;
    if (!r->host.wildcard)
        return SIZE_MAX;
    return 1 + r->host.len;
}

/* Copies |in| into |out| (|n| bytes) for quoting in a message: printable ASCII only, others as
 * '?', cut with "..." when longer than the room. */
static void sanitize(const char *in, char *out, size_t n)
{
    size_t i = 0;
    size_t len = strlen(in);

    if (n == 0)
        return;
    for (; i < len && i + 1 < n; i++) {
        unsigned char c = (unsigned char)in[i];

        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[i] = '\0';
    if (i < len && n >= 4)
        memcpy(out + n - 4, "...", 4);
}

static void set_why(char *why, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t n, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || n == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

static void warn_at(ingress_warn_cb warn, void *arg, const struct yaml_node *n, const char *path,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Sends "file:line:col: path: message" to |warn|, or to the log when |warn| is NULL. */
static void warn_at(ingress_warn_cb warn, void *arg, const struct yaml_node *n, const char *path,
                    const char *fmt, ...)
{
    struct yaml_error e;
    char text[WHY_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    (void)yaml_errorf(&e, n, path, "%s", text);
    if (warn != NULL)
        warn(e.msg, arg);
    else
        LOG_W("config %s", e.msg);
}

/* A new copy of |p| with a leading "~/" replaced by $HOME (kept as is when HOME is unset), or
 * NULL when out of memory. */
static char *expand_home(const char *p)
{
    const char *home = getenv("HOME");
    size_t hl;
    size_t pl;
    char *out;

    if (p[0] != '~' || p[1] != '/' || home == NULL || home[0] == '\0')
        return mem_strdup(p);
    hl = strlen(home);
    pl = strlen(p + 1);
    out = mem_alloc(hl + pl + 1);
    if (out == NULL)
        return NULL;
    memcpy(out, home, hl);
    memcpy(out + hl, p + 1, pl + 1);
    return out;
}

static bool ascii_eq_nocase(const char *a, size_t an, const char *b)
{
    size_t i;

    if (an != strlen(b))
        return false;
    for (i = 0; i < an; i++) {
        char x = a[i];

        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (x != b[i])
            return false;
    }
    return true;
}

/* ---- originRequest -------------------------------------------------------------------------- */

void origin_request_init(struct origin_request *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 30 * MS_PER_S;
    o->tls_timeout_ms = 10 * MS_PER_S;
    o->tcp_keepalive_ms = 30 * MS_PER_S;
    o->keepalive_connections = 100;
    o->keepalive_timeout_ms = 90 * MS_PER_S;
    o->proxy_protocol = ORIGIN_PROXY_PROTOCOL_OFF;
    o->tcp_idle_timeout_ms = 0;
}

void origin_request_cleanup(struct origin_request *o)
{
    mem_free(o->http_host_header);
    mem_free(o->origin_server_name);
    mem_free(o->ca_pool);
    origin_request_init(o);
}

static int dup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = mem_strdup(src);
    return *dst == NULL ? CV_ENOMEM : 0;
}

int origin_request_copy(struct origin_request *dst, const struct origin_request *src)
{
    *dst = *src;
    dst->http_host_header = NULL;
    dst->origin_server_name = NULL;
    dst->ca_pool = NULL;
    if (dup_opt(&dst->http_host_header, src->http_host_header) < 0 ||
        dup_opt(&dst->origin_server_name, src->origin_server_name) < 0 ||
        dup_opt(&dst->ca_pool, src->ca_pool) < 0) {
        origin_request_cleanup(dst);
        return CV_ENOMEM;
    }
    return 0;
}

int ingress_addr_link_local(const struct sockaddr *sa)
{
    static const uint8_t aws6[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
    const uint8_t *a;

    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        a = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
        return a[0] == 169 && a[1] == 254;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return 1; /* fe80::/10 */
    if (memcmp(a, aws6, sizeof(aws6)) == 0)
        return 1;
    /* ::ffff:169.254.x.y */
    for (int i = 0; i < 10; i++) {
        if (a[i] != 0)
            return 0;
    }
    return a[10] == 0xff && a[11] == 0xff && a[12] == 169 && a[13] == 254;
}

/* 1 when |svc| names a link-local or metadata address literally (checked at load time; names are
 * checked after each resolution by the origins). */
static int service_link_local(const struct ingress_service *svc)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (svc->kind != INGRESS_SVC_HTTP && svc->kind != INGRESS_SVC_TCP)
        return 0;
    if (svc->host_kind == HOSTNAME_IPV4) {
        ss.ss_family = AF_INET;
        if (inet_pton(AF_INET, svc->host, &((struct sockaddr_in *)&ss)->sin_addr) != 1)
            return 0;
    } else if (svc->host_kind == HOSTNAME_IPV6) {
        ss.ss_family = AF_INET6;
        if (inet_pton(AF_INET6, svc->host, &((struct sockaddr_in6 *)&ss)->sin6_addr) != 1)
            return 0;
    } else {
        return 0;
    }
    return ingress_addr_link_local((const struct sockaddr *)&ss);
}

#define LINK_LOCAL_WHY                                                                             \
    "%s is a link-local or cloud metadata address, refused as an origin; set "                     \
    "originRequest.allowLinkLocal: true to allow it"

/* cloudflared originRequest keys that culvert does not implement. */
static const char *const origin_unsupported[] = {
    "noHappyEyeballs", "proxyAddress", "proxyPort", "proxyType", "ipRules",
    "bastionMode",     "access",       "http2Origin", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list != NULL; list++) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

/* Replaces *|slot| with a copy of |s| (NULL for ""). 0 or CV_ENOMEM. */
static int set_string(char **slot, const char *s, bool home)
{
    char *copy = NULL;

    if (s[0] != '\0') {
        copy = home ? expand_home(s) : mem_strdup(s);
        if (copy == NULL)
            return CV_ENOMEM;
    }
    mem_free(*slot);
    *slot = copy;
    return 0;
}

/* httpHostHeader: printable ASCII without spaces, at most 255 bytes (it becomes a header value). */
static const char *check_host_header(const char *s)
{
    size_t i;
    size_t n = strlen(s);

    if (n > 255)
        return "longer than 255 characters";
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f)
            return "only printable ASCII without spaces is allowed";
    }
    return NULL;
}

/* originServerName: a DNS name as TLS SNI carries it; '_' tolerated (Docker names). */
static const char *check_server_name(const char *s)
{
    size_t i;
    size_t n = strlen(s);

    if (n > HOSTNAME_MAX)
        return "hostname longer than 253 characters";
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return "invalid character in hostname (allowed: letters, digits, \"-\", \"_\" and "
                   "\".\")";
    }
    if (n > 0 && (s[0] == '.' || s[0] == '-'))
        return "a hostname must not start with \".\" or \"-\"";
    return NULL;
}

static int parse_origin_key(const char *key, const struct yaml_node *v, const char *p,
                            struct origin_request *o, struct yaml_error *err)
{
    const char *s;
    const char *bad;
    int64_t iv;
    bool b;
    int rv;

    if (strcmp(key, "connectTimeout") == 0)
        return yaml_as_duration(v, p, 0, 1, MS_PER_DAY, &o->connect_timeout_ms, err);
    if (strcmp(key, "tlsTimeout") == 0)
        return yaml_as_duration(v, p, 0, 1, MS_PER_DAY, &o->tls_timeout_ms, err);
    if (strcmp(key, "tcpKeepAlive") == 0)
        return yaml_as_duration(v, p, 0, 0, MS_PER_DAY, &o->tcp_keepalive_ms, err);
    if (strcmp(key, "keepAliveTimeout") == 0)
        return yaml_as_duration(v, p, 0, 1, MS_PER_DAY, &o->keepalive_timeout_ms, err);
    if (strcmp(key, "tcpIdleTimeout") == 0)
        return yaml_as_duration(v, p, 0, 0, 7 * MS_PER_DAY, &o->tcp_idle_timeout_ms, err);
    if (strcmp(key, "keepAliveConnections") == 0) {
        rv = yaml_as_int(v, p, 0, 10000, &iv, err);
        if (rv == 0)
            o->keepalive_connections = (uint32_t)iv;
        return rv;
    }
    if (strcmp(key, "matchSNItoHost") == 0)
        return yaml_as_bool(v, p, &o->match_sni_to_host, err);
    if (strcmp(key, "noTLSVerify") == 0)
        return yaml_as_bool(v, p, &o->no_tls_verify, err);
    if (strcmp(key, "disableChunkedEncoding") == 0)
        return yaml_as_bool(v, p, &o->disable_chunked_encoding, err);
    if (strcmp(key, "allowLinkLocal") == 0)
        return yaml_as_bool(v, p, &o->allow_link_local, err);
    if (strcmp(key, "httpHostHeader") == 0) {
        rv = yaml_as_string(v, p, &s, err);
        if (rv < 0)
            return rv;
        bad = check_host_header(s);
        if (bad != NULL)
            return yaml_errorf(err, v, p, "%s", bad);
        return set_string(&o->http_host_header, s, false);
    }
    if (strcmp(key, "originServerName") == 0) {
        rv = yaml_as_string(v, p, &s, err);
        if (rv < 0)
            return rv;
        bad = check_server_name(s);
        if (bad != NULL)
            return yaml_errorf(err, v, p, "%s", bad);
        rv = set_string(&o->origin_server_name, s, false);
        if (rv == 0 && o->origin_server_name != NULL) {
            for (char *c = o->origin_server_name; *c != '\0'; c++) {
                if (*c >= 'A' && *c <= 'Z')
                    *c = (char)(*c - 'A' + 'a');
            }
        }
        return rv;
    }
    if (strcmp(key, "caPool") == 0) {
        rv = yaml_as_string(v, p, &s, err);
        if (rv < 0)
            return rv;
        if (s[0] != '\0' && config_check_path(s, 0, &bad) < 0)
            return yaml_errorf(err, v, p, "%s", bad);
        return set_string(&o->ca_pool, s, true);
    }
    if (strcmp(key, "proxyProtocol") == 0) {
        rv = yaml_as_string(v, p, &s, err);
        if (rv < 0)
            return rv;
        if (strcmp(s, "v2") == 0) {
            o->proxy_protocol = ORIGIN_PROXY_PROTOCOL_V2;
            return 0;
        }
        if (strcmp(s, "off") == 0 || s[0] == '\0' ||
            (yaml_scalar_plain(v) && config_parse_bool(s, &b, NULL) == 0 && !b)) {
            o->proxy_protocol = ORIGIN_PROXY_PROTOCOL_OFF;
            return 0;
        }
        if (strcmp(s, "v1") == 0)
            return yaml_errorf(err, v, p, "only PROXY protocol v2 is supported (write v2 or off)");
        return yaml_errorf(err, v, p, "expected v2 or off");
    }
    return CV_EINVAL; /* not ours: the caller warns */
}

/*
 * cloudflared's `access: { required: true }` refuses every request without a valid Cloudflare
 * Access token. Culvert has no such check, so ignoring the key would open the origin to anyone
 * (RELIABILITY.md §2.3 3.1, fail-open configuration): refuse it. Without required (or false) the
 * key only adds a check that was not enforced anyway, and is warned about as unsupported.
 */
static int check_access(const struct yaml_node *v, const char *p, struct yaml_error *err)
{
    const struct yaml_node *req;
    char rp[KEY_PATH_MAX + 16];
    bool on = false;
    int rv;

    if (yaml_node_kind(v) != YAML_KIND_MAPPING)
        return 0;
    req = yaml_map_get(v, "required");
    snprintf(rp, sizeof(rp), "%s.required", p);
    rv = yaml_as_bool(req, rp, &on, err);
    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    if (on)
        return yaml_errorf(err, req, rp,
                           "culvert does not check Cloudflare Access tokens, so requests would "
                           "reach the origin unchecked: protect the origin another way and remove "
                           "originRequest.access");
    return 0;
}

int origin_request_set(struct origin_request *o, const char *key, const struct yaml_node *v,
                       const char *path, struct yaml_error *err)
{
    return parse_origin_key(key, v, path, o, err);
}

int origin_request_parse(const struct yaml_node *n, const char *path, struct origin_request *o,
                         ingress_warn_cb warn, void *warn_arg, struct yaml_error *err)
{
    struct origin_request tmp;
    char p[KEY_PATH_MAX];
    size_t i;
    int rv;

    rv = yaml_expect(n, path, YAML_KIND_MAPPING, err);
    if (rv < 0)
        return rv;
    rv = origin_request_copy(&tmp, o);
    if (rv < 0)
        return rv;
    for (i = 0; i < yaml_map_count(n); i++) {
        const struct yaml_node *k = yaml_map_key(n, i);
        const struct yaml_node *v = yaml_map_value(n, i);
        const char *key = yaml_scalar(k, NULL);
        char shown[64];

        snprintf(p, sizeof(p), "%s.%s", path, key);
        rv = strcmp(key, "access") == 0 ? check_access(v, p, err) : 0;
        if (rv < 0) {
            origin_request_cleanup(&tmp);
            return rv;
        }
        rv = parse_origin_key(key, v, p, &tmp, err);
        if (rv == CV_ENOTFOUND)
            continue; /* null value: keep the inherited setting */
        if (rv == CV_EINVAL) {
            sanitize(key, shown, sizeof(shown));
            snprintf(p, sizeof(p), "%s.%s", path, shown);
            if (in_list(origin_unsupported, key))
                warn_at(warn, warn_arg, k, p, "not supported by culvert, ignored");
            else
                warn_at(warn, warn_arg, k, p, "unknown key, ignored");
            continue;
        }
        if (rv < 0) {
            origin_request_cleanup(&tmp);
            return rv;
        }
    }
    origin_request_cleanup(o);
    *o = tmp;
    return 0;
}

/* ---- services ------------------------------------------------------------------------------- */

void ingress_service_cleanup(struct ingress_service *svc)
{
    mem_free(svc->base_path);
    svc->base_path = NULL;
    mem_free(svc->text);
    svc->text = NULL;
}

/* A Docker-style name: letters, digits, '-', '_' and '.', with at least one '_' (hostname_split
 * already refused it for that). Writes it lower-cased into |out|. */
static bool docker_name(const char *h, size_t n, char *out)
{
    size_t i;
    bool underscore = false;

    if (n == 0 || n > HOSTNAME_MAX || h[0] == '.' || h[0] == '-' || h[n - 1] == '.')
        return false;
    for (i = 0; i < n; i++) {
        char c = h[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == '_'))
            return false;
        if (c == '_')
            underscore = true;
        out[i] = c;
    }
    out[n] = '\0';
    return underscore;
}

/* Parses "host[:port]" (|n| bytes) into |svc|. |port| is -1 when none was written. */
static int parse_authority(const char *a, size_t n, struct ingress_service *svc, int *port,
                           char *why, size_t whylen)
{
    struct hostname_host hh;
    const char *reason = NULL;
    const char *colon;
    char tmp[8];
    size_t hn;
    size_t pn;

    *port = -1;
    if (n == 0) {
        set_why(why, whylen, "missing host");
        return CV_EINVAL;
    }
    if (memchr(a, '@', n) != NULL) {
        set_why(why, whylen, "userinfo (\"user@\") is not allowed");
        return CV_EINVAL;
    }
    if (hostname_split(a, n, &hh, &reason) == 0) {
        svc->host_kind = hh.kind;
        memcpy(svc->host, hh.name, strlen(hh.name) + 1);
        *port = hh.port;
        return 0;
    }
    /* Not a strict DNS name: maybe a Docker service name such as "my_app:8080". */
    if (a[0] != '[') {
        colon = memchr(a, ':', n);
        hn = colon != NULL ? (size_t)(colon - a) : n;
        if (hn == 0) {
            set_why(why, whylen, "missing host");
            return CV_EINVAL;
        }
        if (docker_name(a, hn, svc->host)) {
            svc->host_kind = HOSTNAME_NAME;
            if (colon == NULL)
                return 0;
            /* The port, under the strict rules of hostname_split, through a stand-in host. */
            pn = n - hn - 1;
            if (pn == 0 || pn > 5) {
                set_why(why, whylen, pn == 0 ? "empty port"
                                             : "invalid port (must be 1-65535 in decimal)");
                return CV_EINVAL;
            }
            tmp[0] = 'x';
            memcpy(tmp + 1, colon, pn + 1);
            if (hostname_split(tmp, pn + 2, &hh, &reason) < 0) {
                set_why(why, whylen, "%s", reason);
                return CV_EINVAL;
            }
            *port = hh.port;
            return 0;
        }
    }
    set_why(why, whylen, "%s", reason != NULL ? reason : "invalid host");
    return CV_EINVAL;
}

enum scheme_id { SCHEME_HTTP, SCHEME_HTTPS, SCHEME_TCP, SCHEME_SSH, SCHEME_RDP, SCHEME_SMB };

static const struct {
    const char *name;
    enum scheme_id id;
    int default_port; /* -1: a port is required */
} schemes[] = {
    {"http", SCHEME_HTTP, 80}, {"https", SCHEME_HTTPS, 443}, {"tcp", SCHEME_TCP, -1},
    {"ssh", SCHEME_SSH, 22},   {"rdp", SCHEME_RDP, 3389},   {"smb", SCHEME_SMB, 445},
};

static int make_text(struct ingress_service *svc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int make_text(struct ingress_service *svc, const char *fmt, ...)
{
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        return CV_EINVAL;
    svc->text = mem_alloc((size_t)len + 1);
    if (svc->text == NULL)
        return CV_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(svc->text, (size_t)len + 1, fmt, ap);
    va_end(ap);
    return 0;
}

static int parse_url_service(const char *text, const char *sep, struct ingress_service *svc,
                             char *why, size_t whylen)
{
    const char *scheme = text;
    size_t scheme_len = (size_t)(sep - text);
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth + auth_len;
    const char *sname = NULL;
    char shown[40];
    char hostbuf[HOSTNAME_MAX + 3];
    size_t i;
    size_t k;
    int port;
    int default_port = 0;
    enum scheme_id id = SCHEME_HTTP;
    int rv;

    for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        if (ascii_eq_nocase(scheme, scheme_len, schemes[i].name)) {
            sname = schemes[i].name;
            id = schemes[i].id;
            default_port = schemes[i].default_port;
            break;
        }
    }
    if (sname == NULL) {
        char sch[32];

        snprintf(sch, sizeof(sch), "%.*s", (int)(scheme_len < 24 ? scheme_len : 24), scheme);
        sanitize(sch, shown, sizeof(shown));
        set_why(why, whylen,
                "unsupported scheme \"%s\" (use http, https, unix, unix+tls, tcp, ssh, rdp, smb, "
                "http_status:NNN or hello_world)", shown);
        return CV_EINVAL;
    }
    rv = parse_authority(auth, auth_len, svc, &port, why, whylen);
    if (rv < 0)
        return rv;
    if (port < 0) {
        if (default_port < 0) {
            set_why(why, whylen, "%s:// needs a port (%s://host:port)", sname, sname);
            return CV_EINVAL;
        }
        svc->port = (uint16_t)default_port;
    } else {
        svc->port = (uint16_t)port;
    }
    if (svc->host_kind == HOSTNAME_IPV6)
        snprintf(hostbuf, sizeof(hostbuf), "[%s]", svc->host);
    else
        snprintf(hostbuf, sizeof(hostbuf), "%s", svc->host);

    if (id == SCHEME_HTTP || id == SCHEME_HTTPS) {
        svc->kind = INGRESS_SVC_HTTP;
        svc->tls = id == SCHEME_HTTPS;
        if (strpbrk(rest, "?#") != NULL) {
            set_why(why, whylen, "a service URL cannot have a query or a fragment");
            return CV_EINVAL;
        }
        k = strlen(rest);
        for (i = 0; i < k; i++) {
            unsigned char c = (unsigned char)rest[i];

            if (c <= 0x20 || c >= 0x7f) {
                set_why(why, whylen, "invalid character in the service path");
                return CV_EINVAL;
            }
        }
        while (k > 0 && rest[k - 1] == '/')
            k--;
        if (k > 0) {
            svc->base_path = mem_strndup(rest, k);
            if (svc->base_path == NULL)
                return CV_ENOMEM;
        }
        if (port >= 0)
            return make_text(svc, "%s://%s:%d%s", sname, hostbuf, port,
                             svc->base_path != NULL ? svc->base_path : "");
        return make_text(svc, "%s://%s%s", sname, hostbuf,
                         svc->base_path != NULL ? svc->base_path : "");
    }
    svc->kind = INGRESS_SVC_TCP;
    if (rest[0] != '\0') {
        set_why(why, whylen, "a %s:// service cannot have a path, query or fragment", sname);
        return CV_EINVAL;
    }
    return make_text(svc, "%s://%s:%u", sname, hostbuf, (unsigned)svc->port);
}

int ingress_service_parse(const char *text, bool default_http, struct ingress_service *svc,
                          char *why, size_t whylen)
{
    const char *sep;
    const char *reason;
    const char *rest;
    int64_t status;
    char *tmp;
    size_t n;
    int rv;

    memset(svc, 0, sizeof(*svc));
    if (why != NULL && whylen > 0)
        why[0] = '\0';
    if (text[0] == '\0') {
        set_why(why, whylen, "empty service");
        return CV_EINVAL;
    }
    if (strcmp(text, "hello_world") == 0 || strcmp(text, "hello-world") == 0 ||
        strcmp(text, "helloworld") == 0) {
        svc->kind = INGRESS_SVC_HELLO_WORLD;
        return make_text(svc, "hello_world");
    }
    if (strcmp(text, "bastion") == 0 || strcmp(text, "socks-proxy") == 0 ||
        strcmp(text, "warp-routing") == 0) {
        set_why(why, whylen,
                "\"%s\" is not supported by culvert: a request must never choose its destination",
                text);
        return CV_EINVAL;
    }
    if (strncmp(text, "http_status:", 12) == 0) {
        if (config_parse_int(text + 12, 100, 599, &status, &reason) < 0) {
            set_why(why, whylen, "invalid HTTP status (expected http_status:NNN, 100-599)");
            return CV_EINVAL;
        }
        svc->kind = INGRESS_SVC_HTTP_STATUS;
        svc->status = (int)status;
        return make_text(svc, "http_status:%d", svc->status);
    }
    if (strncmp(text, "unix:", 5) == 0 || strncmp(text, "unix+tls:", 9) == 0) {
        svc->tls = text[4] == '+';
        rest = text + (svc->tls ? 9 : 5);
        n = strlen(rest);
        if (n == 0) {
            set_why(why, whylen, "missing unix socket path");
            return CV_EINVAL;
        }
        if (n > CONFIG_UNIX_PATH_MAX) {
            set_why(why, whylen, "unix socket path longer than %d bytes", CONFIG_UNIX_PATH_MAX);
            return CV_EINVAL;
        }
        if (config_check_path(rest, 0, &reason) < 0) {
            set_why(why, whylen, "%s", reason);
            return CV_EINVAL;
        }
        svc->kind = INGRESS_SVC_UNIX;
        memcpy(svc->unix_path, rest, n + 1);
        return make_text(svc, "%s:%s", svc->tls ? "unix+tls" : "unix", svc->unix_path);
    }
    sep = strstr(text, "://");
    if (sep == NULL || sep == text) {
        if (!default_http || sep == text) {
            set_why(why, whylen,
                    "missing scheme (use http://, https://, unix:, unix+tls:, tcp://, ssh://, "
                    "rdp://, http_status:NNN or hello_world)");
            return CV_EINVAL;
        }
        n = strlen(text);
        tmp = mem_alloc(n + 8);
        if (tmp == NULL)
            return CV_ENOMEM;
        memcpy(tmp, "http://", 7);
        memcpy(tmp + 7, text, n + 1);
        rv = parse_url_service(tmp, tmp + 4, svc, why, whylen);
        mem_free(tmp);
    } else {
        rv = parse_url_service(text, sep, svc, why, whylen);
    }
    if (rv < 0)
        ingress_service_cleanup(svc);
    return rv;
}

/* ---- path expressions ----------------------------------------------------------------------- */

static void *pcre_alloc(PCRE2_SIZE n, void *data)
{
    struct ingress *ing = data;
    void *p = mem_alloc(n);

    if (p == NULL && ing != NULL)
        ing->oom = true;
    return p;
}

static void pcre_free(void *p, void *data)
{
    (void)data;
    mem_free(p);
}

static int pcre_setup(struct ingress *ing)
{
    if (ing->gctx != NULL)
        return 0;
    ing->gctx = pcre2_general_context_create(pcre_alloc, pcre_free, ing);
    if (ing->gctx == NULL)
        return CV_ENOMEM;
    ing->mctx = pcre2_match_context_create(ing->gctx);
    if (ing->mctx == NULL)
        return CV_ENOMEM;
    pcre2_set_match_limit(ing->mctx, INGRESS_MATCH_LIMIT);
    pcre2_set_depth_limit(ing->mctx, INGRESS_DEPTH_LIMIT);
    pcre2_set_heap_limit(ing->mctx, INGRESS_HEAP_LIMIT_KIB);
    ing->md = pcre2_match_data_create(1, ing->gctx);
    if (ing->md == NULL)
        return CV_ENOMEM;
    return 0;
}

/* Compiles |src| for rule |r|. 0, CV_ENOMEM, or CV_ECONFIG with |why| (PCRE2's message). */
static int regex_compile(struct ingress *ing, const char *src, size_t len,
                         struct ingress_regex **out, char *why, size_t whylen)
{
    pcre2_compile_context *cctx;
    struct ingress_regex *re;
    PCRE2_UCHAR msg[160];
    PCRE2_SIZE off = 0;
    int code = 0;
    int rv;

    *out = NULL;
    rv = pcre_setup(ing);
    if (rv < 0)
        return rv;
    re = mem_calloc(sizeof(*re));
    if (re == NULL)
        return CV_ENOMEM;
    cctx = pcre2_compile_context_create(ing->gctx);
    if (cctx == NULL) {
        mem_free(re);
        return CV_ENOMEM;
    }
    ing->oom = false;
    /* RE2 semantics where they differ from Perl's: "$" matches only at the very end. */
    re->code = pcre2_compile((PCRE2_SPTR)src, len, PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C,
                             &code, &off, cctx);
    pcre2_compile_context_free(cctx);
    if (re->code == NULL) {
        mem_free(re);
        if (ing->oom)
            return CV_ENOMEM;
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        set_why(why, whylen, "invalid regular expression at offset %zu: %s", (size_t)off,
                (const char *)msg);
        return CV_ECONFIG;
    }
    *out = re;
    return 0;
}

static void regex_free(struct ingress_regex *re)
{
    if (re == NULL)
        return;
    pcre2_code_free(re->code);
    mem_free(re);
}

/* True when |re| is found in the |n| bytes at |s|. Errors (limits, memory) count as no match. */
static bool regex_search(struct ingress *ing, const struct ingress_regex *re, const char *s,
                         size_t n)
{
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, 0, 0, ing->md, ing->mctx);

    if (rc >= 0)
        return true;
    if (rc != PCRE2_ERROR_NOMATCH)
        LOG_W_RL("ingress path expression gave up (PCRE2 error %d): treated as no match", rc);
    return false;
}

/* ---- building ------------------------------------------------------------------------------- */

static void rule_cleanup(struct ingress_rule *r)
{
    mem_free(r->path);
    r->path = NULL;
    regex_free(r->path_re);
    r->path_re = NULL;
    ingress_service_cleanup(&r->service);
    origin_request_cleanup(&r->origin);
}

void ingress_free(struct ingress *ing)
{
    size_t i;

    if (ing == NULL)
        return;
    for (i = 0; i < ing->count; i++)
        rule_cleanup(&ing->rules[i]);
    mem_free(ing->rules);
    origin_request_cleanup(&ing->defaults);
    pcre2_match_data_free(ing->md);
    pcre2_match_context_free(ing->mctx);
    pcre2_general_context_free(ing->gctx);
    mem_free(ing);
}

static struct ingress *ingress_alloc(size_t count, const struct origin_request *defaults)
{
    struct ingress *ing = mem_calloc(sizeof(*ing));
    size_t i;

    if (ing == NULL)
        return NULL;
    origin_request_init(&ing->defaults);
    ing->rules = mem_calloc(count * sizeof(*ing->rules));
    if (ing->rules == NULL || origin_request_copy(&ing->defaults, defaults) < 0) {
        mem_free(ing->rules);
        mem_free(ing);
        return NULL;
    }
    for (i = 0; i < count; i++)
        origin_request_init(&ing->rules[i].origin);
    return ing;
}

static bool is_catch_all(const struct ingress_rule *r)
{
    return r->any_host && r->path == NULL;
}

/* True when every hostname |later| matches is also matched by |earlier| (both not any_host). */
static bool host_covers(const struct hostname_pattern *earlier,
                        const struct hostname_pattern *later)
{
    if (earlier->len == later->len && memcmp(earlier->text, later->text, later->len) == 0)
        return true;
    if (!earlier->wildcard)
        return false;
    if (!later->wildcard)
        return hostname_pattern_match(earlier, later->text, later->len);
    /* "*.a.example.com" is covered by "*.example.com" when "a.example.com" is. */
    return hostname_pattern_match(earlier, later->text + 2, later->len - 2);
}

static const char *const rule_keys[] = {"hostname", "path", "service", "originRequest", NULL};

static int parse_rule(struct ingress *ing, const struct yaml_node *rn, size_t i, size_t count,
                      const struct origin_request *defaults, ingress_warn_cb warn, void *warn_arg,
                      struct yaml_error *err)
{
    struct ingress_rule *r = &ing->rules[i];
    const struct yaml_node *hn;
    const struct yaml_node *pn;
    const struct yaml_node *sn;
    char base[40];
    char p[KEY_PATH_MAX];
    char why[WHY_MAX];
    const char *s;
    const char *reason;
    size_t k;
    int rv;

    r->number = (unsigned)(i + 1);
    snprintf(base, sizeof(base), "ingress[%zu]", i);
    rv = yaml_expect(rn, base, YAML_KIND_MAPPING, err);
    if (rv == CV_ENOTFOUND)
        return yaml_errorf(err, rn, base, "rule #%u is empty", r->number);
    if (rv < 0)
        return rv;
    for (k = 0; k < yaml_map_count(rn); k++) {
        const struct yaml_node *key = yaml_map_key(rn, k);
        const char *name = yaml_scalar(key, NULL);
        char shown[64];

        if (in_list(rule_keys, name))
            continue;
        sanitize(name, shown, sizeof(shown));
        snprintf(p, sizeof(p), "%s.%s", base, shown);
        warn_at(warn, warn_arg, key, p, "unknown key, ignored");
    }

    /* hostname: exact or "*."; "", "*" or absent match every host. */
    snprintf(p, sizeof(p), "%s.hostname", base);
    hn = yaml_map_get(rn, "hostname");
    rv = yaml_as_string(hn, p, &s, err);
    if (rv == CV_ENOTFOUND || (rv == 0 && (s[0] == '\0' || strcmp(s, "*") == 0))) {
        r->any_host = true;
        r->star = rv == 0 && s[0] == '*';
    } else if (rv < 0) {
        return rv;
    } else if (strchr(s, ':') != NULL) {
        return yaml_errorf(err, hn, p, "a hostname cannot contain a port (rule #%u)", r->number);
    } else if (hostname_pattern_parse(s, strlen(s), &r->host, &reason) < 0) {
        return yaml_errorf(err, hn, p, "%s (rule #%u)", reason, r->number);
    }

    /* path: a regular expression searched in the request path. */
    snprintf(p, sizeof(p), "%s.path", base);
    pn = yaml_map_get(rn, "path");
    rv = yaml_as_string(pn, p, &s, err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    if (rv == 0 && s[0] != '\0') {
        r->path = mem_strdup(s);
        if (r->path == NULL)
            return CV_ENOMEM;
        rv = regex_compile(ing, s, strlen(s), &r->path_re, why, sizeof(why));
        if (rv == CV_ECONFIG)
            return yaml_errorf(err, pn, p, "%s (rule #%u)", why, r->number);
        if (rv < 0)
            return rv;
    }

    /* service */
    snprintf(p, sizeof(p), "%s.service", base);
    sn = yaml_map_get(rn, "service");
    rv = yaml_as_string(sn, p, &s, err);
    if (rv == CV_ENOTFOUND)
        return yaml_errorf(err, rn, p, "missing: rule #%u needs a service", r->number);
    if (rv < 0)
        return rv;
    rv = ingress_service_parse(s, false, &r->service, why, sizeof(why));
    if (rv == CV_EINVAL)
        return yaml_errorf(err, sn, p, "%s (rule #%u)", why, r->number);
    if (rv < 0)
        return rv;

    /* originRequest: the top level's, then this rule's keys over it. */
    snprintf(p, sizeof(p), "%s.originRequest", base);
    rv = origin_request_copy(&r->origin, defaults);
    if (rv < 0)
        return rv;
    rv = origin_request_parse(yaml_map_get(rn, "originRequest"), p, &r->origin, warn, warn_arg,
                              err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    if (!r->origin.allow_link_local && service_link_local(&r->service)) {
        snprintf(p, sizeof(p), "%s.service", base);
        return yaml_errorf(err, sn, p, LINK_LOCAL_WHY " (rule #%u)", r->service.host, r->number);
    }

    /* cloudflared's validateHostname: the last rule and only the last matches everything. */
    if (i + 1 == count && !is_catch_all(r))
        return yaml_errorf(err, rn, base,
                           "The last ingress rule must match all URLs (i.e. it should not have a "
                           "hostname or path filter)");
    if (i + 1 < count && is_catch_all(r))
        return yaml_errorf(err, rn, base,
                           "rule #%u is a catch-all but not the last rule: the rules after it "
                           "would never be used (give it a hostname or path, or move it last)",
                           r->number);

    /* A rule an earlier path-less rule already answers for is a mistake worth a warning (an
     * earlier, less specific wildcard does not hide it: see ingress_match). */
    if (!r->any_host) {
        for (k = 0; k < i; k++) {
            const struct ingress_rule *e = &ing->rules[k];

            if (e->path == NULL && !e->any_host && host_covers(&e->host, &r->host) &&
                rule_rank(e) >= rule_rank(r)) {
                warn_at(warn, warn_arg, rn, base,
                        "rule #%u can never match: rule #%u (hostname %s, no path) comes first "
                        "and matches every request it would",
                        r->number, e->number, e->host.text);
                break;
            }
        }
    }
    return 0;
}

int ingress_parse(const struct yaml_node *rules, const struct origin_request *defaults,
                  ingress_warn_cb warn, void *warn_arg, struct ingress **out,
                  struct yaml_error *err)
{
    struct ingress *ing;
    size_t count;
    size_t i;
    int rv;

    *out = NULL;
    rv = yaml_expect(rules, "ingress", YAML_KIND_SEQUENCE, err);
    if (rv < 0)
        return rv;
    count = yaml_seq_count(rules);
    if (count == 0)
        return yaml_errorf(err, rules, "ingress", "The config file doesn't contain any ingress "
                                                  "rules");
    ing = ingress_alloc(count, defaults);
    if (ing == NULL)
        return CV_ENOMEM;
    for (i = 0; i < count; i++) {
        ing->count = i + 1; /* so that ingress_free cleans what this rule built */
        rv = parse_rule(ing, yaml_seq_at(rules, i), i, count, defaults, warn, warn_arg, err);
        if (rv < 0) {
            ingress_free(ing);
            return rv;
        }
    }
    *out = ing;
    return 0;
}

int ingress_from_url(const char *url, const char *name, const struct origin_request *defaults,
                     struct ingress **out, char *err, size_t errlen)
{
    struct ingress *ing;
    char why[WHY_MAX];
    int rv;

    *out = NULL;
    ing = ingress_alloc(1, defaults);
    if (ing == NULL)
        return CV_ENOMEM;
    ing->count = 1;
    ing->rules[0].number = 1;
    ing->rules[0].any_host = true;
    rv = ingress_service_parse(url, true, &ing->rules[0].service, why, sizeof(why));
    if (rv == 0)
        rv = origin_request_copy(&ing->rules[0].origin, defaults);
    if (rv == 0 && !ing->rules[0].origin.allow_link_local && service_link_local(&ing->rules[0].service)) {
        set_why(why, sizeof(why), LINK_LOCAL_WHY, ing->rules[0].service.host);
        rv = CV_EINVAL;
    }
    if (rv < 0) {
        if (rv == CV_EINVAL)
            set_why(err, errlen, "%s: %s", name, why);
        else
            set_why(err, errlen, "%s: %s", name, cv_strerror(rv));
        ingress_free(ing);
        return rv;
    }
    *out = ing;
    return 0;
}

size_t ingress_rule_count(const struct ingress *ing)
{
    return ing->count;
}

const struct ingress_rule *ingress_rule_at(const struct ingress *ing, size_t i)
{
    return i < ing->count ? &ing->rules[i] : NULL;
}

const struct origin_request *ingress_defaults(const struct ingress *ing)
{
    return &ing->defaults;
}

/* ---- matching ------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes |n| bytes of |in| into |out| (room for |n|). Returns the length, or -1 on an
 * invalid escape. */
static long percent_decode(const char *in, size_t n, char *out)
{
    size_t i;
    size_t o = 0;

    for (i = 0; i < n; i++) {
        int hi;
        int lo;

        if (in[i] != '%') {
            out[o++] = in[i];
            continue;
        }
        if (i + 2 >= n)
            return -1;
        hi = hexval(in[i + 1]);
        lo = hexval(in[i + 2]);
        if (hi < 0 || lo < 0)
            return -1;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return (long)o;
}

const struct ingress_rule *ingress_match(struct ingress *ing, const char *host, size_t host_len,
                                         const char *path, size_t path_len)
{
    const struct ingress_rule *best = NULL;
    size_t best_rank = 0;
    struct hostname_host hh;
    char decoded[INGRESS_DECODE_MAX];
    const char *subject = path;
    size_t subject_len;
    size_t name_len = 0;
    bool host_ok;
    const char *q;
    long dl;
    size_t i;

    q = path_len > 0 ? memchr(path, '?', path_len) : NULL;
    if (q != NULL)
        path_len = (size_t)(q - path);
    subject_len = path_len;
    if (path_len > 0 && path_len <= sizeof(decoded) && memchr(path, '%', path_len) != NULL) {
        dl = percent_decode(path, path_len, decoded);
        if (dl >= 0) {
            subject = decoded;
            subject_len = (size_t)dl;
        }
    }
    host_ok = host_len > 0 && hostname_split(host, host_len, &hh, NULL) == 0 &&
              hh.kind == HOSTNAME_NAME;
    if (host_ok)
        name_len = strlen(hh.name);
    for (i = 0; i < ing->count; i++) {
        const struct ingress_rule *r = &ing->rules[i];

        if (!r->any_host && (!host_ok || !hostname_pattern_match(&r->host, hh.name, name_len)))
            continue;
        /* After a wildcard matched, only a more specific hostname can still win. */
        if (best != NULL && (r->any_host || rule_rank(r) <= best_rank))
            continue;
        if (r->path_re != NULL && !regex_search(ing, r->path_re, subject, subject_len))
            continue;
        /* First match, as in cloudflared, except that a wildcard yields to a later rule with a more
         * specific hostname (PRODUCT.md section 2: exact beats wildcard, longer beats shorter). */
        if (r->any_host || !r->host.wildcard)
            return r;
        best = r;
        best_rank = rule_rank(r);
    }
    return best != NULL ? best : &ing->rules[ing->count - 1];
}

/* ---- description ---------------------------------------------------------------------------- */

struct text_out {
    char *p;
    size_t n;
    size_t len; /* what the whole text needs */
};

static void out_printf(struct text_out *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out_printf(struct text_out *t, const char *fmt, ...)
{
    va_list ap;
    int k;
    size_t room = t->len < t->n ? t->n - t->len : 0;

    va_start(ap, fmt);
    k = vsnprintf(room > 0 ? t->p + t->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0)
        t->len += (size_t)k;
}

size_t ingress_rule_describe(const struct ingress_rule *r, char *out, size_t n)
{
    struct text_out t = {out, n, 0};

    if (n > 0)
        out[0] = '\0';
    out_printf(&t, "Matched rule #%u\n", r->number);
    if (!r->any_host)
        out_printf(&t, "\thostname: %s\n", r->host.text);
    else if (r->star)
        out_printf(&t, "\thostname: *\n");
    if (r->path != NULL)
        out_printf(&t, "\tpath: %s\n", r->path);
    out_printf(&t, "\tservice: %s\n", r->service.text != NULL ? r->service.text : "");
    if (n > 0 && t.len >= n)
        out[n - 1] = '\0';
    return t.len;
}

/* ---- commands ------------------------------------------------------------------------------- */

/* Parses `[--config FILE] [--help] [ARG]`; sets *|config|, *|arg| (the one positional, when
 * |want_arg|). Returns 0, 1 for --help, or 2 after printing a usage error. */
static int parse_cmd_args(int argc, char **argv, bool want_arg, const char **config,
                          const char **arg, FILE *errf)
{
    int i;

    *config = NULL;
    *arg = NULL;
    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *name = a;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (a[0] == '-' && a[1] != '\0') {
            name = a + (a[1] == '-' ? 2 : 1);
            if (strcmp(name, "config") == 0) {
                if (i + 1 >= argc) {
                    fprintf(errf, "error: --config needs a value\n");
                    return 2;
                }
                *config = argv[++i];
                continue;
            }
            if (strncmp(name, "config=", 7) == 0) {
                *config = name + 7;
                continue;
            }
            fprintf(errf, "error: unknown flag %.64s\n", a);
            return 2;
        }
        if (!want_arg || *arg != NULL) {
            fprintf(errf, "error: unexpected argument %.64s\n", a);
            return 2;
        }
        *arg = a;
    }
    if (*config != NULL && (*config)[0] == '\0') {
        fprintf(errf, "error: --config needs a value\n");
        return 2;
    }
    return 0;
}

/* Finds the config file for a command: |given| or the search order. 0, or 2 after a message. */
static int cmd_config_path(const char *given, char *path, size_t n, FILE *errf)
{
    if (given != NULL) {
        snprintf(path, n, "%s", given);
        return 0;
    }
    if (connector_config_find(path, n) < 0) {
        fprintf(errf, "No configuration file was found. Please create one (~/.culvert/config.yml "
                      "or /etc/culvert/config.yml), or use the --config flag to specify its "
                      "path.\n");
        return 2;
    }
    return 0;
}

static void print_warnings(const struct connector_config *c, FILE *errf)
{
    size_t i;

    for (i = 0; i < c->n_warnings; i++)
        fprintf(errf, "warning: %s\n", c->warnings[i]);
}

int ingress_cmd_validate_io(int argc, char **argv, FILE *out, FILE *errf)
{
    struct connector_config *c = NULL;
    const char *given;
    const char *unused;
    char path[4096];
    char err[1024];
    int rv;

    rv = parse_cmd_args(argc, argv, false, &given, &unused, errf);
    if (rv == 1) {
        fprintf(out, "usage: culvert-connector ingress validate [--config FILE]\n"
                     "Checks the config file, its ingress rules included, and prints OK.\n");
        return 0;
    }
    if (rv != 0)
        return rv;
    if (cmd_config_path(given, path, sizeof(path), errf) != 0)
        return 2;
    fprintf(out, "Validating rules from %s\n", path);
    rv = connector_config_load_file(path, &c, err, sizeof(err));
    if (rv < 0) {
        fprintf(errf, "Validation failed: %s\n", err);
        return 2;
    }
    print_warnings(c, errf);
    fprintf(out, "OK\n");
    connector_config_free(c);
    return 0;
}

int ingress_cmd_validate(int argc, char **argv)
{
    int rc = ingress_cmd_validate_io(argc, argv, stdout, stderr);

    fflush(stdout);
    return rc;
}

int ingress_cmd_rule_io(int argc, char **argv, FILE *out, FILE *errf)
{
    struct connector_config *c = NULL;
    const struct ingress_rule *r;
    const char *given;
    const char *url;
    const char *sep;
    const char *auth;
    const char *colon;
    const char *path;
    char file[4096];
    char err[1024];
    char desc[4096];
    size_t auth_len;
    size_t host_len;
    size_t path_len;
    int rv;

    rv = parse_cmd_args(argc, argv, true, &given, &url, errf);
    if (rv == 1) {
        fprintf(out, "usage: culvert-connector ingress rule URL [--config FILE]\n"
                     "Prints the ingress rule that a request for URL matches, e.g.\n"
                     "  culvert-connector ingress rule https://app.example.com/api/v1\n");
        return 0;
    }
    if (rv != 0)
        return rv;
    if (url == NULL || url[0] == '\0') {
        fprintf(errf,
                "culvert-connector ingress rule expects a single argument, the URL to test\n");
        return 2;
    }
    sep = strstr(url, "://");
    if (sep == NULL || sep == url) {
        fprintf(errf, "%.256s doesn't have a hostname, consider adding a scheme\n", url);
        return 2;
    }
    auth = sep + 3;
    auth_len = strcspn(auth, "/?#");
    /* The host part of the authority, without a port: empty in "https:///x" or "https://:8443". */
    colon = auth_len > 0 && auth[0] != '[' ? memchr(auth, ':', auth_len) : NULL;
    host_len = colon != NULL ? (size_t)(colon - auth) : auth_len;
    if (host_len == 0 || (auth_len >= 2 && auth[0] == '[' && auth[1] == ']')) {
        fprintf(errf, "%.256s doesn't have a hostname, consider adding a scheme\n", url);
        return 2;
    }
    if (memchr(auth, '@', auth_len) != NULL) {
        fprintf(errf, "%.256s is not a valid URL: userinfo is not allowed\n", url);
        return 2;
    }
    path = auth + auth_len;
    path_len = path[0] == '/' ? strcspn(path, "?#") : 0;
    if (cmd_config_path(given, file, sizeof(file), errf) != 0)
        return 2;
    fprintf(out, "Using rules from %s\n", file);
    rv = connector_config_load_file(file, &c, err, sizeof(err));
    if (rv < 0) {
        fprintf(errf, "Validation failed: %s\n", err);
        return 2;
    }
    print_warnings(c, errf);
    r = ingress_match(c->ingress, auth, auth_len, path, path_len);
    ingress_rule_describe(r, desc, sizeof(desc));
    fputs(desc, out);
    connector_config_free(c);
    return 0;
}

int ingress_cmd_rule(int argc, char **argv)
{
    int rc = ingress_cmd_rule_io(argc, argv, stdout, stderr);

    fflush(stdout);
    return rc;
}
