"""The request log (SPEC §11) with the real binary: resp through FIFO to
redis-server and memcache through funnel to memcached, every field of every
line after known traffic (ok, an error reply, a missing key, a client gone
before its answer, busy at limits.max_queued, response_timeout), sample 0.5,
a sink that never drains (lines dropped and counted, the loop never waits),
the log reopened after rename + SIGHUP, and an unopenable file refused at
start and on reload."""

import json
import os
import re
import signal
import socket
import struct
import time

from harness import (TIME_FACTOR, ProximuxTestCase, RedisServer, Resp, RespError, connect, free_port,
                     make_tmpdir, remove_tmpdir, resp_encode, run_proximux)
from muxlib import HttpUpstream, McClient, MemcachedServer
from test_admin import get_json, http

TS_RX = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

# A Lua script that keeps Redis busy for ARGV[1] microseconds.
BUSY = ("local t=redis.call('TIME') while true do local n=redis.call('TIME') "
        "if (n[1]-t[1])*1000000+(n[2]-t[2]) > tonumber(ARGV[1]) then break end end return 1")


def read_json_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") or not data, data[-200:]
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


class _LogDir:
    def setUp(self):
        self.dir = make_tmpdir("reqlog")
        self.addCleanup(remove_tmpdir, self.dir)
        self.log_path = os.path.join(self.dir, "requests.log")

    def check_line(self, line, client, target, command, bytes_in, bytes_out, status, service="default"):
        self.assertRegex(line["ts"], TS_RX)
        want = {"service": service, "client": client, "target": target, "command": command,
                "bytes_in": bytes_in, "bytes_out": bytes_out, "status": status}
        got = {k: line[k] for k in want}
        self.assertEqual(got, want, line)
        self.assertEqual(set(line), set(want) | {"ts", "us"}, line)
        self.assertIsInstance(line["us"], int)
        if target == "":
            self.assertEqual(line["us"], 0, line)


