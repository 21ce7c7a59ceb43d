/* The MySQL packet follower (include/mysql.h): a state machine over the
 * packets of both directions that reports each query and how it ended,
 * without holding or changing a byte. */
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "mysql.h"
#include "pmx.h"

/* A physical packet of this payload length continues the logical packet
 * (16 MiB payloads and more). */
#define MYSQL_MAX_PACKET 0xFFFFFFu

/* Where a command is in its answer. */
enum mysql_resp_state {
    R_NONE,             /* no answer comes (STMT_CLOSE, SEND_LONG_DATA, QUIT) */
    R_FIRST,            /* OK, ERR, LOCAL INFILE request or a column count */
    R_COLUMNS,          /* column definitions (left) */
    R_COLUMNS_EOF,      /* the EOF after them (no CLIENT_DEPRECATE_EOF) */
    R_ROWS,             /* rows until EOF/OK or ERR */
    R_INFILE,           /* the client sends the file, up to an empty packet */
    R_INFILE_RESULT,    /* then OK/ERR */
    R_PREPARE,          /* PREPARE_OK or ERR */
    R_PREP_PARAMS,      /* parameter definitions (left) */
    R_PREP_PARAMS_EOF,
    R_PREP_COLS,        /* column definitions (left) */
    R_PREP_COLS_EOF,
    R_FIELDLIST,        /* column definitions until EOF */
    R_ONE,              /* any one packet */
    R_AUTH,             /* COM_CHANGE_USER: auth exchange until OK/ERR */
};

enum mysql_phase {
    P_GREETING,         /* the server's first packet */
    P_HANDSHAKE,        /* the client's handshake response */
    P_AUTH,             /* auth switch / more data until OK or ERR */
    P_COMMAND,          /* commands and their answers */
    P_CLOSED,           /* QUIT sent or the server refused: nothing more to follow */
};

struct mysql_cmd {
    uint8_t command;
    uint8_t seq;                /* the next sequence id of its exchange */
    enum mysql_resp_state state;
    bool reported;              /* QUERY/PREPARE/EXECUTE: QUERY and DONE events */
    uint32_t left;              /* definitions left in R_COLUMNS / R_PREP_* */
    uint16_t prep_cols;
    char *text;                 /* grows with the text, up to max_text bytes */
    size_t text_len;
    size_t text_cap;
    uint64_t text_total;        /* the whole text's length */
    bool truncated;
    int64_t statement_id;
    uint64_t stamp;
    uint64_t rows;
    unsigned results;
    uint64_t bytes_in;
    uint64_t bytes_out;
};

/* One direction's packet framing. */
struct mysql_reader {
    uint8_t hdr[4];
    unsigned hdr_have;
    bool in_packet;             /* header read, payload bytes to come */
    uint32_t plen;              /* payload length of the current physical packet */
    uint32_t left;              /* of it still to come */
    bool more;                  /* the previous physical packet was 0xFFFFFF long */
    bool to_head;               /* client: this packet belongs to the command being answered */
    uint64_t logical_len;       /* payload bytes of the logical packet so far */
    uint8_t head[MYSQL_HEAD_MAX];
    size_t head_len;
};

struct mysql_stmt {
    uint32_t id;
    char *text;
    size_t text_len;
    size_t text_cap;
    uint64_t text_total;
    bool truncated;
};

struct mysql_follower {
    mysql_event_fn fn;
    void *ctx;
    size_t max_text;
    enum mysql_phase phase;
    bool lost;
    uint8_t seq;                /* handshake and auth: the next sequence id */
    uint32_t server_caps;
    uint32_t caps;              /* negotiated: client's & server's */
    struct mysql_reader rd[2];
    struct mysql_cmd build;     /* the command the client is sending */
    bool building;
    struct mysql_cmd pending[MYSQL_MAX_PENDING];    /* ring: sent, answer not complete */
    unsigned first;
    unsigned npending;
    struct mysql_stmt stmts[MYSQL_MAX_STATEMENTS];  /* oldest first */
    unsigned nstmts;
    int64_t last_prepared;
    size_t memory;              /* text bytes allocated */
};

