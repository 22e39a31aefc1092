#!/usr/bin/env python3
"""Choose the default detector's head on *selection* plants, never on the reported ones.

docs/detectors.md reports plants A-D (``scripts/measure_detectors.py``). Choosing the
default on them would be tuning on what is reported, so head variants are compared here on
plants E-G only: other seeds, machines, SNRs and layouts, generated on the spot. For each
plant and training seed:

1. ``edge-ad synth`` the plant and train the default network (``--detector ensemble``);
2. one pass of the network over every clip gives the feature sums of every head
   (:func:`train.detectors.union_head`);
3. every variant below is fitted on the normal training clips and scored on the test clips,
   float, per-ID AUC.

Variants: the single heads (``mel-mean`` is ``stats`` without the SDs); the ensembles of
``band-maha`` with ``stats`` or ``mel-mean`` at several weights (``w`` is the weight of the
statistics part; 0.5 is an equal mean); ``mse`` with either; the three-part ensembles;
each Gaussian scored against the clip's own machine ID's Gaussian instead of the nearest
one ("own"). ``--lines`` adds the tonal lines (``mel_mean_variants.line_prominence``,
standardised out-of-fold) as a third part beside the default's two.

    .venv/bin/python scripts/select_detector.py --out /tmp/select --plants E F G --seeds 0 1
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure_detectors import PLANTS, make_plant  # noqa: E402

WEIGHTS = (0.5, 0.6, 0.67, 0.75, 0.85, 0.9)


def plant_sums(name: str, seed: int, out: Path) -> dict:
    """Union feature sums of every clip of plant ``name`` under the default network."""
    from train.cache import VectorSet
    from train.datasets import TEST, TRAIN
    from train.detectors import DEFAULT_DETECTOR, clip_sums, recipe_for, split_union, union_head
    from train.pipeline import train_run

    cached = out / f"sums-{name}-{seed}.npz"
    if cached.is_file():
        z = np.load(cached, allow_pickle=False)
        return {k: z[k] for k in z.files}
    data = make_plant(name, out)
    run = train_run(data, out / f"run-{name}-{seed}", recipe=recipe_for(DEFAULT_DETECTOR, seed=seed, threads=1),
                    detector=DEFAULT_DETECTOR, cache_dir=out / "cache", force=True, progress=False)
    clips = run.clips
    vectors = VectorSet(run.cache, [c.path for c in clips])
    parts = split_union(clip_sums(run.model, vectors, union_head(run.spec)), run.spec)
    split = np.array([c.split for c in clips])
    labels = np.array([int(c.is_anomaly) for c in clips])
    row = {"mse": parts["mse"], "band-maha": parts["band-maha"], "stats": parts["stats"],
           "counts": np.asarray(vectors.counts), "fit": (split == TRAIN) & (labels == 0),
           "test": split == TEST, "labels": labels, "ids": np.array([c.id for c in clips]),
           "paths": np.array([str(c.path) for c in clips])}
    np.savez(cached, **row)
    return row


def plant_lines(p: dict, name: str, out: Path) -> np.ndarray:
    """Each clip's tonal-line prominences (``mel_mean_variants.line_prominence``), cached
    per plant: they read the raw samples, not the network."""
    from mel_mean_variants import line_prominence, read_mono

    cached = out / f"lines-{name}.npz"
    if cached.is_file():
        z = np.load(cached, allow_pickle=False)
        if np.array_equal(z["paths"], p["paths"]):
            return z["lines"]
    lines = np.array([line_prominence(*read_mono(Path(f))) for f in p["paths"]])
    np.savez(cached, lines=lines, paths=p["paths"])
    return lines


def _gaussian_distances(head, sums, counts) -> np.ndarray:
    """``(n_clips, n_ids)`` squared Mahalanobis distance to each ID's Gaussian."""
    from edge.heads import mahalanobis_each

    return np.array([mahalanobis_each(head.clip_features(s, int(n)), head.mean, head.precision)
                     for s, n in zip(sums, counts)])


