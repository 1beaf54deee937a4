/*
 * connector_config.c - `culvert-connector run` flags, config.yml (cloudflared's schema) and the
 * tunnel's credentials. See connector_config.h.
 *
 * Order of work: a first pass over argv copies the value of --token and overwrites it in place
 * (before anything can fail), a second pass reads the flags, then the config file is read and
 * checked key by key, the ingress is built (--url or the ingress section), and last the credentials
 * are resolved in their documented order. Flags are applied over the file's values. Start-up only,
 * on the loop thread; allocation through common/mem.
 */
#include "connector_config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>

#include "err.h"
#include "mem.h"

#define MS_PER_S 1000ULL
#define MS_PER_DAY (24ULL * 3600 * MS_PER_S)
#define KEY_PATH_MAX 96
#define REGION_MAX 64

/* ---- messages ------------------------------------------------------------------------------- */

static int failf(int rv, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int failf(int rv, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rv;
}

/* Copies |in| for quoting: printable ASCII only, cut at |n| - 1 bytes. */
static void sanitize(const char *in, size_t len, char *out, size_t n)
{
    size_t i;

    for (i = 0; i < len && i + 1 < n; i++) {
        unsigned char c = (unsigned char)in[i];

        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[i] = '\0';
}

/* Warnings gathered for the caller. */
struct warnings {
    char **lines;
    size_t n;
    bool oom;
};

static void on_warn(const char *msg, void *arg)
{
    struct warnings *w = arg;
    char **grown;
    char *copy;

    grown = mem_realloc(w->lines, (w->n + 1) * sizeof(*w->lines));
    if (grown == NULL) {
        w->oom = true;
        return;
    }
    w->lines = grown;
    copy = mem_strdup(msg);
    if (copy == NULL) {
        w->oom = true;
        return;
    }
    w->lines[w->n++] = copy;
}

static void warnf_at(struct warnings *w, const struct yaml_node *n, const char *path,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void warnf_at(struct warnings *w, const struct yaml_node *n, const char *path,
                     const char *fmt, ...)
{
    struct yaml_error e;
    char text[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    (void)yaml_errorf(&e, n, path, "%s", text);
    on_warn(e.msg, w);
}

static void warnings_free(struct warnings *w)
{
    size_t i;

    for (i = 0; i < w->n; i++)
        mem_free(w->lines[i]);
    mem_free(w->lines);
    w->lines = NULL;
    w->n = 0;
}

static void warnings_log(const struct warnings *w)
{
    size_t i;

    for (i = 0; i < w->n; i++)
        LOG_W("config %s", w->lines[i]);
}

/* A new copy of |p| with a leading "~/" replaced by $HOME, or NULL (out of memory). */
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

static bool is_regular_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *check_region(const char *s)
{
    size_t i;
    size_t n = strlen(s);

    if (n == 0 || n > REGION_MAX)
        return "a region is 1 to 64 characters";
    for (i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return "a region may only hold letters, digits, \"-\", \"_\" and \".\"";
    }
    return NULL;
}

/* ---- flags ---------------------------------------------------------------------------------- */

/* cloudflared's single-origin options, as flags and as config keys: with `url:` or --url they set
 * that origin's options as in cloudflared; beside ingress rules they do nothing there either
 * (originRequest does), so they are warned about. */
static const struct {
    const char *key;
    const char *instead; /* its originRequest name */
    bool is_bool;        /* as a flag, may stand alone: --no-tls-verify is --no-tls-verify=true */
} legacy_origin_keys[] = {
    {"no-tls-verify", "noTLSVerify", true},
    {"origin-ca-pool", "caPool", false},
    {"origin-server-name", "originServerName", false},
    {"http-host-header", "httpHostHeader", false},
    {"no-chunked-encoding", "disableChunkedEncoding", true},
    {"proxy-connect-timeout", "connectTimeout", false},
    {"proxy-tls-timeout", "tlsTimeout", false},
    {"proxy-tcp-keepalive", "tcpKeepAlive", false},
    {"proxy-keepalive-connections", "keepAliveConnections", false},
    {"proxy-keepalive-timeout", "keepAliveTimeout", false},
    {"proxy-no-happy-eyeballs", "noHappyEyeballs", true},
};

#define N_LEGACY_ORIGIN_KEYS (sizeof(legacy_origin_keys) / sizeof(legacy_origin_keys[0]))
_Static_assert(N_LEGACY_ORIGIN_KEYS == CONNECTOR_ORIGIN_FLAGS, "connector_config.h's count");

enum flag_kind { FLAG_VALUE, FLAG_REPEAT, FLAG_SECRET, FLAG_BOOL };

struct flags {
    const char *config;
    char *token; /* a copy (the argv bytes are wiped); freed with mem_free_secret */
    size_t token_len;
    unsigned token_count;
    const char *token_file;
    const char *url;
    const char *tunnel;
    bool tunnel_positional; /* |tunnel| came as the argument (`cloudflared tunnel run NAME`) */
    const char *credentials;
    const char **edges;
    size_t n_edges;
    const char *edge_ca;
    const char *ha;
    const char *metrics;
    const char *loglevel;
    const char *grace;
    const char *region;
    const char *retry_base;
    const char *heartbeat;
    const char *stream_idle;
    const char *origin[N_LEGACY_ORIGIN_KEYS]; /* --no-tls-verify ...: by legacy_origin_keys index */
    bool help;
};

static const struct flag_desc {
    const char *name;
    enum flag_kind kind;
    size_t offset;
} flag_table[] = {
    {"config", FLAG_VALUE, offsetof(struct flags, config)},
    {"token", FLAG_SECRET, 0},
    {"token-file", FLAG_VALUE, offsetof(struct flags, token_file)},
    {"url", FLAG_VALUE, offsetof(struct flags, url)},
    {"tunnel", FLAG_VALUE, offsetof(struct flags, tunnel)},
    {"credentials-file", FLAG_VALUE, offsetof(struct flags, credentials)},
    {"cred-file", FLAG_VALUE, offsetof(struct flags, credentials)},
    {"edge", FLAG_REPEAT, 0},
    {"edge-ca", FLAG_VALUE, offsetof(struct flags, edge_ca)},
    {"ha-connections", FLAG_VALUE, offsetof(struct flags, ha)},
    {"metrics", FLAG_VALUE, offsetof(struct flags, metrics)},
    {"loglevel", FLAG_VALUE, offsetof(struct flags, loglevel)},
    {"grace-period", FLAG_VALUE, offsetof(struct flags, grace)},
    {"region", FLAG_VALUE, offsetof(struct flags, region)},
    {"retry-base", FLAG_VALUE, offsetof(struct flags, retry_base)},
    {"heartbeat", FLAG_VALUE, offsetof(struct flags, heartbeat)},
    {"stream-idle", FLAG_VALUE, offsetof(struct flags, stream_idle)},
    {"help", FLAG_BOOL, 0},
    {"h", FLAG_BOOL, 0},
};

/* Splits "--name=value" / "-name value": sets *|name| and *|name_len|, *|inline_value| (NULL when
 * there is no '='). False when |a| is not a flag. */
static bool flag_split(const char *a, const char **name, size_t *name_len,
                       const char **inline_value)
{
    const char *eq;

    if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0)
        return false;
    *name = a + (a[1] == '-' ? 2 : 1);
    eq = strchr(*name, '=');
    *name_len = eq != NULL ? (size_t)(eq - *name) : strlen(*name);
    *inline_value = eq != NULL ? eq + 1 : NULL;
    return true;
}

static const struct flag_desc *flag_find(const char *name, size_t len)
{
    size_t i;

    for (i = 0; i < sizeof(flag_table) / sizeof(flag_table[0]); i++) {
        if (strlen(flag_table[i].name) == len && memcmp(flag_table[i].name, name, len) == 0)
            return &flag_table[i];
    }
    return NULL;
}

/* Overwrites the bytes of |s| in place so /proc/PID/cmdline no longer shows them. */
static void wipe_arg(char *s)
{
    size_t n = strlen(s);

    OPENSSL_cleanse(s, n);
    memset(s, 'x', n);
}

/*
 * First pass: takes a copy of every --token value and wipes it from argv, whatever else argv holds,
 * so that no later error leaves the token visible. Keeps the last copy; counts them.
 */
static int take_tokens(int argc, char **argv, struct flags *f)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char *name;
        const char *inl;
        size_t len;
        char *value;

        if (!flag_split(argv[i], &name, &len, &inl) || len != 5 || memcmp(name, "token", 5) != 0)
            continue;
        if (inl != NULL) {
            value = argv[i] + (inl - argv[i]);
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            continue; /* "needs a value", reported by the second pass */
        }
        if (f->token != NULL)
            mem_free_secret(f->token, f->token_len + 1);
        f->token_len = strlen(value);
        f->token = mem_strndup(value, f->token_len);
        wipe_arg(value);
        f->token_count++;
        if (f->token == NULL)
            return CV_ENOMEM;
    }
    return 0;
}

static void flags_cleanup(struct flags *f)
{
    if (f->token != NULL)
        mem_free_secret(f->token, f->token_len + 1);
    mem_free(f->edges);
    memset(f, 0, sizeof(*f));
}

/* cloudflared's single-origin flags (--no-tls-verify, --http-host-header H, ...) into f->origin;
 * argv[*|i|] is the flag (|name|, |len|, |value| as flag_split gave them). CV_ENOTFOUND when it is
 * not one of them. */
static int origin_flag(int argc, char **argv, int *i, const char *name, size_t len,
                       const char *value, struct flags *f, char *err, size_t errlen)
{
    size_t j;

    for (j = 0; j < N_LEGACY_ORIGIN_KEYS; j++) {
        if (strlen(legacy_origin_keys[j].key) == len &&
            memcmp(legacy_origin_keys[j].key, name, len) == 0)
            break;
    }
    if (j == N_LEGACY_ORIGIN_KEYS)
        return CV_ENOTFOUND;
    if (value == NULL && legacy_origin_keys[j].is_bool) {
        value = "true";
    } else if (value == NULL) {
        if (*i + 1 >= argc)
            return failf(CV_ECONFIG, err, errlen, "--%s needs a value", legacy_origin_keys[j].key);
        value = argv[++*i];
    }
    if (f->origin[j] != NULL)
        return failf(CV_ECONFIG, err, errlen, "--%s given twice", legacy_origin_keys[j].key);
    f->origin[j] = value;
    return 0;
}

static int parse_flags(int argc, char **argv, struct flags *f, char *err, size_t errlen)
{
    const char *positional = NULL;
    int i;
    int rv;

    rv = take_tokens(argc, argv, f);
    if (rv < 0)
        return failf(rv, err, errlen, "out of memory");
    if (f->token_count > 1)
        return failf(CV_ECONFIG, err, errlen, "--token given twice");
    f->edges = mem_calloc(((size_t)argc + 1) * sizeof(*f->edges));
    if (f->edges == NULL)
        return failf(CV_ENOMEM, err, errlen, "out of memory");
    for (i = 0; i < argc; i++) {
        const struct flag_desc *d;
        const char *name;
        const char *value;
        const char **slot;
        char shown[48];
        size_t len;

        if (strcmp(argv[i], "--") == 0) {
            if (i + 1 < argc && positional == NULL && i + 2 == argc) {
                positional = argv[i + 1];
                break;
            }
            return failf(CV_ECONFIG, err, errlen, "unexpected arguments after --");
        }
        if (!flag_split(argv[i], &name, &len, &value)) {
            /* Never echo a positional argument: it may be a mistyped token. */
            if (positional != NULL)
                return failf(CV_ECONFIG, err, errlen,
                             "unexpected extra argument #%d (run takes at most one: the tunnel id)",
                             i + 1);
            positional = argv[i];
            continue;
        }
        d = flag_find(name, len);
        sanitize(name, len, shown, sizeof(shown));
        if (d == NULL) {
            rv = origin_flag(argc, argv, &i, name, len, value, f, err, errlen);
            if (rv == CV_ENOTFOUND)
                return failf(CV_ECONFIG, err, errlen, "unknown flag -%s%s (see --help)",
                             argv[i][1] == '-' ? "-" : "", shown);
            if (rv < 0)
                return rv;
            continue;
        }
        if (d->kind == FLAG_BOOL) {
            if (value != NULL)
                return failf(CV_ECONFIG, err, errlen, "--%s takes no value", d->name);
            f->help = true;
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc)
                return failf(CV_ECONFIG, err, errlen, "--%s needs a value", d->name);
            value = argv[++i];
        }
        if (d->kind == FLAG_SECRET)
            continue; /* taken and wiped by take_tokens */
        if (value[0] == '\0')
            return failf(CV_ECONFIG, err, errlen, "--%s needs a value", d->name);
        if (d->kind == FLAG_REPEAT) {
            f->edges[f->n_edges++] = value;
            continue;
        }
        slot = (const char **)(void *)((char *)f + d->offset);
        if (*slot != NULL)
            return failf(CV_ECONFIG, err, errlen, "--%s given twice", d->name);
        *slot = value;
    }
    if (positional != NULL) {
        if (f->tunnel != NULL)
            return failf(CV_ECONFIG, err, errlen,
                         "the tunnel is given twice (--tunnel and an argument)");
        f->tunnel = positional;
        f->tunnel_positional = true;
    }
    return 0;
}

