#!/usr/bin/python3
"""Run the Python unit tests of one module in tests/lib and print TAP.

    python3 tests/lib/tap.py test_cfrcap

One TAP line per case, as unittest runs them (class and module fixtures
included), so prove (tests/run) counts each case; the plan comes last. A
skipped case is "ok # SKIP", a module that skips itself entirely (a missing
scapy) is "1..0 # SKIP", an error outside any case (an import) is a failed
case of its own. Details of a failure go to stderr, which tests/run keeps in
the test's log.
"""
import os
import sys
import unittest


class TapResult(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n = 0
        self.skip_reason = None

    def line(self, ok, test, directive=""):
        self.n += 1
        name = test.id() if hasattr(test, "id") else str(test)
        print("%s %d - %s%s" % ("ok" if ok else "not ok", self.n, name, directive), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.line(True, test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.line(False, test)
        sys.stderr.write(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self.line(False, test)
        sys.stderr.write(self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        # A failed subTest is its own failed case; passing ones are silent,
        # the case they belong to reports once.
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.line(False, subtest)
            sys.stderr.write(self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        # A module-level SkipTest reaches us as one skipped pseudo-case.
        if type(test).__name__ == "_ErrorHolder" or "ModuleSkipped" in type(test).__name__:
            self.skip_reason = reason
            return
        self.line(True, test, " # SKIP %s" % reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.line(True, test, " # TODO expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.line(False, test, " (unexpected success)")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tap.py MODULE (a test module in tests/lib, e.g. test_cfrcap)")
    here = os.path.dirname(os.path.abspath(__file__))
    suite = unittest.defaultTestLoader.discover(here, pattern=sys.argv[1] + ".py", top_level_dir=here)
    result = TapResult()
    suite.run(result)
    if result.n == 0:
        print("1..0 # SKIP %s" % (result.skip_reason or "no test case"))
    else:
        print("1..%d" % result.n)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
