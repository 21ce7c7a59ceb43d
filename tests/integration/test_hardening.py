"""Hardening: one fault matrix run in proxy, fifo and funnel modes.

Every case checks that (1) other clients are served correctly during and
after the fault, (2) proximux is alive afterwards (and exits 0 on SIGTERM,
with clean sanitizer logs), and (3) no reply reaches the wrong client: every
client ECHOes tokens that name it and a request number, and every reply must
be exactly its own token, or, where the spec allows it, a proximux error.

Modes: proxy (RESP bytes piped untouched); fifo = one pipelined upstream
connection; funnel = three upstream connections used one request at a time.
fifo/funnel use the resp codec. Upstreams are the scripted FaultResp
(peers/fault_peers.py), which misbehaves on command or on connect, and a
real redis-server for the 1 MiB values.

PMX_IT_TIME_FACTOR (default 1) multiplies every time bound, for slow runs
(valgrind.sh sets it); memory bounds are skipped when proximux runs under
AddressSanitizer or valgrind."""

import os
import random
import selectors
import socket
import threading
import time

from harness import (ProximuxTestCase, RedisServer, Resp, RespError, closed_by_peer, connect,
                     free_port, proxy_env, recv_exact, resp_encode, run_threads)
from muxlib import Elapsed, assert_resp_closed, assert_silent, is_proximux_error, mux_env
from peers.fault_peers import FaultResp, bulk, reset, stream_pattern

TF = float(os.environ.get("PMX_IT_TIME_FACTOR", "1") or 1)
MIB = 1 << 20
BACKOFF_MAX_MS = 400
HEALTH_INTERVAL_MS = 500     # health.interval's default
COMMON = dict(PROXY_CONNECT_TIMEOUT=300, PROXY_BACKOFF_MIN=50, PROXY_BACKOFF_MAX=BACKOFF_MAX_MS)
TIMEOUT_ERR = "ERR proximux: upstream 127.0.0.1:%d: response timeout"
# What a request gets at once when its connection cannot be opened (every
# try failed, or every target is down).
NO_UPSTREAM = RespError("ERR proximux: no upstream available")


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("%s not met within %.1fs" % (what, timeout))
        time.sleep(0.01)


