/* Unit tests for the balancer: each strategy's distribution and order, the
 * ip_hash ring's stability when targets come and go, least_latency's
 * exploration, the backup tier, and the strategy names. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "balancer.h"
#include "suites.h"

/* ck_assert reports every passing check to the parent process: loops of
 * thousands of picks check with this instead. */
#define REQUIRE(cond, ...) \
    do { \
        if (!(cond)) \
            ck_abort_msg(__VA_ARGS__); \
    } while (0)

#define MAX_TARGETS 4096
#define NCLIENTS 1000

static const enum balance_strategy all_strategies[] = {
    BALANCE_ROUND_ROBIN, BALANCE_RANDOM, BALANCE_IP_HASH,
    BALANCE_LEAST_CONN, BALANCE_LEAST_LATENCY, BALANCE_FIRST,
};

static char names[MAX_TARGETS][24];

/* Targets named t0, t1, ... with the given weights, all usable. */
static void make_targets(struct balancer_target *t, const int *weights, size_t n)
{
    memset(t, 0, n * sizeof(*t));
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), "t%zu", i);
        t[i].name = names[i];
        t[i].weight = weights != NULL ? weights[i] : 1;
        t[i].usable = true;
    }
}

static struct balancer *make_balancer(enum balance_strategy s, struct balancer_target *t, size_t n)
{
    struct balancer *b = balancer_create(s, 42);

    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(balancer_update(b, t, n), PMX_OK);
    return b;
}

/* Client i of the ip_hash tests: 10.x.y.z spread over the IPv4 space's
 * low bits, so neighbouring clients differ in one byte only. */
static struct sockaddr_storage client_v4(uint32_t i, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    in->sin_addr.s_addr = htonl(0x0a000000u + i);
    return ss;
}

/* The same address as ::ffff:10.x.y.z. */
static struct sockaddr_storage client_v4mapped(uint32_t i, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    uint32_t a = htonl(0x0a000000u + i);

    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    in6->sin6_addr.s6_addr[10] = 0xff;
    in6->sin6_addr.s6_addr[11] = 0xff;
    memcpy(&in6->sin6_addr.s6_addr[12], &a, 4);
    return ss;
}

static struct sockaddr_storage client_v6(uint32_t i)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    in6->sin6_addr.s6_addr[0] = 0x20;
    in6->sin6_addr.s6_addr[1] = 0x01;
    in6->sin6_addr.s6_addr[13] = (uint8_t)(i >> 16);
    in6->sin6_addr.s6_addr[14] = (uint8_t)(i >> 8);
    in6->sin6_addr.s6_addr[15] = (uint8_t)i;
    return ss;
}

static int pick_client(struct balancer *b, struct balancer_target *t, size_t n,
                       const struct sockaddr_storage *ss)
{
    return balancer_pick(b, t, n, (const struct sockaddr *)ss);
}

/* Counts npicks picks per target into count (n entries). */
static void count_picks(struct balancer *b, struct balancer_target *t, size_t n,
                        unsigned npicks, unsigned *count)
{
    memset(count, 0, n * sizeof(*count));
    for (unsigned k = 0; k < npicks; k++) {
        int i = balancer_pick(b, t, n, NULL);
        REQUIRE(i >= 0 && (size_t)i < n, "pick %u returned %d", k, i);
        count[i]++;
    }
}

/* Each share within tolerance (a fraction) of weight / sum of weights. */
static void check_shares(const unsigned *count, const int *weights, size_t n,
                         unsigned npicks, double tolerance, const char *what)
{
    int sum = 0;

    for (size_t i = 0; i < n; i++)
        sum += weights[i];
    for (size_t i = 0; i < n; i++) {
        double share = (double)count[i] / npicks;
        double want = (double)weights[i] / sum;
        ck_assert_msg(share > want - tolerance && share < want + tolerance,
                      "%s: target %zu got %.4f, want %.4f +- %.2f",
                      what, i, share, want, tolerance);
    }
}

