#!/usr/bin/env python3
"""Small helpers for bench/run.sh (python3 stdlib only).

Subcommands:
  freeports N               print N free loopback TCP ports, one per line
  waitport PORT SECS        exit 0 once 127.0.0.1:PORT accepts, 1 on timeout
  check-resp PORT           SET/GET/PING round trip through PORT (exit 0 = ok)
  check-memcache PORT       set/get round trip through PORT (exit 0 = ok)
  rbcsv FILE                redis-benchmark --csv output -> "TEST rps p50 p99"
  memaslap FILE             memaslap -S output -> "MIX rps p50 p99" (set+get)
  report RESULTS [SECTION]  print tables, ratios and the markdown summary

RESULTS is a TSV file: section target pipeline test rep rps p50 p99 cpu
(cpu = the proxy process's CPU microseconds per request; values "n/a" when
a run failed or, for cpu, for direct).
"""
import math
import os
import re
import socket
import statistics
import sys
import time


def freeports(n):
    socks, ports = [], []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print("\n".join(map(str, ports)))


def waitport(port, secs):
    deadline = time.time() + float(secs)
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=0.5).close()
            return 0
        except OSError:
            time.sleep(0.05)
    return 1


def _roundtrip(port, payload, expect, timeout=3.0):
    """Send payload, read until `expect` (bytes) is fully received."""
    try:
        s = socket.create_connection(("127.0.0.1", int(port)), timeout=timeout)
        s.sendall(payload)
        got = b""
        deadline = time.time() + timeout
        while len(got) < len(expect) and time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
    except OSError as e:
        sys.stderr.write("check: %s\n" % e)
        return 1
    if got != expect:
        sys.stderr.write("check: expected %r, got %r\n" % (expect, got[:200]))
        return 1
    return 0


def check_redis(port):
    val = "pmxbench%d" % os.getpid()
    cmd = ("*3\r\n$3\r\nSET\r\n$12\r\npmxbench:chk\r\n$%d\r\n%s\r\n"
           "*2\r\n$3\r\nGET\r\n$12\r\npmxbench:chk\r\n"
           "*1\r\n$4\r\nPING\r\n") % (len(val), val)
    exp = "+OK\r\n$%d\r\n%s\r\n+PONG\r\n" % (len(val), val)
    return _roundtrip(port, cmd.encode(), exp.encode())


def check_memcache(port):
    val = "pmxbench%d" % os.getpid()
    cmd = ("set pmxbench:chk 0 0 %d\r\n%s\r\nget pmxbench:chk\r\n"
           % (len(val), val))
    exp = ("STORED\r\nVALUE pmxbench:chk 0 %d\r\n%s\r\nEND\r\n"
           % (len(val), val))
    return _roundtrip(port, cmd.encode(), exp.encode())


