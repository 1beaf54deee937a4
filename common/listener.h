/*
 * listener.h - a listening socket for a configured address (TCP host:port or unix path), with a
 * close that frees it. Used by the edge's public, tunnel and admin listeners and the connector's
 * metrics and access listeners. Start-up only resolves names (blocking getaddrinfo is acceptable
 * before the loop runs). One loop thread.
 */
#ifndef CV_LISTENER_H
#define CV_LISTENER_H

#include <uv.h>

#include "config.h"

struct listener;

typedef void (*listener_cb)(struct listener *l, uv_stream_t *server, void *arg);

/*
 * Binds and listens on |a| (TCP with SO_REUSEADDR, IPv6 literals v6-only; unix: a stale socket file
 * (nobody listening) is replaced, any other file or a live socket refused, then chmod to
 * |unix_mode| when not 0). Calls |cb| for each pending connection:
 * it accepts with sock_accept(). Returns the listener, or NULL with a reason in |err| naming the
 * address ("listen 0.0.0.0:443: address already in use").
 */
struct listener *listener_start(uv_loop_t *loop, const struct config_addr *a, unsigned unix_mode,
                                listener_cb cb, void *arg, char *err, size_t errlen);
/* Stops accepting and frees the listener once its handle is closed. */
void listener_stop(struct listener *l);
/* The bound port (for port 0 in tests), or 0 for unix sockets. */
int listener_port(const struct listener *l);
/* "host:port" or "unix:/path" as configured. */
const char *listener_name(const struct listener *l);

#endif
