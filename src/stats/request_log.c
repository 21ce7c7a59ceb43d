/* The request log (SPEC §11): records are formatted on the reactor thread
 * into one of two bounded buffers; a writer thread of the log's own writes
 * the other one to the file. The loop never waits for the sink: a line that
 * does not fit is dropped and counted. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "request_log.h"

/* Each of the two buffers holds REQUEST_LOG_BUFFER bytes (or two of the
 * longest lines max_text allows, if more): 1 MiB per log in all. While the
 * writer writes one, lines go into the other; a line that does not fit
 * there is dropped. */
#define REQUEST_LOG_BUFFER (512 * 1024)
/* Room for every field but command, escaped: service (64), client, target
 * (CONFIG_TARGET_NAME_MAX, 6 bytes each when escaped) and the numbers. */
#define REQUEST_LOG_FIELDS_MAX (8 * 1024)
/* Appended to a command cut at max_text: "...[N bytes]", N its length. */
#define REQUEST_LOG_MARKER_MAX 40
/* A line waits at most this long (ms) before the writer takes it, unless
 * REQUEST_LOG_BATCH bytes gather first. */
#define REQUEST_LOG_DELAY_MS 100
#define REQUEST_LOG_BATCH (64 * 1024)
/* How long request_log_close() lets the writer flush (ms). */
#define REQUEST_LOG_CLOSE_MS 500

struct request_log_half {
    char *data;
    size_t len;
};

struct request_log {
    char path[CONFIG_PATH_MAX];     /* for messages: the file, or "-" */
    int fd;
    bool own_fd;                    /* false for stderr */
    enum request_log_format format;
    double sample;
    size_t max_text;
    uint64_t rng;                   /* xorshift64 state: sampling */

    char *line;                     /* scratch: one formatted line (reactor thread) */
    size_t line_cap;
    char ts_text[32];               /* "2026-12-02T04:48:05" of ts_sec: formatted once a second */
    time_t ts_sec;

    /* Shared with the writer, under lock. */
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* fill has bytes, or stop */
    struct request_log_half halves[2];
    int fill;                       /* the half lines go into; the other is the writer's */
    size_t cap;                     /* bytes per half */
    bool writing;                   /* the writer holds the other half */
    bool idle;                      /* the writer waits for a first line */
    bool give_up;                   /* (atomic) closing: stop waiting for the sink */
    bool stop;
    /* Closing did not wait for a stuck writer: it frees the log when it
     * ends (orphaned), or it ended first and the closer frees it (exited). */
    bool orphaned;
    bool exited;
    uint64_t dropped;               /* lines dropped: buffer full, or the write failed */
    int write_errno;                /* last write error, reported by the reactor thread */

    /* Reactor thread: the drop count last logged, and when (s). */
    uint64_t dropped_logged;
    time_t dropped_logged_at;

    pthread_t writer;
    bool writer_started;
};

static uint64_t request_log_next_random(struct request_log *log)
{
    uint64_t x = log->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    log->rng = x;
    return x;
}

/* Writes data[0..len) whole, retrying after EINTR and partial writes;
 * returns 0 or an errno. The files Proximux opens are non-blocking, so a
 * pipe that does not drain is waited for in poll(), 100 ms at a time, and
 * given up when request_log_close() says so (ETIMEDOUT); stderr is
 * written as it is (blocking). */
