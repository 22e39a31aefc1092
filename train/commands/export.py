"""``edge-ad export RUN --out BUNDLE``: int8/float TFLite and ONNX, gated, in a verified bundle."""
from __future__ import annotations

import argparse
import json
import sys


def _formats(text: str) -> list[str]:
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    bad = [t for t in items if t not in ("tflite", "onnx")]
    if not items or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: expected tflite, onnx or tflite,onnx")
    return items


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export", help="quantise to int8 TFLite/ONNX and write a verified bundle",
        description="Fold BatchNorm, convert the run's autoencoder to TFLite and ONNX (float and\n"
                    "full int8, calibrated on training vectors), score every clip through the\n"
                    "edge runtimes, refit a cutoff per model file and write BUNDLE atomically.\n"
                    "If int8 loses more accuracy than allowed against float on any ID (val or\n"
                    "test clips), nothing is written and the exit code is 3.",
        epilog="example: edge-ad export run/ --out bundle/ --formats tflite --json\n"
               "exit codes: 0 written, 2 bad input, 3 int8 gate failed (no bundle written)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", metavar="RUN", help="RUN folder written by edge-ad train")
    p.add_argument("--out", required=True, metavar="BUNDLE",
                   help="bundle folder (an earlier bundle there is replaced only on success)")
    p.add_argument("--formats", type=_formats, default=["tflite", "onnx"],
                   help="model formats, comma separated (default tflite,onnx)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--int8", dest="precision", action="store_const", const="int8",
                      help="ship only the int8 models (float is still built for the gate; default: "
                           "ship both float and int8)")
    prec.add_argument("--float", dest="precision", action="store_const", const="float",
                      help="ship only the float models (no quantisation, no gate; default: both)")
    p.add_argument("--calib", type=int, default=1000, metavar="N",
                   help="training vectors that calibrate int8 ranges (default 1000)")
    p.add_argument("--max-auc-drop", type=float, default=0.01, metavar="D",
                   help="largest AUC an ID may lose in int8 on val/test clips (default 0.01)")
    p.add_argument("--max-pauc-drop", type=float, default=0.02, metavar="D",
                   help="largest pAUC (the seed's, p of the run) an ID may lose (default 0.02)")
    p.add_argument("--seed", type=int, default=0, help="seeds the calibration sample (default 0)")
    p.add_argument("--data", metavar="DIR", help="dataset folder, if it moved since training "
                   "(default: the one recorded in RUN)")
    p.add_argument("--jobs", type=int, default=2, help="processes for missing features (default 2)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON summary on stdout (also when the gate fails)")


def _table(summary: dict) -> str:
    lines = [f"{'model':20} {'bytes':>9} {'cutoff':>10} {'corr':>9} {'test AUC (mean of IDs)':>23}"]
    for name, info in summary["models"].items():
        aucs = [v for v in info["auc"].get("test", {}).values() if v is not None]
        mean = f"{sum(aucs) / len(aucs):.4f}" if aucs else "n/a"
        corr = info["score_correlation_held_out"]
        lines.append(f"{name + ('' if info['shipped'] else ' (ref)'):20} {info['bytes']:>9} "
                     f"{info['cutoff']:>10.5g} {corr if corr is None else format(corr, '.6f'):>9} "
                     f"{mean:>23}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from edge.errors import EdgeAdError

    from train.export import export_run
    from train.runs import load_run

    precisions = [args.precision] if args.precision else ["float", "int8"]
    try:
        if args.jobs < 1:
            raise EdgeAdError(f"--jobs {args.jobs}: expected at least 1 process")
        run_ = load_run(args.run, data=args.data)
        summary = export_run(run_, args.out, formats=args.formats, precisions=precisions,
                             calib=args.calib, max_auc_drop=args.max_auc_drop,
                             max_pauc_drop=args.max_pauc_drop, seed=args.seed,
                             progress=not args.quiet and not args.json, jobs=args.jobs)
    except EdgeAdError as e:
        if args.json:   # a scheduler reads stdout: it gets a status in every case
            base = getattr(e, "summary", None) or {"status": "error", "bundle": None}
            print(json.dumps({**base, "error": str(e), "exit_code": e.exit_code}, indent=2,
                             allow_nan=False))
        raise
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        print(_table(summary))
        gate = summary["gate"]
        if gate["checked"]:
            worst = max((d["auc_drop"] for f in gate["drops"].values() for s in f.values()
                         for d in s.values()), default=0.0)
            print(f"int8 gate passed: largest AUC drop {worst:.4f} <= {gate['max_auc_drop']:g} "
                  f"over {gate['checked']} ID/split pairs")
        print(f"wrote {summary['bundle']}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