static void mysql_lose(struct mysql_follower *f, const char *reason);

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | le16(p + 2) << 16; }

/* Reads a length-encoded integer at p[0..avail); returns its size in
 * bytes, 0 when it is cut or not an integer (0xFB NULL, 0xFF). */
static size_t lenenc(const uint8_t *p, size_t avail, uint64_t *v)
{
    if (avail < 1)
        return 0;
    if (p[0] < 0xFB) {
        *v = p[0];
        return 1;
    }
    size_t n = p[0] == 0xFC ? 2 : p[0] == 0xFD ? 3 : p[0] == 0xFE ? 8 : 0;
    if (n == 0 || avail < 1 + n)
        return 0;
    *v = 0;
    for (size_t i = n; i > 0; i--)
        *v = *v << 8 | p[i];
    return 1 + n;
}

static void cmd_free(struct mysql_follower *f, struct mysql_cmd *c)
{
    free(c->text);
    f->memory -= c->text_cap;
    memset(c, 0, sizeof(*c));
}

static struct mysql_cmd *pending_front(struct mysql_follower *f)
{
    return f->npending > 0 ? &f->pending[f->first] : NULL;
}

static void emit(struct mysql_follower *f, struct mysql_event *ev)
{
    f->fn(f->ctx, ev);
}

static void cmd_event(struct mysql_follower *f, struct mysql_cmd *c, enum mysql_event_type type,
                      enum mysql_outcome outcome, unsigned error_code)
{
    struct mysql_event ev = {
        .type = type, .command = c->command, .text = c->text, .text_len = c->text_len,
        .truncated = c->truncated, .text_total = c->text_total, .statement_id = c->statement_id,
        .stamp_slot = type == MYSQL_EVENT_QUERY ? &c->stamp : NULL, .stamp = c->stamp,
        .outcome = outcome, .error_code = error_code, .rows = c->rows, .results = c->results,
        .bytes_in = c->bytes_in, .bytes_out = c->bytes_out,
    };
    emit(f, &ev);
}

/* Makes room for need text bytes in c (need <= max_text), growing by
 * doubling. Returns false when out of memory (the text is then cut). */
static bool cmd_text_reserve(struct mysql_follower *f, struct mysql_cmd *c, size_t need)
{
    if (need <= c->text_cap)
        return true;
    size_t cap = PMX_MIN(PMX_MAX(PMX_MAX(need, c->text_cap * 2), (size_t)64), f->max_text);
    char *t = realloc(c->text, cap);
    if (t == NULL)
        return false;
    f->memory += cap - c->text_cap;
    c->text = t;
    c->text_cap = cap;
    return true;
}

static void stmt_forget_at(struct mysql_follower *f, unsigned i)
{
    free(f->stmts[i].text);
    f->memory -= f->stmts[i].text_cap;
    memmove(&f->stmts[i], &f->stmts[i + 1], (f->nstmts - i - 1) * sizeof(f->stmts[0]));
    f->nstmts--;
}

static int stmt_find(const struct mysql_follower *f, uint32_t id)
{
    for (unsigned i = 0; i < f->nstmts; i++)
        if (f->stmts[i].id == id)
            return (int)i;
    return -1;
}

/* Remembers statement id with c's text (taken from c). At the limit the
 * oldest statement is forgotten. */
static void stmt_remember(struct mysql_follower *f, uint32_t id, struct mysql_cmd *c)
{
    int old = stmt_find(f, id);
    if (old >= 0)
        stmt_forget_at(f, (unsigned)old);
    if (f->nstmts == MYSQL_MAX_STATEMENTS)
        stmt_forget_at(f, 0);
    struct mysql_stmt *st = &f->stmts[f->nstmts++];
    st->id = id;
    st->text = c->text;
    st->text_len = c->text_len;
    st->text_cap = c->text_cap;
    st->text_total = c->text_total;
    st->truncated = c->truncated;
    c->text = NULL;             /* the memory moves with it */
    c->text_len = 0;
    c->text_cap = 0;
}

/* EXECUTE: c's text is the statement's, if it is remembered (id
 * 0xFFFFFFFF: the last one prepared, MariaDB's direct execution). */
