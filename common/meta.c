/*
 * meta.c - metadata blocks (proto/PROTOCOL.md §8.1, §8.3); see meta.h.
 *
 * The mux hands a whole reassembled block (HEADERS + CONTINUATION payloads) to meta_decode(); the
 * edge and the connector build blocks with meta_begin/meta_add/meta_end into a struct buf. Pure: no
 * I/O, and the only allocation is the buf growth in buf.c. Runs on the loop thread like its callers.
 *
 * The decoder trusts nothing: the block comes from a peer that is authenticated but not trusted
 * (RELIABILITY.md §2), and its fields end up in HTTP/1.1 heads, so every byte rule of §8.3 is
 * checked here, once, before any field reaches the application.
 */
#include "meta.h"

#include <string.h>

#include "err.h"
#include "http1.h"
#include "wire.h"

#define FIELD_HDR 4 /* Name Len (16) + Value Len (16) */
/* INT_MAX without <limits.h>, which -Icommon shadows with common/limits.h. */
#define OFFSET_MAX ((size_t)(~0u >> 1))

/* Pseudo-fields, as bits for the "at most once" check. */
enum {
    PS_METHOD = 1u << 0,
    PS_SCHEME = 1u << 1,
    PS_AUTHORITY = 1u << 2,
    PS_PATH = 1u << 3,
    PS_CLIENT = 1u << 4,
    PS_STATUS = 1u << 5,
};

static const struct {
    const char *name;
    size_t len;
    unsigned bit;
} pseudo_names[] = {
    {":method", 7, PS_METHOD}, {":scheme", 7, PS_SCHEME}, {":authority", 10, PS_AUTHORITY},
    {":path", 5, PS_PATH},     {":client", 7, PS_CLIENT}, {":status", 7, PS_STATUS},
};

/* PROTOCOL.md §8.3: the four request pseudo-fields that must open an HTTP request, in order. */
static const unsigned request_order[] = {PS_METHOD, PS_SCHEME, PS_AUTHORITY, PS_PATH};

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Case-insensitive comparison of the |n| bytes at |a| with the |bn| bytes at |b|: the lengths settle
 * most comparisons. */
static int name_eq(const char *a, size_t n, const char *b, size_t bn)
{
    if (n != bn)
        return 0;
    if (memcmp(a, b, n) == 0)
        return 1; /* pseudo-field names and lower-case spellings: no case folding needed */
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    }
    return 1;
}

static int is_token(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!http1_tchar[(uint8_t)s[i]])
            return 0;
    }
    return 1;
}

/* Bits of the pseudo-fields allowed in a block of |type| (PROTOCOL.md §8.3). */
static unsigned allowed_pseudo(uint8_t type)
{
    switch (type) {
    case META_REQUEST_HTTP:
    case META_REQUEST_UPGRADE:
        return PS_METHOD | PS_SCHEME | PS_AUTHORITY | PS_PATH | PS_CLIENT;
    case META_REQUEST_TCP:
        return PS_AUTHORITY | PS_CLIENT;
    case META_RESPONSE:
        return PS_STATUS;
    default:
        return 0; /* TRAILERS */
    }
}

static unsigned required_pseudo(uint8_t type)
{
    switch (type) {
    case META_REQUEST_HTTP:
    case META_REQUEST_UPGRADE:
        return PS_METHOD | PS_SCHEME | PS_AUTHORITY | PS_PATH;
    case META_REQUEST_TCP:
        return PS_AUTHORITY;
    case META_RESPONSE:
        return PS_STATUS;
    default:
        return 0;
    }
}

static int type_known(uint8_t type)
{
    return type == META_REQUEST_HTTP || type == META_REQUEST_UPGRADE || type == META_REQUEST_TCP ||
           type == META_RESPONSE || type == META_TRAILERS;
}

/* Returns the bit of the pseudo-field |f|, or 0 for an unknown one. */
static unsigned pseudo_bit(const struct meta_field *f)
{
    for (size_t i = 0; i < sizeof(pseudo_names) / sizeof(pseudo_names[0]); i++) {
        if (name_eq(f->name, f->name_len, pseudo_names[i].name, pseudo_names[i].len))
            return pseudo_names[i].bit;
    }
    return 0;
}

