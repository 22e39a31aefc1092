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

import numpy as np
import pytest
from conftest import BUDGETS, RATIOS

from edge import features, reference
from edge.spec import DEFAULT_SPEC
from train import bench

SR = 16000
CLIP = (0.1 * np.random.default_rng(0).standard_normal(10 * SR)).astype(np.float32)

RATIOS.extend([("librosa", "c_clip_features", 10.0), ("numpy", "c_clip_features", 3.0)])
BUDGETS.extend([("c_push_per_hop", 5e-6), ("Frontend.push_per_hop", 5e-6)])


def _context(frames: np.ndarray) -> np.ndarray:
    # consecutive frames are contiguous rows: vector i is the flat frames[i:i+5]
    flat = np.ascontiguousarray(frames).reshape(-1)
    return np.lib.stride_tricks.sliding_window_view(flat, 640)[::128].copy()


# The peers are the ones `edge-ad bench` measures (train.bench), plus context stacking, so
# both benchmarks time the same code.
def librosa_features(x: np.ndarray) -> np.ndarray:
    return _context(bench.librosa_logmel_frames(x, spec=DEFAULT_SPEC))


def numpy_features(x: np.ndarray) -> np.ndarray:
    return _context(bench.numpy_logmel_frames(x, spec=DEFAULT_SPEC))


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
