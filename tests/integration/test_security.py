"""Security acceptance tests for the multiplexed modes: no client can make
another client receive a response to a request it did not send, or make
the upstream run bytes Proximux did not frame as that client's request.

Every case starts its own Proximux in front of a real server (redis-server,
memcached -vv, nginx) or a logging/scripted HTTP upstream, runs victim
clients that check they get exactly their own replies, in order and in
time, while an attacker sends the exact bytes of a known attack, then
checks:
  - the victims: every reply is exactly the one expected (a foreign value,
    +QUEUED, a desync, an error reply, a refusal or a close all fail), and
    each came within exchange.response_timeout plus slack;
  - the attacker: it gets an error from Proximux (resp "-ERR proximux: ",
    memcache CLIENT_ERROR/SERVER_ERROR, http 4xx or 501 then a close) or is
    closed, within the same bound;
  - the server's own view: Redis MONITOR and CLIENT LIST on a direct
    connection, memcached's -vv command log, the HTTP upstream's request
    log, nginx's access log: nothing but the victims' requests ran.
Each case runs in fifo async (one pipelined upstream connection) and in
funnel sync (two connections, one request at a time on each).

The memory cases hold huge partial requests open from 8 clients with
limits.request_memory = 16 MiB and check Proximux's peak RSS stays under
budget + 32 MiB (skipped under AddressSanitizer or valgrind) while the
victims are served.

PMX_IT_TIME_FACTOR multiplies every time bound."""

import os
import random
import re
import selectors
import socket
import threading
import time

import harness
from harness import (ProximuxTestCase, RedisServer, Resp, free_port, resp_encode,
                     run_proximux)
from muxlib import McClient, config_env, is_proximux_error, mc_value
from peers.security_peers import (FORGED, BuggyHttpUpstream, LoggingHttpUpstream, MemcachedVV,
                                  NginxServer, RedisMonitor, instrumented, redis_client_list,
                                  vm_status)

TF = harness.TIME_FACTOR
RT_MS = int(1000 * TF)                  # exchange.response_timeout in every case
SLACK = 2.0 * TF
BOUND = RT_MS / 1000.0 + SLACK          # longest any client may wait for an answer
MIB = 1 << 20
BUDGET = 16 * MIB                       # limits.request_memory in the memory cases
RSS_SLACK = 32 * MIB

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def note(text):
    if os.environ.get("PMX_IT_VERBOSE"):
        print("\n    " + text, flush=True)


def suffixes(n, seed):
    """n distinct random hex suffixes (the audit needed 9 to 730 tries for
    one NUL-suffixed name to hit the real command's hash bucket)."""
    rng = random.Random(seed)
    out = set()
    while len(out) < n:
        out.add(b"%06x" % rng.getrandbits(24))
    return sorted(out)


def sent_upstream(error):
    """True for a Proximux error that says a request went upstream (a
    failure or timeout there) rather than that it was refused."""
    return "upstream" in error or "timeout" in error


def read_for(sock, seconds):
    """What sock receives within seconds: (bytes, closed) where closed
    means EOF or a reset."""
    deadline = time.monotonic() + seconds
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            b = sock.recv(1 << 20)
            if not b:
                return b"".join(chunks), True
            chunks.append(b)
    except socket.timeout:
        pass
    except (ConnectionResetError, ConnectionAbortedError):
        return b"".join(chunks), True
    return b"".join(chunks), False


def read_line(sock, seconds):
    """What sock receives until a first CRLF (and 0.1 s more, for what
    might follow it), EOF, a reset or seconds: (bytes, closed)."""
    deadline = time.monotonic() + seconds
    out = b""
    try:
        while b"\r\n" not in out:
            left = deadline - time.monotonic()
            if left <= 0:
                return out, False
            sock.settimeout(left)
            b = sock.recv(65536)
            if not b:
                return out, True
            out += b
    except socket.timeout:
        return out, False
    except (ConnectionResetError, ConnectionAbortedError):
        return out, True
    more, closed = read_for(sock, 0.1)
    return out + more, closed


def send_quietly(sock, data):
    """sendall, but a connection Proximux already closed is not an error
    here (refusing and closing is an accepted answer to an attack)."""
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- victims

