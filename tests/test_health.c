/* Unit tests for target health: the UP/DOWN/MAINT state machine, and the
 * active probe against loopback servers serviced by the same reactor. */
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "health.h"
#include "reactor.h"
#include "suites.h"

/* ---- state machine ---- */

START_TEST(test_health_down_after_fail_after)
{
    struct health h;

    health_init(&h, 5);
    ck_assert_int_eq(h.state, HEALTH_UP);
    ck_assert_uint_eq(h.since, 5);
    ck_assert(health_usable(&h));
    ck_assert(!health_failure(&h, 3, "connect: Connection refused", 10));
    ck_assert(!health_failure(&h, 3, "connect: Connection refused", 11));
    ck_assert_int_eq(h.state, HEALTH_UP);
    ck_assert_int_eq(h.fails, 2);
    ck_assert_uint_eq(h.since, 5);
    ck_assert(health_failure(&h, 3, "connect: Connection refused", 12));
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert(!health_usable(&h));
    ck_assert_uint_eq(h.since, 12);
    ck_assert_str_eq(h.reason, "connect: Connection refused (3 consecutive failures)");
    /* Down already: more failures change nothing. */
    ck_assert(!health_failure(&h, 3, "reset", 13));
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert_uint_eq(h.since, 12);

    /* fail_after below 1 counts as 1; a NULL reason is "failure". */
    health_init(&h, 0);
    ck_assert(health_failure(&h, 0, NULL, 1));
    ck_assert_str_eq(h.reason, "failure (1 consecutive failure)");
}
END_TEST

START_TEST(test_health_success_resets_failures)
{
    struct health h;

    health_init(&h, 0);
    ck_assert(!health_failure(&h, 3, "reset", 1));
    ck_assert(!health_failure(&h, 3, "reset", 2));
    health_traffic_ok(&h);
    ck_assert_int_eq(h.fails, 0);
    ck_assert(!health_failure(&h, 3, "reset", 3));
    ck_assert(!health_failure(&h, 3, "reset", 4));
    ck_assert_int_eq(h.state, HEALTH_UP);
    /* check_up: a successful probe of an UP target clears failures too,
     * and a failed one counts. */
    ck_assert(!health_probe_ok(&h, 2, 5));
    ck_assert_int_eq(h.fails, 0);
    ck_assert_int_eq(h.state, HEALTH_UP);
    ck_assert(!health_failure(&h, 3, "reply timeout", 6));
    ck_assert(!health_failure(&h, 3, "reply timeout", 7));
    ck_assert(health_failure(&h, 3, "reply timeout", 8));
    ck_assert_int_eq(h.state, HEALTH_DOWN);
}
END_TEST

START_TEST(test_health_rise_after_probes)
{
    struct health h;

    health_init(&h, 0);
    ck_assert(health_failure(&h, 1, "connect timeout", 10));
    /* Traffic does not bring a DOWN target back. */
    health_traffic_ok(&h);
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert(!health_probe_ok(&h, 2, 20));
    ck_assert_int_eq(h.rises, 1);
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert_uint_eq(h.since, 10);
    ck_assert(health_probe_ok(&h, 2, 30));
    ck_assert_int_eq(h.state, HEALTH_UP);
    ck_assert_uint_eq(h.since, 30);
    ck_assert_int_eq(h.fails, 0);
    ck_assert_int_eq(h.rises, 0);
    ck_assert_str_eq(h.reason, "2 successful probes");
}
END_TEST

START_TEST(test_health_failed_probe_resets_rises)
{
    struct health h;

    health_init(&h, 0);
    ck_assert(health_failure(&h, 1, "reset", 1));
    ck_assert(!health_probe_ok(&h, 2, 2));
    ck_assert(!health_failure(&h, 1, "connect: Connection refused", 3));
    ck_assert_int_eq(h.rises, 0);
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert_uint_eq(h.since, 1);
    ck_assert(!health_probe_ok(&h, 2, 4));
    ck_assert(health_probe_ok(&h, 2, 5));
    ck_assert_int_eq(h.state, HEALTH_UP);
}
END_TEST

