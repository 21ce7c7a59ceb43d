"""FIFO and funnel modes (codec resp) in front of a real redis-server, in
the four ways of multiplexing: FIFO sync, FIFO async, funnel(4) sync,
funnel(4) async. The same tests run for each (one class per config)."""

import os
import random
import subprocess
import threading

from harness import (ProximuxTestCase, RedisServer, Resp, RespError, closed_by_peer, connect,
                     free_port, recv_exact, resp_encode, run_threads)
from muxlib import assert_resp_closed, config_env, redis_cli

def unsupported(cmd):
    return "ERR proximux: %s not supported through a shared connection" % cmd


class _RedisMux:
    CONFIG = None

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.redis.cli("FLUSHALL")
        self.port = free_port()
        self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", self.redis.port)],
                                                  "resp", self.CONFIG))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def test_a_concurrent_clients(self):
        """50 clients, 200 own keys each: SET then GET, checked exactly
        (odd keys: SET and GET pipelined in one write)."""
        nkeys = 200

        def client(cid):
            rng = random.Random(cid)
            with Resp(self.port, timeout=20) as r:
                for k in range(nkeys):
                    key = "c%d:k%d" % (cid, k)
                    value = b"%d:%d:" % (cid, k) + rng.randbytes(rng.randint(1, 64))
                    if k % 2:
                        r.sock.sendall(resp_encode("SET", key, value) + resp_encode("GET", key))
                        got = (r.read_reply(), r.read_reply())
                    else:
                        got = (r.command("SET", key, value), r.command("GET", key))
                    if got != ("OK", value):
                        raise AssertionError("client %d key %s: got %r, expected %r"
                                             % (cid, key, got, ("OK", value)))
            return nkeys

        self.assertEqual(sum(run_threads(client, 50, timeout=90)), 50 * nkeys)
        # The values are really in redis.
        with Resp(self.redis.port) as direct:
            self.assertEqual(direct.command("DBSIZE"), 50 * nkeys)

    def test_b_pipeline_1000(self):
        """1000 commands (SET/INCR/GET mix) in one write, from two clients
        at once: all replies, in order."""
        n = 1000

        def client(cid):
            cmds, expected, counter = [], [], 0
            for i in range(n):
                if i % 3 == 0:
                    cmds.append(resp_encode("SET", "p%d:%d" % (cid, i), "v%d:%d" % (cid, i)))
                    expected.append("OK")
                elif i % 3 == 1:
                    counter += 1
                    cmds.append(resp_encode("INCR", "p%d:counter" % cid))
                    expected.append(counter)
                else:
                    cmds.append(resp_encode("GET", "p%d:%d" % (cid, i - 2)))
                    expected.append(b"v%d:%d" % (cid, i - 2))
            with Resp(self.port, timeout=20) as r:
                r.sock.sendall(b"".join(cmds))
                got = [r.read_reply() for _ in range(n)]
                self.assertEqual(got, expected)
                self.assertEqual(r.command("GET", "p%d:counter" % cid), b"%d" % counter)
            return True

        self.assertEqual(run_threads(client, 2, timeout=60), [True, True])

    def test_c_large_value(self):
        value = os.urandom(1 << 20)
        with Resp(self.port, timeout=20) as r, Resp(self.port, timeout=20) as other:
            self.assertEqual(r.command("SET", "big", value), "OK")
            self.assertEqual(r.command("STRLEN", "big"), 1 << 20)
            self.assertEqual(r.command("GET", "big"), value)
            # Big request and reply pipelined with small ones, another client in between.
            r.sock.sendall(resp_encode("PING") + resp_encode("SET", "big2", value[::-1]) +
                           resp_encode("GET", "big") + resp_encode("ECHO", "after"))
            self.assertEqual(other.command("ECHO", "other"), b"other")
            self.assertEqual([r.read_reply() for _ in range(4)], ["PONG", "OK", value, b"after"])
        with Resp(self.redis.port) as direct:
            self.assertEqual(direct.command("GET", "big2"), value[::-1])

    def test_d_redis_benchmark(self):
        r = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(self.port),
                            "-c", "50", "-n", "20000", "-P", "16", "-t", "set,get,incr,lpush", "-q"],
                           capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
        err = r.stderr.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "redis-benchmark failed:\n" + err[-2000:])
        self.assertEqual(err.strip(), "", "redis-benchmark reported errors")
        out = r.stdout.decode("utf-8", "replace")
        for test in ("SET", "GET", "INCR", "LPUSH"):
            self.assertRegex(out, r"%s: [0-9.]+ requests per second" % test)
        # Exactly 20000 INCRs and LPUSHes reached redis; redis-cli through proximux.
        self.assertEqual(redis_cli(self.port, "GET", "counter:__rand_int__"), "20000\n")
        self.assertEqual(redis_cli(self.port, "LLEN", "mylist"), "20000\n")
        self.assertEqual(redis_cli(self.port, "STRLEN", "key:__rand_int__"), "3\n")
        self.redis.cli("SET", "known", "value-42")
        self.assertEqual(redis_cli(self.port, "GET", "known"), "value-42\n")

    def test_e_unsupported_and_quit(self):
        with Resp(self.port) as r:
            self.assertEqual(r.command("SET", "k", "v"), "OK")
            self.assertEqual(r.command("RESET"), RespError(unsupported("RESET")))
            self.assertEqual(r.command("GET", "k"), b"v")
            self.assertEqual(r.command("CLIENT", "REPLY", "OFF"), RespError(unsupported("CLIENT REPLY")))
            self.assertEqual(r.command("PING"), "PONG")
            # Pipelined: the refusal is delivered in its place.
            r.sock.sendall(resp_encode("ECHO", "1") + resp_encode("RESET") + resp_encode("ECHO", "2"))
            self.assertEqual([r.read_reply() for _ in range(3)], [b"1", RespError(unsupported("RESET")), b"2"])
            # Inline command.
            r.sock.sendall(b"PING\r\n")
            self.assertEqual(r.read_reply(), "PONG")
            self.assertEqual(r.command("QUIT"), "OK")
            assert_resp_closed(r)
        # QUIT after pipelined commands: their replies come first; nothing after QUIT is run.
        with Resp(self.port) as r:
            r.sock.sendall(resp_encode("SET", "q", "1") + resp_encode("GET", "q") +
                           resp_encode("QUIT") + resp_encode("SET", "q", "after-quit"))
            self.assertEqual([r.read_reply() for _ in range(3)], ["OK", b"1", "OK"])
            assert_resp_closed(r)
        self.assertEqual(self.redis.cli("GET", "q"), "1\n")

    def test_f_malformed(self):
        """A malformed request gets -ERR and its client is closed; a client
        busy at the same time is not disturbed."""
        stop, outcome = threading.Event(), []

        def busy():
            try:
                n = 0
                with Resp(self.port) as r:
                    while not stop.is_set() or n < 50:
                        got = r.command("ECHO", "busy:%d" % n)
                        if got != b"busy:%d" % n:
                            raise AssertionError("busy client: got %r for request %d" % (got, n))
                        n += 1
                outcome.append(n)
            except BaseException as e:
                outcome.append(e)

        t = threading.Thread(target=busy, daemon=True)
        t.start()
        try:
            with connect(self.port) as s:
                s.sendall(resp_encode("ECHO", "before") + b"*2\r\n$abc\r\n")
                self.assertEqual(recv_exact(s, 12), b"$6\r\nbefore\r\n")
                line = b""
                while not line.endswith(b"\r\n"):
                    b = s.recv(1)
                    self.assertTrue(b, "closed before the error reply (got %r)" % line)
                    line += b
                self.assertTrue(line.startswith(b"-ERR proximux: ") and b"malformed" in line, line)
                self.assertTrue(closed_by_peer(s, 3), "malformed client not closed")
            with connect(self.port) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\r")          # bad bulk terminator
                line = b""
                while not line.endswith(b"\r\n"):
                    b = s.recv(1)
                    self.assertTrue(b, "closed before the error reply (got %r)" % line)
                    line += b
                self.assertTrue(line.startswith(b"-ERR proximux: "), line)
                self.assertTrue(closed_by_peer(s, 3), "malformed client not closed")
        finally:
            stop.set()
            t.join(30)
        self.assertEqual(len(outcome), 1, "busy client still running")
        self.assertIsInstance(outcome[0], int, "busy client failed: %r" % outcome[0])
        with Resp(self.port) as r:
            self.assertEqual(r.command("PING"), "PONG")


class RedisFifoSync(_RedisMux, ProximuxTestCase):
    CONFIG = "fifo_sync"


class RedisFifoAsync(_RedisMux, ProximuxTestCase):
    CONFIG = "fifo_async"


class RedisFunnel4Sync(_RedisMux, ProximuxTestCase):
    CONFIG = "funnel4_sync"


class RedisFunnel4Async(_RedisMux, ProximuxTestCase):
    CONFIG = "funnel4_async"

