"""The MySQL query log (SPEC section 11): proxy mode with exchange.codec
mysql in front of a real MariaDB, warm spares on (the greeting comes from a
spare). The config is config/examples/mysql-query-log.yaml with ports and
paths replaced. Queries through the mariadb CLI (10,000 rows, a failing
query, LOCAL INFILE) and through a small raw-protocol client (a
multi-statement query, COM_STMT_PREPARE / EXECUTE / CLOSE) each give one
request log line with the SQL, the status, the error code, the statement
id and a plausible duration; /api/v1/stats counts them."""

import hashlib
import json
import os
import socket
import struct
import subprocess
import time

from harness import MariaDB, ProximuxTestCase, TIME_FACTOR, free_port, make_tmpdir, run_proximux
from test_admin import get_json

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "config", "examples", "mysql-query-log.yaml")
TOKEN = "change-me"

CLIENT_LONG_PASSWORD = 0x1
CLIENT_CONNECT_WITH_DB = 0x8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_STATEMENTS = 0x10000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PLUGIN_AUTH = 0x80000


def native_password(password, scramble):
    h1 = hashlib.sha1(password.encode()).digest()
    h2 = hashlib.sha1(h1).digest()
    h3 = hashlib.sha1(scramble + h2).digest()
    return bytes(a ^ b for a, b in zip(h1, h3))


class RawMySQL:
    """Just enough of the client protocol to send what the mariadb CLI
    does not: one COM_QUERY with several statements, and server-side
    prepared statements. Text results only as lists of raw packets."""

    def __init__(self, port, user, password, db):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10 * TIME_FACTOR)
        self.buf = b""
        self.seq = 0
        g = self.read()
        p = g.index(b"\0", 1) + 1 + 4
        s1 = g[p:p + 8]
        p += 8 + 1 + 2 + 1 + 2 + 2
        alen = g[p]
        p += 1 + 10
        s2 = g[p:p + max(13, alen - 8) - 1]
        scramble = s1 + s2
        caps = (CLIENT_LONG_PASSWORD | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS |
                CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | CLIENT_PLUGIN_AUTH)
        token = native_password(password, scramble)
        self.write(struct.pack("<IIB23x", caps, 1 << 24, 33) + user.encode() + b"\0" +
                   bytes([len(token)]) + token + db.encode() + b"\0" + b"mysql_native_password\0")
        r = self.read()
        if r[0] == 0xFE:        # auth switch: plugin name, then a new scramble
            name_end = r.index(b"\0", 1)
            self.write(native_password(password, r[name_end + 1:].rstrip(b"\0")))
            r = self.read()
        if r[0] != 0:
            raise AssertionError("auth failed: %r" % r)

    def read(self):
        while len(self.buf) < 4 or len(self.buf) < 4 + int.from_bytes(self.buf[:3], "little"):
            b = self.sock.recv(65536)
            if not b:
                raise ConnectionError("EOF")
            self.buf += b
        n = int.from_bytes(self.buf[:3], "little")
        self.seq = (self.buf[3] + 1) & 0xFF
        pkt, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return pkt

    def write(self, payload):
        self.sock.sendall(len(payload).to_bytes(3, "little") + bytes([self.seq]) + payload)
        self.seq = (self.seq + 1) & 0xFF

    def command(self, com, payload):
        self.seq = 0
        self.write(bytes([com]) + payload)

    def result_sets(self):
        """Reads results until no more: a list of (rows or 'OK', status)."""
        out = []
        while True:
            r = self.read()
            if r[0] == 0xFF:
                out.append(("ERR", struct.unpack("<H", r[1:3])[0]))
                return out
            if r[0] == 0x00:
                status = self.ok_status(r)
                out.append(("OK", status))
            else:
                for _ in range(r[0]):
                    self.read()
                self.read()     # EOF
                rows = []
                while True:
                    r = self.read()
                    if r[0] == 0xFE and len(r) < 9:
                        status = struct.unpack("<H", r[3:5])[0]
                        break
                    rows.append(r)
                out.append((rows, status))
            if not status & 0x0008:
                return out

    @staticmethod
    def ok_status(r):
        p = 1
        for _ in range(2):
            p += 1 if r[p] < 0xFB else {0xFC: 3, 0xFD: 4, 0xFE: 9}[r[p]]
        return struct.unpack("<H", r[p:p + 2])[0]

    def query(self, sql):
        self.command(0x03, sql.encode())
        return self.result_sets()

    def prepare(self, sql):
        self.command(0x16, sql.encode())
        r = self.read()
        if r[0] != 0:
            raise AssertionError("prepare failed: %r" % r)
        stmt, ncols, nparams = struct.unpack("<IHH", r[1:9])
        for n in (nparams, ncols):
            if n:
                for _ in range(n + 1):
                    self.read()
        return stmt

    def execute(self, stmt):
        self.command(0x17, struct.pack("<IBI", stmt, 0, 1))
        return self.result_sets()

    def close_statement(self, stmt):
        self.command(0x19, struct.pack("<I", stmt))

    def quit(self):
        self.command(0x01, b"")
        self.sock.close()


class MySQLQueryLogTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def start_example(self, warmup=True):
        """The shipped example with this test's ports and log file; without
        warmup the greeting comes through the session itself."""
        self.dir = make_tmpdir("mysqllog")
        self.log_path = os.path.join(self.dir, "queries.log")
        self.port, self.aport = free_port(), free_port()
        with open(EXAMPLE) as f:
            yaml = f.read()
        for old, new in (("127.0.0.1:3307", "127.0.0.1:%d" % self.port),
                         ("127.0.0.1:9307", "127.0.0.1:%d" % self.aport),
                         ("port: 3306", "port: %d" % self.db.port),
                         ("/tmp/mysql-queries.log", self.log_path),
                         ("warmup: true", "warmup: %s" % ("true" if warmup else "false"))):
            self.assertIn(old, yaml)
            yaml = yaml.replace(old, new)
        return self.start_proximux(yaml=yaml, port=self.port)

    def records(self, n):
        """The first n lines of the request log (waiting for the writer)."""
        deadline = time.monotonic() + 10 * TIME_FACTOR
        while True:
            lines = []
            if os.path.exists(self.log_path):
                with open(self.log_path) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            if len(lines) >= n or time.monotonic() > deadline:
                self.assertEqual(len(lines), n, lines)
                return lines
            time.sleep(0.05)

    def check_common(self, rec):
        self.assertEqual(rec["service"], "mysql")
        self.assertEqual(rec["target"], "db")
        self.assertTrue(rec["client"].startswith("127.0.0.1:"), rec)
        self.assertGreater(rec["us"], 0, rec)
        self.assertLess(rec["us"], 30e6 * TIME_FACTOR, rec)
        self.assertGreater(rec["bytes_in"], 4, rec)
        self.assertGreater(rec["bytes_out"], 4, rec)

    def test_query_log_cli_and_raw(self):
        pmx = self.start_example()
        big = "SELECT seq FROM seq_1_to_10000"    # MariaDB's Sequence engine
        out = self.db.client(big, port=self.port)
        self.assertEqual(out, "".join("%d\n" % i for i in range(1, 10001)))
        bad = self.db.run_client("SELECT * FROM no_such_table", port=self.port)
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("1146", bad.stderr)

        # Raw protocol: one COM_QUERY with three statements, and a
        # prepared statement executed twice, then closed.
        c = RawMySQL(self.port, MariaDB.USER, MariaDB.PASSWORD, MariaDB.DB)
        res = c.query("SELECT 1; SELECT 2, 3; DO 4")
        self.assertEqual(len(res), 3)
        self.assertEqual(len(res[0][0]), 1)
        self.assertEqual(res[2][0], "OK")
        stmt = c.prepare("SELECT 40 + 2 AS answer")
        self.assertEqual(len(c.execute(stmt)[0][0]), 1)
        self.assertEqual(len(c.execute(stmt)[0][0]), 1)
        c.close_statement(stmt)
        c.quit()

        recs = self.records(6)
        for r in recs:
            self.check_common(r)
        self.assertEqual(recs[0]["command"], big)
        self.assertEqual(recs[0]["status"], "ok")
        # 10,000 rows of "n" (at least 2 bytes each and a 4-byte header).
        self.assertGreater(recs[0]["bytes_out"], 10000 * 6)
        self.assertEqual(recs[1]["command"], "SELECT * FROM no_such_table")
        self.assertEqual(recs[1]["status"], "error")
        self.assertEqual(recs[1]["error_code"], 1146)
        self.assertEqual(recs[2]["command"], "SELECT 1; SELECT 2, 3; DO 4")
        self.assertEqual(recs[2]["status"], "ok")
        self.assertEqual(recs[3]["command"], "SELECT 40 + 2 AS answer")
        self.assertEqual(recs[3]["statement_id"], stmt)
        for r in recs[4:]:
            self.assertEqual(r["command"], "SELECT 40 + 2 AS answer")
            self.assertEqual(r["statement_id"], stmt)
            self.assertEqual(r["status"], "ok")

        st = get_json(self.aport, "/api/v1/stats/mysql", token=TOKEN)
        self.assertEqual(st["requests"], 6)
        self.assertEqual(st["responses"]["ok"], 6)
        self.assertEqual(st["latency_us"]["count"], 6)
        # The target is credited with the queries it answered.
        self.assertEqual(sum(t["requests"] for t in st["targets"]), 6)
        self.assertGreater(sum(t["bytes_received"] for t in st["targets"]), 0)
        self.assertNotIn("not followed", pmx.log())
        self.assert_proximux_ok(pmx)

    def test_local_infile(self):
        pmx = self.start_example(warmup=False)
        data = os.path.join(self.dir, "rows.txt")
        with open(data, "w") as f:
            f.write("".join("%d\n" % i for i in range(1, 5001)))
        self.db.client("DROP TABLE IF EXISTS t_infile; CREATE TABLE t_infile (a INT)")
        r = self.db.run_client("LOAD DATA LOCAL INFILE '%s' INTO TABLE t_infile; "
                               "SELECT COUNT(*) FROM t_infile" % data, port=self.port)
        if r.returncode != 0 and "local" in r.stderr.lower():
            self.skipTest("LOCAL INFILE disabled here: " + r.stderr)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "5000\n")
        recs = self.records(2)
        for rec in recs:
            self.check_common(rec)
            self.assertEqual(rec["status"], "ok")
        self.assertIn("LOAD DATA LOCAL INFILE", recs[0]["command"])
        # The file went through: its bytes count as the request's.
        self.assertGreater(recs[0]["bytes_in"], os.path.getsize(data))
        self.assertEqual(recs[1]["command"], "SELECT COUNT(*) FROM t_infile")
        self.assert_proximux_ok(pmx)

    def test_compressed_session_not_followed(self):
        """A compressed session (mariadb --compress) is piped untouched:
        the queries work, nothing is logged, one line says why."""
        pmx = self.start_example()
        r = subprocess.run(["mariadb", "--no-defaults", "--compress", "-h", "127.0.0.1", "-P", str(self.port),
                            "-u", MariaDB.USER, "-p" + MariaDB.PASSWORD, MariaDB.DB, "-N", "-B",
                            "-e", "SELECT 1; SELECT seq FROM seq_1_to_3000"],
                           capture_output=True, text=True, timeout=30 * TIME_FACTOR, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "1\n" + "".join("%d\n" % i for i in range(1, 3001)))
        # Then a plain one is logged: the follower is per session.
        self.assertEqual(self.db.client("SELECT 7", port=self.port), "7\n")
        recs = self.records(1)
        self.assertEqual(recs[0]["command"], "SELECT 7")
        self.assertEqual(pmx.log().count("mysql session not followed (compression)"), 1, pmx.log())
        self.assert_proximux_ok(pmx)

    def test_client_gone_mid_query(self):
        """A client that leaves while its query runs: logged client_gone,
        counted dropped."""
        pmx = self.start_example()
        c = RawMySQL(self.port, MariaDB.USER, MariaDB.PASSWORD, MariaDB.DB)
        c.command(0x03, b"SELECT SLEEP(1)")
        time.sleep(0.2)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.sock.close()         # a reset: the client is gone at once
        recs = self.records(1)
        self.assertEqual(recs[0]["command"], "SELECT SLEEP(1)")
        self.assertEqual(recs[0]["status"], "client_gone")
        st = get_json(self.aport, "/api/v1/stats/mysql", token=TOKEN)
        self.assertEqual(st["requests"], 1)
        self.assertEqual(st["responses"]["dropped"], 1)
        self.assert_proximux_ok(pmx)

    def test_lost_mid_query_counts_dropped(self):
        """A query in flight when the follower gives up (an unknown command
        pipelined behind it): the session goes on piped, the query counts
        as dropped (requests and responses add up), nothing is logged."""
        pmx = self.start_example()
        c = RawMySQL(self.port, MariaDB.USER, MariaDB.PASSWORD, MariaDB.DB)
        query = b"\x03SELECT 7 AS seven"
        unknown = b"\x99"
        c.sock.sendall(len(query).to_bytes(3, "little") + b"\0" + query +
                       len(unknown).to_bytes(3, "little") + b"\0" + unknown)
        rows, _ = c.result_sets()[0]
        self.assertEqual(len(rows), 1)
        c.read()                # the server's ERR for the unknown command
        pmx.wait_log(r"mysql session not followed")
        c.quit()
        st = get_json(self.aport, "/api/v1/stats/mysql", token=TOKEN)
        self.assertEqual(st["requests"], 1)
        self.assertEqual(sum(st["responses"].values()), 1, st["responses"])
        self.assertEqual(st["responses"]["dropped"], 1)
        self.assert_proximux_ok(pmx)

    def test_codec_mysql_needs_proxy(self):
        yaml = ("services:\n"
                "  - name: db\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: funnel, codec: mysql }\n"
                "    pool: { connections: 2 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n" % (free_port(), self.db.port))
        code, out, err = run_proximux(["-t"], yaml=yaml)
        self.assertEqual(code, 2)
        self.assertIn('exchange.codec', err)
        self.assertIn('"mysql" needs exchange.mode proxy (the mode is funnel)', err)