START_TEST(test_balancer_names)
{
    enum balance_strategy s;
    char list[128];
    size_t parsed = 0;

    for (size_t i = 0; i < PMX_ARRAY_LEN(all_strategies); i++) {
        const char *name = balancer_strategy_name(all_strategies[i]);
        ck_assert_int_eq(balancer_strategy_parse(name, &s), PMX_OK);
        ck_assert_int_eq(s, all_strategies[i]);
    }
    ck_assert_str_eq(balancer_strategy_name(BALANCE_ROUND_ROBIN), "round_robin");
    ck_assert_str_eq(balancer_strategy_name(BALANCE_LEAST_LATENCY), "least_latency");
    ck_assert_str_eq(balancer_strategy_name((enum balance_strategy)99), "unknown");

    /* Every name the help text lists parses, and the list has them all. */
    ck_assert_uint_lt(strlen(balancer_strategy_names()), sizeof(list));
    strcpy(list, balancer_strategy_names());
    for (char *save = NULL, *name = strtok_r(list, ", ", &save); name != NULL;
         name = strtok_r(NULL, ", ", &save)) {
        ck_assert_msg(balancer_strategy_parse(name, &s) == PMX_OK, "'%s' does not parse", name);
        ck_assert_str_eq(balancer_strategy_name(s), name);
        parsed++;
    }
    ck_assert_uint_eq(parsed, PMX_ARRAY_LEN(all_strategies));

    s = BALANCE_FIRST;
    ck_assert_int_eq(balancer_strategy_parse("", &s), PMX_ERR);
    ck_assert_int_eq(balancer_strategy_parse("roundrobin", &s), PMX_ERR);
    ck_assert_int_eq(balancer_strategy_parse("Round_Robin", &s), PMX_ERR);
    ck_assert_int_eq(balancer_strategy_parse("round_robin ", &s), PMX_ERR);
    ck_assert_int_eq(balancer_strategy_parse("least", &s), PMX_ERR);
    ck_assert_int_eq(balancer_strategy_parse(NULL, &s), PMX_ERR);
    ck_assert_int_eq(s, BALANCE_FIRST);     /* untouched on error */
    ck_assert_ptr_null(balancer_create((enum balance_strategy)99, 1));
}
END_TEST

/* nginx's documented sequence for weights 5, 1, 1. */
START_TEST(test_balancer_rr_smooth_sequence)
{
    static const int weights[] = { 5, 1, 1 };
    static const char want[] = "aabacaa" "aabacaa";
    struct balancer_target t[3];
    struct balancer *b;
    char got[sizeof(want)] = { 0 };

    make_targets(t, weights, 3);
    b = make_balancer(BALANCE_ROUND_ROBIN, t, 3);
    for (size_t k = 0; k < sizeof(want) - 1; k++) {
        int i = balancer_pick(b, t, 3, NULL);
        ck_assert_int_ge(i, 0);
        got[k] = (char)('a' + i);
    }
    ck_assert_str_eq(got, want);

    /* An update starts the sequence again. */
    ck_assert_int_eq(balancer_pick(b, t, 3, NULL), 0);
    ck_assert_int_eq(balancer_update(b, t, 3), PMX_OK);
    for (size_t i = 0; i < 3; i++)
        ck_assert_int_eq(t[i].current, 0);
    for (size_t k = 0; k < 7; k++)
        got[k] = (char)('a' + balancer_pick(b, t, 3, NULL));
    got[7] = '\0';
    ck_assert_str_eq(got, "aabacaa");
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_rr_distribution)
{
    static const int weights[] = { 1, 2, 3, 4 };
    struct balancer_target t[4];
    unsigned count[4];
    struct balancer *b;

    make_targets(t, weights, 4);
    b = make_balancer(BALANCE_ROUND_ROBIN, t, 4);
    count_picks(b, t, 4, 10000, count);
    /* Exact over whole cycles of the weights' sum. */
    for (size_t i = 0; i < 4; i++)
        ck_assert_uint_eq(count[i], 1000u * (unsigned)weights[i]);
    check_shares(count, weights, 4, 10000, 0.02, "round_robin");

    /* A target going down leaves the others in proportion. */
    t[3].usable = false;
    count_picks(b, t, 4, 6000, count);
    ck_assert_uint_eq(count[3], 0);
    ck_assert_uint_le(count[0] > 1000 ? count[0] - 1000 : 1000 - count[0], 2);
    ck_assert_uint_le(count[2] > 3000 ? count[2] - 3000 : 3000 - count[2], 2);
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_random_distribution)
{
    static const int weights[] = { 1, 2, 3, 4 };
    struct balancer_target t[4];
    unsigned count[4];
    int seq1[64], seq2[64];
    struct balancer *b;
    bool differ = false;

    make_targets(t, weights, 4);
    b = make_balancer(BALANCE_RANDOM, t, 4);
    count_picks(b, t, 4, 10000, count);
    check_shares(count, weights, 4, 10000, 0.03, "random");
    balancer_destroy(b);

    /* The seed makes the sequence reproducible; another seed changes it. */
    b = balancer_create(BALANCE_RANDOM, 7);
    for (size_t k = 0; k < 64; k++)
        seq1[k] = balancer_pick(b, t, 4, NULL);
    balancer_destroy(b);
    b = balancer_create(BALANCE_RANDOM, 7);
    for (size_t k = 0; k < 64; k++)
        seq2[k] = balancer_pick(b, t, 4, NULL);
    balancer_destroy(b);
    ck_assert_mem_eq(seq1, seq2, sizeof(seq1));
    b = balancer_create(BALANCE_RANDOM, 8);
    for (size_t k = 0; k < 64; k++)
        differ |= balancer_pick(b, t, 4, NULL) != seq1[k];
    ck_assert(differ);
    balancer_destroy(b);

    /* Seed 0 is a valid seed (xorshift must not start at 0). */
    b = balancer_create(BALANCE_RANDOM, 0);
    count_picks(b, t, 4, 10000, count);
    check_shares(count, weights, 4, 10000, 0.03, "random seed 0");
    balancer_destroy(b);
}
END_TEST

