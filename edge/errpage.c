/*
 * errpage.c - visitor-facing error pages; see errpage.h.
 */
#include "errpage.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "http1.h"

const char *errpage_default_detail(int status)
{
    switch (status) {
    case 301:
    case 308:
        return "This site is served over HTTPS.";
    case 400:
        return "The request was malformed.";
    case 404:
        return "No site is configured for this hostname on this edge.";
    case 405:
        return "This method is not allowed here.";
    case 408:
        return "The request took too long to arrive.";
    case 414:
        return "The request URI is too long.";
    case 421:
        return "This request was sent to the wrong host for this connection.";
    case 426:
        return "This WebSocket version is not supported; use version 13.";
    case 429:
        return "Too many requests from your address; try again later.";
    case 431:
        return "The request headers are too large.";
    case 502:
        return "The tunnel for this site could not reach its origin.";
    case 503:
        return "The service is temporarily unavailable; try again later.";
    case 504:
        return "The origin did not answer in time.";
    case 505:
        return "This HTTP version is not supported.";
    case 508:
        return "This request looped back to the same edge.";
    default:
        return "The request could not be served.";
    }
}

int errpage_wants_json(const char *accept)
{
    const char *j;
    const char *h;

    if (accept == NULL)
        return 0;
    j = strcasestr(accept, "application/json");
    h = strcasestr(accept, "text/html");
    return j != NULL && (h == NULL || j < h);
}

/* Appends |s| with HTML's special characters escaped. */
static int append_html(struct buf *b, const char *s)
{
    int rv = 0;

    for (; *s != '\0' && rv == 0; s++) {
        switch (*s) {
        case '<':
            rv = buf_append(b, "&lt;", 4);
            break;
        case '>':
            rv = buf_append(b, "&gt;", 4);
            break;
        case '&':
            rv = buf_append(b, "&amp;", 5);
            break;
        case '"':
            rv = buf_append(b, "&quot;", 6);
            break;
        default:
            rv = buf_append(b, s, 1);
            break;
        }
    }
    return rv;
}

int errpage_write(struct buf *b, int status, const char *detail, const char *request_id, int json,
                  int close, int head_only, const char *extra)
{
    struct buf body;
    char line[512];
    int rv = 0;
    int n;

    if (detail == NULL)
        detail = errpage_default_detail(status);
    buf_init(&body, 8192);
    if (json) {
        /* detail and request ids are ours: plain ASCII without quotes or backslashes. */
        n = snprintf(line, sizeof(line), "{\"status\":%d,\"error\":\"%s\",\"request_id\":\"%s\"}\n",
                     status, detail, request_id);
        rv |= buf_append(&body, line, (size_t)n);
    } else {
        n = snprintf(line, sizeof(line),
                     "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%d %s</title></head>\n"
                     "<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\">\n"
                     "<h1>%d %s</h1>\n<p>",
                     status, http1_status_reason(status), status, http1_status_reason(status));
        rv |= buf_append(&body, line, (size_t)n);
        rv |= append_html(&body, detail);
        n = snprintf(line, sizeof(line),
                     "</p>\n<p><small>Request ID: %s &middot; culvert</small></p>\n</body></html>\n",
                     request_id);
        rv |= buf_append(&body, line, (size_t)n);
    }
    if (rv != 0) {
        buf_cleanup(&body);
        return CV_ENOMEM;
    }
    n = snprintf(line, sizeof(line),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                 "Culvert-Request-Id: %s\r\n%s%s%s",
                 status, http1_status_reason(status),
                 json ? "application/json" : "text/html; charset=utf-8", buf_len(&body), request_id,
                 close ? "Connection: close\r\n" : "", extra != NULL ? extra : "",
                 extra != NULL ? "\r\n" : "");
    rv |= buf_append(b, line, (size_t)n);
    if (status == 426)
        rv |= buf_append(b, "Sec-WebSocket-Version: 13\r\n", 27);
    rv |= buf_append(b, "\r\n", 2);
    if (!head_only)
        rv |= buf_append(b, body.pos, buf_len(&body));
    buf_cleanup(&body);
    return rv != 0 ? CV_ENOMEM : 0;
}
