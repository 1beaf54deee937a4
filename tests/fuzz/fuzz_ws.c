/*
 * fuzz_ws.c - libFuzzer target for the WebSocket frame codec (common/ws.c).
 *
 * The first input byte picks the role (bit 0: decode as a server, i.e. client frames that must be
 * masked, or as a client) and how the rest is split and drained (bits 1-3: input piece size, bits
 * 4-7: output buffer size). The rest is decoded in those pieces. An accepted frame must be
 * consistent (payload pieces add up to its length, control frames final and at most 125 bytes,
 * DATA only inside a data frame). Every frame decoded is encoded again (with the same masking key
 * for masked frames) and the re-encoded stream, decoded by a fresh decoder in one piece, must give
 * the same frames and payloads, and be byte-identical to the input the decoder accepted (the length
 * encoding is minimal, so the encoding is canonical). A refusal must be one of the documented
 * codes with a reason, and final. Everything allocated is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ws.h"

#define MAX_PAYLOAD 4096
#define MAX_FRAMES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct rec {
    struct ws_frame f;
    size_t n;
    uint8_t *payload;
};

struct run {
    struct rec r[MAX_FRAMES];
    size_t count;
    size_t accepted; /* input bytes used up to the end of the last complete frame */
    int err;
};

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->count; i++)
        free(r->r[i].payload);
    r->count = 0;
}

static const size_t steps[8] = {1, 2, 3, 7, 64, 1000, 65536, SIZE_MAX};
static const size_t outs[16] = {1, 2, 3, 5, 8, 13, 64, 125, 126, 500, 1024, 4096, 4096, 4096,
                                4096, 4096};

/* Decodes |p| in pieces of |step|, output |outcap| at a time, into |r|. */
static void decode(enum ws_role role, const uint8_t *p, size_t n, size_t step, size_t outcap,
                   struct run *r)
{
    struct ws_decoder d;
    uint8_t out[4096];
    size_t off = 0;

    ws_decoder_init(&d, role, MAX_PAYLOAD);
    memset(r, 0, sizeof(*r));
    while (off < n) {
        size_t k = n - off < step ? n - off : step;
        const uint8_t *q = p + off;
        size_t base = off;

        off += k;
        for (;;) {
            struct ws_event ev;
            const char *why = NULL;
            ssize_t used = ws_decode(&d, q, k, out, outcap, &ev, &why);

            if (used < 0) {
                if ((used != CV_EPROTO && used != CV_ELIMIT && used != CV_EPARSE) || why == NULL)
                    abort();
                /* Final: the same answer again. */
                if (ws_decode(&d, q, k, out, outcap, &ev, NULL) != used)
                    abort();
                r->err = (int)used;
                return;
            }
            if ((size_t)used > k)
                abort();
            q += used;
            k -= (size_t)used;
            if (ev.kind == WS_EV_NONE) {
                if (k != 0)
                    abort();
                break;
            }
            if (ev.kind == WS_EV_DATA) {
                struct rec *c;

                if (r->count == 0)
                    abort();
                c = &r->r[r->count - 1];
                if ((c->f.opcode & 0x8) || ev.n == 0 || ev.n > outcap || c->n + ev.n > c->f.len)
                    abort();
                memcpy(c->payload + c->n, ev.data, ev.n);
                c->n += ev.n;
            } else {
                struct rec *c;

                if (r->count == MAX_FRAMES)
                    return; /* enough frames for one input */
                c = &r->r[r->count++];
                c->f = ev.frame;
                c->n = 0;
                c->payload = malloc(ev.frame.len > 0 ? (size_t)ev.frame.len : 1);
                if (c->payload == NULL)
                    abort();
                if (ev.kind == WS_EV_CONTROL) {
                    if (!(ev.frame.opcode & 0x8) || !ev.frame.fin || ev.n > WS_CONTROL_MAX ||
                        ev.n != ev.frame.len)
                        abort();
                    memcpy(c->payload, ev.data, ev.n);
                    c->n = ev.n;
                } else if ((ev.frame.opcode & 0x8) || ev.frame.len > MAX_PAYLOAD) {
                    abort();
                }
            }
            if ((role == WS_ROLE_SERVER) != (r->r[r->count - 1].f.masked != 0))
                abort();
            if (ws_decoder_at_boundary(&d))
                r->accepted = base + (size_t)(q - (p + base));
        }
    }
}

/* Encodes the complete frames of |r| into a new buffer; returns its length. */
static size_t encode(const struct run *r, uint8_t **outp)
{
    size_t cap = 0;
    size_t off = 0;
    uint8_t *out;

    for (size_t i = 0; i < r->count; i++)
        cap += WS_HDR_MAX + (size_t)r->r[i].f.len;
    out = malloc(cap > 0 ? cap : 1);
    if (out == NULL)
        abort();
    for (size_t i = 0; i < r->count; i++) {
        const struct rec *c = &r->r[i];
        int h;

        if (c->n != c->f.len)
            break; /* the input ended inside this frame */
        h = ws_encode_header(out + off, c->f.opcode, c->f.fin, c->f.len,
                             c->f.masked ? c->f.mask : NULL);
        if (h < 0)
            abort();
        off += (size_t)h;
        memcpy(out + off, c->payload, c->n);
        if (c->f.masked)
            ws_mask(out + off, c->n, c->f.mask, 0);
        off += c->n;
    }
    *outp = out;
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run a, b;
    enum ws_role role;
    uint8_t *enc;
    size_t n;
    size_t complete = 0;

    if (size < 1)
        return 0;
    role = (data[0] & 1) ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
    decode(role, data + 1, size - 1, steps[(data[0] >> 1) & 7], outs[data[0] >> 4], &a);
    n = encode(&a, &enc);
    for (size_t i = 0; i < a.count && a.r[i].n == a.r[i].f.len; i++)
        complete++;
    /* The complete frames re-encode to exactly the bytes that were accepted. */
    if (a.count < MAX_FRAMES && (n != a.accepted || memcmp(enc, data + 1, n) != 0))
        abort();
    decode(role, enc, n, SIZE_MAX, 4096, &b);
    if (b.err != 0 || b.count != complete)
        abort();
    for (size_t i = 0; i < b.count; i++) {
        const struct rec *x = &a.r[i], *y = &b.r[i];

        if (x->f.opcode != y->f.opcode || x->f.fin != y->f.fin || x->f.len != y->f.len ||
            x->f.masked != y->f.masked || memcmp(x->f.mask, y->f.mask, 4) != 0 || x->n != y->n ||
            memcmp(x->payload, y->payload, x->n) != 0)
            abort();
    }
    free(enc);
    run_free(&a);
    run_free(&b);
    return 0;
}
