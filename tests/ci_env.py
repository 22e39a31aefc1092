"""Whether the suite runs in CI, where a missing system tool is a failure, never a skip,
and the pytest hooks that make it so. ``tests/conftest.py`` and ``bench/conftest.py``
import the two hooks, which registers them for both suites."""
from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """``CI`` set to true (any case), 1 or yes, as CI services set it."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _fail_skip_in_ci(report) -> None:
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI: this check would have been skipped ({reason}); CI must run it"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI every check runs: a skip (a missing tool, package or file system feature)
    is turned into a failure that says why, whichever test or fixture asked for it."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a whole module skipped at import (``allow_module_level``): a
    collection error, which stops the run, naming what was missing."""
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())
