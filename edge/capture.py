"""Audio sources: one iterator interface over an ALSA device, a WAV file and stdin.

Every source yields ``(n,) int16`` blocks of mono audio at the spec's sample rate and keeps
a :class:`CaptureStats` of what went wrong on the way (overruns, short reads, dropped
samples, reopens). A source never hides a gap: whenever the samples it yields are not
contiguous with the previous block it increments ``stats.gaps``, so the consumer can
restart its framing instead of building a frame across the gap.

``alsaaudio`` (pyalsaaudio) is imported lazily, so a board without it can still score
files or read ``arecord ... | edge-ad run --device -``.
"""
from __future__ import annotations

import dataclasses
import errno
import logging
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any, Iterator, Protocol

import numpy as np

from .audio import check_file, select_channel
from .errors import AudioError, DeviceError
from .spec import DEFAULT_SPEC, FeatureSpec

log = logging.getLogger(__name__)

#: samples per read; 1024 samples = 64 ms at 16 kHz: short enough for a 1 s decision
#: cadence, long enough that a Pi's Python loop is not woken needlessly often.
DEFAULT_BLOCK = 1024
#: samples per read of a file read as fast as possible (--fast): nothing waits on a block,
#: so large ones spend less time per sample in Python (decisions still fall on audio time)
FAST_BLOCK = 32768


@dataclasses.dataclass
class CaptureStats:
    """Counters of a source since it started; reported in every decision line.

    Attributes:
        samples: samples yielded.
        dropped_samples: samples lost (overrun, device gone), estimated from the clock
            where the driver does not say how many.
        overruns: times the capture buffer overflowed (ALSA ``EPIPE``).
        short_reads: reads that returned fewer samples than asked for.
        reopens: times the device was opened again after failing.
        gaps: discontinuities in the yielded samples (after an overrun or a reopen).
    """

    samples: int = 0
    dropped_samples: int = 0
    overruns: int = 0
    short_reads: int = 0
    reopens: int = 0
    gaps: int = 0

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Source(Protocol):
    """What every audio source offers: iterate ``(n,) int16`` blocks, count faults."""

    name: str
    stats: CaptureStats

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def stop(self) -> None:
        """Ask the iteration to end after the current block (thread- and signal-safe)."""

    def close(self) -> None: ...


def to_int16(x: np.ndarray) -> np.ndarray:
    """``(n,)`` float samples in [-1, 1) to ``(n,) int16`` (scale 32768, rounded, clipped),
    as a 16-bit ADC would give them."""
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------------- ALSA
def _alsa_error_text(e: BaseException) -> str:
    return str(e).strip() or type(e).__name__


def _is_busy(text: str) -> bool:
    return "busy" in text.lower() or f"[Errno {errno.EBUSY}]" in text


def _is_overrun(text: str) -> bool:
    return "broken pipe" in text.lower() or "epipe" in text.lower()