/* Target name per client (NULL if none) for NCLIENTS IPv4 clients. */
static void ip_hash_owners(struct balancer *b, struct balancer_target *t, size_t n,
                           const char **owner)
{
    for (uint32_t c = 0; c < NCLIENTS; c++) {
        struct sockaddr_storage ss = client_v4(c * 2654435761u % 0xffffffu, 1000);
        int i = pick_client(b, t, n, &ss);
        REQUIRE(i >= 0 && (size_t)i < n, "client %u: pick %d", c, i);
        owner[c] = t[i].name;
    }
}

START_TEST(test_balancer_ip_hash_remove_one)
{
    struct balancer_target t[5], fewer[4];
    const char *before[NCLIENTS], *after[NCLIENTS];
    struct balancer *b;
    unsigned moved = 0, share[5] = { 0 };

    make_targets(t, NULL, 5);
    b = make_balancer(BALANCE_IP_HASH, t, 5);
    ip_hash_owners(b, t, 5, before);
    for (size_t c = 0; c < NCLIENTS; c++)
        share[before[c][1] - '0']++;
    for (size_t i = 0; i < 5; i++)
        ck_assert_msg(share[i] > 120 && share[i] < 280, "t%zu has %u of 1000 clients", i, share[i]);

    /* Remove t2; the survivors also change places in the array. */
    fewer[0] = t[4];
    fewer[1] = t[0];
    fewer[2] = t[3];
    fewer[3] = t[1];
    ck_assert_int_eq(balancer_update(b, fewer, 4), PMX_OK);
    ip_hash_owners(b, fewer, 4, after);
    for (size_t c = 0; c < NCLIENTS; c++) {
        if (strcmp(before[c], "t2") == 0) {
            moved++;
            continue;
        }
        REQUIRE(strcmp(before[c], after[c]) == 0, "client %zu moved from %s to %s",
                c, before[c], after[c]);
    }
    ck_assert_uint_eq(moved, share[2]);
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_ip_hash_add_one)
{
    struct balancer_target t[6];
    const char *before[NCLIENTS], *after[NCLIENTS];
    struct balancer *b;
    unsigned moved = 0;

    make_targets(t, NULL, 6);
    b = make_balancer(BALANCE_IP_HASH, t, 5);
    ip_hash_owners(b, t, 5, before);
    ck_assert_int_eq(balancer_update(b, t, 6), PMX_OK);
    ip_hash_owners(b, t, 6, after);
    for (size_t c = 0; c < NCLIENTS; c++) {
        if (before[c] == after[c])
            continue;
        REQUIRE(strcmp(after[c], "t5") == 0, "client %zu moved from %s to %s",
                c, before[c], after[c]);
        moved++;
    }
    /* About 1000 / 6. */
    ck_assert_msg(moved > 100 && moved < 240, "%u of 1000 clients moved", moved);
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_ip_hash_same_client)
{
    struct balancer_target t[5], shuffled[5];
    struct balancer *b, *b2;
    unsigned v6_used = 0;
    bool v6_seen[5] = { false };

    make_targets(t, NULL, 5);
    b = make_balancer(BALANCE_IP_HASH, t, 5);
    for (size_t k = 0; k < 5; k++)
        shuffled[k] = t[(k + 2) % 5];
    b2 = make_balancer(BALANCE_IP_HASH, shuffled, 5);
    for (uint32_t c = 0; c < NCLIENTS; c++) {
        struct sockaddr_storage v4 = client_v4(c * 7919u, 1000);
        struct sockaddr_storage v4_other_port = client_v4(c * 7919u, 65000);
        struct sockaddr_storage mapped = client_v4mapped(c * 7919u, 2000);
        int i = pick_client(b, t, 5, &v4);

        REQUIRE(i >= 0, "client %u: no pick", c);
        REQUIRE(pick_client(b, t, 5, &v4) == i, "client %u: not stable", c);
        REQUIRE(pick_client(b, t, 5, &v4_other_port) == i, "client %u: port matters", c);
        REQUIRE(pick_client(b, t, 5, &mapped) == i, "client %u: ::ffff: form differs", c);
        /* The ring depends on names, not on the order of the array. */
        int j = pick_client(b2, shuffled, 5, &v4);
        REQUIRE(j >= 0 && shuffled[j].name == t[i].name, "client %u: order matters", c);
    }
    /* Plain IPv6 clients spread too. */
    for (uint32_t c = 0; c < 200; c++) {
        struct sockaddr_storage v6 = client_v6(c);
        int i = pick_client(b, t, 5, &v6);
        ck_assert_int_ge(i, 0);
        v6_seen[i] = true;
    }
    for (size_t i = 0; i < 5; i++)
        v6_used += v6_seen[i];
    ck_assert_uint_eq(v6_used, 5);
    balancer_destroy(b);
    balancer_destroy(b2);
}
END_TEST

