/*
 * supervisor.c - the connector's tunnel connections; see supervisor.h.
 *
 * Layers: above, main.c; below, link.c (a mux over a TLS sock) and sock_resolve. Each of the
 * ha-connections slots runs this state machine:
 *
 *   IDLE -> RESOLVING -> CONNECTING (TCP + TLS) -> REGISTERING -> REGISTERED
 *     ^                                                               |
 *     +---------- WAITING (backoff timer) <---- any failure / close --+
 *
 * A rejected registration (AUTH_FAILED, UNSUPPORTED_VERSION) is final for the whole process
 * (PRODUCT.md section 3); everything else is retried forever.
 */
#include "supervisor.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "connector.h"
#include "connector_config.h"
#include "err.h"
#include "frame.h"
#include "link.h"
#include "log.h"
#include "mem.h"
#include "mux.h"
#include "sock.h"
#include "token.h"
#include "version.h"

enum slot_state {
    SLOT_S_IDLE,        /* not started yet */
    SLOT_S_WAITING,     /* backoff (or stagger) timer running */
    SLOT_S_RESOLVING,   /* uv_getaddrinfo in flight */
    SLOT_S_CONNECTING,  /* TCP connect and TLS handshake */
    SLOT_S_REGISTERING, /* REGISTER sent */
    SLOT_S_REGISTERED,  /* serving streams */
    SLOT_S_STOPPED,     /* draining or stopped: no reconnect */
    SLOT_S_COUNT
};

static const char *const slot_state_names[SLOT_S_COUNT] = {
    "idle", "waiting", "resolving", "connecting", "registering", "registered", "stopped"};

struct supervisor;

struct slot {
    struct supervisor *sv;
    unsigned index;
    enum slot_state state;
    unsigned attempt;     /* consecutive failures since the last stable connection */
    unsigned dials;       /* dials so far: picks the edge address round-robin */
    uv_timer_t timer;
    struct sock *sock;    /* while CONNECTING */
    struct link *link;    /* from REGISTERING on */
    uint64_t registered_at;
    uint64_t retry_after_ms; /* the edge's Retry After from its last GOAWAY (PROTOCOL.md §4.5) */
    uint64_t conn_id;
    int revoked;          /* the edge sent GOAWAY AUTH_FAILED on this connection */
    int going_away;       /* the edge sent GOAWAY: it opens no more streams here (not ready) */
    int lookup_abandoned; /* supervisor_stop stopped waiting for this slot's DNS lookup */
    char edge[300];       /* "host:port" being dialed */
    char host[256];
    char port[8];
};

struct supervisor {
    struct connector *c;
    struct slot slots[CONNECTOR_HA_MAX];
    unsigned n;
    int others_started;
    int stopping;
    int done_called;
    unsigned lookups_abandoned; /* DNS lookups supervisor_stop stopped waiting for, still running */
    uint64_t reconnects;
    uv_timer_t grace;
    uv_timer_t tick; /* while draining: closes connections whose streams are done */
    supervisor_done_cb done;
    void *done_arg;
};

static void slot_dial(struct slot *sl);
static void slot_retry(struct slot *sl);

static uint64_t now_ms(const struct supervisor *sv)
{
    return uv_now(sv->c->loop);
}

/* Calls |done| once no slot has a connection or a pending operation left. */
static void maybe_done(struct supervisor *sv)
{
    if (!sv->stopping || sv->done_called)
        return;
    for (unsigned i = 0; i < sv->n; i++) {
        const struct slot *sl = &sv->slots[i];

        if (sl->sock != NULL || sl->link != NULL || sl->state == SLOT_S_RESOLVING)
            return;
    }
    sv->done_called = 1;
    uv_timer_stop(&sv->grace);
    uv_timer_stop(&sv->tick);
    if (sv->done != NULL)
        sv->done(sv, sv->done_arg);
}

/* ---- the tunnel connection ------------------------------------------------------------------ */

static void on_registered(struct mux *m, const struct frame_registered *r, void *arg)
{
    struct slot *sl = arg;
    struct supervisor *sv = sl->sv;

    sl->state = SLOT_S_REGISTERED;
    sl->going_away = 0;
    sl->registered_at = now_ms(sv);
    sl->conn_id = r->connection_id;
    link_start_heartbeat(sl->link, LINK_HB_CONNECTOR, sv->c->cfg->heartbeat_ms);
    LOG_I("conn=%u registered tunnel connection connection=%" PRIu64 " edge=%s location=%s "
          "edge-name=%s",
          sl->index, r->connection_id, sl->edge, r->region[0] != '\0' ? r->region : "-", r->name);
    (void)m;
    if (!sv->others_started && !sv->stopping) {
        /* The first connection is up: the others follow, one base interval apart. */
        sv->others_started = 1;
        for (unsigned i = 1; i < sv->n; i++)
            slot_retry(&sv->slots[i]);
    }
}

