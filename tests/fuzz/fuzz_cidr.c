/* libFuzzer harness for the CIDR set (src/core/cidr_set.c) and the parser
 * it is fed by. Input: lines of text; each goes through cidr_parse() (up to
 * FUZZ_CIDR_MAX parsed entries). The parsed ones make a set, which is then
 * probed at each entry's first and last address and their neighbours, and
 * at addresses read from the input's raw bytes (IPv4, IPv6, IPv4-mapped):
 * cidr_set_find() must agree with the linear cidr_match_any(), and the
 * entry it returns must hold the address. Each probe is also formatted with
 * log_mask_ip on: the text fits and never shows the address whole. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cidr_set.h"
#include "log.h"
#include "net.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CIDR_MAX 256

#define CHECK(cond, ...) do { \
        if (!(cond)) { \
            fprintf(stderr, "fuzz_cidr: check failed: %s: ", #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
            abort(); \
        } \
    } while (0)

/* addr as a sockaddr of family (AF_INET: 4 bytes; AF_INET6: 16 bytes). */
static void probe(const struct cidr_set *s, const struct cidr *list, int n, int family,
                  const unsigned char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(1234);
        memcpy(&in->sin_addr, addr, 4);
        len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(1234);
        memcpy(&in6->sin6_addr, addr, 16);
        len = sizeof(*in6);
    }
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    const struct cidr *hit = cidr_set_find(s, sa, len);
    bool want = cidr_match_any(list, n, sa, len);
    CHECK((hit != NULL) == want, "set says %d, linear %d", hit != NULL, want);
    CHECK(hit == NULL || cidr_match(hit, sa, len), "returned entry %s misses the address", hit->spec);

    char masked[NET_ADDR_MAX], full[NET_ADDR_MAX];
    log_set_mask_ip(true);
    log_format_client(sa, len, masked, sizeof(masked));
    log_set_mask_ip(false);
    net_format_addr(sa, len, full, sizeof(full));
    CHECK(strlen(masked) < sizeof(masked) - 1, "masked text too long: %s", masked);
    CHECK(strcmp(masked, full) != 0 || strstr(full, "::]") != NULL || strstr(full, "[::ffff:") != NULL,
          "address not masked: %s", full);
}

/* Flips the address by one: +1 (up) or -1, as a big-endian number. */
static void step(unsigned char *a, int bytes, bool up)
{
    for (int i = bytes - 1; i >= 0; i--) {
        if (up ? a[i]++ != 0xff : a[i]-- != 0)
            return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cidr list[FUZZ_CIDR_MAX];
    char line[CIDR_TEXT_MAX + 8], why[128];
    int n = 0;
    size_t at = 0;

    while (at < size && n < FUZZ_CIDR_MAX) {
        const uint8_t *nl = memchr(data + at, '\n', size - at);
        size_t end = nl != NULL ? (size_t)(nl - data) : size;
        size_t len = end - at;
        if (len < sizeof(line)) {
            memcpy(line, data + at, len);
            line[len] = '\0';
            if (strlen(line) == len) {
                why[0] = '\0';
                if (cidr_parse(line, &list[n], why, sizeof(why)) == PMX_OK)
                    n++;
                else
                    CHECK(why[0] != '\0', "no reason for refusing \"%s\"", line);
            }
        }
        at = end + 1;
    }

    struct cidr_set *s;
    if (cidr_set_build(list, n, &s) != PMX_OK)
        return 0;
    CHECK(cidr_set_size(s) == n, "size %d of %d", cidr_set_size(s), n);

    for (int i = 0; i < n; i++) {
        int bytes = list[i].family == AF_INET ? 4 : 16, max = bytes * 8;
        unsigned char first[16], last[16];
        memcpy(first, list[i].addr, 16);
        memcpy(last, list[i].addr, 16);
        for (int bit = list[i].prefix; bit < max; bit++)
            last[bit / 8] |= (unsigned char)(0x80u >> (bit % 8));
        probe(s, list, n, list[i].family, first);
        probe(s, list, n, list[i].family, last);
        step(first, bytes, false);
        step(last, bytes, true);
        probe(s, list, n, list[i].family, first);
        probe(s, list, n, list[i].family, last);
        if (list[i].family == AF_INET) {
            unsigned char mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
            memcpy(mapped + 12, list[i].addr, 4);
            probe(s, list, n, AF_INET6, mapped);
        }
    }
    /* Raw windows of the input as addresses. */
    for (size_t i = 0; i + 16 <= size && i < 64 * 16; i += 16) {
        unsigned char mapped[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        probe(s, list, n, AF_INET, data + i);
        probe(s, list, n, AF_INET6, data + i);
        memcpy(mapped + 12, data + i, 4);
        probe(s, list, n, AF_INET6, mapped);
    }
    cidr_set_free(s);
    return 0;
}