/* A target going down moves only its clients; when it is back, they
 * return. */
START_TEST(test_balancer_ip_hash_unusable)
{
    struct balancer_target t[5];
    const char *before[NCLIENTS], *down[NCLIENTS], *back[NCLIENTS];
    struct balancer *b;

    make_targets(t, NULL, 5);
    b = make_balancer(BALANCE_IP_HASH, t, 5);
    ip_hash_owners(b, t, 5, before);
    t[3].usable = false;
    ip_hash_owners(b, t, 5, down);
    t[3].usable = true;
    ip_hash_owners(b, t, 5, back);
    for (size_t c = 0; c < NCLIENTS; c++) {
        REQUIRE(down[c] != t[3].name, "client %zu on a down target", c);
        REQUIRE(before[c] == t[3].name || down[c] == before[c], "client %zu moved", c);
        REQUIRE(back[c] == before[c], "client %zu did not come back", c);
    }
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_ip_hash_weights_and_fallback)
{
    static const int weights[] = { 1, 3 };
    static const int rr_weights[] = { 5, 1, 1 };
    struct balancer_target t[3];
    struct balancer *b;
    unsigned count[2] = { 0, 0 };
    struct sockaddr_un un;
    char got[8] = { 0 };

    make_targets(t, weights, 2);
    b = make_balancer(BALANCE_IP_HASH, t, 2);
    for (uint32_t c = 0; c < 10000; c++) {
        struct sockaddr_storage ss = client_v4(c * 2654435761u % 0xffffffu, 1);
        int i = pick_client(b, t, 2, &ss);
        REQUIRE(i == 0 || i == 1, "client %u: pick %d", c, i);
        count[i]++;
    }
    check_shares(count, weights, 2, 10000, 0.05, "ip_hash");
    balancer_destroy(b);

    /* Without a client address (NULL, or a unix socket peer) ip_hash is
     * round robin. */
    make_targets(t, rr_weights, 3);
    b = make_balancer(BALANCE_IP_HASH, t, 3);
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    for (size_t k = 0; k < 7; k++) {
        const struct sockaddr *client = k % 2 ? (const struct sockaddr *)&un : NULL;
        got[k] = (char)('a' + balancer_pick(b, t, 3, client));
    }
    ck_assert_str_eq(got, "aabacaa");
    /* A pick with another array than the last update's does not read a
     * stale ring: round robin again. */
    ck_assert_int_eq(balancer_update(b, t, 3), PMX_OK);
    {
        struct sockaddr_storage ss = client_v4(1, 1);
        memset(got, 0, sizeof(got));
        for (size_t k = 0; k < 6; k++)
            got[k] = (char)('a' + pick_client(b, t, 2, &ss));
        ck_assert_str_eq(got, "aaabaa");
    }
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_least_conn)
{
    static const int weights[] = { 1, 2, 3, 4 };
    static const int mixed[] = { 1, 2, 2, 1 };
    struct balancer_target t[4];
    struct balancer *b;

    /* Equal targets, equal counts: they take turns. */
    make_targets(t, NULL, 4);
    b = make_balancer(BALANCE_LEAST_CONN, t, 4);
    for (int k = 0; k < 8; k++)
        ck_assert_int_eq(balancer_pick(b, t, 4, NULL), k % 4);
    /* Fewest connections wins. */
    t[0].conns = 3;
    t[1].conns = 1;
    t[2].conns = 0;
    t[3].conns = 2;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 2);
    t[2].usable = false;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 1);
    balancer_destroy(b);

    /* Ties go to the heavier target, then in turn among the heaviest. */
    make_targets(t, mixed, 4);
    b = make_balancer(BALANCE_LEAST_CONN, t, 4);
    for (int k = 0; k < 6; k++) {
        int i = balancer_pick(b, t, 4, NULL);
        ck_assert_int_eq(i, k % 2 == 0 ? 1 : 2);
    }
    /* Per unit of weight: 3 conns at weight 3 beat 2 at weight 1. */
    t[0].weight = 1;
    t[0].conns = 2;
    t[1].weight = 3;
    t[1].conns = 3;
    t[2].usable = t[3].usable = false;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 1);
    t[1].conns = 7;         /* 7/3 > 2/1 */
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 0);
    balancer_destroy(b);

    /* Connections that stay open end up in proportion to the weights. */
    make_targets(t, weights, 4);
    b = make_balancer(BALANCE_LEAST_CONN, t, 4);
    for (int k = 0; k < 1000; k++) {
        int i = balancer_pick(b, t, 4, NULL);
        REQUIRE(i >= 0, "no pick");
        t[i].conns++;
    }
    for (size_t i = 0; i < 4; i++)
        ck_assert_uint_eq(t[i].conns, 100u * (unsigned)weights[i]);
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_latency_window)
{
    struct balancer_target t[1];

    make_targets(t, NULL, 1);
    ck_assert_uint_eq(balancer_latency(t), 0);
    balancer_observe(t, 100);
    balancer_observe(t, 300);
    ck_assert_uint_eq(balancer_latency(t), 200);
    /* Only the last WINDOW samples count. */
    for (int k = 0; k < BALANCER_LATENCY_WINDOW; k++)
        balancer_observe(t, 50);
    ck_assert_uint_eq(balancer_latency(t), 50);
    balancer_observe(t, 50 + 16 * BALANCER_LATENCY_WINDOW);
    ck_assert_uint_eq(balancer_latency(t), 66);
    /* The sample count wrapping keeps a full window. */
    t[0].nlatency = UINT32_MAX;
    balancer_observe(t, 50);
    ck_assert_uint_ge(t[0].nlatency, BALANCER_LATENCY_WINDOW);
    ck_assert_uint_eq(t[0].nlatency % BALANCER_LATENCY_WINDOW, 0);
    ck_assert_uint_ne(balancer_latency(t), 0);
}
END_TEST

