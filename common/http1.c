/*
 * http1.c - HTTP/1.1 over llhttp 8.1.0 with the byte pre-check of RELIABILITY.md §5.3, the checks of
 * §5.4, and head serialization; see http1.h. Sans-I/O; runs on the loop thread.
 *
 * The feed loop. Input goes to llhttp in windows that end exactly where the framing changes: the
 * LF ending a head, a chunk-size line, the CRLF after chunk data or a trailer section, or the last
 * byte of a Content-Length body or of chunk data. Head-like windows are scanned byte by byte first
 * (scan()); body windows are not. llhttp fires its callbacks at those same LFs (measured with
 * 8.1.0), and after each window the loop checks that llhttp saw what the scanner saw: the end of a
 * head, a chunk header of the size the scanner read, the end of the message. Any disagreement is an
 * error, so a message can never be framed one way by us and another way by llhttp. llhttp is reset
 * after every message, so its own behaviour after a message (8.1.0 silently skips whatever follows
 * `Connection: close`) never matters.
 *
 * Heads are built from llhttp's span callbacks (so the Content-Length and Transfer-Encoding we check
 * are the ones llhttp frames the body with) into an arena addressed by offsets while it may still
 * grow; pointers are made once the head is complete.
 */
#include "http1.h"

#include <string.h>

#include <llhttp.h>
#include <openssl/evp.h>

#include "err.h"
#include "mem.h"

#define ARENA_MIN 1024
#define ARENA_SLACK 2048  /* method, reason, copies of path and authority, NULs */
#define MAX_CHUNK_DIGITS 16 /* a chunk size fits 64 bits */
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* What the next input bytes are. */
enum phase {
    PH_HEAD,       /* start line and field section: scanned */
    PH_BODY_CL,    /* |remaining| bytes of a Content-Length body */
    PH_BODY_EOF,   /* a close-delimited response body */
    PH_CHUNK_SIZE, /* a chunk-size line: scanned */
    PH_CHUNK_DATA, /* |remaining| bytes of chunk data */
    PH_CHUNK_CRLF, /* the CRLF after chunk data: scanned */
    PH_TRAILERS,   /* the trailer section: scanned */
    PH_NONE,       /* nothing is parsed: UPGRADED, DONE, ERROR, or a completion held by a pause */
};

/* Pre-check position (RELIABILITY.md §5.3). */
enum scan {
    SC_LEAD,     /* requests: before the request line; empty lines (CRLF) are skipped */
    SC_LEAD_LF,  /* CR of such an empty line */
    SC_METHOD,
    SC_TARGET,
    SC_VERSION,  /* request line "HTTP/" DIGIT "." DIGIT, |sc_idx| bytes matched */
    SC_RVERSION, /* status line version, likewise */
    SC_CODE,     /* status code digits */
    SC_CODE_END, /* after three digits: SP or CR */
    SC_REASON,
    SC_START_LF, /* CR ending the start line */
    SC_LINE,     /* start of a field line, or the CR of the blank line */
    SC_NAME,
    SC_VALUE,
    SC_VALUE_LF,
    SC_END_LF,   /* CR of the blank line ending a field section */
    SC_CSIZE,
    SC_CEXT,
    SC_CSIZE_LF,
    SC_DATA_CR,
    SC_DATA_LF,
};

/* Which llhttp span is being collected into the arena. */
enum span { SP_NONE, SP_METHOD, SP_URL, SP_STATUS, SP_NAME, SP_VALUE };

/* Where the target splits, decided before pointers exist (see split_target). */
enum target_form { TF_ORIGIN, TF_ABSOLUTE, TF_BAD };

#define NO_OFF UINT32_MAX

/* A field while the arena may still move. */
struct foff {
    uint32_t name;
    uint32_t name_len;
    uint32_t value;
    uint32_t value_len;
};

struct http1_parser {
    llhttp_t ll;
    enum http1_kind kind;
    const struct http1_hooks *hooks;
    void *arg;
    uint32_t max_url;
    uint32_t max_header_bytes;
    uint32_t max_header_fields;
    uint32_t max_chunk_ext;

    enum http1_state state;
    enum http1_state next_state; /* state after a completion held by a pause */
    enum phase phase;
    enum phase body_phase;       /* set by the head: what follows it */
    int paused;                  /* a hook returned HTTP1_PAUSE: parse nothing more */
    int pending_complete;        /* on_message_complete held back by a pause */
    int head_response;           /* responses: the next final response answers HEAD */
    int no_reuse;                /* responses: an interim head carried body framing */
    int err_code;
    int err_status;
    const char *err_reason;
    int err_in_head;             /* the error came while reading a head (http1_error_field) */

    /* Pre-check. */
    enum scan sc;
    uint32_t sc_len;       /* bytes of the element being scanned */
    uint32_t sc_idx;       /* bytes of "HTTP/x.y" matched, or status digits seen */
    unsigned ver_minor;
    unsigned status;
    uint32_t header_bytes; /* field-section bytes of this message, head and trailers */
    uint32_t nfields;      /* field lines of this message, head and trailers */
    uint32_t chunk_ext;    /* chunk-extension bytes of this message */
    unsigned chunk_digits;
    uint64_t chunk_size;   /* as read by the scanner from the current chunk-size line */
    uint64_t remaining;    /* bytes left in PH_BODY_CL or PH_CHUNK_DATA */

    /* What llhttp reported during the current window. */
    int ev_head;
    int ev_chunk_header;
    int ev_chunk_complete;
    int ev_complete;
    uint64_t ev_chunk_size;

    /* Head storage. */
    char *arena;
    uint32_t alen;
    uint32_t acap;
    uint32_t alimit;
    enum span span;
    uint32_t span_off;
    uint32_t method_off;
    uint32_t method_len;
    uint32_t target_off;
    uint32_t target_len;
    uint32_t reason_off;
    uint32_t reason_len;
    uint32_t path_off;
    uint32_t path_len;
    uint32_t auth_off;
    uint32_t auth_len;
    enum target_form tform;
    const char *tform_why;
    struct foff *foff;
    uint32_t nfoff;
    uint32_t foff_cap;
    struct http1_field *pub;
    uint32_t pub_cap;
    char tname[24];        /* lower-cased prefix of the trailer name being read */
    size_t tname_len;
    struct http1_slice conn[HTTP1_MAX_CONN_TOKENS];
    struct http1_head head;
};

/* ---- character classes ----------------------------------------------------------------------- */

/* RFC 9110 §5.6.2 tchar, as a table: it is asked for every byte of every field name. */
const uint8_t http1_tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int is_tchar(uint8_t c)
{
    return http1_tchar[c];
}

/* field-vchar / SP / HTAB / obs-text: anything but a control character or DEL. */
static int is_value_byte(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* ASCII case-insensitive equality of |a| (|n| bytes) and NUL-terminated |b|. */
static int eq_ci(const char *a, size_t n, const char *b)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (b[i] == '\0' || lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    }
    return b[n] == '\0';
}

static int eq_ci_n(const char *a, const char *b, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    }
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* ---- errors ------------------------------------------------------------------------------------ */

/* Puts |p| in the error state (the first error wins) and returns its code. Response parsers always
 * report 502: a bad origin answer is a bad gateway for the visitor. */
static int fail(struct http1_parser *p, int code, int status, const char *why)
{
    if (p->state != HTTP1_S_ERROR) {
        p->state = HTTP1_S_ERROR;
        p->err_in_head = p->phase == PH_HEAD;
        p->phase = PH_NONE;
        p->err_code = code;
        p->err_status = p->kind == HTTP1_RESPONSE ? 502 : status;
        p->err_reason = why;
        p->pending_complete = 0;
    }
    return p->err_code;
}

static int bad(struct http1_parser *p, const char *why)
{
    return fail(p, CV_EPARSE, 400, why);
}

/* ---- arena --------------------------------------------------------------------------------------- */

/* Makes room for |n| more bytes; the arena may move. Returns 0, CV_ELIMIT past |alimit|, or
 * CV_ENOMEM. */
static int arena_reserve(struct http1_parser *p, size_t n)
{
    uint32_t want;
    char *na;

    if (n > p->alimit - p->alen)
        return fail(p, CV_ELIMIT, 431, "head larger than the arena");
    if (p->alen + n > p->acap) {
        want = p->acap > 0 ? p->acap : ARENA_MIN;
        while (want < p->alen + n)
            want = want > p->alimit / 2 ? p->alimit : want * 2;
        na = mem_realloc(p->arena, want);
        if (na == NULL)
            return fail(p, CV_ENOMEM, 500, "out of memory");
        p->arena = na;
        p->acap = want;
    }
    return 0;
}