class Victims:
    """n victim clients, each on its own connection in its own thread,
    doing rounds of requests through Proximux: round_fn(conn, vid, i)
    sends round i and raises AssertionError unless it got exactly its own
    replies. Any failure, a socket timeout (no answer within BOUND), a
    close or a refused connection is recorded as a problem; the victim
    then reconnects and goes on (up to 3 problems each), so that every
    attack case is judged on its own."""

    def __init__(self, connect, round_fn, n=2, pause=0.002):
        self.connect, self.round_fn, self.n, self.pause = connect, round_fn, n, pause
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.rounds = [0] * n
        self.failed = [0] * n
        self.problems = []
        self.phase = "before the attack"
        self.max_latency = 0.0
        self.threads = []

    def _run(self, vid):
        conn, i = None, 0
        while not self.stop_ev.is_set() and self.failed[vid] < 3:
            try:
                if conn is None:
                    conn = self.connect()
                t0 = time.monotonic()
                self.round_fn(conn, vid, i)
                dt = time.monotonic() - t0
                with self.lock:
                    self.rounds[vid] += 1
                    self.max_latency = max(self.max_latency, dt)
            except BaseException as e:      # recorded, then a new connection
                if isinstance(e, socket.timeout):
                    e = "no answer within %.1fs" % BOUND
                with self.lock:
                    self.failed[vid] += 1
                    self.problems.append("victim %d round %d (%s): %s" % (vid, i, self.phase, e))
                if conn is not None:
                    conn.close()
                conn = None
            i += 1
            time.sleep(self.pause)
        if conn is not None:
            conn.close()

    def start(self, warm=3):
        self.threads = [threading.Thread(target=self._run, args=(v,), daemon=True)
                        for v in range(self.n)]
        for t in self.threads:
            t.start()
        self.wait_more(warm, [0] * self.n)
        return self

    def mark(self):
        with self.lock:
            return list(self.rounds)

    def wait_more(self, k, mark=None, timeout=None):
        """Waits until every victim has done k rounds since mark (default:
        now), or has given up; records a problem if not within timeout."""
        mark = self.mark() if mark is None else mark
        deadline = time.monotonic() + (timeout or 10 * TF)
        while True:
            with self.lock:
                done = all(r - m >= k or f >= 3 for r, m, f in zip(self.rounds, mark, self.failed))
            if done:
                return
            if time.monotonic() > deadline:
                with self.lock:
                    self.problems.append("victims did only %s rounds of %d (%s) within %.0fs"
                                         % ([r - m for r, m in zip(self.rounds, mark)], k,
                                            self.phase, timeout or 10 * TF))
                return
            time.sleep(0.01)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(BOUND + 5 * TF)
        with self.lock:
            if any(t.is_alive() for t in self.threads):
                self.problems.append("a victim thread is still running")
            return list(self.problems)


def redis_victim(port, direct_port):
    """Victims for Redis: each round pipelines SET and GET of a key and
    value of its own, GET of a key set for it beforehand, and ECHO of a
    token: ["OK", value, pre-value, token], nothing else."""
    def connect():
        return Resp(port, timeout=BOUND)

    def round_fn(r, vid, i):
        key = "victim:%d:%d" % (vid, i)
        val = b"value-%d-%d-%08x" % (vid, i, random.getrandbits(32))
        tok = b"token-%d-%d" % (vid, i)
        r.sock.sendall(resp_encode("SET", key, val) + resp_encode("GET", key) +
                       resp_encode("GET", "victim:%d:pre" % vid) + resp_encode("ECHO", tok))
        got = [r.read_reply() for _ in range(4)]
        want = ["OK", val, b"pre-%d" % vid, tok]
        if got != want:
            raise AssertionError("got %r, expected %r" % (got, want))

    with Resp(direct_port) as d:
        for vid in range(4):
            d.command("SET", "victim:%d:pre" % vid, b"pre-%d" % vid)
    return connect, round_fn


def mc_victim(port, direct_port):
    """Victims for memcached: each round pipelines a set of its own key,
    its get, and a get of victim_<vid> (set beforehand)."""
    def connect():
        return McClient(port, timeout=BOUND)

    def round_fn(c, vid, i):
        key = b"victim_%d_%d" % (vid, i)
        val = b"value-%d-%d-%08x" % (vid, i, random.getrandbits(32))
        c.sock.sendall(b"set %s 0 0 %d\r\n%s\r\nget %s\r\nget victim_%d\r\n"
                       % (key, len(val), val, key, vid))
        got = [c.read_line_reply(), c.read_values(), c.read_values()]
        want = [b"STORED\r\n", mc_value(key, val) + b"END\r\n",
                mc_value(b"victim_%d" % vid, b"pre-%d" % vid) + b"END\r\n"]
        if got != want:
            raise AssertionError("got %r, expected %r" % (got, want))

    with McClient(direct_port) as d:
        for vid in range(4):
            d.command(b"set victim_%d 0 0 5\r\npre-%d\r\n" % (vid, vid))
    return connect, round_fn


