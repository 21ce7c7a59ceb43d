"""The upstream layer with the real binary (SPEC sections 8 and 9): fail-over
from a dead target and round robin across services with two listeners each;
ip_hash by client address; a FIFO Redis service through the outage of both
of its redis-servers (figures printed per step); a send/expect probe that
marks a target answering wrong as down; limits.max_active/max_queued in
fifo and proxy mode; a target down at start that comes up later.

A unix-socket redis target in fifo mode is covered by
test_services.py (test_unix_socket_redis_behind_unix_listener)."""

import signal
import socket
import sys
import threading
import time

from harness import (TIME_FACTOR as TF, ProximuxTestCase, Resp, RespError, closed_by_peer,
                     connect, free_port, recv_exact)
from muxlib import RedisProc, assert_silent, is_proximux_error, redis_cli
from peers.upstream_peers import GatedResp, tagged, wrong
from peers.upstreams import Echo

NO_UPSTREAM = "ERR proximux: no upstream available"


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.1fs" % (what, timeout))
        time.sleep(0.02)


def ask(port, line, tag_len, source=None):
    """One client (bound to source address `source` if given) sends line and
    returns the tagged echo (tag_len bytes of tag, then the line)."""
    s = socket.socket()
    s.settimeout(5)
    try:
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(line)
        return recv_exact(s, tag_len + len(line))
    finally:
        s.close()


class UpstreamTestCase(ProximuxTestCase):

    def upstream(self, u):
        self.addCleanup(u.stop)
        return u

    def redis(self, port=None):
        r = RedisProc(port)
        self.addCleanup(r.stop)
        return r


# ---------------------------------------------------------------- proxy mode

