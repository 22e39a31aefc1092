"""The streaming detector: audio blocks in, one decision every ``every`` seconds out.

Per block: the front end turns samples into context vectors (SPEC 2, streaming: no
padding); only those new vectors go through the model, and their feature rows (the
squared error for SPEC 4's ``A(X)``, per-band errors and log-mel statistics for the other
heads, :mod:`edge.heads`) go into a ring the length of the window. A decision scores the
window with the same head and the same function of the summed rows as a training clip, so
the model work per decision is proportional to the new vectors, never to the window.

Decisions fall on audio time (every ``every_samples`` captured samples), not on the wall
clock: a file read with ``--fast`` gives the same lines as the same audio at real time.
"""
from __future__ import annotations

import collections
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from .capture import CaptureStats
from .decision import Alarm, AlarmRule, Decision, SignalCheck, utc_now
from .detector import BundleDetector
from .errors import SettingError
from .heads import Head
from .spec import DEFAULT_SPEC, FeatureSpec

log = logging.getLogger(__name__)


class Backend(Protocol):
    name: str

    def run(self, x: np.ndarray) -> np.ndarray: ...


def _frontend(spec: FeatureSpec) -> Any:
    from .features import Frontend  # the C kernel through cffi

    return Frontend(spec=spec)


def window_vectors(window_s: float, *, spec: FeatureSpec = DEFAULT_SPEC) -> int:
    """Context vectors in a window of ``window_s`` seconds: as many as a clip of that length
    has after the seed's padding (309 for 10 s), so a window is scored like a training clip."""
    n = spec.n_vectors(int(round(window_s * spec.sample_rate)))
    if n < 1:
        raise SettingError(f"--window {window_s:g} s holds no context vector; expected at least "
                           f"{spec.min_samples / spec.sample_rate:.3f} s")
    return n


