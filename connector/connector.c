/*
 * connector.c - what the connector does with each stream the edge opens: match the ingress rule
 * with the stream's host and path, and start the rule's service. Also the reference counts that
 * let a reloaded ingress replace the old one without disturbing streams in flight.
 *
 * Layers: supervisor.c calls connector_dispatch() from the mux's on_stream_open; below are
 * origin_http.c and hello.c. One loop thread.
 */
#include "connector.h"

#include <string.h>

#include "frame.h"
#include "hello.h"
#include "ingress.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "origin_http.h"
#include "origin_tcp.h"
#include "supervisor.h"

struct ingress_ref *connector_ingress_hold(struct connector *c)
{
    c->ingress->refs++;
    return c->ingress;
}

void connector_ingress_release(struct connector *c, struct ingress_ref *r)
{
    if (r == NULL || --r->refs > 0)
        return;
    origin_pools_forget(c->pools);
    ingress_free(r->ing);
    mem_free(r);
}

void connector_stream_done(struct connector *c)
{
    if (c->streams_active > 0)
        c->streams_active--;
    supervisor_poke(c->sup);
}

int connector_dispatch(struct connector *c, struct mux_stream *s, const struct meta *md, int end)
{
    const struct meta_field *host = meta_get(md, ":authority");
    const struct meta_field *path = meta_get(md, ":path");
    struct ingress_ref *ref;
    const struct ingress_rule *rule;
    int rv;

    if (c->draining)
        return CODE_REFUSED_STREAM;
    ref = connector_ingress_hold(c);
    rule = ingress_match(ref->ing, host->value, host->value_len, path != NULL ? path->value : "/",
                         path != NULL ? path->value_len : 1);
    if (rule == NULL) {
        /* Only possible when the last rule is not a catch-all, which validation forbids. */
        connector_ingress_release(c, ref);
        return CODE_NO_SERVICE;
    }
    LOG_D("stream=%u host=%.*s rule #%u -> %s", mux_stream_id(s), (int)host->value_len, host->value,
          rule->number, rule->service.text);
    c->streams_total++;
    c->streams_active++;
    if (md->type == META_REQUEST_TCP) {
        /* tcp streams (PROTOCOL.md §8.6) are served only by TCP services: an HTTP rule never
         * receives one. */
        rv = rule->service.kind == INGRESS_SVC_TCP ? origin_tcp_start(c, ref, rule, s, md, end)
                                                   : CODE_NO_SERVICE;
        if (rv == 0)
            return 0; /* the stream owns the reference */
        goto refuse;
    }
    switch (rule->service.kind) {
    case INGRESS_SVC_HTTP:
    case INGRESS_SVC_UNIX:
        rv = origin_http_start(c, ref, rule, s, md, end);
        if (rv == 0)
            return 0; /* the exchange owns the reference */
        break;
    case INGRESS_SVC_HELLO_WORLD:
        rv = hello_start(c, s, md, end);
        break;
    case INGRESS_SVC_HTTP_STATUS:
        rv = status_start(c, s, rule->service.status, end);
        break;
    case INGRESS_SVC_TCP:
        /* A WebSocket to a TCP service is terminated here (cloudflared does the same); a plain
         * HTTP request is not served: tcp:// is reached with `access tcp` or a WebSocket. */
        if (md->type == META_REQUEST_UPGRADE) {
            rv = origin_tcp_start(c, ref, rule, s, md, end);
            if (rv == 0)
                return 0; /* the stream owns the reference */
            break;
        }
        rv = CODE_NO_SERVICE;
        break;
    default:
        rv = CODE_NO_SERVICE;
        break;
    }
refuse:
    connector_ingress_release(c, ref);
    if (rv != 0) {
        c->streams_active--;
    }
    return rv;
}
