/*
 * yaml.c - libyaml events -> an immutable, located node tree, with limits; typed getters with
 * located errors. See yaml.h.
 *
 * Layers: libyaml's event parser below (it owns its own malloc'd buffers, freed per event and at
 * yaml_parser_delete); config.c and hostname.c do the value parsing for the getters; the schema code
 * of the edge and the connector sits above. Runs on whichever thread loads the file; no global state.
 *
 * Memory: every node, string and array of a document lives in an arena of blocks allocated through
 * common/mem, so yaml_doc_free() is one walk over the blocks. While loading, the children of each
 * open collection are gathered in a growable array per nesting level, then copied into the arena
 * when the collection ends.
 */
#include "yaml.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CV_YAML_WANT_LIBYAML
#include <yaml.h> /* libyaml, through the #include_next at the end of our yaml.h */

#include "err.h"
#include "mem.h"

struct yaml_pair {
    struct yaml_node *key;
    struct yaml_node *value;
};

struct yaml_node {
    enum yaml_kind kind;
    bool plain;    /* scalar: plain style and no tag that makes it a string */
    bool null_tag; /* scalar: tagged !!null */
    unsigned line; /* 1-based */
    unsigned col;  /* 1-based */
    const char *file;
    union {
        struct {
            char *text; /* NUL-terminated, |len| bytes */
            size_t len;
        } scalar;
        struct {
            struct yaml_node **items;
            size_t count;
        } seq;
        struct {
            struct yaml_pair *pairs;   /* file order */
            struct yaml_pair **sorted; /* by key, for yaml_map_get */
            size_t count;
        } map;
    } u;
};

struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

struct yaml_doc {
    struct arena_block *blocks;
    struct yaml_node *root;
    char *name;
};

#define ARENA_BLOCK_SIZE (16 * 1024)

static void *arena_alloc(struct yaml_doc *d, size_t n)
{
    struct arena_block *b = d->blocks;
    size_t align = alignof(max_align_t);
    void *p;

    n = (n + align - 1) & ~(align - 1);
    if (b == NULL || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK_SIZE ? n : ARENA_BLOCK_SIZE;

        b = mem_alloc(sizeof(*b) + size);
        if (b == NULL)
            return NULL;
        b->size = size;
        b->used = 0;
        /* A big allocation gets its own block behind the current one, which keeps its free room. */
        if (d->blocks != NULL && size > ARENA_BLOCK_SIZE) {
            b->next = d->blocks->next;
            d->blocks->next = b;
        } else {
            b->next = d->blocks;
            d->blocks = b;
        }
    }
    p = b->data + b->used;
    b->used += n;
    return p;
}

