/*
 * tunnel_listener.h - accepts connectors' TLS 1.3 connections (ALPN culvert/1) on tunnel.listen and
 * hands each established one to the tunnel registry, which authenticates its REGISTER. Unfinished
 * handshakes are capped and bounded in time (RELIABILITY.md 3.5). One loop thread.
 */
#ifndef CV_TUNNEL_LISTENER_H
#define CV_TUNNEL_LISTENER_H

#include <stddef.h>

struct edge;
struct tunnel_listener;

struct edge_config;

/* Checks that |cfg|'s tunnel certificate, key (and tunnel.ca) make a TLS context, without keeping
 * it: serve and serve --check refuse a configuration whose files cannot be used (exit 2). Returns 0,
 * or -1 with a reason in |err| naming where edge.yml names the file. */
int tunnel_listener_check(const struct edge_config *cfg, char *err, size_t errlen);
/* Starts listening on every tunnel.listen address. Returns 0, or -1 with a reason in |err|. */
int tunnel_listener_start(struct edge *e, char *err, size_t errlen);
/* Stops accepting (connections already accepted stay). */
void tunnel_listener_stop(struct edge *e);
/* Frees the listener state (after stop, at exit). */
void tunnel_listener_free(struct edge *e);
/* Reloads the tunnel certificate for new connections. Returns 0, or -1 with a reason. */
int tunnel_listener_reload(struct edge *e, char *err, size_t errlen);
/* The first listener's port (tests bind port 0). */
int tunnel_listener_port(const struct edge *e);

#endif
