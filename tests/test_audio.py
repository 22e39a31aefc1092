"""edge.audio (SPEC section 1) against independent readers and resamplers: scipy.io.wavfile
for the 8-channel WAVE_FORMAT_EXTENSIBLE MIMII excerpts, scipy.signal.resample_poly for
rate conversion; and every way a file can be unusable gives an AudioError naming it."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import scipy.io.wavfile
import scipy.signal
import soundfile as sf

from edge import audio
from edge.errors import AudioError, EdgeAdError
from edge.spec import DEFAULT_SPEC

DATA = Path(__file__).parent / "data" / "mimii-valve"
MIMII = DATA / "normal_00000000_2s.wav"
SR = 16000


def test_mimii_excerpt_is_8_channel_wave_format_extensible() -> None:
    head = MIMII.read_bytes()[:40]
    assert head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    assert int.from_bytes(head[20:22], "little") == 0xFFFE   # WAVE_FORMAT_EXTENSIBLE
    assert int.from_bytes(head[22:24], "little") == 8        # channels


@pytest.mark.parametrize("channel", [0, 3, 7])
def test_channel_of_8_channel_wavex_equals_scipy_wavfile(channel: int) -> None:
    rate, pcm = scipy.io.wavfile.read(MIMII)
    assert rate == SR and pcm.dtype == np.int16 and pcm.shape[1] == 8
    x = audio.load(MIMII, channel=channel)
    assert x.dtype == np.float32 and x.shape == (pcm.shape[0],)
    assert np.array_equal(x, pcm[:, channel] / np.float32(32768))


def test_default_is_channel_0_and_mix_is_the_channel_mean() -> None:
    _, pcm = scipy.io.wavfile.read(MIMII)
    assert np.array_equal(audio.load(MIMII), pcm[:, 0] / np.float32(32768))
    mixed = audio.load(MIMII, mix=True)
    assert np.abs(mixed - pcm.mean(axis=1) / 32768).max() < 1e-6


def test_float_wav_is_used_as_it_is(tmp_path: Path) -> None:
    x = np.random.default_rng(0).uniform(-1.5, 1.5, SR).astype(np.float32)  # > 1 kept
    path = tmp_path / "float.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    assert sf.info(path).subtype == "FLOAT"
    assert np.array_equal(audio.load(path), x)


def test_48khz_is_resampled_to_16khz_like_resample_poly(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    rate = 48000
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(1)
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t + 1)
         + 0.01 * rng.standard_normal(t.size)).astype(np.float32)
    path = tmp_path / "rate48k.wav"
    sf.write(path, x, rate, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="edge.audio"):
        got = audio.load(path)
    want = scipy.signal.resample_poly(x.astype(np.float64), 1, 3)
    assert got.dtype == np.float32
    assert abs(len(got) - len(want)) <= 1
    n = min(len(got), len(want))
    inner = slice(200, n - 200)  # the two resamplers treat the clip edges differently
    err = got[inner] - want[inner]
    assert np.sqrt(np.mean(err ** 2)) < 1e-2 * np.sqrt(np.mean(want[inner] ** 2))  # 0.3% seen
    assert np.abs(err).max() < 5e-3
    assert "resampling 48000 Hz to 16000 Hz" in caplog.text


def test_silent_clip_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.int16), SR, subtype="PCM_16")
    assert not audio.load(path).any()


# ---- unusable input: one clear AudioError naming the file -----------------------------

def _pcm_wav(path: Path, n: int, channels: int = 1) -> Path:
    rng = np.random.default_rng(2)
    sf.write(path, rng.integers(-3000, 3000, (n, channels)).astype(np.int16), SR, subtype="PCM_16")
    return path


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav: no such file"):
        audio.load(tmp_path / "nope.wav")


def test_an_empty_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        audio.load(path)


def test_a_truncated_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = _pcm_wav(tmp_path / "cut.wav", 2 * SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated"):
        audio.load(path)


def test_header_only_file_has_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "header.wav"
    sf.write(path, np.zeros((0, 1), np.int16), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match=r"header\.wav: contains no samples"):
        audio.load(path)


def test_a_file_that_is_not_audio_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 50)
    with pytest.raises(AudioError, match=r"notes\.wav: not a readable audio file"):
        audio.load(path)


def test_a_clip_too_short_for_one_context_window_is_refused(tmp_path: Path) -> None:
    n = DEFAULT_SPEC.min_samples - 1
    path = _pcm_wav(tmp_path / "short.wav", n)
    with pytest.raises(AudioError, match=r"short\.wav: .* too short"):
        audio.load(path)
    # one sample more is enough, and gives exactly one context vector
    path = _pcm_wav(tmp_path / "enough.wav", n + 1)
    assert DEFAULT_SPEC.n_vectors(len(audio.load(path))) == 1


def test_non_finite_samples_are_refused_and_counted(tmp_path: Path) -> None:
    x = np.zeros(SR, np.float32)
    x[10], x[20] = np.nan, np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 2 non-finite"):
        audio.load(path)


@pytest.mark.parametrize("channel, channels", [(8, 8), (-1, 8), (1, 1)])
def test_a_channel_out_of_range_is_refused_naming_the_channel_count(tmp_path: Path, channel: int,
                                                                    channels: int) -> None:
    path = _pcm_wav(tmp_path / "multi.wav", SR, channels)
    with pytest.raises(AudioError, match=rf"multi\.wav: has {channels} channel.*--channel {channel}"):
        audio.load(path, channel=channel)


def test_audio_errors_are_edge_ad_errors_and_value_errors(tmp_path: Path) -> None:
    with pytest.raises(EdgeAdError) as info:
        audio.load(tmp_path / "missing.wav")
    assert isinstance(info.value, ValueError) and info.value.exit_code == 2


def test_a_folder_is_refused_as_a_folder_not_as_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=rf"{tmp_path.name}: is a folder \(expected a WAV/FLAC"):
        audio.load(tmp_path)


def test_the_streaming_file_source_refuses_what_load_refuses(tmp_path: Path) -> None:
    from edge.capture import FileSource

    path = _pcm_wav(tmp_path / "cut.wav", 2 * SR)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.wav: truncated") as streaming:
        FileSource(path)
    with pytest.raises(AudioError) as whole:
        audio.load(path)
    assert str(streaming.value) == str(whole.value)
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: file is empty"):
        FileSource(tmp_path / "empty.wav")
