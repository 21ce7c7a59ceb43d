"""PROXY protocol (SPEC §12): send_proxy v1/v2 seen by a scripted upstream
and by a real MariaDB with proxy_protocol_networks (SELECT USER() shows the
client's own 127.0.0.x address), warm spares included; accept_proxy: a
header from an address in accept_proxy_from is used for logs, ip_hash and
send_proxy, a malformed one closes the client, and from elsewhere the
header is only data."""

import socket
import struct
import subprocess
import threading
import time

from harness import (TIME_FACTOR, MariaDB, ProximuxTestCase, ScriptedUpstream, free_port, recv_until_eof)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
CLIENT_IP = "127.0.0.5"


class Recorder(ScriptedUpstream):
    """A scripted upstream: reads each connection to its end of stream,
    records the bytes, answers b"ok:" + the byte count and closes. With
    greeting, it speaks first (like MariaDB) as soon as a connection is
    accepted."""

    def __init__(self, greeting=b""):
        self.greeting = greeting
        self.got = []
        super().__init__()
        self.done = threading.Condition(self.lock)

    def _one(self, c):
        data = b""
        try:
            if self.greeting:
                c.sendall(self.greeting)
            c.settimeout(30)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
            c.sendall(b"ok:%d" % len(data))
        except OSError:
            pass
        finally:
            c.close()
        with self.done:
            self.got.append(data)
            self.done.notify_all()

    def wait(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout * TIME_FACTOR
        with self.done:
            while len(self.got) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("upstream saw %d connections end, wanted %d" % (len(self.got), n))
                self.done.wait(left)
            return list(self.got)


def client_from(port, ip=CLIENT_IP):
    s = socket.socket()
    s.bind((ip, 0))
    s.settimeout(10 * TIME_FACTOR)
    s.connect(("127.0.0.1", port))
    return s


def exchange(port, payload, ip=CLIENT_IP, greeting_len=0):
    """Sends payload from ip, half-closes, returns (client port, reply)."""
    s = client_from(port, ip)
    try:
        cport = s.getsockname()[1]
        if greeting_len:
            g = b""
            while len(g) < greeting_len:
                g += s.recv(greeting_len - len(g))
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        return cport, recv_until_eof(s)
    finally:
        s.close()


class Relay:
    """Stands in for a client host or a balancer in front of Proximux: each
    connection to it is relayed to port from source address bind, after
    the bytes header(client address) if given. For clients (the mariadb
    CLI) that cannot choose their source address."""

    def __init__(self, port, bind=CLIENT_IP, header=None):
        self.target, self.bind, self.header = port, bind, header
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, addr = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c, addr), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _one(self, c, addr):
        u = socket.socket()
        try:
            u.bind((self.bind, 0))
            u.connect(("127.0.0.1", self.target))
            if self.header:
                u.sendall(self.header(addr))
        except OSError:
            c.close()
            u.close()
            return
        t = threading.Thread(target=self._pipe, args=(u, c), daemon=True)
        t.start()
        self._pipe(c, u)
        t.join(30)
        c.close()
        u.close()

    def close(self):
        self.sock.close()


