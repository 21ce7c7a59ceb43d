/* Host name lookups on one helper thread, delivered on the reactor thread
 * through an eventfd. Literal addresses are parsed at once and only take
 * the delivery half of the path.
 *
 *   resolver_lookup --+-- name ----> pending --> helper: getaddrinfo --+
 *                     +-- literal: parsed at once ----------------------+--> done
 *
 *   done --eventfd--> reactor: done joins delivering --> callbacks, 64 per event
 *
 * pending, current and done are shared with the helper under lock; the
 * helper only moves a lookup from pending to current to done. Everything
 * else (the live count, cancelled flags, delivering, every free) belongs to
 * the reactor thread.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "resolver.h"

/* Callbacks run per eventfd event, so a burst of results does not hold up
 * the other fds. */
#define RESOLVER_BATCH 64

struct lookup {
    long long id;
    struct lookup *next;
    resolver_fn fn;
    void *data;
    int port;
    bool cancelled;     /* reactor thread only */
    /* The result, written by whoever resolved it. */
    int err;
    int naddrs;
    struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS];
    socklen_t lens[RESOLVER_MAX_ADDRS];
    char host[];        /* without the brackets of "[::1]" */
};

struct queue {
    struct lookup *head;
    struct lookup *tail;
};

struct resolver {
    struct reactor *r;
    int efd;                    /* readable when done is not empty */

    /* Shared with the helper thread, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;        /* pending gained a lookup, or stopping */
    struct queue pending;
    struct lookup *current;     /* in getaddrinfo() on the helper */
    struct queue done;
    bool stopping;

    /* Reactor thread only. */
    pthread_t thread;
    bool thread_started;
    long long next_id;
    int live;                   /* lookups not yet delivered or freed */
    struct queue delivering;
    bool in_delivery;
    bool destroyed;             /* resolver_destroy() ran inside a callback */
};

static void queue_push(struct queue *q, struct lookup *lk)
{
    lk->next = NULL;
    if (q->tail != NULL)
        q->tail->next = lk;
    else
        q->head = lk;
    q->tail = lk;
}

static struct lookup *queue_pop(struct queue *q)
{
    struct lookup *lk = q->head;

    if (lk != NULL) {
        q->head = lk->next;
        if (q->head == NULL)
            q->tail = NULL;
    }
    return lk;
}

/* Moves every lookup of from to the end of to. */
static void queue_join(struct queue *to, struct queue *from)
{
    if (from->head == NULL)
        return;
    if (to->tail != NULL)
        to->tail->next = from->head;
    else
        to->head = from->head;
    to->tail = from->tail;
    from->head = NULL;
    from->tail = NULL;
}

/* Unlinks the lookup with this id from q. Returns it, or NULL. */
static struct lookup *queue_remove(struct queue *q, long long id)
{
    struct lookup *prev = NULL;

    for (struct lookup *lk = q->head; lk != NULL; prev = lk, lk = lk->next) {
        if (lk->id != id)
            continue;
        if (prev != NULL)
            prev->next = lk->next;
        else
            q->head = lk->next;
        if (q->tail == lk)
            q->tail = prev;
        return lk;
    }
    return NULL;
}

static void queue_free(struct queue *q)
{
    struct lookup *lk;

    while ((lk = queue_pop(q)) != NULL)
        free(lk);
}

/* The host without the brackets of "[::1]", as getaddrinfo() wants it. */
static size_t host_span(const char *host, const char **start)
{
    size_t len = strlen(host);

    *start = host;
    if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
        (*start)++;
        len -= 2;
    }
    return len;
}

/* getaddrinfo() for a TCP connection to host:port, plus flags. Copies up to
 * max addresses into addrs/lens and their count into *naddrs. Returns 0 or
 * an EAI_* code (EAI_SYSTEM leaves errno set). */
static int gai(const char *host, int port, int flags, struct sockaddr_storage *addrs,
               socklen_t *lens, int max, int *naddrs)
{
    struct addrinfo hints, *res;
    char service[8];
    int n = 0;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | flags;
    snprintf(service, sizeof service, "%d", port);
    *naddrs = 0;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0)
        return rc;
    for (const struct addrinfo *ai = res; ai != NULL && n < max; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof addrs[n])
            continue;
        memcpy(&addrs[n], ai->ai_addr, ai->ai_addrlen);
        lens[n] = ai->ai_addrlen;
        n++;
    }
    freeaddrinfo(res);
    *naddrs = n;
    return n > 0 ? 0 : EAI_NONAME;
}

