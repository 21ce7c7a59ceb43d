"""Proxy mode against scripted upstreams: limits, dead targets, half-close,
upstream failures, server-speaks-first, idle timeout."""

import os
import socket
import time

from harness import (ProximuxTestCase, closed_by_peer, connect, echo_roundtrip, free_port,
                     proxy_env, recv_exact, recv_until_eof)
from peers.upstreams import Blackhole, CloseAfter, Echo, Greeting, HalfClose, ShutWriteFirst


class ProxyFaultsTest(ProximuxTestCase):

    def upstream(self, u):
        self.addCleanup(u.stop)
        return u

    def start(self, targets, **settings):
        self.port = free_port()
        return self.start_proximux(proxy_env(self.port, targets, **settings))

    def test_max_connections(self):
        echo = self.upstream(Echo())
        pmx = self.start([echo.address], clients=2, LOCAL_MAX_WAIT=0)
        c1, c2 = connect(self.port), connect(self.port)
        self.addCleanup(c1.close)
        self.addCleanup(c2.close)
        self.assertEqual(echo_roundtrip(c1, b"one\n"), b"one\n")
        self.assertEqual(echo_roundtrip(c2, b"two\n"), b"two\n")
        before = len(pmx.log())
        with connect(self.port) as c3:
            self.assertTrue(closed_by_peer(c3, 3), "3rd client was not closed at once")
        m = pmx.wait_log(r"(?i)max|limit|too many|reject|refus", start=before)
        self.assertIn("127.0.0.1", pmx.log()[before:], "rejection log line: " + m.group(0))
        # The first two are untouched.
        self.assertEqual(echo_roundtrip(c1, b"one again\n"), b"one again\n")
        self.assertEqual(echo_roundtrip(c2, b"two again\n"), b"two again\n")
        # Once one leaves, a new client gets its place.
        c1.close()
        deadline = time.monotonic() + 5
        while True:
            try:
                with connect(self.port) as c4:
                    self.assertEqual(echo_roundtrip(c4, b"four\n"), b"four\n")
                    break
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertEqual(echo_roundtrip(c2, b"still\n"), b"still\n")
        self.assert_proximux_ok(pmx)

    def test_dead_target_then_live(self):
        echo = self.upstream(Echo())
        dead = free_port()
        pmx = self.start([("127.0.0.1", dead), echo.address], clients=2,
                         PROXY_CONNECT_TIMEOUT=1000)
        for i in range(4):                  # whichever slot a client lands on
            payload = b"hello %d\n" % i
            self.assertEqual(echo_roundtrip(self.port, payload), payload)
        self.assertEqual(len(echo.wait_connections(4)), 4)
        self.assertRegex(pmx.log(), r":%d\b" % dead, "connect failure to the dead target not logged")
        self.assert_proximux_ok(pmx)

    def test_connect_timeout_then_live(self):
        hole = self.upstream(Blackhole())
        if not hole.probe():
            self.skipTest("this kernel does not leave connects to a full accept queue hanging")
        echo = self.upstream(Echo())
        pmx = self.start([hole.address, echo.address], clients=2, PROXY_CONNECT_TIMEOUT=500)
        # The client's bytes arrive while the first connect hangs; they must
        # reach the second target after the timeout.
        for i in range(2):
            with connect(self.port, timeout=5) as c:
                t0 = time.monotonic()
                c.sendall(b"early bytes %d\n" % i)
                self.assertEqual(recv_exact(c, 14), b"early bytes %d\n" % i)
                self.assertLess(time.monotonic() - t0, 3.0)
        self.assertRegex(pmx.log(), r":%d\b.*(?i:time)" % hole.port, "connect timeout not logged")
        self.assert_proximux_ok(pmx)

    def test_all_targets_dead(self):
        dead1, dead2 = free_port(), free_port()
        pmx = self.start([("127.0.0.1", dead1), ("127.0.0.1", dead2)], clients=2,
                         PROXY_CONNECT_TIMEOUT=1000)
        for _ in range(2):
            with connect(self.port) as c:
                c.sendall(b"anyone?\n")
                self.assertTrue(closed_by_peer(c, 8), "client not closed with all targets dead")
        self.assertTrue(pmx.alive())
        # A target comes back: new clients are served again (after any backoff).
        echo = self.upstream(Echo(port=dead2))
        deadline = time.monotonic() + 15
        while True:
            try:
                self.assertEqual(echo_roundtrip(self.port, b"back\n"), b"back\n")
                break
            except (AssertionError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.assertGreaterEqual(len(echo.records), 1)
        self.assert_proximux_ok(pmx)

    def test_client_half_close(self):
        up = self.upstream(HalfClose(delay=0.3))
        pmx = self.start([up.address])
        with connect(self.port) as c:
            c.sendall(b"hello upstream")
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_until_eof(c), b"late:hello upstream")
        rec = up.wait_connections(1)[0]
        self.assertTrue(rec.closed.wait(5))
        self.assertTrue(rec.eof, "upstream did not see the client's EOF")
        self.assertEqual(rec.received, b"hello upstream")
        self.assert_proximux_ok(pmx)

    def test_upstream_half_close(self):
        up = self.upstream(ShutWriteFirst(greeting=b"bye\n"))
        pmx = self.start([up.address])
        with connect(self.port) as c:
            self.assertEqual(recv_exact(c, 4), b"bye\n")
            self.assertEqual(c.recv(10), b"", "client did not see the upstream's EOF")
            c.sendall(b"after your EOF")        # our direction is still open
            c.shutdown(socket.SHUT_WR)
            self.assertEqual(recv_until_eof(c), b"")
        rec = up.wait_connections(1)[0]
        self.assertTrue(rec.closed.wait(5))
        self.assertEqual(rec.received, b"after your EOF")
        self.assertTrue(rec.eof)
        self.assert_proximux_ok(pmx)

    def test_upstream_closes_mid_transfer(self):
        data = os.urandom((1 << 20) + 12345)
        up = self.upstream(CloseAfter(data))
        pmx = self.start([up.address])
        with connect(self.port, timeout=10) as c:
            c.sendall(b"GO\n")
            time.sleep(0.5)                     # a slow reader: upstream is gone by now
            got = recv_until_eof(c)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "bytes differ")
        self.assertEqual(up.records[0].received, b"GO\n")
        # The daemon serves the next client.
        with connect(self.port, timeout=10) as c:
            c.sendall(b"GO\n")
            self.assertTrue(recv_until_eof(c) == data)
        self.assert_proximux_ok(pmx)

    def test_server_speaks_first(self):
        greeting = b"220 scripted upstream says hi\r\n"
        up = self.upstream(Greeting(greeting))
        pmx = self.start([up.address])
        with connect(self.port) as c:
            self.assertEqual(recv_exact(c, len(greeting)), greeting)   # nothing sent yet
            self.assertEqual(echo_roundtrip(c, b"x" * 1234), b"x" * 1234)
            client_port = c.getsockname()[1]
        # On close: an info line with the client's address and byte counts
        # (1234 received from it, 1234 + greeting sent to it).
        pmx.wait_log(r"^(?=.*127\.0\.0\.1:%d\b)(?=.*\b1234\b)(?=.*\b%d\b).*$"
                     % (client_port, 1234 + len(greeting)))
        self.assert_proximux_ok(pmx)

    def test_inactive_timeout(self):
        echo = self.upstream(Echo())
        pmx = self.start([echo.address], PROXY_INACTIVE_TIMEOUT=600)
        with connect(self.port) as c:
            # Traffic every 200 ms for 1.5 s keeps the session open.
            for i in range(8):
                self.assertEqual(echo_roundtrip(c, b"tick %d\n" % i), b"tick %d\n" % i)
                time.sleep(0.2)
            t0 = time.monotonic()
            self.assertTrue(closed_by_peer(c, 6), "idle session not closed")
            idle = time.monotonic() - t0
        self.assertGreaterEqual(idle, 0.4, "closed after %.2fs idle, timeout is 0.6s" % idle)
        self.assertLess(idle, 5.0)
        rec = echo.records[0]
        self.assertTrue(rec.closed.wait(3))
        self.assertTrue(rec.eof, "upstream connection was not closed")
        self.assertTrue(pmx.alive())
        self.assertEqual(echo_roundtrip(self.port, b"fresh\n"), b"fresh\n")
        self.assert_proximux_ok(pmx)
