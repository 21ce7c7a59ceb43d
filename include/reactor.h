/* The event loop: one epoll instance, file events indexed by fd, a few
 * timers, and a cached monotonic clock. Modelled on Redis' ae. */
#ifndef REACTOR_H
#define REACTOR_H

#include <stdint.h>
#include "pmx.h"

#define REACTOR_NONE 0
#define REACTOR_READABLE 1
#define REACTOR_WRITABLE 2
/* Reported with READABLE or WRITABLE when epoll says the peer hung up or the
 * socket has an error; the handler finds out which by reading or writing. */
#define REACTOR_HUP 4

/* A timer callback returns the delay in ms before it runs again, or
 * REACTOR_TIMER_DONE to be deleted. */
#define REACTOR_TIMER_DONE (-1)

struct reactor;

typedef void (*reactor_file_fn)(struct reactor *r, int fd, void *data, int mask);
typedef long (*reactor_timer_fn)(struct reactor *r, long long id, void *data);
typedef void (*reactor_hook_fn)(struct reactor *r, void *data);

/* Returns a reactor able to hold fds below size (grown on demand), or NULL. */
struct reactor *reactor_create(int size);
void reactor_destroy(struct reactor *r);

/* Adds mask to the events watched on fd; fn and data replace the previous
 * ones. Returns PMX_OK or PMX_ERR (errno set). */
int reactor_add(struct reactor *r, int fd, int mask, reactor_file_fn fn, void *data) PMX_WUR;

/* Removes mask from the events watched on fd; with the last event gone the
 * fd leaves epoll. Call with REACTOR_READABLE | REACTOR_WRITABLE before
 * closing an fd. */
void reactor_del(struct reactor *r, int fd, int mask);

/* Sets the events watched on fd to exactly mask (REACTOR_NONE: fd leaves
 * epoll), with fn and data. One epoll_ctl at most. Returns PMX_OK or
 * PMX_ERR (errno set). */
int reactor_set(struct reactor *r, int fd, int mask, reactor_file_fn fn, void *data) PMX_WUR;

/* The events watched on fd. */
int reactor_mask(const struct reactor *r, int fd);

/* Runs fn after ms milliseconds. Returns the timer id (> 0) or PMX_ERR. */
long long reactor_timer_add(struct reactor *r, long ms, reactor_timer_fn fn, void *data);
void reactor_timer_del(struct reactor *r, long long id);

/* Runs fn(r, data) before each wait for events (flushes, deferred closes);
 * hooks run in the order they were added. Returns PMX_OK or PMX_ERR
 * (ENOMEM). */
int reactor_add_before_sleep(struct reactor *r, reactor_hook_fn fn, void *data) PMX_WUR;
/* Removes the hook added with fn and data; safe from inside a hook. */
void reactor_remove_before_sleep(struct reactor *r, reactor_hook_fn fn, void *data);

/* Processes events until reactor_stop(). Returns PMX_OK, or PMX_ERR if
 * epoll_wait fails for a reason other than EINTR. */
int reactor_run(struct reactor *r);
void reactor_stop(struct reactor *r);

/* Milliseconds on the monotonic clock, cached at each loop iteration. */
uint64_t reactor_now(const struct reactor *r);
/* Reads the monotonic clock now. */
uint64_t reactor_clock_ms(void);

#endif
