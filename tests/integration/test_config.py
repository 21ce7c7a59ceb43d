"""Command line and configuration: -t, -V, -h, and refusal of bad settings
(exit status 2, one stderr line naming the setting)."""

import glob
import os
import re
import socket

from harness import ProximuxTestCase, free_port, run_proximux

BASE = {"LOCAL_PORT": 3307, "PROXY_CONNECTIONS_CNT": 1,
        "TARGET_HOST_1": "127.0.0.1", "TARGET_PORT_1": 3306}

BASE_YAML = ("local: { host: 127.0.0.1, port: %d }\n"
             "pool: { connections: 1 }\n"
             "targets:\n"
             "  - { host: 127.0.0.1, port: 3306 }\n")


def env_with(**changes):
    env = dict(BASE)
    for k, v in changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class ConfigTest(ProximuxTestCase):

    def test_shipped_configurations_pass_check(self):
        """proximux.yaml.example and every config/examples/*.yaml pass -t,
        and -t names each of their services."""
        top = os.path.join(os.path.dirname(__file__), "..", "..")
        files = [os.path.join(top, "proximux.yaml.example")] + sorted(
            glob.glob(os.path.join(top, "config", "examples", "*.yaml")))
        self.assertGreater(len(files), 2)
        for path in files:
            code, out, err = run_proximux(["-t", "-c", path], env={})
            self.assertEqual(code, 0, "%s: %s" % (path, err))
            self.assertIn("configuration OK", out)
            with open(path) as f:
                for name in re.findall(r"^  - name: (\S+)", f.read(), re.M):
                    self.assertIn(name, out, "%s: service %s missing from -t" % (path, name))

    def check_ok(self, env=None, yaml=None):
        code, out, err = run_proximux(["-t"], env=env, yaml=yaml)
        self.assertEqual(code, 0, "-t refused a valid config: %s" % err)
        return out + err

    def assert_refused(self, name_rx, env=None, yaml=None, value=None, args=()):
        """Starting must fail with status 2 and one line on stderr naming
        the setting (regex name_rx) and the bad value, if given; -t too."""
        for extra in ((), ("-t",)):
            code, out, err = run_proximux(list(args) + list(extra), env=env, yaml=yaml, timeout=5)
            what = "proximux %s with env=%s yaml=%r" % (" ".join(extra), env, yaml)
            self.assertIsNotNone(code, "%s did not exit (started half-configured?)" % what)
            if extra:
                self.assertNotEqual(code, 0, what)
            else:
                self.assertEqual(code, 2, "%s: exit status\nstderr: %s" % (what, err))
            lines = err.strip().splitlines()
            self.assertEqual(len(lines), 1, "%s: expected one stderr line, got:\n%s" % (what, err))
            self.assertTrue(lines[0].startswith("proximux: "), lines[0])
            self.assertRegex(lines[0], name_rx)
            if value is not None:
                self.assertIn(value, lines[0])

    # ------------------------------------------------------------ -t, -V, -h

    def test_check_prints_mode(self):
        out = self.check_ok(BASE)
        self.assertRegex(out, r"mode:\s*fifo\b")
        self.assertIn("3307", out)
        out = self.check_ok(env_with(PROXY_CONNECTIONS_CNT=2, LOCAL_MAX_CONNECTIONS=2))
        self.assertRegex(out, r"mode:\s*proxy\b")
        out = self.check_ok(env_with(PROXY_CONNECTIONS_CNT=2))
        self.assertRegex(out, r"mode:\s*funnel\b")
        out = self.check_ok(env_with(EXCHANGE_MODE="funnel", EXCHANGE_CODEC="resp"))
        self.assertRegex(out, r"mode:\s*funnel\b")
        self.assertRegex(out, r"codec:\s*resp\b")

    def test_check_precedence(self):
        yaml = BASE_YAML % 4444
        out = self.check_ok(env={}, yaml=yaml)
        self.assertRegex(out, r"port:\s*4444\b")
        out = self.check_ok(env={"LOCAL_PORT": 5555}, yaml=yaml)
        self.assertRegex(out, r"port:\s*5555\b")
        self.assertNotRegex(out, r"port:\s*4444\b")

    def test_check_does_not_bind(self):
        with socket.socket() as s:          # -t must not need the port free
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            self.check_ok(env_with(LOCAL_PORT=s.getsockname()[1]))

    def test_version(self):
        code, out, err = run_proximux(["-V"], env={})
        self.assertEqual(code, 0)
        self.assertRegex(out + err, r"(?i)proximux\D*\d+\.\d+")

    def test_help(self):
        code, out, err = run_proximux(["-h"], env={})
        self.assertEqual(code, 0)
        self.assertIn("-c", out + err)
        self.assertIn("-t", out + err)

    def test_bad_option(self):
        code, out, err = run_proximux(["-Z"], env=BASE, timeout=5)
        self.assertIsNotNone(code)
        self.assertNotEqual(code, 0)
        self.assertGreater(code, 0, "killed by a signal")

    # ------------------------------------------------------------ bad env

    def test_bad_env(self):
        cases = [
            ("LOCAL_PORT", '"abc"', dict(LOCAL_PORT="abc")),
            ("LOCAL_PORT", '"70000"', dict(LOCAL_PORT="70000")),
            ("LOCAL_PORT", '"0"', dict(LOCAL_PORT="0")),
            ("LOCAL_PORT", None, dict(LOCAL_PORT=None)),
            ("PROXY_CONNECTIONS_CNT", '"0"', dict(PROXY_CONNECTIONS_CNT="0")),
            ("PROXY_CONNECTIONS_CNT", '"x"', dict(PROXY_CONNECTIONS_CNT="x")),
            ("PROXY_CONNECTIONS_CNT", None, dict(PROXY_CONNECTIONS_CNT=None)),
            ("LOCAL_MAX_CONNECTIONS", '"0"', dict(LOCAL_MAX_CONNECTIONS="0")),
            ("LOCAL_MAX_CONNECTIONS", '"-7"', dict(LOCAL_MAX_CONNECTIONS="-7")),
            ("EXCHANGE_MODE", '"bogus"', dict(EXCHANGE_MODE="bogus")),
            ("EXCHANGE_CODEC", '"bogus"', dict(EXCHANGE_CODEC="bogus")),
            ("LOG_LEVEL", '"7"', dict(LOG_LEVEL="7")),
            ("PROXY_WARMUP", '"maybe"', dict(PROXY_WARMUP="maybe")),
            ("PROXY_INACTIVE_TIMEOUT", '"soon"', dict(PROXY_INACTIVE_TIMEOUT="soon")),
            ("TARGET_PORT_1", '"99999"', dict(TARGET_PORT_1="99999")),
            ("TARGET_PORT_1", None, dict(TARGET_PORT_1=None)),
            (r"TARGET_(HOST|PORT)_1", None, dict(TARGET_HOST_1=None, TARGET_PORT_1=None)),
            # A gap: targets 1 and 3 but no 2.
            (r"TARGET_(HOST|PORT)_[23]", None,
             dict(PROXY_CONNECTIONS_CNT=3, TARGET_HOST_3="127.0.0.1", TARGET_PORT_3=3306)),
        ]
        for name, value, changes in cases:
            with self.subTest(name=name, changes=changes):
                self.assert_refused(name, env=env_with(**changes), value=value)

    def test_check_services(self):
        yaml = ("exchange: { codec: resp }\n"
                "pool: { connections: 1 }\n"
                "services:\n"
                "  - name: first\n"
                "    listen: [\"127.0.0.1:%d\", \"unix:/tmp/pmx-it-first.sock\"]\n"
                "    exchange: { mode: proxy, codec: raw }\n"
                "    pool: { connections: 2 }\n"
                "    targets: [ { host: 127.0.0.1, port: 3306 }, { unix: /tmp/none.sock, backup: true } ]\n"
                "  - name: second\n"
                "    local: { port: %d }\n"
                "    targets: [ { name: main, host: 127.0.0.1, port: 6379, weight: 3 } ]\n"
                % (free_port(), free_port()))
        out = self.check_ok(env={"LOG_LEVEL": 2}, yaml=yaml)
        self.assertIn('name: "first"', out)
        self.assertIn('name: "second"', out)
        self.assertRegex(out, r"mode:\s*proxy \(explicit\)")
        self.assertRegex(out, r"mode:\s*fifo \(auto: connections == 1\)")
        self.assertRegex(out, r"codec:\s*resp\b")        # inherited by second
        self.assertIn("unix:/tmp/pmx-it-first.sock", out)
        self.assertIn('name: "main"', out)
        self.assertIn("configuration OK", out)

    def test_env_with_services_refused(self):
        yaml = ("services:\n"
                "  - { name: a, local: { port: %d }, pool: { connections: 1 },\n"
                "      targets: [ { host: 127.0.0.1, port: 1 } ] }\n" % free_port())
        code, out, err = run_proximux(["-t"], env={"LOG_LEVEL": 2}, yaml=yaml, timeout=5)
        self.assertEqual(code, 0, err)
        self.assert_refused(r"^proximux: LOCAL_PORT: environment variables configure the single-service "
                            r"form only; this file has services:$", env={"LOCAL_PORT": 7}, yaml=yaml)

    def test_targets_beyond_connections(self):
        out = self.check_ok(env_with(TARGET_HOST_2="127.0.0.1", TARGET_PORT_2=3307,
                                     TARGET_UNIX_3="/tmp/x.sock", TARGET_WEIGHT_3=5))
        self.assertRegex(out, r"mode:\s*fifo\b")
        self.assertIn('unix: "/tmp/x.sock", weight: 5', out)

    def test_bad_env_new_settings(self):
        cases = [
            ("BALANCE", '"fastest"', dict(BALANCE="fastest")),
            ("RETRIES", '"101"', dict(RETRIES="101")),
            ("HEALTH_FAIL_AFTER", '"0"', dict(HEALTH_FAIL_AFTER="0")),
            ("HEALTH_INTERVAL", '"5"', dict(HEALTH_INTERVAL="5")),
            ("HEALTH_SEND", None, dict(HEALTH_SEND="\\q")),
            ("HEALTH_CHECK_UP", '"maybe"', dict(HEALTH_CHECK_UP="maybe")),
            ("PROXY_RESOLVE_INTERVAL", '"0"', dict(PROXY_RESOLVE_INTERVAL="0")),
            ("LIMITS_MAX_ACTIVE", '"0"', dict(LIMITS_MAX_ACTIVE="0")),
            ("LOCAL_LISTEN_MODE", '"999"', dict(LOCAL_LISTEN_MODE="999")),
            ("TARGET_WEIGHT_1", '"0"', dict(TARGET_WEIGHT_1="0")),
            ("TARGET_UNIX_1", None, dict(TARGET_UNIX_1="/tmp/x.sock")),
        ]
        for name, value, changes in cases:
            with self.subTest(name=name, changes=changes):
                self.assert_refused(name, env=env_with(**changes), value=value)

    # ------------------------------------------------------------ bad YAML

    def test_bad_yaml(self):
        good = BASE_YAML % 3307
        cases = [
            ("bogus_key", good + "bogus_key: 1\n"),
            (r"prot\b", good.replace("port: 3307 }", "port: 3307, prot: 1 }")),
            (r"(?i)local\.port|local_port|\bport\b", good.replace("port: 3307", "port: [1, 2]")),
            (r"(?i)local\.port|local_port|\bport\b", good.replace("port: 3307", 'port: "abc"')),
            (r"(?i)log_level", "log_level: { a: 1 }\n" + good),
            (r"(?i)log_level", "log_level: high\n" + good),
            (r"(?i)targets", good.split("targets:")[0] + "targets: 5\n"),
            (r"(?i)connections", good.replace("connections: 1", "connections: yes")),
            (r"(?i)warmup", good.replace("connections: 1", "connections: 1, warmup: 3")),
            (r"(?i)mode", good + "exchange: { mode: bogus }\n"),
        ]
        for name, yaml in cases:
            with self.subTest(name=name, yaml=yaml):
                self.assert_refused(name, env={}, yaml=yaml)

    def test_yaml_syntax_error_and_missing_file(self):
        code, out, err = run_proximux([], env={}, yaml="local: { port: 3307\n", timeout=5)
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertTrue(err.startswith("proximux: "), err)
        code, out, err = run_proximux(["-c", "/nonexistent/proximux.yaml"], env=BASE, timeout=5)
        self.assertEqual(code, 2, err)
        self.assertIn("/nonexistent/proximux.yaml", err)

    # ------------------------------------------------------------ bind

    def test_port_in_use(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            code, out, err = run_proximux([], env=env_with(LOCAL_PORT=port), timeout=5)
        self.assertEqual(code, 2, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertRegex(lines[0], r"^proximux: .*(LOCAL_PORT|LOCAL_HOST|local\.port|local\.host)")
        self.assertIn(str(port), lines[0])

    def test_address_not_local(self):
        code, out, err = run_proximux(
            [], env=env_with(LOCAL_HOST="192.0.2.1", LOCAL_PORT=free_port()), timeout=5)
        self.assertEqual(code, 2, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertRegex(err, r"^proximux: .*(LOCAL_HOST|local\.host)")
        self.assertIn("192.0.2.1", err)