static char *arena_strndup(struct yaml_doc *d, const char *s, size_t n)
{
    char *p = arena_alloc(d, n + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void yaml_doc_free(struct yaml_doc *d)
{
    if (d == NULL)
        return;
    while (d->blocks != NULL) {
        struct arena_block *b = d->blocks;

        d->blocks = b->next;
        mem_free(b);
    }
    mem_free(d);
}

const struct yaml_node *yaml_doc_root(const struct yaml_doc *d)
{
    return d->root;
}

/* ---- messages ----------------------------------------------------------------------------- */

static void set_msg(struct yaml_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_msg(struct yaml_error *err, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
}

/* Writes |s| (|n| bytes) quoted and escaped into |out|, cut to about 60 characters. */
static void quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    size_t i;

    out[o++] = '"';
    for (i = 0; i < n && o + 8 < cap && i < 60; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    if (i < n && o + 5 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- loading ------------------------------------------------------------------------------ */

struct level {
    struct yaml_node *node;   /* the open sequence or mapping */
    struct yaml_node **items; /* children so far (mappings: key, value, key, value, ...) */
    size_t count;
    size_t cap;
};

struct loader {
    struct yaml_doc *doc;
    const char *name;
    const char *input;
    size_t input_len;
    struct level *stack;
    unsigned depth; /* open collections */
    unsigned max_depth;
    unsigned long nodes;
    unsigned long max_nodes;
    int documents;
    struct yaml_error *err;
};

static int error_at(struct loader *l, int code, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int error_at(struct loader *l, int code, yaml_mark_t mark, const char *fmt, ...)
{
    char text[YAML_ERROR_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    set_msg(l->err, "%s:%lu:%lu: %s", l->name, (unsigned long)mark.line + 1,
            (unsigned long)mark.column + 1, text);
    return code;
}

/* libyaml's own error, located. Reader errors (bad encoding) carry a byte offset, not a mark. */
static int parser_error(struct loader *l, const yaml_parser_t *p)
{
    const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
    yaml_mark_t mark = p->problem_mark;

    if (p->error == YAML_MEMORY_ERROR) {
        set_msg(l->err, "%s: out of memory", l->name);
        return CV_ENOMEM;
    }
    if (p->error == YAML_READER_ERROR) {
        size_t off = p->problem_offset < l->input_len ? p->problem_offset : l->input_len;

        mark.line = 0;
        mark.column = 0;
        for (size_t i = 0; i < off; i++) {
            if (l->input[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
        return error_at(l, CV_EPARSE, mark, "%s", problem);
    }
    if (p->context != NULL)
        return error_at(l, CV_EPARSE, mark, "%s (%s at line %lu)", problem, p->context,
                        (unsigned long)p->context_mark.line + 1);
    return error_at(l, CV_EPARSE, mark, "%s", problem);
}

#define TAG_PREFIX "tag:yaml.org,2002:"

/* Checks a node's tag against the core schema. Sets *|as_string| for !!str and "!", *|as_null| for
 * !!null. Returns 0 or CV_EPARSE. */
static int check_tag(struct loader *l, const yaml_char_t *utag, enum yaml_kind kind,
                     yaml_mark_t mark, bool *as_string, bool *as_null)
{
    static const char *const scalar_tags[] = {"str", "int", "float", "bool", "null"};
    const char *tag = (const char *)utag;
    char q[80];

    *as_string = false;
    *as_null = false;
    if (tag == NULL)
        return 0;
    if (strcmp(tag, "!") == 0 && kind == YAML_KIND_SCALAR) {
        *as_string = true;
        return 0;
    }
    if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
        const char *t = tag + strlen(TAG_PREFIX);

        if (kind == YAML_KIND_SEQUENCE && strcmp(t, "seq") == 0)
            return 0;
        if (kind == YAML_KIND_MAPPING && strcmp(t, "map") == 0)
            return 0;
        if (kind == YAML_KIND_SCALAR) {
            for (size_t i = 0; i < sizeof(scalar_tags) / sizeof(scalar_tags[0]); i++) {
                if (strcmp(t, scalar_tags[i]) == 0) {
                    *as_string = i == 0;
                    *as_null = i == 4;
                    return 0;
                }
            }
        }
    }
    if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) == 0) {
        char shorthand[80];

        snprintf(shorthand, sizeof(shorthand), "!!%s", tag + strlen(TAG_PREFIX));
        quote(q, sizeof(q), shorthand, strlen(shorthand));
    } else {
        quote(q, sizeof(q), tag, strlen(tag));
    }
    return error_at(l, CV_EPARSE, mark, "unsupported tag %s for %s", q, yaml_kind_name(kind));
}

/* Creates a node at |mark|, counted against the node limit. */
static int new_node(struct loader *l, enum yaml_kind kind, yaml_mark_t mark, struct yaml_node **out)
{
    struct yaml_node *n;

    if (++l->nodes > l->max_nodes)
        return error_at(l, CV_ELIMIT, mark, "too many nodes (the limit is %lu)", l->max_nodes);
    n = arena_alloc(l->doc, sizeof(*n));
    if (n == NULL)
        return error_at(l, CV_ENOMEM, mark, "out of memory");
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->line = (unsigned)mark.line + 1;
    n->col = (unsigned)mark.column + 1;
    n->file = l->doc->name;
    *out = n;
    return 0;
}

/* Attaches a finished node to the open collection, or makes it the root. */
static int attach(struct loader *l, struct yaml_node *n, yaml_mark_t mark)
{
    struct level *lv;

    if (l->depth == 0) {
        l->doc->root = n;
        return 0;
    }
    lv = &l->stack[l->depth - 1];
    if (lv->count == lv->cap) {
        size_t cap = lv->cap == 0 ? 8 : lv->cap * 2;
        struct yaml_node **items = mem_realloc(lv->items, cap * sizeof(*items));

        if (items == NULL)
            return error_at(l, CV_ENOMEM, mark, "out of memory");
        lv->items = items;
        lv->cap = cap;
    }
    lv->items[lv->count++] = n;
    return 0;
}

/* True when the next child of the innermost open collection is a mapping key. */
static bool at_key(const struct loader *l)
{
    const struct level *lv;

    if (l->depth == 0)
        return false;
    lv = &l->stack[l->depth - 1];
    return lv->node->kind == YAML_KIND_MAPPING && lv->count % 2 == 0;
}

static int open_collection(struct loader *l, enum yaml_kind kind, const yaml_event_t *ev)
{
    const yaml_char_t *anchor;
    const yaml_char_t *tag;
    struct yaml_node *n;
    bool as_string;
    bool as_null;
    int rv;

    if (kind == YAML_KIND_SEQUENCE) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    } else {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    }
    if (anchor != NULL)
        return error_at(l, CV_EPARSE, ev->start_mark, "anchors and aliases are not allowed");
    if (at_key(l))
        return error_at(l, CV_EPARSE, ev->start_mark, "a mapping key must be a scalar, not %s",
                        yaml_kind_name(kind));
    rv = check_tag(l, tag, kind, ev->start_mark, &as_string, &as_null);
    if (rv < 0)
        return rv;
    if (l->depth >= l->max_depth)
        return error_at(l, CV_ELIMIT, ev->start_mark, "nesting deeper than %u levels",
                        l->max_depth);
    rv = new_node(l, kind, ev->start_mark, &n);
    if (rv < 0)
        return rv;
    l->stack[l->depth].node = n;
    l->stack[l->depth].items = NULL;
    l->stack[l->depth].count = 0;
    l->stack[l->depth].cap = 0;
    l->depth++;
    return 0;
}

static int key_cmp(const struct yaml_node *a, const struct yaml_node *b)
{
    size_t n = a->u.scalar.len < b->u.scalar.len ? a->u.scalar.len : b->u.scalar.len;
    int c = memcmp(a->u.scalar.text, b->u.scalar.text, n);

    if (c != 0)
        return c;
    return (a->u.scalar.len > b->u.scalar.len) - (a->u.scalar.len < b->u.scalar.len);
}

static int pair_ptr_cmp(const void *x, const void *y)
{
    const struct yaml_pair *a = *(struct yaml_pair *const *)x;
    const struct yaml_pair *b = *(struct yaml_pair *const *)y;
    int c = key_cmp(a->key, b->key);

    if (c != 0)
        return c;
    return (a > b) - (a < b); /* equal keys in file order */
}

/*
 * Sorts the pairs of |m| by key and rejects duplicates. The error names the first duplicate in file
 * order and the line of the key it repeats.
 */
static int index_mapping(struct loader *l, struct yaml_node *m)
{
    struct yaml_pair **sorted = m->u.map.sorted;
    size_t count = m->u.map.count;
    const struct yaml_pair *dup = NULL;
    const struct yaml_pair *orig = NULL;
    char q[80];
    yaml_mark_t mark;

    for (size_t i = 0; i < count; i++)
        sorted[i] = &m->u.map.pairs[i];
    qsort(sorted, count, sizeof(*sorted), pair_ptr_cmp);
    /* In a run of equal keys, sorted file order puts the original first and its first repeat next. */
    for (size_t i = 1; i < count; i++) {
        if (key_cmp(sorted[i - 1]->key, sorted[i]->key) != 0)
            continue;
        if (i >= 2 && key_cmp(sorted[i - 2]->key, sorted[i]->key) == 0)
            continue;
        if (dup == NULL || sorted[i] < dup) {
            dup = sorted[i];
            orig = sorted[i - 1];
        }
    }
    if (dup == NULL)
        return 0;
    quote(q, sizeof(q), dup->key->u.scalar.text, dup->key->u.scalar.len);
    memset(&mark, 0, sizeof(mark));
    mark.line = dup->key->line - 1;
    mark.column = dup->key->col - 1;
    return error_at(l, CV_EPARSE, mark, "duplicate key %s (first at line %u)", q, orig->key->line);
}

static int close_collection(struct loader *l, yaml_mark_t mark)
{
    struct level *lv = &l->stack[l->depth - 1];
    struct yaml_node *n = lv->node;
    int rv = 0;

    if (n->kind == YAML_KIND_SEQUENCE) {
        n->u.seq.count = lv->count;
        if (lv->count > 0) {
            n->u.seq.items = arena_alloc(l->doc, lv->count * sizeof(*n->u.seq.items));
            if (n->u.seq.items == NULL)
                rv = error_at(l, CV_ENOMEM, mark, "out of memory");
            else
                memcpy(n->u.seq.items, lv->items, lv->count * sizeof(*n->u.seq.items));
        }
    } else {
        size_t pairs = lv->count / 2; /* libyaml always delivers a value for each key */

        n->u.map.count = pairs;
        if (pairs > 0) {
            n->u.map.pairs = arena_alloc(l->doc, pairs * sizeof(*n->u.map.pairs));
            n->u.map.sorted = arena_alloc(l->doc, pairs * sizeof(*n->u.map.sorted));
            if (n->u.map.pairs == NULL || n->u.map.sorted == NULL) {
                rv = error_at(l, CV_ENOMEM, mark, "out of memory");
            } else {
                for (size_t i = 0; i < pairs; i++) {
                    n->u.map.pairs[i].key = lv->items[2 * i];
                    n->u.map.pairs[i].value = lv->items[2 * i + 1];
                }
                rv = index_mapping(l, n);
            }
        }
    }
    mem_free(lv->items);
    lv->items = NULL;
    l->depth--;
    if (rv < 0)
        return rv;
    return attach(l, n, mark);
}

static int add_scalar(struct loader *l, const yaml_event_t *ev)
{
    struct yaml_node *n;
    bool as_string;
    bool as_null;
    int rv;

    if (ev->data.scalar.anchor != NULL)
        return error_at(l, CV_EPARSE, ev->start_mark, "anchors and aliases are not allowed");
    rv = check_tag(l, ev->data.scalar.tag, YAML_KIND_SCALAR, ev->start_mark, &as_string, &as_null);
    if (rv < 0)
        return rv;
    rv = new_node(l, YAML_KIND_SCALAR, ev->start_mark, &n);
    if (rv < 0)
        return rv;
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !as_string;
    n->null_tag = as_null;
    n->u.scalar.len = ev->data.scalar.length;
    n->u.scalar.text = arena_strndup(l->doc, (const char *)ev->data.scalar.value,
                                     ev->data.scalar.length);
    if (n->u.scalar.text == NULL)
        return error_at(l, CV_ENOMEM, ev->start_mark, "out of memory");
    return attach(l, n, ev->start_mark);
}

/* Handles one event. Returns 1 at the end of the stream, 0 to go on, or a negative code. */
static int on_event(struct loader *l, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_STREAM_START_EVENT:
    case YAML_DOCUMENT_END_EVENT:
    case YAML_NO_EVENT:
        return 0;
    case YAML_STREAM_END_EVENT:
        return 1;
    case YAML_DOCUMENT_START_EVENT:
        if (++l->documents > 1)
            return error_at(l, CV_EPARSE, ev->start_mark,
                            "only one YAML document is allowed (found a second \"---\")");
        return 0;
    case YAML_ALIAS_EVENT:
        return error_at(l, CV_EPARSE, ev->start_mark, "anchors and aliases are not allowed");
    case YAML_SCALAR_EVENT:
        return add_scalar(l, ev);
    case YAML_SEQUENCE_START_EVENT:
        return open_collection(l, YAML_KIND_SEQUENCE, ev);
    case YAML_MAPPING_START_EVENT:
        return open_collection(l, YAML_KIND_MAPPING, ev);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        return close_collection(l, ev->start_mark);
    }
    return 0;
}

static void init_limits(struct loader *l, const struct cv_limits *lim)
{
    struct cv_limits defaults;

    if (lim == NULL) {
        limits_init(&defaults);
        lim = &defaults;
    }
    l->max_depth = lim->config_max_depth;
    l->max_nodes = lim->config_max_nodes;
}

static size_t max_bytes(const struct cv_limits *lim)
{
    struct cv_limits defaults;

    if (lim == NULL) {
        limits_init(&defaults);
        return defaults.config_max_bytes;
    }
    return lim->config_max_bytes;
}

int yaml_load_string(const char *p, size_t n, const char *name, const struct cv_limits *lim,
                     struct yaml_doc **out, struct yaml_error *err)
{
    struct loader l;
    yaml_parser_t parser;
    char size_text[32];
    int rv = 0;

    *out = NULL;
    if (n > max_bytes(lim)) {
        config_format_size(max_bytes(lim), size_text, sizeof(size_text));
        set_msg(err, "%s: larger than the %s limit for configuration files", name, size_text);
        return CV_ELIMIT;
    }
    memset(&l, 0, sizeof(l));
    init_limits(&l, lim);
    l.name = name;
    l.input = p;
    l.input_len = n;
    l.err = err;
    l.doc = mem_calloc(sizeof(*l.doc));
    if (l.doc == NULL)
        goto fail_nomem;
    l.doc->name = arena_strndup(l.doc, name, strlen(name));
    if (l.doc->name == NULL)
        goto fail_nomem_doc;
    l.stack = mem_calloc((l.max_depth + 1) * sizeof(*l.stack));
    if (l.stack == NULL)
        goto fail_nomem_doc;
    if (yaml_parser_initialize(&parser) == 0)
        goto fail_nomem_stack;
    yaml_parser_set_input_string(&parser, (const unsigned char *)p, n);
    for (;;) {
        yaml_event_t ev;

        if (yaml_parser_parse(&parser, &ev) == 0) {
            rv = parser_error(&l, &parser);
            break;
        }
        rv = on_event(&l, &ev);
        yaml_event_delete(&ev);
        if (rv != 0)
            break;
    }
    yaml_parser_delete(&parser);
    while (l.depth > 0) {
        mem_free(l.stack[l.depth - 1].items);
        l.depth--;
    }
    mem_free(l.stack);
    if (rv < 0) {
        yaml_doc_free(l.doc);
        return rv;
    }
    *out = l.doc;
    return 0;

fail_nomem_stack:
    mem_free(l.stack);
fail_nomem_doc:
    yaml_doc_free(l.doc);
fail_nomem:
    set_msg(err, "%s: out of memory", name);
    return CV_ENOMEM;
}

int yaml_load_file(const char *path, const struct cv_limits *lim, struct yaml_doc **out,
                   struct yaml_error *err)
{
    size_t limit = max_bytes(lim);
    size_t len = 0;
    char *data;
    char size_text[32];
    int fd;
    int rv;

    *out = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rv = -errno;
        set_msg(err, "%s: cannot open: %s", path, cv_strerror(rv));
        return rv;
    }
    /* Read at most one byte past the limit, so FIFOs and /dev/stdin are bounded too. */
    data = mem_alloc(limit + 1);
    if (data == NULL) {
        close(fd);
        set_msg(err, "%s: out of memory", path);
        return CV_ENOMEM;
    }
    while (len <= limit) {
        ssize_t k = read(fd, data + len, limit + 1 - len);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rv = -errno;
            set_msg(err, "%s: cannot read: %s", path, cv_strerror(rv));
            close(fd);
            mem_free(data);
            return rv;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    if (len > limit) {
        config_format_size(limit, size_text, sizeof(size_text));
        set_msg(err, "%s: larger than the %s limit for configuration files", path, size_text);
        mem_free(data);
        return CV_ELIMIT;
    }
    rv = yaml_load_string(data, len, path, lim, out, err);
    mem_free(data);
    return rv;
}

/* ---- nodes -------------------------------------------------------------------------------- */

enum yaml_kind yaml_node_kind(const struct yaml_node *n)
{
    return n->kind;
}

const char *yaml_kind_name(enum yaml_kind kind)
{
    switch (kind) {
    case YAML_KIND_SCALAR:
        return "a string";
    case YAML_KIND_SEQUENCE:
        return "a list";
    case YAML_KIND_MAPPING:
        return "a mapping";
    }
    return "a node";
}

const char *yaml_node_file(const struct yaml_node *n)
{
    return n->file;
}

unsigned yaml_node_line(const struct yaml_node *n)
{
    return n->line;
}

unsigned yaml_node_col(const struct yaml_node *n)
{
    return n->col;
}

const char *yaml_scalar(const struct yaml_node *n, size_t *len)
{
    if (n == NULL || n->kind != YAML_KIND_SCALAR)
        return NULL;
    if (len != NULL)
        *len = n->u.scalar.len;
    return n->u.scalar.text;
}

bool yaml_scalar_plain(const struct yaml_node *n)
{
    return n != NULL && n->kind == YAML_KIND_SCALAR && n->plain;
}

bool yaml_is_null(const struct yaml_node *n)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};

    if (n == NULL)
        return true;
    if (n->kind != YAML_KIND_SCALAR)
        return false;
    if (n->null_tag)
        return true;
    if (!n->plain)
        return false;
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        if (strcmp(n->u.scalar.text, nulls[i]) == 0 && strlen(nulls[i]) == n->u.scalar.len)
            return true;
    }
    return false;
}

size_t yaml_seq_count(const struct yaml_node *n)
{
    if (n == NULL || n->kind != YAML_KIND_SEQUENCE)
        return 0;
    return n->u.seq.count;
}

const struct yaml_node *yaml_seq_at(const struct yaml_node *n, size_t i)
{
    if (i >= yaml_seq_count(n))
        return NULL;
    return n->u.seq.items[i];
}

size_t yaml_map_count(const struct yaml_node *n)
{
    if (n == NULL || n->kind != YAML_KIND_MAPPING)
        return 0;
    return n->u.map.count;
}

const struct yaml_node *yaml_map_key(const struct yaml_node *n, size_t i)
{
    if (i >= yaml_map_count(n))
        return NULL;
    return n->u.map.pairs[i].key;
}

const struct yaml_node *yaml_map_value(const struct yaml_node *n, size_t i)
{
    if (i >= yaml_map_count(n))
        return NULL;
    return n->u.map.pairs[i].value;
}

const struct yaml_node *yaml_map_get(const struct yaml_node *n, const char *key)
{
    size_t lo = 0;
    size_t hi = yaml_map_count(n);
    size_t klen = strlen(key);

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct yaml_node *k = n->u.map.sorted[mid]->key;
        size_t m = k->u.scalar.len < klen ? k->u.scalar.len : klen;
        int c = memcmp(k->u.scalar.text, key, m);

        if (c == 0)
            c = (k->u.scalar.len > klen) - (k->u.scalar.len < klen);
        if (c == 0)
            return n->u.map.sorted[mid]->value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- located errors and typed getters ----------------------------------------------------- */

int yaml_errorf(struct yaml_error *err, const struct yaml_node *n, const char *path,
                const char *fmt, ...)
{
    char text[YAML_ERROR_MAX];
    const char *sep = (path != NULL && path[0] != '\0') ? ": " : "";
    va_list ap;

    if (path == NULL)
        path = "";
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n != NULL)
        set_msg(err, "%s:%u:%u: %s%s%s", n->file, n->line, n->col, path, sep, text);
    else
        set_msg(err, "%s%s%s", path, sep, text);
    return CV_ECONFIG;
}

int yaml_expect(const struct yaml_node *n, const char *path, enum yaml_kind kind,
                struct yaml_error *err)
{
    if (yaml_is_null(n))
        return CV_ENOTFOUND;
    if (n->kind != kind)
        return yaml_errorf(err, n, path, "expected %s, found %s", yaml_kind_name(kind),
                           yaml_kind_name(n->kind));
    return 0;
}

/* The text of a non-null scalar without NUL bytes: 0, CV_ENOTFOUND or CV_ECONFIG. */
static int scalar_text(const struct yaml_node *n, const char *path, const char **out,
                       struct yaml_error *err)
{
    int rv = yaml_expect(n, path, YAML_KIND_SCALAR, err);

    if (rv < 0)
        return rv;
    if (strlen(n->u.scalar.text) != n->u.scalar.len)
        return yaml_errorf(err, n, path, "NUL characters are not allowed");
    *out = n->u.scalar.text;
    return 0;
}

int yaml_as_string(const struct yaml_node *n, const char *path, const char **out,
                   struct yaml_error *err)
{
    return scalar_text(n, path, out, err);
}

int yaml_as_bool(const struct yaml_node *n, const char *path, bool *out, struct yaml_error *err)
{
    const char *s;
    const char *why;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_parse_bool(s, out, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    return 0;
}

int yaml_as_int(const struct yaml_node *n, const char *path, int64_t min, int64_t max,
                int64_t *out, struct yaml_error *err)
{
    const char *s;
    const char *why;
    int64_t v;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_parse_int(s, INT64_MIN, INT64_MAX, &v, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    if (v < min || v > max)
        return yaml_errorf(err, n, path, "must be between %lld and %lld", (long long)min,
                           (long long)max);
    *out = v;
    return 0;
}

/* "must be between A and B" / "at least A" / "at most B", with |fmt_value| writing the bounds. */
static int range_error(struct yaml_error *err, const struct yaml_node *n, const char *path,
                       uint64_t min, uint64_t max,
                       size_t (*fmt_value)(uint64_t v, char *out, size_t cap))
{
    char a[32];
    char b[32];

    fmt_value(min, a, sizeof(a));
    fmt_value(max, b, sizeof(b));
    if (max == UINT64_MAX)
        return yaml_errorf(err, n, path, "must be at least %s", a);
    if (min == 0)
        return yaml_errorf(err, n, path, "must be at most %s", b);
    return yaml_errorf(err, n, path, "must be between %s and %s", a, b);
}

int yaml_as_duration(const struct yaml_node *n, const char *path, unsigned flags, uint64_t min_ms,
                     uint64_t max_ms, uint64_t *out, struct yaml_error *err)
{
    const char *s;
    const char *why;
    uint64_t v;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_parse_duration(s, flags, &v, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    if (v < min_ms || v > max_ms)
        return range_error(err, n, path, min_ms, max_ms, config_format_duration);
    *out = v;
    return 0;
}

int yaml_as_size(const struct yaml_node *n, const char *path, uint64_t min, uint64_t max,
                 uint64_t *out, struct yaml_error *err)
{
    const char *s;
    const char *why;
    uint64_t v;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_parse_size(s, &v, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    if (v < min || v > max)
        return range_error(err, n, path, min, max, config_format_size);
    *out = v;
    return 0;
}

int yaml_as_addr(const struct yaml_node *n, const char *path, unsigned flags,
                 struct config_addr *out, struct yaml_error *err)
{
    const char *s;
    const char *why;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_parse_addr(s, flags, out, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    return 0;
}

int yaml_as_path(const struct yaml_node *n, const char *path, unsigned flags, const char **out,
                 struct yaml_error *err)
{
    const char *s;
    const char *why;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (config_check_path(s, flags, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    *out = s;
    return 0;
}

int yaml_as_hostname(const struct yaml_node *n, const char *path, char *out,
                     struct yaml_error *err)
{
    const char *s;
    const char *why;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (hostname_normalize(s, n->u.scalar.len, out, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    return 0;
}

int yaml_as_pattern(const struct yaml_node *n, const char *path, struct hostname_pattern *out,
                    struct yaml_error *err)
{
    const char *s;
    const char *why;
    int rv = scalar_text(n, path, &s, err);

    if (rv < 0)
        return rv;
    if (hostname_pattern_parse(s, n->u.scalar.len, out, &why) < 0)
        return yaml_errorf(err, n, path, "%s", why);
    return 0;
}
