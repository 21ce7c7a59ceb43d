"""SIGTERM with a response in flight, in proxy mode: the response that is
on its way still reaches the client in full, then the session is closed
and Proximux exits 0, well within shutdown_timeout."""
import signal
import socket
import time

from harness import ProximuxTestCase, connect, free_port, proxy_env, recv_until_eof
from peers.upstreams import Upstream


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
