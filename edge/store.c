/*
 * store.c - tunnels and routes in DATA_DIR/state.json; see store.h.
 *
 * Above: admin.c (changes), tunnel_listener.c (store_authenticate), public.c (store_route_lookup).
 * Below: common/json (file format), common/hostname (route table), common/token (ids, secrets,
 * digests), POSIX files. One loop thread; writes are synchronous.
 *
 * Every change follows the same ladder: prepare (allocate, and link new objects in a reversible
 * way, or mark objects as hidden), serialize and write the file, then commit (free what was
 * removed) or roll back (unlink what was added, clear the marks). Commit and roll-back never
 * allocate, so a failed write leaves the in-memory state exactly as it was.
 *
 * state.json:
 *   {"version": 1,
 *    "tunnels": [{"id": UUID, "name": NAME, "secret_sha256": 64 hex, "created_ms": INT,
 *                 "generation": INT}, ...],
 *    "routes": [{"hostname": PATTERN, "tunnel": UUID}, ...]}
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "err.h"
#include "hostname.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "mem.h"

#define STORE_VERSION 1

struct tunnel_rec {
    struct store_tunnel t; /* first: a store_tunnel pointer is a tunnel_rec pointer */
    struct list_node link; /* in store.tunnels, creation order */
    bool hidden;           /* being deleted: the serializer skips it */
};

struct route_rec {
    char pattern[HOSTNAME_MAX + 1];
    struct tunnel_rec *tunnel;
    bool hidden; /* being deleted: the serializer and iteration skip it */
};

struct store {
    char *dir;
    char *file;     /* dir/state.json */
    char *tmp;      /* dir/state.json.tmp */
    int lock_fd;
    struct list_node tunnels;
    size_t n_tunnels;
    struct hostname_table *routes; /* pattern -> struct route_rec * */
    uint8_t dummy_digest[TOKEN_DIGEST_LEN]; /* compared against for unknown ids */
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* |t| is the first member of its tunnel_rec. */
static const struct tunnel_rec *rec_of(const struct store_tunnel *t)
{
    return (const struct tunnel_rec *)(const void *)t;
}

/* ---- names -------------------------------------------------------------------------------- */

bool store_name_valid(const char *name, const char **why)
{
    size_t n = strlen(name);
    size_t i;
    uint8_t id[TOKEN_ID_LEN];
    const char *reason = NULL;

    if (n == 0 || n > STORE_NAME_MAX)
        reason = "a tunnel name has 1 to 64 characters";
    else if (name[0] == '-')
        reason = "a tunnel name must not start with '-'";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        reason = "a tunnel name cannot be \".\" or \"..\"";
    else if (token_uuid_parse(name, n, id) == 0)
        reason = "a tunnel name must not look like a tunnel id (UUID)";
    for (i = 0; reason == NULL && i < n; i++) {
        char c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            reason = "a tunnel name may only hold letters, digits, '.', '_' and '-'";
    }
    if (reason != NULL) {
        if (why != NULL)
            *why = reason;
        return false;
    }
    return true;
}

/* ---- lookups ------------------------------------------------------------------------------ */

static struct tunnel_rec *find_id(const struct store *st, const uint8_t id[TOKEN_ID_LEN])
{
    struct list_node *n;

    for (n = st->tunnels.next; n != &st->tunnels; n = n->next) {
        struct tunnel_rec *r = container_of(n, struct tunnel_rec, link);

        if (memcmp(r->t.id, id, TOKEN_ID_LEN) == 0)
            return r;
    }
    return NULL;
}

static struct tunnel_rec *find_name(const struct store *st, const char *name)
{
    struct list_node *n;

