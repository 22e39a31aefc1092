"""The one place where a bundle becomes a detector.

:func:`open_detector` verifies a bundle and returns a :class:`BundleDetector`: the feature
spec, the chosen model file loaded on its backend and precision, the detector head
(:mod:`edge.heads`) and that model file's cutoff. ``edge-ad run``, ``score``,
``calibrate``, ``bench`` and export's scoring all score through it, so a new detector is
added in :mod:`edge.heads` (and trained in ``train.detectors``) and nowhere else.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np

from .heads import Head, MSEHead, WindowRing


@dataclasses.dataclass
class BundleDetector:
    """A verified bundle with its model loaded, ready to score.

    Attributes:
        bundle: the :class:`edge.bundle.Bundle`.
        model_path: the model file in use.
        threshold: its :class:`edge.threshold.Threshold`.
        backend: the loaded model (:mod:`edge.backends`).
        head: the detector head.
        version: sha256 of the bundle's manifest (the model version decisions carry).
        created: the manifest's creation time.
    """

    bundle: Any
    model_path: Path
    threshold: Any
    backend: Any
    head: Head
    version: str = ""
    created: str | None = None

    @property
    def spec(self) -> Any:
        return self.bundle.spec

    @property
    def cutoff(self) -> float:
        return float(self.threshold.cutoff)

    @property
    def precision(self) -> str:
        return str(getattr(self.backend, "precision", ""))

    def features(self, x: np.ndarray) -> np.ndarray:
        """``(n, head.width) float64`` feature rows of vectors ``x (n, d) float32``: the
        model runs here, on these vectors only."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if isinstance(self.head, MSEHead):
            # A backend that computes the errors itself (the C one) saves a pass over the
            # reconstructions in numpy.
            errors = getattr(self.backend, "errors", None)
            if errors is not None:
                return np.asarray(errors(x), np.float64)[:, None]
        return self.head.features(x, self.backend.run(x) if self.head.needs_model else None)

    def clip_score(self, x: np.ndarray) -> float:
        """The score of one clip's vectors, as training and export score it."""
        return self.head.score(self.features(x).sum(0), len(x))

    def window(self, n_vectors: int) -> "WindowScorer":
        """A rolling window of ``n_vectors`` vectors scored by this detector."""
        return WindowScorer(self, n_vectors)

    def c_stream(self, spec: Any = None) -> Any:
        """The whole path in C (samples in, the head's feature rows out, one call per
        block; :mod:`edge.backends.c`) where the backend offers it and the C stream's row
        holds the head's features, else None. ``push(samples)`` gives ``(k, head.width)``
        rows (``(k,)`` errors for the ``A(X)`` head); ``reset()`` starts framing afresh.
        ``spec``: the front end's (default the bundle's)."""
        make = getattr(self.backend, "stream", None)
        if make is None:
            return None
        spec = spec if spec is not None else self.spec
        if isinstance(self.head, MSEHead):
            return make(spec)
        cols = self.head.stream_columns()
        if cols is None or not getattr(self.backend, "streams_rows", False):
            return None
        return _ColumnStream(make(spec, rows=True), cols)


class _ColumnStream:
    """A C stream giving feature rows, narrowed to one head's columns."""

    def __init__(self, stream: Any, cols: np.ndarray):
        self.stream = stream
        contiguous = len(cols) > 0 and np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols)))
        self.cols: Any = slice(int(cols[0]), int(cols[0]) + len(cols)) if contiguous else cols

    def push(self, samples: np.ndarray) -> np.ndarray:
        return self.stream.push(samples)[:, self.cols]

    def reset(self) -> None:
        self.stream.reset()


class WindowScorer:
    """The feature rows of the last ``n`` vectors and their score (see :mod:`edge.heads`)."""

    def __init__(self, detector: BundleDetector, n: int):
        self.detector = detector
        self.head = detector.head
        self.ring = WindowRing(n, self.head.width)

    @property
    def n(self) -> int:
        return self.ring.n

    @property
    def full(self) -> bool:
        return self.ring.full

    def add_vectors(self, x: np.ndarray) -> None:
        """Run the model on new vectors (only the newest ``n`` matter) and keep their rows."""
        if len(x):
            self.ring.add(self.detector.features(x[-self.n:]))

    def add_rows(self, rows: np.ndarray) -> None:
        """Keep feature rows computed elsewhere (the C stream's errors)."""
        self.ring.add(rows)

    def score(self) -> float:
        """The window's score (meaningful once :attr:`full`)."""
        return self.head.score(self.ring.total(), self.ring.n)

    def clear(self) -> None:
        self.ring.clear()


def open_detector(path: str | os.PathLike | Any, *, backend: str | None = None,
                  precision: str = "int8", threads: int = 1, expected_spec: Any = None,
                  model_file: str | os.PathLike | None = None) -> BundleDetector:
    """Verify the bundle at ``path`` (or take a loaded :class:`edge.bundle.Bundle`) and load
    its model.

    Args:
        backend: ``"c"``, ``"tflite"`` or ``"onnx"``; None: the bundle's default for
            ``precision`` (the C kernel for int8 where it is built).
        precision: ``"int8"`` or ``"float"``.
        threads: CPU threads the model runtime may use.
        expected_spec: the device's feature spec; a bundle with another is refused.
        model_file: load this file of the bundle instead (its cutoff with it).

    Raises:
        BundleError, BackendError: a bad bundle, no such model, no runtime for it.
    """
    from . import backends
    from .bundle import Bundle, load_bundle
    from .errors import EdgeAdError
    from .follow import bundle_version

    if isinstance(path, Bundle):
        bundle, version = path, ""
    else:
        version = bundle_version(path) if (Path(path) / "manifest.json").is_file() else ""
        bundle = load_bundle(path, expected_spec=expected_spec)
    if model_file is not None:
        model_path = bundle.path / Path(model_file).name
    else:
        model_path = bundle.model_path(backend=backend or bundle.default_backend(precision),
                                       precision=precision)
    threshold = bundle.threshold_for(model_path.name)
    head = bundle.head
    loaded = backends.load(model_path, num_threads=threads)
    # The version read before the verification is the one verified only if it did not move.
    if version and bundle_version(bundle.path) != version:
        raise EdgeAdError(f"{bundle.path}: replaced again while it was being verified; checking later")
    return BundleDetector(bundle, model_path, threshold, loaded, head, version,
                          bundle.manifest.get("created"))
