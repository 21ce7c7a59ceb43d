/* Balancing strategies: which usable target the next connection goes to.
 * Every strategy first narrows the targets to one tier (the usable
 * non-backup ones, else the usable backup ones), then picks inside it. */
#include <limits.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "balancer.h"

#define BALANCER_WEIGHT_MAX 1000

/* ip_hash ring: 160 points per unit of weight, as nginx's consistent hash,
 * with which a weight-1 target's share strays by about 1/sqrt(160) = 8 %.
 * Points are capped per target so the ring stays bounded (12.5 KiB per
 * target, 50 MiB for 4096 targets of weight 10 or more): ip_hash counts
 * weights above BALANCER_RING_MAX_WEIGHT as that weight. The cap depends on
 * nothing but the target's own weight, so adding or removing a target never
 * changes another target's points. */
#define BALANCER_RING_POINTS 160
#define BALANCER_RING_MAX_WEIGHT 10

/* least_latency sends 1 pick in this many to the other usable targets, in
 * turn, so their latency keeps being measured. */
#define BALANCER_EXPLORE_EVERY 20

/* One point of the ip_hash ring: the ring is sorted by hash. */
struct balancer_point {
    uint32_t hash;
    uint32_t target;            /* index in the array of the last update */
};

struct balancer {
    enum balance_strategy strategy;
    uint64_t rng;               /* random: xorshift64* state, never 0 */
    size_t next;                /* least_conn, least_latency: where the tie rotation resumes */
    size_t explore;             /* least_latency: where the exploration rotation resumes */
    unsigned picks;             /* least_latency: picks since the last exploration */
    struct balancer_point *ring;    /* ip_hash */
    size_t nring;
    size_t ring_targets;        /* n of the update that built the ring */
    bool ring_built;
};

static const char *const balancer_names[] = {
    [BALANCE_ROUND_ROBIN] = "round_robin",
    [BALANCE_RANDOM] = "random",
    [BALANCE_IP_HASH] = "ip_hash",
    [BALANCE_LEAST_CONN] = "least_conn",
    [BALANCE_LEAST_LATENCY] = "least_latency",
    [BALANCE_FIRST] = "first",
};

int balancer_strategy_parse(const char *name, enum balance_strategy *out)
{
    if (name == NULL)
        return PMX_ERR;
    for (size_t i = 0; i < PMX_ARRAY_LEN(balancer_names); i++) {
        if (strcmp(name, balancer_names[i]) == 0) {
            *out = (enum balance_strategy)i;
            return PMX_OK;
        }
    }
    return PMX_ERR;
}

const char *balancer_strategy_name(enum balance_strategy s)
{
    if ((unsigned)s >= PMX_ARRAY_LEN(balancer_names))
        return "unknown";
    return balancer_names[s];
}

const char *balancer_strategy_names(void)
{
    return "round_robin, random, ip_hash, least_conn, least_latency, first";
}

/* splitmix64's finalizer: spreads a seed or a hash over all 64 bits. */
static uint64_t balancer_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

struct balancer *balancer_create(enum balance_strategy s, uint32_t seed)
{
    struct balancer *b;

    if ((unsigned)s >= PMX_ARRAY_LEN(balancer_names))
        return NULL;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->strategy = s;
    /* xorshift must not start at 0; mixing also keeps seeds 1, 2, 3
     * from giving similar first draws. */
    b->rng = balancer_mix((uint64_t)seed + 0x9e3779b97f4a7c15ULL);
    if (b->rng == 0)
        b->rng = 0x9e3779b97f4a7c15ULL;
    return b;
}

void balancer_destroy(struct balancer *b)
{
    if (b == NULL)
        return;
    free(b->ring);
    free(b);
}

/* xorshift64* (Vigna): fast, and good enough to spread connections. */
static uint64_t balancer_random(struct balancer *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return b->rng * 0x2545f4914f6cdd1dULL;
}

/* The configuration keeps weights in 1..1000; clamping here means a stray
 * value can neither divide by zero nor overflow the sums. */
static int balancer_weight(const struct balancer_target *t)
{
    if (t->weight < 1)
        return 1;
    if (t->weight > BALANCER_WEIGHT_MAX)
        return BALANCER_WEIGHT_MAX;
    return t->weight;
}

static bool balancer_eligible(const struct balancer_target *t, bool backup)
{
    return t->usable && t->backup == backup;
}

