/* libFuzzer harness for the systemd front ends: the input is split at NUL
 * bytes into LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES (missing parts are
 * unset) for activation_parse(), and the same bytes serve as a
 * $NOTIFY_SOCKET value and a STATUS= text. Checks: the descriptor count
 * stays in bounds, accepted names join back into LISTEN_FDNAMES, every
 * error has a message, an accepted socket address fits sockaddr_un, and a
 * STATUS= message is one line that fits its buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "activation.h"
#include "notify.h"

#define CHECK(cond, what) do { if (!(cond)) { fprintf(stderr, "check failed: %s\n", what); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct activation_set set;

static void check_activation(const char *pid, const char *fds, const char *names)
{
    char err[256] = "";
    int rc = activation_parse(pid, fds, names, 100, &set, err, sizeof(err));

    CHECK(set.nfds >= 0 && set.nfds <= ACTIVATION_MAX_FDS, "nfds in bounds");
    if (rc != PMX_OK) {
        CHECK(rc == PMX_ERR && err[0] != '\0', "an error has a message");
        return;
    }
    if (set.nfds == 0 || names == NULL)
        return;
    /* The names, joined by ':', are LISTEN_FDNAMES itself. */
    static char joined[ACTIVATION_MAX_FDS * ACTIVATION_NAME_MAX];
    size_t n = 0;
    for (int i = 0; i < set.nfds; i++) {
        size_t k = strnlen(set.names[i], ACTIVATION_NAME_MAX);
        CHECK(k < ACTIVATION_NAME_MAX, "a name is terminated");
        CHECK(strchr(set.names[i], ':') == NULL, "no colon in a name");
        if (i > 0)
            joined[n++] = ':';
        memcpy(joined + n, set.names[i], k);
        n += k;
    }
    joined[n] = '\0';
    CHECK(strcmp(joined, names) == 0, "names join back");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size + 1);
    const char *part[3] = { NULL, NULL, NULL };
    size_t start = 0;

    CHECK(copy != NULL, "out of memory");
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (int i = 0; i < 3 && start <= size; i++) {
        part[i] = copy + start;
        start += strlen(copy + start) + 1;
    }
    check_activation(part[0], part[1], part[2]);

    struct sockaddr_un addr;
    socklen_t len;
    if (notify_parse_address(copy, &addr, &len) == PMX_OK)
        CHECK(len <= sizeof(addr) && len > offsetof(struct sockaddr_un, sun_path) + 1, "address fits");

    char msg[64];
    int n = notify_format(msg, sizeof(msg), NOTIFY_STATUS, copy, 0);
    CHECK(n >= 7 && (size_t)n < sizeof(msg) && strlen(msg) == (size_t)n, "STATUS= fits");
    CHECK(strncmp(msg, "STATUS=", 7) == 0 && strpbrk(msg, "\r\n") == NULL, "STATUS= is one line");
    free(copy);
    return 0;
}
