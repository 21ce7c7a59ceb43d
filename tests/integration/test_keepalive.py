"""TARGET_CONN_n_KEEP_ALIVE: SO_KEEPALIVE on the upstream connections of
target n only (checked with ss, which shows a keepalive timer)."""
import shutil
import subprocess
import unittest

from harness import ProximuxTestCase, connect, echo_roundtrip, free_port, proximux_env
from peers.upstreams import Echo


def upstream_timers(port):
    """ss lines of established connections to 127.0.0.1:port."""
    out = subprocess.run(["ss", "-tnoH", "state", "established", "dst", "127.0.0.1:%d" % port],
                         capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


@unittest.skipUnless(shutil.which("ss"), "ss (iproute2) not installed")
class KeepAliveTest(ProximuxTestCase):

    def test_keep_alive_per_target(self):
        with_ka, without_ka = Echo(), Echo()
        self.addCleanup(with_ka.stop)
        self.addCleanup(without_ka.stop)
        port = free_port()
        env = proximux_env(port, [with_ka.address, without_ka.address], EXCHANGE_MODE="funnel",
                           EXCHANGE_CODEC="line", PROXY_CONNECTIONS_CNT=2, PROXY_WARMUP=1,
                           TARGET_CONN_1_KEEP_ALIVE=1, TARGET_CONN_2_KEEP_ALIVE=0)
        p = self.start_proximux(env)
        with connect(port) as c:
            self.assertEqual(echo_roundtrip(c, b"x\n"), b"x\n")
        ka = upstream_timers(with_ka.port)
        plain = upstream_timers(without_ka.port)
        self.assertEqual(len(ka), 1, ka)
        self.assertEqual(len(plain), 1, plain)
        self.assertIn("keepalive", ka[0])
        self.assertNotIn("keepalive", plain[0])
        self.assert_proximux_ok(p)