class HttpReader(harness.BufferedClient):
    """Raw HTTP/1.1 client reading responses with Content-Length, chunked
    or no body."""

    def response(self, head_only=False):
        """(status code, headers with lower-case names, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        try:
            code = int(lines[0].split(" ")[1])
            headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        except (IndexError, ValueError):
            raise AssertionError("bad response head %r" % head[:300])
        if head_only or code in (204, 304) or 100 <= code < 200:
            return code, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._fill()
                body, self.buf = body + self.buf[:n], self.buf[n + 2:]
                if n == 0:
                    return code, headers, body
        n = int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return code, headers, body


def http_victim(port, body_of):
    """Victims for HTTP: each round pipelines GET /victim/<vid>/<i>/a and
    .../b on a kept-alive connection; each must be 200 with body_of(path)."""
    def connect():
        return HttpReader(port, timeout=BOUND)

    def round_fn(c, vid, i):
        paths = [b"/victim/%d/%d/%s" % (vid, i, x) for x in (b"a", b"b")]
        c.sock.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: victim\r\n\r\n" % p for p in paths))
        for p in paths:
            code, h, body = c.response()
            if (code, body) != (200, body_of(p)):
                raise AssertionError("GET %s: got %d %r, expected 200 %r"
                                     % (p.decode(), code, body[:200], body_of(p)))

    return connect, round_fn


def python_body(path):
    return b"path=" + path


def nginx_body(path):
    return path + b"\n"


# ---------------------------------------------------------------- base

class _Security:
    """One attack case = a fresh Proximux, victims, the attack, checks.
    Problems are collected (victims, attacker, server) and reported
    together, one subTest per case."""

    CONFIG = None
    CODEC = None

    def run_case(self, name, target, victim, attack, check_server=None, settings=None,
                 nvictims=2, after_rounds=10):
        with self.subTest(case=name):
            problems = []
            port = free_port()
            env = dict(EXCHANGE_RESPONSE_TIMEOUT=RT_MS, SHUTDOWN_TIMEOUT=2000)
            env.update(settings or {})
            pmx = self.start_proximux(config_env(port, [target], self.CODEC, self.CONFIG, **env))
            connect, round_fn = victim(port)
            victims = self.victims = Victims(connect, round_fn, nvictims)
            try:
                victims.start()
                victims.phase = "during the attack"
                t0 = time.monotonic()
                attack(pmx, port, problems)
                t_after = time.monotonic()
                victims.phase = "after the attack (%.1fs)" % (t_after - t0)
                victims.wait_more(after_rounds)
            finally:
                problems[:0] = victims.stop()
            t1 = time.monotonic()
            if check_server is not None:
                check_server(problems)
            t2 = time.monotonic()
            code = pmx.stop()
            note("%s [%s]: attack %.2fs, after %.2fs, check %.2fs, stop %.2fs"
                 % (name, self.CONFIG, t_after - t0, t1 - t_after, t2 - t1, time.monotonic() - t2))
            if code != 0:
                problems.append("proximux exited with %s" % code)
            if problems:
                self.fail("%s [%s]:\n  %s" % (name, self.CONFIG, "\n  ".join(problems)))


# ---------------------------------------------------------------- redis

NESTED = b'EVAL "return {{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}}" 0'


def nested_reply(depth=18):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


class _RedisSecurity(_Security):
    CODEC = "resp"

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    @property
    def target(self):
        return ("127.0.0.1", self.redis.port)

    def direct(self, *args):
        """One command on a direct connection to redis-server (not through
        Proximux), for a case's setup, which runs before MONITOR starts."""
        with Resp(self.redis.port) as d:
            return d.command(*args)

    def redis_case(self, name, attack, allowed=(), settings=None, setup=None):
        """Runs attack (port, problems) against Proximux in front of
        redis-server, then checks Redis's own view: MONITOR saw no command
        from Proximux but the victims' (SET, GET, ECHO) and `allowed`, no
        command name with a NUL, nothing outside db 0; CLIENT LIST shows no
        connection in MULTI, subscribed, blocked, monitoring or on another
        db; db 9 is empty."""
        self.redis.cli("FLUSHALL")
        if setup:
            setup()
        monitor = RedisMonitor(self.redis.port)
        self.addCleanup(monitor.stop)
        allowed = {b"set", b"get", b"echo"} | {a.encode() for a in allowed}

        def check_server(problems):
            bad = [e for e in monitor.entries() if e.db != 0 or b"\0" in e.args[0] or e.name() not in allowed]
            if bad:
                problems.append("redis executed %d command(s) it should never have seen, e.g. %s"
                                % (len(bad), bad[:5]))
            mine = monitor.sock.getsockname()
            for cl in redis_client_list(self.redis.port):
                if cl.get("addr") == "%s:%d" % mine:
                    continue
                state = {k: cl.get(k) for k in ("flags", "db", "sub", "psub", "ssub", "multi", "cmd")}
                if (state["flags"] != "N" or state["db"] != "0" or state["multi"] != "-1"
                        or any(state[k] not in ("0", None) for k in ("sub", "psub", "ssub"))):
                    problems.append("redis connection %s left in state %s" % (cl.get("addr"), state))
            with Resp(self.redis.port) as d:
                d.command("SELECT", 9)
                n = d.command("DBSIZE")
            if n:
                problems.append("db 9 has %d keys: a smuggled SELECT took effect" % n)

        victim = lambda port: redis_victim(port, self.redis.port)
        self.run_case(name, self.target, victim, attack, check_server, settings)

    def resp_attack(self, port, payload, n, problems, what, accept=None, refusal=True):
        """Sends payload (n requests) on a new connection; each reply must
        be a Proximux error (or accept(reply) true), until n replies or a
        close, each within BOUND. With refusal, an error about the upstream
        or a timeout does not count: the request was sent, not refused.
        The first wrong reply is recorded; the rest are still read, so that
        the whole attack reaches whatever it can reach."""
        bad = None
        with Resp(port, timeout=BOUND) as r:
            send_quietly(r.sock, payload)
            for i in range(n):
                try:
                    reply = r.read_reply()
                except (ConnectionError, OSError) as e:
                    if isinstance(e, socket.timeout) and bad is None:
                        bad = "no reply to request %d within %.1fs" % (i, BOUND)
                    break
                if accept is not None and accept(reply):
                    continue
                if bad is None and (not is_proximux_error(reply) or
                                    (refusal and sent_upstream(reply.args[0]))):
                    bad = ("reply %d is %r, not a refusal by proximux: the request reached "
                           "the upstream" % (i, reply))
        if bad is not None:
            problems.append("attacker (%s): %s" % (what, bad))

    def nul_names(self, name, args, n, seed):
        """n requests whose command name is name + NUL + random hex, then args."""
        return b"".join(resp_encode(name + b"\0" + s, *args) for s in suffixes(n, seed))

    def test_multi_exec_nul(self):
        """MULTI\\0<hex> x 2000 pipelined, then EXEC\\0<hex> x 2000: Redis
        compares command names up to the NUL, so one of them runs MULTI on
        the shared connection and the victims get +QUEUED."""
        def attack(pmx, port, problems):
            self.resp_attack(port, self.nul_names(b"MULTI", (), 2000, 1), 2000, problems, "MULTI\\0")
            self.resp_attack(port, self.nul_names(b"EXEC", (), 2000, 2), 2000, problems, "EXEC\\0")
        self.redis_case("MULTI/EXEC with NUL suffixes", attack)

    def test_select_nul(self):
        def attack(pmx, port, problems):
            self.resp_attack(port, self.nul_names(b"SELECT", (b"9",), 2000, 3), 2000, problems,
                             "SELECT\\0 9")
        self.redis_case("SELECT\\0<hex> 9", attack)

    def test_subscribe_monitor_nul(self):
        def attack(pmx, port, problems):
            self.resp_attack(port, self.nul_names(b"SUBSCRIBE", (b"ch",), 2000, 4), 2000, problems,
                             "SUBSCRIBE\\0")
            self.resp_attack(port, self.nul_names(b"MONITOR", (), 2000, 5), 2000, problems, "MONITOR\\0")
        self.redis_case("SUBSCRIBE/MONITOR with NUL suffixes", attack)

    def test_client_reply_nul(self):
        """CLIENT\\0<hex> REPLY OFF|SKIP: a hit silences the shared
        connection (replies then go to the wrong clients, or never come)."""
        def attack(pmx, port, problems):
            self.resp_attack(port, self.nul_names(b"CLIENT", (b"REPLY", b"OFF"), 1000, 6), 1000,
                             problems, "CLIENT\\0 REPLY OFF")
            self.resp_attack(port, self.nul_names(b"CLIENT", (b"REPLY", b"SKIP"), 1000, 7), 1000,
                             problems, "CLIENT\\0 REPLY SKIP")
            self.resp_attack(port, resp_encode("CLIENT", "REPLY", b"OFF\0x") +
                             resp_encode("CLIENT", b"REPLY\0x", "SKIP"), 2, problems,
                             "CLIENT REPLY OFF\\0")
        self.redis_case("CLIENT REPLY OFF/SKIP with NUL suffixes", attack)

    def test_inline_nul(self):
        """Inline PING\\0 and \\0PING: Redis looks for the end of an inline
        line with strchr, so a NUL before the newline leaves the shared
        connection waiting for a line end forever: this request and every
        later one on that connection go unanswered."""
        def attack(pmx, port, problems):
            self.resp_attack(port, b"PING\0\r\n", 1, problems, "inline PING\\0")
            self.resp_attack(port, b"\0PING\r\n", 1, problems, "inline \\0PING")
            self.resp_attack(port, b"\0PING\r\n" + resp_encode("ECHO", "after"), 2, problems,
                             "inline \\0PING + ECHO", accept=lambda r: r == b"after")
        self.redis_case("inline commands with NUL", attack)

    def test_blocking_xread(self):
        """XREAD/XREADGROUP BLOCK 0 would hold a shared connection forever:
        they run on a dedicated connection of their client (SPEC §13),
        which is closed when the client leaves; the victims go on within
        the bound and no blocked connection is left."""
        def setup():
            self.direct("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM")

        def attack(pmx, port, problems):
            for what, payload in (("XREAD BLOCK 0", resp_encode("XREAD", "BLOCK", "0", "STREAMS", "s", "$")),
                                  ("XREADGROUP BLOCK 0", resp_encode("XREADGROUP", "GROUP", "g", "c", "BLOCK", "0",
                                                                     "STREAMS", "s", ">"))):
                with Resp(port, timeout=BOUND) as r:
                    r.sock.sendall(payload)
                    r.sock.settimeout(0.3)
                    try:
                        problems.append("attacker (%s): answered %r while it should block" % (what, r.read_reply()))
                    except socket.timeout:
                        pass
            deadline = time.monotonic() + BOUND
            while any("b" in (cl.get("flags") or "") for cl in redis_client_list(self.redis.port)):
                if time.monotonic() > deadline:
                    problems.append("a blocked connection outlived its client")
                    break
                time.sleep(0.02)
        self.redis_case("XREAD/XREADGROUP BLOCK 0", attack, setup=setup,
                        allowed=("xread", "xreadgroup", "client"))  # client: the CLIENT LIST polling above

    def test_deep_reply(self):
        """A reply nested 18 deep: the attacker gets it or an error; the
        victims' replies on the same connection are not lost."""
        def attack(pmx, port, problems):
            for k in range(3):
                self.resp_attack(port, NESTED + b"\r\n" + resp_encode("ECHO", "after"), 2, problems,
                                 "nested reply", accept=lambda r: r in (nested_reply(), b"after"),
                                 refusal=False)
        self.redis_case("reply nested 18 deep", attack, allowed=("eval",))

    def test_reply_over_max_message(self):
        """With max_message 64 KiB, GET of a 1 MB value fails the
        attacker's request only (or is passed whole), never the victims'."""
        value = os.urandom(1 << 20)

        def setup():
            self.direct("SET", "big", value)

        def attack(pmx, port, problems):
            for k in range(3):
                self.resp_attack(port, resp_encode("GET", "big") + resp_encode("ECHO", "after"), 2,
                                 problems, "GET 1 MB", accept=lambda r: r in (value, b"after"),
                                 refusal=False)
        self.redis_case("reply larger than max_message", attack, setup=setup,
                        settings=dict(EXCHANGE_MAX_MESSAGE=65536))