class ProxyBalancingTest(UpstreamTestCase):

    def test_multi_app_failover_and_round_robin(self):
        """Two raw proxy services, two listen addresses each. app1: targets
        [dead, echo]: every client is served by echo (connect refused on
        dead, retried on echo) and the log names the dead target. app2:
        two tagged echo targets, round_robin: 10 sequential clients
        alternate between them, 5 each."""
        dead_port = free_port()
        echo = self.upstream(Echo())
        t1 = self.upstream(tagged(b"t1:"))
        t2 = self.upstream(tagged(b"t2:"))
        a1, a2, b1, b2 = (free_port() for _ in range(4))
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: app1\n"
                "    listen: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8 }\n"
                "    targets:\n"
                "      - { name: dead, host: 127.0.0.1, port: %d }\n"
                "      - { name: echo, host: 127.0.0.1, port: %d }\n"
                "  - name: app2\n"
                "    listen: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8 }\n"
                "    balance: round_robin\n"
                "    targets:\n"
                "      - { name: t1, host: 127.0.0.1, port: %d }\n"
                "      - { name: t2, host: 127.0.0.1, port: %d }\n"
                % (a1, a2, dead_port, echo.port, b1, b2, t1.port, t2.port))
        pmx = self.start_proximux(yaml=yaml, port=a1)
        pmx.wait_log(r"service app2: accepting clients on 127\.0\.0\.1:%d" % b2)
        for i in range(8):
            port = (a1, a2)[i % 2]
            with connect(port) as s:
                msg = b"app1 client %d via %d\n" % (i, port)
                s.sendall(msg)
                self.assertEqual(recv_exact(s, len(msg)), msg)
        self.assertEqual(len(echo.records), 8, "every app1 client reached the echo target")
        pmx.wait_log(r"service app1: upstream #\d+ connect to dead \(127\.0\.0\.1:%d\) failed: "
                     r"connect: Connection refused" % dead_port)
        tags = []
        for i in range(10):
            line = b"app2 client %d\n" % i
            got = ask((b1, b2)[i % 2], line, 3)
            self.assertEqual(got[3:], line)
            tags.append(got[:3])
        self.assertEqual(tags.count(b"t1:"), 5, tags)
        self.assertEqual(tags.count(b"t2:"), 5, tags)
        for x, y in zip(tags, tags[1:]):
            self.assertNotEqual(x, y, "round robin did not alternate: %r" % tags)
        self.assertNotRegex(pmx.log(), r"service app2: .*failed", "app2 saw a failure")
        self.assert_proximux_ok(pmx)

    def test_ip_hash_by_source_address(self):
        """ip_hash, three tagged targets: clients from 127.0.0.2 .. 127.0.0.20
        connect three times each; an address always lands on the same
        target, and more than one target is used."""
        self._ip_hash(warmup=False)

    def test_ip_hash_with_warm_spares(self):
        """The same with pool.warmup: a client takes a warm spare only if it
        is on the target its address hashes to, so it lands there whether
        it gets a spare or a new connection."""
        self._ip_hash(warmup=True)

    def _ip_hash(self, warmup):
        ups = [self.upstream(tagged(b"t%d:" % i)) for i in range(3)]
        port = free_port()
        yaml = ("log_level: 1\n"
                "services:\n"
                "  - name: hashed\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 6, warmup: %s }\n"
                "    balance: ip_hash\n"
                "    targets:\n" % (port, "true" if warmup else "false")
                + "".join("      - { name: t%d, host: 127.0.0.1, port: %d }\n" % (i, u.port)
                          for i, u in enumerate(ups)))
        pmx = self.start_proximux(yaml=yaml, port=port)
        placed = {}
        for rnd in range(3):
            for host in range(2, 21):
                src = "127.0.0.%d" % host
                line = b"from %s round %d\n" % (src.encode(), rnd)
                got = ask(port, line, 3, source=src)
                self.assertEqual(got[3:], line)
                placed.setdefault(src, set()).add(got[:3])
        for src, tags in placed.items():
            self.assertEqual(len(tags), 1, "%s landed on %r" % (src, sorted(tags)))
        used = set().union(*placed.values())
        self.assertGreater(len(used), 1, "every address hashed to %r" % used)
        if not warmup:
            # The upstreams saw the client's connections from proximux, each
            # as many as the addresses hashed to it times three rounds.
            counts = {b"t%d:" % i: len(u.records) for i, u in enumerate(ups)}
            for tag, n in counts.items():
                self.assertEqual(n, 3 * sum(1 for t in placed.values() if tag in t), counts)
        self.assert_proximux_ok(pmx)

    def test_proxy_max_active_max_queued(self):
        """Proxy mode, max_active 1, max_queued 1: the second client waits
        (its bytes held), the third is closed at once and the log says why;
        the second is served once the first leaves."""
        echo = self.upstream(Echo())
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: lim\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    pool: { connections: 8 }\n"
                "    limits: { max_active: 1, max_queued: 1 }\n"
                "    targets: [ { name: echo, host: 127.0.0.1, port: %d } ]\n" % (port, echo.port))
        pmx = self.start_proximux(yaml=yaml, port=port)
        first = connect(port)
        self.addCleanup(first.close)
        first.sendall(b"one\n")
        self.assertEqual(recv_exact(first, 4), b"one\n")
        second = connect(port)
        self.addCleanup(second.close)
        second.sendall(b"two\n")
        assert_silent(second, 0.3)
        third = connect(port)
        self.addCleanup(third.close)
        t0 = time.monotonic()
        self.assertTrue(closed_by_peer(third, 2.0 * TF), "third client not closed")
        self.assertLess(time.monotonic() - t0, 1.0 * TF, "third client not closed at once")
        pmx.wait_log(r"limits\.max_active and limits\.max_queued reached")
        self.assertEqual(len(echo.records), 1, "only the first client has an upstream connection")
        assert_silent(second, 0.1)
        first.close()
        second.settimeout(5 * TF)
        self.assertEqual(recv_exact(second, 4), b"two\n")
        second.sendall(b"more\n")
        self.assertEqual(recv_exact(second, 5), b"more\n")
        self.assertEqual(len(echo.records), 2)
        second.close()
        self.assert_proximux_ok(pmx)


