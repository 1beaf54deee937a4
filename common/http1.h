/*
 * http1.h - HTTP/1.1 messages: a streaming, sans-I/O parser (llhttp 8.1.0 behind a strict byte
 * pre-check), the request and response checks of RELIABILITY.md §5.4, head serialization, chunked
 * framing, hop-by-hop classification and the WebSocket accept key.
 *
 * Who uses it. The edge parses visitors' requests (HTTP1_REQUEST) and answers with
 * http1_write_response_head(); the connector parses origins' responses (HTTP1_RESPONSE) and writes
 * requests with http1_write_request_head(). Below: llhttp (Debian's node-llhttp 8.1.0, built into
 * build/libllhttp.a) with every lenient flag off, and OpenSSL for SHA-1. One loop thread; no I/O.
 *
 * Why a pre-check. llhttp 8.1.0 accepts eight inputs that must be rejected (RELIABILITY.md §0
 * finding 1, §5.2): a bare CR inside a header value that creates a header (CVE-2023-30589),
 * `\r\n\rX` ending a head, obs-fold, empty or space-containing header names, `1\rX` as a chunk-size
 * line, Content-Length in trailers, and data after `Connection: close`. Every byte of a start line,
 * of a header or trailer section, of a chunk-size line and of the CRLF after chunk data is checked
 * here (§5.3) before llhttp sees it: a CR must be followed by LF, a bare LF is an error, a field line
 * may not start with SP/HTAB, a field name is 1*tchar directly followed by ':', a field value holds
 * no control character but HTAB, start lines follow RFC 9112 exactly (one SP between elements,
 * "HTTP/" DIGIT "." DIGIT, an ASCII-visible request target, a three-digit status). llhttp then only
 * sees bytes that also a current llhttp would read the same way. Body bytes (Content-Length, chunk
 * data, close-delimited) are never scanned.
 *
 * Feeding. http1_feed() parses what it can and reports events through hooks: on_head (the parsed
 * head), on_body (de-chunked body bytes, borrowed for the call), on_message_complete. Trailers are
 * checked and counted against the header limits, then dropped: they are never merged into the head.
 * A hook returns 0 to go on, HTTP1_PAUSE to stop after this event, or a negative code to abort.
 * After a pause http1_feed() consumes nothing more until http1_resume(); a message completion that
 * falls in a paused window is delivered by the next http1_feed() call after the resume (call it
 * with n == 0 if no input is buffered). After a message without keep-alive (`Connection: close`,
 * HTTP/1.0 without keep-alive, a close-delimited response) the parser is DONE and consumes nothing
 * more: the caller stops reading. After an upgrade (an accepted Upgrade request, a 101 response) it
 * is UPGRADED: the unconsumed bytes belong to the caller's next protocol.
 *
 * Heads. Every string of a head (method, target, path, authority, host, reason, field names and
 * values) is NUL-terminated and lives in one per-message arena, grown on demand up to
 * max_url + max_header_bytes + 2 KiB. A head stays valid until the parser receives the first byte of
 * the next message, or http1_parser_trim(), or http1_parser_free(). Field values have their
 * surrounding whitespace (OWS) removed.
 *
 * Errors. http1_feed() and http1_finish() return CV_EPARSE (malformed), CV_ELIMIT (a limit of
 * RELIABILITY.md §10), CV_ENOMEM, or a hook's negative code; the parser is then in HTTP1_S_ERROR,
 * and http1_error_status() gives the status to answer. Request parsers: 400, 405 (CONNECT, TRACE),
 * 414 (target over max_url), 426 (Sec-WebSocket-Version other than 13; answer with
 * `Sec-WebSocket-Version: 13`), 431 (field section over max_header_bytes, more than
 * max_header_fields fields, a name over HTTP1_MAX_NAME or a value over HTTP1_MAX_VALUE), 505 (an
 * HTTP version other than 1.0 and 1.1), 500 (no memory, or a hook's own error). Response parsers:
 * 502 for every error. Every error means: answer (or not, for a truncated message), then close.
 *
 * Request checks (at the end of the head, in this order; §5.4, RFC 9112 §3, §6):
 *  - Content-Length: at most one field, 1*DIGIT, at most 2^63-1 (no sign, hex, comma, empty);
 *    Transfer-Encoding: at most one field, exactly `chunked` (any case); not both; no
 *    Transfer-Encoding in HTTP/1.0. -> 400
 *  - CONNECT and TRACE -> 405.
 *  - HTTP/1.1 without Host, or more than one Host -> 400. The Host value is returned raw: its
 *    grammar is hostname.h's job.
 *  - Target: origin-form ("/..."); or absolute-form "http(s)://authority/..." whose authority has no
 *    userinfo and equals Host (ASCII case-insensitive; the path is returned separately); anything
 *    else, including `OPTIONS *` (asterisk-form: nothing server-wide is answered by the edge, and it
 *    cannot be routed to one origin) and a '#' anywhere -> 400.
 *  - HTTP2-Settings present, more than one Upgrade field, or an Upgrade other than exactly one
 *    `websocket` or `culvert-tcp` token (h2c smuggling) -> 400. Upgrade in HTTP/1.0 -> 400.
 *  - An upgrade (Upgrade with a `Connection: upgrade` token) with a body (Content-Length > 0 or
 *    Transfer-Encoding) -> 400. A WebSocket upgrade: method GET, exactly one Sec-WebSocket-Key that
 *    is 16 bytes in base64, exactly one Sec-WebSocket-Version -> else 400; a version other than "13"
 *    -> 426.
 *  - More than HTTP1_MAX_CONN_TOKENS Connection tokens, or a token that is not a tchar run -> 400.
 *
 * Limits (struct cv_limits): max_url bytes of request target (414); max_header_bytes bytes of field
 * section, i.e. every byte after the start line's CRLF up to and including the blank line (431);
 * max_header_fields field lines (431); trailers count against the same two budgets as the head of
 * their message; max_chunk_ext bytes of chunk extensions per message, counted from each ';' (or
 * whitespace) after a chunk size to its CR (400). Leading empty lines before a request line are
 * skipped (RFC 9112 §2.2) and count against max_header_bytes.
 *
 * Known limitation of llhttp 8.1.0 (measured): a chunk-size line with a second extension after one
 * that has a value (`1;a=b;c=d`) is refused ("Invalid character in chunk size"), so such a request
 * gets 400. Clients practically never send chunk extensions.
 *
 * Response checks: HTTP/1.0 or 1.1; status 100..599; the same Content-Length and Transfer-Encoding
 * rules (Transfer-Encoding other than exactly `chunked` is refused, not read until close); no body
 * for 1xx, 204, 304 and answers to HEAD (http1_expect_head_response()), whatever the framing headers
 * say; 1xx or 204 carrying a non-zero Content-Length or Transfer-Encoding clears keep-alive for the
 * exchange; a 101 always ends the message stream (UPGRADED); no Content-Length nor
 * Transfer-Encoding means the body runs until the connection closes (http1_finish()).
 */
