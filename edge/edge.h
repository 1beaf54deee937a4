/*
 * edge.h - the culvert-edge process: one libuv loop and the state every edge module shares.
 *
 * Modules: edge_config (edge.yml), store (tunnels and routes in data_dir), certs (SNI certificates),
 * tunnel_listener + tunnel (connector connections and the registry), public (visitors' HTTP(S)),
 * admin (the management API), cli (the tunnel/route commands, a client of admin). Everything runs on
 * the loop thread; struct edge is created by main.c and lives for the process.
 */
#ifndef CV_EDGE_H
#define CV_EDGE_H

#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "limits.h"

struct edge_config;
struct store;
struct certs;
struct tunnel_registry;
struct admin;
struct public_side;
struct tunnel_listener;
struct tcp_ports;
struct sock_loop;

struct edge {
    uv_loop_t *loop;
    struct sock_loop *sl;
    const char *config_path;
    struct edge_config *cfg;       /* current config; replaced whole on SIGHUP */
    struct cv_limits limits;       /* cfg's limits over the defaults */
    uint32_t fd_public_cap;        /* public connections the open-file limit leaves room for */
    struct store *store;           /* tunnels and routes */
    struct certs *certs;           /* public certificates by SNI */
    struct tunnel_registry *reg;   /* live connectors */
    struct admin *admin;
    struct public_side *pub;
    struct tunnel_listener *tl;
    struct tcp_ports *tcp;         /* public TCP ports (tcp_ports:) */
    FILE *access_log;              /* NULL: off */
    int draining;                  /* SIGTERM received */
    uint64_t started_ms;
};

struct buf;

/* Builds a REQUEST_TCP block (PROTOCOL.md §8.6) for |host| and the visitor address |client| (may be
 * NULL) into |b|, initialised with capacity |cap|. Returns 0 or a negative code. */
int edge_tcp_block(struct buf *b, size_t cap, const char *host, const char *client);

/* Milliseconds since the epoch (wall clock) for RFC 3339 times. */
int64_t edge_wall_ms(void);
/* Formats |unix_ms| as RFC 3339 UTC ("2026-11-22T01:32:11Z") into |out|. */
void edge_rfc3339(int64_t unix_ms, char *out, size_t n);

#endif