/* Sets *backup to the tier a pick uses: false while some non-backup target
 * is usable, else true. Returns false when no target at all is usable. */
static bool balancer_tier(const struct balancer_target *t, size_t n, bool *backup)
{
    bool any_backup = false;

    for (size_t i = 0; i < n; i++) {
        if (!t[i].usable)
            continue;
        if (!t[i].backup) {
            *backup = false;
            return true;
        }
        any_backup = true;
    }
    *backup = true;
    return any_backup;
}

/* nginx's ngx_http_upstream_get_peer without the failure accounting (the
 * upstream layer does that through usable): every eligible target gains its
 * weight, the one with the most is picked and pays the total back. Over any
 * sum-of-weights picks each target gets exactly its weight, interleaved. */
static int balancer_round_robin(struct balancer_target *t, size_t n, bool backup)
{
    struct balancer_target *best = NULL;
    int64_t total = 0;
    size_t best_i = 0;

    for (size_t i = 0; i < n; i++) {
        if (!balancer_eligible(&t[i], backup))
            continue;
        int w = balancer_weight(&t[i]);
        t[i].current += w;
        total += w;
        if (best == NULL || t[i].current > best->current) {
            best = &t[i];
            best_i = i;
        }
    }
    if (best == NULL)
        return -1;
    best->current -= total;
    return (int)best_i;
}

static int balancer_pick_random(struct balancer *b, const struct balancer_target *t,
                                size_t n, bool backup)
{
    uint64_t total = 0;
    uint64_t r;

    for (size_t i = 0; i < n; i++) {
        if (balancer_eligible(&t[i], backup))
            total += (uint64_t)balancer_weight(&t[i]);
    }
    if (total == 0)
        return -1;
    /* total is below 2^43, so the modulo bias is below 2^-21. */
    r = balancer_random(b) % total;
    for (size_t i = 0; i < n; i++) {
        if (!balancer_eligible(&t[i], backup))
            continue;
        uint64_t w = (uint64_t)balancer_weight(&t[i]);
        if (r < w)
            return (int)i;
        r -= w;
    }
    return -1;
}

/* Whether a is a better least_conn choice than b: fewer connections per
 * unit of weight (compared as nginx does, a.conns * b.weight < b.conns *
 * a.weight, which cannot overflow in 64 bits), then the higher weight. */
static bool balancer_fewer_conns(const struct balancer_target *a, const struct balancer_target *b)
{
    uint64_t wa = (uint64_t)balancer_weight(a);
    uint64_t wb = (uint64_t)balancer_weight(b);
    uint64_t lhs = (uint64_t)a->conns * wb;
    uint64_t rhs = (uint64_t)b->conns * wa;

    return lhs < rhs || (lhs == rhs && wa > wb);
}

/* The scan starts where the last pick left off, and only a strictly better
 * target replaces the best so far: equal targets are picked in turn. */
static int balancer_least_conn(struct balancer *b, const struct balancer_target *t,
                               size_t n, bool backup)
{
    size_t start = b->next % n;
    const struct balancer_target *best = NULL;
    size_t best_i = 0;

    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!balancer_eligible(&t[i], backup))
            continue;
        if (best == NULL || balancer_fewer_conns(&t[i], best)) {
            best = &t[i];
            best_i = i;
        }
    }
    if (best == NULL)
        return -1;
    b->next = best_i + 1;
    return (int)best_i;
}

void balancer_observe(struct balancer_target *t, uint32_t us)
{
    t->latency_us[t->nlatency % BALANCER_LATENCY_WINDOW] = us;
    t->nlatency++;
    /* After 2^32 samples the count wraps; WINDOW divides 2^32, so jumping
     * to WINDOW keeps the ring position and the window full. */
    if (t->nlatency == 0)
        t->nlatency = BALANCER_LATENCY_WINDOW;
}

uint32_t balancer_latency(const struct balancer_target *t)
{
    unsigned count = PMX_MIN(t->nlatency, (unsigned)BALANCER_LATENCY_WINDOW);
    uint64_t sum = 0;

    if (count == 0)
        return 0;
    /* Below a full window the samples are the first count slots. */
    for (unsigned i = 0; i < count; i++)
        sum += t->latency_us[i];
    return (uint32_t)(sum / count);
}