START_TEST(test_health_maint)
{
    struct health h;

    health_init(&h, 0);
    ck_assert(!health_failure(&h, 3, "reset", 1));
    ck_assert(health_set_maint(&h, true, 2));
    ck_assert_int_eq(h.state, HEALTH_MAINT);
    ck_assert(!health_usable(&h));
    ck_assert_uint_eq(h.since, 2);
    ck_assert_str_eq(h.reason, "marked down");
    ck_assert(!health_set_maint(&h, true, 3));
    ck_assert_uint_eq(h.since, 2);
    /* Failures and successes of any kind are ignored. */
    for (int i = 0; i < 10; i++) {
        ck_assert(!health_failure(&h, 1, "reset", 4));
        ck_assert(!health_probe_ok(&h, 1, 4));
        health_traffic_ok(&h);
    }
    ck_assert_int_eq(h.state, HEALTH_MAINT);
    ck_assert_uint_eq(h.since, 2);
    /* Marked up: UP at once, counters cleared. */
    ck_assert(health_set_maint(&h, false, 5));
    ck_assert_int_eq(h.state, HEALTH_UP);
    ck_assert(health_usable(&h));
    ck_assert_int_eq(h.fails, 0);
    ck_assert_int_eq(h.rises, 0);
    ck_assert_uint_eq(h.since, 5);
    ck_assert_str_eq(h.reason, "marked up");
    ck_assert(!health_set_maint(&h, false, 6));
    ck_assert_uint_eq(h.since, 5);

    /* From DOWN: marking up alone does not revive it; MAINT then up does. */
    ck_assert(health_failure(&h, 1, "reset", 7));
    ck_assert(!health_set_maint(&h, false, 8));
    ck_assert_int_eq(h.state, HEALTH_DOWN);
    ck_assert(health_set_maint(&h, true, 9));
    ck_assert_int_eq(h.state, HEALTH_MAINT);
    ck_assert(health_set_maint(&h, false, 10));
    ck_assert_int_eq(h.state, HEALTH_UP);
}
END_TEST

START_TEST(test_health_state_names)
{
    ck_assert_str_eq(health_state_name(HEALTH_UP), "up");
    ck_assert_str_eq(health_state_name(HEALTH_DOWN), "down");
    ck_assert_str_eq(health_state_name(HEALTH_MAINT), "maint");
}
END_TEST

/* ---- probes ---- */

/* What a test server does with an accepted connection. */
enum server_mode {
    SERVER_SILENT,              /* keeps it open, never answers */
    SERVER_CLOSE,               /* closes it at once */
    SERVER_ANSWER,              /* after request_len bytes, writes reply */
};

#define SERVER_MAX_CONNS 8

/* A loopback listener serviced by the test's reactor. */
struct server {
    struct reactor *r;
    int lfd;
    struct sockaddr_in addr;
    enum server_mode mode;
    size_t request_len;
    const char *reply;
    size_t reply_len;
    size_t split;               /* > 0: write reply[0, split) first, the rest 20 ms later */
    bool close_after_reply;
    int fds[SERVER_MAX_CONNS];
    int nfds;
    size_t received;
    int late_fd;                /* where the rest of a split reply goes */
};

