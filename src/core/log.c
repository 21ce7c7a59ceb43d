/* Logging: one line per event, "time level message", on stderr or in a file
 * that SIGHUP reopens (for logrotate). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

int log_level = LOG_ERROR;
static int log_fd = STDERR_FILENO;
static bool log_mask_ip;

void log_set_level(int level)
{
    log_level = level;
}

void log_set_mask_ip(bool on)
{
    log_mask_ip = on;
}

void log_format_client(const struct sockaddr *addr, socklen_t len, char *out, size_t outlen)
{
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

    if (log_mask_ip && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        const unsigned char *b = (const unsigned char *)&in->sin_addr;
        snprintf(out, outlen, "%u.%u.x.x:%u", b[0], b[1], ntohs(in->sin_port));
    } else if (log_mask_ip && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        if (memcmp(b, mapped, sizeof(mapped)) == 0) {
            snprintf(out, outlen, "[::ffff:%u.%u.x.x]:%u", b[12], b[13], ntohs(in6->sin6_port));
            return;
        }
        struct in6_addr net;
        char host[INET6_ADDRSTRLEN];
        memset(&net, 0, sizeof(net));
        memcpy(net.s6_addr, b, 6);
        inet_ntop(AF_INET6, &net, host, sizeof(host));
        snprintf(out, outlen, "[%s/48]:%u", host, ntohs(in6->sin6_port));
    } else {
        net_format_addr(addr, len, out, outlen);    /* unmasked, or a unix peer */
    }
}

int log_open(const char *path)
{
    if (path == NULL || path[0] == '\0') {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        return PMX_OK;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return PMX_ERR;
    if (log_fd != STDERR_FILENO)
        close(log_fd);
    log_fd = fd;
    return PMX_OK;
}

void log_write(int level, int with_errno, const char *fmt, ...)
{
    static const char *const names[] = { "-", "ERROR", "INFO", "DEBUG" };
    int saved = errno;
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03d %s ", (int)(tv.tv_usec / 1000),
                          names[level < 0 || level > 3 ? 0 : level]);
    va_start(ap, fmt);
    int len = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    n = len < 0 ? n : PMX_MIN(n + (size_t)len, sizeof(line) - 1);
    if (with_errno)
        n += (size_t)snprintf(line + n, sizeof(line) - n, ": %s", strerror(saved));
    n = PMX_MIN(n, sizeof(line) - 2);
    line[n++] = '\n';
    /* One write per line keeps lines whole when several processes share
     * the file; a failed log write has nowhere to be reported. */
    ssize_t w = write(log_fd, line, n);
    (void)w;
    errno = saved;
}
