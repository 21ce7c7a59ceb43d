"""Issue 9, codec items: memcached quiet meta commands and the binary
protocol through funnel/FIFO to a real memcached 1.6.18."""

import json
import os
import random
import shutil
import socket
import struct
import signal
import subprocess
import sys
import threading
import time
import unittest

from harness import (TIME_FACTOR, MariaDB, ProximuxTestCase, closed_by_peer, connect, free_port, proxy_env,
                     recv_until_eof, run_threads)
from muxlib import McClient, MemcachedServer, config_env

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers"))
from security_peers import NginxServer  # noqa: E402

PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers")


def mc_read_until_mn(c):
    """Meta replies (VA lines with their data blocks) up to and including
    MN, as raw bytes."""
    out = []
    while True:
        line = c.read_line_reply()
        out.append(line)
        if line.startswith(b"VA "):
            out.append(c._exact(int(line.split()[1]) + 2))
        elif line == b"MN\r\n":
            return b"".join(out)


def quiet_batch(rng, cid, n):
    """n pipelined meta commands, most quiet, on the client's own keys and
    a few shared missing ones, ended by mn: hits, misses, stores, deletes,
    arithmetic, data blocks that hold "MN\\r\\n"."""
    parts = []
    for i in range(n):
        key = b"q%d:%d" % (cid, rng.randrange(8))
        r = rng.randrange(7)
        if r == 0:
            val = rng.choice([b"MN\r\n", b"", b"x" * rng.randrange(2000), b"EN\r\nHD\r\n"])
            parts.append(b"ms %s %d q T0 F%d\r\n%s\r\n" % (key, len(val), i, val))
        elif r == 1:
            parts.append(b"md %s q\r\n" % key)
        elif r == 2:
            parts.append(b"ma c%d q N0 J5\r\n" % cid)
        elif r == 3:
            parts.append(b"mg %s v k f\r\n" % key)          # not quiet: always answered
        else:
            parts.append(b"mg %s q v k O%d\r\n" % (key if r < 6 else b"missing%d" % i, i))
    return b"".join(parts) + b"mn\r\n"