static void cmd_resolve_statement(struct mysql_follower *f, struct mysql_cmd *c)
{
    int64_t id = c->statement_id;

    if (c->text_len > 0 || c->truncated)
        return;
    if (id == 0xFFFFFFFF && f->last_prepared >= 0)
        id = f->last_prepared;
    int i = id >= 0 ? stmt_find(f, (uint32_t)id) : -1;
    if (i < 0 || f->stmts[i].text_len == 0 || !cmd_text_reserve(f, c, f->stmts[i].text_len))
        return;
    c->statement_id = id;
    memcpy(c->text, f->stmts[i].text, f->stmts[i].text_len);
    c->text_len = f->stmts[i].text_len;
    c->text_total = f->stmts[i].text_total;
    c->truncated = f->stmts[i].truncated;
}

/* Commands that get no answer are done when their turn comes. */
static void pending_settle(struct mysql_follower *f)
{
    struct mysql_cmd *c;

    while ((c = pending_front(f)) != NULL && c->state == R_NONE) {
        if (c->command == MYSQL_COM_STMT_CLOSE) {
            int i = stmt_find(f, (uint32_t)c->statement_id);
            if (i >= 0)
                stmt_forget_at(f, (unsigned)i);
        } else if (c->command == MYSQL_COM_QUIT) {
            f->phase = P_CLOSED;
        }
        cmd_free(f, c);
        f->first = (f->first + 1) % MYSQL_MAX_PENDING;
        f->npending--;
    }
}

/* The front command's answer is complete. */
static void cmd_finish(struct mysql_follower *f, enum mysql_outcome outcome, unsigned error_code)
{
    struct mysql_cmd *c = pending_front(f);

    if (c->reported)
        cmd_event(f, c, MYSQL_EVENT_DONE, outcome, error_code);
    if (c->command == MYSQL_COM_STMT_PREPARE && outcome == MYSQL_OK && c->statement_id >= 0) {
        f->last_prepared = c->statement_id;
        stmt_remember(f, (uint32_t)c->statement_id, c);
    }
    cmd_free(f, c);
    f->first = (f->first + 1) % MYSQL_MAX_PENDING;
    f->npending--;
    pending_settle(f);
}

