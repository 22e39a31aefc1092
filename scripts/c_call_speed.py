#!/usr/bin/env python3
"""The C int8 network against LiteRT int8 per call, warm and with the caches disturbed.

``edge-ad bench`` times its variants interleaved (torch, ONNX, LiteRT float and int8, C),
so each call starts with caches the other runtimes have used: a fair comparison of the
runtimes in the same conditions, but not what a model called in a loop costs. This script
times ``CBackend.run`` (each C kernel this CPU has) and LiteRT's int8 model on 1, 31 (one
decision) and 309 (a 10 s clip) float vectors, p50 over many calls:

- ``warm``: the same call again and again;
- ``disturbed``: before each call, numpy sums a 24 MB array and sorts 100,000 values
  (the caches then hold other data, as in the bench and in a busy process).

    .venv/bin/python scripts/c_call_speed.py demo-out/bundle [--reps 300]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

SIZES = (1, 31, 309)


def p50_us(fn, x: np.ndarray, reps: int, disturb) -> float:
    for _ in range(20):
        fn(x)
    times = np.empty(reps)
    for i in range(reps):
        if disturb is not None:
            disturb()
        t0 = time.perf_counter()
        fn(x)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e6)


def main() -> None:
    from edge import backends
    from edge.backends.c import CBackend, available_kernels

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    x = np.random.default_rng(0).normal(-3, 1, (max(SIZES), 640)).astype(np.float32)
    big = np.random.default_rng(1).random(3_000_000)

    def disturb() -> None:
        big.sum()
        np.sort(big[:100_000])

    runners = {f"c {k}": CBackend(args.bundle / "model_int8.adq8", kernel=k).run
               for k in available_kernels() if k != "scalar"}
    runners["litert int8"] = backends.load(args.bundle / "model_int8.tflite", num_threads=1).run
    print(f"{'':<22}" + "".join(f"{n:>10} vec" for n in SIZES) + "   (p50 us per call)")
    results: dict[tuple[str, str], list[float]] = {}
    for mode, dist in (("warm", None), ("disturbed", disturb)):
        for name, fn in runners.items():
            row = [p50_us(fn, np.ascontiguousarray(x[:n]), args.reps, dist) for n in SIZES]
            results[name, mode] = row
            print(f"{name + ' ' + mode:<22}" + "".join(f"{t:14.1f}" for t in row))
    for mode in ("warm", "disturbed"):
        ref = results["litert int8", mode]
        for name in runners:
            if name != "litert int8":
                ratios = " ".join(f"{r / t:.2f}x" for r, t in zip(ref, results[name, mode]))
                print(f"{name} against litert int8, {mode}: {ratios} faster (1 / 31 / 309 vectors)")


if __name__ == "__main__":
    main()
