/*
 * frame.c - the tunnel protocol's frame codec; see frame.h and proto/PROTOCOL.md §3-§5, §9-§11.
 *
 * Sits below mux.c, above nothing: pure functions over caller memory, no allocation, no I/O, no
 * global state, so it is safe on any thread (Culvert only uses it on the loop thread).
 *
 * Decoding is two-phase so that it works on whatever bytes the transport has buffered: once the
 * 9 header octets are in, every check that depends on the header alone (length against the
 * receiver's max_frame_size, stream id rules, fixed sizes) is made at once, before the payload has
 * arrived; the payload checks (REGISTER/REGISTERED string lengths and labels) follow when the whole
 * frame is there. Semantic rules (window increments, settings ranges, stream states) are the mux's.
 */
#include "frame.h"

#include <string.h>

#include "err.h"
#include "wire.h"

#define RESET_LEN 4
#define WINDOW_UPDATE_LEN 4
#define PING_LEN 8
#define GOAWAY_MIN_LEN 12
#define GOAWAY_MAX_LEN (GOAWAY_MIN_LEN + FRAME_GOAWAY_MAX_REASON)
#define SETTINGS_LEN 20
#define RESERVED_BIT 0x80000000u

/* Byte offsets inside the REGISTER payload (PROTOCOL.md §4.2). */
#define REG_OFF_MIN_VERSION 0
#define REG_OFF_MAX_VERSION 2
#define REG_OFF_TUNNEL_ID 4
#define REG_OFF_SECRET 20
#define REG_OFF_CONNECTOR_ID 52
#define REG_OFF_CONN_INDEX 68
#define REG_OFF_RESERVED 69 /* 1 + 2 reserved octets */
#define REG_OFF_SETTINGS 72
#define REG_OFF_VER_LEN 92

/* Byte offsets inside the REGISTERED payload (PROTOCOL.md §4.3). */
#define REGD_OFF_VERSION 0
#define REGD_OFF_RESERVED 2
#define REGD_OFF_CONN_ID 4
#define REGD_OFF_SETTINGS 12
#define REGD_OFF_HEARTBEAT 32
#define REGD_OFF_REG_LEN 36

/* What the table of PROTOCOL.md §3.3 says about a type's stream identifier. */
enum sid_rule { SID_ANY, SID_ZERO, SID_NONZERO };

static enum sid_rule sid_rule_of(uint8_t type)
{
    switch (type) {
    case FRAME_DATA:
    case FRAME_HEADERS:
    case FRAME_CONTINUATION:
    case FRAME_RESET:
    case FRAME_DISPATCHED:
        return SID_NONZERO;
    case FRAME_PING:
    case FRAME_PONG:
    case FRAME_GOAWAY:
    case FRAME_REGISTER:
    case FRAME_REGISTERED:
        return SID_ZERO;
    default:
        return SID_ANY; /* WINDOW_UPDATE and unknown types */
    }
}

void frame_hdr_decode(struct frame_hdr *h, const uint8_t *p)
{
    h->length = get_u24(p);
    h->type = get_u8(p + 3);
    h->flags = get_u8(p + 4);
    /* PROTOCOL.md §3.1: R is ignored on receipt. */
    h->stream_id = get_u32(p + 5) & ~RESERVED_BIT;
}

void frame_hdr_encode(uint8_t *out, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id)
{
    put_u24(out, length);
    put_u8(out + 3, type);
    put_u8(out + 4, flags);
    /* PROTOCOL.md §3.1: R is sent as zero. */
    put_u32(out + 5, stream_id & ~RESERVED_BIT);
}

/*
 * The checks that need only the header. Returns 0 or a negative code with *|why| set.
 */
