"""Does the cutoff hold p on normal audio the model and the cutoff never saw?

For each seed: a synthetic plant (``edge-ad synth``, the demo's size), ``edge-ad train``
with the default cutoff (gamma fitted on the validation clips), and, from the same run's
stored scores, the seed's fit on the training clips. The observed false-positive rate of
both on the *test* normal clips (held out from training and from both fits) is printed with
the 95 % binomial interval of p, per seed and pooled.

    .venv/bin/python scripts/measure_cutoff.py --seeds 0 1 2 --work /tmp/cutoff   # the default detector
    .venv/bin/python scripts/measure_cutoff.py --seeds 0 1 2 --work /tmp/cutoff-seed \
        --train-arg=--detector --train-arg=seed        # the seed's recipe
    .venv/bin/python scripts/measure_cutoff.py --seeds 0 1 2 --work /tmp/cutoff4096 \
        --train-arg=--detector --train-arg=seed \
        --train-arg=--batch-size --train-arg=4096       # a model that fits its training clips

Plants of other SNRs (``--snr``) and sizes are the same command with other options.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--work", type=Path, required=True, help="folder for the plants and runs")
    ap.add_argument("--snr", type=float, default=None, help="plant SNR in dB (default synth's)")
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                    help="passed to edge-ad train (repeat: --train-arg=--batch-size --train-arg=512)")
    args = ap.parse_args()

    from edge.threshold import binomial_interval, fit_gamma
    from train.runs import load_run

    rows, pooled = [], {"val": [0, 0], "train": [0, 0]}
    for seed in args.seeds:
        plant, run_dir = args.work / f"plant{seed}", args.work / f"run{seed}"
        edge_ad = [sys.executable, "-m", "edge", "-q"]
        if not plant.exists():
            synth = [*edge_ad, "synth", str(plant), "--seed", str(seed)]
            if args.snr is not None:
                synth += ["--snr", str(args.snr)]
            subprocess.run(synth, check=True)
        if not run_dir.exists():
            subprocess.run([*edge_ad, "train", str(plant), "--out", str(run_dir), "--seed",
                            str(seed), "--p", str(args.p), *args.train_arg], check=True)
        run = load_run(run_dir)
        score = {c.path: run.scores[c.to_dict(run.root)["path"]] for c in run.clips}
        normal = {s: np.array([score[c.path] for c in run.clips_in(s) if not c.is_anomaly])
                  for s in ("train", "val", "test")}
        cuts = {"val": run.threshold.cutoff,
                "train": fit_gamma(normal["train"], p=args.p).cutoff}
        lo, hi = binomial_interval(args.p, len(normal["test"]))
        row = {"seed": seed, "n_test_normal": len(normal["test"]), "interval": [lo, hi]}
        for on, cut in cuts.items():
            k = int(np.sum(normal["test"] > cut))
            row[f"fpr_test_{on}_fit"] = k / len(normal["test"])
            pooled[on][0] += k
            pooled[on][1] += len(normal["test"])
        rows.append(row)
        print(f"seed {seed}: {len(normal['test'])} test normal clips, interval {lo:.3f}..{hi:.3f}; "
              f"FPR with the cutoff fitted on val {row['fpr_test_val_fit']:.3f}, "
              f"on train (seed) {row['fpr_test_train_fit']:.3f}", flush=True)
    n = pooled["val"][1]
    lo, hi = binomial_interval(args.p, n)
    summary = {on: k / n for on, (k, n) in pooled.items()}
    print(f"pooled over seeds {args.seeds}: {n} test normal clips, interval {lo:.3f}..{hi:.3f}; "
          f"FPR val fit {summary['val']:.3f}, train fit {summary['train']:.3f}")
    print(json.dumps({"rows": rows, "pooled": summary, "pooled_interval": [lo, hi]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
