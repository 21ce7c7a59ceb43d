#!/usr/bin/env python3
"""The latency a routing decision adds to a proxy-mode connection.

    python3 bench/route_latency.py [--proximux ./proximux] [--connections 3000]

Starts a redis-server and one Proximux with three proxy services in front of
it: `plain` (no routes), `prefix` (a prefix route) and `regex` (nine regex
routes that do not match, then the one that does, with a capture). Each
measured connection connects, sends PING, reads +PONG and closes; the
services take turns connection by connection, so that drift in the machine
affects them alike. Prints p50/p90/p99 of each and the difference to
`plain`: what waiting for the first bytes, matching and only then
connecting upstream costs (the plain service connects upstream as soon as
the client connects, in parallel with the client's first write).

python3 stdlib only; every server is started on free loopback ports in a
temporary directory and stopped at the end.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("exited early: %s" % proc.args)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("port %d not listening" % port)


def one(port):
    """Microseconds from connect to +PONG."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            b = s.recv(64)
            if not b:
                raise SystemExit("closed without a reply on port %d" % port)
            got += b
    if got != b"+PONG\r\n":
        raise SystemExit("unexpected reply %r on port %d" % (got, port))
    return (time.perf_counter() - t0) * 1e6


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proximux", default=os.environ.get("PROXIMUX_BIN", "./proximux"))
    ap.add_argument("--connections", type=int, default=3000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pmx-route-lat-")
    procs = []
    try:
        rport = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(redis)
        wait_port(rport, redis)
        ports = {"plain": free_port(), "prefix": free_port(), "regex": free_port()}
        misses = "".join("      - { match: '^\\*[0-9]+..\\$%dNOPE', target: r }\n" % (10 + i)
                         for i in range(9))
        yaml = ("services:\n"
                "  - name: plain\n"
                "    listen: [\"127.0.0.1:%(plain)d\"]\n"
                "    exchange: { mode: proxy }\n    pool: { connections: 64 }\n"
                "    targets: [ { name: r, host: 127.0.0.1, port: %(r)d } ]\n"
                "  - name: prefix\n"
                "    listen: [\"127.0.0.1:%(prefix)d\"]\n"
                "    exchange: { mode: proxy }\n    pool: { connections: 64 }\n"
                "    targets: [ { name: r, host: 127.0.0.1, port: %(r)d } ]\n"
                "    routes:\n"
                "      - { prefix: \"*\", target: r }\n"
                "  - name: regex\n"
                "    listen: [\"127.0.0.1:%(regex)d\"]\n"
                "    exchange: { mode: proxy }\n    pool: { connections: 64 }\n"
                "    targets: [ { name: r, host: 127.0.0.1, port: %(r)d } ]\n"
                "    routes:\n"
                "%(misses)s"
                "      - { match: '^\\*([0-9]+)', target: r }\n"
                % dict(ports, r=rport, misses=misses))
        conf = os.path.join(tmp, "route-latency.yaml")
        with open(conf, "w") as f:
            f.write(yaml)
        pmx = subprocess.Popen([args.proximux, "-c", conf], stdout=subprocess.DEVNULL,
                               stderr=open(os.path.join(tmp, "proximux.log"), "w"))
        procs.append(pmx)
        for p in ports.values():
            wait_port(p, pmx)
        for name, p in ports.items():           # warm-up
            for _ in range(50):
                one(p)
        lat = {name: [] for name in ports}
        for _ in range(args.connections):
            for name, p in ports.items():
                lat[name].append(one(p))
        base = statistics.median(lat["plain"])
        print("connect + PING + close through a proxy-mode service, %d connections each (us)"
              % args.connections)
        print("%-8s %8s %8s %8s %18s" % ("service", "p50", "p90", "p99", "p50 - plain p50"))
        for name in ports:
            v = lat[name]
            print("%-8s %8.0f %8.0f %8.0f %18.0f" % (name, pct(v, 0.5), pct(v, 0.9), pct(v, 0.99),
                                                  statistics.median(v) - base))
        return 0
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
