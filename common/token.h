/*
 * token.h - tunnel tokens, cloudflared-style credentials files, tunnel ids and secrets.
 *
 * A token (PRODUCT.md §2 "Token") is base64url without padding of the JSON
 *   {"v":1,"id":"<tunnel uuid>","secret":"<base64 of 32 bytes>","edges":["host:port",...],
 *    "ca_sha256":"<64 hex, optional>"}
 * A credentials file is cloudflared's JSON {"AccountTag","TunnelSecret","TunnelID","Endpoint"} plus
 * our optional "Edge" list; only TunnelID, TunnelSecret and Edge are read.
 *
 * Secrets: a decoded token lives in struct token, whose cleanup wipes the secret with
 * OPENSSL_cleanse; every intermediate buffer holding token text, JSON or secret bytes is wiped before
 * it is freed. Error reasons are static strings that never contain token or secret text. The edge
 * keeps only token_secret_hash() of a secret and compares digests with token_digest_equal(), which
 * takes the same time whatever the contents (RELIABILITY.md §2.3 3.2, PROTOCOL.md §4.6).
 *
 * Token files must not be readable by group or others (RELIABILITY.md §2.3 3.6, OpenSSH StrictModes).
 * Single-threaded apart from the pure helpers (uuid, hash, compare), which are reentrant.
 */
#ifndef CV_TOKEN_H
#define CV_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TOKEN_ID_LEN 16         /* tunnel id: a UUID as 16 octets */
#define TOKEN_SECRET_LEN 32     /* tunnel secret */
#define TOKEN_DIGEST_LEN 32     /* SHA-256 */
#define TOKEN_UUID_TEXT_LEN 36  /* "6ff42ae2-765d-4adf-8112-31c55c1551ef" */
#define TOKEN_MAX_EDGES 32      /* edge addresses in one token or credentials file */
#define TOKEN_MAX_TEXT 16384    /* longest token text (and credentials JSON) accepted */

struct token {
    uint8_t id[TOKEN_ID_LEN];
    uint8_t secret[TOKEN_SECRET_LEN];
    struct config_addr *edges; /* n_edges entries (owned), CONFIG_ADDR_TCP only */
    size_t n_edges;
    bool has_ca_sha256;
    uint8_t ca_sha256[TOKEN_DIGEST_LEN]; /* SHA-256 of the edge CA certificate's DER */
};

/* Makes |t| empty: zero id and secret, no edges, no CA digest. */
void token_init(struct token *t);
/* Wipes the secret (OPENSSL_cleanse), frees the edges; |t| is empty afterwards. */
void token_cleanup(struct token *t);

/* Appends a copy of |a| (must be CONFIG_ADDR_TCP) to |t|'s edges. Returns 0, CV_EINVAL (a unix
 * address), CV_ELIMIT (TOKEN_MAX_EDGES reached) or CV_ENOMEM; |t| unchanged on failure. */
int token_add_edge(struct token *t, const struct config_addr *a);

/*
 * Decodes token text (|n| bytes at |text|, borrowed; surrounding ASCII whitespace ignored) into |t|,
 * which must be empty (token_init or token_cleanup). Strict: base64url alphabet only (padding
 * optional, unused bits zero), a JSON object with "v" the integer 1, "id" a UUID, "secret" exactly
 * 32 bytes in standard base64 or base64url (padding optional), "edges" a non-empty list of at most
 * TOKEN_MAX_EDGES "host:port" strings, "ca_sha256" absent, null or 64 hex digits; other keys are
 * ignored. Returns 0, CV_EPARSE with *|why| set, or CV_ENOMEM; |t| stays empty on failure.
 */
int token_decode(const char *text, size_t n, struct token *t, const char **why);

/*
 * Encodes |t| as token text (base64url, no padding) into a new NUL-terminated string *|out| of
 * *|len| characters; the caller frees it with mem_free_secret(*out, *len + 1). Returns 0, CV_EINVAL
 * (no edges), or CV_ENOMEM.
 */
int token_encode(const struct token *t, char **out, size_t *len);

/*
 * Reads a credentials file's JSON (|n| bytes at |text|, borrowed) into the empty |t|: "TunnelID"
 * (UUID) and "TunnelSecret" (base64 of exactly 32 bytes) are required, "Edge" (list of "host:port")
 * is optional and may be empty; "AccountTag", "Endpoint" and other keys are ignored. Returns 0,
 * CV_EPARSE with *|why|, or CV_ENOMEM; |t| stays empty on failure.
 */
int token_parse_credentials(const char *text, size_t n, struct token *t, const char **why);

#define TOKEN_ERROR_MAX 512

struct token_error {
    char msg[TOKEN_ERROR_MAX]; /* names the file and the problem, never the contents */
};

/*
 * Reads a secret file: refuses anything but a regular file, a file whose mode lets group or others
 * in (mode & 077; the message says `chmod 600 FILE`), and files over TOKEN_MAX_TEXT bytes; strips
 * surrounding whitespace; refuses an empty result. On success returns 0 and a new NUL-terminated
 * buffer *|out| of *|len| bytes, which the caller frees with mem_free_secret(*out, *len + 1). On
 * failure returns -errno (open/read), CV_EAUTH (permissions), CV_EPARSE (not a regular file, empty,
 * too big) or CV_ENOMEM, with |err| filled.
 */
int token_read_secret_file(const char *path, char **out, size_t *len, struct token_error *err);

/*
 * Loads a token file or a credentials file (content starting with '{') into the empty |t| through
 * token_read_secret_file() and then token_decode() or token_parse_credentials(). Returns 0 or that
 * function's error (CV_EPARSE: "FILE: invalid token: reason"), with |err| filled.
 */
int token_load_file(const char *path, struct token *t, struct token_error *err);

/* ---- ids and secrets ---------------------------------------------------------------------- */

/* Parses a UUID in canonical 8-4-4-4-12 form (hex digits in either case) from |n| bytes at |s|.
 * Returns 0 and fills |id|, or CV_EINVAL. Any version is accepted. */
int token_uuid_parse(const char *s, size_t n, uint8_t id[TOKEN_ID_LEN]);
/* Writes |id| as canonical lower-case text plus NUL into |out| (TOKEN_UUID_TEXT_LEN + 1 bytes). */
void token_uuid_format(const uint8_t id[TOKEN_ID_LEN], char *out);
/* Fills |id| with a random version-4 UUID (RFC 4122 §4.4) from RAND_bytes. Returns 0, or CV_ETLS
 * when OpenSSL's generator fails. */
int token_uuid_random(uint8_t id[TOKEN_ID_LEN]);
/* Fills |secret| with 32 random bytes from RAND_bytes. Returns 0 or CV_ETLS. */
int token_secret_random(uint8_t secret[TOKEN_SECRET_LEN]);
/* A uniform-enough number in [0, |n|) from RAND_bytes (the clock if that fails); 0 when |n| is 0.
 * For jitter and random drops, not for secrets. */
uint64_t token_random_below(uint64_t n);
/* |digest| = SHA-256(|secret|). Returns 0, or CV_ENOMEM when OpenSSL fails. */
int token_secret_hash(const uint8_t secret[TOKEN_SECRET_LEN], uint8_t digest[TOKEN_DIGEST_LEN]);
/* True when the digests are equal; time independent of the contents (CRYPTO_memcmp). */
bool token_digest_equal(const uint8_t a[TOKEN_DIGEST_LEN], const uint8_t b[TOKEN_DIGEST_LEN]);

#endif
