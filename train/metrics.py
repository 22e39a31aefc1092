"""Detection metrics of SPEC section 4: AUC, the seed's pAUC, the McClish pAUC, rates.

Labels are 1 for anomalous (positive) and 0 for normal. The two partial AUCs are
different numbers and carry different names on purpose: the seed's ``pauc`` is
``(1/p) * integral_0^p TPR dFPR`` (a random classifier scores ``p/2 = 0.05``), while
``pauc_mcclish`` is the McClish-standardised value that ``roc_auc_score(max_fpr=p)`` and
the DCASE evaluators report (a random classifier scores 0.5).

The ROC is computed here with numpy (rather than calling scikit-learn) so the tests can
hold it to scikit-learn as an independent computation.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def _check(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels and {len(s)} scores: expected one label per score")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return y, s


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    # np.trapz was renamed np.trapezoid in numpy 2; written out to work with both.
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


def roc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points from (0, 0) to (1, 1), one per distinct score (ties move diagonally).

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(k,) float64``; point ``i`` flags
        ``score >= thresholds[i]`` (``thresholds[0] = inf``).
    """
    y, s = _check(labels, scores)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"{n_pos} anomalous and {n_neg} normal clips: a ROC needs both")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    fpr = np.r_[0.0, fp / n_neg]
    tpr = np.r_[0.0, tp / n_pos]
    return fpr, tpr, np.r_[np.inf, s[last_of_tie]]


def auc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (ties count one half): the Mann-Whitney probability that an
    anomalous clip scores above a normal one."""
    fpr, tpr, _ = roc(labels, scores)
    return float(_trapezoid(tpr, fpr))


def _partial_area(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
                  p: float) -> float:
    """``integral_0^p TPR dFPR``, the ROC linearly interpolated at ``FPR = p``."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"p={p}: expected 0 < p <= 1")
    fpr, tpr, _ = roc(labels, scores)
    stop = int(np.searchsorted(fpr, p, side="right"))
    if stop >= len(fpr):
        return float(_trapezoid(tpr, fpr))
    at_p = float(np.interp(p, fpr[stop - 1:stop + 1], tpr[stop - 1:stop + 1]))
    return float(_trapezoid(np.r_[tpr[:stop], at_p], np.r_[fpr[:stop], p]))


def pauc(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *,
         p: float = 0.1) -> float:
    """The seed's partial AUC, ``(1/p) * integral_0^p TPR dFPR`` (random: ``p/2``)."""
    return _partial_area(labels, scores, p) / p


def pauc_mcclish(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray, *,
                 p: float = 0.1) -> float:
    """McClish-standardised partial AUC, as ``roc_auc_score(max_fpr=p)`` (random: 0.5)."""
    area = _partial_area(labels, scores, p)
    min_area, max_area = 0.5 * p * p, p
    return 0.5 * (1.0 + (area - min_area) / (max_area - min_area))


def rates_at(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
             cutoff: float) -> tuple[float, float]:
    """``(tpr, fpr)`` when ``score > cutoff`` is flagged; NaN where a class is absent."""
    y, s = _check(labels, scores)
    flagged = s > cutoff
    tpr = float(flagged[y == 1].mean()) if np.any(y == 1) else math.nan
    fpr = float(flagged[y == 0].mean()) if np.any(y == 0) else math.nan
    return tpr, fpr


def confusion(labels: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
              cutoff: float) -> list[list[int]]:
    """``[[tn, fp], [fn, tp]]`` (rows: true normal, anomaly; columns: predicted)."""
    y, s = _check(labels, scores)
    pred = s > cutoff
    return [[int(np.sum((y == 0) & ~pred)), int(np.sum((y == 0) & pred))],
            [int(np.sum((y == 1) & ~pred)), int(np.sum((y == 1) & pred))]]


def _row(y: np.ndarray, s: np.ndarray, cutoff: float, p: float) -> dict[str, Any]:
    both = bool(np.any(y == 1) and np.any(y == 0))
    tpr, fpr = rates_at(y, s, cutoff)
    nan_to_none = lambda v: None if v is None or math.isnan(v) else float(v)  # noqa: E731
    return {
        "auc": auc(y, s) if both else None,
        "pauc": pauc(y, s, p=p) if both else None,
        "pauc_mcclish": pauc_mcclish(y, s, p=p) if both else None,
        "tpr": nan_to_none(tpr),
        "fpr": nan_to_none(fpr),
        "n_normal": int(np.sum(y == 0)),
        "n_anomaly": int(np.sum(y == 1)),
        "confusion": confusion(y, s, cutoff),
    }


def evaluate_table(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                   ids: Sequence[str], *, cutoff: float, p: float = 0.1) -> dict[str, Any]:
    """The per-ID table of the seed plus the pooled and averaged figures.

    Args:
        scores: ``(n,)`` clip scores of the test clips.
        labels: ``(n,)`` 1 = anomaly, 0 = normal.
        ids: ``(n,)`` machine ID of each clip.
        cutoff: the decision value (``score > cutoff`` flags).
        p: the FPR bound of the partial AUCs.

    Returns:
        ``{"per_id": {id: {auc, pauc, pauc_mcclish, tpr, fpr, n_normal, n_anomaly,
        confusion}}, "overall": {... the same over all clips pooled, plus mean_auc,
        mean_pauc, mean_pauc_mcclish over IDs}, "p": p, "cutoff": cutoff}``; a metric that
        needs both classes is ``None`` where one is missing.
    """
    y, s = _check(labels, scores)
    ids_a = np.asarray([str(i) for i in ids])
    if ids_a.shape != y.shape:
        raise ValueError(f"{len(ids_a)} ids and {len(y)} labels: expected one ID per clip")
    per_id = {str(i): _row(y[ids_a == i], s[ids_a == i], cutoff, p) for i in sorted(set(ids_a))}
    overall = _row(y, s, cutoff, p)
    for key in ("auc", "pauc", "pauc_mcclish"):
        values = [r[key] for r in per_id.values() if r[key] is not None]
        overall[f"mean_{key}"] = float(np.mean(values)) if values else None
    return {"per_id": per_id, "overall": overall, "p": p, "cutoff": float(cutoff)}
