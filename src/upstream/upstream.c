/* The upstream layer: targets with their health and addresses, the
 * balancer, probes of down targets, re-resolution of target names, and the
 * connect engine shared by proxy sessions and fifo/funnel pools. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "reactor.h"
#include "resolver.h"
#include "upstream.h"

struct upstream_target {
    struct upstream *u;
    const struct target_config *config;
    struct sockaddr_storage addr;   /* where new connections go; addr_len 0: not resolved yet */
    socklen_t addr_len;
    char address[NET_ADDR_MAX];     /* addr as text, "-" when not resolved */
    bool named;                     /* host is a name: re-resolved every resolve_interval */
    long long lookup;               /* resolver lookup in progress, 0 none */
    struct health health;
    struct health_probe *probe;     /* in progress, or NULL */
    long long probe_timer;          /* next probe, 0 none */
    uint64_t connects;              /* statistics: connects started, kept across reloads */
    uint64_t connect_errors;        /* ... and failed */
    uint64_t requests;              /* responses it gave (upstream_conn_answered) */
    uint64_t bytes_sent;            /* to the target on connections closed since (upstream_open_bytes: the open ones) */
    uint64_t bytes_received;        /* from the target, same */
    /* Added at runtime (admin API): config points here, owned; such a
     * target lasts until the next reload. */
    struct target_config *own;
    /* Removed at runtime: takes no new connection; removed from the list
     * once its last connection has closed (upstream_tick). */
    bool draining;
};

struct upstream {
    struct reactor *r;
    struct resolver *rs;
    const struct service_config *config;
    struct upstream_owner owner;
    struct upstream_target *targets;
    struct balancer_target *bt;     /* the balancer's view, same order as targets */
    int ntargets;
    struct balancer *balancer;
    enum balance_strategy strategy;
    struct list_node conns;         /* every upstream_conn */
    struct list_node pending;       /* CONNECTING or BACKOFF, for the janitor */
    uint64_t next_resolve;
    bool stopped;
    int nlookups;                   /* ad hoc lookups in progress (UPSTREAM_MAX_LOOKUPS) */
};

static void target_probe_schedule(struct upstream_target *t, long delay);
static void conn_event(struct reactor *r, int fd, void *data, int mask);

uint64_t upstream_clock_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static const char *upstream_name(const struct upstream *u)
{
    return u->config->name;
}

/* ---- targets ------------------------------------------------------------ */

