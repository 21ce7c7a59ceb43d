/* Unit tests for the systemd notification writer: every message's exact
 * bytes, STATUS= kept to one line and cut to fit, $NOTIFY_SOCKET parsing,
 * and the datagrams a real socket receives (the watchdog's from a running
 * reactor). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"
#include "reactor.h"
#include "suites.h"

static void format_is(enum notify_msg msg, const char *text, unsigned long long number, const char *want)
{
    char out[NOTIFY_MSG_MAX];
    int n = notify_format(out, sizeof(out), msg, text, number);

    ck_assert_int_eq(n, (int)strlen(want));
    ck_assert_str_eq(out, want);
}

START_TEST(test_notify_format_messages)
{
    format_is(NOTIFY_READY, NULL, 0, "READY=1");
    format_is(NOTIFY_RELOADING, NULL, 1234567890123ULL, "RELOADING=1\nMONOTONIC_USEC=1234567890123");
    format_is(NOTIFY_STOPPING, NULL, 0, "STOPPING=1");
    format_is(NOTIFY_WATCHDOG, NULL, 0, "WATCHDOG=1");
    format_is(NOTIFY_MAINPID, NULL, 4242, "MAINPID=4242");
    format_is(NOTIFY_STATUS, "2 services, 17 clients", 0, "STATUS=2 services, 17 clients");
    format_is(NOTIFY_STATUS, NULL, 0, "STATUS=");
}
END_TEST

START_TEST(test_notify_format_status_one_line)
{
    /* A line break would start a variable systemd reads as a command. */
    format_is(NOTIFY_STATUS, "up\nREADY=1\r\nx", 0, "STATUS=up READY=1  x");
}
END_TEST

START_TEST(test_notify_format_limits)
{
    char out[16];
    char big[NOTIFY_MSG_MAX * 2];

    /* A STATUS= text is cut to fit. */
    ck_assert_int_eq(notify_format(out, sizeof(out), NOTIFY_STATUS, "abcdefghijklmnop", 0), 15);
    ck_assert_str_eq(out, "STATUS=abcdefgh");
    ck_assert_int_eq(notify_format(out, 8, NOTIFY_STATUS, "abc", 0), 7);
    ck_assert_str_eq(out, "STATUS=");
    ck_assert_int_eq(notify_format(out, 7, NOTIFY_STATUS, "abc", 0), PMX_ERR);
    /* Other messages are whole or refused. */
    ck_assert_int_eq(notify_format(out, 7, NOTIFY_READY, NULL, 0), PMX_ERR);
    ck_assert_int_eq(notify_format(out, 8, NOTIFY_READY, NULL, 0), 7);
    ck_assert_int_eq(notify_format(out, sizeof(out), NOTIFY_RELOADING, NULL, 1), PMX_ERR);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char msg[NOTIFY_MSG_MAX];
    ck_assert_int_eq(notify_format(msg, sizeof(msg), NOTIFY_STATUS, big, 0), NOTIFY_MSG_MAX - 1);
}
END_TEST

START_TEST(test_notify_parse_address)
{
    struct sockaddr_un a;
    socklen_t len;
    char longpath[200];

    ck_assert_int_eq(notify_parse_address("/run/systemd/notify", &a, &len), PMX_OK);
    ck_assert_str_eq(a.sun_path, "/run/systemd/notify");
    ck_assert_int_eq(len, offsetof(struct sockaddr_un, sun_path) + strlen("/run/systemd/notify") + 1);
    ck_assert_int_eq(notify_parse_address("@abstract/name", &a, &len), PMX_OK);
    ck_assert_int_eq(a.sun_path[0], '\0');
    ck_assert(memcmp(a.sun_path + 1, "abstract/name", 13) == 0);
    ck_assert_int_eq(len, offsetof(struct sockaddr_un, sun_path) + 14);
    ck_assert_int_eq(notify_parse_address("", &a, &len), PMX_ERR);
    ck_assert_int_eq(notify_parse_address(NULL, &a, &len), PMX_ERR);
    ck_assert_int_eq(notify_parse_address("@", &a, &len), PMX_ERR);
    ck_assert_int_eq(notify_parse_address("relative/path", &a, &len), PMX_ERR);
    memset(longpath, 'a', sizeof(longpath) - 1);
    longpath[0] = '/';
    longpath[sizeof(longpath) - 1] = '\0';
    ck_assert_int_eq(notify_parse_address(longpath, &a, &len), PMX_ERR);
    /* sun_path's 108 bytes: a path keeps its NUL, an abstract name needs none. */
    longpath[107] = '\0';
    ck_assert_int_eq(notify_parse_address(longpath, &a, &len), PMX_OK);
    longpath[0] = '@';
    longpath[107] = 'a';
    longpath[108] = '\0';
    ck_assert_int_eq(notify_parse_address(longpath, &a, &len), PMX_OK);
    longpath[108] = 'a';
    longpath[109] = '\0';
    ck_assert_int_eq(notify_parse_address(longpath, &a, &len), PMX_ERR);
}
END_TEST

