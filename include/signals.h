/* Signals: blocked and read from a signalfd in the reactor, so handlers
 * never run asynchronously. SIGPIPE is ignored. */
#ifndef SIGNALS_H
#define SIGNALS_H

#include "pmx.h"

struct reactor;

typedef void (*signals_fn)(int signo, void *data);

/* Blocks SIGTERM, SIGINT, SIGQUIT, SIGHUP and SIGUSR2, ignores SIGPIPE and delivers
 * the blocked ones to fn from the reactor. Returns PMX_OK or PMX_ERR. */
int signals_init(struct reactor *r, signals_fn fn, void *data) PMX_WUR;

/* Closes the signalfd. */
void signals_close(struct reactor *r);

#endif
