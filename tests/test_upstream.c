/* Unit tests of the upstream layer (include/upstream.h) driven by a real
 * reactor against loopback ports the tests open: balancing, retries on
 * other targets, passive health and probes, backup targets, connect
 * timeout, backoff, the warm spare handover and reload. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "reactor.h"
#include "resolver.h"
#include "suites.h"
#include "upstream.h"

/* How long a test waits for what must happen; generous, the machine may be
 * loaded. Upper time bounds are asserted only where the behaviour is about
 * time, and with a wide margin. */
#define WAIT_MS 5000

/* ---- loopback ports ---- */

#define PORT_MAX_CONNS 32

/* A TCP port on 127.0.0.1, bound and held by the test: connects to it are
 * refused until port_listen(). Accepted connections are kept (not read). */
struct port {
    struct reactor *r;
    int fd;
    int port;
    struct sockaddr_in addr;
    bool in_reactor;
    const char *greeting;       /* written to each accepted connection, or NULL */
    int accepted;
    int conns[PORT_MAX_CONNS];
    int nconns;
    int fillers[2];             /* connects that fill a backlog of 0 */
};

static void port_open(struct port *p, struct reactor *r)
{
    socklen_t len = sizeof(p->addr);

    memset(p, 0, sizeof(*p));
    p->r = r;
    p->fillers[0] = p->fillers[1] = -1;
    p->addr.sin_family = AF_INET;
    p->addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(p->fd, 0);
    ck_assert_int_eq(bind(p->fd, (struct sockaddr *)&p->addr, sizeof(p->addr)), 0);
    ck_assert_int_eq(getsockname(p->fd, (struct sockaddr *)&p->addr, &len), 0);
    p->port = ntohs(p->addr.sin_port);
}

