/* Unit tests for the bounded byte buffer. */
#include <string.h>

#include "buf.h"
#include "suites.h"

START_TEST(test_buf_lazy_and_release)
{
    struct buf b;

    buf_init(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(buf_len(&b), 0);
    ck_assert_int_eq(buf_append(&b, "hello", 5), PMX_OK);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq(buf_len(&b), 5);
    ck_assert_uint_eq(b.cap, BUF_MIN_ALLOC);
    buf_release(&b);                /* not empty: kept */
    ck_assert_ptr_nonnull(b.data);
    buf_consume(&b, 5);
    ck_assert_uint_eq(b.head, 0);   /* cursors reset when drained */
    ck_assert_uint_eq(b.tail, 0);
    buf_release(&b);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_consume_keeps_order)
{
    struct buf b;

    buf_init(&b);
    ck_assert_int_eq(buf_append(&b, "abcdef", 6), PMX_OK);
    buf_consume(&b, 2);
    ck_assert_uint_eq(buf_len(&b), 4);
    ck_assert_int_eq(memcmp(buf_start(&b), "cdef", 4), 0);
    ck_assert_int_eq(buf_append(&b, "gh", 2), PMX_OK);
    ck_assert_int_eq(memcmp(buf_start(&b), "cdefgh", 6), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_buf_reserve_compacts_before_growing)
{
    struct buf b;
    char chunk[BUF_MIN_ALLOC];

    memset(chunk, 'x', sizeof(chunk));
    buf_init(&b);
    ck_assert_int_eq(buf_append(&b, chunk, BUF_MIN_ALLOC - 10), PMX_OK);
    buf_consume(&b, BUF_MIN_ALLOC - 20);          /* 10 bytes pending at the end */
    ck_assert_int_eq(buf_reserve(&b, 100), PMX_OK);
    ck_assert_uint_eq(b.cap, BUF_MIN_ALLOC);      /* compacted, not grown */
    ck_assert_uint_eq(b.head, 0);
    ck_assert_uint_eq(buf_len(&b), 10);
    ck_assert_uint_ge(buf_space(&b), 100);
    buf_free(&b);
}
END_TEST

START_TEST(test_buf_grows_and_keeps_bytes)
{
    struct buf b;
    static char big[1 << 20];

    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 31);
    buf_init(&b);
    ck_assert_int_eq(buf_append(&b, "a", 1), PMX_OK);
    ck_assert_int_eq(buf_append(&b, big, sizeof(big)), PMX_OK);
    ck_assert_uint_eq(buf_len(&b), sizeof(big) + 1);
    ck_assert_uint_ge(b.cap, sizeof(big) + 1);
    ck_assert_int_eq(buf_start(&b)[0], 'a');
    ck_assert_int_eq(memcmp(buf_start(&b) + 1, big, sizeof(big)), 0);
    buf_consume(&b, 1);
    ck_assert_int_eq(memcmp(buf_start(&b), big, sizeof(big)), 0);
    buf_free(&b);
}
END_TEST

START_TEST(test_buf_produce_after_reserve)
{
    struct buf b;

    buf_init(&b);
    ck_assert_int_eq(buf_reserve(&b, 3), PMX_OK);
    memcpy(buf_end(&b), "xyz", 3);
    buf_produce(&b, 3);
    ck_assert_uint_eq(buf_len(&b), 3);
    ck_assert_int_eq(memcmp(buf_start(&b), "xyz", 3), 0);
    ck_assert_int_eq(buf_append(&b, NULL, 0), PMX_OK);
    ck_assert_uint_eq(buf_len(&b), 3);
    buf_free(&b);
}
END_TEST

Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_buf_lazy_and_release);
    tcase_add_test(tc, test_buf_consume_keeps_order);
    tcase_add_test(tc, test_buf_reserve_compacts_before_growing);
    tcase_add_test(tc, test_buf_grows_and_keeps_bytes);
    tcase_add_test(tc, test_buf_produce_after_reserve);
    suite_add_tcase(s, tc);
    return s;
}
