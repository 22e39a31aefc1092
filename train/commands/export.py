"""``edge-ad export RUN --out BUNDLE``: int8/float TFLite and ONNX, gated, in a verified bundle."""
from __future__ import annotations

import argparse
import json
import sys

from train.export.gate import DEFAULTS as GATE


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
                    "The int8 gate compares int8 with float clip by clip on the validation and\n"
                    "test clips (score correlation, largest score change against the spread of\n"
                    "normal scores, decisions flipped at the cutoff) and judges AUC/pAUC drops\n"
                    "where a split has enough clips to measure them (paired bootstrap). If int8\n"
                    "fails it, nothing is written and the exit code is 3.",
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
    p.add_argument("--max-auc-drop", type=float, default=GATE["max_auc_drop"], metavar="D",
                   help="largest AUC an ID may lose in int8, failing when the 95%% bootstrap "
                   "interval of the drop lies above it (default %(default)g)")
    p.add_argument("--max-pauc-drop", type=float, default=GATE["max_pauc_drop"], metavar="D",
                   help="the same for the seed's pAUC, p of the run (default %(default)g)")
    p.add_argument("--min-correlation", type=float, default=GATE["min_correlation"], metavar="R",
                   help="smallest correlation of int8 with float clip scores (default %(default)g)")
    p.add_argument("--max-shift", type=float, default=GATE["max_shift"], metavar="S",
                   help="largest change of a clip's log score, in standard deviations of the "
                   "normal clips' log scores (default %(default)g)")
    p.add_argument("--max-flip-rate", type=float, default=GATE["max_flip_rate"], metavar="F",
                   help="largest fraction of clips whose decision int8 flips; one clip is always "
                   "allowed (default %(default)g)")
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
                             max_pauc_drop=args.max_pauc_drop,
                             min_correlation=args.min_correlation, max_shift=args.max_shift,
                             max_flip_rate=args.max_flip_rate, seed=args.seed,
                             progress=args.progress and not args.json, jobs=args.jobs)
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
        for fmt, a in gate["agreement"].items():
            judged = [d for s in gate["drops"][fmt].values() for d in s.values() if d["judged"]]
            worst = max((d["auc_drop"] for d in judged), default=None)
            print(f"int8 gate passed for {fmt}: score correlation {a['correlation']:.6f}, largest "
                  f"shift {a['max_shift']:.3g} normal SDs, {a['flips']} of {a['n']} decisions "
                  f"flipped; largest AUC drop "
                  + (f"{worst:.4f} over {len(judged)} judged ID/split groups" if judged else
                     "not judged (no split has enough clips of both classes)"))
        print(f"wrote {summary['bundle']}", file=sys.stderr if args.quiet else sys.stdout)
    return 0