#ifndef CV_HTTP1_H
#define CV_HTTP1_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "limits.h"

#define HTTP1_MAX_NAME 256          /* field name bytes (RELIABILITY.md §5.1) -> 431 */
#define HTTP1_MAX_VALUE (16 * 1024) /* field value bytes (§5.1) -> 431 */
#define HTTP1_MAX_METHOD 32         /* method bytes -> 400 */
#define HTTP1_MAX_REASON 512        /* reason phrase bytes (responses) */
#define HTTP1_MAX_CONN_TOKENS 16    /* Connection tokens per message -> 400 */
#define HTTP1_WS_ACCEPT_LEN 28      /* base64 of a SHA-1 digest */

/* RFC 9110 §5.6.2: http1_tchar[c] is 1 when |c| is a tchar (token character), else 0. */
extern const uint8_t http1_tchar[256];

/* Hook return value: stop after this event (see http1_resume). */
#define HTTP1_PAUSE 1

enum http1_kind {
    HTTP1_REQUEST,  /* the edge's public side */
    HTTP1_RESPONSE, /* the connector's origin side */
};

enum http1_state {
    HTTP1_S_IDLE,     /* between messages: no byte of the next message received */
    HTTP1_S_HEAD,     /* reading a head (start line and fields) */
    HTTP1_S_BODY,     /* reading a body (or trailers) */
    HTTP1_S_UPGRADED, /* an upgrade completed: unconsumed bytes belong to the caller */
    HTTP1_S_DONE,     /* a message without keep-alive completed: read no more */
    HTTP1_S_ERROR,    /* see http1_error_status(); close the connection */
    HTTP1_S_COUNT
};

