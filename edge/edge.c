/*
 * edge.c - small helpers shared by the edge modules (see edge.h).
 */
#include "edge.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "meta.h"

int64_t edge_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void edge_rfc3339(int64_t unix_ms, char *out, size_t n)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int edge_tcp_block(struct buf *b, size_t cap, const char *host, const char *client)
{
    int start;
    int rv;

    buf_init(b, cap);
    start = meta_begin(b, META_REQUEST_TCP);
    if (start < 0)
        return start;
    rv = meta_add(b, ":authority", 10, host, strlen(host));
    if (rv == 0 && client != NULL && client[0] != '\0')
        rv = meta_add(b, ":client", 7, client, strlen(client));
    if (rv == 0)
        rv = meta_end(b, (size_t)start);
    return rv;
}