static void port_on_accept(struct reactor *r, int fd, void *data, int mask)
{
    struct port *p = data;
    int a;

    while ((a = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        p->accepted++;
        if (p->greeting != NULL)
            (void)send(a, p->greeting, strlen(p->greeting), MSG_NOSIGNAL);
        if (p->nconns < PORT_MAX_CONNS)
            p->conns[p->nconns++] = a;
        else
            close(a);
    }
}

static void port_listen(struct port *p)
{
    ck_assert_int_eq(listen(p->fd, 64), 0);
    ck_assert_int_eq(reactor_add(p->r, p->fd, REACTOR_READABLE, port_on_accept, p), PMX_OK);
    p->in_reactor = true;
}

/* Listens with a backlog of 0, never accepting, and fills it: the kernel
 * then drops the SYNs of new connects, which hang until they time out. */
static void port_listen_full(struct port *p)
{
    ck_assert_int_eq(listen(p->fd, 0), 0);
    for (int i = 0; i < 2; i++) {
        p->fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(p->fillers[i], 0);
        int rc = connect(p->fillers[i], (struct sockaddr *)&p->addr, sizeof(p->addr));
        ck_assert(rc == 0 || errno == EINPROGRESS);
    }
    /* The first one takes the only place in the queue. */
    struct pollfd pfd = { .fd = p->fillers[0], .events = POLLOUT };
    ck_assert_int_eq(poll(&pfd, 1, WAIT_MS), 1);
}

static void port_close(struct port *p)
{
    for (int i = 0; i < p->nconns; i++)
        close(p->conns[i]);
    p->nconns = 0;
    for (int i = 0; i < 2; i++)
        if (p->fillers[i] >= 0)
            close(p->fillers[i]);
    if (p->in_reactor)
        reactor_del(p->r, p->fd, REACTOR_READABLE);
    close(p->fd);
    p->fd = -1;
}

/* The last connection p accepted. */
static int port_last_conn(const struct port *p)
{
    ck_assert_int_gt(p->nconns, 0);
    return p->conns[p->nconns - 1];
}

/* ---- the upstream layer under test ---- */

/* Where the tests write configurations and logs: made and removed in the
 * parent (unchecked fixture), so that a failing test leaves nothing. */
static char scratch[64];

static void scratch_setup(void)
{
    snprintf(scratch, sizeof(scratch), "/tmp/pmx-test-upstream-XXXXXX");
    if (mkdtemp(scratch) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static void scratch_teardown(void)
{
    DIR *d = opendir(scratch);

    if (d == NULL)
        return;
    for (const struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", scratch, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(scratch);
}

/* A reactor, a log file, one service's configuration and its upstream
 * layer, with the janitor (upstream_tick) every 10 ms. */
struct fx {
    struct reactor *r;
    const char *dir;            /* scratch: unix paths of targets that do not exist */
    char log_path[128];
    char config_path[128];
    struct config cfg;
    struct upstream *u;
    int ups;                    /* target_up calls */
    long long ticker;
};

static long fx_tick(struct reactor *r, long long id, void *data)
{
    struct fx *f = data;

    upstream_tick(f->u);
    return 10;
}

static void fx_on_target_up(void *data)
{
    struct fx *f = data;

    f->ups++;
}

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    f->r = reactor_create(64);
    ck_assert_ptr_nonnull(f->r);
    f->dir = scratch;
    snprintf(f->log_path, sizeof(f->log_path), "%s/log-%d", scratch, (int)getpid());
    snprintf(f->config_path, sizeof(f->config_path), "%s/config-%d.yaml", scratch, (int)getpid());
    unlink(f->log_path);
    ck_assert_int_eq(log_open(f->log_path), PMX_OK);
    log_set_level(LOG_INFO);
}

/* Loads YAML text (printf format) into c. */
static void PMX_PRINTF(3, 4) fx_load(struct fx *f, struct config *c, const char *fmt, ...)
{
    char yaml[4096], err[CONFIG_ERR_MAX];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    ck_assert(n > 0 && (size_t)n < sizeof(yaml));
    FILE *fp = fopen(f->config_path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_ge(fputs(yaml, fp), 0);
    ck_assert_int_eq(fclose(fp), 0);
    memset(c, 0, sizeof(*c));
    ck_assert_msg(config_load(c, f->config_path, NULL, err, sizeof(err)) == PMX_OK, "%s", err);
    ck_assert_int_eq(c->nservices, 1);
}

/* Creates the upstream layer of the configuration loaded in f->cfg. */
static void fx_start(struct fx *f)
{
    struct upstream_owner owner = { .target_up = fx_on_target_up, .data = f };

    f->u = upstream_create(f->r, NULL, &f->cfg.services[0], &owner);
    ck_assert_ptr_nonnull(f->u);
    f->ticker = reactor_timer_add(f->r, 10, fx_tick, f);
    ck_assert_int_gt(f->ticker, 0);
}

/* Everything goes; the test has released its connections and closed its
 * ports before. */
static void fx_finish(struct fx *f)
{
    reactor_timer_del(f->r, f->ticker);
    upstream_destroy(f->u);
    config_free(&f->cfg);
    reactor_destroy(f->r);
    ck_assert_int_eq(log_open(NULL), PMX_OK);
    unlink(f->log_path);
    unlink(f->config_path);
}

/* How many lines of the log so far hold needle, after prefix when prefix
 * is not NULL. */
static int fx_log_lines(const struct fx *f, const char *prefix, const char *needle)
{
    FILE *fp = fopen(f->log_path, "r");
    char line[4096];
    int n = 0;

    ck_assert_ptr_nonnull(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        const char *from = prefix != NULL ? strstr(line, prefix) : line;
        if (from != NULL && strstr(from, needle) != NULL)
            n++;
    }
    fclose(fp);
    return n;
}

static int fx_log_count(const struct fx *f, const char *needle)
{
    return fx_log_lines(f, NULL, needle);
}

static struct upstream_target_info fx_target(const struct fx *f, int i)
{
    struct upstream_target_info info;

    ck_assert_int_lt(i, upstream_target_count(f->u));
    upstream_target_info(f->u, i, &info);
    return info;
}

/* ---- running the loop until something happened ---- */

typedef bool (*cond_fn)(const void *arg);

struct waiter {
    cond_fn cond;
    const void *arg;
    uint64_t until;
};

static long waiter_check(struct reactor *r, long long id, void *data)
{
    const struct waiter *w = data;

    if (w->cond(w->arg) || reactor_clock_ms() >= w->until) {
        reactor_stop(r);
        return REACTOR_TIMER_DONE;
    }
    return 2;
}

/* Runs the reactor until cond(arg) holds or ms passed; returns cond(arg). */
static bool run_until(struct fx *f, cond_fn cond, const void *arg, long ms)
{
    struct waiter w = { cond, arg, reactor_clock_ms() + (uint64_t)ms };

    if (cond(arg))
        return true;
    ck_assert_int_gt(reactor_timer_add(f->r, 1, waiter_check, &w), 0);
    ck_assert_int_eq(reactor_run(f->r), PMX_OK);
    return cond(arg);
}

static bool never(const void *arg)
{
    return false;
}

/* Runs the reactor for ms. */
static void run_for(struct fx *f, long ms)
{
    (void)run_until(f, never, NULL, ms);
}

struct state_is {
    const struct fx *f;
    int target;
    enum health_state state;
};

static bool target_in_state(const void *arg)
{
    const struct state_is *s = arg;

    return fx_target(s->f, s->target).state == s->state;
}

static bool run_until_state(struct fx *f, int target, enum health_state state, long ms)
{
    struct state_is s = { f, target, state };

    return run_until(f, target_in_state, &s, ms);
}

static bool port_accepted(const void *arg)
{
    const struct port *p = arg;

    return p->accepted > 0;
}

/* ---- an owner's upstream connection ---- */

/* One upstream_conn and what its events said. */
struct rec {
    struct upstream_conn uc;
    struct fx *f;
    int connected;
    int failed;
    int hangups;
    char reason[128];
    uint64_t connected_at;
    uint64_t failed_at;
    char data[64];
    size_t len;
};

static void rec_connected(struct upstream_conn *uc)
{
    struct rec *c = uc->data;

    c->connected++;
    c->connected_at = reactor_now(c->f->r);
    ck_assert_int_eq(uc->state, UPSTREAM_READY);
    upstream_conn_watch(uc, REACTOR_READABLE);
}

static void rec_io(struct upstream_conn *uc, int mask)
{
    struct rec *c = uc->data;
    ssize_t n = conn_read(upstream_conn_socket(uc), c->data + c->len, sizeof(c->data) - 1 - c->len);

    if (n > 0) {
        c->len += (size_t)n;
        c->data[c->len] = '\0';
    } else if (n != PMX_AGAIN) {
        c->hangups++;
        upstream_conn_watch(uc, REACTOR_NONE);
    }
}

static void rec_failed(struct upstream_conn *uc, const char *reason)
{
    struct rec *c = uc->data;

    c->failed++;
    c->failed_at = reactor_now(c->f->r);
    snprintf(c->reason, sizeof(c->reason), "%s", reason);
    ck_assert_int_eq(uc->state, UPSTREAM_CLOSED);
}

static const struct upstream_conn_events rec_events = {
    .connected = rec_connected,
    .io = rec_io,
    .failed = rec_failed,
};

static void rec_init(struct fx *f, struct rec *c)
{
    memset(c, 0, sizeof(*c));
    c->f = f;
    upstream_conn_init(f->u, &c->uc, &rec_events, c);
}

/* Opens c (a pool connection: no client address). */
static int rec_open(struct rec *c)
{
    return upstream_conn_open(&c->uc, NULL, 0);
}

static bool rec_settled(const void *arg)
{
    const struct rec *c = arg;

    return c->connected > 0 || c->failed > 0;
}

static bool rec_has_connected(const void *arg)
{
    const struct rec *c = arg;

    return c->connected > 0;
}

static bool rec_has_failed_twice(const void *arg)
{
    const struct rec *c = arg;

    return c->failed >= 2;
}

static bool rec_has_data(const void *arg)
{
    const struct rec *c = arg;

    return c->len > 0;
}

/* Opens c and runs until it connected; asserts it did, to target. */
static void rec_connect(struct fx *f, struct rec *c, int target)
{
    c->connected = 0;
    c->failed = 0;
    ck_assert_int_eq(rec_open(c), PMX_OK);
    ck_assert_msg(run_until(f, rec_settled, c, WAIT_MS), "neither connected nor failed");
    ck_assert_msg(c->connected == 1 && c->failed == 0, "failed: %s", c->reason);
    ck_assert_int_eq(c->uc.state, UPSTREAM_READY);
    ck_assert_int_eq(c->uc.target, target);
}

struct all_connected {
    const struct rec *c;
    int n;
};

static bool recs_connected(const void *arg)
{
    const struct all_connected *a = arg;

    for (int i = 0; i < a->n; i++)
        if (a->c[i].connected == 0)
            return false;
    return true;
}

static void addr_text(const struct port *p, char *out, size_t n)
{
    snprintf(out, n, "127.0.0.1:%d", p->port);
}

/* ---- balancing ---- */

START_TEST(test_upstream_round_robin_alternates)
{
    struct fx f;
    struct port a, b;
    struct rec c[6];

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: round_robin\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    ck_assert_int_eq(upstream_target_count(f.u), 2);
    ck_assert(upstream_available(f.u));
    for (int i = 0; i < 6; i++) {
        rec_init(&f, &c[i]);
        ck_assert_int_eq(rec_open(&c[i]), PMX_OK);
        ck_assert_int_eq(c[i].uc.state, UPSTREAM_CONNECTING);
        ck_assert(c[i].uc.target == 0 || c[i].uc.target == 1);
        if (i > 0)
            ck_assert_int_ne(c[i].uc.target, c[i - 1].uc.target);
    }
    struct all_connected all = { c, 6 };
    ck_assert(run_until(&f, recs_connected, &all, WAIT_MS));
    char want[NET_ADDR_MAX];
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(c[i].uc.state, UPSTREAM_READY);
        ck_assert_int_eq(c[i].failed, 0);
        addr_text(c[i].uc.target == 0 ? &a : &b, want, sizeof(want));
        ck_assert_str_eq(c[i].uc.peer, want);
    }
    ck_assert_uint_eq(fx_target(&f, 0).conns, 3);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 3);
    /* The connections really went where the engine says. */
    for (int i = 0; i < 100 && a.accepted + b.accepted < 6; i++)
        run_for(&f, 10);
    ck_assert_int_eq(a.accepted, 3);
    ck_assert_int_eq(b.accepted, 3);
    for (int i = 0; i < 6; i++)
        upstream_conn_release(&c[i].uc);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 0);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_round_robin_weights)
{
    struct fx f;
    struct port a, b;
    struct rec c[12];
    int count[2] = { 0, 0 };

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d, weight: 3 }\n"
            "  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    ck_assert_int_eq(fx_target(&f, 0).weight, 3);
    for (int i = 0; i < 12; i++) {
        rec_init(&f, &c[i]);
        ck_assert_int_eq(rec_open(&c[i]), PMX_OK);
        count[c[i].uc.target]++;
        /* Smooth: b never twice in a row, a never four times. */
        if (i > 0 && c[i].uc.target == 1)
            ck_assert_int_eq(c[i - 1].uc.target, 0);
        if (i > 2)
            ck_assert(c[i].uc.target == 1 || c[i - 1].uc.target == 1 || c[i - 2].uc.target == 1 ||
                      c[i - 3].uc.target == 1);
    }
    ck_assert_int_eq(count[0], 9);
    ck_assert_int_eq(count[1], 3);
    struct all_connected all = { c, 12 };
    ck_assert(run_until(&f, recs_connected, &all, WAIT_MS));
    for (int i = 0; i < 12; i++)
        upstream_conn_release(&c[i].uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_least_conn)
{
    struct fx f;
    struct port a, b;
    struct rec c[6];

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: least_conn\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    for (int i = 0; i < 6; i++)
        rec_init(&f, &c[i]);
    /* A connection counts from its connect on: the second goes to the
     * other target before the first connected. */
    ck_assert_int_eq(rec_open(&c[0]), PMX_OK);
    int x = c[0].uc.target;
    ck_assert(x == 0 || x == 1);
    ck_assert_int_eq(rec_open(&c[1]), PMX_OK);
    ck_assert_int_eq(c[1].uc.target, 1 - x);
    struct all_connected two = { c, 2 };
    ck_assert(run_until(&f, recs_connected, &two, WAIT_MS));
    /* A tie goes either way; the next one to the other. */
    ck_assert_int_eq(rec_open(&c[2]), PMX_OK);
    int y = c[2].uc.target;
    ck_assert(y == 0 || y == 1);
    ck_assert_uint_eq(fx_target(&f, y).conns, 2);
    rec_connect(&f, &c[3], 1 - y);
    ck_assert(run_until(&f, rec_has_connected, &c[2], WAIT_MS));
    ck_assert_uint_eq(fx_target(&f, 0).conns, 2);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 2);
    /* Two closed on y: the next two go there, whatever the turn. */
    int on_y = c[0].uc.target == y ? 0 : 1;
    upstream_conn_close(&c[2].uc, UPSTREAM_CLOSE_OK, "done");
    upstream_conn_close(&c[on_y].uc, UPSTREAM_CLOSE_OK, "done");
    ck_assert_uint_eq(fx_target(&f, y).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1 - y).conns, 2);
    rec_connect(&f, &c[4], y);
    rec_connect(&f, &c[5], y);
    ck_assert_uint_eq(fx_target(&f, y).conns, 2);
    for (int i = 0; i < 6; i++)
        upstream_conn_release(&c[i].uc);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 0);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

