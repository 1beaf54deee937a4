/*
 * tunnel.c - the registry of live connectors and the choice of a connection per request.
 *
 * tunnel_listener.c accepts connector connections and hands each registered link here; public.c
 * calls tunnel_registry_pick() for every request; admin.c describes and kicks. Below: link.c (a mux
 * over a sock). One loop thread.
 *
 * Model: tunnel (by id) -> connectors (by connector id, one per connector process) -> connections.
 * Each connection keeps a smoothed RTT from the edge's PINGs (RFC 6298 smoothing: srtt and rttvar);
 * a connector's distance is the best srtt among its usable connections.
 */
#include "tunnel.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "edge.h"
#include "edge_config.h"
#include "err.h"
#include "json.h"
#include "link.h"
#include "list.h"
#include "log.h"
#include "mem.h"
#include "store.h"
#include "token.h"

struct tentry;
struct tconnector;

/* One tunnel connection. */
struct tconn {
    struct tunnel_registry *reg;
    struct link *link;
    struct tconnector *ctr; /* NULL until registered */
    struct list_node node;  /* in ctr->conns, or reg->pending before registration */
    uint64_t id;
    int64_t opened_ms;
    uint64_t srtt_us;
    uint64_t rttvar_us;
    int has_rtt;
    unsigned goaways; /* GOAWAYs received: only the first is logged in full */
    uint8_t conn_index;
    char peer[64];
    char ip[64]; /* the peer's address alone: the tarpit's key, kept after the socket is gone */
};

/* One connector process (grouped by the Connector Id of REGISTER). */
struct tconnector {
    uint8_t id[16];
    char version[FRAME_LABEL_MAX + 1];
    char region[FRAME_LABEL_MAX + 1];
    struct tentry *t;
    struct list_node conns;
    struct list_node node; /* in t->connectors */
    size_t nconns;
};

struct tentry {
    uint8_t id[16];
    struct list_node connectors;
    size_t nconnectors;
    struct tentry *hnext;
    unsigned rr; /* round-robin cursor */
};

/* Per peer address, for the tarpit (RELIABILITY.md §10: 10/min/IP): failed registrations, and
 * registered connections that ended in a protocol violation (a valid token does not buy a loop of
 * reconnect, break the protocol, reconnect: every turn costs a TLS handshake and log lines). */
struct auth_fail {
    struct auth_fail *next;
    uint64_t window_start_ms;
    unsigned count;
    unsigned faults;
    char ip[64];
};

#define AUTH_FAIL_BUCKETS 256
#define AUTH_FAIL_PER_MIN 10

struct tunnel_registry {
    struct edge *e;
    struct auth_fail *fails[AUTH_FAIL_BUCKETS];
    struct tentry **buckets;
    size_t nbuckets;
    struct list_node pending; /* connections not registered yet */
    size_t npending;
    uint64_t next_conn_id;
    char edge_name[FRAME_LABEL_MAX + 1];
};

/* ---- tunnel table --------------------------------------------------------------------------- */

static size_t id_hash(const struct tunnel_registry *r, const uint8_t id[16])
{
    uint64_t h = 1469598103934665603ull;

    for (int i = 0; i < 16; i++)
        h = (h ^ id[i]) * 1099511628211ull;
    return (size_t)(h & (r->nbuckets - 1));
}

static struct tentry *tentry_find(const struct tunnel_registry *r, const uint8_t id[16])
{
    struct tentry *t;

    for (t = r->buckets[id_hash(r, id)]; t != NULL; t = t->hnext) {
        if (memcmp(t->id, id, 16) == 0)
            return t;
    }
    return NULL;
}

static struct tentry *tentry_get(struct tunnel_registry *r, const uint8_t id[16])
{
    struct tentry *t = tentry_find(r, id);
    size_t b;

    if (t != NULL)
        return t;
    t = mem_calloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    memcpy(t->id, id, 16);
    list_init(&t->connectors);
    b = id_hash(r, id);
    t->hnext = r->buckets[b];
    r->buckets[b] = t;
    return t;
}

static void tentry_maybe_free(struct tunnel_registry *r, struct tentry *t)
{
    struct tentry **pp;

    if (t->nconnectors > 0)
        return;
    for (pp = &r->buckets[id_hash(r, t->id)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == t) {
            *pp = t->hnext;
            break;
        }
    }
    mem_free(t);
}

/* ---- registry ------------------------------------------------------------------------------- */

