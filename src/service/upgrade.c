/* Binary upgrade: the old process's side (fork, exec, wait for the new
 * process's byte) and the new process's side (inherited sockets, the
 * readiness byte). One upgrade at a time per process: module state. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "reactor.h"
#include "upgrade.h"

extern char **environ;

/* The binary at start: a file put at this path later is the upgrade. */
static char upgrade_exe[PATH_MAX];

/* New process: what the old one handed over. */
static struct upgrade_fd upgrade_fds[UPGRADE_MAX_FDS];
static int upgrade_nfds;
static int upgrade_ready_fd = -1;

/* Old process: the upgrade under way. */
static pid_t upgrade_child;         /* 0: none */
static int upgrade_pipe = -1;       /* read end: one byte once the child is ready */
static long long upgrade_timer;
static struct reactor *upgrade_reactor;
static upgrade_ready_fn upgrade_ready_cb;
static void *upgrade_ready_data;
static pid_t upgrade_failed_child;  /* to reap */

int upgrade_parse_fds(const char *s, struct upgrade_fd *out, int max)
{
    int n = 0;

    if (*s == '\0')
        return 0;
    for (;;) {
        int fd = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 6) {
            fd = fd * 10 + (*s++ - '0');
            digits++;
        }
        if (digits == 0 || fd > 65535 || *s++ != ':' || n >= max)
            return -1;
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        if (len == 0 || len >= UPGRADE_SPEC_MAX)
            return -1;
        out[n].fd = fd;
        memcpy(out[n].spec, s, len);
        out[n].spec[len] = '\0';
        out[n].taken = false;
        n++;
        if (end == NULL)
            return n;
        s = end + 1;
    }
}

/* An inherited fd must be a listening socket: anything else is refused
 * (closed only if it is a socket, so a wrong number cannot close stdio). */
