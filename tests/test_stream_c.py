"""The streaming path in C (``ad_stream``): samples in, per-vector errors (or the heads'
feature rows) out in one call per block, bit for bit the front end's vectors through the
int8 network; the Detector uses it for a C backend and any head; a 16-bit WAV is read as
int16 as it is stored.

Uses the session fixture ``bundle`` (its model_int8.adq8).
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from edge.backends.c import CBackend
from edge.capture import FAST_BLOCK, FileSource, to_int16
from edge.features import Frontend
from edge.spec import DEFAULT_SPEC
from edge.stream import Detector
from runtime_support import bundle_dir


@pytest.fixture(scope="module")
def backend(bundle) -> CBackend:
    return CBackend(bundle_dir(bundle) / "model_int8.adq8")


def _audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * rng.standard_normal(len(t))
    return to_int16(x)


def test_stream_errors_equal_the_front_end_then_the_network_for_any_chunking(backend):
    x = _audio(6.0)
    want = backend.errors(Frontend().push(x))
    rng = np.random.default_rng(1)
    for trial in range(3):
        stream, got, i = backend.stream(DEFAULT_SPEC), [], 0
        while i < len(x):
            n = int(rng.choice([1, 7, 511, 512, 513, 4000, 20000]))
            got.append(stream.push(x[i:i + n]))
            i += n
        assert np.array_equal(np.concatenate(got), want), trial
    # float samples take the float push, int16 / 32768 the same vectors
    assert np.array_equal(backend.stream(DEFAULT_SPEC).push(x.astype(np.float32) / 32768), want)


def test_stream_into_a_small_error_buffer_stops_and_resumes_without_loss(backend):
    """The C call itself with room for one error at a time: it consumes only what it can
    score, and the resumed pushes give the one-call errors."""
    from edge.backends.c import _lib

    ffi, lib = _lib()
    x = _audio(3.0, seed=2)
    stream = backend.stream(DEFAULT_SPEC)
    want = backend.errors(Frontend().push(x))
    state = stream._state
    out = np.empty(1, np.float64)
    used, wrote = ffi.new("size_t *"), ffi.new("size_t *")
    got, done = [], 0
    while done < len(x):
        rest = x[done:]
        assert lib.ad_stream_push_i16(state, ffi.from_buffer("int16_t[]", rest), len(rest),
                                      ffi.from_buffer("double[]", out), 1, used, wrote) == lib.AD_OK
        assert wrote[0] <= 1 and (used[0] > 0 or wrote[0] > 0)
        got.extend(out[:wrote[0]])
        done += used[0]
    assert np.array_equal(np.array(got), want)


def test_detector_with_the_c_backend_scores_windows_like_the_python_front_end_path(backend):
    x = _audio(25.0, seed=3)
    c = Detector(backend, cutoff=1.0, window_s=5.0)
    py = Detector(backend, cutoff=1.0, window_s=5.0, frontend=Frontend())
    assert c._cstream is not None and py._cstream is None
    dc, dp = [], []
    for i in range(0, len(x), 3001):
        dc += c.push(x[i:i + 3001])
        dp += py.push(x[i:i + 3001])
    assert len(dc) == len(dp) == 20
    assert [d.score for d in dc] == [d.score for d in dp]


def test_stream_rows_are_the_heads_numpy_features_of_the_same_vectors(backend):
    """The C feature row against numpy's features of the union head (mse, band-maha,
    stats) on the Python front end's vectors and the backend's reconstructions: equal, the
    error column bit for bit the errors stream's, any chunking."""
    from train.detectors import union_head

    x = _audio(4.0, seed=5)
    vectors = Frontend().push(x)
    want = union_head(DEFAULT_SPEC).features(vectors, backend.run(vectors))
    rng = np.random.default_rng(6)
    stream, got, i = backend.stream(DEFAULT_SPEC, rows=True), [], 0
    while i < len(x):
        n = int(rng.choice([1, 300, 512, 5000]))
        got.append(stream.push(x[i:i + n]))
        i += n
    got = np.concatenate(got)
    assert got.shape == want.shape == (len(vectors), 1 + 3 * DEFAULT_SPEC.n_mels)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.array_equal(got[:, 0], backend.errors(vectors))
    # the first frame and its square are the float vectors' values exactly
    assert np.array_equal(got[:, 1 + 128:1 + 256], vectors[:, :128].astype(np.float64))


def _fitted_ensemble(backend):
    """The default ensemble head (band-maha + mel-mean) fitted on a few seconds of this audio."""
    from train.detectors import feature_head, fit_head

    head = feature_head("ensemble", DEFAULT_SPEC)
    sums, counts = [], []
    for seed in range(10, 22):
        v = Frontend().push(_audio(2.0, seed=seed))
        sums.append(head.features(v, backend.run(v)).sum(0))
        counts.append(len(v))
    return fit_head(head, np.array(sums), np.array(counts), np.array([0] * 6 + [1] * 6))


def test_detector_with_an_ensemble_head_streams_in_c_like_the_python_path(backend):
    head = _fitted_ensemble(backend)
    x = _audio(15.0, seed=7)
    c = Detector(backend, cutoff=1.0, window_s=5.0, head=head)
    py = Detector(backend, cutoff=1.0, window_s=5.0, frontend=Frontend(), head=head)
    assert c._cstream is not None and py._cstream is None
    dc, dp = [], []
    for i in range(0, len(x), 4001):
        dc += c.push(x[i:i + 4001])
        dp += py.push(x[i:i + 4001])
    assert len(dc) == len(dp) == 10
    np.testing.assert_allclose([d.score for d in dc], [d.score for d in dp], rtol=1e-9)


def test_a_pcm16_file_is_read_as_int16_in_large_blocks_when_fast(tmp_path):
    x = _audio(5.0, seed=4)
    stereo = np.stack([x, x[::-1].copy()], axis=1)
    path = tmp_path / "s.wav"
    sf.write(path, stereo, 16000, subtype="PCM_16")
    for fast, size in ((True, FAST_BLOCK), (False, 1024)):
        for channel, want in ((0, x), (1, x[::-1])):
            # _blocks_once: the reads themselves, without the real-time pacing
            blocks = list(FileSource(path, fast=fast, channel=channel)._blocks_once())
            assert all(b.dtype == np.int16 for b in blocks)
            assert max(len(b) for b in blocks) == min(size, len(x))
            assert np.array_equal(np.concatenate(blocks), want)
    # the float path (a FLOAT file) gives the same samples through to_int16
    fpath = tmp_path / "f.wav"
    sf.write(fpath, x / 32768.0, 16000, subtype="FLOAT")
    assert np.array_equal(np.concatenate(list(FileSource(fpath, fast=True))), x)


def test_libfuzzer_on_the_stream_with_random_networks_chunks_and_room_finds_nothing(tmp_path):
    """csrc/tests/fuzz_stream.c under ASan/UBSan: errors and rows streams of random
    640 -> W -> 640 networks, random samples, chunks and capacities agree and stay in
    bounds (what the target checks is in its header)."""
    from test_frontend_c import run_libfuzzer

    run_libfuzzer(tmp_path, "stream", min_runs=300)
