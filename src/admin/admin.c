/* The admin API: a listener on the daemon's reactor, connections that read
 * one request (framed by the http codec, at most ADMIN_REQUEST_MAX bytes),
 * answer it and close ("Connection: close"), and the router that turns a
 * request into a JSON (or Prometheus text, or YAML) response. */
#include <errno.h>
#include <netdb.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "admin.h"
#include "buf.h"
#include "codec.h"
#include "config.h"
#include "conn.h"
#include "exchange.h"
#include "health.h"
#include "log.h"
#include "net.h"
#include "reactor.h"
#include "service.h"
#include "stats.h"
#include "upstream.h"

/* Path segments a route may have: /api/v1/services/NAME/targets/TARGET/dead. */
#define ADMIN_MAX_SEGMENTS 8
#define ADMIN_SEGMENT_MAX CONFIG_TARGET_NAME_MAX
#define ADMIN_TOKEN_MAX 512
#define ADMIN_TICK_MS 1000

/* ---- requests ------------------------------------------------------------ */

struct admin_request {
    char method[16];
    char segments[ADMIN_MAX_SEGMENTS][ADMIN_SEGMENT_MAX];   /* the path, split on '/', %-decoded */
    int nsegments;
    char authorization[ADMIN_TOKEN_MAX];
    bool has_authorization;
    const char *body;
    size_t body_len;
};

/* A response being built: the body goes to a memory stream; an error
 * replaces whatever was written. */
struct admin_reply {
    struct admin_response *resp;
    FILE *out;
    int err_status;             /* 0: no error */
    char err[256];
};

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copies the %-encoded segment s[0..n) decoded into out. Returns false if
 * it is malformed, too long, or decodes to a NUL or control byte. */
static bool segment_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= cap)
            return false;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

/* Splits the request target's path (the query is ignored) into segments.
 * Returns NULL or what is wrong. */
static const char *path_split(struct admin_request *req, const char *s, size_t n)
{
    const char *q = memchr(s, '?', n);

    if (q != NULL)
        n = (size_t)(q - s);
    if (n == 0 || s[0] != '/')
        return "the request target must be a path";
    size_t i = 1;
    req->nsegments = 0;
    while (i < n) {
        const char *slash = memchr(s + i, '/', n - i);
        size_t end = slash ? (size_t)(slash - s) : n;
        if (req->nsegments == ADMIN_MAX_SEGMENTS)
            return "path has too many segments";
        if (!segment_decode(s + i, end - i, req->segments[req->nsegments], ADMIN_SEGMENT_MAX))
            return "malformed path segment";
        req->nsegments++;
        i = end + 1;
    }
    return NULL;
}

static bool header_is(const char *s, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n > k && s[k] == ':' && strncasecmp(s, name, k) == 0;
}

/* The value of the header line s[0..n) after "name:", trimmed. */
static void header_value(const char *s, size_t n, size_t name_len, const char **v, size_t *vn)
{
    const char *p = s + name_len + 1, *e = s + n;

    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    *v = p;
    *vn = (size_t)(e - p);
}

/* Parses the head of data[0..len) into req. Returns NULL, or the reason
 * the request is refused (400). */
