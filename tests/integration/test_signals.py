"""Signals: SIGTERM/SIGINT fast shutdown, SIGQUIT graceful, SIGHUP reload."""

import signal
import socket
import time

from harness import (DEBUG_LINE, ProximuxTestCase, connect, echo_roundtrip, free_port,
                     proxy_env, recv_until_eof)
from peers.upstreams import Echo


class SignalsTest(ProximuxTestCase):

    def setUp(self):
        self.echo = Echo()
        self.addCleanup(self.echo.stop)
        self.port = free_port()

    def start(self, **settings):
        return self.start_proximux(proxy_env(self.port, [self.echo.address], clients=8, **settings))

    def clients(self, n):
        socks = [connect(self.port) for _ in range(n)]
        for s in socks:
            self.addCleanup(s.close)
        for i, s in enumerate(socks):
            self.assertEqual(echo_roundtrip(s, b"c%d\n" % i), b"c%d\n" % i)
        return socks

    def fast_shutdown(self, sig):
        pmx = self.start()
        socks = self.clients(3)
        t0 = time.monotonic()
        code = pmx.stop(sig, timeout=12)
        elapsed = time.monotonic() - t0
        self.assertEqual(code, 0)
        self.assertLess(elapsed, 10.0)
        for s in socks:
            s.settimeout(2)
            try:
                self.assertEqual(recv_until_eof(s), b"")
            except ConnectionResetError:
                pass
        return elapsed

    def test_sigterm_with_clients(self):
        self.fast_shutdown(signal.SIGTERM)

    def test_sigint_with_clients(self):
        self.fast_shutdown(signal.SIGINT)

    def test_sigterm_idle_is_prompt(self):
        pmx = self.start()
        t0 = time.monotonic()
        self.assertEqual(pmx.stop(signal.SIGTERM), 0)
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_sigquit_graceful(self):
        pmx = self.start()
        (c,) = self.clients(1)
        pmx.send_signal(signal.SIGQUIT)
        time.sleep(0.5)
        self.assertTrue(pmx.alive(), "exited on SIGQUIT with a client connected")
        # New connections are not served: refused, closed, or left unanswered.
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as n:
                n.settimeout(1)
                try:
                    n.sendall(b"new\n")
                    got = n.recv(100)
                except (socket.timeout, ConnectionResetError, BrokenPipeError):
                    got = b""
                self.assertEqual(got, b"", "a new client was served after SIGQUIT")
        except (ConnectionRefusedError, socket.timeout):
            pass
        # The existing client is still served.
        for i in range(3):
            self.assertEqual(echo_roundtrip(c, b"still here %d\n" % i), b"still here %d\n" % i)
        self.assertTrue(pmx.alive())
        c.close()
        self.assertEqual(pmx.wait_exit(5), 0, "did not exit 0 after the last client left")
        self.assertEqual(pmx.stop(), 0)

    def test_sighup_reload(self):
        yaml = ("log_level: %d\n"
                "local: { host: 127.0.0.1, port: %d, max_connections: 8 }\n"
                "exchange: { mode: proxy }\n"
                "pool: { connections: 8 }\n"
                "targets:\n"
                "  - { host: 127.0.0.1, port: %d }\n")
        pmx = self.start_proximux(env={}, yaml=yaml % (2, self.port, self.echo.port),
                                  port=self.port)
        (c,) = self.clients(1)
        self.assertEqual(echo_roundtrip(self.port, b"before\n"), b"before\n")
        self.assertIsNone(DEBUG_LINE.search(pmx.log()), "debug lines at log_level 2")

        pmx.write_yaml(yaml % (3, self.port, self.echo.port))
        mark = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"(?i)reload", start=mark)
        self.assertTrue(pmx.alive())
        self.assertEqual(echo_roundtrip(c, b"across reload\n"), b"across reload\n")
        mark = len(pmx.log())
        self.assertEqual(echo_roundtrip(self.port, b"after\n"), b"after\n")
        pmx.wait_log(DEBUG_LINE.pattern, start=mark)
        # And back down again.
        pmx.write_yaml(yaml % (2, self.port, self.echo.port))
        mark = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"(?i)reload", start=mark)
        time.sleep(0.2)
        mark = len(pmx.log())
        self.assertEqual(echo_roundtrip(self.port, b"quiet\n"), b"quiet\n")
        c.close()
        time.sleep(0.5)
        self.assertIsNone(DEBUG_LINE.search(pmx.log(), mark), "debug lines after going back to 2")
        self.assert_proximux_ok(pmx)

    def test_sighup_codec_change_replaces_the_service(self):
        yaml = ("log_level: 2\n"
                "local: { host: 127.0.0.1, port: %d, max_connections: 8 }\n"
                "exchange: { mode: proxy, codec: %s }\n"
                "pool: { connections: 8 }\n"
                "targets:\n"
                "  - { host: 127.0.0.1, port: %d }\n")
        pmx = self.start_proximux(env={}, yaml=yaml % (self.port, "raw", self.echo.port), port=self.port)
        self.assertEqual(echo_roundtrip(self.port, b"before\n"), b"before\n")
        pmx.write_yaml(yaml % (self.port, "line", self.echo.port))
        mark = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"reload: service default: exchange\.codec changed; a new service object takes new clients", start=mark)
        pmx.wait_log(r"(?i)reloaded", start=mark)
        self.assertEqual(echo_roundtrip(self.port, b"after\n"), b"after\n")
        self.assert_proximux_ok(pmx)

    def test_sighup_bad_config_keeps_serving(self):
        yaml = ("log_level: 2\n"
                "local: { host: 127.0.0.1, port: %d, max_connections: 8 }\n"
                "pool: { connections: 8 }\n"
                "targets:\n"
                "  - { host: 127.0.0.1, port: %d }\n") % (self.port, self.echo.port)
        pmx = self.start_proximux(env={}, yaml=yaml, port=self.port)
        pmx.write_yaml(yaml + "bogus_key: 1\n")
        mark = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"bogus_key", start=mark)
        time.sleep(0.2)
        self.assertTrue(pmx.alive(), "a bad config on SIGHUP killed the daemon")
        self.assertEqual(echo_roundtrip(self.port, b"alive\n"), b"alive\n")
        self.assert_proximux_ok(pmx)
