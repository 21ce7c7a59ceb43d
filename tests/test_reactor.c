/* Unit tests for the reactor: file events on real sockets, timers, and the
 * before-sleep hook, each asserting counters after running the loop. */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reactor.h"
#include "suites.h"

struct counters {
    int readable;
    int writable;
    int timer_runs;
    int hook_runs;
    int stop_after;
    char last;
};

static void on_readable(struct reactor *r, int fd, void *data, int mask)
{
    struct counters *c = data;
    char ch;

    if (mask & REACTOR_READABLE) {
        c->readable++;
        ck_assert_int_eq(read(fd, &ch, 1), 1);
        c->last = ch;
        reactor_stop(r);
    }
}

START_TEST(test_reactor_readable_event)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { 0 };
    int sv[2];

    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ck_assert_int_eq(reactor_add(r, sv[0], REACTOR_READABLE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_READABLE);
    ck_assert_int_eq(write(sv[1], "z", 1), 1);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.readable, 1);
    ck_assert_int_eq(c.last, 'z');
    reactor_del(r, sv[0], REACTOR_READABLE);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_NONE);
    close(sv[0]);
    close(sv[1]);
    reactor_destroy(r);
}
END_TEST

static void on_writable(struct reactor *r, int fd, void *data, int mask)
{
    struct counters *c = data;

    if (mask & REACTOR_WRITABLE)
        c->writable++;
    if (mask & REACTOR_READABLE)
        c->readable++;
    /* Level-triggered: keeps firing while writable; stop after 3. */
    if (c->writable == 3) {
        reactor_del(r, fd, REACTOR_WRITABLE);
        reactor_stop(r);
    }
}

START_TEST(test_reactor_masks_merge_and_level_triggered)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { 0 };
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ck_assert_int_eq(reactor_add(r, sv[0], REACTOR_READABLE, on_writable, &c), PMX_OK);
    ck_assert_int_eq(reactor_add(r, sv[0], REACTOR_WRITABLE, on_writable, &c), PMX_OK);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_READABLE | REACTOR_WRITABLE);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.writable, 3);
    ck_assert_int_eq(c.readable, 0);    /* nothing was written to sv[1] */
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_READABLE);
    close(sv[0]);
    close(sv[1]);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_reactor_grows_for_large_fd)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { 0 };
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int high = dup2(sv[0], 200);
    ck_assert_int_eq(high, 200);
    ck_assert_int_eq(reactor_add(r, high, REACTOR_READABLE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(write(sv[1], "q", 1), 1);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.readable, 1);
    ck_assert_int_eq(c.last, 'q');
    ck_assert_int_eq(reactor_add(r, -1, REACTOR_READABLE, on_readable, &c), PMX_ERR);
    close(high);
    close(sv[0]);
    close(sv[1]);
    reactor_destroy(r);
}
END_TEST

static long on_timer(struct reactor *r, long long id, void *data)
{
    struct counters *c = data;

    c->timer_runs++;
    if (c->timer_runs == c->stop_after) {
        reactor_stop(r);
        return REACTOR_TIMER_DONE;
    }
    return 5;
}

START_TEST(test_reactor_timer_repeats_then_done)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { .stop_after = 4 };

    uint64_t start = reactor_clock_ms();
    ck_assert_int_gt(reactor_timer_add(r, 10, on_timer, &c), 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.timer_runs, 4);
    /* 10 ms, then three times 5 ms. */
    ck_assert_uint_ge(reactor_clock_ms() - start, 25);
    reactor_destroy(r);
}
END_TEST

static long never(struct reactor *r, long long id, void *data)
{
    struct counters *c = data;

    c->timer_runs += 100;
    return REACTOR_TIMER_DONE;
}

START_TEST(test_reactor_timer_delete)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { .stop_after = 1 };

    long long id = reactor_timer_add(r, 1, never, &c);
    ck_assert_int_gt(id, 0);
    reactor_timer_del(r, id);
    ck_assert_int_gt(reactor_timer_add(r, 20, on_timer, &c), 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.timer_runs, 1);  /* the deleted timer never ran */
    reactor_destroy(r);
}
END_TEST

