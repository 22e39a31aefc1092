"""``edge-ad train DATA --out RUN``: the seed's autoencoder on one machine type."""
from __future__ import annotations

import argparse

from edge.options import positive_number, rate, threads_arg, whole_at_least

from train.detectors import DEFAULT_DETECTOR, DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train the autoencoder and the detector's head on normal clips",
        description="Train one autoencoder across the IDs of a machine type on normal clips "
                    "with the detector's recipe, fit the detector's head on the training clips "
                    "(per-ID Gaussians, except for seed and ae), fit the gamma cutoff on the scores of "
                    "held-out normal validation clips and write RUN/ (model, head, config, "
                    "feature spec, threshold, clips, scores).",
        epilog="example: edge-ad train plant/ --out run/ --seed 0")
    p.add_argument("data", metavar="DATA", help="dataset folder (MIMII, seed, DCASE 2020 or 2021+ layout)")
    p.add_argument("--out", required=True, metavar="RUN", help="output RUN folder")
    p.add_argument("--machine", help="machine type, where DATA holds several (default: the only "
                   "one in DATA)")
    p.add_argument("--detector", choices=list(DETECTORS), default=DEFAULT_DETECTOR,
                   help=f"what scores a window (default {DEFAULT_DETECTOR}): " + "; ".join(
                       f"{d.name}: {d.help}" for d in DETECTORS.values()))
    p.add_argument("--seed", type=int, default=0, help="seeds the split and the training (default 0)")
    p.add_argument("--epochs", type=whole_at_least(1), default=None,
                   help="epochs (default: the detector's recipe; seed 30, others at most 30 "
                   "with early stopping)")
    p.add_argument("--batch-size", type=whole_at_least(2), default=None,
                   help="vectors per mini-batch (default: the detector's recipe; seed: half "
                   "the training vectors, others 512)")
    p.add_argument("--lr", type=positive_number, default=None,
                   help="initial learning rate (default: the detector's recipe; seed 1e-2, others 1e-3)")
    p.add_argument("--hidden", default="128,128", help="encoder layer sizes, mirrored (default 128,128)")
    p.add_argument("--bottleneck", type=whole_at_least(1), default=8, help="bottleneck size (default 8)")
    p.add_argument("--p", type=rate, default=0.1, help="intended false-positive rate of the cutoff (default 0.1)")
    p.add_argument("--cutoff-on", choices=["val", "train"], default="val",
                   help="normal clips the gamma cutoff is fitted to: val, held out from training "
                   "(default; holds p on unseen audio), or train (the seed's; the model has "
                   "learned them, so unseen normal clips exceed it two to four times as often)")
    p.add_argument("--free-loc", action="store_true",
                   help="fit the gamma location too (DCASE baselines) instead of fixing it at 0 (seed)")
    p.add_argument("--cache", metavar="DIR", help="feature cache folder (default $EDGE_AD_CACHE or "
                   "~/.cache/edge-ad/features)")
    p.add_argument("--jobs", type=whole_at_least(1), default=2, help="processes computing features (default 2)")
    p.add_argument("--threads", type=threads_arg, default=None, help="torch threads (default: torch's choice; "
                   "fix it for bit-identical reruns)")
    ch = p.add_mutually_exclusive_group()
    ch.add_argument("--channel", type=int, default=0, help="channel of multi-channel files (default 0)")
    ch.add_argument("--mix", action="store_true", help="average all channels")
    p.add_argument("--force", action="store_true", help="replace a non-empty RUN")


def run(args: argparse.Namespace) -> int:
    from edge.errors import EdgeAdError

    from train.detectors import recipe_for
    from train.model import ModelConfig
    from train.pipeline import hidden_sizes, train_run

    try:
        hidden = hidden_sizes(args.hidden)
    except ValueError as e:
        raise EdgeAdError(str(e)) from None
    recipe = recipe_for(args.detector, seed=args.seed, threads=args.threads, epochs=args.epochs,
                        lr=args.lr, batch_size=args.batch_size)
    run_ = train_run(args.data, args.out, machine=args.machine,
                     config=ModelConfig(hidden=hidden, bottleneck=args.bottleneck), recipe=recipe,
                     p=args.p, floc=None if args.free_loc else 0.0, cache_dir=args.cache,
                     jobs=args.jobs, channel=args.channel, mix=args.mix, force=args.force,
                     progress=args.progress, cutoff_on=args.cutoff_on, detector=args.detector)
    info = run_.info
    fpr = info["observed_fpr"]
    last = info["history"][-1]
    shown = ", ".join(f"{split} {fpr[split]:.4f}" if fpr.get(split) is not None else f"{split} n/a"
                      for split in ("train", "val", "test"))
    print(f"trained {run_.machine} ({args.detector}: {run_.head.describe()}): "
          f"{info['n_vectors']['train']} training vectors from "
          f"{sum(v.get('train/normal', 0) for v in info['clips'].values())} clips, "
          f"{len(info['history'])} epochs, final loss train {last['train_loss']:.5f} "
          f"val {last['val_loss']:.5f}")
    print(f"cutoff {run_.threshold.cutoff:.6g} ({run_.threshold.fit} on {info['cutoff_on']} "
          f"clips, p={fpr['p']:g}): observed FPR of normal clips {shown}")
    print(f"features {info['timings']['features_s']:.1f} s, training {info['timings']['train_s']:.1f} s; "
          f"wrote {run_.path}")
    return 0