static void client_addr(struct sockaddr_in *sin, uint32_t ip, int port)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(ip);
    sin->sin_port = htons((uint16_t)port);
}

START_TEST(test_upstream_ip_hash)
{
    struct fx f;
    struct port a, b;
    struct rec c;
    struct sockaddr_in client;
    int used[2] = { 0, 0 };

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: ip_hash\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c);
    /* One client, from any port, always to the same target. */
    client_addr(&client, 0x0a000007, 40000);
    ck_assert_int_eq(upstream_conn_open(&c.uc, (struct sockaddr *)&client, sizeof(client)), PMX_OK);
    int first = c.uc.target;
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.connected, 1);
    ck_assert_int_eq(c.uc.target, first);
    for (int i = 0; i < 10; i++) {
        upstream_conn_close(&c.uc, UPSTREAM_CLOSE_OK, "done");
        client_addr(&client, 0x0a000007, 40001 + i);
        ck_assert_int_eq(upstream_conn_open(&c.uc, (struct sockaddr *)&client, sizeof(client)), PMX_OK);
        ck_assert_int_eq(c.uc.target, first);
    }
    /* Many clients spread over both. */
    for (uint32_t ip = 1; ip <= 32; ip++) {
        upstream_conn_close(&c.uc, UPSTREAM_CLOSE_OK, "done");
        client_addr(&client, 0x0a000100 + ip, 5000);
        ck_assert_int_eq(upstream_conn_open(&c.uc, (struct sockaddr *)&client, sizeof(client)), PMX_OK);
        used[c.uc.target]++;
        int again = c.uc.target;
        upstream_conn_close(&c.uc, UPSTREAM_CLOSE_OK, "done");
        ck_assert_int_eq(upstream_conn_open(&c.uc, (struct sockaddr *)&client, sizeof(client)), PMX_OK);
        ck_assert_int_eq(c.uc.target, again);
    }
    ck_assert_int_gt(used[0], 0);
    ck_assert_int_gt(used[1], 0);
    upstream_conn_release(&c.uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

/* ---- retries ---- */

START_TEST(test_upstream_retry_other_target)
{
    struct fx f;
    struct port a, b;
    struct rec c1, c2;
    char line[256];

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\nretries: 2\n"
            "health: { fail_after: 2 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c1);
    rec_init(&f, &c2);
    ck_assert_int_eq(rec_open(&c1), PMX_OK);
    ck_assert_int_eq(c1.uc.target, 0);      /* first: a while it is usable */
    ck_assert(run_until(&f, rec_settled, &c1, WAIT_MS));
    ck_assert_msg(c1.connected == 1 && c1.failed == 0, "%s", c1.reason);
    ck_assert_int_eq(c1.uc.target, 1);
    addr_text(&b, line, sizeof(line));
    ck_assert_str_eq(c1.uc.peer, line);
    ck_assert(run_until(&f, port_accepted, &b, WAIT_MS));
    ck_assert_int_eq(b.accepted, 1);
    snprintf(line, sizeof(line), "connect to a (127.0.0.1:%d) failed: connect: Connection refused", a.port);
    ck_assert_int_eq(fx_log_lines(&f, "ERROR service default: upstream #", line), 1);
    /* Counted: one failure of two, still up; the second makes it down. */
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    rec_connect(&f, &c2, 1);
    ck_assert_int_eq(fx_log_count(&f, line), 2);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_str_eq(fx_target(&f, 0).reason, "connect: Connection refused (2 consecutive failures)");
    snprintf(line, sizeof(line),
             "service default: target a (127.0.0.1:%d) is down: connect: Connection refused (2 consecutive failures)",
             a.port);
    ck_assert_int_eq(fx_log_count(&f, line), 1);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 2);
    upstream_conn_release(&c1.uc);
    upstream_conn_release(&c2.uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_retry_after_immediate_failure)
{
    struct fx f;
    struct port b;
    struct rec c;
    char line[512];

    /* A unix target that does not exist fails inside connect(): the engine
     * goes on to the next target in the same call. */
    fx_init(&f);
    port_open(&b, f.r);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\n"
            "targets:\n  - { name: gone, unix: %s/none.sock }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            f.dir, b.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);
    ck_assert_int_eq(c.uc.target, 1);
    snprintf(line, sizeof(line), "connect to gone (unix:%s/none.sock) failed: connect: No such file or directory",
             f.dir);
    ck_assert_int_eq(fx_log_count(&f, line), 1);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.connected, 1);
    ck_assert_int_eq(c.uc.target, 1);
    upstream_conn_release(&c.uc);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_every_immediate_failure)
{
    struct fx f;
    struct rec c;

    /* Every try fails inside upstream_conn_open: PMX_ERR, nothing
     * reported; the next open waits for the backoff, then reports. */
    fx_init(&f);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, backoff_min: 200 }\nhealth: { fail_after: 10 }\n"
            "targets:\n  - { name: x, unix: %s/x.sock }\n  - { name: y, unix: %s/y.sock }\n",
            f.dir, f.dir);
    fx_start(&f);
    rec_init(&f, &c);
    uint64_t start = reactor_now(f.r);  /* the clock the engine reads */
    errno = 12345;
    ck_assert_int_eq(rec_open(&c), PMX_ERR);
    ck_assert_int_eq(errno, 0);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CLOSED);
    ck_assert_int_eq(fx_log_count(&f, "connect to x (unix:"), 1);
    ck_assert_int_eq(fx_log_count(&f, "connect to y (unix:"), 1);
    run_for(&f, 50);
    ck_assert_int_eq(c.failed + c.connected, 0);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_BACKOFF);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    ck_assert_str_eq(c.reason, "connect: No such file or directory");
    ck_assert_uint_ge(c.failed_at, start + 200);
    ck_assert_int_eq(fx_log_count(&f, "connect to x (unix:"), 2);
    upstream_conn_release(&c.uc);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_retries_each_target_once)
{
    struct fx f;
    struct rec c;
    char yaml[2048], line[128];
    int o;

    /* Twelve targets, retries 30: each tried once (not only the first
     * eight), then no untried target is left. */
    fx_init(&f);
    o = snprintf(yaml, sizeof(yaml), "local: { port: 1 }\npool: { connections: 1 }\nretries: 30\n"
                 "health: { fail_after: 1000 }\ntargets:\n");
    for (int i = 0; i < 12; i++)
        o += snprintf(yaml + o, sizeof(yaml) - (size_t)o, "  - { name: t%d, unix: %s/t%d.sock }\n", i, f.dir, i);
    fx_load(&f, &f.cfg, "%s", yaml);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_ERR);
    ck_assert_int_eq(fx_log_count(&f, "failed: connect: No such file or directory"), 12);
    for (int i = 0; i < 12; i++) {
        snprintf(line, sizeof(line), "connect to t%d (unix:", i);
        ck_assert_msg(fx_log_count(&f, line) == 1, "t%d tried %d times", i, fx_log_count(&f, line));
    }
    upstream_conn_release(&c.uc);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_retries_zero)
{
    struct fx f;
    struct port a, b;
    struct rec c;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\nretries: 0\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.connected, 0);
    ck_assert_int_eq(c.failed, 1);
    ck_assert_str_eq(c.reason, "connect: Connection refused");
    ck_assert_int_eq(c.uc.state, UPSTREAM_CLOSED);
    run_for(&f, 50);
    ck_assert_int_eq(b.accepted, 0);
    ck_assert_int_eq(fx_log_count(&f, "connect to b "), 0);
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 1);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 0);
    upstream_conn_release(&c.uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

/* ---- health ---- */

START_TEST(test_upstream_fail_after_then_none_usable)
{
    struct fx f;
    struct port a, b;
    struct rec c1, c2, c3;

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nretries: 1\nhealth: { fail_after: 2 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c1);
    rec_init(&f, &c2);
    rec_init(&f, &c3);
    /* Both tried once: one failure each, both still up. */
    ck_assert_int_eq(rec_open(&c1), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c1, WAIT_MS));
    ck_assert_int_eq(c1.failed, 1);
    ck_assert_str_eq(c1.reason, "connect: Connection refused");
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    /* Both again: both down, and the give-up says so. */
    ck_assert_int_eq(rec_open(&c2), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c2, WAIT_MS));
    ck_assert_int_eq(c2.failed, 1);
    ck_assert_str_eq(c2.reason, UPSTREAM_NONE_USABLE);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(fx_target(&f, i).state, HEALTH_DOWN);
        ck_assert_str_eq(fx_target(&f, i).reason, "connect: Connection refused (2 consecutive failures)");
    }
    ck_assert_int_eq(fx_log_count(&f, "is down: connect: Connection refused (2 consecutive failures)"), 2);
    ck_assert(!upstream_available(f.u));
    /* Nothing usable: refused at once, nothing reported. */
    ck_assert_int_eq(rec_open(&c3), PMX_ERR);
    ck_assert_int_eq(c3.uc.state, UPSTREAM_CLOSED);
    int tries = fx_log_count(&f, "failed: connect:");
    run_for(&f, 50);
    ck_assert_int_eq(c3.failed + c3.connected, 0);
    ck_assert_int_eq(fx_log_count(&f, "failed: connect:"), tries);
    upstream_conn_release(&c1.uc);
    upstream_conn_release(&c2.uc);
    upstream_conn_release(&c3.uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_down_target_not_picked)
{
    struct fx f;
    struct port a, b;
    struct rec c[8];

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nhealth: { fail_after: 1, interval: 60000 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    /* Round robin puts one of the first two on a: refused, a is down,
     * that connection goes to b. */
    for (int i = 0; i < 2; i++) {
        rec_init(&f, &c[i]);
        ck_assert_int_eq(rec_open(&c[i]), PMX_OK);
    }
    ck_assert_int_ne(c[0].uc.target, c[1].uc.target);
    struct all_connected two = { c, 2 };
    ck_assert(run_until(&f, recs_connected, &two, WAIT_MS));
    ck_assert_int_eq(c[0].uc.target, 1);
    ck_assert_int_eq(c[1].uc.target, 1);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 1);
    for (int i = 2; i < 8; i++) {
        rec_init(&f, &c[i]);
        ck_assert_int_eq(rec_open(&c[i]), PMX_OK);
        ck_assert_int_eq(c[i].uc.target, 1);
    }
    struct all_connected all = { c, 8 };
    ck_assert(run_until(&f, recs_connected, &all, WAIT_MS));
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 1);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 8);
    for (int i = 0; i < 8; i++)
        upstream_conn_release(&c[i].uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

static bool fx_saw_up(const void *arg)
{
    const struct fx *f = arg;

    return f->ups > 0;
}

START_TEST(test_upstream_probe_brings_target_back)
{
    struct fx f;
    struct port a;
    struct rec c;
    const long interval = 2000;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, backoff_min: 1 }\nretries: 0\n"
            "health: { fail_after: 1, rise_after: 2, interval: %ld }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            interval, a.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert(!upstream_available(f.u));
    uint64_t down_at = c.failed_at;
    /* It comes back at once; the first probe goes one interval after it
     * went down, the second right after the first: up within about one
     * interval, not two. */
    port_listen(&a);
    ck_assert(run_until(&f, fx_saw_up, &f, 3 * interval));
    uint64_t up_at = reactor_clock_ms();
    ck_assert_int_eq(f.ups, 1);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    ck_assert_str_eq(fx_target(&f, 0).reason, "2 successful probes");
    ck_assert_uint_ge(up_at, down_at + (uint64_t)interval - 20);
    ck_assert_msg(up_at < down_at + (uint64_t)interval * 7 / 4, "up after %llu ms",
                  (unsigned long long)(up_at - down_at));
    ck_assert_int_le(a.accepted, 2);        /* the two probes */
    char line[256];
    snprintf(line, sizeof(line), "service default: target a (127.0.0.1:%d) is up: 2 successful probes", a.port);
    ck_assert_int_eq(fx_log_count(&f, line), 1);
    ck_assert(upstream_available(f.u));
    rec_connect(&f, &c, 0);
    /* Up and without check_up: no more probes. */
    run_for(&f, 100);
    ck_assert_int_eq(a.accepted, 3);
    upstream_conn_release(&c.uc);
    port_close(&a);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_check_up_wrong_reply)
{
    struct fx f;
    struct port a, b;

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    a.greeting = "-ERR unknown command\r\n";
    b.greeting = "+PONG\r\n";
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\n"
            "health: { fail_after: 2, interval: 50, check_up: true, send: \"PING\\r\\n\", expect: \"+PONG\" }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    ck_assert_int_eq(f.cfg.services[0].health.send_len, 6);
    ck_assert(run_until_state(&f, 0, HEALTH_DOWN, WAIT_MS));
    ck_assert_str_eq(fx_target(&f, 0).reason,
                     "probe: reply does not start with expected bytes (2 consecutive failures)");
    ck_assert_int_ge(a.accepted, 2);
    /* The one that answers right stays up, probed as often. */
    int before = b.accepted;
    run_for(&f, 300);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    ck_assert_int_gt(b.accepted, before);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_int_eq(f.ups, 0);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_backup_only_without_primary)
{
    struct fx f;
    struct port p, s;
    struct rec c[6];

    fx_init(&f);
    port_open(&p, f.r);                     /* refuses for now */
    port_open(&s, f.r);
    port_listen(&s);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nhealth: { fail_after: 1, interval: 100 }\n"
            "targets:\n  - { name: spare, host: 127.0.0.1, port: %d, backup: true }\n"
            "  - { name: primary, host: 127.0.0.1, port: %d }\n",
            s.port, p.port);
    fx_start(&f);
    ck_assert(fx_target(&f, 0).backup);
    ck_assert(!fx_target(&f, 1).backup);
    for (int i = 0; i < 6; i++)
        rec_init(&f, &c[i]);
    /* The primary first; refused, it is down and the backup takes over. */
    ck_assert_int_eq(rec_open(&c[0]), PMX_OK);
    ck_assert_int_eq(c[0].uc.target, 1);
    ck_assert(run_until(&f, rec_settled, &c[0], WAIT_MS));
    ck_assert_int_eq(c[0].connected, 1);
    ck_assert_int_eq(c[0].uc.target, 0);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_DOWN);
    rec_connect(&f, &c[1], 0);
    /* Back up: only the primary, although the backup has connections and
     * the primary none. */
    port_listen(&p);
    ck_assert(run_until(&f, fx_saw_up, &f, WAIT_MS));
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    for (int i = 2; i < 5; i++)
        rec_connect(&f, &c[i], 1);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 2);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 3);
    /* Marked down by the operator: the backup again. */
    upstream_target_set_maint(f.u, 1, true);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_MAINT);
    rec_connect(&f, &c[5], 0);
    upstream_conn_close(&c[5].uc, UPSTREAM_CLOSE_OK, "done");
    upstream_target_set_maint(f.u, 1, false);
    ck_assert_int_eq(f.ups, 2);
    rec_connect(&f, &c[5], 1);
    for (int i = 0; i < 6; i++)
        upstream_conn_release(&c[i].uc);
    port_close(&p);
    port_close(&s);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_conn_ok_and_close_failed)
{
    struct fx f;
    struct port a;
    struct rec c;

    fx_init(&f);
    port_open(&a, f.r);
    port_listen(&a);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nhealth: { fail_after: 2, interval: 60000 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            a.port);
    fx_start(&f);
    rec_init(&f, &c);
    rec_connect(&f, &c, 0);
    upstream_conn_close(&c.uc, UPSTREAM_CLOSE_FAILED, "reset");     /* 1 failure */
    ck_assert_int_eq(c.uc.state, UPSTREAM_CLOSED);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    rec_connect(&f, &c, 0);
    upstream_conn_ok(&c.uc);                                        /* 0 */
    upstream_conn_close(&c.uc, UPSTREAM_CLOSE_FAILED, "reset");     /* 1 */
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    rec_connect(&f, &c, 0);
    upstream_conn_close(&c.uc, UPSTREAM_CLOSE_OK, "idle");          /* still 1 */
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    rec_connect(&f, &c, 0);
    upstream_conn_close(&c.uc, UPSTREAM_CLOSE_FAILED, "response timeout");  /* 2 */
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_str_eq(fx_target(&f, 0).reason, "response timeout (2 consecutive failures)");
    ck_assert(!upstream_available(f.u));
    ck_assert_int_eq(rec_open(&c), PMX_ERR);
    upstream_conn_release(&c.uc);
    port_close(&a);
    fx_finish(&f);
}
END_TEST

