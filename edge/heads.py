"""Detector heads: what turns context vectors and their reconstructions into one score.

numpy only: heads run on the board, which has no torch, scipy or scikit-learn. Fitting
happens at training time (:mod:`train.detectors`); here a head only computes.

Every head scores a window through the *sum* of a per-vector feature row ``phi(x_i, r_i)``
(``width`` values) over the window's vectors, so

- a clip, a streaming window and a calibration window are scored by the same function of
  the same sums (:meth:`Head.clip_score` is ``score(features(x, r).sum(0), n)``), and
- the board keeps one ring of feature rows per window and sums it once a decision
  (:class:`WindowRing`); the model only ever sees new vectors.

Heads:

``mse``
    SPEC 4's ``A(X)``: the mean squared reconstruction error (the seed's score).
``band-maha``
    The Mahalanobis distance of the clip's log mean squared error per mel band (the
    autoencoder's errors summed over the 5 context frames of each vector, averaged over the
    vectors), against Gaussians fitted on normal training clips with Ledoit-Wolf
    shrinkage, one per machine ID, the nearest one counting: the DCASE 2022-2023
    baselines' idea on clip-mean errors.
``stats``
    The Mahalanobis distance of clip statistics: per mel band the mean and the standard
    deviation over the window of the log-mel frames (each vector's first frame), fitted the
    same way. Needs no model output.
``mel-mean``
    ``stats`` without the standard deviations: the Mahalanobis distance of the per-band
    mean of the log-mel frames.
``ensemble``
    The weighted mean of its parts' standardised log scores (standardised with the mean and
    standard deviation of the part's log scores on normal training clips, weights summing to
    1), as ``exp``: positive, so the gamma cutoff fits it like any other score.

On disk (in a RUN and in a bundle): ``head.json`` (kind, sizes, parameters and the layout
of the arrays) and ``head.bin`` (the arrays as little-endian float64, concatenated). No
pickle; a C reader needs nothing but the JSON offsets.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError
from .spec import FeatureSpec

HEAD_JSON = "head.json"
HEAD_BIN = "head.bin"
KINDS = ("mse", "band-maha", "stats", "mel-mean", "ensemble")
#: added to per-band mean squared errors before the log (errors of a perfect band are 0)
BAND_EPS = 1e-6
#: added to a band's variance before the square root (a constant band has none)
VAR_EPS = 1e-12
MAX_HEAD_BYTES = 64 * 1024 * 1024


class Head:
    """A window scorer: ``features`` per vector, ``score`` of their sum."""

    kind = ""
    needs_model = True

    def __init__(self, spec: FeatureSpec):
        self.n_mels = spec.n_mels
        self.frames = spec.context_frames
        self.dim = spec.vector_size

    @property
    def width(self) -> int:
        """Values per vector in :meth:`features`."""
        raise NotImplementedError

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        """``(n, width) float64`` rows for vectors ``x (n, dim) float32`` and their
        reconstructions ``recon`` (None for a head that needs no model)."""
        raise NotImplementedError

    def score(self, total: np.ndarray, n: int) -> float:
        """The score of a window of ``n`` vectors whose feature rows sum to ``total``."""
        raise NotImplementedError

    def stream_columns(self) -> np.ndarray | None:
        """Where :meth:`features` lies in the C stream's feature row (``AD_STREAM_ROW`` =
        1 + 3 n_mels values per vector: the squared error, the per-band errors, the first
        frame and its square), or None for a head whose features it does not hold."""
        return None

    def clip_score(self, x: np.ndarray, recon: np.ndarray | None) -> float:
        """Score of one clip's vectors (``n >= 1``)."""
        if len(x) == 0:
            raise ValueError("a clip with 0 context vectors has no score (expected n >= 1)")
        return self.score(self.features(x, recon).sum(0), len(x))

    # --- persistence ---------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {}

    def describe(self) -> str:
        return self.kind


class MSEHead(Head):
    """SPEC 4's ``A(X)`` (the seed's score)."""

    kind = "mse"

    @property
    def width(self) -> int:
        return 1

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        from .scoring import vector_errors

        return vector_errors(x, recon)[:, None]

    def score(self, total: np.ndarray, n: int) -> float:
        return float(total[0] / (n * self.dim))

    def stream_columns(self) -> np.ndarray:
        return np.array([0])


