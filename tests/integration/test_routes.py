"""Routing on the first bytes (SPEC §10), the session side: a proxy service
with routes buffers each client's first bytes until a route decides, then
replays them (or `data`) to the target it names (a target of the service,
or HOST:PORT built from captures) after sending `reply`; `close` sends its
bytes and closes; route_max_bytes, route_timeout and route_default; per
route connect_timeout and inactivity_timeout raising the events
connect_error and inactivity (level 1 log lines). Real clients where the
protocol has one: openssl s_client for SNI, curl for Host, git ls-remote
against real git daemons for config/examples/git-router.yaml. Backends are
scripted echo servers answering `<name>:<data>` to every read."""

import http.server
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

from harness import (TIME_FACTOR, ProximuxTestCase, ScriptedUpstream, connect, free_port, make_tmpdir, recv_until_eof,
                     remove_tmpdir)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class Echo(ScriptedUpstream):
    """A scripted backend: answers name + b":" + data to every read of each
    connection; with silent, accepts and never sends a byte. Records what
    each connection received (all of it, once it ends)."""

    def __init__(self, name, silent=False, tls=None):
        self.name = name.encode()
        self.silent = silent
        self.tls = tls
        self.got = []
        super().__init__()

    def _one(self, c):
        seen = b""
        try:
            c.settimeout(30)
            if self.tls is not None:
                c = self.tls.wrap_socket(c, server_side=True)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                seen += b
                if not self.silent:
                    c.sendall(self.name + b":" + b)
                    if self.tls is not None:
                        break       # one answer, then close: s_client exits
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()
            with self.lock:
                self.got.append(seen)


def read_for(s, want, timeout=5.0):
    """Reads from s until want is in what came, the peer closes, or timeout."""
    s.settimeout(timeout * TIME_FACTOR)
    got = b""
    deadline = time.monotonic() + timeout * TIME_FACTOR
    while want not in got and time.monotonic() < deadline:
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        got += b
    return got


class RoutesBase(ProximuxTestCase):
    def echo(self, name, **kw):
        e = Echo(name, **kw)
        self.addCleanup(e.close)
        return e

    def start(self, targets, routes, extra="", pool="{ connections: 8 }"):
        port = free_port()
        tl = "".join("  - { name: %s, host: 127.0.0.1, port: %d }\n" % (n, p) for n, p in targets)
        yaml = ("log_level: 2\n"
                "local: { host: 127.0.0.1, port: %d }\n"
                "exchange: { mode: proxy }\npool: %s\n"
                "targets:\n%s"
                "routes:\n%s%s" % (port, pool, tl, routes, extra))
        return self.start_proximux(yaml=yaml, port=port)