/* ---- the config file ------------------------------------------------------------------------ */

/* cloudflared keys culvert does not implement, warned about by name. */
static const char *const unsupported_keys[] = {
    "protocol", "no-autoupdate", "autoupdate-freq", "logfile", "log-directory", "log-format",
    "transport-loglevel", "retries", "warp-routing", "metrics-update-freq", "tag",
    "edge-ip-version", "edge-bind-address", "post-quantum", "origincert", "hello-world",
    "pidfile", "label", "management-diagnostics", "icmpv4-src", "icmpv6-src",
    "max-edge-addr-retries", "rpc-timeout", "write-stream-timeout", "quic-disable-pmtu-discovery",
    "lb-pool", "proxy-dns", "proxy-dns-port", "proxy-dns-address", "proxy-dns-upstream",
    "proxy-dns-max-upstream-conns", "proxy-dns-bootstrap", "unix-socket", "compression-quality",
    "heartbeat-interval", "heartbeat-count", "max-fetch-size", "credentials-contents", "name",
    "hostname", "bastion", "socks5", "api-key", "api-email", "api-ca-key", "overwrite-dns",
    "features", "dns-resolver-addrs", "service-op-ip", "edge-proxy-address", "http2-origin",
    "proxy-connection-timeout", "proxy-expect-continue-timeout", "trace-output",
    "dial-edge-timeout", "use-reconnect-token", "max-active-flows",
    "quic-connection-level-flow-control-limit", "quic-stream-level-flow-control-limit",
    "management-hostname", "stdin-control", "cacert", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
    for (; *list != NULL; list++) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

/* What the file said, before flags are applied. */
struct file_cfg {
    struct yaml_doc *doc;
    const char *path;

    const struct yaml_node *tunnel_node; /* tunnel: as a UUID */
    bool has_tunnel;
    uint8_t tunnel_id[TOKEN_ID_LEN];

    char *credentials;
    bool has_token;
    struct token token;
    struct config_addr *edges;
    size_t n_edges;
    char *edge_ca;
    bool has_ha;
    unsigned ha;
    char *region;
    bool has_metrics;
    enum connector_metrics_mode metrics_mode;
    struct config_addr metrics;
    bool has_loglevel;
    enum log_level loglevel;
    bool has_grace;
    uint64_t grace_ms;
    const struct yaml_node *url_node;
    const char *url;
    const struct yaml_node *ingress_key;  /* for messages: where "ingress:" is written */
    const struct yaml_node *ingress_node; /* its value, NULL when absent or null */
    struct origin_request origin;
    /* cloudflared's single-origin keys (legacy_origin_keys), by index: the key and its value. */
    const struct yaml_node *legacy_key[N_LEGACY_ORIGIN_KEYS];
    const struct yaml_node *legacy[N_LEGACY_ORIGIN_KEYS];
};

static void file_init(struct file_cfg *fc)
{
    memset(fc, 0, sizeof(*fc));
    token_init(&fc->token);
    origin_request_init(&fc->origin);
}

static void file_cleanup(struct file_cfg *fc)
{
    yaml_doc_free(fc->doc);
    mem_free(fc->credentials);
    token_cleanup(&fc->token);
    mem_free(fc->edges);
    mem_free(fc->edge_ca);
    mem_free(fc->region);
    origin_request_cleanup(&fc->origin);
    memset(fc, 0, sizeof(*fc));
}

static int file_path_key(const struct yaml_node *v, const char *key, char **out,
                         struct yaml_error *ye)
{
    const char *s;
    int rv = yaml_as_path(v, key, 0, &s, ye);

    if (rv < 0)
        return rv;
    mem_free(*out);
    *out = expand_home(s);
    return *out == NULL ? CV_ENOMEM : 0;
}

static int file_edges(const struct yaml_node *v, struct file_cfg *fc, struct yaml_error *ye)
{
    const struct yaml_node *item;
    char p[KEY_PATH_MAX];
    const char *s;
    const char *why;
    size_t count;
    size_t i;
    bool list = yaml_node_kind(v) == YAML_KIND_SEQUENCE;
    int rv;

    if (yaml_is_null(v))
        return CV_ENOTFOUND;
    if (!list && yaml_node_kind(v) != YAML_KIND_SCALAR)
        return yaml_errorf(ye, v, "edge", "expected a string or a list, found %s",
                           yaml_kind_name(yaml_node_kind(v)));
    count = list ? yaml_seq_count(v) : 1;
    if (count == 0)
        return yaml_errorf(ye, v, "edge", "the list is empty");
    if (count > TOKEN_MAX_EDGES)
        return yaml_errorf(ye, v, "edge", "more than %d edge addresses", TOKEN_MAX_EDGES);
    fc->edges = mem_calloc(count * sizeof(*fc->edges));
    if (fc->edges == NULL)
        return CV_ENOMEM;
    for (i = 0; i < count; i++) {
        item = list ? yaml_seq_at(v, i) : v;
        if (list)
            snprintf(p, sizeof(p), "edge[%zu]", i);
        else
            snprintf(p, sizeof(p), "edge");
        rv = yaml_as_string(item, p, &s, ye);
        if (rv == CV_ENOTFOUND)
            return yaml_errorf(ye, item, p, "empty edge address");
        if (rv < 0)
            return rv;
        if (config_parse_addr(s, 0, &fc->edges[i], &why) < 0)
            return yaml_errorf(ye, item, p, "%s", why);
    }
    fc->n_edges = count;
    return 0;
}

static int file_key(const char *key, const struct yaml_node *k, const struct yaml_node *v,
                    struct file_cfg *fc, struct warnings *w, struct yaml_error *ye)
{
    const char *s;
    const char *why;
    int64_t iv;
    int rv;

    if (strcmp(key, "tunnel") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        if (token_uuid_parse(s, strlen(s), fc->tunnel_id) == 0) {
            fc->has_tunnel = true;
            fc->tunnel_node = v;
        } else {
            warnf_at(w, v, key, "not a tunnel id (UUID): culvert identifies the tunnel by the id "
                                "in the credentials file or token; the name is ignored");
        }
        return 0;
    }
    if (strcmp(key, "credentials-file") == 0)
        return file_path_key(v, key, &fc->credentials, ye);
    if (strcmp(key, "edge-ca") == 0)
        return file_path_key(v, key, &fc->edge_ca, ye);
    if (strcmp(key, "token") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        rv = token_decode(s, strlen(s), &fc->token, &why);
        if (rv == CV_ENOMEM)
            return rv;
        if (rv < 0)
            return yaml_errorf(ye, v, key, "invalid token: %s", why);
        fc->has_token = true;
        return 0;
    }
    if (strcmp(key, "edge") == 0)
        return file_edges(v, fc, ye);
    if (strcmp(key, "ha-connections") == 0) {
        rv = yaml_as_int(v, key, 1, CONNECTOR_HA_MAX, &iv, ye);
        if (rv == 0) {
            fc->has_ha = true;
            fc->ha = (unsigned)iv;
        }
        return rv;
    }
    if (strcmp(key, "region") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        why = check_region(s);
        if (why != NULL)
            return yaml_errorf(ye, v, key, "%s", why);
        fc->region = mem_strdup(s);
        return fc->region == NULL ? CV_ENOMEM : 0;
    }
    if (strcmp(key, "metrics") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        fc->has_metrics = true;
        if (strcmp(s, "off") == 0) {
            fc->metrics_mode = CONNECTOR_METRICS_OFF;
            return 0;
        }
        if (config_parse_addr(s, CONFIG_ADDR_ALLOW_PORT0, &fc->metrics, &why) < 0)
            return yaml_errorf(ye, v, key, "%s; or off to disable metrics", why);
        fc->metrics_mode = CONNECTOR_METRICS_ADDR;
        return 0;
    }
    if (strcmp(key, "loglevel") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        if (log_parse_level(s, &fc->loglevel) < 0)
            return yaml_errorf(ye, v, key,
                               "unknown level (use trace, debug, info, warn, error or fatal)");
        fc->has_loglevel = true;
        return 0;
    }
    if (strcmp(key, "grace-period") == 0) {
        rv = yaml_as_duration(v, key, 0, 0, MS_PER_DAY, &fc->grace_ms, ye);
        if (rv == 0)
            fc->has_grace = true;
        return rv;
    }
    if (strcmp(key, "originRequest") == 0)
        return origin_request_parse(v, key, &fc->origin, on_warn, w, ye);
    if (strcmp(key, "ingress") == 0) {
        fc->ingress_node = yaml_is_null(v) ? NULL : v;
        fc->ingress_key = k;
        return 0;
    }
    if (strcmp(key, "url") == 0) {
        rv = yaml_as_string(v, key, &s, ye);
        if (rv < 0)
            return rv;
        fc->url = s;
        fc->url_node = v;
        return 0;
    }
    return CV_EINVAL;
}

/* Reads and checks the file at |path| into |fc| (file_init'ed). 0, or an error with |err|. */
static int file_load(const char *path, struct file_cfg *fc, struct warnings *w, char *err,
                     size_t errlen)
{
    struct yaml_error ye;
    const struct yaml_node *root;
    size_t i;
    size_t j;
    int rv;

    fc->path = path;
    rv = yaml_load_file(path, NULL, &fc->doc, &ye);
    if (rv < 0)
        return failf(rv == CV_EPARSE || rv == CV_ELIMIT ? CV_ECONFIG : rv, err, errlen, "%s",
                     ye.msg);
    root = yaml_doc_root(fc->doc);
    if (root == NULL)
        return 0; /* empty file */
    if (yaml_node_kind(root) != YAML_KIND_MAPPING) {
        (void)yaml_errorf(&ye, root, NULL, "expected a mapping of settings, found %s",
                          yaml_kind_name(yaml_node_kind(root)));
        return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
    }
    for (i = 0; i < yaml_map_count(root); i++) {
        const struct yaml_node *k = yaml_map_key(root, i);
        const struct yaml_node *v = yaml_map_value(root, i);
        const char *key = yaml_scalar(k, NULL);
        char shown[64];

        rv = file_key(key, k, v, fc, w, &ye);
        if (rv == CV_ENOTFOUND)
            continue; /* null: the default stays */
        if (rv == CV_ENOMEM)
            return failf(rv, err, errlen, "%s: out of memory", path);
        if (rv == CV_EINVAL) {
            sanitize(key, strlen(key), shown, sizeof(shown));
            for (j = 0; j < N_LEGACY_ORIGIN_KEYS; j++) {
                if (strcmp(key, legacy_origin_keys[j].key) == 0)
                    break;
            }
            if (j < N_LEGACY_ORIGIN_KEYS) {
                fc->legacy_key[j] = k; /* judged with url: or ingress: known (build_ingress) */
                fc->legacy[j] = v;
            } else if (in_list(unsupported_keys, key))
                warnf_at(w, k, shown, "not supported by culvert, ignored");
            else
                warnf_at(w, k, shown, "unknown key, ignored");
            continue;
        }
        if (rv < 0)
            return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
    }
    if (fc->url_node != NULL && fc->ingress_node != NULL) {
        (void)yaml_errorf(&ye, fc->url_node, "url",
                          "can't be used together with the ingress rules (line %u): remove one "
                          "of them", yaml_node_line(fc->ingress_key));
        return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
    }
    return 0;
}

/* Single-origin mode: cloudflared's legacy origin keys of the file set |o|'s options over the
 * file's originRequest, as cloudflared's flags do. */
static int apply_legacy_origin_keys(const struct file_cfg *fc, struct origin_request *o,
                                    struct warnings *w, char *err, size_t errlen)
{
    struct yaml_error ye;
    size_t j;
    int rv;

    for (j = 0; j < N_LEGACY_ORIGIN_KEYS; j++) {
        if (fc->legacy_key[j] == NULL)
            continue;
        rv = origin_request_set(o, legacy_origin_keys[j].instead, fc->legacy[j],
                                legacy_origin_keys[j].key, &ye);
        if (rv == CV_EINVAL)
            warnf_at(w, fc->legacy_key[j], legacy_origin_keys[j].key,
                     "not supported by culvert, ignored");
        else if (rv == CV_ENOMEM)
            return failf(rv, err, errlen, "out of memory");
        else if (rv < 0 && rv != CV_ENOTFOUND)
            return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
    }
    return 0;
}

/* Single-origin mode: cloudflared's legacy origin flags set |o|'s options over the file's. Each
 * value is read as a one-scalar YAML document, so that it is judged exactly as the same key in
 * originRequest. */
static int apply_origin_flags(const struct flags *f, struct origin_request *o, struct warnings *w,
                              char *err, size_t errlen)
{
    struct yaml_error ye;
    size_t j;

    for (j = 0; j < N_LEGACY_ORIGIN_KEYS; j++) {
        const char *v = f->origin[j];
        struct yaml_doc *doc = NULL;
        char text[2 * 4096 + 3]; /* every byte escaped, and the quotes */
        char *t = text;
        const char *msg;
        int rv;

        if (v == NULL)
            continue;
        if (strlen(v) > 4096)
            return failf(CV_ECONFIG, err, errlen, "--%s: value too long",
                         legacy_origin_keys[j].key);
        *t++ = '"'; /* a double-quoted scalar: every byte kept as written */
        for (; *v != '\0'; v++) {
            if (*v == '"' || *v == '\\')
                *t++ = '\\';
            *t++ = *v;
        }
        *t++ = '"';
        rv = yaml_load_string(text, (size_t)(t - text), "flag", NULL, &doc, &ye);
        if (rv == 0)
            rv = origin_request_set(o, legacy_origin_keys[j].instead, yaml_doc_root(doc), NULL,
                                    &ye);
        yaml_doc_free(doc);
        if (rv == CV_EINVAL) {
            char m[128];

            snprintf(m, sizeof(m), "--%s: not supported by culvert, ignored",
                     legacy_origin_keys[j].key);
            on_warn(m, w);
        } else if (rv == CV_ENOMEM) {
            return failf(rv, err, errlen, "out of memory");
        } else if (rv < 0 && rv != CV_ENOTFOUND) {
            msg = strstr(ye.msg, ": "); /* after "flag:LINE:COL" */
            return failf(CV_ECONFIG, err, errlen, "--%s: %s", legacy_origin_keys[j].key,
                         msg != NULL ? msg + 2 : ye.msg);
        }
    }
    return 0;
}

/* Builds c->ingress from |url| (flag or file) or the file's ingress section. */
static int build_ingress(struct connector_config *c, const struct file_cfg *fc,
                         const struct flags *f, struct warnings *w, char *err, size_t errlen)
{
    const char *flag_url = f != NULL ? f->url : NULL;
    struct origin_request defaults;
    struct yaml_error ye;
    char name[600];
    const char *url = flag_url != NULL ? flag_url : fc->url;
    int rv;

    if (flag_url != NULL && fc->ingress_node != NULL)
        return failf(CV_ECONFIG, err, errlen,
                     "--url: can't be used with the ingress rules of %s (line %u): remove one "
                     "of them", fc->path, yaml_node_line(fc->ingress_key));
    origin_request_init(&defaults);
    if (url != NULL) {
        if (flag_url != NULL)
            snprintf(name, sizeof(name), "--url");
        else
            snprintf(name, sizeof(name), "%s:%u:%u: url", yaml_node_file(fc->url_node),
                     yaml_node_line(fc->url_node), yaml_node_col(fc->url_node));
        c->url = mem_strdup(url);
        if (c->url == NULL)
            return failf(CV_ENOMEM, err, errlen, "out of memory");
        c->url_from_flag = flag_url != NULL;
        rv = origin_request_copy(&defaults, &fc->origin);
        if (rv == 0)
            rv = apply_legacy_origin_keys(fc, &defaults, w, err, errlen);
        if (rv == 0 && f != NULL)
            rv = apply_origin_flags(f, &defaults, w, err, errlen);
        if (rv == 0)
            rv = ingress_from_url(url, name, &defaults, &c->ingress, err, errlen);
        origin_request_cleanup(&defaults);
        return rv == CV_EINVAL ? CV_ECONFIG : rv;
    }
    for (size_t j = 0; j < N_LEGACY_ORIGIN_KEYS; j++) {
        char msg[256];

        if (fc->legacy_key[j] != NULL)
            warnf_at(w, fc->legacy_key[j], legacy_origin_keys[j].key,
                     "applies only to a single origin (url: or --url), ignored; for ingress "
                     "rules use originRequest: { %s: ... }", legacy_origin_keys[j].instead);
        if (f != NULL && f->origin[j] != NULL) {
            snprintf(msg, sizeof(msg), "--%s applies only to a single origin (--url), ignored; "
                                       "for ingress rules use originRequest: { %s: ... }",
                     legacy_origin_keys[j].key, legacy_origin_keys[j].instead);
            on_warn(msg, w);
        }
    }
    if (fc->ingress_node != NULL) {
        rv = ingress_parse(fc->ingress_node, &fc->origin, on_warn, w, &c->ingress, &ye);
        if (rv == CV_ENOMEM)
            return failf(rv, err, errlen, "out of memory");
        if (rv < 0)
            return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
        return 0;
    }
    if (fc->path != NULL)
        return failf(CV_ECONFIG, err, errlen,
                     "%s: no ingress rules: add an ingress section whose last rule is a "
                     "catch-all (for example `- service: http_status:404`), or give --url",
                     fc->path);
    return failf(CV_ECONFIG, err, errlen,
                 "nothing to serve: give --url URL, or a config file (--config FILE) with "
                 "ingress rules");
}

/* ---- credentials ---------------------------------------------------------------------------- */

static const char *const search_dirs[] = {"~/.culvert", "/etc/culvert", "~/.cloudflared",
                                          "/etc/cloudflared", NULL};

/* Writes DIR/NAME into |out|, expanding a leading "~". False when it does not fit or HOME is
 * needed but unset. */
static bool join_path(const char *dir, const char *name, char *out, size_t n)
{
    const char *home = getenv("HOME");
    int k;

    if (dir[0] == '~') {
        if (home == NULL || home[0] == '\0')
            return false;
        k = snprintf(out, n, "%s%s/%s", home, dir + 1, name);
    } else {
        k = snprintf(out, n, "%s/%s", dir, name);
    }
    return k > 0 && (size_t)k < n;
}

int connector_config_find(char *out, size_t n)
{
    static const char *const names[] = {"config.yml", "config.yaml", NULL};
    char path[4096];
    size_t i;
    size_t j;

    if (n > 0)
        out[0] = '\0';
    for (i = 0; search_dirs[i] != NULL; i++) {
        for (j = 0; names[j] != NULL; j++) {
            if (!join_path(search_dirs[i], names[j], path, sizeof(path)))
                continue;
            if (!is_regular_file(path))
                continue;
            if (strlen(path) >= n)
                return CV_ELIMIT;
            memcpy(out, path, strlen(path) + 1);
            return 0;
        }
    }
    return CV_ENOTFOUND;
}

/* cloudflared's default credentials file: TUNNEL-ID.json next to the config file, then in the
 * search directories. Returns a new path or NULL (none found, or out of memory: *|oom|). */
static char *find_credentials(const char *config_path, const uint8_t id[TOKEN_ID_LEN], bool *oom)
{
    char name[TOKEN_UUID_TEXT_LEN + 8];
    char path[4096];
    const char *slash;
    size_t i;
    char *copy;

    token_uuid_format(id, name);
    memcpy(name + TOKEN_UUID_TEXT_LEN, ".json", 6);
    if (config_path != NULL) {
        slash = strrchr(config_path, '/');
        if (slash == NULL)
            snprintf(path, sizeof(path), "%s", name);
        else
            snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - config_path), config_path, name);
        if (is_regular_file(path))
            goto found;
    }
    for (i = 0; search_dirs[i] != NULL; i++) {
        if (join_path(search_dirs[i], name, path, sizeof(path)) && is_regular_file(path))
            goto found;
    }
    return NULL;
