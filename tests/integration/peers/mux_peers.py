"""Scripted upstreams for the FIFO/funnel tests: a line-protocol server and a
small RESP server, both answering in request order on each connection, with
knobs for slow answers, answers split into segments, answers that never come
and bytes nobody asked for. They run as threads (one per connection) on
loopback ports picked by the kernel, on top of peers.upstreams.Upstream, so
every accepted connection is recorded.

Run standalone for manual checks:  python3 mux_peers.py line|resp [port]
"""

import random
import socket
import sys
import threading
import time

try:
    from peers.upstreams import Upstream
except ImportError:                     # run from this directory
    from upstreams import Upstream


class _Scripted(Upstream):
    """Common part: every request seen is logged in self.requests (in the
    order seen, across connections); answers are written by _write, which
    can split each one into `split` segments with a random pause from `gap`
    (seconds) between them. With coalesce, the last segment of an answer is
    held back and written together with the first segment of the next one
    when the next request is already buffered, so segment boundaries also
    fall across answers."""

    def __init__(self, port=0, split=1, gap=(0.001, 0.003), coalesce=True, seed=None):
        self.split = split
        self.gap = gap
        self.coalesce = coalesce
        self.rng = random.Random(seed)
        self.requests = []
        self.req_lock = threading.Lock()
        super().__init__(port)

    @staticmethod
    def nodelay(s):
        """Segments go out as written (as real servers do), not held back
        by Nagle's algorithm until proximux acknowledges the previous one."""
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_request(self, req):
        with self.req_lock:
            self.requests.append(req)

    def seen(self):
        with self.req_lock:
            return list(self.requests)

    def _segments(self, data):
        n = min(self.split, len(data))
        if n <= 1:
            return [data], []
        with self.req_lock:
            cuts = sorted(self.rng.sample(range(1, len(data)), n - 1))
            pauses = [self.rng.uniform(*self.gap) for _ in range(n - 1)]
        parts = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        return parts, pauses

    def _write(self, s, data, state, more_buffered):
        """Writes one answer (state["held"]: a segment held back)."""
        if self.split <= 1:
            s.sendall(state.pop("held", b"") + data)
            return
        parts, pauses = self._segments(data)
        parts[0] = state.pop("held", b"") + parts[0]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last and self.coalesce and more_buffered:
                state["held"] = part
                return
            s.sendall(part)
            if not last:
                time.sleep(pauses[i])

    def _flush_held(self, s, state):
        held = state.pop("held", b"")
        if held:
            s.sendall(held)


class LineServer(_Scripted):
    """Line protocol: every request line (ending in \\n) is answered, in
    order, by answer(line), by default b"re:" + line. Hooks (all optional,
    called with the request line including its \\n):
      delay(line)  -> seconds to wait before answering
      answer(line) -> bytes to write, None for no answer at all, or
                      LineServer.CLOSE to close the connection at once
      after(line, sock) -> called once the answer is written (e.g. to send
                      bytes nobody asked for)."""

    CLOSE = object()

    def __init__(self, port=0, delay=None, answer=None, after=None, **kw):
        self.delay = delay
        self.answer = answer or (lambda line: b"re:" + line)
        self.after = after
        super().__init__(port, **kw)

    def handle(self, s, rec):
        self.nodelay(s)
        buf, state = b"", {}
        while True:
            while b"\n" in buf:
                i = buf.index(b"\n") + 1
                line, buf = buf[:i], buf[i:]
                self.log_request(line)
                if self.delay:
                    d = self.delay(line)
                    if d:
                        self._flush_held(s, state)
                        time.sleep(d)
                out = self.answer(line)
                if out is None:
                    continue
                if out is self.CLOSE:
                    self._flush_held(s, state)
                    return
                self._write(s, out, state, b"\n" in buf)
                if self.after:
                    self._flush_held(s, state)
                    self.after(line, s)
            self._flush_held(s, state)
            b = self.read_some(s, rec)
            if not b:
                return
            buf += b


def _resp_bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