/* A datagram socket in the abstract namespace, named in $NOTIFY_SOCKET. */
static int receiver(void)
{
    struct sockaddr_un a;
    char name[64];
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    snprintf(name, sizeof(name), "@pmx-test-notify-%d", (int)getpid());
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path + 1, name + 1, strlen(name) - 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name))), 0);
    struct timeval tv = { .tv_sec = 2 };
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    ck_assert_int_eq(setenv("NOTIFY_SOCKET", name, 1), 0);
    return fd;
}

static void receive_is(int fd, const char *want)
{
    char buf[NOTIFY_MSG_MAX + 1];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_str_eq(buf, want);
}

START_TEST(test_notify_sends)
{
    int fd = receiver();
    char buf[64];

    unsetenv("WATCHDOG_USEC");
    notify_init(NULL);
    notify_ready("1 service, 0 clients");
    receive_is(fd, "READY=1\nSTATUS=1 service, 0 clients");
    notify_status("1 service, 0 clients");      /* unchanged: not sent */
    notify_status("1 service, 3 clients");
    receive_is(fd, "STATUS=1 service, 3 clients");
    notify_reloading();
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    ck_assert_msg(strncmp(buf, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0 && atoll(buf + 27) > 0, "%s", buf);
    notify_ready(NULL);
    receive_is(fd, "READY=1");
    notify_mainpid(77);
    receive_is(fd, "MAINPID=77");
    notify_stopping();
    notify_stopping();                          /* once only */
    notify_status("stopping");
    receive_is(fd, "STOPPING=1");
    receive_is(fd, "STATUS=stopping");
    notify_close();
    notify_ready(NULL);                         /* closed: nothing */
    ck_assert_int_eq(recv(fd, buf, sizeof(buf), MSG_DONTWAIT), -1);
    close(fd);
}
END_TEST

START_TEST(test_notify_without_socket)
{
    unsetenv("NOTIFY_SOCKET");
    notify_init(NULL);
    notify_ready("x");
    notify_reloading();
    notify_stopping();
    notify_mainpid(1);
    notify_close();
}
END_TEST

static long stop_loop(struct reactor *r, long long id, void *data)
{
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

static int watchdog_count(const char *wpid)
{
    int fd = receiver();
    struct reactor *r = reactor_create(64);
    char buf[64];
    int n = 0;

    ck_assert_ptr_nonnull(r);
    setenv("WATCHDOG_USEC", "40000", 1);        /* keep-alive every 20 ms */
    if (wpid != NULL)
        setenv("WATCHDOG_PID", wpid, 1);
    else
        unsetenv("WATCHDOG_PID");
    notify_init(r);
    ck_assert_int_gt(reactor_timer_add(r, 150, stop_loop, NULL), 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        if (k < 0)
            break;
        buf[k] = '\0';
        ck_assert_str_eq(buf, "WATCHDOG=1");
        n++;
    }
    notify_close();
    reactor_destroy(r);
    close(fd);
    return n;
}

START_TEST(test_notify_watchdog)
{
    char pid[32];

    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    /* 150 ms at 20 ms: one at once, then about 7; a loaded machine may run fewer. */
    int n = watchdog_count(pid);
    ck_assert_msg(n >= 2 && n <= 10, "%d keep-alives", n);
}
END_TEST

START_TEST(test_notify_watchdog_unset_pid)
{
    ck_assert_int_ge(watchdog_count(NULL), 2);
}
END_TEST

START_TEST(test_notify_watchdog_other_pid)
{
    /* The watchdog watches another process: this one stays quiet. */
    ck_assert_int_eq(watchdog_count("1"), 0);
}
END_TEST

Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_notify_format_messages);
    tcase_add_test(tc, test_notify_format_status_one_line);
    tcase_add_test(tc, test_notify_format_limits);
    tcase_add_test(tc, test_notify_parse_address);
    tcase_add_test(tc, test_notify_sends);
    tcase_add_test(tc, test_notify_without_socket);
    tcase_add_test(tc, test_notify_watchdog);
    tcase_add_test(tc, test_notify_watchdog_unset_pid);
    tcase_add_test(tc, test_notify_watchdog_other_pid);
    suite_add_tcase(s, tc);
    return s;
}
