"""redis-py (Debian python3-redis) through its common API; see README.md.
Run with /usr/bin/python3 (the Debian package's interpreter)."""

import json
import sys
import threading
import time

import redis

CFG = json.loads(sys.argv[1])
P = CFG["prefix"]
T = float(CFG["timeout"])


def client(db=0, password=None):
    pw = (CFG["password"] if password is None else password) or None
    return redis.Redis(host=CFG["host"], port=CFG["port"], db=db, password=pw,
                       socket_timeout=T, socket_connect_timeout=T)


def expect(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, expected %r" % (what, got, want))


def f_basic():
    r = client()
    expect("PING", r.ping(), True)
    expect("SET", r.set(P + "basic", b"v1"), True)
    expect("GET", r.get(P + "basic"), b"v1")
    expect("INCR", r.incr(P + "ctr"), 1)
    expect("DEL", r.delete(P + "basic", P + "ctr"), 2)
    expect("GET missing", r.get(P + "basic"), None)
    r.close()


def f_auth():
    r = client(password=CFG["auth_password"])
    expect("PING", r.ping(), True)
    r.close()
    bad = client(password="wrong-password")
    try:
        bad.ping()
    except redis.exceptions.AuthenticationError:
        pass
    except redis.exceptions.ResponseError as e:
        if "WRONGPASS" not in str(e) and "invalid" not in str(e):
            raise
    else:
        raise AssertionError("a wrong password was accepted")
    bad.close()


def f_db():
    db = int(CFG["db"])
    r = client(db=db)
    expect("SET", r.set(P + "db", b"in-db"), True)
    expect("GET", r.get(P + "db"), b"in-db")
    r0 = client(db=0)
    expect("GET in db 0", r0.get(P + "db"), None)
    r.delete(P + "db")
    r.close()
    r0.close()


def f_pipeline():
    r = client()
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set("%spipe:%d" % (P, i), "v%d" % i)
    for i in range(100):
        p.get("%spipe:%d" % (P, i))
    got = p.execute()
    expect("pipeline", got, [True] * 100 + [b"v%d" % i for i in range(100)])
    r.close()


def f_multi_watch():
    r, other = client(), client()
    key = P + "watched"
    r.set(key, "1")
    with r.pipeline(transaction=True) as p:
        p.watch(key)
        expect("GET under WATCH", p.get(key), b"1")
        p.multi()
        p.set(key, "2")
        p.incr(key)
        expect("EXEC", p.execute(), [True, 3])
    expect("after EXEC", r.get(key), b"3")
    with r.pipeline(transaction=True) as p:
        p.watch(key)
        other.set(key, "changed")
        p.multi()
        p.set(key, "lost")
        try:
            p.execute()
        except redis.exceptions.WatchError:
            pass
        else:
            raise AssertionError("EXEC ran although the WATCHed key changed")
    expect("after aborted EXEC", r.get(key), b"changed")
    r.close()
    other.close()


def f_pubsub():
    sub, pub = client(), client()
    ps = sub.pubsub(ignore_subscribe_messages=True)
    ps.subscribe(P + "chan")
    deadline = time.monotonic() + T
    while True:
        pub.publish(P + "chan", "hello")
        m = ps.get_message(timeout=0.2)
        if m is not None:
            expect("message", (m["type"], m["data"]), ("message", b"hello"))
            break
        if time.monotonic() > deadline:
            raise AssertionError("no message within %.1fs" % T)
    ps.close()
    sub.close()
    pub.close()


def f_blpop():
    r, other = client(), client()
    key = P + "list"
    t = threading.Timer(0.2, lambda: other.rpush(key, "wake"))
    t.start()
    got = r.blpop([key], timeout=int(T))
    t.join()
    expect("BLPOP", got, (key.encode(), b"wake"))
    r.close()
    other.close()


def f_big():
    r = client()
    value = bytes(range(256)) * 4096
    expect("SET 1 MiB", r.set(P + "big", value), True)
    expect("GET 1 MiB", r.get(P + "big"), value)
    r.delete(P + "big")
    r.close()


def f_concurrent():
    n = int(CFG["clients"])
    errors = []

    def one(i):
        try:
            r = client()
            for k in range(10):
                key = "%sconc:%d:%d" % (P, i, k)
                expect("SET", r.set(key, "%d-%d" % (i, k)), True)
                expect("GET", r.get(key), b"%d-%d" % (i, k))
            r.close()
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
    print(json.dumps({"library": "redis-py", "version": redis.__version__, "results": results}))


main()
