"""SIGTERM with a response in flight, in proxy mode: the response that is
on its way still reaches the client in full, then the session is closed
and Proximux exits 0, well within shutdown_timeout. A response that never
comes is waited for until shutdown_timeout, not less and not more."""
import signal
import socket
import time

from harness import ProximuxTestCase, connect, free_port, proxy_env, recv_until_eof
from peers.upstreams import Upstream


class Mute(Upstream):
    """Answers the first read at once, then reads and never answers."""

    def handle(self, s, rec):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = True
        while True:
            b = self.read_some(s, rec)
            if not b:
                return
            if first:
                s.sendall(b)
                first = False


class SlowEcho(Upstream):
    """Answers each read after `delay` seconds, in two halves."""

    def __init__(self, delay):
        self.delay = delay
        super().__init__()

    def handle(self, s, rec):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            b = self.read_some(s, rec)
            if not b:
                return
            time.sleep(self.delay)
            s.sendall(b[:len(b) // 2])
            time.sleep(0.05)
            s.sendall(b[len(b) // 2:])


class ProxyShutdownTest(ProximuxTestCase):

    def test_sigterm_finishes_response_in_flight(self):
        up = SlowEcho(0.4)
        self.addCleanup(up.stop)
        port = free_port()
        p = self.start_proximux(proxy_env(port, [up.address]))
        with connect(port, timeout=5.0) as c:
            c.sendall(b"the request in flight\n")
            up.wait_connections(1)
            time.sleep(0.1)
            started = time.monotonic()
            p.send_signal(signal.SIGTERM)
            # The whole response, then the close.
            self.assertEqual(recv_until_eof(c), b"the request in flight\n")
            self.assertLess(time.monotonic() - started, 3.0)
        self.assertEqual(p.wait_exit(5.0), 0)

    def test_sigterm_waits_for_missing_answer_until_timeout(self):
        """The second request follows the first answer at once (often in
        the same millisecond): the session still counts it as unanswered."""
        up = Mute()
        self.addCleanup(up.stop)
        port = free_port()
        p = self.start_proximux(proxy_env(port, [up.address], SHUTDOWN_TIMEOUT=1500))
        with connect(port, timeout=5.0) as c:
            c.sendall(b"first\n")
            self.assertEqual(c.recv(100), b"first\n")
            c.sendall(b"never answered\n")
            up.wait_connections(1)
            time.sleep(0.05)
            started = time.monotonic()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(recv_until_eof(c), b"")
            waited = time.monotonic() - started
        self.assertGreaterEqual(waited, 1.4)
        self.assertLess(waited, 4.0)
        self.assertEqual(p.wait_exit(5.0), 0)
        self.assertIn("1 clients still connected after 1500 ms", p.log())
