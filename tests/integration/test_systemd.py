"""systemd integration: the sd_notify datagrams (READY, RELOADING with
MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG) received on a datagram socket
the test passes as $NOTIFY_SOCKET; socket activation through
systemd-socket-activate (a fifo service in front of redis-server on an
inherited TCP socket matched by address, a proxy service on sockets matched
by LISTEN_FDNAMES, a unix socket; unmatched sockets closed); `make install
DESTDIR=...` and the man page rendered by `man -l`."""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import harness
from harness import (TIME_FACTOR, Proximux, ProximuxTestCase, Resp, RedisServer, _make_env,
                     echo_roundtrip, free_port, make_tmpdir, popen, proxy_env, remove_tmpdir)
from peers.upstreams import Echo

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


class NotifySocket:
    """A unix datagram socket standing in for systemd's notify socket: a
    path in a temporary directory, or an abstract name."""

    def __init__(self, abstract=False):
        self.dir = make_tmpdir("notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "pmx-it-notify-%d-%d" % (os.getpid(), id(self))
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = os.path.join(self.dir, "notify")
            self.sock.bind(self.address)
        self.seen = []

    def next(self, timeout=5.0):
        """The next datagram as a dict of its KEY=VALUE lines."""
        self.sock.settimeout(timeout * TIME_FACTOR)
        data = self.sock.recv(4096).decode()
        self.seen.append(data)
        return dict(line.split("=", 1) for line in data.split("\n"))

    def wait_for(self, key, timeout=5.0, skip=("WATCHDOG", "STATUS")):
        """The next datagram with key, skipping keep-alives and status
        updates; any other datagram first is a failure."""
        deadline = time.monotonic() + timeout * TIME_FACTOR
        while True:
            msg = self.next(max(0.01, deadline - time.monotonic()) / TIME_FACTOR)
            if key in msg:
                return msg
            if not all(k in skip for k in msg):
                raise AssertionError("expected %s, got %r (seen %r)" % (key, msg, self.seen))

    def close(self):
        self.sock.close()
        remove_tmpdir(self.dir)


class NotifyTest(ProximuxTestCase):

    def setUp(self):
        self.echo = Echo()
        self.addCleanup(self.echo.stop)
        self.port = free_port()

    def notify_socket(self, abstract=False):
        n = NotifySocket(abstract)
        self.addCleanup(n.close)
        return n

    def yaml(self, warmup="false"):
        return ("log_level: 2\n"
                "local: { host: 127.0.0.1, port: %d }\n"
                "exchange: { mode: proxy }\n"
                "pool: { connections: 2, warmup: %s }\n"
                "targets: [ { host: 127.0.0.1, port: %d } ]\n" % (self.port, warmup, self.echo.port))

    def test_ready_reloading_stopping(self):
        n = self.notify_socket()
        pmx = self.start_proximux(env={"NOTIFY_SOCKET": n.address}, yaml=self.yaml("true"), listen=False)
        ready = n.wait_for("READY")
        self.assertEqual(ready, {"READY": "1", "STATUS": "1 service, 0 clients"})
        # READY=1 comes once the listener accepts: served at once.
        self.assertEqual(echo_roundtrip(self.port, b"first\n"), b"first\n")

        # STATUS= follows the clients (the janitor sends it when it changes).
        c = socket.create_connection(("127.0.0.1", self.port))
        self.addCleanup(c.close)
        self.assertEqual(echo_roundtrip(c, b"x\n"), b"x\n")
        self.assertEqual(n.wait_for("STATUS", skip=("WATCHDOG",))["STATUS"], "1 service, 1 client")

        # A reload: RELOADING=1 with the monotonic clock, then READY=1.
        pmx.send_signal(signal.SIGHUP)
        msg = n.wait_for("RELOADING")
        self.assertEqual(msg["RELOADING"], "1")
        usec = int(msg["MONOTONIC_USEC"])
        self.assertLess(abs(usec / 1e6 - time.monotonic()), 5 * TIME_FACTOR)
        self.assertEqual(n.wait_for("READY")["READY"], "1")
        pmx.wait_log("reloaded configuration")

        # A refused reload ends with READY=1 too: the old configuration serves.
        pmx.write_yaml("local: { port: nonsense }\n")
        pmx.send_signal(signal.SIGHUP)
        self.assertIn("MONOTONIC_USEC", n.wait_for("RELOADING"))
        self.assertEqual(n.wait_for("READY")["READY"], "1")
        pmx.wait_log("keeping the running configuration")
        self.assertEqual(echo_roundtrip(c, b"still\n"), b"still\n")

        c.close()
        pmx.send_signal(signal.SIGTERM)
        self.assertEqual(n.wait_for("STOPPING", skip=("WATCHDOG", "STATUS")), {"STOPPING": "1"})
        self.assertEqual(pmx.stop(), 0)
        self.assertEqual(sum("READY=1" in d for d in n.seen), 3, n.seen)
        self.assertEqual(sum("STOPPING=1" in d for d in n.seen), 1, n.seen)

    def test_ready_waits_for_warmup(self):
        # The target is down at start: warmup cannot finish, so no READY=1
        # (systemd would hold back the units ordered after Proximux).
        self.echo.stop()
        n = self.notify_socket()
        target = self.echo.port
        pmx = self.start_proximux(env={"NOTIFY_SOCKET": n.address}, yaml=self.yaml("true"), listen=False)
        pmx.wait_log("connect to .* failed")
        # Nor does a reload before start-up finished say READY=1 (or RELOADING=1).
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log("reloaded configuration")
        with self.assertRaises(socket.timeout):
            n.wait_for("READY", timeout=0.5)
        echo = Echo(port=target)
        self.addCleanup(echo.stop)
        self.assertEqual(n.wait_for("READY", timeout=10), {"READY": "1", "STATUS": "1 service, 0 clients"})
        pmx.wait_log("accepting clients", timeout=0.1)
        self.assertEqual(echo_roundtrip(self.port, b"warm\n"), b"warm\n")
        self.assertEqual(pmx.stop(), 0)

    def test_sigquit_stopping_abstract_socket(self):
        n = self.notify_socket(abstract=True)
        pmx = self.start_proximux(env=proxy_env(self.port, [self.echo.address], clients=4,
                                                NOTIFY_SOCKET=n.address))
        self.assertEqual(n.wait_for("READY")["READY"], "1")
        pmx.send_signal(signal.SIGQUIT)
        self.assertEqual(n.wait_for("STOPPING")["STOPPING"], "1")
        self.assertEqual(pmx.stop(), 0)

    def test_watchdog(self):
        n = self.notify_socket()
        # Every WATCHDOG_USEC/2: 100 ms here; WATCHDOG_PID unset means this process.
        pmx = self.start_proximux(env=proxy_env(self.port, [self.echo.address], clients=4,
                                                NOTIFY_SOCKET=n.address, WATCHDOG_USEC=200000))
        t0 = time.monotonic()
        count = 0
        while time.monotonic() - t0 < 1.0:
            if "WATCHDOG" in n.next():
                count += 1
        # About 10 in 1 s; the bound only tells "repeating" from "once".
        self.assertGreaterEqual(count, 4)
        self.assertLessEqual(count, 14)
        self.assertEqual(pmx.stop(), 0)

    def test_watchdog_for_another_pid(self):
        n = self.notify_socket()
        pmx = self.start_proximux(env=proxy_env(self.port, [self.echo.address], clients=4,
                                                NOTIFY_SOCKET=n.address, WATCHDOG_USEC=100000,
                                                WATCHDOG_PID=1))
        n.wait_for("READY", skip=())
        time.sleep(0.3)
        pmx.send_signal(signal.SIGTERM)
        n.wait_for("STOPPING", skip=("STATUS",))
        self.assertEqual(pmx.stop(), 0)
        self.assertFalse(any("WATCHDOG" in d for d in n.seen), n.seen)

    def test_without_notify_socket(self):
        pmx = self.start_proximux(env=proxy_env(self.port, [self.echo.address], clients=4))
        self.assertEqual(echo_roundtrip(self.port), b"ping\n")
        self.assertEqual(pmx.stop(), 0)
        self.assertNotIn("notify", pmx.log().lower())


class Activated(Proximux):
    """Proximux started by systemd-socket-activate, which binds the
    sockets, waits for the first connection and then execs proximux with
    LISTEN_FDS (same pid)."""

    def __init__(self, listen, yaml, fdnames=None, port=None, env=None):
        if not harness.BIN or not os.access(harness.BIN, os.X_OK):
            raise harness.unittest.SkipTest("PROXIMUX_BIN not set or not executable")
        self.dir = make_tmpdir("pmx")
        self.env = _make_env(env)
        self.port = port or 0
        self.yaml_path = os.path.join(self.dir, "proximux.yaml")
        self.write_yaml(yaml)
        argv = ["systemd-socket-activate"]
        for addr in listen:
            argv += ["-l", addr]
        if fdnames:
            argv += ["--fdname=" + fdnames]
        for name in self.env:
            argv += ["-E", name]        # it passes only these to the child
        argv += [harness.BIN, "-c", self.yaml_path]
        self.log_path = os.path.join(self.dir, "proximux.log")
        self._logf = open(self.log_path, "wb")
        self.proc = popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                          stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.dir)
        self.returncode = None
        harness._started.append(self)