def mahalanobis_each(f: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``(C,)`` squared Mahalanobis distances ``(f - mean_c)^T P_c (f - mean_c)`` to each
    component ``c`` (``mean (C, k)``, ``precision (C, k, k)``), clipped at 0."""
    d = np.asarray(f, np.float64)[None, :] - mean
    # matmul (BLAS) rather than einsum's own loop: 10x less per decision for 256 features
    q = np.matmul(precision, d[:, :, None])[:, :, 0]
    return np.maximum(np.sum(q * d, axis=1), 0.0)


def mahalanobis(f: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> float:
    """The smallest squared Mahalanobis distance over the components (:func:`mahalanobis_each`):
    the distance to the nearest machine ID's Gaussian, so one head serves every ID of a
    machine type without knowing which one it listens to."""
    return float(np.min(mahalanobis_each(f, mean, precision)))


class _Gaussian(Head):
    """A head scoring a clip-level feature vector by its Mahalanobis distance to the nearest
    of several Gaussians (one per machine ID seen in training)."""

    def __init__(self, spec: FeatureSpec, *, mean: np.ndarray | None = None,
                 precision: np.ndarray | None = None):
        super().__init__(spec)
        self.mean = None if mean is None else np.asarray(mean, np.float64)
        self.precision = None if precision is None else np.asarray(precision, np.float64)

    def clip_features(self, total: np.ndarray, n: int) -> np.ndarray:
        """The clip-level feature vector the Gaussians are fitted on (:attr:`width`
        values, as many as a vector's features)."""
        raise NotImplementedError

    def score(self, total: np.ndarray, n: int) -> float:
        if self.mean is None:
            raise ValueError(f"{self.kind} head is not fitted")
        return mahalanobis(self.clip_features(total, n), self.mean, self.precision)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "precision": self.precision}

    def check(self) -> None:
        k = self.width
        ok = (self.mean is not None and self.mean.ndim == 2 and self.mean.shape[1:] == (k,)
              and 1 <= len(self.mean) <= 1024
              and self.precision.shape == (len(self.mean), k, k)
              and np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.precision)))
        if not ok:
            raise ValueError(f"{self.kind} head: mean {getattr(self.mean, 'shape', None)} and "
                             f"precision {getattr(self.precision, 'shape', None)}; expected "
                             f"finite (C, {k}) and (C, {k}, {k}), 1 <= C <= 1024")


class BandMahalanobisHead(_Gaussian):
    """Mahalanobis distance of the log mean squared error per mel band."""

    kind = "band-maha"

    @property
    def width(self) -> int:
        return self.n_mels

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        diff = np.asarray(recon, np.float64) - np.asarray(x, np.float64)
        return (diff * diff).reshape(len(x), self.frames, self.n_mels).sum(1)

    def clip_features(self, total: np.ndarray, n: int) -> np.ndarray:
        return np.log(np.asarray(total, np.float64) / (n * self.frames) + BAND_EPS)

    def stream_columns(self) -> np.ndarray:
        return 1 + np.arange(self.n_mels)


class ClipStatsHead(_Gaussian):
    """Mahalanobis distance of per-band mean and standard deviation of the log-mel frames."""

    kind = "stats"
    needs_model = False

    @property
    def width(self) -> int:
        return 2 * self.n_mels

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        f = np.asarray(x[:, :self.n_mels], np.float64)
        return np.concatenate([f, f * f], axis=1)

    def clip_features(self, total: np.ndarray, n: int) -> np.ndarray:
        mean = total[:self.n_mels] / n
        var = np.maximum(total[self.n_mels:] / n - mean * mean, 0.0)
        return np.concatenate([mean, np.sqrt(var + VAR_EPS)])

    def stream_columns(self) -> np.ndarray:
        return 1 + self.n_mels + np.arange(2 * self.n_mels)


class MelMeanHead(_Gaussian):
    """Mahalanobis distance of the per-band mean of the log-mel frames (``stats`` without
    the standard deviations, which add estimation noise and little else: see
    docs/detectors.md)."""

    kind = "mel-mean"
    needs_model = False

    @property
    def width(self) -> int:
        return self.n_mels

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        return np.asarray(x[:, :self.n_mels], np.float64)

    def clip_features(self, total: np.ndarray, n: int) -> np.ndarray:
        return np.asarray(total, np.float64) / n

    def stream_columns(self) -> np.ndarray:
        return 1 + self.n_mels + np.arange(self.n_mels)


#: beyond this a standardised log score is not exponentiated (exp(709) is float64's limit)
EXP_LIMIT = 700.0


