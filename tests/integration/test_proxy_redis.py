"""Proxy mode in front of a real redis-server."""

import os

from harness import (ProximuxTestCase, RedisServer, Resp, free_port, proxy_env,
                     resp_encode as r_encode, run_threads)


class ProxyRedisTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.redis.cli("FLUSHALL")
        self.port = free_port()
        self.pmx = self.start_proximux(proxy_env(self.port, [("127.0.0.1", self.redis.port)]))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def test_set_get(self):
        with Resp(self.port) as r:
            self.assertEqual(r.command("PING"), "PONG")
            self.assertEqual(r.command("SET", "greeting", "hello world"), "OK")
            self.assertEqual(r.command("GET", "greeting"), b"hello world")
            self.assertIsNone(r.command("GET", "missing"))
            self.assertEqual(r.command("INCRBY", "n", 41), 41)
            self.assertEqual(r.command("INCR", "n"), 42)
        # The data really went to the server behind proximux.
        self.assertEqual(self.redis.cli("GET", "greeting"), "hello world\n")
        # A real client through proximux.
        self.assertEqual(self.redis.cli("GET", "n", port=self.port), "42\n")

    def test_large_value(self):
        value = os.urandom(1 << 20)           # 1 MiB, binary
        with Resp(self.port) as r:
            self.assertEqual(r.command("SET", "big", value), "OK")
            self.assertEqual(r.command("STRLEN", "big"), 1 << 20)
            self.assertEqual(r.command("GET", "big"), value)
        with Resp(self.redis.port) as direct:
            self.assertEqual(direct.command("GET", "big"), value)

    def test_pipeline_1000(self):
        n = 1000
        with Resp(self.port) as r:
            sets = b"".join(r_encode("SET", "key:%d" % i, "value:%d" % i) for i in range(n))
            r.sock.sendall(sets)                   # 1000 commands, one write
            self.assertEqual([r.read_reply() for _ in range(n)], ["OK"] * n)
            gets = b"".join(r_encode("GET", "key:%d" % i) for i in range(n))
            r.sock.sendall(gets)
            self.assertEqual([r.read_reply() for _ in range(n)],
                             [b"value:%d" % i for i in range(n)])
            incrs = b"".join(r_encode("INCR", "counter") for _ in range(n))
            r.sock.sendall(incrs)
            self.assertEqual([r.read_reply() for _ in range(n)], list(range(1, n + 1)))
            self.assertEqual(r.command("DBSIZE"), n + 1)

    def test_concurrent_clients(self):
        clients, keys = 50, 20

        def work(i):
            with Resp(self.port) as r:
                for k in range(keys):
                    self.assertEqual(r.command("SET", "c%d:k%d" % (i, k), "v%d-%d" % (i, k)), "OK")
                for k in range(keys):
                    self.assertEqual(r.command("GET", "c%d:k%d" % (i, k)), b"v%d-%d" % (i, k))
                # One pipelined burst per client as well.
                r.sock.sendall(b"".join(r_encode("RPUSH", "list%d" % i, j) for j in range(50)))
                self.assertEqual([r.read_reply() for _ in range(50)], list(range(1, 51)))
                self.assertEqual(r.command("LRANGE", "list%d" % i, 0, -1),
                                 [str(j).encode() for j in range(50)])
            return i

        self.assertEqual(run_threads(work, clients), list(range(clients)))
        with Resp(self.redis.port) as direct:
            self.assertEqual(direct.command("DBSIZE"), clients * (keys + 1))

