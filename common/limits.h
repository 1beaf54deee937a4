/*
 * limits.h - every default limit of RELIABILITY.md section 10, in one place.
 *
 * struct cv_limits is filled with defaults by limits_init() and may be overridden by the edge's
 * `limits:` config section (keys are the field names) or by tests. Durations are milliseconds,
 * sizes bytes. Both programs read the same struct.
 */
#ifndef CV_LIMITS_H
#define CV_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct cv_limits {
    /* Public HTTP/1.1 side (edge). */
    uint32_t max_url;              /* request line target, 8 KiB -> 414 */
    uint32_t max_header_bytes;     /* whole header block, 32 KiB -> 431 */
    uint32_t max_header_fields;    /* 100 -> 431 */
    uint32_t max_chunk_ext;        /* chunk extension bytes per request, 4 KiB -> 400 */
    uint32_t header_read_ms;       /* total deadline for a request head, 10 s -> 408 */
    uint32_t body_idle_ms;         /* a request body idle (fewer than body_min_bytes) this long -> 408, 30 s */
    uint32_t body_min_bytes;       /* what a body must bring for body_idle_ms to start again, 1 KiB */
    uint32_t send_idle_ms;         /* output waits with no byte taken by the client, 60 s */
    uint32_t keepalive_idle_ms;    /* idle keep-alive connection, 75 s */
    uint32_t keepalive_requests;   /* requests per connection, 1000 */
    uint32_t response_header_ms;   /* origin response head deadline, 100 s */
    uint32_t per_ip_connections;   /* concurrent public connections per IP, 256 */
    uint32_t max_connections;      /* global public connections cap */
    uint32_t tls_handshake_ms;     /* 10 s */
    uint32_t client_output_buffer; /* edge per-client output buffered before pausing the stream, 64 KiB */
    uint32_t buffer_budget;        /* edge: all buffers; 503 for new requests at 90%, shed the biggest at 98%; 512 MiB, 0 = off */
    uint32_t expect_continue_ms;   /* the edge's own 100 Continue when the origin sends none, 300 ms */

    /* Multiplexer (both sides). */
    uint32_t max_frame_size;         /* 16 KiB */
    uint32_t max_metadata_size;      /* 64 KiB */
    uint32_t max_metadata_fields;    /* 128 */
    uint32_t max_concurrent_streams; /* 256 per connection */
    uint32_t stream_queue;           /* edge: requests waiting for a stream slot, 1024 -> 503 */
    uint32_t stream_window;          /* 256 KiB */
    uint32_t stream_window_max;      /* auto-tuning grows a fast stream's window up to 4 MiB */
    uint32_t connection_window;      /* 16 MiB */
    uint32_t stream_send_buffer;     /* bytes a stream may queue before the mux has credit, 64 KiB */
    uint32_t reset_burst;            /* 1000 */
    uint32_t reset_per_sec;          /* 33 */
    uint32_t max_control_queued;     /* outbound control frames not yet written, 1000 */
    uint32_t max_empty_frames;       /* consecutive empty DATA frames, 1 */
    uint32_t unknown_frames_per_sec; /* 100 */
    uint32_t max_continuations;      /* per metadata block, 8 */
    uint32_t window_updates_per_data; /* WINDOW_UPDATEs received per DATA frame sent (+100), 10 */

    /* Liveness and lifecycle. */
    uint32_t heartbeat_ms;       /* edge PING interval and connector silence threshold, 5 s */
    uint32_t heartbeat_misses;   /* unanswered PINGs before the link is dead, 5 */
    uint32_t register_ms;        /* registration deadline on the tunnel port, 10 s */
    uint32_t pending_handshakes; /* unauthenticated tunnel connections at once, 64 */
    uint32_t connectors_per_tunnel;  /* connector processes registered for one tunnel, 256 */
    uint32_t connections_per_connector; /* tunnel connections of one connector, 16 */
    uint32_t grace_period_ms;    /* SIGTERM drain, 30 s */
    uint32_t backoff_base_ms;    /* reconnect backoff base, 1 s */
    uint32_t backoff_max_exp;    /* window 2^n s, n capped at 5 (32 s) */
    uint32_t stream_idle_ms;     /* half-closed stream with no traffic, 300 s */

    /* Config files. */
    uint32_t config_max_bytes; /* 1 MiB */
    uint32_t config_max_depth; /* 32 */
    uint32_t config_max_nodes; /* 10 000 */
};

/* Fills |l| with the defaults of RELIABILITY.md section 10. */
void limits_init(struct cv_limits *l);

/* A limit's name (as in edge.yml `limits:`), where it lives in the struct, and its kind. */
enum limit_kind { LIMIT_COUNT, LIMIT_BYTES, LIMIT_MS };
struct limit_desc {
    const char *name;
    size_t offset;
    enum limit_kind kind;
};
/* Returns the table of all limits, terminated by a NULL name. */
const struct limit_desc *limits_table(void);
/* Returns the descriptor named |name|, or NULL. */
const struct limit_desc *limits_find(const char *name);

/* Raises the soft limit on open files to the hard limit (as nginx's worker_rlimit_nofile or Go's
 * runtime do) and returns the soft limit now in force. */
uint64_t limits_raise_nofile(void);
/* How many public connections fit in |nofile| descriptors: a quarter (at least 32) stays for
 * tunnel connections, listeners, the admin API and files. */
uint32_t limits_public_fd_cap(uint64_t nofile);

#endif