found:
    copy = mem_strdup(path);
    if (copy == NULL)
        *oom = true;
    return copy;
}

/* Decodes an environment token when the variable is set and not empty. 0 with *|used|, or an
 * error naming the variable. */
static int env_token(const char *var, struct token *t, bool *used, char *err, size_t errlen)
{
    const char *v = getenv(var);
    const char *why = "invalid";
    int rv;

    *used = false;
    if (v == NULL || v[0] == '\0')
        return 0;
    rv = token_decode(v, strlen(v), t, &why);
    if (rv == CV_ENOMEM)
        return failf(rv, err, errlen, "out of memory");
    if (rv < 0)
        return failf(CV_ECONFIG, err, errlen, "$%s: invalid token: %s", var, why);
    *used = true;
    return 0;
}

/* Resolves the token in the documented order into |t| (empty). */
static int resolve_credentials(struct connector_config *c, struct file_cfg *fc,
                               const struct flags *f, struct token *t, struct warnings *w,
                               char *err, size_t errlen)
{
    struct token_error te;
    uint8_t flag_id[TOKEN_ID_LEN];
    const uint8_t *want = NULL;
    const char *why = "invalid";
    char idtext[TOKEN_UUID_TEXT_LEN + 1];
    char wanttext[TOKEN_UUID_TEXT_LEN + 1];
    bool used = false;
    bool oom = false;
    char *path;
    int rv;

    if (f->tunnel != NULL && token_uuid_parse(f->tunnel, strlen(f->tunnel), flag_id) == 0) {
        want = flag_id;
    } else if (f->tunnel != NULL && !f->tunnel_positional) {
        return failf(CV_ECONFIG, err, errlen, "--tunnel: not a tunnel id (a UUID such as "
                                              "6ff42ae2-765d-4adf-8112-31c55c1551ef)");
    } else if (f->tunnel != NULL) {
        /* A name, as `cloudflared tunnel run NAME` takes: ignored like `tunnel: NAME` in the file.
         * Never quoted: it may be a token typed without --token. */
        on_warn("the tunnel argument is not a tunnel id (UUID): culvert identifies the tunnel by "
                "the id in the credentials file or token; the name is ignored", w);
        if (fc->has_tunnel)
            want = fc->tunnel_id;
    } else if (fc->has_tunnel) {
        want = fc->tunnel_id;
    }

    if (f->token != NULL) {
        rv = token_decode(f->token, f->token_len, t, &why);
        if (rv == CV_ENOMEM)
            return failf(rv, err, errlen, "out of memory");
        if (rv < 0)
            return failf(CV_ECONFIG, err, errlen, "--token: invalid token: %s", why);
        c->token_source = CONNECTOR_TOKEN_FLAG;
    } else if (f->token_file != NULL) {
        path = expand_home(f->token_file);
        if (path == NULL)
            return failf(CV_ENOMEM, err, errlen, "out of memory");
        rv = token_load_file(path, t, &te);
        if (rv < 0) {
            mem_free(path);
            return failf(rv == CV_EPARSE ? CV_ECONFIG : rv, err, errlen, "--token-file: %s",
                         te.msg);
        }
        c->credentials_path = path;
        c->token_source = CONNECTOR_TOKEN_FILE;
    } else if (fc->has_token) {
        *t = fc->token;
        token_init(&fc->token);
        c->token_source = CONNECTOR_TOKEN_CONFIG;
    } else {
        rv = env_token("CULVERT_TOKEN", t, &used, err, errlen);
        if (rv < 0)
            return rv;
        if (used) {
            c->token_source = CONNECTOR_TOKEN_ENV_CULVERT;
        } else {
            rv = env_token("TUNNEL_TOKEN", t, &used, err, errlen);
            if (rv < 0)
                return rv;
            if (used)
                c->token_source = CONNECTOR_TOKEN_ENV_TUNNEL;
        }
    }
    if (c->token_source != CONNECTOR_TOKEN_NONE) {
        if (want != NULL && memcmp(want, t->id, TOKEN_ID_LEN) != 0) {
            char msg[200];

            token_uuid_format(want, wanttext);
            token_uuid_format(t->id, idtext);
            snprintf(msg, sizeof(msg), "tunnel %s (--tunnel or tunnel:) differs from the token's "
                     "tunnel %s: using the token", wanttext, idtext);
            on_warn(msg, w);
        }
        return 0;
    }

    /* tunnel + credentials-file */
    if (f->credentials != NULL) {
        path = expand_home(f->credentials);
    } else if (fc->credentials != NULL) {
        path = mem_strdup(fc->credentials);
    } else if (want != NULL) {
        path = find_credentials(fc->path, want, &oom);
        if (path == NULL && !oom) {
            token_uuid_format(want, wanttext);
            return failf(CV_ECONFIG, err, errlen,
                         "no credentials for tunnel %s: give credentials-file: (or "
                         "--credentials-file), or a token (--token, --token-file, token:, "
                         "$CULVERT_TOKEN or $TUNNEL_TOKEN)", wanttext);
        }
    } else {
        return failf(CV_ECONFIG, err, errlen,
                     "no credentials: give --token, --token-file, token: in the config, "
                     "$CULVERT_TOKEN or $TUNNEL_TOKEN, or tunnel: with credentials-file:");
    }
    if (path == NULL)
        return failf(CV_ENOMEM, err, errlen, "out of memory");
    rv = token_load_file(path, t, &te);
    if (rv < 0) {
        mem_free(path);
        return failf(rv == CV_EPARSE ? CV_ECONFIG : rv, err, errlen, "credentials-file: %s",
                     te.msg);
    }
    c->credentials_path = path;
    c->token_source = CONNECTOR_TOKEN_CREDENTIALS;
    if (want != NULL && memcmp(want, t->id, TOKEN_ID_LEN) != 0) {
        token_uuid_format(want, wanttext);
        token_uuid_format(t->id, idtext);
        if (want == fc->tunnel_id && fc->tunnel_node != NULL) {
            struct yaml_error ye;

            (void)yaml_errorf(&ye, fc->tunnel_node, "tunnel",
                              "%s does not match the TunnelID %s in %s", wanttext, idtext, path);
            return failf(CV_ECONFIG, err, errlen, "%s", ye.msg);
        }
        return failf(CV_ECONFIG, err, errlen, "--tunnel: %s does not match the TunnelID %s in %s",
                     wanttext, idtext, path);
    }
    return 0;
}

