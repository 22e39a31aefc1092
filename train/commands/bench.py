"""``edge-ad bench``: float against int8, accuracy and latency, on one screen."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "bench", help="latency and accuracy, float against int8",
        description="Measure, on the same clips and machine: accuracy per ID (torch float, "
                    "ONNX float/int8, TFLite float/int8), inference latency per vector and per "
                    "10 s clip, the front end (C, numpy, librosa), the edge path's real-time "
                    "factor and memory, model sizes.",
        epilog="example: edge-ad bench --model run/ --model bundle/ --plot bench.png")
    p.add_argument("--model", action="append", default=[], metavar="RUN_OR_BUNDLE",
                   help="a RUN folder (torch float) and/or a BUNDLE (exported models); repeatable "
                        "(no default: give at least one)")
    p.add_argument("--data", help="dataset folder whose test clips to measure on "
                                  "(default: the RUN's own test clips)")
    p.add_argument("--recording", help="WAV for the edge path (default: test clips joined, 10 min)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    p.add_argument("--plot", metavar="PNG", help="write latency bars and AUC per ID to this PNG (default: no figure)")
    p.add_argument("--out", metavar="JSON", help="also write the JSON results to this file (default: none)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (CI smoke runs)")


def _kind(path: Path) -> str:
    if (path / "manifest.json").is_file():
        return "bundle"
    if (path / "model.pt").is_file():
        return "run"
    from edge.errors import EdgeAdError
    raise EdgeAdError(f"--model {path}: neither a RUN (model.pt) nor a BUNDLE (manifest.json)")


def _recording(clips: list[Any], out: Path, *, seconds: float, spec: Any) -> Path:
    """Test clips joined end to end, repeated to ``seconds``: the edge path's input."""
    import numpy as np
    import soundfile as sf

    from edge import audio

    parts = [audio.load(c.path, spec=spec) for c in clips[:12]]
    x = np.concatenate(parts)
    x = np.tile(x, int(np.ceil(seconds * spec.sample_rate / len(x))))[: int(seconds * spec.sample_rate)]
    sf.write(out, x, spec.sample_rate, subtype="PCM_16")
    return out


def run(args: argparse.Namespace) -> int:
    from train import bench

    bench.single_thread()
    from edge import audio, features
    from edge.bundle import load_bundle
    from edge.errors import EdgeAdError

    from train.datasets import read_dataset
    from train.runs import load_run

    run_obj = bundle_obj = None
    bundle_dir = None
    for m in args.model:
        path = Path(m)
        if _kind(path) == "run":
            run_obj = load_run(path)
        else:
            bundle_obj, bundle_dir = load_bundle(path), path
    if run_obj is None and bundle_obj is None:
        raise EdgeAdError("bench: give at least one --model (a RUN folder and/or a BUNDLE)")
    # Checked before minutes of measuring, so a typo does not cost the whole run.
    if args.recording:
        if bundle_obj is None:
            raise EdgeAdError(f"--recording {args.recording}: used only for the edge path, "
                              "which needs a BUNDLE; expected --model BUNDLE as well")
        audio.check_file(args.recording)
    for option, target in (("--plot", args.plot), ("--out", args.out)):
        if target and (Path(target).is_dir() or not Path(target).resolve().parent.is_dir()):
            raise EdgeAdError(f"{option} {target}: expected a file name in an existing folder")
    spec = (bundle_obj or run_obj).spec
    if args.data:
        clips = [c for c in read_dataset(args.data) if c.split == "test"]
        cache: dict[Path, Any] = {}

        def vectors(c: Any) -> Any:
            if c.path not in cache:
                cache[c.path] = features.clip_features(audio.load(c.path, spec=spec), spec=spec)
            return cache[c.path]
    elif run_obj is not None:
        clips = run_obj.clips_in("test")
        vectors = run_obj.vectors
    else:
        raise EdgeAdError("bench: with only a BUNDLE, --data must name the clips to measure on")

    result: dict[str, Any] = {"machine": bench.machine_info()}
    variants = bench.load_variants(run=run_obj, bundle=bundle_obj)
    log.info("accuracy of %s on %d test clips", ", ".join(v.name for v in variants), len(clips))
    result["accuracy"] = bench.bench_accuracy(variants, clips, vectors,
                                              head=(bundle_obj or run_obj).head)
    x = vectors(next(c for c in clips))
    log.info("inference latency (1 thread)")
    result["latency"] = bench.bench_latency(variants, x, repeat_vector=60 if args.quick else 300,
                                            repeat_clip=8 if args.quick else 30,
                                            decision=bench.decision_vectors(1.0, spec=spec))
    result["int8_speedup"] = bench.int8_speedups(result["latency"])
    result["sizes"] = {v.name: v.bytes for v in variants if v.bytes}
    log.info("front end: C, numpy, librosa")
    result["frontend"] = bench.bench_frontends(audio.load(clips[0].path, spec=spec), spec=spec,
                                               repeat=8 if args.quick else 30)
    if bundle_obj is not None and bundle_obj.has_c_model:
        result["c_stream"] = bench.bench_c_stream(bundle_obj, audio.load(clips[0].path, spec=spec))
    if bundle_obj is not None:
        with tempfile.TemporaryDirectory() as tmp:
            rec = Path(args.recording) if args.recording else _recording(
                clips, Path(tmp) / "edge.wav", seconds=120 if args.quick else 600, spec=spec)
            log.info("edge path on %s", rec)
            # the bundle's default runtime (the C int8 network where it has one), and LiteRT
            # int8 beside it in the same run
            default = bundle_obj.default_backend("int8")
            result["edge_stream"] = bench.time_edge_stream(bundle_obj, rec, backend=default)
            result["edge_process"] = bench.bench_edge_path(bundle_dir, rec, backend=default)
            if default != "tflite":
                result["edge_process_tflite"] = bench.bench_edge_path(bundle_dir, rec)
    text = json.dumps(result, indent=2, default=float)
    if args.out:
        # Whole or not at all: an earlier result file is replaced only by a complete one.
        import os

        tmp = Path(args.out).with_name(f".{Path(args.out).name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text + "\n")
            os.replace(tmp, args.out)
        finally:
            tmp.unlink(missing_ok=True)
    if args.plot:
        bench.plot(result, args.plot)
    if args.json:
        print(text)
    else:
        print(bench.render(result))
    sys.stdout.flush()
    return 0
