/*
 * main.c - culvert-edge: command line, `serve` (the loop, signals: HUP reloads, TERM drains), and the
 * tunnel/route commands (cli.c, a client of the admin API).
 *
 * Exit codes (PRODUCT.md section 2): 0 success, 2 usage or configuration error, 1 anything else.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "admin.h"
#include "certs.h"
#include "cli.h"
#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "log.h"
#include "tls.h"
#include "mem.h"
#include "public.h"
#include "sock.h"
#include "store.h"
#include "tcp_ports.h"
#include "tunnel.h"
#include "tunnel_listener.h"
#include "version.h"

#define DEFAULT_CONFIG "/etc/culvert/edge.yml"

static struct edge edge;
static uv_signal_t sig_term;
static uv_signal_t sig_int;
static uv_signal_t sig_hup;
static uv_timer_t drain_timer;
static uint64_t drain_deadline;
static int exit_code;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: culvert-edge serve [--config FILE] [--check]\n"
            "       culvert-edge tunnel create NAME | list | info NAME | delete NAME | rotate-token NAME\n"
            "       culvert-edge route add HOSTNAME TUNNEL | delete HOSTNAME | list\n"
            "       culvert-edge --version | --help\n"
            "\n"
            "serve runs the edge: public HTTPS/HTTP listeners, the tunnel listener for connectors and\n"
            "the admin API. The tunnel and route commands talk to a running edge's admin API\n"
            "(--admin URL, --admin-token-file F, or --config F); see `culvert-edge tunnel --help`.\n"
            "Default config: " DEFAULT_CONFIG "\n");
}

static void serve_usage(FILE *f)
{
    fprintf(f, "usage: culvert-edge serve [--config FILE] [--check] [--loglevel LEVEL]\n"
               "  --config FILE     edge configuration (default " DEFAULT_CONFIG ")\n"
               "  --check           validate the configuration and certificates, print \"configuration OK\"\n"
               "  --loglevel LEVEL  error, warn, info (default), debug or trace\n");
}

/* ---- shutdown ------------------------------------------------------------------------------- */

/* A handle still open at exit is a bug in its owner: name it, then close it. */
static void report_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    LOG_W("exit: a %s handle was left open", uv_handle_type_name(uv_handle_get_type(h)));
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void stop_loop(int code)
{
    exit_code = code;
    admin_stop(edge.admin);
    edge.admin = NULL;
    public_stop_accepting(&edge);
    public_close_all(&edge);
    tcp_ports_stop_accepting(&edge);
    tcp_ports_close_all(&edge);
    tunnel_listener_stop(&edge);
    tunnel_registry_close_idle(edge.reg, 1);
    uv_signal_stop(&sig_term);
    uv_signal_stop(&sig_int);
    uv_signal_stop(&sig_hup);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    uv_close((uv_handle_t *)&sig_hup, NULL);
    if (!uv_is_closing((uv_handle_t *)&drain_timer))
        uv_close((uv_handle_t *)&drain_timer, NULL);
}

static void on_drain_tick(uv_timer_t *t)
{
    size_t conns = 0;
    size_t streams = 0;

    tunnel_registry_close_idle(edge.reg, 0);
    tunnel_registry_counts(edge.reg, &conns, &streams);
    if (public_connection_count(&edge) == 0 && tcp_ports_connection_count(&edge) == 0 && streams == 0) {
        LOG_I("edge drained: exiting");
        uv_timer_stop(t);
        stop_loop(0);
        return;
    }
    if (uv_now(edge.loop) >= drain_deadline) {
        LOG_W("edge grace period over: closing %zu public connections and %zu streams",
              public_connection_count(&edge), streams);
        uv_timer_stop(t);
        stop_loop(0);
    }
}

static void start_drain(void)
{
    LOG_I("edge received SIGTERM: draining for up to %ums (send it again to exit at once)",
          edge.limits.grace_period_ms);
    edge.draining = 1;
    admin_stop(edge.admin);
    edge.admin = NULL;
    public_stop_accepting(&edge);
    tcp_ports_stop_accepting(&edge);
    tunnel_listener_stop(&edge);
    tunnel_registry_drain(edge.reg);
    drain_deadline = uv_now(edge.loop) + edge.limits.grace_period_ms;
    uv_timer_start(&drain_timer, on_drain_tick, 0, 100);
}

static void on_term(uv_signal_t *s, int signum)
{
    (void)s;
    if (edge.draining || signum == SIGINT) {
        LOG_I("edge exiting now");
        stop_loop(0);
        return;
    }
    start_drain();
}

/* ---- reload --------------------------------------------------------------------------------- */

