"""The admin API and the statistics (SPEC section 12): exact counters after a
known number of requests, errors and refused clients; /metrics checked by
promtool when it is installed; the bearer token, JSON errors, oversized
requests; /api/v1/config as -t prints it; targets marked dead and alive,
added at runtime and drained."""

import json
import shutil
import socket
import subprocess
import time

from harness import (ProximuxTestCase, RedisServer, TIME_FACTOR, connect, free_port, resp_encode,
                     run_proximux, Resp)

TOKEN = "s3cret"


def http(port, method, path, body=None, token=TOKEN, raw=None, timeout=10.0):
    """One request on its own connection; returns (status, headers, body)."""
    if raw is None:
        head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
        if token is not None:
            head += "Authorization: Bearer %s\r\n" % token
        data = body.encode() if isinstance(body, str) else (body or b"")
        if body is not None:
            head += "Content-Type: application/json\r\nContent-Length: %d\r\n" % len(data)
        raw = head.encode() + b"\r\n" + data
    with connect(port, timeout=timeout) as s:
        s.sendall(raw)
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            got += b
    head, _, rest = got.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, rest


def get_json(port, path, **kw):
    status, _, body = http(port, "GET", path, **kw)
    if status != 200:
        raise AssertionError("GET %s: %d %r" % (path, status, body))
    return json.loads(body)


