"""The feature spec: every number of SPEC section 2 in one frozen object.

Nothing else in edge-ad writes these numbers down. Tables (window, mel filterbank) are
derived from a spec by :mod:`edge.tables`; bundles carry the spec as JSON with its digest
so the device refuses a model trained on different features.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from .errors import SpecMismatchError

SPEC_SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """Log-mel context features, the seed's choices (SPEC section 2).

    Attributes:
        sample_rate: Hz; other rates are resampled on input.
        n_fft: frame length and FFT size in samples (64 ms).
        hop_length: samples between frames (32 ms).
        window: ``"hamming"``, periodic (``0.54 - 0.46 cos(2 pi n / n_fft)``).
        n_mels: mel bands, Slaney scale and Slaney (area) normalisation.
        fmin, fmax: band edges in Hz.
        power: exponent of the magnitude spectrum (2: power).
        log_floor: mel energies below it are clamped before ``log10``.
        context_frames: consecutive frames concatenated into one vector, oldest first.
        clip_padding: ``"seed"`` pads a clip with ``n_fft - N mod n_fft`` zeros,
            half in front (floor) and half behind (ceil).
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 512
    window: str = "hamming"
    n_mels: int = 128
    fmin: float = 0.0
    fmax: float = 8000.0
    power: float = 2.0
    log_floor: float = 1e-10
    context_frames: int = 5
    clip_padding: str = "seed"

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate={self.sample_rate} (expected > 0)")
        if self.n_fft <= 0 or self.n_fft & (self.n_fft - 1):
            problems.append(f"n_fft={self.n_fft} (expected a power of two)")
        if not 0 < self.hop_length <= self.n_fft:
            problems.append(f"hop_length={self.hop_length} (expected 1..n_fft)")
        if self.window != "hamming":
            problems.append(f"window={self.window!r} (expected 'hamming')")
        if self.n_mels <= 0:
            problems.append(f"n_mels={self.n_mels} (expected > 0)")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"fmin={self.fmin}, fmax={self.fmax} (expected 0 <= fmin < fmax <= sr/2)")
        if self.power != 2.0:
            problems.append(f"power={self.power} (expected 2.0)")
        if not self.log_floor > 0:
            problems.append(f"log_floor={self.log_floor} (expected > 0)")
        if self.context_frames <= 0:
            problems.append(f"context_frames={self.context_frames} (expected > 0)")
        if self.clip_padding != "seed":
            problems.append(f"clip_padding={self.clip_padding!r} (expected 'seed')")
        if problems:
            raise SpecMismatchError("invalid FeatureSpec: " + "; ".join(problems))

    # derived sizes -------------------------------------------------------------------
    @property
    def n_bins(self) -> int:
        """Bins of the one-sided spectrum: ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def vector_size(self) -> int:
        """Length of one context vector: ``n_mels * context_frames`` (640)."""
        return self.n_mels * self.context_frames

    def padded_length(self, n_samples: int) -> int:
        """Length of a clip after the seed's padding."""
        return n_samples + self.n_fft - n_samples % self.n_fft

    def n_frames(self, n_samples: int) -> int:
        """Frames of a padded clip of ``n_samples`` samples (313 for 10 s)."""
        padded = self.padded_length(n_samples)
        return 0 if padded < self.n_fft else 1 + (padded - self.n_fft) // self.hop_length

    def n_vectors(self, n_samples: int) -> int:
        """Context vectors of a padded clip (309 for 10 s)."""
        return max(0, self.n_frames(n_samples) - self.context_frames + 1)

    @property
    def min_samples(self) -> int:
        """Shortest clip that gives one context vector after padding."""
        n = 1
        while self.n_vectors(n) < 1:
            n += self.hop_length if self.n_vectors(n + self.hop_length) < 1 else 1
        return n

    # serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schema"] = SPEC_SCHEMA
        return d

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, no spaces; the digest is taken over it."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON, hex."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureSpec":
        d = dict(d)
        schema = d.pop("schema", SPEC_SCHEMA)
        if schema != SPEC_SCHEMA:
            raise SpecMismatchError(f"feature spec schema {schema} (expected {SPEC_SCHEMA})")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SpecMismatchError(f"feature spec has unknown keys {unknown}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "FeatureSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise SpecMismatchError(f"feature spec is not valid JSON: {e}") from None


DEFAULT_SPEC = FeatureSpec()