class SocketActivationTest(ProximuxTestCase):

    def setUp(self):
        if shutil.which("systemd-socket-activate") is None:
            self.skipTest("systemd-socket-activate not installed (Debian: apt-get install systemd)")

    def activate(self, listen, yaml, fdnames=None, port=None):
        p = Activated(listen, yaml, fdnames=fdnames, port=port)
        self.addCleanup(p.cleanup)
        if port:
            p.wait_listening()      # systemd-socket-activate's socket, before the exec
        return p

    def test_fifo_on_inherited_tcp_socket(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n" % (port, redis.port))
        pmx = self.activate(["127.0.0.1:%d" % port], yaml, port=port)
        # This client's connect starts Proximux; it waits in the backlog of
        # the inherited socket and is served once Proximux accepts.
        with Resp(port) as r:
            self.assertEqual(r.command("SET", "activated", "yes"), "OK")
            self.assertEqual(r.command("GET", "activated"), b"yes")
        pmx.wait_log(r"service cache: listener 127\.0\.0\.1:%d uses inherited socket fd 3 \(same address\)" % port)
        with Resp(port) as r:
            self.assertEqual(r.command("PING"), "PONG")
        self.assertEqual(redis.cli("GET", "activated").strip(), "yes")
        self.assertNotIn("ERROR", pmx.log())
        self.assertEqual(pmx.stop(), 0)

    def test_proxy_by_fdname_unix_and_unused(self):
        echo = Echo()
        self.addCleanup(echo.stop)
        port, other, unused = free_port(), free_port(), free_port()
        d = make_tmpdir("act")
        self.addCleanup(remove_tmpdir, d)
        path = os.path.join(d, "front.sock")
        # Service "front" listens on 127.0.0.1:other (nobody binds it) and
        # on a unix path; systemd passes a socket named "front" on another
        # port, the unix socket by address, and one that nothing wants.
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: front\n"
                "    listen: [\"127.0.0.1:%d\", \"unix:%s\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 4 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n" % (other, path, echo.port))
        pmx = self.activate(["127.0.0.1:%d" % port, path, "127.0.0.1:%d" % unused], yaml,
                            fdnames="front:x:spare", port=port)
        self.assertEqual(echo_roundtrip(port, b"by name\n"), b"by name\n")
        pmx.wait_log(r"service front: listener 127\.0\.0\.1:%d uses inherited socket fd 3 \(LISTEN_FDNAMES\)" % other)
        pmx.wait_log(r"service front: listener unix:%s uses inherited socket fd 4 \(same address\)" % re.escape(path))
        pmx.wait_log(r'inherited fd 5 \("spare"\) matches no listen address or service name; closed')
        u = socket.socket(socket.AF_UNIX)
        self.addCleanup(u.close)
        u.settimeout(5)
        u.connect(path)
        self.assertEqual(echo_roundtrip(u, b"unix\n"), b"unix\n")
        # Proximux bound nothing of its own: 127.0.0.1:other stays free.
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", other))
        # The socket no service took is closed.
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", unused), timeout=2).close()
        u.close()
        self.assertEqual(pmx.stop(), 0)
        # The unix socket file is systemd's: left in place at exit.
        self.assertTrue(os.path.exists(path))


