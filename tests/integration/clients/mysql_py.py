"""PyMySQL (Debian python3-pymysql) through its common API; see README.md.
PyMySQL has no server-side prepared statements: execute(sql, args)
quotes the arguments into the text and sends a COM_QUERY."""

import json
import ssl
import sys

import pymysql
from pymysql.constants import CLIENT

CFG = json.loads(sys.argv[1])
T = CFG["table"]
PREPARED = "SELECT id, name FROM %s WHERE id = %%s" % T


def client(password=None, **kw):
    if CFG.get("tls_ca"):       # TLS without verifying the server's certificate
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        kw["ssl"] = ctx
    return pymysql.connect(host=CFG["host"], port=int(CFG["port"]), user=CFG["user"],
                           password=CFG["password"] if password is None else password,
                           database=CFG["db"], connect_timeout=CFG["timeout"],
                           read_timeout=CFG["timeout"], write_timeout=CFG["timeout"], **kw)


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, expected %r" % (what, got, want))


def rows(cur):
    return [list(r) for r in cur.fetchall()]


def f_connect():
    c = client()
    with c.cursor() as cur:
        cur.execute("SELECT 1 + 1, CONNECTION_ID() > 0")
        got = rows(cur)
    expect("SELECT", got, [[2, 1]])
    c.close()
    try:
        client(password="wrong").close()
    except pymysql.err.OperationalError as e:
        expect("wrong password error", e.args[0], 1045)
    else:
        raise AssertionError("a wrong password was accepted")
    return got


def f_crud():
    c = client()
    with c.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS %s" % T)
        cur.execute("CREATE TABLE %s (id INT PRIMARY KEY, name VARCHAR(32), score DOUBLE)" % T)
        cur.execute("INSERT INTO %s VALUES (1, 'one', 1.5), (2, 'two', 2.5), (3, 'three', NULL)" % T)
        expect("rowcount", cur.rowcount, 3)
        c.commit()
        cur.execute("SELECT id, name, score FROM %s ORDER BY id" % T)
        got = rows(cur)
    expect("SELECT", got, [[1, "one", 1.5], [2, "two", 2.5], [3, "three", None]])
    c.close()
    return got


def f_prepared():
    c = client()
    with c.cursor() as cur:
        cur.execute(PREPARED, (1,))
        a = rows(cur)
        cur.execute(PREPARED, (3,))
        b = rows(cur)
    expect("id 1", a, [[1, "one"]])
    expect("id 3", b, [[3, "three"]])
    c.close()
    return [a, b]


def f_transaction():
    c = client()
    with c.cursor() as cur:
        c.begin()
        cur.execute("INSERT INTO %s VALUES (4, 'four', 4.5)" % T)
        cur.execute("SELECT COUNT(*) FROM %s" % T)
        inside = rows(cur)
        c.rollback()
        cur.execute("SELECT COUNT(*) FROM %s" % T)
        after = rows(cur)
    expect("inside", inside, [[4]])
    expect("after rollback", after, [[3]])
    c.close()
    return [inside, after]


def f_error():
    c = client()
    with c.cursor() as cur:
        try:
            cur.execute("SELECT * FROM no_such_table")
        except pymysql.err.ProgrammingError as e:
            code = e.args[0]
        else:
            raise AssertionError("no error")
        expect("error code", code, 1146)
        cur.execute("SELECT 'still usable'")
        expect("after the error", rows(cur), [["still usable"]])
    c.close()
    return code


def f_big():
    c = client()
    with c.cursor() as cur:
        cur.execute("SELECT seq FROM seq_1_to_10000")
        r = cur.fetchall()
    got = [len(r), sum(x[0] for x in r)]
    expect("10,000 rows", got, [10000, 50005000])
    c.close()
    return got


def f_multi():
    c = client(client_flag=CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute("SELECT 1; SELECT 2, 3")
        got = [rows(cur)]
        while cur.nextset():
            got.append(rows(cur))
    expect("result sets", got, [[[1]], [[2, 3]]])
    c.close()
    return got


results, data = {}, {}
for name in CFG["features"]:
    try:
        data[name] = globals()["f_" + name]()
        results[name] = "ok"
    except Exception as e:  # reported, not raised: one line per feature
        results[name] = "%s: %s" % (type(e).__name__, e)
print(json.dumps({"library": "PyMySQL", "version": pymysql.__version__, "results": results, "data": data}))
