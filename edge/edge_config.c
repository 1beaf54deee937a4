/*
 * edge_config.c - the edge.yml schema: walks common/yaml's node tree, checks every key, fills a
 * struct edge_config; see edge_config.h. Below: common/yaml (located errors, typed getters),
 * common/config (values), common/hostname, OpenSSL for the tunnel CA digest. Runs before the loop
 * starts or on the loop thread (SIGHUP); no global state.
 */
#include "edge_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "err.h"
#include "mem.h"
#include "store.h"
#include "yaml.h"

#define PATH_TEXT_MAX 160 /* key paths in messages: "hosts[12].timeouts.header_read" */
#define LIMITS_MAX 64 /* entries of limits_table() we can track */

struct loader {
    const char *file;          /* as given */
    char *dir;                 /* absolute directory of the file, without trailing '/' */
    struct yaml_error *err;
    struct edge_config *c;
    bool limit_set[LIMITS_MAX]; /* set under limits: (index in limits_table()) */
};

/* ---- small helpers ------------------------------------------------------------------------ */

/* Is |key| one of the NULL-terminated |allowed|? */
static bool key_known(const char *key, const char *const *allowed)
{
    size_t i;

    for (i = 0; allowed[i] != NULL; i++) {
        if (strcmp(key, allowed[i]) == 0)
            return true;
    }
    return false;
}

static void join_keys(char *out, size_t n, const char *const *allowed)
{
    size_t i;
    size_t used = 0;

    out[0] = '\0';
    for (i = 0; allowed[i] != NULL && used < n; i++) {
        int w = snprintf(out + used, n - used, "%s%s", i > 0 ? ", " : "", allowed[i]);

        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* "parent.key" (or "key" at the top) into |out|; a path too long for |out| ends in "...". */
static void key_path(char *out, size_t n, const char *parent, const char *key)
{
    int w;

    if (parent == NULL || parent[0] == '\0')
        w = snprintf(out, n, "%s", key);
    else
        w = snprintf(out, n, "%s.%s", parent, key);
    if (w < 0 || (size_t)w >= n)
        snprintf(out + n - 4, 4, "...");
}

/*
 * Checks that |m| (the value at |path|) is a mapping whose keys are all in |allowed|. Returns 0,
 * CV_ENOTFOUND (absent or null: the caller keeps its defaults) or CV_ECONFIG.
 */
static int check_map(struct loader *l, const struct yaml_node *m, const char *path,
                     const char *const *allowed)
{
    size_t i;
    int rv = yaml_expect(m, path, YAML_KIND_MAPPING, l->err);

    if (rv < 0)
        return rv;
    for (i = 0; i < yaml_map_count(m); i++) {
        const struct yaml_node *k = yaml_map_key(m, i);
        const char *name = yaml_scalar(k, NULL);
        char p[PATH_TEXT_MAX];
        char known[256];

        if (key_known(name, allowed))
            continue;
        key_path(p, sizeof(p), path, name);
        join_keys(known, sizeof(known), allowed);
        return yaml_errorf(l->err, k, p, "unknown key (expected one of: %s)", known);
    }
    return 0;
}

/* "file: path: message" for a missing required key when no node can be pointed at; located at
 * |near| (the enclosing mapping) when there is one. Returns CV_ECONFIG. */
static int missing(struct loader *l, const struct yaml_node *near, const char *path,
                   const char *what)
{
    if (near != NULL)
        return yaml_errorf(l->err, near, path, "%s", what);
    snprintf(l->err->msg, sizeof(l->err->msg), "%s: %s: %s", l->file, path, what);
    return CV_ECONFIG;
}

static int nomem(struct loader *l)
{
    snprintf(l->err->msg, sizeof(l->err->msg), "%s: out of memory", l->file);
    return CV_ENOMEM;
}

/* Absolute directory of |file|: its dirname, prefixed with the working directory if relative. */
static char *file_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    char cwd[4096];
    size_t dlen;
    char *out;

    if (slash == file)
        return mem_strdup("/");
    if (slash != NULL && file[0] == '/')
        return mem_strndup(file, (size_t)(slash - file));
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    if (slash == NULL || (slash == file + 1 && file[0] == '.'))
        return mem_strdup(cwd); /* "edge.yml" or "./edge.yml" */
    dlen = strlen(cwd) + 1 + (size_t)(slash - file) + 1;
    out = mem_alloc(dlen);
    if (out == NULL)
        return NULL;
    snprintf(out, dlen, "%s/%.*s", strcmp(cwd, "/") == 0 ? "" : cwd, (int)(slash - file), file);
    return out;
}

/* A new absolute copy of |p|: as is when absolute, else under the config file's directory
 * ("./" prefixes dropped). NULL when out of memory. */
static char *resolve(const struct loader *l, const char *p)
{
    size_t n;
    char *out;
    const char *dir = l->dir;

    if (p[0] == '/')
        return mem_strdup(p);
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (p[0] == '/')
            p++;
    }
    if (strcmp(dir, "/") == 0)
        dir = "";
    n = strlen(dir) + 1 + strlen(p) + 1;
    out = mem_alloc(n);
    if (out == NULL)
        return NULL;
    snprintf(out, n, "%s/%s", dir, p);
    return out;
}