def ensemble_exp(z: float) -> float:
    """``exp(z)``, continued as ``exp(L) (1 + log(1 + z - L))`` above ``L =``
    :data:`EXP_LIMIT`: positive, finite (below 1e307 for any finite z) and strictly
    increasing everywhere, so windows far outside the training data (a part standardised
    by a tiny spread, fitted on a handful of clips) keep their order instead of all
    scoring the same capped value."""
    if z <= EXP_LIMIT:
        return math.exp(z)
    return math.exp(EXP_LIMIT) * (1.0 + math.log1p(min(z, 1e300) - EXP_LIMIT))


class EnsembleHead(Head):
    """Weighted mean of the parts' standardised log scores, as ``exp``."""

    kind = "ensemble"

    def __init__(self, spec: FeatureSpec, parts: Sequence[Head], *, loc: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, weights: Sequence[float] | None = None):
        super().__init__(spec)
        if not parts:
            raise ValueError("an ensemble needs at least one part")
        self.parts = list(parts)
        self.loc = None if loc is None else np.asarray(loc, np.float64)
        self.scale = None if scale is None else np.asarray(scale, np.float64)
        w = np.full(len(self.parts), 1.0) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(self.parts),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"ensemble weights {list(w)}: expected {len(self.parts)} finite "
                             "values >= 0 with a positive sum")
        #: each part's weight in the mean of standardised log scores (they sum to 1)
        self.weights = w / w.sum()
        self._cuts = np.cumsum([0, *(p.width for p in self.parts)])
        self.needs_model = any(p.needs_model for p in self.parts)

    @property
    def width(self) -> int:
        return int(self._cuts[-1])

    def features(self, x: np.ndarray, recon: np.ndarray | None) -> np.ndarray:
        return np.concatenate([p.features(x, recon) for p in self.parts], axis=1)

    def stream_columns(self) -> np.ndarray | None:
        cols = [p.stream_columns() for p in self.parts]
        return None if any(c is None for c in cols) else np.concatenate(cols)

    def part_scores(self, total: np.ndarray, n: int) -> np.ndarray:
        return np.array([p.score(total[a:b], n)
                         for p, a, b in zip(self.parts, self._cuts[:-1], self._cuts[1:])])

    def score(self, total: np.ndarray, n: int) -> float:
        if self.loc is None:
            raise ValueError("ensemble head is not fitted")
        z = (np.log(np.maximum(self.part_scores(total, n), 1e-300)) - self.loc) / self.scale
        return ensemble_exp(float(np.dot(self.weights, z)))

    def params(self) -> dict[str, Any]:
        return {"loc": [float(v) for v in self.loc], "scale": [float(v) for v in self.scale],
                "weights": [float(v) for v in self.weights]}

    def describe(self) -> str:
        return "ensemble(" + ", ".join(p.describe() for p in self.parts) + ")"


class WindowRing:
    """The last ``n`` vectors' feature rows, for a rolling window.

    ``add`` keeps only the newest ``n`` rows; :meth:`total` sums the ring (after a wrap the
    rows are summed in ring order, which differs from a clip's order only in the last
    bits of a float64 sum).
    """

    def __init__(self, n: int, width: int):
        self.n = int(n)
        self.rows = np.zeros((self.n, int(width)), dtype=np.float64)
        self.pos = 0
        self.filled = 0
        self.seen = 0

    def add(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.float64).reshape(-1, self.rows.shape[1])
        self.seen += len(rows)
        rows = rows[-self.n:]
        k = len(rows)
        end = self.pos + k
        if end <= self.n:
            self.rows[self.pos:end] = rows
        else:
            split = self.n - self.pos
            self.rows[self.pos:] = rows[:split]
            self.rows[:k - split] = rows[split:]
        self.pos = end % self.n
        self.filled = min(self.n, self.filled + k)

    @property
    def full(self) -> bool:
        return self.filled == self.n

    def total(self) -> np.ndarray:
        return self.rows.sum(0)

    def clear(self) -> None:
        self.pos = self.filled = 0