class _QuietMeta:
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

    def client(self, port=None):
        c = McClient(port or self.port)
        self.addCleanup(c.close)
        return c

    def test_quiet_group_replies_as_memcached(self):
        """Quiet hits come back, quiet misses and stores do not, MN ends the
        chain; the bytes match memcached's own for the same commands."""
        c = self.client()
        direct = self.client(self.mc.port)
        c.sock.sendall(b"ms k1 2 q\r\nhi\r\nms k2 4 q\r\nMN\r\n\r\nmn\r\n")
        self.assertEqual(c.read_line_reply(), b"MN\r\n")
        batch = b"mg k1 q v k\r\nmg nokey q v\r\nmg k2 q v O7\r\nmd nokey q\r\nmd k1 q\r\nmg k1 q v\r\nmn\r\n"
        c.sock.sendall(batch)
        got = mc_read_until_mn(c)
        self.assertEqual(got, b"VA 2 kk1\r\nhi\r\nVA 4 O7\r\nMN\r\n\r\nNF\r\nMN\r\n")
        # the same state through memcached directly gives the same bytes
        direct.sock.sendall(b"ms k1 2 q\r\nhi\r\nmn\r\n")
        self.assertEqual(direct.read_line_reply(), b"MN\r\n")
        direct.sock.sendall(batch)
        self.assertEqual(mc_read_until_mn(direct), got)
        # a plain command afterwards is answered alone
        self.assertEqual(c.command(b"mn\r\n"), b"MN\r\n")
        self.assertEqual(c.command(b"mg k2 v\r\n"), b"VA 4\r\n")

    def test_quiet_group_waits_for_mn(self):
        """A chain of quiet commands is forwarded when its mn comes, across
        writes."""
        c = self.client()
        self.assertEqual(c.command(b"ms w 1\r\nx\r\n"), b"HD\r\n")
        c.sock.sendall(b"mg w q v\r\nmg nokey q v\r\n")
        time.sleep(0.2 * TIME_FACTOR)
        c.sock.sendall(b"mg w q ")
        time.sleep(0.1 * TIME_FACTOR)
        c.sock.sendall(b"k v\r\nm")
        time.sleep(0.1 * TIME_FACTOR)
        c.sock.sendall(b"n\r\n")
        self.assertEqual(mc_read_until_mn(c), b"VA 1\r\nx\r\nVA 1 kw\r\nx\r\nMN\r\n")

    def test_concurrent_quiet_pipelines(self):
        """12 clients pipeline chains of quiet commands on their own keys
        (some with shared misses); each gets exactly what memcached sends a
        single client running the same chains alone (its own memcached
        state, replayed on a private key space)."""
        def work(cid):
            rng = random.Random(cid)
            batches = [quiet_batch(rng, cid, rng.randint(1, 40)) for _ in range(25)]
            with McClient(self.port, timeout=20 * TIME_FACTOR) as c:
                got = []
                for i in range(0, len(batches), 3):
                    c.sock.sendall(b"".join(batches[i:i + 3]))
                    got += [mc_read_until_mn(c) for _ in batches[i:i + 3]]
            return batches, got
        results = run_threads(work, 12, timeout=120 * TIME_FACTOR)
        # Replay each client's chains on memcached directly, one client at
        # a time after a flush: the keys are the client's own, so the
        # replies must be identical.
        for cid, (batches, got) in enumerate(results):
            with McClient(self.mc.port, timeout=20) as d:
                for k in range(8):
                    d.sock.sendall(b"md q%d:%d q\r\n" % (cid, k))
                d.sock.sendall(b"md c%d q\r\nmn\r\n" % cid)
                mc_read_until_mn(d)     # NF for the keys that were not there
                want = []
                for b in batches:
                    d.sock.sendall(b)
                    want.append(mc_read_until_mn(d))
            self.assertEqual(got, want, "client %d" % cid)

    def test_classic_command_in_quiet_group_refused(self):
        """A classic command between a quiet one and mn: refused, naming
        the command, and the client closed; nothing of it runs."""
        c = self.client()
        c.sock.sendall(b"set g 0 0 1\r\n1\r\nmd g q\r\nset g 0 0 1 noreply\r\n2\r\nmn\r\n")
        self.assertEqual(c.read_line_reply(), b"STORED\r\n")
        line = c.read_line_reply()
        self.assertTrue(line.startswith(b"CLIENT_ERROR "), line)
        self.assertIn(b'"set"', line)
        self.assertTrue(closed_by_peer(c.sock, 3 * TIME_FACTOR))
        other = self.client()
        self.assertEqual(other.get(b"get g\r\n"), b"VALUE g 0 1\r\n1\r\nEND\r\n")
        self.assertIn('"set"', self.pmx.log())

    def test_binary_protocol_refused_and_closed(self):
        """A binary-protocol set (magic 0x80) is refused at its first byte
        and the client closed at once, whatever follows; other clients go
        on. Before: the client waited for a newline."""
        key, val, extras = b"bk", b"v" * 10, struct.pack(">II", 0, 0)
        body = extras + key + val
        header = struct.pack(">BBHBBHIIQ", 0x80, 0x01, len(key), len(extras), 0, 0, len(body), 7, 0)
        for data in (header + body, header[:1], struct.pack(">BBHBBHIIQ", 0x80, 0x00, 2, 0, 0, 0, 2, 1, 0) + b"bk"):
            with connect(self.port, 5) as s:
                t0 = time.monotonic()
                s.sendall(data)
                s.settimeout(3 * TIME_FACTOR)
                got = b""
                while True:
                    try:
                        b = s.recv(4096)
                    except ConnectionResetError:
                        break
                    if not b:
                        break
                    got += b
                self.assertLess(time.monotonic() - t0, 2 * TIME_FACTOR)
                self.assertTrue(got.startswith(b"CLIENT_ERROR ") and b"binary protocol" in got, got)
        self.assertIn("binary protocol", self.pmx.log())
        c = self.client()
        self.assertEqual(c.command(b"mn\r\n"), b"MN\r\n")


class TestQuietMetaFunnelAsync(_QuietMeta, ProximuxTestCase):
    CONFIG = "funnel4_async"


class TestQuietMetaFifoSync(_QuietMeta, ProximuxTestCase):
    CONFIG = "fifo_sync"


