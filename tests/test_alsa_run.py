"""``edge-ad run --device hw:1`` through the real ALSA library, no sound card needed.

tests/alsa/asound.conf (via ALSA_CONFIG_PATH) makes ``hw:N`` a ``type file`` PCM reading
raw S16_LE from a file (``infile``) over a ``null`` slave. The file holds normal sound of
the trained plant, then an anomalous stretch, then normal sound again; the JSON lines must
show the alarm rise within one window of the anomaly's start and fall after its end.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from runtime_support import (ALSA_CONF, SR, bundle_dir, edge_ad, edge_env, lines,
                             load_trained_run, make_anomalous, normal_audio)
from ci_env import in_ci

if not in_ci():
    pytest.importorskip("alsaaudio")
    if shutil.which("arecord") is None:
        pytest.skip("alsa-utils not installed (scripts/setup.sh installs it)", allow_module_level=True)


@pytest.mark.parametrize("device", ["hw:1", "plughw:1,0"])
def test_alarm_rises_within_one_window_of_an_anomaly_and_falls_after_it(
        bundle, trained_run, tmp_path, device):
    run = load_trained_run(trained_run)
    before = normal_audio(run, 20.0)                                    # 0..20 s
    fault = make_anomalous(normal_audio(run, 20.0, skip=2), seed=1)     # 20..40 s
    after = normal_audio(run, 30.0, skip=1)                             # 40..70 s
    audio = np.concatenate([before, fault, after])
    raw = tmp_path / "card1.raw"
    audio.astype("<i2").tofile(raw)
    t_start, t_end, total = len(before) / SR, (len(before) + len(fault)) / SR, len(audio) / SR
    window, every = 10.0, 1.0

    env = edge_env(ALSA_CONFIG_PATH=str(ALSA_CONF), EDGE_AD_ALSA_RAW=str(raw))
    r = edge_ad("run", "--device", device, "--model", str(bundle_dir(bundle)), "--every", "1s",
                "--window", "10s", "--max-seconds", str(total), env=env)
    assert r.returncode == 0, r.stderr.decode()
    ds = lines(r.stdout)
    assert len(ds) == int(total - window)  # first when the window is full, then every second
    assert all(d["overruns"] == 0 and d["dropped_samples"] == 0 for d in ds)
    alarmed = [d["stream_seconds"] for d in ds if d["alarm"]]
    assert alarmed, "the anomalous stretch never raised the alarm"
    # No alarm while the window holds only normal sound.
    assert all(t > t_start for t in alarmed)
    # Rise within one window (plus one step) of the start ...
    assert min(alarmed) <= t_start + window + every
    # ... held while the window is inside the fault ...
    inside = [d for d in ds if t_start + window <= d["stream_seconds"] <= t_end]
    assert inside and all(d["alarm"] for d in inside)
    # ... and fall once the window has left it, staying down to the end.
    assert max(alarmed) <= t_end + window + every
    assert not any(d["alarm"] for d in ds if d["stream_seconds"] > t_end + window + every)
    assert ds[-1]["stream_seconds"] == total and not ds[-1]["alarm"]