class RequestLogRedis(_LogDir, ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def config(self, port, extra="", log=None, request_log=None, limits=True):
        request_log = request_log or "{ file: %s }" % json.dumps(log or self.log_path)
        return ("local: { port: %d }\n"
                "targets: [ { host: 127.0.0.1, port: %d, name: redis-1 } ]\n"
                "exchange: { mode: fifo, codec: resp, response_timeout: %d }\n"
                "pool: { connections: 1, warmup: true }\n"
                "%s"
                "request_log: %s\n%s" % (port, self.redis.port, int(500 * TIME_FACTOR),
                                          "limits: { max_active: 1, max_queued: 0 }\n" if limits else "",
                                          request_log, extra))

    def client(self, port):
        c = Resp(port)
        self.addCleanup(c.close)
        return c, "127.0.0.1:%d" % c.sock.getsockname()[1]

    def test_fifo_every_field(self):
        port = free_port()
        pmx = self.start_proximux(yaml=self.config(port), port=port)
        c, me = self.client(port)
        self.assertEqual(c.command("DEL", "user:1"), 0)
        self.assertEqual(c.command("SET", "user:1", "hello"), "OK")
        self.assertEqual(c.command("GET", "user:1"), b"hello")
        self.assertIsNone(c.command("GET", "nokey"))
        err = c.command("INCR", "user:1")
        self.assertTrue(str(err).startswith("ERR value is not an integer"), err)

        # A client that leaves while Redis runs its command: client_gone.
        gone = connect(port)
        gone_addr = "127.0.0.1:%d" % gone.getsockname()[1]
        gone.sendall(resp_encode("EVAL", BUSY, 0, int(300000 * TIME_FACTOR)))
        time.sleep(0.05 * TIME_FACTOR)
        # A reset, not a half-close (after which the answer is still sent).
        gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        gone.close()
        time.sleep(0.1 * TIME_FACTOR)
        # Its command still runs upstream (limits.max_active 1), nothing may
        # wait (max_queued 0): busy.
        busy = c.command("GET", "user:1")
        self.assertIn("max_queued", str(busy))
        time.sleep(0.4 * TIME_FACTOR)
        self.assertEqual(c.command("PING"), "PONG")
        # Longer than response_timeout: timeout.
        t = c.command("EVAL", BUSY, 0, int(1000000 * TIME_FACTOR))
        self.assertIn("timeout", str(t))
        time.sleep(0.8 * TIME_FACTOR)       # Redis finishes the script
        self.assert_proximux_ok(pmx)

        lines = read_json_lines(self.log_path)
        self.assertEqual(len(lines), 9, lines)
        enc = resp_encode
        self.check_line(lines[0], me, "redis-1", "DEL user:1", len(enc("DEL", "user:1")), 4, "ok")
        self.check_line(lines[1], me, "redis-1", "SET user:1", len(enc("SET", "user:1", "hello")), 5, "ok")
        self.check_line(lines[2], me, "redis-1", "GET user:1", len(enc("GET", "user:1")), 11, "ok")
        self.check_line(lines[3], me, "redis-1", "GET nokey", len(enc("GET", "nokey")), 5, "ok")
        incr_reply = len("-ERR value is not an integer or out of range\r\n")
        self.check_line(lines[4], me, "redis-1", "INCR user:1", len(enc("INCR", "user:1")), incr_reply, "error")
        eval_gone = enc("EVAL", BUSY, 0, int(300000 * TIME_FACTOR))
        self.check_line(lines[5], gone_addr, "redis-1", "EVAL " + BUSY, len(eval_gone), 0, "client_gone")
        self.check_line(lines[6], me, "", "GET user:1", len(enc("GET", "user:1")), len(str(busy)) + 3, "busy")
        self.check_line(lines[7], me, "redis-1", "PING", len(enc("PING")), 7, "ok")
        eval_slow = enc("EVAL", BUSY, 0, int(1000000 * TIME_FACTOR))
        self.check_line(lines[8], me, "redis-1", "EVAL " + BUSY, len(eval_slow), len(str(t)) + 3, "timeout")
        # us: request written -> response complete.
        for line in lines[:5] + [lines[7]]:
            self.assertGreater(line["us"], 0, line)
            self.assertLess(line["us"], 2000000 * TIME_FACTOR, line)
        self.assertGreaterEqual(lines[8]["us"], 500000 * TIME_FACTOR * 0.9, lines[8])

    def test_sample_half(self):
        port = free_port()
        pmx = self.start_proximux(yaml=self.config(port, request_log="{ file: %s, sample: 0.5 }"
                                                   % json.dumps(self.log_path)), port=port)
        c, _ = self.client(port)
        for i in range(1000):
            self.assertEqual(c.command("PING"), "PONG")
        self.assert_proximux_ok(pmx)
        n = len(read_json_lines(self.log_path))
        # Binomial(1000, 0.5): 400-600 is more than 6 standard deviations.
        self.assertGreater(n, 400)
        self.assertLess(n, 600)

    def test_text_format_and_max_text(self):
        port = free_port()
        pmx = self.start_proximux(yaml=self.config(port, request_log="{ file: %s, format: text, max_text: 16 }"
                                                   % json.dumps(self.log_path)), port=port)
        c, me = self.client(port)
        key = "k" * 40
        self.assertEqual(c.command("SET", key, "v"), "OK")
        self.assert_proximux_ok(pmx)
        with open(self.log_path) as f:
            text = f.read()
        m = re.fullmatch(r"(\S+) default (\S+) redis-1 ok (\d+)us in=(\d+) out=5 \"(.*)\"\n", text)
        self.assertIsNotNone(m, text)
        self.assertRegex(m.group(1), TS_RX)
        self.assertEqual(m.group(2), me)
        self.assertEqual(int(m.group(4)), len(resp_encode("SET", key, "v")))
        self.assertEqual(m.group(5), "SET kkkkkkkkkkkk...[44 bytes]")

    def test_slow_sink_drops_and_counts(self):
        """A FIFO whose reader never reads: once the pipe and the buffers
        are full, lines are dropped, counted and the count logged, and
        every client is still answered at once."""
        fifo = os.path.join(self.dir, "sink")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self.addCleanup(os.close, reader)
        port = free_port()
        aport = free_port()
        pmx = self.start_proximux(yaml=self.config(port, log=fifo, limits=False,
                                                   extra="admin: { listen: \"127.0.0.1:%d\" }\n" % aport), port=port)
        c, _ = self.client(port)
        key = "k" * 900
        # 1000-byte lines: 4000 of them are far more than the pipe (64 KiB)
        # and the two 512 KiB buffers hold. Pipelined, 100 at a time.
        for _ in range(40):
            c.sock.sendall(resp_encode("GET", key) * 100)
            for _ in range(100):
                self.assertIsNone(c.read_reply())
        m = pmx.wait_log(r"request_log %s: (\d+) lines dropped \(sink too slow\)" % re.escape(fifo),
                         timeout=5 * TIME_FACTOR)
        self.assertGreater(int(m.group(1)), 0)
        self.assertEqual(c.command("PING"), "PONG")
        # The statistics count them too (at least what was logged).
        st = get_json(aport, "/api/v1/stats/default")
        self.assertGreaterEqual(st["request_log_dropped"], int(m.group(1)))
        _, _, body = http(aport, "GET", "/metrics")
        self.assertRegex(body.decode(), r'proximux_request_log_dropped_total\{service="default"\} [1-9]')
        self.assert_proximux_ok(pmx)

    def test_reopen_after_rename_and_sighup(self):
        port = free_port()
        pmx = self.start_proximux(yaml=self.config(port, extra="log_level: 2\n"), port=port)
        c, me = self.client(port)
        self.assertEqual(c.command("SET", "a", "1"), "OK")
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while os.path.getsize(self.log_path) == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.rename(self.log_path, self.log_path + ".1")
        start = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"reloaded configuration", start=start)
        self.assertEqual(c.command("GET", "a"), b"1")
        self.assert_proximux_ok(pmx)
        old, new = read_json_lines(self.log_path + ".1"), read_json_lines(self.log_path)
        self.assertEqual([x["command"] for x in old], ["SET a"])
        self.assertEqual([x["command"] for x in new], ["GET a"])
        self.assertEqual(new[0]["client"], me)

    def test_unopenable_file(self):
        bad = os.path.join(self.dir, "missing", "requests.log")
        port = free_port()
        code, out, err = run_proximux([], yaml=self.config(port, log=bad))
        self.assertEqual(code, 2, err)
        self.assertIn("request_log.file: cannot open \"%s\": No such file or directory" % bad, err)

        # A reload to it is refused; the running log goes on.
        pmx = self.start_proximux(yaml=self.config(port), port=port)
        c, _ = self.client(port)
        self.assertEqual(c.command("SET", "a", "1"), "OK")
        pmx.write_yaml(self.config(port, log=bad))
        start = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"reload refused: service default: request_log\.file: cannot open", start=start)
        self.assertEqual(c.command("GET", "a"), b"1")
        self.assert_proximux_ok(pmx)
        self.assertEqual([x["command"] for x in read_json_lines(self.log_path)], ["SET a", "GET a"])


    def test_readme_example(self):
        """config/examples/redis-command-log.yaml (ports and file moved)
        writes the lines README's "Request log" shows, but for ts, client
        and us."""
        top = os.path.join(os.path.dirname(__file__), "..", "..")
        with open(os.path.join(top, "config", "examples", "redis-command-log.yaml")) as f:
            yaml = f.read()
        with open(os.path.join(top, "README.md")) as f:
            readme = f.read()
        section = readme[readme.index("**Example: a Redis command log in JSON lines**"):]
        shown = [json.loads(x) for x in re.findall(r"^(\{.*\})$", section, re.M)[:4]]
        self.assertEqual(len(shown), 4)
        port = free_port()
        yaml = (yaml.replace("127.0.0.1:6380", "127.0.0.1:%d" % port)
                    .replace("port: 6379", "port: %d" % self.redis.port)
                    .replace("/var/log/proximux/redis-commands.log", self.log_path))
        pmx = self.start_proximux(yaml=yaml, port=port)
        self.redis.cli("del", "user:1")
        for args in (["set", "user:1", "hello"], ["get", "user:1"], ["get", "nokey"], ["incr", "user:1"]):
            c, me = self.client(port)
            c.command(*args)
            c.close()
        self.assert_proximux_ok(pmx)
        lines = read_json_lines(self.log_path)
        self.assertEqual(len(lines), 4, lines)
        for got, want in zip(lines, shown):
            for k in ("ts", "client", "us"):
                self.assertIn(k, got)
                got.pop(k)
                want.pop(k)
            self.assertEqual(got, want)


    def test_upstream_gone(self):
        """Redis killed with a command in flight: upstream_gone; the next
        command, with no target to connect to: busy."""
        redis = RedisServer()
        self.addCleanup(redis.stop)
        port = free_port()
        cfg = self.config(port).replace("port: %d," % self.redis.port, "port: %d," % redis.port)
        pmx = self.start_proximux(yaml=cfg, port=port)
        c, me = self.client(port)
        c.send("EVAL", BUSY, 0, int(3000000 * TIME_FACTOR))
        time.sleep(0.1 * TIME_FACTOR)
        redis.kill()
        self.assertIsInstance(c.read_reply(), RespError)
        self.assertIsInstance(c.command("GET", "a"), RespError)
        self.assert_proximux_ok(pmx)
        lines = read_json_lines(self.log_path)
        self.assertEqual(len(lines), 2, lines)
        self.assertEqual((lines[0]["status"], lines[0]["target"], lines[0]["client"]),
                         ("upstream_gone", "redis-1", me), lines[0])
        self.assertGreater(lines[0]["us"], 0)
        self.assertEqual((lines[1]["status"], lines[1]["target"], lines[1]["command"]), ("busy", "", "GET a"), lines[1])