static const char *request_parse(struct admin_request *req, const char *data, size_t len)
{
    const char *end = data + len;
    const char *eol = memmem(data, len, "\r\n", 2);

    memset(req, 0, sizeof(*req));
    if (eol == NULL)
        return "malformed request line";
    const char *sp1 = memchr(data, ' ', (size_t)(eol - data));
    if (sp1 == NULL || sp1 == data || (size_t)(sp1 - data) >= sizeof(req->method))
        return "malformed request line";
    memcpy(req->method, data, (size_t)(sp1 - data));
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    if (sp2 == NULL)
        return "malformed request line";
    const char *why = path_split(req, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    if (why != NULL)
        return why;
    const char *line = eol + 2;
    for (;;) {
        eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (eol == NULL)
            return "malformed header";
        size_t n = (size_t)(eol - line);
        if (n == 0)
            break;
        const char *v;
        size_t vn;
        if (header_is(line, n, "authorization")) {
            header_value(line, n, strlen("authorization"), &v, &vn);
            if (vn >= sizeof(req->authorization))
                return "authorization header too long";
            memcpy(req->authorization, v, vn);
            req->authorization[vn] = '\0';
            req->has_authorization = true;
        } else if (header_is(line, n, "transfer-encoding")) {
            return "chunked bodies are not accepted: send Content-Length";
        }
        line = eol + 2;
    }
    req->body = eol + 2;
    req->body_len = (size_t)(end - req->body);
    return NULL;
}

/* Compares without stopping at the first difference: the time taken does
 * not tell how much of the token was right. */
static bool token_equal(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = na != nb;

    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

/* ---- JSON bodies ----------------------------------------------------------- */

/* One flat JSON object of strings, integers and booleans: the body of a
 * target to add. Nesting, null, fractions and unknown keys are refused. */
#define JSON_MAX_FIELDS 8
#define JSON_VALUE_MAX CONFIG_HOST_MAX

struct json_field {
    char key[16];
    char str[JSON_VALUE_MAX];
    long long num;
    enum { JSON_STRING, JSON_NUMBER, JSON_BOOL } type;
};

struct json_object {
    struct json_field f[JSON_MAX_FIELDS];
    int n;
};

static const char *json_skip(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* A string at p ('"' first) into out; returns the byte after it or NULL.
 * Escapes: \" \\ \/ and \u00XX for XX 20-7e: names and hosts are
 * printable ASCII (no control character reaches a log line). */
static const char *json_string(const char *p, const char *e, char *out, size_t cap)
{
    size_t o = 0;

    if (p >= e || *p != '"')
        return NULL;
    for (p++; p < e && *p != '"'; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (++p >= e)
                return NULL;
            switch (*p) {
            case '"': case '\\': case '/': c = (unsigned char)*p; break;
            case 'u': {
                if (e - p < 5 || p[1] != '0' || p[2] != '0')
                    return NULL;
                int hi = hex_value(p[3]), lo = hex_value(p[4]);
                if (hi < 0 || lo < 0 || hi * 16 + lo < 0x20 || hi * 16 + lo > 0x7e)
                    return NULL;
                c = (unsigned char)(hi * 16 + lo);
                p += 4;
                break;
            }
            default:
                return NULL;
            }
        }
        if (o + 1 >= cap)
            return NULL;
        out[o++] = (char)c;
    }
    if (p >= e)
        return NULL;
    out[o] = '\0';
    return p + 1;
}

/* Parses s[0..n) into obj. Returns NULL or what is wrong. */
static const char *json_parse(const char *s, size_t n, struct json_object *obj)
{
    const char *p = json_skip(s, s + n), *e = s + n;

    memset(obj, 0, sizeof(*obj));
    if (p >= e || *p != '{')
        return "the body must be a JSON object";
    p = json_skip(p + 1, e);
    if (p < e && *p == '}') {
        p = json_skip(p + 1, e);
        return p == e ? NULL : "bytes after the JSON object";
    }
    for (;;) {
        if (obj->n == JSON_MAX_FIELDS)
            return "too many fields";
        struct json_field *f = &obj->f[obj->n];
        p = json_string(p, e, f->key, sizeof(f->key));
        if (p == NULL)
            return "malformed JSON: a field name (a short string) was expected";
        for (int i = 0; i < obj->n; i++)
            if (strcmp(obj->f[i].key, f->key) == 0)
                return "malformed JSON: a field is repeated";
        p = json_skip(p, e);
        if (p >= e || *p != ':')
            return "malformed JSON: ':' expected";
        p = json_skip(p + 1, e);
        if (p < e && *p == '"') {
            f->type = JSON_STRING;
            p = json_string(p, e, f->str, sizeof(f->str));
            if (p == NULL)
                return "malformed JSON string (or too long)";
        } else if (p < e && (*p == '-' || (*p >= '0' && *p <= '9'))) {
            bool neg = *p == '-';
            int digits = 0;
            f->type = JSON_NUMBER;
            for (p += neg; p < e && *p >= '0' && *p <= '9'; p++) {
                if (++digits > 9)
                    return "number out of range";
                f->num = f->num * 10 + (*p - '0');
            }
            if (digits == 0 || (p < e && (*p == '.' || *p == 'e' || *p == 'E')))
                return "malformed JSON: an integer was expected";
            if (neg)
                f->num = -f->num;
        } else if (e - p >= 4 && memcmp(p, "true", 4) == 0) {
            f->type = JSON_BOOL;
            f->num = 1;
            p += 4;
        } else if (e - p >= 5 && memcmp(p, "false", 5) == 0) {
            f->type = JSON_BOOL;
            p += 5;
        } else {
            return "malformed JSON: a string, an integer, true or false was expected";
        }
        obj->n++;
        p = json_skip(p, e);
        if (p < e && *p == ',') {
            p = json_skip(p + 1, e);
            continue;
        }
        if (p < e && *p == '}')
            break;
        return "malformed JSON: ',' or '}' expected";
    }
    p = json_skip(p + 1, e);
    return p == e ? NULL : "bytes after the JSON object";
}

/* Fills tc from a target's JSON: {"host", "port"} or {"unix"}, optional
 * "name", "weight", "backup". keep_alive and credentials come from the
 * service's first target (like is like). Returns NULL or what is wrong. */
static const char *target_from_json(const struct json_object *obj, const struct service_config *sc,
                                    struct target_config *tc)
{
    memset(tc, 0, sizeof(*tc));
    tc->weight = 1;
    if (sc->ntargets > 0) {
        tc->keep_alive = sc->targets[0].keep_alive;
        memcpy(tc->username, sc->targets[0].username, sizeof(tc->username));
        memcpy(tc->password, sc->targets[0].password, sizeof(tc->password));
    }
    for (int i = 0; i < obj->n; i++) {
        const struct json_field *f = &obj->f[i];
        bool str = f->type == JSON_STRING, num = f->type == JSON_NUMBER;
        if (strcmp(f->key, "host") == 0 && str && f->str[0] != '\0' && strlen(f->str) < sizeof(tc->host))
            snprintf(tc->host, sizeof(tc->host), "%s", f->str);
        else if (strcmp(f->key, "port") == 0 && num && f->num >= 1 && f->num <= 65535)
            tc->port = (int)f->num;
        else if (strcmp(f->key, "unix") == 0 && str && f->str[0] == '/' && strlen(f->str) < sizeof(tc->unix_path))
            snprintf(tc->unix_path, sizeof(tc->unix_path), "%s", f->str);
        else if (strcmp(f->key, "name") == 0 && str && f->str[0] != '\0')
            snprintf(tc->name, sizeof(tc->name), "%s", f->str);
        else if (strcmp(f->key, "weight") == 0 && num && f->num >= 1 && f->num <= 1000)
            tc->weight = (int)f->num;
        else if (strcmp(f->key, "backup") == 0 && f->type == JSON_BOOL)
            tc->backup = f->num != 0;
        else
            return "a target takes host (string) and port (1-65535), or unix (an absolute path); "
                   "name (string), weight (1-1000), backup (true/false)";
    }
    if (tc->unix_path[0] != '\0') {
        if (tc->host[0] != '\0' || tc->port != 0)
            return "a target has host and port, or unix, not both";
        struct sockaddr_un *sun = (struct sockaddr_un *)&tc->addr;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, tc->unix_path, strlen(tc->unix_path) + 1);
        tc->addr_len = (socklen_t)sizeof(*sun);
        if (tc->name[0] == '\0')
            snprintf(tc->name, sizeof(tc->name), "%s", tc->unix_path);
        return NULL;
    }
    if (tc->host[0] == '\0' || tc->port == 0)
        return "a target needs host and port (or unix)";
    /* An address literal is used as is; a name is left to the resolver
     * (addr_len 0), off the loop. */
    struct sockaddr_in *sin = (struct sockaddr_in *)&tc->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&tc->addr;
    if (inet_pton(AF_INET, tc->host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)tc->port);
        tc->addr_len = sizeof(*sin);
    } else if (inet_pton(AF_INET6, tc->host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)tc->port);
        tc->addr_len = sizeof(*sin6);
    }
    if (tc->name[0] == '\0')
        snprintf(tc->name, sizeof(tc->name), strchr(tc->host, ':') ? "[%s]:%d" : "%s:%d", tc->host, tc->port);
    return NULL;
}

