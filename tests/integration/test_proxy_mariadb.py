"""Proxy mode in front of a real MariaDB (server speaks first, auth)."""

import time

from harness import MariaDB, ProximuxTestCase, free_port, proxy_env, run_threads


class ProxyMariaDBTest(ProximuxTestCase):

    @classmethod
    def setUpClass(cls):
        cls.db = MariaDB()

    @classmethod
    def tearDownClass(cls):
        cls.db.stop()

    def start(self, **settings):
        self.port = free_port()
        return self.start_proximux(proxy_env(self.port, [("127.0.0.1", self.db.port)],
                                             clients=16, **settings))

    def test_create_insert_select(self):
        pmx = self.start()
        out = self.db.client(
            "DROP TABLE IF EXISTS t_basic;"
            "CREATE TABLE t_basic (id INT PRIMARY KEY, name VARCHAR(32));"
            "INSERT INTO t_basic VALUES (1, 'one'), (2, 'two'), (3, 'three');"
            "SELECT id, name FROM t_basic ORDER BY id;", port=self.port)
        self.assertEqual(out, "1\tone\n2\ttwo\n3\tthree\n")
        # Visible directly on the server.
        self.assertEqual(self.db.client("SELECT COUNT(*) FROM t_basic"), "3\n")
        # A 1 MB result comes back whole.
        out = self.db.client("SELECT REPEAT('ab', 500000);", port=self.port)
        self.assertEqual(out, "ab" * 500000 + "\n")
        self.assert_proximux_ok(pmx)

    def test_wrong_password_refused(self):
        pmx = self.start()
        r = self.db.run_client("SELECT 1", port=self.port, password="wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Access denied", r.stderr)
        # And the right one still works afterwards.
        self.assertEqual(self.db.client("SELECT 1+1", port=self.port), "2\n")
        self.assert_proximux_ok(pmx)

    def test_concurrent_clients(self):
        pmx = self.start()

        def work(i):
            t = "t_conc_%d" % i
            rows = ",".join("(%d, %d)" % (j, j * i) for j in range(1, 101))
            return self.db.client(
                "DROP TABLE IF EXISTS %s; CREATE TABLE %s (a INT, b INT);"
                "INSERT INTO %s VALUES %s;"
                "SELECT COUNT(*), SUM(a), SUM(b) FROM %s;" % (t, t, t, rows, t), port=self.port)

        results = run_threads(work, 8, timeout=90)
        self.assertEqual(results, ["100\t5050\t%d\n" % (5050 * i) for i in range(8)])
        self.assert_proximux_ok(pmx)

    def test_warmup_greeting_delivered(self):
        pmx = self.start(PROXY_WARMUP=1, LOCAL_MAX_CONNECTIONS=4, PROXY_CONNECTIONS_CNT=4)
        # Let the pool connect and receive the server greetings first.
        deadline = time.monotonic() + 5
        while self.processlist_count() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.processlist_count(), 4,
                                "warmup did not pre-connect the pool")
        time.sleep(0.2)
        # More logins than pool slots: pre-connected ones first, then fresh ones.
        for i in range(6):
            self.assertEqual(self.db.client("SELECT %d*2" % i, port=self.port), "%d\n" % (i * 2))
        out = run_threads(lambda i: self.db.client("SELECT CONNECTION_ID() > 0",
                                                   port=self.port), 4)
        self.assertEqual(out, ["1\n"] * 4)
        self.assert_proximux_ok(pmx)

    def processlist_count(self):
        """Connections to the server other than our own root session."""
        r = self.db.root("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                         "WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon'")
        return int(r.stdout)
