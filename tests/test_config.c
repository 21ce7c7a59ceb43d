/* Unit tests of the configuration: both front ends, precedence, mode
 * derivation, the dump, reload checks, and that every bad value is refused
 * with one line naming the setting as written and the value. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "codec.h"
#include "config.h"
#include "config_check.h"
#include "suites.h"

/* A valid environment-only configuration: funnel, one target. */
#define BASE_ENV "LOCAL_PORT=6380", "PROXY_CONNECTIONS_CNT=2", \
                 "TARGET_HOST_1=127.0.0.1", "TARGET_PORT_1=6379"
/* The service of the single-service forms. */
#define SVC (&cfg->services[0])

static void sa_text(const struct sockaddr_storage *ss, char *out, size_t n)
{
    const void *a = ss->ss_family == AF_INET
                        ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
                        : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    ck_assert_ptr_nonnull(inet_ntop(ss->ss_family, a, out, (socklen_t)n));
}

static void assert_defaults_except_required(const struct config *c)
{
    ck_assert_int_eq(c->log_level, 1);
    ck_assert_str_eq(c->log_file, "");
    ck_assert_int_eq(c->services[0].ipv6_only, 0);
    ck_assert_int_eq(c->services[0].max_connections, -1);
    ck_assert_int_eq(c->services[0].buffer_size, 65536);
    ck_assert_int_eq(c->services[0].output_limit, 16777216);
    ck_assert_int_eq(c->services[0].mode, MODE_AUTO);
    ck_assert_str_eq(c->services[0].codec, "raw");
    ck_assert_int_eq(c->services[0].funnel_async, 0);
    ck_assert_int_eq(c->services[0].response_timeout, 30000);
    ck_assert_int_eq(c->services[0].queue_limit, 10000);
    ck_assert_int_eq(c->services[0].queue_timeout, -1);
    ck_assert_int_eq(c->services[0].max_message, 67108864);
    ck_assert_int_eq(c->services[0].request_memory, 268435456);
    ck_assert_int_eq(c->services[0].max_wait, 1000);
    ck_assert_int_eq(c->services[0].inactive_timeout, -1);
    ck_assert_int_eq(c->services[0].warmup, 0);
    ck_assert_int_eq(c->services[0].connect_timeout, 5000);
    ck_assert_int_eq(c->services[0].backoff_min, 100);
    ck_assert_int_eq(c->services[0].backoff_max, 5000);
    ck_assert_int_eq(c->shutdown_timeout, 10000);
}

/* ---- good configurations ---- */

