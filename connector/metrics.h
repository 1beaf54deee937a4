/*
 * metrics.h - the connector's loopback HTTP server (PRODUCT.md section 3 `metrics:`): /ready (200
 * when at least one tunnel connection is registered, else 503, with a JSON body like cloudflared's),
 * /healthcheck ("OK"), and /metrics (Prometheus text format). It is the only thing the connector
 * listens on. One loop thread.
 */
#ifndef CV_METRICS_H
#define CV_METRICS_H

#include <stddef.h>

struct connector;
struct metrics;

/* Binds the configured address, or by default the first free of 127.0.0.1:20241-20245 (a failure
 * there is logged, not fatal, as cloudflared does). Returns 0, or -1 with a reason in |err| when an
 * explicitly configured address cannot be bound. */
int metrics_start(struct connector *c, char *err, size_t errlen);
void metrics_stop(struct connector *c);

#endif
