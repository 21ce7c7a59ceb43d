"""Real client libraries (Debian: redis-py, phpredis, redis-rb, pymemcache,
php-memcached; npm: ioredis, node-redis, memcached) through Proximux.

Each library's script (clients/, see clients/README.md) runs its common API
and checks every reply. It runs first directly against redis-server (with
requirepass) / memcached, where every feature must pass (this validates the
script), then through Proximux in fifo async, funnel async (2 connections)
and funnel sync (2 connections). The outcome of every (library, mode,
feature) is printed as a table; EXPECTED below says which features must
work through Proximux: one of those failing fails the test, one expected
not to work that works is printed as NOW WORKS (flip it here)."""

import json
import os
import shutil
import subprocess
import threading
import time
import unittest

import harness
from harness import ProximuxTestCase, RedisServer, Resp, free_port, run_proximux, tail
from muxlib import MemcachedServer

# Feature -> expected to work through Proximux (every mode below). The
# features a library's connect depends on (CONNECT_NEEDS) gate all of its
# features: a library whose connect sends HELLO works only once
# "connect_hello" does. Flip an entry when the feature lands.
EXPECTED = {
    # resp
    "connect_hello": True,    # HELLO 3 / CLIENT SETINFO at connect (ioredis 6, node-redis 6)
    "basic": True,            # PING, SET/GET, INCR, DEL
    "auth": True,             # AUTH: right password works, wrong one refused
    "db": True,               # connect with database 1 (SELECT)
    "pipeline": True,         # 100 SET + 100 GET pipelined
    "multi_watch": True,      # WATCH/MULTI/EXEC, aborted by another client's write
    "pubsub": True,           # SUBSCRIBE, another client PUBLISHes
    "blpop": True,            # BLPOP woken by another client's RPUSH
    "big": True,              # 1 MiB value
    "concurrent": True,       # 50 clients at once
    # memcache
    "mc_basic": True,         # set/get/delete
    "mc_noreply": True,       # noreply set then get, 20 rounds: every get sees its write
    "mc_multiget": True,      # multi-get of 10 keys
    "mc_concurrent": True,    # 50 clients at once
}

MODES = {
    "fifo_async": dict(mode="fifo", connections=1, funnel_async="true"),
    "funnel2_async": dict(mode="funnel", connections=2, funnel_async="true"),
    "funnel2_sync": dict(mode="funnel", connections=2, funnel_async="false"),
}

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "clients")
NODE_DIR = os.path.join(CLIENTS, "node")
PYTHON = "/usr/bin/python3"   # the Debian packages' interpreter, whatever python3 is first in PATH
PASSWORD = "pmx-client-libs-secret"
CLIENTS_AT_ONCE = 50
# Seconds any one reply may take inside a script (a refused or unanswered
# feature costs about this much), and the bound on one script's run.
REPLY_TIMEOUT = 2 * harness.TIME_FACTOR
SCRIPT_TIMEOUT = 60 * harness.TIME_FACTOR
REDIS_FEATURES = ["basic", "auth", "db", "pipeline", "multi_watch", "pubsub", "blpop", "big",
                  "concurrent"]
MC_FEATURES = ["basic", "noreply", "multiget", "concurrent"]

# name -> (command, script, features, what its connect needs (EXPECTED keys))
REDIS_LIBS = {
    "redis-py": ([PYTHON], "redis_py.py", REDIS_FEATURES, ()),
    "phpredis": (["php"], "redis_php.php", REDIS_FEATURES, ()),
    "redis-rb": (["ruby"], "redis_rb.rb", REDIS_FEATURES, ()),
    "ioredis": (["node"], "node/ioredis.js", REDIS_FEATURES, ("connect_hello",)),
    "node-redis": (["node"], "node/node_redis.js", REDIS_FEATURES, ("connect_hello",)),
}
MC_LIBS = {
    "pymemcache": ([PYTHON], "memcache_py.py", MC_FEATURES, ()),
    "php-memcached": (["php"], "memcache_php.php", MC_FEATURES, ()),
    # the npm memcached library has no noreply mode
    "memcached-npm": (["node"], "node/memcached.js", ["basic", "multiget", "concurrent"], ()),
}


class RedisAuthServer(RedisServer):
    """redis-server with requirepass PASSWORD."""

    def __init__(self):
        super().__init__(extra_args=("--requirepass", PASSWORD))

    def _wait_ready(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + self._logtail())
            try:
                with Resp(self.port, 1) as r:
                    if r.command("AUTH", PASSWORD) == "OK" and r.command("PING") == "PONG":
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server not ready: " + self._logtail())
            time.sleep(0.05)


def node_usable():
    """The npm packages need Node.js 20+ and `npm ci` in clients/node."""
    node = shutil.which("node")
    if not node:
        return "node not installed"
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "ioredis")):
        return "npm packages not installed (npm ci --prefix %s)" % NODE_DIR
    v = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    if int(v.lstrip("v").split(".")[0]) < 20:
        return "node %s: ioredis 6 and node-redis 6 need Node.js 20+" % v
    return None


def run_script(cmd, script, cfg, timeout):
    """Runs one client script; returns {feature: outcome} (and the library's
    version), or raises with what it printed."""
    try:
        p = subprocess.run(cmd + [os.path.join(CLIENTS, script), json.dumps(cfg)],
                           capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL, cwd=CLIENTS)
    except subprocess.TimeoutExpired as e:
        return None, {f: "timeout: script ran over %ds" % timeout for f in cfg["features"]}, str(e)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            out = json.loads(line)
            return out["version"], out["results"], p.stderr
    return None, {f: "script failed (%d): %s" % (p.returncode, tail(p.stderr, 3))
                  for f in cfg["features"]}, p.stderr


