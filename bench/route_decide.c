/* Routing decision latency (SPEC §10): route_table_decide() on typical
 * first bytes (a ClientHello, an HTTP request head, a git pkt-line) and on
 * 4 KiB that no regex matches, with anchored and unanchored regexes; prints
 * microseconds per call. A session calls it once per read until a route
 * decides, over everything buffered so far.
 *     make bench-route      (run from the top of the repository) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "route.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void run(const char *what, const struct route_table *t, const char *d, size_t n)
{
    static const char *const names[] = { "wait", "decided", "no match", "error" };
    struct route_decision o;
    enum route_result rr = ROUTE_RESULT_WAIT;
    int iters = 0;
    double start = now(), end;

    /* At least 0.2 s and 20 calls: stable figures for fast and slow cases. */
    do {
        route_decision_init(&o);
        rr = route_table_decide(t, d, n, &o);
        route_decision_free(&o);
        iters++;
        end = now();
    } while (end - start < 0.2 || iters < 20);
    printf("| %s | %zu | %s | %.2f |\n", what, n, names[rr], (end - start) / iters * 1e6);
}

/* A table of one regex route. */
static struct route_table *one_regex(const char *pattern)
{
    static struct route_config r;
    char err[256];
    memset(&r, 0, sizeof r);
    r.kind = ROUTE_MATCH;
    snprintf(r.pattern, sizeof r.pattern, "%s", pattern);
    r.pattern_len = strlen(r.pattern);
    snprintf(r.target, sizeof r.target, "%s", strchr(pattern, '(') != NULL ? "$1.git.internal:9418" : "t:1");
    r.connect_timeout = -1;
    r.inactivity_timeout = -1;
    struct route_table *t = route_table_create(&r, 1, err, sizeof err);
    if (t == NULL) {
        fprintf(stderr, "route_decide: %s\n", err);
        exit(1);
    }
    return t;
}

int main(void)
{
    static char *const env[] = { NULL };
    struct config c;
    char err[CONFIG_ERR_MAX], hello[4096];

    if (config_load(&c, "config/examples/routes-one-port.yaml", env, err, sizeof err) != PMX_OK) {
        fprintf(stderr, "route_decide: %s\n", err);
        return 1;
    }
    struct route_table *ex = route_table_create(c.services[0].routes, c.services[0].nroutes, err, sizeof err);
    FILE *f = fopen("tests/fuzz/corpus/fuzz_route/tls_client_hello", "rb");
    if (ex == NULL || f == NULL) {
        fprintf(stderr, "route_decide: run from the top of the repository\n");
        return 1;
    }
    size_t hl = fread(hello, 1, sizeof hello, f);
    fclose(f);
    static const char req[] = "GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: curl/8.5\r\n"
                              "Accept: */*\r\n\r\n";
    static const char git[] = "0032git-upload-pack /alice/proj.git\0host=example.com\0";
    char *junk = malloc(4096);
    if (junk == NULL)
        return 1;
    memset(junk, 'a', 4096);

    printf("| routes and bytes | bytes | result | us per decision |\n|---|---:|---|---:|\n");
    run("routes-one-port.yaml (4 routes): ClientHello, sni decides", ex, hello, hl);
    run("routes-one-port.yaml: HTTP request, 3rd route (http_host)", ex, req, sizeof req - 1);
    run("routes-one-port.yaml: `PING\\r\\n`, 4th route (prefix)", ex, "PING\r\n", 6);
    struct route_table *g = one_regex("^....git-upload-pack /([A-Za-z0-9._-]+)/");
    run("`^....git-upload-pack /([A-Za-z0-9._-]+)/`: git pkt-line", g, git, sizeof git - 1);
    run("the same: 4 KiB of `a` (waits)", g, junk, 4096);
    route_table_free(g);
    g = one_regex("^[a-z]+x");
    run("`^[a-z]+x`: 4 KiB of `a`", g, junk, 4096);
    route_table_free(g);
    g = one_regex("[a-z]+x");
    run("`[a-z]+x` (unanchored): 4 KiB of `a`", g, junk, 4096);
    route_table_free(g);
    g = one_regex("[a-z]+x");
    run("`[a-z]+x` (unanchored): 1 KiB of `a`", g, junk, 1024);
    route_table_free(g);
    free(junk);
    route_table_free(ex);
    config_free(&c);
    return 0;
}
