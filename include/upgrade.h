/* Binary upgrade (SIGUSR2, SPEC §12). The old process starts the binary at
 * its own path (/proc/self/exe, resolved at start) with the same arguments,
 * handing it every listening socket in PROXIMUX_INHERIT_FDS="fd:spec,..."
 * (spec as the listen setting is written) and the write end of a pipe in
 * PROXIMUX_UPGRADE_FD. The new process takes the sockets whose spec its own
 * configuration names (no bind: no connect is refused), and writes one byte
 * to the pipe once every service accepts. The old one then stops accepting
 * and exits gracefully; if the pipe closes first (the new process exited)
 * or UPGRADE_TIMEOUT_MS passes, the old one keeps serving and logs why. */
#ifndef UPGRADE_H
#define UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include "net.h"
#include "pmx.h"

struct listen_config;
struct reactor;

#define UPGRADE_ENV_FDS "PROXIMUX_INHERIT_FDS"
#define UPGRADE_ENV_READY "PROXIMUX_UPGRADE_FD"
/* Sockets handed over at most; an old process with more refuses the
 * upgrade, a new one given more inherits none (and fails to bind). */
#define UPGRADE_MAX_FDS 256
#define UPGRADE_SPEC_MAX (NET_ADDR_MAX + NET_HOST_MAX)
#define UPGRADE_TIMEOUT_MS 10000

struct upgrade_fd {
    int fd;
    char spec[UPGRADE_SPEC_MAX];
    bool taken;
};

/* Parses s ("fd:spec,fd:spec", spec up to the next ','): fills out (up to
 * max entries) and returns their count, or -1 if s is malformed (an fd not a
 * number 0-65535, an empty or too long spec, more than max entries). */
int upgrade_parse_fds(const char *s, struct upgrade_fd *out, int max);

/* At start: resolves the binary's path and, in a process started by an
 * upgrade, takes the inherited sockets and the readiness pipe from the
 * environment (the variables are removed from it). */
void upgrade_init(void);

/* A service_inherit_fn: the inherited socket for lc's spec, or -1. */
int upgrade_inherit(void *data, const struct listen_config *lc);

/* Every service is open: closes the inherited sockets none took. */
void upgrade_inherit_done(void);

/* Every service accepts: tells the old process (if an upgrade started this
 * one), then upgrade_on_ready(). */
void upgrade_ready(void);

/* Hook, run once in a process started by an upgrade when it is ready: the
 * place for systemd's MAINPID=<getpid()> (sd_notify when NOTIFY_SOCKET is
 * set), so that systemd follows the new main process. */
void upgrade_on_ready(void);

/* One listening socket to hand over. */
struct upgrade_listener {
    int fd;
    const char *spec;
};

typedef void (*upgrade_ready_fn)(void *data);

/* Starts the new process with the n listeners ls (SIGUSR2). ready(data) is
 * called once it is ready. Returns PMX_OK, or PMX_ERR with the reason in err
 * (an upgrade under way, fork failed, too many listeners...). */
int upgrade_start(struct reactor *r, char *const *argv, const struct upgrade_listener *ls, int n,
                  upgrade_ready_fn ready, void *data, char *err, size_t errlen) PMX_WUR;

/* The janitor: reaps a new process that failed. */
void upgrade_tick(void);

/* Stops watching an upgrade under way (the old process exits). */
void upgrade_close(struct reactor *r);

#endif
