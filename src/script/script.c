/* Lua 5.4 hooks: a sandboxed state per service (base without file access,
 * string, table, math, utf8), a memory limit through its allocator, an
 * instruction budget per call through a count hook, and the calls of the
 * hooks with their arguments and results. */
#include <arpa/inet.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "route_decision.h"
#include "script.h"

struct script {
    int refs;
    lua_State *L;
    char service[128];
    char path[256];             /* for logs: the file, cut */
    size_t mem;                 /* bytes allocated by L */
    size_t mem_max;
    bool limited;               /* a hook runs: mem_max applies */
    bool budget_hit;            /* the count hook cut the call in progress */
    uint64_t errors;
    /* Rate limit of error logs: a window of one second. */
    uint64_t window_ms;
    unsigned logged;            /* errors logged in the window */
    uint64_t suppressed;        /* errors not logged since the last logged one */
};

static uint64_t script_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The allocator of every state: a failed allocation is a Lua memory error,
 * which the hook's protected call turns into an ordinary error. */
static void *script_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script *s = ud;

    if (ptr == NULL)
        osize = 0;
    if (nsize == 0) {
        free(ptr);
        s->mem -= osize;
        return NULL;
    }
    /* Only while Lua code runs, inside a protected call: the arguments
     * and results handled outside one must not raise an error there. */
    if (s->limited && nsize > osize && s->mem + (nsize - osize) > s->mem_max)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (p == NULL)
        return NULL;
    s->mem = s->mem - osize + nsize;
    return p;
}

/* The count hook: fires after SCRIPT_INSTRUCTIONS instructions of one call. */
static void script_budget_hook(lua_State *L, lua_Debug *ar)
{
    struct script *s;

    (void)ar;
    lua_getallocf(L, (void **)&s);
    s->budget_hit = true;
    luaL_error(L, "instruction budget exhausted (%d instructions)", SCRIPT_INSTRUCTIONS);
}

/* Logs the error message on top of L (one line, control characters
 * blanked) for hook, at most SCRIPT_ERRORS_PER_SECOND a second, and pops
 * it. */
static void script_log_error(struct script *s, const char *hook)
{
    const char *msg = lua_tostring(s->L, -1);
    char line[512];

    s->errors++;
    snprintf(line, sizeof line, "%s", msg != NULL ? msg : "(error object is not a string)");
    for (char *p = line; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    }
    lua_pop(s->L, 1);
    uint64_t now = script_now_ms();
    if (now - s->window_ms >= 1000) {
        s->window_ms = now;
        s->logged = 0;
    }
    if (s->logged >= SCRIPT_ERRORS_PER_SECOND) {
        s->suppressed++;
        return;
    }
    s->logged++;
    if (s->suppressed > 0) {
        log_error("service %s: script %s: %s: %s (%llu earlier errors not logged)", s->service, s->path, hook,
                  line, (unsigned long long)s->suppressed);
        s->suppressed = 0;
    } else {
        log_error("service %s: script %s: %s: %s", s->service, s->path, hook, line);
    }
}

/* Calls the function below nargs arguments on the stack under the budget.
 * Returns PMX_OK with nresults values pushed, or PMX_ERR with the error
 * logged and nothing pushed. */
static int script_call(struct script *s, const char *hook, int nargs, int nresults)
{
    s->budget_hit = false;
    /* Setting the hook again restarts its count. It stays set between
     * calls, so that a finalizer (__gc) run by the collector at any time is
     * cut too (its error is only a warning there). */
    lua_sethook(s->L, script_budget_hook, LUA_MASKCOUNT, SCRIPT_INSTRUCTIONS);
    s->limited = true;
    int rc = lua_pcall(s->L, nargs, nresults, 0);
    s->limited = false;
    if (rc != LUA_OK) {
        script_log_error(s, hook);
        return PMX_ERR;
    }
    return PMX_OK;
}