/* ---- connect timeout and backoff ---- */

START_TEST(test_upstream_connect_timeout_then_retry)
{
    struct fx f;
    struct port a, b;
    struct rec c;
    char line[256];

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen_full(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, connect_timeout: 300 }\nbalance: first\n"
            "health: { fail_after: 1, interval: 60000 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c);
    uint64_t start = reactor_now(f.r);  /* the clock the engine reads */
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.target, 0);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_msg(c.connected == 1, "%s", c.reason);
    ck_assert_int_eq(c.uc.target, 1);
    ck_assert_uint_ge(c.connected_at, start + 300);
    snprintf(line, sizeof(line), "connect to a (127.0.0.1:%d) failed: connect timeout", a.port);
    ck_assert_int_eq(fx_log_count(&f, line), 1);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_str_eq(fx_target(&f, 0).reason, "connect timeout (1 consecutive failure)");
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    upstream_conn_release(&c.uc);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_connect_timeout_gives_up)
{
    struct fx f;
    struct port a;
    struct rec c;

    fx_init(&f);
    port_open(&a, f.r);
    port_listen_full(&a);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, connect_timeout: 200 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            a.port);
    fx_start(&f);
    rec_init(&f, &c);
    uint64_t start = reactor_now(f.r);  /* the clock the engine reads */
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);
    run_for(&f, 100);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);
    ck_assert_int_eq(c.failed, 0);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    ck_assert_str_eq(c.reason, "connect timeout");
    ck_assert_uint_ge(c.failed_at, start + 200);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);   /* 1 failure of 3 */
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    upstream_conn_release(&c.uc);
    port_close(&a);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_backoff)
{
    struct fx f;
    struct port a;
    struct rec c;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, backoff_min: 300, backoff_max: 5000 }\nretries: 0\n"
            "health: { fail_after: 100 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            a.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    uint64_t first = c.failed_at;
    /* The next open waits backoff_min, then tries (and fails again). */
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_BACKOFF);
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 1);
    ck_assert(run_until(&f, rec_has_failed_twice, &c, WAIT_MS));
    ck_assert_int_eq(c.connected, 0);
    ck_assert_uint_ge(c.failed_at, first + 300);
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 2);
    uint64_t second = c.failed_at;
    /* Twice as long after a second give-up; the target is back meanwhile. */
    port_listen(&a);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_BACKOFF);
    run_for(&f, 300);
    ck_assert_int_eq(c.uc.state, UPSTREAM_BACKOFF);
    ck_assert_int_eq(c.connected, 0);       /* (a's failures are probed: a.accepted counts probes) */
    ck_assert(run_until(&f, rec_has_connected, &c, WAIT_MS));
    ck_assert_uint_ge(c.connected_at, second + 600);
    /* A connection that proved itself starts the backoff over. */
    upstream_conn_ok(&c.uc);
    upstream_conn_close(&c.uc, UPSTREAM_CLOSE_OK, "done");
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);
    upstream_conn_release(&c.uc);
    port_close(&a);
    fx_finish(&f);
}
END_TEST

