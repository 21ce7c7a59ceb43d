/* The admin API (SPEC §12): HTTP/1.1 on the daemon's reactor, requests
 * framed by the http codec, one request per connection, JSON replies and
 * JSON errors, an optional bearer token, and the routes that read the
 * services' state and statistics or change targets at runtime. */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include "pmx.h"

struct config;
struct reactor;
struct service;

/* Bytes of one request, head and body: a larger one gets 413. */
#define ADMIN_REQUEST_MAX (64 * 1024)
/* Admin connections at once: more are accepted and closed at once. */
#define ADMIN_MAX_CONNS 32
/* A connection that has not sent a whole request in this time is closed. */
#define ADMIN_IDLE_MS 10000
/* Room for the reload callback's message. */
#define ADMIN_MSG_MAX 512

/* What the admin API reads and calls in the daemon. */
struct admin_hooks {
    /* The services running now (an array of n pointers). */
    struct service *const *(*services)(void *data, int *n);
    /* The running configuration (admin.token is read from it on every
     * request, so a reload changes it). */
    const struct config *(*config)(void *data);
    /* Reloads as SIGHUP; writes what happened into msg. Returns true when
     * the new configuration was applied. NULL: reloading is not offered. */
    bool (*reload)(void *data, char *msg, size_t msglen);
    void *data;
};

/* A response built by admin_handle(). */
struct admin_response {
    int status;
    const char *content_type;
    const char *allow;          /* for 405: the methods the path takes */
    char *body;                 /* malloc'ed */
    size_t len;
};

struct admin;

/* Listens on spec ("HOST:PORT", "[IPV6]:PORT" or "unix:/path") and serves
 * the API on r. Returns the admin, or NULL with the reason in err. */
struct admin *admin_start(struct reactor *r, const char *spec, const struct admin_hooks *hooks, char *err,
                          size_t errlen);

/* Closes the listener and every admin connection. NULL is ignored. */
void admin_stop(struct admin *a);

/* Answers one whole HTTP request data[0..len) (as the http codec framed
 * it): parses the head, checks the token, routes. Always fills resp (the
 * caller frees resp->body). For the listener, the unit tests and the fuzz
 * harness. */
void admin_handle(const struct admin_hooks *hooks, const char *data, size_t len, struct admin_response *resp);

#endif
