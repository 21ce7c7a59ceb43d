/* Unit tests of the configuration's services: form (several named
 * services, inheritance of top-level defaults, listen lists), targets
 * decoupled from connections (names, weights, unix targets), the upstream
 * settings (balance, retries, health, limits, resolve_interval), and the
 * -t dump of several services. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "config.h"
#include "config_check.h"
#include "suites.h"

#define BASE_ENV "LOCAL_PORT=6380", "PROXY_CONNECTIONS_CNT=2", \
                 "TARGET_HOST_1=127.0.0.1", "TARGET_PORT_1=6379"
#define SVC (&cfg->services[0])

/* Two services: a defaults block next to services:, one service that
 * overrides some of it, one that inherits it. */
static const char two_services[] =
    "log_level: 2\n"                                                    /* 1 */
    "exchange: { codec: resp, response_timeout: 2000 }\n"               /* 2 */
    "pool: { connections: 1, connect_timeout: 700 }\n"                  /* 3 */
    "health: { send: \"PING\\\\r\\\\n\", expect: \"+PONG\", fail_after: 5 }\n"  /* 4 */
    "limits: { max_queued: 100 }\n"                                     /* 5 */
    "services:\n"                                                       /* 6 */
    "  - name: db\n"                                                    /* 7 */
    "    listen: [\"127.0.0.1:3307\", \"unix:/tmp/pmx-db.sock\"]\n"     /* 8 */
    "    listen_mode: \"0600\"\n"                                       /* 9 */
    "    exchange: { mode: proxy, codec: raw }\n"                       /* 10 */
    "    pool: { connections: 4, warmup: true }\n"                      /* 11 */
    "    balance: least_conn\n"                                         /* 12 */
    "    retries: 0\n"                                                  /* 13 */
    "    health: { fail_after: 1, check_up: true }\n"                   /* 14 */
    "    limits: { max_active: 64 }\n"                                  /* 15 */
    "    targets:\n"                                                    /* 16 */
    "      - { name: primary, host: 127.0.0.1, port: 3306 }\n"          /* 17 */
    "      - { name: standby, host: \"::1\", port: 3306, backup: true, weight: 5 }\n" /* 18 */
    "  - name: cache.1\n"                                               /* 19 */
    "    local: { host: \"::1\", port: 6380, max_connections: 10 }\n"   /* 20 */
    "    exchange: { funnel_async: yes }\n"                             /* 21 */
    "    targets:\n"                                                    /* 22 */
    "      - { unix: /run/redis/redis.sock }\n"                         /* 23 */
    "      - { host: 127.0.0.1, port: 6379, keep_alive: true }\n"       /* 24 */
    "      - { host: 127.0.0.1, port: 6379 }\n";                        /* 25 */

/* ---- good configurations ---- */

START_TEST(services_two)
{
    ck_assert_int_eq(load(two_services, ENV("LOG_LEVEL=3", "SHUTDOWN_TIMEOUT=5", "LOG_FILE=/tmp/l")), PMX_OK);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cfg->services_form, 1);
    ck_assert_int_eq(cfg->log_level, 3);            /* global env is fine with services: */
    ck_assert_int_eq(cfg->shutdown_timeout, 5);
    ck_assert_str_eq(cfg->log_file, "/tmp/l");
    ck_assert_int_eq(cfg->nservices, 2);

    const struct service_config *db = config_service(cfg, "db");
    ck_assert_ptr_eq(db, &cfg->services[0]);
    ck_assert_str_eq(db->name, "db");
    ck_assert_int_eq(db->nlisten, 2);
    ck_assert_str_eq(db->listen[0].spec, "127.0.0.1:3307");
    ck_assert_int_eq(db->listen[0].where.unix_socket, 0);
    ck_assert_str_eq(db->listen[0].where.host, "127.0.0.1");
    ck_assert_int_eq(db->listen[0].where.port, 3307);
    ck_assert_int_eq(db->listen[0].addr.ss_family, AF_INET);
    ck_assert_int_eq(sa_port(&db->listen[0].addr), 3307);
    ck_assert_str_eq(db->listen[1].spec, "unix:/tmp/pmx-db.sock");
    ck_assert_int_eq(db->listen[1].where.unix_socket, 1);
    ck_assert_str_eq(db->listen[1].where.path, "/tmp/pmx-db.sock");
    ck_assert_int_eq(db->listen[1].addr.ss_family, AF_UNIX);
    ck_assert_int_eq(db->listen_mode, 0600);
    ck_assert_int_eq(db->mode, MODE_PROXY);
    ck_assert_int_eq(db->effective_mode, MODE_PROXY);
    ck_assert_str_eq(db->codec, "raw");                 /* its own over the default */
    ck_assert_int_eq(db->response_timeout, 2000);       /* inherited, key by key */
    ck_assert_int_eq(db->connections, 4);
    ck_assert_int_eq(db->warmup, 1);
    ck_assert_int_eq(db->connect_timeout, 700);         /* inherited */
    ck_assert_int_eq(db->balance, BALANCE_LEAST_CONN);
    ck_assert_int_eq(db->retries, 0);
    ck_assert_int_eq(db->health.fail_after, 1);
    ck_assert_int_eq(db->health.check_up, 1);
    ck_assert_int_eq(db->health.rise_after, 2);         /* built-in default */
    ck_assert_int_eq(db->health.send_len, 6);           /* inherited, escapes decoded */
    ck_assert_mem_eq(db->health.send, "PING\r\n", 6);
    ck_assert_str_eq(db->health.expect, "+PONG");
    ck_assert_int_eq(db->max_active, 64);
    ck_assert_int_eq(db->max_queued, 100);              /* inherited */
    ck_assert_int_eq(db->ntargets, 2);
    ck_assert_str_eq(db->targets[0].name, "primary");
    ck_assert_int_eq(db->targets[0].weight, 1);
    ck_assert_int_eq(db->targets[0].backup, 0);
    ck_assert_str_eq(db->targets[1].name, "standby");
    ck_assert_str_eq(db->targets[1].host, "::1");
    ck_assert_int_eq(db->targets[1].weight, 5);
    ck_assert_int_eq(db->targets[1].backup, 1);
    ck_assert_int_eq(db->targets[1].addr.ss_family, AF_INET6);

    const struct service_config *cache = config_service(cfg, "cache.1");
    ck_assert_ptr_eq(cache, &cfg->services[1]);
    ck_assert_int_eq(cache->nlisten, 1);
    ck_assert_str_eq(cache->listen[0].spec, "[::1]:6380");
    ck_assert_int_eq(cache->listen[0].addr.ss_family, AF_INET6);
    ck_assert_int_eq(cache->listen_mode, 0660);
    ck_assert_int_eq(cache->max_connections, 10);
    ck_assert_str_eq(cache->codec, "resp");             /* inherited */
    ck_assert_int_eq(cache->funnel_async, 1);
    ck_assert_int_eq(cache->connections, 1);            /* inherited */
    ck_assert_int_eq(cache->effective_mode, MODE_FIFO);
    ck_assert_int_eq(cache->balance, BALANCE_ROUND_ROBIN);
    ck_assert_int_eq(cache->retries, 2);
    ck_assert_int_eq(cache->health.fail_after, 5);      /* inherited */
    ck_assert_int_eq(cache->health.send_len, 6);
    ck_assert_int_eq(cache->max_active, -1);
    ck_assert_int_eq(cache->ntargets, 3);
    ck_assert_str_eq(cache->targets[0].name, "/run/redis/redis.sock");
    ck_assert_str_eq(cache->targets[0].unix_path, "/run/redis/redis.sock");
    ck_assert_str_eq(cache->targets[0].host, "");
    ck_assert_int_eq(cache->targets[0].port, 0);
    ck_assert_int_eq(cache->targets[0].addr.ss_family, AF_UNIX);
    ck_assert_str_eq(((const struct sockaddr_un *)&cache->targets[0].addr)->sun_path,
                     "/run/redis/redis.sock");
    ck_assert_str_eq(cache->targets[1].name, "127.0.0.1:6379");
    ck_assert_int_eq(cache->targets[1].keep_alive, 1);
    ck_assert_str_eq(cache->targets[2].name, "127.0.0.1:6379#2");

    ck_assert_ptr_null(config_service(cfg, "default"));
    ck_assert_ptr_null(config_service(cfg, "cache"));
}
END_TEST

