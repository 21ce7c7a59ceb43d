#!/usr/bin/env python3
"""Hold many concurrent RESP client connections through a proxy, send a
trickle of verified SET/GET requests, and report the proxy's memory.

    load10k.py --port PORT --pid PROXY_PID [--clients 10000] [--procs 2]
               [--seconds 60] [--interval 5] [--label NAME]

Driven by bench/load10k.sh (which starts redis-server and the proxy); it can
also be pointed at any running RESP proxy.  python3 stdlib only, Linux only
(reads /proc/PID/status and /proc/PID/fd).

The clients are spread over --procs worker processes (each raises its own
open-files limit).  Phases:
  1. base: the proxy's VmRSS before any client connects;
  2. idle: every client connected, nothing sent yet (waits until the proxy
     holds the client fds, then 3 s);
  3. trickle: each client sends "SET key v; GET key" (pipelined, its own key,
     a fresh value each time) every --interval seconds, at a random phase,
     so clients/interval cycles (2 requests each) per second in all; RSS is
     sampled every second;
  4. idle after use: the clients stay connected, nothing in flight;
  5. closed: every client gone.
Every reply is checked byte for byte: SET must answer +OK, GET the value
just written.  A -ERR reply is an error, anything else is incorrect.
Exit status: 0 when every client connected, stayed connected and every
reply was correct; 1 otherwise.
"""
import argparse
import heapq
import multiprocessing as mp
import os
import random
import resource
import selectors
import socket
import sys
import time

from procstat import nfds, rss_kib


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return True
    want = need if hard == resource.RLIM_INFINITY else min(hard, need)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want >= need


