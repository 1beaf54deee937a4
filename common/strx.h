/* Small string helpers for hot paths, where snprintf's format parsing shows up in profiles. */
#ifndef CULVERT_STRX_H
#define CULVERT_STRX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Copies at most |cap| - 1 bytes of |src| (|n| long) and terminates; returns the length copied.
 * |cap| must be at least 1. */
static inline size_t strx_copy(char *dst, size_t cap, const char *src, size_t n)
{
    if (n > cap - 1)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* |v| in decimal, unterminated; returns the length (at most 20). */
static inline size_t strx_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* |v| in lower-case hex without leading zeros, unterminated; returns the length (at most 16). */
static inline size_t strx_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;

    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* |v| as 16 lower-case hex digits, terminated. */
static inline void strx_hex16(char out[17], uint64_t v)
{
    static const char digits[] = "0123456789abcdef";

    for (int i = 15; i >= 0; i--) {
        out[i] = digits[v & 15];
        v >>= 4;
    }
    out[16] = '\0';
}

#endif
