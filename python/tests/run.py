"""Runs the Python package's tests the way ember's other suites report (meson test suite 'python'):
unittest discovery in this directory, one "SKIPPED: <test>: <reason>" line per skip and a count line for
tools/test.sh, exit 77 (meson's "skipped") when every test skipped (libember.so could not be loaded).
Under CI=true a missing library or tool is a failure instead (test_ember.need)."""
import os
import sys
import unittest

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(here))  # the package beside this directory: python/ember
suite = unittest.defaultTestLoader.discover(here, top_level_dir=here)
result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
for test, reason in result.skipped:
    print("SKIPPED: %s: %s" % (test.id(), reason))
if result.skipped:
    print("[ember] skipped: %d of %d test cases skipped (SKIPPED lines above)" % (len(result.skipped), result.testsRun))
if not result.wasSuccessful():
    sys.exit(1)
sys.exit(77 if result.testsRun and len(result.skipped) == result.testsRun else 0)