/* ---- replies ------------------------------------------------------------- */

static void reply_begin(struct admin_reply *r, int status, const char *type)
{
    r->resp->status = status;
    r->resp->content_type = type;
}

static void reply_error(struct admin_reply *r, int status, const char *msg)
{
    r->err_status = status;
    snprintf(r->err, sizeof(r->err), "%s", msg);
}

/* {"error": msg} as the whole body of resp (NULL body: out of memory). */
static void error_body(struct admin_response *resp, int status, const char *msg)
{
    FILE *out = open_memstream(&resp->body, &resp->len);

    resp->status = status;
    resp->content_type = "application/json";
    if (out == NULL) {
        resp->body = NULL;
        resp->len = 0;
        return;
    }
    fputs("{\"error\": ", out);
    stats_json_string(out, msg);
    fputs("}\n", out);
    fclose(out);
}

/* ---- the services as the routes see them ---------------------------------- */

struct admin_ctx {
    const struct admin_hooks *hooks;
    struct service *const *services;
    int nservices;
};

static struct service *find_service(const struct admin_ctx *c, const char *name)
{
    for (int i = 0; i < c->nservices; i++)
        if (strcmp(c->services[i]->config->name, name) == 0)
            return c->services[i];
    return NULL;
}

static int find_target(const struct service *s, const char *name)
{
    struct upstream_target_info info;

    if (s->upstream == NULL)
        return -1;
    for (int i = 0; i < upstream_target_count(s->upstream); i++) {
        upstream_target_info(s->upstream, i, &info);
        if (strcmp(info.name, name) == 0)
            return i;
    }
    return -1;
}

