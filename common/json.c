/*
 * json.c - strict RFC 8259 parser into a tree, and an escaping writer into a struct buf; see json.h.
 *
 * The parser is recursive descent, bounded by the depth limit. Strings are validated as UTF-8 and
 * decoded into their own allocation; numbers keep their text for exact integer reads. Runs on one
 * thread; allocation through common/mem.
 */
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "err.h"
#include "mem.h"

struct json_member {
    char *key;
    size_t klen;
    size_t offset; /* of the key in the input, for duplicate reports */
    struct json_value *value;
};

struct json_value {
    enum json_type type;
    union {
        bool b;
        struct {
            double d;
            char *text;
        } num;
        struct {
            char *s;
            size_t len;
        } str;
        struct {
            struct json_value **items;
            size_t count;
        } arr;
        struct {
            struct json_member *members;  /* input order */
            struct json_member **sorted; /* by key */
            size_t count;
        } obj;
    } u;
};

/* ---- freeing and reading ------------------------------------------------------------------ */

void json_free(struct json_value *v)
{
    if (v == NULL)
        return;
    switch (v->type) {
    case JSON_NUMBER:
        mem_free(v->u.num.text);
        break;
    case JSON_STRING:
        mem_free_secret(v->u.str.s, v->u.str.len + 1);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < v->u.arr.count; i++)
            json_free(v->u.arr.items[i]);
        mem_free(v->u.arr.items);
        break;
    case JSON_OBJECT:
        for (size_t i = 0; i < v->u.obj.count; i++) {
            mem_free_secret(v->u.obj.members[i].key, v->u.obj.members[i].klen + 1);
            json_free(v->u.obj.members[i].value);
        }
        mem_free(v->u.obj.members);
        mem_free(v->u.obj.sorted);
        break;
    case JSON_NULL:
    case JSON_BOOL:
        break;
    }
    mem_free(v);
}

enum json_type json_typeof(const struct json_value *v)
{
    return v == NULL ? JSON_NULL : v->type;
}

bool json_is_null(const struct json_value *v)
{
    return v != NULL && v->type == JSON_NULL;
}

const char *json_as_string(const struct json_value *v, size_t *len)
{
    if (v == NULL || v->type != JSON_STRING)
        return NULL;
    if (len != NULL)
        *len = v->u.str.len;
    return v->u.str.s;
}

int json_as_bool(const struct json_value *v, bool *out)
{
    if (v == NULL || v->type != JSON_BOOL)
        return CV_EINVAL;
    *out = v->u.b;
    return 0;
}

int json_as_double(const struct json_value *v, double *out)
{
    if (v == NULL || v->type != JSON_NUMBER)
        return CV_EINVAL;
    *out = v->u.num.d;
    return 0;
}

int json_as_int64(const struct json_value *v, int64_t *out)
{
    const char *p;
    bool neg = false;
    uint64_t mag = 0;

    if (v == NULL || v->type != JSON_NUMBER)
        return CV_EINVAL;
    p = v->u.num.text;
    if (*p == '-') {
        neg = true;
        p++;
    }
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return CV_EINVAL; /* fraction or exponent */
        if (__builtin_mul_overflow(mag, 10, &mag) ||
            __builtin_add_overflow(mag, (uint64_t)(*p - '0'), &mag))
            return CV_EINVAL;
    }
    if (!neg && mag > (uint64_t)INT64_MAX)
        return CV_EINVAL;
    if (neg && mag > (uint64_t)INT64_MAX + 1)
        return CV_EINVAL;
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return 0;
}

size_t json_array_count(const struct json_value *v)
{
    return v != NULL && v->type == JSON_ARRAY ? v->u.arr.count : 0;
}

const struct json_value *json_array_at(const struct json_value *v, size_t i)
{
    return i < json_array_count(v) ? v->u.arr.items[i] : NULL;
}

size_t json_object_count(const struct json_value *v)
{
    return v != NULL && v->type == JSON_OBJECT ? v->u.obj.count : 0;
}

const char *json_object_key(const struct json_value *v, size_t i, size_t *len)
{
    if (i >= json_object_count(v))
        return NULL;
    if (len != NULL)
        *len = v->u.obj.members[i].klen;
    return v->u.obj.members[i].key;
}