static void hook(struct reactor *r, void *data)
{
    struct counters *c = data;

    if (++c->hook_runs == 3)
        reactor_stop(r);
}

static long tick(struct reactor *r, long long id, void *data)
{
    return 1;
}

START_TEST(test_reactor_before_sleep_hook)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { 0 };

    ck_assert_int_eq(reactor_add_before_sleep(r, hook, &c), PMX_OK);
    ck_assert_int_gt(reactor_timer_add(r, 1, tick, &c), 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.hook_runs, 3);
    reactor_destroy(r);
}
END_TEST

/* Each hook appends its letter to order; 'b' removes itself and 'c'. */
struct hook_log {
    char order[16];
    int n;
};

struct hook_arg {
    struct hook_log *log;
    char letter;
};

static void ordered_hook(struct reactor *r, void *data)
{
    struct hook_arg *a = data;

    a->log->order[a->log->n++] = a->letter;
    if (a->letter == 'b') {
        reactor_remove_before_sleep(r, ordered_hook, a);
        reactor_remove_before_sleep(r, ordered_hook, a + 1);   /* 'c', later in this run */
    }
    if (a->log->n == 5)
        reactor_stop(r);
}

START_TEST(test_reactor_before_sleep_hooks_in_order_and_removed)
{
    struct reactor *r = reactor_create(16);
    struct hook_log log = { .n = 0 };
    struct hook_arg args[4] = { { &log, 'a' }, { &log, 'b' }, { &log, 'c' }, { &log, 'd' } };

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(reactor_add_before_sleep(r, ordered_hook, &args[i]), PMX_OK);
    ck_assert_int_gt(reactor_timer_add(r, 1, tick, NULL), 0);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    /* First run: a, b, (c removed by b before its turn), d; then a, d. */
    ck_assert_int_eq(log.n, 5);
    ck_assert_int_eq(memcmp(log.order, "abdad", 5), 0);
    reactor_destroy(r);
}
END_TEST

START_TEST(test_reactor_set_exact_mask)
{
    struct reactor *r = reactor_create(16);
    struct counters c = { 0 };
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ck_assert_int_eq(reactor_set(r, sv[0], REACTOR_READABLE | REACTOR_WRITABLE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_READABLE | REACTOR_WRITABLE);
    ck_assert_int_eq(reactor_set(r, sv[0], REACTOR_WRITABLE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_WRITABLE);
    ck_assert_int_eq(reactor_set(r, sv[0], REACTOR_NONE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(reactor_mask(r, sv[0]), REACTOR_NONE);
    /* Watched again from nothing: an ADD, and the event arrives. */
    ck_assert_int_eq(reactor_set(r, sv[0], REACTOR_READABLE, on_readable, &c), PMX_OK);
    ck_assert_int_eq(write(sv[1], "z", 1), 1);
    ck_assert_int_eq(reactor_run(r), PMX_OK);
    ck_assert_int_eq(c.readable, 1);
    ck_assert_int_eq(c.last, 'z');
    reactor_del(r, sv[0], REACTOR_READABLE | REACTOR_WRITABLE);
    close(sv[0]);
    close(sv[1]);
    reactor_destroy(r);
}
END_TEST

Suite *reactor_suite(void)
{
    Suite *s = suite_create("reactor");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_reactor_readable_event);
    tcase_add_test(tc, test_reactor_masks_merge_and_level_triggered);
    tcase_add_test(tc, test_reactor_grows_for_large_fd);
    tcase_add_test(tc, test_reactor_timer_repeats_then_done);
    tcase_add_test(tc, test_reactor_timer_delete);
    tcase_add_test(tc, test_reactor_before_sleep_hook);
    tcase_add_test(tc, test_reactor_before_sleep_hooks_in_order_and_removed);
    tcase_add_test(tc, test_reactor_set_exact_mask);
    suite_add_tcase(s, tc);
    return s;
}