/* Reads the path at |n| into a new resolved string *|out| (replacing and freeing the old one).
 * 0, CV_ENOTFOUND (absent: *|out| unchanged), CV_ECONFIG or CV_ENOMEM. */
static int get_path(struct loader *l, const struct yaml_node *n, const char *path, char **out)
{
    const char *s;
    char *r;
    int rv = yaml_as_path(n, path, 0, &s, l->err);

    if (rv < 0)
        return rv;
    r = resolve(l, s);
    if (r == NULL)
        return nomem(l);
    mem_free(*out);
    *out = r;
    return 0;
}

/* Writes "file:line:col: |path|" for |n| into |out| (for messages about the file a path names). */
static void node_at(const struct yaml_node *n, const char *path, char out[EDGE_CONFIG_AT_MAX])
{
    snprintf(out, EDGE_CONFIG_AT_MAX, "%s:%u:%u: %s", yaml_node_file(n), yaml_node_line(n),
             yaml_node_col(n), path);
}

/* A string value into a new copy (replacing *|out|). */
static int get_string(struct loader *l, const struct yaml_node *n, const char *path, char **out)
{
    const char *s;
    char *r;
    int rv = yaml_as_string(n, path, &s, l->err);

    if (rv < 0)
        return rv;
    r = mem_strdup(s);
    if (r == NULL)
        return nomem(l);
    mem_free(*out);
    *out = r;
    return 0;
}

