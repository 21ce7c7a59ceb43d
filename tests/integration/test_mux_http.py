"""Funnel mode (2 connections, codec http) in front of an HTTP/1.1
keep-alive upstream (Python's ThreadingHTTPServer)."""

import http.client
import socket
import threading

from harness import (ProximuxTestCase, closed_by_peer, connect, free_port, recv_until_eof,
                     run_threads)
from muxlib import HttpUpstream, config_env


class RawHttp:
    """A raw-socket HTTP client that reads responses with Content-Length
    bodies (or none, for HEAD) from its own buffer."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            raise AssertionError("EOF from proximux after %r" % self.buf[:300])
        self.buf += b

    def response(self, head_only=False):
        """(status line, headers with lower-case names, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        n = 0 if head_only else int(headers.get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return lines[0], headers, body

    def final_response(self):
        """The next response that is not an interim (1xx) one."""
        while True:
            st, h, body = self.response(head_only=self.buf.startswith(b"HTTP/1.1 1"))
            if not st.startswith("HTTP/1.1 1"):
                return st, h, body


class _HttpMux:
    CONFIG = None

    def setUp(self):
        self.up = HttpUpstream()
        self.addCleanup(self.up.stop)
        self.port = free_port()
        self.pmx = self.start_proximux(config_env(self.port, [self.up.address], "http", self.CONFIG))

    def tearDown(self):
        self.assert_proximux_ok(self.pmx)

    def conn(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.addCleanup(c.close)
        return c

    def request(self, c, method, path, body=None, headers=None):
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("X-Path"), r.read()

    def test_keepalive_concurrent(self):
        """20 clients x 20 requests, each on one kept-alive connection."""
        def client(cid):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
            try:
                sock = None
                for i in range(20):
                    path = "/c%d/r%d?x=%d" % (cid, i, cid * 1000 + i)
                    if i % 5 == 4:
                        body = ("body-%d-%d" % (cid, i)).encode() * (i + 1)
                        got = self.request(c, "POST", path, body)
                        want = (200, path, b"post " + path.encode() + b" " + body)
                    else:
                        got = self.request(c, "GET", path)
                        want = (200, path, b"path=" + path.encode())
                    if got != want:
                        raise AssertionError("client %d: got %r, want %r" % (cid, got, want))
                    if sock is None:
                        sock = c.sock
                    if c.sock is None or c.sock is not sock:
                        raise AssertionError("client %d: connection not kept alive" % cid)
            finally:
                c.close()
            return True

        self.assertEqual(run_threads(client, 20, timeout=60), [True] * 20)
        self.assertLessEqual(self.up.connections, 2, "upstream connections")

    def test_post_head_chunked(self):
        c = self.conn()
        body = bytes(range(256)) * 400
        self.assertEqual(self.request(c, "POST", "/upload", body),
                         (200, "/upload", b"post /upload " + body))
        c.request("HEAD", "/head/me")
        r = c.getresponse()
        self.assertEqual((r.status, r.getheader("X-Path"), r.getheader("Content-Length")),
                         (200, "/head/me", str(len("path=/head/me"))))
        self.assertEqual(r.read(), b"")
        self.assertEqual(self.request(c, "GET", "/after-head"), (200, "/after-head", b"path=/after-head"))
        c.request("GET", "/chunked/50/x")
        r = c.getresponse()
        self.assertEqual(r.getheader("Transfer-Encoding"), "chunked")
        self.assertEqual(r.read(), b"".join(b"/chunked/50/x#%d;" % i for i in range(50)))
        self.assertEqual(self.request(c, "GET", "/after-chunked"),
                         (200, "/after-chunked", b"path=/after-chunked"))

    def test_pipelined_raw(self):
        """Three requests in one write (GET, HEAD, POST): three responses
        in order."""
        with connect(self.port) as s:
            s.sendall(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"HEAD /p2 HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /p3 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            raw = RawHttp(s)
            st, h, body = raw.response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/p1", b"path=/p1"))
            st, h, body = raw.response(head_only=True)
            self.assertEqual((st, h["x-path"], h["content-length"], body), ("HTTP/1.1 200 OK", "/p2", "8", b""))
            st, h, body = raw.response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/p3", b"post /p3 hello"))
            self.assertEqual(raw.buf, b"")

    def test_bodiless_statuses_and_continue(self):
        """204 and 304 without Content-Length end at their headers; a POST
        with Expect: 100-continue gets "100 Continue" then its response."""
        c = self.conn()
        for code in (204, 304):
            c.request("GET", "/status/%d" % code)
            r = c.getresponse()
            self.assertEqual((r.status, r.getheader("X-Path"), r.read()), (code, "/status/%d" % code, b""))
            self.assertEqual(self.request(c, "GET", "/after%d" % code),
                             (200, "/after%d" % code, b"path=/after%d" % code))
        with connect(self.port) as s:
            raw = RawHttp(s)
            s.sendall(b"POST /cont HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 4\r\n\r\nbody" + b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body = raw.response(head_only=True)
            self.assertEqual((st, body), ("HTTP/1.1 100 Continue", b""))
            st, h, body = raw.response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/cont", b"post /cont body"))
            st, h, body = raw.response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/next", b"path=/next"))

    def test_expect_continue_answered_here(self):
        """A client that holds its body back until "100 Continue" gets it
        from Proximux as soon as the head is in (upstreams only ever see
        whole requests), but never ahead of a response it is still owed.
        With a body announced over max_message it gets 400 at once."""
        with connect(self.port) as s:
            raw = RawHttp(s)
            s.sendall(b"GET /sleep/300/first HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"POST /cont HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 4\r\n\r\n")
            st, h, body = raw.response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/sleep/300/first",
                                                       b"path=/sleep/300/first"))
            st, h, body = raw.response(head_only=True)
            self.assertEqual((st, body), ("HTTP/1.1 100 Continue", b""))
            s.sendall(b"body")
            # The upstream's own "100 Continue" may come with the answer.
            st, h, body = raw.final_response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/cont", b"post /cont body"))
            self.assertEqual(raw.buf, b"")
            # The same client again, now with nothing owed before it.
            s.sendall(b"POST /again HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 3\r\n\r\n")
            self.assertEqual(raw.response(head_only=True)[0], "HTTP/1.1 100 Continue")
            s.sendall(b"abcGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body = raw.final_response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/again", b"post /again abc"))
            st, h, body = raw.final_response()
            self.assertEqual((st, h["x-path"], body), ("HTTP/1.1 200 OK", "/next", b"path=/next"))
            self.assertEqual(raw.buf, b"")

        port = free_port()
        self.start_proximux(config_env(port, [self.up.address], "http", self.CONFIG,
                                       EXCHANGE_MAX_MESSAGE=4096))
        with connect(port) as s:
            s.sendall(b"POST /big HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      b"Content-Length: 100000\r\n\r\n")
            st, h, body = RawHttp(s).response()
            self.assertEqual((st, h["connection"]), ("HTTP/1.1 400 Bad Request", "close"))
            self.assertEqual(body, b"proximux: request larger than max_message\n")
            self.assertEqual(recv_until_eof(s), b"")

    def test_upstream_failure_502_and_timeout_504(self):
        """The upstream closes instead of answering: 502, and the client's
        next request is served on a new upstream connection. With
        EXCHANGE_RESPONSE_TIMEOUT=300 a slow answer gets 504."""
        c = self.conn()
        self.assertEqual(self.request(c, "GET", "/one"), (200, "/one", b"path=/one"))
        c.request("GET", "/die")
        r = c.getresponse()
        self.assertEqual(r.status, 502)
        self.assertTrue(r.read().startswith(b"proximux: "))
        self.assertEqual(self.request(c, "GET", "/two"), (200, "/two", b"path=/two"))
        port = free_port()
        self.start_proximux(config_env(port, [self.up.address], "http", self.CONFIG,
                                       EXCHANGE_RESPONSE_TIMEOUT=300))
        c2 = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.addCleanup(c2.close)
        c2.request("GET", "/sleep/1500/x")
        r = c2.getresponse()
        self.assertEqual(r.status, 504)
        self.assertTrue(r.read().startswith(b"proximux: "))
        c2.request("GET", "/three")
        r = c2.getresponse()
        self.assertEqual((r.status, r.read()), (200, b"path=/three"))

    def test_body_until_close(self):
        """A response delimited by the upstream closing: the client gets
        all of it, then EOF (it cannot know the end otherwise)."""
        with connect(self.port) as s:
            s.sendall(b"GET /until-close/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(2)
            try:
                data = recv_until_eof(s)
            except socket.timeout:
                self.fail("client not closed after a response delimited by close")
            head, body = data.split(b"\r\n\r\n", 1)
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
            self.assertEqual(body, b"body of /until-close/1;" * 1000)
        c = self.conn()
        self.assertEqual(self.request(c, "GET", "/after"), (200, "/after", b"path=/after"))

    def test_connection_close(self):
        """A request with Connection: close: its response, then the client
        is closed; the upstream connection (closed by the server after
        answering) is replaced and other clients go on."""
        c = self.conn()
        self.assertEqual(self.request(c, "GET", "/first"), (200, "/first", b"path=/first"))
        for i in range(3):
            with connect(self.port) as s:
                s.sendall(b"GET /bye%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
                st, h, body = RawHttp(s).response()
                self.assertEqual((st, body), ("HTTP/1.1 200 OK", b"path=/bye%d" % i))
                self.assertTrue(closed_by_peer(s, 3), "client not closed after Connection: close")
            self.assertEqual(self.request(c, "GET", "/next%d" % i), (200, "/next%d" % i, b"path=/next%d" % i))

    def test_close_requests_concurrent(self):
        """10 clients each making 8 one-shot requests (HTTP/1.0, or 1.1 with
        Connection: close, as ab and many scripts do) at the same time as
        keep-alive clients: every request gets its own 200, none a 502
        because another client's request closed a shared connection."""
        def one_shot(cid):
            for i in range(8):
                path = "/o%d/%d" % (cid, i)
                with connect(self.port) as s:
                    if i % 2:
                        s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
                    else:
                        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
                    st, h, body = RawHttp(s).response()
                    if (st.split(" ", 1)[1], body) != ("200 OK", b"path=" + path.encode()):
                        raise AssertionError("client %d: %r %r for %s" % (cid, st, body[:80], path))
            return True

        def keep_alive(cid):
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            try:
                for i in range(15):
                    path = "/k%d/%d" % (cid, i)
                    got = self.request(c, "GET", path)
                    if got != (200, path, b"path=" + path.encode()):
                        raise AssertionError("keep-alive client %d: %r" % (cid, got))
            finally:
                c.close()
            return True

        self.assertEqual(run_threads(lambda i: one_shot(i) if i < 10 else keep_alive(i), 15, timeout=60),
                         [True] * 15)

    def test_malformed_400(self):
        c = self.conn()
        self.assertEqual(self.request(c, "GET", "/ok"), (200, "/ok", b"path=/ok"))
        for bad in (b"NOT HTTP AT ALL\r\n\r\n",
                    b"GET /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                    b"GET /x HTTP/1.1\r\nno colon here\r\n\r\n"):
            with connect(self.port) as s:
                s.sendall(bad)
                st, h, body = RawHttp(s).response()
                self.assertEqual(st, "HTTP/1.1 400 Bad Request", bad)
                self.assertTrue(body.startswith(b"proximux: "), body)
                self.assertTrue(closed_by_peer(s, 3), "client not closed after %r" % bad)
        self.assertEqual(self.request(c, "GET", "/still"), (200, "/still", b"path=/still"))


class HttpFunnel2Sync(_HttpMux, ProximuxTestCase):
    CONFIG = "funnel2_sync"


class HttpFunnel2Async(_HttpMux, ProximuxTestCase):
    CONFIG = "funnel2_async"


class _WatchingUpstream:
    """A raw HTTP/1.1 upstream on one port that answers each request after
    a pause, and records every time a second request reached a connection
    before the first was answered (pipelining)."""

    def __init__(self, pause=0.15):
        self.pause = pause
        self.pipelined = []
        self.served = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.threads = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def _accept(self):
        while True:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            t.start()

    def _serve(self, s):
        buf = b""
        with s:
            while True:
                while b"\r\n\r\n" not in buf:
                    b = s.recv(65536)
                    if not b:
                        return
                    buf += b
                head, buf = buf.split(b"\r\n\r\n", 1)
                path = head.split(b" ")[1]
                # Anything more arriving before the answer is pipelining.
                s.settimeout(self.pause)
                try:
                    more = s.recv(65536)
                    if not more:
                        return
                    buf += more
                    self.pipelined.append(path)
                except socket.timeout:
                    pass
                s.settimeout(None)
                self.served.append(path)
                body = b"path=" + path
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    def stop(self):
        self.lsock.close()


class HttpOneInFlight(ProximuxTestCase):
    def test_funnel_async_keeps_one_request_in_flight(self):
        """http with funnel_async: requests of different clients are never
        pipelined on one upstream connection (an upstream that closes after
        an error would fail every request behind it)."""
        up = _WatchingUpstream()
        self.addCleanup(up.stop)
        port = free_port()
        pmx = self.start_proximux(config_env(port, [up.address], "http", "fifo_async"))

        def client(cid):
            with connect(port) as s:
                raw = RawHttp(s)
                for i in range(3):
                    path = "/c%d/r%d" % (cid, i)
                    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                    st, h, body = raw.response()
                    if (st, body) != ("HTTP/1.1 200 OK", b"path=" + path.encode()):
                        raise AssertionError("client %d: %r %r" % (cid, st, body))
            return True

        self.assertEqual(run_threads(client, 4, timeout=30), [True] * 4)
        self.assertEqual(len(up.served), 12)
        self.assertEqual(up.pipelined, [], "requests pipelined on one upstream connection")
        self.assert_proximux_ok(pmx)