/* Appends |n| bytes of |s|, which must not point into the arena. */
static int arena_append(struct http1_parser *p, const char *s, size_t n)
{
    int rv = arena_reserve(p, n);

    if (rv < 0)
        return rv;
    if (n > 0)
        memcpy(p->arena + p->alen, s, n);
    p->alen += (uint32_t)n;
    return 0;
}

/* Appends a copy of the |n| arena bytes at offset |off|. */
static int arena_copy(struct http1_parser *p, uint32_t off, size_t n)
{
    int rv = arena_reserve(p, n);

    if (rv < 0)
        return rv;
    if (n > 0)
        memcpy(p->arena + p->alen, p->arena + off, n);
    p->alen += (uint32_t)n;
    return 0;
}

static int arena_nul(struct http1_parser *p)
{
    return arena_append(p, "", 1);
}

/* ---- llhttp callbacks ----------------------------------------------------------------------------- */

static struct http1_parser *from_ll(llhttp_t *ll)
{
    return ll->data;
}

/* Ends the span being collected: NUL-terminates it and records it. */
static int close_span(struct http1_parser *p)
{
    uint32_t off = p->span_off;
    uint32_t len = p->alen - off;
    struct foff *f;
    int rv;

    if (p->span == SP_NONE)
        return 0;
    if (p->span == SP_VALUE) {
        /* OWS around a value is not part of it (RFC 9110 §5.5). */
        while (len > 0 && is_ows(p->arena[off])) {
            off++;
            len--;
        }
        while (len > 0 && is_ows(p->arena[off + len - 1]))
            len--;
        p->alen = off + len;
    }
    rv = arena_nul(p);
    if (rv < 0)
        return rv;
    switch (p->span) {
    case SP_METHOD:
        p->method_off = off;
        p->method_len = len;
        break;
    case SP_URL:
        p->target_off = off;
        p->target_len = len;
        break;
    case SP_STATUS:
        p->reason_off = off;
        p->reason_len = len;
        break;
    case SP_NAME:
        f = &p->foff[p->nfoff];
        f->name = off;
        f->name_len = len;
        break;
    case SP_VALUE:
        f = &p->foff[p->nfoff];
        f->value = off;
        f->value_len = len;
        p->nfoff++;
        break;
    case SP_NONE:
        break;
    }
    p->span = SP_NONE;
    return 0;
}

/* Starts collecting a span of |kind| (closing another one first). */
static int open_span(struct http1_parser *p, enum span kind)
{
    struct foff *nf;
    uint32_t cap;
    int rv;

    rv = close_span(p);
    if (rv < 0)
        return rv;
    if (kind == SP_NAME && p->nfoff >= p->foff_cap) {
        if (p->nfoff >= p->max_header_fields)
            return fail(p, CV_ELIMIT, 431, "too many header fields");
        cap = p->foff_cap > 0 ? p->foff_cap * 2 : 16;
        if (cap > p->max_header_fields)
            cap = p->max_header_fields;
        nf = mem_realloc(p->foff, cap * sizeof(*nf));
        if (nf == NULL)
            return fail(p, CV_ENOMEM, 500, "out of memory");
        p->foff = nf;
        p->foff_cap = cap;
    }
    p->span = kind;
    p->span_off = p->alen;
    return 0;
}

static int add_span(llhttp_t *ll, enum span kind, const char *at, size_t len)
{
    struct http1_parser *p = from_ll(ll);

    if (p->span != kind && open_span(p, kind) < 0)
        return HPE_USER;
    if (arena_append(p, at, len) < 0)
        return HPE_USER;
    return 0;
}

static int end_span(llhttp_t *ll)
{
    struct http1_parser *p = from_ll(ll);

    if (p->phase == PH_TRAILERS)
        return 0;
    return close_span(p) < 0 ? HPE_USER : 0;
}

static int ll_on_method(llhttp_t *ll, const char *at, size_t len)
{
    return add_span(ll, SP_METHOD, at, len);
}

static int ll_on_url(llhttp_t *ll, const char *at, size_t len)
{
    return add_span(ll, SP_URL, at, len);
}

static int ll_on_status(llhttp_t *ll, const char *at, size_t len)
{
    return add_span(ll, SP_STATUS, at, len);
}

static int ll_on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    struct http1_parser *p = from_ll(ll);
    size_t i;

    if (p->phase != PH_TRAILERS)
        return add_span(ll, SP_NAME, at, len);
    /* Trailers are dropped; only their names are looked at (below). */
    for (i = 0; i < len; i++) {
        if (p->tname_len < sizeof(p->tname) - 1)
            p->tname[p->tname_len] = (char)lower((unsigned char)at[i]);
        p->tname_len++;
    }
    return 0;
}

static int ll_on_header_field_complete(llhttp_t *ll)
{
    struct http1_parser *p = from_ll(ll);
    const char *name = p->tname;

    if (p->phase != PH_TRAILERS) {
        if (p->span != SP_NAME && open_span(p, SP_NAME) < 0)
            return HPE_USER;
        return close_span(p) < 0 ? HPE_USER : 0;
    }
    /* Framing fields in trailers: 8.1.0 accepts Content-Length there, 9.x rejects it (§5.2). */
    if (p->tname_len < sizeof(p->tname)) {
        p->tname[p->tname_len] = '\0';
        if (strcmp(name, "content-length") == 0 || strcmp(name, "transfer-encoding") == 0) {
            bad(p, "framing field in trailers");
            return HPE_USER;
        }
    }
    p->tname_len = 0;
    return 0;
}

static int ll_on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    if (from_ll(ll)->phase == PH_TRAILERS)
        return 0;
    return add_span(ll, SP_VALUE, at, len);
}

static int ll_on_header_value_complete(llhttp_t *ll)
{
    struct http1_parser *p = from_ll(ll);

    if (p->phase == PH_TRAILERS)
        return 0;
    /* An empty value may come without any on_header_value call. */
    if (p->span != SP_VALUE && open_span(p, SP_VALUE) < 0)
        return HPE_USER;
    return close_span(p) < 0 ? HPE_USER : 0;
}

static int ll_on_chunk_header(llhttp_t *ll)
{
    struct http1_parser *p = from_ll(ll);

    p->ev_chunk_header = 1;
    p->ev_chunk_size = ll->content_length;
    return 0;
}

static int ll_on_chunk_complete(llhttp_t *ll)
{
    from_ll(ll)->ev_chunk_complete = 1;
    return 0;
}

static int call_hook_result(struct http1_parser *p, int rv)
{
    if (rv < 0)
        return fail(p, rv, 500, "hook failed");
    if (rv == HTTP1_PAUSE)
        p->paused = 1;
    return 0;
}

static int ll_on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct http1_parser *p = from_ll(ll);
    int rv;

    if (len == 0 || p->hooks->on_body == NULL)
        return 0;
    rv = p->hooks->on_body(p, (const uint8_t *)at, len, p->arg);
    return call_hook_result(p, rv) < 0 ? HPE_USER : 0;
}

/* Pauses llhttp at every message end so that the feed loop decides what comes next. */
static int ll_on_message_complete(llhttp_t *ll)
{
    from_ll(ll)->ev_complete = 1;
    return HPE_PAUSED;
}

static int ll_on_headers_complete(llhttp_t *ll);

static const llhttp_settings_t ll_settings = {
    .on_method = ll_on_method,
    .on_url = ll_on_url,
    .on_status = ll_on_status,
    .on_header_field = ll_on_header_field,
    .on_header_value = ll_on_header_value,
    .on_headers_complete = ll_on_headers_complete,
    .on_body = ll_on_body,
    .on_message_complete = ll_on_message_complete,
    .on_url_complete = end_span,
    .on_status_complete = end_span,
    .on_method_complete = end_span,
    .on_header_field_complete = ll_on_header_field_complete,
    .on_header_value_complete = ll_on_header_value_complete,
    .on_chunk_header = ll_on_chunk_header,
    .on_chunk_complete = ll_on_chunk_complete,
};

/* ---- head building and checks ----------------------------------------------------------------- */

