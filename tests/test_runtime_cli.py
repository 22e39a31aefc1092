"""``edge-ad run`` and ``edge-ad score`` as a user runs them, on the trained bundle.

Uses the session fixtures ``trained_run`` (train side) and ``bundle`` (its export).
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from edge.errors import EXIT_BUNDLE_INVALID, EXIT_DEVICE
from edge.scoring import clip_score
from runtime_support import (ALSA_CONF, bundle_dir, copy_bundle, edge_ad, edge_env, lines,
                             load_trained_run, make_anomalous, normal_audio, quiet_normal_clips,
                             run_score, write_wav)

FIELDS = {"time", "monotonic", "stream_seconds", "score", "cutoff", "anomaly", "alarm",
          "window_seconds", "vectors", "dropped_samples", "overruns", "short_reads", "reopens",
          "no_signal", "model"}


@pytest.fixture(scope="module")
def plant(trained_run, tmp_path_factory):
    """normal (20 s of the quietest normal clips) + anomalous (10 s) as WAVs and arrays."""
    run = load_trained_run(trained_run)
    tmp = tmp_path_factory.mktemp("plant")
    normal = normal_audio(run, 20.0)
    anomalous = make_anomalous(normal_audio(run, 10.0, skip=3))
    return {"run": run, "normal": normal, "anomalous": anomalous,
            "normal_wav": write_wav(tmp / "normal.wav", normal),
            "mixed_wav": write_wav(tmp / "mixed.wav", np.concatenate([normal, anomalous, normal]))}


def test_run_on_a_file_writes_one_complete_json_line_per_step(bundle, plant, tmp_path):
    out = tmp_path / "d.jsonl"
    r = edge_ad("run", "--device", str(plant["mixed_wav"]), "--fast", "--model", str(bundle_dir(bundle)),
                "--window", "5s", "--every", "1s", "--json-out", str(out))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == b""  # --json-out takes the lines; logs go to stderr
    ds = lines(out.read_text())
    assert all(set(d) == FIELDS for d in ds)
    # The model version: the sha256 of the bundle's manifest, which lists every file's.
    import hashlib
    version = hashlib.sha256((bundle_dir(bundle) / "manifest.json").read_bytes()).hexdigest()
    assert {d["model"] for d in ds} == {version}
    # 50 s of audio, a decision each second once the 5 s window (153 vectors) is full.
    assert [d["stream_seconds"] for d in ds] == [float(s) for s in range(6, 51)]
    assert all(d["vectors"] == 153 and d["window_seconds"] == 5.0 for d in ds)
    assert all(b["monotonic"] >= a["monotonic"] for a, b in zip(ds, ds[1:]))
    assert all(d["anomaly"] == (d["score"] > d["cutoff"]) for d in ds)
    # The anomalous stretch is 20..30 s: windows inside it alarm, windows of normal sound do not.
    by_t = {d["stream_seconds"]: d for d in ds}
    assert all(by_t[t]["alarm"] for t in (25.0, 30.0))
    assert not any(by_t[t]["alarm"] for t in (6.0, 10.0, 20.0, 36.0, 50.0))
    assert "stopped at the end of the source" in r.stderr.decode()
    # Independently: numpy reference features of the whole signal, the window that ends at
    # each decision, the bundle's int8 model on it in one batch (LiteRT), SPEC 4's A(X).
    # The run used the C int8 network (the default), which equals LiteRT's reference
    # kernels bit for bit; LiteRT's default XNNPACK kernels round about 1 int8 output in
    # 40,000 one step the other way, up to ~2e-5 of a window's score.
    from edge import backends, reference

    audio = np.concatenate([plant["normal"], plant["anomalous"], plant["normal"]])
    vecs = reference.context_vectors(reference.logmel_frames_unpadded(audio / 32768.0)).astype(np.float32)
    model = backends.load(bundle_dir(bundle) / "model_int8.tflite")
    for d in ds[::7]:
        end = 1 + (int(d["stream_seconds"] * 16000) - 1024) // 512 - 4  # vectors complete by then
        x = vecs[end - 153:end]
        assert d["score"] == pytest.approx(clip_score(x, model.run(x)), rel=1e-4)


def test_max_seconds_stops_there_and_says_so(bundle, plant):
    r = edge_ad("run", "--device", str(plant["mixed_wav"]), "--fast", "--model",
                str(bundle_dir(bundle)), "--window", "5s", "--every", "1s", "--max-seconds", "12")
    assert r.returncode == 0, r.stderr.decode()
    assert [d["stream_seconds"] for d in lines(r.stdout)] == [float(s) for s in range(6, 13)]
    assert "stopped at --max-seconds 12 after 12.0 s of audio" in r.stderr.decode()


def test_a_missing_bundle_folder_is_bad_input_not_a_failed_verification(tmp_path):
    r = edge_ad("run", "--device", "-", "--model", str(tmp_path / "nope"))
    assert r.returncode == 2
    assert f"{tmp_path / 'nope'}: does not exist; expected a bundle folder" in r.stderr.decode()


def test_stdin_and_file_sources_give_the_same_decisions(bundle, plant):
    model = str(bundle_dir(bundle))
    args = ("--model", model, "--window", "4s", "--every", "2s")
    a = edge_ad("run", "--device", str(plant["mixed_wav"]), "--fast", *args)
    b = edge_ad("run", "--device", "-", *args, input=np.concatenate(
        [plant["normal"], plant["anomalous"], plant["normal"]]).astype("<i2").tobytes())
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    da, db = lines(a.stdout), lines(b.stdout)
    assert len(da) == len(db) > 10
    for x, y in zip(da, db):
        assert x["stream_seconds"] == y["stream_seconds"] and x["score"] == y["score"]
        assert x["alarm"] == y["alarm"]


def test_edge_run_imports_neither_torch_nor_scipy(bundle, plant):
    code = (
        "import sys, json\n"
        "from edge.cli import main\n"
        f"rc = main(['run', '--device', {str(plant['normal_wav'])!r}, '--fast', '--model', "
        f"{str(bundle_dir(bundle))!r}, '--window', '2s', '--json-out', '/dev/null'])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'scipy', 'tensorflow', 'sklearn', 'librosa', 'train'))\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'n': len(sys.modules)}))\n")
    r = subprocess.run([sys.executable, "-c", code], env=edge_env(), capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()
    result = json.loads(r.stdout.decode().splitlines()[-1])
    assert result["rc"] == 0
    assert result["heavy"] == []


@pytest.mark.parametrize("backend", ["onnx", "tflite"])
def test_score_with_the_float_model_equals_the_training_side_score(bundle, trained_run, backend):
    run = load_trained_run(trained_run)
    clips = quiet_normal_clips(run, 2) + [c for c in run.clips if c.label == "anomaly"][:2]
    r = edge_ad("score", str(bundle_dir(bundle)), *[str(c.path) for c in clips],
                "--backend", backend, "--precision", "float", "--json")
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads(r.stdout)
    assert doc["model"] == f"model_float.{backend}"
    for clip, got in zip(clips, doc["clips"]):
        x = run.vectors(clip)
        with torch.no_grad():
            recon = run.model(torch.from_numpy(x)).numpy()
        torch_score = clip_score(x, recon)
        assert got["score"] == pytest.approx(torch_score, rel=1e-4)
        assert got["score"] == pytest.approx(run_score(run, clip), rel=1e-4)
        assert got["anomaly"] == (got["score"] > doc["cutoff"])


def test_score_int8_decisions_use_the_int8_cutoff(bundle, plant, tmp_path):
    from edge.bundle import load_bundle

    b = load_bundle(bundle_dir(bundle))
    anomalous = write_wav(tmp_path / "a.wav", plant["anomalous"])
    r = edge_ad("score", str(b.path), str(plant["normal_wav"]), str(anomalous), "--json")
    doc = json.loads(r.stdout)
    assert doc["cutoff"] == b.threshold_for("model_int8.tflite").cutoff
    assert [c["anomaly"] for c in doc["clips"]] == [False, True]


def test_score_reports_a_bad_file_and_still_scores_the_others(bundle, plant, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    r = edge_ad("score", str(bundle_dir(bundle)), str(bad), str(plant["normal_wav"]), "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert [c["path"] for c in doc["clips"]] == [str(plant["normal_wav"])]
    assert "bad.wav: not a readable audio file" in r.stderr.decode()


@pytest.mark.parametrize("command", ["run", "score"])
def test_a_bundle_failing_verification_refuses_to_start(bundle, plant, tmp_path, command):
    broken = copy_bundle(bundle, tmp_path / "b")
    t = broken / "threshold.json"
    text = t.read_text()
    i = text.index('"cutoff": ') + len('"cutoff": ') + 3
    # A cutoff edited by hand, same length: only the hash can tell.
    t.write_text(text[:i] + str((int(text[i]) + 1) % 10) + text[i + 1:])
    if command == "run":
        r = edge_ad("run", "--device", str(plant["normal_wav"]), "--fast", "--model", str(broken))
    else:
        r = edge_ad("score", str(broken), str(plant["normal_wav"]))
    assert r.returncode == EXIT_BUNDLE_INVALID
    err = r.stderr.decode()
    assert "threshold.json" in err and "sha256" in err
    assert r.stdout == b""


def test_a_missing_capture_device_exits_with_the_device_code(bundle, tmp_path):
    env = edge_env(ALSA_CONFIG_PATH=str(ALSA_CONF), EDGE_AD_ALSA_RAW=str(tmp_path / "gone.raw"))
    r = edge_ad("run", "--device", "hw:3", "--model", str(bundle_dir(bundle)), env=env)
    assert r.returncode == EXIT_DEVICE
    assert "hw:3: cannot open capture device" in r.stderr.decode()
    r = edge_ad("run", "--device", "hw:3", "--model", str(bundle_dir(bundle)), "--window", "0s", env=env)
    assert r.returncode == 2 and "--window '0s'" in r.stderr.decode()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_finishes_the_current_decision_flushes_and_exits_0(bundle, plant, tmp_path, sig):
    out = tmp_path / "d.jsonl"
    # Real-time pace: the process is mid-stream when the signal comes.
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--device", str(plant["normal_wav"]),
                             "--model", str(bundle_dir(bundle)), "--window", "1s",
                             "--every", "0.25s", "--json-out", str(out)],
                            env=edge_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
            time.sleep(0.05)
        assert out.exists() and len(out.read_text().splitlines()) >= 3, "no decisions before the signal"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    text = out.read_text()
    assert text.endswith("\n")  # the last line is whole
    ds = lines(text)
    assert ds[-1]["stream_seconds"] < 20.0  # stopped early, not at the end of the file
    steps = np.diff([d["stream_seconds"] for d in ds])
    assert np.allclose(steps, 0.25)
    assert f"stopped on {sig.name}" in err.decode()
