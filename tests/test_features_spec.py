"""The feature spec and its tables against independent computations: librosa's mel
filterbank, scipy's periodic Hamming window, hashlib over canonical JSON, librosa's frame
count."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import librosa
import numpy as np
import pytest
import scipy.signal

from edge import tables
from edge.errors import SpecMismatchError
from edge.spec import DEFAULT_SPEC, FeatureSpec


@pytest.mark.parametrize("spec", [
    DEFAULT_SPEC,
    FeatureSpec(fmin=50.0, fmax=7000.0),
    FeatureSpec(sample_rate=22050, n_fft=2048, hop_length=512, n_mels=64, fmax=11025.0),
], ids=["default", "band_edges", "22k"])
def test_mel_filterbank_equals_librosa(spec: FeatureSpec) -> None:
    want = librosa.filters.mel(sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels,
                               fmin=spec.fmin, fmax=spec.fmax, htk=False, norm="slaney")
    got = tables.mel_dense(spec)
    assert got.shape == want.shape == (spec.n_mels, spec.n_bins)
    assert np.allclose(got, want, rtol=1e-5, atol=1e-9)


def test_sparse_mel_packs_exactly_the_dense_filterbank() -> None:
    dense = tables.mel_dense(DEFAULT_SPEC)
    sparse = tables.mel_sparse(DEFAULT_SPEC)
    assert np.array_equal(sparse.to_dense(DEFAULT_SPEC.n_bins), dense)
    assert all(a.flags.c_contiguous for a in (sparse.starts, sparse.lengths, sparse.offsets,
                                              sparse.weights))
    assert sparse.starts.dtype == sparse.lengths.dtype == sparse.offsets.dtype == np.int32
    assert sparse.weights.dtype == np.float32
    assert int(sparse.lengths.sum()) == len(sparse.weights) < 2 * DEFAULT_SPEC.n_bins


def test_window_is_periodic_hamming_like_scipy() -> None:
    want = scipy.signal.get_window("hamming", 1024, fftbins=True)
    got = tables.window(DEFAULT_SPEC)
    assert got.dtype == np.float32 and got.shape == (1024,)
    assert np.abs(got - want).max() < 1e-7
    assert not np.allclose(got, np.hamming(1024), atol=1e-4)  # not the symmetric one


def test_spec_defaults_are_the_seed_values() -> None:
    s = DEFAULT_SPEC
    assert (s.sample_rate, s.n_fft, s.hop_length, s.n_mels, s.fmin, s.fmax, s.power,
            s.log_floor, s.context_frames) == (16000, 1024, 512, 128, 0.0, 8000.0, 2.0, 1e-10, 5)
    assert (s.n_bins, s.vector_size) == (513, 640)


def test_spec_json_round_trip_and_digest() -> None:
    spec = FeatureSpec(hop_length=256, fmin=20.0)
    text = spec.to_json()
    assert FeatureSpec.from_json(text) == spec
    canonical = json.dumps({**dataclasses.asdict(spec), "schema": 1}, sort_keys=True,
                           separators=(",", ":"))
    assert text == canonical
    assert spec.digest == hashlib.sha256(canonical.encode()).hexdigest()
    assert FeatureSpec.from_json(DEFAULT_SPEC.to_json()).digest == DEFAULT_SPEC.digest
    assert spec.digest != DEFAULT_SPEC.digest


@pytest.mark.parametrize("text, match", [
    ('{"n_mels": 128, "colour": "red"}', "unknown keys"),
    ('{"schema": 99}', "schema 99"),
    ("{not json", "not valid JSON"),
    ('{"n_fft": 1000}', "power of two"),
    ('{"window": "hann"}', "window"),
])
def test_bad_spec_json_raises_spec_mismatch(text: str, match: str) -> None:
    with pytest.raises(SpecMismatchError, match=match):
        FeatureSpec.from_json(text)


@pytest.mark.parametrize("n", [160000, 32000, 1024, 1025, 5000, 48000])
def test_frame_count_equals_librosa_on_the_padded_clip(n: int) -> None:
    pad = 1024 - n % 1024
    frames = librosa.util.frame(np.zeros(n + pad), frame_length=1024, hop_length=512)
    assert DEFAULT_SPEC.n_frames(n) == frames.shape[1]
    assert DEFAULT_SPEC.n_vectors(n) == max(0, frames.shape[1] - 4)
    assert (DEFAULT_SPEC.n_frames(160000), DEFAULT_SPEC.n_vectors(160000)) == (313, 309)


def test_min_samples_is_the_shortest_clip_with_one_vector() -> None:
    m = DEFAULT_SPEC.min_samples
    assert DEFAULT_SPEC.n_vectors(m) == 1 and DEFAULT_SPEC.n_vectors(m - 1) == 0
