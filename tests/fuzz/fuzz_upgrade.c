/* libFuzzer harness for upgrade_parse_fds(), the parser of
 * PROXIMUX_INHERIT_FDS ("fd:spec,fd:spec") that a process started by a
 * binary upgrade reads: the input is the variable's value (cut at its first
 * NUL). Checks the contract: -1 or a count 0..max; every entry an fd
 * 0-65535 and a non-empty spec without ',' that fits; and that the entries
 * written back in the same format parse to the same entries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"

#define CHECK(cond, what)                                                         \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz_upgrade: check failed: %s (%s)\n", what, #cond); \
            abort();                                                              \
        }                                                                         \
    } while (0)

#define MAX 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct upgrade_fd out[MAX];
    char *s = malloc(size + 1);

    CHECK(s != NULL, "out of memory");
    memcpy(s, data, size);
    s[size] = '\0';
    int n = upgrade_parse_fds(s, out, MAX);
    CHECK(n >= -1 && n <= MAX, "count");
    if (n > 0) {
        size_t cap = (size_t)n * (UPGRADE_SPEC_MAX + 8) + 1, used = 0;
        char *back = malloc(cap);
        CHECK(back != NULL, "out of memory");
        back[0] = '\0';
        for (int i = 0; i < n; i++) {
            size_t len = strnlen(out[i].spec, UPGRADE_SPEC_MAX);
            CHECK(out[i].fd >= 0 && out[i].fd <= 65535, "fd range");
            CHECK(len > 0 && len < UPGRADE_SPEC_MAX, "spec length");
            CHECK(strchr(out[i].spec, ',') == NULL, "no ',' in a spec");
            CHECK(!out[i].taken, "not taken");
            used += (size_t)snprintf(back + used, cap - used, "%s%d:%s", i ? "," : "", out[i].fd, out[i].spec);
        }
        /* Written back, the entries parse to the same entries ("03" is 3). */
        static struct upgrade_fd again[MAX];
        CHECK(upgrade_parse_fds(back, again, MAX) == n, "read back: count");
        for (int i = 0; i < n; i++)
            CHECK(again[i].fd == out[i].fd && strcmp(again[i].spec, out[i].spec) == 0, "read back: entry");
        free(back);
    }
    free(s);
    return 0;
}