class RedisFifoAsync(_RedisSecurity, ProximuxTestCase):
    CONFIG = "fifo_async"


class RedisFunnel2Sync(_RedisSecurity, ProximuxTestCase):
    CONFIG = "funnel2_sync"


# ---------------------------------------------------------------- memcached

MC_VICTIM_LINE = re.compile(r"^(set victim_\d+(_\d+)? 0 0 \d+|get victim_\d+(_\d+)?)$")
MC_NOT_COMMANDS = ("new auto-negotiating client connection", "connection closed.")


class _MemcachedSecurity(_Security):
    CODEC = "memcache"

    @classmethod
    def setUpClass(cls):
        cls.mc = MemcachedVV()

    @classmethod
    def tearDownClass(cls):
        cls.mc.stop()

    def mc_case(self, name, parts, what):
        """The attacker sends parts (one write each, 50 ms apart) on a new
        connection and must get CLIENT_ERROR/SERVER_ERROR or a close;
        memcached's -vv log must show no command but the victims'."""
        with McClient(self.mc.port) as d:
            d.command(b"set secret 0 0 9\r\nTOPSECRET\r\n")
        start = len(self.mc.log())

        def attack(pmx, port, problems):
            with harness.connect(port, BOUND) as s:
                for p in parts:
                    if not send_quietly(s, p):
                        break
                    time.sleep(0.05)
                out, closed = read_line(s, BOUND)
            first = out.split(b"\r\n", 1)[0]
            if not out and not closed:
                problems.append("attacker (%s): no answer and not closed within %.1fs" % (what, BOUND))
            elif out and (not first.startswith((b"CLIENT_ERROR", b"SERVER_ERROR"))
                          or sent_upstream(first.decode("latin-1"))):
                problems.append("attacker (%s): got %r, not a proximux error: the request "
                                "reached memcached" % (what, out[:200]))
            elif b"TOPSECRET" in out:
                problems.append("attacker (%s): got the secret: %r" % (what, out[:200]))

        def check_server(problems):
            ran = [c for c in self.mc.commands(start)
                   if c not in MC_NOT_COMMANDS and not MC_VICTIM_LINE.match(c)]
            if ran:
                problems.append("memcached executed %d command(s) not from the victims: %r"
                                % (len(ran), [c[:80] for c in ran[:5]]))

        victim = lambda port: mc_victim(port, self.mc.port)
        self.run_case(name, ("127.0.0.1", self.mc.port), victim, attack, check_server)

    def test_set_key_nul(self):
        """memcached cuts the line at the NUL ("set a": ERROR) and runs the
        data block "get secret" as a command."""
        self.mc_case("set a\\0", [b"set a\x00 0 0 10\r\nget secret\r\n"], "set a\\0")

    def test_delete_noreply_nul(self):
        self.mc_case("delete k noreply\\0", [b"delete k noreply\x00\r\n"], "delete k noreply\\0")

    def test_delete_key_nul_noreply(self):
        self.mc_case("delete k\\0 noreply", [b"delete k\x00 noreply\r\n"], "delete k\\0 noreply")

    def test_meta_set_long_key(self):
        """ms with a 251-byte key: memcached refuses the line without
        reading its data, which runs as a command."""
        self.mc_case("ms <251-byte key>", [b"ms " + b"k" * 251 + b" 10\r\nget secret\r\n"],
                     "ms 251-byte key")

    def test_meta_set_17_flags(self):
        self.mc_case("ms k 10 <17 flags>", [b"ms k 10 " + b" ".join([b"T0"] * 17) + b"\r\nget secret\r\n"],
                     "ms 17 flags")

    def test_long_line(self):
        """A non-get line over 2 KiB without its newline (memcached closes
        the connection on that), completed by a later write."""
        self.mc_case("non-get line over 2 KiB", [b"touch k 0" + b" " * 2100, b"\r\n"], "2 KiB touch")

    def test_gat_over_16k(self):
        line = b"gat 0 " + b" ".join(b"key%d" % i for i in range(3000)) + b"\r\n"
        self.mc_case("gat line over 16 KiB", [line], "16 KiB gat")