/* The outcome a probe reported. */
struct outcome {
    struct reactor *r;
    int calls;
    bool ok;
    char reason[HEALTH_REASON_MAX];
    uint64_t started;
    uint64_t elapsed;
};

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    ck_assert_ptr_nonnull(d);
    for (const struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void server_forget(struct server *s, int fd)
{
    reactor_del(s->r, fd, REACTOR_READABLE | REACTOR_WRITABLE);
    close(fd);
    for (int i = 0; i < s->nfds; i++) {
        if (s->fds[i] == fd) {
            s->fds[i] = s->fds[--s->nfds];
            break;
        }
    }
}

static long server_on_late(struct reactor *r, long long id, void *data)
{
    struct server *s = data;
    size_t rest = s->reply_len - s->split;

    ck_assert_int_eq(send(s->late_fd, s->reply + s->split, rest, MSG_NOSIGNAL), (ssize_t)rest);
    return REACTOR_TIMER_DONE;
}

/* Writes the reply (small: one send) and closes if asked. */
static void server_answer(struct server *s, int fd)
{
    size_t first = s->split > 0 ? s->split : s->reply_len;

    ck_assert_int_eq(send(fd, s->reply, first, MSG_NOSIGNAL), (ssize_t)first);
    if (s->split > 0) {
        s->late_fd = fd;
        ck_assert_int_gt(reactor_timer_add(s->r, 20, server_on_late, s), 0);
    } else if (s->close_after_reply) {
        server_forget(s, fd);
    }
}

static void server_on_read(struct reactor *r, int fd, void *data, int mask)
{
    struct server *s = data;
    char chunk[65536];
    ssize_t n = recv(fd, chunk, sizeof(chunk), 0);

    if (n <= 0) {
        reactor_del(r, fd, REACTOR_READABLE);
        return;
    }
    bool was_short = s->received < s->request_len;
    s->received += (size_t)n;
    if (was_short && s->received >= s->request_len)
        server_answer(s, fd);
}

static void server_on_accept(struct reactor *r, int fd, void *data, int mask)
{
    struct server *s = data;
    int a = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (a < 0)
        return;
    if (s->mode == SERVER_CLOSE || s->nfds == SERVER_MAX_CONNS) {
        close(a);
        return;
    }
    s->fds[s->nfds++] = a;
    if (s->mode == SERVER_SILENT)
        return;
    ck_assert_int_eq(reactor_add(r, a, REACTOR_READABLE, server_on_read, s), PMX_OK);
    if (s->request_len == 0)
        server_answer(s, a);
}

static void server_start(struct server *s, struct reactor *r, enum server_mode mode)
{
    socklen_t len = sizeof(s->addr);

    memset(s, 0, sizeof(*s));
    s->r = r;
    s->mode = mode;
    s->addr.sin_family = AF_INET;
    s->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&s->addr, sizeof(s->addr)), 0);
    ck_assert_int_eq(listen(s->lfd, 16), 0);
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&s->addr, &len), 0);
    ck_assert_int_eq(reactor_add(r, s->lfd, REACTOR_READABLE, server_on_accept, s), PMX_OK);
}

static void server_stop(struct server *s)
{
    while (s->nfds > 0)
        server_forget(s, s->fds[0]);
    reactor_del(s->r, s->lfd, REACTOR_READABLE);
    close(s->lfd);
}

static void on_probe(void *data, bool ok, const char *reason)
{
    struct outcome *o = data;

    o->calls++;
    o->ok = ok;
    snprintf(o->reason, sizeof(o->reason), "%s", reason);
    o->elapsed = reactor_clock_ms() - o->started;
    reactor_stop(o->r);
}

