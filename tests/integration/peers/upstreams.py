"""Scripted upstream servers for fault tests, run as threads on loopback
ports picked by the kernel. Each accepted connection is recorded (bytes
received, whether EOF was seen) so tests can assert what the upstream saw.

Run standalone for manual checks:  python3 upstreams.py echo|greeting|... [port]
"""

import socket
import sys
import threading
import time


class Record:
    """What one upstream connection saw."""

    def __init__(self, addr):
        self.addr = addr
        self.received = b""
        self.eof = False            # the peer (proximux) shut down its sending side
        self.error = None           # exception while reading, e.g. reset
        self.closed = threading.Event()   # our handler is done with the socket


class Upstream:
    """Base: listens on 127.0.0.1 (port 0 = any), handles every connection
    in its own thread with handle(sock, record). stop() closes everything."""

    def __init__(self, port=0):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(128)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.records = []
        self._socks = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def _accept_loop(self):
        while not self._stopping.is_set():
            try:
                s, addr = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            s.settimeout(10)
            rec = Record(addr)
            with self._lock:
                self.records.append(rec)
                self._socks.append(s)
            threading.Thread(target=self._run, args=(s, rec), daemon=True).start()

    def _run(self, s, rec):
        try:
            self.handle(s, rec)
        except OSError as e:
            rec.error = e
        finally:
            try:
                s.close()
            except OSError:
                pass
            rec.closed.set()

    def read_some(self, s, rec, n=65536):
        """One recv, recorded. Returns b"" at EOF."""
        b = s.recv(n)
        if b:
            rec.received += b
        else:
            rec.eof = True
        return b

    def read_until_eof(self, s, rec):
        while self.read_some(s, rec):
            pass

    def handle(self, s, rec):
        raise NotImplementedError

    def wait_connections(self, n, timeout=5.0):
        """Waits until at least n connections were accepted."""
        deadline = time.monotonic() + timeout
        while len(self.records) < n:
            if time.monotonic() > deadline:
                raise AssertionError("upstream got %d connections, expected %d"
                                     % (len(self.records), n))
            time.sleep(0.02)
        return self.records

    def stop(self):
        self._stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            for s in self._socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
        self._thread.join(2)


class Echo(Upstream):
    """Echoes everything; on EOF shuts down its sending side and closes."""

    def handle(self, s, rec):
        while True:
            b = self.read_some(s, rec)
            if not b:
                return
            s.sendall(b)


class Greeting(Echo):
    """Server speaks first: sends greeting on accept, then echoes."""

    def __init__(self, greeting=b"220 proximux-test ready\r\n", port=0):
        self.greeting = greeting
        super().__init__(port)

    def handle(self, s, rec):
        s.sendall(self.greeting)
        super().handle(s, rec)


class CloseAfter(Upstream):
    """Waits for one request (any bytes), then sends `data` and closes
    (a FIN after exactly len(data) bytes: nothing unread is left, so no RST)."""

    def __init__(self, data, port=0):
        self.data = data
        super().__init__(port)

    def handle(self, s, rec):
        if not self.read_some(s, rec):
            return
        s.sendall(self.data)


class HalfClose(Upstream):
    """Reads until the client side's EOF (recording it), waits `delay`, then
    sends b"late:" + what it received and closes."""

    def __init__(self, delay=0.3, port=0):
        self.delay = delay
        super().__init__(port)

    def handle(self, s, rec):
        self.read_until_eof(s, rec)
        time.sleep(self.delay)
        s.sendall(b"late:" + rec.received)


class ShutWriteFirst(Upstream):
    """Sends `greeting`, shuts down its sending side at once, then keeps
    reading (recording) until EOF: the reverse half-close."""

    def __init__(self, greeting=b"bye\n", port=0):
        self.greeting = greeting
        super().__init__(port)

    def handle(self, s, rec):
        s.sendall(self.greeting)
        s.shutdown(socket.SHUT_WR)
        self.read_until_eof(s, rec)


class Blackhole:
    """A target whose connects neither succeed nor fail: a listener with a
    full accept queue that never accepts, so the kernel drops new SYNs and a
    connect hangs until the connector's own timeout."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self._fillers = []
        for _ in range(3):                  # fill the queue (backlog 0 holds 1)
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(self.address)
            self._fillers.append(f)
        time.sleep(0.1)

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    def probe(self, timeout=0.5):
        """True if a fresh connect indeed hangs."""
        with socket.socket() as s:
            s.settimeout(timeout)
            try:
                s.connect(self.address)
            except socket.timeout:
                return True
            except OSError:
                return False
            return False

    def stop(self):
        for f in self._fillers:
            f.close()
        self.lsock.close()


def main():
    kinds = {"echo": Echo, "greeting": Greeting, "halfclose": HalfClose,
             "shutwrite": ShutWriteFirst,
             "closeafter": lambda port: CloseAfter(b"x" * 100000, port)}
    kind = sys.argv[1] if len(sys.argv) > 1 else "echo"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    u = kinds[kind](port=port)
    print("%s listening on 127.0.0.1:%d" % (kind, u.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        u.stop()


if __name__ == "__main__":
    main()
