"""Reload without drops (SPEC section 12): SIGHUP applies every change of the
file. Services added and removed, a service whose codec/mode changed
replaced (its clients finish on the old object, new clients get the new
one), listening sockets handed from the old service object to the new one
(no connect refused during a reload), invalid reloads refused with the
running configuration still serving, and 50 reloads under load with zero
client errors (redis-benchmark through fifo, the mariadb client through
proxy mode)."""

import os
import http.client
import json
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from harness import (MariaDB, ProximuxTestCase, RedisServer, Resp, RespError, TIME_FACTOR, _listening_inodes,
                     connect, free_port)

RELOADED = re.compile(r"reloaded configuration")


def reload_and_wait(pmx, timeout=5.0):
    """SIGHUP, then waits for its "reloaded" or "refused" line; returns the
    line."""
    mark = len(pmx.log())
    pmx.send_signal(signal.SIGHUP)
    return pmx.wait_log(r"(reloaded configuration|reload refused).*$", timeout * TIME_FACTOR, mark).group(0)


class UnixResp(Resp):
    """Resp over a unix socket."""

    def __init__(self, path, timeout=10.0):   # pylint: disable=super-init-not-called
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""


def ping(port):
    """One connect, one PING, one close: the connect-per-request client
    (port: a TCP port, or a unix socket's path)."""
    with (UnixResp(port) if isinstance(port, str) else Resp(port, timeout=10)) as r:
        got = r.command("PING")
        if got != "PONG":
            raise AssertionError("PING answered %r" % (got,))


class Pinger:
    """A thread connecting, sending one PING, reading, closing, in a loop;
    counts successes and errors (refused connects included)."""

    def __init__(self, port):
        self.port, self.ok, self.errors, self.last_error = port, 0, 0, None
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop_flag.is_set():
            try:
                ping(self.port)
                self.ok += 1
            except (OSError, AssertionError, RespError) as e:
                self.errors += 1
                self.last_error = e

    def stop(self):
        self.stop_flag.set()
        self.thread.join(10)


class ReloadRedisTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def service(self, name, port, mode="fifo", codec="resp", extra=""):
        return ("  - name: %s\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: %s, codec: %s }\n"
                "    pool: { connections: %d }\n"
                "    local: { max_connections: 200%s }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n"
                % (name, port, mode, codec, 1 if mode == "fifo" else 4, extra, self.redis.port))

    def yaml(self, *services, shutdown_timeout=10000):
        return "log_level: 2\nshutdown_timeout: %d\nservices:\n" % shutdown_timeout + "".join(services)

    def test_reloads_under_redis_benchmark(self):
        """50 reloads every 50 ms, by SIGHUP and by POST /api/v1/reload in
        turn, while redis-benchmark runs 200000 SET/GET through fifo and a
        thread connects once per PING: every other reload replaces the
        service (local.buffer_size changed: a new object, the listening
        socket handed over), the others update it in place
        (exchange.response_timeout). Zero errors."""
        port = free_port()
        aport = free_port()
        def text(buf, timeout):
            # redis-benchmark's clients stay on the service object they
            # connected to for the whole run: a long shutdown_timeout.
            return ("admin: { listen: \"127.0.0.1:%d\" }\n" % aport) + self.yaml(
                self.service("kv", port, extra=", buffer_size: %d" % buf).replace(
                    "mode: fifo,", "mode: fifo, response_timeout: %d," % timeout), shutdown_timeout=300000)

        def reload_by_api(pmx):
            mark = len(pmx.log())
            conn = http.client.HTTPConnection("127.0.0.1", aport, timeout=10 * TIME_FACTOR)
            try:
                conn.request("POST", "/api/v1/reload", body="")
                resp = conn.getresponse()
                body = json.loads(resp.read())
            finally:
                conn.close()
            self.assertEqual(resp.status, 200, body)
            self.assertTrue(body["reloaded"], body)
            return pmx.wait_log(r"(reloaded configuration|reload refused).*$", 5 * TIME_FACTOR, mark).group(0)

        pmx = self.start_proximux(yaml=text(16384, 5000), port=port)
        pinger = Pinger(port)
        bench = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-n", "200000",
                                  "-c", "20", "-t", "set,get", "-q"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            replaced = updated = 0
            for i in range(50):
                # Even: buffer_size toggles (replaced); odd: response_timeout (in place).
                pmx.write_yaml(text(16384 + ((i // 2 + 1) % 2) * 4096, 5000 + i))
                line = reload_and_wait(pmx) if i % 4 < 2 else reload_by_api(pmx)
                self.assertIn("reloaded configuration", line)
                if "replaced kv" in line:
                    replaced += 1
                else:
                    updated += 1
                time.sleep(0.05)
            running_at_end = bench.poll() is None
            out, err = bench.communicate(timeout=180 * TIME_FACTOR)
        finally:
            if bench.poll() is None:
                bench.kill()
            pinger.stop()
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        print("FIGURES reloads under redis-benchmark: %d replaced, %d in place; benchmark still running "
              "after the reloads: %s; connect-per-request pings %d ok, %d errors; benchmark stderr %r; %s"
              % (replaced, updated, running_at_end, pinger.ok, pinger.errors, err.strip()[:200],
                 " ".join(out.split())[:200]))
        self.assertEqual(bench.returncode, 0, err[-2000:])
        self.assertEqual(err.strip(), "", "redis-benchmark reported errors")
        self.assertRegex(out, r"SET: [0-9.]+ requests per second")
        self.assertRegex(out, r"GET: [0-9.]+ requests per second")
        self.assertEqual(pinger.errors, 0, "connect-per-request errors, last: %r" % (pinger.last_error,))
        self.assertGreater(pinger.ok, 0)
        self.assertGreater(replaced, 0)
        self.assertGreater(updated, 0)
        self.assertNotIn("still connected after", pmx.log())
        self.assert_proximux_ok(pmx)

    def test_add_and_remove_services(self):
        """a stays, b is removed, c is added: b's connected client finishes
        its session on the retired service, b's port refuses new connects,
        c serves, a serves throughout."""
        pa, pb, pc = free_port(), free_port(), free_port()
        pmx = self.start_proximux(yaml=self.yaml(self.service("a", pa), self.service("b", pb)), port=pa)
        with Resp(pa) as a, Resp(pb) as b:
            self.assertEqual(a.command("SET", "rl:a", "1"), "OK")
            self.assertEqual(b.command("SET", "rl:b", "1"), "OK")
            pmx.write_yaml(self.yaml(self.service("a", pa), self.service("c", pc)))
            line = reload_and_wait(pmx)
            self.assertIn("removed b", line)
            self.assertIn("added c", line)
            pmx.wait_log(r"service c: accepting clients on 127\.0\.0\.1:%d" % pc)
            # b's client: its session goes on.
            self.assertEqual(b.command("INCR", "rl:b"), 2)
            self.assertEqual(b.command("GET", "rl:b"), b"2")
            with self.assertRaises(ConnectionRefusedError):
                connect(pb, timeout=2).close()
            with Resp(pc) as c:
                self.assertEqual(c.command("GET", "rl:a"), b"1")
            self.assertEqual(a.command("INCR", "rl:a"), 2)
            mark = len(pmx.log())
        pmx.wait_log(r"service b: the retired service's last client has left; closed", start=mark)
        ping(pa)
        self.assert_proximux_ok(pmx)

    def test_rename_hands_the_listeners_over(self):
        """Service a (a TCP port and a unix socket) renamed b while two
        threads connect once per PING on each: zero errors, the same
        listening socket before and after (never closed and reopened), the
        unix socket's file still there."""
        port, d = free_port(), tempfile.mkdtemp(prefix="pmx-it-rl-")
        self.addCleanup(shutil.rmtree, d, True)
        sock = os.path.join(d, "kv.sock")

        def svc(name):
            return self.service(name, port).replace('listen: ["127.0.0.1:%d"]' % port,
                                                    'listen: ["127.0.0.1:%d", "unix:%s"]' % (port, sock))
        pmx = self.start_proximux(yaml=self.yaml(svc("a")), port=port)
        self.assertIn('"unix:', self.yaml(svc("a")))
        before = _listening_inodes(port)
        pingers = [Pinger(port), Pinger(sock)]
        try:
            for i in range(10):
                pmx.write_yaml(self.yaml(svc("b" if i % 2 == 0 else "a")))
                line = reload_and_wait(pmx)
                self.assertRegex(line, r"removed [ab], added [ab]")
                time.sleep(0.05)
        finally:
            for p in pingers:
                p.stop()
        print("FIGURES rename x10: connect-per-request TCP %d ok %d errors, unix %d ok %d errors"
              % (pingers[0].ok, pingers[0].errors, pingers[1].ok, pingers[1].errors))
        for p in pingers:
            self.assertEqual(p.errors, 0, "errors, last: %r" % (p.last_error,))
            self.assertGreater(p.ok, 0)
        self.assertEqual(_listening_inodes(port), before, "the listening socket was closed and reopened")
        self.assertTrue(os.path.exists(sock))
        ping(sock)
        self.assert_proximux_ok(pmx)

    def test_client_of_a_replaced_service_is_served(self):
        """A client connected to service a before a reload renames it b,
        which sends its first request after the reload: a's connection to
        the target opens then, and the client is served (failed before:
        "no upstream available", the replaced service's upstream layer
        refused to open connections)."""
        port = free_port()
        pmx = self.start_proximux(yaml=self.yaml(self.service("a", port)), port=port)
        with Resp(port) as old:
            self.assertEqual(old.command("CLIENT", "SETNAME", "early"), "OK")  # answered locally: nothing opened
            pmx.write_yaml(self.yaml(self.service("b", port)))
            self.assertRegex(reload_and_wait(pmx), r"removed a, added b")
            self.assertEqual(old.command("PING"), "PONG")
            self.assertEqual(old.command("SET", "k", "v"), "OK")
        with Resp(port) as new:
            self.assertEqual(new.command("GET", "k"), b"v")
        self.assert_proximux_ok(pmx)

    def test_codec_and_mode_change(self):
        """proxy/raw becomes fifo/resp: the connected client finishes on
        the proxy object (RESET reaches redis), new clients get fifo (RESET
        refused by the resp codec)."""
        port = free_port()
        pmx = self.start_proximux(yaml=self.yaml(self.service("m", port, mode="proxy", codec="raw")), port=port)
        with Resp(port) as old:
            self.assertEqual(old.command("RESET"), "RESET")
            pmx.write_yaml(self.yaml(self.service("m", port, mode="fifo", codec="resp")))
            line = reload_and_wait(pmx)
            self.assertIn("replaced m", line)
            pmx.wait_log(r"service m: accepting clients on .*\(fifo mode, resp codec\)")
            with Resp(port) as new:
                got = new.command("RESET")
                self.assertIsInstance(got, RespError)
                self.assertEqual(new.command("SET", "rl:m", "x"), "OK")
            self.assertEqual(old.command("RESET"), "RESET")
            self.assertEqual(old.command("GET", "rl:m"), b"x")
        self.assert_proximux_ok(pmx)

    def test_invalid_reloads_refused(self):
        """A bad key, then a new service whose port is taken: both refused
        and logged; the running configuration (a and b) keeps serving."""
        pa, pb, taken = free_port(), free_port(), free_port()
        base = self.yaml(self.service("a", pa), self.service("b", pb))
        pmx = self.start_proximux(yaml=base, port=pa)
        pmx.write_yaml(base + "bogus_key: 1\n")
        line = reload_and_wait(pmx)
        self.assertRegex(line, r"reload refused: .*bogus_key")
        ping(pa)
        ping(pb)
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", taken))
        holder.listen(1)
        try:
            pmx.write_yaml(self.yaml(self.service("a", pa), self.service("c", taken)))
            line = reload_and_wait(pmx)
            self.assertRegex(line, r"reload refused: .*service c.*(in use|Address)")
            ping(pa)
            ping(pb)
            time.sleep(0.2)
            ping(pb)
        finally:
            holder.close()
        self.assertTrue(pmx.alive())
        self.assert_proximux_ok(pmx)


class ReloadMariaDBTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def test_reloads_under_mariadb_queries(self):
        """50 SIGHUPs every 50 ms (every other one replacing the proxy
        service) while one mariadb session runs queries across all of them
        and a loop runs one mariadb client process per query: zero errors."""
        port = free_port()
        yaml = ("log_level: 2\nshutdown_timeout: 10000\n"
                "services:\n"
                "  - name: db\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8 }\n"
                "    local: { max_connections: %d, buffer_size: %d }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n")
        pmx = self.start_proximux(yaml=yaml % (port, 100, 16384, self.db.port), port=port)
        self.db.client("CREATE TABLE IF NOT EXISTS rl (id INT PRIMARY KEY AUTO_INCREMENT, v INT)", port)
        stop = threading.Event()
        counts = {"ok": 0, "errors": 0, "last": None}

        def per_query():
            i = 0
            while not stop.is_set():
                i += 1
                r = self.db.run_client("INSERT INTO rl (v) VALUES (%d); SELECT COUNT(*) > 0 FROM rl" % i, port)
                if r.returncode == 0 and r.stdout.strip() == "1":
                    counts["ok"] += 1
                else:
                    counts["errors"] += 1
                    counts["last"] = r.stderr.strip() or r.stdout

        # One long session: the mariadb client reading queries from stdin.
        session = subprocess.Popen(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(port),
                                    "-u", MariaDB.USER, "-p" + MariaDB.PASSWORD, self.db.DB, "-N", "-B"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        loop = threading.Thread(target=per_query, daemon=True)
        loop.start()
        try:
            for i in range(50):
                # Even: buffer_size toggles (replaced); odd: max_connections (in place).
                pmx.write_yaml(yaml % (port, 100 + i, 16384 + ((i // 2 + 1) % 2) * 4096, self.db.port))
                line = reload_and_wait(pmx)
                self.assertIn("reloaded configuration", line)
                session.stdin.write("SELECT %d;\n" % i)
                session.stdin.flush()
                time.sleep(0.05)
        finally:
            stop.set()
            loop.join(60)
        out, err = session.communicate("SELECT 'done';\n", timeout=30)
        lines = out.split()
        print("FIGURES reloads under mariadb: per-query clients %d ok, %d errors; the long session answered "
              "%d of 51 queries, stderr %r" % (counts["ok"], counts["errors"], len(lines), err.strip()[:200]))
        self.assertEqual(session.returncode, 0, err)
        self.assertEqual(lines, [str(i) for i in range(50)] + ["done"])
        self.assertEqual(counts["errors"], 0, "per-query client errors, last: %r" % (counts["last"],))
        self.assertGreater(counts["ok"], 0)
        self.assert_proximux_ok(pmx)
