"""Speed of the feature front end on a 10 s clip, single thread, against peers in one run.

    python -m pytest bench/bench_features.py --benchmark-only     (or: make bench)

Peers compute the same thing (SPEC section 2: the seed's padding, 313 log-mel frames,
309 context vectors of 640):
- ``c_clip_features``: edge.features.clip_features (the C kernel through cffi);
- ``librosa``: librosa.feature.melspectrogram(center=False, periodic Hamming) + log10 +
  context stacking;
- ``numpy``: the fastest numpy version written here: frames as a strided view, one batched
  numpy.fft.rfft, a dense float32 mel matmul, np.log10, context as a sliding-window view;
- streaming: the cost of one hop (512 new samples) in steady state, through
  Frontend.push and through the bare cffi call with preallocated buffers.
Goals (issue 2): C >= 10x librosa, >= 3x numpy, <= 5 us per hop.
"""
from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal
from conftest import BUDGETS, RATIOS

from edge import features, reference, tables
from edge.spec import DEFAULT_SPEC

SR = 16000
CLIP = (0.1 * np.random.default_rng(0).standard_normal(10 * SR)).astype(np.float32)
WINDOW = scipy.signal.get_window("hamming", 1024, fftbins=True)
MEL_T = np.ascontiguousarray(tables.mel_dense(DEFAULT_SPEC).T)  # (513, 128) float32
WINDOW32 = tables.window(DEFAULT_SPEC)

RATIOS.extend([("librosa", "c_clip_features", 10.0), ("numpy", "c_clip_features", 3.0)])
BUDGETS.extend([("c_push_per_hop", 5e-6), ("Frontend.push_per_hop", 5e-6)])


def _pad(x: np.ndarray) -> np.ndarray:
    pad = 1024 - len(x) % 1024
    return np.concatenate([np.zeros(pad // 2, x.dtype), x, np.zeros(pad - pad // 2, x.dtype)])


def _context(frames: np.ndarray) -> np.ndarray:
    # consecutive frames are contiguous rows: vector i is the flat frames[i:i+5]
    flat = np.ascontiguousarray(frames).reshape(-1)
    return np.lib.stride_tricks.sliding_window_view(flat, 640)[::128].copy()


def librosa_features(x: np.ndarray) -> np.ndarray:
    mel = librosa.feature.melspectrogram(y=_pad(x), sr=SR, n_fft=1024, hop_length=512,
                                         n_mels=128, center=False, power=2.0, window=WINDOW)
    return _context(np.log10(np.maximum(mel, 1e-10)).T)


def numpy_features(x: np.ndarray) -> np.ndarray:
    padded = _pad(x)
    frames = np.lib.stride_tricks.sliding_window_view(padded, 1024)[::512]
    spectrum = np.fft.rfft(frames * WINDOW32, axis=1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    mel = power.astype(np.float32) @ MEL_T
    return _context(np.log10(np.maximum(mel, np.float32(1e-10))))


def test_peers_compute_the_same_vectors() -> None:
    want = reference.clip_features(CLIP)
    for fn in (features.clip_features, librosa_features, numpy_features):
        got = fn(CLIP)
        assert got.shape == (309, 640)
        assert np.abs(got - want).max() <= 1e-3, fn.__name__


@pytest.mark.benchmark(group="10 s clip -> 309 x 640")
def test_c_clip_features(benchmark, record) -> None:
    benchmark(features.clip_features, CLIP)
    record("c_clip_features")


@pytest.mark.benchmark(group="10 s clip -> 309 x 640")
def test_c_logmel_frames_only(benchmark, record) -> None:
    benchmark(features.logmel_frames, CLIP)
    record("c_logmel_frames_only")


@pytest.mark.benchmark(group="10 s clip -> 309 x 640")
def test_librosa(benchmark, record) -> None:
    librosa_features(CLIP)  # first call pays librosa's one-off set-up
    benchmark(librosa_features, CLIP)
    record("librosa")


@pytest.mark.benchmark(group="10 s clip -> 309 x 640")
def test_numpy(benchmark, record) -> None:
    benchmark(numpy_features, CLIP)
    record("numpy")


@pytest.mark.benchmark(group="streaming, one hop of 512 samples")
def test_frontend_push_per_hop(benchmark, record) -> None:
    fe = features.Frontend()
    pcm = (CLIP * 32767).astype(np.int16)
    fe.push(pcm[:4096])  # steady state: every hop completes a vector
    hop = pcm[4096:4096 + 512]
    benchmark(fe.push, hop)
    record("Frontend.push_per_hop")


@pytest.mark.benchmark(group="streaming, one hop of 512 samples")
def test_c_push_per_hop(benchmark, record) -> None:
    from edge._frontend import ffi, lib

    fe = features.Frontend()
    pcm = (CLIP * 32767).astype(np.int16)
    fe.push(pcm[:4096])
    state = fe._state
    hop = ffi.from_buffer("int16_t[]", pcm[4096:4096 + 512])
    out = ffi.new("float[]", 640)
    used, got = ffi.new("size_t *"), ffi.new("size_t *")
    push = lib.ad_frontend_push_i16

    def one_hop() -> None:
        push(state, hop, 512, out, 1, used, got)

    benchmark(one_hop)
    assert got[0] == 1 and used[0] == 512
    record("c_push_per_hop")