START_TEST(services_one_named_default)
{
    /* services: with one service is the services form, whatever its name. */
    ck_assert_int_eq(load("services:\n  - { name: default, local: {port: 1}, pool: {connections: 1},\n"
                          "      targets: [{host: 127.0.0.1, port: 2}] }\n", NULL), PMX_OK);
    ck_assert_int_eq(cfg->services_form, 1);
    ck_assert_int_eq(cfg->nservices, 1);
    ck_assert_str_eq(SVC->listen[0].spec, "127.0.0.1:1");
    char *d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d, "\nservices:\n  - name: \"default\"\n    listen_mode: \"0660\"\n"
                                    "    local:\n      host: \"127.0.0.1\"\n      port: 1\n"));
    free(d);
}
END_TEST

START_TEST(single_defaults_of_new_settings)
{
    ck_assert_int_eq(load(NULL, ENV(BASE_ENV)), PMX_OK);
    ck_assert_int_eq(cfg->services_form, 0);
    ck_assert_int_eq(cfg->nservices, 1);
    ck_assert_str_eq(SVC->name, "default");
    ck_assert_ptr_eq(config_service(cfg, "default"), SVC);
    ck_assert_int_eq(SVC->nlisten, 1);
    ck_assert_str_eq(SVC->listen[0].spec, "127.0.0.1:6380");
    ck_assert_int_eq(SVC->listen_mode, 0660);
    ck_assert_int_eq(SVC->balance, BALANCE_ROUND_ROBIN);
    ck_assert_int_eq(SVC->retries, 2);
    ck_assert_int_eq(SVC->health.fail_after, 3);
    ck_assert_int_eq(SVC->health.rise_after, 2);
    ck_assert_int_eq(SVC->health.interval, 500);
    ck_assert_int_eq(SVC->health.timeout, 1000);
    ck_assert_int_eq(SVC->health.send_len, 0);
    ck_assert_str_eq(SVC->health.send, "");
    ck_assert_int_eq(SVC->health.expect_len, 0);
    ck_assert_int_eq(SVC->health.check_up, 0);
    ck_assert_int_eq(SVC->resolve_interval, 30000);
    ck_assert_int_eq(SVC->max_active, -1);
    ck_assert_int_eq(SVC->max_queued, -1);
    ck_assert_str_eq(SVC->targets[0].name, "127.0.0.1:6379");
    ck_assert_int_eq(SVC->targets[0].weight, 1);
    ck_assert_int_eq(SVC->targets[0].backup, 0);
    ck_assert_str_eq(SVC->targets[0].unix_path, "");
}
END_TEST

START_TEST(single_env_every_new_setting)
{
    ck_assert_int_eq(load(NULL, ENV(
        "BALANCE=least_latency", "RETRIES=100", "HEALTH_FAIL_AFTER=1000", "HEALTH_RISE_AFTER=1",
        "HEALTH_INTERVAL=10", "HEALTH_TIMEOUT=600000", "HEALTH_SEND=PING\\r\\n",
        "HEALTH_EXPECT=+PONG\\r\\n", "HEALTH_CHECK_UP=yes", "PROXY_RESOLVE_INTERVAL=-1",
        "LIMITS_MAX_ACTIVE=1", "LIMITS_MAX_QUEUED=0", "LOCAL_LISTEN_MODE=600",
        "TARGET_NAME_1=main", "TARGET_WEIGHT_1=1000", "TARGET_BACKUP_1=1",
        "TARGET_UNIX_2=/tmp/up.sock", "TARGET_BACKUP_2=true", BASE_ENV)), PMX_OK);
    ck_assert_int_eq(SVC->balance, BALANCE_LEAST_LATENCY);
    ck_assert_int_eq(SVC->retries, 100);
    ck_assert_int_eq(SVC->health.fail_after, 1000);
    ck_assert_int_eq(SVC->health.rise_after, 1);
    ck_assert_int_eq(SVC->health.interval, 10);
    ck_assert_int_eq(SVC->health.timeout, 600000);
    ck_assert_int_eq(SVC->health.send_len, 6);
    ck_assert_str_eq(SVC->health.send, "PING\r\n");
    ck_assert_int_eq(SVC->health.expect_len, 7);
    ck_assert_str_eq(SVC->health.expect, "+PONG\r\n");
    ck_assert_int_eq(SVC->health.check_up, 1);
    ck_assert_int_eq(SVC->resolve_interval, -1);
    ck_assert_int_eq(SVC->max_active, 1);
    ck_assert_int_eq(SVC->max_queued, 0);
    ck_assert_int_eq(SVC->listen_mode, 0600);
    ck_assert_int_eq(SVC->ntargets, 2);
    ck_assert_str_eq(SVC->targets[0].name, "main");
    ck_assert_int_eq(SVC->targets[0].weight, 1000);
    ck_assert_int_eq(SVC->targets[0].backup, 1);
    ck_assert_str_eq(SVC->targets[1].name, "/tmp/up.sock");
    ck_assert_str_eq(SVC->targets[1].unix_path, "/tmp/up.sock");
    ck_assert_int_eq(SVC->targets[1].backup, 1);
    ck_assert_int_eq(SVC->targets[1].addr.ss_family, AF_UNIX);
}
END_TEST

