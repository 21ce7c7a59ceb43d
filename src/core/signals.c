/* Signal delivery through signalfd: the reactor reads signals like any
 * other event. */
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "reactor.h"
#include "signals.h"

static int signal_fd = -1;
static signals_fn signal_callback;
static void *signal_data;

static void signals_readable(struct reactor *r, int fd, void *data, int mask)
{
    struct signalfd_siginfo info;

    for (;;) {
        ssize_t n = read(fd, &info, sizeof(info));
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof(info))
            return;
        signal_callback((int)info.ssi_signo, signal_data);
    }
}

int signals_init(struct reactor *r, signals_fn fn, void *data)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR2);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        return PMX_ERR;
    signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd < 0)
        return PMX_ERR;
    signal_callback = fn;
    signal_data = data;
    return reactor_add(r, signal_fd, REACTOR_READABLE, signals_readable, NULL);
}

void signals_close(struct reactor *r)
{
    if (signal_fd < 0)
        return;
    reactor_del(r, signal_fd, REACTOR_READABLE);
    close(signal_fd);
    signal_fd = -1;
}
