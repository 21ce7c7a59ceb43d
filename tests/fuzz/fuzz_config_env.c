/* libFuzzer harness for the environment front end: the input is a list of
 * NAME=value entries separated by NUL or newline bytes (by NUL only when
 * the input starts with byte 0x01, so that values may hold newlines), given
 * to config_load() as its environment, with no YAML file. Checks the error
 * contract and that the -t dump reads back. */
#include <stdint.h>

#include "fuzz_config_common.h"

#define MAX_ENTRIES 512

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *cfg, *scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_yaml_init();
    cfg = calloc(1, sizeof *cfg);
    scratch = calloc(1, sizeof *scratch);
    CHECK(cfg != NULL && scratch != NULL, "out of memory");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *env[MAX_ENTRIES + 1];
    size_t n = 0;
    char err[CONFIG_ERR_MAX];

    bool nul_only = size > 0 && data[0] == 0x01;

    /* Each entry in its own allocation, so that ASan sees a read past one. */
    for (size_t start = nul_only ? 1 : 0; start <= size && n < MAX_ENTRIES;) {
        size_t end = start;
        while (end < size && data[end] != '\0' && (nul_only || data[end] != '\n'))
            end++;
        env[n] = malloc(end - start + 1);
        CHECK(env[n] != NULL, "out of memory");
        memcpy(env[n], data + start, end - start);
        env[n][end - start] = '\0';
        n++;
        start = end + 1;
    }
    env[n] = NULL;

    memset(err, 0x55, sizeof err);
    config_free(cfg);
    int rc = config_load(cfg, NULL, env, err, sizeof err);
    fuzz_check_load(rc, cfg, err, sizeof err, env, scratch);

    for (size_t i = 0; i < n; i++)
        free(env[i]);
    return 0;
}
