#!/usr/bin/env python3
"""Soak one running proxy while its redis-server upstream is restarted.

    soak.py --port PROXY_PORT --pid PROXY_PID --redis-port PORT --dir DIR
            [--seconds 120] [--conns 20] [--restart-every 5] [--label NAME]

Driven by bench/soak.sh, which starts the proxy (pointed at --redis-port,
where nothing listens yet).  This script owns the redis-server: it starts
it on --redis-port, then every --restart-every seconds (+-30 %) stops it,
alternately with SIGKILL and SHUTDOWN NOSAVE, leaves the port closed for
0.2-1 s, and starts a new one on the same port.  The server keeps nothing
across a restart (--save '' --appendonly no).

Meanwhile --conns client connections (one process, non-blocking sockets) each
loop as fast as they can on "SET soak:<conn> <unique value>; GET soak:<conn>"
(pipelined) and check both replies:
  ok          SET answered +OK and GET the value just written
  error       a -ERR reply (Proximux: "-ERR proximux: ..." when the upstream
              failed), or the proxy closed the connection (proxy mode, or
              redis down): expected around restarts; the client reconnects
  lost        GET answered nil because a restart wiped the key between the
              SET and the GET (only counted when a restart happened meanwhile)
  mismatch    anything else: another value, a wrong reply type, bytes nobody
              asked for, nil with no restart in between.  Must be 0.
  hang        no complete reply within --hang-after seconds (default 30).
              Must be 0.
Proximux's VmRSS and open fds are sampled every second.  Exit status 0 when
there was no mismatch, no hang, the proxy survived and the final check (a
SET/GET through the proxy once the server is left up) passed.
"""
import argparse
import os
import random
import resource
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

from procstat import nfds, rss_kib


