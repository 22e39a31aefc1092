"""The streaming detector against an independent whole-signal computation.

The model here is a fixed linear map (a stand-in confined to this file): what is under test
is the windowing, the error ring, the decision cadence and the K-of-N alarm, each checked
against numpy over the whole signal (edge.reference, edge.scoring.clip_score).
"""
from __future__ import annotations

import numpy as np
import pytest

from edge import reference
from edge.capture import CaptureStats
from edge.decision import Alarm, AlarmRule, parse_duration
from edge.errors import EdgeAdError
from edge.scoring import clip_score
from edge.spec import DEFAULT_SPEC
from edge.stream import Detector, window_vectors


class HalfBackend:
    """recon = x / 2, so every error is ||x||^2 / 4: a model with a known answer."""

    name = "half"

    def __init__(self) -> None:
        self.rows = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 640
        self.rows += len(x)
        return x * np.float32(0.5)


def _noise(seconds: float, seed: int, amp: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, amp, int(seconds * DEFAULT_SPEC.sample_rate))
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def _expected_score(samples: np.ndarray, n_window: int) -> float:
    frames = reference.logmel_frames_unpadded(samples.astype(np.float64) / 32768.0)
    vecs = reference.context_vectors(frames).astype(np.float32)[-n_window:]
    return clip_score(vecs, vecs * np.float32(0.5))


def test_window_vectors_match_a_padded_training_clip():
    assert window_vectors(10.0) == 309 == DEFAULT_SPEC.n_vectors(160000)
    with pytest.raises(ValueError):
        window_vectors(0.01)
    shortest = DEFAULT_SPEC.min_samples / DEFAULT_SPEC.sample_rate
    with pytest.raises(EdgeAdError, match=rf"--window 0.01 s holds no context vector; expected at "
                                          rf"least {shortest:.3f} s"):
        window_vectors(0.01)
    assert window_vectors(DEFAULT_SPEC.min_samples / DEFAULT_SPEC.sample_rate) == 1


def test_window_score_equals_clip_score_of_the_last_window_for_random_block_sizes():
    x = _noise(5.0, seed=1)
    backend = HalfBackend()
    det = Detector(backend, cutoff=1e9, window_s=2.0, every_s=0.5)
    rng = np.random.default_rng(2)
    decisions, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 5000))
        decisions += det.push(x[i:i + n])
        i += n
    # 2 s window: first decision once the window is full, then every 0.5 s of audio.
    assert [d.stream_seconds for d in decisions] == [2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    for d in decisions:
        upto = int(d.stream_seconds * DEFAULT_SPEC.sample_rate)
        assert d.score == pytest.approx(_expected_score(x[:upto], det.n_window), rel=1e-5)
        assert d.vectors == det.n_window == window_vectors(2.0)
    # Each vector went through the model exactly once: work is O(new vectors).
    n_frames = 1 + (len(x) - 1024) // 512
    assert backend.rows == n_frames - 4


def test_anomaly_is_score_above_cutoff_and_alarm_needs_k_of_n():
    x = np.concatenate([_noise(3.0, seed=3, amp=0.01), _noise(3.0, seed=4, amp=0.3),
                        _noise(4.0, seed=5, amp=0.01)])
    quiet = Detector(HalfBackend(), cutoff=1e9, window_s=1.0, every_s=0.5)
    scores = [d.score for d in quiet.push(x)]
    cutoff = float(np.median(scores))
    det = Detector(HalfBackend(), cutoff=cutoff, window_s=1.0, every_s=0.5, alarm=AlarmRule(2, 3))
    ds = det.push(x)
    anomalies = [s > cutoff for s in scores]
    assert [d.anomaly for d in ds] == anomalies
    expected = [sum(anomalies[max(0, i - 2):i + 1]) >= 2 for i in range(len(anomalies))]
    assert [d.alarm for d in ds] == expected
    assert any(expected) and not all(expected)


def test_alarm_rule_parsing_and_state():
    assert AlarmRule.parse("3/5") == AlarmRule(3, 5)
    assert AlarmRule.parse("1/86400") == AlarmRule(1, 86400)
    for bad in ("0/1", "4/3", "x", "1/", "1/86401"):
        with pytest.raises(EdgeAdError):
            AlarmRule.parse(bad)
    a = Alarm(AlarmRule(2, 3))
    assert [a.update(v) for v in (True, False, True, False, False, True, True)] == \
        [False, False, True, False, False, False, True]


def test_durations_parse_with_units():
    assert parse_duration("10s") == 10 and parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120 and parse_duration("1h") == 3600 and parse_duration("3") == 3
    for bad in ("0s", "-1s", "ten"):
        with pytest.raises(EdgeAdError):
            parse_duration(bad)


def test_a_gap_restarts_framing_so_no_frame_spans_it():
    a, b = _noise(2.0, seed=6), _noise(2.0, seed=7, amp=0.2)
    det = Detector(HalfBackend(), cutoff=1e9, window_s=1.0, every_s=1.0)
    stats = CaptureStats()
    det.push(a, stats)
    stats.gaps += 1  # what a source reports after an overrun or a reopen
    d = det.push(b, stats)[-1]
    frames_a = reference.logmel_frames_unpadded(a / 32768.0)
    frames_b = reference.logmel_frames_unpadded(b / 32768.0)
    vecs = np.concatenate([reference.context_vectors(frames_a),
                           reference.context_vectors(frames_b)]).astype(np.float32)[-det.n_window:]
    assert d.score == pytest.approx(clip_score(vecs, vecs * np.float32(0.5)), rel=1e-5)


def test_capture_counters_are_reported_in_every_decision_line():
    import json

    det = Detector(HalfBackend(), cutoff=1e9, window_s=1.0, every_s=0.5)
    stats = CaptureStats(dropped_samples=2048, overruns=2, short_reads=3, reopens=1)
    d = det.push(_noise(2.0, seed=8), stats)[-1]
    line = json.loads(d.to_json())
    assert (line["dropped_samples"], line["overruns"], line["short_reads"], line["reopens"]) == (2048, 2, 3, 1)
    assert line["time"].endswith("Z") and line["window_seconds"] == 1.0
