"""The no-signal check of each decision (issue 13, defect 13) against an independent numpy
computation over the raw int16 samples of each step: silence, a stuck DC value and
full-scale clipping are ``no_signal``, never ``anomaly``, and the alarm keeps its state."""
from __future__ import annotations

import numpy as np
import pytest

from edge.decision import AlarmRule, SignalCheck
from edge.errors import EdgeAdError
from edge.stream import Detector
from runtime_support import load_trained_run, normal_audio

SR = 16000


def _expected(x: np.ndarray, ends: list[float], *, window_steps: int,
              check: SignalCheck) -> list:
    """For decisions at ``ends`` (seconds, on step boundaries): the newest dead step's
    reason among the window's last ``window_steps`` one-second steps, by numpy."""
    def reason(step: np.ndarray):
        step = step.astype(np.int64)
        if step.max() - step.min() <= check.max_ptp:
            return "silence" if abs(step.max() + step.min()) / 2 <= check.max_ptp else "dc"
        if np.sum((step == 32767) | (step == -32768)) >= check.clip_fraction * len(step):
            return "clipping"
        return None

    out = []
    for t in ends:
        last = int(round(t))
        dead = [r for r in (reason(x[s * SR:(s + 1) * SR])
                            for s in range(last - window_steps, last)) if r]
        out.append(dead[-1] if dead else None)
    return out


def test_no_signal_per_step_matches_numpy_and_never_raises_the_alarm(bundle, trained_run):
    run = load_trained_run(trained_run)
    live = normal_audio(run, 6.0)
    t = np.arange(3 * SR)
    square = np.where(np.sin(2 * np.pi * 50 * t / SR) >= 0, 32767, -32768).astype(np.int16)
    loud = np.clip(live[:3 * SR].astype(np.int64) * 40, -32768, 32767).astype(np.int16)
    x = np.concatenate([live[:3 * SR], np.zeros(3 * SR, np.int16), live[3 * SR:],
                        np.full(2 * SR, -417, np.int16), square, loud,
                        live[:SR] // 1000])                      # a near-silent, not dead, input
    backend, threshold = bundle.load_backend("tflite", "int8")
    check = SignalCheck()
    det = Detector(backend, cutoff=threshold.cutoff, spec=bundle.spec, window_s=2.0,
                   every_s=1.0, alarm=AlarmRule(1, 1), signal_check=check)
    ds = [d for i in range(0, len(x), 1000) for d in det.push(x[i:i + 1000])]
    got = [d.no_signal for d in ds]
    assert got == _expected(x, [d.stream_seconds for d in ds], window_steps=2, check=check)
    assert {"silence", "dc", "clipping"} <= set(got) and None in got
    for a, b in zip(ds, ds[1:]):
        if b.no_signal:
            assert not b.anomaly and b.alarm == a.alarm   # frozen, never raised by it
    assert all(d.anomaly == (d.score > d.cutoff) for d in ds if d.no_signal is None)


@pytest.mark.parametrize("ptp, clip", [(-2, 0.25), (70000, 0.25), (8, 0.0), (8, float("nan"))])
def test_no_signal_thresholds_outside_their_range_are_refused(ptp, clip):
    with pytest.raises(EdgeAdError, match="--no-signal"):
        SignalCheck(max_ptp=ptp, clip_fraction=clip)
