"""Fairness in fifo/funnel (SPEC sections 4 and 13): a client that pipelines
thousands of GETs of a 1 MiB value and never reads its responses delays
the clients sharing the upstream connection by at most a bounded amount
(exchange.client_inflight, turns between clients), and is let go when its
unread responses reach local.output_limit; its requests not yet written
are dropped. Measured against a real redis-server."""

import socket
import sys
import threading
import time

from harness import TIME_FACTOR as TF, ProximuxTestCase, RedisServer, Resp, free_port, resp_encode

VALUE = b"v" * (1 << 20)


class GreedyClientTest(ProximuxTestCase):

    def _run(self, mode, conns, pipelined):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        with Resp(redis.port) as r:
            self.assertEqual(r.command("SET", "big", VALUE), "OK")
        port = free_port()
        yaml = ("log_level: 2\n"
                "local: { port: %d }\n"
                "exchange: { mode: %s, codec: resp, funnel_async: %s }\n"
                "pool: { connections: %d }\n"
                "targets: [ { host: 127.0.0.1, port: %d } ]\n"
                % (port, mode, "true" if pipelined else "false", conns, redis.port))
        pmx = self.start_proximux(yaml=yaml, port=port)

        # The greedy client: 30,000 pipelined GETs of the 1 MiB value, never
        # read (a small receive window so that nothing drains it).
        greedy = socket.socket()
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.connect(("127.0.0.1", port))
        self.addCleanup(greedy.close)
        stop = threading.Event()

        def flood():
            batch = resp_encode("GET", "big") * 1000
            greedy.settimeout(0.2)
            sent = 0
            while sent < 30 and not stop.is_set():
                try:
                    greedy.sendall(batch)
                    sent += 1
                except socket.timeout:
                    continue
                except OSError:
                    return          # let go by proximux
        flooder = threading.Thread(target=flood, daemon=True)
        flooder.start()
        time.sleep(0.2)             # the flood is under way

        latencies = []
        lock = threading.Lock()
        errors = []

        def pinger(cid):
            try:
                with Resp(port, timeout=10 * TF) as r:
                    end = time.monotonic() + 2.0
                    while time.monotonic() < end:
                        t0 = time.monotonic()
                        got = r.command("PING")
                        dt = time.monotonic() - t0
                        if got != "PONG":
                            errors.append("client %d: %r" % (cid, got))
                            return
                        with lock:
                            latencies.append(dt)
                        time.sleep(0.005)
            except Exception as e:      # noqa: BLE001 - reported below
                errors.append("client %d: %r" % (cid, e))

        threads = [threading.Thread(target=pinger, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        stop.set()
        flooder.join(5)
        self.assertEqual(errors, [])
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        worst = latencies[-1] * 1000
        print("FIGURES fairness mode=%s conns=%d async=%s pings=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"
              % (mode, conns, pipelined, len(latencies), p50, p99, worst), file=sys.stderr)
        self.assertGreater(len(latencies), 100)
        self.assertLess(p99, 50 * TF, "PING clients' p99 next to the greedy client")
        pmx.wait_log(r"output limit reached", timeout=5 * TF)
        self.assert_proximux_ok(pmx)

    def test_fifo_async(self):
        self._run("fifo", 1, True)

    def test_funnel_async(self):
        self._run("funnel", 2, True)

    def test_funnel_sync(self):
        self._run("funnel", 2, False)