/* The client finished a command packet (f->build). */
static void command_complete(struct mysql_follower *f, const struct mysql_reader *r)
{
    struct mysql_cmd *c = &f->build;
    const uint8_t *h = r->head;

    f->building = false;
    if (r->logical_len == 0) {
        mysql_lose(f, "empty command packet");
        return;
    }
    c->command = h[0];
    c->statement_id = -1;
    switch (c->command) {
    case MYSQL_COM_QUERY:
        c->reported = true;
        c->state = R_FIRST;
        if (f->caps & MYSQL_CLIENT_QUERY_ATTRIBUTES) {
            /* parameter_count, parameter_set_count, then (when there are
             * parameters) their bindings before the text: those are not
             * decoded, the text is then reported empty. */
            uint64_t n, sets;
            size_t a = lenenc(h + 1, r->head_len - 1, &n);
            size_t b = a > 0 ? lenenc(h + 1 + a, r->head_len - 1 - a, &sets) : 0;
            if (a > 0 && b > 0 && n == 0 && c->text_len >= a + b) {
                memmove(c->text, c->text + a + b, c->text_len - a - b);
                c->text_len -= a + b;
                c->text_total -= a + b;
            } else {
                c->text_len = 0;
                c->text_total = 0;
                c->truncated = false;
            }
        }
        break;
    case MYSQL_COM_STMT_PREPARE:
        c->reported = true;
        c->state = R_PREPARE;
        break;
    case MYSQL_COM_STMT_EXECUTE:
    case 0xFA:  /* MariaDB COM_STMT_BULK_EXECUTE */
        if (r->logical_len < 5) {
            mysql_lose(f, "short COM_STMT_EXECUTE");
            return;
        }
        c->reported = c->command == MYSQL_COM_STMT_EXECUTE;
        c->statement_id = le32(h + 1);
        c->state = R_FIRST;
        c->text_len = 0;
        c->text_total = 0;
        c->truncated = false;
        cmd_resolve_statement(f, c);
        break;
    case MYSQL_COM_STMT_CLOSE:
    case 0x18:  /* COM_STMT_SEND_LONG_DATA */
        c->statement_id = r->logical_len >= 5 ? (int64_t)le32(h + 1) : -1;
        c->state = R_NONE;
        break;
    case MYSQL_COM_QUIT:
        c->state = R_NONE;
        break;
    case 0x04:  /* COM_FIELD_LIST */
        c->state = R_FIELDLIST;
        break;
    case 0x0a:  /* COM_PROCESS_INFO */
        c->state = R_FIRST;
        break;
    case 0x1c:  /* COM_STMT_FETCH */
        c->state = R_ROWS;
        break;
    case 0x11:  /* COM_CHANGE_USER */
        c->state = R_AUTH;
        break;
    case 0x02: case 0x05: case 0x06: case 0x07: case 0x08: case 0x09: case 0x0c:
    case 0x0d: case 0x0e: case 0x1a: case 0x1b: case 0x1f:
        /* INIT_DB, CREATE_DB, DROP_DB, REFRESH, SHUTDOWN, STATISTICS,
         * PROCESS_KILL, DEBUG, PING, STMT_RESET, SET_OPTION,
         * RESET_CONNECTION: one packet answers. */
        c->state = R_ONE;
        break;
    default:
        /* Binlog dumps and the like stream without an end we know. */
        mysql_lose(f, "a command it does not know");
        return;
    }
    if (c->command != MYSQL_COM_QUERY && c->command != MYSQL_COM_STMT_PREPARE &&
        c->command != MYSQL_COM_STMT_EXECUTE) {
        /* Only the SQL of these is reported: drop any text kept. */
        c->text_len = 0;
        c->text_total = 0;
        c->truncated = false;
    }
    if (f->npending == MYSQL_MAX_PENDING) {
        mysql_lose(f, "too many commands sent ahead of their answers");
        return;
    }
    struct mysql_cmd *slot = &f->pending[(f->first + f->npending) % MYSQL_MAX_PENDING];
    *slot = *c;
    memset(c, 0, sizeof(*c));
    f->npending++;
    if (slot->reported)
        cmd_event(f, slot, MYSQL_EVENT_QUERY, MYSQL_OK, 0);
    else if (slot->command == MYSQL_COM_QUIT) {
        struct mysql_event ev = { .type = MYSQL_EVENT_QUIT, .command = MYSQL_COM_QUIT, .statement_id = -1 };
        emit(f, &ev);
    }
    pending_settle(f);
}

/* The status flags of an OK packet (0x00 or, ending rows, 0xFE). */
static uint32_t ok_status(const struct mysql_reader *r, bool *good)
{
    uint64_t v;
    size_t at = 1, n;

    *good = false;
    if ((n = lenenc(r->head + at, r->head_len - at, &v)) == 0)
        return 0;
    at += n;
    if ((n = lenenc(r->head + at, r->head_len - at, &v)) == 0)
        return 0;
    at += n;
    if (r->head_len < at + 2)
        return 0;
    *good = true;
    return le16(r->head + at);
}

/* An EOF packet (0xFE, shorter than 9 bytes): its status flags. */
static bool is_eof(const struct mysql_reader *r, uint32_t *status)
{
    if (r->head_len < 1 || r->head[0] != 0xFE || r->logical_len >= 9)
        return false;
    *status = r->logical_len >= 5 ? le16(r->head + 3) : 0;
    return true;
}

static unsigned err_code(const struct mysql_reader *r)
{
    return r->head_len >= 3 ? le16(r->head + 1) : 0;
}

/* OK that may announce another result (SERVER_MORE_RESULTS_EXISTS). */
static void result_ok(struct mysql_follower *f, struct mysql_cmd *c, uint32_t status)
{
    c->results++;
    if (status & MYSQL_SERVER_MORE_RESULTS_EXISTS)
        c->state = R_FIRST;
    else
        cmd_finish(f, MYSQL_OK, 0);
}