static bool upgrade_fd_ok(int fd)
{
    int listening = 0;
    socklen_t len = sizeof(listening);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
        return false;
    /* Not to be passed on to whatever this process starts. */
    return fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

void upgrade_init(void)
{
    ssize_t n = readlink("/proc/self/exe", upgrade_exe, sizeof(upgrade_exe) - 1);
    upgrade_exe[n > 0 ? n : 0] = '\0';

    const char *ready = getenv(UPGRADE_ENV_READY);
    if (ready != NULL) {
        char *end;
        long fd = strtol(ready, &end, 10);
        if (*ready != '\0' && *end == '\0' && fd >= 0 && fd <= 65535 && fcntl((int)fd, F_SETFD, FD_CLOEXEC) == 0)
            upgrade_ready_fd = (int)fd;
        else
            log_error("upgrade: %s=\"%s\" is not an open file descriptor; ignored", UPGRADE_ENV_READY, ready);
        (void)unsetenv(UPGRADE_ENV_READY);
    }
    const char *fds = getenv(UPGRADE_ENV_FDS);
    if (fds != NULL) {
        int got = upgrade_parse_fds(fds, upgrade_fds, UPGRADE_MAX_FDS);
        if (got < 0) {
            log_error("upgrade: %s is malformed; no socket inherited", UPGRADE_ENV_FDS);
            got = 0;
        }
        for (int i = 0; i < got; i++) {
            if (!upgrade_fd_ok(upgrade_fds[i].fd)) {
                log_error("upgrade: inherited fd %d (%s) is not a listening socket; ignored", upgrade_fds[i].fd,
                          upgrade_fds[i].spec);
                continue;
            }
            upgrade_fds[upgrade_nfds++] = upgrade_fds[i];
        }
        (void)unsetenv(UPGRADE_ENV_FDS);
    }
}

int upgrade_inherit(void *data, const struct listen_config *lc)
{
    for (int i = 0; i < upgrade_nfds; i++) {
        struct upgrade_fd *u = &upgrade_fds[i];
        if (!u->taken && strcmp(u->spec, lc->spec) == 0) {
            u->taken = true;
            log_info("upgrade: listener %s inherited (fd %d)", lc->spec, u->fd);
            return u->fd;
        }
    }
    return -1;
}

void upgrade_inherit_done(void)
{
    for (int i = 0; i < upgrade_nfds; i++) {
        if (!upgrade_fds[i].taken) {
            log_info("upgrade: inherited listener %s is not in the configuration; closed", upgrade_fds[i].spec);
            close(upgrade_fds[i].fd);
        }
    }
    upgrade_nfds = 0;
}

void upgrade_on_ready(void)
{
    log_info("upgrade: this process (%ld) is the main process now", (long)getpid());
    notify_mainpid(getpid());
}

void upgrade_ready(void)
{
    if (upgrade_ready_fd < 0)
        return;
    char byte = 1;
    ssize_t w;
    do
        w = write(upgrade_ready_fd, &byte, 1);
    while (w < 0 && errno == EINTR);
    if (w != 1)
        log_error_errno("upgrade: cannot tell the old process that this one is ready");
    else
        log_info("upgrade: every service accepts; told the old process");
    close(upgrade_ready_fd);
    upgrade_ready_fd = -1;
    upgrade_on_ready();
}

/* ---- the old process ---- */

static void upgrade_end(void)
{
    if (upgrade_pipe >= 0) {
        reactor_del(upgrade_reactor, upgrade_pipe, REACTOR_READABLE);
        close(upgrade_pipe);
        upgrade_pipe = -1;
    }
    if (upgrade_timer)
        reactor_timer_del(upgrade_reactor, upgrade_timer);
    upgrade_timer = 0;
    upgrade_child = 0;
}

/* The child failed: stop it if it runs, reap it later, keep serving. */
static void upgrade_failed(const char *why)
{
    int status;
    pid_t pid = upgrade_child;
    pid_t got = waitpid(pid, &status, WNOHANG);

    /* Its pipe closes as it exits, a moment before it can be reaped: wait
     * that moment (at most 100 ms, only when an upgrade failed) to log how
     * it ended. */
    for (int i = 0; got == 0 && i < 50; i++) {
        (void)usleep(2000);
        got = waitpid(pid, &status, WNOHANG);
    }
    if (got == pid) {
        if (WIFEXITED(status))
            log_error("upgrade: new process %ld %s: exited with status %d; this process keeps serving",
                      (long)pid, why, WEXITSTATUS(status));
        else
            log_error("upgrade: new process %ld %s: killed by signal %d; this process keeps serving",
                      (long)pid, why, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    } else {
        log_error("upgrade: new process %ld %s; stopping it, this process keeps serving", (long)pid, why);
        (void)kill(pid, SIGTERM);
        upgrade_failed_child = pid;
    }
    upgrade_end();
}

static void upgrade_readable(struct reactor *r, int fd, void *data, int mask)
{
    char byte;
    ssize_t n = read(fd, &byte, 1);

    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == 1) {
        log_info("upgrade: new process %ld is ready; this one stops accepting and exits once its clients "
                 "have left", (long)upgrade_child);
        upgrade_end();
        upgrade_ready_cb(upgrade_ready_data);
        return;
    }
    /* The child's end closed before the byte: it exited (or exec failed). */
    upgrade_failed("closed the readiness pipe before it was ready");
}

static long upgrade_timeout(struct reactor *r, long long id, void *data)
{
    upgrade_timer = 0;
    char why[64];

    snprintf(why, sizeof(why), "was not ready within %d ms", UPGRADE_TIMEOUT_MS);
    upgrade_failed(why);
    return REACTOR_TIMER_DONE;
}

/* "PROXIMUX_INHERIT_FDS=fd:spec,..." for ls; NULL (err set) if a spec
 * cannot be written in the list. */
static char *upgrade_fds_env(const struct upgrade_listener *ls, int n, char *err, size_t errlen)
{
    size_t size = sizeof(UPGRADE_ENV_FDS "=") + (size_t)n * (UPGRADE_SPEC_MAX + 8);
    char *env = malloc(size);
    size_t used;

    if (env == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    used = (size_t)snprintf(env, size, "%s=", UPGRADE_ENV_FDS);
    for (int i = 0; i < n; i++) {
        if (strchr(ls[i].spec, ',') != NULL || strlen(ls[i].spec) >= UPGRADE_SPEC_MAX) {
            snprintf(err, errlen, "listener %s cannot be handed over (a ',' in its address)", ls[i].spec);
            free(env);
            return NULL;
        }
        used += (size_t)snprintf(env + used, size - used, "%s%d:%s", i ? "," : "", ls[i].fd, ls[i].spec);
    }
    return env;
}

int upgrade_start(struct reactor *r, char *const *argv, const struct upgrade_listener *ls, int n,
                  upgrade_ready_fn ready, void *data, char *err, size_t errlen)
{
    char ready_env[64];
    int p[2];

    if (upgrade_child != 0) {
        snprintf(err, errlen, "an upgrade is under way already (new process %ld)", (long)upgrade_child);
        return PMX_ERR;
    }
    if (upgrade_exe[0] == '\0') {
        snprintf(err, errlen, "the binary's path is unknown (/proc/self/exe)");
        return PMX_ERR;
    }
    if (n > UPGRADE_MAX_FDS) {
        snprintf(err, errlen, "%d listeners, at most %d can be handed over", n, UPGRADE_MAX_FDS);
        return PMX_ERR;
    }
    char *fds_env = upgrade_fds_env(ls, n, err, errlen);
    if (fds_env == NULL)
        return PMX_ERR;
    size_t nenv = 0;
    while (environ[nenv])
        nenv++;
    char **envp = calloc(nenv + 3, sizeof(char *));
    if (envp == NULL || pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) {
        snprintf(err, errlen, "%s", envp == NULL ? "out of memory" : strerror(errno));
        free(envp);
        free(fds_env);
        return PMX_ERR;
    }
    /* The child's end blocks: its one write must not fail with EAGAIN. */
    (void)fcntl(p[1], F_SETFL, 0);
    snprintf(ready_env, sizeof(ready_env), "%s=%d", UPGRADE_ENV_READY, p[1]);
    size_t k = 0;
    for (size_t i = 0; i < nenv; i++)
        if (strncmp(environ[i], UPGRADE_ENV_FDS "=", sizeof(UPGRADE_ENV_FDS)) != 0 &&
            strncmp(environ[i], UPGRADE_ENV_READY "=", sizeof(UPGRADE_ENV_READY)) != 0)
            envp[k++] = environ[i];
    envp[k++] = fds_env;
    envp[k++] = ready_env;
    envp[k] = NULL;

    pid_t pid = fork();
    if (pid == 0) {
        /* Only async-signal-safe calls here (the resolver is a thread):
         * the handed-over fds lose close-on-exec in the child only. */
        for (int i = 0; i < n; i++)
            (void)fcntl(ls[i].fd, F_SETFD, 0);
        (void)fcntl(p[1], F_SETFD, 0);
        execve(upgrade_exe, argv, envp);
        _exit(127);
    }
    int fork_errno = errno;
    free(envp);
    free(fds_env);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        snprintf(err, errlen, "fork: %s", strerror(fork_errno));
        return PMX_ERR;
    }
    upgrade_child = pid;
    upgrade_pipe = p[0];
    upgrade_reactor = r;
    upgrade_ready_cb = ready;
    upgrade_ready_data = data;
    log_info("upgrade: started new process %ld (%s) with %d listening socket%s", (long)pid, upgrade_exe, n,
             n == 1 ? "" : "s");
    if (reactor_add(r, upgrade_pipe, REACTOR_READABLE, upgrade_readable, NULL) != PMX_OK) {
        upgrade_failed("cannot be watched (epoll)");
        return PMX_OK;
    }
    upgrade_timer = reactor_timer_add(r, UPGRADE_TIMEOUT_MS, upgrade_timeout, NULL);
    return PMX_OK;
}

void upgrade_tick(void)
{
    if (upgrade_failed_child != 0 && waitpid(upgrade_failed_child, NULL, WNOHANG) != 0)
        upgrade_failed_child = 0;
}

void upgrade_close(struct reactor *r)
{
    if (upgrade_child != 0)
        upgrade_end();
}