def variant_scores(p: dict, spec) -> dict[str, np.ndarray]:
    """Test-clip log scores of every variant (fitted on the fit rows only)."""
    from edge.heads import make_head
    from train.detectors import fit_head, out_of_fold_scores

    fit, test, counts, ids = p["fit"], p["test"], p["counts"], p["ids"]
    p = {**p, "mel-mean": p["stats"][:, :spec.n_mels]}
    id_list = sorted(set(ids[fit].tolist()))
    own = np.array([id_list.index(i) for i in ids[test]])
    logs, logs_own, oof = {}, {}, {}
    for kind in ("mse", "band-maha", "stats", "mel-mean"):
        head = fit_head(make_head(kind, spec), p[kind][fit], counts[fit], ids[fit])
        o = np.log(np.maximum(out_of_fold_scores(make_head(kind, spec), p[kind][fit], counts[fit],
                                                 ids[fit]), 1e-300))
        oof[kind] = (o.mean(), o.std(ddof=1))
        if kind == "mse":
            s = np.array([head.score(r, int(n)) for r, n in zip(p[kind][test], counts[test])])
            logs[kind] = logs_own[kind] = np.log(np.maximum(s, 1e-300))
        else:
            d = _gaussian_distances(head, p[kind][test], counts[test])
            logs[kind] = np.log(np.maximum(d.min(1), 1e-300))
            logs_own[kind] = np.log(np.maximum(d[np.arange(len(d)), own], 1e-300))

    def z(src, kind):
        return (src[kind] - oof[kind][0]) / oof[kind][1]

    out = dict(logs)
    out["stats own"] = logs_own["stats"]
    out["mel-mean own"] = logs_own["mel-mean"]
    for part in ("stats", "mel-mean"):
        for w in WEIGHTS:
            out[f"band-maha+{part} w={w}"] = (1 - w) * z(logs, "band-maha") + w * z(logs, part)
        out[f"band-maha+{part} own w=0.5"] = (z(logs_own, "band-maha") + z(logs_own, part)) / 2
        out[f"mse+{part} w=0.5"] = (z(logs, "mse") + z(logs, part)) / 2
        out[f"mse+band-maha+{part}"] = (z(logs, "mse") + z(logs, "band-maha") + z(logs, part)) / 3
    if "lines" in p:
        from mel_mean_variants import oof_standardised

        z_lines = oof_standardised(p["lines"], fit, ids)[test]
        for wl in (0.1, 0.15, 0.2):
            out[f"band-maha 0.15 + mel-mean {0.85 - wl:.2f} + lines {wl}"] = (
                0.15 * z(logs, "band-maha") + (0.85 - wl) * z(logs, "mel-mean") + wl * z_lines)
        out["mel-mean 0.8 + lines 0.2"] = 0.8 * z(logs, "mel-mean") + 0.2 * z_lines
    return out


def main() -> None:
    from edge.spec import DEFAULT_SPEC
    from train import metrics

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/edge-ad-select"))
    ap.add_argument("--plants", nargs="+", default=["E", "F", "G"], choices=list(PLANTS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--lines", action="store_true",
                    help="add the three-part ensembles with the tonal lines (docs/detectors.md, fifth session)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    table: dict[str, list[tuple[float, float]]] = {}
    for name in args.plants:
        for seed in args.seeds:
            p = plant_sums(name, seed, args.out)
            if args.lines:
                p["lines"] = plant_lines(p, name, args.out)
            scores = variant_scores(p, DEFAULT_SPEC)
            labels, ids = p["labels"][p["test"]], p["ids"][p["test"]]
            line = []
            for v, s in scores.items():
                aucs = [metrics.auc(labels[ids == i], s[ids == i]) for i in sorted(set(ids))]
                table.setdefault(v, []).append((float(np.mean(aucs)), float(min(aucs))))
                line.append(f"{v} {np.mean(aucs):.3f}/{min(aucs):.3f}")
            print(f"plant {name} seed {seed}: " + "; ".join(line), flush=True)
    print("\n| variant | " + " | ".join(f"{n} s{s}" for n in args.plants for s in args.seeds)
          + " | mean | lowest ID |")
    print("|---|" + "---|" * (len(args.plants) * len(args.seeds) + 2))
    for v, rows in table.items():
        print(f"| {v} | " + " | ".join(f"{m:.3f}" for m, _ in rows)
              + f" | {np.mean([m for m, _ in rows]):.3f} | {min(lo for _, lo in rows):.3f} |")
    (args.out / "select.json").write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
