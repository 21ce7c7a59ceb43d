/* libFuzzer harness for the FIFO and funnel exchanges (src/exchange/exchange_mux.c):
 * one process plays the clients (socketpairs handed to ops->accept) and the
 * upstream (a listening socket on 127.0.0.1), following a script decoded
 * from the input, and checks what every client receives. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sanitizer/allocator_interface.h>

#include "codec.h"
#include "config.h"
#include "exchange.h"
#include "log.h"
#include "reactor.h"

/* Weak: a build without ASan (coverage reports) has no allocator stats. */
#pragma weak __sanitizer_get_current_allocated_bytes

static size_t allocated_bytes(void)
{
    return __sanitizer_get_current_allocated_bytes ? __sanitizer_get_current_allocated_bytes() : 0;
}

/*
 * Input: a 4-byte header choosing the configuration, then a script.
 *
 *   [0] bit 0: 2 upstream connections (funnel) instead of 1 (fifo)
 *       bit 1: funnel_async (pipelining)
 *       bits 2-4: 0-2 line codec, ordered mode; 3 line, 4 resp, 5 memcache,
 *                 6 http, 7 raw, garbage mode
 *       bit 5: warmup
 *       bit 6: a second target that refuses connections
 *       bit 7: small limits (buffer_size, output_limit, max_message 1024)
 *   [1] bits 0-1: queue_limit (0: 10000, else 1-3)
 *       bit 2: response_timeout 300 ms; bit 3: queue_timeout 200 ms;
 *       bit 4: inactive_timeout 500 ms; bit 5: connect_timeout 50 ms
 *   [2], [3] unused (room to grow)
 * A reload (SIGHUP) op gives new values of the reloadable settings in the
 * same encoding: bits 6-7 of its argument as [0], bits 0-5 as [1].
 *
 * Script: op byte, argument byte, then data for some ops; see run_op().
 *
 * Ordered mode: clients send unique tokens "c<client>r<n>\n" (line codec);
 * the upstream answers each line it reads with "e<token>\n", written in
 * pieces the script chooses. Each client must receive exactly the answers
 * to its own requests, in order, never one for a request not yet sent, and
 * the upstream must see each token at most once, in client order.
 * Garbage mode: clients and upstream write bytes from the input; a client
 * must receive nothing before the codec sees it send a whole request (or
 * one it refuses).
 *
 * At the end of an ordered run, the upstream answers everything and time
 * passes: every client still connected must have all its answers (no
 * request is lost or stuck).
 *
 * In both: no crash, no sanitizer report, allocated memory under a cap,
 * and after teardown no leaked memory (LeakSanitizer) or descriptor.
 *
 * Time is simulated: reactor.c is built with clock_gettime renamed to
 * fuzz_clock_gettime (see run.sh), and the script advances the clock before
 * calling ops->tick, so timeouts and backoff are reproducible.
 */

#define MAX_CLIENTS 4
#define MAX_CLIENTS_TOTAL 16
#define MAX_UPSTREAMS 6
#define MAX_ITERATIONS 400
#define MEMORY_CAP (48u << 20)
#define LINE_MAX_HARNESS 8192

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_exchange: %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

/* ---- simulated clock ---------------------------------------------------- */

static uint64_t fake_ms;

int fuzz_clock_gettime(clockid_t id, struct timespec *ts);

int fuzz_clock_gettime(clockid_t id, struct timespec *ts)
{
    ts->tv_sec = (time_t)(fake_ms / 1000);
    ts->tv_nsec = (long)(fake_ms % 1000) * 1000000L;
    return 0;
}

/* ---- growable byte strings ---------------------------------------------- */

struct bytes {
    char *data;
    size_t len;
    size_t cap;
};