static void on_goaway(struct mux *m, const struct frame_goaway *g, void *arg)
{
    struct slot *sl = arg;
    char reason[FRAME_GOAWAY_MAX_REASON + 1];
    size_t n = g->reason_len < FRAME_GOAWAY_MAX_REASON ? g->reason_len : FRAME_GOAWAY_MAX_REASON;

    (void)m;
    memcpy(reason, g->reason, n);
    reason[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (reason[i] < 0x20 || reason[i] == 0x7f)
            reason[i] = '?';
    }
    /* §4.5: retry after at least Retry After (never, for the final codes handled in on_closed);
     * an hour at most, so a wild value cannot park the connection for weeks. */
    if (g->retry_after_ms != FRAME_RETRY_NEVER)
        sl->retry_after_ms = g->retry_after_ms < 3600000u ? g->retry_after_ms : 3600000u;
    /* The edge disconnects the connectors of a rotated token or a deleted tunnel with AUTH_FAILED:
     * as final as a refused registration (a new one would only be refused, or tarpitted when many
     * connectors share this address, and keep the connector running for minutes). */
    if (g->code == CODE_AUTH_FAILED)
        sl->revoked = 1;
    /* A peer may repeat GOAWAY (§11.3): after the first of a connection the lines go through a
     * limiter, or an edge could fill the connector's log with 256-octet reasons. */
    if (sl->going_away) {
        static struct log_rl rl;

        log_ratelimited(&rl, LOG_INFO, "conn=%u edge %s sent another GOAWAY: %s (%s)", sl->index,
                        sl->edge, frame_code_name(g->code), reason);
        return;
    }
    sl->going_away = 1;
    if (g->code == CODE_NO_ERROR)
        LOG_I("conn=%u edge %s is going away: %s", sl->index, sl->edge, reason);
    else
        LOG_W("conn=%u edge %s closed the connection: %s (%s)", sl->index, sl->edge,
              frame_code_name(g->code), reason);
}

static int on_stream_open(struct mux *m, struct mux_stream *s, const struct meta *md, int end,
                          void *arg)
{
    struct slot *sl = arg;

    (void)m;
    return connector_dispatch(sl->sv->c, s, md, end);
}

static void on_closed(struct link *l, int err, void *arg)
{
    struct slot *sl = arg;
    struct supervisor *sv = sl->sv;
    struct connector *c = sv->c;
    uint64_t up = sl->state == SLOT_S_REGISTERED ? now_ms(sv) - sl->registered_at : 0;

    link_free(l);
    sl->link = NULL;
    sl->going_away = 0; /* the next connection's first GOAWAY is logged in full */
    if (sl->revoked)
        err = CV_EAUTH;
    if (err == CV_EAUTH || err == CV_EVERSION) {
        /* PRODUCT.md section 3: a rejected token is final. */
        LOG_E("conn=%u the edge %s rejected this connector: %s. The tunnel token is wrong, was "
              "rotated, or the tunnel was deleted: get a new token with `culvert-edge tunnel "
              "rotate-token` (or create the tunnel again)",
              sl->index, sl->edge,
              err == CV_EAUTH ? "authentication failed" : "no common protocol version");
        c->fatal = 1;
        sl->state = SLOT_S_STOPPED;
        supervisor_stop(sv);
        maybe_done(sv);
        return;
    }
    if (sl->state == SLOT_S_REGISTERED && sv->stopping)
        LOG_I("conn=%u connection to edge %s closed", sl->index, sl->edge);
    else if (sl->state == SLOT_S_REGISTERED)
        LOG_W("conn=%u connection to edge %s lost after %" PRIu64 "ms%s%s", sl->index, sl->edge, up,
              err != 0 ? ": " : "", err != 0 ? cv_strerror(err) : "");
    else if (sl->state != SLOT_S_STOPPED)
        LOG_W("conn=%u registration with edge %s failed%s%s", sl->index, sl->edge,
              err != 0 ? ": " : "", err != 0 ? cv_strerror(err) : "");
    /* A connection that stayed up a while resets the backoff (cloudflared does the same). */
    if (up >= 10 * c->cfg->retry_base_ms)
        sl->attempt = 0;
    if (sv->stopping) {
        sl->state = SLOT_S_STOPPED;
        maybe_done(sv);
        return;
    }
    slot_retry(sl);
}

