"""``edge-ad features``: the .npy it writes equals edge.features.clip_features of the
recording; a bad file gives a clear message and a non-zero exit, and leaves no output."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import soundfile as sf

from edge import features
from edge.cli import main

DATA = Path(__file__).parent / "data" / "mimii-valve"
NAMES = ["normal_00000000_2s.wav", "abnormal_00000000_2s.wav"]


@pytest.fixture()
def recordings(tmp_path: Path) -> list[Path]:
    paths = []
    for name in NAMES:
        shutil.copy(DATA / name, tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def _expected(path: Path, channel: int = 0) -> np.ndarray:
    _, pcm = scipy.io.wavfile.read(path)  # an independent reader of the 8-channel file
    return features.clip_features(pcm[:, channel] / np.float32(32768))


def test_writes_one_npy_per_file_equal_to_clip_features(recordings: list[Path],
                                                        tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"
    assert main(["features", *map(str, recordings), "--out", str(out)]) == 0
    for path in recordings:
        got = np.load(out / (path.stem + ".npy"))
        assert got.dtype == np.float32 and got.shape == (59, 640)
        assert np.array_equal(got, _expected(path))
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".npy" for p in recordings)


def test_channel_and_mix_options_and_default_output_next_to_the_file(recordings: list[Path]) -> None:
    assert main(["features", str(recordings[0]), "--channel", "5"]) == 0
    got = np.load(recordings[0].with_suffix(".npy"))
    assert np.array_equal(got, _expected(recordings[0], channel=5))
    assert main(["features", str(recordings[1]), "--mix"]) == 0
    _, pcm = scipy.io.wavfile.read(recordings[1])
    mixed = features.clip_features((pcm.mean(axis=1) / 32768).astype(np.float32))
    assert np.abs(np.load(recordings[1].with_suffix(".npy")) - mixed).max() < 1e-4


def test_bad_file_exits_2_names_it_and_leaves_no_output(recordings: list[Path], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio at all\n" * 100)
    out = tmp_path / "out"
    code = main(["features", str(recordings[0]), str(bad), str(recordings[1]), "--out", str(out),
                 "--json"])
    assert code == 2
    captured = capsys.readouterr()
    assert "broken.wav: not a readable audio file" in captured.err
    summary = json.loads(captured.out)
    assert [e["path"] for e in summary["errors"]] == [str(bad)]
    assert [o["shape"] for o in summary["outputs"]] == [[59, 640], [59, 640]]
    # the good files are complete, the bad one has no output and no temporary file is left
    assert sorted(p.name for p in out.iterdir()) == sorted(p.stem + ".npy" for p in recordings)
    assert np.array_equal(np.load(out / (recordings[1].stem + ".npy")), _expected(recordings[1]))


def test_bad_file_keeps_an_earlier_output_intact(tmp_path: Path) -> None:
    bad = tmp_path / "clip.wav"
    sf.write(bad, np.zeros(100, np.int16), 16000)   # too short for one context window
    previous = tmp_path / "clip.npy"
    np.save(previous, np.ones((3, 640), np.float32))
    assert main(["features", str(bad)]) == 2
    assert np.array_equal(np.load(previous), np.ones((3, 640), np.float32))


def test_two_inputs_with_one_output_name_are_refused_before_any_work(tmp_path: Path,
                                                                     capsys) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in "ab":
        shutil.copy(DATA / NAMES[0], tmp_path / d / "x.wav")
    code = main(["features", str(tmp_path / "a/x.wav"), str(tmp_path / "b/x.wav"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert "would both be written to" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_command_reports_a_missing_file_without_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "edge", "features", str(tmp_path / "gone.wav")],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(
                              Path(__file__).resolve().parents[1])))
    assert done.returncode == 2
    assert "gone.wav: no such file" in done.stderr
    assert "Traceback" not in done.stderr
