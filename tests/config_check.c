/* Helpers of the configuration tests (see config_check.h). */
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config_check.h"

char tmpdir[64];
struct config *cfg;
char err[CONFIG_ERR_MAX];
char yaml_path[256];

void dir_setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pmx-test-config-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

void dir_teardown(void)
{
    DIR *d = opendir(tmpdir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        unlink(path);
        rmdir(path);
    }
    closedir(d);
    rmdir(tmpdir);
}

void cfg_setup(void)
{
    cfg = calloc(1, sizeof *cfg);
    ck_assert_ptr_nonnull(cfg);
    err[0] = '\0';
}

void cfg_teardown(void)
{
    config_free(cfg);
    free(cfg);
    cfg = NULL;
}

const char *write_yaml(const char *text)
{
    static int seq;
    snprintf(yaml_path, sizeof yaml_path, "%s/%d-%d.yaml", tmpdir, (int)getpid(), ++seq);
    FILE *f = fopen(yaml_path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(text, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    return yaml_path;
}

int load(const char *yaml, const char *const *env)
{
    const char *path = yaml != NULL ? write_yaml(yaml) : NULL;
    config_free(cfg);
    return config_load(cfg, path, (char *const *)env, err, sizeof err);
}

/* Copies pattern into out, with @FILE@ replaced by yaml_path and @CODECS@ by
 * codec_names(). */
static void expand(const char *pattern, char *out, size_t n)
{
    size_t o = 0;
    while (*pattern != '\0' && o + 1 < n) {
        const char *sub = NULL;
        if (strncmp(pattern, "@FILE@", 6) == 0) {
            sub = yaml_path;
            pattern += 6;
        } else if (strncmp(pattern, "@CODECS@", 8) == 0) {
            sub = codec_names();
            pattern += 8;
        }
        if (sub != NULL) {
            o += (size_t)snprintf(out + o, n - o, "%s", sub);
            if (o >= n)
                o = n - 1;
        } else {
            out[o++] = *pattern++;
        }
    }
    out[o] = '\0';
}

void check_error(int rc, const char *want, int prefix)
{
    char exp[1024];
    expand(want, exp, sizeof exp);
    ck_assert_int_eq(rc, PMX_ERR);
    if (prefix)
        ck_assert_msg(strncmp(err, exp, strlen(exp)) == 0,
                      "error \"%s\" does not start with \"%s\"", err, exp);
    else
        ck_assert_str_eq(err, exp);
    /* On error the config holds nothing. */
    ck_assert_int_eq(cfg->nservices, 0);
    ck_assert_ptr_null(cfg->services);
}

char *dump_to_string(const struct config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    config_dump(c, f);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

int sa_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return -1;
}
