"""The detector family behind ``edge-ad train --detector NAME``.

Every detector trains the autoencoder (the card's shape: it is exported, quantised to int8
and run on the board) and scores windows with a head (:mod:`edge.heads`) fitted here on
the normal training clips, numpy and scikit-learn's Ledoit-Wolf shrinkage only:

=============  =================================  =========================================
name           network                            head
=============  =================================  =========================================
``seed``       the seed's recipe (bit for bit)    ``mse``: SPEC 4's A(X)
``ae``         :data:`train.fit.TRAINED` recipe   ``mse``
``ae-maha``    TRAINED                            ``band-maha``: Mahalanobis of the clip's
                                                  log mean squared error per mel band
``stats``      TRAINED (shipped, not scored)      ``stats``: Mahalanobis of per-band mean
                                                  and SD of the log-mel frames
``mel-mean``   TRAINED (shipped, not scored)      ``mel-mean``: Mahalanobis of per-band
                                                  mean of the log-mel frames
``ensemble``   TRAINED                            weighted mean (0.15 / 0.85) of the
                                                  standardised log scores of
                                                  ``band-maha`` and ``mel-mean``
=============  =================================  =========================================

The ensemble's parts and weights were chosen on selection plants E-G
(``scripts/select_detector.py``), never on the reported plants A-D.

:data:`DEFAULT_DETECTOR` was chosen once from measurements on plants it is not reported on
(``docs/detectors.md``, ``scripts/measure_detectors.py``).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.heads import (BandMahalanobisHead, ClipStatsHead, EnsembleHead, Head, MelMeanHead,
                        MSEHead, make_head)
from edge.spec import FeatureSpec

log = logging.getLogger(__name__)

if TYPE_CHECKING:        # torch is imported only where a network is trained or run
    from .cache import VectorSet
    from .fit import Recipe


@dataclasses.dataclass(frozen=True)
class DetectorKind:
    name: str
    recipe: str                 # "seed" or "trained"
    heads: tuple[str, ...]      # one head, or the parts of an ensemble
    help: str
    weights: tuple[float, ...] | None = None   # an ensemble's part weights (None: equal)


DETECTORS: dict[str, DetectorKind] = {d.name: d for d in (
    DetectorKind("seed", "seed", ("mse",), "the seed's autoencoder, recipe and mean squared error, "
                 "bit for bit (for comparison with the reference)"),
    DetectorKind("ae", "trained", ("mse",), "the same network trained properly (batch 512, cosine "
                 "learning rate, early stopping on the validation loss), mean squared error"),
    DetectorKind("ae-maha", "trained", ("band-maha",), "the trained autoencoder, Mahalanobis "
                 "distance of its per-band reconstruction errors"),
    DetectorKind("stats", "trained", ("stats",), "a Gaussian over per-band log-mel mean and SD "
                 "(the autoencoder is still trained and shipped)"),
    DetectorKind("mel-mean", "trained", ("mel-mean",), "a Gaussian over the per-band log-mel "
                 "mean (stats without the SDs; the autoencoder is still trained and shipped)"),
    DetectorKind("ensemble", "trained", ("band-maha", "mel-mean"), "ae-maha and mel-mean, a "
                 "weighted mean (0.15 / 0.85) of standardised log scores", weights=(0.15, 0.85)),
)}
DEFAULT_DETECTOR = "ensemble"
#: The detectors whose network is trained with the ``trained`` recipe: one such network
#: serves every one of their heads (``evaluate --detector all``).
TRAINED_DETECTORS: tuple[str, ...] = tuple(n for n, d in DETECTORS.items() if d.recipe == "trained")


def recipe_for(name: str, *, seed: int = 0, threads: int | None = None, **overrides: Any) -> "Recipe":
    """The training recipe of detector ``name``, with ``overrides`` (None values ignored)."""
    from .fit import TRAINED, Recipe

    base = Recipe() if DETECTORS[name].recipe == "seed" else TRAINED
    changes = {"seed": seed, "threads": threads, **{k: v for k, v in overrides.items() if v is not None}}
    return dataclasses.replace(base, **changes)


def feature_head(name: str, spec: FeatureSpec) -> Head:
    """An unfitted head whose features cover detector ``name`` (an ensemble's parts side by
    side): what :func:`clip_sums` computes once and :func:`fit_head` fits."""
    kinds = DETECTORS[name].heads
    if len(kinds) == 1:
        return make_head(kinds[0], spec)
    return EnsembleHead(spec, [make_head(k, spec) for k in kinds], weights=DETECTORS[name].weights)


def clip_sums(model: Any, vectors: "VectorSet", head: Head, *, chunk: int = 16384) -> np.ndarray:
    """``(n_clips, head.width) float64``: each clip's feature rows summed (float64), the
    model run in eval mode where the head needs it. ``vectors.counts`` gives the ``n`` of
    each clip."""
    import torch

    n = len(vectors)
    out = np.zeros((len(vectors.counts), head.width))
    clip_of = np.repeat(np.arange(len(vectors.counts)), vectors.counts)
    if head.needs_model:
        model.eval()
    for a in range(0, n, chunk):
        idx = np.arange(a, min(a + chunk, n))
        x = vectors.gather(idx)
        recon = None
        if head.needs_model:
            with torch.no_grad():
                recon = model(torch.from_numpy(x)).numpy()
        np.add.at(out, clip_of[idx], head.features(x, recon))
    return out


def _gaussian(head: Any, sums: np.ndarray, counts: np.ndarray, groups: np.ndarray) -> Any:
    from sklearn.covariance import LedoitWolf

    f = np.array([head.clip_features(s, int(n)) for s, n in zip(sums, counts)])
    means, precisions = [], []
    for g in sorted(set(groups.tolist())):
        rows = f[groups == g]
        if len(rows) < 2:
            raise ValueError(f"{len(rows)} training clip(s) of {g} to fit the {head.kind} "
                             "head on; expected at least 2")
        lw = LedoitWolf().fit(rows)
        means.append(lw.location_)
        precisions.append(lw.precision_)
    head.mean = np.array(means, np.float64)
    head.precision = np.array(precisions, np.float64)
    head.check()
    return head


def fit_head(head: Head, sums: np.ndarray, counts: np.ndarray, groups: Any = None) -> Head:
    """Fit ``head`` (from :func:`feature_head`) on normal training clips' feature sums.

    Args:
        sums: ``(n_clips, head.width)`` rows of :func:`clip_sums`.
        counts: ``(n_clips,)`` vectors per clip.
        groups: ``(n_clips,)`` machine ID of each clip: a Gaussian head fits one Gaussian
            per ID (None: one for all).
    """
    counts = np.asarray(counts)
    groups = np.zeros(len(sums), int) if groups is None else np.asarray(groups)
    if isinstance(head, MSEHead):
        return head
    if isinstance(head, (BandMahalanobisHead, ClipStatsHead, MelMeanHead)):
        return _gaussian(head, sums, counts, groups)
    if isinstance(head, EnsembleHead):
        for part, a, b in zip(head.parts, head._cuts[:-1], head._cuts[1:]):
            fit_head(part, sums[:, a:b], counts, groups)
        # Standardise each part by its scores of clips it did not see: a Gaussian scores
        # its own training clips far closer than any new normal clip (measured: log-score
        # SD 0.12 in-sample against about 1 out of sample), which would inflate its weight.
        logs = np.log(np.maximum(np.column_stack([
            out_of_fold_scores(part, sums[:, a:b], counts, groups)
            for part, a, b in zip(head.parts, head._cuts[:-1], head._cuts[1:])]), 1e-300))
        head.loc = logs.mean(0)   # (the weights are the detector's, set at construction)
        sd = logs.std(0, ddof=1) if len(logs) > 1 else np.ones(len(head.parts))
        head.scale = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        return head
    raise ValueError(f"cannot fit a {head.kind} head")


def out_of_fold_scores(head: Head, sums: np.ndarray, counts: np.ndarray, groups: np.ndarray, *,
                       folds: int = 5, seed: int = 0) -> np.ndarray:
    """Scores of the training clips by copies of ``head`` fitted without them (``folds``-fold
    within each group, seeded); a head with nothing fitted (``mse``) scores them directly."""
    import copy

    counts = np.asarray(counts)
    groups = np.asarray(groups)
    fold = np.zeros(len(sums), int)
    rng = np.random.default_rng(seed)
    for g in sorted(set(groups.tolist())):
        rows = np.flatnonzero(groups == g)
        fold[rows] = rng.permutation(len(rows)) % folds
    if isinstance(head, MSEHead):
        return score_sums(head, sums, counts)
    if min(np.bincount(fold, minlength=folds)) == 0 or any(
            np.sum((groups == g) & (fold != k)) < 2 for g in set(groups.tolist()) for k in range(folds)):
        log.warning("%s head: too few clips per machine ID for %d folds (%d clips in %d IDs); "
                    "standardised on its in-sample scores, which are tighter than unseen clips' "
                    "(more normal clips per ID fix it)", head.kind, folds, len(sums),
                    len(set(groups.tolist())))
        return score_sums(head, sums, counts)
    out = np.empty(len(sums))
    for k in range(folds):
        held = fold == k
        part = fit_head(copy.copy(head), sums[~held], counts[~held], groups[~held])
        out[held] = score_sums(part, sums[held], counts[held])
    return out


def score_sums(head: Head, sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``(n_clips,) float64`` scores from :func:`clip_sums` rows."""
    return np.array([head.score(s, int(n)) for s, n in zip(sums, counts)], dtype=np.float64)


