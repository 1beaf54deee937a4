/*
 * store.h - the edge's tunnels and routes, persisted in DATA_DIR/state.json.
 *
 * A tunnel is {id (UUID), name, SHA-256 of its 32-byte secret, created_at, generation}; the secret
 * itself is returned once, to the caller of store_tunnel_create() or store_tunnel_rotate(), and
 * never stored (PRODUCT.md section 2 "Token"). A route maps a hostname pattern (exact or "*.",
 * normalised by common/hostname) to one tunnel; the edge's route table is authoritative
 * (RELIABILITY.md §2.2 row 2.1): connectors never add routes.
 *
 * Persistence: every change rewrites state.json crash-safely: the new JSON goes to
 * state.json.tmp in the same directory (mode 0600), is fsync'ed, renamed over state.json, and the
 * directory is fsync'ed. A crash leaves either the old or the new file, never a mix; a leftover
 * temporary file is ignored and overwritten. A change is first prepared in memory with every
 * allocation done, then written, then committed with operations that cannot fail; when the write
 * fails the in-memory state is exactly as before and the caller gets the error. Deleting a tunnel
 * removes its routes in the same write (RELIABILITY.md §2.2 row 2.5). The store holds an exclusive
 * lock (flock) on DATA_DIR/state.lock while open, so two edges never share one data_dir.
 *
 * Lookups: by id and by name scan the tunnels (admin operations and registrations are rare);
 * store_authenticate() always scans every tunnel and hashes and compares once, so an unknown id and
 * a wrong secret cost the same (RELIABILITY.md §2.3 row 3.2); route lookups go through a
 * hostname_table (exact beats wildcard, longer wildcard beats shorter), in time proportional to the
 * labels of the name, on every public request.
 *
 * Pointers to tunnels stay valid until that tunnel is deleted or the store is freed; a rotation
 * changes the tunnel in place. One loop thread; file writes are synchronous (rare admin
 * operations). Allocation through common/mem.
 */
#ifndef CV_STORE_H
#define CV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "token.h"

#define STORE_NAME_MAX 64            /* characters in a tunnel name */
#define STORE_FILE "state.json"
#define STORE_TMP_FILE "state.json.tmp"
#define STORE_LOCK_FILE "state.lock"
#define STORE_MAX_FILE (64u * 1024 * 1024) /* a bigger state.json is refused as corrupt */

struct store;

/* A tunnel as the store keeps it. Read-only for callers. */
struct store_tunnel {
    uint8_t id[TOKEN_ID_LEN];
    char name[STORE_NAME_MAX + 1];
    uint8_t secret_hash[TOKEN_DIGEST_LEN]; /* SHA-256 of the secret */
    int64_t created_ms;                    /* creation time, Unix milliseconds */
    uint32_t generation;                   /* 1 at creation, +1 per rotation */
};

/*
 * Checks a tunnel name: 1..STORE_NAME_MAX characters of [A-Za-z0-9._-], not starting with '-'
 * (it would read as a flag), not "." or ".." (they vanish from URL paths), and not a UUID (the
 * admin API and the CLI accept a name or an id). Returns true, or false with *|why| set to a static
 * reason (|why| may be NULL).
 */
bool store_name_valid(const char *name, const char **why);

/*
 * Opens the store in |data_dir| (borrowed): creates the directory (mode 0700, parents included)
 * if missing, takes the lock, and loads state.json when it exists (a missing file is an empty
 * store). Returns 0 and sets *|out|, or a negative code with a one-line message in |err| (|errlen|
 * bytes, NUL-terminated when |errlen| > 0) and *|out| NULL:
 *   -errno      the directory cannot be created, or the file or lock cannot be opened or read;
 *   CV_EEXIST   another process holds the lock ("DIR: in use by another culvert-edge");
 *   CV_EAUTH    others (not only owner and group) can write the directory;
 *   CV_EPARSE   state.json is corrupt: the message names the file and the byte offset (syntax) or
 *               the element ("tunnels[2].name: ...");
 *   CV_ETLS     the random generator failed;
 *   CV_ENOMEM   out of memory.
 */
/* serve --check: checks that |data_dir| can be created (mode 0700, parents too) and written, and
 * refuses one others can write; what it created to find out is removed again. 0, or a negative
 * code with |err|. */
int store_check_dir(const char *data_dir, char *err, size_t errlen);
int store_open(const char *data_dir, struct store **out, char *err, size_t errlen);

/* Releases the lock and frees |st| (NULL is fine). */
void store_free(struct store *st);

/* The directory the store lives in (borrowed). */
const char *store_dir(const struct store *st);

/* ---- tunnels ------------------------------------------------------------------------------ */

size_t store_tunnel_count(const struct store *st);
/* The tunnel with id |id|, or NULL. */
const struct store_tunnel *store_find_id(const struct store *st, const uint8_t id[TOKEN_ID_LEN]);
/* The tunnel named |name| (exact, case-sensitive), or NULL. */
const struct store_tunnel *store_find_name(const struct store *st, const char *name);
/* The tunnel whose id is the UUID text |ref|, else the one named |ref|, or NULL. */
const struct store_tunnel *store_find(const struct store *st, const char *ref);

