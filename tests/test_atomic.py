"""One atomic-folder mechanism for RUN, bundle and calibration (issue 13, defects 4 and 12):
a writer killed at any point leaves the old folder or the new one, complete, and what it
left beside it is removed at the next start; /tmp work folders of killed exports too;
calibration history is bounded."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge import atomic
from edge.calibration import rewrite_thresholds
from edge.threshold import fit_gamma
from runtime_support import edge_env
from ci_env import in_ci

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from edge import atomic
    if sys.argv[2] == "rename":
        atomic.exchange = lambda a, b: False        # a file system without RENAME_EXCHANGE
    def fill(tmp):
        for i in range(3):
            (tmp / f"f{i}").write_text("new")
    atomic.replace_folder(Path(sys.argv[1]), fill)
""")


def _tree(p: Path) -> dict[str, str]:
    return {f.name: f.read_text() for f in sorted(p.iterdir())}


def _write_old(target: Path) -> None:
    target.mkdir()
    for i in range(2):
        (target / f"f{i}").write_text("old")


@pytest.mark.parametrize("swap", ["exchange", "rename"])
@pytest.mark.parametrize("kill_at, expected", [
    pytest.param("filled", "old", marks=pytest.mark.fault),
    pytest.param("swapped", "new", marks=pytest.mark.fault), ("", "new")])
def test_a_writer_killed_at_any_point_leaves_old_or_new_and_the_next_start_cleans_up(
        tmp_path, swap, kill_at, expected):
    target = tmp_path / "RUN"
    _write_old(target)
    p = subprocess.run([sys.executable, "-c", WRITER, str(target), swap],
                       env=edge_env(**{atomic.KILL_AT_ENV: kill_at}), capture_output=True,
                       timeout=60)
    assert p.returncode == (-9 if kill_at else 0), p.stderr.decode()
    want = {f"f{i}": "old" for i in range(2)} if expected == "old" else \
        {f"f{i}": "new" for i in range(3)}
    assert _tree(target) == want
    leftovers = [q.name for q in tmp_path.iterdir() if q.name != "RUN"]
    assert bool(leftovers) == bool(kill_at), leftovers
    assert all(q.startswith(".RUN.") for q in leftovers)
    # The next writer of RUN (any process) removes what the dead one left.
    atomic.replace_folder(target, lambda t: (t / "f0").write_text("next"))
    assert [q.name for q in tmp_path.iterdir()] == ["RUN"] and _tree(target) == {"f0": "next"}


def test_a_live_writers_temporaries_are_left_alone(tmp_path):
    live = tmp_path / f".RUN.{os.getppid()}.abc.tmp"
    dead = tmp_path / ".RUN.999999999.abc.old"
    other = tmp_path / ".RUNX.999999999.abc.tmp"
    for d in (live, dead, other):
        d.mkdir()
    assert atomic.clean_stale(tmp_path / "RUN") == [dead]
    assert live.exists() and other.exists()


def test_a_fill_that_fails_leaves_the_target_and_nothing_beside_it(tmp_path):
    target = tmp_path / "RUN"
    _write_old(target)

    def fail(t: Path) -> None:
        (t / "f0").write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic.replace_folder(target, fail)
    assert _tree(target) == {"f0": "old", "f1": "old"} and len(list(tmp_path.iterdir())) == 1


def test_scratch_folders_of_dead_exports_are_removed_at_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    dead = tmp_path / "edge-ad-export-999999999-x1"
    live = tmp_path / f"edge-ad-export-{os.getppid()}-x2"
    legacy = tmp_path / "edge-ad-export-abcdef"    # no pid: not ours to judge
    for d in (dead, live, legacy):
        d.mkdir()
    with atomic.scratch_dir("edge-ad-export") as work:
        assert work.parent == tmp_path and work.name.startswith(f"edge-ad-export-{os.getpid()}-")
        assert not dead.exists() and live.exists() and legacy.exists()
    assert not work.exists()


@pytest.mark.fault
def test_train_force_killed_before_the_swap_keeps_the_old_run_and_the_next_train_cleans(
        tiny_plant, trained_run, tmp_path):
    import shutil

    run = tmp_path / "RUN"
    shutil.copytree(trained_run.path, run)
    before = {f.name: f.read_bytes() for f in run.iterdir()}
    args = [sys.executable, "-m", "edge", "-q", "train", str(tiny_plant), "--out", str(run),
            "--force", "--epochs", "1", "--cache", str(tmp_path / "cache")]
    p = subprocess.run(args, env=edge_env(**{atomic.KILL_AT_ENV: "filled"}),
                       capture_output=True, timeout=300)
    assert p.returncode == -9, p.stderr.decode()
    assert {f.name: f.read_bytes() for f in run.iterdir()} == before
    assert [q for q in tmp_path.iterdir() if q.name.startswith(".RUN.")]
    p = subprocess.run(args, env=edge_env(), capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".RUN.")]
    assert json.loads((run / "train.json").read_text()) != json.loads(before["train.json"])


def test_calibration_history_keeps_the_last_n(tmp_path):
    from test_bundle import _write

    b = tmp_path / "b"
    _write(b)
    for i in range(5):
        t = fit_gamma([1.0 + i, 1.2, 0.9, 1.1, 1.3, 0.95, 1.05], p=0.1)
        bundle = rewrite_thresholds(b, {"model_int8.tflite": t}, record={"i": i}, keep=2)
    history = bundle.manifest["calibrations"]
    assert [h["i"] for h in history] == [3, 4]
    kept = sorted(p.name for p in b.iterdir() if p.name.startswith(("manifest.", "threshold."))
                  and p.name not in ("manifest.json", "threshold.json"))
    assert kept == sorted([h["previous_manifest"] for h in history]
                          + [h["previous_threshold"] for h in history])


def test_the_exchange_path_really_exchanges_where_the_kill_tests_run(tmp_path):
    """The "exchange" kill tests above prove the exchange only where renameat2 works: here
    (CI's file system) it must, or those tests silently repeat the rename case."""
    a, b = tmp_path / "a", tmp_path / "b"
    _write_old(a)
    b.mkdir()
    (b / "new").write_text("new")
    if not atomic.exchange(a, b):
        if in_ci():
            pytest.fail("renameat2(RENAME_EXCHANGE) unavailable: the exchange tests prove nothing")
        pytest.skip("renameat2(RENAME_EXCHANGE) unavailable on this file system")
    assert _tree(a) == {"new": "new"} and _tree(b) == {"f0": "old", "f1": "old"}