def parse_reply(buf, pos):
    """One RESP2 reply of type + - : $ at buf[pos:].  Returns
    ((type, payload), next_pos), None when incomplete, or raises ValueError."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    t = buf[pos:pos + 1]
    line = buf[pos + 1:end]
    if t in (b"+", b"-", b":"):
        return (t, line), end + 2
    if t == b"$":
        n = int(line)
        if n < 0:
            return (t, None), end + 2
        if len(buf) < end + 2 + n + 2:
            return None
        if buf[end + 2 + n:end + 4 + n] != b"\r\n":
            raise ValueError("bad bulk terminator")
        return (t, buf[end + 2:end + 2 + n]), end + 4 + n
    raise ValueError("unexpected reply type %r" % t)


# ------------------------------------------------------------- worker

def worker(wid, port, n, conn):
    """Connect n clients, report, wait for "go", run the trickle, report."""
    random.seed(os.getpid())
    raise_nofile(n + 64)
    socks, connect_err = [], 0
    first_err = ""
    for i in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
            socks.append(s)
        except OSError as e:
            connect_err += 1
            first_err = first_err or str(e)
    conn.send(("connected", len(socks), connect_err, first_err))
    msg = conn.recv()
    if msg[0] != "go":
        return
    _, t0, seconds, interval = msg

    n = len(socks)
    sel = selectors.EpollSelector()
    for i, s in enumerate(socks):
        sel.register(s, selectors.EVENT_READ, i)
    inbuf = [b""] * n
    expect = [None] * n          # value expected from GET, None = idle
    sent_at = [0.0] * n
    seq = [0] * n
    alive = [True] * n
    st = dict(cycles=0, ok=0, err_replies=0, incorrect=0, closed=0,
              late=0, timeouts=0, send_err=0, lat_sum=0.0, lat_max=0.0)
    examples = []
    heap = [(t0 + random.uniform(0, interval), i) for i in range(n)]
    heapq.heapify(heap)
    t_end = t0 + seconds

    def kill(i, why):
        if alive[i]:
            alive[i] = False
            try:
                sel.unregister(socks[i])
            except (KeyError, ValueError):
                pass
            socks[i].close()
            if expect[i] is not None:
                expect[i] = None
            if why and len(examples) < 5:
                examples.append("client %d.%d: %s" % (wid, i, why))

    def finish(i):
        buf = inbuf[i]
        try:
            r1 = parse_reply(buf, 0)
            r2 = parse_reply(buf, r1[1]) if r1 else None
        except ValueError as e:
            st["incorrect"] += 2
            kill(i, "unparsable reply %r (%s)" % (buf[:80], e))
            return
        if r2 is None:
            return                              # incomplete
        a, b = r1[0]
        (c, d), end = r2
        val = expect[i]
        lat = time.time() - sent_at[i]
        st["lat_sum"] += lat
        st["lat_max"] = max(st["lat_max"], lat)
        for typ, payload, want in ((a, b, (b"+", b"OK")), (c, d, (b"$", val))):
            if (typ, payload) == want:
                st["ok"] += 1
            elif typ == b"-":
                st["err_replies"] += 1
                if len(examples) < 5:
                    examples.append("client %d.%d: error %r" % (wid, i, payload[:100]))
            else:
                st["incorrect"] += 1
                if len(examples) < 5:
                    examples.append("client %d.%d: expected %r got %r%r"
                                    % (wid, i, want, typ, payload))
        inbuf[i] = b""
        expect[i] = None
        if end != len(buf):
            st["incorrect"] += 1
            kill(i, "%d unexpected extra bytes %r" % (len(buf) - end, buf[end:end + 80]))

    while True:
        now = time.time()
        while heap and heap[0][0] <= now:
            due, i = heapq.heappop(heap)
            if due >= t_end or not alive[i]:
                continue
            heapq.heappush(heap, (due + interval, i))
            if expect[i] is not None:
                st["late"] += 1                 # previous cycle not answered
                continue
            seq[i] += 1
            key = b"ld:%d:%d" % (wid, i)
            val = b"v%d.%d.%d.%s" % (wid, i, seq[i], os.urandom(4).hex().encode())
            req = (b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                   b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
                   % (len(key), key, len(val), val, len(key), key))
            try:
                if socks[i].send(req) != len(req):
                    raise OSError("short send")
            except OSError as e:
                st["send_err"] += 1
                kill(i, "send: %s" % e)
                continue
            expect[i] = val
            sent_at[i] = now
            st["cycles"] += 1
        if now >= t_end:
            outstanding = sum(1 for i in range(n) if expect[i] is not None and alive[i])
            if outstanding == 0 or now >= t_end + 10:
                st["timeouts"] += outstanding
                break
            timeout = 0.1
        else:
            timeout = max(0.0, min(heap[0][0] - now, 0.1)) if heap else 0.1
        for key, _ in sel.select(timeout):
            i = key.data
            try:
                data = socks[i].recv(65536)
            except OSError as e:
                st["closed"] += 1
                kill(i, "recv: %s" % e)
                continue
            if not data:
                st["closed"] += 1
                kill(i, "closed by the proxy%s" % (" with a request in flight"
                                                     if expect[i] is not None else " while idle"))
                continue
            if expect[i] is None:
                st["incorrect"] += 1
                kill(i, "unsolicited bytes %r" % data[:80])
                continue
            inbuf[i] += data
            finish(i)

    st["alive"] = sum(alive)
    st["examples"] = examples
    conn.send(("done", st))
    # Stay connected until the parent has measured "idle after use".
    conn.recv()
    # A last check that the proxy still holds every connection: an idle
    # socket that the proxy closed reads EOF.
    gone = 0
    for key, _ in sel.select(0):
        try:
            if not socks[key.data].recv(1, socket.MSG_PEEK):
                gone += 1
        except OSError:
            gone += 1
    for i, s in enumerate(socks):
        if alive[i]:
            s.close()
    conn.send(("closed", gone))


# ------------------------------------------------------------- parent

def fmt_kib(k):
    return "n/a" if k is None else "%.1f MiB" % (k / 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True, help="proxy pid (RSS, fds)")
    ap.add_argument("--clients", type=int, default=10000)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--label", default="proxy")
    a = ap.parse_args()
    if a.clients < 1 or a.procs < 1 or a.seconds <= 0 or a.interval <= 0:
        ap.error("--clients, --procs, --seconds and --interval must be positive")

    def say(msg):
        print("[%s] %s" % (a.label, msg), flush=True)

    pid = a.pid
    if rss_kib(pid) is None:
        say("no process %d" % pid)
        return 1
    time.sleep(0.5)
    base_rss, base_fds = rss_kib(pid), nfds(pid)
    say("base: RSS %s, %s fds" % (fmt_kib(base_rss), base_fds))

    shares = [a.clients // a.procs + (1 if w < a.clients % a.procs else 0)
              for w in range(a.procs)]
    ctx = mp.get_context("fork")
    procs, pipes = [], []
    t_conn = time.time()
    for w, n in enumerate(shares):
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=worker, args=(w, a.port, n, child_end), daemon=True)
        p.start()
        procs.append(p)
        pipes.append(parent_end)
    connected = connect_err = 0
    for c in pipes:
        _, ok, err, why = c.recv()
        connected += ok
        connect_err += err
        if err:
            say("worker: %d connects failed, first: %s" % (err, why))
    t_conn = time.time() - t_conn
    # Wait until the proxy has accepted them all (its fd count).
    deadline = time.time() + 30
    while time.time() < deadline and (nfds(pid) or 0) < base_fds + connected:
        time.sleep(0.2)
    time.sleep(3)
    idle_rss, idle_fds = rss_kib(pid), nfds(pid)
    say("idle: %d clients connected in %.1f s (%d failed); proxy RSS %s, %s fds"
        % (connected, t_conn, connect_err, fmt_kib(idle_rss), idle_fds))

    t0 = time.time() + 0.5
    for c in pipes:
        c.send(("go", t0, a.seconds, a.interval))
    say("trickle: %d s, every client SET+GET every %g s (~%.0f req/s)"
        % (a.seconds, a.interval, 2 * connected / a.interval))
    samples = []
    next_print = t0 + 10
    while time.time() < t0 + a.seconds:
        time.sleep(1)
        r = rss_kib(pid)
        if r is None:
            say("proxy process %d is gone" % pid)
            break
        if time.time() > t0 + min(5, a.seconds / 4):   # skip the ramp
            samples.append(r)
        if time.time() >= next_print:
            say("  t=%3.0f s RSS %s, %s fds" % (time.time() - t0, fmt_kib(r), nfds(pid)))
            next_print += 10
    tot = {}
    examples = []
    for c in pipes:
        _, st = c.recv()
        examples += st.pop("examples")
        for k, v in st.items():
            tot[k] = max(tot.get(k, 0), v) if k == "lat_max" else tot.get(k, 0) + v
    time.sleep(2)
    used_rss, used_fds = rss_kib(pid), nfds(pid)
    for c in pipes:
        c.send(("close",))
    gone = sum(c.recv()[1] for c in pipes)
    for p in procs:
        p.join(10)
    time.sleep(2)
    end_rss, end_fds = rss_kib(pid), nfds(pid)

    alive_proxy = end_rss is not None
    replies = tot["ok"] + tot["err_replies"] + tot["incorrect"]
    trickle_avg = sum(samples) / len(samples) if samples else None
    trickle_max = max(samples) if samples else None

    def per_client(k):
        if k is None or base_rss is None or not connected:
            return "n/a"
        return "%.0f B" % ((k - base_rss) * 1024.0 / connected)

    say("RESULT")
    say("  clients connected        %d / %d (connect errors %d; still held at end %d)"
        % (connected, a.clients, connect_err, tot["alive"] - gone))
    say("  requests                 %d cycles = %d requests in %g s (%.0f req/s)"
        % (tot["cycles"], 2 * tot["cycles"], a.seconds, 2 * tot["cycles"] / a.seconds))
    say("  replies correct          %d" % tot["ok"])
    say("  replies incorrect        %d" % tot["incorrect"])
    say("  errors                   %d -ERR replies, %d closed by proxy, %d send errors, "
        "%d timeouts (>10 s), %d late cycles" % (tot["err_replies"], tot["closed"],
                                                  tot["send_err"], tot["timeouts"], tot["late"]))
    say("  latency                  mean %.2f ms, max %.1f ms (SET+GET round trip)"
        % (1000 * tot["lat_sum"] / max(1, tot["cycles"]), 1000 * tot["lat_max"]))
    say("  RSS base                 %s (%s fds)" % (fmt_kib(base_rss), base_fds))
    say("  RSS idle clients         %s (%s fds)  -> %s per client" % (
        fmt_kib(idle_rss), idle_fds, per_client(idle_rss)))
    say("  RSS during trickle       avg %s, max %s -> %s per client (avg), %s (max)" % (
        fmt_kib(trickle_avg), fmt_kib(trickle_max), per_client(trickle_avg), per_client(trickle_max)))
    say("  RSS idle after use       %s (%s fds)  -> %s per client" % (
        fmt_kib(used_rss), used_fds, per_client(used_rss)))
    say("  RSS after clients left   %s (%s fds)%s" % (
        fmt_kib(end_rss), end_fds, "" if alive_proxy else "  PROXY EXITED"))
    for e in examples[:10]:
        say("  e.g. " + e)
    # One machine-readable line for the wrapper's summary table.
    print("SUMMARY\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d" % (
        a.label, connected, base_rss, idle_rss,
        int(trickle_avg) if trickle_avg else "n/a", trickle_max, used_rss, end_rss,
        tot["ok"], tot["incorrect"],
        tot["err_replies"] + tot["closed"] + tot["send_err"] + tot["timeouts"] + connect_err,
        2 * tot["cycles"], tot["alive"] - gone), flush=True)
    good = (alive_proxy and connect_err == 0 and connected == a.clients
            and tot["incorrect"] == 0 and tot["err_replies"] == 0 and tot["closed"] == 0
            and tot["timeouts"] == 0 and tot["send_err"] == 0 and gone == 0)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