START_TEST(env_minimal_gets_defaults)
{
    ck_assert_int_eq(load(NULL, ENV(BASE_ENV)), PMX_OK);
    ck_assert_str_eq(err, "");
    assert_defaults_except_required(cfg);
    ck_assert_str_eq(SVC->listen[0].where.host, "127.0.0.1");
    ck_assert_int_eq(SVC->listen[0].where.port, 6380);
    ck_assert_int_eq(SVC->connections, 2);
    ck_assert_int_eq(SVC->ntargets, 1);
    ck_assert_str_eq(SVC->targets[0].host, "127.0.0.1");
    ck_assert_int_eq(SVC->targets[0].port, 6379);
    ck_assert_int_eq(SVC->targets[0].keep_alive, 0);
    ck_assert_int_eq(SVC->effective_mode, MODE_FUNNEL);
    ck_assert_str_eq(cfg->path, "");

    char a[64];
    ck_assert_int_eq(SVC->listen[0].addr.ss_family, AF_INET);
    ck_assert_int_eq(SVC->listen[0].addr_len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(sa_port(&SVC->listen[0].addr), 6380);
    sa_text(&SVC->listen[0].addr, a, sizeof a);
    ck_assert_str_eq(a, "127.0.0.1");
    ck_assert_int_eq(SVC->targets[0].addr.ss_family, AF_INET);
    ck_assert_int_eq(SVC->targets[0].addr_len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(sa_port(&SVC->targets[0].addr), 6379);
}
END_TEST

START_TEST(env_every_setting)
{
    ck_assert_int_eq(load(NULL, ENV(
        "LOG_LEVEL=3", "LOG_FILE=/var/log/proximux.log", "LOCAL_HOST=::1",
        "LOCAL_PORT=1", "LOCAL_IPV6_ONLY=TRUE", "LOCAL_MAX_CONNECTIONS=1000000",
        "LOCAL_BUFFER_SIZE=1024", "LOCAL_OUTPUT_LIMIT=1073741824",
        "EXCHANGE_MODE=funnel", "EXCHANGE_CODEC=resp", "EXCHANGE_FUNNEL_ASYNC=yes",
        "EXCHANGE_RESPONSE_TIMEOUT=86400000", "EXCHANGE_QUEUE_LIMIT=1",
        "EXCHANGE_QUEUE_TIMEOUT=1", "EXCHANGE_MAX_MESSAGE=1024",
        "PROXY_CONNECTIONS_CNT=100000", "PROXY_INACTIVE_TIMEOUT=1", "PROXY_WARMUP=1",
        "PROXY_CONNECT_TIMEOUT=600000", "PROXY_BACKOFF_MIN=7", "PROXY_BACKOFF_MAX=7",
        "SHUTDOWN_TIMEOUT=0", "LIMITS_REQUEST_MEMORY=65536", "LOCAL_MAX_WAIT=0",
        "TARGET_HOST_1=127.0.0.1", "TARGET_PORT_1=65535", "TARGET_CONN_1_KEEP_ALIVE=No",
        "TARGET_HOST_2=[::1]", "TARGET_PORT_2=2", "TARGET_CONN_2_KEEP_ALIVE=1",
        "UNRELATED=x")), PMX_OK);
    ck_assert_int_eq(cfg->log_level, 3);
    ck_assert_int_eq(SVC->request_memory, 65536);
    ck_assert_int_eq(SVC->max_wait, 0);
    ck_assert_str_eq(cfg->log_file, "/var/log/proximux.log");
    ck_assert_str_eq(SVC->listen[0].where.host, "::1");
    ck_assert_int_eq(SVC->listen[0].where.port, 1);
    ck_assert_int_eq(SVC->ipv6_only, 1);
    ck_assert_int_eq(SVC->max_connections, 1000000);
    ck_assert_int_eq(SVC->buffer_size, 1024);
    ck_assert_int_eq(SVC->output_limit, 1073741824);
    ck_assert_int_eq(SVC->mode, MODE_FUNNEL);
    ck_assert_str_eq(SVC->codec, "resp");
    ck_assert_int_eq(SVC->funnel_async, 1);
    ck_assert_int_eq(SVC->response_timeout, 86400000);
    ck_assert_int_eq(SVC->queue_limit, 1);
    ck_assert_int_eq(SVC->queue_timeout, 1);
    ck_assert_int_eq(SVC->max_message, 1024);
    ck_assert_int_eq(SVC->connections, 100000);
    ck_assert_int_eq(SVC->inactive_timeout, 1);
    ck_assert_int_eq(SVC->warmup, 1);
    ck_assert_int_eq(SVC->connect_timeout, 600000);
    ck_assert_int_eq(SVC->backoff_min, 7);
    ck_assert_int_eq(SVC->backoff_max, 7);
    ck_assert_int_eq(cfg->shutdown_timeout, 0);
    ck_assert_int_eq(SVC->ntargets, 2);
    ck_assert_int_eq(SVC->targets[0].port, 65535);
    ck_assert_int_eq(SVC->targets[0].keep_alive, 0);
    ck_assert_str_eq(SVC->targets[1].host, "::1");
    ck_assert_int_eq(SVC->targets[1].port, 2);
    ck_assert_int_eq(SVC->targets[1].keep_alive, 1);
    ck_assert_int_eq(SVC->effective_mode, MODE_FUNNEL);
    ck_assert_int_eq(SVC->listen[0].addr.ss_family, AF_INET6);
    ck_assert_int_eq(sa_port(&SVC->listen[0].addr), 1);
    ck_assert_int_eq(SVC->targets[1].addr.ss_family, AF_INET6);
    ck_assert_int_eq(SVC->targets[1].addr_len, sizeof(struct sockaddr_in6));
    ck_assert_int_eq(sa_port(&SVC->targets[1].addr), 2);
}
END_TEST

START_TEST(env_unknown_ignored_first_wins)
{
    ck_assert_int_eq(load(NULL, ENV(
        "LOCAL_PORT=7001", "LOCAL_PORT=7002", "FOO=bar", "LOCAL_PORTS=x", "NOEQUALS",
        "=x", "TARGET_HOST_X=x", "TARGET_HOST_1X=x", "TARGET_CONN_1=x", "LOG_LEVELS=9",
        "PROXY_CONNECTIONS_CNT=1", "TARGET_HOST_1=localhost", "TARGET_PORT_1=1")), PMX_OK);
    ck_assert_int_eq(SVC->listen[0].where.port, 7001);
    ck_assert_int_eq(SVC->ntargets, 1);
    ck_assert_str_eq(SVC->targets[0].host, "localhost");
    ck_assert_int_eq(SVC->effective_mode, MODE_FIFO);
}
END_TEST

START_TEST(yaml_every_setting)
{
    ck_assert_int_eq(load(
        "# a comment\n"
        "log_level: 2\n"
        "log_file: \"/tmp/p x.log\"\n"
        "local:\n"
        "  host: localhost\n"
        "  port: 3307\n"
        "  ipv6_only: on\n"
        "  max_connections: 4\n"
        "  buffer_size: 4096\n"
        "  output_limit: '2048'\n"
        "exchange: { mode: proxy, codec: http, funnel_async: yes,\n"
        "            response_timeout: 250, queue_limit: 5, queue_timeout: 60000,\n"
        "            max_message: 1048576 }\n"
        "pool:\n"
        "  connections: 4\n"
        "  inactive_timeout: 30000\n"
        "  warmup: true\n"
        "  connect_timeout: 1000\n"
        "  backoff_min: 10\n"
        "  backoff_max: 20\n"
        "shutdown_timeout: 3000\n"
        "targets:\n"
        "  - { host: 127.0.0.1, port: 3306, keep_alive: true }\n"
        "  - host: \"::1\"\n"
        "    port: 3306\n", NULL), PMX_OK);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(cfg->path, yaml_path);
    ck_assert_int_eq(cfg->log_level, 2);
    ck_assert_str_eq(cfg->log_file, "/tmp/p x.log");
    ck_assert_str_eq(SVC->listen[0].where.host, "localhost");
    ck_assert_int_eq(SVC->listen[0].where.port, 3307);
    ck_assert_int_eq(SVC->ipv6_only, 1);
    ck_assert_int_eq(SVC->max_connections, 4);
    ck_assert_int_eq(SVC->buffer_size, 4096);
    ck_assert_int_eq(SVC->output_limit, 2048);
    ck_assert_int_eq(SVC->mode, MODE_PROXY);
    ck_assert_str_eq(SVC->codec, "http");
    ck_assert_int_eq(SVC->funnel_async, 1);
    ck_assert_int_eq(SVC->response_timeout, 250);
    ck_assert_int_eq(SVC->queue_limit, 5);
    ck_assert_int_eq(SVC->queue_timeout, 60000);
    ck_assert_int_eq(SVC->max_message, 1048576);
    ck_assert_int_eq(SVC->connections, 4);
    ck_assert_int_eq(SVC->inactive_timeout, 30000);
    ck_assert_int_eq(SVC->warmup, 1);
    ck_assert_int_eq(SVC->connect_timeout, 1000);
    ck_assert_int_eq(SVC->backoff_min, 10);
    ck_assert_int_eq(SVC->backoff_max, 20);
    ck_assert_int_eq(cfg->shutdown_timeout, 3000);
    ck_assert_int_eq(SVC->ntargets, 2);
    ck_assert_str_eq(SVC->targets[0].host, "127.0.0.1");
    ck_assert_int_eq(SVC->targets[0].port, 3306);
    ck_assert_int_eq(SVC->targets[0].keep_alive, 1);
    ck_assert_str_eq(SVC->targets[1].host, "::1");
    ck_assert_int_eq(SVC->targets[1].port, 3306);
    ck_assert_int_eq(SVC->targets[1].keep_alive, 0);
    ck_assert_int_eq(SVC->effective_mode, MODE_PROXY);
}
END_TEST

/* session.* (resp in fifo/funnel) and the targets' credentials: a list
 * inside a section (session.auth.users), defaults when absent. */
START_TEST(yaml_session_settings)
{
    ck_assert_int_eq(load(
        "local: { port: 3307 }\n"
        "exchange: { mode: funnel, codec: resp }\n"
        "pool: { connections: 2 }\n"
        "session:\n"
        "  dedicated_max: 3\n"
        "  auth:\n"
        "    password: \"p w\"\n"
        "    users:\n"
        "      - { user: app, password: s3cret }\n"
        "      - user: ro\n"
        "        password: \"\"\n"
        "targets:\n"
        "  - { host: 127.0.0.1, port: 6379, username: u, password: tp }\n"
        "  - { host: 127.0.0.1, port: 6380 }\n", NULL), PMX_OK);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(SVC->dedicated_max, 3);
    ck_assert_str_eq(SVC->auth_password, "p w");
    ck_assert_int_eq(SVC->nauth_users, 2);
    ck_assert_str_eq(SVC->auth_users[0].user, "app");
    ck_assert_str_eq(SVC->auth_users[0].password, "s3cret");
    ck_assert_str_eq(SVC->auth_users[1].user, "ro");
    ck_assert_str_eq(SVC->auth_users[1].password, "");
    ck_assert_str_eq(SVC->targets[0].username, "u");
    ck_assert_str_eq(SVC->targets[0].password, "tp");
    ck_assert_str_eq(SVC->targets[1].password, "");
    ck_assert_int_eq(load("local: { port: 3307 }\npool: { connections: 2 }\n"
                          "targets: [{ host: 127.0.0.1, port: 6379 }]\n", NULL), PMX_OK);
    ck_assert_int_eq(SVC->dedicated_max, 64);
    ck_assert_str_eq(SVC->auth_password, "");
    ck_assert_int_eq(SVC->nauth_users, 0);
}
END_TEST

START_TEST(yaml_empty_file_is_env_only)
{
    ck_assert_int_eq(load("# nothing here\n", ENV(BASE_ENV)), PMX_OK);
    ck_assert_int_eq(SVC->listen[0].where.port, 6380);
    assert_defaults_except_required(cfg);
    ck_assert_int_eq(load("---\n", ENV(BASE_ENV)), PMX_OK);
    ck_assert_int_eq(SVC->connections, 2);
}
END_TEST

START_TEST(precedence)
{
    ck_assert_int_eq(load(
        "log_level: 2\n"
        "local: { port: 7000, buffer_size: 2048 }\n"
        "exchange: { codec: line }\n"
        "pool: { connections: 3 }\n"
        "targets:\n"
        "  - { host: 127.0.0.1, port: 1, keep_alive: yes }\n"
        "  - { host: 127.0.0.2, port: 2 }\n",
        ENV("LOG_LEVEL=3", "EXCHANGE_CODEC=memcache", "TARGET_PORT_2=9",
            "TARGET_CONN_1_KEEP_ALIVE=0", "TARGET_HOST_3=::1", "TARGET_PORT_3=3")), PMX_OK);
    ck_assert_int_eq(cfg->log_level, 3);            /* env over YAML */
    ck_assert_str_eq(SVC->codec, "memcache");       /* env over YAML */
    ck_assert_int_eq(SVC->buffer_size, 2048);       /* YAML over default */
    ck_assert_int_eq(SVC->listen[0].where.port, 7000);
    ck_assert_int_eq(SVC->output_limit, 16777216);  /* default */
    ck_assert_int_eq(SVC->ntargets, 3);
    ck_assert_str_eq(SVC->targets[0].host, "127.0.0.1");
    ck_assert_int_eq(SVC->targets[0].port, 1);
    ck_assert_int_eq(SVC->targets[0].keep_alive, 0); /* env over YAML, one field */
    ck_assert_str_eq(SVC->targets[1].host, "127.0.0.2"); /* YAML kept */
    ck_assert_int_eq(SVC->targets[1].port, 9);           /* env over YAML */
    ck_assert_int_eq(sa_port(&SVC->targets[1].addr), 9);
    ck_assert_str_eq(SVC->targets[2].host, "::1");       /* env adds a target */
    ck_assert_int_eq(SVC->targets[2].port, 3);
    ck_assert_int_eq(SVC->targets[2].keep_alive, 0);
    ck_assert_int_eq(SVC->effective_mode, MODE_FUNNEL);
}
END_TEST

/* ---- mode derivation ---- */

static const struct {
    const char *mode, *conns, *max;
    enum exchange_mode want;
} mode_cases[] = {
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=4", "LOCAL_MAX_CONNECTIONS=4", MODE_PROXY },
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=1", "LOCAL_MAX_CONNECTIONS=1", MODE_PROXY },
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=1", "LOCAL_MAX_CONNECTIONS=-1", MODE_FIFO },
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=1", "LOCAL_MAX_CONNECTIONS=100", MODE_FIFO },
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=2", "LOCAL_MAX_CONNECTIONS=-1", MODE_FUNNEL },
    { "EXCHANGE_MODE=auto", "PROXY_CONNECTIONS_CNT=2", "LOCAL_MAX_CONNECTIONS=10", MODE_FUNNEL },
    { "EXCHANGE_MODE=proxy", "PROXY_CONNECTIONS_CNT=2", "LOCAL_MAX_CONNECTIONS=-1", MODE_PROXY },
    { "EXCHANGE_MODE=fifo", "PROXY_CONNECTIONS_CNT=1", "LOCAL_MAX_CONNECTIONS=1", MODE_FIFO },
    { "EXCHANGE_MODE=funnel", "PROXY_CONNECTIONS_CNT=1", "LOCAL_MAX_CONNECTIONS=-1", MODE_FUNNEL },
    { "EXCHANGE_MODE=funnel", "PROXY_CONNECTIONS_CNT=3", "LOCAL_MAX_CONNECTIONS=3", MODE_FUNNEL },
};

START_TEST(mode_derivation)
{
    ck_assert_int_eq(load(NULL, ENV(mode_cases[_i].mode, mode_cases[_i].conns,
                                    mode_cases[_i].max, "LOCAL_PORT=6380",
                                    "TARGET_HOST_1=127.0.0.1", "TARGET_PORT_1=6379")), PMX_OK);
    ck_assert_int_eq(SVC->effective_mode, mode_cases[_i].want);
    ck_assert_str_eq(config_mode_name(SVC->mode), strchr(mode_cases[_i].mode, '=') + 1);
}
END_TEST

START_TEST(mode_names)
{
    ck_assert_str_eq(config_mode_name(MODE_AUTO), "auto");
    ck_assert_str_eq(config_mode_name(MODE_PROXY), "proxy");
    ck_assert_str_eq(config_mode_name(MODE_FIFO), "fifo");
    ck_assert_str_eq(config_mode_name(MODE_FUNNEL), "funnel");
    ck_assert_str_eq(config_mode_name((enum exchange_mode)42), "?");
}
END_TEST

/* ---- bad environment values ---- */

static const struct {
    const char *vars[4];
    const char *want;
    int prefix;         /* want is a prefix: the rest comes from the resolver */
} env_bad[] = {
    { { "LOCAL_PORT=abc" }, "LOCAL_PORT: \"abc\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=0" }, "LOCAL_PORT: \"0\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=65536" }, "LOCAL_PORT: \"65536\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=12x" }, "LOCAL_PORT: \"12x\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=" }, "LOCAL_PORT: \"\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT= 80" }, "LOCAL_PORT: \" 80\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=+80" }, "LOCAL_PORT: \"+80\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=1\n2" }, "LOCAL_PORT: \"1\\x0a2\" is not a port (1-65535)", 0 },
    { { "LOCAL_PORT=99999999999999999999" }, "LOCAL_PORT: \"99999999999999999999\" is not a port (1-65535)", 0 },
    { { "LOG_LEVEL=4" }, "LOG_LEVEL: \"4\" is out of range (0-3)", 0 },
    { { "LOG_LEVEL=x" }, "LOG_LEVEL: \"x\" is not a number (0-3)", 0 },
    { { "LOG_LEVEL=1.5" }, "LOG_LEVEL: \"1.5\" is not a number (0-3)", 0 },
    { { "LOCAL_MAX_CONNECTIONS=0" }, "LOCAL_MAX_CONNECTIONS: \"0\" is out of range (-1 or 1-1000000)", 0 },
    { { "LOCAL_MAX_CONNECTIONS=-2" }, "LOCAL_MAX_CONNECTIONS: \"-2\" is out of range (-1 or 1-1000000)", 0 },
    { { "LOCAL_MAX_CONNECTIONS=1000001" }, "LOCAL_MAX_CONNECTIONS: \"1000001\" is out of range (-1 or 1-1000000)", 0 },
    { { "LOCAL_MAX_CONNECTIONS=-99999999999999999999" }, "LOCAL_MAX_CONNECTIONS: \"-99999999999999999999\" is out of range (-1 or 1-1000000)", 0 },
    { { "LOCAL_MAX_CONNECTIONS=-" }, "LOCAL_MAX_CONNECTIONS: \"-\" is not a number (-1 or 1-1000000)", 0 },
    { { "LOCAL_BUFFER_SIZE=1023" }, "LOCAL_BUFFER_SIZE: \"1023\" is out of range (1024-67108864 bytes)", 0 },
    { { "LOCAL_OUTPUT_LIMIT=1073741825" }, "LOCAL_OUTPUT_LIMIT: \"1073741825\" is out of range (1024-1073741824 bytes)", 0 },
    { { "LOCAL_IPV6_ONLY=maybe" }, "LOCAL_IPV6_ONLY: \"maybe\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "LOCAL_IPV6_ONLY=on" }, "LOCAL_IPV6_ONLY: \"on\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "LOCAL_IPV6_ONLY=2" }, "LOCAL_IPV6_ONLY: \"2\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "LOCAL_IPV6_ONLY=" }, "LOCAL_IPV6_ONLY: \"\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "EXCHANGE_MODE=turbo" }, "EXCHANGE_MODE: \"turbo\" is not a mode (auto, proxy, fifo, funnel)", 0 },
    { { "EXCHANGE_MODE=FIFO" }, "EXCHANGE_MODE: \"FIFO\" is not a mode (auto, proxy, fifo, funnel)", 0 },
    { { "EXCHANGE_CODEC=grpc" }, "EXCHANGE_CODEC: \"grpc\" is not a codec (@CODECS@)", 0 },
    { { "EXCHANGE_CODEC=respresprespresprespresp" }, "EXCHANGE_CODEC: \"respresprespresprespresp\" is not a codec (@CODECS@)", 0 },
    { { "EXCHANGE_FUNNEL_ASYNC=yes please" }, "EXCHANGE_FUNNEL_ASYNC: \"yes please\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "EXCHANGE_RESPONSE_TIMEOUT=0" }, "EXCHANGE_RESPONSE_TIMEOUT: \"0\" is out of range (-1 or 1-86400000 ms)", 0 },
    { { "EXCHANGE_QUEUE_LIMIT=0" }, "EXCHANGE_QUEUE_LIMIT: \"0\" is out of range (1-10000000)", 0 },
    { { "EXCHANGE_QUEUE_TIMEOUT=86400001" }, "EXCHANGE_QUEUE_TIMEOUT: \"86400001\" is out of range (-1 or 1-86400000 ms)", 0 },
    { { "LOCAL_MAX_WAIT=-1" }, "LOCAL_MAX_WAIT: \"-1\" is out of range (0-3600000 ms)", 0 },
    { { "LIMITS_REQUEST_MEMORY=65535" }, "LIMITS_REQUEST_MEMORY: \"65535\" is out of range (65536-1099511627776 bytes)", 0 },
    { { "EXCHANGE_MAX_MESSAGE=1k" }, "EXCHANGE_MAX_MESSAGE: \"1k\" is not a number (1024-1073741824 bytes)", 0 },
    { { "PROXY_CONNECTIONS_CNT=0" }, "PROXY_CONNECTIONS_CNT: \"0\" is out of range (1-100000)", 0 },
    { { "PROXY_CONNECTIONS_CNT=100001" }, "PROXY_CONNECTIONS_CNT: \"100001\" is out of range (1-100000)", 0 },
    { { "PROXY_CONNECTIONS_CNT=two" }, "PROXY_CONNECTIONS_CNT: \"two\" is not a number (1-100000)", 0 },
    { { "PROXY_INACTIVE_TIMEOUT=-5" }, "PROXY_INACTIVE_TIMEOUT: \"-5\" is out of range (-1 or 1-86400000 ms)", 0 },
    { { "PROXY_WARMUP=tru" }, "PROXY_WARMUP: \"tru\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "PROXY_CONNECT_TIMEOUT=0" }, "PROXY_CONNECT_TIMEOUT: \"0\" is out of range (1-600000 ms)", 0 },
    { { "PROXY_BACKOFF_MIN=600001" }, "PROXY_BACKOFF_MIN: \"600001\" is out of range (1-600000 ms)", 0 },
    { { "PROXY_BACKOFF_MAX=abc" }, "PROXY_BACKOFF_MAX: \"abc\" is not a number (1-3600000 ms)", 0 },
    { { "SHUTDOWN_TIMEOUT=-1" }, "SHUTDOWN_TIMEOUT: \"-1\" is out of range (0-3600000 ms)", 0 },
    { { "LOCAL_HOST=" }, "LOCAL_HOST: \"\" is not a host name or address", 0 },
    { { "LOCAL_HOST=a b" }, "LOCAL_HOST: \"a b\" is not a host name or address", 0 },
    { { "LOCAL_HOST=[]" }, "LOCAL_HOST: \"[]\" is not a host name or address", 0 },
    { { "TARGET_PORT_1=x" }, "TARGET_PORT_1: \"x\" is not a port (1-65535)", 0 },
    { { "TARGET_HOST_1=" }, "TARGET_HOST_1: \"\" is not a host name or address", 0 },
    { { "TARGET_CONN_1_KEEP_ALIVE=maybe" }, "TARGET_CONN_1_KEEP_ALIVE: \"maybe\" is not a boolean (0/1, true/false, yes/no)", 0 },
    { { "TARGET_HOST_0=127.0.0.1" }, "TARGET_HOST_0: no such target (targets are numbered 1-1024)", 0 },
    { { "TARGET_PORT_1025=1" }, "TARGET_PORT_1025: no such target (targets are numbered 1-1024)", 0 },
    { { "TARGET_CONN_9999999999_KEEP_ALIVE=1" }, "TARGET_CONN_9999999999_KEEP_ALIVE: no such target (targets are numbered 1-1024)", 0 },
    { { "EXCHANGE_MODE=fifo" }, "EXCHANGE_MODE: \"fifo\" needs exactly 1 upstream connection (PROXY_CONNECTIONS_CNT is 2)", 0 },
    { { "PROXY_BACKOFF_MIN=500", "PROXY_BACKOFF_MAX=100" }, "PROXY_BACKOFF_MAX: \"100\" is out of range (must be >= PROXY_BACKOFF_MIN, 500)", 0 },
    { { "PROXY_BACKOFF_MIN=6000" }, "PROXY_BACKOFF_MIN: \"6000\" is out of range (must be <= PROXY_BACKOFF_MAX, 5000)", 0 },
    { { "TARGET_HOST_3=127.0.0.1", "TARGET_PORT_3=1" }, "TARGET_HOST_2: missing (every target needs a host and a port, or a unix path)", 0 },
    { { "TARGET_HOST_2=127.0.0.1" }, "TARGET_PORT_2: missing (every target needs a host and a port, or a unix path)", 0 },
    { { "TARGET_CONN_2_KEEP_ALIVE=1" }, "TARGET_HOST_2: missing (every target needs a host and a port, or a unix path)", 0 },
    { { "LOCAL_HOST=nonexistent.invalid" }, "LOCAL_HOST: \"nonexistent.invalid\" cannot be resolved (", 1 },
    { { "TARGET_HOST_1=nonexistent.invalid" }, "TARGET_HOST_1: \"nonexistent.invalid\" cannot be resolved (", 1 },
};

