/* Unit tests for access control: the CIDR set (v4, v6, IPv4-mapped,
 * nested and overlapping entries, /0, single hosts, 10,000 random entries
 * against the linear cidr_match_any as an oracle), the allow/deny decision
 * from a loaded configuration, its errors, and log_mask_ip's masking. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "access.h"
#include "cidr_set.h"
#include "config.h"
#include "config_check.h"
#include "log.h"
#include "suites.h"

/* An address of either family from text, with port 4000. */
struct test_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

static struct test_addr addr_of(const char *text)
{
    struct test_addr a;

    memset(&a, 0, sizeof(a));
    struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
    if (inet_pton(AF_INET, text, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(4000);
        a.len = sizeof(*in);
    } else {
        ck_assert_msg(inet_pton(AF_INET6, text, &in6->sin6_addr) == 1, "bad test address %s", text);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(4000);
        a.len = sizeof(*in6);
    }
    return a;
}

/* A set of the given entries (NULL-terminated). */
static struct cidr_set *set_of(const char *const *specs, struct cidr *list, int max)
{
    char why[128];
    int n = 0;
    struct cidr_set *s;

    for (; specs[n] != NULL; n++) {
        ck_assert_int_lt(n, max);
        ck_assert_msg(cidr_parse(specs[n], &list[n], why, sizeof(why)) == PMX_OK, "%s: %s", specs[n], why);
    }
    ck_assert_int_eq(cidr_set_build(list, n, &s), PMX_OK);
    ck_assert_int_eq(cidr_set_size(s), n);
    return s;
}

/* The spec of the entry text falls in, or "-" for none. */
static const char *find(const struct cidr_set *s, const char *text)
{
    struct test_addr a = addr_of(text);
    const struct cidr *c = cidr_set_find(s, (struct sockaddr *)&a.ss, a.len);

    return c != NULL ? c->spec : "-";
}

START_TEST(test_cidr_set_v4_v6)
{
    static const char *const specs[] = {
        "10.0.0.0/8", "192.168.1.7", "172.16.0.0/12", "2001:db8::/32", "::1", "fe80::/10", NULL,
    };
    struct cidr list[8];
    struct cidr_set *s = set_of(specs, list, 8);

    ck_assert_str_eq(find(s, "10.0.0.0"), "10.0.0.0/8");
    ck_assert_str_eq(find(s, "10.255.255.255"), "10.0.0.0/8");
    ck_assert_str_eq(find(s, "11.0.0.0"), "-");
    ck_assert_str_eq(find(s, "9.255.255.255"), "-");
    ck_assert_str_eq(find(s, "192.168.1.7"), "192.168.1.7");
    ck_assert_str_eq(find(s, "192.168.1.6"), "-");
    ck_assert_str_eq(find(s, "192.168.1.8"), "-");
    ck_assert_str_eq(find(s, "172.31.255.255"), "172.16.0.0/12");
    ck_assert_str_eq(find(s, "172.32.0.0"), "-");
    ck_assert_str_eq(find(s, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), "2001:db8::/32");
    ck_assert_str_eq(find(s, "2001:db9::"), "-");
    ck_assert_str_eq(find(s, "::1"), "::1");
    ck_assert_str_eq(find(s, "::2"), "-");
    ck_assert_str_eq(find(s, "::"), "-");
    ck_assert_str_eq(find(s, "febf:ffff::1"), "fe80::/10");
    ck_assert_str_eq(find(s, "fec0::"), "-");
    /* IPv4-mapped clients match IPv4 entries, and only those. */
    ck_assert_str_eq(find(s, "::ffff:10.1.2.3"), "10.0.0.0/8");
    ck_assert_str_eq(find(s, "::ffff:192.168.1.7"), "192.168.1.7");
    ck_assert_str_eq(find(s, "::ffff:11.1.2.3"), "-");
    /* No address, other families, short lengths: never a match. */
    ck_assert_ptr_null(cidr_set_find(s, NULL, 0));
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    ck_assert_ptr_null(cidr_set_find(s, (struct sockaddr *)&un, sizeof(un)));
    struct test_addr a = addr_of("10.0.0.1");
    ck_assert_ptr_null(cidr_set_find(s, (struct sockaddr *)&a.ss, 4));
    cidr_set_free(s);
}
END_TEST

START_TEST(test_cidr_set_nested_and_edges)
{
    /* Nested in both orders, duplicates, a mapped IPv6 range (an IPv4 one),
     * and the ends of the address space. */
    static const char *const specs[] = {
        "10.1.0.0/16", "10.0.0.0/8", "10.1.2.0/24", "10.0.0.0/8", "::ffff:192.0.2.0/120",
        "255.255.255.255", "0.0.0.0/32", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/128", NULL,
    };
    struct cidr list[10];
    struct cidr_set *s = set_of(specs, list, 10);

    /* The outermost entry names the match. */
    ck_assert_str_eq(find(s, "10.1.2.3"), "10.0.0.0/8");
    ck_assert_str_eq(find(s, "192.0.2.200"), "::ffff:192.0.2.0/120");
    ck_assert_str_eq(find(s, "::ffff:192.0.2.1"), "::ffff:192.0.2.0/120");
    ck_assert_str_eq(find(s, "192.0.3.0"), "-");
    ck_assert_str_eq(find(s, "255.255.255.255"), "255.255.255.255");
    ck_assert_str_eq(find(s, "255.255.255.254"), "-");
    ck_assert_str_eq(find(s, "0.0.0.0"), "0.0.0.0/32");
    ck_assert_str_eq(find(s, "0.0.0.1"), "-");
    ck_assert_str_eq(find(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_str_eq(find(s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"), "-");
    ck_assert_str_eq(find(s, "::"), "::/128");
    cidr_set_free(s);

    /* /0 holds its whole family, not the other one. */
    static const char *const all4[] = { "0.0.0.0/0", "10.0.0.0/8", NULL };
    s = set_of(all4, list, 10);
    ck_assert_str_eq(find(s, "10.0.0.1"), "0.0.0.0/0");
    ck_assert_str_eq(find(s, "255.255.255.255"), "0.0.0.0/0");
    ck_assert_str_eq(find(s, "::ffff:1.2.3.4"), "0.0.0.0/0");
    ck_assert_str_eq(find(s, "2001:db8::1"), "-");
    cidr_set_free(s);
    static const char *const all6[] = { "2001:db8::/32", "::/0", NULL };
    s = set_of(all6, list, 10);
    ck_assert_str_eq(find(s, "2001:db8::1"), "::/0");
    ck_assert_str_eq(find(s, "ffff::"), "::/0");
    ck_assert_str_eq(find(s, "1.2.3.4"), "-");
    cidr_set_free(s);

    /* An empty set, and a NULL one, match nothing. */
    ck_assert_int_eq(cidr_set_build(list, 0, &s), PMX_OK);
    ck_assert_str_eq(find(s, "1.2.3.4"), "-");
    ck_assert_int_eq(cidr_set_size(s), 0);
    cidr_set_free(s);
    ck_assert_str_eq(find(NULL, "1.2.3.4"), "-");
    ck_assert_int_eq(cidr_set_size(NULL), 0);
    cidr_set_free(NULL);
}
END_TEST

/* A random address of the family, biased towards the entries' neighbourhood
 * (a random entry's network with a few low bits changed) so that hits and
 * near misses are both common. */
static void random_addr(const struct cidr *list, int n, bool v6, unsigned char out[16])
{
    for (int i = 0; i < 16; i++)
        out[i] = (unsigned char)random();
    if (random() % 4 != 0) {
        const struct cidr *c = &list[random() % n];
        int bytes = c->family == AF_INET ? 4 : 16;
        memcpy(out, c->addr, (size_t)bytes);
        out[bytes - 1] ^= (unsigned char)(random() % 4 == 0 ? random() : 0);
        if (random() % 2)
            out[(random() % bytes)] ^= (unsigned char)(1u << (random() % 8));
    }
    (void)v6;
}

START_TEST(test_cidr_set_random_against_linear)
{
    enum { N = 10000, PROBES = 20000 };
    struct cidr *list = calloc(N, sizeof(*list));
    char text[CIDR_TEXT_MAX], why[128], host[INET6_ADDRSTRLEN];
    struct cidr_set *s;

    ck_assert_ptr_nonnull(list);
    srandom(42);
    for (int i = 0; i < N; i++) {
        bool v6 = random() % 3 == 0;
        int max = v6 ? 128 : 32, prefix;
        unsigned char a[16];
        for (int k = 0; k < 16; k++)
            a[k] = (unsigned char)random();
        if (!v6 && i % 5 == 0)
            a[0] = 10;      /* a crowded area: nested and overlapping blocks */
        /* Mostly long prefixes; some short ones (from /12 or /16: shorter
         * ones would cover nearly every random probe). */
        int shortest = v6 ? 16 : 12;
        prefix = (int)(random() % 3 == 0 ? shortest + random() % (max - shortest + 1) : max - random() % (max / 4));
        /* Clear the host bits: cidr_parse refuses them. */
        for (int bit = prefix; bit < max; bit++)
            a[bit / 8] &= (unsigned char)~(0x80u >> (bit % 8));
        inet_ntop(v6 ? AF_INET6 : AF_INET, a, host, sizeof(host));
        snprintf(text, sizeof(text), "%s/%d", host, prefix);
        ck_assert_msg(cidr_parse(text, &list[i], why, sizeof(why)) == PMX_OK, "%s: %s", text, why);
    }
    ck_assert_int_eq(cidr_set_build(list, N, &s), PMX_OK);
    int hits = 0;
    for (int p = 0; p < PROBES; p++) {
        struct test_addr a;
        unsigned char raw[16];
        bool v6 = p % 3 == 0;
        memset(&a, 0, sizeof(a));
        random_addr(list, N, v6, raw);
        if (p % 3 == 1) {
            struct sockaddr_in *in = (struct sockaddr_in *)&a.ss;
            in->sin_family = AF_INET;
            memcpy(&in->sin_addr, raw, 4);
            a.len = sizeof(*in);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&a.ss;
            in6->sin6_family = AF_INET6;
            if (p % 3 == 2) {
                /* IPv4-mapped */
                memset(in6->sin6_addr.s6_addr + 10, 0xff, 2);
                memcpy(in6->sin6_addr.s6_addr + 12, raw, 4);
            } else {
                memcpy(&in6->sin6_addr, raw, 16);
            }
            a.len = sizeof(*in6);
        }
        const struct cidr *c = cidr_set_find(s, (struct sockaddr *)&a.ss, a.len);
        bool want = cidr_match_any(list, N, (struct sockaddr *)&a.ss, a.len);
        ck_assert_msg((c != NULL) == want, "probe %d: set %d, linear %d", p, c != NULL, want);
        if (c != NULL) {
            ck_assert(cidr_match(c, (struct sockaddr *)&a.ss, a.len));
            hits++;
        }
    }
    /* Both outcomes were exercised. */
    ck_assert_int_gt(hits, PROBES / 10);
    ck_assert_int_lt(hits, PROBES - PROBES / 10);
    cidr_set_free(s);
    free(list);
}
END_TEST

/* ---- the decision, from a loaded configuration ---------------------------- */

static bool allowed(const struct service_config *sc, const char *text, char *why)
{
    struct test_addr a = addr_of(text);

    *why = '\0';
    return access_allowed(sc, (struct sockaddr *)&a.ss, a.len, why, ACCESS_WHY_MAX);
}

START_TEST(test_access_services_form)
{
    char why[ACCESS_WHY_MAX];

    ck_assert_msg(load("deny: [10.0.0.0/8, 192.168.0.5]\n"
                       "allow: [10.0.0.0/8, 192.168.0.0/16, 127.0.0.0/8]\n"
                       "services:\n"
                       "  - name: a\n"
                       "    listen: [\"127.0.0.1:7001\"]\n"
                       "    pool: { connections: 1 }\n"
                       "    targets: [ { host: 127.0.0.1, port: 7002 } ]\n"
                       "    allow: [192.168.0.0/24, 127.0.0.2]\n"
                       "    deny: [192.168.0.128/25]\n"
                       "  - name: b\n"
                       "    listen: [\"127.0.0.1:7003\"]\n"
                       "    pool: { connections: 1 }\n"
                       "    targets: [ { host: 127.0.0.1, port: 7002 } ]\n", NULL) == PMX_OK, "%s", err);
    const struct service_config *a = config_service(cfg, "a"), *b = config_service(cfg, "b");
    /* Top-level deny, before anything of the service's. */
    ck_assert(!allowed(a, "10.1.1.1", why));
    ck_assert_str_eq(why, "deny 10.0.0.0/8");
    ck_assert(!allowed(b, "::ffff:10.1.1.1", why));
    ck_assert_str_eq(why, "deny 10.0.0.0/8");
    ck_assert(!allowed(a, "192.168.0.5", why));
    ck_assert_str_eq(why, "deny 192.168.0.5");
    /* The service's deny. */
    ck_assert(!allowed(a, "192.168.0.200", why));
    ck_assert_str_eq(why, "deny 192.168.0.128/25");
    ck_assert(allowed(b, "192.168.0.200", why));
    /* Both allow lists must hold the client. */
    ck_assert(allowed(a, "192.168.0.6", why));
    ck_assert(allowed(a, "127.0.0.2", why));
    ck_assert(!allowed(a, "127.0.0.3", why));
    ck_assert_str_eq(why, "not in allow");
    ck_assert(allowed(b, "127.0.0.3", why));
    ck_assert(!allowed(b, "8.8.8.8", why));
    ck_assert_str_eq(why, "not in allow");
    ck_assert(!allowed(b, "::1", why));
    /* Unix-socket clients: the lists do not apply. */
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    ck_assert(access_allowed(a, (struct sockaddr *)&un, sizeof(un), why, sizeof(why)));
    ck_assert(access_allowed(a, NULL, 0, why, sizeof(why)));

    /* The dump keeps the lists and loads back. */
    char *text = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(text, "\nallow: [\"10.0.0.0/8\", \"192.168.0.0/16\", \"127.0.0.0/8\"]\n"));
    ck_assert_ptr_nonnull(strstr(text, "    deny: [\"192.168.0.128/25\"]\n"));
    ck_assert_msg(load(text, NULL) == PMX_OK, "%s", err);
    free(text);
    ck_assert(!allowed(config_service(cfg, "a"), "192.168.0.200", why));
}
END_TEST

START_TEST(test_access_single_form_and_reload)
{
    char why[ACCESS_WHY_MAX];

    /* Single-service form: the top-level lists are the service's. */
    ck_assert_msg(load("local: { port: 7001 }\n"
                       "pool: { connections: 1 }\n"
                       "targets: [ { host: 127.0.0.1, port: 7002 } ]\n"
                       "deny: [2001:db8::/32]\n"
                       "allow: [\"::/0\", 127.0.0.1]\n", NULL) == PMX_OK, "%s", err);
    const struct service_config *sc = &cfg->services[0];
    ck_assert(!allowed(sc, "2001:db8::1", why));
    ck_assert_str_eq(why, "deny 2001:db8::/32");
    ck_assert(allowed(sc, "2001:db9::1", why));
    ck_assert(allowed(sc, "127.0.0.1", why));
    ck_assert(!allowed(sc, "127.0.0.2", why));
    char *text = dump_to_string(cfg);
    ck_assert_ptr_nonnull(strstr(text, "\nallow: [\"::/0\", \"127.0.0.1\"]\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ndeny: [\"2001:db8::/32\"]\n"));
    free(text);

    /* No lists: everyone is served. */
    ck_assert_msg(load("local: { port: 7001 }\npool: { connections: 1 }\n"
                       "targets: [ { host: 127.0.0.1, port: 7002 } ]\n", NULL) == PMX_OK, "%s", err);
    ck_assert(allowed(&cfg->services[0], "1.2.3.4", why));
    ck_assert(allowed(&cfg->services[0], "::1", why));
    ck_assert(!cfg->log_mask_ip);

    /* The lists change in a reload without replacing the service. */
    struct config *other = calloc(1, sizeof(*other));
    ck_assert_ptr_nonnull(other);
    ck_assert_msg(config_load(other, write_yaml("log_mask_ip: true\n"
                                                "services:\n"
                                                "  - name: default\n"
                                                "    local: { port: 7001 }\n"
                                                "    pool: { connections: 1 }\n"
                                                "    targets: [ { host: 127.0.0.1, port: 7002 } ]\n"
                                                "    deny: [1.2.3.4]\n"), NULL, err, sizeof err) == PMX_OK, "%s", err);
    char fixed[256];
    config_service_fixed_changes(&cfg->services[0], &other->services[0], fixed, sizeof(fixed));
    ck_assert_str_eq(fixed, "");
    ck_assert(other->log_mask_ip);
    config_free(other);
    free(other);
}
END_TEST

START_TEST(test_access_config_errors)
{
    check_error(load("local: { port: 7001 }\npool: { connections: 1 }\n"
                     "targets: [ { host: 127.0.0.1, port: 7002 } ]\n"
                     "deny: [10.0.0.0/8, 1.2.3.4, 10.0.0.1/8]\n", NULL),
                "deny[3] (@FILE@ line 4): \"10.0.0.1/8\" is not an address range: host bits set beyond /8 "
                "(ADDRESS/PREFIX or ADDRESS, IPv4 or IPv6)", 0);
    check_error(load("services:\n"
                     "  - name: a\n"
                     "    listen: [\"127.0.0.1:7001\"]\n"
                     "    pool: { connections: 1 }\n"
                     "    targets: [ { host: 127.0.0.1, port: 7002 } ]\n"
                     "    allow:\n"
                     "      - 127.0.0.1\n"
                     "      - example.com\n", NULL),
                "services[1].allow[2] (@FILE@ line 8): \"example.com\" is not an address range: "
                "\"example.com\" is not an IPv4 or IPv6 address (ADDRESS/PREFIX or ADDRESS, IPv4 or IPv6)", 0);
    check_error(load("allow: 10.0.0.0/8\nlocal: { port: 7001 }\npool: { connections: 1 }\n"
                     "targets: [ { host: 127.0.0.1, port: 7002 } ]\n", NULL),
                "allow (@FILE@ line 1): ", 1);
    check_error(load("deny: [\"::1/129\"]\nlocal: { port: 7001 }\npool: { connections: 1 }\n"
                     "targets: [ { host: 127.0.0.1, port: 7002 } ]\n", NULL),
                "deny[1] (@FILE@ line 1): \"::1/129\" is not an address range: prefix 129 is not 0-128", 1);

    /* The bound: CONFIG_MAX_ACCESS entries load, one more is refused. */
    size_t room = (size_t)(CONFIG_MAX_ACCESS + 1) * 24 + 512;
    char *yaml = malloc(room);
    ck_assert_ptr_nonnull(yaml);
    size_t o = (size_t)snprintf(yaml, room, "local: { port: 7001 }\npool: { connections: 1 }\n"
                                "targets: [ { host: 127.0.0.1, port: 7002 } ]\ndeny:\n");
    for (int i = 0; i < CONFIG_MAX_ACCESS; i++)
        o += (size_t)snprintf(yaml + o, room - o, "  - 10.%d.%d.%d\n", i >> 16, (i >> 8) & 255, i & 255);
    ck_assert_msg(load(yaml, NULL) == PMX_OK, "%s", err);
    ck_assert_int_eq(cfg->ndeny, CONFIG_MAX_ACCESS);
    char why[ACCESS_WHY_MAX];
    ck_assert(!allowed(&cfg->services[0], "10.1.134.159", why));
    ck_assert_str_eq(why, "deny 10.1.134.159");
    ck_assert(allowed(&cfg->services[0], "10.1.134.160", why));
    snprintf(yaml + o, room - o, "  - 11.0.0.0/8\n");
    ck_assert_int_eq(load(yaml, NULL), PMX_ERR);
    ck_assert_msg(strstr(err, "too many address ranges (at most 100000)") != NULL, "%s", err);
    free(yaml);
}
END_TEST

/* ---- log_mask_ip ---------------------------------------------------------- */

static const char *client_text(const char *text, char *out)
{
    struct test_addr a = addr_of(text);

    log_format_client((struct sockaddr *)&a.ss, a.len, out, NET_ADDR_MAX);
    return out;
}

START_TEST(test_log_mask_ip)
{
    char out[NET_ADDR_MAX];

    ck_assert_str_eq(client_text("10.1.2.3", out), "10.1.2.3:4000");
    ck_assert_str_eq(client_text("2001:db8:1:2::5", out), "[2001:db8:1:2::5]:4000");
    log_set_mask_ip(true);
    ck_assert_str_eq(client_text("10.1.2.3", out), "10.1.x.x:4000");
    ck_assert_str_eq(client_text("255.254.253.252", out), "255.254.x.x:4000");
    ck_assert_str_eq(client_text("2001:db8:1:2::5", out), "[2001:db8:1::/48]:4000");
    ck_assert_str_eq(client_text("::1", out), "[::/48]:4000");
    ck_assert_str_eq(client_text("::ffff:192.168.7.9", out), "[::ffff:192.168.x.x]:4000");
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    snprintf(un.sun_path, sizeof(un.sun_path), "/run/x.sock");
    log_format_client((struct sockaddr *)&un, sizeof(un), out, sizeof(out));
    ck_assert_str_eq(out, "unix:/run/x.sock");
    log_set_mask_ip(false);
    ck_assert_str_eq(client_text("10.1.2.3", out), "10.1.2.3:4000");
}
END_TEST

Suite *cidr_set_suite(void)
{
    Suite *s = suite_create("cidr_set");
    TCase *tc = tcase_create("set");
    tcase_add_test(tc, test_cidr_set_v4_v6);
    tcase_add_test(tc, test_cidr_set_nested_and_edges);
    tcase_add_test(tc, test_cidr_set_random_against_linear);
    tcase_add_test(tc, test_log_mask_ip);
    suite_add_tcase(s, tc);

    TCase *acc = tcase_create("access");
    tcase_add_unchecked_fixture(acc, dir_setup, dir_teardown);
    tcase_add_checked_fixture(acc, cfg_setup, cfg_teardown);
    tcase_add_test(acc, test_access_services_form);
    tcase_add_test(acc, test_access_single_form_and_reload);
    tcase_add_test(acc, test_access_config_errors);
    suite_add_tcase(s, acc);
    return s;
}