# --- reading and writing ----------------------------------------------------------------------
def _to_doc(head: Head, arrays: dict[str, np.ndarray], prefix: str, offset: list[int]) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": head.kind, **head.params()}
    layout = {}
    for name, a in head.arrays().items():
        a = np.ascontiguousarray(a, dtype="<f8")
        key = f"{prefix}{name}"
        arrays[key] = a
        layout[name] = {"offset": offset[0], "shape": list(a.shape)}
        offset[0] += a.size
    if layout:
        doc["arrays"] = layout
    if isinstance(head, EnsembleHead):
        doc["parts"] = [_to_doc(p, arrays, f"{prefix}{i}.", offset) for i, p in enumerate(head.parts)]
    return doc


def head_files(head: Head) -> dict[str, bytes]:
    """``{"head.json": ..., "head.bin": ...}`` for a fitted head."""
    arrays: dict[str, np.ndarray] = {}
    doc = {"schema": 1, "head": _to_doc(head, arrays, "", [0])}
    data = b"".join(a.tobytes() for a in arrays.values())
    return {HEAD_JSON: (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode(), HEAD_BIN: data}


def _from_doc(doc: Any, data: np.ndarray, spec: FeatureSpec, depth: int = 0) -> Head:
    if not isinstance(doc, dict) or doc.get("kind") not in KINDS:
        raise ValueError(f"head kind {doc.get('kind') if isinstance(doc, dict) else doc!r}: "
                         f"expected one of {list(KINDS)}")
    kind = doc["kind"]
    if kind == "mse":
        return MSEHead(spec)
    if kind == "ensemble":
        if depth > 0:
            raise ValueError("an ensemble inside an ensemble")
        parts = [_from_doc(p, data, spec, depth + 1) for p in doc["parts"]]
        # bundles from before weights existed weigh their parts equally
        head = EnsembleHead(spec, parts, loc=doc["loc"], scale=doc["scale"], weights=doc.get("weights"))
        if head.loc.shape != (len(parts),) or head.scale.shape != (len(parts),) \
                or not np.all(head.scale > 0) or not np.all(np.isfinite(head.loc)):
            raise ValueError(f"ensemble loc/scale {doc['loc']}/{doc['scale']}: expected "
                             f"{len(parts)} finite values each, scales > 0")
        return head

    def array(name: str) -> np.ndarray:
        entry = doc["arrays"][name]
        shape = tuple(int(s) for s in entry["shape"])
        start = int(entry["offset"])
        size = int(np.prod(shape))
        if start < 0 or start + size > data.size:
            raise ValueError(f"array {name} at {start}+{size} lies outside {HEAD_BIN} "
                             f"({data.size} values)")
        return data[start:start + size].reshape(shape)

    cls = {"band-maha": BandMahalanobisHead, "stats": ClipStatsHead, "mel-mean": MelMeanHead}[kind]
    head = cls(spec, mean=array("mean"), precision=array("precision"))
    head.check()
    return head


def load_head(directory: str | Path, spec: FeatureSpec) -> Head:
    """Read ``head.json`` + ``head.bin`` from ``directory``; an :class:`MSEHead` where there
    is no ``head.json`` (runs and bundles from before heads existed score with ``A(X)``).

    Raises:
        BundleError: a head file that is not what edge-ad wrote (names the file).
    """
    directory = Path(directory)
    path = directory / HEAD_JSON
    if not path.exists():
        return MSEHead(spec)
    try:
        if path.stat().st_size > MAX_HEAD_BYTES or (directory / HEAD_BIN).stat().st_size > MAX_HEAD_BYTES:
            raise ValueError(f"larger than {MAX_HEAD_BYTES} bytes")
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or doc.get("schema") != 1:
            raise ValueError("expected schema 1")
        raw = (directory / HEAD_BIN).read_bytes()
        if len(raw) % 8:
            raise ValueError(f"{HEAD_BIN} holds {len(raw)} bytes, not a whole number of float64 values")
        data = np.frombuffer(raw, dtype="<f8")
        return _from_doc(doc["head"], data, spec)
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError) as e:
        raise BundleError(f"{path}: not a valid detector head ({e}); expected the "
                          f"{HEAD_JSON} and {HEAD_BIN} edge-ad wrote") from None


def make_head(kind: str, spec: FeatureSpec) -> Head:
    """An unfitted head of ``kind`` (for its :meth:`Head.features`)."""
    if kind == "mse":
        return MSEHead(spec)
    if kind == "band-maha":
        return BandMahalanobisHead(spec)
    if kind == "stats":
        return ClipStatsHead(spec)
    if kind == "mel-mean":
        return MelMeanHead(spec)
    raise ValueError(f"head kind {kind!r}: expected one of {list(KINDS[:-1])}")
