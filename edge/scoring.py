"""Reconstruction error of a clip (SPEC section 4), shared by training and the board.

``A(X) = sum_i ||f(x_i) - x_i||^2 / (n * d)`` with ``n`` context vectors of size ``d``
(640): the mean squared error over every component of every vector of the clip. The seed's
code divides by 313 frames instead of 309 vectors, a constant factor; this is the formula
it writes down. For an int8 model ``recon`` is the dequantised output and ``x`` the float
input, never the quantised one.
"""
from __future__ import annotations

import numpy as np


def _check_pair(x: np.ndarray, recon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    recon = np.asarray(recon)
    if x.ndim != 2 or x.shape != recon.shape:
        raise ValueError(f"vectors {x.shape} and reconstructions {recon.shape}: "
                         "expected two (n, d) arrays of the same shape")
    return x, recon


def vector_errors(x: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """Squared L2 error of each vector.

    Args:
        x: ``(n, d)`` float32 context vectors (the input).
        recon: ``(n, d)`` float reconstructions.

    Returns:
        ``(n,) float64``: ``||recon_i - x_i||^2``, accumulated in float64 so a long clip
        sums the same on every platform.
    """
    x, recon = _check_pair(x, recon)
    diff = recon.astype(np.float64) - x.astype(np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def clip_score(x: np.ndarray, recon: np.ndarray) -> float:
    """``A(X)``: mean squared reconstruction error over all components, a float >= 0.

    Args:
        x: ``(n, d)`` float32 context vectors of one clip, ``n >= 1``.
        recon: ``(n, d)`` reconstructions.
    """
    x, recon = _check_pair(x, recon)
    if x.shape[0] == 0:
        raise ValueError("a clip with 0 context vectors has no score (expected n >= 1)")
    return float(vector_errors(x, recon).sum() / (x.shape[0] * x.shape[1]))


def clip_scores(errors: np.ndarray, counts: np.ndarray, *, dim: int) -> np.ndarray:
    """Scores of several clips from their concatenated per-vector errors.

    Args:
        errors: ``(sum(counts),) float64`` squared errors, clip after clip.
        counts: ``(n_clips,) int`` vectors per clip, each >= 1.
        dim: vector size (640).

    Returns:
        ``(n_clips,) float64`` scores, equal to :func:`clip_score` of each clip.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if np.any(counts < 1) or counts.sum() != len(errors):
        raise ValueError(f"counts sum to {counts.sum()} with minimum {counts.min(initial=0)}; "
                         f"expected positive counts summing to {len(errors)}")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return np.add.reduceat(np.asarray(errors, dtype=np.float64), starts) / (counts * dim)
