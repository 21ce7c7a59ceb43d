/* Unit tests for the socket helpers: listen-address strings, unix listeners
 * (stale socket replaced, live one and other files refused), connects and
 * address formatting, on real sockets. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"
#include "suites.h"

START_TEST(test_net_parse_listen_good)
{
    struct net_listen_spec sp;
    char err[128];

    ck_assert_int_eq(net_parse_listen("127.0.0.1:3307", &sp, err, sizeof(err)), PMX_OK);
    ck_assert(!sp.unix_socket);
    ck_assert_str_eq(sp.host, "127.0.0.1");
    ck_assert_int_eq(sp.port, 3307);
    ck_assert_int_eq(net_parse_listen("[::1]:6380", &sp, err, sizeof(err)), PMX_OK);
    ck_assert_str_eq(sp.host, "::1");
    ck_assert_int_eq(sp.port, 6380);
    ck_assert_int_eq(net_parse_listen("localhost:65535", &sp, err, sizeof(err)), PMX_OK);
    ck_assert_str_eq(sp.host, "localhost");
    ck_assert_int_eq(net_parse_listen("unix:/run/proximux/mysql.sock", &sp, err, sizeof(err)), PMX_OK);
    ck_assert(sp.unix_socket);
    ck_assert_str_eq(sp.path, "/run/proximux/mysql.sock");
}
END_TEST

START_TEST(test_net_parse_listen_bad)
{
    static const struct {
        const char *in;
        const char *err;
    } bad[] = {
        { "127.0.0.1", "missing port" },
        { "127.0.0.1:", "is not a port" },
        { "127.0.0.1:0", "is not a port" },
        { "127.0.0.1:65536", "is not a port" },
        { "127.0.0.1:80x", "is not a port" },
        { "127.0.0.1:-1", "is not a port" },
        { ":80", "missing host" },
        { "::1:80", "needs brackets" },
        { "[::1]80", "expected [IPV6]:PORT" },
        { "[::1", "expected [IPV6]:PORT" },
        { "[]:80", "missing host" },
        { "unix:", "missing socket path" },
    };
    struct net_listen_spec sp;
    char err[128];

    for (size_t i = 0; i < PMX_ARRAY_LEN(bad); i++) {
        ck_assert_msg(net_parse_listen(bad[i].in, &sp, err, sizeof(err)) == PMX_ERR, "%s accepted", bad[i].in);
        ck_assert_msg(strstr(err, bad[i].err) != NULL, "%s: \"%s\"", bad[i].in, err);
    }
    char longpath[200];
    memset(longpath, 'p', sizeof(longpath));
    memcpy(longpath, "unix:/", 6);
    longpath[sizeof(longpath) - 1] = '\0';
    ck_assert_int_eq(net_parse_listen(longpath, &sp, err, sizeof(err)), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "longer than"));
}
END_TEST

START_TEST(test_net_unix_listener)
{
    char dir[] = "/tmp/pmx-test-net-XXXXXX";
    char path[64], err[256], name[NET_ADDR_MAX];
    struct stat st;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/s.sock", dir);

    int fd = net_listen_unix(path, 0660, 16, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0660);
    /* A live socket is not taken over. */
    ck_assert_int_eq(net_listen_unix(path, 0660, 16, err, sizeof(err)), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "another process is listening"));

    /* A client connects; its peer and the listener format as unix. */
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
    int c = net_connect((const struct sockaddr *)&sun, sizeof(sun), false);
    ck_assert_int_ge(c, 0);
    net_format_addr((const struct sockaddr *)&sun, sizeof(sun), name, sizeof(name));
    ck_assert_int_eq(strncmp(name, "unix:/tmp/pmx-test-net-", 23), 0);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int a = accept(fd, (struct sockaddr *)&peer, &plen);
    ck_assert_int_ge(a, 0);
    net_format_addr((const struct sockaddr *)&peer, plen, name, sizeof(name));
    ck_assert_str_eq(name, "unix");
    close(a);
    close(c);

    /* Closed without unlinking: stale, replaced. */
    close(fd);
    fd = net_listen_unix(path, 0600, 16, err, sizeof(err));
    ck_assert_msg(fd >= 0, "stale socket not replaced: %s", err);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    close(fd);
    unlink(path);

    /* A regular file is never removed. */
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(net_listen_unix(path, 0660, 16, err, sizeof(err)), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "is not a socket"));
    ck_assert_int_eq(stat(path, &st), 0);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_net_tcp_listen_connect_and_format)
{
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    char err[256], name[NET_ADDR_MAX];

    int fd = net_listen_tcp((const struct sockaddr *)&in, sizeof(in), false, 16, err, sizeof(err));
    ck_assert_msg(fd >= 0, "%s", err);
    socklen_t len = sizeof(in);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&in, &len), 0);
    net_format_addr((const struct sockaddr *)&in, len, name, sizeof(name));
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", ntohs(in.sin_port));
    ck_assert_str_eq(name, want);
    /* The same address again: a bind error naming it. */
    ck_assert_int_eq(net_listen_tcp((const struct sockaddr *)&in, len, false, 16, err, sizeof(err)), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, want));

    int c = net_connect((const struct sockaddr *)&in, len, true);
    ck_assert_int_ge(c, 0);
    int a;
    for (int i = 0; (a = accept(fd, NULL, NULL)) < 0 && i < 1000; i++)
        usleep(1000);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(net_connect_result(c), PMX_OK);
    close(a);
    close(c);
    close(fd);

    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                                .sin6_port = htons(6380) };
    net_format_addr((const struct sockaddr *)&in6, sizeof(in6), name, sizeof(name));
    ck_assert_str_eq(name, "[::1]:6380");
}
END_TEST

Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_net_parse_listen_good);
    tcase_add_test(tc, test_net_parse_listen_bad);
    tcase_add_test(tc, test_net_unix_listener);
    tcase_add_test(tc, test_net_tcp_listen_connect_and_format);
    suite_add_tcase(s, tc);
    return s;
}