class RespServer(_Scripted):
    """A few Redis-like commands (RESP arrays or inline), answered in order:
      PING -> +PONG;  ECHO x -> x;  SET k v -> +OK;  GET k -> value or nil
      SLEEP ms x  -> waits ms then answers x
      REPEAT n x  -> x repeated n times
      NOANSWER    -> never answered, and neither is anything after it on
                     that connection (a stuck server: it goes on reading)
      anything else -> -ERR unknown command
    Commands are logged (as lists of bytes) in self.requests. The store is
    per server instance, so it survives reconnections."""

    def __init__(self, port=0, **kw):
        self.store = {}
        super().__init__(port, **kw)

    @staticmethod
    def parse(buf):
        """One command from buf: (args, rest), or (None, buf) if incomplete."""
        if not buf:
            return None, buf
        if buf[:1] != b"*":
            i = buf.find(b"\r\n")
            if i < 0:
                return None, buf
            return buf[:i].split(), buf[i + 2:]
        i = buf.find(b"\r\n")
        if i < 0:
            return None, buf
        n, pos, args = int(buf[1:i]), i + 2, []
        for _ in range(n):
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None, buf
            if buf[pos:pos + 1] != b"$":
                raise ValueError("bad bulk header %r" % buf[pos:j])
            ln = int(buf[pos + 1:j])
            if len(buf) < j + 2 + ln + 2:
                return None, buf
            args.append(buf[j + 2:j + 2 + ln])
            pos = j + 2 + ln + 2
        return args, buf[pos:]

    def reply(self, args):
        cmd = args[0].upper() if args else b""
        if cmd == b"PING":
            return b"+PONG\r\n"
        if cmd == b"ECHO" and len(args) == 2:
            return _resp_bulk(args[1])
        if cmd == b"SET" and len(args) == 3:
            self.store[args[1]] = args[2]
            return b"+OK\r\n"
        if cmd == b"GET" and len(args) == 2:
            v = self.store.get(args[1])
            return b"$-1\r\n" if v is None else _resp_bulk(v)
        if cmd == b"SLEEP" and len(args) == 3:
            time.sleep(int(args[1]) / 1000.0)
            return _resp_bulk(args[2])
        if cmd == b"REPEAT" and len(args) == 3:
            return _resp_bulk(args[2] * int(args[1]))
        if cmd == b"NOANSWER":
            return None
        return b"-ERR unknown command\r\n"

    def handle(self, s, rec):
        self.nodelay(s)
        buf, state, stuck = b"", {}, False
        while True:
            while True:
                args, buf = self.parse(buf)
                if args is None:
                    break
                self.log_request(args)
                stuck = stuck or (args and args[0].upper() == b"NOANSWER")
                if stuck:
                    continue
                if args and args[0].upper() == b"SLEEP":
                    self._flush_held(s, state)
                out = self.reply(args)
                if out is not None:
                    self._write(s, out, state, self.parse(buf)[0] is not None)
            self._flush_held(s, state)
            b = self.read_some(s, rec)
            if not b:
                return
            buf += b


class SegmentingRelay(Upstream):
    """A TCP relay in front of a real server (target_port on loopback) that
    passes requests through unchanged and writes the server's responses
    back cut at random points into segments of 1..max_seg bytes, pausing
    ~1 ms before a segment now and then (probability pause): responses
    of real protocols split in every possible place."""

    def __init__(self, target_port, max_seg=16, pause=0.05, seed=None, port=0):
        self.target_port = target_port
        self.max_seg = max_seg
        self.pause = pause
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        super().__init__(port)

    def _down(self, t, s):
        try:
            while True:
                b = t.recv(65536)
                if not b:
                    break
                i = 0
                while i < len(b):
                    with self.rng_lock:
                        n = self.rng.randint(1, self.max_seg)
                        nap = self.rng.random() < self.pause
                    if nap:
                        time.sleep(0.001)
                    s.sendall(b[i:i + n])
                    i += n
        except OSError:
            pass
        finally:
            try:
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def handle(self, s, rec):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        t = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        t.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        down = threading.Thread(target=self._down, args=(t, s), daemon=True)
        down.start()
        try:
            while True:
                b = self.read_some(s, rec)
                if not b:
                    t.shutdown(socket.SHUT_WR)
                    break
                t.sendall(b)
            down.join(10)
        finally:
            t.close()


def main():
    kinds = {"line": LineServer, "resp": RespServer}
    kind = sys.argv[1] if len(sys.argv) > 1 else "line"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    u = kinds[kind](port=port, split=3)
    print("%s listening on 127.0.0.1:%d" % (kind, u.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        u.stop()


if __name__ == "__main__":
    main()