def all_heads(spec: FeatureSpec) -> dict[str, Head]:
    """Every head one trained network supports, unfitted, by detector name (the ``evaluate
    --detector all`` columns: :data:`TRAINED_DETECTORS`)."""
    return {name: feature_head(name, spec) for name in TRAINED_DETECTORS}


def union_head(spec: FeatureSpec) -> EnsembleHead:
    """One head whose features are every head's (mse, band-maha, stats): one pass over the
    clips gives the sums of all of them."""
    return EnsembleHead(spec, [MSEHead(spec), BandMahalanobisHead(spec), ClipStatsHead(spec)])


def split_union(sums: np.ndarray, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """``{"mse", "band-maha", "stats", "mel-mean"}`` columns of :func:`union_head` sums
    (``mel-mean``'s are the first half of ``stats``')."""
    m = spec.n_mels
    return {"mse": sums[:, :1], "band-maha": sums[:, 1:1 + m], "stats": sums[:, 1 + m:1 + 3 * m],
            "mel-mean": sums[:, 1 + m:1 + 2 * m]}


def head_sums(name: str, parts: dict[str, np.ndarray]) -> np.ndarray:
    """Detector ``name``'s feature sums from :func:`split_union` columns."""
    return np.concatenate([parts[k] for k in DETECTORS[name].heads], axis=1)