static void result_first(struct mysql_follower *f, struct mysql_cmd *c, const struct mysql_reader *r)
{
    const uint8_t *h = r->head;
    uint64_t ncols;
    bool good;

    if (r->logical_len == 0) {
        mysql_lose(f, "empty result packet");
    } else if (h[0] == 0xFF) {
        cmd_finish(f, MYSQL_ERROR, err_code(r));
    } else if (h[0] == 0x00) {
        uint32_t status = ok_status(r, &good);
        if (!good)
            mysql_lose(f, "OK packet not understood");
        else
            result_ok(f, c, status);
    } else if (h[0] == 0xFB && c->command == MYSQL_COM_QUERY && c->state == R_FIRST) {
        c->state = R_INFILE;
    } else if (c->state == R_INFILE_RESULT) {
        mysql_lose(f, "LOCAL INFILE answer not understood");
    } else {
        size_t n = lenenc(h, r->head_len, &ncols);
        if (n == 0 || ncols == 0 || ncols > 0xFFFF) {
            mysql_lose(f, "column count not understood");
            return;
        }
        /* MariaDB's metadata cache: a byte after the count says whether
         * column definitions follow. */
        if (r->logical_len == n + 1 && h[n] == 0) {
            c->state = R_ROWS;
            return;
        }
        c->left = (uint32_t)ncols;
        c->state = R_COLUMNS;
    }
}

static bool deprecate_eof(const struct mysql_follower *f)
{
    return (f->caps & MYSQL_CLIENT_DEPRECATE_EOF) != 0;
}

/* The end of rows: EOF, or with CLIENT_DEPRECATE_EOF an OK with 0xFE. */
static bool rows_end(const struct mysql_follower *f, const struct mysql_reader *r, uint32_t *status, bool *good)
{
    if (r->head_len < 1 || r->head[0] != 0xFE)
        return false;
    if (deprecate_eof(f)) {
        if (r->logical_len >= MYSQL_MAX_PACKET)
            return false;
        *status = ok_status(r, good);
        return true;
    }
    *good = true;
    return is_eof(r, status);
}

static void expect_eof(struct mysql_follower *f, const struct mysql_reader *r, uint32_t *status, bool *ok)
{
    *ok = is_eof(r, status);
    if (!*ok)
        mysql_lose(f, "expected an EOF packet");
}

