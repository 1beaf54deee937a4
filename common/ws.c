/*
 * ws.c - WebSocket frames (RFC 6455 §5); see ws.h. Pure: no I/O, no allocation.
 */
#include "ws.h"

#include <string.h>

#include "err.h"
#include "wire.h"

enum ws_state {
    WS_S_HEADER,      /* reading the 2..14 header bytes */
    WS_S_PAYLOAD,     /* streaming a data frame's payload */
    WS_S_CTL_PAYLOAD, /* collecting a control frame's payload */
    WS_S_FAILED,      /* a final error */
    WS_S_COUNT
};

void ws_decoder_init(struct ws_decoder *d, enum ws_role role, uint64_t max_payload)
{
    memset(d, 0, sizeof(*d));
    d->role = role;
    d->max_payload = max_payload;
    d->state = WS_S_HEADER;
    d->hdr_need = 2;
}

int ws_decoder_at_boundary(const struct ws_decoder *d)
{
    return d->state == WS_S_HEADER && d->hdr_have == 0;
}

int ws_decoder_in_message(const struct ws_decoder *d)
{
    return d->in_message;
}

uint16_t ws_error_close_code(int err)
{
    switch (err) {
    case CV_EPROTO:
        return WS_CLOSE_PROTOCOL;
    case CV_ELIMIT:
        return WS_CLOSE_TOO_BIG;
    case CV_EPARSE:
        return WS_CLOSE_INVALID_DATA;
    default:
        return WS_CLOSE_INTERNAL;
    }
}

static int is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

static int opcode_known(uint8_t op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

int ws_close_code_valid(unsigned code)
{
    /* §7.4.1, §7.4.2 and the IANA registry: 1004 is reserved, 1005 and 1006 are never sent, 1015
     * is for TLS failures only; 2000-2999 belong to extensions (none negotiated). */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = p[i];
        size_t need;
        uint32_t cp;
        uint32_t min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0; /* a continuation byte, 0xc0/0xc1 (overlong) or 0xf5.. */
        }
        if (n - i - 1 < need)
            return 0;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

int ws_close_parse(const uint8_t *p, size_t n, uint16_t *code, const char **why)
{
    const char *dummy;

    if (why == NULL)
        why = &dummy;
    if (n == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (n == 1) {
        *why = "Close payload of one byte";
        return CV_EPROTO;
    }
    *code = get_u16(p);
    if (!ws_close_code_valid(*code)) {
        *why = "Close status that may not be sent";
        return CV_EPROTO;
    }
    if (!ws_utf8_valid(p + 2, n - 2)) {
        *why = "Close reason is not UTF-8";
        return CV_EPARSE;
    }
    return 0;
}

void ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    size_t k = (size_t)(offset & 3);

    for (size_t i = 0; i < n; i++) {
        p[i] ^= mask[k];
        k = (k + 1) & 3;
    }
}

size_t ws_header_len(uint64_t len, int masked)
{
    size_t h = len <= 125 ? 2 : len <= 0xffff ? 4 : 10;

    return h + (masked ? 4 : 0);
}

int ws_encode_header(uint8_t *out, uint8_t opcode, int fin, uint64_t len, const uint8_t *mask)
{
    size_t off = 2;

    if (!opcode_known(opcode) || len >= ((uint64_t)1 << 63))
        return CV_EINVAL;
    if (is_control(opcode) && (!fin || len > WS_CONTROL_MAX))
        return CV_EINVAL;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len <= 125) {
        out[1] = (uint8_t)len;
    } else if (len <= 0xffff) {
        out[1] = 126;
        put_u16(out + 2, (uint16_t)len);
        off = 4;
    } else {
        out[1] = 127;
        put_u64(out + 2, len);
        off = 10;
    }
    if (mask != NULL) {
        out[1] |= 0x80;
        memcpy(out + off, mask, 4);
        off += 4;
    }
    return (int)off;
}

int ws_encode_control(uint8_t *out, size_t cap, uint8_t opcode, const uint8_t *payload, size_t n,
                      const uint8_t *mask)
{
    uint8_t hdr[WS_HDR_MAX];
    int h;

    if (!is_control(opcode) || !opcode_known(opcode) || n > WS_CONTROL_MAX)
        return CV_EINVAL;
    h = ws_encode_header(hdr, opcode, 1, n, mask);
    if (h < 0)
        return h;
    if (cap < (size_t)h + n)
        return CV_EFULL;
    memcpy(out, hdr, (size_t)h);
    if (n > 0) {
        memcpy(out + h, payload, n);
        if (mask != NULL)
            ws_mask(out + h, n, mask, 0);
    }
    return h + (int)n;
}