class MemcachedFifoAsync(_MemcachedSecurity, ProximuxTestCase):
    CONFIG = "fifo_async"


class MemcachedFunnel2Sync(_MemcachedSecurity, ProximuxTestCase):
    CONFIG = "funnel2_sync"


# ---------------------------------------------------------------- HTTP

def http_attack(port, data, problems, what, allow_answer=False):
    """Sends data on a new connection; the attacker must get one 4xx/501
    response (any one response if allow_answer) and then be closed, or be
    closed at once, within BOUND."""
    with harness.connect(port, BOUND) as s:
        send_quietly(s, data)
        out, closed = read_for(s, BOUND)
    # Status lines only: a reply's body may quote "HTTP/1.0" too.
    responses = len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", out))
    status = out.split(b"\r\n", 1)[0]
    m = re.match(rb"HTTP/1\.[01] (\d{3})", status)
    code = int(m.group(1)) if m else None
    if out and code is None:
        problems.append("attacker (%s): not an HTTP response: %r" % (what, out[:200]))
    elif out and not allow_answer and not (400 <= code < 500 or code == 501):
        problems.append("attacker (%s): got %r, not a refusal: the request reached the upstream"
                        % (what, status))
    if responses > 1:
        problems.append("attacker (%s): got %d responses: %r" % (what, responses, out[:400]))
    if not closed:
        problems.append("attacker (%s): not closed within %.1fs (got %r)" % (what, BOUND, status))


