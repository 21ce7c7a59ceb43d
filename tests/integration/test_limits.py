"""Running out of file descriptors: Proximux must pause accepting instead of
spinning on a listener that stays readable, keep serving the clients it
has, and accept again once descriptors are free (proxy and fifo modes)."""
import os
import subprocess
import time
import unittest

from harness import TIME_FACTOR, ProximuxTestCase, connect, echo_roundtrip, free_port, proximux_env, proxy_env
from peers.upstreams import Echo


def cpu_seconds(pid):
    """User + system CPU time of pid, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@unittest.skipIf(os.environ.get("PMX_IT_VALGRIND"), "valgrind holds descriptors of its own")
class FdExhaustionTest(ProximuxTestCase):

    def run_case(self, env, fds_per_client, fd_limit=40):
        echo = Echo()
        self.addCleanup(echo.stop)
        port = free_port()
        p = self.start_proximux(env(port, echo))
        # A first client, served before the limit (in fifo mode this also
        # opens the shared upstream connection, which needs a descriptor).
        first = connect(port, timeout=5.0)
        self.addCleanup(first.close)
        self.assertEqual(echo_roundtrip(first, b"hello\n"), b"hello\n")
        # Lower the limit of the running process (it raised its own soft
        # limit to the hard one at start).
        subprocess.run(["prlimit", "--pid", str(p.proc.pid),
                        "--nofile=%d:%d" % (fd_limit, fd_limit)], check=True)
        clients = []
        try:
            # More clients than descriptors: the kernel queues the rest.
            for i in range(2 * fd_limit // fds_per_client):
                clients.append(connect(port, timeout=5.0))
            time.sleep(0.3)
            before = cpu_seconds(p.proc.pid)
            time.sleep(1.0)
            used = cpu_seconds(p.proc.pid) - before
            # Spinning burns the whole second; the bound stays well below that.
            self.assertLess(used, min(0.3 * TIME_FACTOR, 0.6), "proximux spins while out of descriptors (%.2fs CPU in 1s)" % used)
            self.assertTrue(p.alive())
            # The first client was accepted before the limit: still served.
            self.assertEqual(echo_roundtrip(first, b"first\n"), b"first\n")
            self.assertIn("out of file descriptors", p.log())
        finally:
            for c in clients:
                c.close()
            first.close()
        # Descriptors are free again: accepting resumes.
        deadline = time.time() + 5
        while True:
            try:
                self.assertEqual(echo_roundtrip(port, b"again\n", timeout=2.0), b"again\n")
                break
            except (OSError, AssertionError):
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        self.assert_proximux_ok(p)

    def test_proxy_mode(self):
        self.run_case(lambda port, echo: proxy_env(port, [echo.address], clients=1000), 2)

    def test_proxy_mode_upstream_socket_fails(self):
        # An odd limit: accept takes the last descriptor, and the socket for
        # the client's upstream connection is the one that fails.
        self.run_case(lambda port, echo: proxy_env(port, [echo.address], clients=1000), 2, fd_limit=41)

    def test_fifo_mode(self):
        self.run_case(lambda port, echo: proximux_env(port, [echo.address], PROXY_CONNECTIONS_CNT=1,
                                                       EXCHANGE_CODEC="line", EXCHANGE_FUNNEL_ASYNC=1), 1)