static const char *arena_str(const struct http1_parser *p, uint32_t off)
{
    return off == NO_OFF ? "" : p->arena + off;
}

/*
 * Splits the request target (offsets only: may append path and authority copies to the arena).
 * Errors are recorded in |tform| and reported later, in the order of http1.h.
 */
static int split_target(struct http1_parser *p)
{
    const char *t = arena_str(p, p->target_off);
    size_t n = p->target_off == NO_OFF ? 0 : p->target_len;
    size_t i;
    size_t scheme;
    size_t a0;
    size_t a1;
    uint32_t off;
    int rv;

    p->tform = TF_BAD;
    p->tform_why = "bad request target";
    if (memchr(t, '#', n) != NULL) {
        p->tform_why = "fragment in request target";
        return 0;
    }
    if (n > 0 && t[0] == '/') {
        p->tform = TF_ORIGIN;
        p->path_off = p->target_off;
        p->path_len = p->target_len;
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        p->tform_why = "asterisk-form target";
        return 0;
    }
    for (i = 0; i < n && t[i] != ':'; i++) {
        if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z')))
            return 0;
    }
    scheme = i;
    if (!(scheme == 4 && eq_ci_n(t, "http", 4)) && !(scheme == 5 && eq_ci_n(t, "https", 5)))
        return 0;
    if (n - scheme < 3 || memcmp(t + scheme, "://", 3) != 0)
        return 0;
    a0 = scheme + 3;
    for (a1 = a0; a1 < n && t[a1] != '/' && t[a1] != '?'; a1++)
        ;
    if (a1 == a0) {
        p->tform_why = "empty authority in absolute-form target";
        return 0;
    }
    if (memchr(t + a0, '@', a1 - a0) != NULL) {
        p->tform_why = "userinfo in absolute-form target";
        return 0;
    }
    /* Copies: the arena may move while appending, so work on offsets. */
    off = p->target_off;
    p->auth_off = p->alen;
    p->auth_len = (uint32_t)(a1 - a0);
    rv = arena_copy(p, off + (uint32_t)a0, a1 - a0);
    if (rv == 0)
        rv = arena_nul(p);
    if (rv < 0)
        return rv;
    p->path_off = p->alen;
    p->path_len = (uint32_t)(n - a1);
    if (a1 == n || p->arena[off + a1] == '?') {
        rv = arena_append(p, "/", 1);
        p->path_len++;
    }
    if (rv == 0)
        rv = arena_copy(p, off + (uint32_t)a1, n - a1);
    if (rv == 0)
        rv = arena_nul(p);
    if (rv < 0)
        return rv;
    p->tform = TF_ABSOLUTE;
    return 0;
}