/* PROTOCOL.md §8.3: the value rules of the pseudo-field tables. */
static int check_pseudo_value(unsigned bit, const struct meta_field *f, const char **why)
{
    const char *v = f->value;
    size_t n = f->value_len;

    switch (bit) {
    case PS_STATUS:
        if (n != 3 || v[0] < '1' || v[0] > '5' || v[1] < '0' || v[1] > '9' || v[2] < '0' ||
            v[2] > '9') {
            *why = ":status is not three digits 100..599";
            return CV_EPROTO;
        }
        return 0;
    case PS_METHOD:
        if (!is_token(v, n)) {
            *why = ":method is not a token";
            return CV_EPROTO;
        }
        return 0;
    case PS_SCHEME:
        if (!(n == 4 && memcmp(v, "http", 4) == 0) && !(n == 5 && memcmp(v, "https", 5) == 0)) {
            *why = ":scheme is neither https nor http";
            return CV_EPROTO;
        }
        return 0;
    case PS_PATH:
        if (n == 0 || v[0] != '/') {
            *why = ":path does not start with /";
            return CV_EPROTO;
        }
        return 0;
    case PS_AUTHORITY:
        if (n == 0) {
            *why = ":authority is empty";
            return CV_EPROTO;
        }
        return 0;
    default:
        return 0; /* :client: only the general value rules */
    }
}

/* No CR, LF or NUL in |n| bytes at |s|. Eight bytes at a time while none is below 0x0e (Bit
 * Twiddling Hacks' exact hasless); a word with one goes to the byte check. */
static int value_clean(const char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t w;

        memcpy(&w, s + i, 8);
        if (((w - 0x0e * ones) & ~w) & (0x80 * ones))
            break;
    }
    for (; i < n; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    }
    return 1;
}

/* PROTOCOL.md §8.3: names are 1..256 tchar (or a pseudo-field name), values free of CR, LF, NUL. */
static int check_field_bytes(const struct meta_field *f, const char **why)
{
    size_t i = 0;

    if (f->name_len == 0) {
        *why = "empty field name";
        return CV_EPROTO;
    }
    if (f->name_len > META_MAX_NAME) {
        *why = "field name longer than 256 octets";
        return CV_EPROTO;
    }
    if (f->value_len > META_MAX_VALUE) {
        *why = "field value longer than 16384 octets";
        return CV_EPROTO;
    }
    if (f->name[0] == ':')
        i = 1; /* which pseudo-field it is, is checked with the block's type */
    for (; i < f->name_len; i++) {
        if (!http1_tchar[(uint8_t)f->name[i]]) {
            *why = "field name has a byte outside tchar";
            return CV_EPROTO;
        }
    }
    if (!value_clean(f->value, f->value_len)) {
        *why = "field value contains CR, LF or NUL";
        return CV_EPROTO;
    }
    return 0;
}

/* PROTOCOL.md §8.3: which pseudo-fields, where, how often, and which are required. */
static int check_pseudo_fields(const struct meta *m, const char **why)
{
    unsigned allowed = allowed_pseudo(m->type);
    unsigned seen = 0;
    unsigned first[sizeof(request_order) / sizeof(request_order[0])] = {0};
    int regular_seen = 0;
    int rv;

    for (unsigned i = 0; i < m->count; i++) {
        const struct meta_field *f = &m->fields[i];
        unsigned bit;

        if (f->name[0] != ':') {
            regular_seen = 1;
            continue;
        }
        if (regular_seen) {
            *why = "pseudo-field after a regular field";
            return CV_EPROTO;
        }
        bit = pseudo_bit(f);
        if ((bit & allowed) == 0) {
            *why = "pseudo-field not allowed in this block type";
            return CV_EPROTO;
        }
        if (seen & bit) {
            *why = "pseudo-field repeated";
            return CV_EPROTO;
        }
        seen |= bit;
        if (i < sizeof(first) / sizeof(first[0]))
            first[i] = bit;
        rv = check_pseudo_value(bit, f, why);
        if (rv < 0)
            return rv;
    }
    if ((seen & required_pseudo(m->type)) != required_pseudo(m->type)) {
        *why = "required pseudo-field missing";
        return CV_EPROTO;
    }
    if (m->type == META_REQUEST_HTTP || m->type == META_REQUEST_UPGRADE) {
        /* The four required ones are present; they must also be the first four, in order. */
        for (unsigned i = 0; i < sizeof(request_order) / sizeof(request_order[0]); i++) {
            if (first[i] != request_order[i]) {
                *why = "request pseudo-fields not in the order :method :scheme :authority :path";
                return CV_EPROTO;
            }
        }
    }
    return 0;
}