/* Whether host is an address literal (nothing to resolve). */
static bool host_is_literal(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

static void target_set_addr(struct upstream_target *t, const struct sockaddr_storage *addr, socklen_t len)
{
    t->addr_len = len;
    if (len > 0)
        memcpy(&t->addr, addr, len);
    if (len > 0)
        net_format_addr((const struct sockaddr *)&t->addr, len, t->address, sizeof(t->address));
    else
        snprintf(t->address, sizeof(t->address), "-");
}

static void target_init(struct upstream *u, struct upstream_target *t, const struct target_config *tc)
{
    memset(t, 0, sizeof(*t));
    t->u = u;
    t->config = tc;
    t->named = tc->unix_path[0] == '\0' && !host_is_literal(tc->host);
    target_set_addr(t, &tc->addr, tc->addr_len);
    health_init(&t->health, reactor_now(u->r));
}

/* Stops what runs on behalf of t (probe, its timer, a lookup). */
static void target_quiesce(struct upstream_target *t)
{
    health_probe_cancel(t->probe);
    t->probe = NULL;
    if (t->probe_timer > 0)
        reactor_timer_del(t->u->r, t->probe_timer);
    t->probe_timer = 0;
    if (t->lookup > 0 && t->u->rs != NULL)
        resolver_cancel(t->u->rs, t->lookup);
    t->lookup = 0;
}

static bool target_usable(const struct upstream_target *t)
{
    return t->addr_len > 0 && health_usable(&t->health) && !t->draining;
}

/* Tells the owner of a state change of t (after it is logged). */
static void target_notify_event(struct upstream *u, const struct upstream_target *t, const char *event)
{
    if (u->owner.target_event != NULL && !u->stopped)
        u->owner.target_event(u->owner.data, event, t->config->name, t->health.reason);
}

static void target_notify_up(struct upstream *u)
{
    if (u->owner.target_up != NULL && !u->stopped)
        u->owner.target_up(u->owner.data);
}

/* Probes run for down targets, for up ones with check_up, and for up ones
 * with failures not yet cleared: traffic may have moved away from such a
 * target (to another one, or a backup), so only a probe can clear or
 * confirm them. */
static bool target_wants_probes(const struct upstream_target *t)
{
    const struct service_config *c = t->u->config;

    return t->health.state == HEALTH_DOWN ||
           (t->health.state == HEALTH_UP && (c->health.check_up || t->health.fails > 0));
}

/* A failure seen by traffic or a probe. */
static void target_failure(struct upstream_target *t, const char *reason)
{
    struct upstream *u = t->u;

    if (health_failure(&t->health, u->config->health.fail_after, reason, reactor_now(u->r))) {
        log_error("service %s: target %s (%s) is down: %s", upstream_name(u), t->config->name, t->address,
                  t->health.reason);
        target_notify_event(u, t, "target_down");
    }
    if (target_wants_probes(t))
        target_probe_schedule(t, u->config->health.interval);
}

static void target_probe_done(void *data, bool ok, const char *reason)
{
    struct upstream_target *t = data;
    struct upstream *u = t->u;
    const struct service_config *c = u->config;

    t->probe = NULL;
    if (ok) {
        int fails_before = t->health.fails;
        if (health_probe_ok(&t->health, c->health.rise_after, reactor_now(u->r))) {
            log_error("service %s: target %s (%s) is up: %s", upstream_name(u), t->config->name, t->address,
                      t->health.reason);
            target_notify_event(u, t, "target_up");
            target_notify_up(u);
        } else if (t->health.state == HEALTH_DOWN) {
            /* Rising: the next probe goes at once, so that a target that
             * came back carries traffic within one interval. */
            log_info("service %s: target %s: probe ok (%d of %d)", upstream_name(u), t->config->name,
                     t->health.rises, c->health.rise_after);
            target_probe_schedule(t, 0);
            return;
        } else if (fails_before > 0) {
            /* Its failures are cleared: it may take back what moved away
             * (fail-back from a backup). */
            target_notify_up(u);
        }
    } else {
        log_debug("service %s: target %s: probe failed: %s", upstream_name(u), t->config->name, reason);
        char why[HEALTH_REASON_MAX];
        snprintf(why, sizeof(why), "probe: %s", reason);
        target_failure(t, why);
    }
    if (target_wants_probes(t))
        target_probe_schedule(t, c->health.interval);
}

static long target_probe_timer(struct reactor *r, long long id, void *data)
{
    struct upstream_target *t = data;
    struct upstream *u = t->u;
    const struct health_config *h = &u->config->health;

    t->probe_timer = 0;
    if (u->stopped || t->probe != NULL || !target_wants_probes(t))
        return REACTOR_TIMER_DONE;
    if (t->addr_len == 0) {
        target_probe_schedule(t, h->interval);
        return REACTOR_TIMER_DONE;
    }
    t->probe = health_probe_start(r, (const struct sockaddr *)&t->addr, t->addr_len, h->send, h->send_len,
                                  h->expect, h->expect_len, h->timeout, target_probe_done, t);
    if (t->probe == NULL)
        target_probe_schedule(t, h->interval);
    return REACTOR_TIMER_DONE;
}

static void target_probe_schedule(struct upstream_target *t, long delay)
{
    if (t->probe_timer > 0 || t->probe != NULL || t->u->stopped)
        return;
    long long id = reactor_timer_add(t->u->r, delay, target_probe_timer, t);
    t->probe_timer = id > 0 ? id : 0;
}

/* ---- name resolution ---------------------------------------------------- */

static void target_resolved(void *data, int err, const struct sockaddr_storage *addrs, const socklen_t *lens,
                            int naddrs)
{
    struct upstream_target *t = data;
    struct upstream *u = t->u;

    t->lookup = 0;
    if (err != 0 || naddrs < 1) {
        log_error("service %s: target %s: cannot resolve %s: %s; keeping %s", upstream_name(u), t->config->name,
                  t->config->host, err ? gai_strerror(err) : "no address", t->address);
        return;
    }
    bool was_unresolved = t->addr_len == 0;
    if (t->addr_len == lens[0] && memcmp(&t->addr, &addrs[0], lens[0]) == 0)
        return;
    char before[NET_ADDR_MAX];
    snprintf(before, sizeof(before), "%s", t->address);
    target_set_addr(t, &addrs[0], lens[0]);
    log_info("service %s: target %s: %s now resolves to %s (was %s); new connections go there",
             upstream_name(u), t->config->name, t->config->host, t->address, before);
    if (was_unresolved && target_usable(t))
        target_notify_up(u);
}

static void target_resolve(struct upstream_target *t)
{
    struct upstream *u = t->u;

    if (!t->named || t->lookup > 0 || u->rs == NULL || u->stopped)
        return;
    long long id = resolver_lookup(u->rs, t->config->host, t->config->port, target_resolved, t);
    if (id > 0)
        t->lookup = id;
    else
        log_error("service %s: target %s: cannot start resolving %s: %s", upstream_name(u), t->config->name,
                  t->config->host, strerror(errno));
}

/* ---- creating, reloading ------------------------------------------------ */

/* Fills targets and bt for c, keeping the state of targets of the same name
 * from the old arrays; map[old index] gets the new index or -1. */
static int upstream_build(struct upstream *u, const struct service_config *c, int *map)
{
    int n = c->ntargets;
    struct upstream_target *targets = calloc((size_t)n, sizeof(*targets));
    struct balancer_target *bt = calloc((size_t)n, sizeof(*bt));

    if (targets == NULL || bt == NULL) {
        free(targets);
        free(bt);
        return PMX_ERR;
    }
    for (int i = 0; i < u->ntargets; i++)
        map[i] = -1;
    for (int j = 0; j < n; j++) {
        const struct target_config *tc = &c->targets[j];
        struct upstream_target *t = &targets[j];
        target_init(u, t, tc);
        bt[j].name = tc->name;
        bt[j].weight = tc->weight;
        bt[j].backup = tc->backup;
        for (int i = 0; i < u->ntargets; i++) {
            struct upstream_target *old = &u->targets[i];
            if (map[i] != -1 || strcmp(old->config->name, tc->name) != 0)
                continue;
            map[i] = j;
            t->health = old->health;
            t->connects = old->connects;
            t->connect_errors = old->connect_errors;
            t->requests = old->requests;
            t->bytes_sent = old->bytes_sent;
            t->bytes_received = old->bytes_received;
            bool same_place = strcmp(old->config->host, tc->host) == 0 && old->config->port == tc->port &&
                              strcmp(old->config->unix_path, tc->unix_path) == 0;
            if (same_place && tc->addr_len == 0)
                target_set_addr(t, &old->addr, old->addr_len);
            bt[j].current = u->bt[i].current;
            bt[j].nlatency = u->bt[i].nlatency;
            memcpy(bt[j].latency_us, u->bt[i].latency_us, sizeof(bt[j].latency_us));
            break;
        }
    }
    for (int i = 0; i < u->ntargets; i++) {
        target_quiesce(&u->targets[i]);
        free(u->targets[i].own);
    }
    free(u->targets);
    free(u->bt);
    u->targets = targets;
    u->bt = bt;
    u->ntargets = n;
    u->config = c;
    for (int j = 0; j < n; j++) {
        struct upstream_target *t = &targets[j];
        if (t->addr_len == 0)
            target_resolve(t);
        if (target_wants_probes(t))
            target_probe_schedule(t, c->health.interval);
    }
    return PMX_OK;
}

static int upstream_set_balancer(struct upstream *u, enum balance_strategy s)
{
    if (u->balancer == NULL || u->strategy != s) {
        struct balancer *b = balancer_create(s, (uint32_t)getpid() ^ (uint32_t)reactor_clock_ms());
        if (b == NULL)
            return PMX_ERR;
        balancer_destroy(u->balancer);
        u->balancer = b;
        u->strategy = s;
    }
    return balancer_update(u->balancer, u->bt, (size_t)u->ntargets);
}

struct upstream *upstream_create(struct reactor *r, struct resolver *rs, const struct service_config *c,
                                 const struct upstream_owner *owner)
{
    struct upstream *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    u->r = r;
    u->rs = rs;
    u->config = c;
    if (owner != NULL)
        u->owner = *owner;
    list_init(&u->conns);
    list_init(&u->pending);
    if (upstream_build(u, c, NULL) != PMX_OK || upstream_set_balancer(u, c->balance) != PMX_OK) {
        upstream_destroy(u);
        return NULL;
    }
    u->next_resolve = reactor_now(r) + (uint64_t)PMX_MAX(c->resolve_interval, 0);
    return u;
}

void upstream_destroy(struct upstream *u)
{
    if (u == NULL)
        return;
    for (int i = 0; i < u->ntargets; i++) {
        target_quiesce(&u->targets[i]);
        free(u->targets[i].own);
    }
    balancer_destroy(u->balancer);
    free(u->targets);
    free(u->bt);
    free(u);
}

int upstream_reload(struct upstream *u, const struct service_config *c)
{
    int *map = calloc((size_t)PMX_MAX(u->ntargets, 1), sizeof(*map));
    struct list_node *n, *next;

    if (map == NULL)
        return PMX_ERR;
    int old_n = u->ntargets;
    unsigned *conns = calloc((size_t)PMX_MAX(old_n, 1), sizeof(*conns));
    if (conns == NULL) {
        free(map);
        return PMX_ERR;
    }
    for (int i = 0; i < old_n; i++)
        conns[i] = u->bt[i].conns;
    if (upstream_build(u, c, map) != PMX_OK) {
        free(conns);
        free(map);
        return PMX_ERR;
    }
    /* Connections keep going to the target they have; one whose target
     * was removed finishes without one. */
    for (int i = 0; i < old_n; i++)
        if (map[i] >= 0)
            u->bt[map[i]].conns = conns[i];
    list_for_each_safe(n, next, &u->conns) {
        struct upstream_conn *uc = list_entry(n, struct upstream_conn, link);
        if (uc->target >= 0 && uc->target < old_n)
            uc->target = map[uc->target];
        for (int k = 0; k < uc->tries && k < (int)PMX_ARRAY_LEN(uc->tried); k++)
            if (uc->tried[k] >= 0 && uc->tried[k] < old_n)
                uc->tried[k] = map[uc->tried[k]];
        if (uc->fixed_target >= 0 && uc->fixed_target < old_n)
            uc->fixed_target = map[uc->fixed_target];
    }
    free(conns);
    free(map);
    if (upstream_set_balancer(u, c->balance) != PMX_OK)
        log_error("service %s: reload: out of memory for the balancer", upstream_name(u));
    /* New targets may be usable: connections closed for lack of one may
     * open, and those on removed or backup targets move. */
    target_notify_up(u);
    return PMX_OK;
}

void upstream_stop(struct upstream *u)
{
    struct list_node *n, *next;

    u->stopped = true;
    for (int i = 0; i < u->ntargets; i++)
        target_quiesce(&u->targets[i]);
    list_for_each_safe(n, next, &u->pending) {
        struct upstream_conn *uc = list_entry(n, struct upstream_conn, pending);
        if (uc->state == UPSTREAM_BACKOFF) {
            list_remove(&uc->pending);
            uc->state = UPSTREAM_CLOSED;
        }
    }
}

bool upstream_available(const struct upstream *u)
{
    for (int i = 0; i < u->ntargets; i++)
        if (target_usable(&u->targets[i]))
            return true;
    return false;
}

int upstream_target_count(const struct upstream *u)
{
    return u->ntargets;
}

const char *upstream_target_name(const struct upstream *u, int i)
{
    return i >= 0 && i < u->ntargets ? u->targets[i].config->name : "";
}

void upstream_target_info(const struct upstream *u, int i, struct upstream_target_info *out)
{
    const struct upstream_target *t = &u->targets[i];

    out->name = t->config->name;
    out->address = t->address;
    out->state = t->health.state;
    out->reason = t->health.reason;
    out->conns = u->bt[i].conns;
    out->weight = t->config->weight;
    out->backup = t->config->backup;
    out->connects = t->connects;
    out->connect_errors = t->connect_errors;
    out->draining = t->draining;
    out->requests = t->requests;
    out->bytes_sent = t->bytes_sent;
    out->bytes_received = t->bytes_received;
}

void upstream_open_bytes(const struct upstream *u,
                         void (*fn)(void *data, int target, uint64_t sent, uint64_t received), void *data)
{
    /* At snapshot time only, so the data path pays nothing for per-target
     * byte counts. */
    for (const struct list_node *n = u->conns.next; n != &u->conns; n = n->next) {
        const struct upstream_conn *uc = list_entry(n, struct upstream_conn, link);
        if (uc->target >= 0 && uc->conn.fd >= 0)
            fn(data, uc->target, uc->conn.bytes_out, uc->conn.bytes_in);
    }
}

void upstream_conn_states(const struct upstream *u, uint64_t counts[4])
{
    const struct list_node *n;

    for (int i = 0; i < 4; i++)
        counts[i] = 0;
    for (n = u->conns.next; n != &u->conns; n = n->next) {
        const struct upstream_conn *uc = list_entry(n, struct upstream_conn, link);
        if ((unsigned)uc->state < 4)
            counts[uc->state]++;
    }
}

void upstream_target_set_maint(struct upstream *u, int i, bool down)
{
    struct upstream_target *t = &u->targets[i];

    if (!health_set_maint(&t->health, down, reactor_now(u->r)))
        return;
    log_error("service %s: target %s (%s) is %s: %s", upstream_name(u), t->config->name, t->address,
              health_state_name(t->health.state), t->health.reason);
    target_notify_event(u, t, down ? "target_down" : "target_up");
    if (!down) {
        target_notify_up(u);
        if (target_wants_probes(t))
            target_probe_schedule(t, u->config->health.interval);
    }
}

/* ---- runtime changes (admin API) ---------------------------------------- */

/*
 * Adding or removing a target replaces the arrays, as a reload does:
 * probes, probe timers and lookups hold pointers to targets, so they are
 * stopped on the old array and started again on the new one; connections
 * hold indexes, remapped with map[old] = new (-1: gone).
 */
static int upstream_resize(struct upstream *u, int n, const int *map)
{
    struct upstream_target *targets = calloc((size_t)PMX_MAX(n, 1), sizeof(*targets));
    struct balancer_target *bt = calloc((size_t)PMX_MAX(n, 1), sizeof(*bt));
    struct list_node *node;

    if (targets == NULL || bt == NULL) {
        free(targets);
        free(bt);
        return PMX_ERR;
    }
    for (int i = 0; i < u->ntargets; i++) {
        target_quiesce(&u->targets[i]);
        if (map[i] < 0) {
            free(u->targets[i].own);
            continue;
        }
        targets[map[i]] = u->targets[i];
        bt[map[i]] = u->bt[i];
    }
    for (node = u->conns.next; node != &u->conns; node = node->next) {
        struct upstream_conn *uc = list_entry(node, struct upstream_conn, link);
        if (uc->target >= 0 && uc->target < u->ntargets)
            uc->target = map[uc->target];
        for (int k = 0; k < uc->tries && k < (int)PMX_ARRAY_LEN(uc->tried); k++)
            if (uc->tried[k] >= 0 && uc->tried[k] < u->ntargets)
                uc->tried[k] = map[uc->tried[k]];
        if (uc->fixed_target >= 0 && uc->fixed_target < u->ntargets)
            uc->fixed_target = map[uc->fixed_target];
    }
    free(u->targets);
    free(u->bt);
    u->targets = targets;
    u->bt = bt;
    u->ntargets = n;
    for (int j = 0; j < n; j++) {
        struct upstream_target *t = &targets[j];
        if (t->u == NULL)
            continue;       /* the slot of a target being added: the caller fills it */
        if (t->addr_len == 0)
            target_resolve(t);
        if (target_wants_probes(t))
            target_probe_schedule(t, u->config->health.interval);
    }
    return PMX_OK;
}

int upstream_target_find(const struct upstream *u, const char *name)
{
    for (int i = 0; i < u->ntargets; i++)
        if (strcmp(u->targets[i].config->name, name) == 0)
            return i;
    return -1;
}

int upstream_target_add(struct upstream *u, const struct target_config *tc, char *err, size_t errlen)
{
    int n = u->ntargets;

    if (upstream_target_find(u, tc->name) >= 0) {
        snprintf(err, errlen, "a target named \"%s\" exists already", tc->name);
        return PMX_ERR;
    }
    if (n >= CONFIG_MAX_TARGETS) {
        snprintf(err, errlen, "the service has %d targets already", CONFIG_MAX_TARGETS);
        return PMX_ERR;
    }
    int *map = calloc((size_t)PMX_MAX(n, 1), sizeof(*map));
    struct target_config *own = malloc(sizeof(*own));
    if (map == NULL || own == NULL) {
        free(map);
        free(own);
        snprintf(err, errlen, "out of memory");
        return PMX_ERR;
    }
    *own = *tc;
    for (int i = 0; i < n; i++)
        map[i] = i;
    if (upstream_resize(u, n + 1, map) != PMX_OK) {
        free(map);
        free(own);
        snprintf(err, errlen, "out of memory");
        return PMX_ERR;
    }
    free(map);
    /* The new one is last: no connection refers to it yet. */
    struct upstream_target *t = &u->targets[n];
    target_init(u, t, own);
    t->own = own;
    u->bt[n].name = own->name;
    u->bt[n].weight = own->weight;
    u->bt[n].backup = own->backup;
    if (upstream_set_balancer(u, u->strategy) != PMX_OK)
        log_error("service %s: out of memory for the balancer", upstream_name(u));
    if (t->addr_len == 0)
        target_resolve(t);
    log_error("service %s: target %s (%s) added", upstream_name(u), own->name, t->address);
    target_notify_up(u);
    return PMX_OK;
}

/* Removes the draining targets whose last connection has closed. */
static void target_remove_drained(struct upstream *u)
{
    int n = 0, *map;
    bool any = false;

    for (int i = 0; i < u->ntargets; i++)
        any = any || (u->targets[i].draining && u->bt[i].conns == 0);
    if (!any || (map = calloc((size_t)u->ntargets, sizeof(*map))) == NULL)
        return;
    for (int i = 0; i < u->ntargets; i++) {
        struct upstream_target *t = &u->targets[i];
        if (t->draining && u->bt[i].conns == 0) {
            log_error("service %s: target %s (%s) drained and removed", upstream_name(u), t->config->name,
                      t->address);
            map[i] = -1;
        } else {
            map[i] = n++;
        }
    }
    if (upstream_resize(u, n, map) != PMX_OK)
        log_error("service %s: out of memory removing drained targets; trying again", upstream_name(u));
    else if (upstream_set_balancer(u, u->strategy) != PMX_OK)
        log_error("service %s: out of memory for the balancer", upstream_name(u));
    free(map);
}

void upstream_target_drain(struct upstream *u, int i)
{
    struct upstream_target *t = &u->targets[i];

    if (t->draining)
        return;
    t->draining = true;
    log_error("service %s: target %s (%s) draining: %u connections", upstream_name(u), t->config->name,
              t->address, u->bt[i].conns);
    /* Pool connections (fifo, funnel) move away once idle, as from a
     * target a reload removed; proxy sessions keep theirs until they end. */
    target_notify_up(u);
    target_remove_drained(u);
}

/* ---- the connect engine ------------------------------------------------- */

void upstream_conn_init(struct upstream *u, struct upstream_conn *uc, const struct upstream_conn_events *events,
                        void *data)
{
    memset(uc, 0, sizeof(*uc));
    uc->u = u;
    uc->events = events;
    uc->data = data;
    uc->state = UPSTREAM_CLOSED;
    uc->target = -1;
    uc->fixed_target = -1;
    uc->connect_timeout = -1;
    conn_init(&uc->conn, -1);
    list_init(&uc->pending);
    list_add_tail(&u->conns, &uc->link);
}

static bool conn_tried(const struct upstream_conn *uc, int t)
{
    for (int k = 0; k < uc->tries && k < (int)PMX_ARRAY_LEN(uc->tried); k++)
        if (uc->tried[k] == t)
            return true;
    return false;
}

/* The target for the next try of uc, or -1. */
static int conn_pick(struct upstream_conn *uc)
{
    struct upstream *u = uc->u;

    if (uc->fixed_target >= 0) {
        int t = uc->fixed_target;
        return t < u->ntargets && target_usable(&u->targets[t]) && !conn_tried(uc, t) ? t : -1;
    }
    for (int i = 0; i < u->ntargets; i++)
        u->bt[i].usable = target_usable(&u->targets[i]) && !conn_tried(uc, i);
    return balancer_pick(u->balancer, u->bt, (size_t)u->ntargets,
                         uc->client_len > 0 ? (const struct sockaddr *)&uc->client : NULL);
}

/* Closes the socket of a CONNECTING or READY connection, keeping what the
 * owner queued to send when keep_out. */
static void conn_drop_socket(struct upstream_conn *uc, bool keep_out)
{
    struct upstream *u = uc->u;
    struct buf out = uc->conn.out;

    if (keep_out)
        buf_init(&uc->conn.out);
    if (uc->conn.fd >= 0 && uc->target >= 0) {
        struct upstream_target *t = &u->targets[uc->target];
        t->bytes_sent += uc->conn.bytes_out;
        t->bytes_received += uc->conn.bytes_in;
        if (u->bt[uc->target].conns > 0)
            u->bt[uc->target].conns--;
    }
    if (uc->lookup > 0) {
        resolver_cancel(u->rs, uc->lookup);
        uc->lookup = 0;
        u->nlookups--;
    }
    conn_close(&uc->conn, u->r);
    conn_init(&uc->conn, -1);
    if (keep_out)
        uc->conn.out = out;
    list_remove(&uc->pending);
}

/* The connect timeout of uc's open (ms). */
static long conn_timeout(const struct upstream_conn *uc)
{
    return uc->connect_timeout >= 0 ? uc->connect_timeout : uc->u->config->connect_timeout;
}

/* Starts the connect of an ad hoc connection to its resolved address.
 * Returns PMX_OK (CONNECTING) or PMX_ERR with *reason. */
static int conn_try_adhoc(struct upstream_conn *uc, const char **reason)
{
    struct upstream *u = uc->u;
    static char why[HEALTH_REASON_MAX];

    uc->tries++;
    uc->id = conn_next_id();
    net_format_addr((const struct sockaddr *)&uc->adhoc_addr, uc->adhoc_len, uc->peer, sizeof(uc->peer));
    uc->connect_started_us = upstream_clock_us();
    int fd = net_connect((const struct sockaddr *)&uc->adhoc_addr, uc->adhoc_len, false);
    int err = errno;
    if (fd >= 0) {
        uc->conn.fd = fd;
        if (reactor_add(u->r, fd, REACTOR_WRITABLE, conn_event, uc) == PMX_OK) {
            uc->state = UPSTREAM_CONNECTING;
            uc->deadline = reactor_now(u->r) + (uint64_t)conn_timeout(uc);
            list_remove(&uc->pending);
            list_add_tail(&u->pending, &uc->pending);
            log_debug("service %s: upstream #%llu connecting to %s", upstream_name(u), (unsigned long long)uc->id,
                      uc->peer);
            return PMX_OK;
        }
        err = errno;
        close(fd);
        uc->conn.fd = -1;
    }
    snprintf(why, sizeof(why), "connect: %s", strerror(err));
    *reason = why;
    log_error("service %s: upstream #%llu connect to %s failed: %s", upstream_name(u), (unsigned long long)uc->id,
              uc->peer, why);
    errno = err == EMFILE || err == ENFILE ? err : 0;
    return PMX_ERR;
}

/* Tries targets until a connect is under way (PMX_OK), the tries allowed
 * are spent, or no untried target is usable (PMX_ERR; *reason says why).
 * A fixed target or an ad hoc address gets one try. */
static int conn_try(struct upstream_conn *uc, const char **reason)
{
    struct upstream *u = uc->u;
    const struct service_config *c = u->config;
    static char why[HEALTH_REASON_MAX];
    int max_tries = uc->fixed_target >= 0 ? 1 : c->retries + 1;

    errno = 0;
    if (uc->adhoc)
        return uc->tries == 0 ? conn_try_adhoc(uc, reason) : PMX_ERR;
    while (uc->tries < max_tries && uc->tries < UPSTREAM_MAX_TRIES) {
        int t = conn_pick(uc);
        if (t < 0)
            return PMX_ERR;
        struct upstream_target *target = &u->targets[t];
        if (uc->tries < (int)PMX_ARRAY_LEN(uc->tried))
            uc->tried[uc->tries] = t;
        uc->tries++;
        target->connects++;
        uc->target = t;
        uc->id = conn_next_id();
        snprintf(uc->peer, sizeof(uc->peer), "%s", target->address);
        uc->connect_started_us = upstream_clock_us();
        int fd = net_connect((const struct sockaddr *)&target->addr, target->addr_len, target->config->keep_alive);
        int err = errno;
        if (fd >= 0) {
            uc->conn.fd = fd;
            if (reactor_add(u->r, fd, REACTOR_WRITABLE, conn_event, uc) == PMX_OK) {
                uc->state = UPSTREAM_CONNECTING;
                uc->deadline = reactor_now(u->r) + (uint64_t)conn_timeout(uc);
                u->bt[t].conns++;
                list_add_tail(&u->pending, &uc->pending);
                log_debug("service %s: upstream #%llu connecting to %s (%s)", upstream_name(u),
                          (unsigned long long)uc->id, target->config->name, uc->peer);
                return PMX_OK;
            }
            err = errno;
            close(fd);
            uc->conn.fd = -1;
        }
        snprintf(why, sizeof(why), "connect: %s", strerror(err));
        target->connect_errors++;
        *reason = why;
        log_error("service %s: upstream #%llu connect to %s (%s) failed: %s", upstream_name(u),
                  (unsigned long long)uc->id, target->config->name, uc->peer, why);
        /* Out of descriptors is ours, not the target's. */
        if (err != EMFILE && err != ENFILE)
            target_failure(target, why);
        errno = err == EMFILE || err == ENFILE ? err : 0;
    }
    return PMX_ERR;
}

static long conn_backoff(const struct upstream_conn *uc)
{
    const struct service_config *c = uc->u->config;
    long delay = c->backoff_min;

    for (int round = uc->giveups; round > 1 && delay < c->backoff_max; round--)
        delay *= 2;
    return PMX_MIN(delay, c->backoff_max);
}

/* Every try of this open failed: report it; the next open waits for the
 * backoff. */
static void conn_give_up(struct upstream_conn *uc, const char *reason)
{
    struct upstream *u = uc->u;

    conn_drop_socket(uc, false);
    uc->state = UPSTREAM_CLOSED;
    uc->giveups++;
    uc->not_before = reactor_now(u->r) + (uint64_t)conn_backoff(uc);
    uc->events->failed(uc, reason);
}

/* A connect under way failed: blame the target and try the next. */
static void conn_connect_failed(struct upstream_conn *uc, const char *reason)
{
    struct upstream *u = uc->u;
    char why[HEALTH_REASON_MAX];

    if (uc->adhoc && uc->adhoc_len == 0) {
        /* A route's HOST:PORT whose name was still being looked up when
         * connect_timeout ran out: there is no address to try (and the
         * peer keeps the name the route gave). */
        snprintf(why, sizeof(why), "%s: the address lookup did not finish", reason);
        log_error("service %s: upstream #%llu connect to %s failed: %s", upstream_name(u),
                  (unsigned long long)uc->id, uc->peer, why);
        conn_drop_socket(uc, true);
        uc->state = UPSTREAM_CLOSED;
        conn_give_up(uc, why);
        return;
    }
    snprintf(why, sizeof(why), "%s", reason);
    log_error("service %s: upstream #%llu connect to %s (%s) failed: %s", upstream_name(u),
              (unsigned long long)uc->id, uc->target >= 0 ? u->targets[uc->target].config->name : "-", uc->peer,
              why);
    if (uc->target >= 0)
        u->targets[uc->target].connect_errors++;
    if (uc->target >= 0)
        target_failure(&u->targets[uc->target], why);
    conn_drop_socket(uc, true);
    uc->state = UPSTREAM_CLOSED;
    const char *last = why;
    if (conn_try(uc, &last) == PMX_OK)
        return;
    conn_give_up(uc, upstream_available(u) || uc->adhoc || uc->fixed_target >= 0 ? last : UPSTREAM_NONE_USABLE);
}

int upstream_conn_open(struct upstream_conn *uc, const struct sockaddr *client, socklen_t client_len)
{
    struct upstream *u = uc->u;
    uint64_t now = reactor_now(u->r);
    const char *reason = UPSTREAM_NONE_USABLE;

    if (uc->state != UPSTREAM_CLOSED)
        return PMX_OK;
    errno = 0;
    uc->fixed_target = -1;
    uc->adhoc = false;
    uc->connect_timeout = -1;
    /* A stopped layer (its service shutting down or replaced) still opens
     * connections its owner asks for: the clients it keeps serving need
     * them. Only what runs by itself stops. */
    if (!upstream_available(u))
        return PMX_ERR;
    uc->client_len = 0;
    if (client != NULL && client_len > 0 && client_len <= sizeof(uc->client)) {
        memcpy(&uc->client, client, client_len);
        uc->client_len = client_len;
    }
    uc->tries = 0;
    if (now < uc->not_before) {
        uc->state = UPSTREAM_BACKOFF;
        uc->deadline = uc->not_before;
        list_add_tail(&u->pending, &uc->pending);
        return PMX_OK;
    }
    if (conn_try(uc, &reason) == PMX_OK)
        return PMX_OK;
    int err = errno;
    uc->giveups++;
    uc->not_before = now + (uint64_t)conn_backoff(uc);
    errno = err;
    return PMX_ERR;
}

int upstream_conn_open_target(struct upstream_conn *uc, int i, long connect_timeout, const char **why)
{
    struct upstream *u = uc->u;

    *why = UPSTREAM_NONE_USABLE;
    if (uc->state != UPSTREAM_CLOSED)
        return PMX_OK;
    errno = 0;
    if (i < 0 || i >= u->ntargets)
        return PMX_ERR;
    uc->fixed_target = i;
    uc->adhoc = false;
    uc->connect_timeout = connect_timeout;
    uc->client_len = 0;
    uc->tries = 0;
    if (!target_usable(&u->targets[i])) {
        static char down[CONFIG_TARGET_NAME_MAX + 64];
        snprintf(down, sizeof(down), "target %s is %s", u->targets[i].config->name,
                 u->targets[i].addr_len == 0 ? "not resolved yet" : health_state_name(u->targets[i].health.state));
        *why = down;
        return PMX_ERR;
    }
    return conn_try(uc, why);
}

/* The lookup of an ad hoc address is done: connect, or give up. */
static void conn_adhoc_resolved(void *data, int err, const struct sockaddr_storage *addrs, const socklen_t *lens,
                                int naddrs)
{
    struct upstream_conn *uc = data;
    struct upstream *u = uc->u;
    const char *reason = NULL;
    char why[NET_ADDR_MAX + HEALTH_REASON_MAX + 64];

    uc->lookup = 0;
    u->nlookups--;
    if (err != 0 || naddrs < 1) {
        snprintf(why, sizeof(why), "cannot resolve %s: %s", uc->peer, err ? gai_strerror(err) : "no address");
        conn_give_up(uc, why);
        return;
    }
    memcpy(&uc->adhoc_addr, &addrs[0], lens[0]);
    uc->adhoc_len = lens[0];
    if (conn_try_adhoc(uc, &reason) != PMX_OK) {
        snprintf(why, sizeof(why), "%s", reason);
        conn_give_up(uc, why);
    }
}

int upstream_conn_open_host(struct upstream_conn *uc, const char *host, int port, long connect_timeout,
                            const char **why)
{
    struct upstream *u = uc->u;

    *why = "cannot resolve the address";
    if (uc->state != UPSTREAM_CLOSED)
        return PMX_OK;
    errno = 0;
    uc->fixed_target = -1;
    uc->adhoc = true;
    uc->adhoc_len = 0;
    uc->target = -1;
    uc->connect_timeout = connect_timeout;
    uc->client_len = 0;
    uc->tries = 0;
    /* Shown in logs until the address is known. */
    snprintf(uc->peer, sizeof(uc->peer), "%s:%d", host, port);
    if (u->rs == NULL) {
        *why = "no resolver";
        return PMX_ERR;
    }
    if (u->nlookups >= UPSTREAM_MAX_LOOKUPS) {
        *why = "too many address lookups in progress";
        return PMX_ERR;
    }
    long long id = resolver_lookup(u->rs, host, port, conn_adhoc_resolved, uc);
    if (id <= 0) {
        *why = errno == EINVAL ? "invalid address" : "cannot start resolving the address";
        return PMX_ERR;
    }
    uc->lookup = id;
    u->nlookups++;
    /* Resolving counts as connecting: connect_timeout covers both. */
    uc->state = UPSTREAM_CONNECTING;
    uc->deadline = reactor_now(u->r) + (uint64_t)conn_timeout(uc);
    list_add_tail(&u->pending, &uc->pending);
    return PMX_OK;
}

void upstream_conn_close(struct upstream_conn *uc, enum upstream_close how, const char *reason)
{
    struct upstream *u = uc->u;

    if (uc->state == UPSTREAM_READY || uc->state == UPSTREAM_CONNECTING)
        log_info("service %s: upstream #%llu close %s: %s (in %llu, out %llu bytes)", upstream_name(u),
                 (unsigned long long)uc->id, uc->peer, reason, (unsigned long long)uc->conn.bytes_in,
                 (unsigned long long)uc->conn.bytes_out);
    if (how == UPSTREAM_CLOSE_FAILED && uc->target >= 0 &&
        (uc->state == UPSTREAM_READY || uc->state == UPSTREAM_CONNECTING))
        target_failure(&u->targets[uc->target], reason);
    conn_drop_socket(uc, false);
    uc->state = UPSTREAM_CLOSED;
}

void upstream_conn_release(struct upstream_conn *uc)
{
    if (uc->u == NULL)
        return;
    conn_drop_socket(uc, false);
    uc->state = UPSTREAM_CLOSED;
    list_remove(&uc->link);
    uc->u = NULL;
}

void upstream_conn_answered(struct upstream_conn *uc)
{
    if (uc->u != NULL && uc->target >= 0)
        uc->u->targets[uc->target].requests++;
}

void upstream_conn_ok(struct upstream_conn *uc)
{
    struct upstream *u = uc->u;

    uc->giveups = 0;
    uc->not_before = 0;
    if (uc->target >= 0)
        health_traffic_ok(&u->targets[uc->target].health);
}

int upstream_pick(struct upstream *u, const struct sockaddr *client, socklen_t client_len)
{
    for (int i = 0; i < u->ntargets; i++)
        u->bt[i].usable = target_usable(&u->targets[i]);
    return balancer_pick(u->balancer, u->bt, (size_t)u->ntargets, client_len > 0 ? client : NULL);
}

bool upstream_sticky(const struct upstream *u)
{
    return u->strategy == BALANCE_IP_HASH;
}

bool upstream_wants_latency(const struct upstream *u)
{
    return u->strategy == BALANCE_LEAST_LATENCY;
}

void upstream_conn_observe(struct upstream_conn *uc, uint32_t us)
{
    struct upstream *u = uc->u;

    if (u->strategy == BALANCE_LEAST_LATENCY && uc->target >= 0)
        balancer_observe(&u->bt[uc->target], us);
}

bool upstream_conn_misplaced(const struct upstream_conn *uc)
{
    const struct upstream *u = uc->u;

    if (uc->state != UPSTREAM_READY)
        return false;
    if (uc->target < 0 || u->targets[uc->target].draining)
        return true;
    if (!u->targets[uc->target].config->backup)
        return false;
    /* A primary counts once it is up without failures to clear (after its
     * probes), so a connection does not flap between it and the backup. */
    for (int i = 0; i < u->ntargets; i++)
        if (!u->targets[i].config->backup && target_usable(&u->targets[i]) && u->targets[i].health.fails == 0)
            return true;
    return false;
}

void upstream_conn_watch(struct upstream_conn *uc, int mask)
{
    if (uc->conn.fd < 0 || uc->state != UPSTREAM_READY)
        return;
    if (reactor_set(uc->u->r, uc->conn.fd, mask, conn_event, uc) != PMX_OK)
        log_error_errno("upstream #%llu: epoll", (unsigned long long)uc->id);
}

struct conn *upstream_conn_socket(struct upstream_conn *uc)
{
    return &uc->conn;
}

void upstream_conn_move(struct upstream_conn *from, struct upstream_conn *to)
{
    struct upstream *u = from->u;

    if (from->conn.fd >= 0 && reactor_set(u->r, from->conn.fd, REACTOR_NONE, conn_event, to) != PMX_OK)
        log_error_errno("upstream #%llu: epoll", (unsigned long long)from->id);
    to->conn = from->conn;
    to->state = UPSTREAM_READY;
    to->target = from->target;
    to->id = from->id;
    to->ready_at = from->ready_at;
    memcpy(to->peer, from->peer, sizeof(to->peer));
    conn_init(&from->conn, -1);
    from->state = UPSTREAM_CLOSED;
    from->giveups = 0;
    from->not_before = 0;
}

static void conn_event(struct reactor *r, int fd, void *data, int mask)
{
    struct upstream_conn *uc = data;
    struct upstream *u = uc->u;

    if (uc->state == UPSTREAM_READY) {
        uc->events->io(uc, mask);
        return;
    }
    if (uc->state != UPSTREAM_CONNECTING)
        return;
    if (net_connect_result(fd) != PMX_OK) {
        char why[HEALTH_REASON_MAX];
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        conn_connect_failed(uc, why);
        return;
    }
    list_remove(&uc->pending);
    uc->state = UPSTREAM_READY;
    uc->ready_at = reactor_now(r);
    if (u->owner.connect_latency && u->strategy == BALANCE_LEAST_LATENCY && uc->target >= 0) {
        uint64_t us = upstream_clock_us() - uc->connect_started_us;
        balancer_observe(&u->bt[uc->target], (uint32_t)PMX_MIN(us, UINT32_MAX));
    }
    log_info("service %s: upstream #%llu connected to %s (%s)", upstream_name(u), (unsigned long long)uc->id,
             uc->target >= 0 ? u->targets[uc->target].config->name : uc->adhoc ? "a route's address" : "-", uc->peer);
    if (reactor_set(r, fd, REACTOR_NONE, conn_event, uc) != PMX_OK)
        log_error_errno("upstream #%llu: epoll", (unsigned long long)uc->id);
    uc->events->connected(uc);
}

void upstream_tick(struct upstream *u)
{
    uint64_t now = reactor_now(u->r);
    struct list_node *n, *next;
    struct list_node expired;

    /* Handled one at a time from a list of their own: a handler may open,
     * close or release any connection. */
    list_init(&expired);
    list_for_each_safe(n, next, &u->pending) {
        struct upstream_conn *uc = list_entry(n, struct upstream_conn, pending);
        if (now >= uc->deadline) {
            list_remove(&uc->pending);
            list_add_tail(&expired, &uc->pending);
        }
    }
    while (!list_empty(&expired)) {
        struct upstream_conn *uc = list_entry(expired.next, struct upstream_conn, pending);
        if (uc->state == UPSTREAM_CONNECTING) {
            conn_connect_failed(uc, "connect timeout");
        } else if (uc->state == UPSTREAM_BACKOFF) {
            list_remove(&uc->pending);
            uc->state = UPSTREAM_CLOSED;
            const char *reason = UPSTREAM_NONE_USABLE;
            uc->tries = 0;
            if (u->stopped || !upstream_available(u) || conn_try(uc, &reason) != PMX_OK)
                conn_give_up(uc, upstream_available(u) ? reason : UPSTREAM_NONE_USABLE);
        } else {
            list_remove(&uc->pending);
        }
    }
    target_remove_drained(u);
    if (u->config->resolve_interval > 0 && now >= u->next_resolve) {
        u->next_resolve = now + (uint64_t)u->config->resolve_interval;
        for (int i = 0; i < u->ntargets; i++)
            target_resolve(&u->targets[i]);
    }
}
