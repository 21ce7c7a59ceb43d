"""The listener on IPv6: LOCAL_IPV6_ONLY decides whether an IPv6 wildcard
listener also takes IPv4 clients."""
import socket
import time
import unittest

from harness import ProximuxTestCase, echo_roundtrip, free_port, proxy_env
from peers.upstreams import Echo


def ipv6_available():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(ipv6_available(), "no IPv6 loopback on this machine")
class Ipv6ListenerTest(ProximuxTestCase):

    def start(self, ipv6_only):
        echo = Echo()
        self.addCleanup(echo.stop)
        port = free_port()
        env = proxy_env(port, [echo.address], LOCAL_HOST="::", LOCAL_IPV6_ONLY=ipv6_only)
        return self.start_proximux(env, listen=False), port

    def roundtrip(self, family, host, port):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect((host, port))
            return echo_roundtrip(s, b"v6\n")

    def wait_ready(self, port):
        deadline = time.time() + 5
        while True:
            try:
                return self.roundtrip(socket.AF_INET6, "::1", port)
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def test_dual_stack(self):
        p, port = self.start(0)
        self.assertEqual(self.wait_ready(port), b"v6\n")
        self.assertEqual(self.roundtrip(socket.AF_INET, "127.0.0.1", port), b"v6\n")
        self.assert_proximux_ok(p)

    def test_ipv6_only(self):
        p, port = self.start(1)
        self.assertEqual(self.wait_ready(port), b"v6\n")
        with self.assertRaises(OSError):
            self.roundtrip(socket.AF_INET, "127.0.0.1", port)
        self.assert_proximux_ok(p)