int meta_decode(struct meta *m, const uint8_t *p, size_t n, size_t max_size, size_t max_fields,
                const char **why)
{
    const char *dummy;
    size_t off;
    uint16_t count;
    int rv;

    if (why == NULL)
        why = &dummy;
    if (max_fields > META_MAX_FIELDS)
        max_fields = META_MAX_FIELDS;
    m->type = 0;
    m->count = 0;
    /* PROTOCOL.md §8.1: a well-formed block's decoded size is exactly its length, so |n| is
     * compared before anything is parsed. */
    if (n > max_size) {
        *why = "metadata block larger than max_metadata_size";
        return CV_ELIMIT;
    }
    if (n < META_BLOCK_HDR) {
        *why = "metadata block shorter than its header";
        return CV_EPROTO;
    }
    count = get_u16(p + 1);
    if (count > max_fields) {
        *why = "metadata block has too many fields";
        return CV_ELIMIT;
    }
    if (!type_known(p[0])) {
        *why = "unknown metadata block type";
        return CV_EPROTO;
    }
    m->type = p[0];
    off = META_BLOCK_HDR;
    for (unsigned i = 0; i < count; i++) {
        struct meta_field *f = &m->fields[i];
        size_t nl, vl;

        if (n - off < FIELD_HDR) {
            *why = "field header runs past the block";
            return CV_EPROTO;
        }
        nl = get_u16(p + off);
        vl = get_u16(p + off + 2);
        off += FIELD_HDR;
        if (n - off < nl + vl) {
            *why = "field runs past the block";
            return CV_EPROTO;
        }
        f->name = (const char *)(p + off);
        f->name_len = (uint16_t)nl;
        f->value = (const char *)(p + off + nl);
        f->value_len = (uint16_t)vl;
        off += nl + vl;
        rv = check_field_bytes(f, why);
        if (rv < 0)
            return rv;
        m->count = (uint16_t)(i + 1);
    }
    if (off != n) {
        *why = "trailing octets after the last field";
        return CV_EPROTO;
    }
    return check_pseudo_fields(m, why);
}

const struct meta_field *meta_get(const struct meta *m, const char *name)
{
    size_t n = strlen(name);

    for (unsigned i = 0; i < m->count; i++) {
        if (name_eq(m->fields[i].name, m->fields[i].name_len, name, n))
            return &m->fields[i];
    }
    return NULL;
}

unsigned meta_first_regular(const struct meta *m)
{
    unsigned i;

    for (i = 0; i < m->count; i++) {
        if (m->fields[i].name_len == 0 || m->fields[i].name[0] != ':')
            break;
    }
    return i;
}

int meta_begin(struct buf *b, uint8_t type)
{
    uint8_t hdr[META_BLOCK_HDR];
    size_t start = buf_len(b);
    int rv;

    if (start > OFFSET_MAX)
        return CV_EFULL;
    put_u8(hdr, type);
    put_u16(hdr + 1, 0); /* patched by meta_end */
    rv = buf_append(b, hdr, sizeof(hdr));
    if (rv < 0)
        return rv;
    return (int)start;
}

int meta_add(struct buf *b, const char *name, size_t name_len, const char *value, size_t value_len)
{
    uint8_t *dst;
    int err = 0;

    if (name_len == 0 || name_len > META_MAX_NAME || value_len > META_MAX_VALUE)
        return CV_EINVAL;
    /* Reserve the whole field at once so a failure leaves |b| unchanged. */
    dst = buf_reserve(b, FIELD_HDR + name_len + value_len, &err);
    if (dst == NULL)
        return err;
    put_u16(dst, (uint16_t)name_len);
    put_u16(dst + 2, (uint16_t)value_len);
    memcpy(dst + FIELD_HDR, name, name_len);
    if (value_len > 0)
        memcpy(dst + FIELD_HDR + name_len, value, value_len);
    buf_commit(b, FIELD_HDR + name_len + value_len);
    return 0;
}

int meta_add_str(struct buf *b, const char *name, const char *value)
{
    return meta_add(b, name, strlen(name), value, strlen(value));
}

int meta_end(struct buf *b, size_t start)
{
    size_t len = buf_len(b);
    size_t off;
    size_t count = 0;

    if (start > len || len - start < META_BLOCK_HDR)
        return CV_EINVAL;
    /* Count the fields meta_add appended after the block header. */
    off = start + META_BLOCK_HDR;
    while (off < len) {
        size_t flen;

        if (len - off < FIELD_HDR)
            return CV_EINVAL;
        flen = FIELD_HDR + (size_t)get_u16(b->pos + off) + get_u16(b->pos + off + 2);
        if (len - off < flen)
            return CV_EINVAL;
        off += flen;
        count++;
    }
    if (count > META_MAX_FIELDS)
        return CV_ELIMIT;
    put_u16(b->pos + start + 1, (uint16_t)count);
    return 0;
}