/* Content-Length: 1*DIGIT, at most 2^63-1. */
static int parse_content_length(const char *v, size_t n, int64_t *out)
{
    int64_t x = 0;
    size_t i;

    if (n == 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        if (x > (INT64_MAX - (v[i] - '0')) / 10)
            return -1;
        x = x * 10 + (v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Splits every Connection field into tokens. Returns 0 or an error (400). */
static int parse_connection(struct http1_parser *p, const struct http1_field *f)
{
    struct http1_head *h = &p->head;
    const char *s = f->value;
    size_t n = f->value_len;
    size_t i = 0;
    size_t j;
    size_t k;

    while (i < n) {
        for (j = i; j < n && s[j] != ','; j++)
            ;
        k = j;
        while (i < k && is_ows(s[i]))
            i++;
        while (k > i && is_ows(s[k - 1]))
            k--;
        if (k > i) {
            size_t m;

            for (m = i; m < k; m++) {
                if (!is_tchar((uint8_t)s[m]))
                    return bad(p, "Connection holds a non-token");
            }
            if (h->nconn_tokens >= HTTP1_MAX_CONN_TOKENS)
                return bad(p, "too many Connection tokens");
            p->conn[h->nconn_tokens].p = s + i;
            p->conn[h->nconn_tokens].n = k - i;
            h->nconn_tokens++;
        }
        i = j + 1;
    }
    return 0;
}

static int has_conn_token(const struct http1_head *h, const char *tok)
{
    size_t i;

    for (i = 0; i < h->nconn_tokens; i++) {
        if (eq_ci(h->conn_tokens[i].p, h->conn_tokens[i].n, tok))
            return 1;
    }
    return 0;
}

/* Counts the fields named |name|; sets *|first| to the first one. */
static unsigned count_fields(const struct http1_head *h, const char *name,
                             const struct http1_field **first)
{
    unsigned c = 0;
    size_t n = strlen(name);
    size_t i;

    *first = NULL;
    for (i = 0; i < h->nfields; i++) {
        if (h->fields[i].name_len == n && eq_ci_n(h->fields[i].name, name, n)) {
            if (c == 0)
                *first = &h->fields[i];
            c++;
        }
    }
    return c;
}

/* Makes the pointer view of the head once the arena stops moving; reads the framing fields. */
static int build_head(struct http1_parser *p, int *chunked)
{
    struct http1_head *h = &p->head;
    const struct http1_field *cl;
    const struct http1_field *te;
    const struct http1_field *f;
    struct http1_field *pub;
    unsigned ncl;
    unsigned nte;
    uint32_t i;
    int rv;

    if (p->nfoff > p->pub_cap) {
        pub = mem_realloc(p->pub, p->nfoff * sizeof(*pub));
        if (pub == NULL)
            return fail(p, CV_ENOMEM, 500, "out of memory");
        p->pub = pub;
        p->pub_cap = p->nfoff;
    }
    for (i = 0; i < p->nfoff; i++) {
        p->pub[i].name = p->arena + p->foff[i].name;
        p->pub[i].name_len = p->foff[i].name_len;
        p->pub[i].value = p->arena + p->foff[i].value;
        p->pub[i].value_len = p->foff[i].value_len;
    }
    memset(h, 0, sizeof(*h));
    h->version_minor = (int)p->ver_minor;
    h->fields = p->pub;
    h->nfields = p->nfoff;
    h->conn_tokens = p->conn;
    h->content_length = -1;
    if (p->kind == HTTP1_REQUEST) {
        h->method = arena_str(p, p->method_off);
        h->method_len = p->method_off == NO_OFF ? 0 : p->method_len;
        h->target = arena_str(p, p->target_off);
        h->target_len = p->target_off == NO_OFF ? 0 : p->target_len;
        if (p->tform == TF_ORIGIN || p->tform == TF_ABSOLUTE) {
            h->path = p->arena + p->path_off;
            h->path_len = p->path_len;
        }
        if (p->tform == TF_ABSOLUTE) {
            h->authority = p->arena + p->auth_off;
            h->authority_len = p->auth_len;
            h->flags |= HTTP1_F_ABSOLUTE_FORM;
        }
    } else {
        h->status = (int)p->status;
        h->reason = arena_str(p, p->reason_off);
        h->reason_len = p->reason_off == NO_OFF ? 0 : p->reason_len;
    }
    for (i = 0; i < p->nfoff; i++) {
        f = &p->pub[i];
        if (eq_ci(f->name, f->name_len, "connection")) {
            rv = parse_connection(p, f);
            if (rv < 0)
                return rv;
        }
    }

    /* Framing (RFC 9112 §6, RELIABILITY.md §2.1 row 1.1). */
    ncl = count_fields(h, "content-length", &cl);
    nte = count_fields(h, "transfer-encoding", &te);
    if (ncl > 1)
        return bad(p, "more than one Content-Length");
    if (nte > 1)
        return bad(p, "more than one Transfer-Encoding");
    if (ncl == 1 && nte == 1)
        return bad(p, "both Content-Length and Transfer-Encoding");
    if (nte == 1 && p->ver_minor == 0)
        return bad(p, "Transfer-Encoding in HTTP/1.0");
    if (nte == 1 && !eq_ci(te->value, te->value_len, "chunked"))
        return bad(p, "Transfer-Encoding other than chunked");
    if (ncl == 1 && parse_content_length(cl->value, cl->value_len, &h->content_length) < 0)
        return bad(p, "invalid Content-Length");
    *chunked = nte == 1;
    if (*chunked)
        h->flags |= HTTP1_F_CHUNKED;
    return 0;
}

/* RFC 9112 §9.3: persistence from the version and the Connection tokens. */
static int keep_alive(const struct http1_parser *p)
{
    const struct http1_head *h = &p->head;

    if (has_conn_token(h, "close"))
        return 0;
    return p->ver_minor == 1 || has_conn_token(h, "keep-alive");
}

static int check_websocket(struct http1_parser *p)
{
    const struct http1_head *h = &p->head;
    const struct http1_field *key;
    const struct http1_field *ver;

    if (!(h->method_len == 3 && memcmp(h->method, "GET", 3) == 0))
        return bad(p, "WebSocket upgrade with a method other than GET");
    if (count_fields(h, "sec-websocket-key", &key) != 1)
        return bad(p, "WebSocket upgrade without exactly one Sec-WebSocket-Key");
    if (!http1_ws_key_valid(key->value, key->value_len))
        return bad(p, "invalid Sec-WebSocket-Key");
    if (count_fields(h, "sec-websocket-version", &ver) != 1)
        return bad(p, "WebSocket upgrade without exactly one Sec-WebSocket-Version");
    /* RFC 6455 §4.4: an unsupported version gets 426 with the versions we speak. */
    if (!(ver->value_len == 2 && memcmp(ver->value, "13", 2) == 0))
        return fail(p, CV_EPARSE, 426, "unsupported Sec-WebSocket-Version");
    return 0;
}

/* RELIABILITY.md §5.4, in the order documented in http1.h (framing was checked by build_head). */
static int check_request(struct http1_parser *p, int chunked)
{
    struct http1_head *h = &p->head;
    const struct http1_field *f;
    const struct http1_field *up;
    unsigned nup;
    int body;

    if ((h->method_len == 7 && memcmp(h->method, "CONNECT", 7) == 0) ||
        (h->method_len == 5 && memcmp(h->method, "TRACE", 5) == 0))
        return fail(p, CV_EPARSE, 405, "method not allowed");

    switch (count_fields(h, "host", &f)) {
    case 0:
        if (p->ver_minor == 1)
            return bad(p, "HTTP/1.1 request without Host");
        break;
    case 1:
        h->host = f->value;
        h->host_len = f->value_len;
        break;
    default:
        return bad(p, "more than one Host");
    }

    if (p->tform == TF_BAD)
        return bad(p, p->tform_why);
    if (p->tform == TF_ABSOLUTE &&
        (h->host == NULL || h->host_len != h->authority_len ||
         !eq_ci_n(h->host, h->authority, h->host_len)))
        return bad(p, "absolute-form authority differs from Host");

    /* h2c smuggling (RELIABILITY.md §2.1 row 1.6). */
    if (count_fields(h, "http2-settings", &f) > 0)
        return bad(p, "HTTP2-Settings present");
    nup = count_fields(h, "upgrade", &up);
    if (nup > 1)
        return bad(p, "more than one Upgrade");
    if (nup == 1) {
        if (p->ver_minor == 0)
            return bad(p, "Upgrade in HTTP/1.0");
        if (eq_ci(up->value, up->value_len, "websocket"))
            h->upgrade = HTTP1_UP_WEBSOCKET;
        else if (eq_ci(up->value, up->value_len, "culvert-tcp"))
            h->upgrade = HTTP1_UP_CULVERT_TCP;
        else
            return bad(p, "Upgrade other than websocket");
        if (has_conn_token(h, "upgrade"))
            h->flags |= HTTP1_F_UPGRADE;
        else
            h->upgrade = HTTP1_UP_NONE; /* informational only: the field is hop-by-hop */
    }
    body = chunked || h->content_length > 0;
    if (h->flags & HTTP1_F_UPGRADE) {
        if (body)
            return bad(p, "upgrade request with a body");
        if (h->upgrade == HTTP1_UP_WEBSOCKET && check_websocket(p) < 0)
            return p->err_code;
    }
    /* llhttp decides on its own whether the message switches protocols: it must agree. */
    if (!!p->ll.upgrade != !!(h->flags & HTTP1_F_UPGRADE))
        return bad(p, "parsers disagree on the upgrade");

    if (p->ver_minor == 1) {
        size_t i;

        for (i = 0; i < h->nfields; i++) {
            f = &h->fields[i];
            if (eq_ci(f->name, f->name_len, "expect") &&
                eq_ci(f->value, f->value_len, "100-continue"))
                h->flags |= HTTP1_F_EXPECT_CONTINUE;
        }
    }
    if (keep_alive(p) && !(h->flags & HTTP1_F_UPGRADE))
        h->flags |= HTTP1_F_KEEP_ALIVE;
    if (!body)
        h->flags |= HTTP1_F_NO_BODY;
    return 0;
}

/* Returns the llhttp on_headers_complete answer: 0, 1 (no body) or 2 (no body, upgrade). */
static int check_response(struct http1_parser *p, int chunked, int *ll_ret)
{
    struct http1_head *h = &p->head;
    const struct http1_field *up;
    int status = h->status;
    int framing = chunked || h->content_length > 0;

    if (status < 100 || status > 599)
        return bad(p, "status outside 100..599");
    *ll_ret = 0;
    if (status == 101) {
        h->flags |= HTTP1_F_UPGRADE | HTTP1_F_NO_BODY;
        h->upgrade = HTTP1_UP_OTHER;
        if (count_fields(h, "upgrade", &up) == 1) {
            if (eq_ci(up->value, up->value_len, "websocket"))
                h->upgrade = HTTP1_UP_WEBSOCKET;
            else if (eq_ci(up->value, up->value_len, "culvert-tcp"))
                h->upgrade = HTTP1_UP_CULVERT_TCP;
        }
        *ll_ret = 2;
        return 0;
    }
    if (status < 200) {
        h->flags |= HTTP1_F_INTERIM | HTTP1_F_NO_BODY;
        if (framing)
            p->no_reuse = 1;
        *ll_ret = 1;
        return 0;
    }
    if (status == 204 && framing)
        p->no_reuse = 1;
    if (status == 204 || status == 304 || p->head_response) {
        h->flags |= HTTP1_F_NO_BODY;
        *ll_ret = 1;
    } else if (!chunked && h->content_length < 0) {
        h->flags |= HTTP1_F_EOF_BODY;
    } else if (!chunked && h->content_length == 0) {
        h->flags |= HTTP1_F_NO_BODY;
    }
    if (keep_alive(p) && !p->no_reuse && !(h->flags & HTTP1_F_EOF_BODY))
        h->flags |= HTTP1_F_KEEP_ALIVE;
    p->head_response = 0;
    p->no_reuse = 0;
    return 0;
}

/* Decides what follows the head and checks that llhttp will frame it the same way. */
static int plan_body(struct http1_parser *p)
{
    const struct http1_head *h = &p->head;
    const llhttp_t *ll = &p->ll;

    if (h->flags & (HTTP1_F_NO_BODY | HTTP1_F_UPGRADE)) {
        p->body_phase = PH_NONE; /* the message completes in this window */
        return 0;
    }
    if (h->flags & HTTP1_F_CHUNKED) {
        if (!(ll->flags & F_CHUNKED))
            return bad(p, "parsers disagree on chunked framing");
        p->body_phase = PH_CHUNK_SIZE;
        return 0;
    }
    if (h->flags & HTTP1_F_EOF_BODY) {
        if (!llhttp_message_needs_eof(ll))
            return bad(p, "parsers disagree on a close-delimited body");
        p->body_phase = PH_BODY_EOF;
        return 0;
    }
    if (!(ll->flags & F_CONTENT_LENGTH) || ll->content_length != (uint64_t)h->content_length)
        return bad(p, "parsers disagree on Content-Length");
    p->body_phase = PH_BODY_CL;
    p->remaining = (uint64_t)h->content_length;
    return 0;
}

static int ll_on_headers_complete(llhttp_t *ll)
{
    struct http1_parser *p = from_ll(ll);
    int chunked = 0;
    int ll_ret = 0;
    int rv;

    rv = close_span(p);
    if (rv == 0 && p->kind == HTTP1_REQUEST)
        rv = split_target(p);
    if (rv == 0)
        rv = build_head(p, &chunked);
    if (rv == 0) {
        if (p->kind == HTTP1_REQUEST)
            rv = check_request(p, chunked);
        else
            rv = check_response(p, chunked, &ll_ret);
    }
    if (rv == 0)
        rv = plan_body(p);
    if (rv < 0)
        return HPE_USER;
    p->ev_head = 1;
    if (p->hooks->on_head != NULL) {
        rv = p->hooks->on_head(p, &p->head, p->arg);
        if (call_hook_result(p, rv) < 0)
            return HPE_USER;
    }
    return ll_ret;
}

/*
 * Length of the longest prefix of |d|[0..|n|) with no byte below 0x20 and no 0x7f: the bulk of a
 * field value. Eight bytes at a time (exact "any byte" tests: Bit Twiddling Hacks' hasless and
 * haszero), then byte by byte up to the first such byte.
 */
static size_t plain_run(const uint8_t *d, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        uint64_t del;

        memcpy(&w, d + i, 8);
        del = w ^ (0x7f * ones);
        if ((((w - 0x20 * ones) & ~w) | ((del - ones) & ~del)) & highs)
            break;
    }
    while (i < n && d[i] >= 0x20 && d[i] != 0x7f)
        i++;
    return i;
}

/* ---- pre-check --------------------------------------------------------------------------------- */

/*
 * Scans |d|[0..|n|) in a scanned phase. Sets *|used| to the bytes checked and *|end| when the last
 * of them is the LF ending the unit (head, chunk-size line, data CRLF, trailer section). Returns 0 or
 * an error. RELIABILITY.md §5.3, RFC 9112 §2.2 (no bare CR or LF), §3 (request line), §4 (status
 * line), §5 (fields, no obs-fold, no whitespace before ':'), §7.1 (chunks).
 */
static int scan(struct http1_parser *p, const uint8_t *d, size_t n, size_t *used, int *end)
{
    static const char http[] = "HTTP/";
    size_t i;
    uint8_t c;
    int v;

    *end = 0;
    for (i = 0; i < n; i++) {
        /* Fast runs through the bulk of a head (field values and names, the target): the same
         * checks as the state machine below, many bytes at a time. Anything special (a CR, a
         * control byte, a limit about to be crossed) is left to the state machine. */
        if ((p->sc == SC_VALUE && p->sc_len > 0) || p->sc == SC_NAME || p->sc == SC_TARGET) {
            size_t j = i;
            size_t run;
            size_t cap;

            if (p->sc == SC_VALUE) {
                j += plain_run(d + j, n - j);
                cap = HTTP1_MAX_VALUE;
            } else if (p->sc == SC_NAME) {
                while (j < n && http1_tchar[d[j]])
                    j++;
                cap = HTTP1_MAX_NAME;
            } else {
                while (j < n && d[j] > 0x20 && d[j] < 0x7f)
                    j++;
                cap = p->max_url;
            }
            run = j - i;
            if (run > 0 && p->sc_len + run <= cap &&
                (p->sc == SC_TARGET || p->header_bytes + run <= p->max_header_bytes)) {
                if (p->sc != SC_TARGET)
                    p->header_bytes += (uint32_t)run;
                p->sc_len += (uint32_t)run;
                i = j;
                if (i >= n)
                    break;
            }
        }
        c = d[i];
        if (p->sc >= SC_LINE && p->sc <= SC_END_LF && ++p->header_bytes > p->max_header_bytes)
            return fail(p, CV_ELIMIT, 431, "header section too large");
        switch (p->sc) {
        case SC_LEAD:
            if (c == '\r') {
                if (++p->header_bytes > p->max_header_bytes)
                    return fail(p, CV_ELIMIT, 431, "too many empty lines");
                p->sc = SC_LEAD_LF;
            } else if (is_tchar(c)) {
                p->sc = SC_METHOD;
                p->sc_len = 1;
            } else {
                return bad(p, c == '\n' ? "bare LF" : "bad byte in method");
            }
            break;
        case SC_LEAD_LF:
            if (c != '\n')
                return bad(p, "CR not followed by LF");
            p->sc = SC_LEAD;
            break;
        case SC_METHOD:
            if (c == ' ') {
                p->sc = SC_TARGET;
                p->sc_len = 0;
            } else if (!is_tchar(c)) {
                return bad(p, "bad byte in method");
            } else if (++p->sc_len > HTTP1_MAX_METHOD) {
                return bad(p, "method too long");
            }
            break;
        case SC_TARGET:
            if (c == ' ' && p->sc_len > 0) {
                p->sc = SC_VERSION;
                p->sc_idx = 0;
            } else if (c <= 0x20 || c >= 0x7f) {
                return bad(p, "bad byte in request target");
            } else if (++p->sc_len > p->max_url) {
                return fail(p, CV_ELIMIT, 414, "request target too long");
            }
            break;
        case SC_VERSION:
        case SC_RVERSION:
            if (p->sc_idx < 8) {
                if (p->sc_idx < 5 ? c != (uint8_t)http[p->sc_idx]
                    : p->sc_idx == 6 ? c != '.' : (c < '0' || c > '9'))
                    return bad(p, "bad HTTP version");
                /* §5.4: 1.0 and 1.1 only (llhttp 8.1.0 parses HTTP/0.9 and HTTP/2.0 lines).
                 * Judged at the digit itself, before llhttp sees it, so that the answer does
                 * not depend on how the input was split. */
                if ((p->sc_idx == 5 && c != '1') || (p->sc_idx == 7 && c > '1'))
                    return fail(p, CV_EPARSE, 505, "HTTP version not supported");
                if (p->sc_idx == 7)
                    p->ver_minor = c - '0';
                p->sc_idx++;
            } else if (p->sc == SC_VERSION) {
                if (c != '\r')
                    return bad(p, "bad HTTP version");
                p->sc = SC_START_LF;
            } else {
                if (c != ' ')
                    return bad(p, "bad HTTP version");
                p->sc = SC_CODE;
                p->sc_idx = 0;
                p->status = 0;
            }
            break;
        case SC_CODE:
            if (c < '0' || c > '9')
                return bad(p, "bad status code");
            p->status = p->status * 10 + (unsigned)(c - '0');
            if (++p->sc_idx == 3)
                p->sc = SC_CODE_END;
            break;
        case SC_CODE_END:
            if (c == ' ') {
                p->sc = SC_REASON;
                p->sc_len = 0;
            } else if (c == '\r') {
                p->sc = SC_START_LF;
            } else {
                return bad(p, "bad status code");
            }
            break;
        case SC_REASON:
            if (c == '\r')
                p->sc = SC_START_LF;
            else if (!is_value_byte(c))
                return bad(p, "bad byte in reason phrase");
            else if (++p->sc_len > HTTP1_MAX_REASON)
                return bad(p, "reason phrase too long");
            break;
        case SC_START_LF:
            if (c != '\n')
                return bad(p, "CR not followed by LF");
            p->sc = SC_LINE;
            break;
        case SC_LINE:
            if (c == '\r') {
                p->sc = SC_END_LF;
            } else if (c == ' ' || c == '\t') {
                return bad(p, "obs-fold");
            } else if (c == ':') {
                return bad(p, "empty field name");
            } else if (!is_tchar(c)) {
                return bad(p, c == '\n' ? "bare LF" : "bad byte in field name");
            } else {
                if (++p->nfields > p->max_header_fields)
                    return fail(p, CV_ELIMIT, 431, "too many header fields");
                p->sc = SC_NAME;
                p->sc_len = 1;
            }
            break;
        case SC_NAME:
            if (c == ':') {
                p->sc = SC_VALUE;
                p->sc_len = 0;
            } else if (!is_tchar(c)) {
                return bad(p, "bad byte in field name");
            } else if (++p->sc_len > HTTP1_MAX_NAME) {
                return fail(p, CV_ELIMIT, 431, "field name too long");
            }
            break;
        case SC_VALUE:
            if (c == '\r')
                p->sc = SC_VALUE_LF;
            else if (!is_value_byte(c))
                return bad(p, c == '\n' ? "bare LF" : "control character in field value");
            else if (p->sc_len == 0 && (c == ' ' || c == '\t'))
                break; /* leading OWS is not part of the value */
            else if (++p->sc_len > HTTP1_MAX_VALUE)
                return fail(p, CV_ELIMIT, 431, "field value too long");
            break;
        case SC_VALUE_LF:
            if (c != '\n')
                return bad(p, "CR not followed by LF");
            p->sc = SC_LINE;
            break;
        case SC_END_LF:
        case SC_CSIZE_LF:
        case SC_DATA_LF:
            if (c != '\n')
                return bad(p, "CR not followed by LF");
            *used = i + 1;
            *end = 1;
            return 0;
        case SC_CSIZE:
            v = hex_value(c);
            if (v >= 0) {
                if (++p->chunk_digits > MAX_CHUNK_DIGITS)
                    return bad(p, "chunk size too long");
                p->chunk_size = p->chunk_size << 4 | (uint64_t)v;
            } else if (p->chunk_digits == 0) {
                return bad(p, "bad chunk size");
            } else if (c == '\r') {
                p->sc = SC_CSIZE_LF;
            } else if (c == ';' || c == ' ' || c == '\t') {
                /* Extensions (and any whitespace before them, which llhttp then judges). */
                if (++p->chunk_ext > p->max_chunk_ext)
                    return fail(p, CV_ELIMIT, 400, "chunk extensions too large");
                p->sc = SC_CEXT;
            } else {
                return bad(p, "bad chunk size");
            }
            break;
        case SC_CEXT:
            if (c == '\r')
                p->sc = SC_CSIZE_LF;
            else if (!is_value_byte(c))
                return bad(p, c == '\n' ? "bare LF" : "control character in chunk extension");
            else if (++p->chunk_ext > p->max_chunk_ext)
                return fail(p, CV_ELIMIT, 400, "chunk extensions too large");
            break;
        case SC_DATA_CR:
            if (c != '\r')
                return bad(p, "chunk data not followed by CRLF");
            p->sc = SC_DATA_LF;
            break;
        }
    }
    *used = n;
    return 0;
}

/* ---- the feed loop -------------------------------------------------------------------------------- */

static void begin_message(struct http1_parser *p)
{
    p->state = HTTP1_S_HEAD;
    p->phase = PH_HEAD;
    p->sc = p->kind == HTTP1_REQUEST ? SC_LEAD : SC_RVERSION;
    p->sc_len = 0;
    p->sc_idx = 0;
    p->ver_minor = 0;
    p->status = 0;
    p->header_bytes = 0;
    p->nfields = 0;
    p->chunk_ext = 0;
    p->remaining = 0;
    p->alen = 0;
    p->span = SP_NONE;
    p->method_off = NO_OFF;
    p->target_off = NO_OFF;
    p->reason_off = NO_OFF;
    p->nfoff = 0;
    p->tform = TF_BAD;
    p->tname_len = 0;
    memset(&p->head, 0, sizeof(p->head));
}

static void begin_chunk_size(struct http1_parser *p)
{
    p->phase = PH_CHUNK_SIZE;
    p->sc = SC_CSIZE;
    p->chunk_digits = 0;
    p->chunk_size = 0;
}

/* Delivers on_message_complete and moves to the state after the message. */
static int deliver_complete(struct http1_parser *p)
{
    int rv;

    p->pending_complete = 0;
    p->state = p->next_state;
    p->phase = p->state == HTTP1_S_IDLE ? PH_HEAD : PH_NONE;
    if (p->hooks->on_message_complete == NULL)
        return 0;
    rv = p->hooks->on_message_complete(p, p->arg);
    return call_hook_result(p, rv);
}

/* llhttp ended a message at the end of the current window. */
static int message_done(struct http1_parser *p)
{
    unsigned flags = p->head.flags;

    llhttp_reset(&p->ll);
    if (flags & HTTP1_F_INTERIM) {
        /* A 1xx head is its own message to llhttp; to the caller it precedes the final head. */
        p->state = HTTP1_S_IDLE;
        p->phase = PH_HEAD;
        return 0;
    }
    if (flags & HTTP1_F_UPGRADE)
        p->next_state = HTTP1_S_UPGRADED;
    else if (flags & HTTP1_F_KEEP_ALIVE)
        p->next_state = HTTP1_S_IDLE;
    else
        p->next_state = HTTP1_S_DONE;
    if (p->paused) {
        p->pending_complete = 1;
        p->phase = PH_NONE;
        return 0;
    }
    return deliver_complete(p);
}

/* Runs llhttp over a window that the pre-check (or the body plan) allows. */
static int execute(struct http1_parser *p, const uint8_t *d, size_t w)
{
    enum llhttp_errno e;
    const char *why;

    p->ev_head = 0;
    p->ev_chunk_header = 0;
    p->ev_chunk_complete = 0;
    p->ev_complete = 0;
    e = llhttp_execute(&p->ll, (const char *)d, w);
    if (p->state == HTTP1_S_ERROR)
        return p->err_code; /* one of our callbacks failed */
    if (e == HPE_OK)
        return p->ev_complete ? bad(p, "message ended without a pause") : 0;
    if (e == HPE_PAUSED) {
        /* Only ll_on_message_complete pauses, and messages end only at window ends. */
        if (!p->ev_complete || llhttp_get_error_pos(&p->ll) != (const char *)d + w)
            return bad(p, "parsers disagree on the end of a message");
        return 0;
    }
    why = llhttp_get_error_reason(&p->ll);
    return bad(p, why != NULL ? why : llhttp_errno_name(e));
}

/* Checks llhttp's events against the scanner after a window and moves to the next phase. */
static int after_window(struct http1_parser *p, size_t w, int end)
{
    switch (p->phase) {
    case PH_HEAD:
        if (!end)
            return p->ev_head || p->ev_complete ? bad(p, "parsers disagree on the end of a head") : 0;
        if (!p->ev_head)
            return bad(p, "parsers disagree on the end of a head");
        if (p->body_phase == PH_NONE) {
            if (!p->ev_complete)
                return bad(p, "parsers disagree on a body");
            return message_done(p);
        }
        if (p->ev_complete)
            return bad(p, "parsers disagree on a body");
        p->state = HTTP1_S_BODY;
        if (p->body_phase == PH_CHUNK_SIZE)
            begin_chunk_size(p);
        else
            p->phase = p->body_phase;
        return 0;
    case PH_BODY_CL:
        p->remaining -= w;
        if ((p->remaining == 0) != !!p->ev_complete)
            return bad(p, "parsers disagree on the end of a body");
        return p->ev_complete ? message_done(p) : 0;
    case PH_BODY_EOF:
        return p->ev_complete ? bad(p, "parsers disagree on a close-delimited body") : 0;
    case PH_CHUNK_SIZE:
        if (!end)
            return p->ev_chunk_header ? bad(p, "parsers disagree on a chunk size") : 0;
        if (!p->ev_chunk_header || p->ev_chunk_size != p->chunk_size)
            return bad(p, "parsers disagree on a chunk size");
        if (p->chunk_size == 0) {
            p->phase = PH_TRAILERS;
            p->sc = SC_LINE;
        } else {
            p->phase = PH_CHUNK_DATA;
            p->remaining = p->chunk_size;
        }
        return 0;
    case PH_CHUNK_DATA:
        p->remaining -= w;
        if (p->remaining == 0) {
            p->phase = PH_CHUNK_CRLF;
            p->sc = SC_DATA_CR;
        }
        return 0;
    case PH_CHUNK_CRLF:
        if (!end)
            return 0;
        if (!p->ev_chunk_complete)
            return bad(p, "parsers disagree on the end of a chunk");
        begin_chunk_size(p);
        return 0;
    case PH_TRAILERS:
        if (end != p->ev_complete)
            return bad(p, "parsers disagree on the end of the trailers");
        return end ? message_done(p) : 0;
    case PH_NONE:
        break;
    }
    return 0;
}

/* Parses one window from |d|; sets *|used|. */
static int step(struct http1_parser *p, const uint8_t *d, size_t n, size_t *used)
{
    size_t w = 0;
    int end = 0;
    int rv;

    *used = 0;
    if (p->state == HTTP1_S_IDLE)
        begin_message(p);
    switch (p->phase) {
    case PH_HEAD:
    case PH_CHUNK_SIZE:
    case PH_CHUNK_CRLF:
    case PH_TRAILERS:
        rv = scan(p, d, n, &w, &end);
        if (rv < 0)
            return rv;
        break;
    case PH_BODY_CL:
    case PH_CHUNK_DATA:
        w = n < p->remaining ? n : (size_t)p->remaining;
        break;
    case PH_BODY_EOF:
        w = n;
        break;
    case PH_NONE:
        return 0;
    }
    if (p->phase == PH_HEAD)
        p->body_phase = PH_NONE;
    rv = execute(p, d, w);
    if (rv < 0)
        return rv;
    *used = w;
    return after_window(p, w, end);
}

ssize_t http1_feed(struct http1_parser *p, const uint8_t *data, size_t n)
{
    size_t off = 0;
    size_t used;
    int rv;

    if (p->state == HTTP1_S_ERROR)
        return p->err_code;
    if (p->pending_complete && !p->paused) {
        rv = deliver_complete(p);
        if (rv < 0)
            return rv;
    }
    while (off < n && !p->paused && p->phase != PH_NONE &&
           (p->state == HTTP1_S_IDLE || p->state == HTTP1_S_HEAD || p->state == HTTP1_S_BODY)) {
        rv = step(p, data + off, n - off, &used);
        if (rv < 0)
            return rv;
        off += used;
    }
    return (ssize_t)off;
}

int http1_finish(struct http1_parser *p)
{
    enum llhttp_errno e;

    switch (p->state) {
    case HTTP1_S_ERROR:
        return p->err_code;
    case HTTP1_S_IDLE:
    case HTTP1_S_DONE:
    case HTTP1_S_UPGRADED:
        return 0;
    case HTTP1_S_HEAD:
    case HTTP1_S_BODY:
        break;
    case HTTP1_S_COUNT:
        return CV_EINVAL;
    }
    if (p->pending_complete)
        return 0; /* the message is already complete; delivery waits for the resume */
    if (p->phase != PH_BODY_EOF)
        return bad(p, "connection closed inside a message");
    p->ev_complete = 0;
    e = llhttp_finish(&p->ll);
    if (p->state == HTTP1_S_ERROR)
        return p->err_code;
    if ((e != HPE_OK && e != HPE_PAUSED) || !p->ev_complete)
        return bad(p, "parsers disagree on a close-delimited body");
    return message_done(p);
}

/* ---- public: lifecycle and queries ------------------------------------------------------------- */

struct http1_parser *http1_parser_new(enum http1_kind kind, const struct cv_limits *lim,
                                      const struct http1_hooks *hooks, void *arg)
{
    struct http1_parser *p = mem_calloc(sizeof(*p));
    uint64_t limit;

    if (p == NULL)
        return NULL;
    p->kind = kind;
    p->hooks = hooks;
    p->arg = arg;
    p->max_url = lim->max_url;
    p->max_header_bytes = lim->max_header_bytes;
    p->max_header_fields = lim->max_header_fields;
    p->max_chunk_ext = lim->max_chunk_ext;
    limit = (uint64_t)lim->max_url + lim->max_header_bytes + ARENA_SLACK;
    p->alimit = limit > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)limit;
    p->state = HTTP1_S_IDLE;
    p->phase = PH_HEAD;
    /* No llhttp_set_lenient_* call, ever (RELIABILITY.md §5.1). */
    llhttp_init(&p->ll, kind == HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &ll_settings);
    p->ll.data = p;
    return p;
}

void http1_parser_free(struct http1_parser *p)
{
    if (p == NULL)
        return;
    mem_free(p->arena);
    mem_free(p->foff);
    mem_free(p->pub);
    mem_free(p);
}

void http1_resume(struct http1_parser *p)
{
    p->paused = 0;
}

int http1_paused(const struct http1_parser *p)
{
    return p->paused;
}

enum http1_state http1_state(const struct http1_parser *p)
{
    return p->state;
}

const char *http1_state_name(enum http1_state s)
{
    static const char *const names[HTTP1_S_COUNT] = {
        "idle", "head", "body", "upgraded", "done", "error",
    };

    return (unsigned)s < HTTP1_S_COUNT ? names[s] : "?";
}

int http1_error_status(const struct http1_parser *p)
{
    return p->state == HTTP1_S_ERROR ? p->err_status : 0;
}

const char *http1_error_reason(const struct http1_parser *p)
{
    return p->state == HTTP1_S_ERROR && p->err_reason != NULL ? p->err_reason : "";
}

void http1_expect_head_response(struct http1_parser *p)
{
    p->head_response = 1;
}

void http1_parser_trim(struct http1_parser *p)
{
    if (p->state != HTTP1_S_IDLE && p->state != HTTP1_S_DONE && p->state != HTTP1_S_UPGRADED)
        return;
    if (p->pending_complete)
        return;
    mem_free(p->arena);
    p->arena = NULL;
    p->alen = 0;
    p->acap = 0;
    mem_free(p->foff);
    p->foff = NULL;
    p->foff_cap = 0;
    p->nfoff = 0;
    mem_free(p->pub);
    p->pub = NULL;
    p->pub_cap = 0;
    memset(&p->head, 0, sizeof(p->head));
}

unsigned http1_parser_lenient_flags(const struct http1_parser *p)
{
    return p->ll.lenient_flags;
}

const char *http1_error_field(const struct http1_parser *p, const char *name)
{
    size_t n = strlen(name);

    if (p->state != HTTP1_S_ERROR || !p->err_in_head || p->arena == NULL)
        return NULL;
    for (uint32_t i = 0; i < p->nfoff; i++) {
        if (p->foff[i].name_len == n && eq_ci_n(p->arena + p->foff[i].name, name, n))
            return p->arena + p->foff[i].value;
    }
    return NULL;
}

const struct http1_field *http1_head_find(const struct http1_head *h, const char *name)
{
    size_t n = strlen(name);
    size_t i;

    for (i = 0; i < h->nfields; i++) {
        if (h->fields[i].name_len == n && eq_ci_n(h->fields[i].name, name, n))
            return &h->fields[i];
    }
    return NULL;
}

struct lname {
    const char *name;
    size_t len;
};

#define LNAME(s) {s, sizeof(s) - 1}

int http1_is_hop_by_hop(const struct http1_head *h, const char *name, size_t len)
{
    static const struct lname never_nominated[] = {
        LNAME("host"), LNAME("content-length"), LNAME("x-forwarded-for"), LNAME("x-forwarded-proto"),
        LNAME("x-forwarded-host"), LNAME("forwarded"), LNAME("cdn-loop"),
    };
    size_t i;

    /* The fixed set by length first: this runs for every field of every message. */
    switch (len) {
    case 2:
        if (eq_ci_n(name, "te", 2))
            return 1;
        break;
    case 7:
        if (eq_ci_n(name, "upgrade", 7) || eq_ci_n(name, "trailer", 7))
            return 1;
        break;
    case 10:
        if (eq_ci_n(name, "connection", 10) || eq_ci_n(name, "keep-alive", 10))
            return 1;
        break;
    case 14:
        if (eq_ci_n(name, "http2-settings", 14))
            return 1;
        break;
    case 16:
        if (eq_ci_n(name, "proxy-connection", 16))
            return 1;
        break;
    case 17:
        if (eq_ci_n(name, "transfer-encoding", 17))
            return 1;
        break;
    default:
        break;
    }
    if (h == NULL)
        return 0;
    for (i = 0; i < h->nconn_tokens; i++) {
        if (h->conn_tokens[i].n == len && eq_ci_n(h->conn_tokens[i].p, name, len))
            break;
    }
    if (i == h->nconn_tokens)
        return 0; /* not nominated by Connection */
    /* CVE-2022-31813: Connection must not remove what proxies rely on or add themselves. */
    for (i = 0; i < sizeof(never_nominated) / sizeof(never_nominated[0]); i++) {
        if (never_nominated[i].len == len && eq_ci_n(name, never_nominated[i].name, len))
            return 0;
    }
    return !(len >= 8 && eq_ci_n(name, "culvert-", 8));
}

const char *http1_status_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 508: return "Loop Detected";
    default: return "Unknown";
    }
}