struct tunnel_registry *tunnel_registry_new(struct edge *e)
{
    struct tunnel_registry *r = mem_calloc(sizeof(*r));

    if (r == NULL)
        return NULL;
    r->e = e;
    r->nbuckets = 1024;
    r->buckets = mem_calloc(r->nbuckets * sizeof(*r->buckets));
    if (r->buckets == NULL) {
        mem_free(r);
        return NULL;
    }
    list_init(&r->pending);
    r->next_conn_id = 1;
    if (gethostname(r->edge_name, sizeof(r->edge_name) - 1) != 0)
        strcpy(r->edge_name, "edge");
    r->edge_name[FRAME_LABEL_MAX] = '\0';
    for (char *p = r->edge_name; *p != '\0'; p++) {
        if (*p <= 0x20 || *p >= 0x7f)
            *p = '-';
    }
    return r;
}

/* The registry outlives no connection: main.c frees it after every link has closed. */
void tunnel_registry_free(struct tunnel_registry *r)
{
    if (r == NULL)
        return;
    for (size_t b = 0; b < r->nbuckets; b++) {
        struct tentry *t = r->buckets[b];

        while (t != NULL) {
            struct tentry *next = t->hnext;

            mem_free(t);
            t = next;
        }
    }
    for (size_t b = 0; b < AUTH_FAIL_BUCKETS; b++) {
        while (r->fails[b] != NULL) {
            struct auth_fail *f = r->fails[b];

            r->fails[b] = f->next;
            mem_free(f);
        }
    }
    mem_free(r->buckets);
    mem_free(r);
}

/* The entry of |ip| with its counts for the current minute, made when |create|; NULL if none.
 * Entries older than a minute are reused or dropped as their bucket is walked. */
static struct auth_fail *peer_entry(struct tunnel_registry *r, const char *ip, int create)
{
    uint64_t now = uv_now(r->e->loop);
    uint64_t h = 1469598103934665603ull;
    struct auth_fail **pp;
    struct auth_fail *f;

