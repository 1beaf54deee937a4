/*
 * limits.c - default limits (RELIABILITY.md section 10) and their names.
 */
#include "limits.h"

#include <string.h>
#include <sys/resource.h>

void limits_init(struct cv_limits *l)
{
    memset(l, 0, sizeof(*l));
    l->max_url = 8 * 1024;
    l->max_header_bytes = 32 * 1024;
    l->max_header_fields = 100;
    l->max_chunk_ext = 4 * 1024;
    l->header_read_ms = 10 * 1000;
    l->body_idle_ms = 30 * 1000;
    l->body_min_bytes = 1024;
    l->send_idle_ms = 60 * 1000;
    l->keepalive_idle_ms = 75 * 1000;
    l->keepalive_requests = 1000;
    l->response_header_ms = 100 * 1000;
    l->per_ip_connections = 256;
    l->max_connections = 16384;
    l->tls_handshake_ms = 10 * 1000;
    l->client_output_buffer = 64 * 1024;
    l->buffer_budget = 512u << 20;
    l->expect_continue_ms = 300;

    l->max_frame_size = 16 * 1024;
    l->max_metadata_size = 64 * 1024;
    l->max_metadata_fields = 128;
    l->max_concurrent_streams = 256;
    l->stream_queue = 1024;
    l->stream_window = 256 * 1024;
    l->stream_window_max = 4 * 1024 * 1024;
    l->connection_window = 16 * 1024 * 1024;
    l->stream_send_buffer = 256 * 1024;
    l->reset_burst = 1000;
    l->reset_per_sec = 33;
    l->max_control_queued = 1000;
    l->max_empty_frames = 1;
    l->unknown_frames_per_sec = 100;
    l->max_continuations = 8;
    l->window_updates_per_data = 10;

    l->heartbeat_ms = 5 * 1000;
    l->heartbeat_misses = 5;
    l->register_ms = 10 * 1000;
    l->pending_handshakes = 64;
    l->connectors_per_tunnel = 256;
    l->connections_per_connector = 16;
    l->grace_period_ms = 30 * 1000;
    l->backoff_base_ms = 1000;
    l->backoff_max_exp = 5;
    l->stream_idle_ms = 300 * 1000;

    l->config_max_bytes = 1024 * 1024;
    l->config_max_depth = 32;
    l->config_max_nodes = 10000;
}

#define L(name, kind) {#name, offsetof(struct cv_limits, name), kind}

static const struct limit_desc table[] = {
    L(max_url, LIMIT_BYTES),
    L(max_header_bytes, LIMIT_BYTES),
    L(max_header_fields, LIMIT_COUNT),
    L(max_chunk_ext, LIMIT_BYTES),
    L(header_read_ms, LIMIT_MS),
    L(body_idle_ms, LIMIT_MS),
    L(body_min_bytes, LIMIT_BYTES),
    L(send_idle_ms, LIMIT_MS),
    L(keepalive_idle_ms, LIMIT_MS),
    L(keepalive_requests, LIMIT_COUNT),
    L(response_header_ms, LIMIT_MS),
    L(per_ip_connections, LIMIT_COUNT),
    L(max_connections, LIMIT_COUNT),
    L(tls_handshake_ms, LIMIT_MS),
    L(client_output_buffer, LIMIT_BYTES),
    L(expect_continue_ms, LIMIT_MS),
    L(max_frame_size, LIMIT_BYTES),
    L(max_metadata_size, LIMIT_BYTES),
    L(max_metadata_fields, LIMIT_COUNT),
    L(max_concurrent_streams, LIMIT_COUNT),
    L(stream_queue, LIMIT_COUNT),
    L(buffer_budget, LIMIT_BYTES),
    L(stream_window, LIMIT_BYTES),
    L(stream_window_max, LIMIT_BYTES),
    L(connection_window, LIMIT_BYTES),
    L(stream_send_buffer, LIMIT_BYTES),
    L(reset_burst, LIMIT_COUNT),
    L(reset_per_sec, LIMIT_COUNT),
    L(max_control_queued, LIMIT_COUNT),
    L(max_empty_frames, LIMIT_COUNT),
    L(unknown_frames_per_sec, LIMIT_COUNT),
    L(max_continuations, LIMIT_COUNT),
    L(window_updates_per_data, LIMIT_COUNT),
    L(heartbeat_ms, LIMIT_MS),
    L(heartbeat_misses, LIMIT_COUNT),
    L(register_ms, LIMIT_MS),
    L(pending_handshakes, LIMIT_COUNT),
    L(connectors_per_tunnel, LIMIT_COUNT),
    L(connections_per_connector, LIMIT_COUNT),
    L(grace_period_ms, LIMIT_MS),
    L(backoff_base_ms, LIMIT_MS),
    L(backoff_max_exp, LIMIT_COUNT),
    L(stream_idle_ms, LIMIT_MS),
    L(config_max_bytes, LIMIT_BYTES),
    L(config_max_depth, LIMIT_COUNT),
    L(config_max_nodes, LIMIT_COUNT),
    {NULL, 0, LIMIT_COUNT},
};

const struct limit_desc *limits_table(void)
{
    return table;
}

const struct limit_desc *limits_find(const char *name)
{
    const struct limit_desc *d;

    for (d = table; d->name != NULL; d++) {
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

uint64_t limits_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;

        if (want > rl.rlim_cur) {
            struct rlimit up = {want, rl.rlim_max};

            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl.rlim_cur = want;
        }
    }
    return rl.rlim_cur == RLIM_INFINITY ? (uint64_t)1 << 20 : (uint64_t)rl.rlim_cur;
}

uint32_t limits_public_fd_cap(uint64_t nofile)
{
    uint64_t reserve = nofile / 4 < 32 ? 32 : nofile / 4;
    uint64_t cap = nofile > reserve ? nofile - reserve : 1;

    return cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap;
}