/* ---- warm spare handover, reload ---- */

START_TEST(test_upstream_conn_move)
{
    struct fx f;
    struct port a;
    struct rec spare, session;

    fx_init(&f);
    port_open(&a, f.r);
    port_listen(&a);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            a.port);
    fx_start(&f);
    rec_init(&f, &spare);
    rec_init(&f, &session);
    rec_connect(&f, &spare, 0);
    ck_assert(run_until(&f, port_accepted, &a, WAIT_MS));
    int fd = spare.uc.conn.fd;
    uint64_t id = spare.uc.id;
    ck_assert_int_ge(fd, 0);
    upstream_conn_move(&spare.uc, &session.uc);
    ck_assert_int_eq(session.uc.state, UPSTREAM_READY);
    ck_assert_int_eq(session.uc.conn.fd, fd);
    ck_assert_int_eq(upstream_conn_socket(&session.uc)->fd, fd);
    ck_assert_int_eq(session.uc.target, 0);
    ck_assert_uint_eq(session.uc.id, id);
    ck_assert_str_eq(session.uc.peer, spare.uc.peer);
    ck_assert_int_eq(spare.uc.state, UPSTREAM_CLOSED);
    ck_assert_int_eq(spare.uc.conn.fd, -1);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 1);
    /* Watched for nothing until its new owner says. */
    ck_assert_int_eq(reactor_mask(f.r, fd), REACTOR_NONE);
    upstream_conn_watch(&session.uc, REACTOR_READABLE);
    ck_assert_int_eq(send(port_last_conn(&a), "hi", 2, MSG_NOSIGNAL), 2);
    ck_assert(run_until(&f, rec_has_data, &session, WAIT_MS));
    ck_assert_str_eq(session.data, "hi");
    ck_assert_uint_eq(spare.len, 0);
    /* The spare opens again, a connection of its own. */
    rec_connect(&f, &spare, 0);
    ck_assert_int_ne(spare.uc.conn.fd, fd);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 2);
    upstream_conn_release(&session.uc);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 1);
    upstream_conn_release(&spare.uc);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    port_close(&a);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_reload)
{
    struct fx f;
    struct port a, b, n;
    struct rec c0, c1, c2;
    struct config next;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_open(&n, f.r);
    port_listen(&b);
    port_listen(&n);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\nretries: 0\n"
            "health: { fail_after: 1, interval: 100 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    rec_init(&f, &c0);
    rec_init(&f, &c1);
    rec_init(&f, &c2);
    ck_assert_int_eq(rec_open(&c0), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c0, WAIT_MS));
    ck_assert_int_eq(c0.failed, 1);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    rec_connect(&f, &c1, 1);
    ck_assert(run_until(&f, port_accepted, &b, WAIT_MS));

    /* b goes, n comes, a stays (by name, at index 0). */
    fx_load(&f, &next,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\nretries: 0\n"
            "health: { fail_after: 1, interval: 100 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: n, host: 127.0.0.1, port: %d }\n",
            a.port, n.port);
    ck_assert_int_eq(upstream_reload(f.u, &next.services[0]), PMX_OK);
    config_free(&f.cfg);                    /* nothing may point into it now */
    f.cfg = next;
    ck_assert_int_eq(upstream_target_count(f.u), 2);
    ck_assert_str_eq(fx_target(&f, 0).name, "a");
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    ck_assert_str_eq(fx_target(&f, 0).reason, "connect: Connection refused (1 consecutive failure)");
    ck_assert_str_eq(fx_target(&f, 1).name, "n");
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 0);

    /* The connection to b finishes: no target any more, still working. */
    ck_assert_int_eq(c1.uc.target, -1);
    ck_assert_int_eq(c1.uc.state, UPSTREAM_READY);
    ck_assert_int_eq(send(port_last_conn(&b), "xy", 2, MSG_NOSIGNAL), 2);
    ck_assert(run_until(&f, rec_has_data, &c1, WAIT_MS));
    ck_assert_str_eq(c1.data, "xy");
    ck_assert_int_eq(conn_send(upstream_conn_socket(&c1.uc), "zz", 2), PMX_OK);
    char got[8];
    struct pollfd pfd = { .fd = port_last_conn(&b), .events = POLLIN };
    ck_assert_int_eq(poll(&pfd, 1, WAIT_MS), 1);
    ck_assert_int_eq(recv(pfd.fd, got, sizeof(got), 0), 2);
    ck_assert(memcmp(got, "zz", 2) == 0);

    /* New connections go to the new target. */
    rec_connect(&f, &c2, 1);
    char want[NET_ADDR_MAX];
    addr_text(&n, want, sizeof(want));
    ck_assert_str_eq(c2.uc.peer, want);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 1);
    upstream_conn_close(&c1.uc, UPSTREAM_CLOSE_FAILED, "reset");
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 1);
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);

    /* a is still probed after the reload and comes back. The reload
     * itself told the owner (new targets may be usable): count from here. */
    ck_assert_int_ge(f.ups, 1);
    f.ups = 0;
    port_listen(&a);
    ck_assert(run_until(&f, fx_saw_up, &f, WAIT_MS));
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    rec_connect(&f, &c0, 0);
    upstream_conn_release(&c0.uc);
    upstream_conn_release(&c1.uc);
    upstream_conn_release(&c2.uc);
    port_close(&a);
    port_close(&b);
    port_close(&n);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_reload_reorders)
{
    struct fx f;
    struct port a, b;
    struct rec c[3];
    struct config next;

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);
    port_listen(&a);
    port_listen(&b);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: least_conn\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n",
            a.port, b.port);
    fx_start(&f);
    for (int i = 0; i < 3; i++)
        rec_init(&f, &c[i]);
    ck_assert_int_eq(rec_open(&c[0]), PMX_OK);
    ck_assert_int_eq(rec_open(&c[1]), PMX_OK);
    ck_assert_int_eq(rec_open(&c[2]), PMX_OK);
    struct all_connected all = { c, 3 };
    ck_assert(run_until(&f, recs_connected, &all, WAIT_MS));
    int on_a = (c[0].uc.target == 0) + (c[1].uc.target == 0) + (c[2].uc.target == 0);
    ck_assert(on_a == 1 || on_a == 2);
    int was[3];
    for (int i = 0; i < 3; i++)
        was[i] = c[i].uc.target;

    /* Same targets, the other way round: everything follows the names. */
    fx_load(&f, &next,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: least_conn\n"
            "targets:\n  - { name: b, host: 127.0.0.1, port: %d }\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            b.port, a.port);
    ck_assert_int_eq(upstream_reload(f.u, &next.services[0]), PMX_OK);
    config_free(&f.cfg);
    f.cfg = next;
    ck_assert_str_eq(fx_target(&f, 0).name, "b");
    ck_assert_str_eq(fx_target(&f, 1).name, "a");
    ck_assert_uint_eq(fx_target(&f, 1).conns, (unsigned)on_a);
    ck_assert_uint_eq(fx_target(&f, 0).conns, (unsigned)(3 - on_a));
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(c[i].uc.target, 1 - was[i]);
    /* Closing them takes the counts back to 0, not below, not elsewhere. */
    upstream_conn_release(&c[0].uc);
    upstream_conn_release(&c[1].uc);
    upstream_conn_release(&c[2].uc);
    ck_assert_uint_eq(fx_target(&f, 0).conns, 0);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 0);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_reload_mid_open)
{
    struct fx f;
    struct port a, b, n;
    struct rec c;
    struct config next;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_open(&n, f.r);
    port_listen_full(&b);                   /* hangs */
    port_listen(&n);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, connect_timeout: 300 }\nbalance: first\nretries: 2\n"
            "health: { fail_after: 100 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n"
            "  - { name: n, host: 127.0.0.1, port: %d }\n",
            a.port, b.port, n.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.target, 0);
    /* a refused; now connecting to b, which hangs. */
    for (int i = 0; i < 500 && c.uc.target != 1; i++)
        run_for(&f, 5);
    ck_assert_int_eq(c.uc.target, 1);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CONNECTING);

    /* The other way round: the targets this open tried follow their
     * names, so after b's timeout the last try goes to n, not to a again. */
    fx_load(&f, &next,
            "local: { port: 1 }\npool: { connections: 1, connect_timeout: 300 }\nbalance: first\nretries: 2\n"
            "health: { fail_after: 100 }\n"
            "targets:\n  - { name: n, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n"
            "  - { name: a, host: 127.0.0.1, port: %d }\n",
            n.port, b.port, a.port);
    ck_assert_int_eq(upstream_reload(f.u, &next.services[0]), PMX_OK);
    config_free(&f.cfg);
    f.cfg = next;
    ck_assert_int_eq(c.uc.target, 1);
    ck_assert_uint_eq(fx_target(&f, 1).conns, 1);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_msg(c.connected == 1, "%s", c.reason);
    ck_assert_int_eq(c.uc.target, 0);
    ck_assert_int_eq(fx_log_count(&f, "connect to a "), 1);
    ck_assert_int_eq(fx_log_count(&f, "connect to b "), 1);
    upstream_conn_release(&c.uc);
    port_close(&a);
    port_close(&b);
    port_close(&n);
    fx_finish(&f);
}
END_TEST

