/* The unit test runner: gathers every suite and exits non-zero on any
 * failure. */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());

    srunner_add_suite(sr, list_suite());
    srunner_add_suite(sr, reactor_suite());
    srunner_add_suite(sr, net_suite());
    srunner_add_suite(sr, resolver_suite());
    srunner_add_suite(sr, config_suite());
    srunner_add_suite(sr, config_services_suite());
    srunner_add_suite(sr, codec_suite());
    srunner_add_suite(sr, codec_resp_suite());
    srunner_add_suite(sr, codec_memcache_suite());
    srunner_add_suite(sr, codec_http_suite());
    srunner_add_suite(sr, balancer_suite());
    srunner_add_suite(sr, health_suite());
    srunner_add_suite(sr, upstream_suite());
    srunner_add_suite(sr, sched_suite());
    srunner_add_suite(sr, session_suite());
    srunner_add_suite(sr, notify_suite());
    srunner_add_suite(sr, activation_suite());
    srunner_add_suite(sr, proxy_protocol_suite());
    srunner_add_suite(sr, stats_suite());
    srunner_add_suite(sr, admin_suite());
    srunner_add_suite(sr, request_log_suite());
    srunner_add_suite(sr, mysql_suite());
    srunner_add_suite(sr, cidr_set_suite());
    srunner_add_suite(sr, config_routes_suite());
    srunner_add_suite(sr, peek_suite());
    srunner_add_suite(sr, route_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
