"""The gamma cutoff (edge.threshold, numpy + math only) against scipy.stats.gamma."""
import math

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats as st

from edge import scoring
from edge import threshold as T
from edge.errors import ThresholdError


@pytest.mark.parametrize("x", [1e-4, 0.3, 1.0, 2.5, 6.0, 9.99, 10.0, 37.0, 1e4])
def test_digamma_and_trigamma_match_scipy(x):
    assert T.digamma(x) == pytest.approx(sp.digamma(x), rel=1e-12, abs=1e-12)
    assert T.trigamma(x) == pytest.approx(sp.polygamma(1, x), rel=1e-11)


@pytest.mark.parametrize("shape", [0.3, 1.0, 3.0, 20.0, 500.0, 5000.0])
def test_gamma_cdf_and_ppf_match_scipy(shape):
    scale, loc = 0.02, 0.001
    xs = loc + scale * shape * np.array([1e-3, 0.2, 0.9, 1.0, 1.1, 3.0, 10.0])
    np.testing.assert_allclose(T.gamma_cdf(xs, shape=shape, scale=scale, loc=loc),
                               st.gamma.cdf(xs, shape, loc=loc, scale=scale), rtol=1e-10, atol=1e-13)
    for q in [1e-6, 0.1, 0.5, 0.9, 0.99, 1 - 1e-6]:
        assert T.gamma_ppf(q, shape=shape, scale=scale, loc=loc) == pytest.approx(
            st.gamma.ppf(q, shape, loc=loc, scale=scale), rel=1e-9)


@pytest.mark.parametrize("shape", [0.5, 2.0, 8.0, 60.0])
def test_fit_gamma_loc0_equals_scipy_fit_floc0(shape):
    rng = np.random.default_rng(int(shape * 10))
    scores = rng.gamma(shape, 0.01, size=800)
    th = T.fit_gamma(scores, p=0.1)
    a, loc, scale = st.gamma.fit(scores, floc=0)
    assert th.fit == T.FIT_LOC0 and th.loc == 0.0 and th.n_scores == 800
    assert th.shape == pytest.approx(a, rel=1e-8)
    assert th.scale == pytest.approx(scale, rel=1e-8)
    assert th.cutoff == pytest.approx(st.gamma.ppf(0.9, a, scale=scale), rel=1e-8)


def test_observed_false_positive_rate_on_a_large_gamma_sample_is_p():
    rng = np.random.default_rng(7)
    fit_sample = rng.gamma(6.0, 0.003, size=20_000)
    held_out = rng.gamma(6.0, 0.003, size=50_000)
    for p in (0.1, 0.05, 0.01):
        th = T.fit_gamma(fit_sample, p=p)
        # Four binomial standard deviations of the two sample rates (a fixed 0.01 would let
        # p=0.01 be anything from 0 to 2 %).
        tol = 4 * math.sqrt(p * (1 - p) * (1 / len(held_out) + 1 / len(fit_sample)))
        assert np.mean(held_out > th.cutoff) == pytest.approx(p, abs=tol)
        assert np.mean(fit_sample > th.cutoff) == pytest.approx(p, abs=tol)


def test_free_location_fit_is_at_least_as_likely_as_scipy_and_labelled():
    rng = np.random.default_rng(3)
    scores = 1.0 + rng.gamma(5.0, 0.5, size=5000)
    th = T.fit_gamma(scores, floc=None)
    a, loc, scale = st.gamma.fit(scores)
    mine = st.gamma.logpdf(scores, th.shape, loc=th.loc, scale=th.scale).sum()
    theirs = st.gamma.logpdf(scores, a, loc=loc, scale=scale).sum()
    assert th.fit == T.FIT_FREE_LOC
    assert mine >= theirs - 1e-6 * abs(theirs)
    assert th.loc == pytest.approx(loc, abs=0.02)
    assert th.cutoff == pytest.approx(st.gamma.ppf(0.9, a, loc=loc, scale=scale), rel=1e-4)