START_TEST(env_bad_value)
{
    const char *env[16];
    size_t n = 0;
    for (size_t i = 0; i < 4 && env_bad[_i].vars[i] != NULL; i++)
        env[n++] = env_bad[_i].vars[i];
    /* The case's variables come first: the first of a name wins. */
    const char *base[] = { BASE_ENV };
    for (size_t i = 0; i < PMX_ARRAY_LEN(base); i++)
        env[n++] = base[i];
    env[n] = NULL;
    check_error(load(NULL, env), env_bad[_i].want, env_bad[_i].prefix);
}
END_TEST

START_TEST(env_missing_required)
{
    check_error(load(NULL, NULL), "LOCAL_PORT: missing (required; a port 1-65535)", 0);
    check_error(load(NULL, ENV("PROXY_CONNECTIONS_CNT=1", "TARGET_HOST_1=a", "TARGET_PORT_1=1")),
                "LOCAL_PORT: missing (required; a port 1-65535)", 0);
    check_error(load(NULL, ENV("LOCAL_PORT=1", "TARGET_HOST_1=a", "TARGET_PORT_1=1")),
                "PROXY_CONNECTIONS_CNT: missing (required; a number 1-100000)", 0);
    check_error(load(NULL, ENV("LOCAL_PORT=1", "PROXY_CONNECTIONS_CNT=1")),
                "TARGET_HOST_1: missing (at least one target is required)", 0);
}
END_TEST

