/* The event loop: level-triggered epoll with registrations in an array
 * indexed by fd, and a short unsorted list of timers (Proximux keeps only a
 * handful: the janitor, accept retry, reconnect backoff, shutdown). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "reactor.h"

#define REACTOR_MAX_EVENTS 512

struct file_event {
    int mask;
    reactor_file_fn fn;
    void *data;
};

struct timer {
    long long id;
    uint64_t when;
    reactor_timer_fn fn;
    void *data;
    struct timer *next;
};

/* A before-sleep hook; fn is NULL once removed (freed at the next run). */
struct hook {
    reactor_hook_fn fn;
    void *data;
    struct hook *next;
};

struct reactor {
    int epfd;
    int size;
    struct file_event *events;
    struct epoll_event fired[REACTOR_MAX_EVENTS];
    struct timer *timers;
    long long next_timer_id;
    struct hook *hooks;         /* in the order added */
    uint64_t now;
    int stop;
};

uint64_t reactor_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct reactor *reactor_create(int size)
{
    struct reactor *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    if (size < 64)
        size = 64;
    r->events = calloc((size_t)size, sizeof(*r->events));
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->events == NULL || r->epfd < 0) {
        if (r->epfd >= 0)
            close(r->epfd);
        free(r->events);
        free(r);
        return NULL;
    }
    r->size = size;
    r->next_timer_id = 1;
    r->now = reactor_clock_ms();
    return r;
}

void reactor_destroy(struct reactor *r)
{
    if (r == NULL)
        return;
    while (r->timers) {
        struct timer *t = r->timers;
        r->timers = t->next;
        free(t);
    }
    while (r->hooks) {
        struct hook *h = r->hooks;
        r->hooks = h->next;
        free(h);
    }
    close(r->epfd);
    free(r->events);
    free(r);
}

static int reactor_grow(struct reactor *r, int fd)
{
    int size = r->size;

    while (size <= fd)
        size *= 2;
    struct file_event *events = realloc(r->events, (size_t)size * sizeof(*events));
    if (events == NULL)
        return PMX_ERR;
    memset(events + r->size, 0, (size_t)(size - r->size) * sizeof(*events));
    r->events = events;
    r->size = size;
    return PMX_OK;
}

static uint32_t epoll_bits(int mask)
{
    uint32_t bits = 0;

    if (mask & REACTOR_READABLE)
        bits |= EPOLLIN;
    if (mask & REACTOR_WRITABLE)
        bits |= EPOLLOUT;
    return bits;
}

int reactor_add(struct reactor *r, int fd, int mask, reactor_file_fn fn, void *data)
{
    if (fd < 0) {
        errno = EBADF;
        return PMX_ERR;
    }
    if (fd >= r->size && reactor_grow(r, fd) != PMX_OK) {
        errno = ENOMEM;
        return PMX_ERR;
    }
    struct file_event *fe = &r->events[fd];
    int merged = fe->mask | mask;
    struct epoll_event ee = { .events = epoll_bits(merged), .data.fd = fd };
    /* ADD or MOD follows from what is already registered. */
    int op = fe->mask == REACTOR_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

    if (merged != fe->mask && epoll_ctl(r->epfd, op, fd, &ee) < 0)
        return PMX_ERR;
    fe->mask = merged;
    fe->fn = fn;
    fe->data = data;
    return PMX_OK;
}

void reactor_del(struct reactor *r, int fd, int mask)
{
    if (fd < 0 || fd >= r->size)
        return;
    struct file_event *fe = &r->events[fd];
    if (fe->mask == REACTOR_NONE)
        return;
    int left = fe->mask & ~mask;
    if (left == fe->mask)
        return;
    struct epoll_event ee = { .events = epoll_bits(left), .data.fd = fd };
    /* Failure here means the fd is already gone from epoll; the stored mask
     * must still follow the caller's intent. */
    (void)epoll_ctl(r->epfd, left == REACTOR_NONE ? EPOLL_CTL_DEL : EPOLL_CTL_MOD, fd, &ee);
    fe->mask = left;
    if (left == REACTOR_NONE) {
        fe->fn = NULL;
        fe->data = NULL;
    }
}

int reactor_set(struct reactor *r, int fd, int mask, reactor_file_fn fn, void *data)
{
    if (mask == REACTOR_NONE) {
        reactor_del(r, fd, REACTOR_READABLE | REACTOR_WRITABLE);
        return PMX_OK;
    }
    if (fd < 0) {
        errno = EBADF;
        return PMX_ERR;
    }
    if (fd >= r->size && reactor_grow(r, fd) != PMX_OK) {
        errno = ENOMEM;
        return PMX_ERR;
    }
    struct file_event *fe = &r->events[fd];
    if (mask != fe->mask) {
        /* One call: ADD from nothing, else MOD straight to the new mask. */
        struct epoll_event ee = { .events = epoll_bits(mask), .data.fd = fd };
        int op = fe->mask == REACTOR_NONE ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(r->epfd, op, fd, &ee) < 0)
            return PMX_ERR;
        fe->mask = mask;
    }
    fe->fn = fn;
    fe->data = data;
    return PMX_OK;
}

