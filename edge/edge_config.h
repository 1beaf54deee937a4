/*
 * edge_config.h - edge.yml (PRODUCT.md section 2) as a struct edge_config.
 *
 * edge_config_load() reads the file with common/yaml (size, depth, node and alias limits; duplicate
 * keys rejected there) and applies the edge's schema strictly: an unknown key, a value of the wrong
 * type or out of range, or a missing required key is an error "file:line:col: key.path: message"
 * (the caller exits 2 at start-up, or keeps the old config on SIGHUP). Everything is optional
 * except public.certificates (at least one {cert, key}) and tunnel.cert / tunnel.key.
 *
 * A loaded config is an immutable value: main.c replaces it whole on reload, and other modules read
 * its fields directly. Relative paths in the file are resolved against the directory of the config
 * file (made absolute with the working directory when needed), so the result never depends on where
 * the edge was started from later. Defaults (the values PRODUCT.md shows):
 *
 *   region default                data_dir /var/lib/culvert
 *   public.https ["0.0.0.0:443"]  public.http ["0.0.0.0:80"]  public.http_redirect true
 *   tunnel.listen ["0.0.0.0:7844"]
 *   tunnel.advertise  each listen address, with the machine's hostname (gethostname) in place of an
 *                     any-address (0.0.0.0 or ::), duplicates removed
 *   admin.listen 127.0.0.1:7845   admin.token_file /etc/culvert/admin.token
 *   balance nearest               grace_period 30s
 *   timeouts { header_read 10s, keepalive_idle 75s, response_header 100s, tls_handshake 10s }
 *   access_log { path /var/log/culvert/access.log, format combined }
 *   limits: the defaults of limits_init()
 *
 * `timeouts:` and `grace_period` write the matching struct cv_limits fields (header_read_ms,
 * keepalive_idle_ms, response_header_ms, tls_handshake_ms, grace_period_ms); `limits:` sets any
 * field of struct cv_limits by its name in limits_table() (a duration for LIMIT_MS, a size for
 * LIMIT_BYTES, an integer for LIMIT_COUNT). Setting one field both ways is an error.
 *
 * Runs on the loop thread (or before it starts); allocation through common/mem. Not thread-safe.
 */
#ifndef CV_EDGE_CONFIG_H
#define CV_EDGE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hostname.h"
#include "limits.h"
#include "tunnel.h"

#define EDGE_CONFIG_DEFAULT_PATH "/etc/culvert/edge.yml"
#define EDGE_CONFIG_DEFAULT_DATA_DIR "/var/lib/culvert"
#define EDGE_CONFIG_DEFAULT_ADMIN "127.0.0.1:7845"
#define EDGE_CONFIG_DEFAULT_TOKEN_FILE "/etc/culvert/admin.token"
#define EDGE_CONFIG_DEFAULT_ACCESS_LOG "/var/log/culvert/access.log"
#define EDGE_REGION_MAX 64 /* region: characters */

#define EDGE_CONFIG_AT_MAX 512 /* "file:line:col: key.path" */

/* One public certificate: PEM chain and private key files (absolute paths), and where edge.yml
 * names them ("edge.yml:9:13: public.certificates[0].cert"), for messages about the files. */
struct edge_cert {
    char *cert;
    char *key;
    char cert_at[EDGE_CONFIG_AT_MAX];
    char key_at[EDGE_CONFIG_AT_MAX];
};

/* Per-hostname settings from `hosts:`. Every timeout is resolved: an unset one holds the global
 * value (timeouts:/limits:), so a reader never needs to fall back itself. */
struct edge_host {
    struct hostname_pattern pattern; /* exact name or "*.suffix", normalised */
    uint32_t header_read_ms;
    uint32_t keepalive_idle_ms;
    uint32_t response_header_ms;
};

/* A raw TCP port forwarded to a tunnel (`tcp_ports:`): parsed and validated; served later. */
struct edge_tcp_port {
    struct config_addr listen; /* TCP only */
    char *tunnel;              /* tunnel name (store_name_valid rules) */
    char hostname[HOSTNAME_MAX + 1]; /* exact normalised name the connector's ingress matches */
};

enum access_log_format { ACCESS_LOG_COMBINED, ACCESS_LOG_JSON };

