"""The decision cutoff (SPEC section 4): a gamma distribution fitted to normal scores.

The scores of normal clips are modelled as gamma distributed (skewed right, heavy tail),
fitted by maximum likelihood with the location fixed at 0 (MATLAB ``gamfit``,
``scipy.stats.gamma.fit(A, floc=0)``), and the cutoff is the ``1 - p`` quantile, so about
a fraction ``p`` of normal clips is flagged. The DCASE baselines leave the location free;
``fit_gamma(..., floc=None)`` does that, labelled ``"gamma-mle-free-loc"``.

Everything here is numpy and ``math`` only, on purpose: on-site calibration
(``edge-ad calibrate``) refits the cutoff on the board, where scipy is not installed
(it is a large wheel with a Fortran runtime). So the digamma/trigamma functions, the
regularized incomplete gamma function and its inverse are written out below; the tests hold
them to ``scipy.stats.gamma``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import ThresholdError

THRESHOLD_SCHEMA = 1
FIT_LOC0 = "gamma-mle-loc0"
FIT_FREE_LOC = "gamma-mle-free-loc"


# --- special functions -------------------------------------------------------------------
def digamma(x: float) -> float:
    """psi(x) for x > 0: recurrence up to x >= 10, then the asymptotic series (error < 1e-13)."""
    if not x > 0:
        raise ValueError(f"digamma({x}): expected x > 0")
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132)))))
    return result + math.log(x) - 0.5 * inv - series


def trigamma(x: float) -> float:
    """psi'(x) for x > 0: recurrence up to x >= 10, then the asymptotic series."""
    if not x > 0:
        raise ValueError(f"trigamma({x}): expected x > 0")
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv * (1 + inv * (0.5 + inv * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 * (1 / 30))))))
    return result + series


_EPS = 1e-15
_TINY = 1e-300


def _gammainc_lower(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x), a > 0, x >= 0.

    Series for x < a + 1, Lentz's continued fraction for Q = 1 - P otherwise (Numerical
    Recipes 6.2): both converge fast in their region.
    """
    if x <= 0.0:
        return 0.0
    if math.isinf(x):
        return 1.0
    log_prefix = a * math.log(x) - x - math.lgamma(a)
    max_iter = 1000 + int(10 * math.sqrt(a))
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(max_iter):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return min(1.0, total * math.exp(log_prefix))
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, max_iter):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return max(0.0, 1.0 - math.exp(log_prefix) * h)


def _gamma_ppf_standard(q: float, a: float) -> float:
    """x with P(a, x) = q (scale 1): Newton's method kept inside a bisection bracket."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return math.inf
    lo, hi = 0.0, max(1.0, a)
    while _gammainc_lower(a, hi) < q:
        lo, hi = hi, hi * 2.0
    x = 0.5 * (lo + hi)
    log_norm = math.lgamma(a)
    for _ in range(200):
        f = _gammainc_lower(a, x) - q
        if f == 0.0:
            return x
        if f < 0:
            lo = x
        else:
            hi = x
        density = math.exp((a - 1.0) * math.log(x) - x - log_norm) if x > 0 else 0.0
        step_ok = density > 0
        if step_ok:
            x_new = x - f / density
            step_ok = lo < x_new < hi
        if not step_ok:
            x_new = 0.5 * (lo + hi)
        if abs(x_new - x) <= 1e-14 * max(abs(x_new), 1e-300) or hi - lo <= 1e-15 * hi:
            return x_new
        x = x_new
    return x


def gamma_cdf(x: float | np.ndarray, *, shape: float, scale: float, loc: float = 0.0) -> Any:
    """Gamma CDF, ``P(shape, (x - loc) / scale)``; float in, float out; arrays elementwise."""
    _check_params(shape, scale)
    if np.ndim(x) == 0:
        return _gammainc_lower(shape, max(0.0, (float(x) - loc) / scale))
    xs = np.asarray(x, dtype=np.float64)
    return np.array([_gammainc_lower(shape, max(0.0, (v - loc) / scale)) for v in xs.ravel()]
                    ).reshape(xs.shape)


