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


def score_file(path: str, backend: Any, *, spec: Any, channel: int = 0, mix: bool = False) -> float:
    """``A(X)`` of one recording through ``backend``: the seed-padded clip streamed through
    the front end in blocks (memory independent of the recording's length); the same
    vectors and the same float64 sum as ``clip_score(clip_features(load(path)))``."""
    import numpy as np

    from ..audio import AudioStream
    from ..features import stream_vectors
    from ..scoring import vector_errors

    stream = AudioStream(path, spec=spec, channel=channel, mix=mix)
    # One float64 error per vector (8 bytes; 0.9 MB for an hour) summed at once, as
    # clip_score sums them.
    errors = [vector_errors(x, backend.run(x)) for x in stream_vectors(stream, spec=spec)]
    e = np.concatenate(errors)
    return float(e.sum() / (len(e) * spec.vector_size))


def run(args: argparse.Namespace) -> int:
    from ..bundle import load_bundle
    from ..errors import EXIT_BAD_INPUT, EdgeAdError

    bundle = load_bundle(args.bundle)
    args.backend = args.backend or bundle.default_backend(args.precision)
    backend, threshold = bundle.load_backend(args.backend, args.precision, num_threads=args.threads)
    model = bundle.model_path(args.backend, args.precision).name
    clips: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for path in args.files:
        try:
            score = score_file(path, backend, spec=bundle.spec, channel=args.channel, mix=args.mix)
        except EdgeAdError as e:
            # One unusable recording should not hide the scores of the others.
            print(f"edge-ad score: error: {e}", file=sys.stderr)
            failed.append({"path": path, "error": str(e)})
            continue
        clips.append({"path": path, "score": score, "anomaly": threshold.decide(score)})
    if args.json:
        json.dump({"bundle": str(bundle.path), "model": model, "backend": backend.name,
                   "cutoff": threshold.cutoff, "clips": clips, "errors": failed},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"# {model} ({backend.name}), cutoff {threshold.cutoff:.6g}")
        for c in clips:
            print(f"{c['score']:.6g}\t{'ANOMALY' if c['anomaly'] else 'normal'}\t{c['path']}")
    return EXIT_BAD_INPUT if failed else 0
