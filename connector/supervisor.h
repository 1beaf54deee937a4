/*
 * supervisor.h - keeps the connector's ha-connections tunnel connections up: dials the edge
 * addresses round-robin (every address a name resolves to counts), registers, reconnects after
 * network failures with full-jitter exponential backoff (random wait in [0, 2^n * base) for attempt
 * n, n capped at backoff_max_exp), forever; stops for good when the edge rejects the token. SIGTERM
 * drains: GOAWAY on every connection, in-flight streams finish within the grace period.
 * One loop thread.
 */
#ifndef CV_SUPERVISOR_H
#define CV_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

struct connector;
struct supervisor;

/* Called once when the supervisor has nothing left to run (drained, stopped, or fatal). */
typedef void (*supervisor_done_cb)(struct supervisor *sv, void *arg);

/* Starts connection 0 now; the others follow one base interval apart once it has registered. */
struct supervisor *supervisor_start(struct connector *c, supervisor_done_cb done, void *arg);
/* Graceful stop: GOAWAY everywhere, no reconnects, close when streams are done or at |grace_ms|. */
void supervisor_drain(struct supervisor *sv, uint64_t grace_ms);
/* Immediate stop: every connection is closed now. */
void supervisor_stop(struct supervisor *sv);
/* DNS lookups supervisor_stop() did not wait for and that are still running: the event loop
 * would wait for them (uv_getaddrinfo cannot be cancelled once it runs), so the process should
 * leave without running the loop to its end. */
unsigned supervisor_lookups_abandoned(const struct supervisor *sv);
/* Closes draining connections whose streams are all done (called as streams end). */
void supervisor_poke(struct supervisor *sv);
/* Closes the supervisor's timers; run the loop once more before supervisor_free. */
void supervisor_close_handles(struct supervisor *sv);
/* Frees the supervisor after done (its timers must have closed: run the loop once more). */
void supervisor_free(struct supervisor *sv);
/* Connections registered right now. */
size_t supervisor_ready(const struct supervisor *sv);
/* For metrics: registered connections, reconnect attempts so far, streams open on all links. */
void supervisor_counts(const struct supervisor *sv, size_t *ready, uint64_t *reconnects, size_t *streams);

#endif