static int service_targets(const struct service *s)
{
    return s->upstream ? upstream_target_count(s->upstream) : 0;
}

/* Fills snap for s; targets has room for service_targets(s). */
static void snapshot_add_open_bytes(void *data, int target, uint64_t sent, uint64_t received)
{
    struct stats_target *targets = data;

    targets[target].bytes_sent += sent;
    targets[target].bytes_received += received;
}

static void service_snapshot(const struct service *s, struct stats_snapshot *snap, struct stats_target *targets)
{
    memset(snap, 0, sizeof(*snap));
    snap->name = s->config->name;
    snap->mode = config_mode_name(s->config->effective_mode);
    snap->codec = s->config->codec;
    snap->clients = service_clients(s);
    snap->counters = &s->exchange.stats;
    if (s->exchange.ops != NULL && s->exchange.ops->gauges != NULL)
        s->exchange.ops->gauges(&s->exchange, &snap->gauges);
    snap->gauges.request_log_dropped = service_request_log_dropped(s);
    if (s->upstream != NULL)
        upstream_conn_states(s->upstream, snap->upstream_conns);
    snap->targets = targets;
    snap->ntargets = service_targets(s);
    for (int i = 0; i < snap->ntargets; i++) {
        struct upstream_target_info info;
        upstream_target_info(s->upstream, i, &info);
        targets[i] = (struct stats_target){
            .name = info.name, .address = info.address, .state = health_state_name(info.state),
            .reason = info.reason, .conns = info.conns, .connects = info.connects,
            .connect_errors = info.connect_errors, .requests = info.requests,
            .bytes_sent = info.bytes_sent, .bytes_received = info.bytes_received, .weight = info.weight, .backup = info.backup,
            .draining = info.draining,
        };
    }
    if (s->upstream != NULL)
        upstream_open_bytes(s->upstream, snapshot_add_open_bytes, targets);
}

static void write_service(FILE *out, const struct service *s)
{
    struct upstream_target_info info;

    fputs("{\"name\": ", out);
    stats_json_string(out, s->config->name);
    fprintf(out, ", \"mode\": \"%s\", \"codec\": ", config_mode_name(s->config->effective_mode));
    stats_json_string(out, s->config->codec);
    fputs(", \"listen\": [", out);
    for (int i = 0; i < s->config->nlisten; i++) {
        fputs(i ? ", " : "", out);
        stats_json_string(out, s->config->listen[i].spec);
    }
    fprintf(out, "], \"clients\": %zu, \"targets\": [", service_clients(s));
    for (int i = 0; i < service_targets(s); i++) {
        upstream_target_info(s->upstream, i, &info);
        fputs(i ? ", {\"name\": " : "{\"name\": ", out);
        stats_json_string(out, info.name);
        fputs(", \"address\": ", out);
        stats_json_string(out, info.address);
        fprintf(out, ", \"state\": \"%s\", \"reason\": ", health_state_name(info.state));
        stats_json_string(out, info.reason);
        fprintf(out, ", \"connections\": %u, \"weight\": %d, \"backup\": %s, \"draining\": %s}", info.conns,
                info.weight, info.backup ? "true" : "false", info.draining ? "true" : "false");
    }
    fputs("]}", out);
}

/* Writes the statistics of s as JSON. */
static void write_stats(FILE *out, const struct service *s)
{
    struct stats_snapshot snap;
    int nt = service_targets(s);
    struct stats_target *targets = calloc((size_t)PMX_MAX(nt, 1), sizeof(*targets));

    if (targets == NULL) {
        fputs("{\"error\": \"out of memory\"}", out);
        return;
    }
    service_snapshot(s, &snap, targets);
    stats_write_json(out, &snap);
    free(targets);
}

static void write_metrics(struct admin_reply *r, const struct admin_ctx *c)
{
    struct stats_snapshot *snaps = calloc((size_t)PMX_MAX(c->nservices, 1), sizeof(*snaps));
    struct stats_target **targets = calloc((size_t)PMX_MAX(c->nservices, 1), sizeof(struct stats_target *));
    bool ok = snaps != NULL && targets != NULL;

    for (int i = 0; ok && i < c->nservices; i++) {
        targets[i] = calloc((size_t)PMX_MAX(service_targets(c->services[i]), 1), sizeof(**targets));
        ok = targets[i] != NULL;
        if (ok)
            service_snapshot(c->services[i], &snaps[i], targets[i]);
    }
    if (ok) {
        reply_begin(r, 200, "text/plain; version=0.0.4; charset=utf-8");
        stats_write_prometheus(r->out, snaps, c->nservices);
    } else {
        reply_error(r, 500, "out of memory");
    }
    for (int i = 0; targets != NULL && i < c->nservices; i++)
        free(targets[i]);
    free(targets);
    free(snaps);
}