START_TEST(env_too_long)
{
    char host[300 + sizeof "LOCAL_HOST="], want[512], path[CONFIG_PATH_MAX + 16];
    memset(host, 'a', sizeof host - 1);
    memcpy(host, "LOCAL_HOST=", strlen("LOCAL_HOST="));
    host[sizeof host - 1] = '\0';
    snprintf(want, sizeof want, "LOCAL_HOST: \"%.64s...\" is too long (at most 255 bytes)",
             host + strlen("LOCAL_HOST="));
    check_error(load(NULL, ENV(host, BASE_ENV)), want, 0);

    memset(path, 'p', sizeof path - 1);
    memcpy(path, "LOG_FILE=/", strlen("LOG_FILE=/"));
    path[sizeof path - 1] = '\0';
    snprintf(want, sizeof want, "LOG_FILE: \"/%.63s...\" is too long (at most 4095 bytes)",
             path + strlen("LOG_FILE=/"));
    check_error(load(NULL, ENV(path, BASE_ENV)), want, 0);
}
END_TEST

START_TEST(env_all_targets)
{
    /* CONFIG_MAX_TARGETS targets, more than the pool's connections. */
    static char vars[2 * CONFIG_MAX_TARGETS + 3][40];
    const char *env[2 * CONFIG_MAX_TARGETS + 4];
    size_t n = 0;
    for (int i = 1; i <= CONFIG_MAX_TARGETS; i++) {
        snprintf(vars[n], sizeof vars[n], "TARGET_HOST_%d=127.0.0.%d", i, i % 250 + 1);
        env[n] = vars[n];
        n++;
        snprintf(vars[n], sizeof vars[n], "TARGET_PORT_%d=%d", i, 1000 + i);
        env[n] = vars[n];
        n++;
    }
    env[n++] = "LOCAL_PORT=6380";
    env[n++] = "PROXY_CONNECTIONS_CNT=256";
    env[n] = NULL;
    ck_assert_int_eq(load(NULL, env), PMX_OK);
    ck_assert_int_eq(SVC->ntargets, CONFIG_MAX_TARGETS);
    ck_assert_int_eq(SVC->targets[CONFIG_MAX_TARGETS - 1].port, 1000 + CONFIG_MAX_TARGETS);
    ck_assert_int_eq(sa_port(&SVC->targets[CONFIG_MAX_TARGETS - 1].addr), 1000 + CONFIG_MAX_TARGETS);
    ck_assert_int_eq(SVC->effective_mode, MODE_FUNNEL);
}
END_TEST

