/*
 * test_buf.c - the byte buffer: bounded growth, and the storage count the edge's buffer budget
 * reads (buf_held_bytes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "err.h"
#include "mem.h"

static void test_held_bytes_follow_growth_and_free(void **state)
{
    struct buf a;
    struct buf b;
    uint8_t chunk[10000];
    size_t base = buf_held_bytes();

    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    buf_init(&a, 1 << 20);
    buf_init(&b, 1 << 20);
    assert_int_equal(buf_append(&a, chunk, 100), 0);
    assert_int_equal(buf_held_bytes() - base, MEM_BLOCK); /* starts as one cached block */
    assert_int_equal(buf_append(&a, chunk, sizeof(chunk)), 0);
    assert_int_equal(buf_held_bytes() - base, (size_t)(a.end - a.base));
    assert_true(a.end - a.base >= 10100);
    assert_int_equal(buf_append(&b, chunk, sizeof(chunk)), 0);
    assert_int_equal(buf_held_bytes() - base, (size_t)(a.end - a.base) + (size_t)(b.end - b.base));
    buf_consume(&a, buf_len(&a));
    buf_release(&a); /* empty: storage given back */
    assert_int_equal(buf_held_bytes() - base, (size_t)(b.end - b.base));
    buf_cleanup(&b);
    assert_int_equal(buf_held_bytes(), base);
}

static void test_capped_buffer_refuses_and_holds_nothing_more(void **state)
{
    struct buf a;
    uint8_t chunk[5000];
    size_t base = buf_held_bytes();
    int err = 0;

    (void)state;
    memset(chunk, 'y', sizeof(chunk));
    buf_init(&a, 8192);
    assert_int_equal(buf_append(&a, chunk, sizeof(chunk)), 0);
    assert_int_equal(buf_append(&a, chunk, sizeof(chunk)), CV_EFULL);
    assert_null(buf_reserve(&a, 4000, &err));
    assert_int_equal(err, CV_EFULL);
    assert_int_equal(buf_held_bytes() - base, 8192);
    buf_cleanup(&a);
    assert_int_equal(buf_held_bytes(), base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_bytes_follow_growth_and_free),
        cmocka_unit_test(test_capped_buffer_refuses_and_holds_nothing_more),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