int ws_encode_close(uint8_t *out, size_t cap, uint16_t code, const char *reason, size_t reason_len,
                    const uint8_t *mask)
{
    uint8_t payload[WS_CONTROL_MAX];

    if (code == 0) {
        if (reason_len > 0)
            return CV_EINVAL; /* a reason needs a status before it */
        return ws_encode_control(out, cap, WS_OP_CLOSE, NULL, 0, mask);
    }
    if (!ws_close_code_valid(code) || reason_len > WS_CONTROL_MAX - 2 ||
        (reason_len > 0 && !ws_utf8_valid((const uint8_t *)reason, reason_len)))
        return CV_EINVAL;
    put_u16(payload, code);
    if (reason_len > 0)
        memcpy(payload + 2, reason, reason_len);
    return ws_encode_control(out, cap, WS_OP_CLOSE, payload, 2 + reason_len, mask);
}

/* ---- decoding ------------------------------------------------------------------------------- */

static ssize_t fail(struct ws_decoder *d, int err, const char *reason, const char **why)
{
    d->state = WS_S_FAILED;
    d->err = err;
    d->why = reason;
    if (why != NULL)
        *why = reason;
    return err;
}

/* The first two header bytes are in: checks what they alone decide and sets how many header
 * bytes there are. Returns 0 or a code with *|reason|. */
static int check_first(struct ws_decoder *d, const char **reason)
{
    uint8_t b0 = d->hdr[0];
    uint8_t b1 = d->hdr[1];
    uint8_t op = b0 & 0x0f;
    uint8_t len7 = b1 & 0x7f;
    int masked = (b1 & 0x80) != 0;

    if (b0 & 0x70) {
        *reason = "reserved bits set without a negotiated extension"; /* §5.2 */
        return CV_EPROTO;
    }
    if (!opcode_known(op)) {
        *reason = "unknown opcode";
        return CV_EPROTO;
    }
    if (is_control(op) && !(b0 & 0x80)) {
        *reason = "fragmented control frame"; /* §5.5 */
        return CV_EPROTO;
    }
    if (is_control(op) && len7 > WS_CONTROL_MAX) {
        *reason = "control frame payload over 125 bytes"; /* §5.5 */
        return CV_EPROTO;
    }
    if (d->role == WS_ROLE_SERVER && !masked) {
        *reason = "unmasked frame from a client"; /* §5.1 */
        return CV_EPROTO;
    }
    if (d->role == WS_ROLE_CLIENT && masked) {
        *reason = "masked frame from a server"; /* §5.1 */
        return CV_EPROTO;
    }
    if (!is_control(op)) {
        /* §5.4: CONT continues an open message; TEXT and BINARY start one only when none is open.
         * Control frames may come in the middle of a fragmented message. */
        if (op == WS_OP_CONT && !d->in_message) {
            *reason = "continuation frame without a message to continue";
            return CV_EPROTO;
        }
        if (op != WS_OP_CONT && d->in_message) {
            *reason = "new data frame inside a fragmented message";
            return CV_EPROTO;
        }
    }
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    return 0;
}

/* The whole header is in: fills |cur| and checks the length. */
static int check_header(struct ws_decoder *d, const char **reason)
{
    struct ws_frame *f = &d->cur;
    uint8_t len7 = d->hdr[1] & 0x7f;
    size_t off = 2;

    memset(f, 0, sizeof(*f));
    f->opcode = d->hdr[0] & 0x0f;
    f->fin = (d->hdr[0] & 0x80) != 0;
    f->masked = (d->hdr[1] & 0x80) != 0;
    if (len7 == 126) {
        f->len = get_u16(d->hdr + 2);
        off = 4;
        if (f->len < 126) {
            *reason = "16-bit length for a payload under 126 bytes"; /* §5.2: minimal encoding */
            return CV_EPROTO;
        }
    } else if (len7 == 127) {
        f->len = get_u64(d->hdr + 2);
        off = 10;
        if (f->len >> 63) {
            *reason = "64-bit length with its most significant bit set"; /* §5.2 */
            return CV_EPROTO;
        }
        if (f->len <= 0xffff) {
            *reason = "64-bit length for a payload under 65536 bytes"; /* §5.2 */
            return CV_EPROTO;
        }
    } else {
        f->len = len7;
    }
    if (f->masked)
        memcpy(f->mask, d->hdr + off, 4);
    if (!is_control(f->opcode) && f->len > d->max_payload) {
        *reason = "data frame larger than the payload limit";
        return CV_ELIMIT;
    }
    if (!is_control(f->opcode))
        d->in_message = !f->fin;
    return 0;
}

