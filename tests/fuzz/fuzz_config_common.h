/* Shared by the configuration harnesses: no DNS, and the checks made on
 * every config_load() result. Included by one harness per binary. */
#ifndef FUZZ_CONFIG_COMMON_H
#define FUZZ_CONFIG_COMMON_H

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

/*
 * config_load() resolves every listen host and target host with
 * getaddrinfo(), which for a name asks the resolver (DNS, slow and not
 * reproducible). The harness is linked with -Wl,--wrap=getaddrinfo, so
 * config.c calls this instead: numeric addresses only; a name fails as an
 * unknown host would.
 */
int __real_getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res);
int __wrap_getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res);

int __wrap_getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res)
{
    struct addrinfo h = *hints;

    h.ai_flags |= AI_NUMERICHOST;
    return __real_getaddrinfo(node, service, &h, res);
}

/* A YAML file that config_yaml_read() can open by name: a memfd. */
static int fuzz_yaml_fd = -1;
static char fuzz_yaml_path[64];

static void fuzz_yaml_init(void)
{
    fuzz_yaml_fd = memfd_create("fuzz.yaml", MFD_CLOEXEC);
    CHECK(fuzz_yaml_fd >= 0, "memfd_create");
    snprintf(fuzz_yaml_path, sizeof fuzz_yaml_path, "/proc/self/fd/%d", fuzz_yaml_fd);
}

static void fuzz_yaml_write(const void *data, size_t len)
{
    CHECK(ftruncate(fuzz_yaml_fd, 0) == 0, "ftruncate");
    CHECK(len == 0 || pwrite(fuzz_yaml_fd, data, len, 0) == (ssize_t)len, "pwrite");
}

/* The -t dump of c, in a malloc'd string. */
static char *fuzz_dump(const struct config *c, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    CHECK(f != NULL, "open_memstream");
    config_dump(c, f);
    CHECK(fclose(f) == 0, "fclose");
    return text;
}

