/* The FIFO/funnel scheduler: per-client waiting queues, turns between
 * clients, and the per-client in-flight limit. */
#include <stddef.h>

#include "mux_sched.h"

void sched_upstream_init(struct sched_upstream *u)
{
    list_init(&u->ring);
    list_init(&u->parked);
    u->nwaiting = 0;
}

void sched_client_init(struct sched_client *c)
{
    c->head = c->tail = NULL;
    c->nwaiting = 0;
    c->insent = 0;
    c->up = NULL;
    c->parked = false;
    list_init(&c->turn);
}

bool sched_may_send(const struct sched_client *c, size_t limit)
{
    return c->insent < limit;
}

/* Puts c where it belongs on its upstream: the back of the ring when it
 * has items and may send, parked when it has items but may not, nowhere
 * when it has none. */
static void sched_place(struct sched_client *c, size_t limit)
{
    list_remove(&c->turn);
    c->parked = false;
    if (c->nwaiting == 0) {
        c->up = NULL;
        return;
    }
    c->parked = !sched_may_send(c, limit);
    list_add_tail(c->parked ? &c->up->parked : &c->up->ring, &c->turn);
}

void sched_push(struct sched_upstream *u, struct sched_client *c, struct sched_item *it, size_t limit)
{
    it->next = NULL;
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->nwaiting++;
    u->nwaiting++;
    c->up = u;
    if (!list_linked(&c->turn))
        sched_place(c, limit);
}

static struct sched_item *sched_unlink_head(struct sched_client *c)
{
    struct sched_item *it = c->head;

    if (it == NULL)
        return NULL;
    c->head = it->next;
    if (c->head == NULL)
        c->tail = NULL;
    it->next = NULL;
    c->nwaiting--;
    c->up->nwaiting--;
    return it;
}

struct sched_item *sched_next(struct sched_upstream *u, size_t limit, struct sched_client **owner)
{
    if (list_empty(&u->ring))
        return NULL;
    struct sched_client *c = list_entry(u->ring.next, struct sched_client, turn);
    struct sched_item *it = sched_unlink_head(c);
    c->insent++;
    *owner = c;
    sched_place(c, limit);      /* to the back of the ring, parked, or out */
    return it;
}

void sched_taken(struct sched_client *c)
{
    c->insent++;
}

void sched_done(struct sched_client *c, size_t limit)
{
    if (c->insent > 0)
        c->insent--;
    /* Back from parked once under the limit again. */
    if (c->parked && sched_may_send(c, limit))
        sched_place(c, limit);
}

struct sched_item *sched_pop(struct sched_client *c)
{
    if (c->up == NULL)
        return NULL;
    struct sched_item *it = sched_unlink_head(c);
    if (c->nwaiting == 0) {
        list_remove(&c->turn);
        c->parked = false;
        c->up = NULL;
    }
    return it;
}

struct sched_item *sched_pop_any(struct sched_upstream *u, struct sched_client **owner)
{
    struct list_node *n = !list_empty(&u->ring) ? u->ring.next : !list_empty(&u->parked) ? u->parked.next : NULL;

    if (n == NULL)
        return NULL;
    struct sched_client *c = list_entry(n, struct sched_client, turn);
    *owner = c;
    return sched_pop(c);
}

void sched_relimit(struct sched_upstream *u, size_t limit)
{
    struct list_node moved;
    struct list_node *n, *next;

    list_init(&moved);
    list_for_each_safe(n, next, &u->ring) {
        list_remove(n);
        list_add_tail(&moved, n);
    }
    list_for_each_safe(n, next, &u->parked) {
        list_remove(n);
        list_add_tail(&moved, n);
    }
    list_for_each_safe(n, next, &moved) {
        struct sched_client *c = list_entry(n, struct sched_client, turn);
        sched_place(c, limit);
    }
}
