#!/usr/bin/env python3
"""Where the C int8 network's time goes, layer by layer, against LiteRT int8 on one clip.

For the bundle's int8 network (``model_int8.adq8``), one thread, best of many repeats
(the minimum: least disturbed by the other core's work), 309 vectors (a 10 s clip):

- each layer alone on the C kernel (``ad_dense_run_i8`` on a one-layer network), its time
  and multiply-accumulates per second;
- the whole network int8 in, int8 out; with the float stages (quantise, dequantise);
  with the squared error instead of the reconstruction;
- the float stages alone (``ad_quantize_f32``, ``ad_dequantize_i8``, ``ad_squared_error``);
- LiteRT's int8 model on the same float vectors (its QUANTIZE and DEQUANTIZE included).

    .venv/bin/python scripts/c_layer_speed.py demo-out/bundle [--kernel avx512-vnni]
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

N_VECTORS = 309


def best_us(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e6


def main() -> None:
    from edge import backends, dense
    from edge.backends.c import CBackend, _lib, available_kernels

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--kernel", default="auto", help=f"C kernel (this CPU: {', '.join(available_kernels())})")
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    ffi, lib = _lib()
    path = args.bundle / "model_int8.adq8"
    net = dense.read(path)
    rng = np.random.default_rng(0)
    n = N_VECTORS
    full = CBackend(path, kernel=args.kernel)
    print(f"{path} on the {full.kernel} kernel, {n} vectors, best of {args.reps}")
    total_macs = 0
    for i, layer in enumerate(net.layers):
        one = CBackend(path, kernel=args.kernel, net=dataclasses.replace(net, layers=(layer,)))
        q = rng.integers(-128, 128, (n, layer.n_in)).astype(np.int8)
        out = np.empty((n, layer.n_out), np.int8)
        qp, op = ffi.from_buffer("int8_t[]", q), ffi.from_buffer("int8_t[]", out)
        t = best_us(lambda: lib.ad_dense_run_i8(one._state, qp, n, op), args.reps)
        macs = layer.n_in * layer.n_out * n
        total_macs += macs
        print(f"  layer {i} {layer.n_in:>3} x {layer.n_out:<3} {t:8.1f} us  {macs / t / 1e3:6.0f} GMAC/s")
    x = rng.normal(-30, 10, (n, net.n_in)).astype(np.float32)
    q = rng.integers(-128, 128, (n, net.n_in)).astype(np.int8)
    out = np.empty((n, net.n_out), np.int8)
    recon = np.empty((n, net.n_out), np.float32)
    err = np.empty(n)
    xp, qp, op = ffi.from_buffer("float[]", x), ffi.from_buffer("int8_t[]", q), ffi.from_buffer("int8_t[]", out)
    rp, ep = ffi.from_buffer("float[]", recon), ffi.from_buffer("double[]", err)
    st = full._state
    rows = {
        "network int8 -> int8": lambda: lib.ad_dense_run_i8(st, qp, n, op),
        "float -> reconstruction": lambda: lib.ad_dense_run_f32(st, xp, n, ffi.NULL, rp, ffi.NULL),
        "float -> squared errors": lambda: lib.ad_dense_run_f32(st, xp, n, ffi.NULL, ffi.NULL, ep),
        "  quantise alone": lambda: lib.ad_quantize_f32(xp, n * net.n_in, 0.3, -5, qp),
        "  dequantise alone": lambda: lib.ad_dequantize_i8(op, n * net.n_out, 0.3, -5, rp),
        "  squared error alone": lambda: lib.ad_squared_error(xp, rp, n * net.n_out),
    }
    for name, fn in rows.items():
        t = best_us(fn, args.reps)
        rate = f"  {total_macs / t / 1e3:6.0f} GMAC/s" if not name.startswith(" ") else ""
        print(f"  {name:<24} {t:8.1f} us{rate}")
    for name in ("model_int8.tflite",):
        try:
            tfl = backends.load(args.bundle / name, num_threads=1)
        except Exception as e:   # no LiteRT here: the C figures stand alone
            print(f"  LiteRT: not measured ({e})")
            continue
        tfl.run(x)
        t = best_us(lambda: tfl.run(x), max(20, args.reps // 3))
        print(f"  LiteRT {name} float -> reconstruction {t:8.1f} us  {total_macs / t / 1e3:6.0f} GMAC/s")


if __name__ == "__main__":
    main()
