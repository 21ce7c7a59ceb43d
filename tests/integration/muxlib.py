"""Helpers for the FIFO/funnel integration tests (test_mux_*.py), on top of
harness.py: configurations, a redis-server that can be killed and restarted
on the same port, memcached, an HTTP/1.1 keep-alive upstream, and small
line/memcache clients. Python 3 standard library only."""

import os
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
from harness import (RespError, free_port, make_tmpdir, popen, proximux_env,
                     reap, remove_tmpdir)

# The four ways of multiplexing (EXCHANGE_FUNNEL_ASYNC = pipelining).
# fifo_sync relies on mode auto (one connection, unlimited clients).
CONFIGS = {
    "fifo_sync":     dict(conns=1, mode=None, pipelined=False),
    "fifo_async":    dict(conns=1, mode="fifo", pipelined=True),
    "funnel4_sync":  dict(conns=4, mode="funnel", pipelined=False),
    "funnel4_async": dict(conns=4, mode="funnel", pipelined=True),
    "funnel2_sync":  dict(conns=2, mode="funnel", pipelined=False),
    "funnel2_async": dict(conns=2, mode="funnel", pipelined=True),
}


def mux_env(port, targets, codec, conns=1, mode=None, pipelined=False, **settings):
    """Environment for FIFO (conns=1) or funnel (conns>1) mode."""
    kw = {"PROXY_CONNECTIONS_CNT": conns, "EXCHANGE_CODEC": codec,
          "EXCHANGE_FUNNEL_ASYNC": 1 if pipelined else 0,
          "PROXY_BACKOFF_MIN": 50, "PROXY_BACKOFF_MAX": 400}
    if mode:
        kw["EXCHANGE_MODE"] = mode
    kw.update(settings)
    return proximux_env(port, targets, **kw)


def config_env(port, targets, codec, config, **settings):
    kw = dict(CONFIGS[config])
    kw.update(settings)
    return mux_env(port, targets, codec, **kw)


def is_proximux_error(reply):
    return isinstance(reply, RespError) and reply.args[0].startswith("ERR proximux: ")


def assert_resp_closed(r, timeout=3.0):
    """The server closes r (EOF or reset) within timeout with nothing more
    to read: anything left in r's buffer or arriving fails."""
    if r.buf:
        raise AssertionError("unexpected bytes before close: %r" % r.buf[:200])
    if not harness.closed_by_peer(r.sock, timeout):
        raise AssertionError("connection not closed within %.1fs" % timeout)


def assert_silent(sock, wait=0.2):
    """Nothing arrives on sock within wait seconds (and it is not closed)."""
    old = sock.gettimeout()
    sock.settimeout(wait)
    try:
        b = sock.recv(4096)
    except socket.timeout:
        return
    finally:
        sock.settimeout(old)
    if b:
        raise AssertionError("unexpected bytes: %r" % b[:200])
    raise AssertionError("connection closed unexpectedly")


class Elapsed:
    """with Elapsed() as t: ...; t.seconds"""

    def __enter__(self):
        self.t0 = time.monotonic()
        self.seconds = None
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.t0


# ---------------------------------------------------------------- line clients

class LineClient(harness.BufferedClient):
    """A line-protocol client."""

    def send(self, data):
        self.sock.sendall(data)

    def readline(self):
        while b"\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def request(self, line):
        self.send(line)
        return self.readline()


# ---------------------------------------------------------------- redis

class RedisProc(harness.RedisServer):
    """redis-server on a fixed loopback port (free one by default) that can
    be killed (SIGKILL) and started again on the same port. DEBUG is
    enabled (DEBUG SLEEP keeps requests in flight when it is killed)."""

    def __init__(self, port=None):
        super().__init__(port, extra_args=("--enable-debug-command", "yes"))


def redis_cli(port, *args, timeout=20):
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)] + [str(a) for a in args],
                       capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise AssertionError("redis-cli %s failed (%d): %r" % (args, r.returncode, r.stderr))
    return r.stdout.decode()


# ---------------------------------------------------------------- memcached