def parse_v2(data):
    """(command, family, src ip, dst ip, sport, dport, rest) of a v2 TCP4
    header at the start of data."""
    assert data[:12] == V2_SIG, data[:16]
    cmd, fam, ln = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    body, rest = data[16:16 + ln], data[16 + ln:]
    if fam == 0x11:
        src, dst = socket.inet_ntoa(body[0:4]), socket.inet_ntoa(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        return cmd, fam, src, dst, sport, dport, rest
    return cmd, fam, None, None, None, None, rest


def v2_header(src, dst, sport, dport, tlvs=b""):
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def yaml_for(port, targets, extra="", warmup=False, connections=4):
    t = ", ".join("{ host: 127.0.0.1, port: %d }" % p for p in targets)
    return ("log_level: 2\nlocal: { host: 127.0.0.1, port: %d }\nexchange: { mode: proxy }\n"
            "pool: { connections: %d, warmup: %s }\ntargets: [%s]\n%s"
            % (port, connections, "true" if warmup else "false", t, extra))


class SendProxyScriptedTest(ProximuxTestCase):

    def setUp(self):
        self.up = Recorder()
        self.addCleanup(self.up.close)
        self.port = free_port()

    def test_send_v1(self):
        self.start_proximux(yaml=yaml_for(self.port, [self.up.port], "send_proxy: v1\n"), port=self.port)
        cport, reply = exchange(self.port, b"hello")
        got = self.up.wait(1)[0]
        want = b"PROXY TCP4 %s 127.0.0.1 %d %d\r\nhello" % (CLIENT_IP.encode(), cport, self.port)
        self.assertEqual(got, want)
        self.assertEqual(reply, b"ok:%d" % len(want))

    def test_send_v2(self):
        self.start_proximux(yaml=yaml_for(self.port, [self.up.port], "send_proxy: v2\n"), port=self.port)
        cport, _ = exchange(self.port, b"x" * 100000)
        got = self.up.wait(1)[0]
        cmd, fam, src, dst, sport, dport, rest = parse_v2(got)
        self.assertEqual((cmd, fam, src, dst, sport, dport), (0x21, 0x11, CLIENT_IP, "127.0.0.1", cport, self.port))
        self.assertEqual(rest, b"x" * 100000)

    def test_send_v2_warm_spare_and_greeting(self):
        """A warm spare is connected before its client is known; the header
        goes out when a client takes it, before the client's bytes."""
        self.up.close()
        self.up = Recorder(greeting=b"HELLO\n")
        self.addCleanup(self.up.close)
        pmx = self.start_proximux(yaml=yaml_for(self.port, [self.up.port], "send_proxy: v2\n", warmup=True,
                                                connections=2), port=self.port)
        pmx.wait_log("warmup: 2 connections ready", timeout=10 * TIME_FACTOR)
        self.assertEqual(self.up.accepted, 2)
        cport, reply = exchange(self.port, b"after greeting", greeting_len=6)
        got = self.up.wait(1)[0]
        cmd, fam, src, dst, sport, dport, rest = parse_v2(got)
        self.assertEqual((src, sport, dport), (CLIENT_IP, cport, self.port))
        self.assertEqual(rest, b"after greeting")
        self.assertTrue(reply.startswith(b"ok:"), reply)
        # The client took a spare: one more connection replaces it, no
        # other was opened for the client.
        time.sleep(0.2)
        self.assertEqual(self.up.accepted, 3)

    def test_off_sends_nothing(self):
        self.start_proximux(yaml=yaml_for(self.port, [self.up.port]), port=self.port)
        exchange(self.port, b"plain")
        self.assertEqual(self.up.wait(1)[0], b"plain")


class AcceptProxyTest(ProximuxTestCase):

    def setUp(self):
        self.up = Recorder()
        self.addCleanup(self.up.close)
        self.port = free_port()

    def start(self, extra, targets=None):
        return self.start_proximux(yaml=yaml_for(self.port, targets or [self.up.port], extra), port=self.port)

    def test_v1_header_from_allowed_address_forwarded_as_v2(self):
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\nsend_proxy: v2\n")
        hdr = b"PROXY TCP4 203.0.113.7 198.51.100.1 5555 3306\r\n"
        _, reply = exchange(self.port, hdr + b"payload")
        got = self.up.wait(1)[0]
        cmd, fam, src, dst, sport, dport, rest = parse_v2(got)
        # The header's client and destination are passed on, not 127.0.0.5.
        self.assertEqual((src, dst, sport, dport), ("203.0.113.7", "198.51.100.1", 5555, 3306))
        self.assertEqual(rest, b"payload")
        pmx.wait_log(r"client 127\.0\.0\.5:\d+: PROXY v1 header: client 203\.0\.113\.7:5555")
        pmx.wait_log(r"accept #\d+ client 203\.0\.113\.7:5555$")
        pmx.wait_log(r"close #\d+ client 203\.0\.113\.7:5555 upstream")

    def test_v2_header_split_and_tlvs(self):
        """The header arrives in pieces, with an unknown TLV; the bytes
        after it are the client's."""
        self.start("accept_proxy: true\naccept_proxy_from: [\"::ffff:127.0.0.0/104\"]\n")
        hdr = v2_header("192.0.2.44", "192.0.2.1", 40001, 80, tlvs=b"\xe7\x00\x03abc")
        s = client_from(self.port)
        for piece in (hdr[:5], hdr[5:14], hdr[14:20], hdr[20:] + b"da", b"ta"):
            s.sendall(piece)
            time.sleep(0.05)
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s)
        s.close()
        self.assertEqual(self.up.wait(1)[0], b"data")

    def test_local_command_uses_real_address(self):
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\nsend_proxy: v1\n")
        cport, _ = exchange(self.port, V2_SIG + b"\x20\x00\x00\x00" + b"q")
        self.assertEqual(self.up.wait(1)[0],
                         b"PROXY TCP4 127.0.0.5 127.0.0.1 %d %d\r\nq" % (cport, self.port))
        pmx.wait_log(r"without an address \(LOCAL/UNKNOWN\)")

    def test_malformed_and_missing_headers_close_the_client(self):
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\n")
        def refused(payload):
            """What the client got back: nothing (closed, maybe reset as
            its bytes were not all read)."""
            try:
                return exchange(self.port, payload)[1]
            except OSError:     # reset, broken pipe, or shut down already
                return b""
        for bad, why in ((b"GET / HTTP/1.0\r\n\r\n", "not a PROXY header"),
                         (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "v1: bad port"),
                         (b"PROXY UNKNOWN " + b"x" * 200, "longer than 107 bytes"),
                         (V2_SIG + b"\x21\x11\x00\x04abcd", "shorter than the family")):
            self.assertEqual(refused(bad), b"")
            pmx.wait_log(r"client 127\.0\.0\.5:\d+ refused: PROXY header: .*%s" % why)
        self.assertEqual(self.up.accepted, 0)

    def test_header_timeout(self):
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\n")
        s = client_from(self.port)
        s.sendall(b"PROXY TCP4 1.2.3.4")
        t0 = time.monotonic()
        self.assertEqual(recv_until_eof(s), b"")
        waited = time.monotonic() - t0
        s.close()
        self.assertGreater(waited, 4.0)
        self.assertLess(waited, 8.0 * TIME_FACTOR)
        pmx.wait_log(r"refused: PROXY header: not complete within 5000 ms")
        self.assertEqual(self.up.accepted, 0)

    def test_shutdown_with_header_half_sent(self):
        """A client still sending its header is closed when the listener
        closes at shutdown; nothing leaks (ASan builds check)."""
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\n")
        s = client_from(self.port)
        s.sendall(b"PROXY TCP4 ")
        time.sleep(0.2)
        self.assert_proximux_ok(pmx)
        self.assertEqual(recv_until_eof(s), b"")
        s.close()
        self.assertIn("while it was sending its PROXY header", pmx.log())

    def test_disallowed_address_header_is_data(self):
        pmx = self.start("accept_proxy: true\naccept_proxy_from: [10.0.0.0/8, \"::1\"]\nsend_proxy: v1\n")
        hdr = b"PROXY TCP4 203.0.113.7 198.51.100.1 5555 3306\r\n"
        cport, _ = exchange(self.port, hdr + b"rest")
        self.assertEqual(self.up.wait(1)[0],
                         b"PROXY TCP4 127.0.0.5 127.0.0.1 %d %d\r\n" % (cport, self.port) + hdr + b"rest")
        self.assertNotIn("PROXY v1 header", pmx.log())
        pmx.wait_log(r"accept #\d+ client 127\.0\.0\.5:%d$" % cport)

    def test_ip_hash_uses_header_address(self):
        """ip_hash places clients by the header's address: one real address
        (127.0.0.5) with many header addresses spreads over both targets,
        and each header address always lands on the same one."""
        up2 = Recorder()
        self.addCleanup(up2.close)
        self.start("balance: ip_hash\naccept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\n",
                   targets=[self.up.port, up2.port])
        seen = {}
        for _ in range(2):
            for i in range(12):
                ip = "198.51.100.%d" % (i + 1)
                hdr = b"PROXY TCP4 %s 192.0.2.1 1000 80\r\n" % ip.encode()
                _, reply = exchange(self.port, hdr + ip.encode())
                self.assertTrue(reply.startswith(b"ok:"), reply)
        deadline = time.monotonic() + 10 * TIME_FACTOR
        while len(self.up.got) + len(up2.got) < 24 and time.monotonic() < deadline:
            time.sleep(0.05)
        for which, rec in ((1, self.up), (2, up2)):
            for data in rec.got:
                seen.setdefault(data.decode(), set()).add(which)
        self.assertEqual(len(seen), 12)
        for ip, targets in seen.items():
            self.assertEqual(len(targets), 1, "%s went to both targets" % ip)
        self.assertGreater(len(self.up.got), 0)
        self.assertGreater(len(up2.got), 0)


