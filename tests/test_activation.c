/* Unit tests for socket activation's parsing of LISTEN_PID, LISTEN_FDS
 * and LISTEN_FDNAMES: another process's sockets ignored, malformed values
 * and name lists that do not fit the descriptors refused. */
#include <check.h>
#include <string.h>

#include "activation.h"
#include "suites.h"

static struct activation_set set;
static char err[256];

START_TEST(test_activation_none)
{
    ck_assert_int_eq(activation_parse(NULL, NULL, NULL, 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 0);
    ck_assert_int_eq(activation_parse("100", NULL, NULL, 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 0);
    /* Meant for another process (our parent's, inherited): not ours. */
    ck_assert_int_eq(activation_parse("99", "2", "a:b", 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 0);
}
END_TEST

START_TEST(test_activation_fds_and_names)
{
    ck_assert_int_eq(activation_parse("100", "2", NULL, 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 2);
    ck_assert_str_eq(set.names[0], "");
    ck_assert_str_eq(set.names[1], "");
    ck_assert_int_eq(activation_parse("100", "3", "cache:mysql:", 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 3);
    ck_assert_str_eq(set.names[0], "cache");
    ck_assert_str_eq(set.names[1], "mysql");
    ck_assert_str_eq(set.names[2], "");
    ck_assert_int_eq(activation_parse("100", "1", "unknown", 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_str_eq(set.names[0], "unknown");
    ck_assert_int_eq(activation_parse("100", "0", "", 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq(set.nfds, 0);
}
END_TEST

START_TEST(test_activation_bad)
{
    static const struct {
        const char *pid, *fds, *names, *err;
    } bad[] = {
        { "x", "1", NULL, "LISTEN_PID" },
        { "", "1", NULL, "LISTEN_PID" },
        { "-100", "1", NULL, "LISTEN_PID" },
        { "99999999999", "1", NULL, "LISTEN_PID" },
        { "100", "", NULL, "LISTEN_FDS" },
        { "100", "1x", NULL, "LISTEN_FDS" },
        { "100", "-1", NULL, "LISTEN_FDS" },
        { "100", "65", NULL, "at most 64" },
        { "100", "2", "a", "1 names for 2 sockets" },
        { "100", "1", "a:b", "more names" },
        { "100", "1", "a:", "more names" },
        { "100", "0", "a", "more names" },
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(activation_parse(bad[i].pid, bad[i].fds, bad[i].names, 100, &set, err, sizeof(err)),
                         PMX_ERR);
        ck_assert_msg(strstr(err, bad[i].err) != NULL, "case %zu: %s", i, err);
    }
}
END_TEST

START_TEST(test_activation_long_name)
{
    char names[ACTIVATION_NAME_MAX + 8];

    memset(names, 'n', ACTIVATION_NAME_MAX - 1);
    names[ACTIVATION_NAME_MAX - 1] = '\0';
    ck_assert_int_eq(activation_parse("100", "1", names, 100, &set, err, sizeof(err)), PMX_OK);
    ck_assert_int_eq((int)strlen(set.names[0]), ACTIVATION_NAME_MAX - 1);
    names[ACTIVATION_NAME_MAX - 1] = 'n';
    names[ACTIVATION_NAME_MAX] = '\0';
    ck_assert_int_eq(activation_parse("100", "1", names, 100, &set, err, sizeof(err)), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

Suite *activation_suite(void)
{
    Suite *s = suite_create("activation");
    TCase *tc = tcase_create("parse");

    tcase_add_test(tc, test_activation_none);
    tcase_add_test(tc, test_activation_fds_and_names);
    tcase_add_test(tc, test_activation_bad);
    tcase_add_test(tc, test_activation_long_name);
    suite_add_tcase(s, tc);
    return s;
}