def gamma_ppf(q: float, *, shape: float, scale: float, loc: float = 0.0) -> float:
    """Gamma quantile: the x with ``gamma_cdf(x) = q``, for ``0 <= q <= 1``."""
    _check_params(shape, scale)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level {q}: expected 0 <= q <= 1")
    return loc + scale * _gamma_ppf_standard(float(q), float(shape))


def gamma_logpdf(x: np.ndarray, *, shape: float, scale: float, loc: float = 0.0) -> np.ndarray:
    """Log density, ``(n,) float64`` (``-inf`` at or below ``loc``)."""
    _check_params(shape, scale)
    y = (np.asarray(x, dtype=np.float64) - loc) / scale
    out = np.full(y.shape, -np.inf)
    pos = y > 0
    out[pos] = (shape - 1.0) * np.log(y[pos]) - y[pos] - math.lgamma(shape) - math.log(scale)
    return out


def _check_params(shape: float, scale: float) -> None:
    if not (shape > 0 and scale > 0 and math.isfinite(shape) and math.isfinite(scale)):
        raise ValueError(f"gamma shape={shape}, scale={scale}: expected finite values > 0")


# --- maximum likelihood ------------------------------------------------------------------
#: Largest gamma shape fitted: scores that agree to about 1 part in 10^4 (an in-sample fit
#: of a Gaussian head on a handful of clips) give shapes beyond where the incomplete gamma
#: function can be evaluated in doubles; the cutoff then lies within 0.013 % of their mean.
MAX_SHAPE = 1e8