class RequestLogMemcached(_LogDir, ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.mc = MemcachedServer()

    @classmethod
    def tearDownClass(cls):
        cls.mc.stop()

    def test_funnel_every_field(self):
        port = free_port()
        pmx = self.start_proximux(yaml=(
            "services:\n"
            "  - name: cache\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    targets: [ { host: 127.0.0.1, port: %d, name: mc } ]\n"
            "    exchange: { mode: funnel, codec: memcache }\n"
            "    pool: { connections: 2 }\n"
            "    request_log: { file: %s }\n" % (port, self.mc.port, json.dumps(self.log_path))), port=port)
        c = McClient(port)
        self.addCleanup(c.close)
        me = "127.0.0.1:%d" % c.sock.getsockname()[1]
        self.assertEqual(c.command(b"set k 0 0 5\r\nhello\r\n"), b"STORED\r\n")
        self.assertEqual(c.get(b"get k\r\n"), b"VALUE k 0 5\r\nhello\r\nEND\r\n")
        self.assertEqual(c.get(b"get missing\r\n"), b"END\r\n")
        reply = c.command(b"incr k 1\r\n")
        self.assertTrue(reply.startswith(b"CLIENT_ERROR"), reply)
        self.assert_proximux_ok(pmx)

        lines = read_json_lines(self.log_path)
        self.assertEqual(len(lines), 4, lines)
        self.check_line(lines[0], me, "mc", "set k", len(b"set k 0 0 5\r\nhello\r\n"), 8, "ok", service="cache")
        self.check_line(lines[1], me, "mc", "get k", 7, len(b"VALUE k 0 5\r\nhello\r\nEND\r\n"), "ok", service="cache")
        self.check_line(lines[2], me, "mc", "get missing", 13, 5, "ok", service="cache")
        self.check_line(lines[3], me, "mc", "incr k", 10, len(reply), "error", service="cache")


class RequestLogHttp(_LogDir, ProximuxTestCase):

    def test_funnel_http(self):
        """http through funnel: method and path, a POST, and an upstream
        that closes instead of answering (upstream_gone, 502 to the client)."""
        up = HttpUpstream()
        self.addCleanup(up.stop)
        port = free_port()
        pmx = self.start_proximux(yaml=(
            "local: { port: %d }\n"
            "targets: [ { host: 127.0.0.1, port: %d, name: web } ]\n"
            "exchange: { mode: funnel, codec: http }\n"
            "pool: { connections: 2 }\n"
            "request_log: { file: %s, format: json }\n" % (port, up.port, json.dumps(self.log_path))), port=port)
        s = connect(port)
        self.addCleanup(s.close)
        me = "127.0.0.1:%d" % s.getsockname()[1]
        reqs = [b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi",
                b"GET /die HTTP/1.1\r\nHost: h\r\n\r\n"]
        sizes = []
        for r in reqs:
            s.sendall(r)
            head = b""
            while b"\r\n\r\n" not in head:
                b = s.recv(65536)
                self.assertTrue(b, head)
                head += b
            n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(head) < head.index(b"\r\n\r\n") + 4 + n:
                head += s.recv(65536)
            sizes.append(len(head))
        self.assertTrue(head.startswith(b"HTTP/1.1 502"), head)
        s.close()
        self.assert_proximux_ok(pmx)
        lines = read_json_lines(self.log_path)
        self.assertEqual(len(lines), 3, lines)
        self.check_line(lines[0], me, "web", "GET /a?x=1", len(reqs[0]), sizes[0], "ok")
        self.check_line(lines[1], me, "web", "POST /p", len(reqs[1]), sizes[1], "ok")
        self.check_line(lines[2], me, "web", "GET /die", len(reqs[2]), sizes[2], "upstream_gone")
