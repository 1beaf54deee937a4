/*
 * connector_config.h - the configuration of `culvert-connector run`: command-line flags, the
 * cloudflared-compatible config.yml (PRODUCT.md §3), and where the tunnel's credentials come from.
 *
 * Sources, highest first: flags, then config.yml, then defaults. config.yml keys: tunnel,
 * credentials-file, token, edge (a string or a list), edge-ca, ha-connections, region, metrics,
 * loglevel, grace-period, url (cloudflared's legacy single origin), originRequest, ingress. Every
 * key but originRequest and ingress is also a flag (`--ha-connections 4` for `ha-connections: 4`),
 * written `--flag VALUE`, `--flag=VALUE` or with one dash. A leading "~/" in a path is $HOME.
 * config.yml mirrors cloudflared's schema: cloudflared keys culvert does not implement are warned
 * about by name as "not supported by culvert, ignored" (its single-origin keys such as
 * no-tls-verify name the originRequest key to use instead), other unknown keys as "unknown key,
 * ignored"; duplicate keys and invalid values stop start-up with "file:line:col: key: reason".
 *
 * Credentials, first source found wins: --token, --token-file (refused when group or others can
 * read it), the config's `token:`, $CULVERT_TOKEN, $TUNNEL_TOKEN, then `tunnel:` with
 * `credentials-file:` (cloudflared's JSON; when `tunnel:` is given the ids must agree; without
 * credentials-file, TUNNEL-ID.json is looked for next to the config file and in the search
 * directories, as cloudflared does). The value of --token is copied and then overwritten in the
 * caller's argv memory before anything else happens, so /proc/PID/cmdline never shows it
 * (RELIABILITY.md §2.3 3.6). No message or warning ever contains a token or secret.
 *
 * Layers: yaml.h, config.h, token.h and ingress.h below; connector/main.c calls
 * connector_config_load() and exits 2 when it fails. Runs once at start-up (and on SIGHUP for
 * connector_config_reload_ingress) on the loop thread; allocation through common/mem.
 */
#ifndef CV_CONNECTOR_CONFIG_H
#define CV_CONNECTOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "ingress.h"
#include "log.h"
#include "token.h"

/* cloudflared's single-origin flags culvert reads (connector_config.c: legacy_origin_keys). */
#define CONNECTOR_ORIGIN_FLAGS 11
#define CONNECTOR_HA_DEFAULT 4
#define CONNECTOR_HA_MAX 16
#define CONNECTOR_GRACE_DEFAULT_MS 30000
#define CONNECTOR_RETRY_BASE_DEFAULT_MS 1000
#define CONNECTOR_HEARTBEAT_DEFAULT_MS 5000
#define CONNECTOR_STREAM_IDLE_DEFAULT_MS (300 * 1000)
/* Default metrics: the first free of 127.0.0.1:20241-20245, chosen by the runtime at bind time. */
#define CONNECTOR_METRICS_PORT_FIRST 20241
#define CONNECTOR_METRICS_PORT_LAST 20245

/* connector_config_load's answer when --help (or -h) was given: print usage, exit 0. */
#define CONNECTOR_CONFIG_HELP 1

enum connector_token_source {
    CONNECTOR_TOKEN_NONE,        /* connector_config_load_file: credentials not resolved */
    CONNECTOR_TOKEN_FLAG,        /* --token */
    CONNECTOR_TOKEN_FILE,        /* --token-file */
    CONNECTOR_TOKEN_CONFIG,      /* token: in config.yml */
    CONNECTOR_TOKEN_ENV_CULVERT, /* $CULVERT_TOKEN */
    CONNECTOR_TOKEN_ENV_TUNNEL,  /* $TUNNEL_TOKEN */
    CONNECTOR_TOKEN_CREDENTIALS, /* tunnel: + credentials-file: */
};

enum connector_metrics_mode {
    CONNECTOR_METRICS_DEFAULT, /* the runtime binds the first free of 127.0.0.1:20241-20245 */
    CONNECTOR_METRICS_OFF,     /* `metrics: off` */
    CONNECTOR_METRICS_ADDR,    /* |metrics| */
};

/* The whole start-up configuration. Owned strings and arrays are freed by connector_config_free. */
struct connector_config {
    char *config_path;                  /* the config file read, NULL when none */
    enum connector_token_source token_source;
    char *credentials_path;             /* CONNECTOR_TOKEN_FILE or _CREDENTIALS: the file read */

    uint8_t tunnel_id[TOKEN_ID_LEN];
    char tunnel_id_text[TOKEN_UUID_TEXT_LEN + 1]; /* canonical lower-case UUID, for logs */
    uint8_t secret[TOKEN_SECRET_LEN];   /* wiped by connector_config_free */

    struct config_addr *edges;          /* --edge / edge:, else the token's or credentials' list */
    size_t n_edges;                     /* >= 1 after connector_config_load */
    bool has_ca_sha256;                 /* the token pins the edge CA ... */
    uint8_t ca_sha256[TOKEN_DIGEST_LEN]; /* ... by the SHA-256 of its DER */
    char *edge_ca;                      /* --edge-ca / edge-ca: PEM file, NULL: system store */