/* Takes |cfg|'s limits, with the public connection cap kept below the open-file limit: past it,
 * accept() would fail for tunnel connections and the admin API too (RELIABILITY.md §1.4). */
static void apply_limits(const struct edge_config *cfg)
{
    edge.limits = cfg->limits;
    if (edge.fd_public_cap != 0 && edge.limits.max_connections > edge.fd_public_cap) {
        LOG_W("open-file limit leaves room for %u public connections: max_connections %u lowered to %u "
              "(raise the limit, e.g. LimitNOFILE= in the unit, to allow more)",
              edge.fd_public_cap, edge.limits.max_connections, edge.fd_public_cap);
        edge.limits.max_connections = edge.fd_public_cap;
    }
}

static void on_hup(uv_signal_t *s, int signum)
{
    struct edge_config *cfg = NULL;
    struct certs *certs;
    char err[1024];

    (void)s;
    (void)signum;
    if (edge.draining) {
        /* A reload would open the tcp_ports listeners the drain closed. */
        LOG_W("reload ignored: the edge is draining (SIGTERM)");
        return;
    }
    if (edge_config_load(edge.config_path, &cfg, err, sizeof(err)) < 0) {
        LOG_E("reload refused, keeping the running configuration: %s", err);
        return;
    }
    certs = certs_load(cfg, err, sizeof(err));
    if (certs == NULL) {
        LOG_E("reload refused, keeping the running configuration: %s", err);
        edge_config_free(cfg);
        return;
    }
    /* An unusable tunnel.cert or tunnel.key fails serve --check: the whole file is refused, not
     * applied without its tunnel certificate. */
    if (tunnel_listener_check(cfg, err, sizeof(err)) < 0) {
        LOG_E("reload refused, keeping the running configuration: %s", err);
        certs_free(certs);
        edge_config_free(cfg);
        return;
    }
    /* Everything loaded: swap. Listening addresses and data_dir need a restart. */
    if (strcmp(cfg->data_dir, edge.cfg->data_dir) != 0)
        LOG_W("reload: data_dir changed; it applies after a restart");
    {
        struct edge_config *old = edge.cfg;
        struct certs *old_certs = edge.certs;

        edge.cfg = cfg;
        apply_limits(cfg);
        edge.certs = certs;
        if (tunnel_listener_reload(&edge, err, sizeof(err)) < 0)
            LOG_W("reload: tunnel certificate not changed: %s", err);
        if (tcp_ports_reload(&edge, err, sizeof(err)) < 0)
            LOG_W("reload: a tcp port could not be opened: %s", err);
        certs_free(old_certs);
        edge_config_free(old);
    }
    LOG_I("configuration reloaded from %s (%zu certificate names)", edge.config_path,
          certs_name_count(edge.certs));
}

/* ---- serve ---------------------------------------------------------------------------------- */

static int open_access_log(void)
{
    const char *path = edge.cfg->access_log_path;

    if (path == NULL)
        return 0;
    if (strcmp(path, "-") == 0) {
        edge.access_log = stderr;
        return 0;
    }
    edge.access_log = fopen(path, "a");
    if (edge.access_log == NULL) {
        fprintf(stderr, "culvert-edge: access log %s: %s (create its directory, or set "
                        "access_log.path in %s, \"-\" for stderr)\n", path, strerror(errno),
                edge.config_path);
        return -1;
    }
    setvbuf(edge.access_log, NULL, _IOLBF, 0);
    return 0;
}

/* serve --check: can the access log be opened for appending and data_dir be created and written?
 * What `serve` needs from the file system besides the certificates (nginx -t opens its logs too).
 * What the check creates is removed again. 0, or -1 with |err|. */