class MemcachedServer:
    """memcached on a free loopback port (TCP only, 64 MB); extra_args are
    added to its command line (e.g. -vv, whose command log log() reads)."""

    def __init__(self, extra_args=()):
        self.dir = make_tmpdir("memcached")
        self.port = free_port()
        args = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
        args += list(extra_args)
        if os.geteuid() == 0:
            args += ["-u", "root"]
        self.log_path = os.path.join(self.dir, "memcached.log")
        self._logf = open(self.log_path, "wb")
        self.proc = popen(args, stdin=subprocess.DEVNULL, stdout=self._logf,
                          stderr=subprocess.STDOUT, cwd=self.dir)
        try:
            deadline = time.monotonic() + 10
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("memcached exited: " + self.log())
                try:
                    with McClient(self.port, 1) as c:
                        if c.command(b"version\r\n").startswith(b"VERSION "):
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("memcached not ready: " + self.log())
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def log(self):
        # latin-1: one character per byte, whatever a client sent.
        with open(self.log_path, "rb") as f:
            return f.read().decode("latin-1")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        reap(self.proc, 5)
        self._logf.close()
        remove_tmpdir(self.dir)


class McClient(harness.BufferedClient):
    """A memcached text-protocol client that reads whole replies."""

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        i = self.buf.index(b"\r\n") + 2
        line, self.buf = self.buf[:i], self.buf[i:]
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_line_reply(self):
        return self._line()

    def read_values(self):
        """A retrieval reply (VALUE blocks then END), as the raw bytes; an
        error line alone is returned as is."""
        out = []
        while True:
            line = self._line()
            out.append(line)
            if line.startswith(b"VALUE "):
                size = int(line.split()[3])
                out.append(self._exact(size + 2))
            else:
                return b"".join(out)

    def command(self, data):
        self.sock.sendall(data)
        return self._line()

    def get(self, data):
        self.sock.sendall(data)
        return self.read_values()


def mc_value(key, data, flags=0, cas=None):
    """The bytes memcached sends for one item of a retrieval reply."""
    if cas is None:
        return b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(data), data)
    return b"VALUE %s %d %d %d\r\n%s\r\n" % (key, flags, len(data), cas, data)


# ---------------------------------------------------------------- HTTP

class _Handler(BaseHTTPRequestHandler):
    """GET /...: 200 with body "path=<path>" (Content-Length); HEAD: the
    same headers, no body; POST: body "post <path> <request body>" (with
    Expect: 100-continue, "100 Continue" first); GET /chunked/<n>/...: n
    chunks "<path>#<i>;" with Transfer-Encoding: chunked; GET
    /status/<code>: that status (204, 304) with neither body nor
    Content-Length; GET /die: no response, the connection is closed; GET
    /sleep/<ms>/...: answered after ms; GET /until-close...: a body
    delimited by closing the connection."""

    protocol_version = "HTTP/1.1"
    # Whole responses in one write, sent at once (no Nagle delay): the
    # chunked endpoint still flushes every chunk on its own.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def _send(self, code, body, head_only=False):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Path", self.path)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/die"):
            # No response: the connection is closed.
            self.close_connection = True
            return
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2]) / 1000.0)
            self._send(200, ("path=" + self.path).encode())
            return
        if self.path.startswith("/until-close"):
            # No Content-Length, not chunked: the body ends at close.
            self.send_response(200)
            self.send_header("X-Path", self.path)
            self.end_headers()
            self.wfile.write(("body of " + self.path + ";").encode() * 1000)
            self.close_connection = True
            return
        if self.path.startswith("/status/"):
            # 204 / 304: no body and no Content-Length.
            self.send_response(int(self.path.split("/")[2]))
            self.send_header("X-Path", self.path)
            self.end_headers()
            return
        if self.path.startswith("/chunked/"):
            n = int(self.path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(n):
                chunk = ("%s#%d;" % (self.path, i)).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        self._send(200, ("path=" + self.path).encode())

    def do_HEAD(self):
        self._send(200, ("path=" + self.path).encode(), head_only=True)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self._send(200, b"post " + self.path.encode() + b" " + body)


class HttpUpstream:
    """A ThreadingHTTPServer (HTTP/1.1 keep-alive) on a free loopback port,
    served from a thread; counts accepted connections."""

    def __init__(self):
        parent = self

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def process_request(self, request, client_address):
                parent.connections += 1
                super().process_request(request, client_address)

        self.connections = 0
        self.server = Server(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