enum http1_upgrade {
    HTTP1_UP_NONE,
    HTTP1_UP_WEBSOCKET,   /* Upgrade: websocket */
    HTTP1_UP_CULVERT_TCP, /* Upgrade: culvert-tcp, the edge's own raw-TCP stream (TCP hostnames) */
    HTTP1_UP_OTHER,       /* responses only: a 101 naming another protocol (or none) */
};

/* struct http1_head.flags */
#define HTTP1_F_KEEP_ALIVE 0x01      /* another message may follow (RFC 9112 §9.3) */
#define HTTP1_F_CHUNKED 0x02         /* Transfer-Encoding: chunked */
#define HTTP1_F_UPGRADE 0x04         /* request: an accepted upgrade; response: a 101 */
#define HTTP1_F_EXPECT_CONTINUE 0x08 /* request: Expect: 100-continue */
#define HTTP1_F_ABSOLUTE_FORM 0x10   /* request: the target was absolute-form */
#define HTTP1_F_NO_BODY 0x20         /* the message has no body (on_message_complete follows) */
#define HTTP1_F_EOF_BODY 0x40        /* response: the body ends when the connection closes */
#define HTTP1_F_INTERIM 0x80         /* response: 1xx other than 101; the final head follows */

/* A borrowed byte string, not NUL-terminated. */
struct http1_slice {
    const char *p;
    size_t n;
};

struct http1_field {
    const char *name; /* NUL-terminated, case as received */
    const char *value; /* NUL-terminated, OWS trimmed */
    size_t name_len;
    size_t value_len;
};

/* A parsed head. All pointers point into the parser's arena (see the file comment). */
struct http1_head {
    int version_minor; /* HTTP/1.<version_minor>: 0 or 1 */

    /* Requests. */
    const char *method;    /* a token, as received (case-sensitive: "GET") */
    size_t method_len;
    const char *target;    /* the request-target as received */
    size_t target_len;
    const char *path;      /* origin-form: the target, or for absolute-form what follows the
                            * authority ("/" prepended when it was empty or began with '?') */
    size_t path_len;
    const char *authority; /* absolute-form's authority (equal to host), else NULL */
    size_t authority_len;
    const char *host;      /* the Host value, or NULL (HTTP/1.0 without Host) */
    size_t host_len;

    /* Responses. */
    int status;            /* 100..599 */
    const char *reason;    /* reason phrase, possibly "" */
    size_t reason_len;

    /* Both. */
    const struct http1_field *fields; /* every field in order (Host, framing fields included) */
    size_t nfields;
    int64_t content_length;           /* the Content-Length value, or -1 */
    unsigned flags;                   /* HTTP1_F_* */
    enum http1_upgrade upgrade;       /* with HTTP1_F_UPGRADE: which protocol */
    const struct http1_slice *conn_tokens; /* Connection tokens, in order, as received */
    size_t nconn_tokens;
};

struct http1_parser;

