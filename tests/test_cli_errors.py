"""Bad input a plant engineer would hit, through the real ``edge-ad`` entry point: one
line naming the file or value and what was expected, exit code 2 (4 for a bundle that
fails verification), no traceback, no partial output and no earlier output lost.

Most cases call ``edge.cli.main`` in this process (an uncaught exception would fail the
test just as a traceback would show); one runs the console command to see its stderr."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from edge.cli import COMMANDS, build_parser, main
from edge.errors import EXIT_BAD_INPUT
from edge.spec import DEFAULT_SPEC
from runtime_support import bundle_dir, edge_ad

SR = 16000


def _fail(capsys: pytest.CaptureFixture[str], *argv: str, code: int = EXIT_BAD_INPUT) -> str:
    """Run ``edge-ad argv``; assert the exit code and a single error line; return it."""
    try:
        rc = main(list(argv))
    except SystemExit as e:          # argparse's own refusals
        rc = e.code
    err = capsys.readouterr().err
    assert rc == code, err
    errors = [l for l in err.splitlines() if "error:" in l]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    return errors[0]


def _wav(path: Path, seconds: float = 3.0) -> Path:
    rng = np.random.default_rng(0)
    sf.write(str(path), (rng.standard_normal(int(seconds * SR)) * 3000).astype(np.int16), SR,
             subtype="PCM_16")
    return path


def _truncated(tmp_path: Path) -> Path:
    whole = _wav(tmp_path / "whole.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole[:3000])
    return cut


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")) if folder.exists() else []


# --- help -----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_of_every_command_shows_an_example_and_every_default(command, capsys):
    parser, modules = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices[command]
    assert "example" in (p.epilog or ""), f"edge-ad {command} --help has no example"
    for action in p._actions:
        if (not action.option_strings or action.required or action.help == argparse.SUPPRESS
                or isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction,
                                       argparse._StoreFalseAction, argparse._VersionAction))):
            continue
        assert "default" in (action.help or ""), f"edge-ad {command} {action.option_strings[0]}"
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0 and "example" in capsys.readouterr().out


# --- train ----------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "-1", "a whole number >= 1"),
    ("--epochs", "0", "a whole number >= 1"),
    ("--threads", "0", "expected 1 to"),
    ("--lr", "-1", "a number > 0"),
    ("--hidden", "abc", "expected positive sizes like 128,128"),
    ("--hidden", "0,5", "expected positive sizes like 128,128"),
])
def test_train_names_a_bad_option_value_and_what_was_expected(option, value, expected, tmp_path,
                                                              capsys):
    line = _fail(capsys, "train", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 option, value)
    assert option in line and value in line and expected in line
    assert not (tmp_path / "run").exists()


def test_train_into_a_folder_that_cannot_be_written_is_refused_before_any_work(tiny_plant,
                                                                               tmp_path, capsys):
    line = _fail(capsys, "train", str(tiny_plant), "--out", "/proc/edge-ad-test/run")
    assert "/proc/edge-ad-test/run" in line and "cannot write" in line
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _fail(capsys, "train", str(tiny_plant), "--out", str(blocker / "run"))
    assert str(blocker) in line and "not a folder" in line
    assert blocker.read_text() == "not a folder"


# --- synth ----------------------------------------------------------------------------------
@pytest.mark.parametrize("machine", ["../escaped", "", "a/b", ".."])
def test_synth_refuses_a_machine_name_that_is_not_one_folder(machine, tmp_path, capsys):
    out = tmp_path / "plant"
    line = _fail(capsys, "synth", str(out), "--machine", machine, "--normal", "1",
                 "--abnormal", "0", "--duration", "1", "--ids", "0")
    assert f"--machine {machine!r}" in line and "plain folder name" in line
    assert _files(tmp_path) == []


@pytest.mark.parametrize("option, value, expected", [
    ("--normal", "0", "expected at least 1 normal clip"),
    ("--abnormal", "-1", "expected 0 or more abnormal clips"),
    ("--jobs", "0", "expected at least 1 process"),
    ("--snr", "nan", "expected a ratio from -40 to 60 dB"),
])
def test_synth_names_the_bad_count(option, value, expected, tmp_path, capsys):
    line = _fail(capsys, "synth", str(tmp_path / "plant"), option, value)
    assert f"{option} {value}" in line and expected in line
    assert not (tmp_path / "plant").exists()


def test_synth_and_demo_refuse_an_output_they_cannot_write(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    line = _fail(capsys, "synth", "/proc/edge-ad-test/plant", "--normal", "1", "--abnormal", "0")
    assert "/proc/edge-ad-test/plant" in line and "cannot write" in line
    line = _fail(capsys, "demo", "--out", str(blocker))
    assert str(blocker) in line and "not a folder" in line
    line = _fail(capsys, "demo", "--out", "/proc/edge-ad-test/demo")
    assert "/proc/edge-ad-test/demo" in line and "cannot write" in line
    assert blocker.read_text() == "keep me"


# --- evaluate, export -----------------------------------------------------------------------
def test_evaluate_refuses_a_report_folder_it_cannot_write_before_scoring(trained_run, tmp_path,
                                                                        capsys):
    blocker = tmp_path / "report.txt"
    blocker.write_text("earlier notes")
    line = _fail(capsys, "evaluate", str(trained_run.path), "--report", str(blocker))
    assert str(blocker) in line and "not a folder" in line
    assert blocker.read_text() == "earlier notes"


def test_export_refuses_a_bundle_folder_it_cannot_write(trained_run, capsys):
    line = _fail(capsys, "export", str(trained_run.path), "--out", "/proc/edge-ad-test/bundle")
    assert "/proc/edge-ad-test/bundle" in line and "cannot write" in line


# --- features -------------------------------------------------------------------------------
def test_features_on_a_folder_says_so_and_creates_no_output_folder(tmp_path, capsys):
    (tmp_path / "recordings").mkdir()
    out = tmp_path / "features"
    line = _fail(capsys, "features", str(tmp_path / "recordings"), "--out", str(out))
    assert str(tmp_path / "recordings") in line and "is a folder" in line
    assert not out.exists()


def test_features_refuses_an_output_folder_it_cannot_write(tmp_path, capsys):
    clip = _wav(tmp_path / "clip.wav")
    line = _fail(capsys, "features", str(clip), "--out", "/proc/edge-ad-test/features")
    assert "/proc/edge-ad-test/features" in line and "cannot write" in line


# --- run, calibrate -------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, expected", [
    ("--max-seconds", "-1", "expected seconds above 0"),
    ("--max-seconds", "0", "expected seconds above 0"),
    ("--heartbeat", "-1", "expected a duration"),
    ("--spool-max-events", "0", "expected at least 1"),
    ("--window", "0", "expected a duration above 0"),
    ("--every", "abc", "expected a duration such as"),
    ("--alarm", "5/3", "expected K/N with 1 <= K <= N"),
    ("--alarm", "3/100000000000", "expected K/N with 1 <= K <= N <= 86400"),
])
def test_run_refuses_a_bad_option_without_mqtt_before_opening_anything(option, value, expected,
                                                                       tmp_path, capsys):
    line = _fail(capsys, "run", "--device", str(tmp_path / "none.wav"), "--model",
                 str(tmp_path / "no-bundle"), option, value)
    assert value in line and expected in line


def test_run_and_calibrate_refuse_a_truncated_recording_naming_it(bundle, tmp_path, capsys):
    cut = _truncated(tmp_path)
    work = tmp_path / "bundle"
    shutil.copytree(bundle_dir(bundle), work)
    before = {p.name: p.read_bytes() for p in work.iterdir()}
    for argv in (["run", "--device", str(cut), "--model", str(work), "--fast"],
                 ["calibrate", "--device", str(cut), "--model", str(work), "--minutes", "1",
                  "--fast"]):
        line = _fail(capsys, *argv)
        assert str(cut) in line and "truncated" in line
    assert {p.name: p.read_bytes() for p in work.iterdir()} == before


def test_run_with_a_folder_as_device_says_it_is_a_folder_not_an_alsa_device(bundle, tmp_path,
                                                                            capsys):
    line = _fail(capsys, "run", "--device", str(tmp_path), "--model", str(bundle_dir(bundle)),
                 "--fast")
    assert f"--device {tmp_path}: is a folder" in line


# --- bench ----------------------------------------------------------------------------------
def test_bench_checks_recording_and_outputs_before_measuring(trained_run, bundle, tmp_path, capsys):
    line = _fail(capsys, "bench", "--model", str(trained_run.path), "--quick",
                 "--recording", str(tmp_path / "missing.wav"))
    assert "--recording" in line and "needs a BUNDLE" in line
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    line = _fail(capsys, "bench", "--model", str(bundle_dir(bundle)), "--quick",
                 "--recording", str(junk))
    assert str(junk) in line and "not a readable audio file" in line
    for option in ("--plot", "--out"):
        target = tmp_path / "no-such-folder" / "result"
        line = _fail(capsys, "bench", "--model", str(trained_run.path), "--quick", option,
                     str(target))
        assert f"{option} {target}" in line and "existing folder" in line


# --- the console command ----------------------------------------------------------------------
def test_console_command_prints_one_line_for_a_truncated_recording(tmp_path):
    r = edge_ad("features", str(_truncated(tmp_path)), "--out", str(tmp_path / "out"))
    err = r.stderr.decode()
    assert r.returncode == EXIT_BAD_INPUT and "Traceback" not in err
    declared = 3 * SR * 2                  # 3 s of 16-bit mono
    holds = 3000 - 44                       # the bytes kept after the 44-byte WAV header
    assert [l for l in err.splitlines() if "error:" in l] == [
        f"edge-ad features: error: {tmp_path / 'cut.wav'}: truncated: header declares "
        f"{declared} data bytes, file holds {holds}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["features", "score", "train"])
def test_channel_and_mix_together_are_refused_as_contradictory(command, tmp_path, capsys):
    argv = {"features": ["features", str(tmp_path / "a.wav")],
            "score": ["score", str(tmp_path / "bundle"), str(tmp_path / "a.wav")],
            "train": ["train", str(tmp_path), "--out", str(tmp_path / "run")]}[command]
    line = _fail(capsys, *argv, "--channel", "3", "--mix")
    assert "--mix" in line and "not allowed with argument --channel" in line


def test_train_force_never_replaces_the_dataset_it_reads(tiny_plant, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_plant, data)
    before = {p: p.read_bytes() for p in _files(data) if p.is_file()}
    line = _fail(capsys, "train", str(data), "--out", str(data), "--force", "--epochs", "1")
    assert str(data) in line and "not a RUN folder" in line
    assert {p: p.read_bytes() for p in _files(data) if p.is_file()} == before


def test_run_and_calibrate_refuse_a_window_too_short_for_one_vector(bundle, tmp_path, capsys):
    clip = _wav(tmp_path / "clip.wav")
    for argv in (["run", "--device", str(clip), "--model", str(bundle_dir(bundle)), "--fast"],
                 ["calibrate", "--device", str(clip), "--model", str(bundle_dir(bundle)), "--fast",
                  "--minutes", "1", "--dry-run"]):
        line = _fail(capsys, *argv, "--window", "10ms")
        shortest = DEFAULT_SPEC.min_samples / DEFAULT_SPEC.sample_rate
        assert f"--window 0.01 s holds no context vector; expected at least {shortest:.3f} s" in line


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_evaluate_and_export_refuse_fewer_than_one_job(command, tmp_path, capsys):
    argv = [command, str(tmp_path / "run"), "--jobs", "0"]
    if command == "export":
        argv += ["--out", str(tmp_path / "bundle")]
    line = _fail(capsys, *argv)
    assert "--jobs 0: expected at least 1 process" in line
    assert _files(tmp_path) == []


@pytest.mark.parametrize("name", ["model.pt", "scores.json", "clips.json", "model.json",
                                  "feature_spec.json", "threshold.json"])
def test_a_damaged_run_file_is_named_by_evaluate_and_export(name, trained_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    damaged = run / name
    damaged.write_bytes(damaged.read_bytes()[:40])    # cut short, as by a full disk or a bad copy
    for argv in (["evaluate", str(run), "--no-report"],
                 ["export", str(run), "--out", str(tmp_path / "bundle")]):
        line = _fail(capsys, *argv)
        assert f"{damaged}: " in line
        if name in ("model.pt", "scores.json", "clips.json", "model.json"):
            assert "expected the file edge-ad train wrote" in line
        else:
            assert "not valid JSON" in line
    assert not (tmp_path / "bundle").exists() and not (run / "report").exists()


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_data_that_is_not_a_folder_is_refused_naming_it(command, trained_run, tmp_path, capsys):
    clip = _wav(tmp_path / "clip.wav")
    argv = [command, str(trained_run.path), "--data", str(clip)]
    if command == "export":
        argv += ["--out", str(tmp_path / "bundle")]
    line = _fail(capsys, *argv)
    assert f"--data {clip}: not a folder" in line
    assert not (tmp_path / "bundle").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("command, extra", [("train", "train"), ("evaluate", "train")])
def test_a_training_command_without_its_extra_is_one_line_naming_it(command, extra, tmp_path):
    """On a board without the train extra, torch cannot be imported: one line, exit 2."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from edge.cli import main; sys.exit(main())")
    args = [str(tmp_path / "data"), "--out", str(tmp_path / "run")] if command == "train" else [str(tmp_path)]
    proc = subprocess.run([sys.executable, "-c", code, command, *args], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'edge-ad[{extra}]'" in lines[0] and "torch" in lines[0]
