"""``edge-ad run`` follows a bundle replaced under it (issue 11), as a real process fed on
stdin: an atomic swap to a new bundle switches models between two decisions with no
decision lost and none scored by both; a tampered bundle is refused (also on SIGHUP) while
the run goes on with the model it has; every decision names its model version, and the
MQTT events announce it.

The decisions are checked against fresh ``edge-ad run`` processes: before the switch,
equal to the old bundle's run over the same audio; after it, to the new bundle's run over
the audio from the second the new model started on.
"""
from __future__ import annotations

import hashlib
import json
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.atomic import replace_folder
from runtime_support import edge_ad, edge_env, lines, load_trained_run, normal_audio
from test_mqtt_alerts import Broker, Subscriber, free_port, needs_broker, wait_for

SR = 16000
WINDOW = ["--window", "2s"]


def _version(bundle: Path) -> str:
    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def other_bundle(trained_run, tmp_path_factory):
    """A second bundle of the same run: int8 calibrated on another sample (other weights
    scales, other cutoff), TFLite only."""
    out = tmp_path_factory.mktemp("other") / "bundle"
    r = edge_ad("-q", "export", str(trained_run.path), "--out", str(out), "--formats", "tflite",
                "--int8", "--seed", "7", timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return out


def _swap(target: Path, source: Path, tamper: str | None = None) -> None:
    def fill(d: Path) -> None:
        for f in source.iterdir():
            shutil.copy2(f, d / f.name)
        if tamper:
            data = bytearray((d / tamper).read_bytes())
            data[len(data) // 2] ^= 0x01
            (d / tamper).write_bytes(bytes(data))
    replace_folder(target, fill)


class Reader(threading.Thread):
    def __init__(self, stream) -> None:
        super().__init__(daemon=True)
        self.stream, self.lines = stream, queue.Queue()

    def run(self) -> None:
        for line in self.stream:
            self.lines.put(line)


def _fresh(bundle: Path, audio: np.ndarray) -> list[dict]:
    r = edge_ad("run", "--device", "-", "--model", str(bundle), *WINDOW, input=audio.tobytes(),
                timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return lines(r.stdout)


@needs_broker
@pytest.mark.slow
@pytest.mark.fault
def test_run_switches_to_a_new_bundle_and_refuses_a_tampered_one(bundle, other_bundle,
                                                                  trained_run, tmp_path):
    run = load_trained_run(trained_run)
    audio = normal_audio(run, 24.0)
    live = tmp_path / "bundle"
    shutil.copytree(bundle.path, live)
    v_old, v_new = _version(live), _version(other_bundle)
    port = free_port()
    broker = Broker(tmp_path, port)
    broker.start()
    sub = Subscriber(port, "plant/fan")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--device", "-", "--model", str(live), *WINDOW,
         "--mqtt", f"mqtt://127.0.0.1:{port}", "--mqtt-topic", "plant/fan", "--heartbeat", "1s",
         "--spool", str(tmp_path / "spool")],
        env=edge_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = Reader(proc.stdout)
    reader.start()
    got: list[dict] = []

    def feed(a: float, b: float) -> None:
        proc.stdin.write(audio[int(a * SR):int(b * SR)].tobytes())
        proc.stdin.flush()

    def until(seconds: float) -> None:
        def seen() -> bool:
            while not reader.lines.empty():
                got.append(json.loads(reader.lines.get()))
            return bool(got) and got[-1]["stream_seconds"] >= seconds
        wait_for(seen, 30, f"a decision at stream second {seconds}")

    try:
        assert sub.connected.wait(10)
        feed(0, 6)
        until(6)
        _swap(live, other_bundle)                       # the nightly job's atomic swap
        feed(6, 14)
        until(14)
        _swap(live, bundle.path, tamper="model_int8.adq8")   # damaged on the way
        feed(14, 18)
        until(18)
        proc.send_signal(signal.SIGHUP)                 # check again now: still refused
        feed(18, 20)
        until(20)
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sub.close()
        broker.stop()
    err = proc.stderr.read().decode()
    times = [d["stream_seconds"] for d in got]
    # No decision lost: one per second from the first full window to the end.
    assert np.allclose(np.diff(times), 1.0) and times[-1] == 20.0
    models = [d["model"] for d in got]
    k = models.index(v_new)
    assert set(models[:k]) == {v_old} and set(models[k:]) == {v_new}
    # Before the switch: exactly the old bundle's decisions on the same audio.
    old_ref = {d["stream_seconds"]: d for d in _fresh(bundle.path, audio[:20 * SR])}
    for d in got[:k]:
        assert d["score"] == old_ref[d["stream_seconds"]]["score"]
    # After it: the new bundle's decisions on the audio from the second it started on,
    # scored by the new model alone (its own window, its own cutoff).
    start = float(err.split("from stream second ")[1].split()[0])
    assert got[k - 1]["stream_seconds"] < start + 2 + 1 <= got[k]["stream_seconds"] + 1
    new_ref = {round(d["stream_seconds"] + start, 6): d
               for d in _fresh(other_bundle, audio[int(start * SR):20 * SR])}
    for d in got[k:]:
        ref = new_ref[d["stream_seconds"]]
        assert d["score"] == pytest.approx(ref["score"], rel=1e-12) and d["cutoff"] == ref["cutoff"]
    # The tampered bundle was refused, on the swap and again on SIGHUP, and the run went on.
    assert err.count("refused, keeping model") == 2 and "sha256" in err
    events = sub.events()
    changed = [e for e in events if e["type"] == "model_changed"]
    assert len(changed) == 1 and changed[0]["version"] == v_new
    rejected = [e for e in events if e["type"] == "model_rejected"]
    # Every event carries the version in use: the new one once it has taken over.
    assert len(rejected) == 2 and {e["model_version"] for e in rejected} == {v_new}
    assert all(e["model_version"] == v_old for e in events[:events.index(changed[0])])