/* ---- serialization --------------------------------------------------------------------------- */

static int token_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if (!is_tchar((uint8_t)s[i]))
            return 0;
    }
    return 1;
}

static int text_ok(const char *s, size_t n)
{
    size_t i = plain_run((const uint8_t *)s, n);

    for (; i < n; i++) {
        if (!is_value_byte((uint8_t)s[i]))
            return 0;
    }
    return 1;
}

/* Trims OWS from both ends of |*v|/|*n|. */
static void trim_ows(const char **v, size_t *n)
{
    while (*n > 0 && is_ows((*v)[0])) {
        (*v)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*v)[*n - 1]))
        (*n)--;
}

/* Trims OWS from |*v|/|*n| and validates what is left. */
static int value_ok(const char **v, size_t *n)
{
    trim_ows(v, n);
    return text_ok(*v, *n);
}

static int target_ok(const char *s, size_t n)
{
    size_t i;

    if (n == 0)
        return 0;
    for (i = 0; i < n; i++) {
        if ((uint8_t)s[i] <= 0x20 || (uint8_t)s[i] >= 0x7f)
            return 0;
    }
    return 1;
}

/* Bytes of one field line after validation, or 0 when invalid. */
static size_t field_size(const char *name, size_t name_len, const char **value, size_t *value_len)
{
    if (!token_ok(name, name_len) || !value_ok(value, value_len))
        return 0;
    return name_len + 2 + *value_len + 2;
}

