/*
 * test_errpage.c - edge/errpage.c: which error page format a visitor's Accept value prefers
 * (PRODUCT.md section 2: JSON when the request prefers application/json), and the page itself.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buf.h"
#include "errpage.h"

static void test_wants_json_plain_lists(void **state)
{
    (void)state;
    assert_int_equal(errpage_wants_json(NULL), 0);
    assert_int_equal(errpage_wants_json("*/*"), 0);
    assert_int_equal(errpage_wants_json("application/json"), 1);
    assert_int_equal(errpage_wants_json("application/json, text/plain, */*"), 1); /* axios */
    assert_int_equal(errpage_wants_json(
                         "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                     0); /* a browser */
    assert_int_equal(errpage_wants_json("text/html, application/json"), 0);
    assert_int_equal(errpage_wants_json("application/json, text/html"), 1);
    assert_int_equal(errpage_wants_json("Application/JSON"), 1);
}

/* RFC 9110 §12.5.1: the quality value decides, not the order. */
static void test_wants_json_follows_quality_values(void **state)
{
    (void)state;
    assert_int_equal(errpage_wants_json("text/html;q=0.5, application/json"), 1);
    assert_int_equal(errpage_wants_json("text/html; q=0.9, application/json; q=1.0"), 1);
    assert_int_equal(errpage_wants_json("application/json;q=0.2, text/html"), 0);
    assert_int_equal(errpage_wants_json("application/json;q=0"), 0);
    assert_int_equal(errpage_wants_json("text/html;q=0, application/json;q=0.1"), 1);
    assert_int_equal(errpage_wants_json("*/*;q=0.1, application/json"), 1);
    /* Not application/json itself. */
    assert_int_equal(errpage_wants_json("application/jsonx"), 0);
    assert_int_equal(errpage_wants_json("application/json-seq"), 0);
}

static const void *has(const struct buf *b, const char *s)
{
    return memmem(b->pos, buf_len(b), s, strlen(s));
}

static void test_json_page_names_the_request_id(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16 * 1024);
    assert_int_equal(errpage_write(&b, 404, NULL, "0123456789abcdef", 1, 0, 0, NULL), 0);
    assert_non_null(has(&b, "\"request_id\":\"0123456789abcdef\""));
    assert_non_null(has(&b, "Content-Type: application/json\r\n"));
    buf_cleanup(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wants_json_plain_lists),
        cmocka_unit_test(test_wants_json_follows_quality_values),
        cmocka_unit_test(test_json_page_names_the_request_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
