/* Routing on the first bytes (SPEC §10): a service's routes compiled once,
 * then asked whether the bytes a client sent so far decide where it goes.
 * Regexes are POSIX ERE run with REG_STARTEND, so NUL bytes are data. */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "route.h"

/* The captures a regex may have referenced: $1..$9. */
#define ROUTE_CAPTURES 9

/* Checks the $ references of text (len bytes): each $ is followed by $ or
 * a digit 1..ngroups. Returns PMX_OK, or PMX_ERR with the reason in why. */
static int route_check_refs(const char *text, size_t len, size_t ngroups, bool regex, char *why,
                            size_t whylen)
{
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '$')
            continue;
        if (i + 1 < len && text[i + 1] == '$') {
            i++;
            continue;
        }
        if (i + 1 >= len || text[i + 1] < '1' || text[i + 1] > '9') {
            snprintf(why, whylen, "a $ is followed by a digit 1-9 (a capture) or by $ (a literal $)");
            return PMX_ERR;
        }
        size_t n = (size_t)(text[i + 1] - '0');
        if (!regex) {
            snprintf(why, whylen, "$%zu: captures come from match: (a regex); this route has none", n);
            return PMX_ERR;
        }
        if (n > ngroups) {
            snprintf(why, whylen, "$%zu: the regex has %zu group%s", n, ngroups, ngroups == 1 ? "" : "s");
            return PMX_ERR;
        }
        i++;
    }
    return PMX_OK;
}

int route_check(const struct route_config *r, const char **field, char *why, size_t whylen)
{
    size_t ngroups = 0;
    regex_t re;

    if (r->kind == ROUTE_MATCH) {
        int rc = regcomp(&re, r->pattern, REG_EXTENDED);
        if (rc != 0) {
            char msg[256];
            regerror(rc, &re, msg, sizeof msg);
            *field = "match";
            snprintf(why, whylen, "does not compile: %s", msg);
            return PMX_ERR;
        }
        ngroups = re.re_nsub;
        regfree(&re);
    }
    bool regex = r->kind == ROUTE_MATCH;
    if (route_check_refs(r->target, strlen(r->target), ngroups, regex, why, whylen) != PMX_OK) {
        *field = "target";
        return PMX_ERR;
    }
    if (route_check_refs(r->data, r->data_len, ngroups, regex, why, whylen) != PMX_OK) {
        *field = "data";
        return PMX_ERR;
    }
    return PMX_OK;
}
