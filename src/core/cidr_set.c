/* CIDR sets: sorted, disjoint ranges per family searched by bisection (see
 * include/cidr_set.h). Two CIDR blocks are either disjoint or one holds the
 * other, so dropping the blocks held by another leaves disjoint ranges,
 * each still the entry it came from (for the "deny 10.0.0.0/8" message). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cidr_set.h"

/* An IPv6 address as a 128-bit number: hi holds bytes 0-7. */
struct cidr_u128 {
    uint64_t hi, lo;
};

struct cidr_range4 {
    uint32_t first, last;
    int entry;                      /* index into entries */
};

struct cidr_range6 {
    struct cidr_u128 first, last;
    int entry;
};

struct cidr_set {
    int size;                       /* entries given to cidr_set_build() */
    struct cidr *entries;           /* the entries kept: one per range */
    struct cidr_range4 *v4;         /* sorted by first, disjoint */
    int n4;
    struct cidr_range6 *v6;
    int n6;
};

static const unsigned char cidr_set_v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static uint64_t cidr_set_be64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t cidr_set_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int cidr_set_cmp128(struct cidr_u128 a, struct cidr_u128 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

/* The last address of the block first/prefix (host bits all set). */
static struct cidr_u128 cidr_set_last128(struct cidr_u128 first, int prefix)
{
    struct cidr_u128 last = first;

    if (prefix <= 0) {
        last.hi = UINT64_MAX;
        last.lo = UINT64_MAX;
    } else if (prefix < 64) {
        last.hi |= UINT64_MAX >> prefix;
        last.lo = UINT64_MAX;
    } else if (prefix < 128) {
        last.lo |= UINT64_MAX >> (prefix - 64);
    }
    return last;
}

/* Sort order: by first address, the wider block (smaller prefix) first, so
 * that a block comes before the blocks it holds. */
static int cidr_set_sort4(const void *pa, const void *pb)
{
    const struct cidr_range4 *a = pa, *b = pb;

    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->last != b->last)
        return a->last > b->last ? -1 : 1;
    return a->entry - b->entry;
}

static int cidr_set_sort6(const void *pa, const void *pb)
{
    const struct cidr_range6 *a = pa, *b = pb;
    int c = cidr_set_cmp128(a->first, b->first);

    if (c != 0)
        return c;
    c = cidr_set_cmp128(b->last, a->last);
    return c != 0 ? c : a->entry - b->entry;
}

int cidr_set_build(const struct cidr *list, int n, struct cidr_set **out)
{
    struct cidr_set *s = calloc(1, sizeof(*s));
    size_t room = n > 0 ? (size_t)n : 1;

    *out = NULL;
    if (s == NULL)
        return PMX_ERR;
    s->size = n;
    s->entries = malloc(room * sizeof(*s->entries));
    s->v4 = malloc(room * sizeof(*s->v4));
    s->v6 = malloc(room * sizeof(*s->v6));
    if (s->entries == NULL || s->v4 == NULL || s->v6 == NULL) {
        cidr_set_free(s);
        return PMX_ERR;
    }
    for (int i = 0; i < n; i++) {
        const struct cidr *c = &list[i];
        if (c->family == AF_INET) {
            struct cidr_range4 *r = &s->v4[s->n4++];
            r->first = cidr_set_be32(c->addr);
            /* A shift by 32 is undefined: /0 and /32 apart. */
            r->last = c->prefix == 0 ? UINT32_MAX : c->prefix == 32 ? r->first : r->first | (UINT32_MAX >> c->prefix);
            r->entry = i;
        } else {
            struct cidr_range6 *r = &s->v6[s->n6++];
            r->first.hi = cidr_set_be64(c->addr);
            r->first.lo = cidr_set_be64(c->addr + 8);
            r->last = cidr_set_last128(r->first, c->prefix);
            r->entry = i;
        }
    }
    qsort(s->v4, (size_t)s->n4, sizeof(*s->v4), cidr_set_sort4);
    qsort(s->v6, (size_t)s->n6, sizeof(*s->v6), cidr_set_sort6);

    /* Keep a block only when it starts past the last kept one: otherwise it
     * lies inside it (CIDR blocks do not overlap partly). Each range then
     * names its own copy of the entry. */
    int kept = 0, nentries = 0;
    for (int i = 0; i < s->n4; i++) {
        if (kept > 0 && s->v4[i].first <= s->v4[kept - 1].last)
            continue;
        s->v4[kept] = s->v4[i];
        s->entries[nentries] = list[s->v4[i].entry];
        s->v4[kept++].entry = nentries++;
    }
    s->n4 = kept;
    kept = 0;
    for (int i = 0; i < s->n6; i++) {
        if (kept > 0 && cidr_set_cmp128(s->v6[i].first, s->v6[kept - 1].last) <= 0)
            continue;
        s->v6[kept] = s->v6[i];
        s->entries[nentries] = list[s->v6[i].entry];
        s->v6[kept++].entry = nentries++;
    }
    s->n6 = kept;
    *out = s;
    return PMX_OK;
}

/* The entry of the last v4 range starting at or before a, if it holds a. */
static const struct cidr *cidr_set_find4(const struct cidr_set *s, uint32_t a)
{
    int lo = 0, hi = s->n4;         /* ranges [0, lo) start at or before a; [hi, n4) after */

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->v4[mid].first <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || a > s->v4[lo - 1].last)
        return NULL;
    return &s->entries[s->v4[lo - 1].entry];
}

static const struct cidr *cidr_set_find6(const struct cidr_set *s, struct cidr_u128 a)
{
    int lo = 0, hi = s->n6;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cidr_set_cmp128(s->v6[mid].first, a) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || cidr_set_cmp128(a, s->v6[lo - 1].last) > 0)
        return NULL;
    return &s->entries[s->v6[lo - 1].entry];
}

const struct cidr *cidr_set_find(const struct cidr_set *s, const struct sockaddr *addr, socklen_t len)
{
    if (s == NULL || addr == NULL)
        return NULL;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)addr;
        return cidr_set_find4(s, ntohl(a->sin_addr.s_addr));
    }
    if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)addr;
        const unsigned char *b = a->sin6_addr.s6_addr;
        if (memcmp(b, cidr_set_v4_mapped, sizeof(cidr_set_v4_mapped)) == 0)
            return cidr_set_find4(s, cidr_set_be32(b + 12));
        struct cidr_u128 v = { cidr_set_be64(b), cidr_set_be64(b + 8) };
        return cidr_set_find6(s, v);
    }
    return NULL;
}

int cidr_set_size(const struct cidr_set *s)
{
    return s != NULL ? s->size : 0;
}

void cidr_set_free(struct cidr_set *s)
{
    if (s == NULL)
        return;
    free(s->entries);
    free(s->v4);
    free(s->v6);
    free(s);
}