static bool addr_equal(const struct config_addr *a, const struct config_addr *b)
{
    if (a->kind != b->kind)
        return false;
    if (a->kind == CONFIG_ADDR_UNIX)
        return strcmp(a->path, b->path) == 0;
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

/*
 * An address list: a sequence of addresses or a single address scalar. Replaces *|out| / *|n| on
 * success. |allow_empty| accepts "[]". Returns 0, CV_ENOTFOUND, CV_ECONFIG or CV_ENOMEM.
 */
static int get_addr_list(struct loader *l, const struct yaml_node *node, const char *path,
                         unsigned flags, bool allow_empty, struct config_addr **out, size_t *n)
{
    struct config_addr *arr;
    size_t count;
    size_t i;
    int rv;

    if (yaml_is_null(node))
        return CV_ENOTFOUND;
    if (yaml_node_kind(node) == YAML_KIND_SCALAR) {
        arr = mem_calloc(sizeof(*arr));
        if (arr == NULL)
            return nomem(l);
        rv = yaml_as_addr(node, path, flags, &arr[0], l->err);
        if (rv < 0) {
            mem_free(arr);
            return rv;
        }
        mem_free(*out);
        *out = arr;
        *n = 1;
        return 0;
    }
    if (yaml_node_kind(node) != YAML_KIND_SEQUENCE)
        return yaml_errorf(l->err, node, path, "expected a list of addresses, found %s",
                           yaml_kind_name(yaml_node_kind(node)));
    count = yaml_seq_count(node);
    if (count == 0) {
        if (!allow_empty)
            return yaml_errorf(l->err, node, path, "at least one address is required");
        mem_free(*out);
        *out = NULL;
        *n = 0;
        return 0;
    }
    arr = mem_calloc(count * sizeof(*arr));
    if (arr == NULL)
        return nomem(l);
    for (i = 0; i < count; i++) {
        const struct yaml_node *item = yaml_seq_at(node, i);
        char p[PATH_TEXT_MAX];
        size_t j;

        snprintf(p, sizeof(p), "%s[%zu]", path, i);
        rv = yaml_as_addr(item, p, flags, &arr[i], l->err);
        if (rv == CV_ENOTFOUND)
            rv = yaml_errorf(l->err, item != NULL ? item : node, p, "empty address");
        for (j = 0; rv == 0 && j < i; j++) {
            if (addr_equal(&arr[j], &arr[i]))
                rv = yaml_errorf(l->err, item, p, "duplicate of %s[%zu]", path, j);
        }
        if (rv < 0) {
            mem_free(arr);
            return rv;
        }
    }
    mem_free(*out);
    *out = arr;
    *n = count;
    return 0;
}

static int set_addr_default(struct loader *l, const char *text, struct config_addr **out,
                            size_t *n)
{
    struct config_addr *a = mem_calloc(sizeof(*a));

    if (a == NULL)
        return nomem(l);
    if (config_parse_addr(text, 0, a, NULL) < 0) {
        mem_free(a);
        return CV_EINVAL;
    }
    *out = a;
    *n = 1;
    return 0;
}

/* ---- sections ----------------------------------------------------------------------------- */

static int load_region(struct loader *l, const struct yaml_node *n)
{
    const char *s;
    size_t i;
    int rv = yaml_as_string(n, "region", &s, l->err);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    if (s[0] == '\0' || strlen(s) > EDGE_REGION_MAX)
        return yaml_errorf(l->err, n, "region", "must be 1 to %d characters", EDGE_REGION_MAX);
    for (i = 0; s[i] != '\0'; i++) {
        char ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return yaml_errorf(l->err, n, "region",
                               "only letters, digits, '-', '_' and '.' are allowed");
    }
    return get_string(l, n, "region", &l->c->region);
}

static int load_certificates(struct loader *l, const struct yaml_node *pub,
                             const struct yaml_node *n)
{
    static const char *const keys[] = {"cert", "key", NULL};
    struct edge_config *c = l->c;
    size_t count;
    size_t i;
    int rv;

    if (yaml_is_null(n))
        return missing(l, pub, "public.certificates",
                       "is required: at least one { cert: FILE, key: FILE }");
    rv = yaml_expect(n, "public.certificates", YAML_KIND_SEQUENCE, l->err);
    if (rv < 0)
        return rv;
    count = yaml_seq_count(n);
    if (count == 0)
        return yaml_errorf(l->err, n, "public.certificates",
                           "at least one { cert: FILE, key: FILE } is required");
    c->certs = mem_calloc(count * sizeof(*c->certs));
    if (c->certs == NULL)
        return nomem(l);
    c->n_certs = count;
    for (i = 0; i < count; i++) {
        const struct yaml_node *item = yaml_seq_at(n, i);
        char p[PATH_TEXT_MAX];
        char pk[PATH_TEXT_MAX];

        snprintf(p, sizeof(p), "public.certificates[%zu]", i);
        rv = check_map(l, item, p, keys);
        if (rv == CV_ENOTFOUND)
            return yaml_errorf(l->err, item, p, "expected { cert: FILE, key: FILE }");
        if (rv < 0)
            return rv;
        key_path(pk, sizeof(pk), p, "cert");
        rv = get_path(l, yaml_map_get(item, "cert"), pk, &c->certs[i].cert);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
        node_at(yaml_map_get(item, "cert"), pk, c->certs[i].cert_at);
        key_path(pk, sizeof(pk), p, "key");
        rv = get_path(l, yaml_map_get(item, "key"), pk, &c->certs[i].key);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
        node_at(yaml_map_get(item, "key"), pk, c->certs[i].key_at);
    }
    return 0;
}

/* public.advertise_ports: { https: PORT, http: PORT }, each optional. */
static int load_advertise_ports(struct loader *l, const struct yaml_node *m)
{
    static const char *const keys[] = {"https", "http", NULL};
    struct edge_config *c = l->c;
    int64_t v;
    int rv;

    if (m == NULL)
        return 0;
    rv = check_map(l, m, "public.advertise_ports", keys);
    if (rv < 0)
        return rv;
    rv = yaml_as_int(yaml_map_get(m, "https"), "public.advertise_ports.https", 1, 65535, &v,
                     l->err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    if (rv == 0)
        c->advertise_https_port = (int)v;
    rv = yaml_as_int(yaml_map_get(m, "http"), "public.advertise_ports.http", 1, 65535, &v, l->err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    if (rv == 0)
        c->advertise_http_port = (int)v;
    return 0;
}

static int load_public(struct loader *l, const struct yaml_node *root,
                       const struct yaml_node *pub)
{
    static const char *const keys[] = {"https", "http", "http_redirect", "advertise_ports",
                                       "certificates", NULL};
    struct edge_config *c = l->c;
    int rv = check_map(l, pub, "public", keys);

    if (rv == CV_ENOTFOUND)
        return load_certificates(l, pub != NULL ? pub : root, NULL);
    if (rv < 0)
        return rv;
    rv = get_addr_list(l, yaml_map_get(pub, "https"), "public.https", 0, true, &c->https,
                       &c->n_https);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = get_addr_list(l, yaml_map_get(pub, "http"), "public.http", 0, true, &c->http,
                       &c->n_http);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = yaml_as_bool(yaml_map_get(pub, "http_redirect"), "public.http_redirect",
                      &c->http_redirect, l->err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = load_advertise_ports(l, yaml_map_get(pub, "advertise_ports"));
    if (rv < 0)
        return rv;
    return load_certificates(l, pub, yaml_map_get(pub, "certificates"));
}

/* SHA-256 of the DER of the first certificate in the PEM file |file| (for tokens). */
static int ca_digest(struct loader *l, const struct yaml_node *n, const char *file)
{
    FILE *f;
    X509 *x;
    unsigned char *der = NULL;
    int len;
    int e;

    f = fopen(file, "r");
    if (f == NULL) {
        e = errno;
        return yaml_errorf(l->err, n, "tunnel.ca", "cannot read %s: %s", file, strerror(e));
    }
    ERR_clear_error();
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        ERR_clear_error();
        return yaml_errorf(l->err, n, "tunnel.ca", "%s holds no PEM certificate", file);
    }
    len = i2d_X509(x, &der);
    X509_free(x);
    if (len <= 0) {
        ERR_clear_error();
        return yaml_errorf(l->err, n, "tunnel.ca", "%s: cannot encode the certificate", file);
    }
    SHA256(der, (size_t)len, l->c->ca_sha256);
    OPENSSL_free(der);
    l->c->has_ca_sha256 = true;
    return 0;
}

/* tunnel.advertise default: each listen address, the machine's name in place of an any-address. */
static int default_advertise(struct loader *l, const struct yaml_node *tun)
{
    struct edge_config *c = l->c;
    size_t i;
    size_t j;

    c->advertise = mem_calloc(c->n_tunnel_listen * sizeof(*c->advertise));
    if (c->advertise == NULL)
        return nomem(l);
    c->n_advertise = 0;
    for (i = 0; i < c->n_tunnel_listen; i++) {
        struct config_addr a = c->tunnel_listen[i];
        bool dup = false;

        if ((a.host_kind == HOSTNAME_IPV4 && strcmp(a.host, "0.0.0.0") == 0) ||
            (a.host_kind == HOSTNAME_IPV6 && strcmp(a.host, "::") == 0)) {
            char name[HOSTNAME_MAX + 2];
            char norm[HOSTNAME_MAX + 1];

            memset(name, 0, sizeof(name));
            if (gethostname(name, sizeof(name) - 1) != 0 ||
                hostname_normalize(name, strlen(name), norm, NULL) < 0)
                return missing(l, tun, "tunnel.advertise",
                               "the machine's hostname is not a usable DNS name: set "
                               "tunnel.advertise to the name and port connectors should dial");
            a.host_kind = HOSTNAME_NAME;
            snprintf(a.host, sizeof(a.host), "%s", norm);
        }
        for (j = 0; j < c->n_advertise; j++) {
            if (addr_equal(&c->advertise[j], &a))
                dup = true;
        }
        if (!dup)
            c->advertise[c->n_advertise++] = a;
    }
    return 0;
}

static int load_tunnel(struct loader *l, const struct yaml_node *root,
                       const struct yaml_node *tun)
{
    static const char *const keys[] = {"listen", "advertise", "ca", "cert", "key", NULL};
    struct edge_config *c = l->c;
    const struct yaml_node *n;
    int rv = check_map(l, tun, "tunnel", keys);

    if (rv == CV_ENOTFOUND)
        return missing(l, tun != NULL ? tun : root, "tunnel.cert",
                       "is required (the tunnel listener's certificate)");
    if (rv < 0)
        return rv;
    rv = get_addr_list(l, yaml_map_get(tun, "listen"), "tunnel.listen", 0, false,
                       &c->tunnel_listen, &c->n_tunnel_listen);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    n = yaml_map_get(tun, "advertise");
    rv = get_addr_list(l, n, "tunnel.advertise", 0, false, &c->advertise, &c->n_advertise);
    if (rv == CV_ENOTFOUND)
        rv = default_advertise(l, tun);
    if (rv < 0)
        return rv;
    if (c->n_advertise > TOKEN_MAX_EDGES)
        return yaml_errorf(l->err, n, "tunnel.advertise", "at most %d addresses",
                           TOKEN_MAX_EDGES);
    n = yaml_map_get(tun, "ca");
    rv = get_path(l, n, "tunnel.ca", &c->tunnel_ca);
    if (rv == 0)
        rv = ca_digest(l, n, c->tunnel_ca);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = get_path(l, yaml_map_get(tun, "cert"), "tunnel.cert", &c->tunnel_cert);
    if (rv == CV_ENOTFOUND)
        return missing(l, tun, "tunnel.cert", "is required (the tunnel listener's certificate)");
    if (rv < 0)
        return rv;
    node_at(yaml_map_get(tun, "cert"), "tunnel.cert", c->tunnel_cert_at);
    rv = get_path(l, yaml_map_get(tun, "key"), "tunnel.key", &c->tunnel_key);
    if (rv == CV_ENOTFOUND)
        return missing(l, tun, "tunnel.key", "is required (the tunnel listener's private key)");
    if (rv < 0)
        return rv;
    node_at(yaml_map_get(tun, "key"), "tunnel.key", c->tunnel_key_at);
    return 0;
}

static int load_admin(struct loader *l, const struct yaml_node *adm)
{
    static const char *const keys[] = {"listen", "token_file", NULL};
    struct edge_config *c = l->c;
    const struct yaml_node *n;
    int rv = check_map(l, adm, "admin", keys);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    n = yaml_map_get(adm, "listen");
    rv = yaml_as_addr(n, "admin.listen", CONFIG_ADDR_ALLOW_UNIX, &c->admin_listen, l->err);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    if (rv == 0 && c->admin_listen.kind == CONFIG_ADDR_UNIX && c->admin_listen.path[0] != '/') {
        char *abs = resolve(l, c->admin_listen.path);

        if (abs == NULL)
            return nomem(l);
        if (strlen(abs) > CONFIG_UNIX_PATH_MAX) {
            mem_free(abs);
            return yaml_errorf(l->err, n, "admin.listen",
                               "unix socket path longer than %d bytes once made absolute",
                               CONFIG_UNIX_PATH_MAX);
        }
        snprintf(c->admin_listen.path, sizeof(c->admin_listen.path), "%s", abs);
        mem_free(abs);
    }
    rv = get_path(l, yaml_map_get(adm, "token_file"), "admin.token_file", &c->admin_token_file);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    return 0;
}

static int load_balance(struct loader *l, const struct yaml_node *n)
{
    const char *s;
    int rv = yaml_as_string(n, "balance", &s, l->err);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    if (strcmp(s, "nearest") == 0)
        l->c->balance = BALANCE_NEAREST;
    else if (strcmp(s, "round_robin") == 0)
        l->c->balance = BALANCE_ROUND_ROBIN;
    else if (strcmp(s, "least_streams") == 0)
        l->c->balance = BALANCE_LEAST_STREAMS;
    else
        return yaml_errorf(l->err, n, "balance",
                           "expected nearest, round_robin or least_streams");
    return 0;
}

/* Index of the limit named |name| in limits_table(), or -1. */
static int limit_index(const char *name)
{
    const struct limit_desc *t = limits_table();
    int i;

    for (i = 0; t[i].name != NULL && i < LIMITS_MAX; i++) {
        if (strcmp(t[i].name, name) == 0)
            return i;
    }
    return -1;
}

static uint32_t *limit_field(struct cv_limits *lim, const struct limit_desc *d)
{
    return (uint32_t *)(void *)((char *)lim + d->offset);
}

/* Bounds of limit |name| beyond the generic ones: PROTOCOL.md §4 settings ranges, and the few
 * limits for which 0 has a meaning. */
static void limit_bounds(const char *name, uint64_t *min, uint64_t *max)
{
    *min = 1;
    *max = UINT32_MAX;
    if (strcmp(name, "max_frame_size") == 0) {
        *min = 16384; /* PROTOCOL.md §4: max_frame_size 16 384 .. 1 048 576 */
        *max = 1048576;
    } else if (strcmp(name, "stream_window") == 0 || strcmp(name, "stream_window_max") == 0) {
        *max = 2147483647u; /* PROTOCOL.md §4: initial_stream_window 1 .. 2^31-1 */
    } else if (strcmp(name, "connection_window") == 0) {
        *min = 65535; /* PROTOCOL.md §4: connection_window 65 535 .. 2^31-1 */
        *max = 2147483647u;
    } else if (strcmp(name, "max_concurrent_streams") == 0) {
        *max = 65535; /* PROTOCOL.md §4.4: max_concurrent_streams 1 .. 65 535 */
    } else if (strcmp(name, "max_metadata_size") == 0) {
        *min = 4096; /* PROTOCOL.md §4.4: max_metadata_size 4 096 .. 1 048 576 */
        *max = 1048576;
    } else if (strcmp(name, "max_empty_frames") == 0) {
        *min = 0; /* no empty DATA frame tolerated */
    } else if (strcmp(name, "buffer_budget") == 0) {
        *min = 0; /* off */
    } else if (strcmp(name, "backoff_max_exp") == 0) {
        *min = 0; /* window of 2^0 = 1 s */
        *max = 30;
    }
}

static int load_limits(struct loader *l, const struct yaml_node *m)
{
    size_t i;
    int rv = yaml_expect(m, "limits", YAML_KIND_MAPPING, l->err);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    for (i = 0; i < yaml_map_count(m); i++) {
        const struct yaml_node *k = yaml_map_key(m, i);
        const struct yaml_node *v = yaml_map_value(m, i);
        const char *name = yaml_scalar(k, NULL);
        int idx = limit_index(name);
        const struct limit_desc *d;
        char p[PATH_TEXT_MAX];
        uint64_t min;
        uint64_t max;
        uint64_t val = 0;
        int64_t ival = 0;

        key_path(p, sizeof(p), "limits", name);
        if (idx < 0)
            return yaml_errorf(l->err, k, p, "unknown limit (see the limits table in the README)");
        /* The connector's (shared table): accepting them here would change nothing. */
        if (strcmp(name, "stream_idle_ms") == 0 || strcmp(name, "backoff_base_ms") == 0 ||
            strcmp(name, "backoff_max_exp") == 0)
            return yaml_errorf(l->err, k, p, "a connector setting, not used by the edge (the "
                                             "connector's --stream-idle and --retry-base set it)");
        d = &limits_table()[idx];
        limit_bounds(name, &min, &max);
        switch (d->kind) {
        case LIMIT_MS:
            rv = yaml_as_duration(v, p, 0, min, max, &val, l->err);
            break;
        case LIMIT_BYTES:
            rv = yaml_as_size(v, p, min, max, &val, l->err);
            break;
        case LIMIT_COUNT:
            rv = yaml_as_int(v, p, (int64_t)min, (int64_t)max, &ival, l->err);
            val = (uint64_t)ival;
            break;
        }
        if (rv == CV_ENOTFOUND)
            return yaml_errorf(l->err, k, p, "a value is required");
        if (rv < 0)
            return rv;
        *limit_field(&l->c->limits, d) = (uint32_t)val;
        l->limit_set[idx] = true;
    }
    return 0;
}

/*
 * A duration at |n| (|path|) for the limit |limit_name|: refuses it when limits: set that field
 * too. Returns 0 (set), CV_ENOTFOUND or CV_ECONFIG.
 */
static int load_limit_duration(struct loader *l, const struct yaml_node *n, const char *path,
                               const char *limit_name, uint64_t min_ms)
{
    int idx = limit_index(limit_name);
    uint64_t v;
    int rv = yaml_as_duration(n, path, 0, min_ms, UINT32_MAX, &v, l->err);

    if (rv < 0)
        return rv;
    if (idx < 0)
        return yaml_errorf(l->err, n, path, "no such limit %s", limit_name);
    if (l->limit_set[idx])
        return yaml_errorf(l->err, n, path, "also set as limits.%s: set it in one place",
                           limit_name);
    *limit_field(&l->c->limits, &limits_table()[idx]) = (uint32_t)v;
    return 0;
}

static int load_timeouts(struct loader *l, const struct yaml_node *m)
{
    static const char *const keys[] = {"header_read", "keepalive_idle", "response_header",
                                       "tls_handshake", NULL};
    static const char *const fields[] = {"header_read_ms", "keepalive_idle_ms",
                                         "response_header_ms", "tls_handshake_ms", NULL};
    size_t i;
    int rv = check_map(l, m, "timeouts", keys);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    for (i = 0; keys[i] != NULL; i++) {
        char p[PATH_TEXT_MAX];

        key_path(p, sizeof(p), "timeouts", keys[i]);
        rv = load_limit_duration(l, yaml_map_get(m, keys[i]), p, fields[i], 1);
        if (rv < 0 && rv != CV_ENOTFOUND)
            return rv;
    }
    return 0;
}

static int load_access_log(struct loader *l, const struct yaml_node *m)
{
    static const char *const keys[] = {"path", "format", NULL};
    struct edge_config *c = l->c;
    const struct yaml_node *n;
    const char *s;
    int rv = check_map(l, m, "access_log", keys);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    n = yaml_map_get(m, "path");
    rv = yaml_as_path(n, "access_log.path", 0, &s, l->err);
    if (rv == 0) {
        char *r = NULL;

        if (strcmp(s, "off") != 0) {
            r = strcmp(s, "-") == 0 ? mem_strdup("-") : resolve(l, s);
            if (r == NULL)
                return nomem(l);
        }
        mem_free(c->access_log_path);
        c->access_log_path = r;
    } else if (rv != CV_ENOTFOUND) {
        return rv;
    }
    n = yaml_map_get(m, "format");
    rv = yaml_as_string(n, "access_log.format", &s, l->err);
    if (rv == 0) {
        if (strcmp(s, "combined") == 0)
            c->access_log_format = ACCESS_LOG_COMBINED;
        else if (strcmp(s, "json") == 0)
            c->access_log_format = ACCESS_LOG_JSON;
        else
            return yaml_errorf(l->err, n, "access_log.format", "expected combined or json");
    } else if (rv != CV_ENOTFOUND) {
        return rv;
    }
    return 0;
}

static int load_hosts(struct loader *l, const struct yaml_node *seq)
{
    static const char *const keys[] = {"hostname", "timeouts", NULL};
    static const char *const tkeys[] = {"header_read", "keepalive_idle", "response_header", NULL};
    struct edge_config *c = l->c;
    size_t count;
    size_t i;
    int rv = yaml_expect(seq, "hosts", YAML_KIND_SEQUENCE, l->err);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    count = yaml_seq_count(seq);
    if (count == 0)
        return 0;
    c->hosts = mem_calloc(count * sizeof(*c->hosts));
    if (c->hosts == NULL)
        return nomem(l);
    for (i = 0; i < count; i++) {
        const struct yaml_node *item = yaml_seq_at(seq, i);
        const struct yaml_node *hn;
        const struct yaml_node *tm;
        struct edge_host *h = &c->hosts[i];
        char p[PATH_TEXT_MAX];
        char pk[PATH_TEXT_MAX];
        uint32_t *dst[3];
        const char *why;
        size_t k;

        snprintf(p, sizeof(p), "hosts[%zu]", i);
        rv = check_map(l, item, p, keys);
        if (rv == CV_ENOTFOUND)
            return yaml_errorf(l->err, item, p, "expected { hostname: NAME, timeouts: {...} }");
        if (rv < 0)
            return rv;
        key_path(pk, sizeof(pk), p, "hostname");
        hn = yaml_map_get(item, "hostname");
        rv = yaml_as_pattern(hn, pk, &h->pattern, l->err);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
        h->header_read_ms = c->limits.header_read_ms;
        h->keepalive_idle_ms = c->limits.keepalive_idle_ms;
        h->response_header_ms = c->limits.response_header_ms;
        rv = hostname_table_insert(c->host_table, h->pattern.text, h, &why);
        if (rv == CV_EEXIST) {
            const struct edge_host *prev = hostname_table_get(c->host_table, h->pattern.text);

            return yaml_errorf(l->err, hn, pk, "duplicate of hosts[%zu]",
                               (size_t)(prev - c->hosts));
        }
        if (rv == CV_ENOMEM)
            return nomem(l);
        if (rv < 0)
            return yaml_errorf(l->err, hn, pk, "%s", why);
        c->n_hosts = i + 1;

        key_path(pk, sizeof(pk), p, "timeouts");
        tm = yaml_map_get(item, "timeouts");
        rv = check_map(l, tm, pk, tkeys);
        if (rv == CV_ENOTFOUND)
            continue;
        if (rv < 0)
            return rv;
        dst[0] = &h->header_read_ms;
        dst[1] = &h->keepalive_idle_ms;
        dst[2] = &h->response_header_ms;
        for (k = 0; tkeys[k] != NULL; k++) {
            char pt[PATH_TEXT_MAX];
            uint64_t v;

            key_path(pt, sizeof(pt), pk, tkeys[k]);
            rv = yaml_as_duration(yaml_map_get(tm, tkeys[k]), pt, 0, 1, UINT32_MAX, &v, l->err);
            if (rv == 0)
                *dst[k] = (uint32_t)v;
            else if (rv != CV_ENOTFOUND)
                return rv;
        }
    }
    return 0;
}

static int load_tcp_ports(struct loader *l, const struct yaml_node *seq)
{
    static const char *const keys[] = {"listen", "tunnel", "hostname", NULL};
    struct edge_config *c = l->c;
    size_t count;
    size_t i;
    size_t j;
    int rv = yaml_expect(seq, "tcp_ports", YAML_KIND_SEQUENCE, l->err);

    if (rv == CV_ENOTFOUND)
        return 0;
    if (rv < 0)
        return rv;
    count = yaml_seq_count(seq);
    if (count == 0)
        return 0;
    c->tcp_ports = mem_calloc(count * sizeof(*c->tcp_ports));
    if (c->tcp_ports == NULL)
        return nomem(l);
    for (i = 0; i < count; i++) {
        const struct yaml_node *item = yaml_seq_at(seq, i);
        const struct yaml_node *n;
        struct edge_tcp_port *tp = &c->tcp_ports[i];
        char p[PATH_TEXT_MAX];
        char pk[PATH_TEXT_MAX];
        const char *why;

        c->n_tcp_ports = i + 1;
        snprintf(p, sizeof(p), "tcp_ports[%zu]", i);
        rv = check_map(l, item, p, keys);
        if (rv == CV_ENOTFOUND)
            return yaml_errorf(l->err, item, p,
                               "expected { listen: HOST:PORT, tunnel: NAME, hostname: NAME }");
        if (rv < 0)
            return rv;
        key_path(pk, sizeof(pk), p, "listen");
        n = yaml_map_get(item, "listen");
        rv = yaml_as_addr(n, pk, 0, &tp->listen, l->err);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
        for (j = 0; j < i; j++) {
            if (addr_equal(&c->tcp_ports[j].listen, &tp->listen))
                return yaml_errorf(l->err, n, pk, "duplicate of tcp_ports[%zu].listen", j);
        }
        key_path(pk, sizeof(pk), p, "tunnel");
        n = yaml_map_get(item, "tunnel");
        rv = get_string(l, n, pk, &tp->tunnel);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
        if (!store_name_valid(tp->tunnel, &why))
            return yaml_errorf(l->err, n, pk, "%s", why);
        key_path(pk, sizeof(pk), p, "hostname");
        rv = yaml_as_hostname(yaml_map_get(item, "hostname"), pk, tp->hostname, l->err);
        if (rv == CV_ENOTFOUND)
            return missing(l, item, pk, "is required");
        if (rv < 0)
            return rv;
    }
    return 0;
}

/* ---- the whole file ----------------------------------------------------------------------- */

static int set_defaults(struct loader *l)
{
    struct edge_config *c = l->c;

    limits_init(&c->limits);
    c->region = mem_strdup("default");
    c->data_dir = mem_strdup(EDGE_CONFIG_DEFAULT_DATA_DIR);
    c->admin_token_file = mem_strdup(EDGE_CONFIG_DEFAULT_TOKEN_FILE);
    c->access_log_path = mem_strdup(EDGE_CONFIG_DEFAULT_ACCESS_LOG);
    c->host_table = hostname_table_new();
    if (c->region == NULL || c->data_dir == NULL || c->admin_token_file == NULL ||
        c->access_log_path == NULL || c->host_table == NULL)
        return nomem(l);
    if (set_addr_default(l, "0.0.0.0:443", &c->https, &c->n_https) < 0 ||
        set_addr_default(l, "0.0.0.0:80", &c->http, &c->n_http) < 0 ||
        set_addr_default(l, "0.0.0.0:7844", &c->tunnel_listen, &c->n_tunnel_listen) < 0)
        return nomem(l);
    config_parse_addr(EDGE_CONFIG_DEFAULT_ADMIN, 0, &c->admin_listen, NULL);
    c->http_redirect = true;
    c->balance = BALANCE_NEAREST;
    c->access_log_format = ACCESS_LOG_COMBINED;
    return 0;
}

static int load_root(struct loader *l, const struct yaml_node *root)
{
    static const char *const keys[] = {"region", "data_dir", "public", "tunnel", "admin",
                                       "balance", "grace_period", "timeouts", "access_log",
                                       "limits", "hosts", "tcp_ports", NULL};
    struct edge_config *c = l->c;
    int rv;

    rv = check_map(l, root, "", keys);
    if (rv == CV_ENOTFOUND)
        return missing(l, NULL, "public.certificates",
                       "is required: at least one { cert: FILE, key: FILE }");
    if (rv < 0)
        return rv;
    rv = load_region(l, yaml_map_get(root, "region"));
    if (rv < 0)
        return rv;
    rv = get_path(l, yaml_map_get(root, "data_dir"), "data_dir", &c->data_dir);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = load_public(l, root, yaml_map_get(root, "public"));
    if (rv < 0)
        return rv;
    rv = load_tunnel(l, root, yaml_map_get(root, "tunnel"));
    if (rv < 0)
        return rv;
    rv = load_admin(l, yaml_map_get(root, "admin"));
    if (rv < 0)
        return rv;
    rv = load_balance(l, yaml_map_get(root, "balance"));
    if (rv < 0)
        return rv;
    /* limits: first, so that timeouts: and grace_period can refuse to set a field twice. */
    rv = load_limits(l, yaml_map_get(root, "limits"));
    if (rv < 0)
        return rv;
    rv = load_limit_duration(l, yaml_map_get(root, "grace_period"), "grace_period",
                             "grace_period_ms", 0);
    if (rv < 0 && rv != CV_ENOTFOUND)
        return rv;
    rv = load_timeouts(l, yaml_map_get(root, "timeouts"));
    if (rv < 0)
        return rv;
    rv = load_access_log(l, yaml_map_get(root, "access_log"));
    if (rv < 0)
        return rv;
    /* hosts: after timeouts:, whose values their unset timeouts inherit. */
    rv = load_hosts(l, yaml_map_get(root, "hosts"));
    if (rv < 0)
        return rv;
    return load_tcp_ports(l, yaml_map_get(root, "tcp_ports"));
}

int edge_config_load(const char *path, struct edge_config **out, char *err, size_t errlen)
{
    struct yaml_error yerr;
    struct yaml_doc *doc = NULL;
    struct loader l;
    int rv;

    *out = NULL;
    memset(&l, 0, sizeof(l));
    memset(&yerr, 0, sizeof(yerr));
    l.file = path;
    l.err = &yerr;
    l.c = mem_calloc(sizeof(*l.c));
    if (l.c == NULL) {
        rv = nomem(&l);
        goto done;
    }
    l.c->path = mem_strdup(path);
    l.dir = file_dir(path);
    if (l.c->path == NULL || l.dir == NULL) {
        rv = nomem(&l);
        goto done;
    }
    rv = set_defaults(&l);
    if (rv < 0)
        goto done;
    rv = yaml_load_file(path, &l.c->limits, &doc, &yerr);
    if (rv < 0)
        goto done;
    rv = load_root(&l, yaml_doc_root(doc));
done:
    yaml_doc_free(doc);
    mem_free(l.dir);
    if (rv < 0) {
        edge_config_free(l.c);
        if (errlen > 0)
            snprintf(err, errlen, "%s", yerr.msg);
        return rv;
    }
    *out = l.c;
    if (errlen > 0)
        err[0] = '\0';
    return 0;
}

void edge_config_blame(char *err, size_t errlen, const char *cert_at, const char *key_at)
{
    const char *at = strncmp(err, "key file ", 9) == 0 ? key_at : cert_at;
    char msg[1024];

    if (errlen == 0 || at[0] == '\0')
        return;
    snprintf(msg, sizeof(msg), "%s", err);
    snprintf(err, errlen, "%s: %s", at, msg);
}

void edge_config_free(struct edge_config *c)
{
    size_t i;

    if (c == NULL)
        return;
    mem_free(c->path);
    mem_free(c->region);
    mem_free(c->data_dir);
    mem_free(c->https);
    mem_free(c->http);
    for (i = 0; c->certs != NULL && i < c->n_certs; i++) {
        mem_free(c->certs[i].cert);
        mem_free(c->certs[i].key);
    }
    mem_free(c->certs);
    mem_free(c->tunnel_listen);
    mem_free(c->advertise);
    mem_free(c->tunnel_ca);
    mem_free(c->tunnel_cert);
    mem_free(c->tunnel_key);
    mem_free(c->admin_token_file);
    mem_free(c->access_log_path);
    hostname_table_free(c->host_table, NULL);
    mem_free(c->hosts);
    for (i = 0; c->tcp_ports != NULL && i < c->n_tcp_ports; i++)
        mem_free(c->tcp_ports[i].tunnel);
    mem_free(c->tcp_ports);
    mem_free(c);
}

const struct edge_host *edge_config_host(const struct edge_config *c, const char *name)
{
    if (c == NULL || c->host_table == NULL)
        return NULL;
    return hostname_table_lookup(c->host_table, name, NULL);
}

const char *edge_balance_name(enum balance_policy b)
{
    switch (b) {
    case BALANCE_NEAREST:
        return "nearest";
    case BALANCE_ROUND_ROBIN:
        return "round_robin";
    case BALANCE_LEAST_STREAMS:
        return "least_streams";
    }
    return "unknown";
}
