/*
 * errpage.h - the small pages visitors see when the edge answers itself (PRODUCT.md section 2
 * "Errors"): HTML by default, JSON {"status","error","request_id"} when the request prefers
 * application/json. Every page names the request id. Pure; no I/O.
 */
#ifndef CV_ERRPAGE_H
#define CV_ERRPAGE_H

#include "buf.h"

/*
 * Appends a complete response (status line, headers, body) for |status| to |b|. |detail| is a short
 * sentence for the visitor (NULL: a default for the status); |json| selects the JSON body; |close|
 * adds `Connection: close`; |head_only| omits the body (HEAD requests); |extra| (may be NULL) is one
 * more header line without CRLF (e.g. "Location: https://..."). Returns 0 or CV_ENOMEM / CV_EFULL.
 */
int errpage_write(struct buf *b, int status, const char *detail, const char *request_id, int json,
                  int close, int head_only, const char *extra);

/* Returns 1 when an Accept header value prefers application/json over text/html: a higher weight
 * (q=, RFC 9110 §12.5.1, the most specific matching range giving it), or an equal one with
 * application/json listed first; else 0 (also for NULL). */
int errpage_wants_json(const char *accept);

/* The default visitor-facing sentence for |status|. */
const char *errpage_default_detail(int status);

#endif