struct http1_hooks {
    /* A head was parsed and passed every check. Requests: one call per message. Responses: one call
     * per interim 1xx (HTTP1_F_INTERIM; no on_message_complete follows it) and one for the final
     * head. |h| is borrowed (see "Heads"). */
    int (*on_head)(struct http1_parser *p, const struct http1_head *h, void *arg);
    /* |n| > 0 body bytes (de-chunked), borrowed for the call. May be NULL (bytes are dropped). */
    int (*on_body)(struct http1_parser *p, const uint8_t *data, size_t n, void *arg);
    /* The message ended (after its body, or after the head for HTTP1_F_NO_BODY and upgrades). */
    int (*on_message_complete)(struct http1_parser *p, void *arg);
};

/*
 * Returns a new parser for |kind| with |lim|'s max_url, max_header_bytes, max_header_fields and
 * max_chunk_ext (copied), or NULL when out of memory. Borrows |hooks| (must outlive the parser) and
 * passes |arg| to them. Allocates the arena lazily, at the first byte.
 */
struct http1_parser *http1_parser_new(enum http1_kind kind, const struct cv_limits *lim,
                                      const struct http1_hooks *hooks, void *arg);
/* Frees |p| and its arena (NULL is fine). Never calls hooks. */
void http1_parser_free(struct http1_parser *p);

/*
 * Parses up to |n| bytes of |data| (borrowed), calling hooks. Returns the number of bytes consumed,
 * or a negative code (see "Errors"; the same code again on every later call). Fewer than |n| bytes
 * are consumed only when a hook paused the parser or the parser became UPGRADED or DONE: keep the
 * rest (for the next call, the next protocol, or nothing). |n| == 0 only delivers what a pause held
 * back.
 */
ssize_t http1_feed(struct http1_parser *p, const uint8_t *data, size_t n);
/*
 * The peer closed its side (EOF). A close-delimited response body completes (on_message_complete,
 * held back if paused) and the parser is DONE. Returns 0 when nothing was in progress (IDLE, DONE,
 * UPGRADED, or the completion), CV_EPARSE for a truncated message (the parser becomes ERROR: a
 * request gets no answer; a response is a 502), or a hook's negative code.
 */
int http1_finish(struct http1_parser *p);
/* Clears a pause. Call http1_feed() afterwards, with n == 0 if nothing is buffered. */
void http1_resume(struct http1_parser *p);
/* Returns 1 while paused by a hook, else 0. */
int http1_paused(const struct http1_parser *p);

enum http1_state http1_state(const struct http1_parser *p);
/* A static name for |s| ("idle", "head", ...), for logs. */
const char *http1_state_name(enum http1_state s);
/* The HTTP status to answer after an error (see "Errors"), or 0 when there is none. */
int http1_error_status(const struct http1_parser *p);
/* A static description of the error for logs (never for the visitor), or "" when there is none. */
const char *http1_error_reason(const struct http1_parser *p);
/* After an error in a request head: the value of the first field named |name| (ASCII
 * case-insensitive) among those llhttp read whole before the error, or NULL. Borrowed from |p|'s
 * arena. A head refused by the checks at its end (framing, method, Upgrade...) has every field; one
 * refused by the byte pre-check (414, 431, bad bytes) may have none, as the pre-check runs ahead of
 * llhttp over each input window. For answering in the format the client asked for (Accept); never
 * for routing or policy. */
const char *http1_error_field(const struct http1_parser *p, const char *name);

/* Response parsers: the next final response answers a HEAD request, so it has no body whatever its
 * framing headers say. Cleared when that response's head is parsed. */
void http1_expect_head_response(struct http1_parser *p);
/* Frees the arena while the parser is IDLE, DONE or UPGRADED (for idle keep-alive connections); the
 * last head becomes invalid. Does nothing in other states. */
void http1_parser_trim(struct http1_parser *p);
/* llhttp's lenient flags of |p|: always 0 (RELIABILITY.md §5.1); for tests. */
unsigned http1_parser_lenient_flags(const struct http1_parser *p);

/* The first field of |h| named |name| (ASCII case-insensitive), or NULL. */
const struct http1_field *http1_head_find(const struct http1_head *h, const char *name);