def rbcsv(path):
    """redis-benchmark 7 --csv: "test","rps","avg","min","p50","p95","p99","max"."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line.startswith('"') or line.startswith('"test"'):
                continue
            cols = [c.strip('"') for c in line.split('","')]
            if len(cols) < 8:
                continue
            try:
                rps, p50, p99 = float(cols[1]), float(cols[4]), float(cols[6])
            except ValueError:
                continue
            out.append("%s %.2f %.3f %.3f" % (cols[0], rps, p50, p99))
    print("\n".join(out))
    return 0 if out else 1


def _log2_percentile(hist, q):
    """hist: {k: count}; memaslap puts a latency v (us) in bucket k, the
    smallest k with 2^k >= v, i.e. (2^(k-1), 2^k].  Log-linear interpolation
    inside the bucket (a coarse estimate: one bucket spans a factor of 2);
    result in ms."""
    total = sum(hist.values())
    if total == 0:
        return float("nan")
    target = q * total
    cum = 0
    for k in sorted(hist):
        c = hist[k]
        if c and cum + c >= target:
            lo = 2.0 ** (k - 1) if k > 0 else 0.5
            return lo * 2.0 ** ((target - cum) / c) / 1000.0
        cum += c
    return 2.0 ** max(hist) / 1000.0


def memaslap(path):
    """Parse memaslap (memcaslap) output run with -S: the final
    'Get/Set Statistics (N events)' blocks carry a log2 latency histogram;
    the 'Global' rows carry TPS."""
    text = open(path, errors="replace").read()
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)
    res = {}
    # Throughput: last "Global" row after each "<Kind> Statistics" header.
    for kind in ("Get", "Set", "Total"):
        m = None
        for m in re.finditer(r"^%s Statistics\s*\n.*\n(?:Period.*\n)?Global\s+(\S+)\s+(\d+)\s+(\d+)"
                             % kind, text, re.M):
            pass
        if m:
            res.setdefault(kind, {})["rps"] = float(m.group(3))
    for m in re.finditer(r"^(Get|Set|Total) Statistics \((\d+) events\)(.*?)(?=^\S|\Z)",
                         text, re.M | re.S):
        kind, body = m.group(1), m.group(3)
        hist = {}
        dist = body.split("Log2 Dist:", 1)
        if len(dist) == 2:
            for row in dist[1].strip().splitlines():
                row = row.strip()
                if ":" not in row:
                    continue
                base, counts = row.split(":", 1)
                try:
                    base = int(base)
                    for i, c in enumerate(counts.split()):
                        hist[base + i] = hist.get(base + i, 0) + int(c)
                except ValueError:
                    continue
        r = res.setdefault(kind, {})
        r["p50"] = _log2_percentile(hist, 0.50)
        r["p99"] = _log2_percentile(hist, 0.99)
    # One row for the whole mixed set/get workload (memaslap's "Total").
    out = []
    r = res.get("Total", {})
    if "rps" in r and "p50" in r and not math.isnan(r["p50"]):
        out.append("MIX %.2f %.3f %.3f" % (r["rps"], r["p50"], r["p99"]))
    print("\n".join(out))
    return 0 if out else 1


# ---------------------------------------------------------------- report

SECTION_TITLES = {
    "proxy": "Proxy mode (1 client = 1 upstream connection), redis",
    "mux": "Multiplexing (many clients over few upstream connections), redis",
    "memcache": "Memcached (memaslap, 50 % set / 50 % get, one MIX row)",
    "features": "Features on vs off (Proximux fifo async, redis): NAME+FEATURE vs NAME",
}
# What each section's ratios compare against (besides direct).
SECTION_REF = {"proxy": "haproxy", "mux": "twemproxy", "memcache": "twemproxy",
               "features": "proximux-fifo-async"}


def _num(s):
    try:
        v = float(s)
        return None if math.isnan(v) else v
    except ValueError:
        return None


def _median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def _fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "rps":
        return "{:,.0f}".format(v)
    if kind == "ratio":
        return "%.2f" % v
    if kind == "cpu":
        return "%.2f" % v
    return "%.3f" % v


def _table(headers, rows, md=False):
    if md:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
         for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join(c.ljust(w[i]) if i < 3 else c.rjust(w[i])
                              for i, c in enumerate(r))
    return "\n".join([fmt(headers), fmt(["-" * x for x in w])] + [fmt(r) for r in rows])


def load(path):
    """-> {section: {(target, pipeline, test): {rps, p50, p99, n}}}, order lists"""
    data, order = {}, {}
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) == 8:
                p.append("n/a")
            if len(p) != 9:
                continue
            sec, tgt, pl, test, _rep, rps, p50, p99, cpu = p
            key = (tgt, pl, test)
            d = data.setdefault(sec, {}).setdefault(
                key, {"rps": [], "p50": [], "p99": [], "cpu": []})
            for k, v in (("rps", rps), ("p50", p50), ("p99", p99), ("cpu", cpu)):
                d[k].append(_num(v))
            order.setdefault(sec, [])
            if key not in order[sec]:
                order[sec].append(key)
    med = {}
    for sec, entries in data.items():
        med[sec] = {}
        for k, v in entries.items():
            r = {m: _median(v[m]) for m in ("rps", "p50", "p99", "cpu")}
            good = [x for x in v["rps"] if x is not None]
            # run-to-run spread of rps: (max - min) / median, over the repeats
            r["spread"] = ((max(good) - min(good)) / r["rps"]
                           if len(good) > 1 and r["rps"] else None)
            r["runs"] = len(v["rps"])
            med[sec][k] = r
    return med, order


def report(path, only=None):
    med, order = load(path)
    sections = [s for s in ("proxy", "mux", "memcache", "features") if s in med and (not only or s == only)]
    summary = []
    for sec in sections:
        m, keys = med[sec], order[sec]
        targets = []
        for t, _, _ in keys:
            if t not in targets:
                targets.append(t)
        pls = sorted({p for _, p, _ in keys}, key=int)
        tests = []
        for _, _, x in keys:
            if x not in tests:
                tests.append(x)
        multi = any(r["runs"] > 1 for r in m.values())
        print("\n== %s ==" % SECTION_TITLES.get(sec, sec))
        rows = []
        for pl in pls:
            for test in tests:
                for t in targets:
                    r = m.get((t, pl, test))
                    if r is None:
                        continue
                    row = [t, pl, test, _fmt(r["rps"], "rps"),
                           _fmt(r["p50"], "ms"), _fmt(r["p99"], "ms"),
                           _fmt(r["cpu"], "cpu")]
                    if multi:
                        row.append("n/a" if r["spread"] is None
                                   else "%.0f%%" % (100 * r["spread"]))
                    rows.append(row)
        hdr = ["target", "pipeline", "test", "requests/s", "p50 ms", "p99 ms",
               "proxy CPU us/req"]
        if multi:
            hdr.append("rps spread")
        print(_table(hdr, rows))
        if multi:
            print("(median of the repeats; spread = (max - min) / median of requests/s)")
        # ratios: every proximux* target vs the reference proxy and vs direct
        ref = SECTION_REF.get(sec)
        pmx = [t for t in targets if t.startswith("proximux")]
        rrows = []
        for t in pmx:
            for pl in pls:
                for test in tests:
                    r = m.get((t, pl, test))
                    if r is None:
                        continue
                    row = [t, pl, test]
                    for base in (ref, "direct"):
                        b = m.get((base, pl, test))
                        rps = (r["rps"] / b["rps"]) if (b and r["rps"] and b["rps"]) else None
                        p99 = (r["p99"] / b["p99"]) if (b and r["p99"] and b["p99"]) else None
                        row += [_fmt(rps, "ratio"), _fmt(p99, "ratio")]
                    b = m.get((ref, pl, test))
                    cpu = (r["cpu"] / b["cpu"]) if (b and r["cpu"] and b["cpu"]) else None
                    row.append(_fmt(cpu, "ratio"))
                    rrows.append(row)
        if rrows:
            print("\nRatios (rps: higher is better; p99 and CPU/request: lower is better)")
            print(_table(["target", "pipeline", "test",
                          "rps/%s" % ref, "p99/%s" % ref, "rps/direct", "p99/direct",
                          "cpu/%s" % ref], rrows))
        summary.append((sec, m, targets, pls, tests, ref))

    # Compact markdown summary: one row per target x pipeline; where a
    # section has two tests (SET, GET) the cells read "SET / GET".
    print("\n== Summary (markdown) ==\n")
    meta = os.environ.get("BENCH_META")
    if meta:
        print(meta + "\n")
    for sec, m, targets, pls, tests, ref in summary:
        print("**%s**\n" % SECTION_TITLES.get(sec, sec))
        tl = " / ".join(tests)
        hdr = ["target", "P"] + ["%s req/s" % t for t in tests] + \
              ["p50 ms %s" % tl, "p99 ms %s" % tl, "proxy CPU us/req %s" % tl,
               "req/s vs direct", "req/s vs %s" % ref]
        rows = []
        for pl in pls:
            for t in targets:
                rs = [m.get((t, pl, x)) for x in tests]
                if all(r is None for r in rs):
                    continue
                rs = [r or {"rps": None, "p50": None, "p99": None, "cpu": None} for r in rs]

                def ratio(base):
                    out = []
                    for x, r in zip(tests, rs):
                        b = m.get((base, pl, x))
                        out.append(_fmt(r["rps"] / b["rps"], "ratio")
                                   if b and r["rps"] and b["rps"] else "n/a")
                    return " / ".join(out)
                rows.append([t, pl] + [_fmt(r["rps"], "rps") for r in rs] +
                            [" / ".join(_fmt(r["p50"], "ms") for r in rs),
                             " / ".join(_fmt(r["p99"], "ms") for r in rs),
                             " / ".join(_fmt(r["cpu"], "cpu") for r in rs),
                             ratio("direct"), ratio(ref)])
        print(_table(hdr, rows, md=True))
        print()
    return 0


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "freeports":
        freeports(args[0])
        return 0
    if cmd == "waitport":
        return waitport(args[0], args[1])
    if cmd in ("check-redis", "check-resp"):
        return check_redis(args[0])
    if cmd == "check-memcache":
        return check_memcache(args[0])
    if cmd == "rbcsv":
        return rbcsv(args[0])
    if cmd == "memaslap":
        return memaslap(args[0])
    if cmd == "report":
        return report(args[0], args[1] if len(args) > 1 else None)
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