START_TEST(single_yaml_top_level_service_settings)
{
    /* Every per-service setting may be at the top level of the single form. */
    ck_assert_int_eq(load(
        "listen: [\"127.0.0.1:7001\", \"unix:/tmp/pmx-x.sock\"]\n"
        "listen_mode: \"0666\"\n"
        "pool: {connections: 1, resolve_interval: 100}\n"
        "balance: ip_hash\n"
        "retries: 1\n"
        "health: {interval: 3600000, timeout: 10, send: \"\\\\x00\\\\xff\\t\\\\\\\\\"}\n"
        "limits: {max_active: 10000000, max_queued: 10000000}\n"
        "targets: [{host: 127.0.0.1, port: 1}]\n", NULL), PMX_OK);
    ck_assert_int_eq(cfg->services_form, 0);
    ck_assert_int_eq(SVC->nlisten, 2);
    ck_assert_str_eq(SVC->listen[0].spec, "127.0.0.1:7001");
    ck_assert_str_eq(SVC->listen[1].where.path, "/tmp/pmx-x.sock");
    ck_assert_int_eq(SVC->listen_mode, 0666);
    ck_assert_int_eq(SVC->resolve_interval, 100);
    ck_assert_int_eq(SVC->balance, BALANCE_IP_HASH);
    ck_assert_int_eq(SVC->retries, 1);
    ck_assert_int_eq(SVC->health.interval, 3600000);
    ck_assert_int_eq(SVC->health.timeout, 10);
    /* YAML decodes its own escapes first ("\\x00" is \x00, "\t" a tab,
     * "\\\\" two backslashes), then the C escapes ("\\" is one). */
    ck_assert_int_eq(SVC->health.send_len, 4);
    ck_assert_mem_eq(SVC->health.send, "\0\xff\t\\", 4);
    ck_assert_int_eq(SVC->max_active, 10000000);
}
END_TEST

START_TEST(probe_escapes)
{
    static const struct {
        const char *yaml;   /* the value of health.send */
        const char *want;
        size_t len;
    } cases[] = {
        { "PING\\r\\n", "PING\r\n", 6 },                    /* plain: C escapes */
        { "'PING\\r\\n'", "PING\r\n", 6 },                  /* single quotes: same */
        { "\"PING\\r\\n\"", "PING\r\n", 6 },                /* YAML's own escapes */
        { "\"a\\\\x41\\\\x4a\\\\x4b\\\\\\\\\"", "aAJK\\", 5 },
        { "\"\\\\x00\\\\x7f\"", "\0\x7f", 2 },
        { "\"\\\\t\"", "\t", 1 },
        { "\"\"", "", 0 },
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(cases); i++) {
        char yaml[256];
        snprintf(yaml, sizeof yaml, "local: {port: 1}\npool: {connections: 1}\n"
                 "targets: [{host: 127.0.0.1, port: 2}]\nhealth:\n  expect: %s\n", cases[i].yaml);
        ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s: %s", cases[i].yaml, err);
        ck_assert_int_eq(SVC->health.expect_len, cases[i].len);
        ck_assert_mem_eq(SVC->health.expect, cases[i].want, cases[i].len);
        ck_assert_int_eq(SVC->health.expect[cases[i].len], '\0');
    }
    /* The longest: CONFIG_PROBE_MAX - 1 bytes after escapes. */
    char env[16 + 4 * CONFIG_PROBE_MAX];
    int o = snprintf(env, sizeof env, "HEALTH_SEND=");
    for (int i = 0; i < CONFIG_PROBE_MAX - 1; i++)
        o += snprintf(env + o, sizeof env - (size_t)o, "\\x%02x", i & 0xff);
    ck_assert_int_eq(load(NULL, ENV(env, BASE_ENV)), PMX_OK);
    ck_assert_int_eq(SVC->health.send_len, CONFIG_PROBE_MAX - 1);
    ck_assert_int_eq((unsigned char)SVC->health.send[255 % (CONFIG_PROBE_MAX - 1)], 255 % (CONFIG_PROBE_MAX - 1));
}
END_TEST

START_TEST(targets_beyond_connections)
{
    /* Targets are independent of pool.connections: extra ones balance and
     * fail over. */
    ck_assert_int_eq(load(NULL, ENV("PROXY_CONNECTIONS_CNT=1", "TARGET_HOST_2=127.0.0.1", "TARGET_PORT_2=2",
                                    "TARGET_HOST_3=127.0.0.1", "TARGET_PORT_3=3", "LOCAL_PORT=6380",
                                    "TARGET_HOST_1=127.0.0.1", "TARGET_PORT_1=6379")), PMX_OK);
    ck_assert_int_eq(SVC->connections, 1);
    ck_assert_int_eq(SVC->ntargets, 3);
    ck_assert_int_eq(SVC->effective_mode, MODE_FIFO);
    ck_assert_int_eq(load("local: {port: 6380}\npool: {connections: 2}\ntargets:\n"
                          "  - {host: 127.0.0.1, port: 1}\n  - {host: 127.0.0.1, port: 2}\n"
                          "  - {host: 127.0.0.1, port: 3}\n", NULL), PMX_OK);
    ck_assert_int_eq(SVC->ntargets, 3);
    ck_assert_int_eq(SVC->connections, 2);
}
END_TEST

START_TEST(target_names)
{
    ck_assert_int_eq(load(
        "local: {port: 6380}\npool: {connections: 1}\ntargets:\n"
        "  - {host: 127.0.0.1, port: 1}\n"                  /* 127.0.0.1:1 */
        "  - {host: 127.0.0.1, port: 1}\n"                  /* 127.0.0.1:1#3: #2 is taken */
        "  - {name: \"127.0.0.1:1#2\", host: 127.0.0.1, port: 1}\n"
        "  - {host: \"[::1]\", port: 1}\n"                  /* [::1]:1 */
        "  - {name: \"a b/c:d\", unix: /x}\n"               /* any bytes but controls */
        "  - {unix: /x}\n", NULL), PMX_OK);
    ck_assert_str_eq(SVC->targets[0].name, "127.0.0.1:1");
    ck_assert_str_eq(SVC->targets[1].name, "127.0.0.1:1#3");
    ck_assert_str_eq(SVC->targets[2].name, "127.0.0.1:1#2");
    ck_assert_str_eq(SVC->targets[3].name, "[::1]:1");
    ck_assert_str_eq(SVC->targets[4].name, "a b/c:d");
    ck_assert_str_eq(SVC->targets[5].name, "/x");
}
END_TEST

START_TEST(fixed_changes_compare_addresses)
{
    struct config *other = calloc(1, sizeof *other);
    char out[128];
    ck_assert_ptr_nonnull(other);
    ck_assert_int_eq(load("listen: [\"127.0.0.1:0080\", \"unix:/tmp/a\"]\npool: {connections: 1}\n"
                          "targets: [{host: 127.0.0.1, port: 1}]\n", NULL), PMX_OK);
    ck_assert_int_eq(config_load(other, write_yaml("listen: [\"127.0.0.1:80\", \"unix:/tmp/a\"]\n"
                                                   "pool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 1}]\n"),
                                 NULL, err, sizeof err), PMX_OK);
    config_service_fixed_changes(SVC, &other->services[0], out, sizeof out);
    ck_assert_str_eq(out, "");
    config_free(other);
    ck_assert_int_eq(config_load(other, write_yaml("listen: [\"127.0.0.1:80\", \"unix:/tmp/b\"]\n"
                                                   "pool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 1}]\n"),
                                 NULL, err, sizeof err), PMX_OK);
    config_service_fixed_changes(SVC, &other->services[0], out, sizeof out);
    ck_assert_str_eq(out, "listen");
    config_free(other);
    free(other);
}
END_TEST