static bool fuzz_utf8_valid(const char *text, size_t n)
{
    const unsigned char *s = (const unsigned char *)text;

    for (size_t i = 0; i < n;) {
        size_t k;
        /* The range of the second byte rules out overlong forms, UTF-16
         * surrogates (ED A0..BF) and code points above U+10FFFF, which
         * YAML refuses as it refuses any byte that is not UTF-8. */
        unsigned char lo = 0x80, hi = 0xbf;
        if (s[i] < 0x80) {
            k = 0;
        } else if (s[i] >= 0xc2 && s[i] <= 0xdf) {
            k = 1;
        } else if ((s[i] & 0xf0) == 0xe0) {
            k = 2;
            if (s[i] == 0xe0)
                lo = 0xa0;
            else if (s[i] == 0xed)
                hi = 0x9f;
        } else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
            k = 3;
            if (s[i] == 0xf0)
                lo = 0x90;
            else if (s[i] == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        if (k > 0 && (s[i + 1] < lo || s[i + 1] > hi))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* The derived facts of one service hold. */
static void fuzz_check_service(const struct service_config *s)
{
    CHECK(s->effective_mode == MODE_PROXY || s->effective_mode == MODE_FIFO ||
          s->effective_mode == MODE_FUNNEL, "effective_mode %d", (int)s->effective_mode);
    CHECK(s->name[0] != '\0' && strlen(s->name) < CONFIG_NAME_MAX, "service name %s", s->name);
    CHECK(s->ntargets >= 1 && s->ntargets <= CONFIG_MAX_TARGETS && s->targets != NULL,
          "%s: %d targets", s->name, s->ntargets);
    CHECK(s->nlisten >= 1 && s->nlisten <= CONFIG_MAX_LISTEN, "%s: %d listen addresses", s->name, s->nlisten);
    for (int i = 0; i < s->nlisten; i++) {
        const struct listen_config *lc = &s->listen[i];
        CHECK(lc->addr_len > 0 && lc->spec[0] != '\0', "%s: listen %d not resolved", s->name, i + 1);
        CHECK(lc->where.unix_socket ? lc->where.path[0] != '\0'
                                    : lc->where.port >= 1 && lc->where.port <= 65535,
              "%s: listen %d: %s", s->name, i + 1, lc->spec);
    }
    CHECK(codec_find(s->codec) != NULL, "codec %s", s->codec);
    CHECK(s->backoff_min <= s->backoff_max, "backoff %ld > %ld", s->backoff_min, s->backoff_max);
    CHECK(s->health.send_len < CONFIG_PROBE_MAX && s->health.expect_len < CONFIG_PROBE_MAX, "probe length");
    CHECK(s->listen_mode >= 0 && s->listen_mode <= 0777, "listen_mode %lo", (unsigned long)s->listen_mode);
    for (int i = 0; i < s->ntargets; i++) {
        const struct target_config *t = &s->targets[i];
        CHECK(t->addr_len > 0 && (t->unix_path[0] != '\0' ? t->host[0] == '\0' && t->port == 0
                                                          : t->port >= 1 && t->port <= 65535),
              "target %d", i + 1);
        CHECK(t->name[0] != '\0' && t->weight >= 1 && t->weight <= 1000, "target %d: %s", i + 1, t->name);
        /* Names are unique (checked for small lists: it is quadratic). */
        for (int j = 0; s->ntargets <= 64 && j < i; j++)
            CHECK(strcmp(t->name, s->targets[j].name) != 0, "targets %d and %d: %s", j + 1, i + 1, t->name);
    }
}

/*
 * Checks one config_load() result. On error: a non-empty single line and
 * nothing to free. On success: the derived facts hold, and the dump read
 * back as YAML (with the same environment, which wins over the file anyway)
 * gives the same dump.
 */
static void fuzz_check_load(int rc, const struct config *c, const char *err, size_t errlen,
                            char *const *env, struct config *scratch)
{
    CHECK(rc == PMX_OK || rc == PMX_ERR, "config_load returned %d", rc);
    CHECK(memchr(err, '\0', errlen) != NULL, "err not terminated");
    if (rc != PMX_OK) {
        CHECK(*err != '\0', "PMX_ERR with an empty message");
        CHECK(strchr(err, '\n') == NULL, "message of more than one line: %s", err);
        CHECK(c->services == NULL && c->nservices == 0, "a failed load holds services");
        return;
    }
    CHECK(c->nservices >= 1 && c->nservices <= CONFIG_MAX_SERVICES && c->services != NULL,
          "%d services", c->nservices);
    CHECK(c->services_form || c->nservices == 1, "%d services in the single-service form", c->nservices);
    for (int k = 0; k < c->nservices; k++) {
        fuzz_check_service(&c->services[k]);
        for (int j = 0; j < k; j++)
            CHECK(strcmp(c->services[k].name, c->services[j].name) != 0, "service name %s twice",
                  c->services[k].name);
        CHECK(config_service(c, c->services[k].name) == &c->services[k], "config_service(%s)",
              c->services[k].name);
    }

    size_t len1, len2;
    char *dump1 = fuzz_dump(c, &len1);
    if (!fuzz_utf8_valid(dump1, len1)) {
        /* A value from the environment that is not UTF-8 (LOG_FILE): the
         * dump shows it raw, which is no YAML. Nothing to read back. */
        free(dump1);
        return;
    }
    char unreloadable[512];
    for (int k = 0; k < c->nservices; k++) {
        config_service_fixed_changes(&c->services[k], &c->services[k], unreloadable, sizeof unreloadable);
        CHECK(*unreloadable == '\0', "a service differs from itself: %s", unreloadable);
    }

    fuzz_yaml_write(dump1, len1);
    char err2[CONFIG_ERR_MAX];
    config_free(scratch);
    int rc2 = config_load(scratch, fuzz_yaml_path, env, err2, sizeof err2);
    CHECK(rc2 == PMX_OK, "the dump does not load back: %s\n--- dump\n%s---", err2, dump1);
    char *dump2 = fuzz_dump(scratch, &len2);
    CHECK(len1 == len2 && memcmp(dump1, dump2, len1) == 0,
          "the dump read back differs\n--- first\n%s--- read back\n%s---", dump1, dump2);
    CHECK(scratch->nservices == c->nservices, "%d services read back, %d before",
          scratch->nservices, c->nservices);
    for (int k = 0; k < c->nservices; k++) {
        config_service_fixed_changes(&c->services[k], &scratch->services[k], unreloadable,
                                     sizeof unreloadable);
        CHECK(*unreloadable == '\0', "settings differ after reading the dump back: %s", unreloadable);
        /* Keeping the running values leaves nothing that needs a restart. */
        config_service_keep_fixed(&scratch->services[k], &c->services[k]);
        config_service_fixed_changes(&c->services[k], &scratch->services[k], unreloadable,
                                     sizeof unreloadable);
        CHECK(*unreloadable == '\0', "keep_fixed left changes: %s", unreloadable);
    }
    config_free(scratch);
    free(dump1);
    free(dump2);
}

#endif