static void bytes_add(struct bytes *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->data = realloc(b->data, cap);
        CHECK(b->data != NULL, "out of memory");
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void bytes_drop(struct bytes *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* ---- state of one run ---------------------------------------------------- */

struct client {
    bool used;              /* the slot holds a client (open or not) */
    bool open;              /* the harness still holds its end */
    int fd;
    unsigned id;            /* in tokens; unique in the run */
    bool shut_wr;           /* we half-closed */
    bool reading;
    bool eof;               /* the exchange closed its end */
    unsigned queued;        /* requests made (ordered) */
    unsigned sent;          /* requests whose last byte is written */
    unsigned answered;      /* responses received */
    unsigned *ends;         /* ordered: out offset at which request i ends */
    size_t out_done;        /* bytes of out written so far */
    struct bytes out;       /* everything this client writes */
    struct bytes in;        /* ordered: a response line not yet whole */
    size_t received;        /* bytes received */
    int last_forwarded;     /* ordered: highest request seen upstream */
};

struct upstream {
    bool open;
    int fd;
    bool shut_wr;
    bool stalled;           /* not reading: the exchange's writes back up */
    struct bytes in;        /* ordered: a request line not yet whole */
    struct bytes out;       /* ordered: answers not yet written */
};

struct run {
    bool ordered;
    const struct codec_ops *codec;  /* garbage mode's oracle */
    uint8_t h0;
    struct config *cfg;             /* malloc'd; replaced by a reload; runs services[0] */
    struct reactor *r;
    struct exchange x;
    struct client clients[MAX_CLIENTS];
    unsigned nclients_total;
    struct upstream ups[MAX_UPSTREAMS];
    int iterations;
    size_t mem_base;
    uint64_t progress;      /* bytes moved and closes seen by the harness */
    size_t pad;             /* ordered: padding of the answers from now on */
};

static bool trace;
static int listen_fd = -1;
static int listen_port;
static int refused_fd = -1;
static int refused_port;

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");

    CHECK(d != NULL, "opendir /proc/self/fd");
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* Closes fd with a reset rather than a FIN: no TIME_WAIT piles up. */
static void close_reset(int fd)
{
    struct linger lg = { 1, 0 };

    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static int bound_socket(bool listening, int *port)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    CHECK(fd >= 0, "socket: %s", strerror(errno));
    CHECK(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0, "bind: %s", strerror(errno));
    if (listening)
        CHECK(listen(fd, 128) == 0, "listen: %s", strerror(errno));
    CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0, "getsockname");
    *port = ntohs(sin.sin_port);
    return fd;
}

static void drain_listener(void)
{
    int fd;

    while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
        close_reset(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    signal(SIGPIPE, SIG_IGN);
    listen_fd = bound_socket(true, &listen_port);
    /* A small receive window (inherited by accepted sockets), so that a
     * stalled upstream pushes back on the exchange within a few KB. */
    int small = 2048;
    (void)setsockopt(listen_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* Bound, never listening: connects to it are refused. */
    refused_fd = bound_socket(false, &refused_port);
    /* Every log line is formatted (its arguments are checked) and dropped;
     * FUZZ_EXCHANGE_TRACE=1 shows them and the script on stderr. */
    trace = getenv("FUZZ_EXCHANGE_TRACE") != NULL;
    if (!trace)
        CHECK(log_open("/dev/null") == PMX_OK, "log_open");
    log_set_level(LOG_DEBUG);
    return 0;
}

/* ---- configuration -------------------------------------------------------- */

static void make_config(struct config *cfg, uint8_t h0, uint8_t h1)
{
    static const char *const garbage_codecs[] = { "line", "resp", "memcache", "http", "raw" };
    char buf[24][64];
    char *env[25];
    int n = 0;
    int codec = (h0 >> 2) & 7;
    bool funnel = h0 & 1;
    bool small = h0 & 0x80;
    bool refused = (h0 & 0x40) && funnel;
    char err[CONFIG_ERR_MAX];

#define ENV(...) do { snprintf(buf[n], sizeof buf[n], __VA_ARGS__); env[n] = buf[n]; n++; } while (0)
    ENV("LOCAL_PORT=1");
    ENV("PROXY_CONNECTIONS_CNT=%d", funnel ? 2 : 1);
    ENV("EXCHANGE_MODE=%s", funnel ? "funnel" : "fifo");
    ENV("EXCHANGE_CODEC=%s", codec < 3 ? "line" : garbage_codecs[codec - 3]);
    ENV("EXCHANGE_FUNNEL_ASYNC=%d", (h0 >> 1) & 1);
    ENV("PROXY_WARMUP=%d", (h0 >> 5) & 1);
    ENV("TARGET_HOST_1=127.0.0.1");
    ENV("TARGET_PORT_1=%d", listen_port);
    if (refused) {
        ENV("TARGET_HOST_2=127.0.0.1");
        ENV("TARGET_PORT_2=%d", refused_port);
    }
    ENV("LOCAL_BUFFER_SIZE=%d", small ? 1024 : 65536);
    ENV("LOCAL_OUTPUT_LIMIT=%d", small ? 1024 : 65536);
    ENV("EXCHANGE_MAX_MESSAGE=%d", small ? 1024 : 4096);
    ENV("EXCHANGE_QUEUE_LIMIT=%d", (h1 & 3) ? h1 & 3 : 10000);
    ENV("EXCHANGE_RESPONSE_TIMEOUT=%d", (h1 & 4) ? 300 : -1);
    ENV("EXCHANGE_QUEUE_TIMEOUT=%d", (h1 & 8) ? 200 : -1);
    ENV("PROXY_INACTIVE_TIMEOUT=%d", (h1 & 16) ? 500 : -1);
    ENV("PROXY_CONNECT_TIMEOUT=%d", (h1 & 32) ? 50 : 1000);
    ENV("PROXY_BACKOFF_MIN=10");
    ENV("PROXY_BACKOFF_MAX=40");
#undef ENV
    env[n] = NULL;
    CHECK(config_load(cfg, NULL, env, err, sizeof err) == PMX_OK, "config: %s", err);
}

/* SIGHUP as main.c does it: a fresh configuration, whose settings that need
 * a restart keep their running values, replaces the old one, which is freed
 * (ASan then catches anyone still reading it). */
static void reload(struct run *run, uint8_t a)
{
    struct config *old = run->cfg;
    struct config *fresh = malloc(sizeof(*fresh));

    CHECK(fresh != NULL, "out of memory");
    make_config(fresh, (uint8_t)((run->h0 & 0x3f) | (a & 0xc0)), a & 0x3f);
    config_service_keep_fixed(&fresh->services[0], &old->services[0]);
    run->cfg = fresh;
    run->x.config = &fresh->services[0];
    run->x.ops->reload(&run->x);
    config_free(old);
    free(old);
}

/* ---- the harness's side of the sockets ------------------------------------ */

/* Garbage mode: whether the codec sees c send a whole request, bytes the
 * exchange would refuse, or an HTTP head that waits for "100 Continue";
 * only then may c receive anything. */
static bool client_may_receive(const struct run *run, const struct client *c)
{
    const struct codec_ops *codec = run->codec;
    struct codec_parser p;
    size_t pos = 0, len = c->out_done;

    if (len == 0)
        return false;
    if (codec->by_read || len > (size_t)run->cfg->services[0].max_message)
        return true;
    codec->request_begin(&p);
    while (pos < len) {
        size_t used = 0;
        int rc = codec->parse_request(&p, c->out.data + pos, len - pos, &used);
        if (rc != CODEC_MORE)
            return true;    /* a whole request, or one refused */
        pos += used;
        if (used == 0)
            break;
    }
    return (p.info & CODEC_INFO_CONTINUE) != 0;
}

/* Ordered mode: checks one whole response line of c. */
static void client_check_line(struct client *c, const char *line, size_t n)
{
    char want[32];
    int w = snprintf(want, sizeof want, "ec%ur%u", c->id, c->answered);

    if (trace)
        fprintf(stderr, "harness: client %u got %.*s\n", c->id, (int)PMX_MIN(n, 64), line);
    CHECK(c->answered < c->sent, "client %u: a response (%.*s) for request %u, but only %u sent",
          c->id, (int)PMX_MIN(n, 64), line, c->answered, c->sent);
    CHECK(n >= (size_t)w && memcmp(line, want, (size_t)w) == 0 &&
          (n == (size_t)w || line[w] == ':' || line[w] == '\r'),
          "client %u: expected %s, got %.*s", c->id, want, (int)PMX_MIN(n, 64), line);
    c->answered++;
}

static void client_receive(struct run *run, struct client *c, const char *data, size_t n)
{
    if (c->received == 0 && !run->ordered)
        CHECK(client_may_receive(run, c), "client %u received %zu bytes before sending a request "
              "(sent %zu bytes)", c->id, n, c->out_done);
    c->received += n;
    run->progress += n;
    if (!run->ordered)
        return;
    bytes_add(&c->in, data, n);
    size_t start = 0;
    for (;;) {
        char *nl = memchr(c->in.data + start, '\n', c->in.len - start);
        if (nl == NULL)
            break;
        client_check_line(c, c->in.data + start, (size_t)(nl - (c->in.data + start)));
        start = (size_t)(nl - c->in.data) + 1;
    }
    bytes_drop(&c->in, start);
    CHECK(c->in.len < LINE_MAX_HARNESS, "client %u: a response line of %zu bytes", c->id, c->in.len);
}

static void client_close(struct client *c)
{
    if (c->open)
        close(c->fd);
    c->open = false;
}

static void client_service(struct run *run, struct client *c)
{
    char buf[16384];

    if (!c->open)
        return;
    /* Write what is pending. */
    while (!c->shut_wr && !c->eof && c->out_done < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_done, c->out.len - c->out_done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->eof = true;      /* the exchange closed it */
            break;
        }
        c->out_done += (size_t)n;
    }
    if (run->ordered)
        while (c->sent < c->queued && c->ends[c->sent] <= c->out_done)
            c->sent++;
    while (c->reading && !c->eof) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            client_receive(run, c, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->eof = true;
            run->progress++;
        }
        break;
    }
}

static void upstream_close(struct upstream *u)
{
    if (u->open)
        close_reset(u->fd);
    u->open = false;
    bytes_free(&u->in);
    bytes_free(&u->out);
}

/* Ordered mode: one request line forwarded by the exchange. */
static void upstream_line(struct run *run, struct upstream *u, const char *line, size_t n)
{
    unsigned id, seq;
    char tail;
    char copy[64];

    snprintf(copy, sizeof copy, "%.*s", (int)PMX_MIN(n, sizeof copy - 1), line);
    if (trace)
        fprintf(stderr, "harness: upstream fd %d got %s\n", u->fd, copy);
    int fields = sscanf(copy, "c%ur%u%c", &id, &seq, &tail);
    CHECK(fields == 2 || (fields == 3 && (tail == ':' || tail == '\r')),
          "upstream got a line no client sent: %.*s", (int)PMX_MIN(n, 64), line);
    struct client *c = NULL;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (run->clients[i].used && run->clients[i].id == id)
            c = &run->clients[i];
    /* A client whose slot was reused is gone: its tokens can no longer be
     * checked against it, only answered. */
    if (c != NULL) {
        CHECK(seq < c->sent, "upstream got request %u of client %u, which sent %u", seq, id, c->sent);
        CHECK((int)seq > c->last_forwarded, "client %u: request %u forwarded after request %d",
              id, seq, c->last_forwarded);
        c->last_forwarded = (int)seq;
    }
    char answer[64];
    int w = snprintf(answer, sizeof answer, "ec%ur%u", id, seq);
    bytes_add(&u->out, answer, (size_t)w);
    if (run->pad > 0) {
        bytes_add(&u->out, ":", 1);
        for (size_t i = 0; i < run->pad; i++)
            bytes_add(&u->out, "p", 1);
    }
    bytes_add(&u->out, "\n", 1);
}

static void upstream_service(struct run *run, struct upstream *u)
{
    char buf[16384];

    while (u->open && !u->stalled) {
        ssize_t n = recv(u->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            run->progress += (uint64_t)n;
            if (!run->ordered)
                continue;
            bytes_add(&u->in, buf, (size_t)n);
            size_t start = 0;
            for (;;) {
                char *nl = memchr(u->in.data + start, '\n', u->in.len - start);
                if (nl == NULL)
                    break;
                upstream_line(run, u, u->in.data + start, (size_t)(nl - (u->in.data + start)));
                start = (size_t)(nl - u->in.data) + 1;
            }
            bytes_drop(&u->in, start);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (trace)
                fprintf(stderr, "harness: upstream fd %d closed by the exchange\n", u->fd);
            upstream_close(u);      /* the exchange closed it: done */
        }
        break;
    }
}

static void upstream_write(struct upstream *u, const char *data, size_t n)
{
    if (!u->open || u->shut_wr || n == 0)
        return;
    /* Loopback buffers are big enough for what one input can write. */
    (void)send(u->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Ordered mode: writes up to n bytes of the answers owed. */
static void upstream_answer(struct upstream *u, size_t n)
{
    if (!u->open || u->shut_wr)
        return;
    n = PMX_MIN(n, u->out.len);
    if (n == 0)
        return;
    ssize_t w = send(u->fd, u->out.data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (trace)
        fprintf(stderr, "harness: upstream fd %d answers %zd bytes: %.*s\n", u->fd, w, (int)PMX_MAX(w, 0), u->out.data);
    if (w > 0)
        bytes_drop(&u->out, (size_t)w);
}

/* The exchange's end of an upstream connection the harness accepted: the
 * descriptor (in this same process) bound to the accepted one's peer. It
 * gets a small send buffer, else the kernel grows it to megabytes and a
 * stalled upstream never pushes back. */
static void shrink_exchange_end(int accepted)
{
    struct sockaddr_in peer, local;
    socklen_t plen = sizeof(peer);

    if (getpeername(accepted, (struct sockaddr *)&peer, &plen) != 0)
        return;
    for (int fd = 3; fd < 1024; fd++) {
        socklen_t llen = sizeof(local);
        if (fd == accepted || getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
            llen != plen || local.sin_family != AF_INET || local.sin_port != peer.sin_port ||
            local.sin_addr.s_addr != peer.sin_addr.s_addr)
            continue;
        int small = 4096;
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        return;
    }
}

static void harness_service(struct run *run)
{
    int fd;

    while ((fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        struct upstream *u = NULL;
        for (int i = 0; i < MAX_UPSTREAMS && u == NULL; i++)
            if (!run->ups[i].open)
                u = &run->ups[i];
        if (u == NULL) {
            close_reset(fd);
            continue;
        }
        /* Loopback runs in real time while the loop's clock is simulated:
         * Nagle waiting for a delayed ACK (40 ms) would hold small answers
         * past the end of the run. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        shrink_exchange_end(fd);
        memset(u, 0, sizeof(*u));
        u->open = true;
        u->fd = fd;
        if (trace)
            fprintf(stderr, "harness: upstream fd %d accepted\n", fd);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        client_service(run, &run->clients[i]);
    for (int i = 0; i < MAX_UPSTREAMS; i++)
        upstream_service(run, &run->ups[i]);
}

/* ---- driving the reactor -------------------------------------------------- */

static long stop_timer(struct reactor *r, long long id, void *data)
{
    reactor_stop(r);
    return REACTOR_TIMER_DONE;
}

/* One loop iteration: before-sleep hook, a non-blocking epoll_wait, the
 * handlers, the timers (ours stops the loop). */
static void reactor_step(struct run *run, bool always)
{
    size_t mem;

    if (run->iterations >= MAX_ITERATIONS && !always)
        return;
    run->iterations++;
    CHECK(reactor_timer_add(run->r, 0, stop_timer, NULL) > 0, "timer");
    CHECK(reactor_run(run->r) == PMX_OK, "reactor_run: %s", strerror(errno));
    mem = allocated_bytes();
    CHECK(mem < run->mem_base || mem - run->mem_base < MEMORY_CAP,
          "%zu bytes allocated by the exchange", mem - run->mem_base);
    harness_service(run);
}

static struct upstream *pick_upstream(struct run *run, uint8_t a)
{
    int open[MAX_UPSTREAMS], n = 0;

    for (int i = 0; i < MAX_UPSTREAMS; i++)
        if (run->ups[i].open)
            open[n++] = i;
    return n ? &run->ups[open[a % n]] : NULL;
}

/* The client in slot k, connected first if the slot is free or its client
 * is gone. NULL while the exchange is not ready to accept. */
static struct client *get_client(struct run *run, int k, bool connect)
{
    struct client *c = &run->clients[k];
    int sv[2];

    if (c->used && (c->open || !connect))
        return c->open ? c : NULL;
    if (!connect || !run->x.ready || run->x.shutting_down || run->nclients_total >= MAX_CLIENTS_TOTAL)
        return NULL;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    bytes_free(&c->out);
    bytes_free(&c->in);
    free(c->ends);
    memset(c, 0, sizeof(*c));
    c->used = c->open = c->reading = true;
    c->fd = sv[0];
    c->id = ++run->nclients_total;
    c->last_forwarded = -1;
    /* Small socket buffers, so that back-pressure and output_limit are met
     * with the few bytes an input holds. */
    int small = 4096;
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    run->x.ops->accept(&run->x, sv[1], "fuzz");
    return c;
}

static void client_request(struct client *c, size_t pad)
{
    char token[48];
    int w = snprintf(token, sizeof token, "c%ur%u", c->id, c->queued);

    bytes_add(&c->out, token, (size_t)w);
    if (pad > 0) {
        bytes_add(&c->out, ":", 1);
        for (size_t i = 0; i < pad; i++)
            bytes_add(&c->out, "q", 1);
    }
    bytes_add(&c->out, "\n", 1);
    c->ends = realloc(c->ends, (c->queued + 1) * sizeof(*c->ends));
    CHECK(c->ends != NULL, "out of memory");
    c->ends[c->queued++] = (unsigned)c->out.len;
}

/* Canned responses for garbage mode, so that some requests are answered. */
static const char *canned_response(const struct codec_ops *codec, uint8_t a)
{
    static const char *const resp[] = { "+OK\r\n", "$3\r\nabc\r\n", "*2\r\n:1\r\n$-1\r\n", "-ERR x\r\n" };
    static const char *const mc[] = { "END\r\n", "STORED\r\n", "VALUE k 0 2\r\nhi\r\nEND\r\n", "HD\r\n" };
    static const char *const http[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
        "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        "HTTP/1.0 200 OK\r\n\r\nuntil close",
    };

    if (codec == &codec_resp)
        return resp[a & 3];
    if (codec == &codec_memcache)
        return mc[a & 3];
    if (codec == &codec_http)
        return http[a & 3];
    return "ok\n";
}

/* Takes n bytes of script data, fewer at its end. */
static const uint8_t *take(const uint8_t **p, const uint8_t *end, size_t *n)
{
    const uint8_t *start = *p;

    *n = PMX_MIN(*n, (size_t)(end - start));
    *p += *n;
    return start;
}

static void run_op(struct run *run, uint8_t op, uint8_t a, const uint8_t **p, const uint8_t *end)
{
    struct client *c;
    struct upstream *u;
    size_t n;
    const uint8_t *d;

    if (trace)
        fprintf(stderr, "---- op %d arg %#x (t=%llu)\n", op % 10, a, (unsigned long long)fake_ms);
    switch (op % 10) {
    case 0:     /* client a&3 sends: ordered, 1-4 requests (a&0x40: the last padded) */
        c = get_client(run, a & 3, true);
        if (c == NULL || c->shut_wr)
            return;
        if (run->ordered) {
            int count = 1 + ((a >> 2) & 3);
            for (int i = 0; i < count; i++) {
                size_t pad = 0;
                if (i == count - 1 && (a & 0x40) && *p < end)
                    pad = (size_t)*(*p)++ * 20;
                client_request(c, pad);
            }
        } else {
            n = *p < end ? *(*p)++ : 0;
            d = take(p, end, &n);
            bytes_add(&c->out, d, n);
        }
        client_service(run, c);
        return;
    case 1:     /* client a&3 closes (a&4: half-closes) */
        c = get_client(run, a & 3, false);
        if (c == NULL)
            return;
        if (a & 4) {
            if (!c->shut_wr)
                (void)shutdown(c->fd, SHUT_WR);
            c->shut_wr = true;
        } else {
            client_close(c);
        }
        return;
    case 2:     /* client a&3 (a&0x80: upstream a&1) stops or resumes reading */
        if (a & 0x80) {
            u = pick_upstream(run, a);
            if (u != NULL)
                u->stalled = !u->stalled;
            return;
        }
        c = get_client(run, a & 3, false);
        if (c != NULL)
            c->reading = !c->reading;
        return;
    case 3:     /* upstream writes: ordered, the next bytes of its answers (a&0x80:
                 * pad all answers from now on instead); else data */
        u = pick_upstream(run, a);
        n = *p < end ? *(*p)++ : 0;
        if (run->ordered && (a & 0x80)) {
            run->pad = n * 20;      /* pads the answers to come instead */
            return;
        }
        if (u == NULL)
            return;
        if (run->ordered) {
            upstream_answer(u, n >= 0xf0 ? SIZE_MAX : n + 1);
        } else {
            d = take(p, end, &n);
            upstream_write(u, (const char *)d, n);
        }
        return;
    case 4:     /* upstream closes: a&0x10 half-close, a&0x20 reset, else close */
        u = pick_upstream(run, a);
        if (u == NULL)
            return;
        if (a & 0x10) {
            if (!u->shut_wr)
                (void)shutdown(u->fd, SHUT_WR);
            u->shut_wr = true;
        } else if (a & 0x20) {
            upstream_close(u);
        } else {
            close(u->fd);
            u->open = false;
            bytes_free(&u->in);
            bytes_free(&u->out);
        }
        return;
    case 5:     /* run the loop 1-4 times */
        for (int i = 0; i <= (a & 3); i++)
            reactor_step(run, false);
        return;
    case 6:     /* time passes (a * 8 ms); the janitor runs */
        fake_ms += (uint64_t)a * 8;
        run->x.ops->tick(&run->x);
        return;
    case 7:     /* a&1: SIGHUP with a>>1 (see the header); else SIGTERM (a&2)
                 * or SIGQUIT, rare */
        if (a & 1)
            reload(run, a >> 1);
        else if ((a & 0x1c) == 0x1c)
            run->x.ops->shutdown(&run->x, a & 2);
        return;
    case 8:     /* every upstream answers all it owes (garbage: a canned response) */
        for (int i = 0; i < MAX_UPSTREAMS; i++) {
            u = &run->ups[i];
            if (run->ordered)
                upstream_answer(u, SIZE_MAX);
            else
                upstream_write(u, canned_response(run->codec, a), strlen(canned_response(run->codec, a)));
        }
        return;
    case 9:     /* a new client in slot a&3 (the old one is closed) */
        c = &run->clients[a & 3];
        if (c->used && c->open)
            client_close(c);
        (void)get_client(run, a & 3, true);
        return;
    }
}

static void on_callback(struct exchange *x)
{
}

/* Ordered mode: whether every client still connected has the answers to
 * all the requests it sent. */
static bool all_answered(const struct run *run, bool report)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const struct client *c = &run->clients[i];
        if (c->used && c->open && !c->eof && c->answered < c->sent) {
            if (report)
                fprintf(stderr, "fuzz_exchange: client %u sent %u requests, has %u answers "
                        "(%zu of %zu bytes written)\n", c->id, c->sent, c->answered,
                        c->out_done, c->out.len);
            return false;
        }
    }
    return true;
}

/* The end of a run: the upstream answers everything, clients read, time
 * passes for reconnects and timeouts, until all is answered or nothing has
 * moved for 30 rounds (900 ms simulated: longer than any backoff or
 * timeout of the configurations above but connect_timeout, which loopback
 * connects never need). */
static void settle(struct run *run)
{
    uint64_t last_progress = run->progress;
    int idle = 0;

    for (int round = 0; round < 5000 && idle < 30; round++) {
        for (int i = 0; i < MAX_CLIENTS; i++)
            run->clients[i].reading = true;
        for (int k = 0; k < MAX_UPSTREAMS; k++) {
            run->ups[k].stalled = false;
            if (run->ordered)
                upstream_answer(&run->ups[k], SIZE_MAX);
        }
        reactor_step(run, true);
        if (!run->ordered || (round >= 2 && all_answered(run, false)))
            break;
        if (round % 2 == 1) {
            fake_ms += 60;
            run->x.ops->tick(&run->x);
        }
        idle = run->progress == last_progress ? idle + 1 : 0;
        last_progress = run->progress;
    }
    if (run->ordered)
        CHECK(all_answered(run, true), "requests left unanswered with the upstream answering everything");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run run;

    if (size < 4)
        return 0;
    drain_listener();
    int fd_baseline = count_fds();
    fake_ms = 1000000;
    memset(&run, 0, sizeof(run));
    run.mem_base = allocated_bytes();
    run.h0 = data[0];
    run.cfg = malloc(sizeof(*run.cfg));
    CHECK(run.cfg != NULL, "out of memory");
    make_config(run.cfg, data[0], data[1]);
    run.ordered = ((data[0] >> 2) & 7) < 3;
    run.codec = codec_find(run.cfg->services[0].codec);

    run.r = reactor_create(64);
    CHECK(run.r != NULL, "reactor_create");
    exchange_init(&run.x, run.r, &run.cfg->services[0]);
    run.x.on_ready = on_callback;
    run.x.on_idle = on_callback;
    CHECK(run.x.ops->start(&run.x) == PMX_OK, "start");

    const uint8_t *p = data + 4, *end = data + size;
    while (p + 1 < end && run.iterations < MAX_ITERATIONS) {
        uint8_t op = *p++, a = *p++;
        run_op(&run, op, a, &p, end);
    }
    settle(&run);

    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &run.clients[i];
        client_close(c);
        bytes_free(&c->out);
        bytes_free(&c->in);
        free(c->ends);
    }
    for (int i = 0; i < MAX_UPSTREAMS; i++)
        upstream_close(&run.ups[i]);
    run.x.ops->destroy(&run.x);
    CHECK(run.x.nclients == 0, "%zu clients left after destroy", run.x.nclients);
    reactor_destroy(run.r);
    config_free(run.cfg);
    free(run.cfg);
    drain_listener();
    int fds = count_fds();
    CHECK(fds == fd_baseline, "%d descriptors open after teardown, %d before", fds, fd_baseline);
    return 0;
}