class AlsaSource:
    """Capture from an ALSA PCM through pyalsaaudio: 16 kHz, mono, S16_LE.

    ``device`` is any ALSA PCM name (``hw:1``, ``hw:1,0``, ``plughw:1``, ``default``,
    a name from ``~/.asoundrc``). A raw ``hw`` device that cannot do 16 kHz mono is refused
    with a hint to use ``plughw``, which converts in alsa-lib.

    Faults: opening fails -> :class:`DeviceError` (exit code ``EXIT_DEVICE``); an overrun
    (pyalsaaudio returns ``-EPIPE`` or raises ``Broken pipe``) or a short read is counted
    and capture goes on; any other read error means the device went away: it is closed
    and reopened with exponential backoff (``backoff_s`` doubling up to ``max_backoff_s``),
    logged at every attempt, for as long as the process runs (until :meth:`stop`).

    Args:
        device: ALSA PCM name.
        spec: sample rate comes from here.
        block: samples per read (the ALSA period size).
        backoff_s, max_backoff_s: reopen delays.
        alsa_module: the pyalsaaudio module; tests may pass a stand-in.
    """

    def __init__(self, device: str, *, spec: FeatureSpec = DEFAULT_SPEC, block: int = DEFAULT_BLOCK,
                 backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 alsa_module: Any = None) -> None:
        if alsa_module is None:
            try:
                import alsaaudio as alsa_module
            except ImportError:
                raise DeviceError(
                    f"{device}: pyalsaaudio is not installed (pip install 'edge-ad[alsa]'); "
                    "or read a file, or pipe arecord into --device -") from None
        self._alsa = alsa_module
        self.name = device
        self.spec = spec
        self.block = int(block)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats = CaptureStats()
        self._stop = threading.Event()
        self._pcm: Any = None
        self._pcm = self._open()

    def _open(self) -> Any:
        a = self._alsa
        try:
            pcm = a.PCM(type=a.PCM_CAPTURE, mode=a.PCM_NORMAL, device=self.name, channels=1,
                        rate=self.spec.sample_rate, format=a.PCM_FORMAT_S16_LE,
                        periodsize=self.block)
        except a.ALSAAudioError as e:
            text = _alsa_error_text(e)
            if _is_busy(text):
                raise DeviceError(f"{self.name}: capture device is busy ({text}); another program "
                                  "(arecord, PulseAudio, a second edge-ad) holds it") from None
            raise DeviceError(f"{self.name}: cannot open capture device ({text}); list devices "
                              "with 'arecord -l' and name one as hw:CARD or plughw:CARD") from None
        info = pcm.info() if hasattr(pcm, "info") else {}
        rate, channels = info.get("rate", self.spec.sample_rate), info.get("channels", 1)
        if rate != self.spec.sample_rate or channels != 1:
            pcm.close()
            raise DeviceError(f"{self.name}: device gives {rate} Hz, {channels} channel(s); expected "
                              f"{self.spec.sample_rate} Hz mono: use plughw:... to let ALSA convert")
        return pcm

    def _reopen(self, reason: str) -> bool:
        """Close and open again with backoff until it works or :meth:`stop` is called."""
        lost_at = time.monotonic()
        try:
            self._pcm.close()
        except Exception:  # the device is gone already; closing is best effort
            pass
        self._pcm = None
        delay = self.backoff_s
        attempt = 0
        log.error("%s: capture failed (%s); reopening", self.name, reason)
        while not self._stop.is_set():
            attempt += 1
            try:
                self._pcm = self._open()
            except DeviceError as e:
                log.warning("%s: reopen attempt %d failed: %s; next in %.1f s",
                            self.name, attempt, e, delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, self.max_backoff_s)
                continue
            gone = time.monotonic() - lost_at
            self.stats.reopens += 1
            self.stats.gaps += 1
            self.stats.dropped_samples += int(gone * self.spec.sample_rate)
            log.warning("%s: reopened after %.1f s (attempt %d)", self.name, gone, attempt)
            return True
        return False

    def __iter__(self) -> Iterator[np.ndarray]:
        last_read = time.monotonic()
        while not self._stop.is_set():
            try:
                n, data = self._pcm.read()
            except self._alsa.ALSAAudioError as e:
                text = _alsa_error_text(e)
                if self._stop.is_set():
                    return  # a signal interrupted the read: stopping, not a failure
                if _is_overrun(text):
                    n, data = -errno.EPIPE, b""
                elif "interrupted system call" in text.lower():
                    continue
                else:
                    if not self._reopen(text):
                        return
                    last_read = time.monotonic()
                    continue
            now = time.monotonic()
            if n < 0:
                # Overrun: the driver's buffer filled while we were away. pyalsaaudio has
                # already re-prepared the PCM; what was lost is estimated from the clock.
                self.stats.overruns += 1
                self.stats.gaps += 1
                lost = int(max(0.0, now - last_read) * self.spec.sample_rate) - self.block
                self.stats.dropped_samples += max(lost, 0)
                log.warning("%s: overrun (%d so far)", self.name, self.stats.overruns)
                last_read = now
                continue
            last_read = now
            if n == 0:
                continue
            if n < self.block:
                self.stats.short_reads += 1
            block = np.frombuffer(data, dtype="<i2", count=n).astype(np.int16, copy=True)
            self.stats.samples += len(block)
            yield block

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()
        if self._pcm is not None:
            self._pcm.close()
            self._pcm = None


