/* Unit tests for the resolver: lookups delivered through the real reactor
 * on its own thread, cancellation, the lookup limit, teardown with lookups
 * pending, and the synchronous form. Names used: literals, "localhost"
 * (/etc/hosts) and a .invalid name; nothing depends on DNS answering. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolver.h"
#include "suites.h"

struct run {
    struct reactor *r;
    struct resolver *rs;
    pthread_t reactor_thread;
    int delivered;
    int stop_at;
    bool timed_out;
};

struct probe {
    struct run *run;
    int runs;
    int err;
    int naddrs;
    int bad_len;            /* addresses whose length does not fit their family */
    bool on_reactor_thread;
    struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS];
    long long cancel;       /* an id to cancel from the callback, or 0 */
    bool destroy;           /* destroy the resolver from the callback */
};

static void on_result(void *data, int err, const struct sockaddr_storage *addrs,
                      const socklen_t *lens, int naddrs)
{
    struct probe *p = data;
    struct run *run = p->run;

    p->runs++;
    p->err = err;
    p->naddrs = naddrs;
    p->on_reactor_thread = pthread_equal(pthread_self(), run->reactor_thread) != 0;
    for (int i = 0; i < naddrs; i++) {
        socklen_t want = addrs[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                                       : sizeof(struct sockaddr_in6);
        if (lens[i] != want)
            p->bad_len++;
        p->addrs[i] = addrs[i];
    }
    if (p->cancel > 0)
        resolver_cancel(run->rs, p->cancel);
    if (p->destroy) {
        resolver_destroy(run->rs);
        run->rs = NULL;
        reactor_stop(run->r);
    }
    if (++run->delivered == run->stop_at)
        reactor_stop(run->r);
}

static long on_guard(struct reactor *r, long long id, void *data)
{
    struct run *run = data;

    run->timed_out = true;
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

static long on_pause(struct reactor *r, long long id, void *data)
{
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

static void run_init(struct run *run)
{
    memset(run, 0, sizeof(*run));
    run->reactor_thread = pthread_self();
    run->r = reactor_create(64);
    ck_assert_ptr_nonnull(run->r);
    run->rs = resolver_create(run->r);
    ck_assert_ptr_nonnull(run->rs);
}

static void run_done(struct run *run)
{
    resolver_destroy(run->rs);
    reactor_destroy(run->r);
}

/* Runs the reactor until `total` callbacks have run in all; fails after 20 s. */
static void run_until(struct run *run, int total)
{
    if (run->delivered >= total)
        return;
    run->stop_at = total;
    long long guard = reactor_timer_add(run->r, 20000, on_guard, run);
    ck_assert_int_gt(guard, 0);
    ck_assert_int_eq(reactor_run(run->r), PMX_OK);
    ck_assert_msg(!run->timed_out, "%d of %d callbacks after 20 s", run->delivered, total);
    reactor_timer_del(run->r, guard);
    ck_assert_int_eq(run->delivered, total);
}

/* Runs the reactor for ms, so that a stray callback would show. */
static void run_for(struct run *run, long ms)
{
    run->stop_at = -1;
    ck_assert_int_gt(reactor_timer_add(run->r, ms, on_pause, run), 0);
    ck_assert_int_eq(reactor_run(run->r), PMX_OK);
}

static long long lookup(struct run *run, struct probe *p, const char *host, int port)
{
    p->run = run;
    long long id = resolver_lookup(run->rs, host, port, on_result, p);
    ck_assert_msg(id > 0, "lookup of %s: %s", host, strerror(errno));
    return id;
}

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return ss->ss_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Entries in a /proc/self directory: open fds or threads. */
static int count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static bool is_lookup_failure(int err)
{
    return err == EAI_NONAME || err == EAI_AGAIN || err == EAI_FAIL || err == EAI_NODATA;
}

START_TEST(test_resolver_delivers_on_reactor_thread)
{
    struct run run;
    struct probe v4 = { 0 }, v6 = { 0 }, bracket = { 0 }, local = { 0 };
    int threads = count_entries("/proc/self/task");

    run_init(&run);
    long long id1 = lookup(&run, &v4, "127.0.0.1", 80);
    long long id2 = lookup(&run, &v6, "::1", 443);
    long long id3 = lookup(&run, &bracket, "[::1]", 8080);
    ck_assert_int_gt(id2, id1);
    ck_assert_int_gt(id3, id2);
    /* Never from inside resolver_lookup(), even for a literal. */
    ck_assert_int_eq(v4.runs + v6.runs + bracket.runs, 0);
    run_until(&run, 3);
    /* Literals need no helper thread. */
    ck_assert_int_eq(count_entries("/proc/self/task"), threads);

    ck_assert_int_eq(v4.err, 0);
    ck_assert_int_eq(v4.naddrs, 1);
    ck_assert_int_eq(v4.addrs[0].ss_family, AF_INET);
    ck_assert_int_eq(port_of(&v4.addrs[0]), 80);
    ck_assert_int_eq(v6.err, 0);
    ck_assert_int_eq(v6.naddrs, 1);
    ck_assert_int_eq(v6.addrs[0].ss_family, AF_INET6);
    ck_assert(is_loopback(&v6.addrs[0]));
    ck_assert_int_eq(port_of(&v6.addrs[0]), 443);
    ck_assert_int_eq(bracket.err, 0);
    ck_assert_int_eq(bracket.addrs[0].ss_family, AF_INET6);
    ck_assert_int_eq(port_of(&bracket.addrs[0]), 8080);

    lookup(&run, &local, "localhost", 6379);
    /* (Greater: a sanitizer may start its own thread with the first one.) */
    ck_assert_int_gt(count_entries("/proc/self/task"), threads);
    run_until(&run, 4);
    ck_assert_int_eq(local.err, 0);
    ck_assert_int_ge(local.naddrs, 1);
    for (int i = 0; i < local.naddrs; i++) {
        ck_assert(is_loopback(&local.addrs[i]));
        ck_assert_int_eq(port_of(&local.addrs[i]), 6379);
    }

    struct probe *all[] = { &v4, &v6, &bracket, &local };
    for (size_t i = 0; i < PMX_ARRAY_LEN(all); i++) {
        ck_assert_int_eq(all[i]->runs, 1);
        ck_assert(all[i]->on_reactor_thread);
        ck_assert_int_eq(all[i]->bad_len, 0);
    }
    run_done(&run);
}
END_TEST

START_TEST(test_resolver_unknown_name)
{
    struct run run;
    struct probe p = { 0 };

    run_init(&run);
    lookup(&run, &p, "no-such-host.invalid", 80);
    run_until(&run, 1);
    ck_assert_msg(is_lookup_failure(p.err), "err %d (%s)", p.err, gai_strerror(p.err));
    ck_assert_int_eq(p.naddrs, 0);
    ck_assert(p.on_reactor_thread);
    ck_assert_int_gt(strlen(gai_strerror(p.err)), 0);
    run_done(&run);
}
END_TEST

START_TEST(test_resolver_cancel)
{
    struct run run;
    struct probe queued = { 0 }, literal = { 0 }, resolved = { 0 }, kept = { 0 };
    struct probe canceller = { 0 }, victim = { 0 }, last = { 0 };

    run_init(&run);
    /* Cancelled while queued for the helper or being resolved. */
    resolver_cancel(run.rs, lookup(&run, &queued, "localhost", 1));
    /* A literal cancelled before the reactor delivers it. */
    resolver_cancel(run.rs, lookup(&run, &literal, "127.0.0.1", 2));
    /* Resolved by the helper, cancelled before delivery. */
    long long id = lookup(&run, &resolved, "localhost", 3);
    lookup(&run, &kept, "localhost", 4);
    usleep(100 * 1000);
    resolver_cancel(run.rs, id);
    /* Cancelled by another callback of the same batch. */
    lookup(&run, &canceller, "127.0.0.1", 5);
    canceller.cancel = lookup(&run, &victim, "127.0.0.1", 6);
    lookup(&run, &last, "localhost", 7);
    /* Unknown ids are ignored. */
    resolver_cancel(run.rs, 999999);
    resolver_cancel(run.rs, -1);

    run_until(&run, 3);
    run_for(&run, 100);
    ck_assert_int_eq(queued.runs, 0);
    ck_assert_int_eq(literal.runs, 0);
    ck_assert_int_eq(resolved.runs, 0);
    ck_assert_int_eq(victim.runs, 0);
    ck_assert_int_eq(kept.runs, 1);
    ck_assert_int_eq(canceller.runs, 1);
    ck_assert_int_eq(last.runs, 1);
    ck_assert_int_eq(run.delivered, 3);
    /* Cancelling what was delivered changes nothing. */
    resolver_cancel(run.rs, id);
    resolver_cancel(run.rs, canceller.cancel);
    run_done(&run);
}
END_TEST

/* Cancels a crowd from the back: some are still queued, one is likely
 * being resolved, some wait for delivery; none may run. */
START_TEST(test_resolver_cancel_crowd)
{
    enum { N = 300 };
    struct probe *p = calloc(N + 1, sizeof(*p));
    long long ids[N];
    struct run run;

    ck_assert_ptr_nonnull(p);
    run_init(&run);
    for (int i = 0; i < N; i++)
        ids[i] = lookup(&run, &p[i], i % 5 ? "localhost" : "127.0.0.1", 80);
    for (int i = N - 1; i >= 0; i--)
        resolver_cancel(run.rs, ids[i]);
    lookup(&run, &p[N], "localhost", 81);
    run_until(&run, 1);
    run_for(&run, 100);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(p[i].runs, 0);
    ck_assert_int_eq(p[N].runs, 1);
    ck_assert_int_eq(p[N].err, 0);
    run_done(&run);
    free(p);
}
END_TEST

START_TEST(test_resolver_many_in_flight)
{
    enum { N = 200 };
    static const char *const hosts[] = { "localhost", "127.0.0.1", "::1", "[::1]" };
    struct probe *p = calloc(N, sizeof(*p));
    struct run run;

    ck_assert_ptr_nonnull(p);
    run_init(&run);
    for (int i = 0; i < N; i++)
        lookup(&run, &p[i], hosts[i % 4], 1000 + i);
    run_until(&run, N);
    run_for(&run, 20);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(p[i].runs, 1);
        ck_assert_int_eq(p[i].err, 0);
        ck_assert_int_ge(p[i].naddrs, 1);
        ck_assert(is_loopback(&p[i].addrs[0]));
        ck_assert_int_eq(port_of(&p[i].addrs[0]), 1000 + i);
        ck_assert(p[i].on_reactor_thread);
    }
    run_done(&run);
    free(p);
}
END_TEST

START_TEST(test_resolver_lookup_limit)
{
    enum { N = RESOLVER_MAX_LOOKUPS };
    struct probe *p = calloc(N + 2, sizeof(*p));
    struct run run;
    long long ids[N];

    ck_assert_ptr_nonnull(p);
    run_init(&run);
    /* Results wait for the reactor, so they all still count. */
    for (int i = 0; i < N; i++)
        ids[i] = lookup(&run, &p[i], i % 2 ? "localhost" : "127.0.0.1", 1);
    errno = 0;
    ck_assert_int_eq(resolver_lookup(run.rs, "127.0.0.1", 1, on_result, &p[N]), PMX_ERR);
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_eq(resolver_lookup(run.rs, "localhost", 1, on_result, &p[N]), PMX_ERR);
    /* A cancelled lookup frees its place. */
    resolver_cancel(run.rs, ids[0]);
    lookup(&run, &p[N], "127.0.0.1", 2);
    ck_assert_int_eq(resolver_lookup(run.rs, "127.0.0.1", 1, on_result, &p[N + 1]), PMX_ERR);
    run_until(&run, N);
    /* Delivered lookups free theirs. */
    lookup(&run, &p[N + 1], "localhost", 3);
    run_until(&run, N + 1);
    ck_assert_int_eq(p[0].runs, 0);
    for (int i = 1; i <= N + 1; i++) {
        ck_assert_int_eq(p[i].runs, 1);
        ck_assert_int_eq(p[i].err, 0);
    }
    run_done(&run);
    free(p);
}
END_TEST

START_TEST(test_resolver_bad_arguments)
{
    struct run run;
    struct probe p = { .run = &run };

    run_init(&run);
    errno = 0;
    ck_assert_int_eq(resolver_lookup(run.rs, "127.0.0.1", 65536, on_result, &p), PMX_ERR);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(resolver_lookup(run.rs, "127.0.0.1", -1, on_result, &p), PMX_ERR);
    ck_assert_int_eq(resolver_lookup(run.rs, NULL, 80, on_result, &p), PMX_ERR);
    ck_assert_int_eq(resolver_lookup(run.rs, "127.0.0.1", 80, NULL, &p), PMX_ERR);
    run_for(&run, 20);
    ck_assert_int_eq(p.runs, 0);
    run_done(&run);
}
END_TEST

START_TEST(test_resolver_destroy_with_lookups_pending)
{
    enum { N = 100 };
    struct probe p[N];
    struct run run;
    int fds = count_entries("/proc/self/fd");

    memset(p, 0, sizeof p);
    run_init(&run);
    /* Some are resolved by the time of the destroy, some not yet. */
    for (int i = 0; i < N / 2; i++)
        lookup(&run, &p[i], i % 2 ? "localhost" : "::1", 80);
    usleep(20 * 1000);
    for (int i = N / 2; i < N; i++)
        lookup(&run, &p[i], i % 2 ? "localhost" : "127.0.0.1", 80);
    resolver_destroy(run.rs);
    run.rs = NULL;
    run_for(&run, 50);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(p[i].runs, 0);
    reactor_destroy(run.r);
    ck_assert_int_eq(count_entries("/proc/self/fd"), fds);
}
END_TEST

START_TEST(test_resolver_destroy_from_callback)
{
    struct probe p[8];
    struct run run;

    memset(p, 0, sizeof p);
    run_init(&run);
    p[0].destroy = true;
    for (int i = 0; i < 8; i++)
        lookup(&run, &p[i], i < 4 ? "127.0.0.1" : "localhost", 80);
    run_until(&run, 1);
    ck_assert_ptr_null(run.rs);
    run_for(&run, 50);
    ck_assert_int_eq(p[0].runs, 1);
    for (int i = 1; i < 8; i++)
        ck_assert_int_eq(p[i].runs, 0);
    reactor_destroy(run.r);
}
END_TEST

START_TEST(test_resolver_resolve_now)
{
    struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS];
    socklen_t lens[RESOLVER_MAX_ADDRS];
    char err[128];

    ck_assert_int_eq(resolver_resolve_now("127.0.0.1", 80, addrs, lens, 8, err, sizeof err), 1);
    ck_assert_int_eq(addrs[0].ss_family, AF_INET);
    ck_assert_int_eq(lens[0], sizeof(struct sockaddr_in));
    ck_assert_int_eq(port_of(&addrs[0]), 80);

    ck_assert_int_eq(resolver_resolve_now("[::1]", 443, addrs, lens, 8, err, sizeof err), 1);
    ck_assert_int_eq(addrs[0].ss_family, AF_INET6);
    ck_assert_int_eq(lens[0], sizeof(struct sockaddr_in6));
    ck_assert_int_eq(port_of(&addrs[0]), 443);

    int n = resolver_resolve_now("localhost", 6379, addrs, lens, 8, err, sizeof err);
    ck_assert_int_ge(n, 1);
    for (int i = 0; i < n; i++)
        ck_assert(is_loopback(&addrs[i]));
    ck_assert_int_eq(resolver_resolve_now("localhost", 6379, addrs, lens, 1, err, sizeof err), 1);

    err[0] = '\0';
    ck_assert_int_eq(resolver_resolve_now("no-such-host.invalid", 80, addrs, lens, 8,
                                          err, sizeof err), PMX_ERR);
    ck_assert_msg(strcmp(err, gai_strerror(EAI_NONAME)) == 0 ||
                  strcmp(err, gai_strerror(EAI_AGAIN)) == 0 ||
                  strcmp(err, gai_strerror(EAI_FAIL)) == 0 ||
                  strcmp(err, gai_strerror(EAI_NODATA)) == 0, "err \"%s\"", err);
    ck_assert_ptr_null(strchr(err, '\n'));

    err[0] = '\0';
    ck_assert_int_eq(resolver_resolve_now("127.0.0.1", 70000, addrs, lens, 8, err, sizeof err),
                     PMX_ERR);
    ck_assert_int_gt(strlen(err), 0);
}
END_TEST

Suite *resolver_suite(void)
{
    Suite *s = suite_create("resolver");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_resolver_delivers_on_reactor_thread);
    tcase_add_test(tc, test_resolver_unknown_name);
    tcase_add_test(tc, test_resolver_cancel);
    tcase_add_test(tc, test_resolver_cancel_crowd);
    tcase_add_test(tc, test_resolver_many_in_flight);
    tcase_add_test(tc, test_resolver_lookup_limit);
    tcase_add_test(tc, test_resolver_bad_arguments);
    tcase_add_test(tc, test_resolver_destroy_with_lookups_pending);
    tcase_add_test(tc, test_resolver_destroy_from_callback);
    tcase_add_test(tc, test_resolver_resolve_now);
    suite_add_tcase(s, tc);
    return s;
}
