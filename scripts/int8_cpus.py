"""Run a bundle's models natively and on an emulated AVX2 CPU without VNNI.

    .venv/bin/python scripts/int8_cpus.py RUN BUNDLE

Scores every held-out clip (validation and test) of RUN with every model file of BUNDLE
twice: in this process's CPU and under ``qemu-x86_64 -cpu Haswell`` (AVX2, no AVX-512, no
VNNI), and prints, per format and CPU, the int8 clip scores' correlation with float, the
share of clips decided alike at each model's cutoff, and whether the int8 outputs are bit
for bit the same on both CPUs. ``tests/test_int8_cpus.py`` uses the same functions.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Runs every model in a folder on the vectors in it through the edge backends.
SCORE = r"""
import sys, numpy as np
from pathlib import Path
from edge.backends import load
d = Path(sys.argv[1])
x = np.load(d / "x.npy")
out = {}
for p in sorted(d.glob("*.onnx")) + sorted(d.glob("*.tflite")):
    out[p.name] = load(p).run(x)
np.savez(d / f"y_{sys.argv[2]}.npz", **out)
"""


class NoQemu(RuntimeError):
    pass


def run_models(folder: Path, *, emulate: bool, timeout: float | None = 900) -> dict[str, np.ndarray]:
    """``{model file: (n, d) outputs}`` of every model in ``folder`` on ``folder/x.npy``."""
    tag = "haswell" if emulate else "native"
    cmd = [sys.executable, "-c", SCORE, str(folder), tag]
    if emulate:
        qemu = shutil.which("qemu-x86_64")
        if qemu is None:
            raise NoQemu("qemu-x86_64 not installed (scripts/setup.sh installs qemu-user)")
        cmd = [qemu, "-cpu", "Haswell", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}...: exit {proc.returncode}: {proc.stderr[-3000:]}")
    with np.load(folder / f"y_{tag}.npz") as z:
        return {k: z[k] for k in z.files}


def clip_scores(vectors: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """SPEC 4's A(X) per clip, from the clips' vectors and the model outputs of all of them."""
    from edge.scoring import clip_score

    bounds = np.cumsum([len(v) for v in vectors])[:-1]
    return np.array([clip_score(x, r) for x, r in zip(vectors, np.split(y, bounds))])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--every", type=int, default=1, metavar="N",
                    help="every Nth held-out clip only (emulation runs ~50x slower; default 1)")
    args = ap.parse_args()
    from edge.bundle import load_bundle
    from train.runs import load_run

    run, bundle = load_run(args.run), load_bundle(args.bundle)
    vectors = [run.vectors(c) for c in run.clips if c.split != "train"][::args.every]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in bundle.models:
            shutil.copy(bundle.path / name, folder / name)
        np.save(folder / "x.npy", np.concatenate(vectors))
        out = {"native": run_models(folder, emulate=False, timeout=None),
               "haswell": run_models(folder, emulate=True, timeout=None)}
    for fmt in ("onnx", "tflite"):
        if f"model_int8.{fmt}" not in bundle.models or f"model_float.{fmt}" not in bundle.models:
            continue
        same = np.array_equal(out["native"][f"model_int8.{fmt}"], out["haswell"][f"model_int8.{fmt}"])
        for cpu, y in out.items():
            f = clip_scores(vectors, y[f"model_float.{fmt}"])
            q = clip_scores(vectors, y[f"model_int8.{fmt}"])
            agree = np.mean((f > bundle.thresholds[f"model_float.{fmt}"].cutoff)
                            == (q > bundle.thresholds[f"model_int8.{fmt}"].cutoff))
            print(f"{fmt:6} {cpu:8} {len(vectors)} clips: int8/float score correlation "
                  f"{np.corrcoef(f, q)[0, 1]:.7f}, decisions alike {agree:.4f}")
        print(f"{fmt:6} int8 outputs native vs Haswell: {'bit-identical' if same else 'DIFFER'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
