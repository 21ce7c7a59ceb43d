/* Target health (SPEC §9): the per-target state machine fed by traffic and
 * probe results, and the active probe (connect, send, expect a prefix). The
 * state machine does no I/O and never logs: it says what changed and why,
 * and the upstream layer logs. */
#ifndef HEALTH_H
#define HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "pmx.h"

enum health_state {
    HEALTH_UP,
    HEALTH_DOWN,                /* fail_after consecutive failures; probed until rise_after successes */
    HEALTH_MAINT,               /* marked down by an operator until marked up */
};

#define HEALTH_REASON_MAX 128

/* read-only: written by the functions below. */
struct health {
    enum health_state state;
    int fails;                  /* consecutive failures while up */
    int rises;                  /* consecutive probe successes while down */
    uint64_t since;             /* ms (caller's clock) of the last change */
    char reason[HEALTH_REASON_MAX]; /* why the last change */
};

/*
 * Who calls what:
 *
 *   result                      UP                 DOWN             MAINT
 *   health_failure (traffic     fails++; DOWN at   rises = 0        -
 *     or probe)                 fail_after
 *   health_traffic_ok           fails = 0          -                -
 *   health_probe_ok             fails = 0          rises++; UP at   -
 *                                                  rise_after
 *   health_set_maint(true)      MAINT              MAINT            -
 *   health_set_maint(false)     -                  -                UP
 *
 * Failures are what §9 counts: connect refused, connect timeout, reset,
 * response timeout, a failed probe. Probes of UP targets (check_up) use the
 * same calls. Traffic never brings a DOWN target back: only probes do.
 * Functions that can change the state return true when they did, with
 * since = now and reason set. A fail_after or rise_after below 1 counts
 * as 1.
 */

/* UP, counters at 0, since = now, reason "initial". */
void health_init(struct health *h, uint64_t now);

/* A failure seen by traffic or by a probe; reason (NULL: "failure") says
 * what failed, e.g. "connect: Connection refused". Returns true when the
 * target went DOWN; its reason is then "<reason> (<n> consecutive
 * failures)". */
bool health_failure(struct health *h, int fail_after, const char *reason, uint64_t now);

/* A request or connect that went well: clears the failure count of an UP
 * target. Changes nothing else. */
void health_traffic_ok(struct health *h);

/* A successful probe: clears the failure count of an UP target; counts
 * towards rise_after in DOWN. Returns true when the target went UP
 * (reason "<n> successful probes"). */
bool health_probe_ok(struct health *h, int rise_after, uint64_t now);

/* An operator marks the target down (MAINT) or up. Marking up leaves
 * MAINT for UP at once, counters at 0: the operator said so, and a target
 * that is in fact dead goes DOWN again after fail_after failures. Marking
 * up a target that is not in MAINT changes nothing (a DOWN target waits for
 * its probes). Returns true when the state changed (reason "marked down"
 * or "marked up"). */
bool health_set_maint(struct health *h, bool down, uint64_t now);

/* True when traffic may go to the target: state UP. */
bool health_usable(const struct health *h);

/* "up", "down", "maint". */
const char *health_state_name(enum health_state state);

/* The active probe: one check of one target. */
struct reactor;
struct health_probe;

/* The outcome of a probe. reason is short text ("connected", "reply
 * matched", "connect: Connection refused", "connect timeout", "reply does
 * not start with expected bytes", "closed before reply", ...), valid only
 * during the call. After fn returns the probe is freed: fn must not call
 * health_probe_cancel() on it; it may start new probes. */
typedef void (*health_probe_fn)(void *data, bool ok, const char *reason);

/* Starts a probe of addr: a non-blocking connect, then send (when send_len
 * > 0), then, when expect_len > 0, reads until expect_len bytes arrived:
 * ok only if the reply starts with expect. A differing byte fails at once,
 * without waiting for the rest; end of stream before expect_len bytes
 * fails. Without expect, ok once connected (and send written). All of it
 * within timeout_ms (<= 0: times out at the next loop iteration).
 *
 * send and expect are copied. Reply bytes are compared as they arrive and
 * not kept. fn runs exactly once, always from the reactor, never from
 * inside this call, even when the connect fails at once. Returns the probe,
 * or NULL when out of memory (errno ENOMEM; fn will not run). Cancel every
 * pending probe before destroying the reactor. */
struct health_probe *health_probe_start(struct reactor *r, const struct sockaddr *addr, socklen_t len,
                                        const char *send, size_t send_len,
                                        const char *expect, size_t expect_len,
                                        long timeout_ms, health_probe_fn fn, void *data);

/* Stops a pending probe: closes its socket and frees it; fn will not run.
 * NULL is ignored. Not for a probe whose fn is running or has run. */
void health_probe_cancel(struct health_probe *p);

#endif