class TestExpectContinueNginx(ProximuxTestCase):
    """HTTP Expect: 100-continue through funnel to a real nginx (which sends
    its own 100 Continue): Proximux answers 100 itself (requests are
    forwarded whole) and drops the upstream's, so a client hears exactly
    one. Before: two, and Node's http client threw "write after end"."""

    def setUp(self):
        self.nginx = NginxServer()
        self.addCleanup(self.nginx.stop)
        self.port = free_port()
        self.pmx = self.start_proximux(config_env(self.port, [self.nginx.address], "http", "funnel2_async"))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def raw_exchange(self, port, first, then, end):
        """Sends first, waits for "100 Continue", sends then; returns all
        bytes up to end (the end of the final response's body)."""
        with connect(port, 5 * TIME_FACTOR) as s:
            s.sendall(first)
            got = b""
            while b"\r\n\r\n" not in got:
                b = s.recv(65536)
                self.assertTrue(b, got)
                got += b
            self.assertTrue(got.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), got)
            s.sendall(then)
            while not got.endswith(end):
                b = s.recv(65536)
                self.assertTrue(b, got)
                got += b
            return got

    def test_one_continue_raw(self):
        req = b"POST /raw HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
        # nginx alone sends its 100 (what Proximux must not pass on)
        direct = self.raw_exchange(self.nginx.port, req, b"body", b"\r\n\r\n/raw\n")
        self.assertEqual(direct.count(b"100 Continue"), 1, direct)
        for _ in range(3):
            got = self.raw_exchange(self.port, req, b"body", b"\r\n\r\n/raw\n")
            self.assertEqual(got.count(b"HTTP/1.1 100 Continue"), 1, got)
        self.assertIn('200 "POST /raw HTTP/1.1"', self.nginx.access())

    def test_refusal_names_method(self):
        """A refused request names its method in the 4xx body and in the
        log (level 2)."""
        with connect(self.port, 5 * TIME_FACTOR) as s:
            s.sendall(b"PATCH /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            got = recv_until_eof(s)
        self.assertTrue(got.startswith(b"HTTP/1.1 400 "), got)
        self.assertIn(b'proximux: malformed request ("PATCH": both content-length and transfer-encoding)', got)
        self.assertIn('"PATCH": both content-length', self.pmx.log())

    def test_node_http_client(self):
        node = shutil.which("node")
        if node is None:
            raise unittest.SkipTest("node not installed")
        out = subprocess.run([node, os.path.join(PEERS, "node_expect.js"), str(self.port), "6"],
                             capture_output=True, timeout=60 * TIME_FACTOR, stdin=subprocess.DEVNULL)
        self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace"))
        results = json.loads(out.stdout)
        self.assertEqual(len(results), 12)
        for r in results:
            self.assertEqual((r["status"], r["body"], r["cont"], r["error"]),
                             (200, "/p%d\n" % r["i"], 1, None), r)


class GreetingUpstream:
    """A scripted server-speaks-first upstream (like MySQL): sends
    "HELLO <n>\\n" on connect, answers each line "ECHO <line>"; closes a
    connection on which nothing came within idle_close seconds of its
    accept (MySQL's connect_timeout), if set. close_idle() closes every
    connection that has not received a byte yet."""

    def __init__(self, idle_close=None):
        self.idle_close = idle_close
        self.lock = threading.Lock()
        self.conns = []             # [socket, accepted_at, got_bytes]
        self.accepted = 0
        self.stopping = False
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        if idle_close:
            threading.Thread(target=self._reaper, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
                entry = [c, time.monotonic(), False]
                self.conns.append(entry)
            try:
                c.sendall(b"HELLO %d\n" % n)
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(entry,), daemon=True).start()

    def _serve(self, entry):
        c = entry[0]
        buf = b""
        try:
            while True:
                b = c.recv(4096)
                if not b:
                    break
                entry[2] = True
                buf += b
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    c.sendall(b"ECHO " + line + b"\n")
        except OSError:
            pass
        finally:
            c.close()

    def _reaper(self):
        while not self.stopping:
            time.sleep(0.01)
            now = time.monotonic()
            with self.lock:
                for e in self.conns:
                    if not e[2] and e[0].fileno() >= 0 and now - e[1] >= self.idle_close:
                        e[0].shutdown(socket.SHUT_RDWR)
                self.conns = [e for e in self.conns if e[0].fileno() >= 0 and (e[2] or now - e[1] < self.idle_close)]

    def idle_count(self):
        with self.lock:
            return sum(1 for e in self.conns if not e[2] and e[0].fileno() >= 0)

    def close_idle(self):
        with self.lock:
            for e in self.conns:
                if not e[2] and e[0].fileno() >= 0:
                    e[0].shutdown(socket.SHUT_RDWR)

    def stop(self):
        self.stopping = True
        self.srv.close()
        with self.lock:
            for e in self.conns:
                try:
                    e[0].close()
                except OSError:
                    pass


def greeting_session(port, word, timeout=5.0):
    """A client of GreetingUpstream through Proximux: returns the greeting
    and the echo of word ("" parts where the connection closed)."""
    with connect(port, timeout * TIME_FACTOR) as s:
        s.sendall(word + b"\n")
        got = b""
        try:
            while got.count(b"\n") < 2:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, socket.timeout):
            pass
        return got