    for (const char *p = ip; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    pp = &r->fails[h % AUTH_FAIL_BUCKETS];
    while (*pp != NULL) {
        f = *pp;
        if (strcmp(f->ip, ip) == 0)
            break;
        if (now - f->window_start_ms >= 60000) {
            *pp = f->next;
            mem_free(f);
            continue;
        }
        pp = &f->next;
    }
    f = *pp;
    if (f == NULL) {
        if (!create)
            return NULL;
        f = mem_calloc(sizeof(*f));
        if (f == NULL)
            return NULL;
        snprintf(f->ip, sizeof(f->ip), "%s", ip);
        f->window_start_ms = now;
        f->next = NULL;
        *pp = f;
    }
    if (now - f->window_start_ms >= 60000) {
        f->window_start_ms = now;
        f->count = 0;
        f->faults = 0;
    }
    return f;
}

/* Counts a failed registration from |ip|; returns 1 when the peer is over its budget. */
static int auth_fail_note(struct tunnel_registry *r, const char *ip)
{
    struct auth_fail *f = peer_entry(r, ip, 1);

    return f != NULL && ++f->count > AUTH_FAIL_PER_MIN;
}

/* A registered connection from |ip| ended because the peer broke the protocol (the errors mux_feed
 * reports for it), not because of the network, a deadline or a drain. */
static void fault_note(struct tunnel_registry *r, const char *ip, int err)
{
    struct auth_fail *f;

    if (err != CV_EPROTO && err != CV_EFRAMESIZE && err != CV_EFLOW && err != CV_ECALM)
        return;
    f = peer_entry(r, ip, 1);
    if (f != NULL)
        f->faults++;
}

/* How many of |ip|'s connections broke the protocol this minute, once that is over the budget. */
static unsigned faults_over(struct tunnel_registry *r, const char *ip)
{
    struct auth_fail *f = peer_entry(r, ip, 0);

    return f != NULL && f->faults >= AUTH_FAIL_PER_MIN ? f->faults : 0;
}

size_t tunnel_registry_connector_count(const struct tunnel_registry *r, const uint8_t tunnel_id[16])
{
    const struct tentry *t = tentry_find(r, tunnel_id);

    return t != NULL ? t->nconnectors : 0;
}

void tunnel_registry_counts(const struct tunnel_registry *r, size_t *conns, size_t *streams)
{
    size_t c = r->npending;
    size_t s = 0;

    for (size_t b = 0; b < r->nbuckets; b++) {
        for (const struct tentry *t = r->buckets[b]; t != NULL; t = t->hnext) {
            const struct list_node *p;

            list_for_each(p, &t->connectors)
            {
                const struct tconnector *k = container_of(p, struct tconnector, node);
                const struct list_node *q;

                list_for_each(q, &k->conns)
                {
                    const struct tconn *tc = container_of(q, struct tconn, node);
                    struct mux_stats st;

                    mux_stats(link_mux(tc->link), &st);
                    c++;
                    s += st.open_streams;
                }
            }
        }
    }
    *conns = c;
    *streams = s;
}

/* ---- health and choice ---------------------------------------------------------------------- */

/* A connection can take a new stream: open, not draining, below the peer's stream limit, with
 * connection credit left. |*saturated| is set when only the last two fail. */
static int conn_usable(const struct tconn *tc, int *saturated)
{
    struct mux *m = link_mux(tc->link);

    if (link_closing(tc->link) || mux_state(m) != MUX_S_OPEN || mux_is_draining(m))
        return 0;
    if (mux_open_streams(m) >= mux_peer_settings(m)->max_concurrent_streams || mux_send_window(m) <= 0) {
        *saturated = 1;
        return 0;
    }
    return 1;
}

static uint64_t conn_rtt(const struct tconn *tc)
{
    /* Connections without a sample yet sort after measured ones but are still used. */
    return tc->has_rtt ? tc->srtt_us : UINT64_MAX / 2;
}

static size_t conn_streams(const struct tconn *tc)
{
    return mux_open_streams(link_mux(tc->link));
}

/* May connection |tc| take the stream? Not the one to avoid, nor any of the connector to avoid. */
static int conn_allowed(const struct tconn *tc, const struct mux *avoid, const struct tconnector *avoid_ctr)
{
    return link_mux(tc->link) != avoid && (avoid_ctr == NULL || tc->ctr != avoid_ctr);
}

static struct tconn *pick_in(struct tentry *t, enum balance_policy policy, const struct mux *avoid,
                             const struct tconnector *avoid_ctr, int *saturated)
{
    struct tconn *best = NULL;
    uint64_t best_rtt = UINT64_MAX;
    size_t best_streams = SIZE_MAX;
    size_t index = 0;
    size_t usable = 0;
    struct list_node *p;
    struct list_node *q;

    if (policy == BALANCE_ROUND_ROBIN) {
        /* Count usable connections, then take the rr-th. */
        list_for_each(p, &t->connectors)
        {
            list_for_each(q, &container_of(p, struct tconnector, node)->conns)
            {
                struct tconn *tc = container_of(q, struct tconn, node);

                if (conn_allowed(tc, avoid, avoid_ctr) && conn_usable(tc, saturated))
                    usable++;
            }
        }
        if (usable == 0)
            return NULL;
        t->rr++;
        list_for_each(p, &t->connectors)
        {
            list_for_each(q, &container_of(p, struct tconnector, node)->conns)
            {
                struct tconn *tc = container_of(q, struct tconn, node);

                if (!conn_allowed(tc, avoid, avoid_ctr) || !conn_usable(tc, saturated))
                    continue;
                if (index++ == t->rr % usable)
                    return tc;
            }
        }
        return NULL;
    }
    if (policy == BALANCE_LEAST_STREAMS) {
        list_for_each(p, &t->connectors)
        {
            list_for_each(q, &container_of(p, struct tconnector, node)->conns)
            {
                struct tconn *tc = container_of(q, struct tconn, node);
                size_t streams;

                if (!conn_allowed(tc, avoid, avoid_ctr) || !conn_usable(tc, saturated))
                    continue;
                streams = conn_streams(tc);
                if (streams < best_streams) {
                    best = tc;
                    best_streams = streams;
                }
            }
        }
        return best;
    }
    /* nearest: the connector whose best usable connection has the lowest smoothed RTT, and that
     * connection (the least loaded on a tie). A saturated connection was skipped, so a saturated
     * connector spills to the next nearest by itself. (Comparing connections one by one let a
     * busier connector's slower connection stand for it, and a farther connector win.) Requests
     * gather on one connection until it is saturated or its RTT rises past another's (queueing
     * shows there first): its frames then share TCP writes and TLS records. Spreading each
     * request to the least-loaded of four connections cost both processes 10-15% more read and
     * write calls per small request (bench/NOTES.md). */
    list_for_each(p, &t->connectors)
    {
        struct tconnector *k = container_of(p, struct tconnector, node);
        struct tconn *kbest = NULL;
        uint64_t krtt = UINT64_MAX;
        size_t kstreams = SIZE_MAX;

        list_for_each(q, &k->conns)
        {
            struct tconn *tc = container_of(q, struct tconn, node);
            uint64_t rtt;
            size_t streams;

            if (!conn_allowed(tc, avoid, avoid_ctr) || !conn_usable(tc, saturated))
                continue;
            rtt = conn_rtt(tc);
            streams = conn_streams(tc);
            if (kbest == NULL || rtt < krtt || (rtt == krtt && streams < kstreams)) {
                kbest = tc;
                krtt = rtt;
                kstreams = streams;
            }
        }
        if (kbest != NULL && (best == NULL || krtt < best_rtt)) {
            best = kbest;
            best_rtt = krtt;
        }
    }
    return best;
}

struct mux *tunnel_registry_pick(struct tunnel_registry *r, const uint8_t tunnel_id[16],
                                 const struct mux *avoid, int *why)
{
    struct tentry *t = tentry_find(r, tunnel_id);
    const struct tconnector *avoid_ctr = NULL;
    int saturated = 0;
    struct tconn *tc;

    *why = CV_ENOTFOUND;
    if (t == NULL)
        return NULL;
    if (avoid != NULL) {
        /* A stream that failed on |avoid| goes to another connector first: the failure (a kill, a
         * drain, a lost link) usually takes all of that connector's connections within moments.
         * Only when no other connector can take it, another connection of the same one. The
         * connection is alive here: callers pass the mux whose failure they are handling. */
        const struct tconn *atc = link_arg((const struct link *)mux_arg(avoid));

        avoid_ctr = atc != NULL ? atc->ctr : NULL;
    }
    tc = pick_in(t, r->e->cfg->balance, avoid, avoid_ctr, &saturated);
    if (tc == NULL && avoid_ctr != NULL)
        tc = pick_in(t, r->e->cfg->balance, avoid, NULL, &saturated);
    if (tc != NULL)
        return link_mux(tc->link);
    *why = saturated ? CV_ELIMIT : CV_ENOTFOUND;
    return NULL;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void on_pong(struct mux *m, uint64_t rtt, void *arg)
{
    struct tconn *tc = arg;
    uint64_t diff;

    (void)m;
    /* RFC 6298 §2: srtt and rttvar with alpha 1/8, beta 1/4. */
    if (!tc->has_rtt) {
        tc->srtt_us = rtt;
        tc->rttvar_us = rtt / 2;
        tc->has_rtt = 1;
        return;
    }
    diff = tc->srtt_us > rtt ? tc->srtt_us - rtt : rtt - tc->srtt_us;
    tc->rttvar_us = (3 * tc->rttvar_us + diff) / 4;
    tc->srtt_us = (7 * tc->srtt_us + rtt) / 8;
}

static void on_goaway(struct mux *m, const struct frame_goaway *g, void *arg)
{
    struct tconn *tc = arg;

    static struct log_rl rl;

    (void)m;
    /* A peer may repeat GOAWAY (§11.3) at 21 octets each: more than the first of a connection go
     * through a limiter, or a connector could fill the edge's log at five times its own rate. */
    if (tc->goaways++ == 0)
        LOG_I("tunnel conn=%" PRIu64 " connector is going away (%s, last stream %u)", tc->id,
              frame_code_name(g->code), g->last_stream_id);
    else
        log_ratelimited(&rl, LOG_INFO, "tunnel conn=%" PRIu64 " connector sent another GOAWAY (%s, "
                        "last stream %u)", tc->id, frame_code_name(g->code), g->last_stream_id);
}

static void detach(struct tconn *tc)
{
    struct tconnector *k = tc->ctr;
    struct tunnel_registry *r = tc->reg;

    list_remove(&tc->node);
    if (k == NULL) {
        r->npending--;
        return;
    }
    tc->ctr = NULL;
    k->nconns--;
    if (k->nconns == 0) {
        struct tentry *t = k->t;

        list_remove(&k->node);
        t->nconnectors--;
        mem_free(k);
        tentry_maybe_free(r, t);
    }
}

static void on_register(struct mux *m, const struct frame_register *rg, void *arg);

static void on_closed(struct link *l, int err, void *arg)
{
    struct tconn *tc = arg;
    char id[37];

    if (tc->ctr != NULL) {
        token_uuid_format(tc->ctr->t->id, id);
        LOG_I("tunnel conn=%" PRIu64 " tunnel=%s peer=%s closed%s%s", tc->id, id, tc->peer,
              err != 0 ? ": " : "", err != 0 ? cv_strerror(err) : "");
        fault_note(tc->reg, tc->ip, err);
    } else {
        LOG_D("tunnel peer=%s closed before registration%s%s", tc->peer, err != 0 ? ": " : "",
              err != 0 ? cv_strerror(err) : "");
    }
    detach(tc);
    link_free(l);
    mem_free(tc);
}

static const struct mux_hooks conn_mux_hooks = {
    .on_register = on_register,
    .on_pong = on_pong,
    .on_goaway = on_goaway,
};

static const struct link_hooks conn_link_hooks = {
    .on_closed = on_closed,
};

/* Connections from |ip| that have not registered yet. */
static size_t pending_from(const struct tunnel_registry *r, const char *ip)
{
    const struct list_node *p;
    size_t n = 0;

    list_for_each(p, &r->pending)
    {
        const struct tconn *tc = container_of(p, const struct tconn, node);

        if (strcmp(sock_peer_ip(link_sock(tc->link)), ip) == 0)
            n++;
    }
    return n;
}

/*
 * RELIABILITY.md 3.5, OpenSSH's MaxStartups and PerSourceMaxStartups: unauthenticated connections
 * are capped (pending_handshakes, 64); one address holds at most a quarter of the slots, so idle
 * sockets from one host cannot lock every connector out; past half of the slots a newcomer is
 * refused with a probability that grows to 1 at the cap (random early drop), so a flood from many
 * addresses leaves a reconnecting connector a chance at every attempt. Returns 0 to admit.
 */
static int pending_admit(const struct tunnel_registry *r, struct sock *s)
{
    uint32_t cap = r->e->limits.pending_handshakes;
    size_t per_ip = cap / 4 > 0 ? cap / 4 : 1;
    size_t start = cap / 2;

    if (r->npending >= cap) {
        LOG_W_RL("tunnel peer=%s dropped: %zu registrations pending (pending_handshakes)", sock_peer(s),
                 r->npending);
        return CV_ELIMIT;
    }
    if (pending_from(r, sock_peer_ip(s)) >= per_ip) {
        LOG_W_RL("tunnel peer=%s dropped: %zu registrations pending from this address (a quarter of "
                 "pending_handshakes)",
                 sock_peer(s), per_ip);
        return CV_ELIMIT;
    }
    if (r->npending >= start && token_random_below(cap - start) < r->npending - start) {
        LOG_W_RL("tunnel peer=%s dropped early: %zu of %u registration slots taken", sock_peer(s),
                 r->npending, cap);
        return CV_ELIMIT;
    }
    return 0;
}

int tunnel_registry_adopt(struct tunnel_registry *r, struct sock *s)
{
    struct tconn *tc;
    int err = 0;

    if (pending_admit(r, s) < 0)
        return CV_ELIMIT;
    tc = mem_calloc(sizeof(*tc));
    if (tc == NULL)
        return CV_ENOMEM;
    tc->reg = r;
    snprintf(tc->peer, sizeof(tc->peer), "%s", sock_peer(s));
    snprintf(tc->ip, sizeof(tc->ip), "%s", sock_peer_ip(s));
    tc->link = link_new(s, MUX_ROLE_EDGE, &r->e->limits, &conn_mux_hooks, &conn_link_hooks, tc,
                        r->e->limits.register_ms, &err);
    if (tc->link == NULL) {
        mem_free(tc);
        return err;
    }
    list_push_back(&r->pending, &tc->node);
    r->npending++;
    return 0;
}

static struct tconnector *connector_get(struct tentry *t, const struct frame_register *rg)
{
    struct list_node *p;
    struct tconnector *k;

    list_for_each(p, &t->connectors)
    {
        k = container_of(p, struct tconnector, node);
        if (memcmp(k->id, rg->connector_id, 16) == 0)
            return k;
    }
    k = mem_calloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    memcpy(k->id, rg->connector_id, 16);
    snprintf(k->version, sizeof(k->version), "%s", rg->version);
    snprintf(k->region, sizeof(k->region), "%s", rg->region);
    k->t = t;
    list_init(&k->conns);
    list_push_back(&t->connectors, &k->node);
    t->nconnectors++;
    return k;
}

static void on_register(struct mux *m, const struct frame_register *rg, void *arg)
{
    struct tconn *tc = arg;
    struct tunnel_registry *r = tc->reg;
    struct edge *e = r->e;
    const struct store_tunnel *rec;
    struct frame_registered rd;
    struct tentry *t;
    struct tconnector *k;
    unsigned faults;
    char id[37];

    token_uuid_format(rg->tunnel_id, id);
    faults = faults_over(r, tc->ip);
    if (faults > 0) {
        /* Tarpit, as for failed logins: no answer; the registration deadline closes it. */
        LOG_W_RL("tunnel peer=%s tunnel=%s registration held: %u connections from this address "
                 "broke the protocol in the last minute (answer withheld)",
                 tc->peer, id, faults);
        return;
    }
    /* PROTOCOL.md §4.6: one answer for an unknown tunnel and a wrong secret, after the same work. */
    rec = store_authenticate(e->store, rg->tunnel_id, rg->secret);
    if (rec == NULL) {
        if (auth_fail_note(r, tc->ip)) {
            /* Tarpit: no answer; the registration deadline closes the connection. */
            LOG_W_RL("tunnel peer=%s tunnel=%s registration refused: authentication failed (too many "
                     "failures from this address: answer withheld)",
                     tc->peer, id);
            return;
        }
        LOG_W("tunnel peer=%s tunnel=%s registration refused: authentication failed", tc->peer, id);
        mux_reject(m, CODE_AUTH_FAILED, FRAME_RETRY_NEVER, "authentication failed");
        return;
    }
    t = tentry_get(r, rg->tunnel_id);
    if (t == NULL) {
        mux_reject(m, CODE_LIMIT_EXCEEDED, 5000, "edge out of memory");
        return;
    }
    /* RELIABILITY.md 3.4: caps, refused with a clear error, never a silent swap. */
    k = NULL;
    {
        struct list_node *p;

        list_for_each(p, &t->connectors)
        {
            struct tconnector *c = container_of(p, struct tconnector, node);

            if (memcmp(c->id, rg->connector_id, 16) == 0)
                k = c;
        }
    }
    if (k == NULL && t->nconnectors >= e->limits.connectors_per_tunnel) {
        mux_reject(m, CODE_LIMIT_EXCEEDED, 30000, "too many connectors for this tunnel");
        tentry_maybe_free(r, t);
        return;
    }
    if (k != NULL && k->nconns >= e->limits.connections_per_connector) {
        mux_reject(m, CODE_LIMIT_EXCEEDED, 30000, "too many connections for this connector");
        return;
    }
    k = connector_get(t, rg);
    if (k == NULL) {
        mux_reject(m, CODE_LIMIT_EXCEEDED, 5000, "edge out of memory");
        tentry_maybe_free(r, t);
        return;
    }
    memset(&rd, 0, sizeof(rd));
    tc->id = r->next_conn_id++;
    rd.connection_id = tc->id;
    rd.heartbeat_ms = e->limits.heartbeat_ms;
    snprintf(rd.region, sizeof(rd.region), "%s", e->cfg->region);
    snprintf(rd.name, sizeof(rd.name), "%s", r->edge_name);
    if (mux_accept(m, &rd) < 0) {
        link_abort(tc->link, CV_ENOMEM);
        if (k->nconns == 0) {
            list_remove(&k->node);
            t->nconnectors--;
            mem_free(k);
            tentry_maybe_free(r, t);
        }
        return;
    }
    list_remove(&tc->node);
    r->npending--;
    tc->ctr = k;
    tc->conn_index = rg->conn_index;
    tc->opened_ms = edge_wall_ms();
    list_push_back(&k->conns, &tc->node);
    k->nconns++;
    link_start_heartbeat(tc->link, LINK_HB_EDGE, e->limits.heartbeat_ms);
    LOG_I("tunnel conn=%" PRIu64 " tunnel=%s (%s) connector region=%s version=%s index=%u peer=%s "
          "registered",
          tc->id, id, rec->name, rg->region[0] != '\0' ? rg->region : "-", rg->version,
          rg->conn_index, tc->peer);
}

/* ---- admin ---------------------------------------------------------------------------------- */

void tunnel_registry_describe(const struct tunnel_registry *r, const uint8_t tunnel_id[16],
                              struct json_writer *w)
{
    const struct tentry *t = tentry_find(r, tunnel_id);
    const struct list_node *p;
    const struct list_node *q;

    json_w_array_begin(w);
    if (t != NULL) {
        list_for_each(p, &t->connectors)
        {
            const struct tconnector *k = container_of(p, struct tconnector, node);
            char id[37];

            token_uuid_format(k->id, id);
            json_w_object_begin(w);
            json_w_key(w, "id");
            json_w_string(w, id);
            json_w_key(w, "version");
            json_w_string(w, k->version);
            json_w_key(w, "region");
            json_w_string(w, k->region);
            json_w_key(w, "connections");
            json_w_array_begin(w);
            list_for_each(q, &k->conns)
            {
                const struct tconn *tc = container_of(q, struct tconn, node);
                char opened[40];
                char cid[24];

                edge_rfc3339(tc->opened_ms, opened, sizeof(opened));
                snprintf(cid, sizeof(cid), "%" PRIu64, tc->id);
                json_w_object_begin(w);
                json_w_key(w, "id");
                json_w_string(w, cid);
                json_w_key(w, "index");
                json_w_uint(w, tc->conn_index);
                json_w_key(w, "edge");
                json_w_string(w, r->edge_name);
                json_w_key(w, "peer");
                json_w_string(w, tc->peer);
                json_w_key(w, "rtt_ms");
                json_w_double(w, tc->has_rtt ? (double)tc->srtt_us / 1000.0 : 0.0);
                json_w_key(w, "streams");
                json_w_uint(w, conn_streams(tc));
                json_w_key(w, "opened_at");
                json_w_string(w, opened);
                json_w_object_end(w);
            }
            json_w_array_end(w);
            json_w_object_end(w);
        }
    }
    json_w_array_end(w);
}

void tunnel_registry_kick(struct tunnel_registry *r, const uint8_t tunnel_id[16], const char *reason)
{
    struct tentry *t = tentry_find(r, tunnel_id);
    struct list_node *p;
    struct list_node *q;

    if (t == NULL)
        return;
    list_for_each(p, &t->connectors)
    {
        list_for_each(q, &container_of(p, struct tconnector, node)->conns)
        {
            struct tconn *tc = container_of(q, struct tconn, node);

            /* The GOAWAY closes the mux; the link closes once it is flushed. */
            mux_goaway(link_mux(tc->link), CODE_AUTH_FAILED, FRAME_RETRY_NEVER, reason);
        }
    }
}

void tunnel_registry_drain(struct tunnel_registry *r)
{
    for (size_t b = 0; b < r->nbuckets; b++) {
        for (struct tentry *t = r->buckets[b]; t != NULL; t = t->hnext) {
            struct list_node *p;
            struct list_node *q;

            list_for_each(p, &t->connectors)
            {
                list_for_each(q, &container_of(p, struct tconnector, node)->conns)
                {
                    struct tconn *tc = container_of(q, struct tconn, node);

                    mux_goaway(link_mux(tc->link), CODE_NO_ERROR, 0, "edge is shutting down");
                }
            }
        }
    }
}

void tunnel_registry_close_idle(struct tunnel_registry *r, int force)
{
    struct list_node *p;
    struct list_node *ptmp;

    for (size_t b = 0; b < r->nbuckets; b++) {
        struct tentry *t = r->buckets[b];

        while (t != NULL) {
            struct tentry *tnext = t->hnext;
            struct list_node *q;
            struct list_node *qtmp;

            /* Closes complete later (libuv close callbacks), so nothing is freed during the walk. */
            list_for_each_safe(p, ptmp, &t->connectors)
            {
                struct tconnector *k = container_of(p, struct tconnector, node);

                list_for_each_safe(q, qtmp, &k->conns)
                {
                    struct tconn *tc = container_of(q, struct tconn, node);
                    struct mux *m = link_mux(tc->link);

                    if (link_closing(tc->link))
                        continue;
                    if (force)
                        link_abort(tc->link, 0);
                    else if (mux_is_idle(m))
                        link_close(tc->link);
                }
            }
            t = tnext;
        }
    }
    list_for_each_safe(p, ptmp, &r->pending)
    {
        struct tconn *tc = container_of(p, struct tconn, node);

        if (!link_closing(tc->link))
            link_abort(tc->link, 0);
    }
}