/* ---- routes -------------------------------------------------------------- */

static bool seg(const struct admin_request *q, int i, const char *s)
{
    return i < q->nsegments && strcmp(q->segments[i], s) == 0;
}

static bool method_is(const struct admin_request *q, const char *m)
{
    return strcmp(q->method, m) == 0;
}

/* The method is not the one the path takes: 405 with Allow. */
static void reply_method(struct admin_reply *r, const char *allow)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "method not allowed; use %s", allow);
    reply_error(r, 405, msg);
    r->resp->allow = allow;
}

static void reply_no_service(struct admin_reply *r, const char *name)
{
    char msg[160];

    snprintf(msg, sizeof(msg), "no service \"%.100s\"", name);
    reply_error(r, 404, msg);
}

static void route_services(struct admin_reply *r, const struct admin_ctx *c, const struct admin_request *q,
                           bool stats)
{
    if (!method_is(q, "GET")) {
        reply_method(r, "GET");
        return;
    }
    if (q->nsegments == 4) {
        const struct service *s = find_service(c, q->segments[3]);
        if (s == NULL) {
            reply_no_service(r, q->segments[3]);
            return;
        }
        reply_begin(r, 200, "application/json");
        if (stats)
            write_stats(r->out, s);
        else
            write_service(r->out, s);
        fputc('\n', r->out);
        return;
    }
    reply_begin(r, 200, "application/json");
    fputs("{\"services\": [", r->out);
    for (int i = 0; i < c->nservices; i++) {
        fputs(i ? ", " : "", r->out);
        if (stats)
            write_stats(r->out, c->services[i]);
        else
            write_service(r->out, c->services[i]);
    }
    fputs("]}\n", r->out);
}

/* POST /api/v1/services/NAME/targets: a target added until the next reload. */
static void route_target_add(struct admin_reply *r, struct service *s, const struct admin_request *q)
{
    struct json_object *obj = malloc(sizeof(*obj));
    struct target_config *tc = malloc(sizeof(*tc));
    char err[256];
    const char *why;

    if (obj == NULL || tc == NULL) {
        reply_error(r, 500, "out of memory");
    } else if ((why = json_parse(q->body, q->body_len, obj)) != NULL ||
               (why = target_from_json(obj, s->config, tc)) != NULL) {
        reply_error(r, 400, why);
    } else if (upstream_target_add(s->upstream, tc, err, sizeof(err)) != PMX_OK) {
        reply_error(r, strcmp(err, "out of memory") == 0 ? 500 : 409, err);
    } else {
        struct upstream_target_info info;
        upstream_target_info(s->upstream, upstream_target_find(s->upstream, tc->name), &info);
        reply_begin(r, 201, "application/json");
        fputs("{\"target\": ", r->out);
        stats_json_string(r->out, info.name);
        fputs(", \"address\": ", r->out);
        stats_json_string(r->out, info.address);
        fprintf(r->out, ", \"state\": \"%s\"}\n", health_state_name(info.state));
    }
    free(tc);
    free(obj);
}

/* DELETE /api/v1/services/NAME/targets/TARGET: drained, then removed. The
 * last target taking connections is kept: the service would serve nobody. */
static void route_target_drain(struct admin_reply *r, struct service *s, int t)
{
    struct upstream_target_info info;
    int others = 0;

    for (int i = 0; i < upstream_target_count(s->upstream); i++) {
        upstream_target_info(s->upstream, i, &info);
        others += i != t && !info.draining;
    }
    if (others == 0) {
        reply_error(r, 409, "the last target of a service cannot be removed");
        return;
    }
    upstream_target_info(s->upstream, t, &info);
    unsigned conns = info.conns;
    reply_begin(r, 202, "application/json");
    fputs("{\"target\": ", r->out);
    stats_json_string(r->out, info.name);
    /* Drained at once when it had no connection: gone from the list now. */
    upstream_target_drain(s->upstream, t);
    fprintf(r->out, ", \"draining\": true, \"connections\": %u, \"removed\": %s}\n", conns,
            conns == 0 ? "true" : "false");
}