def proc_status(pid):
    """VmRSS and VmHWM (peak) of pid in KiB."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1])
    return out


def instrumented(pid):
    """True when pid runs under AddressSanitizer or valgrind (memory is
    then no measure of proximux's own buffering)."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError:
        return True
    return "libasan" in maps or "vgpreload" in maps or "valgrind" in maps


def read_until_closed(sock, timeout):
    """Everything sock receives until EOF or a reset."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while True:
            b = sock.recv(1 << 20)
            if not b:
                break
            chunks.append(b)
    except (ConnectionResetError, ConnectionAbortedError):
        pass
    return b"".join(chunks)


def note(text):
    if os.environ.get("PMX_IT_VERBOSE"):
        print("\n    " + text, flush=True)


def read_for(sock, seconds, want=None):
    """What sock receives within seconds (or until want bytes arrived):
    (bytes, closed) where closed means EOF or a reset."""
    deadline = time.monotonic() + seconds
    chunks, got = [], 0
    try:
        while want is None or got < want:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            b = sock.recv(1 << 20)
            if not b:
                return b"".join(chunks), True
            chunks.append(b)
            got += len(b)
    except socket.timeout:
        pass
    except (ConnectionResetError, ConnectionAbortedError):
        return b"".join(chunks), True
    return b"".join(chunks), False


class Others:
    """n well-behaved clients, each on its own connection in its own
    thread, ECHOing unique tokens while a fault goes on. A reply that is
    not exactly the token sent fails the test, except proximux errors when
    allow_errors. retry_closed: a connection closed before its first reply
    is replaced (proxy mode with a target that closes at once).
    Used as a context manager: on exit the threads stop, failures are
    raised, then every connection must answer 3 more ECHOs exactly."""

    def __init__(self, port, n=3, allow_errors=False, retry_closed=False, pause=0.005):
        self.port, self.n = port, n
        self.allow_errors, self.retry_closed, self.pause = allow_errors, retry_closed, pause
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ok = [0] * n
        self.errors = []
        self.failures = []
        self.max_latency = 0.0
        self.conns = [None] * n
        self.threads = []

    def _connect(self, cid):
        for _ in range(10):
            r = Resp(self.port, timeout=5 * TF)
            try:
                for k in range(10):
                    tok = b"o%d:hello%d" % (cid, k)
                    got = r.command("ECHO", tok)
                    if got == tok:
                        return r
                    if not (self.allow_errors and is_proximux_error(got)):
                        raise AssertionError("client %d: got %r for %r" % (cid, got, tok))
                    time.sleep(0.05)
                raise AssertionError("client %d: never served" % cid)
            except (ConnectionError, OSError):
                r.close()
                if not self.retry_closed:
                    raise
        raise AssertionError("client %d: closed on every attempt" % cid)

    def _run(self, cid):
        rng = random.Random(cid)
        try:
            r = self._connect(cid)
            self.conns[cid] = r
            seq = 0
            while not self.stop_ev.is_set():
                tok = b"o%d:%d:%08x" % (cid, seq, rng.getrandbits(32))
                seq += 1
                t0 = time.monotonic()
                got = r.command("ECHO", tok)
                dt = time.monotonic() - t0
                with self.lock:
                    if got == tok:
                        self.ok[cid] += 1
                        self.max_latency = max(self.max_latency, dt)
                    elif self.allow_errors and is_proximux_error(got):
                        self.errors.append(got.args[0])
                    else:
                        raise AssertionError("other client %d: got %r for %r" % (cid, got, tok))
                time.sleep(self.pause)
        except BaseException as e:              # reported by stop()
            with self.lock:
                self.failures.append("other client %d: %r" % (cid, e))

    def __enter__(self):
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(self.n)]
        for t in self.threads:
            t.start()
        wait_for(lambda: all(self.ok) or self.failures, 10 * TF, "other clients served")
        return self

    def mark(self):
        with self.lock:
            return list(self.ok)

    def wait_progress(self, mark, timeout=5.0):
        """Every client got another exact reply since mark()."""
        wait_for(lambda: self.failures or all(a > b for a, b in zip(self.ok, mark)),
                 timeout * TF, "every other client served again")
        if self.failures:
            raise AssertionError("; ".join(self.failures))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(15 * TF)
        if any(t.is_alive() for t in self.threads):
            raise AssertionError("other clients stuck")
        if self.failures:
            raise AssertionError("; ".join(self.failures))
        for cid, r in enumerate(self.conns):
            for k in range(3):
                tok = b"o%d:final%d" % (cid, k)
                got = r.command("ECHO", tok)
                if got != tok:
                    raise AssertionError("other client %d after the fault: got %r" % (cid, got))

    def close(self):
        self.stop_ev.set()
        for r in self.conns:
            if r is not None:
                r.close()

    def __exit__(self, exc_type, *exc):
        try:
            if exc_type is None:
                self.stop()
        finally:
            self.close()


class _Matrix:
    """The fault matrix; subclasses set the mode."""

    MODE = None
    CONNS = 1
    PIPELINED = False
    # Others may get proximux errors for an upstream fault: they share the
    # failing connection and are pipelined behind the faulty request.
    SHARED_ERRORS = False

    # ---------------------------------------------------------- helpers

    def upstream(self, u):
        self.addCleanup(u.stop)
        return u

    def start(self, targets, clients=64, **settings):
        self.port = free_port()
        kw = dict(COMMON)
        kw.update(settings)
        if self.MODE == "proxy":
            env = proxy_env(self.port, targets, clients=clients, **kw)
        else:
            env = mux_env(self.port, targets, "resp", conns=self.CONNS, mode=self.MODE,
                          pipelined=self.PIPELINED, **kw)
        return self.start_proximux(env)

    def client(self, timeout=5.0):
        r = Resp(self.port, timeout=timeout * TF)
        self.addCleanup(r.close)
        return r

    def sock(self, rcvbuf=None):
        s = socket.socket()
        self.addCleanup(s.close)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(5 * TF)
        s.connect(("127.0.0.1", self.port))
        return s

    def others(self, allow_errors=False, **kw):
        o = Others(self.port, allow_errors=allow_errors, **kw)
        self.addCleanup(o.close)
        return o

    def finish(self, pmx):
        self.assertTrue(pmx.alive(), "proximux died")
        self.assert_proximux_ok(pmx)

    @property
    def proxy(self):
        return self.MODE == "proxy"

    # ---------------------------------------------------------- upstream faults

    def _request_fault(self, cmd):
        """One client's request makes the upstream misbehave (MUTE: never
        answers; HALF: half a reply then nothing; RST: half a reply then a
        reset) while the others go on. Proxy: that client sees exactly
        what the upstream sent. fifo/funnel: it gets exactly a proximux
        error (never the half reply), then is served again."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address], EXCHANGE_RESPONSE_TIMEOUT=300)
        tok = b"%s:%08x" % (cmd.lower().encode(), random.getrandbits(32))
        full = bulk(tok)
        half = full[:len(full) // 2]
        with self.others(allow_errors=self.SHARED_ERRORS) as o:
            x = self.client()
            self.assertEqual(x.command("ECHO", "x:before"), b"x:before")
            m = o.mark()
            with Elapsed() as t:
                x.send(cmd, tok)
                if self.proxy:
                    if cmd == "RST":
                        got = read_until_closed(x.sock, 3 * TF)
                        self.assertTrue(half.startswith(got), "got %r, sent %r" % (got, half))
                    else:
                        if cmd == "HALF":
                            self.assertEqual(recv_exact(x.sock, len(half)), half)
                        assert_silent(x.sock, 0.5)
                else:
                    got = x.read_reply()
            if not self.proxy:
                if cmd == "RST":
                    want = "ERR proximux: upstream 127.0.0.1:%d: Connection reset by peer" % up.port
                    self.assertEqual(got, RespError(want))
                    self.assertLess(t.seconds, 1.0 * TF)
                else:
                    self.assertEqual(got, RespError(TIMEOUT_ERR % up.port))
                    self.assertGreaterEqual(t.seconds, 0.25)
                    self.assertLess(t.seconds, 1.0 * TF)
                self.assertEqual(x.buf, b"", "bytes after the error reply")
                # The client goes on, on a new upstream connection.
                self.assertEqual(x.command("ECHO", "x:after"), b"x:after")
                self.assertGreaterEqual(len(up.records), 2, "upstream connection not recycled")
            o.wait_progress(m)
        self.assertEqual(up.seen().count([cmd.encode(), tok]), 1)
        # In proxy mode x still waits for its answer, which fast shutdown
        # would wait for until shutdown_timeout: x leaves first.
        x.close()
        self.finish(pmx)

    def test_u1_upstream_never_answers(self):
        self._request_fault("MUTE")

    def test_u2_upstream_half_reply_then_stalls(self):
        self._request_fault("HALF")

    def test_u3_upstream_resets_mid_reply(self):
        self._request_fault("RST")

    def test_u4_upstream_refuses(self):
        """Nothing listening on the first target. Proxy and funnel fail
        over to the second target: every request is answered exactly.
        fifo has one target only: every request gets "no upstream
        available" at once, never a hang."""
        dead = ("127.0.0.1", free_port())
        if self.MODE == "fifo":
            pmx = self.start([dead], EXCHANGE_QUEUE_TIMEOUT=200)

            def one(cid):
                with Resp(self.port, timeout=5 * TF) as r:
                    for i in range(3):
                        with Elapsed() as t:
                            got = r.command("ECHO", "c%d:%d" % (cid, i))
                        if got != NO_UPSTREAM or t.seconds > 1.0 * TF:
                            raise AssertionError("client %d: %r after %.2fs" % (cid, got, t.seconds))
                return True

            self.assertEqual(run_threads(one, 3, timeout=20 * TF), [True] * 3)
            pmx.wait_log(r"127\.0\.0\.1:%d.*Connection refused" % dead[1])
            self.finish(pmx)
            return
        up = self.upstream(FaultResp())
        pmx = self.start([dead, up.address])
        with self.others() as o:
            m = o.mark()
            for i in range(8):
                with Elapsed() as t:
                    with Resp(self.port, timeout=5 * TF) as r:
                        self.assertEqual(r.command("ECHO", "c:%d" % i), b"c:%d" % i)
                self.assertLess(t.seconds, 1.0 * TF)
            o.wait_progress(m)
        pmx.wait_log(r"127\.0\.0\.1:%d.*Connection refused" % dead[1])
        self.finish(pmx)

    def test_u5_upstream_closes_after_connect(self):
        """A target that accepts and closes at once.
        proxy [closer, live]: a client is served exactly or closed without
        a byte; both happen. funnel [closer, live]: replies are exact or
        proximux errors. fifo [closer]: every request gets a proximux error
        in time. In all: reconnects to the closer are paced by the backoff
        (no storm), and none happen while no request waits."""
        closer = self.upstream(FaultResp(on_connect="close"))
        prefix = "ERR proximux: upstream 127.0.0.1:%d: " % closer.port
        if self.MODE == "fifo":
            pmx = self.start([closer.address])
            with Resp(self.port, timeout=5 * TF) as r:
                with Elapsed() as t:
                    for i in range(6):
                        got = r.command("ECHO", "c:%d" % i)
                        self.assertTrue(isinstance(got, RespError) and
                                        (got.args[0].startswith(prefix) or got == NO_UPSTREAM), got)
            self.assertLess(t.seconds, 6 * 1.0 * TF)
            # At most one connect per request: after health.fail_after (3)
            # failures the closer is down and requests fail without one.
            self.assertLessEqual(len(closer.records), 6, "more connects than requests")
            attempts = 0
        elif self.MODE == "funnel":
            live = self.upstream(FaultResp())
            pmx = self.start([closer.address, live.address])
            with self.others(allow_errors=True) as o:
                m = o.mark()
                t0 = time.monotonic()
                time.sleep(1.0)
                o.wait_progress(m)
            for e in o.errors:
                self.assertTrue(e.startswith(prefix) or e == NO_UPSTREAM.args[0], e)
            attempts = len(closer.records) / (time.monotonic() - t0)
        else:
            live = self.upstream(FaultResp())
            pmx = self.start([closer.address, live.address])
            with self.others(retry_closed=True) as o:
                m = o.mark()
                outcomes = []
                for i in range(8):
                    with connect(self.port, timeout=5 * TF) as s:
                        tok = b"c:%d" % i
                        s.sendall(resp_encode("ECHO", tok))
                        got, closed = read_for(s, 0.3)
                        self.assertIn((got, closed), [(b"", True), (bulk(tok), False)], "client %d" % i)
                        outcomes.append(not closed)
                self.assertIn(True, outcomes, "no client served")
                self.assertIn(False, outcomes, "no client met the closing target")
                o.wait_progress(m)
            attempts = 0
        self.assertLess(attempts, 30, "reconnect storm: %.0f connects/s to the closer" % attempts)
        # No request waiting: no reconnects.
        time.sleep(BACKOFF_MAX_MS / 1000.0 + 0.4)
        n = len(closer.records)
        time.sleep(0.5)
        self.assertLessEqual(len(closer.records) - n, 1, "reconnects with nothing to send")
        self.finish(pmx)

    def test_u6_target_comes_back(self):
        """The only target is dead (clients are closed, or get "no upstream
        available"), then starts on the same port: service resumes within
        one probe interval (health.interval, 500 ms by default)."""
        port = free_port()
        pmx = self.start([("127.0.0.1", port)], EXCHANGE_QUEUE_TIMEOUT=200)
        r = None if self.proxy else self.client()
        for i in range(2):
            if self.proxy:
                with connect(self.port, timeout=5 * TF) as s:
                    s.sendall(resp_encode("ECHO", "dead%d" % i))
                    self.assertTrue(closed_by_peer(s, 1.0 * TF), "client not closed")
            else:
                self.assertEqual(r.command("ECHO", "dead%d" % i), NO_UPSTREAM)
        time.sleep(BACKOFF_MAX_MS / 1000.0 * 1.5)     # backoff at its cap by now
        self.upstream(FaultResp(port=port))
        t0 = time.monotonic()
        i = 0
        while True:
            i += 1
            tok = b"back%d" % i
            if self.proxy:
                with connect(self.port, timeout=5 * TF) as s:
                    s.sendall(resp_encode("ECHO", tok))
                    got, closed = read_for(s, 0.3 * TF, len(bulk(tok)))
                    self.assertIn((got, closed), [(b"", True), (bulk(tok), False)])
                    done = not closed
            else:
                got = r.command("ECHO", tok)
                self.assertIn(got, (NO_UPSTREAM, tok))
                done = got == tok
            if done:
                break
            self.assertLess(time.monotonic() - t0, 2.0 * TF, "service did not resume")
            time.sleep(0.02)
        resumed = time.monotonic() - t0
        self.assertLess(resumed, (HEALTH_INTERVAL_MS / 1000.0 + 0.4) * TF,
                        "service resumed %.2fs after the target came back" % resumed)
        with self.others():
            time.sleep(0.2)
        self.finish(pmx)

    # ---------------------------------------------------------- client faults

    def test_c1_slowloris(self):
        """50 clients send all of a request but its last 5 bytes and stall;
        the others are served at once meanwhile; then the 50 finish their
        requests and each gets exactly its own reply."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address], clients=80)
        slow = []
        for i in range(50):
            s = self.sock()
            req = resp_encode("ECHO", b"slow:%02d" % i)
            s.sendall(req[:-5])
            slow.append((s, req))
        with self.others() as o:
            o.wait_progress(o.mark())
            time.sleep(0.4)
        self.assertLess(o.max_latency, 0.5 * TF, "others slowed down")
        self.assertFalse([a for a in up.seen() if a[1:2] and a[1].startswith(b"slow:")],
                         "a partial request reached the upstream as a whole one")
        for s, req in slow:
            s.sendall(req[-5:])
        for i, (s, _) in enumerate(slow):
            self.assertEqual(recv_exact(s, len(bulk(b"slow:%02d" % i))), bulk(b"slow:%02d" % i))
        self.finish(pmx)

    def test_c2_connection_flood(self):
        """LOCAL_MAX_CONNECTIONS=50, LOCAL_MAX_WAIT=0 and 500 connects: the
        450 extra are closed at once (and each logged), the first 50 still
        work; once they leave, 50 new clients are served, and a 51st is
        closed."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address], clients=50, LOCAL_MAX_CONNECTIONS=50, LOCAL_MAX_WAIT=0)
        first = []
        for i in range(50):
            r = self.client()
            self.assertEqual(r.command("ECHO", "f%d" % i), b"f%d" % i)
            first.append(r)
        extra = []
        with Elapsed() as t:
            for i in range(450):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5 * TF)
                self.addCleanup(s.close)
                extra.append(s)
            sel = selectors.DefaultSelector()
            for s in extra:
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ)
            closed = 0
            deadline = time.monotonic() + 3 * TF
            while closed < len(extra) and time.monotonic() < deadline:
                for key, _ in sel.select(0.2):
                    try:
                        b = key.fileobj.recv(100)
                    except BlockingIOError:
                        continue
                    except (ConnectionResetError, ConnectionAbortedError):
                        b = b""
                    self.assertEqual(b, b"", "an extra client got data")
                    sel.unregister(key.fileobj)
                    closed += 1
            sel.close()
        self.assertEqual(closed, 450, "extra clients not closed")
        self.assertLess(t.seconds, 3 * TF)
        refused = len([1 for l in pmx.log().splitlines() if "refused: max_connections 50 reached" in l])
        self.assertEqual(refused, 450)
        for i, r in enumerate(first):
            self.assertEqual(r.command("ECHO", "f%d:again" % i), b"f%d:again" % i)
            r.close()
        second = []
        for i in range(50):
            deadline = time.monotonic() + 3 * TF
            while True:                             # the first 50 are being closed
                try:
                    r = Resp(self.port, timeout=5 * TF)
                    self.addCleanup(r.close)
                    got = r.command("ECHO", "s%d" % i)
                    break
                except (ConnectionError, OSError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)
            self.assertEqual(got, b"s%d" % i)
            second.append(r)
        with connect(self.port) as s:
            self.assertTrue(closed_by_peer(s, 2 * TF), "client 51 not closed")
        for i, r in enumerate(second):
            self.assertEqual(r.command("ECHO", "s%d:again" % i), b"s%d:again" % i)
        self.finish(pmx)

    def test_c3_oversized_request(self):
        """EXCHANGE_MAX_MESSAGE=64 KiB, a 200 KiB request: fifo/funnel
        answer exactly the max_message error, close that client and never
        pass the request on; proxy passes it through untouched."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address], EXCHANGE_MAX_MESSAGE=65536)
        big = random.Random(3).randbytes(200 << 10)
        with self.others() as o:
            m = o.mark()
            x = self.client()
            x.send("ECHO", big)
            got = x.read_reply()
            if self.proxy:
                self.assertTrue(got == big, "200 KiB echo differs")
            else:
                self.assertEqual(got, RespError("ERR proximux: request larger than max_message"))
                assert_resp_closed(x)
            o.wait_progress(m)
        if not self.proxy:
            self.assertFalse([a for a in up.seen() if sum(map(len, a)) > 65536])
        self.finish(pmx)

    def test_c4_garbage(self):
        """Malformed input: fifo/funnel answer exactly the malformed-request
        error and close that client (the bytes never reach the upstream);
        proxy passes them on and the client gets exactly what the upstream
        said (-ERR Protocol error) and the close."""
        rng = random.Random(4)

        def junk(n):
            return bytes(b for b in rng.randbytes(n * 2) if b not in b"\r\n*0123456789-")[:n]

        cases = [
            (b"*" + junk(300) + b"\r\n", "invalid multibulk length"),
            (b"*2\r\n#" + junk(300) + b"\r\n", "expected '$' in multibulk request"),
            (b"Z" + junk(70000), "line too long"),
        ]
        up = self.upstream(FaultResp())
        pmx = self.start([up.address])
        with self.others() as o:
            m = o.mark()
            for data, why in cases:
                s = self.sock()
                s.sendall(data)
                got = read_until_closed(s, 3 * TF)
                if self.proxy:
                    if why == "line too long":   # the peer may reset with input unread
                        self.assertTrue(b"-ERR Protocol error\r\n".startswith(got), got)
                    else:
                        self.assertEqual(got, b"-ERR Protocol error\r\n")
                else:
                    self.assertEqual(got, b"-ERR proximux: malformed request (%s)\r\n" % why.encode())
                s.close()
            o.wait_progress(m)
        if not self.proxy:
            self.assertTrue(all(a[:1] == [b"ECHO"] for a in up.seen()), "garbage reached the upstream")
        self.finish(pmx)

    def test_c5_client_leaves_after_request(self):
        """20 clients send a slow request and one behind it and go at once
        (half with a reset): the others never get their replies."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address])
        with self.others() as o:
            m = o.mark()
            for i in range(20):
                s = connect(self.port)
                s.sendall(resp_encode("SLEEP", 20, "hr:%d" % i) + resp_encode("ECHO", "hr-behind:%d" % i))
                if i % 2:
                    reset(s)
                else:
                    s.close()
            time.sleep(0.3)
            o.wait_progress(m)
        x = self.client()
        self.assertEqual(x.command("ECHO", "fresh"), b"fresh")
        self.finish(pmx)

    def test_c6_client_never_reads(self):
        if self.proxy:
            self._never_reads_proxy()
        else:
            self._never_reads_mux()

    def _never_reads_mux(self):
        """A client pipelines 64 GETs of a 1 MiB value and reads nothing
        (LOCAL_OUTPUT_LIMIT=4 MiB): it is closed for the output limit, what
        it had received is a prefix of its replies, proximux's peak RSS
        stays within output_limit + a few MiB, and the others are served."""
        redis = RedisServer()
        self.addCleanup(redis.stop)
        value = random.Random(6).randbytes(MIB)
        with Resp(redis.port) as r:
            self.assertEqual(r.command("SET", "big", value), "OK")
        limit = 4 * MIB
        pmx = self.start([("127.0.0.1", redis.port)], LOCAL_OUTPUT_LIMIT=limit)
        with Resp(self.port) as r:
            self.assertEqual(r.command("ECHO", "warm"), b"warm")
        before = proc_status(pmx.proc.pid)
        x = self.sock(rcvbuf=4096)
        with self.others() as o:
            x.sendall(resp_encode("GET", "big") * 64)
            pmx.wait_log(r"output limit reached", timeout=10 * TF)
            o.wait_progress(o.mark())
        after = proc_status(pmx.proc.pid)
        got = read_until_closed(x, 5 * TF)
        want = bulk(value) * 64
        self.assertTrue(want.startswith(got), "the slow client got bytes that are not its replies")
        self.assertLess(len(got), len(want))
        grown = (after["VmHWM"] - before["VmRSS"]) / 1024.0
        note("mux never-reads: peak RSS +%.1f MiB (limit %d MiB)" % (grown, limit // MIB))
        if not instrumented(pmx.proc.pid):
            self.assertLess(grown, limit / MIB + 6, "peak RSS grew %.1f MiB" % grown)
        with Resp(self.port) as r:
            self.assertEqual(r.command("ECHO", "after"), b"after")
        self.finish(pmx)

    def _never_reads_proxy(self):
        """The upstream streams 48 MiB to a client that reads nothing:
        proximux stops reading the upstream (which blocks: it manages to
        hand far less than 48 MiB to its kernel), its RSS stays within a
        few MiB, and the client then reads every byte, exactly."""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address])
        with Resp(self.port) as r:
            self.assertEqual(r.command("ECHO", "warm"), b"warm")
        before = proc_status(pmx.proc.pid)
        total = 48 * MIB
        x = self.sock(rcvbuf=4096)
        with self.others() as o:
            x.sendall(resp_encode("STREAM", total))
            last, stable_since = -1, time.monotonic()
            deadline = time.monotonic() + 10 * TF
            while time.monotonic() - stable_since < 0.4:
                if up.streamed != last:
                    last, stable_since = up.streamed, time.monotonic()
                self.assertLess(time.monotonic(), deadline, "the upstream never blocked")
                time.sleep(0.02)
            o.wait_progress(o.mark())
        stalled = up.streamed
        after = proc_status(pmx.proc.pid)
        self.assertLess(stalled, 24 * MIB, "the upstream was not blocked")
        grown = (after["VmHWM"] - before["VmRSS"]) / 1024.0
        note("proxy never-reads: upstream blocked after %.1f MiB, peak RSS +%.1f MiB"
             % (stalled / MIB, grown))
        if not instrumented(pmx.proc.pid):
            self.assertLess(grown, 4, "peak RSS grew %.1f MiB" % grown)
        x.settimeout(10 * TF)
        off = 0
        while off < total:
            b = x.recv(1 << 20)
            self.assertTrue(b, "EOF after %d of %d bytes" % (off, total))
            self.assertTrue(b == stream_pattern(off, len(b)), "stream bytes differ at %d" % off)
            off += len(b)
        assert_silent(x, 0.05)
        self.assertEqual(up.streamed, total)
        self.finish(pmx)


    def test_c7_big_reply_to_reading_client(self):
        """A client that does read asks for one 6 MiB reply, with
        LOCAL_OUTPUT_LIMIT=4 MiB (and max_message at its 64 MiB default):
        it gets the reply. (fifo/funnel close it instead, with no error
        reply, logging that it "does not read its responses": the limit is
        checked against the whole response before any of it is written.)"""
        up = self.upstream(FaultResp())
        pmx = self.start([up.address], LOCAL_OUTPUT_LIMIT=4 * MIB)
        with self.others() as o:
            m = o.mark()
            x = self.client(timeout=10)
            got = x.command("BIG", 6 * MIB, "v")
            self.assertTrue(got == b"v" * (6 * MIB), "6 MiB reply differs: %r" % (got[:80],))
            self.assertEqual(x.command("ECHO", "x:after"), b"x:after")
            o.wait_progress(m)
        self.finish(pmx)