static long on_guard(struct reactor *r, long long id, void *data)
{
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

/* Runs the reactor until fn reports (or ms pass). */
static void run_until_reported(struct reactor *r, long ms)
{
    long long guard = reactor_timer_add(r, ms, on_guard, NULL);

    ck_assert_int_gt(guard, 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    reactor_timer_del(r, guard);
}

/* Open fds, less those a test server holds for accepted connections. */
static int probe_fds(const struct server *s)
{
    return count_fds() - (s ? s->nfds : 0);
}

/* One probe of addr; returns once fn reported, asserting that fn did not
 * run inside health_probe_start, ran once, and that the probe left no fd
 * behind. s is the server behind addr, or NULL. */
static void probe_once(struct reactor *r, const struct server *s, const struct sockaddr *addr, socklen_t len,
                       const char *send, const char *expect, long timeout_ms, struct outcome *o)
{
    int fds = probe_fds(s);

    memset(o, 0, sizeof(*o));
    o->r = r;
    o->started = reactor_clock_ms();
    struct health_probe *p = health_probe_start(r, addr, len, send, strlen(send), expect, strlen(expect),
                                                timeout_ms, on_probe, o);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(o->calls, 0);
    run_until_reported(r, 5000);
    ck_assert_int_eq(o->calls, 1);
    ck_assert_int_eq(probe_fds(s), fds);
}

#define SERVER_ADDR(s) (const struct sockaddr *)&(s)->addr, sizeof((s)->addr)

START_TEST(test_probe_connect_only)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    server_start(&s, r, SERVER_SILENT);
    probe_once(r, &s, SERVER_ADDR(&s), "", "", 1000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    ck_assert_str_eq(o.reason, "connected");
    /* Sending without expecting: ok once the bytes are written. */
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "", 1000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_refused)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    /* A port nobody listens on: bound, then closed. */
    server_start(&s, r, SERVER_SILENT);
    server_stop(&s);
    probe_once(r, &s, SERVER_ADDR(&s), "", "", 1000, &o);
    ck_assert(!o.ok);
    ck_assert_msg(strstr(o.reason, "refused") != NULL, "%s", o.reason);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_immediate_failure_is_deferred)
{
    struct reactor *r = reactor_create(64);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct outcome o;

    /* A unix connect fails inside connect(): still reported from the
     * reactor (probe_once asserts fn did not run inside start). */
    snprintf(sun.sun_path, sizeof(sun.sun_path), "/nonexistent-pmx-dir/none.sock");
    probe_once(r, NULL, (const struct sockaddr *)&sun, sizeof(sun), "", "", 1000, &o);
    ck_assert(!o.ok);
    ck_assert_msg(strstr(o.reason, "connect: ") == o.reason && strstr(o.reason, "No such file") != NULL,
                  "%s", o.reason);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_send_expect_ok)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    server_start(&s, r, SERVER_ANSWER);
    s.request_len = 6;
    s.reply = "+PONG\r\n";
    s.reply_len = 7;
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 1000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    ck_assert_str_eq(o.reason, "reply matched");
    ck_assert_uint_eq(s.received, 6);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_reply_in_pieces)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    server_start(&s, r, SERVER_ANSWER);
    s.request_len = 6;
    s.reply = "+PONG\r\n";
    s.reply_len = 7;
    s.split = 3;
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 1000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    ck_assert_uint_ge(o.elapsed, 15);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_server_speaks_first)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    server_start(&s, r, SERVER_ANSWER);
    s.reply = "220 ready\r\n";
    s.reply_len = strlen(s.reply);
    probe_once(r, &s, SERVER_ADDR(&s), "", "220 ", 1000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_large_send)
{
    struct reactor *r = reactor_create(64);
    size_t big = 8u << 20;
    char *request = malloc(big + 1);
    struct server s;
    struct outcome o;

    /* More than the socket buffers take at once: partial writes. */
    ck_assert_ptr_nonnull(request);
    memset(request, 'x', big);
    request[big] = '\0';
    server_start(&s, r, SERVER_ANSWER);
    s.request_len = big;
    s.reply = "+OK\r\n";
    s.reply_len = 5;
    probe_once(r, &s, SERVER_ADDR(&s), request, "+OK", 5000, &o);
    ck_assert_msg(o.ok, "%s", o.reason);
    ck_assert_uint_eq(s.received, big);
    free(request);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_wrong_reply_fails_at_once)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    /* The server keeps the connection open: only the first byte tells. */
    server_start(&s, r, SERVER_ANSWER);
    s.request_len = 6;
    s.reply = "-ERR no\r\n";
    s.reply_len = 9;
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 5000, &o);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.reason, "reply does not start with expected bytes");
    ck_assert_uint_lt(o.elapsed, 1000);

    /* Differing after a matching start, still open. */
    s.received = 0;
    s.reply = "+POX";
    s.reply_len = 4;
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 5000, &o);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.reason, "reply does not start with expected bytes");
    ck_assert_uint_lt(o.elapsed, 1000);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_silent_times_out)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    server_start(&s, r, SERVER_SILENT);
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 100, &o);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.reason, "reply timeout");
    ck_assert_uint_ge(o.elapsed, 90);
    ck_assert_uint_lt(o.elapsed, 2000);
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_probe_closed)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct outcome o;

    /* Closed at once, after the PING (end of stream or reset, by timing). */
    server_start(&s, r, SERVER_CLOSE);
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 5000, &o);
    ck_assert(!o.ok);
    ck_assert_uint_lt(o.elapsed, 1000);
    /* Nothing sent: the server's close is a clean end of stream. */
    probe_once(r, &s, SERVER_ADDR(&s), "", "+PONG", 5000, &o);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.reason, "closed before reply");
    server_stop(&s);

    /* Closed after part of the reply. */
    server_start(&s, r, SERVER_ANSWER);
    s.request_len = 6;
    s.reply = "+PO";
    s.reply_len = 3;
    s.close_after_reply = true;
    probe_once(r, &s, SERVER_ADDR(&s), "PING\r\n", "+PONG", 5000, &o);
    ck_assert(!o.ok);
    ck_assert_str_eq(o.reason, "closed in the middle of the reply");
    server_stop(&s);
    reactor_destroy(r);
}
END_TEST

static long on_cancel(struct reactor *r, long long id, void *data)
{
    struct health_probe **p = data;

    health_probe_cancel(*p);
    *p = NULL;
    return REACTOR_TIMER_DONE;
}