/* A packet of the answer to the front command. */
static void answer_packet(struct mysql_follower *f, struct mysql_cmd *c, const struct mysql_reader *r)
{
    const uint8_t *h = r->head;
    uint32_t status = 0;
    bool good = false;

    /* MariaDB progress reports (MARIADB_CLIENT_PROGRESS) are ERR packets
     * with code 0xFFFF in the middle of an answer: not its end. */
    if (r->logical_len > 0 && h[0] == 0xFF && err_code(r) == 0xFFFF)
        return;
    if (c->state != R_FIRST && c->state != R_INFILE_RESULT && r->logical_len > 0 && h[0] == 0xFF &&
        c->state != R_COLUMNS && c->state != R_PREP_PARAMS && c->state != R_PREP_COLS) {
        /* An error ends any answer (a query killed mid-result). */
        cmd_finish(f, MYSQL_ERROR, err_code(r));
        return;
    }
    switch (c->state) {
    case R_FIRST:
    case R_INFILE_RESULT:
        if (c->command == MYSQL_COM_STMT_EXECUTE && c->results == 0)
            cmd_resolve_statement(f, c);
        result_first(f, c, r);
        break;
    case R_COLUMNS:
        if (--c->left == 0)
            c->state = deprecate_eof(f) ? R_ROWS : R_COLUMNS_EOF;
        break;
    case R_COLUMNS_EOF:
        expect_eof(f, r, &status, &good);
        if (!good)
            break;
        if (c->command == MYSQL_COM_STMT_EXECUTE && (status & MYSQL_SERVER_STATUS_CURSOR_EXISTS))
            result_ok(f, c, status);    /* rows come with COM_STMT_FETCH */
        else
            c->state = R_ROWS;
        break;
    case R_ROWS:
        if (rows_end(f, r, &status, &good)) {
            if (!good)
                mysql_lose(f, "end of rows not understood");
            else
                result_ok(f, c, status);
        } else {
            c->rows++;
        }
        break;
    case R_INFILE:
        mysql_lose(f, "server packet during LOCAL INFILE");
        break;
    case R_PREPARE:
        if (r->logical_len < 12 || h[0] != 0x00) {
            mysql_lose(f, "PREPARE answer not understood");
            break;
        }
        c->statement_id = le32(h + 1);
        c->prep_cols = (uint16_t)le16(h + 5);
        c->left = le16(h + 7);
        c->results = 1;
        if (c->left > 0)
            c->state = R_PREP_PARAMS;
        else if (c->prep_cols > 0)
            c->left = c->prep_cols, c->state = R_PREP_COLS;
        else
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_PREP_PARAMS:
        if (--c->left > 0)
            break;
        if (!deprecate_eof(f))
            c->state = R_PREP_PARAMS_EOF;
        else if (c->prep_cols > 0)
            c->left = c->prep_cols, c->state = R_PREP_COLS;
        else
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_PREP_PARAMS_EOF:
        expect_eof(f, r, &status, &good);
        if (!good)
            break;
        if (c->prep_cols > 0)
            c->left = c->prep_cols, c->state = R_PREP_COLS;
        else
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_PREP_COLS:
        if (--c->left > 0)
            break;
        if (!deprecate_eof(f))
            c->state = R_PREP_COLS_EOF;
        else
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_PREP_COLS_EOF:
        expect_eof(f, r, &status, &good);
        if (good)
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_FIELDLIST:
        if (rows_end(f, r, &status, &good))
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_ONE:
        cmd_finish(f, r->logical_len > 0 && h[0] == 0xFF ? MYSQL_ERROR : MYSQL_OK, err_code(r));
        break;
    case R_AUTH:
        if (r->logical_len > 0 && h[0] == 0x00)
            cmd_finish(f, MYSQL_OK, 0);
        break;
    case R_NONE:
        break;
    }
}

/* The server's greeting: protocol 10, version, connection id, 8 bytes of
 * scramble, a filler, capabilities (low 16 bits, then after charset and
 * status the high 16 bits). */
static void greeting(struct mysql_follower *f, const struct mysql_reader *r)
{
    const uint8_t *h = r->head;
    size_t n = r->head_len;

    if (n > 0 && h[0] == 0xFF) {
        f->phase = P_CLOSED;    /* too many connections, host blocked... */
        return;
    }
    if (n < 1 || h[0] != 10) {
        mysql_lose(f, "not a MySQL protocol 10 greeting");
        return;
    }
    const uint8_t *nul = memchr(h + 1, 0, n - 1);
    size_t at = nul != NULL ? (size_t)(nul - h) + 1 + 4 + 8 + 1 : n;
    if (at + 2 > n) {
        mysql_lose(f, "greeting not understood");
        return;
    }
    f->server_caps = le16(h + at);
    if (at + 7 <= n)
        f->server_caps |= le16(h + at + 5) << 16;
    f->phase = P_HANDSHAKE;
}

static void handshake_response(struct mysql_follower *f, const struct mysql_reader *r)
{
    if (r->head_len < 4) {
        mysql_lose(f, "handshake response not understood");
        return;
    }
    uint32_t caps = le32(r->head);
    if (!(caps & MYSQL_CLIENT_PROTOCOL_41)) {
        mysql_lose(f, "pre-4.1 protocol");
        return;
    }
    if (caps & MYSQL_CLIENT_SSL) {
        mysql_lose(f, "TLS");
        return;
    }
    f->caps = caps & f->server_caps;
    if (f->caps & (MYSQL_CLIENT_COMPRESS | MYSQL_CLIENT_ZSTD)) {
        mysql_lose(f, "compression");
        return;
    }
    f->phase = P_AUTH;
}

