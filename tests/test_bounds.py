"""Bounds on what comes in (issue 13, defects 8, 9 and 10): sample rates and channel counts
refused before anything is allocated, long recordings streamed so memory does not follow
their length, bundles that are read only from their own regular files with a manifest of
checked types, hostile RUN files, symlink loops in a dataset, non-finite durations and
thread counts beyond the cores present: each one line and exit 2 (4 for a bundle)."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.audio import AudioStream, load
from edge.errors import EXIT_BUNDLE_INVALID
from edge.features import clip_features, stream_vectors
from edge.options import cores_present
from runtime_support import bundle_dir, copy_bundle, edge_env
from test_cli_errors import _fail

SR = 16000


def _wav_with_rate(path: Path, rate: int, n: int = 300_000) -> Path:
    """A PCM16 WAV whose header claims ``rate`` Hz (libsndfile itself refuses to write some)."""
    data = (np.random.default_rng(0).standard_normal(n) * 3000).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", len(data))
    path.write_bytes(header + data)
    return path


# --- defect 8: memory bombs ----------------------------------------------------------------------
@pytest.mark.bad_input
@pytest.mark.parametrize("rate", [1, 100, 999, 384_001, 2_000_000_000])
def test_a_sample_rate_outside_1k_to_384k_is_refused_before_reading(rate, bundle, tmp_path,
                                                                     capsys):
    wav = _wav_with_rate(tmp_path / "bomb.wav", rate)
    for argv in (["score", str(bundle_dir(bundle)), str(wav)],
                 ["features", str(wav), "--out", str(tmp_path / "f")],
                 ["run", "--device", str(wav), "--fast", "--model", str(bundle_dir(bundle))]):
        line = _fail(capsys, *argv)
        assert f"sample rate {rate} Hz" in line and "1000 to 384000 Hz" in line
    assert not (tmp_path / "f").exists()


def test_the_streamed_clip_equals_the_whole_clip_for_a_resampled_file(tmp_path):
    x = (np.random.default_rng(3).standard_normal(44100 * 4 + 7) * 0.1).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(str(path), x, 44100, subtype="FLOAT")
    whole = clip_features(load(path))
    stream = AudioStream(path, block=3000)
    assert stream.n_samples == len(load(path))
    got = np.concatenate(list(stream_vectors(stream, batch=5)))
    np.testing.assert_array_equal(got, whole)


TRACED = ("import atexit, sys, tracemalloc\n"
          "tracemalloc.start()\n"
          "atexit.register(lambda: sys.stderr.write('PEAK %d\\n' % tracemalloc.get_traced_memory()[1]))\n")


def _peak_traced_bytes(code: str, *args: str) -> int:
    """The largest live Python allocation total (``tracemalloc``, numpy buffers included)
    of a fresh interpreter running ``code``: what the code holds at once, independent of
    the allocator, the page cache and the machine's load."""
    p = subprocess.run([sys.executable, "-c", TRACED + code, *args], env=edge_env(),
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    err = p.stderr.decode()
    assert p.returncode == 0, err
    return int(err.rsplit("PEAK ", 1)[1].split()[0])


@pytest.mark.parametrize("command", ["score", "features", "cache"])
def test_what_score_features_and_the_training_cache_hold_does_not_follow_clip_length(
        command, bundle, tmp_path):
    rng = np.random.default_rng(1)
    peaks = {}
    for seconds in (120, 600):     # both past the 1024-vector batch (33 s) the stream holds
        wav = tmp_path / f"{seconds}.wav"
        sf.write(str(wav), (rng.standard_normal(seconds * SR) * 2000).astype(np.int16), SR,
                 subtype="PCM_16")
        cli = "from edge.cli import main; sys.exit(main(sys.argv[1:]))"
        run = {"score": (cli, "score", str(bundle_dir(bundle)), str(wav)),
               "features": (cli, "features", str(wav), "--out", str(tmp_path / "f")),
               "cache": ("from train.cache import _compute; "
                         "from edge.spec import DEFAULT_SPEC as s; "
                         "_compute(sys.argv[1], sys.argv[2], s.to_json(), 0, False)",
                         str(wav), str(tmp_path / f"{seconds}.npy"))}[command]
        peaks[seconds] = _peak_traced_bytes(*run)
    # Loaded whole, 8 more minutes are 15 MB of int16 samples, 31 MB as float32 and 38 MB
    # of vectors; streamed, what is held at once is a batch's worth, whatever the length.
    growth_mib = (peaks[600] - peaks[120]) / 2 ** 20
    assert growth_mib < 1, f"peak live allocations {peaks}: grew {growth_mib:.2f} MiB with 5x the audio"


# --- defect 9: symlinks and non-regular files in a bundle ---------------------------------------
@pytest.mark.bad_input
def test_a_symlinked_threshold_in_a_bundle_is_refused_even_with_matching_content(bundle, tmp_path,
                                                                                  capsys):
    b = copy_bundle(bundle, tmp_path / "b")
    outside = tmp_path / "elsewhere.json"
    shutil.copy(b / "threshold.json", outside)
    (b / "threshold.json").unlink()
    (b / "threshold.json").symlink_to(outside)        # same bytes: the hash would match
    line = _fail(capsys, "score", str(b), str(tmp_path / "x.wav"), code=EXIT_BUNDLE_INVALID)
    assert "threshold.json: is a symbolic link" in line


@pytest.mark.bad_input
def test_a_fifo_in_place_of_a_model_file_is_refused_without_blocking(bundle, tmp_path, capsys):
    b = copy_bundle(bundle, tmp_path / "b")
    (b / "model_int8.tflite").unlink()
    os.mkfifo(b / "model_int8.tflite")                 # reading it would block for ever
    line = _fail(capsys, "score", str(b), str(tmp_path / "x.wav"), code=EXIT_BUNDLE_INVALID)
    assert "model_int8.tflite: not a regular file" in line


# --- defect 10: manifests, RUN files, datasets, durations, threads ------------------------------
def _nested(depth: int) -> str:
    return '{"schema_version": 1, "files": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.bad_input
@pytest.mark.parametrize("change, expected", [
    (lambda m: {**m, "files": "model_int8.tflite"}, "files: expected a non-empty object"),
    (lambda m: {**m, "files": None}, "files: expected a non-empty object"),
    (lambda m: {**m, "files": {**m["files"], "threshold.json": "abc"}},
     "files['threshold.json']: expected an object"),
    (lambda m: {**m, "files": {**m["files"], "threshold.json": {"sha256": 5, "bytes": 1}}},
     "sha256: expected 64 lower-case hex digits"),
    (lambda m: {**m, "files": {**m["files"], "../x": m["files"]["threshold.json"]}},
     "expected a plain file name"),
    (lambda m: {**m, "models": []}, "models: expected a non-empty object"),
    (lambda m: {**m, "spec_digest": None}, "spec_digest: expected a string"),
    (lambda m: _nested(200_000), "nested deeper than 32 levels"),
    (lambda m: _nested(40), "nested deeper than 32 levels"),
    (lambda m: " " * (5 * 1024 * 1024), "expected at most"),
])
def test_a_manifest_of_the_wrong_shape_is_refused_with_exit_4(change, expected, bundle, tmp_path,
                                                              capsys):
    b = copy_bundle(bundle, tmp_path / "b")
    m = change(json.loads((b / "manifest.json").read_text()))
    (b / "manifest.json").write_text(m if isinstance(m, str) else json.dumps(m))
    line = _fail(capsys, "score", str(b), str(tmp_path / "x.wav"), code=EXIT_BUNDLE_INVALID)
    assert "manifest.json" in line and expected in line


class _Hostile:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


@pytest.mark.bad_input
@pytest.mark.parametrize("content", ["random", "pickle", "bigmodel"])
def test_a_random_or_hostile_run_file_is_exit_2_and_no_pickle_runs(content, trained_run,
                                                                   tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    if content == "random":
        (run / "model.pt").write_bytes(np.random.default_rng(0).bytes(4096))
        named = run / "model.pt"
    elif content == "pickle":
        (run / "model.pt").write_bytes(pickle.dumps({"weight": _Hostile()}))
        named = run / "model.pt"
    else:
        cfg = json.loads((run / "model.json").read_text())
        (run / "model.json").write_text(json.dumps({**cfg, "hidden": [10 ** 9]}))
        named = run / "model.json"
    line = _fail(capsys, "export", str(run), "--out", str(tmp_path / "bundle"))
    assert f"{named}: " in line and "weights_only=False" not in line
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "bundle").exists()


@pytest.mark.bad_input
def test_a_symlink_loop_in_a_dataset_is_named_not_a_traceback(tiny_plant, tmp_path, capsys):
    plant = tmp_path / "plant"
    shutil.copytree(tiny_plant, plant)
    normal = plant / "fan" / "id_00" / "normal"
    (normal / "up").symlink_to("..")                   # a folder loop: not walked into
    (normal / "a.wav").symlink_to("b.wav")
    (normal / "b.wav").symlink_to("a.wav")             # a file loop
    line = _fail(capsys, "train", str(plant), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert "a.wav: a symbolic link that leads nowhere" in line
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    line = _fail(capsys, "train", str(loop), "--out", str(tmp_path / "run"))
    assert str(loop) in line


@pytest.mark.bad_input
@pytest.mark.parametrize("option, value", [("--max-seconds", "inf"), ("--max-seconds", "nan"),
                                           ("--every", "9" * 400), ("--window", "1" + "0" * 400)])
def test_a_non_finite_duration_is_refused(option, value, tmp_path, capsys):
    line = _fail(capsys, "run", "--device", str(tmp_path / "none.wav"), "--model",
                 str(tmp_path / "no-bundle"), option, value)
    assert option in line


@pytest.mark.bad_input
@pytest.mark.parametrize("argv", [
    ["run", "--device", "x.wav", "--model", "b"], ["score", "b", "x.wav"],
    ["calibrate", "--device", "x.wav", "--model", "b", "--minutes", "1"],
    ["train", "plant", "--out", "r"]])
def test_threads_beyond_the_cores_present_are_refused_at_parse_time(argv, capsys):
    line = _fail(capsys, *argv, "--threads", "100000")
    assert "--threads" in line and f"expected 1 to {cores_present()}" in line
