"""``edge-ad score BUNDLE FILE...``: clip scores and decisions for recordings.

Whole-clip features with the seed's padding (``edge.features.clip_features``) and the same
``A(X)`` as training, so a float model gives the training side's score for the same clip.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from .run import add_common_model_args

log = logging.getLogger("edge.score")

EXAMPLE = """examples:
  edge-ad score bundle/ recordings/*.wav
  edge-ad score bundle/ clip.wav --precision float --json
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "score", help="score recordings with a bundle",
        description="Score each recording as one clip and compare with the bundle's cutoff.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", metavar="BUNDLE", help="bundle directory (edge-ad export)")
    p.add_argument("files", metavar="FILE", nargs="+", help="recordings (WAV, FLAC, ...)")
    add_common_model_args(p)
    ch = p.add_mutually_exclusive_group()   # --channel 3 --mix would silently ignore one
    ch.add_argument("--channel", type=int, default=0, help="channel of a multi-channel file (default 0)")
    ch.add_argument("--mix", action="store_true", help="mix all channels instead")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")


def score_file(path: str, detector: Any, *, spec: Any, channel: int = 0, mix: bool = False) -> float:
    """The score of one recording through ``detector`` (an :class:`edge.detector.BundleDetector`):
    the seed-padded clip streamed through the front end in blocks (memory independent of
    the recording's length); the same vectors and the same float64 sums as training's score
    of ``clip_features(load(path))``."""
    import numpy as np

    from ..audio import AudioStream
    from ..features import stream_vectors

    stream = AudioStream(path, spec=spec, channel=channel, mix=mix)
    # One row of feature sums per block (the head's width: 1 value for A(X)), summed at once.
    total, n = np.zeros(detector.head.width), 0
    for x in stream_vectors(stream, spec=spec):
        total += detector.features(x).sum(0)
        n += len(x)
    return detector.head.score(total, n)


def run(args: argparse.Namespace) -> int:
    from ..detector import open_detector
    from ..errors import EXIT_BAD_INPUT, EdgeAdError

    detector = open_detector(args.bundle, backend=args.backend, precision=args.precision,
                             threads=args.threads)
    bundle, backend, threshold = detector.bundle, detector.backend, detector.threshold
    model = detector.model_path.name
    clips: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for path in args.files:
        try:
            score = score_file(path, detector, spec=bundle.spec, channel=args.channel, mix=args.mix)
        except EdgeAdError as e:
            # One unusable recording should not hide the scores of the others.
            print(f"edge-ad score: error: {e}", file=sys.stderr)
            failed.append({"path": path, "error": str(e)})
            continue
        clips.append({"path": path, "score": score, "anomaly": threshold.decide(score)})
    if args.json:
        json.dump({"bundle": str(bundle.path), "model": model, "backend": backend.name,
                   "detector": bundle.manifest.get("detector", "seed"),
                   "head": detector.head.describe(), "cutoff": threshold.cutoff,
                   "clips": clips, "errors": failed},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"# {model} ({backend.name}), {detector.head.describe()}, cutoff {threshold.cutoff:.6g}")
        for c in clips:
            print(f"{c['score']:.6g}\t{'ANOMALY' if c['anomaly'] else 'normal'}\t{c['path']}")
    return EXIT_BAD_INPUT if failed else 0