/* ---- bad YAML ---- */

/* A valid rest of a file, for the cases that need one. */
#define YAML_REST "local: {port: 6380}\npool: {connections: 2}\n"
#define TARGET_KEYS "name, host, port, unix, weight, backup, keep_alive, username, password"

static const struct {
    const char *yaml;
    const char *want;   /* @FILE@: the file's path; @CODECS@: codec_names() */
    int prefix;
} yaml_bad[] = {
    { "local:\n  port: abc\n", "local.port (@FILE@ line 2): \"abc\" is not a port (1-65535)", 0 },
    { "local: {port: 12x}\n", "local.port (@FILE@ line 1): \"12x\" is not a port (1-65535)", 0 },
    { "local: {port: \"\"}\n", "local.port (@FILE@ line 1): \"\" is not a port (1-65535)", 0 },
    { "local: {port: }\n", "local.port (@FILE@ line 1): \"\" is not a port (1-65535)", 0 },
    { "local:\n  host: 127.0.0.1\n  port: 1\n  bogus: 1\n",
      "local.bogus (@FILE@ line 4): unknown setting (local takes host, port, ipv6_only, max_connections, max_wait, buffer_size, output_limit)", 0 },
    { "bogus: 1\n",
      "bogus (@FILE@ line 1): unknown setting (the top level takes log_level, log_file, shutdown_timeout, admin, services, log_mask_ip, allow, deny, listen, listen_mode, local, exchange, pool, balance, retries, health, limits, session, send_proxy, accept_proxy, accept_proxy_from, targets, request_log, routes, route_max_bytes, route_timeout, route_default)", 0 },
    { "pool: {connection: 2}\n",
      "pool.connection (@FILE@ line 1): unknown setting (pool takes connections, inactive_timeout, warmup, spare_max_age, connect_timeout, backoff_min, backoff_max, resolve_interval)", 0 },
    { "log_level: 1\nlocal: 5\n", "local (@FILE@ line 2): expected a mapping", 0 },
    { "local: [1, 2]\n", "local (@FILE@ line 1): expected a mapping", 0 },
    { "local:\n  port: {a: 1}\n", "local.port (@FILE@ line 2): expected a port (1-65535), not a mapping", 0 },
    { "log_level: [1]\n", "log_level (@FILE@ line 1): expected a number (0-3), not a list", 0 },
    { "log_file: {a: b}\n", "log_file (@FILE@ line 1): expected a file path, not a mapping", 0 },
    { "targets: {host: a}\n", "targets (@FILE@ line 1): expected a list of targets (" TARGET_KEYS "), not a mapping", 0 },
    { "targets: x\n", "targets (@FILE@ line 1): expected a list of targets (" TARGET_KEYS "), not a scalar", 0 },
    { "targets:\n  - 5\n", "targets[1] (@FILE@ line 2): expected a mapping (" TARGET_KEYS "), not a scalar", 0 },
    { "targets:\n  - [a, 1]\n", "targets[1] (@FILE@ line 2): expected a mapping (" TARGET_KEYS "), not a list", 0 },
    { "targets:\n  - {host: a, port: 1}\n  - {host: b, port: 2, wieght: 3}\n",
      "targets[2].wieght (@FILE@ line 3): unknown setting (a target takes " TARGET_KEYS ")", 0 },
    { "targets:\n  - host: [a]\n", "targets[1].host (@FILE@ line 2): expected a host name or address, not a list", 0 },
    { "targets: [{host: a, port: x}]\n", "targets[1].port (@FILE@ line 1): \"x\" is not a port (1-65535)", 0 },
    { "targets: [{host: a, port: 1, keep_alive: 2}]\n",
      "targets[1].keep_alive (@FILE@ line 1): \"2\" is not a boolean (true/false, yes/no, on/off, 0/1)", 0 },
    { "local: {ipv6_only: maybe}\n",
      "local.ipv6_only (@FILE@ line 1): \"maybe\" is not a boolean (true/false, yes/no, on/off, 0/1)", 0 },
    { "exchange: {mode: turbo}\n", "exchange.mode (@FILE@ line 1): \"turbo\" is not a mode (auto, proxy, fifo, funnel)", 0 },
    { "exchange:\n  codec: grpc\n", "exchange.codec (@FILE@ line 2): \"grpc\" is not a codec (@CODECS@)", 0 },
    { "pool: {connections: 0}\n", "pool.connections (@FILE@ line 1): \"0\" is out of range (1-100000)", 0 },
    { "pool:\n  connections: 99999999999999999999\n",
      "pool.connections (@FILE@ line 2): \"99999999999999999999\" is out of range (1-100000)", 0 },
    { "exchange:\n  response_timeout: 0\n",
      "exchange.response_timeout (@FILE@ line 2): \"0\" is out of range (-1 or 1-86400000 ms)", 0 },
    { "shutdown_timeout: 1h\n", "shutdown_timeout (@FILE@ line 1): \"1h\" is not a number (0-3600000 ms)", 0 },
    { "local:\n  port: 1\n  port: 2\n", "local.port (@FILE@ line 3): set twice (also line 2)", 0 },
    { "local:\n  ? [a]\n  : 1\n", "local (@FILE@ line 2): a key must be a name, not a mapping or list", 0 },
    { "local: {port: 1\n", "@FILE@ line 2: YAML syntax error: ", 1 },
    { "local:\n  port: 1\n bad\n", "@FILE@ line 3: YAML syntax error: ", 1 },
    { "- a\n- b\n", "@FILE@ line 1: expected a mapping of settings, not a list", 0 },
    { "just text\n", "@FILE@ line 1: expected a mapping of settings, not a scalar", 0 },
    { "log_level: 1\n---\nlog_level: 2\n", "@FILE@ line 3: a second YAML document (only one is read)", 0 },
    { "pool: {connections: 1}\ntargets: [{host: 127.0.0.1, port: 1}]\n",
      "local.port (@FILE@): missing (required; a port 1-65535)", 0 },
    { YAML_REST, "targets (@FILE@): missing (at least one target is required)", 0 },
    { YAML_REST "targets: []\n", "targets (@FILE@): missing (at least one target is required)", 0 },
    { YAML_REST "targets:\n  - {host: 127.0.0.1}\n",
      "targets[1].port (@FILE@ line 4): missing (every target needs a host and a port, or a unix path)", 0 },
    { YAML_REST "targets:\n  - {port: 1}\n",
      "targets[1].host (@FILE@ line 4): missing (every target needs a host and a port, or a unix path)", 0 },
    { YAML_REST "exchange: {mode: fifo}\ntargets: [{host: 127.0.0.1, port: 1}]\n",
      "exchange.mode (@FILE@ line 3): \"fifo\" needs exactly 1 upstream connection (pool.connections is 2)", 0 },
    { "local: {port: 6380}\npool: {connections: 1, backoff_min: 500, backoff_max: 100}\n"
      "targets: [{host: 127.0.0.1, port: 1}]\n",
      "pool.backoff_max (@FILE@ line 2): \"100\" is out of range (must be >= pool.backoff_min, 500)", 0 },
    { YAML_REST "targets:\n  - {host: nonexistent.invalid, port: 1}\n",
      "targets[1].host (@FILE@ line 4): \"nonexistent.invalid\" cannot be resolved (", 1 },
    { "local: {port: 6380, host: nonexistent.invalid}\npool: {connections: 1}\n"
      "targets: [{host: 127.0.0.1, port: 1}]\n",
      "local.host (@FILE@ line 1): \"nonexistent.invalid\" cannot be resolved (", 1 },
};

