/*
 * connector.h - the culvert-connector process: one libuv loop and the state its modules share.
 *
 * Modules: connector_config + ingress (configuration), supervisor (the ha-connections edge
 * connections, backoff, drain), origin_http (streams to HTTP(S) and unix-socket origins, keep-alive
 * pool), hello (the built-in hello_world origin), metrics (the loopback metrics and readiness
 * server). One loop thread; struct connector is created by main.c and lives for the process.
 */
#ifndef CV_CONNECTOR_H
#define CV_CONNECTOR_H

#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "limits.h"

struct connector_config;
struct ingress;
struct supervisor;
struct origin_pools;
struct metrics;
struct sock_loop;
struct mux;
struct mux_stream;
struct meta;

/* The ingress in force, reference-counted: a stream keeps the rules it started with across a
 * reload (PRODUCT.md section 4: SIGHUP does not drop established streams). */
struct ingress_ref {
    struct ingress *ing;
    unsigned refs;
};

struct connector {
    uv_loop_t *loop;
    struct sock_loop *sl;
    struct connector_config *cfg;
    struct ingress_ref *ingress;
    struct cv_limits limits;
    SSL_CTX *edge_ctx;         /* client context for the edge (pin, CA file or system store) */
    uint8_t connector_id[16];  /* REGISTER's Connector Id, one per process */
    struct supervisor *sup;
    struct origin_pools *pools;
    struct metrics *metrics;
    int draining;              /* SIGTERM received */
    int fatal;                 /* the edge rejected the token: exit 1 */
    uint64_t streams_total;
    uint32_t streams_active;
};

struct ingress_ref *connector_ingress_hold(struct connector *c);
void connector_ingress_release(struct connector *c, struct ingress_ref *r);

/*
 * A stream the edge opened on a registered connection: picks the ingress rule and starts the
 * service (origin_http, hello, http_status). Returns 0 when the stream is taken, or a frame_code to
 * refuse it (the mux resets it).
 */
int connector_dispatch(struct connector *c, struct mux_stream *s, const struct meta *md, int end);
/* Called by a service when its stream is over (for counters and drain). */
void connector_stream_done(struct connector *c);

#endif