/* Pushes the global function name and returns true, or pushes nothing and
 * returns false when it is not a function. */
static bool script_push_hook(struct script *s, const char *name)
{
    /* Raw: a metatable on _G (the script's) runs no code out here. */
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushstring(s->L, name);
    bool yes = lua_rawget(s->L, -2) == LUA_TFUNCTION;
    lua_remove(s->L, -2);
    if (yes)
        return true;
    lua_pop(s->L, 1);
    return false;
}

bool script_has(const struct script *s, const char *name)
{
    if (s == NULL || !script_push_hook((struct script *)(uintptr_t)s, name))
        return false;
    lua_pop(s->L, 1);
    return true;
}

/* Pushes the field key of the table on top, raw (no metamethod runs out
 * of a protected call); returns its type. */
static int script_rawfield(lua_State *L, const char *key)
{
    lua_pushstring(L, key);
    return lua_rawget(L, -2);
}

/* proximux.log(level, message): through the daemon's log. */
static int script_lua_log(lua_State *L)
{
    struct script *s;
    lua_Integer level = luaL_checkinteger(L, 1);
    size_t len;
    const char *msg = luaL_checklstring(L, 2, &len);

    luaL_argcheck(L, level >= LOG_ERROR && level <= LOG_DEBUG, 1, "level must be 1, 2 or 3");
    lua_getallocf(L, (void **)&s);
    if (log_level >= level)
        log_write((int)level, 0, "service %s: script: %.*s", s->service, (int)(len > 2048 ? 2048 : len), msg);
    return 0;
}

/* load(chunk [, chunkname [, mode [, env]]]): text chunks given as strings
 * only; a binary chunk could break the VM's safety, a reader function could
 * dodge the budget. */
static int script_lua_load(lua_State *L)
{
    size_t len;
    const char *chunk = luaL_checklstring(L, 1, &len);
    const char *name = luaL_optstring(L, 2, chunk);
    const char *mode = luaL_optstring(L, 3, "t");
    bool env = !lua_isnone(L, 4);

    if (strchr(mode, 'b') != NULL || strchr(mode, 't') == NULL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "load: only text chunks (mode \"t\") are allowed");
        return 2;
    }
    if (luaL_loadbufferx(L, chunk, len, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, 4);
        if (lua_setupvalue(L, -2, 1) == NULL)
            lua_pop(L, 1);
    }
    return 1;
}

