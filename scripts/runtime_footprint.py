#!/usr/bin/env python3
"""Resident size and CPU share of ``edge-ad run`` (figures for docs/raspberry-pi.md).

    python scripts/runtime_footprint.py --model BUNDLE --wav normal.wav [--seconds 20]

1. Real-time pace: ``edge-ad run --device WAV --loop`` for ``--seconds`` after a 3 s
   warm-up; CPU share of one core = (utime + stime ticks) / (ticks per second * wall time),
   read from /proc/PID/stat at the start and end of the interval.
2. An hour of audio with ``--fast --loop``: VmRSS sampled from /proc/PID/status, first and
   last fifth compared.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def cpu_ticks(pid: int) -> int:
    # Fields after the parenthesised command name: utime is 14th and stime 15th overall.
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def edge_run(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", "-q", "run", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--wav", required=True)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--backend", default="tflite")
    ap.add_argument("--precision", default="int8")
    a = ap.parse_args()
    common = ["--model", a.model, "--backend", a.backend, "--precision", a.precision, "--loop",
              "--json-out", os.devnull]

    p = edge_run("--device", a.wav, *common)
    try:
        time.sleep(3.0)
        t0, c0 = time.monotonic(), cpu_ticks(p.pid)
        time.sleep(a.seconds)
        t1, c1 = time.monotonic(), cpu_ticks(p.pid)
        rss_rt = rss_kib(p.pid)
    finally:
        p.terminate()
        p.wait(10)
    share = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (t1 - t0)

    p = edge_run("--device", a.wav, "--fast", "--max-seconds", "3600", *common)
    rss = []
    while p.poll() is None:
        try:
            rss.append(rss_kib(p.pid))
        except (FileNotFoundError, ProcessLookupError, RuntimeError):
            break
        time.sleep(0.05)
    p.wait()
    k = max(1, len(rss) // 5)
    print(json.dumps({
        "realtime_seconds": round(t1 - t0, 1),
        "cpu_share_of_one_core": round(share, 4),
        "rss_kib_realtime": rss_rt,
        "hour_fast_rss_kib_first_fifth_max": max(rss[k:2 * k]) if len(rss) > 2 * k else None,
        "hour_fast_rss_kib_last_fifth_max": max(rss[-k:]) if rss else None,
        "hour_fast_rss_kib_peak": max(rss) if rss else None,
        "samples": len(rss), "backend": a.backend, "precision": a.precision,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
