"""train.metrics against scikit-learn on random and tied scores."""
import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from train import metrics


def _cases():
    rng = np.random.default_rng(0)
    for n, tie_levels in [(40, None), (200, None), (60, 5), (301, 17), (25, 2)]:
        y = (rng.random(n) < 0.35).astype(int)
        y[:2] = [0, 1]
        s = rng.standard_normal(n) + 0.8 * y
        if tie_levels:
            s = np.round(s * tie_levels / 4) / tie_levels     # many exact ties
        yield y, s


def _independent_partial(y, s, p):
    """trapz of sklearn's full ROC, the segment crossing FPR = p cut by interpolation."""
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    xs, ys = [0.0], [0.0]
    for (x0, y0), (x1, y1) in zip(zip(fpr[:-1], tpr[:-1]), zip(fpr[1:], tpr[1:])):
        if x0 >= p:
            break
        if x1 <= p:
            xs.append(x1); ys.append(y1)
        else:
            xs.append(p); ys.append(y0 + (y1 - y0) * (p - x0) / (x1 - x0))
    return sum((xs[i + 1] - xs[i]) * (ys[i + 1] + ys[i]) / 2 for i in range(len(xs) - 1))


@pytest.mark.parametrize("y, s", list(_cases()))
def test_auc_equals_sklearn_roc_auc_score(y, s):
    assert metrics.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.05, 0.37])
@pytest.mark.parametrize("y, s", list(_cases()))
def test_pauc_equals_interpolated_integral_of_sklearn_roc_curve(y, s, p):
    assert metrics.pauc(y, s, p=p) == pytest.approx(_independent_partial(y, s, p) / p, abs=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.05, 0.37])
@pytest.mark.parametrize("y, s", list(_cases()))
def test_pauc_mcclish_equals_sklearn_max_fpr(y, s, p):
    assert metrics.pauc_mcclish(y, s, p=p) == pytest.approx(roc_auc_score(y, s, max_fpr=p), abs=1e-12)


def test_random_classifier_scores_005_seed_pauc_and_05_mcclish():
    rng = np.random.default_rng(1)
    y = (rng.random(200_000) < 0.5).astype(int)
    s = rng.random(200_000)
    assert metrics.pauc(y, s, p=0.1) == pytest.approx(0.05, abs=0.003)
    assert metrics.pauc_mcclish(y, s, p=0.1) == pytest.approx(0.5, abs=0.01)
    assert metrics.auc(y, s) == pytest.approx(0.5, abs=0.005)   # ~4 sd of the AUC at n = 200,000


def test_rates_and_confusion_at_cutoff_match_sklearn_confusion_matrix():
    y, s = next(_cases())
    cutoff = float(np.median(s))
    tpr, fpr = metrics.rates_at(y, s, cutoff)
    (tn, fp), (fn, tp) = confusion_matrix(y, s > cutoff, labels=[0, 1])
    assert metrics.confusion(y, s, cutoff) == [[tn, fp], [fn, tp]]
    assert tpr == pytest.approx(tp / (tp + fn)) and fpr == pytest.approx(fp / (fp + tn))


def test_evaluate_table_per_id_and_overall():
    rng = np.random.default_rng(2)
    ids = np.repeat(["id_00", "id_02"], 50)
    y = np.tile(np.r_[np.zeros(30, int), np.ones(20, int)], 2)
    s = rng.random(100) + y * np.repeat([0.1, 0.6], 50)
    table = metrics.evaluate_table(s, y, ids, cutoff=0.7, p=0.1)
    assert set(table["per_id"]) == {"id_00", "id_02"}
    for i in ("id_00", "id_02"):
        m = ids == i
        row = table["per_id"][i]
        assert row["auc"] == pytest.approx(roc_auc_score(y[m], s[m]))
        assert row["pauc_mcclish"] == pytest.approx(roc_auc_score(y[m], s[m], max_fpr=0.1))
        assert (row["n_normal"], row["n_anomaly"]) == (30, 20)
        assert row["pauc"] == pytest.approx(_independent_partial(y[m], s[m], 0.1) / 0.1, abs=1e-12)
        (tn, fp), (fn, tp) = confusion_matrix(y[m], s[m] > 0.7, labels=[0, 1])
        assert row["confusion"] == [[tn, fp], [fn, tp]]
        assert row["tpr"] == pytest.approx(tp / (tp + fn)) and row["fpr"] == pytest.approx(fp / (fp + tn))
    assert table["overall"]["auc"] == pytest.approx(roc_auc_score(y, s))
    assert table["overall"]["mean_auc"] == pytest.approx(
        np.mean([table["per_id"][i]["auc"] for i in ("id_00", "id_02")]))
    only_normal = metrics.evaluate_table(s[:30], y[:30], ids[:30], cutoff=0.7)
    assert only_normal["per_id"]["id_00"]["auc"] is None
    assert only_normal["per_id"]["id_00"]["tpr"] is None