static uint8_t *put(uint8_t *w, const void *s, size_t n)
{
    if (n > 0)
        memcpy(w, s, n);
    return w + n;
}

static uint8_t *put_field(uint8_t *w, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    w = put(w, name, name_len);
    w = put(w, ": ", 2);
    w = put(w, value, value_len);
    return put(w, "\r\n", 2);
}

/* Validates |n| fields and returns the bytes they take, or 0 with *|ok| = 0. */
static size_t fields_size(const struct http1_field *f, size_t n, int *ok)
{
    size_t total = 0;
    size_t i;
    size_t s;
    const char *v;
    size_t vn;

    *ok = 1;
    for (i = 0; i < n; i++) {
        v = f[i].value;
        vn = f[i].value_len;
        s = field_size(f[i].name, f[i].name_len, &v, &vn);
        if (s == 0) {
            *ok = 0;
            return 0;
        }
        total += s;
    }
    return total;
}

static uint8_t *put_fields(uint8_t *w, const struct http1_field *f, size_t n)
{
    size_t i;
    const char *v;
    size_t vn;

    for (i = 0; i < n; i++) {
        v = f[i].value;
        vn = f[i].value_len;
        trim_ows(&v, &vn); /* fields_size() validated them */
        w = put_field(w, f[i].name, f[i].name_len, v, vn);
    }
    return w;
}

