/* libFuzzer harness for the MySQL packet follower. The input is a list of
 * chunks, each one header byte (bit 0: direction, 1 = from the server;
 * bits 1-7: length 0-127) and that many bytes; its first byte, when odd,
 * first plays a canned greeting, handshake response (bit 1:
 * CLIENT_DEPRECATE_EOF) and OK, so that the fuzzer starts in the command
 * phase. The chunks are fed as they come, then again one byte at a time:
 * both must report the same events. Invariants: never a crash, at most one
 * "not followed" and nothing after it, never more DONE than QUERY events,
 * memory within its documented bound. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_mysql: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

#define MAX_TEXT 64
/* The follower's own struct, texts of the commands in flight and of the
 * statements remembered (each at most max_text). */
#define MEMORY_BOUND (64 * 1024 + (MYSQL_MAX_PENDING + 1 + MYSQL_MAX_STATEMENTS) * MAX_TEXT)

struct tally {
    uint64_t hash;
    unsigned queries, dones, lost;
    bool after_lost;
};

static void on_event(void *ctx, const struct mysql_event *ev)
{
    struct tally *t = ctx;

    t->after_lost |= t->lost > 0;
    t->hash = t->hash * 1000003u + (uint64_t)ev->type * 31u + ev->command + ev->text_len * 7u +
              ev->rows * 13u + ev->error_code + (uint64_t)ev->outcome * 17u + ev->bytes_in + ev->bytes_out * 3u;
    for (size_t i = 0; i < ev->text_len; i++)
        t->hash = t->hash * 31u + (uint8_t)ev->text[i];
    switch (ev->type) {
    case MYSQL_EVENT_QUERY:
        t->queries++;
        *ev->stamp_slot = t->queries;
        break;
    case MYSQL_EVENT_DONE:
        t->dones++;
        break;
    case MYSQL_EVENT_NOT_FOLLOWED:
        t->lost++;
        break;
    case MYSQL_EVENT_QUIT:
        break;
    }
}

static const uint8_t greeting[] =
    "\x2e\x00\x00\x00\x0a" "10.11.0\0" "\x01\x00\x00\x00" "abcdefgh" "\x00" "\xff\xf7" "\x21" "\x02\x00"
    "\xff\x81" "\x15" "\0\0\0\0\0\0\0\0\0\0" "ijklmnopqrst\0";
static const uint8_t ok_packet[] = "\x07\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00";

static void play(struct mysql_follower *f, const uint8_t *data, size_t size, bool bytewise)
{
    if (size > 0 && (data[0] & 1)) {
        uint8_t resp[36 + 4] = { 36, 0, 0, 1 };
        uint32_t caps = 0x000ba20fu | ((data[0] & 2) ? MYSQL_CLIENT_DEPRECATE_EOF : 0);
        memcpy(resp + 4, &caps, 4);
        mysql_follower_feed(f, MYSQL_FROM_SERVER, (const char *)greeting, sizeof(greeting) - 1);
        mysql_follower_feed(f, MYSQL_FROM_CLIENT, (const char *)resp, sizeof(resp));
        mysql_follower_feed(f, MYSQL_FROM_SERVER, (const char *)ok_packet, sizeof(ok_packet) - 1);
    }
    for (size_t at = 1; at < size;) {
        enum mysql_direction dir = (data[at] & 1) ? MYSQL_FROM_SERVER : MYSQL_FROM_CLIENT;
        size_t n = data[at] >> 1;
        at++;
        if (n > size - at)
            n = size - at;
        if (bytewise) {
            for (size_t i = 0; i < n; i++)
                mysql_follower_feed(f, dir, (const char *)data + at + i, 1);
        } else {
            mysql_follower_feed(f, dir, (const char *)data + at, n);
        }
        CHECK(mysql_follower_memory(f) <= MEMORY_BOUND, "memory %zu", mysql_follower_memory(f));
        at += n;
    }
}

static struct tally run(const uint8_t *data, size_t size, bool bytewise)
{
    struct tally t = { 0 };
    struct mysql_follower *f = mysql_follower_new(MAX_TEXT, on_event, &t);

    CHECK(f != NULL, "out of memory");
    play(f, data, size, bytewise);
    mysql_follower_end(f, MYSQL_UPSTREAM_GONE);
    mysql_follower_free(f);
    CHECK(t.lost <= 1, "%u not followed events", t.lost);
    CHECK(!t.after_lost, "events after not followed");
    CHECK(t.dones <= t.queries, "%u done for %u queries", t.dones, t.queries);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tally a = run(data, size, false);
    struct tally b = run(data, size, true);

    CHECK(a.hash == b.hash && a.queries == b.queries && a.dones == b.dones && a.lost == b.lost,
          "events depend on segmentation");
    return 0;
}
