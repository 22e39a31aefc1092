"""The reliability suite of issue 13: a corpus of broken and hostile inputs through every
command that reads them, and alert delivery across broker outages and ``kill -9``.

Every corpus case is one ``bad_input``; it is handled cleanly when the command either
works or refuses with its documented exit code (2 bad input, 4 bundle, 5 device, 6 output)
and exactly one ``error:`` line, and nothing escapes as an exception. The fault tests
elsewhere (test_run_faults, test_spool_safety, test_atomic, test_export_bundle) are marked
``fault``; conftest counts both kinds and prints the summary README quotes.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from edge.cli import main
from runtime_support import (bundle_dir, copy_bundle, edge_ad, load_trained_run,
                             make_anomalous, normal_audio, write_wav)
from test_mqtt_alerts import Broker, Subscriber, free_port, needs_broker, wait_for

SR = 16000
CLEAN_CODES = {0, 2, 4, 5, 6}


def _handled(capsys: pytest.CaptureFixture[str], *argv: str) -> int:
    """Run ``edge-ad argv`` in this process; assert it was handled cleanly."""
    try:
        rc = main(list(argv))
    except SystemExit as e:          # argparse's own refusals
        rc = e.code
    err = capsys.readouterr().err
    assert rc in CLEAN_CODES, err
    assert "Traceback" not in err
    if rc != 0:
        assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    return rc


# --- recordings -------------------------------------------------------------------------------
def _wav(rate: int = SR, channels: int = 1, bits: int = 16, fmt: int = 1,
         data: bytes | None = None, data_size: int | None = None,
         riff_size: int | None = None, fmt_size: int = 16) -> bytes:
    if data is None:
        data = (np.random.default_rng(0).standard_normal(SR * 2) * 3000).astype("<i2").tobytes()
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt_chunk + b"data"
            + struct.pack("<I", len(data) if data_size is None else data_size) + data)
    return b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body


def _float_wav(values: np.ndarray) -> bytes:
    return _wav(fmt=3, bits=32, data=values.astype("<f4").tobytes())


_rng = np.random.default_rng(7)
_noise = (_rng.standard_normal(SR * 2) * 0.1).astype(np.float32)
RECORDINGS: dict[str, Callable[[Path], None]] = {
    "empty": lambda p: p.write_bytes(b""),
    "one-byte": lambda p: p.write_bytes(b"R"),
    "riff-only": lambda p: p.write_bytes(b"RIFF"),
    "header-only": lambda p: p.write_bytes(_wav(data=b"")),
    "random-bytes": lambda p: p.write_bytes(_rng.bytes(4096)),
    "riff-wave-random": lambda p: p.write_bytes(b"RIFF\x00\x10\x00\x00WAVE" + _rng.bytes(4096)),
    "rate-0": lambda p: p.write_bytes(_wav(rate=0)),
    "rate-1": lambda p: p.write_bytes(_wav(rate=1)),
    "rate-100": lambda p: p.write_bytes(_wav(rate=100)),
    "rate-999": lambda p: p.write_bytes(_wav(rate=999)),
    "rate-384001": lambda p: p.write_bytes(_wav(rate=384001)),
    "rate-2e9": lambda p: p.write_bytes(_wav(rate=2_000_000_000)),
    "channels-0": lambda p: p.write_bytes(_wav(channels=0)),
    "channels-65535": lambda p: p.write_bytes(_wav(channels=65535)),
    "channels-100": lambda p: p.write_bytes(_wav(channels=100)),
    "bits-7": lambda p: p.write_bytes(_wav(bits=7)),
    "bits-0": lambda p: p.write_bytes(_wav(bits=0)),
    "unknown-format-tag": lambda p: p.write_bytes(_wav(fmt=0x9999)),
    "data-size-past-end": lambda p: p.write_bytes(_wav(data_size=10 ** 8)),
    "data-size-max": lambda p: p.write_bytes(_wav(data_size=0xFFFFFFFF)),
    "riff-size-small": lambda p: p.write_bytes(_wav(riff_size=12)),
    "fmt-size-past-end": lambda p: p.write_bytes(_wav(fmt_size=100000)),
    "too-short": lambda p: p.write_bytes(_wav(data=b"\x01\x00" * 100)),
    "odd-data-bytes": lambda p: p.write_bytes(_wav(data=b"\x01\x00" * SR + b"\x07")),
    "float-nan": lambda p: p.write_bytes(_float_wav(np.where(np.arange(SR * 2) == SR, np.nan, _noise))),
    "float-inf": lambda p: p.write_bytes(_float_wav(np.where(np.arange(SR * 2) == 5, np.inf, _noise))),
    "float-1e30": lambda p: p.write_bytes(_float_wav(_noise * 1e31)),
    "all-zero": lambda p: p.write_bytes(_wav(data=bytes(SR * 4))),
    "text-named-wav": lambda p: p.write_text("not audio\n" * 100),
    "flac-magic-garbage": lambda p: p.write_bytes(b"fLaC" + _rng.bytes(2048)),
    "folder-named-wav": lambda p: p.mkdir(),
    "symlink-loop": lambda p: p.symlink_to(p.name),
    "dangling-symlink": lambda p: p.symlink_to("missing.wav"),
    "fifo": lambda p: os.mkfifo(p),
    "missing": lambda p: None,
}


# Odd but usable audio (SPEC 1: a silent clip is valid; libsndfile reads the rest as audio):
# it must work (exit 0). Everything else in RECORDINGS must be refused with exit 2; a change
# that starts accepting one of them, or refusing one of these, fails the corpus.
USABLE = {"all-zero", "bits-7", "float-1e30", "odd-data-bytes", "riff-size-small"}


def expected_code(name: str, command: str) -> int:
    if name in USABLE or (name == "too-short" and command == "run"):
        return 0        # run on too little audio: no decision, a warning, exit 0
    return 2


@pytest.mark.bad_input
@pytest.mark.parametrize("command", ["score", "features", "run"])
@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_a_broken_recording_is_handled_cleanly(name, command, bundle, tmp_path, capsys):
    path = tmp_path / "rec.wav"
    RECORDINGS[name](path)
    if name == "fifo" and command != "features":
        # A FIFO with no writer: reading would wait for one. The commands refuse it before
        # opening; keep a writer ready anyway so a regression shows as a failure, not a hang.
        fd = os.open(path, os.O_RDWR)
    else:
        fd = None
    try:
        argv = {"score": ["score", str(bundle_dir(bundle)), str(path)],
                "features": ["features", str(path), "--out", str(tmp_path / "f")],
                "run": ["run", "--device", str(path), "--fast", "--model",
                        str(bundle_dir(bundle)), "--window", "1s", "--json-out",
                        str(tmp_path / "d.jsonl")]}[command]
        assert _handled(capsys, *argv) == expected_code(name, command)
    finally:
        if fd is not None:
            os.close(fd)


# --- bundles ----------------------------------------------------------------------------------
def _manifest(change: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        m = change(json.loads((b / "manifest.json").read_text()))
        (b / "manifest.json").write_text(m if isinstance(m, str) else json.dumps(m))
    return apply


def _replace(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(b: Path) -> None:
        (b / name).unlink()
        make(b / name)
    return apply


BUNDLES: dict[str, Callable[[Path], None]] = {
    "manifest-missing": lambda b: (b / "manifest.json").unlink(),
    "manifest-not-json": lambda b: (b / "manifest.json").write_text("{"),
    "manifest-binary": lambda b: (b / "manifest.json").write_bytes(b"\xff\xfe\x00"),
    "manifest-array": _manifest(lambda m: []),
    "manifest-schema-2": _manifest(lambda m: {**m, "schema_version": 2}),
    "manifest-files-string": _manifest(lambda m: {**m, "files": "x"}),
    "manifest-files-null": _manifest(lambda m: {**m, "files": None}),
    "manifest-entry-null": _manifest(lambda m: {**m, "files": {**m["files"], "threshold.json": None}}),
    "manifest-bytes-string": _manifest(lambda m: {**m, "files": {
        **m["files"], "threshold.json": {**m["files"]["threshold.json"], "bytes": "12"}}}),
    "manifest-path-escape": _manifest(lambda m: {**m, "files": {**m["files"], "../../etc/passwd": m["files"]["threshold.json"]}}),
    "manifest-models-empty": _manifest(lambda m: {**m, "models": {}}),
    "manifest-nested-200000": _manifest(lambda m: "[" * 200000 + "]" * 200000),
    "manifest-5mb": _manifest(lambda m: json.dumps(m) + " " * (5 << 20)),
    "threshold-symlink": _replace("threshold.json", lambda p: p.symlink_to("/etc/hostname")),
    "model-fifo": _replace("model_int8.tflite", os.mkfifo),
    "model-folder": _replace("model_int8.tflite", lambda p: p.mkdir()),
    "model-truncated": lambda b: (b / "model_int8.tflite").write_bytes(
        (b / "model_int8.tflite").read_bytes()[:100]),
    "unlisted-model": lambda b: shutil.copy(b / "model_int8.tflite", b / "extra.tflite"),
    "spec-edited": lambda b: (b / "feature_spec.json").write_text(
        (b / "feature_spec.json").read_text().replace("16000", "8000")),
    "threshold-edited": lambda b: (b / "threshold.json").write_text("{}"),
    "not-a-folder": lambda b: (shutil.rmtree(b), b.write_text("x")),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("name", sorted(BUNDLES))
def test_a_damaged_or_hostile_bundle_is_refused_cleanly(name, bundle, tmp_path, capsys):
    b = copy_bundle(bundle, tmp_path / "b")
    BUNDLES[name](b)
    wav = write_wav(tmp_path / "x.wav", np.zeros(SR * 2, np.int16))
    # A path that is no folder is a wrong argument (2); everything else a damaged bundle (4).
    assert _handled(capsys, "score", str(b), str(wav)) == (2 if name == "not-a-folder" else 4)


# --- RUN folders ------------------------------------------------------------------------------
class _Hostile:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _edit_json(name: str, change: Callable[[object], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        (run / name).write_text(json.dumps(change(json.loads((run / name).read_text()))))
    return apply


RUNS: dict[str, Callable[[Path], None]] = {
    "model-random": lambda r: (r / "model.pt").write_bytes(np.random.default_rng(1).bytes(5000)),
    "model-pickle-with-code": lambda r: (r / "model.pt").write_bytes(pickle.dumps(_Hostile())),
    "model-empty": lambda r: (r / "model.pt").write_bytes(b""),
    "model-folder": lambda r: ((r / "model.pt").unlink(), (r / "model.pt").mkdir()),
    "model-json-huge-layer": _edit_json("model.json", lambda m: {**m, "hidden": [10 ** 9]}),
    "model-json-negative": _edit_json("model.json", lambda m: {**m, "bottleneck": -3}),
    "model-json-string": _edit_json("model.json", lambda m: "model"),
    "clips-json-list": _edit_json("clips.json", lambda m: []),
    "clips-json-no-root": _edit_json("clips.json", lambda m: {"clips": m["clips"]}),
    "scores-json-bad-score": _edit_json("scores.json", lambda m: {**m, "clips": [{"path": "x"}]}),
    "threshold-json-garbage": lambda r: (r / "threshold.json").write_text("[1, 2"),
    "spec-json-nested": lambda r: (r / "feature_spec.json").write_text("[" * 100000 + "]" * 100000),
    "train-json-missing": lambda r: (r / "train.json").unlink(),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_damaged_or_hostile_run_is_refused_cleanly(name, trained_run, tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    shutil.copytree(trained_run.path, run)
    RUNS[name](run)
    assert _handled(capsys, "export", str(run), "--out", str(tmp_path / "bundle")) == 2
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "bundle").exists()


# --- options ----------------------------------------------------------------------------------
OPTIONS = [
    ("run", "--threads", "100000"), ("run", "--threads", "0"), ("run", "--threads", "x"),
    ("run", "--max-seconds", "inf"), ("run", "--max-seconds", "nan"),
    ("run", "--max-seconds", "-5"), ("run", "--window", "1" + "0" * 400),
    ("run", "--every", "0"), ("run", "--every", "1e3"), ("run", "--heartbeat", "-1"),
    ("run", "--alarm", "0/0"), ("run", "--alarm", "9/99999999999"),
    ("run", "--spool-max-events", "0"), ("run", "--no-signal-ptp", "-7"),
    ("run", "--no-signal-clip", "nan"), ("run", "--mqtt", "http://x"),
    ("run", "--mqtt", "mqtt://h:99999"), ("run", "--mqtt-password-file", "/nonexistent"),
    ("score", "--threads", "100000"), ("score", "--channel", "-1"),
    ("calibrate", "--minutes", "inf"), ("calibrate", "--p", "1.5"),
    ("calibrate", "--keep-history", "-1"), ("calibrate", "--window", "0.001s"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("command, option, value", OPTIONS)
def test_a_bad_option_value_is_refused_cleanly(command, option, value, bundle, tmp_path, capsys):
    wav = write_wav(tmp_path / "x.wav", (np.random.default_rng(0).standard_normal(SR * 3)
                                         * 3000).astype(np.int16))
    b = str(bundle_dir(bundle))
    argv = {"run": ["run", "--device", str(wav), "--fast", "--model", b],
            "score": ["score", b, str(wav)],
            "calibrate": ["calibrate", "--device", str(wav), "--fast", "--model", b,
                          "--minutes", "0.05", "--dry-run"]}[command]
    if option == "--mqtt-password-file":
        argv += ["--mqtt", f"mqtt://127.0.0.1:{free_port()}", "--spool", str(tmp_path / "s")]
    assert _handled(capsys, *argv, option, value) != 0


# --- datasets ---------------------------------------------------------------------------------
DATASETS: dict[str, Callable[[Path], None]] = {
    "file-symlink-loop": lambda d: ((d / "fan/id_00/normal/a.wav").symlink_to("b.wav"),
                                    (d / "fan/id_00/normal/b.wav").symlink_to("a.wav")),
    "dangling-link": lambda d: (d / "fan/id_00/normal/gone.wav").symlink_to("/nonexistent.wav"),
    "folder-named-wav": lambda d: (d / "fan/id_00/normal/x.wav").mkdir(),
    "text-named-wav": lambda d: (d / "fan/id_00/normal/00000999.wav").write_text("no"),
    "rate-1-clip": lambda d: (d / "fan/id_00/normal/00000998.wav").write_bytes(_wav(rate=1)),
    "no-audio": lambda d: [shutil.rmtree(p) for p in d.iterdir()],
}
# A folder that merely ends in .wav is not a recording: it is passed over, training works.
DATASET_WORKS = {"folder-named-wav"}


@pytest.mark.bad_input
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_broken_dataset_is_refused_cleanly(name, tiny_plant, tmp_path, capsys):
    plant = tmp_path / "plant"
    shutil.copytree(tiny_plant, plant)
    DATASETS[name](plant)
    assert _handled(capsys, "train", str(plant), "--out", str(tmp_path / "run"), "--epochs",
                    "1", "--cache", str(tmp_path / "cache"), "--jobs", "1") == \
        (0 if name in DATASET_WORKS else 2)
    assert (tmp_path / "run").exists() == (name in DATASET_WORKS)


# --- alert delivery across outages and kills --------------------------------------------------
@pytest.fixture(scope="module")
def delivery_audio(trained_run, tmp_path_factory):
    run = load_trained_run(trained_run)
    tmp = tmp_path_factory.mktemp("delivery")
    normal = normal_audio(run, 8.0)
    fault = make_anomalous(normal_audio(run, 8.0, skip=2), seed=4)
    return {"mixed": write_wav(tmp / "mixed.wav", np.concatenate([normal, fault, normal])),
            "fault": write_wav(tmp / "fault.wav", fault),
            "normal": write_wav(tmp / "normal.wav", normal)}


@needs_broker
@pytest.mark.fault
def test_every_alert_event_is_delivered_across_broker_outages_and_kill_9(bundle, delivery_audio,
                                                                        tmp_path, reliability):
    import subprocess
    import sys

    from runtime_support import edge_env

    port = free_port()
    # The consumer keeps a persistent session on a broker that persists it: what the broker
    # accepted while the consumer was reconnecting is queued for it, as in production. (With
    # neither, an event the broker took before the test's subscriber came back was dropped
    # by the broker, a loss of the test harness, not of edge-ad.)
    broker = Broker(tmp_path, port, persistent=True)
    spool = tmp_path / "spool"
    base = ["run", "--fast", "--model", str(bundle_dir(bundle)), "--window", "2s",
            "--mqtt", f"mqtt://127.0.0.1:{port}", "--mqtt-topic", "rel", "--spool", str(spool),
            "--heartbeat", "1h"]
    sub = None
    try:
        broker.start()
        sub = Subscriber(port, "rel", persistent=True)
        assert sub.connected.wait(10)
        for phase in ("up", "down", "down-kill", "up-again", "bounce"):
            if phase == "down":
                broker.stop()
                wait_for(lambda: not sub.connected.is_set(), 10, "the subscriber to see the outage")
            if phase == "up-again":
                broker.start()
                assert sub.connected.wait(10)
            if phase == "down-kill":
                before = set(spool.glob("*.alarm_start.json"))   # the last phase's
                p = subprocess.Popen([sys.executable, "-m", "edge", *base, "--device",
                                      str(delivery_audio["fault"]), "--loop"],
                                     env=edge_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                try:
                    wait_for(lambda: set(spool.glob("*.alarm_start.json")) - before, 60,
                             "this run's alarm_start")
                finally:
                    p.kill()
                    p.wait(10)
                continue
            if phase == "bounce":
                # The broker goes away and comes back while a run is sending.
                p = subprocess.Popen([sys.executable, "-m", "edge", *base, "--device",
                                      str(delivery_audio["mixed"]), "--loop"],
                                     env=edge_env(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
                try:
                    n0 = len(sub.events())
                    wait_for(lambda: len(sub.events()) > n0, 30, "a live event")
                    broker.stop()
                    wait_for(lambda: not sub.connected.is_set(), 10, "the subscriber to see the outage")
                    time.sleep(1.0)
                    broker.start()
                    assert sub.connected.wait(10)
                    time.sleep(2.0)
                finally:
                    p.terminate()
                    p.wait(10)
                continue
            r = edge_ad(*base, "--device", str(delivery_audio["mixed"]), timeout=60)
            assert r.returncode == 0, r.stderr.decode()
        # Whatever the bounce left spooled goes out with the next start.
        r = edge_ad(*base, "--device", str(delivery_audio["normal"]), timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        wait_for(lambda: not list(spool.glob("*.json")), 30, "the spool to empty")
        state = json.loads((spool / "spool.state").read_text())
        sent = state["next_seq"] - 1          # every seq ever given out, none reused
        time.sleep(0.5)
        got = [e["seq"] for e in sub.events()]
        delivered = set(got) & set(range(1, sent + 1))
        # Counted before the checks, so a failing run reports its real loss in the summary.
        reliability["events_sent"] += sent
        reliability["events_delivered"] += len(delivered)
        reliability["events_lost"] += sent - len(delivered)
        assert set(got) == set(range(1, sent + 1)), sorted(set(got))
        assert list(dict.fromkeys(got)) == sorted(delivered)     # in order
        kinds = [e["type"] for e in sub.events()]
        assert "alarm_end" in kinds and any(e.get("reason") == "restart" for e in sub.events())
    finally:
        if sub is not None:
            sub.close()
        broker.stop()
