"""Capture through the real ALSA library with the file-backed card of tests/alsa/asound.conf,
and the fault paths (busy, overrun, short read, device gone) with a stand-in PCM where no
real device can be made to fail on cue.
"""
from __future__ import annotations

import errno
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from edge.capture import AlsaSource, FileSource, StdinSource, open_source, to_int16
from edge.errors import EXIT_DEVICE, AudioError, DeviceError
from ci_env import in_ci

ALSA_CONF = Path(__file__).parent / "alsa" / "asound.conf"
alsaaudio = pytest.importorskip("alsaaudio") if not in_ci() else __import__("alsaaudio")


@pytest.fixture
def alsa_card(tmp_path, monkeypatch):
    """Point alsa-lib at the test configuration; returns a function that fills the raw file."""
    raw = tmp_path / "card.raw"
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(ALSA_CONF))
    monkeypatch.setenv("EDGE_AD_ALSA_RAW", str(raw))

    def fill(samples: np.ndarray) -> Path:
        samples.astype("<i2").tofile(raw)
        return raw

    return fill


def _take(source, n: int) -> np.ndarray:
    got, total = [], 0
    for block in source:
        got.append(block)
        total += len(block)
        if total >= n:
            break
    return np.concatenate(got)[:n]


@pytest.mark.parametrize("name", ["hw:1", "hw:1,0", "plughw:1", "default"])
def test_alsa_names_capture_the_card_samples_bit_exact(alsa_card, name):
    x = (np.random.default_rng(0).normal(0, 3000, 16000)).astype(np.int16)
    alsa_card(x)
    src = open_source(name, block=1000)
    assert isinstance(src, AlsaSource)
    try:
        y = _take(src, 16000)
    finally:
        src.close()
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, x)
    assert src.stats.samples >= 16000 and src.stats.overruns == 0 and src.stats.short_reads == 0