START_TEST(test_upstream_retry_prefers_primary)
{
    struct fx f;
    struct port p1, p2, s;
    struct rec c;

    fx_init(&f);
    port_open(&p1, f.r);                    /* refuses */
    port_open(&p2, f.r);
    port_open(&s, f.r);
    port_listen(&p2);
    port_listen(&s);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\nbalance: first\n"
            "targets:\n  - { name: spare, host: 127.0.0.1, port: %d, backup: true }\n"
            "  - { name: p1, host: 127.0.0.1, port: %d }\n  - { name: p2, host: 127.0.0.1, port: %d }\n",
            s.port, p1.port, p2.port);
    fx_start(&f);
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.target, 1);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.connected, 1);
    ck_assert_int_eq(c.uc.target, 2);       /* the other primary, not the backup */
    ck_assert_int_eq(fx_target(&f, 1).state, HEALTH_UP);
    run_for(&f, 20);
    ck_assert_int_eq(s.accepted, 0);
    upstream_conn_release(&c.uc);
    port_close(&p1);
    port_close(&p2);
    port_close(&s);
    fx_finish(&f);
}
END_TEST

static bool port_accepted_twice(const void *arg)
{
    const struct port *p = arg;

    return p->accepted >= 2;
}

START_TEST(test_upstream_stop)
{
    struct fx f;
    struct port a, b;
    struct rec c;

    fx_init(&f);
    port_open(&a, f.r);
    port_open(&b, f.r);                     /* refuses */
    port_listen(&a);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, backoff_min: 1000 }\nbalance: first\nretries: 0\n"
            "health: { fail_after: 1000, interval: 50, check_up: true }\n"
            "targets:\n  - { name: b, host: 127.0.0.1, port: %d }\n  - { name: a, host: 127.0.0.1, port: %d }\n",
            b.port, a.port);
    fx_start(&f);
    /* a is probed while up (check_up). */
    ck_assert(run_until(&f, port_accepted_twice, &a, WAIT_MS));
    rec_init(&f, &c);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    ck_assert_int_eq(c.uc.state, UPSTREAM_BACKOFF);
    upstream_stop(f.u);
    ck_assert_int_eq(c.uc.state, UPSTREAM_CLOSED);
    /* The owner may still open (its service keeps serving its clients);
     * only what runs by itself (probes, reconnects) stops. */
    ck_assert_int_eq(rec_open(&c), PMX_OK);
    upstream_conn_release(&c.uc);
    run_for(&f, 100);                       /* let a probe in flight finish */
    int probes = a.accepted;
    run_for(&f, 300);
    ck_assert_int_eq(a.accepted, probes);
    ck_assert_int_eq(c.failed, 1);
    port_close(&a);
    port_close(&b);
    fx_finish(&f);
}
END_TEST