/* /api/v1/services/NAME/targets[/TARGET[/(dead|alive)]] */
static void route_target(struct admin_reply *r, const struct admin_ctx *c, const struct admin_request *q)
{
    struct service *s = find_service(c, q->segments[3]);
    const char *allow = q->nsegments == 5 ? "POST" : q->nsegments == 6 ? "DELETE" : "POST";
    char msg[232];

    if (q->nsegments > 7 || (q->nsegments == 7 && !(seg(q, 6, "dead") || seg(q, 6, "alive")))) {
        reply_error(r, 404, "no such path");
        return;
    }
    if (!method_is(q, allow)) {
        reply_method(r, allow);
        return;
    }
    if (s == NULL || s->upstream == NULL) {
        reply_no_service(r, q->segments[3]);
        return;
    }
    if (q->nsegments == 5) {
        route_target_add(r, s, q);
        return;
    }
    int t = find_target(s, q->segments[5]);
    if (t < 0) {
        snprintf(msg, sizeof(msg), "no target \"%.200s\"", q->segments[5]);
        reply_error(r, 404, msg);
        return;
    }
    if (q->nsegments == 6) {
        route_target_drain(r, s, t);
        return;
    }
    upstream_target_set_maint(s->upstream, t, seg(q, 6, "dead"));
    struct upstream_target_info info;
    upstream_target_info(s->upstream, t, &info);
    reply_begin(r, 200, "application/json");
    fputs("{\"target\": ", r->out);
    stats_json_string(r->out, info.name);
    fprintf(r->out, ", \"state\": \"%s\"}\n", health_state_name(info.state));
}

static void route_config(struct admin_reply *r, const struct admin_ctx *c, const struct admin_request *q)
{
    if (!method_is(q, "GET")) {
        reply_method(r, "GET");
        return;
    }
    reply_begin(r, 200, "text/yaml; charset=utf-8");
    config_dump(c->hooks->config(c->hooks->data), r->out);
}

static void route_reload(struct admin_reply *r, const struct admin_ctx *c, const struct admin_request *q)
{
    char msg[ADMIN_MSG_MAX] = "";

    if (!method_is(q, "POST")) {
        reply_method(r, "POST");
        return;
    }
    if (c->hooks->reload == NULL) {
        reply_error(r, 501, "reload is not available");
        return;
    }
    if (!c->hooks->reload(c->hooks->data, msg, sizeof(msg))) {
        reply_error(r, 409, msg[0] ? msg : "reload refused");
        return;
    }
    reply_begin(r, 200, "application/json");
    fputs("{\"reloaded\": true, \"message\": ", r->out);
    stats_json_string(r->out, msg);
    fputs("}\n", r->out);
}

static void route(struct admin_reply *r, const struct admin_ctx *c, const struct admin_request *q)
{
    if (q->nsegments == 1 && seg(q, 0, "metrics")) {
        if (method_is(q, "GET"))
            write_metrics(r, c);
        else
            reply_method(r, "GET");
        return;
    }
    if (q->nsegments < 3 || !seg(q, 0, "api") || !seg(q, 1, "v1")) {
        reply_error(r, 404, "no such path");
        return;
    }
    bool services = seg(q, 2, "services"), stats = seg(q, 2, "stats");
    if ((services || stats) && q->nsegments <= 4) {
        route_services(r, c, q, stats);
    } else if (services && q->nsegments >= 5 && seg(q, 4, "targets")) {
        route_target(r, c, q);
    } else if (q->nsegments == 3 && seg(q, 2, "config")) {
        route_config(r, c, q);
    } else if (q->nsegments == 3 && seg(q, 2, "reload")) {
        route_reload(r, c, q);
    } else {
        reply_error(r, 404, "no such path");
    }
}

void admin_handle(const struct admin_hooks *hooks, const char *data, size_t len, struct admin_response *resp)
{
    struct admin_request *q = malloc(sizeof(*q));
    struct admin_reply r = { .resp = resp, .out = NULL };
    struct admin_ctx c = { .hooks = hooks };

    memset(resp, 0, sizeof(*resp));
    r.out = open_memstream(&resp->body, &resp->len);
    if (q == NULL || r.out == NULL) {
        free(q);
        if (r.out != NULL)
            fclose(r.out);
        free(resp->body);
        error_body(resp, 500, "out of memory");
        return;
    }
    const struct config *cfg = hooks->config(hooks->data);
    const char *why = request_parse(q, data, len);
    if (why != NULL) {
        reply_error(&r, 400, why);
    } else if (cfg->admin_token[0] != '\0' &&
               (strncmp(q->authorization, "Bearer ", 7) != 0 || !token_equal(q->authorization + 7, cfg->admin_token))) {
        reply_error(&r, 401, q->has_authorization ? "wrong token" : "a bearer token is required");
    } else {
        c.services = hooks->services(hooks->data, &c.nservices);
        route(&r, &c, q);
    }
    fclose(r.out);
    free(q);
    if (r.err_status != 0) {
        const char *allow = resp->allow;
        free(resp->body);
        error_body(resp, r.err_status, r.err);
        resp->allow = allow;
    }
}