START_TEST(env_listen_over_yaml_listen)
{
    /* LOCAL_HOST/LOCAL_PORT replace listen[1] of the file. */
    const char *yaml = "listen: [\"unix:/tmp/a.sock\", \"127.0.0.1:7002\"]\npool: {connections: 1}\n"
                       "targets: [{host: 127.0.0.1, port: 1}]\n";
    ck_assert_int_eq(load(yaml, ENV("LOCAL_PORT=7003")), PMX_OK);
    ck_assert_int_eq(SVC->nlisten, 2);
    ck_assert_str_eq(SVC->listen[0].spec, "127.0.0.1:7003");
    ck_assert_int_eq(SVC->listen[0].where.unix_socket, 0);
    ck_assert_int_eq(sa_port(&SVC->listen[0].addr), 7003);
    ck_assert_str_eq(SVC->listen[1].spec, "127.0.0.1:7002");
    check_error(load(yaml, ENV("LOCAL_HOST=::1")),
                "LOCAL_PORT: missing (required; a port 1-65535)", 0);
    ck_assert_int_eq(load("listen: [\"127.0.0.1:7002\"]\npool: {connections: 1}\n"
                          "targets: [{host: 127.0.0.1, port: 1}]\n", ENV("LOCAL_HOST=::1")), PMX_OK);
    ck_assert_str_eq(SVC->listen[0].spec, "[::1]:7002");
}
END_TEST

/* ---- bad configurations ---- */

/* A valid service, for the cases that need one first. */
#define SVC_A "  - name: a\n    listen: [\"127.0.0.1:7001\"]\n    pool: {connections: 1}\n" \
              "    targets: [{host: 127.0.0.1, port: 1}]\n"
#define SERVICE_KEYS "name, listen, listen_mode, local, exchange, pool, balance, retries, health, limits, session, send_proxy, accept_proxy, accept_proxy_from, targets, request_log, allow, deny, routes, route_max_bytes, route_timeout, route_default"

