/* libFuzzer harness for the FIFO and funnel exchanges (src/exchange/exchange_mux.c):
 * one process plays the clients (socketpairs handed to ops->accept) and the
 * upstream (a listening socket on 127.0.0.1), following a script decoded
 * from the input, and checks what every client receives. In adversarial
 * mode the upstream is a model of the real server, and the check is that
 * no client can make the upstream run bytes the exchange did not frame as
 * its request, or make another client receive an answer it did not ask. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
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
#include "upstream.h"

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
 *                 6 http, 7 raw, garbage mode (adversarial mode for resp,
 *                 memcache and http when [2] bit 0 is set)
 *       bit 5: warmup
 *       bit 6: a second target that refuses connections
 *       bit 7: small limits (buffer_size, output_limit, max_message 1024)
 *   [1] bits 0-1: queue_limit (0: 10000, else 1-3)
 *       bit 2: response_timeout 300 ms; bit 3: queue_timeout 200 ms;
 *       bit 4: inactive_timeout 500 ms; bit 5: connect_timeout 50 ms
 *   [2] bit 0: adversarial mode (resp, memcache, http)
 *       bit 1: http: the upstream is the lenient model, else the strict one
 *       bit 2: lenient http model: the last Content-Length counts, else the
 *              first
 *       bit 3: the harness reads its upstream connections in reverse order
 *              (finds requests of one client run out of order across them)
 *   [3] unused (room to grow)
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
 * Adversarial mode (resp, memcache, http): clients send victim requests,
 * well-formed and tagged ("GET c<client>r<n>", "get c<client>r<n>",
 * "GET /c<client>r<n> HTTP/1.1"...), and attacker bytes from the input, in
 * which bytes 0xe0-0xff stand for pieces of a dictionary of dangerous
 * bytes (NUL, bare CR, MULTI, noreply, long keys, Transfer-Encoding
 * variants...; see dictionary()). The harness frames each client's bytes
 * with the codec exactly as the exchange does (mux_client_parse). The
 * upstream is a model of the real server: Redis 7.0 (processInlineBuffer,
 * processMultibulkBuffer, sdssplitargs, command names compared up to a NUL
 * like strcasecmp), memcached 1.6 (tokenize_command up to a NUL, 24
 * tokens, which refusals leave the data block to run as a command, noreply,
 * the close of a 2048-byte line without newline), and HTTP either strict
 * (nginx 1.22) or lenient (header lines split at a bare CR like Python's
 * http.server, folded lines joined, Transfer-Encoding "chunked" anywhere in
 * the value, the first or last Content-Length read like Python's int()). It
 * frames what it receives as that server would and answers every command
 * it runs with a reply carrying a tag of the command's bytes. Checked, each
 * violation with a name (queue_limit and queue_timeout are off in this
 * mode: a noreply request refused as busy would leave its client unable to
 * tell which request an error answers; ordered mode covers those):
 *   framing    every command the model takes is exactly one whole request
 *              the exchange framed for one client, and the model never
 *              waits for more once such a request is all in
 *   state      the model runs no command that changes the shared
 *              connection's state (MULTI, WATCH, SUBSCRIBE, CLIENT REPLY,
 *              SELECT, HELLO, blocking commands, the binary protocol...)
 *   close      the model never answers a protocol error or closes (an HTTP
 *              response that announces its close is fine)
 *   replies    the model answers each request with exactly what the codec
 *              expects: nothing for noreply, else one response; memcached
 *              does not drop replies it has not sent yet
 *   pipeline   http: no request reaches a connection before the upstream
 *              has written the whole response to the previous one
 *   order      each client's requests run in the order it sent them,
 *              noreply ones included, across connections
 *   delivery   every answer a client receives is the model's answer to its
 *              own next request, or an error reply of the exchange, and
 *              comes after that request is all sent
 *   fairness   a request sent by a client with nothing outstanding (all
 *              its earlier requests ran and were answered) waits, between
 *              being sent and running, for at most MUX_CLIENT_PIPELINE +
 *              2 x (client socket buffer / shortest request) requests of
 *              each other client on its connection: what the exchange holds
 *              of a client that pipelines or does not read, plus what two
 *              reads of its socket may bring
 *   unanswered at the end, with the upstream answering and time passing
 *              beyond every timeout, every client still connected has an
 *              answer or an error for each request it sent
 * FUZZ_EXCHANGE_SKIP=name,... steps over the named violations (the rest of
 * that input is then not checked), to look for others while one is known.
 *
 * At the end of an ordered or adversarial run, the upstream answers
 * everything and time passes: every client still connected must have all
 * its answers (no request is lost or stuck).
 *
 * In all modes: no crash, no sanitizer report, allocated memory under a
 * cap, and after teardown no leaked memory (LeakSanitizer) or descriptor.
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

/* Adversarial mode. */
#define MAX_REQUESTS 8192           /* framed requests per run, all clients */
#define MAX_CLIENT_BYTES (512u << 10)
#define MAX_ATTACK 8192             /* attacker bytes per op, expanded */
#define MAX_HYPS 32                 /* attributions of identical requests kept */
#define PAD_UNIT 32                 /* ":p<n>" in a victim's name pads its answer n x this */
#define PAD_MAX (16u << 10)         /* over max_message, and few of them fit MEMORY_CAP */
/* src/exchange_mux.c: a client with this many requests outstanding is not
 * read; the fairness bound rests on it. */
#define MUX_CLIENT_PIPELINE 1024
/* SO_SNDBUF asked for the harness's end of each client socketpair in
 * adversarial mode: what one read of the exchange can take of a client is
 * bounded by what the kernel then buffers (at most twice the value read
 * back; measured: 8064 bytes for 4096 asked). */
#define CLIENT_SNDBUF 4096

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

static void bytes_str(struct bytes *b, const char *s)
{
    bytes_add(b, s, strlen(s));
}

static void bytes_fmt(struct bytes *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bytes_fmt(struct bytes *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof tmp, "bytes_fmt: %d", n);
    bytes_add(b, tmp, (size_t)n);
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

/* ---- small text helpers ------------------------------------------------- */

/* FNV-1a: the tag of a command is derived from all its bytes. */
static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The tag as 16 letters g..v: no digit, so no tag looks like "c1r2". */
static void tag_text(uint64_t h, char out[17])
{
    for (int i = 0; i < 16; i++)
        out[i] = (char)('g' + ((h >> (60 - 4 * i)) & 15));
    out[16] = '\0';
}

/* Quotes s[0..n) for a message (C escapes, at most about cap bytes). */
static const char *esc(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r')
            o += (size_t)snprintf(out + o, cap - o, "\\r");
        else if (ch == '\n')
            o += (size_t)snprintf(out + o, cap - o, "\\n");
        else if (ch == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\\\");
        else if (ch < 0x20 || ch >= 0x7f)
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    if (o + 8 >= cap && n > 0)
        o += (size_t)snprintf(out + o, cap - o, "...");
    out[o] = '\0';
    return out;
}

static bool has_prefix(const char *s, size_t n, const char *p)
{
    size_t l = strlen(p);

    return n >= l && memcmp(s, p, l) == 0;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c;
}

/* isspace() in the C locale. */
static bool c_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Whether s[0..n), taken up to a NUL as C string functions do, equals the
 * lowercase lit ignoring ASCII case (strcasecmp). */
static bool cstr_caseeq(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit), m = 0;

    while (m < n && s[m] != '\0')
        m++;
    if (m != l)
        return false;
    for (size_t i = 0; i < l; i++)
        if (ascii_lower(s[i]) != lit[i])
            return false;
    return true;
}

/* Whether [s, s+n) holds lit ignoring ASCII case (lit lowercase). */
static bool contains_case(const char *s, size_t n, const char *lit)
{
    size_t l = strlen(lit);

    for (size_t i = 0; i + l <= n; i++) {
        size_t j = 0;
        while (j < l && ascii_lower(s[i + j]) == lit[j])
            j++;
        if (j == l)
            return true;
    }
    return false;
}

/* Whether s[i..] starts a victim tag "c<digits>r<digit>"; its client id. */
static bool tag_at(const char *s, size_t n, size_t i, unsigned *id)
{
    size_t j = i + 1;
    unsigned v = 0;

    if (s[i] != 'c' || j >= n || s[j] < '0' || s[j] > '9')
        return false;
    while (j < n && s[j] >= '0' && s[j] <= '9' && v < 100000)
        v = v * 10 + (unsigned)(s[j++] - '0');
    if (j + 1 >= n || s[j] != 'r' || s[j + 1] < '0' || s[j + 1] > '9')
        return false;
    *id = v;
    return true;
}

/* ---- state of one run ---------------------------------------------------- */

/* Adversarial mode: what the exchange does with one request of a client. */
enum fate {
    FATE_FORWARD,   /* sent upstream */
    FATE_LOCAL,     /* answered by the exchange (unsupported, QUIT) */
    FATE_REFUSED,   /* malformed or too large: an error, then the client is closed */
    FATE_SKIP,      /* not a request (CODEC_INFO_SKIP): dropped */
};

/* Adversarial mode: one request of a client, as the exchange frames it. */
struct request {
    size_t start;               /* offset in the client's out */
    size_t len;
    uint64_t hash;              /* of its bytes */
    uint32_t info;              /* CODEC_INFO_* found by the codec */
    uint8_t fate;
    bool needs_reply;
    bool written;               /* its last byte is in the socket */
    bool fair;                  /* written when its client had nothing outstanding */
    /* When it was written: executions by the upstream (all clients), its
     * client's executions, and each upstream slot's executions and
     * connection generation. For the fairness check. */
    uint32_t exec_at_write;
    uint32_t own_at_write;
    uint32_t up_exec_at_write[MAX_UPSTREAMS];
    uint32_t up_gen_at_write[MAX_UPSTREAMS];
};

struct client {
    bool used;              /* the record holds a client (open or not) */
    bool open;              /* the harness still holds its end */
    int fd;
    unsigned id;            /* in tokens; its index in clients[] + 1 */
    bool shut_wr;           /* we half-closed */
    bool reading;
    bool eof;               /* the exchange closed its end */
    unsigned queued;        /* requests made (ordered) */
    unsigned sent;          /* requests whose last byte is written */
    unsigned answered;      /* responses received */
    unsigned *ends;         /* ordered: out offset at which request i ends */
    size_t out_done;        /* bytes of out written so far */
    struct bytes out;       /* everything this client writes */
    struct bytes in;        /* ordered: a response line not yet whole;
                             * adversarial: answers not yet checked */
    size_t received;        /* bytes received */
    int last_forwarded;     /* ordered: highest request seen upstream */

    /* Adversarial mode. */
    struct request *reqs;   /* framed from out, in order */
    size_t nreqs;
    size_t reqs_cap;
    size_t nwritten;        /* reqs[0..nwritten) are all written */
    size_t frame_start;     /* out offset of the request being framed */
    size_t frame_scanned;   /* its bytes the codec consumed */
    struct codec_parser frame;
    bool frame_done;        /* the exchange reads nothing more from it */
    size_t next_reply;      /* the request the next answer is for */
    struct codec_parser reply;
    size_t reply_scanned;
    bool reply_parsing;
    unsigned nvictims;      /* tagged requests made: the r<n> */
    uint32_t nexec;         /* its requests the upstream ran */
    uint32_t last_exec;     /* run->nexec after the last of them */
    uint32_t nforward;      /* its forwarded requests marked written */
    size_t unanswered;      /* from next_reply: its first request owed an answer */
    size_t min_len;         /* its shortest request written */
};

struct fake_upstream {
    bool open;
    int fd;
    bool shut_wr;
    bool stalled;           /* not reading: the exchange's writes back up */
    struct bytes in;        /* ordered: a request line not yet whole;
                             * adversarial: bytes the model has not taken */
    struct bytes out;       /* ordered, adversarial: answers not yet written */

    /* Adversarial mode. */
    uint64_t taken;         /* bytes the model took on this connection */
    bool model_closed;      /* the model closes once its answers are out */
    uint32_t nexec;         /* commands run on this connection */
    uint32_t gen;           /* connection number, for fairness snapshots */
};

/* Adversarial mode: one way to attribute the commands the model ran so far
 * to requests: last[i] is the last request of clients[i] that ran. Several
 * are kept while identical requests of different clients make it
 * ambiguous. */
struct hyp {
    int16_t last[MAX_CLIENTS_TOTAL];
};

struct run {
    bool ordered;
    bool adversarial;
    const struct codec_ops *codec;  /* garbage and adversarial modes' oracle */
    uint8_t h0;
    uint8_t h2;
    struct config *cfg;             /* malloc'd; replaced by a reload; runs services[0] */
    struct reactor *r;
    struct exchange x;
    struct client clients[MAX_CLIENTS_TOTAL];   /* every client of the run */
    int slot[MAX_CLIENTS];          /* the client in each script slot, or -1 */
    unsigned nclients_total;
    struct fake_upstream ups[MAX_UPSTREAMS];
    int iterations;
    size_t mem_base;
    uint64_t progress;      /* bytes moved and closes seen by the harness */
    size_t pad;             /* ordered: padding of the answers from now on */

    /* Adversarial mode. */
    bool tainted;           /* a skipped violation: check nothing more */
    struct hyp hyps[MAX_HYPS];
    int nhyps;
    bool hyps_truncated;
    uint32_t nexec;         /* commands the model ran, all connections */
    uint32_t upgen;
    size_t total_reqs;
    int client_sndbuf;          /* SO_SNDBUF of a client socket, as read back */
    struct bytes model_reply;   /* scratch */
    struct bytes body;          /* scratch */
    struct bytes dec;           /* scratch: inline Redis arguments */
};

static bool trace;
static const char *skip_list;   /* FUZZ_EXCHANGE_SKIP */
static int listen_fd = -1;
static int listen_port;
static int refused_fd = -1;
static int refused_port;

static bool skip_named(const char *name)
{
    size_t n = strlen(name);

    for (const char *p = skip_list; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return true;
        p = e != NULL ? e + 1 : p + len;
    }
    return false;
}

/* A violation of the adversarial oracle: aborts with its name and what
 * happened, unless FUZZ_EXCHANGE_SKIP names it (then the rest of the input
 * is not checked). */
#define VIOLATION(run, name, ...) do { \
        if (!(run)->tainted) { \
            if (skip_named(name)) { \
                (run)->tainted = true; \
                if (trace) \
                    fprintf(stderr, "harness: %s violation skipped\n", name); \
            } else { \
                fprintf(stderr, "fuzz_exchange: violation (%s): ", name); \
                fprintf(stderr, __VA_ARGS__); \
                fputc('\n', stderr); \
                abort(); \
            } \
        } \
    } while (0)

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
    skip_list = getenv("FUZZ_EXCHANGE_SKIP");
    if (!trace)
        CHECK(log_open("/dev/null") == PMX_OK, "log_open");
    log_set_level(LOG_DEBUG);
    return 0;
}

/* ---- configuration -------------------------------------------------------- */

static void make_config(struct config *cfg, uint8_t h0, uint8_t h1, bool adversarial)
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

    if (adversarial)
        h1 &= (uint8_t)~0x0bu;      /* no queue_limit, no queue_timeout: see the top */
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
    ENV("EXCHANGE_CLIENT_INFLIGHT=%d", (h1 & 64) ? 2 : 128);
    ENV("PROXY_BACKOFF_MIN=10");
    ENV("PROXY_BACKOFF_MAX=40");
    /* Targets stay up: a probe would connect to the harness listener,
     * which takes every connection for an upstream connection. */
    ENV("HEALTH_FAIL_AFTER=1000");
