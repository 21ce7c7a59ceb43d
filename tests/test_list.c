/* Unit tests for the intrusive list: order, removal while walking, an
 * element in two lists at once. */
#include <check.h>

#include "list.h"
#include "suites.h"

struct item {
    int value;
    struct list_node a;
    struct list_node b;
};

/* The values of list head (through member a or b) into out; returns the
 * count. */
static int values(struct list_node *head, bool via_b, int *out)
{
    struct list_node *n, *tmp;
    int k = 0;

    list_for_each_safe(n, tmp, head) {
        struct item *it = via_b ? list_entry(n, struct item, b) : list_entry(n, struct item, a);
        out[k++] = it->value;
    }
    return k;
}

START_TEST(test_list_order_and_remove)
{
    struct list_node head;
    struct item items[5];
    int got[8];

    list_init(&head);
    ck_assert(list_empty(&head));
    ck_assert_ptr_null(list_first(&head));
    for (int i = 0; i < 5; i++) {
        items[i].value = i;
        list_init(&items[i].a);
        ck_assert(!list_linked(&items[i].a));
    }
    list_add_tail(&head, &items[1].a);
    list_add_tail(&head, &items[2].a);
    list_add_head(&head, &items[0].a);
    list_add_tail(&head, &items[3].a);
    ck_assert_int_eq(values(&head, false, got), 4);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(got[i], i);
    ck_assert_ptr_eq(list_first(&head), &items[0].a);

    /* Removing during the walk: every even value. */
    struct list_node *n, *tmp;
    list_for_each_safe(n, tmp, &head) {
        if (list_entry(n, struct item, a)->value % 2 == 0)
            list_remove(n);
    }
    ck_assert_int_eq(values(&head, false, got), 2);
    ck_assert_int_eq(got[0], 1);
    ck_assert_int_eq(got[1], 3);
    ck_assert(!list_linked(&items[0].a));
    list_remove(&items[0].a);       /* again: harmless */
    list_remove(&items[1].a);
    list_remove(&items[3].a);
    ck_assert(list_empty(&head));
}
END_TEST

START_TEST(test_list_two_lists)
{
    struct list_node la, lb;
    struct item items[3];
    int got[4];

    list_init(&la);
    list_init(&lb);
    for (int i = 0; i < 3; i++) {
        items[i].value = 10 + i;
        list_add_tail(&la, &items[i].a);
        list_add_head(&lb, &items[i].b);
    }
    ck_assert_int_eq(values(&la, false, got), 3);
    ck_assert_int_eq(got[0], 10);
    ck_assert_int_eq(got[2], 12);
    ck_assert_int_eq(values(&lb, true, got), 3);
    ck_assert_int_eq(got[0], 12);
    ck_assert_int_eq(got[2], 10);
    list_remove(&items[1].a);
    ck_assert_int_eq(values(&la, false, got), 2);
    ck_assert_int_eq(values(&lb, true, got), 3);
}
END_TEST

Suite *list_suite(void)
{
    Suite *s = suite_create("list");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_list_order_and_remove);
    tcase_add_test(tc, test_list_two_lists);
    suite_add_tcase(s, tc);
    return s;
}
