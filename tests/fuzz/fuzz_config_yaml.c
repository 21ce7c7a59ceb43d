/* libFuzzer harness for the YAML front end: the input is the YAML file,
 * loaded once without environment and once with the required settings in
 * the environment (so that the file's other settings are validated to the
 * end). Checks the error contract and that the -t dump reads back. */
#include <stdint.h>

#include "fuzz_config_common.h"

static char env_port[] = "LOCAL_PORT=7000";
static char env_conns[] = "PROXY_CONNECTIONS_CNT=2";
static char env_host[] = "TARGET_HOST_1=127.0.0.1";
static char env_tport[] = "TARGET_PORT_1=7001";
static char *const env_required[] = { env_port, env_conns, env_host, env_tport, NULL };

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct config *cfg, *cfg_plain, *scratch;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_yaml_init();
    cfg = calloc(1, sizeof *cfg);
    cfg_plain = calloc(1, sizeof *cfg_plain);
    scratch = calloc(1, sizeof *scratch);
    CHECK(cfg != NULL && cfg_plain != NULL && scratch != NULL, "out of memory");
    return 0;
}

/* What needs a restart between the loads with and without environment (the
 * single-service form: the environment refuses services:): a list of whole
 * setting names, cut to fit outlen. */
static void check_unreloadable(size_t outlen)
{
    char out[128];

    memset(out, 'x', sizeof out);
    config_service_fixed_changes(&cfg_plain->services[0], &cfg->services[0], out, outlen);
    if (outlen == 0) {
        CHECK(out[0] == 'x', "wrote into an empty buffer");
        return;
    }
    CHECK(memchr(out, '\0', outlen) != NULL, "not terminated");
    for (const char *p = out; *p != '\0'; p++)
        CHECK((*p >= 'a' && *p <= 'z') || *p == '_' || *p == '.' || *p == ',' || *p == ' ',
              "bad byte in %s", out);
    size_t n = strlen(out);
    CHECK(n == 0 || (out[n - 1] != ',' && out[n - 1] != ' ' && out[n - 1] != '.'),
          "a name cut short: %s", out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CONFIG_ERR_MAX];
    int rcs[2];

    for (int with_env = 0; with_env < 2; with_env++) {
        char *const *env = with_env ? env_required : NULL;
        struct config *c = with_env ? cfg : cfg_plain;
        fuzz_yaml_write(data, size);
        memset(err, 0x55, sizeof err);
        config_free(c);
        rcs[with_env] = config_load(c, fuzz_yaml_path, env, err, sizeof err);
        fuzz_check_load(rcs[with_env], c, err, sizeof err, env, scratch);
    }
    if (rcs[0] == PMX_OK && rcs[1] == PMX_OK)
        check_unreloadable(size % 129);
    return 0;
}
