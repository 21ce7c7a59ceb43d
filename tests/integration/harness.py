"""Integration test harness: start the real proximux binary and real servers
on loopback ports chosen at run time, in temporary directories, and always
clean them up (tearDown/tearDownClass, plus atexit for anything left over).

Python 3 standard library only."""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("PROXIMUX_BIN", "")
SANITIZER_MARKS = ("AddressSanitizer", "runtime error:", "LeakSanitizer")
# Environment passed through to proximux besides what a test sets.
PASS_ENV = ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")
DEBUG_LINE = re.compile(r"^\S+ \S+ DEBUG ", re.M)
# Multiplies the time bounds that tests assert (deadlines that tell a slow
# answer from a hang, not performance figures): `make asan` and valgrind
# runs set PMX_IT_TIME_FACTOR, since instrumented builds are slower.
TIME_FACTOR = float(os.environ.get("PMX_IT_TIME_FACTOR", "1") or 1)

_live = []          # every process/dir still to clean up, for atexit
_started = []       # Proximux instances started by the current test (logs on failure)


# ---------------------------------------------------------------- basics

def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, host="127.0.0.1"):
    """Waits until something accepts connections on port; raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("nothing listening on %s:%d after %.1fs" % (host, port, timeout))
            time.sleep(0.05)


def make_tmpdir(prefix):
    d = tempfile.mkdtemp(prefix="pmx-it-%s-" % prefix, dir="/tmp")
    _live.append(d)
    return d


def remove_tmpdir(d):
    shutil.rmtree(d, ignore_errors=True)
    if d in _live:
        _live.remove(d)


def popen(args, **kw):
    """Starts a process in its own process group (so the whole group can be
    killed) and registers it for atexit cleanup."""
    p = subprocess.Popen(args, start_new_session=True, **kw)
    _live.append(p)
    return p


def kill_group(p, sig=signal.SIGKILL):
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap(p, timeout=10.0):
    """Kills p's group if it is still running after timeout and waits for it."""
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        kill_group(p)
        p.wait(5)
    kill_group(p)           # leftovers of the group, if any
    if p in _live:
        _live.remove(p)


@atexit.register
def _cleanup_everything():
    for x in list(_live):
        if isinstance(x, subprocess.Popen):
            kill_group(x)
            try:
                x.wait(5)
            except subprocess.TimeoutExpired:
                pass
        else:
            shutil.rmtree(x, ignore_errors=True)
    _live.clear()


def check_sanitizers(text, what="proximux"):
    for mark in SANITIZER_MARKS:
        if mark in text:
            raise AssertionError("%s log contains %r:\n%s" % (what, mark, tail(text, 60)))


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


# ---------------------------------------------------------------- sockets

def connect(port, timeout=5.0, host="127.0.0.1"):
    """A client socket with timeout on every operation."""
    s = socket.create_connection((host, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s, n):
    """Reads exactly n bytes; raises AssertionError on EOF first."""
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(n - got, 1 << 20))
        if not b:
            raise AssertionError("EOF after %d of %d bytes" % (got, n))
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_until_eof(s, limit=64 << 20):
    """Reads until EOF (socket timeout raises). Returns the bytes."""
    chunks, got = [], 0
    while True:
        b = s.recv(1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)
        got += len(b)
        if got > limit:
            raise AssertionError("more than %d bytes without EOF" % limit)


def closed_by_peer(s, timeout=3.0):
    """True if the peer closes s (EOF or reset) within timeout without
    sending anything; False on timeout. Data received raises AssertionError."""
    s.settimeout(timeout)
    try:
        b = s.recv(4096)
    except socket.timeout:
        return False
    except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return True
    if b:
        raise AssertionError("expected the connection to be closed, got %r" % b[:200])
    return True


def echo_roundtrip(port_or_sock, payload=b"ping\n", timeout=5.0):
    """Sends payload and returns exactly len(payload) bytes back."""
    if isinstance(port_or_sock, int):
        with connect(port_or_sock, timeout) as s:
            s.sendall(payload)
            return recv_exact(s, len(payload))
    port_or_sock.sendall(payload)
    return recv_exact(port_or_sock, len(payload))


# ---------------------------------------------------------------- proximux

def _listening_inodes(port):
    inodes = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except FileNotFoundError:
            pass
    return inodes


def _process_has_socket(pid, inodes):
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return True
    except OSError:
        pass
    return False