/* ---- the listener and its connections --------------------------------------- */

struct admin_conn {
    struct admin *a;
    struct conn conn;
    struct buf in;
    struct codec_parser parser;
    size_t scanned;             /* bytes of in the parser consumed */
    bool replied;               /* the reply is in conn.out: close once flushed */
    bool draining;              /* reply sent, write side shut: read and drop until the client closes */
    bool continued;             /* "100 Continue" sent */
    uint64_t since;             /* accepted (ms) */
    struct admin_conn *prev, *next;
};

struct admin {
    struct reactor *r;
    struct admin_hooks hooks;
    int fd;
    char unix_path[NET_UNIX_PATH_MAX];
    struct admin_conn *conns;
    int nconns;
    long long timer;
};

static void admin_conn_close(struct admin_conn *ac)
{
    struct admin *a = ac->a;

    conn_close(&ac->conn, a->r);
    buf_free(&ac->in);
    if (ac->prev)
        ac->prev->next = ac->next;
    else
        a->conns = ac->next;
    if (ac->next)
        ac->next->prev = ac->prev;
    a->nconns--;
    free(ac);
}

static const char *status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 501: return "Not Implemented";
    default: return status >= 500 ? "Internal Server Error" : "Error";
    }
}

static void admin_conn_event(struct reactor *r, int fd, void *data, int mask);

/* The reply is written: shut our side and read what the client may still
 * send until it closes, so that closing with unread bytes (a refused
 * oversized body) does not reset the connection under the reply. */
static void admin_conn_drain(struct admin_conn *ac)
{
    ac->draining = true;
    ac->since = reactor_now(ac->a->r);
    conn_shutdown_write(&ac->conn);
    if (reactor_set(ac->a->r, ac->conn.fd, REACTOR_READABLE, admin_conn_event, ac) != PMX_OK)
        admin_conn_close(ac);
}

/* Queues resp as the connection's only reply and starts writing it. */
static void admin_conn_reply(struct admin_conn *ac, const struct admin_response *resp)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n%s%s%s%s\r\n",
                     resp->status, status_text(resp->status),
                     resp->content_type ? resp->content_type : "application/json", resp->len,
                     resp->allow ? "Allow: " : "", resp->allow ? resp->allow : "", resp->allow ? "\r\n" : "",
                     resp->status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
    ac->replied = true;
    if (conn_send(&ac->conn, head, (size_t)n) != PMX_OK ||
        conn_send(&ac->conn, resp->body ? resp->body : "", resp->len) != PMX_OK) {
        admin_conn_close(ac);
        return;
    }
    if (buf_len(&ac->conn.out) == 0)
        admin_conn_drain(ac);
    else if (reactor_set(ac->a->r, ac->conn.fd, REACTOR_WRITABLE, admin_conn_event, ac) != PMX_OK)
        admin_conn_close(ac);
}

static void admin_conn_error(struct admin_conn *ac, int status, const char *msg)
{
    struct admin_response resp = { .status = status, .content_type = "application/json" };
    FILE *out = open_memstream(&resp.body, &resp.len);

    if (out != NULL) {
        fputs("{\"error\": ", out);
        stats_json_string(out, msg);
        fputs("}\n", out);
        fclose(out);
    }
    admin_conn_reply(ac, &resp);
    free(resp.body);
}

/* Frames what was read; answers once a whole request is in. */
static void admin_conn_parse(struct admin_conn *ac)
{
    size_t used = 0;
    int rc = codec_http.parse_request(&ac->parser, buf_start(&ac->in) + ac->scanned,
                                      buf_len(&ac->in) - ac->scanned, &used);

    if (rc == CODEC_ERROR) {
        admin_conn_error(ac, 400, ac->parser.error ? ac->parser.error : "malformed request");
        return;
    }
    ac->scanned += used;
    if (rc == CODEC_MORE) {
        if (buf_len(&ac->in) >= ADMIN_REQUEST_MAX ||
            ac->scanned + (uint64_t)PMX_MAX(ac->parser.remaining, 0) > ADMIN_REQUEST_MAX) {
            admin_conn_error(ac, 413, "request larger than 65536 bytes");
        } else if ((ac->parser.info & CODEC_INFO_CONTINUE) && !ac->continued) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            ac->continued = true;
            if (conn_send(&ac->conn, cont, sizeof(cont) - 1) != PMX_OK)
                admin_conn_close(ac);
        }
        return;
    }
    struct admin_response resp;
    admin_handle(&ac->a->hooks, buf_start(&ac->in), ac->scanned, &resp);
    admin_conn_reply(ac, &resp);
    free(resp.body);
}

