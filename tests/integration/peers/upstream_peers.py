"""Scripted upstreams for test_upstreams.py (balancing, health, limits), on
top of peers.mux_peers, run as threads on loopback ports picked by the
kernel:
  tagged(tag)   a line server that answers every line with tag + line, so a
                client sees which target served it (raw proxy mode too)
  wrong()       a line server that accepts and answers every line with
                "-ERR wrong\\r\\n": a target whose health probe must fail
  GatedResp     RespServer that holds every answer until the test opens
                its gate: requests stay in flight as long as the test wants

Run standalone for manual checks:  python3 upstream_peers.py tagged|wrong|gated [port]
"""

import sys
import threading
import time

try:
    from peers.mux_peers import LineServer, RespServer
except ImportError:                     # run from this directory
    from mux_peers import LineServer, RespServer


def tagged(tag, port=0):
    """A LineServer answering tag + line (tag is bytes, e.g. b"t1:")."""
    return LineServer(port=port, answer=lambda line: tag + line)


def wrong(port=0):
    """A LineServer answering "-ERR wrong\\r\\n" to every line."""
    return LineServer(port=port, answer=lambda line: b"-ERR wrong\r\n")


class GatedResp(RespServer):
    """RespServer (PING, ECHO, SET, GET, ...) whose answers wait for the
    gate: close() holds every answer not yet written (the connection's
    thread stops reading behind it), open() lets them all go. Open at
    start. A held answer gives up after `hold_max` seconds, so a test
    that forgets to open cannot hang the suite."""

    def __init__(self, port=0, hold_max=30.0, **kw):
        self.gate = threading.Event()
        self.gate.set()
        self.hold_max = hold_max
        super().__init__(port, **kw)

    def close(self):
        self.gate.clear()

    def open(self):
        self.gate.set()

    def reply(self, args):
        self.gate.wait(self.hold_max)
        return super().reply(args)

    def stop(self):
        self.gate.set()
        super().stop()


def main():
    kinds = {"tagged": lambda port: tagged(b"t:", port), "wrong": wrong,
             "gated": lambda port: GatedResp(port=port)}
    kind = sys.argv[1] if len(sys.argv) > 1 else "tagged"
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
