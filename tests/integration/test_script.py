"""Lua hooks (SPEC §11) with the real binary in front of a real
redis-server: on_connect refusing clients by a Lua table of blocked
addresses (the shipped blocklist example, clients bound to 127.0.0.2 and
127.0.0.3), hooks that error or loop forever (other clients keep being
served within a second), on_request answering locally through FIFO resp in
the client's order, on_response seeing status and us, on_event seeing a
target go down and come back, a script load error (exit 2, file:line), a
reload replacing the script for new clients only, and the SOCKS4 route
example with curl --socks4 (runs once script_route() is wired into the
proxy routing phase)."""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

from harness import (TIME_FACTOR, MariaDB, ProximuxTestCase, RedisServer, Resp, RespError, free_port,
                     make_tmpdir, remove_tmpdir, resp_encode, run_proximux)

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
EXAMPLES = os.path.join(TOP, "config", "examples")


def bound_client(port, source, timeout=5.0):
    """A Resp client whose socket is bound to source (127.0.0.x)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    c = Resp.__new__(Resp)
    c.sock = s
    c.buf = b""
    return c


def closed_without_data(sock, timeout=3.0):
    """True when the peer closes sock without sending a byte."""
    sock.settimeout(timeout)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


class ScriptTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.dir = make_tmpdir("pmxlua")
        self.addCleanup(remove_tmpdir, self.dir)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return path

    def start(self, script, extra="", mode="fifo", redis_port=None, log_level=2, pool="", top=""):
        port = free_port()
        yaml = ("log_level: %d\n%s"
                "services:\n"
                "  - name: lua\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: %s, codec: resp, funnel_async: true }\n"
                "    pool: { connections: %d%s }\n"
                "    local: { max_connections: %d }\n"
                "    script: %s\n"
                "%s"
                "    targets: [ { name: r1, host: 127.0.0.1, port: %d } ]\n"
                % (log_level, top, port, mode, 1 if mode == "fifo" else 2, pool, 100 if mode == "proxy" else -1, script, extra,
                   redis_port or self.redis.port))
        p = self.start_proximux(yaml=yaml, port=port)
        return p, port

    def test_blocklist_example(self):
        """config/examples/blocklist.lua as the README shows it: 127.0.0.2
        is closed before any byte reaches Redis (logged with the reason,
        counted as refused), 127.0.0.3 and 127.0.0.1 are served; in fifo
        and in proxy mode."""
        for mode in ("fifo", "proxy"):
            with self.subTest(mode=mode):
                self.blocklist(mode)

    def blocklist(self, mode):
        script = shutil.copy(os.path.join(EXAMPLES, "blocklist.lua"), self.dir)
        aport = free_port()
        p, port = self.start(script, mode=mode, top="admin: { listen: \"127.0.0.1:%d\" }\n" % aport)
        blocked = bound_client(port, "127.0.0.2")
        blocked.sock.sendall(resp_encode("SET", "blocked", "yes"))
        self.assertTrue(closed_without_data(blocked.sock))
        blocked.close()
        p.wait_log(r"client 127\.0\.0\.2:\d+ refused by on_connect: blocked")
        for source in ("127.0.0.3", "127.0.0.1"):
            with bound_client(port, source) as c:
                self.assertEqual(c.command("SET", "k" + source, source), "OK")
                self.assertEqual(c.command("GET", "k" + source), source.encode())
        with self.redis.client() as direct:
            self.assertIsNone(direct.command("GET", "blocked"))
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/stats/lua" % aport, timeout=5) as r:
            stats = json.load(r)
        self.assertEqual(stats["clients"]["refused"]["script"], 1, stats)
        self.assert_proximux_ok(p)

    def test_errors_and_endless_loops(self):
        """A hook that errors or never returns is cut and logged; the client
        is refused or closed; every other client is served within a second."""
        script = self.write("bad.lua", """
function on_connect(c)
  if c.addr == '127.0.0.4' then error('on_connect fails') end
  if c.addr == '127.0.0.5' then while true do end end
end
function on_request(req)
  if req.command == 'ECHO loopme' then while true do end end
  if req.command == 'ECHO failme' then error('on_request fails') end