static void admin_conn_event(struct reactor *r, int fd, void *data, int mask)
{
    struct admin_conn *ac = data;

    if (ac->draining) {
        char sink[4096];
        ssize_t n = conn_read(&ac->conn, sink, sizeof(sink));
        if (n != PMX_AGAIN && n <= 0)
            admin_conn_close(ac);
        return;
    }
    if (mask & REACTOR_WRITABLE) {
        int rc = conn_flush(&ac->conn);
        if (rc == PMX_ERR)
            admin_conn_close(ac);
        else if (rc == PMX_OK && ac->replied)
            admin_conn_drain(ac);
        return;
    }
    ssize_t n = conn_read_buf(&ac->conn, &ac->in, 4096);
    if (n == PMX_AGAIN)
        return;
    if (n <= 0) {
        admin_conn_close(ac);
        return;
    }
    admin_conn_parse(ac);
}

static void admin_accept(struct reactor *r, int fd, void *data, int mask)
{
    struct admin *a = data;

    for (int i = 0; i < 16; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log_error_errno("admin: accept");
            return;
        }
        struct admin_conn *ac = a->nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof(*ac)) : NULL;
        if (ac == NULL) {
            log_error("admin: %d connections open already; closing a new one", a->nconns);
            close(cfd);
            continue;
        }
        ac->a = a;
        conn_init(&ac->conn, cfd);
        buf_init(&ac->in);
        codec_http.request_begin(&ac->parser);
        ac->since = reactor_now(r);
        ac->next = a->conns;
        if (a->conns)
            a->conns->prev = ac;
        a->conns = ac;
        a->nconns++;
        if (reactor_add(r, cfd, REACTOR_READABLE, admin_conn_event, ac) != PMX_OK)
            admin_conn_close(ac);
    }
}

/* Closes connections that did not finish in ADMIN_IDLE_MS. */
static long admin_tick(struct reactor *r, long long id, void *data)
{
    struct admin *a = data;
    uint64_t now = reactor_now(r);
    struct admin_conn *next;

    for (struct admin_conn *ac = a->conns; ac; ac = next) {
        next = ac->next;
        if (now - ac->since >= ADMIN_IDLE_MS)
            admin_conn_close(ac);
    }
    return ADMIN_TICK_MS;
}

struct admin *admin_start(struct reactor *r, const char *spec, const struct admin_hooks *hooks, char *err,
                          size_t errlen)
{
    struct net_listen_spec where;
    char why[256];
    struct admin *a;

    if (net_parse_listen(spec, &where, why, sizeof(why)) != PMX_OK) {
        snprintf(err, errlen, "admin.listen: \"%s\": %s", spec, why);
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "admin: out of memory");
        return NULL;
    }
    a->r = r;
    a->hooks = *hooks;
    a->fd = -1;
    if (where.unix_socket) {
        a->fd = net_listen_unix(where.path, 0600, 64, why, sizeof(why));
        if (a->fd >= 0)
            snprintf(a->unix_path, sizeof(a->unix_path), "%s", where.path);
    } else {
        /* At start-up, before the loop runs: resolving may block. */
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai = NULL;
        char port[16];
        snprintf(port, sizeof(port), "%d", where.port);
        int rc = getaddrinfo(where.host[0] ? where.host : NULL, port, &hints, &ai);
        if (rc != 0)
            snprintf(why, sizeof(why), "%s", gai_strerror(rc));
        else
            a->fd = net_listen_tcp(ai->ai_addr, ai->ai_addrlen, false, 64, why, sizeof(why));
        if (ai != NULL)
            freeaddrinfo(ai);
    }
    if (a->fd < 0) {
        snprintf(err, errlen, "admin.listen: \"%s\": %s", spec, why);
        free(a);
        return NULL;
    }
    if (reactor_add(r, a->fd, REACTOR_READABLE, admin_accept, a) != PMX_OK ||
        (a->timer = reactor_timer_add(r, ADMIN_TICK_MS, admin_tick, a)) < 0) {
        snprintf(err, errlen, "admin: %s", strerror(errno));
        admin_stop(a);
        return NULL;
    }
    log_info("admin API listening on %s", spec);
    return a;
}

void admin_stop(struct admin *a)
{
    if (a == NULL)
        return;
    struct admin_conn *next;
    for (struct admin_conn *ac = a->conns; ac != NULL; ac = next) {
        next = ac->next;
        admin_conn_close(ac);
    }
    if (a->timer > 0)
        reactor_timer_del(a->r, a->timer);
    if (a->fd >= 0) {
        reactor_del(a->r, a->fd, REACTOR_READABLE);
        close(a->fd);
    }
    if (a->unix_path[0])
        (void)unlink(a->unix_path);
    free(a);
}
