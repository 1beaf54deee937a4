/*
 * token.c - tunnel tokens and credentials files: strict base64 and JSON decoding, encoding, secret
 * file loading, UUIDs, secret digests. See token.h.
 *
 * Below: json.c (parse and write), config.c (edge addresses), OpenSSL (RAND_bytes, SHA-256,
 * CRYPTO_memcmp, OPENSSL_cleanse). Above: the connector (run --token, credentials-file) and the edge
 * (tunnel create, registration checks). Every buffer that held secret material is wiped before it is
 * freed; reasons never quote the input.
 */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "buf.h"
#include "err.h"
#include "json.h"
#include "mem.h"

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return CV_EPARSE;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && is_space((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*p)[*n - 1]))
        (*n)--;
}

/* ---- base64 (RFC 4648 §4 and §5) ---------------------------------------------------------- */

#define B64_STD 0x1 /* '+' '/' */
#define B64_URL 0x2 /* '-' '_' */

static const char b64_std_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c, unsigned alphabets)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ((alphabets & B64_STD) && c == '+')
        return 62;
    if ((alphabets & B64_STD) && c == '/')
        return 63;
    if ((alphabets & B64_URL) && c == '-')
        return 62;
    if ((alphabets & B64_URL) && c == '_')
        return 63;
    return -1;
}

/*
 * Strict decoding: only the given alphabets, padding optional but exact when present, unused bits
 * of the last group zero (so every byte string has one encoding per alphabet). Writes at most |cap|
 * bytes. Returns 0 and *|outlen|, or -1.
 */
static int b64_decode(const char *s, size_t n, unsigned alphabets, uint8_t *out, size_t cap,
                      size_t *outlen)
{
    size_t pad = 0;
    size_t rem;
    size_t len;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    while (pad < 2 && n > 0 && s[n - 1] == '=') {
        n--;
        pad++;
    }
    rem = n % 4;
    if (rem == 1)
        return -1;
    if (pad != 0 && pad != 4 - rem)
        return -1;
    len = n / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    if (len > cap)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i], alphabets);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero unused bits */
        return -1;
    *outlen = o;
    return 0;
}

/* Writes the encoding of |n| bytes plus NUL into |out| (room for 4 * ceil(n / 3) + 1). Returns the
 * length. */
static size_t b64_encode(const uint8_t *in, size_t n, bool url, bool pad, char *out)
{
    const char *chars = url ? b64_url_chars : b64_std_chars;
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];

        out[o++] = chars[(v >> 18) & 63];
        out[o++] = chars[(v >> 12) & 63];
        out[o++] = chars[(v >> 6) & 63];
        out[o++] = chars[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = chars[(v >> 18) & 63];
        out[o++] = chars[(v >> 12) & 63];
        if (pad) {
            out[o++] = '=';
            out[o++] = '=';
        }
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);

        out[o++] = chars[(v >> 18) & 63];
        out[o++] = chars[(v >> 12) & 63];
        out[o++] = chars[(v >> 6) & 63];
        if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* ---- ids and secrets ---------------------------------------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes exactly 2 * |n| hex digits. Returns 0 or -1. */
