"""Upstreams and observers for test_security.py: servers whose own view of
what they executed can be checked after an attack (a Redis MONITOR
connection, memcached -vv's command log, an HTTP upstream that logs every
request it parses, nginx's access log), and a buggy scripted HTTP upstream
that sends bodies where none may be. Python 3 standard library only; every
server listens on 127.0.0.1 on a port chosen at run time and keeps its
files in its own temporary directory.

Run standalone for manual checks:  python3 security_peers.py http|buggy|nginx
"""

import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import harness
    from muxlib import MemcachedServer
    from peers.upstreams import Upstream
except ImportError:                     # run from this directory
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import harness
    from muxlib import MemcachedServer
    from peers.upstreams import Upstream

NGINX = "/usr/sbin/nginx"


# ---------------------------------------------------------------- processes

def vm_status(pid):
    """VmRSS and VmHWM (peak) of pid in KiB ({} once it is gone)."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1])
    except OSError:
        pass
    return out


def instrumented(pid):
    """True when pid runs under AddressSanitizer or valgrind (its memory
    is then no measure of Proximux's own buffering)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return True
    return "libasan" in maps or "vgpreload" in maps or "valgrind" in maps


# ---------------------------------------------------------------- redis

_MONITOR_LINE = re.compile(rb'^\+\d+\.\d+ \[(\d+) ([^\]]*)\] (.*)$')
_MONITOR_ARG = re.compile(rb'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b",
            b'"': b'"', b"\\": b"\\"}


def _unescape(s):
    """An argument as MONITOR quotes it (sdscatrepr) back to bytes."""
    out, i = [], 0
    while i < len(s):
        c = s[i:i + 1]
        if c == b"\\" and s[i + 1:i + 2] == b"x":
            out.append(bytes([int(s[i + 2:i + 4], 16)]))
            i += 4
        elif c == b"\\":
            out.append(_ESCAPES.get(s[i + 1:i + 2], s[i + 1:i + 2]))
            i += 2
        else:
            out.append(c)
            i += 1
    return b"".join(out)


class MonitorEntry:
    """One command Redis executed: db number, client address, arguments."""

    def __init__(self, db, addr, args):
        self.db, self.addr, self.args = db, addr, args

    def name(self):
        """The command name as Redis's case-insensitive, NUL-stopping
        comparisons see it: lower case, cut at the first NUL."""
        return self.args[0].split(b"\0", 1)[0].lower() if self.args else b""

    def __repr__(self):
        return "[%d %s] %r" % (self.db, self.addr.decode(), self.args)


class RedisMonitor:
    """A MONITOR connection straight to redis-server (not through
    Proximux): everything Redis executes from now on, as MonitorEntry."""

    def __init__(self, port):
        self.sock = harness.connect(port, 5)
        self.sock.sendall(b"MONITOR\r\n")
        buf = b""
        while b"\r\n" not in buf:
            b = self.sock.recv(4096)
            if not b:
                raise AssertionError("MONITOR connection closed")
            buf += b
        if not buf.startswith(b"+OK\r\n"):
            raise AssertionError("MONITOR answered %r" % buf[:200])
        self._buf = buf[5:]
        self._entries = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                b = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                return
            if not b:
                return
            self._buf += b
            *lines, self._buf = self._buf.split(b"\r\n")
            parsed = []
            for line in lines:
                m = _MONITOR_LINE.match(line)
                if m:
                    args = [_unescape(a) for a in _MONITOR_ARG.findall(m.group(3))]
                    parsed.append(MonitorEntry(int(m.group(1)), m.group(2), args))
            with self._lock:
                self._entries.extend(parsed)

    def entries(self, settle=0.2):
        """What was seen so far, after waiting settle seconds for lines
        still on their way."""
        time.sleep(settle)
        with self._lock:
            return list(self._entries)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def redis_client_list(port):
    """CLIENT LIST of the redis-server on port, as a list of dicts (one
    per connection, this one excluded)."""
    with harness.Resp(port, 5) as r:
        me = r.command("CLIENT", "ID")
        text = r.command("CLIENT", "LIST")
    out = []
    for line in text.decode("latin-1").splitlines():
        fields = dict(f.split("=", 1) for f in line.split(" ") if "=" in f)
        if fields.get("id") != str(me):
            out.append(fields)
    return out


# ---------------------------------------------------------------- memcached

class MemcachedVV(MemcachedServer):
    """memcached -vv on a free loopback port; its stderr (one "<fd line"
    per command it executes) goes to the file log() reads."""

    def __init__(self):
        super().__init__(extra_args=("-vv",))

    def commands(self, start=0):
        """The command lines memcached logged from character start on."""
        return [l[l.index(" ") + 1:] for l in self.log()[start:].splitlines()
                if re.match(r"^<\d+ ", l)]


# ---------------------------------------------------------------- HTTP

class _LoggingHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, as http.server parses requests. Every request
    it parses is logged ("METHOD path") before it is answered:
      GET  /sleep/<ms>/... -> answered after ms
      GET, HEAD            -> 200, body "path=<path>" (Content-Length)
      POST                 -> body read by Content-Length or chunked;
                              200, body "post <path> <body length>"
    Other methods get http.server's 501."""

    protocol_version = "HTTP/1.1"
    wbufsize = 65536
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def parse_request(self):
        ok = super().parse_request()
        if ok:
            self.server.owner.record("%s %s" % (self.command, self.path))
        else:
            self.server.owner.record("REJECTED %r" % (self.raw_requestline[:200],))
        return ok

    def _send(self, code, body, head_only=False):
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/sleep/"):
            time.sleep(int(self.path.split("/")[2]) / 1000.0)
        self._send(200, ("path=" + self.path).encode("latin-1"))

    def do_HEAD(self):
        self._send(200, ("path=" + self.path).encode("latin-1"), head_only=True)

    def do_POST(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._send(200, b"post %s %d" % (self.path.encode("latin-1"), len(body)))


class LoggingHttpUpstream:
    """http.server (ThreadingHTTPServer, HTTP/1.1 keep-alive) that logs
    every request it parses, method and path, to a file and a list."""

    def __init__(self):
        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # A connection Proximux closed first (after a response
                # timeout, say) is no error of the test's.
                if not isinstance(sys.exc_info()[1], OSError):
                    super().handle_error(request, client_address)

        self.dir = harness.make_tmpdir("httplog")
        self.log_path = os.path.join(self.dir, "requests.log")
        self._lock = threading.Lock()
        self._seen = []
        self.server = Server(("127.0.0.1", 0), _LoggingHandler)
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def record(self, line):
        with self._lock:
            self._seen.append(line)
            try:
                with open(self.log_path, "a", encoding="utf-8", errors="backslashreplace") as f:
                    f.write(line + "\n")
            except OSError:         # stopped: the directory is gone
                pass

    def requests(self):
        with self._lock:
            return list(self._seen)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        harness.remove_tmpdir(self.dir)


# A whole forged response: what a buggy upstream's stray body would hand
# to the next client if Proximux took it for the start of a response.
FORGED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\nforged-by-attacker!!"


class BuggyHttpUpstream(Upstream):
    """A scripted HTTP/1.1 keep-alive upstream that sends bodies where the
    protocol allows none, each response in one write:
      GET /bug/204...       -> 204 without Content-Length, then FORGED
      GET /bug/304...       -> 304 with Content-Length: len(FORGED), then FORGED
      HEAD ...              -> 200 with Content-Length: len(FORGED), then FORGED
      anything else         -> 200, body "path=<path>"
    Request bodies (Content-Length only) are read and ignored. Requests
    seen are listed in self.seen ("METHOD path")."""

    def __init__(self, port=0):
        self.seen = []
        super().__init__(port)

    def handle(self, s, rec):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                b = self.read_some(s, rec)
                if not b:
                    return
                buf += b
            head, buf = buf.split(b"\r\n\r\n", 1)
            lines = head.split(b"\r\n")
            method, path = lines[0].split(b" ")[:2]
            n = 0
            for l in lines[1:]:
                k, _, v = l.partition(b":")
                if k.strip().lower() == b"content-length":
                    n = int(v)
            while len(buf) < n:
                b = self.read_some(s, rec)
                if not b:
                    return
                buf += b
            buf = buf[n:]
            self.seen.append("%s %s" % (method.decode("latin-1"), path.decode("latin-1")))
            if path.startswith(b"/bug/204"):
                out = b"HTTP/1.1 204 No Content\r\n\r\n" + FORGED
            elif path.startswith(b"/bug/304"):
                out = b"HTTP/1.1 304 Not Modified\r\nContent-Length: %d\r\n\r\n%s" % (len(FORGED), FORGED)
            elif method == b"HEAD":
                out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(FORGED), FORGED)
            else:
                body = b"path=" + path
                out = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            s.sendall(out)


class NginxServer:
    """nginx on a free loopback port, everything (config, logs, temp paths,
    pid) in its own temporary directory; every location answers 200 with
    the request target in the body ("$request_uri\\n"). access() lists the
    access log's lines: '<status> "<request line>"'. Skips the test when
    nginx is not installed."""

    def __init__(self):
        if not os.access(NGINX, os.X_OK):
            raise unittest.SkipTest("%s not installed (Debian: nginx-light)" % NGINX)
        self.dir = harness.make_tmpdir("nginx")
        self.port = harness.free_port()
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = (
            "%(user)sworker_processes 1;\n"
            "error_log %(d)s/error.log info;\n"
            "lock_file %(d)s/nginx.lock;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  log_format pmx '$status \"$request\"';\n"
            "  access_log %(d)s/access.log pmx;\n"
            "  client_body_temp_path %(d)s/body;\n"
            "  proxy_temp_path %(d)s/proxy;\n"
            "  fastcgi_temp_path %(d)s/fastcgi;\n"
            "  uwsgi_temp_path %(d)s/uwsgi;\n"
            "  scgi_temp_path %(d)s/scgi;\n"
            "  default_type text/plain;\n"
            "  keepalive_requests 1000000;\n"
            "  keepalive_timeout 300s;\n"
            "  server {\n"
            "    listen 127.0.0.1:%(port)d;\n"
            "    location / { return 200 \"$request_uri\\n\"; }\n"
            "  }\n"
            "}\n") % {"user": user, "d": d, "port": self.port}
        self.conf = os.path.join(d, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.access_path = os.path.join(d, "access.log")
        self._out = open(os.path.join(d, "stderr.log"), "wb")
        self.proc = harness.popen([NGINX, "-p", d + "/", "-e", d + "/error.log", "-c", self.conf,
                                   "-g", "daemon off; pid %s/nginx.pid;" % d],
                                  stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("nginx exited: " + self.errors())
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("nginx not listening: " + self.errors())
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def errors(self):
        text = ""
        for name in ("stderr.log", "error.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    text += f.read().decode("latin-1")
            except OSError:
                pass
        return harness.tail(text, 30)

    def access(self):
        try:
            with open(self.access_path, "rb") as f:
                return f.read().decode("latin-1").splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        harness.reap(self.proc, 10)
        self._out.close()
        harness.remove_tmpdir(self.dir)


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "http"
    if kind == "http":
        s = LoggingHttpUpstream()
    elif kind == "buggy":
        s = BuggyHttpUpstream()
    else:
        s = NginxServer()
    print("%s listening on 127.0.0.1:%d" % (kind, s.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()
