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

/* RFC 9110 §12.4.2 qvalue: "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")], in thousandths; -1 if invalid. */
static int parse_qvalue(const char *p, size_t n)
{
    int q;
    int scale = 100;

    if (n == 0 || (p[0] != '0' && p[0] != '1'))
        return -1;
    q = (p[0] - '0') * 1000;
    if (n == 1)
        return q;
    if (p[1] != '.' || n > 5)
        return -1;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        q += (p[i] - '0') * scale;
        scale /= 10;
    }
    return q <= 1000 ? q : -1;
}

/* How specifically the media range |r| (|n| bytes) names |type| / |sub|: 3 exactly, 2 as the
 * type with any subtype, 1 as any type, 0 not at all. */
static int range_match(const char *r, size_t n, const char *type, const char *sub)
{
    size_t tl = strlen(type);
    size_t sl = strlen(sub);

    if (n == 3 && memcmp(r, "*/*", 3) == 0)
        return 1;
    if (n < tl + 2 || strncasecmp(r, type, tl) != 0 || r[tl] != '/')
        return 0;
    if (n == tl + 2 && r[tl + 1] == '*')
        return 2;
    return n == tl + 1 + sl && strncasecmp(r + tl + 1, sub, sl) == 0 ? 3 : 0;
}

struct pref {
    int spec; /* specificity of the range that set q */
    int q;    /* thousandths */
    int pos;  /* index of the exact range in the list, or -1 */
};

static void pref_update(struct pref *pr, int spec, int q, int pos)
{
    if (spec == 0)
        return;
    if (spec > pr->spec || (spec == pr->spec && q > pr->q)) {
        pr->spec = spec;
        pr->q = q;
    }
    if (spec == 3 && pr->pos < 0)
        pr->pos = pos;
}

int errpage_wants_json(const char *accept)
{
    struct pref json = {0, 0, -1};
    struct pref html = {0, 0, -1};
    const char *p = accept;
    int pos = 0;

    if (accept == NULL)
        return 0;
    /* RFC 9110 §12.5.1: each media range with its weight; the most specific range that matches a
     * type gives its weight. JSON wins on a higher weight, or on an equal one when application/json
     * itself is listed before text/html. */
    while (*p != '\0') {
        const char *e = p;
        const char *r;
        const char *re;
        int q = 1000;

        while (*e != '\0' && *e != ',')
            e++;
        r = p;
        while (r < e && (*r == ' ' || *r == '\t'))
            r++;
        re = r;
        while (re < e && *re != ';' && *re != ' ' && *re != '\t')
            re++;
        for (const char *a = re; a < e; a++) {
            const char *v;
            const char *ve;

            if (*a != ';')
                continue;
            v = a + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            if (v + 1 < e && (*v == 'q' || *v == 'Q') && v[1] == '=') {
                v += 2;
                ve = v;
                while (ve < e && *ve != ';' && *ve != ' ' && *ve != '\t')
                    ve++;
                q = parse_qvalue(v, (size_t)(ve - v));
                if (q < 0)
                    q = 0; /* an invalid weight: the range is not taken as acceptable */
                break;
            }
        }
        pref_update(&json, range_match(r, (size_t)(re - r), "application", "json"), q, pos);
        pref_update(&html, range_match(r, (size_t)(re - r), "text", "html"), q, pos);
        pos++;
        p = *e == ',' ? e + 1 : e;
    }
    if (json.q == 0 || json.q < html.q)
        return 0;
    if (json.q > html.q)
        return 1;
    return json.pos >= 0 && (html.pos < 0 || json.pos < html.pos);
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
