"""An hour of audio through ``edge-ad run`` (a file looped, ``--fast``): the resident size
stays flat. A behaviour test (nothing accumulates per vector or per decision), not a speed
test; scripts/runtime_footprint.py reports the figures, and the CPU share at real time."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from runtime_support import bundle_dir, edge_env, load_trained_run, normal_audio, write_wav


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@pytest.mark.slow
def test_resident_size_does_not_grow_over_an_hour_of_audio(bundle, trained_run, tmp_path):
    run = load_trained_run(trained_run)
    wav = write_wav(tmp_path / "loop.wav", normal_audio(run, 20.0))
    out = tmp_path / "d.jsonl"
    hour = 3600
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--device", str(wav), "--fast",
                             "--loop", "--model", str(bundle_dir(bundle)), "--max-seconds", str(hour),
                             "--json-out", str(out)],
                            env=edge_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[int, int]] = []  # (decisions written so far, RSS KiB)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            rss = rss_kib(proc.pid)
            done = out.read_bytes().count(b"\n") if out.exists() else 0
            if rss is not None and done:
                samples.append((done, rss))
            time.sleep(0.01)     # the C path runs an hour in a few seconds: sample often
        assert proc.poll() is not None, "an hour of audio did not finish within 240 s"
    finally:
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1].decode()
    assert proc.returncode == 0, err
    n = out.read_bytes().count(b"\n")
    assert n == hour - 10  # every decision of the hour was written
    early = [r for d, r in samples if 0.1 * n <= d <= 0.3 * n]
    late = [r for d, r in samples if d >= 0.8 * n]
    assert len(early) >= 3 and len(late) >= 3, samples
    # 112,000 vectors and 3,590 decisions: a leak of even 20 bytes per vector would show.
    growth = np.median(late) - np.median(early)
    assert growth < 2048, f"RSS grew by {growth:.0f} KiB (early {np.median(early):.0f}, late {np.median(late):.0f})"