/* A logical packet is complete. */
static void packet_done(struct mysql_follower *f, enum mysql_direction dir, const struct mysql_reader *r)
{
    struct mysql_cmd *c = pending_front(f);

    switch (f->phase) {
    case P_GREETING:
        if (dir == MYSQL_FROM_SERVER)
            greeting(f, r);
        else
            mysql_lose(f, "the client spoke before the greeting");
        return;
    case P_HANDSHAKE:
        if (dir == MYSQL_FROM_CLIENT)
            handshake_response(f, r);
        else if (r->head_len > 0 && r->head[0] == 0xFF)
            f->phase = P_CLOSED;
        else
            mysql_lose(f, "server packet before the handshake response");
        return;
    case P_AUTH:
        if (dir == MYSQL_FROM_SERVER && r->head_len > 0 && r->head[0] == 0x00)
            f->phase = P_COMMAND;
        else if (dir == MYSQL_FROM_SERVER && r->head_len > 0 && r->head[0] == 0xFF)
            f->phase = P_CLOSED;
        return;
    case P_CLOSED:
        return;
    case P_COMMAND:
        break;
    }
    if (dir == MYSQL_FROM_CLIENT) {
        if (!r->to_head)
            command_complete(f, r);
        else if (c->state == R_INFILE && r->logical_len == 0)
            c->state = R_INFILE_RESULT;
        return;
    }
    if (c == NULL) {
        if (r->head_len > 0 && r->head[0] == 0xFF)
            f->phase = P_CLOSED;    /* the server says why it closes (wait_timeout) */
        else
            mysql_lose(f, "server packet with no command");
        return;
    }
    answer_packet(f, c, r);
}

/* A physical packet of seq and payload length plen starts in direction
 * dir: checks its sequence id and counts its bytes to the command it
 * belongs to. Returns false when the session was lost. */
static bool packet_begin(struct mysql_follower *f, enum mysql_direction dir, struct mysql_reader *r,
                         uint8_t seq, uint32_t plen)
{
    struct mysql_cmd *c = pending_front(f);
    uint8_t *expect;

    if (f->phase == P_CLOSED)
        return true;
    if (f->phase != P_COMMAND) {
        if (f->phase == P_GREETING && dir == MYSQL_FROM_SERVER)
            f->seq = seq;   /* 0, but a greeting after a PROXY header exchange may differ */
        expect = &f->seq;
    } else if (dir == MYSQL_FROM_SERVER) {
        if (c == NULL) {
            expect = &seq;  /* a goodbye ERR (checked when complete) */
        } else {
            expect = &c->seq;
            c->bytes_out += 4u + plen;
        }
    } else {
        if (!r->more)
            r->to_head = c != NULL && (c->state == R_INFILE || c->state == R_AUTH);
        if (r->to_head) {
            expect = &c->seq;
            c->bytes_in += 4u + plen;
        } else {
            if (!r->more) {
                memset(&f->build, 0, sizeof(f->build));
                f->building = true;
            }
            expect = &f->build.seq;
            f->build.bytes_in += 4u + plen;
        }
    }
    if (seq != *expect) {
        mysql_lose(f, "sequence id out of order");
        return false;
    }
    *expect = (uint8_t)(seq + 1);
    return true;
}

/* Keeps what is needed of payload bytes data[0..n) at logical offset
 * r->logical_len: the packet's first bytes, and the SQL text of a command
 * being sent. */
static void packet_bytes(struct mysql_follower *f, enum mysql_direction dir, struct mysql_reader *r,
                         const uint8_t *data, size_t n)
{
    uint64_t off = r->logical_len;

    if (r->head_len < MYSQL_HEAD_MAX && off == r->head_len) {
        size_t k = PMX_MIN(n, MYSQL_HEAD_MAX - r->head_len);
        memcpy(r->head + r->head_len, data, k);
        r->head_len += k;
    }
    if (dir != MYSQL_FROM_CLIENT || f->phase != P_COMMAND || r->to_head || !f->building || r->head_len == 0)
        return;
    uint8_t com = r->head[0];
    if (com != MYSQL_COM_QUERY && com != MYSQL_COM_STMT_PREPARE)
        return;
    struct mysql_cmd *c = &f->build;
    /* Text byte i is payload byte i + 1. */
    size_t skip = off == 0 ? 1 : 0;
    if (n <= skip)
        return;
    size_t k = n - skip;
    c->text_total += k;
    size_t room = f->max_text - c->text_len;
    if (k > room) {
        c->truncated = true;
        k = room;
    }
    if (k > 0 && !cmd_text_reserve(f, c, c->text_len + k)) {
        c->truncated = true;
        return;
    }
    if (k > 0) {
        memcpy(c->text + c->text_len, data + skip, k);
        c->text_len += k;
    }
}