#undef ENV
    env[n] = NULL;
    CHECK(config_load(cfg, NULL, env, err, sizeof err) == PMX_OK, "config: %s", err);
}

/* SIGHUP as main.c does it: a fresh configuration, whose settings that need
 * a restart keep their running values, replaces the old one, which is freed
 * (ASan then catches anyone still reading it). Adversarial mode keeps its
 * max_message: the harness frames requests as the exchange does, with it. */
static void reload(struct run *run, uint8_t a)
{
    struct config *old = run->cfg;
    struct config *fresh = malloc(sizeof(*fresh));
    uint8_t h0 = (uint8_t)((run->h0 & 0x3f) | (a & 0xc0));

    if (run->adversarial)
        h0 = (uint8_t)((h0 & 0x7f) | (run->h0 & 0x80));
    CHECK(fresh != NULL, "out of memory");
    make_config(fresh, h0, a & 0x3f, run->adversarial);
    config_service_keep_fixed(&fresh->services[0], &old->services[0]);
    run->cfg = fresh;
    run->x.config = &fresh->services[0];
    if (upstream_reload(run->x.upstream, run->x.config) != PMX_OK)
        CHECK(false, "upstream_reload: out of memory");
    run->x.ops->reload(&run->x);
    config_free(old);
    free(old);
}

/* ---- upstream models -------------------------------------------------------
 *
 * Each model takes the bytes at the front of what an upstream connection
 * received (d[0..n), more may follow) and says whether the real server has
 * a whole command there (MODEL_UNIT: u->len bytes; its answer appended to
 * reply) or waits for more (MODEL_MORE). u->bad names a violation when the
 * server would do something no shared connection survives. Answers carry a
 * tag of the command's bytes, so an answer handed to the wrong client is
 * seen. The models are pure functions of the bytes: the harness also runs
 * them on each request alone to know the answer its client must get. */

struct unit {
    size_t len;             /* bytes the server takes as one command */
    bool close_after;       /* http: closes after its response (which says so) */
    bool culls;             /* memcached: drops the replies it has not sent */
    const char *bad;        /* a violation name, or NULL */
    char why[200];          /* what the server does, for the message */
};

enum { MODEL_MORE, MODEL_UNIT };

