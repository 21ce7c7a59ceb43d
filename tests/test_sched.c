/* Unit tests for the FIFO/funnel scheduler (src/exchange/mux_sched.c):
 * turns between clients, the per-client in-flight limit, per-client order,
 * and dropping a client's waiting requests. */
#include <check.h>

#include "mux_sched.h"
#include "suites.h"

struct req {
    struct sched_item item;
    int client;
    int seq;
};

#define NREQ 64

static struct req reqs[NREQ];
static int nreqs;

static struct req *req_new(int client, int seq)
{
    struct req *r = &reqs[nreqs++];

    r->client = client;
    r->seq = seq;
    return r;
}

static struct req *next_req(struct sched_upstream *u, size_t limit, struct sched_client **owner)
{
    struct sched_item *it = sched_next(u, limit, owner);

    return it ? list_entry(it, struct req, item) : NULL;
}

START_TEST(test_sched_turns)
{
    struct sched_upstream u;
    struct sched_client c[3];
    struct sched_client *owner;

    nreqs = 0;
    sched_upstream_init(&u);
    for (int i = 0; i < 3; i++)
        sched_client_init(&c[i]);
    /* Client 0 floods 10 requests, then 1 and 2 send one each. */
    for (int k = 0; k < 10; k++)
        sched_push(&u, &c[0], &req_new(0, k)->item, 100);
    sched_push(&u, &c[1], &req_new(1, 0)->item, 100);
    sched_push(&u, &c[2], &req_new(2, 0)->item, 100);
    ck_assert_uint_eq(u.nwaiting, 12);
    /* One turn each: 0, 1, 2, then 0 alone, in its own order. */
    int want_client[] = { 0, 1, 2, 0, 0 };
    int want_seq[] = { 0, 0, 0, 1, 2 };
    for (int k = 0; k < 5; k++) {
        struct req *r = next_req(&u, 100, &owner);
        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(r->client, want_client[k]);
        ck_assert_int_eq(r->seq, want_seq[k]);
        ck_assert_ptr_eq(owner, &c[r->client]);
    }
    ck_assert_uint_eq(c[0].insent, 3);
    ck_assert_uint_eq(c[1].insent, 1);
    ck_assert_ptr_null(c[1].up);        /* nothing left waiting */
    ck_assert_uint_eq(u.nwaiting, 7);
}
END_TEST

START_TEST(test_sched_newcomer_waits_one_turn)
{
    struct sched_upstream u;
    struct sched_client flood, late;
    struct sched_client *owner;

    nreqs = 0;
    sched_upstream_init(&u);
    sched_client_init(&flood);
    sched_client_init(&late);
    for (int k = 0; k < 20; k++)
        sched_push(&u, &flood, &req_new(0, k)->item, 100);
    ck_assert_int_eq(next_req(&u, 100, &owner)->seq, 0);
    ck_assert_int_eq(next_req(&u, 100, &owner)->seq, 1);
    /* A request arriving now goes after at most one more of the flood. */
    sched_push(&u, &late, &req_new(1, 0)->item, 100);
    struct req *r = next_req(&u, 100, &owner);
    if (r->client == 0)
        r = next_req(&u, 100, &owner);
    ck_assert_int_eq(r->client, 1);
}
END_TEST

START_TEST(test_sched_inflight_limit)
{
    struct sched_upstream u;
    struct sched_client a, b;
    struct sched_client *owner;

    nreqs = 0;
    sched_upstream_init(&u);
    sched_client_init(&a);
    sched_client_init(&b);
    for (int k = 0; k < 5; k++)
        sched_push(&u, &a, &req_new(0, k)->item, 2);
    /* a may have 2 in flight: then it sits out. */
    ck_assert_int_eq(next_req(&u, 2, &owner)->seq, 0);
    ck_assert_int_eq(next_req(&u, 2, &owner)->seq, 1);
    ck_assert_ptr_null(next_req(&u, 2, &owner));
    ck_assert(a.parked);
    ck_assert(!sched_may_send(&a, 2));
    /* b is not held up by a. */
    sched_push(&u, &b, &req_new(1, 0)->item, 2);
    ck_assert_int_eq(next_req(&u, 2, &owner)->client, 1);
    /* One of a's is answered: a takes its next, in order. */
    sched_done(&a, 2);
    ck_assert(!a.parked);
    struct req *r = next_req(&u, 2, &owner);
    ck_assert_int_eq(r->client, 0);
    ck_assert_int_eq(r->seq, 2);
    ck_assert_ptr_null(next_req(&u, 2, &owner));
    /* A larger limit by reload lets it go on. */
    sched_relimit(&u, 4);
    ck_assert_int_eq(next_req(&u, 4, &owner)->seq, 3);
    ck_assert_int_eq(next_req(&u, 4, &owner)->seq, 4);
    ck_assert_uint_eq(u.nwaiting, 0);
}
END_TEST

START_TEST(test_sched_taken_counts)
{
    struct sched_client a;

    sched_client_init(&a);
    ck_assert(sched_may_send(&a, 1));
    sched_taken(&a);                    /* sent at once, nothing waited */
    ck_assert(!sched_may_send(&a, 1));
    sched_done(&a, 1);
    ck_assert(sched_may_send(&a, 1));
    sched_done(&a, 1);                  /* never below zero */
    ck_assert_uint_eq(a.insent, 0);
}
END_TEST

START_TEST(test_sched_drop_client)
{
    struct sched_upstream u;
    struct sched_client a, b;
    struct sched_client *owner;

    nreqs = 0;
    sched_upstream_init(&u);
    sched_client_init(&a);
    sched_client_init(&b);
    for (int k = 0; k < 3; k++) {
        sched_push(&u, &a, &req_new(0, k)->item, 1);
        sched_push(&u, &b, &req_new(1, k)->item, 1);
    }
    ck_assert_int_eq(next_req(&u, 1, &owner)->client, 0);   /* a is now parked */
    /* a leaves: its waiting requests come out in order and b goes on. */
    int seq = 1;
    struct sched_item *it;
    while ((it = sched_pop(&a)) != NULL)
        ck_assert_int_eq(list_entry(it, struct req, item)->seq, seq++);
    ck_assert_int_eq(seq, 3);
    ck_assert_ptr_null(a.up);
    ck_assert(!list_linked(&a.turn));
    ck_assert_uint_eq(u.nwaiting, 3);
    ck_assert_int_eq(next_req(&u, 1, &owner)->client, 1);
    /* Failing everything that waits: b's last two, parked or not. */
    int n = 0;
    while ((it = sched_pop_any(&u, &owner)) != NULL) {
        ck_assert_ptr_eq(owner, &b);
        n++;
    }
    ck_assert_int_eq(n, 2);
    ck_assert_uint_eq(u.nwaiting, 0);
    ck_assert(list_empty(&u.ring));
    ck_assert(list_empty(&u.parked));
}
END_TEST

Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_sched_turns);
    tcase_add_test(tc, test_sched_newcomer_waits_one_turn);
    tcase_add_test(tc, test_sched_inflight_limit);
    tcase_add_test(tc, test_sched_taken_counts);
    tcase_add_test(tc, test_sched_drop_client);
    suite_add_tcase(s, tc);
    return s;
}