void mysql_follower_feed(struct mysql_follower *f, enum mysql_direction dir, const char *data, size_t len)
{
    struct mysql_reader *r = &f->rd[dir];
    const uint8_t *p = (const uint8_t *)data;

    while (len > 0 && !f->lost) {
        if (!r->in_packet) {
            size_t k = PMX_MIN(len, 4 - r->hdr_have);
            memcpy(r->hdr + r->hdr_have, p, k);
            r->hdr_have += (unsigned)k;
            p += k;
            len -= k;
            if (r->hdr_have < 4)
                break;
            r->hdr_have = 0;
            r->plen = (uint32_t)r->hdr[0] | (uint32_t)r->hdr[1] << 8 | (uint32_t)r->hdr[2] << 16;
            r->left = r->plen;
            r->in_packet = true;
            if (!r->more) {
                r->logical_len = 0;
                r->head_len = 0;
            }
            if (!packet_begin(f, dir, r, r->hdr[3], r->plen))
                break;
        }
        size_t k = PMX_MIN(len, (size_t)r->left);
        if (k > 0 && f->phase != P_CLOSED)
            packet_bytes(f, dir, r, p, k);
        r->logical_len += k;
        r->left -= (uint32_t)k;
        p += k;
        len -= k;
        if (r->left > 0)
            break;
        r->in_packet = false;
        r->more = r->plen == MYSQL_MAX_PACKET;
        if (!r->more)
            packet_done(f, dir, r);
    }
}

static void pending_drop(struct mysql_follower *f, bool report, enum mysql_outcome outcome)
{
    while (f->npending > 0) {
        struct mysql_cmd *c = &f->pending[f->first];
        if (report && c->reported)
            cmd_event(f, c, MYSQL_EVENT_DONE, outcome, 0);
        cmd_free(f, c);
        f->first = (f->first + 1) % MYSQL_MAX_PENDING;
        f->npending--;
    }
    cmd_free(f, &f->build);
    f->building = false;
}

static void mysql_lose(struct mysql_follower *f, const char *reason)
{
    if (f->lost)
        return;
    f->lost = true;
    pending_drop(f, false, MYSQL_OK);
    struct mysql_event ev = { .type = MYSQL_EVENT_NOT_FOLLOWED, .statement_id = -1, .reason = reason };
    emit(f, &ev);
}

struct mysql_follower *mysql_follower_new(size_t max_text, mysql_event_fn fn, void *ctx)
{
    struct mysql_follower *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return NULL;
    f->fn = fn;
    f->ctx = ctx;
    f->max_text = PMX_MAX(PMX_MIN(max_text, (size_t)MYSQL_TEXT_LIMIT), (size_t)1);
    f->phase = P_GREETING;
    f->last_prepared = -1;
    return f;
}

bool mysql_follower_lost(const struct mysql_follower *f)
{
    return f->lost;
}

void mysql_follower_end(struct mysql_follower *f, enum mysql_outcome outcome)
{
    if (!f->lost)
        pending_drop(f, true, outcome);
}

void mysql_follower_free(struct mysql_follower *f)
{
    if (f == NULL)
        return;
    pending_drop(f, false, MYSQL_OK);
    while (f->nstmts > 0)
        stmt_forget_at(f, f->nstmts - 1);
    free(f);
}

size_t mysql_follower_memory(const struct mysql_follower *f)
{
    return sizeof(*f) + f->memory;
}

/* The codec entry naming mysql for exchange.codec: it frames nothing for
 * fifo/funnel (the configuration allows it with proxy mode only); proxy
 * sessions follow their bytes with a mysql_follower. */
const struct codec_ops codec_mysql = {
    .name = "mysql",
    .proxy_only = true,
};
