/* Socket activation: listening sockets inherited from systemd (or
 * systemd-socket-activate) as $LISTEN_PID, $LISTEN_FDS and
 * $LISTEN_FDNAMES describe them, from fd 3 on. A service's listener takes
 * the inherited socket bound to its listen address, or one named after the
 * service, instead of binding its own. */
#ifndef ACTIVATION_H
#define ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "pmx.h"

struct listen_config;

/* The first inherited descriptor (SD_LISTEN_FDS_START). */
#define ACTIVATION_FD_START 3
/* Inherited sockets kept; more are refused with an error (closed). */
#define ACTIVATION_MAX_FDS 64
/* A LISTEN_FDNAMES name (systemd allows 255 characters). */
#define ACTIVATION_NAME_MAX 256

struct activation_set {
    int nfds;                                   /* fds ACTIVATION_FD_START.. */
    char names[ACTIVATION_MAX_FDS][ACTIVATION_NAME_MAX];    /* "" when unnamed */
};

/* Parses the three variables for the process self: nothing inherited
 * (nfds 0, PMX_OK) when LISTEN_PID or LISTEN_FDS is unset or LISTEN_PID is
 * another process. Returns PMX_ERR with the reason in err when a value is
 * malformed, when LISTEN_FDS exceeds ACTIVATION_MAX_FDS, or when
 * LISTEN_FDNAMES has a name too long or not one name per descriptor
 * (names may then be missing: set->nfds is still filled). */
int activation_parse(const char *listen_pid, const char *listen_fds, const char *listen_fdnames, pid_t self,
                     struct activation_set *set, char *err, size_t errlen) PMX_WUR;

/* Takes the inherited sockets from the environment (the variables are
 * then unset, so that no child process takes them too) and makes them
 * close-on-exec and non-blocking. Logs what it found and any error. */
void activation_init(void);

/* An inherited listening socket for listen address lc of the service
 * named service: the one bound to the same address (getsockname), else
 * one whose LISTEN_FDNAMES name is the service's name. Each socket is given
 * once. Returns the fd, or -1 when none fits. */
int activation_take(const struct listen_config *lc, const char *service);

/* Closes the inherited sockets no listener took, logging each. */
void activation_close_unused(void);

#endif
