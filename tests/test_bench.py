"""edge-ad bench: its peers compute the same features, and its accuracy figures are the
metrics of independently computed scores. (Speed is measured there, never asserted here.)"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from edge import reference
from edge.spec import DEFAULT_SPEC
from train import bench


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(3 * 16000) / 16000
    return (0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_numpy_peer_matches_the_reference_frames(clip):
    got = bench.numpy_logmel_frames(clip, spec=DEFAULT_SPEC)
    want = reference.logmel_frames(clip, DEFAULT_SPEC)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-3


def test_librosa_peer_matches_the_reference_frames(clip):
    got = bench.librosa_logmel_frames(clip, spec=DEFAULT_SPEC)
    want = reference.logmel_frames(clip, DEFAULT_SPEC)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-3


def test_time_calls_returns_one_time_per_repeat():
    calls = []
    t = bench.time_calls(lambda: calls.append(1), repeat=7, warmup=2)
    assert len(calls) == 9 and t.shape == (7,) and np.all(t >= 0)


@pytest.mark.slow
def test_bench_json_reports_every_variant_with_metrics_of_independent_scores(trained_run, bundle, tmp_path):
    png = tmp_path / "bench.png"
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "-q", "bench", "--model", str(trained_run.path),
         "--model", str(bundle.path), "--json", "--quick", "--plot", str(png),
         "--out", str(tmp_path / "bench.json")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert json.loads((tmp_path / "bench.json").read_text()) == result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.png"]  # no temporaries
    assert set(result["accuracy"]) == set(bench.VARIANTS)
    assert set(result["latency"]) == set(bench.VARIANTS)
    assert result["machine"]["cores"] >= 1 and result["machine"]["cpu"]
    cpuinfo = open("/proc/cpuinfo").read()
    listed = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines()
                   if line.split(":")[0].strip() in ("flags", "Features")), [])
    assert result["machine"]["flags"] == [f for f in bench.KERNEL_FLAGS if f in listed]
    assert "sse2" in listed or "asimd" in listed or "neon" in listed    # the parse found the line
    for name, lat in result["latency"].items():
        assert (lat["vector"]["batch"], lat["decision"]["batch"], lat["decision_cold"]["batch"]) == (1, 31, 31), name
        assert lat["clip"]["batch"] == len(trained_run.vectors(trained_run.clips_in("test")[0]))
    peers = {"onnx": ("onnx float", "onnx int8"), "tflite": ("tflite float", "tflite int8"),
             "c": ("tflite float", "c int8"), "c vs tflite int8": ("tflite int8", "c int8")}
    assert set(result["int8_speedup"]) == set(peers)
    for key, (ref, fast) in peers.items():
        for kind, ratio in result["int8_speedup"][key].items():
            lat = result["latency"]
            assert ratio == pytest.approx(lat[ref][kind]["p50"] / lat[fast][kind]["p50"])

    # Torch float AUC: recompute the scores here, straight from the model, and ask sklearn.
    test = trained_run.clips_in("test")
    labels = [c.is_anomaly for c in test]
    with torch.no_grad():
        scores = []
        for c in test:
            x = trained_run.vectors(c)
            r = trained_run.model(torch.from_numpy(x)).numpy()
            scores.append(float(((r.astype(np.float64) - x) ** 2).sum() / x.size))
    got = result["accuracy"]["torch float"]
    np.testing.assert_allclose(got["scores"], scores, rtol=1e-5)
    assert got["table"]["overall"]["auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)

    # Each exported model file: scores recomputed here through its runtime, AUC by sklearn.
    from edge import backends
    from edge.scoring import clip_score

    for name in bench.VARIANTS[1:]:
        fmt, precision = name.split()
        # the C int8 network is LiteRT's int8 model on edge-ad's kernel: scored here by LiteRT
        # (whose XNNPACK kernels round ~1 output in 40,000 the other way, hence 1e-4)
        model = backends.load(bundle.path / f"model_{precision}.{'tflite' if fmt == 'c' else fmt}",
                              num_threads=1)
        mine = [clip_score(trained_run.vectors(c), model.run(trained_run.vectors(c))) for c in test]
        np.testing.assert_allclose(result["accuracy"][name]["scores"], mine,
                                   rtol=1e-4 if fmt == "c" else 1e-5, err_msg=name)
        assert result["accuracy"][name]["table"]["overall"]["auc"] == pytest.approx(
            roc_auc_score(labels, mine), abs=1e-9), name

    # int8 sizes are about a quarter of float, the edge process decided on the recording.
    sizes = result["sizes"]
    assert 0.2 < sizes["tflite int8"] / sizes["tflite float"] < 0.4
    edge = result["edge_process"]
    assert math.isfinite(edge["peak_rss_mib"]) and edge["peak_rss_mib"] > 0   # measured, not judged
    # --quick joins 120 s of test clips; a 10 s window every 1 s decides at 11, 12, ... 120 s.
    assert edge["audio_s"] == pytest.approx(120.0)
    assert edge["decisions"] == 120 - 10
    assert edge["backend"] == "c int8" and result["edge_process_tflite"]["decisions"] == 110
    assert all(result["latency"][n]["decision"]["p50"] > 0 for n in bench.VARIANTS)
    assert result["frontend"]["c"]["hop"]["p50"] > 0
    assert result["c_stream"]["hop"]["p50"] > 0 and result["c_stream"]["hop_bare"]["n"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_times_each_variant_in_bursts_and_the_decision_once_more_one_call_each_in_turn():
    calls = []

    def runner(name):
        return lambda batch: calls.append((name, len(batch))) or batch

    variants = [bench.Variant(n, runner(n), 0.0, None, None) for n in ("a", "b")]
    lat = bench.bench_latency(variants, np.zeros((40, 4), np.float32), repeat_vector=6,
                              repeat_clip=4, decision=3, burst=2)
    # warm-up, then rounds: each variant one untimed call and a burst of 2 timed ones
    vector = [c for c in calls if c[1] == 1]
    assert vector == [("a", 1)] * 20 + [("b", 1)] * 20 + ([("a", 1)] * 3 + [("b", 1)] * 3) * 3
    clip = [c for c in calls if c[1] == 40]
    assert clip == [("a", 40)] * 3 + [("b", 40)] * 3 + ([("a", 40)] * 3 + [("b", 40)] * 3) * 2
    # the decision batch: bursts, then one call of each in turn for decision_cold
    decision = [c for c in calls if c[1] == 3]
    assert decision[-8:] == [("a", 3), ("b", 3)] * 4
    assert decision[:-8] == [("a", 3)] * 3 + [("b", 3)] * 3 + ([("a", 3)] * 3 + [("b", 3)] * 3) * 2
    for name in ("a", "b"):
        assert [lat[name][k]["n"] for k in ("vector", "decision", "clip", "decision_cold")] == [6, 4, 4, 4]
        assert lat[name]["decision_cold"]["batch"] == 3


def test_render_prints_one_row_per_variant_and_the_machine():
    fake = {"machine": {"cpu": "cpu", "cores": 2, "system": "Linux", "python": "3.11", "versions": {}},
            "accuracy": {}, "latency": {}}
    for name in ("torch float", "tflite int8"):
        fake["latency"][name] = {k: {"p50": 1e-4, "p99": 2e-4} for k in ("vector", "decision", "clip")}
        fake["accuracy"][name] = {"table": {"overall": {"auc": 0.9, "pauc": 0.5, "pauc_mcclish": 0.7,
                                                        "tpr": 0.5, "fpr": 0.1},
                                            "per_id": {"id_00": {"auc": 0.9}}}}
    text = bench.render(fake)
    assert "torch float" in text and "tflite int8" in text and "cpu, 2 cores" in text
    assert "id_00" in text


def test_cpu_flags_reads_x86_and_arm_cpuinfo():
    x86 = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\nCPU part\t: 0xd08\n"
    assert bench.cpu_flags(x86) == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni"]
    assert bench.cpu_flags(arm) == ["asimd", "asimddp"]
    assert bench.cpu_flags("model name: something\n") == []