/* A control frame's payload is complete (unmasked in |ctl|): checks it and reports it. */
static int control_done(struct ws_decoder *d, struct ws_event *ev, const char **reason)
{
    size_t n = (size_t)d->cur.len;

    if (d->cur.masked)
        ws_mask(d->ctl, n, d->cur.mask, 0);
    if (d->cur.opcode == WS_OP_CLOSE) {
        uint16_t code;
        int rv = ws_close_parse(d->ctl, n, &code, reason);

        if (rv < 0)
            return rv;
    }
    ev->kind = WS_EV_CONTROL;
    ev->frame = d->cur;
    ev->data = d->ctl;
    ev->n = n;
    d->state = WS_S_HEADER;
    d->hdr_have = 0;
    d->hdr_need = 2;
    d->done = 0;
    return 0;
}

ssize_t ws_decode(struct ws_decoder *d, const uint8_t *p, size_t n, uint8_t *out, size_t outcap,
                  struct ws_event *ev, const char **why)
{
    const char *reason = NULL;
    size_t used = 0;
    int rv;

    memset(ev, 0, sizeof(*ev));
    ev->kind = WS_EV_NONE;
    if (d->state == WS_S_FAILED) {
        if (why != NULL)
            *why = d->why;
        return d->err;
    }
    if (outcap == 0 || out == NULL)
        return fail(d, CV_EINVAL, "no output space", why);
    while (used < n) {
        if (d->state == WS_S_HEADER) {
            size_t k = d->hdr_need - d->hdr_have;

            if (k > n - used)
                k = n - used;
            memcpy(d->hdr + d->hdr_have, p + used, k);
            d->hdr_have += k;
            used += k;
            if (d->hdr_have < d->hdr_need)
                continue; /* the loop ends: all input used */
            if (d->hdr_need == 2) {
                rv = check_first(d, &reason);
                if (rv < 0)
                    return fail(d, rv, reason, why);
                if (d->hdr_need > 2)
                    continue; /* extended length and/or masking key follow */
            }
            rv = check_header(d, &reason);
            if (rv < 0)
                return fail(d, rv, reason, why);
            d->done = 0;
            if (is_control(d->cur.opcode)) {
                if (d->cur.len == 0) {
                    rv = control_done(d, ev, &reason);
                    if (rv < 0)
                        return fail(d, rv, reason, why);
                    return (ssize_t)used;
                }
                d->state = WS_S_CTL_PAYLOAD;
                continue;
            }
            ev->kind = WS_EV_FRAME;
            ev->frame = d->cur;
            d->hdr_have = 0;
            d->hdr_need = 2;
            d->state = d->cur.len > 0 ? WS_S_PAYLOAD : WS_S_HEADER;
            return (ssize_t)used;
        }
        if (d->state == WS_S_CTL_PAYLOAD) {
            uint64_t left = d->cur.len - d->done;
            size_t k = n - used < left ? n - used : (size_t)left;

            memcpy(d->ctl + d->done, p + used, k);
            d->done += k;
            used += k;
            if (d->done < d->cur.len)
                continue;
            rv = control_done(d, ev, &reason);
            if (rv < 0)
                return fail(d, rv, reason, why);
            return (ssize_t)used;
        }
        /* WS_S_PAYLOAD */
        {
            uint64_t left = d->cur.len - d->done;
            size_t k = n - used;

            if (k > left)
                k = (size_t)left;
            if (k > outcap)
                k = outcap;
            memcpy(out, p + used, k);
            if (d->cur.masked)
                ws_mask(out, k, d->cur.mask, d->done);
            d->done += k;
            used += k;
            ev->kind = WS_EV_DATA;
            ev->frame = d->cur;
            ev->data = out;
            ev->n = k;
            if (d->done == d->cur.len) {
                d->state = WS_S_HEADER;
                d->done = 0;
            }
            return (ssize_t)used;
        }
    }
    return (ssize_t)used;
}
