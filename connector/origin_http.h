/*
 * origin_http.h - streams to HTTP origins (http://, https://, unix:, unix+tls:): the connector
 * rebuilds a clean HTTP/1.1 request from the stream's metadata, writes it and the body to the
 * origin, parses the origin's response strictly and sends it back as metadata and DATA. Origin
 * connections are kept alive in a pool per origin (keepAliveConnections idle at most, closed after
 * keepAliveTimeout). One loop thread.
 */
#ifndef CV_ORIGIN_HTTP_H
#define CV_ORIGIN_HTTP_H

#include <stddef.h>

struct connector;
struct ingress_ref;
struct ingress_rule;
struct mux_stream;
struct meta;
struct origin_pools;

/* Pools of idle origin connections. */
struct origin_pools *origin_pools_new(struct connector *c);
/* Closes every idle connection (shutdown); pools are freed once their connections are gone. */
void origin_pools_close(struct origin_pools *p);
void origin_pools_free(struct origin_pools *p);
/* An ingress is being freed: forget any cached rule (its address may come back for another). */
void origin_pools_forget(struct origin_pools *p);
/* Idle connections kept right now (metrics, tests). */
size_t origin_pools_idle(const struct origin_pools *p);

/*
 * Serves stream |s| (its request block |md|, |end| when it has no body) with |rule|'s HTTP service.
 * On success (0) takes the caller's reference on |ing| (released when the exchange ends); else
 * returns a frame_code to refuse the stream and the caller keeps its reference.
 */
int origin_http_start(struct connector *c, struct ingress_ref *ing, const struct ingress_rule *rule,
                      struct mux_stream *s, const struct meta *md, int end);

#endif
