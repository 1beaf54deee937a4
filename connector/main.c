/*
 * main.c - culvert-connector: command line (run, ingress validate|rule, access tcp|ssh, --version,
 * --help), the loop, and signals (TERM drains within the grace period, a second TERM or INT exits
 * at once, HUP reloads the ingress rules and origin options).
 *
 * Exit codes (PRODUCT.md section 2): 0 success, 2 usage or configuration error, 1 anything else
 * (among them: the edge rejected the token).
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "access.h"
#include "connector.h"
#include "connector_config.h"
#include "err.h"
#include "ingress.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "origin_http.h"
#include "sock.h"
#include "supervisor.h"
#include "tls.h"
#include "token.h"
#include "version.h"

static struct connector conn;
static uv_signal_t sig_term;
static uv_signal_t sig_int;
static uv_signal_t sig_hup;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: culvert-connector run [--config FILE] [--token TOKEN | --token-file F] [--url URL]\n"
            "                             [--edge HOST:PORT] [--edge-ca F] [--ha-connections N]\n"
            "                             [--metrics ADDR|off] [--loglevel L] [--grace-period D]\n"
            "                             [--region R]\n"
            "       culvert-connector ingress validate [--config FILE]\n"
            "       culvert-connector ingress rule URL [--config FILE]\n"
            "       culvert-connector access tcp --hostname H --url [HOST:]PORT [--edge-url URL]\n"
            "                                    [--edge-ca F] [--header 'Name: value']...\n"
            "       culvert-connector access ssh --hostname H [--edge-url URL] [--edge-ca F]\n"
            "                                    [--header 'Name: value']...\n"
            "       culvert-connector --version | --help\n"
            "\n"
            "run connects out to the edge with the tunnel token (also $CULVERT_TOKEN or $TUNNEL_TOKEN,\n"
            "or tunnel + credentials-file in config.yml) and serves the edge's streams from local\n"
            "services chosen by the ingress rules (or --url for one origin).\n"
            "`culvert-connector run --help` lists every flag.\n");
}

static void on_sup_done(struct supervisor *sv, void *arg)
{
    (void)sv;
    (void)arg;
    /* Nothing runs any more: close what keeps the loop alive. */
    metrics_stop(&conn);
    origin_pools_close(conn.pools);
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_hup);
    if (!uv_is_closing((uv_handle_t *)&sig_term)) {
        uv_close((uv_handle_t *)&sig_term, NULL);
        uv_close((uv_handle_t *)&sig_int, NULL);
        uv_close((uv_handle_t *)&sig_hup, NULL);
    }
    supervisor_close_handles(conn.sup);
    if (supervisor_lookups_abandoned(conn.sup) > 0)
        uv_stop(conn.loop); /* run() leaves without waiting for them */
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)s;
    if (conn.draining || signum == SIGINT) {
        LOG_I("exiting now");
        supervisor_stop(conn.sup);
        return;
    }
    conn.draining = 1;
    LOG_I("received SIGTERM: draining for up to %" PRIu64 "ms (send it again to exit at once)",
          conn.cfg->grace_period_ms);
    supervisor_drain(conn.sup, conn.cfg->grace_period_ms);
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct ingress *ing = NULL;
    struct ingress_ref *ref;
    char err[1024];

    (void)s;
    (void)signum;
    if (connector_config_reload_ingress(conn.cfg, &ing, err, sizeof(err)) < 0) {
        LOG_E("reload refused, keeping the running ingress rules: %s", err);
        return;
    }
    ref = mem_calloc(sizeof(*ref));
    if (ref == NULL) {
        ingress_free(ing);
        LOG_E("reload refused: out of memory");
        return;
    }
    ref->ing = ing;
    ref->refs = 1;
    connector_ingress_release(&conn, conn.ingress);
    conn.ingress = ref;
    LOG_I("ingress reloaded: %zu rules", ingress_rule_count(ing));
}