static int check_paths(const struct edge_config *cfg, const char *file, char *err, size_t errlen)
{
    const char *log = cfg->access_log_path;
    char why[512];
    FILE *f;

    if (log != NULL && strcmp(log, "-") != 0) {
        bool existed = access(log, F_OK) == 0;

        f = fopen(log, "a");
        if (f == NULL) {
            snprintf(err, errlen, "%s: access_log.path %s: %s (create its directory, or set "
                                  "access_log.path, \"-\" for stderr)", file, log,
                     strerror(errno));
            return -1;
        }
        fclose(f);
        if (!existed)
            unlink(log); /* a check run as root leaves no file the service's user cannot open */
    }
    if (store_check_dir(cfg->data_dir, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: data_dir %s", file, why);
        return -1;
    }
    return 0;
}

static int serve(int argc, char **argv)
{
    const char *config = DEFAULT_CONFIG;
    int check = 0;
    char err[1024];
    uv_loop_t loop;
    int rv;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = 1;
        } else if ((strcmp(argv[i], "--loglevel") == 0 && i + 1 < argc) ||
                   strncmp(argv[i], "--loglevel=", 11) == 0) {
            const char *v = argv[i][10] == '=' ? argv[i] + 11 : argv[++i];
            enum log_level lv;

            if (log_parse_level(v, &lv) < 0) {
                fprintf(stderr, "culvert-edge serve: --loglevel: \"%s\" is not one of error, warn, "
                                "info, debug, trace\n", v);
                return 2;
            }
            log_set_level(lv);
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            serve_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "culvert-edge serve: unknown argument %s\n", argv[i]);
            serve_usage(stderr);
            return 2;
        }
    }
    log_set_program("edge");
    memset(&edge, 0, sizeof(edge));
    edge.config_path = config;
    if (edge_config_load(config, &edge.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "culvert-edge: %s\n", err);
        return 2;
    }
    edge.fd_public_cap = limits_public_fd_cap(limits_raise_nofile());
    apply_limits(edge.cfg);
    edge.certs = certs_load(edge.cfg, err, sizeof(err));
    if (edge.certs == NULL || tunnel_listener_check(edge.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "culvert-edge: %s\n", err);
        certs_free(edge.certs);
        edge_config_free(edge.cfg);
        return 2;
    }
    if (check && check_paths(edge.cfg, config, err, sizeof(err)) < 0) {
        fprintf(stderr, "culvert-edge: %s\n", err);
        certs_free(edge.certs);
        edge_config_free(edge.cfg);
        return 2;
    }
    if (check) {
        printf("configuration OK\n");
        certs_free(edge.certs);
        edge_config_free(edge.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    if (open_access_log() < 0)
        return 1;
    rv = store_open(edge.cfg->data_dir, &edge.store, err, sizeof(err));
    if (rv < 0) {
        fprintf(stderr, "culvert-edge: %s\n", err);
        if (rv == CV_EPARSE)
            fprintf(stderr, "culvert-edge: not starting, so that no tunnel or route is dropped: "
                            "repair the file or restore it from a backup\n");
        return 1;
    }
    uv_loop_init(&loop);
    edge.loop = &loop;
    edge.started_ms = (uint64_t)edge_wall_ms();
    if (sock_loop_init(&edge.sl, &loop) < 0) {
        fprintf(stderr, "culvert-edge: cannot initialise the event loop\n");
        return 1;
    }
    edge.reg = tunnel_registry_new(&edge);
    if (edge.reg == NULL) {
        fprintf(stderr, "culvert-edge: out of memory\n");
        return 1;
    }
    uv_signal_init(&loop, &sig_term);
    uv_signal_init(&loop, &sig_int);
    uv_signal_init(&loop, &sig_hup);
    uv_timer_init(&loop, &drain_timer);
    uv_signal_start(&sig_term, on_term, SIGTERM);
    uv_signal_start(&sig_int, on_term, SIGINT);
    uv_signal_start(&sig_hup, on_hup, SIGHUP);
    if (tunnel_listener_start(&edge, err, sizeof(err)) < 0 || public_start(&edge, err, sizeof(err)) < 0 ||
        tcp_ports_start(&edge, err, sizeof(err)) < 0 || admin_start(&edge, err, sizeof(err)) < 0) {
        fprintf(stderr, "culvert-edge: %s\n", err);
        stop_loop(1);
    } else {
        LOG_I("culvert-edge %s serving (region %s, data %s, %zu tunnels, %zu certificate names)",
              CULVERT_VERSION, edge.cfg->region, edge.cfg->data_dir, store_tunnel_count(edge.store),
              certs_name_count(edge.certs));
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Every owner closed its handles; the per-loop sock state goes last. */
    sock_loop_cleanup(edge.sl);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, report_walk, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
    tunnel_registry_free(edge.reg);
    tunnel_listener_free(&edge);
    public_free(&edge);
    tcp_ports_free(&edge);
    store_free(edge.store);
    certs_free(edge.certs);
    edge_config_free(edge.cfg);
    if (edge.access_log != NULL && edge.access_log != stderr)
        fclose(edge.access_log);
    return exit_code;
}

int main(int argc, char **argv)
{
    tls_global_init();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("culvert-edge %s (protocol culvert/1)\n", CULVERT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "serve") == 0)
        return serve(argc - 2, argv + 2);
    if (strcmp(argv[1], "tunnel") == 0 || strcmp(argv[1], "route") == 0)
        return cli_main(argc - 1, argv + 1);
    fprintf(stderr, "culvert-edge: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