/* Makes the eventfd readable. A write to a nonblocking eventfd fails only
 * when the counter would overflow, and then it is readable already. */
static void wake_reactor(struct resolver *rs)
{
    uint64_t one = 1;
    ssize_t n = write(rs->efd, &one, sizeof one);

    (void)n;
}

/* Puts a resolved lookup on done; the first one there wakes the reactor.
 * Called with lock held, from either thread. */
static void finish_locked(struct resolver *rs, struct lookup *lk)
{
    bool was_empty = rs->done.head == NULL;

    queue_push(&rs->done, lk);
    if (was_empty)
        wake_reactor(rs);
}

static void *helper_main(void *arg)
{
    struct resolver *rs = arg;

    pthread_mutex_lock(&rs->lock);
    for (;;) {
        while (!rs->stopping && rs->pending.head == NULL)
            pthread_cond_wait(&rs->wake, &rs->lock);
        if (rs->stopping)
            break;
        struct lookup *lk = queue_pop(&rs->pending);
        rs->current = lk;
        pthread_mutex_unlock(&rs->lock);

        /* lk->host and lk->port do not change while lk is current; the
         * reactor thread touches only lk->cancelled. */
        lk->err = gai(lk->host, lk->port, 0, lk->addrs, lk->lens, RESOLVER_MAX_ADDRS,
                      &lk->naddrs);

        pthread_mutex_lock(&rs->lock);
        rs->current = NULL;
        finish_locked(rs, lk);
    }
    pthread_mutex_unlock(&rs->lock);
    return NULL;
}

/* Starts the helper with every signal blocked: the mask is inherited, so no
 * signal meant for the main thread's signalfd can land on the helper, not
 * even before it runs. */
static int start_helper(struct resolver *rs)
{
    sigset_t all, old;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&rs->thread, NULL, helper_main, rs);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        errno = rc;
        return PMX_ERR;
    }
    pthread_setname_np(rs->thread, "pmx-resolver");
    rs->thread_started = true;
    return PMX_OK;
}

/* Runs up to RESOLVER_BATCH callbacks from delivering; if some are left,
 * makes the eventfd readable again to come back on the next loop. */
static void deliver(struct resolver *rs)
{
    rs->in_delivery = true;
    for (int i = 0; i < RESOLVER_BATCH; i++) {
        struct lookup *lk = queue_pop(&rs->delivering);
        if (lk == NULL)
            break;
        rs->live--;
        if (!lk->cancelled)
            lk->fn(lk->data, lk->err, lk->addrs, lk->lens, lk->naddrs);
        free(lk);
        if (rs->destroyed) {
            free(rs);
            return;
        }
    }
    rs->in_delivery = false;
    if (rs->delivering.head != NULL)
        wake_reactor(rs);
}

static void on_ready(struct reactor *r, int fd, void *data, int mask)
{
    struct resolver *rs = data;
    uint64_t count;

    /* Resets the counter (EAGAIN if already reset), before taking done,
     * so that a result put there later makes the eventfd readable again. */
    ssize_t n = read(fd, &count, sizeof count);
    (void)n;
    pthread_mutex_lock(&rs->lock);
    queue_join(&rs->delivering, &rs->done);
    pthread_mutex_unlock(&rs->lock);
    deliver(rs);
}

struct resolver *resolver_create(struct reactor *r)
{
    struct resolver *rs = calloc(1, sizeof(*rs));
    int err;

    if (rs == NULL)
        return NULL;
    rs->r = r;
    rs->next_id = 1;
    rs->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (rs->efd < 0) {
        err = errno;
        goto fail;
    }
    if ((err = pthread_mutex_init(&rs->lock, NULL)) != 0)
        goto fail_fd;
    if ((err = pthread_cond_init(&rs->wake, NULL)) != 0)
        goto fail_lock;
    if (reactor_add(r, rs->efd, REACTOR_READABLE, on_ready, rs) != PMX_OK) {
        err = errno;
        pthread_cond_destroy(&rs->wake);
        goto fail_lock;
    }
    return rs;

fail_lock:
    pthread_mutex_destroy(&rs->lock);
fail_fd:
    close(rs->efd);
fail:
    free(rs);
    errno = err;
    return NULL;
}