# ---------------------------------------------------------------- fifo limits

class FifoLimitsTest(UpstreamTestCase):

    def test_fifo_max_active_max_queued(self):
        """fifo resp (pipelined), max_active 1, max_queued 2, an upstream that
        holds its answers: of 5 clients' requests outstanding at once, the
        first is in flight, the next two wait, the last two get
        "limits.max_queued reached" at once (while the upstream still holds
        the first); once it answers, the three get their own replies."""
        up = self.upstream(GatedResp())
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: lim\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    limits: { max_active: 1, max_queued: 2 }\n"
                "    targets: [ { name: gated, host: 127.0.0.1, port: %d } ]\n" % (port, up.port))
        pmx = self.start_proximux(yaml=yaml, port=port)
        clients = []
        for i in range(5):
            c = Resp(port, timeout=10 * TF)
            self.addCleanup(c.close)
            clients.append(c)
        # The upstream connection is open before the test starts.
        self.assertEqual(clients[0].command("PING"), "PONG")
        up.close()
        base = len(up.seen())
        clients[0].send("ECHO", "c0")
        wait_for(lambda: len(up.seen()) == base + 1, 5 * TF, "upstream saw c0's request")
        clients[1].send("ECHO", "c1")
        clients[2].send("ECHO", "c2")
        time.sleep(0.1)
        for i in (3, 4):
            t0 = time.monotonic()
            clients[i].send("ECHO", "c%d" % i)
            got = clients[i].read_reply()
            self.assertEqual(got, RespError("ERR proximux: limits.max_queued reached"), "client %d" % i)
            self.assertLess(time.monotonic() - t0, 1.0 * TF, "busy error not at once")
        for i in (0, 1, 2):
            assert_silent(clients[i].sock, 0.1)
        self.assertEqual(len(up.seen()), base + 1, "max_active 1: more than one request went upstream")
        up.open()
        for i in (0, 1, 2):
            self.assertEqual(clients[i].read_reply(), b"c%d" % i)
        # The refused clients go on normally.
        for i in (3, 4):
            self.assertEqual(clients[i].command("ECHO", "again%d" % i), b"again%d" % i)
        self.assert_proximux_ok(pmx)


# ---------------------------------------------------------------- health

