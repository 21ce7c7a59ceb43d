#!/usr/bin/env python3
"""Runs the integration tests (test_*.py here) against $PROXIMUX_BIN.

    PROXIMUX_BIN=/abs/path/proximux python3 tests/integration/run.py [-k PATTERN]... [-x]

-k keeps tests whose id contains PATTERN (unittest -k semantics, repeatable);
-x stops at the first failure. Exits 0 only if every test passed.
PMX_IT_VERBOSE=1 prints every proximux log when the daemon stops."""

import argparse
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402


class TimedResult(unittest.TextTestResult):
    """Records each test's duration and prints the proximux logs of a
    failing test (while its daemon is still there)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.timings = []
        self.outcomes = {}

    def startTest(self, test):
        harness._started.clear()
        self._t0 = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        self.timings.append((test.id(), time.monotonic() - self._t0))
        self.outcomes.setdefault(test.id(), "ok")
        super().stopTest(test)

    def _dump_logs(self):
        for p in harness._started:
            try:
                text = p.log()
            except OSError:
                continue
            self.stream.write("\n    --- proximux log (port %d, last 40 lines) ---\n    %s\n"
                              % (p.port, harness.tail(text).replace("\n", "\n    ")))

    def addFailure(self, test, err):
        self.outcomes[test.id()] = "FAIL"
        super().addFailure(test, err)
        self._dump_logs()

    def addError(self, test, err):
        self.outcomes[test.id()] = "ERROR"
        super().addError(test, err)
        self._dump_logs()

    def addSkip(self, test, reason):
        self.outcomes[test.id()] = "skip"
        super().addSkip(test, reason)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.outcomes[test.id()] = "FAIL"
        super().addSubTest(test, subtest, err)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", action="append", default=[], metavar="PATTERN",
                    help="only tests whose id contains PATTERN")
    ap.add_argument("-x", "--failfast", action="store_true")
    ap.add_argument("modules", nargs="*", help="test modules (default: all test_*.py)")
    opts = ap.parse_args()

    if not harness.BIN or not os.access(harness.BIN, os.X_OK):
        print("run.py: PROXIMUX_BIN must name the proximux binary (got %r)" % harness.BIN,
              file=sys.stderr)
        return 2
    harness.BIN = os.path.abspath(harness.BIN)

    loader = unittest.TestLoader()
    if opts.k:
        loader.testNamePatterns = ["*%s*" % k if "*" not in k else k for k in opts.k]
    if opts.modules:
        suite = loader.loadTestsFromNames(
            [os.path.splitext(os.path.basename(m))[0] for m in opts.modules])
    else:
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    print("proximux: %s" % harness.BIN, flush=True)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult,
                                     failfast=opts.failfast, stream=sys.stdout)
    t0 = time.monotonic()
    result = runner.run(suite)
    total = time.monotonic() - t0

    print("\nSummary")
    for tid, secs in result.timings:
        print("  %-5s %6.2fs  %s" % (result.outcomes.get(tid, "?"), secs, tid))
    bad = len(result.failures) + len(result.errors)
    print("%d tests, %d failed, %d errors, %d skipped in %.1fs"
          % (result.testsRun, len(result.failures), len(result.errors),
             len(result.skipped), total))
    if result.testsRun == 0:
        print("no tests ran", file=sys.stderr)
        return 1
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