def proximux_env(port, targets, **settings):
    """Environment for proximux: LOCAL_PORT, the targets [(host, port)] and
    any other settings given as keyword arguments (NAME=value)."""
    env = {"LOCAL_HOST": "127.0.0.1", "LOCAL_PORT": port, "LOG_LEVEL": 2,
           "PROXY_CONNECT_TIMEOUT": 2000}
    for i, (host, tport) in enumerate(targets, 1):
        env["TARGET_HOST_%d" % i] = host
        env["TARGET_PORT_%d" % i] = tport
    env.update(settings)
    return env


def proxy_env(port, targets, clients=64, **settings):
    """Proxy mode: each client gets its own upstream, up to `clients`."""
    kw = {"EXCHANGE_MODE": "proxy", "LOCAL_MAX_CONNECTIONS": clients,
          "PROXY_CONNECTIONS_CNT": clients}
    kw.update(settings)
    return proximux_env(port, targets, **kw)


def _make_env(env):
    full = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
    full.update({k: str(v) for k, v in (env or {}).items()})
    return full


class Proximux:
    """The real binary, started with a clean environment (PATH + env) and
    optionally a YAML file passed with -c; stderr (the log) goes to a file."""

    def __init__(self, env=None, yaml=None, args=(), port=None):
        if not BIN or not os.access(BIN, os.X_OK):
            raise unittest.SkipTest("PROXIMUX_BIN not set or not executable")
        self.dir = make_tmpdir("pmx")
        self.env = _make_env(env)
        self.port = int(port if port is not None else self.env.get("LOCAL_PORT", 0))
        self.yaml_path = os.path.join(self.dir, "proximux.yaml")
        argv = [BIN]
        if yaml is not None:
            self.write_yaml(yaml)
            argv += ["-c", self.yaml_path]
        argv += list(args)
        self.log_path = os.path.join(self.dir, "proximux.log")
        self._logf = open(self.log_path, "wb")
        self.proc = popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                          stdout=self._logf, stderr=subprocess.STDOUT, cwd=self.dir)
        self.returncode = None
        _started.append(self)

    def write_yaml(self, text):
        tmp = self.yaml_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.yaml_path)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def wait_listening(self, timeout=10.0):
        """Waits until this process has a listening socket on self.port
        (checked in /proc, so no connection is made)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise AssertionError("proximux exited with %s before listening:\n%s"
                                     % (self.proc.returncode, tail(self.log())))
            if _process_has_socket(self.proc.pid, _listening_inodes(self.port)):
                return self
            if time.monotonic() > deadline:
                raise AssertionError("proximux not listening on %d after %.1fs:\n%s"
                                     % (self.port, timeout, tail(self.log())))
            time.sleep(0.02)

    def wait_log(self, pattern, timeout=5.0, start=0):
        """Waits for regex pattern in the log (from character start on);
        returns the match or raises AssertionError."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log(), start)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError("log never matched %r within %.1fs:\n%s"
                                     % (pattern, timeout, tail(self.log())))
            time.sleep(0.05)

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Waits up to timeout for the process to exit; returns its code or
        None if it is still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig, waits up to timeout, kills the group if needed.
        Returns the exit code; raises AssertionError if it had to be killed
        or if the log shows a sanitizer report. Safe to call twice."""
        if self.returncode is not None:
            return self.returncode
        killed = False
        if self.alive():
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
        reap(self.proc, 0.1 if killed else 5)
        self._logf.close()
        self.returncode = self.proc.returncode
        text = self.log()
        if os.environ.get("PMX_IT_VERBOSE"):
            print("\n--- proximux log (%s) ---\n%s" % (self.port, text))
        check_sanitizers(text)
        if killed:
            raise AssertionError("proximux did not exit within %.1fs of signal %d:\n%s"
                                 % (timeout, sig, tail(text)))
        return self.returncode

    def cleanup(self):
        try:
            self.stop()
        finally:
            remove_tmpdir(self.dir)


def run_proximux(args=(), env=None, yaml=None, timeout=10.0):
    """Runs proximux to completion (e.g. -t, -V, or a bad config that must
    be refused). Returns (exit code, stdout, stderr); a process still running
    after timeout is killed and reported as code None."""
    if not BIN or not os.access(BIN, os.X_OK):
        raise unittest.SkipTest("PROXIMUX_BIN not set or not executable")
    d = make_tmpdir("pmxrun")
    try:
        argv = [BIN]
        if yaml is not None:
            path = os.path.join(d, "proximux.yaml")
            with open(path, "w") as f:
                f.write(yaml)
            argv += ["-c", path]
        argv += list(args)
        p = popen(argv, env=_make_env(env), stdin=subprocess.DEVNULL,
                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=d)
        try:
            out, err = p.communicate(timeout=timeout)
            code = p.returncode
        except subprocess.TimeoutExpired:
            kill_group(p)
            out, err = p.communicate()
            code = None
        reap(p, 1)
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        check_sanitizers(out + err)
        return code, out, err
    finally:
        remove_tmpdir(d)


run_proximux_check = run_proximux


class ProximuxTestCase(unittest.TestCase):
    """Base class: start_proximux() registers the instance for cleanup, so
    every test stops its daemon and checks the log for sanitizer reports."""

    def start_proximux(self, env=None, yaml=None, args=(), listen=True, port=None):
        p = Proximux(env=env, yaml=yaml, args=args, port=port)
        self.addCleanup(p.cleanup)
        if listen:
            p.wait_listening()
        return p

    def assert_proximux_ok(self, p):
        """Stops p with SIGTERM and checks it exited 0 with every session
        ended on its own, not cut at shutdown_timeout (10 s by default,
        which the stop above outwaits so that this message is the one seen)."""
        code = p.stop()
        self.assertEqual(code, 0, "proximux exit status:\n" + tail(p.log()))
        self.assertNotIn("still connected after", p.log(),
                         "fast shutdown had to cut sessions at shutdown_timeout:\n" + tail(p.log()))


# ---------------------------------------------------------------- redis

class RespError(Exception):
    """A RESP error reply (returned, not raised, by Resp.read_reply)."""

    def __eq__(self, other):
        return isinstance(other, RespError) and self.args == other.args

    def __hash__(self):
        return hash(self.args)


def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class BufferedClient:
    """A client connection with its own receive buffer, for protocol
    clients that read whole replies across any number of segments."""

    def __init__(self, port, timeout=10.0, host="127.0.0.1"):
        self.sock = connect(port, timeout, host)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self):
        """Appends what the next recv brings; EOF is an error."""
        b = self.sock.recv(1 << 20)
        if not b:
            raise ConnectionError("EOF from server after %r" % self.buf[:200])
        self.buf += b


class Resp(BufferedClient):
    """A minimal RESP2 client. Bulk strings are bytes, nil is None, errors
    are RespError."""

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read_reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise AssertionError("bad RESP reply line %r" % line[:100])

    def send(self, *args):
        self.sock.sendall(resp_encode(*args))

    def command(self, *args):
        self.send(*args)
        return self.read_reply()


class ScriptedUpstream:
    """A scripted upstream on a free loopback port: a thread accepts, and
    each connection is served in a thread of its own by the subclass's
    _one(conn). `accepted` counts the connections; close() stops accepting.
    Subclasses set their own attributes before calling __init__()."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    def _one(self, c):
        raise NotImplementedError

    def close(self):
        self.sock.close()