class TestRoutedSessions(RoutesBase):
    def setUp(self):
        self.a = self.echo("a")
        self.b = self.echo("b")
        self.targets = [("a", self.a.port), ("b", self.b.port)]

    def test_content_to_two_backends(self):
        p = self.start(self.targets,
                       "  - { prefix: 'GET /a', target: a }\n"
                       "  - { match: '^GET /(b|c)', target: b }\n"
                       "route_default: close\n")
        for req, want in ((b"GET /a/x\n", b"a:GET /a/x\n"), (b"GET /b/y\n", b"b:GET /b/y\n"),
                          (b"GET /c\x00z\n", b"b:GET /c\x00z\n")):
            with connect(p.port) as s:
                s.sendall(req)
                self.assertEqual(read_for(s, want), want)
                # An ordinary proxy session after the decision.
                s.sendall(b"more\n")
                self.assertEqual(read_for(s, b"more\n"), want[:2] + b"more\n")
        self.assertEqual(self.a.accepted, 1)
        self.assertEqual(self.b.accepted, 2)
        self.assert_proximux_ok(p)

    def test_data_rewrite_with_capture(self):
        p = self.start(self.targets,
                       "  - match: '^HELLO ([a-z]+)\\n'\n"
                       "    target: a\n"
                       "    data: \"hi $1!\\n\"\n")
        with connect(p.port) as s:
            s.sendall(b"HELLO bob\n")
            self.assertEqual(read_for(s, b"!\n"), b"a:hi bob!\n")
        self.assert_proximux_ok(p)

    def test_reply_then_proxy(self):
        p = self.start(self.targets,
                       "  - prefix: 'CONNECT'\n"
                       "    target: b\n"
                       "    reply: \"200 OK\\r\\n\"\n"
                       "    data: ''\n")
        with connect(p.port) as s:
            s.sendall(b"CONNECT x\n")
            self.assertEqual(read_for(s, b"200 OK\r\n"), b"200 OK\r\n")
            s.sendall(b"payload")
            self.assertEqual(read_for(s, b"payload"), b"b:payload")
        self.assert_proximux_ok(p)

    def test_close_with_bytes(self):
        p = self.start(self.targets,
                       "  - prefix: 'PING'\n"
                       "    close: \"+PONG\\r\\n\"\n")
        with connect(p.port) as s:
            s.sendall(b"PING\r\n")
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"+PONG\r\n")
        self.assertEqual(self.a.accepted + self.b.accepted, 0)
        p.wait_log(r"route decided close")
        self.assert_proximux_ok(p)

    def test_match_after_three_writes(self):
        p = self.start(self.targets,
                       "  - { match: '^one two three\\n', target: b }\n"
                       "  - { prefix: 'x', target: a }\n")
        with connect(p.port) as s:
            for part in (b"one ", b"two ", b"three\n"):
                s.sendall(part)
                time.sleep(0.15)
            got = read_for(s, b"three\n")
        self.assertEqual(got, b"b:one two three\n")
        # The three writes reached the target as one replay.
        self.assertEqual(self.b.accepted, 1)
        self.assert_proximux_ok(p)

    def test_route_max_bytes_closes_unknown(self):
        p = self.start(self.targets,
                       "  - { match: '^[a-z]+\\n', target: a }\n",
                       "route_max_bytes: 64\nroute_default: close\n")
        with connect(p.port) as s:
            s.sendall(b"x" * 64)
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"")
        p.wait_log(r"route: route_max_bytes reached, route_default close")
        self.assertEqual(self.a.accepted, 0)
        self.assert_proximux_ok(p)

    def test_no_match_closes_at_once(self):
        p = self.start(self.targets, "  - { prefix: 'GET ', target: a }\n")
        with connect(p.port) as s:
            s.sendall(b"POST /")
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"")
        p.wait_log(r"route: no route matches, route_default close")
        self.assert_proximux_ok(p)

    def test_route_timeout(self):
        p = self.start(self.targets, "  - { prefix: 'GET ', target: a }\n", "route_timeout: 300\n")
        with connect(p.port) as s:
            s.sendall(b"GE")
            t0 = time.monotonic()
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"")
            took = time.monotonic() - t0
        self.assertGreaterEqual(took, 0.25)
        self.assertLess(took, 3 * TIME_FACTOR)
        p.wait_log(r"route: route_timeout reached, route_default close")
        self.assert_proximux_ok(p)

    def test_route_default_to_target(self):
        p = self.start(self.targets, "  - { prefix: 'A', target: a }\n",
                       "route_timeout: 300\nroute_default: b\n")
        with connect(p.port) as s:
            s.sendall(b"zzz")
            self.assertEqual(read_for(s, b"zzz"), b"b:zzz")
        # No byte at all: route_timeout, then route_default.
        with connect(p.port) as s:
            time.sleep(0.5)
            s.sendall(b"late")
            self.assertEqual(read_for(s, b"late"), b"b:late")
        self.assert_proximux_ok(p)

    def test_host_port_from_capture(self):
        p = self.start(self.targets,
                       "  - match: '^TO ([0-9]+)\\n'\n"
                       "    target: '127.0.0.1:$1'\n")
        with connect(p.port) as s:
            s.sendall(b"TO %d\nhello" % self.b.port)
            self.assertEqual(read_for(s, b"hello"), b"b:TO %d\nhello" % self.b.port)
        self.assert_proximux_ok(p)

    def test_connect_refused_event(self):
        dead = free_port()
        p = self.start(self.targets + [("dead", dead)],
                       "  - { prefix: 'N', target: dead }\n"
                       "  - { match: '^P([0-9]+)', target: '127.0.0.1:$1' }\n")
        for req, target in ((b"N", "dead"), (b"P%d" % dead, "127.0.0.1:%d" % dead)):
            with connect(p.port) as s:
                s.sendall(req)
                s.settimeout(5 * TIME_FACTOR)
                self.assertEqual(recv_until_eof(s), b"")
            p.wait_log(r"ERROR service default: event connect_error target %s: connect: Connection refused"
                       % target.replace(".", r"\."))
        self.assert_proximux_ok(p)

    def test_connect_timeout_event(self):
        # A listener whose accept queue is full and never accepted: the
        # kernel drops further SYNs, so a connect to it never completes.
        full = socket.socket()
        self.addCleanup(full.close)
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        fillers = []
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(full.getsockname())
            fillers.append(f)
            self.addCleanup(f.close)
        time.sleep(0.2)
        p = self.start(self.targets,
                       "  - { prefix: 'X', target: '127.0.0.1:%d', connect_timeout: 300 }\n"
                       % full.getsockname()[1])
        with connect(p.port) as s:
            s.sendall(b"X")
            t0 = time.monotonic()
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"")
            self.assertLess(time.monotonic() - t0, 3 * TIME_FACTOR)
        p.wait_log(r"ERROR service default: event connect_error target 127\.0\.0\.1:%d: connect timeout"
                   % full.getsockname()[1])
        self.assert_proximux_ok(p)

    def test_inactivity_event(self):
        silent = self.echo("s", silent=True)
        p = self.start(self.targets + [("silent", silent.port)],
                       "  - { prefix: 'S', target: silent, inactivity_timeout: 300 }\n"
                       "  - { prefix: 'A', target: a, inactivity_timeout: 300 }\n")
        with connect(p.port) as s:
            s.sendall(b"S")
            t0 = time.monotonic()
            s.settimeout(5 * TIME_FACTOR)
            self.assertEqual(recv_until_eof(s), b"")
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
        p.wait_log(r"ERROR service default: event inactivity target silent: no byte from the target "
                   r"within inactivity_timeout \(300 ms\)")
        # A target that answers in time keeps its session past the timeout.
        with connect(p.port) as s:
            s.sendall(b"A1")
            self.assertEqual(read_for(s, b"a:A1"), b"a:A1")
            time.sleep(0.5)
            s.sendall(b"2")
            self.assertEqual(read_for(s, b"a:2"), b"a:2")
        self.assertEqual(p.log().count("event inactivity"), 1)
        self.assert_proximux_ok(p)

    def test_send_proxy_before_replay(self):
        p = self.start(self.targets, "  - { prefix: 'Q', target: a }\n", "send_proxy: v1\n")
        with connect(p.port) as s:
            s.sendall(b"Q?")
            got = read_for(s, b"Q?")
        self.assertTrue(got.startswith(b"a:PROXY TCP4 127.0.0.1 127.0.0.1 "), got)
        self.assertTrue(got.endswith(b"\r\nQ?"), got)
        self.assert_proximux_ok(p)

    def test_reload_replaces_routes(self):
        p = self.start(self.targets, "  - { prefix: 'R', target: a }\n")
        with connect(p.port) as s:
            s.sendall(b"R1")
            self.assertEqual(read_for(s, b"R1"), b"a:R1")
            with open(p.yaml_path) as f:
                text = f.read()
            p.write_yaml(text.replace("target: a }", "target: b }"))
            p.send_signal(signal.SIGHUP)
            p.wait_log(r"reloaded configuration")
            # A decided session keeps its target.
            s.sendall(b"2")
            self.assertEqual(read_for(s, b"2"), b"a:2")
        with connect(p.port) as s:
            s.sendall(b"R3")
            self.assertEqual(read_for(s, b"R3"), b"b:R3")
        self.assert_proximux_ok(p)

    def test_warmup_opens_no_spares(self):
        p = self.start(self.targets, "  - { prefix: 'A', target: a }\n",
                       pool="{ connections: 4, warmup: true }")
        time.sleep(0.3)
        self.assertEqual(self.a.accepted + self.b.accepted, 0)
        with connect(p.port) as s:
            s.sendall(b"A!")
            self.assertEqual(read_for(s, b"A!"), b"a:A!")
        self.assertEqual((self.a.accepted, self.b.accepted), (1, 0))
        self.assert_proximux_ok(p)

    def test_refusal_counted(self):
        admin = free_port()
        p = self.start(self.targets, "  - { prefix: 'A', target: a }\n",
                       "admin: { listen: '127.0.0.1:%d' }\n" % admin)
        for _ in range(3):
            with connect(p.port) as s:
                s.sendall(b"B")
                s.settimeout(5 * TIME_FACTOR)
                recv_until_eof(s)
        out = subprocess.run(["curl", "-s", "http://127.0.0.1:%d/metrics" % admin],
                             capture_output=True, timeout=10).stdout.decode()
        self.assertIn('reason="route"} 3', out)
        self.assert_proximux_ok(p)