    for (n = st->tunnels.next; n != &st->tunnels; n = n->next) {
        struct tunnel_rec *r = container_of(n, struct tunnel_rec, link);

        if (strcmp(r->t.name, name) == 0)
            return r;
    }
    return NULL;
}

size_t store_tunnel_count(const struct store *st)
{
    return st->n_tunnels;
}

const char *store_dir(const struct store *st)
{
    return st->dir;
}

const struct store_tunnel *store_find_id(const struct store *st, const uint8_t id[TOKEN_ID_LEN])
{
    struct tunnel_rec *r = find_id(st, id);

    return r != NULL ? &r->t : NULL;
}

const struct store_tunnel *store_find_name(const struct store *st, const char *name)
{
    struct tunnel_rec *r = find_name(st, name);

    return r != NULL ? &r->t : NULL;
}

const struct store_tunnel *store_find(const struct store *st, const char *ref)
{
    uint8_t id[TOKEN_ID_LEN];

    if (token_uuid_parse(ref, strlen(ref), id) == 0)
        return store_find_id(st, id);
    return store_find_name(st, ref);
}

const struct store_tunnel *store_authenticate(const struct store *st,
                                              const uint8_t id[TOKEN_ID_LEN],
                                              const uint8_t secret[TOKEN_SECRET_LEN])
{
    const struct tunnel_rec *match = NULL;
    const uint8_t *expect = st->dummy_digest;
    uint8_t digest[TOKEN_DIGEST_LEN];
    struct list_node *n;
    bool ok;

    /* RELIABILITY.md §2.3 row 3.2: the same work for an unknown id and a wrong secret. Every id
     * is compared (no early exit), then one hash and one constant-time digest comparison. */
    for (n = st->tunnels.next; n != &st->tunnels; n = n->next) {
        const struct tunnel_rec *r = container_of(n, struct tunnel_rec, link);

        if (CRYPTO_memcmp(r->t.id, id, TOKEN_ID_LEN) == 0) {
            match = r;
            expect = r->t.secret_hash;
        }
    }
    if (token_secret_hash(secret, digest) < 0)
        return NULL;
    ok = token_digest_equal(digest, expect);
    OPENSSL_cleanse(digest, sizeof(digest));
    if (!ok || match == NULL)
        return NULL;
    return &match->t;
}

int store_foreach_tunnel(const struct store *st,
                         int (*cb)(const struct store_tunnel *t, void *arg), void *arg)
{
    struct list_node *n;
    struct list_node *next;

    for (n = st->tunnels.next; n != &st->tunnels; n = next) {
        const struct tunnel_rec *r = container_of(n, struct tunnel_rec, link);
        int rv;

        next = n->next;
        rv = cb(&r->t, arg);
        if (rv != 0)
            return rv;
    }
    return 0;
}

size_t store_route_count(const struct store *st)
{
    return hostname_table_count(st->routes);
}

const struct store_tunnel *store_route_lookup(const struct store *st, const char *name,
                                              const char **pattern)
{
    const struct route_rec *r = hostname_table_lookup(st->routes, name, pattern);

    return r != NULL ? &r->tunnel->t : NULL;
}

const struct store_tunnel *store_route_get(const struct store *st, const char *pattern)
{
    const struct route_rec *r = hostname_table_get(st->routes, pattern);

    return r != NULL ? &r->tunnel->t : NULL;
}

/* True when wildcard |w| ("*.s") covers some name of |x| (exact "n", or wildcard "*.t"): n ends in
 * ".s", or t is s or ends in ".s". */
static bool wildcard_covers(const char *w, const char *x)
{
    size_t sl;
    size_t xl;

    if (w[0] != '*')
        return false;
    w += 1; /* ".s" */
    sl = strlen(w);
    if (x[0] == '*') {
        x += 1;
        if (strcmp(x, w) == 0)
            return true;
    }
    xl = strlen(x);
    return xl > sl && strcmp(x + xl - sl, w) == 0;
}

struct overlap_ctx {
    const char *pattern;
    const uint8_t *id;
    const struct route_rec *found;
};

static int overlap_cb(const char *pattern, void *value, void *arg)
{
    struct overlap_ctx *o = arg;
    const struct route_rec *r = value;

    (void)pattern;
    if (r->hidden || memcmp(r->tunnel->t.id, o->id, TOKEN_ID_LEN) == 0)
        return 0;
    if (wildcard_covers(r->pattern, o->pattern) || wildcard_covers(o->pattern, r->pattern)) {
        o->found = r;
        return 1;
    }
    return 0;
}

const char *store_route_overlap(const struct store *st, const char *pattern, const uint8_t id[TOKEN_ID_LEN],
                                const struct store_tunnel **other)
{
    struct overlap_ctx o = {pattern, id, NULL};

    hostname_table_foreach(st->routes, overlap_cb, &o);
    if (o.found == NULL)
        return NULL;
    *other = &o.found->tunnel->t;
    return o.found->pattern;
}

struct route_iter {
    const struct tunnel_rec *only;
    int (*cb)(const char *pattern, const struct store_tunnel *t, void *arg);
    void *arg;
};

static int route_iter_cb(const char *pattern, void *value, void *arg)
{
    struct route_iter *it = arg;
    const struct route_rec *r = value;

    (void)pattern;
    if (r->hidden || (it->only != NULL && r->tunnel != it->only))
        return 0;
    return it->cb(r->pattern, &r->tunnel->t, it->arg);
}

int store_foreach_route(const struct store *st, const struct store_tunnel *t,
                        int (*cb)(const char *pattern, const struct store_tunnel *t, void *arg),
                        void *arg)
{
    struct route_iter it;

    it.only = t != NULL ? rec_of(t) : NULL;
    it.cb = cb;
    it.arg = arg;
    return hostname_table_foreach(st->routes, route_iter_cb, &it);
}

/* ---- the file ----------------------------------------------------------------------------- */

static void hex_encode(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;

    for (i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex_decode(const char *s, size_t n, uint8_t *out, size_t outlen)
{
    size_t i;

    if (n != 2 * outlen)
        return CV_EINVAL;
    for (i = 0; i < outlen; i++) {
        int hi = hex_val(s[2 * i]);
        int lo = hex_val(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return CV_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int write_route_cb(const char *pattern, void *value, void *arg)
{
    struct json_writer *w = arg;
    const struct route_rec *r = value;
    char id[TOKEN_UUID_TEXT_LEN + 1];

    (void)pattern;
    if (r->hidden || r->tunnel->hidden)
        return 0;
    token_uuid_format(r->tunnel->t.id, id);
    json_w_object_begin(w);
    json_w_key(w, "hostname");
    json_w_string(w, r->pattern);
    json_w_key(w, "tunnel");
    json_w_string(w, id);
    json_w_object_end(w);
    return 0;
}

/* Serializes the visible state into |out|. Returns 0, CV_ENOMEM or CV_EFULL. */
static int serialize(const struct store *st, struct buf *out)
{
    struct json_writer w;
    struct list_node *n;

    json_w_init(&w, out, JSON_W_PRETTY);
    json_w_object_begin(&w);
    json_w_key(&w, "version");
    json_w_int(&w, STORE_VERSION);
    json_w_key(&w, "tunnels");
    json_w_array_begin(&w);
    for (n = st->tunnels.next; n != &st->tunnels; n = n->next) {
        const struct tunnel_rec *r = container_of(n, struct tunnel_rec, link);
        char id[TOKEN_UUID_TEXT_LEN + 1];
        char hash[2 * TOKEN_DIGEST_LEN + 1];

        if (r->hidden)
            continue;
        token_uuid_format(r->t.id, id);
        hex_encode(r->t.secret_hash, TOKEN_DIGEST_LEN, hash);
        json_w_object_begin(&w);
        json_w_key(&w, "id");
        json_w_string(&w, id);
        json_w_key(&w, "name");
        json_w_string(&w, r->t.name);
        json_w_key(&w, "secret_sha256");
        json_w_string(&w, hash);
        json_w_key(&w, "created_ms");
        json_w_int(&w, r->t.created_ms);
        json_w_key(&w, "generation");
        json_w_uint(&w, r->t.generation);
        json_w_object_end(&w);
    }
    json_w_array_end(&w);
    json_w_key(&w, "routes");
    json_w_array_begin(&w);
    hostname_table_foreach(st->routes, write_route_cb, &w);
    json_w_array_end(&w);
    json_w_object_end(&w);
    if (json_w_finish(&w) < 0)
        return w.err;
    return buf_append(out, "\n", 1);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* fsyncs the directory |dir| so that a rename in it is durable. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rv = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rv = -errno;
    close(fd);
    return rv;
}

/*
 * Writes the visible state crash-safely: state.json.tmp (0600, fsync), rename over state.json,
 * fsync the directory. Returns 0, CV_ENOMEM, CV_EFULL, or -errno (the old file is intact).
 */
static int persist(struct store *st)
{
    struct buf b;
    int fd;
    int rv;

    buf_init(&b, STORE_MAX_FILE);
    rv = serialize(st, &b);
    if (rv < 0)
        goto out;
    fd = open(st->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = -errno;
        goto out;
    }
    rv = fchmod(fd, 0600) < 0 ? -errno : 0;
    if (rv == 0)
        rv = write_all(fd, b.pos, buf_len(&b));
    if (rv == 0 && fsync(fd) < 0)
        rv = -errno;
    if (close(fd) < 0 && rv == 0)
        rv = -errno;
    if (rv == 0 && rename(st->tmp, st->file) < 0)
        rv = -errno;
    if (rv < 0) {
        unlink(st->tmp);
        goto out;
    }
    /* The rename is done: the new state is what a reader sees, so memory must follow it even if
     * the directory's fsync fails (only durability across a power loss is in doubt). */
    rv = sync_dir(st->dir);
    if (rv < 0)
        LOG_W("store %s: cannot fsync the directory: %s", st->dir, cv_strerror(rv));
    rv = 0;
out:
    if (rv < 0)
        LOG_E("store %s: cannot write: %s", st->file, cv_strerror(rv));
    buf_cleanup(&b);
    return rv;
}

/* ---- loading ------------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Creates |dir| and missing parents with mode 0700. Returns 0 or -errno; *|existed| is the length
 * of the part of |dir| that existed before (the parent of the first directory made), or
 * strlen(|dir|) when none was made. */
static int make_dirs(const char *dir, size_t *existed)
{
    char path[4096];
    size_t n = strlen(dir);
    size_t parent = 0;
    size_t i;
    struct stat sb;

    *existed = n;
    if (n == 0 || n >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0700) == 0) {
            if (*existed == n)
                *existed = parent;
        } else if (errno != EEXIST) {
            return -errno;
        }
        path[i] = i == n ? '\0' : '/';
        parent = i;
    }
    if (stat(dir, &sb) < 0)
        return -errno;
    if (!S_ISDIR(sb.st_mode))
        return -ENOTDIR;
    return 0;
}

static void free_route(void *value)
{
    mem_free(value);
}

/* Reads the whole file |path| into a new buffer: 0 with *|out| and *|n|, -ENOENT, -errno, CV_ELIMIT
 * (bigger than STORE_MAX_FILE), CV_EPARSE (not a regular file) or CV_ENOMEM. */
static int read_file(const char *path, char **out, size_t *n)
{
    struct stat sb;
    char *p;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int rv = 0;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &sb) < 0) {
        rv = -errno;
        close(fd);
        return rv;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return CV_EPARSE;
    }
    if ((uint64_t)sb.st_size > STORE_MAX_FILE) {
        close(fd);
        return CV_ELIMIT;
    }
    p = mem_alloc((size_t)sb.st_size + 1);
    if (p == NULL) {
        close(fd);
        return CV_ENOMEM;
    }
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, p + got, (size_t)sb.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rv = -errno;
            break;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (rv < 0) {
        mem_free(p);
        return rv;
    }
    p[got] = '\0';
    *out = p;
    *n = got;
    return 0;
}

/* Reads one string member |key| of |obj|; NULL when absent or not a string. */
static const char *member_string(const struct json_value *obj, const char *key, size_t *len)
{
    return json_as_string(json_object_get(obj, key), len);
}

static int load_tunnel(struct store *st, const struct json_value *v, size_t i, char *err,
                       size_t errlen)
{
    struct tunnel_rec *r;
    const char *s;
    size_t len;
    int64_t num;
    const char *why = NULL;
    const char *what = NULL;

    if (json_typeof(v) != JSON_OBJECT) {
        set_err(err, errlen, "%s: tunnels[%zu]: expected an object", st->file, i);
        return CV_EPARSE;
    }
    r = mem_calloc(sizeof(*r));
    if (r == NULL)
        return CV_ENOMEM;
    list_init(&r->link);
    s = member_string(v, "id", &len);
    if (s == NULL || token_uuid_parse(s, len, r->t.id) < 0)
        what = "id: expected a UUID";
    else if (find_id(st, r->t.id) != NULL)
        what = "id: duplicate tunnel id";
    if (what == NULL) {
        s = member_string(v, "name", &len);
        if (s == NULL || strlen(s) != len || !store_name_valid(s, &why))
            what = "name: invalid tunnel name";
        else if (find_name(st, s) != NULL)
            what = "name: duplicate tunnel name";
        else
            memcpy(r->t.name, s, len + 1);
    }
    if (what == NULL) {
        s = member_string(v, "secret_sha256", &len);
        if (s == NULL || hex_decode(s, len, r->t.secret_hash, TOKEN_DIGEST_LEN) < 0)
            what = "secret_sha256: expected 64 hex digits";
    }
    if (what == NULL) {
        if (json_as_int64(json_object_get(v, "created_ms"), &num) < 0 || num < 0)
            what = "created_ms: expected a non-negative integer";
        else
            r->t.created_ms = num;
    }
    if (what == NULL) {
        if (json_as_int64(json_object_get(v, "generation"), &num) < 0 || num < 1 ||
            num > UINT32_MAX)
            what = "generation: expected a positive integer";
        else
            r->t.generation = (uint32_t)num;
    }
    if (what != NULL) {
        set_err(err, errlen, "%s: tunnels[%zu].%s", st->file, i, what);
        mem_free(r);
        return CV_EPARSE;
    }
    list_push_back(&st->tunnels, &r->link);
    st->n_tunnels++;
    return 0;
}

static int load_route(struct store *st, const struct json_value *v, size_t i, char *err,
                      size_t errlen)
{
    struct route_rec *r;
    struct hostname_pattern pat;
    uint8_t id[TOKEN_ID_LEN];
    const char *s;
    size_t len;
    const char *what = NULL;
    int rv;

    if (json_typeof(v) != JSON_OBJECT) {
        set_err(err, errlen, "%s: routes[%zu]: expected an object", st->file, i);
        return CV_EPARSE;
    }
    r = mem_calloc(sizeof(*r));
    if (r == NULL)
        return CV_ENOMEM;
    s = member_string(v, "hostname", &len);
    if (s == NULL || hostname_pattern_parse(s, len, &pat, NULL) < 0)
        what = "hostname: invalid hostname pattern";
    if (what == NULL) {
        s = member_string(v, "tunnel", &len);
        if (s == NULL || token_uuid_parse(s, len, id) < 0)
            what = "tunnel: expected a UUID";
        else if ((r->tunnel = find_id(st, id)) == NULL)
            what = "tunnel: no such tunnel";
    }
    if (what == NULL) {
        memcpy(r->pattern, pat.text, pat.len + 1);
        rv = hostname_table_insert(st->routes, r->pattern, r, NULL);
        if (rv == CV_ENOMEM) {
            mem_free(r);
            return rv;
        }
        if (rv < 0)
            what = "hostname: duplicate route";
    }
    if (what != NULL) {
        set_err(err, errlen, "%s: routes[%zu].%s", st->file, i, what);
        mem_free(r);
        return CV_EPARSE;
    }
    return 0;
}

static int load(struct store *st, char *err, size_t errlen)
{
    struct json_limits lim = {STORE_MAX_FILE, 8};
    struct json_value *root = NULL;
    struct json_error jerr;
    const struct json_value *arr;
    char *text = NULL;
    size_t n = 0;
    size_t i;
    int64_t version;
    int rv;

    rv = read_file(st->file, &text, &n);
    if (rv == -ENOENT)
        return 0;
    if (rv == CV_ELIMIT || rv == CV_EPARSE) {
        set_err(err, errlen, "%s: corrupt state file: %s", st->file,
                rv == CV_ELIMIT ? "larger than 64 MiB" : "not a regular file");
        return CV_EPARSE;
    }
    if (rv < 0) {
        set_err(err, errlen, "%s: cannot read: %s", st->file, cv_strerror(rv));
        return rv;
    }
    memset(&jerr, 0, sizeof(jerr));
    rv = json_parse(text, n, &lim, &root, &jerr);
    mem_free(text);
    if (rv == CV_ENOMEM)
        goto nomem;
    if (rv < 0) {
        set_err(err, errlen, "%s: corrupt state file at %s", st->file, jerr.msg);
        return CV_EPARSE;
    }
    if (json_typeof(root) != JSON_OBJECT) {
        set_err(err, errlen, "%s: corrupt state file: expected an object", st->file);
        rv = CV_EPARSE;
        goto out;
    }
    if (json_as_int64(json_object_get(root, "version"), &version) < 0 ||
        version != STORE_VERSION) {
        set_err(err, errlen, "%s: unsupported state file version (expected %d)", st->file,
                STORE_VERSION);
        rv = CV_EPARSE;
        goto out;
    }
    arr = json_object_get(root, "tunnels");
    if (arr != NULL && json_typeof(arr) != JSON_ARRAY) {
        set_err(err, errlen, "%s: tunnels: expected a list", st->file);
        rv = CV_EPARSE;
        goto out;
    }
    for (i = 0; i < json_array_count(arr); i++) {
        rv = load_tunnel(st, json_array_at(arr, i), i, err, errlen);
        if (rv == CV_ENOMEM)
            goto nomem;
        if (rv < 0)
            goto out;
    }
    arr = json_object_get(root, "routes");
    if (arr != NULL && json_typeof(arr) != JSON_ARRAY) {
        set_err(err, errlen, "%s: routes: expected a list", st->file);
        rv = CV_EPARSE;
        goto out;
    }
    for (i = 0; i < json_array_count(arr); i++) {
        rv = load_route(st, json_array_at(arr, i), i, err, errlen);
        if (rv == CV_ENOMEM)
            goto nomem;
        if (rv < 0)
            goto out;
    }
    rv = 0;
    goto out;
nomem:
    set_err(err, errlen, "%s: out of memory", st->file);
    rv = CV_ENOMEM;
out:
    json_free(root);
    return rv;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *p = mem_alloc(n);

    if (p != NULL)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Whoever can write the directory can rename their own state.json over ours, or create
 * state.json.tmp first and so own the next one (group-writable stays allowed: Kubernetes fsGroup
 * volumes are, for the edge's own group). 0, or CV_EAUTH with |err|. */
static int check_dir_mode(const char *data_dir, char *err, size_t errlen)
{
    struct stat sb;

    if (stat(data_dir, &sb) == 0 && (sb.st_mode & S_IWOTH)) {
        set_err(err, errlen, "%s: refusing a data directory that others can write (mode %04o); "
                "run: chmod 700 %s", data_dir, (unsigned)(sb.st_mode & 07777), data_dir);
        return CV_EAUTH;
    }
    return 0;
}

/* Removes the directories of |dir| below its first |keep| bytes, deepest first (what make_dirs
 * created there). */
static void remove_dirs(char *dir, size_t keep)
{
    size_t n = strlen(dir);

    while (n > keep) {
        rmdir(dir);
        while (n > keep && dir[n - 1] != '/')
            n--;
        while (n > keep && dir[n - 1] == '/')
            n--;
        dir[n] = '\0';
    }
}

int store_check_dir(const char *data_dir, char *err, size_t errlen)
{
    char *probe = path_join(data_dir, ".culvert-check");
    char *top = mem_strdup(data_dir);
    size_t keep; /* the part of the path that existed: what this check leaves as it was */
    int rv;
    int fd;

    if (probe == NULL || top == NULL) {
        mem_free(probe);
        mem_free(top);
        set_err(err, errlen, "%s: out of memory", data_dir);
        return CV_ENOMEM;
    }
    rv = make_dirs(data_dir, &keep);
    if (rv == 0)
        rv = check_dir_mode(data_dir, err, errlen);
    else
        set_err(err, errlen, "%s: cannot create the data directory: %s", data_dir, cv_strerror(rv));
    if (rv == 0) {
        /* Writable, whoever runs this (root passes permission checks, not a read-only mount). */
        fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) {
            rv = -errno;
            set_err(err, errlen, "%s: cannot write in the data directory: %s", data_dir,
                    cv_strerror(rv));
        } else {
            close(fd);
            unlink(probe);
        }
    }
    /* Nothing left behind: a check run as root must not leave directories the service's user
     * cannot use. */
    remove_dirs(top, keep);
    mem_free(top);
    mem_free(probe);
    return rv;
}

int store_open(const char *data_dir, struct store **out, char *err, size_t errlen)
{
    struct store *st;
    char *lock_path = NULL;
    size_t existed; /* serve keeps what it creates */
    int rv;

    *out = NULL;
    st = mem_calloc(sizeof(*st));
    if (st == NULL)
        goto nomem;
    st->lock_fd = -1;
    list_init(&st->tunnels);
    st->dir = mem_strdup(data_dir);
    st->file = path_join(data_dir, STORE_FILE);
    st->tmp = path_join(data_dir, STORE_TMP_FILE);
    lock_path = path_join(data_dir, STORE_LOCK_FILE);
    st->routes = hostname_table_new();
    if (st->dir == NULL || st->file == NULL || st->tmp == NULL || lock_path == NULL ||
        st->routes == NULL)
        goto nomem;
    if (RAND_bytes(st->dummy_digest, sizeof(st->dummy_digest)) != 1) {
        set_err(err, errlen, "%s: the random generator failed", data_dir);
        rv = CV_ETLS;
        goto fail;
    }
    rv = make_dirs(data_dir, &existed);
    if (rv < 0) {
        set_err(err, errlen, "%s: cannot create the data directory: %s", data_dir,
                cv_strerror(rv));
        goto fail;
    }
    rv = check_dir_mode(data_dir, err, errlen);
    if (rv < 0)
        goto fail;
    st->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->lock_fd < 0) {
        rv = -errno;
        set_err(err, errlen, "%s: cannot open: %s", lock_path, cv_strerror(rv));
        goto fail;
    }
    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rv = errno == EWOULDBLOCK ? CV_EEXIST : -errno;
        if (rv == CV_EEXIST)
            set_err(err, errlen, "%s: in use by another culvert-edge", data_dir);
        else
            set_err(err, errlen, "%s: cannot lock: %s", lock_path, cv_strerror(rv));
        goto fail;
    }
    rv = load(st, err, errlen);
    if (rv < 0)
        goto fail;
    mem_free(lock_path);
    *out = st;
    return 0;
nomem:
    set_err(err, errlen, "%s: out of memory", data_dir);
    rv = CV_ENOMEM;
fail:
    mem_free(lock_path);
    store_free(st);
    return rv;
}

void store_free(struct store *st)
{
    struct list_node *n;

    if (st == NULL)
        return;
    hostname_table_free(st->routes, free_route);
    while (!list_empty(&st->tunnels)) {
        n = st->tunnels.next;
        list_remove(n);
        mem_free(container_of(n, struct tunnel_rec, link));
    }
    if (st->lock_fd >= 0)
        close(st->lock_fd); /* releases the flock */
    mem_free(st->dir);
    mem_free(st->file);
    mem_free(st->tmp);
    mem_free(st);
}

/* ---- changes ------------------------------------------------------------------------------ */

int store_tunnel_create(struct store *st, const char *name, uint8_t secret[TOKEN_SECRET_LEN],
                        const struct store_tunnel **out, const char **why)
{
    struct tunnel_rec *r;
    int rv;

    memset(secret, 0, TOKEN_SECRET_LEN);
    if (!store_name_valid(name, why))
        return CV_EINVAL;
    if (find_name(st, name) != NULL)
        return CV_EEXIST;
    r = mem_calloc(sizeof(*r));
    if (r == NULL)
        return CV_ENOMEM;
    list_init(&r->link);
    snprintf(r->t.name, sizeof(r->t.name), "%s", name);
    do {
        rv = token_uuid_random(r->t.id);
    } while (rv == 0 && find_id(st, r->t.id) != NULL);
    if (rv == 0)
        rv = token_secret_random(secret);
    if (rv == 0)
        rv = token_secret_hash(secret, r->t.secret_hash);
    if (rv < 0)
        goto fail;
    r->t.created_ms = now_ms();
    r->t.generation = 1;

    list_push_back(&st->tunnels, &r->link);
    st->n_tunnels++;
    rv = persist(st);
    if (rv < 0) {
        list_remove(&r->link);
        st->n_tunnels--;
        goto fail;
    }
    if (out != NULL)
        *out = &r->t;
    return 0;
fail:
    OPENSSL_cleanse(secret, TOKEN_SECRET_LEN);
    mem_free(r);
    return rv;
}

int store_tunnel_rotate(struct store *st, const uint8_t id[TOKEN_ID_LEN],
                        uint8_t secret[TOKEN_SECRET_LEN])
{
    struct tunnel_rec *r = find_id(st, id);
    struct store_tunnel old;
    int rv;

    memset(secret, 0, TOKEN_SECRET_LEN);
    if (r == NULL)
        return CV_ENOTFOUND;
    old = r->t;
    rv = token_secret_random(secret);
    if (rv == 0)
        rv = token_secret_hash(secret, r->t.secret_hash);
    if (rv == 0) {
        r->t.generation++;
        rv = persist(st);
    }
    if (rv < 0) {
        r->t = old;
        OPENSSL_cleanse(secret, TOKEN_SECRET_LEN);
    }
    return rv;
}

struct hide_ctx {
    const struct tunnel_rec *tunnel;
    bool hide;
};

static int hide_routes_cb(const char *pattern, void *value, void *arg)
{
    struct hide_ctx *h = arg;
    struct route_rec *r = value;

    (void)pattern;
    if (r->tunnel == h->tunnel)
        r->hidden = h->hide;
    return 0;
}

struct find_route_ctx {
    const struct tunnel_rec *tunnel;
    struct route_rec *found;
};

static int find_route_cb(const char *pattern, void *value, void *arg)
{
    struct find_route_ctx *f = arg;
    struct route_rec *r = value;

    (void)pattern;
    if (r->tunnel != f->tunnel)
        return 0;
    f->found = r;
    return 1;
}

/* Removes and frees every route to |t|. Cannot fail. */
static void drop_routes(struct store *st, const struct tunnel_rec *t)
{
    for (;;) {
        struct find_route_ctx f = {t, NULL};

        hostname_table_foreach(st->routes, find_route_cb, &f);
        if (f.found == NULL)
            break;
        hostname_table_remove(st->routes, f.found->pattern, NULL);
        mem_free(f.found);
    }
}

int store_tunnel_delete(struct store *st, const uint8_t id[TOKEN_ID_LEN])
{
    struct tunnel_rec *r = find_id(st, id);
    struct hide_ctx h;
    int rv;

    if (r == NULL)
        return CV_ENOTFOUND;
    /* RELIABILITY.md §2.2 row 2.5: the tunnel and its routes go in one write. */
    r->hidden = true;
    h.tunnel = r;
    h.hide = true;
    hostname_table_foreach(st->routes, hide_routes_cb, &h);
    rv = persist(st);
    if (rv < 0) {
        r->hidden = false;
        h.hide = false;
        hostname_table_foreach(st->routes, hide_routes_cb, &h);
        return rv;
    }
    drop_routes(st, r);
    list_remove(&r->link);
    st->n_tunnels--;
    mem_free(r);
    return 0;
}

int store_route_add(struct store *st, const char *pattern, const uint8_t id[TOKEN_ID_LEN],
                    const char **why)
{
    struct tunnel_rec *t;
    struct route_rec *r;
    struct hostname_pattern pat;
    const struct route_rec *cur;
    int rv;

    rv = hostname_pattern_parse(pattern, strlen(pattern), &pat, why);
    if (rv < 0)
        return CV_EINVAL;
    t = find_id(st, id);
    if (t == NULL)
        return CV_ENOTFOUND;
    cur = hostname_table_get(st->routes, pat.text);
    if (cur != NULL)
        return cur->tunnel == t ? 1 : CV_EEXIST;
    r = mem_calloc(sizeof(*r));
    if (r == NULL)
        return CV_ENOMEM;
    memcpy(r->pattern, pat.text, pat.len + 1);
    r->tunnel = t;
    rv = hostname_table_insert(st->routes, r->pattern, r, why);
    if (rv < 0) {
        mem_free(r);
        return rv;
    }
    rv = persist(st);
    if (rv < 0) {
        hostname_table_remove(st->routes, r->pattern, NULL);
        mem_free(r);
        return rv;
    }
    return 0;
}

int store_route_delete(struct store *st, const char *pattern)
{
    struct hostname_pattern pat;
    struct route_rec *r;
    int rv;

    if (hostname_pattern_parse(pattern, strlen(pattern), &pat, NULL) < 0)
        return CV_EINVAL;
    r = hostname_table_get(st->routes, pat.text);
    if (r == NULL)
        return CV_ENOTFOUND;
    r->hidden = true;
    rv = persist(st);
    if (rv < 0) {
        r->hidden = false;
        return rv;
    }
    hostname_table_remove(st->routes, r->pattern, NULL);
    mem_free(r);
    return 0;
}
