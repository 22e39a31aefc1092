"""``edge-ad export`` on a trained run: parity, per-model cutoffs, metrics, the int8 gate,
determinism and a killed export. The session fixtures ``trained_run`` and ``bundle``
(tests/conftest.py) train once and export once for all these tests.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from edge.backends import load
from edge.bundle import load_bundle
from edge.cli import main
from edge.scoring import clip_score
from edge.threshold import fit_gamma

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _run(trained_run):
    from train.runs import load_run
    return trained_run if hasattr(trained_run, "clips") else load_run(trained_run)


def _scores(run, path, clips) -> np.ndarray:
    backend = load(path)
    return np.array([clip_score(run.vectors(c), backend.run(run.vectors(c))) for c in clips])


def _torch_scores(run, clips) -> np.ndarray:
    out = []
    with torch.no_grad():
        for c in clips:
            x = run.vectors(c)
            out.append(clip_score(x, run.model(torch.from_numpy(x)).numpy()))
    return np.array(out)


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


@pytest.fixture(scope="module")
def run(trained_run):
    return _run(trained_run)


@pytest.fixture(scope="module")
def held_out(run):
    return [c for c in run.clips if c.split in ("val", "test")]


def test_bundle_holds_float_and_int8_for_both_formats_and_verifies(bundle):
    assert bundle.models == ["model_float.onnx", "model_float.tflite", "model_int8.onnx",
                             "model_int8.tflite"]
    again = load_bundle(bundle.path, expected_spec=bundle.spec)
    assert again.manifest["files"] == bundle.manifest["files"]
    versions = bundle.manifest["versions"]
    assert {"edge_ad", "torch", "tensorflow", "onnxruntime", "numpy"} <= set(versions)
    assert bundle.manifest["gate"]["passed"] is True
    assert bundle.manifest["gate"]["limits"]["max_auc_drop"] == 0.01
    assert set(bundle.manifest["gate"]["agreement"]) == {"onnx", "tflite"}


def test_each_model_file_has_a_cutoff_refitted_on_its_own_validation_scores(run, bundle):
    val = [c for c in run.clips_in("val") if not c.is_anomaly]
    assert run.info["cutoff_on"] == "val"
    for name in bundle.models:
        expected = fit_gamma(_scores(run, bundle.path / name, val), p=run.threshold.p)
        got = bundle.threshold_for(name)
        assert got.cutoff == pytest.approx(expected.cutoff, rel=1e-9)
        assert got.n_scores == len(val) and got.p == run.threshold.p
        fpr = bundle.manifest["models"][name]["observed_fpr"]
        for split in ("train", "val", "test"):
            normal = [c for c in run.clips_in(split) if not c.is_anomaly]
            s = _scores(run, bundle.path / name, normal)
            assert fpr[split] == pytest.approx(np.mean(s > got.cutoff)), (name, split)


def test_manifest_metrics_per_id_equal_scikit_learn_on_the_models_own_scores(run, bundle):
    test = run.clips_in("test")
    p = run.threshold.p
    for name in ("model_int8.tflite", "model_float.onnx"):
        scores = _scores(run, bundle.path / name, test)
        table = bundle.manifest["models"][name]["metrics"]["test"]["per_id"]
        for id_ in sorted({c.id for c in test}):
            sel = np.array([c.id == id_ for c in test])
            y = np.array([c.is_anomaly for c in test])[sel]
            assert table[id_]["auc"] == pytest.approx(roc_auc_score(y, scores[sel]), abs=1e-12)
            assert table[id_]["pauc_mcclish"] == pytest.approx(
                roc_auc_score(y, scores[sel], max_fpr=p), abs=1e-9)


def test_onnx_float_scores_equal_torch_within_1e_5_relative_on_held_out_clips(run, bundle,
                                                                              held_out):
    np.testing.assert_allclose(_scores(run, bundle.model_path("onnx", "float"), held_out),
                               _torch_scores(run, held_out), rtol=1e-5)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_int8_clip_scores_correlate_with_float_at_least_0_9999_on_held_out_clips(run, bundle,
                                                                                held_out, fmt):
    f = _scores(run, bundle.model_path(fmt, "float"), held_out)
    q = _scores(run, bundle.model_path(fmt, "int8"), held_out)
    assert np.corrcoef(f, q)[0, 1] >= 0.9999
    reported = bundle.manifest["models"][f"model_int8.{fmt}"]["score_correlation_held_out"]
    assert reported == pytest.approx(np.corrcoef(f, q)[0, 1], abs=1e-9)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_int8_model_file_is_about_a_quarter_of_float(bundle, fmt):
    f = bundle.model_path(fmt, "float").stat().st_size
    q = bundle.model_path(fmt, "int8").stat().st_size
    assert 0.2 <= q / f <= 0.35
    assert bundle.manifest["files"][f"model_int8.{fmt}"]["bytes"] == q


def test_same_export_twice_gives_identical_model_bytes_even_in_another_process(run, bundle,
                                                                              tmp_path):
    subprocess.run([sys.executable, "-m", "edge", "-q", "export", str(run.path), "--out",
                    str(tmp_path / "again")], check=True, cwd=ROOT, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    first, second = _snapshot(bundle.path), _snapshot(tmp_path / "again")
    for name in [*bundle.models, "threshold.json", "feature_spec.json"]:
        assert first[name] == second[name], name


@pytest.mark.fault
def test_killed_export_leaves_the_previous_bundle_untouched(run, bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle.path, target)
    before = _snapshot(target)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EDGE_AD_BUNDLE_WRITE_DELAY": "60"}
    proc = subprocess.Popen([sys.executable, "-m", "edge", "-q", "export", str(run.path),
                             "--out", str(target), "--formats", "onnx"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        partial = []
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.glob(".bundle.*.tmp") if any(p.iterdir())]
            if partial:
                break
            time.sleep(0.2)
        assert partial, f"export never started writing: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)       # mid-write: one file in, the rest to come
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(target) == before
    assert load_bundle(target).manifest == bundle.manifest


def test_json_summary_of_a_float_only_export_lists_sizes_and_skips_the_gate(run, tmp_path, capsys):
    out = tmp_path / "float-only"
    assert main(["export", str(run.path), "--out", str(out), "--formats", "onnx", "--float",
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "ok" and summary["bundle"] == str(out.absolute())
    assert [n for n, m in summary["models"].items() if m["shipped"]] == ["model_float.onnx"]
    assert summary["models"]["model_float.onnx"]["bytes"] == (out / "model_float.onnx").stat().st_size
    assert summary["gate"]["checked"] == 0
    assert load_bundle(out).models == ["model_float.onnx"]


def test_json_mode_reports_an_error_status_for_bad_input(tmp_path, capsys):
    code = main(["export", str(tmp_path / "no-run"), "--out", str(tmp_path / "b"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 2 and out["status"] == "error" and out["exit_code"] == 2
    assert "no-run" in out["error"] and not (tmp_path / "b").exists()


def test_parity_table_reports_the_manifest_figures_per_model(bundle):
    from train.export.report import markdown, parity_rows

    rows = {r["model"]: r for r in parity_rows(bundle.manifest)}
    assert sorted(rows) == bundle.models
    q = rows["model_int8.tflite"]
    m = bundle.manifest["models"]["model_int8.tflite"]
    assert q["reference"] == "model_float.tflite" and q["correlation"] == m["score_correlation_held_out"]
    assert q["size_ratio"] == pytest.approx(m["bytes"] / bundle.manifest["files"]["model_float.tflite"]["bytes"])
    drops = bundle.manifest["gate"]["drops"]["tflite"]["test"]
    assert q["max_auc_drop"] == max(d["auc_drop"] for d in drops.values())
    assert rows["model_float.onnx"]["reference"] == "torch"
    assert len(markdown(bundle.manifest).splitlines()) == 2 + 4