/* Opens the libraries of the sandbox and removes what reaches outside it. */
static void script_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {
        { LUA_GNAME, luaopen_base },
        { LUA_STRLIBNAME, luaopen_string },
        { LUA_TABLIBNAME, luaopen_table },
        { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 },
    };
    /* dofile, loadfile: the file system; collectgarbage: stopping the
     * collector would turn a script's garbage into memory errors (the
     * collector runs on its own); print: stdout is not the log. */
    static const char *const removed[] = { "dofile", "loadfile", "collectgarbage", "print" };

    for (size_t i = 0; i < PMX_ARRAY_LEN(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < PMX_ARRAY_LEN(removed); i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_pushcfunction(L, script_lua_load);
    lua_setglobal(L, "load");
    /* string.dump makes binary chunks, which nothing may load. */
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushcfunction(L, script_lua_log);
    lua_setfield(L, -2, "log");
    lua_setglobal(L, "proximux");
}

/* Reads the file and runs its main chunk in L (protected, under the
 * budget): the message of a failure stays on the stack. */
static int script_lua_open(lua_State *L)
{
    const char *path = lua_touserdata(L, 1);

    script_sandbox(L);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}

struct script *script_load(const char *path, const char *service, char *err, size_t errlen)
{
    struct script *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->refs = 1;
    s->mem_max = SCRIPT_MEMORY_MAX;
    snprintf(s->service, sizeof s->service, "%s", service);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->L = lua_newstate(script_alloc, s);
    if (s->L == NULL) {
        snprintf(err, errlen, "out of memory");
        free(s);
        return NULL;
    }
    lua_pushcfunction(s->L, script_lua_open);
    lua_pushlightuserdata(s->L, (void *)(uintptr_t)path);
    s->budget_hit = false;
    lua_sethook(s->L, script_budget_hook, LUA_MASKCOUNT, SCRIPT_INSTRUCTIONS);
    s->limited = true;
    int rc = lua_pcall(s->L, 1, 0, 0);
    s->limited = false;
    if (rc != LUA_OK) {
        const char *msg = lua_tostring(s->L, -1);
        snprintf(err, errlen, "%s", msg != NULL ? msg : "error object is not a string");
        for (char *p = err; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        }
        lua_close(s->L);
        free(s);
        return NULL;
    }
    return s;
}

struct script *script_ref(struct script *s)
{
    if (s != NULL)
        s->refs++;
    return s;
}

void script_unref(struct script *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    lua_close(s->L);
    free(s);
}

uint64_t script_errors(const struct script *s)
{
    return s != NULL ? s->errors : 0;
}

/* Pushes {addr=, port=, service=}. */
static void script_push_client(struct script *s, const char *addr, int port)
{
    lua_createtable(s->L, 0, 3);
    lua_pushstring(s->L, addr);
    lua_setfield(s->L, -2, "addr");
    lua_pushinteger(s->L, port);
    lua_setfield(s->L, -2, "port");
    lua_pushstring(s->L, s->service);
    lua_setfield(s->L, -2, "service");
}

bool script_on_connect(struct script *s, const char *addr, int port, char *reason, size_t reasonlen)
{
    if (reasonlen > 0)
        reason[0] = '\0';
    if (s == NULL || !script_push_hook(s, "on_connect"))
        return true;
    script_push_client(s, addr, port);
    if (script_call(s, "on_connect", 1, 2) != PMX_OK) {
        snprintf(reason, reasonlen, "%s", s->budget_hit ? "script budget exhausted" : "script error");
        return false;
    }
    bool ok = !(lua_isboolean(s->L, -2) && !lua_toboolean(s->L, -2));
    if (!ok) {
        const char *why = lua_type(s->L, -1) == LUA_TSTRING ? lua_tostring(s->L, -1) : "refused by on_connect";
        size_t n = strlen(why);
        if (n > SCRIPT_REASON_MAX)
            n = SCRIPT_REASON_MAX;
        snprintf(reason, reasonlen, "%.*s", (int)n, why);
        for (char *p = reason; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20)
                *p = ' ';
        }
    }
    lua_pop(s->L, 2);
    return ok;
}

/* A field of the route result: a string copied into b, or absent. Returns
 * 1 when set, 0 when absent, -1 (with a message pushed) on a wrong type. */
static int script_field_bytes(lua_State *L, const char *key, struct buf *b)
{
    int t = script_rawfield(L, key);
    size_t len;

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (t != LUA_TSTRING) {
        lua_pop(L, 1);
        lua_pushfstring(L, "%s must be a string, not a %s", key, lua_typename(L, t));
        return -1;
    }
    const char *v = lua_tolstring(L, -1, &len);
    if (buf_append(b, v, len) != PMX_OK) {
        lua_pop(L, 1);
        lua_pushfstring(L, "out of memory for %s", key);
        return -1;
    }
    lua_pop(L, 1);
    return 1;
}

/* A timeout field in seconds, as ms in *ms; absent leaves it. Returns 0,
 * or -1 with a message pushed. */
static int script_field_seconds(lua_State *L, const char *key, long *ms)
{
    int t = script_rawfield(L, key);

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    int isnum = 0;
    lua_Number v = lua_tonumberx(L, -1, &isnum);
    lua_pop(L, 1);
    /* Up to a day, as pool.connect_timeout allows at most 10 minutes and
     * an idle session an hour or so: anything larger is a mistake. */
    if (t != LUA_TNUMBER || !isnum || !(v > 0 && v <= 86400.0)) {
        lua_pushfstring(L, "%s must be a number of seconds, 0 < n <= 86400", key);
        return -1;
    }
    *ms = (long)(v * 1000.0 + 0.5);
    if (*ms < 1)
        *ms = 1;
    return 0;
}