class HealthTest(UpstreamTestCase):

    def test_probe_expect_marks_wrong_target_down(self):
        """fifo resp, health send "PING\\r\\n" expect "+PONG", check_up,
        fail_after 2, interval 200: the target that answers "-ERR wrong" is
        down with the probe's reason; clients are then served by redis
        only (the wrong target never sees anything but probes)."""
        bad = self.upstream(wrong())
        redis = self.redis()
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    health: { send: \"PING\\r\\n\", expect: \"+PONG\", check_up: true,"
                " fail_after: 2, interval: 200 }\n"
                "    targets:\n"
                "      - { name: wrong, host: 127.0.0.1, port: %d }\n"
                "      - { name: redis, host: 127.0.0.1, port: %d }\n" % (port, bad.port, redis.port))
        pmx = self.start_proximux(yaml=yaml, port=port)
        pmx.wait_log(r"service cache: target wrong \(127\.0\.0\.1:%d\) is down: probe: reply does not start "
                     r"with expected bytes \(2 consecutive failures\)" % bad.port, timeout=5 * TF)
        for i in range(3):
            with Resp(port) as c:
                for n in range(10):
                    self.assertEqual(c.command("SET", "hk:%d:%d" % (i, n), "v%d" % n), "OK")
                    self.assertEqual(c.command("GET", "hk:%d:%d" % (i, n)), b"v%d" % n)
        self.assertEqual(redis_cli(redis.port, "GET", "hk:2:9").strip(), "v9")
        seen = bad.seen()
        self.assertTrue(seen, "the wrong target was never probed")
        self.assertEqual(set(seen), {b"PING\r\n"}, "the wrong target saw client traffic")
        self.assertNotRegex(pmx.log(), r"target redis \(.*\) is down", "redis marked down")
        self.assert_proximux_ok(pmx)

    def test_target_down_at_start_then_up(self):
        """fifo resp, one target with nothing listening: requests get "no
        upstream available" at once; once redis starts on that port, it
        serves within one probe interval (500 ms) plus slack."""
        target_port = free_port()
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    targets: [ { name: late, host: 127.0.0.1, port: %d } ]\n" % (port, target_port))
        pmx = self.start_proximux(yaml=yaml, port=port)
        c = Resp(port, timeout=10 * TF)
        self.addCleanup(c.close)
        longest = 0.0
        deadline = time.monotonic() + 5 * TF
        while True:
            t0 = time.monotonic()
            self.assertEqual(c.command("PING"), RespError(NO_UPSTREAM))
            longest = max(longest, time.monotonic() - t0)
            if "is down" in pmx.log() or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        pmx.wait_log(r"service cache: target late \(127\.0\.0\.1:%d\) is down: connect: Connection refused"
                     % target_port, timeout=1)
        self.assertLess(longest, 1.0 * TF, "a request waited for the dead target")
        # Down: refused at once.
        t0 = time.monotonic()
        self.assertEqual(c.command("PING"), RespError(NO_UPSTREAM))
        self.assertLess(time.monotonic() - t0, 0.5 * TF)
        self.redis(target_port)
        ready = time.monotonic()
        while True:
            got = c.command("PING")
            if got == "PONG":
                break
            self.assertEqual(got, RespError(NO_UPSTREAM))
            self.assertLess(time.monotonic() - ready, 5 * TF, "never served after the target started")
            time.sleep(0.01)
        served_after = time.monotonic() - ready
        print("FIGURES test=down-at-start longest_wait_ms=%d served_after_start_ms=%d"
              % (longest * 1000, served_after * 1000), file=sys.stderr)
        self.assertLess(served_after, 0.5 + 1.0 * TF, "not served within one probe interval")
        pmx.wait_log(r"target late \(127\.0\.0\.1:%d\) is up: 2 successful probes" % target_port, timeout=1)
        self.assertEqual(c.command("SET", "k", "v"), "OK")
        self.assertEqual(c.command("GET", "k"), b"v")
        self.assert_proximux_ok(pmx)


# ---------------------------------------------------------------- outage

class Traffic:
    """Client threads each sending SET k v then GET k (a key of its own per
    round, so a GET answers that value or nil, nothing else) with a short
    pause, recording every request as (sent, replied, kind, detail), kind
    one of ok, nil (a GET that lost the value its SET stored),
    no_upstream, inflight (another proximux error), bad (anything else,
    including a closed connection or a hang)."""

    def __init__(self, port, nthreads, pause=0.005):
        self.port = port
        self.pause = pause
        self.records = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(nthreads)]
        for t in self.threads:
            t.start()

    def _record(self, sent, kind, detail):
        with self.lock:
            self.records.append((sent, time.monotonic(), kind, detail))

    def _call(self, c, want, *args, set_ok=True):
        sent = time.monotonic()
        try:
            got = c.command(*args)
        except (OSError, ConnectionError) as e:
            self._record(sent, "bad", "%s: %r" % (args[0], e))
            return "bad"
        if got == want:
            kind = "ok"
        elif got is None and args[0] == "GET":
            # Right when the SET failed; lost when it had succeeded (on the
            # target the connection used before a switch).
            kind = "nil" if set_ok else "ok"
        elif got == RespError(NO_UPSTREAM):
            kind = "no_upstream"
        elif is_proximux_error(got):
            kind = "inflight"
        else:
            kind = "bad"
        self._record(sent, kind, got)
        return kind

    def _run(self, i):
        n = 0
        try:
            c = Resp(self.port, timeout=10 * TF)
        except OSError as e:
            self._record(time.monotonic(), "bad", "connect: %r" % e)
            return
        with c:
            while not self.stopping.is_set():
                n += 1
                key, val = "k:%d:%d" % (i, n), "v:%d:%d" % (i, n)
                kind = self._call(c, "OK", "SET", key, val)
                if kind == "bad":
                    return
                if self._call(c, val.encode(), "GET", key, set_ok=kind == "ok") == "bad":
                    return
                time.sleep(self.pause)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(15)

    def replied(self, start, end=None):
        """The requests answered in [start, end)."""
        with self.lock:
            return [r for r in self.records if r[1] >= start and (end is None or r[1] < end)]

    def ok_since(self, t):
        """Successes of requests sent at or after t."""
        with self.lock:
            return sum(1 for r in self.records if r[0] >= t and r[2] == "ok")