class TestWarmSpares(ProximuxTestCase):
    """Proxy mode with warm spares (issue 9): a spare is replaced once it
    reaches pool.spare_max_age, before the target's idle close, and a spare
    found closed when a client arrives is never handed over."""

    def start(self, up_port, **settings):
        self.port = free_port()
        kw = dict(PROXY_WARMUP=1, PROXY_CONNECTIONS_CNT=2, LOCAL_MAX_CONNECTIONS=16)
        kw.update(settings)
        return self.start_proximux(proxy_env(self.port, [("127.0.0.1", up_port)], **kw))

    def test_spare_closed_as_client_arrives_not_handed_over(self):
        """The client is accepted in the same event batch as the spares'
        close (Proximux stopped meanwhile, client first): it must get a new,
        working connection. Before: it got a dead spare and was closed."""
        up = GreetingUpstream()
        self.addCleanup(up.stop)
        pmx = self.start(up.port, PROXY_SPARE_MAX_AGE=-1)
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while up.idle_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(up.idle_count(), 2)
        time.sleep(0.1)
        for round_ in range(2):
            os.kill(pmx.proc.pid, signal.SIGSTOP)
            try:
                s = connect(self.port, 5 * TIME_FACTOR)
                s.sendall(b"ping%d\n" % round_)
                time.sleep(0.1)
                up.close_idle()
                time.sleep(0.2)
            finally:
                os.kill(pmx.proc.pid, signal.SIGCONT)
            got = b""
            try:
                while got.count(b"\n") < 2:
                    b = s.recv(4096)
                    if not b:
                        break
                    got += b
            except (ConnectionResetError, socket.timeout):
                pass
            s.close()
            self.assertRegex(got, rb"^HELLO \d+\nECHO ping%d\n$" % round_, got)
            deadline = time.monotonic() + 5 * TIME_FACTOR
            while up.idle_count() < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
        self.assertIn("found closed when client", pmx.log())
        self.assert_proximux_ok(pmx)

    def test_spares_replaced_before_target_idle_close(self):
        """The upstream closes connections that say nothing for 1 s (as
        MySQL's connect_timeout); one spare, spare_max_age 700: clients
        arriving after gaps around and past 1 s all get a working
        connection, the spare having been replaced before the upstream's
        close (not a failure: no backoff, no failure logged)."""
        up = GreetingUpstream(idle_close=1.0)
        self.addCleanup(up.stop)
        pmx = self.start(up.port, PROXY_CONNECTIONS_CNT=1, PROXY_SPARE_MAX_AGE=700)
        results = []
        for i, gap in enumerate([0.3, 0.95, 1.0, 1.05, 1.3, 0.75, 1.6]):
            time.sleep(gap)
            results.append(greeting_session(self.port, b"w%d" % i))
        bad = [(i, r) for i, r in enumerate(results) if not r.endswith(b"ECHO w%d\n" % i)]
        self.assertEqual(bad, [])
        log = pmx.log()
        self.assertIn("replaced: warm spare reached pool.spare_max_age", log)
        self.assertNotIn("target closed the spare connection", log)
        self.assertNotIn("backoff", log)
        self.assert_proximux_ok(pmx)


class TestWarmSparesMariaDB(ProximuxTestCase):
    """MariaDB with connect_timeout and wait_timeout of 2 s, warm spares
    with pool.spare_max_age 1500: clients arriving around and past the 2 s
    mark all complete their query (no "Lost connection")."""

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()
        cls.db.root("SET GLOBAL connect_timeout = 2; SET GLOBAL wait_timeout = 2;")

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def test_clients_around_connect_timeout(self):
        port = free_port()
        pmx = self.start_proximux(proxy_env(port, [("127.0.0.1", self.db.port)], PROXY_WARMUP=1,
                                            PROXY_CONNECTIONS_CNT=4, LOCAL_MAX_CONNECTIONS=32,
                                            PROXY_SPARE_MAX_AGE=1500))
        t0 = time.monotonic()
        # arrivals every 100 ms from 1.6 s to 4.6 s after the spares
        # connected, then a few after pauses of about 2 s (spares left idle
        # past the server's connect_timeout but for their renewal)
        offsets = [1.6 + 0.1 * i for i in range(31)] + [6.5, 6.55, 6.6, 8.6, 8.65]

        def client(i):
            delay = offsets[i] - (time.monotonic() - t0)
            if delay > 0:
                time.sleep(delay)
            r = self.db.run_client("SELECT %d" % i, port=port, timeout=30)
            return (r.returncode, r.stdout.strip(), r.stderr.strip())
        results = run_threads(client, len(offsets), timeout=120 * TIME_FACTOR)
        self.assertEqual([r for r in results if r[0] != 0], [])
        self.assertEqual([r[1] for r in results], [str(i) for i in range(len(offsets))])
        self.assertIn("pool.spare_max_age", pmx.log())
        self.assert_proximux_ok(pmx)