/* Whether the table on top has only keys among allowed (a typo such as
 * "remot" is an error, not a silent wait). Pushes a message when not. */
static bool script_keys_ok(lua_State *L, const char *const *allowed, size_t n)
{
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_pop(L, 1);
        bool ok = false;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (size_t i = 0; i < n && !ok; i++)
                ok = strcmp(k, allowed[i]) == 0;
        }
        if (!ok) {
            const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
            lua_pushfstring(L, "unknown key \"%s\"", k);
            lua_remove(L, -2);
            return false;
        }
    }
    return true;
}

/* Reads the route result on top of L into out. Returns PMX_OK, or PMX_ERR
 * with a message pushed above the result. */
static int script_route_result(lua_State *L, struct route_decision *out)
{
    static const char *const keys[] = {
        "remote", "data", "reply", "connect_timeout", "inactivity_timeout", "noop", "close",
    };
    int t = lua_type(L, -1);

    if (t == LUA_TNIL)
        return PMX_OK;
    if (t != LUA_TTABLE) {
        lua_pushfstring(L, "returned a %s (a table or nil expected)", lua_typename(L, t));
        return PMX_ERR;
    }
    if (!script_keys_ok(L, keys, PMX_ARRAY_LEN(keys)))
        return PMX_ERR;
    int close_type = script_rawfield(L, "close");
    if (close_type != LUA_TNIL && !(close_type == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        out->action = ROUTE_CLOSE;
        if (close_type == LUA_TSTRING) {
            size_t len;
            const char *v = lua_tolstring(L, -1, &len);
            if (buf_append(&out->data, v, len) != PMX_OK) {
                lua_pop(L, 1);
                lua_pushliteral(L, "out of memory for close");
                return PMX_ERR;
            }
            out->has_data = 1;
        } else if (close_type != LUA_TBOOLEAN) {
            lua_pop(L, 1);
            lua_pushliteral(L, "close must be true or a string");
            return PMX_ERR;
        }
        lua_pop(L, 1);
        return PMX_OK;
    }
    lua_pop(L, 1);
    int remote_type = script_rawfield(L, "remote");
    if (remote_type == LUA_TNIL) {
        lua_pop(L, 1);
        int noop = script_rawfield(L, "noop");
        bool yes = noop == LUA_TBOOLEAN && lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (yes)
            return PMX_OK;
        lua_pushliteral(L, "the table has neither remote, noop = true nor close");
        return PMX_ERR;
    }
    size_t len = 0;
    const char *remote = remote_type == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (remote == NULL || len == 0 || len >= sizeof(out->target) || memchr(remote, '\0', len) != NULL) {
        lua_pop(L, 1);
        lua_pushfstring(L, "remote must be \"host:port\" or a target name of 1-%d bytes",
                        (int)sizeof(out->target) - 1);
        return PMX_ERR;
    }
    memcpy(out->target, remote, len + 1);
    lua_pop(L, 1);
    int has = script_field_bytes(L, "data", &out->data);
    if (has < 0)
        return PMX_ERR;
    out->has_data = has;
    if (script_field_bytes(L, "reply", &out->reply) < 0 ||
        script_field_seconds(L, "connect_timeout", &out->connect_timeout) < 0 ||
        script_field_seconds(L, "inactivity_timeout", &out->inactivity_timeout) < 0)
        return PMX_ERR;
    out->action = ROUTE_TARGET;
    return PMX_OK;
}

/* Back to ROUTE_CLOSE with nothing to send. */
static void script_route_failed(struct route_decision *out)
{
    route_decision_free(out);
    route_decision_init(out);
    out->action = ROUTE_CLOSE;
}

int script_route(struct script *s, const char *data, size_t len, const char *addr, int port,
                 struct route_decision *out)
{
    route_decision_free(out);
    route_decision_init(out);
    if (s == NULL || !script_push_hook(s, "route")) {
        script_route_failed(out);
        return PMX_ERR;
    }
    lua_pushlstring(s->L, data, len);
    script_push_client(s, addr, port);
    if (script_call(s, "route", 2, 1) != PMX_OK) {
        script_route_failed(out);
        return PMX_ERR;
    }
    if (script_route_result(s->L, out) != PMX_OK) {
        script_log_error(s, "route");
        lua_pop(s->L, 1);
        script_route_failed(out);
        return PMX_ERR;
    }
    lua_pop(s->L, 1);
    return PMX_OK;
}

/* Reads the on_request result on top of L. Returns the verdict, or -1
 * with a message pushed. */
static int script_request_result(lua_State *L, struct buf *reply)
{
    static const char *const keys[] = { "reply", "close" };
    int t = lua_type(L, -1);

    if (t == LUA_TNIL)
        return SCRIPT_PASS;
    if (t != LUA_TTABLE) {
        lua_pushfstring(L, "returned a %s (a table or nil expected)", lua_typename(L, t));
        return -1;
    }
    if (!script_keys_ok(L, keys, PMX_ARRAY_LEN(keys)))
        return -1;
    int c = script_rawfield(L, "close");
    bool close = c != LUA_TNIL && !(c == LUA_TBOOLEAN && !lua_toboolean(L, -1));
    lua_pop(L, 1);
    if (close)
        return SCRIPT_CLOSE;
    int has = script_field_bytes(L, "reply", reply);
    if (has < 0)
        return -1;
    if (has == 0) {
        lua_pushliteral(L, "the table has neither reply nor close");
        return -1;
    }
    return SCRIPT_REPLY;
}

enum script_verdict script_on_request(struct script *s, const char *client, const char *command,
                                      size_t command_len, const char *bytes, size_t len,
                                      struct buf *reply, int *ref)
{
    *ref = SCRIPT_NO_REF;
    if (s == NULL)
        return SCRIPT_PASS;
    bool want_response = script_has(s, "on_response");
    bool has_request = script_push_hook(s, "on_request");
    if (!has_request && !want_response)
        return SCRIPT_PASS;
    if (!lua_checkstack(s->L, 4)) {
        if (has_request)
            lua_pop(s->L, 1);
        return SCRIPT_PASS;
    }
    lua_createtable(s->L, 0, 5);
    lua_pushstring(s->L, client);
    lua_setfield(s->L, -2, "client");
    lua_pushstring(s->L, s->service);
    lua_setfield(s->L, -2, "service");
    lua_pushlstring(s->L, command, command_len);
    lua_setfield(s->L, -2, "command");
    lua_pushlstring(s->L, bytes, len > SCRIPT_BYTES_MAX ? SCRIPT_BYTES_MAX : len);
    lua_setfield(s->L, -2, "bytes");
    lua_pushinteger(s->L, (lua_Integer)len);
    lua_setfield(s->L, -2, "size");
    if (!has_request) {
        *ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
        if (*ref == LUA_REFNIL || *ref == LUA_NOREF)
            *ref = SCRIPT_NO_REF;
        return SCRIPT_PASS;
    }
    /* Keep req below the function for on_response: fn req -> req fn req. */
    lua_pushvalue(s->L, -1);
    lua_rotate(s->L, -3, 1);
    if (script_call(s, "on_request", 1, 1) != PMX_OK) {
        lua_pop(s->L, 1);
        return SCRIPT_CLOSE;
    }
    /* Observing only (reply NULL): whatever it returned is not read. */
    int v = reply == NULL ? SCRIPT_PASS : script_request_result(s->L, reply);
    if (v < 0) {
        script_log_error(s, "on_request");
        lua_pop(s->L, 2);
        return SCRIPT_CLOSE;
    }
    lua_pop(s->L, 1);
    if (v == SCRIPT_PASS && want_response) {
        *ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
        if (*ref == LUA_REFNIL || *ref == LUA_NOREF)
            *ref = SCRIPT_NO_REF;
    } else {
        lua_pop(s->L, 1);
    }
    return (enum script_verdict)v;
}

void script_on_response(struct script *s, int ref, const char *status, const char *bytes, size_t len,
                        uint64_t us)
{
    if (s == NULL || ref == SCRIPT_NO_REF)
        return;
    if (!script_push_hook(s, "on_response")) {
        luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
        return;
    }
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, ref);
    luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
    lua_createtable(s->L, 0, 4);
    lua_pushstring(s->L, status);
    lua_setfield(s->L, -2, "status");
    /* bytes NULL: the response was not kept (mysql), only its size. */
    lua_pushlstring(s->L, bytes != NULL ? bytes : "", bytes == NULL ? 0 : len > SCRIPT_BYTES_MAX ? SCRIPT_BYTES_MAX : len);
    lua_setfield(s->L, -2, "bytes");
    lua_pushinteger(s->L, (lua_Integer)len);
    lua_setfield(s->L, -2, "size");
    lua_pushinteger(s->L, (lua_Integer)us);
    lua_setfield(s->L, -2, "us");
    (void)script_call(s, "on_response", 2, 0);
}

