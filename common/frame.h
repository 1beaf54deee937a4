/*
 * frame.h - the tunnel protocol's frame codec (proto/PROTOCOL.md sections 3, 4, 5, 7, 9-11).
 *
 * Pure functions: no I/O, no allocation, no global state. Decoding borrows the input (payload
 * pointers point into it); encoding writes into caller memory. The multiplexer (mux.c) sits on top;
 * the metadata block codec is in meta.h.
 */
#ifndef CV_FRAME_H
#define CV_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FRAME_HDR_LEN 9
#define FRAME_PREFACE "CVTUNNEL"
#define FRAME_PREFACE_LEN 8
#define FRAME_ALPN "culvert/1"
#define FRAME_VERSION 1
#define FRAME_MAX_LENGTH 0xffffffu            /* what the 24-bit field can carry */
#define FRAME_MIN_MAX_SIZE 16384u              /* PROTOCOL.md §3.2 */
#define FRAME_MAX_MAX_SIZE 1048576u
#define FRAME_MAX_STREAM_ID 0x7fffffffu
#define FRAME_MAX_WINDOW 0x7fffffff
#define FRAME_GOAWAY_MAX_REASON 256
#define FRAME_RETRY_NEVER 0xffffffffu
#define FRAME_REGISTER_FIXED_LEN 94            /* without the two strings, §4.2 */
#define FRAME_REGISTERED_FIXED_LEN 38          /* §4.3 */
#define FRAME_LABEL_MAX 64

enum frame_type {
    FRAME_DATA = 0x0,
    FRAME_HEADERS = 0x1,
    FRAME_CONTINUATION = 0x2,
    FRAME_RESET = 0x3,
    FRAME_WINDOW_UPDATE = 0x4,
    FRAME_PING = 0x5,
    FRAME_PONG = 0x6,
    FRAME_GOAWAY = 0x7,
    FRAME_REGISTER = 0x8,
    FRAME_REGISTERED = 0x9,
    FRAME_DISPATCHED = 0xa,
    FRAME_TYPE_COUNT
};

#define FRAME_F_END_STREAM 0x1
#define FRAME_F_END_HEADERS 0x4

/* Error codes on the wire (PROTOCOL.md §5). */
enum frame_code {
    CODE_NO_ERROR = 0x00,
    CODE_PROTOCOL_ERROR = 0x01,
    CODE_INTERNAL_ERROR = 0x02,
    CODE_FLOW_CONTROL_ERROR = 0x03,
    CODE_TIMEOUT = 0x04,
    CODE_STREAM_CLOSED = 0x05,
    CODE_FRAME_SIZE_ERROR = 0x06,
    CODE_REFUSED_STREAM = 0x07,
    CODE_CANCEL = 0x08,
    CODE_METADATA_TOO_LARGE = 0x09,
    CODE_ENHANCE_YOUR_CALM = 0x0b,
    CODE_AUTH_FAILED = 0x20,
    CODE_UNSUPPORTED_VERSION = 0x21,
    CODE_LIMIT_EXCEEDED = 0x22,
    CODE_ORIGIN_UNREACHABLE = 0x30,
    CODE_ORIGIN_TIMEOUT = 0x31,
    CODE_ORIGIN_ERROR = 0x32,
    CODE_NO_SERVICE = 0x33,
};

struct frame_hdr {
    uint32_t length;
    uint8_t type;
    uint8_t flags;
    uint32_t stream_id; /* reserved bit already cleared */
};

/* Settings: what the sender accepts (PROTOCOL.md §4.4). */
struct frame_settings {
    uint32_t initial_stream_window;
    uint32_t connection_window;
    uint32_t max_frame_size;
    uint32_t max_concurrent_streams;
    uint32_t max_metadata_size;
};

struct frame_register {
    uint16_t min_version;
    uint16_t max_version;
    uint8_t tunnel_id[16];
    uint8_t secret[32];
    uint8_t connector_id[16];
    uint8_t conn_index;
    struct frame_settings settings;
    char version[FRAME_LABEL_MAX + 1]; /* NUL-terminated */
    char region[FRAME_LABEL_MAX + 1];
};

struct frame_registered {
    uint16_t version;
    uint64_t connection_id;
    struct frame_settings settings;
    uint32_t heartbeat_ms;
    char region[FRAME_LABEL_MAX + 1];
    char name[FRAME_LABEL_MAX + 1];
};

struct frame_goaway {
    uint32_t last_stream_id;
    uint32_t code;
    uint32_t retry_after_ms;
    const uint8_t *reason; /* borrowed; not NUL-terminated */
    size_t reason_len;
};