/*
 * Returns 1 if the field |name| (|len| bytes) must not be forwarded: Connection, Keep-Alive,
 * Proxy-Connection, TE, Transfer-Encoding, Upgrade, Trailer, HTTP2-Settings, or a token of |h|'s
 * Connection fields; else 0. Connection can never nominate Host, Content-Length, X-Forwarded-For,
 * X-Forwarded-Proto, X-Forwarded-Host, Forwarded, CDN-Loop or any Culvert-* field (Apache
 * CVE-2022-31813): for those this returns 0 unless they are in the fixed list. Callers filter the
 * visitor's fields with this first and add their own X-Forwarded-* and Culvert-* fields afterwards,
 * so that nothing the edge adds is ever removed; they also drop visitor-supplied Culvert-* fields.
 * |h| may be NULL: only the fixed list applies.
 */
int http1_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len);

/* The RFC 9110 reason phrase of |status| ("Bad Request"), or "Unknown" for an unlisted code. */
const char *http1_status_reason(int status);

/*
 * Serialization. Every writer validates first and then appends to |b| in one piece: on error |b| is
 * unchanged. Errors: CV_EINVAL (a method or field name that is not a token, a target that is empty
 * or holds SP, a control character, DEL or a byte >= 0x80, a value or reason holding a control
 * character other than HTAB or DEL, a status outside 100..599), CV_EFULL, CV_ENOMEM. Field values
 * are written without their surrounding whitespace, so that writing then parsing gives back the
 * same value.
 */
/* "METHOD target HTTP/1.1\r\n". */
int http1_write_request_line(struct buf *b, const char *method, size_t method_len,
                             const char *target, size_t target_len);
/* "HTTP/1.1 status reason\r\n"; |reason| NULL means http1_status_reason(status). */
int http1_write_status_line(struct buf *b, int status, const char *reason);
/* "name: value\r\n". */
int http1_write_field(struct buf *b, const char *name, size_t name_len, const char *value,
                      size_t value_len);
/* The blank line ending a head: "\r\n". */
int http1_write_head_end(struct buf *b);
/* The |n| fields of |f| in order, then the blank line ending the head: every field is checked
 * before anything is written, and all go in with one reservation. */
int http1_write_fields_end(struct buf *b, const struct http1_field *f, size_t n);
/* A whole request head: request line, the |n| fields of |f| in order, blank line. */
int http1_write_request_head(struct buf *b, const char *method, const char *target,
                             const struct http1_field *f, size_t n);
/* A whole response head: status line (|reason| as above), the |n| fields, blank line. */
int http1_write_response_head(struct buf *b, int status, const char *reason,
                              const struct http1_field *f, size_t n);
/* Chunked framing (RFC 9112 §7.1) for bodies of unknown length: a chunk is
 * http1_write_chunk_header(n), n data bytes, http1_write_chunk_end(); the body ends with
 * http1_write_last_chunk() ("0\r\n\r\n", no trailers). A chunk header of size 0 is CV_EINVAL (it
 * would end the body). */
int http1_write_chunk_header(struct buf *b, size_t n);
int http1_write_chunk_end(struct buf *b);
int http1_write_last_chunk(struct buf *b);

/* WebSocket (RFC 6455 §4). */
/* Returns 1 if |key| (|len| bytes) is base64 of exactly 16 bytes (24 characters, "==" at the end). */
int http1_ws_key_valid(const char *key, size_t len);
/* Writes the Sec-WebSocket-Accept value for |key| (base64 of SHA-1 of key + the RFC 6455 GUID) and a
 * NUL to |out|. Returns 0, CV_EINVAL for an invalid key, or CV_ENOMEM (OpenSSL failed). */
int http1_ws_accept(const char *key, size_t key_len, char out[HTTP1_WS_ACCEPT_LEN + 1]);
/* Returns 1 if |accept| (|accept_len| bytes, OWS trimmed by the parser) is the right answer to
 * |key|, else 0 (also for an invalid key). */
int http1_ws_accept_ok(const char *key, size_t key_len, const char *accept, size_t accept_len);

#endif