const struct json_value *json_object_value(const struct json_value *v, size_t i)
{
    return i < json_object_count(v) ? v->u.obj.members[i].value : NULL;
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);

    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

const struct json_value *json_object_get(const struct json_value *v, const char *key)
{
    size_t lo = 0;
    size_t hi = json_object_count(v);
    size_t klen = strlen(key);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct json_member *m = v->u.obj.sorted[mid];
        int c = key_cmp(m->key, m->klen, key, klen);

        if (c == 0)
            return m->value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- parsing ------------------------------------------------------------------------------ */

struct parser {
    const unsigned char *p;
    size_t n;
    size_t pos;
    unsigned max_depth;
    struct json_error *err;
    int code; /* CV_EPARSE or CV_ENOMEM once failed */
};

static struct json_value *fail(struct parser *ps, size_t at, int code, const char *reason)
{
    if (ps->code == 0) {
        ps->code = code;
        if (ps->err != NULL) {
            ps->err->offset = at;
            ps->err->reason = reason;
            snprintf(ps->err->msg, sizeof(ps->err->msg), "byte %zu: %s", at, reason);
        }
    }
    return NULL;
}

static void skip_ws(struct parser *ps)
{
    while (ps->pos < ps->n) {
        unsigned char c = ps->p[ps->pos];

        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static struct json_value *new_value(struct parser *ps, enum json_type type)
{
    struct json_value *v = mem_calloc(sizeof(*v));

    if (v == NULL)
        return fail(ps, ps->pos, CV_ENOMEM, "out of memory");
    v->type = type;
    return v;
}

/*
 * Length of the valid UTF-8 sequence at |p| (at most |n| bytes; RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF), or 0 when invalid.
 */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && p[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && p[1] >= 0xa0)
            return 0; /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xf4 && p[1] >= 0x90)
            return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

static int hex4(const unsigned char *p, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(unsigned char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | (cp >> 6));
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Parses the string starting at the opening quote into a new NUL-terminated buffer. Decoded text is
 * never longer than the escaped input (a \uXXXX of 6 bytes is at most 3 UTF-8 bytes; a pair of 12
 * is 4), so one allocation of the raw length suffices.
 */
static char *parse_string(struct parser *ps, size_t *len)
{
    size_t start = ps->pos + 1;
    size_t end = start;
    unsigned char *out;
    size_t o = 0;
    size_t i;

    /* Find the closing quote. */
    while (end < ps->n && ps->p[end] != '"') {
        if (ps->p[end] == '\\')
            end++;
        end++;
    }
    if (end >= ps->n) {
        fail(ps, ps->pos, CV_EPARSE, "unterminated string");
        return NULL;
    }
    out = mem_alloc(end - start + 1);
    if (out == NULL) {
        fail(ps, ps->pos, CV_ENOMEM, "out of memory");
        return NULL;
    }
    i = start;
    while (i < end) {
        unsigned char c = ps->p[i];

        if (c < 0x20) {
            fail(ps, i, CV_EPARSE, "control character in string (must be escaped)");
            goto bad;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(ps->p + i, end - i);

            if (k == 0) {
                fail(ps, i, CV_EPARSE, "invalid UTF-8 in string");
                goto bad;
            }
            memcpy(out + o, ps->p + i, k);
            o += k;
            i += k;
            continue;
        }
        if (c != '\\') {
            out[o++] = c;
            i++;
            continue;
        }
        /* An escape; the scan above guaranteed a character after the backslash. */
        c = ps->p[i + 1];
        switch (c) {
        case '"':
        case '\\':
        case '/':
            out[o++] = c;
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u': {
            unsigned cp;
            unsigned lo;

            if (end - i < 6 || hex4(ps->p + i + 2, &cp) < 0) {
                fail(ps, i, CV_EPARSE, "invalid \\u escape");
                goto bad;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                fail(ps, i, CV_EPARSE, "lone low surrogate in \\u escape");
                goto bad;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (end - i < 12 || ps->p[i + 6] != '\\' || ps->p[i + 7] != 'u' ||
                    hex4(ps->p + i + 8, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
                    fail(ps, i, CV_EPARSE, "high surrogate not followed by a low surrogate");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            o += put_utf8(out + o, cp);
            i += 6;
            continue;
        }
        default:
            fail(ps, i, CV_EPARSE, "invalid escape in string");
            goto bad;
        }
        i += 2;
    }
    out[o] = '\0';
    *len = o;
    ps->pos = end + 1;
    return (char *)out;
bad:
    mem_free_secret(out, end - start + 1);
    return NULL;
}

static struct json_value *parse_number(struct parser *ps)
{
    size_t start = ps->pos;
    size_t i = start;
    struct json_value *v;
    char *end;

    if (i < ps->n && ps->p[i] == '-')
        i++;
    if (i >= ps->n || ps->p[i] < '0' || ps->p[i] > '9')
        return fail(ps, i, CV_EPARSE, "invalid number");
    if (ps->p[i] == '0') {
        i++;
        if (i < ps->n && ps->p[i] >= '0' && ps->p[i] <= '9')
            return fail(ps, i, CV_EPARSE, "leading zeros are not allowed in numbers");
    } else {
        while (i < ps->n && ps->p[i] >= '0' && ps->p[i] <= '9')
            i++;
    }
    if (i < ps->n && ps->p[i] == '.') {
        i++;
        if (i >= ps->n || ps->p[i] < '0' || ps->p[i] > '9')
            return fail(ps, i, CV_EPARSE, "expected a digit after the decimal point");
        while (i < ps->n && ps->p[i] >= '0' && ps->p[i] <= '9')
            i++;
    }
    if (i < ps->n && (ps->p[i] == 'e' || ps->p[i] == 'E')) {
        i++;
        if (i < ps->n && (ps->p[i] == '+' || ps->p[i] == '-'))
            i++;
        if (i >= ps->n || ps->p[i] < '0' || ps->p[i] > '9')
            return fail(ps, i, CV_EPARSE, "expected a digit in the exponent");
        while (i < ps->n && ps->p[i] >= '0' && ps->p[i] <= '9')
            i++;
    }
    v = new_value(ps, JSON_NUMBER);
    if (v == NULL)
        return NULL;
    v->u.num.text = mem_strndup((const char *)ps->p + start, i - start);
    if (v->u.num.text == NULL) {
        mem_free(v);
        return fail(ps, start, CV_ENOMEM, "out of memory");
    }
    v->u.num.d = strtod(v->u.num.text, &end);
    if (*end != '\0' || isinf(v->u.num.d)) {
        json_free(v);
        return fail(ps, start, CV_EPARSE, "number out of range");
    }
    ps->pos = i;
    return v;
}

static struct json_value *parse_value(struct parser *ps, unsigned depth);

static struct json_value *parse_array(struct parser *ps, unsigned depth)
{
    struct json_value *v = new_value(ps, JSON_ARRAY);
    size_t cap = 0;

    if (v == NULL)
        return NULL;
    ps->pos++; /* '[' */
    skip_ws(ps);
    if (ps->pos < ps->n && ps->p[ps->pos] == ']') {
        ps->pos++;
        return v;
    }
    for (;;) {
        struct json_value *item;

        if (v->u.arr.count == cap) {
            size_t ncap = cap == 0 ? 4 : cap * 2;
            struct json_value **items = mem_realloc(v->u.arr.items, ncap * sizeof(*items));

            if (items == NULL) {
                fail(ps, ps->pos, CV_ENOMEM, "out of memory");
                goto bad;
            }
            v->u.arr.items = items;
            cap = ncap;
        }
        item = parse_value(ps, depth);
        if (item == NULL)
            goto bad;
        v->u.arr.items[v->u.arr.count++] = item;
        skip_ws(ps);
        if (ps->pos < ps->n && ps->p[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->pos < ps->n && ps->p[ps->pos] == ']') {
            ps->pos++;
            return v;
        }
        fail(ps, ps->pos, CV_EPARSE, "expected ',' or ']' in array");
        goto bad;
    }
bad:
    json_free(v);
    return NULL;
}

static int member_ptr_cmp(const void *x, const void *y)
{
    const struct json_member *a = *(struct json_member *const *)x;
    const struct json_member *b = *(struct json_member *const *)y;
    int c = key_cmp(a->key, a->klen, b->key, b->klen);

    if (c != 0)
        return c;
    return (a > b) - (a < b);
}

/* Sorts the members of |v| by key; rejects a duplicate key at the offset of its first repeat. */
static int index_object(struct parser *ps, struct json_value *v)
{
    size_t count = v->u.obj.count;
    struct json_member **sorted;
    const struct json_member *dup = NULL;

    if (count == 0)
        return 0;
    sorted = mem_alloc(count * sizeof(*sorted));
    if (sorted == NULL) {
        fail(ps, ps->pos, CV_ENOMEM, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        sorted[i] = &v->u.obj.members[i];
    qsort(sorted, count, sizeof(*sorted), member_ptr_cmp);
    v->u.obj.sorted = sorted;
    for (size_t i = 1; i < count; i++) {
        if (key_cmp(sorted[i - 1]->key, sorted[i - 1]->klen, sorted[i]->key, sorted[i]->klen) != 0)
            continue;
        if (dup == NULL || sorted[i] < dup)
            dup = sorted[i];
    }
    if (dup != NULL) {
        fail(ps, dup->offset, CV_EPARSE, "duplicate key in object");
        return -1;
    }
    return 0;
}

static struct json_value *parse_object(struct parser *ps, unsigned depth)
{
    struct json_value *v = new_value(ps, JSON_OBJECT);
    size_t cap = 0;

    if (v == NULL)
        return NULL;
    ps->pos++; /* '{' */
    skip_ws(ps);
    if (ps->pos < ps->n && ps->p[ps->pos] == '}') {
        ps->pos++;
        return v;
    }
    for (;;) {
        struct json_member *m;
        size_t key_at;

        skip_ws(ps);
        if (ps->pos >= ps->n || ps->p[ps->pos] != '"') {
            fail(ps, ps->pos, CV_EPARSE, "expected a string key in object");
            goto bad;
        }
        if (v->u.obj.count == cap) {
            size_t ncap = cap == 0 ? 4 : cap * 2;
            struct json_member *members = mem_realloc(v->u.obj.members, ncap * sizeof(*members));

            if (members == NULL) {
                fail(ps, ps->pos, CV_ENOMEM, "out of memory");
                goto bad;
            }
            v->u.obj.members = members;
            cap = ncap;
        }
        m = &v->u.obj.members[v->u.obj.count];
        key_at = ps->pos;
        m->key = parse_string(ps, &m->klen);
        if (m->key == NULL)
            goto bad;
        m->offset = key_at;
        m->value = NULL;
        v->u.obj.count++;
        skip_ws(ps);
        if (ps->pos >= ps->n || ps->p[ps->pos] != ':') {
            fail(ps, ps->pos, CV_EPARSE, "expected ':' after an object key");
            goto bad;
        }
        ps->pos++;
        m->value = parse_value(ps, depth);
        if (m->value == NULL)
            goto bad;
        skip_ws(ps);
        if (ps->pos < ps->n && ps->p[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->pos < ps->n && ps->p[ps->pos] == '}') {
            ps->pos++;
            if (index_object(ps, v) < 0)
                goto bad;
            return v;
        }
        fail(ps, ps->pos, CV_EPARSE, "expected ',' or '}' in object");
        goto bad;
    }
bad:
    json_free(v);
    return NULL;
}

static bool match_word(struct parser *ps, const char *word)
{
    size_t len = strlen(word);

    if (ps->n - ps->pos < len || memcmp(ps->p + ps->pos, word, len) != 0)
        return false;
    ps->pos += len;
    return true;
}

/* |depth| counts the containers around this value. */
static struct json_value *parse_value(struct parser *ps, unsigned depth)
{
    struct json_value *v;
    unsigned char c;

    skip_ws(ps);
    if (ps->pos >= ps->n)
        return fail(ps, ps->pos, CV_EPARSE, "unexpected end of input");
    c = ps->p[ps->pos];
    switch (c) {
    case '{':
    case '[':
        if (depth >= ps->max_depth)
            return fail(ps, ps->pos, CV_EPARSE, "nesting too deep");
        return c == '{' ? parse_object(ps, depth + 1) : parse_array(ps, depth + 1);
    case '"':
        v = new_value(ps, JSON_STRING);
        if (v == NULL)
            return NULL;
        v->u.str.s = parse_string(ps, &v->u.str.len);
        if (v->u.str.s == NULL) {
            mem_free(v);
            return NULL;
        }
        return v;
    case 't':
    case 'f':
        if (!match_word(ps, c == 't' ? "true" : "false"))
            return fail(ps, ps->pos, CV_EPARSE, "invalid literal");
        v = new_value(ps, JSON_BOOL);
        if (v != NULL)
            v->u.b = c == 't';
        return v;
    case 'n':
        if (!match_word(ps, "null"))
            return fail(ps, ps->pos, CV_EPARSE, "invalid literal");
        return new_value(ps, JSON_NULL);
    default:
        if (c == '-' || (c >= '0' && c <= '9'))
            return parse_number(ps);
        return fail(ps, ps->pos, CV_EPARSE, "unexpected character");
    }
}

int json_parse(const char *p, size_t n, const struct json_limits *lim, struct json_value **out,
               struct json_error *err)
{
    struct parser ps;
    struct json_value *v;
    size_t max_bytes = lim != NULL ? lim->max_bytes : JSON_DEFAULT_MAX_BYTES;

    *out = NULL;
    memset(&ps, 0, sizeof(ps));
    ps.p = (const unsigned char *)p;
    ps.n = n;
    ps.max_depth = lim != NULL ? lim->max_depth : JSON_DEFAULT_MAX_DEPTH;
    ps.err = err;
    if (n > max_bytes) {
        fail(&ps, max_bytes, CV_ELIMIT, "input too long");
        return CV_ELIMIT;
    }
    v = parse_value(&ps, 0);
    if (v == NULL)
        return ps.code;
    skip_ws(&ps);
    if (ps.pos != n) {
        json_free(v);
        fail(&ps, ps.pos, CV_EPARSE, "unexpected data after the value");
        return ps.code;
    }
    *out = v;
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------ */

void json_w_init(struct json_writer *w, struct buf *out, unsigned flags)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->flags = flags;
}

static void put(struct json_writer *w, const void *p, size_t n)
{
    int rv;

    if (w->err != 0)
        return;
    rv = buf_append(w->out, p, n);
    if (rv < 0)
        w->err = rv;
}

static void puts_w(struct json_writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void newline_indent(struct json_writer *w, unsigned depth)
{
    if (!(w->flags & JSON_W_PRETTY))
        return;
    puts_w(w, "\n");
    for (unsigned i = 0; i < depth; i++)
        puts_w(w, "  ");
}

/* Called before every value and key: checks the grammar and writes the separator. */
static bool before_item(struct json_writer *w, bool is_key)
{
    if (w->err != 0)
        return false;
    if (w->depth == 0) {
        if (is_key || w->done) {
            w->err = CV_EINVAL;
            return false;
        }
        return true;
    }
    if (w->is_object[w->depth]) {
        if (is_key == w->after_key) { /* a key after a key, or a value without a key */
            w->err = CV_EINVAL;
            return false;
        }
        if (!is_key) {
            w->after_key = false;
            return true; /* the separator came with the key */
        }
    } else if (is_key) {
        w->err = CV_EINVAL;
        return false;
    }
    if (w->has_items[w->depth])
        puts_w(w, ",");
    w->has_items[w->depth] = true;
    newline_indent(w, w->depth);
    return w->err == 0;
}

static void after_value(struct json_writer *w)
{
    if (w->depth == 0)
        w->done = true;
}

static void begin(struct json_writer *w, bool object)
{
    if (!before_item(w, false))
        return;
    if (w->depth >= JSON_WRITER_MAX_DEPTH) {
        w->err = CV_ELIMIT;
        return;
    }
    puts_w(w, object ? "{" : "[");
    w->depth++;
    w->is_object[w->depth] = object;
    w->has_items[w->depth] = false;
    w->after_key = false;
}

static void end(struct json_writer *w, bool object)
{
    bool had_items;

    if (w->err != 0)
        return;
    if (w->depth == 0 || w->is_object[w->depth] != object || w->after_key) {
        w->err = CV_EINVAL;
        return;
    }
    had_items = w->has_items[w->depth];
    w->depth--;
    if (had_items)
        newline_indent(w, w->depth);
    puts_w(w, object ? "}" : "]");
    after_value(w);
}

void json_w_object_begin(struct json_writer *w)
{
    begin(w, true);
}

void json_w_object_end(struct json_writer *w)
{
    end(w, true);
}

void json_w_array_begin(struct json_writer *w)
{
    begin(w, false);
}

void json_w_array_end(struct json_writer *w)
{
    end(w, false);
}

/* Appends the escaped form of |str| with its quotes. Returns 0 or the buf's error. */
static int escape(struct buf *b, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    size_t i = 0;
    char esc[8];
    int rv = buf_append(b, "\"", 1);

    while (rv == 0 && i < n) {
        unsigned char c = s[i];
        const char *rep;
        size_t k;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if (c >= 0x80) {
            k = utf8_len(s + i, n - i);
            if (k != 0) {
                i += k;
                continue;
            }
        }
        switch (c) {
        case '"':
            rep = "\\\"";
            break;
        case '\\':
            rep = "\\\\";
            break;
        case '\n':
            rep = "\\n";
            break;
        case '\r':
            rep = "\\r";
            break;
        case '\t':
            rep = "\\t";
            break;
        case '\b':
            rep = "\\b";
            break;
        case '\f':
            rep = "\\f";
            break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", c);
                rep = esc;
            } else {
                rep = "\\ufffd"; /* a byte of invalid UTF-8 */
            }
            break;
        }
        rv = buf_append(b, s + run, i - run);
        if (rv == 0)
            rv = buf_append(b, rep, strlen(rep));
        i++;
        run = i;
    }
    if (rv == 0)
        rv = buf_append(b, s + run, n - run);
    if (rv == 0)
        rv = buf_append(b, "\"", 1);
    return rv;
}

int json_write_string(struct buf *out, const char *s, size_t n)
{
    size_t before = buf_len(out);
    int rv = escape(out, s, n);

    if (rv < 0 && out->pos != NULL)
        out->last = out->pos + before; /* buf_reserve may compact, but never drops data */
    return rv;
}

/* Writes a string through the writer's buf, keeping the first error. */
static void put_string(struct json_writer *w, const char *s, size_t n)
{
    int rv;

    if (w->err != 0)
        return;
    rv = json_write_string(w->out, s, n);
    if (rv < 0)
        w->err = rv;
}

void json_w_key(struct json_writer *w, const char *key)
{
    if (!before_item(w, true))
        return;
    put_string(w, key, strlen(key));
    puts_w(w, (w->flags & JSON_W_PRETTY) ? ": " : ":");
    w->after_key = true;
}

void json_w_stringn(struct json_writer *w, const char *s, size_t n)
{
    if (!before_item(w, false))
        return;
    put_string(w, s, n);
    after_value(w);
}

void json_w_string(struct json_writer *w, const char *s)
{
    json_w_stringn(w, s, strlen(s));
}

static void write_raw_value(struct json_writer *w, const char *text)
{
    if (!before_item(w, false))
        return;
    puts_w(w, text);
    after_value(w);
}

void json_w_int(struct json_writer *w, int64_t v)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    write_raw_value(w, tmp);
}

void json_w_uint(struct json_writer *w, uint64_t v)
{
    char tmp[24];

    snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    write_raw_value(w, tmp);
}

void json_w_double(struct json_writer *w, double v)
{
    char tmp[32];

    if (w->err != 0)
        return;
    if (!isfinite(v)) {
        w->err = CV_EINVAL;
        return;
    }
    /* The shortest of %.15g .. %.17g that reads back exactly (%.17g always does). */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    write_raw_value(w, tmp);
}

void json_w_bool(struct json_writer *w, bool v)
{
    write_raw_value(w, v ? "true" : "false");
}

void json_w_null(struct json_writer *w)
{
    write_raw_value(w, "null");
}

int json_w_finish(struct json_writer *w)
{
    if (w->err != 0)
        return w->err;
    if (w->depth != 0 || !w->done)
        return CV_EINVAL;
    return 0;
}
