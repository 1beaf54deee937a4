/*
 * link.h - one tunnel connection at run time: a mux (mux.h) driven over a sock (sock.h).
 *
 * The link moves bytes between the two (decrypted input into mux_feed, mux_pending into sock_write
 * at the loop's flush pass, stopping at the sock's high-water mark), closes the sock after a
 * connection error or a finished GOAWAY exchange, and runs the liveness timer (PROTOCOL.md §10.2):
 * the edge pings every heartbeat interval, the connector pings after that much silence, and both close
 * the link when heartbeat_misses PINGs are unanswered. Before registration the same timer is the
 * registration deadline. Both culvert-edge and culvert-connector use it; one loop thread.
 *
 * Lifetime: link_new() takes the sock; the owner's mux hooks receive the mux events (the link
 * forwards them, adding want_write and the clock). When the sock is gone, on_closed runs once with
 * the reason; inside it the owner releases its streams (mux_fail has already told them) and calls
 * link_free().
 */
#ifndef CV_LINK_H
#define CV_LINK_H

#include <stdint.h>

#include "mux.h"
#include "sock.h"

struct link;

struct link_hooks {
    /* The connection is gone (|err| 0 for an orderly close). Every held stream already got
     * on_reset. The owner calls link_free() here or later. */
    void (*on_closed)(struct link *l, int err, void *arg);
};

enum link_heartbeat {
    LINK_HB_EDGE,      /* ping every interval (RTT samples for routing) */
    LINK_HB_CONNECTOR, /* ping after an interval of silence */
};

/*
 * Returns a new link over |s| (taken: the link sets its hooks and arg), with a new mux for |role|
 * whose connection-level events go to |mh| with |arg|. |deadline_ms| arms the registration deadline
 * (0: none). Returns NULL with *|err| (the sock is then closed by the caller).
 */
struct link *link_new(struct sock *s, enum mux_role role, const struct cv_limits *lim,
                      const struct mux_hooks *mh, const struct link_hooks *lh, void *arg,
                      uint64_t deadline_ms, int *err);
/* Frees the link and its mux; only after on_closed. */
void link_free(struct link *l);

struct mux *link_mux(const struct link *l);
struct sock *link_sock(const struct link *l);
void *link_arg(const struct link *l);

/* Starts the liveness timer (after registration). |interval_ms| 0 uses the limits' heartbeat_ms.
 * The edge pings at once. */
void link_start_heartbeat(struct link *l, enum link_heartbeat mode, uint64_t interval_ms);
/* Flushes what the mux has, then closes gracefully (close_notify). */
void link_close(struct link *l);
/* Closes at once (TCP reset); streams fail. */
void link_abort(struct link *l, int err);
/* 1 once a close was started. */
int link_closing(const struct link *l);

#endif