/* ---- flags over the file -------------------------------------------------------------------- */

static int flag_duration(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out,
                         char *err, size_t errlen)
{
    const char *why;
    uint64_t ms;

    if (config_parse_duration(s, 0, &ms, &why) < 0)
        return failf(CV_ECONFIG, err, errlen, "--%s: %s", name, why);
    if (ms < min || ms > max)
        return failf(CV_ECONFIG, err, errlen, "--%s: out of range", name);
    *out = ms;
    return 0;
}

static int set_str(char **slot, const char *s, bool home)
{
    char *copy = home ? expand_home(s) : mem_strdup(s);

    if (copy == NULL)
        return CV_ENOMEM;
    mem_free(*slot);
    *slot = copy;
    return 0;
}

/* Applies the file's values, then the flags', over the defaults in |c|. */
static int apply_settings(struct connector_config *c, struct file_cfg *fc, const struct flags *f,
                          char *err, size_t errlen)
{
    const char *why;
    int64_t iv;
    int rv;

    c->ha_connections = CONNECTOR_HA_DEFAULT;
    c->loglevel = LOG_INFO;
    c->grace_period_ms = CONNECTOR_GRACE_DEFAULT_MS;
    c->retry_base_ms = CONNECTOR_RETRY_BASE_DEFAULT_MS;
    c->heartbeat_ms = CONNECTOR_HEARTBEAT_DEFAULT_MS;
    c->stream_idle_ms = CONNECTOR_STREAM_IDLE_DEFAULT_MS;
    c->metrics_mode = CONNECTOR_METRICS_DEFAULT;
    if (fc->has_ha)
        c->ha_connections = fc->ha;
    if (fc->has_loglevel)
        c->loglevel = fc->loglevel;
    if (fc->has_grace)
        c->grace_period_ms = fc->grace_ms;
    if (fc->has_metrics) {
        c->metrics_mode = fc->metrics_mode;
        c->metrics = fc->metrics;
    }
    if (fc->region != NULL) {
        c->region = fc->region;
        fc->region = NULL;
    }
    if (fc->edge_ca != NULL) {
        c->edge_ca = fc->edge_ca;
        fc->edge_ca = NULL;
    }
    if (f == NULL)
        return 0;

    if (f->ha != NULL) {
        if (config_parse_int(f->ha, INT32_MIN, INT32_MAX, &iv, &why) < 0)
            return failf(CV_ECONFIG, err, errlen, "--ha-connections: %s", why);
        if (iv < 1 || iv > CONNECTOR_HA_MAX)
            return failf(CV_ECONFIG, err, errlen, "--ha-connections: must be between 1 and %d",
                         CONNECTOR_HA_MAX);
        c->ha_connections = (unsigned)iv;
    }
    if (f->loglevel != NULL && log_parse_level(f->loglevel, &c->loglevel) < 0)
        return failf(CV_ECONFIG, err, errlen,
                     "--loglevel: unknown level (use trace, debug, info, warn, error or fatal)");
    if (f->grace != NULL) {
        rv = flag_duration("grace-period", f->grace, 0, MS_PER_DAY, &c->grace_period_ms, err,
                           errlen);
        if (rv < 0)
            return rv;
    }
    if (f->retry_base != NULL) {
        rv = flag_duration("retry-base", f->retry_base, 1, 60 * MS_PER_S, &c->retry_base_ms, err,
                           errlen);
        if (rv < 0)
            return rv;
    }
    if (f->heartbeat != NULL) {
        rv = flag_duration("heartbeat", f->heartbeat, 10, 600 * MS_PER_S, &c->heartbeat_ms, err,
                           errlen);
        if (rv < 0)
            return rv;
    }
    if (f->stream_idle != NULL) {
        rv = flag_duration("stream-idle", f->stream_idle, 10, MS_PER_DAY, &c->stream_idle_ms, err,
                           errlen);
        if (rv < 0)
            return rv;
    }
    if (f->metrics != NULL) {
        if (strcmp(f->metrics, "off") == 0) {
            c->metrics_mode = CONNECTOR_METRICS_OFF;
        } else if (config_parse_addr(f->metrics, CONFIG_ADDR_ALLOW_PORT0, &c->metrics, &why) < 0) {
            return failf(CV_ECONFIG, err, errlen, "--metrics: %s; or off to disable metrics",
                         why);
        } else {
            c->metrics_mode = CONNECTOR_METRICS_ADDR;
        }
    }
    if (f->region != NULL) {
        why = check_region(f->region);
        if (why != NULL)
            return failf(CV_ECONFIG, err, errlen, "--region: %s", why);
        if (set_str(&c->region, f->region, false) < 0)
            return failf(CV_ENOMEM, err, errlen, "out of memory");
    }
    if (f->edge_ca != NULL) {
        if (config_check_path(f->edge_ca, 0, &why) < 0)
            return failf(CV_ECONFIG, err, errlen, "--edge-ca: %s", why);
        if (set_str(&c->edge_ca, f->edge_ca, true) < 0)
            return failf(CV_ENOMEM, err, errlen, "out of memory");
    }
    return 0;
}

