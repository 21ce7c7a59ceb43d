"""Funnel mode (4 connections, pipelined, codec memcache) in front of a real
memcached; the same tests in FIFO sync mode, where requests wait in the
queue behind the one in flight."""

import random

from harness import ProximuxTestCase, closed_by_peer, connect, free_port, recv_exact, run_threads
from muxlib import McClient, MemcachedServer, config_env, mc_value


class _MemcachedMux:
    CONFIG = "funnel4_async"

    @classmethod
    def setUpClass(cls):
        cls.mc = MemcachedServer()

    @classmethod
    def tearDownClass(cls):
        cls.mc.stop()

    def setUp(self):
        with McClient(self.mc.port) as direct:
            self.assertEqual(direct.command(b"flush_all\r\n"), b"OK\r\n")
        self.port = free_port()
        self.pmx = self.start_proximux(config_env(self.port, [("127.0.0.1", self.mc.port)],
                                                  "memcache", self.CONFIG))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def client(self):
        c = McClient(self.port)
        self.addCleanup(c.close)
        return c

    def test_storage_commands(self):
        c = self.client()
        self.assertEqual(c.command(b"set k 5 0 3\r\nabc\r\n"), b"STORED\r\n")
        self.assertEqual(c.get(b"get k\r\n"), mc_value(b"k", b"abc", 5) + b"END\r\n")
        self.assertEqual(c.get(b"get missing\r\n"), b"END\r\n")
        # gets / cas
        reply = c.get(b"gets k\r\n")
        head = reply.split(b"\r\n")[0].split()
        self.assertEqual(head[:4], [b"VALUE", b"k", b"5", b"3"], reply)
        cas = int(head[4])
        self.assertEqual(reply, mc_value(b"k", b"abc", 5, cas) + b"END\r\n")
        self.assertEqual(c.command(b"cas k 7 0 3 %d\r\nxyz\r\n" % cas), b"STORED\r\n")
        self.assertEqual(c.command(b"cas k 7 0 3 %d\r\nold\r\n" % cas), b"EXISTS\r\n")
        self.assertEqual(c.command(b"cas nokey 0 0 1 1\r\nx\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(c.get(b"get k\r\n"), mc_value(b"k", b"xyz", 7) + b"END\r\n")
        # add / replace / append / prepend
        self.assertEqual(c.command(b"add k 0 0 1\r\nz\r\n"), b"NOT_STORED\r\n")
        self.assertEqual(c.command(b"replace k 0 0 3\r\nrep\r\n"), b"STORED\r\n")
        self.assertEqual(c.command(b"append k 0 0 2\r\n>>\r\n"), b"STORED\r\n")
        self.assertEqual(c.command(b"prepend k 0 0 2\r\n<<\r\n"), b"STORED\r\n")
        self.assertEqual(c.get(b"get k\r\n"), mc_value(b"k", b"<<rep>>") + b"END\r\n")
        # incr / decr
        self.assertEqual(c.command(b"set n 0 0 2\r\n10\r\n"), b"STORED\r\n")
        self.assertEqual(c.command(b"incr n 5\r\n"), b"15\r\n")
        self.assertEqual(c.command(b"decr n 20\r\n"), b"0\r\n")
        self.assertEqual(c.command(b"incr nokey 1\r\n"), b"NOT_FOUND\r\n")
        # touch / delete
        self.assertEqual(c.command(b"touch k 100\r\n"), b"TOUCHED\r\n")
        self.assertEqual(c.command(b"touch nokey 100\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(c.command(b"delete k\r\n"), b"DELETED\r\n")
        self.assertEqual(c.command(b"delete k\r\n"), b"NOT_FOUND\r\n")
        self.assertEqual(c.get(b"get k\r\n"), b"END\r\n")
        self.assertTrue(c.command(b"version\r\n").startswith(b"VERSION "))

    def test_multi_get_and_tricky_values(self):
        c = self.client()
        tricky = b"x\r\nEND\r\ny"
        values = {b"a": b"1", b"b": b"", b"t": tricky, b"v": b"VALUE t 0 3\r\nEND\r\n",
                  b"big": random.Random(1).randbytes(500000)}
        for k, v in values.items():
            self.assertEqual(c.command(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)), b"STORED\r\n")
        self.assertEqual(c.get(b"get t\r\n"), mc_value(b"t", tricky) + b"END\r\n")
        self.assertEqual(c.get(b"get a nokey b t v big\r\n"),
                         b"".join(mc_value(k, values[k]) for k in (b"a", b"b", b"t", b"v", b"big")) +
                         b"END\r\n")
        # The same pipelined with other commands, one write.
        c.sock.sendall(b"get t\r\nincr nokey 1\r\nget v a\r\n")
        self.assertEqual(c.read_values(), mc_value(b"t", tricky) + b"END\r\n")
        self.assertEqual(c.read_line_reply(), b"NOT_FOUND\r\n")
        self.assertEqual(c.read_values(), mc_value(b"v", values[b"v"]) + mc_value(b"a", b"1") + b"END\r\n")

    def test_noreply(self):
        c = self.client()
        self.assertTrue(c.command(b"version\r\n").startswith(b"VERSION "))
        # A noreply set pipelined behind a get (in sync mode it waits in the queue).
        c.sock.sendall(b"get nothing\r\nset x 0 0 1 noreply\r\n1\r\nget x\r\n")
        self.assertEqual(c.read_values(), b"END\r\n")
        self.assertEqual(c.read_values(), mc_value(b"x", b"1") + b"END\r\n")
        # noreply sets then a get, in one write: the only reply is the get's.
        c.sock.sendall(b"".join(b"set nr%d 0 0 2 noreply\r\nv%d\r\n" % (i, i) for i in range(10)) +
                       b"delete nr3 noreply\r\nincr nr9 noreply\r\nget nr0 nr3 nr9\r\n")
        self.assertEqual(c.read_values(), mc_value(b"nr0", b"v0") + mc_value(b"nr9", b"v9") + b"END\r\n")
        # Separate writes.
        c.sock.sendall(b"set solo 0 0 4 noreply\r\nsolo\r\n")
        self.assertEqual(c.get(b"get solo\r\n"), mc_value(b"solo", b"solo") + b"END\r\n")
        self.assertEqual(c.command(b"set after 0 0 1\r\n1\r\n"), b"STORED\r\n")

    def test_noreply_keeps_client_order(self):
        """A client's "set ... noreply" then "get" of the same key: the get
        never runs before the set, whichever connection is least busy (the
        client stays on the connection of its unconfirmed noreply). Before
        the fix, funnel mode lost 117 of 600 such rounds."""
        def client(cid):
            with McClient(self.port) as c:
                misses = []
                for i in range(150):
                    key = b"nr%d_%d" % (cid, i % 7)
                    val = b"v%d-%d" % (cid, i)
                    data = b"set %s 0 0 %d noreply\r\n%s\r\n" % (key, len(val), val)
                    get = b"get %s\r\n" % key
                    if i % 2:
                        c.sock.sendall(data + get)      # one write
                    else:
                        c.sock.sendall(data)            # two writes
                        c.sock.sendall(get)
                    got = c.read_values()
                    if got != mc_value(key, val) + b"END\r\n":
                        misses.append((i, got))
                return misses
        # Other clients keep every connection busy, so a free one beckons.
        def noise(cid):
            with McClient(self.port) as c:
                for i in range(300):
                    c.get(b"get noise%d\r\n" % (i % 5))
            return []
        results = run_threads(lambda i: client(i) if i < 6 else noise(i), 10, timeout=90)
        self.assertEqual(results, [[]] * 10)

    def test_meta_commands(self):
        c = self.client()
        self.assertEqual(c.command(b"ms mk 2\r\nhi\r\n"), b"HD\r\n")
        c.sock.sendall(b"mg mk v\r\n")
        self.assertEqual(c.read_line_reply(), b"VA 2\r\n")
        self.assertEqual(c.read_line_reply(), b"hi\r\n")
        self.assertEqual(c.command(b"mg nokey v\r\n"), b"EN\r\n")
        self.assertEqual(c.command(b"mn\r\n"), b"MN\r\n")
        # Quiet mode: a chain up to mn is one request (test_issue9_misc.py).
        c.sock.sendall(b"mg mk v q\r\nmg nokey v q\r\nmn\r\n")
        self.assertEqual([c.read_line_reply() for _ in range(3)], [b"VA 2\r\n", b"hi\r\n", b"MN\r\n"])
        c.sock.sendall(b"mg mk v\r\n")
        self.assertEqual((c.read_line_reply(), c.read_line_reply()), (b"VA 2\r\n", b"hi\r\n"))

    def test_stats_subcommand_refused_by_name(self):
        """A stats subcommand whose reply has no END is refused with a
        reply and a log line naming the command; the client goes on."""
        c = self.client()
        got = c.command(b"stats sizes_enable\r\n")
        self.assertTrue(got.startswith(b"CLIENT_ERROR proximux: \"stats\" with this subcommand"), got)
        self.assertEqual(c.command(b"set k 0 0 1\r\nx\r\n"), b"STORED\r\n")
        self.pmx.wait_log(r'refused: "stats" with this subcommand', timeout=2)

    def test_concurrent_clients(self):
        """30 clients, own keys, set/get/incr/delete, some pipelined."""
        def work(cid):
            rng = random.Random(cid)
            with McClient(self.port, timeout=20) as c:
                for i in range(60):
                    key = b"c%d:%d" % (cid, i)
                    val = b"%d-%d-" % (cid, i) + rng.randbytes(rng.randint(0, 200))
                    if i % 3 == 0:
                        c.sock.sendall(b"set %s %d 0 %d\r\n%s\r\nget %s\r\n" % (key, cid, len(val), val, key))
                        got = (c.read_line_reply(), c.read_values())
                    else:
                        got = (c.command(b"set %s %d 0 %d\r\n%s\r\n" % (key, cid, len(val), val)),
                               c.get(b"get %s\r\n" % key))
                    want = (b"STORED\r\n", mc_value(key, val, cid) + b"END\r\n")
                    if got != want:
                        raise AssertionError("client %d: got %r want %r" % (cid, got, want))
                ctr = b"ctr%d" % cid
                if c.command(b"set %s 0 0 1\r\n0\r\n" % ctr) != b"STORED\r\n":
                    raise AssertionError("set counter")
                c.sock.sendall(b"incr %s 1\r\n" % ctr * 20)
                got = [c.read_line_reply() for _ in range(20)]
                if got != [b"%d\r\n" % i for i in range(1, 21)]:
                    raise AssertionError("client %d incr replies %r" % (cid, got))
                if c.command(b"delete %s\r\n" % ctr) != b"DELETED\r\n":
                    raise AssertionError("delete")
            return True

        self.assertEqual(run_threads(work, 30, timeout=60), [True] * 30)

    def test_malformed_and_quit(self):
        other = self.client()
        self.assertEqual(other.command(b"set o 0 0 1\r\n1\r\n"), b"STORED\r\n")
        for bad in (b"bogus command\r\n", b"set k 0 0 abc\r\n", b"get\r\n"):
            with connect(self.port) as s:
                s.sendall(b"set ok 0 0 2\r\nok\r\n" + bad + b"get o\r\n")
                data = b""
                while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
                    b = s.recv(4096)
                    self.assertTrue(b, "closed after %r (request %r)" % (data, bad))
                    data += b
                first, second = data.split(b"\r\n", 1)
                self.assertEqual(first, b"STORED", bad)
                self.assertTrue(second.startswith(b"CLIENT_ERROR ") or second == b"ERROR\r\n",
                                "reply to %r: %r" % (bad, second))
                self.assertTrue(closed_by_peer(s, 3), "client not closed after %r" % bad)
            self.assertEqual(other.get(b"get o\r\n"), mc_value(b"o", b"1") + b"END\r\n")
        # quit: closed, with the replies owed first.
        with connect(self.port) as s:
            s.sendall(b"set q 0 0 1\r\n1\r\nquit\r\n")
            self.assertEqual(recv_exact(s, 8), b"STORED\r\n")
            self.assertTrue(closed_by_peer(s, 3), "quit did not close")
        self.assertEqual(other.get(b"get q\r\n"), mc_value(b"q", b"1") + b"END\r\n")


class MemcachedFunnel4Async(_MemcachedMux, ProximuxTestCase):
    CONFIG = "funnel4_async"


class MemcachedFifoSync(_MemcachedMux, ProximuxTestCase):
    CONFIG = "fifo_sync"