class Detector:
    """Rolling-window scoring with K-of-N alarms.

    Args:
        backend: anything with ``run((n, 640) float32) -> (n, 640) float32``.
        head: the detector head scoring the window (default SPEC 4's ``A(X)``).
        cutoff: a window is anomalous when its score is above it.
        spec: the bundle's feature spec.
        window_s: window length in seconds (vectors: :func:`window_vectors`).
        every_s: seconds of audio between decisions.
        alarm: K-of-N rule.
        frontend: a streaming front end (``push``, ``reset``); default ``edge.features.Frontend``,
            or, for a backend with ``stream(spec)`` (the C int8 one) and a head the C
            stream's feature row covers (all of edge-ad's), the whole path in C: samples
            in, per-vector feature rows out, one call per block.
        clock: monotonic clock (tests may pass their own).
        signal_check: the no-signal test on the raw samples of each window (None: off).
    """

    def __init__(self, backend: Backend, *, cutoff: float, spec: FeatureSpec = DEFAULT_SPEC,
                 window_s: float = 10.0, every_s: float = 1.0, alarm: AlarmRule = AlarmRule(),
                 frontend: Any = None, clock: Callable[[], float] = time.monotonic,
                 signal_check: SignalCheck | None = SignalCheck(), head: Head | None = None) -> None:
        from .heads import MSEHead

        self.backend = backend
        self.head = head if head is not None else MSEHead(spec)
        self.cutoff = float(cutoff)
        self.spec = spec
        self.window_s = float(window_s)
        self.n_window = window_vectors(window_s, spec=spec)
        self.every_samples = max(1, int(round(every_s * spec.sample_rate)))
        self.alarm = Alarm(alarm)
        scorer = BundleDetector(None, Path(getattr(backend, "path", "")), None, backend, self.head)
        self._cstream = scorer.c_stream(spec) if frontend is None else None
        self.frontend = frontend if frontend is not None else self._cstream or _frontend(spec)
        self.clock = clock
        self.window = scorer.window(self.n_window)
        self._pending: list[np.ndarray] = []
        self._n_pending = 0
        self._samples = 0
        self._gaps = 0
        self._next_decision = self.every_samples
        # Raw-sample statistics per `every` step (min, max, samples at full scale, count)
        # over the last ceil(window / every) steps: the window is no_signal when one of its
        # steps is (see SignalCheck), reported with the newest such step's reason.
        self.signal_check = signal_check
        window_samples = int(round(window_s * spec.sample_rate))
        self._segments: collections.deque[tuple[int, int, int, int]] = collections.deque(
            maxlen=max(1, -(-window_samples // self.every_samples)))
        self._seg = [32767, -32768, 0, 0]
        self.model_version: str | None = None   # stamped on every decision

    def successor(self, backend: Backend, *, cutoff: float, head: Head | None = None) -> "Detector":
        """A detector for another model that continues this one's decision schedule.

        Call it right after a decision: the new detector frames the audio that follows
        from scratch and decides at the same stream times as this one, once its own window
        is full. Until then this one keeps deciding (see ``edge-ad run``'s model switch),
        so no decision is skipped and none mixes the two models' errors.
        """
        new = Detector(backend, cutoff=cutoff, spec=self.spec, window_s=self.window_s,
                       every_s=self.every_samples / self.spec.sample_rate, alarm=self.alarm.rule,
                       clock=self.clock, signal_check=self.signal_check, head=head)
        new._samples, new._next_decision, new._gaps = self._samples, self._next_decision, self._gaps
        return new

    @property
    def samples(self) -> int:
        """Samples pushed so far."""
        return self._samples

    @property
    def samples_to_decision(self) -> int:
        """Samples still to push before the next decision falls due."""
        return self._next_decision - self._samples

    @property
    def stream_seconds(self) -> float:
        return self._samples / self.spec.sample_rate

    def _add_vectors(self, x: np.ndarray) -> None:
        # Vectors wait until a decision is due and then go through the model in one batch:
        # one interpreter call per decision instead of one per audio block, which is most of
        # the per-second cost on a board (a call costs tens of microseconds of overhead).
        if len(x):
            self._pending.append(x)
            self._n_pending += len(x)
        if self._n_pending >= self.n_window:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        x = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending.clear()
        self._n_pending = 0
        x = np.ascontiguousarray(x, dtype=np.float32)
        # Only the newest n_window vectors can matter: after a long block the rest would be
        # overwritten in the ring before any decision reads them.
        self.window.add_vectors(x)

    @property
    def vectors_seen(self) -> int:
        """Vectors that reached the window so far."""
        return self.window.ring.seen

    def window_score(self) -> float:
        """The head's score of the vectors in the window (full window only)."""
        # Summing n_window (about 300) feature rows costs microseconds; the model is the
        # work that matters, and it only ever sees new vectors.
        return self.window.score()

    def push(self, samples: np.ndarray, stats: CaptureStats | None = None) -> list[Decision]:
        """Feed ``(n,) int16`` samples; return the decisions that fell due inside them.

        When ``stats.gaps`` has grown since the last push, the samples are not contiguous
        with what came before: the front end starts framing afresh (no frame spans a gap),
        while the vectors already in the window stay valid.
        """
        stats = stats if stats is not None else CaptureStats()
        if stats.gaps != self._gaps:
            self._gaps = stats.gaps
            self.frontend.reset()
        decisions: list[Decision] = []
        i = 0
        n = len(samples)
        while i < n:
            take = min(n - i, self._next_decision - self._samples)
            chunk = samples[i:i + take]
            if self.signal_check is not None and take:
                self._observe_raw(chunk)
            if self._cstream is not None:
                self.window.add_rows(self._cstream.push(chunk))
            else:
                self._add_vectors(self.frontend.push(chunk))
            self._samples += take
            i += take
            if self._samples == self._next_decision:
                self._next_decision += self.every_samples
                self._segments.append(tuple(self._seg))
                self._seg = [32767, -32768, 0, 0]
                self._flush()
                if self.window.full:
                    decisions.append(self._decide(stats))
        return decisions

    def _observe_raw(self, x: np.ndarray) -> None:
        lo, hi = int(x.min()), int(x.max())
        seg = self._seg
        seg[0] = min(seg[0], lo)
        seg[1] = max(seg[1], hi)
        if lo == -32768 or hi == 32767:
            seg[2] += int(np.count_nonzero((x == -32768) | (x == 32767)))
        seg[3] += len(x)

    def no_signal(self) -> str | None:
        """Why the current window holds no usable signal, or None (see SignalCheck)."""
        if self.signal_check is None or not self._segments:
            return None
        # Any step of the window without signal makes the window's score meaningless
        # (the jump into or out of a dead input sounds like nothing the model heard).
        for seg in reversed(self._segments):
            reason = self.signal_check.reason(*seg)
            if reason is not None:
                return reason
        return None

    def _decide(self, stats: CaptureStats) -> Decision:
        score = self.window_score()
        no_signal = self.no_signal()
        if no_signal is None:
            anomaly = score > self.cutoff
            alarm = self.alarm.update(anomaly)
        else:
            # Not the machine's fault: no anomaly, and the alarm neither rises nor clears.
            anomaly, alarm = False, self.alarm.active
        return Decision(time=utc_now(), monotonic=round(self.clock(), 6),
                        stream_seconds=round(self.stream_seconds, 6), score=score,
                        cutoff=self.cutoff, anomaly=bool(anomaly), alarm=bool(alarm),
                        window_seconds=self.window_s, vectors=self.n_window,
                        dropped_samples=stats.dropped_samples, overruns=stats.overruns,
                        short_reads=stats.short_reads, reopens=stats.reopens,
                        no_signal=no_signal, model=self.model_version)