/*
 * Registration check: returns the tunnel with id |id| when SHA-256(|secret|) equals its stored
 * digest, else NULL. Does the same work whether the id is unknown or the secret wrong: every
 * tunnel's id is compared (no early exit), the secret is hashed once, and the digest is compared in
 * constant time against the tunnel's or, for an unknown id, a random dummy digest. Borrows both.
 */
const struct store_tunnel *store_authenticate(const struct store *st,
                                              const uint8_t id[TOKEN_ID_LEN],
                                              const uint8_t secret[TOKEN_SECRET_LEN]);

/*
 * Creates a tunnel named |name| with a random version-4 id and 32 random secret bytes (RAND_bytes),
 * stores SHA-256 of the secret, and writes the file. On success returns 0, sets *|out| (borrowed
 * from the store; may be NULL) and writes the secret to |secret| once: the caller builds the token
 * and wipes it. Returns CV_EINVAL (bad name; *|why| set, |why| may be NULL), CV_EEXIST (the name is
 * taken), CV_ETLS (the random generator failed), CV_ENOMEM, or -errno from the write; on failure
 * the store is unchanged and |secret| is zeroed.
 */
int store_tunnel_create(struct store *st, const char *name, uint8_t secret[TOKEN_SECRET_LEN],
                        const struct store_tunnel **out, const char **why);

/*
 * Gives the tunnel |id| a new random secret (generation + 1) and writes the file; the old secret
 * stops authenticating at once (the caller disconnects its live connections). Returns 0 with the
 * new secret in |secret|, CV_ENOTFOUND, CV_ETLS, CV_ENOMEM, or -errno from the write (store
 * unchanged, |secret| zeroed).
 */
int store_tunnel_rotate(struct store *st, const uint8_t id[TOKEN_ID_LEN],
                        uint8_t secret[TOKEN_SECRET_LEN]);

/*
 * Deletes the tunnel |id| and every route to it in one write. Pointers to that tunnel become
 * invalid. Returns 0, CV_ENOTFOUND, CV_ENOMEM, or -errno from the write (store unchanged).
 */
int store_tunnel_delete(struct store *st, const uint8_t id[TOKEN_ID_LEN]);

/*
 * Calls |cb| for each tunnel in creation order. Stops at the first non-zero return of |cb| and
 * returns it; returns 0 after the last. |cb| must not change the store.
 */
int store_foreach_tunnel(const struct store *st,
                         int (*cb)(const struct store_tunnel *t, void *arg), void *arg);

/* ---- routes ------------------------------------------------------------------------------- */

size_t store_route_count(const struct store *st);

/*
 * Routes the hostname pattern |pattern| (exact or "*.", normalised first: "App.Example.COM." is
 * "app.example.com") to the tunnel |id|, and writes the file. Returns 0 when added, 1 when exactly
 * this route already existed (nothing written), CV_EINVAL for a bad pattern (*|why| set; may be
 * NULL), CV_ENOTFOUND (no such tunnel), CV_EEXIST (the pattern is routed to another tunnel:
 * delete that route first; no first-come-first-served takeover), CV_ENOMEM, or -errno from the
 * write (store unchanged).
 */
/* RELIABILITY.md 2.2: a route of another tunnel that overlaps normalised |pattern| (a wildcard of one
 * covers names of the other, e.g. *.a.test and pay.a.test). Returns its pattern and sets |*other| to
 * its tunnel, or returns NULL. */
const char *store_route_overlap(const struct store *st, const char *pattern, const uint8_t id[TOKEN_ID_LEN],
                                const struct store_tunnel **other);
int store_route_add(struct store *st, const char *pattern, const uint8_t id[TOKEN_ID_LEN],
                    const char **why);

/*
 * Removes the route of exactly |pattern| (normalised first) and writes the file. Returns 0,
 * CV_EINVAL (bad pattern), CV_ENOTFOUND, CV_ENOMEM, or -errno from the write (store unchanged).
 */
int store_route_delete(struct store *st, const char *pattern);

/*
 * The tunnel serving the normalised name |name| (from hostname_normalize/hostname_split): the exact
 * route if any, else the longest matching wildcard, else NULL. When |pattern| is not NULL it
 * receives the matching route's pattern (borrowed, valid until the route is removed).
 */
const struct store_tunnel *store_route_lookup(const struct store *st, const char *name,
                                              const char **pattern);

/* The tunnel routed under exactly |pattern| (normalised first; no wildcard matching), or NULL. */
const struct store_tunnel *store_route_get(const struct store *st, const char *pattern);

/*
 * Calls |cb| for each route in the order they were added, with its normalised pattern and tunnel
 * (both borrowed for the call). |t| NULL lists all routes, else only the routes to |t|. Stops at
 * the first non-zero return of |cb| and returns it; returns 0 after the last. |cb| must not change
 * the store.
 */
int store_foreach_route(const struct store *st, const struct store_tunnel *t,
                        int (*cb)(const char *pattern, const struct store_tunnel *t, void *arg),
                        void *arg);

#endif