class _HttpSecurity(_Security):
    CODEC = "http"

    def python_case(self, name, data, allow_answer=False, allowed=()):
        """Attack against the logging http.server upstream: afterwards its
        log must hold the victims' GETs (and `allowed`) and nothing else."""
        up = LoggingHttpUpstream()
        self.addCleanup(up.stop)

        def attack(pmx, port, problems):
            http_attack(port, data, problems, name, allow_answer)

        def check_server(problems):
            ran = [r for r in up.requests() if not r.startswith("GET /victim/") and r not in allowed]
            if ran:
                problems.append("the upstream parsed request(s) that are not the victims': %r" % ran[:5])

        self.run_case(name, up.address, lambda port: http_victim(port, python_body), attack, check_server)

    def test_cr_smuggle(self):
        """ "X: y\\r\\r\\n": http.server reads the head up to CRLF CRLF but
        its header parser takes the lone CR for the end of the head, so it
        never sees Content-Length and runs the body as a request (GET
        /smuggled): two responses for one request."""
        self.python_case("header line ending in CR CR LF",
                         b"POST / HTTP/1.1\r\nHost: a\r\nX: y\r\r\nContent-Length: 35\r\n\r\n" + SMUGGLED)

    def test_cr_content_length(self):
        """ "X: y\\rContent-Length: 60": http.server sees a Content-Length
        that Proximux does not, and takes the next request as body."""
        self.python_case("bare CR inside a header line",
                         b"POST / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 60\r\n\r\n" + SMUGGLED)

    def test_upgrade_connect(self):
        self.python_case("Upgrade: websocket",
                         b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                         + SMUGGLED)
        self.python_case("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + SMUGGLED)

    def test_http10_transfer_encoding(self):
        """HTTP/1.0 with Transfer-Encoding: refused, or answered and then
        closed; the request pipelined after it never runs."""
        self.python_case("HTTP/1.0 with Transfer-Encoding",
                         b"POST /te10 HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, allow_answer=True,
                         allowed=("POST /te10",))

    def test_python_close_cases(self):
        """Requests http.server answers with an error and a close."""
        self.python_case("101 headers", b"GET /many HTTP/1.1\r\nHost: a\r\n" +
                         b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n" + SMUGGLED)
        self.python_case("lower-case method", b"get /lower HTTP/1.1\r\nHost: a\r\n\r\n" + SMUGGLED)

    def test_nginx_close_cases(self):
        """Requests nginx answers with 400/501 and a close (and two it
        accepts but other servers frame differently: 101 headers, a header
        line ending in CR CR LF): refused by Proximux and the attacker
        closed; nginx's access log shows only the victims. Skipped when
        nginx is not installed."""
        nginx = NginxServer()
        self.addCleanup(nginx.stop)
        cases = [
            ("missing Host", b"GET /nohost HTTP/1.1\r\n\r\n"),
            ("duplicate Content-Length", b"POST /dupcl HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                                         b"Content-Length: 5\r\n\r\nhello"),
            ("Transfer-Encoding: identity, chunked", b"POST /te HTTP/1.1\r\nHost: a\r\n"
             b"Transfer-Encoding: identity, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("Transfer-Encoding: \\tchunked", b"POST /te HTTP/1.1\r\nHost: a\r\n"
             b"Transfer-Encoding: \tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("Transfer-Encoding: chunked;q=1", b"POST /te HTTP/1.1\r\nHost: a\r\n"
             b"Transfer-Encoding: chunked;q=1\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("HTTP/1.0 with Transfer-Encoding", b"POST /te10 HTTP/1.0\r\nHost: a\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            ("NUL in a header value", b"GET /ctl HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n"),
            ("control byte in a header name", b"GET /ctl HTTP/1.1\r\nHost: a\r\nX\x01A: b\r\n\r\n"),
            ("lower-case method", b"get /lower HTTP/1.1\r\nHost: a\r\n\r\n"),
            ("header line over 8 KiB", b"GET /long HTTP/1.1\r\nHost: a\r\nX-Long: " + b"a" * 9000 +
             b"\r\n\r\n"),
            ("101 headers", b"GET /many HTTP/1.1\r\nHost: a\r\n" +
             b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n"),
            ("bare CR in a header line", b"POST /cr HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 60\r\n\r\n"),
            ("header line ending in CR CR LF", b"POST /crcrlf HTTP/1.1\r\nHost: a\r\nX: y\r\r\n"
             b"Content-Length: 35\r\n\r\n" + SMUGGLED),
        ]
        victim = lambda port: http_victim(port, nginx_body)
        for name, data in cases:
            start = len(nginx.access())

            def attack(pmx, port, problems, data=data, name=name):
                http_attack(port, data + SMUGGLED, problems, name)

            def check_server(problems, start=start):
                lines = nginx.access()[start:]
                ran = [l for l in lines if not re.match(r'^200 "GET /victim/\S+ HTTP/1\.1"$', l)]
                if ran:
                    problems.append("nginx got request(s) that are not the victims': %r" % ran[:5])

            self.run_case(name, nginx.address, victim, attack, check_server)

    def test_bodies_where_none_may_be(self):
        """A buggy upstream sends a body (a whole forged response) after a
        204, a 304 or a HEAD response: the stray bytes never reach the next
        client, nor the attacker's next request."""
        up = BuggyHttpUpstream()
        self.addCleanup(up.stop)
        victim = lambda port: http_victim(port, python_body)
        for name, req, head_only in (("204 with a body", b"GET /bug/204 HTTP/1.1\r\nHost: a\r\n\r\n", False),
                                     ("304 with a body", b"GET /bug/304 HTTP/1.1\r\nHost: a\r\n\r\n", False),
                                     ("HEAD with a body", b"HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n", True)):
            def attack(pmx, port, problems, req=req, head_only=head_only, name=name):
                for k in range(5):
                    with HttpReader(port, timeout=BOUND) as c:
                        after = b"/attacker/after/%d" % k
                        c.sock.sendall(req + b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % after)
                        try:
                            c.response(head_only)
                            code, h, body = c.response()
                        except (ConnectionError, OSError):
                            continue            # refused or closed: fine
                        if FORGED[-20:] in body or (code == 200 and body != b"path=" + after):
                            problems.append("attacker (%s): its next request got %d %r"
                                            % (name, code, body[:100]))
                            return
                    time.sleep(0.02)

            self.run_case(name, up.address, victim, attack)

    def test_slow_upstream_timeout(self):
        """An upstream that takes 10 s: the attacker gets 504 within the
        response timeout (+ slack); victims are answered within that bound."""
        up = LoggingHttpUpstream()
        self.addCleanup(up.stop)

        def attack(pmx, port, problems):
            with HttpReader(port, timeout=BOUND) as c:
                t0 = time.monotonic()
                c.sock.sendall(b"GET /sleep/10000/x HTTP/1.1\r\nHost: a\r\n\r\n")
                try:
                    code, h, body = c.response()
                except OSError:
                    code = "nothing"
                dt = time.monotonic() - t0
                if code != 504 or dt > BOUND:
                    problems.append("slow request: got %s after %.1fs, expected 504 within %.1fs"
                                    % (code, dt, BOUND))

        self.run_case("upstream slower than the response timeout", up.address,
                      lambda port: http_victim(port, python_body), attack)


class HttpFifoAsync(_HttpSecurity, ProximuxTestCase):
    CONFIG = "fifo_async"


class HttpFunnel2Sync(_HttpSecurity, ProximuxTestCase):
    CONFIG = "funnel2_sync"


# ---------------------------------------------------------------- memory

class _MemorySecurity(_Security):
    """8 clients each announce a 40 MB request and push its bytes as fast
    as Proximux takes them, then trickle; limits.request_memory is 16 MiB."""

    ATTACKERS = 8
    ANNOUNCED = 40000000

    def memory_case(self, name, codec, target, victim, header):
        """Opens the attackers, sends each one header, pushes body bytes
        until Proximux stops taking them from every attacker (no progress
        for 1 s), closes them, or its RSS passes budget + slack; then
        trickles for 1 s while the victims must be served."""
        self.CODEC = codec

        def attack(pmx, port, problems):
            pid = pmx.proc.pid
            measure = not instrumented(pid)
            # Instrumented builds are not measured: offer them less.
            cap = self.ANNOUNCED - 1 if measure else BUDGET
            chunk = b"x" * (256 << 10)
            socks, sent, last, closed = [], [0] * self.ATTACKERS, [0.0] * self.ATTACKERS, set()
            sel = selectors.DefaultSelector()
            try:
                for i in range(self.ATTACKERS):
                    s = harness.connect(port, 5)
                    s.sendall(header)
                    s.setblocking(False)
                    socks.append(s)
                    sel.register(s, selectors.EVENT_WRITE, i)
                    last[i] = time.monotonic()
                stall = 1.0 * TF
                deadline = time.monotonic() + 20 * TF
                peak, rss_over = 0, False
                while True:
                    now = time.monotonic()
                    rss = vm_status(pid).get("VmRSS", 0) * 1024
                    peak = max(peak, rss)
                    if measure and rss > BUDGET + RSS_SLACK:
                        rss_over = True
                        break
                    open_ = [i for i in range(self.ATTACKERS) if i not in closed]
                    if all(now - last[i] > stall for i in open_) or now > deadline:
                        break
                    for key, _ in sel.select(0.05):
                        i = key.data
                        room = cap - sent[i]
                        if room <= 0:
                            continue
                        try:
                            n = key.fileobj.send(chunk[:room])
                        except BlockingIOError:
                            continue
                        except OSError:
                            closed.add(i)
                            sel.unregister(key.fileobj)
                            continue
                        sent[i] += n
                        last[i] = time.monotonic()
                if not rss_over:
                    full = [i for i in range(self.ATTACKERS) if sent[i] >= cap]
                    if full and measure:
                        problems.append("attackers %s pushed all %d bytes: proximux never stopped "
                                        "reading them" % (full, cap))
                    if now > deadline:
                        problems.append("attackers still being read after %.0fs (sent %s MiB)"
                                        % (20 * TF, [x >> 20 for x in sent]))
                    # The slow trickle: a byte now and then from each attacker,
                    # while the victims must go on being served.
                    mark = self.victims.mark()
                    for _ in range(10):
                        for i, s in enumerate(socks):
                            if i not in closed:
                                try:
                                    s.send(b"x")
                                except BlockingIOError:
                                    pass
                                except OSError:
                                    closed.add(i)
                        peak = max(peak, vm_status(pid).get("VmRSS", 0) * 1024)
                        time.sleep(0.1)
                    self.victims.wait_more(3, mark, timeout=BOUND)
                hwm = vm_status(pid).get("VmHWM", 0) * 1024
                summary = "sent %s MiB, %d closed" % ([x >> 20 for x in sent], len(closed))
                if measure and max(peak, hwm) > BUDGET + RSS_SLACK:
                    problems.append("proximux RSS peaked at %d MiB, over budget %d MiB + %d MiB (%s)"
                                    % (max(peak, hwm) >> 20, BUDGET >> 20, RSS_SLACK >> 20, summary))
            finally:
                sel.close()
                for s in socks:
                    s.close()

        self.run_case(name, target, victim, attack,
                      settings=dict(LIMITS_REQUEST_MEMORY=BUDGET), after_rounds=5)

    def test_redis_partial_bulks(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        self.memory_case("8 clients holding 40 MB RESP bulks", "resp", ("127.0.0.1", redis.port),
                         lambda port: redis_victim(port, redis.port),
                         b"*2\r\n$3\r\nSET\r\n$%d\r\n" % self.ANNOUNCED)

    def test_http_partial_bodies(self):
        up = LoggingHttpUpstream()
        self.addCleanup(up.stop)
        self.memory_case("8 clients holding 40 MB HTTP bodies", "http", up.address,
                         lambda port: http_victim(port, python_body),
                         b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % self.ANNOUNCED)


class MemoryFifoAsync(_MemorySecurity, ProximuxTestCase):
    CONFIG = "fifo_async"


class MemoryFunnel2Sync(_MemorySecurity, ProximuxTestCase):
    CONFIG = "funnel2_sync"


# ---------------------------------------------------------------- settings

class SecurityDefaults(ProximuxTestCase):
    """The settings the fixes rely on: exchange.response_timeout defaults
    to 30000 ms; limits.request_memory exists (YAML and env)."""

    BASE = dict(LOCAL_PORT=1, PROXY_CONNECTIONS_CNT=1, TARGET_HOST_1="127.0.0.1", TARGET_PORT_1=2)

    def test_response_timeout_default(self):
        code, out, err = run_proximux(["-t"], env=self.BASE)
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"(?m)^\s*response_timeout: 30000\b")

    def test_request_memory_setting(self):
        code, out, err = run_proximux(["-t"], env=dict(self.BASE, LIMITS_REQUEST_MEMORY=BUDGET))
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"(?m)^\s*request_memory: %d\b" % BUDGET)
        code, out, err = run_proximux(["-t"], env=self.BASE,
                                      yaml="limits:\n  request_memory: %d\n" % BUDGET)
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"(?m)^\s*request_memory: %d\b" % BUDGET)