def parse_reply(buf, pos):
    """One RESP2 reply (+ - : $) at buf[pos:] -> ((type, payload), next) or
    None if incomplete; ValueError if malformed."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    t, line = buf[pos:pos + 1], buf[pos + 1:end]
    if t in (b"+", b"-", b":"):
        return (t, line), end + 2
    if t == b"$":
        n = int(line)
        if n < 0:
            return (t, None), end + 2
        if len(buf) < end + 4 + n:
            return None
        if buf[end + 2 + n:end + 4 + n] != b"\r\n":
            raise ValueError("bad bulk terminator")
        return (t, buf[end + 2:end + 2 + n]), end + 4 + n
    raise ValueError("unexpected reply type %r" % t)


class Redis:
    """The upstream redis-server, restarted on a schedule."""

    def __init__(self, port, d, every, say):
        self.port, self.dir, self.every, self.say = port, d, every, say
        self.proc = None
        self.log = open(os.path.join(d, "redis-%d.log" % port), "ab")
        self.kills = []             # times the server went away
        self.restarts = 0
        self.kill_kind = 0
        self.state = "down"
        self.next_at = 0.0

    def spawn(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--protected-mode", "no", "--dir", self.dir, "--maxclients", "10000"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.state = "starting"
        self.next_at = time.time() + 10     # must listen within 10 s

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def start_and_wait(self):
        self.spawn()
        while not self.listening():
            if self.proc.poll() is not None or time.time() > self.next_at:
                raise RuntimeError("redis-server did not start (see %s)" % self.log.name)
            time.sleep(0.05)
        self.state = "up"

    def stop(self, how):
        if self.proc is None:
            return
        if how == "shutdown":
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                s.sendall(b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
                s.close()
            except OSError:
                pass
        else:
            self.proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def tick(self, now, restarting=True):
        """Advance the restart schedule; never blocks for long."""
        if self.state == "up" and restarting and now >= self.next_at:
            how = ("kill", "shutdown")[self.kill_kind % 2]
            self.kill_kind += 1
            self.kills.append(now)
            self.stop(how)
            self.restarts += 1
            self.state = "down"
            self.next_at = time.time() + random.uniform(0.2, 1.0)
        elif self.state == "down" and now >= self.next_at:
            self.spawn()
        elif self.state == "starting":
            if self.proc.poll() is not None:
                self.say("redis-server exited at start (port busy?); retrying")
                self.state, self.next_at = "down", now + 0.5
            elif self.listening():
                self.state = "up"
                self.next_at = now + self.every * random.uniform(0.7, 1.3)
            elif now > self.next_at:
                raise RuntimeError("redis-server did not restart")

    def run_thread(self):
        """Restart on schedule from a thread of its own, so that a restart
        lands while the clients have requests in flight (a single loop would
        only kill the server between two rounds of sends)."""
        self.restarting = True
        self.error = None
        self.stopping = False

        def loop():
            try:
                while not self.stopping:
                    self.tick(time.time(), self.restarting)
                    time.sleep(0.01)
            except Exception as e:       # reported by the main loop
                self.error = e
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()

    def stop_thread(self):
        self.stopping = True
        self.thread.join(15)

    def restarted_between(self, t0, t1):
        return any(t0 - 0.05 <= k <= t1 for k in reversed(self.kills[-5:]))


class Client:
    def __init__(self, idx):
        self.idx = idx
        self.sock = None
        self.buf = b""
        self.val = None         # value of the SET in flight; None = idle
        self.sent_at = 0.0
        self.seq = 0
        self.retry_at = 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--conns", type=int, default=20)
    ap.add_argument("--restart-every", type=float, default=5)
    ap.add_argument("--hang-after", type=float, default=30)
    ap.add_argument("--label", default="proxy")
    a = ap.parse_args()

    def say(msg):
        print("[%s] %s" % (a.label, msg), flush=True)

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    redis = Redis(a.redis_port, a.dir, a.restart_every, say)

    def on_term(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    try:
        return run(a, redis, say)
    finally:
        if getattr(redis, "thread", None):
            redis.stop_thread()
        redis.stop("term")


def run(a, redis, say):
    pid = a.pid
    if rss_kib(pid) is None:
        say("no process %d" % pid)
        return 1
    redis.start_and_wait()
    time.sleep(0.3)
    base_rss, base_fds = rss_kib(pid), nfds(pid)
    say("base: RSS %d KiB, %s fds; %d connections, redis restarted every ~%g s, %g s"
        % (base_rss, base_fds, a.conns, a.restart_every, a.seconds))
    redis.next_at = time.time() + a.restart_every
    redis.run_thread()

    sel = selectors.EpollSelector()
    clients = [Client(i) for i in range(a.conns)]
    st = dict(ok=0, err_reply=0, closed=0, connect_fail=0, lost=0, mismatch=0,
              hang=0, reconnects=0, cycles=0)
    errs = {}
    examples = []

    def note(kind, msg, c=None):
        if kind == "mismatch" or kind == "hang":
            if len(examples) < 10:
                examples.append("%.1f s conn %d: %s" % (time.time() - t0, c.idx, msg))
        else:
            key = msg[:90]
            errs[key] = errs.get(key, 0) + 1

    def drop(c, retry=0.05):
        if c.sock is not None:
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None
        c.buf, c.val = b"", None
        c.retry_at = time.time() + retry

    def connect(c):
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=2)
        except OSError as e:
            st["connect_fail"] += 1
            note("error", "connect: %s" % e)
            c.retry_at = time.time() + 0.2
            return
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        c.sock = s
        sel.register(s, selectors.EVENT_READ, c)
        if c.seq:
            st["reconnects"] += 1

    def send(c):
        c.seq += 1
        key = b"soak:%d" % c.idx
        c.val = b"%d.%d.%s" % (c.idx, c.seq, os.urandom(6).hex().encode())
        req = (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
               % (len(key), key, len(c.val), c.val, len(key), key))
        c.sent_at = time.time()
        try:
            if c.sock.send(req) != len(req):
                raise OSError("short send")
        except OSError as e:
            st["closed"] += 1
            note("error", "send: %s" % e)
            drop(c)
            return
        st["cycles"] += 1

    def complete(c):
        """Classify the two replies once both are in c.buf."""
        try:
            r1 = parse_reply(c.buf, 0)
            r2 = parse_reply(c.buf, r1[1]) if r1 else None
        except ValueError as e:
            st["mismatch"] += 1
            note("mismatch", "unparsable %r (%s)" % (c.buf[:100], e), c)
            drop(c)
            return
        if r2 is None:
            return
        (t1, p1), (t2, p2), end = r1[0], r2[0], r2[1]
        now = time.time()
        set_ok = False
        if (t1, p1) == (b"+", b"OK"):
            st["ok"] += 1
            set_ok = True
        elif t1 == b"-":
            st["err_reply"] += 1
            note("error", "SET -%s" % p1.decode(errors="replace"))
        else:
            st["mismatch"] += 1
            note("mismatch", "SET answered %r%r" % (t1, p1), c)
        if (t2, p2) == (b"$", c.val):
            st["ok"] += 1
        elif t2 == b"-":
            st["err_reply"] += 1
            note("error", "GET -%s" % p2.decode(errors="replace"))
        elif t2 == b"$" and p2 is None and (not set_ok or redis.restarted_between(c.sent_at, now)):
            st["lost"] += 1
        else:
            st["mismatch"] += 1
            note("mismatch", "GET expected %r got %r%r (SET %s)"
                 % (c.val, t2, p2, "ok" if set_ok else "failed"), c)
        c.buf, c.val = c.buf[end:], None
        if c.buf:
            st["mismatch"] += 1
            note("mismatch", "extra bytes %r" % c.buf[:100], c)
            drop(c)

    t0 = time.time()
    t_end = t0 + a.seconds
    warm_at = t0 + min(10.0, a.seconds / 6)
    start_rss = start_fds = None
    rss_max = 0
    series = []
    next_sample = t0 + 1
    next_print = t0 + 30
    proxy_gone = False
    while True:
        now = time.time()
        if now >= t_end:
            break
        if redis.error:
            raise RuntimeError("restarting redis-server: %s" % redis.error)
        for c in clients:
            if c.sock is None and now >= c.retry_at:
                connect(c)
            if c.sock is not None and c.val is None:
                send(c)
            elif c.val is not None and now - c.sent_at > a.hang_after:
                st["hang"] += 1
                note("hang", "no reply in %g s (buffer %r)" % (a.hang_after, c.buf[:80]), c)
                drop(c)
        for key, _ in sel.select(0.05):
            c = key.data
            try:
                data = c.sock.recv(65536)
            except OSError as e:
                data, why = b"", str(e)
            else:
                why = "closed by the proxy"
            if not data:
                st["closed"] += 1
                note("error", why + (" (request in flight)" if c.val is not None else " (idle)"))
                drop(c)
                continue
            if c.val is None:
                st["mismatch"] += 1
                note("mismatch", "unsolicited bytes %r" % data[:100], c)
                drop(c)
                continue
            c.buf += data
            complete(c)
        if now >= next_sample:
            next_sample += 1
            r = rss_kib(pid)
            if r is None:
                say("proxy process %d is gone" % pid)
                proxy_gone = True
                break
            rss_max = max(rss_max, r)
            if start_rss is None and now >= warm_at:
                start_rss, start_fds = r, nfds(pid)
            series.append(r)
            if now >= next_print:
                next_print += 30
                say("  t=%4.0f s  ok %d  errors %d  mismatches %d  restarts %d  RSS %d KiB  fds %s"
                    % (now - t0, st["ok"], st["err_reply"] + st["closed"], st["mismatch"],
                       redis.restarts, r, nfds(pid)))
    end_rss, end_fds = rss_kib(pid), nfds(pid)
    for c in clients:
        drop(c)

    # Final check: leave redis up; one fresh client must get a correct
    # SET/GET within 15 s (the pool may be in backoff).
    final_ok = False
    final_why = "proxy gone"
    redis.restarting = False
    deadline = time.time() + 15
    while redis.state != "up" and time.time() < deadline and not redis.error:
        time.sleep(0.05)
    redis.stop_thread()
    deadline = time.time() + 15
    while not proxy_gone and time.time() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            s.settimeout(10)
            s.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nfinal\r\n$2\r\nok\r\n*2\r\n$3\r\nGET\r\n$5\r\nfinal\r\n")
            got = b""
            while len(got) < 13:
                d = s.recv(100)
                if not d:
                    break
                got += d
            s.close()
            if got == b"+OK\r\n$2\r\nok\r\n":
                final_ok = True
                break
            final_why = "got %r" % got[:100]
        except OSError as e:
            final_why = str(e)
        time.sleep(0.5)
    time.sleep(1)
    after_rss, after_fds = rss_kib(pid), nfds(pid)
    if after_rss is None:
        proxy_gone = True

    dur = max(1e-9, min(time.time(), t_end) - t0)
    errors = st["err_reply"] + st["closed"] + st["connect_fail"]
    # RSS trend: mean of the first and last quarter of the samples after warm-up.
    warm = series[int(min(10.0, a.seconds / 6)):]
    q = max(1, len(warm) // 4)
    first_q = sum(warm[:q]) / q if warm else 0
    last_q = sum(warm[-q:]) / q if warm else 0
    growth = last_q - first_q
    grew = growth > max(512, 0.10 * first_q)
    say("RESULT")
    say("  requests ok            %d (%.0f req/s), %d SET+GET cycles"
        % (st["ok"], st["ok"] / dur, st["cycles"]))
    say("  server restarts        %d" % redis.restarts)
    say("  errors (expected)      %d: %d -ERR replies, %d connections closed, %d connects failed"
        % (errors, st["err_reply"], st["closed"], st["connect_fail"]))
    say("  reconnections          %d" % st["reconnects"])
    say("  lost writes (restart)  %d" % st["lost"])
    say("  MISMATCHES             %d" % st["mismatch"])
    say("  HANGS (> %g s)         %d" % (a.hang_after, st["hang"]))
    say("  RSS KiB                base %s, start %s, end %s, max %s; trend %+.0f KiB%s"
        % (base_rss, start_rss, end_rss, rss_max, growth, "  GROWTH" if grew else ""))
    say("  fds                    base %s, start %s, end %s, after clients left %s"
        % (base_fds, start_fds, end_fds, after_fds))
    say("  final check            %s" % ("ok" if final_ok else "FAILED: " + final_why))
    if proxy_gone:
        say("  PROXY EXITED")
    for k, v in sorted(errs.items(), key=lambda kv: -kv[1])[:6]:
        say("  error x%-6d %s" % (v, k))
    for e in examples:
        say("  " + e)
    print("SUMMARY\t%s\t%d\t%.0f\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s" % (
        a.label, st["ok"], st["ok"] / dur, redis.restarts, errors, st["reconnects"],
        st["lost"], st["mismatch"], st["hang"], int(growth), start_rss, end_rss, rss_max,
        "%s/%s/%s" % (base_fds, end_fds, after_fds),
        "ok" if final_ok else "FAILED", "exited" if proxy_gone else "alive"), flush=True)
    bad = proxy_gone or st["mismatch"] or st["hang"] or not final_ok
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
