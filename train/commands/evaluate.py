"""``edge-ad evaluate RUN``: the seed's per-ID table, figures and a Markdown report."""
from __future__ import annotations

import argparse

from train.detectors import TRAINED_DETECTORS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate", help="per-ID AUC/pAUC table, figures and report",
        description="Score the test clips of a RUN and print the per-ID table (AUC, pAUC, pAUC "
                    "McClish, TPR and FPR at the cutoff) with a PCA baseline next to it; write "
                    "the seed's figures and report.md. With --detector all or more RUN folders, "
                    "every detector side by side on the same test clips.",
        epilog="examples: edge-ad evaluate run/ --report run/report --json > result.json\n"
               "          edge-ad evaluate run/ run-seed/ --detector all")
    p.add_argument("run", metavar="RUN", help="a RUN folder written by edge-ad train")
    p.add_argument("others", metavar="RUN2", nargs="*",
                   help="more RUN folders trained on the same clips (another --detector): their "
                   "detectors join the side-by-side table (default: none)")
    p.add_argument("--data", metavar="DATA",
                   help="the dataset folder, if it moved since training (default: the one recorded in RUN)")
    p.add_argument("--json", action="store_true", help="print the result (with per-clip scores) as JSON")
    p.add_argument("--report", metavar="DIR", help="report folder (default RUN/report)")
    p.add_argument("--no-report", action="store_true", help="skip the figures")
    p.add_argument("--no-baseline", action="store_true", help="skip the PCA baseline")
    p.add_argument("--jobs", type=int, default=2, help="processes computing missing features (default 2)")
    p.add_argument("--detector", choices=["run", "all"], default="run",
                   help="run: the RUN's own detector (default); all: also every head the RUN's "
                   f"network supports ({', '.join(TRAINED_DETECTORS)}), "
                   "fitted on the same "
                   "training clips and compared on the same test clips, in one table and figure")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from train.pipeline import (compare_detectors, compare_runs, evaluate_run, format_comparison,
                                format_faults, format_table)
    from train.runs import load_run

    if args.jobs < 1:
        from edge.errors import EdgeAdError

        raise EdgeAdError(f"--jobs {args.jobs}: expected at least 1 process")
    run_ = load_run(args.run, data=args.data)
    report_dir = Path(args.report) if args.report else run_.path / "report"
    if not args.no_report:
        from edge.bundle import check_writable

        # Before scoring, so a bad --report costs nothing.
        check_writable(report_dir, expected="a writable report folder (--report DIR)")
    missing = [str(c.path) for c in run_.clips if c.split == "test" and not c.path.is_file()]
    if missing:
        from edge.errors import DatasetError

        raise DatasetError(f"{len(missing)} test clips of {args.run} are missing under {run_.root} "
                           f"(pass --data if the dataset moved), e.g. {missing[0]}")
    result = evaluate_run(run_, jobs=args.jobs, progress=args.progress and not args.json,
                          baseline=not args.no_baseline)
    if args.detector == "all":
        result["comparison"] = compare_detectors(run_, jobs=args.jobs, progress=False)
    if args.others:
        result["comparison"] = compare_runs([run_, *(load_run(o, data=args.data) for o in args.others)],
                                            result.get("comparison"), jobs=args.jobs)
    report = None
    if not args.no_report:
        from train.report import write_report

        report = write_report(run_, result, out=report_dir)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(format_table(result))
        from train.report import fpr_sentence

        print(fpr_sentence(result["observed_fpr"], result["p"]))
        if result.get("comparison"):
            print("detectors side by side (AUC per ID, test clips):")
            print(format_comparison(result["comparison"]))
        if result.get("per_fault"):
            print("synthetic fault families (all IDs, against the normal test clips):")
            print(format_faults(result))
        if report is not None:
            print(f"report: {report}")
    return 0
