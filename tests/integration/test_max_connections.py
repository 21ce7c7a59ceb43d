"""LOCAL_MAX_CONNECTIONS with LOCAL_MAX_WAIT, in proxy, fifo and funnel
modes: at the limit new clients wait in the listen backlog for a free slot
(as HAProxy's maxconn), are served as soon as one frees, and are accepted
and closed (logged) once they have waited max_wait; LOCAL_MAX_WAIT=0
refuses at once."""

import socket
import time

from harness import TIME_FACTOR, ProximuxTestCase, closed_by_peer, connect, free_port, proxy_env
from muxlib import mux_env
from peers.mux_peers import LineServer
from peers.upstreams import Echo

LIMIT = 8


class _MaxConnections:
    """Mixed into one TestCase per mode; env() builds that mode's settings."""

    def setUp(self):
        self.up = self.make_upstream()
        self.addCleanup(self.up.stop)
        self.port = free_port()

    def start(self, **settings):
        return self.start_proximux(self.env(**settings))

    def client(self):
        s = connect(self.port, timeout=10 * TIME_FACTOR)
        self.addCleanup(s.close)
        return s

    def roundtrip(self, s, text):
        s.sendall(text + b"\n")
        want = self.answer(text + b"\n")
        got = b""
        while len(got) < len(want):
            b = s.recv(4096)
            if not b:
                raise AssertionError("closed after %r (sent %r)" % (got, text))
            got += b
        self.assertEqual(got, want)

    def answered_within(self, s, want, seconds):
        """True if want arrives on s within seconds; False if nothing does."""
        s.settimeout(seconds)
        got = b""
        try:
            while len(got) < len(want):
                b = s.recv(4096)
                if not b:
                    raise AssertionError("closed; got %r" % got)
                got += b
        except socket.timeout:
            self.assertEqual(got, b"", "part of an answer arrived")
            return False
        finally:
            s.settimeout(10 * TIME_FACTOR)
        self.assertEqual(got, want)
        return True

    def test_reconnect_burst_is_served(self):
        """8 clients connect, send, close; 8 new ones connect right after
        the closes (while the first sessions may still drain): all served."""
        pmx = self.start()
        for rnd in range(5):
            first = [self.client() for _ in range(LIMIT)]
            for i, s in enumerate(first):
                self.roundtrip(s, b"r%d-first-%d" % (rnd, i))
            for s in first:
                s.close()
            second = [self.client() for _ in range(LIMIT)]
            for i, s in enumerate(second):
                self.roundtrip(s, b"r%d-second-%d" % (rnd, i))
            for s in second:
                s.close()
        self.assertNotIn("refused", pmx.log())
        self.assert_proximux_ok(pmx)

    def test_ninth_waits_for_a_slot(self):
        """A ninth client waits while 8 stay connected and is served once
        one of them leaves."""
        pmx = self.start(LOCAL_MAX_WAIT=30000)
        held = [self.client() for _ in range(LIMIT)]
        for i, s in enumerate(held):
            self.roundtrip(s, b"held-%d" % i)
        ninth = self.client()           # completes in the kernel's backlog
        ninth.sendall(b"ninth\n")
        self.assertFalse(self.answered_within(ninth, self.answer(b"ninth\n"), 0.5),
                         "the ninth client was served past the limit")
        held.pop(0).close()
        self.assertTrue(self.answered_within(ninth, self.answer(b"ninth\n"), 5 * TIME_FACTOR),
                        "the ninth client was not served once a slot freed")
        for i, s in enumerate(held):
            self.roundtrip(s, b"still-%d" % i)
        self.assertNotIn("refused", pmx.log())
        self.assert_proximux_ok(pmx)

    def test_ninth_closed_after_max_wait(self):
        """With the 8 held longer than max_wait, the ninth is accepted and
        closed once it has waited max_wait, and the refusal is logged."""
        pmx = self.start(LOCAL_MAX_WAIT=600)
        held = [self.client() for _ in range(LIMIT)]
        for i, s in enumerate(held):
            self.roundtrip(s, b"held-%d" % i)
        t0 = time.monotonic()
        ninth = self.client()
        ninth.sendall(b"ninth\n")
        self.assertTrue(closed_by_peer(ninth, 5 * TIME_FACTOR), "the ninth client was never closed")
        waited = time.monotonic() - t0
        self.assertGreaterEqual(waited, 0.5, "closed before max_wait")
        pmx.wait_log(r"refused: max_connections 8 reached, no slot freed within max_wait 600 ms")
        for i, s in enumerate(held):
            self.roundtrip(s, b"still-%d" % i)
        # A slot that frees later serves the next client at once.
        held.pop().close()
        late = self.client()
        self.roundtrip(late, b"late")
        self.assert_proximux_ok(pmx)

    def test_max_wait_zero_refuses_at_once(self):
        pmx = self.start(LOCAL_MAX_WAIT=0)
        held = [self.client() for _ in range(LIMIT)]
        for i, s in enumerate(held):
            self.roundtrip(s, b"held-%d" % i)
        ninth = self.client()
        self.assertTrue(closed_by_peer(ninth, 1.0 * TIME_FACTOR), "not refused at once")
        pmx.wait_log(r"refused: max_connections 8 reached")
        for i, s in enumerate(held):
            self.roundtrip(s, b"still-%d" % i)
        self.assert_proximux_ok(pmx)


class ProxyMaxConnections(_MaxConnections, ProximuxTestCase):
    """Proxy mode as the original configures it: max_connections equal to
    the pool size."""

    def make_upstream(self):
        return Echo()

    def env(self, **settings):
        return proxy_env(self.port, [self.up.address], clients=LIMIT, PROXY_CONNECTIONS_CNT=LIMIT,
                         **settings)

    def answer(self, line):
        return line


class FifoMaxConnections(_MaxConnections, ProximuxTestCase):
    def make_upstream(self):
        return LineServer()

    def env(self, **settings):
        return mux_env(self.port, [self.up.address], "line", conns=1, mode="fifo", pipelined=True,
                       LOCAL_MAX_CONNECTIONS=LIMIT, **settings)

    def answer(self, line):
        return b"re:" + line


class FunnelMaxConnections(FifoMaxConnections):
    def env(self, **settings):
        return mux_env(self.port, [self.up.address] * 2, "line", conns=2, mode="funnel",
                       pipelined=False, LOCAL_MAX_CONNECTIONS=LIMIT, **settings)