def _mle_loc0(y: np.ndarray) -> tuple[float, float]:
    """Shape and scale of the gamma MLE with location 0, for ``y > 0`` not all equal.

    The shape solves ``log k - psi(k) = s`` with ``s = log(mean y) - mean(log y) > 0``
    (the scale is then ``mean / k``); Minka's generalised Newton step on ``1/k`` from his
    closed-form start converges in a handful of iterations for any ``s``.
    """
    mean = float(np.mean(y))
    s = math.log(mean) - float(np.mean(np.log(y)))
    if not s > 0:
        raise ThresholdError("scores are (numerically) identical; a gamma fit needs spread")
    k = (3.0 - s + math.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(100):
        f = math.log(k) - digamma(k) - s
        df = 1.0 / k - trigamma(k)
        if df == 0.0 or k > MAX_SHAPE:   # scores (almost) all alike: a near point mass
            k = min(k, MAX_SHAPE)
            break
        k_new = 1.0 / (1.0 / k + f / (k * k * df))
        if not k_new > 0:           # overshoot past 0: fall back to a damped step
            k_new = k / 2.0
        if abs(k_new - k) <= 1e-12 * k:
            k = k_new
            break
        k = k_new
    return k, mean / k


def _loglik(y: np.ndarray, shape: float, scale: float) -> float:
    n = len(y)
    return float((shape - 1.0) * np.sum(np.log(y)) - np.sum(y) / scale
                 - n * (math.lgamma(shape) + shape * math.log(scale)))


def _mle_free_loc(x: np.ndarray) -> tuple[float, float, float]:
    """Shape, scale and location maximising the likelihood: a profile likelihood search.

    For each candidate location below ``min(x)`` the shape and scale are the location-0 MLE
    of ``x - loc``; the profile is scanned on a geometric grid of distances
    ``min(x) - loc`` and refined by golden-section search around the best grid point.
    The distance is kept at least 1e-6 standard deviations: with shape < 1 the likelihood
    grows without bound as the location approaches ``min(x)``.
    """
    xmin = float(x.min())
    sd = float(x.std())
    log_d = np.linspace(math.log(1e-6 * sd), math.log(50.0 * sd + abs(xmin)), 81)

    def profile(ld: float) -> float:
        y = x - (xmin - math.exp(ld))
        try:
            k, theta = _mle_loc0(y)
        except ThresholdError:
            return -math.inf
        return _loglik(y, k, theta)

    values = [profile(v) for v in log_d]
    best = int(np.argmax(values))
    a, b = log_d[max(best - 1, 0)], log_d[min(best + 1, len(log_d) - 1)]
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    c, d = b - golden * (b - a), a + golden * (b - a)
    fc, fd = profile(c), profile(d)
    for _ in range(80):
        if fc > fd:
            b, d, fd = d, c, fc
            c = b - golden * (b - a)
            fc = profile(c)
        else:
            a, c, fc = c, d, fd
            d = a + golden * (b - a)
            fd = profile(d)
    ld = 0.5 * (a + b)
    if values[best] > profile(ld):
        ld = float(log_d[best])
    loc = xmin - math.exp(ld)
    k, theta = _mle_loc0(x - loc)
    return k, theta, loc


def binomial_interval(p: float, n: int, *, level: float = 0.95) -> tuple[float, float]:
    """Where the observed fraction of ``n`` normal clips above a cutoff that truly passes
    a fraction ``p`` falls with probability ``level``: ``(k_lo / n, k_hi / n)``, with
    ``k_lo``/``k_hi`` the equal-tailed quantiles of Binomial(n, p) (exact sums, no scipy).
    """
    if n < 1:
        raise ValueError(f"n={n}: expected at least one clip")
    if not 0.0 < p < 1.0 or not 0.0 < level < 1.0:
        raise ValueError(f"p={p}, level={level}: expected both between 0 and 1")
    tail = (1.0 - level) / 2.0
    # The pmf by its recurrence pmf(k+1) = pmf(k) (n-k)/(k+1) p/(1-p) from pmf(0) = (1-p)^n:
    # no binomial coefficient, so no overflow for thousands of windows. (1-p)^n underflows
    # to 0 past n ~ 7000 at p = 0.1: then start from the mode in log space and walk down.
    mode = int((n + 1) * p)
    log_mode = (math.lgamma(n + 1) - math.lgamma(mode + 1) - math.lgamma(n - mode + 1)
                + mode * math.log(p) + (n - mode) * math.log1p(-p))
    pmf = np.zeros(n + 1)
    pmf[mode] = math.exp(log_mode)
    ratio = p / (1.0 - p)
    for k in range(mode, n):
        pmf[k + 1] = pmf[k] * (n - k) / (k + 1) * ratio
    for k in range(mode, 0, -1):
        pmf[k - 1] = pmf[k] * k / ((n - k + 1) * ratio)
    cdf = np.cumsum(pmf)
    k_lo = int(np.searchsorted(cdf, tail * (1 - 1e-12)))
    k_hi = int(np.searchsorted(cdf, (1.0 - tail) * (1 - 1e-12)))
    return k_lo / n, min(k_hi, n) / n


# --- the threshold -----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Threshold:
    """A fitted cutoff. ``decide(score)`` is ``score > cutoff`` (True: anomalous).

    Attributes:
        shape, scale, loc: the gamma distribution fitted to normal scores.
        p: the intended false-positive rate; ``cutoff`` is the ``1 - p`` quantile.
        cutoff: the decision value.
        fit: how it was fitted: ``"gamma-mle-loc0"`` (the seed's) or ``"gamma-mle-free-loc"``.
        n_scores: how many scores the fit saw.
    """

    shape: float
    scale: float
    loc: float
    p: float
    cutoff: float
    fit: str = FIT_LOC0
    n_scores: int = 0

    def decide(self, score: float) -> bool:
        """True when ``score`` is above the cutoff (anomalous)."""
        return bool(score > self.cutoff)

    def cdf(self, score: float) -> float:
        """Fraction of normal clips the fitted distribution puts below ``score``."""
        return gamma_cdf(score, shape=self.shape, scale=self.scale, loc=self.loc)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["schema"] = THRESHOLD_SCHEMA
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Threshold":
        if not isinstance(d, dict):
            raise ThresholdError(f"threshold is {type(d).__name__}; expected a JSON object")
        d = dict(d)
        schema = d.pop("schema", THRESHOLD_SCHEMA)
        if schema != THRESHOLD_SCHEMA:
            raise ThresholdError(f"threshold schema {schema} (expected {THRESHOLD_SCHEMA})")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names[:5] if n not in d]
        unknown = sorted(set(d) - set(names))
        if missing or unknown:
            raise ThresholdError(f"threshold has missing keys {missing} / unknown keys {unknown}; "
                                 f"expected {names}")
        try:
            t = cls(shape=float(d["shape"]), scale=float(d["scale"]), loc=float(d["loc"]),
                    p=float(d["p"]), cutoff=float(d["cutoff"]), fit=str(d.get("fit", FIT_LOC0)),
                    n_scores=int(d.get("n_scores", 0)))
        except (TypeError, ValueError) as e:
            raise ThresholdError(f"threshold has a non-numeric value: {e}") from None
        if not (t.shape > 0 and t.scale > 0 and 0 < t.p < 1 and math.isfinite(t.cutoff)):
            raise ThresholdError(f"threshold shape={t.shape}, scale={t.scale}, p={t.p}, "
                                 f"cutoff={t.cutoff}: expected shape, scale > 0, 0 < p < 1, "
                                 "finite cutoff")
        return t

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Threshold":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise ThresholdError(f"threshold is not valid JSON: {e}") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Threshold":
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise ThresholdError(f"{path}: cannot read threshold ({e.strerror})") from None
        try:
            return cls.from_json(text)
        except ThresholdError as e:
            raise ThresholdError(f"{path}: {e}") from None