static int check_hdr(const struct frame_hdr *h, size_t max, const char **why)
{
    enum sid_rule rule;

    /* PROTOCOL.md §3.2: Length against max_frame_size first, before anything else. */
    if (h->length > max) {
        *why = "frame length exceeds max_frame_size";
        return CV_EFRAMESIZE;
    }
    /* PROTOCOL.md §3.4: stream identifier zero or non-zero as the type requires. */
    rule = sid_rule_of(h->type);
    if (rule == SID_NONZERO && h->stream_id == 0) {
        *why = "frame type requires a non-zero stream id";
        return CV_EPROTO;
    }
    if (rule == SID_ZERO && h->stream_id != 0) {
        *why = "frame type requires stream id 0";
        return CV_EPROTO;
    }
    /* PROTOCOL.md §3.4, §4.2, §4.3, §11.1: lengths fixed or bounded by the type. */
    switch (h->type) {
    case FRAME_RESET:
        if (h->length != RESET_LEN) {
            *why = "RESET length is not 4";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_WINDOW_UPDATE:
        if (h->length != WINDOW_UPDATE_LEN) {
            *why = "WINDOW_UPDATE length is not 4";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_PING:
    case FRAME_PONG:
        if (h->length != PING_LEN) {
            *why = "PING/PONG length is not 8";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_DISPATCHED:
        if (h->length != 0) {
            *why = "DISPATCHED length is not 0";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_GOAWAY:
        if (h->length < GOAWAY_MIN_LEN || h->length > GOAWAY_MAX_LEN) {
            *why = "GOAWAY length outside 12..268";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_REGISTER:
        if (h->length < FRAME_REGISTER_FIXED_LEN ||
            h->length > FRAME_REGISTER_FIXED_LEN + 2 * 255) {
            *why = "REGISTER length impossible";
            return CV_EFRAMESIZE;
        }
        break;
    case FRAME_REGISTERED:
        if (h->length < FRAME_REGISTERED_FIXED_LEN ||
            h->length > FRAME_REGISTERED_FIXED_LEN + 2 * 255) {
            *why = "REGISTERED length impossible";
            return CV_EFRAMESIZE;
        }
        break;
    default:
        break;
    }
    return 0;
}

/* PROTOCOL.md §4.2: labels are printable ASCII 0x21-0x7e. */
static int label_char_ok(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e;
}

/* PROTOCOL.md §4.2: region labels are [A-Za-z0-9._-]. */
static int region_char_ok(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/*
 * Copies a length-prefixed label of |len| octets at |p| into |dst| (FRAME_LABEL_MAX + 1 bytes,
 * NUL-terminated), checking the length and the characters. Returns 0 or CV_EPROTO.
 */
static int take_label(char *dst, const uint8_t *p, size_t len, int region, const char **why)
{
    if (len > FRAME_LABEL_MAX) {
        *why = "label longer than 64 octets";
        return CV_EPROTO;
    }
    for (size_t i = 0; i < len; i++) {
        if (region ? !region_char_ok(p[i]) : !label_char_ok(p[i])) {
            *why = region ? "region label has a character outside [A-Za-z0-9._-]"
                          : "label has a byte outside printable ASCII";
            return CV_EPROTO;
        }
    }
    memcpy(dst, p, len);
    dst[len] = '\0';
    return 0;
}

static void settings_decode(struct frame_settings *s, const uint8_t *p)
{
    s->initial_stream_window = get_u32(p);
    s->connection_window = get_u32(p + 4);
    s->max_frame_size = get_u32(p + 8);
    s->max_concurrent_streams = get_u32(p + 12);
    s->max_metadata_size = get_u32(p + 16);
}

static void settings_encode(uint8_t *p, const struct frame_settings *s)
{
    put_u32(p, s->initial_stream_window);
    put_u32(p + 4, s->connection_window);
    put_u32(p + 8, s->max_frame_size);
    put_u32(p + 12, s->max_concurrent_streams);
    put_u32(p + 16, s->max_metadata_size);
}

/*
 * Two length-prefixed strings after a fixed part: checks that |total| == fixed + a + b exactly
 * (PROTOCOL.md §4.2, §4.3) and returns their offsets. Precondition: total >= fixed_len, where
 * fixed_len counts both length octets.
 */
static int two_labels(const uint8_t *pl, size_t total, size_t first_len_off, size_t fixed_len,
                      size_t *a_off, size_t *a_len, size_t *b_off, size_t *b_len, const char **why)
{
    size_t a = pl[first_len_off];
    size_t second_len_off = first_len_off + 1 + a;

    /* The second length octet must lie inside the frame before we read it. */
    if (second_len_off >= total) {
        *why = "string length runs past the frame";
        return CV_EFRAMESIZE;
    }
    if (total != fixed_len + a + pl[second_len_off]) {
        *why = "frame length does not match its string lengths";
        return CV_EFRAMESIZE;
    }
    *a_off = first_len_off + 1;
    *a_len = a;
    *b_off = second_len_off + 1;
    *b_len = pl[second_len_off];
    return 0;
}

static int decode_register(struct frame_register *r, const uint8_t *pl, size_t len, const char **why)
{
    size_t ver_off, ver_len, reg_off, reg_len;
    int rv;

    rv = two_labels(pl, len, REG_OFF_VER_LEN, FRAME_REGISTER_FIXED_LEN, &ver_off, &ver_len, &reg_off,
                    &reg_len, why);
    if (rv < 0)
        return rv;
    r->min_version = get_u16(pl + REG_OFF_MIN_VERSION);
    r->max_version = get_u16(pl + REG_OFF_MAX_VERSION);
    memcpy(r->tunnel_id, pl + REG_OFF_TUNNEL_ID, sizeof(r->tunnel_id));
    memcpy(r->secret, pl + REG_OFF_SECRET, sizeof(r->secret));
    memcpy(r->connector_id, pl + REG_OFF_CONNECTOR_ID, sizeof(r->connector_id));
    r->conn_index = get_u8(pl + REG_OFF_CONN_INDEX);
    /* The three reserved octets at REG_OFF_RESERVED are ignored. */
    settings_decode(&r->settings, pl + REG_OFF_SETTINGS);
    rv = take_label(r->version, pl + ver_off, ver_len, 0, why);
    if (rv < 0)
        return rv;
    return take_label(r->region, pl + reg_off, reg_len, 1, why);
}

static int decode_registered(struct frame_registered *r, const uint8_t *pl, size_t len,
                             const char **why)
{
    size_t reg_off, reg_len, name_off, name_len;
    int rv;

    rv = two_labels(pl, len, REGD_OFF_REG_LEN, FRAME_REGISTERED_FIXED_LEN, &reg_off, &reg_len,
                    &name_off, &name_len, why);
    if (rv < 0)
        return rv;
    r->version = get_u16(pl + REGD_OFF_VERSION);
    /* The reserved 16 bits at REGD_OFF_RESERVED are ignored. */
    r->connection_id = get_u64(pl + REGD_OFF_CONN_ID);
    settings_decode(&r->settings, pl + REGD_OFF_SETTINGS);
    r->heartbeat_ms = get_u32(pl + REGD_OFF_HEARTBEAT);
    /* The edge region follows the REGISTER region rule; the edge name is a plain label. */
    rv = take_label(r->region, pl + reg_off, reg_len, 1, why);
    if (rv < 0)
        return rv;
    return take_label(r->name, pl + name_off, name_len, 0, why);
}

ssize_t frame_decode(struct frame *f, const uint8_t *p, size_t n, size_t max, const char **why)
{
    struct frame_hdr h;
    const uint8_t *pl;
    const char *dummy;
    int rv;

    if (why == NULL)
        why = &dummy;
    if (n < FRAME_HDR_LEN)
        return 0;
    frame_hdr_decode(&h, p);
    rv = check_hdr(&h, max, why);
    if (rv < 0)
        return rv;
    /* h.length <= max, a size_t, and <= 0xffffff: no overflow below. */
    if (n - FRAME_HDR_LEN < h.length)
        return 0;

    pl = p + FRAME_HDR_LEN;
    memset(f, 0, sizeof(*f));
    f->hdr = h;
    f->payload = pl;
    switch (h.type) {
    case FRAME_RESET:
        f->u.code = get_u32(pl);
        break;
    case FRAME_WINDOW_UPDATE:
        /* PROTOCOL.md §9.3: the reserved bit is ignored; increment 0 is for the mux to judge. */
        f->u.increment = get_u32(pl) & ~RESERVED_BIT;
        break;
    case FRAME_PING:
    case FRAME_PONG:
        memcpy(f->u.opaque, pl, PING_LEN);
        break;
    case FRAME_GOAWAY:
        f->u.goaway.last_stream_id = get_u32(pl) & ~RESERVED_BIT;
        f->u.goaway.code = get_u32(pl + 4);
        f->u.goaway.retry_after_ms = get_u32(pl + 8);
        f->u.goaway.reason_len = h.length - GOAWAY_MIN_LEN;
        f->u.goaway.reason = f->u.goaway.reason_len > 0 ? pl + GOAWAY_MIN_LEN : NULL;
        break;
    case FRAME_REGISTER:
        rv = decode_register(&f->u.reg, pl, h.length, why);
        if (rv < 0)
            return rv;
        break;
    case FRAME_REGISTERED:
        rv = decode_registered(&f->u.regd, pl, h.length, why);
        if (rv < 0)
            return rv;
        break;
    default:
        /* DATA, HEADERS, CONTINUATION, DISPATCHED and unknown types: the payload is all. */
        break;
    }
    return (ssize_t)(FRAME_HDR_LEN + h.length);
}

/* Room check shared by the encoders. Returns 0 when |len| payload octets plus a header fit. */
static int room(size_t cap, size_t len)
{
    return cap >= FRAME_HDR_LEN && len <= cap - FRAME_HDR_LEN ? 0 : CV_EFULL;
}

ssize_t frame_encode_reset(uint8_t *out, size_t cap, uint32_t sid, uint32_t code)
{
    if (room(cap, RESET_LEN) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, RESET_LEN, FRAME_RESET, 0, sid);
    put_u32(out + FRAME_HDR_LEN, code);
    return FRAME_HDR_LEN + RESET_LEN;
}

ssize_t frame_encode_window_update(uint8_t *out, size_t cap, uint32_t sid, uint32_t increment)
{
    if (room(cap, WINDOW_UPDATE_LEN) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, WINDOW_UPDATE_LEN, FRAME_WINDOW_UPDATE, 0, sid);
    put_u32(out + FRAME_HDR_LEN, increment & ~RESERVED_BIT);
    return FRAME_HDR_LEN + WINDOW_UPDATE_LEN;
}

ssize_t frame_encode_ping(uint8_t *out, size_t cap, uint8_t type, const uint8_t opaque[8])
{
    if (room(cap, PING_LEN) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, PING_LEN, type, 0, 0);
    memcpy(out + FRAME_HDR_LEN, opaque, PING_LEN);
    return FRAME_HDR_LEN + PING_LEN;
}

ssize_t frame_encode_goaway(uint8_t *out, size_t cap, const struct frame_goaway *g)
{
    size_t len;

    if (g->reason_len > FRAME_GOAWAY_MAX_REASON)
        return CV_EINVAL;
    len = GOAWAY_MIN_LEN + g->reason_len;
    if (room(cap, len) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, (uint32_t)len, FRAME_GOAWAY, 0, 0);
    put_u32(out + FRAME_HDR_LEN, g->last_stream_id & ~RESERVED_BIT);
    put_u32(out + FRAME_HDR_LEN + 4, g->code);
    put_u32(out + FRAME_HDR_LEN + 8, g->retry_after_ms);
    if (g->reason_len > 0)
        memcpy(out + FRAME_HDR_LEN + GOAWAY_MIN_LEN, g->reason, g->reason_len);
    return (ssize_t)(FRAME_HDR_LEN + len);
}

/* Length of a NUL-terminated label held in a FRAME_LABEL_MAX + 1 array, or -1 if it is too long. */
static int label_len(const char *s)
{
    size_t n = strnlen(s, FRAME_LABEL_MAX + 1);

    return n > FRAME_LABEL_MAX ? -1 : (int)n;
}

/* Writes a length octet and |len| bytes of |s| at |p|; returns the octets written. */
static size_t put_label(uint8_t *p, const char *s, size_t len)
{
    put_u8(p, (uint8_t)len);
    memcpy(p + 1, s, len);
    return 1 + len;
}

ssize_t frame_encode_register(uint8_t *out, size_t cap, const struct frame_register *r)
{
    int ver_len = label_len(r->version);
    int reg_len = label_len(r->region);
    size_t len;
    uint8_t *pl;
    size_t off;

    if (ver_len < 0 || reg_len < 0)
        return CV_EINVAL;
    len = FRAME_REGISTER_FIXED_LEN + (size_t)ver_len + (size_t)reg_len;
    if (room(cap, len) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, (uint32_t)len, FRAME_REGISTER, 0, 0);
    pl = out + FRAME_HDR_LEN;
    put_u16(pl + REG_OFF_MIN_VERSION, r->min_version);
    put_u16(pl + REG_OFF_MAX_VERSION, r->max_version);
    memcpy(pl + REG_OFF_TUNNEL_ID, r->tunnel_id, sizeof(r->tunnel_id));
    memcpy(pl + REG_OFF_SECRET, r->secret, sizeof(r->secret));
    memcpy(pl + REG_OFF_CONNECTOR_ID, r->connector_id, sizeof(r->connector_id));
    put_u8(pl + REG_OFF_CONN_INDEX, r->conn_index);
    memset(pl + REG_OFF_RESERVED, 0, REG_OFF_SETTINGS - REG_OFF_RESERVED);
    settings_encode(pl + REG_OFF_SETTINGS, &r->settings);
    off = REG_OFF_VER_LEN;
    off += put_label(pl + off, r->version, (size_t)ver_len);
    put_label(pl + off, r->region, (size_t)reg_len);
    return (ssize_t)(FRAME_HDR_LEN + len);
}

ssize_t frame_encode_registered(uint8_t *out, size_t cap, const struct frame_registered *r)
{
    int reg_len = label_len(r->region);
    int name_len = label_len(r->name);
    size_t len;
    uint8_t *pl;
    size_t off;

    if (reg_len < 0 || name_len < 0)
        return CV_EINVAL;
    len = FRAME_REGISTERED_FIXED_LEN + (size_t)reg_len + (size_t)name_len;
    if (room(cap, len) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, (uint32_t)len, FRAME_REGISTERED, 0, 0);
    pl = out + FRAME_HDR_LEN;
    put_u16(pl + REGD_OFF_VERSION, r->version);
    put_u16(pl + REGD_OFF_RESERVED, 0);
    put_u64(pl + REGD_OFF_CONN_ID, r->connection_id);
    settings_encode(pl + REGD_OFF_SETTINGS, &r->settings);
    put_u32(pl + REGD_OFF_HEARTBEAT, r->heartbeat_ms);
    off = REGD_OFF_REG_LEN;
    off += put_label(pl + off, r->region, (size_t)reg_len);
    put_label(pl + off, r->name, (size_t)name_len);
    return (ssize_t)(FRAME_HDR_LEN + len);
}

ssize_t frame_encode_dispatched(uint8_t *out, size_t cap, uint32_t sid)
{
    if (room(cap, 0) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, 0, FRAME_DISPATCHED, 0, sid);
    return FRAME_HDR_LEN;
}

ssize_t frame_encode_raw(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint32_t sid,
                         const uint8_t *payload, size_t len)
{
    if (len > FRAME_MAX_LENGTH)
        return CV_EINVAL;
    if (room(cap, len) < 0)
        return CV_EFULL;
    frame_hdr_encode(out, (uint32_t)len, type, flags, sid);
    if (len > 0)
        memcpy(out + FRAME_HDR_LEN, payload, len);
    return (ssize_t)(FRAME_HDR_LEN + len);
}

ssize_t frame_encode(uint8_t *out, size_t cap, const struct frame *f)
{
    ssize_t rv;

    switch (f->hdr.type) {
    case FRAME_RESET:
        rv = frame_encode_reset(out, cap, f->hdr.stream_id, f->u.code);
        break;
    case FRAME_WINDOW_UPDATE:
        rv = frame_encode_window_update(out, cap, f->hdr.stream_id, f->u.increment);
        break;
    case FRAME_PING:
    case FRAME_PONG:
        rv = frame_encode_ping(out, cap, f->hdr.type, f->u.opaque);
        break;
    case FRAME_GOAWAY:
        rv = frame_encode_goaway(out, cap, &f->u.goaway);
        break;
    case FRAME_REGISTER:
        rv = frame_encode_register(out, cap, &f->u.reg);
        break;
    case FRAME_REGISTERED:
        rv = frame_encode_registered(out, cap, &f->u.regd);
        break;
    case FRAME_DISPATCHED:
        rv = frame_encode_dispatched(out, cap, f->hdr.stream_id);
        break;
    default:
        return frame_encode_raw(out, cap, f->hdr.type, f->hdr.flags, f->hdr.stream_id, f->payload,
                                f->hdr.length);
    }
    /* The typed encoders send no flags; a re-encoding keeps the ones that were decoded. */
    if (rv > 0)
        put_u8(out + 4, f->hdr.flags);
    return rv;
}

int frame_settings_validate(const struct frame_settings *s, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    /* PROTOCOL.md §4.4: the allowed range of each setting. */
    if (s->initial_stream_window < 1 || s->initial_stream_window > FRAME_MAX_WINDOW) {
        *why = "initial_stream_window outside 1..2^31-1";
        return CV_EPROTO;
    }
    if (s->connection_window < 65535 || s->connection_window > FRAME_MAX_WINDOW) {
        *why = "connection_window outside 65535..2^31-1";
        return CV_EPROTO;
    }
    if (s->max_frame_size < FRAME_MIN_MAX_SIZE || s->max_frame_size > FRAME_MAX_MAX_SIZE) {
        *why = "max_frame_size outside 16384..1048576";
        return CV_EPROTO;
    }
    if (s->max_concurrent_streams < 1 || s->max_concurrent_streams > 65535) {
        *why = "max_concurrent_streams outside 1..65535";
        return CV_EPROTO;
    }
    if (s->max_metadata_size < 4096 || s->max_metadata_size > 1048576) {
        *why = "max_metadata_size outside 4096..1048576";
        return CV_EPROTO;
    }
    return 0;
}

const char *frame_type_name(unsigned type)
{
    static const char *const names[FRAME_TYPE_COUNT] = {
        [FRAME_DATA] = "DATA",
        [FRAME_HEADERS] = "HEADERS",
        [FRAME_CONTINUATION] = "CONTINUATION",
        [FRAME_RESET] = "RESET",
        [FRAME_WINDOW_UPDATE] = "WINDOW_UPDATE",
        [FRAME_PING] = "PING",
        [FRAME_PONG] = "PONG",
        [FRAME_GOAWAY] = "GOAWAY",
        [FRAME_REGISTER] = "REGISTER",
        [FRAME_REGISTERED] = "REGISTERED",
        [FRAME_DISPATCHED] = "DISPATCHED",
    };

    return type < FRAME_TYPE_COUNT ? names[type] : "UNKNOWN";
}

const char *frame_code_name(uint32_t code)
{
    switch (code) {
    case CODE_NO_ERROR:
        return "NO_ERROR";
    case CODE_PROTOCOL_ERROR:
        return "PROTOCOL_ERROR";
    case CODE_INTERNAL_ERROR:
        return "INTERNAL_ERROR";
    case CODE_FLOW_CONTROL_ERROR:
        return "FLOW_CONTROL_ERROR";
    case CODE_TIMEOUT:
        return "TIMEOUT";
    case CODE_STREAM_CLOSED:
        return "STREAM_CLOSED";
    case CODE_FRAME_SIZE_ERROR:
        return "FRAME_SIZE_ERROR";
    case CODE_REFUSED_STREAM:
        return "REFUSED_STREAM";
    case CODE_CANCEL:
        return "CANCEL";
    case CODE_METADATA_TOO_LARGE:
        return "METADATA_TOO_LARGE";
    case CODE_ENHANCE_YOUR_CALM:
        return "ENHANCE_YOUR_CALM";
    case CODE_AUTH_FAILED:
        return "AUTH_FAILED";
    case CODE_UNSUPPORTED_VERSION:
        return "UNSUPPORTED_VERSION";
    case CODE_LIMIT_EXCEEDED:
        return "LIMIT_EXCEEDED";
    case CODE_ORIGIN_UNREACHABLE:
        return "ORIGIN_UNREACHABLE";
    case CODE_ORIGIN_TIMEOUT:
        return "ORIGIN_TIMEOUT";
    case CODE_ORIGIN_ERROR:
        return "ORIGIN_ERROR";
    case CODE_NO_SERVICE:
        return "NO_SERVICE";
    default:
        return "UNKNOWN";
    }
}