START_TEST(test_probe_cancel)
{
    struct reactor *r = reactor_create(64);
    struct server silent, closed;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct outcome o = { .r = r };

    server_start(&silent, r, SERVER_SILENT);
    server_start(&closed, r, SERVER_SILENT);
    server_stop(&closed);
    snprintf(sun.sun_path, sizeof(sun.sun_path), "/nonexistent-pmx-dir/none.sock");
    int fds = count_fds();

    /* Cancelled before the reactor ever ran: connecting, refused, failed
     * inside start (its 0 ms report pending). */
    struct health_probe *p[3] = {
        health_probe_start(r, SERVER_ADDR(&silent), "PING\r\n", 6, "+PONG", 5, 100, on_probe, &o),
        health_probe_start(r, SERVER_ADDR(&closed), "", 0, "", 0, 100, on_probe, &o),
        health_probe_start(r, (const struct sockaddr *)&sun, sizeof(sun), "", 0, "", 0, 100, on_probe, &o),
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(p); i++) {
        ck_assert_ptr_nonnull(p[i]);
        health_probe_cancel(p[i]);
    }
    health_probe_cancel(NULL);
    ck_assert_int_eq(count_fds(), fds);

    /* Cancelled from the reactor while waiting for the reply. */
    struct health_probe *q = health_probe_start(r, SERVER_ADDR(&silent), "PING\r\n", 6, "+PONG", 5, 200,
                                                on_probe, &o);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_gt(reactor_timer_add(r, 50, on_cancel, &q), 0);
    run_until_reported(r, 400);
    ck_assert_ptr_null(q);
    ck_assert_int_eq(o.calls, 0);
    server_stop(&silent);
    ck_assert_int_eq(count_fds(), fds - 1);     /* the listener */
    reactor_destroy(r);
}
END_TEST

/* A probe started from another probe's fn. */
struct chain {
    struct reactor *r;
    struct server *s;
    int calls;
    bool ok[2];
};

static void on_chain(void *data, bool ok, const char *reason)
{
    struct chain *c = data;

    c->ok[c->calls++] = ok;
    if (c->calls == 1)
        ck_assert_ptr_nonnull(health_probe_start(c->r, SERVER_ADDR(c->s), "", 0, "", 0, 1000, on_chain, c));
    else
        reactor_stop(c->r);
}

START_TEST(test_probe_started_from_fn)
{
    struct reactor *r = reactor_create(64);
    struct server s;
    struct chain c = { .r = r, .s = &s };

    server_start(&s, r, SERVER_SILENT);
    int fds = count_fds();
    ck_assert_ptr_nonnull(health_probe_start(r, SERVER_ADDR(&s), "", 0, "", 0, 1000, on_chain, &c));
    run_until_reported(r, 5000);
    ck_assert_int_eq(c.calls, 2);
    ck_assert(c.ok[0] && c.ok[1]);
    server_stop(&s);
    ck_assert_int_eq(count_fds(), fds - 1);     /* the listener */
    reactor_destroy(r);
}
END_TEST

Suite *health_suite(void)
{
    Suite *s = suite_create("health");
    TCase *tc = tcase_create("state");

    tcase_add_test(tc, test_health_down_after_fail_after);
    tcase_add_test(tc, test_health_success_resets_failures);
    tcase_add_test(tc, test_health_rise_after_probes);
    tcase_add_test(tc, test_health_failed_probe_resets_rises);
    tcase_add_test(tc, test_health_maint);
    tcase_add_test(tc, test_health_state_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("probe");
    tcase_add_test(tc, test_probe_connect_only);
    tcase_add_test(tc, test_probe_refused);
    tcase_add_test(tc, test_probe_immediate_failure_is_deferred);
    tcase_add_test(tc, test_probe_send_expect_ok);
    tcase_add_test(tc, test_probe_reply_in_pieces);
    tcase_add_test(tc, test_probe_server_speaks_first);
    tcase_add_test(tc, test_probe_large_send);
    tcase_add_test(tc, test_probe_wrong_reply_fails_at_once);
    tcase_add_test(tc, test_probe_silent_times_out);
    tcase_add_test(tc, test_probe_closed);
    tcase_add_test(tc, test_probe_cancel);
    tcase_add_test(tc, test_probe_started_from_fn);
    suite_add_tcase(s, tc);
    return s;
}
