/* libFuzzer harness for the admin API's request router (src/admin/admin.c).
 *
 * Input: byte [0] bit 0 sets the bearer token "tok"; the rest is the bytes
 * of a client. They are framed with the http codec as the admin listener
 * frames them, and each whole request is handed to admin_handle() against
 * one service "svc" with two targets ("t1", and "a/b" to reach through
 * %2F); the whole rest is also handed over unframed (admin_handle must
 * take any bytes).
 *
 * Checks: the status is one the router gives; the body is there, its
 * length is that of its text, an error (>= 400) is exactly one JSON object
 * {"error": "..."}; 405 names the allowed method; nothing leaks (ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "codec.h"
#include "config.h"
#include "reactor.h"
#include "service.h"
#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config cfg;
static struct service_config svc_cfg;
static struct target_config targets[2];
static struct service svc;

static struct service *const *fuzz_services(void *d, int *n)
{
    static struct service *const list[] = { &svc };

    *n = 1;
    return list;
}

static const struct config *fuzz_config(void *d)
{
    return &cfg;
}

static bool fuzz_reload(void *d, char *msg, size_t msglen)
{
    snprintf(msg, msglen, "no");
    return false;
}

static const struct admin_hooks hooks = { fuzz_services, fuzz_config, fuzz_reload, NULL };

static void setup(void)
{
    static bool done;

    if (done)
        return;
    done = true;
    snprintf(svc_cfg.name, sizeof(svc_cfg.name), "svc");
    snprintf(svc_cfg.codec, sizeof(svc_cfg.codec), "resp");
    svc_cfg.mode = svc_cfg.effective_mode = MODE_FIFO;
    svc_cfg.health.fail_after = 3;
    svc_cfg.health.rise_after = 2;
    svc_cfg.health.interval = 1000;
    svc_cfg.health.timeout = 1000;
    svc_cfg.nlisten = 1;
    snprintf(svc_cfg.listen[0].spec, sizeof(svc_cfg.listen[0].spec), "127.0.0.1:1");
    snprintf(targets[0].name, sizeof(targets[0].name), "t1");
    snprintf(targets[0].host, sizeof(targets[0].host), "127.0.0.1");
    targets[0].port = 1;
    snprintf(targets[1].name, sizeof(targets[1].name), "a/b");
    snprintf(targets[1].host, sizeof(targets[1].host), "127.0.0.1");
    targets[1].port = 2;
    targets[0].weight = targets[1].weight = 1;
    svc_cfg.targets = targets;
    svc_cfg.ntargets = 2;
    cfg.nservices = 1;
    cfg.services = &svc_cfg;
    cfg.services_form = true;
    svc.config = &svc_cfg;
    /* The reactor is never run: maintenance marks only schedule probes. */
    struct reactor *r = reactor_create(64);
    if (r == NULL)
        abort();
    svc.upstream = upstream_create(r, NULL, &svc_cfg, NULL);
    if (svc.upstream == NULL)
        abort();
}

static void check(const char *req, size_t len)
{
    struct admin_response resp;

    admin_handle(&hooks, req, len, &resp);
    switch (resp.status) {
    case 200: case 201: case 202: case 400: case 401: case 404: case 405: case 409: case 500: case 501:
        break;
    default:
        abort();
    }
    if (resp.body == NULL || strlen(resp.body) != resp.len)
        abort();
    if (resp.status >= 400) {
        if (strncmp(resp.body, "{\"error\": \"", 11) != 0 || strcmp(resp.body + resp.len - 3, "\"}\n") != 0)
            abort();
        /* One string: every quote inside is escaped. */
        for (size_t i = 11; i + 3 < resp.len; i++)
            if (resp.body[i] == '"' && resp.body[i - 1] != '\\')
                abort();
    }
    if (resp.status == 405 && resp.allow == NULL)
        abort();
    free(resp.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    setup();
    snprintf(cfg.admin_token, sizeof(cfg.admin_token), "%s", (data[0] & 1) ? "tok" : "");
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    check(in, len);
    /* Framed as the listener frames: each whole request in turn. */
    struct codec_parser p;
    size_t start = 0, scanned = 0;
    codec_http.request_begin(&p);
    while (scanned < len) {
        size_t used = 0;
        int rc = codec_http.parse_request(&p, in + scanned, len - scanned, &used);
        if (rc == CODEC_ERROR || used == 0)
            break;
        scanned += used;
        if (rc == CODEC_DONE) {
            check(in + start, scanned - start);
            start = scanned;
            codec_http.request_begin(&p);
        }
    }
    return 0;
}