end
""")
        p, port = self.start(script)
        ok = Resp(port)
        self.assertEqual(ok.command("PING"), "PONG")
        for source in ("127.0.0.4", "127.0.0.5"):
            t0 = time.monotonic()
            c = bound_client(port, source)
            self.assertTrue(closed_without_data(c.sock))
            c.close()
            self.assertEqual(ok.command("PING"), "PONG")
            self.assertLess(time.monotonic() - t0, 1.0 * TIME_FACTOR)
        p.wait_log(r"script \S+bad\.lua: on_connect: \S+bad\.lua:3: on_connect fails")
        p.wait_log(r"on_connect: instruction budget exhausted")
        p.wait_log(r"client 127\.0\.0\.5:\d+ refused by on_connect: script budget exhausted")
        for word in ("loopme", "failme"):
            t0 = time.monotonic()
            bad = Resp(port)
            self.assertEqual(bad.command("ECHO", "fine"), b"fine")
            bad.send("ECHO", word)
            self.assertTrue(closed_without_data(bad.sock))
            bad.close()
            self.assertEqual(ok.command("ECHO", "still"), b"still")
            self.assertLess(time.monotonic() - t0, 1.0 * TIME_FACTOR)
        p.wait_log(r"on_request: instruction budget exhausted")
        p.wait_log(r"on_request: \S+bad\.lua:8: on_request fails")
        ok.close()
        self.assert_proximux_ok(p)

    def test_on_request_local_replies_in_order(self):
        """on_request answers PING and a made-up command locally; pipelined
        with real commands, every reply comes back in the client's order
        and nothing answered locally reaches Redis."""
        script = self.write("local.lua", """
function on_request(req)
  if req.command == 'PING' then return { reply = '+LOCAL\\r\\n' } end
  if req.command == 'HELLOLUA' then return { reply = '$' .. #req.client .. '\\r\\n' .. req.client .. '\\r\\n' } end
  if req.command == 'BYE' then return { close = true } end
end
""")
        p, port = self.start(script)
        self.redis.cli("DEL", "lk", "cnt")
        self.redis.cli("CONFIG", "RESETSTAT")
        with Resp(port) as c:
            c.sock.sendall(resp_encode("SET", "lk", "v1") + resp_encode("PING") +
                           resp_encode("GET", "lk") + resp_encode("INCR", "cnt") +
                           resp_encode("PING") + resp_encode("HELLOLUA") + resp_encode("GET", "lk"))
            replies = [c.read_reply() for _ in range(7)]
            self.assertEqual(replies[:5], ["OK", "LOCAL", b"v1", 1, "LOCAL"])
            self.assertRegex(replies[5].decode(), r"^127\.0\.0\.1:\d+$")
            self.assertEqual(replies[6], b"v1")
            # Many rounds, local and remote interleaved.
            for i in range(200):
                c.sock.sendall(resp_encode("INCR", "cnt") + resp_encode("PING"))
                self.assertEqual(c.read_reply(), i + 2)
                self.assertEqual(c.read_reply(), "LOCAL")
            c.send("BYE")
            self.assertTrue(closed_without_data(c.sock))
        # Redis never saw a PING from Proximux's clients: its counter is 0.
        stats = self.redis.cli("INFO", "commandstats")
        self.assertNotIn("cmdstat_ping:calls=", stats.replace("cmdstat_ping:calls=0", ""))
        self.assert_proximux_ok(p)

    def test_on_response_sees_status_and_time(self):
        """on_response gets the request's table (with what on_request put
        in it), the status, the response bytes and the time in us."""
        script = self.write("resp.lua", """
function on_request(req) req.seen = 'yes' end
function on_response(req, resp)
  proximux.log(1, string.format('resp %s %s %s us=%d bytes=%q', req.command, req.seen, resp.status,
                                resp.us, resp.bytes))
end
""")
        p, port = self.start(script)
        with Resp(port) as c:
            self.assertEqual(c.command("SET", "rk", "hello"), "OK")
            self.assertEqual(c.command("GET", "rk"), b"hello")
            self.assertIsInstance(c.command("NOSUCHCMD"), RespError)
        m = p.wait_log(r"script: resp GET rk yes ok us=(\d+) bytes=\"\$5")
        us = int(m.group(1))
        self.assertGreater(us, 0)
        self.assertLess(us, 5000000 * TIME_FACTOR)
        p.wait_log(r"script: resp SET rk yes ok us=\d+ bytes=\"\+OK")
        p.wait_log(r"script: resp NOSUCHCMD yes ok us=\d+ bytes=\"-ERR")
        self.assert_proximux_ok(p)

    def test_on_event_target_down_and_up(self):
        """Killing the redis-server target raises target_down; starting it
        again raises target_up (seen by on_event with service, target and
        reason)."""
        redis = RedisServer()
        try:
            script = self.write("events.lua", """
