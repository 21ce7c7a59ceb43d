"""Fault-injecting upstreams for test_hardening.py, run as threads on
loopback ports picked by the kernel (or a given port, to come back on the
same one), on top of peers.upstreams.Upstream so every accepted connection
is recorded.

FaultResp speaks enough RESP for the tests and misbehaves on command, so
one target can serve healthy clients and faulty ones at once:
  PING -> +PONG;  ECHO x -> x;  SLEEP ms x -> x after ms
  MUTE x    -> never answered, nor is anything after it on that connection
  HALF x    -> the first half of the bulk reply for x, then nothing more
  RST x     -> the first half of the bulk reply for x, then a reset
               (SO_LINGER 0 close)
  BIG n x   -> a bulk string of n bytes: x repeated (the last copy cut)
  STREAM n  -> n raw bytes (no RESP framing) of stream_pattern, written in
               64 KiB sendall()s; self.streamed counts the bytes handed to
               the kernel so far (a blocked upstream stops counting)
  malformed -> "-ERR Protocol error" and the connection is closed (as Redis)
With on_connect="close" every connection is closed right after accept;
with on_connect="mute" every connection is read and never answered.

Run standalone for manual checks:  python3 fault_peers.py resp|close|mute [port]
"""

import array
import socket
import struct
import sys
import threading
import time

try:
    from peers.upstreams import Upstream
except ImportError:                     # run from this directory
    from upstreams import Upstream


def bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def big_value(n, x):
    """What BIG n x answers with (without the bulk framing)."""
    if not x:
        x = b"."
    return (x * (n // len(x) + 1))[:n]


def reset(s):
    """Closes s with a reset (RST) instead of a FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class _Reset(Exception):
    pass


class FaultResp(Upstream):

    def __init__(self, port=0, on_connect=None):
        self.on_connect = on_connect
        self.streamed = 0
        self.requests = []
        self.lock = threading.Lock()
        super().__init__(port)

    def seen(self):
        with self.lock:
            return list(self.requests)

    @staticmethod
    def parse(buf):
        """One command from buf: (args, rest), (None, buf) if incomplete;
        raises ValueError if malformed."""
        if not buf:
            return None, buf
        i = buf.find(b"\r\n")
        if buf[:1] != b"*":
            if i < 0:
                if len(buf) > 65536:
                    raise ValueError("inline too long")
                return None, buf
            return buf[:i].split(), buf[i + 2:]
        if i < 0:
            return None, buf
        n, pos, args = int(buf[1:i]), i + 2, []      # int() raises ValueError
        if n < 0 or n > 1024:
            raise ValueError("bad count")
        for _ in range(n):
            j = buf.find(b"\r\n", pos)
            if j < 0:
                return None, buf
            if buf[pos:pos + 1] != b"$":
                raise ValueError("bad bulk header")
            ln = int(buf[pos + 1:j])
            if ln < 0:
                raise ValueError("bad bulk length")
            if len(buf) < j + 2 + ln + 2:
                return None, buf
            if buf[j + 2 + ln:j + 4 + ln] != b"\r\n":
                raise ValueError("bad bulk terminator")
            args.append(buf[j + 2:j + 2 + ln])
            pos = j + 2 + ln + 2
        return args, buf[pos:]

    def answer(self, s, args):
        """Writes the answer to args; returns False to stop answering."""
        cmd = args[0].upper() if args else b""
        if cmd == b"PING":
            s.sendall(b"+PONG\r\n")
        elif cmd == b"ECHO" and len(args) == 2:
            s.sendall(bulk(args[1]))
        elif cmd == b"SLEEP" and len(args) == 3:
            time.sleep(int(args[1]) / 1000.0)
            s.sendall(bulk(args[2]))
        elif cmd == b"BIG" and len(args) == 3:
            s.sendall(bulk(big_value(int(args[1]), args[2])))
        elif cmd == b"STREAM" and len(args) == 2:
            total, off = int(args[1]), 0
            while off < total:
                part = stream_pattern(off, min(1 << 16, total - off))
                s.sendall(part)
                off += len(part)
                self.streamed += len(part)
        elif cmd == b"MUTE":
            return False
        elif cmd in (b"HALF", b"RST") and len(args) == 2:
            out = bulk(args[1])
            s.sendall(out[:len(out) // 2])
            if cmd == b"RST":
                time.sleep(0.05)            # the half goes out on its own
                raise _Reset()
            return False
        else:
            s.sendall(b"-ERR unknown command\r\n")
        return True

    def handle(self, s, rec):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(60)
        if self.on_connect == "close":
            return
        answering = self.on_connect != "mute"
        buf = b""
        try:
            while True:
                while answering:
                    try:
                        args, buf = self.parse(buf)
                    except ValueError:
                        s.sendall(b"-ERR Protocol error\r\n")
                        return
                    if args is None:
                        break
                    with self.lock:
                        self.requests.append(args)
                    answering = self.answer(s, args)
                b = self.read_some(s, rec)
                if not b:
                    return
                buf += b
        except _Reset:
            reset(s)


def stream_pattern(offset, n):
    """Bytes [offset, offset + n) of the STREAM answer: 8-byte big-endian
    offsets, so any misplaced byte is detected."""
    first = offset // 8
    last = (offset + n + 7) // 8
    words = array.array("Q", range(first * 8, last * 8, 8))
    if sys.byteorder == "little":
        words.byteswap()
    blob = words.tobytes()
    start = offset - first * 8
    return blob[start:start + n]


def main():
    kinds = {"resp": lambda p: FaultResp(p), "close": lambda p: FaultResp(p, "close"),
             "mute": lambda p: FaultResp(p, "mute")}
    kind = sys.argv[1] if len(sys.argv) > 1 else "resp"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    u = kinds[kind](port)
    print("%s listening on 127.0.0.1:%d" % (kind, u.port), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        u.stop()


if __name__ == "__main__":
    main()