static int request_log_write_all(struct request_log *log, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(log->fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return errno;
            if (__atomic_load_n(&log->give_up, __ATOMIC_ACQUIRE))
                return ETIMEDOUT;
            struct pollfd pfd = { .fd = log->fd, .events = POLLOUT };
            (void)poll(&pfd, 1, 100);
            continue;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static uint64_t request_log_count_lines(const char *data, size_t len)
{
    uint64_t n = 0;

    for (const char *p = data; (p = memchr(p, '\n', len - (size_t)(p - data))) != NULL; p++)
        n++;
    return n;
}

/* The writer thread: takes the filled half, writes it whole, hands it
 * back. One write() per buffer, so that with O_APPEND lines of other
 * writers to the same file never fall inside one of ours. */
static void request_log_free(struct request_log *log);

static void *request_log_writer(void *arg)
{
    struct request_log *log = arg;

    pthread_mutex_lock(&log->lock);
    for (;;) {
        /* Nothing buffered: sleep until the first line comes. */
        while (log->halves[log->fill].len == 0 && !log->stop) {
            log->idle = true;
            pthread_cond_wait(&log->wake, &log->lock);
            log->idle = false;
        }
        /* Then let lines gather for REQUEST_LOG_DELAY_MS, or until
         * REQUEST_LOG_BATCH bytes: one wake-up and one write() per batch
         * rather than per line (a wake-up per line cost a third of the
         * throughput of a pipelined client). */
        struct timespec deadline;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_nsec += (long)REQUEST_LOG_DELAY_MS * 1000000L;
        deadline.tv_sec += deadline.tv_nsec / 1000000000L;
        deadline.tv_nsec %= 1000000000L;
        while (log->halves[log->fill].len < REQUEST_LOG_BATCH && !log->stop &&
               pthread_cond_timedwait(&log->wake, &log->lock, &deadline) != ETIMEDOUT)
            ;
        if (log->halves[log->fill].len == 0)
            break;
        struct request_log_half *h = &log->halves[log->fill];
        log->fill ^= 1;
        log->writing = true;
        pthread_mutex_unlock(&log->lock);

        int e = request_log_write_all(log, h->data, h->len);

        pthread_mutex_lock(&log->lock);
        if (e != 0) {
            log->dropped += request_log_count_lines(h->data, h->len);
            log->write_errno = e;
        }
        h->len = 0;
        log->writing = false;
    }
    bool orphaned = log->orphaned;
    log->exited = true;
    pthread_mutex_unlock(&log->lock);
    if (orphaned)
        request_log_free(log);
    return NULL;
}

struct request_log *request_log_open(const struct request_log_config *c, char *err, size_t errlen)
{
    struct request_log *log = calloc(1, sizeof(*log));

    if (log == NULL) {
        snprintf(err, errlen, "request_log.file: out of memory");
        return NULL;
    }
    snprintf(log->path, sizeof(log->path), "%s", c->file);
    log->format = c->format;
    log->sample = c->sample;
    log->max_text = (size_t)c->max_text;
    log->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)log << 16) ^ 0x9e3779b97f4a7c15ull;
    if (log->rng == 0)
        log->rng = 1;
    log->fd = -1;
    pthread_mutex_init(&log->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&log->wake, &ca);
    pthread_condattr_destroy(&ca);

    if (strcmp(c->file, "-") == 0) {
        log->fd = STDERR_FILENO;
    } else {
        /* O_NONBLOCK: a FIFO without a reader is an error rather than a
         * hang, and a pipe that stops draining cannot hold the writer
         * past request_log_close() (see request_log_write_all). */
        log->fd = open(c->file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644);
        if (log->fd < 0) {
            snprintf(err, errlen, "request_log.file: cannot open \"%s\": %s", c->file, strerror(errno));
            goto fail;
        }
        log->own_fd = true;
    }
    /* The longest line: command escaped (6 bytes a byte at most) and the
     * marker, plus the other fields. */
    log->line_cap = log->max_text * 6 + REQUEST_LOG_MARKER_MAX + REQUEST_LOG_FIELDS_MAX;
    log->cap = REQUEST_LOG_BUFFER > 2 * log->line_cap ? REQUEST_LOG_BUFFER : 2 * log->line_cap;
    log->line = malloc(log->line_cap);
    log->halves[0].data = malloc(log->cap);
    log->halves[1].data = malloc(log->cap);
    if (log->line == NULL || log->halves[0].data == NULL || log->halves[1].data == NULL) {
        snprintf(err, errlen, "request_log.file: \"%s\": out of memory", c->file);
        goto fail;
    }
    /* The writer takes no signal: the daemon reads them from a signalfd
     * on the loop, and a thread with them unblocked would take one to its
     * default action (SIGTERM, SIGHUP: the process ends). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&log->writer, NULL, request_log_writer, log);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "request_log.file: \"%s\": cannot start its writer: %s", c->file, strerror(rc));
        goto fail;
    }
    log->writer_started = true;
    return log;
fail:
    request_log_close(log);
    return NULL;
}

bool request_log_sampled(struct request_log *log)
{
    if (log == NULL || log->sample <= 0.0)
        return false;
    if (log->sample >= 1.0)
        return true;
    /* 53 random bits as a number in [0, 1). */
    return (double)(request_log_next_random(log) >> 11) * (1.0 / 9007199254740992.0) < log->sample;
}