/* A route named target a (upstream_conn_open_target): only a is tried,
 * never b, whatever retries says; a down target fails at once with the
 * reason; connect_timeout is the route's. */
START_TEST(test_upstream_open_target_only_that_one)
{
    struct fx f;
    struct port a, b, slow;
    struct rec c1, c2, c3;
    const char *why = NULL;

    fx_init(&f);
    port_open(&a, f.r);                     /* refuses */
    port_open(&b, f.r);
    port_listen(&b);
    port_open(&slow, f.r);
    port_listen_full(&slow);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1, connect_timeout: 5000 }\nretries: 2\n"
            "health: { fail_after: 1, interval: 60000 }\n"
            "targets:\n  - { name: a, host: 127.0.0.1, port: %d }\n  - { name: b, host: 127.0.0.1, port: %d }\n"
            "  - { name: slow, host: 127.0.0.1, port: %d }\n",
            a.port, b.port, slow.port);
    fx_start(&f);
    rec_init(&f, &c1);
    if (upstream_conn_open_target(&c1.uc, 0, -1, &why) == PMX_OK) {
        ck_assert(run_until(&f, rec_settled, &c1, WAIT_MS));
        ck_assert_int_eq(c1.failed, 1);
        ck_assert_str_eq(c1.reason, "connect: Connection refused");
    } else {
        ck_assert_str_eq(why, "connect: Connection refused");
    }
    ck_assert_int_eq(c1.connected, 0);
    ck_assert_int_eq(b.accepted, 0);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_DOWN);
    /* Down now: refused at once, nothing tried. */
    ck_assert_int_eq(upstream_conn_open_target(&c1.uc, 0, -1, &why), PMX_ERR);
    ck_assert_str_eq(why, "target a is down");
    ck_assert_uint_eq(fx_target(&f, 0).connects, 1);
    rec_init(&f, &c2);
    ck_assert_int_eq(upstream_conn_open_target(&c2.uc, 1, -1, &why), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c2, WAIT_MS));
    ck_assert_int_eq(c2.connected, 1);
    ck_assert_int_eq(c2.uc.target, 1);
    /* The route's connect_timeout, not pool.connect_timeout (5 s). */
    rec_init(&f, &c3);
    uint64_t t0 = reactor_now(f.r);
    ck_assert_int_eq(upstream_conn_open_target(&c3.uc, 2, 100, &why), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c3, WAIT_MS));
    ck_assert_int_eq(c3.failed, 1);
    ck_assert_str_eq(c3.reason, "connect timeout");
    ck_assert_uint_lt(reactor_now(f.r) - t0, 2000);
    /* A plain open afterwards is the balancer's again. */
    upstream_conn_release(&c1.uc);
    upstream_conn_release(&c2.uc);
    upstream_conn_release(&c3.uc);
    port_close(&a);
    port_close(&b);
    port_close(&slow);
    fx_finish(&f);
}
END_TEST

