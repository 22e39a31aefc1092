"""The C front end (edge.features on edge._frontend) against independent computations:
the float64 numpy reference, librosa with every setting pinned, numpy.fft.rfft, np.log10.
"""
from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import features, reference, tables
from edge.errors import AudioError, FrontendError, SpecMismatchError
from edge.spec import DEFAULT_SPEC, FeatureSpec

DATA = Path(__file__).parent / "data" / "mimii-valve"
SR = 16000
TOL = 1e-3  # SPEC: largest absolute difference in log10 units


def _tone(freqs: list[float], seconds: float, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * sum(np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs))
            ).astype(np.float32)


def _mimii(name: str) -> np.ndarray:
    x, rate = sf.read(DATA / name, dtype="int16")
    assert rate == SR and x.shape[1] == 8
    return (x[:, 0] / 32768.0).astype(np.float32)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240601)
    return {
        "white_noise": (0.1 * rng.standard_normal(3 * SR)).astype(np.float32),
        "tones": _tone([440.0, 3000.0, 7900.0], 2.5),
        "tone_on_bin": _tone([16 * SR / 1024], 2.0, amplitude=0.9),
        "silence": np.zeros(2 * SR, np.float32),
        "clipped": np.clip(_tone([250.0, 1250.0], 2.0, amplitude=3.0), -1.0, 1.0),
        "quiet_noise": (1e-4 * rng.standard_normal(SR + 777)).astype(np.float32),
        "pcm_full_scale": (rng.integers(-32768, 32768, 2 * SR) / 32768.0).astype(np.float32),
        "mimii_normal": _mimii("normal_00000000_2s.wav"),
        "mimii_abnormal": _mimii("abnormal_00000000_2s.wav"),
    }


SIGNALS = _signals()