struct edge_config {
    char *path;     /* the file as given to edge_config_load */
    char *region;   /* 1..64 characters of [A-Za-z0-9._-] */
    char *data_dir; /* absolute */

    struct config_addr *https; /* public HTTPS listeners (TCP), n_https >= 0 */
    size_t n_https;
    struct config_addr *http; /* public plain-HTTP listeners (TCP), n_http >= 0 */
    size_t n_http;
    bool http_redirect;       /* plain HTTP answers with a redirect to https (default true) */
    /* public.advertise_ports: the ports visitors connect to when a port mapping (a container's, a
     * load balancer's) puts the listeners elsewhere; 0 when not set. Redirects name the https one,
     * and a Host naming either is served like one naming the listener's own port. */
    int advertise_https_port;
    int advertise_http_port;
    struct edge_cert *certs;  /* n_certs >= 1 */
    size_t n_certs;

    struct config_addr *tunnel_listen; /* TCP, n_tunnel_listen >= 1 */
    size_t n_tunnel_listen;
    struct config_addr *advertise; /* TCP addresses written into tokens, n_advertise >= 1 */
    size_t n_advertise;
    char *tunnel_ca;       /* absolute path, or NULL */
    bool has_ca_sha256;    /* tunnel_ca set: ca_sha256 holds its first certificate's digest */
    uint8_t ca_sha256[32]; /* SHA-256 of the DER of the first certificate in tunnel_ca */
    char *tunnel_cert;     /* absolute */
    char *tunnel_key;      /* absolute */
    char tunnel_cert_at[EDGE_CONFIG_AT_MAX]; /* where edge.yml names them, as edge_cert's */
    char tunnel_key_at[EDGE_CONFIG_AT_MAX];

    struct config_addr admin_listen; /* TCP or unix (absolute path) */
    char *admin_token_file;          /* absolute */

    enum balance_policy balance;
    struct cv_limits limits; /* defaults, then limits:, timeouts: and grace_period */

    char *access_log_path; /* absolute path, "-" for stderr, or NULL for "off" */
    enum access_log_format access_log_format;

    struct edge_host *hosts; /* in file order */
    size_t n_hosts;
    struct hostname_table *host_table; /* pattern -> struct edge_host *, for edge_config_host */

    struct edge_tcp_port *tcp_ports;
    size_t n_tcp_ports;
};

/*
 * Loads and validates the edge.yml at |path| (borrowed; used in messages as given). Returns 0 and
 * sets *|out| to a new config (free with edge_config_free), or a negative code with a one-line
 * message in |err| (|errlen| bytes, always NUL-terminated when |errlen| > 0) and *|out| NULL:
 *   -errno (UV_ENOENT, UV_EACCES, ...) the file cannot be opened or read (the message names it);
 *   CV_EPARSE, CV_ELIMIT  YAML syntax, duplicate key, alias, too big/deep (from common/yaml);
 *   CV_ECONFIG  a schema error, "file:line:col: key.path: message" (or "file: key.path: message"
 *               when there is no node to point at, e.g. in an empty file), including a tunnel.ca
 *               file that cannot be read or holds no certificate (the message names the file);
 *   CV_ENOMEM   out of memory.
 */
int edge_config_load(const char *path, struct edge_config **out, char *err, size_t errlen);

/*
 * Prefixes |err| (a message of tls_ctx_server_new about a certificate and key pair) with where
 * edge.yml names the file it is about: |key_at| when it names the key file ("key file ..."),
 * else |cert_at|. An empty location leaves |err| as it is.
 */
void edge_config_blame(char *err, size_t errlen, const char *cert_at, const char *key_at);

/* Frees |c| and everything it owns (NULL is fine). */
void edge_config_free(struct edge_config *c);

/*
 * Per-host settings for the normalised name |name| (from hostname_normalize / hostname_split): the
 * exact `hosts:` entry if any, else the one with the longest matching wildcard, else NULL (use
 * |c|->limits). The result is borrowed from |c|.
 */
const struct edge_host *edge_config_host(const struct edge_config *c, const char *name);

/* "nearest", "round_robin", "least_streams". */
const char *edge_balance_name(enum balance_policy b);

#endif
