/*
 * admin.h - the edge's admin API: HTTP/1.1 with JSON bodies on admin.listen (loopback TCP, or a
 * unix socket created with mode 0600), every request authenticated with
 * `Authorization: Bearer <admin token>` (compared in constant time; anything else is a bare 401).
 *
 * The admin token lives in admin.token_file. When the file is missing, admin_start() creates it
 * with 32 random bytes in base64url (mode 0600, O_EXCL); a file that group or others may read, or
 * that is not a regular file, is refused (RELIABILITY.md §2.3 row 3.6). The token is never logged.
 *
 * API (JSON in and out; errors are {"error": "..."} with 400, 401, 404, 405, 409, 413 or 500):
 *   GET    /v1/status                      {"version","region","started_at","tunnels","routes",
 *                                           "connections","streams","draining"}
 *   GET    /v1/tunnels                     [{"id","name","created_at","connectors"}]
 *   POST   /v1/tunnels  {"name"}           201 {"id","name","token"}         (409: name taken)
 *   GET    /v1/tunnels/{name|id}           {"id","name","created_at","routes":[hostname...],
 *                                           "connectors":[...tunnel_registry_describe]}
 *   DELETE /v1/tunnels/{name|id}           {"id","name","routes_removed"}  (its routes go too;
 *                                           its live connections are disconnected)
 *   POST   /v1/tunnels/{name|id}/rotate-token  {"id","name","token"}     (old connections dropped)
 *   GET    /v1/routes                      [{"hostname","tunnel","tunnel_id"}]
 *   POST   /v1/routes   {"hostname","tunnel"}  201 {"hostname","tunnel","created":true}, or 200
 *                                           with "created":false when it already existed;
 *                                           409 when the hostname is routed to another tunnel
 *   DELETE /v1/routes/{hostname}           {"hostname","tunnel"}
 * Times are RFC 3339 (UTC). Tokens are built with common/token from the tunnel id, the new secret,
 * the current config's tunnel.advertise and tunnel.ca digest; the secret and the token text are
 * wiped from our buffers once written. Route changes apply at once: public.c looks routes up in the
 * store on every request.
 *
 * Connections: one request at a time (pipelined requests wait), keep-alive, at most 64 KiB per
 * request (head and body), closed after 30 s without a complete request, at most
 * ADMIN_MAX_CONNECTIONS at once. Runs on the loop thread; store writes are synchronous.
 */
#ifndef CV_ADMIN_H
#define CV_ADMIN_H

#include <stddef.h>

#define ADMIN_MAX_REQUEST (64 * 1024) /* head + body */
#define ADMIN_IDLE_MS 30000
#define ADMIN_MAX_CONNECTIONS 64
#define ADMIN_TOKEN_BYTES 32 /* random bytes in a generated admin token */

struct edge;
struct admin;

/*
 * Loads or creates the admin token file (e->cfg->admin_token_file), then listens on
 * e->cfg->admin_listen and sets e->admin. Needs e->loop, e->sl, e->cfg, e->store and e->reg.
 * Returns 0, or a negative code with a message in |err| naming the file or the address:
 *   -errno     the token file cannot be created or read;
 *   CV_ECONFIG the address cannot be bound (the message names it and says why);
 *   CV_EAUTH   the token file is readable by group or others ("chmod 600 FILE");
 *   CV_EPARSE  the token file is empty or not a regular file;
 *   CV_ENOMEM  out of memory.
 * Listen or token-file changes on SIGHUP need a restart.
 */
int admin_start(struct edge *e, char *err, size_t errlen);

/*
 * Stops listening, closes every admin connection and wipes the token. Frees |a| once the last
 * connection has closed (on the loop). NULL is fine.
 */
void admin_stop(struct admin *a);

/* The bound TCP port (tests), or 0 for a unix socket. */
int admin_port(const struct admin *a);

/*
 * Writes a new random token (ADMIN_TOKEN_BYTES bytes, base64url without padding, 43 characters) and
 * a NUL into |out|. Returns 0, or CV_ETLS when the random generator fails. For admin_start and
 * tests.
 */
int admin_token_generate(char out[64]);

#endif
