/* The systemd notification protocol (sd_notify), written by hand: one
 * datagram of "KEY=VALUE" lines to the unix socket named by $NOTIFY_SOCKET
 * (a path, or "@name" in the abstract namespace). Without $NOTIFY_SOCKET
 * every call does nothing, so the daemon calls them unconditionally. */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include "pmx.h"

struct reactor;

/* The longest datagram Proximux sends; a STATUS= text is cut to fit. */
#define NOTIFY_MSG_MAX 512

enum notify_msg {
    NOTIFY_READY,       /* "READY=1" */
    NOTIFY_RELOADING,   /* "RELOADING=1\nMONOTONIC_USEC=<number>" */
    NOTIFY_STOPPING,    /* "STOPPING=1" */
    NOTIFY_STATUS,      /* "STATUS=<text>" */
    NOTIFY_WATCHDOG,    /* "WATCHDOG=1" */
    NOTIFY_MAINPID,     /* "MAINPID=<number>" */
};

/* Writes the datagram for msg into out (NUL-terminated). text is the
 * STATUS= text: a line break in it becomes a space (one line, one
 * variable) and a text too long is cut at outlen - 1. number is
 * MONOTONIC_USEC for RELOADING, the pid for MAINPID; other messages ignore
 * both. Returns the length, or PMX_ERR when out cannot hold the message
 * (a STATUS= text is cut instead). */
int notify_format(char *out, size_t outlen, enum notify_msg msg, const char *text,
                  unsigned long long number) PMX_WUR;

/* Parses a $NOTIFY_SOCKET value: "/absolute/path" or "@abstract" (the '@'
 * becomes the leading NUL). Returns PMX_OK with addr and len filled, or
 * PMX_ERR for an empty, relative or too long value. */
int notify_parse_address(const char *s, struct sockaddr_un *addr, socklen_t *len) PMX_WUR;

/* Reads $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID and, when the
 * watchdog is asked of this process, sends WATCHDOG=1 every WATCHDOG_USEC/2
 * from a timer on r. The variables stay set, so that a process started by
 * a binary upgrade can notify too (NotifyAccess=all). Logs and ignores an
 * unusable value. */
void notify_init(struct reactor *r);

/* READY=1 with STATUS=status when status is not NULL: at start-up, once
 * every listener accepts, and at the end of every reload. */
void notify_ready(const char *status);

/* RELOADING=1 with MONOTONIC_USEC=now: a reload begins; notify_ready()
 * must follow, whether the reload was applied or refused. */
void notify_reloading(void);

/* STOPPING=1: shutdown begun. Sent once; later calls do nothing. */
void notify_stopping(void);

/* STATUS=status, only when it differs from the last one sent. */
void notify_status(const char *status);

/* MAINPID=pid: the process started by a binary upgrade tells systemd it is
 * now the main process (it then sends READY=1). Needs NotifyAccess=all. */
void notify_mainpid(pid_t pid);

/* Stops notifying (the watchdog timer too) and closes the socket: for the
 * old process after a binary upgrade handed over, so that its exit does not
 * say STOPPING=1 for the service the new process now runs. */
void notify_close(void);

#endif