START_TEST(yaml_bad_value)
{
    check_error(load(yaml_bad[_i].yaml, NULL), yaml_bad[_i].want, yaml_bad[_i].prefix);
}
END_TEST

START_TEST(yaml_bad_value_overridden_by_env_still_refused)
{
    /* The file is wrong even if the environment would hide the value. */
    check_error(load("local: {port: abc}\n", ENV(BASE_ENV)),
                "local.port (@FILE@ line 1): \"abc\" is not a port (1-65535)", 0);
}
END_TEST

START_TEST(yaml_env_names_env_errors)
{
    /* A bad env value is named by its variable even with a YAML file. */
    check_error(load(YAML_REST "targets: [{host: 127.0.0.1, port: 1}]\n",
                     ENV("LOCAL_PORT=abc")),
                "LOCAL_PORT: \"abc\" is not a port (1-65535)", 0);
    /* Env completes a YAML target; a gap after the YAML list is an env name. */
    check_error(load(YAML_REST "targets: [{host: 127.0.0.1, port: 1}]\n",
                     ENV("TARGET_HOST_3=127.0.0.1", "TARGET_PORT_3=1")),
                "TARGET_HOST_2: missing (every target needs a host and a port, or a unix path)", 0);
    ck_assert_int_eq(load(YAML_REST "targets: [{host: 127.0.0.1}]\n", ENV("TARGET_PORT_1=5")), PMX_OK);
    ck_assert_int_eq(SVC->targets[0].port, 5);
}
END_TEST