/* In order: an eligible target never measured (in turn, so each gets its
 * first sample); every BALANCER_EXPLORE_EVERY-th pick, the next eligible
 * target other than the fastest; else the fastest, ties taken in turn. */
static int balancer_least_latency(struct balancer *b, const struct balancer_target *t,
                                  size_t n, bool backup)
{
    size_t start = b->next % n;
    uint32_t best_latency = 0;
    size_t best_i = 0;
    bool found = false;

    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (balancer_eligible(&t[i], backup) && t[i].nlatency == 0) {
            b->next = i + 1;
            return (int)i;
        }
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!balancer_eligible(&t[i], backup))
            continue;
        uint32_t latency = balancer_latency(&t[i]);
        if (!found || latency < best_latency) {
            best_latency = latency;
            best_i = i;
            found = true;
        }
    }
    if (!found)
        return -1;
    if (++b->picks >= BALANCER_EXPLORE_EVERY) {
        b->picks = 0;
        size_t from = b->explore % n;
        for (size_t k = 0; k < n; k++) {
            size_t i = (from + k) % n;
            if (i != best_i && balancer_eligible(&t[i], backup)) {
                b->explore = i + 1;
                return (int)i;
            }
        }
        /* The fastest is the only eligible target: it takes the pick. */
    }
    b->next = best_i + 1;
    return (int)best_i;
}

static int balancer_first(const struct balancer_target *t, size_t n, bool backup)
{
    for (size_t i = 0; i < n; i++) {
        if (balancer_eligible(&t[i], backup))
            return (int)i;
    }
    return -1;
}

/* FNV-1a, 64 bits: the ring's and the clients' hashes are this followed by
 * balancer_mix, whose avalanche FNV lacks on short inputs. */
#define BALANCER_FNV_BASIS 0xcbf29ce484222325ULL

static uint64_t balancer_fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* A point's place depends on the target's name and the point's index only,
 * so the ring does not change when the array is reordered. The NUL keeps
 * name "a" point 0x31.. apart from name "a1". */
static uint32_t balancer_point_hash(const char *name, uint32_t index)
{
    unsigned char idx[4] = {
        (unsigned char)index, (unsigned char)(index >> 8),
        (unsigned char)(index >> 16), (unsigned char)(index >> 24),
    };
    uint64_t h = balancer_fnv(BALANCER_FNV_BASIS, name, strlen(name) + 1);

    h = balancer_fnv(h, idx, sizeof(idx));
    return (uint32_t)(balancer_mix(h) >> 32);
}

/* Hashes the client's address bytes (not the port). An IPv4-mapped IPv6
 * address hashes as its IPv4 address, so a dual-stack listener and an IPv4
 * one send a client to the same target. Returns false for other families
 * (unix sockets), which have no address to hash. */
static const unsigned char balancer_v4mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
};

static bool balancer_client_hash(const struct sockaddr *sa, uint32_t *out)
{
    const unsigned char *addr;
    size_t len;

    if (sa->sa_family == AF_INET) {
        addr = (const unsigned char *)sa + offsetof(struct sockaddr_in, sin_addr);
        len = 4;
    } else if (sa->sa_family == AF_INET6) {
        addr = (const unsigned char *)sa + offsetof(struct sockaddr_in6, sin6_addr);
        len = 16;
        if (memcmp(addr, balancer_v4mapped, sizeof(balancer_v4mapped)) == 0) {
            addr += 12;
            len = 4;
        }
    } else {
        return false;
    }
    *out = (uint32_t)(balancer_mix(balancer_fnv(BALANCER_FNV_BASIS, addr, len)) >> 32);
    return true;
}

/* A target without a name still gets points; "" is its name. */
static const char *balancer_name(const struct balancer_target *t)
{
    return t->name != NULL ? t->name : "";
}

/* Orders the ring by hash; on a collision by name, then index, so the
 * order does not depend on qsort or on the array order (unless two targets
 * share a name). */
static int balancer_point_cmp(const void *pa, const void *pb, void *arg)
{
    const struct balancer_point *a = pa;
    const struct balancer_point *b = pb;
    const struct balancer_target *t = arg;
    int c;

    if (a->hash != b->hash)
        return a->hash < b->hash ? -1 : 1;
    if (a->target == b->target)
        return 0;
    c = strcmp(balancer_name(&t[a->target]), balancer_name(&t[b->target]));
    if (c != 0)
        return c;
    return a->target < b->target ? -1 : 1;
}