class OutageTest(UpstreamTestCase):

    @staticmethod
    def _figures(step, recs, event, extra=""):
        """Prints one FIGURES line for the requests answered after event
        (a kill, a restart) and before the next step: how many failed, the
        longest a client waited for a reply (from sending it), and the
        longest it waited after the event (for a request already waiting
        then: the kills come while a DEBUG SLEEP holds every client's
        request on purpose, which the first figure includes)."""
        failed = [r for r in recs if r[2] in ("no_upstream", "inflight")]
        longest = max((r[1] - r[0] for r in recs), default=0)
        after = max((r[1] - max(r[0], event) for r in recs), default=0)
        print("FIGURES step=%s requests=%d failed=%d (inflight=%d no_upstream=%d) longest_wait_ms=%d "
              "longest_wait_after_event_ms=%d%s"
              % (step, len(recs), len(failed), sum(r[2] == "inflight" for r in recs),
                 sum(r[2] == "no_upstream" for r in recs), longest * 1000, after * 1000, extra),
              file=sys.stderr)
        return failed

    def _hold_then_kill(self, redis):
        """Holds redis in a DEBUG SLEEP (sent on a direct connection) long
        enough for every client thread to have a request in flight behind
        it, then SIGKILLs it. Returns the time just before the kill."""
        direct = Resp(redis.port, timeout=5)
        self.addCleanup(direct.close)
        direct.send("DEBUG", "SLEEP", "2")
        time.sleep(0.3)
        t = time.monotonic()
        redis.kill()
        return t

    def _check_inflight(self, pmx, log_at, inflight, killed, name, held, t_kill):
        """The in-flight errors after a kill: the `held` requests (sent
        before it) and nothing else, every one naming the killed redis.
        One exception, a race of SIGKILL itself: the dying process resets
        its connections before its listening socket is gone, so the
        reconnect may still be accepted there and then reset, failing the
        requests just written to it; then the log shows that connection."""
        for r in inflight:
            self.assertTrue(r[3].args[0].startswith("ERR proximux: upstream 127.0.0.1:%d: " % killed.port), r)
        self.assertEqual(len([r for r in inflight if r[0] < t_kill]), held,
                         "not every request held in flight failed: %r" % inflight)
        late = [r for r in inflight if r[0] >= t_kill]
        if late:
            self.assertRegex(pmx.log()[log_at:], r"upstream #\d+ connected to %s \(" % name,
                             "requests sent after the kill failed in flight: %r" % late)

    def test_fifo_redis_outage_steps(self):
        """fifo resp (pipelined), two redis-servers, default health (500 ms):
        4 client threads busy with SET/GET. (a) the redis the connection
        uses is killed with every thread's request in flight (a direct
        DEBUG SLEEP holds them): exactly those fail with a proximux error;
        then all are served by the other. (b) the other is killed too:
        every request is answered with an error within 1 s. (c) the first
        is restarted: served again within one probe interval."""
        nthreads = 4
        r1, r2 = self.redis(), self.redis()
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    targets:\n"
                "      - { name: r1, host: 127.0.0.1, port: %d }\n"
                "      - { name: r2, host: 127.0.0.1, port: %d }\n" % (port, r1.port, r2.port))
        pmx = self.start_proximux(yaml=yaml, port=port)
        traffic = Traffic(port, nthreads)
        self.addCleanup(traffic.stop)

        # Steady: everything served, by the redis the log names.
        t0 = time.monotonic()
        wait_for(lambda: traffic.ok_since(t0) >= 20 * nthreads, 10 * TF, "steady traffic")
        steady = traffic.replied(0)
        self.assertEqual({r[2] for r in steady}, {"ok"}, [r for r in steady if r[2] != "ok"][:5])
        used = pmx.wait_log(r"service cache: upstream #\d+ connected to (r1|r2) ").group(1)
        first, second = (r1, r2) if used == "r1" else (r2, r1)
        second_name = "r2" if used == "r1" else "r1"
        self.assertEqual(redis_cli(second.port, "DBSIZE").strip(), "0", "the other redis served before")

        # (a) kill the one in use, every thread's request in flight.
        log_at = len(pmx.log())
        t_a = self._hold_then_kill(first)
        wait_for(lambda: traffic.ok_since(t_a) >= 10 * nthreads, 10 * TF, "served after kill-first")
        recs = traffic.replied(t_a)
        failed = self._figures("kill-first", recs, t_a)
        self.assertEqual([r for r in recs if r[2] in ("bad", "nil")], [])
        self.assertEqual([r for r in failed if r[2] != "inflight"], [], "not only requests in flight failed")
        self._check_inflight(pmx, log_at, failed, first, used, nthreads, t_a)
        # Served by the other: the connection the log shows, and its keys.
        pmx.wait_log(r"service cache: upstream #\d+ connected to %s " % second_name)
        self.assertGreater(int(redis_cli(second.port, "DBSIZE")), 0)

        # (b) kill the other one too: errors at once, nothing hangs.
        log_at = len(pmx.log())
        t_b = self._hold_then_kill(second)
        time.sleep(1.5)
        recs = traffic.replied(t_b)
        self._figures("kill-second", recs, t_b)
        self.assertEqual([r for r in recs if r[2] == "bad"], [])
        self.assertEqual([r for r in recs if r[2] not in ("no_upstream", "inflight")], [],
                         "served with no redis running")
        self._check_inflight(pmx, log_at, [r for r in recs if r[2] == "inflight"], second, second_name,
                             nthreads, t_b)
        slow = [r for r in recs if r[1] - max(r[0], t_b) > 1.0 * TF]
        self.assertEqual(slow, [], "requests waited more than 1 s for an answer")
        self.assertTrue(any(r[2] == "no_upstream" for r in recs), "no 'no upstream available'")
        pmx.wait_log(r"target r1 \(.*\) is down", timeout=2 * TF)
        pmx.wait_log(r"target r2 \(.*\) is down", timeout=2 * TF)

        # (c) restart the first: served again within one probe interval.
        t_c = time.monotonic()
        first.start()
        t_up = time.monotonic()
        wait_for(lambda: traffic.ok_since(t_up) >= 1, 5 * TF, "served after the restart")
        with traffic.lock:
            first_ok = min(r[1] for r in traffic.records if r[0] >= t_up and r[2] == "ok")
        served_after = first_ok - t_up
        wait_for(lambda: traffic.ok_since(first_ok) >= 10 * nthreads, 10 * TF, "steady after the restart")
        recs = traffic.replied(t_c)
        self._figures("restart", recs, t_c, " redis_start_ms=%d served_after_ready_ms=%d"
                      % ((t_up - t_c) * 1000, served_after * 1000))
        self.assertEqual([r for r in recs if r[2] in ("bad", "nil", "inflight")], [])
        self.assertEqual([r for r in recs if r[2] != "ok" and r[0] > first_ok], [],
                         "failures after it served again")
        self.assertLess(served_after, 0.5 + 1.0 * TF, "not served within one probe interval")
        traffic.stop()
        pmx.wait_log(r"target %s \(.*\) is up: 2 successful probes" % used)
        self.assertGreater(int(redis_cli(first.port, "DBSIZE")), 0)
        self.assert_proximux_ok(pmx)