def outcome(text):
    text = " ".join(text.replace("\0", "").split())  # phpredis 5.3.7 ends some errors with a NUL
    if text == "ok":
        return "ok"
    if "proximux:" in text:
        return "refused: " + text
    return "error: " + text


def upstream_password_supported():
    """Whether targets[].password (SPEC §13) is a known setting yet."""
    yaml = ("local: {port: %d}\npool: {connections: 1}\n"
            "targets:\n  - {host: 127.0.0.1, port: 6379, password: x}\n" % free_port())
    code, _, _ = run_proximux(["-t"], yaml=yaml)
    return code == 0


def proximux_yaml(port, target_port, codec, mode, password=None):
    m = MODES[mode]
    target = "{host: 127.0.0.1, port: %d%s}" % (
        target_port, ", password: %s" % password if password else "")
    return ("log_level: 2\n"
            "local: {host: 127.0.0.1, port: %d}\n"
            "exchange: {mode: %s, codec: %s, funnel_async: %s}\n"
            "pool: {connections: %d, connect_timeout: 2000, backoff_min: 50, backoff_max: 400}\n"
            "targets:\n  - %s\n" % (port, m["mode"], codec, m["funnel_async"],
                                    m["connections"], target))


class ClientLibraries(ProximuxTestCase):
    maxDiff = None

    def run_all(self, libs, port, base_cfg, timeout):
        """Runs every library's script at once; returns {lib: (version, results)}."""
        out = {}

        def one(name):
            cmd, script, features, _ = libs[name]
            cfg = dict(base_cfg, features=list(features), prefix="%s:%s:" % (name, port))
            version, results, stderr = run_script(cmd, script, cfg, timeout)
            out[name] = (version, results, stderr)

        threads = [threading.Thread(target=one, args=(n,)) for n in libs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def check_family(self, family, libs, start_direct, start_through, expected_key):
        skip = node_usable()
        if skip:
            print("\n  node clients skipped: " + skip)
            libs = {n: v for n, v in libs.items() if v[0] != ["node"]}
        direct_port, direct_cfg = start_direct()
        direct = self.run_all(libs, direct_port, direct_cfg, SCRIPT_TIMEOUT)
        for name, (version, results, stderr) in sorted(direct.items()):
            bad = {f: r for f, r in results.items() if r != "ok"}
            self.assertEqual(bad, {}, "%s run directly (the script itself is wrong):\n%s"
                             % (name, tail(stderr, 10)))
        versions = {n: v[0] for n, v in direct.items()}

        table, failures, now_works = [], [], []
        for mode in MODES:
            pmx, cfg = start_through(mode)
            through = self.run_all(libs, pmx.port, cfg, SCRIPT_TIMEOUT)
            self.assertTrue(pmx.alive(), "proximux died in %s:\n%s" % (mode, tail(pmx.log())))
            for name, (_, results, _) in sorted(through.items()):
                needs = libs[name][3]
                for feature, text in results.items():
                    key = expected_key(feature)
                    want = EXPECTED[key] and all(EXPECTED[n] for n in needs)
                    got = outcome(text)
                    row = "%-14s %-8s %-14s %-12s %s" % (name, versions[name], mode, feature, got)
                    table.append(row)
                    if want and got != "ok":
                        failures.append(row)
                    elif not want and got == "ok":
                        now_works.append(row)
            self.assert_proximux_ok(pmx)
        print("\n  CLIENT LIBRARIES (%s): library version mode feature outcome" % family)
        for row in table:
            print("  " + row[:400])
        for row in now_works:
            print("  NOW WORKS (flip EXPECTED in test_client_libs.py): " + row[:200])
        self.assertEqual(failures, [], "features expected to work through Proximux failed")

    def test_redis_libraries(self):
        redis_auth = RedisAuthServer()
        self.addCleanup(redis_auth.stop)
        upstream_pw = upstream_password_supported()
        if upstream_pw:
            target = redis_auth
        else:
            # Proximux cannot authenticate its upstream connections yet:
            # through it, a server without requirepass.
            target = RedisServer()
            self.addCleanup(target.stop)
        base = dict(host="127.0.0.1", db=1, timeout=REPLY_TIMEOUT, clients=CLIENTS_AT_ONCE)

        def direct():
            return redis_auth.port, dict(base, port=redis_auth.port, password=PASSWORD,
                                         auth_password=PASSWORD)

        def through(mode):
            port = free_port()
            pmx = self.start_proximux(yaml=proximux_yaml(port, target.port, "resp", mode,
                                                         PASSWORD if upstream_pw else None),
                                      port=port)
            return pmx, dict(base, port=port, password="", auth_password=PASSWORD)

        self.check_family("resp", REDIS_LIBS, direct, through, lambda f: f)

    def test_memcache_libraries(self):
        mc = MemcachedServer()
        self.addCleanup(mc.stop)
        base = dict(host="127.0.0.1", db=0, timeout=REPLY_TIMEOUT, clients=CLIENTS_AT_ONCE,
                    password="", auth_password="")

        def direct():
            return mc.port, dict(base, port=mc.port)

        def through(mode):
            port = free_port()
            pmx = self.start_proximux(yaml=proximux_yaml(port, mc.port, "memcache", mode),
                                      port=port)
            return pmx, dict(base, port=port)

        self.check_family("memcache", MC_LIBS, direct, through, lambda f: "mc_" + f)


if __name__ == "__main__":
    unittest.main()