def test_missing_device_is_a_clear_device_error(alsa_card, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGE_AD_ALSA_RAW", str(tmp_path / "absent.raw"))  # the card's file is gone
    with pytest.raises(DeviceError, match=r"hw:1: cannot open capture device .*arecord -l") as e:
        AlsaSource("hw:1")
    assert e.value.exit_code == EXIT_DEVICE
    with pytest.raises(DeviceError, match="nosuchpcm: cannot open"):
        AlsaSource("nosuchpcm")


# ---- stand-in PCMs for faults a file cannot produce on cue -----------------------------
class FakeAlsa:
    """Mimics the pyalsaaudio module: PCM() runs the next opener from a script."""

    PCM_CAPTURE, PCM_NORMAL, PCM_FORMAT_S16_LE = 1, 0, 2

    class ALSAAudioError(Exception):
        pass

    def __init__(self, openers):
        self.openers = list(openers)
        self.opened = 0

    def PCM(self, **kw):
        self.opened += 1
        opener = self.openers.pop(0)
        return opener(self, kw)


class ScriptedPcm:
    def __init__(self, reads, rate=16000, channels=1):
        self.reads = list(reads)
        self._info = {"rate": rate, "channels": channels}
        self.closed = False

    def info(self):
        return self._info

    def read(self):
        r = self.reads.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    def close(self):
        self.closed = True


def test_the_stand_in_follows_the_real_module(alsa_card):
    """What the stand-in assumes of pyalsaaudio, checked against the real module and
    alsa-lib on the file-backed card: the constants, ``read()`` giving ``(frames, bytes)``
    of two bytes a frame, ``info()`` naming rate and channels, and a failed open raising
    ``ALSAAudioError`` whose text ends in the device name in brackets."""
    for name in ("PCM_CAPTURE", "PCM_NORMAL", "PCM_FORMAT_S16_LE"):
        assert getattr(FakeAlsa, name) == getattr(alsaaudio, name), name
    alsa_card(np.arange(4096, dtype=np.int16))
    a = alsaaudio
    pcm = a.PCM(type=a.PCM_CAPTURE, mode=a.PCM_NORMAL, device="hw:1", channels=1, rate=16000,
                format=a.PCM_FORMAT_S16_LE, periodsize=1024)
    try:
        n, data = pcm.read()
        assert isinstance(n, int) and isinstance(data, bytes) and len(data) == 2 * n == 2048
        assert np.array_equal(np.frombuffer(data, "<i2"), np.arange(1024))
        info = pcm.info()
        assert (info["rate"], info["channels"]) == (16000, 1)
    finally:
        pcm.close()
    with pytest.raises(a.ALSAAudioError) as e:
        a.PCM(type=a.PCM_CAPTURE, mode=a.PCM_NORMAL, device="nosuchpcm")
    assert str(e.value).startswith("No such file or directory [nosuchpcm]")


def _frames(n: int, value: int = 7) -> tuple[int, bytes]:
    return n, np.full(n, value, "<i2").tobytes()


def _pcm(reads, **kw):
    return lambda mod, args: ScriptedPcm(reads, **kw)


def _fail(text):
    def opener(mod, args):
        raise mod.ALSAAudioError(text)
    return opener


def test_busy_device_says_busy_and_exits_with_the_device_code():
    fake = FakeAlsa([_fail("Device or resource busy [hw:1]")])
    with pytest.raises(DeviceError, match="busy") as e:
        AlsaSource("hw:1", alsa_module=fake)
    assert e.value.exit_code == EXIT_DEVICE


def test_a_device_without_16k_mono_is_refused_with_a_plughw_hint():
    fake = FakeAlsa([_pcm([], rate=48000, channels=2)])
    with pytest.raises(DeviceError, match="48000 Hz, 2 channel.*plughw"):
        AlsaSource("hw:1", alsa_module=fake)


def test_overruns_and_short_reads_are_counted_and_capture_goes_on():
    fake = FakeAlsa([])
    reads = [_frames(1024, 1), (-errno.EPIPE, b""), _frames(1024, 2),
             fake.ALSAAudioError("Broken pipe [hw:1]"), _frames(300, 3), _frames(1024, 4)]
    fake.openers = [_pcm(reads)]
    src = AlsaSource("hw:1", block=1024, alsa_module=fake)
    blocks = _take(src, 1024 * 3 + 300)
    assert list(np.unique(blocks)) == [1, 2, 3, 4]
    assert src.stats.overruns == 2 and src.stats.short_reads == 1 and src.stats.gaps == 2
    assert src.stats.samples == 1024 * 3 + 300 and fake.opened == 1


def test_device_gone_mid_run_is_reopened_with_backoff_and_logged(caplog):
    caplog.set_level(logging.INFO)
    fake = FakeAlsa([])
    gone = fake.ALSAAudioError("No such device [hw:1]")
    fake.openers = [_pcm([_frames(1024, 1), gone]), _fail("No such file or directory [hw:1]"),
                    _fail("No such file or directory [hw:1]"), _pcm([_frames(1024, 2), gone]),
                    _pcm([_frames(1024, 3)])]
    src = AlsaSource("hw:1", block=1024, backoff_s=0.05, max_backoff_s=1.0, alsa_module=fake)
    t0 = time.monotonic()
    blocks = _take(src, 3 * 1024)
    elapsed = time.monotonic() - t0
    assert list(np.unique(blocks)) == [1, 2, 3]
    assert src.stats.reopens == 2 and src.stats.gaps == 2 and fake.opened == 5
    # Two failed attempts wait 0.05 s then 0.1 s (doubling) before the third succeeds.
    assert elapsed >= 0.15
    assert "capture failed (No such device [hw:1]); reopening" in caplog.text
    assert "reopen attempt 1 failed" in caplog.text and "next in 0.1 s" in caplog.text
    assert caplog.text.count("reopened after") == 2


def test_reopen_gives_up_only_when_stopped():
    fake = FakeAlsa([])
    fake.openers = [_pcm([fake.ALSAAudioError("No such device")])] + \
        [_fail("No such device")] * 100
    src = AlsaSource("hw:1", backoff_s=0.01, max_backoff_s=0.02, alsa_module=fake)
    import threading

    threading.Timer(0.3, src.stop).start()
    assert list(src) == []  # ends only because stop() was called
    assert fake.opened > 3


# ---- file and stdin ----------------------------------------------------------------------
def test_file_source_resamples_and_takes_channel_0_like_edge_audio(tmp_path):
    import soundfile as sf
    from edge.audio import load

    rng = np.random.default_rng(1)
    stereo = rng.normal(0, 0.1, (44100, 2)).astype(np.float32)
    path = tmp_path / "a.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    got = np.concatenate(list(FileSource(path, fast=True, block=777)))
    want = to_int16(load(path))
    assert abs(len(got) - len(want)) <= 2
    n = min(len(got), len(want))
    # soxr in streaming and one-shot form agree to within a few LSB.
    assert np.max(np.abs(got[:n].astype(int) - want[:n].astype(int))) <= 2


def test_file_source_paces_at_real_time_unless_fast(tmp_path):
    import soundfile as sf

    path = tmp_path / "b.wav"
    sf.write(path, np.zeros(8000, np.int16), 16000, subtype="PCM_16")
    t0 = time.monotonic()
    assert sum(len(b) for b in FileSource(path)) == 8000
    assert time.monotonic() - t0 >= 0.45  # half a second of audio takes half a second
    with pytest.raises(AudioError, match="no such file"):
        FileSource(tmp_path / "none.wav")


def test_stdin_source_reassembles_odd_byte_reads(tmp_path):
    x = np.arange(-5000, 5000, dtype="<i2")
    data = x.tobytes()

    class Dribble:
        def __init__(self):
            self.pos = 0

        def read(self, n):
            n = min(n, 333, len(data) - self.pos)  # odd sizes split samples
            out = data[self.pos:self.pos + n]
            self.pos += n
            return out

    src = StdinSource(Dribble(), block=256)
    y = np.concatenate(list(src))
    np.testing.assert_array_equal(y, x)
    assert src.stats.short_reads > 0