static const struct mux_hooks slot_mux_hooks = {
    .on_registered = on_registered,
    .on_stream_open = on_stream_open,
    .on_goaway = on_goaway,
};

static const struct link_hooks slot_link_hooks = {
    .on_closed = on_closed,
};

/* ---- dialing -------------------------------------------------------------------------------- */

static void on_connect(struct sock *s, int status, void *arg)
{
    struct slot *sl = arg;
    struct supervisor *sv = sl->sv;
    struct connector *c = sv->c;
    struct frame_register reg;
    int err = 0;

    if (status < 0) {
        LOG_W("conn=%u cannot connect to edge %s: %s", sl->index, sl->edge,
              sock_error_text(s)[0] != '\0' ? sock_error_text(s) : cv_strerror(status));
        return; /* on_close follows and retries */
    }
    sl->sock = NULL;
    if (sv->stopping) {
        sock_abort(s);
        return;
    }
    sl->link = link_new(s, MUX_ROLE_CONNECTOR, &c->limits, &slot_mux_hooks, &slot_link_hooks, sl,
                        c->limits.register_ms, &err);
    if (sl->link == NULL) {
        sock_abort(s);
        return;
    }
    memset(&reg, 0, sizeof(reg));
    reg.min_version = FRAME_VERSION;
    reg.max_version = FRAME_VERSION;
    memcpy(reg.tunnel_id, c->cfg->tunnel_id, sizeof(reg.tunnel_id));
    memcpy(reg.secret, c->cfg->secret, sizeof(reg.secret));
    memcpy(reg.connector_id, c->connector_id, sizeof(reg.connector_id));
    reg.conn_index = (uint8_t)sl->index;
    snprintf(reg.version, sizeof(reg.version), "%s", CULVERT_VERSION);
    if (c->cfg->region != NULL)
        snprintf(reg.region, sizeof(reg.region), "%s", c->cfg->region);
    err = mux_register(link_mux(sl->link), &reg);
    OPENSSL_cleanse(reg.secret, sizeof(reg.secret));
    if (err < 0) {
        link_abort(sl->link, err);
        return;
    }
    sl->state = SLOT_S_REGISTERING;
}

/* A sock that failed before becoming a link ends here. */
static void on_dial_close(struct sock *s, void *arg)
{
    struct slot *sl = arg;

    (void)s;
    if (sl->sock != s)
        return; /* handed over to a link, which now owns the close */
    sl->sock = NULL;
    if (sl->sv->stopping) {
        sl->state = SLOT_S_STOPPED;
        maybe_done(sl->sv);
        return;
    }
    slot_retry(sl);
}

static const struct sock_hooks dial_hooks = {
    .on_connect = on_connect,
    .on_close = on_dial_close,
};

static void on_resolved(int status, struct addrinfo *res, void *arg)
{
    struct slot *sl = arg;
    struct supervisor *sv = sl->sv;
    struct connector *c = sv->c;
    struct addrinfo *ai;
    struct sock_opts o;
    size_t count = 0;
    size_t pick;
    int err = 0;

    if (sl->lookup_abandoned) {
        sl->lookup_abandoned = 0;
        sv->lookups_abandoned--;
        return;
    }
    if (sl->state != SLOT_S_RESOLVING)
        return;
    if (sv->stopping) {
        sl->state = SLOT_S_STOPPED;
        maybe_done(sv);
        return;
    }
    if (status < 0 || res == NULL) {
        LOG_W("conn=%u cannot resolve edge %s: %s", sl->index, sl->edge, uv_strerror(status));
        slot_retry(sl);
        return;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next)
        count++;
    /* Every address a name resolves to is an edge: spread the slots over them. */
    pick = (sl->index + sl->dials / (c->cfg->n_edges > 0 ? c->cfg->n_edges : 1)) % count;
    for (ai = res; pick > 0; ai = ai->ai_next)
        pick--;
    memset(&o, 0, sizeof(o));
    o.tls_ctx = c->edge_ctx;
    o.servername = sl->host;
    o.in_cap = 2 * ((size_t)c->limits.max_frame_size + FRAME_HDR_LEN) + 64 * 1024;
    o.out_high = 256 * 1024;
    o.nodelay = 1;
    o.keepalive_s = 30;
    sl->state = SLOT_S_CONNECTING;
    sl->sock = sock_connect(c->sl, ai->ai_addr, &o, &dial_hooks, sl, &err);
    if (sl->sock == NULL) {
        LOG_W("conn=%u cannot connect to edge %s: %s", sl->index, sl->edge, cv_strerror(err));
        slot_retry(sl);
        return;
    }
    sock_set_timeout(sl->sock, c->limits.register_ms);
}