START_TEST(yaml_unreadable)
{
    char missing[sizeof yaml_path];
    snprintf(missing, sizeof missing, "%s/none.yaml", tmpdir);
    ck_assert_int_eq(config_load(cfg, missing, NULL, err, sizeof err), PMX_ERR);
    snprintf(yaml_path, sizeof yaml_path, "%s", missing);
    check_error(PMX_ERR, "@FILE@: cannot open: No such file or directory", 0);

    ck_assert_int_eq(config_load(cfg, tmpdir, NULL, err, sizeof err), PMX_ERR);
    snprintf(yaml_path, sizeof yaml_path, "%s", tmpdir);
    check_error(PMX_ERR, "@FILE@: cannot read: Is a directory", 0);
}
END_TEST

START_TEST(yaml_too_many_targets)
{
    size_t cap = 64 * (CONFIG_MAX_TARGETS + 2) + 64, used = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    used += (size_t)snprintf(text + used, cap - used, "targets:\n");
    for (int i = 0; i <= CONFIG_MAX_TARGETS; i++)
        used += (size_t)snprintf(text + used, cap - used, "  - {host: 127.0.0.1, port: %d}\n", i + 1);
    int rc = load(text, NULL);
    free(text);
    char want[128];
    snprintf(want, sizeof want, "targets[%d] (@FILE@ line %d): too many targets (at most %d)",
             CONFIG_MAX_TARGETS + 1, CONFIG_MAX_TARGETS + 2, CONFIG_MAX_TARGETS);
    check_error(rc, want, 0);
}
END_TEST

/* ---- dump and reload ---- */

START_TEST(dump_round_trip)
{
    ck_assert_int_eq(load(
        "log_file: \"/tmp/a \\\"quoted\\\" log\"\n"
        "local: {host: \"::1\", port: 6380}\n"
        "exchange: {codec: resp, funnel_async: on}\n"
        "pool: {connections: 1, warmup: yes}\n"
        "targets:\n  - {host: 127.0.0.1, port: 6379, keep_alive: true}\n",
        ENV("LOG_LEVEL=2", "PROXY_BACKOFF_MAX=9000")), PMX_OK);
    char *first = dump_to_string(cfg);

    ck_assert_ptr_nonnull(strstr(first, "\nlog_level: 2\n"));
    ck_assert_ptr_nonnull(strstr(first, "\nlog_file: \"/tmp/a \\\"quoted\\\" log\"\n"));
    ck_assert_ptr_nonnull(strstr(first, "\nlocal:\n  host: \"::1\"\n  port: 6380\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n  codec: resp\n  funnel_async: true\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n  backoff_max: 9000\n"));
    ck_assert_ptr_nonnull(strstr(first,
        "\ntargets:\n  - { name: \"127.0.0.1:6379\", host: \"127.0.0.1\", port: 6379, weight: 1, "
        "backup: false, keep_alive: true }  # 127.0.0.1:6379\n"));
    ck_assert_ptr_nonnull(strstr(first, "\n# listen: [::1]:6380\n"));
    const char *tail = "\n# mode: fifo (auto: connections == 1)\n";
    ck_assert_str_eq(first + strlen(first) - strlen(tail), tail);

    /* The dump is a config file that loads back to the same thing. */
    struct config *again = calloc(1, sizeof *again);
    ck_assert_ptr_nonnull(again);
    const char *path = write_yaml(first);
    ck_assert_int_eq(config_load(again, path, NULL, err, sizeof err), PMX_OK);
    char *second = dump_to_string(again);
    ck_assert_str_eq(second, first);
    char changed[256];
    config_service_fixed_changes(SVC, &again->services[0], changed, sizeof changed);
    ck_assert_str_eq(changed, "");
    free(first);
    free(second);
    config_free(again);
    free(again);
}
END_TEST

