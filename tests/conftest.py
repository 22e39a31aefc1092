"""Shared session fixtures. Others append their own below; keep these fast (seconds)."""
from __future__ import annotations

import pytest

from ci_env import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 (CI: no skips)

TINY_IDS = (0, 2)
TINY_NORMAL = 16
TINY_ABNORMAL = 6
TINY_DURATION = 3.0      # seconds; 3 s gives 93 frames, 89 context vectors per clip
TINY_SEED = 0


@pytest.fixture(scope="session")
def tiny_plant(tmp_path_factory):
    """A small synthetic plant in MIMII layout: ``<root>/fan/id_{00,02}/{normal,abnormal}/``,
    16 normal and 6 abnormal clips of 3 s per ID. Returns the root folder (a Path)."""
    from train.synth import write_plant

    root = tmp_path_factory.mktemp("tiny_plant")
    write_plant(root, machine="fan", ids=TINY_IDS, n_normal=TINY_NORMAL, n_abnormal=TINY_ABNORMAL,
                seed=TINY_SEED, duration=TINY_DURATION, progress=False)
    return root


@pytest.fixture(scope="session")
def feature_cache_dir(tmp_path_factory):
    """A session-wide feature cache folder (tests never write to ~/.cache)."""
    return tmp_path_factory.mktemp("feature_cache")


@pytest.fixture(scope="session")
def trained_run(tiny_plant, feature_cache_dir, tmp_path_factory):
    """A model trained for a few epochs on ``tiny_plant``: a ``train.runs.Run`` (``.path`` is
    the RUN folder). Read-only for tests: copy it before changing anything."""
    from train.fit import Recipe
    from train.pipeline import train_run

    out = tmp_path_factory.mktemp("trained") / "run"
    return train_run(tiny_plant, out, recipe=Recipe(epochs=4, seed=TINY_SEED, threads=1),
                     cache_dir=feature_cache_dir, jobs=1, progress=False)


@pytest.fixture(scope="session")
def bundle(trained_run, tmp_path_factory):
    """``edge-ad export`` of ``trained_run`` with the defaults (float and int8, TFLite and
    ONNX): a verified ``edge.bundle.Bundle`` (``.path`` is the folder). Read-only for tests:
    copy it before changing anything. Takes ~10 s (TensorFlow import and conversion)."""
    from edge.bundle import load_bundle
    from train.export import export_run

    out = tmp_path_factory.mktemp("export") / "bundle"
    export_run(trained_run, out)
    return load_bundle(out)


# --- reliability tally (issue 13) ----------------------------------------------------------------
# Tests marked ``bad_input`` (one hostile or broken input each) and ``fault`` (one injected
# fault each: a kill, a full disk, a signal, a broker outage, a shared spool) are counted
# as they run, and the alert-delivery scenario adds its events; the summary line at the
# end of the run is what README's "Reliability" section reports.
RELIABILITY: dict[str, int] = {"inputs_tried": 0, "inputs_clean": 0, "faults_injected": 0,
                               "faults_survived": 0, "events_sent": 0, "events_delivered": 0,
                               "events_lost": 0}


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    for marker, tried, ok in (("bad_input", "inputs_tried", "inputs_clean"),
                              ("fault", "faults_injected", "faults_survived")):
        if marker in report.keywords:
            RELIABILITY[tried] += 1
            RELIABILITY[ok] += int(report.passed)


def pytest_terminal_summary(terminalreporter):
    r = RELIABILITY
    if not (r["inputs_tried"] or r["faults_injected"] or r["events_sent"]):
        return
    line = (f"reliability: bad inputs tried {r['inputs_tried']}, handled cleanly "
            f"{r['inputs_clean']}; faults injected {r['faults_injected']}, survived "
            f"{r['faults_survived']}; alert events sent {r['events_sent']}, delivered "
            f"{r['events_delivered']}, lost {r['events_lost']}")
    terminalreporter.write_sep("-", "reliability (README: Reliability)")
    terminalreporter.write_line(line)
    import json
    import os

    out = os.environ.get("EDGE_AD_RELIABILITY_JSON")
    if out:
        with open(out, "w") as f:
            json.dump(r, f, indent=1)


@pytest.fixture
def reliability():
    """The session's reliability tally (see RELIABILITY), for tests that count events."""
    return RELIABILITY
