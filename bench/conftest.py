"""pytest-benchmark set-up for bench/: collect ``bench_*.py``, one thread everywhere, and a
closing table of ratios between peers measured in the same run (``make bench``)."""
from __future__ import annotations

import os

# Single-threaded peers: set before numpy / BLAS / OpenMP are first imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from ci_env import pytest_make_collect_report, pytest_runtest_makereport  # noqa: E402,F401 (CI: no skips)

# name -> (min, median) seconds, filled by the ``record`` fixture. Ratios use the minimum:
# on a shared machine it is the round least disturbed by other load, for every peer alike.
RESULTS: dict[str, tuple[float, float]] = {}
# (numerator, denominator, goal): "how many times faster the C path is"
RATIOS: list[tuple[str, str, float]] = []
# (name, goal in seconds): absolute budgets (the per-hop streaming cost)
BUDGETS: list[tuple[str, float]] = []


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the environment variables above still apply
        yield
        return
    with threadpool_limits(limits=1):
        yield


@pytest.fixture()
def record(benchmark):
    """Call ``record(name)`` after ``benchmark(...)`` to keep its median for the ratios."""
    def _record(name: str) -> None:
        if benchmark.stats is not None:
            RESULTS[name] = (benchmark.stats.stats.min, benchmark.stats.stats.median)
    return _record


def pytest_terminal_summary(terminalreporter) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("edge-ad benchmark (one thread, one run)")
    tr.write_line(f"{'':<34} {'min':>10}    {'median':>10}")
    for name, (low, median) in RESULTS.items():
        tr.write_line(f"{name:<34} {low * 1e6:>10.2f} us {median * 1e6:>10.2f} us")
    for slow, fast, goal in RATIOS:
        if slow in RESULTS and fast in RESULTS:
            ratio = RESULTS[slow][0] / RESULTS[fast][0]
            ratio_median = RESULTS[slow][1] / RESULTS[fast][1]
            verdict = "meets" if ratio >= goal else "misses"
            tr.write_line(f"{slow} / {fast} = {ratio:.1f}x by min, {ratio_median:.1f}x by median "
                          f"({verdict} the goal {goal:g}x)")
    for name, budget in BUDGETS:
        if name in RESULTS:
            low = RESULTS[name][0]
            verdict = "meets" if low <= budget else "misses"
            tr.write_line(f"{name} = {low * 1e6:.2f} us min, {RESULTS[name][1] * 1e6:.2f} us "
                          f"median ({verdict} the goal <= {budget * 1e6:g} us)")