void resolver_destroy(struct resolver *rs)
{
    if (rs == NULL)
        return;
    if (rs->thread_started) {
        pthread_mutex_lock(&rs->lock);
        rs->stopping = true;
        pthread_cond_signal(&rs->wake);
        pthread_mutex_unlock(&rs->lock);
        /* Waits for a getaddrinfo() in progress; its lookup ends on done. */
        pthread_join(rs->thread, NULL);
    }
    queue_free(&rs->pending);
    queue_free(&rs->done);
    queue_free(&rs->delivering);
    reactor_del(rs->r, rs->efd, REACTOR_READABLE | REACTOR_WRITABLE);
    close(rs->efd);
    pthread_cond_destroy(&rs->wake);
    pthread_mutex_destroy(&rs->lock);
    if (rs->in_delivery)
        rs->destroyed = true;   /* deliver() frees rs when the callback returns */
    else
        free(rs);
}

long long resolver_lookup(struct resolver *rs, const char *host, int port,
                          resolver_fn fn, void *data)
{
    const char *start;

    if (host == NULL || fn == NULL || port < 0 || port > 65535) {
        errno = EINVAL;
        return PMX_ERR;
    }
    if (rs->live >= RESOLVER_MAX_LOOKUPS) {
        errno = EAGAIN;
        return PMX_ERR;
    }
    size_t len = host_span(host, &start);
    struct lookup *lk = calloc(1, sizeof(*lk) + len + 1);
    if (lk == NULL)
        return PMX_ERR;
    memcpy(lk->host, start, len);
    lk->host[len] = '\0';
    lk->port = port;
    lk->fn = fn;
    lk->data = data;

    /* A literal parses without blocking; EAI_NONAME means a name. */
    lk->err = gai(lk->host, port, AI_NUMERICHOST, lk->addrs, lk->lens, RESOLVER_MAX_ADDRS,
                  &lk->naddrs);
    bool literal = lk->err != EAI_NONAME;
    if (!literal && !rs->thread_started && start_helper(rs) != PMX_OK) {
        int err = errno;
        free(lk);
        errno = err;
        return PMX_ERR;
    }
    lk->id = rs->next_id++;
    rs->live++;
    long long id = lk->id;

    pthread_mutex_lock(&rs->lock);
    if (literal) {
        finish_locked(rs, lk);
    } else {
        queue_push(&rs->pending, lk);
        pthread_cond_signal(&rs->wake);
    }
    pthread_mutex_unlock(&rs->lock);
    return id;
}

void resolver_cancel(struct resolver *rs, long long id)
{
    struct lookup *lk;

    /* Results being delivered are the reactor thread's own. */
    lk = queue_remove(&rs->delivering, id);
    if (lk != NULL) {
        rs->live--;
        free(lk);
        return;
    }
    pthread_mutex_lock(&rs->lock);
    lk = queue_remove(&rs->pending, id);
    if (lk == NULL)
        lk = queue_remove(&rs->done, id);
    if (lk == NULL && rs->current != NULL && rs->current->id == id)
        rs->current->cancelled = true;  /* freed when delivered */
    pthread_mutex_unlock(&rs->lock);
    if (lk != NULL) {
        rs->live--;
        free(lk);
    }
}

int resolver_resolve_now(const char *host, int port, struct sockaddr_storage *addrs,
                         socklen_t *lens, int max, char *err, size_t errlen)
{
    const char *start;
    int naddrs;

    if (host == NULL || port < 0 || port > 65535 || max < 1) {
        snprintf(err, errlen, "invalid host, port or address count");
        return PMX_ERR;
    }
    size_t len = host_span(host, &start);
    char *name = strndup(start, len);
    if (name == NULL) {
        snprintf(err, errlen, "%s", strerror(errno));
        return PMX_ERR;
    }
    int rc = gai(name, port, 0, addrs, lens, max, &naddrs);
    int saved = errno;
    free(name);
    if (rc != 0) {
        snprintf(err, errlen, "%s", rc == EAI_SYSTEM ? strerror(saved) : gai_strerror(rc));
        return PMX_ERR;
    }
    return naddrs;
}