# --------------------------------------------------------------------------------- file
class FileSource:
    """A recording read in blocks with soundfile: channel choice and resampling as
    :func:`edge.audio.load` (channel 0 by default, soxr for other rates), paced at real
    time unless ``fast``; ``loop`` starts over at the end (for soak tests and demos).

    A 16-bit PCM file at the spec's rate is read as int16, as it is stored (no float pass
    and rounding back), in blocks of :data:`FAST_BLOCK` samples when ``fast``.
    """

    def __init__(self, path: str | os.PathLike, *, spec: FeatureSpec = DEFAULT_SPEC,
                 block: int = DEFAULT_BLOCK, fast: bool = False, loop: bool = False,
                 channel: int = 0, mix: bool = False) -> None:
        self.name = str(path)
        self.spec = spec
        self.block = int(block)
        self.fast = fast
        self.loop = loop
        self.channel = channel
        self.mix = mix
        self.stats = CaptureStats()
        self._stop = threading.Event()
        p = Path(path)
        self._info = check_file(p, expected="a WAV/FLAC recording, an ALSA device name such "
                                            "as hw:1, or - for stdin")
        if self._info.frames == 0:
            raise AudioError(f"{p}: contains no samples (expected a recording)")
        self._path = p

    def _blocks_once(self) -> Iterator[np.ndarray]:
        import soundfile as sf

        rate = self._info.samplerate
        resampler = None
        if rate != self.spec.sample_rate:
            import soxr  # the same resampler as edge.audio, in its streaming form

            log.info("%s: resampling %d Hz to %d Hz", self.name, rate, self.spec.sample_rate)
            resampler = soxr.ResampleStream(rate, self.spec.sample_rate, 1, dtype="float32",
                                            quality="HQ")
        read_block = max(1, self.block * rate // self.spec.sample_rate)
        if resampler is None and self._info.subtype == "PCM_16" and not self.mix:
            yield from self._int16_blocks(max(read_block, FAST_BLOCK) if self.fast else read_block)
            return
        with sf.SoundFile(str(self._path)) as f:
            while True:
                x = f.read(read_block, dtype="float32", always_2d=False)
                last = len(x) < read_block
                if len(x):
                    x = select_channel(x, channel=self.channel, mix=self.mix, source=self.name)
                if resampler is not None:
                    x = resampler.resample_chunk(x, last=last)
                if len(x):
                    if not np.all(np.isfinite(x)):
                        raise AudioError(f"{self.name}: non-finite samples (NaN or inf); "
                                         "expected finite audio")
                    yield to_int16(x)
                if last:
                    return

    def _int16_blocks(self, n: int) -> Iterator[np.ndarray]:
        import soundfile as sf

        with sf.SoundFile(str(self._path)) as f:
            while True:
                x = f.read(n, dtype="int16", always_2d=False)
                if len(x):
                    yield np.ascontiguousarray(
                        select_channel(x, channel=self.channel, source=self.name))
                if len(x) < n:
                    return

    def __iter__(self) -> Iterator[np.ndarray]:
        start = time.monotonic()
        while not self._stop.is_set():
            for block in self._blocks_once():
                if self._stop.is_set():
                    return
                if not self.fast:
                    # Pace by the sample count, not per block, so sleeps do not drift.
                    due = start + (self.stats.samples + len(block)) / self.spec.sample_rate
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                self.stats.samples += len(block)
                yield block
            if not self.loop:
                return
            # The loop seam is a discontinuity like any other.
            self.stats.gaps += 1

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


# -------------------------------------------------------------------------------- stdin
class StdinSource:
    """Raw S16_LE mono at the spec's rate from a byte stream (``arecord -t raw ... |``).

    A read that returns fewer bytes than asked for (a pipe delivers what it has) is counted
    as a short read; an odd trailing byte is kept for the next read.
    """

    POLL_S = 0.2   # longest wait between looks at the stop flag

    def __init__(self, stream: IO[bytes] | None = None, *, spec: FeatureSpec = DEFAULT_SPEC,
                 block: int = DEFAULT_BLOCK) -> None:
        self.name = "stdin"
        self.spec = spec
        self.block = int(block)
        self.stats = CaptureStats()
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[np.ndarray]:
        want = 2 * self.block
        carry = b""
        read = getattr(self._stream, "read1", self._stream.read)
        try:
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None   # an in-memory stream never blocks
        while not self._stop.is_set():
            if fd is not None:
                # A blocked read would outlive SIGTERM (Python retries it after the
                # handler): wait for data in short slices, looking at the stop flag between
                # them, and read the descriptor itself, so no data hides in a buffer that
                # select() cannot see.
                ready, _, _ = select.select([fd], [], [], self.POLL_S)
                if not ready:
                    continue
                data = os.read(fd, want - len(carry))
            else:
                data = read(want - len(carry))
            if not data:
                return
            data = carry + data
            if len(data) < want:
                self.stats.short_reads += 1
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            if usable == 0:
                continue
            block = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
            self.stats.samples += len(block)
            yield block

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        self._stop.set()


def open_source(device: str, *, spec: FeatureSpec = DEFAULT_SPEC, block: int = DEFAULT_BLOCK,
                fast: bool = False, loop: bool = False) -> Source:
    """The source a ``--device`` names: ``-`` is stdin, an existing file (or a name ending
    in an audio suffix) is a recording, anything else an ALSA PCM name."""
    if device == "-":
        return StdinSource(spec=spec, block=block)
    if Path(device).is_dir():
        raise AudioError(f"--device {device}: is a folder (expected a WAV/FLAC recording, an "
                         "ALSA device name such as hw:1, or - for stdin)")
    if Path(device).is_file() or Path(device).suffix.lower() in {".wav", ".flac", ".ogg", ".aiff"}:
        return FileSource(device, spec=spec, block=block, fast=fast, loop=loop)
    return AlsaSource(device, spec=spec, block=block)