static int run(int argc, char **argv)
{
    struct tls_client_opts o;
    char err[1024];
    uv_loop_t loop;
    int rv;

    rv = connector_config_load(argc, argv, &conn.cfg, err, sizeof(err));
    if (rv == CONNECTOR_CONFIG_HELP) {
        connector_config_usage(stdout);
        return 0;
    }
    if (rv < 0) {
        fprintf(stderr, "culvert-connector: %s\n", err);
        return 2;
    }
    log_set_program("connector");
    log_set_level(conn.cfg->loglevel);
    connector_config_log_warnings(conn.cfg);
    limits_init(&conn.limits);
    limits_raise_nofile(); /* one origin connection per stream: up to 4 x 256 at once by default */
    conn.limits.heartbeat_ms = (uint32_t)conn.cfg->heartbeat_ms;
    conn.limits.grace_period_ms = (uint32_t)conn.cfg->grace_period_ms;
    conn.limits.backoff_base_ms = (uint32_t)conn.cfg->retry_base_ms;
    conn.limits.stream_idle_ms = (uint32_t)conn.cfg->stream_idle_ms;
    conn.ingress = mem_calloc(sizeof(*conn.ingress));
    if (conn.ingress == NULL)
        return 1;
    conn.ingress->ing = conn.cfg->ingress;
    conn.ingress->refs = 1;
    conn.cfg->ingress = NULL; /* owned by the reference now */

    memset(&o, 0, sizeof(o));
    /* PRODUCT.md "Token": a pinned CA (from the token) wins over edge-ca, which wins over the
     * system store. */
    o.pin_sha256 = conn.cfg->has_ca_sha256 ? conn.cfg->ca_sha256 : NULL;
    o.ca_file = o.pin_sha256 == NULL ? conn.cfg->edge_ca : NULL;
    o.system_store = o.pin_sha256 == NULL && o.ca_file == NULL;
    o.alpn = "culvert/1";
    o.min_version = TLS_MIN_1_3;
    conn.edge_ctx = tls_ctx_client_new(&o, err, sizeof(err));
    if (conn.edge_ctx == NULL) {
        fprintf(stderr, "culvert-connector: edge TLS: %s\n", err);
        return 2;
    }
    if (token_uuid_random(conn.connector_id) < 0) {
        fprintf(stderr, "culvert-connector: cannot generate a connector id\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    conn.loop = &loop;
    if (sock_loop_init(&conn.sl, &loop) < 0) {
        fprintf(stderr, "culvert-connector: cannot initialise the event loop\n");
        return 1;
    }
    conn.pools = origin_pools_new(&conn);
    if (conn.pools == NULL)
        return 1;
    if (metrics_start(&conn, err, sizeof(err)) < 0) {
        fprintf(stderr, "culvert-connector: metrics: %s\n", err);
        return 1;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_hup);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_start(&sig_int, on_term, SIGINT);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    {
        char id[TOKEN_UUID_TEXT_LEN + 1];

        token_uuid_format(conn.connector_id, id);
        LOG_I("culvert-connector %s starting: tunnel %s, connector %s, %u connections, %zu ingress "
              "rules",
              CULVERT_VERSION, conn.cfg->tunnel_id_text, id, conn.cfg->ha_connections,
              ingress_rule_count(conn.ingress->ing));
    }
    conn.sup = supervisor_start(&conn, on_sup_done, NULL);
    if (conn.sup == NULL)
        return 1;
    uv_run(&loop, UV_RUN_DEFAULT);
    if (supervisor_lookups_abandoned(conn.sup) > 0) {
        /* Told to exit at once while a DNS lookup hangs (a resolver that does not answer): the
         * loop would wait for the lookup's thread, so leave without the orderly teardown. */
        LOG_I("exiting without waiting for %u DNS lookup(s) still running",
              supervisor_lookups_abandoned(conn.sup));
        _exit(conn.fatal ? 1 : 0);
    }
    sock_loop_cleanup(conn.sl);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        LOG_W("event loop closed with handles still open");
    supervisor_free(conn.sup);
    connector_ingress_release(&conn, conn.ingress);
    origin_pools_free(conn.pools);
    conn.pools = NULL;
    SSL_CTX_free(conn.edge_ctx);
    rv = conn.fatal ? 1 : 0;
    connector_config_free(conn.cfg);
    return rv;
}

int main(int argc, char **argv)
{
    tls_global_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("culvert-connector %s (protocol culvert/1)\n", CULVERT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return run(argc - 2, argv + 2);
    if (strcmp(argv[1], "ingress") == 0) {
        if (argc >= 3 && strcmp(argv[2], "validate") == 0)
            return ingress_cmd_validate(argc - 3, argv + 3);
        if (argc >= 3 && strcmp(argv[2], "rule") == 0)
            return ingress_cmd_rule(argc - 3, argv + 3);
        if (argc >= 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
            printf("usage: culvert-connector ingress validate [--config FILE]\n"
                   "       culvert-connector ingress rule URL [--config FILE]\n");
            return 0;
        }
        fprintf(stderr, "usage: culvert-connector ingress validate|rule URL [--config FILE]\n");
        return 2;
    }
    if (strcmp(argv[1], "access") == 0)
        return access_main(argc - 2, argv + 2);
    fprintf(stderr, "culvert-connector: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