/* ---- formatting ---- */

struct request_log_out {
    char *p;
    char *end;
};

static void out_bytes(struct request_log_out *o, const char *s, size_t n)
{
    if ((size_t)(o->end - o->p) < n)
        n = (size_t)(o->end - o->p);
    memcpy(o->p, s, n);
    o->p += n;
}

static void out_str(struct request_log_out *o, const char *s)
{
    out_bytes(o, s, strlen(s));
}

static void out_fmt(struct request_log_out *o, const char *fmt, ...) PMX_PRINTF(2, 3);
static void out_fmt(struct request_log_out *o, const char *fmt, ...)
{
    va_list ap;
    size_t room = (size_t)(o->end - o->p);

    va_start(ap, fmt);
    int n = vsnprintf(o->p, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->p += (size_t)n < room ? (size_t)n : room;
}

/* v in decimal, by hand: printf is most of a line's cost otherwise. */
static void out_u64(struct request_log_out *o, uint64_t v)
{
    char digits[20];
    size_t n = 0;

    do {
        digits[sizeof(digits) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    out_bytes(o, digits + sizeof(digits) - n, n);
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 if there is
 * none (overlong forms, surrogates and code points past U+10FFFF are not
 * valid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;

    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* A JSON string's content: valid UTF-8 passes, " and \ and control bytes
 * are escaped, and a byte that is not part of valid UTF-8 is written as
 * \u00XX (its value as a code point). */
/* Bytes a JSON string takes as they are: printable ASCII but " and \. */
static const bool json_plain[256] = {
    [0x20 ... 0x21] = true,     /* '"' is 0x22 */
    [0x23 ... 0x5b] = true,     /* '\\' is 0x5c */
    [0x5d ... 0x7e] = true,
};

static void out_json_text(struct request_log_out *o, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char ch = u[i];
        if (json_plain[ch]) {
            size_t run = i + 1;
            while (run < n && json_plain[u[run]])
                run++;
            out_bytes(o, s + i, run - i);
            i = run;
            continue;
        }
        size_t seq = ch >= 0x80 ? utf8_seq(u + i, n - i) : 0;
        if (seq > 0) {
            out_bytes(o, s + i, seq);
            i += seq;
            continue;
        }
        switch (ch) {
        case '"': out_str(o, "\\\""); break;
        case '\\': out_str(o, "\\\\"); break;
        case '\n': out_str(o, "\\n"); break;
        case '\r': out_str(o, "\\r"); break;
        case '\t': out_str(o, "\\t"); break;
        default: out_fmt(o, "\\u%04x", ch); break;
        }
        i++;
    }
}

/* Text format: printable ASCII but " and \ passes; the rest as C escapes
 * (\r \n \t \" \\ \xNN), so a record stays on one line. */
static void out_c_text(struct request_log_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': out_str(o, "\\\""); break;
        case '\\': out_str(o, "\\\\"); break;
        case '\n': out_str(o, "\\n"); break;
        case '\r': out_str(o, "\\r"); break;
        case '\t': out_str(o, "\\t"); break;
        default:
            if (ch < 0x20 || ch >= 0x7f)
                out_fmt(o, "\\x%02x", ch);
            else
                out_bytes(o, s + i, 1);
        }
    }
}

static void out_text(struct request_log_out *o, enum request_log_format f, const char *s, size_t n)
{
    if (f == REQUEST_LOG_JSON)
        out_json_text(o, s, n);
    else
        out_c_text(o, s, n);
}

/* The command, cut at max_text bytes (not inside a UTF-8 sequence), then
 * the marker "...[N bytes]" giving its whole length. */
static void out_command(struct request_log *log, struct request_log_out *o, const char *s, size_t n, size_t total)
{
    if (total < n)
        total = n;
    if (total <= log->max_text) {
        out_text(o, log->format, s, n);
        return;
    }
    size_t cut = PMX_MIN(n, log->max_text);
    /* Back up over continuation bytes to the start of the sequence. */
    if (cut < n) {
        for (size_t k = 0; k < 3 && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80; k++)
            cut--;
        if (cut == 0)
            cut = PMX_MIN(n, log->max_text);
    }
    out_text(o, log->format, s, cut);
    out_fmt(o, "...[%zu bytes]", total);
}

static const char *const request_log_status_names[] = {
    [REQUEST_LOG_OK] = "ok",
    [REQUEST_LOG_ERROR] = "error",
    [REQUEST_LOG_TIMEOUT] = "timeout",
    [REQUEST_LOG_BUSY] = "busy",
    [REQUEST_LOG_CLIENT_GONE] = "client_gone",
    [REQUEST_LOG_UPSTREAM_GONE] = "upstream_gone",
};

const char *request_log_status_name(enum request_log_status s)
{
    return (unsigned)s < PMX_ARRAY_LEN(request_log_status_names) ? request_log_status_names[s] : "error";
}

/* "2026-12-02T04:48:05.123456Z": the date part is formatted once a
 * second. */
static void out_ts(struct request_log *log, struct request_log_out *o)
{
    struct timespec now;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != log->ts_sec || log->ts_text[0] == '\0') {
        gmtime_r(&now.tv_sec, &tm);
        strftime(log->ts_text, sizeof(log->ts_text), "%Y-%m-%dT%H:%M:%S", &tm);
        log->ts_sec = now.tv_sec;
    }
    char frac[8] = ".000000Z";
    long us = now.tv_nsec / 1000;
    for (int i = 6; i >= 1; i--, us /= 10)
        frac[i] = (char)('0' + us % 10);
    out_str(o, log->ts_text);
    out_bytes(o, frac, sizeof(frac));
}

static size_t request_log_format(struct request_log *log, const struct request_log_record *r)
{
    struct request_log_out o = { log->line, log->line + log->line_cap - 1 };
    const char *target = r->target != NULL ? r->target : "";
    const char *client = r->client != NULL ? r->client : "";
    const char *service = r->service != NULL ? r->service : "";
    const char *command = r->command != NULL ? r->command : "";

    if (log->format == REQUEST_LOG_JSON) {
        out_str(&o, "{\"ts\":\"");
        out_ts(log, &o);
        out_str(&o, "\",\"service\":\"");
        out_json_text(&o, service, strlen(service));
        out_str(&o, "\",\"client\":\"");
        out_json_text(&o, client, strlen(client));
        out_str(&o, "\",\"target\":\"");
        out_json_text(&o, target, strlen(target));
        out_str(&o, "\",\"command\":\"");
        out_command(log, &o, command, r->command_len, r->command_total);
        out_str(&o, "\",\"bytes_in\":");
        out_u64(&o, r->bytes_in);
        out_str(&o, ",\"bytes_out\":");
        out_u64(&o, r->bytes_out);
        out_str(&o, ",\"us\":");
        out_u64(&o, r->us);
        out_str(&o, ",\"status\":\"");
        out_str(&o, request_log_status_name(r->status));
        out_str(&o, "\"");
        if (r->error_code != 0)
            out_fmt(&o, ",\"error_code\":%u", r->error_code);
        if (r->statement_id >= 0)
            out_fmt(&o, ",\"statement_id\":%lld", (long long)r->statement_id);
        out_str(&o, "}");
    } else {
        /* TS SERVICE CLIENT TARGET STATUS USus in=N out=N [error_code=N]
         * [statement_id=N] "COMMAND"; "-" for an empty field. */
        out_ts(log, &o);
        out_str(&o, " ");
        out_c_text(&o, service, strlen(service));
        out_str(&o, " ");
        out_c_text(&o, *client ? client : "-", *client ? strlen(client) : 1);
        out_str(&o, " ");
        out_c_text(&o, *target ? target : "-", *target ? strlen(target) : 1);
        out_str(&o, " ");
        out_str(&o, request_log_status_name(r->status));
        out_str(&o, " ");
        out_u64(&o, r->us);
        out_str(&o, "us in=");
        out_u64(&o, r->bytes_in);
        out_str(&o, " out=");
        out_u64(&o, r->bytes_out);
        if (r->error_code != 0)
            out_fmt(&o, " error_code=%u", r->error_code);
        if (r->statement_id >= 0)
            out_fmt(&o, " statement_id=%lld", (long long)r->statement_id);
        out_str(&o, " \"");
        out_command(log, &o, command, r->command_len, r->command_total);
        out_str(&o, "\"");
    }
    /* line_cap - 1 was the limit: the newline always fits. */
    o.end++;
    out_str(&o, "\n");
    return (size_t)(o.p - log->line);
}

/* Logs the drop count at most once a second while it grows. */
static void request_log_report(struct request_log *log, uint64_t dropped, int write_errno)
{
    time_t now = time(NULL);

    if (dropped == log->dropped_logged || now == log->dropped_logged_at)
        return;
    log->dropped_logged = dropped;
    log->dropped_logged_at = now;
    if (write_errno != 0)
        log_error("request_log %s: %llu lines dropped (write failed: %s)", log->path,
                  (unsigned long long)dropped, strerror(write_errno));
    else
        log_error("request_log %s: %llu lines dropped (sink too slow)", log->path, (unsigned long long)dropped);
}

void request_log_write(struct request_log *log, const struct request_log_record *r)
{
    if (log == NULL)
        return;
    size_t n = request_log_format(log, r);

    pthread_mutex_lock(&log->lock);
    struct request_log_half *h = &log->halves[log->fill];
    bool fits = log->cap - h->len >= n;
    if (fits) {
        memcpy(h->data + h->len, log->line, n);
        h->len += n;
        /* Wake the writer for the first line when it sleeps with nothing,
         * and when a batch is ready (a signal nobody waits for costs no
         * system call). */
        if ((log->idle && h->len == n) || (h->len >= REQUEST_LOG_BATCH && h->len - n < REQUEST_LOG_BATCH))
            pthread_cond_signal(&log->wake);
    } else {
        log->dropped++;
    }
    uint64_t dropped = log->dropped;
    int write_errno = log->write_errno;
    pthread_mutex_unlock(&log->lock);
    if (dropped != log->dropped_logged)
        request_log_report(log, dropped, write_errno);
}

uint64_t request_log_dropped(struct request_log *log)
{
    if (log == NULL)
        return 0;
    pthread_mutex_lock(&log->lock);
    uint64_t n = log->dropped;
    pthread_mutex_unlock(&log->lock);
    return n;
}

/* Closes the file and frees everything but the writer thread. */
static void request_log_free(struct request_log *log)
{
    if (log->own_fd && log->fd >= 0)
        close(log->fd);
    pthread_mutex_destroy(&log->lock);
    pthread_cond_destroy(&log->wake);
    free(log->line);
    free(log->halves[0].data);
    free(log->halves[1].data);
    free(log);
}

void request_log_close(struct request_log *log)
{
    if (log == NULL)
        return;
    if (!log->writer_started) {
        request_log_free(log);
        return;
    }
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += (long)REQUEST_LOG_CLOSE_MS * 1000000L;
    deadline.tv_sec += deadline.tv_nsec / 1000000000L;
    deadline.tv_nsec %= 1000000000L;

    pthread_mutex_lock(&log->lock);
    log->stop = true;
    pthread_cond_signal(&log->wake);
    pthread_mutex_unlock(&log->lock);
    if (pthread_timedjoin_np(log->writer, NULL, &deadline) == 0) {
        request_log_free(log);
        return;
    }
    /* A sink that does not drain in time: the writer gives up what it holds
     * (within its 100 ms poll), or, blocked in a write() nothing can
     * interrupt safely (stderr, a hung network file system), frees the log
     * itself whenever that returns. The loop never waits longer than
     * REQUEST_LOG_CLOSE_MS. */
    __atomic_store_n(&log->give_up, true, __ATOMIC_RELEASE);
    log_error("request_log %s: closed with lines unwritten (sink too slow)", log->path);
    pthread_mutex_lock(&log->lock);
    bool exited = log->exited;
    log->orphaned = !exited;
    pthread_mutex_unlock(&log->lock);
    if (exited) {
        pthread_join(log->writer, NULL);
        request_log_free(log);
    } else {
        pthread_detach(log->writer);
    }
}