START_TEST(test_balancer_least_latency)
{
    struct balancer_target t[3];
    static const uint32_t latency[] = { 10000, 1000, 5000 };
    unsigned count[3] = { 0, 0, 0 };
    struct balancer *b;
    bool first_seen[3] = { false };

    make_targets(t, NULL, 2);
    b = make_balancer(BALANCE_LEAST_LATENCY, t, 2);
    /* Unmeasured targets go first, each in turn. */
    for (int k = 0; k < 2; k++) {
        int i = balancer_pick(b, t, 2, NULL);
        ck_assert_int_ge(i, 0);
        ck_assert(!first_seen[i]);
        first_seen[i] = true;
        balancer_observe(&t[i], latency[i]);
    }
    for (int k = 0; k < 1000; k++) {
        int i = balancer_pick(b, t, 2, NULL);
        REQUIRE(i == 0 || i == 1, "pick %d", i);
        count[i]++;
        balancer_observe(&t[i], latency[i]);
    }
    /* 1 ms against 10 ms: the fast one nearly always, the slow one still
     * measured now and then. */
    ck_assert_msg(count[1] >= 800, "fast target got %u of 1000", count[1]);
    ck_assert_msg(count[0] >= 20, "slow target got %u of 1000", count[0]);

    /* A slow target that becomes fast is noticed through exploration. */
    for (int k = 0; k < 1000; k++) {
        int i = balancer_pick(b, t, 2, NULL);
        REQUIRE(i == 0 || i == 1, "pick %d", i);
        balancer_observe(&t[i], i == 0 ? 200 : 1000);
    }
    count[0] = count[1] = 0;
    for (int k = 0; k < 100; k++)
        count[balancer_pick(b, t, 2, NULL)]++;
    ck_assert_uint_ge(count[0], 80);
    balancer_destroy(b);

    /* Exploration visits every other target; a new target is measured at
     * once. */
    make_targets(t, NULL, 3);
    b = make_balancer(BALANCE_LEAST_LATENCY, t, 2);
    balancer_observe(&t[0], latency[0]);
    balancer_observe(&t[1], latency[1]);
    ck_assert_int_eq(balancer_update(b, t, 3), PMX_OK);
    ck_assert_int_eq(balancer_pick(b, t, 3, NULL), 2);
    count[0] = count[1] = count[2] = 0;
    for (int k = 0; k < 2000; k++) {
        int i = balancer_pick(b, t, 3, NULL);
        REQUIRE(i >= 0 && i < 3, "pick %d", i);
        count[i]++;
        balancer_observe(&t[i], latency[i]);
    }
    ck_assert_uint_ge(count[1], 1800);
    ck_assert_uint_ge(count[0], 20);
    ck_assert_uint_ge(count[2], 20);
    /* With one usable target there is nothing to explore. */
    t[0].usable = t[2].usable = false;
    for (int k = 0; k < 40; k++)
        REQUIRE(balancer_pick(b, t, 3, NULL) == 1, "picked an unusable target");
    balancer_destroy(b);
}
END_TEST