class TestSniAndHost(RoutesBase):
    @classmethod
    def setUpClass(cls):
        cls.dir = make_tmpdir("pmxtls")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=test", "-keyout", cls.key, "-out", cls.cert],
                       check=True, capture_output=True, timeout=60)

    @classmethod
    def tearDownClass(cls):
        remove_tmpdir(cls.dir)

    def test_sni_with_openssl_client(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        a = self.echo("a", tls=ctx)
        b = self.echo("b", tls=ctx)
        p = self.start([("a", a.port), ("b", b.port)],
                       "  - { sni: 'a.example.com', target: a }\n"
                       "  - { sni: '*.example.org', target: b }\n")
        for name, want in (("a.example.com", b"a:hello"), ("www.example.org", b"b:hello")):
            r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % p.port,
                                "-servername", name, "-quiet", "-ign_eof"],
                               input=b"hello\n", capture_output=True, timeout=20 * TIME_FACTOR)
            self.assertIn(want, r.stdout, r.stderr)
        self.assertEqual((a.accepted, b.accepted), (1, 1))
        self.assert_proximux_ok(p)

    def test_host_with_curl(self):
        servers = []
        for name in ("api", "web"):
            class Handler(http.server.BaseHTTPRequestHandler):
                body = name.encode()

                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(self.body)))
                    self.end_headers()
                    self.wfile.write(self.body)

                def log_message(self, *a):
                    pass
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.addCleanup(srv.server_close)
            self.addCleanup(srv.shutdown)
            servers.append(srv)
        p = self.start([("api", servers[0].server_address[1]), ("web", servers[1].server_address[1])],
                       "  - { http_host: 'api.example.com', target: api }\n"
                       "  - { http_host: '*.example.com', target: web }\n")
        for host, want in (("api.example.com", "api"), ("www.example.com", "web")):
            r = subprocess.run(["curl", "-s", "-H", "Host: " + host, "http://127.0.0.1:%d/" % p.port],
                               capture_output=True, timeout=20 * TIME_FACTOR)
            self.assertEqual(r.stdout.decode(), want)
        self.assert_proximux_ok(p)