static const struct {
    const char *yaml;
    const char *want;   /* @FILE@: the file's path */
    int prefix;
} services_bad[] = {
    { "services:\n" SVC_A SVC_A,
      "services[2].name (@FILE@ line 6): \"a\" is used twice (also services[1].name, line 2)", 0 },
    { "services:\n  - name: \"a b\"\n",
      "services[1].name (@FILE@ line 2): \"a b\" is not a service name (1-64 characters of A-Z a-z 0-9 _ . -)", 0 },
    { "services:\n  - name: \"\"\n",
      "services[1].name (@FILE@ line 2): \"\" is not a service name (1-64 characters of A-Z a-z 0-9 _ . -)", 0 },
    { "services:\n  - name: a/b\n",
      "services[1].name (@FILE@ line 2): \"a/b\" is not a service name (1-64 characters of A-Z a-z 0-9 _ . -)", 0 },
    { "services:\n  - name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
      "services[1].name (@FILE@ line 2): \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is not a service name (1-64 characters of A-Z a-z 0-9 _ . -)", 0 },
    { "services:\n  - listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].name (@FILE@ line 2): missing (required; a service name 1-64 characters of A-Z a-z 0-9 _ . -)", 0 },
    { "services:\n  - name: a\n    listen: [\"localhost\"]\n",
      "services[1].listen[1] (@FILE@ line 3): \"localhost\" missing port (HOST:PORT, [IPV6]:PORT or unix:/path)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\", \"::1:80\"]\n",
      "services[1].listen[2] (@FILE@ line 3): \"::1:80\" an IPv6 address needs brackets: [IPV6]:PORT", 0 },
    { "services:\n  - name: a\n    listen:\n      - \"[::1]80\"\n",
      "services[1].listen[1] (@FILE@ line 4): \"[::1]80\" expected [IPV6]:PORT", 0 },
    { "services:\n  - name: a\n    listen: [\"h:0\"]\n",
      "services[1].listen[1] (@FILE@ line 3): \"h:0\" \"0\" is not a port (1-65535)", 0 },
    { "services:\n  - name: a\n    listen: [\":80\"]\n",
      "services[1].listen[1] (@FILE@ line 3): \":80\" missing host", 0 },
    { "services:\n  - name: a\n    listen: [\"unix:\"]\n",
      "services[1].listen[1] (@FILE@ line 3): \"unix:\" missing socket path after unix:", 0 },
    { "services:\n  - name: a\n    listen: [\"a b:1\"]\n",
      "services[1].listen[1] (@FILE@ line 3): \"a b:1\" is not a listen address (HOST:PORT, [IPV6]:PORT or unix:/path)", 0 },
    { "services:\n  - name: a\n    listen: [{a: 1}]\n",
      "services[1].listen[1] (@FILE@ line 3): expected a listen address (HOST:PORT, [IPV6]:PORT or unix:/path), not a mapping", 0 },
    { "services:\n  - name: a\n    listen: \"127.0.0.1:1\"\n",
      "services[1].listen (@FILE@ line 3): expected a list of listen addresses (HOST:PORT, [IPV6]:PORT or unix:/path), not a scalar", 0 },
    { "services:\n  - name: a\n    listen: [\"1:1\", \"2:2\", \"3:3\", \"4:4\", \"5:5\", \"6:6\", \"7:7\", \"8:8\",\n"
      "      \"9:9\", \"10:10\", \"11:11\", \"12:12\", \"13:13\", \"14:14\", \"15:15\", \"16:16\", \"17:17\"]\n",
      "services[1].listen[17] (@FILE@ line 4): too many listen addresses (at most 16)", 0 },
    { "services:\n" SVC_A "  - name: b\n    local: {port: 7001}\n    pool: {connections: 1}\n"
      "    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[2].local.port (@FILE@ line 7): \"127.0.0.1:7001\" is already listened on by services[1].listen[1] (127.0.0.1:7001)", 0 },
    { "services:\n  - name: a\n    listen: [\"unix:/tmp/x\", \"unix:/tmp/x\"]\n    pool: {connections: 1}\n"
      "    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].listen[2] (@FILE@ line 3): \"unix:/tmp/x\" is already listened on by services[1].listen[1] (unix:/tmp/x)", 0 },
    { "services:\n" SVC_A "  - name: b\n    listen: [\"127.0.0.2:1\", \"localhost:7001\"]\n"
      "    pool: {connections: 1}\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[2].listen[2] (@FILE@ line 7): \"localhost:7001\" is already listened on by services[1].listen[1] (127.0.0.1:7001)", 0 },
    { "services:\n  - name: a\n    pool: {connections: 1}\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].listen (@FILE@ line 2): missing (at least one listen address is required: "
      "listen: [HOST:PORT, [IPV6]:PORT or unix:/path], or local: {host, port})", 0 },
    { "services:\n  - name: a\n    local: {host: 127.0.0.1}\n    pool: {connections: 1}\n"
      "    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].local.port (@FILE@ line 2): missing (required; a port 1-65535)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    local: {port: 2}\n",
      "services[1].local.port (@FILE@ line 4): conflicts with services[1].listen[1] (line 3): "
      "give listen or local.host/local.port, not both", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n",
      "services[1].targets (@FILE@ line 2): missing (at least one target is required)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].pool.connections (@FILE@ line 2): missing (required; a number 1-100000)", 0 },
    { "services: []\n", "services (@FILE@ line 1): missing (at least one service is required)", 0 },
    { "services: {a: 1}\n",
      "services (@FILE@ line 1): expected a list of services (" SERVICE_KEYS "), not a mapping", 0 },
    { "services:\n  - 5\n",
      "services[1] (@FILE@ line 2): expected a mapping (" SERVICE_KEYS "), not a scalar", 0 },
    { "services:\n  - name: a\n    bogus: 1\n",
      "services[1].bogus (@FILE@ line 3): unknown setting (a service takes " SERVICE_KEYS ")", 0 },
    { "services:\n  - name: a\n    services: []\n",
      "services[1].services (@FILE@ line 3): unknown setting (a service takes " SERVICE_KEYS ")", 0 },
    { "services:\n  - name: a\n    log_level: 1\n",
      "services[1].log_level (@FILE@ line 3): unknown setting (a service takes " SERVICE_KEYS ")", 0 },
    { "services:\n  - name: a\n    health: {fall: 1}\n",
      "services[1].health.fall (@FILE@ line 3): unknown setting (health takes fail_after, rise_after, interval, timeout, send, expect, check_up)", 0 },
    { "services:\n  - name: a\n    health: 5\n", "services[1].health (@FILE@ line 3): expected a mapping", 0 },
    { "services:\n  - name: a\n    retries: [1]\n",
      "services[1].retries (@FILE@ line 3): expected a number (0-100), not a list", 0 },
    { "services:\n  - name: a\n    targets: [{host: a, port: 1, wieght: 2}]\n",
      "services[1].targets[1].wieght (@FILE@ line 3): unknown setting (a target takes name, host, port, unix, weight, backup, keep_alive, username, password)", 0 },
    { "services:\n  - name: a\n    targets:\n      - {host: a, port: 1}\n      - {host: a, port: 1, weight: 0}\n",
      "services[1].targets[2].weight (@FILE@ line 5): \"0\" is out of range (1-1000)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n"
      "    targets:\n      - {name: p, host: 127.0.0.1, port: 1}\n      - {name: p, unix: /x}\n",
      "services[1].targets[2].name (@FILE@ line 7): \"p\" is used twice (also services[1].targets[1].name, line 6)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n"
      "    targets:\n      - {host: 127.0.0.1, port: 1, unix: /x}\n",
      "services[1].targets[1].unix (@FILE@ line 6): a target has host and port, or unix, not both", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n"
      "    targets:\n      - {weight: 2}\n",
      "services[1].targets[1].host (@FILE@ line 6): missing (every target needs a host and a port, or a unix path)", 0 },
    { "services:\n  - name: a\n    listen: [\"127.0.0.1:1\"]\n    pool: {connections: 1}\n"
      "    targets:\n      - {host: nonexistent.invalid, port: 1}\n",
      "services[1].targets[1].host (@FILE@ line 6): \"nonexistent.invalid\" cannot be resolved (", 1 },
    { "services:\n  - name: a\n    listen: [\"nonexistent.invalid:1\"]\n    pool: {connections: 1}\n"
      "    targets: [{host: 127.0.0.1, port: 1}]\n",
      "services[1].listen[1] (@FILE@ line 3): \"nonexistent.invalid\" cannot be resolved (", 1 },
    /* Inherited values are named where the top level sets them. */
    { "exchange: {mode: fifo}\npool: {connections: 2}\nservices:\n" SVC_A
      "  - name: b\n    listen: [\"127.0.0.1:7002\"]\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "exchange.mode (@FILE@ line 1): \"fifo\" needs exactly 1 upstream connection (pool.connections is 2)", 0 },
    { "exchange: {mode: fifo}\nservices:\n" SVC_A
      "  - name: b\n    listen: [\"127.0.0.1:7002\"]\n    pool: {connections: 3}\n    targets: [{host: 127.0.0.1, port: 1}]\n",
      "exchange.mode (@FILE@ line 1): \"fifo\" needs exactly 1 upstream connection (services[2].pool.connections is 3)", 0 },
    /* The top level holds no service next to services:. */
    { "local: {port: 1}\nservices:\n" SVC_A,
      "local.port (@FILE@ line 1): not allowed next to services: (set it in each service; the top level "
      "holds only the exchange, pool, health and limits defaults)", 0 },
    { "services:\n" SVC_A "targets: [{host: 127.0.0.1, port: 1}]\n",
      "targets (@FILE@ line 6): not allowed next to services: (set it in each service; the top level "
      "holds only the exchange, pool, health and limits defaults)", 0 },
    { "listen: [\"127.0.0.1:1\"]\nservices:\n" SVC_A,
      "listen (@FILE@ line 1): not allowed next to services: (set it in each service; the top level "
      "holds only the exchange, pool, health and limits defaults)", 0 },
    { "services:\n" SVC_A "balance: first\n",
      "balance (@FILE@ line 6): not allowed next to services: (set it in each service; the top level "
      "holds only the exchange, pool, health and limits defaults)", 0 },
    { "name: a\n",
      "name (@FILE@ line 1): unknown setting (the top level takes log_level, log_file, shutdown_timeout, "
      "admin, services, log_mask_ip, allow, deny, listen, listen_mode, local, exchange, pool, balance, retries, health, limits, session, send_proxy, accept_proxy, accept_proxy_from, targets, request_log, routes, route_max_bytes, route_timeout, route_default)", 0 },
    { "local: {port: 1}\nlisten: [\"127.0.0.1:2\"]\n",
      "local.port (@FILE@ line 1): conflicts with listen[1] (line 2): give listen or local.host/local.port, not both", 0 },
    { "listen: []\npool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 1}]\n",
      "local.port (@FILE@): missing (required; a port 1-65535)", 0 },
    { "targets: [{unix: \"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}]\n",
      "targets[1].unix (@FILE@ line 1): \"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is too long (at most 107 bytes)", 0 },
    { "targets: [{unix: \"\"}]\n",
      "targets[1].unix (@FILE@ line 1): \"\" is not a unix socket path (1-107 bytes, no control characters)", 0 },
    { "targets: [{unix: \"/a\\nb\"}]\n",
      "targets[1].unix (@FILE@ line 1): \"/a\\x0ab\" is not a unix socket path (1-107 bytes, no control characters)", 0 },
    { "listen: [\"127.0.0.1:8\\n0\"]\n",
      "listen[1] (@FILE@ line 1): \"127.0.0.1:8\\x0a0\" is not a listen address (HOST:PORT, [IPV6]:PORT or unix:/path)", 0 },
    { "listen: [\"unix:/a\\x01\"]\n",
      "listen[1] (@FILE@ line 1): \"unix:/a\\x01\" is not a listen address (HOST:PORT, [IPV6]:PORT or unix:/path)", 0 },
    { "targets: [{name: \"\", unix: /x}]\n",
      "targets[1].name (@FILE@ line 1): \"\" is not a target name (1-279 bytes, no control characters)", 0 },
    { "targets: [{name: \"a\\tb\", unix: /x}]\n",
      "targets[1].name (@FILE@ line 1): \"a\\x09b\" is not a target name (1-279 bytes, no control characters)", 0 },
    { "targets: [{backup: maybe}]\n",
      "targets[1].backup (@FILE@ line 1): \"maybe\" is not a boolean (true/false, yes/no, on/off, 0/1)", 0 },
    { "listen_mode: 0999\n", "listen_mode (@FILE@ line 1): \"0999\" is not a file mode (octal 0000-0777)", 0 },
    { "listen_mode: [1]\n", "listen_mode (@FILE@ line 1): expected a file mode (octal 0000-0777), not a list", 0 },
    { "local.port: 5\n", "local.port (@FILE@ line 1): '.' in a key (keys are names: nest mappings)", 0 },
    { "\"targets[2]\": {host: a, port: 1}\n",
      "targets[2] (@FILE@ line 1): '[' in a key (keys are names: nest mappings)", 0 },
    { "services:\n  - name: a\n    \"health]\": 1\n",
      "services[1].health] (@FILE@ line 3): ']' in a key (keys are names: nest mappings)", 0 },
    { "health: {send: \"\\\\q\"}\n",
      "health.send (@FILE@ line 1): \"\\\\q\" has a bad escape (escapes \\r \\n \\t \\\\ \\xNN)", 0 },
};