static int hex_decode(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval((unsigned char)s[2 * i]);
        int lo = hexval((unsigned char)s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int token_uuid_parse(const char *s, size_t n, uint8_t id[TOKEN_ID_LEN])
{
    static const size_t dashes[] = {8, 13, 18, 23};
    uint8_t tmp[TOKEN_ID_LEN];
    size_t o = 0;
    size_t d = 0;

    if (n != TOKEN_UUID_TEXT_LEN)
        return CV_EINVAL;
    for (size_t i = 0; i < n;) {
        int hi;
        int lo;

        if (d < 4 && i == dashes[d]) {
            if (s[i] != '-')
                return CV_EINVAL;
            d++;
            i++;
            continue;
        }
        hi = hexval((unsigned char)s[i]);
        lo = hexval((unsigned char)s[i + 1]);
        if (hi < 0 || lo < 0)
            return CV_EINVAL;
        tmp[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    memcpy(id, tmp, sizeof(tmp));
    return 0;
}

void token_uuid_format(const uint8_t id[TOKEN_ID_LEN], char *out)
{
    char hex[2 * TOKEN_ID_LEN + 1];

    hex_encode(id, TOKEN_ID_LEN, hex);
    snprintf(out, TOKEN_UUID_TEXT_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

int token_uuid_random(uint8_t id[TOKEN_ID_LEN])
{
    if (RAND_bytes(id, TOKEN_ID_LEN) != 1)
        return CV_ETLS;
    id[6] = (uint8_t)((id[6] & 0x0f) | 0x40); /* version 4 */
    id[8] = (uint8_t)((id[8] & 0x3f) | 0x80); /* variant 10 (RFC 4122) */
    return 0;
}

int token_secret_random(uint8_t secret[TOKEN_SECRET_LEN])
{
    if (RAND_bytes(secret, TOKEN_SECRET_LEN) != 1)
        return CV_ETLS;
    return 0;
}

uint64_t token_random_below(uint64_t n)
{
    uint64_t r = 0;

    if (n == 0)
        return 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        r = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
    }
    return r % n;
}

int token_secret_hash(const uint8_t secret[TOKEN_SECRET_LEN], uint8_t digest[TOKEN_DIGEST_LEN])
{
    unsigned int len = 0;

    if (EVP_Digest(secret, TOKEN_SECRET_LEN, digest, &len, EVP_sha256(), NULL) != 1 ||
        len != TOKEN_DIGEST_LEN)
        return CV_ENOMEM;
    return 0;
}

bool token_digest_equal(const uint8_t a[TOKEN_DIGEST_LEN], const uint8_t b[TOKEN_DIGEST_LEN])
{
    return CRYPTO_memcmp(a, b, TOKEN_DIGEST_LEN) == 0;
}

/* ---- the token struct --------------------------------------------------------------------- */

void token_init(struct token *t)
{
    memset(t, 0, sizeof(*t));
}

void token_cleanup(struct token *t)
{
    OPENSSL_cleanse(t->secret, sizeof(t->secret));
    mem_free(t->edges);
    token_init(t);
}

int token_add_edge(struct token *t, const struct config_addr *a)
{
    struct config_addr *edges;

    if (a->kind != CONFIG_ADDR_TCP)
        return CV_EINVAL;
    if (t->n_edges >= TOKEN_MAX_EDGES)
        return CV_ELIMIT;
    edges = mem_realloc(t->edges, (t->n_edges + 1) * sizeof(*edges));
    if (edges == NULL)
        return CV_ENOMEM;
    edges[t->n_edges] = *a;
    t->edges = edges;
    t->n_edges++;
    return 0;
}

/* Moves |tmp| into the empty |t|. */
static void token_move(struct token *t, struct token *tmp)
{
    *t = *tmp;
    OPENSSL_cleanse(tmp->secret, sizeof(tmp->secret));
    token_init(tmp);
}

/* ---- decoding ----------------------------------------------------------------------------- */

static int read_uuid(const struct json_value *v, uint8_t id[TOKEN_ID_LEN])
{
    size_t len;
    const char *s = json_as_string(v, &len);

    if (s == NULL)
        return -1;
    return token_uuid_parse(s, len, id) < 0 ? -1 : 0;
}

static int read_secret(const struct json_value *v, uint8_t secret[TOKEN_SECRET_LEN])
{
    uint8_t tmp[TOKEN_SECRET_LEN];
    size_t len;
    size_t out = 0;
    const char *s = json_as_string(v, &len);
    int rv;

    if (s == NULL)
        return -1;
    rv = b64_decode(s, len, B64_STD | B64_URL, tmp, sizeof(tmp), &out);
    if (rv == 0 && out == TOKEN_SECRET_LEN)
        memcpy(secret, tmp, TOKEN_SECRET_LEN);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return rv == 0 && out == TOKEN_SECRET_LEN ? 0 : -1;
}

/* Reads a JSON list of "host:port" strings into |t|. */
static int read_edges(const struct json_value *v, bool allow_empty, struct token *t,
                      const char **why)
{
    size_t count = json_array_count(v);

    if (json_typeof(v) != JSON_ARRAY)
        return fail(why, "the edge list must be a JSON list of \"host:port\" strings");
    if (count == 0 && !allow_empty)
        return fail(why, "the edge list is empty");
    if (count > TOKEN_MAX_EDGES)
        return fail(why, "too many edge addresses (at most 32)");
    for (size_t i = 0; i < count; i++) {
        struct config_addr a;
        size_t len;
        const char *s = json_as_string(json_array_at(v, i), &len);
        int rv;

        if (s == NULL || strlen(s) != len)
            return fail(why, "an edge address is not a string");
        if (config_parse_addr(s, 0, &a, NULL) < 0)
            return fail(why, "an edge address is not a valid host:port");
        rv = token_add_edge(t, &a);
        if (rv < 0)
            return rv;
    }
    return 0;
}

static int decode_payload(const struct json_value *root, struct token *tmp, const char **why)
{
    const struct json_value *v;
    const struct json_value *ca;
    int64_t version;
    size_t len;
    const char *s;

    if (json_typeof(root) != JSON_OBJECT)
        return fail(why, "the token does not hold a JSON object");
    v = json_object_get(root, "v");
    if (v == NULL)
        return fail(why, "the token has no version (\"v\"); is it a Culvert token?");
    if (json_as_int64(v, &version) < 0 || version != 1)
        return fail(why, "unsupported token version (this program reads version 1)");
    if (read_uuid(json_object_get(root, "id"), tmp->id) < 0)
        return fail(why, "the token's tunnel id (\"id\") is missing or not a UUID");
    if (read_secret(json_object_get(root, "secret"), tmp->secret) < 0)
        return fail(why, "the token's secret is missing or not 32 bytes of base64");
    v = json_object_get(root, "edges");
    if (v == NULL)
        return fail(why, "the token has no edge addresses (\"edges\")");
    {
        int rv = read_edges(v, false, tmp, why);

        if (rv < 0)
            return rv;
    }
    ca = json_object_get(root, "ca_sha256");
    if (ca != NULL && !json_is_null(ca)) {
        s = json_as_string(ca, &len);
        if (s == NULL || len != 2 * TOKEN_DIGEST_LEN ||
            hex_decode(s, TOKEN_DIGEST_LEN, tmp->ca_sha256) < 0)
            return fail(why, "the token's ca_sha256 is not 64 hex digits");
        tmp->has_ca_sha256 = true;
    }
    return 0;
}

int token_decode(const char *text, size_t n, struct token *t, const char **why)
{
    struct json_limits lim = {TOKEN_MAX_TEXT, 4};
    struct json_value *root = NULL;
    struct token tmp;
    uint8_t *json;
    size_t cap;
    size_t json_len = 0;
    int rv;

    trim(&text, &n);
    if (n == 0)
        return fail(why, "empty token");
    if (n > TOKEN_MAX_TEXT)
        return fail(why, "token too long");
    cap = n / 4 * 3 + 3;
    json = mem_alloc(cap);
    if (json == NULL)
        return CV_ENOMEM;
    if (b64_decode(text, n, B64_URL, json, cap, &json_len) < 0) {
        mem_free_secret(json, cap);
        return fail(why, "the token is not valid base64url");
    }
    rv = json_parse((const char *)json, json_len, &lim, &root, NULL);
    mem_free_secret(json, cap);
    if (rv == CV_ENOMEM)
        return rv;
    if (rv < 0)
        return fail(why, "the token does not hold valid JSON");
    token_init(&tmp);
    rv = decode_payload(root, &tmp, why);
    json_free(root);
    if (rv < 0) {
        token_cleanup(&tmp);
        return rv;
    }
    token_move(t, &tmp);
    return 0;
}

int token_parse_credentials(const char *text, size_t n, struct token *t, const char **why)
{
    struct json_limits lim = {TOKEN_MAX_TEXT, 4};
    struct json_value *root = NULL;
    const struct json_value *edge;
    struct token tmp;
    int rv;

    rv = json_parse(text, n, &lim, &root, NULL);
    if (rv == CV_ENOMEM)
        return rv;
    if (rv < 0)
        return fail(why, "the credentials file is not valid JSON");
    token_init(&tmp);
    if (json_typeof(root) != JSON_OBJECT) {
        rv = fail(why, "the credentials file does not hold a JSON object");
        goto out;
    }
    if (read_uuid(json_object_get(root, "TunnelID"), tmp.id) < 0) {
        rv = fail(why, "TunnelID is missing or not a UUID");
        goto out;
    }
    if (read_secret(json_object_get(root, "TunnelSecret"), tmp.secret) < 0) {
        rv = fail(why, "TunnelSecret is missing or not 32 bytes of base64");
        goto out;
    }
    edge = json_object_get(root, "Edge");
    if (edge != NULL && !json_is_null(edge))
        rv = read_edges(edge, true, &tmp, why);
out:
    json_free(root);
    if (rv < 0) {
        token_cleanup(&tmp);
        return rv;
    }
    token_move(t, &tmp);
    return 0;
}

/* ---- encoding ----------------------------------------------------------------------------- */

/* JSON payload cap: 32 edges of at most 261 characters ("[" v6 "]:" port) fit with room to spare. */
#define TOKEN_JSON_CAP (TOKEN_MAX_TEXT / 4 * 3)

int token_encode(const struct token *t, char **out, size_t *len)
{
    struct json_writer w;
    struct buf b;
    char id[TOKEN_UUID_TEXT_LEN + 1];
    char secret[4 * ((TOKEN_SECRET_LEN + 2) / 3) + 1];
    char hex[2 * TOKEN_DIGEST_LEN + 1];
    char addr[HOSTNAME_MAX + 16];
    char *text;
    size_t text_cap;
    int err = 0;
    int rv;

    *out = NULL;
    *len = 0;
    if (t->n_edges == 0)
        return CV_EINVAL;
    /* One allocation up front: the buffer never moves, so no copy of the secret is left behind. */
    buf_init(&b, TOKEN_JSON_CAP);
    if (buf_reserve(&b, TOKEN_JSON_CAP, &err) == NULL)
        return err;
    token_uuid_format(t->id, id);
    b64_encode(t->secret, TOKEN_SECRET_LEN, false, true, secret);
    json_w_init(&w, &b, 0);
    json_w_object_begin(&w);
    json_w_key(&w, "v");
    json_w_int(&w, 1);
    json_w_key(&w, "id");
    json_w_string(&w, id);
    json_w_key(&w, "secret");
    json_w_string(&w, secret);
    json_w_key(&w, "edges");
    json_w_array_begin(&w);
    for (size_t i = 0; i < t->n_edges; i++) {
        config_format_addr(&t->edges[i], addr, sizeof(addr));
        json_w_string(&w, addr);
    }
    json_w_array_end(&w);
    if (t->has_ca_sha256) {
        hex_encode(t->ca_sha256, TOKEN_DIGEST_LEN, hex);
        json_w_key(&w, "ca_sha256");
        json_w_string(&w, hex);
    }
    json_w_object_end(&w);
    OPENSSL_cleanse(secret, sizeof(secret));
    rv = json_w_finish(&w);
    if (rv < 0)
        goto done;
    text_cap = 4 * ((buf_len(&b) + 2) / 3) + 1;
    text = mem_alloc(text_cap);
    if (text == NULL) {
        rv = CV_ENOMEM;
        goto done;
    }
    *len = b64_encode(b.pos, buf_len(&b), true, false, text);
    *out = text;
done:
    OPENSSL_cleanse(b.base, (size_t)(b.end - b.base));
    buf_cleanup(&b);
    return rv;
}

/* ---- files -------------------------------------------------------------------------------- */

static void set_msg(struct token_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_msg(struct token_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

int token_read_secret_file(const char *path, char **out, size_t *len, struct token_error *err)
{
    const size_t cap = TOKEN_MAX_TEXT + 1;
    struct stat st;
    char *data;
    char *copy;
    const char *p;
    size_t n = 0;
    int fd;
    int rv;

    *out = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rv = -errno;
        set_msg(err, "%s: cannot open: %s", path, cv_strerror(rv));
        return rv;
    }
    /* Checked on the open file, so the file read is the file checked. */
    if (fstat(fd, &st) < 0) {
        rv = -errno;
        close(fd);
        set_msg(err, "%s: cannot stat: %s", path, cv_strerror(rv));
        return rv;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        set_msg(err, "%s: not a regular file", path);
        return CV_EPARSE;
    }
    if (st.st_mode & 077) {
        close(fd);
        set_msg(err, "%s: refusing a secret file that group or others can access (mode %04o); "
                     "run: chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
        return CV_EAUTH;
    }
    data = mem_alloc(cap);
    if (data == NULL) {
        close(fd);
        set_msg(err, "%s: out of memory", path);
        return CV_ENOMEM;
    }
    while (n < cap) {
        ssize_t k = read(fd, data + n, cap - n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rv = -errno;
            close(fd);
            mem_free_secret(data, cap);
            set_msg(err, "%s: cannot read: %s", path, cv_strerror(rv));
            return rv;
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (n > TOKEN_MAX_TEXT) {
        mem_free_secret(data, cap);
        set_msg(err, "%s: larger than %d bytes", path, TOKEN_MAX_TEXT);
        return CV_EPARSE;
    }
    p = data;
    trim(&p, &n);
    if (n == 0) {
        mem_free_secret(data, cap);
        set_msg(err, "%s: the file is empty", path);
        return CV_EPARSE;
    }
    copy = mem_strndup(p, n);
    mem_free_secret(data, cap);
    if (copy == NULL) {
        set_msg(err, "%s: out of memory", path);
        return CV_ENOMEM;
    }
    *out = copy;
    *len = n;
    return 0;
}

int token_load_file(const char *path, struct token *t, struct token_error *err)
{
    const char *why = "invalid";
    char *text;
    size_t len;
    bool credentials;
    int rv;

    rv = token_read_secret_file(path, &text, &len, err);
    if (rv < 0)
        return rv;
    credentials = text[0] == '{';
    if (credentials)
        rv = token_parse_credentials(text, len, t, &why);
    else
        rv = token_decode(text, len, t, &why);
    mem_free_secret(text, len + 1);
    if (rv == CV_ENOMEM)
        set_msg(err, "%s: out of memory", path);
    else if (rv < 0)
        set_msg(err, "%s: invalid %s: %s", path, credentials ? "credentials file" : "token", why);
    return rv;
}