class SendProxyMariaDBTest(ProximuxTestCase):
    """MariaDB trusts PROXY headers from 127.0.0.0/8 (Proximux's address):
    it then reports the client as the header says."""

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB(extra_args=["--proxy-protocol-networks=127.0.0.0/8"])

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def user_via(self, port, bind=CLIENT_IP, header=None):
        """SELECT USER() through port, the connection coming from bind
        (through a Relay: the mariadb CLI cannot choose its source)."""
        relay = Relay(port, bind, header)
        self.addCleanup(relay.close)
        r = subprocess.run(["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(relay.port), "-u", MariaDB.USER, "-p" + MariaDB.PASSWORD,
                            "--connect-timeout=10", MariaDB.DB, "-N", "-B", "-e", "SELECT USER()"],
                           capture_output=True, timeout=30 * TIME_FACTOR, text=True, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def check(self, version, warmup):
        port = free_port()
        pmx = self.start_proximux(yaml=yaml_for(port, [self.db.port], "send_proxy: %s\n" % version,
                                                warmup=warmup, connections=2), port=port)
        if warmup:
            pmx.wait_log("warmup: 2 connections ready", timeout=10 * TIME_FACTOR)
        self.assertEqual(self.user_via(port), "pmx@127.0.0.5")
        self.assertEqual(self.user_via(port, bind="127.0.0.9"), "pmx@127.0.0.9")
        self.assert_proximux_ok(pmx)

    def test_v2(self):
        self.check("v2", warmup=False)

    def test_v1(self):
        self.check("v1", warmup=False)

    def test_v2_warm_spares(self):
        self.check("v2", warmup=True)

    def test_accepted_header_reaches_mariadb(self):
        """A v1 header from an allowed balancer (127.0.0.0/8) names
        127.0.0.77; send_proxy v2 passes that on to MariaDB."""
        port = free_port()
        pmx = self.start_proximux(yaml=yaml_for(port, [self.db.port], "send_proxy: v2\naccept_proxy: true\n"
                                                "accept_proxy_from: [127.0.0.0/8]\n"), port=port)
        hdr = lambda addr: b"PROXY TCP4 127.0.0.77 127.0.0.1 %d %d\r\n" % (addr[1], port)
        self.assertEqual(self.user_via(port, bind="127.0.0.1", header=hdr), "pmx@127.0.0.77")
        pmx.wait_log(r"PROXY v1 header: client 127\.0\.0\.77:")
        self.assert_proximux_ok(pmx)