class InstallTest(ProximuxTestCase):

    def test_make_install_and_man_page(self):
        if not harness.BIN or not os.access(harness.BIN, os.X_OK):
            self.skipTest("PROXIMUX_BIN not set or not executable")
        dest = make_tmpdir("install")
        self.addCleanup(remove_tmpdir, dest)
        # -o: install the binary under test as it is, never rebuild it here.
        make = ["make", "-s", "-C", REPO, "DESTDIR=" + dest, "PREFIX=/usr",
                "BIN=" + harness.BIN, "-o", harness.BIN]
        r = subprocess.run(make + ["install"], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        files = {
            "usr/sbin/proximux": 0o755,
            "usr/share/man/man8/proximux.8": 0o644,
            "usr/share/doc/proximux/README.md": 0o644,
            "usr/share/doc/proximux/proximux.yaml.example": 0o644,
            "usr/share/doc/proximux/proximux.env": 0o644,
            "usr/share/doc/proximux/examples/multi-app.yaml": 0o644,
            "etc/proximux/proximux.yaml": 0o644,
            "lib/systemd/system/proximux.service": 0o644,
            "lib/systemd/system/proximux.socket": 0o644,
        }
        for rel, mode in files.items():
            full = os.path.join(dest, rel)
            self.assertTrue(os.path.isfile(full), rel)
            self.assertEqual(os.stat(full).st_mode & 0o777, mode, rel)
        with open(harness.BIN, "rb") as a, open(os.path.join(dest, "usr/sbin/proximux"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        with open(os.path.join(dest, "lib/systemd/system/proximux.service")) as f:
            unit = f.read()
        for line in ("Type=notify", "NotifyAccess=all", "ExecReload=/bin/kill -HUP $MAINPID",
                     "ExecStart=/usr/sbin/proximux -c /etc/proximux/proximux.yaml",
                     "ExecStartPre=/usr/sbin/proximux -t -c /etc/proximux/proximux.yaml"):
            self.assertIn("\n" + line + "\n", unit)
        # The installed binary accepts the installed configuration.
        r = subprocess.run([os.path.join(dest, "usr/sbin/proximux"), "-t", "-c",
                            os.path.join(dest, "etc/proximux/proximux.yaml")],
                           capture_output=True, timeout=30, env=_make_env({}))
        self.assertEqual(r.returncode, 0, r.stderr.decode())

        # A configuration already there is the user's: never overwritten.
        conf = os.path.join(dest, "etc/proximux/proximux.yaml")
        with open(conf, "w") as f:
            f.write("# mine\n")
        r = subprocess.run(make + ["install"], capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        with open(conf) as f:
            self.assertEqual(f.read(), "# mine\n")

        self.check_man_page(os.path.join(dest, "usr/share/man/man8/proximux.8"))

        r = subprocess.run(make + ["uninstall"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        left = sorted(os.path.relpath(os.path.join(p, f), dest)
                      for p, _, fs in os.walk(dest) for f in fs)
        self.assertEqual(left, ["etc/proximux/proximux.yaml"])

    def check_man_page(self, page):
        if shutil.which("man") is None:
            self.skipTest("man not installed (Debian: apt-get install man-db)")
        env = dict(os.environ, MANWIDTH="100", MAN_KEEP_FORMATTING="", LC_ALL="C.UTF-8")
        r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, timeout=60, env=env)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stderr.decode(), "", "man reports warnings")
        text = re.sub(r".\x08", "", r.stdout.decode())
        for section in ("NAME", "SYNOPSIS", "OPTIONS", "SIGNALS", "CONFIGURATION", "ENVIRONMENT",
                        "FILES", "EXIT STATUS"):
            self.assertRegex(text, r"(?m)^%s$" % section)
        for word in ("-c file", "-t", "-V", "-h", "SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR2",
                     "PROXIMUX_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDNAMES",
                     "/etc/proximux/proximux.yaml", "/lib/systemd/system/proximux.service"):
            self.assertIn(word, text)
        # Every environment variable of the configuration schema.
        with open(os.path.join(REPO, "src/config/config_schema.c")) as f:
            names = set(re.findall(r'"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_?)"', f.read()))
        self.assertGreater(len(names), 30)
        for name in sorted(names):
            self.assertIn(name, text, "man page lacks %s" % name)
        # Every top-level setting group of the YAML schema.
        for group in ("log_level", "log_file", "shutdown_timeout", "services", "local", "listen",
                      "listen_mode", "exchange", "pool", "targets", "balance", "retries", "health",
                      "limits", "session", "request_log"):
            self.assertRegex(text, r"\b%s\b" % group)
