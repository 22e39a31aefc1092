"""From a dataset folder to a RUN folder, and from a RUN folder to its evaluation.

The ``edge-ad train`` and ``edge-ad evaluate`` commands are thin wrappers around
:func:`train_run` and :func:`evaluate_run`; the demo calls them too.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DatasetError
from edge.spec import DEFAULT_SPEC, FeatureSpec
from edge.threshold import fit_gamma

from . import metrics
from .cache import FeatureCache, VectorSet
from .datasets import TEST, TRAIN, VAL, read_dataset, resolve_root, summary
from .detectors import clip_sums, score_sums
from .fit import PCABaseline, Recipe, fit, observed_fpr
from .model import ModelConfig
from .runs import Run, check_out, load_run, write_atomically, write_run

log = logging.getLogger(__name__)

# A gamma fit on fewer held-out normal clips is a guess: refuse rather than ship it. (The
# seed's fit on training clips keeps the seed's behaviour: two scores suffice.)
MIN_CUTOFF_CLIPS = {VAL: 4, TRAIN: 2}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train_run(data: str | os.PathLike, out: str | os.PathLike, *, machine: str | None = None,
              config: ModelConfig = ModelConfig(), recipe: Recipe = Recipe(), p: float = 0.1,
              floc: float | None = 0.0, cache_dir: str | os.PathLike | None = None, jobs: int = 2,
              channel: int = 0, mix: bool = False, spec: FeatureSpec = DEFAULT_SPEC,
              force: bool = False, progress: bool = True, cutoff_on: str = VAL,
              detector: str = "seed") -> Run:
    """Train one model across the IDs of a machine type and write RUN (see :mod:`train.runs`).

    The gamma cutoff is fitted to the scores of normal clips the model did not train on
    (``cutoff_on="val"``, the default): fitted to training clips, which the autoencoder has
    learned, it lets two to four times p of unseen normal clips through. ``"train"`` is the
    seed's fit, kept for comparison with it.

    ``detector`` names the head that scores clips and windows (:mod:`train.detectors`); it is
    fitted on the normal training clips and written into RUN (``head.json``, ``head.bin``).
    ``recipe`` is used as given: :func:`train.detectors.recipe_for` gives each detector's.

    Raises:
        DatasetError, AudioError, RunError: a bad dataset, unreadable file, taken RUN.
    """
    import torch

    from edge import __version__

    from threadpoolctl import threadpool_limits

    from .detectors import DETECTORS, clip_sums, feature_head, fit_head, score_sums

    out = Path(out)
    if detector not in DETECTORS:
        raise DatasetError(f"detector {detector!r}: expected one of {sorted(DETECTORS)}")
    if cutoff_on not in (VAL, TRAIN):
        raise DatasetError(f"cutoff_on={cutoff_on!r}: expected {VAL!r} or {TRAIN!r}")
    check_out(out, force=force)          # before any work: refuse early
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    root = resolve_root(data)
    clips = read_dataset(root, machine=machine, seed=recipe.seed)
    machine_name = clips[0].machine
    normal = np.array([not c.is_anomaly for c in clips])
    split_of = np.array([c.split for c in clips])
    n_fit = int(np.sum((split_of == cutoff_on) & normal))
    if n_fit < MIN_CUTOFF_CLIPS[cutoff_on]:      # before any work: refuse early
        raise DatasetError(f"{root}: {n_fit} normal {cutoff_on} clip(s) to fit the cutoff on; "
                           f"expected at least {MIN_CUTOFF_CLIPS[cutoff_on]} (add normal clips, or fit on "
                           "the training clips with --cutoff-on train, the seed's)")
    cache = FeatureCache(cache_dir, spec=spec, channel=channel, mix=mix)
    cache.ensure([c.path for c in clips], jobs=jobs, progress=progress)
    timings["features_s"] = time.perf_counter() - t0

    train_clips = [c for c in clips if c.split == TRAIN]
    val_clips = [c for c in clips if c.split == VAL]
    train_set = VectorSet(cache, [c.path for c in train_clips])
    val_set = VectorSet(cache, [c.path for c in val_clips]) if val_clips else None
    # The network's input is the spec's vector (n_mels x context_frames), whatever the
    # config says: a spec with 64 bands trains a 320-input network.
    config = dataclasses.replace(config, input_size=spec.vector_size)
    t1 = time.perf_counter()
    model, history = fit(train_set, val_set, config=config, recipe=recipe, progress=progress)
    timings["train_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    all_set = VectorSet(cache, [c.path for c in clips])
    head = feature_head(detector, spec)
    sums = clip_sums(model, all_set, head)
    counts = np.asarray(all_set.counts)
    fit_rows = (split_of == TRAIN) & normal
    ids = np.array([c.id for c in clips])
    # One BLAS thread: a covariance or an inverse summed over another number of threads
    # rounds differently, and the same data must give the same head bytes on a laptop
    # and on a Dask worker (which limits BLAS to one thread).
    with threadpool_limits(limits=1):
        head = fit_head(head, sums[fit_rows], counts[fit_rows], ids[fit_rows])
        scores = score_sums(head, sums, counts)
    threshold = fit_gamma(scores[(split_of == cutoff_on) & normal], p=p, floc=floc)
    timings["score_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    fpr = {"p": p, **{split: observed_fpr(scores[(split_of == split) & normal], threshold.cutoff)
                      if np.any((split_of == split) & normal) else None
                      for split in (TRAIN, VAL, TEST)}}
    log.info("cutoff %.5g (gamma shape %.3g, scale %.3g, fitted on %d %s clips): observed FPR "
             "train %.4f, val %s, p %.2f", threshold.cutoff, threshold.shape, threshold.scale,
             n_fit, cutoff_on, fpr["train"],
             f"{fpr['val']:.4f}" if fpr["val"] is not None else "n/a", p)
    info: dict[str, Any] = {
        "schema": 1,
        "detector": detector,
        "head": head.describe(),
        "data": str(root),
        "machine": machine_name,
        "seed": recipe.seed,
        "recipe": recipe.to_dict(),
        "model": config.to_dict(),
        "n_vectors": {"train": len(train_set), "val": len(val_set) if val_set else 0},
        "clips": summary(clips),
        "history": history,
        "observed_fpr": fpr,
        "threshold_fit": threshold.fit,
        "cutoff_on": cutoff_on,
        "timings": timings,
        "peak_rss_mb": _peak_rss_mb(),
        "features": {"cache": str(cache.root), "channel": channel, "mix": mix,
                     "spec_digest": spec.digest},
        "versions": {"edge_ad": __version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    write_atomically(out, lambda d: write_run(d, model=model, spec=spec, threshold=threshold,
                                              root=root, machine=machine_name, clips=clips,
                                              scores=scores, info=info, head=head), force=force)
    return load_run(out)


def evaluate_run(run: Run, *, jobs: int = 2, progress: bool = True, baseline: bool = True
                 ) -> dict[str, Any]:
    """Score the test clips of a run and compute the per-ID table of the seed.

    Returns:
        ``{"table": evaluate_table(...), "baseline_pca": {...} | None, "clips": [{path, id,
        label, split, score, pca_score}], "threshold": ..., "observed_fpr": ...}``.
    """
    test = run.clips_in(TEST)
    if not test:
        raise DatasetError(f"{run.path}: the run has no test clips")
    cache = run.cache
    cache.ensure([c.path for c in run.clips], jobs=jobs, progress=progress)
    test_set = VectorSet(cache, [c.path for c in test])
    scores = score_sums(run.head, clip_sums(run.model, test_set, run.head), test_set.counts)
    labels = np.array([c.is_anomaly for c in test])
    ids = [c.id for c in test]
    p = run.threshold.p
    table = metrics.evaluate_table(scores, labels, ids, cutoff=run.threshold.cutoff, p=p)
    cutoff_on = run.info.get("cutoff_on", TRAIN)
    out: dict[str, Any] = {"run": str(run.path), "machine": run.machine, "p": p,
                           "detector": run.info.get("detector", "seed"),
                           "threshold": run.threshold.to_dict(), "table": table,
                           "cutoff_on": cutoff_on,
                           "observed_fpr": observed_fpr_table(run, scores, test,
                                                              cutoff=run.threshold.cutoff)}
    pca_scores = None
    if baseline:
        train_set = VectorSet(cache, [c.path for c in run.clips_in(TRAIN)])
        pca = PCABaseline(train_set, components=run.model_config.bottleneck)
        pca_scores = pca.score_clips(test_set)
        fit_set = VectorSet(cache, [c.path for c in run.clips_in(cutoff_on) if not c.is_anomaly])
        pca_cut = fit_gamma(pca.score_clips(fit_set), p=p).cutoff
        out["baseline_pca"] = {
            "components": run.model_config.bottleneck, "explained_variance": pca.explained,
            "cutoff": pca_cut, "table": metrics.evaluate_table(pca_scores, labels, ids, cutoff=pca_cut, p=p)}
    faults = _synth_faults(run)
    if faults:
        out["per_fault"] = _per_fault(test, scores, pca_scores, faults, run)
    out["clips"] = []
    for i, c in enumerate(test):
        row = {"path": c.to_dict(run.root)["path"], "id": c.id, "label": c.label,
               "split": c.split, "score": float(scores[i])}
        if pca_scores is not None:
            row["pca_score"] = float(pca_scores[i])
        if faults:
            row["fault"] = faults.get(row["path"])
        out["clips"].append(row)
    return out


def compare_detectors(run: Run, *, jobs: int = 2, progress: bool = True) -> dict[str, Any]:
    """Every head the run's network supports side by side (``evaluate --detector all``).

    One pass of the network over every clip gives the feature sums of all heads
    (:func:`train.detectors.union_head`); each head is fitted on the normal training
    clips, its gamma cutoff on the clips the run's cutoff was fitted on, and scored on the
    test clips. The run's own detector is among them (scored the same way, so its column
    equals :func:`evaluate_run`'s table up to the refit).

    Returns:
        ``{"run", "machine", "p", "network": the run's detector, "detectors": {name:
        evaluate_table(...)}, "clips": [{path, id, label, name: score...}]}``.
    """
    from .detectors import all_heads, fit_head, head_sums, split_union, union_head

    cache = run.cache
    cache.ensure([c.path for c in run.clips], jobs=jobs, progress=progress)
    clips = run.clips
    vectors = VectorSet(cache, [c.path for c in clips])
    counts = np.asarray(vectors.counts)
    parts = split_union(clip_sums(run.model, vectors, union_head(run.spec)), run.spec)
    split_of = np.array([c.split for c in clips])
    labels = np.array([bool(c.is_anomaly) for c in clips])
    fit_rows = (split_of == TRAIN) & ~labels
    cut_rows = (split_of == run.info.get("cutoff_on", TRAIN)) & ~labels
    test = split_of == TEST
    ids = [c.id for c, t in zip(clips, test) if t]
    all_ids = np.array([c.id for c in clips])
    p = run.threshold.p
    out: dict[str, Any] = {"run": str(run.path), "machine": run.machine, "p": p,
                           "network": run.info.get("detector", "seed"), "detectors": {},
                           "clips": [{"path": c.to_dict(run.root)["path"], "id": c.id,
                                      "label": c.label} for c, t in zip(clips, test) if t]}
    for name, head in all_heads(run.spec).items():
        sums = head_sums(name, parts)
        head = fit_head(head, sums[fit_rows], counts[fit_rows], all_ids[fit_rows])
        scores = score_sums(head, sums, counts)
        cutoff = fit_gamma(scores[cut_rows], p=p).cutoff
        label = name if out["network"] != "seed" else f"{name} (seed network)"
        out["detectors"][label] = metrics.evaluate_table(scores[test], labels[test], ids,
                                                         cutoff=cutoff, p=p)
        for row, v in zip(out["clips"], scores[test]):
            row[label] = float(v)
    return out


def compare_runs(runs: list[Run], comparison: dict[str, Any] | None = None, *, jobs: int = 2
                 ) -> dict[str, Any]:
    """Each run's own detector side by side on the same test clips (``evaluate RUN RUN2...``),
    added to ``comparison`` (:func:`compare_detectors`'s) when given.

    Raises:
        DatasetError: the runs were not trained on the same clips with the same split.
    """
    first = [c.to_dict(runs[0].root)["path"] for c in runs[0].clips_in(TEST)]
    out = comparison or {"run": str(runs[0].path), "machine": runs[0].machine,
                         "p": runs[0].threshold.p, "network": "one per run", "detectors": {},
                         "clips": [{"path": c.to_dict(runs[0].root)["path"], "id": c.id,
                                    "label": c.label} for c in runs[0].clips_in(TEST)]}
    for run in runs:
        paths = [c.to_dict(run.root)["path"] for c in run.clips_in(TEST)]
        if paths != first:
            raise DatasetError(f"{run.path}: its test clips differ from {runs[0].path}'s; "
                               "expected runs trained on the same data with the same --seed")
        result = evaluate_run(run, jobs=jobs, progress=False, baseline=False)
        label = f"{run.info.get('detector', 'seed')} ({run.path.name})"
        out["detectors"][label] = result["table"]
        for row, clip in zip(out["clips"], result["clips"]):
            row[label] = clip["score"]
    return out


def _comparison_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = list(result["detectors"])
    ids = list(next(iter(result["detectors"].values()))["per_id"])
    head = ["ID", *names]
    rows = [[i, *(f"{result['detectors'][n]['per_id'][i]['auc']:.4f}" for n in names)] for i in ids]
    rows.append(["mean AUC", *(f"{result['detectors'][n]['overall']['mean_auc']:.4f}" for n in names)])
    rows.append(["mean pAUC", *(f"{result['detectors'][n]['overall']['mean_pauc']:.4f}" for n in names)])
    return head, rows


def format_comparison(result: dict[str, Any]) -> str:
    """Per-ID AUC (and the mean pAUC) of every detector, one column each."""
    head, rows = _comparison_rows(result)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(str(c).rjust(w) for c, w in zip(r, widths)) for r in [head, *rows])


def markdown_comparison(result: dict[str, Any]) -> str:
    head, rows = _comparison_rows(result)
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def observed_fpr_table(run: Run, test_scores: np.ndarray, test: list, *, cutoff: float
                       ) -> dict[str, Any]:
    """The fraction of normal clips above ``cutoff`` per split, each with the 95 % binomial
    interval an exact-p cutoff would give on that many clips: ``{"p", split: {"fpr", "n",
    "interval", "within"}}``. Training and validation clips use the scores stored at
    training time, test clips ``test_scores``; the split the cutoff was fitted on says so."""
    from edge.threshold import binomial_interval

    p = run.threshold.p
    out: dict[str, Any] = {"p": p, "fitted_on": run.info.get("cutoff_on", TRAIN)}
    for split in (TRAIN, VAL, TEST):
        if split == TEST:
            s = np.array([v for v, c in zip(test_scores, test) if not c.is_anomaly])
        else:
            s = np.array([run.scores[c.to_dict(run.root)["path"]] for c in run.clips_in(split)
                          if not c.is_anomaly])
        if not s.size:
            out[split] = None
            continue
        lo, hi = binomial_interval(p, int(s.size))
        fpr = float(np.mean(s > cutoff))
        out[split] = {"fpr": fpr, "n": int(s.size), "interval": [lo, hi], "within": lo <= fpr <= hi}
    return out


def _synth_faults(run: Run) -> dict[str, str]:
    """Fault family of each abnormal clip of a synthetic plant (from its synth.json), else {}."""
    import json

    meta = run.root / run.machine / "synth.json"
    if not meta.is_file():
        return {}
    try:
        doc = json.loads(meta.read_text())
        return {c["path"]: c["fault"] for c in doc["clips"] if c.get("fault")}
    except (ValueError, KeyError, TypeError):
        return {}


def _per_fault(test: list, scores: np.ndarray, pca_scores: np.ndarray | None,
               faults: dict[str, str], run: Run) -> dict[str, dict[str, Any]]:
    """AUC of each fault family against the normal test clips (all IDs pooled)."""
    names = [faults.get(c.to_dict(run.root)["path"]) for c in test]
    normal = np.array([c.label == "normal" for c in test])
    out = {}
    for family in sorted({n for n in names if n}):
        mask = np.array([n == family for n in names])
        sel = normal | mask
        labels = mask[sel].astype(int)
        row = {"n": int(mask.sum()), "auc": metrics.auc(labels, scores[sel])}
        if pca_scores is not None:
            row["pca_auc"] = metrics.auc(labels, pca_scores[sel])
        out[family] = row
    return out


def format_faults(result: dict[str, Any]) -> str:
    """One line per fault family of a synthetic plant: AUC against the normal test clips."""
    rows = result.get("per_fault") or {}
    return "\n".join(
        f"  {name:<10} n={row['n']:<4d} AUC {row['auc']:.4f}"
        + (f"   PCA AUC {row['pca_auc']:.4f}" if "pca_auc" in row else "")
        for name, row in rows.items())


def _fmt(v: float | None, width: int = 7) -> str:
    return f"{v:{width}.4f}" if v is not None else f"{'n/a':>{width}}"


def format_table(result: dict[str, Any]) -> str:
    """The per-ID table as text (also used for report.md, as Markdown)."""
    return "\n".join(_table_lines(result, markdown=False))


def markdown_table(result: dict[str, Any]) -> str:
    return "\n".join(_table_lines(result, markdown=True))


def _table_lines(result: dict[str, Any], *, markdown: bool) -> list[str]:
    table = result["table"]
    base = (result.get("baseline_pca") or {}).get("table")
    p = result["p"]
    head = ["ID", "AUC", f"pAUC({p:g})", "pAUC McClish", "TPR", "FPR", "normal", "anomaly"]
    if base:
        head += ["PCA AUC", "PCA pAUC"]
    rows = []
    for name, row in [*table["per_id"].items(), ("overall", table["overall"])]:
        r = [name, _fmt(row["auc"]), _fmt(row["pauc"]), _fmt(row["pauc_mcclish"]), _fmt(row["tpr"]),
             _fmt(row["fpr"]), str(row["n_normal"]), str(row["n_anomaly"])]
        if base:
            b = base["overall"] if name == "overall" else base["per_id"][name]
            r += [_fmt(b["auc"]), _fmt(b["pauc"])]
        rows.append(r)
    mean = ["mean of IDs", _fmt(table["overall"]["mean_auc"]), _fmt(table["overall"]["mean_pauc"]),
            _fmt(table["overall"]["mean_pauc_mcclish"]), "", "", "", ""]
    if base:
        mean += [_fmt(base["overall"]["mean_auc"]), _fmt(base["overall"]["mean_pauc"])]
    rows.append(mean)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return lines + ["| " + " | ".join(c.strip() for c in r) + " |" for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return [fmt(head), *(fmt(r) for r in rows)]


def hidden_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"--hidden {text!r}: expected positive sizes like 128,128")
    return sizes
