/* Socket activation: the table of sockets inherited from systemd, parsed
 * once at start-up, and the matching of a listen address to one of them
 * (bound address first, then the service's name in LISTEN_FDNAMES). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "activation.h"
#include "config.h"
#include "log.h"

static struct {
    struct activation_set set;
    bool taken[ACTIVATION_MAX_FDS];
} activation;

/* A decimal number >= 0 and <= max, nothing else. */
static int activation_number(const char *s, long long max, long long *out)
{
    long long v = 0;

    if (s == NULL || *s == '\0')
        return PMX_ERR;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return PMX_ERR;
        v = v * 10 + (*s - '0');
        if (v > max)
            return PMX_ERR;
    }
    *out = v;
    return PMX_OK;
}

int activation_parse(const char *listen_pid, const char *listen_fds, const char *listen_fdnames, pid_t self,
                     struct activation_set *set, char *err, size_t errlen)
{
    long long pid, nfds;

    memset(set, 0, sizeof(*set));
    if (listen_pid == NULL || listen_fds == NULL)
        return PMX_OK;
    if (activation_number(listen_pid, 0x7fffffff, &pid) != PMX_OK) {
        snprintf(err, errlen, "LISTEN_PID=\"%.32s\" is not a process id", listen_pid);
        return PMX_ERR;
    }
    if (pid != (long long)self)
        return PMX_OK;
    if (activation_number(listen_fds, 1000000, &nfds) != PMX_OK) {
        snprintf(err, errlen, "LISTEN_FDS=\"%.32s\" is not a number", listen_fds);
        return PMX_ERR;
    }
    if (nfds > ACTIVATION_MAX_FDS) {
        snprintf(err, errlen, "LISTEN_FDS=%lld: at most %d inherited sockets are used", nfds, ACTIVATION_MAX_FDS);
        return PMX_ERR;
    }
    set->nfds = (int)nfds;
    if (listen_fdnames == NULL)
        return PMX_OK;
    /* Colon-separated, one name per descriptor in order. */
    const char *p = listen_fdnames;
    for (int i = 0; i < set->nfds; i++) {
        size_t n = strcspn(p, ":");
        if (n >= ACTIVATION_NAME_MAX) {
            snprintf(err, errlen, "LISTEN_FDNAMES: name %d is longer than %d characters", i + 1,
                     ACTIVATION_NAME_MAX - 1);
            return PMX_ERR;
        }
        memcpy(set->names[i], p, n);
        set->names[i][n] = '\0';
        p += n;
        if (i + 1 == set->nfds)
            break;
        if (*p != ':') {
            snprintf(err, errlen, "LISTEN_FDNAMES has %d names for %d sockets", i + 1, set->nfds);
            return PMX_ERR;
        }
        p++;
    }
    if (*p != '\0') {
        snprintf(err, errlen, "LISTEN_FDNAMES has more names than the %d sockets", set->nfds);
        return PMX_ERR;
    }
    return PMX_OK;
}

void activation_init(void)
{
    char err[256];
    const char *names = getenv("LISTEN_FDNAMES");

    if (activation_parse(getenv("LISTEN_PID"), getenv("LISTEN_FDS"), names, getpid(), &activation.set,
                         err, sizeof(err)) != PMX_OK)
        log_error("socket activation: %s", err);
    (void)unsetenv("LISTEN_PID");
    (void)unsetenv("LISTEN_FDS");
    (void)unsetenv("LISTEN_FDNAMES");
    for (int i = 0; i < activation.set.nfds; i++) {
        int fd = ACTIVATION_FD_START + i;
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
            log_error_errno("socket activation: inherited fd %d", fd);
            activation.taken[i] = true;     /* unusable: never given out */
        }
    }
    if (activation.set.nfds > 0)
        log_info("socket activation: %d inherited socket%s", activation.set.nfds,
                 activation.set.nfds == 1 ? "" : "s");
}

/* Whether fd is a listening stream socket bound to lc's address. */
static bool activation_matches(int fd, const struct listen_config *lc)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int listening = 0;
    socklen_t optlen = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening)
        return false;
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return false;
    if (lc->where.unix_socket) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
        return ss.ss_family == AF_UNIX && n > 0 && strnlen(un->sun_path, n) == strlen(lc->where.path) &&
               strncmp(un->sun_path, lc->where.path, n) == 0;
    }
    if (ss.ss_family != lc->addr.ss_family)
        return false;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss, *b = (const struct sockaddr_in *)&lc->addr;
        return a->sin_port == b->sin_port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss, *b = (const struct sockaddr_in6 *)&lc->addr;
        return a->sin6_port == b->sin6_port && memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
    return false;
}

static int activation_give(int i, const struct listen_config *lc, const char *service, const char *how)
{
    activation.taken[i] = true;
    log_info("service %s: listener %s uses inherited socket fd %d (%s)", service, lc->spec,
             ACTIVATION_FD_START + i, how);
    return ACTIVATION_FD_START + i;
}

int activation_take(const struct listen_config *lc, const char *service)
{
    for (int i = 0; i < activation.set.nfds; i++)
        if (!activation.taken[i] && activation_matches(ACTIVATION_FD_START + i, lc))
            return activation_give(i, lc, service, "same address");
    for (int i = 0; i < activation.set.nfds; i++) {
        int listening = 0;
        socklen_t optlen = sizeof(listening);

        if (activation.taken[i] || strcmp(activation.set.names[i], service) != 0)
            continue;
        if (getsockopt(ACTIVATION_FD_START + i, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) != 0 || !listening)
            continue;
        return activation_give(i, lc, service, "LISTEN_FDNAMES");
    }
    return -1;
}

void activation_close_unused(void)
{
    for (int i = 0; i < activation.set.nfds; i++) {
        if (activation.taken[i])
            continue;
        log_error("socket activation: inherited fd %d%s%s%s matches no listen address or service name; closed",
                  ACTIVATION_FD_START + i, activation.set.names[i][0] ? " (\"" : "", activation.set.names[i],
                  activation.set.names[i][0] ? "\")" : "");
        activation.taken[i] = true;
        close(ACTIVATION_FD_START + i);
    }
}
