"""Score recordings with a bundle's int8 TFLite model and save every intermediate, so two
machines (x86 and an aarch64 board under qemu) can be compared number for number.

    python probe.py BUNDLE --wav A.wav [B.wav ...] --out OUT.npz [--vectors REF.npz]

Only the edge path is used (edge.audio, edge.features with the C kernel, edge.bundle,
edge.backends, edge.scoring): the code a board runs. For each recording k, OUT.npz holds

    features_k   (n, 640) float32  context vectors from this machine's C front end
    recon_k      (n, 640) float32  the int8 model's dequantised output on features_k
    score_k      ()       float64  the clip score A(X) (SPEC 4)
    anomaly_k    ()       bool     the bundle's decision for that score
    ref_recon_k  (n, 640) float32  with --vectors: the model's output on REF.npz's features_k,
                                   so the model is compared on identical inputs

and ``meta``, a JSON string: machine, Python and library versions, the backend's name, and
the file the C kernel was loaded from (which proves which build ran).
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--wav", type=Path, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vectors", type=Path, help="another machine's OUT.npz")
    args = parser.parse_args(argv)

    from edge import audio, features, scoring
    from edge.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    backend, threshold = bundle.load_backend("tflite", "int8", num_threads=1)
    ref = np.load(args.vectors, allow_pickle=False) if args.vectors else None
    out: dict[str, np.ndarray] = {}
    for k, wav in enumerate(args.wav):
        x = audio.load(wav, spec=bundle.spec)
        feats = features.clip_features(x, spec=bundle.spec)
        recon = backend.run(feats)
        score = scoring.clip_score(feats, recon)
        out[f"features_{k}"] = feats
        out[f"recon_{k}"] = recon
        out[f"score_{k}"] = np.float64(score)
        out[f"anomaly_{k}"] = np.bool_(threshold.decide(score))
        if ref is not None:
            out[f"ref_recon_{k}"] = backend.run(ref[f"features_{k}"])
    kernel = sys.modules.get("edge._frontend")
    meta = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "ai_edge_litert": importlib.metadata.version("ai-edge-litert"),
        "backend": backend.name,
        "precision": backend.precision,
        "cutoff": threshold.cutoff,
        "kernel": getattr(kernel, "__file__", None),
        "recordings": [str(w) for w in args.wav],
    }
    out["meta"] = np.array(json.dumps(meta))
    np.savez(args.out, **out)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
