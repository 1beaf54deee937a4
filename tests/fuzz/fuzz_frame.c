/*
 * fuzz_frame.c - libFuzzer target for the frame codec (common/frame.c).
 *
 * Decodes frames back to back over the input with max_frame_size 16384, as a receiver would; after
 * an error it moves on by one octet so one input exercises many headers. Every frame that decodes
 * must (1) have used exactly 9 + Length octets, (2) not decode from one octet less, (3) re-encode with
 * frame_encode to the input octets with the reserved bits cleared, and (4) decode again from that
 * encoding. Any violation aborts. Nothing is allocated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "frame.h"

#define FUZZ_MAX_FRAME FRAME_MIN_MAX_SIZE

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[FRAME_HDR_LEN + FUZZ_MAX_FRAME];
static uint8_t canon[FRAME_HDR_LEN + FUZZ_MAX_FRAME];

/* The input frame as an encoder sends it: reserved bits zero (PROTOCOL.md §3.1, §4.2, §4.3, §9.3,
 * §11.1), everything else as received. */
static void canonicalize(uint8_t *c, const uint8_t *p, size_t n, uint8_t type)
{
    memcpy(c, p, n);
    c[5] &= 0x7f;
    switch (type) {
    case FRAME_WINDOW_UPDATE:
    case FRAME_GOAWAY:
        c[FRAME_HDR_LEN] &= 0x7f;
        break;
    case FRAME_REGISTER:
        memset(c + FRAME_HDR_LEN + 69, 0, 3);
        break;
    case FRAME_REGISTERED:
        memset(c + FRAME_HDR_LEN + 2, 0, 2);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        struct frame f, g;
        const char *why = NULL;
        ssize_t rv = frame_decode(&f, data + off, size - off, FUZZ_MAX_FRAME, &why);
        ssize_t w;

        if (rv == 0)
            break;
        if (rv < 0) {
            if ((rv != CV_EFRAMESIZE && rv != CV_EPROTO) || why == NULL)
                abort();
            off++;
            continue;
        }
        if ((size_t)rv > size - off || (size_t)rv != FRAME_HDR_LEN + f.hdr.length ||
            f.payload != data + off + FRAME_HDR_LEN)
            abort();
        if (frame_decode(&g, data + off, (size_t)rv - 1, FUZZ_MAX_FRAME, NULL) != 0)
            abort();
        w = frame_encode(out, sizeof(out), &f);
        if (w != rv)
            abort();
        canonicalize(canon, data + off, (size_t)rv, f.hdr.type);
        if (memcmp(out, canon, (size_t)rv) != 0)
            abort();
        if (frame_decode(&g, out, (size_t)w, FUZZ_MAX_FRAME, NULL) != w)
            abort();
        off += (size_t)rv;
    }
    return 0;
}
