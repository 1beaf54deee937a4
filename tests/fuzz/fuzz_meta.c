/*
 * fuzz_meta.c - libFuzzer target for the metadata block codec (common/meta.c).
 *
 * The input is one block. When meta_decode accepts it, the block is rebuilt with the builder
 * (meta_begin/meta_add/meta_end), which must give back the input octets exactly (the encoding is
 * canonical), the rebuilt block must decode to the same fields, and meta_get must find every name.
 * A refusal must be CV_EPROTO or CV_ELIMIT with a reason. Any violation aborts; the buffer is freed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "meta.h"

#define FUZZ_MAX_SIZE 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct meta m1, m2;

static void check_same(const struct meta *a, const struct meta *b)
{
    if (a->type != b->type || a->count != b->count)
        abort();
    for (unsigned i = 0; i < a->count; i++) {
        const struct meta_field *x = &a->fields[i], *y = &b->fields[i];

        if (x->name_len != y->name_len || x->value_len != y->value_len ||
            memcmp(x->name, y->name, x->name_len) != 0 ||
            memcmp(x->value, y->value, x->value_len) != 0)
            abort();
    }
}

static void check_get(const struct meta *m)
{
    char name[META_MAX_NAME + 1];

    for (unsigned i = 0; i < m->count; i++) {
        const struct meta_field *f;

        memcpy(name, m->fields[i].name, m->fields[i].name_len);
        name[m->fields[i].name_len] = '\0';
        f = meta_get(m, name);
        /* The first field of that name (case-insensitively): at or before i, same length. */
        if (f == NULL || f > &m->fields[i] || f->name_len != m->fields[i].name_len)
            abort();
    }
    if (meta_first_regular(m) > m->count)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf b;
    const char *why = NULL;
    int rv = meta_decode(&m1, data, size, FUZZ_MAX_SIZE, META_MAX_FIELDS, &why);
    int start;

    if (rv < 0) {
        if ((rv != CV_EPROTO && rv != CV_ELIMIT) || why == NULL)
            abort();
        return 0;
    }
    if (rv != 0)
        abort();
    check_get(&m1);
    buf_init(&b, FUZZ_MAX_SIZE);
    start = meta_begin(&b, m1.type);
    if (start != 0)
        abort();
    for (unsigned i = 0; i < m1.count; i++) {
        if (meta_add(&b, m1.fields[i].name, m1.fields[i].name_len, m1.fields[i].value,
                     m1.fields[i].value_len) != 0)
            abort();
    }
    if (meta_end(&b, 0) != 0)
        abort();
    if (buf_len(&b) != size || memcmp(b.pos, data, size) != 0)
        abort();
    if (meta_decode(&m2, b.pos, buf_len(&b), FUZZ_MAX_SIZE, META_MAX_FIELDS, NULL) != 0)
        abort();
    check_same(&m1, &m2);
    buf_cleanup(&b);
    return 0;
}