START_TEST(services_bad_value)
{
    check_error(load(services_bad[_i].yaml, NULL), services_bad[_i].want, services_bad[_i].prefix);
}
END_TEST

static const struct {
    const char *var;
    const char *want;
} env_bad[] = {
    { "BALANCE=fastest", "BALANCE: \"fastest\" is not a balancing strategy (round_robin, random, ip_hash, least_conn, least_latency, first)" },
    { "BALANCE=", "BALANCE: \"\" is not a balancing strategy (round_robin, random, ip_hash, least_conn, least_latency, first)" },
    { "RETRIES=-1", "RETRIES: \"-1\" is out of range (0-100)" },
    { "RETRIES=101", "RETRIES: \"101\" is out of range (0-100)" },
    { "RETRIES=x", "RETRIES: \"x\" is not a number (0-100)" },
    { "HEALTH_FAIL_AFTER=0", "HEALTH_FAIL_AFTER: \"0\" is out of range (1-1000)" },
    { "HEALTH_FAIL_AFTER=1001", "HEALTH_FAIL_AFTER: \"1001\" is out of range (1-1000)" },
    { "HEALTH_RISE_AFTER=0", "HEALTH_RISE_AFTER: \"0\" is out of range (1-1000)" },
    { "HEALTH_RISE_AFTER=1001", "HEALTH_RISE_AFTER: \"1001\" is out of range (1-1000)" },
    { "HEALTH_INTERVAL=9", "HEALTH_INTERVAL: \"9\" is out of range (10-3600000 ms)" },
    { "HEALTH_INTERVAL=3600001", "HEALTH_INTERVAL: \"3600001\" is out of range (10-3600000 ms)" },
    { "HEALTH_TIMEOUT=9", "HEALTH_TIMEOUT: \"9\" is out of range (10-600000 ms)" },
    { "HEALTH_TIMEOUT=600001", "HEALTH_TIMEOUT: \"600001\" is out of range (10-600000 ms)" },
    { "HEALTH_TIMEOUT=-1", "HEALTH_TIMEOUT: \"-1\" is out of range (10-600000 ms)" },
    { "HEALTH_SEND=\\q", "HEALTH_SEND: \"\\\\q\" has a bad escape (escapes \\r \\n \\t \\\\ \\xNN)" },
    { "HEALTH_SEND=a\\", "HEALTH_SEND: \"a\\\\\" has a bad escape (escapes \\r \\n \\t \\\\ \\xNN)" },
    { "HEALTH_SEND=\\x4", "HEALTH_SEND: \"\\\\x4\" has a bad escape (escapes \\r \\n \\t \\\\ \\xNN)" },
    { "HEALTH_EXPECT=\\xZZ", "HEALTH_EXPECT: \"\\\\xZZ\" has a bad escape (escapes \\r \\n \\t \\\\ \\xNN)" },
    { "HEALTH_CHECK_UP=maybe", "HEALTH_CHECK_UP: \"maybe\" is not a boolean (0/1, true/false, yes/no)" },
    { "PROXY_RESOLVE_INTERVAL=0", "PROXY_RESOLVE_INTERVAL: \"0\" is out of range (-1 or 100-86400000 ms)" },
    { "PROXY_RESOLVE_INTERVAL=99", "PROXY_RESOLVE_INTERVAL: \"99\" is out of range (-1 or 100-86400000 ms)" },
    { "PROXY_RESOLVE_INTERVAL=86400001", "PROXY_RESOLVE_INTERVAL: \"86400001\" is out of range (-1 or 100-86400000 ms)" },
    { "LIMITS_MAX_ACTIVE=0", "LIMITS_MAX_ACTIVE: \"0\" is out of range (-1 or 1-10000000)" },
    { "LIMITS_MAX_ACTIVE=-2", "LIMITS_MAX_ACTIVE: \"-2\" is out of range (-1 or 1-10000000)" },
    { "LIMITS_MAX_ACTIVE=10000001", "LIMITS_MAX_ACTIVE: \"10000001\" is out of range (-1 or 1-10000000)" },
    { "LIMITS_MAX_QUEUED=-2", "LIMITS_MAX_QUEUED: \"-2\" is out of range (-1 or 0-10000000)" },
    { "LIMITS_MAX_QUEUED=10000001", "LIMITS_MAX_QUEUED: \"10000001\" is out of range (-1 or 0-10000000)" },
    { "LOCAL_LISTEN_MODE=999", "LOCAL_LISTEN_MODE: \"999\" is not a file mode (octal 0000-0777)" },
    { "LOCAL_LISTEN_MODE=1000", "LOCAL_LISTEN_MODE: \"1000\" is out of range (octal 0000-0777)" },
    { "LOCAL_LISTEN_MODE=0x1ff", "LOCAL_LISTEN_MODE: \"0x1ff\" is not a file mode (octal 0000-0777)" },
    { "LOCAL_LISTEN_MODE=", "LOCAL_LISTEN_MODE: \"\" is not a file mode (octal 0000-0777)" },
    { "LOCAL_LISTEN_MODE=-1", "LOCAL_LISTEN_MODE: \"-1\" is not a file mode (octal 0000-0777)" },
    { "TARGET_WEIGHT_1=0", "TARGET_WEIGHT_1: \"0\" is out of range (1-1000)" },
    { "TARGET_WEIGHT_1=1001", "TARGET_WEIGHT_1: \"1001\" is out of range (1-1000)" },
    { "TARGET_BACKUP_1=2", "TARGET_BACKUP_1: \"2\" is not a boolean (0/1, true/false, yes/no)" },
    { "TARGET_NAME_1=", "TARGET_NAME_1: \"\" is not a target name (1-279 bytes, no control characters)" },
    { "TARGET_NAME_1=a\nb", "TARGET_NAME_1: \"a\\x0ab\" is not a target name (1-279 bytes, no control characters)" },
    { "TARGET_UNIX_1=/x", "TARGET_UNIX_1: a target has host and port, or unix, not both" },
    { "TARGET_UNIX_2=", "TARGET_UNIX_2: \"\" is not a unix socket path (1-107 bytes, no control characters)" },
    { "TARGET_UNIX_2=/a\tb", "TARGET_UNIX_2: \"/a\\x09b\" is not a unix socket path (1-107 bytes, no control characters)" },
    { "TARGET_UNIX_1025=/x", "TARGET_UNIX_1025: no such target (targets are numbered 1-1024)" },
    { "TARGET_NAME_0=x", "TARGET_NAME_0: no such target (targets are numbered 1-1024)" },
    { "TARGET_WEIGHT_2=5", "TARGET_HOST_2: missing (every target needs a host and a port, or a unix path)" },
};

