/*
 * support.c - see support.h.
 */
#include "support.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

uint64_t support_clock_us;

uint64_t support_now_us(void *arg)
{
    (void)arg;
    return support_clock_us;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

uint8_t *support_hex_decode(const char *text, size_t *n)
{
    size_t cap = 64;
    size_t len = 0;
    uint8_t *out = malloc(cap);
    int hi = -1;

    if (out == NULL)
        return NULL;
    for (const char *p = text; *p != '\0'; p++) {
        int v;

        if (*p == '#') {
            while (*p != '\0' && *p != '\n')
                p++;
            if (*p == '\0')
                break;
            continue;
        }
        if (isspace((unsigned char)*p))
            continue;
        v = hexval((unsigned char)*p);
        if (v < 0) {
            free(out);
            return NULL;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (len == cap) {
            uint8_t *q = realloc(out, cap * 2);

            if (q == NULL) {
                free(out);
                return NULL;
            }
            out = q;
            cap *= 2;
        }
        out[len++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0) {
        free(out);
        return NULL;
    }
    *n = len;
    return out;
}

char *support_read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long size;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)size + 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[size] = '\0';
    if (n != NULL)
        *n = (size_t)size;
    return buf;
}
