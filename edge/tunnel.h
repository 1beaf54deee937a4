/*
 * tunnel.h - the registry of live connectors: tunnel -> connectors -> connections (each a mux over
 * TLS), heartbeats and RTT, and the choice of a connection for a new stream by the balance policy.
 *
 * tunnel_listener.c registers connections here once authenticated; public.c asks for a connection;
 * admin.c describes and disconnects. Runs on the loop thread.
 */
#ifndef CV_TUNNEL_H
#define CV_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "json.h"
#include "frame.h"
#include "mux.h"

struct edge;
struct tunnel_registry;
struct tunnel_conn;

enum balance_policy { BALANCE_NEAREST, BALANCE_ROUND_ROBIN, BALANCE_LEAST_STREAMS };

struct tunnel_registry *tunnel_registry_new(struct edge *e);
void tunnel_registry_free(struct tunnel_registry *r);

struct sock;

/*
 * tunnel_listener.c hands over an accepted, TLS-established tunnel connection (taken). The
 * registration deadline runs; on REGISTER the tunnel is authenticated against the store and the
 * connection joins its connector. Returns 0, or CV_ELIMIT (too many registrations pending: the caller
 * aborts the sock) / CV_ENOMEM.
 */
int tunnel_registry_adopt(struct tunnel_registry *r, struct sock *s);
/* Closes connections that are draining and have no stream left; with |force|, every connection. */
void tunnel_registry_close_idle(struct tunnel_registry *r, int force);

/* Number of connectors (processes) online for |tunnel_id|. */
size_t tunnel_registry_connector_count(const struct tunnel_registry *r, const uint8_t tunnel_id[16]);
/* Writes one JSON array value describing |tunnel_id|'s connectors into |w|: [{"id","version","region",
 * "connections":[{"id","index","edge","peer","rtt_ms","opened_at"}]}] (PRODUCT.md section 2). Errors
 * are recorded in the writer (json_w_finish reports them). */
void tunnel_registry_describe(const struct tunnel_registry *r, const uint8_t tunnel_id[16],
                              struct json_writer *w);
/* Disconnects every connection of |tunnel_id| (token rotated or tunnel deleted): GOAWAY AUTH_FAILED
 * with |reason|, then close. */
void tunnel_registry_kick(struct tunnel_registry *r, const uint8_t tunnel_id[16], const char *reason);
/* Edge shutdown: GOAWAY(NO_ERROR) on every connection. */
void tunnel_registry_drain(struct tunnel_registry *r);
/* Total connections and open streams (for logs, stats, drain). */
void tunnel_registry_counts(const struct tunnel_registry *r, size_t *conns, size_t *streams);

/*
 * Picks a connection of |tunnel_id| for a new stream by the configured policy. |avoid| (or NULL) is a
 * connection that just failed this stream (a retry): it is skipped, and so is every connection of
 * its connector unless no other connector can take the stream. |avoid| must still be registered
 * (callers pass it from within its own failure handling). Returns the mux to open the stream on, or
 * NULL when no connector is online (*|why| CV_ENOTFOUND) or all are saturated (CV_ELIMIT).
 */
struct mux *tunnel_registry_pick(struct tunnel_registry *r, const uint8_t tunnel_id[16],
                                 const struct mux *avoid, int *why);

#endif
