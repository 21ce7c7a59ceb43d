"""resp session state through fifo and funnel (SPEC §13): SELECT, HELLO,
CLIENT SETNAME/GETNAME/SETINFO/ID answered or tracked per client, shared
upstream connections switched to each client's database and protocol,
refusals naming the command. A real redis-server; redis-py where a client
library is what is being tried."""

import socket
import sys
import threading
import time

try:
    import redis
except ImportError:         # Debian's python3-redis, for another python3 than Debian's
    sys.path.append("/usr/lib/python3/dist-packages")
    import redis

from harness import (ProximuxTestCase, RedisServer, Resp, RespError, free_port, resp_encode, run_threads)
from muxlib import config_env


def refused(cmd):
    return RespError("ERR proximux: %s not supported through a shared connection" % cmd)


class _Session:
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

    def test_a_select_per_client(self):
        """Clients in databases 0..3 at once on the shared connections:
        each writes and reads its own database, checked directly."""
        def client(cid):
            db = cid % 4
            r = redis.Redis(host="127.0.0.1", port=self.port, db=db, socket_timeout=20)
            for i in range(100):
                key = "k%d:%d" % (cid, i)
                pipe = r.pipeline(transaction=False)
                pipe.set(key, "db%d" % db)
                pipe.get(key)
                got = pipe.execute()
                if got != [True, b"db%d" % db]:
                    raise AssertionError("client %d: %r" % (cid, got))
            r.close()
            return 1

        self.assertEqual(sum(run_threads(client, 16, timeout=60)), 16)
        for db in range(4):
            direct = redis.Redis(port=self.redis.port, db=db)
            self.assertEqual(direct.dbsize(), 4 * 100)
            for key in direct.keys():
                self.assertEqual(direct.get(key), b"db%d" % db)

    def test_b_select_pipelined_and_errors(self):
        with Resp(self.port) as r:
            # SELECT in the middle of a pipeline applies to what follows only.
            r.sock.sendall(resp_encode("SET", "x", "zero") + resp_encode("SELECT", "2") +
                           resp_encode("SET", "x", "two") + resp_encode("GET", "x") +
                           resp_encode("SELECT", "0") + resp_encode("GET", "x"))
            self.assertEqual([r.read_reply() for _ in range(6)], ["OK", "OK", "OK", b"two", "OK", b"zero"])
            self.assertEqual(r.command("SELECT", "16"), RespError("ERR DB index is out of range"))
            self.assertEqual(r.command("SELECT", "x"), RespError("ERR value is not an integer or out of range"))
            self.assertEqual(r.command("GET", "x"), b"zero")
        self.assertEqual(redis.Redis(port=self.redis.port, db=2).get("x"), b"two")

    def test_c_client_commands(self):
        with Resp(self.port) as r, Resp(self.port) as r2:
            self.assertEqual(r.command("CLIENT", "GETNAME"), None)
            self.assertEqual(r.command("CLIENT", "SETNAME", "alice"), "OK")
            self.assertEqual(r2.command("CLIENT", "SETNAME", "bob"), "OK")
            self.assertEqual(r.command("CLIENT", "GETNAME"), b"alice")
            self.assertEqual(r2.command("CLIENT", "GETNAME"), b"bob")
            self.assertEqual(r.command("CLIENT", "SETNAME", "a b"),
                             RespError("ERR Client names cannot contain spaces, newlines or special characters."))
            self.assertEqual(r.command("CLIENT", "SETINFO", "lib-name", "redis-py"), "OK")
            id1, id2 = r.command("CLIENT", "ID"), r2.command("CLIENT", "ID")
            self.assertIsInstance(id1, int)
            self.assertNotEqual(id1, id2)
            self.assertEqual(r.command("CLIENT", "ID"), id1)
            self.assertEqual(r.command("CLIENT", "TRACKING", "on"), refused("CLIENT TRACKING"))
            self.assertEqual(r.command("CLIENT", "REPLY", "OFF"), refused("CLIENT REPLY"))
            self.assertEqual(r.command("RESET"), refused("RESET"))
            self.assertEqual(r.command("PING"), "PONG")
        log = self.pmx.log()
        self.assertIn("refused CLIENT TRACKING", log)
        self.assertIn("refused RESET", log)

    def test_d_hello(self):
        # Byte level: the RESP3 map, then RESP3 replies from the shared connection.
        with Resp(self.port) as r:
            r.sock.sendall(resp_encode("HELLO", "3", "SETNAME", "n3"))
            data = self.read_until(r, b"*0\r\n")
            self.assertTrue(data.startswith(b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), data)
            self.assertIn(b"$5\r\nproto\r\n:3\r\n", data)
            self.assertIn(b"$7\r\nmodules\r\n*0\r\n", data)
            r.sock.sendall(resp_encode("HSET", "h", "f", "v") + resp_encode("HGETALL", "h") +
                           resp_encode("CLIENT", "GETNAME") + resp_encode("GET", "missing"))
            data = self.read_until(r, b"_\r\n")
            self.assertEqual(data, b":1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n$2\r\nn3\r\n_\r\n")
            # Back to RESP2 on the same client.
            r.sock.sendall(resp_encode("HELLO", "2"))
            data = self.read_until(r, b"*0\r\n")
            self.assertTrue(data.startswith(b"*14\r\n"), data)
            self.assertEqual(r.command("HGETALL", "h"), [b"f", b"v"])
            self.assertEqual(r.command("HELLO", "4"), RespError("NOPROTO unsupported protocol version"))
        # A RESP2 client next to RESP3 ones gets RESP2.
        with Resp(self.port) as r2, Resp(self.port) as r3:
            r3.sock.sendall(resp_encode("HELLO", "3"))
            self.read_until(r3, b"*0\r\n")
            for _ in range(20):
                r3.sock.sendall(resp_encode("HGETALL", "h"))
                r2.sock.sendall(resp_encode("HGETALL", "h"))
                self.assertEqual(self.read_until(r3, b"$1\r\nv\r\n"), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n")
                self.assertEqual(r2.read_reply(), [b"f", b"v"])

    def test_e_redis_py_name_db(self):
        """redis-py (4.3: RESP2) connecting with a database and a name:
        SELECT and CLIENT SETNAME on connect, then pipelines."""
        r = redis.Redis(host="127.0.0.1", port=self.port, db=3, client_name="py3", socket_timeout=20)
        self.assertTrue(r.set("a", "1"))
        self.assertEqual(r.hgetall("nothing"), {})
        r.hset("h3", mapping={"x": "1", "y": "2"})
        self.assertEqual(r.hgetall("h3"), {b"x": b"1", b"y": b"2"})
        self.assertEqual(r.client_getname(), "py3")
        self.assertEqual(redis.Redis(port=self.redis.port, db=3).get("a"), b"1")
        self.assertIsNone(redis.Redis(port=self.redis.port, db=0).get("a"))
        r.close()

    @staticmethod
    def read_until(r, end):
        data = r.buf
        r.buf = b""
        while not data.endswith(end):
            chunk = r.sock.recv(65536)
            if not chunk:
                raise AssertionError("closed after %r" % data)
            data += chunk
        return data


class _Pinned:
    """Pinning to dedicated upstream connections: MULTI..EXEC, WATCH,
    subscriptions, MONITOR, blocking commands. A password on the target
    (requirepass) and clients in database 1, as applications run them."""
    CONFIG = None
    SETTINGS = {}

    @classmethod
    def setUpClass(cls):
        cls.redis = PasswordRedis()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def setUp(self):
        self.direct = redis.Redis(port=self.redis.port, password="tp", db=1)
        self.direct.flushall()
        self.port = free_port()
        settings = dict(TARGET_PASSWORD_1="tp")
        settings.update(self.SETTINGS)
        self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", self.redis.port)], "resp",
                                                  self.CONFIG, **settings))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, db=1, socket_timeout=20, **kw)

    def test_a_multi_exec_pipelined(self):
        """MULTI, commands and EXEC in one write, next to other clients."""
        def worker(cid):
            with Resp(self.port, timeout=20) as r:
                self.assertEqual(r.command("SELECT", "1"), "OK")
                for i in range(30):
                    r.sock.sendall(resp_encode("MULTI") + resp_encode("SET", "t%d" % cid, i) +
                                   resp_encode("INCR", "n%d" % cid) + resp_encode("EXEC") +
                                   resp_encode("GET", "t%d" % cid))
                    got = [r.read_reply() for _ in range(5)]
                    if got != ["OK", "QUEUED", "QUEUED", ["OK", i + 1], b"%d" % i]:
                        raise AssertionError("client %d: %r" % (cid, got))
            return 1

        self.assertEqual(sum(run_threads(worker, 8, timeout=60)), 8)
        self.assertEqual(self.direct.get("n3"), b"30")
        # redis-py's transactional pipeline
        r = self.client()
        pipe = r.pipeline(transaction=True)
        pipe.set("a", "1").incr("a").get("a")
        self.assertEqual(pipe.execute(), [True, 2, b"2"])
        r.close()

    def test_b_watch(self):
        """WATCH/MULTI/EXEC with redis-py: a write by another client
        between WATCH and EXEC aborts the transaction (WatchError)."""
        r, other = self.client(), self.client()
        r.set("bal", 10)
        with r.pipeline() as pipe:
            pipe.watch("bal")
            self.assertEqual(pipe.get("bal"), b"10")
            other.set("bal", 99)            # through a shared connection
            pipe.multi()
            pipe.set("bal", 11)
            with self.assertRaises(redis.WatchError):
                pipe.execute()
        self.assertEqual(self.direct.get("bal"), b"99")
        with r.pipeline() as pipe:
            pipe.watch("bal")
            pipe.multi()
            pipe.incr("bal")
            self.assertEqual(pipe.execute(), [100])
        # UNWATCH then shared again
        with Resp(self.port) as c:
            self.assertEqual(c.command("WATCH", "bal"), "OK")
            self.assertEqual(c.command("UNWATCH"), "OK")
            self.assertEqual(c.command("SELECT", "1"), "OK")
            self.assertEqual(c.command("GET", "bal"), b"100")
        r.close()
        other.close()

    def test_c_pubsub(self):
        """redis-py pub/sub with another client publishing through
        Proximux; then a raw client that unsubscribes from everything goes
        on with ordinary commands."""
        r = self.client()
        p = r.pubsub()
        p.subscribe("news")
        p.psubscribe("n*")
        self.assertEqual(p.get_message(timeout=5)["type"], "subscribe")
        self.assertEqual(p.get_message(timeout=5)["type"], "psubscribe")
        pub = self.client()
        self.assertEqual(pub.publish("news", "hello"), 2)
        got = [p.get_message(timeout=5) for _ in range(2)]
        self.assertEqual(sorted(m["type"] for m in got), ["message", "pmessage"])
        self.assertTrue(all(m["data"] == b"hello" for m in got))
        p.close()
        with Resp(self.port) as c:
            self.assertEqual(c.command("SELECT", "1"), "OK")
            c.sock.sendall(resp_encode("SUBSCRIBE", "a", "b"))
            self.assertEqual(c.read_reply(), [b"subscribe", b"a", 1])
            self.assertEqual(c.read_reply(), [b"subscribe", b"b", 2])
            self.assertEqual(pub.publish("b", "x"), 1)
            self.assertEqual(c.read_reply(), [b"message", b"b", b"x"])
            # SELECT while subscribed (RESP2): answered by the server, in
            # order with the messages, as it would be directly: refused
            got = c.command("SELECT", "2")
            self.assertIsInstance(got, RespError)
            self.assertTrue(got.args[0].startswith("ERR Can't execute 'select'"), got)
            c.sock.sendall(resp_encode("UNSUBSCRIBE"))
            self.assertEqual(sorted(c.read_reply()[2] for _ in range(2)), [0, 1])
            self.assertEqual(c.command("SET", "after", "1"), "OK")
            self.assertEqual(c.command("GET", "after"), b"1")
        self.assertEqual(redis.Redis(port=self.redis.port, password="tp", db=1).get("after"), b"1")
        pub.close()

    def test_d_pubsub_resp3(self):
        with Resp(self.port) as c:
            c.sock.sendall(resp_encode("HELLO", "3"))
            _Session.read_until(c, b"*0\r\n")
            c.sock.sendall(resp_encode("SUBSCRIBE", "ch"))
            self.assertEqual(_Session.read_until(c, b":1\r\n"), b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n")
            self.assertEqual(self.client().publish("ch", "m"), 1)
            self.assertEqual(_Session.read_until(c, b"m\r\n"), b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n")
            c.sock.sendall(resp_encode("UNSUBSCRIBE", "ch"))
            self.assertEqual(_Session.read_until(c, b":0\r\n"), b">3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n")
            c.sock.sendall(resp_encode("HGETALL", "none"))
            self.assertEqual(_Session.read_until(c, b"%0\r\n"), b"%0\r\n")

    def test_e_blpop(self):
        """BLPOP woken by another client; meanwhile the shared
        connections serve others."""
        r = self.client()
        result = {}

        def blocked():
            result["v"] = r.blpop("q", timeout=10)

        t = threading.Thread(target=blocked)
        t.start()
        other = self.client()
        deadline = time.monotonic() + 5
        while int(self.direct.info("clients")["blocked_clients"]) == 0:
            self.assertLess(time.monotonic(), deadline, "BLPOP never blocked")
            time.sleep(0.02)
        for i in range(20):
            self.assertTrue(other.set("x%d" % i, i))
        self.assertEqual(other.rpush("q", "job"), 1)
        t.join(10)
        self.assertEqual(result["v"], (b"q", b"job"))
        self.assertEqual(r.get("x19"), b"19")
        r.close()
        other.close()

    def test_f_poisoned_multi_and_monitor(self):
        with Resp(self.port) as c:
            c.sock.sendall(resp_encode("SELECT", "1") + resp_encode("MULTI") + resp_encode("SET", "p", "1") +
                           resp_encode("SELECT", "2") + resp_encode("EXEC") + resp_encode("GET", "p"))
            got = [c.read_reply() for _ in range(6)]
            self.assertEqual(got, ["OK", "OK", "QUEUED",
                                   RespError("ERR proximux: SELECT inside MULTI not supported"),
                                   RespError("EXECABORT Transaction discarded because of previous errors."), None])
        self.assertIsNone(self.direct.get("p"))
        with Resp(self.port) as mon:
            self.assertEqual(mon.command("MONITOR"), "OK")
            self.client().set("seen", "1")
            line = mon.read_reply()
            while "seen" not in line:
                line = mon.read_reply()
            self.assertIn('"set" "seen" "1"', line.lower())
        self.assertIn("refused SELECT", self.pmx.log())

    def test_g_leave_pinned(self):
        """Clients that leave while subscribed, monitoring or blocked: their
        dedicated connections are closed (Redis shows no subscribed, blocked or
        monitoring connection left); one that finished cleanly is reused."""
        for payload in (resp_encode("SUBSCRIBE", "c1", "c2"), resp_encode("BLPOP", "nothing", "0"),
                        resp_encode("MONITOR"), resp_encode("MULTI") + resp_encode("SET", "m", "1")):
            with Resp(self.port) as c:
                c.sock.sendall(payload)
                time.sleep(0.1)
        deadline = time.monotonic() + 5
        while True:
            busy = [cl for cl in self.direct.client_list()
                    if cl["flags"] not in ("N",) or cl["sub"] != "0" or cl["psub"] != "0" or cl["multi"] != "-1"]
            busy = [cl for cl in busy if cl["cmd"] not in ("client|list", "client")]
            if not busy:
                break
            self.assertLess(time.monotonic(), deadline, "left in a pinned state: %r" % busy)
            time.sleep(0.05)
        self.assertIsNone(self.direct.get("m"))
        before = len(self.direct.client_list())
        for _ in range(5):
            with Resp(self.port) as c:
                self.assertEqual(c.command("MULTI"), "OK")
                self.assertEqual(c.command("PING"), "QUEUED")
                self.assertEqual(c.command("EXEC"), ["PONG"])
        self.assertLessEqual(len(self.direct.client_list()), before + 1)


class UnexpectedPush(ProximuxTestCase):
    """A RESP3 push message where a reply is due on a shared connection
    (what client tracking would send): a protocol error that fails that
    connection, never taken for the next client's reply."""

    def test_push_fails_the_connection(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(4)
        self.addCleanup(lsock.close)

        def server():
            conn, _ = lsock.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n+OK\r\n")
                conn.recv(65536)        # until Proximux closes it

        t = threading.Thread(target=server, daemon=True)
        t.start()
        port = free_port()
        pmx = self.start_proximux(config_env(port, [("127.0.0.1", lsock.getsockname()[1])], "resp", "fifo_async"))
        with Resp(port) as r:
            reply = r.command("SET", "k", "v")
            self.assertIsInstance(reply, RespError)
            self.assertIn("unexpected push message", reply.args[0])
        t.join(5)
        self.assertFalse(t.is_alive(), "the upstream connection was not closed")
        self.assertIn("unexpected push message", pmx.log())
        self.assert_proximux_ok(pmx)


class _PinnedLimit:
    """session.dedicated_max: 1: a second client's MULTI is refused, and
    its queued commands and EXEC with it."""
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
        self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", self.redis.port)], "resp",
                                                  self.CONFIG, SESSION_DEDICATED_MAX=1))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def test_limit(self):
        with Resp(self.port) as a, Resp(self.port) as b:
            self.assertEqual(a.command("MULTI"), "OK")
            b.sock.sendall(resp_encode("MULTI") + resp_encode("SET", "k", "b") + resp_encode("EXEC") +
                           resp_encode("GET", "k"))
            got = [b.read_reply() for _ in range(4)]
            self.assertEqual(got, [RespError("ERR proximux: MULTI refused: session.dedicated_max reached"),
                                   RespError("ERR proximux: SET refused: its transaction's MULTI was refused"),
                                   RespError("EXECABORT Transaction discarded because of previous errors."),
                                   None])
            self.assertEqual(a.command("SET", "k", "a"), "QUEUED")
            self.assertEqual(a.command("EXEC"), ["OK"])
            # a's connection is idle again (once EXEC is answered): b gets it
            self.assertEqual(b.command("MULTI"), "OK")
            self.assertEqual(b.command("GET", "k"), "QUEUED")
            self.assertEqual(b.command("EXEC"), [b"a"])
        self.assertIn("refused MULTI: session.dedicated_max (1) reached", self.pmx.log())


class PinnedFifoAsync(_Pinned, ProximuxTestCase):
    CONFIG = "fifo_async"


class PinnedFunnelAsync(_Pinned, ProximuxTestCase):
    CONFIG = "funnel4_async"


class PinnedFunnelSync(_Pinned, ProximuxTestCase):
    CONFIG = "funnel4_sync"


class PinnedLimitFifo(_PinnedLimit, ProximuxTestCase):
    CONFIG = "fifo_async"


class PasswordRedis(RedisServer):
    """redis-server with requirepass tp (ready: PING answered NOAUTH)."""

    def __init__(self):
        super().__init__(extra_args=("--requirepass", "tp"))

    def _wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with Resp(self.port, 1) as r:
                    if r.command("AUTH", "tp") == "OK":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server not ready")
            time.sleep(0.05)


class _Auth:
    """AUTH: upstream connections authenticate with targets[].password;
    clients to Proximux with session.auth, or without it against the
    targets' credentials."""
    CONFIG = None

    @classmethod
    def setUpClass(cls):
        cls.redis = PasswordRedis()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def start(self, **settings):
        self.port = free_port()
        self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", self.redis.port)], "resp",
                                                  self.CONFIG, **settings))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def test_a_target_password(self):
        """No session.auth: clients need no AUTH (the connections are
        authenticated); a client's AUTH is checked against the targets'."""
        self.start(TARGET_PASSWORD_1="tp")
        with Resp(self.port) as r:
            self.assertEqual(r.command("SET", "k", "v"), "OK")
            self.assertEqual(r.command("AUTH", "tp"), "OK")
            self.assertEqual(r.command("AUTH", "default", "tp"), "OK")
            self.assertEqual(r.command("AUTH", "nope"),
                             RespError("WRONGPASS invalid username-password pair or user is disabled."))
            self.assertEqual(r.command("GET", "k"), b"v")
        # redis-py with a password and a database, pipelines.
        r = redis.Redis(host="127.0.0.1", port=self.port, password="tp", db=1, socket_timeout=20)
        pipe = r.pipeline(transaction=False)
        for i in range(50):
            pipe.set("p%d" % i, i)
            pipe.incr("n")
        self.assertEqual(pipe.execute(), [True, 1] + sum(([True, i] for i in range(2, 51)), []))
        self.assertEqual(r.get("p49"), b"49")
        direct = redis.Redis(port=self.redis.port, password="tp", db=1)
        self.assertEqual(direct.get("n"), b"50")
        r.close()
        with self.assertRaisesRegex((redis.ResponseError, redis.AuthenticationError), "WRONGPASS"):
            redis.Redis(host="127.0.0.1", port=self.port, password="bad").ping()

    def test_b_session_auth(self):
        """session.auth.password: nothing but AUTH/HELLO/QUIT before AUTH."""
        self.start(TARGET_PASSWORD_1="tp", SESSION_AUTH_PASSWORD="pp")
        with Resp(self.port) as r:
            self.assertEqual(r.command("GET", "k"), RespError("NOAUTH Authentication required."))
            self.assertEqual(r.command("SELECT", "1"), RespError("NOAUTH Authentication required."))
            self.assertEqual(r.command("AUTH", "tp"),
                             RespError("WRONGPASS invalid username-password pair or user is disabled."))
            self.assertEqual(r.command("AUTH", "pp"), "OK")
            self.assertEqual(r.command("SET", "k", "v"), "OK")
        with Resp(self.port) as r:
            r.sock.sendall(resp_encode("HELLO", "3", "AUTH", "default", "pp"))
            data = _Session.read_until(r, b"*0\r\n")
            self.assertTrue(data.startswith(b"%7\r\n"), data)
            r.sock.sendall(resp_encode("GET", "k"))
            self.assertEqual(_Session.read_until(r, b"v\r\n"), b"$1\r\nv\r\n")
        r = redis.Redis(host="127.0.0.1", port=self.port, password="pp", db=2, socket_timeout=20)
        self.assertTrue(r.set("x", "y"))
        self.assertEqual(redis.Redis(port=self.redis.port, password="tp", db=2).get("x"), b"y")
        r.close()

    def test_c_wrong_target_password(self):
        """Upstream AUTH refused: the connection fails, the client gets an
        error naming the refusal; Proximux goes on."""
        self.start(TARGET_PASSWORD_1="wrong")
        with Resp(self.port) as r:
            reply = r.command("GET", "k")
            self.assertIsInstance(reply, RespError)
            self.assertTrue(reply.args[0].startswith("ERR proximux: "), reply)
        self.assertIn("session command refused: -WRONGPASS", self.pmx.log())

    def test_d_no_target_password(self):
        redis_nopass = RedisServer()
        try:
            self.port = free_port()
            self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", redis_nopass.port)], "resp",
                                                      self.CONFIG))
            with Resp(self.port) as r:
                reply = r.command("AUTH", "x")
                self.assertTrue(reply.args[0].startswith("ERR AUTH <password> called without any password"))
                self.assertEqual(r.command("AUTH", "default", "x"), "OK")
                self.assertEqual(r.command("PING"), "PONG")
        finally:
            redis_nopass.stop()


class AuthFifoAsync(_Auth, ProximuxTestCase):
    CONFIG = "fifo_async"


class AuthFunnelSync(_Auth, ProximuxTestCase):
    CONFIG = "funnel4_sync"


class SessionFifoAsync(_Session, ProximuxTestCase):
    CONFIG = "fifo_async"


class SessionFunnelAsync(_Session, ProximuxTestCase):
    CONFIG = "funnel4_async"


class SessionFunnelSync(_Session, ProximuxTestCase):
    CONFIG = "funnel4_sync"

