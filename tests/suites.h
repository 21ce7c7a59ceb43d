/* Every Check suite of the unit test runner; tests/test_NAME.c exports
 * NAME_suite(). */
#ifndef SUITES_H
#define SUITES_H

#include <check.h>

Suite *buf_suite(void);
Suite *list_suite(void);
Suite *reactor_suite(void);
Suite *net_suite(void);
Suite *resolver_suite(void);
Suite *config_suite(void);
Suite *config_services_suite(void);
Suite *codec_suite(void);
Suite *codec_resp_suite(void);
Suite *codec_memcache_suite(void);
Suite *codec_http_suite(void);
Suite *balancer_suite(void);
Suite *health_suite(void);
Suite *upstream_suite(void);
Suite *sched_suite(void);
Suite *session_suite(void);
Suite *notify_suite(void);
Suite *activation_suite(void);
Suite *proxy_protocol_suite(void);
Suite *stats_suite(void);
Suite *admin_suite(void);
Suite *request_log_suite(void);
Suite *mysql_suite(void);
Suite *cidr_set_suite(void);
Suite *config_routes_suite(void);
Suite *peek_suite(void);
Suite *route_suite(void);

#endif