function on_event(name, info)
  proximux.log(1, 'event ' .. name .. ' ' .. info.service .. ' ' .. info.target .. ' ' .. tostring(info.reason))
end
""")
            p, port = self.start(script, redis_port=redis.port,
                                 extra="    health: { fail_after: 1, rise_after: 1, interval: 100 }\n",
                                 pool=", backoff_min: 50, backoff_max: 100")
            with Resp(port) as c:
                self.assertEqual(c.command("PING"), "PONG")
                redis.kill()
                c.command("PING")   # an error: the upstream is gone
                p.wait_log(r"script: event target_down lua r1 \S", timeout=5 * TIME_FACTOR)
                redis.start()
                p.wait_log(r"script: event target_up lua r1 \S", timeout=5 * TIME_FACTOR)
            with Resp(port) as c:
                self.assertEqual(c.command("PING"), "PONG")
            self.assert_proximux_ok(p)
        finally:
            redis.stop()

    def test_load_error_exits_2_with_file_and_line(self):
        script = self.write("broken.lua", "local a = 1\n\nx x\n")
        yaml = ("local: { port: %d }\npool: { connections: 1 }\nscript: %s\n"
                "targets: [ { host: 127.0.0.1, port: %d } ]\n" % (free_port(), script, self.redis.port))
        for args in ((), ("-t",)):
            code, out, err = run_proximux(list(args), yaml=yaml, env={})
            self.assertEqual(code, 2)
            self.assertEqual(err.strip().splitlines(),
                             ["proximux: script: %s:3: syntax error near 'x'" % script])
        yaml = yaml.replace(script, os.path.join(self.dir, "missing.lua"))
        code, out, err = run_proximux([], yaml=yaml, env={})
        self.assertEqual(code, 2)
        self.assertIn("script: cannot open %s" % os.path.join(self.dir, "missing.lua"), err)
        runtime = self.write("runtime.lua", "local t = nil\nreturn t.x\n")
        code, out, err = run_proximux([], yaml=yaml.replace(os.path.join(self.dir, "missing.lua"), runtime),
                                      env={})
        self.assertEqual(code, 2)
        self.assertRegex(err, r"script: \S+runtime\.lua:2: attempt to index a nil value \(local 't'\)")

    def test_reload_replaces_script_for_new_clients(self):
        """SIGHUP loads the new script for new clients; a connected client
        keeps the state it started with; a script that no longer loads makes
        the reload refused and the running one stays."""
        path = self.write("ver.lua", "n = 0\nfunction on_request(req)\n"
                                     "  if req.command == 'VER' then n = n + 1; return { reply = '+V1 ' .. n .. '\\r\\n' } end\nend\n")
        p, port = self.start(path)
        old = Resp(port)
        self.assertEqual(old.command("VER"), "V1 1")
        self.write("ver.lua", "function on_request(req)\n"
                              "  if req.command == 'VER' then return { reply = '+V2\\r\\n' } end\nend\n")
        start = len(p.log())
        p.send_signal(signal.SIGHUP)
        p.wait_log(r"reload", start=start)
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while True:
            with Resp(port) as new:
                if new.command("VER") == "V2":
                    break
            self.assertLess(time.monotonic(), deadline, "the new script never served")
            time.sleep(0.05)
        self.assertEqual(old.command("VER"), "V1 2")
        # A broken script: the reload is refused, V2 stays.
        self.write("ver.lua", "function on_request(req\n")
        start = len(p.log())
        p.send_signal(signal.SIGHUP)
        p.wait_log(r"ver\.lua:\d+: .*", start=start)
        time.sleep(0.2)
        with Resp(port) as new:
            self.assertEqual(new.command("VER"), "V2")
        self.assertEqual(old.command("VER"), "V1 3")
        old.close()
        self.assert_proximux_ok(p)


class ScriptRouteEventTest(ProximuxTestCase):
    """on_event sees connect_error and inactivity from routed proxy
    sessions (routes: to a refused port, and to a server that never
    speaks within the route's inactivity_timeout)."""

    def test_connect_error_and_inactivity_events(self):
        d = make_tmpdir("pmxluaev")
        self.addCleanup(remove_tmpdir, d)
        script = os.path.join(d, "ev.lua")
        with open(script, "w") as f:
            f.write("function on_event(name, info)\n"
                    "  proximux.log(1, 'lua ' .. name .. ' ' .. info.service .. ' ' .. info.target .. ' ' .. info.reason)\n"
                    "end\n")
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        refused = free_port()
        port = free_port()
        yaml = ("services:\n"
                "  - name: ev\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    local: { max_connections: 10 }\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 10 }\n"
                "    script: %s\n"
                "    routes:\n"
                "      - { prefix: \"refused\", target: \"127.0.0.1:%d\" }\n"
                "      - { prefix: \"silent\", target: \"127.0.0.1:%d\", inactivity_timeout: 200 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n"
                % (port, script, refused, silent.getsockname()[1], refused))
        p = self.start_proximux(yaml=yaml, port=port)
        for word in (b"refused\n", b"silent\n"):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(word)
            self.assertTrue(closed_without_data(c, timeout=5 * TIME_FACTOR))
            c.close()
        p.wait_log(r"script: lua connect_error ev 127\.0\.0\.1:%d \S" % refused)
        p.wait_log(r"script: lua inactivity ev 127\.0\.0\.1:%d \S" % silent.getsockname()[1])
        self.assert_proximux_ok(p)


class ScriptRouteTrickleTest(ProximuxTestCase):

    def test_trickled_bytes_are_looked_at_a_few_times(self):
        """A client sending its first 3000 bytes one per write: route() (and
        the routes) look at the growing buffer O(log n) times plus once per
        pause, not once per read (each look runs over the whole buffer)."""
        d = make_tmpdir("pmxluatrickle")
        self.addCleanup(remove_tmpdir, d)
        script = os.path.join(d, "trickle.lua")
        with open(script, "w") as f:
            f.write("calls = 0\n"
                    "function route(data, client)\n"
                    "  calls = calls + 1\n"
                    "  if #data >= 3000 then\n"
                    "    proximux.log(1, 'route calls ' .. calls)\n"
                    "    return { close = 'done' }\n"
                    "  end\n"
                    "end\n")
        port = free_port()
        yaml = ("services:\n"
                "  - name: trickle\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    local: { max_connections: 10 }\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 10 }\n"
                "    script: %s\n"
                "    route_timeout: %d\n"
                "    targets: [ { name: t, host: 127.0.0.1, port: %d } ]\n"
                % (port, script, int(60000 * TIME_FACTOR), free_port()))
        p = self.start_proximux(yaml=yaml, port=port)
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(3000):
                c.sendall(b"a")
                time.sleep(0.0002)
            c.settimeout(10 * TIME_FACTOR)
            self.assertEqual(c.recv(16), b"done")
        p.wait_log(r"route calls (\d+)")
        calls = int(re.search(r"route calls (\d+)", p.log()).group(1))
        self.assertLess(calls, 500, "route() ran %d times for 3000 one-byte writes" % calls)
        self.assert_proximux_ok(p)


class ScriptMySQLTest(ProximuxTestCase):
    """on_request / on_response in proxy mode with the mysql codec, through
    a real MariaDB: they observe each query (SQL text, status, time); the
    session's bytes are never changed."""

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def test_query_hooks(self):
        d = make_tmpdir("pmxluamysql")
        self.addCleanup(remove_tmpdir, d)
        script = os.path.join(d, "mysql.lua")
        with open(script, "w") as f:
            f.write("""
function on_request(req)
  req.t = 'seen'
  return { reply = 'ignored: a mysql session is only observed' }
end
function on_response(req, resp)
  proximux.log(1, string.format('query %s [%s] %s size>0=%s us>0=%s', req.t, req.command, resp.status,
                                tostring(resp.size > 0), tostring(resp.us > 0)))
end
""")
        port = free_port()
        yaml = ("services:\n"
                "  - name: mysql\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    local: { max_connections: 10 }\n"
                "    exchange: { mode: proxy, codec: mysql }\n"
                "    pool: { connections: 2, warmup: true }\n"
                "    script: %s\n"
                "    targets: [ { name: db, host: 127.0.0.1, port: %d } ]\n" % (port, script, self.db.port))
        p = self.start_proximux(yaml=yaml, port=port)
        self.assertEqual(self.db.client("SELECT 40 + 2", port=port), "42\n")
        bad = self.db.run_client("SELECT * FROM no_such_table", port=port)
        self.assertIn("1146", bad.stderr)
        p.wait_log(r"script: query seen \[SELECT 40 \+ 2\] ok size>0=true us>0=true")
        p.wait_log(r"script: query seen \[SELECT \* FROM no_such_table\] error size>0=true us>0=true")
        self.assert_proximux_ok(p)


    def test_pipelined_queries_each_get_their_response(self):
        """Two COM_QUERYs sent back to back before any answer: on_response
        is called once for each, with its own request, in order (it got
        the second query's request for the first answer, and nothing for
        the second, before)."""
        from test_mysql_log import RawMySQL
        d = make_tmpdir("pmxluamysqlpipe")
        self.addCleanup(remove_tmpdir, d)
        script = os.path.join(d, "mysql.lua")
        with open(script, "w") as f:
            f.write("""
function on_request(req)
end
function on_response(req, resp)
  proximux.log(1, string.format('pair [%s] %s', req.command, resp.status))
end
""")
        port = free_port()
        yaml = ("services:\n"
                "  - name: mysql\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    local: { max_connections: 10 }\n"
                "    exchange: { mode: proxy, codec: mysql }\n"
                "    pool: { connections: 10 }\n"
                "    script: %s\n"
                "    targets: [ { name: db, host: 127.0.0.1, port: %d } ]\n" % (port, script, self.db.port))
        p = self.start_proximux(yaml=yaml, port=port)
        c = RawMySQL(port, MariaDB.USER, MariaDB.PASSWORD, MariaDB.DB)
        # One write: both commands reach Proximux (and the follower) before
        # the first answer can.
        both = b""
        for sql in (b"SELECT 1 AS first", b"SELECT * FROM no_such_table"):
            both += (len(sql) + 1).to_bytes(3, "little") + b"\0" + b"\x03" + sql
        c.sock.sendall(both)
        first = c.result_sets()
        second = c.result_sets()
        self.assertEqual(len(first[0][0]), 1)
        self.assertEqual(second, [("ERR", 1146)])
        c.quit()
        p.wait_log(r"script: pair \[SELECT \* FROM no_such_table\] error")
        lines = [l for l in p.log().splitlines() if "script: pair" in l]
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("pair [SELECT 1 AS first] ok", lines[0])
        self.assertIn("pair [SELECT * FROM no_such_table] error", lines[1])
        self.assert_proximux_ok(p)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Socks4Test(ProximuxTestCase):
    """The SOCKS4 route hook of config/examples/socks4.lua with curl
    --socks4 to a local HTTP server."""

    def test_socks4_example_with_curl(self):
        d = make_tmpdir("pmxsocks")
        self.addCleanup(remove_tmpdir, d)
        with open(os.path.join(d, "hello.txt"), "w") as f:
            f.write("hello through socks4\n")
        handler = lambda *a, **kw: _Quiet(*a, directory=d, **kw)  # noqa: E731
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        self.addCleanup(httpd.server_close)
        self.addCleanup(httpd.shutdown)
        script = shutil.copy(os.path.join(EXAMPLES, "socks4.lua"), d)
        port = free_port()
        with open(os.path.join(EXAMPLES, "socks4.yaml")) as f:
            yaml = f.read().replace("127.0.0.1:1080", "127.0.0.1:%d" % port) \
                           .replace("script: socks4.lua", "script: %s" % script)
        p = self.start_proximux(yaml=yaml, port=port)
        for _ in range(3):
            r = subprocess.run(["curl", "-sS", "--max-time", str(10 * TIME_FACTOR), "--socks4",
                                "127.0.0.1:%d" % port, "http://127.0.0.1:%d/hello.txt" % httpd.server_port],
                               capture_output=True, timeout=30 * TIME_FACTOR)
            self.assertEqual(r.returncode, 0, r.stderr.decode() + p.log()[-2000:])
            self.assertEqual(r.stdout, b"hello through socks4\n")
        # A request that is not CONNECT is rejected with 0x5b and closed.
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"\x04\x02\x00\x50\x7f\x00\x00\x01\x00")
        self.assertEqual(s.recv(8), b"\x00\x5b\x00\x50\x7f\x00\x00\x01")
        s.close()
        self.assert_proximux_ok(p)
