"""A real client library through a server restart (issue 9): redis-py,
connected with a database number, through fifo and funnel to a
redis-server with requirepass (targets[].password). The server is killed
mid-run and started again: while it is down the library gets Proximux's
errors (its connection to Proximux stays up), and once it is back every
command succeeds again, in the client's database, on new upstream
connections that Proximux authenticated and switched to that database."""

import sys
import time

try:
    import redis
except ImportError:     # an interpreter other than Debian's: use its package
    sys.path.append("/usr/lib/python3/dist-packages")
    import redis

from harness import TIME_FACTOR as TF, ProximuxTestCase, RedisServer, free_port
from muxlib import redis_cli

PASSWORD = "s3cret"


class RestartTest(ProximuxTestCase):

    def _run(self, mode, conns, pipelined):
        server = RedisServer(password=PASSWORD)
        self.addCleanup(server.stop)
        port = free_port()
        yaml = ("log_level: 2\n"
                "local: { port: %d }\n"
                "exchange: { mode: %s, codec: resp, funnel_async: %s }\n"
                "pool: { connections: %d }\n"
                "health: { interval: 200 }\n"
                "targets: [ { host: 127.0.0.1, port: %d, password: %s } ]\n"
                % (port, mode, "true" if pipelined else "false", conns, server.port, PASSWORD))
        pmx = self.start_proximux(yaml=yaml, port=port)
        r = redis.Redis(host="127.0.0.1", port=port, db=3, password=PASSWORD, socket_timeout=5 * TF)
        self.addCleanup(r.close)

        def ok_round(i):
            self.assertTrue(r.set("k", i))
            self.assertEqual(r.get("k"), str(i).encode())

        for i in range(20):
            ok_round(i)
        server.kill()
        errors = 0
        for i in range(20):
            try:
                r.set("k", "down")
            except redis.ResponseError as e:
                self.assertIn("proximux", str(e))
                errors += 1
        self.assertEqual(errors, 20, "commands succeeded while the server was down")
        server.start()
        t0 = time.monotonic()
        while True:
            try:
                ok_round(100)
                break
            except redis.ResponseError as e:
                self.assertIn("proximux", str(e))
                self.assertLess(time.monotonic() - t0, 5 * TF, "not served again after the restart")
                time.sleep(0.05)
        back = time.monotonic() - t0
        for i in range(200, 220):
            ok_round(i)
        # Stored in the client's database 3, through the password.
        got = redis_cli(server.port, "-a", PASSWORD, "--no-auth-warning", "-n", 3, "GET", "k").strip()
        self.assertEqual(got, "219")
        print("FIGURES restart mode=%s conns=%d async=%s served_again_after_ms=%d"
              % (mode, conns, pipelined, back * 1000), file=sys.stderr)
        self.assert_proximux_ok(pmx)

    def test_fifo_async(self):
        self._run("fifo", 1, True)

    def test_funnel_async(self):
        self._run("funnel", 2, True)

    def test_funnel_sync(self):
        self._run("funnel", 2, False)
