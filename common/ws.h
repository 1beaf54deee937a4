/*
 * ws.h - WebSocket frames (RFC 6455 §5): an incremental decoder and the encoders, pure, sans-I/O.
 *
 * Who uses it. The connector terminates WebSockets whose ingress rule is a TCP service
 * (connector/origin_tcp.c, the server role): binary frames from the visitor carry the bytes, the
 * target's bytes go back as binary frames. No extension is ever negotiated, so the RSV bits are
 * always zero. No I/O, no allocation, no clock; one loop thread per decoder.
 *
 * Decoding. ws_decode() takes whatever bytes arrived (any split, one byte at a time if need be) and
 * reports one event per call. Data frames (TEXT, BINARY, CONT) are streamed: their header is one
 * event, then their payload comes unmasked in pieces as it arrives, so a large frame is never
 * buffered whole. Control frames (CLOSE, PING, PONG: at most 125 payload bytes, never fragmented)
 * are buffered inside the decoder and reported whole. Every rule of §5.2-§5.5 that a single
 * endpoint can check is checked as soon as the bytes that break it are in: reserved bits, opcodes,
 * the mask bit against the role (§5.1: client frames masked, server frames not), the minimal length
 * encoding (§5.2: 126 and 127 only for lengths that need them, the 64-bit length's top bit zero),
 * control frame size and FIN, the fragmentation order (§5.4), the payload limit (checked on the
 * header, before any payload byte is awaited), and a Close frame's payload (§5.5.1, §7.4: no
 * one-byte payload, a code that may be sent, a UTF-8 reason). Text payloads are not checked for
 * UTF-8: the decoder does not judge what the application does with text.
 *
 * Errors are final: the decoder keeps returning the same code. ws_error_close_code() gives the
 * status to close with: CV_EPROTO 1002, CV_ELIMIT 1009, CV_EPARSE 1007.
 */
#ifndef CV_WS_H
#define CV_WS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Opcodes (§5.2). */
#define WS_OP_CONT 0x0
#define WS_OP_TEXT 0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE 0x8
#define WS_OP_PING 0x9
#define WS_OP_PONG 0xA

#define WS_HDR_MAX 14       /* 2 + 8 (64-bit length) + 4 (masking key) */
#define WS_CONTROL_MAX 125  /* control frame payload limit (§5.5) */
#define WS_CONTROL_FRAME_MAX (WS_HDR_MAX + WS_CONTROL_MAX)

/* Close status codes (§7.4.1). */
#define WS_CLOSE_NORMAL 1000
#define WS_CLOSE_GOING_AWAY 1001
#define WS_CLOSE_PROTOCOL 1002
#define WS_CLOSE_UNSUPPORTED 1003
#define WS_CLOSE_NO_STATUS 1005  /* never sent: an empty Close payload */
#define WS_CLOSE_ABNORMAL 1006   /* never sent: the connection ended without a Close */
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY 1008
#define WS_CLOSE_TOO_BIG 1009
#define WS_CLOSE_INTERNAL 1011

enum ws_role {
    WS_ROLE_SERVER, /* we are the server: the peer's frames must be masked, ours are not */
    WS_ROLE_CLIENT, /* we are the client: the peer's frames must not be masked, ours are */
};

/* A frame header as decoded or to encode. */
struct ws_frame {
    uint8_t opcode;  /* WS_OP_* */
    uint8_t fin;     /* 1: the last frame of its message (always 1 for control frames) */
    uint8_t masked;  /* 1: |mask| applies to the payload */
    uint8_t mask[4];
    uint64_t len;    /* payload length */
};

enum ws_event_kind {
    WS_EV_NONE,    /* every input byte was used: feed more */
    WS_EV_FRAME,   /* a data frame (TEXT, BINARY, CONT) began: |frame|; its payload follows as
                    * WS_EV_DATA events (none when frame.len is 0) */
    WS_EV_DATA,    /* |n| >= 1 unmasked payload bytes of the current data frame at |data| */
    WS_EV_CONTROL, /* a whole control frame: |frame|, its unmasked payload at |data| (|n| <= 125) */
};

struct ws_event {
    enum ws_event_kind kind;
    struct ws_frame frame; /* FRAME, DATA, CONTROL: the frame the event belongs to */
    const uint8_t *data;   /* DATA: the caller's |out|; CONTROL: inside the decoder, valid until the
                            * next ws_decode() call */
    size_t n;
};

