"""pymemcache (Debian python3-pymemcache) through its common API; see
README.md. Run with /usr/bin/python3 (the Debian package's interpreter)."""

import json
import sys
import threading

import pymemcache
from pymemcache.client.base import Client

CFG = json.loads(sys.argv[1])
P = CFG["prefix"]
T = float(CFG["timeout"])


def client(noreply=False):
    return Client((CFG["host"], CFG["port"]), connect_timeout=T, timeout=T,
                  default_noreply=noreply)


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, expected %r" % (what, got, want))


def f_basic():
    c = client()
    expect("set", c.set(P + "basic", b"v1"), True)
    expect("get", c.get(P + "basic"), b"v1")
    expect("delete", c.delete(P + "basic"), True)
    expect("get deleted", c.get(P + "basic"), None)
    c.close()


def f_noreply():
    # pymemcache's default: sets with noreply. Each get right after its set
    # must see the write (per-client order), for `clients` clients at once;
    # 64 KiB values make a set take longer upstream than the get after it.
    n = int(CFG["clients"])
    misses, errors = [], []

    def one(cid):
        try:
            c = client(noreply=True)
            for i in range(20):
                key = "%snr:%d:%d" % (P, cid, i)
                value = b"w%d:%d:" % (cid, i) + b"x" * (64 << 10)
                c.set(key, value)
                got = c.get(key)
                if got != value:
                    misses.append((cid, i, got if got is None else got[:20]))
            c.close()
        except Exception as e:  # reported below
            errors.append("client %d: %s" % (cid, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("%d of %d clients failed, first: %s" % (len(errors), n, errors[0]))
    if misses:
        raise AssertionError("%d of %d gets missed the noreply set before them, first: %r"
                             % (len(misses), 20 * n, misses[0]))


def f_multiget():
    c = client()
    want = {"%smg:%d" % (P, i): b"m%d" % i for i in range(10)}
    for k, v in want.items():
        expect("set", c.set(k, v), True)
    expect("get_many", c.get_many(list(want) + [P + "mg:absent"]), want)
    c.close()


def f_concurrent():
    n = int(CFG["clients"])
    errors = []

    def one(i):
        try:
            c = client()
            for k in range(10):
                key = "%sconc:%d:%d" % (P, i, k)
                expect("set", c.set(key, b"%d-%d" % (i, k)), True)
                expect("get", c.get(key), b"%d-%d" % (i, k))
            c.close()
        except Exception as e:  # reported below
            errors.append("client %d: %s" % (i, e))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError("%d of %d clients failed, first: %s" % (len(errors), n, errors[0]))


def main():
    results = {}
    for name in CFG["features"]:
        try:
            globals()["f_" + name]()
            results[name] = "ok"
        except Exception as e:
            results[name] = ("%s: %s" % (type(e).__name__, e))[:300]
    print(json.dumps({"library": "pymemcache", "version": pymemcache.__version__,
                      "results": results}))


main()
