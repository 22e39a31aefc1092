"""In CI a skipped check is a failure (the hooks of tests/ci_env.py, registered by
tests/conftest.py and bench/conftest.py): proved by running pytest itself on throwaway
suites that carry those files, with and without ``CI``."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent
SUITE = '''
import pytest

def test_skips_inside():
    pytest.skip("no such tool")

@pytest.mark.skipif(True, reason="marked")
def test_marked():
    pass

def test_runs():
    assert 1 + 1 == 2

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''
MODULE_SKIP = '''
import pytest
pytest.skip("whole module", allow_module_level=True)

def test_never():
    pass
'''


@pytest.fixture
def suite(pytester):
    for name in ("conftest.py", "ci_env.py"):
        shutil.copy(HERE / name, pytester.path / name)
    pytester.makepyfile(test_inside=SUITE, test_module=MODULE_SKIP)
    return pytester


@pytest.mark.parametrize("value", ["true", "True", "1", "yes"])
def test_a_skip_fails_in_ci(suite, monkeypatch, value):
    monkeypatch.setenv("CI", value)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--continue-on-collection-errors")
    # the skip inside the test fails its call; the skipif mark (set-up) and the module
    # skip (collection) are reported as errors
    result.assert_outcomes(passed=1, failed=1, xfailed=1, errors=2)
    result.stdout.fnmatch_lines(["*CI: this check would have been skipped*no such tool*"])


@pytest.mark.parametrize("value", [None, "false", ""])
def test_a_skip_stays_a_skip_off_ci(suite, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)


def test_the_bench_suite_fails_a_skip_in_ci_too(pytester, monkeypatch):
    """``scripts/test.sh`` runs bench/ (timing off) as its own pytest session, which does
    not load tests/conftest.py: bench/conftest.py registers the same hooks."""
    (pytester.path / "tests").mkdir()
    shutil.copy(HERE / "ci_env.py", pytester.path / "tests" / "ci_env.py")
    (pytester.path / "bench").mkdir()
    shutil.copy(HERE.parent / "bench" / "conftest.py", pytester.path / "bench" / "conftest.py")
    (pytester.path / "bench" / "bench_tool.py").write_text(
        "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no such tool')\n")
    monkeypatch.setenv("CI", "true")
    result = pytester.runpytest_subprocess("bench", "--benchmark-disable", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CI: this check would have been skipped*no such tool*"])
    monkeypatch.delenv("CI")
    pytester.runpytest_subprocess("bench", "--benchmark-disable", "-p", "no:cacheprovider") \
        .assert_outcomes(skipped=1)