static void slot_dial(struct slot *sl)
{
    struct supervisor *sv = sl->sv;
    const struct connector_config *cfg = sv->c->cfg;
    const struct config_addr *a = &cfg->edges[(sl->index + sl->dials) % cfg->n_edges];
    int rv;

    sl->dials++;
    snprintf(sl->host, sizeof(sl->host), "%s", a->host);
    snprintf(sl->port, sizeof(sl->port), "%u", a->port);
    config_format_addr(a, sl->edge, sizeof(sl->edge));
    sl->state = SLOT_S_RESOLVING;
    rv = sock_resolve(sv->c->sl, sl->host, sl->port, on_resolved, sl);
    if (rv < 0) {
        LOG_W("conn=%u cannot resolve edge %s: %s", sl->index, sl->edge, cv_strerror(rv));
        slot_retry(sl);
    }
}

static void on_slot_timer(uv_timer_t *t)
{
    struct slot *sl = t->data;

    if (sl->sv->stopping)
        return;
    LOG_D("conn=%u %s: dialing", sl->index, slot_state_names[sl->state]);
    slot_dial(sl);
}

/* Schedules the next dial with full jitter: uniform in [0, 2^n * base), n capped. */
static void slot_retry(struct slot *sl)
{
    struct supervisor *sv = sl->sv;
    struct connector *c = sv->c;
    unsigned n = sl->attempt < c->limits.backoff_max_exp ? sl->attempt : c->limits.backoff_max_exp;
    uint64_t window;
    uint64_t delay;

    if (sv->stopping) {
        sl->state = SLOT_S_STOPPED;
        maybe_done(sv);
        return;
    }
    if (sl->index > 0 && sl->dials == 0) {
        /* First start of a later connection: the stagger, not a failure. */
        delay = (uint64_t)sl->index * c->cfg->retry_base_ms;
        sl->state = SLOT_S_WAITING;
        uv_timer_start(&sl->timer, on_slot_timer, delay, 0);
        return;
    }
    window = ((uint64_t)1 << n) * c->cfg->retry_base_ms;
    delay = token_random_below(window);
    if (delay < sl->retry_after_ms)
        delay = sl->retry_after_ms + token_random_below(c->cfg->retry_base_ms);
    sl->retry_after_ms = 0;
    sl->attempt++;
    sv->reconnects++;
    sl->state = SLOT_S_WAITING;
    LOG_I("conn=%u retrying connection to the edge in %" PRIu64 "ms (attempt %u, window %" PRIu64
          "ms)",
          sl->index, delay, sl->attempt, window);
    uv_timer_start(&sl->timer, on_slot_timer, delay, 0);
}

/* ---- supervisor ----------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    supervisor_poke(t->data);
}

static void on_grace(uv_timer_t *t)
{
    struct supervisor *sv = t->data;

    LOG_W("grace period over: closing the remaining tunnel connections");
    supervisor_stop(sv);
}

struct supervisor *supervisor_start(struct connector *c, supervisor_done_cb done, void *arg)
{
    struct supervisor *sv = mem_calloc(sizeof(*sv));

    if (sv == NULL)
        return NULL;
    sv->c = c;
    sv->n = c->cfg->ha_connections;
    if (sv->n > CONNECTOR_HA_MAX)
        sv->n = CONNECTOR_HA_MAX;
    sv->done = done;
    sv->done_arg = arg;
    uv_timer_init(c->loop, &sv->grace);
    sv->grace.data = sv;
    uv_timer_init(c->loop, &sv->tick);
    sv->tick.data = sv;
    for (unsigned i = 0; i < sv->n; i++) {
        struct slot *sl = &sv->slots[i];

        sl->sv = sv;
        sl->index = i;
        sl->state = SLOT_S_IDLE;
        uv_timer_init(c->loop, &sl->timer);
        sl->timer.data = sl;
    }
    slot_dial(&sv->slots[0]);
    return sv;
}

/* Stops a slot that has no connection: waiting, or resolving the edge's name. A lookup cannot
 * be cancelled once it runs, and a resolver that does not answer holds it for its whole timeout
 * (10 s and more): stopping does not wait for it (supervisor_lookups_abandoned). */
