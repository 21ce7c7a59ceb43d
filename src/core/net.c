/* Socket helpers shared by the listeners, the upstream connects and the
 * configuration: they report failures through an error buffer or errno and
 * never log. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "net.h"

int net_parse_listen(const char *s, struct net_listen_spec *spec, char *err, size_t errlen)
{
    const char *port;
    size_t hostlen;

    memset(spec, 0, sizeof(*spec));
    if (strncmp(s, "unix:", 5) == 0) {
        const char *path = s + 5;
        if (*path == '\0') {
            snprintf(err, errlen, "missing socket path after unix:");
            return PMX_ERR;
        }
        if (strlen(path) >= sizeof(spec->path)) {
            snprintf(err, errlen, "socket path longer than %zu bytes", sizeof(spec->path) - 1);
            return PMX_ERR;
        }
        spec->unix_socket = true;
        snprintf(spec->path, sizeof(spec->path), "%s", path);
        return PMX_OK;
    }
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(err, errlen, "expected [IPV6]:PORT");
            return PMX_ERR;
        }
        hostlen = (size_t)(close - s - 1);
        s++;
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "missing port (HOST:PORT, [IPV6]:PORT or unix:/path)");
            return PMX_ERR;
        }
        if (memchr(s, ':', (size_t)(colon - s)) != NULL) {
            snprintf(err, errlen, "an IPv6 address needs brackets: [IPV6]:PORT");
            return PMX_ERR;
        }
        hostlen = (size_t)(colon - s);
        port = colon + 1;
    }
    if (hostlen == 0 || hostlen >= sizeof(spec->host)) {
        snprintf(err, errlen, hostlen == 0 ? "missing host" : "host name too long");
        return PMX_ERR;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (*port < '0' || *port > '9' || *end != '\0' || errno != 0 || p < 1 || p > 65535) {
        snprintf(err, errlen, "\"%s\" is not a port (1-65535)", port);
        return PMX_ERR;
    }
    memcpy(spec->host, s, hostlen);
    spec->host[hostlen] = '\0';
    spec->port = (int)p;
    return PMX_OK;
}

int net_setup_socket(int fd)
{
    int one = 1;
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return PMX_ERR;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return PMX_ERR;
    /* Request/response traffic: never wait to coalesce small writes (fails
     * harmlessly on unix sockets). */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return PMX_OK;
}

/* Closes fd keeping errno, for the failure paths. */
static void net_close_keep_errno(int fd)
{
    int saved = errno;

    close(fd);
    errno = saved;
}

int net_listen_tcp(const struct sockaddr *addr, socklen_t len, bool ipv6_only, int backlog,
                   char *err, size_t errlen)
{
    int one = 1;
    char name[NET_ADDR_MAX];
    int fd = socket(addr->sa_family, SOCK_STREAM, 0);

    if (fd < 0)
        goto fail;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->sa_family == AF_INET6) {
        int v6only = ipv6_only ? 1 : 0;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) < 0)
            goto fail;
    }
    if (bind(fd, addr, len) < 0 || listen(fd, backlog) < 0 || net_setup_socket(fd) != PMX_OK)
        goto fail;
    return fd;
fail:
    if (fd >= 0)
        net_close_keep_errno(fd);
    net_format_addr(addr, len, name, sizeof(name));
    snprintf(err, errlen, "cannot listen on %s: %s", name, strerror(errno));
    return PMX_ERR;
}

/* Whether something accepts connections on the unix socket at path. */
static bool net_unix_alive(const struct sockaddr_un *sun)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return false;
    bool alive = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EAGAIN;
    close(fd);
    return alive;
}

int net_listen_unix(const char *path, mode_t mode, int backlog, char *err, size_t errlen)
{
    struct sockaddr_un sun;
    struct stat st;
    int fd = -1;

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sun.sun_path)) {
        snprintf(err, errlen, "unix:%s: path longer than %zu bytes", path, sizeof(sun.sun_path) - 1);
        return PMX_ERR;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "unix:%s: exists and is not a socket", path);
            return PMX_ERR;
        }
        if (net_unix_alive(&sun)) {
            snprintf(err, errlen, "unix:%s: another process is listening on it", path);
            return PMX_ERR;
        }
        (void)unlink(path);     /* stale: left by a process that is gone */
    }
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (const struct sockaddr *)&sun, sizeof(sun)) < 0)
        goto fail;
    if (chmod(path, mode) < 0 || listen(fd, backlog) < 0 || net_setup_socket(fd) != PMX_OK) {
        net_close_keep_errno(fd);
        fd = -1;
        int saved = errno;
        (void)unlink(path);
        errno = saved;
        goto fail;
    }
    return fd;
fail:
    if (fd >= 0)
        net_close_keep_errno(fd);
    snprintf(err, errlen, "cannot listen on unix:%s: %s", path, strerror(errno));
    return PMX_ERR;
}

int net_connect(const struct sockaddr *addr, socklen_t len, bool keep_alive)
{
    int fd = socket(addr->sa_family, SOCK_STREAM, 0);

    if (fd < 0)
        return PMX_ERR;
    if (net_setup_socket(fd) != PMX_OK)
        goto fail;
    if (keep_alive) {
        int one = 1;
        (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    }
    if (connect(fd, addr, len) < 0 && errno != EINPROGRESS)
        goto fail;
    return fd;
fail:
    net_close_keep_errno(fd);
    return PMX_ERR;
}

int net_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return PMX_ERR;
    if (err != 0) {
        errno = err;
        return PMX_ERR;
    }
    return PMX_OK;
}

void net_format_addr(const struct sockaddr *addr, socklen_t len, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];

    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, ntohs(in->sin_port));
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else if (addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)addr;
        size_t max = len > offsetof(struct sockaddr_un, sun_path) ?
                     len - offsetof(struct sockaddr_un, sun_path) : 0;
        size_t n = strnlen(sun->sun_path, PMX_MIN(max, sizeof(sun->sun_path)));
        if (n == 0)
            snprintf(out, outlen, "unix");
        else
            snprintf(out, outlen, "unix:%.*s", (int)n, sun->sun_path);
    } else {
        snprintf(out, outlen, "?");
    }
}
