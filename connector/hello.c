/*
 * hello.c - the built-in origins; see hello.h.
 *
 * Both answer at once: the response (head, body, END_STREAM) is queued on the stream and the stream
 * is released; the mux finishes sending it, and tells the edge with RESET(NO_ERROR) if a request
 * body was still coming (PROTOCOL.md §7.5). Request body bytes that arrive before that are dropped
 * and credited.
 */
#include "hello.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "connector.h"
#include "err.h"
#include "frame.h"
#include "http1.h"
#include "log.h"
#include "mem.h"
#include "meta.h"
#include "mux.h"
#include "version.h"

static void field_text(const struct meta *md, const char *name, char *out, size_t n)
{
    const struct meta_field *f = meta_get(md, name);
    size_t k = 0;

    if (f != NULL) {
        for (uint16_t i = 0; i < f->value_len && k + 6 < n; i++) {
            char c = f->value[i];

            /* HTML-escape: the page echoes request data. */
            if (c == '<') {
                memcpy(out + k, "&lt;", 4);
                k += 4;
            } else if (c == '>') {
                memcpy(out + k, "&gt;", 4);
                k += 4;
            } else if (c == '&') {
                memcpy(out + k, "&amp;", 5);
                k += 5;
            } else if (c == '"') {
                memcpy(out + k, "&quot;", 6);
                k += 6;
            } else {
                out[k++] = c;
            }
        }
    }
    out[k] = '\0';
}

/* Queues a whole response and releases the stream. */
static int respond(struct connector *c, struct mux_stream *s, int status, const char *ctype,
                   const char *body, size_t body_len, int head_only)
{
    struct buf b;
    char num[32];
    int start;
    int rv;

    buf_init(&b, 8192);
    start = meta_begin(&b, META_RESPONSE);
    snprintf(num, sizeof(num), "%03d", status);
    rv = start < 0 ? start : meta_add_str(&b, ":status", num);
    if (rv == 0 && ctype != NULL)
        rv = meta_add_str(&b, "content-type", ctype);
    if (rv == 0 && status != 204 && status != 304 && !(status >= 100 && status < 200)) {
        snprintf(num, sizeof(num), "%zu", body_len);
        rv = meta_add_str(&b, "content-length", num);
    }
    if (rv == 0)
        rv = meta_add_str(&b, "server", "culvert-connector/" CULVERT_VERSION);
    if (rv == 0)
        rv = meta_end(&b, (size_t)start);
    if (rv == 0)
        rv = mux_stream_headers(s, b.pos, buf_len(&b), head_only || body_len == 0);
    buf_cleanup(&b);
    if (rv == 0 && !head_only && body_len > 0) {
        ssize_t k = mux_stream_write(s, (const uint8_t *)body, body_len, 1);

        if (k < 0 || (size_t)k != body_len)
            rv = CV_EFULL;
    }
    if (rv < 0)
        return CODE_INTERNAL_ERROR;
    mux_stream_dispatched(s);
    mux_stream_release(s);
    connector_stream_done(c);
    return 0;
}

int hello_start(struct connector *c, struct mux_stream *s, const struct meta *md, int end)
{
    char method[40];
    char path[1024];
    char host[300];
    char client[80];
    char ua[300];
    char page[4096];
    int n;

    (void)end;
    field_text(md, ":method", method, sizeof(method));
    field_text(md, ":path", path, sizeof(path));
    field_text(md, ":authority", host, sizeof(host));
    field_text(md, "culvert-connecting-ip", client, sizeof(client));
    field_text(md, "user-agent", ua, sizeof(ua));
    n = snprintf(page, sizeof(page),
                 "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Hello from Culvert</title>"
                 "</head>\n<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\n"
                 "<h1>Hello from Culvert</h1>\n"
                 "<p>This page was served by the built-in <code>hello_world</code> origin of "
                 "culvert-connector %s, through the tunnel.</p>\n"
                 "<ul>\n<li>Request: <code>%s %s</code></li>\n<li>Host: <code>%s</code></li>\n"
                 "<li>Your address: <code>%s</code></li>\n<li>User agent: <code>%s</code></li>\n"
                 "<li>Streams served by this connector: %" PRIu64 "</li>\n</ul>\n</body></html>\n",
                 CULVERT_VERSION, method, path, host, client, ua, c->streams_total);
    if (n < 0 || (size_t)n >= sizeof(page))
        n = (int)strlen(page);
    return respond(c, s, 200, "text/html; charset=utf-8", page, (size_t)n,
                   strcmp(method, "HEAD") == 0);
}

int status_start(struct connector *c, struct mux_stream *s, int status, int end)
{
    (void)end;
    return respond(c, s, status, NULL, NULL, 0, 0);
}