int reactor_mask(const struct reactor *r, int fd)
{
    if (fd < 0 || fd >= r->size)
        return REACTOR_NONE;
    return r->events[fd].mask;
}

long long reactor_timer_add(struct reactor *r, long ms, reactor_timer_fn fn, void *data)
{
    struct timer *t = malloc(sizeof(*t));

    if (t == NULL)
        return PMX_ERR;
    t->id = r->next_timer_id++;
    t->when = reactor_clock_ms() + (uint64_t)(ms > 0 ? ms : 0);
    t->fn = fn;
    t->data = data;
    t->next = r->timers;
    r->timers = t;
    return t->id;
}

void reactor_timer_del(struct reactor *r, long long id)
{
    for (struct timer **pt = &r->timers; *pt; pt = &(*pt)->next) {
        if ((*pt)->id == id) {
            struct timer *t = *pt;
            *pt = t->next;
            free(t);
            return;
        }
    }
}

int reactor_add_before_sleep(struct reactor *r, reactor_hook_fn fn, void *data)
{
    struct hook *h = calloc(1, sizeof(*h));
    struct hook **ph = &r->hooks;

    if (h == NULL)
        return PMX_ERR;
    h->fn = fn;
    h->data = data;
    while (*ph)
        ph = &(*ph)->next;
    *ph = h;
    return PMX_OK;
}

void reactor_remove_before_sleep(struct reactor *r, reactor_hook_fn fn, void *data)
{
    for (struct hook *h = r->hooks; h; h = h->next) {
        if (h->fn == fn && h->data == data) {
            h->fn = NULL;       /* unlinked by reactor_run_hooks, which may be running it */
            return;
        }
    }
}

/* Runs the before-sleep hooks, and frees those removed meanwhile. */
static void reactor_run_hooks(struct reactor *r)
{
    for (struct hook *h = r->hooks; h; h = h->next)
        if (h->fn)
            h->fn(r, h->data);
    for (struct hook **ph = &r->hooks; *ph;) {
        struct hook *h = *ph;
        if (h->fn == NULL) {
            *ph = h->next;
            free(h);
        } else {
            ph = &h->next;
        }
    }
}

void reactor_stop(struct reactor *r)
{
    r->stop = 1;
}

uint64_t reactor_now(const struct reactor *r)
{
    return r->now;
}

/* Milliseconds until the nearest timer, or -1 to wait without limit. */
static int reactor_wait_ms(const struct reactor *r)
{
    int wait = -1;

    for (const struct timer *t = r->timers; t; t = t->next) {
        int ms = t->when <= r->now ? 0 : (int)PMX_MIN(t->when - r->now, 60000u);
        if (wait < 0 || ms < wait)
            wait = ms;
    }
    return wait;
}

/* Runs every due timer once. A timer may add or delete timers, including
 * itself, so the list is searched again after each call. */
static void reactor_run_timers(struct reactor *r)
{
    uint64_t now = r->now;
    long long last = r->next_timer_id;
    int again = 1;

    while (again) {
        again = 0;
        for (struct timer *t = r->timers; t; t = t->next) {
            if (t->id >= last || t->when > now)
                continue;
            long long id = t->id;
            /* Pushing when forward first keeps the timer from running twice
             * in this pass, whatever the callback does. */
            t->when = UINT64_MAX;
            long next = t->fn(r, id, t->data);
            for (struct timer *u = r->timers; u; u = u->next) {
                if (u->id == id) {
                    if (next == REACTOR_TIMER_DONE)
                        reactor_timer_del(r, id);
                    else
                        u->when = reactor_clock_ms() + (uint64_t)(next > 0 ? next : 0);
                    break;
                }
            }
            again = 1;
            break;
        }
    }
}

int reactor_run(struct reactor *r)
{
    r->stop = 0;
    while (!r->stop) {
        reactor_run_hooks(r);
        if (r->stop)
            break;
        r->now = reactor_clock_ms();
        int n = epoll_wait(r->epfd, r->fired, REACTOR_MAX_EVENTS, reactor_wait_ms(r));
        if (n < 0 && errno != EINTR)
            return PMX_ERR;
        r->now = reactor_clock_ms();
        for (int i = 0; i < n; i++) {
            int fd = r->fired[i].data.fd;
            uint32_t ev = r->fired[i].events;
            /* An earlier handler in this batch may have removed fd. */
            if (fd >= r->size || r->events[fd].mask == REACTOR_NONE)
                continue;
            struct file_event *fe = &r->events[fd];
            int mask = 0;
            if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                mask |= fe->mask & REACTOR_READABLE;
            if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                mask |= fe->mask & REACTOR_WRITABLE;
            if (ev & (EPOLLHUP | EPOLLERR))
                mask |= REACTOR_HUP;
            if (mask & (REACTOR_READABLE | REACTOR_WRITABLE))
                fe->fn(r, fd, fe->data, mask);
        }
        reactor_run_timers(r);
    }
    return PMX_OK;
}
