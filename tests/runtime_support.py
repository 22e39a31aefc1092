"""Helpers shared by the edge runtime tests (test_runtime_*, test_alsa_*, test_mqtt_*,
test_calibrate_*): running the real ``edge-ad`` command, and audio from the trained plant."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ALSA_CONF = Path(__file__).parent / "alsa" / "asound.conf"
SR = 16000


def edge_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def edge_ad(*args: str, env: dict[str, str] | None = None, timeout: float = 120,
            input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh interpreter."""
    return subprocess.run([sys.executable, "-m", "edge", *args], env=env or edge_env(),
                          capture_output=True, timeout=timeout, input=input)


def lines(text: str | bytes) -> list[dict[str, Any]]:
    if isinstance(text, bytes):
        text = text.decode()
    return [json.loads(s) for s in text.splitlines() if s.strip()]


def bundle_dir(bundle: Any) -> Path:
    """The ``bundle`` fixture may be a path or an ``edge.bundle.Bundle``."""
    return Path(getattr(bundle, "path", bundle))


def load_trained_run(trained_run: Any) -> Any:
    """The ``trained_run`` fixture may be a path or a ``train.runs.Run``."""
    if hasattr(trained_run, "clips") and hasattr(trained_run, "model"):
        return trained_run
    from train.runs import load_run

    return load_run(trained_run)


def copy_bundle(bundle: Any, dest: Path) -> Path:
    shutil.copytree(bundle_dir(bundle), dest)
    return dest


def run_score(run: Any, clip: Any) -> float:
    return run.scores[str(Path(clip.path).relative_to(run.root))]


def quiet_normal_clips(run: Any, n: int) -> list[Any]:
    """The ``n`` normal clips the trained model finds most normal (lowest training-side
    score): a stretch built from them stays below the cutoff."""
    normal = [c for c in run.clips if c.label == "normal"]
    return sorted(normal, key=lambda c: run_score(run, c))[:n]


def normal_audio(run: Any, seconds: float, *, quiet: bool = True, skip: int = 0) -> np.ndarray:
    """``seconds`` of normal sound of one machine (the run's first ID), ``(n,) int16``: its
    normal clips one after another (again from the first when they run out), the half the
    model finds most normal when ``quiet`` (so a window of it stays below the cutoff), all
    of them otherwise (normal operation with its natural spread, for calibration)."""
    first = sorted({c.id for c in run.clips})[0]
    clips = sorted((c for c in run.clips if c.label == "normal" and c.id == first),
                   key=lambda c: run_score(run, c))
    if quiet:
        clips = clips[:max(2, len(clips) // 2)]
    parts, total, i = [], 0, skip
    while total < seconds * SR:
        x = read_int16(clips[i % len(clips)].path)
        parts.append(x)
        total += len(x)
        i += 1
    return np.concatenate(parts)[:int(round(seconds * SR))]


def read_int16(path: Path) -> np.ndarray:
    from edge.audio import load

    x = load(path)
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def make_anomalous(x: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """A fault on top of normal sound: a loud 3.1 kHz whine with harmonics (a failing
    bearing) and a click every 50 ms (a loose part). Far outside what the model learnt."""
    rng = np.random.default_rng(seed)
    t = np.arange(len(x)) / SR
    whine = 0.25 * np.sin(2 * np.pi * 3100 * t) + 0.12 * np.sin(2 * np.pi * 6200 * t + 0.3)
    clicks = np.zeros(len(x))
    clicks[::SR // 20] = 0.8
    clicks = np.convolve(clicks, np.exp(-np.arange(64) / 8.0), mode="same")
    y = x / 32768.0 + whine + clicks * rng.choice([-1, 1], len(x))
    return np.clip(np.round(y * 32768 * 0.7), -32768, 32767).astype(np.int16)


def write_wav(path: Path, x: np.ndarray) -> Path:
    import soundfile as sf

    sf.write(str(path), x, SR, subtype="PCM_16")
    return path


def tflite214_python() -> Path | None:
    """The venv scripts/setup-tflite214.sh makes beside the main one."""
    candidates = [os.environ.get("EDGE_AD_TFLITE214_VENV"), f"{sys.prefix.rstrip('/')}-tflite214",
                  str(Path.home() / ".cache/edge-ad/venv-tflite214"), str(REPO / ".venv-tflite214")]
    for c in candidates:
        if c and (Path(c) / "bin/python").exists():
            return Path(c) / "bin/python"
    return None