/* HOST:PORT from a route (upstream_conn_open_host): resolved by the
 * resolver, connected outside the targets (target -1, no target counts
 * anything); a refused connect is reported, blames no target. */
START_TEST(test_upstream_open_host)
{
    struct fx f;
    struct port a, dead;
    struct rec c1, c2;
    const char *why = NULL;
    char line[64];

    fx_init(&f);
    port_open(&a, f.r);
    port_listen(&a);
    port_open(&dead, f.r);                  /* refuses */
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\n"
            "targets:\n  - { name: t, host: 127.0.0.1, port: %d }\n", dead.port);
    struct resolver *rs = resolver_create(f.r);
    ck_assert_ptr_nonnull(rs);
    struct upstream_owner owner = { .target_up = fx_on_target_up, .data = &f };
    f.u = upstream_create(f.r, rs, &f.cfg.services[0], &owner);
    ck_assert_ptr_nonnull(f.u);
    f.ticker = reactor_timer_add(f.r, 10, fx_tick, &f);
    rec_init(&f, &c1);
    ck_assert_int_eq(upstream_conn_open_host(&c1.uc, "127.0.0.1", a.port, -1, &why), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c1, WAIT_MS));
    ck_assert_msg(c1.connected == 1, "%s", c1.reason);
    ck_assert_int_eq(c1.uc.target, -1);
    snprintf(line, sizeof(line), "127.0.0.1:%d", a.port);
    ck_assert_str_eq(c1.uc.peer, line);
    ck_assert(run_until(&f, port_accepted, &a, WAIT_MS));
    rec_init(&f, &c2);
    if (upstream_conn_open_host(&c2.uc, "127.0.0.1", dead.port, -1, &why) == PMX_OK) {
        ck_assert(run_until(&f, rec_settled, &c2, WAIT_MS));
        ck_assert_int_eq(c2.failed, 1);
        ck_assert_str_eq(c2.reason, "connect: Connection refused");
    }
    ck_assert_uint_eq(fx_target(&f, 0).connects, 0);
    ck_assert_int_eq(fx_target(&f, 0).state, HEALTH_UP);
    /* Not an address: the resolver says so. */
    ck_assert_int_eq(upstream_conn_open_host(&c2.uc, "127.0.0.1", 70000, -1, &why), PMX_ERR);
    ck_assert_str_eq(why, "invalid address");
    /* Released while resolving: the lookup is cancelled. */
    ck_assert_int_eq(upstream_conn_open_host(&c2.uc, "name.invalid", 1, -1, &why), PMX_OK);
    upstream_conn_release(&c2.uc);
    upstream_conn_release(&c1.uc);
    port_close(&a);
    port_close(&dead);
    resolver_destroy(rs);       /* before the reactor it delivers through */
    fx_finish(&f);
}
END_TEST

/* A route's HOST:PORT whose lookup outlasts connect_timeout fails with
 * that reason and keeps the name it was given (it tried a zeroed address
 * and reported "Address family not supported" before). The resolver
 * delivers through a reactor that never runs: the lookup never finishes. */
START_TEST(test_upstream_open_host_lookup_timeout)
{
    struct fx f;
    struct port dead;
    struct rec c;
    const char *why = NULL;

    fx_init(&f);
    port_open(&dead, f.r);
    fx_load(&f, &f.cfg,
            "local: { port: 1 }\npool: { connections: 1 }\n"
            "targets:\n  - { name: t, host: 127.0.0.1, port: %d }\n", dead.port);
    struct reactor *silent = reactor_create(8);
    ck_assert_ptr_nonnull(silent);
    struct resolver *rs = resolver_create(silent);
    ck_assert_ptr_nonnull(rs);
    struct upstream_owner owner = { .target_up = fx_on_target_up, .data = &f };
    f.u = upstream_create(f.r, rs, &f.cfg.services[0], &owner);
    ck_assert_ptr_nonnull(f.u);
    f.ticker = reactor_timer_add(f.r, 10, fx_tick, &f);
    rec_init(&f, &c);
    ck_assert_int_eq(upstream_conn_open_host(&c.uc, "db.example", 3306, 50, &why), PMX_OK);
    ck_assert(run_until(&f, rec_settled, &c, WAIT_MS));
    ck_assert_int_eq(c.failed, 1);
    ck_assert_msg(strstr(c.reason, "the address lookup did not finish") != NULL, "%s", c.reason);
    ck_assert_str_eq(c.uc.peer, "db.example:3306");
    upstream_conn_release(&c.uc);
    port_close(&dead);
    resolver_destroy(rs);
    reactor_destroy(silent);
    fx_finish(&f);
}
END_TEST

Suite *upstream_suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("balance");

    /* Each test takes at most a few seconds; the margin is for a loaded
     * machine and sanitizer builds. */
    tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_round_robin_alternates);
    tcase_add_test(tc, test_upstream_open_host_lookup_timeout);
    tcase_add_test(tc, test_upstream_round_robin_weights);
    tcase_add_test(tc, test_upstream_least_conn);
    tcase_add_test(tc, test_upstream_ip_hash);
    suite_add_tcase(s, tc);

    tc = tcase_create("retries");
    tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_retry_other_target);
    tcase_add_test(tc, test_upstream_retry_after_immediate_failure);
    tcase_add_test(tc, test_upstream_every_immediate_failure);
    tcase_add_test(tc, test_upstream_retries_zero);
    tcase_add_test(tc, test_upstream_retries_each_target_once);
    tcase_add_test(tc, test_upstream_retry_prefers_primary);
    tcase_add_test(tc, test_upstream_open_target_only_that_one);
    tcase_add_test(tc, test_upstream_open_host);
    suite_add_tcase(s, tc);

    tc = tcase_create("health");
    tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_fail_after_then_none_usable);
    tcase_add_test(tc, test_upstream_down_target_not_picked);
    tcase_add_test(tc, test_upstream_probe_brings_target_back);
    tcase_add_test(tc, test_upstream_check_up_wrong_reply);
    tcase_add_test(tc, test_upstream_backup_only_without_primary);
    tcase_add_test(tc, test_upstream_conn_ok_and_close_failed);
    suite_add_tcase(s, tc);

    tc = tcase_create("timeouts");
    tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_connect_timeout_then_retry);
    tcase_add_test(tc, test_upstream_connect_timeout_gives_up);
    tcase_add_test(tc, test_upstream_backoff);
    suite_add_tcase(s, tc);

    tc = tcase_create("handover");
    tcase_add_unchecked_fixture(tc, scratch_setup, scratch_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_upstream_conn_move);
    tcase_add_test(tc, test_upstream_reload);
    tcase_add_test(tc, test_upstream_reload_reorders);
    tcase_add_test(tc, test_upstream_reload_mid_open);
    tcase_add_test(tc, test_upstream_stop);
    suite_add_tcase(s, tc);
    return s;
}