void script_forget(struct script *s, int ref)
{
    if (s != NULL && ref != SCRIPT_NO_REF)
        luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
}

void script_event(struct script *s, const char *name, const char *service, const char *target,
                  const char *detail)
{
    if (s == NULL || !script_push_hook(s, "on_event"))
        return;
    lua_pushstring(s->L, name);
    lua_createtable(s->L, 0, 3);
    lua_pushstring(s->L, service != NULL ? service : s->service);
    lua_setfield(s->L, -2, "service");
    if (target != NULL) {
        lua_pushstring(s->L, target);
        lua_setfield(s->L, -2, "target");
    }
    if (detail != NULL) {
        lua_pushstring(s->L, detail);
        lua_setfield(s->L, -2, "reason");
    }
    (void)script_call(s, "on_event", 2, 0);
}

/* The IP text and port of a client's socket address (an IPv4-mapped IPv6
 * address as IPv4; anything else, a unix socket: "unix", 0). */
static void script_addr_text(const struct sockaddr *addr, socklen_t addr_len, char *text, size_t n, int *port)
{
    snprintf(text, n, "unix");
    *port = 0;
    if (addr != NULL && addr->sa_family == AF_INET && addr_len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)addr;
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)n);
        *port = ntohs(in->sin_port);
    } else if (addr != NULL && addr->sa_family == AF_INET6 &&
               addr_len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)addr;
        /* A block list of IPv4 addresses matches clients of a dual-stack
         * listener too. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            inet_ntop(AF_INET, &in6->sin6_addr.s6_addr[12], text, (socklen_t)n);
        else
            inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)n);
        *port = ntohs(in6->sin6_port);
    }
}

bool script_accept(struct script *s, const struct sockaddr *addr, socklen_t addr_len, char *reason,
                   size_t reasonlen)
{
    char text[INET6_ADDRSTRLEN];
    int port;

    if (s == NULL || !script_has(s, "on_connect")) {
        if (reasonlen > 0)
            reason[0] = '\0';
        return true;
    }
    script_addr_text(addr, addr_len, text, sizeof text, &port);
    return script_on_connect(s, text, port, reason, reasonlen);
}

int script_route_client(struct script *s, const char *data, size_t len, const struct sockaddr *addr,
                        socklen_t addr_len, struct route_decision *out)
{
    char text[INET6_ADDRSTRLEN];
    int port;

    script_addr_text(addr, addr_len, text, sizeof text, &port);
    return script_route(s, data, len, text, port, out);
}
