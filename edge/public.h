/*
 * public.h - the visitors' side of the edge: HTTPS (SNI certificates) and plain HTTP listeners,
 * HTTP/1.1 request parsing, routing by Host to a tunnel, one mux stream per request, and the response
 * streamed back with keep-alive and pipelining. One loop thread.
 */
#ifndef CV_PUBLIC_H
#define CV_PUBLIC_H

#include <stddef.h>

struct edge;

/* Starts the public.https and public.http listeners. Returns 0, or -1 with a reason in |err|. */
int public_start(struct edge *e, char *err, size_t errlen);
/* Stops accepting; idle keep-alive connections are closed, requests in flight finish. */
void public_stop_accepting(struct edge *e);
/* Closes every public connection at once (end of the grace period). */
void public_close_all(struct edge *e);
/* Frees the public side after the loop ended (public_close_all closed its handles). */
void public_free(struct edge *e);
/* Public connections open now (for drain). */
size_t public_connection_count(const struct edge *e);
/* The first HTTPS / HTTP listener's port (tests bind port 0), or 0. */
int public_https_port(const struct edge *e);
int public_http_port(const struct edge *e);

#endif
