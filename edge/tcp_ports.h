/*
 * tcp_ports.h - public TCP ports on the edge (edge.yml `tcp_ports:`), for visitors without the access
 * client: each accepted connection becomes a REQUEST_TCP stream (PROTOCOL.md §8.6) to a connector of
 * the configured tunnel, whose ingress rule for the configured hostname names the target. Until the
 * tunnel exists and has a connector, connections are accepted, logged and closed at once.
 * One loop thread.
 */
#ifndef CV_TCP_PORTS_H
#define CV_TCP_PORTS_H

#include <stddef.h>

struct edge;

/* Starts listening on every tcp_ports entry. Returns 0, or -1 with a reason in |err|. */
int tcp_ports_start(struct edge *e, char *err, size_t errlen);
/* After a reload: keeps ports whose address is unchanged (their tunnel and hostname follow the new
 * config), stops removed ones, starts new ones. Returns 0, or -1 with a reason (kept running). */
int tcp_ports_reload(struct edge *e, char *err, size_t errlen);
/* Stops accepting; connections in progress continue. */
void tcp_ports_stop_accepting(struct edge *e);
/* Closes every connection at once (end of the grace period). */
void tcp_ports_close_all(struct edge *e);
/* Connections open now. */
size_t tcp_ports_connection_count(const struct edge *e);
/* Frees everything after the loop ended. */
void tcp_ports_free(struct edge *e);

#endif
