"""MySQL client libraries through Proximux proxy mode in front of a real
MariaDB: PyMySQL (Debian python3-pymysql), PHP mysqli and PDO_MySQL with
server-side prepares (php-mysql, mysqlnd) and mysql2 (npm; query() and
execute()). Each library's script (clients/, see clients/README.md) runs
connect with a password (and a wrong one: 1045), CREATE/INSERT/SELECT, a
prepared statement executed twice, a transaction rolled back, a failing
query (1146), a 10,000-row SELECT and a multi-statement query, checking
every result. It runs directly against MariaDB first (which validates the
script), then through Proximux: with the mysql codec and the request log,
the same with warm spares (the greeting comes from a spare), and plain
proxy mode. Every run must pass every feature with the same results as the
direct run; with the codec, the request log must hold the library's
queries (ok and the 1146 error) and its prepared statement's executions
with their statement_id and SQL text, and no session may be "not
followed". The outcome of every (library, mode) is printed as a table.

The test MariaDB offers no TLS (have_ssl DISABLED); test_tls starts one
that does: with their defaults the four libraries still do not ask for
it (the codec follows them), and asked to (without certificate checks)
they work through the codec, each session piped untouched and logged once
as "not followed (TLS)"."""

import json
import os
import shutil
import subprocess

import harness
from harness import MariaDB, ProximuxTestCase, free_port, make_tmpdir, tail

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "clients")
NODE_DIR = os.path.join(CLIENTS, "node")
PYTHON = "/usr/bin/python3"   # the Debian packages' interpreter, whatever python3 is first in PATH
REPLY_TIMEOUT = 5 * harness.TIME_FACTOR
SCRIPT_TIMEOUT = 90 * harness.TIME_FACTOR
FEATURES = ["connect", "crud", "prepared", "transaction", "error", "big", "multi"]

# name -> (command, script, extra config, table, prepared statements are server-side)
LIBS = {
    "PyMySQL": ([PYTHON], "mysql_py.py", {}, "t_pymysql", False),
    "mysqli": (["php"], "mysql_php.php", {"library": "mysqli"}, "t_mysqli", True),
    "PDO_MySQL": (["php"], "mysql_php.php", {"library": "pdo"}, "t_pdo", True),
    "mysql2": (["node"], "node/mysql2.js", {}, "t_mysql2", True),
}

# mode -> (exchange.codec mysql and the request log, pool.warmup)
MODES = {
    "codec": (True, False),
    "codec_warmup": (True, True),
    "raw": (False, False),
    "raw_warmup": (False, True),
}


def library_usable(name):
    """Why a library cannot run here, or None."""
    cmd = LIBS[name][0][0]
    if not shutil.which(cmd):
        return cmd + " not installed"
    if name == "PyMySQL":
        r = subprocess.run([PYTHON, "-c", "import pymysql"], capture_output=True)
        return "python3-pymysql not installed" if r.returncode else None
    if cmd == "php":
        r = subprocess.run(["php", "-r", "exit(extension_loaded('mysqli') && extension_loaded('pdo_mysql') ? 0 : 1);"],
                           capture_output=True)
        return "php-mysql not installed" if r.returncode else None
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "mysql2")):
        return "npm packages not installed (npm ci --prefix %s)" % NODE_DIR
    return None


