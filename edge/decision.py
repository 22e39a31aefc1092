"""Decisions and alarms: a score against the bundle's cutoff, K of the last N for an alarm.

The cutoff is data (``threshold.json``, one per model file); this module only compares and
counts, so a single bang does not page anyone when ``K/N`` asks for persistence.
"""
from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import json
import math
import re
from typing import Any

from .errors import EdgeAdError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_UNITS = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float, *, what: str = "duration") -> float:
    """``"10s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or a bare number of seconds -> seconds (> 0)."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _DURATION.match(text)
        if not m:
            raise EdgeAdError(f"{what} {text!r}: expected a duration such as 10s, 500ms, 2m or 1h")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not (math.isfinite(seconds) and seconds > 0):
        raise EdgeAdError(f"{what} {text!r}: expected a duration above 0, finite")
    return seconds


@dataclasses.dataclass(frozen=True)
class AlarmRule:
    """Alarm when at least ``k`` of the last ``n`` decisions were anomalous (1 <= k <= n)."""

    k: int = 1
    n: int = 1

    # The last N decisions are kept and summed at every step; a day of 1 s steps is far
    # beyond any sensible rule, and a typo's N would otherwise grow memory for months.
    MAX_N = 86400

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n <= self.MAX_N:
            raise EdgeAdError(f"--alarm {self.k}/{self.n}: expected K/N with 1 <= K <= N "
                              f"<= {self.MAX_N}")

    @classmethod
    def parse(cls, text: str) -> "AlarmRule":
        """``"3/5"`` -> ``AlarmRule(3, 5)``."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not m:
            raise EdgeAdError(f"--alarm {text!r}: expected K/N, e.g. 1/1 or 3/5")
        return cls(int(m.group(1)), int(m.group(2)))

    def __str__(self) -> str:
        return f"{self.k}/{self.n}"


@dataclasses.dataclass(frozen=True)
class SignalCheck:
    """Is there a microphone signal at all? Checked on the raw int16 samples of each
    decision window, before any model: a dead or unplugged microphone, a muted input or a
    saturated preamp is ``no_signal``, never a machine ``anomaly`` (digital silence scores
    far above any cutoff, since the model never heard it). The test applies to each step of
    ``--every`` seconds; a window is ``no_signal`` when any of its steps is, since the jump
    into or out of a dead input is itself nothing the model heard.

    - ``silence`` / ``dc``: the step's samples span at most ``max_ptp`` counts peak to
      peak (a live microphone's noise floor spans hundreds); ``silence`` when their
      midpoint is within ``max_ptp`` of 0, ``dc`` (a stuck value) otherwise.
    - ``clipping``: at least ``clip_fraction`` of the step's samples sit at full scale (-32768
      or 32767).

    ``max_ptp = -1`` switches the first test off, ``clip_fraction > 1`` the second.
    """

    max_ptp: int = 8
    clip_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not -1 <= self.max_ptp <= 65535:
            raise EdgeAdError(f"--no-signal-ptp {self.max_ptp}: expected -1 (off) to 65535 counts")
        if not (0 < self.clip_fraction <= 2):   # NaN fails too
            raise EdgeAdError(f"--no-signal-clip {self.clip_fraction}: expected a fraction in "
                              "(0, 1], or above 1 for off")

    def reason(self, lo: int, hi: int, rails: int, n: int) -> str | None:
        """The no-signal reason for a window with min ``lo``, max ``hi``, ``rails`` samples
        at full scale out of ``n``; None when the signal looks alive."""
        if n == 0:
            return None
        if hi - lo <= self.max_ptp:
            return "silence" if abs(lo + hi) / 2 <= self.max_ptp else "dc"
        if rails >= self.clip_fraction * n:
            return "clipping"
        return None


class Alarm:
    """The K-of-N state over a stream of per-decision booleans."""

    def __init__(self, rule: AlarmRule = AlarmRule()) -> None:
        self.rule = rule
        self._last: collections.deque[bool] = collections.deque(maxlen=rule.n)
        self.active = False

    def update(self, anomaly: bool) -> bool:
        """Add one decision; return whether the alarm is on after it."""
        self._last.append(bool(anomaly))
        self.active = sum(self._last) >= self.rule.k
        return self.active


@dataclasses.dataclass(frozen=True)
class Decision:
    """One line of ``edge-ad run`` output.

    ``no_signal`` names why the window holds no usable signal (:class:`SignalCheck`); then
    ``anomaly`` is False and the alarm keeps the state it had (a dead microphone neither
    raises nor clears a machine alarm).

    ``stream_seconds`` is the audio time at the end of the window (samples captured / rate),
    which is what a test or a replay can line up with the input; ``time`` and ``monotonic``
    are the wall and monotonic clocks at the moment of the decision.
    """

    time: str
    monotonic: float
    stream_seconds: float
    score: float
    cutoff: float
    anomaly: bool
    alarm: bool
    window_seconds: float
    vectors: int
    dropped_samples: int
    overruns: int
    short_reads: int
    reopens: int
    no_signal: str | None = None   # "silence", "dc" or "clipping": see SignalCheck
    model: str | None = None       # version of the bundle that scored it (manifest sha256)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))


def utc_now() -> str:
    """Wall clock as ISO 8601 UTC with milliseconds, e.g. ``2026-11-25T13:30:00.123Z``."""
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