START_TEST(dump_mode_reasons)
{
    ck_assert_int_eq(load(NULL, ENV("EXCHANGE_MODE=proxy", BASE_ENV)), PMX_OK);
    char *d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d, "\n# mode: proxy (explicit)\n"));
    ck_assert_ptr_nonnull(strstr(d, "\n  mode: proxy\n"));
    free(d);
    ck_assert_int_eq(load(NULL, ENV(BASE_ENV)), PMX_OK);
    d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d,
        "\n# mode: funnel (auto: connections > 1, max_connections != connections)\n"));
    free(d);
    ck_assert_int_eq(load(NULL, ENV("LOCAL_MAX_CONNECTIONS=2", BASE_ENV)), PMX_OK);
    d = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(d, "\n# mode: proxy (auto: max_connections == connections)\n"));
    free(d);
}
END_TEST

START_TEST(unreloadable_changes)
{
    struct config *next = calloc(1, sizeof *next);
    ck_assert_ptr_nonnull(next);
    char out[256];

    ck_assert_int_eq(load(NULL, ENV(BASE_ENV)), PMX_OK);
    ck_assert_int_eq(config_load(next, NULL, (char *const *)ENV(
        "LOG_LEVEL=3", "LOG_FILE=/tmp/x", "LOCAL_MAX_CONNECTIONS=9", "EXCHANGE_QUEUE_LIMIT=7",
        "PROXY_BACKOFF_MAX=100", "TARGET_PORT_1=1", "PROXY_CONNECTIONS_CNT=3", "BALANCE=first",
        "RETRIES=0", "HEALTH_SEND=x", "HEALTH_INTERVAL=10", "LIMITS_MAX_ACTIVE=5",
        "PROXY_RESOLVE_INTERVAL=-1", "TARGET_WEIGHT_1=9", "TARGET_NAME_1=t", BASE_ENV),
        err, sizeof err), PMX_OK);
    config_service_fixed_changes(SVC, &next->services[0], out, sizeof out);
    ck_assert_str_eq(out, "pool.connections");
    config_free(next);

    ck_assert_int_eq(config_load(next, NULL, (char *const *)ENV(
        "LOCAL_PORT=7000", "LOCAL_BUFFER_SIZE=2048", "EXCHANGE_MODE=funnel",
        "EXCHANGE_CODEC=line", "LOCAL_HOST=localhost", "LOCAL_IPV6_ONLY=1",
        "EXCHANGE_FUNNEL_ASYNC=1", "PROXY_WARMUP=1", "LOCAL_LISTEN_MODE=0600", BASE_ENV),
        err, sizeof err), PMX_OK);
    config_service_fixed_changes(SVC, &next->services[0], out, sizeof out);
    ck_assert_str_eq(out, "listen, listen_mode, local.ipv6_only, local.buffer_size, "
                          "exchange.mode, exchange.codec, exchange.funnel_async, pool.warmup");

    /* A short buffer holds whole names only. */
    config_service_fixed_changes(SVC, &next->services[0], out, 24);
    ck_assert_str_eq(out, "listen, listen_mode");

    config_service_fixed_changes(SVC, SVC, out, sizeof out);
    ck_assert_str_eq(out, "");

    /* Keeping the running values of those leaves nothing to restart for,
     * and the derived values follow. */
    config_service_keep_fixed(&next->services[0], SVC);
    config_service_fixed_changes(SVC, &next->services[0], out, sizeof out);
    ck_assert_str_eq(out, "");
    ck_assert_str_eq(next->services[0].listen[0].spec, "127.0.0.1:6380");
    ck_assert_int_eq(sa_port(&next->services[0].listen[0].addr), 6380);
    ck_assert_int_eq(next->services[0].effective_mode, MODE_FUNNEL);
    ck_assert_str_eq(next->services[0].codec, "raw");
    config_free(next);
    free(next);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");

    TCase *good = tcase_create("good");
    tcase_add_unchecked_fixture(good, dir_setup, dir_teardown);
    tcase_add_checked_fixture(good, cfg_setup, cfg_teardown);
    tcase_add_test(good, env_minimal_gets_defaults);
    tcase_add_test(good, env_every_setting);
    tcase_add_test(good, env_unknown_ignored_first_wins);
    tcase_add_test(good, env_all_targets);
    tcase_add_test(good, yaml_every_setting);
    tcase_add_test(good, yaml_session_settings);
    tcase_add_test(good, yaml_empty_file_is_env_only);
    tcase_add_test(good, precedence);
    tcase_add_loop_test(good, mode_derivation, 0, (int)PMX_ARRAY_LEN(mode_cases));
    tcase_add_test(good, mode_names);
    suite_add_tcase(s, good);

    TCase *bad = tcase_create("bad");
    tcase_add_unchecked_fixture(bad, dir_setup, dir_teardown);
    tcase_add_checked_fixture(bad, cfg_setup, cfg_teardown);
    tcase_add_loop_test(bad, env_bad_value, 0, (int)PMX_ARRAY_LEN(env_bad));
    tcase_add_test(bad, env_missing_required);
    tcase_add_test(bad, env_too_long);
    tcase_add_loop_test(bad, yaml_bad_value, 0, (int)PMX_ARRAY_LEN(yaml_bad));
    tcase_add_test(bad, yaml_bad_value_overridden_by_env_still_refused);
    tcase_add_test(bad, yaml_env_names_env_errors);
    tcase_add_test(bad, yaml_unreadable);
    tcase_add_test(bad, yaml_too_many_targets);
    suite_add_tcase(s, bad);

    TCase *dump = tcase_create("dump");
    tcase_add_unchecked_fixture(dump, dir_setup, dir_teardown);
    tcase_add_checked_fixture(dump, cfg_setup, cfg_teardown);
    tcase_add_test(dump, dump_round_trip);
    tcase_add_test(dump, dump_mode_reasons);
    tcase_add_test(dump, unreloadable_changes);
    suite_add_tcase(s, dump);

    return s;
}