@pytest.mark.parametrize("scores, words", [
    ([], "at least 2"), ([0.3], "at least 2"), ([0.2, 0.2, 0.2], "equal"),
    ([0.1, 0.0, 0.3], "<= location"), ([0.1, -1.0], "<= location"),
    ([0.1, float("nan")], "non-finite"),
])
def test_degenerate_scores_get_a_clear_error(scores, words):
    with pytest.raises(ThresholdError, match=words):
        T.fit_gamma(scores)


def test_threshold_round_trips_through_json_and_decides_above_cutoff(tmp_path):
    th = T.fit_gamma(np.random.default_rng(0).gamma(3.0, 0.1, 100), p=0.05)
    th.save(tmp_path / "threshold.json")
    back = T.Threshold.load(tmp_path / "threshold.json")
    assert back == th
    assert back.decide(th.cutoff * 1.0001) and not back.decide(th.cutoff)
    assert back.cdf(th.cutoff) == pytest.approx(0.95, abs=1e-9)
    (tmp_path / "bad.json").write_text('{"shape": 1}')
    with pytest.raises(ThresholdError, match="bad.json"):
        T.Threshold.load(tmp_path / "bad.json")
    with pytest.raises(ThresholdError, match="missing.json"):
        T.Threshold.load(tmp_path / "missing.json")


def test_clip_score_is_mean_squared_error_over_all_components():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((309, 640)).astype(np.float32)
    recon = x + 0.1 * rng.standard_normal((309, 640)).astype(np.float32)
    expected = float(np.mean((recon.astype(np.float64) - x) ** 2))
    assert scoring.clip_score(x, recon) == pytest.approx(expected, rel=1e-12)
    errs = scoring.vector_errors(x, recon)
    assert errs.dtype == np.float64 and errs.shape == (309,)
    np.testing.assert_allclose(errs, np.sum((recon.astype(np.float64) - x) ** 2, axis=1), rtol=1e-12)
    both = scoring.clip_scores(np.concatenate([errs, errs[:10]]), np.array([309, 10]), dim=640)
    assert both[0] == pytest.approx(expected, rel=1e-12)
    assert both[1] == pytest.approx(float(np.mean((recon[:10].astype(np.float64) - x[:10]) ** 2)))
    with pytest.raises(ValueError, match="same shape"):
        scoring.clip_score(x, recon[:, :128])


def test_fitting_a_cutoff_imports_neither_scipy_nor_torch():
    """On-site calibration runs on the board, where scipy and torch are not installed."""
    import subprocess
    import sys

    code = ("import sys, edge.threshold as t, edge.scoring\n"
            "t.fit_gamma([0.1, 0.2, 0.35, 0.3], p=0.1); t.fit_gamma([0.1, 0.2, 0.35, 0.3], floc=None)\n"
            "print(sorted(m for m in ('scipy', 'torch', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("p, n", [(0.1, 8), (0.1, 52), (0.05, 400), (0.3, 13), (0.01, 1000),
                                  (0.1, 3000), (0.1, 10000), (0.5, 20000), (0.02, 1)])
def test_binomial_interval_equals_scipy_quantiles(p, n):
    from scipy import stats

    from edge.threshold import binomial_interval

    lo, hi = stats.binom.ppf([0.025, 0.975], n, p) / n
    assert binomial_interval(p, n) == pytest.approx((lo, hi))


def test_scores_that_agree_to_a_few_parts_per_million_give_a_cutoff_at_their_mean():
    """An in-sample Gaussian head on three clips scores them almost alike: the MLE shape
    runs off to infinity; the fit stops at MAX_SHAPE and the cutoff stays finite, next to
    the scores (a regression: it was a ZeroDivisionError deep in the incomplete gamma)."""
    import numpy as np

    from edge.threshold import MAX_SHAPE, fit_gamma

    scores = 255.0 * (1 + np.array([0.0, 3e-6, 7e-6]))
    t = fit_gamma(scores, p=0.1)
    assert t.shape == MAX_SHAPE
    assert scores.mean() < t.cutoff < scores.mean() * (1 + 2e-4)