/* The edge list: --edge, else edge:, else the token's. */
static int apply_edges(struct connector_config *c, struct file_cfg *fc, const struct flags *f,
                       struct token *t, char *err, size_t errlen)
{
    const char *why;
    size_t i;

    if (f->n_edges > 0) {
        if (f->n_edges > TOKEN_MAX_EDGES)
            return failf(CV_ECONFIG, err, errlen, "--edge: more than %d addresses",
                         TOKEN_MAX_EDGES);
        c->edges = mem_calloc(f->n_edges * sizeof(*c->edges));
        if (c->edges == NULL)
            return failf(CV_ENOMEM, err, errlen, "out of memory");
        for (i = 0; i < f->n_edges; i++) {
            if (config_parse_addr(f->edges[i], 0, &c->edges[i], &why) < 0)
                return failf(CV_ECONFIG, err, errlen, "--edge: %s", why);
        }
        c->n_edges = f->n_edges;
        return 0;
    }
    if (fc->n_edges > 0) {
        c->edges = fc->edges;
        c->n_edges = fc->n_edges;
        fc->edges = NULL;
        fc->n_edges = 0;
        return 0;
    }
    if (t->n_edges > 0) {
        c->edges = t->edges;
        c->n_edges = t->n_edges;
        t->edges = NULL;
        t->n_edges = 0;
        return 0;
    }
    return failf(CV_ECONFIG, err, errlen,
                 "no edge address: the credentials carry none; give --edge HOST:PORT or edge: in "
                 "the config");
}