static int unit_bad(struct unit *u, size_t len, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int unit_bad(struct unit *u, size_t len, const char *name, const char *fmt, ...)
{
    va_list ap;

    u->len = len;
    u->bad = name;
    va_start(ap, fmt);
    vsnprintf(u->why, sizeof u->why, fmt, ap);
    va_end(ap);
    return MODEL_UNIT;
}

/* The text of a model answer: the name the command gives (key, path; at
 * most 40 bytes, others than printable ASCII as '.'), '/', the tag of the
 * command's bytes, then n x PAD_UNIT bytes when the name is a victim's tag
 * ending with ":p<n>" (big answers, against max_message). */
static void model_body(struct bytes *b, const char *name, size_t n, const char *cmd, size_t clen)
{
    static const char pad[64] = "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";
    char tag[17];
    size_t digits = 0, v = 0;

    b->len = 0;
    for (size_t i = 0; i < n && i < 40; i++) {
        char ch = name[i] > 0x20 && name[i] < 0x7f ? name[i] : '.';
        bytes_add(b, &ch, 1);
    }
    bytes_add(b, "/", 1);
    tag_text(hash_bytes(cmd, clen), tag);
    bytes_add(b, tag, 16);
    while (digits < n && digits < 5 && name[n - 1 - digits] >= '0' && name[n - 1 - digits] <= '9')
        digits++;
    size_t t = 0;
    unsigned id;
    if (n > 0 && name[0] == '/')
        t = 1;      /* an HTTP path */
    if (digits > 0 && n >= digits + 2 && name[n - digits - 1] == 'p' && name[n - digits - 2] == ':' &&
        tag_at(name, n, t, &id)) {
        for (size_t i = n - digits; i < n; i++)
            v = v * 10 + (size_t)(name[i] - '0');
        for (size_t left = PMX_MIN(v * PAD_UNIT, PAD_MAX); left > 0;) {
            size_t k = PMX_MIN(left, sizeof pad);
            bytes_add(b, pad, k);
            left -= k;
        }
    }
}

/* -- Redis 7.0 (src/networking.c, sds.c, util.c) -- */

#define REDIS_INLINE_MAX (64 * 1024)            /* PROTO_INLINE_MAX_SIZE */
#define REDIS_BULK_MAX (512LL * 1024 * 1024)    /* proto-max-bulk-len */
#define MODEL_ARGS 10

struct args {
    const char *base;
    size_t off[MODEL_ARGS];
    size_t n[MODEL_ARGS];
    long long count;
};

/* strchr(d + from, c) where d holds n bytes followed, like an sds, by a
 * NUL: the index of c, or -1 when a NUL or the end comes first. */
static long redis_strchr(const char *d, size_t from, size_t n, char c)
{
    for (size_t i = from; i < n; i++) {
        if (d[i] == c)
            return (long)i;
        if (d[i] == '\0')
            return -1;
    }
    return -1;
}

/* string2ll(): no sign but '-', no leading zero, no space, under 21 bytes. */
static bool redis_string2ll(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    bool neg = false;
    unsigned long long v;

    if (n == 0 || n >= 21)
        return false;
    if (n == 1 && s[0] == '0') {
        *out = 0;
        return true;
    }
    if (s[0] == '-') {
        neg = true;
        if (++i == n)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    v = (unsigned long long)(s[i++] - '0');
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (v > ULLONG_MAX / 10 || v * 10 > ULLONG_MAX - (unsigned long long)(s[i] - '0'))
            return false;
        v = v * 10 + (unsigned long long)(s[i] - '0');
    }
    if (i < n)
        return false;
    if (neg) {
        if (v > (unsigned long long)LLONG_MAX + 1)
            return false;
        *out = (long long)(0 - v);
    } else {
        if (v > (unsigned long long)LLONG_MAX)
            return false;
        *out = (long long)v;
    }
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

static void args_add(struct args *a, size_t off, size_t n)
{
    if (a->count < MODEL_ARGS) {
        a->off[a->count] = off;
        a->n[a->count] = n;
    }
    a->count++;
}

/* sdssplitargs() over line[0..len), which holds no NUL (bytes past it read
 * as NUL); the arguments, unquoted, go to dec. False on unbalanced quotes. */
static bool redis_splitargs(const char *line, size_t len, struct args *a, struct bytes *dec)
{
    size_t p = 0;

#define AT(i) ((i) < len ? line[i] : '\0')
    a->count = 0;
    dec->len = 0;
    for (;;) {
        while (AT(p) != '\0' && c_space(AT(p)))
            p++;
        if (AT(p) == '\0')
            break;
        size_t start = dec->len;
        bool inq = false, insq = false, done = false;
        while (!done) {
            char ch = AT(p), add;
            if (inq) {
                if (ch == '\\' && AT(p + 1) == 'x' && hex_value(AT(p + 2)) >= 0 && hex_value(AT(p + 3)) >= 0) {
                    add = (char)(hex_value(AT(p + 2)) * 16 + hex_value(AT(p + 3)));
                    bytes_add(dec, &add, 1);
                    p += 3;
                } else if (ch == '\\' && AT(p + 1) != '\0') {
                    p++;
                    ch = AT(p);
                    add = ch == 'n' ? '\n' : ch == 'r' ? '\r' : ch == 't' ? '\t' :
                          ch == 'b' ? '\b' : ch == 'a' ? '\a' : ch;
                    bytes_add(dec, &add, 1);
                } else if (ch == '"') {
                    if (AT(p + 1) != '\0' && !c_space(AT(p + 1)))
                        return false;
                    done = true;
                } else if (ch == '\0') {
                    return false;
                } else {
                    bytes_add(dec, &ch, 1);
                }
            } else if (insq) {
                if (ch == '\\' && AT(p + 1) == '\'') {
                    p++;
                    bytes_add(dec, "'", 1);
                } else if (ch == '\'') {
                    if (AT(p + 1) != '\0' && !c_space(AT(p + 1)))
                        return false;
                    done = true;
                } else if (ch == '\0') {
                    return false;
                } else {
                    bytes_add(dec, &ch, 1);
                }
            } else {
                switch (ch) {
                case ' ': case '\n': case '\r': case '\t': case '\0':
                    done = true;
                    break;
                case '"':
                    inq = true;
                    break;
                case '\'':
                    insq = true;
                    break;
                default:
                    bytes_add(dec, &ch, 1);
                    break;
                }
            }
            if (AT(p) != '\0')
                p++;
        }
        args_add(a, start, dec->len - start);
    }
#undef AT
    return true;
}

/* Command names compared as lookupCommand() and the commands do: up to a
 * NUL, ignoring case (the hash covers every byte, but an attacker can pick
 * bytes after the NUL that land in the right bucket). */
static bool redis_arg_is(const struct args *a, long long i, const char *lit)
{
    return i < a->count && i < MODEL_ARGS && cstr_caseeq(a->base + a->off[i], a->n[i], lit);
}

static bool redis_name_in(const struct args *a, const char *const *names)
{
    for (; *names != NULL; names++)
        if (redis_arg_is(a, 0, *names))
            return true;
    return false;
}

/* Runs the command a (its bytes: d[0..len)). */
static int redis_execute(struct run *run, const struct args *a, const char *d, size_t len,
                         struct unit *u, struct bytes *reply)
{
    static const char *const state[] = {
        "multi", "watch", "subscribe", "psubscribe", "ssubscribe", "monitor", "select",
        "auth", "hello", "reset", "sync", "psync", "replconf", "readonly", "readwrite",
        "asking", "debug", NULL,
    };
    static const char *const blocking[] = {
        "blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax", "bzmpop",
        "wait", "waitaof", NULL,
    };
    static const char *const client_subs[] = {
        "reply", "tracking", "caching", "setname", "setinfo", "kill", "pause", "unpause",
        "no-evict", "no-touch", "unblock", NULL,
    };
    static const char *const unsubscribe[] = { "unsubscribe", "punsubscribe", "sunsubscribe", NULL };
    char q[96];

    u->len = len;
    esc(a->base + a->off[0], PMX_MIN(a->n[0], 24), q, sizeof q);
    if (redis_name_in(a, state))
        return unit_bad(u, len, "state", "Redis runs %s, which changes the shared connection's state", q);
    if (redis_name_in(a, blocking))
        return unit_bad(u, len, "state", "Redis runs %s, which may block the shared connection", q);
    if (redis_arg_is(a, 0, "xread") || redis_arg_is(a, 0, "xreadgroup"))
        for (long long i = 1; i < a->count && i < MODEL_ARGS; i++)
            if (redis_arg_is(a, i, "block"))
                return unit_bad(u, len, "state", "Redis runs %s BLOCK, which blocks the shared connection", q);
    if (redis_arg_is(a, 0, "client"))
        for (const char *const *s = client_subs; *s != NULL; s++)
            if (redis_arg_is(a, 1, *s))
                return unit_bad(u, len, "state", "Redis runs CLIENT %s, which changes the shared connection", *s);
    if (redis_arg_is(a, 0, "quit") || redis_arg_is(a, 0, "shutdown"))
        return unit_bad(u, len, "close", "Redis runs %s and closes the shared connection", q);
    if (redis_name_in(a, unsubscribe) && a->count > 2)
        return unit_bad(u, len, "replies", "Redis answers %s with one reply per channel (%lld)", q, a->count - 1);
    long long k = a->count > 1 ? 1 : 0;
    model_body(&run->body, a->base + a->off[k], a->n[k], d, len);
    bytes_fmt(reply, "$%zu\r\n", run->body.len);
    bytes_add(reply, run->body.data, run->body.len);
    bytes_add(reply, "\r\n", 2);
    return MODEL_UNIT;
}

static int model_resp(struct run *run, const char *d, size_t n, struct unit *u, struct bytes *reply)
{
    struct args a;
    long long ll, bl;
    long r;
    size_t pos;

    memset(&a, 0, sizeof a);
    if (n == 0)
        return MODEL_MORE;
    if (d[0] == '*') {
        r = redis_strchr(d, 0, n, '\r');
        if (r < 0) {
            if (n > REDIS_INLINE_MAX)
                return unit_bad(u, n, "close", "Redis: protocol error, too big mbulk count string");
            return MODEL_MORE;
        }
        if ((size_t)r + 2 > n)
            return MODEL_MORE;
        if (!redis_string2ll(d + 1, (size_t)r - 1, &ll) || ll > INT32_MAX)
            return unit_bad(u, (size_t)r + 2, "close", "Redis: protocol error, invalid multibulk length");
        pos = (size_t)r + 2;
        if (ll <= 0) {
            u->len = pos;       /* nothing runs, nothing is answered */
            return MODEL_UNIT;
        }
        a.base = d;
        for (long long i = 0; i < ll; i++) {
            r = redis_strchr(d, pos, n, '\r');
            if (r < 0) {
                if (n - pos > REDIS_INLINE_MAX)
                    return unit_bad(u, n, "close", "Redis: protocol error, too big bulk count string");
                return MODEL_MORE;
            }
            if ((size_t)r + 2 > n)
                return MODEL_MORE;
            if (d[pos] != '$')
                return unit_bad(u, pos + 1, "close", "Redis: protocol error, expected '$', got '%c'", d[pos]);
            if (!redis_string2ll(d + pos + 1, (size_t)r - pos - 1, &bl) || bl < 0 || bl > REDIS_BULK_MAX)
                return unit_bad(u, (size_t)r + 2, "close", "Redis: protocol error, invalid bulk length");
            pos = (size_t)r + 2;
            if ((long long)(n - pos) < bl + 2)
                return MODEL_MORE;
            args_add(&a, pos, (size_t)bl);
            pos += (size_t)bl + 2;     /* the two bytes after a bulk are not looked at */
        }
        return redis_execute(run, &a, d, pos, u, reply);
    }
    r = redis_strchr(d, 0, n, '\n');
    if (r < 0) {
        if (n > REDIS_INLINE_MAX)
            return unit_bad(u, n, "close", "Redis: protocol error, too big inline request");
        return MODEL_MORE;      /* a NUL before the newline: Redis waits */
    }
    pos = (size_t)r + 1;
    size_t end = (size_t)r;
    if (end > 0 && d[end - 1] == '\r')
        end--;
    if (!redis_splitargs(d, end, &a, &run->dec))
        return unit_bad(u, pos, "close", "Redis: protocol error, unbalanced quotes in inline request");
    if (a.count == 0) {
        u->len = pos;
        return MODEL_UNIT;
    }
    a.base = run->dec.data;
    return redis_execute(run, &a, d, pos, u, reply);
}

/* -- memcached 1.6 (proto_text.c, memcached.c, util.c) -- */

#define MC_KEY_MAX 250          /* KEY_MAX_LENGTH */
#define MC_TOKENS 24            /* MAX_TOKENS */
#define MC_OPT_MAX 20           /* MFLAG_MAX_OPT_LENGTH */
#define MC_OPAQUE_MAX 32        /* MFLAG_MAX_OPAQUE_LENGTH */
#define MC_LINE_CLOSE 2048      /* a longer line without newline closes the connection */
#define MC_ITEM_MAX (1024 * 1024)   /* item_size_max */

struct mt {
    const char *s;
    size_t n;
};

/* One command line being run. */
struct mc_cmd {
    struct run *run;
    struct unit *u;
    struct bytes *reply;
    const char *line;           /* the line with its newline: the tag's bytes */
    size_t line_len;
    struct mt tok[MC_TOKENS];
    size_t nt;                  /* tokens, the terminal one included */
    struct mt rest;             /* the terminal token's value: the rest not tokenized */
    bool noreply;
    int64_t nread;              /* the data block to read, its CRLF included; or -1 */
    int64_t swallow;            /* bytes to throw away after the line */
    bool mset;                  /* ms: an error after the data is always sent */
    char ok[1024];              /* the answer once the data block is in */
};

/* tokenize_command(): splits on spaces into at most MC_TOKENS - 1 tokens;
 * the terminal one holds the rest (s NULL when all was read). */
static void mc_tokenize(struct mc_cmd *x, const char *cmd, size_t len)
{
    size_t s = 0, e = 0, nt = 0;

    for (size_t i = 0; i < len; i++) {
        if (cmd[e] == ' ') {
            if (s != e) {
                x->tok[nt++] = (struct mt){ cmd + s, e - s };
                if (nt == MC_TOKENS - 1) {
                    e++;
                    s = e;
                    break;
                }
            }
            s = e + 1;
        }
        e++;
    }
    if (s != e)
        x->tok[nt++] = (struct mt){ cmd + s, e - s };
    x->rest = e < len ? (struct mt){ cmd + e, len - e } : (struct mt){ NULL, 0 };
    x->tok[nt++] = (struct mt){ x->rest.s != NULL ? x->rest.s : "", 0 };
    x->nt = nt;
}

static bool mt_is(struct mt t, const char *lit)
{
    return t.n == strlen(lit) && memcmp(t.s, lit, t.n) == 0;
}

/* strtoull()/strtoll() on a token as safe_strto*() use them: whitespace,
 * a sign, digits (at least one), then the token's end or whitespace.
 * *neg and *v get the sign and magnitude; false when out of 64 bits. */
static bool mc_strto(struct mt t, bool *neg, uint64_t *v)
{
    size_t i = 0, d0;

    *neg = false;
    *v = 0;
    while (i < t.n && c_space(t.s[i]))
        i++;
    if (i < t.n && (t.s[i] == '+' || t.s[i] == '-'))
        *neg = t.s[i++] == '-';
    for (d0 = i; i < t.n && t.s[i] >= '0' && t.s[i] <= '9'; i++) {
        unsigned dig = (unsigned)(t.s[i] - '0');
        if (*v > (UINT64_MAX - dig) / 10)
            return false;   /* ERANGE */
        *v = *v * 10 + dig;
    }
    return i > d0 && (i == t.n || c_space(t.s[i]));
}

/* safe_strtoull(): a negative number is refused only when it wraps to one
 * that looks negative as signed. */
static bool mc_strtoull(struct mt t, uint64_t *out)
{
    bool neg;
    uint64_t v;

    if (!mc_strto(t, &neg, &v))
        return false;
    if (neg)
        v = 0 - v;
    if ((int64_t)v < 0 && memchr(t.s, '-', t.n) != NULL)
        return false;
    *out = v;
    return true;
}

/* safe_strtoul(): the same into 32 bits (truncating). */
static bool mc_strtoul32(struct mt t, uint32_t *out)
{
    uint64_t v;

    if (!mc_strtoull(t, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

/* safe_strtol(): strtol() on a 64-bit long, truncated to 32 bits. */
static bool mc_strtol32(struct mt t, int32_t *out)
{
    bool neg;
    uint64_t v;

    if (!mc_strto(t, &neg, &v) || v > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
        return false;
    *out = (int32_t)(uint32_t)(neg ? 0 - v : v);
    return true;
}

/* base64_decode() != 0. */
static bool mc_base64_ok(struct mt t)
{
    size_t count = 0, blocks = 0, pad = 0, got = 0;

    for (size_t i = 0; i < t.n; i++) {
        char ch = t.s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '+' || ch == '/' || ch == '=')
            count++;
    }
    if (count == 0 || count % 4 != 0)
        return false;
    for (size_t i = 0; i < t.n; i++) {
        char ch = t.s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/' || ch == '='))
            continue;
        pad += ch == '=';
        if (++got == 4) {
            blocks++;
            got = 0;
            if (pad > 2)
                return false;
            if (pad > 0)
                break;
        }
    }
    return blocks * 3 - pad > 0;
}

/* out_string(): nothing under noreply. Errors of the model say "model:",
 * so that the harness never takes them for the exchange's own. */
static void mc_say(struct mc_cmd *x, const char *line)
{
    if (x->noreply)
        return;
    if (has_prefix(line, strlen(line), "CLIENT_ERROR ") || has_prefix(line, strlen(line), "SERVER_ERROR ")) {
        bytes_add(x->reply, line, 13);
        bytes_str(x->reply, "model: ");
        bytes_str(x->reply, line + 13);
    } else {
        bytes_str(x->reply, line);
    }
    bytes_add(x->reply, "\r\n", 2);
}

/* out_errstring(): sent even under noreply. */
static void mc_err(struct mc_cmd *x, const char *line)
{
    x->noreply = false;
    mc_say(x, line);
}

/* set_noreply_maybe(): the last token is "noreply". */
static void mc_noreply_maybe(struct mc_cmd *x)
{
    if (mt_is(x->tok[x->nt - 2], "noreply"))
        x->noreply = true;
}

static void mc_body(struct mc_cmd *x, struct mt name)
{
    model_body(&x->run->body, name.s, name.n, x->line, x->line_len);
}

struct mc_flags {
    bool v, q;
    char mode;
};

/* _meta_flag_preparse(): returns false with *err set. */
static bool mc_preparse(struct mc_cmd *x, size_t start, struct mc_flags *f, const char **err)
{
    bool seen[127] = { false }, has_error = false;
    uint64_t u64;
    uint32_t u32;
    int32_t i32;

    memset(f, 0, sizeof(*f));
    for (size_t i = start; x->tok[i].n != 0; i++) {
        uint8_t o = (uint8_t)x->tok[i].s[0];
        struct mt v = { x->tok[i].s + 1, x->tok[i].n - 1 };
        if (o >= 127 || seen[o]) {
            *err = "CLIENT_ERROR duplicate flag";
            return false;
        }
        seen[o] = true;
        switch (o) {
        case 'b':
            if (!mc_base64_ok(x->tok[1])) {
                *err = "CLIENT_ERROR error decoding key";
                has_error = true;
            }
            break;
        case 'N': case 'T': case 'R':
            if (!mc_strtol32(v, &i32)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            }
            break;
        case 'l': case 'O': case 'P': case 'L': case 'k': case 's': case 't': case 'c':
        case 'f': case 'h': case 'u': case 'I':
            break;
        case 'v':
            f->v = true;
            break;
        case 'q':
            f->q = true;
            break;
        case 'F':
            if (!mc_strtoul32(v, &u32))
                has_error = true;
            break;
        case 'C':
            if (!mc_strtoull(v, &u64)) {
                *err = "CLIENT_ERROR bad token in command line format";
                has_error = true;
            }
            break;
        case 'M':
            if (x->tok[i].n != 2) {
                *err = "CLIENT_ERROR incorrect length for M token";
                has_error = true;
            } else {
                f->mode = x->tok[i].s[1];
            }
            break;
        case 'J': case 'D':
            if (!mc_strtoull(v, &u64)) {
                *err = "CLIENT_ERROR invalid numeric value";
                has_error = true;
            }
            break;
        default:
            *err = "CLIENT_ERROR invalid flag";
            return false;
        }
    }
    return !has_error;
}

/* An opaque token over MC_OPAQUE_MAX: an error. */
static bool mc_opaque_too_long(const struct mc_cmd *x, size_t start)
{
    for (size_t i = start; x->tok[i].n != 0; i++)
        if (x->tok[i].s[0] == 'O' && x->tok[i].n > MC_OPAQUE_MAX)
            return true;
    return false;
}

/* The return flags of a meta answer: " O..." echoed, " k<key>"... */
static void mc_meta_flags(const struct mc_cmd *x, size_t start, char *out, size_t cap, size_t vlen)
{
    size_t o = strlen(out);

    for (size_t i = start; x->tok[i].n != 0 && o + 8 < cap; i++) {
        struct mt t = x->tok[i];
        int w = 0;
        switch (t.s[0]) {
        case 'O':
            w = snprintf(out + o, cap - o, " %.*s", (int)t.n, t.s);
            break;
        case 'k':
            w = snprintf(out + o, cap - o, " k%.*s", (int)PMX_MIN(x->tok[1].n, 300), x->tok[1].s);
            break;
        case 's':
            w = snprintf(out + o, cap - o, " s%zu", vlen);
            break;
        case 't':
            w = snprintf(out + o, cap - o, " t-1");
            break;
        case 'c':
            w = snprintf(out + o, cap - o, " c1");
            break;
        case 'f':
            w = snprintf(out + o, cap - o, " f0");
            break;
        }
        if (w > 0)
            o = PMX_MIN(o + (size_t)w, cap - 1);
    }
}

static void mc_mget(struct mc_cmd *x)
{
    struct mc_flags f;
    const char *err = "CLIENT_ERROR bad command line format";
    char line[1024];

    if (x->nt < 3)
        { mc_say(x, "ERROR"); return; }
    if (x->tok[1].n > MC_KEY_MAX)
        { mc_err(x, "CLIENT_ERROR bad command line format"); return; }
    if (x->nt > MC_OPT_MAX)
        { mc_err(x, "CLIENT_ERROR options flags are too long"); return; }
    if (!mc_preparse(x, 2, &f, &err))
        { mc_err(x, err); return; }
    x->noreply = f.q;
    if (mc_opaque_too_long(x, 2))
        { mc_err(x, "CLIENT_ERROR opaque token too long"); return; }
    if (f.q)
        { mc_say(x, "EN"); return; }     /* a miss, unsaid under q: the worst case */
    mc_body(x, x->tok[1]);
    if (f.v)
        snprintf(line, sizeof line, "VA %zu", x->run->body.len);
    else
        snprintf(line, sizeof line, "HD");
    mc_meta_flags(x, 2, line, sizeof line, x->run->body.len);
    mc_say(x, line);
    if (f.v) {
        bytes_add(x->reply, x->run->body.data, x->run->body.len);
        bytes_add(x->reply, "\r\n", 2);
    }
}

static void mc_mset(struct mc_cmd *x)
{
    struct mc_flags f;
    const char *err = "CLIENT_ERROR bad command line format";
    int32_t vlen;

    if (x->nt < 3)
        { mc_say(x, "ERROR"); return; }
    if (x->tok[1].n > MC_KEY_MAX || x->nt == 3)
        { mc_err(x, "CLIENT_ERROR bad command line format"); return; }
    if (x->nt > MC_OPT_MAX)
        { mc_err(x, "CLIENT_ERROR options flags too long"); return; }
    if (!mc_strtol32(x->tok[2], &vlen) || vlen < 0 || vlen > INT32_MAX - 2)
        { mc_err(x, "CLIENT_ERROR bad command line format"); return; }
    vlen += 2;
    /* From here on an error swallows the data block. */
    x->swallow = vlen;
    if (!mc_preparse(x, 3, &f, &err))
        { mc_err(x, err); return; }
    x->noreply = f.q;
    if (f.mode != 0 && !strchr("EAPRS", f.mode))
        { mc_err(x, "CLIENT_ERROR invalid mode for ms M token"); return; }
    if (mc_opaque_too_long(x, 3))
        { mc_err(x, "CLIENT_ERROR opaque token too long"); return; }
    if (64 + x->tok[1].n + (size_t)vlen > MC_ITEM_MAX)
        { mc_err(x, "SERVER_ERROR object too large for cache"); return; }
    x->swallow = 0;
    x->nread = vlen;
    x->mset = true;
    snprintf(x->ok, sizeof x->ok, "HD");
    mc_meta_flags(x, 3, x->ok, sizeof x->ok, (size_t)vlen - 2);
}

static void mc_mdelete(struct mc_cmd *x)
{
    struct mc_flags f;
    const char *err = "CLIENT_ERROR bad command line format";
    char line[1024] = "HD";

    if (x->nt < 3)
        { mc_say(x, "ERROR"); return; }
    if (x->tok[1].n > MC_KEY_MAX)
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (x->nt > MC_OPT_MAX)
        { mc_say(x, "CLIENT_ERROR options flags too long"); return; }
    if (!mc_preparse(x, 2, &f, &err))
        { mc_err(x, "CLIENT_ERROR invalid or duplicate flag"); return; }
    x->noreply = f.q;
    if (mc_opaque_too_long(x, 2))
        { mc_err(x, "CLIENT_ERROR opaque token too long"); return; }
    mc_meta_flags(x, 2, line, sizeof line, 0);
    mc_say(x, line);
}

static void mc_marith(struct mc_cmd *x)
{
    struct mc_flags f;
    const char *err = "CLIENT_ERROR bad command line format";
    char line[1024], num[24];

    if (x->nt < 3)
        { mc_say(x, "ERROR"); return; }
    if (x->tok[1].n > MC_KEY_MAX)
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (x->nt > MC_OPT_MAX)
        { mc_say(x, "CLIENT_ERROR options flags too long"); return; }
    if (!mc_preparse(x, 2, &f, &err))
        { mc_err(x, "CLIENT_ERROR invalid or duplicate flag"); return; }
    x->noreply = f.q;
    if (f.mode != 0 && !strchr("I+D-", f.mode))
        { mc_err(x, "CLIENT_ERROR invalid mode for ma M token"); return; }
    if (mc_opaque_too_long(x, 2))
        { mc_err(x, "CLIENT_ERROR opaque token too long"); return; }
    snprintf(num, sizeof num, "%llu",
             (unsigned long long)(hash_bytes(x->line, x->line_len) % 1000000000000ull));
    if (f.v)
        snprintf(line, sizeof line, "VA %zu", strlen(num));
    else
        snprintf(line, sizeof line, "HD");
    mc_meta_flags(x, 2, line, sizeof line, strlen(num));
    mc_say(x, line);
    if (f.v && !x->noreply) {
        bytes_str(x->reply, num);
        bytes_add(x->reply, "\r\n", 2);
    }
}

static void mc_me(struct mc_cmd *x)
{
    char line[512];

    if (x->nt < 3 || x->tok[1].n > MC_KEY_MAX)
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (x->nt >= 4 && mt_is(x->tok[2], "b") && !mc_base64_ok(x->tok[1]))
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    mc_body(x, x->tok[1]);
    snprintf(line, sizeof line, "ME %.*s exp=-1 la=0 cas=1 fetch=no cls=1 size=%.*s",
             (int)x->tok[1].n, x->tok[1].s, (int)PMX_MIN(x->run->body.len, 100), x->run->body.data);
    mc_say(x, line);
}

/* process_get_command(): every key a hit (its value the tag); a key over
 * 250 bytes drops every reply not yet sent on the connection. */
static void mc_get(struct mc_cmd *x, bool cas, bool touch)
{
    struct bytes *r = x->reply;
    size_t start = r->len, k = 1;
    int32_t exptime;
    struct mt keys[MC_TOKENS];
    size_t nkeys = 0;

    if (touch) {
        if (!mc_strtol32(x->tok[1], &exptime))
            { mc_say(x, "CLIENT_ERROR invalid exptime argument"); return; }
        k = 2;
    }
    for (; x->tok[k].n != 0; k++)
        keys[nkeys++] = x->tok[k];
    for (size_t i = 0;; i++) {
        struct mt key;
        if (i < nkeys) {
            key = keys[i];
        } else {
            /* The untokenized rest: its keys, split on spaces as well. */
            while (x->rest.n > 0 && x->rest.s[0] == ' ') {
                x->rest.s++;
                x->rest.n--;
            }
            if (x->rest.s == NULL || x->rest.n == 0)
                break;
            const char *sp = memchr(x->rest.s, ' ', x->rest.n);
            key = (struct mt){ x->rest.s, sp != NULL ? (size_t)(sp - x->rest.s) : x->rest.n };
            x->rest.s += key.n;
            x->rest.n -= key.n;
        }
        if (key.n > MC_KEY_MAX) {
            r->len = start;
            x->u->culls = true;
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        }
        mc_body(x, key);
        bytes_str(r, "VALUE ");
        bytes_add(r, key.s, key.n);
        bytes_fmt(r, " 0 %zu%s\r\n", x->run->body.len, cas ? " 1" : "");
        bytes_add(r, x->run->body.data, x->run->body.len);
        bytes_add(r, "\r\n", 2);
    }
    bytes_str(r, "END\r\n");
}

static void mc_stats(struct mc_cmd *x)
{
    static const char *const known[] = { "settings", "conns", "items", "slabs", "sizes",
                                         "sizes_enable", "sizes_disable", "extstore", NULL };
    struct mt sub = x->tok[1];
    uint32_t id, limit;
    char tag[17], line[64];

    tag_text(hash_bytes(x->line, x->line_len), tag);
    snprintf(line, sizeof line, "STAT model %s", tag);
    if (x->nt == 2) {
        mc_say(x, line);
        { mc_say(x, "END"); return; }
    }
    if (mt_is(sub, "reset"))
        { mc_say(x, "RESET"); return; }
    if (mt_is(sub, "detail")) {
        if (x->nt >= 4 && (mt_is(x->tok[2], "on") || mt_is(x->tok[2], "off")))
            { mc_say(x, "OK"); return; }
        if (x->nt >= 4 && mt_is(x->tok[2], "dump"))
            { mc_say(x, "END"); return; }
        { mc_say(x, "CLIENT_ERROR usage: stats detail on|off|dump"); return; }
    }
    if (mt_is(sub, "cachedump")) {
        if (x->nt < 5)
            { mc_say(x, "CLIENT_ERROR bad command line"); return; }
        if (!mc_strtoul32(x->tok[2], &id) || !mc_strtoul32(x->tok[3], &limit))
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        if (id >= 64)
            { mc_say(x, "CLIENT_ERROR Illegal slab id"); return; }
        { mc_say(x, "END"); return; }
    }
    for (const char *const *k = known; *k != NULL; k++) {
        if (mt_is(sub, *k)) {
            mc_say(x, line);
            { mc_say(x, "END"); return; }
        }
    }
    mc_say(x, "ERROR");
}

/* process_update_command(): a refused line leaves its data block unread,
 * to be taken as the next command; only a too large item swallows it. */
static void mc_update(struct mc_cmd *x, bool cas)
{
    uint32_t flags;
    int32_t exptime, vlen;
    uint64_t unique;

    mc_noreply_maybe(x);
    if (x->tok[1].n > MC_KEY_MAX)
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (!mc_strtoul32(x->tok[2], &flags) || !mc_strtol32(x->tok[3], &exptime) ||
        !mc_strtol32(x->tok[4], &vlen))
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (cas && !mc_strtoull(x->tok[5], &unique))
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    if (vlen < 0 || vlen > INT32_MAX - 2)
        { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
    vlen += 2;
    if (64 + x->tok[1].n + (size_t)vlen > MC_ITEM_MAX) {
        x->swallow = vlen;
        { mc_say(x, "SERVER_ERROR object too large for cache"); return; }
    }
    x->nread = vlen;
    snprintf(x->ok, sizeof x->ok, "STORED");
}

static void mc_dispatch(struct mc_cmd *x)
{
    struct mt *t = x->tok;
    size_t nt = x->nt;
    char line[160];
    uint32_t u32;
    uint64_t u64;
    int32_t i32;

#define WANT(cond) do { if (!(cond)) { mc_say(x, "ERROR"); return; } } while (0)
    if (nt < 2 || t[0].n < 2)
        { mc_say(x, "ERROR"); return; }
    if (t[0].s[0] == 'm' && t[0].n == 2) {
        switch (t[0].s[1]) {
        case 'g': { mc_mget(x); return; }
        case 's': { mc_mset(x); return; }
        case 'd': { mc_mdelete(x); return; }
        case 'n': { mc_say(x, "MN"); return; }
        case 'a': { mc_marith(x); return; }
        case 'e': { mc_me(x); return; }
        default: { mc_say(x, "ERROR"); return; }
        }
    }
    if (t[0].s[0] == 'g') {
        WANT(nt >= 3);
        if (mt_is(t[0], "get") || mt_is(t[0], "gets") || mt_is(t[0], "gat") || mt_is(t[0], "gats"))
            { mc_get(x, mt_is(t[0], "gets") || mt_is(t[0], "gats"), t[0].s[1] == 'a'); return; }
        { mc_say(x, "ERROR"); return; }
    }
    if (mt_is(t[0], "set") || mt_is(t[0], "add") || mt_is(t[0], "append") ||
        mt_is(t[0], "replace") || mt_is(t[0], "prepend")) {
        WANT(nt == 6 || nt == 7);
        { mc_update(x, false); return; }
    }
    if (mt_is(t[0], "cas")) {
        WANT(nt == 7 || nt == 8);
        { mc_update(x, true); return; }
    }
    if (mt_is(t[0], "stats"))
        { mc_stats(x); return; }
    if (mt_is(t[0], "incr") || mt_is(t[0], "decr")) {
        WANT(nt == 4 || nt == 5);
        mc_noreply_maybe(x);
        if (t[1].n > MC_KEY_MAX)
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        if (!mc_strtoull(t[2], &u64))
            { mc_say(x, "CLIENT_ERROR invalid numeric delta argument"); return; }
        snprintf(line, sizeof line, "%llu",
                 (unsigned long long)(hash_bytes(x->line, x->line_len) % 1000000000000ull));
        { mc_say(x, line); return; }
    }
    if (mt_is(t[0], "delete")) {
        WANT(nt >= 3 && nt <= 5);
        if (nt > 3) {
            bool hold_is_zero = mt_is(t[2], "0");
            mc_noreply_maybe(x);
            if (!((nt == 4 && (hold_is_zero || x->noreply)) || (nt == 5 && hold_is_zero && x->noreply)))
                { mc_say(x, "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"); return; }
        }
        if (t[1].n > MC_KEY_MAX)
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        { mc_say(x, "DELETED"); return; }
    }
    if (mt_is(t[0], "touch")) {
        WANT(nt == 4 || nt == 5);
        mc_noreply_maybe(x);
        if (t[1].n > MC_KEY_MAX)
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        if (!mc_strtol32(t[2], &i32))
            { mc_say(x, "CLIENT_ERROR invalid exptime argument"); return; }
        { mc_say(x, "TOUCHED"); return; }
    }
    if (mt_is(t[0], "bget")) {
        WANT(nt >= 3);
        { mc_get(x, false, false); return; }
    }
    if (mt_is(t[0], "flush_all")) {
        WANT(nt >= 2 && nt <= 4);
        mc_noreply_maybe(x);
        if (nt != (x->noreply ? 3u : 2u) && !mc_strtol32(t[1], &i32))
            { mc_say(x, "CLIENT_ERROR invalid exptime argument"); return; }
        { mc_say(x, "OK"); return; }
    }
    if (mt_is(t[0], "version")) {
        char tag[17];
        tag_text(hash_bytes(x->line, x->line_len), tag);
        snprintf(line, sizeof line, "VERSION 1.6.18-%s", tag);
        { mc_say(x, line); return; }
    }
    if (mt_is(t[0], "verbosity")) {
        WANT(nt == 3 || nt == 4);
        mc_noreply_maybe(x);
        if (!mc_strtoul32(t[1], &u32))
            { mc_say(x, "CLIENT_ERROR bad command line format"); return; }
        { mc_say(x, "OK"); return; }
    }
    if (mt_is(t[0], "quit")) {
        unit_bad(x->u, 0, "close", "memcached runs quit and closes the shared connection");
        return;
    }
    if (mt_is(t[0], "watch") || mt_is(t[0], "lru_crawler")) {
        unit_bad(x->u, 0, "state", "memcached runs %.*s, which takes the shared connection over",
                 (int)t[0].n, t[0].s);
        return;
    }
    if (mt_is(t[0], "shutdown"))
        { mc_say(x, "ERROR: shutdown not enabled"); return; }
    if (mt_is(t[0], "slabs") || mt_is(t[0], "lru") || mt_is(t[0], "cache_memlimit") ||
        mt_is(t[0], "extstore"))
        { mc_say(x, "OK"); return; }
    if (has_prefix(t[nt - 2].s, t[nt - 2].n, "HTTP/")) {
        unit_bad(x->u, 0, "close", "memcached takes the line for HTTP and closes the connection");
        return;
    }
    mc_say(x, "ERROR");
#undef WANT
}

/* A line memcached may see without its newline in the first 2048 bytes
 * read closes the connection, unless it is a "get "/"gets " (after at most
 * 100 spaces). */
static bool mc_long_line_ok(const char *d, size_t n)
{
    size_t i = 0;

    while (i < n && d[i] == ' ')
        i++;
    return i <= 100 && (has_prefix(d + i, n - i, "get ") || has_prefix(d + i, n - i, "gets "));
}

static int model_memcache(struct run *run, const char *d, size_t n, bool conn_start,
                          struct unit *u, struct bytes *reply)
{
    struct mc_cmd x;

    if (n == 0)
        return MODEL_MORE;
    if (conn_start && (uint8_t)d[0] == 0x80)
        return unit_bad(u, n, "state", "memcached takes a first byte 0x80 for the binary protocol");
    const char *nl = memchr(d, '\n', n);
    size_t line = nl != NULL ? (size_t)(nl - d) : n;
    if (line > MC_LINE_CLOSE && !mc_long_line_ok(d, line))
        return unit_bad(u, line, "close", "memcached closes a connection whose line has no newline "
                        "in its first %d bytes (this one has %zu)", MC_LINE_CLOSE, line);
    if (nl == NULL)
        return MODEL_MORE;
    size_t el = line;
    if (el > 1 && d[el - 1] == '\r')
        el--;
    memset(&x, 0, sizeof x);
    x.run = run;
    x.u = u;
    x.reply = reply;
    x.line = d;
    x.line_len = line + 1;
    x.nread = -1;
    mc_tokenize(&x, d, strnlen(d, el));     /* the command ends at a NUL */
    mc_dispatch(&x);
    u->len = line + 1;
    if (u->bad != NULL) {
        u->len = line + 1;
        return MODEL_UNIT;
    }
    if (x.swallow > 0) {
        if ((int64_t)(n - u->len) < x.swallow)
            return MODEL_MORE;
        u->len += (size_t)x.swallow;
    }
    if (x.nread >= 0) {
        if ((int64_t)(n - u->len) < x.nread)
            return MODEL_MORE;
        const char *data = d + u->len;
        u->len += (size_t)x.nread;
        if (x.nread < 2 || data[x.nread - 2] != '\r' || data[x.nread - 1] != '\n') {
            if (x.mset)
                mc_err(&x, "CLIENT_ERROR bad data chunk");
            else
                mc_say(&x, "CLIENT_ERROR bad data chunk");
        } else {
            mc_say(&x, x.ok);
        }
    }
    return MODEL_UNIT;
}

/* -- HTTP: nginx 1.22 (ngx_http_parse.c, ngx_http_request.c), or lenient -- */

#define HTTP_LINE_MAX 8192          /* nginx large_client_header_buffers */
#define HTTP_LENIENT_LINE_MAX 65536 /* Python http.server */
#define HTTP_BODY_MAX (1LL << 40)

/* What the server understood of one request. */
struct http_req {
    const char *target;
    size_t target_len;
    bool head;
    bool close;
    bool interim;       /* it sends "100 Continue" first */
};

static const char http_continue[] = "HTTP/1.1 100 Continue\r\n\r\n";

static int http_answer(struct run *run, const char *d, size_t len, const struct http_req *h,
                       struct unit *u, struct bytes *reply)
{
    u->len = len;
    u->close_after = h->close;
    model_body(&run->body, h->target, h->target_len, d, len);
    if (h->interim)
        bytes_str(reply, http_continue);
    bytes_fmt(reply, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n", run->body.len,
              h->close ? "Connection: close\r\n" : "");
    if (!h->head)
        bytes_add(reply, run->body.data, run->body.len);
    return MODEL_UNIT;
}

/* ngx_http_parse_chunked() from d[p]: the end of the body in *end, 0 when
 * more is needed, -1 when invalid. */
static int nginx_chunked(const char *d, size_t n, size_t p, size_t *end)
{
    enum { START, SIZE, EXT, EXT_CR, DATA, AFTER, AFTER_CR, LAST_EXT, LAST_EXT_CR,
           TRAILER, TRAILER_CR, TRAILER_HEADER, TRAILER_HEADER_CR } st = START;
    uint64_t size = 0;

    while (p < n) {
        char ch = d[p];
        int x = hex_value(ch);
        switch (st) {
        case START:
            if (x < 0)
                return -1;
            size = (uint64_t)x;
            st = SIZE;
            break;
        case SIZE:
            if (size > (uint64_t)INT64_MAX / 16)
                return -1;
            if (x >= 0) {
                size = size * 16 + (uint64_t)x;
                break;
            }
            if (ch == '\r')
                st = size == 0 ? LAST_EXT_CR : EXT_CR;
            else if (ch == '\n')
                st = size == 0 ? TRAILER : DATA;
            else if (ch == ';' || ch == ' ' || ch == '\t')
                st = size == 0 ? LAST_EXT : EXT;
            else
                return -1;
            break;
        case EXT:
        case LAST_EXT:
            if (ch == '\r')
                st = st == EXT ? EXT_CR : LAST_EXT_CR;
            else if (ch == '\n')
                st = st == EXT ? DATA : TRAILER;
            break;
        case EXT_CR:
        case LAST_EXT_CR:
            if (ch != '\n')
                return -1;
            st = st == EXT_CR ? DATA : TRAILER;
            break;
        case DATA:
            if (size > (uint64_t)(n - p))
                return 0;
            p += (size_t)size;
            st = AFTER;
            continue;
        case AFTER:
            if (ch == '\r')
                st = AFTER_CR;
            else if (ch == '\n')
                st = START;
            else
                return -1;
            break;
        case AFTER_CR:
            if (ch != '\n')
                return -1;
            st = START;
            break;
        case TRAILER:
            if (ch == '\r') {
                st = TRAILER_CR;
            } else if (ch == '\n') {
                *end = p + 1;
                return 1;
            } else {
                st = TRAILER_HEADER;
            }
            break;
        case TRAILER_CR:
            if (ch != '\n')
                return -1;
            *end = p + 1;
            return 1;
        case TRAILER_HEADER:
            if (ch == '\r')
                st = TRAILER_HEADER_CR;
            else if (ch == '\n')
                st = TRAILER;
            break;
        case TRAILER_HEADER_CR:
            if (ch != '\n')
                return -1;
            st = TRAILER;
            break;
        }
        p++;
    }
    return 0;
}

/* nginx's header name bytes (its lowcase table). */
static bool nginx_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static int http_refuse(struct unit *u, size_t len, int status, const char *why)
{
    return unit_bad(u, len, "close", "the server answers %d (%s) and closes the connection", status, why);
}

/* The strict model: nginx 1.22 with its defaults (ignore_invalid_headers
 * on, underscores_in_headers off). */
static int model_http_strict(struct run *run, const char *d, size_t n, struct unit *u, struct bytes *reply)
{
    static const char *const unique[] = { "content-length", "transfer-encoding", "if-modified-since",
        "if-unmodified-since", "if-match", "if-none-match", "content-range", "if-range", "host", NULL };
    struct http_req h;
    size_t p = 0, q, le, count[9] = { 0 };
    const char *cl = NULL, *te = NULL;
    size_t cl_len = 0, te_len = 0;
    bool keepalive_seen = false, close_seen = false, expect = false;
    int major = 0, minor = 0;

    memset(&h, 0, sizeof h);
    while (p < n && (d[p] == '\r' || d[p] == '\n'))
        p++;
    if (p == n)
        return MODEL_MORE;
    const char *lf = memchr(d + p, '\n', n - p);
    if (lf == NULL)
        return n - p > HTTP_LINE_MAX ? http_refuse(u, n, 414, "request line too long") : MODEL_MORE;
    le = (size_t)(lf - d);
    /* Request line: method, spaces, target, spaces, HTTP/x.y, spaces, [CR] LF. */
    for (q = p; q < le && ((d[q] >= 'A' && d[q] <= 'Z') || d[q] == '_' || d[q] == '-'); q++)
        ;
    if (q == p || d[q] != ' ')
        return http_refuse(u, le + 1, 400, "invalid method");
    h.head = q - p == 4 && memcmp(d + p, "HEAD", 4) == 0;
    while (q < le && d[q] == ' ')
        q++;
    if (q == le || (d[q] != '/' && !((d[q] | 0x20) >= 'a' && (d[q] | 0x20) <= 'z')))
        return http_refuse(u, le + 1, 400, "invalid request target");
    h.target = d + q;
    for (; q < le && d[q] != ' ' && d[q] != '\r'; q++)
        if ((uint8_t)d[q] < 0x20 || d[q] == 0x7f)
            return http_refuse(u, le + 1, 400, "control byte in the target");
    h.target_len = (size_t)(d + q - h.target);
    if (q == le || d[q] == '\r')
        return unit_bad(u, le + 1, "close", "nginx takes an HTTP/0.9 request: an answer without "
                        "status line, then a close");
    while (q < le && d[q] == ' ')
        q++;
    if (le - q < 6 || memcmp(d + q, "HTTP/", 5) != 0 || d[q + 5] < '1' || d[q + 5] > '9')
        return http_refuse(u, le + 1, 400, "invalid version");
    for (q += 5; q < le && d[q] >= '0' && d[q] <= '9' && major < 100; q++)
        major = major * 10 + (d[q] - '0');
    if (q == le || d[q] != '.' || major > 99 || q + 1 == le || d[q + 1] < '0' || d[q + 1] > '9')
        return http_refuse(u, le + 1, 400, "invalid version");
    for (q++; q < le && d[q] >= '0' && d[q] <= '9' && minor < 1000; q++)
        minor = minor * 10 + (d[q] - '0');
    while (q < le && d[q] == ' ')
        q++;
    if (minor > 999 || !(q == le || (d[q] == '\r' && q + 1 == le)))
        return http_refuse(u, le + 1, 400, "invalid request line end");
    if (major > 1)
        return http_refuse(u, le + 1, 505, "version not supported");
    bool v11 = major == 1 && minor >= 1;
    /* Header lines. */
    for (p = le + 1;;) {
        if (p >= n)
            return MODEL_MORE;
        if (d[p] == '\n' || d[p] == '\r') {
            if (d[p] == '\r' && p + 1 >= n)
                return MODEL_MORE;
            if (d[p] == '\r' && d[p + 1] != '\n')
                return http_refuse(u, p + 2, 400, "bare CR ends the head");
            p += d[p] == '\r' ? 2 : 1;
            break;
        }
        lf = memchr(d + p, '\n', n - p);
        if (lf == NULL)
            return n - p > HTTP_LINE_MAX ? http_refuse(u, n, 400, "header line too long") : MODEL_MORE;
        le = (size_t)(lf - d);
        if ((uint8_t)d[p] <= 0x20 || d[p] == 0x7f || d[p] == ':')
            return http_refuse(u, le + 1, 400, "invalid header line start");
        size_t ls = p;
        bool invalid = false;
        size_t name_end = 0, vs = 0, ve = 0;
        for (q = p; q < le; q++) {
            char ch = d[q];
            if (nginx_name_char(ch))
                continue;
            if (ch == ':' || ch == '\r')
                break;
            if (ch == '_' || (uint8_t)ch > 0x20) {
                if (ch != 0x7f) {
                    invalid = true;
                    continue;
                }
            }
            return http_refuse(u, le + 1, 400, "invalid byte in a header name");
        }
        name_end = q;
        if (q < le && d[q] == ':') {
            for (q++; q < le && d[q] == ' '; q++)
                ;
            vs = ve = q;
            for (; q < le && d[q] != '\r'; q++) {
                if (d[q] == '\0')
                    return http_refuse(u, le + 1, 400, "NUL in a header value");
                if (d[q] != ' ')
                    ve = q + 1;
            }
        } else {
            vs = ve = q;
        }
        /* Only CRs may come between the value and the LF. */
        for (; q < le; q++)
            if (d[q] != '\r')
                return http_refuse(u, le + 1, 400, "bare CR in a header line");
        p = le + 1;
        if (invalid)
            continue;           /* ignored, as ignore_invalid_headers does */
        /* The header is [ls, name_end): [vs, ve). */
        for (int k = 0; unique[k] != NULL; k++) {
            size_t ul = strlen(unique[k]);
            if (name_end - ls == ul && contains_case(d + ls, ul, unique[k])) {
                if (++count[k] > 1)
                    return http_refuse(u, p, 400, "duplicate header");
                if (k == 0) {
                    cl = d + vs;
                    cl_len = ve - vs;
                } else if (k == 1) {
                    te = d + vs;
                    te_len = ve - vs;
                }
            }
        }
        if (name_end - ls == 10 && contains_case(d + ls, 10, "connection")) {
            /* ngx_http_process_connection(): the last one counts. */
            close_seen = contains_case(d + vs, ve - vs, "close");
            keepalive_seen = !close_seen && contains_case(d + vs, ve - vs, "keep-alive");
        }
        if (name_end - ls == 6 && contains_case(d + ls, 6, "expect") && ve - vs == 12 &&
            contains_case(d + vs, 12, "100-continue"))
            expect = true;
    }
    /* ngx_http_process_request_header() */
    if (v11 && count[8] == 0)
        return http_refuse(u, p, 400, "HTTP/1.1 request without Host");
    int64_t len = 0;
    if (cl != NULL) {
        if (cl_len == 0)
            return http_refuse(u, p, 400, "invalid Content-Length");
        for (size_t i = 0; i < cl_len; i++) {
            if (cl[i] < '0' || cl[i] > '9' || len > (INT64_MAX - 9) / 10)
                return http_refuse(u, p, 400, "invalid Content-Length");
            len = len * 10 + (cl[i] - '0');
        }
    }
    bool chunked = false;
    if (te != NULL) {
        if (!v11)
            return http_refuse(u, p, 400, "HTTP/1.0 request with Transfer-Encoding");
        if (!(te_len == 7 && contains_case(te, 7, "chunked")))
            return http_refuse(u, p, 501, "unknown Transfer-Encoding");
        if (cl != NULL)
            return http_refuse(u, p, 400, "Content-Length and Transfer-Encoding");
        chunked = true;
    }
    h.close = v11 ? close_seen : !keepalive_seen;
    h.interim = expect && v11 && (chunked || len > 0);
    size_t end;
    if (chunked) {
        int rc = nginx_chunked(d, n, p, &end);
        if (rc < 0)
            return http_refuse(u, n, 400, "invalid chunked body");
        if (rc == 0)
            return MODEL_MORE;
    } else {
        if (len > HTTP_BODY_MAX || (uint64_t)len > n - p)
            return MODEL_MORE;
        end = p + (size_t)len;
    }
    return http_answer(run, d, end, &h, u, reply);
}

/* Python's str.isspace() on a Latin-1 byte. */
static bool py_space(char c)
{
    uint8_t b = (uint8_t)c;

    return b == ' ' || (b >= '\t' && b <= '\r') || (b >= 0x1c && b <= 0x1f) || b == 0x85 || b == 0xa0;
}

/* Python's int(s, base) (10 or 16): surrounding whitespace, a sign, "0x"
 * for base 16, digits with single underscores between them. */
static bool py_int(const char *s, size_t n, int base, int64_t *out)
{
    size_t i = 0, e = n;
    bool neg = false, digit = false;
    int64_t v = 0;

    while (i < e && py_space(s[i]))
        i++;
    while (e > i && py_space(s[e - 1]))
        e--;
    if (i < e && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (base == 16 && e - i >= 2 && s[i] == '0' && (s[i + 1] | 0x20) == 'x')
        i += 2;
    for (; i < e; i++) {
        int x = s[i] == '_' ? -2 : base == 16 ? hex_value(s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
        if (x == -2) {
            if (!digit || i + 1 == e || s[i + 1] == '_')
                return false;
            continue;
        }
        if (x < 0)
            return false;
        digit = true;
        if (v < HTTP_BODY_MAX)
            v = v * base + x;
    }
    if (!digit)
        return false;
    *out = neg ? -v : v;
    return true;
}

/* The lenient model: what Python's http.server and other forgiving
 * servers do, all at once. The head ends at the first line that is empty
 * ("\r\n" or "\n"), but its headers are read as the email package does:
 * lines split at LF, CRLF and bare CR, folded lines joined, and the first
 * line that is empty or not a header ends them. Transfer-Encoding whose
 * value contains "chunked" (chunk lines read loosely) wins over
 * Content-Length; of several Content-Length the first counts ([2] bit 2:
 * the last), read like Python's int(). */
static int model_http_lenient(struct run *run, const char *d, size_t n, struct unit *u, struct bytes *reply)
{
    struct http_req h;
    size_t p = 0, le, hs, he, nlines = 0;
    const char *w[4];
    size_t wl[4], nw = 0;
    int64_t len = 0;

    memset(&h, 0, sizeof h);
    while (p < n && (d[p] == '\r' || d[p] == '\n'))
        p++;
    if (p == n)
        return MODEL_MORE;
    const char *lf = memchr(d + p, '\n', n - p);
    if (lf == NULL)
        return n - p > HTTP_LENIENT_LINE_MAX ? http_refuse(u, n, 414, "request line too long") : MODEL_MORE;
    le = (size_t)(lf - d);
    /* The request line, trailing CRs and LFs stripped, split at whitespace. */
    size_t e = le;
    while (e > p && (d[e - 1] == '\r' || d[e - 1] == '\n'))
        e--;
    for (size_t q = p; q < e;) {
        while (q < e && py_space(d[q]))
            q++;
        if (q == e)
            break;
        size_t s = q;
        while (q < e && !py_space(d[q]))
            q++;
        if (nw < 4) {
            w[nw] = d + s;
            wl[nw] = q - s;
        }
        nw++;
    }
    if (nw == 0)
        return unit_bad(u, le + 1, "close", "the lenient server closes on a blank request line");
    if (nw >= 3) {
        const char *v = w[PMX_MIN(nw, 4) - 1];
        size_t vl = wl[PMX_MIN(nw, 4) - 1], dot;
        if (nw > 4 || !has_prefix(v, vl, "HTTP/"))
            return http_refuse(u, le + 1, 400, "bad request version");
        for (dot = 5; dot < vl && v[dot] != '.'; dot++)
            ;
        bool ok = dot > 5 && dot < vl - 1 && dot - 5 <= 10 && vl - dot - 1 <= 10;
        for (size_t i = 5; ok && i < vl; i++)
            ok = i == dot || (v[i] >= '0' && v[i] <= '9');
        if (!ok)
            return http_refuse(u, le + 1, 400, "bad request version");
        int64_t major = 0, minor = 0;
        py_int(v + 5, dot - 5, 10, &major);
        py_int(v + dot + 1, vl - dot - 1, 10, &minor);
        if (major >= 2)
            return http_refuse(u, le + 1, 505, "version not supported");
        h.close = major < 1 || (major == 1 && minor < 1);   /* HTTP/1.0: unless keep-alive */
        if (nw != 3)
            return http_refuse(u, le + 1, 400, "bad request syntax");
    } else {
        return unit_bad(u, le + 1, "close", "the lenient server takes an HTTP/0.9 request");
    }
    bool v11 = !h.close;
    h.head = wl[0] == 4 && memcmp(w[0], "HEAD", 4) == 0;
    h.target = w[1];
    h.target_len = wl[1];
    /* The head: LF-ended lines up to an empty one. */
    hs = p = le + 1;
    for (;;) {
        lf = p < n ? memchr(d + p, '\n', n - p) : NULL;
        if (lf == NULL)
            return n - p > HTTP_LENIENT_LINE_MAX ? http_refuse(u, n, 400, "header line too long") : MODEL_MORE;
        le = (size_t)(lf - d);
        if (le == p || (le == p + 1 && d[p] == '\r')) {
            he = p;
            p = le + 1;
            break;
        }
        if (++nlines > 100)
            return http_refuse(u, le + 1, 431, "too many headers");
        p = le + 1;
    }
    /* Its headers, as the email package reads them. */
    const char *cl = NULL, *te = NULL, *conn = NULL, *expect = NULL;
    size_t cl_len = 0, te_len = 0, conn_len = 0, expect_len = 0;
    const char **last = NULL;
    size_t *last_len = NULL;
    for (size_t q = hs; q < he;) {
        size_t s = q;
        while (q < he && d[q] != '\r' && d[q] != '\n')
            q++;
        size_t ll = q - s;
        if (q < he)
            q += (d[q] == '\r' && q + 1 < he && d[q + 1] == '\n') ? 2 : 1;
        if (ll == 0)
            break;
        if (d[s] == ' ' || d[s] == '\t') {
            /* A folded line continues the header before it. */
            if (last != NULL && *last != NULL)
                *last_len = (size_t)(d + s + ll - *last);
            continue;
        }
        size_t c = s;
        while (c < s + ll && (uint8_t)d[c] >= 0x21 && (uint8_t)d[c] <= 0x7e && d[c] != ':')
            c++;
        if (c == s + ll || d[c] != ':')
            break;              /* not a header: the rest is ignored */
        size_t vs = c + 1;
        while (vs < s + ll && (d[vs] == ' ' || d[vs] == '\t'))
            vs++;
        const char *val = d + vs;
        size_t vlen = s + ll - vs;
        last = NULL;
        if (c - s == 14 && contains_case(d + s, 14, "content-length")) {
            if (cl == NULL || (run->h2 & 4)) {
                cl = val;
                cl_len = vlen;
                last = &cl;
                last_len = &cl_len;
            }
        } else if (c - s == 17 && contains_case(d + s, 17, "transfer-encoding")) {
            if (te == NULL) {
                te = val;
                te_len = vlen;
                last = &te;
                last_len = &te_len;
            }
        } else if (c - s == 10 && contains_case(d + s, 10, "connection")) {
            if (conn == NULL) {
                conn = val;
                conn_len = vlen;
                last = &conn;
                last_len = &conn_len;
            }
        } else if (c - s == 6 && contains_case(d + s, 6, "expect")) {
            if (expect == NULL) {
                expect = val;
                expect_len = vlen;
            }
        }
    }
    if (conn != NULL && contains_case(conn, conn_len, "close"))
        h.close = true;
    else if (conn != NULL && contains_case(conn, conn_len, "keep-alive"))
        h.close = false;
    h.interim = v11 && expect != NULL && expect_len == 12 && contains_case(expect, 12, "100-continue");
    if (te != NULL && contains_case(te, te_len, "chunked")) {
        /* Chunks: a size line (hex up to ';'), the data, one line skipped. */
        for (;;) {
            lf = p < n ? memchr(d + p, '\n', n - p) : NULL;
            if (lf == NULL)
                return n - p > HTTP_LENIENT_LINE_MAX ? http_refuse(u, n, 400, "chunk line too long") : MODEL_MORE;
            le = (size_t)(lf - d);
            const char *semi = memchr(d + p, ';', le - p);
            int64_t size;
            if (!py_int(d + p, (size_t)((semi != NULL ? semi : lf) - (d + p)), 16, &size) || size < 0)
                return http_refuse(u, le + 1, 400, "bad chunk size");
            p = le + 1;
            if (size == 0)
                break;
            if (size >= HTTP_BODY_MAX || (uint64_t)size > n - p)
                return MODEL_MORE;
            p += (size_t)size;
            lf = p < n ? memchr(d + p, '\n', n - p) : NULL;
            if (lf == NULL)
                return MODEL_MORE;
            p = (size_t)(lf - d) + 1;
        }
        for (;;) {      /* trailer lines up to an empty one */
            lf = p < n ? memchr(d + p, '\n', n - p) : NULL;
            if (lf == NULL)
                return MODEL_MORE;
            le = (size_t)(lf - d);
            bool empty = le == p || (le == p + 1 && d[p] == '\r');
            p = le + 1;
            if (empty)
                break;
        }
        return http_answer(run, d, p, &h, u, reply);
    }
    if (cl != NULL) {
        if (!py_int(cl, cl_len, 10, &len))
            return unit_bad(u, p, "close", "the lenient server fails on Content-Length '%.*s' and closes",
                            (int)PMX_MIN(cl_len, 40), cl);
        if (len < 0)
            return unit_bad(u, p, "close", "the lenient server reads a negative Content-Length up to the close");
    }
    if (len >= HTTP_BODY_MAX || (uint64_t)len > n - p)
        return MODEL_MORE;
    return http_answer(run, d, p + (size_t)len, &h, u, reply);
}

/* The model of the run's codec; conn_start: d starts its connection. */
static int model_parse(struct run *run, const char *d, size_t n, bool conn_start, struct unit *u,
                       struct bytes *reply)
{
    memset(u, 0, sizeof(*u));
    if (run->codec == &codec_resp)
        return model_resp(run, d, n, u, reply);
    if (run->codec == &codec_memcache)
        return model_memcache(run, d, n, conn_start, u, reply);
    if (run->h2 & 2)
        return model_http_lenient(run, d, n, u, reply);
    return model_http_strict(run, d, n, u, reply);
}

/* ---- adversarial mode: the clients' side ------------------------------------ */

/* Pieces of attacker input: byte 0xe0 + i stands for piece i of its
 * codec's list. Long ones are made by repeat(). */
struct piece {
    const char *text;
    char repeat;        /* text is this byte, count times */
    size_t count;
};

static const struct piece resp_pieces[32] = {
    { "\0", 0, 1 }, { "\r", 0, 0 }, { "\n", 0, 0 }, { "\r\n", 0, 0 }, { " ", 0, 0 }, { "\"", 0, 0 },
    { "'", 0, 0 }, { "\\x00", 0, 0 }, { "*1\r\n", 0, 0 }, { "*2\r\n", 0, 0 }, { "*3\r\n", 0, 0 },
    { "$5\r\n", 0, 0 }, { "$6\r\n", 0, 0 }, { "$12\r\n", 0, 0 }, { "MULTI", 0, 0 }, { "SELECT", 0, 0 },
    { "SUBSCRIBE", 0, 0 }, { "CLIENT", 0, 0 }, { "REPLY", 0, 0 }, { "OFF", 0, 0 }, { "BLPOP", 0, 0 },
    { "QUIT", 0, 0 }, { "EXEC", 0, 0 }, { "GET", 0, 0 }, { "SET", 0, 0 }, { "*0\r\n", 0, 0 },
    { "*-1\r\n", 0, 0 }, { "$-1\r\n", 0, 0 }, { "HELLO", 0, 0 }, { "a1b2c3", 0, 0 },
    { "UNSUBSCRIBE", 0, 0 }, { "WATCH", 0, 0 },
};

static const struct piece mc_pieces[32] = {
    { "\0", 0, 1 }, { "\r", 0, 0 }, { "\n", 0, 0 }, { "\r\n", 0, 0 }, { " ", 0, 0 }, { "noreply", 0, 0 },
    { "get ", 0, 0 }, { "set ", 0, 0 }, { "ms ", 0, 0 }, { "mg ", 0, 0 }, { "delete ", 0, 0 },
    { "incr ", 0, 0 }, { "cas ", 0, 0 }, { " 0 0 ", 0, 0 }, { NULL, 'k', 251 }, { NULL, 'k', 250 },
    { " 10", 0, 0 }, { " -1", 0, 0 }, { " 4294967306", 0, 0 }, { "\x80", 0, 0 }, { " q", 0, 0 },
    { " v", 0, 0 }, { NULL, 'x', 2049 }, { "quit", 0, 0 }, { "gets ", 0, 0 }, { "touch ", 0, 0 },
    { "flush_all", 0, 0 }, { " a a a a a a a a a a a a a a a a a a a a a a a a", 0, 0 }, { "mn", 0, 0 },
    { "md ", 0, 0 }, { "\t", 0, 0 }, { "get secret\r\n", 0, 0 },
};

static const struct piece http_pieces[32] = {
    { "\0", 0, 1 }, { "\r", 0, 0 }, { "\n", 0, 0 }, { "\r\n", 0, 0 }, { "\r\r\n", 0, 0 },
    { "Content-Length: ", 0, 0 }, { "Transfer-Encoding: chunked", 0, 0 },
    { "Transfer-Encoding: identity", 0, 0 }, { "Transfer-Encoding:\r\n chunked", 0, 0 },
    { "Content-Length : ", 0, 0 }, { "GET / HTTP/1.1\r\nHost: a\r\n", 0, 0 },
    { "POST / HTTP/1.1\r\nHost: a\r\n", 0, 0 }, { "Host: a\r\n", 0, 0 }, { "HTTP/1.0", 0, 0 },
    { "Connection: close", 0, 0 }, { "Expect: 100-continue", 0, 0 }, { "0\r\n\r\n", 0, 0 },
    { "5\r\n", 0, 0 }, { "\t", 0, 0 }, { "Content-Length: 0", 0, 0 },
    { "Transfer-Encoding: xchunked", 0, 0 }, { "Transfer-Encoding: chunked, identity", 0, 0 },
    { " ", 0, 0 }, { "Content-Length: +5", 0, 0 }, { "Content-Length: 1_0", 0, 0 },
    { "\r\n\r\n", 0, 0 }, { "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n", 0, 0 }, { "0x5\r\n", 0, 0 },
    { "Connection: keep-alive", 0, 0 }, { "HEAD / HTTP/1.1\r\n", 0, 0 }, { "Upgrade: h2c", 0, 0 },
    { "X: y\r\r\n", 0, 0 },
};

static const struct piece *dictionary(const struct run *run)
{
    if (run->codec == &codec_resp)
        return resp_pieces;
    if (run->codec == &codec_memcache)
        return mc_pieces;
    return http_pieces;
}

static void client_add_request(struct run *run, struct client *c, size_t len, uint32_t info, enum fate fate)
{
    char tmp[512];
    struct request *r;

    if (c->nreqs == c->reqs_cap) {
        c->reqs_cap = c->reqs_cap ? c->reqs_cap * 2 : 16;
        c->reqs = realloc(c->reqs, c->reqs_cap * sizeof(*c->reqs));
        CHECK(c->reqs != NULL, "out of memory");
    }
    r = &c->reqs[c->nreqs++];
    memset(r, 0, sizeof(*r));
    r->start = c->frame_start;
    r->len = len;
    r->hash = hash_bytes(c->out.data + r->start, len);
    r->info = info;
    r->fate = (uint8_t)fate;
    switch (fate) {
    case FATE_FORWARD:
        r->needs_reply = !(info & CODEC_INFO_NOREPLY);
        break;
    case FATE_LOCAL:
        r->needs_reply = run->codec->reply((info & CODEC_INFO_QUIT) ? CODEC_REPLY_QUIT : CODEC_REPLY_CLIENT_ERROR,
                                           "x", tmp, sizeof tmp) > 0;
        break;
    case FATE_REFUSED:
        r->needs_reply = true;
        break;
    case FATE_SKIP:
        r->needs_reply = false;
        break;
    }
    run->total_reqs++;
}

/* Frames what c wrote as mux_client_parse() does: the codec, max_message
 * (whole or announced by a head waiting for "100 Continue"), and nothing
 * read after a refusal, QUIT or a closing request. */
static void client_frame(struct run *run, struct client *c)
{
    const struct codec_ops *codec = run->codec;
    size_t max = (size_t)run->cfg->services[0].max_message;

    while (!c->frame_done && c->out.len > c->frame_start + c->frame_scanned) {
        size_t used = 0, avail = c->out.len - c->frame_start;
        int rc = codec->parse_request(&c->frame, c->out.data + c->frame_start + c->frame_scanned,
                                      avail - c->frame_scanned, &used);
        if (rc != CODEC_ERROR)
            c->frame_scanned += used;
        if (rc == CODEC_ERROR || c->frame_scanned > max || (rc == CODEC_MORE && avail > max) ||
            (rc == CODEC_MORE && (c->frame.info & CODEC_INFO_CONTINUE) &&
             c->frame_scanned + (uint64_t)c->frame.remaining > max)) {
            client_add_request(run, c, avail, 0, FATE_REFUSED);
            c->frame_done = true;
            return;
        }
        if (rc == CODEC_MORE)
            return;
        uint32_t info = c->frame.info;
        enum fate fate = (info & CODEC_INFO_SKIP) ? FATE_SKIP :
                         (info & (CODEC_INFO_QUIT | CODEC_INFO_UNSUPPORTED)) ? FATE_LOCAL : FATE_FORWARD;
        client_add_request(run, c, c->frame_scanned, info, fate);
        c->frame_start += c->frame_scanned;
        c->frame_scanned = 0;
        codec->request_begin(&c->frame);
        if (info & (CODEC_INFO_QUIT | CODEC_INFO_CLOSE))
            c->frame_done = true;
    }
}

/* A victim request, tagged c<id>r<n> (":p<pad>" asks for a big answer).
 * Forms: resp multibulk GET, inline GET with CRLF, inline with LF;
 * memcache get, mg v, set noreply; http GET, POST with Content-Length,
 * POST chunked. */
static void client_victim(struct run *run, struct client *c, int form, size_t pad)
{
    char key[48];
    struct bytes *o = &c->out;
    size_t k;

    if (pad > 0)
        k = (size_t)snprintf(key, sizeof key, "c%ur%u:p%zu", c->id, c->nvictims++, pad);
    else
        k = (size_t)snprintf(key, sizeof key, "c%ur%u", c->id, c->nvictims++);
    if (run->codec == &codec_resp) {
        if (form == 0)
            bytes_fmt(o, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", k, key);
        else
            bytes_fmt(o, "GET %s%s", key, form == 1 ? "\r\n" : "\n");
    } else if (run->codec == &codec_memcache) {
        if (form == 0)
            bytes_fmt(o, "get %s\r\n", key);
        else if (form == 1)
            bytes_fmt(o, "mg %s v\r\n", key);
        else
            bytes_fmt(o, "set %s 0 0 %zu noreply\r\n%s\r\n", key, k, key);
    } else {
        if (form == 0)
            bytes_fmt(o, "GET /%s HTTP/1.1\r\nHost: v\r\n\r\n", key);
        else if (form == 1)
            bytes_fmt(o, "POST /%s HTTP/1.1\r\nHost: v\r\nContent-Length: %zu\r\n\r\n%s", key, k, key);
        else
            bytes_fmt(o, "POST /%s HTTP/1.1\r\nHost: v\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
                      key, k, key);
    }
    client_frame(run, c);
}

/* Attacker bytes: data with the dictionary pieces expanded. A victim tag
 * they would form with what c wrote before is broken (its first new byte
 * changed), so that victims' requests stay unique. */
static void client_attack(struct run *run, struct client *c, const uint8_t *data, size_t n)
{
    const struct piece *dict = dictionary(run);
    size_t from = c->out.len;
    char chunk[256];

    for (size_t i = 0; i < n && c->out.len - from < MAX_ATTACK; i++) {
        if (data[i] < 0xe0) {
            bytes_add(&c->out, &data[i], 1);
            continue;
        }
        const struct piece *pc = &dict[data[i] - 0xe0];
        if (pc->text != NULL) {
            bytes_add(&c->out, pc->text, pc->count ? pc->count : strlen(pc->text));
            continue;
        }
        memset(chunk, pc->repeat, sizeof chunk);
        for (size_t left = pc->count; left > 0;) {
            size_t m = PMX_MIN(left, sizeof chunk);
            bytes_add(&c->out, chunk, m);
            left -= m;
        }
    }
    for (size_t i = from > 16 ? from - 16 : 0; i < c->out.len; i++) {
        unsigned id;
        if (!tag_at(c->out.data, c->out.len, i, &id))
            continue;
        size_t j = i + 1;
        while (c->out.data[j] >= '0' && c->out.data[j] <= '9')
            j++;
        if (j + 2 <= from)
            continue;           /* a tag of its own victim request */
        char *ch = &c->out.data[PMX_MAX(i, from)];
        *ch = *ch == 'c' ? 'k' : *ch == 'r' ? 'R' : 'x';
    }
    client_frame(run, c);
}

/* Marks c's requests whose last byte is now written, with the counts the
 * fairness check compares against. Fairness is only measured for a
 * request sent when every earlier one of its client has run and been
 * answered: else the exchange may rightly not read it yet (the client
 * pipelines or does not read), and others go first. */
static void client_mark_written(struct run *run, struct client *c)
{
    while (c->nwritten < c->nreqs) {
        size_t k = c->nwritten;
        struct request *r = &c->reqs[k];
        if (r->start + r->len > c->out_done)
            break;
        c->unanswered = PMX_MAX(c->unanswered, c->next_reply);
        while (c->unanswered < k && !c->reqs[c->unanswered].needs_reply)
            c->unanswered++;
        r->written = true;
        r->fair = c->unanswered >= k && c->nexec == c->nforward;
        r->exec_at_write = run->nexec;
        r->own_at_write = c->nexec;
        for (int i = 0; i < MAX_UPSTREAMS; i++) {
            r->up_exec_at_write[i] = run->ups[i].nexec;
            r->up_gen_at_write[i] = run->ups[i].gen;
        }
        if (r->fate == FATE_FORWARD) {
            c->nforward++;
            if (c->min_len == 0 || r->len < c->min_len)
                c->min_len = r->len;
        }
        c->nwritten++;
    }
}

/* The model's answer to r alone (in run->model_reply), if it takes r as
 * exactly one command it runs. */
static bool model_expect(struct run *run, const struct client *c, const struct request *r)
{
    struct unit u;

    run->model_reply.len = 0;
    int rc = model_parse(run, c->out.data + r->start, r->len, false, &u, &run->model_reply);
    return rc == MODEL_UNIT && u.len == r->len && u.bad == NULL;
}

/* An error reply made by the exchange (codec->reply()), not by the model. */
static bool proximux_error(const struct run *run, const char *a, size_t n)
{
    if (run->codec == &codec_resp)
        return has_prefix(a, n, "-ERR proximux: ");
    if (run->codec == &codec_memcache)
        return has_prefix(a, n, "SERVER_ERROR proximux: ") ||
               (has_prefix(a, n, "CLIENT_ERROR ") && !has_prefix(a, n, "CLIENT_ERROR model: "));
    if (n < 12 || !has_prefix(a, n, "HTTP/1.1 ") || (a[9] != '4' && a[9] != '5'))
        return false;
    const char *body = memmem(a, n, "\r\n\r\n", 4);
    return body != NULL && has_prefix(body + 4, n - (size_t)(body + 4 - a), "proximux: ");
}

/* HTTP: the interim "100 Continue" answers (the exchange's or the
 * model's) before a response. */
static void skip_interim(const struct run *run, const char **a, size_t *n)
{
    size_t k = sizeof(http_continue) - 1;

    while (run->codec == &codec_http && *n >= k && memcmp(*a, http_continue, k) == 0) {
        *a += k;
        *n -= k;
    }
}

/* Names the client whose tag an answer carries, if another than c. */
static const char *whose(const struct client *c, const char *a, size_t n, char *buf, size_t cap)
{
    unsigned id;

    for (size_t i = 0; i < n; i++) {
        if (tag_at(a, n, i, &id) && id != c->id) {
            snprintf(buf, cap, " (it carries client %u's tag)", id);
            return buf;
        }
    }
    return "";
}

/* Checks the answer a[0..n) that c received for its request j. */
static void client_check_answer(struct run *run, struct client *c, size_t j, const char *a, size_t n)
{
    struct request *r = &c->reqs[j];
    char qr[400], qa[400], qe[400], w[64];
    const char *an = a;
    size_t ann = n;

    if (trace)
        fprintf(stderr, "harness: client %u got for its request %zu: %s\n", c->id, j, esc(a, n, qa, sizeof qa));
    if (r->fate != FATE_REFUSED && !r->written)
        VIOLATION(run, "delivery", "client %u got an answer (%s) to its request %zu (%s) before sending all of it",
                  c->id, esc(a, n, qa, sizeof qa), j, esc(c->out.data + r->start, r->len, qr, sizeof qr));
    skip_interim(run, &an, &ann);
    if (proximux_error(run, an, ann))
        return;
    if (r->fate == FATE_LOCAL && (r->info & CODEC_INFO_QUIT) && ann == 5 && memcmp(an, "+OK\r\n", 5) == 0)
        return;
    bool expected = r->fate == FATE_FORWARD && model_expect(run, c, r);
    if (expected) {
        const char *e = run->model_reply.data;
        size_t en = run->model_reply.len;
        skip_interim(run, &e, &en);
        if (en == ann && memcmp(e, an, en) == 0)
            return;
    }
    VIOLATION(run, "delivery", "client %u got, for its request %zu (%s), the answer %s%s; expected %s",
              c->id, j, esc(c->out.data + r->start, r->len, qr, sizeof qr), esc(a, n, qa, sizeof qa),
              whose(c, a, n, w, sizeof w),
              expected ? esc(run->model_reply.data, run->model_reply.len, qe, sizeof qe) :
              "an error of the exchange");
}

/* Splits what c received into answers, each parsed as the codec parses the
 * response to the request it is for, and checks them in order. */
static void client_check_answers(struct run *run, struct client *c)
{
    char q[400];

    while (!run->tainted && c->in.len > 0) {
        size_t j = c->next_reply;
        while (j < c->nreqs && !c->reqs[j].needs_reply)
            j++;
        if (j >= c->nreqs) {
            VIOLATION(run, "delivery", "client %u received %s, but no request of its waits for an answer",
                      c->id, esc(c->in.data, c->in.len, q, sizeof q));
            return;
        }
        if (!c->reply_parsing) {
            run->codec->response_begin(&c->reply, c->reqs[j].info);
            c->reply_parsing = true;
            c->reply_scanned = 0;
        }
        size_t used = 0;
        int rc = run->codec->parse_response(&c->reply, c->in.data + c->reply_scanned,
                                            c->in.len - c->reply_scanned, &used);
        if (rc == CODEC_ERROR) {
            VIOLATION(run, "delivery", "client %u received what is no answer (%s): %s", c->id,
                      c->reply.error ? c->reply.error : "?", esc(c->in.data, c->in.len, q, sizeof q));
            return;
        }
        c->reply_scanned += used;
        if (rc == CODEC_MORE && !(c->reply.until_close && c->eof))
            return;
        client_check_answer(run, c, j, c->in.data, c->reply_scanned);
        bytes_drop(&c->in, c->reply_scanned);
        c->reply_parsing = false;
        c->reply_scanned = 0;
        c->next_reply = j + 1;
    }
}

/* ---- adversarial mode: the upstream's side ------------------------------------ */

static bool req_is(const struct client *c, const struct request *r, const char *x, size_t n, uint64_t h)
{
    return r->len == n && r->hash == h && memcmp(c->out.data + r->start, x, n) == 0;
}

/* The next request of c after request `after` that the exchange forwards,
 * all written, or -1. */
static long next_forward(const struct client *c, long after)
{
    for (size_t k = (size_t)(after + 1); k < c->nreqs; k++) {
        if (!c->reqs[k].written)
            return -1;
        if (c->reqs[k].fate == FATE_FORWARD)
            return (long)k;
    }
    return -1;
}

static const char *req_text(const struct client *c, size_t k, char *buf, size_t cap)
{
    return esc(c->out.data + c->reqs[k].start, c->reqs[k].len, buf, cap);
}

/* Why no request of any client is x[0..n), the command the model ran. */
static void attribute_failed(struct run *run, const char *x, size_t n)
{
    const struct hyp *h = &run->hyps[0];
    const char *note = run->hyps_truncated ? " (some attributions of identical requests were dropped)" : "";
    char q1[400], q2[400];

    for (unsigned ci = 0; ci < run->nclients_total; ci++) {
        const struct client *c = &run->clients[ci];
        long k = next_forward(c, h->last[ci]);
        if (k < 0)
            continue;
        const struct request *r = &c->reqs[k];
        if (r->len > n && memcmp(c->out.data + r->start, x, n) == 0) {
            VIOLATION(run, "framing", "the model server takes the first %zu bytes of client %u's request %ld (%s) "
                      "as a whole command; the rest runs as another one%s", n, c->id, k, req_text(c, (size_t)k, q1, sizeof q1), note);
            return;
        }
        if (r->len < n && memcmp(c->out.data + r->start, x, r->len) == 0) {
            VIOLATION(run, "framing", "the model server takes client %u's request %ld (%s) and the %zu bytes "
                      "after it (%s) as one command%s", c->id, k, req_text(c, (size_t)k, q1, sizeof q1),
                      n - r->len, esc(x + r->len, n - r->len, q2, sizeof q2), note);
            return;
        }
    }
    uint64_t hx = hash_bytes(x, n);
    for (unsigned ci = 0; ci < run->nclients_total; ci++) {
        const struct client *c = &run->clients[ci];
        for (long k = 0; k <= h->last[ci]; k++) {
            if (c->reqs[k].fate == FATE_FORWARD && req_is(c, &c->reqs[k], x, n, hx)) {
                VIOLATION(run, "order", "client %u's request %ld (%s) runs after its request %d%s", c->id, k,
                          req_text(c, (size_t)k, q1, sizeof q1), h->last[ci], note);
                return;
            }
        }
    }
    VIOLATION(run, "framing", "the model server ran a command that is no request of any client: %s%s",
              esc(x, n, q1, sizeof q1), note);
}

static void hyp_add(struct run *run, struct hyp *next, int *nn, const struct hyp *h)
{
    for (int i = 0; i < *nn; i++)
        if (memcmp(&next[i], h, sizeof(*h)) == 0)
            return;
    if (*nn == MAX_HYPS) {
        run->hyps_truncated = true;
        return;
    }
    next[(*nn)++] = *h;
}

/* Finds which client's request the command x[0..n) is, keeping every
 * attribution that keeps each client's requests in order: its next
 * forwarded request, or (a connection that failed lost some) a later one.
 * Sets *ci, *k from the first; *unique when there was no choice. */
static bool attribute(struct run *run, const char *x, size_t n, unsigned *ci, long *k, bool *unique)
{
    static struct hyp next[MAX_HYPS];
    uint64_t hx = hash_bytes(x, n);
    int nn = 0;

    *unique = true;
    for (int pass = 0; pass < 2 && nn == 0; pass++) {
        for (int i = 0; i < run->nhyps; i++) {
            for (unsigned c = 0; c < run->nclients_total; c++) {
                const struct client *cl = &run->clients[c];
                long f = next_forward(cl, run->hyps[i].last[c]);
                while (f >= 0 && !req_is(cl, &cl->reqs[f], x, n, hx))
                    f = pass == 0 ? -1 : next_forward(cl, f);
                if (f < 0)
                    continue;
                struct hyp h = run->hyps[i];
                h.last[c] = (int16_t)f;
                if (nn == 0) {
                    *ci = c;
                    *k = f;
                } else if (*ci != c || *k != f) {
                    *unique = false;
                }
                hyp_add(run, next, &nn, &h);
            }
        }
    }
    if (nn == 0) {
        attribute_failed(run, x, n);
        return false;
    }
    memcpy(run->hyps, next, (size_t)nn * sizeof(*next));
    run->nhyps = nn;
    return true;
}

/* The model waits for more at x[0..n): wrong if a whole request the
 * exchange framed is already there. */
static void check_waiting(struct run *run, const char *x, size_t n)
{
    char q[400];

    for (int i = 0; i < run->nhyps; i++) {
        for (unsigned ci = 0; ci < run->nclients_total; ci++) {
            const struct client *c = &run->clients[ci];
            long k = next_forward(c, run->hyps[i].last[ci]);
            if (k < 0 || c->reqs[k].len > n || memcmp(c->out.data + c->reqs[k].start, x, c->reqs[k].len) != 0)
                continue;
            VIOLATION(run, "framing", "client %u's request %ld (%s) is all in, but the model server waits for "
                      "more: it would leave it unanswered, or take what follows as part of it",
                      c->id, k, req_text(c, (size_t)k, q, sizeof q));
            return;
        }
    }
}

/* A command the model ran which the server would answer badly: says whose
 * request it was part of. */
static void unit_violation(struct run *run, const struct unit *un, const char *x, size_t n)
{
    const struct hyp *h = &run->hyps[0];
    char q[400], who[480] = "";

    for (unsigned ci = 0; ci < run->nclients_total && who[0] == '\0'; ci++) {
        const struct client *c = &run->clients[ci];
        long k = next_forward(c, h->last[ci]);
        if (k >= 0 && memcmp(c->out.data + c->reqs[k].start, x, PMX_MIN(n, c->reqs[k].len)) == 0)
            snprintf(who, sizeof who, " (client %u's request %ld: %s)", c->id, k, req_text(c, (size_t)k, q, sizeof q));
    }
    if (who[0] == '\0')
        snprintf(who, sizeof who, " (bytes %s)", esc(x, n, q, sizeof q));
    VIOLATION(run, un->bad, "%s%s", un->why, who);
}

/* Between r being written and it running on u: at most this many requests
 * of each other client that ran meanwhile (see the top comment). */
static void check_fairness(struct run *run, const struct fake_upstream *u, const struct client *c, const struct request *r,
                           size_t k)
{
    size_t ui = (size_t)(u - run->ups);
    uint32_t on_conn = u->gen == r->up_gen_at_write[ui] ? u->nexec - r->up_exec_at_write[ui] : u->nexec;
    uint32_t own = c->nexec - r->own_at_write;
    uint32_t others = on_conn > own ? on_conn - own : 0;
    uint64_t bound = 0;

    for (unsigned i = 0; i < run->nclients_total; i++) {
        const struct client *d = &run->clients[i];
        if (d != c && d->last_exec > r->exec_at_write)
            bound += MUX_CLIENT_PIPELINE + 2 * (2 * (uint64_t)run->client_sndbuf / PMX_MAX(d->min_len, 1)) + 1;
    }
    if (others > bound)
        VIOLATION(run, "fairness", "client %u's request %zu waited on its connection for %u requests of other "
                  "clients, over the bound of %llu", c->id, k, others, (unsigned long long)bound);
}

/* Runs the model over what u received: each command must be one request
 * the exchange framed, answered as the codec expects. */
static void fake_upstream_model(struct run *run, struct fake_upstream *u)
{
    size_t pos = 0;
    char q[400], qa[400];

    /* A model that half-closed runs nothing more: the exchange saw the end
     * of its replies and failed what was in flight ("may have run"), and a
     * command run now could only run after the client's later ones, on
     * another connection. Real servers stop there too. */
    while (!run->tainted && !u->model_closed && !u->shut_wr && pos < u->in.len) {
        struct unit un;
        const char *x = u->in.data + pos;
        size_t n = u->in.len - pos;
        unsigned ci;
        long k;
        bool unique;

        run->model_reply.len = 0;
        if (model_parse(run, x, n, u->taken + pos == 0, &un, &run->model_reply) == MODEL_MORE) {
            check_waiting(run, x, n);
            break;
        }
        un.len = PMX_MIN(PMX_MAX(un.len, 1), n);
        if (un.bad != NULL) {
            unit_violation(run, &un, x, un.len);
            return;
        }
        if (!attribute(run, x, un.len, &ci, &k, &unique))
            return;
        struct client *c = &run->clients[ci];
        struct request *r = &c->reqs[k];
        if (trace)
            fprintf(stderr, "harness: upstream fd %d runs client %u's request %ld: %s\n", u->fd, c->id, k,
                    esc(x, un.len, q, sizeof q));
        if (r->info & CODEC_INFO_NOREPLY) {
            if (run->model_reply.len > 0)
                VIOLATION(run, "replies", "the model server answers %s to client %u's request %ld (%s), "
                          "which the codec says gets no answer", esc(run->model_reply.data, run->model_reply.len,
                          qa, sizeof qa), c->id, k, req_text(c, (size_t)k, q, sizeof q));
        } else {
            struct codec_parser p;
            size_t used = 0;
            run->codec->response_begin(&p, r->info);
            int rc = run->codec->parse_response(&p, run->model_reply.data, run->model_reply.len, &used);
            if (rc != CODEC_DONE || used != run->model_reply.len || p.until_close)
                VIOLATION(run, "replies", "the model server answers client %u's request %ld (%s) with %s, "
                          "which is not the one response the codec expects", c->id, k,
                          req_text(c, (size_t)k, q, sizeof q),
                          run->model_reply.len ? esc(run->model_reply.data, run->model_reply.len, qa, sizeof qa) :
                          "nothing");
        }
        if (run->codec == &codec_http && u->out.len > 0)
            VIOLATION(run, "pipeline", "client %u's request %ld (%s) reached an upstream connection that still "
                      "owes %zu bytes of the response before it", c->id, k, req_text(c, (size_t)k, q, sizeof q),
                      u->out.len);
        if (un.culls && u->out.len > 0)
            VIOLATION(run, "replies", "memcached drops the %zu bytes of replies it has not sent on the connection "
                      "when it runs client %u's request %ld (%s)", u->out.len, c->id, k,
                      req_text(c, (size_t)k, q, sizeof q));
        if (unique && r->fair && !run->tainted)
            check_fairness(run, u, c, r, (size_t)k);
        c->nexec++;
        run->nexec++;
        c->last_exec = run->nexec;
        u->nexec++;
        bytes_add(&u->out, run->model_reply.data, run->model_reply.len);
        if (un.close_after)
            u->model_closed = true;     /* the exchange retires it: its response says so */
        pos += un.len;
    }
    u->taken += pos;
    bytes_drop(&u->in, pos);
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
    if (c->received == 0 && !run->ordered && !run->adversarial)
        CHECK(client_may_receive(run, c), "client %u received %zu bytes before sending a request "
              "(sent %zu bytes)", c->id, n, c->out_done);
    c->received += n;
    run->progress += n;
    if (run->adversarial) {
        bytes_add(&c->in, data, n);
        client_check_answers(run, c);
        return;
    }
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
    if (run->adversarial)
        client_mark_written(run, c);
    while (c->reading && !c->eof) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            client_receive(run, c, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            c->eof = true;
            run->progress++;
            if (run->adversarial)
                client_check_answers(run, c);   /* an answer that ends at the close */
        }
        break;
    }
}

static void fake_upstream_close(struct fake_upstream *u)
{
    if (u->open)
        close_reset(u->fd);
    u->open = false;
    bytes_free(&u->in);
    bytes_free(&u->out);
}

/* Ordered mode: one request line forwarded by the exchange. */
static void fake_upstream_line(struct run *run, struct fake_upstream *u, const char *line, size_t n)
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
    struct client *c = id >= 1 && id <= run->nclients_total ? &run->clients[id - 1] : NULL;
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

static void fake_upstream_service(struct run *run, struct fake_upstream *u)
{
    char buf[16384];

    while (u->open && !u->stalled) {
        ssize_t n = recv(u->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            run->progress += (uint64_t)n;
            if (run->adversarial) {
                if (!u->model_closed)
                    bytes_add(&u->in, buf, (size_t)n);
                fake_upstream_model(run, u);
                continue;
            }
            if (!run->ordered)
                continue;
            bytes_add(&u->in, buf, (size_t)n);
            size_t start = 0;
            for (;;) {
                char *nl = memchr(u->in.data + start, '\n', u->in.len - start);
                if (nl == NULL)
                    break;
                fake_upstream_line(run, u, u->in.data + start, (size_t)(nl - (u->in.data + start)));
                start = (size_t)(nl - u->in.data) + 1;
            }
            bytes_drop(&u->in, start);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            if (trace)
                fprintf(stderr, "harness: upstream fd %d closed by the exchange\n", u->fd);
            fake_upstream_close(u);      /* the exchange closed it: done */
        }
        break;
    }
}

static void fake_upstream_write(struct fake_upstream *u, const char *data, size_t n)
{
    if (!u->open || u->shut_wr || n == 0)
        return;
    /* Loopback buffers are big enough for what one input can write. */
    (void)send(u->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Ordered and adversarial modes: writes up to n bytes of the answers owed. */
static void fake_upstream_answer(struct fake_upstream *u, size_t n)
{
    char q[200];

    if (!u->open || u->shut_wr)
        return;
    n = PMX_MIN(n, u->out.len);
    if (n == 0)
        return;
    ssize_t w = send(u->fd, u->out.data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (trace)
        fprintf(stderr, "harness: upstream fd %d answers %zd bytes: %s\n", u->fd, w,
                esc(u->out.data, (size_t)PMX_MAX(w, 0), q, sizeof q));
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
        struct fake_upstream *u = NULL;
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
        u->gen = ++run->upgen;
        if (trace)
            fprintf(stderr, "harness: upstream fd %d accepted\n", fd);
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (run->slot[i] >= 0)
            client_service(run, &run->clients[run->slot[i]]);
    /* Reversed ([2] bit 3), one connection's commands run before those
     * another connection received at the same time. */
    for (int i = 0; i < MAX_UPSTREAMS; i++)
        fake_upstream_service(run, &run->ups[(run->h2 & 8) ? MAX_UPSTREAMS - 1 - i : i]);
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

static struct fake_upstream *pick_upstream(struct run *run, uint8_t a)
{
    int open[MAX_UPSTREAMS], n = 0;

    for (int i = 0; i < MAX_UPSTREAMS; i++)
        if (run->ups[i].open)
            open[n++] = i;
    return n ? &run->ups[open[a % n]] : NULL;
}

/* The client in slot k, connected first if the slot is free or its client
 * is gone. NULL while the exchange is not ready to accept. The clients of
 * a run are never reused: requests of one gone may still run upstream. */
static struct client *get_client(struct run *run, int k, bool connect)
{
    struct client *c = run->slot[k] >= 0 ? &run->clients[run->slot[k]] : NULL;
    int sv[2];

    if (c != NULL && (c->open || !connect))
        return c->open ? c : NULL;
    if (!connect || !run->x.ready || run->x.shutting_down || run->nclients_total >= MAX_CLIENTS_TOTAL)
        return NULL;
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
    run->slot[k] = (int)run->nclients_total;
    c = &run->clients[run->nclients_total++];
    c->used = c->open = c->reading = true;
    c->fd = sv[0];
    c->id = run->nclients_total;
    c->last_forwarded = -1;
    /* Small socket buffers, so that back-pressure and output_limit are met
     * with the few bytes an input holds. */
    int small = 4096;
    (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    (void)setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    if (run->adversarial) {
        /* What one read of the exchange may take of a client is bounded by
         * this (the fairness bound). */
        int sndbuf = CLIENT_SNDBUF;
        socklen_t sl = sizeof(sndbuf);
        (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        CHECK(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) == 0, "getsockopt");
        run->client_sndbuf = PMX_MAX(run->client_sndbuf, sndbuf);
        run->codec->request_begin(&c->frame);
    }
    run->x.ops->accept(&run->x, sv[1], "fuzz", NULL, 0);
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

/* Adversarial mode, op 0: client c sends. a&0x80: attacker bytes, their
 * length in the next byte (a&0x40: the next two), then the bytes. Else
 * victim requests of form (a>>4)&3 (3: form 0, the last padded by the
 * next byte x 32 bytes of answer), 1 + ((a>>2)&3) of them, or with a&0x40
 * 16 x (the next byte + 1) of them: a client that pipelines. */
static void client_send_adversarial(struct run *run, struct client *c, uint8_t a, const uint8_t **p,
                                    const uint8_t *end)
{
    size_t n, count, pad = 0;
    int form = (a >> 4) & 3;

    if (a & 0x80) {
        n = *p < end ? *(*p)++ : 0;
        if ((a & 0x40) && *p < end)
            n = n * 256 + *(*p)++;
        const uint8_t *d = take(p, end, &n);
        if (c->out.len < MAX_CLIENT_BYTES && run->total_reqs < MAX_REQUESTS)
            client_attack(run, c, d, n);
        return;
    }
    count = 1 + ((a >> 2) & 3);
    if (a & 0x40)
        count = 16 * (1 + (size_t)(*p < end ? *(*p)++ : 0));
    if (form == 3)
        pad = *p < end ? *(*p)++ : 0;
    for (size_t i = 0; i < count && run->total_reqs < MAX_REQUESTS && c->out.len < MAX_CLIENT_BYTES; i++)
        client_victim(run, c, form == 3 ? 0 : form, i == count - 1 ? pad : 0);
}

static void run_op(struct run *run, uint8_t op, uint8_t a, const uint8_t **p, const uint8_t *end)
{
    struct client *c;
    struct fake_upstream *u;
    size_t n;
    const uint8_t *d;
    bool answers = run->ordered || run->adversarial;   /* the upstream owes answers */

    if (trace)
        fprintf(stderr, "---- op %d arg %#x (t=%llu)\n", op % 10, a, (unsigned long long)fake_ms);
    switch (op % 10) {
    case 0:     /* client a&3 sends: ordered, 1-4 requests (a&0x40: the last padded);
                 * adversarial: see client_send_adversarial(); garbage: data */
        c = get_client(run, a & 3, true);
        if (c == NULL || c->shut_wr)
            return;
        if (run->adversarial) {
            client_send_adversarial(run, c, a, p, end);
        } else if (run->ordered) {
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
    case 3:     /* upstream writes: ordered, adversarial: the next bytes of its
                 * answers (ordered a&0x80: pad all answers from now on
                 * instead); garbage: data */
        u = pick_upstream(run, a);
        n = *p < end ? *(*p)++ : 0;
        if (run->ordered && (a & 0x80)) {
            run->pad = n * 20;      /* pads the answers to come instead */
            return;
        }
        if (u == NULL)
            return;
        if (answers) {
            fake_upstream_answer(u, n >= 0xf0 ? SIZE_MAX : n + 1);
        } else {
            d = take(p, end, &n);
            fake_upstream_write(u, (const char *)d, n);
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
            fake_upstream_close(u);
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
        upstream_tick(run->x.upstream);
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
            if (answers)
                fake_upstream_answer(u, SIZE_MAX);
            else
                fake_upstream_write(u, canned_response(run->codec, a), strlen(canned_response(run->codec, a)));
        }
        return;
    case 9:     /* a new client in slot a&3 (the old one is closed) */
        c = get_client(run, a & 3, false);
        if (c != NULL)
            client_close(c);
        (void)get_client(run, a & 3, true);
        return;
    }
}

static void on_callback(struct exchange *x)
{
}

/* Adversarial mode: the first request of c owed an answer, all written,
 * that has none yet; c->nreqs if none. */
static size_t client_unanswered(const struct client *c)
{
    for (size_t j = c->next_reply; j < c->nreqs; j++)
        if (c->reqs[j].needs_reply && c->out_done >= c->reqs[j].start + c->reqs[j].len)
            return j;
    return c->nreqs;
}

/* Ordered and adversarial modes: whether every client still connected has
 * the answers to all the requests it sent. */
static bool all_answered(struct run *run, bool report)
{
    char q[400];

    for (unsigned i = 0; i < run->nclients_total; i++) {
        struct client *c = &run->clients[i];
        if (!c->used || !c->open || c->eof)
            continue;
        if (run->adversarial) {
            size_t j = client_unanswered(c);
            if (j == c->nreqs)
                continue;
            if (report)
                VIOLATION(run, "unanswered", "client %u has no answer to its request %zu (%s), with the upstream "
                          "answering everything and time past every timeout (%zu of %zu bytes written, "
                          "%zu bytes of an answer pending)", c->id, j,
                          esc(c->out.data + c->reqs[j].start, c->reqs[j].len, q, sizeof q),
                          c->out_done, c->out.len, c->in.len);
            return false;
        }
        if (c->answered < c->sent) {
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
    bool answers = run->ordered || run->adversarial;
    /* A client that pipelines thousands gets one answer per round. */
    size_t rounds = 5000 + 4 * run->total_reqs;

    for (size_t round = 0; round < rounds && idle < 30; round++) {
        for (unsigned i = 0; i < run->nclients_total; i++)
            run->clients[i].reading = true;
        for (int k = 0; k < MAX_UPSTREAMS; k++) {
            run->ups[k].stalled = false;
            if (answers)
                fake_upstream_answer(&run->ups[k], SIZE_MAX);
        }
        reactor_step(run, true);
        if (!answers || (round >= 2 && all_answered(run, false)))
            break;
        if (round % 2 == 1) {
            fake_ms += 60;
            upstream_tick(run->x.upstream);
            run->x.ops->tick(&run->x);
        }
        idle = run->progress == last_progress ? idle + 1 : 0;
        last_progress = run->progress;
    }
    if (run->ordered)
        CHECK(all_answered(run, true), "requests left unanswered with the upstream answering everything");
    else if (run->adversarial && !run->tainted)
        (void)all_answered(run, true);
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
    run.h2 = data[2];
    int codec = (data[0] >> 2) & 7;
    run.ordered = codec < 3;
    run.adversarial = (data[2] & 1) && codec >= 4 && codec <= 6;
    run.cfg = malloc(sizeof(*run.cfg));
    CHECK(run.cfg != NULL, "out of memory");
    make_config(run.cfg, data[0], data[1], run.adversarial);
    run.codec = codec_find(run.cfg->services[0].codec);
    for (int i = 0; i < MAX_CLIENTS; i++)
        run.slot[i] = -1;
    run.nhyps = 1;
    for (int i = 0; i < MAX_CLIENTS_TOTAL; i++)
        run.hyps[0].last[i] = -1;

    run.r = reactor_create(64);
    CHECK(run.r != NULL, "reactor_create");
    exchange_init(&run.x, run.r, &run.cfg->services[0]);
    run.x.upstream = upstream_create(run.r, NULL, &run.cfg->services[0], NULL);
    CHECK(run.x.upstream != NULL, "upstream_create");
    run.x.on_ready = on_callback;
    run.x.on_idle = on_callback;
    CHECK(run.x.ops->start(&run.x) == PMX_OK, "start");

    const uint8_t *p = data + 4, *end = data + size;
    while (p + 1 < end && run.iterations < MAX_ITERATIONS) {
        uint8_t op = *p++, a = *p++;
        run_op(&run, op, a, &p, end);
    }
    settle(&run);

    for (unsigned i = 0; i < run.nclients_total; i++) {
        struct client *c = &run.clients[i];
        client_close(c);
        bytes_free(&c->out);
        bytes_free(&c->in);
        free(c->ends);
        free(c->reqs);
    }
    for (int i = 0; i < MAX_UPSTREAMS; i++)
        fake_upstream_close(&run.ups[i]);
    run.x.ops->destroy(&run.x);
    upstream_destroy(run.x.upstream);
    CHECK(run.x.nclients == 0, "%zu clients left after destroy", run.x.nclients);
    reactor_destroy(run.r);
    config_free(run.cfg);
    free(run.cfg);
    bytes_free(&run.model_reply);
    bytes_free(&run.body);
    bytes_free(&run.dec);
    drain_listener();
    int fds = count_fds();
    CHECK(fds == fd_baseline, "%d descriptors open after teardown, %d before", fds, fd_baseline);
    return 0;
}