def metrics(text):
    """{'name{labels}': value} of a Prometheus text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


class AdminTest(ProximuxTestCase):

    def redis(self):
        r = RedisServer()
        self.addCleanup(r.stop)
        return r

    def start(self, services_yaml, admin_port):
        yaml = ("log_level: 2\n"
                "admin: { listen: \"127.0.0.1:%d\", token: \"%s\" }\n"
                "services:\n" % (admin_port, TOKEN)) + services_yaml
        pmx = self.start_proximux(yaml=yaml, port=admin_port)
        return pmx

    def test_counts_errors_refusals(self):
        """A fifo resp service with max_connections 1 and max_wait 0: one
        client sends 7 commands (5 answered by redis, 2 refused here as
        unsupported); two more clients are refused; a second service with
        no reachable target answers 3 requests busy; a malformed request
        closes its client with an error. Every counter, the
        byte counts both ways and the latency count are exact."""
        r = self.redis()
        aport, p1, p2, dead = free_port(), free_port(), free_port(), free_port()
        pmx = self.start(
            "  - name: cache\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    exchange: { mode: fifo, codec: resp }\n"
            "    local: { max_connections: 1, max_wait: 0 }\n"
            "    pool: { connections: 1 }\n"
            "    targets: [ { name: r1, host: 127.0.0.1, port: %d } ]\n"
            "  - name: nowhere\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    exchange: { mode: funnel, codec: resp }\n"
            "    pool: { connections: 1, warmup: false }\n"
            "    targets: [ { name: gone, host: 127.0.0.1, port: %d } ]\n"
            % (p1, r.port, p2, dead), aport)
        pmx.wait_listening()
        sent = b""
        received = b""
        with connect(p1) as s:
            cmds = [("SET", "k", "v"), ("GET", "k"), ("INCR", "n"), ("INCR", "n"), ("PING",),
                    ("CLIENT", "REPLY", "OFF"), ("CLIENT", "REPLY", "SKIP")]
            to_target = from_target = 0
            for c in cmds:
                data = resp_encode(*c)
                sent += data
                s.sendall(data)
                got = b""
                while not got.endswith(b"\r\n"):
                    got += s.recv(4096)
                received += got
                if c[0] != "CLIENT":
                    to_target += len(data)
                    from_target += len(got)
            self.assertEqual(received.count(b"-ERR"), 2, received)
            # The slot is taken: the next two clients are refused.
            for _ in range(2):
                with connect(p1) as s2:
                    s2.settimeout(5)
                    self.assertEqual(s2.recv(100), b"")
            st = get_json(aport, "/api/v1/stats/cache")
            self.assertEqual(st["clients"]["now"], 1)
            # Bytes of a client still connected are counted.
            self.assertEqual(st["bytes"], {"in": len(sent), "out": len(received)})
        with connect(p2) as s:
            for i in range(3):
                s.sendall(resp_encode("GET", "x%d" % i))
                got = b""
                while not got.endswith(b"\r\n"):
                    got += s.recv(4096)
                self.assertTrue(got.startswith(b"-"), got)

        def wait_gone():
            deadline = time.monotonic() + 5 * TIME_FACTOR
            while get_json(aport, "/api/v1/stats/cache")["clients"]["now"] != 0:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.05)
        wait_gone()
        # A malformed request: an error reply, the client is closed.
        with connect(p1) as s:
            s.sendall(b"*x\r\n")
            sent += b"*x\r\n"
            got = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                got += b
            self.assertTrue(got.startswith(b"-ERR"), got)
            received += got
        wait_gone()
        st = get_json(aport, "/api/v1/stats/cache")
        self.assertEqual(st["name"], "cache")
        self.assertEqual(st["clients"]["total"], 2)
        self.assertEqual(st["clients"]["refused"]["max_connections"], 2)
        self.assertEqual(st["requests"], 8)
        self.assertEqual(st["responses"], {"ok": 5, "client_error": 3, "server_error": 0,
                                           "timeout": 0, "busy": 0, "dropped": 0})
        self.assertEqual(st["bytes"], {"in": len(sent), "out": len(received)})
        self.assertEqual(st["latency_us"]["count"], 8)
        self.assertEqual(sum(b["count"] for b in st["latency_us"]["buckets"]), 8)
        self.assertGreater(st["latency_us"]["p99"], 0)
        self.assertEqual(st["upstream_connections"]["ready"], 1)
        self.assertEqual(st["targets"][0]["name"], "r1")
        self.assertEqual(st["targets"][0]["state"], "up")
        self.assertEqual(st["targets"][0]["connects"], 1)
        # Per target: the 5 requests redis answered, and exactly their bytes
        # (the refused ones never reached it).
        self.assertEqual(st["targets"][0]["requests"], 5)
        self.assertEqual(st["targets"][0]["bytes_sent"], to_target)
        self.assertEqual(st["targets"][0]["bytes_received"], from_target)

        nw = get_json(aport, "/api/v1/stats/nowhere")
        self.assertEqual(nw["requests"], 3)
        self.assertEqual(nw["responses"]["busy"], 3)
        self.assertEqual(nw["responses"]["ok"], 0)

        both = get_json(aport, "/api/v1/stats")
        self.assertEqual([s["name"] for s in both["services"]], ["cache", "nowhere"])

        status, headers, body = http(aport, "GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        text = body.decode()
        m = metrics(text)
        self.assertEqual(m['proximux_requests_total{service="cache"}'], 8)
        self.assertEqual(m['proximux_responses_total{service="cache",status="ok"}'], 5)
        self.assertEqual(m['proximux_responses_total{service="cache",status="client_error"}'], 3)
        self.assertEqual(m['proximux_clients_refused_total{service="cache",reason="max_connections"}'], 2)
        self.assertEqual(m['proximux_responses_total{service="nowhere",status="busy"}'], 3)
        self.assertEqual(m['proximux_request_duration_seconds_count{service="cache"}'], 8)
        self.assertEqual(m['proximux_request_duration_seconds_bucket{service="cache",le="+Inf"}'], 8)
        self.assertEqual(m['proximux_client_received_bytes_total{service="cache"}'], len(sent))
        self.assertEqual(m['proximux_target_up{service="cache",target="r1"}'], 1)
        self.assertEqual(m['proximux_target_requests_total{service="cache",target="r1"}'], 5)
        self.assertEqual(m['proximux_target_bytes_sent_total{service="cache",target="r1"}'], to_target)
        self.assertEqual(m['proximux_target_bytes_received_total{service="cache",target="r1"}'], from_target)
        if shutil.which("promtool"):
            check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                                   timeout=30)
            self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assert_proximux_ok(pmx)

    def test_errors_token_config(self):
        """401 without or with a wrong token, 404, 405 with Allow, 400 for a
        malformed request, 413 for an oversized one; every error a JSON
        object. /api/v1/config is what -t prints; services list targets."""
        r = self.redis()
        aport, p1 = free_port(), free_port()
        services = ("  - name: cache\n"
                    "    listen: [\"127.0.0.1:%d\"]\n"
                    "    exchange: { mode: fifo, codec: resp }\n"
                    "    pool: { connections: 1 }\n"
                    "    targets: [ { name: r1, host: 127.0.0.1, port: %d } ]\n" % (p1, r.port))
        pmx = self.start(services, aport)
        pmx.wait_listening()
        for token, want in ((None, "a bearer token is required"), ("nope", "wrong token")):
            status, headers, body = http(aport, "GET", "/api/v1/services", token=token)
            self.assertEqual(status, 401)
            self.assertEqual(headers["www-authenticate"], "Bearer")
            self.assertEqual(json.loads(body), {"error": want})
        cases = [("GET", "/api/v1/nothing", 404, "no such path"),
                 ("GET", "/api/v1/services/none", 404, 'no service "none"'),
                 ("PUT", "/metrics", 405, "method not allowed; use GET"),
                 ("GET", "/api/v1/reload", 405, "method not allowed; use POST"),
                 ("POST", "/api/v1/services/cache/targets/zz/dead", 404, 'no target "zz"')]
        for method, path, code, msg in cases:
            status, headers, body = http(aport, method, path)
            self.assertEqual((status, json.loads(body)), (code, {"error": msg}), path)
            if code == 405:
                self.assertIn(headers["allow"], ("GET", "POST"))
        status, _, body = http(aport, None, None, raw=b"GET /metrics HTTP/1.1\r\nHost: a b\x01\r\n\r\n")
        self.assertEqual(status, 400)
        self.assertIn("error", json.loads(body))
        big = "x" * (70 * 1024)
        status, _, body = http(aport, "POST", "/api/v1/reload", body=big)
        self.assertEqual(status, 413)
        self.assertEqual(json.loads(body), {"error": "request larger than 65536 bytes"})

        svcs = get_json(aport, "/api/v1/services")["services"]
        self.assertEqual(len(svcs), 1)
        self.assertEqual(svcs[0]["name"], "cache")
        self.assertEqual(svcs[0]["mode"], "fifo")
        self.assertEqual(svcs[0]["codec"], "resp")
        self.assertEqual(svcs[0]["listen"], ["127.0.0.1:%d" % p1])
        self.assertEqual(svcs[0]["targets"][0]["name"], "r1")
        self.assertEqual(svcs[0]["targets"][0]["address"], "127.0.0.1:%d" % r.port)
        self.assertEqual(get_json(aport, "/api/v1/services/cache"), svcs[0])

        status, headers, body = http(aport, "GET", "/api/v1/config")
        self.assertEqual(status, 200)
        code, out, err = run_proximux(args=["-t", "-c", pmx.yaml_path])
        self.assertEqual(code, 0, err)
        self.assertEqual(body.decode() + "configuration OK\n", out)

        status, _, body = http(aport, "POST", "/api/v1/reload", body="")
        self.assertEqual(status, 200)
        self.assertTrue(json.loads(body)["reloaded"])
        pmx.wait_log(r"reloaded configuration")
        self.assert_proximux_ok(pmx)

    def test_admin_listen_invalid(self):
        """An admin.listen that cannot be bound stops the start with one line."""
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        self.addCleanup(taken.close)
        yaml = ("admin: { listen: \"127.0.0.1:%d\" }\n"
                "services:\n"
                "  - name: a\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    targets: [ { host: 127.0.0.1, port: 1 } ]\n"
                "    pool: { connections: 1 }\n" % (taken.getsockname()[1], free_port()))
        code, out, err = run_proximux(yaml=yaml)
        self.assertEqual(code, 2, out + err)
        self.assertIn("admin.listen: \"127.0.0.1:%d\"" % taken.getsockname()[1], out + err)


def which_server(port):
    """The 'who' key each redis-server holds: which one a client reached."""
    with Resp(port) as c:
        return c.command("GET", "who").decode()


class AdminTargetsTest(ProximuxTestCase):

    def redis(self, who):
        r = RedisServer()
        self.addCleanup(r.stop)
        r.cli("SET", "who", who)
        return r

    def test_dead_alive(self):
        """Proxy mode, round robin over two redis-servers: with r1 marked dead
        every new client lands on r2 (a client already on r1 keeps it); once
        marked alive, round robin uses both again."""
        r1, r2 = self.redis("r1"), self.redis("r2")
        aport, p = free_port(), free_port()
        yaml = ("admin: { listen: \"127.0.0.1:%d\", token: \"%s\" }\n"
                "services:\n"
                "  - name: px\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8, warmup: false }\n"
                "    targets: [ { name: r1, host: 127.0.0.1, port: %d },\n"
                "               { name: r2, host: 127.0.0.1, port: %d } ]\n"
                % (aport, TOKEN, p, r1.port, r2.port))
        pmx = self.start_proximux(yaml=yaml, port=p)
        self.assertEqual(sorted(which_server(p) for _ in range(4)), ["r1", "r1", "r2", "r2"])
        held = Resp(p)
        self.addCleanup(held.close)
        while held.command("GET", "who") != b"r1":
            held.close()
            held = Resp(p)
        status, _, body = http(aport, "POST", "/api/v1/services/px/targets/r1/dead", body="")
        self.assertEqual((status, json.loads(body)), (200, {"target": "r1", "state": "maint"}))
        self.assertEqual([which_server(p) for _ in range(6)], ["r2"] * 6)
        self.assertEqual(held.command("GET", "who"), b"r1")
        st = get_json(aport, "/api/v1/stats/px")
        self.assertEqual([t["state"] for t in st["targets"]], ["maint", "up"])
        status, _, body = http(aport, "POST", "/api/v1/services/px/targets/r1/alive", body="")
        self.assertEqual((status, json.loads(body)), (200, {"target": "r1", "state": "up"}))
        self.assertEqual(sorted(which_server(p) for _ in range(4)), ["r1", "r1", "r2", "r2"])
        held.close()
        self.assert_proximux_ok(pmx)

    def proxy(self, aport, p, targets, warmup=False):
        yaml = ("log_level: 2\n"
                "admin: { listen: \"127.0.0.1:%d\", token: \"%s\" }\n"
                "services:\n"
                "  - name: px\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8, warmup: %s }\n"
                "    targets: [ %s ]\n"
                % (aport, TOKEN, p, "true" if warmup else "false",
                   ", ".join("{ name: %s, host: 127.0.0.1, port: %d }" % t for t in targets)))
        return self.start_proximux(yaml=yaml, port=p)

    def target_names(self, aport):
        return [(t["name"], t["draining"])
                for t in get_json(aport, "/api/v1/services/px")["targets"]]

    def test_add_target(self):
        """A target added at runtime takes its share of new clients at once,
        is listed, and is gone after a reload (the file has one target)."""
        r1, r2 = self.redis("r1"), self.redis("r2")
        aport, p = free_port(), free_port()
        pmx = self.proxy(aport, p, [("r1", r1.port)])
        self.assertEqual([which_server(p) for _ in range(3)], ["r1"] * 3)
        status, _, body = http(aport, "POST", "/api/v1/services/px/targets",
                               body=json.dumps({"name": "r2", "host": "127.0.0.1", "port": r2.port}))
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body), {"target": "r2", "address": "127.0.0.1:%d" % r2.port,
                                            "state": "up"})
        self.assertEqual(sorted(which_server(p) for _ in range(4)), ["r1", "r1", "r2", "r2"])
        self.assertEqual(self.target_names(aport), [("r1", False), ("r2", False)])
        st = get_json(aport, "/api/v1/stats/px")
        self.assertEqual(st["targets"][1]["connects"], 2)
        # Proxy mode: the target's bytes are the two clients' GET who and
        # the replies ($2\r\nr2\r\n), exactly.
        get_who = len(b"*2\r\n$3\r\nGET\r\n$3\r\nwho\r\n")
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while st["targets"][1]["bytes_sent"] != 2 * get_who and time.monotonic() < deadline:
            time.sleep(0.05)
            st = get_json(aport, "/api/v1/stats/px")
        self.assertEqual(st["targets"][1]["bytes_sent"], 2 * get_who)
        self.assertEqual(st["targets"][1]["bytes_received"], 2 * len(b"$2\r\nr2\r\n"))
        status, _, body = http(aport, "POST", "/api/v1/services/px/targets",
                               body=json.dumps({"name": "r2", "host": "127.0.0.1", "port": 1}))
        self.assertEqual((status, json.loads(body)), (409, {"error": 'a target named "r2" exists already'}))
        status, _, body = http(aport, "POST", "/api/v1/services/px/targets", body='{"host": "127.0.0.1"')
        self.assertEqual(status, 400)
        self.assertIn("error", json.loads(body))
        pmx.send_signal(1)  # SIGHUP
        pmx.wait_log(r"reloaded configuration")
        self.assertEqual(self.target_names(aport), [("r1", False)])
        self.assertEqual([which_server(p) for _ in range(3)], ["r1"] * 3)
        self.assert_proximux_ok(pmx)

    def test_drain_target(self):
        """DELETE drains: a client connected to r1 keeps working, no new
        client lands on r1, and r1 leaves the list once that client has
        gone. With warm spares on, the spare held on r1 is moved too."""
        r1, r2 = self.redis("r1"), self.redis("r2")
        aport, p = free_port(), free_port()
        pmx = self.proxy(aport, p, [("r1", r1.port), ("r2", r2.port)], warmup=True)
        held = Resp(p)
        self.addCleanup(held.close)
        while held.command("GET", "who") != b"r1":
            held.close()
            held = Resp(p)
        status, _, body = http(aport, "DELETE", "/api/v1/services/px/targets/r1")
        self.assertEqual(status, 202, body)
        reply = json.loads(body)
        self.assertEqual((reply["target"], reply["draining"], reply["removed"]), ("r1", True, False))
        self.assertEqual(self.target_names(aport), [("r1", True), ("r2", False)])
        self.assertEqual([which_server(p) for _ in range(6)], ["r2"] * 6)
        for i in range(5):
            self.assertEqual(held.command("INCR", "n"), i + 1)
        self.assertEqual(held.command("GET", "who"), b"r1")
        st = get_json(aport, "/api/v1/stats/px")
        self.assertEqual(st["targets"][0]["draining"], True)
        self.assertEqual(st["targets"][0]["state"], "up")
        m = metrics(http(aport, "GET", "/metrics")[2].decode())
        self.assertEqual(m['proximux_target_up{service="px",target="r1"}'], 0)
        held.close()
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while self.target_names(aport) != [("r2", False)]:
            self.assertLess(time.monotonic(), deadline, self.target_names(aport))
            time.sleep(0.05)
        pmx.wait_log(r"target r1 \(127.0.0.1:%d\) drained and removed" % r1.port)
        self.assertEqual([which_server(p) for _ in range(3)], ["r2"] * 3)
        status, _, body = http(aport, "DELETE", "/api/v1/services/px/targets/r2")
        self.assertEqual((status, json.loads(body)),
                         (409, {"error": "the last target of a service cannot be removed"}))
        self.assert_proximux_ok(pmx)

    def test_drain_target_funnel(self):
        """Funnel mode, two pool connections over r1 and r2: draining r1
        moves its pool connection to r2 once idle; a client connected all
        along keeps being served, and r1 leaves the list."""
        r1, r2 = self.redis("r1"), self.redis("r2")
        aport, p = free_port(), free_port()
        yaml = ("log_level: 2\n"
                "admin: { listen: \"127.0.0.1:%d\", token: \"%s\" }\n"
                "services:\n"
                "  - name: fn\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: funnel, codec: resp }\n"
                "    pool: { connections: 2, warmup: true }\n"
                "    targets: [ { name: r1, host: 127.0.0.1, port: %d },\n"
                "               { name: r2, host: 127.0.0.1, port: %d } ]\n"
                % (aport, TOKEN, p, r1.port, r2.port))
        pmx = self.start_proximux(yaml=yaml, port=p)
        c = Resp(p)
        self.addCleanup(c.close)
        self.assertEqual(c.command("PING"), "PONG")
        st = get_json(aport, "/api/v1/stats/fn")
        self.assertEqual([t["connections"] for t in st["targets"]], [1, 1])
        status, _, body = http(aport, "DELETE", "/api/v1/services/fn/targets/r1")
        self.assertEqual(status, 202, body)
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while [t["name"] for t in get_json(aport, "/api/v1/services/fn")["targets"]] != ["r2"]:
            self.assertLess(time.monotonic(), deadline)
            self.assertEqual(c.command("PING"), "PONG")
            time.sleep(0.05)
        for _ in range(10):
            self.assertEqual(c.command("GET", "who"), b"r2")
        st = get_json(aport, "/api/v1/stats/fn")
        self.assertEqual(st["targets"][0]["connections"], 2)
        self.assertEqual(st["responses"]["ok"], st["requests"])
        c.close()
        self.assert_proximux_ok(pmx)
