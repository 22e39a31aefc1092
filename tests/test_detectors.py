"""The detector family (issue 10): heads against independent computations (numpy, scipy,
scikit-learn), streaming windows against whole clips, RUN and bundle carrying the head, the
trained recipe, ``evaluate --detector all``, and the held-out synthetic fault families."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from scipy.spatial.distance import mahalanobis as scipy_mahalanobis
from sklearn.covariance import LedoitWolf

from edge.cli import main
from edge.errors import BundleError
from edge.heads import MSEHead, WindowRing, head_files, load_head
from edge.scoring import clip_score
from edge.spec import DEFAULT_SPEC
from train.detectors import DETECTORS, feature_head, fit_head, recipe_for, score_sums

from conftest import TINY_SEED

SPEC = DEFAULT_SPEC
M, F = SPEC.n_mels, SPEC.context_frames


def _clips(rng, n_clips=12, n=40, shift=0.0):
    """Log-mel-like vectors and noisy reconstructions of ``n_clips`` clips."""
    xs = [rng.normal(-20 + shift, 3, (n, SPEC.vector_size)).astype(np.float32) for _ in range(n_clips)]
    rs = [(x + rng.normal(0, 0.5 + 0.01 * k, x.shape)).astype(np.float32) for k, x in enumerate(xs)]
    return xs, rs


def _fitted(kind, rng):
    xs, rs = _clips(rng, 16)
    xs2, rs2 = _clips(rng, 16, shift=5.0)
    head = feature_head(kind, SPEC)
    sums = np.array([head.features(x, r).sum(0) for x, r in zip(xs + xs2, rs + rs2)])
    counts = np.array([len(x) for x in xs + xs2])
    groups = np.array(["id_00"] * 16 + ["id_02"] * 16)
    return fit_head(head, sums, counts, groups), xs + xs2, rs + rs2, groups


def test_mse_head_is_spec4_score():
    rng = np.random.default_rng(0)
    x, r = _clips(rng, 1)
    assert MSEHead(SPEC).clip_score(x[0], r[0]) == pytest.approx(clip_score(x[0], r[0]), rel=1e-12)


def test_band_head_is_scikit_learn_gaussians_and_scipy_distance():
    rng = np.random.default_rng(1)
    head, xs, rs, groups = _fitted("ae-maha", rng)
    # independent: per-band mean squared error by reshaping, one Ledoit-Wolf per ID
    feats = np.array([np.log(((r.astype(np.float64) - x) ** 2).reshape(len(x), F, M).mean((0, 1)) + 1e-6)
                      for x, r in zip(xs, rs)])
    fits = [LedoitWolf().fit(feats[groups == g]) for g in ("id_00", "id_02")]
    np.testing.assert_allclose(head.mean, [f.location_ for f in fits], rtol=1e-10)
    np.testing.assert_allclose(head.precision, [f.precision_ for f in fits], rtol=1e-8)
    x, r = _clips(rng, 1, shift=2.0)
    f = np.log(((r[0].astype(np.float64) - x[0]) ** 2).reshape(len(x[0]), F, M).mean((0, 1)) + 1e-6)
    expected = min(scipy_mahalanobis(f, fit.location_, fit.precision_) ** 2 for fit in fits)
    assert head.clip_score(x[0], r[0]) == pytest.approx(expected, rel=1e-8)


def test_stats_head_is_band_mean_and_sd_of_the_frames():
    rng = np.random.default_rng(2)
    head, xs, rs, groups = _fitted("stats", rng)
    frames = [x[:, :M].astype(np.float64) for x in xs]
    feats = np.array([np.concatenate([f.mean(0), f.std(0)]) for f in frames])
    fits = [LedoitWolf().fit(feats[groups == g]) for g in ("id_00", "id_02")]
    np.testing.assert_allclose(head.mean, [f.location_ for f in fits], rtol=1e-7, atol=1e-9)
    x = xs[3]
    f = np.concatenate([x[:, :M].astype(np.float64).mean(0), x[:, :M].astype(np.float64).std(0)])
    expected = min(scipy_mahalanobis(f, fit.location_, fit.precision_) ** 2 for fit in fits)
    assert head.clip_score(x, None) == pytest.approx(expected, rel=1e-6)
    assert not head.needs_model


def test_mel_mean_head_is_band_mean_of_the_frames():
    rng = np.random.default_rng(12)
    head, xs, rs, groups = _fitted("mel-mean", rng)
    feats = np.array([x[:, :M].astype(np.float64).mean(0) for x in xs])
    fits = [LedoitWolf().fit(feats[groups == g]) for g in ("id_00", "id_02")]
    np.testing.assert_allclose(head.mean, [f.location_ for f in fits], rtol=1e-9)
    np.testing.assert_allclose(head.precision, [f.precision_ for f in fits], rtol=1e-7)
    x = xs[7]
    f = x[:, :M].astype(np.float64).mean(0)
    expected = min(scipy_mahalanobis(f, fit.location_, fit.precision_) ** 2 for fit in fits)
    assert head.clip_score(x, None) == pytest.approx(expected, rel=1e-7)
    assert not head.needs_model


def test_ensemble_is_the_weighted_mean_of_standardised_log_scores():
    rng = np.random.default_rng(3)
    head, xs, rs, groups = _fitted("ensemble", rng)
    assert [p.kind for p in head.parts] == ["band-maha", "mel-mean"]
    assert list(head.weights) == pytest.approx([0.15, 0.85])
    x, r = xs[5], rs[5]
    parts = np.array([p.clip_score(x, r) for p in head.parts])
    expected = math.exp(0.15 * (math.log(parts[0]) - head.loc[0]) / head.scale[0]
                        + 0.85 * (math.log(parts[1]) - head.loc[1]) / head.scale[1])
    assert head.clip_score(x, r) == pytest.approx(expected, rel=1e-12)
    # Standardised out of fold: each part's loc and scale are those of held-out clips' log
    # scores. Computed here leave-one-out with scikit-learn (the head uses 5 folds, so
    # close, not equal), and far from the in-sample scores, which are smaller and tighter.
    features = {"band-maha": np.array([np.log(((r.astype(np.float64) - x) ** 2).reshape(len(x), F, M)
                                              .mean((0, 1)) + 1e-6) for x, r in zip(xs, rs)]),
                "mel-mean": np.array([x[:, :M].astype(np.float64).mean(0) for x in xs])}
    for j, kind in enumerate(["band-maha", "mel-mean"]):
        f = features[kind]
        held, own = [], []
        for i in range(len(f)):
            d = []
            for g in ("id_00", "id_02"):
                rows = groups == g
                without = rows & (np.arange(len(f)) != i)
                fit = LedoitWolf().fit(f[without])
                d.append(scipy_mahalanobis(f[i], fit.location_, fit.precision_) ** 2)
                if g == groups[i]:
                    fit = LedoitWolf().fit(f[rows])
                    own.append(scipy_mahalanobis(f[i], fit.location_, fit.precision_) ** 2)
            held.append(min(d))
        held, own = np.log(held), np.log(own)
        assert head.loc[j] == pytest.approx(held.mean(), abs=0.25), kind
        assert head.scale[j] == pytest.approx(held.std(ddof=1), rel=0.3), kind
        assert head.loc[j] > own.mean() + 0.5, kind


def test_ensemble_scores_far_outside_the_training_data_keep_their_order():
    """A part standardised by a tiny spread gives standardised log scores in the
    thousands: they must stay finite and ordered, not tie at a cap (ties made the
    ensemble's AUC exactly 0.5 on real recordings with one training recording)."""
    from edge.heads import ensemble_exp

    zs = [-800.0, -5.0, 0.0, 3.0, 699.0, 700.0, 701.0, 5e3, 1e6, 1e300]
    out = [ensemble_exp(z) for z in zs]
    assert all(math.isfinite(v) and v >= 0 for v in out)
    assert all(a < b for a, b in zip(out[1:], out[2:]))
    assert out[3] == pytest.approx(math.exp(3.0), rel=1e-15)
    assert out[5] == math.exp(700.0)


@pytest.mark.parametrize("kind", ["ae", "ae-maha", "stats", "mel-mean", "ensemble"])
def test_window_ring_scores_like_the_clip(kind):
    rng = np.random.default_rng(4)
    head, xs, rs, _ = _fitted(kind, rng)
    x = np.concatenate(xs[:3])
    r = np.concatenate(rs[:3])
    ring = WindowRing(50, head.width)
    for a in range(0, len(x), 7):          # blocks that wrap the ring
        ring.add(head.features(x[a:a + 7], r[a:a + 7]))
    assert ring.full and ring.seen == len(x)
    assert head.score(ring.total(), ring.n) == pytest.approx(head.clip_score(x[-50:], r[-50:]), rel=1e-9)


def test_head_files_round_trip_and_damage_is_refused(tmp_path):
    rng = np.random.default_rng(5)
    head, xs, rs, _ = _fitted("ensemble", rng)
    for name, data in head_files(head).items():
        (tmp_path / name).write_bytes(data)
    back = load_head(tmp_path, SPEC)
    assert back.describe() == "ensemble(band-maha, mel-mean)"
    assert back.clip_score(xs[1], rs[1]) == head.clip_score(xs[1], rs[1])
    # a head written before weights existed weighs its parts equally
    doc = json.loads((tmp_path / "head.json").read_text())
    del doc["head"]["weights"]
    (tmp_path / "head.json").write_text(json.dumps(doc))
    assert list(load_head(tmp_path, SPEC).weights) == [0.5, 0.5]
    doc["head"]["weights"] = [1.0, -1.0]
    (tmp_path / "head.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"head.json: not a valid detector head.*weights"):
        load_head(tmp_path, SPEC)
    (tmp_path / "head.json").write_text(json.dumps({**doc, "head": {**doc["head"], "weights": [0.15, 0.85]}}))
    assert isinstance(load_head(tmp_path / "nothing", SPEC), MSEHead)
    data = (tmp_path / "head.bin").read_bytes()
    (tmp_path / "head.bin").write_bytes(data[:100])
    with pytest.raises(BundleError, match=r"head.json: not a valid detector head.*100 bytes, not a whole"):
        load_head(tmp_path, SPEC)
    (tmp_path / "head.bin").write_bytes(data[:96])
    with pytest.raises(BundleError, match=r"head.json: not a valid detector head.*outside head.bin"):
        load_head(tmp_path, SPEC)


def test_trained_recipe_cosine_schedule_and_early_stopping(monkeypatch, tiny_plant, feature_cache_dir):
    import train.fit as fit_mod
    from train.cache import FeatureCache, VectorSet
    from train.datasets import read_dataset

    clips = read_dataset(tiny_plant)
    cache = FeatureCache(feature_cache_dir)
    cache.ensure([c.path for c in clips], jobs=1, progress=False)
    train = VectorSet(cache, [c.path for c in clips if c.split == "train"])
    val = VectorSet(cache, [c.path for c in clips if c.split == "val"])
    recipe = recipe_for("ae", seed=0, threads=1, epochs=12)
    losses = iter([5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1, 4.2, 4.3])
    monkeypatch.setattr(fit_mod, "mean_loss", lambda model, vectors, **kw: next(losses))
    _, history = fit_mod.fit(train, val, recipe=recipe, progress=False)
    # the validation loss is best at epoch 3, and patience 5 stops after epoch 8
    assert len(history) == 3 + recipe.patience
    assert [h.get("best", False) for h in history].index(True) == 2
    expected = [recipe.lr * (1 + math.cos(math.pi * t / recipe.epochs)) / 2 for t in range(len(history))]
    assert [h["lr"] for h in history] == pytest.approx(expected, rel=1e-9)


@pytest.fixture(scope="module")
def ensemble_run(tiny_plant, feature_cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "run"
    assert main(["-q", "train", str(tiny_plant), "--out", str(out), "--epochs", "3", "--cache",
                 str(feature_cache_dir), "--jobs", "1", "--threads", "1"]) == 0
    from train.runs import load_run
    return load_run(out)


def test_default_detector_trains_the_autoencoder_and_a_head(ensemble_run):
    run = ensemble_run
    assert run.info["detector"] == "ensemble" == run.head.kind
    assert run.info["recipe"]["batch_size"] == 512 and run.info["recipe"]["schedule"] == "cosine"
    assert (run.path / "model.pt").is_file() and (run.path / "head.json").is_file()
    # the stored scores are the head's scores of the model's reconstructions
    import torch

    for clip in run.clips[:4]:
        x = run.vectors(clip)
        with torch.no_grad():
            r = run.model(torch.from_numpy(x)).numpy()
        assert run.scores[clip.to_dict(run.root)["path"]] == pytest.approx(run.head.clip_score(x, r), rel=1e-9)


def test_export_carries_the_head_and_the_board_scores_with_it(ensemble_run, tmp_path, capsys):
    from edge.bundle import load_bundle
    from edge.detector import open_detector
    from train.export import export_run

    summary = export_run(ensemble_run, tmp_path / "bundle", formats=("tflite",))
    assert summary["gate"]["passed"]
    bundle = load_bundle(tmp_path / "bundle")
    assert {"head.json", "head.bin"} <= set(bundle.manifest["files"])
    assert bundle.manifest["detector"] == "ensemble"
    det = open_detector(bundle, backend="tflite", precision="float")
    clip = ensemble_run.clips_in("test")[0]
    # float TFLite through the board's scoring equals the training side's score
    assert det.clip_score(ensemble_run.vectors(clip)) == pytest.approx(
        ensemble_run.scores[clip.to_dict(ensemble_run.root)["path"]], rel=1e-4)
    capsys.readouterr()
    assert main(["score", str(bundle.path), str(clip.path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    int8 = open_detector(bundle).clip_score(ensemble_run.vectors(clip))
    assert doc["clips"][0]["score"] == pytest.approx(int8, rel=1e-9)
    # a head changed after export is refused by the manifest's hash
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle.path, damaged)
    (damaged / "head.bin").write_bytes(b"\0" * (damaged / "head.bin").stat().st_size)
    with pytest.raises(BundleError, match="head.bin: sha256"):
        load_bundle(damaged)


def test_evaluate_detector_all_compares_every_head(ensemble_run, tmp_path, capsys):
    import sklearn.metrics

    run_copy = tmp_path / "run"
    shutil.copytree(ensemble_run.path, run_copy)
    capsys.readouterr()
    assert main(["-q", "evaluate", str(run_copy), "--detector", "all", "--json",
                 "--report", str(tmp_path / "report"), "--jobs", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    comp = result["comparison"]
    assert list(comp["detectors"]) == ["ae", "ae-maha", "stats", "mel-mean", "ensemble"]
    for name, table in comp["detectors"].items():
        for ident, row in table["per_id"].items():
            mine = [c for c in comp["clips"] if c["id"] == ident]
            assert row["auc"] == pytest.approx(sklearn.metrics.roc_auc_score(
                [c["label"] == "anomaly" for c in mine], [c[name] for c in mine]))
    # the run's own detector, refitted the same way, scores the test clips as evaluate does
    own = {c["path"]: c["score"] for c in result["clips"]}
    assert [own[c["path"]] for c in comp["clips"]] == pytest.approx([c["ensemble"] for c in comp["clips"]], rel=1e-9)
    assert (tmp_path / "report" / "detectors.png").is_file()
    assert "Detectors side by side" in (tmp_path / "report" / "report.md").read_text()


def test_every_detector_name_trains(tiny_plant, feature_cache_dir, tmp_path):
    from train.pipeline import train_run

    for name in DETECTORS:
        run = train_run(tiny_plant, tmp_path / name, detector=name, cache_dir=feature_cache_dir,
                        recipe=recipe_for(name, seed=TINY_SEED, threads=1, epochs=2), jobs=1, progress=False)
        assert run.info["detector"] == name
        scores = np.array(list(run.scores.values()))
        assert np.all(np.isfinite(scores)) and np.all(scores > 0)


def test_score_sums_match_clip_scores():
    rng = np.random.default_rng(6)
    head, xs, rs, _ = _fitted("ae-maha", rng)
    sums = np.array([head.features(x, r).sum(0) for x, r in zip(xs, rs)])
    np.testing.assert_allclose(score_sums(head, sums, [len(x) for x in xs]),
                               [head.clip_score(x, r) for x, r in zip(xs, rs)], rtol=1e-12)


def test_synth_held_out_fault_families(tmp_path, capsys):
    out = tmp_path / "plant"
    assert main(["-q", "synth", str(out), "--ids", "0", "--normal", "1", "--abnormal", "4",
                 "--duration", "1", "--jobs", "1", "--faults", "looseness,cavitation"]) == 0
    meta = json.loads((out / "fan" / "synth.json").read_text())
    assert {c["fault"] for c in meta["clips"] if c["label"] == "abnormal"} <= {"looseness", "cavitation"}
    assert main(["-q", "synth", str(tmp_path / "p2"), "--faults", "squeal"]) == 2
    assert "--faults squeal: unknown ['squeal']" in capsys.readouterr().err



def test_fitted_head_bytes_do_not_depend_on_the_process(tmp_path):
    """Machine IDs are strings: a fit that walked a set of them would follow the process's
    hash seed, and a Dask worker would write another head than the CLI for the same run."""
    import os
    import subprocess
    import sys

    code = """
import hashlib, numpy as np
from edge.heads import head_files
from edge.spec import DEFAULT_SPEC
from train.detectors import feature_head, fit_head
rng = np.random.default_rng(0)
head = feature_head("ensemble", DEFAULT_SPEC)
sums = np.abs(rng.normal(size=(60, head.width))) * 40 + 1
groups = np.array(["id_00", "id_02", "id_04", "id_06", "id_08", "id_10"] * 10)
head = fit_head(head, sums, np.full(60, 10), groups)
print(hashlib.sha256(b"".join(head_files(head).values())).hexdigest())
"""
    out = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONHASHSEED": str(s)}).stdout
           for s in (1, 2, 3)}
    assert len(out) == 1, out


def test_evaluate_puts_runs_of_other_detectors_side_by_side(ensemble_run, trained_run, tmp_path, capsys):
    from train.pipeline import evaluate_run

    capsys.readouterr()
    assert main(["-q", "evaluate", str(ensemble_run.path), str(trained_run.path), "--json",
                 "--no-report", "--no-baseline", "--jobs", "1"]) == 0
    comp = json.loads(capsys.readouterr().out)["comparison"]
    labels = [f"ensemble ({ensemble_run.path.name})", f"seed ({trained_run.path.name})"]
    assert list(comp["detectors"]) == labels
    for label, run in zip(labels, (ensemble_run, trained_run)):
        own = evaluate_run(run, baseline=False, progress=False)["table"]["per_id"]
        assert {i: r["auc"] for i, r in comp["detectors"][label]["per_id"].items()} == \
            {i: r["auc"] for i, r in own.items()}


@pytest.mark.bad_input
def test_evaluate_refuses_runs_of_other_clips(ensemble_run, tiny_plant, feature_cache_dir, tmp_path, capsys):
    from train.pipeline import train_run

    other = train_run(tiny_plant, tmp_path / "other", detector="seed", cache_dir=feature_cache_dir,
                      recipe=recipe_for("seed", seed=5, threads=1, epochs=1), jobs=1, progress=False)
    capsys.readouterr()
    assert main(["-q", "evaluate", str(ensemble_run.path), str(other.path), "--no-report",
                 "--jobs", "1"]) == 2
    assert "its test clips differ" in capsys.readouterr().err


def test_too_few_clips_for_out_of_fold_standardisation_says_so(caplog):
    rng = np.random.default_rng(5)
    xs, rs = _clips(rng, 6)
    head = feature_head("ensemble", SPEC)
    sums = np.array([head.features(x, r).sum(0) for x, r in zip(xs, rs)])
    groups = np.array(["id_00"] * 3 + ["id_02"] * 3)        # 3 clips per ID, 5 folds
    with caplog.at_level("WARNING", logger="train.detectors"):
        fit_head(head, sums, np.array([len(x) for x in xs]), groups)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["band-maha head", "mel-mean head"]
    assert "too few clips per machine ID for 5 folds (6 clips in 2 IDs)" in caplog.text
