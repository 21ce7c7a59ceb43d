/* Lua 5.4 hooks (SPEC §11): one sandboxed Lua state per service, loaded
 * from its `script:` file, calling the optional functions on_connect,
 * route, on_request, on_response and on_event. Every call runs under an
 * instruction budget and a memory limit; an error or an exhausted budget is
 * logged (level 1, rate-limited) and the caller treats it as a refusal or a
 * close, never as a crash. A script object is reference-counted: a reload
 * loads a new one for new connections while connections keep theirs. */
#ifndef SCRIPT_H
#define SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "buf.h"
#include "pmx.h"

struct route_decision;

/* Bytes a Lua state may allocate; an allocation over it fails with a Lua
 * memory error, handled like any error of the hook. */
#define SCRIPT_MEMORY_MAX (64u * 1024 * 1024)
/* Lua VM instructions one call of a hook (and the file's main chunk at
 * load) may run; past it the call is cut with an error. */
#define SCRIPT_INSTRUCTIONS 1000000
/* Errors logged per script per second; the others are counted and their
 * number logged with the next logged one. */
#define SCRIPT_ERRORS_PER_SECOND 10
/* req.bytes and resp.bytes hold at most this many bytes of a request or
 * response (req.size and resp.size give the whole length): the tables of
 * requests in flight stay small whatever the values, and a large value
 * never meets the memory limit before the hook even runs. */
#define SCRIPT_BYTES_MAX 65536
/* A reason returned by on_connect is cut to this many bytes. */
#define SCRIPT_REASON_MAX 128

struct script;

/* Loads the file at path into a fresh sandboxed state and runs its main
 * chunk; service names the service in the hooks' arguments and logs.
 * Returns the script with one reference, or NULL with a one-line reason in
 * err ("/x/hooks.lua:3: unexpected symbol near 'x'", "cannot open
 * /x/hooks.lua: No such file or directory"). */
struct script *script_load(const char *path, const char *service, char *err, size_t errlen);

/* Takes one more reference to s and returns it (s may be NULL). */
struct script *script_ref(struct script *s);

/* Drops a reference; the state is closed with the last one. NULL is
 * ignored. */
void script_unref(struct script *s);

/* Whether the script defines a function called name (a hook). */
bool script_has(const struct script *s, const char *name);

/* on_connect({addr=, port=, service=}): returns true when the client may
 * come in (no hook, nil, true or anything but false), false when the hook
 * returned false (its second value, a string, is the reason: written to
 * reason) or failed (reason "script error"). */
bool script_on_connect(struct script *s, const char *addr, int port, char *reason, size_t reasonlen);

/* script_on_connect() for a client socket address: addr is its IP text
 * (an IPv4-mapped IPv6 address as IPv4), port its port; a unix-socket
 * client is addr "unix", port 0. */
bool script_accept(struct script *s, const struct sockaddr *addr, socklen_t addr_len, char *reason,
                   size_t reasonlen);

/* route(data, {addr=, port=, service=}): fills out (route_decision_init()
 * first) from the hook's ProxyMachine-style result: nil or {noop=true}
 * ROUTE_WAIT; {remote="host:port", data=, reply=, connect_timeout=,
 * inactivity_timeout=} (seconds) ROUTE_TARGET; {close=true} or
 * {close="bytes"} ROUTE_CLOSE (the bytes in out->data). Returns PMX_OK, or
 * PMX_ERR when the hook is missing, failed, ran out of budget or returned
 * anything else: out is then ROUTE_CLOSE with no bytes. */
int script_route(struct script *s, const char *data, size_t len, const char *addr, int port,
                 struct route_decision *out) PMX_WUR;

/* script_route() for a client socket address (as script_accept() shows
 * it): what the proxy routing phase calls. */
int script_route_client(struct script *s, const char *data, size_t len, const struct sockaddr *addr,
                        socklen_t addr_len, struct route_decision *out) PMX_WUR;

/* What on_request decided for one request. */
enum script_verdict {
    SCRIPT_PASS,        /* nil: the request goes upstream */
    SCRIPT_REPLY,       /* {reply="bytes"}: answered with those bytes, nothing goes upstream */
    SCRIPT_CLOSE,       /* {close=true}, an error or an exhausted budget: close the client */
};

/* A request of a fifo/funnel client: builds req = {client=, service=,
 * command=, bytes=, size=} and calls on_request(req) if defined. With
 * SCRIPT_REPLY the reply bytes are appended to reply; reply NULL observes
 * only (mysql: the bytes have passed already): the result is not read and
 * counts as SCRIPT_PASS, an error as SCRIPT_CLOSE. When the script has
 * on_response and the request passes, *ref is set to a handle on req for
 * script_on_response() (else to SCRIPT_NO_REF); a handle must be given
 * back with script_on_response() or script_forget(). */
#define SCRIPT_NO_REF (-2)
enum script_verdict script_on_request(struct script *s, const char *client, const char *command,
                                      size_t command_len, const char *bytes, size_t len,
                                      struct buf *reply, int *ref);

/* on_response(req, {status=, bytes=, size=, us=}) for the request of handle ref,
 * then forgets the handle. bytes NULL: resp.bytes is "" and resp.size len
 * (a response seen but not kept). */
void script_on_response(struct script *s, int ref, const char *status, const char *bytes, size_t len,
                        uint64_t us);

/* Forgets a handle of script_on_response() without calling the hook (the
 * client left). SCRIPT_NO_REF is ignored. */
void script_forget(struct script *s, int ref);

/* on_event(name, {service=, target=, reason=}): "target_down",
 * "target_up", "connect_error", "inactivity". target and detail may be
 * NULL (absent from info). Errors are logged and ignored. */
void script_event(struct script *s, const char *name, const char *service, const char *target,
                  const char *detail);

/* Errors and exhausted budgets so far (for tests and statistics). */
uint64_t script_errors(const struct script *s);

#endif