static size_t status_line_size(int status, const char **reason, size_t *reason_len)
{
    if (status < 100 || status > 599)
        return 0;
    if (*reason == NULL)
        *reason = http1_status_reason(status);
    *reason_len = strlen(*reason);
    if (!text_ok(*reason, *reason_len))
        return 0;
    return 13 + *reason_len + 2; /* "HTTP/1.1 NNN " reason CRLF */
}

static uint8_t *put_status_line(uint8_t *w, int status, const char *reason, size_t reason_len)
{
    char code[4];

    code[0] = (char)('0' + status / 100);
    code[1] = (char)('0' + status / 10 % 10);
    code[2] = (char)('0' + status % 10);
    code[3] = ' ';
    w = put(w, "HTTP/1.1 ", 9);
    w = put(w, code, 4);
    w = put(w, reason, reason_len);
    return put(w, "\r\n", 2);
}

static uint8_t *put_request_line(uint8_t *w, const char *method, size_t method_len,
                                 const char *target, size_t target_len)
{
    w = put(w, method, method_len);
    w = put(w, " ", 1);
    w = put(w, target, target_len);
    return put(w, " HTTP/1.1\r\n", 11);
}

int http1_write_request_line(struct buf *b, const char *method, size_t method_len,
                             const char *target, size_t target_len)
{
    size_t n = method_len + 1 + target_len + 11;
    uint8_t *w;
    int err = 0;

    if (!token_ok(method, method_len) || !target_ok(target, target_len))
        return CV_EINVAL;
    w = buf_reserve(b, n, &err);
    if (w == NULL)
        return err;
    put_request_line(w, method, method_len, target, target_len);
    buf_commit(b, n);
    return 0;
}

