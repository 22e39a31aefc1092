"""``edge-ad calibrate`` through the ALSA file-plugin card: the refitted cutoffs equal
scipy's gamma fit of independently computed window scores, the bundle still verifies, and
the previous manifest and thresholds are kept inside it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats as scipy_stats  # a dev dependency (the reference fit): never skipped

from edge import backends, reference
from edge.bundle import load_bundle
from edge.scoring import clip_score
from edge.stream import window_vectors
from runtime_support import (ALSA_CONF, SR, copy_bundle, edge_ad, edge_env, load_trained_run,
                             normal_audio)
from ci_env import in_ci

if not in_ci():
    pytest.importorskip("alsaaudio")


def _expected_scores(audio: np.ndarray, model_path, n_window: int) -> np.ndarray:
    """Non-overlapping windows of the streaming (unpadded) features, numpy reference."""
    frames = reference.logmel_frames_unpadded(audio.astype(np.float64) / 32768.0)
    vecs = reference.context_vectors(frames).astype(np.float32)
    model = backends.load(model_path)
    k = len(vecs) // n_window
    return np.array([clip_score(w, model.run(w)) for w in np.split(vecs[:k * n_window], k)])


@pytest.mark.slow
def test_calibrate_refits_every_cutoff_like_scipy_and_keeps_the_previous_files(
        bundle, trained_run, tmp_path):
    run = load_trained_run(trained_run)
    # 80 s of one machine's normal operation; the site is quieter than the training plant
    # (another microphone gain), so the cutoff moves.
    audio = (normal_audio(run, 80.0, quiet=False) * 0.5).astype(np.int16)
    raw = tmp_path / "site.raw"
    audio.astype("<i2").tofile(raw)
    target = copy_bundle(bundle, tmp_path / "bundle")
    old_manifest = (target / "manifest.json").read_bytes()
    old_threshold = (target / "threshold.json").read_bytes()
    before = load_bundle(target)

    env = edge_env(ALSA_CONFIG_PATH=str(ALSA_CONF), EDGE_AD_ALSA_RAW=str(raw))
    minutes = len(audio) / SR / 60
    r = edge_ad("calibrate", "--device", "hw:1", "--model", str(target), "--minutes", f"{minutes:.6f}",
                "--p", "0.1", "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    result = json.loads(r.stdout)

    after = load_bundle(target)  # hashes and spec digest verify
    n_window = window_vectors(10.0)
    for name in after.models:
        expected = _expected_scores(audio, target / name, n_window)
        assert result["models"][name]["n_scores"] == len(expected) == 8 * 160000 // (512 * n_window)
        shape, loc, scale = scipy_stats.gamma.fit(expected, floc=0)
        cutoff = scipy_stats.gamma.ppf(0.9, shape, loc=0, scale=scale)
        t = after.threshold_for(name)
        assert t.cutoff == pytest.approx(cutoff, rel=1e-4)
        assert t.shape == pytest.approx(shape, rel=1e-3) and t.p == 0.1 and t.loc == 0.0
        assert t.cutoff != pytest.approx(before.threshold_for(name).cutoff, rel=1e-3)
        r = result["models"][name]
        assert r["observed_fpr_new"] == pytest.approx(np.mean(expected > t.cutoff))
        assert r["observed_fpr_previous"] == pytest.approx(
            np.mean(expected > before.threshold_for(name).cutoff))
        lo, hi = (scipy_stats.binom.ppf([0.025, 0.975], len(expected), 0.1) / len(expected))
        assert r["expected_fraction_interval"] == pytest.approx([lo, hi])
        assert r["at_p"] == (lo <= r["observed_fpr_new"] <= hi) and ("warning" in r) != r["at_p"]
    entry = after.manifest["calibrations"][-1]
    assert (target / entry["previous_manifest"]).read_bytes() == old_manifest
    assert (target / entry["previous_threshold"]).read_bytes() == old_threshold
    assert entry["previous_manifest"] in after.manifest["files"]
    assert entry["source"] == "hw:1"
    # Model files are untouched, byte for byte.
    for name in after.models:
        assert after.manifest["files"][name] == before.manifest["files"][name]

    # A second calibration keeps both histories, and run accepts the bundle.
    r = edge_ad("calibrate", "--device", "hw:1", "--model", str(target), "--minutes",
                f"{minutes:.6f}", "--backend", "tflite", "--precision", "int8", env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    again = load_bundle(target)
    assert len(again.manifest["calibrations"]) == 2
    assert sum(name.startswith("manifest.2") for name in again.manifest["files"]) == 2
    assert again.threshold_for("model_int8.onnx") == after.threshold_for("model_int8.onnx")


def test_calibrate_dry_run_and_too_short_a_recording_leave_the_bundle_alone(bundle, trained_run, tmp_path):
    from runtime_support import write_wav

    run = load_trained_run(trained_run)
    wav = write_wav(tmp_path / "n.wav", normal_audio(run, 70.0, quiet=False))
    target = copy_bundle(bundle, tmp_path / "bundle")
    snapshot = {p.name: p.read_bytes() for p in target.iterdir()}
    r = edge_ad("calibrate", "--device", str(wav), "--fast", "--model", str(target), "--minutes", "1.1",
                "--dry-run")
    assert r.returncode == 0, r.stderr.decode()
    assert "would write" in r.stdout.decode()
    r = edge_ad("calibrate", "--device", str(wav), "--fast", "--model", str(target), "--minutes", "0.5")
    assert r.returncode == 2 and "expected at least 6" in r.stderr.decode()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == snapshot


def test_calibration_report_warns_when_the_windows_are_not_one_gamma():
    """Two machine states in one recording: a gamma over both puts far more (or fewer)
    than p of the windows above its cutoff; the report says so, and is quiet for one state."""
    from edge.calibration import calibration_report
    from edge.threshold import fit_gamma

    rng = np.random.default_rng(0)
    steady = rng.gamma(50, 0.002, 300)
    mixed = np.r_[rng.gamma(400, 0.00025, 240), rng.gamma(400, 0.0005, 60)]
    old = fit_gamma(steady, p=0.1)
    for scores, warn in ((steady, False), (mixed, True)):
        new = fit_gamma(scores, p=0.1)
        r = calibration_report({"m": scores}, {"m": new}, {"m": old})["m"]
        frac = np.mean(scores > new.cutoff)
        lo, hi = scipy_stats.binom.ppf([0.025, 0.975], len(scores), 0.1) / len(scores)
        assert r["observed_fpr_new"] == pytest.approx(frac)
        assert r["at_p"] == (lo <= frac <= hi) == (not warn)
        assert ("warning" in r) == warn
