"""Several services in one process (SPEC section 8): two services with four
listeners between them (one a unix socket), each serving its own targets;
a unix-socket target; a listener that cannot be bound stops the start
with one line naming it."""

import os
import shutil
import socket
import tempfile

from harness import ProximuxTestCase, RedisServer, connect, free_port, run_proximux
from muxlib import LineClient
from peers.mux_peers import LineServer
from peers.upstreams import Echo


def unix_connect(path, timeout=5.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def roundtrip(sock, data, want):
    sock.sendall(data)
    got = b""
    while len(got) < len(want):
        b = sock.recv(4096)
        if not b:
            raise AssertionError("closed after %r" % got)
        got += b
    return got


class ServicesTest(ProximuxTestCase):

    def upstream(self, u):
        self.addCleanup(u.stop)
        return u

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="pmx-it-svc-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_two_services_four_listeners(self):
        """Service "echo" (proxy mode) listens on two TCP ports; service
        "lines" (fifo, line codec) on a TCP port and a unix socket. Each
        answers with its own targets, whichever listener is used."""
        echo = self.upstream(Echo())
        lines = self.upstream(LineServer())
        d = self.tmpdir()
        sock_path = os.path.join(d, "lines.sock")
        p1, p2, p3 = free_port(), free_port(), free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: echo\n"
                "    listen: [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]\n"
                "    exchange: { mode: proxy }\n"
                "    local: { max_connections: 8 }\n"
                "    pool: { connections: 8 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n"
                "  - name: lines\n"
                "    listen: [\"127.0.0.1:%d\", \"unix:%s\"]\n"
                "    listen_mode: \"0600\"\n"
                "    exchange: { mode: fifo, codec: line, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n"
                % (p1, p2, echo.port, p3, sock_path, lines.port))
        pmx = self.start_proximux(yaml=yaml, port=p1)
        pmx.wait_log(r"service lines: accepting clients on unix:" + sock_path)
        self.assertEqual(os.stat(sock_path).st_mode & 0o777, 0o600)
        for port in (p1, p2):
            with connect(port) as s:
                self.assertEqual(roundtrip(s, b"hello %d\n" % port, b"hello %d\n" % port),
                                 b"hello %d\n" % port)
        with LineClient(p3) as c:
            self.assertEqual(c.request(b"tcp\n"), b"re:tcp\n")
        with unix_connect(sock_path) as s:
            self.assertEqual(roundtrip(s, b"unix\n", b"re:unix\n"), b"re:unix\n")
        # Both services' clients at once.
        a, b = connect(p2), unix_connect(sock_path)
        self.addCleanup(a.close)
        self.addCleanup(b.close)
        self.assertEqual(roundtrip(b, b"u2\n", b"re:u2\n"), b"re:u2\n")
        self.assertEqual(roundtrip(a, b"e2\n", b"e2\n"), b"e2\n")
        a.close()
        b.close()
        self.assert_proximux_ok(pmx)
        pmx.stop()
        self.assertFalse(os.path.exists(sock_path), "unix socket left behind")

    def test_unix_socket_redis_behind_unix_listener(self):
        """A unix-socket listener in front of a unix-socket redis-server."""
        d = self.tmpdir()
        redis_sock = os.path.join(d, "redis.sock")
        server = RedisServer(extra_args=("--unixsocket", redis_sock, "--unixsocketperm", "700"))
        self.addCleanup(server.stop)
        listen = os.path.join(d, "pmx.sock")
        port = free_port()
        yaml = ("log_level: 2\n"
                "services:\n"
                "  - name: cache\n"
                "    listen: [\"127.0.0.1:%d\", \"unix:%s\"]\n"
                "    exchange: { mode: fifo, codec: resp, funnel_async: true }\n"
                "    pool: { connections: 1 }\n"
                "    targets: [ { unix: %s } ]\n" % (port, listen, redis_sock))
        pmx = self.start_proximux(yaml=yaml, port=port)
        pmx.wait_log(r"accepting clients on unix:")
        with unix_connect(listen) as s:
            self.assertEqual(roundtrip(s, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n", b"+OK\r\n"), b"+OK\r\n")
            self.assertEqual(roundtrip(s, b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$2\r\nvv\r\n"), b"$2\r\nvv\r\n")
        self.assertEqual(server.cli("GET", "k").strip(), "vv")
        self.assert_proximux_ok(pmx)

    def test_listen_address_in_use_names_the_service(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            taken = busy.getsockname()[1]
            yaml = ("services:\n"
                    "  - { name: a, listen: [\"127.0.0.1:%d\"], pool: { connections: 1 },\n"
                    "      targets: [ { host: 127.0.0.1, port: 1 } ] }\n"
                    "  - { name: b, listen: [\"127.0.0.1:%d\"], pool: { connections: 1 },\n"
                    "      targets: [ { host: 127.0.0.1, port: 1 } ] }\n" % (free_port(), taken))
            code, out, err = run_proximux([], env={}, yaml=yaml, timeout=5)
        self.assertEqual(code, 2, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(lines[0], r"^proximux: services\[2\]\.listen\[1\] \(service b\): cannot listen on "
                                   r"127\.0\.0\.1:%d: Address already in use$" % taken)