# ---------------------------------------------------------------- fail-back, reload

class FailBackTest(UpstreamTestCase):

    def _fifo_yaml(self, port, targets, extra=""):
        return ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    health: { interval: 200 }\n"
                "%s"
                "    targets:\n%s" % (port, extra, targets))

    def test_fifo_fails_back_to_the_primary(self):
        """fifo with a primary and a backup target: while the primary is
        killed, requests go to the backup; once it is back (up after its
        probes), the connection on the backup is replaced and requests go
        to the primary again, with no request failing on the way back."""
        primary, backup = self.redis(), self.redis()
        port = free_port()
        targets = ("      - { name: primary, host: 127.0.0.1, port: %d }\n"
                   "      - { name: standby, host: 127.0.0.1, port: %d, backup: true }\n"
                   % (primary.port, backup.port))
        pmx = self.start_proximux(yaml=self._fifo_yaml(port, targets), port=port)
        c = Resp(port, timeout=10 * TF)
        self.addCleanup(c.close)
        self.assertEqual(c.command("SET", "where", "1"), "OK")
        self.assertEqual(redis_cli(primary.port, "GET", "where").strip(), "1")
        primary.kill()
        deadline = time.monotonic() + 5 * TF
        while c.command("SET", "where", "2") != "OK":
            self.assertLess(time.monotonic(), deadline, "never served by the backup")
            time.sleep(0.02)
        self.assertEqual(redis_cli(backup.port, "GET", "where").strip(), "2")
        # Its failures are probed until it is down (fail_after 3).
        pmx.wait_log(r"target primary \(127\.0\.0\.1:%d\) is down" % primary.port, timeout=5 * TF)
        self.assertEqual(c.command("SET", "where", "2b"), "OK")
        self.assertEqual(redis_cli(backup.port, "GET", "where").strip(), "2b")
        primary.start()
        pmx.wait_log(r"target primary \(127\.0\.0\.1:%d\) is up" % primary.port, timeout=5 * TF)
        pmx.wait_log(r"on a backup target while a primary is up; replacing it", timeout=2 * TF)
        # Every request succeeds on the way back, and lands on the primary.
        deadline = time.monotonic() + 3 * TF
        while True:
            self.assertEqual(c.command("SET", "where", "3"), "OK")
            if redis_cli(primary.port, "GET", "where").strip() == "3":
                break
            self.assertLess(time.monotonic(), deadline, "never back on the primary")
            time.sleep(0.05)
        self.assert_proximux_ok(pmx)

    def test_reload_removes_and_adds_targets(self):
        """SIGHUP with the fifo connection's target removed and another
        added: the connection is replaced once idle, the next requests go to
        the new target, and nothing fails."""
        old, new = self.redis(), self.redis()
        port = free_port()
        targets_old = "      - { name: old, host: 127.0.0.1, port: %d }\n" % old.port
        targets_new = "      - { name: new, host: localhost, port: %d }\n" % new.port
        pmx = self.start_proximux(yaml=self._fifo_yaml(port, targets_old), port=port)
        c = Resp(port, timeout=10 * TF)
        self.addCleanup(c.close)
        self.assertEqual(c.command("SET", "k", "old"), "OK")
        self.assertEqual(redis_cli(old.port, "GET", "k").strip(), "old")
        pmx.write_yaml(self._fifo_yaml(port, targets_new))
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"its target was removed; replacing it", timeout=2 * TF)
        # "localhost" was not resolved on the loop: the resolver thread did.
        pmx.wait_log(r"target new: localhost now resolves to", timeout=2 * TF)
        deadline = time.monotonic() + 3 * TF
        while True:
            self.assertEqual(c.command("SET", "k", "new"), "OK")
            if redis_cli(new.port, "GET", "k").strip() == "new":
                break
            self.assertLess(time.monotonic(), deadline, "never on the new target")
            time.sleep(0.05)
        self.assert_proximux_ok(pmx)