START_TEST(test_balancer_first)
{
    struct balancer_target t[4];
    struct balancer *b;

    make_targets(t, NULL, 4);
    t[0].backup = true;
    b = make_balancer(BALANCE_FIRST, t, 4);
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 1);
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 1);
    t[1].usable = false;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 2);
    t[2].usable = t[3].usable = false;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 0);
    t[1].usable = true;
    ck_assert_int_eq(balancer_pick(b, t, 4, NULL), 1);
    balancer_destroy(b);
}
END_TEST

/* For every strategy: only usable non-backup targets while there is one,
 * then only usable backups, then -1. */
START_TEST(test_balancer_backup_rules)
{
    static const int weights[] = { 3, 1, 2, 1, 2 };
    struct balancer_target t[5];
    struct balancer *b = balancer_create(all_strategies[_i], 5);

    ck_assert_ptr_nonnull(b);
    make_targets(t, weights, 5);
    t[0].backup = t[2].backup = t[4].backup = true;
    ck_assert_int_eq(balancer_update(b, t, 5), PMX_OK);
    for (uint32_t k = 0; k < 200; k++) {
        struct sockaddr_storage ss = client_v4(k * 40503u, 1);
        const struct sockaddr *client = k % 2 ? (const struct sockaddr *)&ss : NULL;
        int i = balancer_pick(b, t, 5, client);
        REQUIRE(i == 1 || i == 3, "%s: picked %d with non-backups up",
                balancer_strategy_name(all_strategies[_i]), i);
        balancer_observe(&t[i], 100);
    }
    t[1].usable = t[3].usable = false;
    t[2].usable = false;
    for (uint32_t k = 0; k < 200; k++) {
        struct sockaddr_storage ss = client_v4(k * 40503u, 1);
        const struct sockaddr *client = k % 2 ? (const struct sockaddr *)&ss : NULL;
        int i = balancer_pick(b, t, 5, client);
        REQUIRE(i == 0 || i == 4, "%s: picked %d with only backups up",
                balancer_strategy_name(all_strategies[_i]), i);
        balancer_observe(&t[i], 100);
    }
    t[3].usable = true;     /* a non-backup is back: backups stop at once */
    for (uint32_t k = 0; k < 50; k++) {
        struct sockaddr_storage ss = client_v4(k, 1);
        REQUIRE(balancer_pick(b, t, 5, (const struct sockaddr *)&ss) == 3,
                "%s: backup used with a non-backup up",
                balancer_strategy_name(all_strategies[_i]));
    }
    t[0].usable = t[3].usable = t[4].usable = false;
    ck_assert_int_eq(balancer_pick(b, t, 5, NULL), -1);
    ck_assert_int_eq(balancer_pick(b, t, 0, NULL), -1);
    ck_assert_int_eq(balancer_pick(b, NULL, 0, NULL), -1);
    ck_assert_int_eq(balancer_update(b, NULL, 0), PMX_OK);
    ck_assert_int_eq(balancer_pick(b, NULL, 0, NULL), -1);
    balancer_destroy(b);
}
END_TEST

