"""``edge-ad synth OUT``: write a synthetic plant in MIMII layout."""
from __future__ import annotations

import argparse
import time

from edge.errors import EdgeAdError


def _ids(text: str) -> list[int]:
    try:
        ids = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--ids {text!r}: expected comma-separated integers like 0,2,4,6")
    if not ids or any(i < 0 or i > 99 for i in ids) or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"--ids {text!r}: expected distinct IDs 0..99")
    return ids


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="generate a synthetic plant in MIMII layout",
        description="Rotating machines in a factory, normal and faulty, written as "
                    "OUT/<machine>/id_XX/{normal,abnormal}/NNNNNNNN.wav (16 kHz, int16).",
        epilog="example: edge-ad synth plant/ --ids 0,2,4,6 --normal 100 --abnormal 30 --seed 0")
    p.add_argument("out", metavar="OUT", help="output folder (must be empty or absent)")
    p.add_argument("--machine", default="fan", help="machine type folder name (default fan)")
    p.add_argument("--ids", type=_ids, default=[0, 2, 4, 6], help="machine IDs (default 0,2,4,6)")
    p.add_argument("--normal", type=int, default=100, help="normal clips per ID (default 100)")
    p.add_argument("--abnormal", type=int, default=30, help="abnormal clips per ID (default 30)")
    p.add_argument("--snr", type=float, default=6.0, help="machine to background ratio in dB (default 6)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--duration", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--jobs", type=int, default=2, help="processes generating clips (default 2)")
    p.add_argument("--faults", default="bearing,imbalance,tone,rubbing",
                   help="fault families the abnormal clips draw from, comma-separated (default "
                   "bearing,imbalance,tone,rubbing; looseness and cavitation are held out: no "
                   "default was tuned on them)")
    p.add_argument("--force", action="store_true", help="write into a non-empty OUT")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.bundle import check_writable
    from train.synth import write_plant

    out = Path(args.out)
    if args.normal < 1:
        raise EdgeAdError(f"--normal {args.normal}: expected at least 1 normal clip per ID")
    if args.abnormal < 0:
        raise EdgeAdError(f"--abnormal {args.abnormal}: expected 0 or more abnormal clips per ID")
    if args.jobs < 1:
        raise EdgeAdError(f"--jobs {args.jobs}: expected at least 1 process")
    if not -40 <= args.snr <= 60:   # NaN fails too: it wrote clips of -32768 only
        raise EdgeAdError(f"--snr {args.snr}: expected a ratio from -40 to 60 dB")
    if not 0.2 <= args.duration <= 600:
        raise EdgeAdError(f"--duration {args.duration}: expected 0.2 to 600 seconds")
    if out.exists() and not out.is_dir():
        raise EdgeAdError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise EdgeAdError(f"{out}: not empty; choose another folder or pass --force")
    check_writable(out, expected="a writable folder for the plant (OUT)")
    start = time.perf_counter()
    records = write_plant(out, machine=args.machine, ids=args.ids, n_normal=args.normal,
                          n_abnormal=args.abnormal, snr_db=args.snr, seed=args.seed,
                          duration=args.duration, jobs=args.jobs, progress=args.progress,
                          faults=[f.strip() for f in args.faults.split(",") if f.strip()])
    print(f"wrote {len(records)} clips to {out / args.machine} in {time.perf_counter() - start:.1f} s")
    return 0