START_TEST(env_bad_value)
{
    check_error(load(NULL, ENV(env_bad[_i].var, BASE_ENV)), env_bad[_i].want, 0);
}
END_TEST

START_TEST(env_names_unique)
{
    check_error(load(NULL, ENV("TARGET_NAME_1=a", "TARGET_HOST_2=127.0.0.1", "TARGET_PORT_2=1",
                               "TARGET_NAME_2=a", BASE_ENV)),
                "TARGET_NAME_2: \"a\" is used twice (also TARGET_NAME_1)", 0);
    check_error(load(NULL, ENV("TARGET_UNIX_1=/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                               "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", BASE_ENV)),
                "TARGET_UNIX_1: \"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\" is too long (at most 107 bytes)", 0);
}
END_TEST

START_TEST(env_with_services)
{
    static const char *const vars[] = {
        "LOCAL_PORT=1", "PROXY_CONNECTIONS_CNT=1", "TARGET_HOST_1=127.0.0.1", "TARGET_CONN_1_KEEP_ALIVE=1",
        "HEALTH_SEND=x", "BALANCE=first", "LOCAL_LISTEN_MODE=0600", "TARGET_HOST_9999=x",
    };
    for (size_t i = 0; i < PMX_ARRAY_LEN(vars); i++) {
        char want[256];
        snprintf(want, sizeof want, "%.*s: environment variables configure the single-service form "
                 "only; this file has services:", (int)strcspn(vars[i], "="), vars[i]);
        check_error(load("services:\n" SVC_A, ENV("LOG_LEVEL=2", vars[i])), want, 0);
    }
    /* The global ones are fine. */
    ck_assert_int_eq(load("services:\n" SVC_A, ENV("LOG_LEVEL=2", "LOG_FILE=/tmp/x", "SHUTDOWN_TIMEOUT=1",
                                                   "UNRELATED=1")), PMX_OK);
    ck_assert_int_eq(cfg->log_level, 2);
}
END_TEST

/* ---- dump ---- */

START_TEST(dump_two_services)
{
    ck_assert_int_eq(load(two_services, NULL), PMX_OK);
    char *first = dump_to_string(cfg);

    ck_assert_ptr_nonnull(strstr(first, "\nlog_level: 2\nlog_file: \"\"\nshutdown_timeout: 10000\nservices:\n"
                                        "  - name: \"db\"\n"
                                        "    listen: [\"127.0.0.1:3307\", \"unix:/tmp/pmx-db.sock\"]\n"
                                        "    listen_mode: \"0600\"\n    local:\n      ipv6_only: false\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n    exchange:\n      mode: proxy\n      codec: raw\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n      response_timeout: 2000\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n    balance: least_conn\n    retries: 0\n    health:\n"
                                        "      fail_after: 1\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n      send: \"PING\\\\r\\\\n\"\n      expect: \"+PONG\"\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n      resolve_interval: 30000\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n    limits:\n      max_active: 64\n      max_queued: 100\n"
                                        "      request_memory: 268435456\n"));
    ck_assert_ptr_nonnull(strstr(first,
        "\n    targets:\n"
        "      - { name: \"primary\", host: \"127.0.0.1\", port: 3306, weight: 1, backup: false, keep_alive: false }  # 127.0.0.1:3306\n"
        "      - { name: \"standby\", host: \"::1\", port: 3306, weight: 5, backup: true, keep_alive: false }  # [::1]:3306\n"
        "    request_log:\n      file: \"\"\n      format: json\n      sample: 1\n      max_text: 1024\n"
        "    # listen: 127.0.0.1:3307, unix:/tmp/pmx-db.sock\n"
        "    # mode: proxy (explicit)\n"
        "  - name: \"cache.1\"\n    listen_mode: \"0660\"\n"
        "    local:\n      host: \"::1\"\n      port: 6380\n      ipv6_only: false\n      max_connections: 10\n"));
    ck_assert_ptr_nonnull(strstr(first,
        "      - { name: \"/run/redis/redis.sock\", unix: \"/run/redis/redis.sock\", weight: 1, backup: false, keep_alive: false }  # unix:/run/redis/redis.sock\n"
        "      - { name: \"127.0.0.1:6379\", host: \"127.0.0.1\", port: 6379, weight: 1, backup: false, keep_alive: true }  # 127.0.0.1:6379\n"
        "      - { name: \"127.0.0.1:6379#2\", host: \"127.0.0.1\", port: 6379, weight: 1, backup: false, keep_alive: false }  # 127.0.0.1:6379\n"
        "    request_log:\n      file: \"\"\n      format: json\n      sample: 1\n      max_text: 1024\n"
        "    # listen: [::1]:6380\n"
        "    # mode: fifo (auto: connections == 1)\n"));
    const char *tail = "    # mode: fifo (auto: connections == 1)\n";
    ck_assert_str_eq(first + strlen(first) - strlen(tail), tail);

    /* The dump loads back to the same configuration. */
    struct config *again = calloc(1, sizeof *again);
    ck_assert_ptr_nonnull(again);
    const char *path = write_yaml(first);
    ck_assert_msg(config_load(again, path, NULL, err, sizeof err) == PMX_OK, "%s", err);
    char *second = dump_to_string(again);
    ck_assert_str_eq(second, first);
    char changed[256];
    for (int k = 0; k < cfg->nservices; k++) {
        config_service_fixed_changes(&cfg->services[k], &again->services[k], changed, sizeof changed);
        ck_assert_str_eq(changed, "");
    }
    free(first);
    free(second);
    config_free(again);
    free(again);
}
END_TEST

START_TEST(dump_http_note_per_service)
{
    ck_assert_int_eq(load("pool: {connections: 2}\nservices:\n"
                          "  - {name: web, listen: [\"127.0.0.1:1\"], exchange: {codec: http, funnel_async: true},\n"
                          "     targets: [{host: 127.0.0.1, port: 2}]}\n"
                          "  - {name: raw, listen: [\"127.0.0.1:3\"], targets: [{host: 127.0.0.1, port: 2}]}\n",
                          NULL), PMX_OK);
    char *d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d, "    # mode: funnel (auto: connections > 1, max_connections != connections)\n"
                                    "    # http: one request in flight per upstream connection; "
                                    "funnel_async changes nothing for http\n  - name: \"raw\"\n"));
    free(d);
}
END_TEST