static size_t balancer_points(const struct balancer_target *t)
{
    return (size_t)PMX_MIN(balancer_weight(t), BALANCER_RING_MAX_WEIGHT) * BALANCER_RING_POINTS;
}

/* Builds the ip_hash ring for t into b, replacing the old one only on
 * success. Returns PMX_OK or PMX_ERR (out of memory, too many targets). */
static int balancer_build_ring(struct balancer *b, const struct balancer_target *t, size_t n)
{
    struct balancer_point *ring;
    size_t total = 0;
    size_t k = 0;

    /* A point's target must fit in 32 bits, and no target has more than
     * BALANCER_RING_MAX_WEIGHT * BALANCER_RING_POINTS points, which bounds
     * the sum and the allocation. */
    if (n > UINT32_MAX ||
        n > SIZE_MAX / (BALANCER_RING_MAX_WEIGHT * BALANCER_RING_POINTS * sizeof(*ring)))
        return PMX_ERR;
    for (size_t i = 0; i < n; i++)
        total += balancer_points(&t[i]);
    /* At least one point: malloc(0) may return NULL, which is no error. */
    ring = malloc(PMX_MAX(total, (size_t)1) * sizeof(*ring));
    if (ring == NULL)
        return PMX_ERR;
    for (size_t i = 0; i < n; i++) {
        const char *name = balancer_name(&t[i]);
        size_t points = balancer_points(&t[i]);
        for (size_t p = 0; p < points; p++) {
            ring[k].hash = balancer_point_hash(name, (uint32_t)p);
            ring[k].target = (uint32_t)i;
            k++;
        }
    }
    qsort_r(ring, total, sizeof(*ring), balancer_point_cmp, (void *)t);
    free(b->ring);
    b->ring = ring;
    b->nring = total;
    b->ring_targets = n;
    b->ring_built = true;
    return PMX_OK;
}

/* Walks the ring clockwise from the client's hash to the first point of an
 * eligible target. Returns -1 when it cannot (no ring for this array,
 * or no client address): the caller falls back to round robin. */
static int balancer_ip_hash(const struct balancer *b, const struct balancer_target *t,
                            size_t n, bool backup, const struct sockaddr *client)
{
    uint32_t h;
    size_t lo = 0;
    size_t hi = b->nring;

    if (client == NULL || !b->ring_built || b->ring_targets != n || b->nring == 0)
        return -1;
    if (!balancer_client_hash(client, &h))
        return -1;
    /* lo becomes the first point with hash >= h, or nring to wrap. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->ring[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t k = 0; k < b->nring; k++) {
        const struct balancer_point *p = &b->ring[(lo + k) % b->nring];
        if (balancer_eligible(&t[p->target], backup))
            return (int)p->target;
    }
    return -1;
}

int balancer_update(struct balancer *b, struct balancer_target *t, size_t n)
{
    if (b->strategy == BALANCE_IP_HASH && balancer_build_ring(b, t, n) != PMX_OK)
        return PMX_ERR;
    /* A new set restarts the smooth round robin sequence from zero, as
     * nginx does for a new upstream configuration. */
    for (size_t i = 0; i < n; i++)
        t[i].current = 0;
    return PMX_OK;
}

int balancer_pick(struct balancer *b, struct balancer_target *t, size_t n,
                  const struct sockaddr *client)
{
    bool backup;
    int i;

    /* n > INT_MAX: the index would not fit the return value. */
    if (t == NULL || n == 0 || n > (size_t)INT_MAX)
        return -1;
    if (!balancer_tier(t, n, &backup))
        return -1;
    switch (b->strategy) {
    case BALANCE_ROUND_ROBIN:
        return balancer_round_robin(t, n, backup);
    case BALANCE_RANDOM:
        return balancer_pick_random(b, t, n, backup);
    case BALANCE_IP_HASH:
        i = balancer_ip_hash(b, t, n, backup, client);
        return i >= 0 ? i : balancer_round_robin(t, n, backup);
    case BALANCE_LEAST_CONN:
        return balancer_least_conn(b, t, n, backup);
    case BALANCE_LEAST_LATENCY:
        return balancer_least_latency(b, t, n, backup);
    case BALANCE_FIRST:
        return balancer_first(t, n, backup);
    }
    return -1;
}
