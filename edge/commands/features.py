"""``edge-ad features FILE... [--out DIR]``: context vectors of recordings as ``.npy``.

Each recording becomes one ``(n_vectors, 640) float32`` array, exactly
``edge.features.clip_features(edge.audio.load(FILE))``. Outputs are written atomically
(temporary file, then rename): an unusable recording gets one clear line on stderr and no
output, the others are still written, and the exit code is 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("edge.features")

EXAMPLE = """examples:
  edge-ad features clip.wav                      # writes clip.npy next to it
  edge-ad features data/*.wav --out features/    # one .npy per recording in features/
  edge-ad features array.wav --channel 3 --json
"""


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "features", help="compute context vectors of recordings (.npy)",
        description="Write the log-mel context vectors (n_vectors x 640, float32) of each "
                    "recording as a .npy file, computed by the C front end.",
        epilog=EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", metavar="FILE", nargs="+", help="recordings (WAV, FLAC, ...)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: next to each file)")
    ch = p.add_mutually_exclusive_group()   # --channel 3 --mix would silently ignore one
    ch.add_argument("--channel", type=int, default=0,
                    help="channel of a multi-channel file (default 0, as the MIMII baselines)")
    ch.add_argument("--mix", action="store_true", help="mix all channels instead")
    p.add_argument("--json", action="store_true", help="one JSON summary on stdout")


def output_paths(files: list[str], out_dir: str | None) -> list[Path]:
    """``DIR/<stem>.npy`` (or ``<file without suffix>.npy``); two inputs may not share one."""
    from ..errors import EdgeAdError

    outs = [Path(out_dir) / (Path(f).stem + ".npy") if out_dir else Path(f).with_suffix(".npy")
            for f in files]
    seen: dict[Path, str] = {}
    for f, o in zip(files, outs):
        if o.resolve() in seen:
            raise EdgeAdError(f"{f} and {seen[o.resolve()]} would both be written to {o}; "
                              "expected recordings with distinct names (or no --out)")
        seen[o.resolve()] = f
    return outs


def save_atomic(path: Path, array: Any) -> None:
    """Write ``array`` as ``.npy`` so ``path`` is either the old file or the whole new one."""
    import numpy as np

    def fill(f: Any) -> None:
        np.save(f, array)

    _replace_file(path, fill)


def _replace_file(path: Path, fill: Any) -> None:
    """``fill(open file)`` into a temporary beside ``path``, fsync, rename, dir fsync."""
    from ..atomic import fsync_dir

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_vectors_streamed(path: Path, stream: Any, *, spec: Any) -> tuple[int, int]:
    """The context vectors of ``stream`` (an ``edge.audio.AudioStream``) as ``.npy`` at
    ``path``, written block by block: memory does not grow with the recording (an hour is
    113,000 x 640 floats, 290 MB, that never sit in memory at once). Returns the shape."""
    import numpy as np

    from ..features import stream_vectors

    shape = (spec.n_vectors(stream.n_samples), spec.vector_size)

    def fill(f: Any) -> None:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                "fortran_order": False, "shape": shape})
        rows = 0
        for v in stream_vectors(stream, spec=spec):
            f.write(np.ascontiguousarray(v, dtype="<f4").tobytes())
            rows += len(v)
        if rows != shape[0]:
            raise RuntimeError(f"{stream.path}: {rows} vectors streamed, {shape[0]} expected")

    _replace_file(path, fill)
    return shape


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..audio import AudioStream
    from ..errors import EXIT_BAD_INPUT, EdgeAdError
    from ..spec import DEFAULT_SPEC

    spec = DEFAULT_SPEC
    outs = output_paths(args.files, args.out)
    if args.out:
        out_dir = Path(args.out)
        if out_dir.exists() and not out_dir.is_dir():
            raise EdgeAdError(f"--out {out_dir}: exists and is not a directory (expected a directory)")
        from ..bundle import check_writable

        check_writable(out_dir, expected="a writable folder for the .npy files (--out DIR)")
    written: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    quiet = bool(getattr(args, "quiet", False))
    bar = tqdm(list(zip(args.files, outs)), unit="file", desc="features",
               disable=True if quiet else None, file=sys.stderr)
    for path, out in bar:
        try:
            stream = AudioStream(path, spec=spec, channel=args.channel, mix=args.mix)
            # Created only once there is something to write: a run whose every file is
            # refused leaves no empty --out folder behind.
            out.parent.mkdir(parents=True, exist_ok=True)
            shape = save_vectors_streamed(out, stream, spec=spec)
        except (EdgeAdError, OSError) as e:
            # One unusable recording should not stop the others; it leaves no output.
            message = str(e) if isinstance(e, EdgeAdError) else f"{path}: cannot write {out}: {e}"
            tqdm.write(f"edge-ad features: error: {message}", file=sys.stderr)
            failed.append({"path": path, "error": message})
            continue
        written.append({"path": path, "out": str(out), "shape": list(shape)})
    bar.close()
    if args.json:
        json.dump({"spec_digest": spec.digest, "outputs": written, "errors": failed},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    log.info("wrote %d of %d files", len(written), len(args.files))
    return EXIT_BAD_INPUT if failed else 0