START_TEST(dump_single_listen_list)
{
    /* Several listen addresses, or a unix one, dump as listen:. */
    ck_assert_int_eq(load("listen: [\"unix:/tmp/a.sock\"]\npool: {connections: 1}\n"
                          "health: {send: \"\\x01\\u00e9\"}\n"
                          "targets: [{host: 127.0.0.1, port: 1}]\n", NULL), PMX_OK);
    char *first = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(first, "\nshutdown_timeout: 10000\nlisten: [\"unix:/tmp/a.sock\"]\n"
                                        "listen_mode: \"0660\"\nlocal:\n  ipv6_only: false\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n  send: \"\\\\x01\\\\xc3\\\\xa9\"\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n# listen: unix:/tmp/a.sock\n# mode: fifo (auto: connections == 1)\n"));
    ck_assert_ptr_null(strstr(first, "host: \"127.0.0.1\"\n"));
    struct config *again = calloc(1, sizeof *again);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(config_load(again, write_yaml(first), NULL, err, sizeof err), PMX_OK);
    char *second = dump_to_string(again);
    ck_assert_str_eq(second, first);
    ck_assert_int_eq(again->services[0].health.send_len, 3);
    free(first);
    free(second);
    config_free(again);
    free(again);
}
END_TEST

START_TEST(dump_comments_stay_comments)
{
    /* A unix path with what YAML takes as a line break (U+2028, U+0085)
     * is quoted in the values and made safe in the address comments. */
    ck_assert_int_eq(load("listen: [\"unix:/tmp/a\\u2028b\", \"127.0.0.1:7000\"]\npool: {connections: 1}\n"
                          "targets: [{unix: \"/tmp/c\\u0085d\"}]\n", NULL), PMX_OK);
    char *first = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(first, "\nlisten: [\"unix:/tmp/a\\u2028b\", \"127.0.0.1:7000\"]\n"));
    ck_assert_ptr_nonnull(strstr(first, "unix: \"/tmp/c\\u0085d\", weight: 1, backup: false, "
                                        "keep_alive: false }  # unix:/tmp/c?d\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n# listen: unix:/tmp/a?b, 127.0.0.1:7000\n"));
    struct config *again = calloc(1, sizeof *again);
    ck_assert_ptr_nonnull(again);
    ck_assert_msg(config_load(again, write_yaml(first), NULL, err, sizeof err) == PMX_OK, "%s", err);
    char *second = dump_to_string(again);
    ck_assert_str_eq(second, first);
    free(first);
    free(second);
    config_free(again);
    free(again);
}
END_TEST

START_TEST(dump_long_default_names)
{
    /* A default name can be longer than 64 bytes; written back by the dump
     * it is an explicit name, which must load. */
    char yaml[1024], path[NET_UNIX_PATH_MAX], host[CONFIG_HOST_MAX];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    memset(host, 'h', sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(yaml, sizeof yaml, "local: {port: 1}\npool: {connections: 1}\n"
             "targets: [{unix: \"%s\"}, {unix: \"%s\"}]\n", path, path);
    ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(strlen(SVC->targets[1].name), NET_UNIX_PATH_MAX - 1 + 2);   /* "#2" */
    char *first = dump_to_string(cfg);
    struct config *again = calloc(1, sizeof *again);
    ck_assert_ptr_nonnull(again);
    ck_assert_msg(config_load(again, write_yaml(first), NULL, err, sizeof err) == PMX_OK, "%s", err);
    ck_assert_str_eq(again->services[0].targets[1].name, SVC->targets[1].name);
    config_free(again);
    free(first);

    /* A name written is limited by the field: the longest default (a host
     * name of 255 bytes, a port, a suffix) fits. */
    snprintf(yaml, sizeof yaml, "local: {port: 1}\npool: {connections: 1}\n"
             "targets: [{name: \"[%s]:65535#1024\", unix: /x}]\n", host);
    ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s", err);
    snprintf(yaml, sizeof yaml, "local: {port: 1}\npool: {connections: 1}\n"
             "targets: [{name: \"%s%.*s\", unix: /x}]\n", host, CONFIG_TARGET_NAME_MAX - CONFIG_HOST_MAX + 1,
             "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    ck_assert_int_eq(load(yaml, NULL), PMX_ERR);
    ck_assert_ptr_nonnull(strstr(err, "is not a target name (1-279 bytes, no control characters)"));
    free(again);
}
END_TEST

Suite *config_services_suite(void)
{
    Suite *s = suite_create("config_services");

    TCase *good = tcase_create("good");
    tcase_add_unchecked_fixture(good, dir_setup, dir_teardown);
    tcase_add_checked_fixture(good, cfg_setup, cfg_teardown);
    tcase_add_test(good, services_two);
    tcase_add_test(good, services_one_named_default);
    tcase_add_test(good, single_defaults_of_new_settings);
    tcase_add_test(good, single_env_every_new_setting);
    tcase_add_test(good, single_yaml_top_level_service_settings);
    tcase_add_test(good, probe_escapes);
    tcase_add_test(good, targets_beyond_connections);
    tcase_add_test(good, target_names);
    tcase_add_test(good, env_listen_over_yaml_listen);
    tcase_add_test(good, fixed_changes_compare_addresses);
    suite_add_tcase(s, good);

    TCase *bad = tcase_create("bad");
    tcase_add_unchecked_fixture(bad, dir_setup, dir_teardown);
    tcase_add_checked_fixture(bad, cfg_setup, cfg_teardown);
    tcase_add_loop_test(bad, services_bad_value, 0, (int)PMX_ARRAY_LEN(services_bad));
    tcase_add_loop_test(bad, env_bad_value, 0, (int)PMX_ARRAY_LEN(env_bad));
    tcase_add_test(bad, env_names_unique);
    tcase_add_test(bad, env_with_services);
    suite_add_tcase(s, bad);

    TCase *dump = tcase_create("dump");
    tcase_add_unchecked_fixture(dump, dir_setup, dir_teardown);
    tcase_add_checked_fixture(dump, cfg_setup, cfg_teardown);
    tcase_add_test(dump, dump_two_services);
    tcase_add_test(dump, dump_http_note_per_service);
    tcase_add_test(dump, dump_single_listen_list);
    tcase_add_test(dump, dump_comments_stay_comments);
    tcase_add_test(dump, dump_long_default_names);
    suite_add_tcase(s, dump);

    return s;
}
