"""``edge-ad calibrate``: refit the cutoff on site from normal operation.

Records ``--minutes`` of audio through the same source, front end and model(s) as
``edge-ad run``, scores clip-length windows, fits the gamma cutoff in numpy and writes it
into the bundle with a new manifest, keeping the previous one (see edge.calibration).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any


from ..options import threads_arg

log = logging.getLogger("edge.calibrate")

EXAMPLE = """examples:
  edge-ad calibrate --device hw:1 --model bundle/ --minutes 30
  edge-ad calibrate --device site-normal.wav --fast --model bundle/ --minutes 5 --p 0.05
Run it while the machine is known to be healthy: every window recorded is taken as normal.
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate", help="refit the cutoff on site from normal operation",
        description="Record normal operation, refit the gamma cutoff of each model file and "
                    "write it into the bundle (previous manifest and thresholds kept).",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", required=True, help="as for edge-ad run: hw:1, a file, or -")
    p.add_argument("--model", required=True, metavar="BUNDLE", help="bundle directory to update")
    p.add_argument("--minutes", type=float, required=True, help="minutes of audio to record")
    p.add_argument("--p", type=float, default=0.1,
                   help="intended false-positive rate: the cutoff is the 1-p quantile (default 0.1)")
    p.add_argument("--window", default="10s", help="clip length scored (default 10s, as training)")
    p.add_argument("--free-loc", action="store_true",
                   help="fit the gamma location too (DCASE baselines) instead of fixing it at 0")
    p.add_argument("--backend", choices=("c", "tflite", "onnx"),
                   help="calibrate only this runtime's model files; c scores with the C int8 "
                        "network and refits the cutoff it shares with model_int8.tflite "
                        "(default: every model file whose runtime is installed, the int8 "
                        "TFLite one through the C kernel where the bundle has it)")
    p.add_argument("--precision", choices=("int8", "float"), help="only this precision (default: both)")
    p.add_argument("--threads", type=threads_arg, default=1,
                   help="model runtime threads, 1 to the cores present (default 1)")
    p.add_argument("--fast", action="store_true", help="file source: read as fast as possible")
    from ..calibration import KEEP_HISTORY

    p.add_argument("--keep-history", type=int, default=KEEP_HISTORY, metavar="N",
                   help="previous manifests and thresholds kept in the bundle: the last N "
                        "calibrations (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="fit and print, do not write the bundle")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _models(bundle: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ..bundle import C_INT8_FILE, C_SOURCE_FILE, MODEL_FILES
    from ..detector import open_detector
    from ..errors import BackendError, EdgeAdError

    if args.backend == "c":
        bundle.model_path("c", args.precision or "int8")   # a clear error where it has none
    # The C network computes model_int8.tflite's integers and shares its cutoff: scoring
    # with it refits that cutoff, with no model runtime installed.
    use_c = args.precision in (None, "int8") and (
        args.backend == "c" or (args.backend is None and bundle.default_backend("int8") == "c"))
    wanted = [name for (backend, precision), name in MODEL_FILES.items()
              if name in bundle.models and args.precision in (None, precision)
              and (args.backend in (None, backend) or (use_c and name == C_SOURCE_FILE))]
    if not wanted:
        raise EdgeAdError(f"{bundle.path}: no model file for --backend {args.backend} "
                          f"--precision {args.precision} (it holds {bundle.models})")
    models = {}
    for name in wanted:
        try:
            models[name] = open_detector(bundle, threads=args.threads, model_file=(
                C_INT8_FILE if use_c and name == C_SOURCE_FILE else name))
        except BackendError as e:
            if args.backend is not None:
                raise
            # A board usually carries one runtime; the other files keep their cutoff.
            log.warning("%s: not calibrated, keeps its cutoff (%s)", name, e)
    if not models:
        raise EdgeAdError(f"{bundle.path}: no model runtime installed for {wanted}")
    return models


def run(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..calibration import calibration_report, fit_thresholds, record_scores, rewrite_thresholds
    from ..capture import open_source
    from ..decision import parse_duration
    from ..errors import EdgeAdError

    import math

    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise EdgeAdError(f"--minutes {args.minutes}: expected a duration above 0, finite")
    if args.keep_history < 0:
        raise EdgeAdError(f"--keep-history {args.keep_history}: expected 0 or more")
    if not 0 < args.p < 1:
        raise EdgeAdError(f"--p {args.p}: expected a false-positive rate between 0 and 1")
    clip_s = parse_duration(args.window, what="--window")
    bundle = load_bundle(args.model)
    from ..stream import window_vectors

    window_vectors(clip_s, spec=bundle.spec)   # a window too short to score: refused before recording
    models = _models(bundle, args)
    seconds = args.minutes * 60.0
    source = open_source(args.device, spec=bundle.spec, fast=args.fast)
    log.info("calibrating %s from %s: %.1f min of normal operation, %.3g s windows",
             ", ".join(models), source.name, args.minutes, clip_s)
    from tqdm import tqdm

    with tqdm(total=seconds, unit="s", desc="recording", file=sys.stderr,
              disable=args.json or not sys.stderr.isatty()) as bar:
        try:
            scores = record_scores(source, models, spec=bundle.spec, clip_s=clip_s,
                                   seconds=seconds, stats=source.stats, progress=bar)
        finally:
            source.close()
    thresholds = fit_thresholds(scores, p=args.p, floc=None if args.free_loc else 0.0)
    result = calibration_report(scores, thresholds, bundle.thresholds)
    for name, r in result.items():
        if "warning" in r:
            log.warning("%s: %s", name, r["warning"])
    if not args.dry_run:
        record = {"source": source.name, "seconds": source.stats.samples / bundle.spec.sample_rate,
                  "window_seconds": clip_s, "capture": source.stats.to_dict()}
        rewrite_thresholds(bundle.path, thresholds, record=record, keep=args.keep_history)
    if args.json:
        json.dump({"bundle": str(bundle.path), "written": not args.dry_run, "models": result},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for name, r in result.items():
            print(f"{name}: cutoff {r['previous_cutoff']:.6g} -> {r['cutoff']:.6g} "
                  f"({r['n_scores']} windows; fraction above: {r['observed_fpr_previous']:.3f} "
                  f"before, {r['observed_fpr_new']:.3f} after, p = {r['p']})")
        print(("would write " if args.dry_run else "wrote ") + str(bundle.path / "threshold.json"))
    return 0