    unsigned ha_connections;            /* 1..16, default 4 */
    char *region;                       /* --region / region:, NULL when unset */
    enum connector_metrics_mode metrics_mode;
    struct config_addr metrics;         /* CONNECTOR_METRICS_ADDR */
    enum log_level loglevel;            /* default LOG_INFO */
    uint64_t grace_period_ms;           /* default 30s */
    uint64_t retry_base_ms;             /* hidden --retry-base: backoff base, default 1s */
    uint64_t heartbeat_ms;              /* hidden --heartbeat: silence before pinging, default 5s */
    uint64_t stream_idle_ms;            /* hidden --stream-idle: a half-closed TCP stream without
                                         * traffic is reset after this, default 300s */

    char *url;                          /* --url or the legacy url: key, NULL when unset */
    bool url_from_flag;                 /* |url| came from --url: a reload keeps it */
    /* cloudflared's single-origin flags as given (--no-tls-verify, --http-host-header H, ...; NULL
     * when not), so that a reload applies them again. */
    char *origin_flags[CONNECTOR_ORIGIN_FLAGS];
    struct ingress *ingress;            /* from url, else the ingress section; never NULL */

    char **warnings;                    /* n_warnings lines for the caller to log */
    size_t n_warnings;
};

/*
 * Parses the arguments of `culvert-connector run` (|argv| holds the |argc| arguments after "run";
 * argv[i] strings may be overwritten, see --token) and builds a new configuration in *|out|.
 *
 * Flags: --config FILE, --token T, --token-file F, --url URL, --tunnel UUID (also the one
 * positional argument, as in `cloudflared tunnel run UUID`; a positional tunnel name is warned
 * about and ignored, like `tunnel: NAME` in the file), --credentials-file F (alias
 * --cred-file), --edge HOST:PORT (repeatable), --edge-ca F, --ha-connections N, --metrics ADDR|off,
 * --loglevel L, --grace-period D, --region R, --retry-base D, --heartbeat D and --stream-idle D
 * (hidden test knobs),
 * --help / -h. A flag given twice (but --edge) is an error. Without --config, the first existing
 * file of connector_config_find() is read; no file at all is fine when --url and credentials are
 * given otherwise.
 *
 * Ingress: --url (or `url:` in the file) makes one catch-all rule; otherwise the file's ingress
 * section is required (culvert does not assume cloudflared's silent 503 default). --url together
 * with an ingress section is an error, as in cloudflared.
 *
 * Returns 0 with *|out| set (warnings in (*out)->warnings, not yet logged); CONNECTOR_CONFIG_HELP
 * with *|out| NULL; or, with *|out| NULL, a negative code and a one-line message in |err| (|errlen|
 * bytes, NUL-terminated) naming the flag or file:line:col and key: CV_ECONFIG (usage, invalid
 * values, missing credentials or ingress; the caller exits 2), CV_EAUTH (a token file or
 * credentials file that group or others can read), -errno (a file that cannot be read), CV_ENOMEM.
 * On failure the warnings gathered so far are logged with LOG_W first, since they often explain the
 * error.
 */
int connector_config_load(int argc, char **argv, struct connector_config **out, char *err,
                          size_t errlen);

/*
 * For `ingress validate|rule`: reads the config file |path| (NULL: connector_config_find) and
 * checks every key as connector_config_load does, without flags and without reading any token,
 * token file or credentials file (token_source CONNECTOR_TOKEN_NONE, no edges). The file must yield
 * an ingress (an ingress section or url:). Returns 0 with *|out|, or as connector_config_load
 * (CV_ENOTFOUND when |path| is NULL and no file exists), logging nothing: warnings are in
 * (*out)->warnings.
 */
int connector_config_load_file(const char *path, struct connector_config **out, char *err,
                               size_t errlen);

/*
 * SIGHUP: reads |cur|'s config file again, checks every key as at start-up, and builds a new
 * ingress (from |cur|'s --url when the run used one, else from the file's url: or ingress section).
 * Tunnel, credentials and connection settings are not reloaded. Logs warnings with LOG_W. Returns 0
 * and a new ingress in *|out| for the caller to swap in; CV_ENOTFOUND when |cur| was started
 * without a file; or an error as connector_config_load, with |err| and *|out| NULL (keep the old
 * ingress).
 */
int connector_config_reload_ingress(const struct connector_config *cur, struct ingress **out,
                                    char *err, size_t errlen);

/* Logs each of |c|'s warnings with LOG_W. */
void connector_config_log_warnings(const struct connector_config *c);

/* Wipes the secret and frees |c| and everything it owns (NULL is fine). */
void connector_config_free(struct connector_config *c);

/*
 * The default config file: the first regular file among ~/.culvert/config.yml,
 * /etc/culvert/config.yml, ~/.cloudflared/config.yml and /etc/cloudflared/config.yml (each also
 * as config.yaml; "~" is $HOME, skipped when unset). Writes its path into |out| (|n| bytes) and
 * returns 0, or CV_ENOTFOUND (|out| = ""); CV_ELIMIT when the path does not fit.
 */
int connector_config_find(char *out, size_t n);

/* Prints the usage of `culvert-connector run` (the documented flags) on |f|. */
void connector_config_usage(FILE *f);

#endif
