"""Reading recordings (SPEC section 1): soundfile (libsndfile), channel choice, resampling.

libsndfile reads what Python's ``wave`` cannot: the WAVE_FORMAT_EXTENSIBLE header of the
8-channel MIMII recordings, float WAV, FLAC. Every way a file can be unusable ends in an
:class:`AudioError` that names the file and what was expected.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import AudioError
from .spec import DEFAULT_SPEC, FeatureSpec

log = logging.getLogger(__name__)
_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_warned_rates: set[int] = set()

#: Sample rates a recording may have (Hz). Below 1 kHz no machine sound survives and the
#: resampler's output would be thousands of times the file (a 600 KB file whose header
#: says 1 Hz became 1e10 samples); above 384 kHz no audio interface records.
MIN_RATE, MAX_RATE = 1000, 384000
#: Channels a recording may have: MIMII has 8; a header saying 65535 is a broken file.
MAX_CHANNELS = 64
#: Frames read per block when streaming a file (memory per block, not per file).
STREAM_FRAMES = 1 << 16


def select_channel(x: np.ndarray, *, channel: int = 0, mix: bool = False,
                   source: str = "input") -> np.ndarray:
    """Reduce ``(n, channels)`` to ``(n,)``: channel ``channel`` (0 as in MIMII/DCASE
    baselines) or the mean of all channels when ``mix``."""
    if x.ndim == 1:
        if channel != 0:
            raise AudioError(f"{source}: has 1 channel, --channel {channel} asked for (expected 0)")
        return x
    if mix:
        return x.mean(axis=1, dtype=np.float64).astype(np.float32)
    if not 0 <= channel < x.shape[1]:
        raise AudioError(f"{source}: has {x.shape[1]} channels, --channel {channel} asked for "
                         f"(expected 0..{x.shape[1] - 1})")
    return np.ascontiguousarray(x[:, channel])


def resample(x: np.ndarray, rate_in: int, rate_out: int, *, source: str = "input") -> np.ndarray:
    """Polyphase resampling with soxr (the same library on workstation and board, so
    training and the device see the same samples)."""
    if rate_in == rate_out:
        return x
    if rate_in not in _warned_rates:
        log.info("%s: resampling %d Hz to %d Hz", source, rate_in, rate_out)
        _warned_rates.add(rate_in)
    import soxr  # light, and only needed for other rates

    return soxr.resample(x, rate_in, rate_out, quality="HQ").astype(np.float32)


def check_samples(x: np.ndarray, *, spec: FeatureSpec = DEFAULT_SPEC, source: str = "input") -> np.ndarray:
    """Refuse what cannot be scored: non-finite samples, too short for one context vector."""
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(f"{source}: {bad} non-finite samples (NaN or inf); expected finite audio")
    if len(x) < spec.min_samples:
        raise AudioError(
            f"{source}: {len(x)} samples ({len(x) / spec.sample_rate:.3f} s) is too short; "
            f"expected at least {spec.min_samples} samples for one context window "
            f"of {spec.context_frames} frames")
    return x


def check_file(path: str | os.PathLike, *, expected: str = "a WAV/FLAC recording") -> object:
    """Refuse a recording that is missing, a folder, empty, not audio or truncated before
    any of it is used; returns its ``soundfile.info``.

    Raises:
        AudioError: naming the file and what was expected.
    """
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise AudioError(f"{p}: is a folder (expected {expected})")
    if not p.is_file():
        raise AudioError(f"{p}: no such file (expected {expected})")
    if p.stat().st_size == 0:
        raise AudioError(f"{p}: file is empty (expected {expected})")
    try:
        info = sf.info(str(p))
    except sf.LibsndfileError as e:
        raise AudioError(f"{p}: not a readable audio file ({e.error_string}); "
                         "expected WAV, FLAC or another libsndfile format") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioError(f"{p}: sample rate {info.samplerate} Hz; expected {MIN_RATE} to "
                         f"{MAX_RATE} Hz (a damaged or hostile header?)")
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise AudioError(f"{p}: {info.channels} channels; expected 1 to {MAX_CHANNELS}")
    truncated = _TRUNCATED.search(info.extra_info or "")
    if truncated and int(truncated.group(2)) < int(truncated.group(1)):
        raise AudioError(f"{p}: truncated: header declares {truncated.group(1)} data bytes, "
                         f"file holds {truncated.group(2)}")
    return info


def load(path: str | os.PathLike, *, spec: FeatureSpec = DEFAULT_SPEC, channel: int = 0,
         mix: bool = False) -> np.ndarray:
    """Read a recording as ``(n,) float32`` at ``spec.sample_rate``, in [-1, 1) for PCM.

    int16 PCM is scaled by 1/32768 and float files are used as they are (libsndfile does
    both). A multi-channel file gives channel ``channel`` or, with ``mix``, the mean.

    Raises:
        AudioError: missing, empty, truncated, not audio, too short, or non-finite.
    """
    import soundfile as sf

    p = Path(path)
    check_file(p)
    try:
        x, rate = sf.read(str(p), dtype="float32", always_2d=False)
    except sf.LibsndfileError as e:
        raise AudioError(f"{p}: not a readable audio file ({e.error_string}); "
                         "expected WAV, FLAC or another libsndfile format") from None
    if x.size == 0:
        raise AudioError(f"{p}: contains no samples (expected a recording)")
    x = select_channel(x, channel=channel, mix=mix, source=str(p))
    x = resample(x, rate, spec.sample_rate, source=str(p))
    return check_samples(x, spec=spec, source=str(p))


class AudioStream:
    """A recording read in blocks, as :func:`load` would give it, in memory independent of
    its length: channel choice, then soxr's streaming resampler (the same output as
    :func:`resample` on the whole file, sample for sample), then the checks.

    Attributes:
        path: the file.
        n_samples: samples at ``spec.sample_rate`` (for a file of another rate found by one
            counting pass through the resampler: the seed's padding needs it up front).
    """

    def __init__(self, path: str | os.PathLike, *, spec: FeatureSpec = DEFAULT_SPEC,
                 channel: int = 0, mix: bool = False, block: int = STREAM_FRAMES) -> None:
        self.path = Path(path)
        self.spec = spec
        self.channel = channel
        self.mix = mix
        self.info = check_file(self.path)
        if self.info.frames <= 0:
            raise AudioError(f"{self.path}: contains no samples (expected a recording)")
        # Fewer frames per read for many channels: the block's memory stays the same.
        self.block = max(1024, block // self.info.channels)
        rate = self.info.samplerate
        if rate == spec.sample_rate:
            self.n_samples = int(self.info.frames)
        else:
            if rate not in _warned_rates:
                log.info("%s: resampling %d Hz to %d Hz", self.path, rate, spec.sample_rate)
                _warned_rates.add(rate)
            self.n_samples = sum(len(b) for b in self._blocks(check=False))
        if self.n_samples < spec.min_samples:
            check_samples(np.zeros(self.n_samples, np.float32), spec=spec, source=str(self.path))

    def _blocks(self, *, check: bool = True) -> Iterator[np.ndarray]:
        import soundfile as sf

        rate = self.info.samplerate
        resampler = None
        if rate != self.spec.sample_rate:
            import soxr

            resampler = soxr.ResampleStream(rate, self.spec.sample_rate, 1, dtype="float32",
                                            quality="HQ")
        try:
            with sf.SoundFile(str(self.path)) as f:
                while True:
                    x = f.read(self.block, dtype="float32", always_2d=False)
                    last = len(x) < self.block
                    if len(x):
                        x = select_channel(x, channel=self.channel, mix=self.mix,
                                           source=str(self.path))
                    if resampler is not None:
                        x = resampler.resample_chunk(np.ascontiguousarray(x, np.float32),
                                                     last=last)
                    if len(x):
                        if check and not np.isfinite(x.sum()) and not np.all(np.isfinite(x)):
                            bad = int(np.count_nonzero(~np.isfinite(x)))
                            raise AudioError(f"{self.path}: {bad} non-finite samples (NaN or "
                                             "inf) in a block; expected finite audio")
                        yield np.ascontiguousarray(x, dtype=np.float32)
                    if last:
                        return
        except sf.LibsndfileError as e:
            raise AudioError(f"{self.path}: not a readable audio file ({e.error_string}); "
                             "expected WAV, FLAC or another libsndfile format") from None

    def blocks(self) -> Iterator[np.ndarray]:
        """``(k,) float32`` blocks at ``spec.sample_rate``, ``n_samples`` in all."""
        return self._blocks()

    def padded_blocks(self) -> Iterator[np.ndarray]:
        """The blocks with the seed's clip padding (SPEC 2) in front and behind."""
        pad = self.spec.padded_length(self.n_samples) - self.n_samples
        yield np.zeros(pad // 2, np.float32)
        yield from self._blocks()
        yield np.zeros(pad - pad // 2, np.float32)