int http1_write_status_line(struct buf *b, int status, const char *reason)
{
    size_t reason_len = 0;
    size_t n = status_line_size(status, &reason, &reason_len);
    uint8_t *w;
    int err = 0;

    if (n == 0)
        return CV_EINVAL;
    w = buf_reserve(b, n, &err);
    if (w == NULL)
        return err;
    put_status_line(w, status, reason, reason_len);
    buf_commit(b, n);
    return 0;
}

int http1_write_field(struct buf *b, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    size_t n = field_size(name, name_len, &value, &value_len);
    uint8_t *w;
    int err = 0;

    if (n == 0)
        return CV_EINVAL;
    w = buf_reserve(b, n, &err);
    if (w == NULL)
        return err;
    put_field(w, name, name_len, value, value_len);
    buf_commit(b, n);
    return 0;
}

int http1_write_head_end(struct buf *b)
{
    return buf_append(b, "\r\n", 2);
}

int http1_write_fields_end(struct buf *b, const struct http1_field *f, size_t n)
{
    size_t total;
    uint8_t *w;
    int ok;
    int err = 0;

    total = fields_size(f, n, &ok);
    if (!ok)
        return CV_EINVAL;
    w = buf_reserve(b, total + 2, &err);
    if (w == NULL)
        return err;
    w = put_fields(w, f, n);
    put(w, "\r\n", 2);
    buf_commit(b, total + 2);
    return 0;
}

int http1_write_request_head(struct buf *b, const char *method, const char *target,
                             const struct http1_field *f, size_t n)
{
    size_t method_len = strlen(method);
    size_t target_len = strlen(target);
    size_t total;
    uint8_t *w;
    int ok;
    int err = 0;

    if (!token_ok(method, method_len) || !target_ok(target, target_len))
        return CV_EINVAL;
    total = fields_size(f, n, &ok);
    if (!ok)
        return CV_EINVAL;
    total += method_len + 1 + target_len + 11 + 2;
    w = buf_reserve(b, total, &err);
    if (w == NULL)
        return err;
    w = put_request_line(w, method, method_len, target, target_len);
    w = put_fields(w, f, n);
    put(w, "\r\n", 2);
    buf_commit(b, total);
    return 0;
}

int http1_write_response_head(struct buf *b, int status, const char *reason,
                              const struct http1_field *f, size_t n)
{
    size_t reason_len = 0;
    size_t line = status_line_size(status, &reason, &reason_len);
    size_t total;
    uint8_t *w;
    int ok;
    int err = 0;

    if (line == 0)
        return CV_EINVAL;
    total = fields_size(f, n, &ok);
    if (!ok)
        return CV_EINVAL;
    total += line + 2;
    w = buf_reserve(b, total, &err);
    if (w == NULL)
        return err;
    w = put_status_line(w, status, reason, reason_len);
    w = put_fields(w, f, n);
    put(w, "\r\n", 2);
    buf_commit(b, total);
    return 0;
}

int http1_write_chunk_header(struct buf *b, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[2 * sizeof(size_t) + 2];
    size_t i = sizeof(tmp);

    if (n == 0)
        return CV_EINVAL;
    tmp[--i] = '\n';
    tmp[--i] = '\r';
    while (n > 0) {
        tmp[--i] = hex[n & 0xf];
        n >>= 4;
    }
    return buf_append(b, tmp + i, sizeof(tmp) - i);
}

int http1_write_chunk_end(struct buf *b)
{
    return buf_append(b, "\r\n", 2);
}

int http1_write_last_chunk(struct buf *b)
{
    return buf_append(b, "0\r\n\r\n", 5);
}

/* ---- WebSocket ---------------------------------------------------------------------------------- */

static int is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

int http1_ws_key_valid(const char *key, size_t len)
{
    size_t i;

    /* 16 bytes -> 22 significant characters and "==" (RFC 6455 §4.1 item 7). */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (i = 0; i < 22; i++) {
        if (!is_b64(key[i]))
            return 0;
    }
    return 1;
}

int http1_ws_accept(const char *key, size_t key_len, char out[HTTP1_WS_ACCEPT_LEN + 1])
{
    unsigned char in[24 + sizeof(WS_GUID) - 1];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (!http1_ws_key_valid(key, key_len))
        return CV_EINVAL;
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof(WS_GUID) - 1);
    if (EVP_Digest(in, sizeof(in), md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20)
        return CV_ENOMEM;
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != HTTP1_WS_ACCEPT_LEN)
        return CV_ENOMEM;
    return 0;
}

int http1_ws_accept_ok(const char *key, size_t key_len, const char *accept, size_t accept_len)
{
    char want[HTTP1_WS_ACCEPT_LEN + 1];

    if (http1_ws_accept(key, key_len, want) < 0)
        return 0;
    return accept_len == HTTP1_WS_ACCEPT_LEN && memcmp(accept, want, HTTP1_WS_ACCEPT_LEN) == 0;
}