def run_script(name, cfg):
    """Runs one library's script; returns (version, results, data, stderr)."""
    cmd, script, extra, _, _ = LIBS[name]
    cfg = dict(cfg, **extra)
    try:
        p = subprocess.run(cmd + [os.path.join(CLIENTS, script), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=SCRIPT_TIMEOUT,
                           stdin=subprocess.DEVNULL, cwd=CLIENTS)
    except subprocess.TimeoutExpired as e:
        return None, {f: "timeout" for f in cfg["features"]}, {}, str(e)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            out = json.loads(line)
            return out["version"], out["results"], out["data"], p.stderr
    return None, {f: "script failed (%d): %s" % (p.returncode, tail(p.stderr + p.stdout, 3))
                  for f in cfg["features"]}, {}, p.stderr


def proximux_yaml(port, db_port, codec, warmup, log_path):
    return ("log_level: 2\n"
            "services:\n"
            "  - name: mysql\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    local: { max_connections: 32 }\n"
            "    exchange: { mode: proxy%s }\n"
            "    pool: { connections: 2, warmup: %s, connect_timeout: 2000 }\n"
            "%s"
            "    targets: [ { name: db, host: 127.0.0.1, port: %d } ]\n"
            % (port, ", codec: mysql" if codec else "", "true" if warmup else "false",
               "    request_log: { file: %s, format: json, max_text: 1024 }\n" % log_path if codec else "",
               db_port))


class MySQLClientLibraries(ProximuxTestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()
        cls.table = []

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()
        print("\n  MYSQL CLIENT LIBRARIES: library version mode features-ok log-records")
        for row in cls.table:
            print("  " + row)

    def cfg(self, name, port):
        return dict(host="127.0.0.1", port=port, user=MariaDB.USER, password=MariaDB.PASSWORD,
                    db=MariaDB.DB, table=LIBS[name][3], timeout=REPLY_TIMEOUT, features=FEATURES)

    @staticmethod
    def records(path):
        """Every line of the request log; read once Proximux has stopped
        (its writer flushes at exit)."""
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def check_log(self, name, recs):
        table, server_side = LIBS[name][3], LIBS[name][4]
        by_command = {}
        for r in recs:
            by_command.setdefault(r["command"], []).append(r)
        statuses = sorted({r["status"] for r in recs})
        self.assertEqual([s for s in statuses if s not in ("ok", "error")], [], recs)
        errors = [r for r in recs if r["status"] == "error"]
        self.assertEqual([(r["command"], r["error_code"]) for r in errors],
                         [("SELECT * FROM no_such_table", 1146)], errors)
        for sql in ("SELECT id, name, score FROM %s ORDER BY id" % table, "SELECT seq FROM seq_1_to_10000",
                    "SELECT 'still usable'", "SELECT 1; SELECT 2, 3"):
            self.assertIn(sql, by_command, "%s: %r not in the request log" % (name, sql))
            self.assertTrue(all(r["status"] == "ok" for r in by_command[sql]), by_command[sql])
        # The rows (PDO: in the COM_STMT_EXECUTE's record, after its prepare's).
        big = max(by_command["SELECT seq FROM seq_1_to_10000"], key=lambda r: r["bytes_out"])
        self.assertGreater(big["bytes_out"], 10000 * 6, big)
        if server_side:
            # COM_STMT_PREPARE then two COM_STMT_EXECUTEs, one statement id.
            prepared = [r for r in by_command.get("SELECT id, name FROM %s WHERE id = ?" % table, [])
                        if r.get("statement_id", -1) >= 0]
            self.assertGreaterEqual(len(prepared), 3, "%s: prepare + 2 executions expected: %r" % (name, recs))
            self.assertEqual(len({r["statement_id"] for r in prepared}), 1, prepared)
            self.assertTrue(all(r["status"] == "ok" for r in prepared), prepared)
        if not server_side or name == "mysql2":
            # Parameters quoted into the text: one COM_QUERY per execution.
            for i in (1, 3):
                sql = "SELECT id, name FROM %s WHERE id = %d" % (table, i)
                self.assertIn(sql, by_command, "%s: %r not in the request log" % (name, sql))

    def check_library(self, name):
        why = library_usable(name)
        if why:
            self.skipTest(why)
        version, results, direct, stderr = run_script(name, self.cfg(name, self.db.port))
        self.assertEqual({f: r for f, r in results.items() if r != "ok"}, {},
                         "%s run directly (the script itself is wrong):\n%s" % (name, tail(stderr, 10)))
        self.table.append("%-10s %-24s %-13s %d/%d" % (name, version, "direct", len(results), len(FEATURES)))
        failures = []
        for mode, (codec, warmup) in MODES.items():
            port = free_port()
            log_path = os.path.join(make_tmpdir("myclients"), "queries.log")
            pmx = self.start_proximux(yaml=proximux_yaml(port, self.db.port, codec, warmup, log_path), port=port)
            if warmup:
                pmx.wait_log("warmup: 2 connections ready", timeout=5 * harness.TIME_FACTOR)
            _, results, data, stderr = run_script(name, self.cfg(name, port))
            bad = {f: r for f, r in results.items() if r != "ok"}
            differ = {f: (data.get(f), direct[f]) for f in direct if data.get(f) != direct[f]}
            self.assertTrue(pmx.alive(), "proximux died in %s:\n%s" % (mode, tail(pmx.log())))
            self.assert_proximux_ok(pmx)
            nrec = "-"
            if codec:
                recs = self.records(log_path)
                nrec = len(recs)
                try:
                    self.check_log(name, recs)
                except AssertionError as e:
                    failures.append("%s %s: request log: %s" % (name, mode, str(e)[:2000]))
            not_followed = [line for line in pmx.log().splitlines() if "not followed" in line]
            self.table.append("%-10s %-24s %-13s %d/%d %s%s" % (
                name, version, mode, len(results) - len(bad), len(FEATURES), nrec,
                "".join("\n    FAILED %s: %s" % kv for kv in bad.items())))
            if bad or differ:
                failures.append("%s %s: failed %r, results differing from direct %r\n%s"
                                % (name, mode, bad, differ, tail(stderr, 5)))
            if not_followed:
                failures.append("%s %s: %s" % (name, mode, not_followed))
        self.assertEqual(failures, [])

    def test_tls(self):
        """A MariaDB offering TLS: the libraries' defaults, then TLS asked for."""
        libs = [n for n in LIBS if not library_usable(n)]
        if not libs or not shutil.which("openssl"):
            self.skipTest("no library or no openssl")
        d = make_tmpdir("mytls")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)
        db = MariaDB(extra_args=["--ssl-cert=" + cert, "--ssl-key=" + key])
        self.addCleanup(db.stop)
        self.assertEqual(db.client("SHOW VARIABLES LIKE 'have_ssl'"), "have_ssl\tYES\n")
        for tls in (False, True):
            port = free_port()
            log_path = os.path.join(make_tmpdir("myclients"), "queries.log")
            pmx = self.start_proximux(yaml=proximux_yaml(port, db.port, True, False, log_path), port=port)
            failures = []
            for name in libs:
                cfg = dict(self.cfg(name, db.port), table="t_tls_" + LIBS[name][3], tls_ca=cert if tls else "")
                _, results, direct, stderr = run_script(name, cfg)
                self.assertEqual({f: r for f, r in results.items() if r != "ok"}, {},
                                 "%s run directly (tls %s):\n%s" % (name, tls, tail(stderr, 10)))
                _, results, data, stderr = run_script(name, dict(cfg, port=port))
                bad = {f: r for f, r in results.items() if r != "ok"}
                self.table.append("%-10s %-24s %-13s %d/%d" % (
                    name, "", "tls" if tls else "tls_offered", len(results) - len(bad), len(FEATURES)))
                if bad or data != direct:
                    failures.append("%s tls %s: failed %r, data %r, direct %r" % (name, tls, bad, data, direct))
            self.assertEqual(failures, [])
            self.assert_proximux_ok(pmx)
            log = pmx.log()
            accepted = log.count(" INFO accept #")
            not_followed = log.count("mysql session not followed (TLS): piped untouched, not logged")
            recs = self.records(log_path)
            if tls:
                self.assertEqual(not_followed, accepted, tail(log))
                self.assertEqual(recs, [])
            else:
                self.assertEqual(not_followed, 0, tail(log))
                self.assertNotIn("not followed", log)
                self.assertGreater(len(recs), 15 * len(libs))

    def test_pymysql(self):
        self.check_library("PyMySQL")

    def test_mysqli(self):
        self.check_library("mysqli")

    def test_pdo_mysql(self):
        self.check_library("PDO_MySQL")

    def test_mysql2(self):
        self.check_library("mysql2")