class TestGitRouterExample(RoutesBase):
    """config/examples/git-router.yaml with its ports replaced, in front of
    two real git daemons, one per owner; git ls-remote as the client."""

    def test_git_router(self):
        if subprocess.run(["which", "git"], capture_output=True).returncode != 0:
            self.skipTest("git not installed")
        with open(os.path.join(ROOT, "config", "examples", "git-router.yaml")) as f:
            text = f.read()
        with open(os.path.join(ROOT, "README.md")) as f:
            self.assertIn("```yaml\n" + text + "```", f.read(), "README shows the example as it is")
        d = make_tmpdir("pmxgit")
        self.addCleanup(remove_tmpdir, d)
        ports = {}
        for owner in ("alice", "bob"):
            base = os.path.join(d, owner)
            repo = os.path.join(base, owner, "project.git")
            work = os.path.join(d, "work-" + owner)
            env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
                       GIT_COMMITTER_EMAIL="t@t", HOME=d)
            subprocess.run(["git", "init", "-q", "--bare", repo], check=True, env=env)
            subprocess.run(["git", "init", "-q", "-b", owner, work], check=True, env=env)
            subprocess.run(["git", "-C", work, "commit", "-q", "--allow-empty", "-m", owner], check=True,
                           env=env)
            subprocess.run(["git", "-C", work, "push", "-q", repo, owner], check=True, env=env)
            port = free_port()
            ports[owner] = port
            gd = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--base-path=" + base,
                                   "--listen=127.0.0.1", "--port=%d" % port, base],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            self.addCleanup(gd.wait)
            self.addCleanup(gd.kill)
        for owner in ("alice", "bob"):
            deadline = time.monotonic() + 10 * TIME_FACTOR
            while True:
                try:
                    socket.create_connection(("127.0.0.1", ports[owner]), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        port = free_port()
        for old, new in (("port: 9418", "port: %d" % port), ("port: 19418", "port: %d" % ports["alice"]),
                         ("port: 29418", "port: %d" % ports["bob"])):
            self.assertEqual(text.count(old), 1, old)
            text = text.replace(old, new)
        p = self.start_proximux(yaml=text, port=port)
        for owner in ("alice", "bob"):
            r = subprocess.run(["git", "ls-remote", "git://127.0.0.1:%d/%s/project.git" % (port, owner)],
                               capture_output=True, timeout=30 * TIME_FACTOR)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"refs/heads/" + owner.encode(), r.stdout)
        # An owner with no target: route_default close, git fails.
        r = subprocess.run(["git", "ls-remote", "git://127.0.0.1:%d/carol/project.git" % port],
                           capture_output=True, timeout=30 * TIME_FACTOR)
        self.assertNotEqual(r.returncode, 0)
        p.wait_log(r"event connect_error target carol: neither a target name of the service nor HOST:PORT")
        self.assert_proximux_ok(p)