/* One decoded frame. |payload| borrows the decoder's input. */
struct frame {
    struct frame_hdr hdr;
    const uint8_t *payload;
    union {
        uint32_t code;      /* RESET */
        uint32_t increment; /* WINDOW_UPDATE */
        uint8_t opaque[8];  /* PING, PONG */
        struct frame_goaway goaway;
        struct frame_register reg;
        struct frame_registered regd;
    } u;
};

/*
 * Decodes a 9-octet header at |p| (precondition: n >= 9). Pure field extraction: no validation.
 */
void frame_hdr_decode(struct frame_hdr *h, const uint8_t *p);
/* Writes a 9-octet header for the given fields at |out|. Precondition: length <= 0xffffff. */
void frame_hdr_encode(uint8_t *out, uint32_t length, uint8_t type, uint8_t flags, uint32_t stream_id);

/*
 * Decodes one frame from the |n| bytes at |p|, checking the length against |max| (the receiver's
 * max_frame_size) as soon as the header is in, before the payload has arrived.
 * Returns the bytes used (9 + length) and fills |f|; 0 when |p| holds less than one whole frame (and
 * the header, if complete, is within limits); or a negative code with a static reason in *|why|:
 *   CV_EFRAMESIZE  length > max, or wrong for a fixed-size type, or REGISTER/REGISTERED/GOAWAY
 *                  lengths inconsistent (PROTOCOL.md §3.2, §3.4, §4.2, §4.3, §11.1);
 *   CV_EPROTO      stream id 0 where forbidden or non-zero where required (§3.4), bad label bytes.
 * Every check that needs only the header (length over |max|, stream id rule, fixed or bounded
 * lengths) is made as soon as 9 octets are in, so such errors come before the payload has arrived;
 * REGISTER/REGISTERED string lengths and labels are checked once the whole frame is in. Labels are
 * at most 64 octets of 0x21-0x7e, and region labels (REGISTER region, REGISTERED edge region) only
 * [A-Za-z0-9._-]. Flags are returned as received: callers test only the defined bits.
 * Unknown types decode successfully (type >= FRAME_TYPE_COUNT); the caller skips them.
 * Semantic rules (window increment 0, settings ranges, stream states) belong to the mux.
 * |why| may be NULL.
 */
ssize_t frame_decode(struct frame *f, const uint8_t *p, size_t n, size_t max, const char **why);

/*
 * Encoders: each writes one whole frame (header + payload) at |out| with room |cap| and returns its
 * length, or CV_EFULL when |cap| is too small (nothing useful written). Stream ids and codes are taken
 * as given; callers pass valid values. Reserved bits (stream id, WINDOW_UPDATE increment, GOAWAY last
 * id, REGISTER/REGISTERED reserved fields) are sent as zero and no flags are set. Also CV_EINVAL,
 * nothing written, for what the wire cannot carry: a REGISTER/REGISTERED label without a NUL within
 * FRAME_LABEL_MAX + 1 bytes, a GOAWAY reason over FRAME_GOAWAY_MAX_REASON, a raw payload over
 * FRAME_MAX_LENGTH.
 */
ssize_t frame_encode_reset(uint8_t *out, size_t cap, uint32_t sid, uint32_t code);
ssize_t frame_encode_window_update(uint8_t *out, size_t cap, uint32_t sid, uint32_t increment);
ssize_t frame_encode_ping(uint8_t *out, size_t cap, uint8_t type, const uint8_t opaque[8]);
ssize_t frame_encode_goaway(uint8_t *out, size_t cap, const struct frame_goaway *g);
ssize_t frame_encode_register(uint8_t *out, size_t cap, const struct frame_register *r);
ssize_t frame_encode_registered(uint8_t *out, size_t cap, const struct frame_registered *r);
ssize_t frame_encode_dispatched(uint8_t *out, size_t cap, uint32_t sid);
/* DATA, HEADERS, CONTINUATION and unknown types: header + copy of |len| bytes of |payload|. */
ssize_t frame_encode_raw(uint8_t *out, size_t cap, uint8_t type, uint8_t flags, uint32_t sid,
                         const uint8_t *payload, size_t len);
/* Re-encodes a decoded frame |f| (any type) so tests can check decode/encode round trips. The
 * flags octet is written as decoded (f->hdr.flags); reserved bits are zero. */
ssize_t frame_encode(uint8_t *out, size_t cap, const struct frame *f);

/* Checks |s| against the ranges of PROTOCOL.md §4.4. Returns 0 or CV_EPROTO with *|why| set. */
int frame_settings_validate(const struct frame_settings *s, const char **why);

/* Static names for logs: "DATA", "PROTOCOL_ERROR". Unknown values give "UNKNOWN". */
const char *frame_type_name(unsigned type);
const char *frame_code_name(uint32_t code);

#endif
