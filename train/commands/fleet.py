"""``edge-ad fleet DATA --out FLEET``: one model per machine type, on a Dask cluster."""
from __future__ import annotations

import argparse
import json
import sys

from train.detectors import DEFAULT_DETECTOR, DETECTORS

from edge.options import positive_number, rate, threads_arg, unit_interval, whole_at_least


def _machines(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected machine names like fan,pump")
    return items


def _formats(text: str) -> tuple[str, ...]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items or any(t not in ("tflite", "onnx") for t in items):
        raise argparse.ArgumentTypeError(f"{text!r}: expected tflite, onnx or tflite,onnx")
    return tuple(items)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fleet", help="train and export one model per machine type on a Dask cluster",
        description="Train and export one model per machine folder of DATA (each in its own\n"
                    "layout) as Dask tasks: feature caching, training, export. Machines whose\n"
                    "data and options did not change are not retrained. A candidate that\n"
                    "fails the int8 gate or scores the validation clips worse than the\n"
                    "current bundle beyond noise leaves the current bundle in place\n"
                    "(kept-previous) unless --force. Writes FLEET/<machine>/{run,bundle,\n"
                    "history}/ and FLEET/fleet.json (a copy per night in FLEET/nights/).",
        epilog="example: edge-ad fleet plant/ --out fleet/ --scheduler tcp://10.0.0.5:8786\n"
               "exit codes: 0 every machine trained, unchanged or kept-previous; 8 some\n"
               "machines failed (the others are done); 2 bad input or no scheduler reachable",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="plant folder: one folder per machine type")
    p.add_argument("--out", required=True, metavar="FLEET", help="fleet output folder")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="address of a running Dask scheduler (default: an embedded LocalCluster)")
    p.add_argument("--connect-timeout", type=positive_number, default=10.0, metavar="S",
                   help="seconds to wait for the scheduler (default 10)")
    p.add_argument("--workers", type=whole_at_least(1), default=2,
                   help="worker processes of the embedded LocalCluster (default 2)")
    p.add_argument("--machines", type=_machines, help="only these machine types, comma separated (default: every folder of DATA)")
    p.add_argument("--force", action="store_true",
                   help="retrain every machine and promote a candidate that passed the int8 gate "
                   "even when it scores worse than the current bundle")
    p.add_argument("--keep", type=whole_at_least(1), default=7, metavar="N",
                   help="bundles kept in FLEET/<machine>/history/ (default 7)")
    p.add_argument("--seed", type=int, default=0, help="seeds the split and the training (default 0)")
    p.add_argument("--detector", choices=list(DETECTORS), default=DEFAULT_DETECTOR,
                   help=f"detector of every machine's model (default {DEFAULT_DETECTOR}; see "
                   "edge-ad train --help)")
    p.add_argument("--epochs", type=whole_at_least(1), default=None,
                   help="epochs (default: the detector's recipe)")
    p.add_argument("--batch-size", type=whole_at_least(2), default=None,
                   help="vectors per mini-batch (default: the detector's recipe)")
    p.add_argument("--p", type=rate, default=0.1, help="intended false-positive rate (default 0.1)")
    p.add_argument("--threads", type=threads_arg, default=1,
                   help="torch threads per training task (default 1: bit-identical reruns)")
    p.add_argument("--formats", type=_formats, default=("tflite", "onnx"),
                   help="model formats, comma separated (default tflite,onnx)")
    p.add_argument("--min-correlation", type=unit_interval, default=None, metavar="R",
                   help="the int8 gate's smallest score correlation (default: export's)")
    p.add_argument("--cache", metavar="DIR", help="feature cache folder, seen by every worker "
                   "(default $EDGE_AD_CACHE or ~/.cache/edge-ad/features on each worker)")
    p.add_argument("--json", action="store_true", help="print fleet.json on stdout")


def run(args: argparse.Namespace) -> int:
    from train.fleet import Options, run_fleet

    options = Options(seed=args.seed, detector=args.detector, epochs=args.epochs, batch_size=args.batch_size, p=args.p,
                      threads=args.threads or 1, formats=args.formats,
                      min_correlation=args.min_correlation, cache=args.cache)
    quiet = args.json or args.quiet
    doc = run_fleet(args.data, args.out, scheduler=args.scheduler, machines=args.machines,
                    options=options, force=args.force, keep=args.keep, workers=args.workers,
                    connect_timeout=args.connect_timeout, report=(lambda line: None) if quiet else print)
    if args.json:
        print(json.dumps(doc, indent=2, allow_nan=False, default=str))
    else:
        c = doc["counts"]
        print(f"fleet: {c['trained']} trained, {c['unchanged']} unchanged, "
              f"{c['kept-previous']} kept-previous, {c['failed']} failed in {doc['wall_s']:.1f} s; "
              f"wrote {doc['out']}/fleet.json", file=sys.stderr if args.quiet else sys.stdout)
    return int(doc["exit_code"])