class HardeningProxyTest(_Matrix, ProximuxTestCase):
    MODE = "proxy"


class HardeningFifoTest(_Matrix, ProximuxTestCase):
    MODE = "fifo"
    CONNS = 1
    PIPELINED = True
    SHARED_ERRORS = True


class HardeningFunnelTest(_Matrix, ProximuxTestCase):
    MODE = "funnel"
    CONNS = 3
    PIPELINED = False


class HardeningFailoverTest(ProximuxTestCase):
    """funnel [bad, live]: a target that accepts and then fails (closes at
    once, or never answers) is left for the next target, as a target whose
    connect fails is: after the first errors, every request is served."""

    def _abandon(self, on_connect):
        bad = FaultResp(on_connect=on_connect)
        self.addCleanup(bad.stop)
        live = FaultResp()
        self.addCleanup(live.stop)
        port = free_port()
        kw = dict(COMMON, EXCHANGE_RESPONSE_TIMEOUT=300)
        pmx = self.start_proximux(mux_env(port, [bad.address, live.address], "resp", conns=2,
                                          mode="funnel", **kw))
        errors = []
        with Resp(port, timeout=5 * TF) as r:
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < 2.5:
                i += 1
                got = r.command("ECHO", "e%d" % i)
                if got != b"e%d" % i:
                    self.assertTrue(is_proximux_error(got), got)
                    if time.monotonic() - t0 > 1.0:
                        errors.append(got.args[0])
                time.sleep(0.01)
        self.assertEqual(errors, [], "errors 1 s after start, with a live target")
        self.assert_proximux_ok(pmx)

    def test_f1_funnel_leaves_target_that_closes(self):
        self._abandon("close")

    def test_f2_funnel_leaves_target_that_never_answers(self):
        self._abandon("mute")