/* ---- public --------------------------------------------------------------------------------- */

void connector_config_free(struct connector_config *c)
{
    size_t i;

    if (c == NULL)
        return;
    OPENSSL_cleanse(c->secret, sizeof(c->secret));
    mem_free(c->config_path);
    mem_free(c->credentials_path);
    mem_free(c->edges);
    mem_free(c->edge_ca);
    mem_free(c->region);
    mem_free(c->url);
    for (i = 0; i < CONNECTOR_ORIGIN_FLAGS; i++)
        mem_free(c->origin_flags[i]);
    ingress_free(c->ingress);
    for (i = 0; i < c->n_warnings; i++)
        mem_free(c->warnings[i]);
    mem_free(c->warnings);
    mem_free_secret(c, sizeof(*c));
}

void connector_config_log_warnings(const struct connector_config *c)
{
    size_t i;

    for (i = 0; i < c->n_warnings; i++)
        LOG_W("config %s", c->warnings[i]);
}

/* Shared body of load and load_file: |f| NULL means no flags and no credentials. */
static int load(const struct flags *f, const char *path, struct connector_config **out, char *err,
                size_t errlen)
{
    struct connector_config *c;
    struct file_cfg fc;
    struct warnings w = {NULL, 0, false};
    struct token t;
    char found[4096];
    int rv;

    *out = NULL;
    file_init(&fc);
    token_init(&t);
    c = mem_calloc(sizeof(*c));
    if (c == NULL) {
        rv = failf(CV_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    if (path == NULL) {
        rv = connector_config_find(found, sizeof(found));
        if (rv == CV_ELIMIT) {
            rv = failf(CV_ECONFIG, err, errlen, "the default config file's path is too long");
            goto fail;
        }
        if (rv == 0)
            path = found;
        else if (f == NULL) {
            rv = failf(CV_ENOTFOUND, err, errlen, "no configuration file was found");
            goto fail;
        }
    }
    if (path != NULL) {
        c->config_path = mem_strdup(path);
        if (c->config_path == NULL) {
            rv = failf(CV_ENOMEM, err, errlen, "out of memory");
            goto fail;
        }
        rv = file_load(c->config_path, &fc, &w, err, errlen);
        if (rv < 0)
            goto fail;
    }
    rv = build_ingress(c, &fc, f, &w, err, errlen);
    if (rv < 0)
        goto fail;
    for (size_t j = 0; f != NULL && j < N_LEGACY_ORIGIN_KEYS; j++) {
        if (f->origin[j] != NULL && set_str(&c->origin_flags[j], f->origin[j], false) < 0) {
            rv = failf(CV_ENOMEM, err, errlen, "out of memory");
            goto fail;
        }
    }
    rv = apply_settings(c, &fc, f, err, errlen);
    if (rv < 0)
        goto fail;
    if (f != NULL) {
        rv = resolve_credentials(c, &fc, f, &t, &w, err, errlen);
        if (rv < 0)
            goto fail;
        rv = apply_edges(c, &fc, f, &t, err, errlen);
        if (rv < 0)
            goto fail;
        memcpy(c->tunnel_id, t.id, TOKEN_ID_LEN);
        memcpy(c->secret, t.secret, TOKEN_SECRET_LEN);
        token_uuid_format(c->tunnel_id, c->tunnel_id_text);
        c->has_ca_sha256 = t.has_ca_sha256;
        memcpy(c->ca_sha256, t.ca_sha256, TOKEN_DIGEST_LEN);
        if (c->has_ca_sha256 && c->edge_ca != NULL) {
            char msg[512];

            snprintf(msg, sizeof(msg), "edge-ca %.300s is not used: the token pins the edge's CA "
                                       "(ca_sha256), which takes precedence", c->edge_ca);
            on_warn(msg, &w);
        }
    }
    if (w.oom) {
        rv = failf(CV_ENOMEM, err, errlen, "out of memory");
        goto fail;
    }
    c->warnings = w.lines;
    c->n_warnings = w.n;
    token_cleanup(&t);
    file_cleanup(&fc);
    *out = c;
    return 0;
fail:
    if (f != NULL)
        warnings_log(&w);
    warnings_free(&w);
    token_cleanup(&t);
    file_cleanup(&fc);
    connector_config_free(c);
    return rv;
}

int connector_config_load(int argc, char **argv, struct connector_config **out, char *err,
                          size_t errlen)
{
    struct flags f;
    int rv;

    *out = NULL;
    memset(&f, 0, sizeof(f));
    rv = parse_flags(argc, argv, &f, err, errlen);
    if (rv < 0) {
        flags_cleanup(&f);
        return rv;
    }
    if (f.help) {
        flags_cleanup(&f);
        return CONNECTOR_CONFIG_HELP;
    }
    if (f.config != NULL && config_check_path(f.config, 0, NULL) < 0) {
        flags_cleanup(&f);
        return failf(CV_ECONFIG, err, errlen, "--config: invalid path");
    }
    rv = load(&f, f.config, out, err, errlen);
    flags_cleanup(&f);
    return rv;
}

int connector_config_load_file(const char *path, struct connector_config **out, char *err,
                               size_t errlen)
{
    return load(NULL, path, out, err, errlen);
}

int connector_config_reload_ingress(const struct connector_config *cur, struct ingress **out,
                                    char *err, size_t errlen)
{
    struct connector_config c;
    struct file_cfg fc;
    struct flags fl;
    struct warnings w = {NULL, 0, false};
    size_t j;
    int rv;

    *out = NULL;
    if (cur->config_path == NULL)
        return failf(CV_ENOTFOUND, err, errlen, "no config file to reload");
    memset(&fl, 0, sizeof(fl)); /* what the command line gave: --url and the origin flags */
    fl.url = cur->url_from_flag ? cur->url : NULL;
    for (j = 0; j < N_LEGACY_ORIGIN_KEYS; j++)
        fl.origin[j] = cur->origin_flags[j];
    memset(&c, 0, sizeof(c));
    file_init(&fc);
    rv = file_load(cur->config_path, &fc, &w, err, errlen);
    if (rv == 0)
        rv = build_ingress(&c, &fc, &fl, &w, err, errlen);
    if (rv == 0 && w.oom)
        rv = failf(CV_ENOMEM, err, errlen, "out of memory");
    warnings_log(&w);
    warnings_free(&w);
    file_cleanup(&fc);
    mem_free(c.url);
    if (rv < 0) {
        ingress_free(c.ingress);
        return rv;
    }
    *out = c.ingress;
    return 0;
}

void connector_config_usage(FILE *f)
{
    fprintf(f,
            "usage: culvert-connector run [flags] [TUNNEL-ID]\n"
            "\n"
            "Keeps the tunnel's connections to the edge up and serves its ingress rules.\n"
            "Every flag can also be a key of config.yml; a flag beats the file.\n"
            "\n"
            "  --config FILE          config file (default: first of ~/.culvert/config.yml,\n"
            "                         /etc/culvert/config.yml, ~/.cloudflared/config.yml,\n"
            "                         /etc/cloudflared/config.yml)\n"
            "  --token TOKEN          tunnel token (wiped from the process arguments at once)\n"
            "  --token-file FILE      read the token from FILE (mode 0600 or stricter)\n"
            "                         token also from token:, $CULVERT_TOKEN or $TUNNEL_TOKEN\n"
            "  --url URL              serve one origin for every hostname (no ingress section)\n"
            "  --tunnel ID            tunnel id, with --credentials-file FILE (cloudflared JSON)\n"
            "  --edge HOST:PORT       edge address, repeatable (default: the token's)\n"
            "  --edge-ca FILE         CA certificate(s) for the edge (default: pinned or system)\n"
            "  --ha-connections N     connections to keep, 1-%d (default %d)\n"
            "  --metrics ADDR|off     metrics listener (default: first free of 127.0.0.1:%d-%d)\n"
            "  --loglevel LEVEL       trace, debug, info, warn, error (default info)\n"
            "  --grace-period D       drain time on SIGTERM (default 30s)\n"
            "  --region R             region label shown on the edge\n"
            "  --no-tls-verify, --origin-ca-pool F, --origin-server-name N, --http-host-header H,\n"
            "  --no-chunked-encoding, --proxy-connect-timeout D, --proxy-tls-timeout D,\n"
            "  --proxy-tcp-keepalive D, --proxy-keepalive-connections N,\n"
            "  --proxy-keepalive-timeout D\n"
            "                         cloudflared's single-origin options, for --url / url:\n"
            "                         (with ingress rules use originRequest)\n"
            "  --help                 this text\n",
            CONNECTOR_HA_MAX, CONNECTOR_HA_DEFAULT, CONNECTOR_METRICS_PORT_FIRST,
            CONNECTOR_METRICS_PORT_LAST);
}