class RedisServer:
    """redis-server on a free loopback port in a temporary directory."""

    def __init__(self, port=None, extra_args=(), password=None):
        self.dir = make_tmpdir("redis")
        self.port = port or free_port()
        self.log_path = os.path.join(self.dir, "redis.log")
        self.password = password      # requirepass
        self.extra_args = [str(a) for a in extra_args]
        if password is not None:
            self.extra_args += ["--requirepass", password]
        self.proc = None
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def start(self, timeout=15.0):
        """Starts the server (again, after kill()) on the same port. A
        server still running is left as it is: a second one would fail to
        bind, and the wait below could take the first one for it."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                           "--save", "", "--appendonly", "no", "--dir", self.dir,
                           "--daemonize", "no", "--logfile", self.log_path] + self.extra_args,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT)
        self._wait_ready(timeout)

    def kill(self):
        """SIGKILL: the server vanishes without closing anything cleanly."""
        kill_group(self.proc, signal.SIGKILL)
        reap(self.proc, 5)

    def _wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + self._logtail())
            try:
                with Resp(self.port, 1) as r:
                    if self.password is not None and r.command("AUTH", self.password) != "OK":
                        raise RuntimeError("redis-server refused its password")
                    if r.command("PING") == "PONG":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server not ready: " + self._logtail())
            time.sleep(0.05)

    def _logtail(self):
        try:
            with open(self.log_path) as f:
                return tail(f.read(), 20)
        except OSError:
            return ""

    def cli(self, *args, port=None, timeout=20):
        """Runs redis-cli against port (default: the server itself)."""
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port or self.port)]
                           + [str(a) for a in args], capture_output=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise AssertionError("redis-cli %s failed (%d): %s" % (args, r.returncode, r.stderr))
        return r.stdout.decode()

    def client(self, port=None):
        return Resp(port or self.port)

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            reap(self.proc, 5)
        remove_tmpdir(self.dir)


# ---------------------------------------------------------------- mariadb

class MariaDB:
    """A private mariadbd: data dir initialised in a temporary directory,
    listening on a free loopback port, with user pmx/secret and database
    pmxtest. Share one per test class (setUpClass/tearDownClass)."""

    USER, PASSWORD, DB = "pmx", "secret", "pmxtest"

    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)     # more mariadbd options ("--proxy-protocol-networks=...")
        self.dir = make_tmpdir("maria")
        self.port = free_port()
        self.sock = os.path.join(self.dir, "sock")
        self.datadir = os.path.join(self.dir, "data")
        self.err_log = os.path.join(self.dir, "err.log")
        self.proc = None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        r = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + self.datadir,
                            "--user=root", "--auth-root-authentication-method=normal",
                            "--skip-test-db", "--skip-name-resolve"],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("mariadb-install-db failed: %s" % (r.stdout + r.stderr)[-2000:])
        self.proc = popen(["mariadbd", "--no-defaults", "--user=root",
                           "--datadir=" + self.datadir, "--socket=" + self.sock,
                           "--port=%d" % self.port, "--bind-address=127.0.0.1",
                           "--skip-networking=0", "--skip-name-resolve",
                           "--pid-file=" + os.path.join(self.dir, "pid"),
                           "--log-error=" + self.err_log, "--skip-log-bin",
                           "--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M",
                           "--innodb-doublewrite=0", "--innodb-flush-log-at-trx-commit=0",
                           "--max-connections=200"] + self.extra_args,
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("mariadbd exited: " + self._logtail())
            r = self.root("SELECT 1", check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("mariadbd not ready: " + self._logtail())
            time.sleep(0.1)
        self.root("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO '%s'@'%%'; "
                  "CREATE DATABASE %s;" % (self.USER, self.PASSWORD, self.USER, self.DB))
        wait_port(self.port, 10)

    def _logtail(self):
        try:
            with open(self.err_log) as f:
                return tail(f.read(), 20)
        except OSError:
            return ""

    def root(self, sql, check=True):
        """Runs sql as root over the unix socket."""
        r = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-u", "root",
                            "-N", "-B", "-e", sql],
                           capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError("mariadb root %r failed: %s" % (sql, r.stderr.decode()))
        return r

    def run_client(self, sql, port=None, password=None, timeout=30):
        """Runs the mariadb client over TCP to port (default: the server);
        returns the CompletedProcess (text)."""
        return subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1",
                               "-P", str(port or self.port), "-u", self.USER,
                               "-p" + (self.PASSWORD if password is None else password),
                               "--connect-timeout=10", self.DB, "-N", "-B", "-e", sql],
                              capture_output=True, timeout=timeout, text=True,
                              stdin=subprocess.DEVNULL)

    def client(self, sql, port=None, timeout=30):
        """Like run_client but returns stdout, raising AssertionError on failure."""
        r = self.run_client(sql, port, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError("mariadb client via port %s failed (%d): %s"
                                 % (port or self.port, r.returncode, r.stderr.strip()))
        return r.stdout

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
            reap(self.proc, 15)
        remove_tmpdir(self.dir)


# ---------------------------------------------------------------- threads

def run_threads(fn, n, timeout=60.0):
    """Runs fn(i) for i in range(n) in threads that start together; returns
    the list of results and re-raises the first exception."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, [None] * n

    def body(i):
        try:
            barrier.wait(timeout)
            results[i] = fn(i)
        except BaseException as e:   # reported below
            errors[i] = e

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise AssertionError("threads still running after %.0fs" % timeout)
    for i, e in enumerate(errors):
        if e is not None:
            raise AssertionError("worker %d failed: %r" % (i, e)) from e
    return results
