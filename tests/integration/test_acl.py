"""Access control (SPEC section 11): allow/deny lists at the top level and per
service, with clients bound to different 127.0.0.x source addresses. A
refused client is closed before any byte reaches a target (a recording
upstream sees no connection; warm spares stay where they are), logged at
level 2 and counted as "denied" in the admin API and /metrics. Also:
config/examples/ip-blocklist.yaml run as shipped (ports aside), fifo with
redis-server, IPv4-mapped clients on an IPv6 listener, log_mask_ip, a SIGHUP
that changes the lists while a connected client keeps working, and the
address of a PROXY header (accept_proxy) being the one matched."""

import os
import re
import signal
import socket
import time

from harness import (TIME_FACTOR, ProximuxTestCase, RedisServer, ScriptedUpstream, free_port, recv_until_eof, run_proximux)
from test_admin import get_json, http, metrics
from test_proxy_protocol import Recorder, exchange

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "config", "examples", "ip-blocklist.yaml")


class Echo(ScriptedUpstream):
    """A scripted upstream that echoes every connection's bytes and counts
    the connections it accepted."""

    @staticmethod
    def _one(c):
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        finally:
            c.close()



def client(port, ip, host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    if ip is not None:
        s.bind((ip, 0))
    s.settimeout(10 * TIME_FACTOR)
    s.connect((host, port))
    return s


def refused(port, ip, payload=b"hello\n", host="127.0.0.1"):
    """Whether a client from ip is closed without a byte of answer."""
    s = client(port, ip, host)
    try:
        try:
            s.sendall(payload)
        except OSError:
            return True
        try:
            return recv_until_eof(s) == b""
        except ConnectionResetError:
            return True
    finally:
        s.close()


def echoed(s, payload=b"ping\n"):
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        b = s.recv(65536)
        if not b:
            break
        got += b
    return got == payload


class AclTest(ProximuxTestCase):

    def recorder(self):
        r = Recorder()
        self.addCleanup(r.close)
        return r

    def echo(self):
        e = Echo()
        self.addCleanup(e.close)
        return e

    def test_example_blocklist(self):
        """config/examples/ip-blocklist.yaml, ports changed: 127.0.0.65 is in
        the top-level deny 127.0.0.64/26 and closed in both services with no
        upstream connection; 127.0.0.1 is served; the admin-ssh service
        refuses 127.0.0.2 (not in its allow). Log lines at level 2 carry the
        masked address only; the refusals are counted as denied."""
        web_up, ssh_up = self.recorder(), self.recorder()
        web, ssh, admin = free_port(), free_port(), free_port()
        with open(EXAMPLE) as f:
            text = f.read()
        for old, new in (('"127.0.0.1:8080"', '"127.0.0.1:%d"' % web),
                         ('"127.0.0.1:2222"', '"127.0.0.1:%d"' % ssh),
                         ('"127.0.0.1:9901"', '"127.0.0.1:%d"' % admin),
                         ("port: 8081 }", "port: %d }" % web_up.port),
                         ("port: 22 }", "port: %d }" % ssh_up.port)):
            self.assertIn(old, text)
            text = text.replace(old, new)
        # README's "Access control" shows the file (its settings, comments aside).
        with open(os.path.join(os.path.dirname(EXAMPLE), "..", "..", "README.md")) as f:
            readme = f.read()
        with open(EXAMPLE) as f:
            settings = "".join(line for line in f if not line.startswith("#"))
        self.assertIn("```yaml\n" + settings + "```\n", readme)
        pmx = self.start_proximux(yaml=text, port=web)

        self.assertTrue(refused(web, "127.0.0.65"))
        self.assertTrue(refused(web, "127.0.0.127"))
        self.assertTrue(refused(ssh, "127.0.0.100"))
        self.assertTrue(refused(ssh, "127.0.0.2"))
        self.assertEqual(exchange(web, b"GET / HTTP/1.0\r\n\r\n", ip="127.0.0.63")[1], b"ok:18")
        self.assertEqual(exchange(ssh, b"SSH-2.0-x\r\n", ip="127.0.0.1")[1], b"ok:11")
        self.assertEqual(web_up.wait(1), [b"GET / HTTP/1.0\r\n\r\n"])
        self.assertEqual(ssh_up.wait(1), [b"SSH-2.0-x\r\n"])
        time.sleep(0.2 * TIME_FACTOR)
        self.assertEqual((web_up.accepted, ssh_up.accepted), (1, 1))

        pmx.wait_log(r"INFO client 127\.0\.x\.x:\d+ refused: deny 127\.0\.0\.64/26$")
        pmx.wait_log(r"INFO client 127\.0\.x\.x:\d+ refused: not in allow$")
        log = pmx.log()
        self.assertEqual(len(re.findall(r"refused: deny 127\.0\.0\.64/26", log)), 3, log)
        for real in ("127.0.0.65", "127.0.0.127", "127.0.0.100", "127.0.0.2:", "127.0.0.63"):
            self.assertNotIn(real, log)

        st = get_json(admin, "/api/v1/stats/web")
        self.assertEqual(st["clients"]["refused"]["denied"], 2)
        self.assertEqual(st["clients"]["total"], 1)
        self.assertEqual(get_json(admin, "/api/v1/stats/admin-ssh")["clients"]["refused"]["denied"], 2)
        status, _, body = http(admin, "GET", "/metrics")
        self.assertEqual(status, 200)
        m = metrics(body.decode())
        self.assertEqual(m['proximux_clients_refused_total{service="web",reason="denied"}'], 2)
        self.assertEqual(m['proximux_clients_refused_total{service="admin-ssh",reason="denied"}'], 2)
        self.assert_proximux_ok(pmx)

    def test_proxy_warm_spares_untouched(self):
        """Proxy mode with warm spares on an IPv6 wildcard listener (IPv4
        clients arrive as ::ffff:127.0.0.x and match IPv4 entries): a
        refused client takes no spare (no new upstream connection), an
        allowed one is served; allow without deny refuses the rest."""
        up = self.recorder()
        port = free_port()
        pmx = self.start_proximux(yaml=(
            "log_level: 2\nlisten: [\"[::]:%d\"]\nexchange: { mode: proxy }\n"
            "pool: { connections: 4, warmup: true }\n"
            "targets: [ { host: 127.0.0.1, port: %d } ]\n"
            "allow: [127.0.0.10/31, \"::1\"]\n" % (port, up.port)), port=port)
        deadline = time.monotonic() + 5 * TIME_FACTOR
        while up.accepted < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        spares = up.accepted
        self.assertGreaterEqual(spares, 1)
        for ip in ("127.0.0.9", "127.0.0.12", "127.0.0.1"):
            self.assertTrue(refused(port, ip), ip)
        time.sleep(0.3 * TIME_FACTOR)
        self.assertEqual(up.accepted, spares)
        self.assertEqual(up.got, [])
        self.assertEqual(exchange(port, b"abc", ip="127.0.0.11")[1], b"ok:3")
        self.assertEqual(up.wait(1), [b"abc"])
        pmx.wait_log(r"INFO client \[::ffff:127\.0\.0\.9\]:\d+ refused: not in allow$")
        # ::1 is allowed: an IPv6 client.
        s = client(port, None, host="::1")
        s.sendall(b"v6")
        s.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_until_eof(s), b"ok:2")
        s.close()
        self.assert_proximux_ok(pmx)

    def test_fifo_redis_top_deny_and_service_allow(self):
        """fifo/resp to redis-server: the top-level deny holds 127.0.0.3,
        the service allows 127.0.0.0/29: .2 gets PONG, .3 (top deny) and .9
        (not in allow) are closed without a reply, and another service
        without lists still follows the top-level deny."""
        r = RedisServer()
        self.addCleanup(r.stop)
        admin, p1, p2 = free_port(), free_port(), free_port()
        pmx = self.start_proximux(yaml=(
            "log_level: 2\nadmin: { listen: \"127.0.0.1:%d\" }\n"
            "deny: [127.0.0.3]\n"
            "services:\n"
            "  - name: cache\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    exchange: { mode: fifo, codec: resp }\n"
            "    pool: { connections: 1 }\n"
            "    allow: [127.0.0.0/29]\n"
            "    targets: [ { host: 127.0.0.1, port: %d } ]\n"
            "  - name: open\n"
            "    listen: [\"127.0.0.1:%d\"]\n"
            "    exchange: { mode: fifo, codec: resp }\n"
            "    pool: { connections: 1 }\n"
            "    targets: [ { host: 127.0.0.1, port: %d } ]\n" % (admin, p1, r.port, p2, r.port)), port=p1)
        ping = b"*1\r\n$4\r\nPING\r\n"
        for port in (p1, p2):
            s = client(port, "127.0.0.2")
            s.sendall(ping)
            self.assertEqual(s.recv(100), b"+PONG\r\n")
            s.close()
        self.assertTrue(refused(p1, "127.0.0.3", ping))
        self.assertTrue(refused(p1, "127.0.0.9", ping))
        self.assertTrue(refused(p2, "127.0.0.3", ping))
        s = client(p2, "127.0.0.9")
        s.sendall(ping)
        self.assertEqual(s.recv(100), b"+PONG\r\n")
        s.close()
        pmx.wait_log(r"INFO client 127\.0\.0\.3:\d+ refused: deny 127\.0\.0\.3$")
        pmx.wait_log(r"INFO client 127\.0\.0\.9:\d+ refused: not in allow$")
        self.assertEqual(get_json(admin, "/api/v1/stats/cache")["clients"]["refused"]["denied"], 2)
        self.assertEqual(get_json(admin, "/api/v1/stats/open")["clients"]["refused"]["denied"], 1)
        self.assert_proximux_ok(pmx)

    def test_reload_changes_lists_for_new_clients(self):
        """SIGHUP with an edited deny: a client of the now denied address that
        is connected keeps being served; new clients follow the new lists."""
        up = self.echo()
        port = free_port()
        yaml = ("log_level: 2\nlocal: { host: 127.0.0.1, port: %d }\nexchange: { mode: proxy }\n"
                "pool: { connections: 8 }\ntargets: [ { host: 127.0.0.1, port: %d } ]\n" % (port, up.port))
        pmx = self.start_proximux(yaml=yaml + "deny: [127.0.0.4]\n", port=port)
        self.assertTrue(refused(port, "127.0.0.4"))
        kept = client(port, "127.0.0.5")
        self.addCleanup(kept.close)
        self.assertTrue(echoed(kept))

        pmx.write_yaml(yaml + "deny: [127.0.0.5]\nlog_mask_ip: true\n")
        start = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"reloaded configuration", start=start)
        self.assertTrue(echoed(kept, b"still here\n"))
        self.assertTrue(refused(port, "127.0.0.5"))
        s = client(port, "127.0.0.4")
        self.assertTrue(echoed(s))
        s.close()
        pmx.wait_log(r"INFO client 127\.0\.x\.x:\d+ refused: deny 127\.0\.0\.5$", start=start)
        self.assertTrue(echoed(kept, b"and still\n"))
        kept.close()

        # Lists emptied: everyone is served again.
        pmx.write_yaml(yaml)
        start = len(pmx.log())
        pmx.send_signal(signal.SIGHUP)
        pmx.wait_log(r"reloaded configuration", start=start)
        s = client(port, "127.0.0.5")
        self.assertTrue(echoed(s))
        s.close()
        self.assert_proximux_ok(pmx)

    def test_accept_proxy_header_address_is_matched(self):
        """accept_proxy from 127.0.0.0/8: the address a PROXY header gives is
        the one the lists see (and the log shows), not the balancer's."""
        up = self.recorder()
        port = free_port()
        pmx = self.start_proximux(yaml=(
            "log_level: 2\nlocal: { host: 127.0.0.1, port: %d }\nexchange: { mode: proxy }\n"
            "pool: { connections: 4 }\ntargets: [ { host: 127.0.0.1, port: %d } ]\n"
            "accept_proxy: true\naccept_proxy_from: [127.0.0.0/8]\n"
            "deny: [10.9.0.0/16]\n" % (port, up.port)), port=port)
        self.assertTrue(refused(port, "127.0.0.1", b"PROXY TCP4 10.9.1.2 127.0.0.1 5555 80\r\nhello"))
        pmx.wait_log(r"INFO client 10\.9\.1\.2:5555 refused: deny 10\.9\.0\.0/16$")
        self.assertEqual(exchange(port, b"PROXY TCP4 10.8.1.2 127.0.0.1 5556 80\r\nhello", ip="127.0.0.1")[1],
                         b"ok:5")
        self.assertEqual(up.wait(1), [b"hello"])
        time.sleep(0.2 * TIME_FACTOR)
        self.assertEqual(up.accepted, 1)
        self.assert_proximux_ok(pmx)

    def test_bad_entry_is_a_config_error(self):
        """A bad entry stops the start (and -t) with exit status 2 and one
        line naming the entry, the value and why."""
        base = ("local: { port: %d }\npool: { connections: 1 }\n"
                "targets: [ { host: 127.0.0.1, port: 1 } ]\n" % free_port())
        for extra, name, want in (
                ("deny: [10.0.0.0/8, 1.2.3.4, 10.0.0.1/8]\n", "deny[3] (",
                 ' line 4): "10.0.0.1/8" is not an address range: host bits set beyond /8'),
                ("allow: [\"::1/129\"]\n", "allow[1] (",
                 ' line 4): "::1/129" is not an address range: prefix 129 is not 0-128')):
            for args in ((), ("-t",)):
                code, out, err = run_proximux(list(args), yaml=base + extra, timeout=5)
                self.assertEqual(code, 2, err)
                self.assertTrue(err.startswith("proximux: " + name), err)
                self.assertIn(want, err)
                self.assertEqual(len(err.strip().splitlines()), 1, err)