/* 4096 targets: every strategy picks, and only usable ones. */
START_TEST(test_balancer_many_targets)
{
    static struct balancer_target t[MAX_TARGETS];
    struct balancer *b = balancer_create(all_strategies[_i], 9);
    unsigned distinct = 0;
    static bool seen[MAX_TARGETS];

    ck_assert_ptr_nonnull(b);
    make_targets(t, NULL, MAX_TARGETS);
    for (size_t i = 0; i < MAX_TARGETS; i++)
        t[i].usable = i % 3 != 0;
    memset(seen, 0, sizeof(seen));
    ck_assert_int_eq(balancer_update(b, t, MAX_TARGETS), PMX_OK);
    for (uint32_t k = 0; k < 2000; k++) {
        struct sockaddr_storage ss = client_v4(k * 2654435761u % 0xffffffu, 1);
        int i = balancer_pick(b, t, MAX_TARGETS, (const struct sockaddr *)&ss);
        REQUIRE(i >= 0 && i < MAX_TARGETS && i % 3 != 0, "picked %d", i);
        balancer_observe(&t[i], 100);
        distinct += !seen[i];
        seen[i] = true;
    }
    if (all_strategies[_i] == BALANCE_FIRST)
        ck_assert_uint_eq(distinct, 1);
    else
        ck_assert_uint_ge(distinct, 1000);
    balancer_destroy(b);
}
END_TEST

Suite *balancer_suite(void)
{
    Suite *s = suite_create("balancer");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_balancer_names);
    tcase_add_test(tc, test_balancer_rr_smooth_sequence);
    tcase_add_test(tc, test_balancer_rr_distribution);
    tcase_add_test(tc, test_balancer_random_distribution);
    tcase_add_test(tc, test_balancer_ip_hash_remove_one);
    tcase_add_test(tc, test_balancer_ip_hash_add_one);
    tcase_add_test(tc, test_balancer_ip_hash_same_client);
    tcase_add_test(tc, test_balancer_ip_hash_unusable);
    tcase_add_test(tc, test_balancer_ip_hash_weights_and_fallback);
    tcase_add_test(tc, test_balancer_least_conn);
    tcase_add_test(tc, test_balancer_latency_window);
    tcase_add_test(tc, test_balancer_least_latency);
    tcase_add_test(tc, test_balancer_first);
    tcase_add_loop_test(tc, test_balancer_backup_rules, 0, (int)PMX_ARRAY_LEN(all_strategies));
    tcase_add_loop_test(tc, test_balancer_many_targets, 0, (int)PMX_ARRAY_LEN(all_strategies));
    suite_add_tcase(s, tc);
    return s;
}
