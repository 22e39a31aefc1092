"""The int8 gate's judgement on scores made up to the purpose, against scikit-learn:
a swapped pair on a small split is noise and passes; a real loss on a split large enough
to show it fails; score agreement catches a model whose scores drift."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from train import metrics
from train.export import gate


def judge(f, q, labels, ids, splits, *, cutoffs=(1.0, 1.0), **limits):
    scores = {"f": np.asarray(f, float), "q": np.asarray(q, float)}
    return gate.judge(scores, {"onnx": ("f", "q")}, {"f": cutoffs[0], "q": cutoffs[1]},
                      labels=np.asarray(labels, bool), ids=ids, splits=np.asarray(splits),
                      held_out=("val", "test"), p=0.1, limits=limits or None)


def small_split(rng, n_normal=13, n_anomaly=30):
    normal = rng.gamma(20, 0.05, n_normal)
    anomaly = rng.gamma(20, 0.065, n_anomaly)
    f = np.r_[normal, anomaly]
    labels = np.r_[np.zeros(n_normal, bool), np.ones(n_anomaly, bool)]
    return f, labels


def test_one_swapped_pair_on_thirteen_normal_clips_is_noise_and_passes():
    rng = np.random.default_rng(3)
    f, labels = small_split(rng)
    # int8 nudges the highest normal clip just above the lowest anomalous clip that
    # lies above it within the seed's pAUC region: a pAUC step of 1/13 of the band.
    q = f.copy()
    top_normal = np.argmax(np.where(labels, -np.inf, f))
    above = np.where(labels & (f > f[top_normal]), f, np.inf)
    q[top_normal] = above.min() * 1.0001 if np.isfinite(above.min()) else q[top_normal]
    d_pauc = metrics.pauc(labels, f) - metrics.pauc(labels, q)
    n = len(f)
    result = judge(f, q, labels, ["id_00"] * n, ["test"] * n, max_shift=10.0, max_flip_rate=1.0,
                   min_correlation=0.9)
    drop = result["drops"]["onnx"]["test"]["id_00"]
    assert drop["pauc_drop"] == pytest.approx(d_pauc)
    assert drop["auc_drop"] == pytest.approx(roc_auc_score(labels, f) - roc_auc_score(labels, q))
    assert d_pauc > 0.02            # the old per-ID limit failed this export
    assert drop["judged"] and drop["pauc_drop_ci"][0] <= 0.02
    assert result["passed"], result["failures"]


def test_a_real_auc_loss_on_a_large_split_fails_with_its_interval_above_the_limit():
    rng = np.random.default_rng(1)
    f, labels = small_split(rng, 200, 200)
    q = np.where(labels, f * rng.uniform(0.75, 1.0, len(f)), f)     # anomalies shrink
    n = len(f)
    result = judge(f, q, labels, ["id_00"] * n, ["test"] * n, max_shift=100.0,
                   max_flip_rate=1.0, min_correlation=0.0)
    drop = result["drops"]["onnx"]["test"]["id_00"]
    true_drop = roc_auc_score(labels, f) - roc_auc_score(labels, q)
    assert drop["auc_drop"] == pytest.approx(true_drop) and true_drop > 0.05
    assert drop["auc_drop_ci"][0] > 0.01
    assert not result["passed"]
    assert {(x["check"], x["id"]) for x in result["failures"]} >= {("auc_drop", "id_00")}


def test_a_split_too_small_to_measure_is_recorded_but_not_judged():
    rng = np.random.default_rng(2)
    f, labels = small_split(rng, 5, 5)
    q = f[::-1].copy()          # a different ranking entirely
    n = len(f)
    result = judge(f, q, labels, ["id_00"] * n, ["test"] * n, max_shift=1e9, max_flip_rate=1.0,
                   min_correlation=-1.0)
    assert result["drops"]["onnx"]["test"]["id_00"]["judged"] is False
    assert result["passed"]        # agreement limits opened wide: nothing judged fails


def test_agreement_flags_drifting_scores_and_counts_flips_against_numpy():
    rng = np.random.default_rng(4)
    f = rng.gamma(20, 0.05, 100)
    labels = np.zeros(100, bool)
    q = f * np.exp(rng.normal(0, 0.2, 100))          # 20 % log-normal drift per clip
    result = judge(f, q, labels, ["id_00"] * 100, ["val"] * 100, cutoffs=(1.2, 1.2))
    a = result["agreement"]["onnx"]
    assert a["correlation"] == pytest.approx(np.corrcoef(f, q)[0, 1])
    assert a["max_shift"] == pytest.approx(np.abs(np.log(q) - np.log(f)).max()
                                           / np.std(np.log(f), ddof=1))
    assert a["flips"] == int(np.sum((f > 1.2) != (q > 1.2)))
    assert not result["passed"]
    assert "max_shift" in {x["check"] for x in result["failures"]}


def test_identical_scores_pass_with_no_flip():
    rng = np.random.default_rng(5)
    f, labels = small_split(rng, 40, 40)
    n = len(f)
    result = judge(f, f.copy(), labels, ["id_00"] * n, ["test"] * n)
    assert result["passed"] and result["agreement"]["onnx"]["flips"] == 0


def delong_sd_of_difference(labels, a, b):
    """DeLong, DeLong & Clarke-Pearson (1988): the standard error of AUC(a) - AUC(b) on
    the same clips, from each clip's structural components (an analytic variance, no
    resampling)."""
    pos, neg = np.asarray(a)[labels], np.asarray(a)[~labels]
    comps = []
    for s in (np.asarray(a), np.asarray(b)):
        x, y = s[labels], s[~labels]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        comps.append((psi.mean(1), psi.mean(0)))          # per anomaly, per normal
    v10 = np.cov(np.array([c[0] for c in comps]))
    v01 = np.cov(np.array([c[1] for c in comps]))
    var = (v10[0, 0] + v10[1, 1] - 2 * v10[0, 1]) / len(pos) + \
          (v01[0, 0] + v01[1, 1] - 2 * v01[0, 1]) / len(neg)
    return float(np.sqrt(var))


@pytest.mark.parametrize("seed", [0, 1])
def test_the_auc_drop_interval_is_paired_and_as_wide_as_delong_says(seed):
    """The bootstrap interval the gate decides on, against DeLong's analytic standard error
    of the paired difference: centred on the drop, 1.96 standard errors either side. An
    unpaired resampling would be far wider (the two models' scores are correlated)."""
    rng = np.random.default_rng(seed)
    f, labels = small_split(rng, 150, 150)
    q = f * np.exp(rng.normal(0, 0.05, len(f))) * np.where(labels, 0.97, 1.0)
    d = gate.bootstrap_drops(labels, f, q, p=0.1, rounds=4000, seed=seed)
    drop = roc_auc_score(labels, f) - roc_auc_score(labels, q)
    se = delong_sd_of_difference(labels, f, q)
    lo, hi = d["auc_drop_ci"]
    assert d["auc_drop"] == pytest.approx(drop, abs=1e-12)
    assert (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.15)
    assert (lo + hi) / 2 == pytest.approx(drop, abs=0.25 * se)
    # independent AUCs would have a standard error several times larger
    se_unpaired = np.sqrt(sum(delong_sd_of_difference(labels, s, np.zeros_like(s)) ** 2 for s in (f, q)))
    assert se_unpaired > 2 * se