def fit_gamma(scores: Iterable[float] | np.ndarray, *, p: float = 0.1,
              floc: float | None = 0.0) -> Threshold:
    """Fit a gamma distribution to normal scores and cut at its ``1 - p`` quantile.

    Args:
        scores: ``(n,)`` scores of normal clips, ``n >= 2``, finite, not all equal;
            with a fixed location, every score must be above it.
        p: intended false-positive rate, ``0 < p < 1`` (0.1, the seed's).
        floc: fixed location (0, the seed's and MATLAB ``gamfit``'s), or ``None`` to fit it
            too (the DCASE baselines' ``scipy.stats.gamma.fit`` default).

    Raises:
        ThresholdError: fewer than 2 scores, non-finite, at or below ``floc``, or identical.
    """
    x = np.asarray(list(scores) if not isinstance(scores, np.ndarray) else scores,
                   dtype=np.float64).ravel()
    if not 0.0 < p < 1.0:
        raise ThresholdError(f"p={p}: expected a false-positive rate 0 < p < 1")
    if x.size < 2:
        raise ThresholdError(f"{x.size} score(s): a gamma fit needs at least 2")
    if not np.all(np.isfinite(x)):
        raise ThresholdError(f"{int(np.sum(~np.isfinite(x)))} non-finite score(s); expected finite")
    if np.all(x == x[0]):
        raise ThresholdError(f"all {x.size} scores equal {x[0]!r}; a gamma fit needs spread")
    if floc is None:
        shape, scale, loc = _mle_free_loc(x)
        fit = FIT_FREE_LOC
    else:
        loc = float(floc)
        if np.any(x <= loc):
            raise ThresholdError(f"{int(np.sum(x <= loc))} score(s) <= location {loc} "
                                 f"(minimum {x.min()!r}); expected every score > {loc}")
        shape, scale = _mle_loc0(x - loc)
        fit = FIT_LOC0
    cutoff = gamma_ppf(1.0 - p, shape=shape, scale=scale, loc=loc)
    return Threshold(shape=shape, scale=scale, loc=loc, p=p, cutoff=cutoff, fit=fit,
                     n_scores=int(x.size))