static void slot_stop_idle(struct slot *sl)
{
    if (sl->state == SLOT_S_RESOLVING) {
        sl->lookup_abandoned = 1;
        sl->sv->lookups_abandoned++;
    }
    sl->state = SLOT_S_STOPPED;
}

void supervisor_drain(struct supervisor *sv, uint64_t grace_ms)
{
    if (sv->stopping)
        return;
    sv->stopping = 1;
    for (unsigned i = 0; i < sv->n; i++) {
        struct slot *sl = &sv->slots[i];

        uv_timer_stop(&sl->timer);
        if (sl->link != NULL) {
            struct mux *m = link_mux(sl->link);

            /* PROTOCOL.md §11.2: no new streams; the edge moves new requests elsewhere. */
            mux_goaway(m, CODE_NO_ERROR, 0, "connector shutting down");
            if (mux_is_idle(m))
                link_close(sl->link);
        } else if (sl->sock != NULL) {
            sock_abort(sl->sock);
        } else {
            slot_stop_idle(sl); /* nothing in flight to drain here */
        }
    }
    uv_timer_start(&sv->grace, on_grace, grace_ms, 0);
    /* A stream's end is only counted once its last frame is flushed, after the owner's last call:
     * check on a short tick too, not only when streams end. */
    uv_timer_start(&sv->tick, on_tick, 50, 50);
    maybe_done(sv);
}

void supervisor_poke(struct supervisor *sv)
{
    if (sv == NULL || !sv->stopping)
        return;
    for (unsigned i = 0; i < sv->n; i++) {
        struct slot *sl = &sv->slots[i];

        if (sl->link != NULL && !link_closing(sl->link) && mux_is_idle(link_mux(sl->link)))
            link_close(sl->link);
    }
}

void supervisor_stop(struct supervisor *sv)
{
    sv->stopping = 1;
    for (unsigned i = 0; i < sv->n; i++) {
        struct slot *sl = &sv->slots[i];

        uv_timer_stop(&sl->timer);
        if (sl->link != NULL)
            link_abort(sl->link, 0);
        else if (sl->sock != NULL)
            sock_abort(sl->sock);
        else
            slot_stop_idle(sl);
    }
    maybe_done(sv);
}

unsigned supervisor_lookups_abandoned(const struct supervisor *sv)
{
    return sv != NULL ? sv->lookups_abandoned : 0;
}

void supervisor_free(struct supervisor *sv)
{
    mem_free(sv);
}

void supervisor_close_handles(struct supervisor *sv)
{
    for (unsigned i = 0; i < sv->n; i++)
        uv_close((uv_handle_t *)&sv->slots[i].timer, NULL);
    uv_close((uv_handle_t *)&sv->grace, NULL);
    uv_close((uv_handle_t *)&sv->tick, NULL);
}

size_t supervisor_ready(const struct supervisor *sv)
{
    size_t n = 0;

    if (sv == NULL)
        return 0;
    for (unsigned i = 0; i < sv->n; i++) {
        /* Registered, and the edge still sends streams there: a draining edge's GOAWAY leaves
         * the connection up for the streams in flight, but nothing new comes (cloudflared, too,
         * counts such a connection out of readyConnections). */
        if (sv->slots[i].state == SLOT_S_REGISTERED && sv->slots[i].link != NULL &&
            !link_closing(sv->slots[i].link) && !sv->slots[i].going_away)
            n++;
    }
    return n;
}

void supervisor_counts(const struct supervisor *sv, size_t *ready, uint64_t *reconnects, size_t *streams)
{
    *ready = supervisor_ready(sv);
    *reconnects = sv != NULL ? sv->reconnects : 0;
    *streams = 0;
    if (sv == NULL)
        return;
    for (unsigned i = 0; i < sv->n; i++) {
        if (sv->slots[i].link != NULL) {
            struct mux_stats st;

            mux_stats(link_mux(sv->slots[i].link), &st);
            *streams += st.open_streams;
        }
    }
}