/* Decoder state; fields are private to ws.c (a plain value, so it can live inside its owner). */
struct ws_decoder {
    enum ws_role role;
    uint64_t max_payload;    /* data frame payload limit -> CV_ELIMIT */
    int state;
    int err;                 /* the final error, or 0 */
    const char *why;         /* its reason */
    uint8_t hdr[WS_HDR_MAX];
    size_t hdr_have;
    size_t hdr_need;
    struct ws_frame cur;
    uint64_t done;           /* payload bytes of |cur| read so far */
    int in_message;          /* a fragmented data message is open: only CONT may continue it */
    uint8_t ctl[WS_CONTROL_MAX];
};

/* Prepares |d| to decode the peer's frames for our |role|, with data frames of at most
 * |max_payload| bytes (larger: CV_ELIMIT, close 1009). */
void ws_decoder_init(struct ws_decoder *d, enum ws_role role, uint64_t max_payload);

/*
 * Decodes from the |n| bytes at |p| (borrowed) and reports one event in |ev|. Payload bytes of data
 * frames are unmasked into |out| (at most |outcap| >= 1 bytes per event). Returns how many bytes of
 * |p| were used: the caller advances |p| and calls again until ev->kind is WS_EV_NONE (then all |n|
 * bytes were used; a partial header or control payload is kept inside the decoder). Or returns a
 * negative code, with a static reason in *|why| (|why| may be NULL): CV_EPROTO (a protocol
 * violation), CV_ELIMIT (a data frame over max_payload), CV_EPARSE (a Close reason that is not
 * UTF-8), CV_EINVAL (|outcap| 0). Errors are final.
 */
ssize_t ws_decode(struct ws_decoder *d, const uint8_t *p, size_t n, uint8_t *out, size_t outcap,
                  struct ws_event *ev, const char **why);

/* 1 when no frame is partly read (between frames), else 0. */
int ws_decoder_at_boundary(const struct ws_decoder *d);
/* 1 while a fragmented data message is open (a non-final TEXT/BINARY frame was read and its
 * final CONT frame was not), else 0. */
int ws_decoder_in_message(const struct ws_decoder *d);

/* The close status for a decoding error: 1002 for CV_EPROTO, 1009 for CV_ELIMIT, 1007 for
 * CV_EPARSE, 1011 for anything else. */
uint16_t ws_error_close_code(int err);

/* Header length of a frame of |len| payload bytes: 2, 4 or 10, plus 4 when |masked|. */
size_t ws_header_len(uint64_t len, int masked);

/*
 * Writes the header of a frame (|opcode|, |fin|, |len| payload bytes) into |out| (at least
 * WS_HDR_MAX bytes), with the minimal length encoding. |mask| NULL: a server frame (unmasked); else
 * the 4-byte masking key of a client frame (the caller masks the payload with ws_mask()). Returns
 * the header length, or CV_EINVAL: an unknown opcode, a control frame that is not final or has
 * more than 125 bytes, a length of 2^63 or more.
 */
int ws_encode_header(uint8_t *out, uint8_t opcode, int fin, uint64_t len, const uint8_t *mask);

/* XORs the |n| bytes at |p| in place with |mask|, |p| being at payload offset |offset|. Masking and
 * unmasking are the same operation (§5.3). */
void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/*
 * Writes a whole control frame (|opcode| CLOSE, PING or PONG, final) with the |n| payload bytes of
 * |payload| (borrowed; masked in the output when |mask| is not NULL) into |out| (|cap| bytes;
 * WS_CONTROL_FRAME_MAX always suffices). Returns the frame length, or CV_EINVAL (not a control
 * opcode, |n| over 125), CV_EFULL (|cap| too small); |out| is then unspecified.
 */
int ws_encode_control(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t n,
                      const uint8_t *mask);

/*
 * Writes a Close frame with status |code| and |reason_len| bytes of |reason| (may be NULL when 0)
 * into |out| (|cap| bytes). |code| 0 writes an empty Close (no status). Returns the frame length,
 * or CV_EINVAL (a code that may not be sent, a reason over 123 bytes or not UTF-8), CV_EFULL.
 */
int ws_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason, size_t reason_len,
                    const uint8_t *mask);

/*
 * Reads the unmasked Close payload |p| (|n| bytes, borrowed): *|code| is its status, or 1005 when
 * the payload is empty. Returns 0, or CV_EPROTO (one byte; a code that may not be sent: below
 * 1000, 1004-1006, 1015-2999, 5000 and up) or CV_EPARSE (the reason is not UTF-8), with a static
 * reason in *|why| (may be NULL).
 */
int ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, const char **why);

/* 1 if |code| may appear in a Close frame (1000-1003, 1007-1014, 3000-4999), else 0. */
int ws_close_code_valid(unsigned code);

/* 1 if the |n| bytes at |p| are well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing
 * above U+10FFFF), else 0. */
int ws_utf8_valid(const uint8_t *p, size_t n);

#endif
