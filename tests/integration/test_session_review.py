"""Dedicated connections of resp sessions, cases found in review (each
failed, or crashed under ASan, before its fix): a client that leaves in
the middle of a transaction, a transaction whose EXEC cannot be sent,
blocking commands next to limits.max_active, SELECT while subscribed."""

import threading
import time

from harness import TIME_FACTOR as TF, ProximuxTestCase, RedisServer, Resp, free_port, resp_encode
from muxlib import config_env


class _Review:
    CONFIG = None

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def start(self, **settings):
        self.redis.cli("FLUSHALL")
        self.port = free_port()
        return self.start_proximux(config_env(self.port, [("127.0.0.1", self.redis.port)], "resp",
                                              self.CONFIG, LOG_LEVEL=2, **settings))

    def test_client_quits_inside_multi(self):
        """A client queues a command in MULTI and says QUIT: its dedicated
        connection is closed, never handed (still inside MULTI) to the next
        client, whose own MULTI and EXEC work and whose transaction holds
        only its own command."""
        pmx = self.start()
        with Resp(self.port) as a:
            self.assertEqual(a.command("MULTI"), "OK")
            self.assertEqual(a.command("SET", "a", "1"), "QUEUED")
            self.assertEqual(a.command("QUIT"), "OK")
        time.sleep(0.1)
        for _ in range(3):
            with Resp(self.port) as b:
                self.assertEqual(b.command("MULTI"), "OK")
                self.assertEqual(b.command("SET", "b", "2"), "QUEUED")
                self.assertEqual(b.command("EXEC"), ["OK"])
        self.assertEqual(self.redis.cli("GET", "a").strip(), "")
        self.assert_proximux_ok(pmx)

    def test_exec_refused_closes_the_connection(self):
        """Sync connections, limits.max_queued 1: a pipelined GET, GET,
        EXEC on the dedicated connection leaves no room for EXEC; the client
        is closed and so is its connection (the server is inside MULTI):
        the next client's MULTI is not nested, and the first transaction
        never ran."""
        if not self.CONFIG.endswith("_sync"):
            self.skipTest("needs one request at a time on the connection")
        pmx = self.start(LIMITS_MAX_QUEUED=1)
        with Resp(self.port) as a:
            self.assertEqual(a.command("MULTI"), "OK")
            self.assertEqual(a.command("SET", "a", "1"), "QUEUED")
            a.sock.sendall(resp_encode("GET", "b") + resp_encode("GET", "c") + resp_encode("EXEC"))
            try:
                while True:
                    a.read_reply()
            except (OSError, EOFError, ConnectionError, ValueError):
                pass
        pmx.wait_log(r"limits.max_queued reached", timeout=2)
        time.sleep(0.1)
        with Resp(self.port) as b:
            self.assertEqual(b.command("MULTI"), "OK")
            self.assertEqual(b.command("SET", "c", "3"), "QUEUED")
            self.assertEqual(b.command("EXEC"), ["OK"])
        self.assertEqual(self.redis.cli("GET", "a").strip(), "")
        self.assert_proximux_ok(pmx)

    def test_blocked_clients_do_not_hold_max_active(self):
        """limits.max_active 2 and two clients blocked in BLPOP on dedicated
        connections: a third client's LPUSH still runs (and wakes one)."""
        pmx = self.start(LIMITS_MAX_ACTIVE=2)
        got = []

        def blocked():
            with Resp(self.port, timeout=10 * TF) as r:
                got.append(r.command("BLPOP", "q", "0"))

        threads = [threading.Thread(target=blocked) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        with Resp(self.port, timeout=5 * TF) as p:
            self.assertEqual(p.command("LPUSH", "q", "x"), 1)
            self.assertEqual(p.command("LPUSH", "q", "y"), 1)
        for t in threads:
            t.join(10 * TF)
        self.assertEqual(sorted(v[1] for v in got), [b"x", b"y"])
        self.assert_proximux_ok(pmx)

    def test_select_while_subscribed_in_order(self):
        """A RESP3 client may run commands while subscribed: its SELECT
        runs on its dedicated connection, answered in order after the
        subscription's reply (one made by Proximux would overtake it), and
        its SET runs in the database it selected."""
        pmx = self.start()
        with Resp(self.port) as s:
            s.sock.sendall(resp_encode("HELLO", "3"))
            s.sock.settimeout(5)
            buf = b""
            while not buf.endswith(b"*0\r\n"):
                buf += s.sock.recv(4096)
            s.sock.sendall(resp_encode("SUBSCRIBE", "ch") + resp_encode("SELECT", "1") +
                           resp_encode("SET", "k", "v"))
            want = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n+OK\r\n+OK\r\n"
            buf = b""
            while len(buf) < len(want):
                buf += s.sock.recv(4096)
            self.assertEqual(buf, want)
        self.assertEqual(self.redis.cli("-n", "1", "GET", "k").strip(), "v")
        self.assert_proximux_ok(pmx)


class ReviewFifoAsync(_Review, ProximuxTestCase):
    CONFIG = "fifo_async"


class ReviewFunnelSync(_Review, ProximuxTestCase):
    CONFIG = "funnel4_sync"
