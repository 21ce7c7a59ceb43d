"""Binary upgrade (SIGUSR2, SPEC section 12): the old process starts the
binary at its own path with the listening sockets; once the new one is
ready the old one stops accepting and exits gracefully, with no connect
refused under a connect-per-request load. A new process that fails (the
binary replaced by a script exiting 1, or deleted) leaves the old one
serving."""

import os
import shutil
import signal
import stat
import tempfile
import time

import harness
from harness import BIN, ProximuxTestCase, RedisServer, Resp, TIME_FACTOR, free_port
from test_reload import Pinger, ping


def pid_gone(pid):
    """Whether pid has exited (gone or a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def stop_pid(pid, timeout=15.0):
    """SIGTERM to a process that is not our child (the new proximux, adopted
    by init); waits for it to go."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while not pid_gone(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError("new proximux %d did not exit on SIGTERM" % pid)
        time.sleep(0.05)


class UpgradeTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer()

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()

    def yaml(self, port, unix_path):
        return ("log_level: 2\n"
                "services:\n"
                "  - name: kv\n"
                "    listen: [\"127.0.0.1:%d\", \"unix:%s\"]\n"
                "    exchange: { mode: fifo, codec: resp }\n"
                "    pool: { connections: 1 }\n"
                "    targets: [ { host: 127.0.0.1, port: %d } ]\n" % (port, unix_path, self.redis.port))

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="pmx-it-upg-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_upgrade_under_connect_per_request_load(self):
        """SIGUSR2 while a thread connects, PINGs and closes in a loop: zero
        errors; the new process serves (TCP and the unix socket, whose file
        stays), the old one exits 0 once its connected client leaves."""
        port, d = free_port(), self.tmpdir()
        sock = os.path.join(d, "kv.sock")
        pmx = self.start_proximux(yaml=self.yaml(port, sock), port=port)
        pinger = Pinger(port)
        new_pid = None
        try:
            with Resp(port) as held:
                self.assertEqual(held.command("SET", "upg", "1"), "OK")
                time.sleep(0.3)
                mark = len(pmx.log())
                pmx.send_signal(signal.SIGUSR2)
                m = pmx.wait_log(r"upgrade: started new process (\d+)", 5 * TIME_FACTOR, mark)
                new_pid = int(m.group(1))
                self.addCleanup(stop_pid, new_pid)
                pmx.wait_log(r"upgrade: new process %d is ready" % new_pid, 10 * TIME_FACTOR, mark)
                time.sleep(0.3)
                # The held client finishes its session on the old process.
                self.assertTrue(pmx.alive(), "the old process left before its client")
                self.assertEqual(held.command("INCR", "upg"), 2)
            self.assertEqual(pmx.wait_exit(10 * TIME_FACTOR), 0, "the old process did not exit 0")
            time.sleep(0.3)
        finally:
            pinger.stop()
        print("FIGURES upgrade under connect-per-request load: %d ok, %d errors"
              % (pinger.ok, pinger.errors))
        self.assertEqual(pinger.errors, 0, "connect-per-request errors, last: %r" % (pinger.last_error,))
        self.assertFalse(pid_gone(new_pid), "the new process is gone:\n" + pmx.log()[-3000:])
        log = pmx.log()
        self.assertIn("upgrade: listener 127.0.0.1:%d inherited" % port, log)
        self.assertIn("upgrade: listener unix:%s inherited" % sock, log)
        self.assertIn("upgrade: this process (%d) is the main process now" % new_pid, log)
        ping(port)
        self.assertTrue(os.path.exists(sock), "the old process removed the unix socket's file")
        with Resp(port) as r:
            self.assertEqual(r.command("GET", "upg"), b"2")
        # And the new process upgrades again (its own binary, its own sockets).
        mark = len(pmx.log())
        os.kill(new_pid, signal.SIGUSR2)
        m = pmx.wait_log(r"upgrade: started new process (\d+)", 5 * TIME_FACTOR, mark)
        third = int(m.group(1))
        self.addCleanup(stop_pid, third)
        pmx.wait_log(r"upgrade: new process %d is ready" % third, 10 * TIME_FACTOR, mark)
        deadline = time.monotonic() + 10 * TIME_FACTOR
        while not pid_gone(new_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(pid_gone(new_pid), "the second process did not exit")
        ping(port)
        stop_pid(third)
        self.assertNotRegex(pmx.log(), r"AddressSanitizer|runtime error:")

    def failed_upgrade(self, break_binary, why, timeout=10):
        port, d = free_port(), self.tmpdir()
        exe = os.path.join(d, "proximux")
        shutil.copy(BIN, exe)
        os.chmod(exe, os.stat(exe).st_mode | stat.S_IXUSR)
        # Started from the copy: the harness reads BIN when it starts one.
        saved, harness.BIN = harness.BIN, exe
        try:
            pmx = self.start_proximux(yaml=self.yaml(port, os.path.join(d, "kv.sock")), port=port)
        finally:
            harness.BIN = saved
        ping(port)
        break_binary(exe)
        pinger = Pinger(port)
        try:
            mark = len(pmx.log())
            pmx.send_signal(signal.SIGUSR2)
            pmx.wait_log(r"upgrade: new process \d+ %s" % why, timeout * TIME_FACTOR, mark)
            time.sleep(0.3)
        finally:
            pinger.stop()
        self.assertTrue(pmx.alive())
        self.assertEqual(pinger.errors, 0, "errors, last: %r" % (pinger.last_error,))
        ping(port)
        self.assert_proximux_ok(pmx)

    def test_failed_upgrade_script_exits_1(self):
        def replace_with_script(exe):
            os.unlink(exe)
            with open(exe, "w") as f:
                f.write("#!/bin/sh\nexit 1\n")
            os.chmod(exe, 0o755)
        self.failed_upgrade(replace_with_script, "closed the readiness pipe before it was ready: exited with status 1; "
                            "this process keeps serving")

    def test_failed_upgrade_binary_deleted(self):
        self.failed_upgrade(os.unlink, "closed the readiness pipe before it was ready: exited with status 127; "
                            "this process keeps serving")

    def test_failed_upgrade_never_ready(self):
        """A binary that starts but never says it is ready: after 10 s the
        old process stops it and keeps serving."""
        def replace_with_sleeper(exe):
            os.unlink(exe)
            with open(exe, "w") as f:
                f.write("#!/bin/sh\nexec sleep 60\n")
            os.chmod(exe, 0o755)
        self.failed_upgrade(replace_with_sleeper, "was not ready within 10000 ms; stopping it, this process "
                            "keeps serving", timeout=15)
