/* libFuzzer harness for the Lua hooks' result handling and sandbox. The
 * input is Lua source that route() and on_request() load (text only, in an
 * empty environment) and run: whatever it returns, raises, allocates or
 * loops on must end in a decision (never a crash, never past the budget),
 * a route decision must be consistent, and the state must still answer
 * afterwards. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "route_decision.h"
#include "script.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_script: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

static const char hooks[] =
    "local function run(src)\n"
    "  local f = load(src, 'input', 't', { string = string, table = table, math = math })\n"
    "  if f then return f() end\n"
    "end\n"
    "function route(data, client) return run(data) end\n"
    "function on_request(req) return run(req.bytes) end\n"
    "function on_connect(client) return client.addr == '127.0.0.1' end\n";

static struct script *the_script;

static struct script *script_once(void)
{
    char path[] = "/tmp/fuzz_script_XXXXXX";
    char err[512];

    if (the_script != NULL)
        return the_script;
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    CHECK(write(fd, hooks, sizeof hooks - 1) == (ssize_t)(sizeof hooks - 1), "write");
    close(fd);
    the_script = script_load(path, "fuzz", err, sizeof err);
    unlink(path);
    CHECK(the_script != NULL, "load: %s", err);
    return the_script;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct script *s = script_once();
    const char *text = (const char *)data;
    struct route_decision d;
    char reason[64];

    route_decision_init(&d);
    int rc = script_route(s, text, size, "127.0.0.1", 1, &d);
    CHECK(rc == PMX_OK || d.action == ROUTE_CLOSE, "error but action %d", (int)d.action);
    if (d.action == ROUTE_TARGET)
        CHECK(d.target[0] != '\0' && strlen(d.target) < sizeof d.target, "target");
    if (d.action != ROUTE_TARGET)
        CHECK(buf_len(&d.reply) == 0, "reply without a target");
    route_decision_free(&d);

    struct buf reply;
    int ref;
    buf_init(&reply);
    enum script_verdict v = script_on_request(s, "c", "X", 1, text, size, &reply, &ref);
    CHECK(v == SCRIPT_PASS || v == SCRIPT_REPLY || v == SCRIPT_CLOSE, "verdict %d", (int)v);
    CHECK(v == SCRIPT_REPLY || buf_len(&reply) == 0, "reply bytes with verdict %d", (int)v);
    script_forget(s, ref);
    buf_free(&reply);
    /* Whatever the input did, the state still answers. */
    CHECK(script_on_connect(s, "127.0.0.1", 1, reason, sizeof reason), "state broken: %s", reason);
    return 0;
}
