/* sd_notify by hand: the daemon's state changes as datagrams to
 * $NOTIFY_SOCKET, and the watchdog's keep-alive from a reactor timer (a
 * stuck loop stops it, which is what the watchdog is for). */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "reactor.h"

/* The keep-alive may not come faster than this, whatever WATCHDOG_USEC. */
#define NOTIFY_WATCHDOG_MIN_MS 10

static struct {
    int fd;                             /* -1: not under systemd, or closed */
    struct sockaddr_un addr;
    socklen_t addr_len;
    struct reactor *reactor;
    unsigned long long watchdog_usec;   /* 0: no watchdog */
    long long watchdog_timer;
    bool stopping_sent;
    char status[NOTIFY_MSG_MAX];        /* the last STATUS= text sent */
} notify = { .fd = -1 };

int notify_format(char *out, size_t outlen, enum notify_msg msg, const char *text,
                  unsigned long long number)
{
    int n;

    switch (msg) {
    case NOTIFY_READY:
        n = snprintf(out, outlen, "READY=1");
        break;
    case NOTIFY_RELOADING:
        n = snprintf(out, outlen, "RELOADING=1\nMONOTONIC_USEC=%llu", number);
        break;
    case NOTIFY_STOPPING:
        n = snprintf(out, outlen, "STOPPING=1");
        break;
    case NOTIFY_WATCHDOG:
        n = snprintf(out, outlen, "WATCHDOG=1");
        break;
    case NOTIFY_MAINPID:
        n = snprintf(out, outlen, "MAINPID=%llu", number);
        break;
    case NOTIFY_STATUS: {
        static const char key[] = "STATUS=";
        size_t k = sizeof(key) - 1, i;

        if (outlen <= k)
            return PMX_ERR;
        memcpy(out, key, k);
        /* One variable per line: a line break would start another one. */
        for (i = 0; text != NULL && text[i] != '\0' && k + i < outlen - 1; i++)
            out[k + i] = (text[i] == '\n' || text[i] == '\r') ? ' ' : text[i];
        out[k + i] = '\0';
        return (int)(k + i);
    }
    default:
        return PMX_ERR;
    }
    if (n < 0 || (size_t)n >= outlen)
        return PMX_ERR;
    return n;
}

int notify_parse_address(const char *s, struct sockaddr_un *addr, socklen_t *len)
{
    size_t n = s != NULL ? strlen(s) : 0;

    /* sun_path needs no NUL for an abstract name; a path keeps one. */
    if (n < 2 || (s[0] != '/' && s[0] != '@') || n > sizeof(addr->sun_path) - (s[0] == '/'))
        return PMX_ERR;
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, s, n);
    if (s[0] == '@')
        addr->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (s[0] == '/'));
    return PMX_OK;
}

/* Sends one datagram; a full or absent receiver loses it (the notification
 * is advisory and the loop must not wait for systemd). */
static void notify_send(const char *msg, size_t len)
{
    if (notify.fd < 0)
        return;
    if (sendto(notify.fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&notify.addr, notify.addr_len) < 0)
        log_debug("notify: cannot send %.*s: %s", (int)strcspn(msg, "\n"), msg, strerror(errno));
}

static void notify_send_msg(enum notify_msg msg, const char *text, unsigned long long number)
{
    char buf[NOTIFY_MSG_MAX];
    int n = notify_format(buf, sizeof(buf), msg, text, number);

    if (n > 0)
        notify_send(buf, (size_t)n);
}

/* Half the watchdog timeout, as systemd advises, in ms. */
static long notify_watchdog_interval(void)
{
    return (long)PMX_MAX(notify.watchdog_usec / 2000, NOTIFY_WATCHDOG_MIN_MS);
}

static long notify_watchdog(struct reactor *r, long long id, void *data)
{
    notify_send_msg(NOTIFY_WATCHDOG, NULL, 0);
    return notify_watchdog_interval();
}

static void notify_watchdog_start(void)
{
    if (notify.fd < 0 || notify.watchdog_usec == 0 || notify.reactor == NULL || notify.watchdog_timer > 0)
        return;
    notify_send_msg(NOTIFY_WATCHDOG, NULL, 0);
    notify.watchdog_timer = reactor_timer_add(notify.reactor, notify_watchdog_interval(), notify_watchdog, NULL);
    if (notify.watchdog_timer < 0) {
        log_error("notify: out of memory; no watchdog keep-alive");
        notify.watchdog_timer = 0;
    }
}

/* A decimal number with nothing after it; 0 for anything else. */
static unsigned long long notify_number(const char *s)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0' ? v : 0;
}

void notify_init(struct reactor *r)
{
    const char *path = getenv("NOTIFY_SOCKET");
    const char *wpid = getenv("WATCHDOG_PID");

    notify.reactor = r;
    if (path == NULL || path[0] == '\0')
        return;
    if (notify_parse_address(path, &notify.addr, &notify.addr_len) != PMX_OK) {
        log_error("NOTIFY_SOCKET=\"%s\" is not an absolute path or @name; not notifying systemd", path);
        return;
    }
    notify.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (notify.fd < 0) {
        log_error_errno("notify: socket");
        return;
    }
    notify.watchdog_usec = notify_number(getenv("WATCHDOG_USEC"));
    /* WATCHDOG_PID names the process systemd watches; any other (a child
     * that inherited the variables) keeps quiet until notify_mainpid(). */
    if (wpid != NULL && wpid[0] != '\0' && notify_number(wpid) != (unsigned long long)getpid())
        return;
    notify_watchdog_start();
}

void notify_ready(const char *status)
{
    char buf[NOTIFY_MSG_MAX];
    int n = notify_format(buf, sizeof(buf), NOTIFY_READY, NULL, 0);

    if (n < 0)
        return;
    if (status != NULL) {
        buf[n++] = '\n';
        int k = notify_format(buf + n, sizeof(buf) - (size_t)n, NOTIFY_STATUS, status, 0);
        if (k < 0)
            return;
        n += k;
        snprintf(notify.status, sizeof(notify.status), "%s", status);
    }
    notify_send(buf, (size_t)n);
}

void notify_reloading(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    notify_send_msg(NOTIFY_RELOADING, NULL,
                    (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
}

void notify_stopping(void)
{
    if (notify.stopping_sent)
        return;
    notify.stopping_sent = true;
    notify_send_msg(NOTIFY_STOPPING, NULL, 0);
}

void notify_status(const char *status)
{
    if (notify.fd < 0 || strncmp(notify.status, status, sizeof(notify.status) - 1) == 0)
        return;
    snprintf(notify.status, sizeof(notify.status), "%s", status);
    notify_send_msg(NOTIFY_STATUS, status, 0);
}

void notify_mainpid(pid_t pid)
{
    notify_send_msg(NOTIFY_MAINPID, NULL, (unsigned long long)pid);
    if (pid == getpid())
        notify_watchdog_start();
}

void notify_close(void)
{
    if (notify.watchdog_timer > 0 && notify.reactor != NULL)
        reactor_timer_del(notify.reactor, notify.watchdog_timer);
    notify.watchdog_timer = 0;
    if (notify.fd >= 0)
        close(notify.fd);
    notify.fd = -1;
}
