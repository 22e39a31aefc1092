"""How many of the int8 network's hidden inputs are ReLU zeros: what a kernel that skips
zero inputs could save (issue 12's speed work; measurement only).

    .venv/bin/python scripts/int8_sparsity.py BUNDLE 'PLANT/fan/id_0*/normal/*.wav' [--clips-max 20]

Runs the bundle's ``model_int8.adq8`` one layer at a time on edge-ad's C kernel (the
inputs quantised as TFLite's QUANTIZE does) on the clips' context vectors and prints per
layer: the share of
inputs at the input zero point, of channels zero on every vector seen, and of aligned groups
of four inputs all zero (what a ``vpdpbusd`` quad skip would need).
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
from pathlib import Path

import numpy as np
import soundfile as sf

from edge import dense
from edge.backends.c import CBackend
from edge.backends.tflite import quantize
from edge.bundle import load_bundle
from edge.features import clip_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path)
    ap.add_argument("clips", help="glob of normal WAV clips")
    ap.add_argument("--clips-max", type=int, default=20)
    a = ap.parse_args()
    net = dense.read(a.bundle / "model_int8.adq8")
    spec = load_bundle(a.bundle).spec
    paths = sorted(glob.glob(a.clips))[:a.clips_max]
    if not paths:
        raise SystemExit(f"{a.clips}: no clips match")
    xs = []
    for p in paths:
        x, _ = sf.read(p, dtype="float32", always_2d=True)
        xs.append(clip_features(x[:, 0], spec=spec))
    x = np.concatenate(xs)
    q = quantize(x, net.input_scale, net.input_zero_point, np.int8)
    print(f"{len(x)} vectors from {len(paths)} clips")
    for i, layer in enumerate(net.layers):
        zero = q == layer.input_zero_point
        quads = zero[:, : layer.n_in // 4 * 4].reshape(len(q), -1, 4).all(axis=2).mean()
        print(f"layer {i}: {layer.n_in:4d} -> {layer.n_out:4d}  MACs {layer.n_in * layer.n_out:6d}  "
              f"input zeros {zero.mean():.2f}  always-zero channels {zero.all(axis=0).mean():.2f}  "
              f"all-zero quads {quads:.2f}")
        one = CBackend(a.bundle / "model_int8.adq8",      # this layer alone, same kernel
                       net=dataclasses.replace(net, layers=(layer,)))
        q = one.run_int8(q)


if __name__ == "__main__":
    main()