def librosa_logmel(x: np.ndarray) -> np.ndarray:
    """The peer of SPEC section 2, written out here (not through edge.reference)."""
    pad = 1024 - len(x) % 1024
    padded = np.concatenate([np.zeros(pad // 2), x.astype(np.float64), np.zeros(pad - pad // 2)])
    mel = librosa.feature.melspectrogram(
        y=padded, sr=SR, n_fft=1024, hop_length=512, n_mels=128, center=False, power=2.0,
        window=scipy.signal.get_window("hamming", 1024, fftbins=True))
    return np.log10(np.maximum(mel, 1e-10)).T


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_clip_frames_match_reference_and_librosa_within_1e3(name: str) -> None:
    x = SIGNALS[name]
    got = features.logmel_frames(x)
    ref = reference.logmel_frames(x)
    peer = librosa_logmel(x)
    assert got.dtype == np.float32 and got.shape == ref.shape == peer.shape
    assert np.abs(got - ref).max() <= TOL
    assert np.abs(got - peer).max() <= TOL
    assert np.isfinite(got).all()


def test_silence_gives_the_log_floor_everywhere() -> None:
    got = features.clip_features(np.zeros(SR, np.float32))
    assert np.abs(got - np.log10(np.float32(1e-10), dtype=np.float64)).max() < 1e-6


def test_ten_second_clip_gives_313_frames_and_309_vectors() -> None:
    x = (0.05 * np.random.default_rng(1).standard_normal(10 * SR)).astype(np.float32)
    frames = features.logmel_frames(x)
    vectors = features.clip_features(x)
    assert frames.shape == (313, 128) and frames.dtype == np.float32
    assert vectors.shape == (309, 640) and vectors.dtype == np.float32
    assert (DEFAULT_SPEC.n_frames(len(x)), DEFAULT_SPEC.n_vectors(len(x))) == (313, 309)


def test_context_vectors_concatenate_five_frames_oldest_first() -> None:
    frames = np.random.default_rng(2).standard_normal((23, 128)).astype(np.float32)
    got = features.context_vectors(frames)
    expected = np.stack([np.concatenate([frames[i + j] for j in range(5)]) for i in range(19)])
    assert np.array_equal(got, expected)
    assert features.context_vectors(frames[:4]).shape == (0, 640)


def test_clip_features_match_reference_vectors() -> None:
    x = SIGNALS["mimii_abnormal"]
    got = features.clip_features(x)
    ref = reference.clip_features(x)
    assert got.shape == ref.shape == (DEFAULT_SPEC.n_vectors(len(x)), 640)
    assert np.abs(got - ref).max() <= TOL


@pytest.mark.parametrize("n", [0, 1, 1023, 1024, 1025, 2047, 2048, 4608, 4609])
def test_padding_of_any_length_matches_reference(n: int) -> None:
    x = np.random.default_rng(n).uniform(-1, 1, n).astype(np.float32)
    got = features.logmel_frames(x)
    ref = reference.logmel_frames(x)
    assert got.shape == ref.shape == (DEFAULT_SPEC.n_frames(n), 128)
    assert np.abs(got - ref).max() <= TOL


def test_int16_input_is_scaled_by_1_over_32768() -> None:
    pcm = np.random.default_rng(3).integers(-32768, 32768, SR, dtype=np.int16)
    got = features.logmel_frames(pcm)
    ref = reference.logmel_frames(pcm.astype(np.float64) / 32768.0)
    assert np.abs(got - ref).max() <= TOL


def test_other_hop_reaches_the_kernel_through_the_tables() -> None:
    spec = FeatureSpec(hop_length=256, fmin=50.0, fmax=7000.0, log_floor=1e-8)
    x = SIGNALS["white_noise"]
    got = features.logmel_frames(x, spec=spec)
    ref = reference.logmel_frames(x, spec)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL


@pytest.mark.parametrize("change", [{"n_mels": 64}, {"n_fft": 2048}, {"context_frames": 3}])
def test_spec_with_other_sizes_raises_spec_mismatch(change: dict) -> None:
    spec = FeatureSpec(**change)
    with pytest.raises(SpecMismatchError, match=next(iter(change))):
        features.clip_features(np.zeros(SR, np.float32), spec=spec)
    with pytest.raises(SpecMismatchError):
        features.Frontend(spec)


# ---- FFT and log against numpy ---------------------------------------------------------

def _kernel():
    from edge._frontend import ffi, lib
    return ffi, lib


def _rfft(x: np.ndarray) -> np.ndarray:
    ffi, lib = _kernel()
    fft = ffi.new("ad_rfft *")
    lib.ad_rfft_init(fft)
    x = np.ascontiguousarray(x, dtype=np.float32)
    re = np.empty(lib.AD_FFT_BINS, np.float32)
    im = np.empty(lib.AD_FFT_BINS, np.float32)
    work = np.empty(lib.AD_FFT_WORK, np.float32)
    buf = lambda a: ffi.from_buffer("float[]", a)  # noqa: E731
    lib.ad_rfft_forward(fft, buf(x), buf(re), buf(im), buf(work))
    return re.astype(np.float64) + 1j * im.astype(np.float64)


@pytest.mark.parametrize("kind", ["noise", "tone", "impulse", "dc", "nyquist", "chirp"])
def test_fft_matches_numpy_rfft_with_snr_over_100_db(kind: str) -> None:
    n = np.arange(1024)
    x = {
        "noise": np.random.default_rng(4).standard_normal(1024),
        "tone": np.cos(2 * np.pi * 37.3 * n / 1024),
        "impulse": (n == 5).astype(float),
        "dc": np.ones(1024),
        "nyquist": (-1.0) ** n,
        "chirp": scipy.signal.chirp(n / SR, 20, 1024 / SR, 7900),
    }[kind].astype(np.float32)
    got = _rfft(x)
    want = np.fft.rfft(x.astype(np.float64))
    noise = max(np.sum(np.abs(got - want) ** 2), 1e-300)  # exact results happen (impulse)
    snr = 10 * np.log10(np.sum(np.abs(want) ** 2) / noise)
    assert got.shape == (513,)
    assert snr >= 100.0, f"{kind}: SNR {snr:.1f} dB"


def test_log10_floor_matches_numpy() -> None:
    ffi, lib = _kernel()
    x = np.concatenate([np.logspace(-12, 38, 20001), [0.0, -1.0, 1e-10, 1.0, 10.0, np.inf, np.nan],
                        np.random.default_rng(5).uniform(0.5, 2.0, 1000)]).astype(np.float32)
    out = np.empty_like(x)
    lib.ad_log10_floor(ffi.from_buffer("float[]", x), ffi.from_buffer("float[]", out), x.size,
                       np.float32(1e-10))
    finite = np.isfinite(x)
    want = np.log10(np.maximum(x[finite].astype(np.float64), np.float32(1e-10)))
    # within a few float32 ulps of the output (~1e-6 up to |log10| = 10)
    assert np.all(np.abs(out[finite] - want) <= 1e-6 + 2.4e-7 * np.abs(want))
    assert out[np.isnan(x)][0] == pytest.approx(-10.0, abs=1e-6)   # NaN: the floor
    assert np.isfinite(out).all()                                   # inf: finite (~38.5)


# ---- streaming -------------------------------------------------------------------------

STREAM = (0.2 * np.random.default_rng(6).standard_normal(SR + 3333)).astype(np.float32)
STREAM_REF = reference.context_vectors(reference.logmel_frames_unpadded(STREAM))


def _push_chunks(fe: features.Frontend, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    out, i = [], 0
    for size in sizes:
        out.append(fe.push(x[i:i + size]))
        i += size
    out.append(fe.push(x[i:]))
    assert all(o.shape[1] == 640 and o.dtype == np.float32 for o in out)
    return np.concatenate(out)


def test_one_push_equals_reference_without_padding() -> None:
    got = features.Frontend().push(STREAM)
    assert got.shape == STREAM_REF.shape
    assert np.abs(got - STREAM_REF).max() <= TOL


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(min_value=0, max_value=4000), max_size=30))
def test_streaming_in_random_chunks_equals_one_call(sizes: list[int]) -> None:
    whole = features.Frontend().push(STREAM)
    got = _push_chunks(features.Frontend(), STREAM, sizes)
    assert np.array_equal(got, whole)


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=2000), max_size=20))
def test_int16_streaming_in_random_chunks_equals_reference(sizes: list[int]) -> None:
    pcm = np.clip(np.round(STREAM * 32768), -32768, 32767).astype(np.int16)
    got = _push_chunks(features.Frontend(), pcm, sizes)
    ref = reference.context_vectors(reference.logmel_frames_unpadded(pcm / 32768.0))
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL


def test_push_returns_a_vector_per_hop_once_five_frames_exist() -> None:
    fe = features.Frontend()
    assert fe.push(np.zeros(1024 + 3 * 512 - 1, np.int16)).shape == (0, 640)
    assert fe.push(np.zeros(1, np.int16)).shape == (0, 640)       # 4 frames
    assert fe.push(np.zeros(512, np.int16)).shape == (1, 640)     # the 5th frame
    assert fe.push(np.zeros(511, np.int16)).shape == (0, 640)
    assert fe.push(np.zeros(1 + 3 * 512, np.int16)).shape == (4, 640)


def test_push_takes_any_layout_of_int16_and_float() -> None:
    pcm = np.clip(np.round(STREAM * 32768), -32768, 32767).astype(np.int16)
    want = features.Frontend().push(pcm)
    assert np.array_equal(features.Frontend().push(pcm.astype(">i2")), want)  # big-endian
    strided = np.repeat(pcm, 2)[::2]                                        # not contiguous
    assert np.array_equal(features.Frontend().push(strided), want)
    as_float64 = STREAM.astype(np.float64)
    assert np.array_equal(features.Frontend().push(as_float64), features.Frontend().push(STREAM))
    assert features.Frontend().push(np.zeros(0, np.int16)).shape == (0, 640)


def test_reset_starts_a_new_stream() -> None:
    fe = features.Frontend()
    first = fe.push(STREAM)
    fe.push(STREAM[:5000])
    fe.reset()
    assert np.array_equal(fe.push(STREAM), first)


def test_non_finite_samples_raise_audio_error_and_leave_the_stream_alone() -> None:
    bad = STREAM[:3000].copy()
    bad[100] = np.nan
    with pytest.raises(AudioError, match="non-finite"):
        features.clip_features(bad)
    fe = features.Frontend()
    fe.push(STREAM[:2000])
    with pytest.raises(AudioError, match="1 non-finite"):
        fe.push(np.array([0.0, np.inf], np.float32))
    rest = fe.push(STREAM[2000:])
    assert np.array_equal(np.concatenate([features.Frontend().push(STREAM[:2000]), rest]),
                          features.Frontend().push(STREAM))


def test_samples_that_overflow_the_power_spectrum_raise_audio_error() -> None:
    x = np.full(5000, 3e20, np.float32)  # finite, but |X|^2 exceeds float32
    with pytest.raises(AudioError, match="overflow the power spectrum"):
        features.logmel_frames(x)


@pytest.mark.parametrize("bad", [np.zeros((10, 2), np.float32), np.zeros(10, np.int32),
                                 np.array(["a", "b"])])
def test_push_refuses_wrong_shape_or_dtype(bad: np.ndarray) -> None:
    with pytest.raises(AudioError, match="expected"):
        features.Frontend().push(bad)


def test_context_vectors_refuses_frames_of_the_wrong_width() -> None:
    with pytest.raises(SpecMismatchError, match=r"\(n, 128\)"):
        features.context_vectors(np.zeros((10, 100), np.float32))


def test_kernel_refusing_a_table_raises_frontend_error(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = FeatureSpec(fmax=7999.0)  # a spec not cached by other tests
    window = tables.window(spec).copy()
    window[3] = np.nan
    monkeypatch.setattr(features.tables, "window", lambda s: window)
    with pytest.raises(FrontendError, match="window value is not finite"):
        features.Frontend(spec)
